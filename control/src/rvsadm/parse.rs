//! The ipvsadm command line, parsed into a [`Command`].
//!
//! This follows ipvsadm 1.31's `parse_options`/`process_options` (popt based), in its order of
//! checks, with its messages:
//!
//! * the first option must be the command (`-A`, `--list`, `-Ln`, …); otherwise
//!   ``Try `rvsadm -h' or 'rvsadm --help' for more information.``;
//! * short options bundle (`-lnc`), take their argument attached or as the next word
//!   (`-w3`, `-w 3`), long options take `--opt=value` or `--opt value`;
//! * `-p` has an optional argument: the next word is the timeout unless it starts with `-`
//!   (popt's rule: `-p` alone is 360, `-p 600` is 600, `-p abc` is an invalid timeout);
//! * every option given twice is `multiple '<name>' options specified`; then the
//!   command/option table is checked (`You need to supply the '<opt>' option for the '<cmd>'
//!   command`, `Illegal '<opt>' option with the '<cmd>' command`, `The option '<a>' conflicts
//!   with the '<b>' option in the '<cmd>' command`);
//! * then the service rules: a port-0 address service must be persistent, the scheduler
//!   defaults to `wlc`, DR and TUN servers take the service port, a server without a port
//!   takes the service port.
//!
//! `-b` has two meanings, resolved by the command, as the two tools that define it do: after
//! `-A`/`-E` it is ipvsadm's `-b sched-flags` (`sh-port,sh-fallback`) and takes an argument;
//! after `-a`/`-e` it is DPVS's `-b` (FullNAT forwarding) and takes none. The long forms
//! `--sched-flags FLAGS` and `--fullnat` are unambiguous anywhere. FullNAT local addresses use
//! DPVS's commands: `-P|--add-laddr`, `-Q|--del-laddr`, `-G|--get-laddr` with `-z|--laddr`;
//! DPVS's `-F|--ifname` is accepted and ignored (RVS knows the port of a LIP itself).

use std::net::Ipv4Addr;
use std::str::FromStr;

use rvs_config::{Forward, Persistence, Protocol, SchedFlag, Scheduler, Server, ServiceKey};

use super::Failure;
use super::names::Names;

/// ipvsadm's largest persistence and connection timeout: 31 days.
pub const MAX_TIMEOUT: u32 = 86_400 * 31;

/// How a listing is printed (ipvsadm's `FMT_*` flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Format {
    /// `-n`: numeric ports (addresses are always numeric, see [`super::names`]).
    pub numeric: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--nosort`: configuration order instead of ipvsadm's sorted order.
    pub nosort: bool,
    /// `--exact`: no K/M/G/T abbreviation of large numbers.
    pub exact: bool,
}

/// What `-L` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListWhat {
    /// The whole table.
    All,
    /// One service (`-L -t VIP:PORT`).
    Service(ServiceKey),
    /// Connections and persistence templates (`-c`).
    Connections,
    /// `--timeout`.
    Timeout,
    /// `--daemon` (RVS runs no sync daemon: prints nothing).
    Daemon,
}

/// A virtual service as `-A`/`-E` give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// `-t|-u|-f`.
    pub key: ServiceKey,
    /// `-s` (default `wlc`).
    pub scheduler: Scheduler,
    /// `-b` flags.
    pub flags: Vec<SchedFlag>,
    /// `-p [timeout]` with `-M netmask`.
    pub persistence: Option<Persistence>,
}

/// One rvsadm command, fully defaulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `-A`.
    AddService(ServiceSpec),
    /// `-E`: scheduler, flags and persistence are replaced (omitted ones reset to the
    /// defaults, as ipvsadm does); servers and everything else are kept.
    EditService(ServiceSpec),
    /// `-D`.
    DeleteService(ServiceKey),
    /// `-C`.
    Clear,
    /// `-a`.
    AddServer(ServiceKey, Server),
    /// `-e`: the server is replaced as given (omitted options take their defaults).
    EditServer(ServiceKey, Server),
    /// `-d`: service, server address and port.
    DeleteServer(ServiceKey, Ipv4Addr, u16),
    /// `-L`/`-l`.
    List(ListWhat, Format),
    /// `-Z [service]`.
    Zero(Option<ServiceKey>),
    /// `-S [-n]`.
    Save {
        /// `-n`.
        numeric: bool,
    },
    /// `-R`.
    Restore,
    /// `--set tcp tcpfin udp` (0 keeps the current value).
    SetTimeouts {
        /// TCP established.
        tcp: u32,
        /// TCP after FIN.
        tcp_fin: u32,
        /// UDP.
        udp: u32,
    },
    /// `-P -t|-u service -z LIP`.
    AddLaddr(ServiceKey, Ipv4Addr),
    /// `-Q -t|-u service -z LIP`.
    DelLaddr(ServiceKey, Ipv4Addr),
    /// `-G [service]`.
    GetLaddr(Option<ServiceKey>),
    /// `-h`.
    Help,
    /// `-v`.
    Version,
}

/// The commands, in ipvsadm's `cmdnames` order plus DPVS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    Restore,
    Save,
    Zero,
    AddLaddr,
    DelLaddr,
    GetLaddr,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            Cmd::AddLaddr => "add-laddr",
            Cmd::DelLaddr => "del-laddr",
            Cmd::GetLaddr => "get-laddr",
        }
    }

    /// ipvsadm's `commands_v_options` row: `+` compulsory, `x` illegal, `1` exclusive,
    /// ` ` optional (indexed by [`Opt`]).
    fn rule(self, o: Opt) -> char {
        use Opt::*;
        match self {
            Cmd::Add | Cmd::Edit => match o {
                Service => '+',
                Scheduler | Persistent | Netmask | SchedFlags => ' ',
                _ => 'x',
            },
            Cmd::Del => match o {
                Service => '+',
                _ => 'x',
            },
            Cmd::Flush | Cmd::Timeout | Cmd::Restore => 'x',
            Cmd::List => match o {
                Connection | Service | Timeout | Daemon => '1',
                Numeric | Stats | Rate | Thresholds | PersistentConn | NoSort | Exact => ' ',
                _ => 'x',
            },
            Cmd::AddDest | Cmd::EditDest => match o {
                Service | Server => '+',
                Forward | Weight | UThreshold | LThreshold => ' ',
                _ => 'x',
            },
            Cmd::DelDest => match o {
                Service | Server => '+',
                _ => 'x',
            },
            Cmd::Save => match o {
                Numeric => ' ',
                _ => 'x',
            },
            Cmd::Zero | Cmd::GetLaddr => match o {
                Service => ' ',
                _ => 'x',
            },
            Cmd::AddLaddr | Cmd::DelLaddr => match o {
                Service | LocalAddress => '+',
                Ifname => ' ',
                _ => 'x',
            },
        }
    }
}

/// The options, in ipvsadm's `optnames` order (the order of the table checks), plus DPVS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Exact,
    SchedFlags,
    LocalAddress,
    Ifname,
}

impl Opt {
    const ALL: [Opt; 22] = [
        Opt::Numeric,
        Opt::Connection,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Netmask,
        Opt::Server,
        Opt::Forward,
        Opt::Weight,
        Opt::UThreshold,
        Opt::LThreshold,
        Opt::Timeout,
        Opt::Daemon,
        Opt::Stats,
        Opt::Rate,
        Opt::Thresholds,
        Opt::PersistentConn,
        Opt::NoSort,
        Opt::Exact,
        Opt::SchedFlags,
        Opt::LocalAddress,
        Opt::Ifname,
    ];

    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Server => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::Timeout => "timeout",
            Opt::Daemon => "daemon",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::Exact => "exact",
            Opt::SchedFlags => "sched-flags",
            Opt::LocalAddress => "local-address",
            Opt::Ifname => "ifname",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// What one option word means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Cmd(Cmd),
    Help,
    Version,
    Tcp,
    Udp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masq,
    Ipip,
    Gate,
    FullNat,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    SchedFlags,
    Laddr,
    Ifname,
    /// Known to ipvsadm or DPVS, not implemented by RVS.
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    None,
    Required,
    Optional,
}

/// Long options: name, meaning, arity.
const LONG: &[(&str, Id, Arity)] = &[
    ("add-service", Id::Cmd(Cmd::Add), Arity::None),
    ("edit-service", Id::Cmd(Cmd::Edit), Arity::None),
    ("delete-service", Id::Cmd(Cmd::Del), Arity::None),
    ("clear", Id::Cmd(Cmd::Flush), Arity::None),
    ("list", Id::Cmd(Cmd::List), Arity::None),
    ("zero", Id::Cmd(Cmd::Zero), Arity::None),
    ("add-server", Id::Cmd(Cmd::AddDest), Arity::None),
    ("edit-server", Id::Cmd(Cmd::EditDest), Arity::None),
    ("delete-server", Id::Cmd(Cmd::DelDest), Arity::None),
    ("set", Id::Cmd(Cmd::Timeout), Arity::None),
    ("help", Id::Help, Arity::None),
    ("version", Id::Version, Arity::None),
    ("restore", Id::Cmd(Cmd::Restore), Arity::None),
    ("save", Id::Cmd(Cmd::Save), Arity::None),
    ("add-laddr", Id::Cmd(Cmd::AddLaddr), Arity::None),
    ("del-laddr", Id::Cmd(Cmd::DelLaddr), Arity::None),
    ("get-laddr", Id::Cmd(Cmd::GetLaddr), Arity::None),
    ("tcp-service", Id::Tcp, Arity::Required),
    ("udp-service", Id::Udp, Arity::Required),
    ("fwmark-service", Id::Fwmark, Arity::Required),
    ("scheduler", Id::Scheduler, Arity::Required),
    ("persistent", Id::Persistent, Arity::Optional),
    ("netmask", Id::Netmask, Arity::Required),
    ("real-server", Id::RealServer, Arity::Required),
    ("masquerading", Id::Masq, Arity::None),
    ("ipip", Id::Ipip, Arity::None),
    ("gatewaying", Id::Gate, Arity::None),
    ("fullnat", Id::FullNat, Arity::None),
    ("weight", Id::Weight, Arity::Required),
    ("u-threshold", Id::UThreshold, Arity::Required),
    ("l-threshold", Id::LThreshold, Arity::Required),
    ("numeric", Id::Numeric, Arity::None),
    ("connection", Id::Connection, Arity::None),
    ("timeout", Id::Timeout, Arity::None),
    ("daemon", Id::Daemon, Arity::None),
    ("stats", Id::Stats, Arity::None),
    ("rate", Id::Rate, Arity::None),
    ("thresholds", Id::Thresholds, Arity::None),
    ("persistent-conn", Id::PersistentConn, Arity::None),
    ("nosort", Id::NoSort, Arity::None),
    ("sort", Id::Sort, Arity::None),
    ("exact", Id::Exact, Arity::None),
    ("sched-flags", Id::SchedFlags, Arity::Required),
    ("laddr", Id::Laddr, Arity::Required),
    ("ifname", Id::Ifname, Arity::Required),
    // ipvsadm 1.31 / DPVS options RVS does not implement: named, so the error says so.
    ("start-daemon", Id::Unsupported, Arity::Required),
    ("stop-daemon", Id::Unsupported, Arity::Required),
    ("mcast-interface", Id::Unsupported, Arity::Required),
    ("syncid", Id::Unsupported, Arity::Required),
    ("sctp-service", Id::Unsupported, Arity::Required),
    ("ipv6", Id::Unsupported, Arity::None),
    ("ops", Id::Unsupported, Arity::None),
    ("pe", Id::Unsupported, Arity::Required),
    ("tun-info", Id::Unsupported, Arity::None),
    ("tun-type", Id::Unsupported, Arity::Required),
    ("tun-port", Id::Unsupported, Arity::Required),
    ("tun-nocsum", Id::Unsupported, Arity::None),
    ("tun-csum", Id::Unsupported, Arity::None),
    ("tun-remcsum", Id::Unsupported, Arity::None),
];

/// Short options; `b` is resolved by the command (see the module doc).
fn short(c: char, cmd: Option<Cmd>) -> Option<(Id, Arity)> {
    Some(match c {
        'A' => (Id::Cmd(Cmd::Add), Arity::None),
        'E' => (Id::Cmd(Cmd::Edit), Arity::None),
        'D' => (Id::Cmd(Cmd::Del), Arity::None),
        'C' => (Id::Cmd(Cmd::Flush), Arity::None),
        'L' | 'l' => (Id::Cmd(Cmd::List), Arity::None),
        'Z' => (Id::Cmd(Cmd::Zero), Arity::None),
        'a' => (Id::Cmd(Cmd::AddDest), Arity::None),
        'e' => (Id::Cmd(Cmd::EditDest), Arity::None),
        'd' => (Id::Cmd(Cmd::DelDest), Arity::None),
        'h' => (Id::Help, Arity::None),
        'v' => (Id::Version, Arity::None),
        'R' => (Id::Cmd(Cmd::Restore), Arity::None),
        'S' => (Id::Cmd(Cmd::Save), Arity::None),
        'P' => (Id::Cmd(Cmd::AddLaddr), Arity::None),
        'Q' => (Id::Cmd(Cmd::DelLaddr), Arity::None),
        'G' => (Id::Cmd(Cmd::GetLaddr), Arity::None),
        't' => (Id::Tcp, Arity::Required),
        'u' => (Id::Udp, Arity::Required),
        'f' => (Id::Fwmark, Arity::Required),
        's' => (Id::Scheduler, Arity::Required),
        'p' => (Id::Persistent, Arity::Optional),
        'M' => (Id::Netmask, Arity::Required),
        'r' => (Id::RealServer, Arity::Required),
        'm' => (Id::Masq, Arity::None),
        'i' => (Id::Ipip, Arity::None),
        'g' => (Id::Gate, Arity::None),
        'b' => match cmd {
            Some(Cmd::Add | Cmd::Edit) => (Id::SchedFlags, Arity::Required),
            _ => (Id::FullNat, Arity::None),
        },
        'w' => (Id::Weight, Arity::Required),
        'x' => (Id::UThreshold, Arity::Required),
        'y' => (Id::LThreshold, Arity::Required),
        'n' => (Id::Numeric, Arity::None),
        'c' => (Id::Connection, Arity::None),
        'X' => (Id::Exact, Arity::None),
        'z' => (Id::Laddr, Arity::Required),
        'F' => (Id::Ifname, Arity::Required),
        '6' | 'o' => (Id::Unsupported, Arity::None),
        _ => return None,
    })
}

fn fail(msg: impl Into<String>) -> Failure {
    Failure::usage(msg)
}

/// Everything gathered from the words before the defaults and checks.
#[derive(Debug, Default)]
struct State {
    cmd: Option<Cmd>,
    options: u32,
    help: bool,
    version: bool,
    protocol: Option<Protocol>,
    vip: Option<Ipv4Addr>,
    vport: u16,
    fwmark: Option<u32>,
    sched: Option<String>,
    persistent: Option<u32>,
    netmask: Option<Ipv4Addr>,
    server: Option<(Ipv4Addr, Option<u16>)>,
    forward: Option<Forward>,
    weight: Option<u32>,
    upper: u32,
    lower: u32,
    sched_flags: Option<String>,
    laddr: Option<Ipv4Addr>,
    format: Format,
    positional: Vec<String>,
}

impl State {
    fn set_command(&mut self, c: Cmd) -> Result<(), Failure> {
        if self.cmd.is_some() {
            return Err(fail("multiple commands specified"));
        }
        self.cmd = Some(c);
        Ok(())
    }

    fn set_option(&mut self, o: Opt) -> Result<(), Failure> {
        if self.options & o.bit() != 0 {
            return Err(fail(format!("multiple '{}' options specified", o.name())));
        }
        self.options |= o.bit();
        Ok(())
    }

    fn has(&self, o: Opt) -> bool {
        self.options & o.bit() != 0
    }

    fn service_key(&self) -> Option<ServiceKey> {
        if let Some(m) = self.fwmark {
            return Some(ServiceKey::Fwmark(m));
        }
        Some(ServiceKey::Addr {
            protocol: self.protocol?,
            vip: self.vip?,
            port: self.vport,
        })
    }
}

/// ipvsadm's `string_to_number`: `strtol` base 10, the whole word, within `min..=max`.
fn number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = t.parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

/// `parse_timeout`.
fn timeout(s: &str, min: u32) -> Result<u32, Failure> {
    number(s, i64::from(min), i64::from(MAX_TIMEOUT))
        .map(|n| n as u32)
        .ok_or_else(|| fail(format!("invalid timeout value `{s}' specified")))
}

/// ipvsadm's `parse_service`: `host[:port]` → address and the port if one was given.
fn address_port(s: &str, protocol: Protocol, names: &Names) -> Option<(Ipv4Addr, Option<u16>)> {
    if s.is_empty() || s.bytes().all(|b| b.is_ascii_digit()) || s.starts_with('[') {
        return None;
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let ip = Ipv4Addr::from_str(host).ok().or_else(|| names.host(host))?;
    let port = match port {
        None => None,
        Some(p) => Some(match number(p, 0, 65_535) {
            Some(n) => n as u16,
            None => names.port_by_name(p, protocol)?,
        }),
    };
    Some((ip, port))
}

/// `parse_sched_flags` for scheduler `sched` (the default `wlc` when none was given). Flags
/// are bits: `flag-1` is `sh-fallback` and `flag-2` is `sh-port`, as in the kernel.
fn sched_flags(sched: &str, arg: &str) -> Result<Vec<SchedFlag>, Failure> {
    let mut flags = Vec::new();
    let mut words = arg.split(',').filter(|w| !w.is_empty()).peekable();
    if words.peek().is_none() {
        return Err(fail(format!("invalid scheduler flag `{arg}'")));
    }
    for w in words {
        let (flag, owner) = match w {
            "flag-1" => (SchedFlag::ShFallback, None),
            "flag-2" => (SchedFlag::ShPort, None),
            "sh-fallback" => (SchedFlag::ShFallback, Some("sh")),
            "sh-port" => (SchedFlag::ShPort, Some("sh")),
            "mh-fallback" => (SchedFlag::ShFallback, Some("mh")),
            "mh-port" => (SchedFlag::ShPort, Some("mh")),
            _ => return Err(fail(format!("invalid scheduler flag `{w}'"))),
        };
        if owner.is_some_and(|o| o != sched) {
            return Err(fail(format!("incompatible scheduler flag `{w}'")));
        }
        if !flags.contains(&flag) {
            flags.push(flag);
        }
    }
    flags.sort();
    Ok(flags)
}

/// One option occurrence: its meaning, its argument, and how it was written.
fn handle(
    st: &mut State,
    id: Id,
    arg: Option<String>,
    shown: &str,
    names: &Names,
) -> Result<(), Failure> {
    let arg_s = arg.clone().unwrap_or_default();
    match id {
        Id::Cmd(c) => st.set_command(c)?,
        Id::Help => st.help = true,
        Id::Version => st.version = true,
        Id::Tcp | Id::Udp => {
            st.set_option(Opt::Service)?;
            let protocol = if id == Id::Tcp {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            st.protocol = Some(protocol);
            let (ip, port) = address_port(&arg_s, protocol, names)
                .ok_or_else(|| fail("illegal virtual server address[:port] specified"))?;
            st.vip = Some(ip);
            st.vport = port.unwrap_or(0);
        }
        Id::Fwmark => {
            st.set_option(Opt::Service)?;
            // ipvsadm sets TCP "to a sane value, even though it is not used".
            st.protocol = Some(Protocol::Tcp);
            let m = number(&arg_s, 1, i64::from(u32::MAX))
                .ok_or_else(|| fail(format!("invalid fwmark value `{arg_s}' specified")))?;
            st.fwmark = Some(m as u32);
        }
        Id::Scheduler => {
            st.set_option(Opt::Scheduler)?;
            st.sched = Some(arg_s);
        }
        Id::Persistent => {
            st.set_option(Opt::Persistent)?;
            st.persistent = Some(match &arg {
                None => rvs_config::DEFAULT_PERSISTENCE_TIMEOUT,
                Some(a) => timeout(a, 1)?,
            });
        }
        Id::Netmask => {
            st.set_option(Opt::Netmask)?;
            let m = Ipv4Addr::from_str(&arg_s)
                .map_err(|_| fail("illegal virtual server persistent mask specified"))?;
            st.netmask = Some(m);
        }
        Id::RealServer => {
            st.set_option(Opt::Server)?;
            let protocol = st.protocol.unwrap_or(Protocol::Tcp);
            let s = address_port(&arg_s, protocol, names)
                .ok_or_else(|| fail("illegal real server address[:port] specified"))?;
            st.server = Some(s);
        }
        Id::Masq | Id::Ipip | Id::Gate | Id::FullNat => {
            st.set_option(Opt::Forward)?;
            st.forward = Some(match id {
                Id::Masq => Forward::Nat,
                Id::Ipip => Forward::Tun,
                Id::Gate => Forward::Dr,
                _ => Forward::Fnat,
            });
        }
        Id::Weight => {
            st.set_option(Opt::Weight)?;
            let w = number(&arg_s, 0, 65_535).ok_or_else(|| fail("illegal weight specified"))?;
            st.weight = Some(w as u32);
        }
        Id::UThreshold => {
            st.set_option(Opt::UThreshold)?;
            st.upper = number(&arg_s, 0, i64::from(i32::MAX))
                .ok_or_else(|| fail("illegal u_threshold specified"))?
                as u32;
        }
        Id::LThreshold => {
            st.set_option(Opt::LThreshold)?;
            st.lower = number(&arg_s, 0, i64::from(i32::MAX))
                .ok_or_else(|| fail("illegal l_threshold specified"))?
                as u32;
        }
        Id::Numeric => {
            st.set_option(Opt::Numeric)?;
            st.format.numeric = true;
        }
        Id::Connection => st.set_option(Opt::Connection)?,
        Id::Timeout => st.set_option(Opt::Timeout)?,
        Id::Daemon => st.set_option(Opt::Daemon)?,
        Id::Stats => {
            st.set_option(Opt::Stats)?;
            st.format.stats = true;
        }
        Id::Rate => {
            st.set_option(Opt::Rate)?;
            st.format.rate = true;
        }
        Id::Thresholds => {
            st.set_option(Opt::Thresholds)?;
            st.format.thresholds = true;
        }
        Id::PersistentConn => {
            st.set_option(Opt::PersistentConn)?;
            st.format.persistent_conn = true;
        }
        Id::NoSort => {
            st.set_option(Opt::NoSort)?;
            st.format.nosort = true;
        }
        Id::Sort => {}
        Id::Exact => {
            st.set_option(Opt::Exact)?;
            st.format.exact = true;
        }
        Id::SchedFlags => {
            st.set_option(Opt::SchedFlags)?;
            st.sched_flags = Some(arg_s);
        }
        Id::Laddr => {
            st.set_option(Opt::LocalAddress)?;
            let protocol = st.protocol.unwrap_or(Protocol::Tcp);
            let (ip, _) = address_port(&arg_s, protocol, names)
                .ok_or_else(|| fail("illegal local address"))?;
            st.laddr = Some(ip);
        }
        Id::Ifname => st.set_option(Opt::Ifname)?,
        Id::Unsupported => {
            return Err(fail(format!("{shown}: option not supported by rvsadm")));
        }
    }
    Ok(())
}

/// Splits the words into option occurrences (a small popt) and feeds them to `handle`.
/// Words that are not options are kept as positional arguments.
fn scan(args: &[String], st: &mut State, names: &Names) -> Result<(), Failure> {
    let mut i = 0;
    let mut first = true;
    let mut only_positional = false;
    // The first option must be the command, as in ipvsadm; `-h`/`-v` first end the parse.
    let check_first = |first: &mut bool, id: Id| -> Result<bool, Failure> {
        if !std::mem::take(first) {
            return Ok(false);
        }
        match id {
            Id::Cmd(_) => Ok(false),
            Id::Help | Id::Version => Ok(true),
            _ => Err(Failure::try_help()),
        }
    };
    while i < args.len() {
        let word = &args[i];
        i += 1;
        if only_positional || word == "-" || !word.starts_with('-') {
            st.positional.push(word.clone());
            continue;
        }
        if word == "--" {
            only_positional = true;
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let shown = format!("--{name}");
            let Some(&(_, id, arity)) = LONG.iter().find(|(n, _, _)| *n == name) else {
                if first {
                    return Err(Failure::try_help());
                }
                return Err(fail(format!("{shown}: unknown option")));
            };
            if check_first(&mut first, id)? {
                return handle(st, id, None, &shown, names);
            }
            let arg = match arity {
                Arity::None => {
                    if inline.is_some() {
                        return Err(fail(format!("{shown}: option does not take an argument")));
                    }
                    None
                }
                Arity::Required => match inline {
                    Some(v) => Some(v),
                    None if i < args.len() => {
                        i += 1;
                        Some(args[i - 1].clone())
                    }
                    None => return Err(fail(format!("{shown}: missing argument"))),
                },
                Arity::Optional => match inline {
                    Some(v) => Some(v),
                    None if i < args.len() && !args[i].starts_with('-') => {
                        i += 1;
                        Some(args[i - 1].clone())
                    }
                    None => None,
                },
            };
            handle(st, id, arg, &shown, names)?;
            continue;
        }
        // A bundle of short options.
        let chars: Vec<char> = word[1..].chars().collect();
        let mut k = 0;
        while k < chars.len() {
            let c = chars[k];
            k += 1;
            let shown = format!("-{c}");
            let Some((id, arity)) = short(c, st.cmd) else {
                if first {
                    return Err(Failure::try_help());
                }
                return Err(fail(format!("{shown}: unknown option")));
            };
            if check_first(&mut first, id)? {
                return handle(st, id, None, &shown, names);
            }
            let rest: String = chars[k..].iter().collect();
            let arg = match arity {
                Arity::None => None,
                Arity::Required | Arity::Optional if !rest.is_empty() => {
                    k = chars.len();
                    Some(rest)
                }
                Arity::Required if i < args.len() => {
                    i += 1;
                    Some(args[i - 1].clone())
                }
                Arity::Required => return Err(fail(format!("{shown}: missing argument"))),
                Arity::Optional if i < args.len() && !args[i].starts_with('-') => {
                    i += 1;
                    Some(args[i - 1].clone())
                }
                Arity::Optional => None,
            };
            handle(st, id, arg, &shown, names)?;
        }
    }
    Ok(())
}

/// ipvsadm's `generic_opt_check` over the table in [`Cmd::rule`].
fn check_table(st: &State, cmd: Cmd) -> Result<(), Failure> {
    let mut exclusive: Option<Opt> = None;
    for o in Opt::ALL {
        let rule = cmd.rule(o);
        if !st.has(o) {
            if rule == '+' {
                return Err(fail(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    o.name(),
                    cmd.name()
                )));
            }
            continue;
        }
        match rule {
            'x' => {
                return Err(fail(format!(
                    "Illegal '{}' option with the '{}' command",
                    o.name(),
                    cmd.name()
                )));
            }
            '1' => match exclusive {
                None => exclusive = Some(o),
                Some(first) => {
                    return Err(fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        o.name(),
                        first.name(),
                        cmd.name()
                    )));
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// Parses one command line (without the program name and without `--api`/`--token`).
///
/// An empty line is `-L` (ipvsadm lists the table when run without arguments).
pub fn parse(args: &[String], names: &Names) -> Result<Command, Failure> {
    if args.is_empty() {
        return Ok(Command::List(ListWhat::All, Format::default()));
    }
    let mut st = State::default();
    scan(args, &mut st, names)?;
    if st.help {
        return Ok(Command::Help);
    }
    if st.version {
        return Ok(Command::Version);
    }
    let Some(cmd) = st.cmd else {
        return Err(Failure::try_help());
    };

    // The end of parse_options: --set's three values, leftovers, the scheduler flags.
    let mut positional = st.positional.clone().into_iter();
    let mut set = None;
    if cmd == Cmd::Timeout {
        let (Some(a), Some(b), Some(c)) = (positional.next(), positional.next(), positional.next())
        else {
            return Err(fail("--set option requires 3 timeout values"));
        };
        set = Some((timeout(&a, 0)?, timeout(&b, 0)?, timeout(&c, 0)?));
    }
    if let Some(extra) = positional.next() {
        return Err(fail(format!("unexpected argument {extra}")));
    }
    let mut flags = Vec::new();
    if let Some(arg) = &st.sched_flags {
        flags = sched_flags(st.sched.as_deref().unwrap_or("wlc"), arg)?;
    }

    check_table(&st, cmd)?;
    let key = st.service_key();
    let need_key = || key.ok_or_else(|| fail("illegal virtual server address[:port] specified"));

    Ok(match cmd {
        Cmd::Add | Cmd::Edit => {
            let key = need_key()?;
            if matches!(key, ServiceKey::Addr { port: 0, .. }) && st.persistent.is_none() {
                return Err(fail("Zero port specified for non-persistent service"));
            }
            let scheduler = match st.sched.as_deref() {
                None => Scheduler::Wlc,
                Some(s) => Scheduler::from_str(s)
                    .map_err(|_| Failure::refused("Scheduler or persistence engine not found"))?,
            };
            let spec = ServiceSpec {
                key,
                scheduler,
                flags,
                persistence: st.persistent.map(|timeout| Persistence {
                    timeout,
                    netmask: st.netmask.unwrap_or(Ipv4Addr::BROADCAST),
                }),
            };
            if cmd == Cmd::Add {
                Command::AddService(spec)
            } else {
                Command::EditService(spec)
            }
        }
        Cmd::Del => Command::DeleteService(need_key()?),
        Cmd::Flush => Command::Clear,
        Cmd::List => {
            let what = if st.has(Opt::Connection) {
                ListWhat::Connections
            } else if st.has(Opt::Service) {
                ListWhat::Service(need_key()?)
            } else if st.has(Opt::Timeout) {
                ListWhat::Timeout
            } else if st.has(Opt::Daemon) {
                ListWhat::Daemon
            } else {
                ListWhat::All
            };
            let f = st.format;
            let detail = f.stats || f.rate || f.thresholds;
            if (matches!(
                what,
                ListWhat::Connections | ListWhat::Timeout | ListWhat::Daemon
            ) && detail)
                || (matches!(what, ListWhat::Timeout | ListWhat::Daemon) && f.persistent_conn)
            {
                return Err(fail("options conflicts in the list command"));
            }
            Command::List(what, f)
        }
        Cmd::AddDest | Cmd::EditDest | Cmd::DelDest => {
            let key = need_key()?;
            let (address, given) = st
                .server
                .ok_or_else(|| fail("illegal real server address[:port] specified"))?;
            let service_port = match key {
                ServiceKey::Addr { port, .. } => port,
                ServiceKey::Fwmark(_) => 0,
            };
            let mut port = given.unwrap_or(service_port);
            if cmd == Cmd::DelDest {
                Command::DeleteServer(key, address, port)
            } else {
                let forward = st.forward.unwrap_or(Forward::Dr);
                // "The destination port must be equal to the service port if the
                // IP_VS_CONN_F_TUNNEL or IP_VS_CONN_F_DROUTE is set" (not for fwmark).
                if st.fwmark.is_none() && forward.keeps_port() {
                    port = service_port;
                }
                let server = Server {
                    address,
                    port,
                    weight: st.weight.unwrap_or(1),
                    forward,
                    upper: st.upper,
                    lower: st.lower,
                };
                if cmd == Cmd::AddDest {
                    Command::AddServer(key, server)
                } else {
                    Command::EditServer(key, server)
                }
            }
        }
        Cmd::Timeout => {
            let (tcp, tcp_fin, udp) = set.unwrap_or_default();
            Command::SetTimeouts { tcp, tcp_fin, udp }
        }
        Cmd::Restore => Command::Restore,
        Cmd::Save => Command::Save {
            numeric: st.format.numeric,
        },
        Cmd::Zero => Command::Zero(if st.has(Opt::Service) {
            Some(need_key()?)
        } else {
            None
        }),
        Cmd::AddLaddr | Cmd::DelLaddr => {
            let key = need_key()?;
            let lip = st.laddr.ok_or_else(|| fail("illegal local address"))?;
            if cmd == Cmd::AddLaddr {
                Command::AddLaddr(key, lip)
            } else {
                Command::DelLaddr(key, lip)
            }
        }
        Cmd::GetLaddr => Command::GetLaddr(if st.has(Opt::Service) {
            Some(need_key()?)
        } else {
            None
        }),
    })
}

/// Splits a shell-like line into words (whitespace separated, as ipvsadm's restore reader
/// does: no quoting). A word starting with `#` starts a comment.
pub fn words(line: &str) -> Vec<String> {
    line.split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rvsadm::names::tests::names;

    fn p(line: &str) -> Result<Command, Failure> {
        parse(&words(line), &names())
    }

    fn ok(line: &str) -> Command {
        p(line).unwrap_or_else(|e| panic!("{line}: {}", e.message))
    }

    fn err(line: &str) -> String {
        match p(line) {
            Ok(c) => panic!("{line}: parsed as {c:?}"),
            Err(e) => {
                if e.try_help {
                    "TRY-HELP".to_owned()
                } else {
                    e.message
                }
            }
        }
    }

    fn tcp(vip: &str, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            vip: vip.parse().unwrap(),
            port,
        }
    }

    fn srv(addr: &str, port: u16, weight: u32, forward: Forward) -> Server {
        Server {
            address: addr.parse().unwrap(),
            port,
            weight,
            forward,
            upper: 0,
            lower: 0,
        }
    }

    fn add(key: ServiceKey, s: Scheduler, persist: Option<u32>) -> Command {
        Command::AddService(ServiceSpec {
            key,
            scheduler: s,
            flags: vec![],
            persistence: persist.map(|timeout| Persistence {
                timeout,
                netmask: Ipv4Addr::BROADCAST,
            }),
        })
    }

    fn list(what: ListWhat, f: impl FnOnce(&mut Format)) -> Command {
        let mut fmt = Format::default();
        f(&mut fmt);
        Command::List(what, fmt)
    }

    /// Every ipvsadm command of the seed documents, with `ipvsadm` replaced by `rvsadm` and
    /// the shell variables substituted (VIP=172.16.100.100, RIP1/2=172.16.100.10/11,
    /// CPORT=RPORT=80, TYPE=g).
    #[test]
    fn seed_commands_parse_to_the_expected_operations() {
        use Forward::*;
        use Scheduler::*;
        let s1 = tcp("192.168.161.184", 80);
        let cases: Vec<(&str, Command)> = vec![
            // 000: NAT with port mapping, DR, TUN.
            ("-A -t 192.168.161.184:80 -s wrr", add(s1, Wrr, None)),
            (
                "-a -t 192.168.161.184:80 -r 192.168.153.137:80 -m -w 5",
                Command::AddServer(s1, srv("192.168.153.137", 80, 5, Nat)),
            ),
            (
                "-a -t 192.168.161.184:80 -r 192.168.153.138:80 -m -w 4",
                Command::AddServer(s1, srv("192.168.153.138", 80, 4, Nat)),
            ),
            (
                "-a -t 192.168.161.184:80 -r 192.168.153.137:800 -m -w 3",
                Command::AddServer(s1, srv("192.168.153.137", 800, 3, Nat)),
            ),
            (
                "-a -t 192.168.161.184:80 -r 192.168.153.138:800 -m -w 2",
                Command::AddServer(s1, srv("192.168.153.138", 800, 2, Nat)),
            ),
            (
                "-a -t 192.168.161.184:80 -r 192.168.153.137:8080 -m",
                Command::AddServer(s1, srv("192.168.153.137", 8080, 1, Nat)),
            ),
            (
                "-a -t 192.168.161.184:80 -r 192.168.153.138:8080 -m",
                Command::AddServer(s1, srv("192.168.153.138", 8080, 1, Nat)),
            ),
            (
                "-a -t 192.168.161.184:80 -r 10.203.0.12:80 -g -w 3",
                Command::AddServer(s1, srv("10.203.0.12", 80, 3, Dr)),
            ),
            (
                "-a -t 192.168.161.184:80 -r 10.203.0.13:80 -g -w 2",
                Command::AddServer(s1, srv("10.203.0.13", 80, 2, Dr)),
            ),
            ("-ln", list(ListWhat::All, |f| f.numeric = true)),
            (
                "-A -t 20.0.0.2:80 -s rr",
                add(tcp("20.0.0.2", 80), Rr, None),
            ),
            (
                "-a -t 20.0.0.2:80 -r 10.0.0.2 -i",
                Command::AddServer(tcp("20.0.0.2", 80), srv("10.0.0.2", 80, 1, Tun)),
            ),
            (
                "-a -t 20.0.0.2:80 -r 10.0.0.6 -i",
                Command::AddServer(tcp("20.0.0.2", 80), srv("10.0.0.6", 80, 1, Tun)),
            ),
            // 001 (the seed's `-w 1#...` is a shell word that ipvsadm itself refuses).
            (
                "-A -t 192.168.150.100:80 -s rr",
                add(tcp("192.168.150.100", 80), Rr, None),
            ),
            (
                "-a -t 192.168.150.100:80 -r 192.168.150.12 -g -w 1",
                Command::AddServer(tcp("192.168.150.100", 80), srv("192.168.150.12", 80, 1, Dr)),
            ),
            (
                "-a -t 192.168.150.100:80 -r 192.168.150.13 -g -w 1",
                Command::AddServer(tcp("192.168.150.100", 80), srv("192.168.150.13", 80, 1, Dr)),
            ),
            ("-lnc", list(ListWhat::Connections, |f| f.numeric = true)),
            // 002: usage section, NAT, DR, scripts, persistence, fwmarks.
            (
                "-A -t 192.168.0.200:80 -s rr",
                add(tcp("192.168.0.200", 80), Rr, None),
            ),
            (
                "-a -t 192.168.0.200:80 -r 172.16.100.10 -m",
                Command::AddServer(tcp("192.168.0.200", 80), srv("172.16.100.10", 80, 1, Nat)),
            ),
            (
                "-a -t 192.168.0.200:80 -r 172.16.100.11 -m",
                Command::AddServer(tcp("192.168.0.200", 80), srv("172.16.100.11", 80, 1, Nat)),
            ),
            ("-L -n", list(ListWhat::All, |f| f.numeric = true)),
            (
                "-E -t 192.168.0.200:80 -s wrr",
                Command::EditService(ServiceSpec {
                    key: tcp("192.168.0.200", 80),
                    scheduler: Wrr,
                    flags: vec![],
                    persistence: None,
                }),
            ),
            (
                "-e -t 192.168.0.200:80 -r 172.16.100.10 -m -w 3",
                Command::EditServer(tcp("192.168.0.200", 80), srv("172.16.100.10", 80, 3, Nat)),
            ),
            (
                "-e -t 192.168.0.200:80 -r 172.16.100.11 -m -w 1",
                Command::EditServer(tcp("192.168.0.200", 80), srv("172.16.100.11", 80, 1, Nat)),
            ),
            ("-S", Command::Save { numeric: false }),
            ("-C", Command::Clear),
            ("-R", Command::Restore),
            (
                "-A -t 172.16.100.100:80 -s wlc",
                add(tcp("172.16.100.100", 80), Wlc, None),
            ),
            (
                "-a -t 172.16.100.100:80 -r 172.16.100.10 -g -w 2",
                Command::AddServer(tcp("172.16.100.100", 80), srv("172.16.100.10", 80, 2, Dr)),
            ),
            (
                "-a -t 172.16.100.100:80 -r 172.16.100.11 -g -w 1",
                Command::AddServer(tcp("172.16.100.100", 80), srv("172.16.100.11", 80, 1, Dr)),
            ),
            (
                "-a -t 172.16.100.100:80 -r 172.16.100.10:80 -g -w 2",
                Command::AddServer(tcp("172.16.100.100", 80), srv("172.16.100.10", 80, 2, Dr)),
            ),
            (
                "-d -t 172.16.100.100:80 -r 172.16.100.10:80",
                Command::DeleteServer(
                    tcp("172.16.100.100", 80),
                    "172.16.100.10".parse().unwrap(),
                    80,
                ),
            ),
            ("-Lcn", list(ListWhat::Connections, |f| f.numeric = true)),
            ("-L -c", list(ListWhat::Connections, |_| {})),
            (
                "-L --persistent-conn",
                list(ListWhat::All, |f| f.persistent_conn = true),
            ),
            (
                "-A -f 1 -s rr -p 3600",
                add(ServiceKey::Fwmark(1), Rr, Some(3600)),
            ),
            (
                "-a -f 1 -r 172.16.100.10 -g -w 2",
                Command::AddServer(ServiceKey::Fwmark(1), srv("172.16.100.10", 0, 2, Dr)),
            ),
            (
                "-E -t 172.16.100.100:80 -s rr -p 600",
                Command::EditService(ServiceSpec {
                    key: tcp("172.16.100.100", 80),
                    scheduler: Rr,
                    flags: vec![],
                    persistence: Some(Persistence {
                        timeout: 600,
                        netmask: Ipv4Addr::BROADCAST,
                    }),
                }),
            ),
            (
                "-A -t 172.16.100.100:23 -s rr",
                add(tcp("172.16.100.100", 23), Rr, None),
            ),
            (
                "-a -t 172.16.100.100:23 -r 172.16.100.10 -g -w 2",
                Command::AddServer(tcp("172.16.100.100", 23), srv("172.16.100.10", 23, 2, Dr)),
            ),
            (
                "-E -t 172.16.100.100:23 -s rr -p 3600",
                Command::EditService(ServiceSpec {
                    key: tcp("172.16.100.100", 23),
                    scheduler: Rr,
                    flags: vec![],
                    persistence: Some(Persistence {
                        timeout: 3600,
                        netmask: Ipv4Addr::BROADCAST,
                    }),
                }),
            ),
            (
                "-A -t 172.16.100.100:0 -s rr -p 600",
                add(tcp("172.16.100.100", 0), Rr, Some(600)),
            ),
            (
                "-a -t 172.16.100.100:0 -r 172.16.100.10 -g -w 2",
                Command::AddServer(tcp("172.16.100.100", 0), srv("172.16.100.10", 0, 2, Dr)),
            ),
            ("-A -f 8 -s rr", add(ServiceKey::Fwmark(8), Rr, None)),
            (
                "-A -f 8 -s rr -p 600",
                add(ServiceKey::Fwmark(8), Rr, Some(600)),
            ),
            (
                "-a -f 8 -r 172.16.100.11 -g -w 1",
                Command::AddServer(ServiceKey::Fwmark(8), srv("172.16.100.11", 0, 1, Dr)),
            ),
            ("-Z", Command::Zero(None)),
            (
                "-Z -t 172.16.100.100:80",
                Command::Zero(Some(tcp("172.16.100.100", 80))),
            ),
            (
                "-D -t 172.16.100.100:80",
                Command::DeleteService(tcp("172.16.100.100", 80)),
            ),
            // 003
            ("-v", Command::Version),
            (
                "-A -t 10.10.10.213:80 -s rr",
                add(tcp("10.10.10.213", 80), Rr, None),
            ),
            (
                "-a -t 10.10.10.213:80 -r 10.10.10.216:80 -g -w 1",
                Command::AddServer(tcp("10.10.10.213", 80), srv("10.10.10.216", 80, 1, Dr)),
            ),
            // 004: long options and listings.
            (
                "-A -t 192.168.1.2:80 -s wrr",
                add(tcp("192.168.1.2", 80), Wrr, None),
            ),
            (
                "-a -t 192.168.1.2:80 -r 192.168.2.10:80 -m -w 1",
                Command::AddServer(tcp("192.168.1.2", 80), srv("192.168.2.10", 80, 1, Nat)),
            ),
            (
                "--add-service --tcp-service 192.168.1.2:80 --scheduler wrr",
                add(tcp("192.168.1.2", 80), Wrr, None),
            ),
            (
                "--add-server --tcp-service 192.168.1.2:80 --real-server 192.168.2.10:80 --masquerading --weight 1",
                Command::AddServer(tcp("192.168.1.2", 80), srv("192.168.2.10", 80, 1, Nat)),
            ),
            (
                "-a -t 192.168.246.160:80 -r 192.168.246.161 -g",
                Command::AddServer(
                    tcp("192.168.246.160", 80),
                    srv("192.168.246.161", 80, 1, Dr),
                ),
            ),
            ("--save", Command::Save { numeric: false }),
            ("-S -n", Command::Save { numeric: true }),
            ("-Ln", list(ListWhat::All, |f| f.numeric = true)),
            (
                "-L -n --stats",
                list(ListWhat::All, |f| {
                    f.numeric = true;
                    f.stats = true
                }),
            ),
            (
                "-L -n --rate",
                list(ListWhat::All, |f| {
                    f.numeric = true;
                    f.rate = true
                }),
            ),
            (
                "-L -n --rate --exact",
                list(ListWhat::All, |f| {
                    f.numeric = true;
                    f.rate = true;
                    f.exact = true
                }),
            ),
            (
                "--list --numeric --connection",
                list(ListWhat::Connections, |f| f.numeric = true),
            ),
            ("-L --timeout", list(ListWhat::Timeout, |_| {})),
            (
                "-L -n -t 172.16.100.100:80",
                list(ListWhat::Service(tcp("172.16.100.100", 80)), |f| {
                    f.numeric = true
                }),
            ),
            (
                "--set 900 120 300",
                Command::SetTimeouts {
                    tcp: 900,
                    tcp_fin: 120,
                    udp: 300,
                },
            ),
            ("--clear", Command::Clear),
            ("-h", Command::Help),
            ("--version", Command::Version),
        ];
        for (line, want) in cases {
            assert_eq!(ok(line), want, "{line}");
        }
        // No arguments at all lists the table, as ipvsadm does.
        assert_eq!(parse(&[], &names()).unwrap(), list(ListWhat::All, |_| {}));
    }

    #[test]
    fn service_and_server_details_follow_ipvsadm() {
        // Named ports from /etc/services, host names from /etc/hosts.
        assert_eq!(
            ok("-A -t 10.0.0.100:http -s rr"),
            add(tcp("10.0.0.100", 80), Scheduler::Rr, None)
        );
        assert_eq!(
            ok("-a -t 10.0.0.100:www -r web1:http-alt -m"),
            Command::AddServer(
                tcp("10.0.0.100", 80),
                srv("10.0.0.11", 8080, 1, Forward::Nat)
            )
        );
        // DR and TUN take the service port whatever was given; NAT and FullNAT map ports.
        assert_eq!(
            ok("-a -t 10.0.0.100:80 -r 10.0.0.11:8080 -g"),
            Command::AddServer(tcp("10.0.0.100", 80), srv("10.0.0.11", 80, 1, Forward::Dr))
        );
        assert_eq!(
            ok("-a -t 10.0.0.100:80 -r 10.0.0.11:8080"),
            Command::AddServer(tcp("10.0.0.100", 80), srv("10.0.0.11", 80, 1, Forward::Dr))
        );
        // -b after -a is DPVS's FullNAT; thresholds.
        assert_eq!(
            ok("-a -t 10.0.0.100:80 -r 10.0.0.11:8080 -b -w 2 -x 100 -y 50"),
            Command::AddServer(
                tcp("10.0.0.100", 80),
                Server {
                    upper: 100,
                    lower: 50,
                    ..srv("10.0.0.11", 8080, 2, Forward::Fnat)
                }
            )
        );
        assert_eq!(
            ok("-e -t 10.0.0.100:80 -r 10.0.0.11:8080 --fullnat"),
            Command::EditServer(
                tcp("10.0.0.100", 80),
                srv("10.0.0.11", 8080, 1, Forward::Fnat)
            )
        );
        // -b after -A is ipvsadm's scheduler flags.
        assert_eq!(
            ok("-A -u 10.0.0.100:53 -s sh -b sh-port,sh-fallback"),
            Command::AddService(ServiceSpec {
                key: ServiceKey::Addr {
                    protocol: Protocol::Udp,
                    vip: "10.0.0.100".parse().unwrap(),
                    port: 53
                },
                scheduler: Scheduler::Sh,
                flags: vec![SchedFlag::ShPort, SchedFlag::ShFallback],
                persistence: None,
            })
        );
        assert_eq!(
            ok("-E -t 10.0.0.100:80 --sched-flags flag-1 -s dh"),
            Command::EditService(ServiceSpec {
                key: tcp("10.0.0.100", 80),
                scheduler: Scheduler::Dh,
                flags: vec![SchedFlag::ShFallback],
                persistence: None,
            })
        );
        // -p: alone 360, attached, long with =, netmask.
        let persist = |t: u32, m: &str| ServiceSpec {
            key: tcp("10.0.0.100", 80),
            scheduler: Scheduler::Wlc,
            flags: vec![],
            persistence: Some(Persistence {
                timeout: t,
                netmask: m.parse().unwrap(),
            }),
        };
        assert_eq!(
            ok("-A -t 10.0.0.100:80 -p"),
            Command::AddService(persist(360, "255.255.255.255"))
        );
        assert_eq!(
            ok("-A -t 10.0.0.100:80 -p -s wlc"),
            Command::AddService(persist(360, "255.255.255.255"))
        );
        assert_eq!(
            ok("-A -t 10.0.0.100:80 -p600"),
            Command::AddService(persist(600, "255.255.255.255"))
        );
        assert_eq!(
            ok("-A -t 10.0.0.100:80 --persistent=900 -M 255.255.255.0"),
            Command::AddService(persist(900, "255.255.255.0"))
        );
        // Attached arguments and bundles.
        assert_eq!(
            ok("-At10.0.0.100:80 -srr"),
            add(tcp("10.0.0.100", 80), Scheduler::Rr, None)
        );
        // FullNAT local addresses, DPVS style (-F accepted and ignored).
        assert_eq!(
            ok("-P -t 10.0.0.100:80 -z 10.0.1.10 -F dpdk0"),
            Command::AddLaddr(tcp("10.0.0.100", 80), "10.0.1.10".parse().unwrap())
        );
        assert_eq!(
            ok("--del-laddr -t 10.0.0.100:80 --laddr 10.0.1.10"),
            Command::DelLaddr(tcp("10.0.0.100", 80), "10.0.1.10".parse().unwrap())
        );
        assert_eq!(ok("-G"), Command::GetLaddr(None));
        assert_eq!(
            ok("--get-laddr -t 10.0.0.100:80"),
            Command::GetLaddr(Some(tcp("10.0.0.100", 80)))
        );
        // -d without a port uses the service port (no DR rewrite for delete).
        assert_eq!(
            ok("-d -t 10.0.0.100:80 -r 10.0.0.11"),
            Command::DeleteServer(tcp("10.0.0.100", 80), "10.0.0.11".parse().unwrap(), 80)
        );
        // Leftovers after `--` are arguments.
        assert_eq!(err("-L -- -n"), "unexpected argument -n");
        assert_eq!(
            ok("--set 0 0 60"),
            Command::SetTimeouts {
                tcp: 0,
                tcp_fin: 0,
                udp: 60
            }
        );
    }

    #[test]
    fn errors_are_ipvsadm_one_liners() {
        let cases = [
            ("-A -t 10.0.0.1:80 --bogus", "--bogus: unknown option"),
            ("-A -t 10.0.0.1:80 -K", "-K: unknown option"),
            ("--bogus", "TRY-HELP"),
            ("-n -L", "TRY-HELP"),
            (
                "-A -t 10.0.0.1:80 -s foo",
                "Scheduler or persistence engine not found",
            ),
            (
                "-a -t 10.0.0.1:80",
                "You need to supply the 'real-server' option for the 'add-server' command",
            ),
            (
                "-a -r 10.0.0.2",
                "You need to supply the 'service-address' option for the 'add-server' command",
            ),
            (
                "-A",
                "You need to supply the 'service-address' option for the 'add-service' command",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1",
                "illegal weight specified",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2 -w 70000",
                "illegal weight specified",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2 -w x",
                "illegal weight specified",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2 -x abc",
                "illegal u_threshold specified",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2 -y -5",
                "illegal l_threshold specified",
            ),
            (
                "-A -t 10.0.0.1:80 -p abc",
                "invalid timeout value `abc' specified",
            ),
            (
                "-A -t 10.0.0.1:80 -p 0",
                "invalid timeout value `0' specified",
            ),
            (
                "-A -t 10.0.0.1",
                "Zero port specified for non-persistent service",
            ),
            (
                "-E -t 10.0.0.1:0 -s rr",
                "Zero port specified for non-persistent service",
            ),
            (
                "-A -t 10.0.0.1:80 -u 10.0.0.1:53",
                "multiple 'service-address' options specified",
            ),
            (
                "-A -t 10.0.0.1:80 -f 3",
                "multiple 'service-address' options specified",
            ),
            (
                "-A -t 300.1.1.1:80",
                "illegal virtual server address[:port] specified",
            ),
            (
                "-A -t 10.0.0.1:nosuchport",
                "illegal virtual server address[:port] specified",
            ),
            (
                "-A -t 8080",
                "illegal virtual server address[:port] specified",
            ),
            (
                "-a -t 10.0.0.1:80 -r bad.host",
                "illegal real server address[:port] specified",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2 -g -m",
                "multiple 'forwarding-method' options specified",
            ),
            (
                "-A -t 10.0.0.1:80 -r 10.0.0.2",
                "Illegal 'real-server' option with the 'add-service' command",
            ),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.2 -s rr",
                "Illegal 'scheduler' option with the 'add-server' command",
            ),
            (
                "-D -t 10.0.0.1:80 -s rr",
                "Illegal 'scheduler' option with the 'delete-service' command",
            ),
            ("-C -n", "Illegal 'numeric' option with the 'flush' command"),
            (
                "-S -c",
                "Illegal 'connection' option with the 'save' command",
            ),
            (
                "-L -b",
                "Illegal 'forwarding-method' option with the 'list' command",
            ),
            (
                "-L -c -t 10.0.0.1:80",
                "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
            ),
            (
                "-L --timeout -c",
                "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
            ),
            ("-L -c --stats", "options conflicts in the list command"),
            (
                "-L --timeout --persistent-conn",
                "options conflicts in the list command",
            ),
            ("-A -L", "multiple commands specified"),
            ("-L -n -n", "multiple 'numeric' options specified"),
            ("--set 1 2", "--set option requires 3 timeout values"),
            ("--set 1 2 x", "invalid timeout value `x' specified"),
            ("--set 1 2 3 4", "unexpected argument 4"),
            ("-L extra", "unexpected argument extra"),
            (
                "-A -t 10.0.0.1:80 -s rr -b sh-port",
                "incompatible scheduler flag `sh-port'",
            ),
            (
                "-A -t 10.0.0.1:80 -s sh -b bogus",
                "invalid scheduler flag `bogus'",
            ),
            ("-A -f 0", "invalid fwmark value `0' specified"),
            ("-A -f x1", "invalid fwmark value `x1' specified"),
            (
                "-A -t 10.0.0.1:80 -p -M 1.2.3",
                "illegal virtual server persistent mask specified",
            ),
            (
                "-P -t 10.0.0.1:80",
                "You need to supply the 'local-address' option for the 'add-laddr' command",
            ),
            ("-P -t 10.0.0.1:80 -z nowhere", "illegal local address"),
            ("-A -t", "-t: missing argument"),
            ("-A --tcp-service", "--tcp-service: missing argument"),
            (
                "-A -t 10.0.0.1:80 --ops",
                "--ops: option not supported by rvsadm",
            ),
            (
                "-L --numeric=yes",
                "--numeric: option does not take an argument",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(err(line), want, "{line}");
        }
        // Exit codes: command-line errors 2 (ipvsadm's fail(2, ...)); an unknown scheduler is
        // refused like the kernel's ENOENT, with 1.
        assert_eq!(p("-a -t 10.0.0.1:80").unwrap_err().code, 2);
        assert_eq!(p("--bogus").unwrap_err().code, 2);
        assert_eq!(p("-A -t 10.0.0.1:80 -s foo").unwrap_err().code, 1);
    }

    #[test]
    fn words_split_like_the_restore_reader() {
        assert_eq!(
            words("  -A  -t 1.2.3.4:80\t-s rr  # comment"),
            ["-A", "-t", "1.2.3.4:80", "-s", "rr"]
        );
        assert!(words("# only a comment").is_empty());
        assert!(words("   ").is_empty());
    }
}
