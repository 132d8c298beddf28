//! Whole-message tests: every evasion, every attachment kind (fixtures made by LibreOffice),
//! bounds and unscannable content.

use std::io::Write;

use base64::Engine;

use super::{Inspection, Limits, inspect};

pub(super) fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/tests/fixtures/inspect/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

pub(super) fn b64(data: &[u8]) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(data);
    s.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A message with a plain body and the given attachments (name, content type, bytes).
pub(super) fn with_attachments(files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut m = String::from(
        "From: a@example.nl\r\nTo: b@example.com\r\nSubject: stukken\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"BND\"\r\n\r\n--BND\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nZie bijlage.\r\n",
    );
    for (name, ct, data) in files {
        m.push_str(&format!(
            "--BND\r\nContent-Type: {ct}; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{}\r\n",
            b64(data)
        ));
    }
    m.push_str("--BND--\r\n");
    m.into_bytes()
}

fn simple(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.nl\r\nTo: b@example.com\r\nSubject: test\r\nMIME-Version: 1.0\r\n{headers}\r\n"
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

pub(super) fn text_of(i: &Inspection, origin: &str) -> String {
    i.texts
        .iter()
        .filter(|t| t.origin == origin)
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn all_text(i: &Inspection) -> String {
    i.texts
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

pub(super) fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    for (name, data) in entries {
        w.start_file(*name, opts).expect("start");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

#[test]
fn evasions_all_found() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "qp soft break",
            simple(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
                b"Dit is VERTROU=\r\nWELIJK.\r\n",
            ),
        ),
        (
            "base64 body",
            simple(
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
                b64(b"Dit is VERTROUWELIJK.").as_bytes(),
            ),
        ),
        (
            "html entity",
            simple(
                "Content-Type: text/html; charset=utf-8\r\n",
                b"<p>&#86;ERTROUWELIJK</p>",
            ),
        ),
        (
            "html span",
            simple(
                "Content-Type: text/html\r\n",
                b"<p>V<span></span>ERTROUWELIJK</p>",
            ),
        ),
        (
            "html comment",
            simple(
                "Content-Type: text/html\r\n",
                b"<p>VER<!-- x -->TROUWELIJK</p>",
            ),
        ),
        (
            "zero width",
            simple(
                "Content-Type: text/plain; charset=utf-8\r\n",
                "V\u{200B}ERTROUWELIJK".as_bytes(),
            ),
        ),
        (
            "fullwidth",
            simple(
                "Content-Type: text/plain; charset=utf-8\r\n",
                "ＶＥＲＴＲＯＵＷＥＬＩＪＫ".as_bytes(),
            ),
        ),
        (
            "soft hyphen",
            simple(
                "Content-Type: text/plain; charset=utf-8\r\n",
                "vertrou\u{00AD}welijk".as_bytes(),
            ),
        ),
        (
            "diacritics",
            simple(
                "Content-Type: text/plain; charset=utf-8\r\n",
                "vertrouwélijk".as_bytes(),
            ),
        ),
        (
            "qp html entity",
            simple(
                "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
                b"<div>&#86;ER<span style=3D\"x\">TROU</span>=\r\nWELIJK</div>",
            ),
        ),
    ];
    for (label, msg) in cases {
        let i = inspect(&msg, &Limits::default());
        let body = text_of(&i, "body");
        assert!(body.contains("vertrouwelijk"), "{label}: {body:?}");
        assert!(i.unscannable.is_empty(), "{label}: {:?}", i.unscannable);
    }
}

#[test]
fn control_message_has_no_trigger() {
    let i = inspect(
        &simple("Content-Type: text/plain\r\n", b"Gewoon een bericht."),
        &Limits::default(),
    );
    assert!(!all_text(&i).contains("vertrouwelijk"));
    assert_eq!(text_of(&i, "body"), "gewoon een bericht.");
}

#[test]
fn subject_encoded_word() {
    let msg = b"From: a@example.nl\r\nSubject: =?UTF-8?B?VmVydHJvdXfDqWxpams=?= =?ISO-8859-1?Q?dossier_=E9?=\r\n\r\nhoi\r\n";
    let i = inspect(msg, &Limits::default());
    assert_eq!(i.subject, "Vertrouwélijkdossier é");
    assert_eq!(text_of(&i, "subject"), "vertrouwelijkdossier e");
}

#[test]
fn charsets_utf16_and_legacy() {
    let utf16: Vec<u8> = "vertrouwélijk"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let i = inspect(
        &simple(
            "Content-Type: text/plain; charset=utf-16le\r\nContent-Transfer-Encoding: base64\r\n",
            b64(&utf16).as_bytes(),
        ),
        &Limits::default(),
    );
    assert_eq!(text_of(&i, "body"), "vertrouwelijk");
    let i = inspect(
        &simple(
            "Content-Type: text/plain; charset=windows-1252\r\n",
            b"vertrouw\xe9lijk \x80 5",
        ),
        &Limits::default(),
    );
    assert_eq!(text_of(&i, "body"), "vertrouwelijk \u{20ac} 5");
    let i = inspect(
        &simple(
            "Content-Type: text/plain; charset=iso-8859-15\r\n",
            b"\xa4 gez\xe9gd",
        ),
        &Limits::default(),
    );
    assert_eq!(text_of(&i, "body"), "\u{20ac} gezegd");
}

#[test]
fn rfc2231_file_name_and_sizes() {
    let msg = b"From: a@example.nl\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhoi\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''vertrouw%C3%A9lijk%20stuk.txt\r\nContent-Transfer-Encoding: base64\r\n\r\nQlNOIDExMTIyMjMzMw==\r\n--b--\r\n";
    let i = inspect(msg, &Limits::default());
    assert_eq!(i.attachments.len(), 1, "{:?}", i.attachments);
    let a = &i.attachments[0];
    assert_eq!(a.name, "vertrouwélijk stuk.txt");
    assert_eq!(a.size, 13);
    assert_eq!(a.origin, "attachment vertrouwélijk stuk.txt");
    assert_eq!(
        text_of(&i, "attachment vertrouwélijk stuk.txt"),
        "bsn 111222333"
    );
}

#[test]
fn multipart_alternative_both_parts() {
    let msg = b"From: a@example.nl\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplat geheim\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html <b>ander</b>woord</p>\r\n--b--\r\n";
    let i = inspect(msg, &Limits::default());
    assert_eq!(text_of(&i, "body"), "plat geheim");
    assert_eq!(text_of(&i, "body 2"), "html anderwoord");
    assert!(i.attachments.is_empty());
}

#[test]
fn nested_message_recursed() {
    let inner = with_attachments(&[("scan.pdf", "application/pdf", &fixture("vertrouwelijk.pdf"))]);
    let mut msg = b"From: a@example.nl\r\nSubject: fwd\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\nContent-Type: text/plain\r\n\r\nDoorgestuurd.\r\n--outer\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=fwd.eml\r\n\r\n".to_vec();
    msg.extend_from_slice(&inner);
    msg.extend_from_slice(b"\r\n--outer--\r\n");
    let i = inspect(&msg, &Limits::default());
    let pdf = text_of(&i, "attachment fwd.eml / attachment scan.pdf");
    assert!(
        pdf.contains("vertrouwelijk") && pdf.contains("111222333"),
        "{:?}",
        i.texts
    );
    assert_eq!(text_of(&i, "attachment fwd.eml / subject"), "stukken");
    assert!(
        i.attachments
            .iter()
            .any(|a| a.origin == "attachment fwd.eml")
    );
    assert!(i.attachments.iter().any(|a| a.name == "scan.pdf"));
    assert!(i.unscannable.is_empty(), "{:?}", i.unscannable);
}

#[test]
fn libreoffice_fixtures() {
    for (name, ct) in [
        (
            "vertrouwelijk.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            "vertrouwelijk.odt",
            "application/vnd.oasis.opendocument.text",
        ),
        ("vertrouwelijk.pdf", "application/pdf"),
        ("vertrouwelijk.rtf", "application/rtf"),
        ("vertrouwelijk.xlsx", "application/octet-stream"),
        (
            "vertrouwelijk.ods",
            "application/vnd.oasis.opendocument.spreadsheet",
        ),
        ("vertrouwelijk.pptx", "application/octet-stream"),
        (
            "vertrouwelijk.odp",
            "application/vnd.oasis.opendocument.presentation",
        ),
        ("vertrouwelijk.csv", "text/csv"),
    ] {
        let i = inspect(
            &with_attachments(&[(name, ct, &fixture(name))]),
            &Limits::default(),
        );
        let t = text_of(&i, &format!("attachment {name}"));
        assert!(t.contains("vertrouwelijk"), "{name}: {t:?}");
        assert!(t.contains("111222333"), "{name}: {t:?}");
        assert!(i.unscannable.is_empty(), "{name}: {:?}", i.unscannable);
        assert_eq!(i.attachments[0].size, fixture(name).len() as u64);
    }
    for name in ["medisch.docx", "medisch.pdf"] {
        let i = inspect(
            &with_attachments(&[(name, "application/octet-stream", &fixture(name))]),
            &Limits::default(),
        );
        assert!(
            text_of(&i, &format!("attachment {name}")).contains("medisch dossier"),
            "{name}"
        );
    }
}

#[test]
fn zip_and_gzip_recursive() {
    let docx = fixture("vertrouwelijk.docx");
    let inner = zip_of(&[("brief.docx", &docx), ("notitie.txt", b"medisch dossier")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"geheim VERTROUWELIJK").expect("gz");
    let gz = gz.finish().expect("gz");
    let outer = zip_of(&[("map/binnen.zip", &inner), ("log.txt.gz", &gz)]);
    let i = inspect(
        &with_attachments(&[("stukken.zip", "application/zip", &outer)]),
        &Limits::default(),
    );
    let brief = text_of(&i, "attachment stukken.zip / map/binnen.zip / brief.docx");
    assert!(
        brief.contains("vertrouwelijk") && brief.contains("111222333"),
        "{:?}",
        i.texts
    );
    assert_eq!(
        text_of(&i, "attachment stukken.zip / map/binnen.zip / notitie.txt"),
        "medisch dossier"
    );
    assert_eq!(
        text_of(&i, "attachment stukken.zip / log.txt.gz"),
        "geheim vertrouwelijk"
    );
    assert!(i.unscannable.is_empty(), "{:?}", i.unscannable);
}
