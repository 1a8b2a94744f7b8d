//! `rvsadm`: ipvsadm's command line over RVS's REST API (SPEC §6 "ipvsadm compatibility").
//!
//! Every ipvsadm command of the seed documents works with `ipvsadm` replaced by `rvsadm`, and
//! prints what ipvsadm prints, column for column. The binaries `rvsadm`, `rvsadm-save` and
//! `rvsadm-restore` are thin shells over [`run`], [`run_save`] and [`run_restore`].
//!
//! * [`parse`] — the command line (ipvsadm 1.31 syntax and messages, DPVS's FullNAT
//!   additions) into a [`Command`];
//! * [`restore`] — each configuration command as a pure function over a
//!   [`rvs_config::Profile`], and `-R` on top of it (all lines, then one atomic PUT);
//! * [`format`] — ipvsadm's listings, `-S` rules and DPVS's `--get-laddr` table;
//! * [`client`] — the API transport;
//! * [`names`] — port names from `/etc/services`, host names from `/etc/hosts` (no DNS).
//!
//! Where the API is: `--api URL`, else `$RVS_API`, else `http://127.0.0.1:9180`; the token:
//! `--token T`, else `$RVS_TOKEN` (sent as `Authorization: Bearer T`). Both options may appear
//! anywhere on the line.
//!
//! Exit status: 0 on success; 2 for a command-line error (ipvsadm's `fail(2, …)` and its
//! "Try `… -h'" exit) and when the API cannot be reached (ipvsadm's "Can't initialize ipvs",
//! also `fail(2, …)`); 1 when the operation is refused (API errors, `No such service`, an
//! unknown scheduler, a bad restore line). ipvsadm itself returns 255 for operations the
//! kernel refuses; rvsadm keeps to 1 and 2.
//!
//! Command → API:
//!
//! | command | requests |
//! |---|---|
//! | `-A` | `POST /services` (409 → `Service already exists`) |
//! | `-E` | `GET` then `PUT /services/{id}` (servers kept) |
//! | `-D`, `-C` | `DELETE /services/{id}`, `DELETE /services` |
//! | `-a`, `-e`, `-d` | `POST /services/{id}/servers`, `PUT`/`DELETE …/servers/{addr:port}` |
//! | `-L`, `-l` | `GET /stats`; `-c`: `GET /connections` (all pages); `--timeout`: `GET /timeouts` |
//! | `-Z` | `POST /stats/zero[?service={id}]` |
//! | `--set` | `GET` then `PUT /timeouts` (0 keeps a value) |
//! | `-S` | `GET /config` |
//! | `-R` | `GET /config`, apply every line, `PUT /config` once |
//! | `-P`, `-Q`, `-G` | `POST`/`DELETE /services/{id}/local-addresses[/{ip}]`, `GET /services[/{id}]` |

pub mod client;
pub mod format;
pub mod names;
pub mod parse;
pub mod restore;

use std::io::{Read, Write};
use std::path::PathBuf;

use rvs_config::{Profile, Service, ServiceKey, Timeouts};

use crate::api::{ConnPage, ConnView, DEFAULT_API, LocalAddress, ServiceId, StatsView};

use client::{CallError, Client, HttpTransport, Transport};
use names::Names;
pub use parse::{Command, Format, ListWhat, ServiceSpec};

/// Page size for `-L -c`.
const CONN_PAGE: u32 = 1000;

/// The process environment rvsadm reads (kept explicit so tests can set it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    /// `$RVS_API`.
    pub api: Option<String>,
    /// `$RVS_TOKEN`.
    pub token: Option<String>,
    /// The services database (`/etc/services`).
    pub services_file: PathBuf,
    /// The hosts database (`/etc/hosts`).
    pub hosts_file: PathBuf,
}

impl Default for Env {
    fn default() -> Self {
        Env {
            api: None,
            token: None,
            services_file: PathBuf::from("/etc/services"),
            hosts_file: PathBuf::from("/etc/hosts"),
        }
    }
}

impl Env {
    /// `RVS_API` and `RVS_TOKEN` from the process environment, the system name files.
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            api: var("RVS_API"),
            token: var("RVS_TOKEN"),
            ..Env::default()
        }
    }

    fn names(&self) -> Names {
        Names::load(&self.services_file, &self.hosts_file)
    }
}

/// Why a command did not succeed: one line for stderr and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The message (ipvsadm's wording where it has one).
    pub message: String,
    /// Exit status.
    pub code: i32,
    /// Print ipvsadm's "Try `… -h'" line instead of the message.
    pub try_help: bool,
}

impl Failure {
    /// A command-line error (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 2,
            try_help: false,
        }
    }

    /// No command, or the first option is not one (exit 2).
    pub fn try_help() -> Failure {
        Failure {
            message: String::new(),
            code: 2,
            try_help: true,
        }
    }

    /// The operation was refused (exit 1).
    pub fn refused(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            code: 1,
            try_help: false,
        }
    }

    /// The API cannot be reached (exit 2).
    pub fn unreachable(message: impl Into<String>) -> Failure {
        Failure::usage(message)
    }

    /// The line to print.
    pub fn message_or_try_help(&self) -> String {
        if self.try_help {
            try_help_line("rvsadm")
        } else {
            self.message.clone()
        }
    }
}

fn try_help_line(program: &str) -> String {
    format!("Try `{program} -h' or '{program} --help' for more information.")
}

/// `--api`/`--token` taken out of the words (they may be anywhere).
#[derive(Debug, Default)]
struct Globals {
    api: Option<String>,
    token: Option<String>,
}

fn split_globals(args: Vec<String>) -> Result<(Globals, Vec<String>), Failure> {
    let mut g = Globals::default();
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--" {
            rest.push(a);
            rest.extend(it.by_ref());
            break;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n == "--api" || n == "--token" => (n.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        if name != "--api" && name != "--token" {
            rest.push(a);
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .ok_or_else(|| Failure::usage(format!("{name}: missing argument")))?,
        };
        if name == "--api" {
            g.api = Some(value);
        } else {
            g.token = Some(value);
        }
    }
    Ok((g, rest))
}

/// Drops a leading program name (`rvsadm`, `/usr/sbin/ipvsadm`, …) so callers may pass
/// either `argv` or `argv[1..]`.
fn drop_program(mut args: Vec<String>) -> Vec<String> {
    if let Some(first) = args.first() {
        let base = first.rsplit('/').next().unwrap_or(first);
        if !first.starts_with('-') && matches!(base, "rvsadm" | "ipvsadm") {
            args.remove(0);
        }
    }
    args
}

fn write_failure(stderr: &mut dyn Write, f: &Failure, program: &str) -> i32 {
    let line = if f.try_help {
        try_help_line(program)
    } else {
        f.message.clone()
    };
    let _ = writeln!(stderr, "{line}");
    f.code
}

/// `rvsadm ARGS…` (without the program name; a leading `rvsadm` is tolerated): parses, talks
/// to the API, prints. Returns the exit status.
pub fn run(
    args: Vec<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    env: &Env,
) -> i32 {
    let (globals, rest) = match split_globals(drop_program(args)) {
        Ok(x) => x,
        Err(f) => return write_failure(stderr, &f, "rvsadm"),
    };
    let base = globals
        .api
        .or_else(|| env.api.clone())
        .unwrap_or_else(|| DEFAULT_API.to_owned());
    let token = globals.token.or_else(|| env.token.clone());
    let mut http = HttpTransport::new(&base, token);
    run_with_transport(rest, stdin, stdout, stderr, env, &mut http, &base)
}

/// [`run`] over a given transport (`base` names the API in messages). `--api`/`--token` in
/// `args` are accepted and ignored.
pub fn run_with_transport(
    args: Vec<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    env: &Env,
    transport: &mut dyn Transport,
    base: &str,
) -> i32 {
    let args = match split_globals(drop_program(args)) {
        Ok((_, a)) => a,
        Err(f) => return write_failure(stderr, &f, "rvsadm"),
    };
    let names = env.names();
    let cmd = match parse::parse(&args, &names) {
        Ok(c) => c,
        Err(f) => return write_failure(stderr, &f, "rvsadm"),
    };
    let mut client = Client::new(transport, base);
    match execute(&cmd, &mut client, &names, stdin, stdout, false) {
        Ok(()) => 0,
        Err(f) => {
            let _ = stdout.flush();
            write_failure(stderr, &f, "rvsadm")
        }
    }
}

/// `rvsadm-save [-n]` (ipvsadm-save: `ipvsadm -S [-n]`; any other option prints its help
/// and exits 1).
pub fn run_save(
    args: Vec<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    env: &Env,
) -> i32 {
    let (globals, rest) = match split_globals(args) {
        Ok(x) => x,
        Err(f) => return write_failure(stderr, &f, "rvsadm-save"),
    };
    let mut cmd = vec!["-S".to_owned()];
    for a in rest {
        match a.as_str() {
            "-n" if !cmd.contains(&a) => cmd.push(a),
            "-n" => {}
            x if x.starts_with('-') => {
                let _ = writeln!(
                    stderr,
                    "rvsadm-save: Script to save the IPVS table to stdout.\n   With the -n option, prints out the table in numeric format."
                );
                return 1;
            }
            _ => {}
        }
    }
    with_globals(cmd, globals, |args| run(args, stdin, stdout, stderr, env))
}

/// `rvsadm-restore` (ipvsadm-restore: clear the table, then `ipvsadm -R` from stdin), as one
/// atomic configuration change.
pub fn run_restore(
    args: Vec<String>,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    env: &Env,
) -> i32 {
    let (globals, rest) = match split_globals(args) {
        Ok(x) => x,
        Err(f) => return write_failure(stderr, &f, "rvsadm-restore"),
    };
    if !rest.is_empty() {
        let _ = writeln!(
            stderr,
            "rvsadm-restore: Script to restore the IPVS table from stdin (the table is cleared first)."
        );
        return 1;
    }
    let base = globals
        .api
        .or_else(|| env.api.clone())
        .unwrap_or_else(|| DEFAULT_API.to_owned());
    let token = globals.token.or_else(|| env.token.clone());
    let mut http = HttpTransport::new(&base, token);
    restore_with_transport(stdin, stdout, stderr, env, &mut http, &base)
}

/// [`run_restore`] over a given transport.
pub fn restore_with_transport(
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    env: &Env,
    transport: &mut dyn Transport,
    base: &str,
) -> i32 {
    let names = env.names();
    let mut client = Client::new(transport, base);
    match execute(&Command::Restore, &mut client, &names, stdin, stdout, true) {
        Ok(()) => 0,
        Err(f) => write_failure(stderr, &f, "rvsadm-restore"),
    }
}

fn with_globals(mut args: Vec<String>, g: Globals, f: impl FnOnce(Vec<String>) -> i32) -> i32 {
    if let Some(a) = g.api {
        args.push(format!("--api={a}"));
    }
    if let Some(t) = g.token {
        args.push(format!("--token={t}"));
    }
    f(args)
}

fn id(key: ServiceKey) -> ServiceId {
    ServiceId(key)
}

fn out(stdout: &mut dyn Write, text: &str) -> Result<(), Failure> {
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(Failure::refused(format!("cannot write output: {e}")))
            }
        })
}

/// Maps an API status to ipvsadm's message for `cmd`, else the API's own message.
fn api_failure(e: CallError, mapping: &[(u16, &str)]) -> Failure {
    if let Some(status) = e.status()
        && let Some((_, msg)) = mapping.iter().find(|(s, _)| *s == status)
    {
        return Failure::refused(*msg);
    }
    e.failure()
}

/// Whether the service exists (for telling "Service not defined" from "No such
/// destination" on a 404).
fn service_exists(client: &mut Client<'_>, key: ServiceKey) -> Result<bool, Failure> {
    match client.get::<Service>(&format!("/api/v1/services/{}", id(key))) {
        Ok(_) => Ok(true),
        Err(e) if e.status() == Some(404) => Ok(false),
        Err(e) => Err(e.failure()),
    }
}

/// A 404 on a server or local-address resource: the service or the item is missing.
fn not_found(
    client: &mut Client<'_>,
    key: ServiceKey,
    e: CallError,
    no_service: &str,
    no_item: &str,
) -> Failure {
    if e.status() != Some(404) {
        return e.failure();
    }
    match service_exists(client, key) {
        Ok(false) => Failure::refused(no_service),
        Ok(true) if !no_item.is_empty() => Failure::refused(no_item),
        Ok(true) => e.failure(),
        Err(f) => f,
    }
}

fn all_connections(client: &mut Client<'_>) -> Result<Vec<ConnView>, Failure> {
    let mut conns = Vec::new();
    let mut offset = 0u64;
    loop {
        let page: ConnPage = client
            .get(&format!(
                "/api/v1/connections?offset={offset}&limit={CONN_PAGE}&templates=true"
            ))
            .map_err(CallError::failure)?;
        conns.extend(page.items);
        match page.next_offset {
            Some(next) if next > offset => offset = next,
            _ => break,
        }
    }
    Ok(conns)
}

/// Runs one parsed command against the API.
fn execute(
    cmd: &Command,
    client: &mut Client<'_>,
    names: &Names,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    clear_first: bool,
) -> Result<(), Failure> {
    const SERVICES: &str = "/api/v1/services";
    match cmd {
        Command::Help => out(stdout, &format::usage("rvsadm")),
        Command::Version => out(stdout, &format::version()),
        Command::AddService(spec) => client
            .send("POST", SERVICES, &restore::new_service(spec))
            .map_err(|e| api_failure(e, &[(409, "Service already exists")])),
        Command::EditService(spec) => {
            let path = format!("{SERVICES}/{}", id(spec.key));
            let mut svc: Service = client
                .get(&path)
                .map_err(|e| api_failure(e, &[(404, "No such service")]))?;
            restore::edit_service(&mut svc, spec);
            client
                .send("PUT", &path, &svc)
                .map_err(|e| api_failure(e, &[(404, "No such service")]))
        }
        Command::DeleteService(key) => client
            .call("DELETE", &format!("{SERVICES}/{}", id(*key)))
            .map_err(|e| api_failure(e, &[(404, "No such service")])),
        Command::Clear => client.call("DELETE", SERVICES).map_err(CallError::failure),
        Command::AddServer(key, server) => {
            match client.send("POST", &format!("{SERVICES}/{}/servers", id(*key)), server) {
                Ok(()) => Ok(()),
                Err(e) if e.status() == Some(409) => {
                    Err(Failure::refused("Destination already exists"))
                }
                Err(e) => Err(not_found(client, *key, e, "Service not defined", "")),
            }
        }
        Command::EditServer(key, server) => {
            let path = format!(
                "{SERVICES}/{}/servers/{}:{}",
                id(*key),
                server.address,
                server.port
            );
            client.send("PUT", &path, server).map_err(|e| {
                not_found(
                    client,
                    *key,
                    e,
                    "Service not defined",
                    "No such destination",
                )
            })
        }
        Command::DeleteServer(key, address, port) => {
            let path = format!("{SERVICES}/{}/servers/{address}:{port}", id(*key));
            client.call("DELETE", &path).map_err(|e| {
                not_found(
                    client,
                    *key,
                    e,
                    "Service not defined",
                    "No such destination",
                )
            })
        }
        Command::List(what, f) => match what {
            ListWhat::All => {
                let view: StatsView = client.get("/api/v1/stats").map_err(CallError::failure)?;
                out(stdout, &format::list_all(&view, f, names))
            }
            ListWhat::Service(key) => {
                let view: StatsView = client.get("/api/v1/stats").map_err(CallError::failure)?;
                let svc = view
                    .services
                    .iter()
                    .find(|s| s.id.0 == *key)
                    .ok_or_else(|| Failure::refused("No such service"))?;
                out(stdout, &format::list_service(svc, f, names))
            }
            ListWhat::Connections => {
                let conns = all_connections(client)?;
                out(stdout, &format::connections(&conns, f, names))
            }
            ListWhat::Timeout => {
                let t: Timeouts = client.get("/api/v1/timeouts").map_err(CallError::failure)?;
                out(stdout, &format::timeouts(&t))
            }
            ListWhat::Daemon => Ok(()),
        },
        Command::Zero(key) => {
            let path = match key {
                None => "/api/v1/stats/zero".to_owned(),
                Some(k) => format!("/api/v1/stats/zero?service={}", id(*k)),
            };
            client
                .call("POST", &path)
                .map_err(|e| api_failure(e, &[(404, "No such service")]))
        }
        Command::Save { numeric } => {
            let p: Profile = client.get("/api/v1/config").map_err(CallError::failure)?;
            out(stdout, &format::save(&p, *numeric, names))
        }
        Command::Restore => {
            let mut input = String::new();
            stdin
                .read_to_string(&mut input)
                .map_err(|e| Failure::refused(format!("cannot read the rules from stdin: {e}")))?;
            let mut p: Profile = client.get("/api/v1/config").map_err(CallError::failure)?;
            let applied = restore::restore(&mut p, &input, names, clear_first)?;
            if applied == 0 {
                return Ok(());
            }
            client
                .send("PUT", "/api/v1/config", &p)
                .map_err(CallError::failure)
        }
        Command::SetTimeouts { tcp, tcp_fin, udp } => {
            let current: Timeouts = client.get("/api/v1/timeouts").map_err(CallError::failure)?;
            let t = restore::merge_timeouts(current, *tcp, *tcp_fin, *udp);
            client
                .send("PUT", "/api/v1/timeouts", &t)
                .map_err(CallError::failure)
        }
        Command::AddLaddr(key, lip) => {
            let path = format!("{SERVICES}/{}/local-addresses", id(*key));
            client
                .send("POST", &path, &LocalAddress { address: *lip })
                .map_err(|e| match e.status() {
                    // DPVS's wording for a duplicate, as the restore path uses.
                    Some(409) => Failure::refused("Local address already exists"),
                    _ => not_found(client, *key, e, "No such service", ""),
                })
        }
        Command::DelLaddr(key, lip) => {
            let path = format!("{SERVICES}/{}/local-addresses/{lip}", id(*key));
            client
                .call("DELETE", &path)
                .map_err(|e| not_found(client, *key, e, "No such service", "No such local address"))
        }
        Command::GetLaddr(key) => {
            let services: Vec<Service> = match key {
                None => client.get(SERVICES).map_err(CallError::failure)?,
                Some(k) => vec![
                    client
                        .get(&format!("{SERVICES}/{}", id(*k)))
                        .map_err(|e| api_failure(e, &[(404, "No such service")]))?,
                ],
            };
            out(stdout, &format::laddrs(&services))
        }
    }
}

#[cfg(test)]
mod tests;
