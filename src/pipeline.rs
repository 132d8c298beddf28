//! What happens to an accepted message before it is relayed: inspect it, let the policy
//! decide, and turn the decision into a plan for the relay.

use crate::inspect::{self, Inspection};
use crate::policy::decide::{self, Context, Decision, Verdict};
use crate::policy::watch::PolicyHandle;
use crate::policy::{Policy, detect, tags};
use std::sync::Arc;

pub struct Pipeline {
    pub policy: PolicyHandle,
    pub internal_domains: Vec<String>,
    pub limits: inspect::Limits,
}

/// The outcome of examining one message.
pub struct Examined {
    pub inspection: Inspection,
    pub decision: Decision,
    /// Tags or control headers must be removed before the message leaves.
    pub strip: bool,
    pub policy: Arc<Policy>,
}

impl Pipeline {
    /// Inspects and decides. CPU-bound and blocking: run it on a blocking thread.
    pub fn examine(&self, message: &Arc<Vec<u8>>, recipients: &[String]) -> Examined {
        self.examine_limited(&self.limits, message, recipients)
    }

    /// `examine`, keeping the decoded attachments (a message in memory, about to be protected
    /// right away: they are not decoded a second time).
    pub fn examine_keeping(&self, message: &Arc<Vec<u8>>, recipients: &[String]) -> Examined {
        let limits = inspect::Limits {
            keep_decoded: message.len(),
            ..self.limits.clone()
        };
        self.examine_limited(&limits, message, recipients)
    }

    /// Whether the sender asked for protection (a subject tag or `X-Sluis-Mode`), read from
    /// the header as written: a reason to do the work before the reply, never a decision.
    pub fn sender_asks_protection(&self, message: &[u8]) -> bool {
        asks_protection(message, &self.policy.get().tags)
    }

    fn examine_limited(
        &self,
        limits: &inspect::Limits,
        message: &Arc<Vec<u8>>,
        recipients: &[String],
    ) -> Examined {
        let policy = self.policy.get();
        examine_with(&policy, &self.internal_domains, limits, message, recipients)
    }
}

/// [`Pipeline::sender_asks_protection`] with the policy's tag words. A subject in RFC 2047
/// encoded words is decoded first (only then: the plain case needs no parse).
pub fn asks_protection(message: &[u8], words: &crate::policy::schema::TagWords) -> bool {
    let n = crate::headers::block_len(message);
    let mut choice = tags::SenderChoice::default();
    for f in crate::headers::split_fields(&message[..n]) {
        if f.name.eq_ignore_ascii_case("subject") {
            let mut subject = crate::headers::unfold(f.value);
            if subject.contains("=?") {
                let decoded = mail_parser::MessageParser::new()
                    .parse_headers(&message[..n])
                    .and_then(|m| m.subject().map(str::to_string));
                subject = decoded.unwrap_or(subject);
            }
            let (_, c) = tags::parse_subject(&subject, words);
            choice.protection = choice.protection.max(c.protection);
            choice.unsecure |= c.unsecure;
            choice.sms |= c.sms;
        }
    }
    tags::controls(message, &mut choice, words);
    choice.requested().is_some()
}

pub fn examine_with(
    policy: &Arc<Policy>,
    internal_domains: &[String],
    limits: &inspect::Limits,
    message: &Arc<Vec<u8>>,
    recipients: &[String],
) -> Examined {
    let started = std::time::Instant::now();
    let inspection = inspect::inspect_shared(message, limits);
    let scan = detect::scan(policy, &inspection);
    let (_, mut choice) = tags::parse_subject(&inspection.subject, &policy.tags);
    tags::controls(message, &mut choice, &policy.tags);
    let ctx = Context {
        recipients,
        internal_domains,
    };
    let decision = decide::decide(policy, &inspection, &scan, &ctx, choice);
    let strip = tags::needs_strip(message, &inspection.subject, &policy.tags);
    crate::metrics::get().inspected(started.elapsed());
    Examined {
        inspection,
        decision,
        strip,
        policy: policy.clone(),
    }
}

pub fn log_decision(id: &str, d: &Decision) {
    crate::metrics::get().message(&d.verdict);
    tracing::info!(
        id,
        verdict = ?d.verdict,
        rules = ?d.rules,
        findings = d.findings.len(),
        unscannable = d.unscannable.len(),
        "policy decision"
    );
}

/// Files protection was asked for, but there are no files and nothing sensitive in the text.
pub fn deliver_as_written(d: &mut Decision) {
    d.verdict = Verdict::Deliver;
    d.reasons
        .push("no attachments and nothing sensitive in the text: sent as written".into());
}

/// Why a message cannot leave yet, or None when it may. (`Protect` is carried out by the relay.)
pub fn hold_reason(v: &Verdict) -> Option<String> {
    match v {
        Verdict::Deliver | Verdict::Notify | Verdict::Protect { .. } => None,
        // Fail closed: the upload portal is not there yet, so the request does not go out.
        Verdict::Upload => {
            Some("held: upload requests are not available in this version".to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::asks_protection;
    use crate::policy::schema::TagWords;

    fn asks(headers: &str) -> bool {
        let msg = format!("From: a@org.test\r\n{headers}\r\n\r\nTekst\r\n");
        asks_protection(msg.as_bytes(), &TagWords::default())
    }

    #[test]
    fn the_senders_request_is_read_from_the_header_as_written_or_encoded() {
        assert!(asks("Subject: [secure files] cijfers"));
        assert!(asks("Subject: Re: cijfers [beveiligd]"));
        assert!(asks("Subject: =?UTF-8?Q?[secure_files]_cijfers_=C3=A9?="));
        assert!(asks("Subject: =?utf-8?B?W3NlY3VyZV0gZ2VoZWlt?="));
        assert!(asks("Subject: cijfers\r\nX-Sluis-Mode: secure"));
        assert!(!asks("Subject: cijfers"));
        assert!(!asks("Subject: =?UTF-8?Q?cijfers_=C3=A9?="));
        // The strictest reading: an opt-out next to a request for protection is no opt-out,
        // and asking for SMS or a stored-message setting asks for protection.
        assert!(asks("Subject: [secure files] [unsecure] cijfers"));
        assert!(asks("Subject: [sms] cijfers"));
        assert!(asks("Subject: cijfers\r\nX-Sluis-Phone: +31612345678"));
        assert!(asks("Subject: cijfers\r\nX-Sluis-Expires: 2d"));
        assert!(!asks("Subject: [unsecure] cijfers"));
    }
}
