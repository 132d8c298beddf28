//! Helpers for the protection tests: sluis with the shipped policy and links on a fixed public
//! URL, MIME mails with attachments, and reading the store back with the real library.

use super::*;
use base64::Engine;
use sluis::seal::Keyring;
use sluis::store::Store;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const ARRIVAL: Duration = Duration::from_secs(60);

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// sluis with the shipped default policy, org.test internal, links on https://veilig.org.test.
pub fn start_with(cap: &Capture, extra: impl FnOnce(Config) -> Config) -> Sluis {
    let cfg = Config::new(&cap.next_hop())
        .set("organisation", "internal_domains", "[\"org.test\"]")
        .set("organisation", "name", "\"Testorganisatie\"")
        .set("policy", "dir", "\"policies\"")
        .set("policy", "allow_empty_policy", "false")
        .set("web", "public_url", "\"https://veilig.org.test/\"")
        .set("storage", "shred_interval", "\"1s\"");
    let mut s = Sluis::prepare(extra(cfg));
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &s.dir.path().join("policies"),
    );
    s.spawn();
    s
}

pub fn start(cap: &Capture) -> Sluis {
    start_with(cap, |c| c)
}

/// `start` with `[policy] examine_before_reply` set: "always", "never" or "auto".
pub fn start_examining(cap: &Capture, mode: &str) -> Sluis {
    start_with(cap, |c| {
        c.set("policy", "examine_before_reply", &format!("\"{mode}\""))
    })
}

/// A multipart/mixed message with a text body and base64 attachments.
pub fn mail(headers: &str, body: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut m = format!(
        "From: Anna Arts <arts@org.test>\r\n{headers}Date: Tue, 24 Nov 2026 10:00:00 +0100\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n\
         --=_b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes();
    for (name, data) in files {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        m.extend_from_slice(
            format!(
                "--=_b\r\nContent-Type: application/octet-stream\r\n\
                 Content-Disposition: attachment; filename=\"{name}\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                lines.join("\r\n")
            )
            .as_bytes(),
        );
    }
    m.extend_from_slice(b"--=_b--\r\n");
    m
}

pub fn smtplib_send(sluis: &Sluis, from: &str, rcpts: &[&str], msg: &[u8]) {
    let path = sluis.dir.path().join(format!("{}.eml", unique("out")));
    std::fs::write(&path, msg).unwrap();
    let (ok, out) = python(
        "smtplib_send.py",
        &[
            &sluis.addr.port().to_string(),
            from,
            &rcpts.join(","),
            path.to_str().unwrap(),
        ],
    );
    assert!(ok && out.contains("REFUSED {}"), "{out}");
    std::fs::remove_file(path).unwrap();
}

/// Pseudo-random bytes that compress badly and never contain the test's marker words.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The personal link in a delivered copy (text part, decoded).
pub fn link_token(m: &Captured) -> String {
    let p = mail_parser::MessageParser::default()
        .parse(&m.data)
        .unwrap();
    let text = p.body_text(0).unwrap().into_owned();
    let i = text
        .find("https://veilig.org.test/l/")
        .unwrap_or_else(|| panic!("no link in {text}"))
        + "https://veilig.org.test/l/".len();
    text[i..i + 32].to_string()
}

pub fn open_store(data_dir: &Path) -> Store {
    let keys = Keyring::load_or_create(&data_dir.join("master.key")).unwrap();
    Store::open_local(data_dir, Arc::new(keys)).unwrap()
}

pub fn read_blob(
    store: &Store,
    blob: &sluis::store::BlobId,
    dek: &sluis::store::DataKey,
) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .blobs
        .open(blob, dek)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub fn assert_nowhere(dir: &Path, needle: &[u8]) {
    for p in all_files(dir) {
        let bytes = std::fs::read(&p).unwrap_or_default();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{:?} in clear in {}",
            String::from_utf8_lossy(needle),
            p.display()
        );
    }
}

/// The next message at the next hop not in `seen`, which it is added to.
pub fn next_new(cap: &Capture, seen: &mut std::collections::HashSet<String>) -> Captured {
    let m = poll(ARRIVAL, "a new message at the next hop", || {
        cap.messages().into_iter().find(|m| !seen.contains(&m.name))
    });
    seen.insert(m.name.clone());
    m
}

/// Sends a message from arts@org.test on a fresh session and returns the next new message at
/// the next hop.
pub fn send_and_catch(
    sluis: &Sluis,
    cap: &Capture,
    seen: &mut std::collections::HashSet<String>,
    rcpts: &[&str],
    msg: &[u8],
) -> Captured {
    sluis.session().send_mail("arts@org.test", rcpts, msg);
    next_new(cap, seen)
}
