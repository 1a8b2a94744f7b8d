//! Locality-based least connection (`ip_vs_lblc.c`).
//!
//! A cache maps each destination address to the server last chosen for it. A pick looks the
//! address up and refreshes the entry's last use; the cached server is reused when it is still
//! in the list, has weight > 0 and is not "overloaded" in lblc's own sense (`is_overloaded`:
//! its active connections exceed its weight while some server in the list has
//! 2·active < weight). Note that the kernel does not test the IP_VS_DEST_F_OVERLOAD threshold
//! flag here, so a cached server past its upper threshold keeps its destinations; the flag only
//! matters when a new server is chosen. Otherwise the pick is wlc's (`__ip_vs_lblc_schedule`, the
//! same loop as `ip_vs_wlc_schedule`) and the entry is created or repointed to it
//! (`ip_vs_lblc_new`). No server → no entry change.
//!
//! Ageing: see [`super::locality`] — entries idle 24 h go at the half-hourly full check,
//! entries idle 6 min go while the table holds more than 16384 entries. Driven by
//! [`LocalityBasedLeastConnection::gc`]; `pick` never sweeps.

use super::locality::{Cache, DEFAULT_EXPIRATION};
use super::{DestLoad, SchedInput, weighted_least};

/// Locality-based least-connection state: the destination-address cache.
#[derive(Debug, Clone)]
pub struct LocalityBasedLeastConnection {
    /// Destination address → server index.
    cache: Cache<u32>,
}

impl Default for LocalityBasedLeastConnection {
    fn default() -> Self {
        Self::new()
    }
}

/// lblc/lblcr's `is_overloaded`: `dest` has more active connections than its weight while some
/// server (any in the list) has fewer than half its weight.
#[inline]
pub(super) fn locally_overloaded(dest: &DestLoad, dests: &[DestLoad]) -> bool {
    dest.active > dest.weight
        && dests
            .iter()
            .any(|d| u64::from(d.active) * 2 < u64::from(d.weight))
}

impl LocalityBasedLeastConnection {
    /// An empty cache (`ip_vs_lblc_init_svc`); its storage is reserved here.
    pub fn new() -> Self {
        Self {
            cache: Cache::new(),
        }
    }

    /// The server list changed: forget entries pointing past its end (the kernel would find
    /// such a server unavailable and reschedule).
    pub fn update(&mut self, dests: &[DestLoad]) {
        let n = dests.len();
        self.cache.retain(|&mut d| (d as usize) < n);
    }

    /// Ages the cache (the kernel's periodic timer; see the module docs).
    pub fn gc(&mut self, now: u32) {
        self.cache.gc(now, DEFAULT_EXPIRATION, |_| {});
    }

    /// Picks the cached server of the destination address or a new wlc choice
    /// (`ip_vs_lblc_schedule`). Bounded: one chain walk and two passes over the list.
    #[inline]
    pub fn pick(&mut self, dests: &[DestLoad], input: &SchedInput) -> Option<usize> {
        let addr = u32::from(input.daddr);
        let found = self.cache.find(addr);
        if let Some(id) = found {
            let slot = self.cache.slot_mut(id);
            slot.lastuse = input.now;
            let idx = slot.val as usize;
            if dests
                .get(idx)
                .is_some_and(|d| d.weight > 0 && !locally_overloaded(d, dests))
            {
                return Some(idx);
            }
        }

        let dest = weighted_least(dests, DestLoad::overhead)?;
        match found {
            // ip_vs_lblc_new on an existing entry: repoint it (the kernel replaces the entry,
            // which also stamps its last use).
            Some(id) => {
                let slot = self.cache.slot_mut(id);
                if slot.val as usize != dest {
                    slot.val = dest as u32;
                    slot.lastuse = input.now;
                }
            }
            // A full pool just means this destination is not cached.
            None => {
                let _ = self.cache.insert(addr, input.now, dest as u32);
            }
        }
        Some(dest)
    }

    /// The cached server of a destination address, for tests.
    #[cfg(test)]
    fn cached(&self, daddr: std::net::Ipv4Addr) -> Option<usize> {
        self.cache
            .find(u32::from(daddr))
            .map(|id| self.cache.slot(id).val as usize)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::super::locality::{CAPACITY, MAX_SIZE};
    use super::*;

    use super::super::d;

    fn to(daddr: Ipv4Addr, now: u32) -> SchedInput {
        SchedInput {
            saddr: Ipv4Addr::new(192, 0, 2, 1),
            daddr,
            sport: 1234,
            dport: 80,
            now,
        }
    }

    const X: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
    const Y: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);

    #[test]
    fn first_pick_is_wlc_then_the_server_is_reused() {
        let mut dests = [d(1, 0, 0), d(1, 0, 0), d(2, 0, 0)];
        let mut s = LocalityBasedLeastConnection::new();
        assert_eq!(
            s.pick(&dests, &to(X, 0)),
            Some(0),
            "wlc over idle servers: the first"
        );
        assert_eq!(s.cached(X), Some(0));
        // Server 0 is now the most loaded by wlc's measure, but not overloaded in lblc's sense
        // (active 1 ≤ weight 1): the destination stays.
        dests[0].active = 1;
        dests[0].inactive = 50;
        assert_eq!(s.pick(&dests, &to(X, 1)), Some(0));
        // Another destination gets its own wlc pick.
        assert_eq!(s.pick(&dests, &to(Y, 2)), Some(1));
        assert_eq!(s.cached(Y), Some(1));
    }

    #[test]
    fn lblc_overload_moves_the_destination() {
        let mut dests = [d(1, 0, 0), d(4, 0, 0)];
        let mut s = LocalityBasedLeastConnection::new();
        assert_eq!(s.pick(&dests, &to(X, 0)), Some(0));
        // 2 active > weight 1, but no server has 2·active < weight (2·2 = 4): kept.
        dests[0].active = 2;
        dests[1].active = 2;
        assert_eq!(s.pick(&dests, &to(X, 1)), Some(0));
        // Server 1 drops to 1 active (2 < 4): server 0 is overloaded, wlc picks again.
        dests[1].active = 1;
        assert_eq!(s.pick(&dests, &to(X, 2)), Some(1));
        assert_eq!(s.cached(X), Some(1), "the entry follows");
    }

    #[test]
    fn quiesced_or_removed_servers_are_replaced() {
        let mut dests = vec![d(1, 0, 0), d(1, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnection::new();
        assert_eq!(s.pick(&dests, &to(X, 0)), Some(0));
        dests[0].weight = 0;
        assert_eq!(s.pick(&dests, &to(X, 1)), Some(1));
        assert_eq!(s.pick(&dests, &to(Y, 1)), Some(1));
        dests.truncate(1);
        dests[0].weight = 1;
        s.update(&dests);
        assert_eq!(s.cached(X), None, "pointed past the new list");
        assert_eq!(s.pick(&dests, &to(X, 2)), Some(0));
    }

    /// The kernel's lblc reuse test does not look at IP_VS_DEST_F_OVERLOAD.
    #[test]
    fn the_threshold_flag_does_not_evict_a_cached_server() {
        let mut dests = [d(1, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnection::new();
        assert_eq!(s.pick(&dests, &to(X, 0)), Some(0));
        dests[0].overloaded = true;
        assert_eq!(s.pick(&dests, &to(X, 1)), Some(0), "cached: reused");
        assert_eq!(
            s.pick(&dests, &to(Y, 1)),
            Some(1),
            "new destination: flag respected"
        );
        dests[1].overloaded = true;
        assert_eq!(s.pick(&dests, &to(Y, 2)), Some(1), "cached now, reused");
        let z = Ipv4Addr::new(10, 0, 0, 102);
        assert_eq!(
            s.pick(&dests, &to(z, 2)),
            None,
            "no eligible server for a new one"
        );
        assert_eq!(s.cached(z), None);
    }

    #[test]
    fn no_server_leaves_the_entry_alone() {
        let mut dests = [d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnection::new();
        assert_eq!(s.pick(&dests, &to(X, 0)), Some(0));
        dests[0].weight = 0;
        assert_eq!(s.pick(&dests, &to(X, 1)), None);
        assert_eq!(s.cached(X), Some(0));
        assert_eq!(s.pick(&[], &to(X, 1)), None);
    }

    #[test]
    fn entries_expire_after_a_day_idle() {
        let dests = [d(1, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnection::new();
        s.gc(0); // arms the timer
        assert_eq!(s.pick(&dests, &to(X, 0)), Some(0));
        assert_eq!(s.pick(&dests, &to(Y, 0)), Some(0));
        let mut t = 60;
        while t < 86_400 {
            s.gc(t);
            if t == 43_200 {
                s.pick(&dests, &to(Y, t)); // Y is used at noon
            }
            t += 60;
        }
        assert_eq!(s.cached(X), Some(0), "idle 23 h 59 min: kept");
        s.gc(86_400); // the 1440th run is a full check
        assert_eq!(s.cached(X), None, "idle 24 h: gone");
        assert_eq!(s.cached(Y), Some(0), "used 12 h ago: kept");
    }

    #[test]
    fn under_pressure_idle_entries_expire_after_six_minutes() {
        let dests = [d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnection::new();
        s.gc(0);
        for i in 0..(MAX_SIZE as u32 + 1000) {
            s.pick(&dests, &to(Ipv4Addr::from(0xC000_0000 + i), 0));
        }
        s.pick(&dests, &to(X, 300));
        assert_eq!(s.cache.len(), MAX_SIZE + 1001);
        s.gc(60);
        s.gc(120);
        s.gc(180);
        s.gc(240);
        s.gc(300);
        assert_eq!(s.cache.len(), MAX_SIZE + 1001, "nothing idle 6 min yet");
        s.gc(360);
        assert!(s.cache.len() <= MAX_SIZE + 1001 - 1000 * 4 / 3);
        assert_eq!(s.cached(X), Some(0), "used 60 s ago");
    }

    #[test]
    fn a_full_cache_still_schedules() {
        let dests = [d(1, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnection::new();
        for i in 0..CAPACITY as u32 {
            s.pick(&dests, &to(Ipv4Addr::from(0xC000_0000 + i), 0));
        }
        assert_eq!(s.cache.len(), CAPACITY);
        assert_eq!(s.pick(&dests, &to(X, 0)), Some(0));
        assert_eq!(
            s.cached(X),
            None,
            "not cached, as on a failed kernel allocation"
        );
    }

    /// Frozen: the 20 fixed destinations scheduled in turn over servers with weights 1,2,3,1
    /// (each pick adds an active connection), then each looked up again.
    #[test]
    fn frozen_sequence() {
        let mut dests = [d(1, 0, 0), d(2, 0, 0), d(3, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnection::new();
        let mut first = String::new();
        for &a in &super::super::FROZEN_ADDRS {
            let i = s.pick(&dests, &to(a, 0)).unwrap();
            dests[i].active += 1;
            first.push((b'A' + i as u8) as char);
        }
        let again: String = super::super::FROZEN_ADDRS
            .iter()
            .map(|&a| (b'A' + s.pick(&dests, &to(a, 1)).unwrap() as u8) as char)
            .collect();
        assert_eq!(first, "ABCDCBCABCDCBCABCDCB");
        assert_eq!(
            again, first,
            "nobody has 2·active < weight: every entry is reused"
        );
    }
}
