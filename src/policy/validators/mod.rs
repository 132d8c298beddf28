//! Validated identifiers: Dutch BSN (11-check), IBAN (ISO 13616, mod-97, every country in the
//! SWIFT IBAN registry) and payment card numbers (Luhn).
//!
//! The `find_*` scanners run over every text of every message, so each is one linear pass over
//! the bytes with a hand-written scanner: no regex, no allocation per character (one small
//! reusable buffer per call, one `String` per candidate found).
//!
//! What counts as "one number" (shared by `find_bsn` and `find_cards`):
//!
//! * A *run* is a maximal sequence of digit groups joined by single separators, each separator
//!   with a digit on both sides. BSN separators are `.`, `-` and space; card separators are `-`
//!   and space. A run whose neighbour is a letter or digit (`ab111222333`, the digits inside an
//!   IBAN such as `nl91abna0417164300`), that follows a `+` (an international phone number), or
//!   that continues as a number through other punctuation (`111222333,50`, `12/111222333`,
//!   `4111.1111.1111.1111`) is part of something longer and yields nothing.
//! * The whole run is a candidate when its digit count and grouping fit the identifier (see
//!   [`bsn_shape`] and [`card_shape`]) and it passes the checksum. So `+31 6 12345678 9`, a
//!   10-digit phone number `0612345678` or `06-12345678`, and a date `12-03-2024` are never BSNs.
//! * Judgement call: spaces are also how text extracted from tables and spreadsheets separates
//!   columns (`1 111222333 jansen`), and how a card number is followed by an expiry date or
//!   CVC (`4111 1111 1111 1111 123`). When the whole run does not fit, its pieces between
//!   spaces are tried on their own, left to right. For BSN a piece is the digits between two
//!   spaces (joined by `.` or `-` only) and must have exactly 9 digits: an 8-digit piece next
//!   to other digit groups is far more likely a phone number, `06 12345678`, than an old 8-digit
//!   sofinummer. For cards a piece may itself be space-grouped (`4111 1111 1111 1111`) and must
//!   have the card shape; the longest fitting piece wins.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bsn,
    Iban,
    Card,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub kind: Kind,
    /// Byte offset of the first character of the identifier as written in the input.
    pub start: usize,
    /// Byte offset just past the last character of the identifier as written.
    pub end: usize,
    /// Compact form: digits only (a BSN always as 9 digits, an 8-digit one zero-padded), or the
    /// IBAN in uppercase without spaces.
    pub value: String,
}

// ---------------------------------------------------------------------------------------------
// Validators
// ---------------------------------------------------------------------------------------------

/// Dutch BSN (burgerservicenummer, formerly sofinummer): 9 digits, or 8 digits that are
/// zero-padded on the left, passing the 11-check 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 ≡ 0 (mod 11).
/// All zeros and anything that is not only ASCII digits is invalid.
pub fn bsn_valid(digits: &str) -> bool {
    let b = digits.as_bytes();
    if !(b.len() == 8 || b.len() == 9) || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut d = [0u8; 9];
    let pad = 9 - b.len();
    for (i, &c) in b.iter().enumerate() {
        d[pad + i] = c - b'0';
    }
    bsn_check(&d)
}

fn bsn_check(d: &[u8; 9]) -> bool {
    if d.iter().all(|&x| x == 0) {
        return false;
    }
    let mut sum: i32 = 0;
    for (i, &x) in d[..8].iter().enumerate() {
        sum += (9 - i as i32) * x as i32;
    }
    sum -= d[8] as i32;
    sum.rem_euclid(11) == 0
}

mod iban;
use iban::iban_length;

const IBAN_MIN: usize = 15;
const IBAN_MAX: usize = 34;

/// IBAN check on the compact form (uppercase ASCII, no spaces): known country, its exact
/// length, numeric check digits other than 00/01/99, alphanumeric BBAN, mod-97 == 1.
fn iban_check(c: &[u8]) -> bool {
    if c.len() < IBAN_MIN || c.len() > IBAN_MAX {
        return false;
    }
    if !c[0].is_ascii_uppercase() || !c[1].is_ascii_uppercase() {
        return false;
    }
    if iban_length([c[0], c[1]]) != Some(c.len()) {
        return false;
    }
    if !c[2].is_ascii_digit() || !c[3].is_ascii_digit() {
        return false;
    }
    // Check digits are computed as 98 - (n mod 97): always 02..=98.
    if matches!(&c[2..4], b"00" | b"01" | b"99") {
        return false;
    }
    if !c[4..]
        .iter()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        return false;
    }
    let mut r: u32 = 0;
    for &b in c[4..].iter().chain(c[..4].iter()) {
        r = if b.is_ascii_digit() {
            (r * 10 + (b - b'0') as u32) % 97
        } else {
            (r * 100 + (b - b'A' + 10) as u32) % 97
        };
    }
    r == 1
}

/// IBAN: spaces ignored, case-insensitive; the country must be in the IBAN registry with the
/// IBAN of exactly its length, and the mod-97 check must give 1.
pub fn iban_valid(s: &str) -> bool {
    let mut buf = [0u8; IBAN_MAX];
    let mut n = 0;
    for &b in s.as_bytes() {
        if b == b' ' {
            continue;
        }
        if !b.is_ascii_alphanumeric() || n == IBAN_MAX {
            return false;
        }
        buf[n] = b.to_ascii_uppercase();
        n += 1;
    }
    iban_check(&buf[..n])
}

/// Payment card number: 13 to 19 ASCII digits, Luhn checksum, not all the same digit.
pub fn luhn_valid(digits: &str) -> bool {
    let b = digits.as_bytes();
    (13..=19).contains(&b.len()) && b.iter().all(u8::is_ascii_digit) && luhn_check(b)
}

fn luhn_check(b: &[u8]) -> bool {
    if b.iter().all(|&x| x == b[0]) {
        return false;
    }
    let mut sum = 0u32;
    for (i, &c) in b.iter().rev().enumerate() {
        let mut d = (c - b'0') as u32;
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

// ---------------------------------------------------------------------------------------------
// Scanners
// ---------------------------------------------------------------------------------------------

/// One digit group of a run: byte range, and the separator byte before it (0 for the first).
#[derive(Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
    sep: u8,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

fn char_before(text: &str, i: usize) -> Option<char> {
    text[..i].chars().next_back()
}

fn char_after(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next()
}

/// Punctuation that continues a number when a digit follows (or precedes) it.
fn is_number_punct(c: char) -> bool {
    matches!(c, '.' | ',' | '-' | '/' | ':')
}

/// Whether the run at `start..end` stands alone: not glued to letters or digits, not after a
/// `+` (phone number), not continuing as a number through punctuation.
fn run_stands_alone(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    if let Some(c) = char_before(text, start) {
        if c.is_alphanumeric() || c == '+' {
            return false;
        }
        let p = start - c.len_utf8();
        if is_number_punct(c) && p > 0 && b[p - 1].is_ascii_digit() {
            return false;
        }
    }
    if let Some(c) = char_after(text, end) {
        if c.is_alphanumeric() {
            return false;
        }
        let n = end + c.len_utf8();
        if is_number_punct(c) && n < b.len() && b[n].is_ascii_digit() {
            return false;
        }
    }
    true
}

/// Reads the run that starts at the digit at `i` into `groups`; returns its end.
fn read_run(b: &[u8], mut i: usize, seps: &[u8], groups: &mut Vec<Group>) -> usize {
    groups.clear();
    let mut sep = 0u8;
    loop {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        groups.push(Group { start, end: i, sep });
        if i + 1 < b.len() && seps.contains(&b[i]) && b[i + 1].is_ascii_digit() {
            sep = b[i];
            i += 1;
        } else {
            return i;
        }
    }
}

/// Copies the digits of `groups` into `buf`; None when there are more than `buf` holds.
fn gather<'a>(b: &[u8], groups: &[Group], buf: &'a mut [u8; 19]) -> Option<&'a [u8]> {
    let mut n = 0;
    for g in groups {
        let d = &b[g.start..g.end];
        if n + d.len() > buf.len() {
            return None;
        }
        buf[n..n + d.len()].copy_from_slice(d);
        n += d.len();
    }
    Some(&buf[..n])
}

/// All separators between the groups are the same byte.
fn uniform_sep(groups: &[Group]) -> bool {
    groups.len() < 2 || groups[2..].iter().all(|g| g.sep == groups[1].sep)
}

/// Groupings in which a BSN is written: 9 digits plain or in groups of 2 to 4 digits
/// (`111.222.333`, `1112 22 333`, `11.12.22.333`); an old 8-digit number plain or in groups of
/// 2 to 4 digits, except the shapes of a date (`12-03-2024`, `2024-03-12`) and `12 34 56 78`.
fn bsn_shape(groups: &[Group], digits: usize) -> bool {
    if !(digits == 8 || digits == 9) || !uniform_sep(groups) {
        return false;
    }
    if groups.len() == 1 {
        return true;
    }
    if !groups.iter().all(|g| (2..=4).contains(&g.len())) {
        return false;
    }
    if digits == 8 {
        let lens = (
            groups.len(),
            groups[0].len(),
            groups[groups.len() - 1].len(),
        );
        return !matches!(lens, (3, 2, 4) | (3, 4, 2) | (4, 2, 2));
    }
    true
}

/// Groupings in which card numbers are written: plain 13-19 digits, or a first group of 4,
/// middle groups of 4 to 6 and a last group of 3 to 6 (`4111 1111 1111 1111`,
/// `3782 822463 10005`, `4111-1111-1111-1111-123`).
fn card_shape(groups: &[Group], digits: usize) -> bool {
    if !(13..=19).contains(&digits) || !uniform_sep(groups) {
        return false;
    }
    if groups.len() == 1 {
        return true;
    }
    let last = groups.len() - 1;
    groups[0].len() == 4
        && groups[1..last].iter().all(|g| (4..=6).contains(&g.len()))
        && (3..=6).contains(&groups[last].len())
}

fn digit_count(groups: &[Group]) -> usize {
    groups.iter().map(Group::len).sum()
}

/// Shared driver: finds runs and tries the whole run; when that is not a candidate and the run
/// has spaces, tries its pieces between spaces, left to right, each as long as possible (at
/// most 5 groups, more than any shape allows). With `inner_spaces` false a piece is exactly
/// the digits between two spaces (BSN); with it true a piece may itself be a space-grouped
/// number (cards: `4111 1111 1111 1111 123`). `accept(groups, whole)` returns the compact
/// value when the groups are a candidate.
fn scan_runs(
    text: &str,
    seps: &[u8],
    inner_spaces: bool,
    mut accept: impl FnMut(&[u8], &[Group], bool) -> Option<String>,
    kind: Kind,
) -> Vec<Candidate> {
    const MAX_PIECE_GROUPS: usize = 5;
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut groups: Vec<Group> = Vec::with_capacity(8);
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let end = read_run(b, i, seps, &mut groups);
        let start = i;
        i = end;
        if !run_stands_alone(text, start, end) {
            continue;
        }
        if let Some(value) = accept(b, &groups, true) {
            out.push(Candidate {
                kind,
                start,
                end,
                value,
            });
            continue;
        }
        if !groups.iter().any(|g| g.sep == b' ') {
            continue;
        }
        let n = groups.len();
        let mut p = 0;
        while p < n {
            if p > 0 && groups[p].sep != b' ' {
                p += 1;
                continue;
            }
            let mut found = None;
            for q in (p + 1..=n.min(p + MAX_PIECE_GROUPS)).rev() {
                if q < n && groups[q].sep != b' ' {
                    continue;
                }
                if !inner_spaces && groups[p + 1..q].iter().any(|g| g.sep == b' ') {
                    continue;
                }
                if let Some(value) = accept(b, &groups[p..q], false) {
                    found = Some((q, value));
                    break;
                }
            }
            match found {
                Some((q, value)) => {
                    out.push(Candidate {
                        kind,
                        start: groups[p].start,
                        end: groups[q - 1].end,
                        value,
                    });
                    p = q;
                }
                None => p += 1,
            }
        }
    }
    out
}

/// BSNs in `text`: 8 or 9 digits, plain or grouped with `.`, `-` or a space, standing alone
/// (see the module comment), passing the 11-check. The value is always 9 digits.
pub fn find_bsn(text: &str) -> Vec<Candidate> {
    scan_runs(
        text,
        b".- ",
        false,
        |b, groups, whole| {
            let digits = digit_count(groups);
            if !whole && digits != 9 {
                return None;
            }
            if !bsn_shape(groups, digits) {
                return None;
            }
            let mut buf = [0u8; 19];
            let d = gather(b, groups, &mut buf)?;
            let mut nine = [0u8; 9];
            let pad = 9 - d.len();
            for (k, &c) in d.iter().enumerate() {
                nine[pad + k] = c - b'0';
            }
            if !bsn_check(&nine) {
                return None;
            }
            Some(nine.iter().map(|&x| (b'0' + x) as char).collect())
        },
        Kind::Bsn,
    )
}

/// Payment card numbers in `text`: 13-19 digits, plain or grouped with single spaces or `-`,
/// standing alone (see the module comment), passing Luhn.
pub fn find_cards(text: &str) -> Vec<Candidate> {
    scan_runs(
        text,
        b"- ",
        true,
        |b, groups, _whole| {
            let digits = digit_count(groups);
            if !card_shape(groups, digits) {
                return None;
            }
            let mut buf = [0u8; 19];
            let d = gather(b, groups, &mut buf)?;
            if !luhn_check(d) {
                return None;
            }
            Some(String::from_utf8_lossy(d).into_owned())
        },
        Kind::Card,
    )
}

/// IBANs in `text` (normally normalised to lowercase; either case works): two letters, two
/// digits and the rest, written as one word (`nl91abna0417164300`) or in space-separated
/// groups (`nl91 abna 0417 1643 00`, groups of any size as long as the pieces add up to exactly
/// the country's length), not glued to other letters or digits; only valid ones.
pub fn find_iban(text: &str) -> Vec<Candidate> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        // `i` starts an ASCII alphanumeric word; find where it ends.
        let word_start = i;
        let mut word_end = i;
        while word_end < b.len() && b[word_end].is_ascii_alphanumeric() {
            word_end += 1;
        }
        i = word_end;
        let glued = char_before(text, word_start).is_some_and(char::is_alphanumeric);
        if glued
            || word_end - word_start < 4
            || !b[word_start].is_ascii_alphabetic()
            || !b[word_start + 1].is_ascii_alphabetic()
            || !b[word_start + 2].is_ascii_digit()
            || !b[word_start + 3].is_ascii_digit()
        {
            continue;
        }
        let cc = [
            b[word_start].to_ascii_uppercase(),
            b[word_start + 1].to_ascii_uppercase(),
        ];
        let Some(len) = iban_length(cc) else { continue };
        // Collect words joined by single spaces until exactly `len` characters.
        let mut buf = [0u8; IBAN_MAX];
        let mut n = 0;
        let (mut ws, mut we) = (word_start, word_end);
        let end = loop {
            if n + (we - ws) > len {
                break None;
            }
            for &c in &b[ws..we] {
                buf[n] = c.to_ascii_uppercase();
                n += 1;
            }
            if n == len {
                break Some(we);
            }
            if we + 1 < b.len() && b[we] == b' ' && b[we + 1].is_ascii_alphanumeric() {
                ws = we + 1;
                we = ws;
                while we < b.len() && b[we].is_ascii_alphanumeric() {
                    we += 1;
                }
            } else {
                break None;
            }
        };
        let Some(end) = end else { continue };
        if char_after(text, end).is_some_and(char::is_alphanumeric) {
            continue; // glued to a non-ASCII letter
        }
        if iban_check(&buf[..n]) {
            out.push(Candidate {
                kind: Kind::Iban,
                start: word_start,
                end,
                value: String::from_utf8_lossy(&buf[..n]).into_owned(),
            });
            i = end;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Masking
// ---------------------------------------------------------------------------------------------

/// A form of the identifier safe to show in notices, logs and `sluis explain`: never the whole
/// value. BSN: `******333` (last 3 digits); IBAN: country code and last 4 characters, in groups
/// of four (`NL** **** **** **43 00`); card: `**** **** **** 1111` (last 4 digits).
/// Values too short to mask safely are shown as stars only.
pub fn mask(kind: Kind, value: &str) -> String {
    let compact: Vec<char> = value
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect();
    let n = compact.len();
    let tail = |k: usize| -> String { compact[n - k..].iter().collect() };
    match kind {
        Kind::Bsn => {
            if n < 6 {
                return "*".repeat(9);
            }
            format!("{}{}", "*".repeat(n - 3), tail(3))
        }
        Kind::Card => {
            if n < 12 {
                return "**** **** **** ****".to_string();
            }
            format!("**** **** **** {}", tail(4))
        }
        Kind::Iban => {
            if n < 10 {
                return "** **** ****".to_string();
            }
            let mut s = String::with_capacity(n + n / 4);
            for (k, c) in compact.iter().enumerate() {
                if k > 0 && k % 4 == 0 {
                    s.push(' ');
                }
                let visible = k < 2 || k >= n - 4;
                let _ = s.write_char(if visible { *c } else { '*' });
            }
            s
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;
