//! Signing in: sending a password by mail or a code by SMS, checking what the recipient types
//! (with lockout), and signing out.

use super::Web;
use super::auth::minutes;
use super::http::{self as h, Resp};
use super::i18n::{Texts, fill};
use super::pages::{Ctx, auth_page, session_cookie};
use crate::queue::{Envelope, new_id};
use crate::store::{Auth, PasswordDelivery};
use chrono::Utc;
use http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

pub async fn send(web: &Arc<Web>, ctx: &Ctx) -> Resp {
    let t = ctx.t;
    let rcpt = &ctx.msg.recipients[ctx.rcpt as usize];
    if let Err(wait) = web.auth.may_send(ctx.link) {
        let msg = fill(t.resend_limit, &minutes(wait).to_string());
        return auth_page(web, ctx, None, Some(msg), StatusCode::TOO_MANY_REQUESTS);
    }
    let r = match ctx.msg.auth {
        Auth::Sms => {
            let Some(phone) = rcpt.phone.clone() else {
                return h::not_found();
            };
            let code = web.auth.new_code(ctx.link);
            let text = t
                .sms_text
                .replace("{org}", &web.cfg.organisation.name)
                .replace("{code}", &code);
            web.sms.send(&phone, &text).await.map_err(|e| e.to_string())
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

/// A fresh password: its argon2 hash replaces the recipient's (voiding the old one), and the
/// password goes to the recipient by mail through sluis's own queue.
async fn send_password(web: &Arc<Web>, ctx: &Ctx) -> Result<(), String> {
    let password = super::auth::generate_password();
    let p2 = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&p2))
        .await
        .map_err(|e| e.to_string())??;
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
    let (env, bytes) = password_mail(web, ctx.t, &to, &ctx.msg.sender, &password);
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

fn hash_password(p: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(p.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verifies against the stored hash, or against a throw-away one when there is none, so that
/// both take the same time.
fn verify_password(hash: Option<&str>, presented: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash_password(&hex::encode(crate::seal::random_bytes::<16>())).unwrap_or_default()
    });
    let (h, real) = match hash {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(h) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(presented.as_bytes(), &parsed)
        .is_ok()
        && real
}

pub async fn login(web: &Arc<Web>, ctx: &Ctx, form: &HashMap<String, String>) -> Resp {
    let t = ctx.t;
    if let Some(wait) = web.auth.locked(ctx.link, ctx.ip) {
        let msg = fill(t.locked, &minutes(wait).to_string());
        return auth_page(web, ctx, None, Some(msg), StatusCode::TOO_MANY_REQUESTS);
    }
    let secret = form.get("secret").cloned().unwrap_or_default();
    let ok = match ctx.msg.auth {
        Auth::Sms => web.auth.check_code(ctx.link, &secret),
        Auth::Password { .. } => {
            let hash = ctx.msg.recipients[ctx.rcpt as usize].password_hash.clone();
            tokio::task::spawn_blocking(move || verify_password(hash.as_deref(), secret.trim()))
                .await
                .unwrap_or(false)
        }
        Auth::None => return h::redirect(&format!("/l/{}", ctx.token)),
    };
    if !ok {
        web.auth.failed(ctx.link, ctx.ip);
        tracing::info!(message = %ctx.id(), rcpt = ctx.rcpt, "wrong password or code");
        return auth_page(
            web,
            ctx,
            None,
            Some(t.wrong.to_string()),
            StatusCode::UNAUTHORIZED,
        );
    }
    web.auth.succeeded(ctx.link);
    // A new id at every sign-in: a planted cookie never becomes an authenticated one.
    if let Some(old) = &ctx.session {
        web.auth.end_session(old);
    }
    let sid = web.auth.new_session(ctx.link);
    let mut r = h::redirect(&format!("/l/{}", ctx.token));
    let attrs = if web.https { "; Secure" } else { "" };
    h::set_cookie(
        &mut r,
        &format!(
            "{}={sid}; Path=/; HttpOnly; SameSite=Strict{attrs}",
            session_cookie(web)
        ),
    );
    r
}

pub fn logout(web: &Arc<Web>, ctx: &Ctx) -> Resp {
    if let Some(s) = &ctx.session {
        web.auth.end_session(s);
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
