//! Parsing a message and getting each part's decoded body.
//!
//! mail-parser decodes every quoted-printable and base64 body while it parses, a byte at a
//! time; for text-heavy mail that cost more than the word scan of the whole message. So a
//! message is parsed with the Content-Transfer-Encoding header ignored (mail-parser then only
//! finds the part boundaries) and each part is decoded by `transfer`, which gives exactly what
//! mail-parser's decoders give. The one place where ignoring the header changes the structure
//! mail-parser builds is an encoded `message/rfc822` part (decoded and parsed as a message,
//! not parsed in place): such messages are parsed the ordinary way.

use std::borrow::Cow;
use std::sync::OnceLock;

use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::parsers::MessageStream;
use mail_parser::{
    GetHeader, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};

use super::transfer::{self, Stop};

/// How a message was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// mail-parser decoded the bodies itself.
    Decoded,
    /// Bodies are still transfer-encoded: decode with `transfer`.
    Raw,
}

/// A part's body after transfer and charset decoding, as mail-parser would have given it.
pub(crate) enum Body<'a> {
    Text(Cow<'a, str>),
    Html(Cow<'a, str>),
    Binary(Cow<'a, [u8]>),
    Message(&'a Message<'a>),
    Multipart,
}

impl Body<'_> {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Text(t) | Body::Html(t) => t.as_bytes(),
            Body::Binary(b) => b,
            Body::Message(m) => m.raw_message(),
            Body::Multipart => b"",
        }
    }
}

/// mail-parser's default header parsing, with Content-Transfer-Encoding skipped.
pub(super) fn raw_parser() -> &'static MessageParser {
    static PARSER: OnceLock<MessageParser> = OnceLock::new();
    PARSER.get_or_init(|| {
        let mut p = MessageParser::new();
        for h in [
            HeaderName::Subject,
            HeaderName::Comments,
            HeaderName::ContentDescription,
            HeaderName::ContentLocation,
        ] {
            p = p.header_text(h);
        }
        for h in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::Cc,
            HeaderName::Bcc,
            HeaderName::ReplyTo,
            HeaderName::Sender,
            HeaderName::ResentTo,
            HeaderName::ResentFrom,
            HeaderName::ResentBcc,
            HeaderName::ResentCc,
            HeaderName::ResentSender,
            HeaderName::ListArchive,
            HeaderName::ListHelp,
            HeaderName::ListId,
            HeaderName::ListOwner,
            HeaderName::ListPost,
            HeaderName::ListSubscribe,
            HeaderName::ListUnsubscribe,
        ] {
            p = p.header_address(h);
        }
        for h in [
            HeaderName::MessageId,
            HeaderName::References,
            HeaderName::InReplyTo,
            HeaderName::ReturnPath,
            HeaderName::ContentId,
            HeaderName::ResentMessageId,
        ] {
            p = p.header_id(h);
        }
        p.header_date(HeaderName::Date)
            .header_date(HeaderName::ResentDate)
            .header_comma_separated(HeaderName::Keywords)
            .header_comma_separated(HeaderName::ContentLanguage)
            .header_received(HeaderName::Received)
            .header_raw(HeaderName::MimeVersion)
            .header_content_type(HeaderName::ContentType)
            .header_content_type(HeaderName::ContentDisposition)
            .ignore_header(HeaderName::ContentTransferEncoding)
    })
}

/// Parses a message; None when mail-parser finds no message at all.
pub(crate) fn parse(raw: &[u8]) -> Option<(Message<'_>, Mode)> {
    parse_cutting(raw, super::skeleton::MIN_CUT)
}

/// `parse`, cutting stretches of at least `min_cut` bytes out of what mail-parser walks.
pub(crate) fn parse_cutting(raw: &[u8], min_cut: usize) -> Option<(Message<'_>, Mode)> {
    if raw.len() > 2 * min_cut
        && let Some(msg) = super::skeleton::parse(raw, min_cut)
    {
        return Some((msg, Mode::Raw));
    }
    if let Some(msg) = raw_parser().parse(raw)
        && decodable(&msg)
    {
        return Some((msg, Mode::Raw));
    }
    MessageParser::default()
        .parse(raw)
        .map(|m| (m, Mode::Decoded))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    QuotedPrintable,
    Base64,
}

/// The transfer encoding mail-parser would decode: the last Content-Transfer-Encoding header,
/// read as unstructured text, `base64` or `quoted-printable` in any case.
pub(super) fn encoding(data: &[u8], part: &MessagePart<'_>) -> Option<Encoding> {
    let h = part
        .headers
        .iter()
        .rev()
        .find(|h| h.name == HeaderName::ContentTransferEncoding)?;
    let raw = data.get(h.offset_start as usize..h.offset_end as usize)?;
    match MessageStream::new(raw).parse_unstructured() {
        HeaderValue::Text(v) if v.eq_ignore_ascii_case("base64") => Some(Encoding::Base64),
        HeaderValue::Text(v) if v.eq_ignore_ascii_case("quoted-printable") => {
            Some(Encoding::QuotedPrintable)
        }
        _ => None,
    }
}

/// Whether every encoded part of a message parsed in `Raw` mode can be decoded here: none is
/// (or may be, without a Content-Type) a message, and each ends where a scan can stop.
pub(super) fn decodable(msg: &Message<'_>) -> bool {
    let data = msg.raw_message.as_ref();
    msg.parts.iter().all(|part| match &part.body {
        PartType::Message(nested) => encoding(data, part).is_none() && decodable(nested),
        PartType::Multipart(_) => true,
        _ => {
            if part.is_encoding_problem || encoding(data, part).is_none() {
                return true;
            }
            let is_message = part.content_type().is_none_or(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct.subtype().is_some_and(|s| {
                        s.eq_ignore_ascii_case("rfc822") || s.eq_ignore_ascii_case("global")
                    })
            });
            !is_message
                && transfer::stop_of(data, part.offset_body as usize, part.offset_end as usize)
                    .is_some()
        }
    })
}

/// Text of decoded bytes the way mail-parser makes it: the declared charset when it knows it,
/// else UTF-8 (lossy).
fn text_of<'a>(bytes: Cow<'a, [u8]>, part: &MessagePart<'_>) -> Cow<'a, str> {
    let decoder = part
        .headers
        .header_value(&HeaderName::ContentType)
        .and_then(|c| c.as_content_type())
        .and_then(|ct| ct.attribute("charset"))
        // UTF-8 and ASCII need no decoder: the std validation below is much faster than
        // mail-parser's lossy UTF-8 decoder, and gives the same text.
        .filter(|c| {
            !["utf-8", "utf8", "us-ascii", "ascii"]
                .iter()
                .any(|u| c.eq_ignore_ascii_case(u))
        })
        .and_then(|c| charset_decoder(c.as_bytes()));
    match (bytes, decoder) {
        (Cow::Owned(v), Some(d)) => Cow::Owned(d(&v)),
        (Cow::Owned(v), None) => Cow::Owned(
            String::from_utf8(v)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
        (Cow::Borrowed(b), Some(d)) => Cow::Owned(d(b)),
        (Cow::Borrowed(b), None) => String::from_utf8_lossy(b),
    }
}

/// The body as mail-parser gave it.
fn as_parsed<'a>(part: &'a MessagePart<'a>) -> Body<'a> {
    match &part.body {
        PartType::Text(t) => Body::Text(Cow::Borrowed(t)),
        PartType::Html(t) => Body::Html(Cow::Borrowed(t)),
        PartType::Binary(b) | PartType::InlineBinary(b) => Body::Binary(Cow::Borrowed(b)),
        PartType::Message(m) => Body::Message(m),
        PartType::Multipart(_) => Body::Multipart,
    }
}

/// A part's decoded body and whether it is malformed (kept as raw text).
pub(crate) fn body<'a>(
    msg: &'a Message<'a>,
    part: &'a MessagePart<'a>,
    mode: Mode,
) -> (Body<'a>, bool) {
    let parsed = (as_parsed(part), part.is_encoding_problem);
    if mode == Mode::Decoded || part.is_encoding_problem {
        return parsed;
    }
    if matches!(part.body, PartType::Message(_) | PartType::Multipart(_)) {
        return parsed;
    }
    let data = msg.raw_message.as_ref();
    let Some(enc) = encoding(data, part) else {
        return parsed;
    };
    let (start, end) = (part.offset_body as usize, part.offset_end as usize);
    // `decodable` checked that the stop exists.
    let stop = transfer::stop_of(data, start, end).unwrap_or(Stop::End);
    let decoded = match enc {
        Encoding::QuotedPrintable => transfer::quoted_printable(data, start, stop),
        Encoding::Base64 => transfer::base64(data, start, stop),
    };
    match (decoded, &part.body) {
        (Ok(bytes), PartType::Text(_)) => (Body::Text(text_of(Cow::Owned(bytes), part)), false),
        (Ok(bytes), PartType::Html(_)) => (Body::Html(text_of(Cow::Owned(bytes), part)), false),
        (Ok(bytes), _) => (Body::Binary(Cow::Owned(bytes)), false),
        // mail-parser keeps a part it cannot decode as raw text, never as HTML. Taken from the
        // original bytes: the parsed body may come from a skeleton.
        (Err(_), _) => {
            let raw = data.get(start..end).unwrap_or_default();
            (Body::Text(text_of(Cow::Borrowed(raw), part)), true)
        }
    }
}

/// A parsed message whose bodies are decoded on request: for the protect and rewrite steps,
/// which need a few bodies (text, HTML, attachments) of mail that may be large.
pub(crate) struct Parsed<'a> {
    pub msg: Message<'a>,
    pub mode: Mode,
}

impl<'a> Parsed<'a> {
    pub fn new(raw: &'a [u8]) -> Option<Parsed<'a>> {
        parse(raw).map(|(msg, mode)| Parsed { msg, mode })
    }

    /// A part's decoded body.
    pub fn body(&'a self, part: &'a MessagePart<'a>) -> Body<'a> {
        body(&self.msg, part, self.mode).0
    }

    /// The first text body (an HTML-only message's HTML as text), as `Message::body_text(0)`.
    pub fn text(&'a self) -> Option<String> {
        if self.mode == Mode::Decoded {
            return self.msg.body_text(0).map(|t| t.into_owned());
        }
        let part = self.msg.parts.get(*self.msg.text_body.first()? as usize)?;
        match self.body(part) {
            Body::Text(t) => Some(t.into_owned()),
            Body::Html(h) => Some(mail_parser::decoders::html::html_to_text(&h)),
            _ => None,
        }
    }

    /// The first HTML body, when the message has one of its own.
    pub fn html(&'a self) -> Option<String> {
        let i = *self.msg.html_body.iter().find(|&&i| {
            matches!(
                self.msg.parts.get(i as usize).map(|p| &p.body),
                Some(PartType::Html(_))
            )
        })?;
        match self.body(self.msg.parts.get(i as usize)?) {
            Body::Html(h) | Body::Text(h) => Some(h.into_owned()),
            _ => None,
        }
    }

    /// A part's bytes after transfer decoding (text as UTF-8).
    pub fn bytes(&'a self, part: &'a MessagePart<'a>) -> Option<Cow<'a, [u8]>> {
        match self.body(part) {
            Body::Binary(b) => Some(b),
            Body::Text(Cow::Borrowed(t)) | Body::Html(Cow::Borrowed(t)) => {
                Some(Cow::Borrowed(t.as_bytes()))
            }
            Body::Text(Cow::Owned(t)) | Body::Html(Cow::Owned(t)) => {
                Some(Cow::Owned(t.into_bytes()))
            }
            Body::Message(_) | Body::Multipart => None,
        }
    }
}
