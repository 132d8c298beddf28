use super::*;
use crate::policy::decide::{Decision, Verdict};
use crate::policy::detect::Finding;
use crate::seal::Keyring;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::sync::Arc;

fn store(dir: &std::path::Path) -> Store {
    Store::open_local(dir, Arc::new(Keyring::for_tests())).unwrap()
}

fn protector(store: &Store) -> Protector {
    Protector::new(
        store.clone(),
        "https://veilig.zorg.nl/",
        "Zorg BV",
        "nl",
        None,
    )
}

fn decision(findings: &[&str]) -> Decision {
    Decision {
        verdict: Verdict::Deliver,
        rules: vec![],
        findings: findings
            .iter()
            .map(|o| Finding {
                detector: "bsn".into(),
                label: "BSN".into(),
                origin: o.to_string(),
                excerpt: "1234*****".into(),
            })
            .collect(),
        unscannable: vec![],
        sender: Default::default(),
        external: vec![],
        reasons: vec![],
    }
}

fn mail(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut m = b"From: Jan de Vries <jan@zorg.nl>\r\nTo: Piet <piet@example.com>, a@b.org\r\n\
Cc: c@d.org\r\nSubject: [secure files] Uitslagen\r\nMessage-ID: <m1@zorg.nl>\r\n\
DKIM-Signature: v=1; d=zorg.nl; b=old\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nGeheime tekst over de uitslag\r\n"
        .to_vec();
    for (name, data) in files {
        m.extend_from_slice(
            format!(
                "--zz\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                base64::engine::general_purpose::STANDARD.encode(data)
            )
            .as_bytes(),
        );
    }
    m.extend_from_slice(b"--zz--\r\n");
    m
}

struct Run {
    store: Store,
    out: Outcome,
    _dir: tempfile::TempDir,
}

fn run(
    original: &[u8],
    protection: schema::Protection,
    auth: schema::Auth,
    d: &Decision,
    rcpts: &[&str],
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let p = protector(&store);
    let rcpts: Vec<String> = rcpts.iter().map(|s| s.to_string()).collect();
    let settings = Settings::default();
    let tags = TagWords::default();
    let out = p
        .protect(&Request {
            original,
            recipients: &rcpts,
            protection,
            auth,
            decision: d,
            settings: &settings,
            tags: &tags,
            decoded: &[],
            now: 1_800_000_000,
        })
        .unwrap();
    Run {
        store,
        out,
        _dir: dir,
    }
}

fn token_in(copy: &[u8]) -> String {
    let m = mail_parser::MessageParser::default().parse(copy).unwrap();
    let s = m.body_text(0).unwrap().into_owned();
    let i = s.find("https://veilig.zorg.nl/l/").expect("a link") + 25;
    s[i..i + 32].to_string()
}

fn protected(r: &Run) -> &Protected {
    match &r.out {
        Outcome::Protected(p) => p,
        o => panic!("not protected: {o:?}"),
    }
}

#[test]
fn files_unseal_to_the_original_bytes() {
    let big: Vec<u8> = (0..65_536u32).map(|i| (i * 7 % 251) as u8).collect();
    let files: [(&str, &[u8]); 3] = [("leeg.bin", b""), ("een.bin", b"x"), ("64k.bin", &big)];
    let original = mail(&files);
    let r = run(
        &original,
        schema::Protection::SecureFiles,
        schema::Auth::Password,
        &decision(&[]),
        &["piet@example.com", "a@b.org", "c@d.org", "hidden@e.org"],
    );
    let p = protected(&r);
    assert_eq!(p.protection, Protection::SecureFiles);
    assert_eq!(p.copies.len(), 4);
    let tokens: Vec<String> = p.copies.iter().map(|c| token_in(&c.bytes)).collect();
    let mut uniq = tokens.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 4, "one distinct link per recipient");
    for (n, t) in tokens.iter().enumerate() {
        let (id, rcpt) = r.store.meta.link_for_token(t).unwrap().unwrap();
        assert_eq!((id, rcpt), (p.message, n as u32));
    }
    let (msg, dek) = r.store.meta.get_message(p.message).unwrap().unwrap();
    assert_eq!(msg.subject, "Uitslagen");
    assert_eq!(msg.sender, "jan@zorg.nl");
    let kinds: Vec<RecipientKind> = msg.recipients.iter().map(|r| r.kind).collect();
    use RecipientKind::*;
    assert_eq!(kinds, [To, To, Cc, Bcc]);
    assert!(msg.body.is_none());
    for (rec, (name, data)) in msg.files.iter().zip(files) {
        assert_eq!(rec.name, name);
        let mut got = Vec::new();
        r.store
            .blobs
            .open(&rec.blob, &dek)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(Sha256::digest(&got), Sha256::digest(data), "{name}");
        assert_eq!(rec.size, data.len() as u64);
    }
    // The copies keep the body, lose the attachments, the tags and the old signature; Bcc is
    // not shown to anyone.
    let copy = String::from_utf8_lossy(&p.copies[0].bytes);
    assert!(copy.contains("Geheime tekst"), "{copy}");
    assert!(!copy.contains("[secure files]"));
    assert!(!copy.contains("b=old"));
    assert!(!copy.contains("hidden@e.org"));
    assert!(
        !copy
            .to_ascii_lowercase()
            .contains("content-disposition: attachment")
    );
}

#[test]
fn body_finding_makes_files_protection_a_secure_message() {
    let original = mail(&[("a.pdf", b"%PDF")]);
    let r = run(
        &original,
        schema::Protection::SecureFiles,
        schema::Auth::Password,
        &decision(&["body"]),
        &["piet@example.com"],
    );
    let p = protected(&r);
    assert_eq!(p.protection, Protection::SecureMessage);
    let copy = String::from_utf8_lossy(&p.copies[0].bytes);
    assert!(
        !copy.contains("Geheime tekst"),
        "the body is not in the mail"
    );
    assert!(copy.contains("Jan de Vries (jan@zorg.nl)"));
    let (msg, dek) = r.store.meta.get_message(p.message).unwrap().unwrap();
    let body = msg.body.expect("body stored");
    let mut b = Vec::new();
    r.store
        .blobs
        .open(&body.blob, &dek)
        .unwrap()
        .read_to_end(&mut b)
        .unwrap();
    assert!(String::from_utf8_lossy(&b).contains("Geheime tekst"));
}

#[test]
fn files_protection_without_files_or_findings_changes_nothing() {
    let original = mail(&[]);
    let r = run(
        &original,
        schema::Protection::PublicFiles,
        schema::Auth::Password,
        &decision(&["attachment x.pdf"]),
        &["piet@example.com"],
    );
    assert!(matches!(r.out, Outcome::NothingToProtect));
}

#[test]
fn sms_without_a_phone_refuses_that_recipient_only() {
    let original = mail(&[("a.pdf", b"%PDF")]);
    let mut d = decision(&[]);
    d.sender
        .controls
        .insert("phone".into(), "piet@example.com=0612345678".into());
    let r = run(
        &original,
        schema::Protection::SecureFiles,
        schema::Auth::Sms,
        &d,
        &["piet@example.com", "a@b.org"],
    );
    let p = protected(&r);
    assert_eq!(p.copies.len(), 1);
    assert_eq!((p.copies[0].rcpt, p.copies[0].store_rcpt), (0, 0));
    assert_eq!(p.refused.len(), 1);
    assert_eq!(p.refused[0].0, 1);
    assert!(p.refused[0].1.starts_with("550 5.7.0"));
    let (msg, _) = r.store.meta.get_message(p.message).unwrap().unwrap();
    assert_eq!(msg.auth, Auth::Sms);
    assert_eq!(msg.recipients[0].phone.as_deref(), Some("+31612345678"));
}

#[test]
fn custom_password_is_stored_as_argon2_only() {
    let original = mail(&[("a.pdf", b"%PDF")]);
    let mut d = decision(&[]);
    d.sender
        .controls
        .insert("password".into(), "Paard-Batterij-Nietje".into());
    let r = run(
        &original,
        schema::Protection::SecureFiles,
        schema::Auth::Password,
        &d,
        &["piet@example.com"],
    );
    let p = protected(&r);
    let (msg, _) = r.store.meta.get_message(p.message).unwrap().unwrap();
    assert_eq!(
        msg.auth,
        Auth::Password {
            delivery: PasswordDelivery::Other
        }
    );
    let h = msg.recipients[0].password_hash.as_deref().unwrap();
    assert!(h.starts_with("$argon2id$"), "{h}");
    assert!(!h.contains("Paard"));
    assert!(
        !String::from_utf8_lossy(&p.copies[0].bytes).contains("Paard-Batterij"),
        "never sent"
    );
}

#[test]
fn public_files_need_no_authentication() {
    let original = mail(&[("a.pdf", b"%PDF")]);
    let r = run(
        &original,
        schema::Protection::PublicFiles,
        schema::Auth::Sms,
        &decision(&[]),
        &["piet@example.com"],
    );
    let p = protected(&r);
    let (msg, _) = r.store.meta.get_message(p.message).unwrap().unwrap();
    assert_eq!(msg.auth, Auth::None);
    assert!(p.refused.is_empty());
}

/// What inspection keeps of `original`: its decoded attachment bodies.
fn decoded(original: &[u8]) -> Vec<crate::inspect::Decoded> {
    let limits = crate::inspect::Limits {
        keep_decoded: usize::MAX,
        ..Default::default()
    };
    crate::inspect::inspect(original, &limits).decoded
}

fn protect_with(p: &Protector, original: &[u8], decoded: &[crate::inspect::Decoded]) -> MessageId {
    let rcpts = ["piet@example.com".to_string()];
    let (settings, tags) = (Settings::default(), TagWords::default());
    let out = p
        .protect(&Request {
            original,
            recipients: &rcpts,
            protection: schema::Protection::SecureFiles,
            auth: schema::Auth::Password,
            decision: &decision(&[]),
            settings: &settings,
            tags: &tags,
            decoded,
            now: 1_800_000_000,
        })
        .unwrap();
    match out {
        Outcome::Protected(p) => p.message,
        other => panic!("{other:?}"),
    }
}

/// A store and a protector whose checksum jobs wait in the returned queue.
fn paused(
    dir: &std::path::Path,
) -> (
    Store,
    Protector,
    std::sync::mpsc::Receiver<checksums::Job>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    let store = store(dir);
    let (sums, jobs, held) = checksums::Checksums::paused();
    let p = protector(&store).with_checksums(sums);
    (store, p, jobs, held)
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut next = crate::testutil::xorshift(seed);
    (0..len).map(|_| next() as u8).collect()
}

/// A large file's checksum is left to the helper (the record has none and the message is
/// listed until the job has run); a small one's is stored with the record. The job stores
/// the SHA-256 of the original bytes and frees the budget.
#[test]
fn large_files_are_checksummed_after_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p, jobs, held) = paused(dir.path());
    let big = noise(5, checksums::DEFER_FROM + 3);
    let original = mail(&[("groot.bin", &big), ("klein.txt", b"klein")]);
    let id = protect_with(&p, &original, &decoded(&original));

    let (msg, _) = store.meta.get_message(id).unwrap().unwrap();
    assert_eq!(msg.files[0].sha256, None, "left to the helper");
    let small: [u8; 32] = Sha256::digest(b"klein").into();
    assert_eq!(msg.files[1].sha256, Some(small));
    assert_eq!(store.meta.unsummed().unwrap(), [id]);
    assert!(held.load(std::sync::atomic::Ordering::Acquire) >= big.len());

    checksums::run(&store, jobs.try_recv().unwrap(), &held);
    assert!(jobs.try_recv().is_err(), "one job per message");
    let (msg, _) = store.meta.get_message(id).unwrap().unwrap();
    let want: [u8; 32] = Sha256::digest(&big).into();
    assert_eq!(msg.files[0].sha256, Some(want));
    assert!(store.meta.unsummed().unwrap().is_empty());
    assert_eq!(held.load(std::sync::atomic::Ordering::Acquire), 0);

    // Without the decoded bytes (the relay protecting from its queue), or past the budget,
    // the file is hashed at once.
    let id = protect_with(&p, &original, &[]);
    let (msg, _) = store.meta.get_message(id).unwrap().unwrap();
    assert_eq!(msg.files[0].sha256, Some(want));
    held.store(checksums::HOLD, std::sync::atomic::Ordering::Release);
    let id = protect_with(&p, &original, &decoded(&original));
    let (msg, _) = store.meta.get_message(id).unwrap().unwrap();
    assert_eq!(msg.files[0].sha256, Some(want));
    assert!(jobs.try_recv().is_err());
}

/// A job lost in a crash: the message stays listed, and at the next start its sums are
/// computed from the sealed blobs.
#[test]
fn checksums_lost_in_a_crash_are_computed_from_the_blobs_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let (store, p, jobs, _) = paused(dir.path());
    let big = noise(6, checksums::DEFER_FROM * 2);
    let original = mail(&[("groot.bin", &big)]);
    let id = protect_with(&p, &original, &decoded(&original));
    drop(jobs);
    drop(p);
    store.meta.flush().unwrap();

    let started = checksums::Checksums::start(store.clone()).unwrap();
    assert_eq!(started.resume(&store).unwrap(), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let want: [u8; 32] = Sha256::digest(&big).into();
    loop {
        let (msg, _) = store.meta.get_message(id).unwrap().unwrap();
        if let Some(sum) = msg.files[0].sha256 {
            assert_eq!(sum, want);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never computed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(store.meta.unsummed().unwrap().is_empty());
}
