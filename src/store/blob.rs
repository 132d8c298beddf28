//! The blob interface and its filesystem implementation. [`FsBlobStore`] keeps one sealed file
//! per blob under `blobs/ab/cd/<id>`; an S3-compatible store can take the same trait.

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

/// Sealed blobs (file contents, message bodies), each sealed with its message's data key and
/// bound to its own id, so blobs cannot be swapped undetected. Blocking I/O: async callers run
/// these in `spawn_blocking`.
pub trait BlobStore: Send + Sync {
    /// Streams `src` into a new sealed blob, in flat memory for any size. Durable on return.
    fn put(&self, dek: &DataKey, src: &mut dyn Read) -> Result<BlobInfo>;

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
    /// Opens (or creates) the store in `root` and clears writes that a crash left unfinished.
    pub fn open(root: &Path) -> Result<FsBlobStore> {
        if mkdir(root)? {
            crate::fsutil::sync_parent(root)?;
        }
        let store = FsBlobStore {
            root: root.to_path_buf(),
        };
        let tmp = store.tmp_dir();
        if mkdir(&tmp)? {
            crate::fsutil::sync_parent(&tmp)?;
        }
        let now = SystemTime::now();
        for entry in std::fs::read_dir(&tmp)? {
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

    fn dir_of(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_string();
        self.root.join(&hex[..2]).join(&hex[2..4])
    }

    pub fn path_of(&self, id: &BlobId) -> PathBuf {
        self.dir_of(id).join(id.to_string())
    }

    /// Creates the fan-out directories, each made durable in its parent.
    fn ensure_dir(&self, id: &BlobId) -> io::Result<PathBuf> {
        let dir = self.dir_of(id);
        if !dir.is_dir() {
            let l1 = dir.parent().unwrap_or(&self.root);
            if mkdir(l1)? {
                crate::fsutil::sync_parent(l1)?;
            }
            if mkdir(&dir)? {
                crate::fsutil::sync_parent(&dir)?;
            }
        }
        Ok(dir)
    }

    fn write_tmp(
        &self,
        tmp: &Path,
        id: &BlobId,
        dek: &DataKey,
        src: &mut dyn Read,
    ) -> Result<BlobInfo> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)?;
        let mut w = SealWriter::with_key_bound(dek.expose(), &blob_ctx(id), file)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            hasher.update(&buf[..n]);
            w.write_all(&buf[..n])?;
            size += n as u64;
        }
        let file = w.finish()?;
        file.sync_all()?;
        Ok(BlobInfo {
            id: *id,
            size,
            sha256: hasher.finalize().into(),
        })
    }
}

impl BlobStore for FsBlobStore {
    fn put(&self, dek: &DataKey, src: &mut dyn Read) -> Result<BlobInfo> {
        let id = BlobId::random();
        let tmp = self.tmp_dir().join(format!("{id}.tmp"));
        let result = self.write_tmp(&tmp, &id, dek, src).and_then(|info| {
            let dest = self.ensure_dir(&id)?.join(id.to_string());
            std::fs::rename(&tmp, &dest)?;
            crate::fsutil::sync_parent(&dest)?;
            Ok(info)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
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
