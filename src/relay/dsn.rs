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
         Subject: Undelivered Mail Returned to Sender / Onbestelbaar bericht\r\n\
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
    m.push_str(&format!(
        "Dit is het mailsysteem op {hostname}.\r\n\
         Je bericht kon niet worden afgeleverd bij een of meer ontvangers.\r\n\r\n\
         This is the mail system at {hostname}.\r\n\
         Your message could not be delivered to one or more recipients.\r\n\r\n"
    ));
    for f in failures {
        m.push_str(&format!("<{}>: {}\r\n", f.rcpt.address, f.reply));
    }
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
}
