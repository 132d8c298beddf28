//! The plaintext of messages just accepted, kept in memory for the relay's first look, so that
//! it need not read back and unseal from disk what the SMTP side handed over a moment before.
//! Bounded in total and per message; an entry goes when its message leaves the queue, or the
//! oldest goes when a newer one needs the room. Memory only: nothing here reaches the disk.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Larger messages are read back from the queue when they are needed.
pub const MAX_ENTRY: usize = 4 << 20;
/// All entries together.
const BUDGET: usize = 64 << 20;

#[derive(Default)]
pub struct Fresh {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Arc<Vec<u8>>>,
    /// Insertion order, for eviction; may name entries already removed.
    order: VecDeque<String>,
    bytes: usize,
}

impl Fresh {
    pub fn insert(&self, id: &str, bytes: Arc<Vec<u8>>) {
        if bytes.len() > MAX_ENTRY {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while g.bytes + bytes.len() > BUDGET {
            let Some(old) = g.order.pop_front() else {
                break;
            };
            if let Some(b) = g.map.remove(&old) {
                g.bytes -= b.len();
            }
        }
        g.bytes += bytes.len();
        g.order.push_back(id.to_string());
        if let Some(b) = g.map.insert(id.to_string(), bytes) {
            g.bytes -= b.len();
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<Vec<u8>>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.map.get(id).cloned()
    }

    pub fn remove(&self, id: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let gone = g.map.remove(id);
        if let Some(b) = &gone {
            g.bytes -= b.len();
        }
        // Keep the order list from growing with ids that left long ago.
        if g.map.is_empty() {
            g.order.clear();
        } else if g.order.len() > 4 * g.map.len() + 64 {
            let Inner { map, order, .. } = &mut *g;
            order.retain(|k| map.contains_key(k));
        }
        drop(g);
        // Nobody else reads it any more (the relay is done with the message): reuse it.
        if let Some(v) = gone.and_then(|b| Arc::try_unwrap(b).ok()) {
            super::pool::give(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_oldest_first() {
        let f = Fresh::default();
        let mib = |n: usize| Arc::new(vec![0u8; n << 20]);
        f.insert("too-big", Arc::new(vec![0u8; MAX_ENTRY + 1]));
        assert!(f.get("too-big").is_none());
        for i in 0..16 {
            f.insert(&format!("m{i}"), mib(4));
        }
        assert!(f.get("m0").is_some());
        f.insert("m16", mib(4));
        assert!(f.get("m0").is_none(), "the oldest made room");
        assert!(f.get("m1").is_some() && f.get("m16").is_some());
        f.remove("m1");
        assert!(f.get("m1").is_none());
        f.insert("m17", mib(4));
        assert!(
            f.get("m2").is_some(),
            "the removed entry's room was used first"
        );
        let g = f.inner.lock().unwrap();
        assert_eq!(g.bytes, g.map.values().map(|b| b.len()).sum::<usize>());
        assert!(g.bytes <= BUDGET);
    }
}
