//! Inbound ESMTP: the listener, connection limits, STARTTLS and graceful shutdown.

mod address;
pub mod data;
pub mod replies;
pub mod session;
pub mod tls;

use crate::config::Config;
use crate::conncap::Caps;
use crate::marker::Marker;
use crate::queue::QueueStore;
use data::Limits;
use ipnet::IpNet;
use replies::Reply;
use session::{End, Session};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// What every session needs, built once at start.
pub struct Shared {
    pub cfg: Arc<Config>,
    pub relay_networks: Vec<IpNet>,
    pub store: QueueStore,
    pub marker: Marker,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: Limits,
    pub data_dir: PathBuf,
    /// Ids of newly queued messages, for the relay.
    pub queued: mpsc::UnboundedSender<String>,
    pub shutdown: watch::Receiver<bool>,
    /// Examines (and protects) small messages before the reply; None: all go to the queue.
    pub admit: Option<Arc<crate::admit::Admit>>,
    /// Open connections: per client IP and in total.
    conns: Arc<Caps>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Arc<Config>,
        relay_networks: Vec<IpNet>,
        store: QueueStore,
        marker: Marker,
        tls: Option<Arc<rustls::ServerConfig>>,
        queued: mpsc::UnboundedSender<String>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let s = &cfg.smtp;
        let limits = Limits {
            max_line: s.max_line_length,
            max_size: s.max_message_size.bytes(),
            max_header: s.max_header_size.bytes(),
            max_received: s.max_received_headers,
        };
        let conns = Caps::new(s.max_connections, s.max_connections_per_ip);
        Shared {
            data_dir: cfg.storage.data_dir.clone(),
            cfg,
            relay_networks,
            store,
            marker,
            tls,
            limits,
            queued,
            shutdown,
            admit: None,
            conns,
        }
    }
}

/// Accepts connections on a bound listener until shutdown; then waits for sessions to end.
pub async fn run(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.clone();
    // Each session holds a clone; the count tells how many are still running.
    let tasks = Arc::new(());
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    let guard = tasks.clone();
                    tokio::spawn(async move {
                        let _g = guard;
                        connection(stream, peer, shared).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
        }
    }
    drop(listener);
    // Sessions see the same signal and end themselves with 421; give DATA in flight time.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while Arc::strong_count(&tasks) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn connection(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    crate::metrics::get().smtp_session();
    let _ = stream.set_nodelay(true);
    let slot = match shared.conns.take(peer.ip()) {
        Some(s) => s,
        None => {
            let mut out = Vec::new();
            Reply::TooManyConnections.write(&mut out);
            let _ = stream.write_all(&out).await;
            let _ = stream.shutdown().await;
            tracing::warn!(peer = %peer, "too many connections");
            return;
        }
    };
    let mut out = Vec::new();
    Reply::Greeting {
        host: shared.cfg.smtp.hostname.clone(),
    }
    .write(&mut out);
    if stream.write_all(&out).await.is_err() {
        return;
    }
    let mut session = Session::new(shared.clone(), peer);
    let mut buf = Vec::with_capacity(8192);
    match session.serve(&mut stream, &mut buf).await {
        Ok(End::Closed) | Err(_) => {}
        Ok(End::StartTls) => {
            let Some(cfg) = shared.tls.clone() else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            let handshake =
                tokio::time::timeout(shared.cfg.smtp.idle_timeout.get(), acceptor.accept(stream))
                    .await;
            let mut tls = match handshake {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::info!(peer = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            // RFC 3207: all state is forgotten; the client must greet again.
            let sent = session.messages;
            session = Session::new(shared.clone(), peer);
            session.tls = true;
            session.messages = sent;
            buf.clear();
            if let Err(e) = session.serve(&mut tls, &mut buf).await {
                tracing::debug!(peer = %peer, error = %e, "session ended");
            }
            let _ = tls.shutdown().await;
        }
    }
    drop(slot);
}
