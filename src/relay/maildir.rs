//! The Maildir next hop: each recipient's copy as a file in `new/`, written Maildir-style.

use crate::queue::MessageReader;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

pub fn ensure(dir: &Path) -> io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join(sub))?;
    }
    Ok(())
}

/// Writes one copy durably; the caller has opened `message` at its first byte.
pub fn deliver(
    dir: &Path,
    id: &str,
    from: &str,
    rcpt: &str,
    mut message: MessageReader,
) -> io::Result<()> {
    ensure(dir)?;
    let name = format!(
        "{}.{}_{}.sluis",
        crate::queue::now(),
        id,
        hex::encode(crate::seal::random_bytes::<6>())
    );
    let tmp = dir.join("tmp").join(&name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let res = (|| {
        let clean = |s: &str| s.replace(['\r', '\n'], "");
        write!(
            f,
            "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
            clean(from),
            clean(rcpt)
        )?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = message.read(&mut buf)?;
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n])?;
        }
        f.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let dest = dir.join("new").join(&name);
    std::fs::rename(&tmp, &dest)?;
    crate::fsutil::sync_parent(&dest)
}
