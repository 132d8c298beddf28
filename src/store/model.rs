//! What the store keeps about a protected message. Serialised (JSON) and sealed before storage.

use super::{BlobId, MessageId};
use serde::{Deserialize, Serialize};

/// How a message is protected (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    /// Attachments behind a link, no authentication.
    PublicFiles,
    /// Attachments behind recipient authentication.
    SecureFiles,
    /// Body and attachments behind recipient authentication; the mail is a notification.
    SecureMessage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PasswordDelivery {
    /// Sent to the recipient in a separate mail on request.
    Email,
    /// A custom password that the sender passes on by other means ('Anders').
    Other,
}

/// Recipient authentication (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Auth {
    None,
    Password { delivery: PasswordDelivery },
    Sms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecipientKind {
    To,
    Cc,
    Bcc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub kind: RecipientKind,
    /// For SMS authentication.
    #[serde(default)]
    pub phone: Option<String>,
    /// A password hash (PHC string) for password authentication, never the password.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub blocked: bool,
}

/// One attachment: its name and type as the sender gave them, and the sealed blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub name: String,
    pub content_type: String,
    /// Plaintext size in bytes.
    pub size: u64,
    pub blob: BlobId,
    /// Plaintext SHA-256; `None` while it is being computed (large files are hashed in the
    /// background, after the sender has had the reply; see `protect::checksums`).
    pub sha256: Option<[u8; 32]>,
    /// Downloads allowed per recipient; 0 = unlimited.
    pub download_limit: u32,
    #[serde(default)]
    pub blocked: bool,
}

/// The message body (the original MIME text parts) of a secure message, as a sealed blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyRecord {
    pub blob: BlobId,
    pub size: u64,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub sender: String,
    /// The display name from the From header, cleaned (see [`clean_display_name`]); records
    /// written before it was kept have none.
    #[serde(default)]
    pub sender_name: Option<String>,
    pub subject: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds; the message is shredded after this.
    pub expires: i64,
    pub protection: Protection,
    pub auth: Auth,
    /// The original Message-ID header, for threading and replies from the portal.
    #[serde(default)]
    pub rfc_message_id: Option<String>,
    #[serde(default)]
    pub body: Option<BodyRecord>,
    pub recipients: Vec<Recipient>,
    pub files: Vec<FileRecord>,
    #[serde(default)]
    pub blocked: bool,
}

/// Longest display name kept, in characters: enough for any real name, not for a paragraph.
pub const DISPLAY_NAME_MAX: usize = 80;

/// A From display name as it may be shown: control characters and bidi overrides (which could
/// make a name read as another) gone, runs of white space as one space, at most
/// [`DISPLAY_NAME_MAX`] characters; `None` when nothing is left.
pub fn clean_display_name(raw: &str) -> Option<String> {
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    let words: Vec<&str> = raw
        .split(|c: char| c.is_whitespace() || c.is_control() || bidi(c))
        .filter(|w| !w.is_empty())
        .collect();
    let mut name: String = words.join(" ").chars().take(DISPLAY_NAME_MAX).collect();
    name.truncate(name.trim_end().len());
    (!name.is_empty()).then_some(name)
}

impl Message {
    /// The sender as the recipient sees it: 'Jan de Vries (jan@zorg.nl)', or the address alone.
    pub fn sender_shown(&self) -> String {
        match &self.sender_name {
            Some(n) if !n.eq_ignore_ascii_case(&self.sender) => format!("{n} ({})", self.sender),
            _ => self.sender.clone(),
        }
    }

    /// Every blob this message refers to.
    pub fn blob_ids(&self) -> Vec<BlobId> {
        let mut v: Vec<BlobId> = self.files.iter().map(|f| f.blob).collect();
        v.extend(self.body.as_ref().map(|b| b.blob));
        v
    }
}

/// What happened to a message (SPEC §6), for the sender's tracking page and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Stored and sealed.
    Stored,
    /// Handed to the next hop for a recipient.
    Relayed,
    /// A recipient opened the link.
    Opened,
    /// A recipient downloaded a file.
    Downloaded,
    /// The sender blocked a recipient, a file or the message.
    Blocked,
    /// Shredded because it expired.
    Expired,
    /// Shredded on request (sender or admin).
    Shredded,
}

/// An event names recipients and files by index only, never by address or name; `detail` holds
/// operational context (such as a client address) and is erased when the message is shredded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unix seconds.
    pub at: i64,
    pub kind: EventKind,
    #[serde(default)]
    pub rcpt: Option<u32>,
    #[serde(default)]
    pub file: Option<u32>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl Event {
    pub fn new(at: i64, kind: EventKind) -> Event {
        Event {
            at,
            kind,
            rcpt: None,
            file: None,
            detail: None,
        }
    }
}
