//! Seals and unseals 1 GiB through the blob store, streamed from a generator, and checks the
//! checksum and that memory stays flat (peak RSS, VmHWM, below 200 MiB).
//! `SLUIS_LARGE_MIB` overrides the size (in MiB).
//!
//! And the same size end to end: a mail with a 1 GiB attachment, streamed over SMTP to the real
//! gateway with `[secure files]`, arrives at the next hop as a link, and the store unseals the
//! attachment to the original bytes.
//!
//! The full 1 GiB runs in release builds (`cargo test --release --test store_large`, about 5 s;
//! `.ci/run` does). In debug builds the AES-GCM-SIV/STREAM generics run unoptimised (a few
//! MB/s), so there the same test seals 64 MiB: still many chunks, still a memory check.

mod common;

use base64::Engine;
use common::*;
use sha2::{Digest, Sha256};
use sluis::store::{BlobStore, DataKey, FsBlobStore};
use std::io::{self, Read};
use std::time::{Duration, Instant};

fn size_mib() -> u64 {
    std::env::var("SLUIS_LARGE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 64 } else { 1024 })
}

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
    let mib = size_mib();
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

#[test]
fn one_gib_attachment_through_the_gateway_leaves_as_a_link() {
    let mib = if cfg!(debug_assertions) {
        16
    } else {
        size_mib()
    };
    let len = mib << 20;
    let cap = Capture::start();
    let mut sluis = Sluis::start(
        Config::new(&cap.next_hop())
            .smtp("max_message_size", "\"2 GiB\"")
            .set("organisation", "internal_domains", "[\"org.test\"]")
            .set("web", "public_url", "\"https://veilig.org.test\"")
            .set(
                "policy",
                "dir",
                &format!("{:?}", concat!(env!("CARGO_MANIFEST_DIR"), "/policies")),
            ),
    );
    let mut s = sluis.session();
    s.set_timeout(Duration::from_secs(600));
    s.expect("MAIL FROM:<arts@org.test>", "250");
    s.expect("RCPT TO:<p@extern.test>", "250");
    s.expect("DATA", "354");
    let u = unique("big");
    s.send(format!(
        "From: arts@org.test\r\nTo: p@extern.test\r\nSubject: [secure files] {u}\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nZie bijlage.\r\n\
         --b\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"groot.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n"
    ));
    // Streamed: 57 bytes per 76-character line, sent in ~1 MiB writes.
    let mut g = Gen::new(len);
    let mut hash = Sha256::new();
    let mut raw = vec![0u8; 57 * 18_396];
    loop {
        let mut got = 0;
        while got < raw.len() {
            let k = g.read(&mut raw[got..]).unwrap();
            if k == 0 {
                break;
            }
            got += k;
        }
        if got == 0 {
            break;
        }
        hash.update(&raw[..got]);
        let mut out = Vec::with_capacity(got / 57 * 78 + 80);
        for line in raw[..got].chunks(57) {
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(line)
                    .as_bytes(),
            );
            out.extend_from_slice(b"\r\n");
        }
        s.send(&out);
    }
    let want: [u8; 32] = hash.finalize().into();
    s.send("--b--\r\n.\r\n");
    let reply = s.read_reply();
    assert!(reply.starts("250"), "{reply:?}");
    let m = cap.wait_for_containing(&u, Duration::from_secs(600));
    assert!(
        m.data.len() < 64 * 1024,
        "a link, not the file: {} bytes",
        m.data.len()
    );
    let p = mail_parser::MessageParser::default()
        .parse(&m.data)
        .unwrap();
    let text = p.body_text(0).unwrap().into_owned();
    let i = text.find("https://veilig.org.test/l/").expect("a link") + 26;
    let token = text[i..i + 32].to_string();
    sluis.terminate(Duration::from_secs(60));

    let keys = sluis::seal::Keyring::load_or_create(&sluis.data_dir.join("master.key")).unwrap();
    let store =
        sluis::store::Store::open_local(&sluis.data_dir, std::sync::Arc::new(keys)).unwrap();
    let (id, _) = store.meta.link_for_token(&token).unwrap().unwrap();
    let (msg, dek) = store.meta.get_message(id).unwrap().unwrap();
    assert_eq!(msg.files.len(), 1);
    assert_eq!(msg.files[0].size, len);
    let mut r = store.blobs.open(&msg.files[0].blob, &dek).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let k = r.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
    }
    let got: [u8; 32] = h.finalize().into();
    assert_eq!(
        got, want,
        "the sealed attachment unseals to the original bytes"
    );
    eprintln!("{mib} MiB attachment through the gateway: ok");
}
