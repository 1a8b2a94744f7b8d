//! A per-core timing wheel that expires flows without scanning the flow table.
//!
//! # Contract
//!
//! [`TimerWheel`] holds up to `capacity` entries, each an opaque `K` (the dataplane stores the
//! flow's key) with a deadline in whole dataplane seconds. [`TimerWheel::advance`] hands every
//! entry whose deadline is at or before `now` to a callback, never one whose deadline is still
//! ahead, at most `budget` entries per call; the callback answers [`Fire::Done`] (the entry is
//! freed) or [`Fire::Rearm`] (the entry is kept under a new deadline). Entries are not
//! cancellable and carry no ordering promise within a second.
//!
//! # Intended use (lazy re-arm)
//!
//! Each live flow has exactly one wheel entry, scheduled when the flow is created at the flow's
//! first deadline. Packets never touch the wheel: they only push the flow's `expires` forward in
//! the flow table. When the entry fires, the worker looks the flow up by key:
//! * the flow is gone (already reclaimed): `Done`;
//! * `flow.expires <= now`: the flow has expired; the worker removes it, does its accounting
//!   (active/inactive connections, persistence templates), and answers `Done`;
//! * otherwise the flow was refreshed since: `Rearm(flow.expires)`.
//!
//! So a flow costs one wheel operation per timeout period, not one per packet, and the worker
//! calls `advance(now, budget, ..)` once per loop turn with a small budget, which bounds the
//! expiry work in any turn; what the budget leaves stays due for the next turn.
//!
//! # Why it holds keys, not table positions
//!
//! The flow index is a cuckoo hash table: inserting may displace an entry to its alternate
//! bucket, so an index position is not a stable name for a flow. The wheel carries whatever
//! stable identity the caller gives (the flow's tuple, or a slab id with a generation so that
//! an entry outliving its flow is recognised) and the caller resolves it when the entry fires,
//! once per timeout rather than per packet.
//!
//! # Design
//!
//! A hashed timing wheel of `slots` one-second buckets (a power of two; [`DEFAULT_SLOTS`] =
//! 1024 covers 17 minutes, more than the longest default IPVS timeout, ESTABLISHED's 900 s;
//! longer timeouts set in a profile take the far-deadline path below) over a pool of entries
//! linked by `u32` indexes. The pool's memory
//! is reserved by [`TimerWheel::new`] and the wheel never allocates again: entries are taken
//! from a free list, or appended within the reserved capacity.
//!
//! `cursor` is the next second whose bucket has not been drained. Every entry in a bucket was
//! placed at a second `p` with `cursor <= p < cursor + slots`, so the bucket `p % slots` holds
//! only entries placed at `p`, and draining it at `cursor == p` examines no entry twice:
//! * `p` is the deadline, or, for a deadline beyond the span, the farthest second
//!   `cursor + slots - 1`. Such an entry is re-placed (without calling back) each time its bucket
//!   comes round, until its deadline is within reach: one internal move per `slots` seconds,
//!   which is cheaper and simpler than a second wheel for the few flows with long timeouts.
//! * An entry scheduled with a deadline already behind `cursor` goes to a separate `due` list
//!   that the next `advance` fires first, whatever its `now`.
//!
//! An occupancy bitmap (one bit per bucket) lets `advance` hop from an empty bucket straight to
//! the next occupied one, or past `now`, so idle seconds cost nothing. After a long gap (a
//! stalled loop, a test jumping hours ahead) `advance` first skips whole turns: since every
//! bucket then lies behind `now`, it may count each as placed a whole number of turns later and
//! walk only the last turn or two before `now`; all entries are still examined, those due fire,
//! and a far entry is moved at most about twice instead of once per skipped turn.
//!
//! Bounded work: each `advance` call examines at most `budget` entries (fired ones and far ones
//! moved) and makes at most `budget + 2` bitmap scans of `slots / 64` words each.

/// Buckets in a wheel made by [`TimerWheel::new`]: one second each, 17 minutes in all.
pub const DEFAULT_SLOTS: usize = 1024;

/// End of a list.
const NIL: u32 = u32::MAX;

/// What to do with an entry that has just fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    /// Free the entry.
    Done,
    /// Keep the entry, due again at this deadline (seconds). A deadline at or before `now`
    /// fires it again, possibly in the same [`TimerWheel::advance`] call.
    Rearm(u32),
}

/// [`TimerWheel::schedule`] failed: every entry of the pool is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelFull;

impl std::fmt::Display for WheelFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("timer wheel full")
    }
}

impl std::error::Error for WheelFull {}

/// One pool entry: in a bucket, in the due list, or free.
#[derive(Clone, Copy)]
struct Node<K> {
    key: K,
    deadline: u32,
    next: u32,
}

/// A hashed timing wheel with one-second ticks over a fixed pool of entries (see the module
/// documentation).
pub struct TimerWheel<K: Copy> {
    /// The pool; reserved to `capacity` by `new`, grown only by pushes within it.
    nodes: Vec<Node<K>>,
    capacity: usize,
    /// Head of the free list (threaded through `Node::next`).
    free: u32,
    /// Head of each bucket's list.
    heads: Vec<u32>,
    /// Bit `s` set iff bucket `s` is non-empty.
    occupied: Vec<u64>,
    /// `slots - 1`.
    mask: u64,
    /// Entries scheduled with a deadline behind `cursor`.
    due: u32,
    /// The next second whose bucket has not been drained.
    cursor: u64,
    /// The latest `now` seen (time never goes backwards).
    latest: u32,
    /// Live entries.
    len: usize,
    #[cfg(test)]
    last_call: CallStats,
}

/// What the last `advance` call did, for the tests' work bounds.
#[cfg(test)]
#[derive(Debug, Clone, Copy, Default)]
struct CallStats {
    examined: usize,
    scans: usize,
}

impl<K: Copy> std::fmt::Debug for TimerWheel<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("slots", &self.heads.len())
            .field("cursor", &self.cursor)
            .field("latest", &self.latest)
            .finish()
    }
}

impl<K: Copy> TimerWheel<K> {
    /// A wheel of [`DEFAULT_SLOTS`] buckets holding at most `capacity` entries, whose clock
    /// starts at `now`.
    pub fn new(capacity: usize, now: u32) -> Self {
        Self::with_slots(capacity, DEFAULT_SLOTS, now)
    }

    /// A wheel of `slots` buckets (a power of two, at least 2).
    ///
    /// # Panics
    /// If `slots` is not a power of two of at least 2, or `capacity` does not fit a `u32`
    /// index.
    pub fn with_slots(capacity: usize, slots: usize, now: u32) -> Self {
        assert!(
            slots >= 2 && slots.is_power_of_two(),
            "timer wheel slots must be a power of two >= 2, not {slots}"
        );
        assert!(
            capacity < NIL as usize,
            "timer wheel capacity {capacity} too large"
        );
        TimerWheel {
            nodes: Vec::with_capacity(capacity),
            capacity,
            free: NIL,
            heads: vec![NIL; slots],
            occupied: vec![0; slots.div_ceil(64)],
            mask: slots as u64 - 1,
            due: NIL,
            cursor: u64::from(now),
            latest: now,
            len: 0,
            #[cfg(test)]
            last_call: CallStats::default(),
        }
    }

    /// Adds an entry for `key`, due at `deadline` (seconds; one already past fires on the next
    /// [`advance`](Self::advance)). O(1).
    pub fn schedule(&mut self, key: K, deadline: u32) -> Result<(), WheelFull> {
        let node = Node {
            key,
            deadline,
            next: NIL,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.nodes[i as usize].next;
            self.nodes[i as usize] = node;
            i
        } else if self.nodes.len() < self.capacity {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        } else {
            return Err(WheelFull);
        };
        self.len += 1;
        self.place(i);
        Ok(())
    }

    /// Advances the clock to `now` (seconds; an earlier `now` than already seen counts as the
    /// latest one) and calls `fire(key)` for entries whose deadline is at or before it, at most
    /// `budget` of them and examining at most `budget` entries in all; entries left over stay
    /// due for the next call. Returns how many fired.
    pub fn advance(&mut self, now: u32, budget: usize, mut fire: impl FnMut(K) -> Fire) -> usize {
        let now = now.max(self.latest);
        self.latest = now;
        let now = u64::from(now);
        let slots = self.mask + 1;
        if now >= self.cursor + self.mask {
            // Skip whole turns: relabel every bucket as placed one or more turns later, keeping
            // the last turn before `now` to walk. Every bucket then lies at or before `now`, so
            // each entry is still examined in this catch-up, and one whose deadline has passed
            // fires in it; skipping only saves moving far entries round and round.
            self.cursor += (now - self.mask - self.cursor) / slots * slots;
        }
        let mut examined = 0;
        let mut fired = 0;
        #[cfg(test)]
        let mut scans = 0;
        loop {
            if self.due != NIL {
                if examined == budget {
                    break;
                }
                let i = self.due;
                self.due = self.nodes[i as usize].next;
                examined += 1;
                fired += 1;
                self.fire_one(i, &mut fire);
                continue;
            }
            if self.cursor > now {
                break;
            }
            let s = (self.cursor & self.mask) as usize;
            if self.heads[s] != NIL {
                if examined == budget {
                    break;
                }
                let i = self.pop_bucket(s);
                examined += 1;
                if u64::from(self.nodes[i as usize].deadline) <= now {
                    fired += 1;
                    self.fire_one(i, &mut fire);
                } else {
                    // A deadline beyond the span (or beyond `now` after a gap): move it on.
                    self.place(i);
                }
                continue;
            }
            // The bucket at `cursor` is empty: hop to the next occupied second, or past `now`.
            #[cfg(test)]
            {
                scans += 1;
            }
            self.cursor = match self.next_occupied(s) {
                Some(d) => (self.cursor + d).min(now + 1),
                None => now + 1,
            };
        }
        #[cfg(test)]
        {
            self.last_call = CallStats { examined, scans };
        }
        fired
    }

    /// True when every entry due at `now` has fired, so `advance(now, ..)` would fire nothing.
    /// False means the last call stopped on its budget, or the clock has not been advanced to
    /// `now` yet.
    pub fn caught_up(&self, now: u32) -> bool {
        self.due == NIL && self.cursor > u64::from(now.max(self.latest))
    }

    /// Live entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No live entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most entries the wheel holds at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Buckets (seconds) in one turn of the wheel.
    pub fn slots(&self) -> usize {
        self.heads.len()
    }

    /// Calls back for the popped entry `i` and frees or re-places it.
    fn fire_one(&mut self, i: u32, fire: &mut impl FnMut(K) -> Fire) {
        match fire(self.nodes[i as usize].key) {
            Fire::Done => {
                self.nodes[i as usize].next = self.free;
                self.free = i;
                self.len -= 1;
            }
            Fire::Rearm(deadline) => {
                self.nodes[i as usize].deadline = deadline;
                self.place(i);
            }
        }
    }

    /// Links the unlinked entry `i` into the due list or its bucket by its deadline.
    fn place(&mut self, i: u32) {
        let deadline = u64::from(self.nodes[i as usize].deadline);
        if deadline < self.cursor {
            self.nodes[i as usize].next = self.due;
            self.due = i;
            return;
        }
        let at = deadline.min(self.cursor + self.mask);
        let s = (at & self.mask) as usize;
        self.nodes[i as usize].next = self.heads[s];
        self.heads[s] = i;
        self.occupied[s / 64] |= 1 << (s % 64);
    }

    /// Unlinks and returns the first entry of the non-empty bucket `s`.
    fn pop_bucket(&mut self, s: usize) -> u32 {
        let i = self.heads[s];
        self.heads[s] = self.nodes[i as usize].next;
        if self.heads[s] == NIL {
            self.occupied[s / 64] &= !(1 << (s % 64));
        }
        i
    }

    /// Distance in buckets from the empty bucket `from` to the next occupied one, going round;
    /// `None` if every bucket is empty.
    fn next_occupied(&self, from: usize) -> Option<u64> {
        let words = self.occupied.len();
        let start = from / 64;
        let bit = from % 64;
        let found = |w: usize, bits: u64| w * 64 + bits.trailing_zeros() as usize;
        let here = self.occupied[start] & (!0u64 << bit);
        let slot = if here != 0 {
            found(start, here)
        } else {
            // The following words, ending back at the first one, whose bits at and after `from`
            // are known clear.
            let w = (1..=words)
                .map(|k| (start + k) % words)
                .find(|&w| self.occupied[w] != 0)?;
            found(w, self.occupied[w])
        };
        Some((slot as u64).wrapping_sub(from as u64) & self.mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    /// Advances one call and returns the keys fired, checking the per-call bounds.
    fn step(w: &mut TimerWheel<u32>, now: u32, budget: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let n = w.advance(now, budget, |k| {
            out.push(k);
            Fire::Done
        });
        assert_eq!(n, out.len());
        assert!(n <= budget);
        assert!(w.last_call.examined <= budget);
        assert!(w.last_call.scans <= budget + 2, "{:?}", w.last_call);
        out
    }

    /// Advances to `now` until caught up; returns the keys fired, sorted.
    fn drain(w: &mut TimerWheel<u32>, now: u32, budget: usize) -> Vec<u32> {
        let mut out = Vec::new();
        let mut calls = 0;
        while !w.caught_up(now) {
            out.extend(step(w, now, budget));
            calls += 1;
            assert!(calls < 1_000_000, "no progress");
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn entries_fire_at_not_before_their_deadline() {
        let t0 = 500;
        let mut w = TimerWheel::new(100, t0);
        for k in 0..10u32 {
            w.schedule(k, t0 + k).unwrap();
        }
        for k in 0..10u32 {
            assert_eq!(drain(&mut w, t0 + k, 1000), vec![k], "second {k}");
            // Calling again within the same second fires nothing more.
            assert!(step(&mut w, t0 + k, 1000).is_empty());
        }
        assert!(w.is_empty());
    }

    #[test]
    fn a_past_deadline_fires_on_the_next_call() {
        let mut w = TimerWheel::new(10, 100);
        assert!(drain(&mut w, 100, 10).is_empty());
        w.schedule(1, 100).unwrap();
        w.schedule(2, 3).unwrap();
        // Same `now`: still fires, both.
        assert_eq!(drain(&mut w, 100, 10), vec![1, 2]);
        // A clock that goes backwards counts as the latest.
        w.schedule(3, 100).unwrap();
        assert_eq!(drain(&mut w, 50, 10), vec![3]);
    }

    #[test]
    fn many_entries_in_one_bucket() {
        let mut w = TimerWheel::with_slots(30_000, 64, 0);
        for k in 0..10_000u32 {
            w.schedule(k, 10).unwrap();
        }
        // Same bucket, one and two turns later.
        for k in 10_000..20_000u32 {
            w.schedule(k, 10 + 64).unwrap();
        }
        for k in 20_000..30_000u32 {
            w.schedule(k, 10 + 128).unwrap();
        }
        assert!(drain(&mut w, 9, 100_000).is_empty());
        assert_eq!(drain(&mut w, 10, 100_000), (0..10_000).collect::<Vec<_>>());
        assert!(drain(&mut w, 73, 100_000).is_empty());
        assert_eq!(
            drain(&mut w, 74, 100_000),
            (10_000..20_000).collect::<Vec<_>>()
        );
        assert_eq!(
            drain(&mut w, 138, 100_000),
            (20_000..30_000).collect::<Vec<_>>()
        );
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_beyond_the_span_fire_on_time() {
        let deadlines = [1, 5, 7, 8, 9, 15, 16, 17, 100, 1000, 4097];
        let mut w = TimerWheel::with_slots(20, 8, 0);
        for (k, &d) in deadlines.iter().enumerate() {
            w.schedule(k as u32, d).unwrap();
        }
        for now in 0..=5000u32 {
            let want: Vec<u32> = (0..deadlines.len() as u32)
                .filter(|&k| deadlines[k as usize] == now)
                .collect();
            assert_eq!(drain(&mut w, now, 100), want, "second {now}");
        }
        assert!(w.is_empty());

        // The default wheel, an hour ahead, jumping there in one go.
        let mut w = TimerWheel::new(4, 7);
        w.schedule(1, 7 + 3600).unwrap();
        assert!(drain(&mut w, 7 + 3599, 10).is_empty());
        assert_eq!(drain(&mut w, 7 + 3600, 10), vec![1]);
    }

    #[test]
    fn rearm_keeps_the_entry() {
        let mut w = TimerWheel::new(1, 0);
        w.schedule(9, 10).unwrap();
        let mut fired_at = Vec::new();
        let mut now = 0;
        while now <= 3000 {
            w.advance(now, 10, |k| {
                assert_eq!(k, 9);
                fired_at.push(now);
                match fired_at.len() {
                    1 => Fire::Rearm(25),
                    2 => Fire::Rearm(2025),
                    _ => Fire::Done,
                }
            });
            now += 1;
        }
        assert_eq!(fired_at, [10, 25, 2025]);
        assert!(w.is_empty());
        // The pool of one was never exhausted by re-arming.
        w.schedule(1, 1).unwrap();
    }

    #[test]
    fn rearm_into_the_past_fires_again_within_the_budget() {
        let mut w = TimerWheel::new(2, 0);
        w.schedule(1, 5).unwrap();
        let mut count = 0;
        let n = w.advance(5, 3, |_| {
            count += 1;
            Fire::Rearm(5)
        });
        assert_eq!((n, count), (3, 3));
        assert!(!w.caught_up(5));
        let n = w.advance(5, 10, |_| Fire::Done);
        assert_eq!(n, 1);
        assert!(w.caught_up(5) && w.is_empty());
    }

    #[test]
    fn budget_limits_each_call_and_the_rest_fires_next() {
        let mut w = TimerWheel::new(200, 0);
        for k in 0..100u32 {
            w.schedule(k, 1 + k % 3).unwrap();
        }
        for k in 100..110u32 {
            w.schedule(k, 50).unwrap();
        }
        let mut all = Vec::new();
        let mut sizes = Vec::new();
        while !w.caught_up(3) {
            let got = step(&mut w, 3, 30);
            sizes.push(got.len());
            all.extend(got);
        }
        assert_eq!(sizes, [30, 30, 30, 10]);
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(w.len(), 10);
        assert_eq!(drain(&mut w, 50, 30), (100..110).collect::<Vec<_>>());
    }

    #[test]
    fn long_gap_fires_everything_due_once_with_bounded_work() {
        // Deterministic spread of deadlines over [1, 20_000).
        let mut x: u32 = 12345;
        let mut deadlines = Vec::new();
        for _ in 0..5000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            deadlines.push(1 + (x >> 8) % 19_999);
        }
        let mut w = TimerWheel::new(5000, 0);
        for (k, &d) in deadlines.iter().enumerate() {
            w.schedule(k as u32, d).unwrap();
        }
        let budget = 64;
        let mut seen = vec![0u32; deadlines.len()];
        let mut calls = 0;
        let mut examined = 0;
        for now in [10_000u32, 25_000] {
            while !w.caught_up(now) {
                let fired = step(&mut w, now, budget);
                examined += w.last_call.examined;
                for k in fired {
                    assert!(deadlines[k as usize] <= now);
                    seen[k as usize] += 1;
                }
                calls += 1;
            }
            for (k, &d) in deadlines.iter().enumerate() {
                assert_eq!(
                    seen[k],
                    u32::from(d <= now),
                    "key {k} deadline {d} at {now}"
                );
            }
        }
        assert!(w.is_empty());
        // Whole turns are skipped: a far entry is moved a few times, not once per turn.
        assert!(examined <= 3 * 5000, "{examined} examined");
        assert!(calls <= examined / budget + 3, "{calls} calls");
    }

    #[test]
    fn capacity_exhaustion_and_reuse() {
        let mut w = TimerWheel::new(3, 0);
        assert_eq!(w.capacity(), 3);
        for k in 0..3u32 {
            w.schedule(k, 10 + k).unwrap();
        }
        assert_eq!(w.schedule(3, 5), Err(WheelFull));
        assert_eq!(w.len(), 3);
        assert_eq!(drain(&mut w, 10, 10), vec![0]);
        w.schedule(3, 20).unwrap();
        assert_eq!(w.schedule(4, 20), Err(WheelFull));
        assert_eq!(drain(&mut w, 20, 10), vec![1, 2, 3]);
        assert!(w.is_empty());
        let mut z = TimerWheel::new(0, 0);
        assert_eq!(z.schedule(0u8, 0), Err(WheelFull));
    }

    #[test]
    fn end_of_time() {
        let mut w = TimerWheel::with_slots(4, 8, u32::MAX - 3);
        w.schedule(1, u32::MAX).unwrap();
        w.schedule(2, u32::MAX - 1).unwrap();
        assert_eq!(drain(&mut w, u32::MAX - 1, 10), vec![2]);
        assert_eq!(drain(&mut w, u32::MAX, 10), vec![1]);
        w.schedule(3, u32::MAX).unwrap();
        assert_eq!(drain(&mut w, u32::MAX, 10), vec![3]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Schedule { ahead: u32, behind: u32 },
        Advance { dt: u32, budget: usize, drain: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u32..3000, prop_oneof![3 => Just(0u32), 1 => 0u32..50])
                .prop_map(|(ahead, behind)| Op::Schedule { ahead, behind }),
            2 => (0u32..1500, 1usize..20, any::<bool>())
                .prop_map(|(dt, budget, drain)| Op::Advance { dt, budget, drain }),
        ]
    }

    /// The callback's answer, a pure function of the key, how often it fired and `now`; at
    /// times a re-arm into the present, which must fire again.
    fn decide(key: u32, times: u32, now: u32) -> Fire {
        if times < key % 3 {
            Fire::Rearm(now.saturating_add((key.wrapping_mul(31) + times * 17) % 1500))
        } else {
            Fire::Done
        }
    }

    /// The reference: deadline -> keys, plus key -> deadline.
    #[derive(Default)]
    struct Model {
        by_deadline: BTreeMap<u32, BTreeSet<u32>>,
        deadline: HashMap<u32, u32>,
    }

    impl Model {
        fn insert(&mut self, key: u32, d: u32) {
            assert!(self.deadline.insert(key, d).is_none());
            self.by_deadline.entry(d).or_default().insert(key);
        }
        fn remove(&mut self, key: u32) -> u32 {
            let d = self
                .deadline
                .remove(&key)
                .expect("fired a key not in the wheel");
            let set = self.by_deadline.get_mut(&d).unwrap();
            set.remove(&key);
            if set.is_empty() {
                self.by_deadline.remove(&d);
            }
            d
        }
        fn earliest(&self) -> Option<u32> {
            self.by_deadline.keys().next().copied()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn matches_a_btreemap_model(
            start in prop_oneof![Just(0u32), Just(1_000_000), Just(u32::MAX - 40_000)],
            slots in prop_oneof![Just(2usize), Just(8), Just(64), Just(128), Just(1024)],
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let capacity = 48;
            let mut w = TimerWheel::with_slots(capacity, slots, start);
            let mut model = Model::default();
            let mut times: HashMap<u32, u32> = HashMap::new();
            let mut now = start;
            let mut next_key = 0u32;
            for op in ops {
                match op {
                    Op::Schedule { ahead, behind } => {
                        let d = now.saturating_add(ahead).saturating_sub(behind);
                        let r = w.schedule(next_key, d);
                        if model.deadline.len() == capacity {
                            prop_assert_eq!(r, Err(WheelFull));
                        } else {
                            prop_assert_eq!(r, Ok(()));
                            model.insert(next_key, d);
                        }
                        next_key += 1;
                    }
                    Op::Advance { dt, budget, drain } => {
                        now = now.saturating_add(dt);
                        loop {
                            let mut fired = 0;
                            let mut err = None;
                            let n = w.advance(now, budget, |k| {
                                fired += 1;
                                let d = model.remove(k);
                                if d > now && err.is_none() {
                                    err = Some(format!("key {k} due {d} fired at {now}"));
                                }
                                let t = times.entry(k).or_insert(0);
                                let answer = decide(k, *t, now);
                                *t += 1;
                                if let Fire::Rearm(d) = answer {
                                    model.insert(k, d);
                                }
                                answer
                            });
                            prop_assert_eq!(err, None);
                            prop_assert_eq!(n, fired);
                            prop_assert!(n <= budget);
                            prop_assert_eq!(w.len(), model.deadline.len());
                            if !drain || w.caught_up(now) {
                                break;
                            }
                        }
                        if w.caught_up(now) {
                            prop_assert!(model.earliest().is_none_or(|d| d > now));
                        }
                    }
                }
            }
            // Everything fires in the end, each at or after its deadline.
            let end = u32::MAX;
            while !w.caught_up(end) {
                w.advance(end, 7, |k| {
                    model.remove(k);
                    Fire::Done
                });
            }
            prop_assert!(w.is_empty());
            prop_assert!(model.deadline.is_empty());
        }
    }
}
