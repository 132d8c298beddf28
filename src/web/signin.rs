//! Signing in: sending a password by mail or a code by SMS, checking what the recipient types
//! (with lockout), and signing out.

use super::Web;
use super::guard::{BUSY_RETRY, Refused};
use super::http::{self as h, Resp};
use super::i18n::{Texts, fill};
use super::pages::{Ctx, auth_page, session_cookie};
use crate::queue::{Envelope, new_id};
use crate::store::{Auth, PasswordDelivery};
use chrono::Utc;
use http::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;

pub async fn send(web: &Arc<Web>, ctx: &Ctx) -> Resp {
    let t = ctx.t;
    let rcpt = &ctx.msg.recipients[ctx.rcpt as usize];
    match web.auth.may_send(ctx.link) {
        Ok(Ok(())) => {}
        Ok(Err(wait)) => {
            let msg = fill(t.resend_limit, &t.wait(wait));
            let mut r = auth_page(web, ctx, Some(msg), StatusCode::TOO_MANY_REQUESTS);
            retry_after(&mut r, wait);
            return r;
        }
        Err(e) => return unavailable(ctx, &e),
    }
    let r = match ctx.msg.auth {
        Auth::Sms => {
            let Some(phone) = rcpt.phone.clone() else {
                return h::not_found();
            };
            match new_code(web, ctx).await {
                Ok(code) => {
                    let text = t
                        .sms_text
                        .replace("{org}", &web.cfg.organisation.name)
                        .replace("{code}", &code)
                        .replace("{valid}", &t.wait(super::auth::CODE_TTL));
                    web.sms.send(&phone, &text).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e),
            }
        }
        Auth::Password {
            delivery: PasswordDelivery::Email,
        } => send_password(web, ctx).await,
        _ => return h::not_found(),
    };
    match r {
        Ok(()) => h::redirect(&format!("/l/{}?sent=1", ctx.token)),
        Err(e) => {
            tracing::error!(message = %ctx.id(), error = %e, "cannot send password or code");
            h::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sending failed; try again later\n",
            )
        }
    }
}

/// A fresh code, durable before it is sent: a restart does not void a code on its way.
async fn new_code(web: &Arc<Web>, ctx: &Ctx) -> Result<String, String> {
    let code = web.auth.new_code(ctx.link).map_err(|e| e.to_string())?;
    web.store
        .meta
        .flush_async()
        .await
        .map_err(|e| e.to_string())?;
    Ok(code)
}

fn retry_after(r: &mut Resp, secs: i64) {
    r.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(secs.max(1)),
    );
}

fn unavailable(ctx: &Ctx, e: &dyn std::fmt::Display) -> Resp {
    tracing::error!(message = %ctx.id(), error = %e, "sign-in state unavailable");
    let mut r = h::text(StatusCode::SERVICE_UNAVAILABLE, "Try again later\n");
    retry_after(&mut r, BUSY_RETRY);
    r
}

/// The answer to an attempt that is not checked: 429 for a locked link or a client that must
/// slow down, 503 when too many are waiting; both say when to come back.
fn refused(web: &Arc<Web>, ctx: &Ctx, why: Refused) -> Resp {
    let wait = why.wait();
    if matches!(why, Refused::Link(_) | Refused::Client(_)) {
        crate::metrics::get().portal(crate::metrics::PortalEvent::Lockout);
    }
    let mut r = match why {
        Refused::Busy => h::text(StatusCode::SERVICE_UNAVAILABLE, "Busy; try again shortly\n"),
        Refused::Link(_) | Refused::Client(_) => {
            let msg = fill(ctx.t.locked, &ctx.t.wait(wait));
            auth_page(web, ctx, Some(msg), StatusCode::TOO_MANY_REQUESTS)
        }
    };
    retry_after(&mut r, wait);
    r
}

/// A fresh password: its argon2 hash replaces the recipient's (voiding the old one), and the
/// password goes to the recipient by mail through sluis's own queue.
async fn send_password(web: &Arc<Web>, ctx: &Ctx) -> Result<(), String> {
    let password = super::auth::generate_password();
    let hash = web.auth.guard.hash(password.clone()).await?;
    let mut to = None;
    web.store
        .meta
        .update_message(ctx.id(), &mut |msg| {
            to = msg.recipients.get_mut(ctx.rcpt as usize).map(|r| {
                r.password_hash = Some(hash.clone());
                r.address.clone()
            });
        })
        .map_err(|e| e.to_string())?
        .ok_or("message gone")?;
    let to = to.ok_or("no such recipient")?;
    web.store
        .meta
        .flush_async()
        .await
        .map_err(|e| e.to_string())?;
    let (env, bytes) = password_mail(web, ctx.t, &to, &ctx.msg.sender_shown(), &password);
    let id = web
        .queue
        .enqueue_bytes(&env, &bytes)
        .await
        .map_err(|e| e.to_string())?;
    let _ = web.queued.send(id);
    Ok(())
}

fn password_mail(
    web: &Web,
    t: &Texts,
    to: &str,
    sender: &str,
    password: &str,
) -> (Envelope, Vec<u8>) {
    let host = &web.cfg.smtp.hostname;
    let id = new_id();
    let body = t
        .password_mail_body
        .replace("{sender}", sender)
        .replace("{password}", password);
    let msg = format!(
        "From: {name} <postmaster@{host}>\r\nTo: <{to}>\r\nSubject: {subj}\r\nDate: {date}\r\n\
         Message-ID: <{id}@{host}>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}",
        name = crate::headers::encode_word(&web.cfg.organisation.name),
        subj = crate::headers::encode_word(t.password_mail_subject),
        date = Utc::now().to_rfc2822(),
    );
    let env = crate::notice::internal_envelope(id, host, to);
    (env, msg.into_bytes())
}

pub async fn login(web: &Arc<Web>, ctx: &Ctx, form: &HashMap<String, String>) -> Resp {
    if ctx.msg.auth == Auth::None {
        return h::redirect(&format!("/l/{}", ctx.token));
    }
    let Some(_slot) = web.auth.guard.slot() else {
        return refused(web, ctx, Refused::Busy);
    };
    match web.auth.admit(ctx.link, ctx.ip) {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return refused(web, ctx, why),
        Err(e) => return unavailable(ctx, &e),
    }
    // Counted before it is checked, and durably: a crash mid-check gives nothing back.
    if let Err(e) = web.store.meta.flush_async().await {
        return unavailable(ctx, &e);
    }
    let secret = form.get("secret").cloned().unwrap_or_default();
    let ok = match ctx.msg.auth {
        Auth::Sms => match web.auth.check_code(ctx.link, &secret) {
            Ok(ok) => ok,
            Err(e) => return unavailable(ctx, &e),
        },
        _ => {
            let hash = ctx.msg.recipients[ctx.rcpt as usize].password_hash.clone();
            web.auth.guard.verify(hash, secret).await
        }
    };
    if !ok {
        tracing::info!(message = %ctx.id(), rcpt = ctx.rcpt, "wrong password or code");
        crate::metrics::get().portal(crate::metrics::PortalEvent::SigninFailure);
        return auth_page(
            web,
            ctx,
            Some(ctx.t.wrong.to_string()),
            StatusCode::UNAUTHORIZED,
        );
    }
    match start_session(web, ctx).await {
        Ok(r) => r,
        Err(e) => unavailable(ctx, &e),
    }
}

/// Signed in: failures forgiven, and a new session id, durable before the cookie is set (a
/// planted cookie never becomes an authenticated one).
async fn start_session(web: &Arc<Web>, ctx: &Ctx) -> Result<Resp, String> {
    let auth = &web.auth;
    auth.succeeded(ctx.link, ctx.ip)
        .map_err(|e| e.to_string())?;
    if let Some(old) = &ctx.session {
        auth.end_session(old).map_err(|e| e.to_string())?;
    }
    let sid = auth.new_session(ctx.link).map_err(|e| e.to_string())?;
    web.store
        .meta
        .flush_async()
        .await
        .map_err(|e| e.to_string())?;
    let mut r = h::redirect(&format!("/l/{}", ctx.token));
    let attrs = if web.https { "; Secure" } else { "" };
    h::set_cookie(
        &mut r,
        &format!(
            "{}={sid}; Path=/; HttpOnly; SameSite=Strict{attrs}",
            session_cookie(web)
        ),
    );
    Ok(r)
}

pub fn logout(web: &Arc<Web>, ctx: &Ctx) -> Resp {
    if let Some(s) = &ctx.session
        && let Err(e) = web.auth.end_session(s)
    {
        tracing::warn!(error = %e, "cannot end a session");
    }
    let mut r = h::redirect(&format!("/l/{}", ctx.token));
    let attrs = if web.https { "; Secure" } else { "" };
    h::set_cookie(
        &mut r,
        &format!(
            "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{attrs}",
            session_cookie(web)
        ),
    );
    r
}
