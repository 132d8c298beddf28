//! [`MetaStore`] on sled 0.34 (embedded, one node).
//!
//! Trees (keys are ids, token hashes and expiry times only; every value is sealed):
//! - `msg`: message id → record sealed with the message's data key, bound to the id
//! - `wkey`: message id → wrapped data key (encrypted by the master key)
//! - `exp`: expiry (u64 BE, sign-flipped) ‖ message id → nothing
//! - `tok`: token hash → (message id, recipient, token hash) sealed with the keyring
//! - `tok_by_msg`: message id ‖ token hash → nothing
//! - `ev`: message id ‖ sequence → event sealed with the keyring
//! - `dl`: message id ‖ recipient ‖ file → download count sealed with the keyring
//! - `blob_of`: message id ‖ blob id → nothing; `doomed`: blob id → nothing
//! - `nosum`: message id → nothing, while a file of the message has no checksum yet
//! - `portal`: the portal's sign-in state (see `sled_portal`)

use super::keys::ct_eq;
use super::{
    BlobId, DataKey, Download, Event, EventKind, LinkToken, Message, MessageId, MetaStore, Result,
    StoreError, WrappedKey, unwrap, wrap,
};
use crate::seal::{HEADER_LEN, seal_bytes_with_key};
use crate::seal::{Keyring, SharedKeys, open_bytes, open_bytes_with_key, seal_bytes};
use sled::transaction::{ConflictableTransactionError as Cte, TransactionError, Transactional};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::RwLock;

pub struct SledMeta {
    pub(super) db: sled::Db,
    pub(super) keys: RwLock<SharedKeys>,
    pub(super) msg: sled::Tree,
    pub(super) wkey: sled::Tree,
    pub(super) exp: sled::Tree,
    pub(super) tok: sled::Tree,
    pub(super) tok_by_msg: sled::Tree,
    pub(super) ev: sled::Tree,
    pub(super) dl: sled::Tree,
    pub(super) blob_of: sled::Tree,
    pub(super) doomed: sled::Tree,
    pub(super) nosum: sled::Tree,
    pub(super) portal: sled::Tree,
}

pub(super) fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Db(e),
    }
}

fn record_ctx(id: MessageId) -> Vec<u8> {
    let mut c = b"sluis msg v1\0".to_vec();
    c.extend_from_slice(id.as_bytes());
    c
}

pub(super) fn exp_key(expires: i64, id: MessageId) -> Vec<u8> {
    let mut k = ((expires as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub(super) fn corrupt(what: impl Into<String>, why: impl ToString) -> StoreError {
    StoreError::Corrupt(what.into(), why.to_string())
}

fn open_record(id: MessageId, dek: &DataKey, sealed: &[u8]) -> Result<Message> {
    let plain = open_bytes_with_key(dek.expose(), &record_ctx(id), sealed)?;
    let msg: Message =
        serde_json::from_slice(&plain).map_err(|e| corrupt(format!("message {id}"), e))?;
    if msg.id != id {
        return Err(corrupt(format!("message {id}"), "holds another id"));
    }
    Ok(msg)
}

fn seal_record(msg: &Message, dek: &DataKey) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(msg).map_err(|e| corrupt("message", e))?;
    Ok(seal_bytes_with_key(
        dek.expose(),
        &record_ctx(msg.id),
        &json,
    )?)
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Opens the sled database in `dir`. sled releases its file lock from a background thread when
/// a database is dropped, so reopening right after a close can briefly find it held; another
/// process holding it is still an error once the wait is over.
pub(super) fn open_db(dir: &Path) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match sled::Config::new().path(dir).open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl SledMeta {
    /// Opens (or creates, mode 0700) the database in `dir`.
    pub fn open(dir: &Path, keys: SharedKeys) -> Result<SledMeta> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let db = open_db(dir)?;
        let t = |name: &str| db.open_tree(name);
        Ok(SledMeta {
            msg: t("msg")?,
            wkey: t("wkey")?,
            exp: t("exp")?,
            tok: t("tok")?,
            tok_by_msg: t("tok_by_msg")?,
            ev: t("ev")?,
            dl: t("dl")?,
            blob_of: t("blob_of")?,
            doomed: t("doomed")?,
            nosum: t("nosum")?,
            portal: t("portal")?,
            keys: RwLock::new(keys),
            db,
        })
    }

    /// Replaces the keyring (after `Keyring::rotate`); follow with [`MetaStore::rewrap_all`].
    pub fn set_keys(&self, keys: SharedKeys) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    pub(super) fn keys(&self) -> SharedKeys {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The message, its data key and its record as stored (for a compare-and-swap).
    fn load(&self, id: MessageId) -> Result<Option<(Message, DataKey, sled::IVec)>> {
        let Some(wrapped) = self.wrapped(id)? else {
            return Ok(None);
        };
        let dek = unwrap(&self.keys(), id, &wrapped)?;
        let sealed = self
            .msg
            .get(id.as_bytes())?
            .ok_or_else(|| corrupt(format!("message {id}"), "wrapped key without record"))?;
        Ok(Some((open_record(id, &dek, &sealed)?, dek, sealed)))
    }

    fn wrapped(&self, id: MessageId) -> Result<Option<WrappedKey>> {
        match self.wkey.get(id.as_bytes())? {
            None => Ok(None),
            Some(b) => WrappedKey::from_bytes(&b)
                .map(Some)
                .ok_or_else(|| corrupt(format!("wrapped key of {id}"), "bad length")),
        }
    }

    pub(super) fn sealed_event(
        &self,
        keys: &Keyring,
        id: MessageId,
        ev: &Event,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let seq = self.db.generate_id()?;
        let json = serde_json::to_vec(ev).map_err(|e| corrupt("event", e))?;
        Ok((
            cat(&[id.as_bytes(), &seq.to_be_bytes()]),
            seal_bytes(keys, &json)?,
        ))
    }

    /// Re-seals every keyring-sealed value of `tree` not sealed with the current master key.
    fn reseal_tree(&self, keys: &Keyring, tree: &sled::Tree) -> Result<()> {
        let current = keys.current_id().to_be_bytes();
        for item in tree.iter() {
            let (k, v) = item?;
            if v.len() < HEADER_LEN || v[8..12] == current {
                continue;
            }
            let plain = open_bytes(keys, &v)?;
            let fresh = seal_bytes(keys, &plain)?;
            // A concurrent writer already used the current key: losing the race is fine.
            let _ = tree.compare_and_swap(&k, Some(&v), Some(fresh))?;
        }
        Ok(())
    }
}

impl MetaStore for SledMeta {
    fn set_keys(&self, keys: SharedKeys) {
        SledMeta::set_keys(self, keys)
    }

    fn put_message(&self, msg: &Message, dek: &DataKey) -> Result<()> {
        let keys = self.keys();
        let id = msg.id;
        if let Some(old) = self.wrapped(id)?
            && !unwrap(&keys, id, &old)?.same_as(dek)
        {
            return Err(StoreError::KeyMismatch(id));
        }
        let fresh_wrap = wrap(&keys, id, dek)?.to_bytes();
        let record = seal_record(msg, dek)?;
        let blobs = msg.blob_ids();
        let new_exp = exp_key(msg.expires, id);
        (&self.msg, &self.wkey, &self.exp, &self.blob_of)
            .transaction(|(m, w, x, b)| {
                if let Some(old) = m.insert(id.as_bytes(), record.as_slice())? {
                    let old = open_record(id, dek, &old).map_err(Cte::Abort)?;
                    x.remove(exp_key(old.expires, id))?;
                }
                if w.get(id.as_bytes())?.is_none() {
                    w.insert(id.as_bytes(), fresh_wrap.as_slice())?;
                }
                x.insert(new_exp.as_slice(), &[])?;
                for blob in &blobs {
                    b.insert(cat(&[id.as_bytes(), blob.as_bytes()]), &[])?;
                }
                Ok(())
            })
            .map_err(tx_err)
    }

    fn create_message(
        &self,
        msg: &Message,
        dek: &DataKey,
        event: &Event,
    ) -> Result<Vec<LinkToken>> {
        let keys = self.keys();
        let id = msg.id;
        let wrapped = wrap(&keys, id, dek)?.to_bytes();
        let record = seal_record(msg, dek)?;
        let expiry = exp_key(msg.expires, id);
        let blobs: Vec<Vec<u8>> = msg
            .blob_ids()
            .iter()
            .map(|b| cat(&[id.as_bytes(), b.as_bytes()]))
            .collect();
        let mut tokens = Vec::with_capacity(msg.recipients.len());
        let mut links = Vec::with_capacity(msg.recipients.len());
        for rcpt in 0..msg.recipients.len() as u32 {
            let token = LinkToken::generate();
            let hash = token.hash();
            let value = seal_bytes(&keys, &cat(&[id.as_bytes(), &rcpt.to_be_bytes(), &hash]))?;
            links.push((hash, value, cat(&[id.as_bytes(), &hash])));
            tokens.push(token);
        }
        let (ev_key, ev_value) = self.sealed_event(&keys, id, event)?;
        // Listed first, so that a crash cannot leave a record without a checksum unlisted; a
        // listing whose message was never stored is dropped by the job that finds it so.
        let unsummed = msg.files.iter().any(|f| f.sha256.is_none());
        if unsummed {
            self.nosum.insert(id.as_bytes(), &[])?;
        }
        let trees = (
            &self.msg,
            &self.wkey,
            &self.exp,
            &self.blob_of,
            &self.tok,
            &self.tok_by_msg,
            &self.ev,
        );
        trees
            .transaction(|(m, w, x, b, t, tb, e)| {
                if m.insert(id.as_bytes(), record.as_slice())?.is_some()
                    || w.insert(id.as_bytes(), wrapped.as_slice())?.is_some()
                {
                    return Err(Cte::Abort(StoreError::Exists(id)));
                }
                x.insert(expiry.as_slice(), &[])?;
                for k in &blobs {
                    b.insert(k.as_slice(), &[])?;
                }
                for (hash, value, by_msg) in &links {
                    t.insert(hash, value.as_slice())?;
                    tb.insert(by_msg.as_slice(), &[])?;
                }
                e.insert(ev_key.as_slice(), ev_value.as_slice())?;
                Ok(())
            })
            .map_err(tx_err)
            .inspect_err(|e| {
                if unsummed && !matches!(e, StoreError::Exists(_)) {
                    let _ = self.nosum.remove(id.as_bytes());
                }
            })?;
        Ok(tokens)
    }

    fn get_message(&self, id: MessageId) -> Result<Option<(Message, DataKey)>> {
        Ok(self.load(id)?.map(|(msg, dek, _)| (msg, dek)))
    }

    fn new_link(&self, id: MessageId, rcpt: u32) -> Result<LinkToken> {
        let (msg, _) = self.get_message(id)?.ok_or(StoreError::NotFound(id))?;
        if rcpt as usize >= msg.recipients.len() {
            return Err(StoreError::NoSuchItem(id, rcpt, 0));
        }
        let token = LinkToken::generate();
        let hash = token.hash();
        let value = seal_bytes(
            &self.keys(),
            &cat(&[id.as_bytes(), &rcpt.to_be_bytes(), &hash]),
        )?;
        let by_msg = cat(&[id.as_bytes(), &hash]);
        (&self.tok, &self.tok_by_msg)
            .transaction(|(t, b)| {
                t.insert(&hash, value.as_slice())?;
                b.insert(by_msg.as_slice(), &[])?;
                Ok(())
            })
            .map_err(tx_err)?;
        Ok(token)
    }

    fn link_for_token(&self, token: &str) -> Result<Option<(MessageId, u32)>> {
        let Some(hash) = LinkToken::hash_of(token) else {
            return Ok(None);
        };
        let Some(sealed) = self.tok.get(hash)? else {
            return Ok(None);
        };
        let plain = open_bytes(&self.keys(), &sealed)?;
        let bad = || corrupt("link token", "malformed record");
        if plain.len() != 16 + 4 + 32 || !ct_eq(&plain[20..], &hash) {
            return Err(bad());
        }
        let id = MessageId::from_slice(&plain[..16]).ok_or_else(bad)?;
        let rcpt = read_u32(&plain, 16).ok_or_else(bad)?;
        Ok(Some((id, rcpt)))
    }

    fn add_event(&self, id: MessageId, event: &Event) -> Result<()> {
        let (k, v) = self.sealed_event(&self.keys(), id, event)?;
        self.ev.insert(k, v)?;
        Ok(())
    }

    fn events(&self, id: MessageId) -> Result<Vec<Event>> {
        let keys = self.keys();
        let mut out = Vec::new();
        for item in self.ev.scan_prefix(id.as_bytes()) {
            let (_, v) = item?;
            let plain = open_bytes(&keys, &v)?;
            out.push(serde_json::from_slice(&plain).map_err(|e| corrupt("event", e))?);
        }
        Ok(out)
    }

    fn expired(&self, now: i64) -> Result<Vec<MessageId>> {
        let mut upper = exp_key(now, MessageId([0xff; 16]));
        upper.push(0xff);
        let mut out = Vec::new();
        for item in self.exp.range(..upper) {
            let (k, _) = item?;
            let id = k
                .get(8..)
                .and_then(MessageId::from_slice)
                .ok_or_else(|| corrupt("expiry index", "bad key"))?;
            out.push(id);
        }
        Ok(out)
    }

    fn shred(&self, id: MessageId, now: i64, kind: EventKind) -> Result<Option<Vec<BlobId>>> {
        self.shred_message(id, now, kind)
    }

    fn doomed_blobs(&self) -> Result<Vec<BlobId>> {
        let mut out = Vec::new();
        for k in self.doomed.iter().keys() {
            let k = k?;
            out.push(BlobId::from_slice(&k).ok_or_else(|| corrupt("doomed blobs", "bad key"))?);
        }
        Ok(out)
    }

    fn named_blobs(&self) -> Result<std::collections::HashSet<BlobId>> {
        let mut out = std::collections::HashSet::new();
        for k in self.blob_of.iter().keys() {
            let k = k?;
            let blob = k
                .get(16..)
                .and_then(BlobId::from_slice)
                .ok_or_else(|| corrupt("blob index", "bad key"))?;
            out.insert(blob);
        }
        Ok(out)
    }

    fn blobs_deleted(&self, blobs: &[BlobId]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for b in blobs {
            batch.remove(b.as_bytes());
        }
        self.doomed.apply_batch(batch)?;
        Ok(())
    }

    fn update_message(
        &self,
        id: MessageId,
        change: &mut dyn FnMut(&mut Message),
    ) -> Result<Option<Message>> {
        loop {
            let Some((mut msg, dek, sealed)) = self.load(id)? else {
                return Ok(None);
            };
            let (expires, blobs) = (msg.expires, msg.blob_ids());
            change(&mut msg);
            if msg.id != id || msg.expires != expires || msg.blob_ids() != blobs {
                return Err(StoreError::Indexed(id));
            }
            let record = seal_record(&msg, &dek)?;
            // Another writer in between: change the record as it is now.
            if self
                .msg
                .compare_and_swap(id.as_bytes(), Some(sealed), Some(record))?
                .is_ok()
            {
                return Ok(Some(msg));
            }
        }
    }

    fn set_checksums(&self, id: MessageId, sums: &[(u32, [u8; 32])]) -> Result<bool> {
        let updated = self.update_message(id, &mut |msg| {
            for (i, sum) in sums {
                if let Some(f) = msg.files.get_mut(*i as usize) {
                    f.sha256.get_or_insert(*sum);
                }
            }
        })?;
        let complete = updated
            .as_ref()
            .is_none_or(|msg| msg.files.iter().all(|f| f.sha256.is_some()));
        if complete {
            self.nosum.remove(id.as_bytes())?;
        }
        Ok(updated.is_some())
    }

    fn unsummed(&self) -> Result<Vec<MessageId>> {
        self.nosum
            .iter()
            .keys()
            .map(|k| MessageId::from_slice(&k?).ok_or_else(|| corrupt("checksum list", "bad key")))
            .collect()
    }

    fn count_download(&self, id: MessageId, rcpt: u32, file: u32) -> Result<Download> {
        let (msg, _) = self.get_message(id)?.ok_or(StoreError::NotFound(id))?;
        let limit = match msg.files.get(file as usize) {
            Some(f) if (rcpt as usize) < msg.recipients.len() => f.download_limit,
            _ => return Err(StoreError::NoSuchItem(id, rcpt, file)),
        };
        let keys = self.keys();
        let key = cat(&[id.as_bytes(), &rcpt.to_be_bytes(), &file.to_be_bytes()]);
        self.dl
            .transaction(|t| {
                let count = match t.get(&key)? {
                    None => 0,
                    Some(v) => {
                        let plain =
                            open_bytes(&keys, &v).map_err(|e| Cte::Abort(StoreError::from(e)))?;
                        read_u32(&plain, 0)
                            .ok_or_else(|| Cte::Abort(corrupt("download counter", "malformed")))?
                    }
                };
                if limit != 0 && count >= limit {
                    return Ok(Download::Exhausted);
                }
                let count = count.saturating_add(1);
                let sealed = seal_bytes(&keys, &count.to_be_bytes())
                    .map_err(|e| Cte::Abort(StoreError::from(e)))?;
                t.insert(key.as_slice(), sealed)?;
                Ok(Download::Allowed {
                    remaining: (limit != 0).then(|| limit - count),
                })
            })
            .map_err(tx_err)
    }

    fn rewrap_all(&self) -> Result<usize> {
        let keys = self.keys();
        let current = keys.current_id();
        let mut moved = 0;
        for item in self.wkey.iter() {
            let (k, v) = item?;
            let id = MessageId::from_slice(&k).ok_or_else(|| corrupt("wrapped keys", "bad key"))?;
            let old = WrappedKey::from_bytes(&v)
                .ok_or_else(|| corrupt(format!("wrapped key of {id}"), "bad length"))?;
            if old.key_id == current {
                continue;
            }
            let new = super::rewrap(&keys, id, &old)?.to_bytes();
            // Shredded meanwhile: leave it gone.
            if self.wkey.compare_and_swap(&k, Some(&v), Some(new))?.is_ok() {
                moved += 1;
            }
        }
        for tree in [&self.tok, &self.ev, &self.dl, &self.portal] {
            self.reseal_tree(&keys, tree)?;
        }
        Ok(moved)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn flush_async(&self) -> Pin<Box<dyn Future<Output = Result<()>> + Send + '_>> {
        // sled's own flush_async can wait forever when many callers flush at once (seen under
        // concurrent portal load); a blocking flush on the blocking pool cannot.
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || db.flush())
                .await
                .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))??;
            Ok(())
        })
    }
}

impl Drop for SledMeta {
    fn drop(&mut self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!(error = %e, "flushing the metadata database on close failed");
        }
    }
}
