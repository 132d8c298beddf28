//! Metadata store: records, tokens, events, expiry and shredding, download limits, rotation,
//! tampering, and that nothing readable lands in the data directory.

use super::*;
use crate::seal::Keyring;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

const SUBJECT: &str = "Kwartaalcijfers Zeeuwse Delta vertrouwelijk";
const SENDER: &str = "alice.afzender@example.org";
const RCPT: &str = "bob.ontvanger@example.net";
const FILE_NAME: &str = "salarislijst-zeeland-2025.xlsx";
pub(super) const FILE_BODY: &[u8] = b"Naam;Salaris\nJansen;4200\n";

pub(super) fn sample(store: &Store, expires: i64, limit: u32) -> (Message, DataKey) {
    let dek = DataKey::generate();
    let blob = store.blobs.put(&dek, &mut &FILE_BODY[..]).unwrap();
    let msg = Message {
        id: MessageId::random(),
        sender: SENDER.into(),
        sender_name: None,
        subject: SUBJECT.into(),
        created: 10,
        expires,
        protection: Protection::SecureFiles,
        auth: Auth::Password {
            delivery: PasswordDelivery::Email,
        },
        rfc_message_id: Some("<abc@example.org>".into()),
        body: None,
        recipients: vec![
            Recipient {
                address: RCPT.into(),
                kind: RecipientKind::To,
                phone: Some("+31612345678".into()),
                password_hash: None,
                blocked: false,
            },
            Recipient {
                address: "carol.bcc@example.net".into(),
                kind: RecipientKind::Bcc,
                phone: None,
                password_hash: None,
                blocked: false,
            },
        ],
        files: vec![FileRecord {
            name: FILE_NAME.into(),
            content_type: "application/vnd.ms-excel".into(),
            size: blob.size,
            blob: blob.id,
            sha256: Some(blob.sha256),
            download_limit: limit,
            blocked: false,
        }],
        blocked: false,
    };
    store.meta.put_message(&msg, &dek).unwrap();
    store.meta.flush().unwrap();
    (msg, dek)
}

pub(super) fn keys() -> Arc<Keyring> {
    Arc::new(Keyring::for_tests())
}

/// Every file under `dir`, with its bytes.
fn all_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out
}

pub(super) fn assert_absent(dir: &Path, needle: &[u8]) {
    for (path, bytes) in all_files(dir) {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{:?} found in {}",
            String::from_utf8_lossy(needle),
            path.display()
        );
    }
}

pub(super) fn read_blob(store: &Store, id: &BlobId, dek: &DataKey) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .blobs
        .open(id, dek)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn roundtrip_reopen_and_nothing_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let store = Store::open_local(dir.path(), k.clone()).unwrap();
    let (msg, dek) = sample(&store, 1000, 2);
    let token = store.meta.new_link(msg.id, 0).unwrap();
    let mut ev = Event::new(20, EventKind::Opened);
    ev.rcpt = Some(0);
    ev.detail = Some("client 203.0.113.7".into());
    store.meta.add_event(msg.id, &ev).unwrap();
    store.meta.count_download(msg.id, 0, 0).unwrap();
    futures_flush(&store);
    drop(store);

    let store = Store::open_local(dir.path(), k).unwrap();
    let (got, got_dek) = store.meta.get_message(msg.id).unwrap().unwrap();
    assert_eq!(got, msg);
    assert!(got_dek.same_as(&dek));
    assert_eq!(read_blob(&store, &got.files[0].blob, &got_dek), FILE_BODY);
    assert_eq!(
        store.meta.link_for_token(token.as_str()).unwrap(),
        Some((msg.id, 0))
    );
    assert_eq!(store.meta.events(msg.id).unwrap(), vec![ev]);
    assert_eq!(
        store.meta.count_download(msg.id, 0, 0).unwrap(),
        Download::Allowed { remaining: Some(0) }
    );
    assert!(
        store
            .meta
            .get_message(MessageId::random())
            .unwrap()
            .is_none()
    );
    store.meta.flush().unwrap();

    for needle in [
        SUBJECT.as_bytes(),
        b"Kwartaalcijfers",
        SENDER.as_bytes(),
        RCPT.as_bytes(),
        b"ontvanger",
        b"carol.bcc",
        b"+31612345678",
        FILE_NAME.as_bytes(),
        b"salarislijst",
        b"Jansen;4200",
        b"203.0.113.7",
        token.as_str().as_bytes(),
    ] {
        assert_absent(dir.path(), needle);
    }
}

/// Await `flush_async` as an async caller would.
fn futures_flush(store: &Store) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(store.meta.flush_async()).unwrap();
}

#[test]
fn tokens_are_stored_only_as_hashes() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_local(dir.path(), keys()).unwrap();
    let (msg, _) = sample(&store, 1000, 0);
    let t0 = store.meta.new_link(msg.id, 0).unwrap();
    let t1 = store.meta.new_link(msg.id, 1).unwrap();
    assert_ne!(t0, t1);
    assert_eq!(
        store.meta.link_for_token(t1.as_str()).unwrap(),
        Some((msg.id, 1))
    );
    assert_eq!(
        store.meta.link_for_token(t0.as_str()).unwrap(),
        Some((msg.id, 0))
    );
    assert_eq!(
        store
            .meta
            .link_for_token(LinkToken::generate().as_str())
            .unwrap(),
        None
    );
    assert_eq!(store.meta.link_for_token("../../etc/passwd").unwrap(), None);
    assert_eq!(store.meta.link_for_token("").unwrap(), None);
    assert!(matches!(
        store.meta.new_link(msg.id, 2),
        Err(StoreError::NoSuchItem(..))
    ));
    assert!(matches!(
        store.meta.new_link(MessageId::random(), 0),
        Err(StoreError::NotFound(_))
    ));
    store.meta.flush().unwrap();
    drop(store);
    for t in [&t0, &t1] {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.as_str())
            .unwrap();
        assert_absent(dir.path(), t.as_str().as_bytes());
        assert_absent(dir.path(), &raw);
        let std_b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        assert_absent(dir.path(), std_b64.trim_end_matches('=').as_bytes());
    }
}

#[test]
fn shred_makes_the_message_unreadable_and_removes_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_local(dir.path(), keys()).unwrap();
    let (msg, dek) = sample(&store, 1000, 3);
    let (other, _) = sample(&store, 1000, 3);
    let token = store.meta.new_link(msg.id, 0).unwrap();
    let mut ev = Event::new(20, EventKind::Downloaded);
    (ev.rcpt, ev.file, ev.detail) = (Some(0), Some(0), Some("198.51.100.9".into()));
    store.meta.add_event(msg.id, &ev).unwrap();
    store.meta.count_download(msg.id, 0, 0).unwrap();
    let blob = msg.files[0].blob;
    let blob_path = dir
        .path()
        .join("blobs")
        .join(&blob.to_string()[..2])
        .join(blob.to_string());
    assert!(blob_path.exists());

    assert!(store.shred(msg.id, 50, EventKind::Shredded).unwrap());
    assert!(!blob_path.exists());
    assert!(matches!(
        store.blobs.open(&blob, &dek),
        Err(StoreError::BlobNotFound(_))
    ));
    assert!(store.meta.get_message(msg.id).unwrap().is_none());
    // The link still names the message (to say 'expired'), which opens nothing.
    assert_eq!(
        store.meta.link_for_token(token.as_str()).unwrap(),
        Some((msg.id, 0))
    );
    assert!(matches!(
        store.meta.count_download(msg.id, 0, 0),
        Err(StoreError::NotFound(_))
    ));
    assert!(store.meta.expired(i64::MAX).unwrap() == vec![other.id]);
    assert!(store.meta.doomed_blobs().unwrap().is_empty());
    // The audit trail stays, stripped of details.
    let events = store.meta.events(msg.id).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].kind, EventKind::Downloaded);
    assert_eq!((events[0].rcpt, events[0].detail.clone()), (Some(0), None));
    assert_eq!(events[1], Event::new(50, EventKind::Shredded));
    // A second shred finds nothing; the other message is untouched.
    assert!(!store.shred(msg.id, 60, EventKind::Shredded).unwrap());
    let (o, odek) = store.meta.get_message(other.id).unwrap().unwrap();
    assert_eq!(read_blob(&store, &o.files[0].blob, &odek), FILE_BODY);
    store.meta.flush().unwrap();
    drop(store);
    assert_absent(dir.path(), b"198.51.100.9");
}

#[test]
fn expiry_index_and_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_local(dir.path(), keys()).unwrap();
    let (a, adek) = sample(&store, 100, 0);
    let (b, _) = sample(&store, 200, 0);
    let (c, _) = sample(&store, -5, 0);
    let mut exp = store.meta.expired(150).unwrap();
    exp.sort();
    let mut want = vec![a.id, c.id];
    want.sort();
    assert_eq!(exp, want);
    assert_eq!(store.meta.expired(-6).unwrap(), vec![]);
    // The sender shortens b's expiry: the index follows.
    let mut b2 = store.meta.get_message(b.id).unwrap().unwrap();
    b2.0.expires = 120;
    store.meta.put_message(&b2.0, &b2.1).unwrap();
    assert_eq!(store.meta.expired(130).unwrap().len(), 3);
    assert_eq!(store.meta.expired(119).unwrap().len(), 2);
    // Replacing a message needs its own data key.
    assert!(matches!(
        store.meta.put_message(&a, &DataKey::generate()),
        Err(StoreError::KeyMismatch(_))
    ));
    store.meta.put_message(&a, &adek).unwrap();

    let mut done = store.shred_expired(150).unwrap();
    done.sort();
    let mut want = vec![a.id, b.id, c.id];
    want.sort();
    assert_eq!(done, want);
    assert!(store.meta.expired(i64::MAX).unwrap().is_empty());
    let evs = store.meta.events(a.id).unwrap();
    assert_eq!(evs.last().unwrap().kind, EventKind::Expired);
    assert!(store.shred_expired(1000).unwrap().is_empty());
}

#[test]
fn download_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_local(dir.path(), keys()).unwrap();
    let (m, _) = sample(&store, 1000, 2);
    let ok = |n| Download::Allowed { remaining: Some(n) };
    assert_eq!(store.meta.count_download(m.id, 0, 0).unwrap(), ok(1));
    assert_eq!(store.meta.count_download(m.id, 0, 0).unwrap(), ok(0));
    assert_eq!(
        store.meta.count_download(m.id, 0, 0).unwrap(),
        Download::Exhausted
    );
    assert_eq!(
        store.meta.count_download(m.id, 0, 0).unwrap(),
        Download::Exhausted
    );
    // Per recipient.
    assert_eq!(store.meta.count_download(m.id, 1, 0).unwrap(), ok(1));
    assert!(matches!(
        store.meta.count_download(m.id, 2, 0),
        Err(StoreError::NoSuchItem(..))
    ));
    assert!(matches!(
        store.meta.count_download(m.id, 0, 1),
        Err(StoreError::NoSuchItem(..))
    ));

    let (u, _) = sample(&store, 1000, 0);
    for _ in 0..20 {
        assert_eq!(
            store.meta.count_download(u.id, 0, 0).unwrap(),
            Download::Allowed { remaining: None }
        );
    }
}

#[test]
fn concurrent_downloads_never_exceed_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_local(dir.path(), keys()).unwrap();
    let (m, _) = sample(&store, 1000, 7);
    let allowed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..10 {
                    if let Download::Allowed { .. } = store.meta.count_download(m.id, 0, 0).unwrap()
                    {
                        allowed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    assert_eq!(allowed.into_inner(), 7);
}

#[test]
fn a_new_message_is_created_with_its_links_and_first_event_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_local(dir.path(), keys()).unwrap();
    let (template, _) = sample(&store, 1000, 0);
    let msg = Message {
        id: MessageId::random(),
        ..template.clone()
    };
    let dek = DataKey::generate();
    let links = store
        .meta
        .create_message(&msg, &dek, &Event::new(20, EventKind::Stored))
        .unwrap();
    assert_eq!(links.len(), msg.recipients.len());
    assert_ne!(links[0], links[1]);
    for (r, t) in links.iter().enumerate() {
        assert_eq!(
            store.meta.link_for_token(t.as_str()).unwrap(),
            Some((msg.id, r as u32))
        );
    }
    let (back, back_dek) = store.meta.get_message(msg.id).unwrap().unwrap();
    assert_eq!(back, msg);
    assert!(back_dek.same_as(&dek));
    let kinds: Vec<EventKind> = store
        .meta
        .events(msg.id)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::Stored]);
    assert_eq!(store.meta.expired(1000).unwrap().len(), 2);

    // The id is taken: refused, and nothing of the second attempt is there.
    let again = store.meta.create_message(
        &template,
        &DataKey::generate(),
        &Event::new(30, EventKind::Stored),
    );
    assert!(matches!(again, Err(StoreError::Exists(id)) if id == template.id));
    assert!(store.meta.events(template.id).unwrap().is_empty());
    assert!(store.meta.get_message(template.id).unwrap().is_some());

    // Shredding removes what it made, links included.
    assert!(store.shred(msg.id, 40, EventKind::Shredded).unwrap());
    assert!(store.meta.get_message(msg.id).unwrap().is_none());
}

#[test]
fn blob_files_no_message_names_are_swept_once_old_enough() {
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_local(dir.path(), keys()).unwrap();
    let (msg, dek) = sample(&store, 1000, 0);
    let named = msg.files[0].blob;
    let stray = |age: u64| {
        let info = store
            .blobs
            .put(&DataKey::generate(), &mut &b"left by a crash"[..])
            .unwrap();
        let path = blob_path(dir.path(), &info.id);
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(age))
            .unwrap();
        info.id
    };
    let (old, young) = (stray(7200), stray(60));
    // Also old, and named: kept.
    let f = std::fs::File::options()
        .write(true)
        .open(blob_path(dir.path(), &named))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    // Not the store's: left alone.
    let foreign = dir.path().join("blobs/ab/notes.txt");
    std::fs::write(&foreign, b"x").unwrap();

    assert_eq!(store.sweep_unnamed(Duration::from_secs(3600)).unwrap(), 1);
    assert!(!store.blobs.exists(&old).unwrap());
    assert!(
        store.blobs.exists(&young).unwrap(),
        "younger than the grace"
    );
    assert!(foreign.exists());
    let mut back = Vec::new();
    store
        .blobs
        .open(&named, &dek)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, FILE_BODY);
    assert_eq!(
        store.sweep_unnamed(Duration::ZERO).unwrap(),
        1,
        "the young one"
    );
    assert!(store.blobs.exists(&named).unwrap());

    // A shredded message's blobs are no longer named: gone with the shredding, and a file
    // that escaped it would go with the next sweep.
    assert!(store.shred(msg.id, 50, EventKind::Shredded).unwrap());
    assert!(store.meta.named_blobs().unwrap().is_empty());
}

fn blob_path(data_dir: &Path, id: &BlobId) -> std::path::PathBuf {
    let hex = id.to_string();
    data_dir.join("blobs").join(&hex[..2]).join(hex)
}
