//! Blob store and keyed sealing: roundtrips at chunk edges, tampering, wrong keys, deletion.

use super::*;
use crate::seal::{CHUNK, KEYED_HEADER_LEN};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::path::PathBuf;

/// A deterministic byte stream of `left` bytes: a prime-length pattern, so no chunk repeats.
pub(super) struct Gen {
    pattern: Vec<u8>,
    pos: usize,
    left: u64,
}

impl Gen {
    pub(super) fn new(len: u64, seed: u64) -> Gen {
        let mut x = seed | 1;
        let pattern = (0..1_048_573)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Gen {
            pattern,
            pos: 0,
            left: len,
        }
    }
}

impl Read for Gen {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out
            .len()
            .min(self.pattern.len() - self.pos)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        out[..n].copy_from_slice(&self.pattern[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.pattern.len();
        self.left -= n as u64;
        Ok(n)
    }
}

fn sha_of(r: &mut dyn Read) -> io::Result<([u8; 32], u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 100_000];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf)? {
            0 => return Ok((h.finalize().into(), n)),
            k => {
                h.update(&buf[..k]);
                n += k as u64;
            }
        }
    }
}

fn store() -> (tempfile::TempDir, FsBlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = FsBlobStore::open(&dir.path().join("blobs")).unwrap();
    (dir, s)
}

#[test]
fn roundtrips_at_chunk_edges_and_large() {
    let (_dir, s) = store();
    let dek = DataKey::generate();
    for len in [
        0,
        1,
        CHUNK as u64 - 1,
        CHUNK as u64,
        CHUNK as u64 + 1,
        3 * CHUNK as u64 + 5,
        64 << 20,
    ] {
        let (want, _) = sha_of(&mut Gen::new(len, len + 1)).unwrap();
        let info = s.put(&dek, &mut Gen::new(len, len + 1)).unwrap();
        assert_eq!(info.size, len);
        assert_eq!(info.sha256, want, "len {len}");
        let on_disk = std::fs::metadata(s.path_of(&info.id)).unwrap().len();
        let chunks = len / CHUNK as u64 + 1;
        assert_eq!(on_disk, KEYED_HEADER_LEN as u64 + len + 16 * chunks);
        let (got, n) = sha_of(&mut s.open(&info.id, &dek).unwrap()).unwrap();
        assert_eq!((got, n), (want, len), "len {len}");
    }
}

/// Pages of `path` in the page cache, and all its pages.
fn cached_pages(path: &std::path::Path) -> (usize, usize) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).unwrap();
    let len = file.metadata().unwrap().len() as usize;
    let page = 4096;
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: a read-only shared mapping of an open file of `len` > 0 bytes, unmapped below;
    // mincore writes one byte per page into `vec`, which has one per page.
    unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED);
        assert_eq!(libc::mincore(addr, len, vec.as_mut_ptr()), 0);
        libc::munmap(addr, len);
    }
    (vec.iter().filter(|&&b| b & 1 == 1).count(), pages)
}

#[test]
fn durable_blobs_leave_the_page_cache() {
    // On a disk: in tmpfs the cache is the storage and cannot be dropped.
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let on_tmpfs = {
        let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path and a zeroed statfs for the call to fill.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statfs(path.as_ptr(), &mut st) }, 0);
        st.f_type == libc::TMPFS_MAGIC
    };
    assert!(
        !on_tmpfs,
        "/var/tmp is a tmpfs here: this test needs it on a disk"
    );
    let s = FsBlobStore::open(&dir.path().join("blobs")).unwrap();
    let dek = DataKey::generate();
    let streamed = s.put(&dek, &mut Gen::new(3 << 20, 7)).unwrap().id;
    let whole = BlobId::random();
    s.put_bytes(&whole, &dek, &vec![5u8; 3 << 20]).unwrap();
    for id in [streamed, whole] {
        // Dropped by the helper thread, soon after.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let (cached, pages) = loop {
            let (cached, pages) = cached_pages(&s.path_of(&id));
            if cached == 0 || std::time::Instant::now() > until {
                break (cached, pages);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(pages > 700);
        assert_eq!(cached, 0, "{cached} of {pages} pages still cached");
        // Still readable, from the disk.
        assert_eq!(read_all(s.open(&id, &dek)).unwrap().len(), 3 << 20);
    }
}

#[test]
fn blob_files_hold_no_plaintext_and_sit_in_fanout_dirs() {
    let (dir, s) = store();
    let dek = DataKey::generate();
    let text = b"Geheime salarislijst van de afdeling Zeeland. ".repeat(2000);
    let info = s.put(&dek, &mut &text[..]).unwrap();
    let path = s.path_of(&info.id);
    let hex = info.id.to_string();
    assert!(path.ends_with(format!("blobs/{}/{hex}", &hex[..2])));
    let sealed = std::fs::read(&path).unwrap();
    assert!(!sealed.windows(9).any(|w| w == b"salarisli"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}

/// Files in the temporary folder with anything in them (spare files are empty).
fn leftovers(root: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("blobs/tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect()
}

fn read_all(r: Result<Box<dyn Read + Send>>) -> std::result::Result<Vec<u8>, String> {
    let mut r = r.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[test]
fn any_flipped_byte_fails_loudly() {
    let (_dir, s) = store();
    let dek = DataKey::generate();
    let data: Vec<u8> = (0..CHUNK * 2 + 100).map(|i| (i % 251) as u8).collect();
    let info = s.put(&dek, &mut &data[..]).unwrap();
    let path = s.path_of(&info.id);
    let good = std::fs::read(&path).unwrap();
    assert_eq!(read_all(s.open(&info.id, &dek)).unwrap(), data);
    for pos in [
        0,
        7,
        8,
        KEYED_HEADER_LEN - 1,
        KEYED_HEADER_LEN,
        KEYED_HEADER_LEN + 1000,
        KEYED_HEADER_LEN + CHUNK + 15,
        KEYED_HEADER_LEN + CHUNK + 16 + 3,
        good.len() - 1,
    ] {
        let mut bad = good.clone();
        bad[pos] ^= 0x04;
        std::fs::write(&path, &bad).unwrap();
        let err = read_all(s.open(&info.id, &dek)).unwrap_err();
        assert!(
            err.contains("altered") || err.contains("not a sealed blob"),
            "flip at {pos}: {err}"
        );
    }
    // Truncated, or with a chunk dropped.
    for cut in [
        KEYED_HEADER_LEN,
        KEYED_HEADER_LEN + CHUNK + 16,
        good.len() - 1,
    ] {
        std::fs::write(&path, &good[..cut]).unwrap();
        assert!(read_all(s.open(&info.id, &dek)).is_err(), "cut at {cut}");
    }
    std::fs::write(&path, &good).unwrap();
    assert_eq!(read_all(s.open(&info.id, &dek)).unwrap(), data);
}

#[test]
fn wrong_key_and_swapped_blobs_fail() {
    let (_dir, s) = store();
    let dek = DataKey::generate();
    let a = s.put(&dek, &mut &b"contents of file a"[..]).unwrap();
    let b = s.put(&dek, &mut &b"contents of file b"[..]).unwrap();
    assert!(read_all(s.open(&a.id, &DataKey::generate())).is_err());
    // Same data key, but each blob is bound to its id: a copied file does not open as another.
    std::fs::copy(s.path_of(&a.id), s.path_of(&b.id)).unwrap();
    assert!(read_all(s.open(&b.id, &dek)).is_err());
    assert_eq!(
        read_all(s.open(&a.id, &dek)).unwrap(),
        b"contents of file a"
    );
    // A master-key blob is not a data-key blob and vice versa.
    let keys = crate::seal::Keyring::for_tests();
    let sealed = crate::seal::seal_bytes(&keys, b"x").unwrap();
    assert!(crate::seal::open_bytes_with_key(dek.expose(), b"", &sealed).is_err());
    let keyed = crate::seal::seal_bytes_with_key(dek.expose(), b"ctx", b"x").unwrap();
    assert!(crate::seal::open_bytes(&keys, &keyed).is_err());
    assert!(crate::seal::open_bytes_with_key(dek.expose(), b"other", &keyed).is_err());
    assert_eq!(
        crate::seal::open_bytes_with_key(dek.expose(), b"ctx", &keyed).unwrap(),
        b"x"
    );
}

#[test]
fn delete_and_missing() {
    let (_dir, s) = store();
    let dek = DataKey::generate();
    let info = s.put(&dek, &mut &b"bye"[..]).unwrap();
    assert!(s.exists(&info.id).unwrap());
    s.delete(&info.id).unwrap();
    assert!(!s.path_of(&info.id).exists());
    assert!(!s.exists(&info.id).unwrap());
    assert!(matches!(
        s.open(&info.id, &dek),
        Err(StoreError::BlobNotFound(_))
    ));
    assert!(matches!(
        s.delete(&info.id),
        Err(StoreError::BlobNotFound(_))
    ));
}

#[test]
fn failing_source_leaves_nothing_behind() {
    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::other("client went away"));
            }
            let n = out.len().min(self.0);
            out[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }
    let (dir, s) = store();
    assert!(s.put(&DataKey::generate(), &mut Broken(200_000)).is_err());
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn open_makes_every_fanout_folder() {
    let (dir, _s) = store();
    for b in 0..=255u8 {
        assert!(
            dir.path().join(format!("blobs/{b:02x}")).is_dir(),
            "{b:02x}"
        );
    }
}

#[test]
fn put_bytes_seals_under_the_given_id_at_any_size() {
    let (dir, s) = store();
    let dek = DataKey::generate();
    for len in [0, 1, CHUNK - 1, CHUNK, 8 * CHUNK, 8 * CHUNK + 1, 3 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
        let id = BlobId::random();
        s.put_bytes(&id, &dek, &data).unwrap();
        let on_disk = std::fs::metadata(s.path_of(&id)).unwrap().len();
        let chunks = (len / CHUNK + 1) as u64;
        assert_eq!(
            on_disk,
            (KEYED_HEADER_LEN + len) as u64 + 16 * chunks,
            "len {len}"
        );
        assert_eq!(read_all(s.open(&id, &dek)).unwrap(), data, "len {len}");
        // Bound to its id like any other blob.
        let other = BlobId::random();
        std::fs::copy(s.path_of(&id), s.path_of(&other)).unwrap();
        assert!(read_all(s.open(&other, &dek)).is_err());
    }
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}

#[test]
fn spare_files_are_made_ahead_and_used() {
    let (dir, s) = store();
    let dek = DataKey::generate();
    let tmp = || -> Vec<PathBuf> {
        std::fs::read_dir(dir.path().join("blobs/tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    s.put_bytes(&BlobId::random(), &dek, b"eerste").unwrap();
    poll_for(|| (s.spares_ready() == 1).then_some(()));
    let spare = tmp().first().cloned().unwrap();
    assert_eq!(std::fs::metadata(&spare).unwrap().len(), 0);
    // The next blob is written into that spare file, and it is replaced.
    let id = BlobId::random();
    s.put_bytes(&id, &dek, b"tweede").unwrap();
    assert!(!spare.exists());
    assert_eq!(read_all(s.open(&id, &dek)).unwrap(), b"tweede");
    poll_for(|| (s.spares_ready() == 1).then_some(()));
    assert_eq!(tmp().len(), 1);
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
    // Closing the store removes what it made ahead.
    drop(s);
    assert_eq!(tmp(), Vec::<PathBuf>::new());
}

/// Waits up to 10 s for `f` to give something.
fn poll_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < until, "timed out");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_fanout_folder_removed_by_hand_is_made_again() {
    let (dir, s) = store();
    let dek = DataKey::generate();
    let id = BlobId::random();
    let fan = s.path_of(&id).parent().unwrap().to_path_buf();
    std::fs::remove_dir(&fan).unwrap();
    s.put_bytes(&id, &dek, b"weer terug").unwrap();
    assert!(fan.is_dir());
    assert_eq!(read_all(s.open(&id, &dek)).unwrap(), b"weer terug");
    // Something else in its place is an error, and the blob does not linger.
    let id = BlobId::random();
    let fan = s.path_of(&id).parent().unwrap().to_path_buf();
    std::fs::remove_dir_all(&fan).unwrap();
    std::fs::write(&fan, b"in the way").unwrap();
    assert!(s.put_bytes(&id, &dek, b"nergens").is_err());
    assert_eq!(leftovers(dir.path()), Vec::<PathBuf>::new());
}
