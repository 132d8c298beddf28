//! What of the original goes into the store: its attachments as files, and for a secure message
//! its body (text, HTML and inline images) as one small MIME message for the portal.

use crate::headers;
use crate::inspect::Decoded;
use crate::inspect::body::Parsed;
use crate::rewrite::content_type;
use mail_builder::MessageBuilder;
use mail_parser::{Message, MessagePart, MimeHeaders, PartType};
use std::borrow::Cow;

/// One attachment, decoded.
pub struct Attachment<'a> {
    pub name: String,
    pub content_type: String,
    pub data: Cow<'a, [u8]>,
    /// The same bytes, when inspection decoded them and they can be kept past the reply.
    pub shared: Option<std::sync::Arc<Vec<u8>>>,
}

/// A file name as shown and served: the last path component, no control or bidi-override
/// characters, at most 200 characters; `bijlage-N` when there is none.
pub fn file_name(raw: Option<&str>, n: usize) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .take(200)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim().to_string();
    if cleaned.is_empty() {
        format!("bijlage-{n}")
    } else {
        cleaned
    }
}

/// The attachments that become protected files, in message order: all but the parts that
/// stay `inline` (crate::protect::inline). A body that inspection decoded already (`known`, by
/// where it lies in the message) is not decoded again.
pub(crate) fn attachments<'a>(
    parsed: &'a Parsed<'a>,
    known: &'a [Decoded],
    inline: &[usize],
) -> Vec<Attachment<'a>> {
    let msg = &parsed.msg;
    let mut out = Vec::new();
    for &i in &msg.attachments {
        let Some(part) = msg.parts.get(i as usize) else {
            continue;
        };
        if inline.contains(&(i as usize)) {
            continue;
        }
        let n = out.len() + 1;
        let mut shared = None;
        let (data, ct): (Cow<'a, [u8]>, String) = match &part.body {
            PartType::Binary(_) | PartType::InlineBinary(_) => {
                let span = (part.offset_body as usize, part.offset_end as usize);
                let d = match known.iter().find(|k| k.span == span) {
                    Some(k) => {
                        shared = Some(k.bytes.clone());
                        Cow::Borrowed(k.bytes.as_slice())
                    }
                    None => match parsed.bytes(part) {
                        Some(d) => d,
                        None => continue,
                    },
                };
                (d, content_type(part))
            }
            // Text was decoded to UTF-8 from whatever charset it had; say so.
            PartType::Text(_) | PartType::Html(_) => {
                let Some(d) = parsed.bytes(part) else {
                    continue;
                };
                (d, format!("{}; charset=utf-8", content_type(part)))
            }
            PartType::Message(m) => (nested_raw(msg, part, m), "message/rfc822".into()),
            PartType::Multipart(_) => continue,
        };
        let mut name = file_name(part.attachment_name(), n);
        if part.attachment_name().is_none() && ct == "message/rfc822" {
            name = format!("bericht-{n}.eml");
        }
        out.push(Attachment {
            name,
            content_type: ct,
            data,
            shared,
        });
    }
    out
}

/// The bytes of an attached message: its slice of the outer message, or its own buffer when it
/// had a transfer encoding that mail-parser decoded.
fn nested_raw<'a>(
    outer: &'a Message<'a>,
    part: &MessagePart<'a>,
    inner: &'a Message<'a>,
) -> Cow<'a, [u8]> {
    let raw = outer.raw_message.as_ref();
    if std::ptr::eq(inner.raw_message.as_ptr(), raw.as_ptr()) {
        let (a, b) = (part.offset_body as usize, part.offset_end as usize);
        Cow::Borrowed(raw.get(a..b.min(raw.len())).unwrap_or_default())
    } else {
        Cow::Borrowed(inner.raw_message.as_ref())
    }
}

/// A secure message's readable part: the original's address and date fields, the tag-free
/// subject, and its text, HTML and the inline images that stay (no attachments: those are
/// files).
pub(crate) fn body_message<'a>(
    original: &[u8],
    parsed: &'a Parsed<'a>,
    subject: &str,
    inline: &[usize],
) -> std::io::Result<Vec<u8>> {
    let msg = &parsed.msg;
    let n = headers::block_len(original);
    let mut out = Vec::new();
    for f in headers::split_fields(&original[..n]) {
        if crate::rewrite::SECURE_FIELDS.contains(&f.name.to_ascii_lowercase().as_str()) {
            out.extend_from_slice(f.raw);
        }
    }
    out.extend_from_slice(
        format!(
            "Subject: {}\r\nMIME-Version: 1.0\r\n",
            headers::encode_word(subject)
        )
        .as_bytes(),
    );
    let mut b = MessageBuilder::new();
    b = b.text_body(parsed.text().unwrap_or_default());
    if let Some(h) = parsed.html() {
        b = b.html_body(h);
        for part in inline.iter().filter_map(|&i| msg.parts.get(i)) {
            if let (Some(cid), Some(d)) = (part.content_id(), parsed.bytes(part)) {
                b = b.inline(content_type(part), cid.to_string(), d.into_owned());
            }
        }
    }
    b.write_body(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    const MAIL: &[u8] = b"From: Jan <jan@zorg.nl>\r\nTo: a@b.nl\r\nSubject: [secure] Uitslag\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: multipart/related; boundary=\"b2\"\r\n\r\n\
--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Zie <img src=\"cid:logo@x\"> bijlage</p>\r\n\
--b2\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
--b2--\r\n\
--b1\r\nContent-Type: application/pdf; name=\"../../etc/u\xe2\x80\xaefdp.exe\"\r\n\
Content-Disposition: attachment; filename=\"../../etc/u\xe2\x80\xaefdp.exe\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n\
--b1\r\nContent-Type: text/csv; charset=iso-8859-1\r\nContent-Disposition: attachment; filename=lijst.csv\r\n\r\nnaam;caf\xe9\r\n\
--b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y\r\nSubject: fwd\r\n\r\ninner\r\n\
--b1--\r\n";

    #[test]
    fn attachments_become_files_inline_images_stay() {
        let m = Parsed::new(MAIL).unwrap();
        let keep = crate::protect::inline::kept(&m, &crate::testutil::decision_found_in(&[]));
        assert_eq!(keep.len(), 1, "the logo the HTML shows");
        let files = attachments(&m, &[], &keep);
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["ufdp.exe", "lijst.csv", "bericht-3.eml"]);
        assert_eq!(files[0].data.as_ref(), b"%PDF-1.4\n");
        assert_eq!(files[0].content_type, "application/pdf");
        assert_eq!(files[1].data.as_ref(), "naam;café".as_bytes());
        assert!(files[1].content_type.starts_with("text/csv"));
        assert!(files[2].data.starts_with(b"From: x@y"));
    }

    /// Protection reuses what inspection decoded, matched by position: the same files, the
    /// big body not decoded twice; with nothing kept, it decodes them itself.
    #[test]
    fn attachments_decoded_by_inspection_are_reused() {
        use base64::Engine;
        let mut next = crate::testutil::xorshift(9);
        let big: Vec<u8> = (0..300_000).map(|_| next() as u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&big);
        let mut mail = b"From: a@b\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"q\"\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nTekst\r\n\
--q\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
            .to_vec();
        for line in b64.as_bytes().chunks(76) {
            mail.extend_from_slice(line);
            mail.extend_from_slice(b"\r\n");
        }
        mail.extend_from_slice(b"--q\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=l.csv\r\n\r\nx;y\r\n--q--\r\n");
        let limits = crate::inspect::Limits {
            keep_decoded: usize::MAX,
            ..Default::default()
        };
        let insp = crate::inspect::inspect(&mail, &limits);
        assert_eq!(insp.decoded.len(), 1, "the binary body is kept");
        assert_eq!(*insp.decoded[0].bytes, big);
        let m = Parsed::new(&mail).unwrap();
        let reused = attachments(&m, &insp.decoded, &[]);
        let own = attachments(&m, &[], &[]);
        assert_eq!(reused.len(), 2);
        for (a, b) in reused.iter().zip(&own) {
            assert_eq!(
                (&a.name, &a.content_type, &a.data),
                (&b.name, &b.content_type, &b.data)
            );
        }
        assert_eq!(reused[0].data.as_ptr(), insp.decoded[0].bytes.as_ptr());
        // Nothing kept unless asked for.
        assert!(
            crate::inspect::inspect(&mail, &Default::default())
                .decoded
                .is_empty()
        );
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(
            file_name(Some("C:\\Users\\x\\rapport.pdf"), 1),
            "rapport.pdf"
        );
        assert_eq!(file_name(Some("a\r\nb.txt"), 1), "ab.txt");
        assert_eq!(file_name(Some("..."), 2), "bijlage-2");
        assert_eq!(file_name(None, 3), "bijlage-3");
        assert_eq!(file_name(Some(&"x".repeat(300)), 1).chars().count(), 200);
    }

    #[test]
    fn body_keeps_text_html_and_inline_images_only() {
        let m = Parsed::new(MAIL).unwrap();
        let keep = crate::protect::inline::kept(&m, &crate::testutil::decision_found_in(&[]));
        let b = body_message(MAIL, &m, "Uitslag", &keep).unwrap();
        let p = MessageParser::default().parse(&b).unwrap();
        assert_eq!(p.subject(), Some("Uitslag"));
        assert_eq!(
            p.from().unwrap().first().unwrap().address(),
            Some("jan@zorg.nl")
        );
        assert!(p.body_html(0).unwrap().contains("cid:logo@x"));
        assert_eq!(p.attachments.len(), 1, "only the inline image");
        assert!(!String::from_utf8_lossy(&b).contains("JVBERi0xLjQK"));
    }
}
