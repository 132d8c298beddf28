//! The notice a sender gets when the policy action is `notify`: what was found (masked) and
//! how to send securely next time. Dutch and English, the organisation's language first.

use crate::policy::decide::Decision;
use crate::queue::{Envelope, Recipient, new_id, now};

pub struct Org<'a> {
    pub hostname: &'a str,
    pub name: &'a str,
    pub language: &'a str,
}

fn encode_header(s: &str) -> String {
    use base64::Engine;
    if s.is_ascii() {
        s.to_string()
    } else {
        format!(
            "=?utf-8?b?{}?=",
            base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
        )
    }
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

fn dutch(subject: &str, d: &Decision) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "Je bericht \"{}\" is verzonden, maar bevat mogelijk gevoelige informatie.\r\n\r\n",
        clean(subject)
    ));
    if !d.findings.is_empty() {
        t.push_str("Wat we vonden:\r\n");
        for f in &d.findings {
            t.push_str(&format!(
                "  - {} in {}: {}\r\n",
                clean(&f.label),
                clean(&f.origin),
                clean(&f.excerpt)
            ));
        }
        t.push_str("\r\n");
    }
    if !d.external.is_empty() {
        t.push_str(&format!(
            "Ontvangers buiten de organisatie: {}\r\n\r\n",
            d.external.join(", ")
        ));
    }
    t.push_str(
        "Volgende keer veilig versturen? Zet [beveiligd] in het onderwerp voor een beveiligd bericht,\r\n\
         of [beveiligde bestanden] om alleen de bijlagen te beveiligen. Met [sms] krijgt de ontvanger\r\n\
         een sms-code in plaats van een wachtwoord.\r\n",
    );
    t
}

fn english(subject: &str, d: &Decision) -> String {
    let mut t = String::new();
    t.push_str(&format!(
        "Your message \"{}\" was sent, but it may contain sensitive information.\r\n\r\n",
        clean(subject)
    ));
    if !d.findings.is_empty() {
        t.push_str("What we found:\r\n");
        for f in &d.findings {
            t.push_str(&format!(
                "  - {} in {}: {}\r\n",
                clean(&f.label),
                clean(&f.origin),
                clean(&f.excerpt)
            ));
        }
        t.push_str("\r\n");
    }
    if !d.external.is_empty() {
        t.push_str(&format!(
            "Recipients outside the organisation: {}\r\n\r\n",
            d.external.join(", ")
        ));
    }
    t.push_str(
        "To send securely next time, put [secure] in the subject for a secure message, or\r\n\
         [secure files] to protect only the attachments. Add [sms] for an SMS code instead of a password.\r\n",
    );
    t
}

/// The notice and its envelope (null sender, so it can never bounce in a loop).
pub fn build(org: &Org<'_>, env: &Envelope, subject: &str, d: &Decision) -> (Envelope, Vec<u8>) {
    let id = new_id();
    let (first, second, title) = if org.language.starts_with("en") {
        (
            english(subject, d),
            dutch(subject, d),
            "Notice: your message may contain sensitive information",
        )
    } else {
        (
            dutch(subject, d),
            english(subject, d),
            "Let op: je bericht bevat mogelijk gevoelige informatie",
        )
    };
    let body = format!("{first}\r\n-- \r\n\r\n{second}\r\n{}\r\n", clean(org.name));
    let msg = format!(
        "From: {name} <postmaster@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: {subj}\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}@{host}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{body}",
        name = encode_header(&clean(org.name)),
        host = org.hostname,
        to = env.mail_from,
        subj = encode_header(title),
        date = chrono::Utc::now().to_rfc2822(),
    );
    let nenv = Envelope {
        id,
        mail_from: String::new(),
        recipients: vec![Recipient {
            address: env.mail_from.clone(),
            orcpt: None,
            notify: 0,
        }],
        received_at: now(),
        client_ip: "127.0.0.1".into(),
        helo: org.hostname.into(),
        tls: false,
        body_8bit: true,
        smtputf8: env.smtputf8,
        env_id: None,
        ret_headers_only: true,
        message_id: None,
        already_processed: false,
        internal: true,
    };
    (nenv, msg.into_bytes())
}
