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

/// The bucket of a new connection is full of live flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFull;

/// A fixed-capacity flow table owned by one worker.
#[derive(Debug)]
pub struct FlowTable {
    slots: Box<[Flow]>,
    bucket_mask: usize,
    seed: [u64; 2],
}

impl FlowTable {
    /// A table for at least `capacity` flows (rounded up to a power of two, at least one
    /// bucket), hashing with `seed` (random per worker, so clients cannot aim at one bucket).
    pub fn new(capacity: usize, seed: [u64; 2]) -> FlowTable {
        let slots = capacity.max(BUCKET_SLOTS).next_power_of_two();
        FlowTable {
            slots: vec![Flow::EMPTY; slots].into_boxed_slice(),
            bucket_mask: slots / BUCKET_SLOTS - 1,
            seed,
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

    #[inline]
    fn bucket(&self, k: &FlowKey) -> usize {
        let a = (u64::from(k.saddr) << 32 | u64::from(k.daddr)) ^ self.seed[0];
        let b = (u64::from(k.sport) << 32 | u64::from(k.dport) << 16 | u64::from(k.proto))
            ^ self.seed[1];
        let m = u128::from(a) * u128::from(b | 1);
        let h = (m as u64) ^ ((m >> 64) as u64);
        (h as usize & self.bucket_mask) * BUCKET_SLOTS
    }

    /// The live flow for `key`, if any.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, now: u32) -> Option<&mut Flow> {
        let b = self.bucket(key);
        self.slots[b..b + BUCKET_SLOTS]
            .iter_mut()
            .find(|f| f.live(now) && f.matches(key))
    }

    /// Inserts a new flow (the caller has checked that none exists) into the first free or
    /// expired slot of its bucket.
    #[inline]
    pub fn insert(&mut self, flow: Flow, now: u32) -> Result<&mut Flow, TableFull> {
        let b = self.bucket(&flow.key());
        let slot = self.slots[b..b + BUCKET_SLOTS]
            .iter_mut()
            .find(|f| !f.live(now))
            .ok_or(TableFull)?;
        *slot = flow;
        Ok(slot)
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
    fn capacity_rounds_up_and_is_preallocated() {
        let t = FlowTable::new(1000, [0, 0]);
        assert_eq!(t.capacity(), 1024);
        assert_eq!(FlowTable::bytes_per_flow(), 24);
        assert_eq!(FlowTable::new(0, [0, 0]).capacity(), BUCKET_SLOTS);
    }
}
