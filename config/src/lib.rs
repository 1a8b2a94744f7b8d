//! `rvs-config` owns the boot profile of RVS: the YAML file of SPEC §10 that describes the
//! appliance (EAL and lcores, ports, routes, timeouts, firewall-mark rules, services with their
//! real servers and health checks, and the control section), its typed model, and its complete
//! validation.
//!
//! The model is the contract between the two processes: `rvs-dataplane` boots from a
//! [`Profile`], `rvs-control` reads the same file for its `control` section and serves the same
//! schema as `GET /api/v1/config`. Neither process depends on the other; both depend on this
//! crate, which depends on neither (no DPDK, no I/O beyond reading the file).
//!
//! Entry points: [`Profile::load`] (read, parse, validate), [`Profile::parse`] (the same from a
//! string) and [`Profile::to_yaml`] (the inverse). Every error is a [`ConfigError`] naming the
//! key path (`services[0].servers[1].weight`) and, for text, the line of that key.
//!
//! ```
//! use rvs_config::{Forward, Profile};
//!
//! let text = "\
//! dataplane: { main_lcore: 0, workers: [1, 2] }
//! ports:
//!   - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
//! services:
//!   - vip: 10.0.0.100
//!     port: 80
//!     protocol: tcp
//!     servers:
//!       - { address: 10.0.0.11 }
//! ";
//! let profile = Profile::parse(text, "rvs.yaml")?;
//! let server = &profile.services[0].servers[0];
//! assert_eq!((server.port, server.weight, server.forward), (80, 1, Forward::Dr));
//! assert_eq!(profile.services[0].key().to_string(), "TCP 10.0.0.100:80");
//!
//! let bad = text.replace("{ address: 10.0.0.11 }", "{ address: 10.0.0.11, weight: 70000 }");
//! let err = Profile::parse(&bad, "rvs.yaml").unwrap_err();
//! assert_eq!((err.line, err.path.as_str()), (Some(9), "services[0].servers[0].weight"));
//! assert_eq!(
//!     err.to_string(),
//!     "rvs.yaml:9: services[0].servers[0].weight: weight 70000 is not in 0..=65535"
//! );
//! # Ok::<(), rvs_config::ConfigError>(())
//! ```
//!
//! Invariants a change must keep:
//! * a parsed profile is *normalized*: defaults that depend on other keys are filled in (a
//!   server's omitted port is its service's port, an http check has its path and status), so
//!   consumers never re-derive them;
//! * `Profile::parse(&p.to_yaml(), ..) == Ok(p)` for every valid profile `p`;
//! * unknown keys are errors at every level.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod locate;
mod model;
mod net;
mod validate;

use std::path::Path;

pub use error::ConfigError;
pub use locate::LineMap;
pub use model::{
    Control, DEFAULT_DESCRIPTORS, DEFAULT_FLOWS_PER_WORKER, DEFAULT_HTTP_PATH, DEFAULT_HTTP_STATUS,
    DEFAULT_LISTEN, DEFAULT_PERSISTENCE_TIMEOUT, DEFAULT_SHM, Dataplane, Forward, FwmarkRule,
    HealthCheck, HealthCheckKind, MAX_THRESHOLD, MAX_TIMEOUT, MAX_WEIGHT, OnFailure, Persistence,
    Port, Profile, Protocol, Route, SchedFlag, Scheduler, Server, Service, ServiceKey, Timeouts,
    Tunnel, TunnelKind,
};
pub use net::{Ipv4Prefix, PortRange};
pub use validate::{
    MAX_DESCRIPTORS, MAX_FLOWS_PER_WORKER, MAX_LCORE, MAX_MTU, MAX_PORT_NAME, MIN_DESCRIPTORS,
    MIN_FLOWS_PER_WORKER, MIN_MTU,
};

impl Profile {
    /// Reads, parses and validates the profile at `path`; errors name the file.
    pub fn load(path: &Path) -> Result<Profile, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::io(&origin, &e))?;
        Profile::parse(&text, &origin)
    }

    /// Parses and validates profile text; `origin` names it in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ConfigError> {
        let lines = LineMap::build(text);
        let mut profile: Profile = serde_yaml::from_str(text)
            .map_err(|e| ConfigError::from_yaml(origin, &e, Some(&lines)))?;
        profile.normalize();
        validate::validate(&profile).map_err(|e| e.locate(origin, Some(&lines)))?;
        Ok(profile)
    }

    /// Serializes the profile in the profile schema (the inverse of [`Profile::parse`]).
    pub fn to_yaml(&self) -> String {
        // The model holds only strings, numbers, sequences and maps with string keys, which
        // serde_yaml always serializes.
        serde_yaml::to_string(self).unwrap_or_else(|e| format!("# unserializable profile: {e}\n"))
    }

    /// Fills the defaults that depend on other keys, as [`Profile::parse`] does: a server
    /// without a port (or with port 0) gets its service's port, as ipvsadm does (it stays 0 for
    /// port-0 and fwmark services, meaning "the client's destination port"); a health check
    /// gets its kind's defaults. Call it on a profile built by other means (e.g. from JSON)
    /// before [`Profile::validate`].
    pub fn normalize(&mut self) {
        for s in &mut self.services {
            let service_port = if s.fwmark.is_some() {
                0
            } else {
                s.port.unwrap_or(0)
            };
            for srv in &mut s.servers {
                if srv.port == 0 {
                    srv.port = service_port;
                }
            }
            if let Some(hc) = &mut s.health_check {
                hc.normalize();
            }
        }
    }

    /// Validates a normalized profile built without text (e.g. from an API request). The
    /// error has no line and `profile` as its origin.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self).map_err(|e| e.locate("profile", None))
    }

    /// Every service key, in profile order.
    pub fn service_keys(&self) -> impl Iterator<Item = ServiceKey> + '_ {
        self.services.iter().map(Service::key)
    }
}
