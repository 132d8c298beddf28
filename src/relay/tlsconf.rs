//! Client TLS settings: verified against a CA bundle where TLS is required, opportunistic
//! (encrypt, accept any certificate) otherwise — as MTAs do for unauthenticated STARTTLS.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// Certificates from a PEM bundle; an error if there are none.
pub fn load_bundle(ca_file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("{}: {e}", ca_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in file", ca_file.display()));
    }
    Ok(certs)
}

/// How the next hop's certificate is judged.
#[derive(Debug)]
enum Trust {
    /// Opportunistic STARTTLS: encrypt, whoever answers.
    Anyone,
    /// Certificates that are themselves in the bundle (a smarthost's self-signed one, pinned
    /// by the admin, as Postfix's smtp_tls_CAfile allows), else a chain to one of its CAs.
    Bundle {
        pinned: Vec<Vec<u8>>,
        chain: Option<Arc<WebPkiServerVerifier>>,
    },
}

#[derive(Debug)]
struct Verifier {
    trust: Trust,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

fn config(trust: Trust) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier { trust, provider }))
            .with_no_client_auth(),
    )
}

/// Verifies next hops against the bundle (`explicit`: the admin named it, so it must load).
pub fn verified(ca_file: &Path, explicit: bool) -> Result<Arc<ClientConfig>, String> {
    let certs = match load_bundle(ca_file) {
        Ok(c) => c,
        Err(e) if explicit => return Err(e),
        Err(_) => Vec::new(), // no system bundle: nothing verifies, so required TLS defers
    };
    let mut roots = RootCertStore::empty();
    for c in &certs {
        let _ = roots.add(c.clone());
    }
    let chain = if roots.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .build()
            .map_err(|e| format!("{}: {e}", ca_file.display()))?,
        )
    };
    Ok(config(Trust::Bundle {
        pinned: certs.into_iter().map(|c| c.as_ref().to_vec()).collect(),
        chain,
    }))
}

pub fn opportunistic() -> Arc<ClientConfig> {
    config(Trust::Anyone)
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.trust {
            Trust::Anyone => Ok(ServerCertVerified::assertion()),
            Trust::Bundle { pinned, .. } if pinned.iter().any(|p| p == end_entity.as_ref()) => {
                Ok(ServerCertVerified::assertion())
            }
            Trust::Bundle { chain: Some(v), .. } => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            Trust::Bundle { chain: None, .. } => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    // The handshake signatures are always checked: they prove the peer holds the key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
