//! The example profile, defaults and normalization, the `to_yaml` round trip (by example and
//! by property), and robustness of the parser against damaged text.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rvs_config::{
    Control, Dataplane, Forward, FwmarkRule, HealthCheck, HealthCheckKind, Ipv4Prefix, OnFailure,
    Persistence, Port, PortRange, Profile, Protocol, Route, SchedFlag, Scheduler, Server, Service,
    ServiceKey, Timeouts,
};

const EXAMPLE: &str = include_str!("../example.yaml");

fn example() -> Profile {
    Profile::parse(EXAMPLE, "example.yaml").unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn example_profile_parses() {
    let p = example();
    assert_eq!(p.dataplane.eal, ["--in-memory", "-m", "256"]);
    assert_eq!(p.dataplane.main_lcore, 0);
    assert_eq!(p.dataplane.workers, [1]);
    assert_eq!(p.dataplane.flows_per_worker, 1 << 20);

    assert_eq!(p.ports.len(), 2);
    assert_eq!(p.ports[0].name, "dp0");
    assert_eq!(p.ports[0].device, "net_af_packet0,iface=d0");
    assert_eq!(
        p.ports[0].addresses,
        [Ipv4Prefix::new(Ipv4Addr::new(10, 0, 0, 10), 24)]
    );
    assert_eq!(p.ports[0].mtu, Some(1500));
    assert_eq!(p.ports[1].mtu, None);
    assert_eq!(p.ports[0].rx_descriptors, Some(4096));
    assert_eq!(p.ports[0].tx_descriptors, Some(1024));
    assert_eq!(
        (p.ports[1].rx_descriptors(), p.ports[1].tx_descriptors()),
        (1024, 1024)
    );

    assert_eq!(p.routes[0].prefix.to_string(), "0.0.0.0/0");
    assert_eq!(p.routes[0].via, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(p.timeouts, Timeouts::default());

    assert_eq!(p.fwmarks[0].mark, 8);
    assert_eq!(
        p.fwmarks[0].ports,
        [PortRange::single(443), PortRange::single(23)]
    );
    assert_eq!(
        p.fwmarks[1].ports,
        [PortRange {
            first: 8000,
            last: 8100
        }]
    );

    let web = &p.services[0];
    assert_eq!(web.key().to_string(), "TCP 10.0.0.100:80");
    assert_eq!(web.scheduler, Scheduler::Wrr);
    assert_eq!(web.persistence, Some(Persistence::default()));
    assert_eq!(web.local_addresses, [Ipv4Addr::new(10, 0, 1, 20)]);
    assert_eq!(
        web.sorry_server,
        Some(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 200), 80))
    );
    assert_eq!(web.servers[0].forward.ipvsadm_name(), "Route");
    assert_eq!(web.servers[1].forward.ipvsadm_name(), "Masq");
    assert_eq!(web.servers[2].forward.ipvsadm_name(), "FullNat");
    assert_eq!(web.servers[3].forward.ipvsadm_name(), "Tunnel");
    // An omitted server port is the service port.
    assert_eq!(web.servers[3].port, 80);
    assert!(web.uses_fnat());

    let dns = &p.services[1];
    assert_eq!(dns.key().to_string(), "UDP 10.0.0.100:53");
    assert_eq!(dns.flags, [SchedFlag::ShPort, SchedFlag::ShFallback]);
    assert_eq!(dns.servers[0].weight, 1);
    assert_eq!(dns.servers[0].forward, Forward::Dr);
    assert_eq!(dns.servers[0].port, 53);

    let all = &p.services[2];
    assert_eq!(all.key().to_string(), "TCP 10.0.0.102:0");
    assert_eq!(all.persistence.unwrap().timeout, 360);
    assert_eq!(
        all.persistence.unwrap().netmask,
        Ipv4Addr::new(255, 255, 255, 0)
    );
    assert_eq!(all.servers[0].port, 0);

    let marked = &p.services[3];
    assert_eq!(marked.key(), ServiceKey::Fwmark(8));
    assert_eq!(marked.key().to_string(), "FWM 8");
    let hc = marked.health_check.as_ref().unwrap();
    assert_eq!(hc.kind, HealthCheckKind::Script);
    assert_eq!(hc.on_failure(), OnFailure::Remove);

    assert_eq!(p.control.listen.to_string(), "127.0.0.1:9180");
    assert_eq!(p.control.token_file, Some(PathBuf::from("/etc/rvs/token")));
}

#[test]
fn example_file_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("example.yaml");
    assert_eq!(Profile::load(&path).unwrap(), example());
}

#[test]
fn optional_sections_default() {
    let p = Profile::parse(
        "dataplane: { main_lcore: 0, workers: [1, 2] }\nports:\n  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }\n",
        "min.yaml",
    )
    .unwrap();
    assert!(p.routes.is_empty() && p.fwmarks.is_empty() && p.services.is_empty());
    assert_eq!(
        p.timeouts,
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        }
    );
    assert_eq!(p.control, Control::default());
    assert_eq!(p.control.shm, PathBuf::from("/dev/shm/rvs"));
    assert_eq!(p.control.listen.to_string(), "127.0.0.1:9180");
    assert!(p.dataplane.eal.is_empty());
}

#[test]
fn empty_sections_read_as_defaults() {
    let p = Profile::parse(
        "dataplane:\n  eal:\n  main_lcore: 0\n  workers: [1]\nports:\n  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }\nroutes:\n  # - { prefix: 0.0.0.0/0, via: 10.0.0.1 }\ntimeouts:\nfwmarks:\nservices:\n  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    flags:\n    local_addresses:\n    servers:\ncontrol:\n",
        "empty.yaml",
    )
    .unwrap();
    assert!(p.routes.is_empty() && p.fwmarks.is_empty() && p.dataplane.eal.is_empty());
    assert_eq!(p.timeouts, Timeouts::default());
    assert_eq!(p.control, Control::default());
    let s = &p.services[0];
    assert!(s.flags.is_empty() && s.local_addresses.is_empty() && s.servers.is_empty());
}

#[test]
fn service_defaults() {
    let p = Profile::parse(
        "dataplane: { main_lcore: 0, workers: [1] }\nports:\n  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }\nservices:\n  - vip: 10.0.0.100\n    port: 443\n    protocol: tcp\n    persistence: {}\n    servers: [{ address: 10.0.0.11 }]\n",
        "svc.yaml",
    )
    .unwrap();
    let s = &p.services[0];
    assert_eq!(s.scheduler, Scheduler::Wlc);
    assert_eq!(
        s.persistence,
        Some(Persistence {
            timeout: 360,
            netmask: Ipv4Addr::BROADCAST
        })
    );
    assert_eq!(
        s.servers[0],
        Server {
            address: Ipv4Addr::new(10, 0, 0, 11),
            port: 443,
            weight: 1,
            forward: Forward::Dr,
            upper: 0,
            lower: 0
        }
    );
}

#[test]
fn names_round_trip_through_from_str() {
    for s in Scheduler::ALL {
        assert_eq!(s.as_str().parse::<Scheduler>(), Ok(s));
    }
    for f in SchedFlag::ALL {
        assert_eq!(f.as_str().parse::<SchedFlag>(), Ok(f));
    }
    assert_eq!(Scheduler::default(), Scheduler::Wlc);
    assert_eq!(Protocol::Udp.as_str(), "udp");
    assert_eq!(Forward::Fnat.as_str(), "fnat");
}

#[test]
fn example_round_trips() {
    let p = example();
    let text = p.to_yaml();
    assert_eq!(Profile::parse(&text, "round-trip.yaml"), Ok(p));
}

/// A profile built in code (no text): normalize, validate, serialize, parse back.
#[test]
fn built_profile_round_trips() {
    let mut p = Profile {
        dataplane: Dataplane {
            eal: vec!["--no-pci".into(), "--vdev=net_ring0".into(), "".into()],
            main_lcore: 3,
            workers: vec![4, 5],
            flows_per_worker: 4096,
            share_cpus: true,
        },
        ports: vec![Port {
            name: "p0".into(),
            device: "0000:00:08.0".into(),
            addresses: vec!["192.0.2.1/24".parse().unwrap()],
            mtu: Some(9000),
            rx_descriptors: Some(16384),
            tx_descriptors: Some(64),
        }],
        routes: vec![Route {
            prefix: "0.0.0.0/0".parse().unwrap(),
            via: Ipv4Addr::new(192, 0, 2, 254),
        }],
        timeouts: Timeouts {
            tcp: 1,
            tcp_fin: 2,
            udp: 3,
        },
        fwmarks: vec![FwmarkRule {
            mark: u32::MAX,
            protocol: Protocol::Udp,
            destination: "198.51.100.0/24".parse().unwrap(),
            ports: vec![PortRange {
                first: 1,
                last: 65535,
            }],
        }],
        services: vec![Service {
            vip: None,
            port: None,
            protocol: None,
            fwmark: Some(u32::MAX),
            scheduler: Scheduler::Lblc,
            flags: vec![],
            persistence: None,
            local_addresses: vec![Ipv4Addr::new(203, 0, 113, 9)],
            sorry_server: None,
            health_check: Some(HealthCheck::new(HealthCheckKind::Http)),
            tunnel: Some(rvs_config::Tunnel {
                kind: rvs_config::TunnelKind::Gue,
                port: Some(6080),
            }),
            servers: vec![Server {
                address: Ipv4Addr::new(8, 8, 8, 8),
                port: 0,
                weight: 65535,
                forward: Forward::Fnat,
                upper: 10,
                lower: 0,
            }],
        }],
        control: Control {
            shm: "/run/rvs.shm".into(),
            listen: "[::]:8080".parse().unwrap(),
            token_file: None,
        },
    };
    p.normalize();
    // The http check on an every-port service needs its own port.
    assert_eq!(
        p.validate().unwrap_err().path,
        "services[0].health_check.port"
    );
    p.services[0].health_check.as_mut().unwrap().port = Some(80);
    p.validate().unwrap();
    assert_eq!(Profile::parse(&p.to_yaml(), "built.yaml"), Ok(p));
}

/// Every line number an error reports exists in the text.
fn assert_line_in_text(text: &str, err: &rvs_config::ConfigError) {
    if let Some(line) = err.line {
        assert!(line >= 1 && line <= text.lines().count() + 1, "{err}");
    }
}

fn scheduler() -> impl Strategy<Value = Scheduler> {
    prop::sample::select(Scheduler::ALL.to_vec())
}

fn forward() -> impl Strategy<Value = Forward> {
    prop::sample::select(vec![Forward::Dr, Forward::Tun, Forward::Nat, Forward::Fnat])
}

/// EAL arguments: any printable text except the lcore options the validator refuses.
fn eal_arg() -> impl Strategy<Value = String> {
    const REFUSED: [&str; 5] = ["-l", "-c", "--lcores", "--main-lcore", "--master-lcore"];
    "[ -~]{0,16}".prop_filter("lcore options are refused", |a| {
        !REFUSED.iter().any(|r| a.starts_with(r))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `parse(to_yaml(p)) == p` over generated variations of the example.
    #[test]
    fn to_yaml_round_trips(
        eal in prop::collection::vec(eal_arg(), 0..4),
        workers in prop::collection::btree_set(1u32..128, 1..6),
        flows in 1024u32..=(1 << 28),
        name in "[a-zA-Z0-9_-]{1,15}",
        device in "[ -~]{1,24}",
        mtu in prop::option::of(68u16..=9600),
        rx_desc in prop::option::of((6u32..=14).prop_map(|b| 1u16 << b)),
        tx_desc in prop::option::of((6u32..=14).prop_map(|b| 1u16 << b)),
        tcp in 1u32..=2_147_483,
        sched in scheduler(),
        weights in prop::collection::vec(0u32..=65535, 4),
        nat_port in 1u16..=65535,
        fwd in forward(),
        upper in 0u32..1000,
        pers in prop::option::of((1u32..=2_147_483, 0u32..=32)),
        mark in 1u32..,
    ) {
        let mut p = example();
        p.dataplane.eal = eal;
        p.dataplane.workers = workers.into_iter().collect();
        p.dataplane.flows_per_worker = flows;
        p.ports[0].name = name;
        prop_assume!(p.ports[0].name != p.ports[1].name);
        prop_assume!(!device.trim().is_empty() && device != p.ports[1].device);
        p.ports[0].device = device;
        p.ports[0].mtu = mtu;
        p.ports[0].rx_descriptors = rx_desc;
        p.ports[1].tx_descriptors = tx_desc;
        p.timeouts.tcp = tcp;
        let web = &mut p.services[0];
        web.scheduler = sched;
        for (s, w) in web.servers.iter_mut().zip(weights) {
            s.weight = w;
        }
        web.servers[1].port = nat_port;
        web.servers[1].forward = fwd;
        if fwd.keeps_port() {
            web.servers[1].port = 80;
        }
        web.servers[2].upper = upper;
        web.servers[2].lower = upper / 2;
        web.persistence = pers.map(|(timeout, len)| Persistence {
            timeout,
            netmask: Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, len as u8).mask().into(),
        });
        for r in &mut p.fwmarks {
            r.mark = mark;
        }
        p.services[3].fwmark = Some(mark);
        // Two dr servers on the same address and port would be a duplicate.
        prop_assume!(!(fwd == Forward::Dr && p.services[0].servers[0].address == p.services[0].servers[1].address));

        p.validate().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let text = p.to_yaml();
        let back = Profile::parse(&text, "generated.yaml");
        prop_assert_eq!(back, Ok(p), "{}", text);
    }

    /// Deleting any one line of the example never panics, and an error's line is in the text.
    #[test]
    fn damaged_text_fails_cleanly(drop in 0usize..80, junk in "[ -~]{0,12}") {
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        let drop = drop % lines.len();
        let mut text = String::new();
        for (i, l) in lines.iter().enumerate() {
            if i == drop {
                text.push_str(&junk);
            } else {
                text.push_str(l);
            }
            text.push('\n');
        }
        if let Err(e) = Profile::parse(&text, "damaged.yaml") {
            assert_line_in_text(&text, &e);
            prop_assert!(!e.message.is_empty());
        }
    }

    /// Arbitrary text never panics the parser.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        if let Err(e) = Profile::parse(&text, "noise.yaml") {
            assert_line_in_text(&text, &e);
        }
    }
}

/// The contract crate stays free of the processes it connects, and rvs-control never links
/// the dataplane or DPDK (STYLE: "control never depends on dataplane or dpdk-bindings").
#[test]
fn dependency_direction() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let deps = |manifest: &Path| -> Option<String> {
        let text = std::fs::read_to_string(manifest).ok()?;
        let start = text.find("[dependencies]")?;
        let rest = &text[start + "[dependencies]".len()..];
        let end = rest.find("\n[").unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    };
    let own = deps(&root.join("Cargo.toml")).expect("config/Cargo.toml has [dependencies]");
    for forbidden in ["rvs-dataplane", "rvs-control", "dpdk"] {
        assert!(
            !own.lines().any(|l| l.trim_start().starts_with(forbidden)),
            "rvs-config must not depend on {forbidden}"
        );
    }
    if let Some(control) = deps(&root.join("../control/Cargo.toml")) {
        for forbidden in ["rvs-dataplane", "dpdk"] {
            assert!(
                !control
                    .lines()
                    .any(|l| l.trim_start().starts_with(forbidden)),
                "rvs-control must not depend on {forbidden}"
            );
        }
    }
}
