//! Office documents: OOXML (DOCX, XLSX, PPTX) and OpenDocument (ODT, ODS, ODP) via zip and
//! quick-xml, and plain XML.

use std::io::{Read, Seek};

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

use super::archive::{EntryError, read_entry_into};
use super::{Ctx, shadow};

#[derive(Debug, thiserror::Error)]
pub(crate) enum OfficeError {
    #[error("corrupt XML: {0}")]
    Xml(String),
    #[error("{0}")]
    Entry(#[from] EntryError),
    #[error("no document text parts found")]
    Empty,
}

/// Which XML vocabulary is read, deciding which elements hold text and which separate words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XmlMode {
    /// WordprocessingML / SpreadsheetML / DrawingML: text in `t` (and cell values `v`).
    Ooxml,
    /// OpenDocument: all text under `office:body`.
    Odf,
    /// Any XML: all text, every element boundary separates.
    Generic,
}

/// Office document kinds detected from a zip's entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OfficeKind {
    Docx,
    Xlsx,
    Pptx,
    Odf,
}

fn ooxml_separator(name: &str) -> Option<char> {
    match name {
        "p" | "si" | "row" | "tr" | "br" | "cr" | "txBody" => Some('\n'),
        "c" | "tc" | "tab" | "ptab" => Some(' '),
        _ => None,
    }
}

fn odf_separator(name: &str) -> Option<char> {
    match name {
        "p" | "h" | "list-item" | "frame" | "table-row" | "line-break" => Some('\n'),
        "table-cell" | "s" | "tab" => Some(' '),
        _ => None,
    }
}

/// Extracts the text of an XML document in the given vocabulary.
pub(crate) fn xml_text(xml: &[u8], mode: XmlMode) -> Result<String, OfficeError> {
    let mut out = String::new();
    xml_text_into(xml, mode, &mut out)?;
    Ok(out)
}

/// `xml_text` into `out`; on an error `out` holds the text read before it. Strict: a document
/// that is not well-formed (end tags that do not match, elements left open at the end, no
/// root element) is an error, so a damaged or truncated part never passes as complete.
fn xml_text_into(xml: &[u8], mode: XmlMode, out: &mut String) -> Result<(), OfficeError> {
    let mut reader = Reader::from_reader(xml);
    let cfg = reader.config_mut();
    cfg.check_end_names = true;
    cfg.allow_unmatched_ends = false;
    cfg.allow_dangling_amp = false;
    let mut buf = Vec::new();
    // Elements open, and whether there was a root element at all.
    let (mut open, mut root) = (0usize, false);
    // OOXML: depth inside a text element; ODF: depth inside office:body.
    let mut inside = 0usize;
    let mut shared_string_cell = false;
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| OfficeError::Xml(e.to_string()))?;
        match &ev {
            Event::Start(_) => {
                open += 1;
                root = true;
            }
            Event::Empty(_) => root = true,
            Event::End(_) => open = open.saturating_sub(1),
            _ => {}
        }
        match ev {
            Event::Start(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                match mode {
                    XmlMode::Ooxml => {
                        if name == "c" {
                            shared_string_cell = e
                                .try_get_attribute("t")
                                .ok()
                                .flatten()
                                .is_some_and(|a| a.value.as_ref() == "s");
                        }
                        if name == "t" || name == "delText" || (name == "v" && !shared_string_cell)
                        {
                            inside += 1;
                        }
                        if let Some(sep @ ' ') = ooxml_separator(name) {
                            out.push(sep);
                        }
                    }
                    XmlMode::Odf => {
                        if name == "body" {
                            inside += 1;
                        }
                        if matches!(name, "s" | "tab" | "line-break") {
                            out.push(' ');
                        }
                    }
                    XmlMode::Generic => out.push(' '),
                }
            }
            Event::Empty(e) => {
                let name = e.local_name();
                let sep = match mode {
                    XmlMode::Ooxml => ooxml_separator(name.as_ref()),
                    XmlMode::Odf => odf_separator(name.as_ref()),
                    XmlMode::Generic => Some(' '),
                };
                if let Some(sep) = sep {
                    out.push(sep);
                }
            }
            Event::End(e) => {
                let name = e.local_name();
                let name = name.as_ref();
                match mode {
                    XmlMode::Ooxml => {
                        if name == "t" || name == "delText" || (name == "v" && inside > 0) {
                            inside = inside.saturating_sub(1);
                        }
                        if name == "c" {
                            shared_string_cell = false;
                        }
                        if let Some(sep) = ooxml_separator(name) {
                            out.push(sep);
                        }
                    }
                    XmlMode::Odf => {
                        if name == "body" {
                            inside = inside.saturating_sub(1);
                        }
                        if let Some(sep) = odf_separator(name)
                            && inside > 0
                        {
                            out.push(sep);
                        }
                    }
                    XmlMode::Generic => out.push(' '),
                }
            }
            Event::Text(t) if mode == XmlMode::Generic || inside > 0 => {
                out.push_str(&t.xml10_content());
            }
            Event::CData(t) if mode == XmlMode::Generic || inside > 0 => {
                out.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) if mode == XmlMode::Generic || inside > 0 => {
                if let Ok(Some(ch)) = r.resolve_char_ref() {
                    out.push(ch);
                } else if let Some(s) = resolve_predefined_entity(&r) {
                    out.push_str(s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if open > 0 {
        return Err(OfficeError::Xml(format!(
            "ends with {open} element(s) still open (truncated)"
        )));
    }
    if !root {
        return Err(OfficeError::Xml("no root element".into()));
    }
    Ok(())
}

/// Detects an office document from the entry names of a zip.
pub(crate) fn detect(names: &[String]) -> Option<OfficeKind> {
    let has = |n: &str| names.iter().any(|x| x == n);
    if has("word/document.xml") {
        Some(OfficeKind::Docx)
    } else if has("xl/workbook.xml") || has("xl/sharedStrings.xml") {
        Some(OfficeKind::Xlsx)
    } else if has("ppt/presentation.xml") || names.iter().any(|n| n.starts_with("ppt/slides/")) {
        Some(OfficeKind::Pptx)
    } else if has("content.xml") && (has("mimetype") || has("META-INF/manifest.xml")) {
        Some(OfficeKind::Odf)
    } else {
        None
    }
}

fn natural_key(name: &str) -> (usize, &str) {
    (name.len(), name)
}

/// The entries that hold the text of an office document, in reading order.
fn text_entries(kind: OfficeKind, names: &[String]) -> Vec<(String, XmlMode)> {
    let is_xml = |n: &String| n.ends_with(".xml") && !n.contains("/_rels/");
    let mut picked: Vec<&String> = match kind {
        OfficeKind::Docx => {
            let mut v: Vec<&String> = names
                .iter()
                .filter(|n| {
                    is_xml(n)
                        && (n.starts_with("word/header")
                            || n.starts_with("word/footer")
                            || n.as_str() == "word/footnotes.xml"
                            || n.as_str() == "word/endnotes.xml"
                            || n.as_str() == "word/comments.xml")
                })
                .collect();
            v.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
            let mut all: Vec<&String> = names
                .iter()
                .filter(|n| n.as_str() == "word/document.xml")
                .collect();
            all.extend(v);
            return all
                .into_iter()
                .map(|n| (n.clone(), XmlMode::Ooxml))
                .collect();
        }
        OfficeKind::Xlsx => names
            .iter()
            .filter(|n| {
                is_xml(n)
                    && (n.as_str() == "xl/sharedStrings.xml" || n.starts_with("xl/worksheets/"))
            })
            .collect(),
        OfficeKind::Pptx => names
            .iter()
            .filter(|n| {
                is_xml(n) && (n.starts_with("ppt/slides/") || n.starts_with("ppt/notesSlides/"))
            })
            .collect(),
        OfficeKind::Odf => {
            return names
                .iter()
                .filter(|n| n.as_str() == "content.xml" || n.as_str() == "styles.xml")
                .map(|n| (n.clone(), XmlMode::Odf))
                .collect();
        }
    };
    picked.sort_by(|a, b| natural_key(a).cmp(&natural_key(b)));
    picked
        .into_iter()
        .map(|n| (n.clone(), XmlMode::Ooxml))
        .collect()
}

/// The text of an office document, and what of it could not be read.
pub(crate) struct OfficeText {
    pub text: String,
    /// The first problem met: the text is then what could be recovered.
    pub damage: Option<String>,
}

/// Extracts the text of an office document held in `zip`. Every other member is read too
/// (within the limits): a damaged one means the file was not read completely, and what those
/// members hold (document properties, custom XML, embedded files) goes to the raw view. When a
/// global limit stops the work, the text so far is returned (the limit is recorded in `ctx`).
pub(crate) fn extract<R: Read + Seek>(
    ctx: &mut Ctx,
    zip: &mut zip::ZipArchive<R>,
    names: &[String],
    kind: OfficeKind,
    origin: &str,
) -> Result<OfficeText, OfficeError> {
    let entries = text_entries(kind, names);
    if entries.is_empty() {
        return Err(OfficeError::Empty);
    }
    let mut out = OfficeText {
        text: String::new(),
        damage: None,
    };
    let note = |out: &mut OfficeText, problem: String| {
        out.damage.get_or_insert(problem);
    };
    for (name, mode) in &entries {
        let Some(index) = zip.index_for_name(name) else {
            continue;
        };
        let mut bytes = Vec::new();
        match read_entry_into(ctx, zip, index, origin, &mut bytes) {
            Err(EntryError::Stopped) => return Ok(out),
            Err(e) => note(&mut out, format!("{name}: {e}")),
            Ok(()) => {}
        }
        if let Err(e) = xml_text_into(&bytes, *mode, &mut out.text) {
            note(&mut out, format!("{name}: {e}"));
            ctx.add_shadow_text(origin, &shadow::markup_text(&bytes));
        }
        out.text.push('\n');
        if !ctx.alive(origin) {
            return Ok(out);
        }
    }
    for (index, name) in names.iter().enumerate() {
        if name.ends_with('/') || entries.iter().any(|(n, _)| n == name) {
            continue;
        }
        let mut bytes = Vec::new();
        match read_entry_into(ctx, zip, index, origin, &mut bytes) {
            Err(EntryError::Stopped) => return Ok(out),
            Err(e) => note(&mut out, format!("{name}: {e}")),
            Ok(()) => {}
        }
        if name.ends_with(".xml") || name.ends_with(".rels") {
            ctx.add_shadow_text(origin, &shadow::markup_text(&bytes));
        } else {
            ctx.add_shadow(origin, &bytes);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::normalize;

    #[test]
    fn docx_runs_joined_paragraphs_separated() {
        let xml = br#"<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>VERTROU</w:t></w:r><w:r><w:rPr><w:b/></w:rPr><w:t>WELIJK</w:t></w:r></w:p><w:p><w:r><w:t xml:space="preserve">BSN </w:t><w:tab/><w:t>111222333</w:t></w:r></w:p><w:p><w:r><w:instrText>HYPERLINK x</w:instrText><w:t>&#86;olgende &amp; laatste</w:t></w:r></w:p></w:body></w:document>"#;
        let t = xml_text(xml, XmlMode::Ooxml).expect("xml");
        assert_eq!(
            normalize(&t),
            "vertrouwelijk bsn 111222333 volgende & laatste"
        );
        assert!(t.contains("VERTROUWELIJK\n"));
    }

    #[test]
    fn xlsx_values_without_shared_string_indexes() {
        let xml = br#"<worksheet><sheetData><row><c r="A1" t="s"><v>7</v></c><c r="B1"><v>111222333</v></c><c t="inlineStr"><is><t>geheim</t></is></c></row></sheetData></worksheet>"#;
        assert_eq!(
            normalize(&xml_text(xml, XmlMode::Ooxml).expect("xml")),
            "111222333 geheim"
        );
    }

    #[test]
    fn odf_spans_joined() {
        let xml = br#"<office:document-content xmlns:office="o" xmlns:text="t"><office:automatic-styles><style>x</style></office:automatic-styles><office:body><office:text><text:p>VER<text:span>TROUW</text:span>ELIJK</text:p><text:p>een<text:s/>twee</text:p></office:text></office:body></office:document-content>"#;
        assert_eq!(
            normalize(&xml_text(xml, XmlMode::Odf).expect("xml")),
            "vertrouwelijk een twee"
        );
    }

    #[test]
    fn generic_xml_and_errors() {
        let xml = br#"<?xml version="1.0"?><a><b>een</b><c><![CDATA[twee]]></c>&lt;drie&gt;</a>"#;
        assert_eq!(
            normalize(&xml_text(xml, XmlMode::Generic).expect("xml")),
            "een twee <drie>"
        );
        assert!(xml_text(b"<a><b", XmlMode::Generic).is_err());
        // Damage that a lenient reader lets pass: unclosed at the end, mismatched, no root.
        assert!(xml_text(b"<a><b>een</b>", XmlMode::Generic).is_err());
        assert!(xml_text(b"<a><b>een</c></a>", XmlMode::Generic).is_err());
        assert!(xml_text(b"een", XmlMode::Generic).is_err());
        let mut out = String::new();
        assert!(xml_text_into(b"<a><b>een</b><c>twee", XmlMode::Generic, &mut out).is_err());
        assert_eq!(normalize(&out), "een twee");
    }
}
