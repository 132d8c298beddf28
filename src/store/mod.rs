//! The protected-message store: metadata (messages, recipients, files, link tokens, events)
//! behind [`MetaStore`], file contents as encrypted blobs behind [`BlobStore`].
//!
//! Envelope encryption: every message has its own random data key ([`DataKey`]), wrapped by the
//! current master key ([`WrappedKey`], with the master key id so the master key can be rotated).
//! The message record and its blobs are sealed with the data key; the few values that must stay
//! readable without it (link-token targets, events, download counters) are sealed with the master
//! keyring. Nothing is stored in clear: sled keys are only ids, token hashes and, in the expiry
//! index, expiry times.
//!
//! Crypto-shredding erases a message's wrapped key and records and removes its blobs. sled is
//! log-structured, so erased values can linger in its segment files until they are reused;
//! they are sealed, and rotating the master key ([`MetaStore::rewrap_all`]) and then removing the
//! old key from the key file makes any such remnant unreadable for good.
//!
//! Durability: [`MetaStore`] writes reach the disk only on [`MetaStore::flush`] (or
//! `SledMeta::flush_async`): callers must wait for it before acknowledging anything (an SMTP 250,
//! a web response). [`BlobStore::put`] is durable when it returns.

mod blob;
mod keys;
mod meta;
mod model;
mod portal;
mod sled_meta;
mod sled_portal;
mod sled_shred;
mod token;

#[cfg(test)]
mod tests_blob;
#[cfg(test)]
mod tests_keys;
#[cfg(test)]
mod tests_meta;
#[cfg(test)]
mod tests_portal;
#[cfg(test)]
mod tests_records;

pub use blob::{BlobInfo, BlobStore, FsBlobStore};
pub(crate) use keys::ct_eq;
pub use keys::{DataKey, WrappedKey, rewrap, unwrap, wrap};
pub use meta::{Download, MetaStore};
pub use model::{
    Auth, BodyRecord, Event, EventKind, FileRecord, Message, PasswordDelivery, Protection,
    Recipient, RecipientKind, clean_display_name,
};
pub use portal::{PortalState, StateKind};
pub use sled_meta::SledMeta;
pub use token::LinkToken;

use crate::seal::{SealError, SharedKeys};
use std::io;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("metadata database: {0}")]
    Db(#[from] sled::Error),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    #[error("master key {0} is not in the keyring")]
    UnknownKey(u32),
    #[error("wrapped data key of message {0} fails to unwrap: altered, or the wrong master key")]
    KeyTampered(MessageId),
    #[error("stored record {0} is corrupt: {1}")]
    Corrupt(String, String),
    #[error("message {0} not found")]
    NotFound(MessageId),
    #[error("message {0} exists already")]
    Exists(MessageId),
    #[error("message {0}: recipient {1} or file {2} does not exist")]
    NoSuchItem(MessageId, u32, u32),
    #[error("message {0} is stored with another data key")]
    KeyMismatch(MessageId),
    #[error("blob {0} not found")]
    BlobNotFound(BlobId),
    #[error("message {0}: its id, expiry or files cannot change in place")]
    Indexed(MessageId),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// 128 bits from the OS random generator.
            pub fn random() -> Self {
                $name(crate::seal::random_bytes())
            }
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                Some($name(b.try_into().ok()?))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                let v = hex::decode(s).map_err(|_| format!("not a hex id: {s:?}"))?;
                Self::from_slice(&v).ok_or_else(|| format!("not a 32-digit id: {s:?}"))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A protected message (32 hex digits).
    MessageId
);
id_type!(
    /// A sealed blob in the blob store (32 hex digits).
    BlobId
);

/// The store of one node: sled metadata and file blobs, with crypto-shredding on top.
#[derive(Clone)]
pub struct Store {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
}

impl Store {
    /// The embedded store: sled in `data_dir/meta`, blobs in `data_dir/blobs`.
    pub fn open_local(data_dir: &Path, keys: SharedKeys) -> Result<Store> {
        let meta = SledMeta::open(&data_dir.join("meta"), keys)?;
        let blobs = FsBlobStore::open(&data_dir.join("blobs"))?;
        Ok(Store {
            meta: Arc::new(meta),
            blobs: Arc::new(blobs),
        })
    }

    /// Crypto-shreds a message: its wrapped key and records go first (flushed), then its blobs.
    /// A blob that fails to delete stays listed in [`MetaStore::doomed_blobs`] for a retry
    /// ([`Store::retry_blob_deletions`]); it is unreadable already, its data key being gone.
    /// Returns false when the message was not (or no longer) stored.
    pub fn shred(&self, id: MessageId, now: i64, kind: EventKind) -> Result<bool> {
        let Some(blobs) = self.meta.shred(id, now, kind)? else {
            return Ok(false);
        };
        self.meta.flush()?;
        self.delete_blobs(&blobs)?;
        Ok(true)
    }

    /// Shreds every message whose expiry is at or before `now`; returns their ids.
    pub fn shred_expired(&self, now: i64) -> Result<Vec<MessageId>> {
        let mut done = Vec::new();
        for id in self.meta.expired(now)? {
            if self.shred(id, now, EventKind::Expired)? {
                done.push(id);
            }
        }
        Ok(done)
    }

    /// Removes blob files that no stored message names, once older than `grace`: left by a
    /// crash between a blob becoming durable and its record, or by a failed attempt whose
    /// clean-up failed too. They cannot be opened (their data key was never stored, or is
    /// gone), but they take space. Blobs are listed before the records are read, and `grace`
    /// covers a blob whose record is still being written. Returns how many went.
    pub fn sweep_unnamed(&self, grace: std::time::Duration) -> Result<usize> {
        let now = std::time::SystemTime::now();
        let listed = self.blobs.list()?;
        let named = self.meta.named_blobs()?;
        let unnamed: Vec<BlobId> = listed
            .into_iter()
            .filter(|(id, written)| {
                !named.contains(id) && now.duration_since(*written).unwrap_or_default() >= grace
            })
            .map(|(id, _)| id)
            .collect();
        Ok(self.remove_blobs(&unnamed).0.len())
    }

    /// Deletes blobs whose message was shredded but whose deletion did not complete.
    pub fn retry_blob_deletions(&self) -> Result<usize> {
        let doomed = self.meta.doomed_blobs()?;
        self.delete_blobs(&doomed)?;
        Ok(doomed.len())
    }

    fn delete_blobs(&self, blobs: &[BlobId]) -> Result<()> {
        let (deleted, first_err) = self.remove_blobs(blobs);
        self.meta.blobs_deleted(&deleted)?;
        self.meta.flush()?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Removes each blob from the blob store (one already gone counts as removed); returns
    /// those removed and the first failure, each failure logged.
    pub fn remove_blobs(&self, blobs: &[BlobId]) -> (Vec<BlobId>, Option<StoreError>) {
        let mut removed = Vec::with_capacity(blobs.len());
        let mut first_err = None;
        for b in blobs {
            match self.blobs.delete(b) {
                Ok(()) | Err(StoreError::BlobNotFound(_)) => removed.push(*b),
                Err(e) => {
                    tracing::warn!(blob = %b, error = %e, "cannot remove a blob");
                    first_err.get_or_insert(e);
                }
            }
        }
        (removed, first_err)
    }
}
