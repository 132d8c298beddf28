//! PDF text via pdf-extract, on a kept inspection worker under `catch_unwind` and a time bound
//! (pdf-extract panics on some inputs).
//!
//! lopdf (under pdf-extract) only logs an object it cannot load and leaves it out; a page whose
//! object is gone is then not a page at all, and a content stream that fails to inflate is used
//! as it is. So the document is checked here after loading: every object the cross-reference
//! table lists was loaded, the page tree has the pages it counts, and every page's content
//! streams are there and decode. Anything missing makes the text incomplete (`Extracted::damage`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use flate2::read::ZlibDecoder;
use pdf_extract::xref::XrefEntry;
use pdf_extract::{Document, Object};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PdfError {
    #[error("encrypted PDF")]
    Encrypted,
    #[error("corrupt PDF: {0}")]
    Corrupt(String),
    #[error("PDF parser crashed")]
    Panic,
    #[error("PDF text extraction timed out")]
    Timeout,
    #[error("PDF has pages but no text layer (a scan?); its content could not be examined")]
    NoText,
}

fn is_decryption(e: &pdf_extract::Error) -> bool {
    matches!(e, pdf_extract::Error::Decryption(_))
}

/// Text read from a PDF, and why it may be incomplete.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Extracted {
    pub text: String,
    /// Set when part of the document could not be read: the text is what was recovered.
    pub damage: Option<String>,
}

/// What of the document's structure could not be read, if anything.
fn damage(doc: &Document) -> Option<String> {
    for (&id, entry) in &doc.reference_table.entries {
        let key = match *entry {
            XrefEntry::Normal { generation, .. } => (id, generation),
            XrefEntry::Compressed { .. } => (id, 0),
            XrefEntry::Free | XrefEntry::UnusableFree => continue,
        };
        if !doc.objects.contains_key(&key) {
            return Some(format!("object {} {} could not be loaded", key.0, key.1));
        }
    }
    let pages = doc.get_pages();
    let count = doc
        .catalog()
        .and_then(|c| c.get_deref(b"Pages", doc))
        .and_then(Object::as_dict)
        .and_then(|p| p.get_deref(b"Count", doc))
        .and_then(Object::as_i64);
    match count {
        Ok(n) if usize::try_from(n).is_ok_and(|n| n == pages.len()) => {}
        Ok(n) => {
            return Some(format!(
                "the page tree counts {n} pages, {} could be read",
                pages.len()
            ));
        }
        Err(_) => return Some("the page tree could not be read".into()),
    }
    for (number, id) in pages {
        for stream in doc.get_page_contents(id) {
            let ok = doc
                .get_object(stream)
                .and_then(Object::as_stream)
                .is_ok_and(|s| s.decompressed_content().is_ok());
            if !ok {
                return Some(format!(
                    "a content stream of page {number} could not be read"
                ));
            }
        }
    }
    doc.objects.iter().find_map(|(id, object)| match object {
        Object::Stream(s) => stream_damage(s).map(|d| format!("stream {} {} {d}", id.0, id.1)),
        Object::Dictionary(d) => dict_damage(d)
            .or_else(|| to_unicode_damage(doc, d))
            .map(|d| format!("object {} {}: {d}", id.0, id.1)),
        _ => None,
    })
}

/// lopdf uses a stream that fails to inflate as it is (or empty), without an error; and a
/// stream whose /Filter was damaged away is read as if it were not compressed. Bombs never get
/// here (`shadow` refuses them first).
fn stream_damage(s: &pdf_extract::Stream) -> Option<&'static str> {
    // Images, TrueType and compact font programs: never decoded for text (glyphs read as
    // text through the font's maps, checked elsewhere).
    let subtype = s.dict.get(b"Subtype").and_then(Object::as_name).ok();
    let has = |k: &[u8]| s.dict.get(k).is_ok();
    if matches!(
        subtype,
        Some(b"Image" | b"Type1C" | b"CIDFontType0C" | b"OpenType")
    ) || (has(b"Length1") && !has(b"Length2"))
    {
        return None;
    }
    let inflates = |c: &[u8]| std::io::copy(&mut ZlibDecoder::new(c), &mut std::io::sink()).is_ok();
    match s.filters().ok().and_then(|f| f.first().copied()) {
        Some(b"FlateDecode") if !inflates(&s.content) => Some("failed to inflate"),
        None if s.dict.get(b"Filter").is_err()
            && s.content.len() > 2
            && s.content[0] & 0x0f == 8
            && u16::from_be_bytes([s.content[0], s.content[1]]).is_multiple_of(31)
            && inflates(&s.content) =>
        {
            Some("is compressed but names no filter")
        }
        _ => None,
    }
}

/// Entries of a font dictionary (PDF 2.0, 9.6-9.7), and the font types.
const FONT_KEYS: &[&[u8]] = &[
    b"Type",
    b"Subtype",
    b"BaseFont",
    b"FirstChar",
    b"LastChar",
    b"Widths",
    b"FontDescriptor",
    b"Encoding",
    b"ToUnicode",
    b"DescendantFonts",
    b"Name",
    b"FontBBox",
    b"FontMatrix",
    b"CharProcs",
    b"Resources",
    b"CIDSystemInfo",
    b"DW",
    b"W",
    b"DW2",
    b"W2",
    b"CIDToGIDMap",
];
const FONT_TYPES: &[&[u8]] = &[
    b"Type0",
    b"Type1",
    b"MMType1",
    b"Type3",
    b"TrueType",
    b"CIDFontType0",
    b"CIDFontType2",
];

/// A dictionary whose keys were damaged: a key that is not a printable ASCII name, or, in a
/// font (which decides how glyphs read as text), a key or font type the format does not have.
fn dict_damage(d: &pdf_extract::Dictionary) -> Option<&'static str> {
    if d.iter()
        .any(|(k, _)| k.is_empty() || !k.iter().all(|b| (33..=126).contains(b)))
    {
        return Some("a damaged entry name");
    }
    if !d.has_type(b"Font") {
        return None;
    }
    if d.iter().any(|(k, _)| !FONT_KEYS.contains(&k.as_slice())) {
        return Some("a font with an entry fonts do not have");
    }
    match d.get(b"Subtype").and_then(Object::as_name) {
        Ok(t) if FONT_TYPES.contains(&t) => None,
        _ => Some("a font of no known type"),
    }
}

/// A font's /ToUnicode map (how its glyphs read as text) that is not a CMap.
fn to_unicode_damage(doc: &Document, font: &pdf_extract::Dictionary) -> Option<&'static str> {
    let map = font.get(b"ToUnicode").ok()?;
    let ok = doc
        .dereference(map)
        .and_then(|(_, o)| o.as_stream())
        .is_ok_and(|s| {
            s.decompressed_content()
                .is_ok_and(|c| memchr::memmem::find(&c, b"begincmap").is_some())
        });
    (!ok).then_some("its ToUnicode map is not a CMap")
}

fn run(data: &[u8]) -> Result<Extracted, PdfError> {
    let mut doc = match Document::load_mem(data) {
        Ok(d) => d,
        Err(e) if is_decryption(&e) => return Err(PdfError::Encrypted),
        Err(e) => return Err(PdfError::Corrupt(e.to_string())),
    };
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        // Opens only with a user password: the content cannot be read.
        return Err(PdfError::Encrypted);
    }
    let mut s = String::new();
    {
        let mut output = pdf_extract::PlainTextOutput::new(&mut s);
        pdf_extract::output_doc(&doc, &mut output).map_err(|e| PdfError::Corrupt(e.to_string()))?;
    }
    let damage = damage(&doc);
    // A scanned document is an image: what it says is unknown, so it is not "clean".
    if damage.is_none() && s.trim().is_empty() && !doc.get_pages().is_empty() {
        return Err(PdfError::NoText);
    }
    Ok(Extracted { text: s, damage })
}

/// Extracts the text of a PDF within `timeout`. On timeout the worker thread is left to finish
/// on its own (Rust threads cannot be killed) and is not used again; its result is dropped.
pub(crate) fn extract(data: &[u8], timeout: Duration) -> Result<Extracted, PdfError> {
    let owned = data.to_vec();
    // On a kept inspection worker: a new thread per PDF cost more than many small PDFs take.
    match super::workers::run(move || run(&owned), timeout) {
        Ok(r) => r,
        Err(super::workers::RunError::NoThread) => {
            catch_unwind(AssertUnwindSafe(|| run(data))).unwrap_or(Err(PdfError::Panic))
        }
        Err(super::workers::RunError::Panicked) => Err(PdfError::Panic),
        Err(super::workers::RunError::TimedOut) => Err(PdfError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::normalize;

    fn fixture(name: &str) -> Vec<u8> {
        let p = format!(
            "{}/tests/fixtures/inspect/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn libreoffice_pdf_text() {
        let t = normalize(
            &extract(&fixture("vertrouwelijk.pdf"), Duration::from_secs(20))
                .expect("pdf")
                .text,
        );
        assert!(t.contains("vertrouwelijk"), "{t}");
        assert!(t.contains("111222333"), "{t}");
        let t = normalize(
            &extract(&fixture("medisch.pdf"), Duration::from_secs(20))
                .expect("pdf")
                .text,
        );
        assert!(t.contains("medisch dossier"), "{t}");
    }

    #[test]
    fn encrypted_pdf() {
        assert_eq!(
            extract(
                &fixture("vertrouwelijk-encrypted.pdf"),
                Duration::from_secs(20)
            ),
            Err(PdfError::Encrypted)
        );
    }

    #[test]
    fn corrupt_pdf() {
        let r = extract(
            b"%PDF-1.4\n1 0 obj << /Type /Catalog",
            Duration::from_secs(20),
        );
        assert!(
            matches!(r, Err(PdfError::Corrupt(_)) | Err(PdfError::Panic)),
            "{r:?}"
        );
        // Truncated real file.
        let mut data = fixture("vertrouwelijk.pdf");
        data.truncate(data.len() / 3);
        // Must come back (no hang, no crash) and never as a complete text.
        let r = extract(&data, Duration::from_secs(20));
        assert!(
            matches!(&r, Err(PdfError::Corrupt(_) | PdfError::Panic))
                || matches!(&r, Ok(e) if e.damage.is_some()),
            "{r:?}"
        );
    }

    /// A one-page PDF whose page shows `text` in Helvetica, content stream uncompressed.
    fn text_pdf(text: &str) -> Vec<u8> {
        text_pdf_with(text, "")
    }

    fn text_pdf_with(text: &str, filter: &str) -> Vec<u8> {
        let content = format!("BT /F1 12 Tf 20 100 Td ({text}) Tj ET");
        pdf_of(&[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            &format!(
                "<< {filter}/Length {} >>\nstream\n{content}\nendstream",
                content.len() + 1
            ),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ])
    }

    #[test]
    fn a_page_object_that_does_not_load_makes_the_text_incomplete() {
        let good = text_pdf("Burgerservicenummer 111222333");
        let e = extract(&good, Duration::from_secs(10)).expect("pdf");
        assert_eq!(e.damage, None);
        assert!(normalize(&e.text).contains("burgerservicenummer 111222333"));
        // The case: the page object is damaged, the content stream intact. lopdf
        // logs the load error and the document has no pages: once "no text, no findings".
        let at = good
            .windows(8)
            .position(|w| w == b"3 0 obj\n")
            .expect("page");
        let mut bad = good.clone();
        bad[at + 4..at + 7].copy_from_slice(b"oXj");
        let e = extract(&bad, Duration::from_secs(10)).expect("loads");
        assert_eq!(e.damage.as_deref(), Some("object 3 0 could not be loaded"));
        // A content stream that does not inflate.
        let bad = text_pdf_with("Burgerservicenummer 111222333", "/Filter /FlateDecode ");
        let e = extract(&bad, Duration::from_secs(10)).expect("loads");
        assert_eq!(e.damage.as_deref(), Some("stream 4 0 failed to inflate"));
    }

    fn pdf_of(objs: &[&str]) -> Vec<u8> {
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objs.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes(),
        );
        for off in offsets {
            out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objs.len() + 1
            )
            .as_bytes(),
        );
        out
    }

    /// A one-page PDF whose page draws nothing: what a scan looks like to a text extractor.
    fn blank_page_pdf() -> Vec<u8> {
        pdf_of(&[
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R /Resources << >> >>",
            "<< /Length 0 >>\nstream\n\nendstream",
        ])
    }

    #[test]
    fn pdf_without_text_layer_is_unscannable() {
        assert_eq!(
            extract(&blank_page_pdf(), Duration::from_secs(10)),
            Err(PdfError::NoText)
        );
    }
}
