//! The AF_XDP socket counters DPDK 22.11 does not count (`rx_ring_full`) and the per-port ring
//! sizes (`rx_descriptors`, `tx_descriptors`), through the real binary on a veth in a namespace:
//! a port with a 64-entry rx ring is flooded while the worker's CPU is taken by the sender,
//! and the dataplane reports the frames the kernel dropped on the full ring in its periodic
//! "port counters" line and its exit summary; a port that is not af_xdp has no such counters;
//! the rings of 4096 that `rvs-compare` uses boot. Needs root, hugepages, iproute2, ethtool,
//! taskset and python3 (`scripts/setup.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use rvs_lab::{Lab, port_counter};

/// Tests that start dataplanes take turns (two cores on CI).
static SERIAL: Mutex<()> = Mutex::new(());

/// The worker's lcore, hence its CPU (lcore L runs on CPU L).
const WORKER_CPU: u32 = 1;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rvs-dataplane"))
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A lab with one namespace holding veth pairs `{a}`/`{b}` for each name pair, all up.
fn veth_lab(tag: &str, pairs: &[(&str, &str)]) -> (Lab, String) {
    let mut lab = Lab::new(&format!("rvs{tag}{}", std::process::id() % 100_000)).expect("lab");
    let ns = lab.add_ns("x").expect("namespace");
    for (a, b) in pairs {
        lab.ip(&ns, &["link", "add", a, "type", "veth", "peer", "name", b])
            .expect("veth");
        lab.ip(&ns, &["link", "set", a, "up"]).expect("up");
        lab.ip(&ns, &["link", "set", b, "up"]).expect("up");
    }
    (lab, ns)
}

/// A dataplane profile: lcores 0 (main) and WORKER_CPU, `ports` given as YAML flow mappings.
fn write_profile(lab: &Lab, name: &str, mem_mb: u32, ports: &[String]) -> PathBuf {
    let mut text = format!(
        "{control}dataplane:\n  eal: [\"-m\", \"{mem_mb}\"]\n  main_lcore: 0\n  workers: [{WORKER_CPU}]\n  flows_per_worker: 4096\nports:\n",
        control = lab.control_section("127.0.0.1:9189"),
    );
    for p in ports {
        text.push_str(&format!("  - {p}\n"));
    }
    lab.write_file(name, &text).expect("profile")
}

/// Starts the dataplane as process `dp` in `ns` with a counters line every second; waits
/// until it runs.
fn start(lab: &mut Lab, ns: &str, profile: &Path) -> PathBuf {
    let mut cmd = lab.command(ns, &bin().to_string_lossy());
    cmd.arg("--profile")
        .arg(profile)
        .args(["--stats-interval", "1"])
        .env("RVS_LOG", "info");
    let log = lab.spawn("dp", cmd).expect("spawn");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let t0 = std::time::Instant::now();
    while !read().contains("dataplane running") {
        assert!(lab.is_running("dp"), "the dataplane exited:\n{}", read());
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not running after 30 s:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    log
}

/// Stops the dataplane; returns its whole output (log and exit summary) after a clean exit.
fn stop(lab: &mut Lab) -> String {
    let (code, out) = lab.interrupt("dp", Duration::from_secs(20)).expect("stop");
    assert_eq!(code, Some(0), "{out}");
    out
}

/// `key=N` values of the periodic "port counters" lines, in order.
fn logged(out: &str, key: &str) -> Vec<u64> {
    out.lines()
        .filter(|l| l.contains("port counters"))
        .filter_map(|l| {
            let v = l.split(&format!("{key}=")).nth(1)?;
            v.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect()
}

/// Raw Ethernet frames (broadcast, a local experimental ethertype the dataplane drops) sent on
/// `iface` as fast as one process can for `seconds`, pinned to `cpu`; returns how many.
fn flood(lab: &Lab, ns: &str, iface: &str, cpu: u32, seconds: f64) -> u64 {
    const SCRIPT: &str = r#"
import socket, sys, time
iface, seconds = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
frame = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x0b" + b"\x88\xb5" + bytes(46)
sent, end = 0, time.monotonic() + seconds
while time.monotonic() < end and sent < 20_000_000:
    for _ in range(512):
        try:
            s.send(frame)
            sent += 1
        except OSError:
            pass
print(sent)
"#;
    let out = lab
        .exec(
            ns,
            "taskset",
            &[
                "-c",
                &cpu.to_string(),
                "python3",
                "-c",
                SCRIPT,
                iface,
                &seconds.to_string(),
            ],
        )
        .expect("flood");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("frames sent")
}

/// The veth's own rx `dropped` (what the kernel counts for frames its XDP program could not
/// deliver).
fn rx_dropped(lab: &Lab, ns: &str, iface: &str) -> u64 {
    let out = lab
        .exec(
            ns,
            "cat",
            &[&format!("/sys/class/net/{iface}/statistics/rx_dropped")],
        )
        .expect("rx_dropped");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// A 64-entry AF_XDP rx ring, a sender on the worker's CPU: the kernel drops frames on the full
/// ring, and the dataplane reports them (`xdp_rx_ring_full`), monotonically, in its periodic
/// line and its exit summary.
#[test]
fn af_xdp_rx_ring_full_is_reported() {
    let _g = serial();
    assert!(
        Command::new("nproc")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<u32>()
                .unwrap_or(0)
                > WORKER_CPU),
        "the test needs CPU {WORKER_CPU}"
    );
    let (mut lab, ns) = veth_lab("xr", &[("xa", "xb")]);
    let profile = write_profile(
        &lab,
        "small.yaml",
        64,
        &[r#"{ name: dp0, device: "net_af_xdp0,iface=xa", addresses: ["10.203.0.10/24"], rx_descriptors: 64, tx_descriptors: 64 }"#.to_owned()],
    );
    let log = start(&mut lab, &ns, &profile);
    let boot = std::fs::read_to_string(&log).unwrap_or_default();
    let started = boot
        .lines()
        .find(|l| l.contains("port started"))
        .unwrap_or_else(|| panic!("no port started line:\n{boot}"));
    assert!(
        started.contains("rx_descriptors=64") && started.contains("tx_descriptors=64"),
        "{started}"
    );
    assert!(started.contains("xdp_sockets=1"), "{started}");

    let dropped0 = rx_dropped(&lab, &ns, "xa");
    let mut sent = 0;
    let mut rounds = 0;
    // Usually one round overflows the ring many times over; a few more cover a slow start.
    while rounds < 5 {
        sent += flood(&lab, &ns, "xb", WORKER_CPU, 1.5);
        rounds += 1;
        std::thread::sleep(Duration::from_millis(1500));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if logged(&text, "xdp_rx_ring_full")
            .last()
            .is_some_and(|&n| n > 0)
        {
            break;
        }
    }
    // One more counters line after the flood.
    std::thread::sleep(Duration::from_millis(1200));
    let dropped = rx_dropped(&lab, &ns, "xa") - dropped0;
    let out = stop(&mut lab);
    eprintln!("{sent} frames sent in {rounds} rounds; veth xa rx_dropped +{dropped}");
    for l in out
        .lines()
        .filter(|l| l.starts_with("port ") || l.contains("port counters"))
    {
        eprintln!("{l}");
    }

    let periodic = logged(&out, "xdp_rx_ring_full");
    assert!(
        !periodic.is_empty(),
        "no xdp_rx_ring_full in the counters lines:\n{out}"
    );
    assert!(
        periodic.windows(2).all(|w| w[0] <= w[1]),
        "xdp_rx_ring_full goes back: {periodic:?}"
    );
    assert!(
        !logged(&out, "xdp_fill_empty").is_empty(),
        "no xdp_fill_empty in the counters lines:\n{out}"
    );
    let full = port_counter(&out, "dp0", "xdp_rx_ring_full")
        .unwrap_or_else(|| panic!("no xdp_rx_ring_full in the exit summary:\n{out}"));
    assert!(
        port_counter(&out, "dp0", "xdp_fill_empty").is_some(),
        "no xdp_fill_empty in the exit summary:\n{out}"
    );
    assert!(
        full >= *periodic.last().unwrap(),
        "summary {full} < last logged {periodic:?}"
    );
    assert!(
        full > 0,
        "{sent} frames at a 64-entry ring on a starved worker, none dropped as ring full:\n{out}"
    );
    // The kernel counts the same frames as the veth's rx drops (with other drops, if any).
    assert!(
        full <= dropped,
        "ring full {full} > veth rx_dropped {dropped}"
    );
    let received = port_counter(&out, "dp0", "ipackets").expect("ipackets");
    assert!(received > 0, "the worker received nothing:\n{out}");
    // (+ a few frames of the kernel's own, IPv6 neighbour discovery on the fresh veth.)
    assert!(
        received + full <= sent + 100,
        "received {received} + ring full {full} > sent {sent}"
    );
}

/// A port that is not af_xdp has no AF_XDP counters: none in the logs, none in the summary.
#[test]
fn other_ports_have_no_xdp_counters() {
    let _g = serial();
    let (mut lab, ns) = veth_lab("xn", &[]);
    let profile = write_profile(
        &lab,
        "null.yaml",
        64,
        &[r#"{ name: dp0, device: "net_null0", addresses: ["10.203.0.10/24"], rx_descriptors: 128 }"#.to_owned()],
    );
    let log = start(&mut lab, &ns, &profile);
    lab.wait_for("a counters line", Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("port counters"))
    })
    .expect("counters line");
    let out = stop(&mut lab);
    assert!(out.contains("rx_descriptors=128"), "{out}");
    assert!(
        port_counter(&out, "dp0", "ipackets").is_some(),
        "no port line:\n{out}"
    );
    assert!(!out.contains("xdp_"), "xdp counters on net_null:\n{out}");
}

/// The rings `rvs-compare` gives its two af_xdp ports (4096 each, 192 MB of EAL memory) boot,
/// and both ports report their AF_XDP counters.
#[test]
fn large_af_xdp_rings_boot_on_two_ports() {
    let _g = serial();
    let (mut lab, ns) = veth_lab("xl", &[("d0", "c0"), ("d1", "c1")]);
    let rings = "rx_descriptors: 4096, tx_descriptors: 4096";
    let profile = write_profile(
        &lab,
        "large.yaml",
        192,
        &[
            format!(
                r#"{{ name: ext, device: "net_af_xdp0,iface=d0", addresses: ["10.203.0.10/24"], {rings} }}"#
            ),
            format!(
                r#"{{ name: int, device: "net_af_xdp1,iface=d1", addresses: ["10.204.0.10/24"], {rings} }}"#
            ),
        ],
    );
    start(&mut lab, &ns, &profile);
    let out = stop(&mut lab);
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("port started") && l.contains("rx_descriptors=4096"))
            .count(),
        2,
        "{out}"
    );
    for port in ["ext", "int"] {
        assert!(
            port_counter(&out, port, "xdp_rx_ring_full").is_some(),
            "no AF_XDP counters for {port}:\n{out}"
        );
    }
}
