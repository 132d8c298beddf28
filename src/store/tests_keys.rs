//! Metadata under tampering, wrong master keys and master-key rotation.

use super::tests_meta::{FILE_BODY, keys, read_blob, sample};
use super::*;
use crate::seal::Keyring;
use std::path::Path;
use std::sync::Arc;

#[test]
fn tampered_records_and_wrong_keys_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    let store = Store::open_local(dir.path(), k.clone()).unwrap();
    let (m, _) = sample(&store, 1000, 0);
    let token = store.meta.new_link(m.id, 0).unwrap();
    drop(store);

    // Another master key: nothing opens.
    let store = Store::open_local(dir.path(), keys()).unwrap();
    assert!(matches!(
        store.meta.get_message(m.id),
        Err(StoreError::KeyTampered(_))
    ));
    assert!(store.meta.link_for_token(token.as_str()).is_err());
    drop(store);

    let flip = |tree: &str, pos: usize| {
        let db = super::sled_meta::open_db(&dir.path().join("meta")).unwrap();
        let t = db.open_tree(tree).unwrap();
        let mut v = t.get(m.id.as_bytes()).unwrap().unwrap().to_vec();
        v[pos] ^= 0x10;
        t.insert(m.id.as_bytes(), v).unwrap();
        db.flush().unwrap();
    };
    for (tree, pos) in [
        ("wkey", 2),
        ("wkey", 10),
        ("wkey", 40),
        ("msg", 20),
        ("msg", 3),
    ] {
        flip(tree, pos);
        let store = Store::open_local(dir.path(), k.clone()).unwrap();
        assert!(store.meta.get_message(m.id).is_err(), "{tree} at {pos}");
        drop(store);
        flip(tree, pos);
    }
    let store = Store::open_local(dir.path(), k).unwrap();
    assert!(store.meta.get_message(m.id).unwrap().is_some());
}

#[test]
fn rotation_rewraps_and_old_messages_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    let data = dir.path().join("data");
    let mut ring = Keyring::load_or_create(&key_file).unwrap();
    let store =
        Store::open_local(&data, Arc::new(Keyring::load_or_create(&key_file).unwrap())).unwrap();
    let (m1, dek1) = sample(&store, 1000, 3);
    let t1 = store.meta.new_link(m1.id, 0).unwrap();
    store
        .meta
        .add_event(m1.id, &Event::new(11, EventKind::Relayed))
        .unwrap();
    store.meta.count_download(m1.id, 0, 0).unwrap();
    drop(store);

    assert_eq!(ring.rotate(&key_file).unwrap(), 2);
    let store = Store::open_local(&data, Arc::new(ring)).unwrap();
    let (m2, _) = sample(&store, 1000, 0);
    let (got1, got_dek1) = store.meta.get_message(m1.id).unwrap().unwrap();
    assert_eq!(got1, m1);
    assert!(got_dek1.same_as(&dek1));
    assert!(store.meta.get_message(m2.id).unwrap().is_some());
    drop(store);
    let wrapped_ids = |data: &Path| {
        let db = super::sled_meta::open_db(&data.join("meta")).unwrap();
        let t = db.open_tree("wkey").unwrap();
        [m1.id, m2.id].map(|id| {
            WrappedKey::from_bytes(&t.get(id.as_bytes()).unwrap().unwrap())
                .unwrap()
                .key_id
        })
    };
    assert_eq!(wrapped_ids(&data), [1, 2]);

    let store =
        Store::open_local(&data, Arc::new(Keyring::load_or_create(&key_file).unwrap())).unwrap();
    assert_eq!(store.meta.rewrap_all().unwrap(), 1);
    assert_eq!(store.meta.rewrap_all().unwrap(), 0);
    store.meta.flush().unwrap();
    drop(store);
    assert_eq!(wrapped_ids(&data), [2, 2]);

    // Retire key 1: everything still opens with key 2 alone.
    let text = std::fs::read_to_string(&key_file).unwrap();
    let only2: String = text.lines().filter(|l| l.starts_with("2 ")).collect();
    std::fs::write(&key_file, only2 + "\n").unwrap();
    let k2 = Arc::new(Keyring::load_or_create(&key_file).unwrap());
    assert_eq!(k2.ids(), vec![2]);
    let store = Store::open_local(&data, k2).unwrap();
    let (got1, got_dek1) = store.meta.get_message(m1.id).unwrap().unwrap();
    assert_eq!(read_blob(&store, &got1.files[0].blob, &got_dek1), FILE_BODY);
    assert_eq!(
        store.meta.link_for_token(t1.as_str()).unwrap(),
        Some((m1.id, 0))
    );
    assert_eq!(store.meta.events(m1.id).unwrap().len(), 1);
    assert_eq!(
        store.meta.count_download(m1.id, 0, 0).unwrap(),
        Download::Allowed { remaining: Some(1) }
    );
    assert!(store.meta.get_message(m2.id).unwrap().is_some());
}
