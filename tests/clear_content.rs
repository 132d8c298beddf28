//! Content that must not leave in clear (issue 15, items 2 and 3), against the real binary with
//! a capturing next hop: only what an HTML body needs stays inline when files are protected; a
//! finding in the subject, `Thread-Topic` or a custom header of a secure message does not
//! travel in the header.

mod common;

use base64::Engine;
use common::protect::*;
use common::*;
use std::collections::HashSet;

const BSN: &str = "111222333";

/// A part's bytes with what the test calls it.
type Named = (&'static str, Vec<u8>);

/// [secure files] with an HTML body and parts of every kind: only the small raster image the
/// HTML shows, with nothing found in it, stays in the mail; everything else becomes a file.
#[test]
fn only_inline_images_the_html_needs_stay_in_the_mail() {
    let cap = Capture::start();
    let mut sluis = start(&cap);
    let u = unique("");
    let (mail, logo, others) = related_mail(&u);
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["piet@extern.test"],
        mail.as_bytes(),
    );
    let m = cap.wait_for(1, ARRIVAL).remove(0);
    let t = m.text();
    assert!(t.contains("Download bestanden"), "files protection:\n{t}");
    let parsed = mail_parser::MessageParser::default()
        .parse(&m.data)
        .unwrap();
    let inline: Vec<Vec<u8>> = parsed
        .attachments()
        .map(|a| a.contents().to_vec())
        .collect();
    assert_eq!(inline, vec![logo.clone()], "only the logo stays");
    for (what, data) in &others {
        let n = data.len().min(48) / 3 * 3;
        assert!(!t.contains(&b64(&data[..n])), "{what} left in the mail");
    }
    assert!(!t.contains(&format!("SCAN{u}")));
    // The four others are the protected files (the link block lists them).
    let files = t.matches("  - ").count();
    assert!(files >= 4, "four files listed:\n{t}");
    assert!(t.contains("scan.txt"), "{t}");
    sluis.terminate(std::time::Duration::from_secs(20));
    let store = open_store(&sluis.data_dir);
    let token = link_token(&m);
    let (mid, _) = store.meta.link_for_token(&token).unwrap().unwrap();
    let (msg, dek) = store.meta.get_message(mid).unwrap().unwrap();
    let mut stored: Vec<Vec<u8>> = msg
        .files
        .iter()
        .map(|f| read_blob(&store, &f.blob, &dek))
        .collect();
    stored.sort();
    let mut want: Vec<Vec<u8>> = others.into_iter().map(|(_, d)| d).collect();
    want.sort();
    assert_eq!(stored, want, "the other parts unseal from the store");
}

/// A `[secure files]` HTML mail with a logo the HTML shows and four parts that must become
/// files: an inline ZIP it links to, an image nothing refers to, a PNG (by its bytes) named
/// `.txt` in which inspection finds HR words, a document with a Content-ID. Returns the mail,
/// the logo and the four others.
fn related_mail(u: &str) -> (String, Vec<u8>, Vec<Named>) {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let wrapped = |d: &[u8]| {
        let b = b64(d);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        lines.join("\r\n")
    };
    let png = |tag: &str| {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        v.extend_from_slice(tag.as_bytes());
        v
    };
    let logo = png(&format!("LOGO{u}"));
    let unused = png(&format!("UNUSED{u}"));
    // A PNG by its bytes, but named .txt: inspection reads it as text and finds HR words.
    let mut scan = png("");
    scan.extend_from_slice(format!(" functioneringsgesprek SCAN{u} ").as_bytes());
    let zip = {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("lees.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(format!("ZIPINLINE{u}").as_bytes()).unwrap();
        w.finish().unwrap().into_inner()
    };
    // A document with a Content-ID (bytes inspection has no text for).
    let doc = noise(3000, 7);
    let part = |ct: &str, cid: &str, extra: &str, data: &[u8]| {
        format!(
            "--rel\r\nContent-Type: {ct}\r\nContent-ID: <{cid}>\r\n{extra}\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            wrapped(data)
        )
    };
    let mail = format!(
        "From: Anna Arts <arts@org.test>\r\nTo: piet@extern.test\r\nSubject: [secure files] Stukken {u}\r\n\
         Message-ID: <p{u}@org.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
         --rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><body><p>Zie de stukken{u}.</p><img src=\"cid:logo@x\"><a href=\"cid:zip@x\">zip</a>\
         <img src=\"cid:scan@x\"><a href=\"cid:doc@x\">doc</a></body></html>\r\n{}{}{}{}{}--rel--\r\n",
        part(
            "image/png",
            "logo@x",
            "Content-Disposition: inline\r\n",
            &logo
        ),
        part(
            "application/zip",
            "zip@x",
            "Content-Disposition: inline\r\n",
            &zip
        ),
        part("image/png", "unused@x", "", &unused),
        part(
            "image/png; name=scan.txt",
            "scan@x",
            "Content-Disposition: inline; filename=scan.txt\r\n",
            &scan
        ),
        part("application/octet-stream", "doc@x", "", &doc),
    );
    (
        mail,
        logo,
        vec![
            ("zip", zip),
            ("unused", unused),
            ("scan", scan),
            ("doc", doc),
        ],
    )
}

/// A BSN in the subject, in `Thread-Topic` and in a custom header of what becomes a secure
/// message: none of them reaches the next hop; the subject there is the neutral one.
#[test]
fn a_finding_in_the_subject_or_a_custom_header_does_not_travel() {
    let cap = Capture::start();
    let sluis = start(&cap);
    let u = unique("");
    let mut seen = HashSet::new();
    for (i, (subject, body)) in [
        (
            format!("Dossier {u} BSN {BSN}"),
            "Zie het dossier.".to_string(),
        ),
        (format!("Dossier {u}"), format!("Het BSN is {BSN}.")),
    ]
    .iter()
    .enumerate()
    {
        let mail = format!(
            "From: Anna Arts <arts@org.test>\r\nTo: piet@extern.test\r\nSubject: {subject}\r\n\
             Thread-Topic: {subject}\r\nThread-Index: AQHZ{u}\r\nX-Patient-Id: {BSN}\r\n\
             X-Dossier: 987654321-{u}\r\nMessage-ID: <s{i}{u}@org.test>\r\n\
             In-Reply-To: <prev{u}@extern.test>\r\nReferences: <prev{u}@extern.test>\r\n\
             Date: Fri, 4 Dec 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        );
        let m = send_and_catch(
            &sluis,
            &cap,
            &mut seen,
            &["piet@extern.test"],
            mail.as_bytes(),
        );
        let t = m.text();
        let head = header_block(&m.data);
        for gone in [
            BSN,
            "987654321",
            "Thread-Topic",
            "Thread-Index",
            "X-Patient-Id",
            "X-Dossier",
        ] {
            assert!(!t.contains(gone), "{gone} reached the next hop:\n{t}");
        }
        assert!(t.contains("beveiligd bericht"), "{t}");
        for kept in [
            format!("Message-ID: <s{i}{u}@org.test>"),
            format!("In-Reply-To: <prev{u}@extern.test>"),
            "To: piet@extern.test".to_string(),
        ] {
            assert!(head.contains(&kept), "{kept} missing:\n{head}");
        }
        let parsed = mail_parser::MessageParser::default()
            .parse(&m.data)
            .unwrap();
        let subject_out = parsed.subject().unwrap_or_default().to_string();
        if i == 0 {
            assert_eq!(
                subject_out, "Beveiligd bericht van Testorganisatie",
                "{head}"
            );
        } else {
            assert_eq!(
                subject_out,
                format!("Dossier {u}"),
                "no finding there: kept"
            );
        }
    }
}

/// A finding only in a header field (the subject and the body say nothing) makes the mail a
/// secure message, so the field cannot leave; without it the same mail goes as written.
#[test]
fn a_finding_only_in_a_header_field_protects_the_mail() {
    let cap = Capture::start();
    let sluis = start(&cap);
    let u = unique("");
    let mut seen = HashSet::new();
    for (i, field) in [
        format!("X-Patient: BSN {BSN}"),
        format!("Thread-Topic: dossier burgerservicenummer {BSN}"),
        format!("Keywords: =?utf-8?q?bsn_{BSN}?="),
        "X-Patient: opgeschoond".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let mail = format!(
            "From: Anna Arts <arts@org.test>\r\nTo: piet@extern.test\r\nSubject: Afspraak {u}\r\n\
             {field}\r\nMessage-ID: <h{i}{u}@org.test>\r\nDate: Fri, 4 Dec 2026 10:00:00 +0100\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             Tot dinsdag.\r\n"
        );
        let m = send_and_catch(
            &sluis,
            &cap,
            &mut seen,
            &["piet@extern.test"],
            mail.as_bytes(),
        );
        let t = m.text();
        if i < 3 {
            assert!(
                !t.contains(BSN),
                "{field}: the BSN reached the next hop:\n{t}"
            );
            assert!(
                t.contains("beveiligd bericht"),
                "{field}: not protected:\n{t}"
            );
        } else {
            assert!(
                t.contains(field.as_str()) && t.contains("Tot dinsdag."),
                "{t}"
            );
        }
    }
}
