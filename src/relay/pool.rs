//! Connections to next hops, kept open between messages, and the message bytes sent on them.

use super::client::{Connection, Outcome, Transaction};
use super::{Relay, Stripper};
use crate::queue::DeliveryState;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long an idle connection is kept, and how many messages one carries at most.
const POOL_IDLE: Duration = Duration::from_secs(5);
const POOL_MAX_TRANSACTIONS: u32 = 100;
const POOL_MAX_IDLE_PER_HOST: usize = 16;
/// Messages up to this size are read without a blocking thread.
const INLINE_BODY: u64 = 256 * 1024;

impl Relay {
    fn take_pooled(&self, addr: SocketAddr) -> Option<Connection> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let idle = pool.get_mut(&addr)?;
        while let Some((since, conn)) = idle.pop() {
            if since.elapsed() < POOL_IDLE {
                return Some(conn);
            }
            tokio::spawn(conn.quit());
        }
        None
    }

    fn put_pooled(&self, addr: SocketAddr, conn: Connection) {
        if conn.transactions >= POOL_MAX_TRANSACTIONS {
            tokio::spawn(conn.quit());
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let idle = pool.entry(addr).or_default();
        if idle.len() < POOL_MAX_IDLE_PER_HOST {
            idle.push((Instant::now(), conn));
        } else {
            tokio::spawn(conn.quit());
        }
    }

    /// One transaction to one address, on a pooled connection when there is one. A pooled
    /// connection that turns out dead (the server closed it while idle) is replaced once.
    pub(super) async fn transact(
        &self,
        addr: SocketAddr,
        name: &str,
        id: &str,
        tx: &Transaction<'_>,
        st: &DeliveryState,
    ) -> Vec<Outcome> {
        let mut pooled = self.take_pooled(addr);
        loop {
            let reused = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(c) => c,
                None => match Connection::open(addr, name, &self.client).await {
                    Ok(c) => c,
                    Err(f) => return vec![f; tx.rcpts.len()],
                },
            };
            match conn.send(tx, self.body(id, self.stripper(st))).await {
                Ok(outcomes) => {
                    self.put_pooled(addr, conn);
                    return outcomes;
                }
                Err(_) if reused => continue,
                Err(f) => return vec![f; tx.rcpts.len()],
            }
        }
    }

    /// The message bytes, read and decrypted on a blocking thread, in bounded chunks.
    /// The transformation that takes tags and control headers out, when one is needed.
    pub(super) fn stripper(&self, st: &DeliveryState) -> Option<Stripper> {
        let subject = st.strip.clone()?;
        let policy = self.pipeline.policy.get();
        Some(Arc::new(move |m: &[u8]| {
            crate::policy::tags::strip(m, &subject, &policy.tags)
        }))
    }

    fn body(&self, id: &str, strip: Option<Stripper>) -> mpsc::Receiver<io::Result<Vec<u8>>> {
        let (tx, rx) = mpsc::channel(4);
        if let Some(f) = strip {
            // Rare (the sender used tags or headers): the whole message is rewritten in memory.
            let r = self
                .store
                .open_message(id)
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|(_, mut m)| {
                    let mut v = Vec::new();
                    m.read_to_end(&mut v).map(|_| f(&v))
                });
            let _ = tx.try_send(r);
            return rx;
        }
        // Small messages are read right here: cheaper than a hand-off to a blocking thread.
        if self.store.stored_size(id) <= INLINE_BODY {
            let r = self
                .store
                .open_message(id)
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|(_, mut m)| {
                    let mut v = Vec::with_capacity(INLINE_BODY as usize);
                    m.read_to_end(&mut v).map(|_| v)
                });
            let _ = tx.try_send(r);
            return rx;
        }
        let store = self.store.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            let mut msg = match store.open_message(&id) {
                Ok((_, m)) => m,
                Err(e) => {
                    let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; 64 * 1024];
                match msg.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.blocking_send(Ok(buf)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        rx
    }
}
