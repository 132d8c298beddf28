//! Validated identifiers: Dutch BSN (11-check), IBAN (ISO 13616, mod-97, every country in the
//! SWIFT IBAN registry) and payment card numbers (Luhn).
//!
//! The scanners (`scan.rs`) run over every text of every message, so `find_all` finds all
//! three kinds in one linear pass that jumps from digit run to digit run, with hand-written
//! scanners: no regex, no allocation per character (one small reusable buffer per call, one
//! `String` per candidate found). `find_bsn`, `find_iban` and `find_cards` are that pass for
//! one kind.
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

mod scan;
pub use scan::{Found, Wanted, find_all, find_bsn, find_cards, find_iban};

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
