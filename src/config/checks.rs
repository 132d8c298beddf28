//! What `serve` would trip over, found by `check` first: listen addresses, files the config
//! names, languages, zero durations. Each error names its section and key.

use super::Config;
use std::path::Path;

type Problem = (&'static str, &'static str, String);

/// Languages sluis writes its mail and pages in.
const LANGUAGES: [&str; 2] = ["nl", "en"];

pub fn run(cfg: &Config) -> Result<(), Problem> {
    listen(&cfg.smtp.listen).map_err(|m| ("smtp", "listen", m))?;
    listen(&cfg.web.listen).map_err(|m| ("web", "listen", m))?;
    let files = [
        ("smtp", "tls_cert", cfg.smtp.tls_cert.as_deref()),
        ("smtp", "tls_key", cfg.smtp.tls_key.as_deref()),
        ("web", "tls_cert", cfg.web.tls_cert.as_deref()),
        ("web", "tls_key", cfg.web.tls_key.as_deref()),
        ("web", "logo", cfg.web.logo.as_deref()),
    ];
    for (section, key, path) in files {
        if let Some(p) = path {
            readable(p).map_err(|m| (section, key, m))?;
        }
    }
    let lang = &cfg.organisation.default_language;
    if !LANGUAGES.contains(&lang.as_str()) {
        return Err((
            "organisation",
            "default_language",
            format!("'{lang}' is not a language sluis writes: use \"nl\" or \"en\""),
        ));
    }
    let durations = [
        ("smtp", "idle_timeout", cfg.smtp.idle_timeout),
        ("relay", "max_queue_lifetime", cfg.relay.max_queue_lifetime),
        ("relay", "connect_timeout", cfg.relay.connect_timeout),
        ("relay", "command_timeout", cfg.relay.command_timeout),
        ("storage", "shred_interval", cfg.storage.shred_interval),
        ("sms", "timeout", cfg.sms.timeout),
    ]
    .into_iter()
    .chain(
        cfg.relay
            .retry_schedule
            .iter()
            .map(|s| ("relay", "retry_schedule", *s)),
    );
    for (section, key, d) in durations {
        if d.get().is_zero() {
            return Err((section, key, "must be more than 0".into()));
        }
    }
    Ok(())
}

/// `HOST:PORT` with a port sluis can bind (0: any free port, as tests use).
fn listen(addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!(
            "'{addr}' needs HOST:PORT, as in \"127.0.0.1:2525\""
        ));
    };
    if host.is_empty() {
        return Err(format!("'{addr}' needs a host, as in \"0.0.0.0{addr}\""));
    }
    match port.parse::<u64>() {
        Ok(p) if p <= u64::from(u16::MAX) => Ok(()),
        Ok(p) => Err(format!("port {p} is out of range (0 to 65535)")),
        Err(_) => Err(format!("'{port}' is not a port number")),
    }
}

fn readable(p: &Path) -> Result<(), String> {
    match std::fs::File::open(p) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(()),
        Ok(_) => Err(format!("{} is not a file", p.display())),
        Err(e) => Err(format!(
            "cannot read {}: {}",
            p.display(),
            crate::fsutil::io_reason(&e)
        )),
    }
}
