//! `rvs-perf-run`: runs the performance matrix (testpmd baseline, idle director, every
//! mode × flow-count scenario through `rvs-pktgen` and `rvs-dataplane` over memif, the
//! pipeline benchmarks) and writes `summary.json`, `run.json`, `report.md` and the SVG charts.
//! `perf/run.sh` builds everything and calls it. `--report-only` re-renders the report from a
//! previous run's files (e.g. once `lab.json` exists).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rvs_perf::plan::{Mode, Proto};
use rvs_perf::runner::{self, RunConfig};

/// RVS performance matrix runner.
#[derive(Debug, Parser)]
#[command(name = "rvs-perf-run", version, args_override_self = true)]
struct Cli {
    /// Every mode at 100k flows only, shorter phases.
    #[arg(long)]
    quick: bool,
    /// Modes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "dr,tun,nat,fnat")]
    modes: Vec<String>,
    /// Flow counts (comma-separated); default 1000,100000,1000000,10000000 (quick: 100000).
    #[arg(long, value_delimiter = ',')]
    flows: Vec<u32>,
    /// tcp or udp.
    #[arg(long, default_value = "tcp")]
    proto: String,
    /// Real servers.
    #[arg(long, default_value_t = 4)]
    servers: usize,
    /// Full-rate seconds (default 3; quick 2.5).
    #[arg(long)]
    duration: Option<f64>,
    /// Half-rate seconds (default 2; quick 1.5).
    #[arg(long)]
    half_duration: Option<f64>,
    /// New-connection seconds at most.
    #[arg(long, default_value_t = 2.0)]
    cps_duration: f64,
    /// Uncounted start of each timed phase, seconds.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Fresh tuples for the new-connection phase (TCP).
    #[arg(long, default_value_t = 1 << 20)]
    fresh: u32,
    /// memif zero-copy on the director's and testpmd's side (yes/no).
    #[arg(long, default_value = "yes")]
    zero_copy: String,
    /// The generator's lcore.
    #[arg(long, default_value_t = 0)]
    pktgen_lcore: u32,
    /// The director's main lcore.
    #[arg(long, default_value_t = 0)]
    main_lcore: u32,
    /// The director's worker lcore.
    #[arg(long, default_value_t = 1)]
    worker_lcore: u32,
    /// Skip the pipeline benchmarks.
    #[arg(long)]
    no_bench: bool,
    /// Skip the testpmd baseline.
    #[arg(long)]
    no_testpmd: bool,
    /// testpmd baseline runs, spread over the run (first, evenly between scenarios, last);
    /// the ratios use their median. This machine's link rate drifts by 10-20 % from minute
    /// to minute, so one run would make the ratios as noisy as the drift.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    testpmd_runs: u32,
    /// Passes over the whole matrix, minutes apart; each scenario's figures are its pass of
    /// median Mpps, every pass's rate is kept (`mpps_runs`) and mismatches add up
    /// (default 3; quick: 2).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=9))]
    passes: Option<u32>,
    /// Output directory.
    #[arg(long, default_value = "perf/out")]
    out: PathBuf,
    /// Directory of rvs-pktgen and rvs-dataplane.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// The repository root.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// cargo, for the benchmarks.
    #[arg(long, default_value = "cargo")]
    cargo: String,
    /// dpdk-testpmd.
    #[arg(long, default_value = "dpdk-testpmd")]
    testpmd: String,
    /// Directory for the memif socket and pid file.
    #[arg(long, default_value = "/run/rvs-perf")]
    run_dir: PathBuf,
    /// Only re-render report.md and the charts from OUT/summary.json and OUT/run.json.
    #[arg(long)]
    report_only: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.report_only {
        return match runner::load(&cli.out).and_then(|(rows, mut meta)| {
            // The before figures and the analysis are the repository's current ones.
            let (before, analysis) = runner::before_and_analysis(&cli.repo);
            meta.before = before.or(meta.before);
            meta.analysis = analysis.or(meta.analysis);
            runner::write_outputs(&cli.out, &rows, &meta).map_err(|e| e.to_string())
        }) {
            Ok(()) => {
                eprintln!(
                    "rvs-perf-run: wrote {}",
                    cli.out.join("report.md").display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rvs-perf-run: {e}");
                ExitCode::from(1)
            }
        };
    }
    let mut modes = Vec::new();
    for m in &cli.modes {
        match Mode::parse(m) {
            Some(Mode::Testpmd) | None => {
                eprintln!("rvs-perf-run: unknown mode {m:?} (dr, tun, nat, fnat)");
                return ExitCode::from(2);
            }
            Some(mode) => modes.push(mode),
        }
    }
    let Some(proto) = Proto::parse(&cli.proto) else {
        eprintln!("rvs-perf-run: unknown protocol {:?}", cli.proto);
        return ExitCode::from(2);
    };
    let flows = if !cli.flows.is_empty() {
        cli.flows.clone()
    } else if cli.quick {
        vec![100_000]
    } else {
        vec![1_000, 100_000, 1_000_000, 10_000_000]
    };
    let cfg = RunConfig {
        repo: cli.repo.clone(),
        bin_dir: cli.bin_dir.clone(),
        out: cli.out.clone(),
        quick: cli.quick,
        modes,
        flows,
        proto,
        servers: cli.servers,
        duration: cli.duration.unwrap_or(if cli.quick { 2.5 } else { 3.0 }),
        half_duration: cli
            .half_duration
            .unwrap_or(if cli.quick { 1.5 } else { 2.0 }),
        cps_duration: cli.cps_duration,
        warmup: cli.warmup,
        fresh: cli.fresh,
        zero_copy: matches!(cli.zero_copy.as_str(), "yes" | "true" | "1"),
        pktgen_lcore: cli.pktgen_lcore,
        main_lcore: cli.main_lcore,
        worker_lcore: cli.worker_lcore,
        bench: !cli.no_bench,
        testpmd: !cli.no_testpmd,
        testpmd_runs: cli.testpmd_runs,
        passes: cli.passes.unwrap_or(if cli.quick { 2 } else { 3 }),
        cargo: cli.cargo.clone(),
        testpmd_bin: cli.testpmd.clone(),
        run_dir: cli.run_dir.clone(),
    };
    for bin in ["rvs-pktgen", "rvs-dataplane"] {
        if !cfg.bin_dir.join(bin).exists() {
            eprintln!(
                "rvs-perf-run: {} not found (cargo build --release first)",
                cfg.bin_dir.join(bin).display()
            );
            return ExitCode::from(2);
        }
    }
    let (rows, meta, ok) = runner::run(&cfg);
    if let Err(e) = runner::write_outputs(&cfg.out, &rows, &meta) {
        eprintln!("rvs-perf-run: writing {}: {e}", cfg.out.display());
        return ExitCode::from(1);
    }
    eprintln!(
        "rvs-perf-run: {} scenarios in {:.0} s; wrote {}/summary.json and report.md",
        rows.len(),
        meta.secs,
        cfg.out.display()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        eprintln!("rvs-perf-run: some steps did not run (see report.md, Problems)");
        ExitCode::from(1)
    }
}
