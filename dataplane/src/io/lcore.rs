//! The poll loops: one [`WorkerLoop`] per worker lcore, one [`MainLoop`] on the main lcore.
//!
//! A worker runs to completion: for each port, rx a burst from its own queue, run every packet
//! through its [`Worker`] pipeline, buffer transmits per egress port, then flush each buffer with
//! one tx burst. The time is read from the TSC once per loop turn. Counters are published once
//! per turn that saw traffic. Worker 0 also drains the main lcore's outgoing frames (ARP
//! requests) onto its tx queues, a bounded number per turn.
//!
//! The main lcore never touches packets of the data path: it learns neighbours from the
//! workers' events, runs the resolver's timers, builds ARP requests and gratuitous ARP, and logs
//! counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use dpdk::{BURST, Mbuf, MbufBurst, Mempool, Port, PortStats, Ring, RxQueue, TxQueue};

use crate::mailbox::Mailbox;
use crate::neigh::{NeighEvent, Resolver};
use crate::pipeline::{Verdict, Worker};
use crate::snapshot::Snapshot;
use crate::stats::{Counters, DropReason, SharedCounters};
use crate::wire::{self, MacAddr};

/// Timer entries a worker looks at per loop turn at most.
const EXPIRE_BUDGET: usize = 256;

/// One worker lcore's loop.
#[derive(Debug)]
pub struct WorkerLoop {
    worker: Worker,
    rx: Vec<RxQueue>,
    tx: Vec<TxQueue>,
    inbox: Vec<Arc<Ring<Mbuf>>>,
    tx_bufs: Vec<MbufBurst>,
    shared: Arc<SharedCounters>,
    stop: Arc<AtomicBool>,
    tsc0: u64,
    hz: u64,
    handoff: Option<Handoff>,
    control: Option<WorkerControl>,
}

/// A worker's side of the control link: its mailbox from the main lcore and its block of the
/// shared-memory stats region.
#[derive(Debug)]
pub struct WorkerControl {
    /// Messages from the main lcore (snapshots, listings, zeroing).
    pub mailbox: Arc<Mailbox>,
    /// Where this worker publishes its counters.
    pub stats: rvs_shm::StatsWriter,
    /// Its lcore (published with the counters).
    pub lcore: u32,
    /// Configuration generation it runs.
    pub generation: u64,
}

impl WorkerControl {
    /// Publishes `worker`'s counters and per-server traffic into the stats region.
    pub fn publish(&mut self, worker: &Worker) {
        let c = &worker.counters;
        let snap = worker.snapshot();
        let entries = worker.dest_stats().map(|(s, d, t, l, persistent)| {
            let svc = &snap.services[s];
            let dest = &svc.dests[d];
            rvs_shm::TrafficEntry {
                protocol: svc.proto,
                vip: svc.vip,
                vport: svc.port,
                fwmark: svc.fwmark.unwrap_or(0),
                raddr: dest.addr,
                rport: dest.port,
                conns: t.conns,
                inpkts: t.in_packets,
                outpkts: t.out_packets,
                inbytes: t.in_bytes,
                outbytes: t.out_bytes,
                active: l.active,
                inactive: l.inactive,
                persistent,
            }
        });
        self.stats
            .publish(self.lcore, self.generation, &c.scalars(), &c.drops, entries);
    }
}

/// The rings through which workers hand each other packets of connections they do not own
/// (replies of NAT and FullNAT connections that RSS put on the wrong worker).
#[derive(Debug)]
pub struct Handoff {
    /// This worker's inbox (every other worker may enqueue into it).
    pub inbox: Arc<Ring<Mbuf>>,
    /// Every worker's inbox, by worker index.
    pub peers: Vec<Arc<Ring<Mbuf>>>,
    /// DPDK port id → port index, for packets arriving through the inbox.
    pub port_index: Vec<(u16, u16)>,
}

impl WorkerLoop {
    /// A loop over one rx and one tx queue per port (port index order).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        worker: Worker,
        rx: Vec<RxQueue>,
        tx: Vec<TxQueue>,
        inbox: Vec<Arc<Ring<Mbuf>>>,
        shared: Arc<SharedCounters>,
        stop: Arc<AtomicBool>,
        tsc0: u64,
        hz: u64,
    ) -> WorkerLoop {
        let tx_bufs = tx.iter().map(|_| MbufBurst::new()).collect();
        WorkerLoop {
            worker,
            rx,
            tx,
            inbox,
            tx_bufs,
            shared,
            stop,
            tsc0,
            hz: hz.max(1),
            handoff: None,
            control: None,
        }
    }

    /// Joins the control link (mailbox and stats region).
    pub fn with_control(mut self, control: WorkerControl) -> WorkerLoop {
        self.control = Some(control);
        self
    }

    /// Joins the handoff rings (with more than one worker).
    pub fn with_handoff(mut self, handoff: Handoff) -> WorkerLoop {
        self.handoff = Some(handoff);
        self
    }

    /// The pipeline state (for tests).
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Polls until the stop flag is set. Returns 0 (the lcore's exit value).
    pub fn run(mut self) -> i32 {
        // The stats region is refreshed about every millisecond (not per turn: it holds
        // every server's traffic).
        let period = (self.hz / 1000).max(1);
        let mut last = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let tsc = dpdk::rdtsc();
            let now = ((tsc - self.tsc0) / self.hz) as u32;
            if self.poll_once(now) > 0 {
                self.shared.publish(&self.worker.counters);
            }
            if tsc.wrapping_sub(last) >= period {
                last = tsc;
                if let Some(c) = &mut self.control {
                    c.publish(&self.worker);
                }
            }
        }
        self.shared.publish(&self.worker.counters);
        if let Some(c) = &mut self.control {
            c.publish(&self.worker);
        }
        0
    }

    /// One loop turn at dataplane time `now` (seconds). Returns the packets handled.
    pub fn poll_once(&mut self, now: u32) -> usize {
        let mut handled = 0;
        // The main lcore's messages: a new snapshot is taken between bursts, never inside one.
        if let Some(c) = &mut self.control
            && let Some(generation) = c.mailbox.serve(&mut self.worker, now)
        {
            c.generation = generation;
            c.publish(&self.worker);
        }
        let mut burst: MbufBurst = MbufBurst::new();
        for p in 0..self.rx.len() {
            let n = self.rx[p].rx_burst(&mut burst);
            if n == 0 {
                continue;
            }
            handled += n;
            let c = &mut self.worker.counters;
            c.rx_packets += n as u64;
            c.rx_bytes += burst.as_slice().iter().map(|m| m.len() as u64).sum::<u64>();
            let mut verdicts = [Verdict::Consumed; BURST];
            self.worker
                .process_burst(burst.as_mut_slice(), p as u16, now, &mut verdicts);
            for (m, v) in burst.drain().zip(verdicts) {
                self.act(m, v);
            }
        }
        // Packets other workers handed over: this worker owns their connections.
        if let Some(h) = &self.handoff
            && !h.inbox.is_empty()
        {
            let n = h.inbox.dequeue_burst(&mut burst);
            handled += n;
            for m in burst.drain() {
                let port = self
                    .handoff
                    .as_ref()
                    .and_then(|h| h.port_index.iter().find(|(id, _)| *id == m.port()))
                    .map_or(0, |&(_, i)| i);
                self.handle(m, port, now);
            }
        }
        for (p, ring) in self.inbox.iter().enumerate() {
            let buf = &mut self.tx_bufs[p];
            let room = BURST - buf.len();
            if room == 0 || ring.is_empty() {
                continue;
            }
            let n = ring.dequeue_burst(buf);
            self.worker.counters.control_tx += n as u64;
            handled += n;
        }
        for p in 0..self.tx.len() {
            Self::flush(
                &mut self.tx_bufs[p],
                &mut self.tx[p],
                &mut self.worker.counters,
            );
        }
        // Connection timers: bounded work per turn; nothing is due in most turns.
        let expired = self.worker.expire(now, EXPIRE_BUDGET);
        self.worker.counters.expired += expired as u64;
        handled + expired
    }

    /// Runs one packet through the pipeline and acts on the verdict.
    #[inline]
    fn handle(&mut self, mut m: Mbuf, port: u16, now: u32) {
        let v = self.worker.process(&mut m, port, now);
        self.act(m, v);
    }

    /// Acts on a packet's verdict: queue it for transmission, hand it over, or free it.
    #[inline]
    fn act(&mut self, m: Mbuf, v: Verdict) {
        match v {
            Verdict::Tx(out) => Self::queue_tx(
                &mut self.tx_bufs,
                &mut self.tx,
                &mut self.worker.counters,
                out as usize,
                m,
            ),
            Verdict::Handoff(w) => {
                let ring = self.handoff.as_ref().and_then(|h| h.peers.get(w as usize));
                match ring.map(|r| r.enqueue(m)) {
                    Some(Ok(())) => self.worker.counters.handoffs += 1,
                    _ => self.worker.counters.drop(DropReason::HandoffFull),
                }
            }
            Verdict::Drop(_) | Verdict::Consumed => drop(m),
        }
    }

    #[inline]
    fn queue_tx(
        bufs: &mut [MbufBurst],
        txq: &mut [TxQueue],
        c: &mut Counters,
        out: usize,
        m: Mbuf,
    ) {
        if bufs[out].is_full() {
            Self::flush(&mut bufs[out], &mut txq[out], c);
        }
        let _ = bufs[out].push(m);
    }

    #[inline]
    fn flush(buf: &mut MbufBurst, txq: &mut TxQueue, c: &mut Counters) {
        if buf.is_empty() {
            return;
        }
        let queued = buf.len();
        let (sent, bytes) = txq.tx_burst(buf);
        c.tx_packets += sent as u64;
        c.tx_bytes += bytes;
        if sent < queued {
            c.drops[DropReason::TxFull as usize] += (queued - sent) as u64;
            buf.clear();
        }
    }
}

/// A port's final counters.
#[derive(Debug, Clone)]
pub struct PortStatsLine {
    /// Profile name.
    pub name: String,
    /// DPDK's counters.
    pub stats: PortStats,
}

impl PortStatsLine {
    /// The exit summary's line for the port (`rvs-compare` collects it): `port NAME: ipackets N
    /// opackets N imissed N ierrors N oerrors N`, then on a `net_af_xdp` port the AF_XDP
    /// socket counters DPDK 22.11 leaves out of `imissed`: `xdp_rx_ring_full N xdp_fill_empty
    /// N`.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        let mut line = format!(
            "port {}: ipackets {} opackets {} imissed {} ierrors {} oerrors {}",
            self.name, s.ipackets, s.opackets, s.imissed, s.ierrors, s.oerrors
        );
        if let Some(x) = s.xdp {
            line.push_str(&format!(
                " xdp_rx_ring_full {} xdp_fill_empty {}",
                x.rx_ring_full, x.rx_fill_ring_empty_descs
            ));
        }
        line
    }
}

/// The main lcore's loop.
#[derive(Debug)]
pub struct MainLoop<'a> {
    snap: Arc<Snapshot>,
    events: Arc<ArrayQueue<NeighEvent>>,
    outbox: Vec<Arc<Ring<Mbuf>>>,
    pool: &'a Mempool,
    resolver: Resolver,
    start: Instant,
    stats_interval: u64,
    link: Option<crate::link::Link>,
}

impl<'a> MainLoop<'a> {
    /// A main loop sending its frames through `outbox` (one ring per port, drained by worker 0).
    pub fn new(
        snap: Arc<Snapshot>,
        events: Arc<ArrayQueue<NeighEvent>>,
        outbox: Vec<Arc<Ring<Mbuf>>>,
        pool: &'a Mempool,
        stats_interval: u64,
    ) -> Self {
        let resolver = Resolver::new(snap.neigh.slots().len(), 0);
        MainLoop {
            snap,
            events,
            outbox,
            pool,
            resolver,
            start: Instant::now(),
            stats_interval,
            link: None,
        }
    }

    /// Serves the control link (commands from rvs-control) from this loop.
    pub fn with_link(mut self, link: crate::link::Link) -> Self {
        self.link = Some(link);
        self
    }

    /// The control link, if any.
    pub fn link(&self) -> Option<&crate::link::Link> {
        self.link.as_ref()
    }

    /// Switches the main lcore's view to a new snapshot the workers now run: neighbour
    /// resolution carries over, new addresses are announced with gratuitous ARP.
    pub fn switch(&mut self, snap: Arc<Snapshot>) {
        let now = self.now_ms();
        self.resolver = self.resolver.carry_over(&self.snap.neigh, &snap.neigh, now);
        let old = std::mem::replace(&mut self.snap, snap);
        for (i, p) in self.snap.ports.iter().enumerate() {
            let before = old.ports.get(i);
            for &addr in &p.arp_addresses {
                if before.is_none_or(|b| !b.arp_addresses.contains(&addr)) {
                    tracing::info!(%addr, port = %p.name, "announcing new address");
                    self.send_arp_request(i, p.mac, addr, addr);
                }
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Sends gratuitous ARP for every address each port answers for (so switches and hosts
    /// learn the director's MAC for its DIPs and VIPs at once).
    pub fn announce(&self) {
        for (i, p) in self.snap.ports.iter().enumerate() {
            for &addr in &p.arp_addresses {
                self.send_arp_request(i, p.mac, addr, addr);
            }
        }
    }

    fn send_arp_request(
        &self,
        port: usize,
        mac: MacAddr,
        src: std::net::Ipv4Addr,
        target: std::net::Ipv4Addr,
    ) {
        let Some(mut m) = self.pool.alloc() else {
            tracing::warn!("mempool exhausted: ARP request not sent");
            return;
        };
        if !m.set_len(60) {
            return;
        }
        let frame = m.data_mut();
        frame.fill(0);
        if wire::emit_request(frame, mac, src, target).is_err() {
            return;
        }
        if self.outbox[port].enqueue(m).is_err() {
            tracing::warn!(port, "control tx ring full: ARP request not sent");
        }
    }

    /// One turn: learn, run timers, ask. Returns the number of ARP requests sent.
    pub fn turn(&mut self) -> usize {
        if let Some(link) = &mut self.link {
            let applied = link.serve(&self.snap);
            let epoch_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            link.region().set_dataplane_heartbeat(epoch_ms);
            if let Some(s) = applied {
                self.switch(s);
            }
        }
        let now = self.now_ms();
        while let Some(ev) = self.events.pop() {
            if self.resolver.learn(&self.snap.neigh, &ev, now) {
                tracing::debug!(ip = %ev.ip, mac = %ev.mac, port = ev.port, "neighbour resolved");
            }
        }
        let mut due = Vec::new();
        self.resolver
            .tick(&self.snap.neigh, now, |slot| due.push(slot));
        for &slot in &due {
            let s = &self.snap.neigh.slots()[slot];
            let port = s.port as usize;
            let Some(pv) = self.snap.ports.get(port) else {
                continue;
            };
            if let Some(src) = pv.source_for(s.ip) {
                self.send_arp_request(port, pv.mac, src, s.ip);
            }
        }
        due.len()
    }

    /// Runs until `stop` is set.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        workers: &[(u32, Arc<SharedCounters>)],
        ports: &[Port],
    ) {
        self.announce();
        let mut last_stats = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            self.turn();
            if self.stats_interval > 0 && last_stats.elapsed().as_secs() >= self.stats_interval {
                last_stats = Instant::now();
                for (lcore, c) in workers {
                    let c = c.read();
                    tracing::info!(
                        lcore,
                        rx = c.rx_packets,
                        tx = c.tx_packets,
                        forwarded = c.forwarded,
                        connections = c.connections,
                        drops = c.total_drops(),
                        "worker counters"
                    );
                }
                for p in ports {
                    if let Ok(s) = p.stats() {
                        // The AF_XDP socket counters appear on net_af_xdp ports only (None
                        // leaves the field out).
                        tracing::info!(
                            port = p.name(),
                            ipackets = s.ipackets,
                            opackets = s.opackets,
                            imissed = s.imissed,
                            xdp_rx_ring_full = s.xdp.map(|x| x.rx_ring_full),
                            xdp_fill_empty = s.xdp.map(|x| x.rx_fill_ring_empty_descs),
                            "port counters"
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpdk::XdpStats;

    #[test]
    fn port_summary_adds_xdp_counters_when_known() {
        let mut line = PortStatsLine {
            name: "ext".into(),
            stats: PortStats {
                ipackets: 10,
                opackets: 9,
                imissed: 2,
                ierrors: 1,
                oerrors: 3,
                ..PortStats::default()
            },
        };
        assert_eq!(
            line.summary(),
            "port ext: ipackets 10 opackets 9 imissed 2 ierrors 1 oerrors 3"
        );
        line.stats.xdp = Some(XdpStats {
            rx_ring_full: 102_000,
            rx_fill_ring_empty_descs: 7,
            rx_dropped: 2,
            sockets: 1,
            ..XdpStats::default()
        });
        assert_eq!(
            line.summary(),
            "port ext: ipackets 10 opackets 9 imissed 2 ierrors 1 oerrors 3 xdp_rx_ring_full 102000 xdp_fill_empty 7"
        );
    }
}
