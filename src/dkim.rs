//! DKIM signing (mail-auth) of the mail that sluis writes itself: rewritten copies of protected
//! messages. The sender's original signature does not survive a rewrite, so it is dropped there
//! and replaced by the organisation's.

use crate::config::DkimConfig;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DkimError {
    #[error("{0}: cannot read a PEM private key: {1}")]
    Key(String, String),
    #[error("{0}: not an RSA or Ed25519 private key")]
    KeyType(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Header fields covered by the signature (those present in a message).
const SIGNED: &[&str] = &[
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

pub struct Signer {
    inner: DkimSigner<DkimKey, Done>,
}

impl Signer {
    pub fn load(cfg: &DkimConfig) -> Result<Signer, DkimError> {
        let name = cfg.key_file.display().to_string();
        let der = PrivateKeyDer::from_pem_file(&cfg.key_file)
            .map_err(|e| DkimError::Key(name.clone(), e.to_string()))?;
        let key: DkimKey = match &der {
            PrivateKeyDer::Pkcs1(_) => RsaKey::<Sha256>::from_key_der(der.clone_key())
                .map_err(|e| DkimError::Key(name.clone(), e.to_string()))?
                .into(),
            PrivateKeyDer::Pkcs8(p) => match RsaKey::<Sha256>::from_key_der(der.clone_key()) {
                Ok(k) => k.into(),
                Err(_) => DkimKey::Ed25519(
                    Ed25519Key::from_pkcs8_der(p.secret_pkcs8_der())
                        .map_err(|_| DkimError::KeyType(name.clone()))?,
                ),
            },
            _ => return Err(DkimError::KeyType(name)),
        };
        let inner = DkimSigner::from_key(key)
            .domain(cfg.domain.clone())
            .selector(cfg.selector.clone())
            .headers(SIGNED.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(Signer { inner })
    }

    /// The message with a DKIM-Signature field in front.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        let sig = self
            .inner
            .sign(message)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        let header = sig.to_header();
        let mut out = Vec::with_capacity(header.len() + message.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(message);
        Ok(out)
    }
}
