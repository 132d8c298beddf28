//! Buffers of messages that just went through the queue, kept for the next ones: a buffer that
//! grows to a few MiB while a message arrives is then not grown (and copied) again for every
//! message. Bounded in number and size, so little memory stays behind after a burst.

use std::sync::Mutex;

const KEEP: usize = 6;
/// Buffers larger than this are freed, not kept.
const MAX_CAPACITY: usize = 5 << 20;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer with room for at least `min` bytes: a kept one when there is one.
pub fn take(min: usize) -> Vec<u8> {
    let kept = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    match kept {
        Some(mut v) => {
            v.clear();
            v.reserve(min);
            v
        }
        None => Vec::with_capacity(min),
    }
}

/// Hands a buffer back for reuse.
pub fn give(v: Vec<u8>) {
    if v.capacity() < (64 << 10) || v.capacity() > MAX_CAPACITY {
        return;
    }
    let mut p = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if p.len() < KEEP {
        p.push(v);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reuses_and_bounds() {
        super::give(Vec::with_capacity(1 << 20));
        let v = super::take(10);
        assert!(v.is_empty() && v.capacity() >= 10);
        for _ in 0..20 {
            super::give(Vec::with_capacity(1 << 20));
        }
        assert!(super::POOL.lock().unwrap().len() <= super::KEEP);
        super::give(Vec::with_capacity(64 << 20));
        assert!(
            super::POOL
                .lock()
                .unwrap()
                .iter()
                .all(|b| b.capacity() <= super::MAX_CAPACITY)
        );
    }
}
