//! Pipeline cost per packet through `Worker::process_burst` (what the worker loop calls), no
//! I/O: DR with rr. `cargo bench -p rvs-perf --bench burst`. The per-packet `process` figures
//! for every mode are in `benches/pipeline.rs`.
//!
//! `dr_established_burst` runs established flows (1k to 10M) through `process_burst` 32 frames
//! at a time, as the worker loop does, with the frames in arrival order (a NIC ring) and the
//! flows scattered; its time is per packet. Each table's memory per connection is printed.
//! `RVS_BENCH_FLOWS` narrows the flow counts (`rvs-perf-run` passes its own).

use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rvs_dataplane::pipeline::{SliceFrame, Verdict, Worker};
use rvs_dataplane::wire::tcp_flag;
use rvs_perf::fixture::{burst_of, env_list, frame, worker};

/// Prints the connection table's memory (and how much of the process is on huge pages).
fn report_memory(w: &Worker, flows: u32) {
    let t = w.conns();
    let huge = std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .unwrap_or_else(|| "?".into());
    eprintln!(
        "{flows} flows: table {:.1} MiB for {} slots = {:.1} B per connection; \
         process AnonHugePages {huge} kB",
        t.memory_bytes() as f64 / (1 << 20) as f64,
        t.capacity(),
        t.memory_bytes() as f64 / t.capacity() as f64,
    );
}

fn established_burst(c: &mut Criterion) {
    const BURST: usize = 32;
    let mut g = c.benchmark_group("dr_established_burst");
    g.throughput(Throughput::Elements(1));
    // `RVS_BENCH_FLOWS` (comma-separated) narrows the flow counts, as for `benches/pipeline.rs`.
    for flows in env_list::<u32>("RVS_BENCH_FLOWS", "1000,100000,1000000,10000000") {
        let mut w = worker(flows as usize);
        for i in 0..flows {
            let v = w.process(&mut SliceFrame::new(&mut frame(i, tcp_flag::SYN)), 0, 0);
            assert!(matches!(v, Verdict::Tx(0)), "{v:?}");
        }
        report_memory(&w, flows);
        // Arrival order: flows scattered, frames one after the other (whole bursts).
        let n = (flows as usize).next_multiple_of(BURST);
        let mut frames: Vec<[u8; 64]> = (0..n)
            .map(|k| {
                let i = (k % flows as usize).wrapping_mul(2_654_435_761) % flows as usize;
                frame(i as u32, tcp_flag::ACK)
            })
            .collect();
        let mut verdicts = [Verdict::Consumed; BURST];
        let mut at = 0usize;
        let mut run = |w: &mut Worker, bursts: u64| {
            let start = Instant::now();
            for _ in 0..bursts {
                let mut bufs = burst_of(&mut frames[at..at + BURST]);
                w.process_burst(&mut bufs, 0, 1, &mut verdicts);
                at = if at + BURST == n { 0 } else { at + BURST };
            }
            start.elapsed()
        };
        g.bench_with_input(BenchmarkId::from_parameter(flows), &flows, |b, _| {
            // An iteration is a packet: whole bursts, scaled to the packets asked for.
            b.iter_custom(|iters| {
                let bursts = iters.div_ceil(BURST as u64);
                run(&mut w, bursts).mul_f64(iters as f64 / (bursts * BURST as u64) as f64)
            })
        });
        let before = w.counters;
        run(&mut w, 100);
        assert_eq!(w.counters.forwarded - before.forwarded, 100 * BURST as u64);
        assert_eq!(w.counters.total_drops(), 0, "no drops: {:?}", w.counters);
    }
    g.finish();
}

/// As `new_connections`, through `process_burst` 32 SYNs at a time; time per connection.
fn new_connections_burst(c: &mut Criterion) {
    const BURST: usize = 32;
    let mut g = c.benchmark_group("dr_new_connection_burst");
    g.throughput(Throughput::Elements(1));
    let n = 1usize << 20;
    let mut w = worker(n);
    let mut frames: Vec<[u8; 64]> = (0..n as u32).map(|i| frame(i, tcp_flag::SYN)).collect();
    let mut verdicts = [Verdict::Consumed; BURST];
    let (mut at, mut now) = (0usize, 0u32);
    g.bench_function("syn", |b| {
        b.iter_custom(|iters| {
            let bursts = iters.div_ceil(BURST as u64);
            let start = Instant::now();
            for _ in 0..bursts {
                let mut bufs = burst_of(&mut frames[at..at + BURST]);
                w.process_burst(&mut bufs, 0, now, &mut verdicts);
                at += BURST;
                if at == n {
                    // Every SYN_RECV flow of the last pass expires before the next one.
                    at = 0;
                    now += 61;
                }
            }
            start
                .elapsed()
                .mul_f64(iters as f64 / (bursts * BURST as u64) as f64)
        })
    });
    g.finish();
    assert_eq!(w.counters.total_drops(), 0, "no drops: {:?}", w.counters);
    assert_eq!(
        w.counters.connections, w.counters.forwarded,
        "every SYN a new connection"
    );
}

criterion_group!(benches, established_burst, new_connections_burst);
criterion_main!(benches);
