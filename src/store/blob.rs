//! The blob interface and its filesystem implementation. [`FsBlobStore`] keeps one sealed file
//! per blob under `blobs/ab/<id>`; an S3-compatible store can take the same trait.

use super::{BlobId, DataKey, Result, StoreError};
use crate::seal::{CHUNK, SealReader, SealWriter, seal_to_file};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
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

    /// Seals `data` into a new blob under `id` (fresh from [`BlobId::random`]). Durable on
    /// return. The caller knows the id, size and checksum beforehand, so it can write the
    /// metadata naming the blob while this runs.
    fn put_bytes(&self, id: &BlobId, dek: &DataKey, data: &[u8]) -> Result<()>;

    /// A reader that decrypts on the fly; altered or truncated content fails with an
    /// `InvalidData` error, never as altered bytes.
    fn open(&self, id: &BlobId, dek: &DataKey) -> Result<Box<dyn Read + Send>>;

    /// Removes a blob ([`StoreError::BlobNotFound`] when it is not there).
    fn delete(&self, id: &BlobId) -> Result<()>;

    /// Whether the blob is there (complete: a blob appears under its id only once durable).
    fn exists(&self, id: &BlobId) -> Result<bool>;

    /// Every blob with the time it was last written, for the sweep of blobs no message names.
    fn list(&self) -> Result<Vec<(BlobId, SystemTime)>>;
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
    helper: Helper,
    /// `put_bytes` calls running now: a second sealing thread only helps while the cores are
    /// not busy with other blobs.
    writing: AtomicUsize,
}

/// A helper thread for file work that need not be on the way of the blob being written:
/// empty temporary files made ahead (creating a file can cost as much as writing a megabyte
/// into it), and the page-cache drop of blobs already durable.
struct Helper {
    tmp: PathBuf,
    ready: Arc<Mutex<Vec<(PathBuf, File)>>>,
    /// Chores for the helper, started at first use.
    chores: OnceLock<mpsc::Sender<Chore>>,
}

enum Chore {
    /// Make one more spare file.
    Refill,
    /// Drop the pages of this durable blob from the cache.
    Uncache(File),
}

/// Spare files kept at most.
const SPARES: usize = 4;

impl Helper {
    fn take_spare(&self) -> Option<(PathBuf, File)> {
        let spare = self.ready.lock().unwrap_or_else(|e| e.into_inner()).pop();
        self.send(Chore::Refill);
        spare
    }

    /// Has the pages of a durable blob dropped from the cache. Without the helper they stay
    /// cached, which is only a waste.
    fn uncache(&self, file: File) {
        self.send(Chore::Uncache(file));
    }

    fn send(&self, chore: Chore) {
        let _ = self.chores.get_or_init(|| self.start()).send(chore);
    }

    /// The helper makes a spare file for every request, up to [`SPARES`]; it ends with the
    /// store, after the chores already sent. A file it cannot make (disk full, folder gone) is
    /// simply not there: the writer then makes its own and sees the error.
    fn start(&self) -> mpsc::Sender<Chore> {
        let (tx, rx) = mpsc::channel::<Chore>();
        let (tmp, ready) = (self.tmp.clone(), self.ready.clone());
        let spawned = std::thread::Builder::new()
            .name("blob-files".into())
            .spawn(move || {
                while let Ok(chore) = rx.recv() {
                    if let Chore::Uncache(file) = chore {
                        drop_from_cache(&file);
                        continue;
                    }
                    if ready.lock().unwrap_or_else(|e| e.into_inner()).len() >= SPARES {
                        continue;
                    }
                    let path = tmp.join(format!("{}.tmp", BlobId::random()));
                    if let Ok(f) = new_file(&path) {
                        ready
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((path, f));
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the blob file helper");
        }
        tx
    }
}

impl Drop for Helper {
    /// Spare files unused at the end go (the helper ends with its channel); any a crash
    /// leaves are cleared an hour later, when a store opens.
    fn drop(&mut self) {
        for (path, _) in self
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A new file, only for this user, that did not exist before.
fn new_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
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
            helper: Helper {
                tmp: root.join("tmp"),
                ready: Arc::default(),
                chores: OnceLock::new(),
            },
            writing: AtomicUsize::new(0),
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

    #[cfg(test)]
    pub(super) fn spares_ready(&self) -> usize {
        self.helper.ready.lock().unwrap().len()
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn path_of(&self, id: &BlobId) -> PathBuf {
        let hex = id.to_string();
        self.root.join(&hex[..2]).join(hex)
    }

    /// A new temporary file for blob `id`: a spare one when there is one.
    fn create(&self, id: BlobId) -> Result<(Pending, File)> {
        let (tmp, file) = match self.helper.take_spare() {
            Some(spare) => spare,
            None => {
                let tmp = self.tmp_dir().join(format!("{id}.tmp"));
                let file = new_file(&tmp)?;
                (tmp, file)
            }
        };
        let pending = Pending {
            tmp,
            dest: self.path_of(&id),
        };
        Ok((pending, file))
    }
}

/// Starts write-out of a range of `file` that was just written, so that the fsync at commit
/// waits for little more than the last piece.
fn start_write_out(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; the call only starts write-out of dirty pages in the
    // range (no wait, no data change). Failure is harmless: the fsync at commit writes
    // whatever is left.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as i64,
            len as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Drops a durable blob's pages from the page cache. A sealed file is written once and read
/// rarely, days later: cached, the blobs of a busy day push out what is used (the queue, the
/// metadata), and each new page of cache is memory the kernel must find; dropped, the same
/// pages serve the next blob. (On this 2-vCPU VM, where memory the host has taken back costs
/// ~11 µs a page to touch again, keeping them cost 8-session runs a quarter of their speed
/// once a few GB of blobs had been written; see benches/README.md.)
fn drop_from_cache(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; advice only, the data is already on the disk.
    unsafe {
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

/// Starts writing a streamed blob to the disk while it is still being sealed.
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
            start_write_out(&self.file, self.started, self.written - self.started);
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A blob being sealed into the temporary directory; removed when dropped before
/// [`Pending::commit`].
struct Pending {
    tmp: PathBuf,
    dest: PathBuf,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Emptied by a commit that renamed it.
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Pending {
    /// fsync the sealed `file`, rename it into its fan-out directory, fsync that directory.
    fn commit(mut self, file: File, helper: &Helper) -> Result<()> {
        file.sync_all()?;
        helper.uncache(file);
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
        Ok(crate::fsutil::sync_parent(&self.dest)?)
    }
}

impl BlobStore for FsBlobStore {
    fn put(&self, dek: &DataKey, src: &mut dyn Read) -> Result<BlobInfo> {
        let id = BlobId::random();
        let (pending, file) = self.create(id)?;
        let mut w =
            SealWriter::with_key_bound(dek.expose(), &blob_ctx(&id), EarlyWrite::new(file))?;
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
        pending.commit(w.finish()?.into_file(), &self.helper)?;
        Ok(BlobInfo {
            id,
            size,
            sha256: hasher.finalize().into(),
        })
    }

    /// Seals straight from `data`; a large one on two threads while no other is being written.
    fn put_bytes(&self, id: &BlobId, dek: &DataKey, data: &[u8]) -> Result<()> {
        let (pending, file) = self.create(*id)?;
        let others = self.writing.fetch_add(1, Ordering::Relaxed);
        let threads = if others == 0 { 2 } else { 1 };
        let sealed = seal_to_file(
            dek.expose(),
            &blob_ctx(id),
            data,
            &file,
            threads,
            &|at, len| start_write_out(&file, at, len),
        );
        self.writing.fetch_sub(1, Ordering::Relaxed);
        sealed?;
        pending.commit(file, &self.helper)
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

    fn list(&self) -> Result<Vec<(BlobId, SystemTime)>> {
        let mut out = Vec::new();
        for b in 0..=255u8 {
            let dir = self.root.join(hex::encode([b]));
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            for entry in entries {
                let entry = entry?;
                // Only what this store names: 32 hex digits, in the folder of its first two.
                let Some(id) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<BlobId>().ok())
                    .filter(|id| self.path_of(id) == entry.path())
                else {
                    continue;
                };
                let meta = entry.metadata()?;
                if meta.is_file() {
                    out.push((id, meta.modified()?));
                }
            }
        }
        Ok(out)
    }

    fn exists(&self, id: &BlobId) -> Result<bool> {
        match std::fs::metadata(self.path_of(id)) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
