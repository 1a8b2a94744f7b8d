//! Destination hashing (`ip_vs_dh.c`).
//!
//! A 256-bucket table maps `hash_32(daddr, 8)` (daddr in host order) to a server. The table is
//! filled round-robin over the server list, one bucket per server in turn, weight ignored and
//! weight-0 servers included (`ip_vs_dh_reassign`): bucket i holds server i mod n. A pick reads
//! the bucket and returns its server only if it has weight > 0 and is not overloaded; otherwise
//! there is no server (no rehash), as in `ip_vs_dh_schedule`.
//!
//! daddr is the packet's destination: for a plain virtual service that is always the VIP, so
//! every client lands on one server; dh is meant for firewall-mark services in front of caches.
//! The table depends only on the number of servers; the kernel rebuilds it on add/del only.

use super::{DestLoad, SchedInput, hash_32};

/// Bits of the bucket index (`CONFIG_IP_VS_DH_TAB_BITS`).
const TAB_BITS: u32 = 8;
/// Buckets in the table.
const TAB_SIZE: usize = 1 << TAB_BITS;
/// An empty bucket (no servers).
const NONE: u32 = u32::MAX;

/// Destination-hashing state: the bucket table (server index per bucket).
#[derive(Debug, Clone)]
pub struct DestinationHashing {
    buckets: Box<[u32; TAB_SIZE]>,
}

impl DestinationHashing {
    /// Builds the table for `dests` (`ip_vs_dh_init_svc`).
    pub fn new(dests: &[DestLoad]) -> Self {
        let mut s = Self {
            buckets: Box::new([NONE; TAB_SIZE]),
        };
        s.update(dests);
        s
    }

    /// Refills the table (`ip_vs_dh_reassign`): bucket i → server i mod n.
    pub fn update(&mut self, dests: &[DestLoad]) {
        let n = dests.len();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            *b = if n == 0 { NONE } else { (i % n) as u32 };
        }
    }

    /// The bucket a destination address falls in.
    #[inline]
    fn bucket(daddr: u32) -> usize {
        hash_32(daddr, TAB_BITS) as usize
    }

    /// Picks the server of the destination address's bucket, if it is available
    /// (`ip_vs_dh_schedule`).
    #[inline]
    pub fn pick(&self, dests: &[DestLoad], input: &SchedInput) -> Option<usize> {
        let idx = self.buckets[Self::bucket(u32::from(input.daddr))] as usize;
        dests
            .get(idx)
            .is_some_and(DestLoad::available)
            .then_some(idx)
    }

    /// The table, for tests: server index per bucket.
    #[cfg(test)]
    fn map(&self) -> Vec<Option<usize>> {
        self.buckets
            .iter()
            .map(|&b| (b != NONE).then_some(b as usize))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn dests(weights: &[u32]) -> Vec<DestLoad> {
        weights.iter().map(|&w| DestLoad::with_weight(w)).collect()
    }

    fn to(daddr: Ipv4Addr) -> SchedInput {
        SchedInput {
            saddr: Ipv4Addr::new(192, 0, 2, 1),
            daddr,
            sport: 1234,
            dport: 80,
            now: 0,
        }
    }

    #[test]
    fn buckets_fill_round_robin_ignoring_weight() {
        let d = dests(&[1, 2, 1]);
        let map = DestinationHashing::new(&d).map();
        assert_eq!(&map[..7], &[0, 1, 2, 0, 1, 2, 0].map(Some));
        assert_eq!(map[255], Some(0), "255 mod 3");
        // Weight 0 still takes its turn.
        let map = DestinationHashing::new(&dests(&[1, 0])).map();
        assert_eq!(&map[..4], &[0, 1, 0, 1].map(Some));
        assert!(
            DestinationHashing::new(&[])
                .map()
                .iter()
                .all(Option::is_none)
        );
    }

    /// Bucket numbers worked out by hand from hash_32 (see `super::tests`): 10.0.0.1 → 0x27 = 39,
    /// 0.0.0.1 → 0x61 = 97.
    #[test]
    fn hand_computed_picks() {
        let d = dests(&[1, 2, 1]);
        let s = DestinationHashing::new(&d);
        assert_eq!(DestinationHashing::bucket(0x0A00_0001), 39);
        assert_eq!(DestinationHashing::bucket(1), 97);
        assert_eq!(
            s.pick(&d, &to(Ipv4Addr::new(10, 0, 0, 1))),
            Some(0),
            "39 mod 3"
        );
        assert_eq!(
            s.pick(&d, &to(Ipv4Addr::new(0, 0, 0, 1))),
            Some(1),
            "97 mod 3"
        );
    }

    #[test]
    fn the_source_does_not_matter() {
        let d = dests(&[1, 1, 1, 1]);
        let s = DestinationHashing::new(&d);
        let mut input = to(Ipv4Addr::new(10, 0, 0, 100));
        let first = s.pick(&d, &input);
        for i in 0..50u8 {
            input.saddr = Ipv4Addr::new(198, 51, 100, i);
            input.sport = u16::from(i) * 1000;
            assert_eq!(s.pick(&d, &input), first);
        }
    }

    #[test]
    fn an_unavailable_bucket_server_means_no_server() {
        let mut d = dests(&[1, 2, 1]);
        let s = DestinationHashing::new(&d);
        let input = to(Ipv4Addr::new(10, 0, 0, 1)); // bucket 39 → server 0
        d[0].weight = 0;
        assert_eq!(s.pick(&d, &input), None, "quiesced: no rehash");
        d[0].weight = 1;
        d[0].overloaded = true;
        assert_eq!(s.pick(&d, &input), None, "overloaded: no rehash");
        assert_eq!(s.pick(&[], &input), None, "stale table, no servers");
    }

    /// Frozen table for servers with weights 1,2,3,1: the full bucket map and the server of 20
    /// fixed destination addresses. A change here reshuffles clients: it must be deliberate.
    #[test]
    fn frozen_table() {
        let d = dests(&[1, 2, 3, 1]);
        let s = DestinationHashing::new(&d);
        let map: String = s
            .map()
            .iter()
            .map(|b| (b'A' + b.unwrap() as u8) as char)
            .collect();
        assert_eq!(map, "ABCD".repeat(64));
        let picks: String = super::super::FROZEN_ADDRS
            .iter()
            .map(|&a| (b'A' + s.pick(&d, &to(a)).unwrap() as u8) as char)
            .collect();
        assert_eq!(picks, FROZEN_PICKS);
    }

    const FROZEN_PICKS: &str = "DBDDCBCDBABDDDBCADAB";
}
