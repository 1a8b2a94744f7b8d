//! Name lookups the way ipvsadm does them, from files only.
//!
//! ipvsadm turns ports into service names with `getservbyport` and back with `getservbyname`,
//! and host names into addresses with `gethostbyname` (and addresses into names with
//! `gethostbyaddr` when listing without `-n`). rvsadm reads `/etc/services` for the ports (the
//! first entry for a port/protocol gives the official name, as `getservbyport` does) and
//! `/etc/hosts` for host names given on the command line. It never asks DNS: listings keep
//! addresses numeric, which is what ipvsadm prints for an address without a PTR record, so the
//! output neither waits on a resolver nor changes with one.

use std::net::Ipv4Addr;
use std::path::Path;

use rvs_config::Protocol;

/// One `/etc/services` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceEntry {
    name: String,
    aliases: Vec<String>,
    port: u16,
    protocol: String,
}

/// The services and hosts databases rvsadm consults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    services: Vec<ServiceEntry>,
    hosts: Vec<(Ipv4Addr, Vec<String>)>,
}

impl Names {
    /// Reads both files; a missing or unreadable file is an empty database (ports then stay
    /// numeric and only literal addresses are accepted).
    pub fn load(services: &Path, hosts: &Path) -> Names {
        let s = std::fs::read_to_string(services).unwrap_or_default();
        let h = std::fs::read_to_string(hosts).unwrap_or_default();
        Names::from_text(&s, &h)
    }

    /// Parses `/etc/services` and `/etc/hosts` text.
    pub fn from_text(services: &str, hosts: &str) -> Names {
        let mut names = Names::default();
        for line in services.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(pp)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            names.services.push(ServiceEntry {
                name: name.to_owned(),
                aliases: words.map(str::to_owned).collect(),
                port,
                protocol: proto.to_ascii_lowercase(),
            });
        }
        for line in hosts.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(Ok(ip)) = words.next().map(str::parse::<Ipv4Addr>) else {
                continue;
            };
            names
                .hosts
                .push((ip, words.map(|w| w.to_ascii_lowercase()).collect()));
        }
        names
    }

    /// `getservbyport(port, proto)`: the official name of the first entry, if any.
    /// `protocol` is `None` for a protocol without service names (fwmark templates).
    pub fn port_name(&self, port: u16, protocol: Option<Protocol>) -> Option<&str> {
        let proto = protocol?.as_str();
        self.services
            .iter()
            .find(|e| e.port == port && e.protocol == proto)
            .map(|e| e.name.as_str())
    }

    /// `getservbyname(name, proto)`: the port of the entry whose name or alias is `name`.
    pub fn port_by_name(&self, name: &str, protocol: Protocol) -> Option<u16> {
        let proto = protocol.as_str();
        self.services
            .iter()
            .find(|e| {
                e.protocol == proto && (e.name == name || e.aliases.iter().any(|a| a == name))
            })
            .map(|e| e.port)
    }

    /// A host name from `/etc/hosts` (case-insensitive), first IPv4 entry.
    pub fn host(&self, name: &str) -> Option<Ipv4Addr> {
        let name = name.to_ascii_lowercase();
        self.hosts
            .iter()
            .find(|(_, names)| names.contains(&name))
            .map(|(ip, _)| *ip)
    }

    /// ipvsadm's `port_to_anyname`: the service name, or the number.
    pub fn port_or_number(&self, port: u16, protocol: Option<Protocol>) -> String {
        self.port_name(port, protocol)
            .map_or_else(|| port.to_string(), str::to_owned)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small `/etc/services` in the Debian layout, enough for the seeds.
    pub(crate) const SERVICES: &str = "\
# Network services, Internet style
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
ssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol
telnet\t\t23/tcp
domain\t\t53/tcp\t\t\t\t# Domain Name Server
domain\t\t53/udp
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
https\t\t443/tcp\t\t\t\t# http protocol over TLS/SSL
http-alt\t8080/tcp\twebcache\t# WWW caching service
";

    pub(crate) const HOSTS: &str = "\
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost
10.0.0.11\tweb1 Web1.example
";

    pub(crate) fn names() -> Names {
        Names::from_text(SERVICES, HOSTS)
    }

    #[test]
    fn services_are_looked_up_both_ways_per_protocol() {
        let n = names();
        assert_eq!(n.port_name(80, Some(Protocol::Tcp)), Some("http"));
        assert_eq!(n.port_name(80, Some(Protocol::Udp)), None);
        assert_eq!(n.port_name(53, Some(Protocol::Udp)), Some("domain"));
        assert_eq!(n.port_name(80, None), None);
        assert_eq!(n.port_by_name("www", Protocol::Tcp), Some(80));
        assert_eq!(n.port_by_name("http", Protocol::Udp), None);
        assert_eq!(n.port_or_number(81, Some(Protocol::Tcp)), "81");
        assert_eq!(n.port_or_number(8080, Some(Protocol::Tcp)), "http-alt");
    }

    #[test]
    fn hosts_resolve_ipv4_names_only() {
        let n = names();
        assert_eq!(n.host("LOCALHOST"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(n.host("web1.example"), Some(Ipv4Addr::new(10, 0, 0, 11)));
        assert_eq!(n.host("ip6-localhost"), None);
        assert_eq!(n.host("nowhere"), None);
    }
}
