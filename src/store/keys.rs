//! Per-message data keys, wrapped by the master keyring (envelope encryption).

use super::{MessageId, Result, StoreError};
use crate::seal::Keyring;
use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};

const WRAP_AAD: &[u8] = b"sluis wrap v1\0";
/// Encoded length of a [`WrappedKey`]: key id, nonce, wrapped key with its tag.
pub const WRAPPED_LEN: usize = 4 + 12 + 32 + 16;

/// A message's 256-bit data key. Never stored in clear; overwritten when dropped.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A fresh key from the OS random generator.
    pub fn generate() -> DataKey {
        DataKey(crate::seal::random_bytes())
    }

    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality.
    pub fn same_as(&self, other: &DataKey) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: b is a valid, aligned, exclusive reference to a byte.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// Compares without branching on the contents.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A data key wrapped (AES-256-GCM-SIV) by master key `key_id`; the associated data binds the
/// key id and the message id, so a wrapped key moved to another message does not unwrap.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub key_id: u32,
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WrappedKey(key {})", self.key_id)
    }
}

impl WrappedKey {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(WRAPPED_LEN);
        v.extend_from_slice(&self.key_id.to_be_bytes());
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(&self.ciphertext);
        v
    }

    /// Parses [`WrappedKey::to_bytes`]; the contents are checked only when unwrapping.
    pub fn from_bytes(b: &[u8]) -> Option<WrappedKey> {
        if b.len() != WRAPPED_LEN {
            return None;
        }
        let (id, rest) = b.split_at(4);
        let (nonce, ct) = rest.split_at(12);
        Some(WrappedKey {
            key_id: u32::from_be_bytes(id.try_into().ok()?),
            nonce: nonce.try_into().ok()?,
            ciphertext: ct.to_vec(),
        })
    }
}

fn aad(key_id: u32, msg: MessageId) -> Vec<u8> {
    let mut a = Vec::with_capacity(WRAP_AAD.len() + 4 + 16);
    a.extend_from_slice(WRAP_AAD);
    a.extend_from_slice(&key_id.to_be_bytes());
    a.extend_from_slice(msg.as_bytes());
    a
}

/// Wraps `dek` for message `msg` with the keyring's current master key.
pub fn wrap(keys: &Keyring, msg: MessageId, dek: &DataKey) -> Result<WrappedKey> {
    let (key_id, master) = keys.current_master();
    let nonce = crate::seal::random_bytes::<12>();
    let ciphertext = Aes256GcmSiv::new(master.into())
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: dek.expose(),
                aad: &aad(key_id, msg),
            },
        )
        .map_err(|_| StoreError::Io(std::io::Error::other("key wrapping failed")))?;
    Ok(WrappedKey {
        key_id,
        nonce,
        ciphertext,
    })
}

/// Unwraps a data key; fails on an unknown master key id, an altered wrapped key or a wrapped key
/// that belongs to another message.
pub fn unwrap(keys: &Keyring, msg: MessageId, wrapped: &WrappedKey) -> Result<DataKey> {
    let master = keys
        .master(wrapped.key_id)
        .ok_or(StoreError::UnknownKey(wrapped.key_id))?;
    let mut plain = Aes256GcmSiv::new(master.into())
        .decrypt(
            &Nonce::from(wrapped.nonce),
            Payload {
                msg: &wrapped.ciphertext,
                aad: &aad(wrapped.key_id, msg),
            },
        )
        .map_err(|_| StoreError::KeyTampered(msg))?;
    let key: Option<[u8; 32]> = plain.as_slice().try_into().ok();
    plain.iter_mut().for_each(|b| *b = 0);
    key.map(DataKey).ok_or(StoreError::KeyTampered(msg))
}

/// Re-wraps a data key with the keyring's current master key (after a rotation). A key already
/// wrapped by the current master key comes back unchanged.
pub fn rewrap(keys: &Keyring, msg: MessageId, wrapped: &WrappedKey) -> Result<WrappedKey> {
    if wrapped.key_id == keys.current_id() {
        // Still check it, so a rewrap pass also finds damaged keys.
        unwrap(keys, msg, wrapped)?;
        return Ok(wrapped.clone());
    }
    let dek = unwrap(keys, msg, wrapped)?;
    wrap(keys, msg, &dek)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_and_tamper() {
        let keys = Keyring::for_tests();
        let msg = MessageId::random();
        let dek = DataKey::generate();
        let w = wrap(&keys, msg, &dek).unwrap();
        assert_eq!(w.key_id, keys.current_id());
        assert!(unwrap(&keys, msg, &w).unwrap().same_as(&dek));
        let enc = w.to_bytes();
        assert_eq!(enc.len(), WRAPPED_LEN);
        assert_eq!(WrappedKey::from_bytes(&enc).unwrap(), w);
        assert!(WrappedKey::from_bytes(&enc[1..]).is_none());
        for pos in 0..enc.len() {
            let mut bad = enc.clone();
            bad[pos] ^= 0x20;
            let bad = WrappedKey::from_bytes(&bad).unwrap();
            assert!(unwrap(&keys, msg, &bad).is_err(), "flip at {pos} unnoticed");
        }
        // Bound to the message id and the master key.
        assert!(matches!(
            unwrap(&keys, MessageId::random(), &w),
            Err(StoreError::KeyTampered(_))
        ));
        assert!(unwrap(&Keyring::for_tests(), msg, &w).is_err());
    }

    #[test]
    fn rotation_and_rewrap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let mut keys = Keyring::load_or_create(&path).unwrap();
        let msg = MessageId::random();
        let dek1 = DataKey::generate();
        let w1 = wrap(&keys, msg, &dek1).unwrap();
        assert_eq!(w1.key_id, 1);

        assert_eq!(keys.rotate(&path).unwrap(), 2);
        let dek2 = DataKey::generate();
        let w2 = wrap(&keys, msg, &dek2).unwrap();
        assert_eq!(w2.key_id, 2);

        // A fresh load of the file sees both keys; both data keys open.
        let reloaded = Keyring::load_or_create(&path).unwrap();
        assert_eq!(reloaded.ids(), vec![1, 2]);
        assert!(unwrap(&reloaded, msg, &w1).unwrap().same_as(&dek1));
        assert!(unwrap(&reloaded, msg, &w2).unwrap().same_as(&dek2));

        let moved = rewrap(&reloaded, msg, &w1).unwrap();
        assert_eq!(moved.key_id, 2);
        assert!(unwrap(&reloaded, msg, &moved).unwrap().same_as(&dek1));
        assert_eq!(rewrap(&reloaded, msg, &w2).unwrap(), w2);

        // Once key 1 is retired, only the re-wrapped key opens.
        let text = std::fs::read_to_string(&path).unwrap();
        let only2: String = text.lines().filter(|l| l.starts_with("2 ")).collect();
        std::fs::write(&path, only2 + "\n").unwrap();
        let retired = Keyring::load_or_create(&path).unwrap();
        assert!(matches!(
            unwrap(&retired, msg, &w1),
            Err(StoreError::UnknownKey(1))
        ));
        assert!(unwrap(&retired, msg, &moved).unwrap().same_as(&dek1));

        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn add_key_refuses_duplicates() {
        let mut keys = Keyring::for_tests();
        assert!(keys.add_key(1, [7; 32]).is_err());
        keys.add_key(5, [7; 32]).unwrap();
        assert_eq!(keys.current_id(), 5);
    }
}
