//! The metadata interface. [`super::SledMeta`] implements it for one node; a PostgreSQL
//! implementation can take it for several nodes (SPEC §10).

use super::{BlobId, DataKey, Event, EventKind, LinkToken, Message, MessageId, Result};
use std::future::Future;
use std::pin::Pin;

/// The result of counting a download against a file's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Download {
    /// Counted. `remaining` is how many more downloads this recipient has for this file, `None`
    /// when the file has no limit.
    Allowed { remaining: Option<u32> },
    /// The limit was reached before this request: serve nothing.
    Exhausted,
}

/// Metadata of protected messages. Every value is stored sealed; the implementation holds the
/// master keyring, wraps data keys on [`MetaStore::put_message`] and unwraps them on
/// [`MetaStore::get_message`].
///
/// Writes are durable only after [`MetaStore::flush`] / [`MetaStore::flush_async`] returns:
/// callers must wait for it before acknowledging anything to anyone.
///
/// The methods block briefly (an embedded database); async callers use them directly for
/// single records or move batch work (sweeps, rewraps) to `spawn_blocking`.
pub trait MetaStore: super::PortalState + Send + Sync {
    /// Stores a new message, or replaces an existing one whole (same data key required). A new
    /// message's `dek` is wrapped with the current master key; its expiry is indexed. Changes
    /// to a stored message that others may change too go through `update_message`.
    fn put_message(&self, msg: &Message, dek: &DataKey) -> Result<()>;

    /// Stores a new message, a fresh link for every recipient and its first event, all at
    /// once; returns the links in recipient order (only their hashes are stored). Fails
    /// when the id is taken.
    fn create_message(&self, msg: &Message, dek: &DataKey, event: &Event)
    -> Result<Vec<LinkToken>>;

    /// Changes a stored message in place: `change` gets the record as it is now, and again if
    /// another writer came in between, so concurrent changes (two recipients asking for a
    /// password at once, a checksum arriving) are all kept. Returns the record as written, or
    /// `None` when the message is gone. The id, expiry and files are indexed and cannot
    /// change here ([`StoreError::Indexed`]).
    fn update_message(
        &self,
        id: MessageId,
        change: &mut dyn FnMut(&mut Message),
    ) -> Result<Option<Message>>;

    /// The message and its unwrapped data key; `None` when unknown or shredded. Fails loudly when
    /// the wrapped key or the record was altered.
    fn get_message(&self, id: MessageId) -> Result<Option<(Message, DataKey)>>;

    /// A fresh link for recipient `rcpt` (index into `recipients`). The token is returned once,
    /// in clear; only its hash is stored.
    fn new_link(&self, id: MessageId, rcpt: u32) -> Result<LinkToken>;

    /// The message and recipient a presented token stands for.
    fn link_for_token(&self, token: &str) -> Result<Option<(MessageId, u32)>>;

    fn add_event(&self, id: MessageId, event: &Event) -> Result<()>;

    /// The message's events, oldest first (they survive shredding, stripped of details).
    fn events(&self, id: MessageId) -> Result<Vec<Event>>;

    /// Messages whose expiry is at or before `now` (unix seconds).
    fn expired(&self, now: i64) -> Result<Vec<MessageId>>;

    /// Crypto-shreds a message: erases its wrapped key, record, link tokens, download counters
    /// and event details, and records a `kind` event (`Expired` or `Shredded`). Returns its blobs,
    /// which stay listed in [`MetaStore::doomed_blobs`] until [`MetaStore::blobs_deleted`];
    /// `None` when the message is not stored.
    fn shred(&self, id: MessageId, now: i64, kind: EventKind) -> Result<Option<Vec<BlobId>>>;

    /// Blobs of shredded messages that still wait for deletion.
    fn doomed_blobs(&self) -> Result<Vec<BlobId>>;

    /// Every blob a stored (not shredded) message names.
    fn named_blobs(&self) -> Result<std::collections::HashSet<BlobId>>;

    /// Forgets blobs that were deleted from the blob store.
    fn blobs_deleted(&self, blobs: &[BlobId]) -> Result<()>;

    /// Stores the plaintext checksums of files (index into `files`) that were stored without one;
    /// a file that has one keeps it. Once every file has one, the message leaves
    /// [`MetaStore::unsummed`]. `false` when the message is not stored (any more).
    fn set_checksums(&self, id: MessageId, sums: &[(u32, [u8; 32])]) -> Result<bool>;

    /// Messages stored with a file whose checksum is still to be computed.
    fn unsummed(&self) -> Result<Vec<MessageId>>;

    /// Atomically counts one download of file `file` by recipient `rcpt` against the file's
    /// limit (0 = unlimited); concurrent calls never together exceed it.
    fn count_download(&self, id: MessageId, rcpt: u32, file: u32) -> Result<Download>;

    /// After a master-key rotation: re-wraps every data key, and re-seals every value sealed with
    /// the master keyring, with the current master key. Returns how many data keys moved. Once it
    /// has run, older master keys can be removed from the key file.
    fn rewrap_all(&self) -> Result<usize>;

    /// Replaces the master keyring (after a rotation); follow with [`MetaStore::rewrap_all`].
    fn set_keys(&self, keys: crate::seal::SharedKeys);

    /// Makes every write so far durable. Blocking.
    fn flush(&self) -> Result<()>;

    /// Makes every write so far durable, without blocking the executor.
    fn flush_async(&self) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>>;
}
