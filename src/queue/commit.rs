//! Making accepted messages durable: one thread group-commits every message that arrives while
//! the previous batch is being synced, so concurrent sessions share the cost of a sync.

use super::segments::{HEADER, Loc, MAX_RECORD, SEGMENT_SIZE, Segments, header};
use crate::seal::SealWriter;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;

pub type Done = oneshot::Sender<io::Result<()>>;

pub enum Job {
    /// A small sealed message: appended to the active segment.
    Append {
        id: String,
        bytes: Vec<u8>,
        done: Done,
    },
    /// A large one, already in a spool file: fsynced and renamed into the queue.
    File {
        file: File,
        tmp: PathBuf,
        dest: PathBuf,
        done: Done,
    },
}

/// Sealed bytes of a message being received: in memory while small, spilled to a spool file
/// once they outgrow a segment record.
pub enum Spill {
    Mem(Vec<u8>),
    File { file: File, path: PathBuf },
}

pub struct SpillWriter {
    pub spill: Spill,
    pub path: PathBuf,
}

impl Write for SpillWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Spill::Mem(v) = &mut self.spill {
            if (v.len() + data.len()) as u64 <= MAX_RECORD {
                super::grow(v, data.len(), MAX_RECORD as usize);
                v.extend_from_slice(data);
                return Ok(data.len());
            }
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&self.path)?;
            if let Err(e) = file.write_all(v) {
                let _ = std::fs::remove_file(&self.path);
                return Err(e);
            }
            self.spill = Spill::File {
                file,
                path: self.path.clone(),
            };
        }
        match &mut self.spill {
            Spill::File { file, .. } => file.write_all(data).map(|_| data.len()),
            Spill::Mem(_) => unreachable!("spilled above"),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SpillWriter {
    fn drop(&mut self) {
        if let Spill::File { path, .. } = &self.spill {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub type IncomingWriter = SealWriter<SpillWriter>;

struct Active {
    n: u64,
    file: File,
    off: u64,
}

pub fn start(dir: PathBuf, segments: Arc<Segments>) -> io::Result<std::sync::mpsc::Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("queue-commit".into())
        .spawn(move || {
            let mut active: Option<Active> = None;
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                batch.extend(rx.try_iter().take(511));
                run_batch(&dir, &segments, &mut active, batch);
            }
        })?;
    Ok(tx)
}

fn run_batch(dir: &std::path::Path, segs: &Segments, active: &mut Option<Active>, batch: Vec<Job>) {
    let mut appended: Vec<(String, Loc, Done)> = Vec::new();
    let mut renamed: Vec<(PathBuf, Done)> = Vec::new();
    let mut to_sync: Vec<(u64, File)> = Vec::new();
    let mut retired: Vec<u64> = Vec::new();
    for job in batch {
        match job {
            Job::Append { id, bytes, done } => {
                let need = HEADER + bytes.len() as u64;
                if active.as_ref().is_none_or(|a| a.off + need > SEGMENT_SIZE) {
                    if let Some(old) = active.take() {
                        retired.push(old.n);
                        to_sync.push((old.n, old.file));
                    }
                    let n = segs.take_next();
                    match segs.create(n) {
                        Ok(file) => *active = Some(Active { n, file, off: 0 }),
                        Err(e) => {
                            // No room for a segment (a nearly full disk): this message may
                            // still fit in a file of its own.
                            tracing::warn!(error = %e, "cannot create queue segment");
                            segs.abandon(n);
                            let dest = dir.join(format!("{id}.msg"));
                            let _ = done.send(crate::fsutil::write_atomic(&dest, &bytes));
                            continue;
                        }
                    }
                }
                let a = active.as_mut().expect("created above");
                let h = header(&id, bytes.len() as u64);
                let res = a
                    .file
                    .write_all_at(&h, a.off)
                    .and_then(|_| a.file.write_all_at(&bytes, a.off + HEADER));
                let loc = Loc {
                    seg: a.n,
                    off: a.off + HEADER,
                    len: bytes.len() as u64,
                };
                a.off += need;
                super::pool::give(bytes);
                match res {
                    Ok(()) => {
                        segs.reserve(loc.seg);
                        appended.push((id, loc, done));
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                }
            }
            Job::File {
                file,
                tmp,
                dest,
                done,
            } => {
                let r = file.sync_data().and_then(|_| {
                    drop(file);
                    std::fs::rename(&tmp, &dest)
                });
                match r {
                    Ok(()) => renamed.push((dest, done)),
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        let _ = done.send(Err(e));
                    }
                }
            }
        }
    }
    // One data sync per segment written in this batch.
    let mut failed_segs = Vec::new();
    if let Some(a) = active.as_ref()
        && appended.iter().any(|(_, l, _)| l.seg == a.n)
        && let Err(e) = a.file.sync_data()
    {
        tracing::error!(error = %e, "syncing queue segment failed");
        failed_segs.push((a.n, e.kind()));
    }
    for (n, f) in &to_sync {
        if let Err(e) = f.sync_data() {
            tracing::error!(error = %e, "syncing queue segment failed");
            failed_segs.push((*n, e.kind()));
        }
    }
    for (id, loc, done) in appended {
        match failed_segs.iter().find(|(n, _)| *n == loc.seg) {
            Some((_, kind)) => {
                segs.unreserve(loc.seg);
                let _ = done.send(Err(io::Error::new(*kind, "queue segment sync failed")));
            }
            None => {
                segs.insert(id, loc);
                let _ = done.send(Ok(()));
            }
        }
    }
    if !renamed.is_empty() {
        let synced = File::open(dir).and_then(|d| d.sync_all());
        for (dest, done) in renamed {
            let r = match &synced {
                Ok(()) => Ok(()),
                Err(e) => {
                    // Never leave a half-committed message behind a failure reply.
                    let _ = std::fs::remove_file(&dest);
                    Err(io::Error::new(e.kind(), e.to_string()))
                }
            };
            let _ = done.send(r);
        }
    }
    for n in retired {
        segs.retire(n);
    }
}
