//! Delivery status notifications (RFC 3464) for recipients that failed for good.

use crate::queue::{Envelope, MessageReader, Recipient, new_id};
use std::io::Read;

pub struct Failure<'a> {
    pub rcpt: &'a Recipient,
    pub reply: &'a str,
    pub remote: Option<&'a str>,
}

/// Whether the sender wants to hear about this failure (RFC 3461 NOTIFY).
pub fn wanted(env: &Envelope, rcpt: &Recipient) -> bool {
    use smtp_proto::{RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER};
    if env.mail_from.is_empty() || env.internal {
        return false; // never bounce a bounce
    }
    rcpt.notify == 0
        || (rcpt.notify & RCPT_NOTIFY_FAILURE != 0 && rcpt.notify & RCPT_NOTIFY_NEVER == 0)
}

fn status_of(reply: &str) -> String {
    reply
        .split_whitespace()
        .nth(1)
        .filter(|s| {
            let p: Vec<&str> = s.split('.').collect();
            p.len() == 3
                && p.iter()
                    .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|s| format!("5{}", &s[1..]))
        .unwrap_or_else(|| "5.0.0".into())
}

/// What happened, why and what the sender can do, Dutch first, in words: the servers' replies
/// are in the machine-readable part (Diagnostic-Code) for the mail admin.
fn explain(failures: &[Failure<'_>]) -> String {
    let mut nl = String::from("Je bericht is niet afgeleverd bij:\r\n");
    let mut en = String::from("Your message was not delivered to:\r\n");
    for f in failures {
        let (why_nl, todo_nl, why_en, todo_en) = reason(f.reply);
        nl.push_str(&format!(
            "  {}\r\n    {why_nl}\r\n    {todo_nl}\r\n",
            f.rcpt.address
        ));
        en.push_str(&format!(
            "  {}\r\n    {why_en}\r\n    {todo_en}\r\n",
            f.rcpt.address
        ));
    }
    format!(
        "{nl}\r\nDe technische gegevens staan in het deel hieronder, voor je beheerder.\r\n\r\n\
         {en}\r\nThe technical details are in the part below, for your mail admin.\r\n"
    )
}

/// (why, what to do) in Dutch and English for a final reply.
fn reason(reply: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    let status = reply.split_whitespace().nth(1).unwrap_or("");
    if reply == crate::protect::NO_PHONE {
        (
            "Je koos voor beveiliging met een sms-code, maar voor deze ontvanger was er geen telefoonnummer. Er is niets naar deze ontvanger gestuurd.",
            "Stuur het bericht opnieuw met het mobiele nummer van de ontvanger, of zonder [sms]: dan krijgt de ontvanger een wachtwoord per e-mail.",
            "You chose protection with an SMS code, but there was no phone number for this recipient. Nothing was sent to this recipient.",
            "Send the message again with the recipient's mobile number, or without [sms]: the recipient then gets a password by e-mail.",
        )
    } else if status.starts_with("5.1.") || status.starts_with("4.1.") {
        (
            "Dit adres bestaat niet, of de server van de ontvanger kent het niet.",
            "Controleer het adres op tikfouten en stuur het bericht opnieuw.",
            "This address does not exist, or the recipient's server does not know it.",
            "Check the address for typing errors and send the message again.",
        )
    } else if status.starts_with("4.") {
        (
            "De server van de ontvanger was te lang niet bereikbaar; het bericht is dagenlang opnieuw geprobeerd.",
            "Probeer het later opnieuw, of neem op een andere manier contact op met de ontvanger.",
            "The recipient's server could not be reached for too long; delivery was retried for days.",
            "Try again later, or contact the recipient another way.",
        )
    } else {
        (
            "De server van de ontvanger heeft het bericht geweigerd.",
            "Controleer het adres; blijft het misgaan, vraag dan je beheerder om de technische gegevens hieronder te bekijken.",
            "The recipient's server refused the message.",
            "Check the address; if it keeps failing, ask your mail admin to look at the technical details below.",
        )
    }
}

/// The original header block, for the third part of the report.
pub fn original_headers(mut msg: MessageReader) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while out.len() < 64 * 1024 {
        let Ok(n) = msg.read(&mut buf) else { break };
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(p) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            out.truncate(p + 2);
            return out;
        }
    }
    out.truncate(64 * 1024);
    out
}

/// Builds the report and its envelope (null sender, to the original sender).
pub fn build(
    hostname: &str,
    env: &Envelope,
    failures: &[Failure<'_>],
    headers: &[u8],
) -> (Envelope, Vec<u8>) {
    let id = new_id();
    let boundary = format!("{id}/{hostname}");
    let date = chrono::Utc::now().to_rfc2822();
    let arrival = chrono::DateTime::from_timestamp(env.received_at, 0)
        .map(|d| d.to_rfc2822())
        .unwrap_or_else(|| date.clone());
    let mut m = String::new();
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{to}>\r\n\
         Subject: Onbestelbaar bericht / Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\r\n\
         This is a MIME-encapsulated message.\r\n\r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n",
        to = env.mail_from
    ));
    m.push_str(&explain(failures));
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; {hostname}\r\n"
    ));
    if let Some(e) = &env.env_id {
        m.push_str(&format!("Original-Envelope-Id: {e}\r\n"));
    }
    m.push_str(&format!(
        "X-Sluis-Queue-ID: {}\r\nArrival-Date: {arrival}\r\n",
        env.id
    ));
    for f in failures {
        m.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\n",
            f.rcpt.address
        ));
        if let Some(o) = &f.rcpt.orcpt {
            m.push_str(&format!("Original-Recipient: {o}\r\n"));
        }
        m.push_str(&format!(
            "Action: failed\r\nStatus: {}\r\n",
            status_of(f.reply)
        ));
        if let Some(r) = f.remote {
            m.push_str(&format!("Remote-MTA: dns; {r}\r\n"));
        }
        let diag = f.reply.replace(['\r', '\n'], " ");
        m.push_str(&format!("Diagnostic-Code: smtp; {diag}\r\n"));
    }
    m.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Description: Undelivered Message Headers\r\n\
         Content-Type: text/rfc822-headers\r\n\r\n"
    ));
    let mut bytes = m.into_bytes();
    bytes.extend_from_slice(headers);
    if !headers.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let dsn_env = crate::notice::generated_envelope(id, hostname, env);
    (dsn_env, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(status_of("550 5.1.1 no such user"), "5.1.1");
        assert_eq!(status_of("451 4.4.7 expired"), "5.4.7");
        assert_eq!(status_of("550 no such user"), "5.0.0");
    }

    #[test]
    fn the_sender_reads_what_happened_dutch_first_without_internals() {
        let rcpt = Recipient {
            address: "piet@extern.test".into(),
            orcpt: None,
            notify: 0,
        };
        for (reply, nl) in [
            (crate::protect::NO_PHONE, "geen telefoonnummer"),
            ("550 5.1.1 <piet@extern.test>: user unknown", "bestaat niet"),
            (
                "451 4.4.7 queue lifetime exceeded",
                "te lang niet bereikbaar",
            ),
            ("554 5.7.1 spam", "heeft het bericht geweigerd"),
        ] {
            let f = [Failure {
                rcpt: &rcpt,
                reply,
                remote: None,
            }];
            let t = explain(&f);
            let (i_nl, i_en) = (t.find(nl).unwrap(), t.find("Your message").unwrap());
            assert!(i_nl < i_en, "{t}");
            assert!(!t.contains("X-Sluis") && !t.contains(reply), "{t}");
        }
    }
}
