//! Inspection: decode every MIME part of a message, extract text from attachments (PDF, office
//! documents, RTF, HTML, archives, nested messages ...), normalise it for matching, and report
//! whatever could not be examined as *unscannable*. The policy engine matches on the result.
//!
//! `inspect` never panics and never runs (much) beyond `Limits::max_time`: parsing runs on a
//! worker thread under `catch_unwind`, and every step checks the deadline.

mod archive;
pub(crate) mod body;
mod extract;
mod fields;
mod html;
mod mime;
mod normalize;
mod office;
mod pdf;
mod rtf;
mod shadow;
mod skeleton;
mod text;
mod transfer;
mod workers;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bounds;
#[cfg(test)]
mod tests_transfer;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use normalize::normalize;

/// Bounds for one message's inspection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Maximum nesting of containers (attached messages, archives, gzip) below the message.
    pub max_depth: usize,
    /// Maximum number of MIME parts plus archive entries.
    pub max_parts: usize,
    /// Maximum total of decoded / decompressed bytes examined.
    pub max_total_bytes: u64,
    /// Maximum decompressed / compressed ratio for an archive entry or gzip stream.
    pub max_ratio: u64,
    /// Maximum wall-clock time for the whole message.
    pub max_time: Duration,
    /// Maximum total of extracted text kept (bytes, after normalisation).
    pub max_text_bytes: usize,
    /// Decoded attachments of the top-level message kept in the result, up to this many bytes
    /// in all, for protection to seal without decoding them again (0: none kept).
    pub keep_decoded: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 5,
            max_parts: 1000,
            max_total_bytes: 200 * 1024 * 1024,
            max_ratio: 100,
            max_time: Duration::from_secs(20),
            max_text_bytes: 20 * 1024 * 1024,
            keep_decoded: 0,
        }
    }
}

/// A piece of normalised text and where it came from ("subject", "body", "attachment a.pdf").
#[derive(Debug, Clone)]
pub struct Text {
    pub origin: String,
    pub text: String,
}

/// A MIME attachment (also those of attached messages; not the entries of archives).
#[derive(Debug, Clone)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
    pub origin: String,
}

/// Something that could not be examined, and why.
#[derive(Debug, Clone)]
pub struct Unscannable {
    pub origin: String,
    pub reason: String,
}

/// The result of inspecting one message.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    /// The decoded subject, not normalised.
    pub subject: String,
    pub texts: Vec<Text>,
    /// Raw views of attachments (their bytes and inflated streams, normalised), by the origin
    /// of the file: a second line of defence for what extraction missed (see `shadow.rs`).
    pub shadows: Vec<Text>,
    pub attachments: Vec<Attachment>,
    pub unscannable: Vec<Unscannable>,
    /// See `Limits::keep_decoded`.
    pub decoded: Vec<Decoded>,
}

/// A transfer-decoded attachment body, named by where its encoded form lies in the message.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// Byte range of the encoded body in the original message.
    pub span: (usize, usize),
    /// Shared: protection may hand it on to be checksummed after the reply.
    pub bytes: Arc<Vec<u8>>,
}

/// Messages up to this size are inspected on the calling thread.
const INLINE_MAX: usize = 256 * 1024;

/// Inspect a raw RFC 5322 message. Blocking: run it on a blocking thread.
/// Never panics, never hangs beyond `max_time` (plus a small grace period).
pub fn inspect(message: &[u8], limits: &Limits) -> Inspection {
    if message.len() <= INLINE_MAX {
        return inspect_here(message, limits, Instant::now());
    }
    inspect_shared(&Arc::new(message.to_vec()), limits)
}

/// `inspect` for a message already shared: a large one goes to the worker thread uncopied.
pub fn inspect_shared(message: &Arc<Vec<u8>>, limits: &Limits) -> Inspection {
    let started = Instant::now();
    // Most mail is small: a thread of its own per message costs more than inspecting it.
    // The walk checks the deadline at every step and PDFs get their own thread anyway.
    if message.len() <= INLINE_MAX {
        return inspect_here(message, limits, started);
    }
    let owned = message.clone();
    let lim = limits.clone();
    // Grace: the worker checks the deadline itself; this only catches a stuck parser.
    let wait = limits
        .max_time
        .saturating_add(Duration::from_secs(2))
        .saturating_sub(started.elapsed());
    let outcome = match workers::run(move || inspect_inner(&owned, &lim, started), wait) {
        Ok(i) => Ok(i),
        Err(workers::RunError::NoThread) => {
            catch_unwind(AssertUnwindSafe(|| inspect_inner(message, limits, started)))
                .map_err(|_| "internal error while inspecting the message")
        }
        Err(workers::RunError::Panicked) => Err("internal error while inspecting the message"),
        Err(workers::RunError::TimedOut) => Err("time limit exceeded while inspecting the message"),
    };
    match outcome {
        Ok(i) => i,
        Err(reason) => Inspection {
            unscannable: vec![Unscannable {
                origin: "message".into(),
                reason: reason.into(),
            }],
            ..Default::default()
        },
    }
}

fn inspect_here(message: &[u8], limits: &Limits, started: Instant) -> Inspection {
    match catch_unwind(AssertUnwindSafe(|| inspect_inner(message, limits, started))) {
        Ok(i) => i,
        Err(_) => Inspection {
            unscannable: vec![Unscannable {
                origin: "message".into(),
                reason: "internal error while inspecting the message".into(),
            }],
            ..Default::default()
        },
    }
}

fn inspect_inner(message: &[u8], limits: &Limits, started: Instant) -> Inspection {
    let mut ctx = Ctx::new(limits, started);
    mime::inspect_message(&mut ctx, message);
    ctx.out
}

/// Why a bound stopped the work.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Bound {
    #[error("time limit of {0} s exceeded")]
    Time(u64),
    #[error("part limit of {0} parts exceeded")]
    Parts(usize),
    #[error("size limit of {0} decompressed bytes exceeded")]
    Bytes(u64),
    #[error("nesting depth limit of {0} exceeded")]
    Depth(usize),
}

/// Running state of one inspection.
pub(crate) struct Ctx {
    pub limits: Limits,
    pub deadline: Instant,
    pub parts: usize,
    pub total_bytes: u64,
    pub text_bytes: usize,
    pub text_limit_hit: bool,
    /// Bytes of raw views kept, within their own `max_text_bytes`.
    pub shadow_bytes: usize,
    /// Set once a global bound (time, parts, bytes) is hit: further work stops.
    pub stopped: Option<Bound>,
    pub out: Inspection,
}

impl Ctx {
    pub fn new(limits: &Limits, started: Instant) -> Ctx {
        Ctx {
            limits: limits.clone(),
            deadline: started + limits.max_time,
            parts: 0,
            total_bytes: 0,
            text_bytes: 0,
            text_limit_hit: false,
            shadow_bytes: 0,
            stopped: None,
            out: Inspection::default(),
        }
    }

    /// Records a piece of text (normalised here), within `max_text_bytes`.
    pub fn add_text(&mut self, origin: &str, raw: &str) {
        let mut text = normalize(raw);
        if text.is_empty() {
            return;
        }
        let room = self.limits.max_text_bytes.saturating_sub(self.text_bytes);
        if text.len() > room {
            let mut cut = room;
            while cut > 0 && !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            if !self.text_limit_hit {
                self.text_limit_hit = true;
                let reason = format!(
                    "text limit of {} bytes reached: the rest was not examined",
                    self.limits.max_text_bytes
                );
                self.unscannable(origin, &reason);
            }
            if text.is_empty() {
                return;
            }
        }
        self.text_bytes += text.len();
        self.out.texts.push(Text {
            origin: origin.to_string(),
            text,
        });
    }

    /// Records a raw view of a file's bytes (see `shadow.rs`).
    pub fn add_shadow(&mut self, origin: &str, bytes: &[u8]) {
        // Projecting and normalising never makes text longer than the bytes it came from
        // (ASCII one to one, UTF-8 at most NFKC's growth, cut below): no more than the room
        // left is read.
        let room = self.limits.max_text_bytes.saturating_sub(self.shadow_bytes);
        if room > 0 {
            let bytes = &bytes[..bytes.len().min(room)];
            self.add_shadow_text(origin, &shadow::project(bytes));
        }
    }

    /// Records raw-view text. Past the budget the rest is left out without a mark: the file's
    /// extraction, which decides whether it was examined, is not affected.
    pub fn add_shadow_text(&mut self, origin: &str, raw: &str) {
        let room = self.limits.max_text_bytes.saturating_sub(self.shadow_bytes);
        if room == 0 {
            return;
        }
        let mut text = normalize(raw);
        if text.len() > room {
            let mut cut = room;
            while cut > 0 && !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        if text.is_empty() {
            return;
        }
        self.shadow_bytes += text.len();
        self.out.shadows.push(Text {
            origin: origin.to_string(),
            text,
        });
    }

    pub fn unscannable(&mut self, origin: &str, reason: &str) {
        self.out.unscannable.push(Unscannable {
            origin: origin.to_string(),
            reason: reason.to_string(),
        });
    }

    /// Marks a global bound as hit (once) and records it.
    pub fn stop(&mut self, origin: &str, bound: Bound) {
        if self.stopped.is_none() {
            self.unscannable(origin, &format!("{bound}; the rest was not examined"));
            self.stopped = Some(bound);
        }
    }

    /// Checks time; returns false (after recording) when work must stop.
    pub fn alive(&mut self, origin: &str) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        if Instant::now() >= self.deadline {
            self.stop(origin, Bound::Time(self.limits.max_time.as_secs()));
            return false;
        }
        true
    }

    /// Counts one more part or archive entry.
    pub fn count_part(&mut self, origin: &str) -> bool {
        if !self.alive(origin) {
            return false;
        }
        self.parts += 1;
        if self.parts > self.limits.max_parts {
            self.stop(origin, Bound::Parts(self.limits.max_parts));
            return false;
        }
        true
    }

    /// Bytes still allowed before `max_total_bytes`.
    pub fn bytes_left(&self) -> u64 {
        self.limits.max_total_bytes.saturating_sub(self.total_bytes)
    }

    /// Charges decoded bytes against `max_total_bytes`.
    pub fn charge(&mut self, origin: &str, n: u64) -> bool {
        self.total_bytes = self.total_bytes.saturating_add(n);
        if self.total_bytes > self.limits.max_total_bytes {
            self.stop(origin, Bound::Bytes(self.limits.max_total_bytes));
            return false;
        }
        true
    }

    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Joins a nested origin: "attachment a.zip" + "b.docx" -> "attachment a.zip / b.docx".
pub(crate) fn join(prefix: &str, item: &str) -> String {
    if prefix.is_empty() {
        item.to_string()
    } else {
        format!("{prefix} / {item}")
    }
}
