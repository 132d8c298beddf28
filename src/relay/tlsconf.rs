//! Client TLS settings: verified against a CA bundle where TLS is required, opportunistic
//! (encrypt, accept any certificate) otherwise — as MTAs do for unauthenticated STARTTLS.

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

/// Verifies next hops against the bundle. A certificate that is itself in the bundle is
/// trusted as it is (a smarthost's self-signed certificate, pinned by the admin), as
/// Postfix's smtp_tls_CAfile does.
pub fn verified(ca_file: &Path, explicit: bool) -> Result<Arc<ClientConfig>, String> {
    let certs = match load_bundle(ca_file) {
        Ok(c) => c,
        Err(e) if explicit => return Err(e),
        Err(_) => Vec::new(), // the system bundle is absent: only explicit files can help
    };
    let mut roots = RootCertStore::empty();
    for c in &certs {
        let _ = roots.add(c.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki: Arc<dyn ServerCertVerifier> = if roots.is_empty() {
        Arc::new(Pinned {
            pinned: Vec::new(),
            inner: None,
            schemes: provider
                .signature_verification_algorithms
                .supported_schemes(),
        })
    } else {
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("{}: {e}", ca_file.display()))?
    };
    let verifier = Pinned {
        pinned: certs.into_iter().map(|c| c.as_ref().to_vec()).collect(),
        schemes: webpki.supported_verify_schemes(),
        inner: Some(webpki),
    };
    Ok(Arc::new(
        ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth(),
    ))
}

#[derive(Debug)]
struct Pinned {
    pinned: Vec<Vec<u8>>,
    inner: Option<Arc<dyn ServerCertVerifier>>,
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_slice() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.inner {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

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
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
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
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

pub fn opportunistic() -> Arc<ClientConfig> {
    let provider = rustls::crypto::ring::default_provider();
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    Arc::new(
        ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert { schemes }))
            .with_no_client_auth(),
    )
}

#[derive(Debug)]
struct AnyCert {
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

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
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
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
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}
