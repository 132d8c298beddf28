//! Sealing, storage and rewriting end to end: real clients (Python smtplib, swaks) send tagged
//! and policy-forced mail through the gateway to a capturing next hop; what arrives carries
//! links instead of content, and the store (opened with the real library after sluis stops)
//! unseals to the original bytes.

mod common;

use base64::Engine;
use common::protect::*;
use common::*;
use sha2::{Digest, Sha256};
use sluis::store::{Download, Protection};
use std::io::Read;
use std::time::Duration;

/// Protected before the 250 (sluis::admit): the original is never queued.
#[test]
fn protected_before_the_reply_leaves_as_links_and_unseals_to_the_original() {
    let (sluis, _cap) = tagged_and_forced_mail_leaves_as_links("always");
    let log = sluis.log();
    // The first mail, over 4 MiB with its 3 MiB file, is queued and protected by the relay.
    assert_eq!(
        log.matches("accepted; protected copies queued").count(),
        3,
        "{log}"
    );
    assert_eq!(
        log.matches("sluis::smtp::session: queued").count(),
        1,
        "{log}"
    );
}

/// Queued as received and protected by the relay (for messages over 4 MiB, or when
/// protection has to wait).
#[test]
fn protected_from_the_queue_leaves_as_links_and_unseals_to_the_original() {
    let (sluis, _cap) = tagged_and_forced_mail_leaves_as_links("never");
    assert!(!sluis.log().contains("accepted; protected copies queued"));
}

fn tagged_and_forced_mail_leaves_as_links(mode: &str) -> (Sluis, Capture) {
    let cap = Capture::start();
    let mut sluis = start_examining(&cap, mode);
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
    (sluis, cap)
}

/// After a 250 the copies of a message protected before the reply are durable: kill -9 right
/// after each acknowledgement loses none of them, and every link opens its sealed file.
#[test]
fn copies_protected_before_the_reply_survive_sigkill() {
    let cap = Capture::start();
    let mut sluis = start_examining(&cap, "always");
    let u = unique("kill");
    let mut sent = Vec::new();
    for n in 0..6u64 {
        let file = noise(30_000 + n as usize * 1000, n + 7);
        let msg = mail(
            &format!("To: p@extern.test\r\nSubject: [secure files] {u} nr{n}\r\n"),
            "Tekst",
            &[("a.bin", file.clone())],
        );
        let mut s = sluis.session();
        s.send_mail("arts@org.test", &["p@extern.test", "q@extern.test"], &msg);
        // No QUIT, no pause: the process dies the moment the client has its 250.
        sluis.crash_restart();
        sent.push((n, file));
    }
    poll(ARRIVAL, "two copies of every message", || {
        let got = cap.messages();
        sent.iter()
            .all(|(n, _)| {
                let t: std::collections::HashSet<String> = got
                    .iter()
                    .filter(|m| m.text().contains(&format!("{u} nr{n}")))
                    .map(|m| m.rcpt_tos.join(","))
                    .collect();
                t.len() == 2
            })
            .then_some(())
    });
    let all = cap.messages();
    sluis.terminate(Duration::from_secs(20));
    let store = open_store(&sluis.data_dir);
    for (n, file) in &sent {
        let copies: Vec<&Captured> = all
            .iter()
            .filter(|m| m.text().contains(&format!("{u} nr{n}")))
            .collect();
        let mut rcpts: Vec<String> = copies.iter().map(|m| m.rcpt_tos.join(",")).collect();
        rcpts.sort();
        // At least once: a copy the next hop took just before the kill may come again.
        rcpts.dedup();
        assert_eq!(rcpts, ["p@extern.test", "q@extern.test"], "message {n}");
        for m in copies {
            let (mid, _) = store.meta.link_for_token(&link_token(m)).unwrap().unwrap();
            let (msg, dek) = store.meta.get_message(mid).unwrap().unwrap();
            let got = read_blob(&store, &msg.files[0].blob, &dek);
            assert_eq!(Sha256::digest(&got), Sha256::digest(file), "message {n}");
        }
    }
}

/// A message that needs no protection, examined before the reply, leaves byte-identical, and
/// the relay takes the decision from the queue instead of examining it a second time.
#[test]
fn decided_before_the_reply_is_not_examined_again() {
    let cap = Capture::start();
    let sluis = start_examining(&cap, "always");
    let u = unique("plain");
    let msg = format!(
        "From: arts@org.test\r\nTo: p@extern.test\r\nSubject: Afspraak {u}\r\n\r\nTot dinsdag.\r\n"
    );
    let mut s = sluis.session();
    s.send_mail("arts@org.test", &["p@extern.test"], msg.as_bytes());
    let m = cap.wait_for_containing(&u, ARRIVAL);
    assert_relayed_exactly(&m.data, msg.as_bytes());
    let log = sluis.log();
    assert_eq!(log.matches("policy decision").count(), 1, "{log}");
    assert!(log.contains("verdict=Deliver"), "{log}");
}

/// CHUNKING: a mail sent in BDAT chunks is protected before the last chunk's reply too.
#[test]
fn bdat_mail_is_protected_before_the_reply() {
    let cap = Capture::start();
    let mut sluis = start_examining(&cap, "always");
    let u = unique("bdat");
    let file = noise(50_000, 3);
    let msg = mail(
        &format!("To: p@extern.test\r\nSubject: [secure files] {u}\r\n"),
        "Tekst",
        &[("a.bin", file.clone())],
    );
    let mut s = sluis.session();
    s.expect("MAIL FROM:<arts@org.test>", "250 2.1.0");
    s.expect("RCPT TO:<p@extern.test>", "250 2.1.5");
    let (a, b) = msg.split_at(msg.len() / 2);
    let mut wire = format!("BDAT {}\r\n", a.len()).into_bytes();
    wire.extend_from_slice(a);
    s.send(&wire);
    s.expect_reply("250 2.0.0");
    let mut wire = format!("BDAT {} LAST\r\n", b.len()).into_bytes();
    wire.extend_from_slice(b);
    s.send(&wire);
    s.expect_reply("250 2.0.0 OK queued as");
    let m = cap.wait_for_containing(&u, ARRIVAL);
    assert!(sluis.log().contains("accepted; protected copies queued"));
    let token = link_token(&m);
    let sealed_b64 = base64::engine::general_purpose::STANDARD.encode(&file[..300]);
    assert!(
        !m.text().contains(&sealed_b64[..200]),
        "attachment left sluis"
    );
    drop(s);
    sluis.terminate(Duration::from_secs(20));
    let store = open_store(&sluis.data_dir);
    let (mid, _) = store.meta.link_for_token(&token).unwrap().unwrap();
    let (msg, dek) = store.meta.get_message(mid).unwrap().unwrap();
    assert_eq!(read_blob(&store, &msg.files[0].blob, &dek), file);
}

/// `auto`: a lone message is protected before its reply when the sender asked for protection,
/// and queued first otherwise (here: protection forced by the policy); one that ends while
/// another is still arriving is protected before its reply.
#[test]
fn auto_protects_before_the_reply_when_asked_or_while_others_arrive() {
    let cap = Capture::start();
    let sluis = start(&cap);
    let u = unique("auto");
    let tagged = |n: &str| {
        mail(
            &format!("To: p@extern.test\r\nSubject: [secure files] {u} {n}\r\n"),
            "Tekst",
            &[("a.bin", noise(20_000, 5))],
        )
    };
    let forced = |n: &str| {
        mail(
            &format!("To: p@extern.test\r\nSubject: {u} {n}\r\n"),
            "Burgerservicenummer 111222333.",
            &[],
        )
    };
    let protected_early = || {
        sluis
            .log()
            .matches("accepted; protected copies queued")
            .count()
    };
    let mut lone = sluis.session();
    lone.send_mail("arts@org.test", &["p@extern.test"], &forced("forced"));
    link_token(&cap.wait_for_containing(&format!("{u} forced"), ARRIVAL));
    assert!(sluis.log().contains("sluis::smtp::session: queued"));
    assert_eq!(protected_early(), 0, "{}", sluis.log());
    lone.send_mail("arts@org.test", &["p@extern.test"], &tagged("lone"));
    poll(
        ARRIVAL,
        "the tagged lone message protected before its reply",
        || (protected_early() == 1).then_some(()),
    );
    link_token(&cap.wait_for_containing(&format!("{u} lone"), ARRIVAL));

    // A second client is in the middle of its DATA while the first one ends.
    let mut slow = sluis.session();
    slow.expect("MAIL FROM:<arts@org.test>", "250 2.1.0");
    slow.expect("RCPT TO:<q@extern.test>", "250 2.1.5");
    slow.expect("DATA", "354");
    let slow_mail = dot_stuff(&tagged("slow"));
    let (head, tail) = slow_mail.split_at(slow_mail.len() / 2);
    slow.send(head);
    let mut busy = sluis.session();
    busy.send_mail("arts@org.test", &["p@extern.test"], &forced("busy"));
    poll(
        ARRIVAL,
        "the message ending mid-DATA of another protected first",
        || (protected_early() == 2).then_some(()),
    );
    slow.send(tail);
    slow.expect_reply("250 2.0.0 OK queued as");
    for n in ["busy", "slow"] {
        link_token(&cap.wait_for_containing(&format!("{u} {n}"), ARRIVAL));
    }
}
