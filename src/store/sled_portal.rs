//! [`PortalState`] on sled: tree `portal`, key = kind byte ‖ caller's key, value sealed with
//! the keyring over expiry (i64 BE) ‖ key ‖ value, so that a value moved to another key does
//! not open there.

use super::Result;
use super::keys::ct_eq;
use super::portal::{PortalState, StateChange, StateKind};
use super::sled_meta::{SledMeta, corrupt};
use crate::seal::{Keyring, open_bytes, seal_bytes};

fn db_key(kind: StateKind, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(kind as u8);
    k.extend_from_slice(key);
    k
}

/// (expiry, value) of a stored record, checked against the key it is stored under.
fn open_value(keys: &Keyring, db_key: &[u8], sealed: &[u8]) -> Result<(i64, Vec<u8>)> {
    let plain = open_bytes(keys, sealed)?;
    let bad = || corrupt("portal state", "malformed record");
    let exp = i64::from_be_bytes(
        plain
            .get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let bound = plain.get(8..8 + db_key.len()).ok_or_else(bad)?;
    if !ct_eq(bound, db_key) {
        return Err(bad());
    }
    Ok((exp, plain[8 + db_key.len()..].to_vec()))
}

fn seal_value(keys: &Keyring, db_key: &[u8], expires: i64, value: &[u8]) -> Result<Vec<u8>> {
    let plain = [&expires.to_be_bytes()[..], db_key, value].concat();
    Ok(seal_bytes(keys, &plain)?)
}

impl PortalState for SledMeta {
    fn state_get(&self, kind: StateKind, key: &[u8], now: i64) -> Result<Option<Vec<u8>>> {
        let k = db_key(kind, key);
        let Some(sealed) = self.portal.get(&k)? else {
            return Ok(None);
        };
        let (exp, value) = open_value(&self.keys(), &k, &sealed)?;
        Ok((exp > now).then_some(value))
    }

    fn state_update(
        &self,
        kind: StateKind,
        key: &[u8],
        now: i64,
        change: StateChange<'_>,
    ) -> Result<Option<Vec<u8>>> {
        let k = db_key(kind, key);
        let keys = self.keys();
        loop {
            let old = self.portal.get(&k)?;
            let live = match &old {
                Some(sealed) => {
                    let (exp, v) = open_value(&keys, &k, sealed)?;
                    (exp > now).then_some(v)
                }
                None => None,
            };
            let new = change(live.as_deref());
            let sealed = match &new {
                Some((v, exp)) => Some(seal_value(&keys, &k, *exp, v)?),
                None => None,
            };
            // Another writer in between: change the record as it is now.
            if self.portal.compare_and_swap(&k, old, sealed)?.is_ok() {
                return Ok(new.map(|(v, _)| v));
            }
        }
    }

    fn state_remove(&self, kind: StateKind, key: &[u8]) -> Result<()> {
        self.portal.remove(db_key(kind, key))?;
        Ok(())
    }

    fn state_sweep(&self, now: i64) -> Result<usize> {
        let keys = self.keys();
        let mut gone = 0;
        for item in self.portal.iter() {
            let (k, v) = item?;
            // A record that does not open (altered, or sealed with a removed key) goes too.
            let expired = open_value(&keys, &k, &v).map_or(true, |(exp, _)| exp <= now);
            if expired
                && self
                    .portal
                    .compare_and_swap(&k, Some(&v), None::<&[u8]>)?
                    .is_ok()
            {
                gone += 1;
            }
        }
        Ok(gone)
    }
}
