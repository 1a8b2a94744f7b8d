//! ipvsadm's output, column for column.
//!
//! Every layout here is ipvsadm 1.31's `printf` format (quoted in the comments), so scripts
//! that cut columns out of `ipvsadm -L -n` read `rvsadm -L -n` the same way. FullNAT rows use
//! DPVS's `FullNat` forward name and `-b` switch, and `--get-laddr` is DPVS's table.
//!
//! Without `-n` ports are printed as service names from `/etc/services`; addresses stay
//! numeric (see [`super::names`]).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use rvs_config::{Forward, Profile, Protocol, SchedFlag, Scheduler, Service, ServiceKey, Timeouts};

use crate::api::{ConnView, ServerView, ServiceView, StatsView};

use super::names::Names;
use super::parse::Format;
use super::restore::effective_port;

/// `list_all`'s first line. RVS emulates IPVS 1.2.1 with ipvsadm's default connection table
/// size (2^12).
pub const VERSION_LINE: &str = "IP Virtual Server version 1.2.1 (size=4096)";

/// The ipvsadm whose behaviour rvsadm reproduces (`version()`'s line).
pub const IPVSADM_VERSION: &str = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)";

/// `-v`: rvsadm's own version, then the ipvsadm-compatible line.
pub fn version() -> String {
    format!(
        "rvsadm {} (RVS, ipvsadm over the rvs-control REST API)\n{IPVSADM_VERSION}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-h`: ipvsadm 1.31's usage with the commands rvsadm adds and the ones it lacks left out.
pub fn usage(program: &str) -> String {
    let mut s = version();
    s.push_str(&USAGE.replace("PROGRAM", program));
    s
}

const USAGE: &str = r#"Usage:
  PROGRAM -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]
  PROGRAM -D virtual-service
  PROGRAM -C
  PROGRAM -R
  PROGRAM -S [-n]
  PROGRAM -a|e virtual-service -r server-address [options]
  PROGRAM -d virtual-service -r server-address
  PROGRAM -L|l [virtual-service] [options]
  PROGRAM -Z [virtual-service]
  PROGRAM --set tcp tcpfin udp
  PROGRAM -P|Q -t|u service-address -z local-address
  PROGRAM -G [-t|u service-address]
  PROGRAM -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin (all or nothing)
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --add-laddr       -P        add FullNAT local address
  --del-laddr       -Q        delete FullNAT local address
  --get-laddr       -G        list FullNAT local addresses
  --help            -h        display this help message
  --version         -v        display the version

virtual-service:
  --tcp-service|-t  service-address   service-address is host[:port]
  --udp-service|-u  service-address   service-address is host[:port]
  --fwmark-service|-f fwmark          fwmark is an integer greater than zero

Options:
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq,
                                      the default scheduler is wlc.
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask
  --sched-flags  -b flags             scheduler flags (comma-separated; after -A|-E)
  --real-server  -r server-address    server-address is host (and port)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --fullnat      -b                   FullNAT (after -a|-e, as DPVS)
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --laddr        -z local-address     FullNAT local address (LIP)
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --numeric      -n                   numeric output of ports

RVS options:
  --api URL                           REST API (default $RVS_API, else http://127.0.0.1:9180)
  --token TOKEN                       bearer token (default $RVS_TOKEN)
"#;

/// ipvsadm's `addrport_to_anyname` without reverse DNS.
fn addrport(
    ip: Ipv4Addr,
    port: u16,
    proto: Option<Protocol>,
    numeric: bool,
    names: &Names,
) -> String {
    if numeric {
        format!("{ip}:{port}")
    } else {
        format!("{ip}:{}", names.port_or_number(port, proto))
    }
}

/// ipvsadm cuts names with a NUL at a fixed byte (`svc_name[33]`, `dname[28]`).
fn cut(mut s: String, n: usize) -> String {
    if s.len() > n {
        let mut i = n;
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        s.truncate(i);
    }
    s
}

/// The protocol whose service names a key's ports use (ipvsadm gives fwmark services TCP).
fn key_protocol(key: ServiceKey) -> Protocol {
    match key {
        ServiceKey::Addr { protocol, .. } => protocol,
        ServiceKey::Fwmark(_) => Protocol::Tcp,
    }
}

/// The listing's service name: `"%-4s %s"` (protocol, `addr:port`) cut at 33, or
/// `"FWM  %d"`.
fn list_name(key: ServiceKey, numeric: bool, names: &Names) -> String {
    match key {
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => cut(
            format!(
                "{:<4} {}",
                protocol.ipvsadm_name(),
                addrport(vip, port, Some(protocol), numeric, names)
            ),
            33,
        ),
        ServiceKey::Fwmark(m) => format!("FWM  {m}"),
    }
}

/// `-S`'s service name: `"%s %s"` (`-t`/`-u`, `addr:port`), or `"-f %d"`.
fn rule_name(key: ServiceKey, numeric: bool, names: &Names) -> String {
    match key {
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => {
            let opt = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
            };
            format!(
                "{opt} {}",
                addrport(vip, port, Some(protocol), numeric, names)
            )
        }
        ServiceKey::Fwmark(m) => format!("-f {m}"),
    }
}

/// `print_sched_flags`: the flag bits by the scheduler's names (`sh-fallback,sh-port`), or
/// the generic `flag-1,flag-2` for other schedulers. Empty when no flag is set.
fn sched_flags(sched: Scheduler, flags: &[SchedFlag]) -> String {
    let sh = sched == Scheduler::Sh;
    let mut out = Vec::new();
    if flags.contains(&SchedFlag::ShFallback) {
        out.push(if sh { "sh-fallback" } else { "flag-1" });
    }
    if flags.contains(&SchedFlag::ShPort) {
        out.push(if sh { "sh-port" } else { "flag-2" });
    }
    out.join(",")
}

/// The `-S` forwarding switch (`fwd_switch`; `-b` is DPVS's for FullNAT).
fn fwd_switch(f: Forward) -> &'static str {
    match f {
        Forward::Dr => "-g",
        Forward::Tun => "-i",
        Forward::Nat => "-m",
        Forward::Fnat => "-b",
    }
}

/// `print_largenum`: `%9llu` below 100 million, then `%8lluK`/`M`/`G`/`T`; with `--exact`
/// `%*llu` of width 9 (or the number's length + 1).
fn largenum(out: &mut String, i: u64, exact: bool) {
    if exact {
        let len = i.to_string().len();
        let w = if len <= 8 { 9 } else { len + 1 };
        let _ = write!(out, "{i:>w$}");
    } else if i < 100_000_000 {
        let _ = write!(out, "{i:>9}");
    } else if i < 1_000_000_000 {
        let _ = write!(out, "{:>8}K", i / 1_000);
    } else if i < 100_000_000_000 {
        let _ = write!(out, "{:>8}M", i / 1_000_000);
    } else if i < 100_000_000_000_000 {
        let _ = write!(out, "{:>8}G", i / 1_000_000_000);
    } else {
        let _ = write!(out, "{:>8}T", i / 1_000_000_000_000);
    }
}

/// `print_title`.
fn title(out: &mut String, f: &Format) {
    let head = |out: &mut String, cols: String| {
        let _ = write!(
            out,
            "{:<33} {cols}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port"
        );
    };
    if f.stats {
        // "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
        head(
            out,
            format!(
                "{:>8} {:>8} {:>8} {:>8} {:>8}",
                "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
            ),
        );
    } else if f.rate {
        head(
            out,
            format!(
                "{:>8} {:>8} {:>8} {:>8} {:>8}",
                "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
            ),
        );
    } else if f.thresholds {
        // "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n"
        head(
            out,
            format!(
                "{:<10} {:<10} {:<10} {:<10}",
                "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
            ),
        );
    } else if f.persistent_conn {
        // "%-33s %-9s %-11s %-10s %-10s\n  -> RemoteAddress:Port\n"
        head(
            out,
            format!(
                "{:<9} {:<11} {:<10} {:<10}",
                "Weight", "PersistConn", "ActiveConn", "InActConn"
            ),
        );
    } else {
        out.push_str(
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        );
    }
}

/// `ipvs_cmp_services`: fwmark, protocol, address, port.
fn service_order(key: &ServiceKey) -> (u32, u8, u32, u16) {
    match *key {
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => (0, protocol.number(), u32::from(vip), port),
        ServiceKey::Fwmark(m) => (m, Protocol::Tcp.number(), 0, 0),
    }
}

/// `print_service_entry` for a listing (not `-S`).
fn service_entry(out: &mut String, svc: &ServiceView, f: &Format, names: &Names) {
    let key = svc.id.0;
    let proto = Some(key_protocol(key));
    let name = list_name(key, f.numeric, names);
    if f.stats {
        // "%-33s" then print_largenum × 5
        let _ = write!(out, "{name:<33}");
        for v in [
            svc.stats.conns,
            svc.stats.inpkts,
            svc.stats.outpkts,
            svc.stats.inbytes,
            svc.stats.outbytes,
        ] {
            largenum(out, v, f.exact);
        }
    } else if f.rate {
        let _ = write!(out, "{name:<33}");
        for v in [
            svc.rates.cps,
            svc.rates.inpps,
            svc.rates.outpps,
            svc.rates.inbps,
            svc.rates.outbps,
        ] {
            largenum(out, v, f.exact);
        }
    } else {
        // "%s %s", then " (flags)", " persistent %u", " mask %s"
        let _ = write!(out, "{name} {}", svc.scheduler);
        let flags = sched_flags(svc.scheduler, &svc.flags);
        if !flags.is_empty() {
            let _ = write!(out, " ({flags})");
        }
        if let Some(t) = svc.persistence_timeout {
            let _ = write!(out, " persistent {t}");
            let mask = svc.persistence_netmask.unwrap_or(Ipv4Addr::BROADCAST);
            if mask != Ipv4Addr::BROADCAST {
                let _ = write!(out, " mask {mask}");
            }
        }
    }
    out.push('\n');

    let mut servers: Vec<&ServerView> = svc.servers.iter().collect();
    if !f.nosort {
        // ipvs_cmp_dests: address, then port.
        servers.sort_by_key(|d| (u32::from(d.address), d.port));
    }
    for d in servers {
        let dname = cut(addrport(d.address, d.port, proto, f.numeric, names), 28);
        if f.stats {
            // "  -> %-28s" then print_largenum × 5
            let _ = write!(out, "  -> {dname:<28}");
            for v in [
                d.stats.conns,
                d.stats.inpkts,
                d.stats.outpkts,
                d.stats.inbytes,
                d.stats.outbytes,
            ] {
                largenum(out, v, f.exact);
            }
        } else if f.rate {
            // "  -> %-28s %8llu %8llu %8llu" then print_largenum × 2
            let _ = write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                d.rates.cps, d.rates.inpps, d.rates.outpps
            );
            largenum(out, d.rates.inbps, f.exact);
            largenum(out, d.rates.outbps, f.exact);
        } else if f.thresholds {
            // "  -> %-28s %-10u %-10u %-10u %-10u\n"
            let _ = write!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                d.upper, d.lower, d.active, d.inactive
            );
        } else if f.persistent_conn {
            // "  -> %-28s %-9u %-11u %-10u %-10u\n"
            let _ = write!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                d.weight, d.persistent, d.active, d.inactive
            );
        } else {
            // "  -> %-28s %-7s %-6d %-10u %-10u\n"
            let _ = write!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                d.forward.ipvsadm_name(),
                d.weight,
                d.active,
                d.inactive
            );
        }
        out.push('\n');
    }
}

/// `-L` (`list_all`): the version line, the title, every service (sorted unless `--nosort`).
pub fn list_all(view: &StatsView, f: &Format, names: &Names) -> String {
    let mut out = format!("{VERSION_LINE}\n");
    title(&mut out, f);
    let mut services: Vec<&ServiceView> = view.services.iter().collect();
    if !f.nosort {
        services.sort_by_key(|s| service_order(&s.id.0));
    }
    for s in services {
        service_entry(&mut out, s, f, names);
    }
    out
}

/// `-L -t service` (`list_service`): the title and that service, no version line.
pub fn list_service(svc: &ServiceView, f: &Format, names: &Names) -> String {
    let mut out = String::new();
    title(&mut out, f);
    service_entry(&mut out, svc, f, names);
    out
}

/// `-L -c` (`list_conn`/`print_conn`), `--persistent-conn` adding the (empty) persistence
/// engine columns to the header as ipvsadm does.
pub fn connections(conns: &[ConnView], f: &Format, names: &Names) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if f.persistent_conn {
        // "pro expire %-11s %-18s %-18s %-18s %-16s %s\n"
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        // "pro expire %-11s %-18s %-18s %s\n"
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in conns {
        let proto = match c.protocol.as_str() {
            "tcp" | "TCP" => Some(Protocol::Tcp),
            "udp" | "UDP" => Some(Protocol::Udp),
            _ => None,
        };
        let name = |a: std::net::SocketAddrV4| addrport(*a.ip(), a.port(), proto, f.numeric, names);
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        // "%-3s %-6s %-11s %-18s %-18s %s\n"
        let _ = writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            c.protocol.to_ascii_uppercase(),
            expire,
            c.state,
            name(c.client),
            name(c.virtual_addr),
            name(c.destination)
        );
    }
    out
}

/// `-L --timeout` (`list_timeout`): `"Timeout (tcp tcpfin udp): %d %d %d\n"`.
pub fn timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp, t.tcp_fin, t.udp
    )
}

/// `-S` (`print_service_entry` with `FMT_RULE`), in configuration order so that a restore
/// rebuilds the same server lists (the order rr, wrr ties, dh and sh depend on):
///
/// * `"-A %s -s %s"`, `" -p %u"`, `" -M %s"` (when not /32), `" -b %s"` (flags);
/// * rvsadm adds `-P svc -z LIP` per FullNAT local address (DPVS keeps those out of `-S`, so
///   its rules would not restore a FullNAT service);
/// * `"-a %s -r %s %s -w %d"`, with `-b` for FullNAT as DPVS, and `-x`/`-y` when set (ipvsadm
///   drops the thresholds from `-S`; both tools accept them back).
pub fn save(profile: &Profile, numeric: bool, names: &Names) -> String {
    let mut out = String::new();
    for svc in &profile.services {
        let key = svc.key();
        let name = rule_name(key, numeric, names);
        let _ = write!(out, "-A {name} -s {}", svc.scheduler);
        if let Some(p) = svc.persistence {
            let _ = write!(out, " -p {}", p.timeout);
            if p.netmask != Ipv4Addr::BROADCAST {
                let _ = write!(out, " -M {}", p.netmask);
            }
        }
        let flags = sched_flags(svc.scheduler, &svc.flags);
        if !flags.is_empty() {
            let _ = write!(out, " -b {flags}");
        }
        out.push('\n');
        for lip in &svc.local_addresses {
            let _ = writeln!(out, "-P {name} -z {lip}");
        }
        let proto = Some(key_protocol(key));
        for d in &svc.servers {
            let dname = addrport(d.address, effective_port(svc, d), proto, numeric, names);
            let _ = write!(
                out,
                "-a {name} -r {dname} {} -w {}",
                fwd_switch(d.forward),
                d.weight
            );
            if d.upper != 0 {
                let _ = write!(out, " -x {}", d.upper);
            }
            if d.lower != 0 {
                let _ = write!(out, " -y {}", d.lower);
            }
            out.push('\n');
        }
    }
    out
}

/// `-G` (DPVS `list_laddrs`/`list_all_laddrs`): the title once, then per service
/// `"%-20s %-8u \n"` (VIP:VPORT, number of LIPs) and per LIP
/// `"%-20s %-8s %-20s %-10lu %-10u\n"` (blank, blank, LIP, port conflicts, connections).
/// RVS keeps no per-LIP counters, so the last two columns are 0.
pub fn laddrs(services: &[Service]) -> String {
    let mut out = String::new();
    for (i, svc) in services.iter().enumerate() {
        if i == 0 {
            let _ = writeln!(
                out,
                "{:<20} {:<8} {:<20} {:<10} {:<10}",
                "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"
            );
        }
        let vname = match svc.key() {
            ServiceKey::Addr { vip, port, .. } => format!("{vip}:{port}"),
            ServiceKey::Fwmark(m) => format!("FWM  {m}"),
        };
        let _ = writeln!(out, "{vname:<20} {:<8} ", svc.local_addresses.len());
        for lip in &svc.local_addresses {
            let _ = writeln!(
                out,
                "{:<20} {:<8} {:<20} {:<10} {:<10}",
                "",
                "",
                lip.to_string(),
                0,
                0
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Rates, ServiceId, Stats};
    use crate::rvsadm::names::tests::names;

    /// Expected text is written like `cat -A`: every line ends in `$`, so trailing blanks
    /// (which ipvsadm's `%-10u` leaves) are visible.
    fn text(marked: &str) -> String {
        marked
            .lines()
            .map(|l| format!("{}\n", l.strip_suffix('$').expect("line ends in $")))
            .collect()
    }

    fn server(
        addr: &str,
        port: u16,
        fwd: Forward,
        weight: u32,
        active: u64,
        inactive: u64,
    ) -> ServerView {
        ServerView {
            address: addr.parse().unwrap(),
            port,
            forward: fwd,
            weight,
            config_weight: weight,
            upper: 0,
            lower: 0,
            active,
            inactive,
            persistent: 0,
            stats: Stats::default(),
            rates: Rates::default(),
            sorry: false,
        }
    }

    fn service(
        id: &str,
        sched: Scheduler,
        persist: Option<u32>,
        servers: Vec<ServerView>,
    ) -> ServiceView {
        ServiceView {
            id: id.parse::<ServiceId>().unwrap(),
            scheduler: sched,
            flags: vec![],
            persistence_timeout: persist,
            persistence_netmask: persist.map(|_| Ipv4Addr::BROADCAST),
            local_addresses: vec![],
            stats: Stats::default(),
            rates: Rates::default(),
            servers,
        }
    }

    fn view(services: Vec<ServiceView>) -> StatsView {
        StatsView {
            services,
            total: Stats::default(),
            total_rates: Rates::default(),
            workers: vec![],
            generation: 1,
        }
    }

    fn fmt(f: impl FnOnce(&mut Format)) -> Format {
        let mut x = Format::default();
        f(&mut x);
        x
    }

    #[test]
    fn list_numeric_matches_the_seed_output() {
        // Seed 002 after `-E -s wrr` and `-e ... -w 3`; layout "  -> %-28s %-7s %-6d %-10u %-10u\n".
        let v = view(vec![service(
            "tcp:192.168.0.200:80",
            Scheduler::Wrr,
            None,
            vec![
                server("172.16.100.11", 80, Forward::Nat, 1, 0, 2),
                server("172.16.100.10", 80, Forward::Nat, 3, 0, 2),
            ],
        )]);
        assert_eq!(
            list_all(&v, &fmt(|f| f.numeric = true), &names()),
            text(
                "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port Scheduler Flags$
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn$
TCP  192.168.0.200:80 wrr$
  -> 172.16.100.10:80             Masq    3      0          2         $
  -> 172.16.100.11:80             Masq    1      0          2         $
"
            )
        );
        // --nosort keeps the API's (configuration) order.
        let out = list_all(
            &v,
            &fmt(|f| {
                f.numeric = true;
                f.nosort = true
            }),
            &names(),
        );
        assert!(out.contains("-> 172.16.100.11:80             Masq    1      0          2         \n  -> 172.16.100.10"));
        // An empty table is the two title lines.
        assert_eq!(
            list_all(&view(vec![]), &Format::default(), &names()),
            text(
                "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port Scheduler Flags$
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn$
"
            )
        );
    }

    #[test]
    fn list_with_names_flags_persistence_and_every_forward_mode() {
        let mut svcs = vec![
            service(
                "udp:10.0.0.100:53",
                Scheduler::Sh,
                None,
                vec![server("10.0.0.13", 53, Forward::Tun, 1, 0, 7)],
            ),
            service(
                "fwmark:8",
                Scheduler::Rr,
                Some(600),
                vec![server("172.16.100.10", 0, Forward::Dr, 2, 1, 0)],
            ),
            service(
                "tcp:172.16.100.100:80",
                Scheduler::Rr,
                Some(600),
                vec![
                    server("10.0.0.12", 8080, Forward::Fnat, 0, 3, 4),
                    server("10.0.0.11", 80, Forward::Dr, 65535, 123456, 99),
                ],
            ),
        ];
        svcs[0].flags = vec![SchedFlag::ShPort, SchedFlag::ShFallback];
        svcs[2].persistence_netmask = Some("255.255.255.0".parse().unwrap());
        // Sorted as ipvs_cmp_services: address services (TCP before UDP), then fwmarks.
        assert_eq!(
            list_all(&view(svcs), &Format::default(), &names()),
            text(
                "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port Scheduler Flags$
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn$
TCP  172.16.100.100:http rr persistent 600 mask 255.255.255.0$
  -> 10.0.0.11:http               Route   65535  123456     99        $
  -> 10.0.0.12:http-alt           FullNat 0      3          4         $
UDP  10.0.0.100:domain sh (sh-fallback,sh-port)$
  -> 10.0.0.13:domain             Tunnel  1      0          7         $
FWM  8 rr persistent 600$
  -> 172.16.100.10:0              Route   2      1          0         $
"
            )
        );
    }

    #[test]
    fn persistent_conn_listing_matches_the_seed_output() {
        // Seed 002 `ipvsadm -L --persistent-conn`: "%-33s %-9s %-11s %-10s %-10s" and
        // "  -> %-28s %-9u %-11u %-10u %-10u".
        let mut a = server("172.16.100.10", 80, Forward::Dr, 1, 0, 0);
        let mut b = server("172.16.100.11", 80, Forward::Dr, 2, 0, 16);
        a.persistent = 0;
        b.persistent = 1;
        let v = view(vec![service(
            "tcp:172.16.100.100:80",
            Scheduler::Rr,
            Some(600),
            vec![a, b],
        )]);
        assert_eq!(
            list_all(&v, &fmt(|f| f.persistent_conn = true), &names()),
            text(
                "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn $
  -> RemoteAddress:Port$
TCP  172.16.100.100:http rr persistent 600$
  -> 172.16.100.10:http           1         0           0          0         $
  -> 172.16.100.11:http           2         1           0          16        $
"
            )
        );
    }

    #[test]
    fn stats_and_rate_use_print_largenum() {
        let mut a = server("10.0.0.11", 80, Forward::Dr, 1, 0, 0);
        a.stats = Stats {
            conns: 12,
            inpkts: 99_999_999,
            outpkts: 100_000_000,
            inbytes: 123_456_789_012,
            outbytes: 0,
        };
        a.rates = Rates {
            cps: 1,
            inpps: 150_000_000,
            outpps: 0,
            inbps: 2_000_000_000,
            outbps: 999,
        };
        let mut s = service("tcp:10.0.0.100:80", Scheduler::Wlc, None, vec![a]);
        s.stats = Stats {
            conns: 12,
            inpkts: 100,
            outpkts: 0,
            inbytes: 150_000_000_000_000,
            outbytes: 42,
        };
        s.rates = Rates {
            cps: 1,
            inpps: 2,
            outpps: 3,
            inbps: 1_000_000_000,
            outbps: 4,
        };
        let v = view(vec![s]);
        // "%-33s %8s %8s %8s %8s %8s" titles; rows "%-33s"/"  -> %-28s" + "%9llu" or "%8lluK|M|G|T".
        assert_eq!(
            list_all(
                &v,
                &fmt(|f| {
                    f.numeric = true;
                    f.stats = true
                }),
                &names()
            ),
            text(
                "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes$
  -> RemoteAddress:Port$
TCP  10.0.0.100:80                      12      100        0     150T       42$
  -> 10.0.0.11:80                       12 99999999  100000K     123G        0$
"
            )
        );
        // --rate: servers print cps/inpps/outpps with "%8llu" (never abbreviated).
        assert_eq!(
            list_all(
                &v,
                &fmt(|f| {
                    f.numeric = true;
                    f.rate = true
                }),
                &names()
            ),
            text(
                "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS$
  -> RemoteAddress:Port$
TCP  10.0.0.100:80                       1        2        3    1000M        4$
  -> 10.0.0.11:80                        1 150000000        0    2000M      999$
"
            )
        );
        // --exact: "%*llu" of width max(9, len + 1).
        assert_eq!(
            list_all(
                &v,
                &fmt(|f| {
                    f.numeric = true;
                    f.stats = true;
                    f.exact = true
                }),
                &names()
            ),
            text(
                "IP Virtual Server version 1.2.1 (size=4096)$
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes$
  -> RemoteAddress:Port$
TCP  10.0.0.100:80                      12      100        0 150000000000000       42$
  -> 10.0.0.11:80                       12 99999999 100000000 123456789012        0$
"
            )
        );
    }

    #[test]
    fn thresholds_and_single_service_listing() {
        let mut a = server("10.0.0.11", 80, Forward::Nat, 1, 5, 6);
        a.upper = 100;
        a.lower = 50;
        let s = service("tcp:10.0.0.100:80", Scheduler::Lc, None, vec![a]);
        // list_service prints no version line.
        assert_eq!(
            list_service(
                &s,
                &fmt(|f| {
                    f.numeric = true;
                    f.thresholds = true
                }),
                &names()
            ),
            text(
                "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn $
  -> RemoteAddress:Port$
TCP  10.0.0.100:80 lc$
  -> 10.0.0.11:80                 100        50         5          6         $
"
            )
        );
    }

    #[test]
    fn connections_match_the_seed_output() {
        let conn =
            |proto: &str, exp: u32, state: &str, c: &str, v: &str, d: &str, template: bool| {
                ConnView {
                    protocol: proto.to_owned(),
                    expires: exp,
                    state: state.to_owned(),
                    client: c.parse().unwrap(),
                    virtual_addr: v.parse().unwrap(),
                    destination: d.parse().unwrap(),
                    local: None,
                    template,
                    worker: 0,
                }
            };
        let conns = vec![
            conn(
                "tcp",
                108,
                "FIN_WAIT",
                "10.10.10.22:3065",
                "10.10.10.213:80",
                "10.10.10.217:80",
                false,
            ),
            conn(
                "tcp",
                49,
                "SYN_RECV",
                "10.10.10.22:3068",
                "10.10.10.213:80",
                "10.10.10.216:80",
                false,
            ),
        ];
        // Seed 003 `ipvsadm -lnc`: "%-3s %-6s %-11s %-18s %-18s %s".
        assert_eq!(
            connections(&conns, &fmt(|f| f.numeric = true), &names()),
            text(
                "IPVS connection entries$
pro expire state       source             virtual            destination$
TCP 01:48  FIN_WAIT    10.10.10.22:3065   10.10.10.213:80    10.10.10.217:80$
TCP 00:49  SYN_RECV    10.10.10.22:3068   10.10.10.213:80    10.10.10.216:80$
"
            )
        );
        // Seed 002 `ipvsadm -L -c` with names, a template, and a fwmark template (IP).
        let conns = vec![
            conn(
                "tcp",
                872,
                "ESTABLISHED",
                "172.16.100.2:52735",
                "172.16.100.100:22",
                "172.16.100.11:22",
                false,
            ),
            conn(
                "tcp",
                480,
                "NONE",
                "172.16.100.2:0",
                "172.16.100.100:80",
                "172.16.100.11:80",
                true,
            ),
            conn(
                "ip",
                9,
                "NONE",
                "172.16.100.2:0",
                "172.16.100.100:0",
                "172.16.100.11:0",
                true,
            ),
            conn(
                "udp",
                6000,
                "UDP",
                "10.0.0.1:5353",
                "10.0.0.100:53",
                "10.0.0.13:53",
                false,
            ),
        ];
        assert_eq!(
            connections(&conns, &Format::default(), &names()),
            text(
                "IPVS connection entries$
pro expire state       source             virtual            destination$
TCP 14:32  ESTABLISHED 172.16.100.2:52735 172.16.100.100:ssh 172.16.100.11:ssh$
TCP 08:00  NONE        172.16.100.2:0     172.16.100.100:http 172.16.100.11:http$
IP  00:09  NONE        172.16.100.2:0     172.16.100.100:0   172.16.100.11:0$
UDP 100:00 UDP         10.0.0.1:5353      10.0.0.100:domain  10.0.0.13:domain$
"
            )
        );
        // --persistent-conn adds the persistence-engine columns to the header only.
        assert_eq!(
            connections(&[], &fmt(|f| f.persistent_conn = true), &names()),
            text(
                "IPVS connection entries$
pro expire state       source             virtual            destination        pe name          pe_data$
"
            )
        );
    }

    #[test]
    fn timeout_line() {
        assert_eq!(
            timeouts(&Timeouts::default()),
            "Timeout (tcp tcpfin udp): 900 120 300\n"
        );
    }

    /// A profile with every kind of service the rules can express.
    pub(crate) fn rich_profile() -> Profile {
        let mut p = crate::rvsadm::restore::tests::empty_profile();
        let srv = |a: &str, port: u16, w: u32, fwd: Forward| rvs_config::Server {
            address: a.parse().unwrap(),
            port,
            weight: w,
            forward: fwd,
            upper: 0,
            lower: 0,
        };
        let mut web = crate::rvsadm::restore::new_service(&crate::rvsadm::parse::ServiceSpec {
            key: "tcp:10.0.0.100:80".parse::<ServiceId>().unwrap().0,
            scheduler: Scheduler::Rr,
            flags: vec![],
            persistence: Some(rvs_config::Persistence {
                timeout: 360,
                netmask: Ipv4Addr::BROADCAST,
            }),
        });
        web.servers = vec![
            srv("10.0.0.12", 80, 1, Forward::Dr),
            srv("10.0.0.11", 80, 3, Forward::Tun),
            rvs_config::Server {
                upper: 200,
                lower: 10,
                ..srv("10.0.0.13", 8080, 0, Forward::Nat)
            },
        ];
        let mut dns = crate::rvsadm::restore::new_service(&crate::rvsadm::parse::ServiceSpec {
            key: "udp:10.0.0.100:53".parse::<ServiceId>().unwrap().0,
            scheduler: Scheduler::Sh,
            flags: vec![SchedFlag::ShPort, SchedFlag::ShFallback],
            persistence: Some(rvs_config::Persistence {
                timeout: 600,
                netmask: "255.255.255.0".parse().unwrap(),
            }),
        });
        dns.local_addresses = vec!["10.0.1.10".parse().unwrap(), "10.0.1.11".parse().unwrap()];
        dns.servers = vec![srv("10.0.2.5", 5353, 2, Forward::Fnat)];
        let mut mark = crate::rvsadm::restore::new_service(&crate::rvsadm::parse::ServiceSpec {
            key: ServiceKey::Fwmark(8),
            scheduler: Scheduler::Wlc,
            flags: vec![],
            persistence: None,
        });
        mark.servers = vec![srv("172.16.100.10", 0, 2, Forward::Dr)];
        p.services = vec![web, dns, mark];
        p
    }

    #[test]
    fn save_numeric_and_named() {
        let p = rich_profile();
        // "-A %s -s %s" " -p %u" " -M %s" " -b flags"; "-a %s -r %s %s -w %d".
        assert_eq!(
            save(&p, true, &names()),
            "-A -t 10.0.0.100:80 -s rr -p 360\n\
             -a -t 10.0.0.100:80 -r 10.0.0.12:80 -g -w 1\n\
             -a -t 10.0.0.100:80 -r 10.0.0.11:80 -i -w 3\n\
             -a -t 10.0.0.100:80 -r 10.0.0.13:8080 -m -w 0 -x 200 -y 10\n\
             -A -u 10.0.0.100:53 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port\n\
             -P -u 10.0.0.100:53 -z 10.0.1.10\n\
             -P -u 10.0.0.100:53 -z 10.0.1.11\n\
             -a -u 10.0.0.100:53 -r 10.0.2.5:5353 -b -w 2\n\
             -A -f 8 -s wlc\n\
             -a -f 8 -r 172.16.100.10:0 -g -w 2\n"
        );
        assert_eq!(
            save(&p, false, &names()),
            "-A -t 10.0.0.100:http -s rr -p 360\n\
             -a -t 10.0.0.100:http -r 10.0.0.12:http -g -w 1\n\
             -a -t 10.0.0.100:http -r 10.0.0.11:http -i -w 3\n\
             -a -t 10.0.0.100:http -r 10.0.0.13:http-alt -m -w 0 -x 200 -y 10\n\
             -A -u 10.0.0.100:domain -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port\n\
             -P -u 10.0.0.100:domain -z 10.0.1.10\n\
             -P -u 10.0.0.100:domain -z 10.0.1.11\n\
             -a -u 10.0.0.100:domain -r 10.0.2.5:5353 -b -w 2\n\
             -A -f 8 -s wlc\n\
             -a -f 8 -r 172.16.100.10:0 -g -w 2\n"
        );
        // Seed 003's saved file.
        let mut q = crate::rvsadm::restore::tests::empty_profile();
        crate::rvsadm::restore::restore(
            &mut q,
            "-A -t 10.10.10.213:80 -s rr\n-a -t 10.10.10.213:80 -r 10.10.10.216:80 -g -w 1\n-a -t 10.10.10.213:80 -r 10.10.10.217:80 -g -w 1\n",
            &names(),
            false,
        )
        .unwrap();
        assert_eq!(
            save(&q, true, &names()),
            "-A -t 10.10.10.213:80 -s rr\n-a -t 10.10.10.213:80 -r 10.10.10.216:80 -g -w 1\n-a -t 10.10.10.213:80 -r 10.10.10.217:80 -g -w 1\n"
        );
    }

    #[test]
    fn save_then_restore_round_trips() {
        let p = rich_profile();
        for numeric in [true, false] {
            let rules = save(&p, numeric, &names());
            let mut q = crate::rvsadm::restore::tests::empty_profile();
            crate::rvsadm::restore::restore(&mut q, &rules, &names(), false).unwrap();
            assert_eq!(q.services, p.services, "numeric={numeric}\n{rules}");
        }
    }

    #[test]
    fn get_laddr_is_dpvs_table() {
        let p = rich_profile();
        // "%-20s %-8s %-20s %-10s %-10s", "%-20s %-8u \n", "%-20s %-8s %-20s %-10lu %-10u".
        assert_eq!(
            laddrs(&p.services[..2]),
            text(
                "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     $
10.0.0.100:80        0        $
10.0.0.100:53        2        $
                              10.0.1.10            0          0         $
                              10.0.1.11            0          0         $
"
            )
        );
        assert_eq!(laddrs(&[]), "");
    }

    #[test]
    fn long_names_are_cut_like_ipvsadm() {
        let names = Names::from_text("averyveryverylongservicename 8443/tcp\n", "");
        let s = service(
            "tcp:192.168.100.200:8443",
            Scheduler::Rr,
            None,
            vec![server("192.168.100.201", 8443, Forward::Dr, 1, 0, 0)],
        );
        let out = list_service(&s, &Format::default(), &names);
        // svc_name[33] = '\0', dname[28] = '\0'.
        assert!(
            out.contains("\nTCP  192.168.100.200:averyveryver rr\n"),
            "{out}"
        );
        assert!(
            out.contains("\n  -> 192.168.100.201:averyveryver Route   1"),
            "{out}"
        );
    }
}
