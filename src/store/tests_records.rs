//! Changes to stored message records: checksums that arrive after the record, and changes in
//! place from several writers at once.

use super::tests_meta::{keys, sample};
use super::*;
use std::sync::Arc;

/// Checksums stored after the record: only where one is missing, kept by a writer that read the
/// record before, and the message listed as unsummed until all are in (or it is shredded).
#[test]
fn checksums_stored_later_are_kept_and_listed_until_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_local(dir.path(), keys()).unwrap();
    let (template, _) = sample(&store, 1000, 0);
    let mut msg = Message {
        id: MessageId::random(),
        ..template.clone()
    };
    let second = FileRecord {
        name: "tweede.pdf".into(),
        blob: BlobId::random(),
        ..msg.files[0].clone()
    };
    msg.files.push(second);
    let known = msg.files[0].sha256;
    msg.files[0].sha256 = None;
    msg.files[1].sha256 = None;
    let dek = DataKey::generate();
    store
        .meta
        .create_message(&msg, &dek, &Event::new(20, EventKind::Stored))
        .unwrap();
    assert_eq!(store.meta.unsummed().unwrap(), [msg.id]);

    // One of two: still listed. A second value for the same file does not replace the first.
    assert!(
        store
            .meta
            .set_checksums(msg.id, &[(0, known.unwrap())])
            .unwrap()
    );
    assert!(store.meta.set_checksums(msg.id, &[(0, [7; 32])]).unwrap());
    assert_eq!(store.meta.unsummed().unwrap(), [msg.id]);
    // A change in place made after (a new password) keeps the stored sum.
    store
        .meta
        .update_message(msg.id, &mut |m| {
            m.recipients[0].password_hash = Some("$argon2id$x".into())
        })
        .unwrap();
    let (back, _) = store.meta.get_message(msg.id).unwrap().unwrap();
    assert_eq!(back.files[0].sha256, known);
    assert_eq!(
        back.recipients[0].password_hash.as_deref(),
        Some("$argon2id$x")
    );
    // Out-of-range indexes are ignored; the last sum completes the message.
    assert!(
        store
            .meta
            .set_checksums(msg.id, &[(9, [1; 32]), (1, [2; 32])])
            .unwrap()
    );
    let (back, _) = store.meta.get_message(msg.id).unwrap().unwrap();
    assert_eq!(back.files[1].sha256, Some([2; 32]));
    assert!(store.meta.unsummed().unwrap().is_empty());

    // Shredding ends a listing; so does a job that finds its message gone.
    let (other, _) = sample(&store, 1000, 0);
    let mut unsummed = Message {
        id: MessageId::random(),
        ..other
    };
    unsummed.files[0].sha256 = None;
    store
        .meta
        .create_message(
            &unsummed,
            &DataKey::generate(),
            &Event::new(20, EventKind::Stored),
        )
        .unwrap();
    assert_eq!(store.meta.unsummed().unwrap(), [unsummed.id]);
    assert!(store.shred(unsummed.id, 30, EventKind::Shredded).unwrap());
    assert!(store.meta.unsummed().unwrap().is_empty());
    assert!(
        !store
            .meta
            .set_checksums(unsummed.id, &[(0, [3; 32])])
            .unwrap()
    );
}

#[test]
fn concurrent_changes_in_place_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open_local(dir.path(), keys()).unwrap());
    let (msg, _) = sample(&store, 1000, 0);
    // Two recipients ask for a password at the same moment, again and again.
    let writers: Vec<_> = (0..2usize)
        .map(|r| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..200 {
                    let done = store
                        .meta
                        .update_message(msg.id, &mut |m| {
                            m.recipients[r].password_hash = Some(format!("hash-{r}-{n}"));
                        })
                        .unwrap()
                        .unwrap();
                    assert_eq!(
                        done.recipients[r].password_hash.as_deref(),
                        Some(format!("hash-{r}-{n}").as_str())
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let (back, _) = store.meta.get_message(msg.id).unwrap().unwrap();
    let hashes: Vec<_> = back
        .recipients
        .iter()
        .map(|r| r.password_hash.clone())
        .collect();
    assert_eq!(
        hashes,
        [
            Some("hash-0-199".to_string()),
            Some("hash-1-199".to_string())
        ]
    );
    // What is indexed does not change in place; a message that is gone is not made again.
    let refused =
        |r: Result<Option<Message>>| matches!(r, Err(StoreError::Indexed(id)) if id == msg.id);
    assert!(refused(
        store.meta.update_message(msg.id, &mut |m| m.expires += 1)
    ));
    assert!(refused(
        store.meta.update_message(msg.id, &mut |m| m.files.clear())
    ));
    assert!(store.shred(msg.id, 30, EventKind::Shredded).unwrap());
    assert!(
        store
            .meta
            .update_message(msg.id, &mut |m| m.blocked = true)
            .unwrap()
            .is_none()
    );
    assert!(store.meta.get_message(msg.id).unwrap().is_none());
}

#[test]
fn display_names_are_cleaned_and_older_records_read() {
    use crate::store::clean_display_name as clean;
    assert_eq!(clean("  Jan\tde\r\n Vries "), Some("Jan de Vries".into()));
    assert_eq!(clean("Jan\u{0}\u{202e}Evil"), Some("Jan Evil".into()));
    assert_eq!(clean(" \u{7} "), None);
    assert_eq!(clean(&"x".repeat(500)).unwrap().chars().count(), 80);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_local(dir.path(), keys()).unwrap();
    let (mut msg, _) = sample(&store, 1000, 0);
    let mut json = serde_json::to_value(&msg).unwrap();
    json.as_object_mut().unwrap().remove("sender_name");
    let old: Message = serde_json::from_value(json).unwrap();
    assert_eq!(old.sender_name, None);
    assert_eq!(old.sender_shown(), old.sender);
    msg.sender_name = Some("Jan de Vries".into());
    assert_eq!(msg.sender_shown(), format!("Jan de Vries ({})", msg.sender));
}
