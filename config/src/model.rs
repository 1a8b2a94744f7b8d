//! The typed boot profile (SPEC §10 "Profile keys"): one Rust type per YAML mapping, field
//! names equal to the YAML keys, serde defaults equal to the documented defaults.
//!
//! Every mapping denies unknown keys, so a typo is an error rather than a silently ignored
//! setting. These types are the schema: `GET /api/v1/config` returns them too, so renaming a
//! field is a breaking change of both the profile and the API.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::net::{self, Ipv4Prefix, PortRange};

/// Reads an optional list or section, taking YAML null (`routes:` with every entry
/// commented out) as its default rather than as a type error.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The whole boot profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// EAL arguments and lcore layout.
    pub dataplane: Dataplane,
    /// The NIC ports the dataplane owns (at least one).
    pub ports: Vec<Port>,
    /// Static routes; connected prefixes come from the port addresses.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub routes: Vec<Route>,
    /// Connection timeouts (`ipvsadm --set tcp tcpfin udp`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub timeouts: Timeouts,
    /// Firewall-mark rules: (protocol, destination, ports) → mark.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub fwmarks: Vec<FwmarkRule>,
    /// Virtual services.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub services: Vec<Service>,
    /// The control process: shared memory, REST listen address, token.
    #[serde(default, deserialize_with = "null_as_default")]
    pub control: Control,
}

/// Default flow-table capacity per worker.
pub const DEFAULT_FLOWS_PER_WORKER: u32 = 1 << 20;

/// `dataplane:` — EAL arguments and lcores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Dataplane {
    /// Extra EAL arguments, passed through (the lcore list is built from `main_lcore` and
    /// `workers`, so `-l`/`-c`/`--lcores`/`--main-lcore` are refused here).
    #[serde(default, deserialize_with = "null_as_default")]
    pub eal: Vec<String>,
    /// The main lcore (control ring, timers, ARP, stats).
    pub main_lcore: u32,
    /// Worker lcores; one rx/tx queue per worker per port.
    pub workers: Vec<u32>,
    /// Flow-table capacity per worker.
    #[serde(default = "default_flows_per_worker")]
    pub flows_per_worker: u32,
    /// Let lcores beyond the machine's CPU count share CPUs (lcore L runs on CPU L mod N).
    /// For labs and tests on small machines; poll-mode lcores sharing a CPU halve each other.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub share_cpus: bool,
}

fn default_flows_per_worker() -> u32 {
    DEFAULT_FLOWS_PER_WORKER
}

/// One entry of `ports:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Short name (`dp0`), `[a-zA-Z0-9_-]`, unique.
    pub name: String,
    /// DPDK device: vdev devargs (`net_af_packet0,iface=d0`) or a PCI address.
    pub device: String,
    /// The director's own addresses on this port (DIPs) with their connected prefixes.
    pub addresses: Vec<Ipv4Prefix>,
    /// MTU, 68..=9600; the device default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub mtu: Option<u16>,
    /// Descriptors of each rx queue (for `net_af_xdp`: the AF_XDP socket's rx ring), a power
    /// of two in 64..=16384; [`DEFAULT_DESCRIPTORS`] when absent. Boot-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 64, maximum = 16384))]
    pub rx_descriptors: Option<u16>,
    /// Descriptors of each tx queue, a power of two in 64..=16384; [`DEFAULT_DESCRIPTORS`]
    /// when absent. Boot-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 64, maximum = 16384))]
    pub tx_descriptors: Option<u16>,
}

/// Descriptors per rx or tx queue when `rx_descriptors` / `tx_descriptors` is absent.
pub const DEFAULT_DESCRIPTORS: u16 = 1024;

impl Port {
    /// Descriptors per rx queue: `rx_descriptors` or [`DEFAULT_DESCRIPTORS`].
    pub fn rx_descriptors(&self) -> u16 {
        self.rx_descriptors.unwrap_or(DEFAULT_DESCRIPTORS)
    }

    /// Descriptors per tx queue: `tx_descriptors` or [`DEFAULT_DESCRIPTORS`].
    pub fn tx_descriptors(&self) -> u16 {
        self.tx_descriptors.unwrap_or(DEFAULT_DESCRIPTORS)
    }
}

/// One entry of `routes:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix (host bits zero); `0.0.0.0/0` is the default route.
    pub prefix: Ipv4Prefix,
    /// Gateway; must be inside a connected prefix.
    #[serde(with = "net::ipv4")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub via: Ipv4Addr,
}

/// Largest timeout in seconds: ipvsadm's limit, `INT_MAX / HZ` with HZ = 1000.
pub const MAX_TIMEOUT: u32 = 2_147_483;

/// `timeouts:` — the three timeouts `ipvsadm --set` changes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// TCP ESTABLISHED (default 900).
    #[serde(default = "default_tcp")]
    pub tcp: u32,
    /// TCP FIN_WAIT (default 120).
    #[serde(default = "default_tcp_fin")]
    pub tcp_fin: u32,
    /// UDP (default 300).
    #[serde(default = "default_udp")]
    pub udp: u32,
}

fn default_tcp() -> u32 {
    900
}
fn default_tcp_fin() -> u32 {
    120
}
fn default_udp() -> u32 {
    300
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: default_tcp(),
            tcp_fin: default_tcp_fin(),
            udp: default_udp(),
        }
    }
}

/// One entry of `fwmarks:` — packets of `protocol` to `destination` on one of `ports` carry
/// `mark`. Rules of different marks never overlap (the validator refuses it), so the
/// dataplane may match them in any order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FwmarkRule {
    /// The mark, 1..=u32::MAX.
    pub mark: u32,
    /// Protocol matched; all rules of one mark agree on it.
    pub protocol: Protocol,
    /// Destination prefix (host bits zero).
    pub destination: Ipv4Prefix,
    /// Destination ports or ranges, non-empty.
    pub ports: Vec<PortRange>,
}

/// Transport protocol of a service or mark rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (`-t`).
    Tcp,
    /// UDP (`-u`).
    Udp,
}

impl Protocol {
    /// The YAML name: `tcp` / `udp`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// The name ipvsadm prints: `TCP` / `UDP`.
    pub const fn ipvsadm_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }

    /// The IP protocol number (6 / 17).
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `services:` — a virtual service.
///
/// Either `vip`, `port` and `protocol` are all set (an address service), or `fwmark` alone
/// (a firewall-mark service); the validator enforces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Virtual IP.
    #[serde(
        default,
        with = "net::ipv4::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub vip: Option<Ipv4Addr>,
    /// Virtual port; 0 = every port of the VIP (needs persistence, as in IPVS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub port: Option<u16>,
    /// Protocol of an address service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Mark of a firewall-mark service; must be defined in `fwmarks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// Scheduler (default `wlc`, as IPVS).
    #[serde(default)]
    pub scheduler: Scheduler,
    /// Scheduler flags (`sh-port`, `sh-fallback`; sh only).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub flags: Vec<SchedFlag>,
    /// Persistence (`-p`/`-M`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// FullNAT local-address pool (LIPs); required when a server uses `fnat`.
    #[serde(
        default,
        with = "net::ipv4::vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub local_addresses: Vec<Ipv4Addr>,
    /// Fallback server taking traffic when no real server is alive.
    #[serde(
        default,
        with = "net::socket_v4_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub sorry_server: Option<SocketAddrV4>,
    /// Health check applied to every server of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Encapsulation of its `tun` servers (default IP-in-IP), as ipvsadm's `--tun-type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    /// Real servers (may be empty, as in IPVS).
    #[serde(default, deserialize_with = "null_as_default")]
    pub servers: Vec<Server>,
}

/// Identity of a virtual service, as ipvsadm names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// `-t|-u VIP:port`.
    Addr {
        /// Protocol.
        protocol: Protocol,
        /// Virtual IP.
        vip: Ipv4Addr,
        /// Virtual port (0 = all ports).
        port: u16,
    },
    /// `-f mark`.
    Fwmark(u32),
}

impl fmt::Display for ServiceKey {
    /// `TCP 10.0.0.100:80`, `UDP 10.0.0.100:53`, `FWM 8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => write!(f, "{} {vip}:{port}", protocol.ipvsadm_name()),
            ServiceKey::Fwmark(m) => write!(f, "FWM {m}"),
        }
    }
}

impl Service {
    /// The service's identity. Meant for a validated service; on an unvalidated one a set
    /// `fwmark` wins and missing address parts read as `tcp`, `0.0.0.0` and port 0.
    pub fn key(&self) -> ServiceKey {
        match self.fwmark {
            Some(m) => ServiceKey::Fwmark(m),
            None => ServiceKey::Addr {
                protocol: self.protocol.unwrap_or(Protocol::Tcp),
                vip: self.vip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                port: self.port.unwrap_or(0),
            },
        }
    }

    /// Whether any server forwards with FullNAT (which needs `local_addresses`).
    pub fn uses_fnat(&self) -> bool {
        self.servers.iter().any(|s| s.forward == Forward::Fnat)
    }
}

/// The ten IPVS schedulers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(rename_all = "lowercase"))]
#[serde(into = "&'static str")]
pub enum Scheduler {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection (the IPVS default).
    #[default]
    Wlc,
    /// Locality-based least connection.
    Lblc,
    /// Locality-based least connection with replication.
    Lblcr,
    /// Destination hashing.
    Dh,
    /// Source hashing.
    Sh,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
}

impl Scheduler {
    /// All schedulers, in the order ipvsadm's man page lists them.
    pub const ALL: [Scheduler; 10] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
    ];

    /// The IPVS name (`wlc`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scheduler {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Scheduler::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Scheduler::ALL.iter().map(|x| x.as_str()).collect();
                format!("unknown scheduler `{s}` (valid: {})", names.join(", "))
            })
    }
}

impl From<Scheduler> for &'static str {
    fn from(s: Scheduler) -> Self {
        s.as_str()
    }
}

impl<'de> Deserialize<'de> for Scheduler {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        net::deserialize_parsed(
            d,
            "a scheduler name (rr wrr lc wlc lblc lblcr dh sh sed nq)",
        )
    }
}

/// Scheduler flags (`-b`), meaningful to `sh` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(rename_all = "kebab-case"))]
#[serde(into = "&'static str")]
pub enum SchedFlag {
    /// `sh-port`: hash the source port too.
    ShPort,
    /// `sh-fallback`: rehash to the next available server instead of dropping.
    ShFallback,
}

impl SchedFlag {
    /// All flags.
    pub const ALL: [SchedFlag; 2] = [SchedFlag::ShPort, SchedFlag::ShFallback];

    /// The ipvsadm name (`sh-port`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SchedFlag::ShPort => "sh-port",
            SchedFlag::ShFallback => "sh-fallback",
        }
    }
}

impl fmt::Display for SchedFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchedFlag {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        SchedFlag::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown scheduler flag `{s}` (valid: sh-port, sh-fallback)"))
    }
}

impl From<SchedFlag> for &'static str {
    fn from(s: SchedFlag) -> Self {
        s.as_str()
    }
}

impl<'de> Deserialize<'de> for SchedFlag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        net::deserialize_parsed(d, "a scheduler flag (sh-port, sh-fallback)")
    }
}

/// Default persistence timeout in seconds (ipvsadm's library default).
pub const DEFAULT_PERSISTENCE_TIMEOUT: u32 = 360;

/// `persistence:` — `-p timeout -M netmask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    /// Template timeout in seconds (default 360).
    #[serde(default = "default_persistence_timeout")]
    pub timeout: u32,
    /// Client netmask grouping clients onto one template (default /32).
    #[serde(default = "default_netmask", with = "net::ipv4")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub netmask: Ipv4Addr,
}

fn default_persistence_timeout() -> u32 {
    DEFAULT_PERSISTENCE_TIMEOUT
}
fn default_netmask() -> Ipv4Addr {
    Ipv4Addr::BROADCAST
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            timeout: DEFAULT_PERSISTENCE_TIMEOUT,
            netmask: Ipv4Addr::BROADCAST,
        }
    }
}

/// `health_check:` — keepalived's job, done by rvs-control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// YAML key `type`: `tcp`, `http` or `script`.
    #[serde(rename = "type")]
    pub kind: HealthCheckKind,
    /// HTTP path (http only; `/` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Expected HTTP status (http only; 200 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub status: Option<u16>,
    /// Command to run (script only; required there). Exit status 0 = healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Port to check instead of the server's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub port: Option<u16>,
    /// Seconds between checks (default 2).
    #[serde(default = "default_interval")]
    pub interval: u32,
    /// Seconds a check may take (default 1, at most `interval`).
    #[serde(default = "default_check_timeout")]
    pub timeout: u32,
    /// Consecutive successes that bring a server back (default 2).
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take a server out (default 3).
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// What happens to a failed server (quiesce when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<OnFailure>,
}

fn default_interval() -> u32 {
    2
}
fn default_check_timeout() -> u32 {
    1
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}

/// Default HTTP status a health check expects.
pub const DEFAULT_HTTP_STATUS: u16 = 200;
/// Default HTTP path a health check requests.
pub const DEFAULT_HTTP_PATH: &str = "/";

impl HealthCheck {
    /// A check of `kind` with every default filled in.
    pub fn new(kind: HealthCheckKind) -> Self {
        let mut hc = HealthCheck {
            kind,
            path: None,
            status: None,
            script: None,
            port: None,
            interval: default_interval(),
            timeout: default_check_timeout(),
            rise: default_rise(),
            fall: default_fall(),
            on_failure: None,
        };
        hc.normalize();
        hc
    }

    /// The effective failure action (`on_failure` or quiesce).
    pub fn on_failure(&self) -> OnFailure {
        self.on_failure.unwrap_or_default()
    }

    /// Fills the kind-dependent defaults (http path and status, the failure action).
    pub fn normalize(&mut self) {
        if self.kind == HealthCheckKind::Http {
            self.path
                .get_or_insert_with(|| DEFAULT_HTTP_PATH.to_owned());
            self.status.get_or_insert(DEFAULT_HTTP_STATUS);
        }
        self.on_failure.get_or_insert_with(OnFailure::default);
    }
}

/// Kind of health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// TCP connect.
    Tcp,
    /// HTTP GET, expecting `status`.
    Http,
    /// Run `script`; exit 0 = healthy.
    Script,
}

impl HealthCheckKind {
    /// The YAML name.
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthCheckKind::Tcp => "tcp",
            HealthCheckKind::Http => "http",
            HealthCheckKind::Script => "script",
        }
    }
}

/// What a failing server gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Weight set to 0: no new connections, existing ones continue.
    #[default]
    Quiesce,
    /// Removed from the service.
    Remove,
}

/// Largest server weight ipvsadm accepts.
pub const MAX_WEIGHT: u32 = 65_535;
/// Largest connection threshold ipvsadm accepts (`INT_MAX`).
pub const MAX_THRESHOLD: u32 = i32::MAX as u32;

/// `tunnel:` of a service — how `tun` servers are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Tunnel {
    /// Encapsulation.
    #[serde(rename = "type")]
    pub kind: TunnelKind,
    /// UDP destination port (GUE only; required there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub port: Option<u16>,
}

/// Tunnel encapsulation (ipvsadm `--tun-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    /// IP-in-IP (protocol 4), the default.
    #[default]
    Ipip,
    /// GRE (protocol 47) carrying IPv4.
    Gre,
    /// Generic UDP Encapsulation (a 4-byte GUE header over UDP) carrying IPv4.
    Gue,
}

/// One entry of `servers:` — a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Real-server IP.
    #[serde(with = "net::ipv4")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub address: Ipv4Addr,
    /// Real-server port. Absent (or 0) means the service port, as in ipvsadm; for port-0 and
    /// fwmark services it stays 0 = "the client's destination port".
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(maximum = 65535))]
    pub port: u16,
    /// Weight 0..=65535 (default 1); 0 quiesces.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Forwarding mode (default `dr`).
    #[serde(default)]
    pub forward: Forward,
    /// Upper connection threshold (`-x`), 0 = none.
    #[serde(default)]
    pub upper: u32,
    /// Lower connection threshold (`-y`), 0 = ¾ of upper.
    #[serde(default)]
    pub lower: u32,
}

fn default_weight() -> u32 {
    1
}

/// Forwarding mode of a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// Direct routing (`-g`, the default).
    #[default]
    Dr,
    /// IP-in-IP tunnel (`-i`).
    Tun,
    /// NAT / masquerading (`-m`).
    Nat,
    /// FullNAT (`-b`, as DPVS).
    Fnat,
}

impl Forward {
    /// The YAML name (`dr`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Forward::Dr => "dr",
            Forward::Tun => "tun",
            Forward::Nat => "nat",
            Forward::Fnat => "fnat",
        }
    }

    /// The name ipvsadm prints in its Forward column.
    pub const fn ipvsadm_name(self) -> &'static str {
        match self {
            Forward::Dr => "Route",
            Forward::Tun => "Tunnel",
            Forward::Nat => "Masq",
            Forward::Fnat => "FullNat",
        }
    }

    /// Whether IPVS keeps the destination port (DR and TUN cannot map ports).
    pub const fn keeps_port(self) -> bool {
        matches!(self, Forward::Dr | Forward::Tun)
    }
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default shared-memory file.
pub const DEFAULT_SHM: &str = "/dev/shm/rvs";
/// Default REST listen address.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9180));

/// `control:` — how the two processes meet and where the API listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Shared-memory file between the two processes (absolute).
    #[serde(default = "default_shm")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub shm: PathBuf,
    /// REST API listen address.
    #[serde(default = "default_listen", with = "net::socket")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub listen: SocketAddr,
    /// Bearer-token file (absolute); without it the API accepts loopback only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub token_file: Option<PathBuf>,
}

fn default_shm() -> PathBuf {
    PathBuf::from(DEFAULT_SHM)
}
fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN
}

impl Default for Control {
    fn default() -> Self {
        Control {
            shm: default_shm(),
            listen: DEFAULT_LISTEN,
            token_file: None,
        }
    }
}
