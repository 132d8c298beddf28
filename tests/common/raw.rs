//! Raw TCP clients for the portal's connection and download tests: connections from a chosen
//! loopback address (127.0.0.2, ...), a small receive buffer for slow readers, and checks for
//! "the server closed this connection" with a deadline.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A connection to `to` from `from` (port chosen by the system); `rcvbuf` bytes of receive
/// buffer when given, so that a client that stops reading stops the sender soon.
pub fn connect_from(from: IpAddr, to: SocketAddr, rcvbuf: Option<u32>) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(n) = rcvbuf {
            s.set_recv_buffer_size(n).unwrap();
        }
        s.bind(SocketAddr::new(from, 0)).unwrap();
        let stream = s.connect(to).await.expect("connect");
        let std = stream.into_std().unwrap();
        std.set_nonblocking(false).unwrap();
        std
    })
}

pub fn local() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

/// What a connection showed within `wait`: closed by the server (with whatever it had sent
/// before), or still open.
#[derive(Debug, PartialEq)]
pub enum Seen {
    Closed(Vec<u8>),
    Open,
}

/// Reads until the server closes the connection or `wait` passes.
pub fn closed_within(s: &mut TcpStream, wait: Duration) -> Seen {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Seen::Open;
        }
        s.set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Seen::Closed(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Seen::Closed(got),
        }
    }
}

/// A response's status and headers (lowercased names); the reader stays at the body.
pub fn read_head(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            return (status, headers);
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

pub fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Sends a GET and returns the reader positioned at the body.
pub fn get(mut s: TcpStream, path: &str, extra: &str) -> BufReader<TcpStream> {
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: sluis.test\r\nConnection: close\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).unwrap();
    BufReader::with_capacity(16 << 10, s)
}

/// Reads exactly `n` body bytes (raw, as sent).
pub fn read_n(r: &mut BufReader<TcpStream>, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    r.read_exact(&mut b).unwrap();
    b
}

/// Reads the rest of the raw body until the server ends or breaks the connection (or `wait`
/// passes with nothing arriving: that fails the test).
pub fn read_rest(r: &mut BufReader<TcpStream>, wait: Duration) -> Vec<u8> {
    r.get_ref().set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server neither sent more nor closed within {wait:?}")
            }
            Err(_) => return out,
        }
    }
}
