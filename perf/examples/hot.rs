//! Runs the pipeline on established DR flows in a tight loop, for profiling with `perf`:
//! `cargo run --release -p rvs-perf --example hot -- FLOWS SECONDS [burst]`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flows: u32 = args.get(1).map_or(1_000_000, |s| s.parse().unwrap());
    let secs: f64 = args.get(2).map_or(5.0, |s| s.parse().unwrap());
    let burst = args.get(3).is_some_and(|s| s == "burst");
    let mut w = worker(flows as usize);
    for i in 0..flows {
        let mut f = frame(i, tcp_flag::SYN);
        assert!(matches!(
            w.process(&mut SliceFrame::new(&mut f), 0, 0),
            Verdict::Tx(0)
        ));
    }
    eprintln!(
        "table: {} bytes, {:.1} per slot, {:.1} per flow",
        w.conns().memory_bytes(),
        w.conns().memory_bytes() as f64 / w.conns().capacity() as f64,
        w.conns().memory_bytes() as f64 / flows as f64
    );
    // Frames in arrival order, flows scattered.
    let mut frames: Vec<[u8; 64]> = (0..flows)
        .map(|k| {
            frame(
                ((k as usize).wrapping_mul(2_654_435_761) % flows as usize) as u32,
                tcp_flag::ACK,
            )
        })
        .collect();
    let start = Instant::now();
    let mut n = 0u64;
    let mut verdicts = [Verdict::Consumed; 32];
    'outer: loop {
        for chunk in frames.chunks_mut(32) {
            for f in chunk.iter_mut() {
                f[..6].copy_from_slice(&PORT_MAC.0);
            }
            if burst {
                let mut bufs: Vec<SliceFrame> = chunk
                    .iter_mut()
                    .map(|f| SliceFrame::new(&mut f[..]))
                    .collect();
                w.process_burst(&mut bufs, 0, 1, &mut verdicts);
            } else {
                for f in chunk.iter_mut() {
                    std::hint::black_box(w.process(&mut SliceFrame::new(f), 0, 1));
                }
            }
            n += chunk.len() as u64;
            if secs < 0.0 {
                if n as f64 >= -secs {
                    break 'outer;
                }
            } else if n % (1 << 16) < 32 && start.elapsed().as_secs_f64() > secs {
                break 'outer;
            }
        }
    }
    let el = start.elapsed().as_secs_f64();
    eprintln!("{n} packets, {:.1} ns/packet", el * 1e9 / n as f64);
    assert_eq!(w.counters.total_drops(), 0);
}
