//! `rvs-dataplane` refuses to start with a message that says what to fix: a bad profile, a
//! missing or busy device, no hugepages, a missing lcore, a DPDK runtime already in use. Runs
//! the real binary; needs root and hugepages (`scripts/setup.sh`).

use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rvs_lab::Lab;

/// Tests that start long-running dataplanes take turns (two cores on CI).
static SERIAL: Mutex<()> = Mutex::new(());

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rvs-dataplane")
}

fn profile(
    dir: &std::path::Path,
    name: &str,
    eal: &str,
    workers: &str,
    device: &str,
) -> std::path::PathBuf {
    let shm = dir.join(format!("{name}.shm"));
    let text = format!(
        "control:\n  shm: {shm}\n\
         dataplane:\n  eal: [{eal}]\n  main_lcore: 0\n  workers: [{workers}]\n  flows_per_worker: 4096\n\
         ports:\n  - name: dp0\n    device: \"{device}\"\n    addresses: [\"10.201.0.10/24\"]\n\
         services:\n  - {{ vip: 10.201.0.100, port: 80, protocol: tcp, scheduler: rr, servers: [{{ address: 10.201.0.11 }}] }}\n",
        shm = shm.display()
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rvs-boot-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(bin())
        .args(args)
        .env("RVS_LOG", "warn")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_accepts_a_valid_profile() {
    let d = scratch("valid");
    let p = profile(&d, "p.yaml", "\"-m\", \"64\"", "1", "net_null0");
    let o = run(&["--profile".as_ref(), p.as_os_str(), "--check".as_ref()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("profile is valid"));
}

#[test]
fn check_names_key_path_and_line_of_a_bad_profile() {
    let d = scratch("bad");
    let p = d.join("bad.yaml");
    std::fs::write(
        &p,
        "dataplane:\n  main_lcore: 0\n  workers: [1]\nports:\n  - name: dp0\n    device: net_null0\n    addresses: [\"10.0.0.1/24\"]\n\
         services:\n  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    scheduler: fastest\n",
    )
    .unwrap();
    let o = run(&["--profile".as_ref(), p.as_os_str(), "--check".as_ref()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("bad.yaml:12"), "line of the scheduler key: {e}");
    assert!(e.contains("services[0].scheduler"), "{e}");
    assert!(e.contains("fastest"), "{e}");
    let o = run(&["--profile".as_ref(), d.join("missing.yaml").as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.yaml"), "{}", stderr(&o));
}

#[test]
fn missing_interface_is_named() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = scratch("noif");
    let p = profile(
        &d,
        "p.yaml",
        "\"-m\", \"64\"",
        "1",
        "net_af_packet0,iface=rvsnope0",
    );
    let o = run(&["--profile".as_ref(), p.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("port dp0"), "{e}");
    assert!(e.contains("\"rvsnope0\" does not exist"), "{e}");
}

#[test]
fn unknown_driver_is_reported() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = scratch("nodrv");
    let p = profile(&d, "p.yaml", "\"-m\", \"64\"", "1", "net_bogus0");
    let o = run(&["--profile".as_ref(), p.as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("rte_dev_probe(net_bogus0)"), "{e}");
    assert!(e.contains("devargs"), "{e}");
}

#[test]
fn too_few_hugepages_says_how_to_reserve_them() {
    let d = scratch("huge");
    let p = profile(&d, "p.yaml", "\"-m\", \"900000\"", "1", "net_null0");
    let o = run(&["--profile".as_ref(), p.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("not enough free hugepages"), "{e}");
    assert!(e.contains("nr_hugepages"), "{e}");
}

#[test]
fn missing_lcore_is_named() {
    let d = scratch("lcore");
    let p = profile(&d, "p.yaml", "\"-m\", \"64\"", "100", "net_null0");
    let o = run(&["--profile".as_ref(), p.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("lcore 100 does not exist"),
        "{}",
        stderr(&o)
    );
}

fn wait_running(log: &std::path::Path) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if std::fs::read_to_string(log).is_ok_and(|l| l.contains("dataplane running")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "not running: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A second dataplane on an AF_XDP interface the first one holds is refused as busy; so is a
/// second one with the same --file-prefix. The first keeps running and exits cleanly.
#[test]
fn busy_device_and_busy_runtime_are_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = Lab::new(&format!("rvsb{}", std::process::id() % 100_000)).unwrap();
    let ns = lab.add_ns("x").unwrap();
    lab.ip(
        &ns,
        &["link", "add", "xa", "type", "veth", "peer", "name", "xb"],
    )
    .unwrap();
    lab.ip(&ns, &["link", "set", "xa", "up"]).unwrap();
    lab.ip(&ns, &["link", "set", "xb", "up"]).unwrap();
    let d = lab.dir().to_owned();

    let first = profile(
        &d,
        "first.yaml",
        "\"-m\", \"64\", \"--file-prefix\", \"rvsbusy\"",
        "1",
        "net_af_xdp0,iface=xa",
    );
    let mut cmd = lab.command(&ns, bin());
    cmd.arg("--profile").arg(&first).env("RVS_LOG", "info");
    let log = lab.spawn("first", cmd).unwrap();
    wait_running(&log);

    let second = profile(
        &d,
        "second.yaml",
        "\"-m\", \"64\"",
        "1",
        "net_af_xdp0,iface=xa",
    );
    let o = lab
        .command(&ns, bin())
        .arg("--profile")
        .arg(&second)
        .env("RVS_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("\"xa\" is busy"), "{}", stderr(&o));

    let third = profile(
        &d,
        "third.yaml",
        "\"-m\", \"64\", \"--file-prefix\", \"rvsbusy\"",
        "1",
        "net_af_packet0,iface=xb",
    );
    let o = lab
        .command(&ns, bin())
        .arg("--profile")
        .arg(&third)
        .env("RVS_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("EAL initialisation failed"), "{e}");
    assert!(e.contains("--file-prefix rvsbusy"), "{e}");

    let (code, out) = lab.interrupt("first", Duration::from_secs(20)).unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        !std::path::Path::new("/var/run/dpdk/rvsbusy").exists(),
        "runtime directory of --file-prefix removed"
    );
    let leftovers: Vec<_> = std::fs::read_dir("/dev/hugepages")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rvsbusy"))
                .count()
        })
        .into_iter()
        .collect();
    assert_eq!(leftovers.iter().sum::<usize>(), 0, "no hugepage files left");
}
