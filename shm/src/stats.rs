//! The stats region: one block per worker, each written by its worker only and published with
//! a seqlock, read by rvs-control without ever writing to it.
//!
//! Block layout (64-bit atomic words):
//!
//! ```text
//! word 0        seq          odd while the worker writes, even when stable (0 = never published)
//! word 1        lcore
//! word 2        generation   config generation the worker runs
//! word 3        n_entries    entries written (≤ entries_per_worker)
//! word 4        truncated    entries that did not fit in the last publish
//! words 5..8    reserved
//! words 8..56   counters     [WORKER_COUNTERS]
//! words 56..88  drops        [DROP_SLOTS]
//! words 88..    entries      entries_per_worker × ENTRY_WORDS (see TrafficEntry packing)
//! ```
//!
//! Writer: `seq += 1` (odd), release fence, relaxed stores of everything, `seq += 1` (even,
//! `Release`). Reader: load `seq` (`Acquire`), retry if odd, relaxed loads of everything,
//! acquire fence, reload `seq`, retry if it changed; give up after a bounded number of tries.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::region::Region;
use crate::sync::Word;

/// Number of per-worker counter slots.
pub const WORKER_COUNTERS: usize = 48;
/// Names of the worker counters the dataplane publishes, in slot order (the dataplane's
/// `Counters::SCALAR_NAMES`; a dataplane test keeps the two equal). Later slots are unused.
pub const COUNTER_NAMES: [&str; 19] = [
    "rx_packets",
    "rx_bytes",
    "tx_packets",
    "tx_bytes",
    "forwarded",
    "connections",
    "arp_replies",
    "arp_learned",
    "icmp_echo_replies",
    "control_tx",
    "events_lost",
    "replies",
    "icmp_frag_needed",
    "expired",
    "templates",
    "handoffs",
    "redirects_lost",
    "icmp_translated",
    "timers_full",
];
/// Names of the drop reasons, in slot order (the dataplane's `DropReason::as_str`, kept
/// equal by a dataplane test).
pub const DROP_NAMES: [&str; 22] = [
    "runt_frame",
    "other_host",
    "unsupported_ethertype",
    "arp_ignored",
    "ipv4_malformed",
    "ipv4_bad_checksum",
    "fragment",
    "l4_malformed",
    "local_unhandled",
    "no_service",
    "no_flow_not_syn",
    "no_dest",
    "flow_table_full",
    "neigh_unresolved",
    "tx_full",
    "event_queue_full",
    "no_local_port",
    "nat_collision",
    "too_big",
    "no_headroom",
    "no_route",
    "handoff_full",
];
/// Number of per-worker drop-reason slots.
pub const DROP_SLOTS: usize = 32;
/// Words per traffic entry.
pub const ENTRY_WORDS: usize = 8;
/// Largest `active`/`inactive`/`persistent` count an entry stores (larger values saturate).
pub const ENTRY_COUNT_MAX: u32 = (1 << 29) - 1;

const SEQ: usize = 0;
const LCORE: usize = 1;
const GENERATION: usize = 2;
const N_ENTRIES: usize = 3;
const TRUNCATED: usize = 4;
const COUNTERS_AT: usize = 8;
const DROPS_AT: usize = COUNTERS_AT + WORKER_COUNTERS;
const ENTRIES_AT: usize = DROPS_AT + DROP_SLOTS;

/// Tries a reader makes before giving up on a block that keeps changing.
const READ_TRIES: u32 = 10_000;

/// Words in one worker block.
pub(crate) const fn block_words(entries_per_worker: usize) -> usize {
    ENTRIES_AT + entries_per_worker * ENTRY_WORDS
}

/// Traffic of one (service, real server) pair as one worker saw it.
///
/// Packing into [`ENTRY_WORDS`] words: a firewall-mark service (`fwmark != 0`) is stored by
/// its mark alone, so its `vip` and `vport` read back as `0.0.0.0` and 0; `active`,
/// `inactive` and `persistent` saturate at [`ENTRY_COUNT_MAX`]. Everything else round-trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficEntry {
    /// IP protocol number (6, 17).
    pub protocol: u8,
    /// Virtual IP (address service).
    pub vip: Ipv4Addr,
    /// Virtual port (address service).
    pub vport: u16,
    /// Firewall mark; non-zero means a mark service.
    pub fwmark: u32,
    /// Real server address.
    pub raddr: Ipv4Addr,
    /// Real server port.
    pub rport: u16,
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client.
    pub outpkts: u64,
    /// Bytes client → server.
    pub inbytes: u64,
    /// Bytes server → client.
    pub outbytes: u64,
    /// Active connections now.
    pub active: u32,
    /// Inactive connections now.
    pub inactive: u32,
    /// Persistence templates now.
    pub persistent: u32,
}

impl TrafficEntry {
    /// Packs into words:
    ///
    /// ```text
    /// w0      raddr (bits 0..32) | vip, or fwmark for a mark service (bits 32..64)
    /// w1,w2   one 128-bit field: protocol 0..8, is_mark 8, vport 9..25, rport 25..41,
    ///         active 41..70, inactive 70..99, persistent 99..128
    /// w3..w7  conns, inpkts, outpkts, inbytes, outbytes
    /// ```
    pub(crate) fn to_words(self) -> [u64; ENTRY_WORDS] {
        let is_mark = self.fwmark != 0;
        let key = if is_mark {
            self.fwmark
        } else {
            u32::from(self.vip)
        };
        let vport = if is_mark { 0 } else { self.vport };
        let count = |v: u32| u128::from(v.min(ENTRY_COUNT_MAX));
        let bits = u128::from(self.protocol)
            | u128::from(is_mark) << 8
            | u128::from(vport) << 9
            | u128::from(self.rport) << 25
            | count(self.active) << 41
            | count(self.inactive) << 70
            | count(self.persistent) << 99;
        [
            u64::from(u32::from(self.raddr)) | u64::from(key) << 32,
            bits as u64,
            (bits >> 64) as u64,
            self.conns,
            self.inpkts,
            self.outpkts,
            self.inbytes,
            self.outbytes,
        ]
    }

    /// The inverse of [`to_words`](Self::to_words).
    pub(crate) fn from_words(w: &[u64; ENTRY_WORDS]) -> Self {
        let bits = u128::from(w[1]) | u128::from(w[2]) << 64;
        let key = (w[0] >> 32) as u32;
        let is_mark = bits >> 8 & 1 == 1;
        let count = |shift: u32| (bits >> shift) as u32 & ENTRY_COUNT_MAX;
        TrafficEntry {
            protocol: bits as u8,
            vip: if is_mark {
                Ipv4Addr::UNSPECIFIED
            } else {
                Ipv4Addr::from(key)
            },
            vport: if is_mark { 0 } else { (bits >> 9) as u16 },
            fwmark: if is_mark { key } else { 0 },
            raddr: Ipv4Addr::from(w[0] as u32),
            rport: (bits >> 25) as u16,
            conns: w[3],
            inpkts: w[4],
            outpkts: w[5],
            inbytes: w[6],
            outbytes: w[7],
            active: count(41),
            inactive: count(70),
            persistent: count(99),
        }
    }
}

/// One consistent snapshot of a worker block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStats {
    /// The lcore the worker runs on.
    pub lcore: u32,
    /// Config generation the worker ran when it published.
    pub generation: u64,
    /// [`WORKER_COUNTERS`] counters (meaning defined by the dataplane).
    pub counters: Vec<u64>,
    /// [`DROP_SLOTS`] drop counters (meaning defined by the dataplane).
    pub drops: Vec<u64>,
    /// Traffic entries.
    pub entries: Vec<TrafficEntry>,
    /// Entries that did not fit in the block at the last publish.
    pub truncated: u32,
}

/// Seqlock write side: makes `seq` odd, runs `body` (relaxed stores), makes `seq` even.
pub(crate) fn seq_write<W: Word, R>(seq: &W, body: impl FnOnce() -> R) -> R {
    let odd = seq.load(Relaxed).wrapping_add(1) | 1; // ours: one writer per block
    seq.store(odd, Relaxed);
    // Orders the odd `seq` before every store of `body`: a reader that sees any of them
    // (and fences with Acquire) then sees `seq` ≥ odd on its reload.
    W::fence(Release);
    let r = body();
    seq.store(odd.wrapping_add(1), Release);
    r
}

/// Seqlock read side: `Some((seq, value))` for a read of `body` (relaxed loads) that no write
/// overlapped, `None` after `tries` failed attempts. Never writes.
pub(crate) fn seq_read<W: Word, T>(
    seq: &W,
    tries: u32,
    mut body: impl FnMut() -> T,
) -> Option<(u64, T)> {
    for _ in 0..tries {
        let s1 = seq.load(Acquire);
        if s1 & 1 == 0 {
            let v = body();
            W::fence(Acquire);
            if seq.load(Relaxed) == s1 {
                return Some((s1, v));
            }
        }
        W::spin();
    }
    None
}

/// The write side of one worker's block; hand it to that worker's lcore. One per worker: the
/// caller must not create two for the same worker.
pub struct StatsWriter {
    region: Arc<Region>,
    worker: usize,
}

impl StatsWriter {
    pub(crate) fn new(region: Arc<Region>, worker: usize) -> Self {
        StatsWriter { region, worker }
    }

    /// The worker index this writes.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Publishes a snapshot. `counters` and `drops` beyond [`WORKER_COUNTERS`] /
    /// [`DROP_SLOTS`] are ignored and missing ones written as 0; entries beyond the block's
    /// capacity are dropped and counted in `truncated`. No allocation, no syscall.
    pub fn publish(
        &mut self,
        lcore: u32,
        generation: u64,
        counters: &[u64],
        drops: &[u64],
        entries: impl IntoIterator<Item = TrafficEntry>,
    ) {
        let block = self.region.stats_block(self.worker);
        let cap = self.region.params().entries_per_worker as usize;
        seq_write(&block[SEQ], || {
            block[LCORE].store(u64::from(lcore), Relaxed);
            block[GENERATION].store(generation, Relaxed);
            let slots = &block[COUNTERS_AT..DROPS_AT];
            for (i, slot) in slots.iter().enumerate() {
                slot.store(counters.get(i).copied().unwrap_or(0), Relaxed);
            }
            let slots = &block[DROPS_AT..ENTRIES_AT];
            for (i, slot) in slots.iter().enumerate() {
                slot.store(drops.get(i).copied().unwrap_or(0), Relaxed);
            }
            let mut n = 0usize;
            let mut truncated = 0u64;
            for e in entries {
                if n < cap {
                    let at = ENTRIES_AT + n * ENTRY_WORDS;
                    for (slot, w) in block[at..at + ENTRY_WORDS].iter().zip(e.to_words()) {
                        slot.store(w, Relaxed);
                    }
                    n += 1;
                } else {
                    truncated += 1;
                }
            }
            block[N_ENTRIES].store(n as u64, Relaxed);
            block[TRUNCATED].store(truncated, Relaxed);
        });
    }
}

impl fmt::Debug for StatsWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsWriter")
            .field("worker", &self.worker)
            .finish()
    }
}

/// The read side of the stats region (any number of readers; they never write).
pub struct StatsReader {
    region: Arc<Region>,
}

impl StatsReader {
    pub(crate) fn new(region: Arc<Region>) -> Self {
        StatsReader { region }
    }

    /// A consistent snapshot of worker `worker`'s block: `None` if the index is beyond the
    /// region's blocks, the worker never published, or the block kept changing for a bounded
    /// number of tries.
    pub fn read(&self, worker: usize) -> Option<WorkerStats> {
        if worker >= self.region.params().workers as usize {
            return None;
        }
        let block = self.region.stats_block(worker);
        let cap = self.region.params().entries_per_worker as usize;
        let mut counters = vec![0u64; WORKER_COUNTERS];
        let mut drops = vec![0u64; DROP_SLOTS];
        let mut entries = Vec::new();
        let (seq, (lcore, generation, truncated)) = seq_read(&block[SEQ], READ_TRIES, || {
            read_into(&block[COUNTERS_AT..DROPS_AT], &mut counters);
            read_into(&block[DROPS_AT..ENTRIES_AT], &mut drops);
            // Possibly torn until the seq check passes: clamp before using it.
            let n = (block[N_ENTRIES].load(Relaxed) as usize).min(cap);
            entries.clear();
            for i in 0..n {
                let at = ENTRIES_AT + i * ENTRY_WORDS;
                let mut w = [0u64; ENTRY_WORDS];
                read_into(&block[at..at + ENTRY_WORDS], &mut w);
                entries.push(TrafficEntry::from_words(&w));
            }
            (
                block[LCORE].load(Relaxed) as u32,
                block[GENERATION].load(Relaxed),
                u32::try_from(block[TRUNCATED].load(Relaxed)).unwrap_or(u32::MAX),
            )
        })?;
        if seq == 0 {
            return None;
        }
        Some(WorkerStats {
            lcore,
            generation,
            counters,
            drops,
            entries,
            truncated,
        })
    }

    /// [`read`](Self::read) for every worker block in use ([`Region::workers`]).
    pub fn read_all(&self) -> Vec<Option<WorkerStats>> {
        (0..self.region.workers() as usize)
            .map(|w| self.read(w))
            .collect()
    }
}

impl fmt::Debug for StatsReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsReader").finish_non_exhaustive()
    }
}

fn read_into(words: &[AtomicU64], out: &mut [u64]) {
    for (o, w) in out.iter_mut().zip(words) {
        *o = w.load(Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry_strategy() -> impl Strategy<Value = TrafficEntry> {
        (
            (any::<u8>(), any::<u32>(), any::<u16>(), any::<u32>()),
            (any::<u32>(), any::<u16>()),
            any::<[u64; 5]>(),
            [
                0..=ENTRY_COUNT_MAX,
                0..=ENTRY_COUNT_MAX,
                0..=ENTRY_COUNT_MAX,
            ],
        )
            .prop_map(|((protocol, vip, vport, fwmark), (raddr, rport), c, n)| {
                // A mark service is stored by its mark alone.
                let (vip, vport) = if fwmark != 0 { (0, 0) } else { (vip, vport) };
                TrafficEntry {
                    protocol,
                    vip: Ipv4Addr::from(vip),
                    vport,
                    fwmark,
                    raddr: Ipv4Addr::from(raddr),
                    rport,
                    conns: c[0],
                    inpkts: c[1],
                    outpkts: c[2],
                    inbytes: c[3],
                    outbytes: c[4],
                    active: n[0],
                    inactive: n[1],
                    persistent: n[2],
                }
            })
    }

    proptest! {
        #[test]
        fn traffic_entry_round_trips(e in entry_strategy()) {
            prop_assert_eq!(TrafficEntry::from_words(&e.to_words()), e);
        }
    }

    #[test]
    fn traffic_entry_extremes() {
        let e = TrafficEntry {
            protocol: 17,
            vip: Ipv4Addr::new(255, 255, 255, 255),
            vport: u16::MAX,
            fwmark: 0,
            raddr: Ipv4Addr::new(255, 255, 255, 254),
            rport: u16::MAX,
            conns: u64::MAX,
            inpkts: u64::MAX - 1,
            outpkts: 1,
            inbytes: u64::MAX,
            outbytes: 0,
            active: ENTRY_COUNT_MAX,
            inactive: 1,
            persistent: ENTRY_COUNT_MAX,
        };
        assert_eq!(TrafficEntry::from_words(&e.to_words()), e);
        // Counts beyond the field saturate instead of spilling into neighbours.
        let big = TrafficEntry {
            active: u32::MAX,
            inactive: 0,
            persistent: u32::MAX,
            ..e
        };
        let back = TrafficEntry::from_words(&big.to_words());
        assert_eq!(
            (back.active, back.inactive, back.persistent, back.rport),
            (ENTRY_COUNT_MAX, 0, ENTRY_COUNT_MAX, u16::MAX)
        );
        // A mark service keeps its mark, protocol and real server; vip/vport are not stored.
        let mark = TrafficEntry {
            fwmark: u32::MAX,
            ..e
        };
        let back = TrafficEntry::from_words(&mark.to_words());
        assert_eq!(
            (back.fwmark, back.vip, back.vport),
            (u32::MAX, Ipv4Addr::UNSPECIFIED, 0)
        );
        assert_eq!(
            (back.protocol, back.raddr, back.rport),
            (17, e.raddr, e.rport)
        );
    }

    #[test]
    fn seqlock_primitives_single_thread() {
        let seq = AtomicU64::new(0);
        let data = AtomicU64::new(0);
        assert_eq!(seq_read(&seq, 1, || data.load(Relaxed)), Some((0, 0)));
        seq_write(&seq, || data.store(5, Relaxed));
        assert_eq!(seq_read(&seq, 1, || data.load(Relaxed)), Some((2, 5)));
        // A writer that died mid-write (odd seq) makes readers give up, not spin forever.
        seq.store(3, Relaxed);
        assert_eq!(seq_read(&seq, 100, || data.load(Relaxed)), None);
        // The next write makes it even again.
        seq_write(&seq, || data.store(6, Relaxed));
        assert_eq!(seq_read(&seq, 1, || data.load(Relaxed)), Some((6, 6)));
    }
}

/// Loom model of the seqlock: the real [`seq_write`]/[`seq_read`] over loom atomics.
/// Run with `RUSTFLAGS="--cfg loom" cargo test -p rvs-shm --release --lib loom`.
#[cfg(all(test, loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicU64;

    use super::*;

    struct Block {
        seq: AtomicU64,
        a: AtomicU64,
        b: AtomicU64,
    }

    /// A writer publishes (1, 1) then (2, 2); a reader that gets a snapshot never sees a mix
    /// of two publishes, and its `seq` tells which publish it saw.
    #[test]
    fn loom_seqlock_never_torn() {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(|| {
            let block = Arc::new(Block {
                seq: AtomicU64::new(0),
                a: AtomicU64::new(0),
                b: AtomicU64::new(0),
            });
            let writer = {
                let block = block.clone();
                loom::thread::spawn(move || {
                    for k in 1..=2u64 {
                        seq_write(&block.seq, || {
                            block.a.store(k, Relaxed);
                            block.b.store(k, Relaxed);
                        });
                    }
                })
            };
            if let Some((seq, (a, b))) = seq_read(&block.seq, 3, || {
                (block.a.load(Relaxed), block.b.load(Relaxed))
            }) {
                assert_eq!(a, b, "torn read");
                assert_eq!(seq, 2 * a, "seq does not match the data it guards");
            }
            writer.join().unwrap();
        });
    }
}
