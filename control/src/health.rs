//! Health checks: keepalived's job, done by the control process (SPEC §6 "Health checks").
//!
//! [`HealthChecker`] runs one task per checked real server on the tokio runtime. Every
//! `interval` seconds the task runs one check, bounded by `timeout`:
//!
//! * `tcp` — a TCP connect to the server's address and port (`health_check.port` when set);
//! * `http` — `GET path` over HTTP/1.1 (`Host: address[:port]`, `Connection: close`); healthy
//!   when the status equals `status`;
//! * `script` — `sh -c SCRIPT` with `RVS_RS_ADDR`, `RVS_RS_PORT` (the checked port: the check's
//!   `port` or the server's; 0 for a port-0 or fwmark service without one), `RVS_VIP`,
//!   `RVS_VPORT` (empty for a fwmark service) and `RVS_FWMARK` (empty for an address service);
//!   healthy on exit status 0. The script runs in its own process group, which is killed when
//!   the timeout expires.
//!
//! A TCP or HTTP check of a UDP service still connects over TCP, as keepalived's `TCP_CHECK`.
//! Checks leave from the control process's own network stack (the host, or the namespace the
//! control process runs in), not through the dataplane: the machine must reach the real
//! servers itself, through the exception interface or a management network.
//!
//! State machine (keepalived's): every server starts **up** with its streak at 0, as keepalived
//! adds real servers alive unless told otherwise, so a restart of the control process does not
//! take healthy servers out while the first checks run. `fall` consecutive failures take an
//! up server down (logged with `tracing::warn!`, naming service, server and the last failure);
//! `rise` consecutive successes bring a down server back (`tracing::info!`). Every transition
//! bumps the [`changes`](HealthChecker::changes) counter; the owner then pushes
//! [`effective`](HealthChecker::effective) to the dataplane.
//!
//! What a down server becomes is the service's `on_failure`: `quiesce` (default) keeps it at
//! weight 0 (existing connections continue), `remove` takes it out of the service. When a
//! checked service with a `sorry_server` has no server up (all down, or none configured), the
//! sorry server is added as an ordinary real server with weight 1, as keepalived does, and
//! removed again when a server recovers. Its forwarding mode is the service's first server's
//! (keepalived's `lb_kind` of the virtual server); NAT when the service has no servers or when
//! that mode cannot map ports (DR, TUN) and the sorry server's port differs from the service's.
//!
//! Unlike keepalived's `quorum` (a sum of live weights), "no server up" counts servers, so a
//! service whose healthy servers were all set to weight 0 by the operator does not switch to
//! the sorry server. Services without a `health_check` are never changed and never get their
//! sorry server.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddrV4;
use std::process::Stdio;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rvs_config::{
    Forward, HealthCheck, HealthCheckKind, OnFailure, Profile, Server, Service, ServiceKey,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{HealthView, ServerHealth, ServiceId};

/// Identity of a checked server: its service and its `address:port` in that service.
type ServerId = (ServiceKey, SocketAddrV4);

/// Handle to the health checker; cheap to clone (an `Arc` inside). The check tasks stop when
/// the last handle is dropped or their server leaves the configuration.
#[derive(Clone)]
pub struct HealthChecker {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    changes: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// Checked services of the last reconciled configuration, in its order.
    services: Vec<CheckedService>,
    /// Every checked server's state.
    servers: HashMap<ServerId, Tracked>,
    /// Distinguishes a server's current task from one it replaced.
    next_token: u64,
}

struct CheckedService {
    key: ServiceKey,
    kind: HealthCheckKind,
    sorry: Option<SocketAddrV4>,
    servers: Vec<SocketAddrV4>,
}

struct Tracked {
    /// The check (normalized) the task runs.
    check: HealthCheck,
    up: bool,
    /// Current run of successes (0 while failing).
    successes: u32,
    /// Current run of failures (0 while succeeding).
    failures: u32,
    last: String,
    transitions: u64,
    since: Instant,
    token: u64,
    task: Option<AbortOnDrop>,
    /// Every outcome (success, caused a transition), for the tests.
    #[cfg(test)]
    history: Vec<(bool, bool)>,
}

impl Tracked {
    fn new(check: HealthCheck, token: u64) -> Self {
        Tracked {
            check,
            up: true,
            successes: 0,
            failures: 0,
            last: "not checked yet".to_owned(),
            transitions: 0,
            since: Instant::now(),
            token,
            task: None,
            #[cfg(test)]
            history: Vec::new(),
        }
    }

    fn streak(&self) -> u32 {
        if self.successes > 0 {
            self.successes.min(self.check.rise)
        } else {
            self.failures.min(self.check.fall)
        }
    }
}

/// Aborts the check task when its server's state is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl fmt::Debug for HealthChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        f.debug_struct("HealthChecker")
            .field("services", &st.services.len())
            .field("servers", &st.servers.len())
            .field("changes", &*self.inner.changes.borrow())
            .finish()
    }
}

impl Default for HealthChecker {
    fn default() -> Self {
        Self::new()
    }
}

/// What one check found: `Ok(what)` healthy, `Err(why)` not.
type Outcome = Result<String, String>;

/// A transition to log once the lock is released.
struct Transition {
    id: ServerId,
    up: bool,
    count: u32,
    last: String,
}

impl HealthChecker {
    /// A checker with nothing to check; [`reconcile`](Self::reconcile) gives it servers.
    pub fn new() -> Self {
        let (changes, _) = watch::channel(0);
        HealthChecker {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                changes,
            }),
        }
    }

    /// Starts and stops per-server check tasks so they match `desired`'s services that have a
    /// `health_check`.
    ///
    /// A server still present (same service, same `address:port`) with the same check keeps
    /// its state and its task. One whose check changed gets a new task and a fresh streak but
    /// keeps being up or down (a down server must still rise before it takes traffic). Servers
    /// no longer present, or whose service lost its check, are forgotten and their tasks stop.
    ///
    /// Call it from within a tokio runtime: the tasks are spawned on the current one. Without
    /// a runtime the configuration is recorded but nothing is checked (servers stay up).
    pub fn reconcile(&self, desired: &Profile) {
        let runtime = tokio::runtime::Handle::try_current().ok();
        if runtime.is_none() {
            tracing::error!("health checks not started: reconcile called outside a tokio runtime");
        }
        let mut guard = self.inner.state.lock();
        let st = &mut *guard;
        let mut services = Vec::new();
        let mut present: HashSet<ServerId> = HashSet::new();
        for svc in &desired.services {
            let Some(check) = &svc.health_check else {
                continue;
            };
            let mut check = check.clone();
            check.normalize();
            let key = svc.key();
            let mut servers = Vec::with_capacity(svc.servers.len());
            for srv in &svc.servers {
                let addr = SocketAddrV4::new(srv.address, srv.port);
                let id = (key, addr);
                if !present.insert(id) {
                    continue; // a duplicate (refused by validation): one task is enough
                }
                servers.push(addr);
                let token = st.next_token;
                st.next_token += 1;
                let tracked = st
                    .servers
                    .entry(id)
                    .or_insert_with(|| Tracked::new(check.clone(), token));
                if tracked.check == check && (tracked.task.is_some() || runtime.is_none()) {
                    continue;
                }
                if tracked.check != check {
                    tracked.check = check.clone();
                    tracked.successes = 0;
                    tracked.failures = 0;
                }
                tracked.token = token;
                tracked.task = runtime.as_ref().map(|rt| {
                    let probe = Probe::new(svc, srv, &check);
                    AbortOnDrop(rt.spawn(run(
                        Arc::downgrade(&self.inner),
                        id,
                        token,
                        check.clone(),
                        probe,
                    )))
                });
            }
            services.push(CheckedService {
                key,
                kind: check.kind,
                sorry: svc.sorry_server,
                servers,
            });
        }
        st.servers.retain(|id, _| present.contains(id));
        st.services = services;
    }

    /// The configuration to push to the dataplane: `desired` with every down server of a
    /// checked service quiesced (weight 0) or removed, per its `on_failure`, and the sorry
    /// server added to every checked service that has one and no server up.
    ///
    /// Servers the checker does not know yet (not reconciled) count as up.
    pub fn effective(&self, desired: &Profile) -> Profile {
        let st = self.inner.state.lock();
        let mut out = desired.clone();
        for svc in &mut out.services {
            let Some(check) = &svc.health_check else {
                continue;
            };
            let key = svc.key();
            let is_up = |s: &Server| {
                st.servers
                    .get(&(key, SocketAddrV4::new(s.address, s.port)))
                    .is_none_or(|t| t.up)
            };
            let any_up = svc.servers.iter().any(is_up);
            let down: Vec<bool> = svc.servers.iter().map(|s| !is_up(s)).collect();
            let sorry = svc
                .sorry_server
                .filter(|_| !any_up)
                .map(|addr| sorry_server(svc, addr));
            match check.on_failure() {
                OnFailure::Quiesce => {
                    for (s, down) in svc.servers.iter_mut().zip(&down) {
                        if *down {
                            s.weight = 0;
                        }
                    }
                }
                OnFailure::Remove => {
                    let mut down = down.into_iter();
                    svc.servers.retain(|_| !down.next().unwrap_or(false));
                }
            }
            if let Some(sorry) = sorry {
                // A sorry server that is also a (quiesced) real server takes its place.
                match svc
                    .servers
                    .iter_mut()
                    .find(|s| s.address == sorry.address && s.port == sorry.port)
                {
                    Some(s) => s.weight = sorry.weight,
                    None => svc.servers.push(sorry),
                }
            }
        }
        out
    }

    /// One entry per checked service, in configuration order, for `GET /api/v1/health` and
    /// the metrics.
    pub fn views(&self) -> Vec<HealthView> {
        let st = self.inner.state.lock();
        let now = Instant::now();
        st.services
            .iter()
            .map(|svc| HealthView {
                service: ServiceId(svc.key),
                check: svc.kind.as_str().to_owned(),
                sorry_active: sorry_active(&st, svc),
                servers: svc
                    .servers
                    .iter()
                    .filter_map(|addr| {
                        let t = st.servers.get(&(svc.key, *addr))?;
                        Some(ServerHealth {
                            address: *addr.ip(),
                            port: addr.port(),
                            up: t.up,
                            streak: t.streak(),
                            last: t.last.clone(),
                            transitions: t.transitions,
                            since_secs: now.saturating_duration_since(t.since).as_secs(),
                        })
                    })
                    .collect(),
            })
            .collect()
    }

    /// A counter bumped on every up/down transition; wait on it with `changed()`.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Whether `svc` (as last reconciled) has a sorry server standing in.
    pub fn sorry_active(&self, svc: ServiceKey) -> bool {
        let st = self.inner.state.lock();
        st.services
            .iter()
            .find(|s| s.key == svc)
            .is_some_and(|s| sorry_active(&st, s))
    }

    /// Sets a server's state directly, without a check task (creating the entry if needed),
    /// for tests of [`effective`](Self::effective) and of the API. A change of `up` counts as
    /// a transition.
    #[doc(hidden)]
    pub fn set_state_for_test(&self, svc: ServiceKey, server: SocketAddrV4, up: bool) {
        let changed = {
            let mut st = self.inner.state.lock();
            let token = st.next_token;
            let t = st
                .servers
                .entry((svc, server))
                .or_insert_with(|| Tracked::new(HealthCheck::new(HealthCheckKind::Tcp), token));
            let changed = t.up != up;
            t.up = up;
            t.last = "set for test".to_owned();
            if changed {
                t.transitions += 1;
                t.since = Instant::now();
            }
            changed
        };
        if changed {
            self.inner.changes.send_modify(|v| *v += 1);
        }
    }

    #[cfg(test)]
    fn history(&self, svc: ServiceKey, server: SocketAddrV4) -> Vec<(bool, bool)> {
        let st = self.inner.state.lock();
        st.servers
            .get(&(svc, server))
            .map(|t| t.history.clone())
            .unwrap_or_default()
    }
}

fn sorry_active(st: &State, svc: &CheckedService) -> bool {
    svc.sorry.is_some()
        && !svc
            .servers
            .iter()
            .any(|a| st.servers.get(&(svc.key, *a)).is_none_or(|t| t.up))
}

/// The sorry server as a real server of `svc`: weight 1, forwarded like the service's first
/// server, or NAT when there is none or that mode cannot reach the sorry server's port.
fn sorry_server(svc: &Service, addr: SocketAddrV4) -> Server {
    let service_port = if svc.fwmark.is_some() {
        0
    } else {
        svc.port.unwrap_or(0)
    };
    let forward = match svc.servers.first().map(|s| s.forward) {
        Some(f) if !(f.keeps_port() && addr.port() != service_port) => f,
        _ => Forward::Nat,
    };
    Server {
        address: *addr.ip(),
        port: addr.port(),
        weight: 1,
        forward,
        upper: 0,
        lower: 0,
    }
}

impl Inner {
    /// Records one outcome; false when the task is stale (its server was removed or got a new
    /// task) and must stop.
    fn record(&self, id: ServerId, token: u64, outcome: Outcome) -> bool {
        let transition = {
            let mut st = self.state.lock();
            let Some(t) = st.servers.get_mut(&id) else {
                return false;
            };
            if t.token != token {
                return false;
            }
            let ok = outcome.is_ok();
            let changed = match outcome {
                Ok(what) => {
                    t.last = what;
                    t.failures = 0;
                    t.successes = t.successes.saturating_add(1);
                    !t.up && t.successes >= t.check.rise
                }
                Err(why) => {
                    t.last = why;
                    t.successes = 0;
                    t.failures = t.failures.saturating_add(1);
                    t.up && t.failures >= t.check.fall
                }
            };
            #[cfg(test)]
            t.history.push((ok, changed));
            changed.then(|| {
                t.up = ok;
                t.transitions += 1;
                t.since = Instant::now();
                Transition {
                    id,
                    up: ok,
                    count: if ok { t.check.rise } else { t.check.fall },
                    last: t.last.clone(),
                }
            })
        };
        if let Some(tr) = transition {
            let (key, addr) = tr.id;
            let service = ServiceId(key);
            if tr.up {
                tracing::info!(
                    %service, server = %addr, last = %tr.last,
                    "health check: real server {addr} of {service} is up after {} successful checks",
                    tr.count,
                );
            } else {
                tracing::warn!(
                    %service, server = %addr, reason = %tr.last,
                    "health check: real server {addr} of {service} is down after {} failed checks: {}",
                    tr.count, tr.last,
                );
            }
            self.changes.send_modify(|v| *v += 1);
        }
        true
    }
}

/// The check task of one server: a check every `interval` (start to start; the first one at
/// once), each bounded by `timeout`.
async fn run(inner: Weak<Inner>, id: ServerId, token: u64, check: HealthCheck, probe: Probe) {
    let period = Duration::from_secs(u64::from(check.interval.max(1)));
    let timeout = Duration::from_secs(u64::from(check.timeout.max(1)));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let outcome = tokio::time::timeout(timeout, probe.run())
            .await
            .unwrap_or_else(|_| Err(format!("timeout ({}s)", timeout.as_secs())));
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if !inner.record(id, token, outcome) {
            return;
        }
    }
}

/// Everything one check needs, resolved from the configuration.
#[derive(Debug, Clone)]
enum Probe {
    Tcp {
        target: SocketAddrV4,
    },
    Http {
        target: SocketAddrV4,
        path: String,
        status: u16,
    },
    Script {
        script: String,
        env: Vec<(&'static str, String)>,
    },
}

impl Probe {
    fn new(svc: &Service, srv: &Server, check: &HealthCheck) -> Probe {
        let port = check.port.unwrap_or(srv.port);
        let target = SocketAddrV4::new(srv.address, port);
        match check.kind {
            HealthCheckKind::Tcp => Probe::Tcp { target },
            HealthCheckKind::Http => Probe::Http {
                target,
                path: check
                    .path
                    .clone()
                    .unwrap_or_else(|| rvs_config::DEFAULT_HTTP_PATH.to_owned()),
                status: check.status.unwrap_or(rvs_config::DEFAULT_HTTP_STATUS),
            },
            HealthCheckKind::Script => {
                let (vip, vport, mark) = match svc.key() {
                    ServiceKey::Addr { vip, port, .. } => {
                        (vip.to_string(), port.to_string(), String::new())
                    }
                    ServiceKey::Fwmark(m) => (String::new(), String::new(), m.to_string()),
                };
                Probe::Script {
                    script: check.script.clone().unwrap_or_default(),
                    env: vec![
                        ("RVS_RS_ADDR", srv.address.to_string()),
                        ("RVS_RS_PORT", port.to_string()),
                        ("RVS_VIP", vip),
                        ("RVS_VPORT", vport),
                        ("RVS_FWMARK", mark),
                    ],
                }
            }
        }
    }

    async fn run(&self) -> Outcome {
        match self {
            Probe::Tcp { target } => {
                let target = checkable(*target)?;
                tokio::net::TcpStream::connect(target)
                    .await
                    .map(|_| "connected".to_owned())
                    .map_err(|e| format!("connect: {e}"))
            }
            Probe::Http {
                target,
                path,
                status,
            } => http_get(checkable(*target)?, path, *status).await,
            Probe::Script { script, env } => run_script(script, env).await,
        }
    }
}

/// A TCP target needs a port (validation requires `health_check.port` where servers have none).
fn checkable(target: SocketAddrV4) -> Result<SocketAddrV4, String> {
    if target.port() == 0 {
        Err("no port to check (set health_check.port)".to_owned())
    } else {
        Ok(target)
    }
}

/// `GET path` on a fresh connection; healthy when the status is `expect`.
async fn http_get(target: SocketAddrV4, path: &str, expect: u16) -> Outcome {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper::header::{CONNECTION, HOST, USER_AGENT};

    let stream = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
    let host = if target.port() == 80 {
        target.ip().to_string()
    } else {
        target.to_string()
    };
    let request = hyper::Request::get(path)
        .header(HOST, host)
        .header(
            USER_AGENT,
            concat!("rvs-health/", env!("CARGO_PKG_VERSION")),
        )
        .header(CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("HTTP request for `{path}`: {e}"))?;
    let mut conn = std::pin::pin!(conn);
    let mut send = std::pin::pin!(sender.send_request(request));
    let response = tokio::select! {
        biased;
        r = &mut send => r,
        // The connection can finish (Connection: close) in the same poll that delivered the
        // response; the response, or why there is none, is then ready on `send`.
        c = &mut conn => match c {
            Ok(()) => send.await,
            Err(e) => return Err(format!("HTTP: {e}")),
        },
    }
    .map_err(|e| format!("HTTP: {e}"))?;
    let got = response.status().as_u16();
    if got == expect {
        Ok(format!("HTTP {got}"))
    } else {
        Err(format!("HTTP {got}"))
    }
}

/// Kills a script's process group unless disarmed (the script finished by itself).
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pid) = self
            .0
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            // The leader is not reaped yet (the child handle still exists), so the group id
            // cannot have been reused. ESRCH (already gone) is fine.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// `sh -c script` in its own process group; healthy on exit status 0.
async fn run_script(script: &str, env: &[(&'static str, String)]) -> Outcome {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("spawn sh: {e}"))?;
    // Declared after `child`, so dropped (on timeout) before it: the group dies first.
    let mut group = GroupKill(child.id());
    let status = child.wait().await;
    group.0 = None;
    let status = status.map_err(|e| format!("wait: {e}"))?;
    match status.code() {
        Some(0) => Ok("exit 0".to_owned()),
        Some(c) => Err(format!("exit {c}")),
        None => {
            use std::os::unix::process::ExitStatusExt;
            Err(format!("killed by signal {}", status.signal().unwrap_or(0)))
        }
    }
}

#[cfg(test)]
mod tests;
