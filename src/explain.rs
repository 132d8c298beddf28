//! `sluis explain`: what the policy finds in a message and what it decides, without sending.

use crate::config::Config;
use crate::headers;
use crate::pipeline::examine_with;
use crate::policy::Policy;
use crate::policy::decide::Verdict;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;

/// Addresses in a header value: whatever stands in angle brackets, or bare `a@b` words.
fn addresses(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(lt) = rest.find('<') {
        let Some(gt) = rest[lt..].find('>') else {
            break;
        };
        out.push(rest[lt + 1..lt + gt].trim().to_string());
        rest = &rest[lt + gt + 1..];
    }
    if out.is_empty() {
        out = value
            .split([',', ';', ' '])
            .map(|w| w.trim_matches(|c: char| c == '"' || c.is_whitespace()))
            .filter(|w| w.contains('@'))
            .map(str::to_string)
            .collect();
    }
    out
}

pub fn run(cfg: &Config, message: &Path, from: Option<String>, to: Vec<String>) -> Result<()> {
    let bytes = std::fs::read(message).with_context(|| format!("reading {}", message.display()))?;
    // Files saved on Unix often have bare LF line endings; SMTP would carry CRLF.
    let bytes = if bytes.windows(2).any(|w| w == b"\r\n") {
        bytes
    } else {
        String::from_utf8_lossy(&bytes)
            .replace('\n', "\r\n")
            .into_bytes()
    };
    let policy = Arc::new(Policy::load_checked(
        &cfg.policy.dir,
        cfg.policy.allow_empty_policy,
    )?);
    let n = headers::block_len(&bytes);
    let fields = headers::split_fields(&bytes[..n]);
    let header = |name: &str| -> Vec<String> {
        fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| headers::unfold(f.value))
            .collect()
    };
    let from = from.or_else(|| {
        header("from")
            .first()
            .and_then(|v| addresses(v).into_iter().next())
    });
    let rcpts = if to.is_empty() {
        header("to")
            .iter()
            .chain(header("cc").iter())
            .flat_map(|v| addresses(v))
            .collect()
    } else {
        to
    };
    let ex = examine_with(
        &policy,
        &cfg.organisation.internal_domains,
        &crate::inspect::Limits::default(),
        &std::sync::Arc::new(bytes.to_vec()),
        &rcpts,
    );
    let d = &ex.decision;
    println!("message:    {}", message.display());
    println!("from:       {}", from.as_deref().unwrap_or("(unknown)"));
    for r in &rcpts {
        let kind = if crate::policy::decide::is_internal(r, &cfg.organisation.internal_domains) {
            "internal"
        } else {
            "external"
        };
        println!("to:         {r} ({kind})");
    }
    println!("subject:    {}", ex.inspection.subject);
    println!(
        "policy:     {} ({} rules)",
        cfg.policy.dir.display(),
        policy.rules.len()
    );
    println!();
    println!(
        "parts examined: {} (raw views of attachments: {})",
        ex.inspection.texts.len(),
        ex.inspection.shadows.len()
    );
    for a in &ex.inspection.attachments {
        println!(
            "attachment: {} ({}, {} bytes)",
            a.origin, a.content_type, a.size
        );
    }
    for (origin, why) in &d.unscannable {
        println!("unscannable: {origin}: {why}");
    }
    if !d.unscannable.is_empty() {
        // What "unscannable" means for the admin reading this.
        println!(
            "             (not read completely: what could be read was examined, the rest is \
             unknown, so the file never counts as clean)"
        );
    }
    println!();
    if d.findings.is_empty() {
        println!("findings:   none");
    }
    for f in &d.findings {
        println!(
            "finding:    {} [{}] in {}: {}",
            f.label, f.detector, f.origin, f.excerpt
        );
    }
    if !d.sender.tags.is_empty() || !d.sender.controls.is_empty() {
        println!(
            "sender:     tags {:?}, headers {:?}",
            d.sender.tags,
            d.sender.controls.keys().collect::<Vec<_>>()
        );
    }
    for r in &d.reasons {
        println!("reason:     {r}");
    }
    println!();
    let verdict = match &d.verdict {
        Verdict::Deliver => "deliver as sent".to_string(),
        Verdict::Notify => "deliver as sent and notify the sender".to_string(),
        Verdict::Protect { protection, auth } => format!(
            "protect: {} with {}",
            match protection {
                crate::policy::schema::Protection::PublicFiles =>
                    "public files (openbare bestanden)",
                crate::policy::schema::Protection::SecureFiles =>
                    "secure files (beveiligde bestanden)",
                crate::policy::schema::Protection::SecureMessage =>
                    "secure message (beveiligd bericht)",
            },
            match auth {
                crate::policy::schema::Auth::Password => "password",
                crate::policy::schema::Auth::Sms => "SMS code",
            }
        ),
        Verdict::Upload => "upload request".to_string(),
    };
    println!("decision:   {verdict}");
    if ex.strip {
        println!("            (tags and X-Sluis headers are removed before sending)");
    }
    Ok(())
}
