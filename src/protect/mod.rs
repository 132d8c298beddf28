//! Carrying out a `Protect` verdict: the attachments (and for a secure message the body) are
//! sealed into the store under a fresh data key, each recipient gets a personal link, and a
//! rewritten copy of the mail per recipient is built (and DKIM-signed) for the relay queue.
//!
//! Everything here is blocking (sealing, fsync, argon2): the relay runs it in `spawn_blocking`.
//! Nothing is handed back until the store is durable, so a copy never carries a link to content
//! that a crash could lose.

pub mod checksums;
pub mod controls;
pub mod inline;
pub mod parts;

use crate::dkim::{DkimError, Signer};
use crate::inspect::Decoded;
use crate::inspect::body::Parsed;
use crate::policy::decide::Decision;
use crate::policy::schema::{self, Settings, TagWords};
use crate::rewrite::{self, FileInfo};
use crate::store::{
    Auth, BlobId, BodyRecord, DataKey, Event, EventKind, FileRecord, Message, MessageId,
    PasswordDelivery, Protection, Recipient, RecipientKind, Store, StoreError,
};
use checksums::{Checksums, Job};
use chrono::{DateTime, Utc};
use mail_parser::Message as Mime;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ProtectError {
    #[error("the message cannot be parsed as MIME")]
    Parse,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("building the rewritten mail: {0}")]
    Build(std::io::Error),
    #[error("DKIM: {0}")]
    Dkim(#[from] DkimError),
    #[error("hashing the sender's password: {0}")]
    Hash(String),
}

/// What the relay knows about the message it asks to protect.
pub struct Request<'a> {
    pub original: &'a [u8],
    /// Envelope recipients, in envelope order.
    pub recipients: &'a [String],
    pub protection: schema::Protection,
    pub auth: schema::Auth,
    pub decision: &'a Decision,
    pub settings: &'a Settings,
    pub tags: &'a TagWords,
    /// Attachment bodies inspection decoded already (may be empty).
    pub decoded: &'a [Decoded],
    /// Unix seconds.
    pub now: i64,
}

#[derive(Debug)]
pub enum Outcome {
    /// Files protection asked for, but the message has no attachments and nothing sensitive in
    /// its text: it leaves as written.
    NothingToProtect,
    Protected(Protected),
}

#[derive(Debug)]
pub struct Protected {
    pub message: MessageId,
    pub protection: Protection,
    pub copies: Vec<Outgoing>,
    /// (index of the envelope recipient, why it gets nothing): an enhanced status reply.
    pub refused: Vec<(usize, String)>,
    /// Sender settings that were not honoured, for the log.
    pub ignored: Vec<String>,
}

/// One recipient's rewritten copy.
#[derive(Debug)]
pub struct Outgoing {
    /// Index into the request's recipients.
    pub rcpt: usize,
    /// Index into the stored message's recipients (the link's recipient).
    pub store_rcpt: u32,
    pub bytes: Vec<u8>,
}

pub struct Protector {
    pub store: Store,
    public_url: String,
    org_name: String,
    language: String,
    dkim: Option<Signer>,
    /// Where large files are checksummed after the reply; without it they are hashed at once.
    checksums: Option<Checksums>,
    /// Dutch notifications say 'u' instead of 'je'.
    formal: bool,
}

/// The reply for a recipient of an SMS-protected message without a phone number; the report
/// to the sender explains it in words (crate::relay::dsn).
pub const NO_PHONE: &str = "550 5.7.0 SMS authentication was chosen but this recipient has no phone number; nothing was sent to it";

/// A custom password must at least be this long (the confirmation page brings a real strength
/// check; a header from a script gets the plain rule).
const MIN_PASSWORD: usize = 10;

impl Protector {
    pub fn new(
        store: Store,
        public_url: &str,
        org_name: &str,
        language: &str,
        dkim: Option<Signer>,
    ) -> Protector {
        Protector {
            store,
            public_url: public_url.trim_end_matches('/').to_string(),
            org_name: org_name.to_string(),
            language: language.to_string(),
            dkim,
            checksums: None,
            formal: false,
        }
    }

    /// `[organisation] address_form = "u"`: notifications address recipients formally.
    pub fn with_formal_address(mut self, formal: bool) -> Protector {
        self.formal = formal;
        self
    }

    /// Checksums large files on `c`'s idle-priority helper instead of before the reply.
    pub fn with_checksums(mut self, c: Checksums) -> Protector {
        self.checksums = Some(c);
        self
    }

    /// The link a recipient's token opens.
    pub fn link(&self, token: &str) -> String {
        format!("{}/l/{token}", self.public_url)
    }

    pub fn protect(&self, req: &Request<'_>) -> Result<Outcome, ProtectError> {
        self.protect_with(req, None)
    }

    /// Like [`protect`](Self::protect), but hands the copies to `early` as soon as the
    /// metadata is durable and they are built, while the blobs may still be on their way to
    /// the disk (`Protected::copies` is then empty). The caller may make them durable in the
    /// queue meanwhile, but must not let one leave before this returns Ok, and must withdraw
    /// them when it returns an error. A copy kept by a crash before its blobs were durable
    /// finds them missing and is dropped by the relay (which checks before every attempt).
    pub fn protect_early(
        &self,
        req: &Request<'_>,
        early: &mut dyn FnMut(MessageId, Vec<Outgoing>),
    ) -> Result<Outcome, ProtectError> {
        self.protect_with(req, Some(early))
    }

    fn protect_with(
        &self,
        req: &Request<'_>,
        early: Option<&mut dyn FnMut(MessageId, Vec<Outgoing>)>,
    ) -> Result<Outcome, ProtectError> {
        let started = std::time::Instant::now();
        let r = self.seal_and_store(req, early);
        if matches!(r, Ok(Outcome::Protected(_))) {
            crate::metrics::get().sealed(started.elapsed());
        }
        r
    }

    fn seal_and_store(
        &self,
        req: &Request<'_>,
        mut early: Option<&mut dyn FnMut(MessageId, Vec<Outgoing>)>,
    ) -> Result<Outcome, ProtectError> {
        let decoded = Parsed::new(req.original).ok_or(ProtectError::Parse)?;
        let parsed = &decoded.msg;
        let inline = inline::kept(&decoded, req.decision);
        let files = parts::attachments(&decoded, req.decoded, &inline);
        let mut protection = match req.protection {
            schema::Protection::PublicFiles => Protection::PublicFiles,
            schema::Protection::SecureFiles => Protection::SecureFiles,
            schema::Protection::SecureMessage => Protection::SecureMessage,
        };
        // Files protection leaves the text and header fields in the mail: when the policy found
        // something there, only a secure message (which keeps no custom fields) protects it.
        let in_text = req.decision.findings.iter().any(|f| {
            f.origin == "subject" || f.origin.starts_with("body") || f.origin.starts_with("header ")
        });
        if protection != Protection::SecureMessage && in_text {
            protection = Protection::SecureMessage;
        }
        if protection != Protection::SecureMessage && files.is_empty() {
            // Only inline parts: what the sender asked to protect goes as a secure message.
            if req.decision.sender.requested().is_none() {
                return Ok(Outcome::NothingToProtect);
            }
            protection = Protection::SecureMessage;
        }
        let fs = controls::read(&req.decision.sender.controls, req.settings, req.now);
        let mut ignored = fs.ignored.clone();
        let subject =
            crate::policy::tags::parse_subject(parsed.subject().unwrap_or(""), req.tags).0;

        let (auth, password_hash) = match (protection, req.auth) {
            (Protection::PublicFiles, _) => (Auth::None, None),
            (_, schema::Auth::Sms) => (Auth::Sms, None),
            (_, schema::Auth::Password) => match &fs.password {
                Some(p) if p.chars().count() >= MIN_PASSWORD => {
                    let hash = argon2_hash(p)?;
                    (
                        Auth::Password {
                            delivery: PasswordDelivery::Other,
                        },
                        Some(hash),
                    )
                }
                other => {
                    if other.is_some() {
                        ignored.push(format!(
                            "X-Sluis-Password: shorter than {MIN_PASSWORD} characters; \
                             recipients get a generated password by mail instead"
                        ));
                    }
                    (
                        Auth::Password {
                            delivery: PasswordDelivery::Email,
                        },
                        None,
                    )
                }
            },
        };

        let (to, cc) = (addresses(parsed.to()), addresses(parsed.cc()));
        let mut recipients = Vec::new();
        let mut rcpt_of = Vec::new(); // store index -> envelope index
        let mut refused = Vec::new();
        for (i, addr) in req.recipients.iter().enumerate() {
            let phone = fs.phone_for(addr).map(str::to_string);
            if auth == Auth::Sms && phone.is_none() {
                refused.push((i, NO_PHONE.to_string()));
                continue;
            }
            let lower = addr.to_ascii_lowercase();
            let kind = if to.contains(&lower) {
                RecipientKind::To
            } else if cc.contains(&lower) {
                RecipientKind::Cc
            } else {
                RecipientKind::Bcc
            };
            rcpt_of.push(i);
            recipients.push(Recipient {
                address: addr.clone(),
                kind,
                phone,
                password_hash: password_hash.clone(),
                blocked: false,
            });
        }
        let id = MessageId::random();
        if recipients.is_empty() {
            return Ok(Outcome::Protected(Protected {
                message: id,
                protection,
                copies: Vec::new(),
                refused,
                ignored,
            }));
        }

        let body_message = match protection {
            Protection::SecureMessage => Some(
                parts::body_message(req.original, &decoded, &subject, &inline)
                    .map_err(ProtectError::Build)?,
            ),
            _ => None,
        };
        // Every blob gets its id now: the files in message order, then the body.
        let dek = DataKey::generate();
        let contents: Vec<(BlobId, &[u8])> = files
            .iter()
            .map(|f| f.data.as_ref())
            .chain(body_message.as_deref())
            .map(|data| (BlobId::random(), data))
            .collect();
        let outgoing = |built: Vec<Vec<u8>>| -> Vec<Outgoing> {
            built
                .into_iter()
                .enumerate()
                .map(|(r, bytes)| Outgoing {
                    rcpt: rcpt_of[r],
                    store_rcpt: r as u32,
                    bytes,
                })
                .collect()
        };
        // Large files decoded by inspection get their checksum after the reply when the helper
        // can take them; the rest are hashed here, alongside the sealing.
        let mut later: Vec<Option<Arc<Vec<u8>>>> = files
            .iter()
            .map(|f| {
                f.shared
                    .clone()
                    .filter(|b| b.len() >= checksums::DEFER_FROM)
            })
            .collect();
        let cost: usize = later.iter().flatten().map(|b| checksums::cost(b)).sum();
        if !self
            .checksums
            .as_ref()
            .is_some_and(|c| cost > 0 && c.hold(cost))
        {
            later.iter_mut().for_each(|b| *b = None);
        }
        // The blobs are sealed and made durable on another thread while this one hashes them,
        // writes and flushes the metadata and builds the copies (and hands them to `early`);
        // both are done before this returns, so before any copy may leave. A crash in between
        // leaves at most a stored message that no copy links to (removed when it expires), or
        // with `early` a queued copy whose blobs are missing (dropped by the relay).
        let writing = || {
            let blobs = self.store.blobs.as_ref();
            contents
                .iter()
                .try_for_each(|(id, data)| blobs.put_bytes(id, &dek, data))
        };
        let (written, copies) = crate::crew::join(writing, || {
            let sum = |data: &[u8]| -> [u8; 32] { Sha256::digest(data).into() };
            let records = files
                .iter()
                .zip(&contents)
                .zip(&later)
                .map(|((f, (blob, data)), later)| FileRecord {
                    name: f.name.clone(),
                    content_type: f.content_type.clone(),
                    size: data.len() as u64,
                    blob: *blob,
                    sha256: later.is_none().then(|| sum(data)),
                    download_limit: fs.download_limit,
                    blocked: false,
                })
                .collect();
            let body = contents.get(files.len()).map(|(blob, data)| BodyRecord {
                blob: *blob,
                size: data.len() as u64,
                sha256: sum(data),
            });
            let msg = Message {
                id,
                sender: sender_address(parsed),
                sender_name: parsed
                    .from()
                    .and_then(|a| a.first()?.name())
                    .and_then(crate::store::clean_display_name),
                subject: subject.clone(),
                created: req.now,
                expires: fs.expires,
                protection,
                auth,
                rfc_message_id: parsed.message_id().map(str::to_string),
                body,
                recipients,
                files: records,
                blocked: false,
            };
            // The copies go to `early` before the record is flushed, so that their queue commit
            // and the flush wait on the disk together: a copy made durable without its record
            // is dropped by the relay, as one without its blobs is.
            let mut copies = self
                .store_and_build(&msg, &dek, req, &decoded, &inline)
                .map(outgoing);
            if let (Some(early), Ok(c)) = (early.as_mut(), copies.as_mut()) {
                early(id, std::mem::take(c));
            }
            copies.and_then(|c| {
                self.store.meta.flush()?;
                Ok(c)
            })
        });
        let done = written.map_err(ProtectError::from).and(copies);
        let held: Vec<(u32, Arc<Vec<u8>>)> = later
            .into_iter()
            .enumerate()
            .filter_map(|(i, b)| Some((i as u32, b?)))
            .collect();
        if let Some(c) = &self.checksums
            && !held.is_empty()
        {
            if done.is_ok() {
                c.submit(Job::Held {
                    message: id,
                    files: held,
                });
            } else {
                c.release(held.iter().map(|(_, b)| checksums::cost(b)).sum());
            }
        }
        let copies = match done {
            Ok(copies) => copies,
            Err(e) => {
                // Whatever of it became durable goes again: the relay protects it anew. Shredding
                // the record removes every blob (it names them all); without a record, they go
                // one by one.
                match self.store.shred(id, req.now, EventKind::Shredded) {
                    Ok(true) => {}
                    shredded => {
                        if let Err(e2) = shredded {
                            tracing::warn!(message = %id, error = %e2, "cannot remove a half-stored message");
                        }
                        let blobs: Vec<BlobId> = contents.iter().map(|(b, _)| *b).collect();
                        self.store.remove_blobs(&blobs);
                    }
                }
                return Err(e);
            }
        };
        Ok(Outcome::Protected(Protected {
            message: id,
            protection,
            copies,
            refused,
            ignored,
        }))
    }
}

impl Protector {
    /// Writes the message record, one link per recipient and the `Stored` event (the caller
    /// flushes them), and builds each recipient's rewritten copy (DKIM-signed when configured),
    /// in the order of `msg.recipients`.
    fn store_and_build(
        &self,
        msg: &Message,
        dek: &DataKey,
        req: &Request<'_>,
        decoded: &Parsed<'_>,
        inline: &[usize],
    ) -> Result<Vec<Vec<u8>>, ProtectError> {
        let meta = self.store.meta.as_ref();
        let links = meta.create_message(msg, dek, &Event::new(req.now, EventKind::Stored))?;

        let infos: Vec<FileInfo> = msg
            .files
            .iter()
            .map(|f| FileInfo {
                name: f.name.clone(),
                size: f.size,
            })
            .collect();
        let expires = DateTime::<Utc>::from_timestamp(msg.expires, 0).unwrap_or_else(Utc::now);
        let host = crate::config::web::host_of(&self.public_url);
        let sender_shown = sender_shown(&decoded.msg);
        let protection = match msg.protection {
            Protection::PublicFiles => schema::Protection::PublicFiles,
            Protection::SecureFiles => schema::Protection::SecureFiles,
            Protection::SecureMessage => schema::Protection::SecureMessage,
        };
        // What was found in the subject must not travel in it (the copy is then a secure
        // message: see `protect_with`).
        let subject_found = req.decision.findings.iter().any(|f| f.origin == "subject");
        let mut copies = Vec::with_capacity(links.len());
        for token in &links {
            let link = self.link(token.as_str());
            let copy = rewrite::Copy {
                protection,
                org_name: &self.org_name,
                portal_host: host,
                language: &self.language,
                sender: &sender_shown,
                link: &link,
                expires,
                files: &infos,
                neutral_subject: req.settings.neutral_subject || subject_found,
                subject: &msg.subject,
                formal: self.formal,
                inline,
            };
            let mut bytes =
                rewrite::build_from(req.original, decoded, &copy).map_err(ProtectError::Build)?;
            if let Some(s) = &self.dkim {
                bytes = s.sign(&bytes)?;
            }
            copies.push(bytes);
        }
        Ok(copies)
    }
}

fn argon2_hash(password: &str) -> Result<String, ProtectError> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ProtectError::Hash(e.to_string()))
}

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| x.address())
            .map(|s| s.to_ascii_lowercase())
            .collect()
    })
    .unwrap_or_default()
}

fn sender_address(m: &Mime<'_>) -> String {
    m.from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_string()
}

/// How the notification names the sender: 'Jan de Vries (jan@zorg.nl)', so a recipient sees
/// who it really is.
fn sender_shown(m: &Mime<'_>) -> String {
    let Some(a) = m.from().and_then(|a| a.first()) else {
        return String::new();
    };
    match (a.name(), a.address()) {
        (Some(n), Some(addr)) if !n.trim().is_empty() => format!("{} ({addr})", n.trim()),
        (_, Some(addr)) => addr.to_string(),
        (Some(n), None) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
