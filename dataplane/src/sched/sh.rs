//! Source hashing (`ip_vs_sh.c`).
//!
//! A 256-bucket table maps `hash_32(saddr [+ sport], 8)` to a server. `ip_vs_sh_reassign` fills
//! the buckets in order walking the server list circularly, each server taking `weight`
//! consecutive buckets; a weight-0 server still takes one (the kernel moves on once
//! `++count >= weight`). So weights 1,2,1 give A B B C A B B C …, and the walk simply continues
//! across the 256 buckets (the pattern need not divide 256). The table is rebuilt whenever a
//! server is added, removed or edited (`add_dest`/`del_dest`/`upd_dest`), so a weight change
//! reshuffles clients exactly as on Linux.
//!
//! Key (`ip_vs_sh_hashkey`): the source address in host order, plus the source port in host
//! order with flag `sh-port` (`hash_32(ntohs(port) + ntohl(addr), 8)`, u32 wrapping add; the
//! port is 0 for protocols without ports).
//!
//! A bucket's server is used only if it has weight > 0 and is not overloaded
//! (`is_unavailable`); otherwise there is no server, unless flag `sh-fallback` is set:
//! `ip_vs_sh_get_fallback` then probes, for offset = 0..255, bucket
//! `(((offset + h) mod 256) + h) mod 256` where h is the original bucket — note h is added
//! twice, so the probe starts at 2h, not h + 1 — and takes the first available server.

use super::{DestLoad, SchedInput, hash_32};

/// Bits of the bucket index (`CONFIG_IP_VS_SH_TAB_BITS`).
const TAB_BITS: u32 = 8;
/// Buckets in the table.
const TAB_SIZE: usize = 1 << TAB_BITS;
/// `IP_VS_SH_TAB_MASK`.
const TAB_MASK: usize = TAB_SIZE - 1;
/// An empty bucket (no servers).
const NONE: u32 = u32::MAX;

/// Source-hashing state: the bucket table and the service's sh flags.
#[derive(Debug, Clone)]
pub struct SourceHashing {
    buckets: Box<[u32; TAB_SIZE]>,
    /// `sh-port`: hash the source port too.
    port: bool,
    /// `sh-fallback`: probe other buckets when the hashed server is unavailable.
    fallback: bool,
}

impl SourceHashing {
    /// Builds the table for `dests` with the service's flags (`ip_vs_sh_init_svc`).
    pub fn new(dests: &[DestLoad], port: bool, fallback: bool) -> Self {
        let mut s = Self {
            buckets: Box::new([NONE; TAB_SIZE]),
            port,
            fallback,
        };
        s.update(dests);
        s
    }

    /// Refills the table (`ip_vs_sh_reassign`).
    pub fn update(&mut self, dests: &[DestLoad]) {
        if dests.is_empty() {
            self.buckets.fill(NONE);
            return;
        }
        let mut p = 0usize;
        let mut count = 0u32;
        for b in self.buckets.iter_mut() {
            *b = p as u32;
            count += 1;
            if count >= dests[p].weight {
                p = (p + 1) % dests.len();
                count = 0;
            }
        }
    }

    /// The bucket of a key with an offset (`ip_vs_sh_hashkey`).
    #[inline]
    fn bucket(saddr: u32, port: u16, offset: usize) -> usize {
        (offset + hash_32(saddr.wrapping_add(u32::from(port)), TAB_BITS) as usize) & TAB_MASK
    }

    /// Picks the server of the client's bucket (`ip_vs_sh_schedule`); with `sh-fallback`, the
    /// first available server along the kernel's probe sequence. At most 257 table reads.
    #[inline]
    pub fn pick(&self, dests: &[DestLoad], input: &SchedInput) -> Option<usize> {
        let saddr = u32::from(input.saddr);
        let port = if self.port { input.sport } else { 0 };
        let available = |idx: u32| dests.get(idx as usize).is_some_and(DestLoad::available);

        let ihash = Self::bucket(saddr, port, 0);
        let first = self.buckets[ihash];
        if first == NONE {
            return None;
        }
        if available(first) {
            return Some(first as usize);
        }
        if !self.fallback {
            return None;
        }
        for offset in 0..TAB_SIZE {
            let roffset = (offset + ihash) % TAB_SIZE;
            let idx = self.buckets[Self::bucket(saddr, port, roffset)];
            if idx == NONE {
                break;
            }
            if available(idx) {
                return Some(idx as usize);
            }
        }
        None
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

    fn from(saddr: Ipv4Addr, sport: u16) -> SchedInput {
        SchedInput {
            saddr,
            daddr: Ipv4Addr::new(10, 0, 0, 100),
            sport,
            dport: 80,
            now: 0,
        }
    }

    fn letters(map: &[Option<usize>]) -> String {
        map.iter()
            .map(|b| b.map_or('-', |i| (b'A' + i as u8) as char))
            .collect()
    }

    #[test]
    fn each_server_fills_weight_consecutive_buckets() {
        let map = letters(&SourceHashing::new(&dests(&[1, 2, 1]), false, false).map());
        assert_eq!(map, "ABBC".repeat(64));
        // Weight 0 takes one bucket, like weight 1.
        let map = letters(&SourceHashing::new(&dests(&[2, 0, 1]), false, false).map());
        assert_eq!(&map[..8], "AABCAABC");
        // The walk continues across the table: 7 does not divide 256.
        let map = letters(&SourceHashing::new(&dests(&[3, 4]), false, false).map());
        assert_eq!(&map[..14], "AAABBBBAAABBBB");
        assert_eq!(&map[252..], "AAAB", "256 = 36·7 + 4");
        // A weight above 256 keeps the first server in every bucket.
        let map = letters(&SourceHashing::new(&dests(&[300, 1]), false, false).map());
        assert_eq!(map, "A".repeat(256));
        let map = letters(&SourceHashing::new(&[], false, false).map());
        assert_eq!(map, "-".repeat(256));
    }

    /// Buckets worked out by hand from hash_32 (see `super::super::tests`): 10.0.0.1 → 39,
    /// 0.0.0.1 → 97, and with sh-port 10.0.0.1:1 → key 0x0A000002, product 0x27C88647 +
    /// 0x61C88647 = 0x89910C8E → 0x89 = 137.
    #[test]
    fn hand_computed_picks() {
        let d = dests(&[1, 2, 1]); // ABBC…
        assert_eq!(SourceHashing::bucket(0x0A00_0001, 0, 0), 39);
        assert_eq!(SourceHashing::bucket(1, 0, 0), 97);
        assert_eq!(SourceHashing::bucket(0x0A00_0001, 1, 0), 137);
        let s = SourceHashing::new(&d, false, false);
        let c = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(s.pick(&d, &from(c, 1)), Some(2), "39 mod 4 = 3 → C");
        assert_eq!(
            s.pick(&d, &from(Ipv4Addr::new(0, 0, 0, 1), 1)),
            Some(1),
            "97 mod 4 = 1 → B"
        );
        let p = SourceHashing::new(&d, true, false);
        assert_eq!(p.pick(&d, &from(c, 1)), Some(1), "137 mod 4 = 1 → B");
        assert_eq!(
            p.pick(&d, &from(c, 0)),
            Some(2),
            "port 0 hashes like no port"
        );
    }

    #[test]
    fn the_port_matters_only_with_sh_port() {
        let d = dests(&[1, 1, 1, 1, 1]);
        let plain = SourceHashing::new(&d, false, false);
        let c = Ipv4Addr::new(198, 51, 100, 9);
        let first = plain.pick(&d, &from(c, 1000));
        assert!((1000..1100).all(|p| plain.pick(&d, &from(c, p)) == first));
        let port = SourceHashing::new(&d, true, false);
        let spread: std::collections::BTreeSet<_> =
            (1000..1100).map(|p| port.pick(&d, &from(c, p))).collect();
        assert_eq!(spread.len(), 5, "ports spread one client over every server");
    }

    #[test]
    fn unavailable_means_no_server_without_fallback() {
        let mut d = dests(&[1, 2, 1]);
        let s = SourceHashing::new(&d, false, false);
        let c = from(Ipv4Addr::new(10, 0, 0, 1), 0); // bucket 39 → C
        d[2].overloaded = true;
        assert_eq!(s.pick(&d, &c), None);
        d[2].overloaded = false;
        d[2].weight = 0; // the table is stale until update(), and C is quiesced anyway
        assert_eq!(s.pick(&d, &c), None);
    }

    /// The kernel's probe order: bucket (offset + 2h) mod 256 for offset 0, 1, 2 …
    #[test]
    fn fallback_probes_from_twice_the_hash() {
        let mut d = dests(&[1, 2, 1]); // ABBC…
        let s = SourceHashing::new(&d, false, true);
        let c = from(Ipv4Addr::new(10, 0, 0, 1), 0); // h = 39 → C
        assert_eq!(s.pick(&d, &c), Some(2), "available: no probing");
        d[2].overloaded = true;
        // offset 0 → bucket 78 (78 mod 4 = 2 → B).
        assert_eq!(s.pick(&d, &c), Some(1));
        d[1].overloaded = true;
        // 78 → B, 79 → C, 80 → A.
        assert_eq!(s.pick(&d, &c), Some(0));
        d[0].weight = 0;
        assert_eq!(s.pick(&d, &c), None, "nothing available anywhere");
        assert_eq!(s.pick(&[], &c), None);
        let empty = SourceHashing::new(&[], false, true);
        assert_eq!(empty.pick(&[], &c), None);
    }

    #[test]
    fn update_reshuffles_on_weight_change_like_the_kernel() {
        let mut d = dests(&[1, 2, 1]);
        let mut s = SourceHashing::new(&d, false, false);
        d[1].weight = 0; // quiescing B rebuilds the table (upd_dest): A B C A B C …
        s.update(&d);
        assert_eq!(&letters(&s.map())[..6], "ABCABC");
        let c = from(Ipv4Addr::new(10, 0, 0, 1), 0); // 39 mod 3 = 0 → A
        assert_eq!(s.pick(&d, &c), Some(0));
    }

    /// Frozen table for servers with weights 1,2,3,1: the full bucket map and the server of 20
    /// fixed clients, without and with sh-port. A change here reshuffles clients: it must be
    /// deliberate.
    #[test]
    fn frozen_table() {
        let d = dests(&[1, 2, 3, 1]);
        let s = SourceHashing::new(&d, false, false);
        assert_eq!(letters(&s.map()), FROZEN_MAP.concat());
        let pick = |s: &SourceHashing, a: Ipv4Addr, port: u16| {
            (b'A' + s.pick(&d, &from(a, port)).unwrap() as u8) as char
        };
        let picks: String = super::super::FROZEN_ADDRS
            .iter()
            .map(|&a| pick(&s, a, 0))
            .collect();
        assert_eq!(picks, FROZEN_PICKS);
        let p = SourceHashing::new(&d, true, false);
        let picks: String = super::super::FROZEN_ADDRS
            .iter()
            .enumerate()
            .map(|(i, &a)| pick(&p, a, 1024 + 977 * i as u16))
            .collect();
        assert_eq!(picks, FROZEN_PICKS_PORT);
    }

    const FROZEN_MAP: [&str; 4] = [
        "ABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDA",
        "BBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDAB",
        "BCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABB",
        "CCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBCCCDABBC",
    ];
    const FROZEN_PICKS: &str = "CCCBCCCCBCCBCBCBDBBC";
    const FROZEN_PICKS_PORT: &str = "CABCCCCACCCCCDBCDBCC";
}
