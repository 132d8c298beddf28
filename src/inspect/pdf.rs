//! PDF text via pdf-extract, on its own thread under `catch_unwind` and a time bound
//! (pdf-extract panics on some inputs).
//!
//! lopdf (under pdf-extract) only logs an object it cannot load and leaves it out; a page whose
//! object is gone is then not a page at all, and a content stream that fails to inflate is used
//! as it is. So the document is checked here after loading: every object the cross-reference
//! table lists was loaded, the page tree has the pages it counts, and every page's content
//! streams are there and decode. Anything missing makes the text incomplete (`Extracted::damage`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
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
                return Some(format!("a content stream of page {number} could not be read"));
            }
        }
    }
    // lopdf uses a stream that fails to inflate as it is (or empty), without an error. Images
    // hold no text: left out. Bombs never get here (`shadow` refuses them first).
    for (id, object) in &doc.objects {
        if let Object::Stream(s) = object
            && s.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(&b"Image"[..])
            && s.filters().ok().and_then(|f| f.first().copied()) == Some(&b"FlateDecode"[..])
            && std::io::copy(&mut ZlibDecoder::new(&s.content[..]), &mut std::io::sink()).is_err()
        {
            return Some(format!("stream {} {} failed to inflate", id.0, id.1));
        }
    }
    None
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
/// on its own (Rust threads cannot be killed); its result is dropped.
pub(crate) fn extract(data: &[u8], timeout: Duration) -> Result<Extracted, PdfError> {
    let owned = data.to_vec();
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("sluis-pdf".into())
        .stack_size(32 * 1024 * 1024)
        .spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| run(&owned)));
            let _ = tx.send(r.unwrap_or(Err(PdfError::Panic)));
        });
    if spawned.is_err() {
        return catch_unwind(AssertUnwindSafe(|| run(data))).unwrap_or(Err(PdfError::Panic));
    }
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(PdfError::Timeout),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(PdfError::Panic),
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
        let at = good.windows(8).position(|w| w == b"3 0 obj\n").expect("page");
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
