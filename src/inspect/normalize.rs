//! Text normalisation for matching: NFKC, lower case, diacritics folded, invisible characters
//! removed, whitespace collapsed.

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
pub fn normalize(s: &str) -> String {
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
    use super::normalize;

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

    #[test]
    fn control_chars_separate() {
        assert_eq!(normalize("a\u{0000}b"), "a b");
        assert_eq!(normalize(""), "");
    }
}
