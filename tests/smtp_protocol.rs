//! ESMTP protocol behaviour of `sluis serve`: greeting, EHLO capabilities, reply codes,
//! PIPELINING, CHUNKING, 8BITMIME/SMTPUTF8, loop detection and what reaches the next hop.

mod common;

use common::*;
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(30);

#[test]
fn greeting_and_ehlo_capabilities() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).smtp("max_message_size", "\"2 MiB\""));
    let mut s = sluis.connect();
    assert_eq!(s.greeting.first(), "220 sluis.test ESMTP sluis");
    let ehlo = s.expect("EHLO client.test", "250");
    assert!(
        ehlo.lines.len() > 1,
        "EHLO reply is not multi-line: {ehlo:?}"
    );
    assert!(ehlo.lines[0].starts_with("250-sluis.test"), "{ehlo:?}");
    let caps = ehlo.capabilities();
    for wanted in [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(
            caps.iter().any(|c| c == wanted),
            "{wanted} missing: {caps:?}"
        );
    }
    assert!(
        caps.iter().any(|c| c == "SIZE 2097152"),
        "SIZE must announce max_message_size in bytes: {caps:?}"
    );
    // every line but the last uses "250-", the last "250 "
    for l in &ehlo.lines[..ehlo.lines.len() - 1] {
        assert!(l.starts_with("250-"), "{l:?}");
    }
    assert!(ehlo.lines.last().unwrap().starts_with("250 "));
    s.expect("QUIT", "221 2.0.0");
    assert!(
        s.closed_within(Duration::from_secs(10)),
        "no close after QUIT"
    );
}

#[test]
fn simple_commands_have_exact_codes() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.connect();
    // bad sequence before EHLO
    s.expect("MAIL FROM:<a@org.test>", "503 5.5.1");
    s.expect("HELO client.test", "250");
    s.expect("NOOP", "250 2.0.0");
    s.expect("RSET", "250 2.0.0");
    s.expect("VRFY postmaster", "252 2.5.2");
    s.expect("HELP", "214 2.0.0");
    s.expect("XYZZY frobnicate", "500 5.5.1");
    s.expect("RCPT TO:<b@dest.test>", "503 5.5.1");
    s.expect("DATA", "503 5.5.1");
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
    s.expect("DATA", "503 5.5.1");
    s.expect("RSET", "250 2.0.0");
    // syntax errors
    s.expect("MAIL FROM:<unterminated@org.test", "501 5.5.4");
    s.expect("MAIL FROM:", "501 5.5.4");
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
    s.expect("RCPT TO:garbage <<>>", "501 5.5.4");
    s.expect("RCPT TO:<b@dest.test>", "250 2.1.5");
    s.expect("QUIT", "221 2.0.0");
    assert!(s.closed_within(Duration::from_secs(10)));
    assert!(cap.messages().is_empty());
}

#[test]
fn raw_message_arrives_byte_for_byte_with_envelope() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    let mut msg = message(&unique("raw"), "first line");
    // lines starting with dots (dot-stuffed on the wire), trailing spaces, tabs, 8-bit
    msg.extend_from_slice(b".leading dot\r\n..two dots\r\n.\r\ntrailing space \r\n\ttab\r\n");
    msg.extend_from_slice("caf\u{e9} na\u{ef}ve\r\n".as_bytes());
    let id = s.send_mail(
        "sender@org.test",
        &["one@dest.test", "two@other.test"],
        &msg,
    );
    assert!(!id.is_empty());
    s.expect("QUIT", "221 2.0.0");
    let got = poll(ARRIVAL, "both recipients delivered", || {
        let m = cap.messages();
        let n: usize = m.iter().map(|m| m.rcpt_tos.len()).sum();
        (n >= 2).then_some(m)
    });
    let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, vec!["one@dest.test", "two@other.test"]);
    for m in &got {
        assert_eq!(m.mail_from, "sender@org.test");
        let received = assert_relayed_exactly(&m.data, &msg);
        assert!(received.contains("by sluis.test (sluis)"), "{received}");
        assert!(received.contains("[127.0.0.1]"), "{received}");
        assert!(received.contains("from client.test"), "{received}");
        assert!(received.contains(&format!(" id {id}")), "{received}");
        assert!(received.contains("with ESMTP "), "{received}");
        assert_eq!(count(&m.data, b"Received: from "), 1);
    }
}

#[test]
fn pipelined_transactions_get_replies_in_order() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    let m1 = message(&unique("pipe1"), "one");
    let m2 = message(&unique("pipe2"), "two");
    s.send("MAIL FROM:<p@org.test>\r\nRCPT TO:<a@dest.test>\r\nRCPT TO:<b@dest.test>\r\nDATA\r\n");
    s.expect_reply("250 2.1.0");
    s.expect_reply("250 2.1.5");
    s.expect_reply("250 2.1.5");
    s.expect_reply("354");
    // end of data, a whole second transaction and NOOP in one write
    let mut batch = dot_stuff(&m1);
    batch.extend_from_slice(b"MAIL FROM:<p@org.test>\r\nRCPT TO:<c@dest.test>\r\nDATA\r\n");
    s.send(&batch);
    s.expect_reply("250 2.0.0");
    s.expect_reply("250 2.1.0");
    s.expect_reply("250 2.1.5");
    s.expect_reply("354");
    let mut batch = dot_stuff(&m2);
    batch.extend_from_slice(b"NOOP\r\nQUIT\r\n");
    s.send(&batch);
    s.expect_reply("250 2.0.0 OK queued as");
    s.expect_reply("250 2.0.0");
    s.expect_reply("221 2.0.0");
    let got = poll(ARRIVAL, "3 deliveries", || {
        let m = cap.messages();
        (m.iter().map(|m| m.rcpt_tos.len()).sum::<usize>() >= 3).then_some(m)
    });
    for m in &got {
        let want = if m.rcpt_tos.contains(&"c@dest.test".to_string()) {
            &m2
        } else {
            &m1
        };
        assert_relayed_exactly(&m.data, want);
    }
}

#[test]
fn bdat_chunks_arrive_unaltered() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    let mut msg = message(&unique("bdat"), "chunked body");
    // BDAT has no dot-stuffing: these dots must arrive as sent
    msg.extend_from_slice(b"..double dot stays\r\n.single\r\nend\r\n");
    let (a, rest) = msg.split_at(37); // split inside a header line
    let (b, c) = rest.split_at(rest.len() - 10);
    s.expect("MAIL FROM:<bdat@org.test>", "250 2.1.0");
    s.expect("RCPT TO:<r@dest.test>", "250 2.1.5");
    for chunk in [a, b] {
        let mut wire = format!("BDAT {}\r\n", chunk.len()).into_bytes();
        wire.extend_from_slice(chunk);
        s.send(&wire);
        s.expect_reply(&format!("250 2.0.0 {} octets received", chunk.len()));
    }
    let mut wire = format!("BDAT {} LAST\r\n", c.len()).into_bytes();
    wire.extend_from_slice(c);
    s.send(&wire);
    let r = s.expect_reply("250 2.0.0 OK queued as");
    assert!(!r.queue_id().is_empty());
    // BDAT 0 LAST after a chunk, pipelined with the MAIL/RCPT
    let msg2 = message(&unique("bdat0"), "second");
    let mut wire = format!(
        "MAIL FROM:<bdat@org.test>\r\nRCPT TO:<r2@dest.test>\r\nBDAT {}\r\n",
        msg2.len()
    )
    .into_bytes();
    wire.extend_from_slice(&msg2);
    wire.extend_from_slice(b"BDAT 0 LAST\r\n");
    s.send(&wire);
    s.expect_reply("250 2.1.0");
    s.expect_reply("250 2.1.5");
    s.expect_reply("250 2.0.0");
    s.expect_reply("250 2.0.0 OK queued as");
    s.expect("QUIT", "221");
    let got = cap.wait_for(2, ARRIVAL);
    for m in &got {
        let want = if m.rcpt_tos == ["r2@dest.test"] {
            &msg2
        } else {
            &msg
        };
        assert_relayed_exactly(&m.data, want);
    }
}

#[test]
fn smtputf8_and_8bitmime_addresses_and_body() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    let from = "j\u{f6}rg@b\u{fc}cher.test";
    let to = "\u{43f}\u{440}\u{438}\u{432}\u{435}\u{442}@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.test";
    let subject = unique("utf8");
    let msg = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject} \u{20ac}\u{2603}\r\nMessage-ID: <{subject}@x.test>\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Gr\u{fc}\u{df}e, \u{4f60}\u{597d} \u{1f600}\r\n"
    )
    .into_bytes();
    s.expect(
        &format!("MAIL FROM:<{from}> SMTPUTF8 BODY=8BITMIME"),
        "250 2.1.0",
    );
    s.expect(&format!("RCPT TO:<{to}>"), "250 2.1.5");
    let r = s.data(&msg);
    assert!(r.starts("250 2.0.0"), "{r:?}");
    let got = cap.wait_for(1, ARRIVAL);
    assert_eq!(got[0].mail_from, from);
    assert_eq!(got[0].rcpt_tos, vec![to.to_string()]);
    assert_relayed_exactly(&got[0].data, &msg);
}

#[test]
fn too_many_received_headers_is_a_loop() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).smtp("max_received_headers", "5"));
    let mut s = sluis.session();
    let hops = |n: usize, tag: &str| {
        let mut m = Vec::new();
        for i in 0..n {
            m.extend_from_slice(
                format!(
                    "Received: from h{i}.test (h{i}.test [192.0.2.{i}])\r\n\tby mx.test with ESMTP id {i}; Mon, 1 Jan 2024 10:00:00 +0000\r\n"
                )
                .as_bytes(),
            );
        }
        m.extend_from_slice(&message(tag, "looping?"));
        m
    };
    let looped_tag = unique("looped");
    s.expect("MAIL FROM:<l@org.test>", "250 2.1.0");
    s.expect("RCPT TO:<r@dest.test>", "250 2.1.5");
    let r = s.data(&hops(6, &looped_tag));
    assert!(
        r.starts("554 5.4.6"),
        "6 Received headers with max 5: {r:?}"
    );
    // well below the limit is fine (whether sluis counts its own Received field is
    // not specified), and the session continues
    let ok = hops(4, &unique("fourhops"));
    s.expect("MAIL FROM:<l@org.test>", "250 2.1.0");
    s.expect("RCPT TO:<r@dest.test>", "250 2.1.5");
    let r = s.data(&ok);
    assert!(
        r.starts("250 2.0.0"),
        "5 Received headers with max 5: {r:?}"
    );
    let got = cap.wait_for(1, ARRIVAL);
    assert_relayed_exactly(&got[0].data, &ok);
    assert_eq!(count(&got[0].data, b"Received: "), 5);
    assert!(
        !cap.messages()
            .iter()
            .any(|m| contains(&m.data, &looped_tag))
    );
}

#[test]
fn forged_processed_marker_is_removed() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    let tag = unique("forged");
    let clean = message(&tag, "please trust me");
    // the same message with forged markers in the header, one folded
    let hdr_end = clean.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
    let mut forged = Vec::new();
    forged.extend_from_slice(b"X-Sluis-Processed: v1; verdict=clean; forged=yes\r\n");
    forged.extend_from_slice(&clean[..hdr_end]);
    forged.extend_from_slice(b"x-sluis-processed: v1;\r\n\tsig=AAAA\r\n");
    forged.extend_from_slice(&clean[hdr_end..]);
    s.send_mail("f@org.test", &["r@dest.test"], &forged);
    let got = cap.wait_for(1, ARRIVAL);
    let data = &got[0].data;
    assert!(!contains(data, "forged=yes"), "forged marker passed on");
    assert!(
        !contains(data, "sig=AAAA"),
        "folded forged marker passed on"
    );
    let lower = String::from_utf8_lossy(data).to_ascii_lowercase();
    assert_eq!(
        lower.matches("x-sluis-processed:").count(),
        1,
        "exactly sluis's own marker expected:\n{}",
        header_block(data)
    );
    assert_relayed_exactly(data, &clean);
}
