//! The tuple index: 5-tuple → connection id, in 64-byte buckets of [`BUCKET_SLOTS`] entries,
//! each a 16-bit tag of the tuple's hash and a 32-bit connection id.
//!
//! Every connection has one entry per direction the director sees (the client's tuple; for NAT
//! and FullNAT also the real server's reply tuple), so a packet of either direction finds its
//! connection with one lookup. The index does not hold the tuples: a tag match names a
//! candidate connection and the caller verifies the full tuple against the connection itself
//! (which it reads next anyway), so a bucket is exactly one cache line and an entry costs 6
//! bytes. A false tag match (about 1 in 3000 lookups when both buckets are full) costs one
//! extra read of a connection.
//!
//! Placement is two-choice cuckoo hashing, as DPDK's rte_hash: a tuple's primary bucket comes
//! from its hash, its alternative from the primary and the tag alone (partial-key cuckoo
//! hashing, as cuckoo filters do), so an entry can be moved to its other bucket without its
//! tuple. The bucket count need not be a power of two (a multiply-shift maps the hash onto it),
//! so the array is sized to the connections it must hold, not rounded up. Entries move during
//! displacement, which is why they carry the connection's id and never the other way round;
//! they are removed explicitly, by tag and id, when their connection goes.

use mem::{HugeSlice, eq_u16x10, prefetch};

/// Entries per bucket (a bucket is one 64-byte cache line).
pub const BUCKET_SLOTS: usize = 10;

/// Longest cuckoo displacement walk for one insert.
pub const MAX_KICKS: usize = 64;

/// The load the index is sized for: it gets `capacity × 100 / LOAD_PERCENT` entries, and
/// two-choice buckets of ten fill past this before displacement gives up.
pub const LOAD_PERCENT: usize = 95;

/// A packet's identity: addresses and ports in host order, as they appear in the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// IP protocol (6 TCP, 17 UDP); never 0 for a real key.
    pub proto: u8,
    /// Source address.
    pub saddr: u32,
    /// Destination address.
    pub daddr: u32,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// The folded multiply (foldhash's and ahash's core): the 128-bit product's halves XORed, so
/// every input bit reaches the middle of the output and the low bits see the high ones.
#[inline(always)]
fn fold(x: u64, y: u64) -> u64 {
    let p = u128::from(x) * u128::from(y);
    (p as u64) ^ ((p >> 64) as u64)
}

impl FlowKey {
    /// The key's hash under `seed` (random per worker, so clients cannot aim at one bucket):
    /// the addresses and the ports, each XORed with half the seed, folded together, then
    /// folded once more with a constant so that both halves of the result are mixed.
    #[inline(always)]
    pub fn hash(&self, seed: [u64; 2]) -> FlowHash {
        let a = (u64::from(self.saddr) << 32 | u64::from(self.daddr)) ^ seed[0];
        let b = (u64::from(self.sport) << 32 | u64::from(self.dport) << 16 | u64::from(self.proto))
            ^ seed[1];
        FlowHash(fold(fold(a, b), 0x9e37_79b9_7f4a_7c15))
    }
}

/// A tuple's hash: its primary bucket (low 32 bits) and its tag (high 16 bits), so the
/// alternative bucket too. Computed once per packet and passed down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHash(pub u64);

impl FlowHash {
    /// The tag stored with the entry; never 0 (which marks an empty slot).
    #[inline(always)]
    fn tag(self) -> u16 {
        let t = (self.0 >> 48) as u16;
        t | u16::from(t == 0)
    }
}

/// Which way a tuple points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Dir {
    /// Client → real server (the client's tuple).
    In = 1,
    /// Real server → client (the reply tuple, NAT and FullNAT).
    Out = 2,
}

/// One cache line: ten tags (0 = empty slot) and the ten connection ids they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u16; BUCKET_SLOTS],
    ids: [u32; BUCKET_SLOTS],
    _spare: u32,
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

impl Bucket {
    const EMPTY: Bucket = Bucket {
        tags: [0; BUCKET_SLOTS],
        ids: [0; BUCKET_SLOTS],
        _spare: 0,
    };

    /// Bit `2i` set iff slot `i` holds `tag` (see [`slot`]).
    #[inline(always)]
    fn matching(&self, tag: u16) -> u32 {
        eq_u16x10(&self.tags, tag)
    }

    #[inline(always)]
    fn free_slot(&self) -> Option<usize> {
        let m = self.matching(0);
        (m != 0).then(|| slot(m))
    }
}

/// The candidate connections of a hash ([`FlowIndex::candidates`]).
#[derive(Debug)]
pub struct Candidates<'a> {
    index: &'a FlowIndex,
    bucket: usize,
    mask: u32,
    tag: u16,
    first: bool,
}

impl Iterator for Candidates<'_> {
    type Item = u32;

    #[inline(always)]
    fn next(&mut self) -> Option<u32> {
        loop {
            if self.mask != 0 {
                let i = slot(self.mask);
                self.mask &= self.mask - 1;
                return Some(self.index.buckets[self.bucket].ids[i]);
            }
            if !self.first {
                return None;
            }
            self.first = false;
            let alt = self.index.alt(self.bucket, self.tag);
            if alt == self.bucket {
                return None;
            }
            self.bucket = alt;
            self.mask = self.index.buckets[alt].matching(self.tag);
        }
    }
}

/// The first slot named by a [`Bucket::matching`] mask (non-zero).
#[inline(always)]
fn slot(mask: u32) -> usize {
    mask.trailing_zeros() as usize / 2
}

/// The bucket of a new tuple (and its alternative) is full and displacement found no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

/// A fixed-capacity tuple index owned by one worker.
#[derive(Debug)]
pub struct FlowIndex {
    buckets: HugeSlice<Bucket>,
    nbuckets: u32,
    kick: u32,
    len: usize,
}

impl FlowIndex {
    /// An index for `capacity` tuples: `capacity × 100 / LOAD_PERCENT` slots in whole buckets
    /// (at least one).
    pub fn new(capacity: usize) -> FlowIndex {
        let slots = capacity.saturating_mul(100).div_ceil(LOAD_PERCENT);
        let nbuckets = slots.div_ceil(BUCKET_SLOTS).max(1);
        assert!(
            nbuckets <= u32::MAX as usize,
            "index of {capacity} tuples too large"
        );
        FlowIndex {
            buckets: HugeSlice::new(nbuckets, Bucket::EMPTY),
            nbuckets: nbuckets as u32,
            kick: 0,
            len: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * BUCKET_SLOTS
    }

    /// Tuples stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held (the bucket array).
    pub fn memory_bytes(&self) -> usize {
        self.buckets.footprint()
    }

    /// Bytes per slot (a 64-byte bucket holds [`BUCKET_SLOTS`]).
    pub const fn bytes_per_slot() -> f64 {
        64.0 / BUCKET_SLOTS as f64
    }

    /// Whether the buckets sit in a huge-page-advised mapping.
    pub fn is_mapped(&self) -> bool {
        self.buckets.is_mapped()
    }

    #[inline(always)]
    fn primary(&self, h: FlowHash) -> usize {
        (((h.0 & 0xffff_ffff) * u64::from(self.nbuckets)) >> 32) as usize
    }

    /// The other bucket of an entry with `tag` in bucket `b` (an involution: the alternative
    /// of the alternative is `b`).
    #[inline(always)]
    fn alt(&self, b: usize, tag: u16) -> usize {
        let n = self.nbuckets as usize;
        let x = ((u64::from(u32::from(tag).wrapping_mul(0x9e37_79b1)) * n as u64) >> 32) as usize;
        let r = x + n - b;
        if r >= n { r - n } else { r }
    }

    /// Starts loading the primary bucket of `h` into the cache.
    #[inline(always)]
    pub fn prefetch(&self, h: FlowHash) {
        prefetch(&self.buckets[self.primary(h)]);
    }

    /// Starts loading the alternative bucket of `h` into the cache.
    #[inline(always)]
    pub fn prefetch_alt(&self, h: FlowHash) {
        let b = self.alt(self.primary(h), h.tag());
        prefetch(&self.buckets[b]);
    }

    /// The connection of the first entry in `h`'s primary bucket carrying its tag.
    #[inline(always)]
    pub fn first_candidate(&self, h: FlowHash) -> Option<u32> {
        let bucket = &self.buckets[self.primary(h)];
        let m = bucket.matching(h.tag());
        (m != 0).then(|| bucket.ids[slot(m)])
    }

    #[inline(always)]
    fn scan<R>(&self, b: usize, tag: u16, verify: &mut impl FnMut(u32) -> Option<R>) -> Option<R> {
        let bucket = &self.buckets[b];
        let mut m = bucket.matching(tag);
        while m != 0 {
            let i = slot(m);
            if let Some(r) = verify(bucket.ids[i]) {
                return Some(r);
            }
            m &= m - 1;
        }
        None
    }

    /// The first candidate connection of `h` (primary bucket first) that `verify` accepts,
    /// with what `verify` says of it. `verify` sees every connection whose entry carries `h`'s
    /// tag in either bucket until it answers `Some`.
    #[inline(always)]
    pub fn find<R>(&self, h: FlowHash, mut verify: impl FnMut(u32) -> Option<R>) -> Option<R> {
        let tag = h.tag();
        let b1 = self.primary(h);
        if let Some(r) = self.scan(b1, tag, &mut verify) {
            return Some(r);
        }
        let b2 = self.alt(b1, tag);
        if b2 == b1 {
            return None;
        }
        self.scan(b2, tag, &mut verify)
    }

    /// Every connection whose entry carries `h`'s tag, primary bucket first: what
    /// [`FlowIndex::find`] offers its `verify`, as an iterator (for callers that verify
    /// inline).
    #[inline(always)]
    pub fn candidates(&self, h: FlowHash) -> Candidates<'_> {
        let tag = h.tag();
        let b = self.primary(h);
        Candidates {
            index: self,
            bucket: b,
            mask: self.buckets[b].matching(tag),
            tag,
            first: true,
        }
    }

    /// Removes connection `id`'s entry for a tuple hashing to `h`; false if there is none.
    pub fn remove(&mut self, h: FlowHash, id: u32) -> bool {
        let tag = h.tag();
        let b1 = self.primary(h);
        for b in [b1, self.alt(b1, tag)] {
            let bucket = &mut self.buckets[b];
            let mut m = bucket.matching(tag);
            while m != 0 {
                let i = slot(m);
                if bucket.ids[i] == id {
                    bucket.tags[i] = 0;
                    self.len -= 1;
                    return true;
                }
                m &= m - 1;
            }
        }
        false
    }

    /// Indexes connection `id` under a tuple hashing to `h`: into a free slot of its primary
    /// bucket, else of its alternative, else by cuckoo displacement: a resident of a full
    /// bucket moves to its own other bucket, up to [`MAX_KICKS`] moves, all undone if no room
    /// turns up.
    #[inline]
    pub fn insert(&mut self, h: FlowHash, id: u32) -> Result<(), TableFull> {
        let tag = h.tag();
        let b1 = self.primary(h);
        let b2 = self.alt(b1, tag);
        for b in [b1, b2] {
            if let Some(i) = self.buckets[b].free_slot() {
                let bucket = &mut self.buckets[b];
                bucket.tags[i] = tag;
                bucket.ids[i] = id;
                self.len += 1;
                return Ok(());
            }
        }
        self.displace(tag, id, b1)?;
        self.len += 1;
        Ok(())
    }

    /// Cuckoo walk starting by evicting a resident of `bucket` (full) in favour of
    /// (`tag`, `id`).
    fn displace(&mut self, tag: u16, id: u32, mut bucket: usize) -> Result<(), TableFull> {
        let mut path = [(0usize, 0usize); MAX_KICKS];
        let mut homeless = (tag, id);
        for step in path.iter_mut() {
            self.kick = self.kick.wrapping_add(0x9e37_79b9);
            let slot = (self.kick >> 16) as usize % BUCKET_SLOTS;
            *step = (bucket, slot);
            let b = &mut self.buckets[bucket];
            let victim = (b.tags[slot], b.ids[slot]);
            (b.tags[slot], b.ids[slot]) = homeless;
            homeless = victim;
            let alt = self.alt(bucket, homeless.0);
            if let Some(i) = self.buckets[alt].free_slot() {
                let b = &mut self.buckets[alt];
                (b.tags[i], b.ids[i]) = homeless;
                return Ok(());
            }
            bucket = alt;
        }
        // No room: put every resident back where it was; the new entry is refused.
        for &(b, slot) in path.iter().rev() {
            let bk = &mut self.buckets[b];
            let back = (bk.tags[slot], bk.ids[slot]);
            (bk.tags[slot], bk.ids[slot]) = homeless;
            homeless = back;
        }
        debug_assert!(homeless == (tag, id));
        Err(TableFull)
    }

    /// Every connection id stored, once per entry (a full scan, off the hot path).
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.buckets.iter().flat_map(|b| {
            b.tags
                .iter()
                .zip(b.ids.iter())
                .filter(|(t, _)| **t != 0)
                .map(|(_, &id)| id)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u64; 2] = [0x1234, 0x5678];

    fn key(i: u32) -> FlowKey {
        FlowKey {
            proto: 6,
            saddr: 0x0a00_0002 + (i >> 16),
            daddr: 0x0a00_0064,
            sport: (i & 0xffff) as u16,
            dport: 80,
        }
    }

    /// The index with the keys kept aside, as the connection table keeps them in its slab.
    struct Keyed {
        index: FlowIndex,
        keys: Vec<Option<FlowKey>>,
    }

    impl Keyed {
        fn new(capacity: usize, ids: usize) -> Keyed {
            Keyed {
                index: FlowIndex::new(capacity),
                keys: vec![None; ids],
            }
        }
        fn insert(&mut self, k: FlowKey, id: u32) -> Result<(), TableFull> {
            self.index.insert(k.hash(SEED), id)?;
            self.keys[id as usize] = Some(k);
            Ok(())
        }
        fn lookup(&self, k: &FlowKey) -> Option<u32> {
            self.index.find(k.hash(SEED), |id| {
                (self.keys[id as usize] == Some(*k)).then_some(id)
            })
        }
        fn remove(&mut self, k: &FlowKey) -> bool {
            let Some(id) = self.lookup(k) else {
                return false;
            };
            self.keys[id as usize] = None;
            self.index.remove(k.hash(SEED), id)
        }
    }

    #[test]
    fn insert_lookup_remove() {
        let mut t = Keyed::new(1024, 1500);
        for i in 0..500 {
            t.insert(key(i), i * 3).unwrap();
        }
        assert_eq!(t.index.len(), 500);
        for i in 0..500 {
            assert_eq!(t.lookup(&key(i)), Some(i * 3));
        }
        assert_eq!(t.lookup(&key(999)), None);
        assert!(t.remove(&key(7)));
        assert!(!t.remove(&key(7)));
        assert_eq!(t.lookup(&key(7)), None);
        assert_eq!(t.index.len(), 499);
        assert_eq!(t.index.ids().count(), 499);
        assert!(!t.index.remove(key(8).hash(SEED), 12345), "wrong id");
    }

    #[test]
    fn full_bucket_refuses_and_keeps_every_entry_in_place() {
        // One bucket: both choices are the same bucket, displacement cannot help.
        let mut t = Keyed::new(BUCKET_SLOTS * LOAD_PERCENT / 100, 64);
        assert_eq!(t.index.capacity(), BUCKET_SLOTS);
        for i in 0..BUCKET_SLOTS as u32 {
            t.insert(key(i), i).unwrap();
        }
        let before = t.index.buckets.to_vec();
        assert_eq!(t.insert(key(50), 50), Err(TableFull));
        assert_eq!(t.index.buckets.to_vec(), before);
        assert!(t.remove(&key(3)));
        t.insert(key(50), 50).expect("room after a removal");
        assert_eq!(t.lookup(&key(50)), Some(50));
    }

    #[test]
    fn holds_its_design_load() {
        for n in [1000u32, 65_536, 300_001] {
            let mut t = Keyed::new(n as usize, n as usize);
            for i in 0..n {
                t.insert(key(i), i)
                    .unwrap_or_else(|_| panic!("tuple {i} of {n} refused"));
            }
            for i in 0..n {
                assert_eq!(t.lookup(&key(i)), Some(i), "tuple {i}");
            }
            assert!(t.index.capacity() * LOAD_PERCENT / 100 <= n as usize + BUCKET_SLOTS);
        }
    }

    #[test]
    fn alternative_is_an_involution() {
        for n in [1usize, 2, 3, 7, 1000, 999_983] {
            let t = FlowIndex {
                buckets: HugeSlice::heap(0, Bucket::EMPTY),
                nbuckets: n as u32,
                kick: 0,
                len: 0,
            };
            for b in (0..n).step_by(n / 50 + 1) {
                for tag in [1u16, 2, 77, 0x8000, u16::MAX] {
                    let a = t.alt(b, tag);
                    assert!(a < n);
                    assert_eq!(t.alt(a, tag), b);
                }
            }
        }
    }

    #[test]
    fn clients_differing_only_in_port_spread_over_buckets() {
        let mut t = Keyed::new(2000, 2000);
        for p in 0..2000u16 {
            let k = FlowKey {
                proto: 6,
                saddr: 0x0b00_0000,
                daddr: 0x0ac8_0064,
                sport: 1024 + p,
                dport: 80,
            };
            t.insert(k, u32::from(p)).expect("room");
        }
        let used = t
            .index
            .buckets
            .iter()
            .filter(|b| b.tags.iter().any(|&t| t != 0))
            .count();
        assert!(used > t.index.buckets.len() * 3 / 4, "{used} buckets used");
    }

    #[test]
    fn capacity_is_what_was_asked_for_in_whole_buckets() {
        assert_eq!(FlowIndex::new(0).capacity(), BUCKET_SLOTS);
        assert_eq!(FlowIndex::new(95).capacity(), 100);
        assert_eq!(FlowIndex::new(96).capacity(), 110);
        assert_eq!(FlowIndex::new(2_000_000).capacity(), 2_105_270);
        assert_eq!(FlowIndex::bytes_per_slot(), 6.4);
    }
}
