//! Downloads in progress end when what they serve is withdrawn: a slow client that started a
//! large download before its message expired gets a cut-off transfer, not the whole file, once
//! the message is crypto-shredded; a block by the admin (`sluis message block`) stops an open
//! download and an open 'Download alles' ZIP the same way.

mod common;

use common::http::Client;
use common::portal::*;
use common::protect::*;
use common::raw::*;
use common::*;
use std::time::{Duration, Instant};

const SIZE: usize = 16 << 20;
const FIRST: usize = 1 << 20;
/// A client reading 64 KiB at a time keeps the server at most a few MiB ahead (socket buffers).
const RCVBUF: u32 = 64 << 10;

fn send_big(p: &Portal, u: &str, extra: &str, data: &[u8]) -> String {
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!("To: piet@extern.test\r\nSubject: [public files] {u}\r\n{extra}"),
            "Groot bestand",
            &[
                ("groot.bin", data.to_vec()),
                ("klein.txt", b"klein".to_vec()),
            ],
        ),
    );
    link_path(p, u, "piet@extern.test")
}

/// Starts a download as a slow client: headers read, then the first MiB, then nothing.
fn start(
    p: &Portal,
    path: &str,
) -> (
    std::io::BufReader<std::net::TcpStream>,
    Vec<(String, String)>,
) {
    let mut r = get(connect_from(local(), p.web, Some(RCVBUF)), path, "");
    let (status, h) = read_head(&mut r);
    assert_eq!(status, 200, "{path}");
    (r, h)
}

#[test]
fn a_download_stops_when_its_message_expires_and_is_shredded() {
    // Long enough that the stalled client is not closed as idle: only the shred may stop it.
    let p = portal(|c| c.set("web", "idle_timeout", "\"10m\""));
    let data = noise(SIZE, 11);
    let u = unique("shred");
    let sent = Instant::now();
    let link = send_big(&p, &u, "X-Sluis-Expires: 60s\r\n", &data);
    assert!(
        sent.elapsed() < Duration::from_secs(50),
        "the link came too late to start before expiry"
    );
    let (mut r, h) = start(&p, &format!("{link}/f/0"));
    assert_eq!(
        header(&h, "content-length"),
        Some(SIZE.to_string().as_str())
    );
    let first = read_n(&mut r, FIRST);
    assert_eq!(first, data[..FIRST]);

    // The message expires and is shredded while the client is not reading.
    poll(Duration::from_secs(90), "the link to expire", || {
        (Client::new(p.web).get(&link).status == 410).then_some(())
    });
    let rest = read_rest(&mut r, Duration::from_secs(30));
    let got = FIRST + rest.len();
    assert!(
        got < SIZE - (4 << 20),
        "{got} of {SIZE} bytes arrived after the shred"
    );
    assert_eq!(
        rest,
        data[FIRST..got],
        "what did arrive is the file's start"
    );
}

#[test]
fn a_block_stops_an_open_download_and_an_open_zip() {
    let p = portal(|c| c);
    let data = noise(SIZE, 12);
    let u = unique("block");
    let link = send_big(&p, &u, "", &data);
    // Several at once, as a burst of clients would.
    let mut singles: Vec<_> = (0..3)
        .map(|_| start(&p, &format!("{link}/f/0")).0)
        .collect();
    for single in &mut singles {
        assert_eq!(read_n(single, FIRST), data[..FIRST]);
    }
    let (mut zip, h) = start(&p, &format!("{link}/zip"));
    assert_eq!(header(&h, "transfer-encoding"), Some("chunked"));
    read_n(&mut zip, FIRST);

    let url = format!("http://{}{link}", p.web);
    let out = p.sluis.cli(&["message", "block", &url, "--file", "0"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "blocked");

    for single in &mut singles {
        let rest = read_rest(single, Duration::from_secs(30));
        let got = FIRST + rest.len();
        assert!(
            got < SIZE - (4 << 20),
            "{got} of {SIZE} bytes after the block"
        );
        assert_eq!(rest, data[FIRST..got]);
    }
    // The ZIP is cut off too: no chunked terminator, far less than the file.
    let rest = read_rest(&mut zip, Duration::from_secs(30));
    assert!(
        FIRST + rest.len() < SIZE - (4 << 20),
        "{} bytes",
        rest.len()
    );
    assert!(
        !rest.ends_with(b"\r\n0\r\n\r\n"),
        "the ZIP ended as if complete"
    );

    // The blocked file serves nothing any more; the other one still does.
    let mut c = Client::new(p.web);
    assert_eq!(c.get(&format!("{link}/f/0")).status, 403);
    assert_eq!(c.get(&format!("{link}/f/1")).body, b"klein");
    // The whole message: the link shows the blocked page.
    let token = link.trim_start_matches("/l/");
    assert!(p.sluis.cli(&["message", "block", token]).status.success());
    let r = c.get(&link);
    assert_eq!(r.status, 403);
    assert!(r.text().contains("geblokkeerd"), "{}", r.text());
    // Something that names no stored message is refused, clearly.
    let out = p.sluis.cli(&["message", "block", "geen-link"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a link nor a message id"));
    let out = p.sluis.cli(&["message", "block", &"0".repeat(32)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not stored"));
}
