//! Health-checker tests: real sockets and processes on 127.0.0.1, synchronised on the
//! checker's `changes()` counter (never on sleeps).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use rvs_config::{
    Control, DEFAULT_FLOWS_PER_WORKER, Dataplane, Forward, HealthCheck, HealthCheckKind, OnFailure,
    Profile, Protocol, Scheduler, Server, Service, ServiceKey, Timeouts,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::HealthChecker;
use crate::api::ServerHealth;

/// Generous bound for anything that should take a few check intervals.
const WAIT: Duration = Duration::from_secs(30);

fn profile(services: Vec<Service>) -> Profile {
    Profile {
        dataplane: Dataplane {
            eal: vec![],
            main_lcore: 0,
            workers: vec![1],
            flows_per_worker: DEFAULT_FLOWS_PER_WORKER,
            share_cpus: false,
        },
        ports: vec![],
        routes: vec![],
        timeouts: Timeouts::default(),
        fwmarks: vec![],
        services,
        control: Control::default(),
    }
}

/// An address service `tcp:10.0.0.<vip>:80` with `check` and `servers` (NAT, weight 1).
fn service(vip: u8, check: HealthCheck, servers: &[SocketAddrV4]) -> Service {
    Service {
        vip: Some(Ipv4Addr::new(10, 0, 0, vip)),
        port: Some(80),
        protocol: Some(Protocol::Tcp),
        fwmark: None,
        scheduler: Scheduler::default(),
        flags: vec![],
        persistence: None,
        local_addresses: vec![],
        sorry_server: None,
        health_check: Some(check),
        tunnel: None,
        servers: servers
            .iter()
            .map(|a| Server {
                address: *a.ip(),
                port: a.port(),
                weight: 1,
                forward: Forward::Nat,
                upper: 0,
                lower: 0,
            })
            .collect(),
    }
}

/// A check every second with a 1 s timeout.
fn check(kind: HealthCheckKind, rise: u32, fall: u32) -> HealthCheck {
    let mut c = HealthCheck::new(kind);
    c.interval = 1;
    c.timeout = 1;
    c.rise = rise;
    c.fall = fall;
    c
}

fn script(cmd: &str, rise: u32, fall: u32) -> HealthCheck {
    let mut c = check(HealthCheckKind::Script, rise, fall);
    c.script = Some(cmd.to_owned());
    c
}

fn local(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
}

async fn wait_change(rx: &mut watch::Receiver<u64>) {
    tokio::time::timeout(WAIT, rx.changed())
        .await
        .expect("no health transition in time")
        .expect("checker dropped");
}

fn view(hc: &HealthChecker, svc: ServiceKey, addr: SocketAddrV4) -> ServerHealth {
    hc.views()
        .into_iter()
        .find(|v| v.service.0 == svc)
        .and_then(|v| {
            v.servers
                .into_iter()
                .find(|s| s.address == *addr.ip() && s.port == addr.port())
        })
        .unwrap_or_else(|| panic!("no view of {addr} in {svc}"))
}

/// A TCP listener on 127.0.0.1:`port` (0 = any) that accepts and closes, reporting each
/// accepted connection. Aborting (and awaiting) the task closes the listening socket.
fn listen(port: u16) -> (u16, JoinHandle<()>, mpsc::UnboundedReceiver<()>) {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_reuseaddr(true).unwrap();
    sock.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .unwrap();
    let listener = sock.listen(64).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            if let Ok((s, _)) = listener.accept().await {
                drop(s);
                let _ = tx.send(());
            }
        }
    });
    (port, task, rx)
}

async fn close(task: JoinHandle<()>) {
    task.abort();
    let _ = task.await;
}

async fn recv_n(rx: &mut mpsc::UnboundedReceiver<()>, n: usize) {
    for _ in 0..n {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("expected a check connection")
            .expect("listener gone");
    }
}

fn drain<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> Vec<T> {
    let mut v = Vec::new();
    while let Ok(x) = rx.try_recv() {
        v.push(x);
    }
    v
}

/// Index of the `nth` (0-based) transition in a server's history.
fn transition(history: &[(bool, bool)], nth: usize) -> usize {
    history
        .iter()
        .enumerate()
        .filter(|(_, e)| e.1)
        .nth(nth)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no transition #{nth} in {history:?}"))
}

#[tokio::test]
async fn health_tcp_down_after_exactly_fall_failures_up_after_rise() {
    let (port, task, mut accepted) = listen(0);
    let rs = local(port);
    let svc = service(1, check(HealthCheckKind::Tcp, 2, 3), &[rs]);
    let key = svc.key();
    let hc = HealthChecker::new();
    let mut rx = hc.changes();
    hc.reconcile(&profile(vec![svc]));

    // Starts up; the first check connects.
    assert!(view(&hc, key, rs).up);
    recv_n(&mut accepted, 1).await;
    close(task).await;

    wait_change(&mut rx).await;
    let v = view(&hc, key, rs);
    assert!(!v.up, "{v:?}");
    assert_eq!((v.transitions, v.streak), (1, 3));
    assert!(v.last.starts_with("connect:"), "{v:?}");
    let h = hc.history(key, rs);
    let i = transition(&h, 0);
    assert!(i >= 3 && h[i - 3].0, "a success, then the failures: {h:?}");
    assert_eq!(
        h[i - 2..=i],
        [(false, false), (false, false), (false, true)]
    );

    // Reopened: exactly `rise` connections bring it back.
    let (_, task, mut accepted) = listen(port);
    wait_change(&mut rx).await;
    let v = view(&hc, key, rs);
    assert!(v.up, "{v:?}");
    assert_eq!(
        (v.transitions, v.streak, v.last.as_str()),
        (2, 2, "connected")
    );
    recv_n(&mut accepted, 2).await;
    assert!(drain(&mut accepted).is_empty(), "more than rise checks");
    let h = hc.history(key, rs);
    let j = transition(&h, 1);
    assert!(!h[j - 2].0, "a failure, then the successes: {h:?}");
    assert_eq!(h[j - 1..=j], [(true, false), (true, true)]);
    close(task).await;
}

/// A one-line HTTP server: `/health` answers `status`, anything else 404. Reports (path, Host)
/// of every request before answering it.
fn http_server(status: Arc<AtomicU16>) -> (u16, mpsc::UnboundedReceiver<(String, String)>) {
    let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(std_listener).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let (tx, status) = (tx.clone(), status.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
                let host = text
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("host").then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default();
                let code = if path == "/health" {
                    status.load(Ordering::SeqCst)
                } else {
                    404
                };
                let _ = tx.send((path, host));
                let answer = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn health_http_status_decides_and_wrong_path_fails() {
    let status = Arc::new(AtomicU16::new(503));
    let (port, mut requests) = http_server(status.clone());
    let rs = local(port);
    let mut c = check(HealthCheckKind::Http, 2, 3);
    c.path = Some("/health".to_owned());
    c.status = Some(200);
    let mut svc = service(2, c, &[rs]);
    let key = svc.key();
    let hc = HealthChecker::new();
    let mut rx = hc.changes();
    hc.reconcile(&profile(vec![svc.clone()]));

    // 503: down after exactly `fall` requests (each was reported before its answer).
    wait_change(&mut rx).await;
    let v = view(&hc, key, rs);
    assert!(!v.up, "{v:?}");
    assert_eq!((v.last.as_str(), v.transitions), ("HTTP 503", 1));
    let seen = drain(&mut requests);
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (path, host) in &seen {
        assert_eq!(path, "/health");
        assert_eq!(host, &format!("127.0.0.1:{port}"));
    }

    // 200: up after exactly `rise` requests.
    status.store(200, Ordering::SeqCst);
    wait_change(&mut rx).await;
    let v = view(&hc, key, rs);
    assert!(v.up, "{v:?}");
    assert_eq!((v.last.as_str(), v.transitions), ("HTTP 200", 2));
    assert_eq!(drain(&mut requests).len(), 2);

    // A wrong path (404) takes it down again; the changed check keeps the state (up).
    svc.health_check.as_mut().unwrap().path = Some("/wrong".to_owned());
    hc.reconcile(&profile(vec![svc]));
    assert!(view(&hc, key, rs).up);
    wait_change(&mut rx).await;
    let v = view(&hc, key, rs);
    assert!(!v.up, "{v:?}");
    assert_eq!((v.last.as_str(), v.transitions), ("HTTP 404", 3));
    let wrong = drain(&mut requests)
        .into_iter()
        .filter(|(p, _)| p == "/wrong")
        .count();
    assert_eq!(wrong, 3);
}

fn process_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // `pid (comm) S ...`: zombies are dead too.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[tokio::test]
async fn health_script_exit_status_timeout_and_environment() {
    let pidfile = std::env::temp_dir().join(format!("rvs-health-test-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&pidfile);
    let rs = local(8080);
    let fail = service(3, script("exit 1", 2, 2), &[rs]);
    let ok = service(4, script("exit 0", 2, 2), &[rs]);
    let slow = service(
        5,
        script(
            &format!(
                "sleep 60 & echo $! > {f}.$$ && mv {f}.$$ {f}; wait",
                f = pidfile.display()
            ),
            2,
            2,
        ),
        &[rs],
    );
    let env = service(
        6,
        script(
            r#"test "$RVS_RS_ADDR" = 127.0.0.1 && test "$RVS_RS_PORT" = 8080 && test "$RVS_VIP" = 10.0.0.6 && test "$RVS_VPORT" = 80 && test -z "$RVS_FWMARK""#,
            2,
            2,
        ),
        &[rs],
    );
    let mut fwmark = service(
        7,
        script(
            r#"test "$RVS_RS_PORT" = 9000 && test -z "$RVS_VIP" && test -z "$RVS_VPORT" && test "$RVS_FWMARK" = 8"#,
            2,
            2,
        ),
        &[local(0)],
    );
    (fwmark.vip, fwmark.port, fwmark.protocol, fwmark.fwmark) = (None, None, None, Some(8));
    fwmark.health_check.as_mut().unwrap().port = Some(9000);
    let keys: Vec<ServiceKey> = [&fail, &ok, &slow, &env, &fwmark]
        .iter()
        .map(|s| s.key())
        .collect();
    let hc = HealthChecker::new();
    let mut rx = hc.changes();
    hc.reconcile(&profile(vec![fail, ok, slow, env, fwmark]));

    while view(&hc, keys[0], rs).up || view(&hc, keys[2], rs).up {
        wait_change(&mut rx).await;
    }
    let v = view(&hc, keys[0], rs);
    assert_eq!((v.last.as_str(), v.streak), ("exit 1", 2));
    let v = view(&hc, keys[2], rs);
    assert!(v.last.starts_with("timeout"), "{v:?}");
    for (k, addr) in [(keys[1], rs), (keys[3], rs), (keys[4], local(0))] {
        let v = view(&hc, k, addr);
        assert!(v.up, "{k}: {v:?}");
        assert_eq!(v.last, "exit 0", "{k}: {v:?}");
    }

    // The timed-out script's whole process group was killed, its background child included.
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .expect("the slow script wrote its child's pid")
        .trim()
        .parse()
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !process_dead(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sleep {pid} survived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(hc);
    let _ = std::fs::remove_file(&pidfile);
}

const PROFILE: &str = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
services:
  - vip: 10.0.0.100
    port: 80
    protocol: tcp
    sorry_server: 10.0.0.200:80
    health_check: { type: tcp }
    servers:
      - { address: 10.0.0.11, weight: 3 }
      - { address: 10.0.0.12 }
  - vip: 10.0.0.101
    port: 80
    protocol: tcp
    sorry_server: 10.0.0.201:8080
    health_check: { type: http, on_failure: remove }
    servers:
      - { address: 10.0.0.21 }
      - { address: 10.0.0.22, port: 8080, forward: nat }
  - vip: 10.0.0.102
    port: 80
    protocol: tcp
    sorry_server: 10.0.0.202:80
    health_check: { type: tcp }
  - vip: 10.0.0.103
    port: 80
    protocol: tcp
    sorry_server: 10.0.0.203:80
    servers:
      - { address: 10.0.0.31 }
";

fn addr(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

fn servers(p: &Profile, i: usize) -> Vec<(SocketAddrV4, u32, Forward)> {
    p.services[i]
        .servers
        .iter()
        .map(|s| (SocketAddrV4::new(s.address, s.port), s.weight, s.forward))
        .collect()
}

#[test]
fn effective_quiesces_removes_and_stands_in_the_sorry_server() {
    let desired = Profile::parse(PROFILE, "test.yaml").unwrap();
    let k: Vec<ServiceKey> = desired.services.iter().map(Service::key).collect();
    assert_eq!(
        desired.services[1]
            .health_check
            .as_ref()
            .unwrap()
            .on_failure(),
        OnFailure::Remove
    );
    let hc = HealthChecker::new();
    hc.reconcile(&desired); // no runtime: states only, no tasks

    // Everything up: unchanged, except the checked service without servers gets its sorry
    // server.
    let eff = hc.effective(&desired);
    assert_eq!(eff.services[0], desired.services[0]);
    assert_eq!(eff.services[1], desired.services[1]);
    assert_eq!(servers(&eff, 2), [(addr("10.0.0.202:80"), 1, Forward::Nat)]);
    assert_eq!(eff.services[3], desired.services[3]);
    assert!(!hc.sorry_active(k[0]) && hc.sorry_active(k[2]) && !hc.sorry_active(k[3]));
    eff.validate().unwrap();

    // Quiesce: the down server gets weight 0 and stays listed.
    hc.set_state_for_test(k[0], addr("10.0.0.11:80"), false);
    let eff = hc.effective(&desired);
    assert_eq!(
        servers(&eff, 0),
        [
            (addr("10.0.0.11:80"), 0, Forward::Dr),
            (addr("10.0.0.12:80"), 1, Forward::Dr)
        ]
    );
    assert!(!hc.sorry_active(k[0]));

    // All down: the sorry server stands in, forwarded like the first server.
    hc.set_state_for_test(k[0], addr("10.0.0.12:80"), false);
    let eff = hc.effective(&desired);
    assert_eq!(
        servers(&eff, 0),
        [
            (addr("10.0.0.11:80"), 0, Forward::Dr),
            (addr("10.0.0.12:80"), 0, Forward::Dr),
            (addr("10.0.0.200:80"), 1, Forward::Dr)
        ]
    );
    assert!(hc.sorry_active(k[0]));
    let views = hc.views();
    assert_eq!(views.len(), 3, "checked services only");
    assert!(views[0].sorry_active && !views[1].sorry_active && views[2].sorry_active);
    assert_eq!(views[0].check, "tcp");
    assert_eq!(views[1].check, "http");
    assert!(!views[0].servers[0].up && views[0].servers[0].transitions == 1);
    eff.validate().unwrap();

    // Remove: down servers leave; all down, the sorry server (another port than the service,
    // so NAT rather than the first server's DR) is the only one.
    hc.set_state_for_test(k[1], addr("10.0.0.22:8080"), false);
    let eff = hc.effective(&desired);
    assert_eq!(servers(&eff, 1), [(addr("10.0.0.21:80"), 1, Forward::Dr)]);
    hc.set_state_for_test(k[1], addr("10.0.0.21:80"), false);
    let eff = hc.effective(&desired);
    assert_eq!(
        servers(&eff, 1),
        [(addr("10.0.0.201:8080"), 1, Forward::Nat)]
    );
    eff.validate().unwrap();

    // A service without a check is never touched, whatever state is recorded.
    hc.set_state_for_test(k[3], addr("10.0.0.31:80"), false);
    assert_eq!(hc.effective(&desired).services[3], desired.services[3]);

    // One server recovers: the sorry server leaves again.
    hc.set_state_for_test(k[0], addr("10.0.0.12:80"), true);
    let eff = hc.effective(&desired);
    assert_eq!(
        servers(&eff, 0),
        [
            (addr("10.0.0.11:80"), 0, Forward::Dr),
            (addr("10.0.0.12:80"), 1, Forward::Dr)
        ]
    );
    assert!(!hc.sorry_active(k[0]));
}

#[test]
fn effective_sorry_server_that_is_a_real_server_is_reweighted_not_duplicated() {
    let text = PROFILE.replace("sorry_server: 10.0.0.200:80", "sorry_server: 10.0.0.12:80");
    let desired = Profile::parse(&text, "test.yaml").unwrap();
    let k = desired.services[0].key();
    let hc = HealthChecker::new();
    hc.reconcile(&desired);
    hc.set_state_for_test(k, addr("10.0.0.11:80"), false);
    hc.set_state_for_test(k, addr("10.0.0.12:80"), false);
    let eff = hc.effective(&desired);
    assert_eq!(
        servers(&eff, 0),
        [
            (addr("10.0.0.11:80"), 0, Forward::Dr),
            (addr("10.0.0.12:80"), 1, Forward::Dr)
        ]
    );
    eff.validate().unwrap();
}

#[tokio::test]
async fn health_reconcile_keeps_unchanged_state_and_drops_removed_servers() {
    let dead = {
        let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        local(l.local_addr().unwrap().port())
    };
    let (pb, task_b, mut acc_b) = listen(0);
    let (pc, task_c, mut acc_c) = listen(0);
    let (b, c) = (local(pb), local(pc));
    let chk = check(HealthCheckKind::Tcp, 2, 1);
    let svc1 = service(8, chk.clone(), &[dead, b]);
    let svc2 = service(9, chk.clone(), &[b]);
    let (k1, k2) = (svc1.key(), svc2.key());
    let hc = HealthChecker::new();
    let mut rx = hc.changes();
    hc.reconcile(&profile(vec![svc1, svc2]));
    wait_change(&mut rx).await;
    let v = view(&hc, k1, dead);
    assert!(!v.up && v.transitions == 1, "{v:?}");
    assert!(view(&hc, k1, b).up);
    assert_eq!(hc.views().len(), 2);

    // b leaves service 1, c joins, service 2 goes: the dead server keeps its state.
    let svc1 = service(8, chk.clone(), &[dead, c]);
    hc.reconcile(&profile(vec![svc1.clone()]));
    let views = hc.views();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].servers.len(), 2);
    let v = view(&hc, k1, dead);
    assert_eq!((v.up, v.transitions, v.streak), (false, 1, 1));
    assert!(v.last.starts_with("connect:"), "{v:?}");
    let v = view(&hc, k1, c);
    assert_eq!((v.up, v.transitions, v.streak), (true, 0, 0));
    assert!(hc.views().iter().all(|v| v.service.0 != k2));

    // b's tasks stopped: after two more checks of c, nothing more reaches b.
    recv_n(&mut acc_c, 2).await;
    drain(&mut acc_b);
    recv_n(&mut acc_c, 1).await;
    assert!(
        drain(&mut acc_b).is_empty(),
        "a removed server is still checked"
    );

    // A changed check restarts the streak but the server stays down until it rises.
    let mut svc1 = svc1;
    svc1.health_check.as_mut().unwrap().interval = 2;
    hc.reconcile(&profile(vec![svc1]));
    let v = view(&hc, k1, dead);
    assert_eq!((v.up, v.transitions, v.streak), (false, 1, 0));
    assert!(view(&hc, k1, c).up);
    close(task_b).await;
    close(task_c).await;
}
