//! Boot: from a validated profile to running lcores, and back down again.
//!
//! Order matters and is kept in one place: check the host (lcores, hugepages), initialise the
//! EAL, create the mempool, probe and start every port (one rx and one tx queue per worker),
//! build the configuration snapshot, launch one poll loop per worker lcore and run the main loop
//! on the main lcore until SIGINT/SIGTERM. Teardown reverses it: workers are waited for, ports
//! stopped and closed, rings and the mempool freed, the EAL cleaned up, and a runtime
//! directory DPDK created for a `--file-prefix` removed, so nothing is left behind.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crossbeam::queue::ArrayQueue;
use dpdk::{Eal, LcoreId, Mbuf, Mempool, Port, PortConf, Ring};
use rvs_config::Profile;

use crate::configure::Running;
use crate::io::lcore::{Handoff, MainLoop, PortStatsLine, WorkerControl, WorkerLoop};
use crate::link::Link;
use crate::mailbox::Mailbox;
use crate::neigh::NeighEvent;
use crate::pipeline::Worker;
use crate::redirect::Redirect;
use crate::snapshot::Snapshot;
use crate::stats::SharedCounters;
use crate::wire::MacAddr;

/// A boot failure, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The host lacks something (hugepages, CPUs).
    #[error("{0}")]
    Host(String),
    /// The EAL refused to start.
    #[error("EAL initialisation failed: {source}\n  hint: {hint}")]
    Eal {
        /// DPDK's error.
        source: Box<dpdk::Error>,
        /// What usually causes it.
        hint: String,
    },
    /// A port could not be attached or started.
    #[error("{0}")]
    Port(Box<PortError>),
    /// Another DPDK resource failed.
    #[error("{0}")]
    Dpdk(Box<dpdk::Error>),
    /// The profile uses something this build cannot do.
    #[error("profile not supported by this dataplane: {0}")]
    Snapshot(#[from] crate::snapshot::SnapshotError),
}

/// A port that could not be attached or started.
#[derive(Debug, thiserror::Error)]
#[error("port {port} (device {device:?}): {source}\n  hint: {hint}")]
pub struct PortError {
    /// Profile name of the port.
    pub port: String,
    /// Its devargs.
    pub device: String,
    /// DPDK's error.
    pub source: dpdk::Error,
    /// What usually causes it.
    pub hint: String,
}

impl From<dpdk::Error> for BootError {
    fn from(e: dpdk::Error) -> Self {
        BootError::Dpdk(Box::new(e))
    }
}

/// Options beyond the profile.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Log per-worker counters every this many seconds (0 = only at exit).
    pub stats_interval: u64,
}

/// The EAL arguments for a profile: lcores from `dataplane`, the profile's own `eal` list, then
/// what RVS adds so nothing is left behind: `--in-memory` unless a `--file-prefix` is given
/// (then `--huge-unlink`), `--no-pci` when every port is a vdev and no PCI option is given, and
/// `-a ADDR` for PCI ports so that no other NIC is taken.
pub fn eal_args(profile: &Profile) -> Vec<String> {
    let dp = &profile.dataplane;
    let eal = &dp.eal;
    let has = |flag: &str| {
        eal.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let mut lcores = vec![dp.main_lcore];
    lcores.extend(&dp.workers);
    let cpus = cpu_count();
    let mut args = if dp.share_cpus && lcores.iter().any(|&l| l >= cpus) {
        // lcore L on CPU L mod N: `--lcores 0@0,1@1,2@1`.
        vec![
            "--lcores".to_owned(),
            lcores
                .iter()
                .map(|l| format!("{l}@{}", l % cpus))
                .collect::<Vec<_>>()
                .join(","),
        ]
    } else {
        vec![
            "-l".to_owned(),
            lcores
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ]
    };
    args.push("--main-lcore".to_owned());
    args.push(dp.main_lcore.to_string());
    args.extend(eal.iter().cloned());
    if !has("--in-memory") && !has("--file-prefix") {
        args.push("--in-memory".into());
    }
    if has("--file-prefix") && !has("--huge-unlink") && !has("--no-huge") {
        args.push("--huge-unlink".into());
    }
    let pci: Vec<&str> = profile
        .ports
        .iter()
        .map(|p| p.device.as_str())
        .filter(|d| is_pci_address(d))
        .collect();
    let pci_opts = has("-a") || has("-b") || has("--allow") || has("--block") || has("--no-pci");
    if pci.is_empty() {
        if !pci_opts {
            args.push("--no-pci".into());
        }
    } else if !pci_opts {
        for d in pci {
            args.push("-a".into());
            args.push(d.to_owned());
        }
    }
    args
}

/// CPUs this process may run on.
pub fn cpu_count() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as u32
}

/// Whether devargs name a PCI device (`0000:01:00.0` or `01:00.0`, maybe with `,options`).
pub fn is_pci_address(devargs: &str) -> bool {
    let name = devargs.split(',').next().unwrap_or("");
    let parts: Vec<&str> = name.split(':').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let dev_fn = |s: &str| {
        s.split_once('.')
            .is_some_and(|(d, f)| hex(d, 2) && f.len() == 1 && f.chars().all(|c| c.is_digit(8)))
    };
    match parts.as_slice() {
        [dom, bus, df] => hex(dom, 4) && hex(bus, 2) && dev_fn(df),
        [bus, df] => hex(bus, 2) && dev_fn(df),
        _ => false,
    }
}

fn eal_value<'a>(eal: &'a [String], flag: &str) -> Option<&'a str> {
    let prefix = format!("{flag}=");
    eal.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            eal.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(&prefix)
        }
    })
}

/// Free hugepage memory in MiB, over every page size.
pub fn free_hugepage_mib() -> u64 {
    let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let free: u64 = std::fs::read_to_string(e.path().join("free_hugepages"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some(free * kb / 1024)
        })
        .sum()
}

/// Checks what the EAL would otherwise fail on with a less helpful message.
pub fn check_host(profile: &Profile) -> Result<(), BootError> {
    let cpus = cpu_count();
    let dp = &profile.dataplane;
    for &l in std::iter::once(&dp.main_lcore).chain(&dp.workers) {
        if l >= cpus && !dp.share_cpus {
            return Err(BootError::Host(format!(
                "lcore {l} does not exist here: this machine has CPUs 0-{} (fix dataplane.main_lcore / dataplane.workers, or set dataplane.share_cpus to run lcores on shared CPUs)",
                cpus - 1
            )));
        }
    }
    if eal_value(&dp.eal, "--no-huge").is_some() || dp.eal.iter().any(|a| a == "--no-huge") {
        return Ok(());
    }
    let want: u64 = eal_value(&dp.eal, "-m")
        .or_else(|| eal_value(&dp.eal, "--socket-mem"))
        .and_then(|v| {
            v.split(',')
                .map(|x| x.parse::<u64>().ok())
                .sum::<Option<u64>>()
        })
        .unwrap_or(64);
    let free = free_hugepage_mib();
    if free < want {
        return Err(BootError::Host(format!(
            "not enough free hugepages: {free} MiB free, {want} MiB wanted.\n  \
             fix: echo 512 > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages \
             && mount -t hugetlbfs nodev /dev/hugepages   (or run scripts/setup.sh; \
             or add \"--no-huge\" to dataplane.eal, about 2.4x slower)"
        )));
    }
    Ok(())
}

fn port_hint(device: &str, err: &dpdk::Error) -> String {
    let name = dpdk::device_name(device);
    if name.starts_with("net_af_packet") || name.starts_with("net_af_xdp") {
        let iface = device
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("iface="))
            .unwrap_or("?");
        if !Path::new(&format!("/sys/class/net/{iface}")).exists() {
            return format!(
                "interface {iface:?} does not exist in this network namespace (ip link show)"
            );
        }
        if err.errno == 16 || (name.starts_with("net_af_xdp") && xdp_attached(iface)) {
            return format!(
                "interface {iface:?} is busy: an XDP program / AF_XDP socket already holds it \
                 (another rvs-dataplane or XDP user; see `ip link show {iface}`); stop it first"
            );
        }
        return format!("check that interface {iface:?} is up and that this process runs as root");
    }
    if is_pci_address(device) {
        return "bind the NIC to vfio-pci (dpdk-devbind.py -b vfio-pci ADDR) and check that no \
                other DPDK process uses it"
            .into();
    }
    "check the devargs (DPDK device name and options) and that the driver is installed".into()
}

/// Whether an XDP program is attached to `iface` (`ip link` shows `xdp`/`xdpgeneric`).
fn xdp_attached(iface: &str) -> bool {
    std::process::Command::new("ip")
        .args(["-o", "link", "show", "dev", iface])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|w| w.starts_with("xdp"))
        })
}

fn eal_hint(profile: &Profile) -> String {
    if let Some(prefix) = eal_value(&profile.dataplane.eal, "--file-prefix") {
        format!(
            "another DPDK process may be using --file-prefix {prefix} (\"Cannot create lock\" above); \
             stop it or choose another prefix. See the EAL log lines above."
        )
    } else {
        "see the EAL log lines above (hugepages, lcores, bad EAL argument in dataplane.eal)".into()
    }
}

/// Boots the dataplane, runs until `stop` is set, tears everything down. Returns the final
/// per-worker and per-port counters.
pub fn run(
    profile: &Profile,
    opts: &RunOptions,
    stop: Arc<AtomicBool>,
) -> Result<FinalStats, BootError> {
    check_host(profile)?;
    let args = eal_args(profile);
    tracing::info!(?args, "starting EAL");
    let eal = Eal::init(&args).map_err(|source| BootError::Eal {
        source: Box::new(source),
        hint: eal_hint(profile),
    })?;
    let result = run_with_eal(&eal, profile, opts, stop);
    drop(eal);
    result
}

/// Final counters.
#[derive(Debug, Clone)]
pub struct FinalStats {
    /// Per worker: (lcore, counters).
    pub workers: Vec<(u32, crate::stats::Counters)>,
    /// Per port.
    pub ports: Vec<PortStatsLine>,
}

/// Mbufs one rx queue of port `p` holds: its ring, or for `net_af_xdp` at least the buffers
/// the PMD puts on the fill ring at set-up (`AF_XDP_FILL_BUFFERS`, whatever the ring size).
fn rx_held(p: &rvs_config::Port) -> u32 {
    let ring = u32::from(p.rx_descriptors());
    if dpdk::is_af_xdp(&p.device) {
        ring.max(u32::from(dpdk::AF_XDP_FILL_BUFFERS))
    } else {
        ring
    }
}

fn run_with_eal(
    eal: &Eal,
    profile: &Profile,
    opts: &RunOptions,
    stop: Arc<AtomicBool>,
) -> Result<FinalStats, BootError> {
    let dp = &profile.dataplane;
    let nworkers = dp.workers.len() as u16;
    let nports = profile.ports.len() as u32;
    let cache = 256u32;
    let need = profile
        .ports
        .iter()
        .map(|p| {
            u32::from(nworkers)
                * (rx_held(p) + u32::from(p.tx_descriptors()) + 2 * dpdk::BURST as u32)
        })
        .sum::<u32>()
        + (u32::from(nworkers) + 1) * cache
        + 1024 * nports;
    let pool_size = (need + 1).next_power_of_two() - 1;
    let pool = Mempool::pktmbuf("rvs_pktmbuf", pool_size, cache, 2048 + 128, None)?;
    tracing::info!(mbufs = pool_size, "mempool created");

    // Ports (declared after the pool so they drop first).
    let mut ports: Vec<Port> = Vec::with_capacity(profile.ports.len());
    let mut macs = Vec::with_capacity(profile.ports.len());
    for p in &profile.ports {
        let err = |source: dpdk::Error| {
            BootError::Port(Box::new(PortError {
                port: p.name.clone(),
                device: p.device.clone(),
                hint: port_hint(&p.device, &source),
                source,
            }))
        };
        let mut port = Port::probe(&p.device).map_err(err)?;
        let conf = PortConf {
            rx_queues: nworkers,
            tx_queues: nworkers,
            rx_desc: p.rx_descriptors(),
            tx_desc: p.tx_descriptors(),
            rss: true,
            mtu: p.mtu,
            promiscuous: false,
        };
        port.configure_and_start(&conf, &pool).map_err(err)?;
        let mac = MacAddr(port.mac().map_err(err)?);
        let info = port.info().map_err(err)?;
        let link = port.link().map_err(err)?;
        let af_xdp = info.driver.starts_with("net_af_xdp");
        tracing::info!(
            port = %p.name, device = %p.device, driver = %info.driver, %mac,
            link_up = link.up, speed_mbps = link.speed_mbps, queues = nworkers,
            rx_descriptors = conf.rx_desc, tx_descriptors = conf.tx_desc,
            xdp_sockets = af_xdp.then_some(port.xdp_sockets().len()),
            "port started"
        );
        if af_xdp && port.xdp_sockets().is_empty() {
            tracing::warn!(
                port = %p.name,
                "no AF_XDP socket of this port found: its xdp_* counters (rx ring full) are not reported"
            );
        }
        macs.push(mac);
        ports.push(port);
    }

    let snap = Arc::new(Snapshot::build(profile, &macs)?);
    for s in &snap.services {
        tracing::info!(service = %s.key, scheduler = s.scheduler.as_str(), servers = s.dests.len(), "virtual service");
    }

    let flow_rules = steer_fullnat_replies(&ports, &snap, nworkers);

    // The control link: the shared-memory file rvs-control attaches to.
    let region = create_region(profile)?;
    let mailboxes: Vec<Arc<Mailbox>> = (0..nworkers)
        .map(|_| Arc::new(Mailbox::default()))
        .collect();

    let events = Arc::new(ArrayQueue::<NeighEvent>::new(1024));
    // Main → worker 0 frames (ARP requests), one ring per port.
    let inbox: Vec<Arc<Ring<Mbuf>>> = (0..ports.len())
        .map(|i| Ring::new(&format!("rvs_ctl_tx_{i}"), 512, None).map(Arc::new))
        .collect::<Result<_, _>>()?;

    let hz = dpdk::tsc_hz();
    let tsc0 = dpdk::rdtsc();
    // With several workers: handoff inboxes and the NAT redirect table.
    let handoff_rings: Vec<Arc<Ring<Mbuf>>> = if nworkers > 1 {
        (0..nworkers)
            .map(|w| Ring::new(&format!("rvs_handoff_{w}"), 4096, None).map(Arc::new))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let redirect = (nworkers > 1).then(|| {
        Arc::new(Redirect::new(
            dp.flows_per_worker as usize * usize::from(nworkers),
        ))
    });
    let port_index: Vec<(u16, u16)> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id().0, i as u16))
        .collect();
    let mut shared = Vec::new();
    let mut launched: Vec<LcoreId> = Vec::new();
    let mut launch_err = None;
    for (w, &lcore) in dp.workers.iter().enumerate() {
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for port in ports.iter_mut() {
            rx.push(port.rx_queue(w as u16).expect("queue per worker"));
            tx.push(port.tx_queue(w as u16).expect("queue per worker"));
        }
        let counters = Arc::new(SharedCounters::default());
        shared.push((lcore, Arc::clone(&counters)));
        let seed = seed_for(w);
        let mut worker = Worker::with_workers(
            w as u16,
            nworkers,
            Arc::clone(&snap),
            dp.flows_per_worker as usize,
            seed,
            Arc::clone(&events),
        );
        if let Some(r) = &redirect {
            worker = worker.with_redirect(Arc::clone(r));
        }
        let lp = WorkerLoop::new(
            worker,
            rx,
            tx,
            if w == 0 { inbox.clone() } else { Vec::new() },
            counters,
            Arc::clone(&stop),
            tsc0,
            hz,
        );
        let lp = lp.with_control(WorkerControl {
            mailbox: Arc::clone(&mailboxes[w]),
            stats: region.stats_writer(w),
            lcore,
            generation: 0,
        });
        let lp = if handoff_rings.is_empty() {
            lp
        } else {
            lp.with_handoff(Handoff {
                inbox: Arc::clone(&handoff_rings[w]),
                peers: handoff_rings.clone(),
                port_index: port_index.clone(),
            })
        };
        if let Err(e) = eal.launch(LcoreId(lcore), move || lp.run()) {
            launch_err = Some(e);
            break;
        }
        launched.push(LcoreId(lcore));
    }

    let mut main = MainLoop::new(
        Arc::clone(&snap),
        events,
        inbox.clone(),
        &pool,
        opts.stats_interval,
    )
    .with_link(Link::new(
        Arc::clone(&region),
        Running::new(profile.clone(), macs.clone()),
        mailboxes,
    ));
    if launch_err.is_none() {
        tracing::info!(
            workers = launched.len(),
            "dataplane running; SIGINT or SIGTERM stops it"
        );
        main.run(&stop, &shared, &ports);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for &l in &launched {
        let rc = eal.wait(l);
        if rc != 0 {
            tracing::error!(lcore = l.0, rc, "worker loop ended with an error");
        }
    }
    let final_ports = ports
        .iter()
        .zip(&profile.ports)
        .map(|(p, c)| PortStatsLine {
            name: c.name.clone(),
            stats: p.stats().unwrap_or_default(),
        })
        .collect();
    let workers = shared.iter().map(|(l, c)| (*l, c.read())).collect();
    drop(main);
    if let Err(e) = region.remove() {
        tracing::warn!(path = %region.path().display(), error = %e, "removing the shared-memory file");
    }
    drop(flow_rules);
    for mut p in ports {
        if let Err(e) = p.stop() {
            tracing::warn!(error = %e, "stopping port");
        }
    }
    drop(inbox);
    drop(handoff_rings);
    drop(pool);
    if let Some(e) = launch_err {
        return Err(e.into());
    }
    Ok(FinalStats {
        workers,
        ports: final_ports,
    })
}

/// Creates the control link's shared-memory file at `control.shm`, refusing to take it from
/// a dataplane that still runs.
pub fn create_region(profile: &Profile) -> Result<Arc<rvs_shm::Region>, BootError> {
    let path = &profile.control.shm;
    if let Ok(old) = rvs_shm::Region::attach(path) {
        let pid = old.dataplane_pid();
        if pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists() {
            return Err(BootError::Host(format!(
                "control.shm {}: another dataplane (pid {pid}) uses it; stop that one or set another `control.shm` in the profile",
                path.display()
            )));
        }
    }
    let params = rvs_shm::Params {
        workers: profile.dataplane.workers.len() as u32,
        ..rvs_shm::Params::default()
    };
    let region = rvs_shm::Region::create(path, &params).map_err(|e| {
        BootError::Host(format!(
            "control.shm {}: cannot create the shared-memory file: {e}",
            path.display()
        ))
    })?;
    region.set_workers(params.workers);
    tracing::info!(path = %path.display(), bytes = region.len(), "control link ready");
    Ok(region)
}

/// With a power-of-two number of workers, asks each port's NIC to deliver FullNAT replies
/// (addressed to a local address, destination port `p`) straight to worker `p % workers`'s
/// queue with `rte_flow` rules on the port's low bits. Devices without `rte_flow` (vdevs, most
/// VMs) refuse at validation; their replies are handed between workers through rings instead.
fn steer_fullnat_replies(ports: &[Port], snap: &Snapshot, workers: u16) -> Vec<dpdk::FlowRule> {
    let mut rules = Vec::new();
    if workers < 2 || !workers.is_power_of_two() || snap.lips.is_empty() {
        return rules;
    }
    'ports: for (i, port) in ports.iter().enumerate() {
        let pv = &snap.ports[i];
        for &lip in snap
            .lips
            .iter()
            .filter(|l| pv.addresses.iter().any(|a| a.contains(**l)))
        {
            for w in 0..workers {
                for proto in [dpdk::FlowProto::Tcp, dpdk::FlowProto::Udp] {
                    match port.steer_dst_port(proto, lip.to_bits(), w, workers - 1, w) {
                        Ok(rule) => rules.push(rule),
                        Err(e) => {
                            tracing::info!(
                                port = %pv.name, error = %e,
                                "rte_flow steering unavailable: FullNAT replies are handed over between workers"
                            );
                            continue 'ports;
                        }
                    }
                }
            }
        }
        tracing::info!(port = %pv.name, rules = rules.len(), "FullNAT replies steered by rte_flow");
    }
    rules
}

/// A per-worker hash seed: not predictable from outside, different per worker and run.
fn seed_for(worker: usize) -> [u64; 2] {
    use std::hash::{BuildHasher, Hasher};
    let s = std::collections::hash_map::RandomState::new();
    let mut h = s.build_hasher();
    h.write_usize(worker);
    let a = h.finish();
    h.write_u64(dpdk::rdtsc());
    [a, h.finish()]
}

/// The DIP a port uses to ask for `ip` (for ARP requests).
pub fn arp_source(snap: &Snapshot, port: usize, ip: Ipv4Addr) -> Option<Ipv4Addr> {
    snap.ports.get(port).and_then(|p| p.source_for(ip))
}
