//! Protection around the edges, end to end: DKIM checked by an independent verifier, expiry
//! shredding, SMS without a phone number, sealing failures that defer, and key rotation.

mod common;

use base64::Engine;
use common::protect::*;
use common::*;
use std::path::PathBuf;
use std::time::Duration;

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
    let (id, _) = store
        .meta
        .link_for_token(&token)
        .unwrap()
        .expect("the link says 'expired'");
    assert!(
        store.meta.get_message(id).unwrap().is_none(),
        "the content is gone"
    );
    assert!(
        store
            .meta
            .events(id)
            .unwrap()
            .iter()
            .any(|e| e.kind == sluis::store::EventKind::Expired)
    );
    let blobs: Vec<PathBuf> = all_files(&sluis.data_dir.join("blobs"))
        .into_iter()
        .filter(|p| !p.starts_with(sluis.data_dir.join("blobs/tmp")))
        .collect();
    assert!(blobs.is_empty(), "blobs removed: {blobs:?}");
}

#[test]
fn sms_without_a_phone_number_bounces_that_recipient_only() {
    sms_without_a_phone_number("never");
}

#[test]
fn sms_without_a_phone_number_bounces_that_recipient_only_before_the_reply() {
    sms_without_a_phone_number("always");
}

fn sms_without_a_phone_number(mode: &str) {
    let cap = Capture::start();
    let sluis = start_examining(&cap, mode);
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
    when_sealing_fails("never");
}

/// Protection before the reply fails too: the message is queued as received (sealed) and the
/// relay keeps it back until protection works.
#[test]
fn when_sealing_fails_before_the_reply_the_message_waits_and_nothing_leaves() {
    when_sealing_fails("always");
}

/// Sends a `[secure files]` mail with one attachment from arts@org.test to p@extern.test.
fn send_secure_files(sluis: &Sluis, u: &str, file: Vec<u8>) {
    smtplib_send(
        sluis,
        "arts@org.test",
        &["p@extern.test"],
        &mail(
            &format!("To: p@extern.test\r\nSubject: [secure files] {u}\r\n"),
            "Tekst",
            &[("a.bin", file)],
        ),
    );
}

/// Sends a `[secure files]` mail with one attachment and waits until the relay defers it
/// because protection failed.
fn send_and_see_it_deferred(sluis: &Sluis, u: &str, file: Vec<u8>) {
    send_secure_files(sluis, u, file);
    poll(ARRIVAL, "the message to be deferred", || {
        output_text(&sluis.cli(&["queue", "list"]))
            .contains("cannot protect message")
            .then_some(())
    });
}

fn when_sealing_fails(mode: &str) {
    let cap = Capture::start();
    let sluis = start_examining(&cap, mode);
    // The blob store cannot create files (a file where its temp folder should be; this also
    // holds for root).
    let tmp = sluis.data_dir.join("blobs/tmp");
    std::fs::remove_dir_all(&tmp).unwrap();
    std::fs::write(&tmp, b"in the way").unwrap();
    let u = unique("fail");
    send_and_see_it_deferred(&sluis, &u, b"inhoud".to_vec());
    std::thread::sleep(Duration::from_secs(2));
    assert!(cap.messages().is_empty(), "nothing left unprotected");
    std::fs::remove_file(&tmp).unwrap();
    std::fs::create_dir(&tmp).unwrap();
    assert!(sluis.cli(&["queue", "retry"]).status.success());
    let m = cap.wait_for_containing(&u, ARRIVAL);
    assert!(!m.text().contains("aW5ob3Vk"), "attachment removed");
    link_token(&m);
}

/// The blobs are made durable while the metadata is written: when that fails (no fan-out
/// folder can take a blob), the half-stored message is shredded again, nothing leaves, and
/// the relay protects the message anew once the store works.
#[test]
fn when_a_blob_cannot_be_made_durable_the_stored_half_is_removed_and_nothing_leaves() {
    let cap = Capture::start();
    let mut sluis = start_examining(&cap, "always");
    let blobs = sluis.data_dir.join("blobs");
    let fanout: Vec<PathBuf> = (0..=255u8)
        .map(|b| blobs.join(format!("{b:02x}")))
        .collect();
    for d in &fanout {
        std::fs::remove_dir(d).unwrap();
        std::fs::write(d, b"in the way").unwrap();
    }
    let u = unique("commit");
    send_and_see_it_deferred(&sluis, &u, noise(300_000, 9));
    assert!(cap.messages().is_empty(), "nothing left unprotected");
    let tmp: Vec<PathBuf> = all_files(&blobs.join("tmp"))
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    assert!(
        tmp.is_empty(),
        "unfinished blobs removed (spare files are empty): {tmp:?}"
    );
    for d in &fanout {
        std::fs::remove_file(d).unwrap();
        std::fs::create_dir(d).unwrap();
    }
    assert!(sluis.cli(&["queue", "retry"]).status.success());
    let token = link_token(&cap.wait_for_containing(&u, ARRIVAL));
    // The copies queued while the blob was being written were taken out again.
    poll(ARRIVAL, "the queue to empty", || {
        output_text(&sluis.cli(&["queue", "list"]))
            .lines()
            .all(|l| !l.contains("p@extern.test"))
            .then_some(())
    });
    assert_eq!(cap.messages().len(), 1, "one copy went out");
    assert!(sluis.log().contains("copies withdrawn"), "{}", sluis.log());
    sluis.terminate(Duration::from_secs(20));
    let store = open_store(&sluis.data_dir);
    let live = store.meta.expired(i64::MAX).unwrap();
    let (mid, _) = store.meta.link_for_token(&token).unwrap().unwrap();
    assert_eq!(live, vec![mid], "only the message that went out is stored");
    let (msg, dek) = store.meta.get_message(mid).unwrap().unwrap();
    assert_eq!(
        read_blob(&store, &msg.files[0].blob, &dek),
        noise(300_000, 9)
    );
}

/// Copies are queued while their blobs are still being written, so a crash can leave a copy
/// whose content never became durable (its sender never heard 250). The relay checks every
/// copy's stored message before sending it: one with a blob missing, or whose message was
/// removed while it waited, is dropped; the others go.
#[test]
fn a_queued_copy_whose_stored_content_is_gone_is_dropped_not_sent() {
    let cap = Capture::start_deferring();
    let mut sluis = start_with(&cap, |c| {
        c.set("policy", "examine_before_reply", "\"always\"")
            .relay("retry_schedule", "[\"1s\"]")
    });
    let tags: Vec<String> = ["blobless", "removed", "intact"]
        .iter()
        .map(|t| unique(t))
        .collect();
    for (i, u) in tags.iter().enumerate() {
        send_secure_files(&sluis, u, noise(20_000, i as u64));
    }
    poll(ARRIVAL, "three copies deferred", || {
        let n = cap.rcpt_log().iter().filter(|(c, _)| *c == 451).count();
        (n >= 3).then_some(())
    });
    sluis.terminate(Duration::from_secs(20));

    let store = open_store(&sluis.data_dir);
    let mut ids = std::collections::HashMap::new();
    for mid in store.meta.expired(i64::MAX).unwrap() {
        let (msg, _) = store.meta.get_message(mid).unwrap().unwrap();
        let tag = tags
            .iter()
            .position(|t| msg.subject.contains(t.as_str()))
            .unwrap();
        ids.insert(tag, msg);
    }
    assert_eq!(ids.len(), 3, "three messages stored");
    let blob = ids[&0].files[0].blob.to_string();
    let file = all_files(&sluis.data_dir.join("blobs"))
        .into_iter()
        .find(|p| p.file_name().unwrap().to_str() == Some(blob.as_str()))
        .expect("the blob file");
    std::fs::remove_file(file).unwrap();
    assert!(
        store
            .shred(ids[&1].id, 1, sluis::store::EventKind::Shredded)
            .unwrap()
    );
    drop(store);

    cap.set_defer_all(false);
    sluis.spawn();
    let m = cap.wait_for_containing(&tags[2], ARRIVAL);
    link_token(&m);
    poll(ARRIVAL, "the queue to empty", || {
        output_text(&sluis.cli(&["queue", "list"]))
            .lines()
            .all(|l| !l.contains("p@extern.test"))
            .then_some(())
    });
    let arrived: Vec<String> = cap.messages().iter().map(|m| m.text()).collect();
    for t in &tags[..2] {
        assert!(
            !arrived.iter().any(|m| m.contains(t.as_str())),
            "{t} not sent"
        );
    }
    assert_eq!(arrived.len(), 1);
    let log = sluis.log();
    assert!(log.contains("is missing"), "{log}");
    assert!(log.contains("stored message is not there"), "{log}");
}

/// A blob file that no stored message names (a crash between the blob and its record) is
/// removed at start-up once it is an hour old; the blobs of stored messages stay.
#[test]
fn blob_files_no_message_names_are_removed_at_start_up() {
    let cap = Capture::start();
    let mut sluis = start(&cap);
    let u = unique("named");
    send_secure_files(&sluis, &u, noise(5_000, 3));
    link_token(&cap.wait_for_containing(&u, ARRIVAL));
    sluis.terminate(Duration::from_secs(20));
    let blobs = sluis.data_dir.join("blobs");
    let named = all_files(&blobs)
        .into_iter()
        .find(|p| !p.starts_with(blobs.join("tmp")))
        .expect("the stored blob");
    let orphan = blobs.join("7f").join("7f0123456789abcdef0123456789abcd");
    std::fs::write(&orphan, noise(3_000, 4)).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    for p in [&orphan, &named] {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(two_hours_ago).unwrap();
    }
    sluis.spawn();
    poll(ARRIVAL, "the unnamed blob to go", || {
        (!orphan.exists()).then_some(())
    });
    assert!(named.exists(), "a stored message's blob stays");
    poll(ARRIVAL, "the sweep in the log", || {
        sluis.log().contains("removed blob files").then_some(())
    });
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
