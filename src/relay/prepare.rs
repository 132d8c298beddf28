//! Before the first delivery attempt: examine the message and act on the policy decision.

use super::protect::Protection;
use super::{Relay, dsn, now_ms};
use crate::policy::decide::Decision;
use crate::policy::decide::Verdict;
use crate::queue::{DeliveryState, Envelope, now};

impl Relay {
    /// Examines a message the first time it is attempted and acts on the decision.
    /// Returns why it must wait, or None when it may be delivered now.
    pub(super) async fn prepare(
        &self,
        id: &str,
        env: &Envelope,
        st: &mut DeliveryState,
    ) -> Option<String> {
        // Mail sluis wrote itself leaves as written: it has no tags or control headers.
        if env.internal || env.protected.is_some() {
            return None;
        }
        let mut subject = None;
        if st.decision.is_none()
            && let Some(d) = &env.decided
        {
            // Decided before the reply to the client (crate::admit).
            st.decision = Some(d.decision.clone());
            st.strip = d.strip.clone();
        }
        if st.decision.is_none() {
            let Ok(_permit) = self.inspecting.clone().acquire_owned().await else {
                return Some("shutting down".into());
            };
            let store = self.store.clone();
            let pipeline = self.pipeline.clone();
            let idc = id.to_string();
            let rcpts: Vec<String> = env.recipients.iter().map(|r| r.address.clone()).collect();
            let (marker, mut envc) = (self.marker.clone(), env.clone());
            let r = tokio::task::spawn_blocking(move || {
                let bytes = store.read_shared(&idc).map_err(|e| e.to_string())?;
                let looped = envc.already_processed || marker.check(&mut envc, &bytes, now());
                let mut ex = pipeline.examine(&bytes, &rcpts);
                // A loop is not decided again, but it is stripped like any other message.
                if looped {
                    ex.decision = looped_decision(ex.decision);
                }
                Ok::<_, String>(ex)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            let ex = match r {
                Ok(ex) => ex,
                // Fail closed: a message that cannot be examined does not leave.
                Err(e) => return Some(format!("451 4.3.0 cannot examine message: {e}")),
            };
            crate::pipeline::log_decision(id, &ex.decision);
            if ex.strip {
                st.strip = Some(ex.inspection.subject.clone());
            }
            subject =
                Some(crate::policy::tags::parse_subject(&ex.inspection.subject, &ex.policy.tags).0);
            st.decision = Some(ex.decision);
        }
        if let Some(Verdict::Protect { protection, auth }) =
            st.decision.as_ref().map(|d| d.verdict.clone())
        {
            match self.protect(id, env, st, protection, auth).await {
                Ok(Protection::Done) => return None,
                Ok(Protection::NotNeeded) => {
                    if let Some(d) = st.decision.as_mut() {
                        crate::pipeline::deliver_as_written(d);
                    }
                }
                Err(reason) => return Some(reason),
            }
        }
        let d = st.decision.as_ref()?;
        if let Some(reason) = crate::pipeline::hold_reason(&d.verdict) {
            return Some(reason);
        }
        if d.verdict == Verdict::Notify && !st.noticed && !env.mail_from.is_empty() {
            let org = crate::notice::Org {
                hostname: &self.hostname,
                name: &self.cfg.organisation.name,
                language: &self.cfg.organisation.default_language,
            };
            let subject = subject.unwrap_or_else(|| self.subject_of(id));
            let (nenv, bytes) = crate::notice::build(&org, env, &subject, d);
            match self.store.enqueue_bytes(&nenv, &bytes).await {
                Ok(nid) => {
                    st.noticed = true;
                    tracing::info!(id = %nid, original = %id, "policy notice queued for the sender");
                    self.schedule(&nid, now_ms());
                }
                Err(e) => tracing::error!(original = %id, error = %e, "cannot queue policy notice"),
            }
        }
        None
    }

    fn subject_of(&self, id: &str) -> String {
        let Ok((_, m)) = self.store.open_message(id) else {
            return String::new();
        };
        let head = dsn::original_headers(m);
        let n = crate::headers::block_len(&head);
        crate::headers::split_fields(&head[..n])
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case("subject"))
            .map(|f| crate::headers::unfold(f.value))
            .unwrap_or_default()
    }
}

/// The decision for a mail that came back with this gateway's marker: it leaves as it is, as
/// it did the first time (its `[unsecure]` opt-out, say, was stripped then).
fn looped_decision(examined: Decision) -> Decision {
    Decision {
        verdict: Verdict::Deliver,
        rules: Vec::new(),
        findings: Vec::new(),
        unscannable: Vec::new(),
        reasons: vec![
            "came back with this gateway's marker for this content and these recipients \
             (a loop): sent on as it is, not examined again"
                .into(),
        ],
        ..examined
    }
}
