//! HTML to text: tags removed, entities resolved, inline tags and comments do not split words,
//! block tags do, script and style content dropped.

use mail_parser::decoders::html::add_html_token;

const BLOCK_TAGS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "td",
    "th",
    "tr",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "blockquote",
    "pre",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "dt",
    "dd",
    "dl",
    "title",
    "address",
    "figure",
    "figcaption",
    "form",
    "fieldset",
    "caption",
    "main",
    "body",
    "html",
    "head",
    "option",
    "center",
];

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| p + from)
}

/// Converts HTML to plain text (not normalised).
pub(crate) fn to_text(html: &str) -> String {
    let b = html.as_bytes();
    let mut out = String::with_capacity(html.len() / 2);
    let mut text_start = 0;
    // `str::find` with a char uses memchr: text runs are skipped at memory speed.
    while let Some(k) = html.get(text_start..).and_then(|rest| rest.find('<')) {
        let i = text_start + k;
        push_text(&mut out, &html[text_start..i]);
        text_start = skip_markup(b, i, &mut out);
    }
    push_text(&mut out, &html[text_start.min(b.len())..]);
    out
}

/// Skips markup starting at `<` (index `i`), returns the index after it. Pushes a separator for
/// block tags.
fn skip_markup(b: &[u8], i: usize, out: &mut String) -> usize {
    let rest = &b[i..];
    if rest.starts_with(b"<!--") {
        return find(b, i + 4, b"-->").map_or(b.len(), |e| e + 3);
    }
    if rest.starts_with(b"<!") || rest.starts_with(b"<?") {
        return find(b, i, b">").map_or(b.len(), |e| e + 1);
    }
    let mut j = i + 1;
    let closing = b.get(j) == Some(&b'/');
    if closing {
        j += 1;
    }
    let name_start = j;
    if !b.get(j).is_some_and(u8::is_ascii_alphabetic) {
        // Not a tag ("a < b", "<3"): keep the '<' as text.
        out.push('<');
        return i + 1;
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-' || b[j] == b':') {
        j += 1;
    }
    if j == name_start {
        // Not a tag ("a < b"): keep the '<' as text.
        out.push('<');
        return i + 1;
    }
    // Lowercased into a stack buffer: no allocation per tag. Longer names are no tag we know.
    let mut buf = [0u8; 12];
    let raw_name = &b[name_start..j];
    let name = if raw_name.len() <= buf.len() {
        buf[..raw_name.len()].copy_from_slice(raw_name);
        buf[..raw_name.len()].make_ascii_lowercase();
        std::str::from_utf8(&buf[..raw_name.len()]).unwrap_or("")
    } else {
        ""
    };
    // Find the end of the tag, honouring quoted attribute values.
    let mut quote: Option<u8> = None;
    while j < b.len() {
        match (quote, b[j]) {
            (None, b'"' | b'\'') => quote = Some(b[j]),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => break,
            _ => {}
        }
        j += 1;
    }
    let end = (j + 1).min(b.len());
    if !closing && (name == "script" || name == "style") {
        let close = format!("</{name}");
        let after = find(b, end, close.as_bytes())
            .map_or(b.len(), |e| find(b, e, b">").map_or(b.len(), |g| g + 1));
        out.push('\n');
        return after;
    }
    if BLOCK_TAGS.contains(&name) {
        out.push('\n');
    }
    end
}

/// Appends text with entities resolved.
pub(crate) fn push_text(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut plain = 0;
    while let Some(k) = s[i..].find('&') {
        i += k;
        let mut j = i + 1;
        while j < b.len() && j - i < 40 && (b[j].is_ascii_alphanumeric() || b[j] == b'#') {
            j += 1;
        }
        if j > i + 1 && j < b.len() && b[j] == b';' {
            out.push_str(&s[plain..i]);
            add_html_token(out, &b[i..=j], false);
            i = j + 1;
            plain = i;
            continue;
        }
        if j > i + 1 {
            // Entity without ';' (e.g. "&eacute " or "&#86E"): resolve if known.
            let mut token = b[i..j].to_vec();
            token.push(b';');
            let mut tmp = String::new();
            add_html_token(&mut tmp, &token, false);
            if tmp.as_bytes() != token.as_slice() {
                out.push_str(&s[plain..i]);
                out.push_str(&tmp);
                i = j;
                plain = i;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[plain..]);
}

#[cfg(test)]
mod tests {
    use super::to_text;
    use crate::inspect::normalize;

    fn n(s: &str) -> String {
        normalize(&to_text(s))
    }

    #[test]
    fn entities_resolved() {
        assert_eq!(n("&#86;ERTROUWELIJK"), "vertrouwelijk");
        assert_eq!(
            n("&#x56;ertrouw&eacute;lijk &amp; zo"),
            "vertrouwelijk & zo"
        );
        assert_eq!(n("a &lt;b&gt; c &unknown; d"), "a <b> c &unknown; d");
    }

    #[test]
    fn inline_tags_and_comments_do_not_split() {
        assert_eq!(n("<p>V<span></span>ERTROUWELIJK</p>"), "vertrouwelijk");
        assert_eq!(n("VER<!-- x -->TROUWELIJK"), "vertrouwelijk");
        assert_eq!(
            n("<b>VER</b><i class=\"a>b\">TROUW</i>ELIJK"),
            "vertrouwelijk"
        );
    }

    #[test]
    fn block_tags_separate() {
        assert_eq!(
            n(
                "<div>een</div><div>twee</div>drie<br>vier<table><tr><td>vijf</td><td>zes</td></tr></table><h1>zeven</h1><li>acht"
            ),
            "een twee drie vier vijf zes zeven acht"
        );
    }

    #[test]
    fn script_and_style_dropped() {
        assert_eq!(
            n("<style>p{color:red}</style>tekst<script>var geheim = 'x';</script> verder"),
            "tekst verder"
        );
        assert_eq!(
            n("<!DOCTYPE html><html><body>a &lt; b</body></html>"),
            "a < b"
        );
        assert_eq!(n("1 < 2 and <3"), "1 < 2 and <3");
    }
}
