//! The pipeline in a tight loop, for profiling (`perf record`, `valgrind --tool=callgrind`)
//! and for timings on a busy machine: besides wall time it reports this thread's time on a
//! CPU (from the scheduler), which other load on the machine barely changes.
//!
//! `cargo run --release -p rvs-perf --example hot -- FLOWS SECONDS [burst|syn]`
//! * default: established DR flows through `Worker::process`, frames in arrival order, flows
//!   scattered; `burst`: the same through `process_burst`, 32 at a time;
//! * `syn`: new connections as the criterion bench makes them (FLOWS SYNs in turn, the clock
//!   61 s later after each pass, so each SYN meets its expired predecessor).
//!
//! A negative SECONDS runs that many packets instead (deterministic, for callgrind: the
//! instructions per packet are the difference between two counts over the difference).
use std::time::Instant;

use rvs_dataplane::pipeline::{SliceFrame, Verdict};
use rvs_dataplane::wire::tcp_flag;
use rvs_perf::fixture::{PORT_MAC, frame, worker};

/// This thread's time on a CPU (ns), from the scheduler: robust to other load on the machine.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flows: u32 = args.get(1).map_or(1_000_000, |s| s.parse().unwrap());
    let secs: f64 = args.get(2).map_or(5.0, |s| s.parse().unwrap());
    let burst = args.get(3).is_some_and(|s| s == "burst");
    let syn = args.get(3).is_some_and(|s| s == "syn");
    let mut w = worker(flows as usize);
    if syn {
        // New connections, as the criterion bench: FLOWS SYNs in turn, the clock 61 s later
        // after each pass so that the last pass's SYN_RECV connections are all due.
        let mut frames: Vec<[u8; 64]> = (0..flows).map(|i| frame(i, tcp_flag::SYN)).collect();
        let (mut n, mut now, mut k) = (0u64, 0u32, 0usize);
        let start = Instant::now();
        let cpu0 = cpu_ns();
        while if secs < 0.0 {
            (n as f64) < -secs
        } else {
            n % 4096 != 0 || start.elapsed().as_secs_f64() < secs
        } {
            let f = &mut frames[k];
            f[..6].copy_from_slice(&PORT_MAC.0);
            std::hint::black_box(w.process(&mut SliceFrame::new(f), 0, now));
            n += 1;
            k += 1;
            if k == frames.len() {
                k = 0;
                now += 61;
            }
        }
        let cpu = cpu_ns() - cpu0;
        eprintln!(
            "{n} SYNs, {:.1} ns/packet wall, {:.1} ns/packet on CPU",
            start.elapsed().as_secs_f64() * 1e9 / n as f64,
            cpu as f64 / n as f64
        );
        assert_eq!(w.counters.total_drops(), 0);
        return;
    }
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
    let n = (flows as usize).next_multiple_of(32);
    let mut frames: Vec<[u8; 64]> = (0..n)
        .map(|k| {
            let i = (k % flows as usize).wrapping_mul(2_654_435_761) % flows as usize;
            frame(i as u32, tcp_flag::ACK)
        })
        .collect();
    let start = Instant::now();
    let cpu0 = cpu_ns();
    let mut n = 0u64;
    let mut verdicts = [Verdict::Consumed; 32];
    'outer: loop {
        for chunk in frames.chunks_mut(32) {
            for f in chunk.iter_mut() {
                f[..6].copy_from_slice(&PORT_MAC.0);
            }
            if burst {
                let mut it = chunk.iter_mut();
                let mut bufs: [SliceFrame; 32] = std::array::from_fn(|_| {
                    SliceFrame::new(&mut it.next().expect("whole bursts")[..])
                });
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
    let cpu = cpu_ns() - cpu0;
    eprintln!(
        "{n} packets, {:.1} ns/packet wall, {:.1} ns/packet on CPU",
        el * 1e9 / n as f64,
        cpu as f64 / n as f64
    );
    assert_eq!(w.counters.total_drops(), 0);
}
