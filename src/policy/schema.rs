//! What admins write in `policies/*.toml`. Unknown keys are errors.

use crate::units::{ByteSize, Secs};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub settings: Option<Settings>,
    #[serde(default)]
    pub tags: Option<TagWords>,
    #[serde(default)]
    pub domains: BTreeMap<String, DomainList>,
    #[serde(default)]
    pub detectors: BTreeMap<String, DetectorSpec>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// "sensitive" (default): content that could not be examined counts as a detector hit.
    /// "ignore": it does not.
    pub unscannable: Unscannable,
    /// Whether the sender's `[unsecure]` tag is honoured where a rule's action is `auto`.
    pub allow_opt_out: bool,
    /// How long links of protected messages work unless the sender shortens it.
    pub expiry: Secs,
    /// The longest expiry a sender may ask for (`X-Sluis-Expires`).
    pub max_expiry: Secs,
    /// Downloads per file and recipient unless the sender says otherwise; 0 = unlimited.
    pub download_limit: u32,
    /// Secure messages get a neutral subject ('Beveiligd bericht van ...') instead of the
    /// sender's, which can itself be sensitive.
    pub neutral_subject: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            unscannable: Unscannable::Sensitive,
            allow_opt_out: true,
            expiry: Secs::from_secs(14 * 86_400),
            max_expiry: Secs::from_secs(14 * 86_400),
            download_limit: 0,
            neutral_subject: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Unscannable {
    Sensitive,
    Ignore,
}

/// Subject tags, in every language the organisation uses. Matching ignores case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TagWords {
    pub secure: Vec<String>,
    pub secure_files: Vec<String>,
    pub public_files: Vec<String>,
    pub upload: Vec<String>,
    pub sms: Vec<String>,
    pub unsecure: Vec<String>,
}

impl Default for TagWords {
    fn default() -> Self {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
        TagWords {
            secure: v(&["secure", "beveiligd"]),
            secure_files: v(&["secure files", "beveiligde bestanden"]),
            public_files: v(&["public files", "openbare bestanden"]),
            upload: v(&["upload", "uploadverzoek"]),
            sms: v(&["2fa", "sms"]),
            unsecure: v(&["unsecure", "onbeveiligd"]),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainList {
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DetectorType {
    Words,
    Bsn,
    Iban,
    Card,
    Regex,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    #[serde(rename = "type")]
    pub kind: DetectorType,
    /// Shown to senders in notices ("medische gegevens"); defaults to the detector's name.
    #[serde(default)]
    pub label: Option<String>,
    /// Words and phrases (type = "words").
    #[serde(default)]
    pub words: Vec<String>,
    /// Word-list files relative to the policy folder, one entry per line, `#` comments.
    #[serde(default)]
    pub words_files: Vec<String>,
    /// Match inside words too (default: whole words only).
    #[serde(default)]
    pub substring: bool,
    /// type = "regex": the pattern, matched on normalised (lowercase) text.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Supporting keywords that must appear within `keyword_distance` characters of a match.
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default = "default_distance")]
    pub keyword_distance: usize,
    /// How many matches make the detector fire.
    #[serde(default = "one")]
    pub min_count: usize,
}

fn default_distance() -> usize {
    300
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Notify,
    Auto,
    Force,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protection {
    PublicFiles,
    SecureFiles,
    SecureMessage,
}

#[derive(
    Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    #[default]
    Password,
    Sms,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// The rule needs one of these detectors to fire (absent: content does not matter).
    #[serde(default)]
    pub detectors: Vec<String>,
    /// "any" (default), "external", "internal", or the name of a domain list.
    #[serde(default)]
    pub recipients: Option<String>,
    /// Recipients in this domain list never make the rule match (trusted partners).
    #[serde(default)]
    pub exempt_domains: Option<String>,
    /// The message must have at least one attachment.
    #[serde(default)]
    pub has_attachments: bool,
    /// ... of one of these types (file extensions, or MIME types such as "application/pdf").
    #[serde(default)]
    pub attachment_types: Vec<String>,
    /// ... of at least this size.
    #[serde(default)]
    pub min_attachment_size: Option<ByteSize>,
    pub action: Action,
    /// Required for `auto` and `force`.
    #[serde(default)]
    pub protection: Option<Protection>,
    #[serde(default)]
    pub auth: Option<Auth>,
}
