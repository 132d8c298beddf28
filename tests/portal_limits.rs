//! The portal's connection limits against the real binary: silent, trickling and idle
//! connections are closed within their timeouts, oversized and slow bodies are refused, a burst
//! of connections from one address meets the per-address and total caps while SMTP still
//! answers and others are still served; and the development SMS outbox is private (0600).

mod common;

use common::http::Client;
use common::portal::*;
use common::protect::*;
use common::raw::*;
use common::*;
use std::io::Write;
use std::net::{IpAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn public_link(p: &Portal) -> String {
    let u = unique("lim");
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!("To: piet@extern.test\r\nSubject: [secure files] {u}\r\n"),
            "Tekst",
            &[("a.txt", b"inhoud".to_vec())],
        ),
    );
    link_path(p, &u, "piet@extern.test")
}

#[test]
fn silent_trickling_and_idle_connections_are_closed() {
    let p = portal(|c| {
        c.set("web", "header_timeout", "\"2s\"")
            .set("web", "idle_timeout", "\"4s\"")
            .set("web", "request_timeout", "\"3s\"")
    });
    let link = public_link(&p);
    let t0 = Instant::now();
    // Silent: connected, nothing sent.
    let mut silent = TcpStream::connect(p.web).unwrap();
    // Half-sent headers, then one byte every 300 ms: traffic, but never a whole request.
    let mut loris = TcpStream::connect(p.web).unwrap();
    loris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sluis.test\r\n")
        .unwrap();
    let trickle = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if loris.write_all(b"X").is_err() {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("a request trickled in for 20 s without being closed");
    });
    assert!(matches!(
        closed_within(&mut silent, Duration::from_secs(10)),
        Seen::Closed(_)
    ));
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "not before its time"
    );
    let loris_closed = trickle.join().unwrap();
    assert!(loris_closed < Duration::from_secs(10), "{loris_closed:?}");

    // Keep-alive: after one answered request an idle connection is closed too.
    let mut ka = TcpStream::connect(p.web).unwrap();
    ka.write_all(b"GET /healthz HTTP/1.1\r\nHost: sluis.test\r\n\r\n")
        .unwrap();
    match closed_within(&mut ka, Duration::from_secs(10)) {
        Seen::Closed(got) => assert!(String::from_utf8_lossy(&got).contains("200 OK")),
        Seen::Open => panic!("an idle keep-alive connection stayed open"),
    }

    // A form body that never completes: 503 within the request timeout.
    let mut slow = TcpStream::connect(p.web).unwrap();
    let head = format!(
        "POST {link}/send HTTP/1.1\r\nHost: sluis.test\r\nOrigin: http://{}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\ncsrf=",
        p.web
    );
    slow.write_all(head.as_bytes()).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    while start.elapsed() < Duration::from_secs(10) && !got.starts_with(b"HTTP/1.1 ") {
        let _ = slow.write_all(b"a");
        if let Seen::Closed(b) = closed_within(&mut slow, Duration::from_millis(300)) {
            got = b;
            break;
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 5"),
        "{text}"
    );
    assert!(start.elapsed() < Duration::from_secs(8));

    // A body larger than the limit is refused before it is sent.
    let mut big = TcpStream::connect(p.web).unwrap();
    let head = format!(
        "POST {link}/send HTTP/1.1\r\nHost: sluis.test\r\nOrigin: http://{}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000\r\n\r\n",
        p.web
    );
    big.write_all(head.as_bytes()).unwrap();
    match closed_within(&mut big, Duration::from_secs(2)) {
        Seen::Closed(got) => {
            let t = String::from_utf8_lossy(&got);
            assert!(t.starts_with("HTTP/1.1 413"), "{t}")
        }
        Seen::Open => panic!("a 10 MB form was waited for"),
    }
    // And the portal still answers.
    assert_eq!(Client::new(p.web).get("/healthz").status, 200);
}

#[test]
fn over_https_silent_connections_close_and_http2_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let files = sluis::smtp::tls::ensure_files(None, None, dir.path(), "localhost").unwrap();
    let p = portal(|c| {
        let web = c.set("web", "header_timeout", "\"2s\"");
        let web = web.set("web", "idle_timeout", "\"4s\"");
        web.set("web", "tls_cert", &format!("{:?}", files.cert))
            .set("web", "tls_key", &format!("{:?}", files.key))
    });
    // Connected, no ClientHello: closed at the header timeout.
    let t0 = Instant::now();
    let mut silent = TcpStream::connect(p.web).unwrap();
    assert!(matches!(
        closed_within(&mut silent, Duration::from_secs(10)),
        Seen::Closed(_)
    ));
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    // ALPN h2 is served as HTTP/2.
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg(format!("https://{}/healthz", p.web))
        .output()
        .expect("run curl (Debian package curl)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
}

/// Opens `n` connections from `from` and tells which the server kept open and what the
/// others were told.
fn burst(p: &Portal, from: IpAddr, n: usize) -> (Vec<TcpStream>, Vec<Vec<u8>>) {
    let conns: Vec<TcpStream> = (0..n).map(|_| connect_from(from, p.web, None)).collect();
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for mut c in conns {
        match closed_within(&mut c, Duration::from_millis(300)) {
            Seen::Open => open.push(c),
            Seen::Closed(got) => refused.push(got),
        }
    }
    (open, refused)
}

#[test]
fn connection_caps_hold_under_a_burst_and_leave_smtp_and_others_served() {
    let p = portal(|c| {
        c.set("web", "max_connections", "15")
            .set("web", "max_connections_per_ip", "10")
            .set("web", "header_timeout", "\"60s\"")
    });
    // 300 idle connections from one address: 10 are kept, the rest refused at once.
    let (held, refused) = burst(&p, local(), 300);
    assert_eq!(held.len(), 10, "the per-address cap");
    assert_eq!(refused.len(), 290);
    let busy = String::from_utf8_lossy(&refused[0]);
    assert!(busy.starts_with("HTTP/1.1 503"), "{busy}");
    assert!(busy.contains("Retry-After: 5"), "{busy}");

    // Another address is still served while the first is at its cap...
    let mut other = get(connect_from(ip("127.0.0.2"), p.web, None), "/healthz", "");
    assert_eq!(read_head(&mut other).0, 200);
    drop(other);
    // ... until the total cap: 10 + 5 = 15.
    let (held2, refused2) = poll(Duration::from_secs(10), "the served request's slot", || {
        let (h, r) = burst(&p, ip("127.0.0.2"), 8);
        if h.len() == 5 { Some((h, r)) } else { None }
    });
    assert_eq!(refused2.len(), 3, "the total cap");
    let (none, _) = burst(&p, ip("127.0.0.3"), 3);
    assert!(none.is_empty(), "nothing beyond the total cap");

    // SMTP is untouched by all of it.
    let mut smtp = Smtp::connect_ehlo(p.sluis.addr);
    smtp.expect("QUIT", "221");

    // Once they go, the portal serves the first address again.
    drop(held);
    drop(held2);
    poll(
        Duration::from_secs(10),
        "the portal after the burst",
        || {
            let mut r = get(connect_from(local(), p.web, None), "/healthz", "");
            (read_head(&mut r).0 == 200).then_some(())
        },
    );
}

#[test]
fn the_sms_outbox_is_private_even_when_it_was_not() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms").join("sms.txt");
    let p = sms_portal(&outbox);
    let link = send_sms_message(&p, "smsmode");
    let mut c = Client::new(p.web);
    let token = csrf(&c.get(&link));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let send = |c: &mut Client| {
        let r = c.post_form(&format!("{link}/send"), &[("csrf", &token)]);
        assert_eq!(r.status, 303);
    };
    send(&mut c);
    last_sms(&outbox);
    assert_eq!(mode(&outbox), 0o600, "a new outbox");
    assert_eq!(mode(outbox.parent().unwrap()), 0o700, "its new folder");

    // Widened by hand (or by an older version): narrowed again at the next code.
    std::fs::set_permissions(&outbox, std::fs::Permissions::from_mode(0o644)).unwrap();
    send(&mut c);
    poll(ARRIVAL, "the second code", || {
        let s = std::fs::read_to_string(&outbox).unwrap();
        (s.lines().count() == 2).then_some(())
    });
    assert_eq!(mode(&outbox), 0o600, "an outbox that others could read");
}
