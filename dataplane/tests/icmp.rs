//! ICMP errors about tracked connections (SPEC section 3): translated for NAT and FullNAT and
//! sent to the right side, forwarded as they are for DR, as IPVS's ip_vs_in_icmp and
//! ip_vs_out_icmp do.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use rvs_config::Profile;
use rvs_dataplane::pipeline::{Verdict, Worker};
use rvs_dataplane::snapshot::Snapshot;
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::wire::{
    EthernetFrame, IcmpV4Packet, Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket, ether_type, ip_proto,
    tcp_flag,
};

const EXT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const INT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
const CLIENT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x02]);
const RS_MAC: MacAddr = MacAddr([2, 0, 0, 0, 1, 1]);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
const RIP: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 11);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 5);
const VIP_NAT: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 100);
const VIP_FNAT: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 101);
const VIP_DR: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 102);

const PROFILE: &str = r#"
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - { name: ext, device: net_null0, addresses: ["10.201.0.10/24"] }
  - { name: int, device: net_null1, addresses: ["10.202.0.1/24"] }
services:
  - { vip: 10.201.0.100, port: 80, protocol: tcp, scheduler: rr, servers: [{ address: 10.202.0.11, port: 8080, forward: nat }] }
  - { vip: 10.201.0.101, port: 80, protocol: tcp, scheduler: rr, local_addresses: ["10.202.0.5"], servers: [{ address: 10.202.0.11, port: 8080, forward: fnat }] }
  - { vip: 10.202.0.102, port: 80, protocol: tcp, scheduler: rr, servers: [{ address: 10.202.0.11, forward: dr }] }
"#;

fn worker() -> Worker {
    let p = Profile::parse(PROFILE, "icmp.yaml").unwrap();
    let snap = Snapshot::build(&p, &[EXT_MAC, INT_MAC]).unwrap();
    let slot = snap.neigh.find(RIP, 1).unwrap();
    snap.neigh.set(slot, Some(RS_MAC));
    Worker::new(0, Arc::new(snap), 64, [1, 2], Arc::new(ArrayQueue::new(8)))
}

fn ipv4(
    dst_mac: MacAddr,
    src_mac: MacAddr,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    l4: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + l4.len()];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst(dst_mac);
        eth.set_src(src_mac);
        eth.set_ethertype(ether_type::IPV4);
    }
    Ipv4Repr {
        src,
        dst,
        protocol: proto,
        ttl: 64,
        payload_len: l4.len() as u16,
        ident: 9,
        dont_frag: false,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]))
    .unwrap();
    f[34..].copy_from_slice(l4);
    f
}

fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    let mut p = TcpPacket::new_unchecked(&mut t[..]);
    p.set_src_port(src.1);
    p.set_dst_port(dst.1);
    p.set_header_len(20);
    p.set_flags(flags);
    p.fill_checksum(src.0, dst.0);
    t
}

/// An ICMP error of `kind`/`code` quoting the IP header and 8 bytes of a TCP packet
/// `quoted_src` → `quoted_dst`.
fn icmp_error(
    kind: u8,
    code: u8,
    quoted_src: (Ipv4Addr, u16),
    quoted_dst: (Ipv4Addr, u16),
) -> Vec<u8> {
    let inner_l4 = tcp(quoted_src, quoted_dst, tcp_flag::ACK);
    let inner = ipv4(
        MacAddr::ZERO,
        MacAddr::ZERO,
        quoted_src.0,
        quoted_dst.0,
        ip_proto::TCP,
        &inner_l4,
    );
    let mut msg = vec![0u8; 8];
    msg.extend_from_slice(&inner[14..14 + 28]);
    let mut icmp = IcmpV4Packet::new_unchecked(&mut msg[..]);
    icmp.set_msg_type(kind);
    icmp.set_code(code);
    if kind == 3 && code == 4 {
        icmp.set_next_hop_mtu(1400);
    }
    icmp.fill_checksum();
    msg
}

/// Checks the output ICMP error: outer addresses, quoted tuple, every checksum.
fn check(out: &[u8], outer: (Ipv4Addr, Ipv4Addr), quoted: ((Ipv4Addr, u16), (Ipv4Addr, u16))) {
    let ip = Ipv4Packet::new_checked(&out[14..]).unwrap();
    assert!(ip.verify_checksum(), "outer IP checksum");
    assert_eq!((ip.src(), ip.dst()), outer, "outer addresses");
    let icmp = IcmpV4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(), "ICMP checksum");
    let q = Ipv4Packet::new_unchecked(icmp.payload());
    assert!(
        Ipv4Packet::new_unchecked(&icmp.payload()[..20]).verify_checksum(),
        "quoted IP checksum"
    );
    let p = &icmp.payload()[20..24];
    assert_eq!(
        (
            (q.src(), u16::from_be_bytes([p[0], p[1]])),
            (q.dst(), u16::from_be_bytes([p[2], p[3]]))
        ),
        quoted,
        "quoted tuple"
    );
}

#[test]
fn nat_errors_are_translated_both_ways() {
    let mut w = worker();
    let mut syn = ipv4(
        EXT_MAC,
        CLIENT_MAC,
        CLIENT,
        VIP_NAT,
        ip_proto::TCP,
        &tcp((CLIENT, 40000), (VIP_NAT, 80), tcp_flag::SYN),
    );
    assert_eq!(w.process(&mut syn, 0, 1), Verdict::Tx(1));

    // The real server says "fragmentation needed" about what the client sent it.
    let msg = icmp_error(3, 4, (CLIENT, 40000), (RIP, 8080));
    let mut f = ipv4(INT_MAC, RS_MAC, RIP, CLIENT, ip_proto::ICMP, &msg);
    assert_eq!(w.process(&mut f, 1, 2), Verdict::Tx(0), "to the client");
    assert_eq!(&f[0..6], &CLIENT_MAC.0, "to the client's MAC");
    check(&f, (VIP_NAT, CLIENT), ((CLIENT, 40000), (VIP_NAT, 80)));
    assert_eq!(
        IcmpV4Packet::new_checked(&f[34..]).unwrap().next_hop_mtu(),
        1400,
        "MTU kept"
    );

    // The client says "port unreachable" about a reply it got from VIP:80.
    let msg = icmp_error(3, 3, (VIP_NAT, 80), (CLIENT, 40000));
    let mut f = ipv4(EXT_MAC, CLIENT_MAC, CLIENT, VIP_NAT, ip_proto::ICMP, &msg);
    assert_eq!(
        w.process(&mut f, 0, 3),
        Verdict::Tx(1),
        "to the real server"
    );
    assert_eq!(&f[0..6], &RS_MAC.0);
    check(&f, (CLIENT, RIP), ((RIP, 8080), (CLIENT, 40000)));
    assert_eq!(w.counters.icmp_translated, 2);
}

#[test]
fn fullnat_errors_are_translated_both_ways() {
    let mut w = worker();
    let mut syn = ipv4(
        EXT_MAC,
        CLIENT_MAC,
        CLIENT,
        VIP_FNAT,
        ip_proto::TCP,
        &tcp((CLIENT, 40000), (VIP_FNAT, 80), tcp_flag::SYN),
    );
    assert_eq!(w.process(&mut syn, 0, 1), Verdict::Tx(1));
    let lport = TcpPacket::new_checked(&syn[34..]).unwrap().src_port();

    // A router between director and server: "time exceeded" about LIP:lport → RIP:8080.
    let router = Ipv4Addr::new(10, 202, 0, 254);
    let msg = icmp_error(11, 0, (LIP, lport), (RIP, 8080));
    let mut f = ipv4(INT_MAC, RS_MAC, router, LIP, ip_proto::ICMP, &msg);
    assert_eq!(w.process(&mut f, 1, 2), Verdict::Tx(0));
    check(&f, (VIP_FNAT, CLIENT), ((CLIENT, 40000), (VIP_FNAT, 80)));

    // The client about a reply from VIP:80: the server sees it about LIP:lport.
    let msg = icmp_error(3, 3, (VIP_FNAT, 80), (CLIENT, 40000));
    let mut f = ipv4(EXT_MAC, CLIENT_MAC, CLIENT, VIP_FNAT, ip_proto::ICMP, &msg);
    assert_eq!(w.process(&mut f, 0, 3), Verdict::Tx(1));
    check(&f, (LIP, RIP), ((RIP, 8080), (LIP, lport)));
}

#[test]
fn dr_errors_go_to_the_real_server_unchanged_and_unknown_ones_stay_local() {
    let mut w = worker();
    let client = Ipv4Addr::new(10, 202, 0, 2);
    let mut syn = ipv4(
        INT_MAC,
        CLIENT_MAC,
        client,
        VIP_DR,
        ip_proto::TCP,
        &tcp((client, 40000), (VIP_DR, 80), tcp_flag::SYN),
    );
    assert_eq!(w.process(&mut syn, 1, 1), Verdict::Tx(1));
    let msg = icmp_error(3, 3, (VIP_DR, 80), (client, 40000));
    let orig = ipv4(INT_MAC, CLIENT_MAC, client, VIP_DR, ip_proto::ICMP, &msg);
    let mut f = orig.clone();
    assert_eq!(w.process(&mut f, 1, 2), Verdict::Tx(1));
    assert_eq!(&f[0..6], &RS_MAC.0);
    assert_eq!(&f[12..], &orig[12..], "only the MACs change");

    // An error about no tracked connection is the director's own business (not answered).
    let msg = icmp_error(3, 3, (VIP_NAT, 80), (CLIENT, 49999));
    let mut f = ipv4(EXT_MAC, CLIENT_MAC, CLIENT, VIP_NAT, ip_proto::ICMP, &msg);
    assert_eq!(
        w.process(&mut f, 0, 3),
        Verdict::Drop(DropReason::LocalUnhandled)
    );
    // A quoted packet cut short is malformed.
    let mut short = icmp_error(3, 3, (VIP_NAT, 80), (CLIENT, 40000));
    short.truncate(8 + 12);
    let mut f = ipv4(EXT_MAC, CLIENT_MAC, CLIENT, VIP_NAT, ip_proto::ICMP, &short);
    assert_eq!(
        w.process(&mut f, 0, 3),
        Verdict::Drop(DropReason::L4Malformed)
    );
}
