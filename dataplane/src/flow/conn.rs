//! Connections: a preallocated slab with stable ids, the tuple index that finds them from
//! either direction, and the timing wheel that expires them.
//!
//! A connection's id is its slab index; it never moves, so the index and the wheel can refer
//! to it. Creating a connection takes a free id, indexes its tuples and arms its timer; a
//! packet only moves `expires` forward (or, for a shorter TCP timeout, reschedules the timer in
//! O(1)); when the timer comes round the table either re-arms it (the connection was refreshed)
//! or removes it and hands it to the caller for accounting (active and inactive counts,
//! FullNAT local ports). Nothing allocates after construction, and no operation scans the
//! table.
//!
//! # Memory (why the slab is split)
//!
//! A tracked connection costs about 62 bytes all in, at any table size: 32 in the hot array
//! ([`ConnHot`]: everything a packet of DR, TUN or NAT reads or writes, two to a cache line),
//! 8 in the cold array (the FullNAT local address, and the persistence template link), 8 of
//! timer links and, with the index sized for two tuples per connection at 95% load, 13.5 of
//! index. The big arrays sit on huge pages ([`mem::HugeSlice`]). The free list is threaded
//! through the cold array, and a free slot is one whose protocol is 0.

use mem::{HugeSlice, prefetch};

use super::index::{Dir, FlowHash, FlowIndex, FlowKey, TableFull};
use super::tcp::State;
use super::timer::{Fire, TimerWheel};

/// One connection, as IPVS's `ip_vs_conn`: client, virtual, local and real-server endpoints.
/// The value form that [`ConnTable::create`] takes and listings see; the table stores it split
/// into [`ConnHot`] and a cold part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    /// Client address (host order).
    pub caddr: u32,
    /// Virtual address.
    pub vaddr: u32,
    /// Real-server address.
    pub raddr: u32,
    /// FullNAT local address (0 otherwise).
    pub laddr: u32,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Real-server port.
    pub rport: u16,
    /// FullNAT local port (0 otherwise).
    pub lport: u16,
    /// Deadline in dataplane seconds.
    pub expires: u32,
    /// Service index in the snapshot.
    pub service: u16,
    /// Real-server index within the service.
    pub dest: u16,
    /// IP protocol.
    pub proto: u8,
    /// Protocol state (`tcp::State as u8`).
    pub state: u8,
    /// Forwarding mode (`Mode as u8`).
    pub mode: u8,
    /// Whether it is counted in its server's active connections.
    pub active: bool,
    /// The persistence template controlling this connection ([`NO_TEMPLATE`] if none).
    pub template: u32,
    /// For a template: how many connections it controls (it lives while this is non-zero).
    pub controls: u32,
}

/// [`Conn::template`] of a connection without a persistence template.
pub const NO_TEMPLATE: u32 = u32::MAX;

/// End of the free list.
const NIL: u32 = u32::MAX;

/// How a connection is forwarded (the per-server mode, fixed at creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Direct routing.
    Dr = 0,
    /// IP tunnel.
    Tun = 1,
    /// NAT.
    Nat = 2,
    /// FullNAT.
    Fnat = 3,
    /// A persistence template (IPVS's `IP_VS_CONN_F_TEMPLATE`): (client network, service) →
    /// real server; carries no packets.
    Template = 4,
}

impl Mode {
    /// Decodes a stored byte.
    #[inline]
    pub fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Tun,
            2 => Mode::Nat,
            3 => Mode::Fnat,
            4 => Mode::Template,
            _ => Mode::Dr,
        }
    }

    /// Whether replies come back through the director.
    #[inline]
    pub fn sees_replies(self) -> bool {
        matches!(self, Mode::Nat | Mode::Fnat)
    }
}

impl Default for Conn {
    fn default() -> Self {
        Conn {
            caddr: 0,
            vaddr: 0,
            raddr: 0,
            laddr: 0,
            cport: 0,
            vport: 0,
            rport: 0,
            lport: 0,
            expires: 0,
            service: 0,
            dest: 0,
            proto: 0,
            state: 0,
            mode: 0,
            active: false,
            template: NO_TEMPLATE,
            controls: 0,
        }
    }
}

/// The reply tuple of a connection of `mode` (NAT and FullNAT only).
#[inline(always)]
fn reply_key(
    mode: Mode,
    proto: u8,
    (caddr, cport): (u32, u16),
    (raddr, rport): (u32, u16),
    (laddr, lport): (u32, u16),
) -> Option<FlowKey> {
    let (daddr, dport) = match mode {
        Mode::Nat => (caddr, cport),
        Mode::Fnat => (laddr, lport),
        Mode::Dr | Mode::Tun | Mode::Template => return None,
    };
    Some(FlowKey {
        proto,
        saddr: raddr,
        daddr,
        sport: rport,
        dport,
    })
}

impl Conn {
    /// The client's tuple (what the client sends).
    pub fn in_key(&self) -> FlowKey {
        self.hot().in_key()
    }

    /// The reply tuple (what the real server sends back through the director), for NAT and
    /// FullNAT.
    pub fn out_key(&self) -> Option<FlowKey> {
        self.hot().out_key(self.laddr)
    }

    /// The part the packet path uses.
    #[inline]
    pub fn hot(&self) -> ConnHot {
        ConnHot {
            caddr: self.caddr,
            vaddr: self.vaddr,
            raddr: self.raddr,
            cport: self.cport,
            vport: self.vport,
            rport: self.rport,
            lport: self.lport,
            expires: self.expires,
            service: self.service,
            dest: self.dest,
            proto: self.proto,
            state: State::from_u8(self.state),
            mode: Mode::from_u8(self.mode),
            active: self.active,
        }
    }

    fn cold(&self) -> Cold {
        let link = if self.mode == Mode::Template as u8 {
            self.controls
        } else {
            self.template
        };
        Cold {
            laddr: self.laddr,
            link,
        }
    }

    fn from_parts(h: &ConnHot, cold: Cold) -> Conn {
        let template = h.mode == Mode::Template;
        Conn {
            caddr: h.caddr,
            vaddr: h.vaddr,
            raddr: h.raddr,
            laddr: cold.laddr,
            cport: h.cport,
            vport: h.vport,
            rport: h.rport,
            lport: h.lport,
            expires: h.expires,
            service: h.service,
            dest: h.dest,
            proto: h.proto,
            state: h.state as u8,
            mode: h.mode as u8,
            active: h.active,
            template: if template { NO_TEMPLATE } else { cold.link },
            controls: if template { cold.link } else { 0 },
        }
    }
}

/// The 32 bytes of a connection that a packet of it reads and writes (all of them for DR,
/// TUN and NAT; FullNAT also reads the local address from the cold part). A slot with
/// `proto == 0` is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(32))]
pub struct ConnHot {
    /// Client address (host order).
    pub caddr: u32,
    /// Virtual address.
    pub vaddr: u32,
    /// Real-server address.
    pub raddr: u32,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Real-server port.
    pub rport: u16,
    /// FullNAT local port (0 otherwise).
    pub lport: u16,
    /// Deadline in dataplane seconds. Move it earlier only through
    /// [`ConnTable::set_expires`] (later is free: the timer re-arms itself).
    pub expires: u32,
    /// Service index in the snapshot.
    pub service: u16,
    /// Real-server index within the service.
    pub dest: u16,
    /// IP protocol (0: free slot).
    pub proto: u8,
    /// Protocol state.
    pub state: State,
    /// Forwarding mode.
    pub mode: Mode,
    /// Whether it is counted in its server's active connections.
    pub active: bool,
}

const _: () = assert!(std::mem::size_of::<ConnHot>() == 32);

impl Default for ConnHot {
    fn default() -> Self {
        Conn::default().hot()
    }
}

impl ConnHot {
    /// The client's tuple.
    #[inline(always)]
    pub fn in_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            saddr: self.caddr,
            daddr: self.vaddr,
            sport: self.cport,
            dport: self.vport,
        }
    }

    /// The reply tuple, given the connection's local address (FullNAT).
    #[inline]
    pub fn out_key(&self, laddr: u32) -> Option<FlowKey> {
        reply_key(
            self.mode,
            self.proto,
            (self.caddr, self.cport),
            (self.raddr, self.rport),
            (laddr, self.lport),
        )
    }

    #[inline(always)]
    fn is_in(&self, k: &FlowKey) -> bool {
        self.caddr == k.saddr
            && self.vaddr == k.daddr
            && self.cport == k.sport
            && self.vport == k.dport
            && self.proto == k.proto
    }
}

/// The rest of a connection: the FullNAT local address, and `link`: the controlling template
/// of a connection ([`NO_TEMPLATE`] if none), the count of connections a template controls,
/// or the next free slot of a free one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cold {
    laddr: u32,
    link: u32,
}

/// Why a connection could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateError {
    /// Every connection slot is in use.
    NoSlot,
    /// The tuple index had no room.
    IndexFull,
    /// A reply tuple is already taken by another connection (NAT: two clients behind one
    /// address and port mapped to the same server port; cannot happen with FullNAT pools).
    Collision,
}

/// The slab: connections by id, and the free list.
#[derive(Debug)]
struct Slab {
    hot: HugeSlice<ConnHot>,
    cold: HugeSlice<Cold>,
    /// First free slot (the list goes on through `Cold::link`), [`NIL`] when full.
    free: u32,
    len: usize,
}

impl Slab {
    /// Takes connection `id` (`c`) out of `index`, unlinks its template, frees its slot.
    /// `known`: the hash of one of its tuples, already computed.
    fn release(
        &mut self,
        index: &mut FlowIndex,
        seed: [u64; 2],
        id: u32,
        c: &Conn,
        known: Option<(Dir, FlowHash)>,
    ) {
        let hash = |dir: Dir, key: &FlowKey| match known {
            Some((d, h)) if d == dir => h,
            _ => key.hash(seed),
        };
        index.remove(hash(Dir::In, &c.in_key()), id);
        if let Some(out) = c.out_key() {
            index.remove(hash(Dir::Out, &out), id);
        }
        if c.template != NO_TEMPLATE {
            let t = &mut self.cold[c.template as usize].link;
            *t = t.saturating_sub(1);
        }
        self.hot[id as usize].proto = 0;
        self.cold[id as usize].link = self.free;
        self.free = id;
        self.len -= 1;
    }
}

/// The connection table of one worker.
#[derive(Debug)]
pub struct ConnTable {
    slab: Slab,
    seed: [u64; 2],
    index: FlowIndex,
    wheel: TimerWheel,
}

impl ConnTable {
    /// A table for `capacity` connections (two tuples each at most), hashing with `seed`,
    /// with its timers starting at `now`.
    pub fn new(capacity: usize, seed: [u64; 2], now: u32) -> ConnTable {
        let capacity = capacity.max(1);
        assert!(capacity < NIL as usize / 2, "{capacity} connections");
        let mut cold = HugeSlice::new(
            capacity,
            Cold {
                laddr: 0,
                link: NIL,
            },
        );
        for (i, c) in cold.iter_mut().enumerate() {
            c.link = if i + 1 < capacity { i as u32 + 1 } else { NIL };
        }
        ConnTable {
            slab: Slab {
                hot: HugeSlice::new(capacity, ConnHot::default()),
                cold,
                free: 0,
                len: 0,
            },
            seed,
            index: FlowIndex::new(capacity * 2),
            wheel: TimerWheel::new(capacity, now),
        }
    }

    /// Connection slots.
    pub fn capacity(&self) -> usize {
        self.slab.hot.len()
    }

    /// Connections in use.
    pub fn len(&self) -> usize {
        self.slab.len
    }

    /// True when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.slab.len == 0
    }

    /// Bytes of memory per connection slot, all in (slab, its share of the index at two
    /// tuples per connection, its timer links); [`ConnTable::memory_bytes`] over
    /// [`ConnTable::capacity`] for a large table.
    pub fn conn_bytes() -> f64 {
        (std::mem::size_of::<ConnHot>() + std::mem::size_of::<Cold>() + 8) as f64
            + 2.0 * 100.0 / super::index::LOAD_PERCENT as f64 * FlowIndex::bytes_per_slot()
    }

    /// Bytes held by the table's arrays.
    pub fn memory_bytes(&self) -> usize {
        self.slab.hot.footprint()
            + self.slab.cold.footprint()
            + self.index.memory_bytes()
            + self.wheel.memory_bytes()
    }

    /// Whether the big arrays sit in huge-page-advised mappings (false for small tables,
    /// which stay on the heap).
    pub fn is_mapped(&self) -> bool {
        self.slab.hot.is_mapped() && self.index.is_mapped()
    }

    /// The hash of `key` under this table's seed (for [`ConnTable::lookup_hashed`],
    /// [`ConnTable::prefetch`] and [`ConnTable::create_hashed`]).
    #[inline(always)]
    pub fn hash(&self, key: &FlowKey) -> FlowHash {
        key.hash(self.seed)
    }

    /// Starts loading the index bucket where a key hashing to `h` is first looked for.
    #[inline(always)]
    pub fn prefetch(&self, h: FlowHash) {
        self.index.prefetch(h);
    }

    /// Starts loading the alternative index bucket of `h` (where a miss also looks).
    #[inline(always)]
    pub fn prefetch_alt(&self, h: FlowHash) {
        self.index.prefetch_alt(h);
    }

    /// Starts loading what a lookup of `h` reads next: the connection named by the first tag
    /// match in the primary bucket (already loaded, or loading: see
    /// [`ConnTable::prefetch`]), its cold part too with `cold`; with no match there, the
    /// alternative bucket.
    #[inline(always)]
    pub fn prefetch_candidate(&self, h: FlowHash, cold: bool) {
        match self.index.first_candidate(h) {
            Some(id) => self.prefetch_conn(id, cold),
            None => self.index.prefetch_alt(h),
        }
    }

    /// Starts loading connection `id`'s hot part (and cold part with `cold`).
    #[inline(always)]
    pub fn prefetch_conn(&self, id: u32, cold: bool) {
        prefetch(&self.slab.hot[id as usize]);
        if cold {
            prefetch(&self.slab.cold[id as usize]);
        }
    }

    /// The connection a packet with `key` belongs to, and which way it goes.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(u32, Dir)> {
        self.lookup_hashed(key, self.hash(key))
    }

    /// As [`ConnTable::lookup`], with the key's hash already known.
    #[inline(always)]
    pub fn lookup_hashed(&self, key: &FlowKey, h: FlowHash) -> Option<(u32, Dir)> {
        for id in self.index.candidates(h) {
            let c = &self.slab.hot[id as usize];
            if c.is_in(key) {
                return Some((id, Dir::In));
            }
            let out = match c.mode {
                Mode::Nat => {
                    c.raddr == key.saddr
                        && c.caddr == key.daddr
                        && c.rport == key.sport
                        && c.cport == key.dport
                }
                Mode::Fnat => {
                    c.raddr == key.saddr
                        && c.rport == key.sport
                        && c.lport == key.dport
                        && self.slab.cold[id as usize].laddr == key.daddr
                }
                _ => false,
            };
            if out && c.proto == key.proto {
                return Some((id, Dir::Out));
            }
        }
        None
    }

    /// The connection `id` (a slot not in use reads as protocol 0).
    pub fn get(&self, id: u32) -> Conn {
        Conn::from_parts(&self.slab.hot[id as usize], self.slab.cold[id as usize])
    }

    /// The packet path's part of connection `id`.
    #[inline(always)]
    pub fn hot(&self, id: u32) -> &ConnHot {
        &self.slab.hot[id as usize]
    }

    /// The packet path's part of connection `id`, writable: state, activity, a later
    /// deadline. Keys must not change (the index holds them).
    #[inline(always)]
    pub fn hot_mut(&mut self, id: u32) -> &mut ConnHot {
        &mut self.slab.hot[id as usize]
    }

    /// Connection `id`'s FullNAT local address (0 for other modes).
    #[inline(always)]
    pub fn laddr(&self, id: u32) -> u32 {
        self.slab.cold[id as usize].laddr
    }

    /// How many connections template `id` controls.
    pub fn controls(&self, id: u32) -> u32 {
        debug_assert_eq!(self.slab.hot[id as usize].mode, Mode::Template);
        self.slab.cold[id as usize].link
    }

    /// Tracks `conn`: indexes its tuples and arms its timer at `conn.expires`.
    pub fn create(&mut self, conn: Conn) -> Result<u32, CreateError> {
        let h = self.hash(&conn.in_key());
        self.create_hashed(conn, h)
    }

    /// As [`ConnTable::create`], with the hash of `conn.in_key()` already known.
    pub fn create_hashed(&mut self, conn: Conn, h_in: FlowHash) -> Result<u32, CreateError> {
        let link = conn.cold().link;
        self.create_hot(conn.hot(), conn.laddr, link, h_in)
    }

    /// Tracks the connection `hot` (FullNAT local address `laddr`; `link`: its template,
    /// or [`NO_TEMPLATE`], or for a template the connections it controls, 0) whose client
    /// tuple hashes to `h_in`.
    #[inline]
    pub fn create_hot(
        &mut self,
        hot: ConnHot,
        laddr: u32,
        link: u32,
        h_in: FlowHash,
    ) -> Result<u32, CreateError> {
        debug_assert_eq!(h_in, self.hash(&hot.in_key()));
        let id = self.slab.free;
        if id == NIL {
            return Err(CreateError::NoSlot);
        }
        self.index
            .insert(h_in, id)
            .map_err(|TableFull| CreateError::IndexFull)?;
        if let Some(out) = hot.out_key(laddr)
            && let Err(e) = self.index_reply(id, &hot, out)
        {
            self.index.remove(h_in, id);
            return Err(e);
        }
        let i = id as usize;
        self.slab.free = self.slab.cold[i].link;
        self.slab.hot[i] = hot;
        self.slab.cold[i] = Cold { laddr, link };
        if hot.mode != Mode::Template && link != NO_TEMPLATE {
            self.slab.cold[link as usize].link += 1;
        }
        self.wheel.schedule(id, hot.expires);
        self.slab.len += 1;
        Ok(id)
    }

    /// Indexes the reply tuple `out` of the connection `hot` about to take slot `id`.
    fn index_reply(&mut self, id: u32, hot: &ConnHot, out: FlowKey) -> Result<(), CreateError> {
        let h_out = self.hash(&out);
        if out == hot.in_key() || self.lookup_hashed(&out, h_out).is_some() {
            return Err(CreateError::Collision);
        }
        self.index
            .insert(h_out, id)
            .map_err(|TableFull| CreateError::IndexFull)
    }

    /// Moves connection `id`'s deadline. A later deadline costs nothing (the timer re-arms
    /// itself when it comes round); an earlier one reschedules the timer, so a connection
    /// that closes expires on time (its counts and ports are released then).
    #[inline(always)]
    pub fn set_expires(&mut self, id: u32, deadline: u32) {
        let c = &mut self.slab.hot[id as usize];
        let earlier = deadline < c.expires;
        c.expires = deadline;
        if earlier {
            self.reschedule(id, deadline);
        }
    }

    fn reschedule(&mut self, id: u32, deadline: u32) {
        self.wheel.reschedule(id, deadline);
    }

    /// Removes connection `id` now (its deadline passed before its timer came round, or a
    /// template went stale); returns it. Its timer goes with it.
    pub fn remove(&mut self, id: u32) -> Conn {
        self.remove_found(id, None)
    }

    /// As [`ConnTable::remove`], for a connection just found by a tuple (of direction
    /// `dir`) hashing to `h`: that hash is not computed again.
    pub fn remove_found(&mut self, id: u32, found: Option<(Dir, FlowHash)>) -> Conn {
        let c = self.get(id);
        if c.proto != 0 {
            debug_assert!(found.is_none_or(|(d, h)| match d {
                Dir::In => h == self.hash(&c.in_key()),
                Dir::Out => c.out_key().is_some_and(|o| h == self.hash(&o)),
            }));
            self.wheel.cancel(id);
            self.slab.release(&mut self.index, self.seed, id, &c, found);
        }
        c
    }

    /// Expires connections whose deadline passed by `now`, handling at most `budget` timer
    /// entries per call. `on_expire` sees each due connection first and may keep it with a
    /// new deadline (`Some`: a persistence template still controlling connections); otherwise
    /// (`None`) it is removed and its slot reused. Returns how many connections were removed.
    pub fn expire(
        &mut self,
        now: u32,
        budget: usize,
        mut on_expire: impl FnMut(&Conn) -> Option<u32>,
    ) -> usize {
        let ConnTable {
            slab,
            seed,
            index,
            wheel,
        } = self;
        let now = now.max(wheel.latest());
        let mut expired = 0;
        wheel.advance(now, budget, |id| {
            let i = id as usize;
            let h = &slab.hot[i];
            debug_assert!(h.proto != 0, "timer of free slot {id}");
            if h.expires > now {
                return Fire::Rearm(h.expires);
            }
            let c = Conn::from_parts(h, slab.cold[i]);
            if let Some(deadline) = on_expire(&c) {
                slab.hot[i].expires = deadline;
                return Fire::Rearm(deadline);
            }
            slab.release(index, *seed, id, &c, None);
            expired += 1;
            Fire::Done
        });
        expired
    }

    /// True when every timer due by `now` has been handled (the last [`ConnTable::expire`]
    /// did not stop on its budget).
    pub fn caught_up(&self, now: u32) -> bool {
        self.wheel.caught_up(now)
    }

    /// Connections whose deadline is after `now` (a full scan, off the hot path).
    pub fn live(&self, now: u32) -> impl Iterator<Item = Conn> + '_ {
        self.iter().map(|(_, c)| c).filter(move |c| c.expires > now)
    }

    /// Calls `f` on every tracked connection (a full scan, off the hot path). `f` must not
    /// change the connection's keys or deadline: the index and the timers keep them.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut ConnHot)) {
        for c in self.slab.hot.iter_mut().filter(|c| c.proto != 0) {
            f(c);
        }
    }

    /// Every tracked connection with its id (a full scan, off the hot path).
    pub fn iter(&self) -> impl Iterator<Item = (u32, Conn)> + '_ {
        self.slab
            .hot
            .iter()
            .enumerate()
            .filter(|(_, c)| c.proto != 0)
            .map(|(i, c)| (i as u32, Conn::from_parts(c, self.slab.cold[i])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn conn(i: u32, mode: Mode, expires: u32) -> Conn {
        Conn {
            caddr: 0x0b00_0000 + i,
            vaddr: 0x0a00_0064,
            raddr: 0x0a00_000b,
            laddr: if mode == Mode::Fnat { 0x0a00_0014 } else { 0 },
            cport: 40000,
            vport: 80,
            rport: 8080,
            lport: if mode == Mode::Fnat {
                1024 + i as u16
            } else {
                0
            },
            expires,
            proto: 6,
            mode: mode as u8,
            ..Conn::default()
        }
    }

    #[test]
    fn layout() {
        assert_eq!(std::mem::size_of::<ConnHot>(), 32);
        assert_eq!(std::mem::align_of::<ConnHot>(), 32);
        assert_eq!(std::mem::size_of::<Cold>(), 8);
        assert!(
            ConnTable::conn_bytes() <= 64.0,
            "{}",
            ConnTable::conn_bytes()
        );
        let t = ConnTable::new(1 << 20, [1, 2], 0);
        assert!(t.is_mapped());
        let per = t.memory_bytes() as f64 / t.capacity() as f64;
        assert!(per <= 64.0, "{per} bytes per connection");
        assert!(per >= ConnTable::conn_bytes(), "{per}");
    }

    #[test]
    fn both_directions_find_the_connection_until_it_expires() {
        let mut t = ConnTable::new(16, [1, 2], 0);
        let dr = t.create(conn(1, Mode::Dr, 10)).unwrap();
        let nat = t.create(conn(2, Mode::Nat, 10)).unwrap();
        let fnat = t.create(conn(3, Mode::Fnat, 30)).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(&t.get(dr).in_key()), Some((dr, Dir::In)));
        assert_eq!(t.get(dr).out_key(), None);
        let out = t.get(nat).out_key().unwrap();
        assert_eq!(t.lookup(&out), Some((nat, Dir::Out)));
        assert_eq!(
            (out.saddr, out.sport, out.daddr, out.dport),
            (0x0a00_000b, 8080, 0x0b00_0002, 40000)
        );
        let fout = t.get(fnat).out_key().unwrap();
        assert_eq!((fout.daddr, fout.dport), (0x0a00_0014, 1027));
        assert_eq!(t.lookup(&fout), Some((fnat, Dir::Out)));
        assert_eq!(t.laddr(fnat), 0x0a00_0014);
        // A reply tuple differing only in the local address is not the FullNAT connection's.
        assert_eq!(
            t.lookup(&FlowKey {
                daddr: 0x0a00_0015,
                ..fout
            }),
            None
        );

        // Refresh the NAT connection; at t=10 only DR expires.
        t.set_expires(nat, 20);
        let mut gone = vec![];
        assert_eq!(
            t.expire(10, 100, |c| {
                gone.push(c.caddr);
                None
            }),
            1
        );
        assert_eq!(gone, [0x0b00_0001]);
        assert_eq!(t.lookup(&conn(1, Mode::Dr, 0).in_key()), None);
        assert!(t.lookup(&out).is_some());
        gone.clear();
        assert_eq!(
            t.expire(20, 100, |c| {
                gone.push(c.caddr);
                None
            }),
            1
        );
        assert_eq!(t.lookup(&out), None, "reply tuple removed with it");
        assert_eq!(t.expire(30, 100, |_| None), 1);
        assert!(t.is_empty());
        assert_eq!(t.iter().count(), 0);
        assert_eq!(t.index.len(), 0);
        assert!(t.wheel.is_empty());
    }

    #[test]
    fn an_earlier_deadline_expires_on_time() {
        let mut t = ConnTable::new(4, [1, 2], 0);
        let id = t.create(conn(1, Mode::Dr, 900)).unwrap();
        t.set_expires(id, 10);
        assert_eq!(t.expire(9, 10, |_| None), 0);
        assert_eq!(t.expire(10, 10, |_| None), 1);
        assert!(t.wheel.is_empty());
    }

    #[test]
    fn slots_run_out_and_come_back() {
        let mut t = ConnTable::new(2, [3, 4], 0);
        t.create(conn(1, Mode::Dr, 5)).unwrap();
        t.create(conn(2, Mode::Dr, 5)).unwrap();
        assert_eq!(t.create(conn(3, Mode::Dr, 5)), Err(CreateError::NoSlot));
        assert_eq!(t.expire(5, 10, |_| None), 2);
        t.create(conn(3, Mode::Dr, 9)).expect("slot reused");
    }

    #[test]
    fn an_early_removal_takes_its_timer_and_spares_the_next_tenant() {
        let mut t = ConnTable::new(1, [7, 8], 0);
        let id = t.create(conn(1, Mode::Dr, 10)).unwrap();
        let c = t.remove(id);
        assert_eq!(c.caddr, 0x0b00_0001);
        assert!(t.lookup(&c.in_key()).is_none());
        assert!(t.wheel.is_empty());
        let id2 = t.create(conn(2, Mode::Dr, 50)).unwrap();
        assert_eq!(id2, id, "slot reused");
        assert_eq!(t.expire(10, 10, |_| panic!("nothing is due at 10")), 0);
        assert_eq!(t.len(), 1);
        assert_eq!(t.expire(50, 10, |_| None), 1);
        // Removing a free slot changes nothing.
        assert_eq!(t.remove(id).proto, 0);
        assert!(t.is_empty());
    }

    #[test]
    fn a_template_lives_while_it_controls_connections() {
        let mut t = ConnTable::new(8, [1, 1], 0);
        let mut tmpl = conn(100, Mode::Template, 10);
        tmpl.proto = 0x86;
        tmpl.cport = 0;
        let tid = t.create(tmpl).unwrap();
        let mut c = conn(1, Mode::Dr, 30);
        c.template = tid;
        let cid = t.create(c).unwrap();
        assert_eq!(t.controls(tid), 1);
        assert_eq!(t.get(tid).controls, 1);
        assert_eq!(t.get(tid).template, NO_TEMPLATE);
        assert_eq!(t.get(cid).template, tid);
        // At 10 the template is due but controls a connection: the caller keeps it.
        let mut asked = 0;
        assert_eq!(
            t.expire(10, 10, |x| {
                asked += 1;
                (x.controls > 0).then_some(40)
            }),
            0
        );
        assert_eq!(asked, 1);
        assert_eq!(t.get(tid).expires, 40);
        // The connection goes at 30 and releases the template, which goes at 40.
        let key = t.get(cid).in_key();
        assert_eq!(t.expire(30, 10, |x| (x.controls > 0).then_some(99)), 1);
        assert_eq!(t.controls(tid), 0);
        assert!(t.lookup(&key).is_none());
        assert_eq!(t.expire(40, 10, |x| (x.controls > 0).then_some(99)), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn a_taken_reply_tuple_is_a_collision_and_changes_nothing() {
        let mut t = ConnTable::new(8, [5, 6], 0);
        t.create(conn(1, Mode::Nat, 5)).unwrap();
        let mut other = conn(1, Mode::Nat, 5);
        other.vaddr = 0x0a00_0065; // another VIP, same client and server tuple
        assert_eq!(t.create(other), Err(CreateError::Collision));
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(&other.in_key()), None);
        assert_eq!(t.index.len(), 2);
        // A reply tuple equal to its own client tuple is one too.
        let mut odd = conn(7, Mode::Nat, 5);
        (odd.vaddr, odd.raddr, odd.vport, odd.rport) = (odd.caddr, odd.caddr, 40000, 40000);
        assert_eq!(odd.out_key(), Some(odd.in_key()));
        assert_eq!(t.create(odd), Err(CreateError::Collision));
        assert_eq!((t.len(), t.index.len()), (1, 2));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Create {
            client: u32,
            port: u16,
            vip: u32,
            server: u32,
            mode: u8,
            ttl: u32,
        },
        Lookup {
            client: u32,
            port: u16,
            vip: u32,
        },
        Remove {
            pick: usize,
        },
        Refresh {
            pick: usize,
            ttl: u32,
        },
        Expire {
            dt: u32,
            budget: usize,
            drain: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..6, 0u16..4, 0u32..2, 0u32..3, 0u8..4, 0u32..100).prop_map(
                |(client, port, vip, server, mode, ttl)| Op::Create {
                    client, port, vip, server, mode, ttl
                }
            ),
            2 => (0u32..6, 0u16..4, 0u32..2)
                .prop_map(|(client, port, vip)| Op::Lookup { client, port, vip }),
            1 => any::<usize>().prop_map(|pick| Op::Remove { pick }),
            2 => (any::<usize>(), 0u32..100).prop_map(|(pick, ttl)| Op::Refresh { pick, ttl }),
            2 => (0u32..60, 1usize..8, any::<bool>())
                .prop_map(|(dt, budget, drain)| Op::Expire { dt, budget, drain }),
        ]
    }

    fn in_key(client: u32, port: u16, vip: u32) -> FlowKey {
        FlowKey {
            proto: 6,
            saddr: 0x0b00_0000 + client,
            daddr: 0x0a00_0064 + vip,
            sport: 1000 + port,
            dport: 80,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// The table against a HashMap model (client tuple → connection, and every reply
        /// tuple): create (refused exactly when the model says: no slot, or a reply tuple
        /// already taken), lookups from either side, removal, deadlines moved either way,
        /// expiry in budgeted steps.
        #[test]
        fn behaves_like_a_hashmap(
            capacity in 1usize..12,
            ops in proptest::collection::vec(op(), 1..150),
        ) {
            let mut t = ConnTable::new(capacity, [0xdead, 0xbeef], 0);
            let mut model: HashMap<FlowKey, (u32, Conn)> = HashMap::new();
            let mut now = 0u32;
            for op in ops {
                match op {
                    Op::Create { client, port, vip, server, mode, ttl } => {
                        let k = in_key(client, port, vip);
                        if model.contains_key(&k) {
                            continue; // the pipeline looks a tuple up before creating
                        }
                        let mode = Mode::from_u8(mode);
                        let c = Conn {
                            caddr: k.saddr,
                            vaddr: k.daddr,
                            raddr: 0x0a00_0010 + server,
                            laddr: if mode == Mode::Fnat { 0x0a00_0020 } else { 0 },
                            cport: k.sport,
                            vport: k.dport,
                            rport: 8080,
                            lport: if mode == Mode::Fnat { 2000 + (client * 8 + u32::from(port)) as u16 } else { 0 },
                            expires: now + ttl,
                            proto: 6,
                            mode: mode as u8,
                            ..Conn::default()
                        };
                        let taken = c.out_key().is_some_and(|o| {
                            o == k || model.contains_key(&o)
                                || model.values().any(|(_, x)| x.out_key() == Some(o))
                        });
                        let live = model.values().map(|(id, _)| *id).collect::<Vec<_>>();
                        let r = t.create(c);
                        if live.len() == capacity {
                            prop_assert_eq!(r, Err(CreateError::NoSlot));
                        } else if taken {
                            prop_assert_eq!(r, Err(CreateError::Collision));
                        } else {
                            let id = r.expect("created");
                            prop_assert!(!live.contains(&id));
                            prop_assert!((id as usize) < capacity);
                            model.insert(k, (id, c));
                        }
                    }
                    Op::Lookup { client, port, vip } => {
                        let k = in_key(client, port, vip);
                        prop_assert_eq!(t.lookup(&k), model.get(&k).map(|(id, _)| (*id, Dir::In)));
                    }
                    Op::Remove { pick } => {
                        if model.is_empty() {
                            continue;
                        }
                        let mut keys: Vec<FlowKey> = model.keys().copied().collect();
                        keys.sort_by_key(|k| (k.saddr, k.sport, k.daddr));
                        let k = keys[pick % keys.len()];
                        let (id, c) = model.remove(&k).unwrap();
                        prop_assert_eq!(t.remove(id), c);
                    }
                    Op::Refresh { pick, ttl } => {
                        if model.is_empty() {
                            continue;
                        }
                        let mut keys: Vec<FlowKey> = model.keys().copied().collect();
                        keys.sort_by_key(|k| (k.saddr, k.sport, k.daddr));
                        let k = keys[pick % keys.len()];
                        let (id, c) = model.get_mut(&k).unwrap();
                        // Only live connections get packets; a dead one waits for its timer.
                        if c.expires > now {
                            c.expires = now + ttl;
                            t.set_expires(*id, now + ttl);
                        }
                    }
                    Op::Expire { dt, budget, drain } => {
                        now += dt;
                        loop {
                            let mut gone = Vec::new();
                            let n = t.expire(now, budget, |c| {
                                gone.push(*c);
                                None
                            });
                            prop_assert_eq!(n, gone.len());
                            for c in gone {
                                prop_assert!(c.expires <= now, "{:?} expired at {}", c, now);
                                let (_, m) = model.remove(&c.in_key()).expect("expired one in the model");
                                prop_assert_eq!(m, c);
                            }
                            if !drain || t.caught_up(now) {
                                break;
                            }
                        }
                        if t.caught_up(now) {
                            prop_assert!(model.values().all(|(_, c)| c.expires > now));
                        }
                    }
                }
                // Every tuple of the model, and nothing else, is found.
                prop_assert_eq!(t.len(), model.len());
                prop_assert_eq!(t.wheel.len(), model.len());
                let tuples: usize = model.values().map(|(_, c)| 1 + usize::from(c.out_key().is_some())).sum();
                prop_assert_eq!(t.index.len(), tuples);
                for (k, (id, c)) in &model {
                    prop_assert_eq!(t.lookup(k), Some((*id, Dir::In)));
                    prop_assert_eq!(t.get(*id), *c);
                    if let Some(o) = c.out_key() {
                        prop_assert_eq!(t.lookup(&o), Some((*id, Dir::Out)));
                    }
                }
                let mut listed: Vec<u32> = t.iter().map(|(id, _)| id).collect();
                let mut want: Vec<u32> = model.values().map(|(id, _)| *id).collect();
                listed.sort_unstable();
                want.sort_unstable();
                prop_assert_eq!(listed, want);
            }
        }
    }
}
