//! Parsing a large message without mail-parser walking every body byte.
//!
//! mail-parser finds where a part ends by looking at every byte for `--boundary`, one at a
//! time, and turns every part into text as it goes: for mail with large encoded parts that was
//! as slow as decoding them. Whole lines between one `--boundary` and the next (for every value
//! of a boundary parameter in the message) cannot change what mail-parser finds, so they are
//! cut out, the much smaller rest is parsed, and the offsets are moved back to the original
//! bytes. The result is used only when every cut lies strictly inside the body of a
//! transfer-encoded part, whose bytes `body` decodes from the original by offset; otherwise
//! the caller parses the original as before. The tests check that the parts come out the same.

use mail_parser::{Message, MimeHeaders, PartType};
use std::borrow::Cow;

use super::body::{decodable, encoding, raw_parser};

/// Stretches shorter than this are left in: cutting them saves less than it costs.
pub(crate) const MIN_CUT: usize = 16 * 1024;

/// A stretch of the original left out of the skeleton.
#[derive(Debug, Clone, Copy)]
struct Cut {
    /// Where the stretch was in the skeleton (the first byte after it there).
    at: usize,
    /// Bytes left out of the skeleton, by this cut and all before it.
    total: usize,
}

/// Every value given for a `boundary` parameter anywhere in the message (more than the real
/// boundaries is harmless; a real one missing is caught after parsing).
fn boundaries(raw: &[u8]) -> Vec<&[u8]> {
    // One SIMD search, for the name as mail clients write it (`boundary`, `Boundary`): any
    // other mix of cases is found missing after parsing, and the message is parsed whole.
    let p = b"oundary=";
    let ends = memchr::memmem::find_iter(raw, p)
        .filter(|&i| i > 0 && raw[i - 1].eq_ignore_ascii_case(&b'b'))
        .map(move |i| i + p.len());
    let mut out: Vec<&[u8]> = ends
        .filter_map(|end| {
            let rest = &raw[end..];
            let v = match rest.first()? {
                b'"' => &rest[1..1 + memchr::memchr(b'"', &rest[1..])?],
                _ => {
                    let n = rest
                        .iter()
                        .position(|c| matches!(c, b';' | b' ' | b'\t' | b'\r' | b'\n'))
                        .unwrap_or(rest.len());
                    &rest[..n]
                }
            };
            (!v.is_empty()).then_some(v)
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Byte ranges of whole lines to leave out: inside runs in which no `--boundary` starts for
/// any of `bounds`, keeping the start of a run (up to a part's first body line) and the last
/// two lines before the one where the next delimiter starts.
fn stretches(raw: &[u8], bounds: &[&[u8]], min: usize) -> Vec<(usize, usize)> {
    let mut marks: Vec<usize> = Vec::new();
    for b in bounds {
        let delimiter = [&b"--"[..], b].concat();
        marks.extend(memchr::memmem::find_iter(raw, &delimiter));
    }
    marks.sort_unstable();
    marks.push(raw.len());
    let mut out = Vec::new();
    let mut from = 0usize;
    for to in marks {
        if to > from
            && to - from > min
            && let Some(r) = inner_lines(raw, from, to)
            && r.1 - r.0 >= min
        {
            out.push(r);
        }
        from = from.max(to + 2);
    }
    out
}

fn inner_lines(raw: &[u8], from: usize, to: usize) -> Option<(usize, usize)> {
    // Past the blank line that ends a part's headers when there is one close by, else past
    // the line the run starts in; then one more line, so the cut starts inside a body.
    let near = raw.get(from..to.min(from + 4096))?;
    let blank = [&b"\n\r\n"[..], b"\n\n"]
        .iter()
        .filter_map(|p| memchr::memmem::find(near, p).map(|i| from + i + p.len()))
        .min();
    let mut s = match blank {
        Some(b) => b,
        None => from + memchr::memchr(b'\n', near)? + 1,
    };
    s += memchr::memchr(b'\n', raw.get(s..to)?)? + 1;
    // Back to the start of the line `to` is in, then two lines more: the line break before
    // a delimiter belongs to it, and the line before that may be empty.
    let mut e = s + memchr::memrchr(b'\n', raw.get(s..to)?)? + 1;
    for _ in 0..2 {
        e = s + memchr::memrchr(b'\n', raw.get(s..e - 1)?)? + 1;
    }
    (e > s).then_some((s, e))
}

/// The message parsed from a skeleton, its offsets those of `raw`; None when there is nothing
/// worth cutting or the cuts are not all inside encoded bodies (parse `raw` itself then).
pub(crate) fn parse(raw: &[u8], min: usize) -> Option<Message<'_>> {
    let bounds = boundaries(raw);
    // A boundary with a line break in it could match across the edge of a cut.
    if bounds
        .iter()
        .any(|b| b.contains(&b'\n') || b.contains(&b'\r'))
    {
        return None;
    }
    let cuts = stretches(raw, &bounds, min);
    if cuts.is_empty() {
        return None;
    }
    let mut skel = Vec::with_capacity(raw.len() - cuts.iter().map(|c| c.1 - c.0).sum::<usize>());
    let mut marks = Vec::with_capacity(cuts.len());
    let mut pos = 0;
    for &(s, e) in &cuts {
        skel.extend_from_slice(&raw[pos..s]);
        let total = marks.last().map_or(0, |m: &Cut| m.total) + (e - s);
        marks.push(Cut {
            at: skel.len(),
            total,
        });
        pos = e;
    }
    skel.extend_from_slice(&raw[pos..]);
    let parsed = raw_parser().parse(&skel)?;
    // Cuts were placed knowing only `bounds`: every boundary the parse used must be one.
    let unknown_boundary = |p: &mail_parser::MessagePart<'_>| {
        p.content_type()
            .and_then(|ct| ct.attribute("boundary"))
            .is_some_and(|b| bounds.binary_search(&b.as_bytes()).is_err())
    };
    if parsed
        .parts
        .iter()
        .any(|p| matches!(p.body, PartType::Message(_)) || unknown_boundary(p))
    {
        return None;
    }
    let inside = |at: usize| {
        parsed.parts.iter().any(|p| {
            !matches!(p.body, PartType::Multipart(_))
                && !p.is_encoding_problem
                && (p.offset_body as usize) < at
                && at < p.offset_end as usize
                && encoding(&skel, p).is_some()
        })
    };
    if !marks.iter().all(|m| inside(m.at)) {
        return None;
    }
    // Offsets past a cut move by what was cut before them; none is at a cut (checked above).
    let shift = |x: u32| -> u32 {
        let n = marks.partition_point(|m| m.at < x as usize);
        let moved = if n == 0 { 0 } else { marks[n - 1].total };
        (x as usize + moved) as u32
    };
    let mut msg: Message<'_> = parsed.into_owned();
    for p in &mut msg.parts {
        p.offset_header = shift(p.offset_header);
        p.offset_body = shift(p.offset_body);
        p.offset_end = shift(p.offset_end);
        for h in &mut p.headers {
            h.offset_field = shift(h.offset_field);
            h.offset_start = shift(h.offset_start);
            h.offset_end = shift(h.offset_end);
        }
    }
    msg.raw_message = Cow::Borrowed(raw);
    decodable(&msg).then_some(msg)
}
