//! The portal's pages: landing (authentication or the message), sending a password or code,
//! signing in and out, the sanitised message body, and the clear status pages.

use super::Web;
use super::auth::Link;
use super::http::{self as h, Resp};
use super::i18n::{self, Texts, fill};
use super::resend;
use crate::queue::now;
use crate::rewrite::words;
use crate::store::{Auth, DataKey, Event, EventKind, Message, MessageId, PasswordDelivery};
use askama::Template;
use chrono::{DateTime, Utc};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// One request for one link: the token resolved, the message loaded, the language chosen.
pub struct Ctx {
    pub token: String,
    pub link: Link,
    pub msg: Message,
    pub dek: DataKey,
    pub rcpt: u32,
    pub t: &'static Texts,
    /// `?lang=` given: remember it.
    pub set_lang: Option<&'static str>,
    pub session: Option<String>,
    pub ip: IpAddr,
    pub origin: Option<String>,
    pub fetch_site: Option<String>,
    /// `?sent=1`: a password or code was just sent.
    pub sent: bool,
}

#[derive(Template)]
#[template(path = "auth.html")]
struct AuthPage<'a> {
    t: &'a Texts,
    org: &'a str,
    logo: bool,
    heading: String,
    footer: String,
    sender: String,
    notice: Option<String>,
    error: Option<String>,
    intro: &'a str,
    can_send: bool,
    /// Something went out in the current window: the button becomes a quiet 'send again'.
    sent: bool,
    /// How many more sends the limit allows, or when the next can go.
    resend_hint: Option<String>,
    sms: bool,
    secret_label: &'a str,
    token: &'a str,
    csrf: String,
    until: String,
}

pub struct FileRow {
    pub index: usize,
    pub name: String,
    pub size: String,
    pub available: bool,
    pub state: Option<String>,
    /// Of the original file, in hex: the recipient can check what was downloaded.
    /// Hex; `None` for the moment after sending while it is being computed.
    pub sha256: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    t: &'a Texts,
    org: &'a str,
    logo: bool,
    heading: String,
    footer: String,
    subject: &'a str,
    sender: String,
    date: String,
    has_html: bool,
    body_text: Option<String>,
    files: Vec<FileRow>,
    zip: bool,
    token: &'a str,
    until: String,
    signed_in: bool,
    csrf: String,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage<'a> {
    t: &'a Texts,
    org: &'a str,
    logo: bool,
    heading: &'a str,
    footer: String,
    text: String,
}

#[derive(Template)]
#[template(path = "body.html")]
struct BodyPage {
    html: String,
}

pub(super) fn session_cookie(web: &Web) -> &'static str {
    // `__Host-` needs Secure, which a browser only keeps over HTTPS.
    if web.https { "__Host-sluis" } else { "sluis" }
}

fn render(t: impl Template) -> String {
    t.render()
        .unwrap_or_else(|e| format!("<!DOCTYPE html><p>template error: {e}</p>"))
}

fn footer(web: &Web, t: &Texts) -> String {
    fill(t.protected_by, &web.cfg.organisation.name)
}

/// A clear page for a link that opens nothing (any more), in the visitor's language.
pub fn status(web: &Web, t: &'static Texts, code: StatusCode, heading: &str, text: &str) -> Resp {
    h::html(
        code,
        render(StatusPage {
            t,
            org: &web.cfg.organisation.name,
            logo: web.logo.is_some(),
            heading,
            footer: footer(web, t),
            text: text.to_string(),
        }),
    )
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| h::form(q.as_bytes()))
        .unwrap_or_default()
}

fn lang_of(web: &Web, req: &Request<Incoming>) -> (&'static Texts, Option<&'static str>) {
    let q = query(req);
    let cookies = h::cookies(req.headers());
    let explicit = q
        .get("lang")
        .map(String::as_str)
        .filter(|l| *l == "nl" || *l == "en");
    let code = i18n::choose(
        explicit,
        cookies.get("sluis_lang").map(String::as_str),
        req.headers()
            .get(http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
        &web.cfg.organisation.default_language,
    );
    (i18n::texts(code), explicit.map(|_| i18n::texts(code).code))
}

impl Ctx {
    pub fn new(
        web: &Web,
        req: &Request<Incoming>,
        token: &str,
        peer: SocketAddr,
    ) -> Result<Ctx, Box<Resp>> {
        let (t, set_lang) = lang_of(web, req);
        // The same page for every unknown link, well-formed or cut off: it says nothing about
        // which links exist.
        let nf = || {
            Box::new(status(
                web,
                t,
                StatusCode::NOT_FOUND,
                t.unknown_title,
                t.unknown_text,
            ))
        };
        let (id, rcpt) = match web.store.meta.link_for_token(token) {
            Ok(Some(l)) => l,
            Ok(None) => return Err(nf()),
            Err(e) => {
                tracing::error!(error = %e, "link lookup failed");
                return Err(Box::new(h::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again later\n",
                )));
            }
        };
        let expired = || {
            Box::new(status(
                web,
                t,
                StatusCode::GONE,
                t.expired_title,
                t.expired_text,
            ))
        };
        let (msg, dek) = match web.store.meta.get_message(id) {
            Ok(Some(m)) => m,
            // Shredded: the token survives to say so.
            Ok(None) => return Err(expired()),
            Err(e) => {
                tracing::error!(message = %id, error = %e, "message does not open");
                return Err(Box::new(h::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Try again later\n",
                )));
            }
        };
        if msg.expires <= now() {
            return Err(expired());
        }
        let Some(r) = msg.recipients.get(rcpt as usize) else {
            return Err(nf());
        };
        if msg.blocked || r.blocked {
            return Err(Box::new(status(
                web,
                t,
                StatusCode::FORBIDDEN,
                t.blocked_title,
                t.blocked_text,
            )));
        }
        let cookies = h::cookies(req.headers());
        Ok(Ctx {
            token: token.to_string(),
            link: (id, rcpt),
            session: cookies.get(session_cookie(web)).cloned(),
            msg,
            dek,
            rcpt,
            t,
            set_lang,
            ip: super::client::client_ip(&web.trusted_proxies, req.headers(), peer.ip()),
            origin: req
                .headers()
                .get(http::header::ORIGIN)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            fetch_site: req
                .headers()
                .get("sec-fetch-site")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            sent: query(req).get("sent").is_some_and(|v| v == "1"),
        })
    }

    pub fn id(&self) -> MessageId {
        self.link.0
    }

    /// Whether this visitor may see the content: public files, or a live session for this link.
    pub fn allowed(&self, web: &Web) -> bool {
        self.msg.auth == Auth::None
            || self
                .session
                .as_deref()
                .is_some_and(|s| web.auth.session_valid(s, self.link))
    }

    fn until(&self) -> String {
        let (l, _) = words::lang(self.t.code);
        let d = DateTime::<Utc>::from_timestamp(self.msg.expires, 0).unwrap_or_else(Utc::now);
        fill(self.t.available_until, &words::date_time(l, d))
    }
}

fn remember_lang(web: &Web, ctx: &Ctx, mut r: Resp) -> Resp {
    if let Some(l) = ctx.set_lang {
        let secure = if web.https { "; Secure" } else { "" };
        h::set_cookie(
            &mut r,
            &format!("sluis_lang={l}; Path=/; Max-Age=31536000; SameSite=Lax{secure}"),
        );
    }
    r
}

pub fn check_csrf(web: &Web, ctx: &Ctx, form: &HashMap<String, String>) -> Result<(), Box<Resp>> {
    // With `Referrer-Policy: no-referrer` browsers send `Origin: null` even from our own pages;
    // then Sec-Fetch-Site (which browsers set and pages cannot) must say same-origin.
    let site_ok = ctx
        .fetch_site
        .as_deref()
        .is_none_or(|s| s == "same-origin" || s == "none");
    let origin_ok = match ctx.origin.as_deref() {
        None => true,
        Some("null") => ctx.fetch_site.as_deref() == Some("same-origin"),
        Some(o) => o == web.origin,
    };
    let token_ok = form
        .get("csrf")
        .is_some_and(|c| crate::store::ct_eq(c.as_bytes(), web.csrf_for(&ctx.token).as_bytes()));
    if site_ok && origin_ok && token_ok {
        Ok(())
    } else {
        Err(Box::new(h::text(
            StatusCode::FORBIDDEN,
            "Forbidden: request not from this site\n",
        )))
    }
}

fn event(web: &Web, ctx: &Ctx, kind: EventKind, file: Option<u32>) {
    let ev = Event {
        rcpt: Some(ctx.rcpt),
        file,
        detail: Some(ctx.ip.to_string()),
        ..Event::new(now(), kind)
    };
    if let Err(e) = web.store.meta.add_event(ctx.id(), &ev) {
        tracing::warn!(message = %ctx.id(), error = %e, "cannot record event");
    }
}

pub(super) fn auth_page(web: &Web, ctx: &Ctx, error: Option<String>, code: StatusCode) -> Resp {
    let t = ctx.t;
    let sms = ctx.msg.auth == Auth::Sms;
    let other = ctx.msg.auth
        == Auth::Password {
            delivery: PasswordDelivery::Other,
        };
    let sends = web.auth.sends(ctx.link).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the resend count");
        None
    });
    let sent = !other && (ctx.sent || sends.is_some());
    let page = AuthPage {
        t,
        org: &web.cfg.organisation.name,
        logo: web.logo.is_some(),
        heading: fill(t.secure_channel, &web.cfg.organisation.name),
        footer: footer(web, t),
        sender: ctx.msg.sender_shown(),
        notice: (sent && error.is_none()).then(|| sent_notice(ctx)),
        error,
        intro: if sms {
            t.intro_sms
        } else if other {
            t.custom_password
        } else {
            t.intro_password
        },
        can_send: !other && sends.is_none_or(|s| s.left > 0),
        sent,
        resend_hint: sends.filter(|_| !other).map(|s| resend_hint(t, s)),
        sms,
        secret_label: if sms { t.sms_code } else { t.password },
        token: &ctx.token,
        csrf: web.csrf_for(&ctx.token),
        until: ctx.until(),
    };
    remember_lang(web, ctx, h::html(code, render(page)))
}

pub async fn landing(web: &Arc<Web>, ctx: &Ctx) -> Resp {
    if !ctx.allowed(web) {
        return auth_page(web, ctx, None, StatusCode::OK);
    }
    // A view event need not be flushed at once (sled writes it out within half a second).
    event(web, ctx, EventKind::Opened, None);
    crate::metrics::get().portal(crate::metrics::PortalEvent::View);
    let (l, _) = words::lang(ctx.t.code);
    let t = ctx.t;
    let files: Vec<FileRow> = ctx
        .msg
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| FileRow {
            index: i,
            name: f.name.clone(),
            size: words::size(l, f.size),
            available: !f.blocked,
            state: f.blocked.then(|| t.file_blocked.to_string()),
            sha256: f.sha256.map(hex::encode),
        })
        .collect();
    let (has_html, body_text) = match body_parts(web, ctx).await {
        Some((html, text)) => (
            html.is_some(),
            if html.is_none() { Some(text) } else { None },
        ),
        None => (false, None),
    };
    let page = MessagePage {
        t,
        org: &web.cfg.organisation.name,
        logo: web.logo.is_some(),
        heading: ctx.msg.subject.clone(),
        footer: footer(web, t),
        subject: &ctx.msg.subject,
        sender: ctx.msg.sender_shown(),
        date: words::date_time(
            l,
            DateTime::<Utc>::from_timestamp(ctx.msg.created, 0).unwrap_or_else(Utc::now),
        ),
        has_html,
        body_text,
        zip: files.iter().filter(|f| f.available).count() > 1,
        files,
        token: &ctx.token,
        until: ctx.until(),
        signed_in: ctx.msg.auth != Auth::None,
        csrf: web.csrf_for(&ctx.token),
    };
    remember_lang(web, ctx, h::html(StatusCode::OK, render(page)))
}

/// The secure message's body: (sanitised HTML if it has HTML, plain text).
async fn body_parts(web: &Web, ctx: &Ctx) -> Option<(Option<String>, String)> {
    let rec = ctx.msg.body.clone()?;
    let (blobs, dek) = (web.store.blobs.clone(), ctx.dek.clone());
    let raw = tokio::task::spawn_blocking(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut blobs.open(&rec.blob, &dek).ok()?, &mut v).ok()?;
        Some(v)
    })
    .await
    .ok()??;
    let m = mail_parser::MessageParser::default().parse(&raw)?;
    let text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    let html = crate::rewrite::has_html(&m)
        .then(|| m.body_html(0).map(|h| super::clean::sanitize(&h)))
        .flatten();
    Some((html, text))
}

pub async fn body(web: &Arc<Web>, ctx: &Ctx) -> Resp {
    if !ctx.allowed(web) {
        return h::text(StatusCode::FORBIDDEN, "Forbidden\n");
    }
    match body_parts(web, ctx).await {
        Some((Some(html), _)) => h::with_csp(
            h::html(StatusCode::OK, render(BodyPage { html })),
            h::CSP_BODY,
        ),
        _ => h::not_found(),
    }
}

/// Where the password or code went, masked.
fn sent_notice(ctx: &Ctx) -> String {
    let rcpt = &ctx.msg.recipients[ctx.rcpt as usize];
    match (&ctx.msg.auth, &rcpt.phone) {
        (Auth::Sms, Some(phone)) => fill(ctx.t.code_sent, &resend::mask_phone(phone)),
        _ => fill(ctx.t.password_sent, &resend::mask_address(&rcpt.address)),
    }
}

fn resend_hint(t: &Texts, s: resend::Sends) -> String {
    let (text, n) = if s.left > 0 {
        (t.sends_left, s.left.to_string())
    } else {
        (t.sends_wait, t.wait(s.wait))
    };
    fill(text, &n)
        .replace("{max}", &super::auth::RESENDS.to_string())
        .replace("{window}", &(super::auth::RESEND_WINDOW / 60).to_string())
}
