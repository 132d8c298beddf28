//! The STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár), big-endian 32-bit counter, as
//! the `aead-stream` crate defines it: chunk nonce = 7-byte stream nonce ‖ counter (BE u32) ‖
//! last-chunk flag. Done here so that a chunk can be sealed from the caller's buffer into the
//! output buffer (and opened into the caller's), saving a copy per chunk on the hot path.

use aes_gcm_siv::aead::inout::InOutBuf;
use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};

pub(super) const NONCE_PREFIX: usize = 7;
pub(super) const TAG: usize = 16;

pub(super) struct Stream {
    aead: Aes256GcmSiv,
    prefix: [u8; NONCE_PREFIX],
    counter: u32,
    finished: bool,
}

/// Authentication failed, the stream is exhausted, or a chunk came after the last one.
#[derive(Debug)]
pub(super) struct StreamError;

impl Stream {
    pub(super) fn new(key: &[u8; 32], prefix: &[u8; NONCE_PREFIX]) -> Stream {
        Stream {
            aead: Aes256GcmSiv::new(key.into()),
            prefix: *prefix,
            counter: 0,
            finished: false,
        }
    }

    /// A stream that goes on at chunk `counter`: chunks of one blob can be sealed apart.
    pub(super) fn at(key: &[u8; 32], prefix: &[u8; NONCE_PREFIX], counter: u32) -> Stream {
        Stream {
            counter,
            ..Stream::new(key, prefix)
        }
    }

    fn next_nonce(&mut self, last: bool) -> Result<Nonce, StreamError> {
        if self.finished {
            return Err(StreamError);
        }
        let mut n = [0u8; 12];
        n[..NONCE_PREFIX].copy_from_slice(&self.prefix);
        n[NONCE_PREFIX..11].copy_from_slice(&self.counter.to_be_bytes());
        n[11] = u8::from(last);
        if last {
            self.finished = true;
        } else {
            self.counter = self.counter.checked_add(1).ok_or(StreamError)?;
        }
        Ok(Nonce::from(n))
    }

    /// Seals `plain` into `out` (made exactly as long): ciphertext then tag.
    pub(super) fn seal_into(
        &mut self,
        aad: &[u8],
        plain: &[u8],
        out: &mut Vec<u8>,
        last: bool,
    ) -> Result<(), StreamError> {
        let nonce = self.next_nonce(last)?;
        let n = plain.len();
        // Reused at the same length chunk after chunk: no zero-filling pass on the hot path.
        if out.len() != n + TAG {
            out.resize(n + TAG, 0);
        }
        let buf = InOutBuf::new(plain, &mut out[..n]).map_err(|_| StreamError)?;
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce, aad, buf)
            .map_err(|_| StreamError)?;
        out[n..].copy_from_slice(&tag);
        Ok(())
    }

    /// Seals `buf` (plaintext) in place and appends the tag.
    pub(super) fn seal_in_place(
        &mut self,
        aad: &[u8],
        buf: &mut Vec<u8>,
        last: bool,
    ) -> Result<(), StreamError> {
        let nonce = self.next_nonce(last)?;
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce, aad, buf.as_mut_slice().into())
            .map_err(|_| StreamError)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Opens `sealed` (ciphertext then tag) into `out[..sealed.len() - TAG]`; returns that
    /// length. On failure `out` holds nothing usable and the error must be passed on.
    pub(super) fn open_into(
        &mut self,
        aad: &[u8],
        sealed: &[u8],
        out: &mut [u8],
        last: bool,
    ) -> Result<usize, StreamError> {
        let n = sealed.len().checked_sub(TAG).ok_or(StreamError)?;
        let (ct, tag) = sealed.split_at(n);
        let tag = Tag::try_from(tag).map_err(|_| StreamError)?;
        let nonce = self.next_nonce(last)?;
        let buf = InOutBuf::new(ct, &mut out[..n]).map_err(|_| StreamError)?;
        self.aead
            .decrypt_inout_detached(&nonce, aad, buf, &tag)
            .map_err(|_| StreamError)?;
        Ok(n)
    }

    /// Opens `buf` (ciphertext then tag) in place, leaving the plaintext.
    pub(super) fn open_in_place(
        &mut self,
        aad: &[u8],
        buf: &mut Vec<u8>,
        last: bool,
    ) -> Result<(), StreamError> {
        let n = buf.len().checked_sub(TAG).ok_or(StreamError)?;
        let nonce = self.next_nonce(last)?;
        let tag = Tag::try_from(&buf[n..]).map_err(|_| StreamError)?;
        self.aead
            .decrypt_inout_detached(&nonce, aad, (&mut buf[..n]).into(), &tag)
            .map_err(|_| StreamError)?;
        buf.truncate(n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aead_stream::{DecryptorBE32, EncryptorBE32};

    /// Byte-for-byte the format of aead-stream's BE32 STREAM, both ways.
    #[test]
    fn same_format_as_aead_stream() {
        let key = [9u8; 32];
        let prefix = [3u8; NONCE_PREFIX];
        let chunks: [&[u8]; 3] = [b"eerste stuk", b"tweede", b""];
        let mut theirs = EncryptorBE32::<Aes256GcmSiv>::new((&key).into(), (&prefix).into());
        let mut ours = Stream::new(&key, &prefix);
        let mut sealed = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let last = i == chunks.len() - 1;
            let mut out = Vec::new();
            ours.seal_into(b"ctx", c, &mut out, last).unwrap();
            let expect = if last {
                std::mem::replace(
                    &mut theirs,
                    EncryptorBE32::new((&key).into(), (&prefix).into()),
                )
                .encrypt_last(aes_gcm_siv::aead::Payload {
                    msg: c,
                    aad: b"ctx",
                })
                .unwrap()
            } else {
                theirs
                    .encrypt_next(aes_gcm_siv::aead::Payload {
                        msg: c,
                        aad: b"ctx",
                    })
                    .unwrap()
            };
            assert_eq!(out, expect, "chunk {i}");
            sealed.push(out);
        }
        let mut dec = DecryptorBE32::<Aes256GcmSiv>::new((&key).into(), (&prefix).into());
        let mut mine = Stream::new(&key, &prefix);
        for (i, s) in sealed.iter().enumerate() {
            let last = i == sealed.len() - 1;
            let mut out = vec![0u8; s.len()];
            let n = mine.open_into(b"ctx", s, &mut out, last).unwrap();
            assert_eq!(&out[..n], chunks[i]);
            if !last {
                let p = dec
                    .decrypt_next(aes_gcm_siv::aead::Payload {
                        msg: s,
                        aad: b"ctx",
                    })
                    .unwrap();
                assert_eq!(p, chunks[i]);
            }
        }
    }

    #[test]
    fn altered_or_reordered_chunks_fail() {
        let key = [1u8; 32];
        let prefix = [2u8; NONCE_PREFIX];
        let mut s = Stream::new(&key, &prefix);
        let mut a = Vec::new();
        let mut b = Vec::new();
        s.seal_into(b"", b"een", &mut a, false).unwrap();
        s.seal_into(b"", b"twee", &mut b, true).unwrap();
        let mut o = Stream::new(&key, &prefix);
        let mut out = vec![0u8; 16];
        assert!(o.open_into(b"", &b, &mut out, false).is_err(), "reordered");
        let mut o = Stream::new(&key, &prefix);
        let mut bad = a.clone();
        bad[0] ^= 1;
        assert!(o.open_into(b"", &bad, &mut out, false).is_err(), "altered");
        let mut o = Stream::new(&key, &prefix);
        o.open_into(b"", &a, &mut out, false).unwrap();
        assert!(
            o.open_into(b"", &b, &mut out, false).is_err(),
            "last as next"
        );
    }
}
