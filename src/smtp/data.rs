//! Message content as it arrives: framing (DATA dot-termination or BDAT chunks), strict CRLF
//! line endings, limits, and the header block (trace header, loop check, marker handling).
//!
//! Only CRLF "." CRLF ends DATA. A bare LF or bare CR anywhere marks the message as refused;
//! it is never normalised into a line ending, so no `\n.\n` variant can smuggle a second message.

use crate::admit::{Admit, Admitted, Arrival};
use crate::headers::{is_field_start, split_fields, unfold};
use crate::marker::{self, Marker};
use crate::queue::{Envelope, Incoming, QueueStore};
use crate::smtp::replies::Reply;
use std::sync::Arc;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flags {
    pub bare_line_ending: bool,
    pub line_too_long: bool,
    pub too_big: bool,
    pub header_too_big: bool,
    pub looped: bool,
    pub write_error: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_line: usize,
    pub max_size: u64,
    pub max_header: u64,
    pub max_received: usize,
}

enum Part {
    Headers(Vec<u8>),
    Body,
    Discard,
}

/// Turns content lines into a queued message.
pub struct Assembler {
    store: QueueStore,
    marker: Marker,
    admit: Option<Arc<Admit>>,
    _arrival: Option<Arrival>,
    env: Envelope,
    trace: Vec<u8>,
    limits: Limits,
    part: Part,
    incoming: Option<Incoming>,
    size: u64,
    pub flags: Flags,
    // line state
    partial: Vec<u8>,
    partial_overflow: bool,
    prev_crlf: bool,
}

pub enum Fed {
    /// All input consumed; more is needed.
    More,
    /// End of data found after this many bytes of the input.
    End(usize),
}

impl Assembler {
    pub fn new(
        store: QueueStore,
        marker: Marker,
        admit: Option<Arc<Admit>>,
        env: Envelope,
        trace: Vec<u8>,
        limits: Limits,
    ) -> Self {
        Assembler {
            store,
            marker,
            _arrival: admit.as_ref().map(|a| a.arriving()),
            admit,
            env,
            trace,
            limits,
            part: Part::Headers(Vec::new()),
            incoming: None,
            size: 0,
            flags: Flags::default(),
            partial: Vec::new(),
            partial_overflow: false,
            prev_crlf: true,
        }
    }

    /// Feeds bytes in DATA framing (dot-stuffed, ended by CRLF "." CRLF).
    pub fn feed_dot(&mut self, input: &[u8]) -> Fed {
        self.feed(input, true)
    }

    /// Feeds one BDAT chunk; nothing in it ends the message.
    pub fn feed_chunk(&mut self, input: &[u8]) {
        self.feed(input, false);
    }

    fn feed(&mut self, input: &[u8], dot: bool) -> Fed {
        let mut pos = 0;
        while pos < input.len() {
            if self.partial.is_empty() && self.prev_crlf && !matches!(self.part, Part::Headers(_)) {
                let (used, end) = self.body_lines(&input[pos..], dot);
                pos += used;
                if end {
                    return Fed::End(pos);
                }
                if pos == input.len() {
                    return Fed::More;
                }
            }
            let Some(nl) = memchr::memchr(b'\n', &input[pos..]) else {
                self.hold_partial(&input[pos..]);
                return Fed::More;
            };
            let end = pos + nl + 1;
            let done = if self.partial.is_empty() {
                self.line(&input[pos..end], dot)
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&input[pos..end]);
                let overflow = std::mem::take(&mut self.partial_overflow);
                if overflow {
                    self.flags.line_too_long = true;
                }
                let done = self.line(&line, dot);
                line.clear();
                self.partial = line;
                done
            };
            pos = end;
            if done {
                return Fed::End(pos);
            }
        }
        Fed::More
    }

    /// The body's common case in bulk: whole CRLF lines within the line limit, written in runs
    /// between dot-stuffed lines. Stops before the first line that needs a closer look (a bare
    /// CR or LF, an overlong line) or is incomplete, and leaves it to `line`. Returns the bytes
    /// consumed and whether they ended DATA.
    fn body_lines(&mut self, buf: &[u8], dot: bool) -> (usize, bool) {
        let (mut run, mut ls) = (0usize, 0usize);
        let mut end = false;
        while let Some(p) = memchr::memchr2(b'\r', b'\n', &buf[ls..]).map(|p| ls + p) {
            // The line's only CR must be the one right before its LF.
            if buf[p] != b'\r'
                || buf.get(p + 1) != Some(&b'\n')
                || p + 2 - ls > self.limits.max_line
            {
                break;
            }
            if dot && buf[ls] == b'.' {
                self.body_run(&buf[run..ls]);
                if p == ls + 1 {
                    ls = p + 2;
                    run = ls;
                    end = true;
                    break;
                }
                run = ls + 1;
            }
            ls = p + 2;
        }
        self.body_run(&buf[run..ls]);
        (ls, end)
    }

    fn body_run(&mut self, run: &[u8]) {
        if run.is_empty() {
            return;
        }
        self.count(run.len() as u64);
        if matches!(self.part, Part::Body) {
            self.write(run);
        }
    }

    fn hold_partial(&mut self, rest: &[u8]) {
        if self.partial.len() + rest.len() > self.limits.max_line {
            // The line is refused anyway: keep only its last byte, which tells whether the
            // newline that eventually ends it is preceded by CR.
            self.partial_overflow = true;
            self.count(rest.len() as u64 + self.partial.len() as u64);
            self.partial.clear();
            if let Some(&b) = rest.last() {
                self.partial.push(b);
                self.size = self.size.saturating_sub(1);
            }
        } else {
            self.partial.extend_from_slice(rest);
        }
    }

    fn count(&mut self, n: u64) {
        self.size += n;
        if self.size > self.limits.max_size && !self.flags.too_big {
            self.flags.too_big = true;
            self.discard();
        }
    }

    /// Handles one line including its terminator; returns true at the end of DATA.
    fn line(&mut self, line: &[u8], dot: bool) -> bool {
        let n = line.len();
        let crlf = n >= 2 && line[n - 2] == b'\r';
        let body_end = if crlf { n - 2 } else { n - 1 };
        if dot && self.prev_crlf && line == b".\r\n" {
            return true;
        }
        if !crlf || memchr::memchr(b'\r', &line[..body_end]).is_some() {
            self.flags.bare_line_ending = true;
            self.discard();
        }
        if n > self.limits.max_line {
            self.flags.line_too_long = true;
            self.discard();
        }
        let content = if dot && self.prev_crlf && line.first() == Some(&b'.') {
            &line[1..]
        } else {
            line
        };
        self.prev_crlf = crlf;
        self.count(content.len() as u64);
        self.content(content);
        false
    }

    fn discard(&mut self) {
        self.part = Part::Discard;
        self.incoming = None;
    }

    fn content(&mut self, line: &[u8]) {
        match &mut self.part {
            Part::Discard => {}
            Part::Body => self.write(line),
            Part::Headers(buf) => {
                let is_header = if line[0] == b' ' || line[0] == b'\t' {
                    !buf.is_empty()
                } else {
                    is_field_start(line)
                };
                if is_header {
                    buf.extend_from_slice(line);
                    if buf.len() as u64 > self.limits.max_header {
                        self.flags.header_too_big = true;
                        self.discard();
                    }
                } else {
                    self.end_headers();
                    self.write(line);
                }
            }
        }
    }

    fn write(&mut self, data: &[u8]) {
        if let Some(inc) = self.incoming.as_mut()
            && let Err(e) = inc.write(data)
        {
            tracing::error!(id = %self.env.id, error = %e, "writing to the spool failed");
            self.flags.write_error = true;
            self.discard();
        }
    }

    fn end_headers(&mut self) {
        let Part::Headers(buf) = std::mem::replace(&mut self.part, Part::Body) else {
            return;
        };
        let fields = split_fields(&buf);
        let received = fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("received"))
            .count();
        if received > self.limits.max_received {
            self.flags.looped = true;
            self.discard();
            return;
        }
        let message_id = fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("message-id"))
            .map(|f| unfold(f.value));
        // Markers are taken out here whatever they say. One that may be this installation's
        // (young enough, naming these recipients) is kept aside in the envelope: only once the
        // whole content is there can it be checked (crate::marker), by admit or the relay.
        let rcpts: Vec<&str> = self
            .env
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        let now = crate::queue::now();
        for f in fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(marker::HEADER))
        {
            let value = unfold(f.value);
            match Marker::parse(&value) {
                Some(c) if self.marker.plausible(&c, &rcpts, now) && self.env.markers.len() < 4 => {
                    self.env.markers.push(value)
                }
                _ => {
                    tracing::info!(id = %self.env.id, "removed a foreign, forged or expired {} header", marker::HEADER)
                }
            }
        }
        self.env.message_id = message_id;
        let mut inc = match self.store.begin(&self.env) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(id = %self.env.id, error = %e, "cannot create spool file");
                self.flags.write_error = true;
                self.discard();
                return;
            }
        };
        let mut head = std::mem::take(&mut self.trace);
        for f in fields {
            if !f.name.eq_ignore_ascii_case(marker::HEADER) {
                head.extend_from_slice(f.raw);
            }
        }
        match inc.write(&head) {
            Ok(()) => self.incoming = Some(inc),
            Err(e) => {
                tracing::error!(id = %self.env.id, error = %e, "writing to the spool failed");
                self.flags.write_error = true;
                self.discard();
            }
        }
    }

    /// Ends the message (after the terminator, or the last BDAT chunk).
    pub async fn finish(mut self) -> Reply {
        if !self.partial.is_empty() {
            // BDAT content that does not end in CRLF: keep it, but a CR at its end is bare.
            let line = std::mem::take(&mut self.partial);
            if self.partial_overflow || line.len() > self.limits.max_line {
                self.flags.line_too_long = true;
                self.discard();
            }
            if memchr::memchr(b'\r', &line).is_some() {
                self.flags.bare_line_ending = true;
                self.discard();
            }
            self.count(line.len() as u64);
            self.content(&line);
        }
        if matches!(self.part, Part::Headers(_)) {
            self.end_headers();
        }
        let f = self.flags;
        if f.too_big {
            Reply::MessageTooBig
        } else if f.header_too_big {
            Reply::HeaderTooBig {
                max: self.limits.max_header,
            }
        } else if f.bare_line_ending {
            Reply::BareLineEnding
        } else if f.line_too_long {
            Reply::TextLineTooLong {
                max: self.limits.max_line,
            }
        } else if f.looped {
            Reply::Loop
        } else if f.write_error {
            Reply::LocalError
        } else {
            let Some(mut inc) = self.incoming.take() else {
                return Reply::LocalError;
            };
            if let Some(admit) = &self.admit {
                match admit.admit(&mut inc).await {
                    Ok(Admitted::Protected) => {
                        return Reply::Protected {
                            id: self.env.id.clone(),
                        };
                    }
                    Ok(Admitted::Queue) => {}
                    // Logged there; the client sends it again.
                    Err(_) => return Reply::LocalError,
                }
            }
            match self.store.commit(inc).await {
                Ok(id) => Reply::Queued { id },
                Err(e) => {
                    tracing::error!(id = %self.env.id, error = %e, "committing to the queue failed");
                    Reply::LocalError
                }
            }
        }
    }

    pub fn envelope(&self) -> &Envelope {
        &self.env
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
