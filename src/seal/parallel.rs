//! Sealing a blob held in memory with several threads at once: STREAM chunks are independent
//! given their index, so each thread seals a run of chunks and writes it at its own offset.
//! The result is byte for byte what [`super::SealWriter::with_key_bound`] writes (apart from
//! the random stream nonce) and opens with [`super::SealReader`].

use super::stream::{NONCE_PREFIX, Stream, TAG};
use super::{CHUNK, KEYED_HEADER_LEN, keyed_header, random_bytes};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Below this many bytes one thread seals it all (a thread costs more than it saves).
const PARALLEL_FROM: usize = 512 * 1024;

/// Seals `data` with the data key `dek`, bound to `context`, into `file` from offset 0, using
/// up to `threads` threads. `wrote(offset, len)` is called as each thread has written another
/// run of its part (to start write-out early). Returns the sealed length.
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
    let threads = if data.len() < PARALLEL_FROM {
        1
    } else {
        threads.clamp(1, chunks)
    };
    let per = chunks.div_ceil(threads);
    let part = |first: usize| -> io::Result<()> {
        let end = (first + per).min(chunks);
        let counter = u32::try_from(first).map_err(|_| io::Error::other("blob too large"))?;
        let mut stream = Stream::at(dek, &prefix, counter);
        let mut out = Vec::with_capacity(CHUNK + TAG);
        let start = offset(first);
        let mut unsent = start;
        for i in first..end {
            let plain = &data[i * CHUNK..((i + 1) * CHUNK).min(data.len())];
            let last = i == chunks - 1;
            stream
                .seal_into(context, plain, &mut out, last)
                .map_err(|_| io::Error::other("encryption failed"))?;
            let at = offset(i);
            file.write_all_at(&out, at)?;
            let written = at + out.len() as u64;
            if written - unsent >= 4 * CHUNK as u64 || i + 1 == end {
                wrote(unsent, written - unsent);
                unsent = written;
            }
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let others: Vec<_> = (1..threads)
            .map(|t| s.spawn(move || part(t * per)))
            .collect();
        let mine = part(0);
        others
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("sealing panicked")))
            })
            .fold(mine, Result::and)
    })?;
    Ok(offset(chunks - 1) + (data.len() - (chunks - 1) * CHUNK + TAG) as u64)
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
