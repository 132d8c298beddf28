//! Configured limits of the SMTP front door and their exact reply codes.

mod common;

use common::*;
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(30);

/// A NOOP command line of exactly `octets` octets including CRLF.
fn noop_of(octets: usize) -> String {
    format!("NOOP {}", "x".repeat(octets - 7))
}

#[test]
fn command_line_length_limit() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    assert_eq!(noop_of(1000).len() + 2, 1000);
    s.expect(&noop_of(1000), "250 2.0.0");
    s.expect(&noop_of(1001), "500 5.5.2");
    s.expect("NOOP", "250 2.0.0");
    s.expect(&noop_of(20_000), "500 5.5.2");
    s.expect("NOOP", "250 2.0.0");
    let long_addr = format!("MAIL FROM:<{}@org.test>", "a".repeat(1000));
    s.expect(&long_addr, "500 5.5.2");
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
}

#[test]
fn message_text_line_length_limit() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).smtp("max_line_length", "600"));
    let mut s = sluis.session();
    let too_long = unique("longline");
    let mut bad = message(&too_long, "short");
    bad.extend_from_slice(format!("{}\r\n", "y".repeat(599)).as_bytes()); // 601 octets
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
    s.expect("RCPT TO:<b@dest.test>", "250 2.1.5");
    let r = s.data(&bad);
    assert!(r.starts("550 5.6.0"), "601-octet text line: {r:?}");
    let fits = unique("fits");
    let mut good = message(&fits, "short");
    good.extend_from_slice(format!("{}\r\n", "y".repeat(598)).as_bytes()); // 600 octets
    s.send_mail("a@org.test", &["b@dest.test"], &good);
    let m = cap.wait_for_containing(&fits, ARRIVAL);
    assert_relayed_exactly(&m.data, &good);
    assert_eq!(cap.messages().len(), 1);
}

#[test]
fn header_block_size_limit() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).smtp("max_header_size", "\"4 KiB\""));
    let mut s = sluis.session();
    let mut big = Vec::new();
    for i in 0..80 {
        big.extend_from_slice(format!("X-Filler-{i:03}: {}\r\n", "h".repeat(60)).as_bytes());
    }
    big.extend_from_slice(&message(&unique("bighdr"), "body"));
    assert!(big.len() > 5000);
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
    s.expect("RCPT TO:<b@dest.test>", "250 2.1.5");
    let r = s.data(&big);
    assert!(r.starts("552 5.3.4"), "5 KiB header with 4 KiB max: {r:?}");
    // a small header with a large body is fine
    let tag = unique("bigbody");
    let mut ok = message(&tag, "");
    for _ in 0..200 {
        ok.extend_from_slice(format!("{}\r\n", "b".repeat(70)).as_bytes());
    }
    s.send_mail("a@org.test", &["b@dest.test"], &ok);
    cap.wait_for_containing(&tag, ARRIVAL);
}

#[test]
fn message_size_limits() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).smtp("max_message_size", "\"64 KiB\""));
    let mut s = sluis.session();
    s.expect("MAIL FROM:<a@org.test> SIZE=65537", "552 5.3.4");
    s.expect("MAIL FROM:<a@org.test> SIZE=1000", "250 2.1.0");
    s.expect("RCPT TO:<b@dest.test>", "250 2.1.5");
    // lies about its size: refused at end of data
    let mut big = message(&unique("huge"), "");
    while big.len() < 100 * 1024 {
        big.extend_from_slice(format!("{}\r\n", "z".repeat(76)).as_bytes());
    }
    let r = s.data(&big);
    assert!(
        r.starts("552 5.3.4"),
        "100 KiB message with 64 KiB max: {r:?}"
    );
    s.expect("NOOP", "250 2.0.0");
    let tag = unique("small");
    s.expect("MAIL FROM:<a@org.test> SIZE=2000", "250 2.1.0");
    s.expect("RCPT TO:<b@dest.test>", "250 2.1.5");
    let r = s.data(&message(&tag, "small"));
    assert!(r.starts("250 2.0.0"), "{r:?}");
    cap.wait_for_containing(&tag, ARRIVAL);
    assert_eq!(cap.messages().len(), 1);
}

#[test]
fn recipient_count_limit() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).smtp("max_recipients", "3"));
    let mut s = sluis.session();
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
    for i in 0..3 {
        s.expect(&format!("RCPT TO:<r{i}@dest.test>"), "250 2.1.5");
    }
    s.expect("RCPT TO:<r3@dest.test>", "452 4.5.3");
    s.expect("RCPT TO:<r4@dest.test>", "452 4.5.3");
    let tag = unique("rcpts");
    let r = s.data(&message(&tag, "three only"));
    assert!(r.starts("250 2.0.0"), "{r:?}");
    let got = poll(ARRIVAL, "3 deliveries", || {
        let m = cap.messages();
        (m.iter().map(|m| m.rcpt_tos.len()).sum::<usize>() >= 3).then_some(m)
    });
    let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.rcpt_tos.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["r0@dest.test", "r1@dest.test", "r2@dest.test"]);
}

#[test]
fn idle_timeout_closes_with_421() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).smtp("idle_timeout", "\"2s\""));
    let mut s = sluis.session();
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
    s.set_timeout(Duration::from_secs(20));
    let r = s.read_reply();
    assert!(r.starts("421 4.4.2"), "{r:?}");
    assert!(
        s.closed_within(Duration::from_secs(10)),
        "no close after 421"
    );
    // a busy session is not cut off: activity resets the timer
    let mut s = sluis.session();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(800));
        s.expect("NOOP", "250 2.0.0");
    }
}

#[test]
fn connections_per_ip_limit() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).smtp("max_connections_per_ip", "2"));
    let a = sluis.session();
    let mut b = sluis.session();
    let mut c = sluis.connect();
    assert!(c.greeting.starts("421 4.7.0"), "{:?}", c.greeting);
    assert!(
        c.closed_within(Duration::from_secs(10)),
        "no close after 421"
    );
    b.expect("NOOP", "250 2.0.0");
    drop(a);
    // once a slot is free, a new connection is greeted normally
    let d = poll(Duration::from_secs(15), "a free connection slot", || {
        let d = sluis.connect();
        d.greeting.starts("220 ").then_some(d)
    });
    drop(d);
    b.expect("QUIT", "221 2.0.0");
}

#[test]
fn messages_per_connection_limit() {
    let cap = Capture::start();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).smtp("max_messages_per_connection", "2"));
    let mut s = sluis.session();
    for i in 0..2 {
        s.send_mail(
            "a@org.test",
            &["b@dest.test"],
            &message(&unique(&format!("m{i}")), "x"),
        );
    }
    s.expect("MAIL FROM:<a@org.test>", "421 4.7.0");
    assert!(
        s.closed_within(Duration::from_secs(10)),
        "no close after 421"
    );
    cap.wait_for(2, ARRIVAL);
    // a new connection may send again
    let mut s = sluis.session();
    s.send_mail("a@org.test", &["b@dest.test"], &message(&unique("m3"), "x"));
}

#[test]
fn low_disk_space_refuses_mail_temporarily() {
    let cap = Capture::start();
    // one exbibyte free is more than any test machine has
    let sluis =
        Sluis::start(Config::new(&cap.next_hop()).smtp("min_free_space", "1152921504606846976"));
    let mut s = sluis.session();
    s.expect("MAIL FROM:<a@org.test>", "452 4.3.1");
    s.expect("NOOP", "250 2.0.0");
}

/// Unmounts the small filesystem when the test ends, even on failure.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn disk_full_during_data_is_a_temporary_error_and_sluis_keeps_serving() {
    let cap = Capture::start();
    let mut sluis = Sluis::prepare(Config::new(&cap.next_hop()).smtp("min_free_space", "0"));
    // A real filesystem of 1 MiB under the data directory: writes fail with ENOSPC.
    std::fs::create_dir_all(&sluis.data_dir).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&sluis.data_dir)
        .status()
        .expect("mount(8) runs");
    assert!(
        st.success(),
        "mounting a 1 MiB tmpfs needs root (CI runs as root)"
    );
    let _mount = Mount(sluis.data_dir.clone());
    sluis.spawn();
    let mut s = sluis.session();
    let mut big = message(&unique("toobig"), "");
    for _ in 0..40_000 {
        big.extend_from_slice(format!("{}\r\n", "z".repeat(70)).as_bytes());
    }
    assert!(big.len() > 2 << 20);
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
    s.expect("RCPT TO:<b@dest.test>", "250 2.1.5");
    let r = s.data(&big);
    assert!(r.starts("451 4.3.0"), "message larger than the disk: {r:?}");
    // The failed message left nothing behind, so the next one fits and is delivered.
    let tag = unique("fitsafter");
    s.send_mail("a@org.test", &["b@dest.test"], &message(&tag, "small"));
    cap.wait_for_containing(&tag, ARRIVAL);
    assert!(
        !cap.messages().iter().any(|m| contains(&m.data, "toobig")),
        "the refused message must not be relayed"
    );
}
