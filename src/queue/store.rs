//! The on-disk queue: one sealed file per message (envelope + bytes) and one sealed state file.
//!
//! A message is written to `spool/` while it arrives, then fsynced and renamed into `queue/`
//! and the directory fsynced (group-committed across sessions) before the client hears 250.

use super::envelope::{DeliveryState, Envelope, valid_id};
use crate::seal::{SealReader, SealWriter, SharedKeys};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("no queued message {0}")]
    NotFound(String),
    #[error("queue file {0} is damaged: {1}")]
    Damaged(String, String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

#[derive(Clone)]
pub struct QueueStore {
    inner: Arc<Inner>,
}

struct Inner {
    queue: PathBuf,
    spool: PathBuf,
    keys: SharedKeys,
    dirsync: DirSync,
}

pub type MessageReader = Box<dyn Read + Send>;

impl QueueStore {
    pub fn open(data_dir: &Path, keys: SharedKeys) -> io::Result<QueueStore> {
        let queue = data_dir.join("queue");
        let spool = data_dir.join("spool");
        for d in [data_dir, &queue, &spool] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)?;
        }
        // Whatever is left in the spool never got a 250: the client will send it again.
        for e in std::fs::read_dir(&spool)? {
            let e = e?;
            let _ = std::fs::remove_file(e.path());
        }
        // Leftover temp files from an interrupted state rewrite.
        for e in std::fs::read_dir(&queue)? {
            let p = e?.path();
            if p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.starts_with("tmp"))
            {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(QueueStore {
            inner: Arc::new(Inner {
                dirsync: DirSync::new(queue.clone()),
                queue,
                spool,
                keys,
            }),
        })
    }

    pub fn keys(&self) -> &SharedKeys {
        &self.inner.keys
    }

    fn msg_path(&self, id: &str) -> PathBuf {
        self.inner.queue.join(format!("{id}.msg"))
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.inner.queue.join(format!("{id}.st"))
    }

    /// Starts writing a message: the envelope first, then the bytes through `Incoming::write`.
    pub fn begin(&self, env: &Envelope) -> io::Result<Incoming> {
        let tmp = self.inner.spool.join(format!("{}.tmp", env.id));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut incoming = Incoming {
            id: env.id.clone(),
            tmp,
            writer: None,
            bytes: 0,
        };
        let mut w = SealWriter::new(&self.inner.keys, file)?;
        let json = serde_json::to_vec(env).map_err(io::Error::other)?;
        w.write_all(&(json.len() as u32).to_be_bytes())?;
        w.write_all(&json)?;
        incoming.writer = Some(w);
        Ok(incoming)
    }

    /// Makes the message durable; only after this returns Ok may the client hear 250.
    pub async fn commit(&self, mut incoming: Incoming) -> io::Result<String> {
        let writer = incoming
            .writer
            .take()
            .ok_or_else(|| io::Error::other("already failed"))?;
        let dest = self.msg_path(&incoming.id);
        let tmp = incoming.tmp.clone();
        let store = self.clone();
        let res = tokio::task::spawn_blocking(move || -> io::Result<()> {
            let file = writer.finish()?;
            file.sync_data()?;
            drop(file);
            std::fs::rename(&tmp, &dest)?;
            store.inner.dirsync.sync()
        })
        .await
        .map_err(io::Error::other)?;
        match res {
            Ok(()) => Ok(incoming.id.clone()),
            Err(e) => {
                // Never leave a half-committed message behind a failure reply.
                let _ = std::fs::remove_file(self.msg_path(&incoming.id));
                Err(e)
            }
        }
    }

    /// Stores a message sluis made itself (a DSN), durably.
    pub async fn enqueue_bytes(&self, env: &Envelope, message: &[u8]) -> io::Result<String> {
        let mut inc = self.begin(env)?;
        inc.write(message)?;
        self.commit(inc).await
    }

    /// The envelope and a reader positioned at the first byte of the message.
    pub fn open_message(&self, id: &str) -> Result<(Envelope, MessageReader), StoreError> {
        if !valid_id(id) {
            return Err(StoreError::NotFound(id.into()));
        }
        let f = match File::open(self.msg_path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(id.into()));
            }
            Err(e) => return Err(e.into()),
        };
        let damaged = |e: String| StoreError::Damaged(id.into(), e);
        let mut r = SealReader::new(&self.inner.keys, io::BufReader::with_capacity(128 << 10, f))
            .map_err(|e| damaged(e.to_string()))?;
        let mut len = [0u8; 4];
        r.read_exact(&mut len).map_err(|e| damaged(e.to_string()))?;
        let len = u32::from_be_bytes(len) as usize;
        if len > 64 << 20 {
            return Err(damaged("envelope too large".into()));
        }
        let mut json = vec![0u8; len];
        r.read_exact(&mut json)
            .map_err(|e| damaged(e.to_string()))?;
        let env: Envelope = serde_json::from_slice(&json).map_err(|e| damaged(e.to_string()))?;
        Ok((env, Box::new(r)))
    }

    pub fn read_envelope(&self, id: &str) -> Result<Envelope, StoreError> {
        self.open_message(id).map(|(e, _)| e)
    }

    pub fn read_state(&self, id: &str) -> Result<Option<DeliveryState>, StoreError> {
        let data = match std::fs::read(self.state_path(id)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let plain = crate::seal::open_bytes(&self.inner.keys, &data)
            .map_err(|e| StoreError::Damaged(id.into(), e.to_string()))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| StoreError::Damaged(id.into(), e.to_string()))
    }

    pub fn write_state(&self, id: &str, st: &DeliveryState) -> io::Result<()> {
        let json = serde_json::to_vec(st).map_err(io::Error::other)?;
        let sealed = crate::seal::seal_bytes(&self.inner.keys, &json)?;
        crate::fsutil::write_atomic(&self.state_path(id), &sealed)
    }

    /// Drops a message: the message file first, so a crash leaves at worst a stray state file.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match std::fs::remove_file(self.msg_path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match std::fs::remove_file(self.state_path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn exists(&self, id: &str) -> bool {
        valid_id(id) && self.msg_path(id).exists()
    }

    /// Ids of all queued messages, oldest first; stray state files are cleaned up.
    pub fn list_ids(&self) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut states = Vec::new();
        for e in std::fs::read_dir(&self.inner.queue)? {
            let name = e?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(id) = name.strip_suffix(".msg") {
                ids.push(id.to_string());
            } else if let Some(id) = name.strip_suffix(".st") {
                states.push(id.to_string());
            }
        }
        ids.retain(|id| valid_id(id));
        ids.sort();
        for s in states {
            if ids.binary_search(&s).is_err() {
                let _ = std::fs::remove_file(self.state_path(&s));
            }
        }
        Ok(ids)
    }

    pub fn stored_size(&self, id: &str) -> u64 {
        std::fs::metadata(self.msg_path(id))
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

/// A message being received. Dropped without commit, its temp file goes away.
pub struct Incoming {
    pub id: String,
    tmp: PathBuf,
    writer: Option<SealWriter<File>>,
    bytes: u64,
}

impl Incoming {
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("write after failure"))?;
        if let Err(e) = w.write_all(data) {
            self.writer = None;
            return Err(e);
        }
        self.bytes += data.len() as u64;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // After a successful commit the temp name no longer exists, so this is harmless.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// One directory fsync covers every rename made before it started: concurrent commits share it.
struct DirSync {
    dir: PathBuf,
    state: Mutex<SyncState>,
    cv: Condvar,
}

#[derive(Default)]
struct SyncState {
    requested: u64,
    completed: u64,
    running: bool,
}

impl DirSync {
    fn new(dir: PathBuf) -> Self {
        DirSync {
            dir,
            state: Mutex::new(SyncState::default()),
            cv: Condvar::new(),
        }
    }

    fn sync(&self) -> io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.requested += 1;
        let mine = s.requested;
        loop {
            if s.completed >= mine {
                return Ok(());
            }
            if !s.running {
                s.running = true;
                let target = s.requested;
                drop(s);
                let res = File::open(&self.dir).and_then(|d| d.sync_all());
                s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                s.running = false;
                if res.is_ok() {
                    s.completed = s.completed.max(target);
                }
                self.cv.notify_all();
                res?;
                continue;
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}
