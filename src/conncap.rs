//! Caps on open connections, in all and per client address, for the SMTP listener and the
//! portal: a [`Slot`] holds a place while its connection lives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

/// Open connections per client address and in all, under one lock.
pub struct Caps {
    total: usize,
    per_ip: usize,
    /// Reverse proxies: every client behind one shares its address, so only the total holds
    /// for them (the proxy limits its own clients).
    exempt: Vec<IpNet>,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// One counted connection; dropping it frees the place.
pub struct Slot {
    caps: Arc<Caps>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.caps.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = o.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                o.per_ip.remove(&self.ip);
            }
        }
        o.total -= 1;
    }
}

impl Caps {
    pub fn new(total: usize, per_ip: usize) -> Arc<Caps> {
        Self::with_exempt(total, per_ip, Vec::new())
    }

    /// Caps under which the addresses in `exempt` (trusted reverse proxies) are held only to
    /// the total.
    pub fn with_exempt(total: usize, per_ip: usize, exempt: Vec<IpNet>) -> Arc<Caps> {
        Arc::new(Caps {
            total,
            per_ip,
            exempt,
            open: Mutex::new(Open::default()),
        })
    }

    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let o = &mut *o;
        let n = o.per_ip.get(&ip).copied().unwrap_or(0);
        let per_ip = if self.exempt.iter().any(|net| net.contains(&ip)) {
            self.total
        } else {
            self.per_ip
        };
        if n >= per_ip || o.total >= self.total {
            return None;
        }
        *o.per_ip.entry(ip).or_insert(0) += 1;
        o.total += 1;
        Some(Slot {
            caps: self.clone(),
            ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_in_all() {
        let caps = Caps::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = caps.take(a).unwrap();
        let _s2 = caps.take(a).unwrap();
        assert!(caps.take(a).is_none(), "per address");
        let _s3 = caps.take(b).unwrap();
        assert!(caps.take(b).is_none(), "in all");
        drop(s1);
        let _s4 = caps.take(b).expect("a place came free");
        assert!(caps.take(a).is_none());
    }

    #[test]
    fn a_trusted_proxy_is_held_only_to_the_total() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        let caps = Caps::with_exempt(4, 1, vec!["10.0.0.0/8".parse().unwrap()]);
        let held: Vec<Slot> = (0..3).map(|_| caps.take(proxy).expect("proxy")).collect();
        let _o = caps.take(other).expect("the last place");
        assert!(caps.take(proxy).is_none(), "the total still holds");
        drop(held);
        assert!(caps.take(other).is_none(), "others keep their own cap");
    }
}
