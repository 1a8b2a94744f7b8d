//! `rvs-lab demo`: builds the LVS-DR namespace lab, runs `rvs-dataplane` as its director on an
//! af_packet port with the embedded default profile, sends HTTP requests through the VIPs and
//! shows which real server answered each, then tears everything down (also when interrupted).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand};
use rvs_lab::{DrLab, LabError, LabProfile};

#[derive(Debug, Parser)]
#[command(name = "rvs-lab", version, about = "Network-namespace labs for RVS")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the DR lab, balance HTTP requests through RVS, show who answered, tear down.
    Demo {
        /// Requests per virtual service.
        #[arg(long, default_value_t = 6)]
        requests: usize,
        /// The rvs-dataplane binary (default: next to this program).
        #[arg(long)]
        dataplane: Option<PathBuf>,
        /// Worker lcores for the dataplane.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        workers: Vec<u32>,
    },
}

const VIP_RR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 100);
const VIP_WRR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 101);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
    }
    let Cmd::Demo {
        requests,
        dataplane,
        workers,
    } = cli.cmd;
    let dataplane = dataplane.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("rvs-dataplane")))
            .unwrap_or_else(|| PathBuf::from("rvs-dataplane"))
    });
    match demo(requests, &dataplane, workers, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvs-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check(stop: &AtomicBool) -> Result<(), LabError> {
    if stop.load(Ordering::Relaxed) {
        Err(LabError::Host("interrupted; tearing the lab down".into()))
    } else {
        Ok(())
    }
}

/// Runs `rvsadm ARGS` in the director namespace and prints its output, indented.
fn rvsadm(lab: &DrLab, bin_dir: &std::path::Path, args: &[&str]) -> Result<(), LabError> {
    let out = lab.lab.exec(
        &lab.director,
        &bin_dir.join("rvsadm").to_string_lossy(),
        args,
    )?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("   {line}");
    }
    Ok(())
}

fn demo(
    requests: usize,
    dataplane: &std::path::Path,
    workers: Vec<u32>,
    stop: &AtomicBool,
) -> Result<(), LabError> {
    if !dataplane.is_file() {
        return Err(LabError::Host(format!(
            "rvs-dataplane not found at {} (build it: cargo build --release)",
            dataplane.display()
        )));
    }
    println!("== building the lab: client, director, 3 real servers on one L2 segment");
    let mut lab = DrLab::up("rvsdemo", 3, &[VIP_RR, VIP_WRR])?;
    check(stop)?;
    println!(
        "   client    {} (namespace {})",
        lab.client_addr, lab.client
    );
    println!(
        "   director  DIP {} on {} (namespace {}), rvs-dataplane on net_af_packet",
        lab.dip, lab.director_iface, lab.director
    );
    for s in &lab.servers {
        println!(
            "   {}       {} (namespace {}), VIPs {VIP_RR} {VIP_WRR} on lo, arp_ignore=1 arp_announce=2, HTTP on :80",
            s.name, s.addr, s.ns
        );
    }
    let profile = lab.profile(&LabProfile {
        services: vec![
            (VIP_RR, "rr", vec![1, 1, 1]),
            (VIP_WRR, "wrr", vec![3, 2, 1]),
        ],
        workers,
        forward: "dr",
    });
    let path = lab.write_file("demo.yaml", &profile)?;
    println!("== profile ({})\n{profile}", path.display());

    let log = lab.start_dataplane("rvs-dataplane", dataplane, &path)?;
    let ready = lab
        .lab
        .wait_for("rvs-dataplane to start", Duration::from_secs(30), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("dataplane running"))
                || stop.load(Ordering::Relaxed)
        });
    if let Err(e) = ready {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(LabError::Host(format!(
            "{e}\n--- rvs-dataplane log ---\n{text}"
        )));
    }
    if !lab.lab.is_running("rvs-dataplane") {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        return Err(LabError::Host(format!("rvs-dataplane exited\n{text}")));
    }
    check(stop)?;
    // The control process: REST API and rvsadm, inside the director namespace.
    let bin_dir = dataplane
        .parent()
        .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf);
    let mut cmd = lab.lab.command(
        &lab.director,
        &bin_dir.join("rvs-control").to_string_lossy(),
    );
    cmd.arg("--profile").arg(&path).arg("--no-health");
    lab.lab.spawn("rvs-control", cmd)?;
    lab.lab
        .wait_for("rvs-control to attach", Duration::from_secs(20), || {
            lab.lab
                .exec(
                    &lab.director,
                    &bin_dir.join("rvsadm").to_string_lossy(),
                    &["-L", "-n"],
                )
                .is_ok()
                || stop.load(Ordering::Relaxed)
        })?;
    check(stop)?;
    println!("== rvs-control attached; `rvsadm -L -n`:");
    rvsadm(&lab, &bin_dir, &["-L", "-n"])?;
    let ok = lab.lab.wait_for(
        "the director to answer ping",
        Duration::from_secs(10),
        || lab.ping(lab.dip) || stop.load(Ordering::Relaxed),
    );
    check(stop)?;
    println!(
        "== ping {} (DIP, answered by the dataplane): {}",
        lab.dip,
        if ok.is_ok() { "ok" } else { "no answer" }
    );
    println!(
        "== ping {VIP_RR} (VIP, answered by the dataplane): {}",
        if lab.ping(VIP_RR) { "ok" } else { "no answer" }
    );
    let names: Vec<(String, Ipv4Addr)> = lab
        .servers
        .iter()
        .map(|s| (s.name.clone(), s.addr))
        .collect();
    for (vip, what) in [
        (VIP_RR, "rr, weights 1,1,1"),
        (VIP_WRR, "wrr, weights 3,2,1"),
    ] {
        println!("== {requests} requests to http://{vip}/ ({what})");
        for i in 1..=requests {
            check(stop)?;
            match lab.get(vip) {
                Ok(body) => {
                    let addr = names
                        .iter()
                        .find(|(n, _)| *n == body)
                        .map_or("?".to_owned(), |(_, a)| a.to_string());
                    println!("   request {i}: answered by {body} ({addr})");
                }
                Err(e) => println!("   request {i}: FAILED: {e}"),
            }
        }
    }
    println!(
        "== the operator's view: rvs-control attached, `rvsadm -L -n --stats` in the director"
    );
    rvsadm(&lab, &bin_dir, &["-L", "-n", "--stats"])?;
    println!("== `rvsadm -L -n -c` (tracked connections)");
    rvsadm(&lab, &bin_dir, &["-L", "-n", "-c"])?;
    let rs3 = lab.servers[2].addr;
    let quiesce = format!("-e -t {VIP_WRR}:80 -r {rs3}:80 -g -w 0");
    println!(
        "== live change: `rvsadm {quiesce}` (quiesce rs3), then {requests} requests to {VIP_WRR}"
    );
    let args: Vec<&str> = quiesce.split(' ').collect();
    rvsadm(&lab, &bin_dir, &args)?;
    for i in 1..=requests {
        check(stop)?;
        match lab.get(VIP_WRR) {
            Ok(body) => println!("   request {i}: answered by {body}"),
            Err(e) => println!("   request {i}: FAILED: {e}"),
        }
    }
    rvsadm(
        &lab,
        &bin_dir,
        &["-L", "-n", "-t", &format!("{VIP_WRR}:80")],
    )?;
    println!("== stopping rvs-control, then rvs-dataplane (SIGINT); the dataplane's counters:");
    lab.lab.interrupt("rvs-control", Duration::from_secs(10))?;
    let (code, text) = lab
        .lab
        .interrupt("rvs-dataplane", Duration::from_secs(15))?;
    for line in text
        .lines()
        .filter(|l| l.starts_with("worker ") || l.starts_with("port "))
    {
        println!("   {line}");
    }
    println!(
        "   exit code {}",
        code.map_or("signal".into(), |c| c.to_string())
    );
    println!("== tearing the lab down");
    drop(lab);
    println!("   done: namespaces, processes and files removed");
    Ok(())
}
