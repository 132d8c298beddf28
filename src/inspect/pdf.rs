//! PDF text via pdf-extract, on its own thread under `catch_unwind` and a time bound
//! (pdf-extract panics on some inputs).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

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

fn run(data: &[u8]) -> Result<String, PdfError> {
    let mut doc = match pdf_extract::Document::load_mem(data) {
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
    // A scanned document is an image: what it says is unknown, so it is not "clean".
    if s.trim().is_empty() && !doc.get_pages().is_empty() {
        return Err(PdfError::NoText);
    }
    Ok(s)
}

/// Extracts the text of a PDF within `timeout`. On timeout the worker thread is left to finish
/// on its own (Rust threads cannot be killed); its result is dropped.
pub(crate) fn extract(data: &[u8], timeout: Duration) -> Result<String, PdfError> {
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
            &extract(&fixture("vertrouwelijk.pdf"), Duration::from_secs(20)).expect("pdf"),
        );
        assert!(t.contains("vertrouwelijk"), "{t}");
        assert!(t.contains("111222333"), "{t}");
        let t = normalize(&extract(&fixture("medisch.pdf"), Duration::from_secs(20)).expect("pdf"));
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
        // Must come back (no hang, no crash); text may or may not be recoverable.
        assert_ne!(
            extract(&data, Duration::from_secs(20)),
            Err(PdfError::Timeout)
        );
    }

    /// A one-page PDF whose page draws nothing: what a scan looks like to a text extractor.
    fn blank_page_pdf() -> Vec<u8> {
        let objs = [
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R /Resources << >> >>",
            "<< /Length 0 >>\nstream\n\nendstream",
        ];
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

    #[test]
    fn pdf_without_text_layer_is_unscannable() {
        assert_eq!(
            extract(&blank_page_pdf(), Duration::from_secs(10)),
            Err(PdfError::NoText)
        );
    }
}
