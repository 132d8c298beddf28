//! The portal's connections: caps in all and per client address, sized so that the portal can
//! never take the file descriptors SMTP needs, and timeouts so that a silent, slow or stalled
//! client cannot keep one: the request headers (hyper's header read timeout, which also ends an
//! idle keep-alive connection), no byte moving either way (any protocol, TLS handshake
//! included), and reading the body plus making the response's headers.

use super::Web;
use super::http::{self as h, Resp};
use crate::config::Config;
use crate::conncap::{Caps, Slot};
use http::{HeaderValue, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Descriptors the rest of the process keeps: sled, queue segments, blobs being sealed, the
/// control socket, logs, the resolver.
const RESERVED_FDS: u64 = 256;
/// An SMTP session holds its socket and its spool file; a relay connection a socket and the
/// queued message.
const FDS_PER_SMTP: u64 = 2;
/// When the limit leaves the portal less than this, it still gets this much (and an error in
/// the log): a portal that refuses everyone is no answer either.
const MIN_WEB: usize = 16;
/// Headers beyond this are refused (hyper's default is about 400 KiB).
const MAX_HEADER_BYTES: usize = 64 << 10;
/// Requests at once on one HTTP/2 connection: a page and its style sheet, logo and a few
/// downloads; each download holds a descriptor.
const H2_STREAMS: u32 = 8;
/// What a client over the cap is told when the answer is cheap (plain HTTP).
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 28\r\nConnection: close\r\n\r\n\
Te druk / Too busy, retry.\r\n";

/// A portal connection holds its socket and, while downloading, an open blob; over HTTP/2 (TLS
/// only) one per stream at once.
fn fds_per_web(tls: bool) -> u64 {
    if tls { 1 + H2_STREAMS as u64 } else { 2 }
}

/// The configured caps, the total lowered to what the descriptor limit leaves once SMTP
/// and the relay have had theirs; trusted reverse proxies are held only to the total.
pub fn caps(cfg: &Config, proxies: &[ipnet::IpNet]) -> Arc<Caps> {
    let nofile = raise_fd_limit();
    let total = web_budget(
        nofile,
        cfg.smtp.max_connections + cfg.relay.concurrency,
        cfg.web.max_connections,
        fds_per_web(cfg.web.tls_cert.is_some()),
    );
    if total == MIN_WEB && total < cfg.web.max_connections {
        tracing::error!(
            nofile,
            smtp = cfg.smtp.max_connections,
            "the file descriptor limit leaves the portal almost nothing: raise it \
             (LimitNOFILE) or lower [smtp] max_connections"
        );
    } else if total < cfg.web.max_connections {
        tracing::info!(
            nofile,
            configured = cfg.web.max_connections,
            total,
            "portal connections capped below [web] max_connections to leave SMTP its share"
        );
    }
    Caps::with_exempt(
        total,
        cfg.web.max_connections_per_ip.min(total),
        proxies.to_vec(),
    )
}

/// Raises the soft descriptor limit to the hard one (the process uses epoll, never select, so
/// a high limit costs nothing) and returns the limit in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max.min(1 << 20),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = want.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}

/// Portal connections of `per_conn` descriptors that fit in `nofile` next to `smtp` SMTP and
/// relay connections, at most `configured`.
pub fn web_budget(nofile: u64, smtp: usize, configured: usize, per_conn: u64) -> usize {
    let left = nofile.saturating_sub(RESERVED_FDS + FDS_PER_SMTP * smtp as u64);
    ((left / per_conn) as usize).clamp(MIN_WEB.min(configured), configured.max(1))
}

/// Time of the last byte read or written on a connection.
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// Returns once nothing has moved for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let quiet = self.quiet_for();
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

/// A stream that records its traffic in an [`Activity`].
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// HTTP/1.1 or HTTP/2 as chosen (no guessing from the first bytes: that wait has no timeout),
/// with the header limits and timer.
fn builder(cfg: &Config, h2: bool) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.web.header_timeout.get())
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_STREAMS)
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    if h2 { b.http2_only() } else { b.http1_only() }
}

/// Over the cap: closed at once; on plain HTTP with a 503 first when the socket takes it
/// without waiting.
pub fn refuse(stream: TcpStream, plain: bool, peer: SocketAddr) {
    if plain {
        let _ = stream.try_write(BUSY);
    }
    tracing::warn!(peer = %peer, "too many portal connections");
}

/// Serves one accepted connection until it ends, idles out, or the server stops.
pub async fn connection(
    web: Arc<Web>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
    slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let activity = Activity::new();
    let io = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    let cfg = web.cfg.clone();
    let timeout = cfg.web.request_timeout.get();
    let svc = hyper::service::service_fn(move |req| {
        let web = web.clone();
        async move {
            let r = tokio::time::timeout(timeout, super::handle(web, req, peer)).await;
            Ok::<_, std::convert::Infallible>(r.unwrap_or_else(|_| too_slow()))
        }
    });
    let idle = cfg.web.idle_timeout.get();
    let served = async {
        match tls {
            Some(acc) => {
                let hs = tokio::time::timeout(cfg.web.header_timeout.get(), acc.accept(io));
                let Ok(Ok(s)) = hs.await else { return };
                let h2 = s.get_ref().1.alpn_protocol() == Some(b"h2");
                let b = builder(&cfg, h2);
                let _ = watcher
                    .watch(b.serve_connection(TokioIo::new(s), svc))
                    .await;
            }
            None => {
                let b = builder(&cfg, false);
                let _ = watcher
                    .watch(b.serve_connection(TokioIo::new(io), svc))
                    .await;
            }
        }
    };
    tokio::select! {
        _ = served => {}
        _ = activity.idle(idle) => tracing::debug!(peer = %peer, "portal connection idle: closed"),
    }
    drop(slot);
}

/// The request took longer than `request_timeout` to arrive and be answered.
fn too_slow() -> Resp {
    let mut r = h::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "Te traag of te druk / Too slow or too busy\n",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portal_leaves_smtp_its_descriptors() {
        let (plain, tls) = (fds_per_web(false), fds_per_web(true));
        // 1024 descriptors, 1000 SMTP sessions: SMTP's share already exceeds the limit.
        assert_eq!(web_budget(1024, 1000, 512, plain), MIN_WEB);
        // 4096: 4096 - 256 - 2*1032 = 1776 left, 888 portal connections fit; 512 configured.
        assert_eq!(web_budget(4096, 1032, 512, plain), 512);
        assert_eq!(web_budget(3000, 1032, 512, plain), (3000 - 256 - 2064) / 2);
        // HTTP/2: 1776 / 9.
        assert_eq!(web_budget(4096, 1032, 512, tls), 197);
        assert_eq!(web_budget(1 << 20, 1032, 5, tls), 5);
    }
}
