//! Katran-style fixtures for the forwarding modes that rewrite packets (NAT, FullNAT, tunnel),
//! in both directions, with the connection state and accounting they drive: IPVS's TCP state
//! table through the director, deadlines and expiry, the schedulers and connection thresholds
//! fed by real connections, FullNAT local-port slices and their exhaustion, NAT reply-tuple
//! collisions, tunnel MTU handling, malformed input per mode, and a property test that the
//! per-server counts always match the connection table.
//!
//! Pure pipeline, no DPDK: frames are byte vectors (or [`Mbuf`], a buffer with fixed headroom),
//! `now` is passed in. Expected frames are written with the frame builder below from the
//! fields each mode must produce, so every byte is compared; checksums are additionally
//! verified by [`assert_checksums`], which is written here, independently of the crate.
//!
//! The world: port 0 `ext` (02:00:00:00:00:0a, 10.201.0.10/24) towards clients, with the
//! default route via 10.201.0.1 (02:00:00:00:00:01); port 1 `int` (02:00:00:00:00:0b,
//! 10.202.0.1/24) towards the real servers 10.202.0.11/.12 (NAT, FullNAT; MACs ..:11, ..:12)
//! and 10.202.0.21/.22 (tunnel; ..:21, ..:22). Clients: 198.51.100.7 (off-link, behind the
//! gateway) and 10.201.0.50 (on-link, 02:00:00:00:00:50).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use proptest::prelude::*;
use rvs_config::Profile;
use rvs_dataplane::flow::{Conn, Dir};
use rvs_dataplane::pipeline::{PacketBuf, Verdict, Worker};
use rvs_dataplane::snapshot::Snapshot;
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::wire::{
    EthernetFrame, IcmpV4Packet, Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket, UdpPacket, ether_type,
    ip_proto, tcp_flag,
};

const PROFILE: &str = r#"
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - { name: ext, device: "net_null0", addresses: ["10.201.0.10/24"] }
  - { name: int, device: "net_null1", addresses: ["10.202.0.1/24"] }
routes:
  - { prefix: "0.0.0.0/0", via: 10.201.0.1 }
services:
  - vip: 10.201.0.100
    port: 80
    protocol: tcp
    scheduler: rr
    servers:
      - { address: 10.202.0.11, port: 8080, forward: nat }
      - { address: 10.202.0.12, port: 8080, forward: nat }
  - vip: 10.201.0.101
    port: 80
    protocol: tcp
    scheduler: rr
    local_addresses: [10.202.0.5, 10.202.0.6]
    servers:
      - { address: 10.202.0.11, port: 8080, forward: fnat }
      - { address: 10.202.0.12, port: 8080, forward: fnat }
  - vip: 10.201.0.102
    port: 80
    protocol: tcp
    scheduler: rr
    servers:
      - { address: 10.202.0.21, forward: tun }
      - { address: 10.202.0.22, forward: tun }
  - vip: 10.201.0.100
    port: 53
    protocol: udp
    scheduler: rr
    servers:
      - { address: 10.202.0.11, port: 53, forward: nat }
  # A second NAT VIP onto the same real-server port as the first: reply-tuple collisions.
  - vip: 10.201.0.103
    port: 80
    protocol: tcp
    scheduler: rr
    servers:
      - { address: 10.202.0.11, port: 8080, forward: nat }
  - vip: 10.201.0.104
    port: 80
    protocol: tcp
    scheduler: wlc
    servers:
      - { address: 10.202.0.11, port: 8081, forward: nat, weight: 1 }
      - { address: 10.202.0.12, port: 8081, forward: nat, weight: 4 }
  - vip: 10.201.0.105
    port: 80
    protocol: tcp
    scheduler: lc
    servers:
      - { address: 10.202.0.11, port: 8082, forward: nat, weight: 1 }
      - { address: 10.202.0.12, port: 8082, forward: nat, weight: 4 }
  - vip: 10.201.0.106
    port: 80
    protocol: tcp
    scheduler: sed
    servers:
      - { address: 10.202.0.11, port: 8083, forward: nat, weight: 1 }
      - { address: 10.202.0.12, port: 8083, forward: nat, weight: 3 }
  - vip: 10.201.0.107
    port: 80
    protocol: tcp
    scheduler: nq
    servers:
      - { address: 10.202.0.11, port: 8084, forward: nat, weight: 1 }
      - { address: 10.202.0.12, port: 8084, forward: nat, weight: 3 }
  - vip: 10.201.0.108
    port: 80
    protocol: tcp
    scheduler: rr
    servers:
      - { address: 10.202.0.11, port: 8085, forward: nat, upper: 2 }
      - { address: 10.202.0.12, port: 8085, forward: nat }
  - vip: 10.201.0.109
    port: 80
    protocol: tcp
    scheduler: rr
    servers:
      - { address: 10.202.0.11, port: 8086, forward: nat, upper: 3, lower: 2 }
      - { address: 10.202.0.12, port: 8086, forward: nat }
"#;

const EXT: u16 = 0;
const INT: u16 = 1;
const EXT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const INT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
const INT_DIP: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 1);
const GW: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
const GW_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);

/// Off-link client, behind the gateway.
const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// On-link client on `ext`.
const ON_LINK: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 50);
const ON_LINK_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x50]);

const RS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 202, 0, 11), Ipv4Addr::new(10, 202, 0, 12)];
const RS_MAC: [MacAddr; 2] = [
    MacAddr([0x02, 0, 0, 0, 0, 0x11]),
    MacAddr([0x02, 0, 0, 0, 0, 0x12]),
];
const TRS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 202, 0, 21), Ipv4Addr::new(10, 202, 0, 22)];
const TRS_MAC: [MacAddr; 2] = [
    MacAddr([0x02, 0, 0, 0, 0, 0x21]),
    MacAddr([0x02, 0, 0, 0, 0, 0x22]),
];
const LIP: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 202, 0, 5), Ipv4Addr::new(10, 202, 0, 6)];

const VIP_NAT: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 100);
const VIP_FNAT: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 101);
const VIP_TUN: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 102);
const VIP_NAT2: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 103);
const VIP_WLC: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 104);
const VIP_LC: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 105);
const VIP_SED: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 106);
const VIP_NQ: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 107);
const VIP_UPPER: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 108);
const VIP_LOWER: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 109);

/// Service indexes (profile order).
const S_NAT: usize = 0;
const S_FNAT: usize = 1;
const S_TUN: usize = 2;
const S_UDP: usize = 3;
const S_NAT2: usize = 4;
const S_WLC: usize = 5;
const S_LC: usize = 6;
const S_SED: usize = 7;
const S_NQ: usize = 8;
const S_UPPER: usize = 9;
const S_LOWER: usize = 10;

const SYN: u8 = tcp_flag::SYN;
const ACK: u8 = tcp_flag::ACK;
const FIN: u8 = tcp_flag::FIN;
const RST: u8 = tcp_flag::RST;
const PSH: u8 = tcp_flag::PSH;

/// MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
const SYN_OPTS: [u8; 20] = [
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x9a, 0x3b, 0x1c, 0x2d, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x03, 0x03, 0x07,
];

// Connection states as IPVS numbers them.
const ES: u8 = 1;
const SR: u8 = 3;
const FW: u8 = 4;
const TW: u8 = 5;
const CL: u8 = 6;
const CW: u8 = 7;
const UDP_STATE: u8 = 11;

// ---------------------------------------------------------------------------------------------
// The world.

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

fn snapshot_of(text: &str, gateway: bool) -> Arc<Snapshot> {
    let profile = Profile::parse(text, "modes.yaml").unwrap_or_else(|e| panic!("{e}"));
    let snap = Snapshot::build(&profile, &[EXT_MAC, INT_MAC]).expect("snapshot");
    for (ip, mac) in RS.iter().zip(RS_MAC).chain(TRS.iter().zip(TRS_MAC)) {
        let slot = snap.neigh.find(*ip, INT).expect("a slot per real server");
        snap.neigh.set(slot, Some(mac));
    }
    if gateway {
        let slot = snap.neigh.find(GW, EXT).expect("a slot for the gateway");
        snap.neigh.set(slot, Some(GW_MAC));
    }
    Arc::new(snap)
}

/// The snapshot with every real server resolved, and the gateway if `gateway`.
fn snapshot(gateway: bool) -> Arc<Snapshot> {
    snapshot_of(PROFILE, gateway)
}

fn worker_of(snap: Arc<Snapshot>, id: u16, workers: u16, conns: usize) -> Worker {
    let events = Arc::new(ArrayQueue::new(64));
    Worker::with_workers(id, workers, snap, conns, [0x5eed, 0xf00d], events)
}

/// A single worker over the default world, gateway resolved.
fn worker() -> Worker {
    worker_of(snapshot(true), 0, 1, 4096)
}

fn send(w: &mut Worker, frame: &[u8], port: u16, now: u32) -> (Verdict, Vec<u8>) {
    let mut buf = frame.to_vec();
    let v = w.process(&mut buf, port, now);
    (v, buf)
}

/// Sends `frame`, which must be dropped for `reason` and left untouched, and counted once.
fn assert_dropped(w: &mut Worker, frame: &[u8], port: u16, now: u32, reason: DropReason) {
    let before = w.counters;
    let (v, out) = send(w, frame, port, now);
    assert_eq!(v, Verdict::Drop(reason));
    assert_eq!(out, frame, "{reason}: a dropped frame is untouched");
    assert_eq!(
        w.counters.drops[reason as usize],
        before.drops[reason as usize] + 1
    );
    assert_eq!(w.counters.total_drops(), before.total_drops() + 1);
}

fn rs_mac(ip: Ipv4Addr) -> MacAddr {
    RS.iter()
        .zip(RS_MAC)
        .chain(TRS.iter().zip(TRS_MAC))
        .find(|(a, _)| **a == ip)
        .map(|(_, m)| m)
        .unwrap_or_else(|| panic!("{ip} is not a real server"))
}

fn rs_index(ip: Ipv4Addr) -> usize {
    RS.iter()
        .chain(&TRS)
        .position(|a| *a == ip)
        .unwrap_or_else(|| panic!("{ip} is not a real server"))
        % 2
}

// ---------------------------------------------------------------------------------------------
// Frame builder.

/// Every field of an Ethernet + IPv4 + TCP/UDP frame. [`Pkt::build`] writes it with all
/// checksums computed from scratch, so an expected frame is the input with the fields a mode
/// changes changed.
#[derive(Debug, Clone)]
struct Pkt {
    eth_src: MacAddr,
    eth_dst: MacAddr,
    proto: u8,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    tos: u8,
    ident: u16,
    df: bool,
    ttl: u8,
    flags: u8,
    seq: u32,
    ack: u32,
    window: u16,
    opts: Vec<u8>,
    payload: Vec<u8>,
    /// UDP: fill the checksum (else 0, "none").
    udp_sum: bool,
    /// Ethernet padding up to this frame length.
    pad_to: usize,
}

impl Pkt {
    /// A client's TCP segment as the gateway delivers it: ident 0x2b1d, DF, TTL 61.
    fn tcp(l2: (MacAddr, MacAddr), src: SocketAddrV4, dst: SocketAddrV4, flags: u8) -> Pkt {
        Pkt {
            eth_src: l2.0,
            eth_dst: l2.1,
            proto: ip_proto::TCP,
            src,
            dst,
            tos: 0,
            ident: 0x2b1d,
            df: true,
            ttl: 61,
            flags,
            seq: 0x3ba2_f1c5,
            ack: if flags & ACK != 0 { 0x6b8b_4568 } else { 0 },
            window: 64240,
            opts: vec![],
            payload: vec![],
            udp_sum: true,
            pad_to: 0,
        }
    }

    fn udp(l2: (MacAddr, MacAddr), src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Pkt {
        Pkt {
            proto: ip_proto::UDP,
            df: false,
            payload: payload.to_vec(),
            ..Pkt::tcp(l2, src, dst, 0)
        }
    }

    /// A real server's segment: ident 0x1a2b, no DF, TTL 64, its own sequence numbers.
    fn server(rs: SocketAddrV4, to: SocketAddrV4, flags: u8) -> Pkt {
        Pkt {
            ident: 0x1a2b,
            df: false,
            ttl: 64,
            seq: 0x6b8b_4567,
            ack: if flags & ACK != 0 { 0x3ba2_f1c6 } else { 0 },
            window: 65160,
            ..Pkt::tcp((rs_mac(*rs.ip()), INT_MAC), rs, to, flags)
        }
    }

    fn l2(mut self, src: MacAddr, dst: MacAddr) -> Pkt {
        self.eth_src = src;
        self.eth_dst = dst;
        self
    }
    fn from(mut self, src: SocketAddrV4) -> Pkt {
        self.src = src;
        self
    }
    fn to(mut self, dst: SocketAddrV4) -> Pkt {
        self.dst = dst;
        self
    }
    fn opts(mut self, opts: &[u8]) -> Pkt {
        self.opts = opts.to_vec();
        self
    }
    fn payload(mut self, payload: &[u8]) -> Pkt {
        self.payload = payload.to_vec();
        self
    }
    fn df(mut self, df: bool) -> Pkt {
        self.df = df;
        self
    }
    fn tos(mut self, tos: u8) -> Pkt {
        self.tos = tos;
        self
    }
    fn no_udp_checksum(mut self) -> Pkt {
        self.udp_sum = false;
        self
    }
    fn padded(mut self, len: usize) -> Pkt {
        self.pad_to = len;
        self
    }

    fn build(&self) -> Vec<u8> {
        let (s, d) = (*self.src.ip(), *self.dst.ip());
        let l4 = if self.proto == ip_proto::TCP {
            let hl = 20 + self.opts.len();
            let mut seg = vec![0u8; hl + self.payload.len()];
            let mut t = TcpPacket::new_unchecked(&mut seg[..]);
            t.set_src_port(self.src.port());
            t.set_dst_port(self.dst.port());
            t.set_seq(self.seq);
            t.set_ack(self.ack);
            t.set_header_len(hl as u8);
            t.set_flags(self.flags);
            t.set_window(self.window);
            t.options_mut().copy_from_slice(&self.opts);
            t.payload_mut().copy_from_slice(&self.payload);
            t.fill_checksum(s, d);
            seg
        } else {
            let len = 8 + self.payload.len();
            let mut dg = vec![0u8; len];
            let mut u = UdpPacket::new_unchecked(&mut dg[..]);
            u.set_src_port(self.src.port());
            u.set_dst_port(self.dst.port());
            u.set_len(len as u16);
            u.payload_mut().copy_from_slice(&self.payload);
            if self.udp_sum {
                u.fill_checksum(s, d);
            }
            dg
        };
        let mut f = vec![0u8; 34 + l4.len()];
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst(self.eth_dst);
        eth.set_src(self.eth_src);
        eth.set_ethertype(ether_type::IPV4);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
        Ipv4Repr {
            src: s,
            dst: d,
            protocol: self.proto,
            ttl: self.ttl,
            payload_len: l4.len() as u16,
            ident: self.ident,
            dont_frag: self.df,
        }
        .emit(&mut ip)
        .expect("IPv4 header");
        if self.tos != 0 {
            ip.set_dscp_ecn(self.tos);
            ip.fill_checksum();
        }
        f[34..].copy_from_slice(&l4);
        if f.len() < self.pad_to {
            f.resize(self.pad_to, 0);
        }
        f
    }
}

/// `frame` with its IPv4 header changed by `edit` and the header checksum recomputed.
fn with_ip(mut frame: Vec<u8>, edit: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
    edit(&mut ip);
    ip.fill_checksum();
    frame
}

// ---------------------------------------------------------------------------------------------
// Independent checks.

/// Ones'-complement sum of big-endian 16-bit words (an odd last byte padded with zero).
fn ones(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum to store over `data` (whose checksum field is zero).
fn internet_checksum(data: &[u8]) -> u16 {
    !fold(ones(data))
}

/// Asserts every checksum of the IPv4 packet at the start of `ip`: the header's, and the
/// TCP/UDP (pseudo-header) or ICMP one; an IP-in-IP payload is checked the same way.
fn assert_checksums(ip: &[u8]) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert_eq!(fold(ones(&ip[..ihl])), 0xffff, "IPv4 header checksum");
    let l4 = &ip[ihl..total];
    let pseudo = ones(&ip[12..20]) + u32::from(ip[9]) + l4.len() as u32;
    match ip[9] {
        ip_proto::TCP => assert_eq!(fold(pseudo + ones(l4)), 0xffff, "TCP checksum"),
        ip_proto::UDP if l4[6..8] == [0, 0] => {}
        ip_proto::UDP => assert_eq!(fold(pseudo + ones(l4)), 0xffff, "UDP checksum"),
        ip_proto::ICMP => assert_eq!(fold(ones(l4)), 0xffff, "ICMP checksum"),
        ip_proto::IPIP => assert_checksums(l4),
        p => panic!("unexpected protocol {p}"),
    }
}

fn frame_checksums(frame: &[u8]) {
    assert_eq!(&frame[12..14], &[0x08, 0x00], "IPv4 EtherType");
    assert_checksums(&frame[14..]);
}

/// Source and destination (address, port) of a TCP/UDP frame.
fn ends(frame: &[u8]) -> (SocketAddrV4, SocketAddrV4) {
    let ip = Ipv4Packet::new_checked(&frame[14..]).expect("IPv4");
    let l4 = ip.payload();
    (
        sa(ip.src(), u16::from_be_bytes([l4[0], l4[1]])),
        sa(ip.dst(), u16::from_be_bytes([l4[2], l4[3]])),
    )
}

fn ip_total_len(frame: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([frame[16], frame[17]]))
}

/// The connection of `client` to `vip` (its client tuple).
fn conn_of(w: &Worker, client: SocketAddrV4, vip: SocketAddrV4) -> Option<Conn> {
    w.conns().iter().map(|(_, c)| c).find(|c| {
        (c.caddr, c.cport, c.vaddr, c.vport)
            == (
                client.ip().to_bits(),
                client.port(),
                vip.ip().to_bits(),
                vip.port(),
            )
    })
}

/// (active, inactive) of server `d` of service `svc`.
fn counts(w: &Worker, svc: usize, d: usize) -> (u32, u32) {
    let l = w.loads(svc)[d];
    (l.active, l.inactive)
}

/// The accounting invariant: per server, the active and inactive counts are exactly the
/// connections of that server that are (not) active; their sum over all servers is the table's
/// size; every connection is found by its client tuple and, for NAT and FullNAT, its reply
/// tuple; FullNAT local ports are unique and in this worker's slice; the OVERLOAD flags agree
/// with the thresholds.
fn check_accounts(w: &Worker, worker_id: u16, workers: u16) {
    let snap = w.snapshot().clone();
    let mut held: HashMap<(usize, usize), (u32, u32)> = HashMap::new();
    for (_, c) in w.conns().iter() {
        let e = held
            .entry((usize::from(c.service), usize::from(c.dest)))
            .or_default();
        if c.active {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let mut total = 0usize;
    for (svc, s) in snap.services.iter().enumerate() {
        for (d, dest) in s.dests.iter().enumerate() {
            let l = w.loads(svc)[d];
            assert_eq!(
                (l.active, l.inactive),
                held.get(&(svc, d)).copied().unwrap_or_default(),
                "service {svc} server {d}: (active, inactive)"
            );
            total += (l.active + l.inactive) as usize;
            let n = u64::from(l.active + l.inactive);
            if dest.upper > 0 {
                if n >= u64::from(dest.upper) {
                    assert!(l.overloaded, "service {svc} server {d}: {n} ≥ upper");
                }
                let below = if dest.lower > 0 {
                    n < u64::from(dest.lower)
                } else {
                    4 * n < 3 * u64::from(dest.upper)
                };
                if below {
                    assert!(
                        !l.overloaded,
                        "service {svc} server {d}: {n} is below lower"
                    );
                }
            } else {
                assert!(!l.overloaded, "service {svc} server {d}: no threshold");
            }
        }
    }
    assert_eq!(
        total,
        w.conns().len(),
        "Σ(active + inactive) == connections"
    );
    let mut lports = HashSet::new();
    for (id, c) in w.conns().iter() {
        assert_eq!(
            c.active,
            c.state == ES,
            "active only while ESTABLISHED: {c:?}"
        );
        assert_eq!(w.conns().lookup(&c.in_key()), Some((id, Dir::In)), "{c:?}");
        if let Some(out) = c.out_key() {
            assert_eq!(w.conns().lookup(&out), Some((id, Dir::Out)), "{c:?}");
        }
        if c.laddr != 0 {
            assert!(
                lports.insert((c.laddr, c.lport)),
                "local port reused: {c:?}"
            );
            assert_eq!(c.lport % workers, worker_id, "port slice: {c:?}");
            assert!(c.lport >= 1024);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A connection through NAT or FullNAT as both ends see it.

#[derive(Debug, Clone, Copy)]
struct Flow {
    client_mac: MacAddr,
    client: SocketAddrV4,
    vip: SocketAddrV4,
    /// The real server it was scheduled to.
    rs: SocketAddrV4,
    /// The client as the real server sees it: itself (NAT) or LIP:lport (FullNAT).
    peer: SocketAddrV4,
}

impl Flow {
    /// A segment from the client, delivered to `ext`.
    fn client(&self, flags: u8) -> Pkt {
        Pkt::tcp((self.client_mac, EXT_MAC), self.client, self.vip, flags)
    }
    /// A segment from the real server, delivered to `int`.
    fn server(&self, flags: u8) -> Pkt {
        Pkt::server(self.rs, self.peer, flags)
    }
    fn rs(&self) -> usize {
        rs_index(*self.rs.ip())
    }
}

/// Opens a connection with a SYN from `client` (off-link, via the gateway) to `vip` at `now`.
fn open(w: &mut Worker, client: SocketAddrV4, vip: SocketAddrV4, now: u32) -> Flow {
    open_from(w, GW_MAC, client, vip, now)
}

fn open_from(
    w: &mut Worker,
    client_mac: MacAddr,
    client: SocketAddrV4,
    vip: SocketAddrV4,
    now: u32,
) -> Flow {
    let syn = Pkt::tcp((client_mac, EXT_MAC), client, vip, SYN).opts(&SYN_OPTS);
    let (v, out) = send(w, &syn.build(), EXT, now);
    assert_eq!(v, Verdict::Tx(INT), "SYN {client} → {vip}");
    let (peer, rs) = ends(&out);
    Flow {
        client_mac,
        client,
        vip,
        rs,
        peer,
    }
}

/// The server's SYN+ACK and the client's ACK.
fn establish(w: &mut Worker, f: &Flow, now: u32) {
    let (v, _) = send(w, &f.server(SYN | ACK).build(), INT, now);
    assert_eq!(v, Verdict::Tx(EXT), "SYN+ACK of {f:?}");
    let (v, _) = send(w, &f.client(ACK).build(), EXT, now);
    assert_eq!(v, Verdict::Tx(INT), "ACK of {f:?}");
}

fn client(port: u16) -> SocketAddrV4 {
    sa(CIP, port)
}

// ---------------------------------------------------------------------------------------------
// NAT.

#[test]
fn nat_request_goes_to_the_real_server_port_with_the_client_source_kept() {
    let mut w = worker();
    let syn = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_NAT, 80), SYN).opts(&SYN_OPTS);
    let input = syn.build();
    frame_checksums(&input);
    let (v, out) = send(&mut w, &input, EXT, 1);
    assert_eq!(v, Verdict::Tx(INT));
    let want = syn
        .clone()
        .l2(INT_MAC, RS_MAC[0])
        .to(sa(RS[0], 8080))
        .build();
    assert_eq!(
        out, want,
        "DNAT VIP:80 → RIP:8080, out on int to the server's MAC"
    );
    frame_checksums(&out);
    // Field by field, for the reader: only the destination and the MACs changed.
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(
        (ip.src(), ip.dst(), ip.ttl(), ip.ident()),
        (CIP, RS[0], 61, 0x2b1d)
    );
    assert!(ip.dont_frag());
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((t.src_port(), t.dst_port(), t.flags()), (40000, 8080, SYN));
    assert_eq!(t.options(), SYN_OPTS);

    // Data of the same connection, and the next connection on the next server.
    let data = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_NAT, 80), ACK | PSH)
        .payload(b"GET / HTTP/1.1\r\n\r\n");
    let (v, out) = send(&mut w, &data.build(), EXT, 2);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(out, data.l2(INT_MAC, RS_MAC[0]).to(sa(RS[0], 8080)).build());
    let syn2 = Pkt::tcp((GW_MAC, EXT_MAC), client(40001), sa(VIP_NAT, 80), SYN);
    let (v, out) = send(&mut w, &syn2.build(), EXT, 2);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(
        out,
        syn2.l2(INT_MAC, RS_MAC[1]).to(sa(RS[1], 8080)).build(),
        "rr: the second server"
    );
    let c = conn_of(&w, client(40000), sa(VIP_NAT, 80)).expect("tracked");
    assert_eq!(
        (c.raddr, c.rport, c.laddr, c.lport, c.service, c.dest),
        (RS[0].to_bits(), 8080, 0, 0, S_NAT as u16, 0)
    );
    assert_eq!((w.counters.connections, w.counters.forwarded), (2, 3));
    check_accounts(&w, 0, 1);
}

#[test]
fn nat_reply_to_an_off_link_client_goes_to_the_gateway() {
    let mut w = worker();
    let f = open(&mut w, client(40000), sa(VIP_NAT, 80), 1);
    assert_eq!((f.rs, f.peer), (sa(RS[0], 8080), client(40000)));
    let reply = f.server(SYN | ACK).opts(&[0x02, 0x04, 0x05, 0xb4]);
    let input = reply.build();
    frame_checksums(&input);
    let (v, out) = send(&mut w, &input, INT, 2);
    assert_eq!(v, Verdict::Tx(EXT), "out on ext");
    let want = reply
        .clone()
        .l2(EXT_MAC, GW_MAC)
        .from(sa(VIP_NAT, 80))
        .build();
    assert_eq!(
        out, want,
        "RIP:8080 → CIP becomes VIP:80 → CIP, to the gateway"
    );
    frame_checksums(&out);
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(
        (ip.src(), ip.dst(), ip.ttl(), ip.ident()),
        (VIP_NAT, CIP, 64, 0x1a2b)
    );
    let t = TcpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((t.src_port(), t.dst_port()), (80, 40000));

    // A data reply with payload too.
    let data = f.server(ACK | PSH).payload(&[0x5a; 333]);
    let (v, out) = send(&mut w, &data.build(), INT, 3);
    assert_eq!(v, Verdict::Tx(EXT));
    assert_eq!(out, data.l2(EXT_MAC, GW_MAC).from(sa(VIP_NAT, 80)).build());
    assert_eq!(w.counters.replies, 2);
    check_accounts(&w, 0, 1);
}

#[test]
fn nat_reply_to_an_on_link_client_goes_to_the_mac_its_requests_came_from() {
    // No gateway MAC: an on-link client does not need it.
    let mut w = worker_of(snapshot(false), 0, 1, 1024);
    let f = open_from(&mut w, ON_LINK_MAC, sa(ON_LINK, 50000), sa(VIP_NAT, 80), 1);
    let reply = f.server(SYN | ACK);
    let (v, out) = send(&mut w, &reply.build(), INT, 2);
    assert_eq!(v, Verdict::Tx(EXT));
    assert_eq!(
        out,
        reply.l2(EXT_MAC, ON_LINK_MAC).from(sa(VIP_NAT, 80)).build(),
        "to the client's own MAC"
    );
    frame_checksums(&out);
    // The client's NIC changed (failover): its next request teaches the new MAC.
    let moved = MacAddr([0x02, 0, 0, 0, 0, 0x51]);
    let (v, _) = send(
        &mut w,
        &Pkt::tcp((moved, EXT_MAC), f.client, f.vip, ACK).build(),
        EXT,
        3,
    );
    assert_eq!(v, Verdict::Tx(INT));
    let (v, out) = send(&mut w, &f.server(ACK).build(), INT, 4);
    assert_eq!(v, Verdict::Tx(EXT));
    assert_eq!(&out[..6], &moved.0);
}

#[test]
fn nat_reply_with_an_unresolved_gateway_is_dropped_until_it_resolves() {
    let snap = snapshot(false);
    let mut w = worker_of(snap.clone(), 0, 1, 1024);
    let f = open(&mut w, client(40000), sa(VIP_NAT, 80), 1);
    let reply = f.server(SYN | ACK).build();
    assert_dropped(&mut w, &reply, INT, 2, DropReason::NeighUnresolved);
    assert_eq!(w.conns().len(), 1, "the connection stays");
    let slot = snap.neigh.find(GW, EXT).unwrap();
    snap.neigh.set(slot, Some(GW_MAC));
    let (v, out) = send(&mut w, &reply, INT, 3);
    assert_eq!(v, Verdict::Tx(EXT));
    assert_eq!(&out[..12], [GW_MAC.0, EXT_MAC.0].concat());
    check_accounts(&w, 0, 1);
}

#[test]
fn nat_reply_without_a_route_to_the_client_is_no_route() {
    let text = PROFILE.replacen(
        "routes:\n  - { prefix: \"0.0.0.0/0\", via: 10.201.0.1 }\n",
        "",
        1,
    );
    assert_ne!(text, PROFILE);
    let mut w = worker_of(snapshot_of(&text, false), 0, 1, 1024);
    // Requests need no route to the client; its replies do.
    let f = open(&mut w, client(40000), sa(VIP_NAT, 80), 1);
    assert_dropped(
        &mut w,
        &f.server(SYN | ACK).build(),
        INT,
        2,
        DropReason::NoRoute,
    );
    let g = open(&mut w, client(40001), sa(VIP_FNAT, 80), 1);
    assert_dropped(
        &mut w,
        &g.server(SYN | ACK).build(),
        INT,
        2,
        DropReason::NoRoute,
    );
    // An on-link client is reachable without one.
    let h = open_from(&mut w, ON_LINK_MAC, sa(ON_LINK, 50000), sa(VIP_NAT, 80), 1);
    assert_eq!(
        send(&mut w, &h.server(SYN | ACK).build(), INT, 2).0,
        Verdict::Tx(EXT)
    );
    assert_eq!(w.conns().len(), 3, "the connections stay");
    check_accounts(&w, 0, 1);
}

#[test]
fn a_reply_without_a_connection_is_no_service() {
    let mut w = worker();
    // Nothing open: a real server's SYN+ACK and data towards a client.
    for flags in [SYN | ACK, ACK, ACK | PSH, RST] {
        let f = Pkt::server(sa(RS[0], 8080), client(40000), flags).build();
        assert_dropped(&mut w, &f, INT, 1, DropReason::NoService);
    }
    // Open one: a reply from the other server, or to another client port, is still unknown.
    let f = open(&mut w, client(40000), sa(VIP_NAT, 80), 1);
    let wrong_rs = Pkt::server(sa(RS[1], 8080), client(40000), ACK).build();
    assert_dropped(&mut w, &wrong_rs, INT, 2, DropReason::NoService);
    let wrong_port = f.server(ACK).to(client(40001)).build();
    assert_dropped(&mut w, &wrong_port, INT, 2, DropReason::NoService);
    let wrong_sport = f.server(ACK).from(sa(RS[0], 8081)).build();
    assert_dropped(&mut w, &wrong_sport, INT, 2, DropReason::NoService);
    let udp = Pkt::udp((RS_MAC[0], INT_MAC), sa(RS[0], 8080), client(40000), b"x").build();
    assert_dropped(&mut w, &udp, INT, 2, DropReason::NoService);
    assert_eq!(w.counters.replies, 0);
    assert_eq!(
        conn_of(&w, client(40000), sa(VIP_NAT, 80)).map(|c| c.state),
        Some(SR),
        "the unrelated packets did not touch the connection"
    );
}

#[test]
fn udp_nat_both_ways_and_a_zero_checksum_stays_zero() {
    for with_sum in [true, false] {
        let mut w = worker();
        let mut q = Pkt::udp(
            (GW_MAC, EXT_MAC),
            client(5353),
            sa(VIP_NAT, 53),
            b"\xab\xcd\x01\x00\x00\x01rvs",
        );
        if !with_sum {
            q = q.no_udp_checksum();
        }
        let input = q.build();
        assert_eq!(input[40..42] == [0, 0], !with_sum);
        let (v, out) = send(&mut w, &input, EXT, 1);
        assert_eq!(v, Verdict::Tx(INT));
        let want = q.clone().l2(INT_MAC, RS_MAC[0]).to(sa(RS[0], 53)).build();
        assert_eq!(out, want, "UDP DNAT (checksum {with_sum})");
        frame_checksums(&out);
        assert_eq!(
            out[40..42] == [0, 0],
            !with_sum,
            "a missing checksum stays missing"
        );

        let mut r = Pkt::udp(
            (RS_MAC[0], INT_MAC),
            sa(RS[0], 53),
            client(5353),
            b"\xab\xcd\x81\x80answer",
        );
        r.ttl = 64;
        if !with_sum {
            r = r.no_udp_checksum();
        }
        let (v, out) = send(&mut w, &r.build(), INT, 2);
        assert_eq!(v, Verdict::Tx(EXT));
        let want = r.l2(EXT_MAC, GW_MAC).from(sa(VIP_NAT, 53)).build();
        assert_eq!(out, want, "UDP reply (checksum {with_sum})");
        frame_checksums(&out);
        assert_eq!(out[40..42] == [0, 0], !with_sum);

        let c = conn_of(&w, client(5353), sa(VIP_NAT, 53)).unwrap();
        assert_eq!((c.state, c.expires, c.active), (UDP_STATE, 2 + 300, false));
        assert_eq!(counts(&w, S_UDP, 0), (0, 1), "UDP is always inactive");
        check_accounts(&w, 0, 1);
    }
}

/// A UDP checksum that computes to zero is sent as 0xffff (RFC 768), also after an
/// incremental update.
#[test]
fn udp_nat_writes_a_computed_zero_checksum_as_ffff() {
    let q = |x: u16| {
        Pkt::udp(
            (GW_MAC, EXT_MAC),
            client(5353),
            sa(VIP_NAT, 53),
            &x.to_be_bytes(),
        )
    };
    let x = (0..=u16::MAX)
        .find(|&x| q(x).l2(INT_MAC, RS_MAC[0]).to(sa(RS[0], 53)).build()[40..42] == [0xff, 0xff])
        .expect("some payload sums to zero");
    let mut w = worker();
    let input = q(x).build();
    assert_ne!(&input[40..42], &[0xff, 0xff]);
    let (v, out) = send(&mut w, &input, EXT, 1);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(out, q(x).l2(INT_MAC, RS_MAC[0]).to(sa(RS[0], 53)).build());
    assert_eq!(&out[40..42], &[0xff, 0xff]);
    frame_checksums(&out);
    // And the reply direction.
    let r = |y: u16| {
        let mut p = Pkt::udp(
            (RS_MAC[0], INT_MAC),
            sa(RS[0], 53),
            client(5353),
            &y.to_be_bytes(),
        );
        p.ttl = 64;
        p
    };
    let y = (0..=u16::MAX)
        .find(|&y| r(y).l2(EXT_MAC, GW_MAC).from(sa(VIP_NAT, 53)).build()[40..42] == [0xff, 0xff])
        .expect("some payload sums to zero");
    let (v, out) = send(&mut w, &r(y).build(), INT, 2);
    assert_eq!(v, Verdict::Tx(EXT));
    assert_eq!(out, r(y).l2(EXT_MAC, GW_MAC).from(sa(VIP_NAT, 53)).build());
}

#[test]
fn nat_reply_tuple_collision_is_refused() {
    let mut w = worker();
    let f = open(&mut w, client(40000), sa(VIP_NAT, 80), 1);
    assert_eq!(f.rs, sa(RS[0], 8080));
    // Same client address and port to another NAT VIP onto the same RIP:8080: its reply tuple
    // RIP:8080 → CIP:40000 is the first connection's.
    let clash = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_NAT2, 80), SYN).build();
    assert_dropped(&mut w, &clash, EXT, 2, DropReason::NatCollision);
    assert_eq!(w.conns().len(), 1);
    assert_eq!(counts(&w, S_NAT2, 0), (0, 0), "nothing counted");
    assert!(conn_of(&w, client(40000), sa(VIP_NAT2, 80)).is_none());
    // The first connection's replies are still its own.
    let (v, out) = send(&mut w, &f.server(SYN | ACK).build(), INT, 2);
    assert_eq!(v, Verdict::Tx(EXT));
    assert_eq!(ends(&out).0, sa(VIP_NAT, 80));
    // Another client port does not clash; FullNAT never does (its reply goes to a LIP).
    let g = open(&mut w, client(40001), sa(VIP_NAT2, 80), 2);
    assert_eq!(g.rs, sa(RS[0], 8080));
    let h = open(&mut w, client(40000), sa(VIP_FNAT, 80), 2);
    assert_eq!(h.rs, sa(RS[0], 8080));
    // Once the first connection is gone (SYN_RECV, refreshed at 2), the clashing one can be
    // made.
    assert_eq!(w.expire(61, 1024), 0);
    assert_eq!(w.expire(62, 1024), 3, "the three SYN_RECV connections");
    let (v, _) = send(&mut w, &clash, EXT, 62);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(w.counters.drops[DropReason::NatCollision as usize], 1);
    check_accounts(&w, 0, 1);
}

// ---------------------------------------------------------------------------------------------
// FullNAT.

#[test]
fn fullnat_rewrites_both_ends_with_alternating_local_addresses_from_the_worker_slice() {
    let mut w = worker_of(snapshot(true), 1, 4, 1024);
    let mut flows = vec![];
    for (i, (lip, lport, rs)) in [
        (LIP[0], 1025, 0),
        (LIP[1], 1025, 1),
        (LIP[0], 1029, 0),
        (LIP[1], 1029, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let cport = 40000 + i as u16;
        let syn = Pkt::tcp((GW_MAC, EXT_MAC), client(cport), sa(VIP_FNAT, 80), SYN).opts(&SYN_OPTS);
        let (v, out) = send(&mut w, &syn.build(), EXT, 1);
        assert_eq!(v, Verdict::Tx(INT), "connection {i}");
        let want = syn
            .l2(INT_MAC, RS_MAC[rs])
            .from(sa(lip, lport))
            .to(sa(RS[rs], 8080))
            .build();
        assert_eq!(out, want, "connection {i}: LIP:lport → RIP:8080");
        frame_checksums(&out);
        let c = conn_of(&w, client(cport), sa(VIP_FNAT, 80)).unwrap();
        assert_eq!((c.laddr, c.lport), (lip.to_bits(), lport));
        assert_eq!(c.lport % 4, 1, "worker 1 of 4 owns ports ≡ 1 (mod 4)");
        flows.push(Flow {
            client_mac: GW_MAC,
            client: client(cport),
            vip: sa(VIP_FNAT, 80),
            rs: sa(RS[rs], 8080),
            peer: sa(lip, lport),
        });
    }
    // Replies: RIP:8080 → LIP:lport becomes VIP:80 → CIP:cport, to the gateway.
    for f in flows.iter().rev() {
        let reply = f.server(SYN | ACK).opts(&[0x02, 0x04, 0x05, 0xb4]);
        let (v, out) = send(&mut w, &reply.build(), INT, 2);
        assert_eq!(v, Verdict::Tx(EXT));
        let want = reply
            .l2(EXT_MAC, GW_MAC)
            .from(sa(VIP_FNAT, 80))
            .to(f.client)
            .build();
        assert_eq!(out, want, "reply of {f:?}");
        frame_checksums(&out);
    }
    // Later segments keep their local port; the server keeps seeing the LIP.
    let f = flows[2];
    let data = f.client(ACK | PSH).payload(b"hello");
    let (v, out) = send(&mut w, &data.build(), EXT, 3);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(
        out,
        data.l2(INT_MAC, RS_MAC[0])
            .from(sa(LIP[0], 1029))
            .to(sa(RS[0], 8080))
            .build()
    );
    // A reply to a local port with no connection is the director's own traffic.
    let stray = Pkt::server(sa(RS[0], 8080), sa(LIP[0], 1033), ACK).build();
    assert_dropped(&mut w, &stray, INT, 3, DropReason::LocalUnhandled);
    assert_eq!(w.counters.replies, 4);
    check_accounts(&w, 1, 4);
}

#[test]
fn fullnat_on_link_client_gets_replies_at_its_own_mac() {
    let mut w = worker_of(snapshot(false), 0, 1, 1024);
    let f = open_from(&mut w, ON_LINK_MAC, sa(ON_LINK, 50000), sa(VIP_FNAT, 80), 1);
    assert_eq!(f.peer, sa(LIP[0], 1024));
    let reply = f.server(SYN | ACK);
    let (v, out) = send(&mut w, &reply.build(), INT, 2);
    assert_eq!(v, Verdict::Tx(EXT));
    assert_eq!(
        out,
        reply
            .l2(EXT_MAC, ON_LINK_MAC)
            .from(sa(VIP_FNAT, 80))
            .to(f.client)
            .build()
    );
}

#[test]
fn fullnat_port_exhaustion_is_no_local_port_and_expiry_returns_ports() {
    // 60 workers: worker 7 owns the ports ≡ 7 (mod 60) in 1024..=65535, 1076 per local address.
    const WORKERS: u16 = 60;
    const ID: u16 = 7;
    let per_lip = (1024..=65535u32)
        .filter(|p| p % u32::from(WORKERS) == u32::from(ID))
        .count();
    assert_eq!(per_lip, 1076);
    let mut w = worker_of(snapshot(true), ID, WORKERS, 4096);
    let syn =
        |cport: u16| Pkt::tcp((GW_MAC, EXT_MAC), client(cport), sa(VIP_FNAT, 80), SYN).build();
    // The first 1000 at t=0, the rest at t=30.
    for i in 0..2 * per_lip {
        let now = if i < 1000 { 0 } else { 30 };
        let (v, _) = send(&mut w, &syn(10000 + i as u16), EXT, now);
        assert_eq!(v, Verdict::Tx(INT), "connection {i}");
    }
    assert_eq!(w.conns().len(), 2 * per_lip);
    check_accounts(&w, ID, WORKERS);
    let used: HashSet<(u32, u16)> = w.conns().iter().map(|(_, c)| (c.laddr, c.lport)).collect();
    assert_eq!(
        used.len(),
        2 * per_lip,
        "every port of both addresses, once"
    );
    // Pools empty: the next SYN is refused, untouched, nothing counted.
    let extra = syn(9000);
    assert_dropped(&mut w, &extra, EXT, 30, DropReason::NoLocalPort);
    assert_dropped(&mut w, &extra, EXT, 59, DropReason::NoLocalPort);
    assert_eq!(w.conns().len(), 2 * per_lip);
    let loads: u32 = w.loads(S_FNAT).iter().map(|l| l.active + l.inactive).sum();
    assert_eq!(loads as usize, 2 * per_lip);
    // SYN_RECV lasts 60 s: at 60 the first thousand expire and give their ports back.
    assert_eq!(w.expire(60, 4096), 1000);
    assert_eq!(w.conns().len(), 2 * per_lip - 1000);
    check_accounts(&w, ID, WORKERS);
    let (v, out) = send(&mut w, &extra, EXT, 60);
    assert_eq!(v, Verdict::Tx(INT), "a returned port is handed out again");
    let (lip, _) = ends(&out);
    assert!(LIP.contains(lip.ip()));
    assert_eq!(lip.port() % WORKERS, ID);
    for i in 1..1000u16 {
        let (v, _) = send(&mut w, &syn(9000 + i), EXT, 60);
        assert_eq!(v, Verdict::Tx(INT), "reused port {i}");
    }
    assert_dropped(&mut w, &syn(8999), EXT, 60, DropReason::NoLocalPort);
    assert_eq!(w.counters.drops[DropReason::NoLocalPort as usize], 3);
    check_accounts(&w, ID, WORKERS);
    // Everything expires in the end, and every port comes back.
    assert_eq!(w.expire(200, 1 << 16), 2 * per_lip);
    assert!(w.conns().is_empty());
    check_accounts(&w, ID, WORKERS);
    for i in 0..2 * per_lip {
        let (v, _) = send(&mut w, &syn(20000 + i as u16), EXT, 201);
        assert_eq!(v, Verdict::Tx(INT), "after full expiry, connection {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// Tunnel.

/// A 20-byte IPv4 header, written byte by byte with its checksum computed here.
fn ipv4_header(
    total: usize,
    ident: u16,
    df: bool,
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Vec<u8> {
    let mut h = vec![0x45, 0x00];
    h.extend((total as u16).to_be_bytes());
    h.extend(ident.to_be_bytes());
    h.extend(if df { [0x40, 0] } else { [0, 0] });
    h.extend([ttl, proto, 0, 0]);
    h.extend(src.octets());
    h.extend(dst.octets());
    let c = internet_checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// `input` (a frame from the gateway) as the tunnel sends it to tunnel server `rs`: an outer
/// header int DIP → RIP, protocol 4, TTL 64, the inner ident and DF; the inner IPv4 packet
/// byte for byte, without Ethernet padding.
fn tunnelled(input: &[u8], rs: usize) -> Vec<u8> {
    let inner = &input[14..14 + ip_total_len(input)];
    let ident = u16::from_be_bytes([inner[4], inner[5]]);
    let df = inner[6] & 0x40 != 0;
    let mut f = [TRS_MAC[rs].0, INT_MAC.0].concat();
    f.extend([0x08, 0x00]);
    f.extend(ipv4_header(
        20 + inner.len(),
        ident,
        df,
        64,
        ip_proto::IPIP,
        INT_DIP,
        TRS[rs],
    ));
    f.extend(inner);
    f
}

#[test]
fn tun_encapsulates_from_the_int_dip_to_the_real_server() {
    let mut w = worker();
    let syn = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), SYN).opts(&SYN_OPTS);
    let input = syn.build();
    let (v, out) = send(&mut w, &input, EXT, 1);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(out, tunnelled(&input, 0));
    assert_eq!(out.len(), input.len() + 20);
    frame_checksums(&out);
    assert_eq!(&out[34..], &input[14..], "inner packet byte-identical");
    let outer = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert_eq!(
        (outer.src(), outer.dst(), outer.protocol(), outer.ttl()),
        (INT_DIP, TRS[0], 4, 64)
    );
    assert_eq!(
        (outer.ident(), outer.dont_frag(), outer.total_len()),
        (0x2b1d, true, 80)
    );

    // DF clear is copied too; a padded 60-byte frame loses its padding; rr to the second.
    let small = Pkt::tcp((GW_MAC, EXT_MAC), client(40001), sa(VIP_TUN, 80), SYN)
        .df(false)
        .padded(60);
    let input = small.build();
    assert_eq!((input.len(), ip_total_len(&input)), (60, 40));
    let (v, out) = send(&mut w, &input, EXT, 1);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(out, tunnelled(&input, 1));
    assert_eq!(out.len(), 14 + 20 + 40, "no padding inside the tunnel");
    assert_eq!(out[20], 0, "DF clear");
    // Later packets of the connection follow it; the tunnel sees no replies.
    let data = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), ACK | PSH)
        .payload(&[0x77; 1000])
        .build();
    let (v, out) = send(&mut w, &data, EXT, 2);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(out, tunnelled(&data, 0));
    check_accounts(&w, 0, 1);
}

/// The ICMP "fragmentation needed" (next-hop MTU `mtu`) the director sends back to the sender
/// of `input` for VIP `vip`, written byte by byte.
fn frag_needed(input: &[u8], vip: Ipv4Addr, mtu: u16) -> Vec<u8> {
    let ihl = usize::from(input[14] & 0x0f) * 4;
    let quoted = &input[14..14 + ihl + 8];
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend(mtu.to_be_bytes());
    icmp.extend(quoted);
    let c = internet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = [GW_MAC.0, EXT_MAC.0].concat();
    f.extend([0x08, 0x00]);
    f.extend(ipv4_header(
        20 + icmp.len(),
        0,
        false,
        64,
        ip_proto::ICMP,
        vip,
        CIP,
    ));
    f.extend(icmp);
    f
}

#[test]
fn tun_packet_too_big_with_df_gets_frag_needed_with_mtu_1480() {
    let mut w = worker();
    let f = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), SYN).build();
    assert_eq!(send(&mut w, &f, EXT, 1).0, Verdict::Tx(INT));
    let data = |len: usize| {
        Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), ACK | PSH)
            .payload(&vec![0x42; len - 40])
    };
    // 1480 bytes fit the 1500-byte MTU once encapsulated.
    let fits = data(1480).build();
    let (v, out) = send(&mut w, &fits, EXT, 2);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(out, tunnelled(&fits, 0));
    assert_eq!(out.len(), 14 + 1500);
    // 1500 bytes with DF: ICMP back out of the ingress port, from the VIP, MTU 1480.
    let big = data(1500).build();
    assert_eq!(ip_total_len(&big), 1500);
    let (v, out) = send(&mut w, &big, EXT, 3);
    assert_eq!(v, Verdict::Tx(EXT), "back out of the port it came in on");
    assert_eq!(out, frag_needed(&big, VIP_TUN, 1480));
    assert_eq!(out.len(), 14 + 20 + 8 + 20 + 8);
    frame_checksums(&out);
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    let icmp = IcmpV4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (icmp.msg_type(), icmp.code(), icmp.next_hop_mtu()),
        (3, 4, 1480)
    );
    assert_eq!(
        &icmp.payload()[..28],
        &big[14..42],
        "header + 8 bytes quoted"
    );
    // One byte over, DF: the same.
    let over = data(1481).build();
    let (v, out) = send(&mut w, &over, EXT, 3);
    assert_eq!(v, Verdict::Tx(EXT));
    assert_eq!(out, frag_needed(&over, VIP_TUN, 1480));
    assert_eq!(w.counters.icmp_frag_needed, 2);
    // The connection is still there and established (its ACK was seen).
    let c = conn_of(&w, client(40000), sa(VIP_TUN, 80)).unwrap();
    assert_eq!(c.state, ES);
    check_accounts(&w, 0, 1);
}

#[test]
fn tun_respects_the_egress_port_mtu() {
    let text = PROFILE.replacen(
        r#"addresses: ["10.202.0.1/24"] }"#,
        r#"addresses: ["10.202.0.1/24"], mtu: 1400 }"#,
        1,
    );
    assert_ne!(text, PROFILE);
    let mut w = worker_of(snapshot_of(&text, true), 0, 1, 1024);
    let seg = |len: usize| {
        Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), ACK)
            .payload(&vec![0x33; len - 40])
            .build()
    };
    let syn = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), SYN).build();
    assert_eq!(send(&mut w, &syn, EXT, 1).0, Verdict::Tx(INT));
    let fits = seg(1380);
    let (v, out) = send(&mut w, &fits, EXT, 2);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(out, tunnelled(&fits, 0));
    let big = seg(1381);
    let (v, out) = send(&mut w, &big, EXT, 2);
    assert_eq!(v, Verdict::Tx(EXT));
    assert_eq!(out, frag_needed(&big, VIP_TUN, 1380), "MTU 1400 - 20");
    frame_checksums(&out);
    assert_dropped(
        &mut w,
        &with_ip(seg(1381), |ip| ip.set_dont_frag(false)),
        EXT,
        2,
        DropReason::TooBig,
    );
}

#[test]
fn tun_packet_too_big_without_df_is_dropped() {
    let mut w = worker();
    let f = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), SYN).build();
    assert_eq!(send(&mut w, &f, EXT, 1).0, Verdict::Tx(INT));
    let big = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), ACK)
        .payload(&[0x42; 1460])
        .df(false)
        .build();
    assert_dropped(&mut w, &big, EXT, 2, DropReason::TooBig);
    assert_eq!(w.counters.icmp_frag_needed, 0);
}

/// A packet buffer with fixed headroom and tailroom, like an mbuf.
#[derive(Debug)]
struct Mbuf {
    mem: Vec<u8>,
    start: usize,
    len: usize,
}

impl Mbuf {
    fn new(frame: &[u8], headroom: usize, tailroom: usize) -> Mbuf {
        let mut mem = vec![0xeeu8; headroom];
        mem.extend_from_slice(frame);
        mem.resize(headroom + frame.len() + tailroom, 0xee);
        Mbuf {
            mem,
            start: headroom,
            len: frame.len(),
        }
    }
}

impl PacketBuf for Mbuf {
    fn data(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + self.len]
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        self.len += n;
        true
    }
    fn set_len(&mut self, len: usize) -> bool {
        if self.start + len > self.mem.len() {
            return false;
        }
        self.len = len;
        true
    }
}

#[test]
fn tun_without_headroom_is_dropped_and_with_headroom_matches() {
    let mut w = worker();
    let syn = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), SYN)
        .opts(&SYN_OPTS)
        .build();
    for headroom in [0, 19] {
        let mut m = Mbuf::new(&syn, headroom, 64);
        let v = w.process(&mut m, EXT, 1);
        assert_eq!(
            v,
            Verdict::Drop(DropReason::NoHeadroom),
            "headroom {headroom}"
        );
        assert_eq!(m.data(), &syn[..], "untouched");
    }
    assert_eq!(w.counters.drops[DropReason::NoHeadroom as usize], 2);
    // The connection was scheduled before the lack of room showed: retransmissions go on
    // trying the same server.
    assert_eq!(w.counters.connections, 1);
    for headroom in [20, 128] {
        let mut m = Mbuf::new(&syn, headroom, 0);
        let v = w.process(&mut m, EXT, 2);
        assert_eq!(v, Verdict::Tx(INT), "headroom {headroom}");
        assert_eq!(m.data(), tunnelled(&syn, 0));
    }
    // A padded frame in an mbuf: the padding is trimmed before the header goes on.
    let small = Pkt::tcp((GW_MAC, EXT_MAC), client(40001), sa(VIP_TUN, 80), SYN)
        .padded(60)
        .build();
    let mut m = Mbuf::new(&small, 128, 0);
    assert_eq!(w.process(&mut m, EXT, 3), Verdict::Tx(INT));
    assert_eq!(m.data(), tunnelled(&small, 1));
    check_accounts(&w, 0, 1);
}

/// BUG (fwd/tun.rs `write_outer`, via `Ipv4Repr::emit` which writes DSCP/ECN 0): the outer
/// header of an IP-in-IP packet must carry the inner TOS byte. RFC 2003 section 3.1 ("Type of
/// Service: copied from the inner IP header") and IPVS (`ip_vs_prepare_tunneled_skb` takes
/// `ipv4_get_dsfield(old_iph)` and `ip_vs_tunnel_xmit` sets `iph->tos = dsfield`) both copy
/// it; RVS zeroes it, so DSCP marking and ECN are lost between the director and the real
/// server. Fails until fixed.
#[test]
fn tun_outer_header_copies_the_inner_tos() {
    let mut w = worker();
    // DSCP AF41 (34) with ECT(0): TOS 0x8a.
    let syn = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), SYN)
        .tos(0x8a)
        .build();
    let (v, out) = send(&mut w, &syn, EXT, 1);
    assert_eq!(v, Verdict::Tx(INT));
    assert_eq!(&out[34..], &syn[14..], "inner untouched");
    assert_eq!(out[35], 0x8a, "inner TOS 0x8a");
    assert_eq!(out[15], 0x8a, "outer TOS copied from the inner header");
    frame_checksums(&out);
}

// ---------------------------------------------------------------------------------------------
// TCP states and deadlines.

#[derive(Debug, Clone, Copy)]
enum Side {
    /// Client → server (IPVS's input direction).
    C,
    /// Server → client (output).
    S,
}

/// (side, flags, state after, its timeout, active after).
type Step = (Side, u8, u8, u32, bool);

fn tcp_sequences() -> Vec<(&'static str, Vec<Step>)> {
    use Side::*;
    let open = vec![
        (S, SYN | ACK, SR, 60, false),
        (C, ACK, ES, 900, true),
        (C, ACK | PSH, ES, 900, true),
        (S, ACK | PSH, ES, 900, true),
    ];
    let with = |rest: &[Step]| [open.clone(), rest.to_vec()].concat();
    vec![
        (
            "client closes first: CLOSE_WAIT, then TIME_WAIT",
            with(&[
                (C, FIN | ACK, CW, 60, false),
                (S, ACK, CW, 60, false),
                (S, FIN | ACK, TW, 120, false),
                (C, ACK, TW, 120, false),
            ]),
        ),
        (
            "server closes first: FIN_WAIT, then TIME_WAIT",
            with(&[
                (S, FIN | ACK, FW, 120, false),
                (C, ACK, FW, 120, false),
                (C, FIN | ACK, TW, 120, false),
                (S, ACK, TW, 120, false),
            ]),
        ),
        (
            "server resets an established connection",
            with(&[(S, RST, CL, 10, false), (C, ACK, CL, 10, false)]),
        ),
        (
            "client resets an established connection",
            with(&[(C, RST | ACK, CL, 10, false), (S, RST, CL, 10, false)]),
        ),
        (
            "a client RST in SYN_RECV keeps SYN_RECV (kernel table); the server's closes",
            vec![
                (C, RST, SR, 60, false),
                (C, SYN, SR, 60, false),
                (S, RST | ACK, CL, 10, false),
            ],
        ),
        (
            "a segment with none of SYN/FIN/ACK/RST moves to CLOSE",
            with(&[(C, PSH, CL, 10, false), (C, ACK, CL, 10, false)]),
        ),
        (
            "a SYN on an established connection keeps it established",
            with(&[(C, SYN, ES, 900, true), (S, SYN | ACK, ES, 900, true)]),
        ),
    ]
}

#[test]
fn tcp_states_through_nat_and_fullnat_follow_the_kernel_table() {
    for vip in [VIP_NAT, VIP_FNAT] {
        let svc = if vip == VIP_NAT { S_NAT } else { S_FNAT };
        for (what, steps) in tcp_sequences() {
            let mut w = worker();
            let f = open(&mut w, client(40000), sa(vip, 80), 0);
            let c = conn_of(&w, f.client, f.vip).unwrap();
            assert_eq!(
                (c.state, c.expires, c.active),
                (SR, 60, false),
                "{what}: SYN"
            );
            assert_eq!(
                counts(&w, svc, f.rs()),
                (0, 1),
                "{what}: a new connection is inactive"
            );
            let mut now = 0;
            let mut last_timeout = 60;
            for (i, &(side, flags, state, timeout, active)) in steps.iter().enumerate() {
                now += 7;
                let (frame, port, out_port) = match side {
                    Side::C => (f.client(flags).build(), EXT, INT),
                    Side::S => (f.server(flags).build(), INT, EXT),
                };
                let (v, out) = send(&mut w, &frame, port, now);
                assert_eq!(v, Verdict::Tx(out_port), "{vip} {what}: step {i}");
                frame_checksums(&out);
                let c = conn_of(&w, f.client, f.vip).unwrap();
                assert_eq!(
                    (c.state, c.expires, c.active),
                    (state, now + timeout, active),
                    "{vip} {what}: step {i} {side:?} flags {flags:#04x}"
                );
                assert_eq!(
                    counts(&w, svc, f.rs()),
                    if active { (1, 0) } else { (0, 1) },
                    "{vip} {what}: step {i} counts"
                );
                check_accounts(&w, 0, 1);
                last_timeout = timeout;
            }
            // The deadline holds to the second: live just before, gone at it, for packets too
            // (the timers' side of a shortened deadline has its own test below).
            let deadline = now + last_timeout;
            assert_eq!(w.conns().live(deadline - 1).count(), 1, "{what}");
            assert_eq!(w.conns().live(deadline).count(), 0, "{what}");
            let (v, _) = send(&mut w, &f.client(ACK).build(), EXT, deadline);
            assert_eq!(v, Verdict::Drop(DropReason::NoFlowNotSyn), "{vip} {what}");
            assert!(w.conns().is_empty());
            assert_eq!(counts(&w, svc, f.rs()), (0, 0));
            check_accounts(&w, 0, 1);
        }
    }
}

/// BUG (pipeline.rs `Worker::existing`, `c.expires = now.saturating_add(state.timeout(..))`,
/// with flow/conn.rs `ConnTable::expire`): the timing wheel is armed once at a connection's
/// first deadline and re-armed lazily, which assumes a deadline only moves later. A state
/// change can move it earlier (ESTABLISHED 900 s → CLOSE 10 s on a reset, → TIME_WAIT 120 s
/// or CLOSE_WAIT 60 s on a close; SYN_RECV 60 s → CLOSE 10 s on a refused SYN), and then the
/// timers do not reclaim the connection at its deadline but only when the old entry fires (up
/// to 900 s later). Until then it keeps its slot, both tuples, its server's inactive count
/// (seen by lc/wlc/thresholds) and, for FullNAT, its local port. IPVS re-arms the connection
/// timer on every packet (`mod_timer` with the new state's timeout). Packets are not misled
/// (the lookup checks `expires`), but `expire()` is. Fails until fixed.
#[test]
fn the_timers_honour_a_deadline_shortened_by_a_state_change() {
    let mut w = worker();
    // NAT and FullNAT, established (deadline 901) then reset by the server at 2: CLOSE, 12.
    let f = open(&mut w, client(40000), sa(VIP_NAT, 80), 0);
    establish(&mut w, &f, 1);
    let g = open(&mut w, client(40001), sa(VIP_FNAT, 80), 0);
    establish(&mut w, &g, 1);
    for x in [&f, &g] {
        assert_eq!(
            send(&mut w, &x.server(RST).build(), INT, 2).0,
            Verdict::Tx(EXT)
        );
        assert_eq!(conn_of(&w, x.client, x.vip).unwrap().expires, 12);
    }
    // A SYN refused by its server: SYN_RECV (60) → CLOSE at 3, deadline 13.
    let h = open(&mut w, client(40002), sa(VIP_NAT, 80), 0);
    assert_eq!(
        send(&mut w, &h.server(RST | ACK).build(), INT, 3).0,
        Verdict::Tx(EXT)
    );
    // A normal close: established at 1 (901), then FIN both ways at 4: TIME_WAIT until 124.
    let k = open(&mut w, client(40003), sa(VIP_NAT, 80), 0);
    establish(&mut w, &k, 1);
    send(&mut w, &k.client(FIN | ACK).build(), EXT, 4);
    send(&mut w, &k.server(FIN | ACK).build(), INT, 4);
    assert_eq!(conn_of(&w, k.client, k.vip).unwrap().expires, 124);
    assert_eq!(w.expire(11, 1024), 0);
    assert_eq!(w.expire(13, 1024), 3, "the CLOSE connections at 12 and 13");
    assert_eq!(w.conns().len(), 1);
    assert_eq!(w.expire(124, 1024), 1, "the TIME_WAIT one at 124");
    assert!(w.conns().is_empty());
    assert_eq!(w.loads(S_NAT).iter().map(|l| l.inactive).sum::<u32>(), 0);
    check_accounts(&w, 0, 1);
}

#[test]
fn expiry_removes_both_tuples_and_the_counts() {
    let mut w = worker();
    let f = open(&mut w, client(40000), sa(VIP_NAT, 80), 0);
    establish(&mut w, &f, 1);
    assert_eq!(counts(&w, S_NAT, 0), (1, 0), "ESTABLISHED is active");
    let g = open(&mut w, client(40001), sa(VIP_FNAT, 80), 1);
    establish(&mut w, &g, 2);
    assert_eq!(counts(&w, S_FNAT, 0), (1, 0));
    let c = conn_of(&w, f.client, f.vip).unwrap();
    assert_eq!((c.state, c.expires), (ES, 901));
    // Not yet: a timer pass before the deadline keeps both.
    assert_eq!(w.expire(900, 1024), 0);
    assert_eq!(w.conns().len(), 2);
    assert_eq!(w.expire(901, 1024), 1);
    assert_eq!(w.expire(902, 1024), 1);
    assert!(w.conns().is_empty());
    assert_eq!(
        (counts(&w, S_NAT, 0), counts(&w, S_FNAT, 0)),
        ((0, 0), (0, 0))
    );
    // Neither tuple matches any more.
    let reply = f.server(ACK).build();
    assert_dropped(&mut w, &reply, INT, 903, DropReason::NoService);
    let freply = g.server(ACK).build();
    assert_dropped(&mut w, &freply, INT, 903, DropReason::LocalUnhandled);
    assert_dropped(
        &mut w,
        &f.client(ACK).build(),
        EXT,
        903,
        DropReason::NoFlowNotSyn,
    );
    assert_dropped(
        &mut w,
        &g.client(ACK).build(),
        EXT,
        903,
        DropReason::NoFlowNotSyn,
    );
    // The client port reused: a new connection, rr on to the next server.
    let again = open(&mut w, client(40000), sa(VIP_NAT, 80), 904);
    assert_eq!(again.rs(), 1);
    check_accounts(&w, 0, 1);
}

#[test]
fn a_connection_past_its_deadline_is_gone_even_before_its_timer_runs() {
    let mut w = worker();
    let f = open(&mut w, client(40000), sa(VIP_NAT, 80), 0);
    // No expire() call: at 60 the SYN_RECV connection is over for its packets.
    assert_dropped(
        &mut w,
        &f.server(SYN | ACK).build(),
        INT,
        60,
        DropReason::NoService,
    );
    assert!(w.conns().is_empty());
    assert_eq!(counts(&w, S_NAT, 0), (0, 0));
    assert_eq!(w.expire(100, 64), 0, "already reclaimed");
    check_accounts(&w, 0, 1);
}

#[test]
fn tun_connections_use_the_input_only_table() {
    let mut w = worker();
    let client_seg =
        |flags| Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), flags).build();
    let steps = [
        (SYN, SR, 60, (0, 1)),
        (ACK, ES, 900, (1, 0)),
        // Input-only: FIN from ESTABLISHED is FIN_WAIT (the input table would say CLOSE_WAIT).
        (FIN | ACK, FW, 120, (0, 1)),
        (ACK, FW, 120, (0, 1)),
        (RST, CL, 10, (0, 1)),
    ];
    for (i, (flags, state, timeout, load)) in steps.into_iter().enumerate() {
        let now = 10 * i as u32;
        assert_eq!(
            send(&mut w, &client_seg(flags), EXT, now).0,
            Verdict::Tx(INT)
        );
        let c = conn_of(&w, client(40000), sa(VIP_TUN, 80)).unwrap();
        assert_eq!((c.state, c.expires), (state, now + timeout), "step {i}");
        assert_eq!(counts(&w, S_TUN, 0), load, "step {i}");
        assert_eq!(c.out_key(), None, "a tunnel sees no replies");
    }
    check_accounts(&w, 0, 1);
}

#[test]
fn profile_timeouts_set_established_fin_wait_and_udp_deadlines() {
    let text = PROFILE.replacen(
        "services:",
        "timeouts: { tcp: 500, tcp_fin: 30, udp: 40 }\nservices:",
        1,
    );
    let mut w = worker_of(snapshot_of(&text, true), 0, 1, 1024);
    let f = open(&mut w, client(40000), sa(VIP_NAT, 80), 0);
    let deadline = |w: &Worker| {
        let c = conn_of(w, f.client, f.vip).unwrap();
        (c.state, c.expires)
    };
    assert_eq!(deadline(&w), (SR, 60), "SYN_RECV is not settable");
    establish(&mut w, &f, 5);
    assert_eq!(deadline(&w), (ES, 505));
    send(&mut w, &f.server(FIN | ACK).build(), INT, 10);
    assert_eq!(deadline(&w), (FW, 40));
    send(&mut w, &f.client(FIN | ACK).build(), EXT, 11);
    assert_eq!(deadline(&w), (TW, 131), "TIME_WAIT is not settable");
    let q = Pkt::udp((GW_MAC, EXT_MAC), client(5353), sa(VIP_NAT, 53), b"q").build();
    assert_eq!(send(&mut w, &q, EXT, 12).0, Verdict::Tx(INT));
    let u = conn_of(&w, client(5353), sa(VIP_NAT, 53)).unwrap();
    assert_eq!((u.state, u.expires), (UDP_STATE, 52));
}

// ---------------------------------------------------------------------------------------------
// Schedulers and thresholds through real connections.

fn open_many(w: &mut Worker, vip: Ipv4Addr, ports: std::ops::Range<u16>, now: u32) -> Vec<Flow> {
    ports
        .map(|p| open(w, client(p), sa(vip, 80), now))
        .collect()
}

fn letters(flows: &[Flow]) -> String {
    flows
        .iter()
        .map(|f| (b'A' + f.rs() as u8) as char)
        .collect()
}

#[test]
fn lc_counts_connections_and_wlc_divides_by_weight() {
    // Both over A (weight 1) and B (weight 4); overhead = 256·active + inactive.
    let mut w = worker();
    for (vip, svc, want) in [(VIP_LC, S_LC, "ABAB"), (VIP_WLC, S_WLC, "ABBB")] {
        let a = open(&mut w, client(1000), sa(vip, 80), 1);
        assert_eq!(a.rs(), 0, "idle: the first server");
        establish(&mut w, &a, 2);
        assert_eq!(counts(&w, svc, 0), (1, 0));
        // A: 256. B: 0, fewer connections: B.
        let b = open(&mut w, client(1001), sa(vip, 80), 3);
        assert_eq!(b.rs(), 1);
        establish(&mut w, &b, 4);
        assert_eq!(counts(&w, svc, 1), (1, 0));
        // A 256 vs B 256: lc ties to A; wlc compares 256/1 with 256/4 and takes B.
        let c = open(&mut w, client(1002), sa(vip, 80), 5);
        // Then lc: A 257 vs B 256 → B; wlc: B 257/4 still lighter → B.
        let d = open(&mut w, client(1003), sa(vip, 80), 5);
        assert_eq!(letters(&[a, b, c, d]), want, "service {svc}");
        check_accounts(&w, 0, 1);
    }
    // lc: many SYN-only connections on one server weigh 1 each, an established one 256.
    let mut w = worker();
    let first = open(&mut w, client(2000), sa(VIP_LC, 80), 1);
    establish(&mut w, &first, 1);
    let rest = open_many(&mut w, VIP_LC, 2001..2011, 2);
    assert_eq!(
        letters(&rest),
        "BBBBBBBBBB",
        "B has fewer (10 inactive < 1 active)"
    );
    assert_eq!(
        (counts(&w, S_LC, 0), counts(&w, S_LC, 1)),
        ((1, 0), (0, 10))
    );
    check_accounts(&w, 0, 1);
}

#[test]
fn sed_ignores_inactive_and_nq_takes_an_idle_server_at_once() {
    // Both over A (weight 1) and B (weight 3); expected delay (active + 1) / weight.
    let mut w = worker();
    let c1 = open(&mut w, client(1000), sa(VIP_SED, 80), 1);
    assert_eq!(c1.rs(), 1, "sed: 1/3 beats 1/1");
    establish(&mut w, &c1, 1);
    let c2 = open(&mut w, client(1001), sa(VIP_SED, 80), 2);
    let c3 = open(&mut w, client(1002), sa(VIP_SED, 80), 2);
    assert_eq!(
        letters(&[c2, c3]),
        "BB",
        "2/3 < 1; inactive connections ignored"
    );
    establish(&mut w, &c2, 3);
    let c4 = open(&mut w, client(1003), sa(VIP_SED, 80), 3);
    assert_eq!(c4.rs(), 0, "3/3 ties 1/1: the earlier server");
    assert_eq!(
        (counts(&w, S_SED, 0), counts(&w, S_SED, 1)),
        ((0, 1), (2, 1))
    );
    check_accounts(&w, 0, 1);

    let n1 = open(&mut w, client(2000), sa(VIP_NQ, 80), 4);
    assert_eq!(n1.rs(), 0, "nq: the first idle server, whatever its weight");
    establish(&mut w, &n1, 4);
    let n2 = open(&mut w, client(2001), sa(VIP_NQ, 80), 5);
    assert_eq!(n2.rs(), 1, "the next idle one");
    let n3 = open(&mut w, client(2002), sa(VIP_NQ, 80), 5);
    assert_eq!(n3.rs(), 1, "B still has no active connection");
    establish(&mut w, &n2, 6);
    let n4 = open(&mut w, client(2003), sa(VIP_NQ, 80), 6);
    assert_eq!(n4.rs(), 1, "none idle: sed, 2/3 < 2/1");
    assert_eq!((counts(&w, S_NQ, 0), counts(&w, S_NQ, 1)), ((1, 0), (1, 2)));
    check_accounts(&w, 0, 1);
}

#[test]
fn upper_threshold_overloads_and_recovers_below_three_quarters() {
    // rr over A (upper 2, lower 0) and B.
    let mut w = worker();
    let mut picks = open_many(&mut w, VIP_UPPER, 1000..1002, 0);
    assert!(!w.loads(S_UPPER)[0].overloaded);
    picks.extend(open_many(&mut w, VIP_UPPER, 1002..1003, 10));
    assert_eq!(letters(&picks), "ABA");
    assert!(w.loads(S_UPPER)[0].overloaded, "A at its upper threshold 2");
    check_accounts(&w, 0, 1);
    let more = open_many(&mut w, VIP_UPPER, 1003..1007, 10);
    assert_eq!(letters(&more), "BBBB", "new connections avoid A");
    // Established or not, A's count is what matters: still overloaded.
    establish(&mut w, &picks[0], 20);
    assert!(w.loads(S_UPPER)[0].overloaded);
    assert_eq!(letters(&open_many(&mut w, VIP_UPPER, 1007..1008, 20)), "B");
    // At 60 the two t=0 SYN_RECV connections go (A's first stays: it is established), then at
    // 70 A's second: A holds 1, 4·1 < 3·2, OVERLOAD cleared.
    assert_eq!(w.expire(60, 1024), 1, "B's first");
    assert!(w.loads(S_UPPER)[0].overloaded);
    assert_eq!(w.expire(70, 1024), 5, "A's second and B's t=10 ones");
    assert_eq!(counts(&w, S_UPPER, 0), (1, 0));
    assert!(!w.loads(S_UPPER)[0].overloaded, "below ¾ of upper");
    check_accounts(&w, 0, 1);
    // rr resumes: the last pick was B, so A.
    assert_eq!(letters(&open_many(&mut w, VIP_UPPER, 1008..1010, 71)), "AB");
    assert!(w.loads(S_UPPER)[0].overloaded, "A at 2 again");
    check_accounts(&w, 0, 1);
}

#[test]
fn lower_threshold_holds_overload_until_below_lower() {
    // rr over A (upper 3, lower 2) and B.
    let mut w = worker();
    let mut picks = open_many(&mut w, VIP_LOWER, 1000..1002, 0);
    picks.extend(open_many(&mut w, VIP_LOWER, 1002..1004, 10));
    picks.extend(open_many(&mut w, VIP_LOWER, 1004..1005, 20));
    assert_eq!(letters(&picks), "ABABA");
    assert!(w.loads(S_LOWER)[0].overloaded, "3 ≥ upper 3");
    assert_eq!(letters(&open_many(&mut w, VIP_LOWER, 1005..1007, 20)), "BB");
    assert_eq!(w.expire(60, 1024), 2);
    assert_eq!(counts(&w, S_LOWER, 0), (0, 2));
    assert!(w.loads(S_LOWER)[0].overloaded, "2 is not below lower 2");
    assert_eq!(letters(&open_many(&mut w, VIP_LOWER, 1007..1008, 60)), "B");
    assert_eq!(w.expire(70, 1024), 2);
    assert_eq!(counts(&w, S_LOWER, 0), (0, 1));
    assert!(!w.loads(S_LOWER)[0].overloaded, "1 < lower 2");
    assert_eq!(letters(&open_many(&mut w, VIP_LOWER, 1008..1009, 70)), "A");
    check_accounts(&w, 0, 1);
}

// ---------------------------------------------------------------------------------------------
// Malformed input per mode.

#[test]
fn malformed_input_per_mode_is_dropped_with_its_reason_and_changes_nothing() {
    use DropReason::*;
    let mut w = worker();
    let nat = open(&mut w, client(40000), sa(VIP_NAT, 80), 1);
    let fnat = open(&mut w, client(40001), sa(VIP_FNAT, 80), 1);
    let tun = Pkt::tcp((GW_MAC, EXT_MAC), client(40002), sa(VIP_TUN, 80), SYN);
    assert_eq!(send(&mut w, &tun.build(), EXT, 1).0, Verdict::Tx(INT));
    let udp_q = Pkt::udp((GW_MAC, EXT_MAC), client(5353), sa(VIP_NAT, 53), b"query");
    assert_eq!(send(&mut w, &udp_q.build(), EXT, 1).0, Verdict::Tx(INT));
    let mut udp_r = Pkt::udp((RS_MAC[0], INT_MAC), sa(RS[0], 53), client(5353), b"answer");
    udp_r.ttl = 64;

    // A TCP header cut to 12 bytes (IP total length says so, checksum right).
    let cut_tcp = |p: Pkt| with_ip(p.build()[..46].to_vec(), |ip| ip.set_total_len(32));
    let bad_ip_sum = |p: Pkt| {
        let mut f = p.build();
        f[24] ^= 0x5a;
        f
    };
    let data_offset = |p: Pkt, off: u8| {
        let mut f = p.build();
        f[46] = off << 4;
        f
    };
    let cases: Vec<(&str, Vec<u8>, u16, DropReason)> = vec![
        (
            "NAT reply cut inside the TCP header",
            cut_tcp(nat.server(ACK)),
            INT,
            L4Malformed,
        ),
        (
            "NAT reply with a bad IP checksum",
            bad_ip_sum(nat.server(ACK)),
            INT,
            Ipv4BadChecksum,
        ),
        (
            "NAT reply with data offset 4",
            data_offset(nat.server(ACK), 4),
            INT,
            L4Malformed,
        ),
        (
            "NAT reply with data offset past the segment",
            data_offset(nat.server(ACK), 15),
            INT,
            L4Malformed,
        ),
        (
            "NAT reply with total length past the frame",
            with_ip(nat.server(ACK).build(), |ip| ip.set_total_len(41)),
            INT,
            Ipv4Malformed,
        ),
        (
            "NAT reply with IHL 4",
            with_ip(nat.server(ACK).build(), |ip| ip.set_header_len(16)),
            INT,
            Ipv4Malformed,
        ),
        (
            "NAT request cut inside the TCP header",
            cut_tcp(nat.client(ACK)),
            EXT,
            L4Malformed,
        ),
        (
            "NAT request with a bad IP checksum",
            bad_ip_sum(nat.client(ACK)),
            EXT,
            Ipv4BadChecksum,
        ),
        (
            "first fragment (MF) to the NAT VIP",
            with_ip(nat.client(ACK).build(), |ip| ip.set_more_frags(true)),
            EXT,
            Fragment,
        ),
        (
            "later fragment (offset 1480) to the NAT VIP",
            with_ip(nat.client(ACK).build(), |ip| ip.set_frag_offset(1480)),
            EXT,
            Fragment,
        ),
        (
            "a fragmented SYN to the NAT VIP",
            with_ip(
                Pkt::tcp((GW_MAC, EXT_MAC), client(40100), sa(VIP_NAT, 80), SYN).build(),
                |ip| ip.set_more_frags(true),
            ),
            EXT,
            Fragment,
        ),
        (
            "UDP fragment to the NAT VIP",
            with_ip(udp_q.build(), |ip| ip.set_more_frags(true)),
            EXT,
            Fragment,
        ),
        (
            "UDP reply with a length past the packet",
            {
                let mut f = udp_r.build();
                f[38..40].copy_from_slice(&99u16.to_be_bytes());
                f
            },
            INT,
            L4Malformed,
        ),
        (
            "UDP reply with length 4",
            {
                let mut f = udp_r.build();
                f[38..40].copy_from_slice(&4u16.to_be_bytes());
                f
            },
            INT,
            L4Malformed,
        ),
        (
            "UDP reply with a bad IP checksum",
            bad_ip_sum(udp_r.clone()),
            INT,
            Ipv4BadChecksum,
        ),
        (
            "FullNAT reply cut inside the TCP header",
            cut_tcp(fnat.server(ACK)),
            INT,
            L4Malformed,
        ),
        (
            "FullNAT reply with a bad IP checksum",
            bad_ip_sum(fnat.server(ACK)),
            INT,
            Ipv4BadChecksum,
        ),
        (
            "fragment to the FullNAT VIP",
            with_ip(fnat.client(ACK).build(), |ip| ip.set_more_frags(true)),
            EXT,
            Fragment,
        ),
        (
            "tunnel request cut inside the TCP header",
            cut_tcp(tun.clone()),
            EXT,
            L4Malformed,
        ),
        (
            "tunnel request with a bad IP checksum",
            bad_ip_sum(tun.clone()),
            EXT,
            Ipv4BadChecksum,
        ),
        (
            "fragment to the tunnel VIP",
            with_ip(tun.build(), |ip| ip.set_frag_offset(8)),
            EXT,
            Fragment,
        ),
        (
            "3 bytes of TCP to the tunnel VIP",
            with_ip(tun.build()[..37].to_vec(), |ip| ip.set_total_len(23)),
            EXT,
            L4Malformed,
        ),
    ];
    let before: Vec<Conn> = w.conns().iter().map(|(_, c)| c).collect();
    let loads: Vec<_> = (0..=S_LOWER).map(|s| w.loads(s).to_vec()).collect();
    let counters = w.counters;
    for (what, frame, port, reason) in &cases {
        let (v, out) = send(&mut w, frame, *port, 5);
        assert_eq!(v, Verdict::Drop(*reason), "{what}");
        assert_eq!(&out, frame, "{what}: untouched");
    }
    let after: Vec<Conn> = w.conns().iter().map(|(_, c)| c).collect();
    assert_eq!(after, before, "no connection made, changed or refreshed");
    let loads_after: Vec<_> = (0..=S_LOWER).map(|s| w.loads(s).to_vec()).collect();
    assert_eq!(loads_after, loads);
    assert_eq!(
        w.counters.total_drops(),
        counters.total_drops() + cases.len() as u64
    );
    assert_eq!(
        (
            w.counters.forwarded,
            w.counters.replies,
            w.counters.connections
        ),
        (counters.forwarded, counters.replies, counters.connections)
    );
    check_accounts(&w, 0, 1);
}

/// Every prefix of a frame of each mode: a drop for what cannot hold the packet the IP header
/// declares, else exactly what the whole frame gives; never a panic.
#[test]
fn every_truncation_of_mode_frames_drops_or_completes() {
    let snap = snapshot(true);
    // (what, setup, frame, port)
    type Setup = fn(&mut Worker);
    let nat_open: Setup = |w| {
        open(w, client(40000), sa(VIP_NAT, 80), 1);
    };
    let fnat_open: Setup = |w| {
        open(w, client(40000), sa(VIP_FNAT, 80), 1);
    };
    let tun_open: Setup = |w| {
        let f = Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), SYN).build();
        assert_eq!(send(w, &f, EXT, 1).0, Verdict::Tx(INT));
    };
    let udp_open: Setup = |w| {
        let f = Pkt::udp((GW_MAC, EXT_MAC), client(5353), sa(VIP_NAT, 53), b"q").build();
        assert_eq!(send(w, &f, EXT, 1).0, Verdict::Tx(INT));
    };
    let none: Setup = |_| {};
    let mut udp_reply = Pkt::udp((RS_MAC[0], INT_MAC), sa(RS[0], 53), client(5353), b"answer");
    udp_reply.ttl = 64;
    let frames: Vec<(&str, Setup, Vec<u8>, u16)> = vec![
        (
            "NAT SYN",
            none,
            Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_NAT, 80), SYN)
                .opts(&SYN_OPTS)
                .build(),
            EXT,
        ),
        (
            "NAT reply",
            nat_open,
            Pkt::server(sa(RS[0], 8080), client(40000), SYN | ACK)
                .opts(&[2, 4, 5, 0xb4])
                .build(),
            INT,
        ),
        (
            "FullNAT reply",
            fnat_open,
            Pkt::server(sa(RS[0], 8080), sa(LIP[0], 1024), ACK)
                .payload(b"x")
                .build(),
            INT,
        ),
        ("UDP reply", udp_open, udp_reply.build(), INT),
        (
            "tunnel data, padded",
            tun_open,
            Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), ACK)
                .padded(60)
                .build(),
            EXT,
        ),
        (
            "tunnel data too big (frag needed)",
            tun_open,
            Pkt::tcp((GW_MAC, EXT_MAC), client(40000), sa(VIP_TUN, 80), ACK)
                .payload(&[1; 1460])
                .build(),
            EXT,
        ),
    ];
    for (what, setup, full, port) in frames {
        let mut w = worker_of(snap.clone(), 0, 1, 64);
        setup(&mut w);
        let (want, want_out) = send(&mut w, &full, port, 2);
        assert!(matches!(want, Verdict::Tx(_)), "{what}: {want:?}");
        let need = 14 + ip_total_len(&full);
        // Every length of the short frames; the start and the end of the long one.
        for len in (0..=full.len()).filter(|&l| l < 120 || l + 8 > need) {
            let mut w = worker_of(snap.clone(), 0, 1, 64);
            setup(&mut w);
            let (v, out) = send(&mut w, &full[..len], port, 2);
            if len < need {
                let reason = if len < 14 {
                    DropReason::RuntFrame
                } else {
                    DropReason::Ipv4Malformed
                };
                assert_eq!(v, Verdict::Drop(reason), "{what}: {len} bytes");
                assert_eq!(out, &full[..len], "{what}: {len} bytes untouched");
            } else {
                assert_eq!(v, want, "{what}: {len} bytes");
                assert_eq!(out, want_out, "{what}: {len} bytes, padding aside");
            }
            check_accounts(&w, 0, 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// On-link clients in a larger prefix.

/// BUG (pipeline.rs, `PeerCache`): the MACs of on-link clients, used for NAT and FullNAT
/// replies (`Worker::reply`, `NextHop::OnLink` arm), live in a 4096-slot direct-mapped cache
/// keyed by `(ip · 0x61C88647) >> 20`, one client per slot, overwritten by every request. Two
/// on-link clients that share a slot evict each other, and a reply to the evicted one is dropped
/// as `NeighUnresolved` although the connection is tracked and its client's MAC was seen. On a
/// /16 client network 10.201.0.2 and 10.201.10.26 share slot 3957 (and any network with more
/// than 4096 active on-link clients must collide). Replies must not depend on which other
/// client spoke last. Fails until fixed.
#[test]
fn replies_to_on_link_clients_do_not_depend_on_other_clients() {
    let text = PROFILE.replacen("10.201.0.10/24", "10.201.0.10/16", 1);
    let mut w = worker_of(snapshot_of(&text, true), 0, 1, 1024);
    let (x, x_mac) = (
        Ipv4Addr::new(10, 201, 0, 2),
        MacAddr([0x02, 0, 0, 0, 0, 0x62]),
    );
    let (y, y_mac) = (
        Ipv4Addr::new(10, 201, 10, 26),
        MacAddr([0x02, 0, 0, 0, 0, 0x63]),
    );
    let fx = open_from(&mut w, x_mac, sa(x, 41000), sa(VIP_NAT, 80), 1);
    let fy = open_from(&mut w, y_mac, sa(y, 42000), sa(VIP_NAT, 80), 1);
    let (v, out) = send(&mut w, &fy.server(SYN | ACK).build(), INT, 2);
    assert_eq!((v, &out[..6]), (Verdict::Tx(EXT), &y_mac.0[..]));
    // Y spoke last; X's server answers X.
    let (v, out) = send(&mut w, &fx.server(SYN | ACK).build(), INT, 2);
    assert_eq!(v, Verdict::Tx(EXT), "reply to on-link client {x}");
    assert_eq!(&out[..6], &x_mac.0, "to X's MAC");
}

// ---------------------------------------------------------------------------------------------
// The accounting invariant under any sequence.

#[derive(Debug, Clone)]
enum Op {
    /// A client segment (SYN or not) to one of the TCP VIPs.
    Client { vip: usize, port: u8, flags: u8 },
    /// The real server's segment for that client's connection (or a stray one).
    Server { vip: usize, port: u8, flags: u8 },
    /// UDP to VIP:53, or the server's answer.
    Udp { port: u8, reply: bool },
    /// Time passes; the timers run with a budget (maybe too small to catch up).
    Tick { secs: u8, budget: u8, run: bool },
}

const OP_VIPS: [Ipv4Addr; 7] = [
    VIP_NAT, VIP_FNAT, VIP_TUN, VIP_NAT2, VIP_UPPER, VIP_LOWER, VIP_WLC,
];
const OP_FLAGS: [u8; 9] = [
    SYN,
    SYN,
    SYN | ACK,
    ACK,
    ACK | PSH,
    FIN | ACK,
    RST,
    RST | ACK,
    PSH,
];

fn op() -> impl Strategy<Value = Op> {
    let vip = 0..OP_VIPS.len();
    let port = 0u8..6;
    let flags = proptest::sample::select(OP_FLAGS.to_vec());
    prop_oneof![
        4 => (vip.clone(), port.clone(), flags.clone())
            .prop_map(|(vip, port, flags)| Op::Client { vip, port, flags }),
        3 => (vip, port.clone(), flags).prop_map(|(vip, port, flags)| Op::Server { vip, port, flags }),
        1 => (port, any::<bool>()).prop_map(|(port, reply)| Op::Udp { port, reply }),
        2 => (any::<u8>(), any::<u8>(), any::<bool>())
            .prop_map(|(secs, budget, run)| Op::Tick { secs, budget, run }),
    ]
}

/// Runs `op` on worker 1 of 3; returns the frame sent, the port, and the verdict and output.
fn run_op(w: &mut Worker, op: &Op, now: &mut u32) -> Option<(Vec<u8>, Verdict, Vec<u8>)> {
    let (frame, port) = match *op {
        Op::Client { vip, port, flags } => (
            Pkt::tcp(
                (GW_MAC, EXT_MAC),
                client(30000 + u16::from(port)),
                sa(OP_VIPS[vip], 80),
                flags,
            )
            .build(),
            EXT,
        ),
        Op::Server { vip, port, flags } => {
            let cl = client(30000 + u16::from(port));
            let p = match conn_of(w, cl, sa(OP_VIPS[vip], 80)) {
                Some(c) if c.out_key().is_some() => {
                    let rs = sa(Ipv4Addr::from_bits(c.raddr), c.rport);
                    let peer = if c.laddr != 0 {
                        sa(Ipv4Addr::from_bits(c.laddr), c.lport)
                    } else {
                        cl
                    };
                    Pkt::server(rs, peer, flags)
                }
                _ => Pkt::server(sa(RS[0], 8080), cl, flags),
            };
            (p.build(), INT)
        }
        Op::Udp { port, reply } => {
            let cl = client(5300 + u16::from(port));
            if reply {
                (
                    Pkt::udp((RS_MAC[0], INT_MAC), sa(RS[0], 53), cl, b"a").build(),
                    INT,
                )
            } else {
                (
                    Pkt::udp((GW_MAC, EXT_MAC), cl, sa(VIP_NAT, 53), b"q").build(),
                    EXT,
                )
            }
        }
        Op::Tick { secs, budget, run } => {
            *now += u32::from(secs);
            if run {
                w.expire(*now, usize::from(budget) + 1);
            }
            return None;
        }
    };
    let (v, out) = send(w, &frame, port, *now);
    Some((frame, v, out))
}

proptest! {
    #[test]
    fn accounting_invariant_holds_for_any_sequence(ops in proptest::collection::vec(op(), 1..80)) {
        let mut w = worker_of(snapshot(true), 1, 3, 256);
        let mut now = 0u32;
        for op in &ops {
            if let Some((frame, v, out)) = run_op(&mut w, op, &mut now) {
                match v {
                    Verdict::Tx(_) => frame_checksums(&out),
                    Verdict::Drop(_) | Verdict::Consumed => prop_assert_eq!(&out, &frame),
                    // One worker owns every connection here: nothing is handed off.
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            check_accounts(&w, 1, 3);
        }
        // In the end everything expires and every count returns to zero.
        now += 2000;
        w.expire(now, 1 << 16);
        prop_assert!(w.conns().is_empty());
        check_accounts(&w, 1, 3);
        for s in 0..=S_LOWER {
            for l in w.loads(s) {
                prop_assert_eq!((l.active, l.inactive, l.overloaded), (0, 0, false));
            }
        }
    }
}

/// `out` equals `want` apart from the IPv4 and TCP/UDP checksum fields (one's complement has two
/// zeros; which one an incremental update lands on is free), and all of `out`'s checksums verify.
fn same_apart_from_checksums(out: &[u8], want: &[u8]) -> Result<(), TestCaseError> {
    prop_assert_eq!(out.len(), want.len());
    let l4_sum = if out[23] == ip_proto::TCP { 50 } else { 40 };
    let mask = |f: &[u8]| {
        let mut f = f.to_vec();
        f[24..26].fill(0);
        f[l4_sum..l4_sum + 2].fill(0);
        f
    };
    prop_assert_eq!(mask(out), mask(want));
    frame_checksums(out);
    if out[23] == ip_proto::UDP {
        prop_assert_eq!(
            out[40..42] == [0, 0],
            want[40..42] == [0, 0],
            "UDP checksum presence"
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn nat_and_fullnat_rewrites_are_exact_for_any_client_ports_and_payloads(
        host in any::<[u8; 3]>(),
        cport in 1u16..,
        udp in any::<bool>(),
        fullnat in any::<bool>(),
        udp_sum in any::<bool>(),
        ttl in 1u8..,
        ident in any::<u16>(),
        df in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..48),
        answer in proptest::collection::vec(any::<u8>(), 0..48),
        flags in proptest::sample::select(vec![ACK, ACK | PSH, FIN | ACK, RST, SYN | ACK]),
    ) {
        let cip = Ipv4Addr::new(100, 64 | (host[0] & 63), host[1], host[2]);
        let fullnat = fullnat && !udp;
        let mut w = worker();
        let (vip, rport) = match (udp, fullnat) {
            (true, _) => (sa(VIP_NAT, 53), 53),
            (false, false) => (sa(VIP_NAT, 80), 8080),
            (false, true) => (sa(VIP_FNAT, 80), 8080),
        };
        let mut q = if udp {
            Pkt::udp((GW_MAC, EXT_MAC), sa(cip, cport), vip, &payload)
        } else {
            Pkt::tcp((GW_MAC, EXT_MAC), sa(cip, cport), vip, SYN).payload(&payload)
        };
        q.ttl = ttl;
        q.ident = ident;
        q.df = df;
        q.udp_sum = udp_sum;
        let (v, out) = send(&mut w, &q.build(), EXT, 1);
        prop_assert_eq!(v, Verdict::Tx(INT));
        let peer = if fullnat { sa(LIP[0], 1024) } else { sa(cip, cport) };
        let rs = sa(RS[0], rport);
        let want = q.clone().l2(INT_MAC, RS_MAC[0]).from(peer).to(rs).build();
        same_apart_from_checksums(&out, &want)?;

        let mut r = if udp {
            Pkt::udp((RS_MAC[0], INT_MAC), rs, peer, &answer)
        } else {
            Pkt::server(rs, peer, flags).payload(&answer)
        };
        r.udp_sum = udp_sum;
        r.ident = ident.wrapping_add(1);
        let (v, out) = send(&mut w, &r.build(), INT, 2);
        prop_assert_eq!(v, Verdict::Tx(EXT));
        let want = r.l2(EXT_MAC, GW_MAC).from(vip).to(sa(cip, cport)).build();
        same_apart_from_checksums(&out, &want)?;
        check_accounts(&w, 0, 1);
    }
}
