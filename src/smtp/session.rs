//! One SMTP connection: an explicit state machine over a buffered, pipelined command stream.

use super::Shared;
use super::address::{check_address, ip_literal, sanitize, source_routed};
use super::data::{Assembler, Fed};
use super::replies::{self, Reply};
use crate::queue::{Envelope, Recipient, new_id, now};
use smtp_proto::{MAIL_BODY_8BITMIME, MAIL_RET_HDRS, MAIL_SMTPUTF8, Request};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where the conversation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// No EHLO/HELO yet (also right after STARTTLS).
    Connected,
    /// Greeted; no transaction.
    Ready,
    /// MAIL accepted; collecting recipients.
    Mail(Transaction),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Transaction {
    from: String,
    flags: u64,
    env_id: Option<String>,
    rcpts: Vec<Recipient>,
}

pub enum End {
    Closed,
    StartTls,
}

pub struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    relay_allowed: bool,
    pub tls: bool,
    state: State,
    helo: String,
    esmtp: bool,
    /// Messages accepted on this connection (kept across STARTTLS).
    pub messages: usize,
    /// BDAT content of the current transaction, across chunks.
    bdat: Option<Assembler>,
    bdat_failed: bool,
    out: Vec<u8>,
}

enum Step {
    Continue,
    Data,
    Bdat { size: usize, last: bool },
    StartTls,
    Close,
}

impl Session {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Self {
        let ip = match peer.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer.ip()),
            ip => ip,
        };
        let relay_allowed = shared.relay_networks.iter().any(|n| n.contains(&ip));
        Session {
            shared,
            peer,
            relay_allowed,
            tls: false,
            state: State::Connected,
            helo: String::new(),
            esmtp: false,
            messages: 0,
            bdat: None,
            bdat_failed: false,
            out: Vec::with_capacity(1024),
        }
    }

    fn reply(&mut self, r: Reply) {
        r.write(&mut self.out);
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> io::Result<()> {
        if !self.out.is_empty() {
            io.write_all(&self.out).await?;
            io.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads more input, honouring the idle timeout and shutdown. Ok(false) = peer gone.
    async fn read_more<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        buf: &mut Vec<u8>,
        in_data: bool,
    ) -> io::Result<bool> {
        self.flush(io).await?;
        let idle = self.shared.cfg.smtp.idle_timeout.get();
        let mut shutdown = self.shared.shutdown.clone();
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        tokio::select! {
            r = tokio::time::timeout(idle, io.read_buf(buf)) => match r {
                Ok(Ok(0)) => Ok(false),
                Ok(Ok(_)) => Ok(true),
                Ok(Err(e)) => Err(e),
                Err(_) => {
                    self.reply(Reply::Timeout { host: self.shared.cfg.smtp.hostname.clone() });
                    self.flush(io).await?;
                    Ok(false)
                }
            },
            _ = async { let _ = shutdown.wait_for(|s| *s).await; }, if !in_data => {
                self.reply(Reply::ShuttingDown { host: self.shared.cfg.smtp.hostname.clone() });
                self.flush(io).await?;
                Ok(false)
            }
        }
    }

    /// Runs the session until it ends or asks for TLS. `buf` holds unread input.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        buf: &mut Vec<u8>,
    ) -> io::Result<End> {
        let max_line = self.shared.cfg.smtp.max_line_length;
        let mut skipping_long_line = false;
        loop {
            // Every complete command line in the buffer, in order (PIPELINING).
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                if skipping_long_line {
                    buf.drain(..=nl);
                    skipping_long_line = false;
                    continue;
                }
                let line: Vec<u8> = buf.drain(..=nl).collect();
                if line.len() > max_line {
                    self.reply(Reply::LineTooLong);
                    continue;
                }
                match self.command(&line) {
                    Step::Continue => {}
                    Step::Close => {
                        self.flush(io).await?;
                        return Ok(End::Closed);
                    }
                    Step::StartTls => {
                        self.flush(io).await?;
                        // Anything pipelined after STARTTLS was sent in clear text: drop it.
                        buf.clear();
                        return Ok(End::StartTls);
                    }
                    Step::Data => {
                        if !self.receive_data(io, buf).await? {
                            return Ok(End::Closed);
                        }
                    }
                    Step::Bdat { size, last } => {
                        if !self.receive_bdat(io, buf, size, last).await? {
                            return Ok(End::Closed);
                        }
                    }
                }
            }
            if buf.len() > max_line {
                self.reply(Reply::LineTooLong);
                buf.clear();
                skipping_long_line = true;
            }
            if !self.read_more(io, buf, false).await? {
                return Ok(End::Closed);
            }
        }
    }

    fn command(&mut self, line: &[u8]) -> Step {
        let req = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => {
                let r = match e {
                    smtp_proto::Error::UnknownCommand => Reply::UnknownCommand,
                    smtp_proto::Error::InvalidSenderAddress
                    | smtp_proto::Error::InvalidRecipientAddress => Reply::InvalidAddress,
                    smtp_proto::Error::SyntaxError { syntax } => Reply::SyntaxError(syntax),
                    smtp_proto::Error::InvalidParameter { param } => Reply::SyntaxError(param),
                    smtp_proto::Error::UnsupportedParameter { param } => {
                        Reply::UnsupportedParameter(sanitize(&param))
                    }
                    _ => Reply::SyntaxError("command"),
                };
                self.reply(r);
                return Step::Continue;
            }
        };
        let host = self.shared.cfg.smtp.hostname.clone();
        match req {
            Request::Ehlo { host: client } => {
                self.greeted(&client, true);
                let offer_tls = !self.tls && self.shared.tls.is_some();
                replies::ehlo(
                    &mut self.out,
                    &host,
                    &sanitize(&client),
                    self.shared.cfg.smtp.max_message_size.bytes(),
                    offer_tls,
                );
            }
            Request::Helo { host: client } => {
                self.greeted(&client, false);
                self.reply(Reply::HeloOk { host });
            }
            Request::Lhlo { .. } => self.reply(Reply::UnknownCommand),
            Request::Mail { from } => {
                if self.mail(line, from) {
                    return Step::Close;
                }
            }
            Request::Rcpt { to } => self.rcpt(line, to),
            Request::Data => {
                return match self.can_receive() {
                    Ok(()) => {
                        self.reply(Reply::StartData);
                        Step::Data
                    }
                    Err(r) => {
                        self.reply(r);
                        Step::Continue
                    }
                };
            }
            Request::Bdat {
                chunk_size,
                is_last,
            } => {
                return Step::Bdat {
                    size: chunk_size,
                    last: is_last,
                };
            }
            Request::Rset => {
                self.reset();
                self.reply(Reply::Ok);
            }
            Request::Noop { .. } => self.reply(Reply::Ok),
            Request::Quit => {
                self.reply(Reply::Bye);
                return Step::Close;
            }
            Request::Vrfy { .. } | Request::Expn { .. } => self.reply(Reply::Vrfy),
            Request::Help { .. } => self.reply(Reply::Help),
            Request::StartTls => {
                // RFC 3207: STARTTLS takes no parameters.
                if !line.trim_ascii().eq_ignore_ascii_case(b"STARTTLS") {
                    self.reply(Reply::SyntaxError("STARTTLS takes no parameters"));
                } else if self.tls {
                    self.reply(Reply::AlreadyTls);
                } else if self.shared.tls.is_none() {
                    self.reply(Reply::TlsUnavailable);
                } else if matches!(self.state, State::Mail(_)) {
                    self.reply(Reply::BadSequence("STARTTLS inside a mail transaction"));
                } else {
                    self.reply(Reply::StartTls);
                    return Step::StartTls;
                }
            }
            Request::Auth { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.reply(Reply::UnknownCommand),
        }
        Step::Continue
    }

    fn greeted(&mut self, client: &str, esmtp: bool) {
        self.reset();
        self.helo = sanitize(client);
        self.esmtp = esmtp;
        self.state = State::Ready;
    }

    fn reset(&mut self) {
        if !matches!(self.state, State::Connected) {
            self.state = State::Ready;
        }
        self.bdat = None;
        self.bdat_failed = false;
    }

    /// MAIL FROM; returns true when the connection must close.
    fn mail(&mut self, line: &[u8], from: smtp_proto::MailFrom<std::borrow::Cow<'_, str>>) -> bool {
        let shared = self.shared.clone();
        let cfg = &shared.cfg.smtp;
        let refuse = |s: &mut Self, r: Reply| {
            s.reply(r);
            false
        };
        match self.state {
            State::Connected => return refuse(self, Reply::BadSequence("send EHLO/HELO first")),
            State::Mail(_) => return refuse(self, Reply::BadSequence("sender already given")),
            State::Ready => {}
        }
        if cfg.require_tls && !self.tls {
            return refuse(self, Reply::TlsRequired);
        }
        if self.messages >= cfg.max_messages_per_connection {
            self.reply(Reply::TooManyMessages);
            return true;
        }
        if source_routed(line) {
            return refuse(self, Reply::BadAddress("Source-routed"));
        }
        let address = from.address.to_string();
        if let Some(r) = check_address(&address, from.flags & MAIL_SMTPUTF8 != 0, true) {
            return refuse(self, r);
        }
        if from.size as u64 > cfg.max_message_size.bytes() {
            return refuse(self, Reply::MessageTooBig);
        }
        let free = crate::fsutil::free_space(&shared.data_dir).unwrap_or(0);
        if free < cfg.min_free_space.bytes().saturating_add(from.size as u64) {
            tracing::warn!(free, "refusing mail: data directory nearly full");
            return refuse(self, Reply::InsufficientStorage);
        }
        self.state = State::Mail(Transaction {
            from: address,
            flags: from.flags,
            env_id: from.env_id.map(|s| s.to_string()),
            rcpts: Vec::new(),
        });
        self.reply(Reply::MailOk);
        false
    }

    fn rcpt(&mut self, line: &[u8], to: smtp_proto::RcptTo<std::borrow::Cow<'_, str>>) {
        let max = self.shared.cfg.smtp.max_recipients;
        let State::Mail(tx) = &mut self.state else {
            return self.reply(Reply::BadSequence("need MAIL command"));
        };
        if source_routed(line) {
            return Reply::BadAddress("Source-routed").write(&mut self.out);
        }
        let address = to.address.to_string();
        if address.is_empty() {
            return Reply::InvalidAddress.write(&mut self.out);
        }
        if let Some(r) = check_address(&address, tx.flags & MAIL_SMTPUTF8 != 0, false) {
            return r.write(&mut self.out);
        }
        if !self.relay_allowed {
            tracing::warn!(peer = %self.peer, rcpt = %address, "relay denied");
            return Reply::RelayDenied {
                rcpt: sanitize(&address),
            }
            .write(&mut self.out);
        }
        if tx.rcpts.len() >= max {
            return Reply::TooManyRecipients.write(&mut self.out);
        }
        tx.rcpts.push(Recipient {
            address,
            orcpt: to.orcpt.map(|s| s.to_string()),
            notify: to.flags,
        });
        Reply::RcptOk.write(&mut self.out);
    }

    fn can_receive(&self) -> Result<(), Reply> {
        match &self.state {
            State::Mail(tx) if !tx.rcpts.is_empty() => Ok(()),
            State::Mail(_) => Err(Reply::BadSequence("need RCPT command")),
            _ => Err(Reply::BadSequence("need MAIL command")),
        }
    }

    /// The envelope and the assembler for the current transaction.
    fn start_message(&mut self) -> Assembler {
        let State::Mail(tx) = &self.state else {
            unreachable!("checked by can_receive")
        };
        let cfg = &self.shared.cfg.smtp;
        let env = Envelope {
            id: new_id(),
            mail_from: tx.from.clone(),
            recipients: tx.rcpts.clone(),
            received_at: now(),
            client_ip: self.peer.ip().to_string(),
            helo: self.helo.clone(),
            tls: self.tls,
            body_8bit: tx.flags & MAIL_BODY_8BITMIME != 0,
            smtputf8: tx.flags & MAIL_SMTPUTF8 != 0,
            env_id: tx.env_id.clone(),
            ret_headers_only: tx.flags & MAIL_RET_HDRS != 0,
            message_id: None,
            already_processed: false,
            markers: Vec::new(),
            internal: false,
            protected: None,
            decided: None,
        };
        let proto = match (self.esmtp, self.tls) {
            (false, false) => "SMTP",
            (false, true) => "SMTPS",
            (true, false) => "ESMTP",
            (true, true) => "ESMTPS",
        };
        let mut trace = format!(
            "Received: from {} ({})\r\n\tby {} (sluis) with {} id {}",
            self.helo,
            ip_literal(self.peer.ip()),
            cfg.hostname,
            proto,
            env.id
        );
        if let [only] = tx.rcpts.as_slice() {
            trace.push_str(&format!("\r\n\tfor <{}>", sanitize(&only.address)));
        }
        trace.push_str(&format!("; {}\r\n", chrono::Utc::now().to_rfc2822()));
        Assembler::new(
            self.shared.store.clone(),
            self.shared.marker.clone(),
            self.shared.admit.clone(),
            env,
            trace.into_bytes(),
            self.shared.limits,
        )
    }

    fn finished(&mut self, reply: Reply) {
        match &reply {
            Reply::Queued { id } => {
                self.messages += 1;
                let _ = self.shared.queued.send(id.clone());
                tracing::info!(id = %id, peer = %self.peer, "queued");
            }
            Reply::Protected { id } => {
                self.messages += 1;
                tracing::info!(id = %id, peer = %self.peer, "accepted; protected copies queued");
            }
            _ => {}
        }
        self.reply(reply);
        self.state = State::Ready;
        self.bdat = None;
        self.bdat_failed = false;
    }

    /// DATA content until CRLF.CRLF. Ok(false) = connection gone.
    async fn receive_data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        buf: &mut Vec<u8>,
    ) -> io::Result<bool> {
        let mut asm = self.start_message();
        loop {
            match asm.feed_dot(buf) {
                Fed::End(used) => {
                    buf.drain(..used);
                    break;
                }
                Fed::More => buf.clear(),
            }
            if !self.read_more(io, buf, true).await? {
                return Ok(false);
            }
        }
        let reply = asm.finish().await;
        self.finished(reply);
        Ok(true)
    }

    /// One BDAT chunk of `size` octets. Ok(false) = connection gone.
    async fn receive_bdat<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        buf: &mut Vec<u8>,
        size: usize,
        last: bool,
    ) -> io::Result<bool> {
        let precheck = self.can_receive();
        if precheck.is_ok() && self.bdat.is_none() && !self.bdat_failed {
            self.bdat = Some(self.start_message());
        }
        let mut left = size;
        loop {
            let take = left.min(buf.len());
            if let Some(asm) = self.bdat.as_mut() {
                asm.feed_chunk(&buf[..take]);
            }
            buf.drain(..take);
            left -= take;
            if left == 0 {
                break;
            }
            if !self.read_more(io, buf, true).await? {
                return Ok(false);
            }
        }
        if let Err(r) = precheck {
            // The chunk is consumed either way, so the stream stays in step.
            self.bdat_failed = true;
            self.reply(r);
            return Ok(true);
        }
        if last {
            match self.bdat.take() {
                Some(asm) => {
                    let reply = asm.finish().await;
                    self.finished(reply);
                }
                None => self.finished(Reply::BadSequence("transaction failed earlier")),
            }
        } else {
            self.reply(Reply::ChunkOk { octets: size });
        }
        Ok(true)
    }
}
