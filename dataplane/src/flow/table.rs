//! The flow table: buckets of [`BUCKET_SLOTS`] 24-byte entries in one preallocated array.

/// Entries per bucket. A bucket is 192 bytes: three cache lines.
pub const BUCKET_SLOTS: usize = 8;

/// A connection's identity as the client sent it: addresses and ports in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    /// IP protocol (6 TCP, 17 UDP); never 0 for a real key.
    pub proto: u8,
    /// Client address.
    pub saddr: u32,
    /// Virtual address.
    pub daddr: u32,
    /// Client port.
    pub sport: u16,
    /// Virtual port.
    pub dport: u16,
}

/// One tracked connection. 24 bytes; `proto == 0` marks an empty slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct Flow {
    /// Client address.
    pub saddr: u32,
    /// Virtual address.
    pub daddr: u32,
    /// Client port.
    pub sport: u16,
    /// Virtual port.
    pub dport: u16,
    /// Deadline in dataplane seconds; the slot is free once `now >= expires`.
    pub expires: u32,
    /// Index of the service in the configuration snapshot.
    pub service: u16,
    /// Index of the real server within the service.
    pub dest: u16,
    /// IP protocol; 0 = empty slot.
    pub proto: u8,
    /// Protocol state (see [`super::tcp`]).
    pub state: u8,
    _pad: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<Flow>() == 24);

impl Flow {
    const EMPTY: Flow = Flow {
        saddr: 0,
        daddr: 0,
        sport: 0,
        dport: 0,
        expires: 0,
        service: 0,
        dest: 0,
        proto: 0,
        state: 0,
        _pad: [0; 2],
    };

    /// A new flow for `key`.
    pub fn new(key: FlowKey, service: u16, dest: u16, state: u8, expires: u32) -> Flow {
        Flow {
            saddr: key.saddr,
            daddr: key.daddr,
            sport: key.sport,
            dport: key.dport,
            expires,
            service,
            dest,
            proto: key.proto,
            state,
            _pad: [0; 2],
        }
    }

    /// The flow's key.
    pub fn key(&self) -> FlowKey {
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
    fn live(&self, now: u32) -> bool {
        self.proto != 0 && now < self.expires
    }
}

/// splitmix64's finalizer: every input bit affects every output bit (a plain multiply leaves
/// the low output bits blind to the high input bits, where the ports are).
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The bucket of a new connection is full of live flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

/// A fixed-capacity flow table owned by one worker.
#[derive(Debug)]
pub struct FlowTable {
    slots: Box<[Flow]>,
    bucket_mask: usize,
    seed: [u64; 2],
    kick: u32,
}

/// Longest cuckoo displacement walk for one insert.
pub const MAX_KICKS: usize = 64;

impl FlowTable {
    /// A table for `capacity` flows, hashing with `seed` (random per worker, so clients cannot
    /// aim at one bucket). Two-choice buckets fill to about 90% before refusing, so the table
    /// gets capacity × 10/9 slots rounded up to a power of two (at least one bucket).
    pub fn new(capacity: usize, seed: [u64; 2]) -> FlowTable {
        let slots = (capacity.saturating_mul(10) / 9)
            .max(BUCKET_SLOTS)
            .next_power_of_two();
        FlowTable {
            slots: vec![Flow::EMPTY; slots].into_boxed_slice(),
            bucket_mask: slots / BUCKET_SLOTS - 1,
            seed,
            kick: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of memory per slot.
    pub const fn bytes_per_flow() -> usize {
        std::mem::size_of::<Flow>()
    }

    /// The two candidate buckets of a key (start slot indexes): a flow lives in one of them.
    /// With one choice, 8-slot buckets overflow a few percent of buckets at half load; two
    /// choices plus displacement fill past 90%.
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

    /// The live flow for `key`, if any.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, now: u32) -> Option<&mut Flow> {
        let (b1, b2) = self.buckets(key);
        let i = Self::find(&self.slots[b1..b1 + BUCKET_SLOTS], key, now)
            .map(|i| b1 + i)
            .or_else(|| Self::find(&self.slots[b2..b2 + BUCKET_SLOTS], key, now).map(|i| b2 + i))?;
        Some(&mut self.slots[i])
    }

    #[inline]
    fn find(bucket: &[Flow], key: &FlowKey, now: u32) -> Option<usize> {
        bucket.iter().position(|f| f.live(now) && f.matches(key))
    }

    /// Inserts a new flow (the caller has checked that none exists): into a free or expired
    /// slot of its first bucket, else of its second, else by cuckoo displacement (as DPDK's
    /// rte_hash): a resident of a full bucket moves to its own other bucket, up to
    /// [`MAX_KICKS`] moves, all undone if no room turns up. Bounded work, no allocation.
    #[inline]
    pub fn insert(&mut self, flow: Flow, now: u32) -> Result<&mut Flow, TableFull> {
        let key = flow.key();
        let (b1, b2) = self.buckets(&key);
        if let Some(i) = self.free_in(b1, now).or_else(|| self.free_in(b2, now)) {
            self.slots[i] = flow;
            return Ok(&mut self.slots[i]);
        }
        self.displace(flow, b1, now)?;
        let (b1, b2) = self.buckets(&key);
        let i = Self::find(&self.slots[b1..b1 + BUCKET_SLOTS], &key, now)
            .map(|i| b1 + i)
            .or_else(|| Self::find(&self.slots[b2..b2 + BUCKET_SLOTS], &key, now).map(|i| b2 + i))
            .expect("displacement placed the flow");
        Ok(&mut self.slots[i])
    }

    #[inline]
    fn free_in(&self, bucket: usize, now: u32) -> Option<usize> {
        self.slots[bucket..bucket + BUCKET_SLOTS]
            .iter()
            .position(|f| !f.live(now))
            .map(|i| bucket + i)
    }

    /// Cuckoo walk starting by evicting a resident of `bucket` (full) in favour of `flow`.
    fn displace(&mut self, flow: Flow, mut bucket: usize, now: u32) -> Result<(), TableFull> {
        let mut path = [0usize; MAX_KICKS];
        let mut homeless = flow;
        for (step, slot) in path.iter_mut().enumerate() {
            self.kick = self.kick.wrapping_add(0x9e37_79b9);
            let victim_at = bucket + (self.kick >> 29) as usize % BUCKET_SLOTS;
            *slot = victim_at;
            std::mem::swap(&mut homeless, &mut self.slots[victim_at]);
            let (v1, v2) = self.buckets(&homeless.key());
            let alt = if v1 == bucket { v2 } else { v1 };
            if let Some(i) = self.free_in(alt, now) {
                self.slots[i] = homeless;
                return Ok(());
            }
            bucket = alt;
            if step + 1 == MAX_KICKS {
                break;
            }
        }
        // No room: put every resident back where it was; the new flow is refused.
        for &at in path.iter().rev() {
            std::mem::swap(&mut homeless, &mut self.slots[at]);
        }
        debug_assert!(homeless == flow);
        Err(TableFull)
    }

    /// Live flows (a full scan: for statistics and listings, off the hot path).
    pub fn live(&self, now: u32) -> impl Iterator<Item = &Flow> {
        self.slots.iter().filter(move |f| f.live(now))
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
    fn insert_then_lookup_finds_the_same_flow() {
        let mut t = FlowTable::new(1024, [1, 2]);
        for i in 0..500 {
            t.insert(Flow::new(key(i), 0, (i % 3) as u16, 1, 100), 0)
                .unwrap();
        }
        for i in 0..500 {
            let f = t.lookup(&key(i), 50).expect("present");
            assert_eq!(f.dest, (i % 3) as u16);
            assert_eq!(f.key(), key(i));
        }
        assert!(t.lookup(&key(999), 50).is_none());
        assert_eq!(t.live(50).count(), 500);
    }

    #[test]
    fn expired_flows_vanish_and_free_their_slot() {
        let mut t = FlowTable::new(8, [3, 4]); // one bucket
        for i in 0..8 {
            t.insert(Flow::new(key(i), 0, 0, 1, 10), 0).unwrap();
        }
        assert_eq!(t.insert(Flow::new(key(8), 0, 0, 1, 10), 5), Err(TableFull));
        assert!(t.lookup(&key(3), 10).is_none(), "deadline reached");
        t.insert(Flow::new(key(8), 0, 1, 1, 30), 10)
            .expect("expired slot reused");
        assert_eq!(t.lookup(&key(8), 11).map(|f| f.dest), Some(1));
    }

    #[test]
    fn a_refused_insert_leaves_every_flow_in_place() {
        // One bucket: both choices are the same bucket, displacement cannot help.
        let mut t = FlowTable::new(8, [9, 9]);
        for i in 0..8 {
            t.insert(Flow::new(key(i), 0, i as u16, 1, 100), 0).unwrap();
        }
        let before: Vec<Flow> = t.slots.to_vec();
        assert_eq!(
            t.insert(Flow::new(key(50), 0, 0, 1, 100), 0),
            Err(TableFull)
        );
        assert_eq!(t.slots.to_vec(), before);
    }

    #[test]
    fn full_bucket_refuses_new_flows_and_keeps_old_ones() {
        let mut t = FlowTable::new(8, [5, 6]);
        for i in 0..8 {
            t.insert(Flow::new(key(i), 0, i as u16, 1, 100), 0).unwrap();
        }
        assert_eq!(
            t.insert(Flow::new(key(100), 0, 0, 1, 100), 1),
            Err(TableFull)
        );
        for i in 0..8 {
            assert_eq!(t.lookup(&key(i), 1).map(|f| f.dest), Some(i as u16));
        }
    }

    #[test]
    fn holds_nine_tenths_of_its_slots_without_overflow() {
        let mut t = FlowTable::new((1 << 16) * 9 / 10, [0x1234, 0x5678]);
        assert_eq!(t.capacity(), 1 << 16);
        let n = (1u32 << 16) * 9 / 10;
        for i in 0..n {
            t.insert(Flow::new(key(i), 0, 0, 1, 100), 0)
                .unwrap_or_else(|_| {
                    panic!("flow {i} refused at load {:.2}", f64::from(i) / 65536.0)
                });
        }
        for i in 0..n {
            assert!(t.lookup(&key(i), 1).is_some(), "flow {i}");
        }
    }

    #[test]
    fn clients_differing_only_in_port_spread_over_buckets() {
        // One client address, 2000 source ports: a weak hash piles them into few buckets.
        let mut t = FlowTable::new(2000, [1, 2]);
        for p in 0..2000u16 {
            let k = FlowKey {
                proto: 6,
                saddr: 0x0b00_0000,
                daddr: 0x0ac8_0064,
                sport: 1024 + p,
                dport: 80,
            };
            t.insert(Flow::new(k, 0, 0, 1, 100), 0).expect("room");
        }
        let used = t
            .slots
            .chunks(BUCKET_SLOTS)
            .filter(|b| b.iter().any(|f| f.proto != 0))
            .count();
        assert!(
            used > t.capacity() / BUCKET_SLOTS * 3 / 4,
            "{used} buckets used"
        );
    }

    #[test]
    fn capacity_rounds_up_and_is_preallocated() {
        let t = FlowTable::new(900, [0, 0]);
        assert_eq!(t.capacity(), 1024);
        assert_eq!(FlowTable::new(1000, [0, 0]).capacity(), 2048);
        assert_eq!(FlowTable::bytes_per_flow(), 24);
        assert_eq!(FlowTable::new(0, [0, 0]).capacity(), BUCKET_SLOTS);
    }
}
