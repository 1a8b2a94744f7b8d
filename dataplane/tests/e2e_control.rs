//! End to end with the control process (SPEC §2, §6): `rvs-dataplane` on an af_packet port in
//! a DR lab, `rvs-control` in the director's namespace driving it over the shared memory, real
//! kernel TCP from the client. Health checks take a failed real server out and bring it back;
//! killing the control process costs an established flow nothing and a new control process
//! re-attaches; a restarted dataplane gets the desired configuration pushed again.
//!
//! Needs root, hugepages, iproute2, ethtool, curl, nstat and python3 (`scripts/setup.sh`), and
//! the workspace's binaries next to `rvs-dataplane` (`cargo build --workspace`). The tests run
//! one at a time (each runs a poll-mode dataplane and the timings they check are not meant to
//! include another test's dataplane competing for the two CPUs).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rvs_lab::{BIG_LEN, DrLab, LabError, LabProfile};
use serde_json::{Value, json};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 100);
const VIP2: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 101);
/// The REST API as `DrLab::profile` configures it, reachable inside the director namespace.
const API: &str = "http://127.0.0.1:9180";

/// Drop reasons a packet of a client's flow could be counted under (everything but the
/// segment's background noise: other hosts' unicast, IPv6, ARP for other addresses).
const NOISE_DROPS: [&str; 3] = ["other_host", "unsupported_ethertype", "arp_ignored"];

/// Health check of the first test: seconds between checks, failures that take a server out,
/// successes that bring it back, and the seconds of slack allowed on top of interval × count.
const INTERVAL: u64 = 1;
const FALL: u64 = 2;
const RISE: u64 = 2;
const SLACK: u64 = 2;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Bins {
    dataplane: PathBuf,
    control: PathBuf,
    rvsadm: PathBuf,
}

fn bins() -> Bins {
    let dataplane = PathBuf::from(env!("CARGO_BIN_EXE_rvs-dataplane"));
    let dir = dataplane.parent().expect("binary directory").to_path_buf();
    let (control, rvsadm) = (dir.join("rvs-control"), dir.join("rvsadm"));
    for b in [&control, &rvsadm] {
        assert!(
            b.is_file(),
            "{} is missing: run `cargo build --workspace` first (these tests run the control \
             process and rvsadm built next to rvs-dataplane)",
            b.display()
        );
    }
    Bins {
        dataplane,
        control,
        rvsadm,
    }
}

/// Removes ANSI colour sequences (tracing colours field names when it thinks it may).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn read_log(path: &Path) -> String {
    strip_ansi(&std::fs::read_to_string(path).unwrap_or_default())
}

/// One `rvs-control` in the director namespace, owned here so it can be SIGKILLed; killed on
/// drop (declare it after the lab, so it goes first).
struct Control {
    child: Child,
    log: PathBuf,
}

impl Control {
    fn start(lab: &DrLab, bin: &Path, profile: &Path, name: &str, args: &[&str]) -> Control {
        let log = lab.lab.dir().join(format!("{name}.log"));
        let out = File::create(&log).expect("control log");
        let err = out.try_clone().expect("control log");
        let mut cmd = lab.lab.command(&lab.director, &bin.to_string_lossy());
        cmd.arg("--profile")
            .arg(profile)
            .args(args)
            .env("RVS_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().expect("start rvs-control");
        Control { child, log }
    }

    fn log(&self) -> String {
        read_log(&self.log)
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT and wait up to 10 s; the exit code.
    fn stop(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One REST call from inside the director namespace: (HTTP status, body).
fn api(
    lab: &DrLab,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String), LabError> {
    let url = format!("{API}{path}");
    let body = body.map(Value::to_string);
    let mut args = vec![
        "-s",
        "--max-time",
        "10",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
    ];
    if let Some(b) = &body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    args.push(&url);
    let out = lab.lab.exec(&lab.director, "curl", &args)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    Ok((code.trim().parse().unwrap_or(0), body.to_owned()))
}

/// `GET path` answered 200 with JSON, or `None`.
fn try_get_json(lab: &DrLab, path: &str) -> Option<Value> {
    match api(lab, "GET", path, None) {
        Ok((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

fn get_json(lab: &DrLab, path: &str) -> Value {
    let (code, body) = api(lab, "GET", path, None).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn healthz_ok(lab: &DrLab) -> bool {
    try_get_json(lab, "/healthz").is_some_and(|h| h["status"] == "ok")
}

fn wait_healthz_ok(lab: &DrLab, ctl: &Control, dp_log: &Path) {
    lab.lab
        .wait_for("/healthz to say ok", Duration::from_secs(20), || {
            healthz_ok(lab)
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nhealthz: {:?}\n--- control log ---\n{}\n--- dataplane log ---\n{}",
                api(lab, "GET", "/healthz", None),
                ctl.log(),
                read_log(dp_log)
            )
        });
}

fn service_id(vip: Ipv4Addr) -> String {
    format!("tcp:{vip}:80")
}

/// A real server's entry in `GET /api/v1/stats`.
fn server_stats(stats: &Value, vip: Ipv4Addr, addr: Ipv4Addr) -> Option<Value> {
    let svc = stats["services"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == service_id(vip))?;
    svc["servers"]
        .as_array()?
        .iter()
        .find(|s| s["address"] == addr.to_string())
        .cloned()
}

/// A real server's entry in `GET /api/v1/health`.
fn server_health(health: &Value, vip: Ipv4Addr, addr: Ipv4Addr) -> Option<Value> {
    let svc = health
        .as_array()?
        .iter()
        .find(|s| s["service"] == service_id(vip))?;
    svc["servers"]
        .as_array()?
        .iter()
        .find(|s| s["address"] == addr.to_string())
        .cloned()
}

/// (effective weight, health up) of a server, as the API shows them now.
fn weight_and_up(lab: &DrLab, vip: Ipv4Addr, addr: Ipv4Addr) -> Option<(u64, bool)> {
    let stats = try_get_json(lab, "/api/v1/stats")?;
    let health = try_get_json(lab, "/api/v1/health")?;
    let w = server_stats(&stats, vip, addr)?["weight"].as_u64()?;
    let up = server_health(&health, vip, addr)?["up"].as_bool()?;
    Some((w, up))
}

/// Drops by reason summed over workers, background noise left out.
fn flow_drops(stats: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for w in stats["workers"].as_array().into_iter().flatten() {
        for (reason, n) in w["drops"].as_object().into_iter().flatten() {
            if !NOISE_DROPS.contains(&reason.as_str()) {
                *out.entry(reason.clone()).or_default() += n.as_u64().unwrap_or(0);
            }
        }
    }
    out
}

/// One GET from the client with a short timeout (for polling): the answering server's name.
fn quick_get(lab: &DrLab, vip: Ipv4Addr) -> Option<String> {
    let out = lab
        .client_command("curl")
        .args(["-s", "--max-time", "1", &format!("http://{vip}/")])
        .output()
        .ok()?;
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    let name = body.split_whitespace().next()?.to_owned();
    (out.status.success() && name.starts_with("rs")).then_some(name)
}

/// Seconds since midnight (UTC) of the first log line containing `what` (tracing's
/// `2026-01-01T12:00:00.123456Z` timestamps).
fn log_time(log: &str, what: &str) -> Option<f64> {
    let line = log.lines().find(|l| l.contains(what))?;
    let time = line.split_whitespace().next()?.split_once('T')?.1;
    let mut hms = time.trim_end_matches('Z').split(':');
    let (h, m, s) = (hms.next()?, hms.next()?, hms.next()?);
    Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

/// TCP segment counters of the lab's kernels (`nstat`, absolute).
#[derive(Debug, Clone, Copy)]
struct Segments {
    /// Segments the client put on the wire: new ones (`TcpOutSegs`) plus retransmissions.
    sent: u64,
    /// The client's retransmissions (`TcpRetransSegs`).
    retransmitted: u64,
    /// Segments every real server received (`TcpInSegs`), summed.
    received: u64,
}

impl Segments {
    fn since(&self, before: &Segments) -> Segments {
        Segments {
            sent: self.sent - before.sent,
            retransmitted: self.retransmitted - before.retransmitted,
            received: self.received - before.received,
        }
    }
}

/// The kernels' loss-recovery counters, for a failure message.
fn tcp_detail(lab: &DrLab) -> String {
    let mut out = String::from("client:");
    for c in [
        "TcpExtTCPLossProbes",
        "TcpExtTCPFastRetrans",
        "TcpExtTCPTimeouts",
        "TcpExtTCPSlowStartRetrans",
        "TcpExtTCPDSACKRecv",
        "TcpExtTCPSpuriousRTOs",
    ] {
        out += &format!(" {c}={}", lab.nstat(&lab.client, c).unwrap_or(u64::MAX));
    }
    for s in &lab.servers {
        out += &format!("\n{}:", s.name);
        for c in [
            "TcpExtTCPOFOQueue",
            "TcpExtTCPDSACKOldSent",
            "TcpExtTCPDSACKOfoSent",
        ] {
            out += &format!(" {c}={}", lab.nstat(&s.ns, c).unwrap_or(u64::MAX));
        }
    }
    out
}

fn segments(lab: &DrLab) -> Segments {
    let n = |ns: &str, counter: &str| lab.nstat(ns, counter).unwrap_or_else(|e| panic!("{e}"));
    let retransmitted = n(&lab.client, "TcpRetransSegs");
    Segments {
        sent: n(&lab.client, "TcpOutSegs") + retransmitted,
        retransmitted,
        received: lab.servers.iter().map(|s| n(&s.ns, "TcpInSegs")).sum(),
    }
}

fn count(text: &str, what: &str) -> usize {
    text.matches(what).count()
}

/// Boots the dataplane from `profile` (written as `file`) and waits until it answers ping.
fn boot(lab: &mut DrLab, bins: &Bins, name: &str, profile: &Path) -> PathBuf {
    let log = lab
        .start_dataplane(name, &bins.dataplane, profile)
        .expect("start the dataplane");
    lab.lab
        .wait_dataplane(&log, "ping to the DIP", || lab.ping(lab.dip))
        .unwrap_or_else(|e| panic!("{e}"));
    log
}

fn rr_profile(lab: &DrLab, vips: &[Ipv4Addr]) -> String {
    lab.profile(&LabProfile {
        services: vips.iter().map(|&v| (v, "rr", vec![1, 1])).collect(),
        workers: vec![1],
        forward: "dr",
    })
}

#[test]
fn a_failed_real_server_is_taken_out_and_returns() {
    let _serial = serial();
    let bins = bins();
    let mut lab = DrLab::up("rvsct1", 2, &[VIP]).expect("lab");
    lab.add_management().expect("management leg");
    let plain = rr_profile(&lab, &[VIP]);
    let check = format!(
        "    health_check: {{ type: http, path: /, interval: {INTERVAL}, timeout: 1, rise: {RISE}, fall: {FALL} }}\n"
    );
    let anchor = "    scheduler: rr\n";
    assert_eq!(count(&plain, anchor), 1, "{plain}");
    let profile = plain.replace(anchor, &format!("{anchor}{check}"));
    let path = lab.write_file("health.yaml", &profile).expect("profile");
    let dp_log = boot(&mut lab, &bins, "dp", &path);
    let mut ctl = Control::start(&lab, &bins.control, &path, "control", &[]);
    wait_healthz_ok(&lab, &ctl, &dp_log);
    let (rs1, rs2) = (lab.servers[0].addr, lab.servers[1].addr);
    let dump = |lab: &DrLab, ctl: &Control| {
        format!(
            "stats: {:?}\nhealth: {:?}\n--- control log ---\n{}\n--- dataplane log ---\n{}",
            api(lab, "GET", "/api/v1/stats", None),
            api(lab, "GET", "/api/v1/health", None),
            ctl.log(),
            read_log(&dp_log)
        )
    };

    // Both checked (a successful check behind them) and up, both taking connections.
    lab.lab
        .wait_for(
            "both real servers checked and up",
            Duration::from_secs(15),
            || {
                let Some(h) = try_get_json(&lab, "/api/v1/health") else {
                    return false;
                };
                [rs1, rs2].iter().all(|&a| {
                    server_health(&h, VIP, a)
                        .is_some_and(|s| s["up"] == true && s["last"] == "HTTP 200")
                })
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", dump(&lab, &ctl)));
    let seen: Vec<String> = (0..4).map(|_| lab.get(VIP).expect("GET")).collect();
    assert!(
        seen.iter().any(|s| s == "rs1") && seen.iter().any(|s| s == "rs2"),
        "rr over both: {seen:?}"
    );
    let applied_before = count(&read_log(&dp_log), "configuration applied");

    // rs1's HTTP server goes away: out within interval × fall (2 s) plus slack.
    lab.stop_http("rs1").expect("stop rs1's HTTP server");
    let stopped = Instant::now();
    lab.lab
        .wait_for("rs1 to be taken out", Duration::from_secs(15), || {
            weight_and_up(&lab, VIP, rs1) == Some((0, false))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", dump(&lab, &ctl)));
    let out_after = stopped.elapsed();
    eprintln!(
        "rs1 taken out {out_after:?} after its HTTP server stopped (interval {INTERVAL} s, fall {FALL})"
    );
    assert!(
        out_after <= Duration::from_secs(INTERVAL * FALL + SLACK),
        "rs1 taken out after {out_after:?}, more than interval × fall + {SLACK} s\n{}",
        dump(&lab, &ctl)
    );
    let stats = get_json(&lab, "/api/v1/stats");
    let s1 = server_stats(&stats, VIP, rs1).expect("rs1 in stats");
    assert_eq!(s1["config_weight"], 1, "quiesced, not reconfigured: {s1}");
    assert_eq!(
        weight_and_up(&lab, VIP, rs2),
        Some((1, true)),
        "rs2 untouched"
    );

    // No new connection fails; every one goes to rs2.
    for i in 0..10 {
        let who = lab
            .get(VIP)
            .unwrap_or_else(|e| panic!("request {i} with rs1 out: {e}\n{}", dump(&lab, &ctl)));
        assert_eq!(who, "rs2", "request {i} with rs1 out\n{}", dump(&lab, &ctl));
    }

    // rs1 comes back: in within interval × rise (2 s) plus slack, and takes connections.
    lab.start_http("rs1").expect("start rs1's HTTP server");
    let started = Instant::now();
    lab.lab
        .wait_for("rs1 to return", Duration::from_secs(15), || {
            weight_and_up(&lab, VIP, rs1) == Some((1, true))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", dump(&lab, &ctl)));
    let back_after = started.elapsed();
    eprintln!(
        "rs1 back {back_after:?} after its HTTP server answered again (interval {INTERVAL} s, rise {RISE})"
    );
    assert!(
        back_after <= Duration::from_secs(INTERVAL * RISE + SLACK),
        "rs1 back after {back_after:?}, more than interval × rise + {SLACK} s\n{}",
        dump(&lab, &ctl)
    );
    let seen: Vec<String> = (0..4)
        .map(|i| {
            lab.get(VIP)
                .unwrap_or_else(|e| panic!("request {i} after rs1 returned: {e}"))
        })
        .collect();
    assert!(
        seen.iter().filter(|s| *s == "rs1").count() >= 2 && seen.iter().any(|s| s == "rs2"),
        "rr over both again: {seen:?}"
    );

    // Metrics, health view and both logs tell the story.
    let (code, metrics) = api(&lab, "GET", "/metrics", None).expect("GET /metrics");
    assert_eq!(code, 200, "{metrics}");
    let series = |server: Ipv4Addr| {
        let label = format!("server=\"{server}:80\"");
        metrics
            .lines()
            .find(|l| l.starts_with("rvs_health_up{") && l.contains(&label))
            .map(str::to_owned)
    };
    for rs in [rs1, rs2] {
        let line = series(rs).unwrap_or_else(|| panic!("no rvs_health_up for {rs}:\n{metrics}"));
        assert!(
            line.contains(&format!("service=\"{}\"", service_id(VIP))) && line.ends_with(" 1"),
            "{line}"
        );
    }
    let health = get_json(&lab, "/api/v1/health");
    assert_eq!(
        server_health(&health, VIP, rs1).unwrap()["transitions"],
        2,
        "{health}"
    );
    assert_eq!(
        server_health(&health, VIP, rs2).unwrap()["transitions"],
        0,
        "{health}"
    );
    let log = ctl.log();
    for want in [
        format!(
            "real server {rs1}:80 of {} is down after {FALL} failed checks",
            service_id(VIP)
        ),
        format!(
            "real server {rs1}:80 of {} is up after {RISE} successful checks",
            service_id(VIP)
        ),
    ] {
        assert_eq!(
            count(&log, &want),
            1,
            "`{want}` once in the control log:\n{log}"
        );
    }
    assert!(
        !log.contains(&format!("{rs2}:80 of")),
        "rs2 never changed:\n{log}"
    );
    let applied = count(&read_log(&dp_log), "configuration applied") - applied_before;
    assert!(
        applied >= 2,
        "the dataplane applied the down and the up push ({applied})"
    );

    assert_eq!(
        ctl.stop(),
        Some(0),
        "rvs-control exits cleanly on SIGINT:\n{}",
        ctl.log()
    );
    let (code, summary) = lab
        .lab
        .interrupt("dp", Duration::from_secs(20))
        .expect("stop");
    eprintln!("{summary}");
    assert_eq!(code, Some(0), "{summary}");
}

#[test]
fn killing_the_control_process_loses_no_packet_of_an_established_flow() {
    let _serial = serial();
    let bins = bins();
    let mut lab = DrLab::up("rvsct2", 2, &[VIP]).expect("lab");
    // Retransmissions must mean loss, not lab noise. The worker shares a CPU with the kernel
    // and the lab's processes on this small machine, so a burst now and then waits some
    // milliseconds in the dataplane; the client's tail loss probe (a few ms here, where the
    // RTT is microseconds) would then retransmit spuriously: it is turned off. And the
    // client's frames must not overtake each other on the veth hops (see
    // `DrLab::keep_client_order`). What remains is a lost or reordered segment (fast
    // retransmit on the server's duplicate ACKs) or a stall of a whole RTO (200 ms).
    lab.lab
        .sysctl(&lab.client, "net.ipv4.tcp_early_retrans", "0")
        .expect("sysctl");
    lab.keep_client_order()
        .expect("RPS on the client's bridge port");
    let path = lab
        .write_file("kill.yaml", &rr_profile(&lab, &[VIP]))
        .expect("profile");
    let dp_log = boot(&mut lab, &bins, "dp", &path);
    let mut ctl1 = Control::start(&lab, &bins.control, &path, "control1", &["--no-health"]);
    wait_healthz_ok(&lab, &ctl1, &dp_log);
    let config1 = get_json(&lab, "/api/v1/config");
    assert_eq!(lab.get(VIP).map(|s| s.starts_with("rs")).ok(), Some(true));

    let stats0 = get_json(&lab, "/api/v1/stats");
    let drops0 = flow_drops(&stats0);
    let inbytes0 = stats0["total"]["inbytes"].as_u64().expect("total inbytes");
    let inpkts0 = stats0["total"]["inpkts"].as_u64().expect("total inpkts");
    let segs0 = segments(&lab);

    // 1 MiB up at 200 kB/s: about five seconds on one connection.
    let upload = lab.upload_command(VIP, BIG_LEN, "200k").expect("upload");
    let began = Instant::now();
    let upload_log = lab.lab.spawn("upload", upload).expect("start the upload");
    lab.lab
        .wait_for(
            "the upload to be under way",
            Duration::from_secs(10),
            || {
                try_get_json(&lab, "/api/v1/stats").is_some_and(|s| {
                    s["total"]["inbytes"].as_u64().unwrap_or(0) >= inbytes0 + 150_000
                })
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nupload: {}", read_log(&upload_log)));
    ctl1.kill();
    let killed_at = began.elapsed();
    assert!(
        api(&lab, "GET", "/healthz", None).is_err(),
        "the API is gone with the control process"
    );
    // The dataplane keeps forwarding, new connections included, with its last configuration.
    for i in 0..2 {
        let who = lab
            .get(VIP)
            .unwrap_or_else(|e| panic!("request {i} without a control process: {e}"));
        assert!(who.starts_with("rs"), "request {i}: {who:?}");
    }
    while lab.lab.is_running("upload") {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the upload did not finish within 60 s: {}",
            read_log(&upload_log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = began.elapsed();
    let answer = read_log(&upload_log).trim().to_owned();
    eprintln!("upload: {answer:?} in {took:?}; control killed at {killed_at:?}");
    let words: Vec<&str> = answer.split_whitespace().collect();
    assert!(
        words.len() == 3 && words[0].starts_with("rs") && words[1] == lab.client_addr.to_string(),
        "upload answer: {answer:?}"
    );
    assert_eq!(
        words[2],
        BIG_LEN.to_string(),
        "bytes the server received: {answer:?}"
    );
    assert!(
        took > killed_at + Duration::from_secs(1),
        "most of the upload ran without a control process (killed at {killed_at:?}, done at {took:?})"
    );
    // Every segment the client put on the wire reached a real server (the last ACKs of the
    // closing connections may still be on their way: wait for the counts to meet), and none
    // had to be sent twice.
    let mut delta = segments(&lab).since(&segs0);
    let settle = Instant::now();
    while delta.sent != delta.received && settle.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        delta = segments(&lab).since(&segs0);
    }
    eprintln!(
        "client TCP segments sent {} (retransmitted {}), received by the real servers {}",
        delta.sent, delta.retransmitted, delta.received
    );
    assert_eq!(
        delta.received, delta.sent,
        "segments the real servers received vs. segments the client sent: {delta:?}"
    );
    assert_eq!(
        delta.retransmitted,
        0,
        "client TCP retransmissions (TcpRetransSegs) while the control process was killed: \
         {delta:?}\n{}",
        tcp_detail(&lab)
    );

    // A new control process re-attaches and adopts what the dataplane runs.
    let ctl2 = Control::start(&lab, &bins.control, &path, "control2", &["--no-health"]);
    wait_healthz_ok(&lab, &ctl2, &dp_log);
    lab.lab
        .wait_for(
            "the configuration to be adopted",
            Duration::from_secs(10),
            || {
                ctl2.log()
                    .contains("adopting the dataplane's running configuration")
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", ctl2.log()));
    let config2 = get_json(&lab, "/api/v1/config");
    assert_eq!(
        config2["services"], config1["services"],
        "services after re-attach"
    );
    assert_eq!(config2, config1, "whole configuration after re-attach");
    let stats1 = get_json(&lab, "/api/v1/stats");
    assert_eq!(
        flow_drops(&stats1),
        drops0,
        "drops while the upload ran: {stats1}"
    );
    assert!(
        stats1["total"]["inbytes"].as_u64().unwrap_or(0) >= inbytes0 + BIG_LEN as u64,
        "the upload is counted: {stats1}"
    );
    let forwarded = stats1["total"]["inpkts"].as_u64().unwrap_or(0) - inpkts0;
    assert_eq!(
        forwarded, delta.sent,
        "packets the dataplane forwarded vs. segments the client sent: {stats1}"
    );

    // A change after re-attach is applied.
    let rs1 = lab.servers[0].addr;
    let body = json!({"address": rs1.to_string(), "port": 80, "weight": 3, "forward": "dr"});
    let url = format!("/api/v1/services/{}/servers/{rs1}:80", service_id(VIP));
    let (code, answer) = api(&lab, "PUT", &url, Some(&body)).expect("PUT");
    assert_eq!(code, 200, "PUT {url}: {answer}\n{}", ctl2.log());
    let stats2 = get_json(&lab, "/api/v1/stats");
    let generation = stats2["generation"].as_u64().expect("generation");
    let s1 = server_stats(&stats2, VIP, rs1).expect("rs1");
    assert_eq!(
        (&s1["weight"], &s1["config_weight"]),
        (&json!(3), &json!(3)),
        "{s1}"
    );
    let want = format!("configuration applied generation={generation}");
    lab.lab
        .wait_for(
            "the dataplane to log the change",
            Duration::from_secs(5),
            || read_log(&dp_log).contains(&want),
        )
        .unwrap_or_else(|e| panic!("{e}: `{want}`\n{}", read_log(&dp_log)));
    assert!(ctl2.log().contains(&want), "`{want}`:\n{}", ctl2.log());
    let out = lab
        .lab
        .exec(&lab.director, &bins.rvsadm.to_string_lossy(), &["-L", "-n"])
        .expect("rvsadm -L -n");
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = listing
        .lines()
        .find(|l| l.contains(&format!("-> {rs1}:80")))
        .unwrap_or_else(|| panic!("no {rs1}:80 in:\n{listing}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.get(2..4), Some(&["Route", "3"][..]), "{listing}");
    for i in 0..4 {
        let who = lab
            .get(VIP)
            .unwrap_or_else(|e| panic!("request {i} after the change: {e}"));
        assert!(who.starts_with("rs"), "request {i}: {who:?}");
    }

    drop(ctl2);
    let (code, summary) = lab
        .lab
        .interrupt("dp", Duration::from_secs(20))
        .expect("stop");
    eprintln!("{summary}");
    assert_eq!(code, Some(0), "{summary}");
    for reason in ["no_flow_not_syn", "no_dest"] {
        assert!(!summary.contains(reason), "{reason} in {summary}");
    }
}

#[test]
fn a_restarted_dataplane_gets_the_desired_configuration_again() {
    let _serial = serial();
    let bins = bins();
    let mut lab = DrLab::up("rvsct3", 2, &[VIP, VIP2]).expect("lab");
    // Both VIPs live on the real servers; the boot profile serves only the first.
    let path = lab
        .write_file("restart.yaml", &rr_profile(&lab, &[VIP]))
        .expect("profile");
    let dp_log = boot(&mut lab, &bins, "dp", &path);
    let ctl = Control::start(&lab, &bins.control, &path, "control", &["--no-health"]);
    wait_healthz_ok(&lab, &ctl, &dp_log);
    assert_eq!(
        quick_get(&lab, VIP2),
        None,
        "the boot profile does not serve {VIP2}"
    );

    let servers: Vec<Value> = lab
        .servers
        .iter()
        .map(|s| json!({"address": s.addr.to_string(), "port": 80, "weight": 1, "forward": "dr"}))
        .collect();
    let svc = json!({"vip": VIP2.to_string(), "port": 80, "protocol": "tcp", "scheduler": "rr", "servers": servers});
    let (code, body) = api(&lab, "POST", "/api/v1/services", Some(&svc)).expect("POST");
    assert_eq!(code, 201, "POST /api/v1/services: {body}\n{}", ctl.log());
    let seen: Vec<String> = (0..2)
        .map(|i| {
            lab.get(VIP2)
                .unwrap_or_else(|e| panic!("GET {i} to {VIP2}: {e}"))
        })
        .collect();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.contains(&"rs1".into()) && seen.contains(&"rs2".into()),
        "{seen:?}"
    );
    let config1 = get_json(&lab, "/api/v1/config");

    // The dataplane stops; the control process sees it gone.
    let (code, summary) = lab
        .lab
        .interrupt("dp", Duration::from_secs(20))
        .expect("stop");
    assert_eq!(code, Some(0), "{summary}");
    lab.lab
        .wait_for(
            "/healthz to report the dataplane gone",
            Duration::from_secs(10),
            || {
                try_get_json(&lab, "/healthz").is_none()
                    && api(&lab, "GET", "/healthz", None)
                        .is_ok_and(|(code, body)| code == 503 && body.contains("degraded"))
            },
        )
        .unwrap_or_else(|e| panic!("{e}: {:?}", api(&lab, "GET", "/healthz", None)));

    // It boots again from the profile that lacks the second service; the control process
    // pushes it again.
    let dp2_log = boot(&mut lab, &bins, "dp2", &path);
    let booted = Instant::now();
    lab.lab
        .wait_for(
            &format!("{VIP2} to answer again"),
            Duration::from_secs(20),
            || quick_get(&lab, VIP2).is_some(),
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n--- control log ---\n{}\n--- dataplane log ---\n{}",
                ctl.log(),
                read_log(&dp2_log)
            )
        });
    eprintln!(
        "{VIP2} answered {:?} after the restarted dataplane answered ping",
        booted.elapsed()
    );
    wait_healthz_ok(&lab, &ctl, &dp2_log);
    assert!(
        ctl.log()
            .contains("dataplane restarted: pushing the desired configuration"),
        "{}",
        ctl.log()
    );
    let dp2 = read_log(&dp2_log);
    let (Some(ran), Some(pushed)) = (
        log_time(&dp2, "dataplane running"),
        log_time(&dp2, "configuration applied"),
    ) else {
        panic!("no start or no applied configuration in the new dataplane's log:\n{dp2}");
    };
    eprintln!(
        "the desired configuration was applied {:.0} ms after the new dataplane ran",
        (pushed - ran) * 1e3
    );
    assert!(
        (0.0..5.0).contains(&(pushed - ran)),
        "re-pushed {:.3} s after the dataplane ran:\n{dp2}",
        pushed - ran
    );
    assert_eq!(
        get_json(&lab, "/api/v1/config"),
        config1,
        "desired configuration kept"
    );
    let stats = get_json(&lab, "/api/v1/stats");
    let ids: Vec<&Value> = stats["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(
        ids,
        [&json!(service_id(VIP)), &json!(service_id(VIP2))],
        "{stats}"
    );
    for vip in [VIP, VIP2] {
        let seen: Vec<String> = (0..2)
            .map(|i| {
                lab.get(vip)
                    .unwrap_or_else(|e| panic!("GET {i} to {vip}: {e}"))
            })
            .collect();
        assert!(
            seen.contains(&"rs1".into()) && seen.contains(&"rs2".into()),
            "{vip}: {seen:?}"
        );
    }

    drop(ctl);
    let (code, summary) = lab
        .lab
        .interrupt("dp2", Duration::from_secs(20))
        .expect("stop");
    eprintln!("{summary}");
    assert_eq!(code, Some(0), "{summary}");
}
