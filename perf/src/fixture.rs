//! The DR fixture the burst benchmark and the `hot` profiling example share (and the
//! benchmarks' environment lists): one service
//! (rr over three on-link servers, MACs resolved) and 64-byte TCP frames from client `i`.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crossbeam::queue::ArrayQueue;
use rvs_config::Profile;
use rvs_dataplane::pipeline::{SliceFrame, Worker};
use rvs_dataplane::snapshot::Snapshot;
use rvs_dataplane::wire::{
    EthernetFrame, Ipv4Packet, Ipv4Repr, MacAddr, TcpPacket, ether_type, ip_proto,
};

/// The director port's MAC.
pub const PORT_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
/// The service's VIP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 100);

/// A worker for that service with room for `2 × flows` connections.
pub fn worker(flows: usize) -> Worker {
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
pub fn frame(i: u32, flags: u8) -> [u8; 64] {
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

/// `BURST` (32) consecutive frames of `frames`, each addressed to the director's port again
/// (DR rewrote its destination MAC the last time it went through), as `process_burst` takes
/// them.
pub fn burst_of(frames: &mut [[u8; 64]]) -> [SliceFrame<'_>; 32] {
    let mut it = frames.iter_mut();
    std::array::from_fn(|_| {
        let f = it.next().expect("a whole burst");
        f[..6].copy_from_slice(&PORT_MAC.0);
        SliceFrame::new(f)
    })
}

/// The comma-separated list in environment variable `var` (`default` when unset), for the
/// benchmarks' `RVS_BENCH_*` selections; entries that do not parse are left out.
pub fn env_list<T: std::str::FromStr>(var: &str, default: &str) -> Vec<T> {
    std::env::var(var)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}
