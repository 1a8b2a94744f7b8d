//! `rvs-pktgen`: the perf harness's traffic generator. It owns a memif server port, plays the
//! clients (and the real servers for NAT and FullNAT) of one scenario, checks every frame
//! that comes back, and writes what it measured as JSON. `rvs-perf-run` starts it once per
//! scenario; it can be run by hand against a director started with a matching profile
//! (`--print-profile` writes one).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rvs_perf::generator::{self, GenOptions};
use rvs_perf::plan::{Mode, Plan, ProfileOptions, Proto, pow2_at_least};

/// DPDK traffic generator for RVS over memif.
#[derive(Debug, Parser)]
#[command(name = "rvs-pktgen", version)]
struct Cli {
    /// dr, tun, nat, fnat, or testpmd (frames come back unchanged).
    #[arg(long, default_value = "dr")]
    mode: String,
    /// tcp or udp.
    #[arg(long, default_value = "tcp")]
    proto: String,
    /// Established flows.
    #[arg(long, default_value_t = 100_000)]
    flows: u32,
    /// Fresh tuples for the new-connection phase (0 skips it).
    #[arg(long, default_value_t = 1 << 20)]
    fresh: u32,
    /// Real servers (rr over them).
    #[arg(long, default_value_t = 4)]
    servers: usize,
    /// Frame length in bytes (no FCS).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// memif socket file (created here: this side is the server).
    #[arg(long, default_value = "/run/rvs-perf/memif.sock")]
    socket: String,
    /// lcore (CPU) to run on.
    #[arg(long, default_value_t = 0)]
    lcore: u32,
    /// Hugepage memory, MiB.
    #[arg(long, default_value_t = 128)]
    mem: u32,
    /// Full-rate phase, seconds.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Requests per second in the full-rate phase (default: as fast as the link takes them).
    #[arg(long)]
    rate: Option<f64>,
    /// Half-rate (latency) phase, seconds.
    #[arg(long, default_value_t = 2.0)]
    half_duration: f64,
    /// Not counted at the start of each timed phase, seconds.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// New-connection phase, seconds at most.
    #[arg(long, default_value_t = 2.0)]
    cps_duration: f64,
    /// Connections in progress at most in the new-connection phase.
    #[arg(long, default_value_t = 512)]
    cps_window: u64,
    /// Requests in flight at most while opening flows and at full rate.
    #[arg(long, default_value_t = 512)]
    window: u64,
    /// Seconds to wait for the link and the director's ARP.
    #[arg(long, default_value_t = 120.0)]
    ready_timeout: f64,
    /// File holding the director's pid, for its memory figures. With it, the generator prints
    /// `progress finished` when it has measured everything and keeps its end of the link open
    /// until that process has exited (at most 30 s): stop the director then.
    #[arg(long)]
    pidfile: Option<PathBuf>,
    /// Only wait until ready and read the director's memory (idle baseline).
    #[arg(long)]
    only_ready: bool,
    /// Write the result here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print `progress PHASE PERCENT` lines on stdout.
    #[arg(long)]
    progress: bool,
    /// Print the director profile matching these options and exit.
    #[arg(long)]
    print_profile: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(mode) = Mode::parse(&cli.mode) else {
        eprintln!(
            "rvs-pktgen: unknown mode {:?} (dr, tun, nat, fnat, testpmd)",
            cli.mode
        );
        return ExitCode::from(2);
    };
    let Some(proto) = Proto::parse(&cli.proto) else {
        eprintln!("rvs-pktgen: unknown protocol {:?} (tcp, udp)", cli.proto);
        return ExitCode::from(2);
    };
    let mut plan = Plan::new(mode, proto, cli.flows, cli.fresh, cli.servers);
    plan.size = cli.size;
    if cli.print_profile {
        print!(
            "{}",
            plan.profile_yaml(&ProfileOptions {
                socket: cli.socket.clone(),
                zero_copy: false,
                capacity: pow2_at_least(u64::from(plan.total_flows())) as u32,
                mem_mb: 128,
                main_lcore: 0,
                worker_lcore: 1,
                shm: "/dev/shm/rvs-perf".into(),
            })
        );
        return ExitCode::SUCCESS;
    }
    let opts = GenOptions {
        plan,
        socket: cli.socket,
        lcore: cli.lcore,
        mem_mb: cli.mem,
        sat_secs: cli.duration,
        rate: cli.rate.filter(|r| *r > 0.0),
        half_secs: cli.half_duration,
        warmup_secs: cli.warmup,
        cps_secs: cli.cps_duration,
        cps_window: cli.cps_window,
        window: cli.window,
        ready_secs: cli.ready_timeout,
        pidfile: cli.pidfile,
        only_ready: cli.only_ready,
        progress: cli.progress,
    };
    match generator::run(&opts) {
        Ok(r) => {
            let json = serde_json::to_string_pretty(&r).expect("result serialises");
            match &cli.out {
                Some(path) => {
                    if let Err(e) = std::fs::write(path, json + "\n") {
                        eprintln!("rvs-pktgen: {}: {e}", path.display());
                        return ExitCode::from(1);
                    }
                }
                None => println!("{json}"),
            }
            if r.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                for e in &r.errors {
                    eprintln!("rvs-pktgen: {e}");
                }
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("rvs-pktgen: {e}");
            ExitCode::from(1)
        }
    }
}
