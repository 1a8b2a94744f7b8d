//! Frames the generator sends and what it makes of the frames that come back.
//!
//! A [`Template`] is one request frame (client → VIP:vport, with given TCP flags or UDP)
//! whose fixed part and partial checksums are computed once; [`Template::write`] stamps a flow
//! (client address and port) and a [`Stamp`] (flow number and TSC) into a buffer with two
//! cheap incremental checksums, so building a packet costs a copy and a few adds.
//!
//! [`Checker::inspect`] reads a returned frame the way its receiver would (a real server for
//! requests the director forwarded, a client for replies) and says what it is, or why it is
//! wrong: wrong MAC, bad IPv4 or L4 checksum, a tuple that does not belong to the flow in its
//! stamp, a bad tunnel header, an unknown flow. Which real server (and FullNAT local port) a
//! flow got is kept by [`Expect`], which refuses a change. [`answer_in_place`] turns a request
//! into the real server's reply (NAT, FullNAT).

use std::net::Ipv4Addr;

use rvs_dataplane::wire::{
    ArpPacket, EthernetFrame, Ipv4Packet, MacAddr, TcpPacket, UdpPacket, arp_op, checksum,
    ether_type, ip_proto, tcp_flag,
};

use crate::plan::{Mode, Plan, Proto};

/// Ethernet header length.
pub const ETH: usize = 14;
/// Bytes of the stamp at the start of the L4 payload: flow (4) and TSC (low 48 bits, 6).
pub const STAMP_LEN: usize = 10;
/// Largest frame a template holds.
pub const MAX_FRAME: usize = 1514;
/// Bytes an IP-in-IP tunnel adds.
pub const TUN_OVERHEAD: usize = 20;
const TSC_MASK: u64 = (1 << 48) - 1;

/// What the payload carries: the flow the packet belongs to and when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Flow number.
    pub flow: u32,
    /// TSC at send, low 48 bits.
    pub tsc: u64,
}

impl Stamp {
    /// Reads a stamp from the first [`STAMP_LEN`] bytes of `p`.
    #[inline]
    pub fn read(p: &[u8]) -> Option<Stamp> {
        let p = p.get(..STAMP_LEN)?;
        let flow = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        let tsc = u64::from_be_bytes([0, 0, p[4], p[5], p[6], p[7], p[8], p[9]]);
        Some(Stamp { flow, tsc })
    }

    /// TSC ticks from the stamp to `now` (48-bit wrap-around).
    #[inline]
    pub fn age(&self, now: u64) -> u64 {
        (now & TSC_MASK).wrapping_sub(self.tsc) & TSC_MASK
    }
}

/// The smallest frame that carries a stamp for `proto`.
pub fn min_frame(proto: Proto) -> usize {
    ETH + 20 + l4_header_len(proto) + STAMP_LEN
}

fn l4_header_len(proto: Proto) -> usize {
    match proto {
        Proto::Tcp => 20,
        Proto::Udp => 8,
    }
}

/// A precomputed request frame.
#[derive(Clone)]
pub struct Template {
    frame: Box<[u8; MAX_FRAME]>,
    len: usize,
    proto: Proto,
    /// Partial sum of the IPv4 header without the source address.
    ip_sum: u32,
    /// Partial sum of pseudo-header and L4 segment without source address, source port and
    /// stamp.
    l4_sum: u32,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("len", &self.len)
            .field("proto", &self.proto)
            .finish()
    }
}

const L4: usize = ETH + 20;

impl Template {
    /// A request of `plan`'s protocol from a client to VIP:vport, sent from the generator's
    /// MAC to the director's; `flags` are the TCP flags (ignored for UDP). The frame is
    /// `plan.size` bytes, at least [`min_frame`].
    pub fn request(plan: &Plan, flags: u8) -> Template {
        let proto = plan.proto;
        let len = plan.size.clamp(min_frame(proto), MAX_FRAME);
        let mut f = Box::new([0u8; MAX_FRAME]);
        {
            let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
            eth.set_dst(plan.director_mac);
            eth.set_src(plan.pktgen_mac);
            eth.set_ethertype(ether_type::IPV4);
        }
        let ip_len = (len - ETH) as u16;
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH..len]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_total_len(ip_len);
            ip.set_dont_frag(true);
            ip.set_ttl(64);
            ip.set_protocol(proto.ip_proto());
            ip.set_src(Ipv4Addr::UNSPECIFIED);
            ip.set_dst(plan.vip);
            ip.set_checksum(0);
        }
        let ip_sum = checksum::sum(&f[ETH..L4]);
        let l4_len = ip_len - 20;
        match proto {
            Proto::Tcp => {
                let mut t = TcpPacket::new_unchecked(&mut f[L4..len]);
                t.set_src_port(0);
                t.set_dst_port(plan.vport);
                t.set_seq(1);
                t.set_ack(if flags & tcp_flag::ACK != 0 { 1 } else { 0 });
                t.set_header_len(20);
                t.set_flags(flags);
                t.set_window(65535);
                t.set_checksum(0);
            }
            Proto::Udp => {
                let mut u = UdpPacket::new_unchecked(&mut f[L4..len]);
                u.set_src_port(0);
                u.set_dst_port(plan.vport);
                u.set_len(l4_len);
                u.set_checksum(0);
            }
        }
        let l4_sum =
            checksum::pseudo_header_v4(Ipv4Addr::UNSPECIFIED, plan.vip, proto.ip_proto(), l4_len)
                + checksum::sum(&f[L4..len]);
        Template {
            frame: f,
            len,
            proto,
            ip_sum,
            l4_sum,
        }
    }

    /// Frame length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never empty; for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes flow `flow`'s frame stamped with `tsc` into `out` (at least [`len`](Self::len)
    /// bytes).
    #[inline]
    pub fn write(&self, out: &mut [u8], flow: u32, tsc: u64) {
        let out = &mut out[..self.len];
        out.copy_from_slice(&self.frame[..self.len]);
        let (ip, port) = Plan::client(flow);
        out[ETH + 12..ETH + 16].copy_from_slice(&ip.to_be_bytes());
        let ip_words = (ip >> 16) + (ip & 0xffff);
        let ipc = !checksum::fold(self.ip_sum + ip_words);
        out[ETH + 10..ETH + 12].copy_from_slice(&ipc.to_be_bytes());
        out[L4..L4 + 2].copy_from_slice(&port.to_be_bytes());
        let tsc = tsc & TSC_MASK;
        let at = L4 + l4_header_len(self.proto);
        out[at..at + 4].copy_from_slice(&flow.to_be_bytes());
        out[at + 4..at + 10].copy_from_slice(&tsc.to_be_bytes()[2..]);
        let stamp_words = (flow >> 16)
            + (flow & 0xffff)
            + ((tsc >> 32) as u32)
            + ((tsc >> 16) as u32 & 0xffff)
            + (tsc as u32 & 0xffff);
        let mut c = !checksum::fold(self.l4_sum + ip_words + u32::from(port) + stamp_words);
        let at = match self.proto {
            Proto::Tcp => L4 + 16,
            Proto::Udp => {
                if c == 0 {
                    c = 0xffff;
                }
                L4 + 6
            }
        };
        out[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// Why a returned frame is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Mismatch {
    /// Too short or not a well-formed IPv4 TCP/UDP packet.
    Malformed = 0,
    /// Source or destination MAC is not what the mode gives.
    WrongMac = 1,
    /// IPv4 header checksum does not verify.
    IpChecksum = 2,
    /// TCP or UDP checksum does not verify.
    L4Checksum = 3,
    /// Addresses or ports are not the flow's rewrite.
    WrongTuple = 4,
    /// The stamp names no flow of the plan.
    UnknownFlow = 5,
    /// A flow went to another real server than its first packet did.
    WrongServer = 6,
    /// The outer IP-in-IP header is wrong.
    BadTunnel = 7,
    /// FullNAT: the local address or port of a flow changed, or is not one of the pool.
    WrongLocal = 8,
}

impl Mismatch {
    /// Number of kinds.
    pub const COUNT: usize = 9;
    /// All kinds in index order.
    pub const ALL: [Mismatch; Self::COUNT] = [
        Mismatch::Malformed,
        Mismatch::WrongMac,
        Mismatch::IpChecksum,
        Mismatch::L4Checksum,
        Mismatch::WrongTuple,
        Mismatch::UnknownFlow,
        Mismatch::WrongServer,
        Mismatch::BadTunnel,
        Mismatch::WrongLocal,
    ];

    /// Stable name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mismatch::Malformed => "malformed",
            Mismatch::WrongMac => "wrong_mac",
            Mismatch::IpChecksum => "ip_checksum",
            Mismatch::L4Checksum => "l4_checksum",
            Mismatch::WrongTuple => "wrong_tuple",
            Mismatch::UnknownFlow => "unknown_flow",
            Mismatch::WrongServer => "wrong_server",
            Mismatch::BadTunnel => "bad_tunnel",
            Mismatch::WrongLocal => "wrong_local",
        }
    }
}

/// What a received frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The director asks who has one of the real servers' addresses.
    ArpRequest {
        /// Index of the real server asked for.
        rs: usize,
        /// The asker's MAC.
        from: MacAddr,
    },
    /// A request the director forwarded, as real server `rs` receives it.
    ToServer {
        /// Real server.
        rs: usize,
        /// Flow (from the stamp, checked against the tuple where the tuple names it).
        flow: u32,
        /// TCP flags (0 for UDP).
        flags: u8,
        /// Send time.
        tsc: u64,
        /// FullNAT: the local address index and port the director chose.
        local: Option<(u16, u16)>,
    },
    /// A packet back at its client: a NAT/FullNAT reply, or a frame testpmd returned.
    ToClient {
        /// Flow.
        flow: u32,
        /// TCP flags (0 for UDP).
        flags: u8,
        /// Send time.
        tsc: u64,
    },
    /// Wrong in this way.
    Bad(Mismatch),
    /// Not ours to judge (gratuitous ARP, other protocols).
    Ignored,
}

/// Reads returned frames for one plan.
#[derive(Debug, Clone)]
pub struct Checker {
    plan: Plan,
}

/// Parsed IPv4 + L4 fields of a packet whose checksums verified.
#[derive(Debug, Clone, Copy)]
struct Parsed {
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
    flags: u8,
    stamp: Stamp,
}

impl Checker {
    /// A checker for `plan`.
    pub fn new(plan: &Plan) -> Checker {
        Checker { plan: plan.clone() }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Says what `frame` is.
    #[inline]
    pub fn inspect(&self, frame: &[u8]) -> Seen {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Seen::Bad(Mismatch::Malformed);
        };
        let p = &self.plan;
        match eth.ethertype() {
            ether_type::ARP => return self.arp(eth.payload()),
            ether_type::IPV4 => {}
            _ => return Seen::Ignored,
        }
        let dst = &frame[0..6];
        let src = &frame[6..12];
        if p.mode == Mode::Testpmd {
            // io forwarding returns the frame untouched.
            if dst != p.director_mac.0 || src != p.pktgen_mac.0 {
                return Seen::Bad(Mismatch::WrongMac);
            }
            return match self.l3(&frame[ETH..]) {
                Ok(x) => self
                    .request_tuple(&x)
                    .map_or_else(Seen::Bad, |flow| Seen::ToClient {
                        flow,
                        flags: x.flags,
                        tsc: x.stamp.tsc,
                    }),
                Err(m) => Seen::Bad(m),
            };
        }
        if src != p.director_mac.0 {
            return Seen::Bad(Mismatch::WrongMac);
        }
        if dst == p.pktgen_mac.0 {
            return self.reply(&frame[ETH..]);
        }
        let Some(rs) = p.rs_of_mac(dst) else {
            return Seen::Bad(Mismatch::WrongMac);
        };
        let ip = match p.mode {
            Mode::Tun => match self.outer(&frame[ETH..], rs) {
                Ok(inner) => inner,
                Err(m) => return Seen::Bad(m),
            },
            _ => &frame[ETH..],
        };
        let x = match self.l3(ip) {
            Ok(x) => x,
            Err(m) => return Seen::Bad(m),
        };
        let to_server = |flow, local| Seen::ToServer {
            rs,
            flow,
            flags: x.flags,
            tsc: x.stamp.tsc,
            local,
        };
        match p.mode {
            Mode::Dr | Mode::Tun => self
                .request_tuple(&x)
                .map_or_else(Seen::Bad, |f| to_server(f, None)),
            Mode::Nat => {
                if x.dst != p.rs(rs).to_bits() || x.dport != p.rport() {
                    return Seen::Bad(Mismatch::WrongTuple);
                }
                match p.flow_of(x.src, x.sport) {
                    Some(f) if f == x.stamp.flow => to_server(f, None),
                    Some(_) => Seen::Bad(Mismatch::WrongTuple),
                    None => Seen::Bad(self.unknown_or_wrong(x.stamp.flow)),
                }
            }
            Mode::Fnat => {
                if x.dst != p.rs(rs).to_bits() || x.dport != p.rport() {
                    return Seen::Bad(Mismatch::WrongTuple);
                }
                if x.stamp.flow >= p.known_flows() {
                    return Seen::Bad(Mismatch::UnknownFlow);
                }
                match p.lip_index(x.src) {
                    Some(l) if x.sport >= 1024 => {
                        to_server(x.stamp.flow, Some((l as u16, x.sport)))
                    }
                    _ => Seen::Bad(Mismatch::WrongLocal),
                }
            }
            Mode::Testpmd => Seen::Ignored,
        }
    }

    fn unknown_or_wrong(&self, stamped: u32) -> Mismatch {
        if stamped >= self.plan.known_flows() {
            Mismatch::UnknownFlow
        } else {
            Mismatch::WrongTuple
        }
    }

    /// A request as the client sent it: client(flow) → VIP:vport.
    #[inline]
    fn request_tuple(&self, x: &Parsed) -> Result<u32, Mismatch> {
        let p = &self.plan;
        if x.dst != p.vip.to_bits() || x.dport != p.vport {
            return Err(Mismatch::WrongTuple);
        }
        match p.flow_of(x.src, x.sport) {
            Some(f) if f == x.stamp.flow => Ok(f),
            Some(_) => Err(Mismatch::WrongTuple),
            None => Err(self.unknown_or_wrong(x.stamp.flow)),
        }
    }

    /// NAT / FullNAT reply at the client: VIP:vport → client(flow).
    #[inline]
    fn reply(&self, ip: &[u8]) -> Seen {
        let p = &self.plan;
        if !p.mode.sees_replies() {
            return Seen::Bad(Mismatch::WrongMac);
        }
        let x = match self.l3(ip) {
            Ok(x) => x,
            Err(m) => return Seen::Bad(m),
        };
        if x.src != p.vip.to_bits() || x.sport != p.vport {
            return Seen::Bad(Mismatch::WrongTuple);
        }
        match p.flow_of(x.dst, x.dport) {
            Some(f) if f == x.stamp.flow => Seen::ToClient {
                flow: f,
                flags: x.flags,
                tsc: x.stamp.tsc,
            },
            Some(_) => Seen::Bad(Mismatch::WrongTuple),
            None => Seen::Bad(self.unknown_or_wrong(x.stamp.flow)),
        }
    }

    /// Checks the outer IP-in-IP header toward real server `rs`; returns the inner packet.
    #[inline]
    fn outer<'b>(&self, ip: &'b [u8], rs: usize) -> Result<&'b [u8], Mismatch> {
        let outer = Ipv4Packet::new_checked(ip).map_err(|_| Mismatch::BadTunnel)?;
        if outer.protocol() != ip_proto::IPIP
            || outer.header_len() != 20
            || outer.src() != self.plan.dip
            || outer.dst() != self.plan.rs(rs)
            || outer.is_fragment()
        {
            return Err(Mismatch::BadTunnel);
        }
        if !outer.verify_checksum() {
            return Err(Mismatch::IpChecksum);
        }
        let inner = &ip[20..usize::from(outer.total_len())];
        let inner_len = Ipv4Packet::new_checked(inner)
            .map_err(|_| Mismatch::Malformed)?
            .total_len();
        if usize::from(inner_len) != inner.len() {
            return Err(Mismatch::BadTunnel);
        }
        Ok(inner)
    }

    /// Parses and verifies an IPv4 TCP/UDP packet of the plan's protocol with a stamp.
    #[inline]
    fn l3(&self, ip: &[u8]) -> Result<Parsed, Mismatch> {
        let pkt = Ipv4Packet::new_checked(ip).map_err(|_| Mismatch::Malformed)?;
        if pkt.is_fragment() || pkt.protocol() != self.plan.proto.ip_proto() {
            return Err(Mismatch::Malformed);
        }
        if !pkt.verify_checksum() {
            return Err(Mismatch::IpChecksum);
        }
        let (src, dst) = (pkt.src(), pkt.dst());
        let l4 = pkt.payload();
        let (sport, dport, flags, payload) = match self.plan.proto {
            Proto::Tcp => {
                let t = TcpPacket::new_checked(l4).map_err(|_| Mismatch::Malformed)?;
                if !t.verify_checksum(src, dst) {
                    return Err(Mismatch::L4Checksum);
                }
                (
                    t.src_port(),
                    t.dst_port(),
                    t.flags(),
                    &l4[usize::from(t.header_len())..],
                )
            }
            Proto::Udp => {
                let u = UdpPacket::new_checked(l4).map_err(|_| Mismatch::Malformed)?;
                if !u.verify_checksum(src, dst) {
                    return Err(Mismatch::L4Checksum);
                }
                (u.src_port(), u.dst_port(), 0, &l4[8..])
            }
        };
        let stamp = Stamp::read(payload).ok_or(Mismatch::Malformed)?;
        Ok(Parsed {
            src: src.to_bits(),
            dst: dst.to_bits(),
            sport,
            dport,
            flags,
            stamp,
        })
    }

    fn arp(&self, payload: &[u8]) -> Seen {
        let Ok(a) = ArpPacket::new_checked(payload) else {
            return Seen::Ignored;
        };
        if a.operation() != arp_op::REQUEST {
            return Seen::Ignored;
        }
        match self.plan.rs_index(a.target_ip().to_bits()) {
            Some(rs) if self.plan.mode != Mode::Testpmd => Seen::ArpRequest {
                rs,
                from: a.sender_mac(),
            },
            _ => Seen::Ignored,
        }
    }
}

/// Turns a request that real server `rs` received (NAT or FullNAT, as the director rewrote
/// it) into that server's reply, in place: addresses, ports and MACs swapped, TCP flags set to
/// `flags`. The stamp stays, so the client measures the whole round trip. Swapping keeps both
/// checksums right; only the flags change the TCP one.
#[inline]
pub fn answer_in_place(frame: &mut [u8], plan: &Plan, rs: usize, flags: u8) {
    frame[0..6].copy_from_slice(&plan.director_mac.0);
    frame[6..12].copy_from_slice(&Plan::rs_mac(rs).0);
    let ip = ETH;
    for i in 0..4 {
        frame.swap(ip + 12 + i, ip + 16 + i);
    }
    let l4 = ip + usize::from(frame[ip] & 0x0f) * 4;
    for i in 0..2 {
        frame.swap(l4 + i, l4 + 2 + i);
    }
    if plan.proto == Proto::Tcp {
        let old = u16::from_be_bytes([frame[l4 + 12], frame[l4 + 13]]);
        let new = (old & 0xff00) | u16::from(flags);
        frame[l4 + 13] = flags;
        let c = u16::from_be_bytes([frame[l4 + 16], frame[l4 + 17]]);
        let c = checksum::update16(c, old, new);
        frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    }
}

/// The real server's answer to a request with TCP `flags` (`None`: it does not answer).
/// UDP (flags 0) is echoed; a SYN gets SYN+ACK; a FIN gets FIN+ACK; data is echoed with the
/// same flags; a bare ACK is not answered.
#[inline]
pub fn server_answer(proto: Proto, flags: u8) -> Option<u8> {
    use tcp_flag::{ACK, FIN, PSH, SYN};
    if proto == Proto::Udp {
        return Some(0);
    }
    if flags & SYN != 0 {
        Some(SYN | ACK)
    } else if flags & FIN != 0 {
        Some(FIN | ACK)
    } else if flags & PSH != 0 {
        Some(flags)
    } else {
        None
    }
}

/// Per-flow facts learned from returned packets: the real server each flow went to (and for
/// FullNAT its local address and port), which must never change, and how many flows each real
/// server got.
#[derive(Debug)]
pub struct Expect {
    server: Vec<u8>,
    local: Vec<u32>,
    per_server: Vec<u64>,
}

const UNKNOWN: u8 = u8::MAX;

impl Expect {
    /// Room for `flows` flows over `servers` servers; `fnat` keeps local ports too.
    pub fn new(flows: u32, servers: usize, fnat: bool) -> Expect {
        Expect {
            server: vec![UNKNOWN; flows as usize],
            local: if fnat {
                vec![0; flows as usize]
            } else {
                Vec::new()
            },
            per_server: vec![0; servers],
        }
    }

    /// Records that `flow` reached server `rs`; false if it went elsewhere before.
    #[inline]
    pub fn server(&mut self, flow: u32, rs: usize) -> bool {
        let Some(slot) = self.server.get_mut(flow as usize) else {
            return false;
        };
        if *slot == UNKNOWN {
            *slot = rs as u8;
            self.per_server[rs] += 1;
            true
        } else {
            *slot == rs as u8
        }
    }

    /// Records FullNAT's local address index and port for `flow`; false if they changed.
    #[inline]
    pub fn local(&mut self, flow: u32, lip: u16, lport: u16) -> bool {
        let v = (u32::from(lip) + 1) << 16 | u32::from(lport);
        match self.local.get_mut(flow as usize) {
            Some(s) if *s == 0 => {
                *s = v;
                true
            }
            Some(s) => *s == v,
            None => false,
        }
    }

    /// Flows first seen at each server.
    pub fn per_server(&self) -> &[u64] {
        &self.per_server
    }
}

/// Whether round robin spread flows evenly: the busiest and the idlest server differ by at
/// most one flow per 1000 (at least one flow).
pub fn even_spread(counts: &[u64]) -> bool {
    let (Some(&max), Some(&min)) = (counts.iter().max(), counts.iter().min()) else {
        return true;
    };
    let total: u64 = counts.iter().sum();
    max - min <= (total / 1000).max(1)
}

/// Replaces the frame in `buf` (a request the director handed to a DR/TUN real server, or a
/// reply at the client) with the client's next packet of the same flow from `template`.
#[inline]
pub fn rewrite_as(buf: &mut [u8], template: &Template, flow: u32, tsc: u64) {
    template.write(buf, flow, tsc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_dataplane::wire::{MacAddr, tcp_flag};

    fn plan(mode: Mode, proto: Proto) -> Plan {
        Plan::new(mode, proto, 200_000, 1000, 4)
    }

    fn frame(t: &Template, flow: u32, tsc: u64) -> Vec<u8> {
        let mut v = vec![0u8; t.len()];
        t.write(&mut v, flow, tsc);
        v
    }

    #[test]
    fn templates_carry_valid_checksums_for_every_flow() {
        for proto in [Proto::Tcp, Proto::Udp] {
            let p = plan(Mode::Dr, proto);
            let t = Template::request(&p, tcp_flag::PSH | tcp_flag::ACK);
            assert_eq!(t.len(), 64);
            for (flow, tsc) in [
                (0, 0),
                (1, 5),
                (70_000, u64::MAX),
                (199_999, 0x1234_5678_9abc),
            ] {
                let f = frame(&t, flow, tsc);
                let ip = Ipv4Packet::new_checked(&f[ETH..]).unwrap();
                assert!(ip.verify_checksum(), "{proto:?} flow {flow}");
                let (cip, cport) = Plan::client(flow);
                assert_eq!(ip.src().to_bits(), cip);
                assert_eq!(ip.dst(), p.vip);
                let ok = match proto {
                    Proto::Tcp => {
                        let t = TcpPacket::new_checked(ip.payload()).unwrap();
                        assert_eq!(t.src_port(), cport);
                        t.verify_checksum(ip.src(), ip.dst())
                    }
                    Proto::Udp => {
                        let u = UdpPacket::new_checked(ip.payload()).unwrap();
                        assert_eq!(u.src_port(), cport);
                        u.verify_checksum(ip.src(), ip.dst())
                    }
                };
                assert!(ok, "{proto:?} flow {flow}: L4 checksum");
                let at = L4 + l4_header_len(proto);
                let s = Stamp::read(&f[at..]).unwrap();
                assert_eq!(s.flow, flow);
                assert_eq!(s.tsc, tsc & TSC_MASK);
            }
        }
    }

    #[test]
    fn larger_frames_are_padded_and_still_valid() {
        let mut p = plan(Mode::Dr, Proto::Udp);
        p.size = 1000;
        let t = Template::request(&p, 0);
        let f = frame(&t, 42, 7);
        assert_eq!(f.len(), 1000);
        let ip = Ipv4Packet::new_checked(&f[ETH..]).unwrap();
        assert_eq!(usize::from(ip.total_len()), 1000 - ETH);
        let u = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(u.verify_checksum(ip.src(), ip.dst()));
    }

    #[test]
    fn stamp_age_wraps_at_48_bits() {
        let s = Stamp {
            flow: 0,
            tsc: TSC_MASK - 9,
        };
        assert_eq!(s.age(10), 20);
        assert_eq!(Stamp { flow: 0, tsc: 100 }.age(150), 50);
    }

    /// What the director does in each mode (a minimal model for the tests).
    fn forward(p: &Plan, f: &mut Vec<u8>, rs: usize, lip: Option<(Ipv4Addr, u16)>) {
        use rvs_dataplane::fwd;
        f[0..6].copy_from_slice(&Plan::rs_mac(rs).0);
        f[6..12].copy_from_slice(&p.director_mac.0);
        match p.mode {
            Mode::Dr | Mode::Testpmd => {}
            Mode::Nat => {
                fwd::nat::rewrite_end(&mut f[ETH..], fwd::nat::End::Dst, p.rs(rs), p.rport())
            }
            Mode::Fnat => {
                let (l, lp) = lip.unwrap();
                fwd::fnat::request(&mut f[ETH..], l, lp, p.rs(rs), p.rport());
            }
            Mode::Tun => {
                let inner_len = (f.len() - ETH) as u16;
                f.splice(ETH..ETH, [0u8; TUN_OVERHEAD]);
                fwd::tun::write_outer(
                    &mut f[ETH..],
                    rvs_config::TunnelKind::Ipip,
                    0,
                    p.dip,
                    p.rs(rs),
                    inner_len,
                    0,
                    true,
                    0,
                    0,
                );
            }
        }
    }

    fn reply_through_director(p: &Plan, f: &mut [u8], flow: u32) {
        use rvs_dataplane::fwd;
        let (cip, cport) = Plan::client(flow);
        match p.mode {
            Mode::Nat => fwd::nat::rewrite_end(&mut f[ETH..], fwd::nat::End::Src, p.vip, p.vport),
            Mode::Fnat => fwd::fnat::reply(
                &mut f[ETH..],
                p.vip,
                p.vport,
                Ipv4Addr::from_bits(cip),
                cport,
            ),
            _ => unreachable!(),
        }
        f[0..6].copy_from_slice(&p.pktgen_mac.0);
        f[6..12].copy_from_slice(&p.director_mac.0);
    }

    #[test]
    fn forwarded_requests_are_recognised_in_every_mode() {
        for mode in Mode::DIRECTOR {
            for proto in [Proto::Tcp, Proto::Udp] {
                let p = plan(mode, proto);
                let c = Checker::new(&p);
                let t = Template::request(&p, tcp_flag::SYN);
                let mut f = frame(&t, 77_777, 99);
                let lip = (mode == Mode::Fnat).then(|| (p.lips[1], 4000));
                forward(&p, &mut f, 2, lip);
                let seen = c.inspect(&f);
                let flags = if proto == Proto::Tcp {
                    tcp_flag::SYN
                } else {
                    0
                };
                assert_eq!(
                    seen,
                    Seen::ToServer {
                        rs: 2,
                        flow: 77_777,
                        flags,
                        tsc: 99,
                        local: lip.map(|_| (1, 4000)),
                    },
                    "{mode} {proto:?}"
                );
            }
        }
    }

    #[test]
    fn replies_through_the_director_reach_their_client() {
        for mode in [Mode::Nat, Mode::Fnat] {
            for proto in [Proto::Tcp, Proto::Udp] {
                let p = plan(mode, proto);
                let c = Checker::new(&p);
                let t = Template::request(&p, tcp_flag::SYN);
                let mut f = frame(&t, 123_456, 5);
                forward(
                    &p,
                    &mut f,
                    3,
                    (mode == Mode::Fnat).then(|| (p.lips[0], 1024)),
                );
                let answer = server_answer(proto, tcp_flag::SYN).unwrap();
                answer_in_place(&mut f, &p, 3, answer);
                // The server's reply is itself valid on the wire.
                let ip = Ipv4Packet::new_checked(&f[ETH..]).unwrap();
                assert!(ip.verify_checksum());
                assert_eq!(ip.src(), p.rs(3));
                assert_eq!(&f[0..6], &p.director_mac.0);
                reply_through_director(&p, &mut f, 123_456);
                assert_eq!(
                    c.inspect(&f),
                    Seen::ToClient {
                        flow: 123_456,
                        flags: answer,
                        tsc: 5
                    },
                    "{mode} {proto:?}"
                );
            }
        }
    }

    #[test]
    fn testpmd_echo_is_recognised() {
        let p = plan(Mode::Testpmd, Proto::Tcp);
        let t = Template::request(&p, tcp_flag::PSH | tcp_flag::ACK);
        let f = frame(&t, 3, 4);
        assert_eq!(
            Checker::new(&p).inspect(&f),
            Seen::ToClient {
                flow: 3,
                flags: tcp_flag::PSH | tcp_flag::ACK,
                tsc: 4
            }
        );
    }

    #[test]
    fn corruptions_are_named() {
        let p = plan(Mode::Nat, Proto::Tcp);
        let c = Checker::new(&p);
        let t = Template::request(&p, tcp_flag::PSH | tcp_flag::ACK);
        let good = {
            let mut f = frame(&t, 10, 1);
            forward(&p, &mut f, 1, None);
            f
        };
        assert!(matches!(
            c.inspect(&good),
            Seen::ToServer {
                rs: 1,
                flow: 10,
                ..
            }
        ));

        let mut f = good.clone();
        f[6] ^= 1; // not from the director
        assert_eq!(c.inspect(&f), Seen::Bad(Mismatch::WrongMac));

        let mut f = good.clone();
        f[ETH + 8] = 3; // TTL changed, IP checksum not updated
        assert_eq!(c.inspect(&f), Seen::Bad(Mismatch::IpChecksum));

        let mut f = good.clone();
        let last = f.len() - 1;
        f[last] ^= 0xff; // payload byte flipped
        assert_eq!(c.inspect(&f), Seen::Bad(Mismatch::L4Checksum));

        // Sent to server 1's MAC but addressed to server 2: wrong rewrite.
        let mut f = frame(&t, 10, 1);
        forward(&p, &mut f, 2, None);
        f[0..6].copy_from_slice(&Plan::rs_mac(1).0);
        assert_eq!(c.inspect(&f), Seen::Bad(Mismatch::WrongTuple));

        // A stamp naming another flow than the tuple (checksums made right again).
        let mut f = frame(&t, 10, 1);
        f[L4 + 20..L4 + 24].copy_from_slice(&11u32.to_be_bytes());
        {
            let src = Ipv4Addr::from_bits(Plan::client(10).0);
            let mut tcp = TcpPacket::new_unchecked(&mut f[L4..]);
            tcp.fill_checksum(src, p.vip);
        }
        forward(&p, &mut f, 1, None);
        assert_eq!(c.inspect(&f), Seen::Bad(Mismatch::WrongTuple));

        // Not IPv4 at all: ignored, not a mismatch.
        let mut f = good.clone();
        f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(c.inspect(&f), Seen::Ignored);
        assert_eq!(c.inspect(&good[..20]), Seen::Bad(Mismatch::Malformed));
    }

    #[test]
    fn tunnel_header_is_checked() {
        let p = plan(Mode::Tun, Proto::Udp);
        let c = Checker::new(&p);
        let t = Template::request(&p, 0);
        let mut f = frame(&t, 9, 9);
        forward(&p, &mut f, 0, None);
        assert!(matches!(
            c.inspect(&f),
            Seen::ToServer { rs: 0, flow: 9, .. }
        ));
        // Outer destination is another server than the MAC says.
        let mut g = f.clone();
        g[0..6].copy_from_slice(&Plan::rs_mac(1).0);
        assert_eq!(c.inspect(&g), Seen::Bad(Mismatch::BadTunnel));
        // A DR frame where a tunnel was due.
        let mut h = frame(&t, 9, 9);
        forward(
            &Plan {
                mode: Mode::Dr,
                ..p.clone()
            },
            &mut h,
            0,
            None,
        );
        assert_eq!(c.inspect(&h), Seen::Bad(Mismatch::BadTunnel));
    }

    #[test]
    fn arp_for_servers_is_answered_and_other_arp_ignored() {
        let p = plan(Mode::Dr, Proto::Tcp);
        let c = Checker::new(&p);
        let mut f = [0u8; 60];
        rvs_dataplane::wire::emit_request(&mut f, p.director_mac, p.dip, p.rs(3)).unwrap();
        assert_eq!(
            c.inspect(&f),
            Seen::ArpRequest {
                rs: 3,
                from: p.director_mac
            }
        );
        rvs_dataplane::wire::emit_request(&mut f, p.director_mac, p.dip, p.dip).unwrap();
        assert_eq!(c.inspect(&f), Seen::Ignored);
        let _ = MacAddr::BROADCAST;
    }

    #[test]
    fn expectations_refuse_a_change_of_server_or_local_port() {
        let mut e = Expect::new(10, 3, true);
        assert!(e.server(1, 2));
        assert!(e.server(1, 2));
        assert!(!e.server(1, 0));
        assert!(!e.server(10, 0), "out of range");
        assert!(e.local(1, 0, 1024));
        assert!(e.local(1, 0, 1024));
        assert!(!e.local(1, 0, 1025));
        assert!(!e.local(1, 1, 1024));
        assert_eq!(e.per_server(), &[0, 0, 1]);
    }

    #[test]
    fn even_spread_allows_rounding_only() {
        assert!(even_spread(&[250, 250, 250, 250]));
        assert!(even_spread(&[251, 250, 250, 250]));
        assert!(
            !even_spread(&[251, 250, 250, 249]),
            "rr differs by one at most"
        );
        assert!(!even_spread(&[300, 250, 250, 200]));
        assert!(even_spread(&[25_010, 25_000, 24_990, 25_000]));
        assert!(even_spread(&[]));
    }

    #[test]
    fn server_answers_follow_tcp() {
        use tcp_flag::*;
        assert_eq!(server_answer(Proto::Tcp, SYN), Some(SYN | ACK));
        assert_eq!(server_answer(Proto::Tcp, ACK | FIN), Some(FIN | ACK));
        assert_eq!(server_answer(Proto::Tcp, PSH | ACK), Some(PSH | ACK));
        assert_eq!(server_answer(Proto::Tcp, ACK), None);
        assert_eq!(server_answer(Proto::Udp, 0), Some(0));
    }
}
