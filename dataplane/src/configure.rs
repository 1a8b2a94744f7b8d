//! Configuration changes pushed by the control process: from a whole new profile to the next
//! snapshot, or a refusal that names what is wrong (nothing is applied then).
//!
//! What a running dataplane can change: services (with their servers, local addresses,
//! persistence, schedulers), firewall-mark rules and timeouts. Ports, routes, lcores, EAL
//! options and the control section are boot-time facts: a profile that changes them is refused
//! with the key to restore, since only a restart can apply them.

use std::sync::Arc;

use rvs_config::Profile;

use crate::snapshot::Snapshot;
use crate::wire::MacAddr;

/// A refused configuration: what is wrong and, when one is at fault, the key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// One line naming the problem.
    pub message: String,
    /// Key path at fault (`services[2].servers[0]`), when known.
    pub field: Option<String>,
}

/// The configuration the dataplane runs, and the generation it is known by.
#[derive(Debug)]
pub struct Running {
    profile: Profile,
    generation: u64,
    macs: Vec<MacAddr>,
}

impl Running {
    /// The boot configuration (generation 0) on ports with these MACs.
    pub fn new(profile: Profile, macs: Vec<MacAddr>) -> Running {
        Running {
            profile,
            generation: 0,
            macs,
        }
    }

    /// The profile in force.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Its generation (0 = as booted).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Checks `next` in full and builds its snapshot, carrying the neighbour MACs `current`
    /// knows. On success `next` is in force as `generation`; on refusal nothing changed.
    pub fn apply(
        &mut self,
        generation: u64,
        mut next: Profile,
        current: &Snapshot,
    ) -> Result<Arc<Snapshot>, Refusal> {
        next.normalize();
        next.validate().map_err(|e| Refusal {
            message: e.message.clone(),
            field: Some(e.path.clone()),
        })?;
        let boot_only = [
            (
                "dataplane",
                self.profile.dataplane == next.dataplane,
                "lcores, EAL options and flow-table sizes",
            ),
            ("ports", self.profile.ports == next.ports, "ports"),
            ("routes", self.profile.routes == next.routes, "routes"),
            (
                "control",
                self.profile.control == next.control,
                "the control section",
            ),
        ];
        for (key, same, what) in boot_only {
            if !same {
                return Err(Refusal {
                    message: format!(
                        "{what} cannot change while the dataplane runs; restart it with the new profile"
                    ),
                    field: Some(key.to_string()),
                });
            }
        }
        let snap = Snapshot::build(&next, &self.macs).map_err(|e| Refusal {
            message: e.to_string(),
            field: None,
        })?;
        snap.neigh.inherit(&current.neigh);
        self.profile = next;
        self.generation = generation;
        Ok(Arc::new(snap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"
dataplane: { main_lcore: 0, workers: [1] }
ports: [{ name: dp0, device: net_null0, addresses: ["10.0.0.10/24"] }]
services:
  - { vip: 10.0.0.100, port: 80, protocol: tcp, servers: [{ address: 10.0.0.11 }] }
"#;

    fn running() -> (Running, Arc<Snapshot>) {
        let p = Profile::parse(PROFILE, "t.yaml").unwrap();
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let snap = Arc::new(Snapshot::build(&p, &[mac]).unwrap());
        snap.neigh.set(0, Some(MacAddr([2, 0, 0, 0, 0, 11])));
        (Running::new(p, vec![mac]), snap)
    }

    #[test]
    fn a_valid_change_builds_a_snapshot_that_keeps_known_macs() {
        let (mut r, snap) = running();
        let mut next = r.profile().clone();
        let first = next.services[0].servers[0];
        next.services[0].servers.push(first);
        next.services[0].servers[1].address = "10.0.0.12".parse().unwrap();
        let s = r.apply(3, next, &snap).unwrap();
        assert_eq!(s.services[0].dests.len(), 2);
        assert_eq!(s.neigh.mac(0), Some(MacAddr([2, 0, 0, 0, 0, 11])));
        assert_eq!(s.neigh.mac(1), None);
        assert_eq!(r.generation(), 3);
    }

    #[test]
    fn invalid_or_boot_time_changes_are_refused_and_nothing_changes() {
        let (mut r, snap) = running();
        let mut bad = r.profile().clone();
        bad.services[0].servers[0].weight = 70_000;
        let e = r.apply(1, bad, &snap).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("services[0].servers[0].weight"));

        let mut ports = r.profile().clone();
        ports.ports[0].mtu = Some(9000);
        let e = r.apply(1, ports, &snap).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ports"));
        assert!(e.message.contains("restart"), "{}", e.message);

        let mut far = r.profile().clone();
        far.services[0].servers[0].address = "192.0.2.1".parse().unwrap();
        let e = r.apply(1, far, &snap).unwrap_err();
        assert!(e.message.contains("192.0.2.1"), "{}", e.message);
        assert_eq!(r.generation(), 0);
        assert_eq!(r.profile().services[0].servers[0].weight, 1);
    }
}
