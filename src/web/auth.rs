//! Recipient authentication state: sessions, one-time SMS codes, failure counting with lockout
//! per link and per client address, and resend limits. In memory: a restart signs everyone out
//! and forgets pending codes, which errs on the safe side.

use crate::store::MessageId;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which link (message and recipient) something belongs to.
pub type Link = (MessageId, u32);

pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 3600);
pub const CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// Failures per link before it locks; each further failure doubles the lock (1 min .. 1 h).
pub const FREE_FAILURES: u32 = 5;
/// Failures per client address in `IP_WINDOW` before it is refused everywhere.
pub const IP_FAILURES: u32 = 30;
pub const IP_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Passwords or codes sent per link in `RESEND_WINDOW`.
pub const RESENDS: u32 = 3;
pub const RESEND_WINDOW: Duration = Duration::from_secs(10 * 60);

struct Session {
    link: Link,
    created: Instant,
    seen: Instant,
}

struct Code {
    hash: [u8; 32],
    expires: Instant,
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

struct Window {
    start: Instant,
    count: u32,
}

#[derive(Default)]
struct State {
    sessions: HashMap<[u8; 32], Session>,
    codes: HashMap<Link, Code>,
    failures: HashMap<Link, Failures>,
    ip_failures: HashMap<IpAddr, Window>,
    resends: HashMap<Link, Window>,
}

#[derive(Default)]
pub struct Auth {
    state: Mutex<State>,
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Minutes, rounded up, for the 'try again in N minutes' text.
pub fn minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60).max(1)
}

impl Auth {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session for a link; returns the id for the cookie (256 bits, stored hashed).
    pub fn new_session(&self, link: Link) -> String {
        use base64::Engine;
        let raw = crate::seal::random_bytes::<32>();
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let mut st = self.lock();
        st.sessions
            .retain(|_, s| now - s.seen < SESSION_IDLE && now - s.created < SESSION_MAX);
        st.sessions.insert(
            sha(id.as_bytes()),
            Session {
                link,
                created: now,
                seen: now,
            },
        );
        id
    }

    /// Whether the cookie's session is alive and belongs to this link (a session opens only
    /// its own message); touches it.
    pub fn session_valid(&self, id: &str, link: Link) -> bool {
        let now = Instant::now();
        let mut st = self.lock();
        let key = sha(id.as_bytes());
        let alive = match st.sessions.get_mut(&key) {
            Some(s) if now - s.seen < SESSION_IDLE && now - s.created < SESSION_MAX => {
                if s.link == link {
                    s.seen = now;
                    return true;
                }
                true
            }
            _ => false,
        };
        if !alive {
            st.sessions.remove(&key);
        }
        false
    }

    pub fn end_session(&self, id: &str) {
        self.lock().sessions.remove(&sha(id.as_bytes()));
    }

    /// How long the link (or the client) is locked out, if it is.
    pub fn locked(&self, link: Link, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let st = self.lock();
        let by_link = st
            .failures
            .get(&link)
            .and_then(|f| f.locked_until)
            .filter(|t| *t > now)
            .map(|t| t - now);
        let by_ip = st
            .ip_failures
            .get(&ip)
            .filter(|w| now - w.start < IP_WINDOW && w.count >= IP_FAILURES)
            .map(|w| IP_WINDOW - (now - w.start));
        by_link.max(by_ip)
    }

    /// Counts a failed attempt against the link and the client.
    pub fn failed(&self, link: Link, ip: IpAddr) {
        let now = Instant::now();
        let mut st = self.lock();
        let f = st.failures.entry(link).or_default();
        f.count += 1;
        if f.count >= FREE_FAILURES {
            let exp = (f.count - FREE_FAILURES).min(6);
            f.locked_until = Some(now + Duration::from_secs(60 << exp));
        }
        let w = st.ip_failures.entry(ip).or_insert(Window {
            start: now,
            count: 0,
        });
        if now - w.start >= IP_WINDOW {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        w.count += 1;
    }

    pub fn succeeded(&self, link: Link) {
        let mut st = self.lock();
        st.failures.remove(&link);
        st.codes.remove(&link);
    }

    /// Counts a password or code being sent; `Err(wait)` when the link asked too often.
    pub fn may_send(&self, link: Link) -> Result<(), Duration> {
        let now = Instant::now();
        let mut st = self.lock();
        let w = st.resends.entry(link).or_insert(Window {
            start: now,
            count: 0,
        });
        if now - w.start >= RESEND_WINDOW {
            *w = Window {
                start: now,
                count: 0,
            };
        }
        if w.count >= RESENDS {
            return Err(RESEND_WINDOW - (now - w.start));
        }
        w.count += 1;
        Ok(())
    }

    /// A fresh one-time code for the link (8 digits); it replaces any earlier one.
    pub fn new_code(&self, link: Link) -> String {
        let r = u64::from_le_bytes(crate::seal::random_bytes::<8>());
        let code = format!("{:08}", r % 100_000_000);
        self.lock().codes.insert(
            link,
            Code {
                hash: sha(code.as_bytes()),
                expires: Instant::now() + CODE_TTL,
            },
        );
        code
    }

    /// Checks and uses up a code. Wrong, expired and missing codes take the same path.
    pub fn check_code(&self, link: Link, presented: &str) -> bool {
        let presented: String = presented.chars().filter(|c| !c.is_whitespace()).collect();
        let h = sha(presented.as_bytes());
        let mut st = self.lock();
        let (want, live) = match st.codes.get(&link) {
            Some(c) => (c.hash, c.expires > Instant::now()),
            None => (sha(&crate::seal::random_bytes::<16>()), false),
        };
        let ok = crate::store::ct_eq(&h, &want) & live;
        if ok {
            st.codes.remove(&link);
        }
        ok
    }

    /// Forgets what has aged out (called now and then).
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut st = self.lock();
        st.sessions
            .retain(|_, s| now - s.seen < SESSION_IDLE && now - s.created < SESSION_MAX);
        st.codes.retain(|_, c| c.expires > now);
        st.failures
            .retain(|_, f| f.locked_until.is_none_or(|t| t + IP_WINDOW > now));
        st.ip_failures.retain(|_, w| now - w.start < IP_WINDOW);
        st.resends.retain(|_, w| now - w.start < RESEND_WINDOW);
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
mod tests {
    use super::*;

    fn link(n: u8) -> Link {
        (MessageId([n; 16]), 0)
    }

    #[test]
    fn sessions_open_only_their_own_link() {
        let a = Auth::default();
        let id = a.new_session(link(1));
        assert!(a.session_valid(&id, link(1)));
        assert!(!a.session_valid(&id, link(2)));
        assert!(!a.session_valid("forged", link(1)));
        a.end_session(&id);
        assert!(!a.session_valid(&id, link(1)));
    }

    #[test]
    fn codes_are_single_use_and_bound_to_the_link() {
        let a = Auth::default();
        let c = a.new_code(link(1));
        assert_eq!(c.len(), 8);
        assert!(!a.check_code(link(2), &c));
        assert!(!a.check_code(link(1), "00000000x"));
        assert!(a.check_code(link(1), &c));
        assert!(!a.check_code(link(1), &c), "used up");
        let old = a.new_code(link(1));
        let new = a.new_code(link(1));
        assert!(
            old == new || !a.check_code(link(1), &old),
            "a new code voids the old"
        );
    }

    #[test]
    fn failures_lock_the_link_and_then_the_client() {
        let a = Auth::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..FREE_FAILURES - 1 {
            a.failed(link(1), ip);
        }
        assert!(a.locked(link(1), ip).is_none());
        a.failed(link(1), ip);
        let d = a.locked(link(1), ip).unwrap();
        assert!(d <= Duration::from_secs(60) && d > Duration::from_secs(50));
        // Another link from the same client is not locked yet ...
        assert!(a.locked(link(2), ip).is_none());
        // ... until the client has failed too often anywhere.
        for i in 0..IP_FAILURES {
            a.failed(link(10 + i as u8), ip);
        }
        assert!(a.locked(link(2), ip).is_some());
        assert!(a.locked(link(2), "192.0.2.2".parse().unwrap()).is_none());
    }

    #[test]
    fn resends_are_limited() {
        let a = Auth::default();
        for _ in 0..RESENDS {
            assert!(a.may_send(link(1)).is_ok());
        }
        assert!(a.may_send(link(1)).is_err());
        assert!(a.may_send(link(2)).is_ok());
    }

    #[test]
    fn generated_passwords() {
        let p = generate_password();
        assert_eq!(p.len(), 23);
        assert_ne!(p, generate_password());
        assert!(!p.contains(['0', 'O', 'l', '1', 'I']));
    }
}
