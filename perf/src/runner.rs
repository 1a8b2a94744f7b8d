//! The scenario runner behind `perf/run.sh` (`rvs-perf-run`): for each step it starts
//! `rvs-pktgen` (the memif server), then the peer (`rvs-dataplane` with a generated profile,
//! or `dpdk-testpmd` in io-forward mode), follows the generator's progress, stops the peer and
//! collects what both printed; then it runs the pipeline benchmarks and writes the reports.
//!
//! Steps: the testpmd baseline (repeated: first, between the scenarios, last); an idle
//! director with the smallest flow table (the memory baseline); every (mode, flows) scenario,
//! in passes over the matrix; the criterion pipeline benchmarks. Everything a step leaves is
//! under `OUT/raw/` (profiles, logs, the generator's JSON).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::plan::{Mode, Plan, ProfileOptions, Proto, memif_devargs, pow2_at_least};
use crate::progress::Progress;
use crate::report::{self, Meta, Row, ScenarioOutcome};
use crate::result::{Mem, PktgenResult};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The repository (for `cargo bench` and the git commit).
    pub repo: PathBuf,
    /// Where the release binaries are.
    pub bin_dir: PathBuf,
    /// Output directory.
    pub out: PathBuf,
    /// Quick run (recorded in the report).
    pub quick: bool,
    /// Modes to run.
    pub modes: Vec<Mode>,
    /// Flow counts to run.
    pub flows: Vec<u32>,
    /// Traffic protocol.
    pub proto: Proto,
    /// Real servers.
    pub servers: usize,
    /// Full-rate seconds.
    pub duration: f64,
    /// Half-rate seconds.
    pub half_duration: f64,
    /// New-connection seconds at most.
    pub cps_duration: f64,
    /// Uncounted start of timed phases.
    pub warmup: f64,
    /// Fresh tuples for new connections.
    pub fresh: u32,
    /// memif zero-copy on the director / testpmd side.
    pub zero_copy: bool,
    /// The generator's lcore.
    pub pktgen_lcore: u32,
    /// The director's (and testpmd's) main lcore.
    pub main_lcore: u32,
    /// The director's worker (and testpmd's forwarding) lcore.
    pub worker_lcore: u32,
    /// Run the pipeline benchmarks.
    pub bench: bool,
    /// Run the testpmd baseline.
    pub testpmd: bool,
    /// How many times (spread over the run; the ratios use the median).
    pub testpmd_runs: u32,
    /// Passes over the whole matrix (each scenario's row is its pass of median Mpps).
    pub passes: u32,
    /// `cargo` to run the benchmarks with.
    pub cargo: String,
    /// `dpdk-testpmd`.
    pub testpmd_bin: String,
    /// Directory for the memif socket and pid file.
    pub run_dir: PathBuf,
}

impl RunConfig {
    fn raw(&self) -> PathBuf {
        self.out.join("raw")
    }

    fn socket(&self) -> String {
        self.run_dir.join("memif.sock").display().to_string()
    }

    fn pidfile(&self) -> PathBuf {
        self.run_dir.join("peer.pid")
    }

    /// The director's capacity for `flows` established flows plus the fresh tuples.
    pub fn capacity(&self, flows: u32) -> u32 {
        pow2_at_least(u64::from(flows) + u64::from(self.fresh)).clamp(1024, 1 << 28) as u32
    }
}

/// What a generator process did.
#[derive(Debug)]
struct Step {
    result: Option<PktgenResult>,
    errors: Vec<String>,
    peer_out: String,
    secs: f64,
}

/// Runs `kill -SIG pid` (the workspace keeps `unsafe` out of this crate).
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// Waits for `child` at most `d`; `None` if it still runs.
fn wait_for(child: &mut Child, d: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + d;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops `child` with `sig`, then SIGKILL after `grace`.
fn stop(child: &mut Child, sig: &str, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    signal(child.id(), sig);
    if wait_for(child, grace).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// What peer to start once the generator listens.
enum Peer {
    Director { profile: PathBuf },
    Testpmd,
}

/// Runs one generator process with `args` against `peer`. `name` names the files in raw/.
fn run_step(
    cfg: &RunConfig,
    name: &str,
    gen_args: &[String],
    peer: Peer,
    timeout: Duration,
    progress: &mut Progress,
) -> Step {
    let t0 = Instant::now();
    let raw = cfg.raw();
    let socket = cfg.socket();
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(cfg.pidfile());
    let mut errors = Vec::new();
    let json = raw.join(format!("{name}.json"));
    let _ = std::fs::remove_file(&json);
    let gen_log = raw.join(format!("{name}.pktgen.log"));
    let mut args = gen_args.to_vec();
    args.extend([
        "--socket".into(),
        socket.clone(),
        "--lcore".into(),
        cfg.pktgen_lcore.to_string(),
        "--pidfile".into(),
        cfg.pidfile().display().to_string(),
        "--out".into(),
        json.display().to_string(),
        "--progress".into(),
    ]);
    let spawn = Command::new(cfg.bin_dir.join("rvs-pktgen"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(raw.join(format!("{name}.pktgen.err")))
                .map_or(Stdio::null(), Stdio::from),
        )
        .spawn();
    let mut pktgen = match spawn {
        Ok(c) => c,
        Err(e) => {
            return Step {
                result: None,
                errors: vec![format!("cannot start rvs-pktgen: {e}")],
                peer_out: String::new(),
                secs: 0.0,
            };
        }
    };
    // The generator's stdout: progress lines to the display, the rest (EAL log) to a file.
    let (tx, rx) = mpsc::channel::<(String, f64)>();
    let stdout = pktgen.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut log = std::fs::File::create(&gen_log).ok();
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("progress ") {
                    let mut it = rest.split_whitespace();
                    let phase = it.next().unwrap_or("").to_owned();
                    let pct = it.next().and_then(|p| p.parse().ok()).unwrap_or(0.0);
                    let _ = tx.send((phase, pct));
                } else if let Some(f) = &mut log {
                    let _ = writeln!(f, "{line}");
                }
            }
        }
    });
    // Wait for the memif socket (the generator's EAL is up and its port listens).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Path::new(&socket).exists() {
        if Instant::now() > deadline || matches!(pktgen.try_wait(), Ok(Some(_))) {
            errors.push(format!(
                "rvs-pktgen did not create {socket}: {}",
                tail(&raw.join(format!("{name}.pktgen.err")), 5)
            ));
            stop(&mut pktgen, "TERM", Duration::from_secs(2));
            let _ = reader.join();
            return Step {
                result: None,
                errors,
                peer_out: String::new(),
                secs: t0.elapsed().as_secs_f64(),
            };
        }
        progress.update("generator starting", None);
        std::thread::sleep(Duration::from_millis(20));
    }
    let peer_out_path = raw.join(format!("{name}.peer.out"));
    let peer_err_path = raw.join(format!("{name}.peer.log"));
    let out_file = std::fs::File::create(&peer_out_path).map_or(Stdio::null(), Stdio::from);
    let err_file = std::fs::File::create(&peer_err_path).map_or(Stdio::null(), Stdio::from);
    let (peer_cmd, stop_sig) = match &peer {
        Peer::Director { profile } => {
            let mut c = Command::new(cfg.bin_dir.join("rvs-dataplane"));
            c.arg("--profile").arg(profile);
            c.env("RVS_LOG", "info");
            (c, "TERM")
        }
        Peer::Testpmd => {
            let mut c = Command::new(&cfg.testpmd_bin);
            c.args([
                "-l".to_owned(),
                format!("{},{}", cfg.main_lcore, cfg.worker_lcore),
                "--main-lcore".into(),
                cfg.main_lcore.to_string(),
                "--in-memory".into(),
                "-m".into(),
                "128".into(),
                "--no-pci".into(),
            ]);
            if cfg.zero_copy {
                c.arg("--single-file-segments");
            }
            c.arg(format!(
                "--vdev={}",
                memif_devargs("client", &socket, None, cfg.zero_copy)
            ));
            c.args([
                "--",
                "--forward-mode=io",
                "--auto-start",
                "--stats-period=1",
                "--nb-cores=1",
            ]);
            (c, "INT")
        }
    };
    let mut peer_cmd = peer_cmd;
    let mut peer = match peer_cmd
        .stdin(Stdio::null())
        .stdout(out_file)
        .stderr(err_file)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            errors.push(format!("cannot start the peer: {e}"));
            stop(&mut pktgen, "TERM", Duration::from_secs(2));
            let _ = reader.join();
            return Step {
                result: None,
                errors,
                peer_out: String::new(),
                secs: t0.elapsed().as_secs_f64(),
            };
        }
    };
    let _ = std::fs::write(cfg.pidfile(), peer.id().to_string());
    let deadline = Instant::now() + timeout;
    let mut last = ("starting".to_owned(), 0.0);
    let mut peer_stopped = false;
    let gen_status = loop {
        if let Ok(Some(s)) = pktgen.try_wait() {
            break Some(s);
        }
        // The generator has measured everything: the peer leaves the link first (the
        // generator keeps its end open until then; see `generator::wait_peer_gone`).
        if last.0 == "finished" && !peer_stopped {
            stop(&mut peer, stop_sig, Duration::from_secs(20));
            peer_stopped = true;
        }
        if !peer_stopped && let Ok(Some(s)) = peer.try_wait() {
            errors.push(format!(
                "the peer exited early ({s}): {}",
                tail(&peer_err_path, 6)
            ));
            stop(&mut pktgen, "TERM", Duration::from_secs(3));
            break pktgen.try_wait().ok().flatten();
        }
        if Instant::now() > deadline {
            errors.push(format!("timed out after {:.0} s", timeout.as_secs_f64()));
            stop(&mut pktgen, "TERM", Duration::from_secs(3));
            break None;
        }
        if let Ok(p) = rx.recv_timeout(Duration::from_millis(100)) {
            last = p;
        }
        progress.update(&last.0, Some(last.1));
    };
    stop(&mut peer, stop_sig, Duration::from_secs(20));
    let _ = reader.join();
    let peer_out = std::fs::read_to_string(&peer_out_path).unwrap_or_default();
    let result = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str::<PktgenResult>(&t).ok());
    match gen_status {
        Some(s) if s.success() => {}
        Some(s) if s.code() == Some(3) => {} // measured, with errors listed in the result
        Some(s) => errors.push(format!(
            "rvs-pktgen failed ({s}): {}",
            tail(&raw.join(format!("{name}.pktgen.err")), 4)
        )),
        None => {}
    }
    if result.is_none() && errors.is_empty() {
        errors.push("rvs-pktgen wrote no result".into());
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_file(cfg.pidfile());
    Step {
        result,
        errors,
        peer_out,
        secs: t0.elapsed().as_secs_f64(),
    }
}

fn common_gen_args(cfg: &RunConfig, mode: Mode, flows: u32, fresh: u32) -> Vec<String> {
    vec![
        "--mode".into(),
        mode.as_str().into(),
        "--proto".into(),
        cfg.proto.as_str().into(),
        "--flows".into(),
        flows.to_string(),
        "--fresh".into(),
        fresh.to_string(),
        "--servers".into(),
        cfg.servers.to_string(),
        "--duration".into(),
        cfg.duration.to_string(),
        "--half-duration".into(),
        cfg.half_duration.to_string(),
        "--cps-duration".into(),
        cfg.cps_duration.to_string(),
        "--warmup".into(),
        cfg.warmup.to_string(),
    ]
}

fn write_profile(cfg: &RunConfig, name: &str, plan: &Plan, capacity: u32) -> PathBuf {
    let path = cfg.raw().join(format!("{name}.yaml"));
    let yaml = plan.profile_yaml(&ProfileOptions {
        socket: cfg.socket(),
        zero_copy: cfg.zero_copy,
        capacity,
        mem_mb: 128,
        main_lcore: cfg.main_lcore,
        worker_lcore: cfg.worker_lcore,
        shm: shm_path(),
    });
    let _ = std::fs::write(&path, yaml);
    path
}

/// The directors' control-link file (each removes it at exit; the runner makes sure).
fn shm_path() -> String {
    format!("/dev/shm/rvs-perf-{}", std::process::id())
}

fn cmd_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|x| x.1.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{n} × {model}")
}

/// Runs the whole matrix; writes the outputs; returns the rows and whether every step ran.
pub fn run(cfg: &RunConfig) -> (Vec<Row>, Meta, bool) {
    let t0 = Instant::now();
    let _ = std::fs::create_dir_all(cfg.raw());
    let _ = std::fs::create_dir_all(&cfg.run_dir);
    let mut meta = Meta {
        started: cmd_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        quick: cfg.quick,
        machine: machine(),
        dpdk: cmd_output("pkg-config", &["--modversion", "libdpdk"]),
        commit: {
            let c = cmd_output(
                "git",
                &[
                    "-C",
                    &cfg.repo.display().to_string(),
                    "rev-parse",
                    "--short",
                    "HEAD",
                ],
            );
            let dirty = !cmd_output(
                "git",
                &[
                    "-C",
                    &cfg.repo.display().to_string(),
                    "status",
                    "--porcelain",
                    "--untracked-files=no",
                ],
            )
            .is_empty();
            if dirty { format!("{c}+changes") } else { c }
        },
        ..Meta::default()
    };
    for (k, v) in [
        ("proto", cfg.proto.as_str().to_owned()),
        ("servers", cfg.servers.to_string()),
        ("duration_s", cfg.duration.to_string()),
        ("half_duration_s", cfg.half_duration.to_string()),
        ("cps_duration_s", cfg.cps_duration.to_string()),
        ("fresh_tuples", cfg.fresh.to_string()),
        ("zero_copy", cfg.zero_copy.to_string()),
        ("pktgen_lcore", cfg.pktgen_lcore.to_string()),
        (
            "director_lcores",
            format!("main {} worker {}", cfg.main_lcore, cfg.worker_lcore),
        ),
    ] {
        meta.options.insert(k.into(), v);
    }
    let matrix: Vec<(Mode, u32)> = cfg
        .modes
        .iter()
        .flat_map(|&m| cfg.flows.iter().map(move |&f| (m, f)))
        .collect();
    // Every pass runs the whole matrix; a scenario's passes are minutes apart, so the
    // machine's drift shows as their spread instead of deciding one figure.
    let passes = cfg.passes.max(1) as usize;
    let scenarios: Vec<(usize, Mode, u32)> = (0..passes)
        .flat_map(|k| matrix.iter().map(move |&(m, f)| (k, m, f)))
        .collect();
    let testpmd_runs = if cfg.testpmd {
        cfg.testpmd_runs.max(1) as usize
    } else {
        0
    };
    // Before which scenario each baseline run goes (scenarios.len() = after the last).
    let baseline_at = baseline_positions(testpmd_runs, scenarios.len());
    let steps = scenarios.len() + 1 + testpmd_runs + usize::from(cfg.bench);
    let mut progress = Progress::new(steps);
    let max_flows = cfg.flows.iter().copied().max().unwrap_or(100_000);
    let mut ok = true;

    // 1. The link's own limit, measured again between the scenarios and at the end.
    let mut baselines: Vec<Baseline> = Vec::new();
    let mut baseline = |progress: &mut Progress, meta: &mut Meta, ok: &mut bool| {
        let k = baselines.len() + 1;
        let name = if testpmd_runs > 1 {
            format!("testpmd-{k}")
        } else {
            "testpmd".into()
        };
        progress.start(&name);
        let args = common_gen_args(cfg, Mode::Testpmd, max_flows.min(1_000_000), 0);
        let step = run_step(
            cfg,
            &name,
            &args,
            Peer::Testpmd,
            Duration::from_secs(90),
            progress,
        );
        match step.result.as_ref().and_then(|r| r.sat.clone()) {
            Some(sat) if step.errors.is_empty() && sat.mpps > 0.0 => {
                progress.finish(
                    true,
                    &format!(
                        "{:.2} Mpps (best 100 ms {:.2}), p99 {:.0} µs: the link's limit",
                        sat.mpps, sat.peak_mpps, sat.p99_us
                    ),
                );
                baselines.push(Baseline {
                    sat,
                    half: step.result.as_ref().and_then(|r| r.half.clone()),
                    secs: step.secs,
                });
                let (sat, half) = median_baseline(&baselines);
                meta.testpmd = sat.map(|b| b.sat.clone());
                meta.testpmd_half = half.and_then(|b| b.half.clone());
                meta.testpmd_runs = baselines.iter().map(|b| b.sat.clone()).collect();
                meta.testpmd_half_runs = baselines.iter().filter_map(|b| b.half.clone()).collect();
            }
            _ => {
                let why = step.errors.join("; ");
                progress.finish(false, &format!("testpmd baseline failed: {why}"));
                meta.failures.push(format!("{name} baseline: {why}"));
                *ok = false;
            }
        }
    };
    for _ in baseline_at.iter().filter(|&&p| p == 0) {
        baseline(&mut progress, &mut meta, &mut ok);
    }

    // 2. An idle director with the smallest table: the memory baseline.
    progress.start("idle-memory");
    let plan = Plan::new(Mode::Dr, cfg.proto, 0, 0, cfg.servers);
    let profile = write_profile(cfg, "idle", &plan, 1024);
    let mut args = common_gen_args(cfg, Mode::Dr, 0, 0);
    args.push("--only-ready".into());
    let step = run_step(
        cfg,
        "idle",
        &args,
        Peer::Director { profile },
        Duration::from_secs(60),
        &mut progress,
    );
    let tiny: Option<Mem> = step.result.as_ref().and_then(|r| r.mem_before);
    match tiny {
        Some(m) if step.errors.is_empty() => progress.finish(
            true,
            &format!(
                "director with a 1024-flow table: {} MiB RSS + {} MiB hugepages",
                m.rss_kb / 1024,
                m.hugetlb_kb / 1024
            ),
        ),
        _ => {
            let why = step.errors.join("; ");
            progress.finish(false, &format!("idle director failed: {why}"));
            meta.failures.push(format!("idle director: {why}"));
            ok = false;
        }
    }

    // 3. The scenarios.
    let mut outcomes = Vec::new();
    for (i, &(pass, mode, flows)) in scenarios.iter().enumerate() {
        if i > 0 {
            for _ in baseline_at.iter().filter(|&&p| p == i) {
                baseline(&mut progress, &mut meta, &mut ok);
            }
        }
        let testpmd_mpps = meta.testpmd.as_ref().map(|t| t.mpps);
        let scenario = format!("{mode}-{}", report::flows_label(flows));
        let name = if passes > 1 {
            format!("{scenario}.p{}", pass + 1)
        } else {
            scenario
        };
        progress.start(&name);
        let capacity = cfg.capacity(flows);
        let fresh = if cfg.proto == Proto::Tcp {
            cfg.fresh
        } else {
            0
        };
        let plan = Plan::new(mode, cfg.proto, flows, fresh, cfg.servers);
        let profile = write_profile(cfg, &name, &plan, capacity);
        let args = common_gen_args(cfg, mode, flows, fresh);
        let timeout = Duration::from_secs(120 + u64::from(flows) / 50_000);
        let step = run_step(
            cfg,
            &name,
            &args,
            Peer::Director { profile },
            timeout,
            &mut progress,
        );
        let outcome = ScenarioOutcome {
            mode: mode.to_string(),
            proto: cfg.proto.as_str().into(),
            flows,
            capacity,
            result: step.result,
            errors: step.errors,
            director: report::parse_director_exit(&step.peer_out),
            secs: step.secs,
        };
        let r = report::row(&outcome, testpmd_mpps, tiny, &BTreeMap::new());
        let line = format!(
            "{} Mpps{}{}, {} conn/s, p99 {} µs, {} B/flow, {} mismatches{}",
            r.mpps.map_or("–".into(), |m| format!("{m:.2}")),
            r.mpps_peak
                .map_or(String::new(), |m| format!(" (best 100 ms {m:.2}")),
            r.ratio
                .map_or(")".into(), |x| format!("; {:.0}% of testpmd)", x * 100.0)),
            r.cps.map_or("–".into(), |c| format!("{:.0}k", c / 1e3)),
            r.p99_us.map_or("–".into(), |p| format!("{p:.0}")),
            r.bytes_per_flow.map_or("–".into(), |b| format!("{b:.0}")),
            r.mismatches,
            if r.errors.is_empty() {
                String::new()
            } else {
                format!("; {}", r.errors.join("; "))
            }
        );
        progress.finish(r.ok, &line);
        ok &= r.ok;
        outcomes.push(outcome);
    }

    if !scenarios.is_empty() {
        for _ in baseline_at.iter().filter(|&&p| p == scenarios.len()) {
            baseline(&mut progress, &mut meta, &mut ok);
        }
    }
    let testpmd_secs = baselines.iter().map(|b| b.secs).sum::<f64>();
    let testpmd_mpps = meta.testpmd.as_ref().map(|t| t.mpps);

    // 4. The pipeline's own cost.
    if cfg.bench {
        progress.start("pipeline-bench");
        match run_bench(cfg, &mut progress) {
            Ok(p) => {
                progress.finish(true, &format!("{} figures", p.len()));
                meta.pipeline = p;
            }
            Err(e) => {
                progress.finish(false, &e);
                meta.failures.push(format!("pipeline bench: {e}"));
                ok = false;
            }
        }
    }

    let mut rows = Vec::new();
    if let Some(t) = &meta.testpmd {
        rows.push(Row {
            scenario: "testpmd".into(),
            mode: "testpmd".into(),
            flows: max_flows.min(1_000_000),
            mpps: Some(t.mpps),
            testpmd_mpps: Some(t.mpps),
            ratio: Some(1.0),
            ratio_peak: Some(1.0),
            p50_us: Some(t.p50_us),
            p99_us: Some(t.p99_us),
            p999_us: Some(t.p999_us),
            drops: Some(t.drops),
            tx_mpps: Some(t.tx_mpps),
            mpps_peak: Some(t.peak_mpps),
            mpps_50pct: meta.testpmd_half.as_ref().map(|h| h.mpps),
            p50_us_50pct: meta.testpmd_half.as_ref().map(|h| h.p50_us),
            p99_us_50pct: meta.testpmd_half.as_ref().map(|h| h.p99_us),
            p999_us_50pct: meta.testpmd_half.as_ref().map(|h| h.p999_us),
            drops_50pct: meta.testpmd_half.as_ref().map(|h| h.drops),
            proto: cfg.proto.as_str().into(),
            ok: true,
            secs: testpmd_secs,
            ..Row::default()
        });
    }
    for &(mode, flows) in &matrix {
        let passes: Vec<Row> = outcomes
            .iter()
            .filter(|o| o.mode == mode.as_str() && o.flows == flows)
            .map(|o| report::row(o, testpmd_mpps, tiny, &meta.pipeline))
            .collect();
        rows.extend(report::merge_passes(passes));
    }
    let testpmd_peak = meta.testpmd.as_ref().map(|t| t.peak_mpps);
    for r in rows.iter_mut().filter(|r| r.mode != "testpmd") {
        r.ratio_peak = match (r.mpps_peak, testpmd_peak) {
            (Some(m), Some(t)) if t > 0.0 => Some(m / t),
            _ => None,
        };
    }
    meta.idle_mem = tiny;
    let (before, analysis) = before_and_analysis(&cfg.repo);
    meta.before = before;
    meta.analysis = analysis;
    meta.secs = t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(shm_path());
    let _ = std::fs::remove_dir(&cfg.run_dir);
    (rows, meta, ok)
}

/// `perf/before.json` and `perf/ANALYSIS.md` of the repository, when present (a malformed
/// `before.json` is reported and left out).
pub fn before_and_analysis(repo: &Path) -> (Option<report::Before>, Option<String>) {
    let before = std::fs::read_to_string(repo.join("perf/before.json"))
        .ok()
        .and_then(|t| match serde_json::from_str(&t) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("rvs-perf-run: perf/before.json: {e}");
                None
            }
        });
    let analysis = std::fs::read_to_string(repo.join("perf/ANALYSIS.md")).ok();
    (before, analysis)
}

/// One testpmd baseline run.
#[derive(Debug, Clone)]
struct Baseline {
    sat: crate::result::Blast,
    half: Option<crate::result::Blast>,
    secs: f64,
}

/// Before which scenario (0-based; `scenarios` = after the last) each of `runs` baseline runs
/// goes: the first before everything, the last after everything, the others evenly between.
fn baseline_positions(runs: usize, scenarios: usize) -> Vec<usize> {
    match runs {
        0 => Vec::new(),
        1 => vec![0],
        _ => (0..runs)
            .map(|k| (k * scenarios).div_ceil(runs - 1))
            .collect(),
    }
}

/// The baseline run of median saturation rate, and the one of median half-rate p99 (the lower
/// middle one for an even count).
fn median_baseline(runs: &[Baseline]) -> (Option<&Baseline>, Option<&Baseline>) {
    let median_by = |key: &dyn Fn(&Baseline) -> Option<f64>| {
        let mut v: Vec<(f64, &Baseline)> = runs.iter().filter_map(|b| Some((key(b)?, b))).collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v.get(v.len().saturating_sub(1) / 2).map(|x| x.1)
    };
    (
        median_by(&|b| Some(b.sat.mpps)),
        median_by(&|b| b.half.as_ref().map(|h| h.p99_us)),
    )
}

/// Runs the criterion pipeline benchmarks for the configured modes and flow counts and reads
/// their estimates (mean ns per packet).
fn run_bench(cfg: &RunConfig, progress: &mut Progress) -> Result<BTreeMap<String, f64>, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cfg.repo.join("target"));
    let crit = target.join("criterion");
    let modes: Vec<&str> = cfg.modes.iter().map(|m| m.as_str()).collect();
    for m in &modes {
        for g in ["established", "new_connection"] {
            let _ = std::fs::remove_dir_all(crit.join(format!("{m}_{g}")));
        }
    }
    for g in ["dr_established_burst", "dr_new_connection_burst"] {
        let _ = std::fs::remove_dir_all(crit.join(g));
    }
    let flows: Vec<String> = cfg.flows.iter().map(u32::to_string).collect();
    let log = cfg.raw().join("pipeline-bench.log");
    let mut child = Command::new(&cfg.cargo)
        .current_dir(&cfg.repo)
        .args([
            "bench",
            "-q",
            "-p",
            "rvs-perf",
            "--bench",
            "pipeline",
            "--bench",
            "burst",
            "--",
            "--warm-up-time",
            "1",
            "--measurement-time",
            "2",
            "--noplot",
        ])
        .env("RVS_BENCH_MODES", modes.join(","))
        .env("RVS_BENCH_FLOWS", flows.join(","))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(cfg.raw().join("pipeline-bench.err"))
                .map_or(Stdio::null(), Stdio::from),
        )
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", cfg.cargo))?;
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::create(&log).ok();
        if let Some(out) = stdout {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(f) = &mut f {
                    let _ = writeln!(f, "{line}");
                }
                if let Some(name) = line.split_whitespace().next()
                    && name.contains('/')
                {
                    let _ = tx.send(name.to_owned());
                }
            }
        }
    });
    let mut current = String::from("building");
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if let Ok(name) = rx.recv_timeout(Duration::from_millis(100)) {
            current = name;
        }
        progress.update(&current, None);
    };
    let _ = reader.join();
    if !status.success() {
        return Err(format!(
            "cargo bench failed ({status}): {}",
            tail(&cfg.raw().join("pipeline-bench.err"), 5)
        ));
    }
    let mut out = BTreeMap::new();
    for m in &modes {
        for f in &cfg.flows {
            if let Some(v) = read_estimate(&crit.join(format!("{m}_established/{f}"))) {
                out.insert(format!("{m}_established/{f}"), v);
            }
        }
        if let Some(v) = read_estimate(&crit.join(format!("{m}_new_connection/syn"))) {
            out.insert(format!("{m}_new_connection/syn"), v);
        }
    }
    // The worker loop's own path: `process_burst`, 32 frames at a time (DR).
    for f in &cfg.flows {
        let name = format!("dr_established_burst/{f}");
        if let Some(v) = read_estimate(&crit.join(&name)) {
            out.insert(name, v);
        }
    }
    if let Some(v) = read_estimate(&crit.join("dr_new_connection_burst/syn")) {
        out.insert("dr_new_connection_burst/syn".into(), v);
    }
    if out.is_empty() {
        return Err(format!("no estimates under {}", crit.display()));
    }
    Ok(out)
}

/// criterion's mean estimate (ns) in `DIR/new/estimates.json`.
pub fn read_estimate(dir: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("mean")?.get("point_estimate")?.as_f64()
}

/// Writes `summary.json`, `run.json`, `report.md` and the charts into `out` (with `lab.json`'s
/// table when that file exists).
pub fn write_outputs(out: &Path, rows: &[Row], meta: &Meta) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(rows).expect("rows serialise") + "\n",
    )?;
    std::fs::write(
        out.join("run.json"),
        serde_json::to_string_pretty(meta).expect("meta serialises") + "\n",
    )?;
    render(out, rows, meta)
}

/// Writes `report.md` and the charts from rows and meta (and `lab.json` if present).
pub fn render(out: &Path, rows: &[Row], meta: &Meta) -> std::io::Result<()> {
    let lab = std::fs::read_to_string(out.join("lab.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    for (name, svg) in report::charts(rows, meta) {
        std::fs::write(out.join(name), svg)?;
    }
    std::fs::write(
        out.join("report.md"),
        report::markdown(meta, rows, lab.as_ref()),
    )
}

/// Reads a previous run's `summary.json` and `run.json` from `out`.
pub fn load(out: &Path) -> Result<(Vec<Row>, Meta), String> {
    let rows = std::fs::read_to_string(out.join("summary.json"))
        .map_err(|e| format!("{}: {e}", out.join("summary.json").display()))?;
    let rows: Vec<Row> = serde_json::from_str(&rows).map_err(|e| format!("summary.json: {e}"))?;
    let meta = std::fs::read_to_string(out.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok((rows, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RunConfig {
        RunConfig {
            repo: ".".into(),
            bin_dir: "target/release".into(),
            out: std::env::temp_dir().join(format!("rvs-perf-test-{}", std::process::id())),
            quick: true,
            modes: vec![Mode::Dr],
            flows: vec![100_000],
            proto: Proto::Tcp,
            servers: 4,
            duration: 3.0,
            half_duration: 2.0,
            cps_duration: 2.0,
            warmup: 0.5,
            fresh: 1 << 20,
            zero_copy: false,
            pktgen_lcore: 0,
            main_lcore: 0,
            worker_lcore: 1,
            bench: false,
            testpmd: false,
            testpmd_runs: 1,
            passes: 1,
            cargo: "cargo".into(),
            testpmd_bin: "dpdk-testpmd".into(),
            run_dir: "/run/rvs-perf".into(),
        }
    }

    #[test]
    fn capacity_holds_the_flows_and_the_fresh_tuples() {
        let c = cfg();
        assert_eq!(c.capacity(1000), 1 << 21);
        assert_eq!(c.capacity(1_000_000), 1 << 21);
        assert_eq!(c.capacity(2_000_000), 1 << 22);
        assert_eq!(c.capacity(10_000_000), 1 << 24);
        let mut c = c;
        c.fresh = 0;
        assert_eq!(c.capacity(1000), 1024);
        assert_eq!(c.capacity(10), 1024);
    }

    #[test]
    fn outputs_are_written_and_read_back() {
        let c = cfg();
        let rows = vec![Row {
            scenario: "dr-100k".into(),
            mode: "dr".into(),
            flows: 100_000,
            mpps: Some(1.0),
            ok: true,
            ..Row::default()
        }];
        let meta = Meta {
            quick: true,
            ..Meta::default()
        };
        std::fs::create_dir_all(&c.out).unwrap();
        std::fs::write(c.out.join("lab.json"), r#"[{"tool":"haproxy","rps":1}]"#).unwrap();
        write_outputs(&c.out, &rows, &meta).unwrap();
        let (r2, m2) = load(&c.out).unwrap();
        assert_eq!(r2, rows);
        assert_eq!(m2, meta);
        let md = std::fs::read_to_string(c.out.join("report.md")).unwrap();
        assert!(md.contains("| dr-100k |"));
        assert!(md.contains("haproxy"));
        for svg in ["throughput.svg", "latency.svg", "cps.svg", "pipeline.svg"] {
            assert!(c.out.join(svg).exists(), "{svg}");
        }
        std::fs::remove_dir_all(&c.out).unwrap();
    }

    #[test]
    fn criterion_estimates_are_read() {
        let dir = std::env::temp_dir().join(format!("rvs-perf-crit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("new")).unwrap();
        std::fs::write(
            dir.join("new/estimates.json"),
            r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":40.0,"upper_bound":44.0},"point_estimate":42.5,"standard_error":1.0},"median":{"point_estimate":41.0}}"#,
        )
        .unwrap();
        assert_eq!(read_estimate(&dir), Some(42.5));
        assert_eq!(read_estimate(&dir.join("missing")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn generator_arguments_name_the_scenario() {
        let a = common_gen_args(&cfg(), Mode::Fnat, 1000, 5);
        let s = a.join(" ");
        assert!(s.contains("--mode fnat"));
        assert!(s.contains("--flows 1000"));
        assert!(s.contains("--fresh 5"));
    }

    #[test]
    fn baselines_go_first_between_and_last() {
        assert_eq!(baseline_positions(3, 16), vec![0, 8, 16]);
        assert_eq!(baseline_positions(3, 4), vec![0, 2, 4]);
        assert_eq!(baseline_positions(1, 16), vec![0]);
        assert_eq!(baseline_positions(2, 5), vec![0, 5]);
        assert_eq!(baseline_positions(0, 5), Vec::<usize>::new());
        // Without scenarios every run is at 0, and each one still runs (the caller loops).
        assert_eq!(baseline_positions(3, 0), vec![0, 0, 0]);
    }

    #[test]
    fn the_median_run_is_chosen_per_figure() {
        use crate::result::Blast;
        let run = |mpps: f64, p99: Option<f64>| Baseline {
            sat: Blast {
                mpps,
                ..Blast::default()
            },
            half: p99.map(|p| Blast {
                p99_us: p,
                ..Blast::default()
            }),
            secs: 1.0,
        };
        let runs = [
            run(9.0, Some(70.0)),
            run(8.0, Some(200.0)),
            run(10.0, Some(60.0)),
        ];
        let (sat, half) = median_baseline(&runs);
        assert_eq!(sat.unwrap().sat.mpps, 9.0);
        assert_eq!(half.unwrap().half.as_ref().unwrap().p99_us, 70.0);
        // Even count: the lower middle; a run without a half-rate phase is left out there.
        let runs = [
            run(9.0, None),
            run(8.0, Some(50.0)),
            run(7.0, Some(40.0)),
            run(6.0, None),
        ];
        let (sat, half) = median_baseline(&runs);
        assert_eq!(sat.unwrap().sat.mpps, 7.0);
        assert_eq!(half.unwrap().half.as_ref().unwrap().p99_us, 40.0);
        assert!(median_baseline(&[]).0.is_none());
    }
}
