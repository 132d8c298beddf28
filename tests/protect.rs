//! Sealing, storage and rewriting end to end: real clients (Python smtplib, swaks) send tagged
//! and policy-forced mail through the gateway to a capturing next hop; what arrives carries
//! links instead of content, and the store (opened with the real library after sluis stops)
//! unseals to the original bytes.

mod common;

use base64::Engine;
use common::*;
use sha2::{Digest, Sha256};
use sluis::seal::Keyring;
use sluis::store::{Download, Protection, Store};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(60);

fn copy_dir(from: &Path, to: &Path) {
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
fn start_with(cap: &Capture, extra: impl FnOnce(Config) -> Config) -> Sluis {
    let cfg = Config::new(&cap.next_hop())
        .set("organisation", "internal_domains", "[\"org.test\"]")
        .set("organisation", "name", "\"Testorganisatie\"")
        .set("policy", "dir", "\"policies\"")
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

fn start(cap: &Capture) -> Sluis {
    start_with(cap, |c| c)
}

/// A multipart/mixed message with a text body and base64 attachments.
fn mail(headers: &str, body: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
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

fn smtplib_send(sluis: &Sluis, from: &str, rcpts: &[&str], msg: &[u8]) {
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
fn noise(n: usize, seed: u64) -> Vec<u8> {
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
fn link_token(m: &Captured) -> String {
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

fn open_store(data_dir: &Path) -> Store {
    let keys = Keyring::load_or_create(&data_dir.join("master.key")).unwrap();
    Store::open_local(data_dir, Arc::new(keys)).unwrap()
}

fn read_blob(store: &Store, blob: &sluis::store::BlobId, dek: &sluis::store::DataKey) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .blobs
        .open(blob, dek)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
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

fn assert_nowhere(dir: &Path, needle: &[u8]) {
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

#[test]
fn tagged_and_forced_mail_leaves_as_links_and_unseals_to_the_original() {
    let cap = Capture::start();
    let mut sluis = start(&cap);
    let u = unique("");
    let secret_file = format!("ZEEPAARDJE{u} staat in de bijlage");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("leeg.bin", vec![]),
        ("een.bin", b"Z".to_vec()),
        ("precies-64k.bin", noise(65_536, 1)),
        ("notitie.txt", secret_file.clone().into_bytes()),
        ("groot.bin", noise(3 << 20, 2)),
    ];

    // [secure files]: To, Cc and a Bcc recipient, by smtplib.
    let body_a = format!("Kwartaalcijfers{u} in de bijlagen.");
    let a = mail(
        &format!(
            "To: Piet <piet@extern.test>\r\nCc: chris@extern.test\r\nSubject: [secure files] A{u}\r\n\
             Message-ID: <a{u}@org.test>\r\n"
        ),
        &body_a,
        &files,
    );
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["piet@extern.test", "chris@extern.test", "bcc@extern.test"],
        &a,
    );
    // [public files] with a download limit, by swaks.
    let b_path = sluis.dir.path().join("b.eml");
    std::fs::write(
        &b_path,
        mail(
            &format!(
                "To: publiek@extern.test\r\nSubject: [openbare bestanden] B{u}\r\nX-Sluis-Max-Downloads: 2\r\n"
            ),
            &format!("Folder{u} voor iedereen."),
            &files[3..4],
        ),
    )
    .unwrap();
    let (ok, out) = swaks(
        sluis.addr,
        &[
            "--from",
            "arts@org.test",
            "--to",
            "publiek@extern.test",
            "--data",
            &format!("@{}", b_path.display()),
        ],
    );
    assert!(ok, "{out}");
    // [secure]: the body goes into the store too.
    let body_c = format!("Uitslag{u} van het onderzoek.");
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["patient@extern.test"],
        &mail(
            &format!("To: patient@extern.test\r\nSubject: [beveiligd] C{u}\r\n"),
            &body_c,
            &files[1..2],
        ),
    );
    // Forced by the default policy: a BSN to an external recipient, no tag.
    let body_d = format!("Burgerservicenummer 111222333, dossier{u}.");
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["gemeente@extern.test"],
        &mail(
            &format!("To: gemeente@extern.test\r\nSubject: D{u}\r\n"),
            &body_d,
            &[],
        ),
    );

    let all = cap.wait_for(6, ARRIVAL);
    std::thread::sleep(Duration::from_millis(500));
    let all_now = cap.messages();
    assert_eq!(all_now.len(), 6, "one copy per recipient, nothing else");
    let by = |s: &str| -> Vec<Captured> {
        all.iter()
            .filter(|m| m.text().contains(s))
            .cloned()
            .collect()
    };
    let a_copies = by(&format!("A{u}"));
    assert_eq!(a_copies.len(), 3);
    let b64_head = base64::engine::general_purpose::STANDARD.encode(&files[2].1[..57]);
    for m in all.iter() {
        assert_eq!(m.rcpt_tos.len(), 1, "one recipient per copy");
        assert_eq!(m.mail_from, "arts@org.test");
        let t = m.text();
        assert!(!t.contains(&b64_head), "an attachment left sluis");
        assert!(!t.contains("ZEEPAARDJE"), "an attachment left sluis");
        assert!(!t.contains("111222333"), "the BSN left sluis");
        assert!(!t.contains("[secure files]") && !t.contains("[openbare bestanden]"));
        assert!(
            t.lines()
                .filter(|l| l.starts_with("X-Sluis-"))
                .all(|l| l.starts_with("X-Sluis-Processed:")),
            "control headers left: {t}"
        );
        assert!(
            !t.to_ascii_lowercase()
                .contains("content-disposition: attachment")
        );
        assert!(t.contains("Testorganisatie"), "the organisation is named");
    }
    // Files protection keeps the body and lists the files; Bcc stays invisible.
    let piet = a_copies
        .iter()
        .find(|m| m.rcpt_tos == ["piet@extern.test"])
        .unwrap();
    let parsed = mail_parser::MessageParser::default()
        .parse(&piet.data)
        .unwrap();
    let text = parsed.body_text(0).unwrap();
    assert!(text.contains(&body_a), "{text}");
    assert!(text.contains("Download bestanden"), "{text}");
    assert!(text.contains("precies-64k.bin (64 KB)") || text.contains("precies-64k.bin"));
    assert!(parsed.body_html(0).unwrap().contains("Download bestanden"));
    assert_eq!(parsed.message_id(), Some(format!("a{u}@org.test").as_str()));
    assert_eq!(parsed.subject(), Some(format!("A{u}").as_str()));
    for m in &a_copies {
        assert!(!m.text().contains("bcc@extern.test"), "Bcc shown");
    }
    let tokens: Vec<String> = all.iter().map(link_token).collect();
    let mut distinct = tokens.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "every recipient has a link of its own");
    // Secure messages: the body is not in the mail.
    for s in [format!("C{u}"), format!("D{u}")] {
        let m = &by(&s)[0];
        assert!(m.text().contains("beveiligd bericht"), "{}", m.text());
        assert!(m.text().contains("Anna Arts (arts@org.test)"));
    }
    assert!(!by(&format!("C{u}"))[0].text().contains(&body_c));
    assert!(!by(&format!("D{u}"))[0].text().contains("dossier"));

    // Nothing of the content is in the data directory in clear.
    for needle in [
        format!("ZEEPAARDJE{u}"),
        body_a.clone(),
        body_c.clone(),
        format!("dossier{u}"),
        format!("Folder{u}"),
    ] {
        assert_nowhere(&sluis.data_dir, needle.as_bytes());
    }
    assert_nowhere(&sluis.data_dir, &files[2].1[1000..1064]);

    sluis.terminate(Duration::from_secs(20));
    let store = open_store(&sluis.data_dir);
    let token_of = |rcpt: &str| {
        link_token(
            all.iter()
                .find(|m| m.rcpt_tos == [rcpt.to_string()])
                .unwrap(),
        )
    };
    let (mid, rcpt) = store
        .meta
        .link_for_token(&token_of("bcc@extern.test"))
        .unwrap()
        .unwrap();
    let (msg, dek) = store.meta.get_message(mid).unwrap().unwrap();
    assert_eq!(msg.protection, Protection::SecureFiles);
    assert_eq!(msg.recipients[rcpt as usize].address, "bcc@extern.test");
    assert_eq!(msg.subject, format!("A{u}"));
    assert_eq!(msg.files.len(), files.len());
    for (rec, (name, data)) in msg.files.iter().zip(&files) {
        assert_eq!(&rec.name, name);
        let got = read_blob(&store, &rec.blob, &dek);
        assert_eq!(
            Sha256::digest(&got),
            Sha256::digest(data),
            "{name} unseals to the original"
        );
    }
    let events = store.meta.events(mid).unwrap();
    let relayed = events
        .iter()
        .filter(|e| e.kind == sluis::store::EventKind::Relayed)
        .count();
    assert_eq!(relayed, 3, "each copy's relay is recorded: {events:?}");

    let (mid_b, _) = store
        .meta
        .link_for_token(&token_of("publiek@extern.test"))
        .unwrap()
        .unwrap();
    let (msg_b, _) = store.meta.get_message(mid_b).unwrap().unwrap();
    assert_eq!(msg_b.protection, Protection::PublicFiles);
    assert_eq!(msg_b.auth, sluis::store::Auth::None);
    assert_eq!(msg_b.files[0].download_limit, 2);
    for expect in [
        Download::Allowed { remaining: Some(1) },
        Download::Allowed { remaining: Some(0) },
        Download::Exhausted,
    ] {
        assert_eq!(store.meta.count_download(mid_b, 0, 0).unwrap(), expect);
    }

    for (rcpt, body) in [
        ("patient@extern.test", body_c.as_str()),
        ("gemeente@extern.test", body_d.as_str()),
    ] {
        let (m, _) = store.meta.link_for_token(&token_of(rcpt)).unwrap().unwrap();
        let (msg, dek) = store.meta.get_message(m).unwrap().unwrap();
        assert_eq!(msg.protection, Protection::SecureMessage);
        let b = read_blob(&store, &msg.body.as_ref().unwrap().blob, &dek);
        assert!(String::from_utf8_lossy(&b).contains(body), "body stored");
    }

    // A flipped byte in a blob makes reading fail loudly, never return altered content.
    let blob = msg.files[4].blob.to_string();
    let path = all_files(&sluis.data_dir.join("blobs"))
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy() == blob)
        .unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let mut r = store.blobs.open(&msg.files[4].blob, &dek).unwrap();
    let mut sink = Vec::new();
    let e = r.read_to_end(&mut sink).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
}

#[test]
fn dkim_signs_rewritten_mail_and_an_independent_verifier_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dkim.pem");
    let st = std::process::Command::new("openssl")
        .args(["genrsa", "-out", key.to_str().unwrap(), "2048"])
        .output()
        .unwrap();
    assert!(st.status.success());
    let pubder = std::process::Command::new("openssl")
        .args([
            "rsa",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ])
        .output()
        .unwrap();
    let pubkey = base64::engine::general_purpose::STANDARD.encode(&pubder.stdout);
    let cap = Capture::start();
    let key_s = key.to_str().unwrap().to_string();
    let sluis = start_with(&cap, |c| {
        c.set("dkim", "domain", "\"org.test\"")
            .set("dkim", "selector", "\"sluis1\"")
            .set("dkim", "key_file", &format!("{key_s:?}"))
    });
    let u = unique("dk");
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["p@extern.test"],
        &mail(
            &format!(
                "DKIM-Signature: v=1; a=rsa-sha256; d=org.test; s=old; h=from; bh=x; b=oldsig\r\n\
                 To: p@extern.test\r\nSubject: [secure] {u}\r\n"
            ),
            "Tekst",
            &[],
        ),
    );
    let m = cap.wait_for_containing(&u, ARRIVAL);
    let t = m.text();
    assert_eq!(t.matches("DKIM-Signature:").count(), 1, "{t}");
    assert!(!t.contains("oldsig"));
    let eml = dir.path().join("m.eml");
    std::fs::write(&eml, &m.data).unwrap();
    let (ok, out) = python("dkim_verify.py", &[eml.to_str().unwrap(), &pubkey]);
    assert!(ok && out.contains("PASS"), "{out}");
    // The verifier is not a rubber stamp: an altered body fails.
    let tampered =
        String::from_utf8_lossy(&m.data).replace("beveiligd bericht", "beveiligd bericht!");
    std::fs::write(&eml, tampered).unwrap();
    let (ok, out) = python("dkim_verify.py", &[eml.to_str().unwrap(), &pubkey]);
    assert!(!ok && out.contains("FAIL"), "{out}");
}

#[test]
fn expired_messages_are_crypto_shredded() {
    let cap = Capture::start();
    let mut sluis = start(&cap);
    let u = unique("exp");
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["p@extern.test"],
        &mail(
            &format!("To: p@extern.test\r\nSubject: [secure files] {u}\r\nX-Sluis-Expires: 3s\r\n"),
            "Tekst",
            &[("a.bin", noise(100_000, 3))],
        ),
    );
    let m = cap.wait_for_containing(&u, ARRIVAL);
    let token = link_token(&m);
    poll(ARRIVAL, "the expired message to be shredded", || {
        sluis
            .log()
            .contains("expired: crypto-shredded")
            .then_some(())
    });
    sluis.terminate(Duration::from_secs(20));
    let store = open_store(&sluis.data_dir);
    assert_eq!(store.meta.link_for_token(&token).unwrap(), None);
    let blobs: Vec<PathBuf> = all_files(&sluis.data_dir.join("blobs"))
        .into_iter()
        .filter(|p| !p.starts_with(sluis.data_dir.join("blobs/tmp")))
        .collect();
    assert!(blobs.is_empty(), "blobs removed: {blobs:?}");
}

#[test]
fn sms_without_a_phone_number_bounces_that_recipient_only() {
    let cap = Capture::start();
    let sluis = start(&cap);
    let u = unique("sms");
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["met@extern.test", "zonder@extern.test"],
        &mail(
            &format!(
                "To: met@extern.test, zonder@extern.test\r\nSubject: [secure] [sms] {u}\r\n\
                 X-Sluis-Phone: met@extern.test=06 1234 5678\r\n"
            ),
            "Tekst",
            &[],
        ),
    );
    let msgs = cap.wait_for(2, ARRIVAL);
    let copy = msgs
        .iter()
        .find(|m| m.rcpt_tos == ["met@extern.test"])
        .expect("the recipient with a phone number gets a link");
    assert!(copy.text().contains(&u));
    let dsn = msgs
        .iter()
        .find(|m| m.rcpt_tos == ["arts@org.test"])
        .expect("the sender hears about the other");
    assert!(dsn.text().contains("zonder@extern.test"), "{}", dsn.text());
    assert!(dsn.text().contains("no phone number"), "{}", dsn.text());
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !cap.messages()
            .iter()
            .any(|m| m.rcpt_tos == ["zonder@extern.test"])
    );
}

#[test]
fn when_sealing_fails_the_message_waits_and_nothing_leaves() {
    let cap = Capture::start();
    let sluis = start(&cap);
    // The blob store cannot create files (a file where its temp folder should be; this also
    // holds for root).
    let tmp = sluis.data_dir.join("blobs/tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"in the way").unwrap();
    let u = unique("fail");
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["p@extern.test"],
        &mail(
            &format!("To: p@extern.test\r\nSubject: [secure files] {u}\r\n"),
            "Tekst",
            &[("a.bin", b"inhoud".to_vec())],
        ),
    );
    poll(ARRIVAL, "the message to be deferred", || {
        output_text(&sluis.cli(&["queue", "list"]))
            .contains("cannot protect message")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(cap.messages().is_empty(), "nothing left unprotected");
    std::fs::remove_file(&tmp).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    assert!(sluis.cli(&["queue", "retry"]).status.success());
    let m = cap.wait_for_containing(&u, ARRIVAL);
    assert!(!m.text().contains("aW5ob3Vk"), "attachment removed");
    link_token(&m);
}

#[test]
fn key_rotation_keeps_every_message_open_and_retires_the_old_key() {
    let cap = Capture::start();
    let mut sluis = start(&cap);
    let send = |sluis: &Sluis, tag: &str| {
        smtplib_send(
            sluis,
            "arts@org.test",
            &["p@extern.test"],
            &mail(
                &format!("To: p@extern.test\r\nSubject: [secure files] {tag}\r\n"),
                "Tekst",
                &[("a.bin", tag.as_bytes().to_vec())],
            ),
        );
        link_token(&cap.wait_for_containing(tag, ARRIVAL))
    };
    let first = unique("rot1");
    let t1 = send(&sluis, &first);
    let out = sluis.cli(&["key", "rotate"]);
    assert!(out.status.success());
    assert!(
        output_text(&out).contains("new master key 2; 1 data key(s) re-wrapped"),
        "{}",
        output_text(&out)
    );
    let second = unique("rot2");
    let t2 = send(&sluis, &second);
    sluis.terminate(Duration::from_secs(20));
    // Offline too.
    let out = sluis.cli(&["key", "rotate"]);
    assert!(
        output_text(&out).contains("new master key 3; 2 data key(s) re-wrapped"),
        "{}",
        output_text(&out)
    );
    // Retire keys 1 and 2: keep only the newest line.
    let kf = sluis.data_dir.join("master.key");
    let text = std::fs::read_to_string(&kf).unwrap();
    let last = text.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    assert!(last.starts_with("3 "));
    std::fs::write(&kf, format!("{last}\n")).unwrap();
    let store = open_store(&sluis.data_dir);
    for (t, tag) in [(&t1, &first), (&t2, &second)] {
        let (id, _) = store.meta.link_for_token(t).unwrap().unwrap();
        let (msg, dek) = store.meta.get_message(id).unwrap().unwrap();
        assert_eq!(read_blob(&store, &msg.files[0].blob, &dek), tag.as_bytes());
    }
    drop(store);
    // The wrong key opens nothing.
    std::fs::write(&kf, format!("3 {}\n", "ab".repeat(32))).unwrap();
    let store = open_store(&sluis.data_dir);
    assert!(
        store.meta.link_for_token(&t1).is_err()
            || store.meta.link_for_token(&t1).unwrap().is_none()
    );
}
