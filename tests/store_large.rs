//! Seals and unseals 1 GiB through the blob store, streamed from a generator, and checks the
//! checksum and that memory stays flat (peak RSS, VmHWM, below 200 MiB).
//! `SLUIS_LARGE_MIB` overrides the size (in MiB).
//!
//! The full 1 GiB runs in release builds (`cargo test --release --test store_large`, about 5 s;
//! `.ci/run` does). In debug builds the AES-GCM-SIV/STREAM generics run unoptimised (a few
//! MB/s), so there the same test seals 64 MiB: still many chunks, still a memory check.

use sha2::{Digest, Sha256};
use sluis::store::{BlobStore, DataKey, FsBlobStore};
use std::io::{self, Read};
use std::time::Instant;

/// A deterministic stream: a prime-length random pattern, so no 64 KiB chunk repeats.
struct Gen {
    pattern: Vec<u8>,
    pos: usize,
    left: u64,
}

impl Gen {
    fn new(len: u64) -> Gen {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let pattern = (0..1_048_573)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        Gen {
            pattern,
            pos: 0,
            left: len,
        }
    }
}

impl Read for Gen {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out
            .len()
            .min(self.pattern.len() - self.pos)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        out[..n].copy_from_slice(&self.pattern[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.pattern.len();
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hashes everything a reader yields as it passes through.
struct Tee<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.hash.update(&out[..n]);
        Ok(n)
    }
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[test]
fn one_gib_seals_and_unseals_in_flat_memory() {
    let mib: u64 = std::env::var("SLUIS_LARGE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 64 } else { 1024 });
    let len = mib << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsBlobStore::open(&dir.path().join("blobs")).expect("open blob store");
    let dek = DataKey::generate();

    let t = Instant::now();
    let mut src = Tee {
        inner: Gen::new(len),
        hash: Sha256::new(),
    };
    let info = store.put(&dek, &mut src).expect("seal");
    let want: [u8; 32] = src.hash.finalize().into();
    let sealed_in = t.elapsed();
    assert_eq!(info.size, len);
    assert_eq!(info.sha256, want, "put reports the plaintext's SHA-256");
    drop(src.inner);

    let t = Instant::now();
    let mut r = store.open(&info.id, &dek).expect("open");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).expect("unseal");
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    let got: [u8; 32] = h.finalize().into();
    let unsealed_in = t.elapsed();
    assert_eq!(n, len);
    assert_eq!(got, want, "unsealed bytes differ from the original");

    let hwm = vm_hwm_kib();
    eprintln!(
        "{mib} MiB: sealed in {sealed_in:.1?}, unsealed in {unsealed_in:.1?}, peak RSS {} MiB",
        hwm / 1024
    );
    assert!(hwm < 200 * 1024, "peak RSS {hwm} KiB is not flat");
    store.delete(&info.id).expect("delete");
}
