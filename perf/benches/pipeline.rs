//! Pipeline cost per packet, no I/O: DR with rr on established flows (1k, 100k, 1M flows) and
//! for new connections. `cargo bench -p rvs-perf`.

use std::net::Ipv4Addr;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam::queue::ArrayQueue;
use rvs_config::Profile;
use rvs_dataplane::pipeline::{SliceFrame, Verdict, Worker};
use rvs_dataplane::snapshot::Snapshot;
use rvs_dataplane::wire::{
    EthernetFrame, Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket, ether_type, ip_proto, tcp_flag,
};

const PORT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 100);

fn worker(flows: usize) -> Worker {
    let profile = Profile::parse(
        "dataplane: { main_lcore: 0, workers: [1] }\n\
         ports: [{ name: dp0, device: net_null0, addresses: [\"10.200.0.10/24\"] }]\n\
         services:\n  - { vip: 10.200.0.100, port: 80, protocol: tcp, scheduler: rr, servers: [\
         { address: 10.200.0.11 }, { address: 10.200.0.12 }, { address: 10.200.0.13 }] }\n",
        "bench.yaml",
    )
    .expect("profile");
    let snap = Snapshot::build(&profile, &[PORT_MAC]).expect("snapshot");
    for (i, _) in snap.neigh.slots().iter().enumerate() {
        snap.neigh.set(i, Some(MacAddr([2, 0, 0, 0, 1, i as u8])));
    }
    Worker::new(
        0,
        Arc::new(snap),
        flows * 2,
        [1, 2],
        Arc::new(ArrayQueue::new(16)),
    )
}

/// A 64-byte TCP frame from client `i` (address and port derived from i).
fn frame(i: u32, flags: u8) -> [u8; 64] {
    let mut f = [0u8; 64];
    let src = Ipv4Addr::from_bits(0x0b00_0000 + (i >> 14));
    let sport = 1024 + (i & 0x3fff) as u16;
    {
        let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
        eth.set_dst(PORT_MAC);
        eth.set_src(MacAddr([2, 0, 0, 0, 0, 2]));
        eth.set_ethertype(ether_type::IPV4);
    }
    Ipv4Repr {
        src,
        dst: VIP,
        protocol: ip_proto::TCP,
        ttl: 64,
        payload_len: 20,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]))
    .expect("ip");
    let mut t = TcpPacket::new_unchecked(&mut f[34..54]);
    t.set_src_port(sport);
    t.set_dst_port(80);
    t.set_header_len(20);
    t.set_flags(flags);
    t.fill_checksum(src, VIP);
    f
}

fn established(c: &mut Criterion) {
    let mut g = c.benchmark_group("dr_established");
    g.throughput(Throughput::Elements(1));
    for flows in [1_000u32, 100_000, 1_000_000] {
        let mut w = worker(flows as usize);
        let mut frames: Vec<[u8; 64]> = (0..flows).map(|i| frame(i, tcp_flag::SYN)).collect();
        for f in frames.iter_mut() {
            let v = w.process(&mut SliceFrame::new(f), 0, 0);
            assert!(matches!(v, Verdict::Tx(0)), "{v:?}");
        }
        let mut frames: Vec<[u8; 64]> = (0..flows).map(|i| frame(i, tcp_flag::ACK)).collect();
        // Visit flows in a scattered order so the table is not walked in memory order.
        let order: Vec<usize> = (0..flows as usize)
            .map(|i| i.wrapping_mul(2_654_435_761) % flows as usize)
            .collect();
        let mut k = 0usize;
        g.bench_with_input(BenchmarkId::from_parameter(flows), &flows, |b, _| {
            b.iter(|| {
                let idx = order[k];
                k = if k + 1 == order.len() { 0 } else { k + 1 };
                // DR rewrote the destination MAC last time: address the director again.
                let f = &mut frames[idx];
                f[..6].copy_from_slice(&PORT_MAC.0);
                w.process(&mut SliceFrame::new(f), 0, 1)
            })
        });
        let before = w.counters;
        for f in frames.iter_mut().take(1000) {
            f[..6].copy_from_slice(&PORT_MAC.0);
            w.process(&mut SliceFrame::new(f), 0, 1);
        }
        assert_eq!(
            w.counters.forwarded - before.forwarded,
            1000,
            "every packet forwarded"
        );
        assert_eq!(w.counters.total_drops(), 0, "no drops: {:?}", w.counters);
    }
    g.finish();
}

fn new_connections(c: &mut Criterion) {
    let mut g = c.benchmark_group("dr_new_connection");
    g.throughput(Throughput::Elements(1));
    let n = 1u32 << 20;
    let mut w = worker(n as usize);
    let mut frames: Vec<[u8; 64]> = (0..n).map(|i| frame(i, tcp_flag::SYN)).collect();
    let mut k = 0usize;
    let mut now = 0u32;
    g.bench_function("syn", |b| {
        b.iter(|| {
            let f = &mut frames[k];
            f[..6].copy_from_slice(&PORT_MAC.0);
            let v = w.process(&mut SliceFrame::new(f), 0, now);
            k += 1;
            if k == frames.len() {
                // Every SYN_RECV flow of the last pass expires before the next one.
                k = 0;
                now += 61;
            }
            v
        })
    });
    g.finish();
    assert_eq!(w.counters.total_drops(), 0, "no drops: {:?}", w.counters);
    assert_eq!(
        w.counters.connections, w.counters.forwarded,
        "every SYN a new connection"
    );
}

criterion_group!(benches, established, new_connections);
criterion_main!(benches);
