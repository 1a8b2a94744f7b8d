//! The neighbour (ARP) table: IPv4 next hop → MAC, per port.
//!
//! Ownership: the main lcore owns resolution (it decides when to ask, retries, and expires
//! entries); workers only read MACs and report what they hear. The set of neighbours is fixed
//! when the configuration snapshot is built (every real server and gateway the configuration
//! needs gets a slot), so the table is a preallocated array. Each slot's MAC lives in one
//! `AtomicU64` (48-bit MAC plus a valid bit) written by the main lcore alone: a worker's load
//! can never see a torn address.
//!
//! Resolution follows the kernel's neighbour states in a reduced form: INCOMPLETE (ask every
//! [`RETRY_MS`] until answered), REACHABLE for [`REACHABLE_MS`] after the last confirmation, then
//! PROBE (ask up to [`PROBES`] times, still forwarding with the known MAC), and FAILED (MAC
//! withdrawn, workers drop and count, asking continues every [`RETRY_MS`]).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::wire::MacAddr;

/// Ask again after this long without an answer.
pub const RETRY_MS: u64 = 1_000;
/// An answered entry is trusted for this long.
pub const REACHABLE_MS: u64 = 60_000;
/// Unanswered probes before an entry fails.
pub const PROBES: u32 = 3;

const VALID: u64 = 1 << 63;

/// One neighbour slot.
#[derive(Debug)]
pub struct NeighSlot {
    /// The neighbour's address.
    pub ip: Ipv4Addr,
    /// Index of the port it is reached through.
    pub port: u16,
    mac: AtomicU64,
}

impl NeighSlot {
    /// The MAC, if resolved.
    #[inline]
    pub fn mac(&self) -> Option<MacAddr> {
        let v = self.mac.load(Ordering::Acquire);
        (v & VALID != 0).then(|| MacAddr::from_u64(v & !VALID))
    }
}

/// The shared table: slots fixed at snapshot time, MACs updated by the main lcore.
#[derive(Debug, Default)]
pub struct NeighTable {
    slots: Box<[NeighSlot]>,
}

impl NeighTable {
    /// A table for `(ip, port)` pairs, all unresolved.
    pub fn new(entries: impl IntoIterator<Item = (Ipv4Addr, u16)>) -> NeighTable {
        NeighTable {
            slots: entries
                .into_iter()
                .map(|(ip, port)| NeighSlot {
                    ip,
                    port,
                    mac: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// All slots.
    pub fn slots(&self) -> &[NeighSlot] {
        &self.slots
    }

    /// The slot of `(ip, port)`.
    pub fn find(&self, ip: Ipv4Addr, port: u16) -> Option<usize> {
        self.slots.iter().position(|s| s.ip == ip && s.port == port)
    }

    /// The MAC of slot `i`, if resolved.
    #[inline]
    pub fn mac(&self, i: usize) -> Option<MacAddr> {
        self.slots.get(i).and_then(NeighSlot::mac)
    }

    /// Sets (or with `None`, withdraws) the MAC of slot `i`. Main lcore (and tests) only.
    pub fn set(&self, i: usize, mac: Option<MacAddr>) {
        if let Some(s) = self.slots.get(i) {
            let v = mac.map_or(0, |m| m.to_u64() | VALID);
            s.mac.store(v, Ordering::Release);
        }
    }
}

impl NeighTable {
    /// Copies the MAC of every slot `prev` also has (same address and port): a new
    /// configuration's table starts with what the old one resolved. Main lcore only.
    pub fn inherit(&self, prev: &NeighTable) {
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(j) = prev.find(slot.ip, slot.port) {
                self.set(i, prev.mac(j));
            }
        }
    }
}

/// What a worker heard: `ip` is at `mac` on `port` (from an ARP request or reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighEvent {
    /// Port index.
    pub port: u16,
    /// Sender protocol address.
    pub ip: Ipv4Addr,
    /// Sender hardware address.
    pub mac: MacAddr,
}

/// Resolution state of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighState {
    /// Never answered; asking.
    Incomplete,
    /// Answered recently.
    Reachable,
    /// Answer aged; asking, MAC still used.
    Probe,
    /// Probes unanswered; MAC withdrawn, asking.
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Resolution {
    state: NeighState,
    confirmed_ms: u64,
    next_ask_ms: u64,
    probes: u32,
}

/// The main lcore's resolver over a shared [`NeighTable`].
#[derive(Debug)]
pub struct Resolver {
    res: Vec<Resolution>,
}

impl Resolver {
    /// Starts resolving every slot of a table with `len` slots at time `now_ms`.
    pub fn new(len: usize, now_ms: u64) -> Resolver {
        Resolver {
            res: vec![
                Resolution {
                    state: NeighState::Incomplete,
                    confirmed_ms: 0,
                    next_ask_ms: now_ms,
                    probes: 0,
                };
                len
            ],
        }
    }

    /// The state of slot `i`.
    pub fn state(&self, i: usize) -> Option<NeighState> {
        self.res.get(i).map(|r| r.state)
    }

    /// Applies a heard `(ip, mac)`: any slot for that address on that port becomes reachable.
    /// Returns whether a slot matched.
    pub fn learn(&mut self, table: &NeighTable, ev: &NeighEvent, now_ms: u64) -> bool {
        let mut hit = false;
        for (i, slot) in table.slots().iter().enumerate() {
            if slot.ip == ev.ip && slot.port == ev.port {
                table.set(i, Some(ev.mac));
                self.res[i] = Resolution {
                    state: NeighState::Reachable,
                    confirmed_ms: now_ms,
                    next_ask_ms: now_ms + REACHABLE_MS,
                    probes: 0,
                };
                hit = true;
            }
        }
        hit
    }

    /// Advances timers; calls `ask(slot)` for every slot whose ARP request is due.
    pub fn tick(&mut self, table: &NeighTable, now_ms: u64, mut ask: impl FnMut(usize)) {
        for (i, r) in self.res.iter_mut().enumerate() {
            if now_ms < r.next_ask_ms {
                continue;
            }
            match r.state {
                NeighState::Reachable => {
                    r.state = NeighState::Probe;
                    r.probes = 0;
                }
                NeighState::Probe if r.probes >= PROBES => {
                    r.state = NeighState::Failed;
                    table.set(i, None);
                }
                _ => {}
            }
            if r.state == NeighState::Probe {
                r.probes += 1;
            }
            r.next_ask_ms = now_ms + RETRY_MS;
            ask(i);
        }
    }

    /// The resolver for `next`, a new configuration's table: slots that were in `prev` (same
    /// address and port) keep their MAC and resolution state; new slots start incomplete and
    /// are asked at once. Slots only `prev` had are forgotten.
    pub fn carry_over(&self, prev: &NeighTable, next: &NeighTable, now_ms: u64) -> Resolver {
        next.inherit(prev);
        let res = next
            .slots()
            .iter()
            .map(|slot| match prev.find(slot.ip, slot.port) {
                Some(j) => self.res[j],
                None => Resolution {
                    state: NeighState::Incomplete,
                    confirmed_ms: 0,
                    next_ask_ms: now_ms,
                    probes: 0,
                },
            })
            .collect();
        Resolver { res }
    }

    /// Milliseconds since slot `i` was last confirmed, if ever.
    pub fn age_ms(&self, i: usize, now_ms: u64) -> Option<u64> {
        let r = self.res.get(i)?;
        (r.state != NeighState::Incomplete).then(|| now_ms.saturating_sub(r.confirmed_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
    const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 12);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x11]);

    #[test]
    fn a_new_table_keeps_what_was_resolved() {
        let old = NeighTable::new([(A, 0), (B, 0)]);
        let mut r = Resolver::new(2, 0);
        let ev = NeighEvent {
            port: 0,
            ip: B,
            mac: MAC,
        };
        r.learn(&old, &ev, 10);
        let c = Ipv4Addr::new(10, 0, 0, 13);
        let new = NeighTable::new([(c, 0), (B, 0)]);
        let mut r2 = r.carry_over(&old, &new, 20);
        assert_eq!(new.mac(1), Some(MAC), "B keeps its MAC in its new slot");
        assert_eq!(r2.state(1), Some(NeighState::Reachable));
        assert_eq!(new.mac(0), None);
        let mut asked = vec![];
        r2.tick(&new, 20, |i| asked.push(i));
        assert_eq!(asked, [0], "only the new neighbour is asked");
    }

    #[test]
    fn asks_until_answered_then_trusts_then_probes_then_fails() {
        let t = NeighTable::new([(A, 0), (B, 0)]);
        let mut r = Resolver::new(2, 0);
        let mut asked = vec![];
        r.tick(&t, 0, |i| asked.push(i));
        assert_eq!(asked, [0, 1], "both asked at once");
        asked.clear();
        r.tick(&t, 500, |i| asked.push(i));
        assert!(asked.is_empty(), "not before the retry interval");
        r.tick(&t, 1000, |i| asked.push(i));
        assert_eq!(asked, [0, 1], "retried");
        assert_eq!(t.mac(0), None);

        let ev = NeighEvent {
            port: 0,
            ip: A,
            mac: MAC,
        };
        assert!(r.learn(&t, &ev, 1200));
        assert!(
            !r.learn(&t, &NeighEvent { port: 1, ..ev }, 1200),
            "other port: no slot"
        );
        assert_eq!(t.mac(0), Some(MAC));
        assert_eq!(r.state(0), Some(NeighState::Reachable));

        asked.clear();
        r.tick(&t, 1200 + REACHABLE_MS - 1, |i| asked.push(i));
        assert_eq!(asked, [1], "A is trusted, B still asked");
        for k in 0..PROBES as u64 {
            asked.clear();
            r.tick(&t, 1200 + REACHABLE_MS + k * RETRY_MS, |i| asked.push(i));
            assert!(asked.contains(&0), "probe {k}");
            assert_eq!(t.mac(0), Some(MAC), "MAC still used while probing");
            assert_eq!(r.state(0), Some(NeighState::Probe));
        }
        r.tick(&t, 1200 + REACHABLE_MS + PROBES as u64 * RETRY_MS, |_| {});
        assert_eq!(r.state(0), Some(NeighState::Failed));
        assert_eq!(t.mac(0), None, "withdrawn after unanswered probes");
        assert!(r.learn(&t, &ev, 99_999));
        assert_eq!(t.mac(0), Some(MAC), "recovers when heard again");
    }
}
