//! The mail a recipient gets instead of protected content: attachments replaced by a link
//! block (public and secure files), or the whole message replaced by a notification with an
//! 'Open bericht' button (secure message). One copy per recipient, each with its own link.

pub mod words;

use crate::headers::{self, encode_word};
use crate::inspect::body::Parsed;
use crate::policy::schema::Protection;
use chrono::{DateTime, Utc};
use mail_builder::MessageBuilder;
use mail_parser::{MessagePart, MimeHeaders, PartType};
use words::Lang;

#[derive(Debug, Clone)]
pub struct FileInfo {
    pub name: String,
    pub size: u64,
}

/// Everything that differs between the copies of one protected message.
pub struct Copy<'a> {
    pub protection: Protection,
    pub org_name: &'a str,
    /// Host of the portal, shown so recipients can tell the link is genuine.
    pub portal_host: &'a str,
    pub language: &'a str,
    /// How the sender is named in the notification.
    pub sender: &'a str,
    /// This recipient's personal link.
    pub link: &'a str,
    pub expires: DateTime<Utc>,
    pub files: &'a [FileInfo],
    /// Replace the subject by a neutral one (secure message, as the policy says, or because
    /// something was found in the subject).
    pub neutral_subject: bool,
    /// The subject without tags.
    pub subject: &'a str,
    /// `[organisation] address_form = "u"`: the Dutch text addresses the recipient as 'u'.
    pub formal: bool,
    /// Parts of the original that stay in the mail (crate::protect::inline), by index.
    pub inline: &'a [usize],
}

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' => {}
            c => o.push(c),
        }
    }
    o
}

fn fill(template: &str, value: &str) -> String {
    template.replacen("{}", value, 1)
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

const BUTTON: &str = "display:inline-block;padding:12px 24px;background:#0b5cad;color:#ffffff;\
text-decoration:none;border-radius:4px;font-weight:bold";
const BOX: &str = "font-family:Arial,Helvetica,sans-serif;font-size:15px;color:#1a1a1a;\
border:1px solid #d0d7de;border-radius:6px;padding:16px;margin:16px 0;max-width:560px";

fn file_list_text(l: &Lang, files: &[FileInfo]) -> String {
    files
        .iter()
        .map(|f| format!("  - {} ({})\r\n", clean(&f.name), words::size(l, f.size)))
        .collect()
}

fn file_list_html(l: &Lang, files: &[FileInfo]) -> String {
    let items: String = files
        .iter()
        .map(|f| format!("<li>{} ({})</li>", escape(&f.name), words::size(l, f.size)))
        .collect();
    format!("<ul style=\"margin:8px 0;padding-left:20px\">{items}</ul>")
}

/// The notification or link block, in one language.
fn block_text(l: &Lang, c: &Copy<'_>) -> String {
    let until = fill(l.until, &words::date_time(l, c.expires));
    match c.protection {
        Protection::SecureMessage => format!(
            "{}\r\n\r\n{}: {}\r\n\r\n{}\r\n",
            fill(secure_message(l, c), &clean(c.sender)),
            l.open,
            c.link,
            until
        ),
        p => format!(
            "{}\r\n{}\r\n{}: {}\r\n{}\r\n",
            if p == Protection::PublicFiles {
                l.files_public
            } else {
                l.files_secure
            },
            file_list_text(l, c.files),
            l.download,
            c.link,
            until
        ),
    }
}

fn block_html(l: &Lang, c: &Copy<'_>) -> String {
    let until = escape(&fill(l.until, &words::date_time(l, c.expires)));
    let link = escape(c.link);
    match c.protection {
        Protection::SecureMessage => format!(
            "<div style=\"{BOX}\"><p>{}</p><p><a href=\"{link}\" style=\"{BUTTON}\">{}</a></p><p>{until}</p></div>",
            escape(&fill(secure_message(l, c), c.sender)),
            l.open
        ),
        p => format!(
            "<div style=\"{BOX}\"><p>{}</p>{}<p><a href=\"{link}\" style=\"{BUTTON}\">{}</a></p><p>{until}</p></div>",
            if p == Protection::PublicFiles {
                l.files_public
            } else {
                l.files_secure
            },
            file_list_html(l, c.files),
            l.download
        ),
    }
}

fn secure_message(l: &Lang, c: &Copy<'_>) -> &'static str {
    if c.formal {
        l.secure_message_formal
    } else {
        l.secure_message
    }
}

/// The footer in both languages, first language first.
fn footer(first: &Lang, second: &Lang, c: &Copy<'_>) -> [String; 2] {
    [first, second].map(|l| fill(&fill(l.footer, &clean(c.org_name)), c.portal_host))
}

fn footer_html(first: &Lang, second: &Lang, c: &Copy<'_>) -> String {
    footer(first, second, c)
        .iter()
        .map(|f| {
            format!(
                "<p style=\"font-family:Arial,sans-serif;font-size:12px;color:#57606a\">{}</p>",
                escape(f)
            )
        })
        .collect()
}

/// Header fields of the original that a secure message carries: addresses, date and
/// threading (and, in the notification, the trace fields). Nothing else of the original travels
/// (a custom header or `Thread-Topic` can carry what the message protects). The portal shows
/// the same fields with the message (`protect::parts`).
pub const SECURE_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "date",
    "message-id",
    "in-reply-to",
    "references",
];

/// Header fields of the original that the copy keeps as they were written.
fn kept_headers(original: &[u8], protection: Protection) -> Vec<u8> {
    let n = headers::block_len(original);
    let mut out = Vec::new();
    for f in headers::split_fields(&original[..n]) {
        let lower = f.name.to_ascii_lowercase();
        let keep = if protection == Protection::SecureMessage {
            lower == "received" || SECURE_FIELDS.contains(&lower.as_str())
        } else {
            !matches!(
                lower.as_str(),
                "bcc"
                    | "subject"
                    | "mime-version"
                    | "content-type"
                    | "content-transfer-encoding"
                    | "content-disposition"
                    | "content-id"
                    | "content-description"
                    | "dkim-signature"
            ) && !lower.starts_with("x-sluis-")
        };
        if keep {
            out.extend_from_slice(f.raw);
        }
    }
    out
}

/// Whether the message has an HTML body of its own (mail-parser also lists a plain-text body
/// among the HTML bodies when there is no HTML).
pub fn has_html(msg: &mail_parser::Message<'_>) -> bool {
    msg.html_body.iter().any(|&i| {
        matches!(
            msg.parts.get(i as usize).map(|p| &p.body),
            Some(PartType::Html(_))
        )
    })
}

/// `type/subtype` of a part, `application/octet-stream` when it says nothing.
pub fn content_type(part: &MessagePart<'_>) -> String {
    part.content_type()
        .map(|t| match t.subtype() {
            Some(sub) => format!("{}/{}", t.ctype(), sub),
            None => t.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into())
        .to_ascii_lowercase()
}

/// Builds one recipient's copy from the original message.
pub fn build(original: &[u8], c: &Copy<'_>) -> std::io::Result<Vec<u8>> {
    match Parsed::new(original) {
        Some(p) => build_from(original, &p, c),
        None => build_parsed(original, None, c),
    }
}

/// Like [`build`], with the message parsed once for all recipients.
pub(crate) fn build_from<'a>(
    original: &[u8],
    p: &'a Parsed<'a>,
    c: &Copy<'_>,
) -> std::io::Result<Vec<u8>> {
    build_parsed(original, Some(p), c)
}

fn build_parsed<'a>(
    original: &[u8],
    decoded: Option<&'a Parsed<'a>>,
    c: &Copy<'_>,
) -> std::io::Result<Vec<u8>> {
    let (first, second) = words::lang(c.language);
    let subject = if c.neutral_subject && c.protection == Protection::SecureMessage {
        fill(first.neutral_subject, &clean(c.org_name))
    } else {
        clean(c.subject)
    };
    let mut body = MessageBuilder::new();
    let (text, html) = match c.protection {
        Protection::SecureMessage => {
            // No "-- " line between the languages: mail clients take it for a signature
            // and fold away everything below it.
            let [f1, f2] = footer(first, second, c);
            let text = format!(
                "{}\r\n\r\n{}\r\n{f1}\r\n{f2}\r\n",
                block_text(first, c),
                block_text(second, c),
            );
            let html = format!(
                "<!DOCTYPE html><html><body style=\"margin:0;padding:16px;background:#f6f8fa\">{}{}{}\
                 </body></html>",
                block_html(first, c),
                block_html(second, c),
                footer_html(first, second, c)
            );
            (text, Some(html))
        }
        _ => {
            let orig_text = decoded.and_then(|d| d.text()).unwrap_or_default();
            let [f1, f2] = footer(first, second, c);
            let text = format!(
                "{}\r\n\r\n-----\r\n{}\r\n{}\r\n{f1}\r\n{f2}\r\n",
                orig_text.trim_end(),
                block_text(first, c),
                block_text(second, c),
            );
            let html = decoded.and_then(|d| d.html()).map(|h| {
                let block = format!(
                    "{}{}{}",
                    block_html(first, c),
                    block_html(second, c),
                    footer_html(first, second, c)
                );
                match h.to_ascii_lowercase().rfind("</body>") {
                    Some(i) => format!("{}{block}{}", &h[..i], &h[i..]),
                    None => format!("{h}{block}"),
                }
            });
            // Inline images the HTML needs stay; every other attachment is replaced.
            if let (Some(d), true) = (decoded, html.is_some()) {
                for part in c.inline.iter().filter_map(|&i| d.msg.parts.get(i)) {
                    if let (Some(cid), Some(data)) = (part.content_id(), d.bytes(part)) {
                        body = body.inline(content_type(part), cid.to_string(), data.into_owned());
                    }
                }
            }
            (text, html)
        }
    };
    body = body.text_body(text);
    if let Some(h) = html {
        body = body.html_body(h);
    }
    let mut out = kept_headers(original, c.protection);
    out.extend_from_slice(
        format!(
            "Subject: {}\r\nMIME-Version: 1.0\r\n",
            encode_word(&subject)
        )
        .as_bytes(),
    );
    body.write_body(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
