//! The control process's end of the shared-memory link: [`ShmLink`] implements [`Backend`]
//! over the command and reply rings and the stats region of `rvs-shm`.
//!
//! One command is in flight at a time (a tokio mutex); its reply is matched by `seq`, which
//! starts at this process's start time so replies meant for a predecessor are never taken for
//! ours. The link attaches lazily and re-attaches when the dataplane re-creates its file (a
//! restarted dataplane): [`ShmLink::watch`] runs the heartbeat, notices a new dataplane
//! (a new `boot_id`) and tells the caller, who re-pushes the desired configuration. It also
//! samples the stats region every two seconds for the rate estimators.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rvs_config::{Profile, Protocol, ServiceKey};
use rvs_shm::{Command, Consumer, KIND_COMMAND, Producer, Region, Reply, RingError, SvcKey};

use crate::api::{
    ConnPage, ConnView, Healthz, ProcessHealth, RingHealth, ServerView, ServiceId, ServiceView,
    Stats, StatsView, WorkerView,
};
use crate::backend::{Backend, BackendError};
use crate::rates::{RateTable, SAMPLE_PERIOD};

/// How long a command may take before the dataplane counts as unavailable.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// A dataplane whose heartbeat is older than this counts as down.
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(2);

/// Rate-estimator key: a service, or one of its servers.
pub type RateKey = (ServiceKey, Option<SocketAddrV4>);

struct Attached {
    region: Arc<Region>,
    commands: Producer,
    replies: Consumer,
}

#[derive(Default)]
struct Counts {
    commands: u64,
    rejected: u64,
    last_ok: bool,
    roundtrip_us: Option<u64>,
    generation: u64,
}

struct Inner {
    path: PathBuf,
    attached: Mutex<Option<Attached>>,
    in_flight: tokio::sync::Mutex<()>,
    seq: AtomicU64,
    counts: Mutex<Counts>,
    rates: Mutex<RateTable<RateKey>>,
    /// The configuration the dataplane runs (the effective one last applied or read).
    running: Mutex<Option<Profile>>,
    /// `boot_id` of the dataplane last seen.
    boot_id: AtomicU64,
    /// A dataplane not seen before was attached and the watcher has not handled it yet
    /// (whoever attached: the watcher or a request).
    fresh: std::sync::atomic::AtomicBool,
}

/// The link to the dataplane through its shared-memory file.
#[derive(Clone)]
pub struct ShmLink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ShmLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmLink")
            .field("path", &self.inner.path)
            .field("attached", &self.inner.attached.lock().is_some())
            .finish()
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn unavailable(msg: impl Into<String>) -> BackendError {
    BackendError::Unavailable(msg.into())
}

impl ShmLink {
    /// A link to the dataplane owning `path` (`control.shm`). Nothing is opened yet.
    pub fn new(path: impl AsRef<Path>) -> ShmLink {
        ShmLink {
            inner: Arc::new(Inner {
                path: path.as_ref().to_path_buf(),
                attached: Mutex::new(None),
                in_flight: tokio::sync::Mutex::new(()),
                seq: AtomicU64::new(epoch_ms() << 16),
                counts: Mutex::new(Counts::default()),
                rates: Mutex::new(RateTable::new()),
                running: Mutex::new(None),
                boot_id: AtomicU64::new(0),
                fresh: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Attaches (again) when not attached or when the file was re-created, and returns the
    /// region. A dataplane not seen before (a new `boot_id`) raises `fresh` for the watcher.
    fn ensure_attached(&self) -> Result<Arc<Region>, BackendError> {
        let mut a = self.inner.attached.lock();
        if let Some(at) = a.as_ref()
            && at.region.is_current()
        {
            return Ok(Arc::clone(&at.region));
        }
        *a = None;
        let region = Region::attach(&self.inner.path).map_err(|e| {
            unavailable(format!(
                "no dataplane at {}: {e}",
                self.inner.path.display()
            ))
        })?;
        let replies = region.reply_consumer();
        // Replies a predecessor never read are not ours.
        replies.drain();
        region.set_control_pid(std::process::id());
        region.set_control_heartbeat(epoch_ms());
        let boot = region.boot_id();
        let new = self.inner.boot_id.swap(boot, Ordering::SeqCst) != boot;
        if new {
            tracing::info!(
                path = %self.inner.path.display(),
                pid = region.dataplane_pid(),
                "attached to the dataplane"
            );
            *self.inner.running.lock() = None;
            self.inner.fresh.store(true, Ordering::SeqCst);
        }
        *a = Some(Attached {
            commands: region.command_producer(),
            replies,
            region: Arc::clone(&region),
        });
        Ok(region)
    }

    /// The attached region, if any (for tests and health).
    pub fn region(&self) -> Option<Arc<Region>> {
        self.inner
            .attached
            .lock()
            .as_ref()
            .map(|a| Arc::clone(&a.region))
    }

    /// Sends `cmd` and waits for its reply.
    pub async fn request(&self, cmd: &Command) -> Result<Reply, BackendError> {
        let _one = self.inner.in_flight.lock().await;
        self.ensure_attached()?;
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let payload = cmd.encode();
        let start = Instant::now();
        loop {
            let sent = {
                let a = self.inner.attached.lock();
                let at = a.as_ref().ok_or_else(|| unavailable("link lost"))?;
                at.commands.send(KIND_COMMAND, seq, &payload)
            };
            match sent {
                Ok(()) => break,
                Err(RingError::Full) if start.elapsed() < COMMAND_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(RingError::Full) => {
                    return Err(self.failed("command ring full: the dataplane does not read it"));
                }
                Err(RingError::TooLarge) => {
                    return Err(BackendError::Rejected {
                        message: format!(
                            "the command ({} bytes) is larger than the command ring allows",
                            payload.len()
                        ),
                        field: None,
                    });
                }
            }
        }
        self.inner.counts.lock().commands += 1;
        loop {
            let got = {
                let a = self.inner.attached.lock();
                let at = a.as_ref().ok_or_else(|| unavailable("link lost"))?;
                at.replies.recv()
            };
            match got {
                Some(Ok(frame)) if frame.seq == seq => {
                    let reply = Reply::decode(&frame.payload).map_err(|e| {
                        self.failed(format!("malformed reply from the dataplane: {e}"))
                    })?;
                    let mut c = self.inner.counts.lock();
                    c.last_ok = true;
                    c.roundtrip_us = Some(start.elapsed().as_micros() as u64);
                    if matches!(reply, Reply::Error { .. }) {
                        c.rejected += 1;
                    }
                    return Ok(reply);
                }
                Some(Ok(_)) => {} // an answer to a command we did not send (or gave up on)
                Some(Err(e)) => tracing::warn!(error = %e, "reply frame refused"),
                None => {
                    if start.elapsed() > COMMAND_TIMEOUT {
                        return Err(self.failed(format!(
                            "no answer from the dataplane within {} s",
                            COMMAND_TIMEOUT.as_secs()
                        )));
                    }
                    tokio::time::sleep(Duration::from_micros(300)).await;
                }
            }
        }
    }

    fn failed(&self, msg: impl Into<String>) -> BackendError {
        self.inner.counts.lock().last_ok = false;
        unavailable(msg)
    }

    /// Runs forever: heartbeat, re-attach, rate sampling. `on_new_dataplane` is called (with
    /// the link) whenever a dataplane not seen before is attached — at the first attach too.
    pub async fn watch<F, Fut>(self, on_new_dataplane: F)
    where
        F: Fn(ShmLink) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut last_sample = Instant::now();
        loop {
            tick.tick().await;
            match self.ensure_attached() {
                Ok(region) => {
                    region.set_control_heartbeat(epoch_ms());
                    if self.inner.fresh.swap(false, Ordering::SeqCst) {
                        on_new_dataplane(self.clone()).await;
                    }
                }
                Err(_) => continue,
            }
            if last_sample.elapsed() >= SAMPLE_PERIOD {
                last_sample = Instant::now();
                self.sample_rates();
            }
        }
    }

    /// Feeds the current counters to the rate estimators (every [`SAMPLE_PERIOD`]).
    pub fn sample_rates(&self) {
        let (per_dest, _) = self.read_stats();
        let mut per_svc: HashMap<ServiceKey, Stats> = HashMap::new();
        let mut entries: Vec<(RateKey, Stats)> = Vec::with_capacity(per_dest.len() * 2);
        for (&(k, d), s) in &per_dest {
            add(per_svc.entry(k).or_default(), &s.stats);
            entries.push(((k, Some(d)), s.stats));
        }
        entries.extend(per_svc.into_iter().map(|(k, s)| ((k, None), s)));
        self.inner.rates.lock().sample(entries);
    }

    /// Sums every worker's published traffic per (service, server), and the worker views.
    fn read_stats(
        &self,
    ) -> (
        HashMap<(ServiceKey, SocketAddrV4), DestSum>,
        Vec<WorkerView>,
    ) {
        let mut per_dest: HashMap<(ServiceKey, SocketAddrV4), DestSum> = HashMap::new();
        let mut workers = Vec::new();
        let Some(region) = self.region() else {
            return (per_dest, workers);
        };
        let reader = region.stats_reader();
        for w in 0..region.workers() as usize {
            let Some(ws) = reader.read(w) else { continue };
            for e in &ws.entries {
                let key = if e.fwmark != 0 {
                    ServiceKey::Fwmark(e.fwmark)
                } else {
                    ServiceKey::Addr {
                        protocol: if e.protocol == 17 {
                            Protocol::Udp
                        } else {
                            Protocol::Tcp
                        },
                        vip: e.vip,
                        port: e.vport,
                    }
                };
                let d = per_dest
                    .entry((key, SocketAddrV4::new(e.raddr, e.rport)))
                    .or_default();
                d.stats.conns += e.conns;
                d.stats.inpkts += e.inpkts;
                d.stats.outpkts += e.outpkts;
                d.stats.inbytes += e.inbytes;
                d.stats.outbytes += e.outbytes;
                d.active += u64::from(e.active);
                d.inactive += u64::from(e.inactive);
                d.persistent += u64::from(e.persistent);
            }
            workers.push(WorkerView {
                worker: w as u32,
                lcore: ws.lcore,
                counters: rvs_shm::COUNTER_NAMES
                    .iter()
                    .zip(&ws.counters)
                    .map(|(n, v)| (n.to_string(), *v))
                    .collect(),
                drops: rvs_shm::DROP_NAMES
                    .iter()
                    .zip(&ws.drops)
                    .filter(|(_, v)| **v > 0)
                    .map(|(n, v)| (n.to_string(), *v))
                    .collect(),
            });
        }
        (per_dest, workers)
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct DestSum {
    stats: Stats,
    active: u64,
    inactive: u64,
    persistent: u64,
}

fn add(to: &mut Stats, s: &Stats) {
    to.conns += s.conns;
    to.inpkts += s.inpkts;
    to.outpkts += s.outpkts;
    to.inbytes += s.inbytes;
    to.outbytes += s.outbytes;
}

fn rejected(message: String, field: Option<String>) -> BackendError {
    BackendError::Rejected { message, field }
}

fn unexpected(r: &Reply) -> BackendError {
    unavailable(format!("unexpected reply from the dataplane: {r:?}"))
}

impl Backend for ShmLink {
    async fn apply(&self, config: Profile, desired: Profile) -> Result<u64, BackendError> {
        let generation = {
            let live = self.region().map_or(0, |r| r.generation());
            let mut c = self.inner.counts.lock();
            c.generation = c.generation.max(live) + 1;
            c.generation
        };
        let cmd = Command::Apply {
            generation,
            config: Box::new(config.clone()),
            desired: Some(Box::new(desired)),
        };
        match self.request(&cmd).await? {
            Reply::Applied { generation } => {
                *self.inner.running.lock() = Some(config);
                Ok(generation)
            }
            Reply::Error { message, field } => Err(rejected(message, field)),
            other => Err(unexpected(&other)),
        }
    }

    async fn live_config(&self) -> Result<Profile, BackendError> {
        match self.request(&Command::GetConfig).await? {
            Reply::Config {
                generation,
                config,
                desired,
            } => {
                let mut c = self.inner.counts.lock();
                c.generation = c.generation.max(generation);
                *self.inner.running.lock() = Some((*config).clone());
                Ok(*desired.unwrap_or(config))
            }
            Reply::Error { message, field } => Err(rejected(message, field)),
            other => Err(unexpected(&other)),
        }
    }

    async fn connections(
        &self,
        offset: u64,
        limit: u32,
        templates: bool,
    ) -> Result<ConnPage, BackendError> {
        let cmd = Command::ListConns {
            offset,
            limit,
            templates,
        };
        match self.request(&cmd).await? {
            Reply::Conns { items, next_offset } => Ok(ConnPage {
                items: items
                    .into_iter()
                    .map(|c| ConnView {
                        protocol: match c.protocol {
                            6 => "tcp",
                            17 => "udp",
                            _ => "ip",
                        }
                        .to_string(),
                        expires: c.expires,
                        state: c.state,
                        client: c.client,
                        virtual_addr: c.virt,
                        destination: c.dest,
                        local: c.local,
                        template: c.template,
                        worker: c.worker,
                    })
                    .collect(),
                next_offset,
            }),
            Reply::Error { message, field } => Err(rejected(message, field)),
            other => Err(unexpected(&other)),
        }
    }

    async fn zero(&self, service: Option<ServiceKey>) -> Result<(), BackendError> {
        let cmd = Command::Zero {
            service: service.map(SvcKey::from),
        };
        match self.request(&cmd).await? {
            Reply::Done => {
                // The estimators restart from zero, as ip_vs_zero_estimator does.
                let (per_dest, _) = self.read_stats();
                let mut rates = self.inner.rates.lock();
                let mut svcs: HashMap<ServiceKey, Stats> = HashMap::new();
                for (&(k, d), s) in &per_dest {
                    if service.is_none_or(|x| x == k) {
                        rates.reset(&(k, Some(d)), s.stats);
                        add(svcs.entry(k).or_default(), &s.stats);
                    }
                }
                for (k, s) in svcs {
                    rates.reset(&(k, None), s);
                }
                Ok(())
            }
            Reply::Error { message, field } => Err(rejected(message, field)),
            other => Err(unexpected(&other)),
        }
    }

    fn stats(&self, config: &Profile) -> StatsView {
        let (per_dest, workers) = self.read_stats();
        let running = self.inner.running.lock().clone();
        let shown = running.as_ref().unwrap_or(config);
        let rates = self.inner.rates.lock();
        let mut total = Stats::default();
        let mut services = Vec::with_capacity(shown.services.len());
        for svc in &shown.services {
            let key = svc.key();
            let desired = config.services.iter().find(|s| s.key() == key);
            let mut stats = Stats::default();
            let servers = svc
                .servers
                .iter()
                .map(|s| {
                    let port = if s.port == 0 {
                        svc.port.unwrap_or(0)
                    } else {
                        s.port
                    };
                    let addr = SocketAddrV4::new(s.address, port);
                    let d = per_dest.get(&(key, addr)).copied().unwrap_or_default();
                    add(&mut stats, &d.stats);
                    let configured = desired.and_then(|ds| {
                        ds.servers
                            .iter()
                            .find(|x| x.address == s.address && x.port == s.port)
                    });
                    ServerView {
                        address: s.address,
                        port: s.port,
                        forward: s.forward,
                        weight: s.weight,
                        config_weight: configured.map_or(s.weight, |c| c.weight),
                        upper: s.upper,
                        lower: s.lower,
                        active: d.active,
                        inactive: d.inactive,
                        persistent: d.persistent,
                        stats: d.stats,
                        rates: rates.get(&(key, Some(addr))),
                        sorry: configured.is_none(),
                    }
                })
                .collect();
            add(&mut total, &stats);
            services.push(ServiceView {
                id: ServiceId(key),
                scheduler: svc.scheduler,
                flags: svc.flags.clone(),
                persistence_timeout: svc.persistence.map(|p| p.timeout),
                persistence_netmask: svc.persistence.map(|p| p.netmask),
                local_addresses: svc.local_addresses.clone(),
                stats,
                rates: rates.get(&(key, None)),
                servers,
            });
        }
        let mut total_rates = crate::api::Rates::default();
        for s in &services {
            total_rates.cps += s.rates.cps;
            total_rates.inpps += s.rates.inpps;
            total_rates.outpps += s.rates.outpps;
            total_rates.inbps += s.rates.inbps;
            total_rates.outbps += s.rates.outbps;
        }
        StatsView {
            services,
            total,
            total_rates,
            workers,
            generation: self.region().map_or(0, |r| r.generation()),
        }
    }

    fn healthz(&self) -> Healthz {
        let region = self.region().filter(|r| r.is_current());
        let now = epoch_ms();
        let dp_age = region
            .as_ref()
            .map(|r| now.saturating_sub(r.dataplane_heartbeat()));
        let dp_up = dp_age.is_some_and(|a| a < HEARTBEAT_STALE.as_millis() as u64);
        let c = self.inner.counts.lock();
        let ring_up = dp_up && (c.last_ok || c.commands == 0);
        let control = ProcessHealth {
            up: true,
            pid: Some(std::process::id()),
            heartbeat_age_ms: Some(0),
        };
        Healthz {
            status: if dp_up && ring_up { "ok" } else { "degraded" }.to_string(),
            control,
            dataplane: ProcessHealth {
                up: dp_up,
                pid: region.as_ref().map(|r| r.dataplane_pid()),
                heartbeat_age_ms: dp_age,
            },
            ring: RingHealth {
                up: ring_up,
                roundtrip_us: c.roundtrip_us,
                generation: region.as_ref().map_or(0, |r| r.generation()),
                commands: c.commands,
                rejected: c.rejected,
            },
        }
    }
}
