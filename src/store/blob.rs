//! The blob interface and its filesystem implementation. [`FsBlobStore`] keeps one sealed file
//! per blob under `blobs/ab/<id>`; an S3-compatible store can take the same trait.

use super::{BlobId, DataKey, Result, StoreError};
use crate::seal::{CHUNK, SealReader, SealWriter};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What [`BlobStore::put`] stored: the id and the plaintext's size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub id: BlobId,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// A blob sealed and written but not yet durable. [`Staged::commit`] makes it durable under its
/// id; dropped uncommitted, it is removed. Staging first lets a caller make several blobs and
/// its metadata durable at the same time instead of one after another.
pub trait Staged: Send {
    fn info(&self) -> &BlobInfo;
    fn commit(self: Box<Self>) -> Result<BlobInfo>;
}

/// Sealed blobs (file contents, message bodies), each sealed with its message's data key and
/// bound to its own id, so blobs cannot be swapped undetected. Blocking I/O: async callers run
/// these in `spawn_blocking`.
pub trait BlobStore: Send + Sync {
    /// Streams `src` into a new sealed blob, in flat memory for any size; not durable until
    /// committed.
    fn stage(&self, dek: &DataKey, src: &mut dyn Read) -> Result<Box<dyn Staged>>;

    /// [`BlobStore::stage`] for content already in memory.
    fn stage_bytes(&self, dek: &DataKey, data: &[u8]) -> Result<Box<dyn Staged>> {
        self.stage(dek, &mut &data[..])
    }

    /// Streams `src` into a new sealed blob. Durable on return.
    fn put(&self, dek: &DataKey, src: &mut dyn Read) -> Result<BlobInfo> {
        self.stage(dek, src)?.commit()
    }

    /// A reader that decrypts on the fly; altered or truncated content fails with an
    /// `InvalidData` error, never as altered bytes.
    fn open(&self, id: &BlobId, dek: &DataKey) -> Result<Box<dyn Read + Send>>;

    /// Removes a blob ([`StoreError::BlobNotFound`] when it is not there).
    fn delete(&self, id: &BlobId) -> Result<()>;
}

fn blob_ctx(id: &BlobId) -> Vec<u8> {
    let mut c = b"sluis blob v1\0".to_vec();
    c.extend_from_slice(id.as_bytes());
    c
}

/// Unfinished writes older than this are removed when the store opens.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// From this size on, [`FsBlobStore::stage_bytes`] hashes on a second thread while it seals.
pub(super) const HASH_APART: usize = 256 * 1024;

pub struct FsBlobStore {
    root: PathBuf,
}

fn mkdir(path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

impl FsBlobStore {
    /// Opens (or creates) the store in `root`, creates the 256 fan-out directories (so writing
    /// a blob never waits for a new directory to be made durable) and clears writes that a
    /// crash left unfinished.
    pub fn open(root: &Path) -> Result<FsBlobStore> {
        if mkdir(root)? {
            crate::fsutil::sync_parent(root)?;
        }
        let store = FsBlobStore {
            root: root.to_path_buf(),
        };
        let mut made = mkdir(&store.tmp_dir())?;
        for b in 0..=255u8 {
            made |= mkdir(&store.root.join(hex::encode([b])))?;
        }
        if made {
            File::open(root)?.sync_all()?;
        }
        let now = SystemTime::now();
        for entry in std::fs::read_dir(store.tmp_dir())? {
            let entry = entry?;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_TMP);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(store)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn path_of(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_string();
        self.root.join(&hex[..2]).join(hex)
    }

    /// A new temporary file and the writer that seals into it.
    fn create(&self, dek: &DataKey) -> Result<(Pending, SealWriter<EarlyWrite>)> {
        use std::os::unix::fs::OpenOptionsExt;
        let id = BlobId::random();
        let tmp = self.tmp_dir().join(format!("{id}.tmp"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let pending = Pending {
            tmp,
            dest: self.path_of(&id),
            file: None,
            info: BlobInfo {
                id,
                size: 0,
                sha256: [0; 32],
            },
        };
        let w = SealWriter::with_key_bound(dek.expose(), &blob_ctx(&id), EarlyWrite::new(file))?;
        Ok((pending, w))
    }
}

/// Starts writing a blob to the disk while it is still being sealed, so that the fsync at
/// commit waits for little more than the last piece.
struct EarlyWrite {
    file: File,
    written: u64,
    started: u64,
}

/// Bytes between two write-outs.
const EARLY_WRITE: u64 = 256 * 1024;

impl EarlyWrite {
    fn new(file: File) -> EarlyWrite {
        EarlyWrite {
            file,
            written: 0,
            started: 0,
        }
    }

    fn into_file(self) -> File {
        self.file
    }
}

impl Write for EarlyWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= EARLY_WRITE {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid open descriptor and a range within the file; the call only
            // starts write-out of dirty pages (no wait, no data change). Failure is harmless:
            // the fsync at commit writes whatever is left.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.started as i64,
                    (self.written - self.started) as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sealed blob in the temporary directory. Removed when dropped before [`Staged::commit`].
struct Pending {
    tmp: PathBuf,
    dest: PathBuf,
    /// Set once sealing finished.
    file: Option<File>,
    info: BlobInfo,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Emptied by a commit that renamed it.
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Staged for Pending {
    fn info(&self) -> &BlobInfo {
        &self.info
    }

    /// fsync, rename into its fan-out directory, fsync that directory.
    fn commit(mut self: Box<Self>) -> Result<BlobInfo> {
        let file = self.file.take().expect("a staged blob has its file");
        file.sync_all()?;
        drop(file);
        if let Err(e) = std::fs::rename(&self.tmp, &self.dest) {
            // A fan-out directory removed by hand since the store opened: make it again.
            let dir = self.dest.parent().expect("fan-out directory");
            if e.kind() != io::ErrorKind::NotFound || !mkdir(dir)? {
                return Err(e.into());
            }
            crate::fsutil::sync_parent(dir)?;
            std::fs::rename(&self.tmp, &self.dest)?;
        }
        self.tmp = PathBuf::new();
        crate::fsutil::sync_parent(&self.dest)?;
        Ok(self.info.clone())
    }
}

impl BlobStore for FsBlobStore {
    fn stage(&self, dek: &DataKey, src: &mut dyn Read) -> Result<Box<dyn Staged>> {
        let (mut pending, mut w) = self.create(dek)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            hasher.update(&buf[..n]);
            w.write_all(&buf[..n])?;
            pending.info.size += n as u64;
        }
        pending.file = Some(w.finish()?.into_file());
        pending.info.sha256 = hasher.finalize().into();
        Ok(Box::new(pending))
    }

    /// Seals straight from `data`; a large one is hashed on a second thread meanwhile.
    fn stage_bytes(&self, dek: &DataKey, data: &[u8]) -> Result<Box<dyn Staged>> {
        let (mut pending, mut w) = self.create(dek)?;
        let (sealed, sha) = std::thread::scope(|s| {
            let hashing = (data.len() >= HASH_APART).then(|| s.spawn(|| Sha256::digest(data)));
            let sealed = w.write_all(data).and_then(|()| w.finish());
            let sha = match hashing {
                Some(h) => h.join().expect("hashing does not panic"),
                None => Sha256::digest(data),
            };
            (sealed, sha)
        });
        pending.file = Some(sealed?.into_file());
        pending.info.size = data.len() as u64;
        pending.info.sha256 = sha.into();
        Ok(Box::new(pending))
    }

    fn open(&self, id: &BlobId, dek: &DataKey) -> Result<Box<dyn Read + Send>> {
        let file = match File::open(self.path_of(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobNotFound(*id));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Box::new(SealReader::with_key_bound(
            dek.expose(),
            &blob_ctx(id),
            file,
        )?))
    }

    fn delete(&self, id: &BlobId) -> Result<()> {
        let path = self.path_of(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(crate::fsutil::sync_parent(&path)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::BlobNotFound(*id)),
            Err(e) => Err(e.into()),
        }
    }
}
