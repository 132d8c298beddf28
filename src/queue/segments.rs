//! Small messages live in segment files: zero-filled 8 MiB files that sealed messages are
//! appended to, so that accepting a message costs one write and a share of one fdatasync,
//! with no file to create, rename or delete per message.
//!
//! Record: `SLQR` | sealed length (u64 BE) | id length (u8) | id (27 bytes, zero-padded) | sealed bytes.
//! A segment ends at the first header that is not a record (the zero fill). Removed records are
//! listed in `seg-N.done` (appended, not synced: after a crash a delivered message may be sent
//! again, never lost); a segment whose records are all done is deleted.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const SEGMENT_SIZE: u64 = 8 << 20;
pub const HEADER: u64 = 40;
const MAGIC: &[u8; 4] = b"SLQR";
/// Sealed messages up to this size go into segments; larger ones get a file of their own.
pub const MAX_RECORD: u64 = 2 << 20;

#[derive(Debug, Clone, Copy)]
pub struct Loc {
    pub seg: u64,
    pub off: u64,
    pub len: u64,
}

#[derive(Default)]
struct Index {
    locs: HashMap<String, Loc>,
    live: HashMap<u64, usize>,
    files: HashMap<u64, Arc<File>>,
    /// Open `.done` lists, so that removing a message costs one small write.
    done: HashMap<u64, File>,
    /// The segment being appended to, never deleted while it is.
    active: Option<u64>,
    next: u64,
}

pub struct Segments {
    dir: PathBuf,
    index: Mutex<Index>,
}

fn seg_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:08}.log"))
}

fn done_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("seg-{n:08}.done"))
}

pub fn header(id: &str, len: u64) -> [u8; HEADER as usize] {
    let mut h = [0u8; HEADER as usize];
    h[..4].copy_from_slice(MAGIC);
    h[4..12].copy_from_slice(&len.to_be_bytes());
    let id = id.as_bytes();
    let n = id.len().min(27);
    h[12] = n as u8;
    h[13..13 + n].copy_from_slice(&id[..n]);
    h
}

fn parse_header(h: &[u8; HEADER as usize]) -> Option<(String, u64)> {
    if &h[..4] != MAGIC {
        return None;
    }
    let len = u64::from_be_bytes(h[4..12].try_into().ok()?);
    let n = h[12] as usize;
    if n == 0 || n > 27 {
        return None;
    }
    let id = std::str::from_utf8(&h[13..13 + n]).ok()?.to_string();
    super::valid_id(&id).then_some((id, len))
}

impl Segments {
    /// Scans the segments on disk; `file_ids` are messages that have a file of their own, which
    /// wins over a segment copy (a move out of a segment that a crash interrupted).
    pub fn open(dir: &Path, file_ids: &HashSet<String>) -> io::Result<Segments> {
        let mut nums: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("seg-")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect();
        nums.sort();
        let mut index = Index::default();
        for &n in &nums {
            let done: HashSet<String> = std::fs::read_to_string(done_path(dir, n))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            let file = File::open(seg_path(dir, n))?;
            let size = file.metadata()?.len();
            let mut off = 0;
            let mut live = 0;
            let mut h = [0u8; HEADER as usize];
            while off + HEADER <= size {
                if file.read_exact_at(&mut h, off).is_err() {
                    break;
                }
                let Some((id, len)) = parse_header(&h) else {
                    break;
                };
                if off + HEADER + len > size {
                    break; // torn: never acknowledged
                }
                if !done.contains(&id) && !file_ids.contains(&id) {
                    index.locs.insert(
                        id,
                        Loc {
                            seg: n,
                            off: off + HEADER,
                            len,
                        },
                    );
                    live += 1;
                }
                off += HEADER + len;
            }
            if live == 0 {
                let _ = std::fs::remove_file(seg_path(dir, n));
                let _ = std::fs::remove_file(done_path(dir, n));
            } else {
                index.live.insert(n, live);
            }
        }
        // New records always go to a fresh segment after a restart.
        index.next = nums.last().map_or(1, |n| n + 1);
        Ok(Segments {
            dir: dir.to_path_buf(),
            index: Mutex::new(index),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ids(&self) -> Vec<String> {
        self.lock().locs.keys().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<Loc> {
        self.lock().locs.get(id).copied()
    }

    /// A reader over one record's sealed bytes.
    pub fn reader(&self, loc: Loc) -> io::Result<RecordReader> {
        let file = {
            let mut ix = self.lock();
            match ix.files.get(&loc.seg) {
                Some(f) => f.clone(),
                None => {
                    let f = Arc::new(File::open(seg_path(&self.dir, loc.seg))?);
                    ix.files.insert(loc.seg, f.clone());
                    f
                }
            }
        };
        Ok(RecordReader {
            file,
            pos: loc.off,
            end: loc.off + loc.len,
        })
    }

    /// Counts a record as live from the moment it is written, so its segment cannot be
    /// deleted before the record is indexed.
    pub fn reserve(&self, seg: u64) {
        *self.lock().live.entry(seg).or_insert(0) += 1;
    }

    /// Forgets a segment that could not be created.
    pub fn abandon(&self, n: u64) {
        let mut ix = self.lock();
        if ix.active == Some(n) {
            ix.active = None;
        }
        drop(ix);
        let _ = std::fs::remove_file(seg_path(&self.dir, n));
    }

    /// Undoes `reserve` for a record whose sync failed.
    pub fn unreserve(&self, seg: u64) {
        if let Some(n) = self.lock().live.get_mut(&seg) {
            *n = n.saturating_sub(1);
        }
        self.retire(seg);
    }

    /// Makes a committed record findable (called by the committer after its sync).
    pub fn insert(&self, id: String, loc: Loc) {
        self.lock().locs.insert(id, loc);
    }

    /// The number for a new segment, which becomes the active one.
    pub fn take_next(&self) -> u64 {
        let mut ix = self.lock();
        let n = ix.next;
        ix.next += 1;
        ix.active = Some(n);
        n
    }

    /// Marks a record done; deletes its segment when nothing in it is live any more.
    pub fn remove(&self, id: &str) -> io::Result<bool> {
        let mut ix = self.lock();
        let Some(loc) = ix.locs.remove(id) else {
            return Ok(false);
        };
        let left = {
            let n = ix.live.entry(loc.seg).or_insert(1);
            *n -= 1;
            *n
        };
        if left == 0 && Some(loc.seg) != ix.active {
            ix.live.remove(&loc.seg);
            ix.files.remove(&loc.seg);
            ix.done.remove(&loc.seg);
            drop(ix);
            std::fs::remove_file(seg_path(&self.dir, loc.seg))?;
            let _ = std::fs::remove_file(done_path(&self.dir, loc.seg));
        } else {
            let f = match ix.done.entry(loc.seg) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(
                    OpenOptions::new()
                        .append(true)
                        .create(true)
                        .mode(0o600)
                        .open(done_path(&self.dir, loc.seg))?,
                ),
            };
            f.write_all(format!("{id}\n").as_bytes())?;
        }
        Ok(true)
    }

    /// Deletes a segment that is no longer active if nothing in it is live.
    pub fn retire(&self, n: u64) {
        let mut ix = self.lock();
        if Some(n) != ix.active && ix.live.get(&n).copied().unwrap_or(0) == 0 {
            ix.live.remove(&n);
            ix.files.remove(&n);
            ix.done.remove(&n);
            drop(ix);
            let _ = std::fs::remove_file(seg_path(&self.dir, n));
            let _ = std::fs::remove_file(done_path(&self.dir, n));
        }
    }

    /// Creates segment `n` at its full size, so that later appends change no file size. The
    /// blocks are reserved with fallocate (they read as zeros, the end marker, and cost no
    /// writes); only where that is not supported are zeros written.
    pub fn create(&self, n: u64) -> io::Result<File> {
        use std::os::fd::AsRawFd;
        let path = seg_path(&self.dir, n);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        // SAFETY: fallocate on a file descriptor we own; no memory is passed.
        let reserved = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, SEGMENT_SIZE as i64) } == 0;
        if !reserved {
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..(SEGMENT_SIZE >> 20) {
                f.write_all(&zeros)?;
            }
        }
        f.sync_all()?;
        crate::fsutil::sync_parent(&path)?;
        Ok(f)
    }
}

/// Reads one record without holding a lock or moving a shared file offset.
pub struct RecordReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for RecordReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
