//! A small RTF text extractor: skips destinations (font tables, pictures, `\*` groups ...),
//! decodes `\'hh` (Windows-1252) and `\uN`, turns paragraph marks into line breaks.

use super::text::cp1252;

/// Destinations whose content is not document text.
const SKIP_DESTINATIONS: &[&str] = &[
    "fonttbl",
    "colortbl",
    "stylesheet",
    "info",
    "pict",
    "themedata",
    "colorschememapping",
    "datastore",
    "latentstyles",
    "listtable",
    "listoverridetable",
    "rsidtbl",
    "generator",
    "xmlnstbl",
    "mmathpr",
    "pgdsctbl",
    "fldinst",
    "filetbl",
    "revtbl",
    "objdata",
    "bkmkstart",
    "bkmkend",
    "template",
    "nonshppict",
    "userprops",
    "docvar",
    "wgrffmtfilter",
    "operator",
    "author",
    "title",
    "subject",
    "keywords",
    "comment",
    "company",
    "creatim",
    "revtim",
    "printim",
    "buptim",
];

#[derive(Debug, thiserror::Error)]
pub(crate) enum RtfError {
    #[error("not an RTF document")]
    NotRtf,
}

#[derive(Clone, Copy)]
struct Group {
    skip: bool,
    uc: usize,
}

/// The text of an RTF document, and why it may be incomplete.
pub(crate) struct RtfText {
    pub text: String,
    /// Groups that do not balance (a truncated or damaged file): the text is what was read.
    pub damage: Option<String>,
}

/// Extracts the text of an RTF document.
pub(crate) fn extract(data: &[u8]) -> Result<RtfText, RtfError> {
    if !data.starts_with(b"{\\rtf") {
        return Err(RtfError::NotRtf);
    }
    let mut damage = None;
    // Groups open (also past the 10,000 kept on `stack`).
    let mut open = 0usize;
    let mut out = String::new();
    let mut pending: Vec<u8> = Vec::new(); // \'hh and plain bytes (cp1252)
    let mut stack: Vec<Group> = Vec::new();
    let mut cur = Group { skip: false, uc: 1 };
    let mut to_skip = 0usize; // fallback characters after \uN
    let mut first_in_group = false;
    let mut i = 0;
    let flush = |pending: &mut Vec<u8>, out: &mut String| {
        if !pending.is_empty() {
            out.push_str(&cp1252(pending));
            pending.clear();
        }
    };
    while i < data.len() {
        let c = data[i];
        match c {
            b'{' => {
                open += 1;
                if stack.len() < 10_000 {
                    stack.push(cur);
                }
                first_in_group = true;
                to_skip = 0;
                i += 1;
                continue;
            }
            b'}' => {
                flush(&mut pending, &mut out);
                cur = stack.pop().unwrap_or(Group { skip: false, uc: 1 });
                to_skip = 0;
                i += 1;
                open = open.saturating_sub(1);
                // The document's group has closed: only white space (or NULs) may follow.
                if open == 0
                    && damage.is_none()
                    && data[i..]
                        .iter()
                        .any(|b| !b.is_ascii_whitespace() && *b != 0)
                {
                    damage = Some("data after the end of the document".to_string());
                }
            }
            b'\\' => {
                let Some(&n) = data.get(i + 1) else { break };
                if n.is_ascii_alphabetic() {
                    let start = i + 1;
                    let mut j = start;
                    while j < data.len() && data[j].is_ascii_alphabetic() && j - start < 32 {
                        j += 1;
                    }
                    let word = String::from_utf8_lossy(&data[start..j]).to_ascii_lowercase();
                    let pstart = j;
                    if j < data.len() && data[j] == b'-' {
                        j += 1;
                    }
                    while j < data.len() && data[j].is_ascii_digit() && j - pstart < 12 {
                        j += 1;
                    }
                    let param: Option<i64> = std::str::from_utf8(&data[pstart..j])
                        .ok()
                        .and_then(|p| p.parse().ok());
                    if data.get(j) == Some(&b' ') {
                        j += 1;
                    }
                    i = j;
                    if first_in_group && SKIP_DESTINATIONS.contains(&word.as_str()) {
                        cur.skip = true;
                    }
                    first_in_group = false;
                    if cur.skip {
                        if word == "bin" {
                            i = i.saturating_add(param.unwrap_or(0).max(0) as usize);
                        }
                        continue;
                    }
                    match word.as_str() {
                        "par" | "line" | "sect" | "page" | "row" | "lbr" => {
                            flush(&mut pending, &mut out);
                            out.push('\n');
                        }
                        "tab" | "cell" | "emspace" | "enspace" | "qmspace" => {
                            flush(&mut pending, &mut out);
                            out.push(' ');
                        }
                        "uc" => cur.uc = param.unwrap_or(1).clamp(0, 10) as usize,
                        "u" => {
                            flush(&mut pending, &mut out);
                            let v = param.unwrap_or(0);
                            let v = if v < 0 { v + 65536 } else { v };
                            if let Some(ch) = u32::try_from(v).ok().and_then(char::from_u32) {
                                out.push(ch);
                            }
                            to_skip = cur.uc;
                        }
                        "bin" => i = i.saturating_add(param.unwrap_or(0).max(0) as usize),
                        "emdash" => pending.push(0x97),
                        "endash" => pending.push(0x96),
                        "lquote" => pending.push(0x91),
                        "rquote" => pending.push(0x92),
                        "ldblquote" => pending.push(0x93),
                        "rdblquote" => pending.push(0x94),
                        "bullet" => pending.push(0x95),
                        _ => {}
                    }
                    continue;
                }
                first_in_group = false;
                match n {
                    b'*' => {
                        cur.skip = true;
                        i += 2;
                    }
                    b'\'' => {
                        let hex = data
                            .get(i + 2..i + 4)
                            .and_then(|h| std::str::from_utf8(h).ok());
                        let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                        i += if byte.is_some() { 4 } else { 2 };
                        if let Some(byte) = byte
                            && !cur.skip
                        {
                            if to_skip > 0 {
                                to_skip -= 1;
                            } else {
                                pending.push(byte);
                            }
                        }
                    }
                    b'\\' | b'{' | b'}' => {
                        if !cur.skip {
                            if to_skip > 0 {
                                to_skip -= 1;
                            } else {
                                pending.push(n);
                            }
                        }
                        i += 2;
                    }
                    b'~' => {
                        if !cur.skip {
                            pending.push(b' ');
                        }
                        i += 2;
                    }
                    b'_' => {
                        if !cur.skip {
                            pending.push(b'-');
                        }
                        i += 2;
                    }
                    b'\r' | b'\n' => {
                        if !cur.skip {
                            flush(&mut pending, &mut out);
                            out.push('\n');
                        }
                        i += 2;
                    }
                    _ => i += 2, // \- (optional hyphen), \| , \: ...
                }
                continue;
            }
            b'\r' | b'\n' => i += 1,
            _ => {
                if !cur.skip {
                    if to_skip > 0 {
                        to_skip -= 1;
                    } else {
                        pending.push(c);
                    }
                }
                i += 1;
            }
        }
        first_in_group = false;
    }
    flush(&mut pending, &mut out);
    if open > 0 {
        damage = Some(format!("truncated: {open} group(s) not closed"));
    }
    Ok(RtfText { text: out, damage })
}

#[cfg(test)]
mod tests {
    use super::extract;
    use crate::inspect::normalize;

    fn n(s: &[u8]) -> String {
        let t = extract(s).expect("rtf");
        assert_eq!(t.damage, None);
        normalize(&t.text)
    }

    #[test]
    fn skips_tables_and_star_groups() {
        let doc = br"{\rtf1\ansi{\fonttbl{\f0 Times New Roman;}}{\colortbl;\red0;}{\*\generator Foo;}\pard Hallo\par wereld}";
        assert_eq!(n(doc), "hallo wereld");
    }

    #[test]
    fn hex_and_unicode_escapes() {
        let doc = br"{\rtf1\ansi vertrouw\'e9lijk \u8364? \uc0\u233 t\u233\par}";
        assert_eq!(n(doc), "vertrouwelijk \u{20ac} ete");
        let raw = extract(br"{\rtf1 caf\'e9}").expect("rtf");
        assert_eq!(raw.text, "caf\u{e9}");
    }

    #[test]
    fn split_by_groups_stays_one_word() {
        let doc = br"{\rtf1 VER{\b TROUW}{\i\fs20 ELIJK}\par}";
        assert_eq!(n(doc), "vertrouwelijk");
    }

    #[test]
    fn unbalanced_groups_are_damage() {
        let t = extract(br"{\rtf1 BSN {\b 111222333}").expect("rtf");
        assert_eq!(
            t.damage.as_deref(),
            Some("truncated: 1 group(s) not closed")
        );
        assert!(normalize(&t.text).contains("111222333"));
        let t = extract(b"{\\rtf1 BSN} 111222333}").expect("rtf");
        assert_eq!(
            t.damage.as_deref(),
            Some("data after the end of the document")
        );
        assert!(extract(b"{\\rtf1 ok}\r\n\0").expect("rtf").damage.is_none());
    }

    #[test]
    fn rejects_non_rtf() {
        assert!(extract(b"hello").is_err());
    }
}
