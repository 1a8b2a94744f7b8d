//! Pipeline cost per packet without I/O: `Worker::process` (parse, flow lookup, schedule on a
//! SYN, rewrite for the mode) on in-memory frames, for each forwarding mode.
//!
//! - `{mode}_established/{flows}`: a request of an established flow (TCP ACK with data), the
//!   flows visited in a scattered (stride) order, as the number of tracked flows grows;
//! - `{mode}_new_connection/syn`: a SYN of a new connection (schedule + insert), the table
//!   cycling through a million clients whose earlier connections have expired.
//!
//! Frames come from the generator's own templates (`rvs_perf::packet::Template`) and the
//! director's profile from `rvs_perf::plan::Plan`, so the bench sees the traffic `rvs-pktgen`
//! sends; each iteration builds its frame in one reused buffer (`frame/build` shows that
//! part alone, a few ns).
//!
//! `RVS_BENCH_MODES` (default `dr,tun,nat,fnat`) and `RVS_BENCH_FLOWS` (default
//! `1000,100000,1000000`; `10000000` works with ~4 GB of memory) choose what runs.
//! `cargo bench -p rvs-perf --bench pipeline`.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use crossbeam::queue::ArrayQueue;
use rvs_config::Profile;
use rvs_dataplane::pipeline::{PacketBuf, Verdict, Worker};
use rvs_dataplane::snapshot::Snapshot;
use rvs_dataplane::wire::{MacAddr, tcp_flag};
use rvs_perf::fixture::env_list;
use rvs_perf::packet::Template;
use rvs_perf::plan::{Mode, Plan, ProfileOptions, Proto, StrideWalk, pow2_at_least};

/// A frame with headroom in front, so tunnel modes can prepend their outer header.
struct Frame {
    buf: [u8; 256],
    start: usize,
    len: usize,
}

const HEADROOM: usize = 128;

impl Frame {
    fn new() -> Frame {
        Frame {
            buf: [0; 256],
            start: HEADROOM,
            len: 0,
        }
    }

    fn fill(&mut self, t: &Template, flow: u32) {
        self.start = HEADROOM;
        self.len = t.len();
        t.write(&mut self.buf[HEADROOM..], flow, 0);
    }
}

impl PacketBuf for Frame {
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
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
        if self.start + len > self.buf.len() {
            return false;
        }
        self.len = len;
        true
    }
}

fn modes() -> Vec<Mode> {
    std::env::var("RVS_BENCH_MODES")
        .unwrap_or_else(|_| "dr,tun,nat,fnat".into())
        .split(',')
        .filter_map(|s| Mode::parse(s.trim()))
        .filter(|m| *m != Mode::Testpmd)
        .collect()
}

/// A worker of `plan`'s director with room for `capacity` connections, every real server's
/// MAC known.
fn worker(plan: &Plan, capacity: u32) -> Worker {
    let yaml = plan.profile_yaml(&ProfileOptions {
        socket: "/run/rvs-perf/bench.sock".into(),
        zero_copy: false,
        capacity,
        mem_mb: 128,
        main_lcore: 0,
        worker_lcore: 1,
        shm: "/dev/shm/rvs-perf-bench".into(),
    });
    let profile = Profile::parse(&yaml, "bench.yaml").expect("profile");
    let snap = Snapshot::build(&profile, &[plan.director_mac]).expect("snapshot");
    for (i, _) in snap.neigh.slots().iter().enumerate() {
        snap.neigh.set(i, Some(MacAddr([2, 0, 0, 0, 1, i as u8])));
    }
    Worker::new(
        0,
        Arc::new(snap),
        capacity as usize,
        [1, 2],
        Arc::new(ArrayQueue::new(16)),
    )
}

fn established(c: &mut Criterion) {
    for mode in modes() {
        let mut g = c.benchmark_group(format!("{mode}_established"));
        g.throughput(Throughput::Elements(1));
        for flows in env_list::<u32>("RVS_BENCH_FLOWS", "1000,100000,1000000") {
            let plan = Plan::new(mode, Proto::Tcp, flows, 0, 4);
            let mut w = worker(&plan, pow2_at_least(u64::from(flows)) as u32);
            let syn = Template::request(&plan, tcp_flag::SYN);
            let ack = Template::request(&plan, tcp_flag::ACK);
            let data = Template::request(&plan, tcp_flag::PSH | tcp_flag::ACK);
            let mut f = Frame::new();
            for t in [&syn, &ack] {
                for flow in 0..flows {
                    f.fill(t, flow);
                    let v = w.process(&mut f, 0, 0);
                    assert!(matches!(v, Verdict::Tx(0)), "{mode} flow {flow}: {v:?}");
                }
            }
            let mut walk = StrideWalk::new(flows);
            g.bench_with_input(BenchmarkId::from_parameter(flows), &flows, |b, _| {
                b.iter(|| {
                    f.fill(&data, walk.next_flow());
                    w.process(&mut f, 0, 1)
                })
            });
            let before = w.counters;
            for flow in 0..flows.min(1000) {
                f.fill(&data, flow);
                w.process(&mut f, 0, 1);
            }
            assert_eq!(
                w.counters.forwarded - before.forwarded,
                u64::from(flows.min(1000)),
                "{mode}: every packet forwarded"
            );
            assert_eq!(
                w.counters.total_drops(),
                0,
                "{mode}: no drops: {:?}",
                w.counters
            );
        }
        g.finish();
    }
}

fn new_connections(c: &mut Criterion) {
    for mode in modes() {
        let mut g = c.benchmark_group(format!("{mode}_new_connection"));
        g.throughput(Throughput::Elements(1));
        let n = 1u32 << 20;
        // Every client of one pass gets a connection; they expire (SYN_RECV, 60 s) before the
        // next pass reuses their tuples.
        let plan = Plan::new(mode, Proto::Tcp, n, 0, 4);
        let mut w = worker(&plan, 2 * n);
        let syn = Template::request(&plan, tcp_flag::SYN);
        let mut k = 0u32;
        let mut now = 0u32;
        let mut f = Frame::new();
        g.bench_function("syn", |b| {
            b.iter(|| {
                f.fill(&syn, k);
                k += 1;
                if k == n {
                    k = 0;
                    now += 61;
                }
                w.process(&mut f, 0, now)
            })
        });
        g.finish();
        assert_eq!(
            w.counters.total_drops(),
            0,
            "{mode}: no drops: {:?}",
            w.counters
        );
        assert_eq!(
            w.counters.connections, w.counters.forwarded,
            "{mode}: every SYN a new connection"
        );
    }
}

/// What building a frame costs (included in the figures above, which build one per packet
/// into the same buffer so it stays in L1 as a received frame would be in cache).
fn frame_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    let plan = Plan::new(Mode::Dr, Proto::Tcp, 1_000_000, 0, 4);
    let data = Template::request(&plan, tcp_flag::PSH | tcp_flag::ACK);
    let mut walk = StrideWalk::new(plan.flows);
    let mut f = Frame::new();
    g.bench_function("build", |b| {
        b.iter(|| {
            f.fill(&data, walk.next_flow());
            f.buf[HEADROOM + 30]
        })
    });
    g.finish();
}

criterion_group!(benches, frame_build, established, new_connections);
criterion_main!(benches);
