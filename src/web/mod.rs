//! The recipient portal (SPEC §8): an embedded HTTP server (hyper) that serves what the store
//! holds to the recipients of protected messages. It reads the store and queues password mails;
//! it never reaches into the SMTP side.

pub mod auth;
mod clean;
mod client;
mod files;
mod guard;
mod health;
pub mod http;
pub mod i18n;
mod listen;
mod pages;
mod resend;
mod signin;

use crate::config::{Config, Resolved};
use crate::queue::QueueStore;
use crate::sms::Sms;
use crate::store::Store;
use ::http::{Method, Request, StatusCode};
use bytes::Bytes;
use http::Resp;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

const CSS: &str = include_str!("../../web/static/sluis.css");

/// Everything a request handler needs.
pub struct Web {
    pub store: Store,
    pub queue: QueueStore,
    /// Wakes the relay for a queued password mail.
    pub queued: mpsc::UnboundedSender<String>,
    pub cfg: Arc<Config>,
    pub public_url: String,
    /// The scheme and host that state-changing requests must come from.
    pub origin: String,
    pub https: bool,
    pub auth: auth::Auth,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub sms: Sms,
    /// For CSRF tokens bound to a link.
    csrf_key: [u8; 32],
    logo: Option<(Bytes, &'static str)>,
}

impl Web {
    pub fn new(
        store: Store,
        queue: QueueStore,
        queued: mpsc::UnboundedSender<String>,
        cfg: Arc<Config>,
        resolved: &Resolved,
    ) -> Result<Web, String> {
        let public_url = resolved.public_url.clone();
        let https = public_url.starts_with("https://");
        let origin = {
            let rest = public_url.split_once("://").map_or("", |(_, r)| r);
            let host = rest.split('/').next().unwrap_or(rest);
            format!("{}://{host}", if https { "https" } else { "http" })
        };
        let logo = match &cfg.web.logo {
            Some(p) => {
                let b = std::fs::read(p).map_err(|e| format!("logo {}: {e}", p.display()))?;
                let ct = if p.extension().is_some_and(|e| e == "svg") {
                    "image/svg+xml"
                } else {
                    "image/png"
                };
                Some((Bytes::from(b), ct))
            }
            None => None,
        };
        let auth = auth::Auth::new(store.meta.clone(), queue.keys().derive("web clients"));
        Ok(Web {
            sms: Sms::from_config(&cfg.sms)?,
            csrf_key: queue.keys().derive("web csrf"),
            queue,
            queued,
            public_url,
            origin,
            https,
            auth,
            trusted_proxies: resolved.trusted_proxies.clone(),
            logo,
            cfg,
            store,
        })
    }

    pub fn csrf_for(&self, token: &str) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        let mut m = <Hmac<sha2::Sha256>>::new_from_slice(&self.csrf_key).expect("any key length");
        m.update(token.as_bytes());
        hex::encode(&m.finalize().into_bytes()[..16])
    }
}

/// Serves the portal on `listener` until `shutdown`; connections in progress get a grace period.
pub async fn serve(
    listener: TcpListener,
    web: Arc<Web>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let caps = listen::caps(&web.cfg, &web.trusted_proxies);
    let sweeper = web.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let web = sweeper.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || web.auth.sweep()).await {
                tracing::warn!(error = %e, "sweeping the sign-in state failed");
            }
        }
    });
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "web accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
        };
        // Counted per socket peer: connections cost descriptors wherever the request is from
        // (a trusted proxy only against the total).
        let Some(slot) = caps.take(peer.ip()) else {
            listen::refuse(stream, tls.is_none(), peer);
            continue;
        };
        let conn = listen::connection(
            web.clone(),
            stream,
            peer,
            tls.clone(),
            graceful.watcher(),
            slot,
        );
        tokio::spawn(conn);
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

async fn handle(web: Arc<Web>, req: Request<Incoming>, peer: SocketAddr) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let resp = route(&web, req, &path, &method, peer).await;
    tracing::debug!(%method, status = resp.status().as_u16(), "web");
    resp
}

async fn route(
    web: &Arc<Web>,
    req: Request<Incoming>,
    path: &str,
    method: &Method,
    peer: SocketAddr,
) -> Resp {
    match (method, path) {
        (&Method::GET, "/healthz" | "/healthz/live") => http::text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/healthz/ready") => health::ready(web).await,
        (&Method::GET, "/metrics") if health::may_scrape(&req, peer) => health::metrics(web).await,
        (&Method::GET, "/static/sluis.css") => http::respond(
            StatusCode::OK,
            "text/css; charset=utf-8",
            http::full(CSS),
            false,
        ),
        (&Method::GET, "/static/logo") => match &web.logo {
            Some((b, ct)) => http::respond(StatusCode::OK, ct, http::full(b.clone()), false),
            None => http::not_found(),
        },
        _ => {
            let Some(rest) = path.strip_prefix("/l/") else {
                return http::not_found();
            };
            let mut parts = rest.splitn(3, '/');
            let token = parts.next().unwrap_or_default().to_string();
            let action = parts.next().unwrap_or_default().to_string();
            let arg = parts.next().map(str::to_string);
            let ctx = match pages::Ctx::new(web, &req, &token, peer) {
                Ok(c) => c,
                Err(r) => return *r,
            };
            match (method, action.as_str(), arg.as_deref()) {
                (&Method::GET, "", None) => pages::landing(web, &ctx).await,
                (&Method::POST, "send" | "login" | "logout", None) => {
                    let max = web.cfg.web.max_request_body.bytes() as usize;
                    let form = match read_form(req, max).await {
                        Ok(f) => f,
                        Err(r) => return *r,
                    };
                    if let Err(r) = pages::check_csrf(web, &ctx, &form) {
                        return *r;
                    }
                    match action.as_str() {
                        "send" => signin::send(web, &ctx).await,
                        "login" => signin::login(web, &ctx, &form).await,
                        _ => signin::logout(web, &ctx),
                    }
                }
                (&Method::GET, "body", None) => pages::body(web, &ctx).await,
                (&Method::GET, "f", Some(n)) => match n.parse::<u32>() {
                    Ok(n) => files::download(web, &ctx, n).await,
                    Err(_) => http::not_found(),
                },
                (&Method::GET, "zip", None) => files::zip(web, &ctx).await,
                (m, _, _) if m != Method::GET && m != Method::POST => {
                    http::text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n")
                }
                _ => http::not_found(),
            }
        }
    }
}

/// A form body; anything bigger than `max` is refused before it is read.
async fn read_form(
    req: Request<Incoming>,
    max: usize,
) -> Result<std::collections::HashMap<String, String>, Box<Resp>> {
    use http_body_util::BodyExt;
    let ok_type = req
        .headers()
        .get(::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !ok_type {
        return Err(Box::new(http::text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected a form\n",
        )));
    }
    let declared = req
        .headers()
        .get(::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let too_large = || {
        Box::new(http::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form too large\n",
        ))
    };
    // Refused before a byte of it is waited for.
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(req.into_body(), max);
    match limited.collect().await {
        Ok(b) => Ok(http::form(&b.to_bytes())),
        Err(_) => Err(too_large()),
    }
}
