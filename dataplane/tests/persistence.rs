//! Persistence templates, port-0 services and firewall-mark services through the pipeline
//! (SPEC section 5): a client network sticks to one real server while its template lives, a
//! template lives while it controls connections, port-0 services persist across every port of
//! the VIP (PCC) and mark services across every marked port (PNMPP).

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use rvs_config::Profile;
use rvs_dataplane::pipeline::{Verdict, Worker};
use rvs_dataplane::snapshot::Snapshot;
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::wire::{
    EthernetFrame, Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket, ether_type, ip_proto, tcp_flag,
};

const PORT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const RS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 0, 0, 11),
    Ipv4Addr::new(10, 0, 0, 12),
    Ipv4Addr::new(10, 0, 0, 13),
];

const PROFILE: &str = r#"
dataplane: { main_lcore: 0, workers: [1] }
ports: [{ name: dp0, device: net_null0, addresses: ["10.0.0.10/24"] }]
routes: [{ prefix: "0.0.0.0/0", via: 10.0.0.1 }]
fwmarks:
  - { mark: 8, protocol: tcp, destination: "10.0.0.200/32", ports: [80, 443] }
services:
  - vip: 10.0.0.100
    port: 80
    protocol: tcp
    scheduler: rr
    persistence: { timeout: 300, netmask: 255.255.255.0 }
    servers: [{ address: 10.0.0.11 }, { address: 10.0.0.12 }, { address: 10.0.0.13 }]
  - vip: 10.0.0.101
    port: 0
    protocol: tcp
    scheduler: rr
    persistence: { timeout: 300 }
    servers: [{ address: 10.0.0.11 }, { address: 10.0.0.12 }, { address: 10.0.0.13 }]
  - fwmark: 8
    scheduler: rr
    persistence: { timeout: 300 }
    servers: [{ address: 10.0.0.11 }, { address: 10.0.0.12 }, { address: 10.0.0.13 }]
"#;

fn worker() -> Worker {
    let p = Profile::parse(PROFILE, "persist.yaml").unwrap();
    let snap = Snapshot::build(&p, &[PORT_MAC]).unwrap();
    for (i, rs) in RS.iter().enumerate() {
        let slot = snap.neigh.find(*rs, 0).unwrap();
        snap.neigh
            .set(slot, Some(MacAddr([2, 0, 0, 0, 1, i as u8])));
    }
    Worker::new(
        0,
        Arc::new(snap),
        1024,
        [3, 4],
        Arc::new(ArrayQueue::new(8)),
    )
}

fn tcp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst(PORT_MAC);
        eth.set_src(MacAddr([2, 0, 0, 0, 0, 1]));
        eth.set_ethertype(ether_type::IPV4);
    }
    Ipv4Repr {
        src,
        dst,
        protocol: ip_proto::TCP,
        ttl: 64,
        payload_len: 20,
        ident: 1,
        dont_frag: true,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]))
    .unwrap();
    let mut t = TcpPacket::new_unchecked(&mut f[34..]);
    t.set_src_port(sport);
    t.set_dst_port(dport);
    t.set_header_len(20);
    t.set_flags(flags);
    t.fill_checksum(src, dst);
    f
}

/// The real server (0-based) a SYN went to.
fn server(
    w: &mut Worker,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    now: u32,
) -> Result<usize, Verdict> {
    let mut f = tcp(src, sport, dst, dport, tcp_flag::SYN);
    match w.process(&mut f, 0, now) {
        Verdict::Tx(0) => Ok(f[5] as usize),
        v => Err(v),
    }
}

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const PCC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);
const MARKED: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 200);

#[test]
fn a_client_network_sticks_to_its_server() {
    let mut w = worker();
    let a = Ipv4Addr::new(198, 51, 100, 7);
    let a2 = Ipv4Addr::new(198, 51, 100, 99); // same /24
    let b = Ipv4Addr::new(203, 0, 113, 5);
    assert_eq!(server(&mut w, a, 40000, VIP, 80, 0), Ok(0));
    assert_eq!(server(&mut w, a, 40001, VIP, 80, 1), Ok(0), "same client");
    assert_eq!(
        server(&mut w, a2, 40000, VIP, 80, 2),
        Ok(0),
        "same /24 (netmask)"
    );
    assert_eq!(
        server(&mut w, b, 40000, VIP, 80, 3),
        Ok(1),
        "another network: rr moves on"
    );
    assert_eq!(server(&mut w, b, 40001, VIP, 80, 4), Ok(1));
    assert_eq!(w.counters.templates, 2);
    assert_eq!(w.counters.connections, 5);
    // Only connections count on servers; templates do not.
    let loads = w.loads(0);
    assert_eq!((loads[0].inactive, loads[1].inactive), (3, 2));
}

#[test]
fn a_template_outlives_its_timeout_while_it_controls_connections() {
    let mut w = worker();
    let a = Ipv4Addr::new(198, 51, 100, 7);
    assert_eq!(server(&mut w, a, 40000, VIP, 80, 0), Ok(0));
    // Establish the connection so it lives 900 s.
    let mut ack = tcp(a, 40000, VIP, 80, tcp_flag::ACK);
    assert_eq!(w.process(&mut ack, 0, 1), Verdict::Tx(0));
    // Past the template's 300 s the connection still lives: the template stays.
    w.expire(400, 1000);
    assert_eq!(
        server(&mut w, a, 40001, VIP, 80, 400),
        Ok(0),
        "still pinned at 400"
    );
    // Once every controlled connection is gone and the timeout passed, it expires and the
    // scheduler picks afresh (rr's next server).
    for now in [1000u32, 1400, 2000] {
        w.expire(now, 10_000);
    }
    assert_eq!(w.conns().len(), 0, "connections and template gone");
    assert_eq!(server(&mut w, a, 40002, VIP, 80, 2001), Ok(1));
}

#[test]
fn port_zero_service_persists_across_every_port_of_the_vip() {
    let mut w = worker();
    let a = Ipv4Addr::new(198, 51, 100, 7);
    let b = Ipv4Addr::new(198, 51, 100, 8);
    assert_eq!(server(&mut w, a, 40000, PCC, 80, 0), Ok(0));
    assert_eq!(
        server(&mut w, a, 40001, PCC, 443, 0),
        Ok(0),
        "another port, same server"
    );
    assert_eq!(server(&mut w, a, 40002, PCC, 21, 0), Ok(0));
    assert_eq!(
        server(&mut w, b, 40000, PCC, 443, 0),
        Ok(1),
        "netmask /32: b is another client"
    );
    // The real server is addressed on the client's port.
    let mut f = tcp(a, 40003, PCC, 8443, tcp_flag::SYN);
    assert_eq!(w.process(&mut f, 0, 1), Verdict::Tx(0));
    let t = TcpPacket::new_checked(&f[34..]).unwrap();
    assert_eq!(t.dst_port(), 8443);
}

#[test]
fn mark_service_persists_across_marked_ports_only() {
    let mut w = worker();
    let a = Ipv4Addr::new(198, 51, 100, 7);
    let b = Ipv4Addr::new(198, 51, 100, 8);
    assert_eq!(server(&mut w, a, 40000, MARKED, 80, 0), Ok(0));
    assert_eq!(
        server(&mut w, a, 40001, MARKED, 443, 0),
        Ok(0),
        "443 carries the same mark"
    );
    assert_eq!(server(&mut w, b, 40000, MARKED, 443, 0), Ok(1));
    assert_eq!(
        server(&mut w, a, 40002, MARKED, 22, 0),
        Err(Verdict::Drop(DropReason::LocalUnhandled)),
        "22 is not marked: no service (the address is the director's)"
    );
}

/// What the control plane will list (`ipvsadm -Lnc`, `--stats`, `--persistent-conn`).
#[test]
fn connections_templates_and_traffic_are_listed() {
    let mut w = worker();
    let a = Ipv4Addr::new(198, 51, 100, 7);
    assert_eq!(server(&mut w, a, 40000, VIP, 80, 10), Ok(0));
    let mut ack = tcp(a, 40000, VIP, 80, tcp_flag::ACK);
    assert_eq!(w.process(&mut ack, 0, 11), Verdict::Tx(0));
    let mut list: Vec<_> = w.connections(20).collect();
    list.sort_by_key(|c| c.template);
    assert_eq!(list.len(), 2);
    let conn = &list[0];
    assert!(!conn.template);
    assert_eq!(conn.state, "ESTABLISHED");
    assert_eq!(conn.expires_in, 11 + 900 - 20);
    assert_eq!(conn.client, (a, 40000));
    assert_eq!(conn.virtual_, (VIP, 80));
    assert_eq!(conn.dest, (RS[0], 80));
    let tmpl = &list[1];
    assert!(tmpl.template);
    assert_eq!(tmpl.state, "NONE");
    assert_eq!(
        tmpl.client.0,
        Ipv4Addr::new(198, 51, 100, 0),
        "the client network"
    );
    assert_eq!(tmpl.expires_in, 10 + 300 - 20);
    assert_eq!(w.persistent_counts(0), [1, 0, 0]);
    let t = w.dest_traffic(0, 0);
    assert_eq!((t.conns, t.in_packets, t.in_bytes), (1, 2, 80));
    assert_eq!(w.service_traffic(0), t);
    assert_eq!(w.service_traffic(1).conns, 0);
}
