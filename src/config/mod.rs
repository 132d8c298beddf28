//! The TOML configuration: typed sections, unknown keys rejected, `SLUIS_SECTION__KEY` overrides.

use crate::units::{ByteSize, Secs};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

mod checks;
mod paths;
pub mod web;
pub use web::{DkimConfig, SmsConfig, WebConfig};

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: String, reason: String },
    #[error("{file}:{line}:{col}: {msg}")]
    At {
        file: String,
        line: usize,
        col: usize,
        msg: String,
    },
    #[error("{file}: {msg}")]
    Invalid { file: String, msg: String },
    #[error("environment variable {var}: {msg}")]
    Env { var: String, msg: String },
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub smtp: SmtpConfig,
    pub relay: RelayConfig,
    pub storage: StorageConfig,
    pub organisation: OrganisationConfig,
    pub policy: PolicyConfig,
    pub web: WebConfig,
    pub sms: SmsConfig,
    /// DKIM signing of rewritten mail; absent: not signed.
    pub dkim: Option<DkimConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Folder with the policy files (`*.toml`) and word lists. Unset: found next to the
    /// config file, or for the embedded default next to the program (see `paths`).
    pub dir: PathBuf,
    /// Run without rules (a plain relay): a missing or rule-less folder is then no error.
    pub allow_empty_policy: bool,
    /// Messages inspected at the same time (inspection is CPU-bound).
    pub inspect_concurrency: usize,
    /// Whether a message (up to 4 MiB) is examined, and protected, before the client hears
    /// 250, so that a protected original is never queued (see crate::admit).
    pub examine_before_reply: BeforeReply,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BeforeReply {
    /// When other messages are arriving at the same time (the cores are busy, so the work it
    /// saves counts most), or when the sender asked for protection (a tag or `X-Sluis-Mode`:
    /// the original then never goes through the queue); any other lone message is queued
    /// first and examined while the client goes on, so the two overlap.
    #[default]
    Auto,
    Always,
    Never,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            dir: PathBuf::new(),
            allow_empty_policy: false,
            inspect_concurrency: 2,
            examine_before_reply: BeforeReply::Auto,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub listen: String,
    pub hostname: String,
    pub max_message_size: ByteSize,
    pub relay_networks: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub require_tls: bool,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub max_header_size: ByteSize,
    pub idle_timeout: Secs,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_messages_per_connection: usize,
    pub max_received_headers: usize,
    pub min_free_space: ByteSize,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            listen: "127.0.0.1:2525".into(),
            hostname: default_hostname(),
            max_message_size: ByteSize(50 << 20),
            relay_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            tls_cert: None,
            tls_key: None,
            require_tls: false,
            max_recipients: 100,
            max_line_length: 1000,
            max_header_size: ByteSize(64 << 10),
            idle_timeout: Secs::from_secs(300),
            max_connections: 1000,
            max_connections_per_ip: 50,
            max_messages_per_connection: 1000,
            max_received_headers: 30,
            min_free_space: ByteSize(64 << 20),
        }
    }
}

fn default_hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    pub next_hop: String,
    pub require_tls: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub retry_schedule: Vec<Secs>,
    pub max_queue_lifetime: Secs,
    pub dns_servers: Vec<String>,
    pub mx_port: u16,
    pub connect_timeout: Secs,
    pub command_timeout: Secs,
    pub concurrency: usize,
    pub helo_name: Option<String>,
    /// CA bundle for verifying next hops where `require_tls` is set.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            next_hop: "maildir:./sluis-outbox".into(),
            require_tls: false,
            username: None,
            password: None,
            retry_schedule: ["1m", "5m", "15m", "1h", "4h"]
                .iter()
                .map(|s| Secs(crate::units::parse_duration(s).expect("valid default")))
                .collect(),
            max_queue_lifetime: Secs::from_secs(5 * 86_400),
            dns_servers: Vec::new(),
            mx_port: 25,
            connect_timeout: Secs::from_secs(30),
            command_timeout: Secs::from_secs(300),
            concurrency: 32,
            helo_name: None,
            tls_ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub master_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the master key (64 hex digits).
    pub master_key_env: Option<String>,
    /// How often expired protected messages are looked for and crypto-shredded.
    pub shred_interval: Secs,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("./sluis-data"),
            master_key_file: None,
            master_key_env: None,
            shred_interval: Secs::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrganisationConfig {
    pub name: String,
    pub internal_domains: Vec<String>,
    pub default_language: String,
    /// How Dutch mail to recipients addresses them: "je" (default, as the manual) or "u".
    pub address_form: AddressForm,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum AddressForm {
    #[default]
    #[serde(rename = "je")]
    Je,
    #[serde(rename = "u")]
    U,
}

impl Default for OrganisationConfig {
    fn default() -> Self {
        OrganisationConfig {
            name: "sluis".into(),
            internal_domains: Vec::new(),
            default_language: "nl".into(),
            address_form: AddressForm::Je,
        }
    }
}

/// Where relayed mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    Smtp { host: String, port: u16 },
    Mx,
    Maildir(PathBuf),
}

impl NextHop {
    pub fn parse(s: &str) -> Result<NextHop, String> {
        if s == "mx" {
            return Ok(NextHop::Mx);
        }
        if let Some(path) = s.strip_prefix("maildir:") {
            if path.is_empty() {
                return Err(
                    "maildir: needs a path, as in \"maildir:/var/spool/sluis-outbox\"".into(),
                );
            }
            return Ok(NextHop::Maildir(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("smtp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                    let port = p
                        .parse::<u16>()
                        .map_err(|_| format!("'{p}' is not a port number"))?;
                    (h, port)
                }
                _ => (rest, 25),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err("smtp:// needs a host".into());
            }
            return Ok(NextHop::Smtp {
                host: host.to_string(),
                port,
            });
        }
        Err(format!(
            "'{s}' is not a next hop: use \"smtp://host:port\", \"mx\" or \"maildir:PATH\""
        ))
    }
}

/// Settings checked beyond their types, ready for use.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub relay_networks: Vec<IpNet>,
    pub next_hop: NextHop,
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// `[web] public_url` without a trailing slash: the base of every link in mail.
    pub public_url: String,
    pub trusted_proxies: Vec<IpNet>,
}

impl Config {
    /// The embedded default, or the file, with environment overrides applied.
    pub fn load(path: Option<&Path>) -> Result<(Config, Resolved), ConfigError> {
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("SLUIS_") && k.contains("__"))
            .collect();
        Self::load_with_env(path, &env)
    }

    pub fn load_with_env(
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<(Config, Resolved), ConfigError> {
        let (file, text) = match path {
            Some(p) => {
                let file = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    file: file.clone(),
                    reason: crate::fsutil::io_reason(&e),
                })?;
                (file, text)
            }
            None => ("(embedded default)".to_string(), String::new()),
        };
        let at = |e: toml::de::Error| {
            let (line, col) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            ConfigError::At {
                file: file.clone(),
                line,
                col,
                msg: with_key(&text, line, e.message().trim()),
            }
        };
        // Parse the text alone first so that problems in the file carry its line numbers.
        let from_file: Config = toml::from_str(&text).map_err(at)?;
        let mut cfg = if env.is_empty() {
            from_file
        } else {
            let mut table: toml::Table = toml::from_str(&text).map_err(at)?;
            for (var, value) in env {
                apply_env(&mut table, var, value)?;
            }
            Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Env {
                var: env
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                msg: e.message().trim().to_string(),
            })?
        };
        if cfg.policy.dir.as_os_str().is_empty() {
            cfg.policy.dir = paths::default_policy_dir(path);
        }
        let resolved =
            cfg.resolve()
                .map_err(|(section, key, msg)| match locate(&text, section, key) {
                    Some(line) => ConfigError::At {
                        file: file.clone(),
                        line,
                        col: 1,
                        msg: format!("[{section}] {key}: {msg}"),
                    },
                    None => ConfigError::Invalid {
                        file: file.clone(),
                        msg: format!("[{section}] {key}: {msg}"),
                    },
                })?;
        Ok((cfg, resolved))
    }

    fn resolve(&self) -> Result<Resolved, (&'static str, &'static str, String)> {
        let relay_networks =
            nets(&self.smtp.relay_networks).map_err(|m| ("smtp", "relay_networks", m))?;
        let trusted_proxies =
            nets(&self.web.trusted_proxies).map_err(|m| ("web", "trusted_proxies", m))?;
        let next_hop =
            NextHop::parse(&self.relay.next_hop).map_err(|m| ("relay", "next_hop", m))?;
        let dns_servers = self
            .relay
            .dns_servers
            .iter()
            .map(|s| {
                s.parse::<std::net::SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| (ip, 53).into()))
                    .map_err(|_| format!("'{s}' is not an IP address or IP:port"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| ("relay", "dns_servers", m))?;
        if self.smtp.tls_cert.is_some() != self.smtp.tls_key.is_some() {
            return Err((
                "smtp",
                "tls_cert",
                "tls_cert and tls_key go together".into(),
            ));
        }
        if self.smtp.max_line_length < 512 {
            return Err((
                "smtp",
                "max_line_length",
                "must be at least 512 (RFC 5321)".into(),
            ));
        }
        if self.relay.retry_schedule.is_empty() {
            return Err((
                "relay",
                "retry_schedule",
                "needs at least one interval".into(),
            ));
        }
        if let Some(ca) = &self.relay.tls_ca_file {
            crate::relay::tlsconf::load_bundle(ca).map_err(|m| ("relay", "tls_ca_file", m))?;
        }
        if self.relay.concurrency == 0 {
            return Err(("relay", "concurrency", "must be at least 1".into()));
        }
        if self.relay.username.is_some() != self.relay.password.is_some() {
            return Err((
                "relay",
                "username",
                "username and password go together".into(),
            ));
        }
        let public_url = self
            .web
            .resolve_public_url()
            .map_err(|m| ("web", "public_url", m))?;
        if self.web.tls_cert.is_some() != self.web.tls_key.is_some() {
            return Err(("web", "tls_cert", "tls_cert and tls_key go together".into()));
        }
        self.web.check_limits().map_err(|(k, m)| ("web", k, m))?;
        crate::sms::Sms::from_config(&self.sms).map_err(|m| ("sms", "provider", m))?;
        if let Some(d) = &self.dkim {
            d.check().map_err(|(k, m)| ("dkim", k, m))?;
        }
        checks::run(self)?;
        Ok(Resolved {
            relay_networks,
            next_hop,
            dns_servers,
            public_url,
            trusted_proxies,
        })
    }
}

fn nets(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|n| parse_net(n).ok_or_else(|| format!("'{n}' is not an address or CIDR network")))
        .collect()
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

fn apply_env(table: &mut toml::Table, var: &str, value: &str) -> Result<(), ConfigError> {
    let err = |msg: &str| ConfigError::Env {
        var: var.to_string(),
        msg: msg.to_string(),
    };
    let rest = &var["SLUIS_".len()..];
    let (section, key) = rest
        .split_once("__")
        .ok_or_else(|| err("expected SLUIS_SECTION__KEY"))?;
    let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
    if section.is_empty() || key.is_empty() {
        return Err(err("expected SLUIS_SECTION__KEY"));
    }
    // A value that reads as TOML (number, boolean, array) keeps its type; anything else is a string.
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let entry = table
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => {
            t.insert(key, parsed);
            Ok(())
        }
        _ => Err(err("that section is not a table")),
    }
}

/// "retry_schedule: 'soon' does not start with a number": a value's error names the key set
/// on that line, unless the message already does.
fn with_key(text: &str, line: usize, msg: &str) -> String {
    let key = text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('[') && !k.starts_with('#'));
    match key {
        Some(k) if !msg.contains(k) => format!("{k}: {msg}"),
        _ => msg.to_string(),
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// The line on which `key` is set inside `[section]`, for messages about values.
fn locate(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(s) = t.strip_prefix('[') {
            current = s.trim_end_matches(']').trim().to_string();
        } else if current == section
            && t.split('=').next().map(str::trim) == Some(key)
            && t.contains('=')
        {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests;
