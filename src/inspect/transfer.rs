//! Content-transfer decoding (quoted-printable, base64) of MIME part bodies, byte for byte what
//! mail-parser 0.11.9 produces while parsing (`decode_quoted_printable_mime`,
//! `decode_base64_mime`), quirks included, but over runs of plain bytes instead of one byte per
//! step: mail-parser's quoted-printable decoder alone took longer than the word scan of the
//! whole message. `body` runs mail-parser without transfer decoding and decodes here.
//!
//! mail-parser decodes from the part's body offset up to the first `--boundary`; `Stop` says
//! where that was, read back from the part's end offset (`stop_of`).

use mail_parser::decoders::base64::BASE64_MAP;
use mail_parser::decoders::quoted_printable::HEX_MAP;

/// mail-parser would have given up decoding and kept the part as raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Malformed {
    #[error("malformed quoted-printable body")]
    QuotedPrintable,
    #[error("malformed base64 body")]
    Base64,
}

/// Where mail-parser's scan of a part body stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// At the end of the data (no enclosing boundary).
    End,
    /// At the `--` that starts the enclosing boundary delimiter, at this offset.
    Boundary(usize),
}

/// Where the scan of a body `start..end` (mail-parser's part offsets) stopped: `end` is the end
/// of the data, the line break before `--boundary`, or the `--` itself when the delimiter
/// does not start a line. None when the bytes at `end` fit none of these.
pub(crate) fn stop_of(data: &[u8], start: usize, end: usize) -> Option<Stop> {
    if start > end {
        return None;
    }
    if end == data.len() {
        return Some(Stop::End);
    }
    let rest = data.get(end..)?;
    if rest.starts_with(b"\r\n--") {
        Some(Stop::Boundary(end + 2))
    } else if rest.starts_with(b"\n--") {
        Some(Stop::Boundary(end + 1))
    } else if rest.starts_with(b"--") {
        Some(Stop::Boundary(end))
    } else {
        None
    }
}

/// Bytes that end a run of literal quoted-printable text.
static QP_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'=' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// High bit set in each zero byte of `t`, exactly (no borrows between bytes).
fn zero_bytes(t: u64) -> u64 {
    !(((t & !HIGHS).wrapping_add(!HIGHS)) | t) & HIGHS
}

/// The first `=`, CR or LF at or after `i` (or the end), eight bytes at a time.
fn next_special(b: &[u8], mut i: usize) -> usize {
    while i + 8 <= b.len() {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(chunk);
        let hits = zero_bytes(x ^ (u64::from(b'=') * ONES))
            | zero_bytes(x ^ (u64::from(b'\r') * ONES))
            | zero_bytes(x ^ (u64::from(b'\n') * ONES));
        if hits != 0 {
            return i + hits.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while i < b.len() && !QP_SPECIAL[b[i] as usize] {
        i += 1;
    }
    i
}

#[derive(Clone, Copy)]
enum Qp {
    Plain,
    Eq,
    Hex1(u8),
}

/// Quoted-printable, as mail-parser decodes it: a line break is written as CRLF once any CR
/// has been seen (LF before), whitespace before a hard break is dropped, `=` + break is a soft
/// break (whitespace between them allowed), an invalid escape is kept literally, `==` makes
/// the part malformed, a dangling `=` at the end is dropped.
pub(crate) fn quoted_printable(
    data: &[u8],
    start: usize,
    stop: Stop,
) -> Result<Vec<u8>, Malformed> {
    let end = match stop {
        Stop::End => data.len(),
        // The first '-' of the delimiter is decoded like text, then removed below.
        Stop::Boundary(dash) => dash + 1,
    };
    let b = data.get(start..end).ok_or(Malformed::QuotedPrintable)?;
    let n = b.len();
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let mut crlf: &[u8] = b"\n";
    // Trailing whitespace bytes written since the last other byte.
    let mut ws = 0usize;
    let mut state = Qp::Plain;
    let mut i = 0;
    while i < n {
        let c = b[i];
        match state {
            Qp::Plain => {
                let run = i;
                i = next_special(b, i);
                if i > run {
                    let lit = &b[run..i];
                    out.extend_from_slice(lit);
                    let t = lit
                        .iter()
                        .rev()
                        .take_while(|c| c.is_ascii_whitespace())
                        .count();
                    ws = if t == lit.len() { ws + t } else { t };
                    continue;
                }
                match c {
                    b'=' => state = Qp::Eq,
                    b'\n' => {
                        out.truncate(out.len() - ws);
                        out.extend_from_slice(crlf);
                        ws = 0;
                    }
                    _ => crlf = b"\r\n",
                }
            }
            Qp::Eq => match c {
                b'=' => return Err(Malformed::QuotedPrintable),
                b'\n' => {
                    state = Qp::Plain;
                    ws = 0;
                }
                b'\r' => crlf = b"\r\n",
                _ => {
                    let h = HEX_MAP[c as usize];
                    if h != -1 {
                        state = Qp::Hex1(h as u8);
                    } else if !c.is_ascii_whitespace() {
                        state = Qp::Plain;
                        out.extend_from_slice(&[b'=', c]);
                        ws = 0;
                    }
                }
            },
            Qp::Hex1(h1) => match c {
                b'=' => return Err(Malformed::QuotedPrintable),
                // mail-parser writes the break and still waits for the second hex digit.
                b'\n' => {
                    out.truncate(out.len() - ws);
                    out.extend_from_slice(crlf);
                    ws = 0;
                }
                b'\r' => crlf = b"\r\n",
                _ => {
                    state = Qp::Plain;
                    let h2 = HEX_MAP[c as usize];
                    if h2 != -1 {
                        out.push((h1 << 4) | h2 as u8);
                    } else {
                        // `i > 0`: the first hex digit came before.
                        out.extend_from_slice(&[b'=', b[i - 1], c]);
                    }
                    ws = 0;
                }
            },
        }
        i += 1;
    }
    if let Stop::Boundary(dash) = stop {
        let before = if dash > start { data[dash - 1] } else { 0 };
        if before == b'\n' {
            // The line break and the '-'. mail-parser's subtraction wraps in a release build
            // when fewer bytes were written (after a soft break): then nothing is removed.
            let k = crlf.len() + 1;
            if out.len() >= k {
                out.truncate(out.len() - k);
            }
        } else {
            out.truncate(out.len().saturating_sub(1));
        }
    }
    Ok(out)
}

/// Input bytes (line breaks left out) decoded per SIMD call: a multiple of four.
const B64_BLOCK: usize = 48 * 1024;

/// The usual body fast: lines of strict base64 (padding only where a block may end) with CRLF
/// or LF breaks, the breaks dropped and the rest decoded in blocks with SIMD. A block of four-
/// character groups decodes to what the general loop gives for it; None for anything else
/// (a space, a stray `=`, a `-`, a group cut short), which the general loop then decodes.
fn base64_lines(data: &[u8], start: usize, stop: Stop) -> Option<Vec<u8>> {
    let end = match stop {
        Stop::End => data.len(),
        Stop::Boundary(dash) => dash,
    };
    let b = data.get(start..end)?;
    // Decoded straight into the spare capacity: zeroing a buffer of the attachment's size
    // first cost as much as a tenth of decoding it.
    let mut out: Vec<u8> = Vec::with_capacity(b.len() / 4 * 3 + 3);
    let mut block: Vec<u8> = Vec::with_capacity(B64_BLOCK + 128);
    let mut flush = |block: &mut Vec<u8>, all: bool| -> Option<()> {
        let n = if all {
            block.len()
        } else {
            block.len() / 4 * 4
        };
        let dst = out.spare_capacity_mut();
        // Never more than three bytes per four in, which the capacity allows for.
        if dst.len() < n / 4 * 3 + 3 {
            return None;
        }
        let k = base64_simd::STANDARD
            .decode(&block[..n], base64_simd::Out::from_uninit_slice(dst))
            .ok()?
            .len();
        // SAFETY: `decode` initialised the first `k` bytes of the spare capacity.
        unsafe { out.set_len(out.len() + k) };
        block.drain(..n);
        Some(())
    };
    let mut pos = 0;
    // Lines are nearly always of one length: look where the last one ended before searching.
    let mut len = usize::MAX;
    while pos < b.len() {
        let next = match pos.checked_add(len).map(|e| (e, b.get(e))) {
            Some((e, Some(b'\r' | b'\n'))) => e,
            _ => {
                let e = memchr::memchr2(b'\r', b'\n', &b[pos..]).map_or(b.len(), |i| pos + i);
                len = e - pos;
                e
            }
        };
        // A line break guessed wrong leaves a CR or LF in the block, which fails to decode.
        block.extend_from_slice(&b[pos..next]);
        pos = next + 1;
        if b.get(next) == Some(&b'\r') && b.get(pos) == Some(&b'\n') {
            pos += 1;
        }
        if block.len() >= B64_BLOCK {
            flush(&mut block, false)?;
        }
    }
    if !block.is_empty() {
        flush(&mut block, true)?;
    }
    Some(out)
}

/// Standard base64 alphabet values; 0xff for every other byte.
static B64: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut v = 0u8;
    while v < 64 {
        let c = match v {
            0..=25 => b'A' + v,
            26..=51 => b'a' + (v - 26),
            52..=61 => b'0' + (v - 52),
            62 => b'+',
            _ => b'/',
        };
        t[c as usize] = v;
        v += 1;
    }
    t
};

/// Decodes whole groups of four alphabet characters from `b[*k..]` into `out[*o..]` (which has
/// room for them) until a byte that is not in the alphabet: the run between line breaks that
/// is nearly all of a base64 body. Same bytes as the general loop gives for such groups.
#[inline]
fn base64_groups(b: &[u8], k: &mut usize, out: &mut [u8], o: &mut usize) {
    // Values of four characters, and their OR: 0x80 is set when one is not in the alphabet.
    let group = |q: &[u8]| {
        let (w, x, y, z) = (
            B64[q[0] as usize],
            B64[q[1] as usize],
            B64[q[2] as usize],
            B64[q[3] as usize],
        );
        let n = (w as u32) << 18 | (x as u32) << 12 | (y as u32) << 6 | z as u32;
        (n, w | x | y | z)
    };
    // Eight characters to six bytes at a time; the zip bounds both slices once.
    let (src, dst) = (
        b.get(*k..).unwrap_or_default(),
        out.get_mut(*o..).unwrap_or_default(),
    );
    for (q, d) in src.chunks_exact(8).zip(dst.chunks_exact_mut(6)) {
        let ((a, fa), (c, fc)) = (group(&q[..4]), group(&q[4..]));
        if (fa | fc) & 0x80 != 0 {
            break;
        }
        let n = (a as u64) << 24 | c as u64;
        d.copy_from_slice(&n.to_be_bytes()[2..]);
        *k += 8;
        *o += 6;
    }
    while let (Some(q), Some(dst)) = (b.get(*k..*k + 4), out.get_mut(*o..*o + 3)) {
        let (a, fa) = group(q);
        if fa & 0x80 != 0 {
            break;
        }
        dst.copy_from_slice(&a.to_be_bytes()[1..]);
        *k += 4;
        *o += 3;
    }
}

/// Base64, as mail-parser decodes it: space, tab, CR and LF skipped, `=` flushes the bytes
/// pending (even a partial one) and decoding goes on after it, any other byte, or `--` that
/// does not start the boundary, makes the part malformed.
pub(crate) fn base64(data: &[u8], start: usize, stop: Stop) -> Result<Vec<u8>, Malformed> {
    if let Some(out) = base64_lines(data, start, stop) {
        return Ok(out);
    }
    let end = match stop {
        Stop::End => data.len(),
        Stop::Boundary(dash) => dash + 2,
    };
    let b = data.get(start..end).ok_or(Malformed::Base64)?;
    // Never more than three bytes out for four in.
    let mut out = vec![0u8; b.len() / 4 * 3 + 3];
    let mut o = 0usize;
    let mut chunk: u32 = 0;
    let mut count: u8 = 0;
    let mut last = b'\n';
    let mut k = 0usize;
    while k < b.len() {
        if count == 0 {
            let k0 = k;
            base64_groups(b, &mut k, &mut out, &mut o);
            if k > k0 {
                last = b[k - 1];
                continue;
            }
        }
        let c = b[k];
        let val = BASE64_MAP[count as usize][c as usize];
        if val < 0x01ff_ffff {
            count = (count + 1) & 3;
            if count == 1 {
                chunk = val;
            } else {
                chunk |= val;
                if count == 0 {
                    out[o..o + 3].copy_from_slice(&chunk.to_le_bytes()[..3]);
                    o += 3;
                }
            }
        } else {
            match c {
                b'=' => match count {
                    1 | 2 => {
                        out[o] = chunk.to_le_bytes()[0];
                        o += 1;
                        count = 0;
                    }
                    3 => {
                        out[o..o + 2].copy_from_slice(&chunk.to_le_bytes()[..2]);
                        o += 2;
                        count = 0;
                    }
                    _ => {}
                },
                b'\n' | b' ' | b'\t' | b'\r' => {}
                b'-' if last == b'-' => {
                    return match stop {
                        Stop::Boundary(dash) if start + k == dash + 1 => {
                            out.truncate(o);
                            Ok(out)
                        }
                        _ => Err(Malformed::Base64),
                    };
                }
                b'-' => {}
                _ => return Err(Malformed::Base64),
            }
        }
        last = c;
        k += 1;
    }
    out.truncate(o);
    Ok(out)
}
