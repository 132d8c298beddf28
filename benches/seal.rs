//! Sealing throughput (issue 4): GB/s per core of sealing and unsealing with sluis's STREAM
//! construction (64 KiB chunks, AES-256-GCM-SIV), next to the raw aes-gcm-siv cipher over the
//! same buffers in the same chunks; and the blob store's `put` (sealing, file write, fsync).
//!
//! Run: `CARGO_TARGET_DIR=/var/tmp/sluis-target cargo bench --bench seal`
//!
//! Single-threaded; each figure is the best of N runs (N >= 3, at least `MIN_SECS` in total).
//! GB = 10^9 bytes. Target: sealing at no less than 80% of the raw cipher speed.

use aes_gcm_siv::aead::inout::InOutBuf;
use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use sluis::seal::{CHUNK, SealReader, SealWriter};
use sluis::store::{BlobStore, DataKey, FsBlobStore};
use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Instant;

const MIN_SECS: f64 = 1.5;
const MIN_RUNS: usize = 3;
const TARGET: f64 = 0.8;
const SIZE: usize = 64 << 20;

fn best(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    let (mut runs, start) = (0, Instant::now());
    while runs < MIN_RUNS || start.elapsed().as_secs_f64() < MIN_SECS {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
        runs += 1;
    }
    best
}

fn gbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

fn main() {
    let data: Vec<u8> = (0..SIZE).map(|i| (i.wrapping_mul(31) >> 3) as u8).collect();
    let key = [7u8; 32];
    let cipher = Aes256GcmSiv::new((&key).into());

    let nonce = |i: usize| {
        let mut n = [0u8; 12];
        n[..8].copy_from_slice(&(i as u64).to_be_bytes());
        Nonce::from(n)
    };
    // Raw cipher: every 64 KiB chunk encrypted in place with its own nonce, as STREAM does.
    let mut buf = data.clone();
    let raw_enc = best(|| {
        for (i, chunk) in buf.chunks_mut(CHUNK).enumerate() {
            let tag = cipher
                .encrypt_inout_detached(&nonce(i), b"", chunk.into())
                .unwrap();
            black_box(tag);
        }
    });
    // Raw decryption of the same chunks into a plaintext buffer.
    let sealed_raw: Vec<(Vec<u8>, Tag)> = data
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, c)| {
            let mut v = c.to_vec();
            let tag = cipher
                .encrypt_inout_detached(&nonce(i), b"", v.as_mut_slice().into())
                .unwrap();
            (v, tag)
        })
        .collect();
    let mut plain_raw = vec![0u8; SIZE];
    let raw_dec = best(|| {
        for (i, ((c, tag), out)) in sealed_raw
            .iter()
            .zip(plain_raw.chunks_mut(CHUNK))
            .enumerate()
        {
            let b = InOutBuf::new(c, out).unwrap();
            cipher
                .decrypt_inout_detached(&nonce(i), b"", b, tag)
                .unwrap();
        }
    });
    assert_eq!(plain_raw, data);

    // Sealing itself: into a sink, so the figure is the sealing layer and not the copy into a
    // destination (a file write copies into the page cache anyway; `put` below includes it).
    let seal = best(|| {
        let mut w = SealWriter::with_key_bound(&key, b"ctx", std::io::sink()).unwrap();
        w.write_all(&data).unwrap();
        w.finish().unwrap();
    });
    let mut out = Vec::with_capacity(SIZE + SIZE / CHUNK * 16 + 64);
    let seal_vec = best(|| {
        out.clear();
        let mut w = SealWriter::with_key_bound(&key, b"ctx", &mut out).unwrap();
        w.write_all(&data).unwrap();
        w.finish().unwrap();
    });
    let mut plain = Vec::with_capacity(SIZE);
    let unseal = best(|| {
        plain.clear();
        let mut r = SealReader::with_key_bound(&key, b"ctx", out.as_slice()).unwrap();
        r.read_to_end(&mut plain).unwrap();
    });
    assert_eq!(plain, data, "roundtrip");

    let dir = tempfile::Builder::new()
        .prefix("sluis-seal-bench-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let blobs = FsBlobStore::open(dir.path()).unwrap();
    let dek = DataKey::generate();
    let put = best(|| {
        let info = blobs.put(&dek, &mut data.as_slice()).unwrap();
        blobs.delete(&info.id).unwrap();
    });
    // From memory, as protection writes an attachment: two sealing threads, early write-out.
    let put_bytes = best(|| {
        let id = sluis::store::BlobId::random();
        blobs.put_bytes(&id, &dek, &data).unwrap();
        blobs.delete(&id).unwrap();
    });

    println!("sealing, {} MiB buffer, 64 KiB chunks, 1 core", SIZE >> 20);
    println!("{:<44} {:>8}", "", "GB/s");
    println!(
        "{:<44} {:>8.2}",
        "raw aes-256-gcm-siv encrypt (same chunks)",
        gbps(SIZE, raw_enc)
    );
    println!(
        "{:<44} {:>8.2}",
        "sluis seal (SealWriter, STREAM) to a sink",
        gbps(SIZE, seal)
    );
    println!(
        "{:<44} {:>8.2}",
        "sluis seal into a Vec (plus one copy)",
        gbps(SIZE, seal_vec)
    );
    println!(
        "{:<44} {:>8.2}",
        "raw aes-256-gcm-siv decrypt (same chunks)",
        gbps(SIZE, raw_dec)
    );
    println!(
        "{:<44} {:>8.2}",
        "sluis unseal (SealReader, STREAM)",
        gbps(SIZE, unseal)
    );
    println!(
        "{:<44} {:>8.2}",
        "blob store put (seal + write + fsync)",
        gbps(SIZE, put)
    );
    println!(
        "{:<44} {:>8.2}",
        "blob store put_bytes (2 threads, same)",
        gbps(SIZE, put_bytes)
    );
    let ratio = raw_enc / seal;
    let ratio_dec = raw_dec / unseal;
    println!();
    println!(
        "seal / raw cipher: {ratio:.2} (target >= {TARGET}: {})",
        if ratio >= TARGET { "met" } else { "NOT met" }
    );
    println!("unseal / raw cipher: {ratio_dec:.2}");
}
