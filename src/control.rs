//! The admin's commands on a running server: `sluis queue list|retry|remove`, `sluis key rotate`.
//!
//! While the server runs they go through a Unix socket in the data directory, so the running
//! scheduler acts on them at once; with the server stopped they act on the queue files directly.

use crate::queue::{DeliveryState, QueueStore, RcptStatus};
use crate::relay::Relay;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Serves the control socket (mode 0600: root and the sluis user only).
pub async fn serve(data_dir: &Path, relay: Arc<Relay>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    loop {
        let (stream, _) = listener.accept().await?;
        let relay = relay.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            if let Ok(Some(line)) = lines.next_line().await {
                let answer = handle(&relay, &line).await;
                let _ = w.write_all(answer.as_bytes()).await;
                let _ = w.write_all(b"\n").await;
            }
        });
    }
}

async fn handle(relay: &Relay, line: &str) -> String {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("key-rotate"), None) => match relay.rotate_keys().await {
            Ok((id, n)) => format!("ok {id} {n}"),
            Err(e) => format!("error {e}"),
        },
        (Some("retry"), Some("all")) | (Some("retry"), None) => {
            format!("ok {}", relay.retry(None))
        }
        (Some("retry"), Some(id)) => match relay.retry(Some(id)) {
            0 => format!("error no queued message {id}"),
            n => format!("ok {n}"),
        },
        (Some("remove"), Some(id)) => match relay.remove(id) {
            Ok(true) => "ok 1".into(),
            Ok(false) => format!("error no queued message {id}"),
            Err(e) => format!("error {e}"),
        },
        _ => "error unknown command".into(),
    }
}

/// Sends a command to a running server; None when no server answers.
pub async fn ask(data_dir: &Path, cmd: &str) -> Option<String> {
    let mut s = UnixStream::connect(socket_path(data_dir)).await.ok()?;
    s.write_all(format!("{cmd}\n").as_bytes()).await.ok()?;
    let mut lines = BufReader::new(s).lines();
    lines.next_line().await.ok().flatten()
}

/// One line per queued message, for `sluis queue list`.
pub fn list(store: &QueueStore) -> Result<Vec<String>, String> {
    let mut rows = Vec::new();
    for id in store.list_ids().map_err(|e| e.to_string())? {
        let env = match store.read_envelope(&id) {
            Ok(e) => e,
            Err(e) => {
                rows.push(format!("{id}  (unreadable: {e})"));
                continue;
            }
        };
        let st = store
            .read_state(&id)
            .ok()
            .flatten()
            .unwrap_or_else(|| DeliveryState::fresh(env.recipients.len(), 0));
        let age = crate::queue::now() - env.received_at;
        let from = if env.mail_from.is_empty() {
            "<>".to_string()
        } else {
            env.mail_from.clone()
        };
        let mut row = format!(
            "{id}  {size:>9}  {age:>6}s  attempts={att}  from={from}",
            size = store.stored_size(&id),
            att = st.attempts
        );
        for (r, s) in env.recipients.iter().zip(&st.status) {
            let s = match s {
                RcptStatus::Pending => "pending",
                RcptStatus::Delivered { .. } => "delivered",
                RcptStatus::Failed { .. } => "failed",
            };
            row.push_str(&format!("\n    {}  {s}", r.address));
        }
        if st.attempts > 0 {
            let secs = (st.next_attempt - crate::relay::now_ms()).max(0) / 1000;
            row.push_str(&format!("\n    next attempt in {secs}s"));
        }
        if let Some(e) = &st.last_error {
            row.push_str(&format!("\n    last error: {e}"));
        }
        rows.push(row);
    }
    Ok(rows)
}

/// `retry` with the server stopped: due at its next start.
pub fn retry_offline(store: &QueueStore, id: Option<&str>) -> Result<usize, String> {
    let ids = match id {
        Some(i) if store.exists(i) => vec![i.to_string()],
        Some(i) => return Err(format!("no queued message {i}")),
        None => store.list_ids().map_err(|e| e.to_string())?,
    };
    for i in &ids {
        if let Ok(Some(mut st)) = store.read_state(i) {
            st.next_attempt = 0;
            store.write_state(i, &st).map_err(|e| e.to_string())?;
        }
    }
    Ok(ids.len())
}

pub fn remove_offline(store: &QueueStore, id: &str) -> Result<(), String> {
    if !store.exists(id) {
        return Err(format!("no queued message {id}"));
    }
    store.remove(id).map_err(|e| e.to_string())
}
