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

/// IBAN length per country, from the SWIFT IBAN registry (release 100, 2025): every country
/// that issues IBANs. Territories that use their parent's code (French overseas departments
/// use FR, the Crown dependencies GB, Åland FI) need no entry of their own.
fn iban_length(cc: [u8; 2]) -> Option<usize> {
    let n = match &cc {
        b"AD" => 24,
        b"AE" => 23,
        b"AL" => 28,
        b"AT" => 20,
        b"AZ" => 28,
        b"BA" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BI" => 27,
        b"BR" => 29,
        b"BY" => 28,
        b"CH" => 21,
        b"CR" => 22,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DJ" => 27,
        b"DK" => 18,
        b"DO" => 28,
        b"EE" => 20,
        b"EG" => 29,
        b"ES" => 24,
        b"FI" => 18,
        b"FK" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GE" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"GT" => 28,
        b"HN" => 28,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IQ" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"JO" => 30,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LC" => 32,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"LY" => 25,
        b"MC" => 27,
        b"MD" => 24,
        b"ME" => 22,
        b"MK" => 19,
        b"MN" => 20,
        b"MR" => 27,
        b"MT" => 31,
        b"MU" => 30,
        b"NI" => 28,
        b"NL" => 18,
        b"NO" => 15,
        b"OM" => 23,
        b"PK" => 24,
        b"PL" => 28,
        b"PS" => 29,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"RS" => 22,
        b"RU" => 33,
        b"SA" => 24,
        b"SC" => 31,
        b"SD" => 18,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"SO" => 23,
        b"ST" => 25,
        b"SV" => 28,
        b"TL" => 23,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        b"VA" => 22,
        b"VG" => 24,
        b"XK" => 20,
        b"YE" => 30,
        _ => return None,
    };
    Some(n)
}

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
mod tests {
    use super::*;

    fn values(c: &[Candidate]) -> Vec<&str> {
        c.iter().map(|c| c.value.as_str()).collect()
    }

    fn spans<'a>(text: &'a str, c: &[Candidate]) -> Vec<&'a str> {
        c.iter().map(|c| &text[c.start..c.end]).collect()
    }

    // --- BSN ---------------------------------------------------------------------------------

    #[test]
    fn bsn_valid_known_numbers() {
        for n in [
            "111222333",
            "123456782",
            "999990019",
            "999990032",
            "999993653",
            "010000446",
        ] {
            assert!(bsn_valid(n), "{n} should be valid");
        }
        // 8 digits, zero-padded: 10000446 -> 010000446.
        assert!(bsn_valid("10000446"));
    }

    #[test]
    fn bsn_invalid_numbers() {
        for n in [
            "123456789", // fails the 11-check
            "111222334", // one digit off
            "111222332",
            "211222333",
            "000000000", // all zeros pass the sum but are not a BSN
            "00000000",
            "12345678",   // 8 digits, padded 012345678 fails
            "1112223333", // 10 digits
            "1112223",    // 7 digits
            "11122233a",
            "111 222 333", // separators are not part of the compact form
            "",
            "１１１２２２３３３", // fullwidth digits are not ASCII digits
        ] {
            assert!(!bsn_valid(n), "{n} should be invalid");
        }
    }

    #[test]
    fn find_bsn_plain_and_separated() {
        for text in [
            "bsn 111222333 van de client",
            "bsn 111.222.333 van de client",
            "bsn 111-222-333 van de client",
            "bsn 111 222 333 van de client",
            "bsn 1112 22 333 van de client",
            "bsn 1112.22.333 van de client",
            "bsn: 111222333.",
            "(111222333)",
            "111222333",
        ] {
            let found = find_bsn(text);
            assert_eq!(values(&found), vec!["111222333"], "in {text:?}");
            assert_eq!(found[0].kind, Kind::Bsn);
            let span = &text[found[0].start..found[0].end];
            assert!(
                span.starts_with("111") && span.ends_with("333"),
                "span {span:?} in {text:?}"
            );
        }
    }

    #[test]
    fn find_bsn_offsets_are_bytes() {
        let text = "één cliënt: 123456782 ok";
        let found = find_bsn(text);
        assert_eq!(spans(text, &found), vec!["123456782"]);
        assert_eq!(found[0].start, text.find("123").unwrap());
    }

    #[test]
    fn find_bsn_eight_digits_padded() {
        let found = find_bsn("sofinummer 10000446");
        assert_eq!(values(&found), vec!["010000446"]);
    }

    #[test]
    fn find_bsn_only_valid() {
        assert!(find_bsn("nummer 123456789").is_empty());
        assert!(find_bsn("nummer 111.222.334").is_empty());
        assert_eq!(
            values(&find_bsn("a 123456789 b 123456782")),
            vec!["123456782"]
        );
    }

    #[test]
    fn find_bsn_multiple() {
        let text = "111222333, 123456782 en 999990019";
        assert_eq!(
            values(&find_bsn(text)),
            vec!["111222333", "123456782", "999990019"]
        );
    }

    #[test]
    fn find_bsn_not_inside_longer_runs() {
        assert!(bsn_valid("10000446") && bsn_valid("111222333")); // premises of the cases below
        for text in [
            "1111222333",       // 10 digits
            "01112223330",      // embedded
            "ref 9111222333 x", // longer number
            "0612345678",       // 10-digit phone number
            "bel 06-12345678",  // phone with dash
            "bel 06 12345678",  // phone with space: 8-digit part is not tried alone
            "bel 06 10000446",  // same, with an 8-digit part that passes the 11-check
            "+31 6 12345678 9", // international phone number
            "+31 611122233",    // 9 digits after +31 6.. still a phone
            "+111222333",       // a '+' number is a phone number
            "ab111222333",      // glued to letters
            "111222333ab",
            "x111.222.333",
            "111222333,50",    // an amount
            "€ 1.111.222.333", // a longer amount
            "12/111222333",
            "1112.22.333.4",      // extra group
            "nr 020 111 222 333", // a 12-digit space-grouped number, not a BSN after 020
        ] {
            assert!(
                find_bsn(text).is_empty(),
                "no BSN expected in {text:?}, got {:?}",
                find_bsn(text)
            );
        }
    }

    #[test]
    fn find_bsn_dates_are_not_bsns() {
        // 15-03-2024 is 8 digits and padded (015032024) passes the 11-check, so only the shape
        // rule keeps it out. Check that premise so this test can fail for the right reason.
        assert!(bsn_valid("15032024"));
        for text in [
            "op 12-03-2024 gezien",
            "op 15-03-2024 gezien",
            "op 15.03.2024 gezien",
            "op 15 03 2024 gezien",
            "op 2024-03-15 gezien",
        ] {
            assert!(find_bsn(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn find_bsn_not_in_iban() {
        // Decision: the digits of an IBAN are never a BSN. NL91ABNA0417164300 holds 0417164300
        // (10 digits, glued to letters); 417164300 alone would not be valid either way, so use
        // an IBAN-like string whose trailing 9 digits are a valid BSN to make the test bite.
        assert!(bsn_valid("111222333"));
        for text in [
            "nl91abna0417164300",
            "nl91 abna 0417 1643 00",
            "nl02abna0111222333",
            "nl02 abna 0111 2223 33",
            "nl91abna111222333",
        ] {
            assert!(find_bsn(text).is_empty(), "{text:?}");
        }
    }

    #[test]
    fn find_bsn_table_columns() {
        // Text extracted from a spreadsheet: columns separated by spaces.
        let text = "1 111222333 jansen 2 123456782 de vries";
        assert_eq!(values(&find_bsn(text)), vec!["111222333", "123456782"]);
        assert_eq!(spans(text, &find_bsn(text)), vec!["111222333", "123456782"]);
        let text = "111.222.333 123.456.782";
        assert_eq!(values(&find_bsn(text)), vec!["111222333", "123456782"]);
    }

    // --- IBAN --------------------------------------------------------------------------------

    const VALID_IBANS: &[&str] = &[
        "NL91ABNA0417164300",
        "NL02ABNA0123456789",
        "NL20INGB0001234567",
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "GB29NWBK60161331926819",
        "BE68539007547034",
        "FR1420041010050500013M02606",
        "ES9121000418450200051332",
        "IT60X0542811101000000123456",
        "AT611904300234573201",
        "CH9300762011623852957",
        "NO9386011117947",
        "MT84MALT011000012345MTLCAST001S",
        "LU280019400644750000",
        "PL61109010140000071219812874",
        "SE4550000000058398257466",
        "DK5000400440116243",
        "IE29AIBK93115212345678",
    ];

    #[test]
    fn iban_valid_known_numbers() {
        for s in VALID_IBANS {
            assert!(iban_valid(s), "{s} should be valid");
            assert!(
                iban_valid(&s.to_lowercase()),
                "{s} lowercase should be valid"
            );
        }
        assert!(iban_valid("NL91 ABNA 0417 1643 00"));
        assert!(iban_valid("de89 3704 0044 0532 0130 00"));
    }

    #[test]
    fn iban_invalid_numbers() {
        for s in [
            "NL91ABNA0417164301",  // last digit off
            "NL92ABNA0417164300",  // check digits off
            "NL91ABNA0417164",     // too short for NL
            "NL91ABNA04171643000", // too long for NL
            "DE89370400440532013001",
            "DE8937040044053201300", // 21 chars, DE is 22
            "GB82WEST12345698765433",
            "BE68539007547035",
            "BE685390075470",
            "XX89370400440532013000", // no such country
            "US64SVBKUS6S3300958879", // not an IBAN country
            "NL91-ABNA-0417-1643-00", // dashes are not ignored
            "NL9XABNA0417164300",
            "",
            "NL",
        ] {
            assert!(!iban_valid(s), "{s} should be invalid");
        }
    }

    #[test]
    fn iban_check_digit_rule() {
        // A valid number, then the same with check digits replaced by an equivalent mod 97
        // (97 -> 00): passes mod-97 but is not a well-formed IBAN.
        // Find a BBAN whose check digits are 97 or 98 to make the 00/01 case concrete.
        let bban = "ABNA0417164300";
        let mut found = None;
        for last in 0..100 {
            let cand = format!("NL97{}{:02}", &bban[..12], last);
            if iban_valid(&cand) {
                found = Some(cand);
                break;
            }
        }
        let good = found.expect("some NL number has check digits 97");
        let bad = format!("NL00{}", &good[4..]);
        assert!(!iban_valid(&bad), "{bad}");
    }

    #[test]
    fn find_iban_in_normalised_text() {
        let text = "graag overmaken naar nl91abna0417164300 t.n.v. de stichting";
        let found = find_iban(text);
        assert_eq!(values(&found), vec!["NL91ABNA0417164300"]);
        assert_eq!(spans(text, &found), vec!["nl91abna0417164300"]);
        assert_eq!(found[0].kind, Kind::Iban);
    }

    #[test]
    fn find_iban_grouped_and_several() {
        let text =
            "iban: nl91 abna 0417 1643 00, of de89 3704 0044 0532 0130 00 of BE68 5390 0754 7034.";
        let found = find_iban(text);
        assert_eq!(
            values(&found),
            vec![
                "NL91ABNA0417164300",
                "DE89370400440532013000",
                "BE68539007547034"
            ]
        );
        assert_eq!(
            spans(text, &found),
            vec![
                "nl91 abna 0417 1643 00",
                "de89 3704 0044 0532 0130 00",
                "BE68 5390 0754 7034"
            ]
        );
    }

    #[test]
    fn find_iban_all_valid_examples() {
        for s in VALID_IBANS {
            let lower = s.to_lowercase();
            let grouped: String = lower
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(" ");
            for text in [format!("rek. {lower} dank"), format!("rek. {grouped} dank")] {
                assert_eq!(values(&find_iban(&text)), vec![*s], "in {text:?}");
            }
        }
    }

    #[test]
    fn find_iban_rejects_invalid_and_glued() {
        for text in [
            "nl91abna0417164301",      // one digit off
            "nl91abna04171643",        // wrong length
            "nl91abna041716430012",    // too long
            "xnl91abna0417164300",     // glued before
            "nl91abna0417164300x",     // glued after
            "nl91 abna 0417 1643 001", // last group makes it too long
            "nl91abna0417164300é",     // glued to a non-ASCII letter
        ] {
            assert!(
                find_iban(text).is_empty(),
                "{text:?}: {:?}",
                find_iban(text)
            );
        }
    }

    // --- cards -------------------------------------------------------------------------------

    const VALID_CARDS: &[&str] = &[
        "4111111111111111", // Visa
        "4012888888881881", // Visa
        "4222222222222",    // Visa, 13 digits
        "5500005555555559", // Mastercard
        "5555555555554444", // Mastercard
        "2223003122003222", // Mastercard 2-series
        "378282246310005",  // Amex
        "371449635398431",  // Amex
        "6011111111111117", // Discover
        "30569309025904",   // Diners, 14 digits
        "3530111333300000", // JCB
        "6759649826438453", // Maestro
    ];

    #[test]
    fn luhn_valid_known_numbers() {
        for n in VALID_CARDS {
            assert!(luhn_valid(n), "{n} should be valid");
        }
        assert!(luhn_valid("4111111111111111110")); // 19 digits
    }

    #[test]
    fn luhn_invalid_numbers() {
        for n in [
            "4111111111111112", // last digit off
            "5500005555555558",
            "378282246310006",
            "6011111111111118",
            "1234567812345678",
            "0000000000000000",     // passes Luhn, all the same digit
            "000000000000",         // 12 digits
            "411111111111",         // 12 digits
            "41111111111111111111", // 20 digits
            "4111 1111 1111 1111",  // separators are not digits
            "411111111111111a",
            "",
        ] {
            assert!(!luhn_valid(n), "{n} should be invalid");
        }
        assert!(!luhn_check(b"0000000000000000"));
    }

    #[test]
    fn find_cards_plain_and_grouped() {
        for (text, want) in [
            ("kaart 4111111111111111 exp 12/27", "4111111111111111"),
            ("kaart 4111 1111 1111 1111 exp", "4111111111111111"),
            ("kaart 4111-1111-1111-1111.", "4111111111111111"),
            ("mc 5500 0055 5555 5559", "5500005555555559"),
            ("amex 3782 822463 10005", "378282246310005"),
            ("amex 378282246310005", "378282246310005"),
            ("discover 6011-1111-1111-1117", "6011111111111117"),
            ("(6011111111111117)", "6011111111111117"),
        ] {
            let found = find_cards(text);
            assert_eq!(values(&found), vec![want], "in {text:?}");
            assert_eq!(found[0].kind, Kind::Card);
            let span = &text[found[0].start..found[0].end];
            assert_eq!(
                span.chars().filter(char::is_ascii_digit).count(),
                want.len(),
                "{span:?}"
            );
        }
    }

    #[test]
    fn find_cards_rejects() {
        for text in [
            "4111111111111112", // Luhn fails
            "4111 1111 1111 1112",
            "14111111111111111",      // longer digit run (17 digits, Luhn fails)
            "41111111111111111",      // longer digit run
            "4111.1111.1111.1111",    // dots are not card separators: a longer number
            "4111  1111 1111 1111",   // double space: not one number; parts too short
            "x4111111111111111",      // glued to a letter
            "gb82west12345698765432", // digits inside an IBAN
            "0000 0000 0000 0000",
            "+4111111111111111",
            "41111 1111 1111 111", // Luhn-valid digits, but not a card grouping
        ] {
            assert!(
                find_cards(text).is_empty(),
                "{text:?}: {:?}",
                find_cards(text)
            );
        }
    }

    #[test]
    fn find_cards_table_columns() {
        let text = "1 4111111111111111 2 5500005555555559";
        assert_eq!(
            values(&find_cards(text)),
            vec!["4111111111111111", "5500005555555559"]
        );
    }

    #[test]
    fn card_inside_longer_digit_run_not_reported() {
        // 4111111111111111 followed by 0: the 17-digit run is not a card even though its
        // prefix is one. Premise: the prefix is Luhn-valid.
        assert!(luhn_valid("4111111111111111"));
        assert!(find_cards("41111111111111110").is_empty());
        assert!(find_cards("4111-1111-1111-1111-0").is_empty());
        // A Luhn-valid 17-digit run that contains a valid 16-digit card is reported as the
        // 17-digit number it is (a legal card length), never as the inner 16 digits.
        assert!(luhn_valid("04111111111111111"));
        assert_eq!(
            values(&find_cards("04111111111111111")),
            vec!["04111111111111111"]
        );
    }

    #[test]
    fn card_followed_or_preceded_by_other_space_separated_digits() {
        // Premise: 4111111111111111 + 123 as one 19-digit number fails Luhn, so the whole run
        // is not a card and only the piece search can find it.
        assert!(!luhn_valid("4111111111111111123"));
        for text in [
            "4111 1111 1111 1111 123",
            "4111 1111 1111 1111 0",
            "1 4111 1111 1111 1111",
            "nr 12 4111 1111 1111 1111 exp 12 27",
        ] {
            let found = find_cards(text);
            assert_eq!(values(&found), vec!["4111111111111111"], "in {text:?}");
            assert_eq!(&text[found[0].start..found[0].end], "4111 1111 1111 1111");
        }
        // A last group of 1 or 2 digits is not how cards are written: 4111 1111 1111 1111 3
        // (Luhn-valid as 17 digits) is the card plus a stray digit, reported as the card.
        assert!(luhn_valid("41111111111111113"));
        assert_eq!(
            values(&find_cards("4111 1111 1111 1111 3")),
            vec!["4111111111111111"]
        );
    }

    // --- masking -----------------------------------------------------------------------------

    #[test]
    fn mask_never_reveals_the_value() {
        assert_eq!(mask(Kind::Bsn, "111222333"), "******333");
        assert_eq!(mask(Kind::Card, "4111111111111111"), "**** **** **** 1111");
        assert_eq!(mask(Kind::Card, "378282246310005"), "**** **** **** 0005");
        assert_eq!(
            mask(Kind::Iban, "NL91ABNA0417164300"),
            "NL** **** **** **43 00"
        );
        assert_eq!(
            mask(Kind::Iban, "nl91 abna 0417 1643 00"),
            "NL** **** **** **43 00"
        );
        assert_eq!(mask(Kind::Iban, "BE68539007547034"), "BE** **** **** 7034");
        for (kind, v) in [
            (Kind::Bsn, "111222333"),
            (Kind::Iban, "DE89370400440532013000"),
            (Kind::Card, "5500005555555559"),
            (Kind::Bsn, "12"),
            (Kind::Card, "4111"),
            (Kind::Iban, "NL91"),
        ] {
            let m = mask(kind, v);
            let shown: String = m.chars().filter(|c| c.is_alphanumeric()).collect();
            assert!(shown.len() <= 6, "{m:?} shows too much of {v}");
            assert!(!m.contains(v), "{m:?} contains {v}");
        }
    }

    #[test]
    fn find_then_mask_round_trip() {
        let text = "bsn 123456782, iban nl91abna0417164300, kaart 4111 1111 1111 1111";
        let b = find_bsn(text);
        let i = find_iban(text);
        let c = find_cards(text);
        assert_eq!(mask(Kind::Bsn, &b[0].value), "******782");
        assert_eq!(mask(Kind::Iban, &i[0].value), "NL** **** **** **43 00");
        assert_eq!(mask(Kind::Card, &c[0].value), "**** **** **** 1111");
        assert_eq!((b.len(), i.len(), c.len()), (1, 1, 1));
    }

    #[test]
    fn scanners_are_linear_on_large_input() {
        // 2 MB of digits and separators: would be quadratic if a scanner restarted per byte.
        let chunk = "1 2 3 4 5 6 7 8 9 0 ";
        let big = chunk.repeat(100_000);
        let t = std::time::Instant::now();
        assert!(find_bsn(&big).is_empty());
        assert!(find_cards(&big).is_empty());
        assert!(find_iban(&big).is_empty());
        let nl = "nl12 ".repeat(200_000);
        assert!(find_iban(&nl).is_empty());
        assert!(t.elapsed().as_secs() < 5, "took {:?}", t.elapsed());
    }
}
