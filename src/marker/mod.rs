//! The `X-Sluis-Processed` marker: proof that this installation relayed *this content to these
//! recipients*, so that a mail coming back through an upstream MTA (a loop) is not examined and
//! protected a second time (its `[unsecure]` opt-out, say, was stripped on the first pass).
//!
//! The relay writes it on every message it sends, over the final bytes: an HMAC (key derived
//! from the master key) over the send time, the [`canon::Digest`] of the header fields and the
//! body, and one keyed tag per envelope recipient of that transaction. The tags travel in the
//! marker (padded with random ones and sorted, so they show neither who nor exactly how many),
//! so a loop to the same recipients or some of them verifies; other content, another header
//! field, another recipient or an expired time does not.

pub mod canon;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const HEADER: &str = "X-Sluis-Processed";

/// A marker from the future by more than this is refused (clock skew between hosts).
const SKEW: i64 = 600;
const TAG: usize = 8;
const MAC: usize = 16;

#[derive(Clone)]
pub struct Marker {
    key: [u8; 32],
    /// Seconds a marker stays valid after it was written.
    max_age: i64,
}

/// A marker as read from a header field, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub at: i64,
    tags: Vec<[u8; TAG]>,
    mac: [u8; MAC],
}

impl Marker {
    pub fn new(key: [u8; 32], max_age: std::time::Duration) -> Self {
        Marker {
            key,
            max_age: max_age.as_secs().min(i64::MAX as u64) as i64,
        }
    }

    fn hmac(&self, domain: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.key).expect("any key length");
        mac.update(domain);
        mac
    }

    fn tag(&self, rcpt: &str) -> [u8; TAG] {
        let mut m = self.hmac(b"sluis marker v2 rcpt\0");
        m.update(rcpt.trim().to_ascii_lowercase().as_bytes());
        let full = m.finalize().into_bytes();
        full[..TAG].try_into().expect("long enough")
    }

    fn mac(&self, at: i64, d: &canon::Digest, tags: &[[u8; TAG]]) -> Hmac<Sha256> {
        let mut m = self.hmac(b"sluis marker v2\0");
        m.update(&at.to_be_bytes());
        m.update(&d.headers);
        m.update(&d.body);
        for t in tags {
            m.update(t);
        }
        m
    }

    /// The whole header field (folded, CRLF-terminated) for a message with this digest, sent
    /// now to these recipients.
    pub fn field(&self, d: &canon::Digest, rcpts: &[&str], now: i64) -> Vec<u8> {
        let mut tags: Vec<[u8; TAG]> = rcpts.iter().map(|r| self.tag(r)).collect();
        let padded = tags.len().max(4).next_power_of_two();
        while tags.len() < padded {
            tags.push(crate::seal::random_bytes::<TAG>());
        }
        tags.sort();
        tags.dedup();
        let mac = self.mac(now, d, &tags).finalize().into_bytes();
        let mut words = vec![format!("v2; t={now}; r=")];
        words.extend(tags.iter().map(hex::encode));
        let last = words.len() - 1;
        words[last].push(';');
        words.push(format!("mac={}", hex::encode(&mac[..MAC])));
        fold(HEADER, &words)
    }

    /// Reads a header value (unfolded); None when it is not a v2 marker at all.
    pub fn parse(value: &str) -> Option<Claim> {
        let mut at = None;
        let mut tags = Vec::new();
        let mut mac = None;
        let mut parts = value.trim().split(';').map(str::trim);
        if parts.next()? != "v2" {
            return None;
        }
        for p in parts {
            let (k, v) = p.split_once('=')?;
            match k.trim() {
                "t" => at = Some(v.trim().parse::<i64>().ok()?),
                "r" => {
                    for w in v.split_whitespace() {
                        tags.push(hex::decode(w).ok()?.try_into().ok()?);
                    }
                }
                "mac" => mac = Some(hex::decode(v.trim()).ok()?.try_into().ok()?),
                _ => return None,
            }
        }
        if tags.is_empty() || tags.len() > 4096 {
            return None;
        }
        Some(Claim {
            at: at?,
            tags,
            mac: mac?,
        })
    }

    /// Whether a claim is young enough and names every one of these recipients: checked on
    /// arrival, before the content is there.
    pub fn plausible(&self, c: &Claim, rcpts: &[&str], now: i64) -> bool {
        c.at <= now + SKEW
            && now - c.at <= self.max_age
            && !rcpts.is_empty()
            && rcpts.iter().all(|r| c.tags.contains(&self.tag(r)))
    }

    /// Whether a claim proves that this installation sent this content to (at least) these
    /// recipients, within the marker's lifetime.
    pub fn verify(&self, c: &Claim, d: &canon::Digest, rcpts: &[&str], now: i64) -> bool {
        self.plausible(c, rcpts, now)
            && self
                .mac(c.at, d, &c.tags)
                .verify_truncated_left(&c.mac)
                .is_ok()
    }

    /// [`verify`](Self::verify) against a whole message in memory, for any of its claims.
    pub fn verify_any(&self, claims: &[String], message: &[u8], rcpts: &[&str], now: i64) -> bool {
        let claims: Vec<Claim> = claims
            .iter()
            .filter_map(|v| Self::parse(v))
            .filter(|c| self.plausible(c, rcpts, now))
            .collect();
        if claims.is_empty() {
            return false;
        }
        let d = canon::digest(message);
        claims.iter().any(|c| self.verify(c, &d, rcpts, now))
    }
}

impl Marker {
    /// Checks the markers an envelope kept on arrival against the whole message, and settles
    /// them: a loop becomes `already_processed`, anything else is dropped and the message is
    /// examined like any other. True for a loop.
    pub fn check(&self, env: &mut crate::queue::Envelope, message: &[u8], now: i64) -> bool {
        let claims = std::mem::take(&mut env.markers);
        if claims.is_empty() {
            return false;
        }
        let rcpts: Vec<&str> = env.recipients.iter().map(|r| r.address.as_str()).collect();
        let looped = self.verify_any(&claims, message, &rcpts, now);
        if looped {
            env.already_processed = true;
            tracing::info!(id = %env.id, "came back with this gateway's marker for this content and these recipients: a loop, not examined again");
        } else {
            tracing::info!(id = %env.id, "removed a {HEADER} header that does not match this content or these recipients; the message is examined");
        }
        looped
    }
}

/// A header field of words, folded before 78 columns.
fn fold(name: &str, words: &[String]) -> Vec<u8> {
    let mut out = format!("{name}:");
    let mut col = out.len();
    for w in words {
        if col + 1 + w.len() > 78 && col > 1 {
            out.push_str("\r\n");
            col = 0;
        }
        out.push(' ');
        out.push_str(w);
        col += 1 + w.len();
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Puts a marker field into a message's first bytes: below its first field when that is the
/// trace field sluis wrote on arrival, on top otherwise.
pub fn splice(field: &[u8], head: &[u8]) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(field.len() + 1024);
    let n = crate::headers::block_len(head);
    let first = crate::headers::split_fields(&head[..n]).into_iter().next();
    match first {
        Some(f) if f.name.eq_ignore_ascii_case("received") && f.raw.len() < n => {
            out.extend_from_slice(f.raw);
            out.extend_from_slice(field);
            (out, f.raw.len())
        }
        _ => {
            out.extend_from_slice(field);
            (out, 0)
        }
    }
}

#[cfg(test)]
mod tests;
