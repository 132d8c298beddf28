//! Header fields as text to examine. An identifier in a custom field (`X-Patient-Id`) or in
//! `Thread-Topic` leaves with the mail unless something reads it; the subject is read apart
//! (its own origin, `subject`). Address, date and MIME fields are structured, not free text,
//! and fields that carry opaque tokens (signatures, Exchange's thread index) would only give
//! digit runs that look like numbers.

use mail_parser::{HeaderName, HeaderValue, Message, MessageParser};

/// Fields never read as text: trace, signatures, identifiers, MIME structure, sluis's own
/// controls (a password or phone number there is not the message's content).
const SKIPPED: &[&str] = &[
    "subject",
    "received",
    "return-path",
    "message-id",
    "in-reply-to",
    "references",
    "date",
    "mime-version",
    "dkim-signature",
    "domainkey-signature",
    "authentication-results",
    "received-spf",
    "thread-index",
    "autocrypt",
    "openpgp",
    "x-sluis-processed",
];

/// Prefixes of fields never read as text, for the same reasons.
const SKIPPED_PREFIXES: &[&str] = &[
    "content-",
    "arc-",
    "x-sluis-",
    "x-ms-",
    "x-microsoft-",
    "x-forefront-",
    "x-google-",
    "x-gm-",
    "list-",
];

fn skipped(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SKIPPED.contains(&lower.as_str()) || SKIPPED_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// The free-text header fields of `msg` as (origin, text): origin `header NAME`, the text
/// with the field's name in front, since a name such as `X-BSN` is the keyword that gives the
/// number beside it its meaning.
pub fn texts<'a>(msg: &'a Message<'_>) -> impl Iterator<Item = (String, String)> + 'a {
    msg.headers().iter().filter_map(|h| {
        let name = h.name();
        if skipped(name) {
            return None;
        }
        let text = match &h.value {
            HeaderValue::Text(t) if t.contains("=?") => decoded(name, t),
            HeaderValue::Text(t) => t.to_string(),
            HeaderValue::TextList(list) => list.join(", "),
            _ => return None,
        };
        Some((format!("header {name}"), format!("{name}: {text}")))
    })
}

/// A field that mail-parser keeps raw (any it does not know) with its RFC 2047 encoded words
/// decoded: an encoded word must not hide what it says.
fn decoded(name: &str, raw: &str) -> String {
    let field = format!("{name}: {raw}\r\n\r\n");
    MessageParser::new()
        .header_text(HeaderName::Other(name.to_string().into()))
        .parse_headers(field.as_bytes())
        .and_then(|m| {
            m.headers()
                .first()
                .and_then(|h| h.value.as_text().map(str::to_string))
        })
        .unwrap_or_else(|| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_fields_are_read_and_structure_is_not() {
        let raw = b"From: A <a@b.nl>\r\nTo: c@d.nl\r\nSubject: s\r\nX-Patient-Id: 111222333\r\n\
Thread-Topic: dossier =?utf-8?q?caf=C3=A9?=\r\nX-Sluis-Password: geheim123\r\n\
Thread-Index: AdQ1234567890\r\nContent-Type: text/plain\r\nKeywords: a, b\r\n\r\nbody\r\n";
        let msg = mail_parser::MessageParser::default()
            .parse(&raw[..])
            .unwrap();
        let got: Vec<(String, String)> = texts(&msg).collect();
        let names: Vec<&str> = got.iter().map(|(o, _)| o.as_str()).collect();
        assert_eq!(
            names,
            [
                "header X-Patient-Id",
                "header Thread-Topic",
                "header Keywords"
            ]
        );
        assert_eq!(got[0].1, "X-Patient-Id: 111222333");
        assert_eq!(got[1].1, "Thread-Topic: dossier café");
    }
}
