//! Limits on signing in. Every attempt is counted before it is checked, so attempts in flight
//! count against the allowance and a burst gets no more checks than one at a time would:
//! - per link: 5 free failures, then a lock of 1 minute doubling per further failure (up to a
//!   day); failures are forgiven one per 12 quiet hours, a right password or code forgives them all;
//! - per client address (IPv6: its /64): a leaky bucket of 30 attempts draining one per
//!   30 seconds; a full bucket slows that address down (429 with Retry-After), it locks nobody;
//! - password checks (argon2, about 19 MiB each) run on `CHECKS` threads of their own, with at
//!   most `QUEUE` attempts waiting; beyond that the portal answers 503 with Retry-After. Own
//!   threads, not the blocking pool: the allocator keeps a freed argon2 block in the arena of
//!   the thread that used it, so checks spread over many threads hold that memory many times.

use super::auth::{Auth, AuthError, Link, LinkState, Record, link_key};
use crate::store::StateKind;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

pub const FREE_FAILURES: u32 = 5;
/// The first lock, and the longest (seconds).
pub const LOCK_BASE: i64 = 60;
pub const LOCK_MAX: i64 = 24 * 3600;
/// One failure is forgiven per this many seconds without one.
pub const FORGIVE_EVERY: i64 = 12 * 3600;
/// The client bucket: its size, and the seconds it takes to drain one attempt.
pub const CLIENT_BURST: f64 = 30.0;
pub const CLIENT_DRAIN: i64 = 30;
/// Password checks at once, and attempts that may wait for one.
pub const CHECKS: usize = 2;
pub const QUEUE: usize = 32;
/// Retry-After (seconds) when the queue is full.
pub const BUSY_RETRY: i64 = 5;

/// Why an attempt is not checked, with the seconds to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Busy,
    Link(i64),
    Client(i64),
}

impl Refused {
    pub fn wait(self) -> i64 {
        match self {
            Refused::Busy => BUSY_RETRY,
            Refused::Link(s) | Refused::Client(s) => s.max(1),
        }
    }
}

impl LinkState {
    fn forgive(&mut self, now: i64) {
        let n = ((now - self.decay_from) / FORGIVE_EVERY).clamp(0, i64::from(self.failures));
        self.failures -= n as u32;
        self.decay_from += n * FORGIVE_EVERY;
    }

    /// Counts an attempt as a failure until it proves right; `Err(wait)` while locked.
    fn count_attempt(&mut self, now: i64) -> Result<(), i64> {
        if self.locked_until > now {
            return Err(self.locked_until - now);
        }
        self.forgive(now);
        // Only quiet time forgives: an attacker at every lock's end earns nothing back.
        self.decay_from = now;
        self.failures += 1;
        if self.failures >= FREE_FAILURES {
            let doublings = (self.failures - FREE_FAILURES).min(20);
            self.locked_until = now + (LOCK_BASE << doublings).min(LOCK_MAX);
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize, Default)]
struct Bucket {
    level: f64,
    at: i64,
}

impl Bucket {
    fn drain(&mut self, now: i64) {
        let drained = (now - self.at).max(0) as f64 / CLIENT_DRAIN as f64;
        self.level = (self.level - drained).max(0.0);
        self.at = now;
    }

    fn admit(&mut self, now: i64) -> Result<(), i64> {
        self.drain(now);
        let over = self.level + 1.0 - CLIENT_BURST;
        if over > 0.0 {
            return Err((over * CLIENT_DRAIN as f64).ceil() as i64);
        }
        self.level += 1.0;
        Ok(())
    }

    fn refund(&mut self, now: i64) {
        self.drain(now);
        self.level = (self.level - 1.0).max(0.0);
    }
}

impl Record for Bucket {
    fn expires(&self) -> i64 {
        self.at + (self.level * CLIENT_DRAIN as f64).ceil() as i64
    }
}

type Job = Box<dyn FnOnce() + Send>;

pub struct Guard {
    /// Keys client records, so that the store holds no addresses.
    client_key: [u8; 32],
    /// To the checking threads; they end when it is dropped.
    checks: Mutex<mpsc::Sender<Job>>,
    slots: Arc<Semaphore>,
}

fn checkers() -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..CHECKS {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name("sluis-pwcheck".into())
            .spawn(move || {
                loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                    give_back_memory();
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a password-check thread");
        }
    }
    tx
}

/// Returns the check's freed argon2 block to the system: glibc keeps freed blocks of this size
/// in the thread's arena (its mmap threshold rises after the first one), so the memory would
/// stay resident between checks.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Guard {
    pub fn new(client_key: [u8; 32]) -> Guard {
        Guard {
            client_key,
            checks: Mutex::new(checkers()),
            slots: Arc::new(Semaphore::new(CHECKS + QUEUE)),
        }
    }

    /// A place among the attempts being handled, held for the whole attempt; `None` when full.
    pub fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    fn client_key(&self, ip: IpAddr) -> Vec<u8> {
        use hmac::{Hmac, KeyInit, Mac};
        // One IPv6 client holds a whole /64.
        let bytes = match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets()[..8].to_vec(),
        };
        let mut m = <Hmac<sha2::Sha256>>::new_from_slice(&self.client_key).expect("any key length");
        m.update(&bytes);
        m.finalize().into_bytes().to_vec()
    }

    /// Runs `f` on a checking thread; `None` when it panicked or no thread runs.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(catch_unwind(AssertUnwindSafe(f)).ok());
        });
        let sent = self
            .checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job);
        sent.ok()?;
        rx.await.ok().flatten()
    }

    /// Verifies a password on a checking thread; false on any failure.
    pub async fn verify(&self, hash: Option<String>, presented: String) -> bool {
        self.run(move || verify_password(hash.as_deref(), presented.trim()))
            .await
            .unwrap_or(false)
    }

    /// Hashes a new password on a checking thread.
    pub async fn hash(&self, password: String) -> Result<String, String> {
        self.run(move || hash_password(&password))
            .await
            .unwrap_or_else(|| Err("password hashing failed".into()))
    }
}

impl Auth {
    /// Counts an attempt against the client and the link before it is checked.
    pub fn admit(&self, link: Link, ip: IpAddr) -> Result<Result<(), Refused>, AuthError> {
        let ck = self.guard.client_key(ip);
        if let Err(w) = self.update(StateKind::Client, &ck, |b: &mut Bucket, now| b.admit(now))? {
            return Ok(Err(Refused::Client(w)));
        }
        let by_link = self.update(
            StateKind::Link,
            &link_key(link),
            |s: &mut LinkState, now| s.count_attempt(now),
        );
        if !matches!(by_link, Ok(Ok(()))) {
            // Not checked: it costs the client nothing.
            self.update(StateKind::Client, &ck, |b: &mut Bucket, now| b.refund(now))?;
        }
        Ok(by_link?.map_err(Refused::Link))
    }

    /// A right password or code: the link's failures and lock go, and the attempt is given
    /// back to the client.
    pub fn succeeded(&self, link: Link, ip: IpAddr) -> Result<(), AuthError> {
        self.update(StateKind::Link, &link_key(link), |s: &mut LinkState, _| {
            s.failures = 0;
            s.locked_until = 0;
            s.code = None;
        })?;
        let ck = self.guard.client_key(ip);
        self.update(StateKind::Client, &ck, |b: &mut Bucket, now| b.refund(now))
    }
}

fn hash_password(p: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(p.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Verifies against the stored hash, or against a throw-away one when there is none, so that
/// both take the same time.
fn verify_password(hash: Option<&str>, presented: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        hash_password(&hex::encode(crate::seal::random_bytes::<16>())).unwrap_or_default()
    });
    let (h, real) = match hash {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(h) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(presented.as_bytes(), &parsed)
        .is_ok()
        && real
}

#[cfg(test)]
mod tests {
    use super::super::auth::tests::{auth, link};
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn attempts_count_before_checking_and_lock_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth(dir.path());
        let c = ip("192.0.2.1");
        for _ in 0..FREE_FAILURES {
            assert_eq!(a.admit(link(1), c).unwrap(), Ok(()));
        }
        // Five admitted and not yet decided: the sixth waits a minute.
        match a.admit(link(1), c).unwrap() {
            Err(Refused::Link(w)) => assert!((55..=60).contains(&w), "{w}"),
            r => panic!("{r:?}"),
        }
        assert_eq!(a.admit(link(2), c).unwrap(), Ok(()), "another link is open");
        a.succeeded(link(1), c).unwrap();
        assert_eq!(a.admit(link(1), c).unwrap(), Ok(()), "a right one resets");
    }

    #[test]
    fn locks_double_and_failures_decay_one_at_a_time() {
        let mut s = LinkState::default();
        let mut t = 1_000_000;
        for _ in 0..FREE_FAILURES {
            s.count_attempt(t).unwrap();
        }
        assert_eq!(s.locked_until - t, 60);
        t = s.locked_until;
        s.count_attempt(t).unwrap();
        assert_eq!(s.locked_until - t, 120, "doubles");
        // A quiet hour forgives nothing yet; each quiet twelve hours forgive one.
        t = s.locked_until + 3600;
        s.count_attempt(t).unwrap();
        assert_eq!(s.locked_until - t, 240);
        t += FORGIVE_EVERY * 2;
        s.count_attempt(t).unwrap();
        assert_eq!(s.failures, 6, "two forgiven, one added");
        assert_eq!(s.locked_until - t, 120);
        // Guessing at the end of every lock for ten days gets few guesses.
        let (end, mut guesses) = (t + 10 * 86_400, 0);
        while s.locked_until < end {
            t = s.locked_until;
            s.count_attempt(t).unwrap();
            assert!(s.locked_until - t <= LOCK_MAX);
            guesses += 1;
        }
        assert!(guesses < 30, "{guesses} guesses in ten days");
    }

    #[test]
    fn a_busy_client_is_slowed_down_not_shut_out() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth(dir.path());
        let c = ip("2001:db8::1");
        for i in 0..CLIENT_BURST as u8 {
            assert_eq!(a.admit(link(i), c).unwrap(), Ok(()));
        }
        // The same /64, another link: wait about one drain period.
        match a.admit(link(200), ip("2001:db8::2")).unwrap() {
            Err(Refused::Client(w)) => assert!((1..=CLIENT_DRAIN).contains(&w), "{w}"),
            r => panic!("{r:?}"),
        }
        assert_eq!(a.admit(link(200), ip("2001:db8:1::1")).unwrap(), Ok(()));
        let mut b = Bucket::default();
        for _ in 0..30 {
            b.admit(0).unwrap();
        }
        assert!(b.admit(0).is_err());
        assert!(
            b.admit(CLIENT_DRAIN).is_ok(),
            "one drained, one more admitted"
        );
    }
}
