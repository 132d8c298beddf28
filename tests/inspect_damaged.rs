//! Damaged attachments end to end (issue 22), with the shipped default policy: a PDF that the
//! extractor reads only in part, and one on which it panics, never leave in clear for an
//! external recipient; `sluis explain` names the file and the reason; a burst of such mail
//! does not take the gateway down.

mod common;

use common::docs::{mail_with_attachment, simple_pdf};
use common::protect::copy_dir;
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(30);

/// sluis with the shipped default policy and org.test as internal domain.
fn start(cap: &Capture) -> (Sluis, PathBuf) {
    let mut s = Sluis::prepare(
        Config::new(&cap.next_hop())
            .set("organisation", "internal_domains", "[\"org.test\"]")
            .set("organisation", "name", "\"Testorganisatie\"")
            .set("policy", "dir", "\"policies\""),
    );
    let dir = s.dir.path().join("policies");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &dir,
    );
    s.spawn();
    (s, dir)
}

/// The PDF from the issue: its page object damaged, the content stream intact.
fn damaged_pdf() -> Vec<u8> {
    let mut pdf = simple_pdf("Burgerservicenummer 111222333", true);
    let at = pdf
        .windows(8)
        .position(|w| w == b"3 0 obj\n")
        .expect("page object");
    pdf[at + 4..at + 7].copy_from_slice(b"oXj");
    pdf
}

fn b64_start(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(&data[..57])
}

#[test]
fn explain_names_the_damaged_file_and_why() {
    let cap = Capture::start();
    let (sluis, _) = start(&cap);
    let eml = sluis.dir.path().join("m.eml");
    let msg = mail_with_attachment("patient@gmail.test", "uitslag", "scan.pdf", &damaged_pdf());
    std::fs::write(&eml, &msg).unwrap();
    let out = sluis.cli(&["explain", eml.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(
            "unscannable: attachment scan.pdf: damaged PDF: object 3 0 could not be loaded"
        ),
        "{text}"
    );
    // The raw bytes still show the number: found there, masked.
    assert!(
        text.contains(
            "finding:    burgerservicenummer (BSN) [bsn] in attachment scan.pdf (raw bytes)"
        ),
        "{text}"
    );
    assert!(!text.contains("111222333"), "{text}");
    assert!(
        text.contains("decision:   protect: secure message"),
        "{text}"
    );

    // A PDF the extractor panics on: unscannable, said so, and still protected.
    let crash = simple_pdf("Tot morgen", false);
    std::fs::write(
        &eml,
        mail_with_attachment("patient@gmail.test", "groet", "groet.pdf", &crash),
    )
    .unwrap();
    let out = sluis.cli(&["explain", eml.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("unscannable: attachment groet.pdf: PDF parser crashed"),
        "{text}"
    );
    assert!(
        text.contains("decision:   protect: secure message"),
        "{text}"
    );
}

#[test]
fn damaged_and_crashing_pdfs_never_leave_in_clear_and_the_gateway_stays_up() {
    let cap = Capture::start();
    let (sluis, _) = start(&cap);
    let damaged = damaged_pdf();
    let crash = simple_pdf("Tot morgen", false);
    let cases: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            let tag = unique(&format!("kapot{i}"));
            let (name, data) = if i % 3 == 0 {
                ("scan.pdf", &damaged)
            } else {
                ("groet.pdf", &crash)
            };
            let mut msg = mail_with_attachment("patient@gmail.test", &tag, name, data);
            if i % 3 == 2 {
                // Over 256 KiB: inspected on the inspection workers, not inline.
                let end = msg.len() - b"--grens--\r\n".len();
                let filler = "Tot ziens, tot morgen.\r\n".repeat(14_000);
                msg.splice(
                    end..end,
                    format!("--grens\r\nContent-Type: text/plain\r\n\r\n{filler}\r\n").into_bytes(),
                );
            }
            (tag, msg)
        })
        .collect();
    // A burst: all at once, over separate sessions.
    let sessions: Vec<_> = cases.iter().map(|_| sluis.session()).collect();
    std::thread::scope(|s| {
        for ((_, msg), mut smtp) in cases.iter().zip(sessions) {
            s.spawn(move || {
                smtp.send_mail("arts@org.test", &["patient@gmail.test"], msg);
            });
        }
    });
    for (i, (tag, _)) in cases.iter().enumerate() {
        let m = cap.wait_for_containing(tag, ARRIVAL);
        let pdf = if i % 3 == 0 { &damaged } else { &crash };
        assert!(
            !contains(&m.data, &b64_start(pdf)),
            "{tag}: the PDF left unprotected"
        );
        assert!(m.text().contains("/l/"), "{tag}: {}", m.text());
    }
    // Still up, and still relaying ordinary mail.
    let tag = unique("daarna");
    sluis.session().send_mail(
        "arts@org.test",
        &["collega@org.test"],
        &message(&tag, "Gewoon een bericht.\r\n"),
    );
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert!(contains(&m.data, "Gewoon een bericht."));
}
