//! The outbound side: a durable queue worked by a scheduler, with retries, expiry and DSNs.

pub mod client;
pub mod dsn;
mod keys;
pub mod maildir;
mod pool;
mod prepare;
pub(crate) mod protect;
pub mod route;
pub mod tlsconf;

use crate::config::{Config, NextHop};
use crate::queue::{DeliveryState, Envelope, QueueStore, RcptStatus, StoreError, now};
use client::{ClientOptions, Connection, Outcome, Transaction};
use hickory_resolver::TokioResolver;
use route::Lookup;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

type Stripper = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Default)]
struct Schedule {
    due: BTreeSet<(i64, String)>,
    at: HashMap<String, i64>,
    running: HashSet<String>,
}

pub struct Relay {
    store: QueueStore,
    cfg: Arc<Config>,
    hop: NextHop,
    resolver: Option<TokioResolver>,
    client: ClientOptions,
    sched: Mutex<Schedule>,
    wake: Notify,
    sem: Arc<Semaphore>,
    hostname: String,
    pipeline: Arc<crate::pipeline::Pipeline>,
    inspecting: Arc<Semaphore>,
    /// Messages being sealed at once: more than the cores, because sealing waits on fsyncs
    /// (blobs, metadata, queue), but bounded, because each holds its message in memory.
    sealing: Arc<Semaphore>,
    protector: Arc<crate::protect::Protector>,
    /// Written on every message sent, checked on messages that come back (crate::marker).
    marker: crate::marker::Marker,
    /// Idle connections to next hops, reused for the following messages.
    pool: Mutex<HashMap<SocketAddr, Vec<(Instant, Connection)>>>,
}

impl Relay {
    pub fn new(
        store: QueueStore,
        cfg: Arc<Config>,
        resolved: &crate::config::Resolved,
        pipeline: Arc<crate::pipeline::Pipeline>,
        protector: Arc<crate::protect::Protector>,
        marker: crate::marker::Marker,
    ) -> Result<Relay, String> {
        let resolver = match resolved.next_hop {
            NextHop::Mx => Some(route::resolver(&resolved.dns_servers)?),
            _ => None,
        };
        if let NextHop::Maildir(dir) = &resolved.next_hop {
            maildir::ensure(dir).map_err(|e| format!("maildir {}: {e}", dir.display()))?;
        }
        let r = &cfg.relay;
        let ca = r
            .tls_ca_file
            .clone()
            .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
        let explicit = r.tls_ca_file.is_some();
        let client = ClientOptions {
            helo: r
                .helo_name
                .clone()
                .unwrap_or_else(|| cfg.smtp.hostname.clone()),
            require_tls: r.require_tls,
            auth: r.username.clone().zip(r.password.clone()),
            tls_verified: tlsconf::verified(&ca, explicit)?,
            tls_any: tlsconf::opportunistic(),
            connect_timeout: r.connect_timeout.get(),
            command_timeout: r.command_timeout.get(),
        };
        Ok(Relay {
            store,
            hop: resolved.next_hop.clone(),
            resolver,
            client,
            sched: Mutex::new(Schedule::default()),
            wake: Notify::new(),
            sem: Arc::new(Semaphore::new(r.concurrency)),
            hostname: cfg.smtp.hostname.clone(),
            pool: Mutex::new(HashMap::new()),
            inspecting: Arc::new(Semaphore::new(cfg.policy.inspect_concurrency.max(1))),
            sealing: Arc::new(Semaphore::new(cfg.policy.inspect_concurrency.max(1) * 4)),
            pipeline,
            protector,
            marker,
            cfg,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn schedule(&self, id: &str, at_ms: i64) {
        let mut s = self.lock();
        if let Some(old) = s.at.insert(id.to_string(), at_ms) {
            s.due.remove(&(old, id.to_string()));
        }
        s.due.insert((at_ms, id.to_string()));
        drop(s);
        self.wake.notify_one();
    }

    /// Makes one message (or all) due now; returns how many.
    pub fn retry(&self, id: Option<&str>) -> usize {
        let ids: Vec<String> = match id {
            Some(i) => {
                if self.store.exists(i) {
                    vec![i.to_string()]
                } else {
                    vec![]
                }
            }
            None => self.lock().at.keys().cloned().collect(),
        };
        let now = now_ms();
        for i in &ids {
            self.schedule(i, now);
        }
        ids.len()
    }

    pub fn remove(&self, id: &str) -> io::Result<bool> {
        if !self.store.exists(id) {
            return Ok(false);
        }
        let mut s = self.lock();
        if let Some(t) = s.at.remove(id) {
            s.due.remove(&(t, id.to_string()));
        }
        drop(s);
        self.store.remove(id)?;
        tracing::info!(id, "removed from the queue by the admin");
        Ok(true)
    }

    /// Loads what is queued on disk, then works the queue until shutdown.
    pub async fn run(
        self: Arc<Self>,
        mut queued: mpsc::UnboundedReceiver<String>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        match self.store.list_ids() {
            Ok(ids) => {
                let now = now_ms();
                for id in ids {
                    let at = match self.store.read_state(&id) {
                        Ok(Some(st)) => st.next_attempt.min(now + 86_400_000),
                        _ => now,
                    };
                    self.schedule(&id, at);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read the queue directory"),
        }
        loop {
            let now = now_ms();
            let mut next = None;
            loop {
                let mut s = self.lock();
                let Some((t, id)) = s.due.first().cloned() else {
                    break;
                };
                if t > now {
                    next = Some(t);
                    break;
                }
                s.due.pop_first();
                s.at.remove(&id);
                if !s.running.insert(id.clone()) {
                    continue; // an attempt is under way; it reschedules itself
                }
                drop(s);
                let me = self.clone();
                tokio::spawn(async move {
                    let Ok(_permit) = me.sem.clone().acquire_owned().await else {
                        return;
                    };
                    me.attempt(&id).await;
                    me.lock().running.remove(&id);
                });
            }
            let sleep = next
                .map(|t| Duration::from_millis((t - now).max(1) as u64))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                id = queued.recv() => match id {
                    Some(id) => self.schedule(&id, now_ms()),
                    None => break,
                },
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
            }
        }
        // Let attempts under way finish writing their state.
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            self.sem.acquire_many(self.cfg.relay.concurrency as u32),
        )
        .await;
    }

    async fn attempt(self: &Arc<Self>, id: &str) {
        let env = match self.store.read_envelope(id) {
            Ok(e) => e,
            Err(StoreError::NotFound(_)) => return,
            Err(e) => {
                tracing::error!(id, error = %e, "cannot open queued message; will look again in an hour");
                self.schedule(id, now_ms() + 3_600_000);
                return;
            }
        };
        if let Some(pc) = &env.protected
            && !self.copy_is_backed(id, pc).await
        {
            return;
        }
        let mut st = match self.store.read_state(id) {
            Ok(Some(st)) if st.status.len() == env.recipients.len() => st,
            Ok(_) => DeliveryState::fresh(env.recipients.len(), now_ms()),
            Err(e) => {
                tracing::warn!(id, error = %e, "state file unreadable; starting over (duplicates possible)");
                DeliveryState::fresh(env.recipients.len(), now_ms())
            }
        };
        let before: Vec<bool> = st.status.iter().map(RcptStatus::is_pending).collect();
        let lifetime = self.cfg.relay.max_queue_lifetime.get().as_secs() as i64;
        if now() - env.received_at > lifetime {
            let why = format!(
                "451 4.4.7 message expired after {} in the queue{}",
                humanize(lifetime),
                st.last_error
                    .as_ref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            );
            for s in st.status.iter_mut().filter(|s| s.is_pending()) {
                *s = RcptStatus::Failed {
                    at: now(),
                    reply: why.clone(),
                    remote: None,
                };
            }
        } else if let Some(reason) = self.prepare(id, &env, &mut st).await {
            st.last_error = Some(reason);
        } else {
            self.deliver_pending(id, &env, &mut st).await;
        }
        st.attempts += 1;
        let newly_failed: Vec<usize> = st
            .status
            .iter()
            .enumerate()
            .filter(|(i, s)| before[*i] && matches!(s, RcptStatus::Failed { .. }))
            .map(|(i, _)| i)
            .collect();
        for (i, s) in st.status.iter().enumerate() {
            if before[i] {
                match s {
                    RcptStatus::Delivered { reply, .. } => {
                        tracing::info!(id, rcpt = %env.recipients[i].address, reply = %reply, "delivered")
                    }
                    RcptStatus::Failed { reply, .. } => {
                        tracing::warn!(id, rcpt = %env.recipients[i].address, reply = %reply, "failed")
                    }
                    RcptStatus::Pending => {}
                }
            }
        }
        if let Some(pc) = &env.protected {
            let delivered = st.status.iter().enumerate().find_map(|(i, s)| match s {
                RcptStatus::Delivered { reply, .. } if before[i] => Some(reply.clone()),
                _ => None,
            });
            if let Some(reply) = delivered {
                self.record_relayed(pc, &reply).await;
            }
        }
        if !newly_failed.is_empty() {
            self.bounce(&env, &st, &newly_failed).await;
        }
        if st.pending() == 0 {
            if let Err(e) = self.store.remove(id) {
                tracing::error!(id, error = %e, "cannot remove finished message");
            }
            return;
        }
        let sched = &self.cfg.relay.retry_schedule;
        let step = sched[(st.attempts as usize - 1).min(sched.len() - 1)].get();
        st.next_attempt = now_ms() + step.as_millis() as i64;
        if let Err(e) = self.store.detach(id) {
            tracing::error!(id, error = %e, "cannot move deferred message to its own file");
        }
        if let Err(e) = self.store.write_state(id, &st) {
            tracing::error!(id, error = %e, "cannot write delivery state");
        }
        tracing::info!(id, attempts = st.attempts, retry_in = ?step, "deferred");
        self.schedule(id, st.next_attempt);
    }

    async fn deliver_pending(self: &Arc<Self>, id: &str, env: &Envelope, st: &mut DeliveryState) {
        let pending: Vec<usize> = (0..env.recipients.len())
            .filter(|&i| st.status[i].is_pending())
            .collect();
        if pending.is_empty() {
            return;
        }
        let mut results: Vec<(usize, Outcome, Option<String>)> = Vec::new();
        match &self.hop {
            NextHop::Maildir(dir) => {
                for &i in &pending {
                    let (dir, id2) = (dir.clone(), id.to_string());
                    let (from, rcpt) = (env.mail_from.clone(), env.recipients[i].address.clone());
                    let target = dir.clone();
                    let strip = self.stripper(st);
                    let me = self.clone();
                    let r = tokio::task::spawn_blocking(move || {
                        let (head, rest) =
                            me.whole(&id2, strip.as_ref(), std::slice::from_ref(&rcpt))?;
                        let msg = Box::new(io::Cursor::new(head).chain(io::Cursor::new(rest)));
                        maildir::deliver(&target, &id2, &from, &rcpt, msg)
                    })
                    .await
                    .map_err(io::Error::other)
                    .and_then(|r| r);
                    let o = match r {
                        Ok(()) => Outcome::Delivered(format!(
                            "250 2.0.0 delivered to maildir {}",
                            dir.display()
                        )),
                        Err(e) => {
                            Outcome::Temporary(format!("451 4.3.0 maildir write failed: {e}"))
                        }
                    };
                    results.push((i, o, None));
                }
            }
            NextHop::Smtp { host, port } => {
                let lookup = route::smarthost(host, *port).await;
                results.extend(self.send_to(id, env, &pending, lookup, st).await);
            }
            NextHop::Mx => {
                let resolver = self.resolver.as_ref().expect("built for mx");
                let mut by_domain: HashMap<String, Vec<usize>> = HashMap::new();
                for &i in &pending {
                    let d = env.recipients[i]
                        .address
                        .rsplit_once('@')
                        .map(|(_, d)| d.to_ascii_lowercase())
                        .unwrap_or_default();
                    by_domain.entry(d).or_default().push(i);
                }
                for (domain, idx) in by_domain {
                    let lookup = route::mx(resolver, &domain, self.cfg.relay.mx_port).await;
                    results.extend(self.send_to(id, env, &idx, lookup, st).await);
                }
            }
        }
        let t = now();
        for (i, o, remote) in results {
            crate::metrics::get().relay_attempt(match &o {
                Outcome::Delivered(_) => crate::metrics::Attempt::Delivered,
                Outcome::Temporary(_) => crate::metrics::Attempt::Deferred,
                Outcome::Permanent(_) => crate::metrics::Attempt::Failed,
            });
            match o {
                Outcome::Delivered(r) => st.status[i] = RcptStatus::Delivered { at: t, reply: r },
                Outcome::Permanent(r) => {
                    st.status[i] = RcptStatus::Failed {
                        at: t,
                        reply: r,
                        remote,
                    }
                }
                Outcome::Temporary(r) => st.last_error = Some(r),
            }
        }
    }

    /// Tries the hosts in order until one gives an answer other than a temporary failure.
    async fn send_to(
        &self,
        id: &str,
        env: &Envelope,
        idx: &[usize],
        lookup: Lookup,
        st: &DeliveryState,
    ) -> Vec<(usize, Outcome, Option<String>)> {
        let hosts = match lookup {
            Lookup::Hosts(h) => h,
            Lookup::Permanent(r) => {
                return idx
                    .iter()
                    .map(|&i| (i, Outcome::Permanent(r.clone()), None))
                    .collect();
            }
            Lookup::Temporary(r) => {
                return idx
                    .iter()
                    .map(|&i| (i, Outcome::Temporary(r.clone()), None))
                    .collect();
            }
        };
        let mut last = Vec::new();
        for host in hosts {
            for addr in &host.addrs {
                let tx = Transaction {
                    from: &env.mail_from,
                    rcpts: idx
                        .iter()
                        .map(|&i| env.recipients[i].address.as_str())
                        .collect(),
                    size: self.store.stored_size(id),
                    body_8bit: env.body_8bit,
                    smtputf8: env.smtputf8,
                };
                let outcomes = self.transact(*addr, &host.name, id, &tx, st).await;
                let all_temp = outcomes.iter().all(|o| matches!(o, Outcome::Temporary(_)));
                last = idx
                    .iter()
                    .zip(outcomes)
                    .map(|(&i, o)| (i, o, Some(host.name.clone())))
                    .collect();
                if !all_temp {
                    return last;
                }
            }
        }
        last
    }

    async fn bounce(&self, env: &Envelope, st: &DeliveryState, failed: &[usize]) {
        let failures: Vec<dsn::Failure<'_>> = failed
            .iter()
            .filter(|&&i| dsn::wanted(env, &env.recipients[i]))
            .filter_map(|&i| match &st.status[i] {
                RcptStatus::Failed { reply, remote, .. } => Some(dsn::Failure {
                    rcpt: &env.recipients[i],
                    reply,
                    remote: remote.as_deref(),
                }),
                _ => None,
            })
            .collect();
        if failures.is_empty() {
            return;
        }
        let headers = match self.store.open_message(&env.id) {
            Ok((_, m)) => tokio::task::block_in_place(|| dsn::original_headers(m)),
            Err(_) => Vec::new(),
        };
        let (denv, bytes) = dsn::build(&self.hostname, env, &failures, &headers);
        match self.store.enqueue_bytes(&denv, &bytes).await {
            Ok(id) => {
                tracing::info!(id = %id, original = %env.id, "bounce queued for the sender");
                self.schedule(&id, now_ms());
            }
            Err(e) => tracing::error!(original = %env.id, error = %e, "cannot queue bounce"),
        }
    }
}

fn humanize(secs: i64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}
