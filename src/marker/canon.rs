//! The canonical form a marker is computed over: what an upstream MTA may legitimately change in
//! transit does not count (trace fields it adds, folding and white space in header fields,
//! trailing white space and empty lines in the body, as DKIM's "relaxed" canonicalisation), and
//! everything else does: every other header field, and every byte of body text.

use sha2::{Digest as _, Sha256};

/// Header fields that MTAs add or rewrite on the way; a marker does not cover them. Any other
/// field added on the way (or by a sender copying a marker) makes the marker fail.
const TRANSIT: &[&str] = &[
    "received",
    "return-path",
    "delivered-to",
    "x-original-to",
    "dkim-signature",
    "authentication-results",
    "received-spf",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
];

/// The part of a message a marker is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    pub headers: [u8; 32],
    pub body: [u8; 32],
}

/// Whether a header field counts for the marker.
fn covered(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    !TRANSIT.contains(&lower.as_str()) && lower != super::HEADER.to_ascii_lowercase()
}

/// `name:value` with the name lowercased, the value unfolded and its white space runs reduced
/// to one space.
fn canonical_field(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = name.trim().to_ascii_lowercase().into_bytes();
    out.push(b':');
    let mut space = false;
    for &b in value {
        if matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            space = true;
            continue;
        }
        if space && out.last() != Some(&b':') {
            out.push(b' ');
        }
        space = false;
        out.push(b);
    }
    out
}

/// Hashes the covered fields of a header block, in sorted order (an MTA may reorder them).
fn header_digest(head: &[u8]) -> [u8; 32] {
    let mut lines: Vec<Vec<u8>> = crate::headers::split_fields(head)
        .iter()
        .filter(|f| covered(f.name))
        .map(|f| canonical_field(f.name, f.value))
        .collect();
    lines.sort();
    let mut h = Sha256::new();
    for l in &lines {
        h.update((l.len() as u64).to_be_bytes());
        h.update(l);
    }
    h.finalize().into()
}

/// Hashes a body in relaxed form, fed in pieces of any size.
struct BodyHasher {
    h: Sha256,
    out: Vec<u8>,
    /// Line ends seen since the last text: written only if more text follows.
    pending_lines: usize,
    pending_space: bool,
    any: bool,
}

impl BodyHasher {
    fn new() -> Self {
        BodyHasher {
            h: Sha256::new(),
            out: Vec::with_capacity(8192),
            pending_lines: 0,
            pending_space: false,
            any: false,
        }
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            match b {
                // A CR belongs to a line ending (or is dropped, like the space at a line's end).
                b'\r' => {}
                b'\n' => {
                    self.pending_lines += 1;
                    self.pending_space = false;
                }
                b' ' | b'\t' => self.pending_space = true,
                _ => {
                    for _ in 0..self.pending_lines {
                        self.out.extend_from_slice(b"\r\n");
                    }
                    self.pending_lines = 0;
                    if std::mem::take(&mut self.pending_space) {
                        self.out.push(b' ');
                    }
                    self.out.push(b);
                    self.any = true;
                }
            }
            if self.out.len() >= 8192 {
                self.h.update(&self.out);
                self.out.clear();
            }
        }
    }

    fn finish(mut self) -> [u8; 32] {
        if self.any {
            self.out.extend_from_slice(b"\r\n");
        }
        self.h.update(&self.out);
        self.h.finalize().into()
    }
}

/// Computes a [`Digest`] from a message fed in pieces: the header block is collected (it is
/// bounded by the SMTP header limit), the body is hashed as it passes.
pub struct Digester {
    head: Vec<u8>,
    in_body: bool,
    body: BodyHasher,
}

impl Default for Digester {
    fn default() -> Self {
        Digester {
            head: Vec::new(),
            in_body: false,
            body: BodyHasher::new(),
        }
    }
}

impl Digester {
    pub fn update(&mut self, data: &[u8]) {
        if self.in_body {
            self.body.update(data);
            return;
        }
        let start = self.head.len().saturating_sub(3);
        self.head.extend_from_slice(data);
        let end = find_blank(&self.head, start);
        if let Some(end) = end {
            self.in_body = true;
            let rest = self.head.split_off(end);
            self.body.update(&rest);
        }
    }

    pub fn finish(self) -> Digest {
        Digest {
            headers: header_digest(&self.head),
            body: self.body.finish(),
        }
    }
}

/// The end of the header block (just past its empty line), searching from `from`.
fn find_blank(buf: &[u8], from: usize) -> Option<usize> {
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    if buf.starts_with(b"\n") {
        return Some(1);
    }
    let mut i = from;
    while let Some(p) = memchr::memchr(b'\n', &buf[i..]).map(|p| i + p) {
        match buf.get(p + 1) {
            Some(b'\n') => return Some(p + 2),
            Some(b'\r') if buf.get(p + 2) == Some(&b'\n') => return Some(p + 3),
            _ => {}
        }
        i = p + 1;
    }
    None
}

/// The digest of a whole message in memory.
pub fn digest(message: &[u8]) -> Digest {
    let mut d = Digester::default();
    d.update(message);
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[u8] =
        b"Received: by a\r\nFrom: a@b\r\nSubject: Hallo  daar\r\n\r\nRegel een  \r\n\r\ntwee\r\n";

    #[test]
    fn transit_changes_do_not_count() {
        let d = digest(M);
        // Another MTA's trace fields, refolding, reordering, trailing white space and lines.
        let moved = b"Received: by upstream\r\nReturn-Path: <x@y>\r\nSubject: Hallo\r\n daar\r\n\
Received: by a\r\nFrom:  a@b\r\n\r\nRegel een\r\n\r\ntwee  \r\n\r\n\r\n";
        assert_eq!(digest(moved), d);
        // Fed byte by byte.
        let mut pieces = Digester::default();
        for b in M {
            pieces.update(std::slice::from_ref(b));
        }
        assert_eq!(pieces.finish(), d);
    }

    #[test]
    fn content_changes_count() {
        let d = digest(M);
        let other_body =
            b"Received: by a\r\nFrom: a@b\r\nSubject: Hallo  daar\r\n\r\nRegel een\r\ntwee\r\n";
        assert_ne!(digest(other_body).body, d.body);
        let extra = b"X-Data: 111222333\r\nFrom: a@b\r\nSubject: Hallo daar\r\n\r\nRegel een\r\n\r\ntwee\r\n";
        assert_ne!(digest(extra).headers, d.headers);
        assert_eq!(digest(extra).body, d.body);
        let subject = b"From: a@b\r\nSubject: Hallo hier\r\n\r\nRegel een\r\n\r\ntwee\r\n";
        assert_ne!(digest(subject).headers, d.headers);
        assert_ne!(
            digest(b"From: a@b\r\n\r\nx\r\n").body,
            digest(b"From: a@b\r\n\r\nx y\r\n").body
        );
    }
}
