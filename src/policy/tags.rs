//! The sender's own choices: subject tags (`[beveiligd]`, `[secure files]`, `[sms]` ...) and
//! `X-Sluis-*` headers from client add-ins. Both are removed before the mail leaves.

use super::schema::{Protection, TagWords};
use crate::headers;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderChoice {
    pub protection: Option<Protection>,
    pub sms: bool,
    pub unsecure: bool,
    pub upload: bool,
    /// The tags as written, for the audit trail.
    pub tags: Vec<String>,
    /// `X-Sluis-*` headers (lowercased name without the prefix) and their values.
    pub controls: BTreeMap<String, String>,
}

impl SenderChoice {
    /// The least protection the sender's choices ask for, read strictly: a level from a tag
    /// or `X-Sluis-Mode`, raised to secure files when they also ask for authentication
    /// (`[sms]`, `X-Sluis-Auth: sms`, `X-Sluis-Phone`, `X-Sluis-Password`: public files have
    /// none); authentication or a stored-message setting (`X-Sluis-Expires`,
    /// `X-Sluis-Max-Downloads`) alone asks for secure files. None: no protection asked.
    pub fn requested(&self) -> Option<Protection> {
        // `X-Sluis-Auth: password` names the default, which asks for nothing by itself.
        let auth = self.sms || self.controls.contains_key("password");
        let stored = ["expires", "max-downloads"]
            .iter()
            .any(|k| self.controls.contains_key(*k));
        match self.protection {
            Some(p) if auth => Some(p.max(Protection::SecureFiles)),
            Some(p) => Some(p),
            None if auth || stored => Some(Protection::SecureFiles),
            None => None,
        }
    }

    /// An opt-out counts only when nothing asks for protection: `[onbeveiligd] [beveiligd]`
    /// is protected (the strictest reading wins).
    pub fn opts_out(&self) -> bool {
        self.unsecure && self.requested().is_none()
    }
}

fn norm(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn is_tag(words: &[String], t: &str) -> bool {
    words.iter().any(|w| norm(w) == t)
}

/// Which tag a bracketed word is, if any.
fn classify(tags: &TagWords, inner: &str, c: &mut SenderChoice) -> bool {
    let t = norm(inner);
    let raise = |c: &mut SenderChoice, p: Protection| {
        c.protection = Some(c.protection.map_or(p, |q| q.max(p)));
    };
    if is_tag(&tags.secure, &t) {
        raise(c, Protection::SecureMessage);
    } else if is_tag(&tags.secure_files, &t) {
        raise(c, Protection::SecureFiles);
    } else if is_tag(&tags.public_files, &t) {
        raise(c, Protection::PublicFiles);
    } else if is_tag(&tags.sms, &t) {
        c.sms = true;
    } else if is_tag(&tags.unsecure, &t) {
        c.unsecure = true;
    } else if is_tag(&tags.upload, &t) {
        c.upload = true;
    } else {
        return false;
    }
    c.tags.push(inner.trim().to_string());
    true
}

/// The subject without recognised tags, and the choices they express.
pub fn parse_subject(subject: &str, tags: &TagWords) -> (String, SenderChoice) {
    let mut c = SenderChoice::default();
    let mut out = String::with_capacity(subject.len());
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        let Some(len) = rest[open..].find(']') else {
            break;
        };
        let inner = &rest[open + 1..open + len];
        out.push_str(&rest[..open]);
        if !(inner.len() <= 40 && classify(tags, inner, &mut c)) {
            out.push_str(&rest[open..=open + len]);
        }
        rest = &rest[open + len + 1..];
    }
    out.push_str(rest);
    let clean = out.split_whitespace().collect::<Vec<_>>().join(" ");
    (clean, c)
}

/// Reads the `X-Sluis-*` control headers (the processed marker is not one).
pub fn controls(msg: &[u8], c: &mut SenderChoice, tags: &TagWords) {
    let n = headers::block_len(msg);
    for f in headers::split_fields(&msg[..n]) {
        let lower = f.name.to_ascii_lowercase();
        let Some(key) = lower.strip_prefix("x-sluis-") else {
            continue;
        };
        if key == "processed" {
            continue;
        }
        let value = headers::unfold(f.value);
        match key {
            "mode" => {
                let v = norm(&value).replace(['-', '_'], " ");
                if !classify(tags, &v, c) {
                    match v.as_str() {
                        "secure message" => {
                            c.protection = Some(Protection::SecureMessage);
                        }
                        "none" => c.unsecure = true,
                        _ => {}
                    }
                }
            }
            "auth" if matches!(norm(&value).as_str(), "sms" | "2fa") => c.sms = true,
            // A phone number is where the SMS codes go: it asks for SMS authentication.
            "phone" => c.sms = true,
            _ => {}
        }
        c.controls.insert(key.to_string(), value);
    }
}

/// The message as it may leave: control headers removed and tags taken out of the subject.
/// Untouched (byte for byte) when there is nothing to remove.
pub fn strip(msg: &[u8], decoded_subject: &str, tags: &TagWords) -> Vec<u8> {
    let (clean, choice) = parse_subject(decoded_subject, tags);
    headers::rewrite(msg, |f| {
        let lower = f.name.to_ascii_lowercase();
        if lower.starts_with("x-sluis-") && lower != "x-sluis-processed" {
            return None;
        }
        if lower == "subject" && !choice.tags.is_empty() {
            return Some(format!("{}: {}\r\n", f.name, headers::encode_word(&clean)).into_bytes());
        }
        Some(f.raw.to_vec())
    })
}

/// Whether `strip` would change anything.
pub fn needs_strip(msg: &[u8], decoded_subject: &str, tags: &TagWords) -> bool {
    let n = headers::block_len(msg);
    let has_controls = headers::split_fields(&msg[..n]).iter().any(|f| {
        let l = f.name.to_ascii_lowercase();
        l.starts_with("x-sluis-") && l != "x-sluis-processed"
    });
    has_controls || !parse_subject(decoded_subject, tags).1.tags.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_in_both_languages_and_any_case() {
        let t = TagWords::default();
        let (s, c) = parse_subject("[Beveiligd] Uitslag [SMS] onderzoek", &t);
        assert_eq!(s, "Uitslag onderzoek");
        assert_eq!(c.protection, Some(Protection::SecureMessage));
        assert!(c.sms);
        let (s, c) = parse_subject("Re: [secure  files] stukken", &t);
        assert_eq!(s, "Re: stukken");
        assert_eq!(c.protection, Some(Protection::SecureFiles));
        let (s, c) = parse_subject("[JIRA-12] [onbeveiligd] status", &t);
        assert_eq!(s, "[JIRA-12] status");
        assert!(c.unsecure);
        assert_eq!(c.protection, None);
    }

    #[test]
    fn strip_removes_tags_and_controls_only() {
        let t = TagWords::default();
        let m = b"Subject: [secure] Hallo\r\nX-Sluis-Mode: secure\r\nX-Sluis-Processed: v1; mac=00\r\nFrom: a@b\r\n\r\nbody [secure]\r\n";
        let out = strip(m, "[secure] Hallo", &t);
        assert_eq!(
            out,
            b"Subject: Hallo\r\nX-Sluis-Processed: v1; mac=00\r\nFrom: a@b\r\n\r\nbody [secure]\r\n"
        );
        let plain = b"Subject: Hallo\r\n\r\nx\r\n";
        assert!(!needs_strip(plain, "Hallo", &t));
        assert_eq!(strip(plain, "Hallo", &t), plain);
        let mut c = SenderChoice::default();
        controls(m, &mut c, &t);
        assert_eq!(c.protection, Some(Protection::SecureMessage));
        assert_eq!(c.controls.get("mode").map(String::as_str), Some("secure"));
    }

    #[test]
    fn non_ascii_subject_is_reencoded() {
        let t = TagWords::default();
        let m = b"Subject: =?utf-8?q?=5Bbeveiligd=5D_caf=C3=A9?=\r\n\r\nx\r\n";
        let out = String::from_utf8(strip(m, "[beveiligd] café", &t)).unwrap();
        assert!(out.starts_with("Subject: =?utf-8?b?"), "{out}");
        assert!(!out.contains("beveiligd"));
    }
}
