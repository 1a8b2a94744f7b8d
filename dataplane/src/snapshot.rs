//! The configuration snapshot: an immutable, hot-path-friendly view of the profile.
//!
//! Built once off the hot path from a validated [`Profile`] and the ports' MAC addresses, then
//! shared read-only by every worker (`Arc`). Lookups a worker does per packet are on sorted
//! arrays (services by (protocol, VIP, port)) or short slices (own addresses); nothing here
//! allocates or locks after construction.

use std::net::Ipv4Addr;
use std::sync::Arc;

use rvs_config::{Forward, Ipv4Prefix, Profile, Protocol, Scheduler, ServiceKey, Timeouts};

use crate::neigh::NeighTable;
use crate::sched::DestLoad;
use crate::wire::{MacAddr, ip_proto};

/// A port as workers see it.
#[derive(Debug, Clone)]
pub struct PortView {
    /// Profile name.
    pub name: String,
    /// The port's MAC.
    pub mac: MacAddr,
    /// Director addresses (DIPs) with their connected prefixes.
    pub addresses: Vec<Ipv4Prefix>,
    /// Addresses this port answers ARP for: its DIPs and the VIPs and local addresses inside
    /// its prefixes.
    pub arp_addresses: Vec<Ipv4Addr>,
    /// MTU (the profile's, or 1500).
    pub mtu: u16,
}

impl PortView {
    /// This port's DIP on the prefix that contains `ip`, if any (longest prefix).
    pub fn source_for(&self, ip: Ipv4Addr) -> Option<Ipv4Addr> {
        self.addresses
            .iter()
            .filter(|p| p.contains(ip))
            .max_by_key(|p| p.len)
            .map(|p| p.addr)
    }
}

/// A real server as workers see it.
#[derive(Debug, Clone, Copy)]
pub struct Dest {
    /// Real-server address.
    pub addr: Ipv4Addr,
    /// Real-server port.
    pub port: u16,
    /// Configured weight.
    pub weight: u32,
    /// Forwarding mode.
    pub forward: Forward,
    /// Index of the egress port.
    pub out_port: u16,
    /// Slot of its next hop in the neighbour table (itself when on-link, else the gateway).
    pub neigh: u32,
    /// Upper connection threshold (0 = none).
    pub upper: u32,
    /// Lower connection threshold.
    pub lower: u32,
}

/// How to reach an address: out of which port, to which neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// Through a gateway whose MAC is in this neighbour slot.
    Gateway {
        /// Egress port.
        port: u16,
        /// Neighbour slot of the gateway.
        neigh: u32,
    },
    /// On-link: the address itself is the next hop.
    OnLink {
        /// Egress port.
        port: u16,
    },
}

#[derive(Debug, Clone, Copy)]
struct RouteView {
    prefix: Ipv4Prefix,
    port: u16,
    neigh: u32,
}

/// A virtual service as workers see it.
#[derive(Debug, Clone)]
pub struct ServiceView {
    /// ipvsadm identity.
    pub key: ServiceKey,
    /// IP protocol number.
    pub proto: u8,
    /// Virtual address.
    pub vip: Ipv4Addr,
    /// Virtual port.
    pub port: u16,
    /// Scheduler.
    pub scheduler: Scheduler,
    /// Real servers in list order.
    pub dests: Vec<Dest>,
    /// Scheduler flags.
    pub flags: Vec<rvs_config::SchedFlag>,
    /// FullNAT local addresses: indexes into [`Snapshot::lips`].
    pub lips: Vec<u16>,
    /// Firewall mark of a `-f` service.
    pub fwmark: Option<u32>,
    /// Persistence: template timeout (seconds) and client netmask (host order).
    pub persistence: Option<(u32, u32)>,
    /// Encapsulation of `tun` servers and GUE's UDP port.
    pub tunnel: (rvs_config::TunnelKind, u16),
}

impl ServiceView {
    /// The scheduler's initial view of the servers.
    pub fn loads(&self) -> Vec<DestLoad> {
        self.dests
            .iter()
            .map(|d| DestLoad::with_weight(d.weight))
            .collect()
    }
}

/// Why a validated profile cannot run on this dataplane build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// A real server or next hop is not reachable through any port.
    #[error("{what}: {addr} is not on any port's connected prefix")]
    Unreachable {
        /// The service or server concerned.
        what: String,
        /// The address.
        addr: Ipv4Addr,
    },
}

/// Everything a worker needs, immutable.
#[derive(Debug)]
pub struct Snapshot {
    /// Ports in profile order (index = port index everywhere in the dataplane).
    pub ports: Vec<PortView>,
    /// Services in profile order.
    pub services: Vec<ServiceView>,
    /// (key, service index), sorted by key, for lookups.
    index: Vec<(u64, u16)>,
    /// Every director address (DIPs and VIPs).
    pub local: Vec<Ipv4Addr>,
    /// Connection timeouts.
    pub timeouts: Timeouts,
    /// Neighbour slots for every next hop the services need.
    pub neigh: Arc<NeighTable>,
    /// Every FullNAT local address of every service (deduplicated).
    pub lips: Vec<Ipv4Addr>,
    routes: Vec<RouteView>,
    /// Mark rules: (protocol, destination, ports, mark), in profile order.
    marks: Vec<MarkRule>,
    /// (mark, service index), sorted.
    mark_index: Vec<(u32, u16)>,
}

type MarkRule = (u8, Ipv4Prefix, Vec<rvs_config::PortRange>, u32);

#[inline]
fn service_key(proto: u8, vip: Ipv4Addr, port: u16) -> u64 {
    u64::from(proto) << 48 | u64::from(vip.to_bits()) << 16 | u64::from(port)
}

fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => ip_proto::TCP,
        Protocol::Udp => ip_proto::UDP,
    }
}

impl Snapshot {
    /// Builds the snapshot from a validated profile and the MAC of each port (profile order).
    pub fn build(profile: &Profile, macs: &[MacAddr]) -> Result<Snapshot, SnapshotError> {
        let mut ports: Vec<PortView> = profile
            .ports
            .iter()
            .zip(macs)
            .map(|(p, &mac)| PortView {
                name: p.name.clone(),
                mac,
                addresses: p.addresses.clone(),
                arp_addresses: p.addresses.iter().map(|a| a.addr).collect(),
                mtu: p.mtu.unwrap_or(1500),
            })
            .collect();
        let mut local: Vec<Ipv4Addr> = ports.iter().flat_map(|p| p.arp_addresses.clone()).collect();
        let mut neigh_entries: Vec<(Ipv4Addr, u16)> = Vec::new();
        let mut slot_of = |ip: Ipv4Addr, port: u16| -> u32 {
            match neigh_entries.iter().position(|&e| e == (ip, port)) {
                Some(i) => i as u32,
                None => {
                    neigh_entries.push((ip, port));
                    (neigh_entries.len() - 1) as u32
                }
            }
        };
        // Gateways are resolved and kept too, so the first packet routed through one finds
        // its MAC ready.
        let mut routes = Vec::with_capacity(profile.routes.len());
        for r in &profile.routes {
            let port = connected(&ports, r.via).ok_or(SnapshotError::Unreachable {
                what: format!("route {} via {}", r.prefix, r.via),
                addr: r.via,
            })?;
            routes.push(RouteView {
                prefix: r.prefix,
                port,
                neigh: slot_of(r.via, port),
            });
        }
        let mut lips: Vec<Ipv4Addr> = Vec::new();
        let mut services = Vec::with_capacity(profile.services.len());

        for svc in &profile.services {
            let key = svc.key();
            let what = format!("service {key}");
            // A firewall-mark service matches any address its rules cover: `vip` stays
            // unspecified and the protocol is that of its rules.
            let (proto, vip, port) = match key {
                ServiceKey::Addr {
                    protocol,
                    vip,
                    port,
                } => (proto_number(protocol), vip, port),
                ServiceKey::Fwmark(m) => {
                    let proto = profile
                        .fwmarks
                        .iter()
                        .find(|r| r.mark == m)
                        .map_or(ip_proto::TCP, |r| proto_number(r.protocol));
                    (proto, Ipv4Addr::UNSPECIFIED, 0)
                }
            };
            let mut dests = Vec::with_capacity(svc.servers.len());
            for s in &svc.servers {
                let swhat = format!("{what} server {}", s.address);
                let hop =
                    next_hop(&ports, &routes, s.address).ok_or(SnapshotError::Unreachable {
                        what: swhat.clone(),
                        addr: s.address,
                    })?;
                let (out_port, neigh) = match hop {
                    NextHop::OnLink { port } => (port, slot_of(s.address, port)),
                    NextHop::Gateway { .. } if s.forward == Forward::Dr => {
                        return Err(SnapshotError::Unreachable {
                            what: swhat,
                            addr: s.address,
                        });
                    }
                    NextHop::Gateway { port, neigh } => (port, neigh),
                };
                dests.push(Dest {
                    addr: s.address,
                    port: if s.port == 0 { port } else { s.port },
                    weight: s.weight,
                    forward: s.forward,
                    out_port,
                    neigh,
                    upper: s.upper,
                    lower: s.lower,
                });
            }
            let mut svc_lips = Vec::with_capacity(svc.local_addresses.len());
            for &l in &svc.local_addresses {
                let i = match lips.iter().position(|&x| x == l) {
                    Some(i) => i,
                    None => {
                        lips.push(l);
                        lips.len() - 1
                    }
                };
                svc_lips.push(i as u16);
            }
            let view = ServiceView {
                key,
                proto,
                vip,
                port,
                scheduler: svc.scheduler,
                dests,
                flags: svc.flags.clone(),
                lips: svc_lips,
                fwmark: svc.fwmark,
                persistence: svc.persistence.map(|p| (p.timeout, p.netmask.to_bits())),
                tunnel: svc.tunnel.map_or((rvs_config::TunnelKind::Ipip, 0), |t| {
                    (t.kind, t.port.unwrap_or(0))
                }),
            };
            // The VIP is answered by ARP on the ports whose connected prefix holds it; a VIP
            // outside every prefix is expected to be routed to a DIP by the upstream router.
            for p in ports.iter_mut() {
                if p.addresses.iter().any(|a| a.contains(vip)) && !p.arp_addresses.contains(&vip) {
                    p.arp_addresses.push(vip);
                }
            }
            if view.fwmark.is_none() && !local.contains(&vip) {
                local.push(vip);
            }
            services.push(view);
        }

        // Local addresses are the director's own: ARP and ping answer for them too.
        for &l in &lips {
            for p in ports.iter_mut() {
                if p.addresses.iter().any(|a| a.contains(l)) && !p.arp_addresses.contains(&l) {
                    p.arp_addresses.push(l);
                }
            }
            if !local.contains(&l) {
                local.push(l);
            }
        }

        let mut index: Vec<(u64, u16)> = services
            .iter()
            .enumerate()
            .filter(|(_, s)| s.fwmark.is_none())
            .map(|(i, s)| (service_key(s.proto, s.vip, s.port), i as u16))
            .collect();
        index.sort_unstable();
        let mut mark_index: Vec<(u32, u16)> = services
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.fwmark.map(|m| (m, i as u16)))
            .collect();
        mark_index.sort_unstable();
        let marks = profile
            .fwmarks
            .iter()
            .map(|r| {
                (
                    proto_number(r.protocol),
                    r.destination,
                    r.ports.clone(),
                    r.mark,
                )
            })
            .collect();
        // Addresses of /32 mark rules with a service are the director's too (ARP, ping), as
        // the VIPs an iptables-marking director would hold.
        for r in &profile.fwmarks {
            if r.destination.len == 32 && mark_index.iter().any(|&(m, _)| m == r.mark) {
                let a = r.destination.addr;
                for p in ports.iter_mut() {
                    if p.addresses.iter().any(|x| x.contains(a)) && !p.arp_addresses.contains(&a) {
                        p.arp_addresses.push(a);
                    }
                }
                if !local.contains(&a) {
                    local.push(a);
                }
            }
        }

        Ok(Snapshot {
            ports,
            services,
            index,
            local,
            timeouts: profile.timeouts,
            neigh: Arc::new(NeighTable::new(neigh_entries)),
            lips,
            routes,
            marks,
            mark_index,
        })
    }

    /// The service a new connection belongs to, as IPVS looks it up: a firewall-mark service
    /// whose rules match the packet first, then (protocol, VIP, port), then the VIP's port-0
    /// service.
    #[inline]
    pub fn classify(&self, proto: u8, daddr: Ipv4Addr, dport: u16) -> Option<usize> {
        if !self.mark_index.is_empty()
            && let Some(m) = self.mark_of(proto, daddr, dport)
            && let Ok(i) = self.mark_index.binary_search_by_key(&m, |&(k, _)| k)
        {
            return Some(self.mark_index[i].1 as usize);
        }
        self.service(proto, daddr, dport)
            .or_else(|| self.service(proto, daddr, 0))
    }

    /// The mark the profile's rules give a packet, if any.
    pub fn mark_of(&self, proto: u8, daddr: Ipv4Addr, dport: u16) -> Option<u32> {
        self.marks
            .iter()
            .find(|(p, dst, ports, _)| {
                *p == proto && dst.contains(daddr) && ports.iter().any(|r| r.contains(dport))
            })
            .map(|r| r.3)
    }

    /// The service for a packet's (protocol, destination, destination port), exactly.
    #[inline]
    pub fn service(&self, proto: u8, daddr: Ipv4Addr, dport: u16) -> Option<usize> {
        let k = service_key(proto, daddr, dport);
        self.index
            .binary_search_by_key(&k, |&(key, _)| key)
            .ok()
            .map(|i| self.index[i].1 as usize)
    }

    /// Whether `ip` is one of the director's addresses (DIP or VIP).
    #[inline]
    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.local.contains(&ip)
    }

    /// How to reach `ip`: the longest matching prefix among the ports' connected prefixes and
    /// the routes.
    #[inline]
    pub fn next_hop(&self, ip: Ipv4Addr) -> Option<NextHop> {
        next_hop(&self.ports, &self.routes, ip)
    }

    /// The index of local address `ip` in [`Snapshot::lips`].
    pub fn lip_index(&self, ip: Ipv4Addr) -> Option<usize> {
        self.lips.iter().position(|&l| l == ip)
    }

    /// Whether `ip` is a VIP of some service (any protocol or port) or an address a
    /// firewall-mark service's rules cover.
    pub fn is_vip(&self, ip: Ipv4Addr) -> bool {
        self.services
            .iter()
            .any(|s| s.fwmark.is_none() && s.vip == ip)
            || self
                .marks
                .iter()
                .any(|(_, dst, _, m)| dst.contains(ip) && self.mark_index.iter().any(|x| x.0 == *m))
    }
}

/// The port whose connected prefix holds `ip` (longest match), with the prefix length.
fn connected_len(ports: &[PortView], ip: Ipv4Addr) -> Option<(u16, u8)> {
    ports
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.addresses.iter().map(move |a| (i, a)))
        .filter(|(_, a)| a.contains(ip))
        .max_by_key(|(_, a)| a.len)
        .map(|(i, a)| (i as u16, a.len))
}

fn connected(ports: &[PortView], ip: Ipv4Addr) -> Option<u16> {
    connected_len(ports, ip).map(|(p, _)| p)
}

fn next_hop(ports: &[PortView], routes: &[RouteView], ip: Ipv4Addr) -> Option<NextHop> {
    let on_link = connected_len(ports, ip);
    let routed = routes
        .iter()
        .filter(|r| r.prefix.contains(ip))
        .max_by_key(|r| r.prefix.len);
    match (on_link, routed) {
        (Some((_, len)), Some(r)) if r.prefix.len > len => Some(NextHop::Gateway {
            port: r.port,
            neigh: r.neigh,
        }),
        (Some((port, _)), _) => Some(NextHop::OnLink { port }),
        (None, Some(r)) => Some(NextHop::Gateway {
            port: r.port,
            neigh: r.neigh,
        }),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = "
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - { name: dp0, device: net_null0, addresses: [\"10.0.0.10/24\"] }
  - { name: dp1, device: net_null1, addresses: [\"192.168.7.1/24\"] }
routes:
  - { prefix: \"0.0.0.0/0\", via: 10.0.0.1 }
services:
  - vip: 10.0.0.100
    port: 80
    protocol: tcp
    scheduler: wrr
    servers:
      - { address: 192.168.7.11, weight: 2 }
      - { address: 10.0.0.12, port: 80 }
  - vip: 10.0.0.100
    port: 53
    protocol: udp
    scheduler: rr
    servers:
      - { address: 192.168.7.11 }
";

    fn snap() -> Snapshot {
        let p = Profile::parse(PROFILE, "t.yaml").unwrap();
        Snapshot::build(
            &p,
            &[MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])],
        )
        .unwrap()
    }

    #[test]
    fn services_servers_ports_and_neighbours() {
        let s = snap();
        assert_eq!(
            s.service(ip_proto::TCP, Ipv4Addr::new(10, 0, 0, 100), 80),
            Some(0)
        );
        assert_eq!(
            s.service(ip_proto::UDP, Ipv4Addr::new(10, 0, 0, 100), 53),
            Some(1)
        );
        assert_eq!(
            s.service(ip_proto::UDP, Ipv4Addr::new(10, 0, 0, 100), 80),
            None
        );
        assert_eq!(
            s.service(ip_proto::TCP, Ipv4Addr::new(10, 0, 0, 101), 80),
            None
        );
        let d = &s.services[0].dests;
        assert_eq!(
            (d[0].out_port, d[0].port, d[0].weight),
            (1, 80, 2),
            "egress by prefix"
        );
        assert_eq!((d[1].out_port, d[1].port), (0, 80));
        // One slot per (next hop, port): the gateway, then rs .11 shared by two services.
        let slots: Vec<(Ipv4Addr, u16)> = s.neigh.slots().iter().map(|n| (n.ip, n.port)).collect();
        assert_eq!(
            slots,
            [
                (Ipv4Addr::new(10, 0, 0, 1), 0),
                (Ipv4Addr::new(192, 168, 7, 11), 1),
                (Ipv4Addr::new(10, 0, 0, 12), 0),
            ]
        );
        assert_eq!(s.services[1].dests[0].neigh, 1);
        assert_eq!(
            s.next_hop(Ipv4Addr::new(203, 0, 113, 9)),
            Some(NextHop::Gateway { port: 0, neigh: 0 }),
            "default route"
        );
        assert_eq!(
            s.next_hop(Ipv4Addr::new(192, 168, 7, 99)),
            Some(NextHop::OnLink { port: 1 })
        );
        // ARP is answered for the VIP only on the port whose prefix holds it.
        assert!(
            s.ports[0]
                .arp_addresses
                .contains(&Ipv4Addr::new(10, 0, 0, 100))
        );
        assert!(
            !s.ports[1]
                .arp_addresses
                .contains(&Ipv4Addr::new(10, 0, 0, 100))
        );
        assert!(s.is_local(Ipv4Addr::new(192, 168, 7, 1)));
        assert!(s.is_vip(Ipv4Addr::new(10, 0, 0, 100)));
        assert_eq!(
            s.ports[1].source_for(Ipv4Addr::new(192, 168, 7, 11)),
            Some(Ipv4Addr::new(192, 168, 7, 1))
        );
    }

    #[test]
    fn every_mode_scheduler_and_threshold_is_accepted() {
        for (from, to) in [
            ("scheduler: wrr", "scheduler: lblcr"),
            (
                "{ address: 10.0.0.12, port: 80 }",
                "{ address: 10.0.0.12, port: 8080, forward: nat }",
            ),
            (
                "{ address: 10.0.0.12, port: 80 }",
                "{ address: 10.0.0.12, port: 80, forward: tun }",
            ),
            (
                "{ address: 10.0.0.12, port: 80 }",
                "{ address: 10.0.0.12, port: 80, upper: 10 }",
            ),
        ] {
            let text = PROFILE.replacen(from, to, 1);
            let p = Profile::parse(&text, "t.yaml").unwrap_or_else(|e| panic!("{to}: {e}"));
            Snapshot::build(&p, &[MacAddr([2; 6]), MacAddr([3; 6])])
                .unwrap_or_else(|e| panic!("{to}: {e}"));
        }
    }

    #[test]
    fn marks_port_zero_and_persistence() {
        let text = PROFILE.replacen(
            "services:\n",
            "fwmarks:\n  - { mark: 8, protocol: tcp, destination: \"10.0.0.200/32\", ports: [80, 443, \"8000-8010\"] }\n\
             services:\n  - fwmark: 8\n    scheduler: rr\n    persistence: { timeout: 600, netmask: 255.255.255.0 }\n\
             \x20   servers: [{ address: 10.0.0.12 }]\n\
             \x20 - { vip: 10.0.0.100, port: 0, protocol: tcp, scheduler: rr, persistence: {}, servers: [{ address: 10.0.0.12 }] }\n",
            1,
        );
        let p = Profile::parse(&text, "t.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let s = Snapshot::build(&p, &[MacAddr([2; 6]), MacAddr([3; 6])]).unwrap();
        let vip200 = Ipv4Addr::new(10, 0, 0, 200);
        assert_eq!(s.mark_of(ip_proto::TCP, vip200, 8005), Some(8));
        assert_eq!(s.mark_of(ip_proto::UDP, vip200, 80), None);
        assert_eq!(
            s.classify(ip_proto::TCP, vip200, 443),
            Some(0),
            "the -f service"
        );
        assert_eq!(s.classify(ip_proto::TCP, vip200, 22), None);
        assert_eq!(s.services[0].persistence, Some((600, 0xffff_ff00)));
        let vip = Ipv4Addr::new(10, 0, 0, 100);
        assert_eq!(
            s.classify(ip_proto::TCP, vip, 80),
            Some(2),
            "exact service first"
        );
        assert_eq!(s.classify(ip_proto::TCP, vip, 22), Some(1), "then port 0");
        assert_eq!(s.services[1].persistence, Some((360, u32::MAX)));
        assert!(s.is_vip(vip200) && s.is_local(vip200));
        assert!(s.ports[0].arp_addresses.contains(&vip200));
    }
}
