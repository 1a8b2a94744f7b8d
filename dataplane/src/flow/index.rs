//! The tuple index: 5-tuple → connection id, in buckets of [`BUCKET_SLOTS`] 24-byte entries
//! in one preallocated array.
//!
//! Every connection has one entry per direction the director sees (the client's tuple; for NAT
//! and FullNAT also the real server's reply tuple), so a packet of either direction finds its
//! connection with one lookup. Two-choice hashing with cuckoo displacement (as DPDK's rte_hash)
//! fills past 90% of the slots; entries move during displacement, which is why they carry the
//! connection's id and never the other way round. Entries are removed explicitly when their
//! connection expires.

/// Entries per bucket. A bucket is 192 bytes: three cache lines.
pub const BUCKET_SLOTS: usize = 8;

/// Longest cuckoo displacement walk for one insert.
pub const MAX_KICKS: usize = 64;

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

/// Which way a tuple points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Dir {
    /// Client → real server (the client's tuple).
    In = 1,
    /// Real server → client (the reply tuple, NAT and FullNAT).
    Out = 2,
}

/// One index entry. 24 bytes; `proto == 0` marks an empty slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
struct Entry {
    saddr: u32,
    daddr: u32,
    sport: u16,
    dport: u16,
    conn: u32,
    proto: u8,
    dir: u8,
    _pad: [u8; 6],
}

const _: () = assert!(std::mem::size_of::<Entry>() == 24);

impl Entry {
    const EMPTY: Entry = Entry {
        saddr: 0,
        daddr: 0,
        sport: 0,
        dport: 0,
        conn: 0,
        proto: 0,
        dir: 0,
        _pad: [0; 6],
    };

    fn new(k: &FlowKey, conn: u32, dir: Dir) -> Entry {
        Entry {
            saddr: k.saddr,
            daddr: k.daddr,
            sport: k.sport,
            dport: k.dport,
            conn,
            proto: k.proto,
            dir: dir as u8,
            _pad: [0; 6],
        }
    }

    fn key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            saddr: self.saddr,
            daddr: self.daddr,
            sport: self.sport,
            dport: self.dport,
        }
    }

    #[inline]
    fn matches(&self, k: &FlowKey) -> bool {
        self.saddr == k.saddr
            && self.daddr == k.daddr
            && self.sport == k.sport
            && self.dport == k.dport
            && self.proto == k.proto
    }

    #[inline]
    fn used(&self) -> bool {
        self.proto != 0
    }
}

/// The bucket of a new tuple (and its alternative) is full and displacement found no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

/// splitmix64's finalizer: every input bit affects every output bit (a plain multiply leaves
/// the low output bits blind to the high input bits, where the ports are).
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fixed-capacity tuple index owned by one worker.
#[derive(Debug)]
pub struct FlowIndex {
    slots: Box<[Entry]>,
    bucket_mask: usize,
    seed: [u64; 2],
    kick: u32,
    len: usize,
}

impl FlowIndex {
    /// An index for `capacity` tuples, hashing with `seed` (random per worker, so clients
    /// cannot aim at one bucket). Buckets fill to about 90% before refusing, so the index gets
    /// capacity × 10/9 slots rounded up to a power of two (at least one bucket).
    pub fn new(capacity: usize, seed: [u64; 2]) -> FlowIndex {
        let slots = (capacity.saturating_mul(10) / 9)
            .max(BUCKET_SLOTS)
            .next_power_of_two();
        FlowIndex {
            slots: vec![Entry::EMPTY; slots].into_boxed_slice(),
            bucket_mask: slots / BUCKET_SLOTS - 1,
            seed,
            kick: 0,
            len: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Tuples stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes per slot.
    pub const fn bytes_per_entry() -> usize {
        std::mem::size_of::<Entry>()
    }

    /// The two candidate buckets of a key (start slot indexes).
    #[inline]
    fn buckets(&self, k: &FlowKey) -> (usize, usize) {
        let a = (u64::from(k.saddr) << 32 | u64::from(k.daddr)) ^ self.seed[0];
        let b = (u64::from(k.sport) << 32 | u64::from(k.dport) << 16 | u64::from(k.proto))
            ^ self.seed[1];
        let h = mix(a ^ mix(b));
        let b1 = h as usize & self.bucket_mask;
        let b2 = (h >> 32) as usize & self.bucket_mask;
        (b1 * BUCKET_SLOTS, b2 * BUCKET_SLOTS)
    }

    #[inline]
    fn position(&self, key: &FlowKey) -> Option<usize> {
        let (b1, b2) = self.buckets(key);
        let find = |b: usize| {
            self.slots[b..b + BUCKET_SLOTS]
                .iter()
                .position(|e| e.matches(key))
                .map(|i| b + i)
        };
        find(b1).or_else(|| find(b2))
    }

    /// The connection and direction of `key`, if indexed.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(u32, Dir)> {
        self.position(key).map(|i| {
            let e = &self.slots[i];
            let dir = if e.dir == Dir::Out as u8 {
                Dir::Out
            } else {
                Dir::In
            };
            (e.conn, dir)
        })
    }

    /// Removes `key`; false if it was not indexed.
    pub fn remove(&mut self, key: &FlowKey) -> bool {
        match self.position(key) {
            Some(i) => {
                self.slots[i] = Entry::EMPTY;
                self.len -= 1;
                true
            }
            None => false,
        }
    }

    /// Indexes `key` (not yet present) for `conn`: into a free slot of its first bucket, else
    /// of its second, else by cuckoo displacement: a resident of a full bucket moves to its
    /// own other bucket, up to [`MAX_KICKS`] moves, all undone if no room turns up.
    #[inline]
    pub fn insert(&mut self, key: &FlowKey, conn: u32, dir: Dir) -> Result<(), TableFull> {
        let entry = Entry::new(key, conn, dir);
        let (b1, b2) = self.buckets(key);
        if let Some(i) = self.free_in(b1).or_else(|| self.free_in(b2)) {
            self.slots[i] = entry;
            self.len += 1;
            return Ok(());
        }
        self.displace(entry, b1)?;
        self.len += 1;
        Ok(())
    }

    #[inline]
    fn free_in(&self, bucket: usize) -> Option<usize> {
        self.slots[bucket..bucket + BUCKET_SLOTS]
            .iter()
            .position(|e| !e.used())
            .map(|i| bucket + i)
    }

    /// Cuckoo walk starting by evicting a resident of `bucket` (full) in favour of `entry`.
    fn displace(&mut self, entry: Entry, mut bucket: usize) -> Result<(), TableFull> {
        let mut path = [0usize; MAX_KICKS];
        let mut homeless = entry;
        for slot in path.iter_mut() {
            self.kick = self.kick.wrapping_add(0x9e37_79b9);
            let victim_at = bucket + (self.kick >> 29) as usize % BUCKET_SLOTS;
            *slot = victim_at;
            std::mem::swap(&mut homeless, &mut self.slots[victim_at]);
            let (v1, v2) = self.buckets(&homeless.key());
            let alt = if v1 == bucket { v2 } else { v1 };
            if let Some(i) = self.free_in(alt) {
                self.slots[i] = homeless;
                return Ok(());
            }
            bucket = alt;
        }
        // No room: put every resident back where it was; the new entry is refused.
        for &at in path.iter().rev() {
            std::mem::swap(&mut homeless, &mut self.slots[at]);
        }
        debug_assert!(homeless == entry);
        Err(TableFull)
    }

    /// Every (key, conn, dir) stored (a full scan, off the hot path).
    pub fn entries(&self) -> impl Iterator<Item = (FlowKey, u32, Dir)> + '_ {
        self.slots.iter().filter(|e| e.used()).map(|e| {
            let dir = if e.dir == Dir::Out as u8 {
                Dir::Out
            } else {
                Dir::In
            };
            (e.key(), e.conn, dir)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            proto: 6,
            saddr: 0x0a00_0002 + (i >> 16),
            daddr: 0x0a00_0064,
            sport: (i & 0xffff) as u16,
            dport: 80,
        }
    }

    #[test]
    fn insert_lookup_remove() {
        let mut t = FlowIndex::new(1024, [1, 2]);
        for i in 0..500 {
            let dir = if i % 2 == 0 { Dir::In } else { Dir::Out };
            t.insert(&key(i), i * 3, dir).unwrap();
        }
        assert_eq!(t.len(), 500);
        for i in 0..500 {
            let dir = if i % 2 == 0 { Dir::In } else { Dir::Out };
            assert_eq!(t.lookup(&key(i)), Some((i * 3, dir)));
        }
        assert_eq!(t.lookup(&key(999)), None);
        assert!(t.remove(&key(7)));
        assert!(!t.remove(&key(7)));
        assert_eq!(t.lookup(&key(7)), None);
        assert_eq!(t.len(), 499);
        assert_eq!(t.entries().count(), 499);
    }

    #[test]
    fn full_bucket_refuses_and_keeps_every_entry_in_place() {
        // One bucket: both choices are the same bucket, displacement cannot help.
        let mut t = FlowIndex::new(8, [9, 9]);
        for i in 0..8 {
            t.insert(&key(i), i, Dir::In).unwrap();
        }
        let before = t.slots.to_vec();
        assert_eq!(t.insert(&key(50), 50, Dir::In), Err(TableFull));
        assert_eq!(t.slots.to_vec(), before);
        assert!(t.remove(&key(3)));
        t.insert(&key(50), 50, Dir::In)
            .expect("room after a removal");
    }

    #[test]
    fn holds_nine_tenths_of_its_slots() {
        let n = (1u32 << 16) * 9 / 10;
        let mut t = FlowIndex::new(n as usize, [0x1234, 0x5678]);
        assert_eq!(t.capacity(), 1 << 16);
        for i in 0..n {
            t.insert(&key(i), i, Dir::In)
                .unwrap_or_else(|_| panic!("tuple {i} refused"));
        }
        for i in 0..n {
            assert_eq!(t.lookup(&key(i)), Some((i, Dir::In)), "tuple {i}");
        }
    }

    #[test]
    fn clients_differing_only_in_port_spread_over_buckets() {
        let mut t = FlowIndex::new(2000, [1, 2]);
        for p in 0..2000u16 {
            let k = FlowKey {
                proto: 6,
                saddr: 0x0b00_0000,
                daddr: 0x0ac8_0064,
                sport: 1024 + p,
                dport: 80,
            };
            t.insert(&k, u32::from(p), Dir::In).expect("room");
        }
        let used = t
            .slots
            .chunks(BUCKET_SLOTS)
            .filter(|b| b.iter().any(Entry::used))
            .count();
        assert!(
            used > t.capacity() / BUCKET_SLOTS * 3 / 4,
            "{used} buckets used"
        );
    }

    #[test]
    fn capacity_rounds_up_and_is_preallocated() {
        assert_eq!(FlowIndex::new(900, [0, 0]).capacity(), 1024);
        assert_eq!(FlowIndex::new(1000, [0, 0]).capacity(), 2048);
        assert_eq!(FlowIndex::new(0, [0, 0]).capacity(), BUCKET_SLOTS);
        assert_eq!(FlowIndex::bytes_per_entry(), 24);
    }
}
