//! Real, independent SMTP clients against sluis: swaks (with attachments, with and
//! without STARTTLS) and Python's smtplib. Arrival is checked byte for byte.

mod common;

use base64::Engine;
use common::*;
use std::fs;
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(30);

/// The DATA lines swaks printed (` -> ` plaintext, ` ~> ` TLS), joined with CRLF.
fn swaks_sent_data(transcript: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut in_data = false;
    for line in transcript.lines() {
        if !in_data {
            if line.starts_with("<-  354") || line.starts_with("<~  354") {
                in_data = true;
            }
            continue;
        }
        let Some(l) = line
            .strip_prefix(" -> ")
            .or_else(|| line.strip_prefix(" ~> "))
        else {
            continue;
        };
        if l == "." {
            return out;
        }
        // swaks shows lines as sent, i.e. dot-stuffed
        let l = l
            .strip_prefix('.')
            .filter(|_| l.starts_with(".."))
            .unwrap_or(l);
        out.extend_from_slice(l.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    panic!("no complete DATA section in swaks transcript:\n{transcript}");
}

fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
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

fn unwrapped(data: &[u8]) -> String {
    String::from_utf8_lossy(data).replace(['\r', '\n'], "")
}

fn swaks_with_attachments(tls: bool) {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let work = tempfile::tempdir().unwrap();
    let bin = pseudo_random_bytes(20_000, 7);
    let bin_path = work.path().join("report.bin");
    fs::write(&bin_path, &bin).unwrap();
    let pdf_path = work.path().join("notes.txt");
    fs::write(
        &pdf_path,
        "line one\r\n.line with dot\r\nlaatste regel \u{e9}\r\n",
    )
    .unwrap();
    let subject = unique("swaks");
    let header = format!("Subject: {subject}");
    let mut args = vec![
        "--from",
        "alice@org.test",
        "--to",
        "bob@dest.test,carol@other.test",
        "--ehlo",
        "swaks.test",
        "--header",
        &header,
        "--attach",
        bin_path.to_str().unwrap(),
        "--attach",
        pdf_path.to_str().unwrap(),
    ];
    if tls {
        args.push("-tls");
    }
    let (ok, out) = swaks(sluis.addr, &args);
    assert!(ok, "swaks failed:\n{out}");
    assert!(out.contains("250 2.0.0 OK queued as"), "{out}");
    let sent = swaks_sent_data(&out);
    assert!(contains(&sent, &subject));
    let got = poll(ARRIVAL, "both recipients", || {
        let m = cap.messages();
        (m.iter().map(|m| m.rcpt_tos.len()).sum::<usize>() >= 2).then_some(m)
    });
    let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["bob@dest.test", "carol@other.test"]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bin);
    for m in &got {
        assert_eq!(m.mail_from, "alice@org.test");
        let received = assert_relayed_exactly(&m.data, &sent);
        assert!(received.contains("from swaks.test"), "{received}");
        let proto = if tls { "with ESMTPS" } else { "with ESMTP " };
        assert!(received.contains(proto), "{proto:?} not in {received}");
        assert!(
            unwrapped(&m.data).contains(&b64),
            "binary attachment not intact"
        );
    }
}

#[test]
fn swaks_attachments_arrive_byte_for_byte() {
    swaks_with_attachments(false);
}

#[test]
fn swaks_starttls_attachments_arrive_byte_for_byte() {
    swaks_with_attachments(true);
}

#[test]
fn swaks_pipelining_and_refused_recipient() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let subject = unique("swakspipe");
    let header = format!("Subject: {subject}");
    let (ok, out) = swaks(
        sluis.addr,
        &[
            "--pipeline",
            "--from",
            "a@org.test",
            "--to",
            "x@dest.test",
            "--header",
            &header,
            "--body",
            "pipelined body",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("250 2.0.0 OK queued as"), "{out}");
    let m = cap.wait_for_containing(&subject, ARRIVAL);
    assert_relayed_exactly(&m.data, &swaks_sent_data(&out));
    // an address trick is refused and swaks reports it
    let (ok, out) = swaks(
        sluis.addr,
        &["--from", "a@org.test", "--to", "u%evil.test@dest.test"],
    );
    assert!(!ok, "swaks should fail: {out}");
    assert!(out.contains("553 5.1.3"), "{out}");
}

fn smtplib_send(tls: bool) {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let work = tempfile::tempdir().unwrap();
    let subject = unique("smtplib");
    let mut msg = message(&subject, "sent by python smtplib");
    msg.extend_from_slice(b".starts with a dot\r\n");
    msg.extend_from_slice("\u{fc}ber 8-bit\r\n".as_bytes());
    let path = work.path().join("msg.eml");
    fs::write(&path, &msg).unwrap();
    let port = sluis.addr.port().to_string();
    let mut args = vec![
        port.as_str(),
        "py@org.test",
        "one@dest.test,u%evil.test@dest.test",
        path.to_str().unwrap(),
    ];
    if tls {
        args.push("--starttls");
    }
    let (ok, out) = python("smtplib_send.py", &args);
    assert!(ok, "smtplib failed: {out}");
    // the percent-hack recipient is refused with 553, the other accepted
    assert!(out.contains("REFUSED"), "{out}");
    assert!(out.contains("553"), "{out}");
    let m = cap.wait_for_containing(&subject, ARRIVAL);
    assert_eq!(m.rcpt_tos, ["one@dest.test"]);
    assert_eq!(m.mail_from, "py@org.test");
    let received = assert_relayed_exactly(&m.data, &msg);
    assert!(received.contains("from smtplib.test"), "{received}");
    if tls {
        assert!(received.contains("with ESMTPS"), "{received}");
    }
}

#[test]
fn python_smtplib_delivers_byte_for_byte() {
    smtplib_send(false);
}

#[test]
fn python_smtplib_starttls_delivers() {
    smtplib_send(true);
}
