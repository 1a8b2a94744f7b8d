//! Schedulers: pick a real server for a new connection, with IPVS semantics.
//!
//! Each scheduler separates building its state (off the hot path, from the service's server
//! list) from picking (on it: no allocation, bounded work). Servers are seen through
//! [`DestLoad`], a per-worker view of weight, flags and connection counts in list order; a pick
//! returns the index of the chosen server in that list, or `None` when no server is available
//! (IPVS then drops the packet and logs "no destination available").
//!
//! One file per scheduler, named and written after the kernel's `net/netfilter/ipvs/ip_vs_*.c`
//! (current kernels, 6.x): `rr`, `wrr`, `lc`, `wlc`, `sed`, `nq`, `dh`, `sh`, `lblc`, `lblcr`.
//! `locality` holds the destination-IP cache that lblc and lblcr share.
//!
//! # List order
//! "Earlier in list order" (tie-breaking in lc/wlc/sed/nq, the fill order of dh/sh buckets, the
//! rr walk) means the order of the `dests` slice. The kernel keeps `svc->destinations` with the
//! most recently added server first (`list_add_rcu` at the head in `__ip_vs_update_dest`), so a
//! slice reproduces a Linux director exactly when it lists servers in that order.
//!
//! # Per-core state
//! IPVS keeps one scheduler state per service under a lock. RVS keeps one per worker (as DPVS
//! does), so each worker walks its own round-robin sequence and keeps its own lblc/lblcr cache;
//! with one worker the behaviour is exactly the kernel's.
//!
//! # Time and garbage collection
//! lblc and lblcr age their caches. There is no timer here: [`Sched::gc`] emulates the kernel's
//! periodic `ip_vs_lblc(r)_check_expire` timer. The worker calls it from its timer stage with the
//! same monotonic seconds it passes in [`SchedInput::now`] (any rate ≥ once a minute; it does
//! work at most once per 60 s, bounded by the table size). `pick` itself never sweeps.

mod dh;
mod lblc;
mod lblcr;
mod lc;
mod locality;
mod nq;
mod rr;
mod sed;
mod sh;
mod wlc;
mod wrr;

pub use dh::DestinationHashing;
pub use lblc::LocalityBasedLeastConnection;
pub use lblcr::LocalityBasedLeastConnectionReplication;
pub use lc::LeastConnection;
pub use nq::NeverQueue;
pub use rr::RoundRobin;
pub use sed::ShortestExpectedDelay;
pub use sh::SourceHashing;
pub use wlc::WeightedLeastConnection;
pub use wrr::WeightedRoundRobin;

use std::net::Ipv4Addr;

use rvs_config::{SchedFlag, Scheduler as SchedulerName};

/// What a scheduler sees of one real server at pick time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DestLoad {
    /// Current weight; 0 means quiesced (no new connections).
    pub weight: u32,
    /// IPVS's IP_VS_DEST_F_OVERLOAD: the upper connection threshold was reached (see
    /// [`update_overload`]).
    pub overloaded: bool,
    /// Connections in ESTABLISHED.
    pub active: u32,
    /// Other connections.
    pub inactive: u32,
}

impl DestLoad {
    /// A server with `weight` and no connections.
    pub const fn with_weight(weight: u32) -> Self {
        Self {
            weight,
            overloaded: false,
            active: 0,
            inactive: 0,
        }
    }

    /// IPVS's common eligibility test (rr, wrr, lc, wlc, sed, nq, dh, sh): not overloaded and
    /// weight > 0.
    #[inline]
    pub fn available(&self) -> bool {
        !self.overloaded && self.weight > 0
    }

    /// `ip_vs_dest_conn_overhead`: 256·active + inactive (widened: the kernel's `int` would
    /// overflow past 2²³ active connections).
    #[inline]
    pub fn overhead(&self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }
}

/// What a scheduler may look at in the packet that opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedInput {
    /// Client address (sh hashes it).
    pub saddr: Ipv4Addr,
    /// Destination address as the packet carries it: the VIP, or any address for a
    /// firewall-mark service (dh, lblc and lblcr hash it).
    pub daddr: Ipv4Addr,
    /// Source port for TCP/UDP/SCTP, 0 for other protocols (sh with `sh-port` hashes it, as
    /// `ip_vs_sh_get_port`).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Monotonic seconds (lblc/lblcr cache ages). Wrapping is handled like jiffies.
    pub now: u32,
}

/// Per-service scheduler state, one variant per scheduler.
#[derive(Debug, Clone)]
pub enum Sched {
    /// Round robin.
    Rr(RoundRobin),
    /// Weighted round robin.
    Wrr(WeightedRoundRobin),
    /// Least connection.
    Lc(LeastConnection),
    /// Weighted least connection.
    Wlc(WeightedLeastConnection),
    /// Shortest expected delay.
    Sed(ShortestExpectedDelay),
    /// Never queue.
    Nq(NeverQueue),
    /// Destination hashing.
    Dh(DestinationHashing),
    /// Source hashing.
    Sh(SourceHashing),
    /// Locality-based least connection.
    Lblc(LocalityBasedLeastConnection),
    /// Locality-based least connection with replication.
    Lblcr(LocalityBasedLeastConnectionReplication),
}

impl Sched {
    /// Builds the state for `name` over `dests` (off the hot path: dh/sh tables and the
    /// lblc/lblcr caches are allocated here). `flags` matter to sh only and are ignored by the
    /// others, as the kernel ignores them.
    pub fn build(name: SchedulerName, flags: &[SchedFlag], dests: &[DestLoad]) -> Sched {
        match name {
            SchedulerName::Rr => Sched::Rr(RoundRobin::new()),
            SchedulerName::Wrr => Sched::Wrr(WeightedRoundRobin::new(dests)),
            SchedulerName::Lc => Sched::Lc(LeastConnection),
            SchedulerName::Wlc => Sched::Wlc(WeightedLeastConnection),
            SchedulerName::Sed => Sched::Sed(ShortestExpectedDelay),
            SchedulerName::Nq => Sched::Nq(NeverQueue),
            SchedulerName::Dh => Sched::Dh(DestinationHashing::new(dests)),
            SchedulerName::Sh => Sched::Sh(SourceHashing::new(
                dests,
                flags.contains(&SchedFlag::ShPort),
                flags.contains(&SchedFlag::ShFallback),
            )),
            SchedulerName::Lblc => Sched::Lblc(LocalityBasedLeastConnection::new()),
            SchedulerName::Lblcr => Sched::Lblcr(LocalityBasedLeastConnectionReplication::new()),
        }
    }

    /// The server list, weights or availability changed (off the hot path): re-derives
    /// weight-dependent state (wrr position, dh/sh bucket tables) and drops lblc/lblcr cache
    /// references to servers past the end of the new list. Indices are positions: a caller that
    /// removes or reorders servers in the middle of the list should build afresh if it wants no
    /// cached locality to move to the server now at that position.
    pub fn update(&mut self, dests: &[DestLoad]) {
        match self {
            Sched::Rr(s) => s.update(dests),
            Sched::Wrr(s) => s.update(dests),
            Sched::Lc(_) | Sched::Wlc(_) | Sched::Sed(_) | Sched::Nq(_) => {}
            Sched::Dh(s) => s.update(dests),
            Sched::Sh(s) => s.update(dests),
            Sched::Lblc(s) => s.update(dests),
            Sched::Lblcr(s) => s.update(dests),
        }
    }

    /// Picks a server for a new connection (hot path: no allocation, bounded work).
    #[inline]
    pub fn pick(&mut self, dests: &[DestLoad], input: &SchedInput) -> Option<usize> {
        match self {
            Sched::Rr(s) => s.pick(dests),
            Sched::Wrr(s) => s.pick(dests),
            Sched::Lc(s) => s.pick(dests),
            Sched::Wlc(s) => s.pick(dests),
            Sched::Sed(s) => s.pick(dests),
            Sched::Nq(s) => s.pick(dests),
            Sched::Dh(s) => s.pick(dests, input),
            Sched::Sh(s) => s.pick(dests, input),
            Sched::Lblc(s) => s.pick(dests, input),
            Sched::Lblcr(s) => s.pick(dests, input),
        }
    }

    /// Ages the lblc/lblcr caches as the kernel's periodic timer does (a no-op for the other
    /// schedulers). Call it regularly from the worker's timer stage with monotonic seconds; the
    /// first call arms the 60 s timer, later calls act once per 60 s: every half hour entries
    /// idle for 24 h go, and while a cache holds more than 16384 entries those idle for 6 min go
    /// (details in the private `locality` module).
    pub fn gc(&mut self, now: u32) {
        match self {
            Sched::Lblc(s) => s.gc(now),
            Sched::Lblcr(s) => s.gc(now),
            _ => {}
        }
    }
}

/// Maintains IP_VS_DEST_F_OVERLOAD from the connection thresholds (`-x upper`, `-y lower`); call
/// it whenever `active`/`inactive` or the thresholds change.
///
/// The kernel splits this over `ip_vs_bind_dest` (a new connection sets the flag when
/// `upper != 0 && active + inactive >= upper`) and `ip_vs_unbind_dest` (a freed connection
/// clears it when `lower != 0 ? total < lower : total * 4 < upper * 3`; with both thresholds 0
/// it always clears), and `__ip_vs_update_dest` clears it when upper becomes 0. Between the two
/// marks the flag keeps its state (hysteresis). The kernel refuses `lower > upper`, which is
/// what makes the single function equivalent; here `lower > upper` is handled the same way,
/// upper taking precedence. Persistence templates do not count (`ip_vs_dest_totalconns`).
pub fn update_overload(load: &mut DestLoad, upper: u32, lower: u32) {
    if upper == 0 {
        load.overloaded = false;
        return;
    }
    let total = u64::from(load.active) + u64::from(load.inactive);
    if total >= u64::from(upper) {
        load.overloaded = true;
    } else if lower != 0 {
        if total < u64::from(lower) {
            load.overloaded = false;
        }
    } else if total * 4 < u64::from(upper) * 3 {
        load.overloaded = false;
    }
}

/// The kernel's `hash_32` (`include/linux/hash.h`, since 4.7): multiply by GOLDEN_RATIO_32 and
/// keep the top `bits` bits.
#[inline]
fn hash_32(val: u32, bits: u32) -> u32 {
    const GOLDEN_RATIO_32: u32 = 0x61C8_8647;
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// The kernel's cross-multiplied comparison `loh·dw > doh·lw`: a server with overhead `doh` and
/// weight `dw` is strictly less loaded than one with `loh`, `lw`. Widened so no weight or count
/// can overflow (the kernel uses `__s64` over `int`s).
#[inline]
fn less_loaded(doh: u64, dw: u32, loh: u64, lw: u32) -> bool {
    u128::from(loh) * u128::from(dw) > u128::from(doh) * u128::from(lw)
}

/// Weighted least-connection choice shared by wlc, lblc and lblcr (`ip_vs_wlc_schedule`,
/// `__ip_vs_lblc_schedule`, `__ip_vs_lblcr_schedule` are the same loop): the first server that
/// is not overloaded with weight > 0 starts; a later non-overloaded server replaces it only when
/// strictly less loaded (`loh·dw > doh·lw`), so ties keep the earlier one.
#[inline]
fn weighted_least(dests: &[DestLoad], cost: impl Fn(&DestLoad) -> u64) -> Option<usize> {
    let first = dests.iter().position(DestLoad::available)?;
    let mut least = first;
    let mut loh = cost(&dests[first]);
    for (i, d) in dests.iter().enumerate().skip(first + 1) {
        if d.overloaded {
            continue;
        }
        let doh = cost(d);
        // A weight-0 server is never less loaded (0 > x·lw is false), as in the kernel.
        if less_loaded(doh, d.weight, loh, dests[least].weight) {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// Fixed addresses for the frozen-table tests of dh, sh, lblc and lblcr.
#[cfg(test)]
const FROZEN_ADDRS: [Ipv4Addr; 20] = [
    Ipv4Addr::new(10, 0, 0, 1),
    Ipv4Addr::new(10, 0, 0, 2),
    Ipv4Addr::new(10, 0, 0, 3),
    Ipv4Addr::new(10, 0, 1, 77),
    Ipv4Addr::new(10, 20, 30, 40),
    Ipv4Addr::new(10, 255, 255, 254),
    Ipv4Addr::new(172, 16, 0, 1),
    Ipv4Addr::new(172, 16, 5, 9),
    Ipv4Addr::new(172, 31, 200, 17),
    Ipv4Addr::new(192, 168, 0, 1),
    Ipv4Addr::new(192, 168, 1, 100),
    Ipv4Addr::new(192, 168, 42, 42),
    Ipv4Addr::new(198, 51, 100, 7),
    Ipv4Addr::new(198, 51, 100, 200),
    Ipv4Addr::new(203, 0, 113, 5),
    Ipv4Addr::new(203, 0, 113, 250),
    Ipv4Addr::new(8, 8, 8, 8),
    Ipv4Addr::new(1, 1, 1, 1),
    Ipv4Addr::new(100, 64, 12, 34),
    Ipv4Addr::new(223, 255, 255, 1),
];

/// `DestLoad { weight, active, inactive }`, not overloaded: the scheduler tests' shorthand.
#[cfg(test)]
pub(crate) fn d(weight: u32, active: u32, inactive: u32) -> DestLoad {
    DestLoad {
        weight,
        overloaded: false,
        active,
        inactive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_32_matches_the_kernel_formula() {
        // 1 × 0x61C88647 = 0x61C88647: top 8 bits 0x61, top 10 bits 0x187.
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(1, 10), 0x187);
        assert_eq!(hash_32(0, 8), 0);
        // 10.0.0.1 = 0x0A000001: the product is 0x61C88647 + (0x47·0x0A mod 2⁸)·2²⁴
        // = 0x61C88647 + 0xC6000000 = 0x27C88647 (mod 2³²) → top 8 bits 0x27, top 10 0x9F.
        assert_eq!(0x0A00_0001u32.wrapping_mul(0x61C8_8647), 0x27C8_8647);
        assert_eq!(hash_32(0x0A00_0001, 8), 0x27);
        assert_eq!(hash_32(0x0A00_0001, 10), 0x9F);
    }

    /// IPVS threshold rule, as a sequence of connection counts after binds and unbinds.
    #[test]
    fn overload_thresholds() {
        // (upper, lower, totals in order, flag after each)
        let table: &[(u32, u32, &[u32], &[bool])] = &[
            // No thresholds: never overloaded.
            (0, 0, &[0, 100, 5], &[false, false, false]),
            // upper 4, lower 2: set at 4, kept at 3 and 2, cleared below 2.
            (
                4,
                2,
                &[3, 4, 5, 3, 2, 1, 2, 3, 4],
                &[false, true, true, true, true, false, false, false, true],
            ),
            // upper 8, lower 0: cleared only below 3/4·8 = 6 (total·4 < 24).
            (
                8,
                0,
                &[8, 7, 6, 5, 6, 7, 8],
                &[true, true, true, false, false, false, true],
            ),
            // upper 5, lower 0: total·4 < 15 keeps the flag at 4 and clears it at 3.
            (5, 0, &[5, 4, 3], &[true, true, false]),
            // lower == upper: a plain limit.
            (3, 3, &[3, 2, 3], &[true, false, true]),
        ];
        for &(upper, lower, totals, want) in table {
            let mut d = DestLoad::with_weight(1);
            let got: Vec<bool> = totals
                .iter()
                .map(|&t| {
                    d.active = t / 2;
                    d.inactive = t - t / 2;
                    update_overload(&mut d, upper, lower);
                    d.overloaded
                })
                .collect();
            assert_eq!(got, want, "upper {upper} lower {lower} totals {totals:?}");
        }
    }

    #[test]
    fn removing_the_upper_threshold_clears_the_flag() {
        let mut d = DestLoad {
            weight: 1,
            overloaded: false,
            active: 10,
            inactive: 0,
        };
        update_overload(&mut d, 5, 0);
        assert!(d.overloaded);
        update_overload(&mut d, 0, 0);
        assert!(!d.overloaded);
    }

    #[test]
    fn build_covers_all_ten_schedulers() {
        let d = [DestLoad::with_weight(1), DestLoad::with_weight(2)];
        let input = SchedInput {
            saddr: Ipv4Addr::new(192, 0, 2, 1),
            daddr: Ipv4Addr::new(10, 0, 0, 100),
            sport: 40000,
            dport: 80,
            now: 0,
        };
        for name in SchedulerName::ALL {
            let mut s = Sched::build(name, &[], &d);
            let got = s.pick(&d, &input);
            assert!(matches!(got, Some(0 | 1)), "{name}: {got:?}");
            s.update(&d);
            s.gc(0);
            assert!(s.pick(&[], &input).is_none(), "{name} with no servers");
        }
    }
}
