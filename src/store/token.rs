//! Link tokens: 192 bits from the OS random generator, URL-safe base64 without padding. Only
//! their SHA-256 hashes are stored, so a copy of the database opens no link.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const TOKEN_BYTES: usize = 24;
/// Length of a token in characters (24 bytes in base64).
pub const TOKEN_LEN: usize = 32;
const HASH_DOMAIN: &[u8] = b"sluis link v1\0";

/// A link token in clear: exists only in memory and in the link mailed to the recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkToken(String);

impl LinkToken {
    pub fn generate() -> LinkToken {
        let raw = crate::seal::random_bytes::<TOKEN_BYTES>();
        LinkToken(URL_SAFE_NO_PAD.encode(raw))
    }

    /// The text that goes into the URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stored form: SHA-256 over the token's bytes. `None` for a string that is not a
    /// well-formed token (so garbage never reaches the database).
    pub fn hash_of(presented: &str) -> Option<[u8; 32]> {
        if presented.len() != TOKEN_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(presented.as_bytes()).ok()?;
        if raw.len() != TOKEN_BYTES {
            return None;
        }
        let mut h = Sha256::new();
        h.update(HASH_DOMAIN);
        h.update(&raw);
        Some(h.finalize().into())
    }

    pub fn hash(&self) -> [u8; 32] {
        Self::hash_of(&self.0).expect("a generated token is well-formed")
    }
}

impl std::fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkToken(..)")
    }
}

impl std::fmt::Display for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = LinkToken::generate();
        let b = LinkToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), TOKEN_LEN);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(LinkToken::hash_of(a.as_str()), Some(a.hash()));
        assert_ne!(a.hash(), b.hash());
        assert_eq!(LinkToken::hash_of("short"), None);
        assert_eq!(LinkToken::hash_of(&"=".repeat(TOKEN_LEN)), None);
    }
}
