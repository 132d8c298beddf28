//! Sealing a blob held in memory with several threads at once: STREAM chunks are independent
//! given their index, so each thread seals runs of chunks and writes them at their offsets.
//! The result is byte for byte what [`super::SealWriter::with_key_bound`] writes (apart from
//! the random stream nonce) and opens with [`super::SealReader`].

use super::stream::{NONCE_PREFIX, Stream, TAG};
use super::{CHUNK, KEYED_HEADER_LEN, keyed_header, random_bytes};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Below this many bytes one thread seals it all (a thread costs more than it saves).
const PARALLEL_FROM: usize = 512 * 1024;

/// Seals `data` with the data key `dek`, bound to `context`, into `file` from offset 0, using
/// up to `threads` threads. `wrote(offset, len)` is called as each run of chunks has been
/// written (to start write-out early). Returns the sealed length.
pub fn seal_to_file(
    dek: &[u8; 32],
    context: &[u8],
    data: &[u8],
    file: &File,
    threads: usize,
    wrote: &(dyn Fn(u64, u64) + Sync),
) -> io::Result<u64> {
    let prefix = random_bytes::<NONCE_PREFIX>();
    file.write_all_at(&keyed_header(&prefix), 0)?;
    // Whole chunks, then a last one shorter than CHUNK (empty when the data fills them all),
    // as SealWriter does.
    let chunks = data.len() / CHUNK + 1;
    let runs = chunks.div_ceil(RUN);
    let threads = if data.len() < PARALLEL_FROM {
        1
    } else {
        threads.clamp(1, runs)
    };
    // Each thread takes the next run of chunks until none is left, so a thread that starts
    // late (a busy machine) only does less.
    let job = Job {
        dek,
        context,
        prefix: &prefix,
        data,
        chunks,
        file,
    };
    let next = AtomicUsize::new(0);
    let work = || -> io::Result<()> {
        let mut out = Vec::with_capacity(CHUNK + TAG);
        loop {
            let run = next.fetch_add(1, Ordering::Relaxed);
            if run >= runs {
                return Ok(());
            }
            let (first, end) = (run * RUN, ((run + 1) * RUN).min(chunks));
            let sealed = job.seal(first, end, &mut out);
            if sealed.is_err() {
                // The others stop at their next run.
                next.store(runs, Ordering::Relaxed);
            }
            wrote(offset(first), sealed?);
        }
    };
    on_threads(threads, &work)?;
    Ok(offset(chunks - 1) + (data.len() - (chunks - 1) * CHUNK + TAG) as u64)
}

/// Runs `work` on `n` threads at once (this one and idle ones), all results joined.
fn on_threads(n: usize, work: &(dyn Fn() -> io::Result<()> + Sync)) -> io::Result<()> {
    if n <= 1 {
        return work();
    }
    let (other, rest) = crate::crew::join(work, || on_threads(n - 1, work));
    other.and(rest)
}

/// Chunks a thread seals and writes in one go (256 KiB: also the write-out step).
const RUN: usize = 4;

/// One blob being sealed into its file.
struct Job<'a> {
    dek: &'a [u8; 32],
    context: &'a [u8],
    prefix: &'a [u8; NONCE_PREFIX],
    data: &'a [u8],
    /// Chunks in all (the last one may be empty).
    chunks: usize,
    file: &'a File,
}

impl Job<'_> {
    /// Seals chunks `first..end` and writes them at their place; returns the bytes written.
    fn seal(&self, first: usize, end: usize, out: &mut Vec<u8>) -> io::Result<u64> {
        let counter = u32::try_from(first).map_err(|_| io::Error::other("blob too large"))?;
        let mut stream = Stream::at(self.dek, self.prefix, counter);
        let mut written = 0;
        for i in first..end {
            let plain = &self.data[i * CHUNK..((i + 1) * CHUNK).min(self.data.len())];
            stream
                .seal_into(self.context, plain, out, i == self.chunks - 1)
                .map_err(|_| io::Error::other("encryption failed"))?;
            self.file.write_all_at(out, offset(i))?;
            written += out.len() as u64;
        }
        Ok(written)
    }
}

/// Where chunk `i` starts in the sealed blob.
fn offset(i: usize) -> u64 {
    (KEYED_HEADER_LEN + i * (CHUNK + TAG)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::SealReader;
    use std::io::Read;

    #[test]
    fn any_split_opens_as_a_sealed_blob() {
        let dek = random_bytes::<32>();
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            PARALLEL_FROM - 1,
            PARALLEL_FROM,
            8 * CHUNK,
            8 * CHUNK + 1,
            17 * CHUNK + 333,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            for threads in [1, 2, 3, 64] {
                let path = dir.path().join(format!("{len}-{threads}"));
                let file = File::create(&path).unwrap();
                let seen = std::sync::Mutex::new(Vec::new());
                let n = seal_to_file(&dek, b"ctx", &data, &file, threads, &|o, l| {
                    seen.lock().unwrap().push((o, l))
                })
                .unwrap();
                assert_eq!(n, std::fs::metadata(&path).unwrap().len(), "len {len}");
                // Every sealed byte after the header was reported written, once.
                let mut runs = seen.into_inner().unwrap();
                runs.sort();
                let mut at = KEYED_HEADER_LEN as u64;
                for (o, l) in runs {
                    assert_eq!(o, at, "len {len} threads {threads}");
                    at += l;
                }
                assert_eq!(at, n);
                let mut r =
                    SealReader::with_key_bound(&dek, b"ctx", File::open(&path).unwrap()).unwrap();
                let mut back = Vec::new();
                r.read_to_end(&mut back).unwrap();
                assert_eq!(back, data, "len {len} threads {threads}");
                let other = SealReader::with_key_bound(&dek, b"other", File::open(&path).unwrap())
                    .and_then(|mut r| {
                        let mut v = Vec::new();
                        r.read_to_end(&mut v).map_err(crate::seal::SealError::from)
                    });
                assert!(other.is_err(), "bound to its context");
            }
        }
    }
}
