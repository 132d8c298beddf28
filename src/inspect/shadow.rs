//! The second line of defence: raw views of every attachment. The detectors also run over an
//! attachment's bytes as they are and over its inflated streams (PDF `FlateDecode` streams, the
//! members of a ZIP whose directory cannot be read), so that text a damaged structure hides from
//! the extractor is still found. Inflating stays within the ratio and byte limits: a stream over
//! the ratio makes its file unscannable and keeps it from the extractor (a bomb stays refused).
//!
//! Binary bytes become text by keeping what reads as text: UTF-8 and ASCII as they are, NUL
//! dropped (so UTF-16LE text in legacy formats reads as words), other control and invalid bytes
//! a space. `policy::detect` counts a finding in a raw view only beyond what the extracted text
//! of the same file gave, so nothing is counted twice.

use flate2::{Decompress, FlushDecompress, Status};

use super::archive::RATIO_FLOOR;
use super::{Bound, Ctx, html};

/// Shorter runs of text-like bytes in binary data are left out, as `strings` does: in random
/// or compressed bytes they are noise (a third of all bytes), and what the detectors look for
/// ("BSN 111222333", a word among words) is a longer run.
const MIN_RUN: usize = 4;

/// Bytes as text for matching: see the module comment. Bytes that are not UTF-8 as a whole
/// are read as ASCII runs of at least [`MIN_RUN`] (anything else one space): binary data is
/// mostly not text, and its noise would cost the detectors ten times what the text does.
pub(crate) fn project(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes)
        && memchr::memchr(0, bytes).is_none()
    {
        return s.to_string();
    }
    // Branch-free, and nothing read back from `out`: in binary data text and non-text bytes
    // alternate at random, and a branch per byte would be mispredicted half the time.
    // `out[0]` is a space that is not returned.
    let mut out = vec![b' '; bytes.len() + 2];
    let (mut pos, mut run, mut last_space) = (1usize, 0usize, true);
    for &b in bytes {
        let class = CLASS[usize::from(b)];
        let text = class == TEXT;
        let brk = class == BREAK;
        let short = run < MIN_RUN;
        // A break ends the run: a short one is taken back (what preceded it is a space).
        pos -= usize::from(brk & short) * run;
        // For a break one space, unless the last kept byte is one.
        let space = brk & !(last_space | short);
        out[pos] = if brk { b' ' } else { b };
        pos += usize::from(text | space);
        run = if brk { 0 } else { run + usize::from(text) };
        last_space = if brk {
            true
        } else if text {
            b == b' '
        } else {
            last_space
        };
    }
    if run < MIN_RUN {
        pos -= run;
    }
    out.truncate(pos);
    out.remove(0);
    // Only ASCII was kept.
    String::from_utf8(out).unwrap_or_default()
}

const BREAK: u8 = 0;
const TEXT: u8 = 1;
/// NUL is neither: dropped without ending a run (UTF-16LE text).
const SKIP: u8 = 2;

/// What each byte is to [`project`].
static CLASS: [u8; 256] = {
    let mut t = [BREAK; 256];
    let mut b = 0x20;
    while b <= 0x7e {
        t[b] = TEXT;
        b += 1;
    }
    t[b'\t' as usize] = TEXT;
    t[b'\n' as usize] = TEXT;
    t[b'\r' as usize] = TEXT;
    t[0] = SKIP;
    t
};

/// XML as text, tolerant of any damage: element text kept, every tag (with its attributes) a
/// space, so that cells and elements never run together.
pub(crate) fn markup_text(bytes: &[u8]) -> String {
    let text = project(bytes);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(lt) = rest.find('<') {
        html::push_text(&mut out, &rest[..lt]);
        out.push(' ');
        rest = rest[lt..].find('>').map_or("", |gt| &rest[lt + gt + 1..]);
    }
    html::push_text(&mut out, rest);
    out
}

/// How inflating one stream ended.
pub(crate) enum Inflated {
    /// The stream ended properly: its content, and the input bytes it took.
    Complete(Vec<u8>, usize),
    /// The data is not a valid stream (or ends early): what came out before that.
    Broken(Vec<u8>, usize),
    /// Over the ratio limit (a bomb): nothing kept.
    Ratio,
    /// Over the message's byte limit: inspection stops.
    Stopped,
}

/// Inflates a zlib (`zlib` true) or raw deflate stream at the start of `data`, within the ratio
/// limit and the bytes left, and charges what came out.
pub(crate) fn inflate(ctx: &mut Ctx, data: &[u8], zlib: bool, origin: &str) -> Inflated {
    let mut d = Decompress::new(zlib);
    let mut out: Vec<u8> = Vec::with_capacity(data.len().saturating_mul(3).min(1 << 20));
    let left = ctx.bytes_left();
    let ratio = ctx.limits.max_ratio;
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.len().max(64 * 1024));
        }
        let (consumed, before) = (d.total_in() as usize, d.total_out());
        let status = d.decompress_vec(&data[consumed..], &mut out, FlushDecompress::None);
        let stuck = d.total_in() as usize == consumed && d.total_out() == before;
        let produced = out.len() as u64;
        let cap = d.total_in().saturating_mul(ratio).max(RATIO_FLOOR);
        if produced > cap {
            return Inflated::Ratio;
        }
        if produced > left {
            ctx.stop(origin, Bound::Bytes(ctx.limits.max_total_bytes));
            return Inflated::Stopped;
        }
        match status {
            Ok(Status::StreamEnd) => break,
            Ok(_) if !stuck => {}
            // An error, or no progress with room to write: input ran out (truncated).
            _ => {
                ctx.charge(origin, produced);
                return Inflated::Broken(out, d.total_in() as usize);
            }
        }
    }
    if !ctx.charge(origin, out.len() as u64) {
        return Inflated::Stopped;
    }
    let used = d.total_in() as usize;
    Inflated::Complete(out, used)
}

/// Whether the bytes before a PDF `stream` keyword (its dictionary) name `FlateDecode` as the
/// first filter, and say nothing of encryption.
fn pdf_flate_dict(dict: &[u8]) -> bool {
    let Some(f) = memchr::memmem::rfind(dict, b"/Filter") else {
        return false;
    };
    let rest = &dict[f + 7..];
    let start = rest
        .iter()
        .position(|b| !matches!(b, b' ' | b'\r' | b'\n' | b'\t' | b'['))
        .unwrap_or(rest.len());
    let rest = &rest[start..];
    rest.starts_with(b"/Fl") && memchr::memmem::find(dict, b"/Crypt").is_none()
}

/// Whether a stream dictionary is an image's or a font program's (no text in its bytes).
fn pdf_binary_dict(dict: &[u8]) -> bool {
    let has = |k: &[u8]| memchr::memmem::find(dict, k).is_some();
    has(b"/Image") || has(b"/Length1") || has(b"/Length2") || has(b"/FontFile") || {
        // Compact font programs: /Subtype /Type1C, /CIDFontType0C, /OpenType.
        has(b"/Type1C") || has(b"/CIDFontType0C") || has(b"/OpenType")
    }
}

/// Streams that no reader inflates (images, TrueType and compact font programs): the text
/// extractor never decodes them, so they need no bomb check, and they hold no text.
fn pdf_unread_dict(dict: &[u8]) -> bool {
    let has = |k: &[u8]| memchr::memmem::find(dict, k).is_some();
    has(b"/Image")
        || (has(b"/Length1") && !has(b"/Length2"))
        || has(b"/Type1C")
        || has(b"/CIDFontType0C")
        || has(b"/OpenType")
}

/// A stream's `/Length` when given directly (not as a reference).
fn pdf_direct_length(dict: &[u8]) -> Option<usize> {
    let at = memchr::memmem::rfind(dict, b"/Length ")? + 8;
    let rest = &dict[at..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let after = &rest[digits..];
    let reference = after
        .strip_prefix(b" ")
        .is_some_and(|a| a.first().is_some_and(u8::is_ascii_digit));
    if digits == 0 || reference {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// The raw view of a PDF: its bytes with every `FlateDecode` stream replaced by what it
/// inflates to. Returns false when a stream is over the ratio limit (the PDF must then not go
/// to the extractor) or inspection stopped.
pub(crate) fn pdf(ctx: &mut Ctx, data: &[u8], origin: &str) -> bool {
    let encrypted = memchr::memmem::find(data, b"/Encrypt").is_some();
    let mut view: Vec<u8> = Vec::with_capacity(data.len());
    let mut from = 0usize;
    let finder = memchr::memmem::Finder::new(b"stream");
    let mut at = 0usize;
    while let Some(p) = finder.find(&data[at..]).map(|p| p + at) {
        at = p + 6;
        if p >= 3 && &data[p - 3..p] == b"end" {
            continue;
        }
        let body = match data.get(at..at + 2) {
            Some(b"\r\n") => at + 2,
            Some([b'\n', _]) | Some([b'\r', _]) => at + 1,
            _ => continue,
        };
        // The stream's dictionary: after the last `obj` keyword before it.
        let window = &data[p.saturating_sub(4096).max(from)..p];
        let dict = memchr::memmem::rfind(window, b"obj").map_or(window, |o| &window[o..]);
        if encrypted || !pdf_flate_dict(dict) {
            continue;
        }
        if pdf_unread_dict(dict)
            && let Some(len) = pdf_direct_length(dict).filter(|l| body + l <= data.len())
        {
            view.extend_from_slice(&data[from..body]);
            view.push(b'\n');
            from = body + len;
            at = at.max(from);
            continue;
        }
        match inflate(ctx, &data[body..], true, origin) {
            Inflated::Complete(out, used) | Inflated::Broken(out, used) => {
                view.extend_from_slice(&data[from..body]);
                // Images and font programs are inflated (a bomb there is refused too) but
                // hold no text: their bytes stay out of the view.
                if !pdf_binary_dict(dict) {
                    view.extend_from_slice(&out);
                }
                view.push(b'\n');
                // The compressed bytes are not text either.
                from = body + used;
                at = at.max(from);
            }
            Inflated::Ratio => {
                let ratio = ctx.limits.max_ratio;
                ctx.unscannable(
                    origin,
                    &format!("a PDF stream's compression ratio is above the limit of {ratio} (possible bomb)"),
                );
                return false;
            }
            Inflated::Stopped => return false,
        }
        if !ctx.alive(origin) {
            return false;
        }
    }
    if from == 0 {
        ctx.add_shadow(origin, data);
    } else {
        view.extend_from_slice(&data[from..]);
        ctx.add_shadow(origin, &view);
    }
    true
}

/// ZIP local file headers walked without the central directory (for an archive whose directory
/// cannot be read): each member's data inflated and added to the raw view, within the limits.
pub(crate) fn zip_members(ctx: &mut Ctx, data: &[u8], origin: &str) {
    let finder = memchr::memmem::Finder::new(b"PK\x03\x04");
    let mut at = 0usize;
    while let Some(p) = finder.find(&data[at..]).map(|p| p + at) {
        at = p + 4;
        let Some(h) = data.get(p..p + 30) else { break };
        let u16_at = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]) as usize;
        let method = u16_at(8);
        let compressed = u32::from_le_bytes([h[18], h[19], h[20], h[21]]) as usize;
        let start = p + 30 + u16_at(26) + u16_at(28);
        let Some(rest) = data.get(start..) else { break };
        let name = data.get(p + 30..p + 30 + u16_at(26)).unwrap_or_default();
        let is_markup = name.ends_with(b".xml") || name.ends_with(b".rels");
        let bytes = match method {
            8 => match inflate(ctx, rest, false, origin) {
                Inflated::Complete(out, _) | Inflated::Broken(out, _) => out,
                Inflated::Ratio => continue,
                Inflated::Stopped => return,
            },
            0 => rest[..compressed.min(rest.len())].to_vec(),
            _ => continue,
        };
        if is_markup {
            ctx.add_shadow_text(origin, &markup_text(&bytes));
        } else {
            ctx.add_shadow(origin, &bytes);
        }
        if !ctx.alive(origin) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_matches_a_plain_reading_of_runs() {
        // The plain reading: split at breaks (NUL dropped), keep runs of MIN_RUN or more.
        fn plain(bytes: &[u8]) -> String {
            let mut out = String::new();
            let mut run = String::new();
            for &b in bytes {
                match CLASS[usize::from(b)] {
                    SKIP => {}
                    TEXT => run.push(char::from(b)),
                    _ => {
                        if run.len() >= MIN_RUN {
                            out.push_str(&run);
                        }
                        run.clear();
                        if !out.is_empty() && !out.ends_with(' ') {
                            out.push(' ');
                        }
                    }
                }
            }
            if run.len() >= MIN_RUN {
                out.push_str(&run);
            }
            out
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..400 {
            // Led by a byte that is not UTF-8, so the binary reading applies.
            let bytes: Vec<u8> = std::iter::once(0xff)
                .chain((0..len).map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // Mostly text, some breaks and NULs, so every kind of run occurs.
                    match seed % 8 {
                        0 => 0xff,
                        1 => 0,
                        2 => b' ',
                        _ => b'a' + (seed % 26) as u8,
                    }
                }))
                .collect();
            assert_eq!(project(&bytes), plain(&bytes), "{bytes:?}");
        }
    }

    #[test]
    fn binary_reads_as_words() {
        let utf16: Vec<u8> = "BSN 111222333"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(project(&utf16), "BSN 111222333");
        assert_eq!(project(b"\xff\x01abcd\x00e\xc3\xa9 9"), "abcde ");
        assert_eq!(project(b"abcd\xffxy\x00"), "abcd ");
        // Short runs in binary are noise, as for `strings`.
        assert_eq!(
            project(b"\xffab\x01abc\x02BSN 111222333\x03x"),
            "BSN 111222333 "
        );
        assert_eq!(project("cliënt 1".as_bytes()), "cliënt 1");
        assert_eq!(
            markup_text(b"<a x=\"geheim\"><t>BSN</t><t>111&amp;222</t"),
            "  BSN  111&222 "
        );
    }

    #[test]
    fn pdf_lengths() {
        assert_eq!(
            pdf_direct_length(b"<</Length 387/Filter/FlateDecode>>"),
            Some(387)
        );
        assert_eq!(
            pdf_direct_length(b"<</Length 12 0 R/Filter/FlateDecode>>"),
            None
        );
        assert_eq!(pdf_direct_length(b"<</Length1 5/Length 7>>"), Some(7));
        assert!(pdf_unread_dict(
            b"<</Length 9/Length1 20/Filter/FlateDecode>>"
        ));
        assert!(!pdf_unread_dict(b"<</Length1 1/Length2 2/Length3 0>>"));
    }

    #[test]
    fn pdf_filters() {
        assert!(pdf_flate_dict(b"<< /Length 5 /Filter /FlateDecode >>\n"));
        assert!(pdf_flate_dict(b"<</Filter[/FlateDecode/DCTDecode]"));
        assert!(!pdf_flate_dict(
            b"<< /Filter [/ASCII85Decode /FlateDecode] >>"
        ));
        assert!(!pdf_flate_dict(b"<< /Length 5 >>"));
    }
}
