//! Outbound SMTP: one transaction to one server, with STARTTLS, AUTH PLAIN, PIPELINING and
//! correct dot-stuffing, reporting an outcome per recipient.

use base64::Engine;
use rustls::pki_types::ServerName;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered(String),
    Temporary(String),
    Permanent(String),
}

impl Outcome {
    fn from_reply(r: &Response) -> Outcome {
        match r.code {
            200..=299 => Outcome::Delivered(r.text()),
            500..=599 => Outcome::Permanent(r.text()),
            _ => Outcome::Temporary(r.text()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Response {
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
}

pub struct ClientOptions {
    pub helo: String,
    pub require_tls: bool,
    pub auth: Option<(String, String)>,
    pub tls_verified: Arc<rustls::ClientConfig>,
    pub tls_any: Arc<rustls::ClientConfig>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

pub struct Transaction<'a> {
    pub from: &'a str,
    pub rcpts: Vec<&'a str>,
    pub size: u64,
    pub body_8bit: bool,
    pub smtputf8: bool,
}

/// A session-level failure: every recipient of the transaction gets this outcome.
pub type Fail = Outcome;

fn temp(e: impl std::fmt::Display) -> Fail {
    Outcome::Temporary(e.to_string())
}

struct Conn<S> {
    io: S,
    buf: Vec<u8>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    async fn send(&mut self, data: &[u8]) -> Result<(), Fail> {
        tokio::time::timeout(self.timeout, async {
            self.io.write_all(data).await?;
            self.io.flush().await
        })
        .await
        .map_err(|_| temp("timeout writing to server"))?
        .map_err(temp)
    }

    async fn read(&mut self) -> Result<Response, Fail> {
        let mut lines = Vec::new();
        loop {
            let line = loop {
                if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                    let l: Vec<u8> = self.buf.drain(..=nl).collect();
                    break String::from_utf8_lossy(&l).trim_end().to_string();
                }
                if self.buf.len() > 64 * 1024 {
                    return Err(temp("server reply too long"));
                }
                let n = tokio::time::timeout(self.timeout, self.io.read_buf(&mut self.buf))
                    .await
                    .map_err(|_| temp("timeout waiting for server reply"))?
                    .map_err(temp)?;
                if n == 0 {
                    return Err(temp("connection closed by server"));
                }
            };
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(|| temp(format!("malformed reply: {line:.100}")))?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if !more {
                return Ok(Response { code, lines });
            }
        }
    }

    async fn command(&mut self, cmd: &str) -> Result<Response, Fail> {
        self.send(cmd.as_bytes()).await?;
        self.read().await
    }
}

#[derive(Default)]
struct Caps {
    starttls: bool,
    pipelining: bool,
    eightbit: bool,
    smtputf8: bool,
    size: bool,
    auth_plain: bool,
}

fn caps(r: &Response) -> Caps {
    let mut c = Caps::default();
    for l in r.lines.iter().skip(1) {
        let up = l.to_ascii_uppercase();
        let kw = up.split_whitespace().next().unwrap_or("");
        match kw {
            "STARTTLS" => c.starttls = true,
            "PIPELINING" => c.pipelining = true,
            "8BITMIME" => c.eightbit = true,
            "SMTPUTF8" => c.smtputf8 = true,
            "SIZE" => c.size = true,
            "AUTH" => c.auth_plain = up.split_whitespace().any(|m| m == "PLAIN"),
            _ => {}
        }
    }
    c
}

/// Anything the session can run over: plain TCP or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An open, greeted (and where possible encrypted and authenticated) SMTP connection that can
/// carry several transactions, one after another.
pub struct Connection {
    c: Conn<Box<dyn Stream>>,
    caps: Caps,
    pub transactions: u32,
}

impl Connection {
    pub async fn open(
        addr: SocketAddr,
        server_name: &str,
        opts: &ClientOptions,
    ) -> Result<Connection, Fail> {
        let stream = tokio::time::timeout(opts.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| temp(format!("connect to {addr} timed out")))?
            .map_err(|e| temp(format!("connect to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        let mut c = Conn {
            io: stream,
            buf: Vec::with_capacity(4096),
            timeout: opts.command_timeout,
        };
        let greeting = c.read().await?;
        if greeting.code != 220 {
            return Err(Outcome::from_reply(&greeting));
        }
        let ehlo = format!("EHLO {}\r\n", opts.helo);
        let mut r = c.command(&ehlo).await?;
        if r.code >= 500 {
            r = c.command(&format!("HELO {}\r\n", opts.helo)).await?;
        }
        if r.code != 250 {
            return Err(Outcome::from_reply(&r));
        }
        let cp = caps(&r);
        let plain = |c: Conn<TcpStream>, caps: Caps| Connection {
            c: Conn {
                io: Box::new(c.io) as Box<dyn Stream>,
                buf: c.buf,
                timeout: c.timeout,
            },
            caps,
            transactions: 0,
        };
        if !cp.starttls {
            if opts.require_tls {
                let _ = c.command("QUIT\r\n").await;
                return Err(temp(format!(
                    "{server_name} does not offer STARTTLS, which is required"
                )));
            }
            if opts.auth.is_some() {
                let _ = c.command("QUIT\r\n").await;
                return Err(temp("refusing to send credentials without TLS"));
            }
            return Ok(plain(c, cp));
        }
        let r = c.command("STARTTLS\r\n").await?;
        if r.code != 220 {
            if opts.require_tls || opts.auth.is_some() {
                return Err(temp(format!("STARTTLS refused: {}", r.text())));
            }
            return Ok(plain(c, cp));
        }
        let config = if opts.require_tls {
            opts.tls_verified.clone()
        } else {
            opts.tls_any.clone()
        };
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|_| temp(format!("'{server_name}' is not a valid TLS server name")))?;
        let tls = tokio::time::timeout(
            opts.command_timeout,
            tokio_rustls::TlsConnector::from(config).connect(name, c.io),
        )
        .await
        .map_err(|_| temp("TLS handshake timed out"))?
        .map_err(|e| temp(format!("TLS handshake with {server_name}: {e}")))?;
        let mut c = Conn {
            io: Box::new(tls) as Box<dyn Stream>,
            buf: Vec::with_capacity(4096),
            timeout: opts.command_timeout,
        };
        let r = c.command(&ehlo).await?;
        if r.code != 250 {
            return Err(Outcome::from_reply(&r));
        }
        let cp = caps(&r);
        if let Some((user, pass)) = &opts.auth {
            if !cp.auth_plain {
                return Err(temp(format!("{server_name} does not offer AUTH PLAIN")));
            }
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
            let r = c.command(&format!("AUTH PLAIN {token}\r\n")).await?;
            if r.code != 235 {
                // A wrong password is the admin's to fix; retrying keeps the mail queued meanwhile.
                return Err(temp(format!("authentication failed: {}", r.text())));
            }
        }
        Ok(Connection {
            c,
            caps: cp,
            transactions: 0,
        })
    }

    /// Ends the session politely.
    pub async fn quit(mut self) {
        let _ = self.c.command("QUIT\r\n").await;
    }

    /// Runs one mail transaction. Ok: one outcome per recipient and the connection is ready for
    /// the next transaction. Err: the connection is unusable; the error applies to every recipient.
    pub async fn send(
        &mut self,
        tx: &Transaction<'_>,
        mut body: mpsc::Receiver<io::Result<Vec<u8>>>,
    ) -> Result<Vec<Outcome>, Fail> {
        self.transactions += 1;
        let c = &mut self.c;
        let cp = &self.caps;
        if tx.smtputf8 && !cp.smtputf8 {
            return Ok(vec![
                Outcome::Permanent(
                    "553 5.6.7 the next hop does not support SMTPUTF8, which this message needs"
                        .into(),
                );
                tx.rcpts.len()
            ]);
        }
        let mut mail = format!("MAIL FROM:<{}>", tx.from);
        if cp.size {
            mail.push_str(&format!(" SIZE={}", tx.size));
        }
        if tx.body_8bit && cp.eightbit {
            mail.push_str(" BODY=8BITMIME");
        }
        if tx.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let mut outcomes = Vec::with_capacity(tx.rcpts.len());
        let mail_reply;
        if cp.pipelining {
            let mut batch = mail.into_bytes();
            for r in &tx.rcpts {
                batch.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
            }
            batch.extend_from_slice(b"DATA\r\n");
            c.send(&batch).await?;
            mail_reply = c.read().await?;
            for _ in &tx.rcpts {
                outcomes.push(Outcome::from_reply(&c.read().await?));
            }
        } else {
            mail_reply = c.command(&mail).await?;
            if mail_reply.code == 250 {
                for r in &tx.rcpts {
                    outcomes.push(Outcome::from_reply(
                        &c.command(&format!("RCPT TO:<{r}>\r\n")).await?,
                    ));
                }
            }
        }
        if mail_reply.code != 250 {
            if cp.pipelining {
                let _ = c.read().await?; // the DATA reply
            }
            let r = c.command("RSET\r\n").await?;
            if r.code != 250 {
                return Err(temp(format!("RSET refused: {}", r.text())));
            }
            return Ok(vec![Outcome::from_reply(&mail_reply); tx.rcpts.len()]);
        }
        let accepted = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Delivered(_)))
            .count();
        let data_reply = if cp.pipelining {
            c.read().await?
        } else if accepted > 0 {
            c.command("DATA\r\n").await?
        } else {
            Response {
                code: 554,
                lines: vec![],
            }
        };
        if accepted == 0 || data_reply.code != 354 {
            let r = c.command("RSET\r\n").await?;
            if r.code != 250 {
                return Err(temp(format!("RSET refused: {}", r.text())));
            }
            if accepted > 0 {
                let o = Outcome::from_reply(&data_reply);
                return Ok(outcomes
                    .into_iter()
                    .map(|x| match x {
                        Outcome::Delivered(_) => o.clone(),
                        other => other,
                    })
                    .collect());
            }
            return Ok(outcomes);
        }
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::with_capacity(70 * 1024);
        while let Some(chunk) = body.recv().await {
            let chunk = chunk.map_err(|e| temp(format!("reading queued message: {e}")))?;
            out.clear();
            stuffer.push(&chunk, &mut out);
            c.send(&out).await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        c.send(&out).await?;
        let end = c.read().await?;
        let result = Outcome::from_reply(&end);
        Ok(outcomes
            .into_iter()
            .map(|o| match o {
                Outcome::Delivered(_) => result.clone(),
                other => other,
            })
            .collect())
    }
}

/// Dot-stuffs a CRLF message across chunk boundaries and terminates it.
#[derive(Default)]
pub struct DotStuffer {
    mid_line: bool,
    last_cr: bool,
    any: bool,
}

impl DotStuffer {
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            if !self.mid_line && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            self.mid_line = !(b == b'\n' && self.last_cr);
            self.last_cr = b == b'\r';
            self.any = true;
        }
    }

    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.any && self.mid_line {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuff(chunks: &[&[u8]]) -> Vec<u8> {
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn dots_at_line_start_are_doubled_across_chunks() {
        assert_eq!(stuff(&[b".a\r\nb\r\n.\r\n"]), b"..a\r\nb\r\n..\r\n.\r\n");
        assert_eq!(stuff(&[b"a\r", b"\n", b".b\r\n"]), b"a\r\n..b\r\n.\r\n");
        assert_eq!(stuff(&[b"no newline"]), b"no newline\r\n.\r\n");
        assert_eq!(stuff(&[]), b".\r\n");
        assert_eq!(stuff(&[b"x.\r\n"]), b"x.\r\n.\r\n");
    }
}
