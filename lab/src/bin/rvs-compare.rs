//! `rvs-compare`: RVS, the kernel (nftables DNAT) and HAProxy (TCP mode) under the same wrk
//! load in one namespace lab with real kernel TCP, reported side by side (SPEC §9, end to end).
//! Needs root, hugepages (`scripts/setup.sh`) and `rvs-dataplane` next to this program.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use rvs_lab::compare::{self, Director, Options, PortDriver};

#[derive(Debug, Parser)]
#[command(
    name = "rvs-compare",
    version,
    about = "RVS vs nftables DNAT vs HAProxy (TCP mode) under the same wrk load, in a namespace lab"
)]
struct Cli {
    /// Where to write the results (a JSON array, one object per director and load).
    #[arg(long, default_value = "perf/out/lab.json")]
    out: PathBuf,
    /// Seconds of each short- and long-connection load (the bulk download runs half as long).
    /// The default keeps the whole run within 3 minutes.
    #[arg(long)]
    duration: Option<u64>,
    /// Shorter loads (6 s each): the whole run within 1.5 minutes.
    #[arg(long)]
    quick: bool,
    /// Directors to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "rvs,nftables,haproxy"
    )]
    directors: Vec<Director>,
    /// RVS's DPDK port driver: af_xdp with a fallback to af_packet, or one of them only.
    #[arg(long, value_enum, default_value = "auto")]
    rvs_port: PortDriver,
    /// Extra devargs appended to RVS's af_xdp ports (e.g. `,busy_budget=0`).
    #[arg(long, default_value = "")]
    rvs_devargs: String,
    /// Real servers.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=16))]
    servers: u8,
    /// Do not split the CPUs between the director and the rest (client, real servers).
    #[arg(long)]
    no_pin: bool,
    /// The director's CPU (RVS's worker lcore, HAProxy, the kernel's forwarding); the client
    /// and the real servers get another one.
    #[arg(long, default_value_t = 1)]
    director_cpu: u32,
    /// The rvs-dataplane binary (default: next to this program).
    #[arg(long)]
    dataplane: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    let seconds = cli
        .duration
        .unwrap_or(if cli.quick { 6 } else { 15 })
        .max(1);
    let dataplane = cli.dataplane.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("rvs-dataplane")))
            .unwrap_or_else(|| PathBuf::from("rvs-dataplane"))
    });
    let opts = Options {
        seconds,
        dataplane,
        servers: usize::from(cli.servers),
        pin: !cli.no_pin,
        director_cpu: cli.director_cpu,
        directors: cli.directors,
        rvs_port: cli.rvs_port,
        rvs_devargs: cli.rvs_devargs,
    };
    let report = match compare::run(&opts, &stop) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rvs-compare: {e}");
            println!("== lab removed");
            return ExitCode::FAILURE;
        }
    };
    println!("== lab removed");
    println!(
        "\n== results ({} real servers; wrk in the client namespace; latency = request sent → response read)\n",
        opts.servers
    );
    print!("{}", compare::table(&report.records, &opts.directors));
    println!();
    for &d in &opts.directors {
        if let Some(r) = report
            .records
            .iter()
            .find(|r| r.director == d && !r.setup.is_empty())
        {
            println!("   {:<9} {}", d.name(), r.setup);
        }
    }
    match report.records.first() {
        Some(r) if r.pinned => println!(
            "   CPUs: client (wrk, 1 thread) and real servers on CPU {}, director on CPU {}",
            r.client_cpu, r.director_cpu
        ),
        Some(_) => println!("   CPUs: not pinned (wrk with 2 threads)"),
        None => {}
    }
    let disturbed: Vec<&str> = opts
        .directors
        .iter()
        .filter(|&&d| {
            report
                .records
                .iter()
                .any(|r| r.director == d && !r.other_busy.is_empty())
        })
        .map(|d| d.name())
        .collect();
    if !disturbed.is_empty() {
        println!(
            "   WARNING: processes outside the lab were busy during the runs of {} (`other_busy` in the JSON): those figures are disturbed",
            disturbed.join(", ")
        );
    }
    let json = compare::json(&report.records);
    let written = cli
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&cli.out, json));
    match written {
        Ok(()) => println!("\n   written to {}", cli.out.display()),
        Err(e) => {
            eprintln!("rvs-compare: cannot write {}: {e}", cli.out.display());
            return ExitCode::FAILURE;
        }
    }
    println!("   whole run: {:.0} s", report.elapsed.as_secs_f64().ceil());
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("\nrvs-compare: not every director was measured:");
        for (d, why) in &report.failures {
            eprintln!("  {}: {}", d.name(), why.lines().next().unwrap_or_default());
        }
        ExitCode::FAILURE
    }
}
