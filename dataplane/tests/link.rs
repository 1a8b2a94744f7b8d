//! The main lcore's end of the control link over a real shared-memory file: commands are
//! answered in order, configurations are applied whole or refused whole, corrupt or unknown
//! frames are refused with an error reply and never applied, and workers switch snapshots
//! through their mailboxes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam::queue::ArrayQueue;
use rvs_config::Profile;
use rvs_dataplane::configure::Running;
use rvs_dataplane::link::Link;
use rvs_dataplane::mailbox::Mailbox;
use rvs_dataplane::pipeline::Worker;
use rvs_dataplane::snapshot::Snapshot;
use rvs_dataplane::wire::MacAddr;
use rvs_shm::{Command, Consumer, KIND_COMMAND, Producer, Region, Reply, RingId};

const PROFILE: &str = r#"
dataplane: { main_lcore: 0, workers: [1] }
ports: [{ name: dp0, device: net_null0, addresses: ["10.0.0.10/24"] }]
services:
  - { vip: 10.0.0.100, port: 80, protocol: tcp, scheduler: rr, servers: [{ address: 10.0.0.11 }] }
"#;
const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

struct Rig {
    region: Arc<Region>,
    link: Link,
    snap: Arc<Snapshot>,
    commands: Producer,
    replies: Consumer,
    stop: Arc<AtomicBool>,
    worker: Option<JoinHandle<Worker>>,
    seq: u64,
}

impl Rig {
    fn new(name: &str) -> Rig {
        let path = std::env::temp_dir().join(format!("rvs-link-{}-{name}", std::process::id()));
        let region = Region::create(
            &path,
            &rvs_shm::Params {
                cmd_ring_bytes: 1 << 16,
                reply_ring_bytes: 1 << 16,
                workers: 1,
                entries_per_worker: 64,
            },
        )
        .unwrap();
        let profile = Profile::parse(PROFILE, "link.yaml").unwrap();
        let snap = Arc::new(Snapshot::build(&profile, &[MAC]).unwrap());
        let mailbox = Arc::new(Mailbox::default());
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let mut w = Worker::new(
                0,
                Arc::clone(&snap),
                256,
                [1, 2],
                Arc::new(ArrayQueue::new(8)),
            );
            let mb = Arc::clone(&mailbox);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    mb.serve(&mut w, 1);
                    std::thread::yield_now();
                }
                w
            })
        };
        let link = Link::new(
            Arc::clone(&region),
            Running::new(profile, vec![MAC]),
            vec![mailbox],
        );
        Rig {
            commands: region.command_producer(),
            replies: region.reply_consumer(),
            region,
            link,
            snap,
            stop,
            worker: Some(worker),
            seq: 100,
        }
    }

    fn send(&mut self, cmd: &Command) -> u64 {
        self.seq += 1;
        self.commands
            .send(KIND_COMMAND, self.seq, &cmd.encode())
            .unwrap();
        self.seq
    }

    /// Lets the link serve what is queued; returns the replies in order.
    fn serve(&mut self) -> Vec<(u64, Reply)> {
        if let Some(s) = self.link.serve(&self.snap) {
            self.snap = s;
        }
        let mut out = Vec::new();
        while let Some(f) = self.replies.recv() {
            let f = f.unwrap();
            out.push((f.seq, Reply::decode(&f.payload).unwrap()));
        }
        out
    }

    fn call(&mut self, cmd: &Command) -> Reply {
        let seq = self.send(cmd);
        let mut r = self.serve();
        assert_eq!(r.len(), 1, "{r:?}");
        let (s, reply) = r.pop().unwrap();
        assert_eq!(s, seq);
        reply
    }

    fn config(&mut self) -> (u64, Profile) {
        match self.call(&Command::GetConfig) {
            Reply::Config {
                generation, config, ..
            } => (generation, *config),
            r => panic!("{r:?}"),
        }
    }

    fn finish(mut self) -> Worker {
        self.stop.store(true, Ordering::Relaxed);
        let w = self.worker.take().unwrap().join().unwrap();
        self.region.remove().unwrap();
        w
    }
}

#[test]
fn commands_are_answered_in_order_and_a_configuration_reaches_the_workers() {
    let mut rig = Rig::new("order");
    let (g0, mut next) = rig.config();
    assert_eq!(g0, 0);
    next.services.push(next.services[0].clone());
    next.services[1].vip = Some("10.0.0.101".parse().unwrap());
    let desired = next.clone();

    let s1 = rig.send(&Command::Ping);
    let s2 = rig.send(&Command::Apply {
        generation: 5,
        config: Box::new(next),
        desired: Some(Box::new(desired.clone())),
    });
    let s3 = rig.send(&Command::Ping);
    let replies = rig.serve();
    let seqs: Vec<u64> = replies.iter().map(|r| r.0).collect();
    assert_eq!(seqs, [s1, s2, s3], "one reply per command, in order");
    assert_eq!(
        replies[0].1,
        Reply::Pong {
            generation: 0,
            workers: 1
        }
    );
    assert_eq!(replies[1].1, Reply::Applied { generation: 5 });
    assert_eq!(
        replies[2].1,
        Reply::Pong {
            generation: 5,
            workers: 1
        }
    );
    assert_eq!(rig.region.generation(), 5);
    assert_eq!(rig.snap.services.len(), 2, "the main lcore switched");
    match rig.call(&Command::GetConfig) {
        Reply::Config {
            generation,
            config,
            desired: d,
        } => {
            assert_eq!(generation, 5);
            assert_eq!(config.services.len(), 2);
            assert_eq!(d.map(|d| *d), Some(desired), "the desired form is kept");
        }
        r => panic!("{r:?}"),
    }
    let w = rig.finish();
    assert_eq!(w.snapshot().services.len(), 2, "the worker switched");
}

#[test]
fn invalid_configurations_are_refused_whole() {
    let mut rig = Rig::new("refuse");
    let (_, base) = rig.config();
    let mut bad = base.clone();
    bad.services[0].servers[0].weight = 70_000;
    bad.services.push(bad.services[0].clone()); // also a duplicate: refused at the first error
    match rig.call(&Command::Apply {
        generation: 1,
        config: Box::new(bad),
        desired: None,
    }) {
        Reply::Error { field, .. } => {
            assert_eq!(field.as_deref(), Some("services[0].servers[0].weight"))
        }
        r => panic!("{r:?}"),
    }
    let mut ports = base.clone();
    ports.ports[0].mtu = Some(9000);
    match rig.call(&Command::Apply {
        generation: 1,
        config: Box::new(ports),
        desired: None,
    }) {
        Reply::Error { field, message } => {
            assert_eq!(field.as_deref(), Some("ports"));
            assert!(message.contains("restart"), "{message}");
        }
        r => panic!("{r:?}"),
    }
    let (g, now) = rig.config();
    assert_eq!((g, now), (0, base), "nothing changed");
    let w = rig.finish();
    assert_eq!(w.snapshot().services.len(), 1);
}

#[test]
fn corrupt_and_unknown_frames_are_refused_and_never_applied() {
    let mut rig = Rig::new("corrupt");
    let (_, mut next) = rig.config();
    next.services[0].scheduler = rvs_config::Scheduler::Wrr;
    let apply = Command::Apply {
        generation: 9,
        config: Box::new(next),
        desired: None,
    };
    let seq = rig.send(&apply);
    // Flip a payload byte of the published frame (header is 32 bytes).
    rig.region.corrupt_for_test(RingId::Command, 40, 0x20);
    let r = rig.serve();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0, seq, "the error names the frame's sequence number");
    match &r[0].1 {
        Reply::Error { message, .. } => assert!(message.contains("checksum"), "{message}"),
        x => panic!("{x:?}"),
    }
    assert_eq!(rig.link.rejected, 1);

    // A well-framed payload that is no command.
    rig.seq += 1;
    rig.commands
        .send(KIND_COMMAND, rig.seq, br#"{"type":"reboot"}"#)
        .unwrap();
    match rig.serve().pop() {
        Some((_, Reply::Error { message, .. })) => {
            assert!(message.contains("unknown"), "{message}")
        }
        x => panic!("{x:?}"),
    }
    assert_eq!(rig.config().0, 0, "nothing was applied");
    assert_eq!(rig.snap.services[0].scheduler, rvs_config::Scheduler::Rr);

    // The link still works.
    assert_eq!(rig.call(&apply), Reply::Applied { generation: 9 });
    assert_eq!(rig.snap.services[0].scheduler, rvs_config::Scheduler::Wrr);
    rig.finish();
}

#[test]
fn zero_and_listings_go_through_the_workers() {
    let mut rig = Rig::new("list");
    assert_eq!(
        rig.call(&Command::ListConns {
            offset: 0,
            limit: 10,
            templates: true
        }),
        Reply::Conns {
            items: vec![],
            next_offset: None
        }
    );
    assert_eq!(rig.call(&Command::Zero { service: None }), Reply::Done);
    match rig.call(&Command::Zero {
        service: Some(rvs_shm::SvcKey::default()),
    }) {
        Reply::Error { message, .. } => assert!(!message.is_empty()),
        r => panic!("{r:?}"),
    }
    rig.finish();
}
