//! The REST API's wire types (`/api/v1`), shared by the server and by `rvsadm`.
//!
//! Configuration objects are the profile's own types (`rvs_config::Service`, `Server`,
//! `Timeouts`, `FwmarkRule`, `Profile`): what `GET /api/v1/config` returns is exactly the YAML
//! profile's schema in JSON. The types here are the live views (counters, rates, connections,
//! health) and the error body.
//!
//! Resources:
//!
//! | method and path | body → answer |
//! |---|---|
//! | `GET /api/v1/services` | → `[Service]` (configured, as the profile) |
//! | `POST /api/v1/services` | `Service` → 201 `Service`; 409 when it exists (`-A`) |
//! | `DELETE /api/v1/services` | → 204, every service removed (`-C`) |
//! | `GET /api/v1/services/{id}` | → `Service` |
//! | `PUT /api/v1/services/{id}` | `Service` → `Service`; replaces it, servers included (`-E`) |
//! | `DELETE /api/v1/services/{id}` | → 204 (`-D`) |
//! | `GET /api/v1/services/{id}/servers` | → `[Server]` |
//! | `POST /api/v1/services/{id}/servers` | `Server` → 201; 409 when it exists (`-a`) |
//! | `PUT /api/v1/services/{id}/servers/{server}` | `Server` → `Server` (`-e`) |
//! | `DELETE /api/v1/services/{id}/servers/{server}` | → 204 (`-d`) |
//! | `GET /api/v1/services/{id}/local-addresses` | → `["10.0.1.10", …]` |
//! | `POST /api/v1/services/{id}/local-addresses` | `LocalAddress` → 201 (`--add-laddr`) |
//! | `DELETE /api/v1/services/{id}/local-addresses/{ip}` | → 204 (`--del-laddr`) |
//! | `GET /api/v1/fwmarks`, `PUT /api/v1/fwmarks` | `[FwmarkRule]` (the whole list) |
//! | `GET /api/v1/timeouts`, `PUT /api/v1/timeouts` | `Timeouts` (`--set`, `-L --timeout`) |
//! | `GET /api/v1/connections?offset=&limit=&templates=` | → `ConnPage` (`-L -c`) |
//! | `GET /api/v1/stats` | → `StatsView` (`-L --stats/--rate`, effective weights, counts) |
//! | `POST /api/v1/stats/zero?service={id}` | → 204 (`-Z`) |
//! | `GET /api/v1/health` | → `[HealthView]` |
//! | `GET /api/v1/config`, `PUT /api/v1/config` | `Profile` (atomic replace) |
//! | `GET /api/v1/openapi.json` | the OpenAPI document |
//! | `GET /healthz` | → `Healthz` |
//! | `GET /metrics` | Prometheus text |
//!
//! `{id}` is a service id (`tcp:10.0.0.100:80`, `udp:10.0.0.100:53`, `fwmark:8`, see
//! [`ServiceId`]); `{server}` is `address:port` (`10.0.0.11:80`).
//!
//! Errors are `4xx`/`5xx` with an [`ErrorBody`] naming the field at fault.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use rvs_config::{Forward, Protocol, SchedFlag, Scheduler, ServiceKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Default API base when neither `--api` nor `RVS_API` is given.
pub const DEFAULT_API: &str = "http://127.0.0.1:9180";

/// A service identity in a URL: `tcp:VIP:PORT`, `udp:VIP:PORT` or `fwmark:MARK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceId(pub ServiceKey);

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ServiceKey::Addr {
                protocol,
                vip,
                port,
            } => write!(f, "{}:{vip}:{port}", protocol.as_str()),
            ServiceKey::Fwmark(m) => write!(f, "fwmark:{m}"),
        }
    }
}

impl FromStr for ServiceId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("service id `{s}` is not `tcp:VIP:PORT`, `udp:VIP:PORT` or `fwmark:MARK`");
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind {
            "fwmark" => {
                let m: u32 = rest.parse().map_err(|_| bad())?;
                if m == 0 {
                    return Err(format!("service id `{s}`: mark 0 means \"no mark\""));
                }
                Ok(ServiceId(ServiceKey::Fwmark(m)))
            }
            "tcp" | "udp" => {
                let protocol = if kind == "tcp" {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                let sa: SocketAddrV4 = rest.parse().map_err(|_| bad())?;
                Ok(ServiceId(ServiceKey::Addr {
                    protocol,
                    vip: *sa.ip(),
                    port: sa.port(),
                }))
            }
            _ => Err(bad()),
        }
    }
}

impl Serialize for ServiceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ServiceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An error answer: what went wrong and, for a bad request, the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// One line naming the problem.
    pub error: String,
    /// Key path of the offending field (`servers[0].weight`), when one is at fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Body of `POST /services/{id}/local-addresses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalAddress {
    /// The FullNAT local address (LIP).
    #[schema(value_type = String, example = "10.0.1.10")]
    pub address: Ipv4Addr,
}

/// Traffic counters (ipvsadm `--stats`), cumulative since the last zeroing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub inpkts: u64,
    /// Packets server → client (seen only for NAT and FullNAT).
    pub outpkts: u64,
    /// Bytes client → server.
    pub inbytes: u64,
    /// Bytes server → client.
    pub outbytes: u64,
}

/// Rates (ipvsadm `--rate`), estimated as IPVS does: sampled every 2 s, smoothed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Packets per second in.
    pub inpps: u64,
    /// Packets per second out.
    pub outpps: u64,
    /// Bytes per second in.
    pub inbps: u64,
    /// Bytes per second out.
    pub outbps: u64,
}

/// Live view of one real server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerView {
    /// Address.
    #[schema(value_type = String)]
    pub address: Ipv4Addr,
    /// Port (0 = the client's destination port).
    pub port: u16,
    /// Forwarding mode.
    #[schema(value_type = String, example = "dr")]
    pub forward: Forward,
    /// Weight in effect (0 while a health check holds it quiesced).
    pub weight: u32,
    /// Weight as configured.
    pub config_weight: u32,
    /// Upper connection threshold.
    pub upper: u32,
    /// Lower connection threshold.
    pub lower: u32,
    /// Active connections (ESTABLISHED), summed over workers.
    pub active: u64,
    /// Inactive connections.
    pub inactive: u64,
    /// Persistence templates pointing at it.
    pub persistent: u64,
    /// Counters.
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
    /// Whether it is the sorry server standing in (not a configured server).
    #[serde(default)]
    pub sorry: bool,
}

/// Live view of one virtual service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServiceView {
    /// Service id (`tcp:10.0.0.100:80`).
    #[schema(value_type = String, example = "tcp:10.0.0.100:80")]
    pub id: ServiceId,
    /// Scheduler.
    #[schema(value_type = String, example = "wlc")]
    pub scheduler: Scheduler,
    /// Scheduler flags.
    #[schema(value_type = Vec<String>)]
    pub flags: Vec<SchedFlag>,
    /// Persistence timeout in seconds, when persistent.
    pub persistence_timeout: Option<u32>,
    /// Persistence netmask, when persistent.
    #[schema(value_type = Option<String>)]
    pub persistence_netmask: Option<Ipv4Addr>,
    /// FullNAT local addresses.
    #[schema(value_type = Vec<String>)]
    pub local_addresses: Vec<Ipv4Addr>,
    /// Counters (sum over its servers).
    pub stats: Stats,
    /// Rates.
    pub rates: Rates,
    /// Servers in list order, as the dataplane runs them.
    pub servers: Vec<ServerView>,
}

/// Counters of one worker lcore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerView {
    /// Worker index.
    pub worker: u32,
    /// Its lcore.
    pub lcore: u32,
    /// Named counters (`rx_packets`, `tx_packets`, `forwarded`, …).
    pub counters: std::collections::BTreeMap<String, u64>,
    /// Drops by reason (only reasons with a non-zero count).
    pub drops: std::collections::BTreeMap<String, u64>,
}

/// `GET /api/v1/stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatsView {
    /// Every service, in configuration order.
    pub services: Vec<ServiceView>,
    /// Totals over all services (ipvsadm's `--stats` has none; metrics and REST do).
    pub total: Stats,
    /// Total rates.
    pub total_rates: Rates,
    /// Per-worker counters.
    pub workers: Vec<WorkerView>,
    /// Configuration generation the dataplane runs.
    pub generation: u64,
}

/// One tracked connection or persistence template (`-L -c`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnView {
    /// `tcp` or `udp` (ipvsadm prints `TCP`/`UDP`); a template of a fwmark service is `ip`.
    pub protocol: String,
    /// Seconds until it expires.
    pub expires: u32,
    /// IPVS state name (`ESTABLISHED`, `SYN_RECV`, …; `NONE` for templates).
    pub state: String,
    /// Client address and port.
    #[schema(value_type = String, example = "10.0.0.1:40000")]
    pub client: SocketAddrV4,
    /// Virtual address and port the client used.
    #[schema(value_type = String, example = "10.0.0.100:80")]
    pub virtual_addr: SocketAddrV4,
    /// Real server.
    #[schema(value_type = String, example = "10.0.0.11:80")]
    pub destination: SocketAddrV4,
    /// FullNAT local address and port.
    #[schema(value_type = Option<String>)]
    pub local: Option<SocketAddrV4>,
    /// Whether this is a persistence template.
    pub template: bool,
    /// Worker that owns it.
    pub worker: u32,
}

/// `GET /api/v1/connections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnPage {
    /// This page.
    pub items: Vec<ConnView>,
    /// Offset of the next page, absent on the last one.
    pub next_offset: Option<u64>,
}

/// Health state of one checked server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerHealth {
    /// Address.
    #[schema(value_type = String)]
    pub address: Ipv4Addr,
    /// Port.
    pub port: u16,
    /// Whether it is considered up.
    pub up: bool,
    /// Consecutive successes (up to rise) or failures (up to fall).
    pub streak: u32,
    /// Last check's outcome in words (`connected`, `HTTP 503`, `timeout`, `exit 1`).
    pub last: String,
    /// Transitions so far.
    pub transitions: u64,
    /// Seconds since the last transition (or since checking began).
    pub since_secs: u64,
}

/// `GET /api/v1/health`: one entry per checked service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// Service id.
    #[schema(value_type = String)]
    pub service: ServiceId,
    /// Check kind (`tcp`, `http`, `script`).
    pub check: String,
    /// Whether the sorry server is standing in.
    pub sorry_active: bool,
    /// Servers.
    pub servers: Vec<ServerHealth>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Healthz {
    /// `ok` when both processes and the link are up, else `degraded`.
    pub status: String,
    /// The control process (always up when it answers).
    pub control: ProcessHealth,
    /// The dataplane, as seen through the shared memory.
    pub dataplane: ProcessHealth,
    /// The command/reply rings.
    pub ring: RingHealth,
}

/// One process in [`Healthz`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProcessHealth {
    /// Whether it is alive.
    pub up: bool,
    /// Its pid, when known.
    pub pid: Option<u32>,
    /// Milliseconds since its last heartbeat.
    pub heartbeat_age_ms: Option<u64>,
}

/// The ring link in [`Healthz`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RingHealth {
    /// Whether the last round trip succeeded.
    pub up: bool,
    /// Round-trip time of the last ping, microseconds.
    pub roundtrip_us: Option<u64>,
    /// Configuration generation the dataplane acknowledged last.
    pub generation: u64,
    /// Commands sent and replies received since attach.
    pub commands: u64,
    /// Commands the dataplane rejected.
    pub rejected: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ids_round_trip_and_reject_garbage() {
        for s in ["tcp:10.0.0.100:80", "udp:10.0.0.1:53", "fwmark:8"] {
            let id: ServiceId = s.parse().unwrap();
            assert_eq!(id.to_string(), s);
        }
        for s in [
            "tcp:10.0.0.100",
            "sctp:1.2.3.4:5",
            "fwmark:0",
            "fwmark:x",
            "",
        ] {
            assert!(s.parse::<ServiceId>().is_err(), "{s}");
        }
    }
}
