//! The on-disk queue. A message arriving stays in memory while it is small (up to 4 MiB) and is
//! sealed (envelope + bytes) when it is committed; a larger one is sealed as it arrives. Small
//! ones are appended to a segment file, large ones spill to `spool/` and are renamed into `queue/`.
//! Either way the client hears 250 only after the committer's sync. Messages that wait for a
//! retry move to a file of their own, next to a sealed delivery-state file.

use super::commit::{self, IncomingWriter, Job, Spill, SpillWriter};
use super::envelope::{DeliveryState, Envelope, valid_id};
use super::fresh::{self, Fresh};
use super::segments::Segments;
use crate::seal::{SealReader, SealWriter, SharedKeys};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    /// Swapped by a master-key rotation; entries name the key they were sealed with.
    keys: std::sync::RwLock<SharedKeys>,
    segments: Arc<Segments>,
    committer: std::sync::mpsc::Sender<Job>,
    fresh: Fresh,
}

pub type MessageReader = Box<dyn Read + Send>;

impl QueueStore {
    pub fn open(data_dir: &Path, keys: SharedKeys) -> io::Result<QueueStore> {
        Self::open_with(data_dir, keys, true)
    }

    /// For the admin commands, which may run next to a live server: leaves the spool and
    /// unfinished state files alone (they may belong to messages the server is receiving).
    pub fn open_admin(data_dir: &Path, keys: SharedKeys) -> io::Result<QueueStore> {
        Self::open_with(data_dir, keys, false)
    }

    fn open_with(data_dir: &Path, keys: SharedKeys, clean: bool) -> io::Result<QueueStore> {
        let queue = data_dir.join("queue");
        let spool = data_dir.join("spool");
        for d in [data_dir, &queue, &spool] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)?;
        }
        // Whatever is left in the spool never got a 250: the client will send it again.
        for e in std::fs::read_dir(&spool)?.filter(|_| clean) {
            let e = e?;
            let _ = std::fs::remove_file(e.path());
        }
        // Leftover temp files from an interrupted state rewrite.
        for e in std::fs::read_dir(&queue)?.filter(|_| clean) {
            let p = e?.path();
            if p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.starts_with("tmp"))
            {
                let _ = std::fs::remove_file(p);
            }
        }
        let file_ids: HashSet<String> = std::fs::read_dir(&queue)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".msg").map(str::to_string)
            })
            .collect();
        let segments = Arc::new(Segments::open(&queue, &file_ids)?);
        let committer = commit::start(queue.clone(), segments.clone())?;
        Ok(QueueStore {
            inner: Arc::new(Inner {
                segments,
                committer,
                queue,
                spool,
                keys: std::sync::RwLock::new(keys),
                fresh: Fresh::default(),
            }),
        })
    }

    pub fn keys(&self) -> SharedKeys {
        self.inner
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New entries are sealed with the new keyring's current key; older ones still open.
    pub fn set_keys(&self, keys: SharedKeys) {
        *self.inner.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    fn msg_path(&self, id: &str) -> PathBuf {
        self.inner.queue.join(format!("{id}.msg"))
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.inner.queue.join(format!("{id}.st"))
    }

    /// Starts receiving a message. Its bytes stay in memory while they are small (for the
    /// relay, or for protection before the reply); sealing starts once they outgrow that, or
    /// at commit, so that the envelope can still change until then.
    pub fn begin(&self, env: &Envelope) -> io::Result<Incoming> {
        Ok(Incoming {
            id: env.id.clone(),
            env: env.clone(),
            store: self.clone(),
            writer: None,
            failed: false,
            bytes: 0,
            plain: Plain::Growing(super::pool::take(64 << 10)),
        })
    }

    /// A sealing writer for a message, with the envelope already written.
    fn seal_writer(&self, env: &Envelope) -> io::Result<IncomingWriter> {
        let spill = SpillWriter {
            spill: Spill::Mem(super::pool::take(16 * 1024)),
            path: self.inner.spool.join(format!("{}.tmp", env.id)),
        };
        let mut w = SealWriter::new(&self.keys(), spill)?;
        let json = serde_json::to_vec(env).map_err(io::Error::other)?;
        w.write_all(&(json.len() as u32).to_be_bytes())?;
        w.write_all(&json)?;
        Ok(w)
    }

    /// Makes the message durable; only after this returns Ok may the client hear 250.
    pub async fn commit(&self, mut incoming: Incoming) -> io::Result<String> {
        if incoming.failed {
            return Err(io::Error::other("already failed"));
        }
        let plain = std::mem::replace(&mut incoming.plain, Plain::Gone);
        let plain = match plain {
            Plain::Growing(v) => Some(Arc::new(v)),
            Plain::Shared(a) => Some(a),
            Plain::Gone => None,
        };
        let writer = match incoming.writer.take() {
            Some(w) => w,
            None => {
                let bytes = plain.as_deref().map(Vec::as_slice).unwrap_or_default();
                let mut w = self.seal_writer(&incoming.env)?;
                w.write_all(bytes)?;
                w
            }
        };
        let mut spill = writer.finish()?;
        let (done, wait) = tokio::sync::oneshot::channel();
        let job = match std::mem::replace(&mut spill.spill, Spill::Mem(Vec::new())) {
            Spill::Mem(bytes) => Job::Append {
                id: incoming.id.clone(),
                bytes,
                done,
            },
            Spill::File { file, path } => Job::File {
                file,
                tmp: path,
                dest: self.msg_path(&incoming.id),
                done,
            },
        };
        self.inner
            .committer
            .send(job)
            .map_err(|_| io::Error::other("queue committer stopped"))?;
        wait.await
            .map_err(|_| io::Error::other("queue committer stopped"))??;
        if let Some(plain) = plain {
            self.inner.fresh.insert(&incoming.id, plain);
        }
        Ok(incoming.id.clone())
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
        let raw = self.raw(id)?;
        let damaged = |e: String| StoreError::Damaged(id.into(), e);
        let mut r = SealReader::new(&self.keys(), io::BufReader::with_capacity(128 << 10, raw))
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

    /// The sealed bytes of a message, wherever they are kept.
    fn raw(&self, id: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        if let Some(loc) = self.inner.segments.get(id) {
            return Ok(Box::new(self.inner.segments.reader(loc)?));
        }
        match File::open(self.msg_path(id)) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound(id.into())),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves a message out of its segment into a file of its own (before it waits for a
    /// retry), so that segments empty quickly and can be deleted.
    pub fn detach(&self, id: &str) -> Result<(), StoreError> {
        if self.inner.segments.get(id).is_none() {
            return Ok(());
        }
        let mut raw = self.raw(id)?;
        let mut bytes = Vec::new();
        raw.read_to_end(&mut bytes)?;
        crate::fsutil::write_atomic(&self.msg_path(id), &bytes)?;
        // A crash before this line leaves both copies; the file wins at the next start.
        self.inner.segments.remove(id)?;
        Ok(())
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
        let plain = crate::seal::open_bytes(&self.keys(), &data)
            .map_err(|e| StoreError::Damaged(id.into(), e.to_string()))?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|e| StoreError::Damaged(id.into(), e.to_string()))
    }

    pub fn write_state(&self, id: &str, st: &DeliveryState) -> io::Result<()> {
        let json = serde_json::to_vec(st).map_err(io::Error::other)?;
        let sealed = crate::seal::seal_bytes(&self.keys(), &json)?;
        crate::fsutil::write_atomic(&self.state_path(id), &sealed)
    }

    /// Drops a message: the message file first, so a crash leaves at worst a stray state file.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        self.inner.fresh.remove(id);
        if self.inner.segments.remove(id)? {
            // Only a message that waited for a retry has a state file, and that one was
            // detached from its segment first.
            return Ok(());
        }
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
        valid_id(id) && (self.inner.segments.get(id).is_some() || self.msg_path(id).exists())
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
        ids.extend(self.inner.segments.ids());
        ids.sort();
        ids.dedup();
        for s in states {
            if ids.binary_search(&s).is_err() {
                let _ = std::fs::remove_file(self.state_path(&s));
            }
        }
        Ok(ids)
    }

    /// The whole message, shared: from memory when it was accepted a moment ago, else read
    /// back from the queue.
    pub fn read_shared(&self, id: &str) -> Result<Arc<Vec<u8>>, StoreError> {
        match self.inner.fresh.get(id) {
            Some(b) => Ok(b),
            None => self.read_message(id).map(Arc::new),
        }
    }

    /// The whole message in memory, in one allocation (sized from the stored length, an upper
    /// bound), so a large message does not briefly take twice its size while a vector grows.
    pub fn read_message(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let cap = self.stored_size(id) as usize;
        let (_, mut m) = self.open_message(id)?;
        let mut v = Vec::with_capacity(cap);
        m.read_to_end(&mut v)
            .map_err(|e| StoreError::Damaged(id.into(), e.to_string()))?;
        Ok(v)
    }

    pub fn stored_size(&self, id: &str) -> u64 {
        if let Some(loc) = self.inner.segments.get(id) {
            return loc.len;
        }
        std::fs::metadata(self.msg_path(id))
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

/// The plaintext of a message being received, while it is small enough to keep in memory.
enum Plain {
    Growing(Vec<u8>),
    /// Complete, and handed out (for protection before the reply).
    Shared(Arc<Vec<u8>>),
    /// Too large: it is sealed as it arrives instead.
    Gone,
}

/// A message being received. Dropped without commit, it leaves nothing behind.
pub struct Incoming {
    pub id: String,
    env: Envelope,
    store: QueueStore,
    /// Sealing; None while the message is still only in memory.
    writer: Option<IncomingWriter>,
    failed: bool,
    bytes: u64,
    plain: Plain,
}

impl Drop for Incoming {
    /// A message protected before the reply is never committed: its buffer goes back for the
    /// next message instead of being grown again from scratch.
    fn drop(&mut self) {
        match std::mem::replace(&mut self.plain, Plain::Gone) {
            Plain::Growing(v) => super::pool::give(v),
            Plain::Shared(a) => {
                if let Ok(v) = Arc::try_unwrap(a) {
                    super::pool::give(v);
                }
            }
            Plain::Gone => {}
        }
    }
}

impl Incoming {
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("write after failure"));
        }
        let r = self.write_inner(data);
        match &r {
            Ok(()) => self.bytes += data.len() as u64,
            Err(_) => {
                self.failed = true;
                self.writer = None;
            }
        }
        r
    }

    fn write_inner(&mut self, data: &[u8]) -> io::Result<()> {
        if self.writer.is_none() {
            let p = match &mut self.plain {
                Plain::Growing(p) => p,
                Plain::Shared(_) => return Err(io::Error::other("write after the end")),
                Plain::Gone => return Err(io::Error::other("write after failure")),
            };
            if p.len() + data.len() <= fresh::MAX_ENTRY {
                super::grow(p, data.len(), fresh::MAX_ENTRY);
                p.extend_from_slice(data);
                return Ok(());
            }
            // Outgrows memory: seal what came so far, and the rest as it comes.
            let Plain::Growing(p) = std::mem::replace(&mut self.plain, Plain::Gone) else {
                unreachable!("matched above")
            };
            let mut w = self.store.seal_writer(&self.env)?;
            w.write_all(&p)?;
            super::pool::give(p);
            self.writer = Some(w);
        }
        match self.writer.as_mut() {
            Some(w) => w.write_all(data),
            None => Err(io::Error::other("write after failure")),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The whole message, once complete, when it was small enough to stay in memory.
    pub fn share(&mut self) -> Option<Arc<Vec<u8>>> {
        if self.failed {
            return None;
        }
        if let Plain::Growing(p) = &mut self.plain {
            self.plain = Plain::Shared(Arc::new(std::mem::take(p)));
        }
        match &self.plain {
            Plain::Shared(a) => Some(a.clone()),
            _ => None,
        }
    }

    /// The envelope, while it can still change (nothing has been sealed yet).
    pub fn envelope_mut(&mut self) -> Option<&mut Envelope> {
        self.writer.is_none().then_some(&mut self.env)
    }

    pub fn envelope(&self) -> &Envelope {
        &self.env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(store: &QueueStore, id: &str) -> Vec<u8> {
        let (_, mut r) = store.open_message(id).unwrap();
        let mut v = Vec::new();
        r.read_to_end(&mut v).unwrap();
        v
    }

    fn segment_files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("queue"))
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                n.to_str().unwrap().ends_with(".log")
            })
            .count()
    }

    #[tokio::test]
    async fn segments_and_files_survive_reopen_and_empty_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(crate::seal::Keyring::for_tests());
        let store = QueueStore::open(dir.path(), keys.clone()).unwrap();
        let mut ids = Vec::new();
        // Small ones go to segments; the 3 MiB one spills to a file of its own.
        for size in [0usize, 10, 5000, 3 << 20, 70_000] {
            let e = Envelope::for_tests();
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let id = store.enqueue_bytes(&e, &data).await.unwrap();
            assert_eq!(body(&store, &id), data);
            ids.push((id, data));
        }
        assert_eq!(segment_files(dir.path()), 1);
        assert!(
            store.msg_path(&ids[3].0).exists(),
            "large message has its own file"
        );
        store.detach(&ids[1].0).unwrap();
        assert!(store.msg_path(&ids[1].0).exists());
        store.remove(&ids[0].0).unwrap();
        drop(store);

        let store = QueueStore::open(dir.path(), keys.clone()).unwrap();
        let mut listed = store.list_ids().unwrap();
        listed.sort();
        let mut want: Vec<String> = ids[1..].iter().map(|(i, _)| i.clone()).collect();
        want.sort();
        assert_eq!(listed, want);
        for (id, data) in &ids[1..] {
            assert_eq!(&body(&store, id), data, "{id} after reopen");
        }
        for (id, _) in &ids[1..] {
            store.remove(id).unwrap();
        }
        assert!(store.list_ids().unwrap().is_empty());
        drop(store);
        QueueStore::open(dir.path(), keys).unwrap();
        assert_eq!(
            segment_files(dir.path()),
            0,
            "an empty old segment is deleted"
        );
    }
}
