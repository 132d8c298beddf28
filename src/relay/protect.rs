//! The relay's side of protection: seal and rewrite off the executor, queue one copy per
//! recipient, and settle the original's recipients so that it leaves the queue.

use super::{Relay, now_ms};
use crate::policy::schema;
use crate::protect::{Outcome, Request};
use crate::queue::{DeliveryState, Envelope, ProtectedCopy, RcptStatus, Recipient, now};
use crate::store::{Event, EventKind, MessageId};

/// What became of a message that the policy wants protected.
pub(super) enum Protection {
    /// Copies queued; every recipient settled.
    Done,
    /// Nothing in it needed protection: deliver as written.
    NotNeeded,
}

impl Relay {
    /// Seals the message into the store and queues a rewritten copy per pending recipient.
    /// An error is the reason to defer: the original stays queued and nothing leaves.
    pub(super) async fn protect(
        &self,
        id: &str,
        env: &Envelope,
        st: &mut DeliveryState,
        protection: schema::Protection,
        auth: schema::Auth,
    ) -> Result<Protection, String> {
        let Ok(_permit) = self.sealing.clone().acquire_owned().await else {
            return Err("shutting down".into());
        };
        let pending: Vec<usize> = (0..env.recipients.len())
            .filter(|&i| st.status[i].is_pending())
            .collect();
        let rcpts: Vec<String> = pending
            .iter()
            .map(|&i| env.recipients[i].address.clone())
            .collect();
        let Some(decision) = st.decision.clone() else {
            return Err("451 4.3.0 protection asked for before examination".into());
        };
        let (queue, pipeline, protector) = (
            self.store.clone(),
            self.pipeline.clone(),
            self.protector.clone(),
        );
        let idc = id.to_string();
        let r = tokio::task::spawn_blocking(move || {
            let original = queue.read_shared(&idc).map_err(|e| e.to_string())?;
            let policy = pipeline.policy.get();
            protector
                .protect(&Request {
                    original: &original,
                    recipients: &rcpts,
                    protection,
                    auth,
                    decision: &decision,
                    settings: &policy.settings,
                    tags: &policy.tags,
                    decoded: &[],
                    now: now(),
                })
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let p = match r {
            Ok(Outcome::Protected(p)) => p,
            Ok(Outcome::NothingToProtect) => return Ok(Protection::NotNeeded),
            // Fail closed: the original waits for a retry; nothing has been queued.
            Err(e) => {
                tracing::error!(id, error = %e, "protection failed; message deferred");
                return Err(format!("451 4.3.0 cannot protect message: {e}"));
            }
        };
        for why in &p.ignored {
            tracing::warn!(id, "{why}");
        }
        let t = now();
        for c in &p.copies {
            let i = pending[c.rcpt];
            let cenv = copy_envelope(env, &env.recipients[i], p.message, c.store_rcpt, t);
            match self.store.enqueue_bytes(&cenv, &c.bytes).await {
                Ok(qid) => {
                    st.status[i] = RcptStatus::Delivered {
                        at: t,
                        reply: format!(
                            "250 2.0.0 protected as {} ({:?}); link sent in {qid}",
                            p.message, p.protection
                        ),
                    };
                    self.schedule(&qid, now_ms());
                }
                // The stored message stays (it expires); this recipient is tried again later,
                // with a fresh link.
                Err(e) => {
                    tracing::error!(id, error = %e, "cannot queue a protected copy");
                    st.last_error = Some(format!("451 4.3.0 cannot queue protected copy: {e}"));
                }
            }
        }
        for (r, reply) in &p.refused {
            st.status[pending[*r]] = RcptStatus::Failed {
                at: t,
                reply: reply.clone(),
                remote: None,
            };
        }
        tracing::info!(
            id,
            message = %p.message,
            protection = ?p.protection,
            copies = p.copies.len(),
            refused = p.refused.len(),
            "protected"
        );
        Ok(Protection::Done)
    }
}

/// The queue envelope of one recipient's rewritten copy: from the original's sender, marked
/// as processed (it is not examined again) and as carrying that recipient's link.
pub(crate) fn copy_envelope(
    env: &Envelope,
    rcpt: &Recipient,
    message: MessageId,
    store_rcpt: u32,
    t: i64,
) -> Envelope {
    Envelope {
        id: crate::queue::new_id(),
        recipients: vec![rcpt.clone()],
        received_at: t,
        body_8bit: true,
        already_processed: true,
        markers: Vec::new(),
        internal: false,
        protected: Some(ProtectedCopy {
            message: message.to_string(),
            rcpt: store_rcpt,
        }),
        decided: None,
        ..env.clone()
    }
}

impl Relay {
    /// Whether the stored message a copy links to is there with all its content. A copy is
    /// queued while its blobs are still being written (crate::admit), so one that a crash
    /// kept can link to content that never became durable; its sender was never told the
    /// message was accepted and sends it again. A copy whose message was shredded while it
    /// waited would only carry a dead link. Either is dropped; `false` means it was.
    pub(super) async fn copy_is_backed(&self, id: &str, pc: &ProtectedCopy) -> bool {
        let Ok(mid) = pc.message.parse::<MessageId>() else {
            return true;
        };
        let store = self.protector.store.clone();
        let found = tokio::task::spawn_blocking(move || -> Result<Option<String>, String> {
            let Some((msg, _)) = store.meta.get_message(mid).map_err(|e| e.to_string())? else {
                return Ok(Some("its stored message is not there".into()));
            };
            for blob in msg.blob_ids() {
                if !store.blobs.exists(&blob).map_err(|e| e.to_string())? {
                    return Ok(Some(format!(
                        "blob {blob} of its stored message is missing"
                    )));
                }
            }
            Ok(None)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match found {
            Ok(None) => true,
            Ok(Some(missing)) => {
                tracing::error!(
                    id,
                    message = %mid,
                    "protected copy dropped: {missing} (the message was not acknowledged \
                     before a crash, or has been removed since)"
                );
                if let Err(e) = self.store.remove(id) {
                    tracing::error!(id, error = %e, "cannot remove the dropped copy");
                }
                false
            }
            // Cannot tell: the link is most likely good, so it goes.
            Err(e) => {
                tracing::warn!(id, message = %mid, error = %e, "cannot check the stored message");
                true
            }
        }
    }

    /// Records for the sender's tracking that a recipient's copy reached the next hop.
    pub(super) async fn record_relayed(&self, pc: &ProtectedCopy, reply: &str) {
        let Ok(mid) = pc.message.parse::<MessageId>() else {
            return;
        };
        let ev = Event {
            rcpt: Some(pc.rcpt),
            detail: Some(reply.chars().take(200).collect()),
            ..Event::new(now(), EventKind::Relayed)
        };
        // Not flushed here: sled writes it out within half a second (its flush interval), and a
        // crash in between loses only this tracking line, never mail; a sync per relayed copy
        // was a sizeable part of the cost of each protected message.
        if let Err(e) = self.protector.store.meta.add_event(mid, &ev) {
            tracing::warn!(message = %mid, error = %e, "cannot record the relay event");
        }
    }
}
