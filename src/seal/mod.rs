//! Envelope encryption for everything sluis keeps on disk.
//!
//! Each blob gets a fresh 256-bit data key, wrapped by the master key (AES-256-GCM-SIV), and its
//! content is encrypted in 64 KiB chunks with the STREAM construction, so any size is sealed and
//! opened in flat memory and truncation or reordering is detected.

mod parallel;
mod stream;

pub use parallel::seal_to_file;

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use stream::{NONCE_PREFIX as STREAM_NONCE, Stream, TAG};
use thiserror::Error;

pub const CHUNK: usize = 64 * 1024;
const MAGIC: &[u8; 8] = b"SLUISv1\0";
pub const HEADER_LEN: usize = 8 + 4 + 12 + 48 + STREAM_NONCE;
/// Magic of a blob sealed with a data key that the caller keeps (wrapped elsewhere).
const KEYED_MAGIC: &[u8; 8] = b"SLUISk1\0";
/// Header of a blob sealed with a given data key: magic and the per-blob stream nonce.
pub const KEYED_HEADER_LEN: usize = 8 + STREAM_NONCE;
/// Overhead per chunk (the authentication tag).
pub const CHUNK_TAG: usize = TAG;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("master key file {0}: {1}")]
    File(String, String),
    #[error("master key from environment variable {0}: {1}")]
    Env(String, String),
}

/// The master keys by id; the highest id wraps new data keys, older ones still unwrap.
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<u32, [u8; 32]>,
}

pub type SharedKeys = Arc<Keyring>;

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random generator failed");
    b
}

fn parse_hex_key(s: &str) -> Option<[u8; 32]> {
    let v = hex::decode(s.trim()).ok()?;
    v.try_into().ok()
}

/// Appends an `ID HEXKEY` line to the key file, creating it (mode 0600) when missing, and
/// makes the line durable before the key is used for anything.
fn append_key(path: &Path, id: u32, key: &[u8; 32]) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let needs_newline = match std::fs::read(path) {
        Ok(b) => !b.is_empty() && !b.ends_with(b"\n"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    let nl = if needs_newline { "\n" } else { "" };
    f.write_all(format!("{nl}{id} {}\n", hex::encode(key)).as_bytes())?;
    f.sync_all()?;
    crate::fsutil::sync_parent(path)
}

impl Keyring {
    /// Reads `id hexkey` lines; creates the file (mode 0600) with one fresh key when missing.
    pub fn load_or_create(path: &Path) -> Result<Keyring, KeyError> {
        let name = path.display().to_string();
        let fail = |m: String| KeyError::File(name.clone(), m);
        if !path.exists() {
            append_key(path, 1, &random_bytes::<32>()).map_err(|e| fail(e.to_string()))?;
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let mut keys = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (id, key) = line
                .split_once(' ')
                .ok_or_else(|| fail(format!("line {}: expected 'ID HEXKEY'", i + 1)))?;
            let id: u32 = id
                .parse()
                .map_err(|_| fail(format!("line {}: key id is not a number", i + 1)))?;
            let key = parse_hex_key(key)
                .ok_or_else(|| fail(format!("line {}: key is not 64 hex digits", i + 1)))?;
            keys.insert(id, key);
        }
        if keys.is_empty() {
            return Err(fail("holds no key".into()));
        }
        Ok(Keyring { keys })
    }

    pub fn from_env(var: &str) -> Result<Keyring, KeyError> {
        let v = std::env::var(var).map_err(|_| KeyError::Env(var.into(), "not set".into()))?;
        let key = parse_hex_key(&v)
            .ok_or_else(|| KeyError::Env(var.into(), "must be 64 hex digits".into()))?;
        Ok(Keyring {
            keys: BTreeMap::from([(1, key)]),
        })
    }

    #[cfg(test)]
    pub fn for_tests() -> Keyring {
        Keyring {
            keys: BTreeMap::from([(1, random_bytes())]),
        }
    }

    fn current(&self) -> (u32, &[u8; 32]) {
        let (id, key) = self
            .keys
            .iter()
            .next_back()
            .expect("keyring is never empty");
        (*id, key)
    }

    /// The id of the master key that wraps new data keys (the highest id).
    pub fn current_id(&self) -> u32 {
        self.current().0
    }

    /// The ids of all master keys in the ring, lowest first.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// The current master key, for wrapping data keys (crate-internal: never leaves the process).
    pub(crate) fn current_master(&self) -> (u32, &[u8; 32]) {
        self.current()
    }

    /// The master key with this id, for unwrapping.
    pub(crate) fn master(&self, id: u32) -> Option<&[u8; 32]> {
        self.keys.get(&id)
    }

    /// Adds a master key under `id` (in memory only); refuses an id already in use.
    pub fn add_key(&mut self, id: u32, key: [u8; 32]) -> Result<(), KeyError> {
        if self.keys.contains_key(&id) {
            return Err(KeyError::File(
                "(in memory)".into(),
                format!("key id {id} is already in use"),
            ));
        }
        self.keys.insert(id, key);
        Ok(())
    }

    /// Rotates the master key: appends a fresh `ID HEXKEY` line (id one above the highest in the
    /// file and in memory) to the key file, fsyncs it (mode 0600) and its directory, and adds
    /// every key in the file to this ring. New data keys are then wrapped with the new key; older
    /// keys still unwrap. Returns the new key id.
    pub fn rotate(&mut self, path: &Path) -> Result<u32, KeyError> {
        let name = path.display().to_string();
        let fail = |m: String| KeyError::File(name.clone(), m);
        let on_disk = if path.exists() {
            Some(Keyring::load_or_create(path)?)
        } else {
            None
        };
        let max_disk = on_disk.as_ref().map(|k| k.current().0).unwrap_or(0);
        let id = max_disk
            .max(self.current().0)
            .checked_add(1)
            .ok_or_else(|| fail("no key id left".into()))?;
        let key = random_bytes::<32>();
        append_key(path, id, &key).map_err(|e| fail(e.to_string()))?;
        if let Some(disk) = on_disk {
            for (kid, k) in disk.keys {
                self.keys.entry(kid).or_insert(k);
            }
        }
        self.keys.insert(id, key);
        Ok(id)
    }

    /// A key for a purpose other than wrapping (HMACs), derived so it never equals the master key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let (_, key) = self.keys.iter().next().expect("keyring is never empty");
        let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("any key length");
        mac.update(b"sluis derive v1\0");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[derive(Debug, Error)]
pub enum SealError {
    #[error("not a sealed blob")]
    BadMagic,
    #[error("sealed with master key {0}, which is not in the keyring")]
    UnknownKey(u32),
    #[error("authentication failed: the blob was altered or the key is wrong")]
    Tampered,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<SealError> for io::Error {
    fn from(e: SealError) -> io::Error {
        match e {
            SealError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// The header of a blob sealed with a given data key: magic and the per-blob stream nonce.
fn keyed_header(stream_nonce: &[u8; STREAM_NONCE]) -> [u8; KEYED_HEADER_LEN] {
    let mut header = [0u8; KEYED_HEADER_LEN];
    header[..8].copy_from_slice(KEYED_MAGIC);
    header[8..].copy_from_slice(stream_nonce);
    header
}

/// Encrypts everything written to it into `inner`.
pub struct SealWriter<W: Write> {
    inner: W,
    enc: Option<Stream>,
    /// Plaintext of the chunk being filled.
    buf: Vec<u8>,
    /// A sealed chunk on its way to `inner`.
    out: Vec<u8>,
    /// Associated data of every chunk: empty for master-key blobs, the caller's context (such as
    /// a blob id) for blobs sealed with a given data key.
    aad: Vec<u8>,
}

impl<W: Write> SealWriter<W> {
    pub fn new(keys: &Keyring, mut inner: W) -> io::Result<Self> {
        let (kid, master) = keys.current();
        let dek = random_bytes::<32>();
        let wrap_nonce = random_bytes::<12>();
        let stream_nonce = random_bytes::<STREAM_NONCE>();
        let mut aad = Vec::with_capacity(12);
        aad.extend_from_slice(MAGIC);
        aad.extend_from_slice(&kid.to_be_bytes());
        let wrapped = Aes256GcmSiv::new(master.into())
            .encrypt(
                &Nonce::from(wrap_nonce),
                Payload {
                    msg: &dek,
                    aad: &aad,
                },
            )
            .map_err(|_| io::Error::other("key wrapping failed"))?;
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(&aad);
        header.extend_from_slice(&wrap_nonce);
        header.extend_from_slice(&wrapped);
        header.extend_from_slice(&stream_nonce);
        debug_assert_eq!(header.len(), HEADER_LEN);
        inner.write_all(&header)?;
        Ok(SealWriter {
            inner,
            enc: Some(Stream::new(&dek, &stream_nonce)),
            buf: Vec::with_capacity(CHUNK + TAG),
            out: Vec::with_capacity(CHUNK + TAG),
            aad: Vec::new(),
        })
    }

    /// Seals with a data key that the caller keeps (wrapped elsewhere, e.g. per message): the
    /// header holds only a distinct magic and a fresh per-blob stream nonce.
    pub fn with_key(dek: &[u8; 32], inner: W) -> io::Result<Self> {
        Self::with_key_bound(dek, b"", inner)
    }

    /// Like [`SealWriter::with_key`], and binds every chunk to `context` (such as the blob id):
    /// the blob opens only with the same context, so blobs cannot be swapped undetected.
    pub fn with_key_bound(dek: &[u8; 32], context: &[u8], mut inner: W) -> io::Result<Self> {
        let stream_nonce = random_bytes::<STREAM_NONCE>();
        inner.write_all(&keyed_header(&stream_nonce))?;
        Ok(SealWriter {
            inner,
            enc: Some(Stream::new(dek, &stream_nonce)),
            buf: Vec::with_capacity(CHUNK + TAG),
            out: Vec::with_capacity(CHUNK + TAG),
            aad: context.to_vec(),
        })
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        let enc = self.enc.as_mut().expect("not finished");
        enc.seal_in_place(&self.aad, &mut self.buf, false)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Seals a whole chunk straight from the caller's bytes (no copy into `buf` first).
    fn seal_direct(&mut self, chunk: &[u8]) -> io::Result<()> {
        let enc = self.enc.as_mut().expect("not finished");
        enc.seal_into(&self.aad, chunk, &mut self.out, false)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&self.out)
    }

    /// Writes the final chunk; without it the blob does not open.
    pub fn finish(mut self) -> io::Result<W> {
        let mut enc = self.enc.take().expect("finish once");
        enc.seal_in_place(&self.aad, &mut self.buf, true)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&self.buf)?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= CHUNK {
                self.seal_direct(&data[..CHUNK])?;
                data = &data[CHUNK..];
                continue;
            }
            let take = (CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            // Flush eagerly at a full chunk: the last chunk is then always shorter than CHUNK,
            // which is how the reader tells it apart.
            if self.buf.len() == CHUNK {
                self.flush_chunk()?;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts a sealed blob; any alteration surfaces as an error, never as altered plaintext.
pub struct SealReader<R: Read> {
    inner: R,
    dec: Option<Stream>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    aad: Vec<u8>,
}

/// Reads a fixed-size header; a short blob is not a sealed blob.
fn read_header<const N: usize>(inner: &mut impl Read) -> Result<[u8; N], SealError> {
    let mut header = [0u8; N];
    inner.read_exact(&mut header).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            SealError::BadMagic
        } else {
            SealError::Io(e)
        }
    })?;
    Ok(header)
}

impl<R: Read> SealReader<R> {
    fn from_parts(inner: R, dek: &[u8; 32], nonce: &[u8; STREAM_NONCE], aad: &[u8]) -> Self {
        SealReader {
            inner,
            dec: Some(Stream::new(dek, nonce)),
            buf: Vec::with_capacity(CHUNK + TAG),
            pos: 0,
            done: false,
            aad: aad.to_vec(),
        }
    }

    pub fn new(keys: &Keyring, mut inner: R) -> Result<Self, SealError> {
        let header: [u8; HEADER_LEN] = read_header(&mut inner)?;
        if &header[..8] != MAGIC {
            return Err(SealError::BadMagic);
        }
        let kid = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
        let master = keys.keys.get(&kid).ok_or(SealError::UnknownKey(kid))?;
        let dek = Aes256GcmSiv::new(master.into())
            .decrypt(
                &Nonce::try_from(&header[12..24]).map_err(|_| SealError::BadMagic)?,
                Payload {
                    msg: &header[24..72],
                    aad: &header[..12],
                },
            )
            .map_err(|_| SealError::Tampered)?;
        let dek: [u8; 32] = dek.try_into().map_err(|_| SealError::Tampered)?;
        let stream_nonce: [u8; STREAM_NONCE] = header[72..].try_into().expect("7 bytes");
        Ok(Self::from_parts(inner, &dek, &stream_nonce, b""))
    }

    /// Opens a blob written by [`SealWriter::with_key`].
    pub fn with_key(dek: &[u8; 32], inner: R) -> Result<Self, SealError> {
        Self::with_key_bound(dek, b"", inner)
    }

    /// Opens a blob written by [`SealWriter::with_key_bound`] with the same context.
    pub fn with_key_bound(dek: &[u8; 32], context: &[u8], mut inner: R) -> Result<Self, SealError> {
        let header: [u8; KEYED_HEADER_LEN] = read_header(&mut inner)?;
        if &header[..8] != KEYED_MAGIC {
            return Err(SealError::BadMagic);
        }
        let mut stream_nonce = [0u8; STREAM_NONCE];
        stream_nonce.copy_from_slice(&header[8..]);
        Ok(Self::from_parts(inner, dek, &stream_nonce, context))
    }

    /// Reads the next sealed chunk into `buf`; returns whether it is the last one.
    fn read_chunk(&mut self) -> io::Result<bool> {
        self.buf.resize(CHUNK + TAG, 0);
        let mut got = 0;
        while got < self.buf.len() {
            match self.inner.read(&mut self.buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.truncate(got);
        self.pos = 0;
        // Every chunk but the last is full: a short one is the last (or the blob was cut).
        Ok(got < CHUNK + TAG)
    }
}

fn tampered() -> io::Error {
    io::Error::from(SealError::Tampered)
}

impl<R: Read> Read for SealReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.buf.len() {
                let n = (self.buf.len() - self.pos).min(out.len());
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done || out.is_empty() {
                return Ok(0);
            }
            let last = self.read_chunk()?;
            let dec = self.dec.as_mut().expect("not done");
            self.done = last;
            if out.len() + TAG >= self.buf.len() {
                // Room for the whole chunk: open it straight into the caller's buffer.
                let n = dec
                    .open_into(&self.aad, &self.buf, out, last)
                    .map_err(|_| tampered())?;
                self.buf.clear();
                if n > 0 || last {
                    return Ok(n);
                }
            } else {
                dec.open_in_place(&self.aad, &mut self.buf, last)
                    .map_err(|_| tampered())?;
            }
        }
    }
}

/// Seals a small value in one go (state files, envelopes).
pub fn seal_bytes(keys: &Keyring, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut w = SealWriter::new(keys, Vec::with_capacity(data.len() + HEADER_LEN + TAG))?;
    w.write_all(data)?;
    w.finish()
}

pub fn open_bytes(keys: &Keyring, data: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut r = SealReader::new(keys, data)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => SealError::Tampered,
        _ => SealError::Io(e),
    })?;
    Ok(out)
}

/// Seals a small value with a given data key, bound to `context`.
pub fn seal_bytes_with_key(dek: &[u8; 32], context: &[u8], data: &[u8]) -> io::Result<Vec<u8>> {
    let out = Vec::with_capacity(data.len() + KEYED_HEADER_LEN + TAG);
    let mut w = SealWriter::with_key_bound(dek, context, out)?;
    w.write_all(data)?;
    w.finish()
}

/// Opens a value sealed by [`seal_bytes_with_key`] with the same key and context.
pub fn open_bytes_with_key(
    dek: &[u8; 32],
    context: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, SealError> {
    let mut r = SealReader::with_key_bound(dek, context, data)?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => SealError::Tampered,
        _ => SealError::Io(e),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(len: usize) {
        let keys = Keyring::for_tests();
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let sealed = seal_bytes(&keys, &data).unwrap();
        assert!(sealed.len() >= HEADER_LEN + TAG);
        assert_eq!(open_bytes(&keys, &sealed).unwrap(), data, "len {len}");
    }

    #[test]
    fn roundtrips_at_chunk_edges() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5] {
            roundtrip(len);
        }
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let keys = Keyring::for_tests();
        let data = vec![42u8; CHUNK + 100];
        let sealed = seal_bytes(&keys, &data).unwrap();
        for pos in [
            0,
            9,
            20,
            40,
            75,
            HEADER_LEN + 3,
            HEADER_LEN + CHUNK + 20,
            sealed.len() - 1,
        ] {
            let mut bad = sealed.clone();
            bad[pos] ^= 0x01;
            assert!(
                open_bytes(&keys, &bad).is_err(),
                "flip at {pos} went unnoticed"
            );
        }
    }

    #[test]
    fn truncation_is_detected() {
        let keys = Keyring::for_tests();
        let data = vec![1u8; 2 * CHUNK + 10];
        let sealed = seal_bytes(&keys, &data).unwrap();
        for cut in [HEADER_LEN, HEADER_LEN + CHUNK + TAG, sealed.len() - 1] {
            assert!(open_bytes(&keys, &sealed[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn wrong_key_fails() {
        let sealed = seal_bytes(&Keyring::for_tests(), b"hello").unwrap();
        assert!(open_bytes(&Keyring::for_tests(), &sealed).is_err());
    }

    #[test]
    fn ciphertext_hides_plaintext() {
        let keys = Keyring::for_tests();
        let sealed = seal_bytes(&keys, b"vertrouwelijk vertrouwelijk vertrouwelijk").unwrap();
        assert!(!sealed.windows(13).any(|w| w == b"vertrouwelijk"));
    }
}
