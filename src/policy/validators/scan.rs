//! The scanners: one pass over a text finds BSNs, IBANs and card numbers together. Every one of
//! them starts at a digit (an IBAN at the two letters before its check digits), so the pass
//! jumps from one run of digits to the next, eight bytes at a time in between, and hands each
//! run to the scanners that want it. Each scanner keeps its own position, so the result is
//! what three separate passes (one per identifier, as `find_bsn` etc. run) give.

use super::{Candidate, IBAN_MAX, Kind, bsn_check, iban_check, iban_length, luhn_check};

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

/// Which identifiers to look for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    pub bsn: bool,
    pub iban: bool,
    pub card: bool,
}

/// What one pass found, per identifier, in text order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub bsn: Vec<Candidate>,
    pub iban: Vec<Candidate>,
    pub card: Vec<Candidate>,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Index of the first ASCII digit at or after `i`.
fn next_digit(b: &[u8], mut i: usize) -> Option<usize> {
    while i + 8 <= b.len() {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(chunk);
        // Bytes 0x30..=0x39; the high bit is cleared first so that the additions never carry.
        let y = x & !HIGHS;
        let digits = y.wrapping_add((0x80 - 0x30) * ONES)
            & !y.wrapping_add((0x80 - 0x3a) * ONES)
            & !x
            & HIGHS;
        if digits != 0 {
            return Some(i + digits.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    (i..b.len()).find(|&k| b[k].is_ascii_digit())
}

/// BSNs, IBANs and card numbers in `text`, those `wanted`, in one pass: the same as
/// `find_bsn`, `find_iban` and `find_cards`.
pub fn find_all(text: &str, wanted: Wanted) -> Found {
    let b = text.as_bytes();
    let mut found = Found::default();
    let mut groups: Vec<Group> = Vec::with_capacity(8);
    // Where each scanner may start its next match.
    let (mut bsn_next, mut card_next, mut iban_next) = (0, 0, 0);
    let mut i = 0;
    while let Some(p) = next_digit(b, i) {
        // `p` starts a run of digits: the byte before it is not a digit.
        if wanted.bsn && p >= bsn_next {
            bsn_next = run_at(
                text,
                p,
                BSN_SEPS,
                false,
                accept_bsn,
                Kind::Bsn,
                &mut groups,
                &mut found.bsn,
            );
        }
        if wanted.card && p >= card_next {
            card_next = run_at(
                text,
                p,
                CARD_SEPS,
                true,
                accept_card,
                Kind::Card,
                &mut groups,
                &mut found.card,
            );
        }
        // An IBAN candidate: a word of two ASCII letters and at least two digits.
        if wanted.iban
            && p >= 2
            && p - 2 >= iban_next
            && b[p - 1].is_ascii_alphabetic()
            && b[p - 2].is_ascii_alphabetic()
            && (p == 2 || !b[p - 3].is_ascii_alphanumeric())
            && b.get(p + 1).is_some_and(u8::is_ascii_digit)
            && let Some(c) = iban_at(text, p - 2)
        {
            iban_next = c.end;
            found.iban.push(c);
        }
        i = p + 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    found
}

/// BSNs in `text`: 8 or 9 digits, plain or grouped with `.`, `-` or a space, standing alone
/// (see the module comment), passing the 11-check. The value is always 9 digits.
pub fn find_bsn(text: &str) -> Vec<Candidate> {
    find_all(
        text,
        Wanted {
            bsn: true,
            ..Wanted::default()
        },
    )
    .bsn
}

/// Payment card numbers in `text`: 13-19 digits, plain or grouped with single spaces or `-`,
/// standing alone (see the module comment), passing Luhn.
pub fn find_cards(text: &str) -> Vec<Candidate> {
    find_all(
        text,
        Wanted {
            card: true,
            ..Wanted::default()
        },
    )
    .card
}

/// IBANs in `text` (normally normalised to lowercase; either case works): two letters, two
/// digits and the rest, written as one word (`nl91abna0417164300`) or in space-separated
/// groups (`nl91 abna 0417 1643 00`, groups of any size as long as the pieces add up to exactly
/// the country's length), not glued to other letters or digits; only valid ones.
pub fn find_iban(text: &str) -> Vec<Candidate> {
    find_all(
        text,
        Wanted {
            iban: true,
            ..Wanted::default()
        },
    )
    .iban
}

const BSN_SEPS: &[u8] = b".- ";
const CARD_SEPS: &[u8] = b"- ";

/// The run that starts at the digit at `start`: tries the whole run; when that is not a
/// candidate and the run has spaces, tries its pieces between spaces, left to right, each as
/// long as possible (at most 5 groups, more than any shape allows). With `inner_spaces` false
/// a piece is exactly the digits between two spaces (BSN); with it true a piece may itself be
/// a space-grouped number (cards: `4111 1111 1111 1111 123`). `accept(groups, whole)` returns
/// the compact value when the groups are a candidate. Returns the end of the run.
#[allow(clippy::too_many_arguments)]
fn run_at(
    text: &str,
    start: usize,
    seps: &[u8],
    inner_spaces: bool,
    accept: fn(&[u8], &[Group], bool) -> Option<String>,
    kind: Kind,
    groups: &mut Vec<Group>,
    out: &mut Vec<Candidate>,
) -> usize {
    const MAX_PIECE_GROUPS: usize = 5;
    let b = text.as_bytes();
    let end = read_run(b, start, seps, groups);
    if !run_stands_alone(text, start, end) {
        return end;
    }
    if let Some(value) = accept(b, groups, true) {
        out.push(Candidate {
            kind,
            start,
            end,
            value,
        });
        return end;
    }
    if !groups.iter().any(|g| g.sep == b' ') {
        return end;
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
    end
}

fn accept_bsn(b: &[u8], groups: &[Group], whole: bool) -> Option<String> {
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
}

fn accept_card(b: &[u8], groups: &[Group], _whole: bool) -> Option<String> {
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
}

/// The valid IBAN that starts at `word_start`, the start of an ASCII alphanumeric word (two
/// letters, two digits, ...), if there is one.
fn iban_at(text: &str, word_start: usize) -> Option<Candidate> {
    let b = text.as_bytes();
    let mut word_end = word_start;
    while word_end < b.len() && b[word_end].is_ascii_alphanumeric() {
        word_end += 1;
    }
    if char_before(text, word_start).is_some_and(char::is_alphanumeric)
        || word_end - word_start < 4
        || !b[word_start].is_ascii_alphabetic()
        || !b[word_start + 1].is_ascii_alphabetic()
        || !b[word_start + 2].is_ascii_digit()
        || !b[word_start + 3].is_ascii_digit()
    {
        return None;
    }
    let cc = [
        b[word_start].to_ascii_uppercase(),
        b[word_start + 1].to_ascii_uppercase(),
    ];
    let len = iban_length(cc)?;
    // Collect words joined by single spaces until exactly `len` characters.
    let mut buf = [0u8; IBAN_MAX];
    let mut n = 0;
    let (mut ws, mut we) = (word_start, word_end);
    let end = loop {
        if n + (we - ws) > len {
            return None;
        }
        for &c in &b[ws..we] {
            buf[n] = c.to_ascii_uppercase();
            n += 1;
        }
        if n == len {
            break we;
        }
        if we + 1 < b.len() && b[we] == b' ' && b[we + 1].is_ascii_alphanumeric() {
            ws = we + 1;
            we = ws;
            while we < b.len() && b[we].is_ascii_alphanumeric() {
                we += 1;
            }
        } else {
            return None;
        }
    };
    if char_after(text, end).is_some_and(char::is_alphanumeric) {
        return None; // glued to a non-ASCII letter
    }
    iban_check(&buf[..n]).then(|| Candidate {
        kind: Kind::Iban,
        start: word_start,
        end,
        value: String::from_utf8_lossy(&buf[..n]).into_owned(),
    })
}
