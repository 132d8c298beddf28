//! The server certificate for STARTTLS: from config, or generated once and kept in the data dir.

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{0}: {1}")]
    File(String, String),
    #[error("TLS setup: {0}")]
    Setup(String),
}

pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Made by sluis (no certificate configured).
    pub self_signed: bool,
    /// Made by sluis just now (first start with this data dir).
    pub generated: bool,
}

/// Makes sure a certificate exists: the configured pair, or a self-signed one for `hostname`.
pub fn ensure_files(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
    hostname: &str,
) -> Result<TlsFiles, TlsError> {
    if let (Some(c), Some(k)) = (cert, key) {
        return Ok(TlsFiles {
            cert: c.to_path_buf(),
            key: k.to_path_buf(),
            self_signed: false,
            generated: false,
        });
    }
    let dir = data_dir.join("tls");
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    let generated = !c.exists() || !k.exists();
    if generated {
        let fail =
            |e: String| TlsError::Setup(format!("generating a self-signed certificate: {e}"));
        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
        let names = vec![hostname.to_string(), "localhost".to_string()];
        let ck = rcgen::generate_simple_self_signed(names).map_err(|e| fail(e.to_string()))?;
        crate::fsutil::write_atomic(&k, ck.signing_key.serialize_pem().as_bytes())
            .map_err(|e| fail(e.to_string()))?;
        crate::fsutil::write_atomic(&c, ck.cert.pem().as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(TlsFiles {
        cert: c,
        key: k,
        self_signed: true,
        generated,
    })
}

pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let name = files.cert.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| TlsError::File(name.clone(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::File(name.clone(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::File(name, "no certificate in file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::File(files.key.display().to_string(), e.to_string()))?;
    let cfg = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    Ok(Arc::new(cfg))
}
