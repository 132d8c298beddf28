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
            match conn
                .send(tx, self.body(id, self.stripper(st), &tx.rcpts))
                .await
            {
                Ok(outcomes) => {
                    self.put_pooled(addr, conn);
                    return outcomes;
                }
                Err(_) if reused => continue,
                Err(f) => return vec![f; tx.rcpts.len()],
            }
        }
    }

    /// The transformation that takes tags and control headers out, when one is needed.
    pub(super) fn stripper(&self, st: &DeliveryState) -> Option<Stripper> {
        let subject = st.strip.clone()?;
        let policy = self.pipeline.policy.get();
        Some(Arc::new(move |m: &[u8]| {
            crate::policy::tags::strip(m, &subject, &policy.tags)
        }))
    }

    /// The message bytes as they leave, with this installation's marker for them and these
    /// recipients (crate::marker), in bounded chunks.
    fn body(
        &self,
        id: &str,
        strip: Option<Stripper>,
        rcpts: &[&str],
    ) -> mpsc::Receiver<io::Result<Vec<u8>>> {
        let (tx, rx) = mpsc::channel(4);
        let rcpts: Vec<String> = rcpts.iter().map(|r| r.to_string()).collect();
        // Small messages (and the rare ones with tags or headers to strip) are read whole,
        // right here: cheaper than a hand-off to a blocking thread.
        if strip.is_some() || self.store.stored_size(id) <= INLINE_BODY {
            match self.whole(id, strip.as_ref(), &rcpts) {
                Ok((head, rest)) => {
                    let _ = tx.try_send(Ok(head));
                    let _ = tx.try_send(Ok(rest));
                }
                Err(e) => {
                    let _ = tx.try_send(Err(e));
                }
            }
            return rx;
        }
        // Larger ones are read twice on a blocking thread: once for the marker, which goes in
        // front, then to be sent.
        let (store, marker) = (self.store.clone(), self.marker.clone());
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            let send = |r| tx.blocking_send(r).is_ok();
            let mut digester = crate::marker::canon::Digester::default();
            let digested = chunks(&store, &id, |c| {
                digester.update(c);
                true
            });
            if let Err(e) = digested {
                let _ = send(Err(e));
                return;
            }
            let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
            let field = marker.field(&digester.finish(), &refs, crate::queue::now());
            let mut first = true;
            let sent = chunks(&store, &id, |c| {
                if std::mem::take(&mut first) {
                    let (mut head, skip) = crate::marker::splice(&field, c);
                    head.extend_from_slice(&c[skip..]);
                    send(Ok(head))
                } else {
                    send(Ok(c.to_vec()))
                }
            });
            if let Err(e) = sent {
                let _ = send(Err(e));
            }
        });
        rx
    }

    /// A whole message as it leaves, stripped when asked: its first bytes with the marker
    /// spliced in, and the rest.
    pub(super) fn whole(
        &self,
        id: &str,
        strip: Option<&Stripper>,
        rcpts: &[String],
    ) -> io::Result<(Vec<u8>, Vec<u8>)> {
        let (_, mut m) = self
            .store
            .open_message(id)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut v = Vec::with_capacity(INLINE_BODY as usize);
        m.read_to_end(&mut v)?;
        if let Some(f) = strip {
            v = f(&v);
        }
        let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
        let d = crate::marker::canon::digest(&v);
        let field = self.marker.field(&d, &refs, crate::queue::now());
        let (head, skip) = crate::marker::splice(&field, &v);
        v.drain(..skip);
        Ok((head, v))
    }
}

/// Reads a queued message in 64 KiB pieces until `f` says stop.
fn chunks(
    store: &crate::queue::QueueStore,
    id: &str,
    mut f: impl FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    let (_, mut msg) = store
        .open_message(id)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = msg.read(&mut buf)?;
        if n == 0 || !f(&buf[..n]) {
            return Ok(());
        }
    }
}
