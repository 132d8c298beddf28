//! Bounds and unscannable content: zip bombs, depth, parts, bytes, time, encryption, corrupt
//! files, garbage.

use std::time::Duration;

use super::tests::{all_text, fixture, with_attachments, zip_of};
use super::{Limits, inspect};

#[test]
fn zip_bomb_is_unscannable() {
    let zeros = vec![0u8; 50 * 1024 * 1024];
    let bomb = zip_of(&[("nullen.bin", &zeros)]);
    assert!(bomb.len() < 1024 * 1024);
    let i = inspect(
        &with_attachments(&[("bom.zip", "application/zip", &bomb)]),
        &Limits::default(),
    );
    let u = i
        .unscannable
        .iter()
        .find(|u| u.origin == "attachment bom.zip / nullen.bin")
        .unwrap_or_else(|| panic!("{:?}", i.unscannable));
    assert!(u.reason.contains("ratio"), "{}", u.reason);
}

#[test]
fn nested_zip_depth_limit() {
    let mut data = zip_of(&[("diep.txt", b"vertrouwelijk")]);
    for level in 0..8 {
        data = zip_of(&[(&format!("laag{level}.zip"), &data)]);
    }
    let i = inspect(
        &with_attachments(&[("diep.zip", "application/zip", &data)]),
        &Limits::default(),
    );
    assert!(
        i.unscannable.iter().any(|u| u.reason.contains("depth")),
        "{:?}",
        i.unscannable
    );
    assert!(!all_text(&i).contains("vertrouwelijk"));
    // Within a larger depth limit it is found.
    let limits = Limits {
        max_depth: 12,
        ..Limits::default()
    };
    let i = inspect(
        &with_attachments(&[("diep.zip", "application/zip", &data)]),
        &limits,
    );
    assert!(
        all_text(&i).contains("vertrouwelijk"),
        "{:?}",
        i.unscannable
    );
}

#[test]
fn encrypted_zip_and_pdf_unscannable() {
    let i = inspect(
        &with_attachments(&[
            (
                "geheim.zip",
                "application/zip",
                &fixture("vertrouwelijk-encrypted.zip"),
            ),
            (
                "geheim.pdf",
                "application/pdf",
                &fixture("vertrouwelijk-encrypted.pdf"),
            ),
        ]),
        &Limits::default(),
    );
    let zip = i
        .unscannable
        .iter()
        .find(|u| u.origin == "attachment geheim.zip / vertrouwelijk.txt")
        .unwrap_or_else(|| panic!("{:?}", i.unscannable));
    assert!(zip.reason.contains("encrypted"), "{}", zip.reason);
    let pdf = i
        .unscannable
        .iter()
        .find(|u| u.origin == "attachment geheim.pdf")
        .unwrap_or_else(|| panic!("{:?}", i.unscannable));
    assert_eq!(pdf.reason, "encrypted PDF");
}

#[test]
fn corrupt_files_unscannable_images_not() {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&[0, 0, 0, 13, 1, 2, 3, 0, 0, 0xff]);
    let i = inspect(
        &with_attachments(&[
            (
                "kapot.docx",
                "application/octet-stream",
                b"PK\x03\x04 rommel",
            ),
            ("kapot.pdf", "application/pdf", b"%PDF-1.7 rommel"),
            ("foto.png", "image/png", &png),
            (
                "oud.doc",
                "application/msword",
                b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1rest",
            ),
        ]),
        &Limits::default(),
    );
    let origins: Vec<&str> = i.unscannable.iter().map(|u| u.origin.as_str()).collect();
    assert!(origins.contains(&"attachment kapot.docx"), "{origins:?}");
    assert!(origins.contains(&"attachment kapot.pdf"), "{origins:?}");
    assert!(origins.contains(&"attachment oud.doc"), "{origins:?}");
    assert!(!origins.contains(&"attachment foto.png"), "{origins:?}");
    assert_eq!(i.attachments.len(), 4);
}

#[test]
fn part_and_byte_limits() {
    let files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|n| (format!("f{n}.txt"), b"tekst".to_vec()))
        .collect();
    let refs: Vec<(&str, &str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), "text/plain", d.as_slice()))
        .collect();
    let msg = with_attachments(&refs);
    let i = inspect(
        &msg,
        &Limits {
            max_parts: 5,
            ..Limits::default()
        },
    );
    assert!(
        i.unscannable
            .iter()
            .any(|u| u.reason.contains("part limit")),
        "{:?}",
        i.unscannable
    );
    let i = inspect(
        &msg,
        &Limits {
            max_total_bytes: 30,
            ..Limits::default()
        },
    );
    assert!(
        i.unscannable
            .iter()
            .any(|u| u.reason.contains("size limit")),
        "{:?}",
        i.unscannable
    );
    let i = inspect(
        &msg,
        &Limits {
            max_text_bytes: 12,
            ..Limits::default()
        },
    );
    assert!(
        i.unscannable
            .iter()
            .any(|u| u.reason.contains("text limit")),
        "{:?}",
        i.unscannable
    );
    assert!(i.texts.iter().map(|t| t.text.len()).sum::<usize>() <= 12);
}

#[test]
fn time_limit() {
    let msg = with_attachments(&[("a.pdf", "application/pdf", &fixture("vertrouwelijk.pdf"))]);
    let i = inspect(
        &msg,
        &Limits {
            max_time: Duration::ZERO,
            ..Limits::default()
        },
    );
    assert!(
        i.unscannable
            .iter()
            .any(|u| u.reason.contains("time limit")),
        "{:?}",
        i.unscannable
    );
}

#[test]
fn garbage_never_panics() {
    let mut seed = 0x1234_5678_u64;
    let base = with_attachments(&[
        (
            "a.docx",
            "application/octet-stream",
            &fixture("vertrouwelijk.docx"),
        ),
        ("b.rtf", "application/rtf", &fixture("vertrouwelijk.rtf")),
    ]);
    for _ in 0..30 {
        let mut m = base.clone();
        for _ in 0..40 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let pos = (seed >> 33) as usize % m.len();
            m[pos] = (seed >> 24) as u8;
        }
        let i = inspect(&m, &Limits::default());
        assert!(
            !i.unscannable
                .iter()
                .any(|u| u.reason.contains("internal error")),
            "{:?}",
            i.unscannable
        );
    }
    let i = inspect(b"", &Limits::default());
    assert!(i.texts.is_empty());
}

#[test]
fn pdf_stream_bomb_is_refused_before_the_extractor() {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&vec![b' '; 50 * 1024 * 1024]).expect("deflate");
    let bomb = z.finish().expect("deflate");
    let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n".to_vec();
    pdf.extend_from_slice(
        format!(
            "4 0 obj\n<< /Length {} /Filter /FlateDecode >>\nstream\n",
            bomb.len()
        )
        .as_bytes(),
    );
    pdf.extend_from_slice(&bomb);
    pdf.extend_from_slice(b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
    let started = std::time::Instant::now();
    let i = inspect(
        &with_attachments(&[("bom.pdf", "application/pdf", &pdf)]),
        &Limits::default(),
    );
    let u = i
        .unscannable
        .iter()
        .find(|u| u.origin == "attachment bom.pdf")
        .unwrap_or_else(|| panic!("{:?}", i.unscannable));
    assert!(u.reason.contains("ratio"), "{}", u.reason);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_zip_without_its_directory_is_read_raw() {
    // Cut before the central directory: the zip reader gives up, the local entries are intact.
    let docx = fixture("vertrouwelijk.docx");
    let cut = docx
        .windows(4)
        .position(|w| w == b"PK\x01\x02")
        .expect("central directory");
    let i = inspect(
        &with_attachments(&[("kapot.docx", "application/octet-stream", &docx[..cut])]),
        &Limits::default(),
    );
    assert!(
        i.unscannable
            .iter()
            .any(|u| u.origin == "attachment kapot.docx"),
        "{:?}",
        i.unscannable
    );
    assert!(
        i.shadows
            .iter()
            .any(|s| s.origin == "attachment kapot.docx" && s.text.contains("bsn) 111222333")),
        "{:?}",
        i.shadows
    );
}

/// A one-file ustar archive, with its end marker when `end`.
fn tar_of(name: &str, data: &[u8], end: bool) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    if end {
        out.extend_from_slice(&[0u8; 1024]);
    }
    out
}

#[test]
fn damaged_tar_and_gzip_are_unscannable_and_read_raw() {
    use std::io::Write;
    let text = b"Burgerservicenummer 111222333";
    let reasons = |data: &[u8], name: &str| -> (Vec<String>, bool) {
        let i = inspect(
            &with_attachments(&[(name, "application/octet-stream", data)]),
            &Limits::default(),
        );
        let raw = i.shadows.iter().any(|s| s.text.contains("111222333"));
        (i.unscannable.into_iter().map(|u| u.reason).collect(), raw)
    };
    let good = tar_of("a.txt", text, true);
    assert_eq!(reasons(&good, "a.tar").0, Vec::<String>::new());
    let (r, raw) = reasons(&tar_of("a.txt", text, false), "a.tar");
    assert!(r[0].contains("no end-of-archive marker"), "{r:?}");
    assert!(raw);
    let mut flipped = good.clone();
    flipped[3] ^= 0x20;
    assert!(reasons(&flipped, "a.tar").0[0].contains("checksum"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&good).expect("gz");
    let gz = gz.finish().expect("gz");
    assert_eq!(reasons(&gz, "a.tar.gz").0, Vec::<String>::new());
    let (r, _) = reasons(&gz[..gz.len() - 6], "a.tar.gz");
    assert!(r[0].contains("corrupt gzip data"), "{r:?}");
}
