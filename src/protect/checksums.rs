//! Checksums of large files, computed after the sender has had the reply. Hashing a file costs
//! about as much CPU as sealing it, and on a busy gateway the next message waits for that CPU;
//! the checksum is only shown on the recipient's page. A helper thread at idle priority hashes
//! the bytes inspection decoded (held in memory up to a budget; beyond it a file is hashed at
//! once, as small files always are) and stores the sums. The store lists a message until all
//! its sums are in, so after a crash they are computed from the sealed blobs at start-up.

use crate::store::{MessageId, Store, StoreError};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

/// Files smaller than this are hashed while they are sealed (it costs less than handing on).
pub const DEFER_FROM: usize = 256 * 1024;

/// Bytes held in memory for hashing at most (buffer capacity, not length); a larger file is
/// hashed at once.
pub const HOLD: usize = 16 << 20;

/// What holding `data` costs in memory.
pub fn cost(data: &Vec<u8>) -> usize {
    data.capacity()
}

pub enum Job {
    /// Files (index into the record's files) whose bytes are still in memory.
    Held {
        message: MessageId,
        files: Vec<(u32, Arc<Vec<u8>>)>,
    },
    /// A message listed as unsummed at start-up: its files are read back from the store.
    Stored(MessageId),
}

/// The handle protection and start-up use; the helper thread ends with the last handle.
#[derive(Clone)]
pub struct Checksums {
    tx: mpsc::Sender<Job>,
    held: Arc<AtomicUsize>,
}

impl Checksums {
    pub fn start(store: Store) -> std::io::Result<Checksums> {
        let (tx, rx) = mpsc::channel::<Job>();
        let held = Arc::new(AtomicUsize::new(0));
        let counted = held.clone();
        std::thread::Builder::new()
            .name("checksums".into())
            .spawn(move || {
                idle_priority();
                for job in rx {
                    run(&store, job, &counted);
                }
            })?;
        Ok(Checksums { tx, held })
    }

    /// A handle whose jobs wait in the returned queue, for tests to run one by one.
    #[cfg(test)]
    pub(super) fn paused() -> (Checksums, mpsc::Receiver<Job>, Arc<AtomicUsize>) {
        let (tx, rx) = mpsc::channel::<Job>();
        let held = Arc::new(AtomicUsize::new(0));
        (
            Checksums {
                tx,
                held: held.clone(),
            },
            rx,
            held,
        )
    }

    /// Whether `len` bytes may wait in memory to be hashed; if so they are counted until hashed
    /// (or [`Checksums::release`]d). Only while nothing else waits: a gateway with idle moments
    /// has hashed the last message's files by the time the next one comes, and a saturated one
    /// (where waiting saves nothing) then hashes at once instead of piling up memory.
    pub fn hold(&self, len: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now == 0 && len <= HOLD).then_some(len)
            })
            .is_ok()
    }

    /// Gives back what [`Checksums::hold`] counted for a job that will not be submitted.
    pub fn release(&self, len: usize) {
        self.held.fetch_sub(len, Ordering::AcqRel);
    }

    pub fn submit(&self, job: Job) {
        // The helper is gone (it does not end on its own): the message stays listed and gets
        // its sums at the next start.
        if let Err(mpsc::SendError(Job::Held { message, files })) = self.tx.send(job) {
            self.release(files.iter().map(|(_, d)| cost(d)).sum());
            tracing::warn!(message = %message, "checksum helper not running; sums wait for the next start");
        }
    }

    /// Queues every message the store lists as unsummed. Called at start-up, before any new
    /// message is protected. Returns how many.
    pub fn resume(&self, store: &Store) -> Result<usize, StoreError> {
        let ids = store.meta.unsummed()?;
        for id in &ids {
            self.submit(Job::Stored(*id));
        }
        Ok(ids.len())
    }
}

/// Only spare CPU time: the sums can wait, the mail cannot.
fn idle_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: changes the calling thread's policy only (pid 0); `param` is valid.
        let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if rc != 0 {
            tracing::debug!("checksum helper keeps normal priority");
        }
    }
}

pub(super) fn run(store: &Store, job: Job, held: &AtomicUsize) {
    let (message, sums) = match job {
        Job::Held { message, files } => {
            let sums: Vec<(u32, [u8; 32])> = files
                .iter()
                .map(|(i, data)| (*i, Sha256::digest(data.as_slice()).into()))
                .collect();
            let bytes: usize = files.iter().map(|(_, d)| cost(d)).sum();
            drop(files);
            held.fetch_sub(bytes, Ordering::AcqRel);
            (message, Ok(sums))
        }
        Job::Stored(message) => (message, from_blobs(store, message)),
    };
    let stored = sums.and_then(|s| store.meta.set_checksums(message, &s));
    if let Err(e) = stored {
        tracing::warn!(message = %message, error = %e, "cannot store file checksums");
    }
}

/// The sums of a stored message's files that have none, read back from their blobs (which
/// also checks that they open).
fn from_blobs(store: &Store, id: MessageId) -> Result<Vec<(u32, [u8; 32])>, StoreError> {
    let Some((msg, dek)) = store.meta.get_message(id)? else {
        return Ok(Vec::new());
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut sums = Vec::new();
    for (i, f) in msg.files.iter().enumerate() {
        if f.sha256.is_some() {
            continue;
        }
        let mut r = store.blobs.open(&f.blob, &dek)?;
        let mut h = Sha256::new();
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        sums.push((i as u32, h.finalize().into()));
    }
    Ok(sums)
}
