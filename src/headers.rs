//! Header fields of a raw message (CRLF lines): split, unfold and rewrite without touching
//! anything else, so that a message leaves byte-identical except for what sluis changes.

pub struct Field<'b> {
    pub name: &'b str,
    pub value: &'b [u8],
    /// The whole field including its folded continuation lines and final CRLF.
    pub raw: &'b [u8],
}

fn memchr(b: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == b)
}

/// Whether a line starts a header field (`name:` with a printable, non-empty name).
pub fn is_field_start(line: &[u8]) -> bool {
    let Some(colon) = memchr(b':', line) else {
        return false;
    };
    colon > 0 && line[..colon].iter().all(|&c| (33..=126).contains(&c))
}

/// Length of the header block, up to and including the empty line that ends it (or the
/// whole input when there is none).
pub fn block_len(msg: &[u8]) -> usize {
    let mut pos = 0;
    while pos < msg.len() {
        let end = memchr(b'\n', &msg[pos..]).map_or(msg.len(), |n| pos + n + 1);
        let line = &msg[pos..end];
        if line == b"\r\n" || line == b"\n" {
            return end;
        }
        let continuation = matches!(line[0], b' ' | b'\t') && pos > 0;
        if !continuation && !is_field_start(line) {
            return pos;
        }
        pos = end;
    }
    msg.len()
}

/// Splits a header block into fields with their folded continuation lines.
pub fn split_fields(buf: &[u8]) -> Vec<Field<'_>> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            lines.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < buf.len() {
        lines.push((start, buf.len()));
    }
    fn push<'b>(fields: &mut Vec<Field<'b>>, buf: &'b [u8], (s, e): (usize, usize)) {
        let raw = &buf[s..e];
        let colon = memchr(b':', raw).unwrap_or(0);
        fields.push(Field {
            name: std::str::from_utf8(&raw[..colon]).unwrap_or(""),
            value: raw.get(colon + 1..).unwrap_or(b""),
            raw,
        });
    }
    let mut fields = Vec::new();
    let mut cur: Option<(usize, usize)> = None;
    for (s, e) in lines {
        if buf[s] == b'\r' || buf[s] == b'\n' {
            break; // the empty line that ends the block
        }
        if matches!(buf[s], b' ' | b'\t')
            && let Some(c) = cur.as_mut()
        {
            c.1 = e;
            continue;
        }
        if let Some(c) = cur.take() {
            push(&mut fields, buf, c);
        }
        cur = Some((s, e));
    }
    if let Some(c) = cur {
        push(&mut fields, buf, c);
    }
    fields
}

/// A header value as an RFC 2047 encoded word when it is not plain ASCII.
pub fn encode_word(s: &str) -> String {
    use base64::Engine;
    if s.is_ascii() {
        s.to_string()
    } else {
        format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
        )
    }
}

/// A field value as one line, folding whitespace removed.
pub fn unfold(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rebuilds the header block: fields for which `keep` says None are dropped, Some(bytes)
/// replaces the raw field. The rest of the message is untouched.
pub fn rewrite(msg: &[u8], mut keep: impl FnMut(&Field<'_>) -> Option<Vec<u8>>) -> Vec<u8> {
    let n = block_len(msg);
    let mut out = Vec::with_capacity(msg.len());
    let head = &msg[..n];
    let fields = split_fields(head);
    let fields_len: usize = fields.iter().map(|f| f.raw.len()).sum();
    for f in &fields {
        if let Some(bytes) = keep(f) {
            out.extend_from_slice(&bytes);
        }
    }
    out.extend_from_slice(&head[fields_len.min(head.len())..]);
    out.extend_from_slice(&msg[n..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_folding() {
        let b = b"Subject: a\r\n b\r\nReceived: x\r\nMessage-ID:\r\n <id@x>\r\n\r\nbody\r\n";
        let n = block_len(b);
        assert_eq!(&b[n..], b"body\r\n");
        let f = split_fields(&b[..n]);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].name, "Subject");
        assert_eq!(unfold(f[0].value), "a b");
        assert_eq!(unfold(f[2].value), "<id@x>");
        assert_eq!(f[0].raw, b"Subject: a\r\n b\r\n");
    }

    #[test]
    fn field_start() {
        assert!(is_field_start(b"From: a\r\n"));
        assert!(!is_field_start(b"From a\r\n"));
        assert!(!is_field_start(b": a\r\n"));
        assert!(!is_field_start(b"Bad Name: a\r\n"));
    }

    #[test]
    fn rewrite_keeps_everything_else() {
        let m = b"A: 1\r\nX-Drop: 2\r\n 3\r\nB: 4\r\n\r\nX-Drop: body\r\n";
        let out = rewrite(m, |f| (f.name != "X-Drop").then(|| f.raw.to_vec()));
        assert_eq!(out, b"A: 1\r\nB: 4\r\n\r\nX-Drop: body\r\n");
        let same = rewrite(m, |f| Some(f.raw.to_vec()));
        assert_eq!(same, m);
    }
}
