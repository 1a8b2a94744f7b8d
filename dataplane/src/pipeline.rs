//! The per-packet pipeline of one worker: parse → classify → connection lookup (either
//! direction) → schedule on a new connection → rewrite for the forwarding mode → verdict. Pure
//! logic over a [`PacketBuf`], so it runs the same on an mbuf and on a `Vec<u8>` in tests; the
//! I/O layer moves the packet according to the returned [`Verdict`].
//!
//! Besides virtual-service traffic, a worker answers ARP requests for the director's addresses
//! and ICMP echo to them in the same buffer, and reports ARP senders that the neighbour table
//! wants to the main lcore through a bounded lock-free queue. Connection accounting (active and
//! inactive counts per real server, OVERLOAD thresholds, FullNAT local ports) is the worker's
//! own and changes only on its core.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use rvs_config::{Forward, ServiceKey};

use crate::flow::tcp::{self, Direction, State};
use crate::flow::{
    Conn, ConnHot, ConnTable, CreateError, Dir, FlowHash, FlowKey, Mode, NO_TEMPLATE,
};
use crate::fwd::{self, fnat::PortPool, nat, tun};
use crate::neigh::NeighEvent;
use crate::redirect::Redirect;
use crate::sched::{self, DestLoad, Sched, SchedInput};
use crate::snapshot::{NextHop, Snapshot};
use crate::stats::{Counters, DropReason, TrafficCounters};
use crate::wire::{
    ArpPacket, EthernetFrame, IcmpV4Packet, Ipv4Packet, MacAddr, TcpPacket, UdpPacket, arp_op,
    checksum, ether_type, icmp_type, ip_proto, make_reply_in_place,
};

const ETH: usize = 14;

/// Frames [`Worker::process_burst`] overlaps at most (longer slices go in chunks).
pub const BURST: usize = 32;

/// Protocol byte of persistence-template keys in the tuple index (never a real protocol):
/// `0x80 | protocol` for address services, `0x80` alone for firewall-mark services.
const TEMPLATE_PROTO: u8 = 0x80;

/// Timer entries a new connection may reclaim when the table is full.
const FULL_EXPIRE_BUDGET: usize = 64;

/// A packet buffer the pipeline can rewrite, grow at the front (tunnels) and trim.
pub trait PacketBuf {
    /// The frame.
    fn data(&self) -> &[u8];
    /// The frame, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the frame by `n` bytes at the front; false (unchanged) without headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Sets the frame length (shrinking, or growing into tailroom); false if impossible.
    fn set_len(&mut self, len: usize) -> bool;
}

impl PacketBuf for Vec<u8> {
    fn data(&self) -> &[u8] {
        self
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self
    }
    fn prepend(&mut self, n: usize) -> bool {
        self.splice(0..0, std::iter::repeat_n(0, n));
        true
    }
    fn set_len(&mut self, len: usize) -> bool {
        self.resize(len, 0);
        true
    }
}

/// A frame in a fixed byte slice (benchmarks, tools): it can shrink but not grow, so a
/// tunnel encapsulation on it is refused as `NoHeadroom`.
#[derive(Debug)]
pub struct SliceFrame<'a> {
    data: &'a mut [u8],
}

impl<'a> SliceFrame<'a> {
    /// Wraps `data`.
    pub fn new(data: &'a mut [u8]) -> Self {
        SliceFrame { data }
    }
}

impl PacketBuf for SliceFrame<'_> {
    fn data(&self) -> &[u8] {
        self.data
    }
    fn data_mut(&mut self) -> &mut [u8] {
        self.data
    }
    fn prepend(&mut self, _n: usize) -> bool {
        false
    }
    fn set_len(&mut self, len: usize) -> bool {
        if len > self.data.len() {
            return false;
        }
        let data = std::mem::take(&mut self.data);
        self.data = &mut data[..len];
        true
    }
}

/// What to do with a packet after the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame on this port index.
    Tx(u16),
    /// Free it; counted under the reason.
    Drop(DropReason),
    /// Fully handled, nothing to send (e.g. an ARP reply that was learned); free it.
    Consumed,
    /// Belongs to a connection another worker owns: hand it to that worker.
    Handoff(u16),
}

/// Client MACs learned from requests, for replies to on-link clients (NAT and FullNAT): a
/// 4-way set-associative cache per worker, refreshed by every request of a connection. A set
/// evicts round robin, so up to four clients sharing a set keep their entries; beyond that
/// (far more on-link clients than entries) a reply may find its client's MAC gone and is
/// dropped as unresolved until the client's next packet. Resolving on-link clients by ARP is
/// the complete answer and future work.
#[derive(Debug)]
struct PeerCache {
    slots: Box<[(u32, u64)]>,
    next: Box<[u8]>,
}

const PEER_SETS: usize = 4096;
const PEER_WAYS: usize = 4;
const PEER_VALID: u64 = 1 << 63;

impl PeerCache {
    fn new() -> Self {
        PeerCache {
            slots: vec![(0, 0); PEER_SETS * PEER_WAYS].into_boxed_slice(),
            next: vec![0; PEER_SETS].into_boxed_slice(),
        }
    }
    #[inline]
    fn set(ip: u32) -> usize {
        (ip.wrapping_mul(0x61C8_8647) >> 20) as usize & (PEER_SETS - 1)
    }
    #[inline]
    fn learn(&mut self, ip: u32, mac: MacAddr) {
        let set = Self::set(ip);
        let ways = &mut self.slots[set * PEER_WAYS..(set + 1) * PEER_WAYS];
        let v = mac.to_u64() | PEER_VALID;
        if let Some(w) = ways
            .iter_mut()
            .find(|(k, x)| *k == ip && *x & PEER_VALID != 0)
        {
            w.1 = v;
            return;
        }
        let at = match ways.iter().position(|(_, x)| *x & PEER_VALID == 0) {
            Some(free) => free,
            None => {
                let n = &mut self.next[set];
                *n = (*n + 1) % PEER_WAYS as u8;
                usize::from(*n)
            }
        };
        ways[at] = (ip, v);
    }
    #[inline]
    fn get(&self, ip: u32) -> Option<MacAddr> {
        let set = Self::set(ip);
        self.slots[set * PEER_WAYS..(set + 1) * PEER_WAYS]
            .iter()
            .find(|(k, v)| *k == ip && *v & PEER_VALID != 0)
            .map(|&(_, v)| MacAddr::from_u64(v & !PEER_VALID))
    }
}

/// The per-server accounting a connection holds, borrowed apart from the connection table.
struct Accounts<'a> {
    loads: &'a mut Vec<Vec<DestLoad>>,
    persistent: &'a mut Vec<Vec<u32>>,
    lports: &'a mut Vec<PortPool>,
    snap: &'a Snapshot,
    redirect: Option<&'a Redirect>,
    id: u16,
}

impl Accounts<'_> {
    fn release(&mut self, c: &Conn) {
        if Mode::from_u8(c.mode) == Mode::Template {
            if let Some(n) = self
                .persistent
                .get_mut(c.service as usize)
                .and_then(|v| v.get_mut(c.dest as usize))
            {
                *n = n.saturating_sub(1);
            }
            return;
        }
        let svc = c.service as usize;
        let d = c.dest as usize;
        if let Some(l) = self.loads.get_mut(svc).and_then(|l| l.get_mut(d)) {
            if c.active {
                l.active = l.active.saturating_sub(1);
            } else {
                l.inactive = l.inactive.saturating_sub(1);
            }
            let dest = &self.snap.services[svc].dests[d];
            sched::update_overload(l, dest.upper, dest.lower);
        }
        if Mode::from_u8(c.mode) == Mode::Fnat
            && let Some(i) = self.snap.lip_index(Ipv4Addr::from_bits(c.laddr))
        {
            self.lports[i].give_back(c.lport);
        }
        if Mode::from_u8(c.mode) == Mode::Nat
            && let (Some(r), Some(out)) = (self.redirect, c.out_key())
        {
            r.remove(&out, self.id);
        }
    }
}

/// Rewrites an ICMP error in place (`frame`, its ICMP message at `at`, the quoted IP header
/// `ihl` bytes long): the outer destination and source, and the quoted packet's source and
/// destination address and port, as given; then the quoted IP header checksum, the ICMP
/// checksum and the outer IP checksum are recomputed.
fn rewrite_icmp(
    frame: &mut [u8],
    at: usize,
    ihl: usize,
    outer_dst: Option<Ipv4Addr>,
    outer_src: Option<Ipv4Addr>,
    inner_src: Option<(Ipv4Addr, u16)>,
    inner_dst: Option<(Ipv4Addr, u16)>,
) {
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[ETH..]);
        if let Some(d) = outer_dst {
            ip.set_dst(d);
        }
        if let Some(s) = outer_src {
            ip.set_src(s);
        }
        ip.fill_checksum();
    }
    let q = at + 8;
    {
        let mut inner = Ipv4Packet::new_unchecked(&mut frame[q..q + ihl]);
        if let Some((a, _)) = inner_src {
            inner.set_src(a);
        }
        if let Some((a, _)) = inner_dst {
            inner.set_dst(a);
        }
        inner.fill_checksum();
    }
    if let Some((_, p)) = inner_src {
        frame[q + ihl..q + ihl + 2].copy_from_slice(&p.to_be_bytes());
    }
    if let Some((_, p)) = inner_dst {
        frame[q + ihl + 2..q + ihl + 4].copy_from_slice(&p.to_be_bytes());
    }
    let end = ETH + usize::from(Ipv4Packet::new_unchecked(&frame[ETH..]).total_len());
    IcmpV4Packet::new_unchecked(&mut frame[at..end]).fill_checksum();
}

/// Parsed facts of an IPv4 TCP/UDP packet the pipeline needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct L4 {
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    total_len: u16,
    ident: u16,
    dont_frag: bool,
    tos: u8,
}

/// Where a connection's packets for its real server go: the server's address, the egress
/// port, and the neighbour slot of the next hop.
#[derive(Debug, Clone, Copy)]
struct Hop {
    addr: Ipv4Addr,
    out_port: u16,
    neigh: u32,
}

impl L4 {
    /// The packet's tuple.
    #[inline(always)]
    fn key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            saddr: self.src.to_bits(),
            daddr: self.dst.to_bits(),
            sport: self.sport,
            dport: self.dport,
        }
    }
}

/// The TCP or UDP facts of a checked IPv4 packet: `Ok(None)` for a fragment or another
/// protocol, `Err` for an L4 header that does not fit.
#[inline(always)]
fn l4_of(ip: &Ipv4Packet<&[u8]>) -> Result<Option<L4>, DropReason> {
    let proto = ip.protocol();
    if !matches!(proto, ip_proto::TCP | ip_proto::UDP) || ip.is_fragment() {
        return Ok(None);
    }
    let l4_bytes = ip.payload();
    let (sport, dport, flags) = if proto == ip_proto::TCP {
        match TcpPacket::new_checked(l4_bytes) {
            Ok(t) => (t.src_port(), t.dst_port(), t.flags()),
            Err(_) => return Err(DropReason::L4Malformed),
        }
    } else {
        match UdpPacket::new_checked(l4_bytes) {
            Ok(u) => (u.src_port(), u.dst_port(), 0),
            Err(_) => return Err(DropReason::L4Malformed),
        }
    };
    Ok(Some(L4 {
        proto,
        src: ip.src(),
        dst: ip.dst(),
        sport,
        dport,
        flags,
        total_len: ip.total_len(),
        ident: ip.ident(),
        dont_frag: ip.dont_frag(),
        tos: ip.dscp_ecn(),
    }))
}

/// `Conn::service` and `Conn::dest` of a connection whose service or real server a
/// configuration change removed (see [`Worker::install`]).
pub const ORPHAN: u16 = u16::MAX;

/// One worker's state: its connections, its scheduler states, its accounting and counters.
#[derive(Debug)]
pub struct Worker {
    /// Worker index (0-based).
    pub id: u16,
    snap: Arc<Snapshot>,
    sched: Vec<Sched>,
    loads: Vec<Vec<DestLoad>>,
    /// Per service, per real server: persistence templates pointing at it.
    persistent: Vec<Vec<u32>>,
    conns: ConnTable,
    /// Timeout of each connection state (`State as usize`), from the snapshot.
    timeouts: [u32; 12],
    lports: Vec<PortPool>,
    next_lip: Vec<usize>,
    peers: PeerCache,
    /// This worker's counters.
    pub counters: Counters,
    /// Per service, per real server traffic (service totals are the sums).
    traffic: Vec<Vec<TrafficCounters>>,
    events: Arc<ArrayQueue<NeighEvent>>,
    workers: u16,
    redirect: Option<Arc<Redirect>>,
}

/// One tracked connection as `ipvsadm -Lnc` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// IP protocol (0x80 bit set for persistence templates, as IPVS shows them as `IP`).
    pub proto: u8,
    /// State name (`ESTABLISHED`, `SYN_RECV`, … `NONE` for templates).
    pub state: &'static str,
    /// Seconds until it expires.
    pub expires_in: u32,
    /// Client (for a template: the client network).
    pub client: (Ipv4Addr, u16),
    /// Virtual address and port (for a mark template: the mark as an address).
    pub virtual_: (Ipv4Addr, u16),
    /// Real server.
    pub dest: (Ipv4Addr, u16),
    /// FullNAT local address and port.
    pub local: Option<(Ipv4Addr, u16)>,
    /// Service index.
    pub service: u16,
    /// Whether this is a persistence template.
    pub template: bool,
}

impl Worker {
    /// A worker (index `id` of `workers`) over `snap` with room for `conns` connections.
    pub fn new(
        id: u16,
        snap: Arc<Snapshot>,
        conns: usize,
        seed: [u64; 2],
        events: Arc<ArrayQueue<NeighEvent>>,
    ) -> Worker {
        Self::with_workers(id, 1, snap, conns, seed, events)
    }

    /// As [`Worker::new`], for worker `id` of `workers` (FullNAT port slices).
    pub fn with_workers(
        id: u16,
        workers: u16,
        snap: Arc<Snapshot>,
        conns: usize,
        seed: [u64; 2],
        events: Arc<ArrayQueue<NeighEvent>>,
    ) -> Worker {
        let loads: Vec<Vec<DestLoad>> = snap.services.iter().map(|s| s.loads()).collect();
        let sched = snap
            .services
            .iter()
            .zip(&loads)
            .map(|(s, l)| Sched::build(s.scheduler, &s.flags, l))
            .collect();
        let lports = snap
            .lips
            .iter()
            .map(|_| PortPool::new(id, workers))
            .collect();
        Worker {
            id,
            sched,
            persistent: loads.iter().map(|l| vec![0; l.len()]).collect(),
            loads,
            conns: ConnTable::new(conns, seed, 0),
            timeouts: State::timeouts(&snap.timeouts),
            lports,
            next_lip: vec![0; snap.services.len()],
            peers: PeerCache::new(),
            counters: Counters::default(),
            traffic: snap
                .services
                .iter()
                .map(|s| vec![TrafficCounters::default(); s.dests.len()])
                .collect(),
            events,
            snap,
            workers: workers.max(1),
            redirect: None,
        }
    }

    /// Shares `redirect`, the table that tells workers which of them owns a NAT reply tuple
    /// (needed with more than one worker).
    pub fn with_redirect(mut self, redirect: Arc<Redirect>) -> Worker {
        self.redirect = Some(redirect);
        self
    }

    /// The worker that owns the connection a packet with `key` (not found here) belongs to,
    /// when that can be known: a FullNAT reply by its local port, a NAT reply by the redirect
    /// table.
    #[inline]
    fn owner_of(&self, key: &FlowKey) -> Option<u16> {
        let dst = Ipv4Addr::from_bits(key.daddr);
        if self.snap.lip_index(dst).is_some() {
            return (key.dport >= fwd::fnat::FIRST_PORT).then(|| key.dport % self.workers);
        }
        self.redirect.as_ref()?.lookup(key)
    }

    /// The snapshot in use.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    /// The connection table (for listings and tests).
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// Traffic of real server `dest` of service `svc` on this worker.
    pub fn dest_traffic(&self, svc: usize, dest: usize) -> TrafficCounters {
        self.traffic[svc][dest]
    }

    /// Traffic of service `svc` on this worker (the sum over its servers).
    pub fn service_traffic(&self, svc: usize) -> TrafficCounters {
        let mut t = TrafficCounters::default();
        for d in &self.traffic[svc] {
            t.add(d);
        }
        t
    }

    /// Persistence templates pointing at each real server of service `svc` (ipvsadm's
    /// `--persistent-conn` column), kept as templates come and go.
    pub fn persistent_counts(&self, svc: usize) -> &[u32] {
        &self.persistent[svc]
    }

    /// Every tracked connection and template at time `now`, for listings (`ipvsadm -Lnc`).
    /// A full scan: off the hot path.
    pub fn connections(&self, now: u32) -> impl Iterator<Item = ConnInfo> + '_ {
        self.conns.iter().map(move |(_, c)| {
            let template = Mode::from_u8(c.mode) == Mode::Template;
            let state = if template {
                "NONE"
            } else {
                State::from_u8(c.state).name()
            };
            ConnInfo {
                proto: c.proto,
                state,
                expires_in: c.expires.saturating_sub(now),
                client: (Ipv4Addr::from_bits(c.caddr), c.cport),
                virtual_: (Ipv4Addr::from_bits(c.vaddr), c.vport),
                dest: (Ipv4Addr::from_bits(c.raddr), c.rport),
                local: (Mode::from_u8(c.mode) == Mode::Fnat)
                    .then(|| (Ipv4Addr::from_bits(c.laddr), c.lport)),
                service: c.service,
                template,
            }
        })
    }

    /// The scheduler's view of service `svc`'s servers (weights, flags, counts).
    pub fn loads(&self, svc: usize) -> &[DestLoad] {
        &self.loads[svc]
    }

    /// The real server a connection forwards to, as the current snapshot knows it. An orphan
    /// (its service or server removed by a configuration change; IPVS keeps such connections
    /// while they live, its `expire_nodest_conn` being off by default) keeps going to its
    /// real server while the snapshot has a next hop for it: the server is still on-link with
    /// a neighbour slot (another service uses it), or routed through a gateway.
    #[inline(always)]
    fn dest_of(&self, c: &ConnHot) -> Option<Hop> {
        if let Some(d) = self
            .snap
            .services
            .get(c.service as usize)
            .and_then(|s| s.dests.get(c.dest as usize))
        {
            return Some(Hop {
                addr: d.addr,
                out_port: d.out_port,
                neigh: d.neigh,
            });
        }
        self.orphan_hop(c)
    }

    #[cold]
    fn orphan_hop(&self, c: &ConnHot) -> Option<Hop> {
        let addr = Ipv4Addr::from_bits(c.raddr);
        let (out_port, neigh) = match self.snap.next_hop(addr)? {
            NextHop::Gateway { port, neigh } => (port, neigh),
            NextHop::OnLink { port } => (port, self.snap.neigh.find(addr, port)? as u32),
        };
        Some(Hop {
            addr,
            out_port,
            neigh,
        })
    }

    /// Switches to a new configuration snapshot (off the hot path, between bursts) and
    /// returns the old one, to be dropped off this core.
    ///
    /// Services are matched by their ipvsadm identity and real servers by address and port:
    /// what survives keeps its connection counts, traffic counters, persistence counts and,
    /// when its scheduler and server list are unchanged, its scheduler state (a weight change
    /// re-derives the weight-dependent parts, as IPVS's `update_service`); a changed server list
    /// or scheduler starts the scheduler afresh. Connections and templates are renumbered to
    /// the new positions (a full scan, skipped when no position moved); those whose service or
    /// server is gone become orphans ([`ORPHAN`]): they keep forwarding while a next hop is
    /// known and expire as usual, and new connections are never scheduled to them.
    pub fn install(&mut self, snap: Arc<Snapshot>) -> Arc<Snapshot> {
        use std::collections::HashMap;
        let old = Arc::clone(&self.snap);
        let by_key: HashMap<ServiceKey, usize> = snap
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.key, i))
            .collect();
        let svc_map: Vec<u16> = old
            .services
            .iter()
            .map(|s| by_key.get(&s.key).map_or(ORPHAN, |&n| n as u16))
            .collect();
        let dest_map: Vec<Vec<u16>> = old
            .services
            .iter()
            .zip(&svc_map)
            .map(|(s, &n)| {
                s.dests
                    .iter()
                    .map(|d| {
                        snap.services
                            .get(n as usize)
                            .and_then(|ns| {
                                ns.dests
                                    .iter()
                                    .position(|x| x.addr == d.addr && x.port == d.port)
                            })
                            .map_or(ORPHAN, |j| j as u16)
                    })
                    .collect()
            })
            .collect();
        let identity = svc_map.iter().enumerate().all(|(i, &n)| n as usize == i)
            && dest_map
                .iter()
                .all(|v| v.iter().enumerate().all(|(j, &d)| d as usize == j));

        let mut loads: Vec<Vec<DestLoad>> = snap.services.iter().map(|s| s.loads()).collect();
        let mut traffic: Vec<Vec<TrafficCounters>> = loads
            .iter()
            .map(|l| vec![TrafficCounters::default(); l.len()])
            .collect();
        let mut persistent: Vec<Vec<u32>> = loads.iter().map(|l| vec![0; l.len()]).collect();
        let mut prev_of: Vec<Option<usize>> = vec![None; snap.services.len()];
        for (i, &n) in svc_map.iter().enumerate() {
            if n == ORPHAN {
                continue;
            }
            let n = n as usize;
            prev_of[n] = Some(i);
            for (j, &d) in dest_map[i].iter().enumerate() {
                if d == ORPHAN {
                    continue;
                }
                let d = d as usize;
                let l = &mut loads[n][d];
                l.active = self.loads[i][j].active;
                l.inactive = self.loads[i][j].inactive;
                let dest = &snap.services[n].dests[d];
                sched::update_overload(l, dest.upper, dest.lower);
                traffic[n][d] = self.traffic[i][j];
                persistent[n][d] = self.persistent[i][j];
            }
        }
        let mut old_sched: Vec<Option<Sched>> = std::mem::take(&mut self.sched)
            .into_iter()
            .map(Some)
            .collect();
        self.sched = snap
            .services
            .iter()
            .enumerate()
            .map(|(n, s)| {
                let fresh = || Sched::build(s.scheduler, &s.flags, &loads[n]);
                let Some(i) = prev_of[n] else {
                    return fresh();
                };
                let o = &old.services[i];
                let same_list = o.dests.len() == s.dests.len()
                    && o.dests
                        .iter()
                        .zip(&s.dests)
                        .all(|(a, b)| a.addr == b.addr && a.port == b.port);
                match old_sched[i].take() {
                    Some(mut sc)
                        if same_list && o.scheduler == s.scheduler && o.flags == s.flags =>
                    {
                        let weights_changed = o
                            .dests
                            .iter()
                            .zip(&s.dests)
                            .any(|(a, b)| a.weight != b.weight);
                        if weights_changed {
                            sc.update(&loads[n]);
                        }
                        sc
                    }
                    _ => fresh(),
                }
            })
            .collect();
        // FullNAT port pools follow their local address.
        let mut old_pools: Vec<Option<PortPool>> = std::mem::take(&mut self.lports)
            .into_iter()
            .map(Some)
            .collect();
        self.lports = snap
            .lips
            .iter()
            .map(|l| {
                old.lips
                    .iter()
                    .position(|x| x == l)
                    .and_then(|i| old_pools[i].take())
                    .unwrap_or_else(|| PortPool::new(self.id, self.workers))
            })
            .collect();
        self.next_lip = vec![0; snap.services.len()];
        if !identity {
            self.conns.for_each_mut(|c| {
                let i = c.service as usize;
                match svc_map.get(i) {
                    Some(&n) if n != ORPHAN => {
                        c.service = n;
                        c.dest = dest_map[i].get(c.dest as usize).copied().unwrap_or(ORPHAN);
                    }
                    _ => {
                        c.service = ORPHAN;
                        c.dest = ORPHAN;
                    }
                }
            });
        }
        self.loads = loads;
        self.traffic = traffic;
        self.persistent = persistent;
        self.timeouts = State::timeouts(&snap.timeouts);
        self.snap = snap;
        old
    }

    /// Zeroes the traffic counters of service `svc`, or of every service (`ipvsadm -Z`).
    pub fn zero_traffic(&mut self, svc: Option<usize>) {
        for (i, v) in self.traffic.iter_mut().enumerate() {
            if svc.is_none_or(|s| s == i) {
                v.fill(TrafficCounters::default());
            }
        }
    }

    /// Per service and real server: (service index, server index, traffic, counts,
    /// persistence templates), for publishing.
    pub fn dest_stats(
        &self,
    ) -> impl Iterator<Item = (usize, usize, &TrafficCounters, &DestLoad, u32)> + '_ {
        self.traffic.iter().enumerate().flat_map(move |(i, v)| {
            v.iter()
                .enumerate()
                .map(move |(j, t)| (i, j, t, &self.loads[i][j], self.persistent[i][j]))
        })
    }

    /// Runs one frame received on port `in_port` through the pipeline at dataplane time `now`
    /// (seconds), rewriting it in place. Drops are counted here.
    #[inline]
    pub fn process<P: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut P,
        in_port: u16,
        now: u32,
    ) -> Verdict {
        let pre = self
            .parse_flow(pkt.data(), in_port)
            .map(|l4| (l4, self.conns.hash(&l4.key())));
        self.process_parsed(pkt, in_port, now, pre)
    }

    /// As [`Worker::process`], but always through the general path (every frame parsed as if
    /// it were not TCP or UDP first). For the tests that check both paths agree.
    #[doc(hidden)]
    pub fn process_general<P: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut P,
        in_port: u16,
        now: u32,
    ) -> Verdict {
        self.process_parsed(pkt, in_port, now, None)
    }

    /// Processes a frame that [`Worker::parse_flow`] has parsed (`Some`: with its tuple's
    /// hash) or sent to the general path (`None`).
    #[inline(always)]
    fn process_parsed<P: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut P,
        in_port: u16,
        now: u32,
        pre: Option<(L4, FlowHash)>,
    ) -> Verdict {
        let v = match pre {
            Some((l4, h)) => self.flow(pkt, in_port, now, &l4, h),
            None => self.classify(pkt, in_port, now),
        };
        if let Verdict::Drop(r) = v {
            self.counters.drop(r);
        }
        v
    }

    /// Runs frames received on port `in_port` through the pipeline, as [`Worker::process`]
    /// one after the other would, writing each verdict to `verdicts` (at least as long as
    /// `pkts`), with the memory accesses of a [`BURST`] overlapped: every frame is parsed and
    /// its tuple hashed and its index bucket prefetched first, then its connection, then the
    /// frames are processed in order. Parsing reads nothing but the frame and the snapshot, and
    /// the prefetches are hints, so verdicts, counters and table changes are exactly those of
    /// per-frame processing.
    pub fn process_burst<P: PacketBuf>(
        &mut self,
        pkts: &mut [P],
        in_port: u16,
        now: u32,
        verdicts: &mut [Verdict],
    ) {
        assert!(verdicts.len() >= pkts.len(), "a verdict per packet");
        for (pkts, verdicts) in pkts.chunks_mut(BURST).zip(verdicts.chunks_mut(BURST)) {
            // The frames were written by another core (the NIC, a memif peer): start
            // bringing all their headers in before parsing the first.
            for pkt in pkts.iter() {
                if let Some(b) = pkt.data().first() {
                    mem::prefetch(b);
                }
            }
            let mut pre = [None; BURST];
            for (pre, pkt) in pre.iter_mut().zip(pkts.iter()) {
                if let Some(l4) = self.parse_flow(pkt.data(), in_port) {
                    let h = self.conns.hash(&l4.key());
                    self.conns.prefetch(h);
                    *pre = Some((l4, h));
                }
            }
            // FullNAT connections are also read from the cold part of the slab.
            let cold = !self.snap.lips.is_empty();
            for &(_, h) in pre.iter().take(pkts.len()).flatten() {
                self.conns.prefetch_candidate(h, cold);
            }
            for ((pkt, verdict), &pre) in pkts.iter_mut().zip(verdicts.iter_mut()).zip(&pre) {
                *verdict = self.process_parsed(pkt, in_port, now, pre);
            }
        }
    }

    /// Expires connections due by `now`, at most `budget` timer entries; returns how many
    /// expired. Called by the worker loop, off the per-packet path.
    pub fn expire(&mut self, now: u32, budget: usize) -> usize {
        let mut gone = 0;
        // The table hands each expired connection out; accounting needs the rest of self.
        let mut acc = Accounts {
            loads: &mut self.loads,
            persistent: &mut self.persistent,
            lports: &mut self.lports,
            snap: &self.snap,
            redirect: self.redirect.as_deref(),
            id: self.id,
        };
        self.conns.expire(now, budget, |c| {
            if Mode::from_u8(c.mode) == Mode::Template {
                // A template does not expire while it controls connections (IPVS restarts
                // its timer); it holds no server counts.
                if c.controls > 0 {
                    let timeout = acc
                        .snap
                        .services
                        .get(c.service as usize)
                        .and_then(|s| s.persistence)
                        .map_or(0, |p| p.0);
                    return Some(now.saturating_add(timeout.max(1)));
                }
                acc.release(c);
                return None;
            }
            acc.release(c);
            gone += 1;
            None
        });
        // lblc/lblcr caches age on the kernel's one-minute rhythm (a no-op otherwise).
        for s in &mut self.sched {
            s.gc(now);
        }
        gone
    }

    fn accounts(&mut self) -> Accounts<'_> {
        Accounts {
            loads: &mut self.loads,
            persistent: &mut self.persistent,
            lports: &mut self.lports,
            snap: &self.snap,
            redirect: self.redirect.as_deref(),
            id: self.id,
        }
    }

    /// Undoes a connection's accounting: its server's counts, its FullNAT local port.
    fn release(&mut self, c: &Conn) {
        self.accounts().release(c);
    }

    fn classify<P: PacketBuf + ?Sized>(&mut self, pkt: &mut P, in_port: u16, now: u32) -> Verdict {
        let Ok(eth) = EthernetFrame::new_checked(pkt.data()) else {
            return Verdict::Drop(DropReason::RuntFrame);
        };
        let port = &self.snap.ports[in_port as usize];
        let dst = eth.dst();
        if dst != port.mac && !dst.is_broadcast() {
            return Verdict::Drop(DropReason::OtherHost);
        }
        match eth.ethertype() {
            ether_type::ARP => self.arp(pkt.data_mut(), in_port),
            ether_type::IPV4 if !dst.is_broadcast() => self.ipv4(pkt, in_port, now),
            ether_type::IPV4 => Verdict::Drop(DropReason::OtherHost),
            _ => Verdict::Drop(DropReason::UnsupportedEtherType),
        }
    }

    fn arp(&mut self, frame: &mut [u8], in_port: u16) -> Verdict {
        let hl = EthernetFrame::<&[u8]>::HEADER_LEN;
        let (op, sender_ip, sender_mac, target_ip) = match ArpPacket::new_checked(&frame[hl..]) {
            Ok(a) => (a.operation(), a.sender_ip(), a.sender_mac(), a.target_ip()),
            Err(_) => return Verdict::Drop(DropReason::ArpIgnored),
        };
        let port = &self.snap.ports[in_port as usize];
        let mut learned = false;
        let mut lost = false;
        if self.snap.neigh.find(sender_ip, in_port).is_some() {
            let ev = NeighEvent {
                port: in_port,
                ip: sender_ip,
                mac: sender_mac,
            };
            if self.events.push(ev).is_ok() {
                self.counters.arp_learned += 1;
                learned = true;
            } else {
                self.counters.events_lost += 1;
                lost = true;
            }
        }
        if op == arp_op::REQUEST && port.arp_addresses.contains(&target_ip) {
            if make_reply_in_place(frame, port.mac).is_ok() {
                self.counters.arp_replies += 1;
                return Verdict::Tx(in_port);
            }
            return Verdict::Drop(DropReason::ArpIgnored);
        }
        match (learned, lost) {
            (true, _) => Verdict::Consumed,
            (false, true) => Verdict::Drop(DropReason::EventQueueFull),
            (false, false) => Verdict::Drop(DropReason::ArpIgnored),
        }
    }

    fn ipv4<P: PacketBuf + ?Sized>(&mut self, pkt: &mut P, in_port: u16, now: u32) -> Verdict {
        let frame = pkt.data();
        let ip = match Ipv4Packet::new_checked(&frame[ETH..]) {
            Ok(ip) => ip,
            Err(e) => return Verdict::Drop(DropReason::ipv4(e)),
        };
        if !ip.verify_checksum() {
            return Verdict::Drop(DropReason::Ipv4BadChecksum);
        }
        let (dst, proto) = (ip.dst(), ip.protocol());
        let fragment = ip.is_fragment();
        let l4_range = ETH + usize::from(ip.header_len())..ETH + usize::from(ip.total_len());
        match l4_of(&ip) {
            Ok(Some(l4)) => {
                let h = self.conns.hash(&l4.key());
                return self.flow(pkt, in_port, now, &l4, h);
            }
            Ok(None) => {}
            Err(r) => return Verdict::Drop(r),
        }
        if fragment && self.snap.is_vip(dst) {
            // Fragments are not reassembled: one for a VIP is counted as such.
            return Verdict::Drop(DropReason::Fragment);
        }
        if proto == ip_proto::ICMP
            && !fragment
            && let Some(v) = self.icmp_error(pkt, in_port, l4_range.clone(), now)
        {
            return v;
        }
        if self.snap.is_local(dst) {
            return self.local(pkt.data_mut(), in_port, l4_range, proto, fragment);
        }
        Verdict::Drop(DropReason::NoService)
    }

    /// A TCP or UDP packet (IPv4, not a fragment, checked) whose tuple hashes to `h`: its
    /// connection's, a new connection's, another worker's, or dropped.
    #[inline(always)]
    fn flow<P: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut P,
        in_port: u16,
        now: u32,
        l4: &L4,
        h: FlowHash,
    ) -> Verdict {
        let key = l4.key();
        if let Some((id, dir)) = self.conns.lookup_hashed(&key, h) {
            if self.conns.hot(id).expires > now {
                return self.existing(pkt, in_port, id, dir, l4, now);
            }
            // Past its deadline, its timer not yet run: it is gone for this packet too.
            let c = self.conns.remove_found(id, Some((dir, h)));
            self.release(&c);
            self.counters.expired += 1;
        }
        self.no_flow(pkt, in_port, now, l4, h)
    }

    /// A TCP or UDP packet of no tracked connection.
    fn no_flow<P: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut P,
        in_port: u16,
        now: u32,
        l4: &L4,
        h: FlowHash,
    ) -> Verdict {
        if self.workers > 1
            && let Some(owner) = self.owner_of(&l4.key())
            && owner != self.id
        {
            return Verdict::Handoff(owner);
        }
        if let Some(svc) = self.snap.classify(l4.proto, l4.dst, l4.dport) {
            return self.new_conn(pkt, in_port, svc, l4, h, now);
        }
        // Not a fragment, not ICMP: for the director itself, nothing to do with it.
        if self.snap.is_local(l4.dst) {
            return Verdict::Drop(DropReason::LocalUnhandled);
        }
        Verdict::Drop(DropReason::NoService)
    }

    /// What [`Worker::classify`] would find in `frame` before any table is consulted, when it
    /// is a TCP or UDP packet for this port: the same checks in the same order (Ethernet
    /// header, destination MAC, EtherType, IPv4 header and checksum, not a fragment, L4
    /// header), read-only. `None` means the general path (another protocol, or a drop).
    #[inline(always)]
    fn parse_flow(&self, frame: &[u8], in_port: u16) -> Option<L4> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let dst = eth.dst();
        if dst != self.snap.ports[in_port as usize].mac
            || dst.is_broadcast()
            || eth.ethertype() != ether_type::IPV4
        {
            return None;
        }
        let ip = Ipv4Packet::new_checked(&frame[ETH..]).ok()?;
        if !ip.verify_checksum() {
            return None;
        }
        l4_of(&ip).ok()?
    }

    /// An ICMP error (destination unreachable, source quench, time exceeded, parameter
    /// problem) about a packet of a tracked connection, as IPVS's `ip_vs_in_icmp` /
    /// `ip_vs_out_icmp` handle it: it goes where the connection's packets in its direction go,
    /// with the outer and the quoted addresses and ports translated for NAT and FullNAT, so the
    /// client sees VIP:vport and the real server sees its own tuple. `None` when it is not such
    /// an error (the caller goes on: echo, local, no service).
    fn icmp_error<P: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut P,
        in_port: u16,
        icmp_range: std::ops::Range<usize>,
        now: u32,
    ) -> Option<Verdict> {
        let frame = pkt.data();
        let icmp = IcmpV4Packet::new_checked(frame.get(icmp_range.clone())?).ok()?;
        if !matches!(icmp.msg_type(), 3 | 4 | 11 | 12) {
            return None;
        }
        let inner = Ipv4Packet::new_checked(icmp.payload()).ok();
        // The quoted packet may be cut after 8 bytes of its payload: take the header and the
        // ports from the raw bytes.
        let quoted = icmp.payload();
        let (iproto, isrc, idst, ihl) = match &inner {
            Some(ip) => (
                ip.protocol(),
                ip.src(),
                ip.dst(),
                usize::from(ip.header_len()),
            ),
            None => {
                if quoted.len() < 20 || quoted[0] >> 4 != 4 {
                    return Some(Verdict::Drop(DropReason::L4Malformed));
                }
                let ihl = usize::from(quoted[0] & 0x0f) * 4;
                let ip = Ipv4Packet::new_unchecked(quoted);
                (ip.protocol(), ip.src(), ip.dst(), ihl)
            }
        };
        if !matches!(iproto, ip_proto::TCP | ip_proto::UDP) || quoted.len() < ihl + 8 {
            return None;
        }
        let sport = u16::from_be_bytes([quoted[ihl], quoted[ihl + 1]]);
        let dport = u16::from_be_bytes([quoted[ihl + 2], quoted[ihl + 3]]);
        // The error travels against the quoted packet: its tuple is the quoted one reversed.
        let key = FlowKey {
            proto: iproto,
            saddr: idst.to_bits(),
            daddr: isrc.to_bits(),
            sport: dport,
            dport: sport,
        };
        let (id, dir) = self.conns.lookup(&key)?;
        let c = self.conns.get(id);
        if c.expires <= now {
            return None;
        }
        let mode = Mode::from_u8(c.mode);
        let dest = self.dest_of(&c.hot())?;
        let vaddr = Ipv4Addr::from_bits(c.vaddr);
        let caddr = Ipv4Addr::from_bits(c.caddr);
        let laddr = Ipv4Addr::from_bits(c.laddr);
        let at = icmp_range.start;
        match (mode, dir) {
            // To the real server: DR and TUN forward it as it is; NAT and FullNAT make it
            // about the packet the server sent (its own address and port).
            (Mode::Dr | Mode::Tun, Dir::In) => {
                let l4 = L4 {
                    proto: ip_proto::ICMP,
                    src: Ipv4Addr::from_bits(key.saddr),
                    dst: vaddr,
                    sport: 0,
                    dport: 0,
                    flags: 0,
                    total_len: (icmp_range.end - ETH) as u16,
                    ident: 0,
                    dont_frag: false,
                    tos: 0,
                };
                Some(self.forward(pkt, in_port, &c.hot(), c.laddr, &l4))
            }
            (Mode::Nat, Dir::In) => {
                let f = pkt.data_mut();
                rewrite_icmp(
                    f,
                    at,
                    ihl,
                    Some(dest.addr),
                    None,
                    Some((dest.addr, c.rport)),
                    None,
                );
                Some(self.icmp_out(pkt, dest.out_port, dest.neigh))
            }
            (Mode::Fnat, Dir::In) => {
                let f = pkt.data_mut();
                rewrite_icmp(
                    f,
                    at,
                    ihl,
                    Some(dest.addr),
                    Some(laddr),
                    Some((dest.addr, c.rport)),
                    Some((laddr, c.lport)),
                );
                Some(self.icmp_out(pkt, dest.out_port, dest.neigh))
            }
            // To the client: about the packet it sent to VIP:vport.
            (Mode::Nat, Dir::Out) => {
                let f = pkt.data_mut();
                rewrite_icmp(f, at, ihl, None, Some(vaddr), None, Some((vaddr, c.vport)));
                Some(self.icmp_to_client(pkt, caddr))
            }
            (Mode::Fnat, Dir::Out) => {
                let f = pkt.data_mut();
                rewrite_icmp(
                    f,
                    at,
                    ihl,
                    Some(caddr),
                    Some(vaddr),
                    Some((caddr, c.cport)),
                    Some((vaddr, c.vport)),
                );
                Some(self.icmp_to_client(pkt, caddr))
            }
            _ => None,
        }
    }

    /// Sends a translated ICMP error out of `port` to neighbour slot `neigh`.
    fn icmp_out<P: PacketBuf + ?Sized>(&mut self, pkt: &mut P, port: u16, neigh: u32) -> Verdict {
        let Some(mac) = self.snap.neigh.mac(neigh as usize) else {
            return Verdict::Drop(DropReason::NeighUnresolved);
        };
        fwd::set_l2(pkt.data_mut(), self.snap.ports[port as usize].mac, mac);
        self.counters.icmp_translated += 1;
        Verdict::Tx(port)
    }

    /// Sends a translated ICMP error to the client `caddr`.
    fn icmp_to_client<P: PacketBuf + ?Sized>(&mut self, pkt: &mut P, caddr: Ipv4Addr) -> Verdict {
        let (out, mac) = match self.toward_client(caddr) {
            Ok(hop) => hop,
            Err(r) => return Verdict::Drop(r),
        };
        fwd::set_l2(pkt.data_mut(), self.snap.ports[out as usize].mac, mac);
        self.counters.icmp_translated += 1;
        Verdict::Tx(out)
    }

    /// The egress port and next-hop MAC toward client `caddr`: its gateway's, or (on-link)
    /// the MAC its requests came from.
    #[inline]
    fn toward_client(&self, caddr: Ipv4Addr) -> Result<(u16, MacAddr), DropReason> {
        let (out, mac) = match self.snap.next_hop(caddr) {
            Some(NextHop::Gateway { port, neigh }) => (port, self.snap.neigh.mac(neigh as usize)),
            Some(NextHop::OnLink { port }) => (port, self.peers.get(caddr.to_bits())),
            None => return Err(DropReason::NoRoute),
        };
        mac.map(|m| (out, m)).ok_or(DropReason::NeighUnresolved)
    }

    /// Traffic for the director's own addresses: ICMP echo is answered in place.
    fn local(
        &mut self,
        frame: &mut [u8],
        in_port: u16,
        l4: std::ops::Range<usize>,
        proto: u8,
        fragment: bool,
    ) -> Verdict {
        if proto != ip_proto::ICMP || fragment {
            return Verdict::Drop(DropReason::LocalUnhandled);
        }
        match IcmpV4Packet::new_checked(&frame[l4.clone()]) {
            Ok(icmp) if icmp.msg_type() == icmp_type::ECHO_REQUEST && icmp.verify_checksum() => {}
            Ok(icmp) if icmp.msg_type() == icmp_type::ECHO_REQUEST => {
                return Verdict::Drop(DropReason::L4Malformed);
            }
            Ok(_) => return Verdict::Drop(DropReason::LocalUnhandled),
            Err(_) => return Verdict::Drop(DropReason::L4Malformed),
        }
        // ICMP: type 8 → 0, checksum adjusted incrementally (RFC 1624).
        {
            let mut icmp = IcmpV4Packet::new_unchecked(&mut frame[l4]);
            let old = u16::from(icmp.msg_type()) << 8 | u16::from(icmp.code());
            icmp.set_msg_type(icmp_type::ECHO_REPLY);
            let new = u16::from(icmp_type::ECHO_REPLY) << 8 | u16::from(icmp.code());
            let c = checksum::update16(icmp.checksum(), old, new);
            icmp.set_checksum(c);
        }
        let hl = EthernetFrame::<&[u8]>::HEADER_LEN;
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut frame[hl..]);
            let (s, d) = (ip.src(), ip.dst());
            ip.set_src(d);
            ip.set_dst(s);
            ip.set_ttl(64);
            ip.fill_checksum();
        }
        let mut eth = EthernetFrame::new_unchecked(&mut *frame);
        let peer = eth.src();
        eth.set_dst(peer);
        eth.set_src(self.snap.ports[in_port as usize].mac);
        self.counters.icmp_echo_replies += 1;
        Verdict::Tx(in_port)
    }

    /// A packet of a tracked connection, in either direction.
    #[inline(always)]
    fn existing<P: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut P,
        in_port: u16,
        id: u32,
        dir: Dir,
        l4: &L4,
        now: u32,
    ) -> Verdict {
        let c = self.conns.hot_mut(id);
        let mode = c.mode;
        let state = if l4.proto == ip_proto::TCP {
            let d = match (mode.sees_replies(), dir) {
                (false, _) => Direction::InputOnly,
                (true, Dir::In) => Direction::Input,
                (true, Dir::Out) => Direction::Output,
            };
            tcp::transition(c.state, d, l4.flags)
        } else {
            State::Udp
        };
        c.state = state;
        let was_active = c.active;
        let active = state.is_active();
        c.active = active;
        let conn = *c;
        self.conns
            .set_expires(id, now.saturating_add(self.timeouts[state as usize]));
        let svc = conn.service as usize;
        let d = conn.dest as usize;
        // An orphan (its service or server removed since) has no counts or counters left.
        if was_active != active {
            self.activity_changed(svc, d, active);
        }
        let len = u64::from(l4.total_len);
        let t = self.traffic.get_mut(svc).and_then(|v| v.get_mut(d));
        match dir {
            Dir::In => {
                if let Some(t) = t {
                    t.in_packets += 1;
                    t.in_bytes += len;
                }
                let laddr = if mode == Mode::Fnat {
                    self.conns.laddr(id)
                } else {
                    0
                };
                self.forward(pkt, in_port, &conn, laddr, l4)
            }
            Dir::Out => {
                if let Some(t) = t {
                    t.out_packets += 1;
                    t.out_bytes += len;
                }
                self.reply(pkt, &conn)
            }
        }
    }

    /// A connection of server `d` of service `svc` became active or inactive.
    fn activity_changed(&mut self, svc: usize, d: usize, active: bool) {
        if let Some(l) = self.loads.get_mut(svc).and_then(|v| v.get_mut(d)) {
            if active {
                l.active += 1;
                l.inactive = l.inactive.saturating_sub(1);
            } else {
                l.active = l.active.saturating_sub(1);
                l.inactive += 1;
            }
            let dest = &self.snap.services[svc].dests[d];
            sched::update_overload(l, dest.upper, dest.lower);
        }
    }

    /// The first packet of a connection to service `svc`: schedule, track, forward.
    fn new_conn<P: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut P,
        in_port: u16,
        svc: usize,
        l4: &L4,
        h: FlowHash,
        now: u32,
    ) -> Verdict {
        // IPVS (tcp_conn_schedule) schedules a TCP connection only on a SYN without RST;
        // SYN+ACK is allowed (active FTP).
        if l4.proto == ip_proto::TCP
            && l4.flags & (tcp::flags::SYN | tcp::flags::RST) != tcp::flags::SYN
        {
            return Verdict::Drop(DropReason::NoFlowNotSyn);
        }
        let (d, template) = match self.snap.services[svc].persistence {
            None => match self.schedule(svc, l4, now) {
                Some(d) => (d, NO_TEMPLATE),
                None => return Verdict::Drop(DropReason::NoDest),
            },
            Some((timeout, mask)) => match self.persist(svc, l4, now, timeout, mask) {
                Ok(dt) => dt,
                Err(r) => return Verdict::Drop(r),
            },
        };
        let service = &self.snap.services[svc];
        let dest = service.dests[d];
        let mode = match dest.forward {
            Forward::Dr => Mode::Dr,
            Forward::Tun => Mode::Tun,
            Forward::Nat => Mode::Nat,
            Forward::Fnat => Mode::Fnat,
        };
        let state = if l4.proto == ip_proto::TCP {
            let d = if mode.sees_replies() {
                Direction::Input
            } else {
                Direction::InputOnly
            };
            tcp::transition(State::None, d, l4.flags)
        } else {
            State::Udp
        };
        let mut conn = ConnHot {
            caddr: l4.src.to_bits(),
            vaddr: l4.dst.to_bits(),
            raddr: dest.addr.to_bits(),
            cport: l4.sport,
            vport: l4.dport,
            rport: if dest.port == 0 { l4.dport } else { dest.port },
            lport: 0,
            expires: now.saturating_add(self.timeouts[state as usize]),
            service: svc as u16,
            dest: d as u16,
            proto: l4.proto,
            state,
            mode,
            active: state.is_active(),
        };
        let mut laddr = 0;
        let mut lip = None;
        if mode == Mode::Fnat {
            match self.take_local_port(svc) {
                Some((i, addr, port)) => {
                    laddr = addr.to_bits();
                    conn.lport = port;
                    lip = Some(i);
                }
                None => return Verdict::Drop(DropReason::NoLocalPort),
            }
        }
        let mut created = self.conns.create_hot(conn, laddr, template, h);
        if matches!(created, Err(CreateError::NoSlot | CreateError::IndexFull)) {
            // Full: reclaim what is due now (bounded), then try once more.
            let n = self.expire(now, FULL_EXPIRE_BUDGET);
            self.counters.expired += n as u64;
            created = self.conns.create_hot(conn, laddr, template, h);
        }
        if let Err(e) = created {
            if let Some(i) = lip {
                self.lports[i].give_back(conn.lport);
            }
            return Verdict::Drop(match e {
                CreateError::NoSlot | CreateError::IndexFull => DropReason::FlowTableFull,
                CreateError::Collision => DropReason::NatCollision,
            });
        }
        if mode == Mode::Nat
            && let (Some(r), Some(out)) = (&self.redirect, conn.out_key(laddr))
            && !r.insert(&out, self.id)
        {
            self.counters.redirects_lost += 1;
        }
        let l = &mut self.loads[svc][d];
        if conn.active {
            l.active += 1;
        } else {
            l.inactive += 1;
        }
        sched::update_overload(l, dest.upper, dest.lower);
        self.counters.connections += 1;
        let t = &mut self.traffic[svc][d];
        t.conns += 1;
        t.in_packets += 1;
        t.in_bytes += u64::from(l4.total_len);
        self.forward(pkt, in_port, &conn, laddr, l4)
    }

    /// The scheduler's pick for a new connection of service `svc`.
    #[inline]
    fn schedule(&mut self, svc: usize, l4: &L4, now: u32) -> Option<usize> {
        let input = SchedInput {
            saddr: l4.src,
            daddr: l4.dst,
            sport: l4.sport,
            dport: l4.dport,
            now,
        };
        self.sched[svc].pick(&self.loads[svc], &input)
    }

    /// Persistence (IPVS's `ip_vs_sched_persist`): the template of (client network, service)
    /// names the real server while it lives; otherwise the scheduler picks and a template is
    /// made. Port-0 services share one template over every port of the VIP, firewall-mark
    /// services one over everything the mark covers. Returns the server and the template.
    fn persist(
        &mut self,
        svc: usize,
        l4: &L4,
        now: u32,
        timeout: u32,
        mask: u32,
    ) -> Result<(usize, u32), DropReason> {
        let service = &self.snap.services[svc];
        let key = match service.fwmark {
            Some(mark) => FlowKey {
                proto: TEMPLATE_PROTO,
                saddr: l4.src.to_bits() & mask,
                daddr: mark,
                sport: 0,
                dport: 0,
            },
            None => FlowKey {
                proto: TEMPLATE_PROTO | service.proto,
                saddr: l4.src.to_bits() & mask,
                daddr: service.vip.to_bits(),
                sport: 0,
                dport: service.port,
            },
        };
        let ndests = service.dests.len();
        if let Some((tid, _)) = self.conns.lookup(&key) {
            let controls = self.conns.controls(tid);
            let t = self.conns.hot_mut(tid);
            // Valid while it lives or controls connections, and while its server exists.
            if (t.expires > now || controls > 0)
                && t.service as usize == svc
                && (t.dest as usize) < ndests
            {
                t.expires = now.saturating_add(timeout).max(t.expires);
                return Ok((t.dest as usize, tid));
            }
            let t = self.conns.remove(tid);
            self.release(&t);
        }
        let d = self.schedule(svc, l4, now).ok_or(DropReason::NoDest)?;
        let dest = &self.snap.services[svc].dests[d];
        let template = Conn {
            caddr: key.saddr,
            vaddr: key.daddr,
            raddr: dest.addr.to_bits(),
            vport: key.dport,
            rport: dest.port,
            expires: now.saturating_add(timeout),
            service: svc as u16,
            dest: d as u16,
            proto: key.proto,
            mode: Mode::Template as u8,
            ..Conn::default()
        };
        let mut created = self.conns.create(template);
        if created.is_err() {
            let n = self.expire(now, FULL_EXPIRE_BUDGET);
            self.counters.expired += n as u64;
            created = self.conns.create(template);
        }
        let tid = created.map_err(|_| DropReason::FlowTableFull)?;
        self.counters.templates += 1;
        self.persistent[svc][d] += 1;
        Ok((d, tid))
    }

    /// A free local address and port of service `svc`, round robin over its addresses.
    fn take_local_port(&mut self, svc: usize) -> Option<(usize, Ipv4Addr, u16)> {
        let lips = &self.snap.services[svc].lips;
        let n = lips.len();
        for k in 0..n {
            let at = (self.next_lip[svc] + k) % n;
            let i = lips[at] as usize;
            if let Some(port) = self.lports[i].take() {
                self.next_lip[svc] = (at + 1) % n;
                return Some((i, self.snap.lips[i], port));
            }
        }
        None
    }

    /// Client → real server, by the connection's mode (`laddr`: its FullNAT local address).
    #[inline(always)]
    fn forward<P: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut P,
        in_port: u16,
        c: &ConnHot,
        laddr: u32,
        l4: &L4,
    ) -> Verdict {
        let Some(dest) = self.dest_of(c) else {
            return Verdict::Drop(DropReason::NoDest);
        };
        let Some(mac) = self.snap.neigh.mac(dest.neigh as usize) else {
            return Verdict::Drop(DropReason::NeighUnresolved);
        };
        let out = dest.out_port;
        let port_mac = self.snap.ports[out as usize].mac;
        let mode = c.mode;
        if mode.sees_replies() {
            // Replies to an on-link client go back to the MAC its requests come from.
            let src = EthernetFrame::new_unchecked(pkt.data()).src();
            self.peers.learn(c.caddr, src);
        }
        match mode {
            // Templates carry no packets: their keys use a protocol byte no packet has.
            Mode::Template => return Verdict::Drop(DropReason::NoService),
            Mode::Dr => fwd::dr::rewrite(pkt.data_mut(), port_mac, mac),
            Mode::Nat => {
                let f = pkt.data_mut();
                nat::rewrite_end(&mut f[ETH..], nat::End::Dst, dest.addr, c.rport);
                fwd::set_l2(f, port_mac, mac);
            }
            Mode::Fnat => {
                let f = pkt.data_mut();
                fwd::fnat::request(
                    &mut f[ETH..],
                    Ipv4Addr::from_bits(laddr),
                    c.lport,
                    dest.addr,
                    c.rport,
                );
                fwd::set_l2(f, port_mac, mac);
            }
            Mode::Tun => return self.tunnel(pkt, in_port, c, dest, (port_mac, mac), l4),
        }
        self.counters.forwarded += 1;
        Verdict::Tx(out)
    }

    /// Client → real server in an IP tunnel (or ICMP fragmentation-needed back to the client
    /// when the encapsulated packet would not fit the egress MTU and may not be fragmented).
    fn tunnel<P: PacketBuf + ?Sized>(
        &mut self,
        pkt: &mut P,
        in_port: u16,
        c: &ConnHot,
        dest: Hop,
        (port_mac, mac): (MacAddr, MacAddr),
        l4: &L4,
    ) -> Verdict {
        let out = dest.out_port;
        let (kind, gue_port) = self
            .snap
            .services
            .get(c.service as usize)
            .map_or((rvs_config::TunnelKind::Ipip, 0), |s| s.tunnel);
        let overhead = tun::overhead(kind);
        let mtu = usize::from(self.snap.ports[out as usize].mtu);
        let inner = usize::from(l4.total_len);
        if inner + overhead > mtu {
            if !l4.dont_frag {
                return Verdict::Drop(DropReason::TooBig);
            }
            let in_mac = self.snap.ports[in_port as usize].mac;
            let n =
                tun::frag_needed_in_place(pkt.data_mut(), l4.dst, (mtu - overhead) as u16, in_mac);
            pkt.set_len(n);
            self.counters.icmp_frag_needed += 1;
            return Verdict::Tx(in_port);
        }
        // Drop Ethernet padding, make room, move the Ethernet header to the front.
        if !pkt.set_len(ETH + inner) || !pkt.prepend(overhead) {
            return Verdict::Drop(DropReason::NoHeadroom);
        }
        let src = self.snap.ports[out as usize]
            .source_for(dest.addr)
            .or_else(|| {
                self.snap.ports[out as usize]
                    .addresses
                    .first()
                    .map(|a| a.addr)
            })
            .unwrap_or(l4.dst);
        let flow = (c.caddr ^ (c.caddr >> 16)) as u16 ^ c.cport;
        let f = pkt.data_mut();
        f.copy_within(overhead..overhead + ETH, 0);
        tun::write_outer(
            &mut f[ETH..],
            kind,
            gue_port,
            src,
            dest.addr,
            inner as u16,
            l4.ident,
            l4.dont_frag,
            l4.tos,
            flow,
        );
        fwd::set_l2(f, port_mac, mac);
        self.counters.forwarded += 1;
        Verdict::Tx(out)
    }

    /// Real server → client (NAT and FullNAT replies).
    fn reply<P: PacketBuf + ?Sized>(&mut self, pkt: &mut P, c: &ConnHot) -> Verdict {
        let vaddr = Ipv4Addr::from_bits(c.vaddr);
        let caddr = Ipv4Addr::from_bits(c.caddr);
        let (out, mac) = match self.toward_client(caddr) {
            Ok(hop) => hop,
            Err(r) => return Verdict::Drop(r),
        };
        let port_mac = self.snap.ports[out as usize].mac;
        let f = pkt.data_mut();
        match c.mode {
            Mode::Fnat => fwd::fnat::reply(&mut f[ETH..], vaddr, c.vport, caddr, c.cport),
            _ => nat::rewrite_end(&mut f[ETH..], nat::End::Src, vaddr, c.vport),
        }
        fwd::set_l2(f, port_mac, mac);
        self.counters.replies += 1;
        Verdict::Tx(out)
    }
}
