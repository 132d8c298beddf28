//! Between the end of DATA and the reply. A message small enough to hold in memory is examined
//! there; when the policy wants it protected it is sealed into the store and only the rewritten
//! copies are queued, so the original never makes a round through the queue (half the disk
//! writes and a seal pass of a protected mail). The client hears 250 only when the store and
//! the copies are durable. The copies are written to the queue while the blobs are still being
//! made durable (the two syncs overlap), and handed to the relay only once both are; if
//! protection then fails they are withdrawn, and one that a crash kept is dropped by the relay,
//! which checks a copy's stored message before sending it.
//!
//! Everything else is queued as received, as before: larger messages, messages that leave as
//! written or wait (with the decision carried in the envelope, so the relay does not examine
//! them again), and any message whose protection failed here (the relay tries again from the
//! queue and defers it while it keeps failing: fail closed, never sent unprotected).

use crate::config::{BeforeReply, PolicyConfig};
use crate::pipeline::{self, Pipeline};
use crate::policy::decide::Verdict;
use crate::protect::{Outcome, Outgoing, Protected, Protector, Request};
use crate::queue::{Decided, Envelope, Incoming, QueueStore, now};
use crate::relay::{dsn, protect::copy_envelope};
use crate::store::{EventKind, MessageId};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;

pub struct Admit {
    pipeline: Arc<Pipeline>,
    protector: Arc<Protector>,
    store: QueueStore,
    /// Ids of the copies queued here, for the relay.
    queued: mpsc::UnboundedSender<String>,
    hostname: String,
    /// Messages examined and sealed at once: twice the inspection concurrency, since sealing
    /// waits on fsyncs; more only added kernel contention (8 sessions: 135-155 msgs/s with
    /// four times, 182-191 with twice) and memory.
    permits: Arc<Semaphore>,
    /// `Always`, or `Auto`: only while other messages arrive too or when the sender asked for
    /// protection.
    mode: BeforeReply,
    /// Messages between DATA and the reply right now.
    arriving: Arc<AtomicUsize>,
    /// Checks the markers a message came back with (crate::marker).
    marker: crate::marker::Marker,
}

/// Counts a message as arriving until dropped.
pub struct Arrival(Arc<AtomicUsize>);

impl Drop for Arrival {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the session does with the message.
#[derive(Debug, PartialEq, Eq)]
pub enum Admitted {
    /// Protected: the copies (and a report for refused recipients) are queued, the original
    /// is not.
    Protected,
    /// Queue the original; its envelope carries the decision when one was made.
    Queue,
}

impl Admit {
    /// `policy` gives the inspection concurrency and when to examine before the reply.
    pub fn new(
        pipeline: Arc<Pipeline>,
        protector: Arc<Protector>,
        store: QueueStore,
        queued: mpsc::UnboundedSender<String>,
        hostname: &str,
        policy: &PolicyConfig,
        marker: crate::marker::Marker,
    ) -> Admit {
        Admit {
            pipeline,
            protector,
            store,
            queued,
            hostname: hostname.to_string(),
            permits: Arc::new(Semaphore::new(policy.inspect_concurrency.max(1) * 2)),
            mode: policy.examine_before_reply,
            arriving: Arc::new(AtomicUsize::new(0)),
            marker,
        }
    }

    /// Called when a message starts to arrive; the count ends with the returned guard.
    pub fn arriving(&self) -> Arrival {
        self.arriving.fetch_add(1, Ordering::Relaxed);
        Arrival(self.arriving.clone())
    }

    /// Examines a complete message and protects it when the policy says so. An error means
    /// the copies could not all be queued: the client must hear a temporary failure.
    pub async fn admit(&self, inc: &mut Incoming) -> io::Result<Admitted> {
        let env = inc.envelope();
        if env.internal || env.already_processed {
            return Ok(Admitted::Queue);
        }
        let markers = env.markers.clone();
        let Some(bytes) = inc.share() else {
            return Ok(Admitted::Queue);
        };
        // A loop is recognised here and queued as it is; any other marker is dropped.
        if !markers.is_empty()
            && let Some(env) = inc.envelope_mut()
        {
            let looped = self.marker.check(env, &bytes, now());
            if looped {
                return Ok(Admitted::Queue);
            }
        }
        // A lone message that the sender did not ask to protect: queued at once, it is
        // examined on the other core while the client sends the next one, which is quicker
        // than making the client wait for both. One that will most likely be protected is
        // quicker done here: its original is never written to the queue.
        if self.mode == BeforeReply::Auto
            && self.arriving.load(Ordering::Relaxed) <= 1
            && !self.pipeline.sender_asks_protection(&bytes)
        {
            return Ok(Admitted::Queue);
        }
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return Ok(Admitted::Queue);
        };
        let id = inc.id.clone();
        let rcpts: Vec<String> = inc
            .envelope()
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect();
        let (pl, protector) = (self.pipeline.clone(), self.protector.clone());
        let original = bytes.clone();
        let (early_tx, early_rx) = oneshot::channel::<(MessageId, Vec<Outgoing>)>();
        let work = tokio::task::spawn_blocking(move || {
            let mut ex = pl.examine_keeping(&bytes, &rcpts);
            let outcome = match &ex.decision.verdict {
                Verdict::Protect { protection, auth } => {
                    let mut early_tx = Some(early_tx);
                    let req = Request {
                        original: &bytes,
                        recipients: &rcpts,
                        protection: *protection,
                        auth: *auth,
                        decision: &ex.decision,
                        settings: &ex.policy.settings,
                        tags: &ex.policy.tags,
                        decoded: &ex.inspection.decoded,
                        now: now(),
                    };
                    Some(protector.protect_early(&req, &mut |message, copies| {
                        if let Some(tx) = early_tx.take() {
                            let _ = tx.send((message, copies));
                        }
                    }))
                }
                _ => None,
            };
            // Sealed (or not needed): the memory goes before the copies are queued.
            ex.inspection.decoded = Vec::new();
            (ex, outcome)
        });
        // The copies go into the queue while their blobs are being made durable; they are
        // handed to the relay only once protection has finished, and withdrawn if it failed.
        let early = match early_rx.await {
            Ok((message, copies)) => {
                let jobs = copy_jobs(inc.envelope(), message, copies);
                Some(self.commit_all(jobs).await)
            }
            Err(_) => None,
        };
        let work = work.await;
        // A panic in there: the relay examines the message again from the queue.
        let Ok((ex, outcome)) = work else {
            tracing::error!(id, "examining the message failed; queued for the relay");
            if let Some(early) = early {
                self.withdraw(&early.ids);
            }
            return Ok(Admitted::Queue);
        };
        pipeline::log_decision(&id, &ex.decision);
        let mut decided = Decided {
            strip: ex.strip.then(|| ex.inspection.subject.clone()),
            decision: ex.decision,
        };
        let p = match outcome {
            Some(Ok(Outcome::Protected(p))) => p,
            other => {
                if let Some(early) = early {
                    self.withdraw(&early.ids);
                }
                match other {
                    Some(Ok(Outcome::NothingToProtect)) => {
                        pipeline::deliver_as_written(&mut decided.decision)
                    }
                    Some(Err(e)) => tracing::warn!(
                        id,
                        error = %e,
                        "cannot protect the message yet; it is queued and the relay tries again"
                    ),
                    _ => {}
                }
                if let Some(env) = inc.envelope_mut() {
                    env.decided = Some(decided);
                }
                return Ok(Admitted::Queue);
            }
        };
        self.queue_copies(inc.envelope(), p, early.unwrap_or_default(), &original)
            .await?;
        Ok(Admitted::Protected)
    }

    /// Queues the copies not queued yet and a report for the recipients protection refused,
    /// all at once (so they share one sync), then hands everything to the relay. If any of it
    /// cannot be queued, none of it leaves: the client hears a temporary failure and sends
    /// the message again, so the stored message goes too.
    async fn queue_copies(
        &self,
        env: &Envelope,
        mut p: Protected,
        mut queued: Queued,
        original: &[u8],
    ) -> io::Result<()> {
        for why in &p.ignored {
            tracing::warn!(id = %env.id, "{why}");
        }
        let mut jobs = copy_jobs(env, p.message, std::mem::take(&mut p.copies));
        jobs.extend(self.report(env, &p.refused, original));
        let more = self.commit_all(jobs).await;
        queued.ids.extend(more.ids);
        if let Some(e) = queued.failed.or(more.failed) {
            tracing::error!(id = %env.id, error = %e, "cannot queue every protected copy");
            self.withdraw(&queued.ids);
            let store = self.protector.store.clone();
            let message = p.message;
            let shred = tokio::task::spawn_blocking(move || {
                store.shred(message, now(), EventKind::Shredded)
            })
            .await;
            if !matches!(shred, Ok(Ok(_))) {
                tracing::warn!(%message, "cannot remove the stored message of a failed attempt");
            }
            return Err(e);
        }
        for qid in &queued.ids {
            let _ = self.queued.send(qid.clone());
        }
        tracing::info!(
            id = %env.id,
            message = %p.message,
            protection = ?p.protection,
            refused = p.refused.len(),
            queued = ?queued.ids,
            "protected"
        );
        Ok(())
    }

    /// The delivery report for the recipients protection refused, when one is wanted.
    fn report(
        &self,
        env: &Envelope,
        refused: &[(usize, String)],
        original: &[u8],
    ) -> Option<(Envelope, Vec<u8>)> {
        for (i, reply) in refused {
            tracing::warn!(id = %env.id, rcpt = %env.recipients[*i].address, reply = %reply, "failed");
        }
        let failures: Vec<dsn::Failure<'_>> = refused
            .iter()
            .filter(|(i, _)| dsn::wanted(env, &env.recipients[*i]))
            .map(|(i, reply)| dsn::Failure {
                rcpt: &env.recipients[*i],
                reply,
                remote: None,
            })
            .collect();
        if failures.is_empty() {
            return None;
        }
        let headers = dsn::original_headers(Box::new(io::Cursor::new(original.to_vec())));
        Some(dsn::build(&self.hostname, env, &failures, &headers))
    }

    /// Makes every message durable in the queue, all at once; not handed to the relay yet.
    async fn commit_all(&self, jobs: Vec<(Envelope, Vec<u8>)>) -> Queued {
        let mut set = JoinSet::new();
        for (env, bytes) in jobs {
            let store = self.store.clone();
            set.spawn(async move { store.enqueue_bytes(&env, &bytes).await });
        }
        let mut queued = Queued::default();
        while let Some(r) = set.join_next().await {
            match r.map_err(io::Error::other).and_then(|r| r) {
                Ok(qid) => queued.ids.push(qid),
                Err(e) => queued.failed = Some(e),
            }
        }
        queued
    }

    /// Takes queued copies out again before the relay has seen them. One that cannot be
    /// removed finds its stored message gone when the relay loads it after a restart, and is
    /// dropped then.
    fn withdraw(&self, ids: &[String]) {
        if !ids.is_empty() {
            tracing::info!(queued = ?ids, "copies withdrawn from the queue");
        }
        for qid in ids {
            if let Err(e) = self.store.remove(qid) {
                tracing::error!(id = %qid, error = %e, "cannot withdraw a queued copy");
            }
        }
    }
}

/// What went into the queue for one message.
#[derive(Default)]
struct Queued {
    ids: Vec<String>,
    failed: Option<io::Error>,
}

/// Each recipient's copy with its queue envelope.
fn copy_jobs(
    env: &Envelope,
    message: MessageId,
    copies: Vec<Outgoing>,
) -> Vec<(Envelope, Vec<u8>)> {
    let t = now();
    copies
        .into_iter()
        .map(|c| {
            let cenv = copy_envelope(env, &env.recipients[c.rcpt], message, c.store_rcpt, t);
            (cenv, c.bytes)
        })
        .collect()
}
