//! `rvs-dataplane --profile FILE [--check]`: boots the dataplane from a profile.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use clap::Parser;
use rvs_config::Profile;
use rvs_dataplane::io::boot::{self, RunOptions};

/// RVS dataplane: DPDK poll-mode L4 load balancer.
#[derive(Debug, Parser)]
#[command(name = "rvs-dataplane", version)]
struct Cli {
    /// The YAML boot profile.
    #[arg(long, short = 'p', value_name = "FILE")]
    profile: PathBuf,
    /// Validate the profile and exit (0 valid, 1 with the error otherwise).
    #[arg(long)]
    check: bool,
    /// Log per-worker counters every N seconds (0 = only at exit).
    #[arg(long, default_value_t = 0, value_name = "N")]
    stats_interval: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RVS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let profile = match Profile::load(&cli.profile) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rvs-dataplane: invalid profile: {e}");
            return ExitCode::from(1);
        }
    };
    if cli.check {
        println!("{}: profile is valid", cli.profile.display());
        return ExitCode::SUCCESS;
    }

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("rvs-dataplane: cannot install signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    let opts = RunOptions {
        stats_interval: cli.stats_interval,
    };
    match boot::run(&profile, &opts, stop) {
        Ok(stats) => {
            for (lcore, c) in &stats.workers {
                let drops: Vec<String> =
                    c.drop_reasons().map(|(r, n)| format!("{r}={n}")).collect();
                println!(
                    "worker lcore {lcore}: rx {} pkts {} bytes, tx {} pkts, forwarded {}, connections {}, arp replies {}, arp learned {}, icmp echo replies {}, nat replies {}, icmp frag needed {}, expired {}, handoffs {}, control tx {}, events lost {}, drops {} [{}]",
                    c.rx_packets,
                    c.rx_bytes,
                    c.tx_packets,
                    c.forwarded,
                    c.connections,
                    c.arp_replies,
                    c.arp_learned,
                    c.icmp_echo_replies,
                    c.replies,
                    c.icmp_frag_needed,
                    c.expired,
                    c.handoffs,
                    c.control_tx,
                    c.events_lost,
                    c.total_drops(),
                    drops.join(" ")
                );
            }
            for p in &stats.ports {
                println!("{}", p.summary());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rvs-dataplane: {e}");
            ExitCode::from(2)
        }
    }
}
