//! Relaying: smtp:// next hop (capture server and Postfix smtp-sink), maildir: next
//! hop, direct MX delivery via a local DNS server, retries on 4xx, and DSNs.

mod common;

use common::*;
use std::fs;
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(30);

#[test]
fn maildir_next_hop_one_file_per_recipient() {
    let outbox_dir = tempfile::tempdir().unwrap();
    let outbox = outbox_dir.path().join("outbox");
    let sluis = Sluis::start(Config::new(&format!("maildir:{}", outbox.display())));
    let mut s = sluis.session();
    let tag = unique("maildir");
    let mut msg = message(&tag, "to the maildir");
    msg.extend_from_slice(b".dotted\r\n");
    s.send_mail("sender@org.test", &["a@dest.test", "b@other.test"], &msg);
    s.expect("QUIT", "221 2.0.0");
    let new = outbox.join("new");
    let files = poll(ARRIVAL, "two files in outbox/new", || {
        let f: Vec<_> = fs::read_dir(&new)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        (f.len() >= 2).then_some(f)
    });
    assert_eq!(files.len(), 2, "{files:?}");
    let mut rcpts = Vec::new();
    for f in &files {
        let data = fs::read(f).unwrap();
        let prefix = b"Return-Path: <sender@org.test>\r\nDelivered-To: ";
        assert!(
            data.starts_with(prefix),
            "{}",
            String::from_utf8_lossy(&data[..100])
        );
        let rest = &data[prefix.len()..];
        let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        // the contract writes `Delivered-To: <rcpt>`; Postfix style is without brackets
        let rcpt = String::from_utf8_lossy(&rest[..end]);
        rcpts.push(
            rcpt.trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
        );
        assert_relayed_exactly(&rest[end + 2..], &msg);
    }
    rcpts.sort();
    assert_eq!(rcpts, ["a@dest.test", "b@other.test"]);
    let tmp_left: Vec<_> = fs::read_dir(outbox.join("tmp"))
        .map(|d| d.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    assert!(tmp_left.is_empty(), "files left in tmp/: {tmp_left:?}");
}

#[test]
fn mx_next_hop_uses_dns() {
    let cap = Capture::start();
    let dns = Dns::start(&["mx-test.example"]);
    let sluis = Sluis::start(
        Config::new("mx")
            .relay("dns_servers", &format!("[\"127.0.0.1:{}\"]", dns.port))
            .relay("mx_port", &cap.port.to_string()),
    );
    let mut s = sluis.session();
    let tag = unique("mx");
    let msg = message(&tag, "via mx");
    s.send_mail("sender@org.test", &["user@mx-test.example"], &msg);
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert_eq!(m.rcpt_tos, ["user@mx-test.example"]);
    assert_relayed_exactly(&m.data, &msg);
    let q = dns.queries();
    assert!(q.contains("QUERY mx-test.example 15"), "no MX query: {q}");
}

#[test]
fn smtp_sink_next_hop_receives() {
    let sink = SmtpSink::start();
    let sluis = Sluis::start(Config::new(&sink.next_hop()));
    let mut s = sluis.session();
    let tag = unique("sink");
    s.send_mail(
        "sender@org.test",
        &["x@dest.test"],
        &message(&tag, "for smtp-sink"),
    );
    let dump = poll(ARRIVAL, "smtp-sink dump with the message", || {
        sink.dumps().into_iter().find(|d| contains(d, &tag))
    });
    let text = String::from_utf8_lossy(&dump);
    assert!(text.contains("X-Mail-Args: <sender@org.test>"), "{text}");
    assert!(text.contains("X-Rcpt-Args: <x@dest.test>"), "{text}");
    assert!(unfold(&text).contains("by sluis.test (sluis)"), "{text}");
    assert!(text.contains("for smtp-sink"), "{text}");
}

#[test]
fn temporary_failures_are_retried_then_delivered_once() {
    let cap = Capture::start_deferring();
    let sluis =
        Sluis::start(Config::new(&cap.next_hop()).relay("retry_schedule", "[\"1s\", \"1s\"]"));
    let mut s = sluis.session();
    let tag = unique("retry");
    let msg = message(&tag, "retry me");
    s.send_mail("sender@org.test", &["later@dest.test"], &msg);
    poll(ARRIVAL, "two deferred attempts", || {
        let n = cap
            .rcpt_log()
            .iter()
            .filter(|(c, a)| *c == 451 && a == "later@dest.test")
            .count();
        (n >= 2).then_some(())
    });
    assert!(cap.messages().is_empty());
    cap.set_defer_all(false);
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert_relayed_exactly(&m.data, &msg);
    assert_eq!(cap.messages().len(), 1);
    // no DSN was sent for a temporary failure
    assert!(cap.messages().iter().all(|m| !m.mail_from.is_empty()));
}

fn assert_dsn(dsn: &Captured, sender: &str, failed_rcpt: &str, original_tag: &str) {
    assert_eq!(dsn.mail_from, "", "DSN must be sent with MAIL FROM:<>");
    assert_eq!(dsn.rcpt_tos, [sender.to_string()]);
    let text = dsn.text();
    let lower = text.to_ascii_lowercase().replace('"', "");
    assert!(lower.contains("multipart/report"), "{text}");
    assert!(lower.contains("report-type=delivery-status"), "{text}");
    assert!(lower.contains("message/delivery-status"), "{text}");
    assert!(lower.contains("action: failed"), "{text}");
    assert!(lower.contains(&failed_rcpt.to_ascii_lowercase()), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("Subject: Onbestelbaar bericht / Undelivered Mail")),
        "{text}"
    );
    assert!(
        text.contains(original_tag),
        "DSN should identify the original message ({original_tag}): {text}"
    );
}

#[test]
fn permanent_failure_sends_dsn_to_sender() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    let tag = unique("bounce");
    s.send_mail(
        "sender@org.test",
        &["ok@dest.test", "reject-me@dest.test"],
        &message(&tag, "half fails"),
    );
    let dsn = poll(ARRIVAL, "a DSN", || {
        cap.messages().into_iter().find(|m| m.mail_from.is_empty())
    });
    assert_dsn(&dsn, "sender@org.test", "reject-me@dest.test", &tag);
    assert!(dsn.text().to_ascii_lowercase().contains("status: 5."));
    let ok = poll(ARRIVAL, "delivery to ok@", || {
        cap.messages()
            .into_iter()
            .find(|m| m.rcpt_tos.contains(&"ok@dest.test".to_string()))
    });
    assert_eq!(ok.rcpt_tos, ["ok@dest.test"]);
    // the rejected recipient is not retried
    let attempts = cap
        .rcpt_log()
        .iter()
        .filter(|(_, a)| a == "reject-me@dest.test")
        .count();
    assert_eq!(attempts, 1);
}

#[test]
fn queue_lifetime_expiry_sends_dsn() {
    let cap = Capture::start();
    let sluis = Sluis::start(
        Config::new(&cap.next_hop())
            .relay("retry_schedule", "[\"1s\"]")
            .relay("max_queue_lifetime", "\"3s\""),
    );
    let mut s = sluis.session();
    let tag = unique("expire");
    s.send_mail(
        "sender@org.test",
        &["defer-forever@dest.test"],
        &message(&tag, "never accepted"),
    );
    let dsn = poll(Duration::from_secs(60), "a DSN after expiry", || {
        cap.messages().into_iter().find(|m| m.mail_from.is_empty())
    });
    assert_dsn(&dsn, "sender@org.test", "defer-forever@dest.test", &tag);
    let attempts = cap
        .rcpt_log()
        .iter()
        .filter(|(c, a)| *c == 451 && a == "defer-forever@dest.test")
        .count();
    assert!(attempts >= 1, "no delivery attempt before expiry");
    assert_eq!(cap.messages().len(), 1, "exactly one message (the DSN)");
}

#[test]
fn no_dsn_for_null_sender() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    let null_tag = unique("nullsender");
    s.expect("MAIL FROM:<>", "250 2.1.0");
    s.expect("RCPT TO:<reject-a@dest.test>", "250 2.1.5");
    s.expect("RCPT TO:<ok@dest.test>", "250 2.1.5");
    let r = s.data(&message(&null_tag, "a bounce bouncing"));
    assert!(r.starts("250 2.0.0"), "{r:?}");
    cap.wait_for_containing(&null_tag, ARRIVAL);
    poll(ARRIVAL, "the rejection of reject-a@", || {
        cap.rcpt_log()
            .iter()
            .any(|(c, a)| *c == 550 && a == "reject-a@dest.test")
            .then_some(())
    });
    // a normal bounce afterwards: its DSN must be the only DSN
    let tag = unique("normal");
    s.send_mail(
        "sender@org.test",
        &["reject-b@dest.test"],
        &message(&tag, "x"),
    );
    let is_dsn = |m: &Captured| m.mail_from.is_empty() && m.rcpt_tos == ["sender@org.test"];
    let dsn = poll(ARRIVAL, "the DSN for the normal message", || {
        cap.messages().into_iter().find(is_dsn)
    });
    assert_dsn(&dsn, "sender@org.test", "reject-b@dest.test", &tag);
    let all = cap.messages();
    let null_sender: Vec<_> = all.iter().filter(|m| m.mail_from.is_empty()).collect();
    assert_eq!(
        null_sender.len(),
        2,
        "expected the relayed <> message and one DSN: {null_sender:?}"
    );
    assert!(
        all.iter()
            .all(|m| is_dsn(m) || m.rcpt_tos == ["ok@dest.test"]),
        "unexpected message: {all:?}"
    );
    assert!(!dsn.text().contains(&null_tag));
    assert!(
        cap.rcpt_log().iter().all(|(_, a)| a.contains('@')),
        "sluis tried to bounce to an empty address: {:?}",
        cap.rcpt_log()
    );
}

#[test]
fn mx_falls_back_to_the_domain_address_and_honours_null_mx() {
    let cap = Capture::start();
    let dns = Dns::start(&["a:implicit.example", "null:nomail.example", "org.test"]);
    let sluis = Sluis::start(
        Config::new("mx")
            .relay("dns_servers", &format!("[\"127.0.0.1:{}\"]", dns.port))
            .relay("mx_port", &cap.port.to_string()),
    );
    let mut s = sluis.session();
    let tag = unique("implicitmx");
    s.send_mail(
        "sender@org.test",
        &["user@implicit.example"],
        &message(&tag, "a only"),
    );
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert_eq!(m.rcpt_tos, ["user@implicit.example"]);
    let q = dns.queries();
    assert!(q.contains("QUERY implicit.example 15"), "{q}");
    assert!(
        q.contains("QUERY implicit.example 1"),
        "no A lookup of the domain: {q}"
    );

    // Null MX and a domain that does not exist: permanent failures, reported to the sender.
    for (rcpt, status) in [
        ("user@nomail.example", "5.1.10"),
        ("user@nowhere.example", "5.1.2"),
    ] {
        let tag = unique("nomx");
        s.send_mail("sender@org.test", &[rcpt], &message(&tag, "undeliverable"));
        let dsn = poll(ARRIVAL, "a DSN", || {
            cap.messages().into_iter().find(|m| {
                m.mail_from.is_empty() && contains(&m.data, &tag) && contains(&m.data, rcpt)
            })
        });
        assert_eq!(dsn.rcpt_tos, ["sender@org.test"]);
        assert!(
            contains(&dsn.data, &format!("Status: {status}")),
            "{}",
            dsn.text()
        );
    }
}
