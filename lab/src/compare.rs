//! `rvs-compare`: the end-to-end comparison of SPEC §9. One two-armed NAT lab ([`NatLab`]:
//! client — director — real servers, real kernel TCP everywhere), nginx on every real server,
//! and three directors in turn on the same director namespace, each under the same `wrk` load
//! from the client:
//!
//! 1. RVS — `rvs-dataplane` on `net_af_xdp` ports (`net_af_packet` when af_xdp cannot bind),
//!    NAT mode, rr;
//! 2. the kernel — nftables `dnat ip to numgen inc mod N map {…}` in nat prerouting, with
//!    `ip_forward=1` (the real servers route back through the director, as in NAT);
//! 3. HAProxy — `mode tcp`, `balance roundrobin`, one thread.
//!
//! Loads: short connections (`Connection: close`), long keep-alive connections, and a bulk
//! download. With pinning (the default) the machine is split in two: the client, the real
//! servers and the switch hop towards them on CPU 0; the director (RVS's worker lcore,
//! HAProxy, or the kernel's forwarding via RPS) and the switch hop towards it on CPU 1.

mod directors;
mod report;
pub mod wrk;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use directors::PortDriver;
pub use report::{json, table};

use crate::nat::{NatLab, RS_PORT};
use crate::netns::{LabError, check_root, require_tools};

/// The virtual address every director serves (port 80), on the client's segment.
pub const VIP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 201, 0, 100);
/// Namespace prefix of the comparison lab.
const PREFIX: &str = "rvscmp";
/// Size of the bulk download.
pub const BULK_BYTES: usize = 1 << 20;

/// The director under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Director {
    /// rvs-dataplane.
    Rvs,
    /// The kernel: nftables DNAT.
    Nftables,
    /// HAProxy in TCP mode.
    Haproxy,
}

impl Director {
    /// The lowercase name (as in the JSON).
    pub fn name(self) -> &'static str {
        match self {
            Director::Rvs => "rvs",
            Director::Nftables => "nftables",
            Director::Haproxy => "haproxy",
        }
    }
}

/// The kind of load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadKind {
    /// One request per connection (`Connection: close`).
    Short,
    /// Keep-alive connections.
    Long,
    /// Keep-alive connections downloading [`BULK_BYTES`] per request.
    Bulk,
}

impl LoadKind {
    /// The lowercase name (as in the JSON).
    pub fn name(self) -> &'static str {
        match self {
            LoadKind::Short => "short",
            LoadKind::Long => "long",
            LoadKind::Bulk => "bulk",
        }
    }
}

/// One wrk load.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Which.
    pub kind: LoadKind,
    /// Concurrent connections.
    pub connections: u32,
    /// Request path.
    pub path: &'static str,
    /// Keep-alive (false: `Connection: close`).
    pub keepalive: bool,
    /// Seconds.
    pub seconds: u64,
}

/// The loads of a run whose short and long loads last `seconds` each (the bulk one half).
pub fn loads(seconds: u64) -> [Load; 3] {
    [
        Load {
            kind: LoadKind::Short,
            connections: 32,
            path: "/",
            keepalive: false,
            seconds,
        },
        Load {
            kind: LoadKind::Long,
            connections: 64,
            path: "/",
            keepalive: true,
            seconds,
        },
        Load {
            kind: LoadKind::Bulk,
            connections: 4,
            path: "/big.bin",
            keepalive: true,
            seconds: (seconds / 2).max(2),
        },
    ]
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds of each short and long load (bulk: half).
    pub seconds: u64,
    /// The rvs-dataplane binary.
    pub dataplane: PathBuf,
    /// Real servers.
    pub servers: usize,
    /// Split the CPUs between the director and everything else (see the module docs).
    pub pin: bool,
    /// The director's CPU (the client and the real servers get CPU 0, or CPU 1 when the
    /// director has CPU 0).
    pub director_cpu: u32,
    /// Directors, in order.
    pub directors: Vec<Director>,
    /// RVS's port driver.
    pub rvs_port: PortDriver,
    /// Extra devargs for RVS's ports (`,busy_budget=0`), appended to each device.
    pub rvs_devargs: String,
}

/// One line of `lab.json`: one director under one load.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// rvs | nftables | haproxy.
    pub director: Director,
    /// short | long | bulk.
    pub load: LoadKind,
    /// Requests per second.
    pub rps: Option<f64>,
    /// Latency percentiles, ms (request sent → response read; excludes the TCP handshake).
    pub p50_ms: Option<f64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile, ms.
    pub p999_ms: Option<f64>,
    /// Largest latency, ms.
    pub max_ms: Option<f64>,
    /// Megabytes (10^6 bytes, headers and bodies) read by the client per second.
    pub transfer_mb_s: Option<f64>,
    /// All wrk errors (socket errors and non-2xx/3xx responses).
    pub errors: Option<u64>,
    /// The errors by class.
    pub error_detail: Option<wrk::Errors>,
    /// Completed requests.
    pub requests: Option<u64>,
    /// Measured (or, when not measured, planned) duration, s.
    pub duration_s: f64,
    /// Concurrent connections.
    pub connections: u32,
    /// Keep-alive or one request per connection.
    pub keepalive: bool,
    /// Request path.
    pub path: String,
    /// wrk threads.
    pub wrk_threads: u32,
    /// How the director was set up.
    pub setup: String,
    /// RVS's DPDK port driver (`af_xdp` / `af_packet`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// The client address the real servers saw (NAT: the client; HAProxy: the director).
    pub server_sees: Option<String>,
    /// TCP segments retransmitted during the load by every kernel TCP stack in the lab
    /// (client, real servers, director): lost packets on the way.
    pub tcp_retransmits: Option<u64>,
    /// Packets dropped at the input of the lab's interfaces during the load (rx `dropped` of
    /// every interface: frames a veth could not hand to its peer's backlog, and with af_xdp
    /// the frames the XDP program could not put on a full AF_XDP ring, which DPDK 22.11's
    /// `imissed` does not count; RVS's own count of those is `xdp_rx_ring_full` in its exit
    /// summary, see `director_counters`).
    pub link_drops: Option<u64>,
    /// Packets dropped at the kernel's per-CPU input backlog (`/proc/net/softnet_stat`, whole
    /// machine) during the load.
    pub backlog_drops: Option<u64>,
    /// Busy share of each CPU during the load, % (`/proc/stat`; the whole machine, so other
    /// work on it shows too).
    pub cpu_busy_pct: Option<Vec<f64>>,
    /// Busy share of each CPU over 1 s without load just before this director's loads: other
    /// work on the machine (and RVS's busy-polling worker on the director CPU), %.
    pub cpu_busy_idle_pct: Option<Vec<f64>>,
    /// Processes outside the lab using more than 10 % of a CPU just before the loads
    /// (`"pid command NN%"`): the figures are disturbed when this is not empty.
    pub other_busy: Vec<String>,
    /// Whether the CPUs were split: client and real servers on `client_cpu`, the director on
    /// `director_cpu`.
    pub pinned: bool,
    /// CPU of the client and the real servers (when pinned).
    pub client_cpu: u32,
    /// CPU of the director (when pinned; RVS's worker lcore in any case).
    pub director_cpu: u32,
    /// The director's own counters after its run (RVS: the exit summary, whose `port` lines
    /// carry `xdp_rx_ring_full` and `xdp_fill_empty` on af_xdp ports; nftables: the rule
    /// counter).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub director_counters: Vec<String>,
    /// Why this director/load was not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every (director, load), measured or not.
    pub records: Vec<Record>,
    /// Directors (or steps) that failed, with the reason.
    pub failures: Vec<(Director, String)>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// The lab with its real servers on nginx and the CPU split applied.
#[derive(Debug)]
pub struct Bench {
    /// The two-armed NAT lab.
    pub nat: NatLab,
    /// Whether processes and packet processing are pinned.
    pub pin: bool,
    /// CPU of the client and the real servers.
    pub client_cpu: u32,
    /// CPU of the director.
    pub director_cpu: u32,
}

fn host(e: impl std::fmt::Display) -> LabError {
    LabError::Host(e.to_string())
}

fn nginx_config(name: &str, dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nworker_rlimit_nofile 65536;\n\
         pid {d}/nginx-{name}.pid;\nerror_log stderr warn;\n\
         events {{ worker_connections 16384; multi_accept on; }}\n\
         http {{\n  access_log off;\n  default_type text/plain;\n  sendfile on;\n  tcp_nopush on;\n  tcp_nodelay on;\n\
         \x20 keepalive_requests 100000000;\n  keepalive_timeout 120s;\n\
         \x20 client_body_temp_path {d}/nginx-{name}/body;\n  proxy_temp_path {d}/nginx-{name}/proxy;\n\
         \x20 fastcgi_temp_path {d}/nginx-{name}/fastcgi;\n  uwsgi_temp_path {d}/nginx-{name}/uwsgi;\n\
         \x20 scgi_temp_path {d}/nginx-{name}/scgi;\n\
         \x20 server {{\n    listen {RS_PORT} backlog=4096 reuseport;\n    root {d}/www;\n\
         \x20   location = /big.bin {{ }}\n    location / {{ return 200 \"{name} $remote_addr\\n\"; }}\n  }}\n}}\n"
    )
}

impl Bench {
    /// Builds the lab: the NAT topology with `servers` real servers, nginx on each (replacing
    /// the lab's Python server), the sysctls for many short connections, and the CPU split.
    pub fn up(servers: usize, pin: bool, director_cpu: u32) -> Result<Bench, LabError> {
        let mut nat = NatLab::up(PREFIX, servers)?;
        let names: Vec<(String, String)> = nat
            .servers
            .iter()
            .map(|(n, ns, _)| (n.clone(), ns.clone()))
            .collect();
        for (name, _) in &names {
            nat.lab
                .interrupt(&format!("web-{name}"), Duration::from_secs(5))?;
        }
        let dir = nat.lab.dir().to_owned();
        let www = dir.join("www");
        fs::create_dir_all(&www).map_err(host)?;
        let line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-=\n";
        let big: Vec<u8> = line.iter().copied().cycle().take(BULK_BYTES).collect();
        fs::write(www.join("big.bin"), big).map_err(host)?;
        let mut b = Bench {
            nat,
            pin,
            client_cpu: u32::from(director_cpu == 0),
            director_cpu,
        };
        for (name, ns) in &names {
            fs::create_dir_all(dir.join(format!("nginx-{name}"))).map_err(host)?;
            let conf = b
                .nat
                .write_file(&format!("nginx-{name}.conf"), &nginx_config(name, &dir))?;
            let cmd = b.pinned_command(ns, b.client_cpu, "nginx", |c| {
                c.arg("-e").arg("stderr").arg("-c").arg(&conf);
            });
            b.nat.lab.spawn(&format!("nginx-{name}"), cmd)?;
        }
        for (name, ns) in &names {
            let url = format!("http://127.0.0.1:{RS_PORT}/");
            let lab = &b.nat.lab;
            lab.wait_for(&format!("nginx on {name}"), Duration::from_secs(10), || {
                lab.exec(
                    ns,
                    "curl",
                    &["-sf", "-o", "/dev/null", "--max-time", "1", &url],
                )
                .is_ok()
            })
            .map_err(|e| {
                let log =
                    fs::read_to_string(dir.join(format!("nginx-{name}.log"))).unwrap_or_default();
                LabError::Host(format!("{e}\n--- nginx log ---\n{log}"))
            })?;
        }
        // Many short connections from one client address: the whole port range, and TIME_WAIT
        // ports reused after a second (client, and HAProxy's side towards the servers).
        for ns in [&b.nat.client, &b.nat.director] {
            b.nat
                .lab
                .sysctl(ns, "net.ipv4.ip_local_port_range", "1024 65535")?;
            b.nat.lab.sysctl(ns, "net.ipv4.tcp_tw_reuse", "1")?;
        }
        if pin {
            b.split_cpus()?;
        }
        Ok(b)
    }

    /// Receive processing per interface (RPS): everything arriving towards the director (the
    /// switch ports facing the client and servers, the director's own interfaces) on the
    /// director CPU; everything arriving towards the client and servers on the client CPU.
    fn split_cpus(&self) -> Result<(), LabError> {
        let cmask = format!("{:x}", 1u64 << self.client_cpu);
        let dmask = format!("{:x}", 1u64 << self.director_cpu);
        let sw = self.nat.lab.ns("sw");
        let mut set: Vec<(String, String, &str)> = vec![
            (sw.clone(), "p-cl".into(), &dmask),
            (sw.clone(), "p-d0".into(), &cmask),
            (sw.clone(), "p-d1".into(), &cmask),
            (self.nat.director.clone(), "d0".into(), &dmask),
            (self.nat.director.clone(), "d1".into(), &dmask),
            (self.nat.client.clone(), "c0".into(), &cmask),
        ];
        for (name, ns, _) in &self.nat.servers {
            set.push((sw.clone(), format!("p-{name}"), &dmask));
            set.push((ns.clone(), "eth0".into(), &cmask));
        }
        for (ns, iface, mask) in set {
            self.nat.lab.exec(
                &ns,
                "sh",
                &[
                    "-c",
                    &format!("echo {mask} > /sys/class/net/{iface}/queues/rx-0/rps_cpus"),
                ],
            )?;
        }
        Ok(())
    }

    /// `program` in `ns`, under `taskset -c CPU` when pinning; `args` adds its arguments.
    pub fn pinned_command(
        &self,
        ns: &str,
        cpu: u32,
        program: &str,
        args: impl FnOnce(&mut Command),
    ) -> Command {
        let mut c = if self.pin {
            let mut c = self.nat.lab.command(ns, "taskset");
            c.args(["-c", &cpu.to_string(), program]);
            c
        } else {
            self.nat.lab.command(ns, program)
        };
        args(&mut c);
        c
    }

    /// TCP segments retransmitted so far, summed over the client, the director and the real
    /// servers (`RetransSegs` of each namespace's `/proc/net/snmp`).
    fn tcp_retransmits(&self) -> u64 {
        let mut nss = vec![&self.nat.client, &self.nat.director];
        nss.extend(self.nat.servers.iter().map(|s| &s.1));
        nss.iter()
            .filter_map(|ns| self.nat.lab.exec(ns, "cat", &["/proc/net/snmp"]).ok())
            .filter_map(|o| retrans_segs(&String::from_utf8_lossy(&o.stdout)))
            .sum()
    }

    /// Packets dropped at input so far, summed over every interface of the lab.
    fn link_drops(&self) -> u64 {
        let mut nss = vec![
            self.nat.lab.ns("sw"),
            self.nat.client.clone(),
            self.nat.director.clone(),
        ];
        nss.extend(self.nat.servers.iter().map(|s| s.1.clone()));
        nss.iter()
            .filter_map(|ns| self.nat.lab.ip(ns, &["-s", "-j", "link"]).ok())
            .filter_map(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .map(|v| link_dropped(&v))
            .sum()
    }

    /// Sends `2 × servers` requests to the VIP; fails unless every real server answered.
    /// Returns the client address(es) the servers saw.
    fn probe(&self) -> Result<String, String> {
        let mut names = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for _ in 0..2 * self.nat.servers.len() {
            let body = self.nat.get(VIP, "/").map_err(|e| e.to_string())?;
            let body = String::from_utf8_lossy(&body).trim().to_owned();
            let mut w = body.split_whitespace();
            match (w.next(), w.next()) {
                (Some(n), Some(a)) => {
                    names.insert(n.to_owned());
                    seen.insert(a.to_owned());
                }
                _ => return Err(format!("unexpected answer from the VIP: {body:?}")),
            }
        }
        if names.len() != self.nat.servers.len() {
            return Err(format!(
                "not balanced: only {names:?} answered {} requests",
                2 * self.nat.servers.len()
            ));
        }
        Ok(seen.into_iter().collect::<Vec<_>>().join(","))
    }
}

/// `Tcp: … RetransSegs …` from `/proc/net/snmp` (a header line, then a value line).
fn retrans_segs(snmp: &str) -> Option<u64> {
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (head, vals) = (tcp.next()?, tcp.next()?);
    let i = head.split_whitespace().position(|k| k == "RetransSegs")?;
    vals.split_whitespace().nth(i)?.parse().ok()
}

/// rx `dropped` over the interfaces of `ip -s -j link` (a veth counts a frame its peer could
/// not take both as its own tx drop and as the peer's rx drop: rx alone counts each once).
fn link_dropped(v: &serde_json::Value) -> u64 {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["stats64"]["rx"]["dropped"].as_u64())
        .sum()
}

/// Packets dropped at the per-CPU input backlogs (second column of `/proc/net/softnet_stat`).
fn backlog_drops() -> u64 {
    fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|h| u64::from_str_radix(h, 16).ok())
        .sum()
}

/// Busy and total jiffies per CPU from `/proc/stat`.
fn cpu_times() -> Vec<(u64, u64)> {
    fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

fn busy_pct(before: &[(u64, u64)], after: &[(u64, u64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            let total = a.1.saturating_sub(b.1);
            if total == 0 {
                0.0
            } else {
                round(100.0 * a.0.saturating_sub(b.0) as f64 / total as f64, 1)
            }
        })
        .collect()
}

/// CPU ticks (user + system) of every process but this one and the lab's own (whose command
/// lines name the lab directory), with its name.
fn proc_ticks(lab_dir: &std::path::Path) -> std::collections::HashMap<u32, (u64, String)> {
    let me = std::process::id();
    let lab = lab_dir.to_string_lossy().into_owned();
    let mut out = std::collections::HashMap::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&lab) {
            continue;
        }
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid … utime stime …`: fields after the closing parenthesis.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("?", |(_, c)| c).to_owned();
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let name = if cmdline.trim().is_empty() {
            comm
        } else {
            cmdline.trim().chars().take(80).collect()
        };
        out.insert(pid, (ticks, name));
    }
    out
}

/// Processes outside the lab that used more than 10 % of a CPU between two samples taken
/// `secs` apart (ticks at 100 Hz), busiest first: `"pid name NN%"`.
fn other_busy(
    before: &std::collections::HashMap<u32, (u64, String)>,
    after: &std::collections::HashMap<u32, (u64, String)>,
    secs: f64,
) -> Vec<String> {
    let mut v: Vec<(f64, String)> = after
        .iter()
        .filter_map(|(pid, (t, name))| {
            let t0 = before.get(pid).map_or(0, |b| b.0);
            let pct = t.saturating_sub(t0) as f64 / secs;
            (pct > 10.0).then(|| (pct, format!("{pid} {name} {pct:.0}%")))
        })
        .collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    v.into_iter().map(|(_, s)| s).collect()
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn interrupted(stop: &AtomicBool) -> Result<(), LabError> {
    if stop.load(Ordering::Relaxed) {
        Err(LabError::Host("interrupted; tearing the lab down".into()))
    } else {
        Ok(())
    }
}

/// Common fields of a director's records.
struct Ctx<'a> {
    director: Director,
    setup: &'a str,
    port: Option<String>,
    server_sees: Option<String>,
    pinned: bool,
    client_cpu: u32,
    director_cpu: u32,
    threads: u32,
}

fn record(c: &Ctx, load: &Load) -> Record {
    Record {
        director: c.director,
        load: load.kind,
        rps: None,
        p50_ms: None,
        p90_ms: None,
        p99_ms: None,
        p999_ms: None,
        max_ms: None,
        transfer_mb_s: None,
        errors: None,
        error_detail: None,
        requests: None,
        duration_s: load.seconds as f64,
        connections: load.connections,
        keepalive: load.keepalive,
        path: load.path.to_owned(),
        wrk_threads: c.threads,
        setup: c.setup.to_owned(),
        port: c.port.clone(),
        server_sees: c.server_sees.clone(),
        tcp_retransmits: None,
        link_drops: None,
        backlog_drops: None,
        cpu_busy_pct: None,
        cpu_busy_idle_pct: None,
        other_busy: Vec::new(),
        pinned: c.pinned,
        client_cpu: c.client_cpu,
        director_cpu: c.director_cpu,
        director_counters: Vec::new(),
        error: None,
    }
}

/// Runs the comparison. Errors only for what stops the whole run (no lab, interrupted); a
/// director that cannot be measured is in [`Report::failures`].
pub fn run(opts: &Options, stop: &AtomicBool) -> Result<Report, LabError> {
    let t0 = Instant::now();
    check_root()?;
    require_tools(&[
        "wrk", "nginx", "haproxy", "nft", "taskset", "curl", "ss", "sh",
    ])?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        return Err(LabError::Host(
            "rvs-compare needs at least 2 CPUs (RVS's worker lcore busy-polls one)".into(),
        ));
    }
    if opts.director_cpu as usize >= cpus {
        return Err(LabError::Host(format!(
            "--director-cpu {}: this machine has CPUs 0-{}",
            opts.director_cpu,
            cpus - 1
        )));
    }
    println!(
        "== building the lab: client — director — {} real servers (nginx), two segments",
        opts.servers
    );
    let mut b = Bench::up(opts.servers, opts.pin, opts.director_cpu)?;
    interrupted(stop)?;
    if opts.pin {
        println!(
            "   CPU split: client (wrk), real servers (nginx) and their receive path on CPU {}; director and its receive path (RPS) on CPU {}",
            b.client_cpu, b.director_cpu
        );
    } else {
        println!("   no CPU pinning: the scheduler places everything");
    }
    let script = b.nat.write_file("report.lua", wrk::SCRIPT)?;
    let threads: u32 = if opts.pin { 1 } else { 2 };
    let plan = loads(opts.seconds);
    let mut records = Vec::new();
    let mut failures = Vec::new();
    for &d in &opts.directors {
        interrupted(stop)?;
        println!("== {}: setting up", d.name());
        let up = match d {
            Director::Rvs => {
                directors::rvs_up(&mut b, &opts.dataplane, opts.rvs_port, &opts.rvs_devargs)
            }
            Director::Nftables => directors::nftables_up(&b),
            Director::Haproxy => directors::haproxy_up(&mut b, stop),
        };
        interrupted(stop)?;
        let running = match up {
            Ok(r) => r,
            Err(e) => {
                println!("   FAILED: {e}");
                let c = Ctx {
                    director: d,
                    setup: "",
                    port: None,
                    server_sees: None,
                    pinned: opts.pin,
                    client_cpu: b.client_cpu,
                    director_cpu: b.director_cpu,
                    threads,
                };
                for l in &plan {
                    let mut r = record(&c, l);
                    r.error = Some(format!("set-up failed: {e}"));
                    records.push(r);
                }
                failures.push((d, format!("set-up failed: {e}")));
                // Whatever came up before the failure goes down again.
                let _ = match d {
                    Director::Rvs => Ok(Vec::new()),
                    Director::Nftables => directors::nftables_down(&b),
                    Director::Haproxy => directors::haproxy_down(&mut b),
                };
                continue;
            }
        };
        println!("   {}", running.setup);
        if let Some(f) = &running.fallback {
            println!(
                "   (fell back from af_xdp: {})",
                f.lines().next().unwrap_or_default()
            );
        }
        let measured = measure(&b, d, &running, &plan, &script, threads, stop);
        let down = match d {
            Director::Rvs => directors::rvs_down(&mut b),
            Director::Nftables => directors::nftables_down(&b),
            Director::Haproxy => directors::haproxy_down(&mut b),
        };
        interrupted(stop)?;
        let mut recs = measured;
        match down {
            Ok(counters) => {
                for line in &counters {
                    println!("   {line}");
                }
                for r in &mut recs {
                    r.director_counters = counters.clone();
                }
            }
            Err(e) => {
                println!("   tear-down FAILED: {e}");
                failures.push((d, format!("tear-down failed: {e}")));
            }
        }
        for r in &recs {
            if let Some(e) = &r.error {
                failures.push((d, format!("{}: {e}", r.load.name())));
            }
        }
        records.extend(recs);
    }
    drop(b);
    Ok(Report {
        records,
        failures,
        elapsed: t0.elapsed(),
    })
}

/// Probes the running director, then runs every load against it.
fn measure(
    b: &Bench,
    d: Director,
    running: &directors::Running,
    plan: &[Load],
    script: &std::path::Path,
    threads: u32,
    stop: &AtomicBool,
) -> Vec<Record> {
    let before = cpu_times();
    let procs = proc_ticks(b.nat.lab.dir());
    std::thread::sleep(Duration::from_secs(1));
    let idle = busy_pct(&before, &cpu_times());
    let others = other_busy(&procs, &proc_ticks(b.nat.lab.dir()), 1.0);
    println!("   CPU busy without load: {idle:?} %");
    if !others.is_empty() {
        println!(
            "   WARNING: other processes on this machine are busy, the figures are disturbed: {}",
            others.join("; ")
        );
    }
    let probe = b.probe();
    let c = Ctx {
        director: d,
        setup: &running.setup,
        port: running.port.clone(),
        server_sees: probe.as_ref().ok().cloned(),
        pinned: b.pin,
        client_cpu: b.client_cpu,
        director_cpu: b.director_cpu,
        threads,
    };
    let mut out = Vec::new();
    if let Err(e) = &probe {
        println!("   FAILED: requests through the VIP: {e}");
        for l in plan {
            let mut r = record(&c, l);
            r.error = Some(format!("requests through the VIP failed: {e}"));
            out.push(r);
        }
        return out;
    }
    println!(
        "   {} requests balanced over every real server; the servers see {}",
        2 * b.nat.servers.len(),
        c.server_sees.as_deref().unwrap_or("?")
    );
    for l in plan {
        let mut r = record(&c, l);
        r.cpu_busy_idle_pct = Some(idle.clone());
        r.other_busy = others.clone();
        if stop.load(Ordering::Relaxed) {
            r.error = Some("interrupted".into());
            out.push(r);
            continue;
        }
        let url = format!("http://{VIP}{}", l.path);
        let cmd = b.pinned_command(&b.nat.client, b.client_cpu, "wrk", |cmd| {
            cmd.args([
                "-t",
                &threads.to_string(),
                "-c",
                &l.connections.to_string(),
                "-d",
                &format!("{}s", l.seconds),
                "--timeout",
                "5s",
                "-s",
            ])
            .arg(script);
            if !l.keepalive {
                cmd.args(["-H", "Connection: close"]);
            }
            cmd.arg(&url);
        });
        let before = cpu_times();
        let retrans0 = b.tcp_retransmits();
        let drops0 = (b.link_drops(), backlog_drops());
        let res = wrk::run(cmd, Duration::from_secs(l.seconds + 20), stop);
        let after = cpu_times();
        let retrans = b.tcp_retransmits().saturating_sub(retrans0);
        let link_drops = b.link_drops().saturating_sub(drops0.0);
        let backlog = backlog_drops().saturating_sub(drops0.1);
        match res {
            Ok(w) if w.requests > 0 => {
                r.rps = Some(round(w.rps(), 1));
                r.p50_ms = Some(round(w.p50_ms, 3));
                r.p90_ms = Some(round(w.p90_ms, 3));
                r.p99_ms = Some(round(w.p99_ms, 3));
                r.p999_ms = Some(round(w.p999_ms, 3));
                r.max_ms = Some(round(w.max_ms, 3));
                r.transfer_mb_s = Some(round(w.transfer_mb_s(), 2));
                r.errors = Some(w.errors.total());
                r.error_detail = Some(w.errors);
                r.requests = Some(w.requests);
                r.duration_s = round(w.duration_s, 3);
                r.cpu_busy_pct = Some(busy_pct(&before, &after));
                r.tcp_retransmits = Some(retrans);
                r.link_drops = Some(link_drops);
                r.backlog_drops = Some(backlog);
                println!(
                    "   {:<5} {:>3} conn {:<10} {:>10.1} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  {:>8.2} MB/s  errors {}  retransmits {retrans}  drops {link_drops}/{backlog}  cpu% {:?}",
                    l.kind.name(),
                    l.connections,
                    if l.keepalive { "keep-alive" } else { "close" },
                    w.rps(),
                    w.p50_ms,
                    w.p99_ms,
                    w.transfer_mb_s(),
                    w.errors.total(),
                    r.cpu_busy_pct.as_deref().unwrap_or_default(),
                );
            }
            Ok(w) => {
                let e = format!(
                    "no request completed in {:.1} s (errors: {:?})",
                    w.duration_s, w.errors
                );
                println!("   {:<5} FAILED: {e}", l.kind.name());
                r.errors = Some(w.errors.total());
                r.error_detail = Some(w.errors);
                r.error = Some(e);
            }
            Err(e) => {
                println!("   {:<5} FAILED: {e}", l.kind.name());
                r.error = Some(e);
            }
        }
        out.push(r);
        // Let the last connections close before the next load.
        std::thread::sleep(Duration::from_millis(500));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_retransmitted_segments() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 2 64\n\
                    Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n\
                    Tcp: 1 200 120000 -1 10 20 0 0 3 1000 900 17 0 4 0\n";
        assert_eq!(retrans_segs(snmp), Some(17));
        assert_eq!(retrans_segs("Ip: x\nIp: 1\n"), None);
    }

    #[test]
    fn sums_link_drops() {
        let v: serde_json::Value = serde_json::from_str(
            r#"[{"ifname":"lo","stats64":{"rx":{"dropped":0},"tx":{"dropped":0}}},
                {"ifname":"d1","stats64":{"rx":{"dropped":7},"tx":{"dropped":2}}}]"#,
        )
        .unwrap();
        assert_eq!(link_dropped(&v), 7);
    }

    #[test]
    fn busy_share_per_cpu() {
        assert_eq!(
            busy_pct(&[(10, 100), (0, 100)], &[(60, 200), (100, 200)]),
            [50.0, 100.0]
        );
    }
}
