//! Liveness, readiness and metrics for load balancers, orchestrators and Prometheus.
//! Readiness is what a message needs to be accepted and stored: every folder of the data
//! directory writable, the master key file readable, the policies there, and free disk space
//! above `[smtp] min_free_space` (below it SMTP answers 452 anyway).

use super::Web;
use super::http::{self, Resp};
use hyper::StatusCode;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The folders sluis writes to, relative to the data directory ("" is the directory itself).
const WRITTEN: [&str; 5] = ["", "queue", "spool", "blobs", "blobs/tmp"];

pub async fn ready(web: &Arc<Web>) -> Resp {
    let cfg = web.cfg.clone();
    let r = tokio::task::spawn_blocking(move || not_ready(&cfg))
        .await
        .unwrap_or_else(|e| Some(format!("readiness check failed: {e}")));
    match r {
        None => http::text(StatusCode::OK, "ready\n"),
        Some(why) => {
            tracing::warn!(reason = %why, "not ready");
            let body = format!("not ready: {why}\n");
            http::respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                http::full(body),
                true,
            )
        }
    }
}

pub async fn metrics(web: &Arc<Web>) -> Resp {
    let queue = web.queue.clone();
    let depth = tokio::task::spawn_blocking(move || queue.list_ids().ok().map(|v| v.len()))
        .await
        .ok()
        .flatten();
    http::respond(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        http::full(crate::metrics::get().render(depth)),
        true,
    )
}

/// Metrics are for the operator's network: a client on loopback or a private network that
/// comes directly, not through a reverse proxy (which would pass on the public's requests).
/// Anyone else gets the same 404 as any unknown path.
pub fn may_scrape<B>(req: &hyper::Request<B>, peer: std::net::SocketAddr) -> bool {
    use std::net::IpAddr;
    let private = match peer.ip().to_canonical() {
        IpAddr::V4(a) => a.is_loopback() || a.is_private(),
        IpAddr::V6(a) => a.is_loopback() || (a.segments()[0] & 0xfe00) == 0xfc00,
    };
    let h = req.headers();
    private && !h.contains_key("forwarded") && !h.contains_key("x-forwarded-for")
}

/// Why sluis cannot take mail now, or None.
fn not_ready(cfg: &crate::config::Config) -> Option<String> {
    let data = &cfg.storage.data_dir;
    for sub in WRITTEN {
        let dir = data.join(sub);
        if let Err(e) = probe(&dir) {
            let e = crate::fsutil::io_reason(&e);
            return Some(format!("storage: {} not writable: {e}", dir.display()));
        }
    }
    if let Ok(key) = crate::serve::key_file(cfg)
        && let Err(e) = std::fs::File::open(&key)
    {
        let e = crate::fsutil::io_reason(&e);
        return Some(format!("keys: {} not readable: {e}", key.display()));
    }
    if !cfg.policy.allow_empty_policy
        && let Err(e) = std::fs::read_dir(&cfg.policy.dir)
    {
        let e = crate::fsutil::io_reason(&e);
        return Some(format!(
            "policies: {} not readable: {e}",
            cfg.policy.dir.display()
        ));
    }
    let min = cfg.smtp.min_free_space.bytes();
    match crate::fsutil::free_space(data) {
        Ok(free) if free < min => Some(format!(
            "disk: {free} bytes free, below [smtp] min_free_space ({min} bytes)"
        )),
        Ok(_) => None,
        Err(e) => Some(format!("disk: {}", crate::fsutil::io_reason(&e))),
    }
}

/// Writes, syncs and removes a small file: what storing a message needs of the folder.
fn probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(format!(".ready-{}", std::process::id()));
    let r = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(b"ok")?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    r
}
