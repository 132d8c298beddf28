//! MIME walking with mail-parser: bodies, attachments, nested messages.

use mail_parser::{Message, MimeHeaders};

use super::body::{self, Body, Mode};
use super::extract::extract;
use super::{Attachment, Bound, Ctx, Decoded, html, join};
use std::borrow::Cow;

/// Inspects the top-level message.
pub(crate) fn inspect_message(ctx: &mut Ctx, raw: &[u8]) {
    let Some((msg, mode)) = body::parse(raw) else {
        ctx.unscannable("message", "not a parseable MIME message (read as text)");
        ctx.add_text("body", &String::from_utf8_lossy(raw));
        return;
    };
    ctx.out.subject = msg.subject().unwrap_or_default().to_string();
    walk(ctx, &msg, mode, "", 0);
}

/// Inspects an attached message given as bytes (an .eml file, or one mail-parser left undecoded).
pub(crate) fn inspect_nested(ctx: &mut Ctx, raw: &[u8], origin: &str, depth: usize) {
    match body::parse(raw) {
        Some((msg, mode)) => walk(ctx, &msg, mode, origin, depth),
        None => {
            ctx.unscannable(origin, "not a parseable MIME message (read as text)");
            ctx.add_text(origin, &String::from_utf8_lossy(raw));
        }
    }
}

fn content_type_of(part: &mail_parser::MessagePart<'_>, body: &Body<'_>) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => match body {
            Body::Html(_) => "text/html".into(),
            Body::Message(_) => "message/rfc822".into(),
            Body::Binary(_) => "application/octet-stream".into(),
            _ => "text/plain".into(),
        },
    }
}

/// Walks the parts of one (possibly nested) message; `prefix` is its origin ("" at top level),
/// `depth` the container depth of the message itself; `mode` how it was parsed.
fn walk(ctx: &mut Ctx, msg: &Message<'_>, mode: Mode, prefix: &str, depth: usize) {
    // An attached message cut short loses its closing boundary. (Not asked of the message
    // itself: that arrived whole, and some mailers leave the closing boundary out.)
    if !prefix.is_empty() && unclosed_multipart(msg) {
        ctx.unscannable(
            prefix,
            "damaged message: a multipart part has no closing boundary (truncated?)",
        );
    }
    if let Some(subject) = msg.subject() {
        ctx.add_text(&join(prefix, "subject"), subject);
    }
    for (origin, text) in super::fields::texts(msg) {
        ctx.add_text(&join(prefix, &origin), &text);
    }
    let mut bodies = 0usize;
    // Iterative walk (a deeply nested multipart must not exhaust the stack), in document order.
    let mut stack: Vec<u32> = vec![0];
    let mut seen = vec![false; msg.parts.len()];
    while let Some(id) = stack.pop() {
        let Some(part) = msg.parts.get(id as usize) else {
            continue;
        };
        // Guard against cycles in the part graph.
        match seen.get_mut(id as usize) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        if let mail_parser::PartType::Multipart(children) = &part.body {
            stack.extend(children.iter().rev());
            continue;
        }
        let position = if prefix.is_empty() { "message" } else { prefix };
        if !ctx.count_part(position) {
            return;
        }
        let (body, is_encoding_problem) = body::body(msg, part, mode);
        let mut keep = false;
        let content_type = content_type_of(part, &body);
        let name = part.attachment_name().map(str::to_string);
        let is_attachment_disposition = part
            .content_disposition()
            .is_some_and(|d| d.is_attachment());
        match &body {
            Body::Text(t) | Body::Html(t) if name.is_none() && !is_attachment_disposition => {
                bodies += 1;
                let label = if bodies == 1 {
                    "body".to_string()
                } else {
                    format!("body {bodies}")
                };
                let origin = join(prefix, &label);
                if !ctx.charge(&origin, t.len() as u64) {
                    return;
                }
                if matches!(body, Body::Html(_)) {
                    ctx.add_text(&origin, &html::to_text(t));
                } else {
                    ctx.add_text(&origin, t);
                }
                if is_encoding_problem {
                    ctx.unscannable(&origin, "malformed MIME part (read as raw text)");
                }
            }
            Body::Message(nested) => {
                let name = name.unwrap_or_else(|| match nested.subject() {
                    Some(s) if !s.trim().is_empty() => format!("{}.eml", s.trim()),
                    _ => "message.eml".to_string(),
                });
                let origin = join(prefix, &format!("attachment {name}"));
                let size = nested.raw_message().len() as u64;
                ctx.out.attachments.push(Attachment {
                    name,
                    content_type,
                    size,
                    origin: origin.clone(),
                });
                if depth + 1 > ctx.limits.max_depth {
                    ctx.unscannable(&origin, &Bound::Depth(ctx.limits.max_depth).to_string());
                    continue;
                }
                if !ctx.charge(&origin, size) {
                    return;
                }
                ctx.add_shadow(&origin, nested.raw_message());
                walk(ctx, nested, mode, &origin, depth + 1);
            }
            _ => {
                keep = prefix.is_empty() && !is_encoding_problem;
                let name = name.unwrap_or_else(|| format!("part {}", id));
                let origin = join(prefix, &format!("attachment {name}"));
                let data = body.bytes();
                ctx.out.attachments.push(Attachment {
                    name: name.clone(),
                    content_type: content_type.clone(),
                    size: data.len() as u64,
                    origin: origin.clone(),
                });
                if !ctx.charge(&origin, data.len() as u64) {
                    return;
                }
                if is_encoding_problem && matches!(body, Body::Binary(_)) {
                    ctx.unscannable(&origin, "malformed MIME part (could not be decoded)");
                }
                extract(ctx, &name, &content_type, data, &origin, depth + 1);
            }
        }
        if keep && let Body::Binary(Cow::Owned(bytes)) = body {
            let kept: usize = ctx.out.decoded.iter().map(|d| d.bytes.len()).sum();
            if kept + bytes.len() <= ctx.limits.keep_decoded {
                let span = (part.offset_body as usize, part.offset_end as usize);
                ctx.out.decoded.push(Decoded {
                    span,
                    bytes: std::sync::Arc::new(bytes),
                });
            }
        }
    }
}

/// Whether a multipart part of `msg` lacks its closing `--boundary--` line.
fn unclosed_multipart(msg: &Message<'_>) -> bool {
    let raw = msg.raw_message();
    msg.parts.iter().any(|part| {
        let Some(ct) = part
            .content_type()
            .filter(|ct| ct.ctype().eq_ignore_ascii_case("multipart"))
        else {
            return false;
        };
        let Some(boundary) = ct.attribute("boundary") else {
            return true;
        };
        let close = format!("--{boundary}--");
        memchr::memmem::find(raw, close.as_bytes()).is_none()
    })
}
