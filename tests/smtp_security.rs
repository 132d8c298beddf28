//! Security behaviour of the SMTP front door: no open relay, address tricks,
//! SMTP smuggling, STARTTLS command injection, require_tls.

mod common;

use common::*;
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(30);

#[test]
fn client_outside_relay_networks_is_refused() {
    let cap = Capture::start();
    let sluis =
        Sluis::start(Config::new(&cap.next_hop()).smtp("relay_networks", "[\"10.0.0.0/8\"]"));
    let mut s = sluis.session();
    s.expect("MAIL FROM:<spammer@org.test>", "250 2.1.0");
    for rcpt in ["victim@dest.test", "postmaster@org.test", "x@sluis.test"] {
        let r = s.expect(&format!("RCPT TO:<{rcpt}>"), "554 5.7.1");
        assert!(
            r.text().contains("Relay access denied"),
            "reply text must say 'Relay access denied': {r:?}"
        );
    }
    // DATA without an accepted recipient is not accepted
    let r = s.cmd("DATA");
    assert!(r.code >= 500, "DATA after refused recipients: {r:?}");
    s.expect("QUIT", "221 2.0.0");
    assert!(cap.messages().is_empty());
    assert!(cap.rcpt_log().is_empty(), "sluis relayed for an outsider");
}

#[test]
fn source_routes_percent_hacks_and_bang_paths_are_refused() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
    for rcpt in [
        "<@a.test:u@b.test>",
        "<@a.test,@c.test:u@b.test>",
        "<u%x.test@y.test>",
        "<u%x.test@dest.test>",
        "<a!b@c.test>",
        "<host!user@dest.test>",
    ] {
        s.expect(&format!("RCPT TO:{rcpt}"), "553 5.1.3");
    }
    s.expect("RCPT TO:<fine@dest.test>", "250 2.1.5");
    let tag = unique("tricks");
    let r = s.data(&message(&tag, "only the fine one"));
    assert!(r.starts("250 2.0.0"), "{r:?}");
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert_eq!(m.rcpt_tos, ["fine@dest.test"]);
}

/// Sends a message whose body hides `variant` + a smuggled transaction before the
/// real end of data; expects exactly one `550 5.6.0` and nothing else.
fn smuggle(s: &mut Smtp, variant: &[u8], marker: &str) {
    s.expect("MAIL FROM:<mallory@org.test>", "250 2.1.0");
    s.expect("RCPT TO:<alice@dest.test>", "250 2.1.5");
    s.expect("DATA", "354");
    let mut body = b"From: mallory@org.test\r\nSubject: cover\r\n\r\nhello".to_vec();
    body.extend_from_slice(variant);
    body.extend_from_slice(
        format!(
            "MAIL FROM:<ceo@org.test>\r\nRCPT TO:<victim@dest.test>\r\nDATA\r\n\
             From: ceo@org.test\r\nSubject: {marker}\r\n\r\nsmuggled {marker}\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(b"\r\n.\r\n");
    s.send(&body);
    let r = s.read_reply();
    assert!(
        r.starts("550 5.6.0"),
        "variant {:?}: expected exactly `550 5.6.0`, got {r:?}",
        String::from_utf8_lossy(variant)
    );
    // no further replies may be pending: the next one must answer our NOOP
    let r = s.cmd("NOOP");
    assert!(
        r.starts("250 2.0.0") && !r.first().contains("queued"),
        "variant {:?}: extra reply after the 550: {r:?}",
        String::from_utf8_lossy(variant)
    );
}

#[test]
fn smtp_smuggling_variants_never_end_data() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let variants: &[&[u8]] = &[
        b"\n.\n",
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\n.\r",
        b"\r.\n",
        b"\nbare lf only\r\n",
        b"\rbare cr only\r\n",
    ];
    let marker = unique("smuggled");
    let mut s = sluis.session();
    for v in variants {
        smuggle(&mut s, v, &marker);
    }
    // the session still works: a clean message afterwards is accepted
    let tag = unique("clean");
    s.send_mail(
        "mallory@org.test",
        &["alice@dest.test"],
        &message(&tag, "ok"),
    );
    s.expect("QUIT", "221 2.0.0");
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert_eq!(m.rcpt_tos, ["alice@dest.test"]);
    let all = cap.messages();
    assert_eq!(all.len(), 1, "only the clean message may arrive");
    assert!(!contains(&all[0].data, &marker));
    assert!(
        !cap.rcpt_log().iter().any(|(_, a)| a == "victim@dest.test"),
        "a smuggled recipient reached the next hop"
    );
}

#[test]
fn commands_pipelined_after_starttls_are_discarded() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    s.send("STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n");
    s.expect_reply("220 2.0.0");
    let mut s = s.upgrade();
    // after TLS the client must EHLO again
    s.expect("MAIL FROM:<a@org.test>", "503 5.5.1");
    let ehlo = s.expect("EHLO client.test", "250");
    assert!(
        !ehlo.capabilities().iter().any(|c| c == "STARTTLS"),
        "STARTTLS offered again inside TLS: {ehlo:?}"
    );
    // the injected MAIL was not executed: RCPT without MAIL is a bad sequence
    s.expect("RCPT TO:<b@dest.test>", "503 5.5.1");
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
    s.expect("RCPT TO:<b@dest.test>", "250 2.1.5");
    let tag = unique("tls");
    let msg = message(&tag, "over tls");
    let r = s.data(&msg);
    assert!(r.starts("250 2.0.0"), "{r:?}");
    s.expect("QUIT", "221 2.0.0");
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert_eq!(m.mail_from, "a@org.test", "the injected sender was used");
    let received = assert_relayed_exactly(&m.data, &msg);
    assert!(received.contains("with ESMTPS"), "{received}");
    assert!(received.contains("for <b@dest.test>"), "{received}");
}

#[test]
fn require_tls_refuses_mail_before_starttls() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).smtp("require_tls", "true"));
    let mut s = sluis.session();
    s.expect("MAIL FROM:<a@org.test>", "530 5.7.0");
    s.expect("NOOP", "250 2.0.0");
    let mut s = s.starttls();
    s.expect("EHLO client.test", "250");
    let tag = unique("reqtls");
    s.send_mail("a@org.test", &["b@dest.test"], &message(&tag, "secure"));
    cap.wait_for_containing(&tag, ARRIVAL);
}

#[test]
fn starttls_without_ehlo_and_with_arguments() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    s.expect("STARTTLS now", "501 5.5.4");
    let mut s = s.starttls();
    assert!(s.tls);
    s.expect("EHLO client.test", "250");
    s.expect("NOOP", "250 2.0.0");
    s.expect("QUIT", "221 2.0.0");
}
