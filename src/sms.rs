//! Sending one-time codes by SMS (SPEC §3): the `outbox` adapter appends each message to a file
//! (development, tests, the embedded default); the `http` adapter calls a provider's HTTP API
//! with the URL, method, headers and body template from `[sms]`.

use crate::config::SmsConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SmsError {
    #[error("SMS outbox {0}: {1}")]
    Outbox(String, std::io::Error),
    #[error("SMS provider: {0}")]
    Http(String),
}

pub enum Sms {
    Outbox(PathBuf),
    Http(HttpProvider),
}

pub struct HttpProvider {
    url: String,
    method: http::Method,
    headers: Vec<(String, String)>,
    body: String,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
}

/// Escapes for a JSON string (without the quotes).
fn json_escape(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap_or_default();
    q[1..q.len().saturating_sub(1)].to_string()
}

fn form_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Fills `{to}` `{text}` (as given), `{to_json}` `{text_json}` (JSON-escaped) and `{to_url}`
/// `{text_url}` (form-encoded).
pub fn fill(template: &str, to: &str, text: &str) -> String {
    template
        .replace("{to_json}", &json_escape(to))
        .replace("{text_json}", &json_escape(text))
        .replace("{to_url}", &form_escape(to))
        .replace("{text_url}", &form_escape(text))
        .replace("{to}", to)
        .replace("{text}", text)
}

impl Sms {
    pub fn from_config(c: &SmsConfig) -> Result<Sms, String> {
        match c.provider.as_str() {
            "outbox" => Ok(Sms::Outbox(c.path.clone())),
            "http" => {
                let url = c.url.clone().ok_or("provider \"http\" needs url")?;
                if !url.starts_with("http://") && !url.starts_with("https://") {
                    return Err(format!("url '{url}' must start with https:// or http://"));
                }
                let method = http::Method::from_bytes(c.method.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("'{}' is not an HTTP method", c.method))?;
                let tls = crate::relay::tlsconf::verified(
                    std::path::Path::new("/etc/ssl/certs/ca-certificates.crt"),
                    false,
                )?;
                Ok(Sms::Http(HttpProvider {
                    url,
                    method,
                    headers: c
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    body: c.body.clone(),
                    timeout: c.timeout.get(),
                    tls,
                }))
            }
            other => Err(format!(
                "provider '{other}' is not known: use \"outbox\" or \"http\""
            )),
        }
    }

    pub async fn send(&self, to: &str, text: &str) -> Result<(), SmsError> {
        let r = self.hand_over(to, text).await;
        crate::metrics::get().sms(r.is_ok());
        r
    }

    async fn hand_over(&self, to: &str, text: &str) -> Result<(), SmsError> {
        match self {
            Sms::Outbox(path) => {
                let line = serde_json::json!({
                    "at": chrono::Utc::now().to_rfc3339(),
                    "to": to,
                    "text": text,
                })
                .to_string();
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let name = path.display().to_string();
                    append_private(&path, &line).map_err(|e| SmsError::Outbox(name, e))
                })
                .await
                .map_err(|e| SmsError::Http(e.to_string()))?
            }
            Sms::Http(p) => tokio::time::timeout(p.timeout, p.send(to, text))
                .await
                .map_err(|_| SmsError::Http("timed out".into()))?,
        }
    }
}

/// Appends a line to the outbox, which only sluis's user may read: it holds sign-in codes.
/// A file left with wider permissions (an older version, a hand-made file) is narrowed to 0600
/// on the open descriptor rather than refused: refusing would stop every SMS sign-in, while the
/// fix restores the promise; a file sluis may not narrow (another owner) is an error. Symlinks
/// are not followed, so the outbox cannot be pointed at another file.
fn append_private(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mode = f.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the SMS outbox was readable by others; narrowed to 0600"
        );
    }
    f.write_all(format!("{line}\n").as_bytes())
}

impl HttpProvider {
    async fn send(&self, to: &str, text: &str) -> Result<(), SmsError> {
        let err = |e: &dyn std::fmt::Display| SmsError::Http(e.to_string());
        let url = fill(&self.url, to, text);
        let uri: http::Uri = url.parse().map_err(|e| err(&e))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()
            .ok_or_else(|| err(&"url has no host"))?
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| err(&e))?;
        let mut req = http::Request::builder()
            .method(self.method.clone())
            .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .header(
                http::header::HOST,
                uri.authority().map(|a| a.as_str()).unwrap_or(&host),
            );
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), fill(v, to, text));
        }
        let body = fill(&self.body, to, text);
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| err(&e))?;
        let status = if https {
            let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| err(&e))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| err(&e))?;
            exchange(TokioIo::new(tls), req).await?
        } else {
            exchange(TokioIo::new(tcp), req).await?
        };
        if status.is_success() {
            Ok(())
        } else {
            Err(SmsError::Http(format!("provider answered {status}")))
        }
    }
}

async fn exchange<I>(io: I, req: http::Request<Full<Bytes>>) -> Result<http::StatusCode, SmsError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let err = |e: &dyn std::fmt::Display| SmsError::Http(e.to_string());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| err(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = send.send_request(req).await.map_err(|e| err(&e))?;
    let status = resp.status();
    // Read (and drop) the answer so the provider sees a complete exchange.
    let _ = resp.into_body().collect().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_is_private_even_when_it_was_not() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/sms.txt");
        append_private(&path, "een").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        append_private(&path, "twee").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "een\ntwee\n");
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(
            append_private(&link, "drie").is_err(),
            "a symlink is not followed"
        );
    }

    #[test]
    fn placeholders() {
        let t = "{\"to\":\"{to_json}\",\"body\":\"{text_json}\"}";
        assert_eq!(
            fill(t, "+31612345678", "code \"1\"\n"),
            "{\"to\":\"+31612345678\",\"body\":\"code \\\"1\\\"\\n\"}"
        );
        assert_eq!(
            fill("To={to_url}&Body={text_url}", "+316", "a b&c"),
            "To=%2B316&Body=a%20b%26c"
        );
    }
}
