//! The per-packet pipeline of one worker: parse → classify → flow lookup → schedule on miss →
//! rewrite → verdict. Pure logic over a frame in a byte slice, so it runs the same on an mbuf
//! and in tests; the I/O layer moves the packet according to the returned [`Verdict`].
//!
//! Besides virtual-service traffic, a worker answers ARP requests for the director's addresses
//! and ICMP echo to them in the same buffer, and reports ARP senders that the neighbour table
//! wants to the main lcore through a bounded lock-free queue.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use rvs_config::Forward;

use crate::flow::tcp::{self, State};
use crate::flow::{Flow, FlowKey, FlowTable};
use crate::fwd;
use crate::neigh::NeighEvent;
use crate::sched::{DestLoad, Sched};
use crate::snapshot::Snapshot;
use crate::stats::{Counters, DropReason};
use crate::wire::{
    ArpPacket, EthernetFrame, IcmpV4Packet, Ipv4Packet, TcpPacket, UdpPacket, arp_op, checksum,
    ether_type, icmp_type, ip_proto, make_reply_in_place,
};

/// What to do with a packet after the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame on this port index.
    Tx(u16),
    /// Free it; counted under the reason.
    Drop(DropReason),
    /// Fully handled, nothing to send (e.g. an ARP reply that was learned); free it.
    Consumed,
}

/// One worker's state: its flow table, its scheduler states and counters.
#[derive(Debug)]
pub struct Worker {
    /// Worker index (0-based).
    pub id: u16,
    snap: Arc<Snapshot>,
    sched: Vec<Sched>,
    loads: Vec<Vec<DestLoad>>,
    flows: FlowTable,
    /// This worker's counters.
    pub counters: Counters,
    events: Arc<ArrayQueue<NeighEvent>>,
}

impl Worker {
    /// A worker over `snap` with a flow table of `flows` entries.
    pub fn new(
        id: u16,
        snap: Arc<Snapshot>,
        flows: usize,
        seed: [u64; 2],
        events: Arc<ArrayQueue<NeighEvent>>,
    ) -> Worker {
        let loads: Vec<Vec<DestLoad>> = snap.services.iter().map(|s| s.loads()).collect();
        let sched = snap
            .services
            .iter()
            .zip(&loads)
            .map(|(s, l)| Sched::build(s.scheduler, l).expect("snapshot checked schedulers"))
            .collect();
        Worker {
            id,
            snap,
            sched,
            loads,
            flows: FlowTable::new(flows, seed),
            counters: Counters::default(),
            events,
        }
    }

    /// The snapshot in use.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    /// The flow table (for listings and tests).
    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    /// Runs one frame received on port `in_port` through the pipeline at dataplane time `now`
    /// (seconds), rewriting it in place. Drops are counted here.
    #[inline]
    pub fn process(&mut self, frame: &mut [u8], in_port: u16, now: u32) -> Verdict {
        let v = self.classify(frame, in_port, now);
        if let Verdict::Drop(r) = v {
            self.counters.drop(r);
        }
        v
    }

    fn classify(&mut self, frame: &mut [u8], in_port: u16, now: u32) -> Verdict {
        let Ok(eth) = EthernetFrame::new_checked(&*frame) else {
            return Verdict::Drop(DropReason::RuntFrame);
        };
        let port = &self.snap.ports[in_port as usize];
        let dst = eth.dst();
        if dst != port.mac && !dst.is_broadcast() {
            return Verdict::Drop(DropReason::OtherHost);
        }
        match eth.ethertype() {
            ether_type::ARP => self.arp(frame, in_port),
            ether_type::IPV4 if !dst.is_broadcast() => self.ipv4(frame, in_port, now),
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

    fn ipv4(&mut self, frame: &mut [u8], in_port: u16, now: u32) -> Verdict {
        let hl = EthernetFrame::<&[u8]>::HEADER_LEN;
        let ip = match Ipv4Packet::new_checked(&frame[hl..]) {
            Ok(ip) => ip,
            Err(e) => return Verdict::Drop(DropReason::ipv4(e)),
        };
        if !ip.verify_checksum() {
            return Verdict::Drop(DropReason::Ipv4BadChecksum);
        }
        let (src, dst, proto) = (ip.src(), ip.dst(), ip.protocol());
        let ihl = usize::from(ip.header_len());
        let total = usize::from(ip.total_len());
        let fragment = ip.is_fragment();
        let l4 = hl + ihl..hl + total;

        let svc = match proto {
            ip_proto::TCP | ip_proto::UDP if !fragment => {
                // Both headers start with source and destination port.
                let l4b = &frame[l4.clone()];
                if l4b.len() < 4 {
                    return Verdict::Drop(DropReason::L4Malformed);
                }
                let dport = u16::from_be_bytes([l4b[2], l4b[3]]);
                self.snap.service(proto, dst, dport)
            }
            _ => None,
        };
        match svc {
            Some(s) => self.virtual_service(frame, l4, s, src, dst, proto, now),
            // Fragments are not reassembled: one for a VIP is counted as such, not as local.
            None if fragment && self.snap.is_vip(dst) => Verdict::Drop(DropReason::Fragment),
            None if self.snap.is_local(dst) => self.local(frame, in_port, l4, proto, fragment),
            None => Verdict::Drop(DropReason::NoService),
        }
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

    #[allow(clippy::too_many_arguments)]
    fn virtual_service(
        &mut self,
        frame: &mut [u8],
        l4: std::ops::Range<usize>,
        svc: usize,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        now: u32,
    ) -> Verdict {
        let (sport, dport, tcp_flags) = if proto == ip_proto::TCP {
            match TcpPacket::new_checked(&frame[l4]) {
                Ok(t) => (t.src_port(), t.dst_port(), t.flags()),
                Err(_) => return Verdict::Drop(DropReason::L4Malformed),
            }
        } else {
            match UdpPacket::new_checked(&frame[l4]) {
                Ok(u) => (u.src_port(), u.dst_port(), 0),
                Err(_) => return Verdict::Drop(DropReason::L4Malformed),
            }
        };
        let key = FlowKey {
            proto,
            saddr: src.to_bits(),
            daddr: dst.to_bits(),
            sport,
            dport,
        };
        let timeouts = &self.snap.timeouts;
        let dest_idx = match self.flows.lookup(&key, now) {
            Some(flow) => {
                let state = if proto == ip_proto::TCP {
                    tcp::next_input_state(State::from_u8(flow.state), tcp_flags)
                } else {
                    State::Udp
                };
                flow.state = state as u8;
                flow.expires = now.saturating_add(state.timeout(timeouts));
                flow.dest as usize
            }
            None => {
                // IPVS (tcp_conn_schedule) schedules a TCP connection only on a SYN without
                // RST; SYN+ACK is allowed (active FTP).
                let state = if proto == ip_proto::TCP {
                    if tcp_flags & (tcp::flags::SYN | tcp::flags::RST) != tcp::flags::SYN {
                        return Verdict::Drop(DropReason::NoFlowNotSyn);
                    }
                    State::SynRecv
                } else {
                    State::Udp
                };
                let Some(d) = self.sched[svc].pick(&self.loads[svc]) else {
                    return Verdict::Drop(DropReason::NoDest);
                };
                let flow = Flow::new(
                    key,
                    svc as u16,
                    d as u16,
                    state as u8,
                    now.saturating_add(state.timeout(timeouts)),
                );
                if self.flows.insert(flow, now).is_err() {
                    return Verdict::Drop(DropReason::FlowTableFull);
                }
                self.counters.connections += 1;
                d
            }
        };
        let dest = &self.snap.services[svc].dests[dest_idx];
        match dest.forward {
            Forward::Dr => {
                let Some(mac) = self.snap.neigh.mac(dest.neigh as usize) else {
                    return Verdict::Drop(DropReason::NeighUnresolved);
                };
                let port_mac = self.snap.ports[dest.out_port as usize].mac;
                fwd::dr::rewrite(frame, port_mac, mac);
                self.counters.forwarded += 1;
                Verdict::Tx(dest.out_port)
            }
            // The snapshot refuses other modes until they are implemented.
            Forward::Tun | Forward::Nat | Forward::Fnat => Verdict::Drop(DropReason::NoDest),
        }
    }
}
