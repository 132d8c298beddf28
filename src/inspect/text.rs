//! Decoding bytes of unknown or declared charset into text.

use mail_parser::decoders::charsets::map::charset_decoder;

/// Decodes bytes: a declared charset wins, then a byte-order mark (UTF-8, UTF-16LE/BE), then
/// UTF-8 when valid, then a UTF-16 guess (many NULs), else Windows-1252.
pub(crate) fn decode(bytes: &[u8], charset: Option<&str>) -> String {
    if let Some(cs) = charset
        && let Some(dec) = charset_decoder(cs.trim().as_bytes())
    {
        return dec(bytes);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8_lossy(rest).into_owned();
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(rest, true);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(rest, false);
    }
    let sample = &bytes[..bytes.len().min(4096)];
    let even_nuls = sample.iter().step_by(2).filter(|b| **b == 0).count();
    let odd_nuls = sample
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|b| **b == 0)
        .count();
    if odd_nuls * 3 > sample.len() {
        return utf16(bytes, true);
    }
    if even_nuls * 3 > sample.len() {
        return utf16(bytes, false);
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    cp1252(bytes)
}

pub(crate) fn cp1252(bytes: &[u8]) -> String {
    match charset_decoder(b"windows-1252") {
        Some(dec) => dec(bytes),
        None => bytes.iter().map(|b| char::from(*b)).collect(),
    }
}

fn utf16(bytes: &[u8], little_endian: bool) -> String {
    let units = bytes.chunks_exact(2).map(|c| {
        if little_endian {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    char::decode_utf16(units)
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// Whether bytes look like text (for attachments of unknown type).
pub(crate) fn looks_like_text(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(8192)];
    if sample.is_empty() {
        return true;
    }
    if sample.starts_with(b"\xFF\xFE") || sample.starts_with(b"\xFE\xFF") {
        return true;
    }
    let mut cut = sample.len();
    // A multi-byte sequence may be cut at the sample's end.
    while cut > 0 && cut + 4 > sample.len() && std::str::from_utf8(&sample[..cut]).is_err() {
        cut -= 1;
    }
    if std::str::from_utf8(&sample[..cut]).is_ok() && !sample.contains(&0) {
        return true;
    }
    let bad = sample
        .iter()
        .filter(|b| (**b < 0x20 && !matches!(**b, b'\t' | b'\n' | b'\r' | 0x0c)) || **b == 0x7f)
        .count();
    bad * 50 < sample.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_with_and_without_bom() {
        let le: Vec<u8> = "\u{FEFF}vertrouwélijk"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(decode(&le, None), "vertrouwélijk");
        let be: Vec<u8> = "vertrouwelijk"
            .encode_utf16()
            .flat_map(|u| u.to_be_bytes())
            .collect();
        assert_eq!(decode(&be, None), "vertrouwelijk");
    }

    #[test]
    fn legacy_fallback_and_declared() {
        assert_eq!(decode(b"vertrouw\xe9lijk \x80", None), "vertrouwélijk €");
        assert_eq!(decode(b"\xe9t\xe9", Some("iso-8859-1")), "été");
        assert_eq!(decode("één".as_bytes(), None), "één");
    }

    #[test]
    fn text_sniffing() {
        assert!(looks_like_text(b"plain words\r\n"));
        assert!(!looks_like_text(&[0u8, 1, 2, 3, 0x89, 0x50, 0, 0, 7, 8]));
    }
}
