//! The portal's sign-in state (sessions, failure counts and locks per link, limits per client
//! address, one-time codes, resend counters) behind [`PortalState`], so that it survives a
//! restart and a shared backend can hold it for several nodes.

use super::Result;

/// Which kind of record a key names; each kind has its own key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// Key: the hash of a session id.
    Session = 1,
    /// Key: message id and recipient index (failures, lock, pending code, resends).
    Link = 2,
    /// Key: a keyed hash of a client address (its failure bucket).
    Client = 3,
}

/// A change to one record: the live value (or `None`) in, the new value and its expiry (unix
/// seconds) out, or `None` to remove it.
pub type StateChange<'a> = &'a mut dyn FnMut(Option<&[u8]>) -> Option<(Vec<u8>, i64)>;

/// Small records that expire. Keys are chosen by the caller and never carry a secret in clear
/// (hashes, ids); values are stored sealed with the master keyring and bound to their key.
/// A record past its expiry reads as absent and is removed by [`PortalState::state_sweep`].
///
/// Writes are durable after [`super::MetaStore::flush`] / `flush_async`, like everything else.
pub trait PortalState: Send + Sync {
    /// The record's value, if it is there and has not expired at `now` (unix seconds).
    fn state_get(&self, kind: StateKind, key: &[u8], now: i64) -> Result<Option<Vec<u8>>>;

    /// Reads, changes and writes one record atomically: `change` gets the live value (or
    /// `None`) and returns the new value with its expiry (unix seconds), or `None` to remove
    /// it. It runs again when another writer came in between, so it must not have side effects
    /// beyond its own locals. Returns what was written.
    fn state_update(
        &self,
        kind: StateKind,
        key: &[u8],
        now: i64,
        change: StateChange<'_>,
    ) -> Result<Option<Vec<u8>>>;

    /// Removes the record.
    fn state_remove(&self, kind: StateKind, key: &[u8]) -> Result<()>;

    /// Removes every record expired at `now`; returns how many went.
    fn state_sweep(&self, now: i64) -> Result<usize>;
}
