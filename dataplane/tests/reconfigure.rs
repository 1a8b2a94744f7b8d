//! Configuration changes on a running worker (`Worker::install`, through the worker mailbox):
//! what survives keeps its connections, counts and counters; what is removed leaves orphans
//! that keep forwarding while a next hop is known, and never gets a new connection.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use rvs_config::Profile;
use rvs_dataplane::mailbox::{FromWorker, Mailbox, ToWorker};
use rvs_dataplane::pipeline::{Verdict, Worker};
use rvs_dataplane::snapshot::Snapshot;
use rvs_dataplane::stats::DropReason;
use rvs_dataplane::wire::{
    EthernetFrame, Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket, ether_type, ip_proto, tcp_flag,
};

const PORT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const VIP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const VIP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 101);

const HEAD: &str = r#"
dataplane: { main_lcore: 0, workers: [1] }
ports: [{ name: dp0, device: net_null0, addresses: ["10.0.0.10/24"] }]
routes: [{ prefix: "0.0.0.0/0", via: 10.0.0.1 }]
"#;

const SVC_A: &str = r#"
  - vip: 10.0.0.100
    port: 80
    protocol: tcp
    scheduler: rr
    servers: [{ address: 10.0.0.11 }, { address: 10.0.0.12 }]
"#;

const SVC_B: &str = r#"
  - vip: 10.0.0.101
    port: 80
    protocol: tcp
    scheduler: rr
    servers: [{ address: 10.0.0.13 }, { address: 10.0.0.14 }]
"#;

fn snapshot(services: &[&str]) -> Arc<Snapshot> {
    let text = format!("{HEAD}services:{}", services.concat());
    let p = Profile::parse(&text, "reconf.yaml").unwrap();
    let snap = Snapshot::build(&p, &[PORT_MAC]).unwrap();
    for (i, s) in snap.neigh.slots().iter().enumerate() {
        let last = s.ip.octets()[3];
        snap.neigh.set(i, Some(MacAddr([2, 0, 0, 0, 1, last])));
    }
    Arc::new(snap)
}

fn worker(snap: Arc<Snapshot>) -> Worker {
    Worker::new(0, snap, 1024, [5, 6], Arc::new(ArrayQueue::new(8)))
}

fn tcp(sport: u16, dst: Ipv4Addr, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst(PORT_MAC);
        eth.set_src(MacAddr([2, 0, 0, 0, 0, 1]));
        eth.set_ethertype(ether_type::IPV4);
    }
    Ipv4Repr {
        src: CLIENT,
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
    t.set_dst_port(80);
    t.set_header_len(20);
    t.set_flags(flags);
    t.fill_checksum(CLIENT, dst);
    f
}

/// Sends one packet; returns the last octet of the real server's MAC it went to.
fn send(w: &mut Worker, sport: u16, dst: Ipv4Addr, flags: u8, now: u32) -> Result<u8, Verdict> {
    let mut f = tcp(sport, dst, flags);
    match w.process(&mut f, 0, now) {
        Verdict::Tx(0) => Ok(f[5]),
        v => Err(v),
    }
}

#[test]
fn a_service_removed_before_another_leaves_the_others_connections_intact() {
    let mut w = worker(snapshot(&[SVC_A, SVC_B]));
    assert_eq!(send(&mut w, 1000, VIP_B, tcp_flag::SYN, 1), Ok(13));
    assert_eq!(send(&mut w, 1000, VIP_B, tcp_flag::ACK, 1), Ok(13));
    assert_eq!(w.loads(1)[0].active, 1);
    let before = w.dest_traffic(1, 0);

    // Service A goes: B moves from position 1 to 0.
    let old = w.install(snapshot(&[SVC_B]));
    assert_eq!(old.services.len(), 2, "the old snapshot comes back");
    assert_eq!(w.loads(0)[0].active, 1, "counts follow the service");
    assert_eq!(w.dest_traffic(0, 0), before, "counters follow the service");
    assert_eq!(send(&mut w, 1000, VIP_B, tcp_flag::ACK, 2), Ok(13));
    assert_eq!(w.dest_traffic(0, 0).in_packets, before.in_packets + 1);
    // The next new connection continues with the scheduler it had (rr: the second server).
    assert_eq!(send(&mut w, 1001, VIP_B, tcp_flag::SYN, 2), Ok(14));
    assert_eq!(
        send(&mut w, 1002, VIP_A, tcp_flag::SYN, 2),
        Err(Verdict::Drop(DropReason::NoService)),
        "the removed service takes no new connection"
    );
}

#[test]
fn a_removed_server_keeps_its_connections_while_it_can_be_reached() {
    let mut w = worker(snapshot(&[SVC_A]));
    assert_eq!(send(&mut w, 2000, VIP_A, tcp_flag::SYN, 1), Ok(11));
    assert_eq!(send(&mut w, 2001, VIP_A, tcp_flag::SYN, 1), Ok(12));

    // 10.0.0.12 leaves service A but another service still uses it (its MAC stays known);
    // 10.0.0.11 stays.
    let also_12 = "
  - vip: 10.0.0.101
    port: 80
    protocol: tcp
    servers: [{ address: 10.0.0.12 }]
";
    let only_11 = SVC_A.replace(", { address: 10.0.0.12 }", "");
    w.install(snapshot(&[&only_11, also_12]));
    assert_eq!(w.loads(0).len(), 1);
    assert_eq!(w.loads(0)[0].inactive, 1, "11's connection counted");
    assert_eq!(
        send(&mut w, 2001, VIP_A, tcp_flag::ACK, 2),
        Ok(12),
        "the orphan still reaches its server"
    );
    for p in 0..4 {
        assert_eq!(send(&mut w, 2100 + p, VIP_A, tcp_flag::SYN, 2), Ok(11));
    }

    // Now nothing uses 10.0.0.12 and it is on-link: no next hop is known any more.
    w.install(snapshot(&[&only_11]));
    assert_eq!(
        send(&mut w, 2001, VIP_A, tcp_flag::ACK, 3),
        Err(Verdict::Drop(DropReason::NoDest))
    );
    assert_eq!(send(&mut w, 2000, VIP_A, tcp_flag::ACK, 3), Ok(11));
}

#[test]
fn a_weight_change_keeps_counts_and_a_new_list_restarts_the_scheduler() {
    let mut w = worker(snapshot(&[SVC_A]));
    for p in 0..3 {
        send(&mut w, 3000 + p, VIP_A, tcp_flag::SYN, 1).unwrap();
    }
    assert_eq!(w.loads(0)[0].inactive + w.loads(0)[1].inactive, 3);
    let heavier = SVC_A.replace(
        "{ address: 10.0.0.12 }",
        "{ address: 10.0.0.12, weight: 5 }",
    );
    w.install(snapshot(&[&heavier]));
    assert_eq!(w.loads(0)[1].weight, 5);
    assert_eq!(w.loads(0)[0].inactive + w.loads(0)[1].inactive, 3);

    // A server added in front: positions move, counts follow their servers.
    let front = SVC_A.replace("servers: [", "servers: [{ address: 10.0.0.15 }, ");
    let (a, b) = (w.loads(0)[0].inactive, w.loads(0)[1].inactive);
    w.install(snapshot(&[&front]));
    assert_eq!(
        (
            w.loads(0)[0].inactive,
            w.loads(0)[1].inactive,
            w.loads(0)[2].inactive
        ),
        (0, a, b)
    );
    assert_eq!(
        send(&mut w, 3100, VIP_A, tcp_flag::SYN, 2),
        Ok(15),
        "rr starts afresh on a new list"
    );
}

#[test]
fn the_mailbox_installs_lists_pages_and_zeroes() {
    let mut w = worker(snapshot(&[SVC_A]));
    for p in 0..5 {
        send(&mut w, 4000 + p, VIP_A, tcp_flag::SYN, 1).unwrap();
    }
    let mb = Mailbox::default();
    assert_eq!(mb.serve(&mut w, 1), None, "nothing to do");

    mb.inbox
        .push(ToWorker::List {
            offset: 3,
            limit: 10,
            templates: false,
        })
        .unwrap();
    mb.serve(&mut w, 1);
    match mb.outbox.pop() {
        Some(FromWorker::Conns { items, total, .. }) => {
            assert_eq!((items.len(), total), (2, 5));
            assert!(items.iter().all(|c| c.state == "SYN_RECV"));
        }
        other => panic!("{other:?}"),
    }

    mb.inbox.push(ToWorker::Zero(None)).unwrap();
    mb.serve(&mut w, 1);
    assert!(matches!(mb.outbox.pop(), Some(FromWorker::Zeroed(0))));
    assert_eq!(w.service_traffic(0).conns, 0);
    assert_eq!(
        w.loads(0)[0].inactive + w.loads(0)[1].inactive,
        5,
        "counts are not counters"
    );

    mb.inbox
        .push(ToWorker::Install(snapshot(&[SVC_A, SVC_B]), 7))
        .unwrap();
    assert_eq!(mb.serve(&mut w, 1), Some(7));
    match mb.outbox.pop() {
        Some(FromWorker::Retired(old, 7)) => assert_eq!(old.services.len(), 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.snapshot().services.len(), 2);
    assert_eq!(send(&mut w, 4100, VIP_B, tcp_flag::SYN, 2), Ok(13));
}
