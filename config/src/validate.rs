//! Semantic validation of a parsed [`Profile`]: everything serde cannot see (ranges, cross
//! references, uniqueness, the IPVS rules about ports and forwarding modes).
//!
//! Contract: a profile that passes [`validate`] can be loaded by the dataplane without any
//! further checks — every address is IPv4 and routable the way its forwarding mode needs,
//! every reference resolves, every number is in the range the dataplane and ipvsadm accept.
//! The first problem found is reported, sections in file order, as a key path plus a message
//! that names the offending value.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use crate::error::Invalid;
use crate::model::{
    Control, Dataplane, Forward, FwmarkRule, HealthCheck, HealthCheckKind, MAX_THRESHOLD,
    MAX_TIMEOUT, MAX_WEIGHT, Port, Profile, Route, Scheduler, Server, Service, ServiceKey,
    Timeouts,
};
use crate::net::Ipv4Prefix;

/// DPDK's `RTE_MAX_LCORE` in the default build.
pub const MAX_LCORE: u32 = 128;
/// Smallest flow-table capacity per worker.
pub const MIN_FLOWS_PER_WORKER: u32 = 1024;
/// Largest flow-table capacity per worker.
pub const MAX_FLOWS_PER_WORKER: u32 = 1 << 28;
/// Smallest MTU (IPv4's minimum).
pub const MIN_MTU: u16 = 68;
/// Largest MTU (jumbo frames).
pub const MAX_MTU: u16 = 9600;
/// Fewest descriptors per rx or tx queue (`rx_descriptors`, `tx_descriptors`).
pub const MIN_DESCRIPTORS: u16 = 64;
/// Most descriptors per rx or tx queue.
pub const MAX_DESCRIPTORS: u16 = 16384;
/// Longest port name: IFNAMSIZ - 1, so the name can also name the kernel exception interface.
pub const MAX_PORT_NAME: usize = 15;

type Check = Result<(), Invalid>;

fn fail(path: impl Into<String>, message: impl Into<String>) -> Check {
    Err(Invalid::new(path, message))
}

/// Validates a normalized profile (see [`Profile::normalize`]).
pub(crate) fn validate(p: &Profile) -> Check {
    dataplane(&p.dataplane)?;
    ports(&p.ports)?;
    let net = Net::new(p);
    routes(&p.routes, &net)?;
    timeouts(&p.timeouts)?;
    fwmarks(&p.fwmarks)?;
    services(p, &net)?;
    control(&p.control)
}

/// What the director knows about its own addressing.
struct Net<'a> {
    /// (port index, address index, prefix) of every DIP.
    dips: Vec<(usize, usize, Ipv4Prefix)>,
    ports: &'a [Port],
    routes: &'a [Route],
    /// Every VIP and the service that first names it.
    vips: HashMap<Ipv4Addr, usize>,
}

impl<'a> Net<'a> {
    fn new(p: &'a Profile) -> Self {
        let mut dips = Vec::new();
        for (i, port) in p.ports.iter().enumerate() {
            for (j, a) in port.addresses.iter().enumerate() {
                dips.push((i, j, *a));
            }
        }
        let mut vips = HashMap::new();
        for (i, s) in p.services.iter().enumerate() {
            if let Some(v) = s.vip {
                vips.entry(v).or_insert(i);
            }
        }
        Net {
            dips,
            ports: &p.ports,
            routes: &p.routes,
            vips,
        }
    }

    /// The port whose connected prefix holds `ip`.
    fn connected(&self, ip: Ipv4Addr) -> Option<&'a Port> {
        self.dips
            .iter()
            .find(|(_, _, pfx)| pfx.contains(ip))
            .map(|(i, _, _)| &self.ports[*i])
    }

    /// The port that owns `ip` as a DIP.
    fn dip_owner(&self, ip: Ipv4Addr) -> Option<&'a Port> {
        self.dips
            .iter()
            .find(|(_, _, pfx)| pfx.addr == ip)
            .map(|(i, _, _)| &self.ports[*i])
    }

    fn routed(&self, ip: Ipv4Addr) -> bool {
        self.routes.iter().any(|r| r.prefix.contains(ip))
    }

    fn connected_list(&self) -> String {
        let v: Vec<String> = self.dips.iter().map(|(_, _, p)| p.to_string()).collect();
        v.join(", ")
    }
}

/// Why `ip` cannot be a host address, if it cannot.
fn not_a_host(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("the unspecified address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else {
        None
    }
}

fn host(path: &str, what: &str, ip: Ipv4Addr) -> Check {
    match not_a_host(ip) {
        Some(why) => fail(
            path,
            format!("{what} {ip} is {why}, not a unicast host address"),
        ),
        None => Ok(()),
    }
}

fn in_range(path: &str, what: &str, v: u32, lo: u32, hi: u32) -> Check {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        fail(path, format!("{what} {v} is not in {lo}..={hi}"))
    }
}

/// A route or match prefix must be written as a network.
fn network_prefix(path: &str, p: Ipv4Prefix) -> Check {
    if p.is_network() {
        Ok(())
    } else {
        fail(
            path,
            format!(
                "prefix {p} has host bits set; did you mean {}/{}?",
                p.network(),
                p.len
            ),
        )
    }
}

/// A netmask must be a run of ones followed by zeros.
fn contiguous_netmask(path: &str, m: Ipv4Addr) -> Check {
    let bits = m.to_bits();
    if bits.leading_ones() + bits.trailing_zeros() == 32 {
        Ok(())
    } else {
        fail(
            path,
            format!("netmask {m} is not contiguous (ones followed by zeros, e.g. 255.255.255.0)"),
        )
    }
}

fn dataplane(d: &Dataplane) -> Check {
    for (i, a) in d.eal.iter().enumerate() {
        let lcore_opt = if a.starts_with("--") {
            let name = a.split('=').next().unwrap_or(a);
            matches!(name, "--lcores" | "--main-lcore" | "--master-lcore")
        } else {
            a.starts_with("-l") || a.starts_with("-c")
        };
        if lcore_opt {
            return fail(
                format!("dataplane.eal[{i}]"),
                format!(
                    "EAL option `{a}` sets lcores, which the profile sets with `main_lcore` and `workers`"
                ),
            );
        }
    }
    if d.main_lcore >= MAX_LCORE {
        return fail(
            "dataplane.main_lcore",
            format!(
                "lcore {} is not below RTE_MAX_LCORE ({MAX_LCORE})",
                d.main_lcore
            ),
        );
    }
    if d.workers.is_empty() {
        return fail("dataplane.workers", "at least one worker lcore is required");
    }
    for (i, &w) in d.workers.iter().enumerate() {
        let path = format!("dataplane.workers[{i}]");
        if w >= MAX_LCORE {
            return fail(
                path,
                format!("lcore {w} is not below RTE_MAX_LCORE ({MAX_LCORE})"),
            );
        }
        if w == d.main_lcore {
            return fail(
                path,
                format!("lcore {w} is the main lcore; workers need lcores of their own"),
            );
        }
        if let Some(j) = d.workers[..i].iter().position(|&x| x == w) {
            return fail(
                path,
                format!("lcore {w} is listed twice (also dataplane.workers[{j}])"),
            );
        }
    }
    in_range(
        "dataplane.flows_per_worker",
        "flows_per_worker",
        d.flows_per_worker,
        MIN_FLOWS_PER_WORKER,
        MAX_FLOWS_PER_WORKER,
    )
}

fn ports(ports: &[Port]) -> Check {
    if ports.is_empty() {
        return fail("ports", "at least one port is required");
    }
    for (i, port) in ports.iter().enumerate() {
        let at = format!("ports[{i}]");
        let name = &port.name;
        if name.is_empty() {
            return fail(format!("{at}.name"), "port name is empty");
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return fail(
                format!("{at}.name"),
                format!("port name `{name}` contains `{c}`; use letters, digits, `_` and `-`"),
            );
        }
        if name.len() > MAX_PORT_NAME {
            return fail(
                format!("{at}.name"),
                format!("port name `{name}` is longer than {MAX_PORT_NAME} characters"),
            );
        }
        if let Some(j) = ports[..i].iter().position(|p| p.name == *name) {
            return fail(
                format!("{at}.name"),
                format!("port name `{name}` is already used by ports[{j}]"),
            );
        }
        if port.device.trim().is_empty() {
            return fail(format!("{at}.device"), "device is empty");
        }
        if let Some(j) = ports[..i].iter().position(|p| p.device == port.device) {
            return fail(
                format!("{at}.device"),
                format!(
                    "device `{}` is already used by ports[{j}] (`{}`)",
                    port.device, ports[j].name
                ),
            );
        }
        if port.addresses.is_empty() {
            return fail(
                format!("{at}.addresses"),
                format!("port `{name}` needs at least one address"),
            );
        }
        for (j, a) in port.addresses.iter().enumerate() {
            let path = format!("{at}.addresses[{j}]");
            port_address(&path, *a)?;
            if let Some(k) = port.addresses[..j].iter().position(|b| b.addr == a.addr) {
                return fail(
                    path,
                    format!(
                        "address {} is listed twice (also {at}.addresses[{k}])",
                        a.addr
                    ),
                );
            }
            for (k, other) in ports[..i].iter().enumerate() {
                if let Some(l) = other.addresses.iter().position(|b| b.overlaps(a)) {
                    return fail(
                        path,
                        format!(
                            "{a} overlaps {} of port `{}` (ports[{k}].addresses[{l}]); a prefix is connected to one port only",
                            other.addresses[l], other.name
                        ),
                    );
                }
            }
        }
        if let Some(mtu) = port.mtu {
            in_range(
                &format!("{at}.mtu"),
                "mtu",
                u32::from(mtu),
                u32::from(MIN_MTU),
                u32::from(MAX_MTU),
            )?;
        }
        descriptors(&at, "rx_descriptors", port.rx_descriptors)?;
        descriptors(&at, "tx_descriptors", port.tx_descriptors)?;
    }
    Ok(())
}

/// A port's ring size: a power of two in `MIN_DESCRIPTORS..=MAX_DESCRIPTORS` (DPDK PMDs and
/// AF_XDP rings want powers of two).
fn descriptors(at: &str, key: &str, n: Option<u16>) -> Check {
    match n {
        Some(n) if !(n.is_power_of_two() && (MIN_DESCRIPTORS..=MAX_DESCRIPTORS).contains(&n)) => {
            fail(
                format!("{at}.{key}"),
                format!(
                    "{key} {n} must be a power of two between {MIN_DESCRIPTORS} and {MAX_DESCRIPTORS}"
                ),
            )
        }
        _ => Ok(()),
    }
}

fn port_address(path: &str, a: Ipv4Prefix) -> Check {
    if a.len == 0 {
        return fail(
            path,
            format!("{a}: a /0 connected prefix would put every address on-link"),
        );
    }
    host(path, "address", a.addr)?;
    if a.len <= 30 {
        if a.addr == a.network() {
            return fail(
                path,
                format!(
                    "{a}: {} is the network address of the prefix, not a host",
                    a.addr
                ),
            );
        }
        if a.addr == a.broadcast() {
            return fail(
                path,
                format!(
                    "{a}: {} is the broadcast address of the prefix, not a host",
                    a.addr
                ),
            );
        }
    }
    Ok(())
}

fn routes(routes: &[Route], net: &Net<'_>) -> Check {
    for (i, r) in routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        network_prefix(&format!("{at}.prefix"), r.prefix)?;
        if let Some(j) = routes[..i].iter().position(|o| o.prefix == r.prefix) {
            return fail(
                format!("{at}.prefix"),
                format!("route to {} is already defined by routes[{j}]", r.prefix),
            );
        }
        let via = format!("{at}.via");
        host(&via, "gateway", r.via)?;
        if let Some(p) = net.dip_owner(r.via) {
            return fail(
                via,
                format!(
                    "gateway {} is the director's own address on port `{}`",
                    r.via, p.name
                ),
            );
        }
        if net.connected(r.via).is_none() {
            return fail(
                via,
                format!(
                    "gateway {} is not inside a connected prefix (port addresses: {})",
                    r.via,
                    net.connected_list()
                ),
            );
        }
    }
    Ok(())
}

fn timeouts(t: &Timeouts) -> Check {
    in_range("timeouts.tcp", "timeout", t.tcp, 1, MAX_TIMEOUT)?;
    in_range("timeouts.tcp_fin", "timeout", t.tcp_fin, 1, MAX_TIMEOUT)?;
    in_range("timeouts.udp", "timeout", t.udp, 1, MAX_TIMEOUT)
}

fn fwmarks(rules: &[FwmarkRule]) -> Check {
    for (i, r) in rules.iter().enumerate() {
        let at = format!("fwmarks[{i}]");
        if r.mark == 0 {
            return fail(
                format!("{at}.mark"),
                "mark 0 means \"no mark\"; use 1..=4294967295",
            );
        }
        network_prefix(&format!("{at}.destination"), r.destination)?;
        if r.ports.is_empty() {
            return fail(
                format!("{at}.ports"),
                "at least one port or port range is required",
            );
        }
        for (j, pr) in r.ports.iter().enumerate() {
            let path = format!("{at}.ports[{j}]");
            if pr.first == 0 {
                return fail(path, format!("port 0 in `{pr}` is not in 1..=65535"));
            }
            if pr.first > pr.last {
                return fail(
                    path,
                    format!("port range `{pr}` runs backwards (first > last)"),
                );
            }
        }
        for (k, o) in rules[..i].iter().enumerate() {
            if o.mark == r.mark && o.protocol != r.protocol {
                return fail(
                    format!("{at}.protocol"),
                    format!(
                        "mark {} is {} in fwmarks[{k}] but {} here; all rules of a mark must share one protocol",
                        r.mark, o.protocol, r.protocol
                    ),
                );
            }
            if o.mark != r.mark
                && o.protocol == r.protocol
                && o.destination.overlaps(&r.destination)
            {
                let clash = r
                    .ports
                    .iter()
                    .find(|a| o.ports.iter().any(|b| a.overlaps(b)));
                if let Some(pr) = clash {
                    return fail(
                        at,
                        format!(
                            "{} {} port {pr} would carry both mark {} (fwmarks[{k}]) and mark {}",
                            r.protocol, r.destination, o.mark, r.mark
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

fn services(p: &Profile, net: &Net<'_>) -> Check {
    let mut seen: HashMap<ServiceKey, usize> = HashMap::new();
    for (i, s) in p.services.iter().enumerate() {
        let at = format!("services[{i}]");
        service_identity(&at, s, p, net)?;
        let key = s.key();
        if let Some(j) = seen.insert(key, i) {
            return fail(
                at,
                format!("service {key} is already defined by services[{j}]"),
            );
        }
        service_options(&at, s)?;
        local_addresses(&at, s, net)?;
        if let Some(t) = s.tunnel {
            let path = format!("{at}.tunnel");
            match (t.kind, t.port) {
                (crate::TunnelKind::Gue, None | Some(0)) => {
                    return fail(
                        format!("{path}.port"),
                        "a gue tunnel needs a UDP port (1..=65535)".to_owned(),
                    );
                }
                (crate::TunnelKind::Ipip | crate::TunnelKind::Gre, Some(p)) => {
                    return fail(
                        format!("{path}.port"),
                        format!("port {p} is only meaningful for a gue tunnel"),
                    );
                }
                _ => {}
            }
        }
        if let Some(sorry) = s.sorry_server {
            let path = format!("{at}.sorry_server");
            host(&path, "sorry server", *sorry.ip())?;
            if sorry.port() == 0 {
                return fail(path, format!("sorry server {sorry} has port 0"));
            }
        }
        if let Some(hc) = &s.health_check {
            health_check(&format!("{at}.health_check"), hc, s)?;
        }
        for (j, srv) in s.servers.iter().enumerate() {
            server(&format!("{at}.servers[{j}]"), srv, j, s, net)?;
        }
    }
    Ok(())
}

/// Exactly one of (vip, port, protocol) and fwmark; the VIP is not a DIP; port 0 persists.
fn service_identity(at: &str, s: &Service, p: &Profile, net: &Net<'_>) -> Check {
    if let Some(mark) = s.fwmark {
        let addr_keys = [
            ("vip", s.vip.is_some()),
            ("port", s.port.is_some()),
            ("protocol", s.protocol.is_some()),
        ];
        if let Some((key, _)) = addr_keys.iter().find(|(_, set)| *set) {
            return fail(
                format!("{at}.{key}"),
                format!(
                    "a service is either `fwmark` or `vip`/`port`/`protocol`; this one has fwmark {mark} and `{key}`"
                ),
            );
        }
        if mark == 0 {
            return fail(format!("{at}.fwmark"), "mark 0 means \"no mark\"");
        }
        if !p.fwmarks.iter().any(|r| r.mark == mark) {
            return fail(
                format!("{at}.fwmark"),
                format!("mark {mark} is not defined in `fwmarks`"),
            );
        }
        return Ok(());
    }
    let missing = [
        ("vip", s.vip.is_none()),
        ("port", s.port.is_none()),
        ("protocol", s.protocol.is_none()),
    ];
    if let Some((key, _)) = missing.iter().find(|(_, gone)| *gone) {
        return fail(
            format!("{at}.{key}"),
            format!(
                "required key `{key}` is missing: a service needs `vip`, `port` and `protocol`, or `fwmark`"
            ),
        );
    }
    let (Some(vip), Some(port)) = (s.vip, s.port) else {
        return Ok(()); // unreachable: checked just above
    };
    let path = format!("{at}.vip");
    host(&path, "VIP", vip)?;
    if let Some(owner) = net.dip_owner(vip) {
        return fail(
            path,
            format!(
                "VIP {vip} is the director's own address (DIP) on port `{}`",
                owner.name
            ),
        );
    }
    if port == 0 && s.persistence.is_none() {
        return fail(
            format!("{at}.port"),
            "port 0 (every port of the VIP) needs `persistence`, as in IPVS",
        );
    }
    Ok(())
}

fn service_options(at: &str, s: &Service) -> Check {
    for (j, f) in s.flags.iter().enumerate() {
        let path = format!("{at}.flags[{j}]");
        if s.scheduler != Scheduler::Sh {
            return fail(
                path,
                format!(
                    "flag `{f}` only applies to the sh scheduler; this service uses {}",
                    s.scheduler
                ),
            );
        }
        if s.flags[..j].contains(f) {
            return fail(path, format!("flag `{f}` is listed twice"));
        }
    }
    if let Some(pers) = &s.persistence {
        in_range(
            &format!("{at}.persistence.timeout"),
            "persistence timeout",
            pers.timeout,
            1,
            MAX_TIMEOUT,
        )?;
        contiguous_netmask(&format!("{at}.persistence.netmask"), pers.netmask)?;
    }
    Ok(())
}

fn local_addresses(at: &str, s: &Service, net: &Net<'_>) -> Check {
    if s.local_addresses.is_empty()
        && let Some(j) = s.servers.iter().position(|x| x.forward == Forward::Fnat)
    {
        return fail(
            format!("{at}.local_addresses"),
            format!(
                "servers[{j}] ({}) forwards with fnat, which needs a non-empty `local_addresses` pool",
                s.servers[j].address
            ),
        );
    }
    for (j, &lip) in s.local_addresses.iter().enumerate() {
        let path = format!("{at}.local_addresses[{j}]");
        host(&path, "local address", lip)?;
        if let Some(k) = s.local_addresses[..j].iter().position(|&x| x == lip) {
            return fail(
                path,
                format!("local address {lip} is listed twice (also {at}.local_addresses[{k}])"),
            );
        }
        if let Some(owner) = net.dip_owner(lip) {
            return fail(
                path,
                format!(
                    "local address {lip} is the director's own address (DIP) on port `{}`",
                    owner.name
                ),
            );
        }
        if let Some(k) = net.vips.get(&lip) {
            return fail(
                path,
                format!("local address {lip} is the VIP of services[{k}]"),
            );
        }
    }
    Ok(())
}

fn health_check(at: &str, hc: &HealthCheck, s: &Service) -> Check {
    let kind = hc.kind.as_str();
    match hc.kind {
        HealthCheckKind::Http => {
            if let Some(path) = &hc.path
                && !path.starts_with('/')
            {
                return fail(
                    format!("{at}.path"),
                    format!("HTTP path `{path}` must start with `/`"),
                );
            }
            if let Some(status) = hc.status {
                in_range(
                    &format!("{at}.status"),
                    "HTTP status",
                    u32::from(status),
                    100,
                    599,
                )?;
            }
        }
        HealthCheckKind::Tcp | HealthCheckKind::Script => {
            if hc.path.is_some() {
                return fail(
                    format!("{at}.path"),
                    format!("`path` only applies to http checks, not {kind}"),
                );
            }
            if hc.status.is_some() {
                return fail(
                    format!("{at}.status"),
                    format!("`status` only applies to http checks, not {kind}"),
                );
            }
        }
    }
    match (&hc.kind, &hc.script) {
        (HealthCheckKind::Script, None) => {
            return fail(
                format!("{at}.script"),
                "required key `script` is missing: a script check needs the command to run",
            );
        }
        (HealthCheckKind::Script, Some(cmd)) if cmd.trim().is_empty() => {
            return fail(format!("{at}.script"), "script is empty");
        }
        (HealthCheckKind::Tcp | HealthCheckKind::Http, Some(_)) => {
            return fail(
                format!("{at}.script"),
                format!("`script` only applies to script checks, not {kind}"),
            );
        }
        _ => {}
    }
    if hc.port == Some(0) {
        return fail(
            format!("{at}.port"),
            "health-check port 0 is not in 1..=65535",
        );
    }
    for (key, v) in [
        ("interval", hc.interval),
        ("timeout", hc.timeout),
        ("rise", hc.rise),
        ("fall", hc.fall),
    ] {
        if v == 0 {
            return fail(format!("{at}.{key}"), format!("{key} must be at least 1"));
        }
        if v > MAX_TIMEOUT {
            return fail(
                format!("{at}.{key}"),
                format!("{key} {v} is not in 1..={MAX_TIMEOUT}"),
            );
        }
    }
    if hc.timeout > hc.interval {
        return fail(
            format!("{at}.timeout"),
            format!(
                "timeout {} is longer than the interval {} between checks",
                hc.timeout, hc.interval
            ),
        );
    }
    // A connect or GET needs a port; servers of port-0 and fwmark services may have none.
    if hc.kind != HealthCheckKind::Script
        && hc.port.is_none()
        && let Some(j) = s.servers.iter().position(|x| x.port == 0)
    {
        return fail(
            format!("{at}.port"),
            format!(
                "a {kind} check needs a port, and servers[{j}] ({}) has none (the service covers every port); set `port`",
                s.servers[j].address
            ),
        );
    }
    Ok(())
}

fn server(at: &str, srv: &Server, j: usize, s: &Service, net: &Net<'_>) -> Check {
    let addr = srv.address;
    let path = format!("{at}.address");
    host(&path, "server address", addr)?;
    if let Some(owner) = net.dip_owner(addr) {
        return fail(
            path,
            format!(
                "server {addr} is the director's own address (DIP) on port `{}`",
                owner.name
            ),
        );
    }
    if let Some(k) = net.vips.get(&addr) {
        return fail(path, format!("server {addr} is the VIP of services[{k}]"));
    }
    if let Some(k) = s.servers[..j]
        .iter()
        .position(|o| o.address == addr && o.port == srv.port)
    {
        return fail(
            path,
            format!(
                "server {addr}:{} is already in this service (servers[{k}])",
                srv.port
            ),
        );
    }
    // Port rules. After normalization an omitted port is the service port.
    let service_port = if s.fwmark.is_some() {
        0
    } else {
        s.port.unwrap_or(0)
    };
    if srv.forward.keeps_port() && srv.port != service_port {
        let msg = if service_port == 0 {
            format!(
                "{} cannot map ports: the service covers every port, so omit the server port (got {})",
                srv.forward, srv.port
            )
        } else {
            format!(
                "{} cannot map ports: server port {} must equal the service port {service_port} (or be omitted)",
                srv.forward, srv.port
            )
        };
        return fail(format!("{at}.port"), msg);
    }
    if srv.port == 0 && service_port != 0 {
        // Only reachable on an unnormalized profile.
        return fail(format!("{at}.port"), "server port 0 is not in 1..=65535");
    }
    if srv.weight > MAX_WEIGHT {
        return fail(
            format!("{at}.weight"),
            format!("weight {} is not in 0..={MAX_WEIGHT}", srv.weight),
        );
    }
    for (key, v) in [("upper", srv.upper), ("lower", srv.lower)] {
        if v > MAX_THRESHOLD {
            return fail(
                format!("{at}.{key}"),
                format!("threshold {v} is not in 0..={MAX_THRESHOLD}"),
            );
        }
    }
    if srv.upper > 0 && srv.lower > srv.upper {
        return fail(
            format!("{at}.lower"),
            format!(
                "lower threshold {} is above the upper threshold {}",
                srv.lower, srv.upper
            ),
        );
    }
    match srv.forward {
        Forward::Dr => {
            if net.connected(addr).is_none() {
                return fail(
                    format!("{at}.address"),
                    format!(
                        "dr needs the server on-link, but {addr} is in no connected prefix (port addresses: {})",
                        net.connected_list()
                    ),
                );
            }
        }
        Forward::Tun | Forward::Nat | Forward::Fnat => {
            if net.connected(addr).is_none() && !net.routed(addr) {
                return fail(
                    format!("{at}.address"),
                    format!(
                        "no connected prefix or route reaches server {addr} (port addresses: {}; add a route)",
                        net.connected_list()
                    ),
                );
            }
        }
    }
    Ok(())
}

fn control(c: &Control) -> Check {
    if !c.shm.is_absolute() {
        return fail(
            "control.shm",
            format!(
                "shm `{}` must be an absolute path (e.g. /dev/shm/rvs)",
                c.shm.display()
            ),
        );
    }
    if c.listen.port() == 0 {
        return fail(
            "control.listen",
            format!("listen address {} has port 0", c.listen),
        );
    }
    if let Some(t) = &c.token_file
        && !t.is_absolute()
    {
        return fail(
            "control.token_file",
            format!("token_file `{}` must be an absolute path", t.display()),
        );
    }
    Ok(())
}
