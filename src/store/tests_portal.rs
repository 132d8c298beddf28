//! Portal state: atomic updates, expiry and sweeping, survival across a reopen, values sealed
//! and bound to their key.

use super::tests_meta::{assert_absent, keys};
use super::*;

fn open_with(dir: &std::path::Path, keys: &crate::seal::SharedKeys) -> SledMeta {
    SledMeta::open(dir, keys.clone()).unwrap()
}

fn open(dir: &std::path::Path) -> SledMeta {
    open_with(dir, &keys())
}

fn put(m: &SledMeta, kind: StateKind, key: &[u8], value: &[u8], expires: i64) {
    m.state_update(kind, key, 0, &mut |_| Some((value.to_vec(), expires)))
        .unwrap();
}

#[test]
fn records_expire_survive_a_reopen_and_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys();
    {
        let m = open_with(dir.path(), &k);
        put(&m, StateKind::Session, b"a", b"sessie-geheim-1", 100);
        put(&m, StateKind::Link, b"a", b"link", 200);
        assert_eq!(
            m.state_get(StateKind::Session, b"a", 50)
                .unwrap()
                .as_deref(),
            Some(&b"sessie-geheim-1"[..])
        );
        assert_eq!(
            m.state_get(StateKind::Session, b"a", 100).unwrap(),
            None,
            "expired"
        );
        assert_eq!(
            m.state_get(StateKind::Client, b"a", 0).unwrap(),
            None,
            "own key space"
        );
        m.flush().unwrap();
    }
    let m = open_with(dir.path(), &k);
    assert!(
        m.state_get(StateKind::Link, b"a", 150).unwrap().is_some(),
        "survives"
    );
    // An expired record reads as absent to an update too.
    let seen = m
        .state_update(StateKind::Session, b"a", 150, &mut |old| {
            assert!(old.is_none());
            None
        })
        .unwrap();
    assert!(seen.is_none());
    put(&m, StateKind::Client, b"c", b"x", 300);
    assert_eq!(
        m.state_sweep(250).unwrap(),
        1,
        "the link record went, the client stays"
    );
    assert!(m.state_get(StateKind::Client, b"c", 250).unwrap().is_some());
    m.state_remove(StateKind::Client, b"c").unwrap();
    assert!(m.state_get(StateKind::Client, b"c", 0).unwrap().is_none());
    m.flush().unwrap();
    assert_absent(dir.path(), b"sessie-geheim");
}

#[test]
fn concurrent_updates_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let m = std::sync::Arc::new(open(dir.path()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    m.state_update(StateKind::Link, b"n", 0, &mut |old| {
                        let n = old.map_or(0, |v| u32::from_be_bytes(v.try_into().unwrap()));
                        Some(((n + 1).to_be_bytes().to_vec(), i64::MAX))
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let v = m.state_get(StateKind::Link, b"n", 0).unwrap().unwrap();
    assert_eq!(u32::from_be_bytes(v.try_into().unwrap()), 400);
}

#[test]
fn a_value_moved_to_another_key_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let m = open(dir.path());
    put(&m, StateKind::Session, b"mine", b"v", i64::MAX);
    let sealed = m
        .portal
        .get([&[1u8][..], b"mine"].concat())
        .unwrap()
        .unwrap();
    m.portal
        .insert([&[1u8][..], b"yours"].concat(), sealed)
        .unwrap();
    assert!(m.state_get(StateKind::Session, b"yours", 0).is_err());
    assert_eq!(
        m.state_sweep(0).unwrap(),
        1,
        "an unreadable record is swept"
    );
    assert!(
        m.state_get(StateKind::Session, b"mine", 0)
            .unwrap()
            .is_some()
    );
}
