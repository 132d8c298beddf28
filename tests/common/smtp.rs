//! A raw SMTP client for black-box tests: exact bytes on the wire, multi-line replies,
//! and an in-place STARTTLS upgrade (rustls, certificate not verified: the tests only
//! care about the protocol, sluis's default certificate is self-signed).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// Default time to wait for any single reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// One SMTP reply (possibly multi-line).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// Every line as received, without CRLF, e.g. `250-PIPELINING`.
    pub lines: Vec<String>,
}

impl Reply {
    /// The first line, e.g. `250 2.1.0 OK`.
    pub fn first(&self) -> &str {
        &self.lines[0]
    }

    /// All lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// True when the first line starts with `prefix` (e.g. `"554 5.7.1"`).
    pub fn starts(&self, prefix: &str) -> bool {
        self.first().starts_with(prefix)
    }

    /// For multi-line EHLO replies: the keywords after the code (upper-cased lines).
    pub fn capabilities(&self) -> Vec<String> {
        self.lines
            .iter()
            .skip(1)
            .map(|l| l.get(4..).unwrap_or("").to_ascii_uppercase())
            .collect()
    }

    /// The queue id of a `250 2.0.0 OK queued as ID` reply.
    pub fn queue_id(&self) -> String {
        let first = self.first();
        let idx = first
            .find("queued as ")
            .unwrap_or_else(|| panic!("no 'queued as' in reply {first:?}"));
        first[idx + "queued as ".len()..]
            .split_whitespace()
            .next()
            .unwrap_or_else(|| panic!("empty queue id in {first:?}"))
            .to_string()
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A raw SMTP client connection.
pub struct Smtp {
    stream: Box<dyn Stream>,
    tcp: TcpStream,
    buf: Vec<u8>,
    /// The greeting received on connect.
    pub greeting: Reply,
    pub tls: bool,
}

impl Smtp {
    /// Connects and reads the greeting (whatever it is).
    pub fn connect(addr: SocketAddr) -> Smtp {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        tcp.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
        tcp.set_nodelay(true).unwrap();
        let stream = Box::new(tcp.try_clone().unwrap());
        let mut s = Smtp {
            stream,
            tcp,
            buf: Vec::new(),
            greeting: Reply {
                code: 0,
                lines: vec![],
            },
            tls: false,
        };
        s.greeting = s.read_reply();
        s
    }

    /// Like `connect`, but returns errors instead of panicking.
    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> io::Result<Smtp> {
        let tcp = TcpStream::connect_timeout(&addr, timeout)?;
        tcp.set_read_timeout(Some(timeout))?;
        tcp.set_write_timeout(Some(timeout))?;
        tcp.set_nodelay(true)?;
        let stream = Box::new(tcp.try_clone()?);
        let mut s = Smtp {
            stream,
            tcp,
            buf: Vec::new(),
            greeting: Reply {
                code: 0,
                lines: vec![],
            },
            tls: false,
        };
        s.greeting = s.try_reply()?;
        Ok(s)
    }

    /// Reads one reply; a close is an error.
    pub fn try_reply(&mut self) -> io::Result<Reply> {
        self.try_read_reply()?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"))
    }

    /// Sends `line` + CRLF and reads the reply, returning errors instead of panicking.
    pub fn try_cmd(&mut self, line: &str) -> io::Result<Reply> {
        self.try_send(format!("{line}\r\n"))?;
        self.try_reply()
    }

    /// Connects, expects a 220 greeting and sends EHLO (expects 250).
    pub fn connect_ehlo(addr: SocketAddr) -> Smtp {
        let mut s = Smtp::connect(addr);
        assert!(s.greeting.starts("220 "), "greeting: {:?}", s.greeting);
        s.expect("EHLO client.test", "250");
        s
    }

    pub fn set_timeout(&mut self, t: Duration) {
        self.tcp.set_read_timeout(Some(t)).unwrap();
    }

    /// Writes raw bytes (no CRLF added), in one write call.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .expect("write to sluis");
        self.stream.flush().expect("flush to sluis");
    }

    /// Writes raw bytes; returns an error instead of panicking (peer may have closed).
    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref())?;
        self.stream.flush()
    }

    fn read_line(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).collect();
                return Ok(Some(
                    String::from_utf8_lossy(&line[..line.len() - 2]).into_owned(),
                ));
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads one reply; `Ok(None)` when the server closed the connection first.
    pub fn try_read_reply(&mut self) -> io::Result<Option<Reply>> {
        let mut lines = Vec::new();
        loop {
            let line = match self.read_line()? {
                Some(l) => l,
                None if lines.is_empty() => return Ok(None),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("connection closed inside a reply: {lines:?}"),
                    ));
                }
            };
            let bytes = line.as_bytes();
            if bytes.len() < 3 || !bytes[..3].iter().all(u8::is_ascii_digit) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not an SMTP reply line: {line:?}"),
                ));
            }
            let more = bytes.get(3) == Some(&b'-');
            lines.push(line.clone());
            if !more {
                let code = line[..3].parse().unwrap();
                return Ok(Some(Reply { code, lines }));
            }
        }
    }

    /// Reads one reply; panics on close or timeout.
    pub fn read_reply(&mut self) -> Reply {
        match self.try_read_reply() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("sluis closed the connection instead of replying"),
            Err(e) => panic!("reading reply: {e}"),
        }
    }

    /// Reads one reply and asserts its prefix.
    pub fn expect_reply(&mut self, prefix: &str) -> Reply {
        let r = self.read_reply();
        assert!(r.starts(prefix), "expected reply {prefix:?}, got {r:?}");
        r
    }

    /// Sends `line` + CRLF and returns the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n"));
        self.read_reply()
    }

    /// Sends `line` + CRLF and asserts the reply starts with `prefix`.
    pub fn expect(&mut self, line: &str, prefix: &str) -> Reply {
        let r = self.cmd(line);
        assert!(
            r.starts(prefix),
            "after {:?}: expected {prefix:?}, got {r:?}",
            truncate(line)
        );
        r
    }

    /// DATA, the dot-stuffed body, CRLF.CRLF; returns the final reply.
    pub fn data(&mut self, body: &[u8]) -> Reply {
        self.expect("DATA", "354");
        self.send(dot_stuff(body));
        self.read_reply()
    }

    /// A whole transaction that must succeed; returns the queue id.
    pub fn send_mail(&mut self, from: &str, rcpts: &[&str], body: &[u8]) -> String {
        self.expect(&format!("MAIL FROM:<{from}>"), "250 2.1.0");
        for r in rcpts {
            self.expect(&format!("RCPT TO:<{r}>"), "250 2.1.5");
        }
        let reply = self.data(body);
        assert!(
            reply.starts("250 2.0.0"),
            "end of data: expected 250 2.0.0, got {reply:?}"
        );
        reply.queue_id()
    }

    /// True if the server closes the connection (EOF or reset) within `within`;
    /// a reply received first, or a timeout, makes this return false.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        self.set_timeout(within);
        match self.try_read_reply() {
            Ok(None) => true,
            Ok(Some(_)) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionAborted
            ),
        }
    }

    /// Sends STARTTLS (expects `220 2.0.0`) and performs the TLS handshake.
    /// Bytes received in plaintext after the 220 make this panic.
    pub fn starttls(mut self) -> Smtp {
        self.expect("STARTTLS", "220 2.0.0");
        self.upgrade()
    }

    /// TLS handshake on the current connection (after a 220 to STARTTLS was read).
    pub fn upgrade(self) -> Smtp {
        assert!(
            self.buf.is_empty(),
            "plaintext bytes after the STARTTLS reply: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth();
        let name = ServerName::try_from("sluis.test").unwrap().to_owned();
        let conn = ClientConnection::new(Arc::new(config), name).unwrap();
        let mut tls = StreamOwned::new(conn, self.tcp.try_clone().unwrap());
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .unwrap_or_else(|e| panic!("TLS handshake with sluis: {e}"));
        }
        Smtp {
            stream: Box::new(tls),
            tcp: self.tcp,
            buf: Vec::new(),
            greeting: self.greeting,
            tls: true,
        }
    }

    /// Half-closes our side.
    pub fn shutdown(&self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
    }
}

fn truncate(s: &str) -> String {
    if s.len() > 80 {
        format!("{}...({} bytes)", &s[..80], s.len())
    } else {
        s.to_string()
    }
}

/// SMTP transparency: doubles leading dots, makes sure the body ends with CRLF,
/// and appends the terminating `.\r\n`. The body's own line endings are kept.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut at_line_start = true;
    for &b in body {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
