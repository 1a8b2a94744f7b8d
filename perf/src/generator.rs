//! The generator's DPDK side: one memif server port polled by one lcore that plays every
//! client and, for NAT and FullNAT, every real server.
//!
//! One loop does everything: receive a burst and judge each frame ([`Checker`]): answer ARP
//! for the real servers, answer requests as their real server would ([`answer_in_place`]),
//! send a client's next packet where an exchange calls for one (new-connection phase), count
//! and time what came back; then send what is pending; then, when nothing is pending, build a
//! burst of new requests from the phase's source. Frames that cannot be sent stay pending (memif
//! pushes back when the director's ring is full), so the generator never drops its own packets.
//!
//! Phases, in order: wait until the link is up and every real server's ARP was answered;
//! open the flows (TCP: a SYN pass, then an ACK pass); established packets at full rate, then
//! at half that rate (latency); new connections over fresh tuples.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dpdk::{BURST, Eal, Mbuf, MbufBurst, Mempool, Port, PortConf, RxQueue, TxQueue};
use hdrhistogram::Histogram;
use rvs_dataplane::wire::{MacAddr, make_reply_in_place, tcp_flag};

use crate::packet::{
    Checker, Expect, Mismatch, Seen, Template, answer_in_place, even_spread, server_answer,
};
use crate::plan::{Mode, Plan, Proto, StrideWalk, memif_devargs};
use crate::result::{Blast, Cps, Mem, PktgenResult};

/// What to run.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Topology, mode, flows.
    pub plan: Plan,
    /// memif socket file (this side is the server and creates it).
    pub socket: String,
    /// The lcore (CPU) the generator runs on.
    pub lcore: u32,
    /// Hugepage memory for the EAL, MiB.
    pub mem_mb: u32,
    /// Full-rate phase, seconds (the first `warmup` of them are not counted).
    pub sat_secs: f64,
    /// Requests per second in the "full-rate" phase instead of as fast as the link takes them
    /// (the half-rate phase then runs at half of what came back).
    pub rate: Option<f64>,
    /// Half-rate phase, seconds.
    pub half_secs: f64,
    /// Not counted at the start of each timed phase, seconds.
    pub warmup_secs: f64,
    /// New-connection phase, seconds at most.
    pub cps_secs: f64,
    /// Connections in progress at most during the new-connection phase.
    pub cps_window: u64,
    /// Requests in flight at most while opening flows and at full rate: below the memif
    /// ring (1024), so what the director sends back always fits and the generator never
    /// makes the director drop.
    pub window: u64,
    /// How long to wait for the link and the director's ARP, seconds.
    pub ready_secs: f64,
    /// A file that will hold the director's pid (for its memory figures).
    pub pidfile: Option<PathBuf>,
    /// Skip opening flows and the new-connection phase (testpmd, idle memory).
    pub only_ready: bool,
    /// Print progress lines (`progress PHASE PERCENT`) on stdout.
    pub progress: bool,
}

/// Phase of the loop: decides what a returned packet leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    Open,
    Blast,
    Cps,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    /// New requests sent.
    sent: u64,
    /// Frames back that were right.
    returned: u64,
    /// Of them, inside the counted window.
    window: u64,
    /// Openings (SYN / first UDP packet) that came back.
    opened: u64,
    /// Bare ACKs that reached a real server.
    acked: u64,
    /// Connections whose FIN came back (new-connection phase).
    completed: u64,
    /// Connection attempts started (new-connection phase).
    started: u64,
    /// Frames the generator answered (ARP, real-server replies, client follow-ups).
    answered: u64,
    /// Trips that ended (a packet back at the end of its way, or wrong), for the window.
    finished: u64,
    mismatches: [u64; Mismatch::COUNT],
}

const PENDING: usize = 128;

/// The generator.
struct Engine<'a> {
    rx: RxQueue,
    tx: TxQueue,
    pool: &'a Mempool,
    plan: Plan,
    checker: Checker,
    expect: Expect,
    syn: Template,
    ack: Template,
    data: Template,
    ackfin: Template,
    pending: MbufBurst<PENDING>,
    free: MbufBurst<BURST>,
    hz: u64,
    c: Counters,
    total_mismatches: [u64; Mismatch::COUNT],
    hist: Histogram<u64>,
    window: (u64, u64),
    phase: Phase,
    arp_seen: Vec<bool>,
    director_mac: Option<MacAddr>,
    last_rx: u64,
    probe_back: bool,
    window_max: u64,
    progress: Option<Progress>,
}

#[derive(Debug)]
struct Progress {
    last: Instant,
}

impl Progress {
    fn report(&mut self, phase: &str, done: f64) {
        // At most five lines a second, but the end of the run is always told.
        if self.last.elapsed() >= Duration::from_millis(200) || phase == "finished" {
            self.last = Instant::now();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "progress {phase} {:.0}",
                (done * 100.0).clamp(0.0, 100.0)
            );
            let _ = out.flush();
        }
    }
}

/// Why the generator could not run.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// DPDK refused something.
    #[error("{0}")]
    Dpdk(#[from] dpdk::Error),
    /// The director never showed up.
    #[error("{0}")]
    NotReady(String),
}

/// Runs the generator: initialises the EAL, runs every phase, tears down. The result carries
/// what was measured and what went wrong.
pub fn run(opts: &GenOptions) -> Result<PktgenResult, GenError> {
    let _ = std::fs::remove_file(&opts.socket);
    let args = [
        "-l".to_owned(),
        opts.lcore.to_string(),
        "--in-memory".into(),
        "-m".into(),
        opts.mem_mb.to_string(),
        "--no-pci".into(),
        "--log-level=*:notice".into(),
    ];
    let eal = Eal::init(&args)?;
    let result = run_with_eal(opts);
    drop(eal);
    let _ = std::fs::remove_file(&opts.socket);
    result
}

fn run_with_eal(opts: &GenOptions) -> Result<PktgenResult, GenError> {
    let pool = Mempool::pktmbuf("pktgen_pool", 16383, 256, 2048 + 128, None)?;
    let devargs = memif_devargs("server", &opts.socket, Some(opts.plan.pktgen_mac), false);
    let mut port = Port::probe(&devargs)?;
    port.configure_and_start(
        &PortConf {
            rss: false,
            ..PortConf::default()
        },
        &pool,
    )?;
    let rx = port.rx_queue(0).expect("queue 0");
    let tx = port.tx_queue(0).expect("queue 0");
    let result = {
        let mut e = Engine::new(opts, rx, tx, &pool);
        let r = e.run_all(opts, &port);
        // The director must leave the link before this side closes it: DPDK 22.11's memif
        // client unmaps its rings from the interrupt thread when the server goes away, while
        // its poll loop may be inside a burst on them (the director then faults).
        e.progress("finished", 1.0);
        wait_peer_gone(opts, Duration::from_secs(30));
        r
    };
    drop(port);
    drop(pool);
    result
}

/// Waits (at most `limit`) until the process named by the pid file has exited; returns at
/// once without a pid file.
fn wait_peer_gone(opts: &GenOptions, limit: Duration) {
    let Some(pid) = opts
        .pidfile
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return;
    };
    let end = Instant::now() + limit;
    let stat = format!("/proc/{pid}/stat");
    // A zombie (state Z) has exited too: its parent reaps it after this returns.
    let alive = || {
        std::fs::read_to_string(&stat)
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('Z'))
            })
            .is_some_and(|zombie| !zombie)
    };
    while alive() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl<'a> Engine<'a> {
    fn new(opts: &GenOptions, rx: RxQueue, tx: TxQueue, pool: &'a Mempool) -> Engine<'a> {
        let plan = opts.plan.clone();
        let hz = dpdk::tsc_hz().max(1);
        let data_flags = tcp_flag::PSH | tcp_flag::ACK;
        Engine {
            rx,
            tx,
            pool,
            checker: Checker::new(&plan),
            expect: Expect::new(plan.known_flows(), plan.servers, plan.mode == Mode::Fnat),
            syn: Template::request(&plan, tcp_flag::SYN),
            ack: Template::request(&plan, tcp_flag::ACK),
            data: Template::request(&plan, data_flags),
            ackfin: Template::request(&plan, tcp_flag::ACK | tcp_flag::FIN),
            pending: MbufBurst::new(),
            free: MbufBurst::new(),
            hz,
            c: Counters::default(),
            total_mismatches: [0; Mismatch::COUNT],
            hist: Histogram::new_with_bounds(1, hz.saturating_mul(100).max(2), 3)
                .expect("histogram bounds"),
            window: (u64::MAX, u64::MAX),
            phase: Phase::Ready,
            arp_seen: vec![false; plan.servers],
            director_mac: None,
            last_rx: 0,
            probe_back: false,
            window_max: opts.window.max(BURST as u64),
            progress: opts.progress.then(|| Progress {
                last: Instant::now(),
            }),
            plan,
        }
    }

    fn secs(&self, ticks: u64) -> f64 {
        ticks as f64 / self.hz as f64
    }

    fn ticks(&self, secs: f64) -> u64 {
        (secs * self.hz as f64) as u64
    }

    fn progress(&mut self, phase: &str, done: f64) {
        if let Some(p) = &mut self.progress {
            p.report(phase, done);
        }
    }

    /// Starts a new phase's counters (mismatches are kept for the whole run too).
    fn begin(&mut self, phase: Phase) {
        for (t, m) in self.total_mismatches.iter_mut().zip(self.c.mismatches) {
            *t += m;
        }
        self.c = Counters::default();
        self.phase = phase;
        self.window = (u64::MAX, u64::MAX);
    }

    fn run_all(&mut self, opts: &GenOptions, port: &Port) -> Result<PktgenResult, GenError> {
        let p = &self.plan;
        let mut r = PktgenResult {
            mode: p.mode.to_string(),
            proto: p.proto.as_str().into(),
            flows: p.flows,
            servers: p.servers,
            size: self.data.len(),
            ..PktgenResult::default()
        };
        let t0 = Instant::now();
        self.ready(opts, port)?;
        r.ready_secs = t0.elapsed().as_secs_f64();
        let director = || {
            let path = opts.pidfile.as_ref()?;
            let pid = std::fs::read_to_string(path).ok()?.trim().parse().ok()?;
            Mem::of_pid(pid)
        };
        r.mem_before = director();
        if self.plan.mode != Mode::Testpmd && !opts.only_ready && self.plan.flows > 0 {
            let t = Instant::now();
            r.opened = self.open(&mut r.errors);
            r.open_secs = t.elapsed().as_secs_f64();
            // Let the director settle (timers, lazily touched pages) before reading memory.
            self.drain(Duration::from_millis(50));
            r.mem_after = director();
        }
        if !opts.only_ready || self.plan.mode == Mode::Testpmd {
            let sat = self.blast("full-rate", opts.rate, opts.sat_secs, opts.warmup_secs);
            let half_rate = sat.mpps * 1e6 / f64::from(self.plan.mode.passes()) / 2.0;
            if sat.returned == 0 {
                r.errors.push("nothing came back at full rate".into());
            }
            r.sat = Some(sat);
            if opts.half_secs > 0.0 && half_rate > 0.0 {
                r.half = Some(self.blast(
                    "half-rate",
                    Some(half_rate),
                    opts.half_secs,
                    opts.warmup_secs,
                ));
            }
        }
        if self.plan.mode != Mode::Testpmd
            && !opts.only_ready
            && self.plan.proto == Proto::Tcp
            && self.plan.fresh > 0
            && opts.cps_secs > 0.0
        {
            r.cps = Some(self.cps(opts.cps_secs, opts.cps_window));
        }
        self.begin(Phase::Ready);
        r.mismatch_kinds = Mismatch::ALL
            .iter()
            .zip(self.total_mismatches)
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (k.as_str().to_owned(), n))
            .collect();
        r.mismatches = self.total_mismatches.iter().sum();
        r.per_server = self.expect.per_server().to_vec();
        r.even = even_spread(&r.per_server);
        Ok(r)
    }

    /// Waits for the link and (except for testpmd) for the director's ARP requests for every
    /// real server, answering them.
    fn ready(&mut self, opts: &GenOptions, port: &Port) -> Result<(), GenError> {
        let deadline = Instant::now() + Duration::from_secs_f64(opts.ready_secs);
        while !port.link().map(|l| l.up).unwrap_or(false) {
            if Instant::now() > deadline {
                return Err(GenError::NotReady(format!(
                    "memif link not up after {:.0} s (is the peer running on {}?)",
                    opts.ready_secs, opts.socket
                )));
            }
            self.progress("link", 0.0);
            std::thread::sleep(Duration::from_millis(5));
        }
        while self.plan.mode != Mode::Testpmd && !self.arp_seen.iter().all(|&s| s) {
            if Instant::now() > deadline {
                return Err(GenError::NotReady(format!(
                    "the director did not ask for every real server's MAC within {:.0} s",
                    opts.ready_secs
                )));
            }
            self.poll(dpdk::rdtsc());
            let seen = self.arp_seen.iter().filter(|&&s| s).count();
            self.progress("arp", seen as f64 / self.arp_seen.len() as f64);
        }
        if let Some(mac) = self.director_mac
            && mac != self.plan.director_mac
        {
            return Err(GenError::NotReady(format!(
                "the director's MAC is {mac}, the plan says {}",
                self.plan.director_mac
            )));
        }
        // Probe the whole path with one flow of its own until a packet comes back: the
        // director learns the ARP answers on its main lcore a little later, testpmd may not
        // forward yet.
        let probe = self.plan.probe_flow();
        let which = match self.plan.proto {
            Proto::Tcp if self.plan.mode != Mode::Testpmd => Which::Syn,
            _ => Which::Data,
        };
        let mut last_sent: Option<u64> = None;
        while !self.probe_back {
            if Instant::now() > deadline {
                return Err(GenError::NotReady(format!(
                    "no probe packet came back through the peer within {:.0} s",
                    opts.ready_secs
                )));
            }
            let now = dpdk::rdtsc();
            if last_sent.is_none_or(|t| now - t > self.hz / 100) && self.pending.is_empty() {
                self.send_new(1, which, now, &mut || Some(probe));
                self.flush();
                last_sent = Some(now);
            }
            self.poll(now);
            self.progress("probe", 0.0);
        }
        // Then cycle every buffer of both memif rings a few times with the probe flow, so
        // that the director's memory read next already includes the pages the link uses (a
        // memif client without zero-copy copies into ordinary shared pages it touches lazily).
        self.begin(Phase::Ready);
        let mut left = 4 * 1024u32;
        let mut next = move || {
            (left > 0).then(|| {
                left -= 1;
                probe
            })
        };
        while self.c.sent < 4 * 1024 || !self.pending.is_empty() {
            let now = dpdk::rdtsc();
            self.poll(now);
            if self.pending.is_empty() {
                let room = self.window_room(now);
                self.send_new(room, which, now, &mut next);
                self.flush();
            }
        }
        self.drain(Duration::from_secs(1));
        Ok(())
    }

    /// Receives one burst and acts on it, then sends what is pending. Returns frames received.
    #[inline]
    fn poll(&mut self, now: u64) -> usize {
        let mut burst: MbufBurst<BURST> = MbufBurst::new();
        let mut n = 0;
        if self.pending.len() + BURST <= PENDING {
            n = self.rx.rx_burst(&mut burst);
            if n > 0 {
                self.last_rx = now;
                for m in burst.drain() {
                    self.handle(m, now);
                }
                self.free.clear();
            }
        }
        self.flush();
        n
    }

    #[inline]
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.tx.tx_burst(&mut self.pending);
        }
    }

    #[inline]
    fn queue(&mut self, m: Mbuf) {
        // Room is guaranteed by poll (it receives only when a whole burst fits).
        if let Err(m) = self.pending.push(m) {
            drop(m);
        }
    }

    #[inline]
    fn discard(&mut self, m: Mbuf) {
        if let Err(m) = self.free.push(m) {
            self.free.clear();
            let _ = self.free.push(m);
        }
    }

    #[inline]
    fn returned(&mut self, now: u64) {
        self.c.returned += 1;
        if now >= self.window.0 && now < self.window.1 {
            self.c.window += 1;
        }
    }

    #[inline]
    fn handle(&mut self, mut m: Mbuf, now: u64) {
        match self.checker.inspect(m.data()) {
            Seen::ArpRequest { rs, from } => {
                self.director_mac.get_or_insert(from);
                self.arp_seen[rs] = true;
                if make_reply_in_place(m.data_mut(), Plan::rs_mac(rs)).is_ok() {
                    self.c.answered += 1;
                    self.queue(m);
                } else {
                    self.discard(m);
                }
            }
            Seen::ToServer {
                rs,
                flow,
                flags,
                tsc,
                local,
            } => {
                if !self.expect.server(flow, rs) {
                    self.c.mismatches[Mismatch::WrongServer as usize] += 1;
                    self.c.finished += 1;
                    return self.discard(m);
                }
                if let Some((lip, lport)) = local
                    && !self.expect.local(flow, lip, lport)
                {
                    self.c.mismatches[Mismatch::WrongLocal as usize] += 1;
                    self.c.finished += 1;
                    return self.discard(m);
                }
                self.returned(now);
                if self.plan.mode.sees_replies() {
                    if self.plan.proto == Proto::Tcp && is_bare_ack(flags) {
                        self.c.acked += 1;
                    }
                    match server_answer(self.plan.proto, flags) {
                        Some(f) => {
                            answer_in_place(m.data_mut(), &self.plan, rs, f);
                            self.c.answered += 1;
                            self.queue(m);
                        }
                        None => {
                            self.c.finished += 1;
                            self.discard(m)
                        }
                    }
                } else {
                    self.delivered(m, flow, flags, tsc, now);
                }
            }
            Seen::ToClient { flow, flags, tsc } => {
                self.returned(now);
                self.delivered(m, flow, flags, tsc, now);
            }
            Seen::Bad(r) => {
                self.c.mismatches[r as usize] += 1;
                self.c.finished += 1;
                self.discard(m);
            }
            Seen::Ignored => self.discard(m),
        }
    }

    /// The end of one trip: a DR/TUN request at its real server, a reply at its client, a
    /// frame testpmd returned.
    #[inline]
    fn delivered(&mut self, mut m: Mbuf, flow: u32, flags: u8, tsc: u64, now: u64) {
        let tcp = self.plan.proto == Proto::Tcp;
        self.c.finished += 1;
        if flow == self.plan.probe_flow() {
            self.probe_back = true;
        }
        if tcp && flags & tcp_flag::SYN != 0 {
            match self.phase {
                Phase::Open => self.c.opened += 1,
                // The client completes the handshake and closes at once.
                Phase::Cps if m.reset_len(self.ackfin.len()) => {
                    self.ackfin.write(m.data_mut(), flow, tsc);
                    self.c.answered += 1;
                    return self.queue(m);
                }
                _ => {}
            }
            self.discard(m)
        } else if tcp && flags & tcp_flag::FIN != 0 {
            self.c.completed += 1;
            if self.plan.mode.sees_replies() && m.reset_len(self.ack.len()) {
                // The client's last ACK.
                self.ack.write(m.data_mut(), flow, tsc);
                self.c.answered += 1;
                return self.queue(m);
            }
            self.discard(m)
        } else if !tcp || flags & tcp_flag::PSH != 0 {
            if self.phase == Phase::Open {
                self.c.opened += 1;
            }
            if now >= self.window.0 && now < self.window.1 {
                let age = crate::packet::Stamp { flow, tsc }.age(now);
                self.hist.saturating_record(age.max(1));
            }
            self.discard(m)
        } else {
            self.c.acked += 1;
            self.discard(m)
        }
    }

    /// Builds up to `n` new requests from `template` for the flows `next` yields and queues
    /// them. Returns how many.
    #[inline]
    fn send_new(
        &mut self,
        n: usize,
        which: Which,
        now: u64,
        next: &mut dyn FnMut() -> Option<u32>,
    ) -> usize {
        let n = n.min(PENDING - self.pending.len()).min(BURST);
        if n == 0 {
            return 0;
        }
        let mut fresh: MbufBurst<BURST> = MbufBurst::new();
        if !self.pool.alloc_bulk(&mut fresh, n) {
            return 0;
        }
        let template = match which {
            Which::Syn => &self.syn,
            Which::Ack => &self.ack,
            Which::Data => &self.data,
        };
        let len = template.len();
        let mut made = 0;
        for mut m in fresh.drain() {
            let Some(flow) = next() else {
                drop(m);
                continue;
            };
            if !m.reset_len(len) {
                continue;
            }
            template.write(m.data_mut(), flow, now);
            let _ = self.pending.push(m);
            made += 1;
        }
        self.c.sent += made as u64;
        made
    }

    /// How many new requests the in-flight window allows now. A window that stays full while
    /// nothing arrives for a second holds only lost packets: it is reopened (a shorter wait
    /// would reopen it whenever the director's core is taken by another process for a while,
    /// and the window that follows would overflow the ring back).
    #[inline]
    fn window_room(&mut self, now: u64) -> usize {
        let busy = self.c.sent.saturating_sub(self.c.finished);
        if busy >= self.window_max {
            if now.saturating_sub(self.last_rx) > self.hz {
                self.c.finished = self.c.sent;
                return BURST;
            }
            return 0;
        }
        (self.window_max - busy).min(BURST as u64) as usize
    }

    /// Polls until every request sent in this phase has finished its trip and nothing more
    /// arrives for 10 ms, or nothing at all arrives for 100 ms (the rest is lost), or `max`
    /// passes.
    fn drain(&mut self, max: Duration) {
        let end = Instant::now() + max;
        let (short, long) = (self.ticks(0.01), self.ticks(0.1));
        let mut since = dpdk::rdtsc();
        while Instant::now() < end {
            let now = dpdk::rdtsc();
            if self.poll(now) > 0 || !self.pending.is_empty() {
                since = now;
                continue;
            }
            let quiet = now - since;
            if quiet > long || (quiet > short && self.c.finished >= self.c.sent) {
                break;
            }
        }
    }

    /// Sends `which` once for each flow of `range` as fast as the link takes them, then waits
    /// until `done` reports them all back or nothing has come back for `idle`.
    fn sweep(
        &mut self,
        label: &str,
        which: Which,
        range: std::ops::Range<u32>,
        done: fn(&Counters) -> u64,
        idle: Duration,
    ) {
        let total = u64::from(range.end - range.start);
        let mut next_flow = range.start;
        let end = range.end;
        let mut next = move || {
            (next_flow < end).then(|| {
                next_flow += 1;
                next_flow - 1
            })
        };
        let mut sent_all = false;
        let idle_ticks = self.ticks(idle.as_secs_f64());
        loop {
            let now = dpdk::rdtsc();
            self.poll(now);
            if !sent_all && self.pending.is_empty() {
                let room = self.window_room(now);
                if room > 0 {
                    self.send_new(room, which, now, &mut next);
                    self.flush();
                }
                sent_all = self.c.sent >= total;
            }
            let back = done(&self.c);
            self.progress(label, back as f64 / total.max(1) as f64);
            if sent_all && self.pending.is_empty() {
                if back >= total {
                    break;
                }
                if now.saturating_sub(self.last_rx) > idle_ticks {
                    break;
                }
            }
        }
        self.drain(Duration::from_secs(1));
    }

    /// Opens the plan's flows. Returns how many opened (errors say what fell short).
    fn open(&mut self, errors: &mut Vec<String>) -> u64 {
        let n = self.plan.flows;
        let idle = Duration::from_millis(500);
        self.begin(Phase::Open);
        match self.plan.proto {
            Proto::Tcp => {
                self.sweep("open-syn", Which::Syn, 0..n, |c| c.opened, idle);
                let opened = self.c.opened;
                let mismatched: u64 = self.c.mismatches.iter().sum();
                self.begin(Phase::Open);
                self.sweep("open-ack", Which::Ack, 0..n, |c| c.acked, idle);
                if opened < u64::from(n) {
                    errors.push(format!(
                        "{} of {n} SYNs came back ({mismatched} wrong)",
                        opened
                    ));
                }
                if self.c.acked < u64::from(n) {
                    errors.push(format!("{} of {n} ACKs came back", self.c.acked));
                }
                opened
            }
            Proto::Udp => {
                self.sweep("open", Which::Data, 0..n, |c| c.opened, idle);
                if self.c.opened < u64::from(n) {
                    errors.push(format!("{} of {n} flows opened", self.c.opened));
                }
                self.c.opened
            }
        }
    }

    /// Established-flow packets over the plan's flows in stride order for `secs`, at `rate`
    /// requests per second or as fast as the link takes them; counted after `warmup`.
    fn blast(&mut self, label: &str, rate: Option<f64>, secs: f64, warmup: f64) -> Blast {
        self.begin(Phase::Blast);
        self.hist.reset();
        let start = dpdk::rdtsc();
        let warm = self.ticks(warmup.min(secs / 2.0));
        let end = start + self.ticks(secs);
        self.window = (start + warm, end);
        let mut walk = StrideWalk::new(self.plan.flows.max(1));
        let mut next = move || Some(walk.next_flow());
        let per_tick = rate.map(|r| r / self.hz as f64);
        let mut tx_window = 0u64;
        let slice = self.hz / 10;
        let (mut slice_start, mut slice_count, mut peak) = (self.window.0, 0u64, 0u64);
        loop {
            let now = dpdk::rdtsc();
            if now >= end {
                break;
            }
            if now >= slice_start + slice {
                if slice_start >= self.window.0 {
                    peak = peak.max(self.c.window - slice_count);
                }
                slice_count = self.c.window;
                slice_start = now;
            }
            self.poll(now);
            if self.pending.is_empty() {
                let room = match per_tick {
                    None => self.window_room(now),
                    Some(pt) => {
                        let allowed = ((now - start) as f64 * pt) as u64;
                        let due = allowed.saturating_sub(self.c.sent).min(BURST as u64) as usize;
                        if due > 0 {
                            due.min(self.window_room(now))
                        } else {
                            0
                        }
                    }
                };
                if room > 0 {
                    let made = self.send_new(room, Which::Data, now, &mut next);
                    if now >= self.window.0 {
                        tx_window += made as u64;
                    }
                    self.flush();
                }
            }
            self.progress(label, (now - start) as f64 / (end - start) as f64);
        }
        let counted = self.c.window;
        self.drain(Duration::from_secs(1));
        let expected = self.c.sent * u64::from(self.plan.mode.passes());
        let win = self.secs(end - self.window.0);
        let us = |q: f64| self.hist.value_at_quantile(q) as f64 * 1e6 / self.hz as f64;
        Blast {
            secs: win,
            target_pps: rate,
            sent: self.c.sent,
            returned: self.c.returned,
            mpps: counted as f64 / win / 1e6,
            tx_mpps: tx_window as f64 / win / 1e6,
            peak_mpps: peak as f64 * self.hz as f64 / slice.max(1) as f64 / 1e6,
            drops: expected.saturating_sub(self.c.returned),
            p50_us: us(0.5),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: self.hist.max() as f64 * 1e6 / self.hz as f64,
            samples: self.hist.len(),
        }
    }

    /// New connections over the fresh tuples for at most `secs`, at most `window` in progress.
    fn cps(&mut self, secs: f64, window: u64) -> Cps {
        self.begin(Phase::Cps);
        let first = self.plan.flows;
        let last = self.plan.total_flows();
        let mut next_flow = first;
        let mut next = move || {
            (next_flow < last).then(|| {
                next_flow += 1;
                next_flow - 1
            })
        };
        let start = dpdk::rdtsc();
        let end = start + self.ticks(secs);
        let mut last_done = start;
        let mut written_off = 0u64;
        let total = u64::from(last - first);
        loop {
            let now = dpdk::rdtsc();
            let before = self.c.completed;
            self.poll(now);
            if self.c.completed > before {
                last_done = now;
            }
            if now >= end || self.c.completed >= total {
                break;
            }
            let mut busy = self.c.sent - self.c.completed - written_off;
            if busy >= window && now.saturating_sub(self.last_rx) > self.hz {
                // A second of silence with the window full: those connections are lost.
                written_off += busy;
                busy = 0;
            }
            if self.pending.is_empty() && busy < window && self.c.sent < total {
                let room = (window - busy).min(BURST as u64) as usize;
                self.send_new(room, Which::Syn, now, &mut next);
                self.flush();
            }
            if self.c.sent >= total
                && self.pending.is_empty()
                && now.saturating_sub(self.last_rx) > self.ticks(0.2)
            {
                break;
            }
            self.progress("new-conns", (now - start) as f64 / (end - start) as f64);
        }
        self.c.started = self.c.sent;
        self.drain(Duration::from_secs(1));
        let secs = self.secs(last_done.saturating_sub(start)).max(1e-9);
        Cps {
            started: self.c.started,
            completed: self.c.completed,
            secs,
            cps: self.c.completed as f64 / secs,
            packets_per_conn: if self.plan.mode.sees_replies() { 5 } else { 2 },
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Syn,
    Ack,
    Data,
}

#[inline]
fn is_bare_ack(flags: u8) -> bool {
    flags & tcp_flag::ACK != 0 && flags & (tcp_flag::SYN | tcp_flag::FIN | tcp_flag::PSH) == 0
}
