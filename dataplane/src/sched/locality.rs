//! The destination-IP cache shared by lblc and lblcr (`struct ip_vs_lblc_table` /
//! `ip_vs_lblcr_table` and their periodic timers).
//!
//! Entries are keyed by the packet's destination address and chained in 1024 buckets indexed by
//! `hash_32(daddr, 10)`; each remembers when it was last used. Ageing follows the kernel's timer
//! (`ip_vs_lblc_check_expire`, identical in lblcr), here driven by [`Cache::gc`]:
//! * it runs every 60 s (`CHECK_EXPIRE_INTERVAL`), the first call arming it;
//! * every 30th run (`COUNT_FOR_FULL_EXPIRATION`, so every half hour) is a full check that
//!   drops every entry idle for the expiration (24 h, the `lblc_expiration` /
//!   `lblcr_expiration` sysctl default);
//! * otherwise, only while the table holds more than 16384 entries (`max_size` = 16 × 1024,
//!   "under pressure"), it drops entries idle for 6 min (`ENTRY_TIMEOUT`), walking buckets from
//!   a rover until it has dropped (entries − 16384)·4/3, at most 8192;
//! * runs that find no pressure count towards the next full check; pressured runs do not.
//!
//! Memory is bounded, which the kernel's is not: the entry pool is reserved at build time for
//! 32768 entries (twice `max_size`, so the pressure regime is reachable) and never grows; when
//! it is full a new destination is scheduled but not cached, as the kernel does when its
//! `GFP_ATOMIC` allocation fails. Entries are addressed by `u32` slot ids.

use std::fmt;

use super::hash_32;

/// Bits of the bucket index (`CONFIG_IP_VS_LBLC_TAB_BITS`, `CONFIG_IP_VS_LBLCR_TAB_BITS`).
const TAB_BITS: u32 = 10;
/// Buckets.
const TAB_SIZE: usize = 1 << TAB_BITS;
/// Bucket index mask.
const TAB_MASK: usize = TAB_SIZE - 1;
/// `tbl->max_size`: above this many entries the table is "under pressure".
pub(super) const MAX_SIZE: usize = TAB_SIZE * 16;
/// RVS's hard bound on entries (preallocated).
pub(super) const CAPACITY: usize = MAX_SIZE * 2;
/// Seconds between two runs of the periodic check (`CHECK_EXPIRE_INTERVAL`).
pub(super) const CHECK_EXPIRE_INTERVAL: u32 = 60;
/// Idle seconds after which an entry may go under pressure (`ENTRY_TIMEOUT`).
pub(super) const ENTRY_TIMEOUT: u32 = 6 * 60;
/// Idle seconds after which the full check drops an entry, and (lblcr) after which an unchanged
/// set sheds its most loaded member (`DEFAULT_EXPIRATION`, the sysctl default).
pub(super) const DEFAULT_EXPIRATION: u32 = 24 * 60 * 60;
/// Every this many runs the check is a full one (`COUNT_FOR_FULL_EXPIRATION`).
const COUNT_FOR_FULL_EXPIRATION: u32 = 30;
/// End of a chain / no slot.
pub(super) const NIL: u32 = u32::MAX;

/// The kernel's `time_before(a, b)` on wrapping seconds.
#[inline]
pub(super) fn time_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// One cached destination address.
#[derive(Debug, Clone)]
pub(super) struct Slot<V> {
    /// Destination address (host order).
    pub(super) addr: u32,
    /// Last time a pick looked this entry up.
    pub(super) lastuse: u32,
    /// Next slot in the bucket chain, or in the free list.
    next: u32,
    /// What the scheduler remembers for the address.
    pub(super) val: V,
}

/// A bounded, preallocated destination-IP cache.
pub(super) struct Cache<V> {
    /// First slot of each bucket's chain.
    heads: Box<[u32; TAB_SIZE]>,
    /// Slot storage; its capacity is reserved up front and never exceeded.
    slots: Vec<Slot<V>>,
    /// Free-list head (through `next`).
    free: u32,
    /// Live entries (`tbl->entries`).
    len: usize,
    /// Bucket where the last sweep stopped (`tbl->rover`).
    rover: usize,
    /// Runs since the last full check (`tbl->counter`).
    counter: u32,
    /// When the periodic check last ran; `None` until the first `gc` call arms it.
    last_check: Option<u32>,
}

impl<V> fmt::Debug for Cache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.len)
            .field("capacity", &CAPACITY)
            .field("rover", &self.rover)
            .field("counter", &self.counter)
            .field("last_check", &self.last_check)
            .finish_non_exhaustive()
    }
}

impl<V: Clone> Clone for Cache<V> {
    /// Keeps the full reserved capacity, so a clone never allocates on the hot path either.
    fn clone(&self) -> Self {
        let mut slots = Vec::with_capacity(CAPACITY);
        slots.extend_from_slice(&self.slots);
        Self {
            heads: self.heads.clone(),
            slots,
            free: self.free,
            len: self.len,
            rover: self.rover,
            counter: self.counter,
            last_check: self.last_check,
        }
    }
}

impl<V> Cache<V> {
    /// An empty cache with its storage reserved (`ip_vs_lblc_init_svc`).
    pub(super) fn new() -> Self {
        Self {
            heads: Box::new([NIL; TAB_SIZE]),
            slots: Vec::with_capacity(CAPACITY),
            free: NIL,
            len: 0,
            rover: 0,
            counter: 1,
            last_check: None,
        }
    }

    /// Live entries.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// `ip_vs_lblc_hashkey`.
    #[inline]
    fn bucket(addr: u32) -> usize {
        hash_32(addr, TAB_BITS) as usize
    }

    /// The slot caching `addr` (`ip_vs_lblc_get`).
    #[inline]
    pub(super) fn find(&self, addr: u32) -> Option<u32> {
        let mut id = self.heads[Self::bucket(addr)];
        while id != NIL {
            let s = &self.slots[id as usize];
            if s.addr == addr {
                return Some(id);
            }
            id = s.next;
        }
        None
    }

    /// The slot with id `id` (from [`Cache::find`] or [`Cache::insert`]).
    #[cfg(test)]
    pub(super) fn slot(&self, id: u32) -> &Slot<V> {
        &self.slots[id as usize]
    }

    /// The slot with id `id` (from [`Cache::find`] or [`Cache::insert`]), writable.
    #[inline]
    pub(super) fn slot_mut(&mut self, id: u32) -> &mut Slot<V> {
        &mut self.slots[id as usize]
    }

    /// Caches `addr` → `val`, last used `now`, at the head of its chain (`ip_vs_lblc_hash`).
    /// The caller has checked that `addr` is not cached. `None` when the pool is full. Never
    /// allocates: the pool was reserved in [`Cache::new`].
    #[inline]
    pub(super) fn insert(&mut self, addr: u32, now: u32, val: V) -> Option<u32> {
        let b = Self::bucket(addr);
        let slot = Slot {
            addr,
            lastuse: now,
            next: self.heads[b],
            val,
        };
        let id = if self.free != NIL {
            let id = self.free;
            self.free = self.slots[id as usize].next;
            self.slots[id as usize] = slot;
            id
        } else if self.slots.len() < CAPACITY {
            debug_assert!(self.slots.len() < self.slots.capacity());
            self.slots.push(slot);
            (self.slots.len() - 1) as u32
        } else {
            return None;
        };
        self.heads[b] = id;
        self.len += 1;
        Some(id)
    }

    /// Unlinks the entries of bucket `b` for which `reject` holds (`reject` may edit the slot, and
    /// releases whatever the value owns before answering true); their slots go to the free
    /// list. Returns how many were dropped.
    fn sweep_bucket(&mut self, b: usize, mut reject: impl FnMut(&mut Slot<V>) -> bool) -> usize {
        let mut dropped = 0;
        let mut prev = NIL;
        let mut id = self.heads[b];
        while id != NIL {
            let next = self.slots[id as usize].next;
            if reject(&mut self.slots[id as usize]) {
                if prev == NIL {
                    self.heads[b] = next;
                } else {
                    self.slots[prev as usize].next = next;
                }
                self.slots[id as usize].next = self.free;
                self.free = id;
                self.len -= 1;
                dropped += 1;
            } else {
                prev = id;
            }
            id = next;
        }
        dropped
    }

    /// Keeps only the entries for which `keep` holds (off the hot path: walks every bucket).
    /// `keep` may edit the value, and releases what it owns before answering false.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&mut V) -> bool) {
        for b in 0..TAB_SIZE {
            self.sweep_bucket(b, |s| !keep(&mut s.val));
        }
    }

    /// Runs the kernel's periodic check if it is due (see the module docs). `expiration` is the
    /// full check's idle limit; `on_drop` sees every dropped value (lblcr frees its set there).
    /// Bounded by the table: at most one sweep of the 1024 buckets per 60 s.
    pub(super) fn gc(&mut self, now: u32, expiration: u32, mut on_drop: impl FnMut(&mut V)) {
        match self.last_check {
            None => {
                self.last_check = Some(now);
                return;
            }
            Some(t) if now.wrapping_sub(t) < CHECK_EXPIRE_INTERVAL => return,
            Some(_) => self.last_check = Some(now),
        }

        if self.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
            // ip_vs_lblc_full_check
            let mut j = self.rover;
            for _ in 0..TAB_SIZE {
                j = (j + 1) & TAB_MASK;
                self.sweep_bucket(j, |s| expired(s, now, expiration, &mut on_drop));
            }
            self.rover = j;
            self.counter = 1;
            return;
        }

        if self.len <= MAX_SIZE {
            self.counter += 1;
            return;
        }

        let mut goal = ((self.len - MAX_SIZE) * 4 / 3).min(MAX_SIZE / 2);
        let mut j = self.rover;
        for _ in 0..TAB_SIZE {
            j = (j + 1) & TAB_MASK;
            let dropped = self.sweep_bucket(j, |s| expired(s, now, ENTRY_TIMEOUT, &mut on_drop));
            goal = goal.saturating_sub(dropped);
            if goal == 0 {
                break;
            }
        }
        self.rover = j;
    }
}

/// Whether `s` has been idle for `timeout` at `now` (the kernel keeps an entry while
/// `time_before(now, lastuse + timeout)`); if so, hands its value to `on_drop`.
fn expired<V>(s: &mut Slot<V>, now: u32, timeout: u32, on_drop: &mut impl FnMut(&mut V)) -> bool {
    let gone = !time_before(now, s.lastuse.wrapping_add(timeout));
    if gone {
        on_drop(&mut s.val);
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Addresses that all fall in one bucket would make chains long; these spread.
    fn addr(i: u32) -> u32 {
        0x0A00_0000 + i
    }

    #[test]
    fn insert_find_and_chain() {
        let mut c: Cache<u32> = Cache::new();
        for i in 0..5000 {
            assert!(c.insert(addr(i), 0, i).is_some());
        }
        assert_eq!(c.len(), 5000);
        for i in 0..5000 {
            let id = c.find(addr(i)).unwrap();
            assert_eq!(c.slot_mut(id).val, i);
        }
        assert_eq!(c.find(addr(5000)), None);
    }

    #[test]
    fn the_pool_is_bounded_and_never_reallocates() {
        let mut c: Cache<u32> = Cache::new();
        let cap = c.slots.capacity();
        for i in 0..CAPACITY as u32 {
            assert!(c.insert(addr(i), 0, i).is_some());
        }
        assert_eq!(c.insert(addr(CAPACITY as u32), 0, 0), None, "full");
        assert_eq!(c.slots.capacity(), cap);
        assert_eq!(c.clone().slots.capacity(), cap, "a clone keeps the reserve");
    }

    #[test]
    fn retain_drops_rejected_entries_and_reuses_their_slots() {
        let mut c: Cache<u32> = Cache::new();
        for i in 0..100 {
            c.insert(addr(i), 0, i);
        }
        c.retain(|v| *v % 2 == 0);
        assert_eq!(c.len(), 50);
        assert!(c.find(addr(3)).is_none());
        assert!(c.find(addr(4)).is_some());
        let before = c.slots.len();
        c.insert(addr(1000), 0, 1000);
        assert_eq!(c.slots.len(), before, "a freed slot was reused");
    }

    /// Run the timer every 60 s from t = 0 up to and including `until`.
    fn run_timer(c: &mut Cache<u32>, from: u32, until: u32) {
        let mut t = from;
        while t <= until {
            c.gc(t, DEFAULT_EXPIRATION, |_| {});
            t += CHECK_EXPIRE_INTERVAL;
        }
    }

    #[test]
    fn the_full_check_runs_every_half_hour_and_drops_day_old_entries() {
        let mut c: Cache<u32> = Cache::new();
        c.insert(addr(1), 0, 1);
        c.insert(addr(2), 0, 2);
        run_timer(&mut c, 0, 60 * 1439); // runs 1..=1439: full checks at 1800, 3600, …, 84600
        assert_eq!(c.len(), 2, "idle 23.5 h: kept");
        let id = c.find(addr(2)).unwrap();
        c.slot_mut(id).lastuse = 86_000;
        c.gc(86_400, DEFAULT_EXPIRATION, |_| {}); // run 1440: a full check
        assert!(c.find(addr(1)).is_none(), "idle exactly 24 h: dropped");
        assert!(c.find(addr(2)).is_some(), "recently used: kept");
    }

    #[test]
    fn gc_acts_at_most_once_a_minute() {
        let mut c: Cache<u32> = Cache::new();
        c.gc(100, DEFAULT_EXPIRATION, |_| {}); // arms
        for t in 100..160 {
            c.gc(t, DEFAULT_EXPIRATION, |_| {});
        }
        assert_eq!(c.counter, 1, "no run before 60 s");
        c.gc(160, DEFAULT_EXPIRATION, |_| {});
        assert_eq!(c.counter, 2);
    }

    #[test]
    fn under_pressure_entries_idle_six_minutes_go() {
        let mut c: Cache<u32> = Cache::new();
        let n = MAX_SIZE as u32 + 300;
        for i in 0..n {
            c.insert(addr(i), 0, i);
        }
        let fresh = c.find(addr(7)).unwrap();
        c.slot_mut(fresh).lastuse = 300;
        c.gc(0, DEFAULT_EXPIRATION, |_| {}); // arms
        c.gc(60, DEFAULT_EXPIRATION, |_| {}); // pressure, but nothing idle 6 min yet
        assert_eq!(c.len(), n as usize);
        let mut dropped = 0;
        c.gc(360, DEFAULT_EXPIRATION, |_| dropped += 1);
        let goal = (300 * 4 / 3) as usize;
        assert!(dropped >= goal, "dropped {dropped}, goal {goal}");
        assert!(dropped < goal + 200, "stops soon after the goal: {dropped}");
        assert_eq!(c.len(), n as usize - dropped);
        assert!(c.find(addr(7)).is_some(), "used 60 s ago: kept");
        assert_eq!(
            c.counter, 1,
            "pressured runs do not count towards the full check"
        );
    }

    #[test]
    fn time_before_wraps_like_jiffies() {
        assert!(time_before(1, 2));
        assert!(!time_before(2, 2));
        assert!(time_before(u32::MAX, 5), "5 is after the wrap");
        assert!(!time_before(5, u32::MAX));
    }
}
