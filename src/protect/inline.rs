//! Which parts of a protected message may stay in the mail: only what its HTML body needs to
//! render. A part stays inline when it is a raster image (by its type and its first bytes), the
//! HTML body refers to its Content-ID (`cid:`), it is not an attachment, it is small (each and
//! together), and the policy found nothing in it. Everything else becomes a protected file: an
//! inline ZIP, a PDF with a Content-ID, an image no one refers to, a part with a finding.

use crate::inspect::body::Parsed;
use crate::policy::decide::Decision;
use mail_parser::{MessagePart, MimeHeaders, PartType};
use std::collections::HashSet;

/// Largest inline image kept in the mail.
pub const MAX_EACH: usize = 1 << 20;
/// All inline images of one mail together.
pub const MAX_TOTAL: usize = 2 << 20;

/// Indexes (into the parsed message's parts) of the parts that stay inline, in order.
pub(crate) fn kept(parsed: &Parsed<'_>, decision: &Decision) -> Vec<usize> {
    let msg = &parsed.msg;
    if !crate::rewrite::has_html(msg) {
        return Vec::new();
    }
    let origins: Vec<&str> = decision
        .findings
        .iter()
        .map(|f| f.origin.as_str())
        .chain(decision.unscannable.iter().map(|(o, _)| o.as_str()))
        .collect();
    // Inspection gave up on the message as a whole: nothing is known to be clean.
    if origins.contains(&"message") {
        return Vec::new();
    }
    let refs = cid_refs(&parsed.html().unwrap_or_default());
    let mut total = 0usize;
    let mut out = Vec::new();
    for (i, part) in msg.parts.iter().enumerate() {
        let Some(cid) = part.content_id() else {
            continue;
        };
        if !matches!(part.body, PartType::InlineBinary(_) | PartType::Binary(_))
            || part
                .content_disposition()
                .is_some_and(|d| d.is_attachment())
            || !refs.contains(&normalise(cid))
            || flagged(part, &origins)
        {
            continue;
        }
        let Some(data) = parsed.bytes(part) else {
            continue;
        };
        if data.len() > MAX_EACH || total + data.len() > MAX_TOTAL || !is_image(part, &data) {
            continue;
        }
        total += data.len();
        out.push(i);
    }
    out
}

/// Whether a finding or an unscannable note names this part. Inspection names a part by its
/// file name, or `part N` when it has none (N as it counted): any note about an unnamed part
/// counts for every unnamed one.
fn flagged(part: &MessagePart<'_>, origins: &[&str]) -> bool {
    let named = |o: &str, name: &str| {
        o.strip_prefix("attachment ")
            .is_some_and(|rest| rest == name || rest.starts_with(&format!("{name} / ")))
    };
    match part.attachment_name() {
        Some(name) => origins.iter().any(|o| named(o, name)),
        None => origins
            .iter()
            .any(|o| o.strip_prefix("attachment part ").is_some()),
    }
}

/// A Content-ID or `cid:` reference without angle brackets, URL escapes decoded, lowercased.
fn normalise(id: &str) -> String {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    let bytes = id.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).to_lowercase()
}

/// Every `cid:` reference in an HTML text.
fn cid_refs(html: &str) -> HashSet<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = HashSet::new();
    let mut from = 0;
    while let Some(p) = lower[from..].find("cid:").map(|p| from + p + 4) {
        let end = lower[p..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '>' | ')' | '<'))
            .map_or(lower.len(), |e| p + e);
        out.insert(normalise(&html[p..end]));
        from = end;
    }
    out
}

/// A raster image by its declared type and by its first bytes (a ZIP or text labelled
/// `image/png` is not one; SVG, which can carry text and scripts, does not count).
fn is_image(part: &MessagePart<'_>, data: &[u8]) -> bool {
    let ct = crate::rewrite::content_type(part);
    match ct.as_str() {
        "image/png" => data.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" | "image/jpg" | "image/pjpeg" => data.starts_with(b"\xff\xd8\xff"),
        "image/gif" => data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a"),
        "image/webp" => data.len() > 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP",
        "image/bmp" => data.starts_with(b"BM"),
        _ => false,
    }
}

#[cfg(test)]
#[path = "inline_tests.rs"]
mod tests;
