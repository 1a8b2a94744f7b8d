//! A per-core timing wheel that expires connections without scanning the connection table.
//!
//! # Contract
//!
//! [`TimerWheel`] holds at most one entry per id `0..capacity` (the connection table's slab
//! ids): the entry is the id's pair of list links, 8 bytes, in an array indexed by id, so the
//! wheel allocates nothing after construction and can never be full. [`TimerWheel::schedule`]
//! places an id at a deadline (whole dataplane seconds), [`TimerWheel::cancel`] takes it out
//! in O(1) (a connection removed early leaves nothing behind), and
//! [`TimerWheel::advance`] hands ids to a callback, at most `budget` per call, which answers
//! [`Fire::Done`] (the entry is gone) or [`Fire::Rearm`] (placed again at a new deadline).
//!
//! The wheel stores no deadline: the caller keeps it (the connection's `expires`). So the
//! callback may be handed an id before its current deadline, and must check: an entry is
//! handed out when its placement second comes, which is its deadline when scheduled, or the
//! end of the wheel's span for a deadline beyond it, or earlier than the deadline the caller
//! has since moved it to. The guarantee: an id scheduled at `d` (and not cancelled or
//! rescheduled since) is handed out by the time `advance` has caught up with any `now >= d`,
//! never before its placement second (never before `d` when `d` is within the span), and
//! answering `Rearm(later)` for an entry not yet due keeps that guarantee for the later
//! deadline.
//!
//! # Intended use (lazy re-arm)
//!
//! A live connection has exactly one entry, scheduled when it is created. Packets that push
//! its deadline later never touch the wheel (they only write the connection's `expires`); a
//! packet that brings it earlier (a TCP state with a shorter timeout) reschedules it. When the
//! entry comes round, the table compares: `expires <= now` expires the connection (`Done`),
//! otherwise `Rearm(expires)`. A connection costs one wheel operation per timeout period, not
//! one per packet.
//!
//! # Design
//!
//! A hashed timing wheel of `slots` one-second buckets (a power of two; [`DEFAULT_SLOTS`] =
//! 1024 covers 17 minutes, more than the longest default IPVS timeout, ESTABLISHED's 900 s;
//! longer timeouts come round once per turn and are re-armed) of doubly linked lists threaded
//! through the link array. A link's `prev` is either the previous id or, for the first entry,
//! the list it heads (tagged with the top bit), so unlinking needs no search.
//!
//! `cursor` is the next second whose bucket has not been drained. Every entry in a bucket was
//! placed at a second `p` with `cursor <= p < cursor + slots`, so the bucket `p % slots` holds
//! only entries placed at `p`, and draining it at `cursor == p` examines no entry twice. An
//! entry scheduled with a deadline already behind `cursor` goes to a separate `due` list that
//! the next `advance` hands out first, whatever its `now`.
//!
//! An occupancy bitmap (one bit per bucket) lets `advance` hop from an empty bucket straight to
//! the next occupied one, or past `now`, so idle seconds cost nothing. After a long gap (a
//! stalled loop, a test jumping hours ahead) `advance` first skips whole turns: since every
//! bucket then lies behind `now`, it may count each as placed a whole number of turns later and
//! walk only the last turn or two before `now`; all entries are still examined, those due fire,
//! and a far entry is handed out at most about twice instead of once per skipped turn.
//!
//! Bounded work: each `advance` call examines at most `budget` entries and makes at most
//! `budget + 2` bitmap scans of `slots / 64` words each.

use mem::HugeSlice;

/// Buckets in a wheel made by [`TimerWheel::new`]: one second each, 17 minutes in all.
pub const DEFAULT_SLOTS: usize = 1024;

/// No id (end of a list; `prev` of an id not in the wheel).
const NIL: u32 = u32::MAX;

/// Tag of a `prev` naming the list the entry heads (bucket index, or `slots` for `due`).
const HEAD: u32 = 1 << 31;

/// What to do with an entry that has just been handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fire {
    /// Free the entry.
    Done,
    /// Keep the entry, due again at this deadline (seconds). A deadline at or before `now`
    /// hands it out again, possibly in the same [`TimerWheel::advance`] call.
    Rearm(u32),
}

/// One id's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    next: u32,
    prev: u32,
}

const UNLINKED: Link = Link {
    next: NIL,
    prev: NIL,
};

/// A hashed timing wheel with one-second ticks over ids `0..capacity` (see the module
/// documentation).
pub struct TimerWheel {
    links: HugeSlice<Link>,
    /// Head of each bucket's list, then of the due list (index `slots`).
    heads: Box<[u32]>,
    /// Bit `s` set iff bucket `s` is non-empty.
    occupied: Box<[u64]>,
    /// `slots - 1`.
    mask: u64,
    /// The next second whose bucket has not been drained.
    cursor: u64,
    /// The latest `now` seen (time never goes backwards).
    latest: u32,
    /// Ids in the wheel.
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

impl std::fmt::Debug for TimerWheel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimerWheel")
            .field("len", &self.len)
            .field("capacity", &self.links.len())
            .field("slots", &self.slots())
            .field("cursor", &self.cursor)
            .field("latest", &self.latest)
            .finish()
    }
}

impl TimerWheel {
    /// A wheel of [`DEFAULT_SLOTS`] buckets for ids `0..capacity`, whose clock starts at `now`.
    pub fn new(capacity: usize, now: u32) -> Self {
        Self::with_slots(capacity, DEFAULT_SLOTS, now)
    }

    /// A wheel of `slots` buckets (a power of two, at least 2).
    ///
    /// # Panics
    /// If `slots` is not a power of two of at least 2, or ids or slots reach 2³¹.
    pub fn with_slots(capacity: usize, slots: usize, now: u32) -> Self {
        assert!(
            slots >= 2 && slots.is_power_of_two() && slots < HEAD as usize,
            "timer wheel slots must be a power of two >= 2, not {slots}"
        );
        assert!(
            capacity < HEAD as usize,
            "timer wheel capacity {capacity} too large"
        );
        TimerWheel {
            links: HugeSlice::new(capacity, UNLINKED),
            heads: vec![NIL; slots + 1].into_boxed_slice(),
            occupied: vec![0; slots.div_ceil(64)].into_boxed_slice(),
            mask: slots as u64 - 1,
            cursor: u64::from(now),
            latest: now,
            len: 0,
            #[cfg(test)]
            last_call: CallStats::default(),
        }
    }

    /// Places `id` (not in the wheel) at `deadline` (seconds; one already past is handed out
    /// on the next [`advance`](Self::advance)). O(1).
    #[inline]
    pub fn schedule(&mut self, id: u32, deadline: u32) {
        debug_assert!(!self.contains(id), "id {id} already scheduled");
        self.len += 1;
        self.place(id, deadline);
    }

    /// Moves `id` to `deadline`, scheduling it if it was not in the wheel. O(1).
    #[inline]
    pub fn reschedule(&mut self, id: u32, deadline: u32) {
        if self.unlink(id) {
            self.len -= 1;
        }
        self.schedule(id, deadline);
    }

    /// Takes `id` out of the wheel; false if it was not in it. O(1).
    #[inline]
    pub fn cancel(&mut self, id: u32) -> bool {
        let was = self.unlink(id);
        if was {
            self.len -= 1;
        }
        was
    }

    /// Whether `id` is in the wheel.
    pub fn contains(&self, id: u32) -> bool {
        self.links[id as usize].prev != NIL
    }

    /// Advances the clock to `now` (seconds; an earlier `now` than already seen counts as the
    /// latest one) and hands out entries whose placement second is at or before it (every
    /// entry due by `now`, and far ones to re-arm), at most `budget` of them; entries left over
    /// stay for the next call. Returns how many were handed out.
    pub fn advance(&mut self, now: u32, budget: usize, mut fire: impl FnMut(u32) -> Fire) -> usize {
        let now = now.max(self.latest);
        self.latest = now;
        let now = u64::from(now);
        let slots = self.mask + 1;
        let due = slots as usize;
        if now >= self.cursor + self.mask {
            // Skip whole turns: relabel every bucket as placed one or more turns later, keeping
            // the last turn before `now` to walk. Every bucket then lies at or before `now`, so
            // each entry is still examined in this catch-up, and one whose deadline has passed
            // fires in it; skipping only saves handing far entries out round and round.
            self.cursor += (now - self.mask - self.cursor) / slots * slots;
        }
        let mut examined = 0;
        #[cfg(test)]
        let mut scans = 0;
        loop {
            let list = if self.heads[due] != NIL {
                due
            } else if self.cursor > now {
                break;
            } else {
                let s = (self.cursor & self.mask) as usize;
                if self.heads[s] == NIL {
                    // The bucket at `cursor` is empty: hop to the next occupied second, or
                    // past `now`.
                    #[cfg(test)]
                    {
                        scans += 1;
                    }
                    self.cursor = match self.next_occupied(s) {
                        Some(d) => (self.cursor + d).min(now + 1),
                        None => now + 1,
                    };
                    continue;
                }
                s
            };
            if examined == budget {
                break;
            }
            let id = self.heads[list];
            self.unlink(id);
            examined += 1;
            match fire(id) {
                Fire::Done => self.len -= 1,
                Fire::Rearm(deadline) => self.place(id, deadline),
            }
        }
        #[cfg(test)]
        {
            self.last_call = CallStats { examined, scans };
        }
        examined
    }

    /// True when every entry placed at or before `now` has been handed out, so
    /// `advance(now, ..)` would hand out nothing. False means the last call stopped on its
    /// budget, or the clock has not been advanced to `now` yet.
    pub fn caught_up(&self, now: u32) -> bool {
        self.heads[self.slots()] == NIL && self.cursor > u64::from(now.max(self.latest))
    }

    /// The wheel's clock: the latest `now` [`advance`](Self::advance) has seen. A caller
    /// deciding whether a handed-out entry is due must compare with this, not an earlier
    /// `now` (else an entry re-armed behind the cursor comes straight back).
    pub fn latest(&self) -> u32 {
        self.latest
    }

    /// Ids in the wheel.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No id in the wheel.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids the wheel takes: `0..capacity`.
    pub fn capacity(&self) -> usize {
        self.links.len()
    }

    /// Buckets (seconds) in one turn of the wheel.
    pub fn slots(&self) -> usize {
        self.heads.len() - 1
    }

    /// Bytes held: the link array, list heads and bitmap.
    pub fn memory_bytes(&self) -> usize {
        self.links.footprint() + self.heads.len() * 4 + self.occupied.len() * 8
    }

    /// Links the unlinked `id` into the due list or its bucket by `deadline`.
    #[inline]
    fn place(&mut self, id: u32, deadline: u32) {
        let deadline = u64::from(deadline);
        let list = if deadline < self.cursor {
            self.slots()
        } else {
            let at = deadline.min(self.cursor + self.mask);
            let s = (at & self.mask) as usize;
            self.occupied[s / 64] |= 1 << (s % 64);
            s
        };
        let next = self.heads[list];
        if next != NIL {
            self.links[next as usize].prev = id;
        }
        self.links[id as usize] = Link {
            next,
            prev: HEAD | list as u32,
        };
        self.heads[list] = id;
    }

    /// Unlinks `id` from its list (the count is the caller's); false if it was in none.
    #[inline]
    fn unlink(&mut self, id: u32) -> bool {
        let Link { next, prev } = self.links[id as usize];
        if prev == NIL {
            return false;
        }
        if prev & HEAD != 0 {
            let list = (prev & !HEAD) as usize;
            self.heads[list] = next;
            if next == NIL && list < self.slots() {
                self.occupied[list / 64] &= !(1 << (list % 64));
            }
        } else {
            self.links[prev as usize].next = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        }
        self.links[id as usize] = UNLINKED;
        true
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

    /// A wheel plus the deadlines its user keeps, answering as the connection table does:
    /// `Done` when due, else `Rearm` at the kept deadline.
    struct Lazy {
        w: TimerWheel,
        deadline: HashMap<u32, u32>,
    }

    impl Lazy {
        fn new(w: TimerWheel) -> Lazy {
            Lazy {
                w,
                deadline: HashMap::new(),
            }
        }
        fn schedule(&mut self, id: u32, d: u32) {
            self.w.schedule(id, d);
            self.deadline.insert(id, d);
        }
        /// One call; returns the ids that fired (were due), checking the per-call bounds.
        fn step(&mut self, now: u32, budget: usize) -> Vec<u32> {
            let now = now.max(self.w.latest());
            let mut out = Vec::new();
            let deadline = &mut self.deadline;
            let n = self.w.advance(now, budget, |id| {
                let d = deadline[&id];
                if d <= now {
                    deadline.remove(&id);
                    out.push(id);
                    Fire::Done
                } else {
                    Fire::Rearm(d)
                }
            });
            assert!(n >= out.len());
            assert!(n <= budget);
            assert!(self.w.last_call.examined <= budget);
            assert!(
                self.w.last_call.scans <= budget + 2,
                "{:?}",
                self.w.last_call
            );
            out
        }
        /// Advances to `now` until caught up; returns the ids fired, sorted.
        fn drain(&mut self, now: u32, budget: usize) -> Vec<u32> {
            let mut out = Vec::new();
            let mut calls = 0;
            while !self.w.caught_up(now) {
                out.extend(self.step(now, budget));
                calls += 1;
                assert!(calls < 1_000_000, "no progress");
            }
            out.sort_unstable();
            out
        }
    }

    #[test]
    fn entries_fire_at_not_before_their_deadline() {
        let t0 = 500;
        let mut l = Lazy::new(TimerWheel::new(100, t0));
        for k in 0..10u32 {
            l.schedule(k, t0 + k);
        }
        for k in 0..10u32 {
            // Within the span, nothing is even handed out early.
            let before = l.w.len();
            assert_eq!(l.drain(t0 + k, 1000), vec![k], "second {k}");
            assert_eq!(l.w.len(), before - 1);
            assert!(l.step(t0 + k, 1000).is_empty());
        }
        assert!(l.w.is_empty());
    }

    #[test]
    fn a_past_deadline_fires_on_the_next_call() {
        let mut l = Lazy::new(TimerWheel::new(10, 100));
        assert!(l.drain(100, 10).is_empty());
        l.schedule(1, 100);
        l.schedule(2, 3);
        // Same `now`: still fires, both.
        assert_eq!(l.drain(100, 10), vec![1, 2]);
        // A clock that goes backwards counts as the latest.
        l.schedule(3, 100);
        assert_eq!(l.drain(50, 10), vec![3]);
    }

    #[test]
    fn cancel_and_reschedule_in_any_list_position() {
        let mut w = TimerWheel::with_slots(10, 8, 0);
        for id in 0..6 {
            w.schedule(id, 3);
        }
        w.schedule(6, 0);
        w.schedule(7, 0);
        // Head, middle and tail of bucket 3's list (5 4 3 2 1 0).
        assert!(w.cancel(5) && w.cancel(2) && w.cancel(0));
        assert!(!w.cancel(0) && !w.cancel(9));
        assert_eq!(w.len(), 5);
        w.reschedule(3, 1);
        w.reschedule(9, 1);
        assert!(w.contains(9) && !w.contains(0));
        let mut seen = Vec::new();
        w.advance(2, 100, |id| {
            seen.push(id);
            Fire::Done
        });
        seen.sort_unstable();
        assert_eq!(seen, [3, 6, 7, 9]);
        let mut seen = Vec::new();
        w.advance(3, 100, |id| {
            seen.push(id);
            Fire::Done
        });
        seen.sort_unstable();
        assert_eq!(seen, [1, 4]);
        assert!(w.is_empty());
        assert!(w.occupied.iter().all(|&b| b == 0));
        // Behind the cursor: the due list (2 then 0); cancel its tail.
        w.schedule(0, 1);
        w.schedule(2, 2);
        assert!(w.cancel(0));
        let mut seen = Vec::new();
        w.advance(4, 100, |id| {
            seen.push(id);
            Fire::Done
        });
        assert_eq!(seen, [2]);
        assert!(w.is_empty() && w.caught_up(4));
    }

    #[test]
    fn many_entries_in_one_bucket() {
        let mut l = Lazy::new(TimerWheel::with_slots(30_000, 64, 0));
        for k in 0..10_000u32 {
            l.schedule(k, 10);
        }
        // Same bucket, one and two turns later.
        for k in 10_000..20_000u32 {
            l.schedule(k, 10 + 64);
        }
        for k in 20_000..30_000u32 {
            l.schedule(k, 10 + 128);
        }
        assert!(l.drain(9, 100_000).is_empty());
        assert_eq!(l.drain(10, 100_000), (0..10_000).collect::<Vec<_>>());
        assert!(l.drain(73, 100_000).is_empty());
        assert_eq!(l.drain(74, 100_000), (10_000..20_000).collect::<Vec<_>>());
        assert_eq!(l.drain(138, 100_000), (20_000..30_000).collect::<Vec<_>>());
        assert!(l.w.is_empty());
    }

    #[test]
    fn deadlines_beyond_the_span_fire_on_time() {
        let deadlines = [1, 5, 7, 8, 9, 15, 16, 17, 100, 1000, 4097];
        let mut l = Lazy::new(TimerWheel::with_slots(20, 8, 0));
        for (k, &d) in deadlines.iter().enumerate() {
            l.schedule(k as u32, d);
        }
        for now in 0..=5000u32 {
            let want: Vec<u32> = (0..deadlines.len() as u32)
                .filter(|&k| deadlines[k as usize] == now)
                .collect();
            assert_eq!(l.drain(now, 100), want, "second {now}");
        }
        assert!(l.w.is_empty());

        // The default wheel, an hour ahead, jumping there in one go.
        let mut l = Lazy::new(TimerWheel::new(4, 7));
        l.schedule(1, 7 + 3600);
        assert!(l.drain(7 + 3599, 10).is_empty());
        assert_eq!(l.drain(7 + 3600, 10), vec![1]);
    }

    #[test]
    fn rearm_keeps_the_entry() {
        let mut w = TimerWheel::new(1, 0);
        w.schedule(0, 10);
        let mut fired_at = Vec::new();
        let mut now = 0;
        while now <= 3000 {
            w.advance(now, 10, |k| {
                assert_eq!(k, 0);
                fired_at.push(now);
                match fired_at.len() {
                    1 => Fire::Rearm(25),
                    2 => Fire::Rearm(2025),
                    // Handed out at the end of the span, before its deadline: re-armed.
                    3 => Fire::Rearm(2025),
                    _ => Fire::Done,
                }
            });
            now += 1;
        }
        assert_eq!(fired_at, [10, 25, 25 + 1023, 2025]);
        assert!(w.is_empty());
    }

    #[test]
    fn rearm_into_the_past_fires_again_within_the_budget() {
        let mut w = TimerWheel::new(2, 0);
        w.schedule(1, 5);
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
        let mut l = Lazy::new(TimerWheel::new(200, 0));
        for k in 0..100u32 {
            l.schedule(k, 1 + k % 3);
        }
        for k in 100..110u32 {
            l.schedule(k, 50);
        }
        let mut all = Vec::new();
        let mut sizes = Vec::new();
        while !l.w.caught_up(3) {
            let got = l.step(3, 30);
            sizes.push(got.len());
            all.extend(got);
        }
        assert_eq!(sizes, [30, 30, 30, 10]);
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(l.w.len(), 10);
        assert_eq!(l.drain(50, 30), (100..110).collect::<Vec<_>>());
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
        let mut l = Lazy::new(TimerWheel::new(5000, 0));
        for (k, &d) in deadlines.iter().enumerate() {
            l.schedule(k as u32, d);
        }
        let budget = 64;
        let mut seen = vec![0u32; deadlines.len()];
        let mut calls = 0;
        let mut examined = 0;
        for now in [10_000u32, 25_000] {
            while !l.w.caught_up(now) {
                let fired = l.step(now, budget);
                examined += l.w.last_call.examined;
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
        assert!(l.w.is_empty());
        // Whole turns are skipped: a far entry is handed out a few times, not once per turn.
        assert!(examined <= 3 * 5000, "{examined} examined");
        assert!(calls <= examined / budget + 3, "{calls} calls");
    }

    #[test]
    fn end_of_time() {
        let mut l = Lazy::new(TimerWheel::with_slots(4, 8, u32::MAX - 3));
        l.schedule(1, u32::MAX);
        l.schedule(2, u32::MAX - 1);
        assert_eq!(l.drain(u32::MAX - 1, 10), vec![2]);
        assert_eq!(l.drain(u32::MAX, 10), vec![1]);
        l.schedule(3, u32::MAX);
        assert_eq!(l.drain(u32::MAX, 10), vec![3]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Schedule { id: u32, ahead: u32, behind: u32 },
        Cancel { id: u32 },
        Advance { dt: u32, budget: usize, drain: bool },
    }

    const IDS: u32 = 48;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..IDS, 0u32..3000, prop_oneof![3 => Just(0u32), 1 => 0u32..50])
                .prop_map(|(id, ahead, behind)| Op::Schedule { id, ahead, behind }),
            1 => (0..IDS).prop_map(|id| Op::Cancel { id }),
            2 => (0u32..1500, 1usize..20, any::<bool>())
                .prop_map(|(dt, budget, drain)| Op::Advance { dt, budget, drain }),
        ]
    }

    /// The callback's answer for a due entry, a pure function of the id, how often it fired
    /// and `now`; at times a re-arm into the present, which must fire again.
    fn decide(id: u32, times: u32, now: u32) -> Option<u32> {
        (times < id % 3).then(|| now.saturating_add((id.wrapping_mul(31) + times * 17) % 1500))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The wheel against a map of deadlines: an entry is reported due exactly when the
        /// model says, with schedule (or reschedule), cancel and re-arms mixed in.
        #[test]
        fn matches_a_btreemap_model(
            start in prop_oneof![Just(0u32), Just(1_000_000), Just(u32::MAX - 40_000)],
            slots in prop_oneof![Just(2usize), Just(8), Just(64), Just(128), Just(1024)],
            ops in proptest::collection::vec(op(), 1..120),
        ) {
            let mut w = TimerWheel::with_slots(IDS as usize, slots, start);
            // id -> deadline; and the set of (deadline, id) for "earliest".
            let mut model: HashMap<u32, u32> = HashMap::new();
            let mut times: HashMap<u32, u32> = HashMap::new();
            let mut now = start;
            for op in ops {
                match op {
                    Op::Schedule { id, ahead, behind } => {
                        let d = now.saturating_add(ahead).saturating_sub(behind);
                        w.reschedule(id, d);
                        model.insert(id, d);
                    }
                    Op::Cancel { id } => {
                        prop_assert_eq!(w.cancel(id), model.remove(&id).is_some());
                    }
                    Op::Advance { dt, budget, drain } => {
                        now = now.saturating_add(dt);
                        loop {
                            let mut err = None;
                            let n = w.advance(now, budget, |id| {
                                let Some(&d) = model.get(&id) else {
                                    err = Some(format!("id {id} handed out but not scheduled"));
                                    return Fire::Done;
                                };
                                if d > now {
                                    return Fire::Rearm(d);
                                }
                                let t = times.entry(id).or_insert(0);
                                let answer = decide(id, *t, now);
                                *t += 1;
                                match answer {
                                    Some(d) => {
                                        model.insert(id, d);
                                        Fire::Rearm(d)
                                    }
                                    None => {
                                        model.remove(&id);
                                        Fire::Done
                                    }
                                }
                            });
                            prop_assert_eq!(err, None);
                            prop_assert!(n <= budget);
                            prop_assert_eq!(w.len(), model.len());
                            if !drain || w.caught_up(now) {
                                break;
                            }
                        }
                        if w.caught_up(now) {
                            let due: BTreeSet<u32> = model
                                .iter()
                                .filter(|&(_, &d)| d <= now)
                                .map(|(&id, _)| id)
                                .collect();
                            prop_assert!(due.is_empty(), "due at {} but not handed out: {:?}", now, due);
                        }
                    }
                }
                for id in 0..IDS {
                    prop_assert_eq!(w.contains(id), model.contains_key(&id));
                }
            }
            // Everything fires in the end.
            let end = u32::MAX;
            let mut by_deadline: BTreeMap<u32, u32> = BTreeMap::new();
            while !w.caught_up(end) {
                w.advance(end, 7, |id| {
                    *by_deadline.entry(model.remove(&id).expect("scheduled")).or_default() += 1;
                    Fire::Done
                });
            }
            prop_assert!(w.is_empty());
            prop_assert!(model.is_empty());
        }
    }
}
