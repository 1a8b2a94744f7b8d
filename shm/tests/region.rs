//! The region as the two processes use it: create/attach, header fields, the rings through
//! separate mappings of one file, corruption, and the stats seqlock under a live writer.

use std::fs::{self, OpenOptions};
use std::net::Ipv4Addr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rvs_shm::{
    AttachError, Command, DROP_SLOTS, FrameError, KIND_COMMAND, KIND_REPLY, Params, Region, Reply,
    RingError, RingId, TrafficEntry, WORKER_COUNTERS,
};

fn small() -> Params {
    Params {
        cmd_ring_bytes: 1024,
        reply_ring_bytes: 1024,
        workers: 4,
        entries_per_worker: 8,
    }
}

fn tmp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rvs");
    (dir, path)
}

#[test]
fn handles_are_send_and_rings_are_not_shared_between_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<rvs_shm::Producer>();
    send::<rvs_shm::Consumer>();
    send::<rvs_shm::StatsWriter>();
    send::<rvs_shm::StatsReader>();
    sync::<Region>();
    sync::<rvs_shm::StatsReader>();
    // Producer and Consumer are deliberately !Sync (one end per ring); not checkable here
    // without a compile-fail harness.
}

#[test]
fn create_then_attach_shares_header_fields() {
    let (_dir, path) = tmp();
    let dp = Region::create(&path, &small()).unwrap();
    let file = fs::read(&path).unwrap();
    assert_eq!(&file[..8], b"RVSSHM01");
    assert_eq!(file.len(), dp.len());
    assert!(file.len().is_multiple_of(4096));
    // No temporary file is left next to it.
    assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);

    let ctl = Region::attach(&path).unwrap();
    assert_eq!(ctl.params(), small());
    assert_eq!(ctl.dataplane_pid(), std::process::id());
    assert_eq!(ctl.boot_id(), dp.boot_id());
    assert_ne!(dp.boot_id(), 0);
    assert!(ctl.is_current());

    dp.set_dataplane_heartbeat(1_700_000_000_123);
    dp.set_generation(9);
    dp.set_workers(3);
    ctl.set_control_pid(4242);
    ctl.set_control_heartbeat(1_700_000_000_456);
    assert_eq!(ctl.dataplane_heartbeat(), 1_700_000_000_123);
    assert_eq!(ctl.generation(), 9);
    assert_eq!(ctl.workers(), 3);
    assert_eq!(dp.control_pid(), 4242);
    assert_eq!(dp.control_heartbeat(), 1_700_000_000_456);
    dp.set_workers(99);
    assert_eq!(ctl.workers(), 4, "clamped to the blocks that exist");
}

#[test]
fn default_params_and_invalid_params() {
    let p = Params::default();
    assert_eq!(
        (
            p.cmd_ring_bytes,
            p.reply_ring_bytes,
            p.workers,
            p.entries_per_worker
        ),
        (4 << 20, 4 << 20, 16, 4096)
    );
    let (_dir, path) = tmp();
    // The default region (about 12 MiB) is created, reserved and attachable.
    let dp = Region::create(&path, &p).unwrap();
    assert!(dp.len() > 8 << 20 && dp.len().is_multiple_of(4096));
    assert_eq!(Region::attach(&path).unwrap().params(), p);
    dp.remove().unwrap();
    drop(dp);
    for bad in [
        Params {
            cmd_ring_bytes: 1000,
            ..small()
        },
        Params {
            reply_ring_bytes: 3 << 20,
            ..small()
        },
        Params {
            cmd_ring_bytes: 128,
            ..small()
        },
        Params {
            workers: 100_000,
            ..small()
        },
    ] {
        let err = Region::create(&path, &bad).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
    assert!(!path.exists());
    let err = Region::create(
        &path,
        &Params {
            cmd_ring_bytes: 1000,
            ..small()
        },
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("cmd_ring_bytes 1000 is not a power of two"),
        "{err}"
    );
}

#[test]
fn attach_rejects_a_foreign_file() {
    let (_dir, path) = tmp();
    fs::write(&path, vec![b'x'; 8192]).unwrap();
    let err = Region::attach(&path).unwrap_err();
    assert!(matches!(err, AttachError::NotRvs { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{}: not an RVS shared-memory file", path.display())
    );
    fs::write(&path, b"").unwrap();
    assert!(matches!(
        Region::attach(&path),
        Err(AttachError::NotRvs { .. })
    ));
}

#[test]
fn attach_rejects_a_missing_file() {
    let (_dir, path) = tmp();
    let err = Region::attach(&path).unwrap_err();
    assert!(matches!(err, AttachError::Io { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&path.display().to_string()));
}

#[test]
fn attach_rejects_a_short_file() {
    let (_dir, path) = tmp();
    let dp = Region::create(&path, &small()).unwrap();
    let full = dp.len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    let err = Region::attach(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: file is 100 bytes, header describes {full}",
            path.display()
        )
    );
    // Shorter by one page only.
    drop(dp);
    let dp = Region::create(&path, &small()).unwrap();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(full as u64 - 4096)
        .unwrap();
    assert!(matches!(
        Region::attach(&path),
        Err(AttachError::Short { len, need, .. }) if len + 4096 == need
    ));
    drop(dp);
}

#[test]
fn attach_rejects_another_layout_version() {
    let (_dir, path) = tmp();
    let _dp = Region::create(&path, &small()).unwrap();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_at(&2u32.to_ne_bytes(), 8).unwrap();
    let err = Region::attach(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: layout version 2, this build reads 1", path.display())
    );
}

#[test]
fn attach_rejects_an_inconsistent_header() {
    let (_dir, path) = tmp();
    let _dp = Region::create(&path, &small()).unwrap();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    // cmd_ring_bytes (offset 32) that is not a power of two.
    f.write_at(&1000u64.to_ne_bytes(), 32).unwrap();
    let err = Region::attach(&path).unwrap_err();
    assert!(matches!(err, AttachError::Inconsistent { .. }), "{err:?}");
    assert!(err.to_string().contains("cmd_ring_bytes 1000"), "{err}");
}

#[test]
fn is_current_follows_recreate_and_remove() {
    let (_dir, path) = tmp();
    let first = Region::create(&path, &small()).unwrap();
    let ctl = Region::attach(&path).unwrap();
    assert!(first.is_current() && ctl.is_current());

    // The dataplane restarts: a new file replaces the old one.
    let second = Region::create(&path, &small()).unwrap();
    assert!(!first.is_current());
    assert!(!ctl.is_current());
    assert!(second.is_current());
    assert_ne!(first.boot_id(), second.boot_id());
    // The old mapping still works (the inode lives on while mapped).
    ctl.command_producer().send(KIND_COMMAND, 1, b"{}").unwrap();
    assert_eq!(first.command_consumer().recv().unwrap().unwrap().seq, 1);
    assert!(second.command_consumer().recv().is_none());

    let ctl2 = Region::attach(&path).unwrap();
    assert!(ctl2.is_current());
    assert_eq!(ctl2.boot_id(), second.boot_id());

    // Removing through a stale handle leaves the current file alone.
    first.remove().unwrap();
    assert!(path.exists());
    second.remove().unwrap();
    assert!(!path.exists());
    assert!(!ctl2.is_current());
    second.remove().unwrap(); // idempotent
}

#[test]
fn command_and_reply_across_two_mappings() {
    let (_dir, path) = tmp();
    let dp = Region::create(&path, &small()).unwrap();
    let ctl = Region::attach(&path).unwrap();
    let (cmd_tx, cmd_rx) = (ctl.command_producer(), dp.command_consumer());
    let (rep_tx, rep_rx) = (dp.reply_producer(), ctl.reply_consumer());

    cmd_tx
        .send(KIND_COMMAND, 77, &Command::Ping.encode())
        .unwrap();
    let f = cmd_rx.recv().unwrap().unwrap();
    assert_eq!((f.kind, f.seq), (KIND_COMMAND, 77));
    assert_eq!(Command::decode(&f.payload).unwrap(), Command::Ping);
    let answer = Reply::Pong {
        generation: 1,
        workers: 2,
    };
    rep_tx.send(KIND_REPLY, f.seq, &answer.encode()).unwrap();
    let r = rep_rx.recv().unwrap().unwrap();
    assert_eq!((r.kind, r.seq), (KIND_REPLY, 77));
    assert_eq!(Reply::decode(&r.payload).unwrap(), answer);
    assert!(cmd_rx.recv().is_none() && rep_rx.recv().is_none());

    // The rings are independent and sized as asked.
    assert_eq!(cmd_tx.max_payload(), 512 - 32);
    assert_eq!(
        cmd_tx.send(KIND_COMMAND, 1, &[b' '; 481]),
        Err(RingError::TooLarge)
    );
}

#[test]
fn reattaching_control_drains_stale_replies() {
    let (_dir, path) = tmp();
    let dp = Region::create(&path, &small()).unwrap();
    let rep_tx = dp.reply_producer();
    {
        let old = Region::attach(&path).unwrap();
        old.command_producer().send(KIND_COMMAND, 1, b"{}").unwrap();
        // The control process dies before reading the answer.
    }
    rep_tx.send(KIND_REPLY, 1, &Reply::Done.encode()).unwrap();
    rep_tx.send(KIND_REPLY, 2, &Reply::Done.encode()).unwrap();
    let new = Region::attach(&path).unwrap();
    let rx = new.reply_consumer();
    assert_eq!(rx.pending(), 2 * (32 + 16));
    assert_eq!(rx.drain(), 2 * (32 + 16));
    assert!(rx.recv().is_none());
    rep_tx
        .send(KIND_REPLY, 1000, &Reply::Done.encode())
        .unwrap();
    assert_eq!(rx.recv().unwrap().unwrap().seq, 1000);
}

#[test]
fn corrupted_frames_are_reported_never_delivered() {
    let (_dir, path) = tmp();
    let dp = Region::create(&path, &small()).unwrap();
    let ctl = Region::attach(&path).unwrap();
    let (tx, rx) = (ctl.command_producer(), dp.command_consumer());
    let cases: [(u64, u8, FrameError); 4] = [
        (40, 0x01, FrameError::BadChecksum { seq: 10 }), // payload byte
        (1, 0x10, FrameError::BadMagic),
        (26, 0x01, FrameError::BadLength(15 | 1 << 16)), // len beyond the ring
        (4, 0x02, FrameError::BadVersion(3)),
    ];
    for (i, (offset, mask, expected)) in cases.into_iter().enumerate() {
        let seq = 10 * (i as u64 + 1);
        tx.send(KIND_COMMAND, seq, &Command::Ping.encode()).unwrap();
        // The second frame was published before the corruption is noticed: skipped too.
        tx.send(KIND_COMMAND, seq + 1, &Command::GetConfig.encode())
            .unwrap();
        ctl.corrupt_for_test(RingId::Command, offset, mask);
        assert_eq!(rx.recv(), Some(Err(expected)), "case {i}");
        assert_eq!(
            rx.recv(),
            None,
            "case {i}: a frame after the corruption was delivered"
        );
        tx.send(KIND_COMMAND, seq + 2, &Command::GetConfig.encode())
            .unwrap();
        let f = rx.recv().unwrap().unwrap();
        assert_eq!(f.seq, seq + 2, "case {i}");
        assert_eq!(Command::decode(&f.payload).unwrap(), Command::GetConfig);
    }
}

#[test]
fn ring_back_pressure_through_the_region() {
    let (_dir, path) = tmp();
    let dp = Region::create(&path, &small()).unwrap();
    let (tx, rx) = (dp.reply_producer(), dp.reply_consumer());
    let payload = [b'a'; 200]; // 232-byte frames: four fit in 1024 bytes
    for seq in 0..4 {
        tx.send(KIND_REPLY, seq, &payload).unwrap();
    }
    assert_eq!(tx.send(KIND_REPLY, 4, &payload), Err(RingError::Full));
    assert_eq!(rx.recv().unwrap().unwrap().seq, 0);
    tx.send(KIND_REPLY, 4, &payload).unwrap();
    let seqs: Vec<u64> = std::iter::from_fn(|| rx.recv())
        .map(|f| f.unwrap().seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

fn entry(k: u64, i: u64) -> TrafficEntry {
    let x = k.wrapping_mul(1_000) + i;
    TrafficEntry {
        protocol: 6,
        vip: Ipv4Addr::from(x as u32),
        vport: x as u16,
        fwmark: 0,
        raddr: Ipv4Addr::from((x >> 1) as u32),
        rport: (x >> 2) as u16,
        conns: x,
        inpkts: x + 1,
        outpkts: x + 2,
        inbytes: x + 3,
        outbytes: x + 4,
        active: (x % 1_000_000) as u32,
        inactive: (x % 999) as u32,
        persistent: (x % 7) as u32,
    }
}

#[test]
fn stats_publish_and_read() {
    let (_dir, path) = tmp();
    let dp = Region::create(&path, &small()).unwrap();
    let ctl = Region::attach(&path).unwrap();
    let reader = ctl.stats_reader();
    assert_eq!(reader.read(0), None, "never published");
    assert_eq!(reader.read(4), None, "no such block");
    dp.set_workers(2);

    let mut w1 = dp.stats_writer(1);
    let counters: Vec<u64> = (0..WORKER_COUNTERS as u64).map(|i| i * 3).collect();
    let drops = [5u64, 6, 7];
    w1.publish(3, 42, &counters, &drops, (0..5).map(|i| entry(1, i)));
    let s = reader.read(1).unwrap();
    assert_eq!((s.lcore, s.generation, s.truncated), (3, 42, 0));
    assert_eq!(s.counters, counters);
    assert_eq!(s.drops.len(), DROP_SLOTS);
    assert_eq!(&s.drops[..4], &[5, 6, 7, 0]);
    assert_eq!(s.entries, (0..5).map(|i| entry(1, i)).collect::<Vec<_>>());
    let all = reader.read_all();
    assert_eq!(all.len(), 2);
    assert!(all[0].is_none());
    assert_eq!(all[1].as_ref(), Some(&s));

    // More entries than the block holds: the first 8 are kept, the rest counted.
    w1.publish(3, 43, &[], &[], (0..11).map(|i| entry(2, i)));
    let s = reader.read(1).unwrap();
    assert_eq!((s.generation, s.truncated, s.entries.len()), (43, 3, 8));
    assert_eq!(s.entries, (0..8).map(|i| entry(2, i)).collect::<Vec<_>>());
    assert!(s.counters.iter().all(|&c| c == 0));
    // And fewer again.
    w1.publish(3, 44, &[], &[], [entry(3, 0)]);
    let s = reader.read(1).unwrap();
    assert_eq!((s.truncated, s.entries.len()), (0, 1));
}

#[test]
#[should_panic(expected = "stats block 4 does not exist")]
fn stats_writer_out_of_range_panics() {
    let (_dir, path) = tmp();
    let dp = Region::create(&path, &small()).unwrap();
    let _ = dp.stats_writer(4);
}

/// A writer publishing patterns in which every field is a function of one counter `k`, and a
/// reader (on another mapping) checking it never sees a mix of two publishes.
#[test]
fn seqlock_reader_never_sees_a_torn_block() {
    let (_dir, path) = tmp();
    let dp = Region::create(&path, &small()).unwrap();
    let ctl = Region::attach(&path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    const MIN_READS: u64 = 2_000;
    const MAX_PUBLISHES: u64 = 5_000_000;

    std::thread::scope(|s| {
        let writer = {
            let stop = stop.clone();
            let mut w = dp.stats_writer(2);
            s.spawn(move || {
                let mut counters = [0u64; WORKER_COUNTERS];
                let mut drops = [0u64; DROP_SLOTS];
                let mut k = 1u64;
                while !stop.load(Ordering::Relaxed) && k < MAX_PUBLISHES {
                    for (i, c) in counters.iter_mut().enumerate() {
                        *c = k * 100 + i as u64;
                    }
                    for (i, d) in drops.iter_mut().enumerate() {
                        *d = k * 7 + i as u64;
                    }
                    let n = k % 12; // sometimes beyond the 8 slots
                    w.publish(k as u32, k, &counters, &drops, (0..n).map(|i| entry(k, i)));
                    k += 1;
                }
                k
            })
        };
        // Stops the writer however this thread leaves the scope (a failed assertion too).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let guard = StopOnDrop(&stop);
        let reader = ctl.stats_reader();
        let (mut reads, mut distinct, mut last) = (0u64, 0u64, 0u64);
        while reads < MIN_READS || distinct < 50 {
            if writer.is_finished() {
                break;
            }
            let Some(st) = reader.read(2) else { continue };
            let k = st.generation;
            assert_eq!(u64::from(st.lcore), k, "lcore torn from generation");
            for (i, &c) in st.counters.iter().enumerate() {
                assert_eq!(c, k * 100 + i as u64, "counter {i} torn at k={k}");
            }
            for (i, &d) in st.drops.iter().enumerate() {
                assert_eq!(d, k * 7 + i as u64, "drop {i} torn at k={k}");
            }
            let n = k % 12;
            assert_eq!(st.entries.len() as u64, n.min(8), "n_entries torn at k={k}");
            assert_eq!(u64::from(st.truncated), n.saturating_sub(8));
            for (i, e) in st.entries.iter().enumerate() {
                assert_eq!(*e, entry(k, i as u64), "entry {i} torn at k={k}");
            }
            assert!(k >= last, "went back in time: {k} after {last}");
            if k != last {
                distinct += 1;
                last = k;
            }
            reads += 1;
        }
        drop(guard);
        let published = writer.join().unwrap();
        assert!(
            reads >= MIN_READS && distinct >= 50,
            "only {reads} reads of {distinct} publishes while {published} were published"
        );
    });
}
