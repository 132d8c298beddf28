//! The admin's commands on a running server: `sluis queue list|retry|remove`, `sluis key rotate`,
//! `sluis message block`.
//!
//! While the server runs they go through a Unix socket in the data directory, so the running
//! scheduler acts on them at once; with the server stopped they act on the queue files directly.

use crate::queue::{DeliveryState, QueueStore, RcptStatus};
use crate::relay::Relay;
use crate::store::{Event, EventKind, MessageId, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Serves the control socket (mode 0600: root and the sluis user only).
pub async fn serve(data_dir: &Path, relay: Arc<Relay>, store: Store) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    loop {
        let (stream, _) = listener.accept().await?;
        let relay = relay.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            if let Ok(Some(line)) = lines.next_line().await {
                let answer = handle(&relay, &store, &line).await;
                let _ = w.write_all(answer.as_bytes()).await;
                let _ = w.write_all(b"\n").await;
            }
        });
    }
}

async fn handle(relay: &Relay, store: &Store, line: &str) -> String {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some("block"), Some(target)) => {
            let file = parts.next().and_then(|f| f.parse().ok());
            match block(store, target, file) {
                Ok(()) => "ok 1".into(),
                Err(e) => format!("error {e}"),
            }
        }
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

/// Blocks a protected message, or one of its files (index from 0), named by a recipient's link
/// (the URL, or its token) or by the message id: its links then show the blocked page and
/// downloads in progress stop. Recorded as a `Blocked` event.
pub fn block(store: &Store, target: &str, file: Option<u32>) -> Result<(), String> {
    let token = target.rsplit_once("/l/").map_or(target, |(_, t)| t);
    let token = token.split(['/', '?', '#']).next().unwrap_or_default();
    let id = match store
        .meta
        .link_for_token(token)
        .map_err(|e| e.to_string())?
    {
        Some((id, _)) => id,
        None => target.parse::<MessageId>().map_err(|_| {
            format!("'{target}' is neither a link nor a message id of a stored message")
        })?,
    };
    let mut missing = false;
    let changed = store
        .meta
        .update_message(id, &mut |m| match file {
            Some(n) => match m.files.get_mut(n as usize) {
                Some(f) => f.blocked = true,
                None => missing = true,
            },
            None => m.blocked = true,
        })
        .map_err(|e| e.to_string())?;
    if changed.is_none() {
        return Err(format!("message {id} is not stored (expired or shredded)"));
    }
    if missing {
        return Err(format!(
            "message {id} has no file {}",
            file.unwrap_or_default()
        ));
    }
    let ev = Event {
        file,
        ..Event::new(crate::queue::now(), EventKind::Blocked)
    };
    store.meta.add_event(id, &ev).map_err(|e| e.to_string())?;
    store.meta.flush().map_err(|e| e.to_string())?;
    tracing::info!(message = %id, file, "blocked by the admin");
    Ok(())
}
