//! Which worker owns a NAT connection's reply tuple, for replies that land on another worker.
//!
//! RSS (or af_packet's fanout) spreads packets by their own tuple, so the real server's reply
//! to a NAT connection may arrive on a worker that does not own the connection. FullNAT needs no
//! table for that (the owner is in the local port: `lport % workers`), plain NAT does: the
//! owner publishes (reply tuple → worker) here when it creates the connection and withdraws it
//! when the connection goes; a worker that misses looks the tuple up and hands the packet over
//! through the owner's ring. Lock-free: each slot is one `AtomicU64` (a 48-bit tag of the tuple
//! and the owner), claimed and released with compare-and-swap; readers never wait. A full bucket
//! means no redirect for that tuple (its replies landing elsewhere are dropped and counted).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::flow::FlowKey;

const WAYS: usize = 8;

/// The shared reply-tuple → owner table.
#[derive(Debug)]
pub struct Redirect {
    slots: Box<[AtomicU64]>,
    mask: usize,
}

#[inline]
fn hash(k: &FlowKey) -> u64 {
    let mut z = (u64::from(k.saddr) << 32 | u64::from(k.daddr))
        ^ (u64::from(k.sport) << 48 | u64::from(k.dport) << 32 | u64::from(k.proto))
            .rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Redirect {
    /// A table for about `capacity` tuples.
    pub fn new(capacity: usize) -> Redirect {
        let slots = (capacity * 2).max(WAYS).next_power_of_two();
        Redirect {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            mask: slots / WAYS - 1,
        }
    }

    #[inline]
    fn locate(&self, k: &FlowKey) -> (usize, u64) {
        let h = hash(k);
        // 48-bit tag, never 0.
        let tag = (h >> 16) | 1;
        ((h as usize & self.mask) * WAYS, tag << 16)
    }

    /// Publishes `owner` for `key`; false when the bucket is full.
    pub fn insert(&self, key: &FlowKey, owner: u16) -> bool {
        let (b, tag) = self.locate(key);
        let v = tag | u64::from(owner);
        for s in &self.slots[b..b + WAYS] {
            if s.compare_exchange(0, v, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return true;
            }
        }
        false
    }

    /// Withdraws `owner`'s entry for `key`.
    pub fn remove(&self, key: &FlowKey, owner: u16) {
        let (b, tag) = self.locate(key);
        let v = tag | u64::from(owner);
        for s in &self.slots[b..b + WAYS] {
            if s.compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// The owner published for `key`, if any.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<u16> {
        let (b, tag) = self.locate(key);
        self.slots[b..b + WAYS].iter().find_map(|s| {
            let v = s.load(Ordering::Acquire);
            (v & !0xffff == tag).then_some(v as u16)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            proto: 6,
            saddr: 0x0aca_000b,
            daddr: 0x0ac9_0002 + i,
            sport: 8080,
            dport: (40000 + i) as u16,
        }
    }

    #[test]
    fn publish_find_withdraw() {
        let r = Redirect::new(1024);
        for i in 0..500 {
            assert!(r.insert(&key(i), (i % 3) as u16));
        }
        for i in 0..500 {
            assert_eq!(r.lookup(&key(i)), Some((i % 3) as u16));
        }
        assert_eq!(r.lookup(&key(9999)), None);
        r.remove(&key(7), 0); // wrong owner: stays
        assert_eq!(r.lookup(&key(7)), Some(1));
        r.remove(&key(7), 1);
        assert_eq!(r.lookup(&key(7)), None);
    }

    #[test]
    fn concurrent_owners_never_see_each_others_entries() {
        let r = Arc::new(Redirect::new(1 << 14));
        let handles: Vec<_> = (0..4u16)
            .map(|w| {
                let r = Arc::clone(&r);
                std::thread::spawn(move || {
                    for round in 0..20 {
                        for i in 0..1000u32 {
                            let k = key(u32::from(w) * 100_000 + i);
                            assert!(r.insert(&k, w));
                            assert_eq!(r.lookup(&k), Some(w), "round {round}");
                        }
                        for i in 0..1000u32 {
                            r.remove(&key(u32::from(w) * 100_000 + i), w);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(r.slots.iter().all(|s| s.load(Ordering::Relaxed) == 0));
    }
}
