//! The `X-Sluis-Processed` marker: proof that this installation already handled a message.
//! It is an HMAC over the Message-ID with a key derived from the master key, so a sender
//! cannot forge it and another installation's marker does not verify here.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const HEADER: &str = "X-Sluis-Processed";

#[derive(Clone)]
pub struct Marker {
    key: [u8; 32],
}

impl Marker {
    pub fn new(key: [u8; 32]) -> Self {
        Marker { key }
    }

    fn mac(&self, message_id: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"sluis marker v1\0");
        mac.update(message_id.trim().as_bytes());
        mac
    }

    /// The header field value for a message with this Message-ID.
    pub fn value(&self, message_id: &str) -> String {
        let tag = self.mac(message_id).finalize().into_bytes();
        format!("v1; mac={}", hex::encode(&tag[..16]))
    }

    /// Whether a header value (unfolded) is this installation's marker for this Message-ID.
    pub fn verify(&self, value: &str, message_id: &str) -> bool {
        let Some(hexmac) = value.trim().strip_prefix("v1; mac=") else {
            return false;
        };
        let Ok(given) = hex::decode(hexmac.trim()) else {
            return false;
        };
        if given.len() != 16 {
            return false;
        }
        self.mac(message_id).verify_truncated_left(&given).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_own_and_refuses_others() {
        let m = Marker::new([7; 32]);
        let v = m.value("<a@b>");
        assert!(m.verify(&v, "<a@b>"));
        assert!(!m.verify(&v, "<other@b>"));
        assert!(!Marker::new([8; 32]).verify(&v, "<a@b>"));
        assert!(!m.verify("v1; mac=00000000000000000000000000000000", "<a@b>"));
        assert!(!m.verify("yes", "<a@b>"));
    }
}
