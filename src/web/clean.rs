//! The sender's HTML as the portal shows it: ammonia removes script, event handlers, forms and
//! frames; remote images are dropped; harmless presentation (table borders, colours, alignment,
//! spacing) stays. The body page's CSP (`img-src data:`, no other source) backs this up: even a
//! reference that slipped through would load nothing.

/// CSS properties kept in `style` attributes: none of them can name a resource. `border-image`
/// (which can) is not among them; declarations of others that try `url()` are dropped anyway.
const STYLE_PROPERTIES: &[&str] = &[
    "color",
    "background-color",
    "border",
    "border-top",
    "border-right",
    "border-bottom",
    "border-left",
    "border-color",
    "border-style",
    "border-width",
    "border-collapse",
    "border-spacing",
    "border-radius",
    "border-top-color",
    "border-right-color",
    "border-bottom-color",
    "border-left-color",
    "border-top-style",
    "border-right-style",
    "border-bottom-style",
    "border-left-style",
    "border-top-width",
    "border-right-width",
    "border-bottom-width",
    "border-left-width",
    "text-align",
    "font-weight",
    "font-style",
    "text-decoration",
    "padding",
    "padding-top",
    "padding-right",
    "padding-bottom",
    "padding-left",
    "margin",
    "margin-top",
    "margin-right",
    "margin-bottom",
    "margin-left",
    "width",
    "height",
    "vertical-align",
];

/// Old-style table presentation attributes mail clients still write.
const TABLE_ATTRIBUTES: &[&str] = &[
    "border",
    "cellpadding",
    "cellspacing",
    "bgcolor",
    "align",
    "valign",
    "width",
];

/// What a declaration's text may not contain: resource loading (`url(`, `image-set(`,
/// `@import`), old IE script (`expression(`), and escapes or comments that could hide either.
const STYLE_FORBIDDEN: &[&str] = &["url(", "image", "expression", "@import", "\\", "/*", "&#"];

pub fn sanitize(html: &str) -> String {
    let table_tags = ["table", "td", "th", "tr", "tbody", "thead", "tfoot"];
    let mut b = ammonia::Builder::default();
    for tag in table_tags {
        b.add_tag_attributes(tag, TABLE_ATTRIBUTES);
    }
    b.add_generic_attributes(["style"])
        .filter_style_properties(STYLE_PROPERTIES.iter().copied().collect())
        .attribute_filter(|el, attr, value| match (el, attr) {
            ("img", "src") if !value.starts_with("data:") => None,
            (_, "style") => Some(clean_style(value).into()),
            (_, "bgcolor") => is_colour(value).then(|| value.into()),
            (_, "width" | "height" | "border" | "cellpadding" | "cellspacing") => {
                is_length(value).then(|| value.into())
            }
            _ => Some(value.into()),
        })
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(html)
        .to_string()
}

/// Drops every declaration that could load something or hide it; ammonia then keeps only the
/// allowed properties. Sizes only in px or %, so a mail cannot cover the page with `100vw`.
fn clean_style(style: &str) -> String {
    style
        .split(';')
        .filter(|decl| {
            let lower = decl.to_ascii_lowercase();
            if STYLE_FORBIDDEN.iter().any(|f| lower.contains(f)) {
                return false;
            }
            match lower.split_once(':') {
                Some((p, v)) if matches!(p.trim(), "width" | "height") => is_length(v.trim()),
                Some(_) => true,
                None => false,
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// `12`, `12px`, `50%`, `1.5px`.
fn is_length(v: &str) -> bool {
    let n = v
        .strip_suffix("px")
        .or_else(|| v.strip_suffix('%'))
        .unwrap_or(v);
    !n.is_empty() && n.len() <= 8 && n.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// `#fff`, `#a0b1c2` or a colour name.
fn is_colour(v: &str) -> bool {
    match v.strip_prefix('#') {
        Some(hex) => matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()),
        None => !v.is_empty() && v.len() <= 20 && v.chars().all(|c| c.is_ascii_alphabetic()),
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn tables_keep_borders_and_colours() {
        let html = r##"<table border="1" cellpadding="4" cellspacing="0" bgcolor="#eeeeee" width="100%" style="border-collapse: collapse; border: 1px solid #333">
<tr><td style="color: #c00; background-color: yellow; font-weight: bold; text-align: right; padding: 4px; width: 50%" valign="top" align="left">Bedrag</td></tr></table>"##;
        let out = sanitize(html);
        for kept in [
            "border=\"1\"",
            "cellpadding=\"4\"",
            "cellspacing=\"0\"",
            "bgcolor=\"#eeeeee\"",
            "width=\"100%\"",
            "valign=\"top\"",
            "border-collapse:collapse",
            "border:1px solid #333",
            "color:#c00",
            "background-color:yellow",
            "font-weight:bold",
            "text-align:right",
            "padding:4px",
            "width:50%",
        ] {
            assert!(out.contains(kept), "{kept} lost: {out}");
        }
    }

    #[test]
    fn nothing_remote_and_no_script_in_css() {
        let html = r#"<table background="http://evil.example/t.png" bgcolor="javascript:x"><tr>
<td style="background-color: red; background-image: url(http://evil.example/a.png)">a</td>
<td style="color: expression(alert(1)); font-style: italic">b</td>
<td style="border-image: url(https://evil.example/b.png) 30; border: 1px solid red">c</td>
<td style="color: u\72l(http://evil.example/c.png); width: 100vw; position: fixed">d</td>
<td style="background-color: red /* ; */; color: blue">e</td>
</tr></table><img src="https://evil.example/d.png" alt="x"><p onclick="x()">p</p><script>x()</script>"#;
        let out = sanitize(html);
        for gone in [
            "evil.example",
            "url(",
            "expression",
            "background=",
            "javascript",
            "100vw",
            "position",
            "onclick",
            "script",
        ] {
            assert!(!out.contains(gone), "{gone} kept: {out}");
        }
        for kept in ["font-style:italic", "border:1px solid red", "alt=\"x\""] {
            assert!(out.contains(kept), "{kept} lost: {out}");
        }
    }
}
