//! `transfer` and `body` against mail-parser: every part decoded here must come out exactly as
//! mail-parser's own decoding gives it (bytes, text or HTML, malformed or not).

use super::body::{self, Body, Mode};
use super::transfer::{self, Stop};
use mail_parser::{MessageParser, PartType};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a part came out as: kind, bytes, malformed.
type Got = (&'static str, Vec<u8>, bool);

fn kind_of(b: &Body<'_>) -> &'static str {
    match b {
        Body::Text(_) => "text",
        Body::Html(_) => "html",
        Body::Binary(_) => "binary",
        Body::Message(_) => "message",
        Body::Multipart => "multipart",
    }
}

/// mail-parser's own decoding, part by part; None when mail-parser panics (a debug build's
/// overflow check in its boundary handling) or finds no message.
fn reference(raw: &[u8]) -> Option<Vec<Got>> {
    catch_unwind(AssertUnwindSafe(|| {
        let msg = MessageParser::default().parse(raw)?;
        Some(
            msg.parts
                .iter()
                .map(|p| {
                    let kind = match &p.body {
                        PartType::Text(_) => "text",
                        PartType::Html(_) => "html",
                        PartType::Binary(_) | PartType::InlineBinary(_) => "binary",
                        PartType::Message(_) => "message",
                        PartType::Multipart(_) => "multipart",
                    };
                    (kind, p.contents().to_vec(), p.is_encoding_problem)
                })
                .collect(),
        )
    }))
    .ok()
    .flatten()
}

/// Decoding here, part by part, and the mode the message was parsed in; `cut` is the shortest
/// stretch the skeleton parse leaves out.
fn ours(raw: &[u8], cut: usize) -> Option<(Vec<Got>, Mode)> {
    let (msg, mode) = body::parse_cutting(raw, cut)?;
    let got = msg
        .parts
        .iter()
        .map(|p| {
            let (b, bad) = body::body(&msg, p, mode);
            (kind_of(&b), b.bytes().to_vec(), bad)
        })
        .collect();
    Some((got, mode))
}

fn same_as_mail_parser(raw: &[u8]) -> Option<Mode> {
    let want = reference(raw)?;
    let (got, mode) = ours(raw, usize::MAX / 4).expect("parses");
    assert_eq!(got, want, "message {:?}", String::from_utf8_lossy(raw));
    // Cutting even the shortest stretches must change nothing either.
    let (cut, cut_mode) = ours(raw, 1).expect("parses");
    assert_eq!(cut, want, "cut message {:?}", String::from_utf8_lossy(raw));
    assert_eq!(cut_mode, mode);
    Some(mode)
}

/// A multipart message with `body` as the one part (and a plain part after it).
fn multipart(ctype: &str, cte: &str, body: &[u8], delimiter_at_line_start: bool) -> Vec<u8> {
    let mut m = b"From: a@example.nl\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"b-1\"\r\n\r\n--b-1\r\n"
        .to_vec();
    m.extend_from_slice(
        format!("Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n").as_bytes(),
    );
    m.extend_from_slice(body);
    if delimiter_at_line_start {
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"--b-1\r\nContent-Type: text/plain\r\n\r\nna\r\n--b-1--\r\n");
    m
}

fn single(ctype: &str, cte: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.nl\r\nSubject: t\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

const CTYPES: &[&str] = &[
    "text/plain; charset=utf-8",
    "text/html; charset=\"iso-8859-1\"",
    "text/plain",
    "application/octet-stream",
    "application/pdf; name=a.pdf",
];

fn check_all(cte: &str, body: &[u8]) {
    for ct in CTYPES {
        for at_start in [true, false] {
            let m = multipart(ct, cte, body, at_start);
            if let Some(mode) = same_as_mail_parser(&m) {
                assert_eq!(mode, Mode::Raw, "decoded here: {m:?}");
            }
        }
        same_as_mail_parser(&single(ct, cte, body));
    }
}

#[test]
fn quoted_printable_cases() {
    let cases: &[&[u8]] = &[
        b"VERTROU=\r\nWELIJK",
        b"VERTROU=\nWELIJK bare LF soft break",
        b"caf=C3=A9 =E9t=E9 =3D =3d",
        b"=ZZ invalid escape, =AZ half, =A\r\nB across a break",
        b"trailing =",
        b"trailing =A",
        b"= \r\nwhitespace after the equals sign",
        b"= x",
        b"spaces at the end   \r\nnext\t \r\n",
        b"only LF\nlines\n",
        b"CR\ronly",
        b"double == equals",
        b"=\r\n",
        b"-- dashes - -- --b-2 ---b-1x",
        b"",
        b"\r\n",
        b"=20\r\n=09 \r\n",
        b"ends with a soft break=\r\n",
        b"line\r\n\r\n",
        b"\xff\xfe raw high bytes \xc3\xa9",
    ];
    for c in cases {
        check_all("quoted-printable", c);
        check_all("Quoted-Printable ", c);
    }
}

#[test]
fn base64_cases() {
    let cases: &[&[u8]] = &[
        b"VkVSVFJPVVdFTElKSw==",
        b"VkVS\r\nVFJP VVdF\tTElK\r\nSw==\r\n",
        b"VkVSVA=VkVS",
        b"VkVSV=",
        b"VkV=",
        b"V=",
        b"garbage!VkVS",
        b"VkVS-VkVS",
        b"VkVS--x",
        b"",
        b"w6k=\r\n",
        b"\xc3\xa9",
    ];
    for c in cases {
        check_all("base64", c);
        check_all("BASE64", c);
    }
}

#[test]
fn random_bodies_agree() {
    let alphabet: &[&[u8]] = &[
        b"=",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b"\t",
        b"A",
        b"f",
        b"3",
        b"g",
        b"-",
        b"--",
        b"+",
        b"/",
        b"Q",
        b"=\r\n",
        b"=3D",
        b"\xc3\xa9",
        b"==",
        b"--b-1",
        b"\x0c",
    ];
    let mut next = crate::testutil::xorshift(0x2545_F491_4F6C_DD1Du64);
    for round in 0..3000 {
        let mut body = Vec::new();
        for _ in 0..next() % 40 {
            body.extend_from_slice(alphabet[(next() % alphabet.len() as u64) as usize]);
        }
        let cte = if round % 2 == 0 {
            "quoted-printable"
        } else {
            "base64"
        };
        let ct = CTYPES[(next() % CTYPES.len() as u64) as usize];
        same_as_mail_parser(&multipart(ct, cte, &body, next().is_multiple_of(2)));
        same_as_mail_parser(&single(ct, cte, &body));
    }
}

#[test]
fn encoded_attached_message_is_parsed_the_ordinary_way() {
    let inner = b"Subject: binnen\r\n\r\nVERTROUWELIJK\r\n";
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, inner);
    let m = multipart("message/rfc822", "base64", b64.as_bytes(), true);
    assert_eq!(same_as_mail_parser(&m), Some(Mode::Decoded));
    let plain = multipart("message/rfc822", "7bit", inner, true);
    assert_eq!(same_as_mail_parser(&plain), Some(Mode::Raw));
}

#[test]
fn stops() {
    assert_eq!(transfer::stop_of(b"ab", 0, 2), Some(Stop::End));
    assert_eq!(
        transfer::stop_of(b"ab\r\n--x", 0, 2),
        Some(Stop::Boundary(4))
    );
    assert_eq!(transfer::stop_of(b"ab\n--x", 0, 2), Some(Stop::Boundary(3)));
    assert_eq!(transfer::stop_of(b"ab--x", 0, 2), Some(Stop::Boundary(2)));
    assert_eq!(transfer::stop_of(b"abcd", 0, 2), None);
    assert_eq!(
        transfer::quoted_printable(b"a=\nb=ZZ=", 0, Stop::End),
        Ok(b"ab=ZZ".to_vec())
    );
    assert!(transfer::quoted_printable(b"a==b", 0, Stop::End).is_err());
    assert!(transfer::base64(b"QU*J", 0, Stop::End).is_err());
}

/// Long base64 bodies, mostly whole lines (the decoder's fast path), with a few bytes changed
/// into padding, line breaks, dashes or invalid bytes at random places.
#[test]
fn long_base64_bodies_agree() {
    use base64::Engine;
    let mut next = crate::testutil::xorshift(0x9E37_79B9_7F4A_7C15u64);
    for round in 0..400 {
        let len = (next() % 3000) as usize;
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let mut body = base64::engine::general_purpose::STANDARD
            .encode(&data)
            .into_bytes()
            .chunks(if round % 3 == 0 {
                76
            } else {
                1 + (next() % 90) as usize
            })
            .flat_map(|l| [l, if round % 2 == 0 { b"\r\n" } else { b"\n" }].concat())
            .collect::<Vec<u8>>();
        for _ in 0..(next() % 4) {
            if body.is_empty() {
                break;
            }
            let at = (next() % body.len() as u64) as usize;
            body[at] = [b'=', b'\n', b' ', b'-', b'*', b'A'][(next() % 6) as usize];
        }
        let ct = CTYPES[(next() % CTYPES.len() as u64) as usize];
        same_as_mail_parser(&multipart(ct, "base64", &body, next().is_multiple_of(2)));
        same_as_mail_parser(&single(ct, "base64", &body));
    }
}

/// Large encoded parts are parsed from a skeleton (the cut actually happens), with the same
/// parts as mail-parser gives for the whole message: attachments, a quoted-printable text
/// with lone dashes and a near-boundary in it, nested multiparts, LF-only lines.
#[test]
fn skeleton_parse_of_large_parts() {
    use base64::Engine;
    let data: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let lines = |nl: &str| -> String {
        b64.as_bytes()
            .chunks(76)
            .map(|l| format!("{}{nl}", std::str::from_utf8(l).unwrap()))
            .collect()
    };
    let prose = "Het dossier - zie bijlage - is VERTROU=\r\nWELIJK; caf=C3=A9 --b-1x niet.\r\n"
        .repeat(2000);
    for nl in ["\r\n", "\n"] {
        let m = format!(
            "From: a@example.nl\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b-1\"\r\n\r\npreamble\r\n--b-1\r\n\
             Content-Type: multipart/alternative; boundary=\"b-2\"\r\n\r\n--b-2\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n{prose}--b-2--\r\n--b-1\r\n\
             Content-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"x.bin\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}--b-1\r\n\
             Content-Type: text/plain\r\n\r\nslot\r\n--b-1--\r\n",
            lines(nl)
        );
        let raw = m.as_bytes();
        assert!(super::skeleton::parse(raw, super::skeleton::MIN_CUT).is_some());
        assert_eq!(same_as_mail_parser(raw), Some(Mode::Raw));
        let (got, _) = ours(raw, super::skeleton::MIN_CUT).unwrap();
        assert!(got.iter().any(|g| g.1 == data), "attachment decoded whole");
    }
    // A large part without a transfer encoding is not cut: the whole message is parsed.
    let plain = format!(
        "Subject: t\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n{}--b--\r\n",
        lines("\r\n")
    );
    assert!(super::skeleton::parse(plain.as_bytes(), super::skeleton::MIN_CUT).is_none());
    same_as_mail_parser(plain.as_bytes());
}
