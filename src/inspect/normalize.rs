//! Text normalisation for matching: NFKC, lower case, diacritics folded, invisible characters
//! removed, whitespace collapsed.

use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Characters removed outright: zero-width space/non-joiner/joiner, word joiner, BOM / zero-width
/// no-break space, soft hyphen.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// NFKC, lowercase, diacritics removed (NFKD + drop combining marks, then NFC), zero-width
/// characters (U+200B..U+200D, U+2060, U+FEFF) and soft hyphen U+00AD removed, whitespace runs
/// collapsed to one ASCII space, trimmed.
///
/// Same output as `normalize_full`, faster: the text is cut into words at ASCII whitespace and
/// control characters; an all-ASCII word is only lowercased, any other word goes through
/// `normalize_word` on its own. That is exact because those separators are starters that
/// take part in no canonical composition and decompose to nothing else, so the Unicode
/// normalisation of the whole equals that of the pieces between them; and an ASCII word is
/// unchanged by NFKC/NFKD/NFC, has no marks, invisible or whitespace characters to drop.
/// `tests::fast_path_equals_full_path` checks this against `normalize_full`.
///
/// Separators write one space (none while the output is empty or already ends with one) and
/// a trailing space is dropped at the end. ASCII goes through a loop without unpredictable
/// branches (mail has a separator every few bytes): each byte is written, lowercased or as a
/// space, and the output length only advances when it is kept. A word with a non-ASCII byte
/// is taken back out of the output and replaced by its `normalize_word`.
pub fn normalize(s: &str) -> String {
    let b = s.as_bytes();
    let n = b.len();
    // Room for the rest of the input at every step (a normalised word may be longer).
    let mut out: Vec<u8> = vec![0; n];
    let mut len = 0;
    // The next separator is dropped: the output is empty or ends with a space.
    let mut drop_sep = true;
    // Where the current word starts, in `b` and in `out` (both just after a separator).
    let mut word_src = 0;
    let mut word_out = 0;
    let mut i = 0;
    while i < n {
        let c = b[i];
        if c >= 0x80 {
            // The word goes on with non-ASCII text: the whole word takes the full path.
            while i < n && !is_ascii_separator(b[i]) {
                i += 1;
            }
            // `word_src` and `i` sit next to ASCII bytes (or the ends): char boundaries.
            let word = normalize_word(&s[word_src..i]);
            len = word_out;
            let need = len + word.len() + (n - i);
            if out.len() < need {
                out.resize(need, 0);
            }
            out[len..len + word.len()].copy_from_slice(word.as_bytes());
            len += word.len();
            drop_sep = word.is_empty();
            continue;
        }
        let sep = is_ascii_separator(c);
        let lower = c | (u8::from(c.wrapping_sub(b'A') < 26) << 5);
        out[len] = if sep { b' ' } else { lower };
        len += usize::from(!(sep && drop_sep));
        drop_sep = sep;
        i += 1;
        if sep {
            word_src = i;
            word_out = len;
        }
    }
    if len > 0 && out[len - 1] == b' ' {
        len -= 1;
    }
    out.truncate(len);
    // Only whole UTF-8 words and ASCII bytes were copied: always valid.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// One word (no ASCII whitespace or control characters in it) with non-ASCII characters.
/// Words of ASCII and Latin-1 letters (Dutch, French, German ...) are folded per character
/// from a table made by `normalize_full`: such characters neither compose with nor reorder
/// around their neighbours, and fold to marks-free letters. Anything else: `normalize_full`.
fn normalize_word(word: &str) -> String {
    if !word
        .chars()
        .all(|c| c.is_ascii() || ('\u{C0}'..='\u{FF}').contains(&c))
    {
        return normalize_full(word);
    }
    let table = latin1_folded();
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else {
            out.push_str(&table[c as usize - 0xC0]);
        }
    }
    out
}

/// `normalize_full` of each character U+00C0..=U+00FF.
fn latin1_folded() -> &'static [String] {
    static TABLE: OnceLock<Vec<String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0xC0u8..=0xFF)
            .map(|b| normalize_full(char::from(b).encode_utf8(&mut [0; 4])))
            .collect()
    })
}

/// ASCII whitespace and control characters: every byte up to and including the space, and DEL.
fn is_ascii_separator(b: u8) -> bool {
    b <= b' ' || b == 0x7f
}

/// The reference implementation of `normalize`, char by char through the Unicode iterators.
fn normalize_full(s: &str) -> String {
    let lowered: String = s
        .chars()
        .filter(|c| !is_invisible(*c))
        .nfkc()
        .flat_map(char::to_lowercase)
        .collect();
    let mut out = String::with_capacity(lowered.len());
    let mut pending_space = false;
    for c in lowered.nfkd().filter(|c| !is_combining_mark(*c)).nfc() {
        if c.is_whitespace() {
            pending_space = true;
        } else if is_invisible(c) || c.is_control() {
            // Invisible again after decomposition, or a control character: drop it.
            if c.is_control() {
                pending_space = true;
            }
        } else {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{normalize, normalize_full};

    #[test]
    fn case_and_whitespace() {
        assert_eq!(
            normalize("  VERTROUWELIJK \t\r\n  Stuk "),
            "vertrouwelijk stuk"
        );
    }

    #[test]
    fn zero_width_and_soft_hyphen() {
        assert_eq!(
            normalize("V\u{200B}ERTROU\u{200C}WE\u{200D}LI\u{2060}JK"),
            "vertrouwelijk"
        );
        assert_eq!(normalize("\u{FEFF}vertrou\u{00AD}welijk"), "vertrouwelijk");
    }

    #[test]
    fn fullwidth_letters() {
        assert_eq!(normalize("ＶＥＲＴＲＯＵＷＥＬＩＪＫ"), "vertrouwelijk");
    }

    #[test]
    fn diacritics_folded() {
        assert_eq!(normalize("vertrouwélijk"), "vertrouwelijk");
        // decomposed form too
        assert_eq!(normalize("vertrouwe\u{0301}lijk"), "vertrouwelijk");
        assert_eq!(normalize("Cliënt Çà"), "client ca");
    }

    #[test]
    fn ligatures_and_nbsp() {
        assert_eq!(
            normalize("ﬁnancieel\u{00A0}\u{2003}dossier"),
            "financieel dossier"
        );
    }

    /// The ASCII fast path of `normalize` gives exactly what the full Unicode path gives.
    #[test]
    fn fast_path_equals_full_path() {
        let fixed = [
            "",
            " ",
            "\r\n\t \u{0b}\u{0c}\u{7f}\u{0}",
            "  VERTROUWELIJK \t\r\n  Stuk ",
            "Cliënt Çà één ÉÉN financiële",
            "vertrouwe\u{0301}lijk e \u{0301}x \u{0301} \u{0301}e",
            "V\u{200B}ERTROU\u{200C}WE\u{200D}LI\u{2060}JK \u{FEFF}x vertrou\u{00AD}welijk",
            "ＶＥＲＴＲＯＵＷＥＬＩＪＫ ﬁnancieel\u{00A0}\u{2003}dossier",
            "İstanbul I\u{0307} ΣΑΣ ß ẞ Å A\u{030A} a\u{0338} =\u{0338} <\u{0338}",
            "x\u{0085}y\u{2028}z\u{3000}w \u{00B4}x \u{00A8} ¨ ´´ \u{200B} \u{00AD}",
            "한국어 \u{1100}\u{1161}\u{11A8} ㈜ ① ½ ㎏ ™ № Ⅻ",
            "a\u{0}b\u{1}c\u{1f}d\u{7f}e\u{80}f\u{9f}g",
            "\u{0301}start mid\u{0301}dle end\u{0301}",
            "€ 1.250,00 &amp; <b>Tekst</b> — “quotes” ‘x’ … ",
            "MiXeD ascii ÄND Ünïcödé\r\n\r\n\r\nlines",
            "ÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖ×ØÙÚÛÜÝÞßàáâãäåæçèéêëìíîïðñòóôõö÷øùúûüýþÿ",
            "Éé\u{0301} é\u{0327} Ä\u{200B}Ö ÿ\u{00AD}ÿ über-Öl 'café'",
        ];
        for s in fixed {
            assert_eq!(normalize(s), normalize_full(s), "input {s:?}");
        }
        // Every ASCII byte at every place among letters, capitals and their neighbours.
        for b in 0u8..0x80 {
            for at in 0..9 {
                let mut s = "AbCdEfGhIjKlMnOpQrStUvWxYz@[`{".to_string();
                s.insert(at, char::from(b));
                assert_eq!(normalize(&s), normalize_full(&s), "input {s:?}");
            }
        }
        // Every BMP character between ASCII letters, after a space and before a mark.
        for cp in 0u32..0x1_0000 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            for s in [format!("Ab{c}Cd e"), format!(" {c}\u{0301}X {c}")] {
                assert_eq!(normalize(&s), normalize_full(&s), "input {s:?}");
            }
        }
        // Every pair of Latin-1 letters (the per-character table path).
        for a in 0xC0u8..=0xFF {
            for b in 0xC0u8..=0xFF {
                let s = format!("x{}{}Y", char::from(a), char::from(b));
                assert_eq!(normalize(&s), normalize_full(&s), "input {s:?}");
            }
        }
        // Pseudo-random mixes of ASCII, separators and tricky characters.
        let alphabet: Vec<char> = "aZq9 .-\t\r\n\u{0}\u{7f}éëÉ\u{0301}\u{0308}\u{0327}\u{200B}\u{00AD}\u{FEFF}\u{00A0}\u{2003}ﬁＶİΣßÆøÿ×Çñ한\u{1161}\u{11A8}½①"
            .chars()
            .collect();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            let mut s = String::new();
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            assert_eq!(normalize(&s), normalize_full(&s), "input {s:?}");
        }
    }

    /// Long mostly-ASCII texts: the eight-byte path, its edges and the way back from it.
    #[test]
    fn chunked_path_equals_full_path() {
        let alphabet: Vec<char> = "abcXYZ@[`{~  \t\r\n\u{7f}é\u{200B}ﬁ".chars().collect();
        let mut state = 0x5155_1500_2026_0003u64;
        for _ in 0..20_000 {
            let mut s = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = state % 80;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Mostly letters and single spaces, now and then anything else.
                let k = (state >> 8) as usize % 64;
                let c = if k < 40 {
                    alphabet[k % 6]
                } else if k < 50 {
                    ' '
                } else {
                    alphabet[k % alphabet.len()]
                };
                s.push(c);
            }
            assert_eq!(normalize(&s), normalize_full(&s), "input {s:?}");
        }
    }

    #[test]
    fn control_chars_separate() {
        assert_eq!(normalize("a\u{0000}b"), "a b");
        assert_eq!(normalize(""), "");
    }
}
