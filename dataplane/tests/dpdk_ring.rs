//! The dataplane's worker loop on a real EAL with a net_ring port: frames injected into the
//! port's rx ring come out of its tx ring rewritten as DR requires, ARP and ICMP are answered,
//! and frames the main lcore queues (ARP requests) are transmitted. One test: the EAL can be
//! initialised once per process. Needs hugepages (`scripts/setup.sh`).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crossbeam::queue::ArrayQueue;
use dpdk::{Eal, Mbuf, MbufBurst, Mempool, Port, PortConf, Ring};
use rvs_config::Profile;
use rvs_dataplane::io::lcore::WorkerLoop;
use rvs_dataplane::pipeline::Worker;
use rvs_dataplane::snapshot::Snapshot;
use rvs_dataplane::stats::SharedCounters;
use rvs_dataplane::wire::{
    self, EthernetFrame, IcmpV4Packet, Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket, ether_type,
    icmp_type, ip_proto,
};

const PROFILE: &str = "
dataplane:
  main_lcore: 0
  workers: [1]
ports:
  - name: dp0
    device: net_ring_rvs
    addresses: [\"10.200.0.10/24\"]
services:
  - vip: 10.200.0.100
    port: 80
    protocol: tcp
    scheduler: rr
    servers:
      - { address: 10.200.0.11 }
      - { address: 10.200.0.12 }
";

const CLIENT_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
const RS1_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x11]);
const RS2_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x12]);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 100);
const DIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 10);

fn ipv4_frame(dst_mac: MacAddr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + l4.len()];
    let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
    eth.set_dst(dst_mac);
    eth.set_src(CLIENT_MAC);
    eth.set_ethertype(ether_type::IPV4);
    let repr = Ipv4Repr {
        src: CLIENT,
        dst,
        protocol: proto,
        ttl: 64,
        payload_len: l4.len() as u16,
        ident: 1,
        dont_frag: true,
    };
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]))
        .unwrap();
    f[34..].copy_from_slice(l4);
    f
}

fn syn(port_mac: MacAddr, sport: u16) -> Vec<u8> {
    let mut tcp = [0u8; 20];
    {
        let mut t = TcpPacket::new_unchecked(&mut tcp[..]);
        t.set_src_port(sport);
        t.set_dst_port(80);
        t.set_seq(1000);
        t.set_header_len(20);
        t.set_flags(wire::tcp_flag::SYN);
        t.set_window(64240);
        t.fill_checksum(CLIENT, VIP);
    }
    ipv4_frame(port_mac, VIP, ip_proto::TCP, &tcp)
}

fn inject(pool: &Mempool, ring: &Ring<Mbuf>, frame: &[u8]) {
    let mut m = pool.alloc().expect("mbuf");
    assert!(m.set_len(frame.len()));
    m.data_mut().copy_from_slice(frame);
    ring.enqueue(m).expect("rx ring room");
}

fn collect(ring: &Ring<Mbuf>) -> Vec<Vec<u8>> {
    let mut out: MbufBurst<64> = MbufBurst::new();
    ring.dequeue_burst(&mut out);
    out.drain().map(|m| m.data().to_vec()).collect()
}

#[test]
fn worker_loop_on_a_ring_port() {
    let eal = Eal::init(&[
        "--in-memory",
        "-m",
        "64",
        "--no-pci",
        "-l",
        "0",
        "--log-level=*:warning",
    ])
    .expect("EAL (hugepages reserved? scripts/setup.sh)");
    let pool = Mempool::pktmbuf("rvs_test_pool", 2047, 0, 2048 + 128, None).unwrap();
    let rx_ring: Ring<Mbuf> = Ring::new("rvs_t_rx", 256, None).unwrap();
    let tx_ring: Ring<Mbuf> = Ring::new("rvs_t_tx", 256, None).unwrap();
    let inbox: Arc<Ring<Mbuf>> = Arc::new(Ring::new("rvs_t_inbox", 64, None).unwrap());
    let mut port = Port::from_rings("net_ring_rvs", &[&rx_ring], &[&tx_ring]).unwrap();
    port.configure_and_start(&PortConf::default(), &pool)
        .unwrap();
    let port_mac = MacAddr(port.mac().unwrap());

    let profile = Profile::parse(PROFILE, "ring.yaml").unwrap();
    let snap = Arc::new(Snapshot::build(&profile, &[port_mac]).unwrap());
    snap.neigh.set(
        snap.neigh.find(Ipv4Addr::new(10, 200, 0, 11), 0).unwrap(),
        Some(RS1_MAC),
    );
    snap.neigh.set(
        snap.neigh.find(Ipv4Addr::new(10, 200, 0, 12), 0).unwrap(),
        Some(RS2_MAC),
    );
    let events = Arc::new(ArrayQueue::new(16));
    let worker = Worker::new(0, Arc::clone(&snap), 1024, [7, 9], events);
    let shared = Arc::new(SharedCounters::default());
    let mut lp = WorkerLoop::new(
        worker,
        vec![port.rx_queue(0).unwrap()],
        vec![port.tx_queue(0).unwrap()],
        vec![Arc::clone(&inbox)],
        Arc::clone(&shared),
        Arc::new(AtomicBool::new(false)),
        0,
        1,
    );

    // DR: three SYNs from three client ports go rs1, rs2, rs1; only the MACs change.
    let syns: Vec<Vec<u8>> = [40001, 40002, 40003]
        .iter()
        .map(|&p| syn(port_mac, p))
        .collect();
    for s in &syns {
        inject(&pool, &rx_ring, s);
    }
    assert_eq!(lp.poll_once(0), 3);
    let out = collect(&tx_ring);
    assert_eq!(out.len(), 3);
    for (i, (o, s)) in out.iter().zip(&syns).enumerate() {
        let want_mac = if i == 1 { RS2_MAC } else { RS1_MAC };
        assert_eq!(
            &o[0..6],
            &want_mac.0,
            "packet {i} to the scheduled real server"
        );
        assert_eq!(&o[6..12], &port_mac.0, "from the port's MAC");
        assert_eq!(&o[12..], &s[12..], "IP and TCP untouched");
    }

    // ARP request for the VIP → reply from the port's MAC; ICMP echo to the DIP → reply.
    let mut arp = vec![0u8; 42];
    wire::emit_request(&mut arp, CLIENT_MAC, CLIENT, VIP).unwrap();
    inject(&pool, &rx_ring, &arp);
    let icmp_req = {
        let mut icmp = [0u8; 16];
        let mut p = IcmpV4Packet::new_unchecked(&mut icmp[..]);
        p.set_msg_type(icmp_type::ECHO_REQUEST);
        p.set_echo_ident(7);
        p.set_echo_seq(1);
        p.fill_checksum();
        ipv4_frame(port_mac, DIP, ip_proto::ICMP, &icmp)
    };
    inject(&pool, &rx_ring, &icmp_req);
    // A frame queued by the main lcore goes out too.
    let mut garp = vec![0u8; 60];
    wire::emit_request(&mut garp, port_mac, DIP, DIP).unwrap();
    inject(&pool, &inbox, &garp);
    assert_eq!(lp.poll_once(1), 3);
    let out = collect(&tx_ring);
    assert_eq!(out.len(), 3);
    let reply = wire::ArpPacket::new_checked(&out[0][14..]).unwrap();
    assert_eq!(reply.operation(), wire::arp_op::REPLY);
    assert_eq!(reply.sender_ip(), VIP);
    assert_eq!(reply.sender_mac(), port_mac);
    assert_eq!(&out[0][0..6], &CLIENT_MAC.0);
    let ip = Ipv4Packet::new_checked(&out[1][14..]).unwrap();
    assert_eq!((ip.src(), ip.dst()), (DIP, CLIENT));
    assert!(ip.verify_checksum());
    let icmp = IcmpV4Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(icmp.msg_type(), icmp_type::ECHO_REPLY);
    assert!(icmp.verify_checksum());
    assert_eq!(out[2], garp, "main lcore's frame transmitted unchanged");

    // A packet for nobody is dropped and counted; nothing is transmitted.
    inject(&pool, &rx_ring, &syn(MacAddr([2, 9, 9, 9, 9, 9]), 40004));
    assert_eq!(lp.poll_once(2), 1);
    assert!(collect(&tx_ring).is_empty());

    let c = lp.worker().counters;
    assert_eq!(c.rx_packets, 6);
    assert_eq!(c.tx_packets, 6);
    assert_eq!(c.forwarded, 3);
    assert_eq!(c.connections, 3);
    assert_eq!(c.arp_replies, 1);
    assert_eq!(c.icmp_echo_replies, 1);
    assert_eq!(c.control_tx, 1);
    assert_eq!(c.total_drops(), 1);
    assert!(c.tx_bytes > 0 && c.rx_bytes > c.tx_bytes - 60);

    // net_ring has no rte_flow: steering is refused with the driver's reason, nothing changes.
    let refused = port.steer_dst_port(dpdk::FlowProto::Tcp, 0x0ac8_0005, 1, 1, 0);
    let e = refused.expect_err("net_ring has no flow rules");
    assert!(e.call.starts_with("rte_flow_validate"), "{e}");

    drop(lp);
    drop(port);
    drop(rx_ring);
    drop(tx_ring);
    drop(inbox);
    drop(pool);
    drop(eal);
}
