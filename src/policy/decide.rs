//! Turns findings, recipients, attachments and the sender's choices into one decision.
//! The strictest matching rule wins; the sender may raise protection, and lower it only
//! where the rule's action is `auto`.

use super::detect::{Finding, Scan};
use super::schema::{Action, Auth, Protection, Unscannable};
use super::tags::SenderChoice;
use super::{Policy, Recipients, Rule};
use crate::inspect::Inspection;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Out as sent.
    Deliver,
    /// Out as sent; the sender gets a notice about what was found.
    Notify,
    /// Sealed into the store; recipients get links.
    Protect { protection: Protection, auth: Auth },
    /// The sender asked recipients to upload files.
    Upload,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// Every rule that matched, strictest first.
    pub rules: Vec<String>,
    pub findings: Vec<Finding>,
    pub unscannable: Vec<(String, String)>,
    pub sender: SenderChoice,
    /// Recipients outside the organisation.
    pub external: Vec<String>,
    /// One line per consideration, for `sluis explain` and the audit trail.
    pub reasons: Vec<String>,
}

pub struct Context<'a> {
    pub recipients: &'a [String],
    pub internal_domains: &'a [String],
}

fn domain_of(addr: &str) -> String {
    addr.rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default()
}

/// `domain` is `d` or a subdomain of it.
fn within(domain: &str, d: &str) -> bool {
    domain == d || domain.strip_suffix(d).is_some_and(|p| p.ends_with('.'))
}

pub fn is_internal(addr: &str, internal: &[String]) -> bool {
    let d = domain_of(addr);
    internal.iter().any(|i| within(&d, &i.to_ascii_lowercase()))
}

fn in_list(policy: &Policy, list: &str, addr: &str) -> bool {
    let d = domain_of(addr);
    policy
        .domains
        .get(list)
        .is_some_and(|l| l.iter().any(|x| within(&d, x)))
}

fn rule_matches(
    policy: &Policy,
    rule: &Rule,
    insp: &Inspection,
    scan: &Scan,
    ctx: &Context<'_>,
) -> bool {
    let unscannable = !insp.unscannable.is_empty();
    if !rule.detectors.is_empty() {
        let hit = rule.detectors.iter().any(|&d| {
            if d == usize::MAX {
                unscannable
            } else {
                scan.fired(policy, d)
            }
        }) || (unscannable && policy.settings.unscannable == Unscannable::Sensitive);
        if !hit {
            return false;
        }
    }
    let considered: Vec<&String> = ctx
        .recipients
        .iter()
        .filter(|r| rule.exempt.as_ref().is_none_or(|l| !in_list(policy, l, r)))
        .collect();
    let rcpt_ok = match &rule.recipients {
        Recipients::Any => !considered.is_empty(),
        Recipients::External => considered
            .iter()
            .any(|r| !is_internal(r, ctx.internal_domains)),
        Recipients::Internal => considered
            .iter()
            .any(|r| is_internal(r, ctx.internal_domains)),
        Recipients::List(l) => considered.iter().any(|r| in_list(policy, l, r)),
    };
    if !rcpt_ok {
        return false;
    }
    if rule.has_attachments {
        let ok = insp.attachments.iter().any(|a| {
            let ext = a
                .name
                .rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase())
                .unwrap_or_default();
            let type_ok = rule.attachment_types.is_empty()
                || rule
                    .attachment_types
                    .iter()
                    .any(|t| *t == ext || t.eq_ignore_ascii_case(&a.content_type));
            type_ok && rule.min_attachment_size.is_none_or(|m| a.size >= m)
        });
        if !ok {
            return false;
        }
    }
    true
}

fn strictness(r: &Rule) -> (Action, Option<Protection>, Option<Auth>) {
    (r.action, r.protection, r.auth)
}

pub fn decide(
    policy: &Policy,
    insp: &Inspection,
    scan: &Scan,
    ctx: &Context<'_>,
    sender: SenderChoice,
) -> Decision {
    let mut matched: Vec<&Rule> = policy
        .rules
        .iter()
        .filter(|r| rule_matches(policy, r, insp, scan, ctx))
        .collect();
    matched.sort_by_key(|r| std::cmp::Reverse(strictness(r)));
    let mut reasons = Vec::new();
    for r in &matched {
        let what = match (r.action, r.protection) {
            (Action::Notify, _) => "notify".to_string(),
            (a, Some(p)) => format!("{a:?} {p:?}").to_lowercase(),
            (a, None) => format!("{a:?}").to_lowercase(),
        };
        reasons.push(format!("rule '{}' ({}) matched: {what}", r.name, r.file));
    }
    if !insp.unscannable.is_empty() {
        reasons.push(format!(
            "{} part(s) could not be examined; treated as {}",
            insp.unscannable.len(),
            match policy.settings.unscannable {
                Unscannable::Sensitive => "sensitive",
                Unscannable::Ignore => "harmless",
            }
        ));
    }
    let strictest = matched.iter().find(|r| r.action != Action::Notify);
    let notify = matched.iter().any(|r| r.action == Action::Notify);
    let requested = sender.requested();
    let sms = sender.sms;
    let auth_of = |rule_auth: Option<Auth>| {
        let a = rule_auth.unwrap_or_default();
        if sms { Auth::Sms } else { a }
    };
    if sender.unsecure && requested.is_some() {
        reasons.push("the sender asked for protection and against it: protected".into());
    }
    let mut verdict = if sender.upload {
        reasons.push("the sender asked for an upload request".into());
        Verdict::Upload
    } else if let Some(rule) = strictest {
        let policy_p = rule.protection.unwrap_or(Protection::SecureMessage);
        match rule.action {
            Action::Auto if sender.opts_out() && policy.settings.allow_opt_out => {
                reasons.push(format!(
                    "the sender opted out; rule '{}' allows that (auto)",
                    rule.name
                ));
                if notify {
                    Verdict::Notify
                } else {
                    Verdict::Deliver
                }
            }
            Action::Auto => {
                // A level the sender chose may lower the policy's (auto); what only follows
                // from their other choices (SMS, expiry ...) is a minimum, never a lowering.
                let protection = match (sender.protection, requested) {
                    (Some(_), Some(r)) => r,
                    (_, r) => r.map_or(policy_p, |r| r.max(policy_p)),
                };
                if sender.protection.is_some() && protection != policy_p {
                    reasons.push("the sender's own choice of protection is honoured (auto)".into());
                }
                Verdict::Protect {
                    protection,
                    auth: auth_of(rule.auth),
                }
            }
            _ => {
                if sender.unsecure {
                    reasons.push(format!(
                        "the sender's opt-out is ignored: rule '{}' forces protection",
                        rule.name
                    ));
                }
                Verdict::Protect {
                    protection: requested.map_or(policy_p, |p| p.max(policy_p)),
                    auth: auth_of(rule.auth),
                }
            }
        }
    } else if let Some(p) = requested {
        reasons.push("the sender asked for protection".into());
        Verdict::Protect {
            protection: p,
            auth: auth_of(None),
        }
    } else if notify {
        Verdict::Notify
    } else {
        Verdict::Deliver
    };
    // Files protection without files would send the text as written: when the sender asked
    // for protection, the message itself is protected instead.
    if let Verdict::Protect { protection, .. } = &mut verdict
        && *protection != Protection::SecureMessage
        && requested.is_some()
        && insp.attachments.is_empty()
    {
        *protection = Protection::SecureMessage;
        reasons
            .push("protection was asked for and there are no attachments: secure message".into());
    }
    Decision {
        verdict,
        rules: matched.iter().map(|r| r.name.clone()).collect(),
        findings: scan.findings.clone(),
        unscannable: insp
            .unscannable
            .iter()
            .map(|u| (u.origin.clone(), u.reason.clone()))
            .collect(),
        sender,
        external: ctx
            .recipients
            .iter()
            .filter(|r| !is_internal(r, ctx.internal_domains))
            .cloned()
            .collect(),
        reasons,
    }
}
