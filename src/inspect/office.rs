//! Office documents: OOXML (DOCX, XLSX, PPTX) and OpenDocument (ODT, ODS, ODP) via zip and
//! quick-xml, and plain XML.

use std::io::{Read, Seek};

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

use super::Ctx;
use super::archive::{EntryError, read_entry};

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
    let mut reader = Reader::from_reader(xml);
    let cfg = reader.config_mut();
    cfg.check_end_names = false;
    cfg.allow_unmatched_ends = true;
    cfg.allow_dangling_amp = true;
    let mut buf = Vec::new();
    let mut out = String::new();
    // OOXML: depth inside a text element; ODF: depth inside office:body.
    let mut inside = 0usize;
    let mut shared_string_cell = false;
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| OfficeError::Xml(e.to_string()))?;
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
    Ok(out)
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

/// Extracts the text of an office document held in `zip`.
pub(crate) fn extract<R: Read + Seek>(
    ctx: &mut Ctx,
    zip: &mut zip::ZipArchive<R>,
    names: &[String],
    kind: OfficeKind,
    origin: &str,
) -> Result<String, OfficeError> {
    let entries = text_entries(kind, names);
    if entries.is_empty() {
        return Err(OfficeError::Empty);
    }
    let mut out = String::new();
    for (name, mode) in entries {
        let Some(index) = zip.index_for_name(&name) else {
            continue;
        };
        let bytes = read_entry(ctx, zip, index, origin)?;
        out.push_str(&xml_text(&bytes, mode)?);
        out.push('\n');
        if !ctx.alive(origin) {
            break;
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
    }
}
