//! Any frame through the whole packet parser and pipeline: never a panic, always exactly one
//! verdict, a drop counted once, and a dropped frame left untouched.
#![no_main]

use std::sync::{Arc, OnceLock};

use crossbeam::queue::ArrayQueue;
use libfuzzer_sys::fuzz_target;
use rvs_config::Profile;
use rvs_dataplane::pipeline::{Verdict, Worker};
use rvs_dataplane::snapshot::Snapshot;
use rvs_dataplane::wire::MacAddr;

const PROFILE: &str = "
dataplane: { main_lcore: 0, workers: [1] }
ports: [{ name: dp0, device: net_null0, addresses: [\"10.200.0.10/24\"] }]
services:
  - { vip: 10.200.0.100, port: 80, protocol: tcp, scheduler: rr,
      servers: [{ address: 10.200.0.11 }, { address: 10.200.0.12 }] }
  - { vip: 10.200.0.100, port: 53, protocol: udp, scheduler: wrr,
      servers: [{ address: 10.200.0.11, weight: 2 }, { address: 10.200.0.13 }] }
";

fn snapshot() -> Arc<Snapshot> {
    static SNAP: OnceLock<Arc<Snapshot>> = OnceLock::new();
    SNAP.get_or_init(|| {
        let p = Profile::parse(PROFILE, "fuzz.yaml").expect("profile");
        let s = Snapshot::build(&p, &[MacAddr([2, 0, 0, 0, 0, 0x0a])]).expect("snapshot");
        s.neigh.set(0, Some(MacAddr([2, 0, 0, 0, 0, 0x11])));
        Arc::new(s)
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let mut w = Worker::new(0, snapshot(), 64, [1, 2], Arc::new(ArrayQueue::new(4)));
    // The first bytes of the input steer the frame to the director so that deeper code runs.
    let mut frame = data.to_vec();
    if frame.len() >= 14 && frame[0] & 1 == 0 {
        frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x0a]);
    }
    let before = frame.clone();
    let v = w.process(&mut frame, 0, 1);
    let drops = w.counters.total_drops();
    match v {
        Verdict::Drop(r) => {
            assert_eq!(drops, 1);
            assert_eq!(w.counters.drops[r as usize], 1);
            assert_eq!(frame, before, "a dropped frame is not modified");
        }
        Verdict::Tx(p) => {
            assert_eq!(p, 0);
            assert_eq!(drops, 0);
            assert_eq!(frame.len(), before.len());
        }
        Verdict::Consumed => assert_eq!(drops, 0),
        Verdict::Handoff(w) => panic!("one worker never hands off (to {w})"),
    }
});
