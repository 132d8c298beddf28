//! Archives: ZIP (recursive, with ratio and size bounds, encrypted entries reported), gzip and
//! tar.

use std::io::{Cursor, Read, Seek};

use flate2::read::MultiGzDecoder;

use super::extract::extract;
use super::{Bound, Ctx, join};

/// Entries below this decompressed size are not subject to the ratio check (small, highly
/// compressible files are normal and harmless).
pub(crate) const RATIO_FLOOR: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum EntryError {
    #[error("encrypted (password-protected) ZIP entry")]
    Encrypted,
    #[error("compression ratio above the limit of {0} (possible zip bomb)")]
    Ratio(u64),
    #[error("corrupt ZIP entry: {0}")]
    Corrupt(String),
    #[error("inspection stopped: a global limit was reached")]
    Stopped,
}

/// Reads one entry of a zip into `buf`, enforcing the ratio and total-bytes bounds on the real
/// decompressed size (declared sizes can lie). On a corrupt entry `buf` keeps what could be
/// read before the error (for the raw view), on the other errors it is empty.
pub(crate) fn read_entry_into<R: Read + Seek>(
    ctx: &mut Ctx,
    zip: &mut zip::ZipArchive<R>,
    index: usize,
    origin: &str,
    buf: &mut Vec<u8>,
) -> Result<(), EntryError> {
    if !ctx.alive(origin) {
        return Err(EntryError::Stopped);
    }
    let file = match zip.by_index(index) {
        Ok(f) => f,
        Err(zip::result::ZipError::UnsupportedArchive(m))
            if m == zip::result::ZipError::PASSWORD_REQUIRED =>
        {
            return Err(EntryError::Encrypted);
        }
        Err(zip::result::ZipError::InvalidPassword) => return Err(EntryError::Encrypted),
        Err(e) => return Err(EntryError::Corrupt(e.to_string())),
    };
    if file.encrypted() {
        return Err(EntryError::Encrypted);
    }
    let ratio = ctx.limits.max_ratio;
    let compressed = file.compressed_size().max(1);
    let declared = file.size();
    if declared > RATIO_FLOOR && declared / compressed > ratio {
        return Err(EntryError::Ratio(ratio));
    }
    let ratio_cap = compressed.saturating_mul(ratio).max(RATIO_FLOOR);
    let left = ctx.bytes_left();
    let cap = ratio_cap.min(left);
    let read = file.take(cap.saturating_add(1)).read_to_end(buf);
    let got = buf.len() as u64;
    if got > cap {
        buf.clear();
        if cap == ratio_cap {
            return Err(EntryError::Ratio(ratio));
        }
        ctx.stop(origin, Bound::Bytes(ctx.limits.max_total_bytes));
        return Err(EntryError::Stopped);
    }
    if !ctx.charge(origin, got) {
        return Err(EntryError::Stopped);
    }
    read.map(|_| ())
        .map_err(|e| EntryError::Corrupt(e.to_string()))
}

/// A zip over borrowed bytes.
pub(crate) type Zip<'a> = zip::ZipArchive<Cursor<&'a [u8]>>;

/// Opens a zip and lists its entry names.
pub(crate) fn open(data: &[u8]) -> Result<(Zip<'_>, Vec<String>), String> {
    let zip =
        zip::ZipArchive::new(Cursor::new(data)).map_err(|e| format!("corrupt ZIP archive: {e}"))?;
    let names = (0..zip.len())
        .map(|i| match zip.name_for_index(i) {
            Some(Ok(n)) => n.into_owned(),
            _ => format!("entry {i}"),
        })
        .collect();
    Ok((zip, names))
}

/// The first entry whose local header is missing or names another file than the central
/// directory does (the zip reader trusts the directory and would read on regardless).
pub(crate) fn mismatched_entry(zip: &mut Zip<'_>, data: &[u8]) -> Option<String> {
    for i in 0..zip.len() {
        let Ok(f) = zip.by_index_raw(i) else {
            return Some(format!("entry {i} cannot be read"));
        };
        let start = usize::try_from(f.header_start()).unwrap_or(usize::MAX);
        let local = data.get(start..start.saturating_add(30));
        let name = local
            .filter(|h| h.starts_with(b"PK\x03\x04"))
            .and_then(|h| {
                let n = u16::from_le_bytes([h[26], h[27]]) as usize;
                data.get(start + 30..start + 30 + n)
            });
        if name != Some(f.name_raw()) {
            return Some(format!(
                "entry '{}': its local header is missing or names another file",
                String::from_utf8_lossy(f.name_raw())
            ));
        }
    }
    None
}

/// Walks the entries of a plain ZIP archive.
pub(crate) fn walk_zip(
    ctx: &mut Ctx,
    zip: &mut Zip<'_>,
    names: &[String],
    origin: &str,
    depth: usize,
) {
    for (index, name) in names.iter().enumerate() {
        if name.ends_with('/') {
            continue;
        }
        let entry_origin = join(origin, name);
        if !ctx.count_part(&entry_origin) {
            return;
        }
        let mut bytes = Vec::new();
        match read_entry_into(ctx, zip, index, &entry_origin, &mut bytes) {
            Ok(()) => extract(ctx, name, "", &bytes, &entry_origin, depth + 1),
            Err(EntryError::Stopped) => return,
            Err(e) => {
                ctx.unscannable(&entry_origin, &e.to_string());
                ctx.add_shadow(&entry_origin, &bytes);
            }
        }
    }
}

/// Decompresses a gzip stream and inspects what is inside.
pub(crate) fn gunzip(ctx: &mut Ctx, name: &str, data: &[u8], origin: &str, depth: usize) {
    let ratio = ctx.limits.max_ratio;
    let ratio_cap = (data.len() as u64).saturating_mul(ratio).max(RATIO_FLOOR);
    let cap = ratio_cap.min(ctx.bytes_left());
    let mut buf = Vec::new();
    // Every member: a file may be several gzip streams one after the other.
    let read = MultiGzDecoder::new(data)
        .take(cap.saturating_add(1))
        .read_to_end(&mut buf);
    if let Err(e) = read {
        ctx.unscannable(origin, &format!("corrupt gzip data: {e}"));
        if ctx.charge(origin, buf.len() as u64) {
            ctx.add_shadow(origin, &buf);
        }
        return;
    }
    if buf.len() as u64 > cap {
        if cap == ratio_cap {
            ctx.unscannable(
                origin,
                &format!("compression ratio above the limit of {ratio} (possible gzip bomb)"),
            );
        } else {
            ctx.stop(origin, Bound::Bytes(ctx.limits.max_total_bytes));
        }
        return;
    }
    if !ctx.charge(origin, buf.len() as u64) {
        return;
    }
    let lower = name.to_ascii_lowercase();
    let inner = if lower.ends_with(".tgz") {
        format!("{}.tar", &name[..name.len() - 4])
    } else if lower.ends_with(".gz") {
        name[..name.len() - 3].to_string()
    } else {
        name.to_string()
    };
    extract(ctx, &inner, "", &buf, origin, depth + 1);
}

/// Whether data is a POSIX/GNU tar archive.
pub(crate) fn is_tar(data: &[u8]) -> bool {
    data.len() >= 512 && data.get(257..262) == Some(b"ustar")
}

fn octal(field: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(field).ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// Whether a tar header's checksum (the sum of its bytes, the checksum field read as spaces)
/// matches the one it records.
fn header_sum_ok(header: &[u8]) -> bool {
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    octal(&header[148..156]).is_some_and(|s| s == sum)
}

/// Walks the regular files of a tar archive. A header whose checksum fails, an entry cut
/// short and an archive without its end marker (a zero block) are damage.
pub(crate) fn walk_tar(ctx: &mut Ctx, data: &[u8], origin: &str, depth: usize) {
    let mut pos = 0usize;
    loop {
        let Some(header) = data.get(pos..pos + 512) else {
            ctx.unscannable(
                origin,
                "corrupt tar archive (truncated: no end-of-archive marker)",
            );
            return;
        };
        if header.iter().all(|b| *b == 0) {
            return;
        }
        if !header_sum_ok(header) {
            ctx.unscannable(origin, "corrupt tar archive (header checksum mismatch)");
            return;
        }
        let name_end = header[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let mut name = String::from_utf8_lossy(&header[..name_end]).into_owned();
        let prefix_end = header[345..500].iter().position(|b| *b == 0).unwrap_or(155);
        if prefix_end > 0 && header.get(257..263) == Some(b"ustar\0") {
            name = format!(
                "{}/{name}",
                String::from_utf8_lossy(&header[345..345 + prefix_end])
            );
        }
        let Some(size) = octal(&header[124..136]) else {
            ctx.unscannable(origin, "corrupt tar archive (bad size field)");
            return;
        };
        let start = pos + 512;
        let Some(end) = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
        else {
            ctx.unscannable(origin, "corrupt tar archive (size out of range)");
            return;
        };
        if end > data.len() {
            ctx.unscannable(origin, "corrupt tar archive (truncated)");
            return;
        }
        let kind = header[156];
        if kind == b'0' || kind == 0 {
            let entry_origin = join(origin, &name);
            if !ctx.count_part(&entry_origin) {
                return;
            }
            extract(ctx, &name, "", &data[start..end], &entry_origin, depth + 1);
        }
        pos = start + size.div_ceil(512) as usize * 512;
    }
}
