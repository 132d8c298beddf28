//! `[web]` (the portal's address and the base of every link) and `[dkim]` (signing rewritten mail).

use crate::units::{ByteSize, Secs};
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
    /// Open portal connections in all and per client (socket) address; the total is lowered at
    /// start so that the portal always leaves SMTP its file descriptors (see `web::listen`).
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Time to send a request's headers, counted from the connection's start or the end of the
    /// previous response (so also how long an idle keep-alive connection stays open).
    pub header_timeout: Secs,
    /// A connection on which no byte moves either way for this long is closed.
    pub idle_timeout: Secs,
    /// Time to read a request body and produce the response's headers.
    pub request_timeout: Secs,
    /// Largest request body (the portal's forms are small).
    pub max_request_body: ByteSize,
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
            max_connections: 512,
            max_connections_per_ip: 32,
            header_timeout: Secs::from_secs(10),
            idle_timeout: Secs::from_secs(60),
            request_timeout: Secs::from_secs(30),
            max_request_body: ByteSize(16 << 10),
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
    /// The connection limits make sense: none is zero.
    pub fn check_limits(&self) -> Result<(), (&'static str, String)> {
        let nonzero = [
            ("max_connections", self.max_connections as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("header_timeout", self.header_timeout.get().as_secs()),
            ("idle_timeout", self.idle_timeout.get().as_secs()),
            ("request_timeout", self.request_timeout.get().as_secs()),
        ];
        for (key, v) in nonzero {
            if v == 0 {
                return Err((key, "must be at least 1 (seconds for a timeout)".into()));
            }
        }
        if self.max_request_body.bytes() < 1024 {
            return Err(("max_request_body", "must be at least 1 KiB".into()));
        }
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_must_be_positive() {
        let ok = WebConfig::default();
        assert!(ok.check_limits().is_ok());
        let zero = WebConfig {
            max_connections_per_ip: 0,
            ..WebConfig::default()
        };
        assert_eq!(zero.check_limits().unwrap_err().0, "max_connections_per_ip");
        let no_wait = WebConfig {
            header_timeout: Secs::from_secs(0),
            ..WebConfig::default()
        };
        assert_eq!(no_wait.check_limits().unwrap_err().0, "header_timeout");
        let tiny = WebConfig {
            max_request_body: ByteSize(10),
            ..WebConfig::default()
        };
        assert_eq!(tiny.check_limits().unwrap_err().0, "max_request_body");
    }
}
