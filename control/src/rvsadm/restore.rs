//! The meaning of each rvsadm command as a pure function over a [`Profile`], and `-R` built on
//! it: every line of the input is parsed and applied in order to a copy of the running
//! configuration, which is then installed with one `PUT /api/v1/config`, so a restore is
//! all-or-nothing where ipvsadm's is line by line.
//!
//! The single commands (`rvsadm -a …`) use the per-resource endpoints instead, so that the
//! server validates each change; they share [`new_service`] and [`edit_service`] with this
//! module so both paths build the same objects.

use std::net::Ipv4Addr;

use rvs_config::{Profile, Server, Service, ServiceKey, Timeouts};

use super::Failure;
use super::names::Names;
use super::parse::{self, Command, ServiceSpec};

/// The service `-A` creates: identity, scheduler, flags and persistence; no servers.
pub fn new_service(spec: &ServiceSpec) -> Service {
    let (vip, port, protocol, fwmark) = match spec.key {
        ServiceKey::Addr {
            protocol,
            vip,
            port,
        } => (Some(vip), Some(port), Some(protocol), None),
        ServiceKey::Fwmark(m) => (None, None, None, Some(m)),
    };
    Service {
        vip,
        port,
        protocol,
        fwmark,
        scheduler: spec.scheduler,
        flags: spec.flags.clone(),
        persistence: spec.persistence,
        local_addresses: Vec::new(),
        sorry_server: None,
        health_check: None,
        tunnel: None,
        servers: Vec::new(),
    }
}

/// `-E`: ipvsadm's edit sends a whole service entry, so the scheduler, its flags and the
/// persistence become exactly what the command says (an omitted `-s` is `wlc`, an omitted
/// `-p` removes persistence). Servers, local addresses, health check, sorry server and tunnel
/// type — which ipvsadm's edit does not carry — are kept.
pub fn edit_service(service: &mut Service, spec: &ServiceSpec) {
    service.scheduler = spec.scheduler;
    service.flags = spec.flags.clone();
    service.persistence = spec.persistence;
}

/// A server's port as the profile means it: 0 is the service's port.
pub fn effective_port(service: &Service, server: &Server) -> u16 {
    match (server.port, service.fwmark) {
        (0, None) => service.port.unwrap_or(0),
        (p, _) => p,
    }
}

fn find(profile: &mut Profile, key: ServiceKey) -> Option<&mut Service> {
    profile.services.iter_mut().find(|s| s.key() == key)
}

fn server_index(service: &Service, address: Ipv4Addr, port: u16) -> Option<usize> {
    service
        .servers
        .iter()
        .position(|s| s.address == address && effective_port(service, s) == port)
}

/// `--set tcp tcpfin udp`: a 0 keeps the current value.
pub fn merge_timeouts(current: Timeouts, tcp: u32, tcp_fin: u32, udp: u32) -> Timeouts {
    let pick = |new: u32, old: u32| if new == 0 { old } else { new };
    Timeouts {
        tcp: pick(tcp, current.tcp),
        tcp_fin: pick(tcp_fin, current.tcp_fin),
        udp: pick(udp, current.udp),
    }
}

/// Applies one configuration command to `profile`, with ipvsadm's (libipvs `ipvs_strerror`)
/// messages for what the kernel would refuse. Listing commands are not configuration and
/// are refused.
pub fn apply(profile: &mut Profile, cmd: &Command) -> Result<(), Failure> {
    let refused = Failure::refused;
    match cmd {
        Command::AddService(spec) => {
            if find(profile, spec.key).is_some() {
                return Err(refused("Service already exists"));
            }
            profile.services.push(new_service(spec));
        }
        Command::EditService(spec) => {
            let s = find(profile, spec.key).ok_or_else(|| refused("No such service"))?;
            edit_service(s, spec);
        }
        Command::DeleteService(key) => {
            let before = profile.services.len();
            profile.services.retain(|s| s.key() != *key);
            if profile.services.len() == before {
                return Err(refused("No such service"));
            }
        }
        Command::Clear => profile.services.clear(),
        Command::AddServer(key, server) => {
            let s = find(profile, *key).ok_or_else(|| refused("Service not defined"))?;
            if server_index(s, server.address, server.port).is_some() {
                return Err(refused("Destination already exists"));
            }
            s.servers.push(*server);
        }
        Command::EditServer(key, server) => {
            let s = find(profile, *key).ok_or_else(|| refused("Service not defined"))?;
            let i = server_index(s, server.address, server.port)
                .ok_or_else(|| refused("No such destination"))?;
            s.servers[i] = *server;
        }
        Command::DeleteServer(key, address, port) => {
            let s = find(profile, *key).ok_or_else(|| refused("Service not defined"))?;
            let i =
                server_index(s, *address, *port).ok_or_else(|| refused("No such destination"))?;
            s.servers.remove(i);
        }
        Command::SetTimeouts { tcp, tcp_fin, udp } => {
            profile.timeouts = merge_timeouts(profile.timeouts, *tcp, *tcp_fin, *udp);
        }
        Command::AddLaddr(key, lip) => {
            let s = find(profile, *key).ok_or_else(|| refused("No such service"))?;
            if s.local_addresses.contains(lip) {
                return Err(refused("Local address already exists"));
            }
            s.local_addresses.push(*lip);
        }
        Command::DelLaddr(key, lip) => {
            let s = find(profile, *key).ok_or_else(|| refused("No such service"))?;
            let before = s.local_addresses.len();
            s.local_addresses.retain(|a| a != lip);
            if s.local_addresses.len() == before {
                return Err(refused("No such local address"));
            }
        }
        Command::List(..)
        | Command::Zero(_)
        | Command::Save { .. }
        | Command::Restore
        | Command::GetLaddr(_)
        | Command::Help
        | Command::Version => {
            return Err(Failure::usage(
                "only -A -E -D -C -a -e -d -P -Q and --set can be restored",
            ));
        }
    }
    Ok(())
}

/// The words of one restore line: ipvsadm's reader drops the word `ipvsadm` wherever it is
/// (so lines may begin with it); rvsadm also drops `rvsadm` and a path ending in either.
fn restore_words(line: &str) -> Vec<String> {
    let mut w = parse::words(line);
    w.retain(|x| x != "ipvsadm" && x != "rvsadm");
    if w.first()
        .is_some_and(|x| x.ends_with("/ipvsadm") || x.ends_with("/rvsadm"))
    {
        w.remove(0);
    }
    w
}

/// `-R`: applies every line of `input` (ipvsadm `-S` format, or any rvsadm configuration
/// commands; blank lines and `#` comments skipped) to `profile` in order. With `clear_first`
/// the table is emptied first, as `ipvsadm-restore` does. Returns how many commands were
/// applied; the first bad line is `line N: <error>` and leaves `profile` as it should be
/// discarded (the caller installs nothing).
pub fn restore(
    profile: &mut Profile,
    input: &str,
    names: &Names,
    clear_first: bool,
) -> Result<usize, Failure> {
    let mut applied = 0;
    if clear_first {
        apply(profile, &Command::Clear)?;
        applied += 1;
    }
    for (n, line) in input.lines().enumerate() {
        let words = restore_words(line);
        if words.is_empty() {
            continue;
        }
        let at = |e: Failure| Failure {
            message: format!("line {}: {}", n + 1, e.message_or_try_help()),
            code: e.code,
            try_help: false,
        };
        let cmd = parse::parse(&words, names).map_err(at)?;
        apply(profile, &cmd).map_err(at)?;
        applied += 1;
    }
    Ok(applied)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rvsadm::names::tests::names;
    use rvs_config::{Forward, Persistence, Protocol, SchedFlag, Scheduler};

    /// A minimal valid profile with no services.
    pub(crate) fn empty_profile() -> Profile {
        Profile::parse(
            "dataplane: { main_lcore: 0, workers: [1] }\n\
             ports:\n  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }\n",
            "test",
        )
        .unwrap()
    }

    fn run(p: &mut Profile, text: &str) -> Result<usize, String> {
        restore(p, text, &names(), false).map_err(|e| e.message)
    }

    #[test]
    fn commands_change_the_profile_like_ipvsadm_changes_the_table() {
        let mut p = empty_profile();
        let n = run(
            &mut p,
            "-A -t 10.0.0.100:80 -s rr -p 600\n\
             -a -t 10.0.0.100:80 -r 10.0.0.11 -g -w 3\n\
             -a -t 10.0.0.100:80 -r 10.0.0.12:8080 -m\n\
             -e -t 10.0.0.100:80 -r 10.0.0.12:8080 -m -w 5 -x 10\n\
             -E -t 10.0.0.100:80 -s wrr\n\
             --set 0 60 0\n",
        )
        .unwrap();
        assert_eq!(n, 6);
        let s = &p.services[0];
        assert_eq!(s.scheduler, Scheduler::Wrr);
        assert_eq!(
            s.persistence, None,
            "-E without -p drops persistence, as ipvsadm"
        );
        assert_eq!(s.servers.len(), 2);
        assert_eq!((s.servers[0].port, s.servers[0].weight), (80, 3));
        assert_eq!(
            s.servers[1],
            Server {
                address: "10.0.0.12".parse().unwrap(),
                port: 8080,
                weight: 5,
                forward: Forward::Nat,
                upper: 10,
                lower: 0
            }
        );
        assert_eq!(
            p.timeouts,
            Timeouts {
                tcp: 900,
                tcp_fin: 60,
                udp: 300
            }
        );

        run(
            &mut p,
            "-d -t 10.0.0.100:80 -r 10.0.0.11\n-P -t 10.0.0.100:80 -z 10.0.1.10",
        )
        .unwrap();
        assert_eq!(p.services[0].servers.len(), 1);
        assert_eq!(
            p.services[0].local_addresses,
            ["10.0.1.10".parse::<Ipv4Addr>().unwrap()]
        );
        run(
            &mut p,
            "-Q -t 10.0.0.100:80 -z 10.0.1.10\n-D -t 10.0.0.100:80",
        )
        .unwrap();
        assert!(p.services.is_empty());
    }

    #[test]
    fn refusals_use_libipvs_messages_and_name_the_line() {
        let mut p = empty_profile();
        run(&mut p, "-A -t 10.0.0.100:80").unwrap();
        let cases = [
            (
                "-A -t 10.0.0.100:80 -s rr",
                "line 1: Service already exists",
            ),
            ("\n-E -t 10.0.0.1:80", "line 2: No such service"),
            ("# c\n\n-D -t 10.0.0.1:80", "line 3: No such service"),
            (
                "-a -t 10.0.0.1:80 -r 10.0.0.11",
                "line 1: Service not defined",
            ),
            (
                "-e -t 10.0.0.100:80 -r 10.0.0.11",
                "line 1: No such destination",
            ),
            (
                "-d -t 10.0.0.100:80 -r 10.0.0.11",
                "line 1: No such destination",
            ),
            (
                "-Q -t 10.0.0.100:80 -z 10.0.1.1",
                "line 1: No such local address",
            ),
            (
                "-a -t 10.0.0.100:80 -r 10.0.0.11 -w 99999",
                "line 1: illegal weight specified",
            ),
            (
                "-L -n",
                "line 1: only -A -E -D -C -a -e -d -P -Q and --set can be restored",
            ),
            (
                "-R",
                "line 1: only -A -E -D -C -a -e -d -P -Q and --set can be restored",
            ),
            (
                "-x",
                "line 1: Try `rvsadm -h' or 'rvsadm --help' for more information.",
            ),
        ];
        for (text, want) in cases {
            let mut q = p.clone();
            assert_eq!(run(&mut q, text).unwrap_err(), want, "{text:?}");
        }
        let mut q = p.clone();
        assert_eq!(
            run(
                &mut q,
                "-a -t 10.0.0.100:80 -r 10.0.0.11\n-a -t 10.0.0.100:80 -r 10.0.0.11:80"
            )
            .unwrap_err(),
            "line 2: Destination already exists"
        );
    }

    #[test]
    fn restore_reads_ipvsadm_prefixed_lines_and_clears_first_when_asked() {
        let mut p = empty_profile();
        run(&mut p, "-A -t 10.0.0.1:80").unwrap();
        let n = restore(
            &mut p,
            "ipvsadm -A -t 10.0.0.100:http -s rr\n/sbin/ipvsadm -a -t 10.0.0.100:http -r 10.0.0.11:http -g -w 1  # web1\n",
            &names(),
            true,
        )
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(p.services.len(), 1, "the clear removed 10.0.0.1:80");
        assert_eq!(p.services[0].servers[0].port, 80);
    }

    #[test]
    fn new_and_edited_services_carry_only_what_ipvsadm_carries() {
        let spec = ServiceSpec {
            key: ServiceKey::Fwmark(8),
            scheduler: Scheduler::Sh,
            flags: vec![SchedFlag::ShPort],
            persistence: Some(Persistence::default()),
        };
        let s = new_service(&spec);
        assert_eq!(
            (s.fwmark, s.vip, s.port, s.protocol),
            (Some(8), None, None, None)
        );
        assert_eq!(s.key(), ServiceKey::Fwmark(8));
        let mut t = new_service(&ServiceSpec {
            key: ServiceKey::Addr {
                protocol: Protocol::Udp,
                vip: "10.0.0.1".parse().unwrap(),
                port: 53,
            },
            ..spec.clone()
        });
        t.servers.push(Server {
            address: "10.0.0.2".parse().unwrap(),
            port: 53,
            weight: 1,
            forward: Forward::Dr,
            upper: 0,
            lower: 0,
        });
        t.local_addresses.push("10.0.1.1".parse().unwrap());
        edit_service(
            &mut t,
            &ServiceSpec {
                scheduler: Scheduler::Wlc,
                flags: vec![],
                persistence: None,
                ..spec
            },
        );
        assert_eq!(
            (t.scheduler, t.flags.len(), t.persistence),
            (Scheduler::Wlc, 0, None)
        );
        assert_eq!((t.servers.len(), t.local_addresses.len()), (1, 1));
    }
}
