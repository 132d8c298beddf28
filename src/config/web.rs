//! `[web]` (the portal's address and the base of every link) and `[dkim]` (signing rewritten mail).

use crate::units::Secs;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub listen: String,
    /// Where recipients reach the portal (`https://veilig.example.nl`); links in mail start with
    /// it. Default: `http://` and `listen`, right for the embedded default only.
    pub public_url: Option<String>,
    /// Serve HTTPS with this certificate (PEM chain) and key; absent: plain HTTP (behind a
    /// reverse proxy that terminates TLS).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Optional logo shown on every page (PNG or SVG).
    pub logo: Option<PathBuf>,
    /// Reverse proxies (addresses or CIDR networks) whose `Forwarded` / `X-Forwarded-For`
    /// names the client; nobody else's is believed. Default: none.
    pub trusted_proxies: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8025".into(),
            public_url: None,
            tls_cert: None,
            tls_key: None,
            logo: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[sms]`: how one-time codes reach phones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// `outbox` (append to `path`) or `http`.
    pub provider: String,
    pub path: PathBuf,
    /// provider = "http": the request; `{to}`, `{text}` and their `_json` / `_url` escaped forms
    /// are filled in in `url`, header values and `body`.
    pub url: Option<String>,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub timeout: Secs,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            provider: "outbox".into(),
            path: PathBuf::from("./sluis-outbox/sms.txt"),
            url: None,
            method: "POST".into(),
            headers: BTreeMap::new(),
            body: String::new(),
            timeout: Secs::from_secs(10),
        }
    }
}

impl WebConfig {
    /// The public URL without a trailing slash, checked: http(s), a host, no query or fragment.
    pub fn resolve_public_url(&self) -> Result<String, String> {
        let url = self
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen));
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| format!("'{url}' must start with https:// or http://"))?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "'{url}' must be a plain base URL (no spaces, query or fragment)"
            ));
        }
        Ok(url.trim_end_matches('/').to_string())
    }
}

/// Host (and port) of a public URL, shown in mail so recipients can recognise the portal.
pub fn host_of(public_url: &str) -> &str {
    let rest = public_url.split_once("://").map_or(public_url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// The `d=` domain: the organisation's sending domain.
    pub domain: String,
    /// The `s=` selector: the key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// PEM private key: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8).
    pub key_file: PathBuf,
}

impl DkimConfig {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.domain.is_empty() || !self.domain.contains('.') {
            return Err(("domain", format!("'{}' is not a domain", self.domain)));
        }
        if self.selector.is_empty()
            || !self
                .selector
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        {
            return Err(("selector", format!("'{}' is not a selector", self.selector)));
        }
        crate::dkim::Signer::load(self).map_err(|e| ("key_file", e.to_string()))?;
        Ok(())
    }
}
