//! Connections: a preallocated slab of [`Conn`]s with stable ids, the tuple index that finds
//! them from either direction, and the timing wheel that expires them.
//!
//! A connection's id is its slab index; it never moves, so the index and the wheel can refer
//! to it. Creating a connection takes a free id, indexes its tuples and arms its timer; a
//! packet only moves `expires` forward; when the timer fires the table either re-arms it (the
//! connection was refreshed) or removes it and hands it to the caller for accounting (active
//! and inactive counts, FullNAT local ports). Nothing allocates after construction, and no
//! operation scans the table.

use super::index::{Dir, FlowIndex, FlowKey, TableFull};
use super::timer::{Fire, TimerWheel};

/// One connection, as IPVS's `ip_vs_conn`: client, virtual, local and real-server endpoints.
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

impl Conn {
    /// The client's tuple (what the client sends).
    pub fn in_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            saddr: self.caddr,
            daddr: self.vaddr,
            sport: self.cport,
            dport: self.vport,
        }
    }

    /// The reply tuple (what the real server sends back through the director), for NAT and
    /// FullNAT.
    pub fn out_key(&self) -> Option<FlowKey> {
        match Mode::from_u8(self.mode) {
            Mode::Nat => Some(FlowKey {
                proto: self.proto,
                saddr: self.raddr,
                daddr: self.caddr,
                sport: self.rport,
                dport: self.cport,
            }),
            Mode::Fnat => Some(FlowKey {
                proto: self.proto,
                saddr: self.raddr,
                daddr: self.laddr,
                sport: self.rport,
                dport: self.lport,
            }),
            Mode::Dr | Mode::Tun | Mode::Template => None,
        }
    }
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

/// The connection table of one worker.
#[derive(Debug)]
pub struct ConnTable {
    conns: Box<[Conn]>,
    used: Box<[bool]>,
    /// Generation of each slot: the high 24 bits are bumped on every create, the low 8 on every
    /// re-arm to an earlier deadline. A timer entry carries the value it was armed with, so
    /// one of an earlier connection in the slot, or one superseded by an earlier deadline, is
    /// recognised as stale and dropped when it fires.
    gens: Box<[u32]>,
    free: Vec<u32>,
    index: FlowIndex,
    wheel: TimerWheel<u64>,
}

#[inline]
fn timer_key(id: u32, generation: u32) -> u64 {
    u64::from(id) << 32 | u64::from(generation)
}

impl ConnTable {
    /// A table for `capacity` connections (two tuples each at most), hashing with `seed`,
    /// with its timers starting at `now`.
    pub fn new(capacity: usize, seed: [u64; 2], now: u32) -> ConnTable {
        let capacity = capacity.max(1);
        ConnTable {
            conns: vec![Conn::default(); capacity].into_boxed_slice(),
            used: vec![false; capacity].into_boxed_slice(),
            gens: vec![0; capacity].into_boxed_slice(),
            free: (0..capacity as u32).rev().collect(),
            index: FlowIndex::new(capacity * 2, seed),
            // One live entry per connection plus stale ones (early removals, shortened
            // deadlines) until they fire; a full wheel only delays a shortened deadline.
            wheel: TimerWheel::new(capacity * 4, now),
        }
    }

    /// Connection slots.
    pub fn capacity(&self) -> usize {
        self.conns.len()
    }

    /// Connections in use.
    pub fn len(&self) -> usize {
        self.conns.len() - self.free.len()
    }

    /// True when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of memory per connection slot (the slab entry, its share of the index at two
    /// tuples per connection, and its timer entry are not all counted here: see
    /// [`ConnTable::memory_bytes`]).
    pub const fn conn_bytes() -> usize {
        std::mem::size_of::<Conn>()
    }

    /// Bytes held by the table's arrays.
    pub fn memory_bytes(&self) -> usize {
        self.conns.len() * (std::mem::size_of::<Conn>() + 1 + 4)
            + self.index.capacity() * FlowIndex::bytes_per_entry()
            + self.wheel.capacity() * 16
    }

    /// The connection a packet with `key` belongs to, and which way it goes.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(u32, Dir)> {
        self.index.lookup(key)
    }

    /// The connection `id`.
    #[inline]
    pub fn get(&self, id: u32) -> &Conn {
        &self.conns[id as usize]
    }

    /// The connection `id`, writable.
    #[inline]
    pub fn get_mut(&mut self, id: u32) -> &mut Conn {
        &mut self.conns[id as usize]
    }

    /// Tracks `conn`: indexes its tuples and arms its timer at `conn.expires`.
    pub fn create(&mut self, conn: Conn) -> Result<u32, CreateError> {
        let Some(&id) = self.free.last() else {
            return Err(CreateError::NoSlot);
        };
        let in_key = conn.in_key();
        self.index
            .insert(&in_key, id, Dir::In)
            .map_err(|TableFull| CreateError::IndexFull)?;
        if let Some(out) = conn.out_key() {
            if self.index.lookup(&out).is_some() {
                self.index.remove(&in_key);
                return Err(CreateError::Collision);
            }
            if self.index.insert(&out, id, Dir::Out).is_err() {
                self.index.remove(&in_key);
                return Err(CreateError::IndexFull);
            }
        }
        let generation = (self.gens[id as usize] | 0xff).wrapping_add(1);
        if self
            .wheel
            .schedule(timer_key(id, generation), conn.expires)
            .is_err()
        {
            // The wheel holds one entry per slot, so this cannot happen; stay consistent.
            self.index.remove(&in_key);
            if let Some(out) = conn.out_key() {
                self.index.remove(&out);
            }
            return Err(CreateError::NoSlot);
        }
        self.free.pop();
        self.gens[id as usize] = generation;
        self.conns[id as usize] = conn;
        self.used[id as usize] = true;
        if conn.template != NO_TEMPLATE {
            self.conns[conn.template as usize].controls += 1;
        }
        Ok(id)
    }

    fn unlink(conns: &mut [Conn], c: &Conn) {
        if c.template != NO_TEMPLATE {
            let t = &mut conns[c.template as usize];
            t.controls = t.controls.saturating_sub(1);
        }
    }

    /// Moves connection `id`'s deadline. Later deadlines cost nothing (the timer re-arms itself
    /// when it fires); an earlier one arms a new timer entry and retires the old one, so a
    /// connection that closes expires on time (its counts and ports are released then). False
    /// when the wheel had no room (the connection then expires at its old timer, and any packet
    /// after its deadline already treats it as gone).
    #[inline]
    pub fn set_expires(&mut self, id: u32, deadline: u32) -> bool {
        let i = id as usize;
        let earlier = deadline < self.conns[i].expires;
        self.conns[i].expires = deadline;
        if !earlier {
            return true;
        }
        let g = self.gens[i];
        let rearmed = (g & !0xff) | (g.wrapping_add(1) & 0xff);
        if self
            .wheel
            .schedule(timer_key(id, rearmed), deadline)
            .is_ok()
        {
            self.gens[i] = rearmed;
            true
        } else {
            false
        }
    }

    /// Removes connection `id` now (its deadline passed before its timer fired); returns it.
    /// Its timer entry is left to fire and be recognised as stale.
    pub fn remove(&mut self, id: u32) -> Conn {
        let c = self.conns[id as usize];
        if self.used[id as usize] {
            self.index.remove(&c.in_key());
            if let Some(out) = c.out_key() {
                self.index.remove(&out);
            }
            self.used[id as usize] = false;
            self.free.push(id);
            Self::unlink(&mut self.conns, &c);
        }
        c
    }

    /// Expires connections whose deadline passed by `now`, at most `budget` timer entries per
    /// call. `on_expire` sees each due connection first and may keep it with a new deadline
    /// (`Some`: a persistence template still controlling connections); otherwise (`None`) it
    /// is removed and its slot reused. Returns how many connections were removed.
    pub fn expire(
        &mut self,
        now: u32,
        budget: usize,
        mut on_expire: impl FnMut(&Conn) -> Option<u32>,
    ) -> usize {
        let conns = &mut self.conns;
        let used = &mut self.used;
        let gens = &self.gens;
        let index = &mut self.index;
        let free = &mut self.free;
        let mut expired = 0;
        self.wheel.advance(now, budget, |key| {
            let (id, generation) = ((key >> 32) as u32, key as u32);
            let c = conns[id as usize];
            if !used[id as usize] || gens[id as usize] != generation {
                return Fire::Done;
            }
            if c.expires > now {
                return Fire::Rearm(c.expires);
            }
            if let Some(deadline) = on_expire(&c) {
                conns[id as usize].expires = deadline;
                return Fire::Rearm(deadline);
            }
            index.remove(&c.in_key());
            if let Some(out) = c.out_key() {
                index.remove(&out);
            }
            used[id as usize] = false;
            free.push(id);
            Self::unlink(conns, &c);
            expired += 1;
            Fire::Done
        });
        expired
    }

    /// Connections whose deadline is after `now` (a full scan, off the hot path).
    pub fn live(&self, now: u32) -> impl Iterator<Item = &Conn> + '_ {
        self.iter().map(|(_, c)| c).filter(move |c| c.expires > now)
    }

    /// Calls `f` on every tracked connection (a full scan, off the hot path). `f` must not
    /// change the connection's keys or deadline: the index and the timers keep them.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut Conn)) {
        for (c, used) in self.conns.iter_mut().zip(self.used.iter()) {
            if *used {
                f(c);
            }
        }
    }

    /// Every tracked connection with its id (a full scan, off the hot path).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Conn)> + '_ {
        self.conns
            .iter()
            .zip(self.used.iter())
            .enumerate()
            .filter(|(_, (_, u))| **u)
            .map(|(i, (c, _))| (i as u32, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

        // Refresh the NAT connection; at t=10 only DR expires.
        t.get_mut(nat).expires = 20;
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
    fn an_early_removal_leaves_a_stale_timer_that_spares_the_next_tenant() {
        let mut t = ConnTable::new(1, [7, 8], 0);
        let id = t.create(conn(1, Mode::Dr, 10)).unwrap();
        let c = t.remove(id);
        assert_eq!(c.caddr, 0x0b00_0001);
        assert!(t.lookup(&c.in_key()).is_none());
        let id2 = t.create(conn(2, Mode::Dr, 50)).unwrap();
        assert_eq!(id2, id, "slot reused");
        assert_eq!(
            t.expire(10, 10, |_| panic!(
                "stale timer must not expire the new tenant"
            )),
            0
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.expire(50, 10, |_| None), 1);
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
        assert_eq!(t.get(tid).controls, 1);
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
        assert_eq!(t.expire(30, 10, |x| (x.controls > 0).then_some(99)), 1);
        assert_eq!(t.get(tid).controls, 0);
        assert!(t.lookup(&t.get(cid).in_key()).is_none());
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
    }
}
