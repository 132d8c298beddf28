//! `sluis key rotate` on a running server: a new master key for everything written from now on,
//! and every stored data key re-wrapped with it, so the old key can then be retired.

use super::Relay;

impl Relay {
    /// Rotates the master key: appends a new key to the key file, hands the new keyring to the
    /// queue and the message store, and re-wraps every data key. Returns the new key id and how
    /// many data keys were re-wrapped.
    pub async fn rotate_keys(&self) -> Result<(u32, usize), String> {
        let path = crate::serve::key_file(&self.cfg)?;
        let mut ring = (*self.store.keys()).clone();
        let id = ring.rotate(&path).map_err(|e| e.to_string())?;
        let ring = std::sync::Arc::new(ring);
        self.store.set_keys(ring.clone());
        let meta = self.protector.store.meta.clone();
        meta.set_keys(ring);
        let n = tokio::task::spawn_blocking(move || {
            let n = meta.rewrap_all()?;
            meta.flush()?;
            Ok::<_, crate::store::StoreError>(n)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        tracing::info!(key = id, rewrapped = n, "master key rotated");
        Ok((id, n))
    }
}
