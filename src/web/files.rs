//! Downloads: one file streamed and unsealed on the fly, or all of them as one ZIP built as it
//! is sent. Memory stays flat whatever the size: a bounded channel of 256 KiB chunks sits
//! between the blocking unsealer and the response.

use super::Web;
use super::http::{self as h, Resp};
use super::pages::{Ctx, status};
use crate::queue::now;
use crate::store::{BlobId, DataKey, Download, Event, EventKind, MessageId, MetaStore};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;
use tokio::sync::mpsc;

const CHUNK: usize = 256 * 1024;

type Chunk = Result<Bytes, std::io::Error>;

/// Unseals a blob on a blocking thread into a bounded channel.
fn unseal_into(web: &Web, blob: BlobId, dek: DataKey, tx: mpsc::Sender<Chunk>) {
    let blobs = web.store.blobs.clone();
    tokio::task::spawn_blocking(move || {
        let mut r = match blobs.open(&blob, &dek) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0;
            // Fill whole chunks: fewer, larger frames.
            while got < CHUNK {
                match r.read(&mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) => {
                        // Altered content: the response is cut off, never completed wrongly.
                        tracing::error!(blob = %blob, error = %e, "blob does not unseal");
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if got == 0 {
                return;
            }
            buf.truncate(got);
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // the client went away
            }
            if got < CHUNK {
                return;
            }
        }
    });
}

/// What an open download keeps checking before each chunk leaves: its message is still stored
/// and not expired, and neither the message, the recipient nor the files sent are blocked.
/// One small record read per 256 KiB; a failed read counts as withdrawn (fail closed).
struct Still {
    meta: Arc<dyn MetaStore>,
    id: MessageId,
    rcpt: u32,
    files: Vec<u32>,
}

impl Still {
    fn new(web: &Web, ctx: &Ctx, files: Vec<u32>) -> Still {
        Still {
            meta: web.store.meta.clone(),
            id: ctx.id(),
            rcpt: ctx.rcpt,
            files,
        }
    }

    fn open(&self) -> bool {
        let m = match self.meta.get_message(self.id) {
            Ok(Some((m, _))) => m,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(message = %self.id, error = %e, "cannot check an open download");
                return false;
            }
        };
        m.expires > now()
            && !m.blocked
            && m.recipients
                .get(self.rcpt as usize)
                .is_some_and(|r| !r.blocked)
            && self
                .files
                .iter()
                .all(|&f| m.files.get(f as usize).is_some_and(|f| !f.blocked))
    }
}

/// A response body that stops with an error, so that the client sees a failed transfer and
/// never a complete-looking file, as soon as its download is withdrawn (blocked, expired,
/// shredded); chunks already waiting are checked too.
fn guarded<S>(chunks: S, still: Still) -> h::Body
where
    S: futures_util::Stream<Item = Chunk> + Send + Sync + Unpin + 'static,
{
    let s = futures_util::stream::unfold(Some((chunks, still)), |st| async move {
        let (mut chunks, still) = st?;
        let chunk = futures_util::StreamExt::next(&mut chunks).await?;
        if !still.open() {
            tracing::info!(message = %still.id, rcpt = still.rcpt, "download stopped: withdrawn");
            let e = std::io::Error::other("the download was withdrawn");
            return Some((Err(e), None));
        }
        Some((chunk.map(Frame::data), Some((chunks, still))))
    });
    StreamBody::new(s).boxed()
}

fn channel_stream(
    rx: mpsc::Receiver<Chunk>,
) -> impl futures_util::Stream<Item = Chunk> + Send + Sync + Unpin {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    }))
}

fn record(meta: &dyn MetaStore, ctx: &Ctx, file: u32) {
    crate::metrics::get().portal(crate::metrics::PortalEvent::Download);
    let ev = Event {
        rcpt: Some(ctx.rcpt),
        file: Some(file),
        detail: Some(ctx.ip.to_string()),
        ..Event::new(now(), EventKind::Downloaded)
    };
    if let Err(e) = meta.add_event(ctx.id(), &ev) {
        tracing::warn!(message = %ctx.id(), error = %e, "cannot record download");
    }
}

fn count(web: &Web, ctx: &Ctx, file: u32) -> Result<bool, Box<Resp>> {
    match web.store.meta.count_download(ctx.id(), ctx.rcpt, file) {
        Ok(Download::Allowed { .. }) => Ok(true),
        Ok(Download::Exhausted) => Ok(false),
        Err(e) => {
            tracing::error!(message = %ctx.id(), error = %e, "download count failed");
            Err(Box::new(h::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later\n",
            )))
        }
    }
}

pub async fn download(web: &Arc<Web>, ctx: &Ctx, n: u32) -> Resp {
    if !ctx.allowed(web) {
        return h::redirect(&format!("/l/{}", ctx.token));
    }
    let Some(f) = ctx.msg.files.get(n as usize) else {
        return h::not_found();
    };
    let t = ctx.t;
    if f.blocked {
        return status(
            web,
            t,
            StatusCode::FORBIDDEN,
            t.blocked_title,
            t.blocked_text,
        );
    }
    match count(web, ctx, n) {
        Ok(true) => {}
        Ok(false) => {
            return status(
                web,
                t,
                StatusCode::GONE,
                t.exhausted_title,
                t.exhausted_text,
            );
        }
        Err(r) => return *r,
    }
    record(web.store.meta.as_ref(), ctx, n);
    if let Err(e) = web.store.meta.flush_async().await {
        tracing::warn!(error = %e, "cannot flush download count");
    }
    let (tx, rx) = mpsc::channel(4);
    unseal_into(web, f.blob, ctx.dek.clone(), tx);
    let body = guarded(channel_stream(rx), Still::new(web, ctx, vec![n]));
    // Served as bytes, never rendered: the sender's content type could be text/html.
    let mut r = h::respond(StatusCode::OK, "application/octet-stream", body, true);
    let hd = r.headers_mut();
    hd.insert(header::CONTENT_LENGTH, HeaderValue::from(f.size));
    if let Ok(v) = HeaderValue::from_str(&h::content_disposition(&f.name)) {
        hd.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// A ZIP entry name: no directories, no parent references, no control characters, unique.
pub fn zip_name(name: &str, taken: &mut HashSet<String>) -> String {
    let base: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    let base = base.trim().trim_start_matches('.').to_string();
    let base = if base.is_empty() {
        "bestand".to_string()
    } else {
        base
    };
    let (stem, ext) = match base.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
        _ => (base.clone(), String::new()),
    };
    let mut candidate = base.clone();
    let mut i = 2;
    while !taken.insert(candidate.to_lowercase()) {
        candidate = format!("{stem} ({i}){ext}");
        i += 1;
    }
    candidate
}

pub async fn zip(web: &Arc<Web>, ctx: &Ctx) -> Resp {
    if !ctx.allowed(web) {
        return h::redirect(&format!("/l/{}", ctx.token));
    }
    // Each file counts as a download; blocked and exhausted ones are left out.
    let mut chosen = Vec::new();
    let mut taken = HashSet::new();
    let mut indices = Vec::new();
    for (i, f) in ctx.msg.files.iter().enumerate() {
        if f.blocked {
            continue;
        }
        match count(web, ctx, i as u32) {
            Ok(true) => {
                record(web.store.meta.as_ref(), ctx, i as u32);
                chosen.push((zip_name(&f.name, &mut taken), f.blob));
                indices.push(i as u32);
            }
            Ok(false) => {}
            Err(r) => return *r,
        }
    }
    let t = ctx.t;
    if chosen.is_empty() {
        return status(
            web,
            t,
            StatusCode::GONE,
            t.exhausted_title,
            t.exhausted_text,
        );
    }
    let _ = web.store.meta.flush_async().await;
    let (reader, writer) = tokio::io::duplex(CHUNK);
    let web2 = web.clone();
    let dek = ctx.dek.clone();
    let id = ctx.id();
    let when = zip_date(ctx.msg.created);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let r = write_zip(&web2, writer, chosen, dek, when).await;
        if let Err(e) = &r {
            tracing::warn!(message = %id, error = %e, "ZIP download ended early");
        }
        let _ = done_tx.send(r.is_ok());
    });
    // The reader ends when the writer stops, finished or not: only its result tells.
    let end = futures_util::stream::once(async move {
        match done_rx.await {
            Ok(true) => None,
            _ => Some(Err(std::io::Error::other("the ZIP was not completed"))),
        }
    });
    let end = futures_util::StreamExt::filter_map(end, std::future::ready);
    let data = tokio_util::io::ReaderStream::with_capacity(reader, CHUNK);
    let chunks = futures_util::StreamExt::chain(data, end);
    let body = guarded(Box::pin(chunks), Still::new(web, ctx, indices));
    let mut r = h::respond(StatusCode::OK, "application/zip", body, true);
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"bestanden.zip\""),
    );
    r
}

async fn write_zip(
    web: &Web,
    writer: tokio::io::DuplexStream,
    files: Vec<(String, BlobId)>,
    dek: DataKey,
    when: async_zip::ZipDateTime,
) -> Result<(), String> {
    use async_zip::{Compression, ZipEntryBuilder};
    use futures_util::AsyncWriteExt;
    let mut zw = async_zip::tokio::write::ZipFileWriter::with_tokio(writer);
    for (name, blob) in files {
        // Stored, not deflated: most attachments are compressed already, and it keeps the
        // download at unsealing speed.
        let entry =
            ZipEntryBuilder::new(name.into(), Compression::Stored).last_modification_date(when);
        let mut ew = zw
            .write_entry_stream(entry)
            .await
            .map_err(|e| e.to_string())?;
        let (tx, mut rx) = mpsc::channel(4);
        unseal_into(web, blob, dek.clone(), tx);
        while let Some(chunk) = rx.recv().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            ew.write_all(&chunk).await.map_err(|e| e.to_string())?;
        }
        ew.close().await.map_err(|e| e.to_string())?;
    }
    zw.close().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// The message's time for the ZIP entries (not 1980): in local time, as ZIP tools read it and
/// as the portal shows it.
fn zip_date(unix: i64) -> async_zip::ZipDateTime {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .with_timezone(&chrono::Local);
    async_zip::ZipDateTimeBuilder::new()
        .year(t.year())
        .month(t.month())
        .day(t.day())
        .hour(t.hour())
        .minute(t.minute())
        .second(t.second())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zip_names_are_safe_and_unique() {
        let mut t = HashSet::new();
        assert_eq!(zip_name("../../etc/passwd", &mut t), "_.._etc_passwd");
        assert_eq!(zip_name("rapport.pdf", &mut t), "rapport.pdf");
        assert_eq!(zip_name("Rapport.pdf", &mut t), "Rapport (2).pdf");
        assert_eq!(zip_name("rapport.pdf", &mut t), "rapport (3).pdf");
        assert_eq!(zip_name("a\r\nb", &mut t), "a__b");
        assert_eq!(zip_name("...", &mut t), "bestand");
        assert_eq!(zip_name("C:\\x\\y.txt", &mut t), "C__x_y.txt");
    }
}
