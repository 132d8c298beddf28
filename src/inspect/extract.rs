//! Dispatch of one attachment (or archive entry) to the right extractor, by magic bytes,
//! content type and file extension.

use super::archive;
use super::office::{self, XmlMode};
use super::pdf;
use super::rtf;
use super::shadow;
use super::text;
use super::{Bound, Ctx, html, mime};
use std::panic::{AssertUnwindSafe, catch_unwind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pdf,
    Zip,
    Gzip,
    Tar,
    Rtf,
    Html,
    Xml,
    Eml,
    Text,
    /// OLE compound file: legacy .doc/.xls/.ppt or an encrypted OOXML document.
    Ole,
    /// Archive formats not supported (7z, rar, bzip2, xz).
    UnsupportedArchive(&'static str),
    /// No text to extract (images, audio, video, other binary).
    Binary,
}

fn ext(name: &str) -> String {
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Decides how to read a blob.
pub(crate) fn detect(name: &str, content_type: &str, data: &[u8]) -> Kind {
    let ct = content_type.to_ascii_lowercase();
    let ext = ext(name);
    // Magic bytes first: they cannot be renamed away.
    if data.starts_with(b"%PDF-")
        || data
            .get(..1024)
            .is_some_and(|h| h.windows(5).any(|w| w == b"%PDF-"))
    {
        return Kind::Pdf;
    }
    if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
        return Kind::Zip;
    }
    if data.starts_with(b"\x1f\x8b") {
        return Kind::Gzip;
    }
    if data.starts_with(b"{\\rtf") {
        return Kind::Rtf;
    }
    if data.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        return Kind::Ole;
    }
    if data.starts_with(b"7z\xBC\xAF\x27\x1C") {
        return Kind::UnsupportedArchive("7z");
    }
    if data.starts_with(b"Rar!\x1A\x07") {
        return Kind::UnsupportedArchive("RAR");
    }
    if data.starts_with(b"BZh") && ext == "bz2" {
        return Kind::UnsupportedArchive("bzip2");
    }
    if data.starts_with(b"\xFD7zXZ\x00") {
        return Kind::UnsupportedArchive("xz");
    }
    if archive::is_tar(data) {
        return Kind::Tar;
    }
    // Declared type and extension.
    match ext.as_str() {
        "pdf" => return Kind::Pdf,
        "zip" | "docx" | "xlsx" | "pptx" | "odt" | "ods" | "odp" | "docm" | "xlsm" | "pptm" => {
            return Kind::Zip;
        }
        "gz" | "tgz" => return Kind::Gzip,
        "rtf" => return Kind::Rtf,
        "htm" | "html" | "xhtml" => return Kind::Html,
        "xml" | "svg" => return Kind::Xml,
        "eml" => return Kind::Eml,
        "txt" | "csv" | "tsv" | "md" | "log" | "json" | "ini" | "vcf" | "ics" => {
            return Kind::Text;
        }
        _ => {}
    }
    match ct.as_str() {
        "application/pdf" => return Kind::Pdf,
        "application/zip" | "application/x-zip-compressed" => return Kind::Zip,
        "application/gzip" | "application/x-gzip" => return Kind::Gzip,
        "application/rtf" | "text/rtf" => return Kind::Rtf,
        "text/html" | "application/xhtml+xml" => return Kind::Html,
        "text/xml" | "application/xml" => return Kind::Xml,
        "message/rfc822" | "message/global" => return Kind::Eml,
        _ => {}
    }
    if ct.starts_with("text/") {
        return Kind::Text;
    }
    if ct.starts_with("image/") || ct.starts_with("audio/") || ct.starts_with("video/") {
        return Kind::Binary;
    }
    if text::looks_like_text(data) {
        Kind::Text
    } else {
        Kind::Binary
    }
}

/// Extracts text from one blob and records it (or why it could not be read) in `ctx`.
/// `depth` is the container depth of this blob (1 for a top-level attachment). An extractor
/// that panics (pdf-extract and lopdf do on hostile input) makes this file unscannable and
/// nothing else: the rest of the message is still examined.
pub(crate) fn extract(
    ctx: &mut Ctx,
    name: &str,
    content_type: &str,
    data: &[u8],
    origin: &str,
    depth: usize,
) {
    if !ctx.alive(origin) {
        return;
    }
    let kind = detect(name, content_type, data);
    let container = matches!(kind, Kind::Zip | Kind::Gzip | Kind::Tar | Kind::Eml);
    if container && depth > ctx.limits.max_depth {
        ctx.unscannable(origin, &Bound::Depth(ctx.limits.max_depth).to_string());
        ctx.add_shadow(origin, data);
        return;
    }
    let read = catch_unwind(AssertUnwindSafe(|| {
        read(ctx, kind, name, data, origin, depth);
    }));
    if read.is_err() {
        ctx.unscannable(
            origin,
            "the extractor crashed on this file (damaged or hostile)",
        );
    }
}

fn read(ctx: &mut Ctx, kind: Kind, name: &str, data: &[u8], origin: &str, depth: usize) {
    // The raw view first: it refuses a PDF with a bomb before the extractor inflates it.
    match kind {
        Kind::Pdf => {
            if !shadow::pdf(ctx, data, origin) {
                return;
            }
        }
        // Members are read below (or walked raw when the directory is unreadable); a gzip's
        // content goes to `extract` again; text is its own view.
        Kind::Zip | Kind::Gzip | Kind::Text => {}
        _ => ctx.add_shadow(origin, data),
    }
    match kind {
        Kind::Pdf => match pdf::extract(data, ctx.time_left()) {
            Ok(e) => {
                ctx.add_text(origin, &e.text);
                if let Some(d) = e.damage {
                    ctx.unscannable(origin, &format!("damaged PDF: {d}"));
                }
            }
            Err(e) => ctx.unscannable(origin, &e.to_string()),
        },
        Kind::Zip => zip(ctx, data, origin, depth),
        Kind::Gzip => archive::gunzip(ctx, name, data, origin, depth),
        Kind::Tar => archive::walk_tar(ctx, data, origin, depth),
        Kind::Rtf => match rtf::extract(data) {
            Ok(t) => {
                ctx.add_text(origin, &t.text);
                if let Some(d) = t.damage {
                    ctx.unscannable(origin, &format!("damaged RTF: {d}"));
                }
            }
            Err(e) => ctx.unscannable(origin, &e.to_string()),
        },
        Kind::Html => ctx.add_text(origin, &html::to_text(&text::decode(data, None))),
        Kind::Xml => match office::xml_text(data, XmlMode::Generic) {
            Ok(t) => ctx.add_text(origin, &t),
            Err(_) => {
                // Not well-formed: read it as markup anyway, and say so.
                ctx.add_text(origin, &html::to_text(&text::decode(data, None)));
                ctx.unscannable(origin, "corrupt XML (read as text)");
            }
        },
        Kind::Eml => mime::inspect_nested(ctx, data, origin, depth),
        Kind::Text => ctx.add_text(origin, &text::decode(data, None)),
        Kind::Ole => ctx.unscannable(
            origin,
            "unsupported format: OLE compound file (legacy Office document or password-protected Office file)",
        ),
        Kind::UnsupportedArchive(f) => {
            ctx.unscannable(origin, &format!("unsupported archive format ({f})"));
        }
        Kind::Binary => {}
    }
}

fn zip(ctx: &mut Ctx, data: &[u8], origin: &str, depth: usize) {
    let (mut zip, names) = match archive::open(data) {
        Ok(z) => z,
        Err(e) => {
            ctx.unscannable(origin, &e);
            shadow::zip_members(ctx, data, origin);
            return;
        }
    };
    if let Some(problem) = archive::mismatched_entry(&mut zip, data) {
        ctx.unscannable(origin, &format!("damaged ZIP archive: {problem}"));
    }
    match office::detect(&names) {
        Some(kind) => match office::extract(ctx, &mut zip, &names, kind, origin) {
            Ok(t) => {
                ctx.add_text(origin, &t.text);
                if let Some(d) = t.damage {
                    ctx.unscannable(origin, &format!("damaged {kind:?} document: {d}"));
                }
            }
            Err(office::OfficeError::Entry(archive::EntryError::Stopped)) => {}
            Err(e) => ctx.unscannable(origin, &format!("{kind:?} document: {e}")),
        },
        None => archive::walk_zip(ctx, &mut zip, &names, origin, depth),
    }
}
