//! The notice a sender gets when the policy action is `notify`: what was found (masked) and
//! how to send securely next time. Dutch and English, the organisation's language first.

use crate::headers::encode_word;
use crate::policy::decide::Decision;
use crate::queue::{Envelope, Recipient, new_id, now};

pub struct Org<'a> {
    pub hostname: &'a str,
    pub name: &'a str,
    pub language: &'a str,
}

/// The wording of one language.
struct Words {
    title: &'static str,
    sent: &'static str,
    found: &'static str,
    external: &'static str,
    advice: &'static str,
    /// Where a finding was, in the sender's words: the subject, the text, an attachment.
    in_subject: &'static str,
    in_text: &'static str,
    in_attachment: &'static str,
    in_header: &'static str,
}

const NL: Words = Words {
    title: "Let op: je bericht bevat mogelijk gevoelige informatie",
    sent: "Je bericht \"{}\" is verzonden, maar bevat mogelijk gevoelige informatie.",
    found: "Wat we vonden:",
    external: "Ontvangers buiten de organisatie:",
    advice: "Volgende keer veilig versturen? Zet [beveiligd] in het onderwerp voor een beveiligd bericht,\r\n\
             of [beveiligde bestanden] om alleen de bijlagen te beveiligen. Met [sms] krijgt de ontvanger\r\n\
             een sms-code in plaats van een wachtwoord.",
    in_subject: "in het onderwerp",
    in_text: "in de tekst",
    in_attachment: "in de bijlage",
    in_header: "in de kopregel",
};

const EN: Words = Words {
    title: "Notice: your message may contain sensitive information",
    sent: "Your message \"{}\" was sent, but it may contain sensitive information.",
    found: "What we found:",
    external: "Recipients outside the organisation:",
    advice: "To send securely next time, put [secure] in the subject for a secure message, or\r\n\
             [secure files] to protect only the attachments. Add [sms] for an SMS code instead of a password.",
    in_subject: "in the subject",
    in_text: "in the text",
    in_attachment: "in the attachment",
    in_header: "in the header field",
};

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// "in de bijlage offerte.pdf" for "attachment offerte.pdf", "in de tekst" for "body 2": the
/// inspector's origins are internal names.
fn place(w: &Words, origin: &str) -> String {
    let origin = clean(origin);
    if origin == "subject" {
        w.in_subject.to_string()
    } else if origin == "body" || origin.starts_with("body ") || origin == "message" {
        w.in_text.to_string()
    } else if let Some(name) = origin.strip_prefix("header ") {
        format!("{} {name}", w.in_header)
    } else if let Some(name) = origin.strip_prefix("attachment ") {
        format!("{} {name}", w.in_attachment)
    } else {
        format!("{} {origin}", w.in_attachment)
    }
}

fn text(w: &Words, subject: &str, d: &Decision) -> String {
    let mut t = w.sent.replace("{}", &clean(subject));
    t.push_str("\r\n\r\n");
    if !d.findings.is_empty() {
        t.push_str(w.found);
        t.push_str("\r\n");
        for f in &d.findings {
            t.push_str(&format!(
                "  - {} {}: {}\r\n",
                clean(&f.label),
                place(w, &f.origin),
                clean(&f.excerpt)
            ));
        }
        t.push_str("\r\n");
    }
    if !d.external.is_empty() {
        t.push_str(&format!("{} {}\r\n\r\n", w.external, d.external.join(", ")));
    }
    t.push_str(w.advice);
    t.push_str("\r\n");
    t
}

/// The notice and its envelope (null sender, so it can never bounce in a loop).
pub fn build(org: &Org<'_>, env: &Envelope, subject: &str, d: &Decision) -> (Envelope, Vec<u8>) {
    let id = new_id();
    let (first, second) = if org.language.starts_with("en") {
        (&EN, &NL)
    } else {
        (&NL, &EN)
    };
    // No "-- " line between the languages: clients fold it away as a signature.
    let body = format!(
        "{}\r\n\r\n{}\r\n{}\r\n",
        text(first, subject, d),
        text(second, subject, d),
        clean(org.name)
    );
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
        name = encode_word(&clean(org.name)),
        host = org.hostname,
        to = env.mail_from,
        subj = encode_word(first.title),
        date = chrono::Utc::now().to_rfc2822(),
    );
    (generated_envelope(id, org.hostname, env), msg.into_bytes())
}

/// The envelope of a message sluis writes to a sender itself (notice or report): from the
/// null sender, marked internal so that it is never examined or bounced again.
pub fn generated_envelope(id: String, hostname: &str, original: &Envelope) -> Envelope {
    Envelope {
        smtputf8: original.smtputf8,
        ..internal_envelope(id, hostname, &original.mail_from)
    }
}

/// The envelope of any mail sluis writes itself (notices, reports, password mails) to `to`.
pub fn internal_envelope(id: String, hostname: &str, to: &str) -> Envelope {
    Envelope {
        id,
        mail_from: String::new(),
        recipients: vec![Recipient {
            address: to.to_string(),
            orcpt: None,
            notify: 0,
        }],
        received_at: now(),
        client_ip: "127.0.0.1".into(),
        helo: hostname.into(),
        tls: false,
        body_8bit: true,
        smtputf8: !to.is_ascii(),
        env_id: None,
        ret_headers_only: true,
        message_id: None,
        already_processed: false,
        markers: Vec::new(),
        internal: true,
        protected: None,
        decided: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_in_the_senders_words() {
        assert_eq!(place(&NL, "body"), "in de tekst");
        assert_eq!(place(&NL, "body 2"), "in de tekst");
        assert_eq!(place(&EN, "subject"), "in the subject");
        assert_eq!(
            place(&NL, "header X-Patient-Id"),
            "in de kopregel X-Patient-Id"
        );
        assert_eq!(
            place(&NL, "attachment offerte.pdf"),
            "in de bijlage offerte.pdf"
        );
        assert_eq!(
            place(&EN, "attachment a.zip / b.docx"),
            "in the attachment a.zip / b.docx"
        );
    }
}
