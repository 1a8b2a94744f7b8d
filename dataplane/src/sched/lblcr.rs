//! Locality-based least connection with replication (`ip_vs_lblcr.c`).
//!
//! A cache maps each destination address to a *set* of servers, newest member first
//! (`list_add_rcu` at the head), with the time the set last changed (`lastmod`). A pick:
//! 1. looks the address up and refreshes the entry's last use;
//! 2. takes the set's weighted least-connection member (`ip_vs_dest_set_min`: members still in
//!    the list, not overloaded, the first with weight > 0 starting; a later member replaces it
//!    only when strictly lighter, so ties go to the most recently added member);
//! 3. if the set has more than one member and has not changed for the expiration (24 h), drops
//!    its most loaded member (`ip_vs_dest_set_max`: weighted, members with weight > 0, overload
//!    flag not considered, ties keeping the newer) — the member chosen in step 2 is still
//!    returned this once even if it was the one dropped, as in the kernel;
//! 4. returns that member unless there is none or it is "overloaded" in lblc's sense (active >
//!    weight while some server in the list has 2·active < weight);
//! 5. otherwise picks by wlc over the whole list and adds that server to the set (at the head;
//!    no change, and no `lastmod` update, if it is already a member).
//!
//! A destination seen for the first time gets a one-member set with the wlc pick. Entries age
//! as in lblc (see [`super::locality`]), driven by
//! [`LocalityBasedLeastConnectionReplication::gc`].
//!
//! Set members live in a pool reserved at build time (twice the entry capacity); when it is full
//! a member is not added, as when the kernel's `GFP_ATOMIC` allocation fails.

use std::fmt;

use super::lblc::locally_overloaded;
use super::locality::{CAPACITY, Cache, DEFAULT_EXPIRATION, NIL, time_before};
use super::{DestLoad, SchedInput, less_loaded, weighted_least};

/// Set members the pool can hold.
const ELEM_CAPACITY: usize = CAPACITY * 2;

/// `struct ip_vs_dest_set`: a chain of members in the element pool.
#[derive(Debug, Clone, Copy)]
struct DestSet {
    /// First (newest) member, or `NIL`.
    head: u32,
    /// Members.
    size: u32,
    /// Last time a member was added or removed.
    lastmod: u32,
}

/// `struct ip_vs_dest_set_elem`.
#[derive(Debug, Clone, Copy)]
struct Elem {
    /// Server index.
    dest: u32,
    /// Next member, or next free element.
    next: u32,
}

/// The member pool shared by all sets of one scheduler.
struct Elems {
    /// Storage; capacity reserved up front and never exceeded.
    slots: Vec<Elem>,
    /// Free-list head.
    free: u32,
}

impl fmt::Debug for Elems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Elems")
            .field("used_slots", &self.slots.len())
            .field("capacity", &ELEM_CAPACITY)
            .finish_non_exhaustive()
    }
}

impl Clone for Elems {
    /// Keeps the full reserved capacity.
    fn clone(&self) -> Self {
        let mut slots = Vec::with_capacity(ELEM_CAPACITY);
        slots.extend_from_slice(&self.slots);
        Self {
            slots,
            free: self.free,
        }
    }
}

/// Members of a set, newest first.
struct Members<'a> {
    elems: &'a Elems,
    at: u32,
}

impl Iterator for Members<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.at == NIL {
            return None;
        }
        let e = self.elems.slots[self.at as usize];
        self.at = e.next;
        Some(e.dest as usize)
    }
}

impl Elems {
    fn new() -> Self {
        Self {
            slots: Vec::with_capacity(ELEM_CAPACITY),
            free: NIL,
        }
    }

    /// A new unlinked element for `dest`, or `None` when the pool is full. Never allocates.
    #[inline]
    fn alloc(&mut self, dest: u32) -> Option<u32> {
        let e = Elem { dest, next: NIL };
        if self.free != NIL {
            let id = self.free;
            self.free = self.slots[id as usize].next;
            self.slots[id as usize] = e;
            Some(id)
        } else if self.slots.len() < ELEM_CAPACITY {
            debug_assert!(self.slots.len() < self.slots.capacity());
            self.slots.push(e);
            Some((self.slots.len() - 1) as u32)
        } else {
            None
        }
    }

    /// Returns one element to the pool.
    #[inline]
    fn release(&mut self, id: u32) {
        self.slots[id as usize].next = self.free;
        self.free = id;
    }

    /// Returns a whole chain to the pool (`ip_vs_dest_set_eraseall`).
    fn release_chain(&mut self, mut id: u32) {
        while id != NIL {
            let next = self.slots[id as usize].next;
            self.release(id);
            id = next;
        }
    }

    fn members(&self, set: &DestSet) -> Members<'_> {
        Members {
            elems: self,
            at: set.head,
        }
    }

    /// `ip_vs_dest_set_insert`: adds `dest` at the head and stamps `lastmod`; with `check`, an
    /// existing member means no change at all.
    #[inline]
    fn insert(&mut self, set: &mut DestSet, dest: usize, check: bool, now: u32) {
        if check && self.members(set).any(|m| m == dest) {
            return;
        }
        let Some(e) = self.alloc(dest as u32) else {
            return;
        };
        self.slots[e as usize].next = set.head;
        set.head = e;
        set.size += 1;
        set.lastmod = now;
    }

    /// `ip_vs_dest_set_erase`: removes `dest` and stamps `lastmod`.
    #[inline]
    fn erase(&mut self, set: &mut DestSet, dest: usize, now: u32) {
        let mut prev = NIL;
        let mut id = set.head;
        while id != NIL {
            let e = self.slots[id as usize];
            if e.dest as usize == dest {
                if prev == NIL {
                    set.head = e.next;
                } else {
                    self.slots[prev as usize].next = e.next;
                }
                self.release(id);
                set.size -= 1;
                set.lastmod = now;
                return;
            }
            prev = id;
            id = e.next;
        }
    }

    /// Drops members at or past `n` (servers no longer in the list), leaving `lastmod` alone.
    fn purge(&mut self, set: &mut DestSet, n: usize) {
        let mut prev = NIL;
        let mut id = set.head;
        while id != NIL {
            let e = self.slots[id as usize];
            if e.dest as usize >= n {
                if prev == NIL {
                    set.head = e.next;
                } else {
                    self.slots[prev as usize].next = e.next;
                }
                self.release(id);
                set.size -= 1;
            } else {
                prev = id;
            }
            id = e.next;
        }
    }

    /// `ip_vs_dest_set_min`: the set's weighted least-connection member.
    #[inline]
    fn set_min(&self, set: &DestSet, dests: &[DestLoad]) -> Option<usize> {
        let mut least: Option<(usize, u64)> = None;
        for m in self.members(set) {
            // A member past the list end is a removed server (not IP_VS_DEST_F_AVAILABLE).
            let Some(d) = dests.get(m) else { continue };
            if d.overloaded {
                continue;
            }
            let doh = d.overhead();
            let better = match least {
                None => d.weight > 0,
                Some((l, loh)) => less_loaded(doh, d.weight, loh, dests[l].weight),
            };
            if better {
                least = Some((m, doh));
            }
        }
        least.map(|(m, _)| m)
    }

    /// `ip_vs_dest_set_max`: the set's weighted most-connection member with weight > 0.
    #[inline]
    fn set_max(&self, set: &DestSet, dests: &[DestLoad]) -> Option<usize> {
        let mut most: Option<(usize, u64)> = None;
        for m in self.members(set) {
            let Some(d) = dests.get(m) else { continue };
            if d.weight == 0 {
                continue;
            }
            let doh = d.overhead();
            // moh·dw < doh·mw: the member is strictly more loaded.
            let worse =
                most.is_none_or(|(l, moh)| less_loaded(moh, dests[l].weight, doh, d.weight));
            if worse {
                most = Some((m, doh));
            }
        }
        most.map(|(m, _)| m)
    }
}

/// Locality-based least-connection-with-replication state: the destination-address cache and
/// its member pool.
#[derive(Debug, Clone)]
pub struct LocalityBasedLeastConnectionReplication {
    /// Destination address → server set.
    cache: Cache<DestSet>,
    /// Members of every set.
    elems: Elems,
}

impl Default for LocalityBasedLeastConnectionReplication {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalityBasedLeastConnectionReplication {
    /// An empty cache (`ip_vs_lblcr_init_svc`); its storage is reserved here.
    pub fn new() -> Self {
        Self {
            cache: Cache::new(),
            elems: Elems::new(),
        }
    }

    /// The server list changed: drop set members past its end (off the hot path: walks the
    /// cache). An emptied set stays and is refilled by the next pick.
    pub fn update(&mut self, dests: &[DestLoad]) {
        let n = dests.len();
        let elems = &mut self.elems;
        self.cache.retain(|set| {
            elems.purge(set, n);
            true
        });
    }

    /// Ages the cache (the kernel's periodic timer; see the `locality` module).
    pub fn gc(&mut self, now: u32) {
        let elems = &mut self.elems;
        self.cache
            .gc(now, DEFAULT_EXPIRATION, |set| elems.release_chain(set.head));
    }

    /// Picks from the destination address's server set, growing or shrinking it
    /// (`ip_vs_lblcr_schedule`). Bounded: one chain walk, a few passes over the set and the list.
    #[inline]
    pub fn pick(&mut self, dests: &[DestLoad], input: &SchedInput) -> Option<usize> {
        let addr = u32::from(input.daddr);
        let now = input.now;
        if let Some(id) = self.cache.find(addr) {
            let slot = self.cache.slot_mut(id);
            slot.lastuse = now;
            let set = &mut slot.val;
            let dest = self.elems.set_min(set, dests);

            // More than one member and unchanged for the expiration: shed the most loaded.
            if set.size > 1
                && time_before(set.lastmod.wrapping_add(DEFAULT_EXPIRATION), now)
                && let Some(m) = self.elems.set_max(set, dests)
            {
                self.elems.erase(set, m, now);
            }

            if dest.is_some_and(|d| !locally_overloaded(&dests[d], dests)) {
                return dest;
            }

            let d = weighted_least(dests, DestLoad::overhead)?;
            self.elems.insert(set, d, true, now);
            return Some(d);
        }

        let d = weighted_least(dests, DestLoad::overhead)?;
        // ip_vs_lblcr_new; when either pool is full the destination is simply not cached.
        if let Some(e) = self.elems.alloc(d as u32) {
            let set = DestSet {
                head: e,
                size: 1,
                lastmod: now,
            };
            if self.cache.insert(addr, now, set).is_none() {
                self.elems.release(e);
            }
        }
        Some(d)
    }

    /// The set of a destination address, newest first, for tests.
    #[cfg(test)]
    fn set_of(&self, daddr: std::net::Ipv4Addr) -> Option<Vec<usize>> {
        let id = self.cache.find(u32::from(daddr))?;
        let set = &self.cache.slot(id).val;
        let v: Vec<usize> = self.elems.members(set).collect();
        assert_eq!(v.len(), set.size as usize);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

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
    const DAY: u32 = 24 * 60 * 60;

    #[test]
    fn a_new_destination_gets_the_wlc_pick() {
        let dests = [d(1, 1, 0), d(1, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::new();
        assert_eq!(s.pick(&dests, &to(X, 0)), Some(1));
        assert_eq!(s.set_of(X), Some(vec![1]));
        assert_eq!(s.pick(&dests, &to(X, 1)), Some(1), "reused");
        assert_eq!(s.set_of(Y), None);
    }

    #[test]
    fn an_overloaded_set_grows_newest_first_and_ties_go_to_the_newest() {
        let mut dests = [d(1, 0, 0), d(1, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::new();
        assert_eq!(s.pick(&dests, &to(X, 0)), Some(0));
        // A: 2 active > weight 1 while C has 2·0 < 1: overloaded. wlc over all → B.
        dests[0].active = 2;
        assert_eq!(s.pick(&dests, &to(X, 10)), Some(1));
        assert_eq!(s.set_of(X), Some(vec![1, 0]), "B added at the head");
        // Equal load on A and B: the set's minimum is the newest member, B, where wlc over the
        // list would say A.
        dests[0].active = 1;
        dests[1].active = 1;
        assert_eq!(s.pick(&dests, &to(X, 20)), Some(1));
        // B overloaded in lblc's sense too: C joins.
        dests[0].active = 2;
        dests[1].active = 2;
        assert_eq!(s.pick(&dests, &to(X, 30)), Some(2));
        assert_eq!(s.set_of(X), Some(vec![2, 1, 0]));
    }

    #[test]
    fn re_adding_a_member_changes_nothing() {
        // A overloaded in lblc's sense (B: 2·0 < 1) but B carries the threshold flag, so wlc
        // picks A again: the set stays {A}.
        let mut dests = [d(1, 2, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::new();
        dests[1].overloaded = true;
        assert_eq!(s.pick(&dests, &to(X, 0)), Some(0));
        assert_eq!(s.pick(&dests, &to(X, 1)), Some(0));
        assert_eq!(s.set_of(X), Some(vec![0]));
    }

    #[test]
    fn flagged_or_quiesced_members_are_skipped_in_the_set() {
        let mut dests = [d(1, 0, 0), d(1, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::new();
        s.pick(&dests, &to(X, 0)); // {A}
        dests[0].active = 2;
        s.pick(&dests, &to(X, 0)); // {B, A}
        dests[0].active = 0;
        dests[1].overloaded = true;
        assert_eq!(
            s.pick(&dests, &to(X, 1)),
            Some(0),
            "B flagged: A from the set"
        );
        dests[0].weight = 0;
        // No usable member: wlc over the list → C, added.
        assert_eq!(s.pick(&dests, &to(X, 2)), Some(2));
        assert_eq!(s.set_of(X), Some(vec![2, 1, 0]));
        dests[2].weight = 0;
        assert_eq!(s.pick(&dests, &to(X, 3)), None, "no server anywhere");
    }

    #[test]
    fn a_set_unchanged_for_a_day_sheds_its_most_loaded_member() {
        let mut dests = [d(1, 0, 0), d(1, 0, 0), d(3, 0, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::new();
        s.pick(&dests, &to(X, 0)); // {A}
        dests[0].active = 2;
        assert_eq!(s.pick(&dests, &to(X, 100)), Some(1)); // {B, A}, lastmod 100
        dests[0].active = 1;
        dests[1].active = 1;
        dests[2].active = 1;
        // Exactly a day after the change: not yet (the kernel wants time_after).
        assert_eq!(s.pick(&dests, &to(X, 100 + DAY)), Some(1));
        assert_eq!(s.set_of(X), Some(vec![1, 0]));
        // One second later: the weighted most loaded member goes. A: 256/1, B: 5·256/1.
        dests[1].active = 5;
        dests[1].weight = 5; // B 1280/5 = 256 ties A 256/1: the first found (B, newer) stays most
        // The set's minimum is computed before the shedding and returned even though it is B.
        assert_eq!(s.pick(&dests, &to(X, 101 + DAY)), Some(1));
        assert_eq!(s.set_of(X), Some(vec![0]), "B shed");
        // lastmod was stamped: a single member is never shed anyway.
        assert_eq!(s.pick(&dests, &to(X, 200 + 3 * DAY)), Some(0));
        assert_eq!(s.set_of(X), Some(vec![0]));
    }

    #[test]
    fn shedding_picks_the_weighted_maximum() {
        let mut dests = [d(1, 0, 0), d(1, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::new();
        s.pick(&dests, &to(X, 0)); // {A}
        dests[0].active = 2;
        s.pick(&dests, &to(X, 0)); // {B, A}
        dests[1].active = 2;
        s.pick(&dests, &to(X, 0)); // {C, B, A}
        assert_eq!(s.set_of(X), Some(vec![2, 1, 0]));
        dests[0].active = 3; // most loaded
        dests[1].active = 1;
        dests[2].active = 1;
        s.pick(&dests, &to(X, DAY + 1));
        assert_eq!(s.set_of(X), Some(vec![2, 1]), "A shed");
    }

    #[test]
    fn entries_expire_and_their_members_are_reused() {
        let mut dests = [d(1, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::new();
        s.gc(0);
        s.pick(&dests, &to(X, 0));
        dests[0].active = 2;
        s.pick(&dests, &to(X, 0));
        assert_eq!(s.set_of(X), Some(vec![1, 0]));
        let used = s.elems.slots.len();
        let mut t = 60;
        while t <= DAY {
            s.gc(t);
            t += 60;
        }
        assert_eq!(s.set_of(X), None, "idle a day: gone at the full check");
        s.pick(&dests, &to(Y, t));
        assert_eq!(s.elems.slots.len(), used, "freed members reused");
    }

    #[test]
    fn update_drops_members_past_the_list() {
        let mut dests = vec![d(1, 0, 0), d(1, 0, 0), d(1, 0, 0)];
        let mut s = LocalityBasedLeastConnectionReplication::new();
        s.pick(&dests, &to(X, 0));
        dests[0].active = 2;
        s.pick(&dests, &to(X, 0));
        dests[0].active = 0;
        assert_eq!(s.set_of(X), Some(vec![1, 0]));
        dests.truncate(1);
        s.update(&dests);
        assert_eq!(s.set_of(X), Some(vec![0]));
        dests.truncate(0);
        s.update(&dests);
        assert_eq!(s.set_of(X), Some(vec![]));
        assert_eq!(s.pick(&dests, &to(X, 1)), None);
        dests.push(d(1, 0, 0));
        assert_eq!(s.pick(&dests, &to(X, 2)), Some(0), "an emptied set refills");
        assert_eq!(s.set_of(X), Some(vec![0]));
    }
}
