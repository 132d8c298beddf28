//! The PDF extractor's own cost, next to poppler's `pdftotext` on the same PDFs (issue 22).
//! `pdftotext` runs as a process; its start is excluded by timing one run over a PDF of many
//! pages (the fixtures' pages, merged) against one run over a single fixture.

use pdf_extract::{Document, Object, dictionary};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Page entries a page may inherit from its parent node.
const INHERITED: [&[u8]; 4] = [b"Resources", b"MediaBox", b"CropBox", b"Rotate"];

/// One PDF with the pages of `copies` copies of each of `pdfs`, objects renumbered.
pub(crate) fn merged(pdfs: &[Vec<u8>], copies: usize) -> Vec<u8> {
    let mut out = Document::with_version("1.5");
    let mut next_id = 1;
    let mut kids = Vec::new();
    for _ in 0..copies {
        for pdf in pdfs {
            let mut doc = Document::load_mem(pdf).expect("fixture loads");
            doc.renumber_objects_with(next_id);
            next_id = doc.max_id + 1;
            for page in doc.get_pages().into_values() {
                // Take inherited entries along: the page gets a new parent.
                let parent = doc
                    .get_dictionary(page)
                    .and_then(|d| d.get(b"Parent"))
                    .and_then(Object::as_reference)
                    .ok();
                let inherited: Vec<(Vec<u8>, Object)> = parent
                    .and_then(|p| doc.get_dictionary(p).ok())
                    .map(|p| {
                        INHERITED
                            .iter()
                            .filter_map(|k| p.get(k).ok().map(|v| (k.to_vec(), v.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                if let Ok(d) = doc.get_dictionary_mut(page) {
                    for (k, v) in inherited {
                        if d.get(&k).is_err() {
                            d.set(k, v);
                        }
                    }
                }
                kids.push(page);
            }
            out.objects.extend(doc.objects);
        }
    }
    out.max_id = next_id;
    let pages_id = out.new_object_id();
    for k in &kids {
        if let Ok(d) = out.get_dictionary_mut(*k) {
            d.set("Parent", pages_id);
        }
    }
    let count = kids.len() as i64;
    let kids: Vec<Object> = kids.into_iter().map(Object::Reference).collect();
    out.objects.insert(
        pages_id,
        dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }.into(),
    );
    let catalog = out.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    out.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    out.save_to(&mut bytes).expect("merged PDF");
    bytes
}

/// Wall time of one `pdftotext FILE -` run (best of `runs`), or None without poppler-utils.
fn pdftotext(path: &Path, runs: usize) -> Option<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        let ok = Command::new("pdftotext")
            .arg(path)
            .arg("-")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
        best = best.min(t.elapsed());
    }
    Some(best)
}

/// Prints pdf-extract's time on the PDFs of the attachment mail (one call per file, as sluis
/// makes it) and on the merged PDF, and pdftotext's on the merged PDF less its start.
pub(crate) fn compare(
    pdfs: &[Vec<u8>],
    copies: usize,
    best: &mut dyn FnMut(&mut dyn FnMut()) -> Duration,
    pipeline: Duration,
) {
    let files = pdfs.len() * copies;
    let bytes: usize = pdfs.iter().map(Vec::len).sum::<usize>() * copies;
    let each = best(&mut || {
        for _ in 0..copies {
            for p in pdfs {
                std::hint::black_box(pdf_extract::extract_text_from_mem(p).expect("text"));
            }
        }
    });
    let big = merged(pdfs, copies);
    let whole = best(&mut || {
        std::hint::black_box(pdf_extract::extract_text_from_mem(&big).expect("text"));
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let (big_path, one_path) = (dir.path().join("merged.pdf"), dir.path().join("one.pdf"));
    std::fs::write(&big_path, &big).expect("write");
    std::fs::write(&one_path, &pdfs[0]).expect("write");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!(
        "PDF extraction, the {files} PDFs of the attachment mail ({bytes} bytes, one page each):"
    );
    println!("| extractor | best ms | ms per page |");
    println!("| --- | ---: | ---: |");
    println!(
        "| pdf-extract, one call per file (as sluis) | {:.2} | {:.3} |",
        ms(each),
        ms(each) / files as f64
    );
    println!(
        "| pdf-extract, the pages merged into one PDF | {:.2} | {:.3} |",
        ms(whole),
        ms(whole) / files as f64
    );
    match (pdftotext(&big_path, 5), pdftotext(&one_path, 9)) {
        (Some(b), Some(o)) => {
            let net = b.saturating_sub(o);
            println!(
                "| pdftotext (poppler), merged PDF, less one single-page run ({:.2} ms: process start) | {:.2} | {:.3} |",
                ms(o),
                ms(net),
                ms(net) / files as f64
            );
        }
        _ => println!("| pdftotext | not installed (Debian poppler-utils) | |"),
    }
    println!(
        "pdf-extract's own time is {:.0} % of the attachment mail's pipeline ({:.2} ms)",
        100.0 * each.as_secs_f64() / pipeline.as_secs_f64(),
        ms(pipeline)
    );
}
