//! Crypto-shredding for [`SledMeta`]: one transaction erases a message's wrapped key, record,
//! expiry entry and download counters, strips its events of details, records the shred, and
//! moves its blobs to the `doomed` list. Link tokens stay (hashes pointing at an id that opens
//! nothing any more), so a recipient's old link says 'expired' instead of 'not found'.

use super::sled_meta::{SledMeta, corrupt, exp_key, tx_err};
use super::{BlobId, Event, EventKind, MessageId, MetaStore, Result, StoreError};
use crate::seal::{open_bytes, seal_bytes};
use sled::transaction::Transactional;

impl SledMeta {
    pub(super) fn shred_message(
        &self,
        id: MessageId,
        now: i64,
        kind: EventKind,
    ) -> Result<Option<Vec<BlobId>>> {
        let keys = self.keys();
        if self.wkey.get(id.as_bytes())?.is_none() {
            return Ok(None);
        }
        let prefixed = |tree: &sled::Tree| -> Result<Vec<sled::IVec>> {
            tree.scan_prefix(id.as_bytes())
                .keys()
                .collect::<Result<_, _>>()
                .map_err(StoreError::from)
        };
        // The expiry entries: from the record when it opens, else by scanning the index.
        let exp_keys: Vec<Vec<u8>> = match self.get_message(id) {
            Ok(Some((m, _))) => vec![exp_key(m.expires, id)],
            _ => {
                let mut v = Vec::new();
                for item in self.exp.iter().keys() {
                    let k = item?;
                    if k.get(8..) == Some(id.as_bytes().as_slice()) {
                        v.push(k.to_vec());
                    }
                }
                v
            }
        };
        let dl_keys = prefixed(&self.dl)?;
        let blob_keys = prefixed(&self.blob_of)?;
        let blobs: Vec<BlobId> = blob_keys
            .iter()
            .filter_map(|k| k.get(16..).and_then(BlobId::from_slice))
            .collect();
        // Events stay for the audit log, without their details.
        let mut stripped = Vec::new();
        for item in self.ev.scan_prefix(id.as_bytes()) {
            let (k, v) = item?;
            let mut ev: Event =
                serde_json::from_slice(&open_bytes(&keys, &v)?).map_err(|e| corrupt("event", e))?;
            if ev.detail.take().is_some() {
                let json = serde_json::to_vec(&ev).map_err(|e| corrupt("event", e))?;
                stripped.push((k, seal_bytes(&keys, &json)?));
            }
        }
        let (ev_key, ev_val) = self.sealed_event(&keys, id, &Event::new(now, kind))?;
        let trees = (
            &self.msg,
            &self.wkey,
            &self.exp,
            &self.dl,
            &self.blob_of,
            &self.doomed,
            &self.ev,
        );
        let done = trees
            .transaction(|(msg, wkey, exp, dl, blob_of, doomed, ev)| {
                if wkey.remove(id.as_bytes())?.is_none() {
                    return Ok(false);
                }
                msg.remove(id.as_bytes())?;
                for k in &exp_keys {
                    exp.remove(k.as_slice())?;
                }
                for k in &dl_keys {
                    dl.remove(k)?;
                }
                for (k, b) in blob_keys.iter().zip(&blobs) {
                    blob_of.remove(k)?;
                    doomed.insert(b.as_bytes(), &[])?;
                }
                for (k, v) in &stripped {
                    ev.insert(k, v.as_slice())?;
                }
                ev.insert(ev_key.as_slice(), ev_val.as_slice())?;
                Ok(true)
            })
            .map_err(tx_err)?;
        // Nothing left to sum; a leftover entry would only be dropped by its job.
        self.nosum.remove(id.as_bytes())?;
        Ok(done.then_some(blobs))
    }
}
