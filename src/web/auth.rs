//! Recipient authentication state: sessions, one-time SMS codes and resend limits, kept in the
//! store ([`crate::store::PortalState`]) so that a restart neither signs anyone out nor forgets
//! a lock or a pending code. Failure counting and the bounds on checks are in `guard`.

use super::guard::Guard;
use crate::queue::now;
use crate::store::{MessageId, MetaStore, StateKind, StoreError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Which link (message and recipient) something belongs to.
pub type Link = (MessageId, u32);

/// Session timeouts and the one-time code's life, in seconds.
pub const SESSION_IDLE: i64 = 30 * 60;
pub const SESSION_MAX: i64 = 12 * 3600;
pub const CODE_TTL: i64 = 10 * 60;
/// Passwords or codes sent per link in `RESEND_WINDOW` seconds.
pub const RESENDS: u32 = 3;
pub const RESEND_WINDOW: i64 = 10 * 60;
/// A session's last use is written at most this often: a store write per page view is waste.
const TOUCH_EVERY: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("portal state record does not decode: {0}")]
    Record(#[from] serde_json::Error),
}

/// A record of the portal state with its own end of life.
pub(super) trait Record: Serialize + DeserializeOwned + Default {
    /// When the record can go (unix seconds); at or before now it is removed.
    fn expires(&self) -> i64;
}

#[derive(Serialize, Deserialize)]
struct Session {
    msg: MessageId,
    rcpt: u32,
    created: i64,
    seen: i64,
}

impl Session {
    fn expires(&self) -> i64 {
        (self.seen + SESSION_IDLE).min(self.created + SESSION_MAX)
    }
}

/// Everything kept per link: failures and lock (see `guard`), the pending code, resends.
#[derive(Serialize, Deserialize, Default)]
pub(super) struct LinkState {
    /// Failures not yet forgiven; an attempt counts from the moment it is admitted.
    pub failures: u32,
    /// From when the next failure is forgiven.
    pub decay_from: i64,
    pub locked_until: i64,
    /// SHA-256 of the pending code, hex, and its end.
    pub code: Option<(String, i64)>,
    pub resend_from: i64,
    pub resends: u32,
}

impl Record for LinkState {
    fn expires(&self) -> i64 {
        let failures = match self.failures {
            0 => 0,
            n => self.decay_from + i64::from(n) * super::guard::FORGIVE_EVERY,
        };
        let code = self.code.as_ref().map_or(0, |c| c.1);
        let resends = if self.resends > 0 {
            self.resend_from + RESEND_WINDOW
        } else {
            0
        };
        failures.max(self.locked_until).max(code).max(resends)
    }
}

pub struct Auth {
    pub(super) meta: Arc<dyn MetaStore>,
    pub guard: Guard,
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

pub(super) fn link_key((id, rcpt): Link) -> Vec<u8> {
    [&id.as_bytes()[..], &rcpt.to_be_bytes()].concat()
}

impl Auth {
    pub fn new(meta: Arc<dyn MetaStore>, client_key: [u8; 32]) -> Auth {
        Auth {
            meta,
            guard: Guard::new(client_key),
        }
    }

    /// Reads, changes and writes one record atomically; `f` may run more than once. A record
    /// that does not decode is kept (for a day) and reported: a lock is never lost to it.
    pub(super) fn update<T: Record, R>(
        &self,
        kind: StateKind,
        key: &[u8],
        mut f: impl FnMut(&mut T, i64) -> R,
    ) -> Result<R, AuthError> {
        let now = now();
        let (mut out, mut bad) = (None, None);
        self.meta.state_update(kind, key, now, &mut |old| {
            let mut rec = match old.map(serde_json::from_slice::<T>) {
                None => T::default(),
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    bad = Some(e);
                    return old.map(|o| (o.to_vec(), now + 86_400));
                }
            };
            bad = None;
            out = Some(f(&mut rec, now));
            let exp = rec.expires();
            let json = serde_json::to_vec(&rec).expect("plain data serializes");
            (exp > now).then_some((json, exp))
        })?;
        match (bad, out) {
            (Some(e), _) => Err(e.into()),
            (None, Some(r)) => Ok(r),
            (None, None) => unreachable!("the change runs at least once"),
        }
    }

    /// A new session for a link; returns the id for the cookie (256 bits, stored hashed).
    pub fn new_session(&self, link: Link) -> Result<String, AuthError> {
        use base64::Engine;
        let raw = crate::seal::random_bytes::<32>();
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = now();
        let s = Session {
            msg: link.0,
            rcpt: link.1,
            created: now,
            seen: now,
        };
        let json = serde_json::to_vec(&s)?;
        let exp = s.expires();
        self.meta
            .state_update(StateKind::Session, &sha(id.as_bytes()), now, &mut |_| {
                Some((json.clone(), exp))
            })?;
        Ok(id)
    }

    /// Whether the cookie's session is alive and belongs to this link (a session opens only
    /// its own message); touches it. A store failure counts as no session.
    pub fn session_valid(&self, id: &str, link: Link) -> bool {
        let key = sha(id.as_bytes());
        let now = now();
        let s = match self.meta.state_get(StateKind::Session, &key, now) {
            Ok(Some(v)) => serde_json::from_slice::<Session>(&v).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                None
            }
        };
        let Some(s) = s.filter(|s| (s.msg, s.rcpt) == link) else {
            return false;
        };
        if now - s.seen >= TOUCH_EVERY {
            let r = self
                .meta
                .state_update(StateKind::Session, &key, now, &mut |old| {
                    let mut s: Session = serde_json::from_slice(old?).ok()?;
                    s.seen = now;
                    Some((serde_json::to_vec(&s).ok()?, s.expires()))
                });
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot touch a session");
            }
        }
        true
    }

    pub fn end_session(&self, id: &str) -> Result<(), AuthError> {
        Ok(self
            .meta
            .state_remove(StateKind::Session, &sha(id.as_bytes()))?)
    }

    /// Counts a password or code being sent; `Ok(Err(wait))` when the link asked too often.
    pub fn may_send(&self, link: Link) -> Result<Result<(), i64>, AuthError> {
        self.update(
            StateKind::Link,
            &link_key(link),
            |s: &mut LinkState, now| {
                if now - s.resend_from >= RESEND_WINDOW {
                    s.resend_from = now;
                    s.resends = 0;
                }
                if s.resends >= RESENDS {
                    return Err(s.resend_from + RESEND_WINDOW - now);
                }
                s.resends += 1;
                Ok(())
            },
        )
    }

    /// A fresh one-time code for the link (8 digits); it replaces any earlier one.
    pub fn new_code(&self, link: Link) -> Result<String, AuthError> {
        let r = u64::from_le_bytes(crate::seal::random_bytes::<8>());
        let code = format!("{:08}", r % 100_000_000);
        let hash = hex::encode(sha(code.as_bytes()));
        self.update(
            StateKind::Link,
            &link_key(link),
            |s: &mut LinkState, now| {
                s.code = Some((hash.clone(), now + CODE_TTL));
            },
        )?;
        Ok(code)
    }

    /// Checks and uses up a code. Wrong, expired and missing codes take the same path.
    pub fn check_code(&self, link: Link, presented: &str) -> Result<bool, AuthError> {
        let presented: String = presented.chars().filter(|c| !c.is_whitespace()).collect();
        let h = sha(presented.as_bytes());
        self.update(
            StateKind::Link,
            &link_key(link),
            |s: &mut LinkState, now| {
                let (want, live) = match &s.code {
                    Some((hash, exp)) => (hex::decode(hash).unwrap_or_default(), *exp > now),
                    None => (sha(&crate::seal::random_bytes::<16>()).to_vec(), false),
                };
                let ok = crate::store::ct_eq(&h, &want) & live;
                if ok {
                    s.code = None;
                }
                ok
            },
        )
    }

    /// Forgets what has aged out (called now and then; blocking).
    pub fn sweep(&self) -> Result<usize, AuthError> {
        Ok(self.meta.state_sweep(now())?)
    }
}

/// A generated password: 20 characters from an alphabet without look-alikes (about 110 bits),
/// in groups of five for reading and typing.
pub fn generate_password() -> String {
    const ALPHA: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let raw = crate::seal::random_bytes::<64>();
    let mut out = String::new();
    let mut n = 0;
    for b in raw {
        // Rejection sampling keeps every character equally likely.
        if (b as usize) >= 256 - 256 % ALPHA.len() {
            continue;
        }
        if n > 0 && n % 5 == 0 {
            out.push('-');
        }
        out.push(ALPHA[b as usize % ALPHA.len()] as char);
        n += 1;
        if n == 20 {
            return out;
        }
    }
    generate_password()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn link(n: u8) -> Link {
        (MessageId([n; 16]), 0)
    }

    /// An `Auth` on a fresh store in `dir`.
    pub fn auth(dir: &std::path::Path) -> Auth {
        let keys = std::sync::Arc::new(crate::seal::Keyring::for_tests());
        let meta = crate::store::SledMeta::open(dir, keys).unwrap();
        Auth::new(Arc::new(meta), [7; 32])
    }

    #[test]
    fn sessions_open_only_their_own_link() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth(dir.path());
        let id = a.new_session(link(1)).unwrap();
        assert!(a.session_valid(&id, link(1)));
        assert!(!a.session_valid(&id, link(2)));
        assert!(!a.session_valid("forged", link(1)));
        a.end_session(&id).unwrap();
        assert!(!a.session_valid(&id, link(1)));
    }

    #[test]
    fn codes_are_single_use_and_bound_to_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth(dir.path());
        let c = a.new_code(link(1)).unwrap();
        assert_eq!(c.len(), 8);
        assert!(!a.check_code(link(2), &c).unwrap());
        assert!(!a.check_code(link(1), "00000000x").unwrap());
        assert!(a.check_code(link(1), &c).unwrap());
        assert!(!a.check_code(link(1), &c).unwrap(), "used up");
        let old = a.new_code(link(1)).unwrap();
        let new = a.new_code(link(1)).unwrap();
        assert!(
            old == new || !a.check_code(link(1), &old).unwrap(),
            "a new code voids the old"
        );
    }

    #[test]
    fn resends_are_limited() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth(dir.path());
        for _ in 0..RESENDS {
            assert!(a.may_send(link(1)).unwrap().is_ok());
        }
        assert!(a.may_send(link(1)).unwrap().is_err());
        assert!(a.may_send(link(2)).unwrap().is_ok());
    }

    #[test]
    fn generated_passwords() {
        let p = generate_password();
        assert_eq!(p.len(), 23);
        assert_ne!(p, generate_password());
        assert!(!p.contains(['0', 'O', 'l', '1', 'I']));
    }
}
