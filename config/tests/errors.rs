//! One test per class of profile error. Each test text marks the line the error must point
//! at with `# <-`; the test asserts the key path, that line, and a telling message.

use rvs_config::{ConfigError, Profile};

/// The smallest valid profile; tests append sections to it.
const BASE: &str = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
";

fn parse_err(text: &str) -> ConfigError {
    match Profile::parse(text, "test.yaml") {
        Ok(p) => panic!("profile should be rejected:\n{text}\nparsed as {p:#?}"),
        Err(e) => e,
    }
}

/// Asserts the error's path, its line (the line marked `# <-`) and part of its message.
#[track_caller]
fn check(text: &str, path: &str, message: &str) {
    let err = parse_err(text);
    let marked: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("# <-"))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(marked.len(), 1, "the test text must mark exactly one line");
    let line = marked[0];
    assert_eq!(err.path, path, "wrong path in `{err}`");
    assert_eq!(err.line, Some(line), "wrong line in `{err}`");
    assert!(
        err.message.contains(message),
        "message of `{err}` does not contain {message:?}"
    );
    let shown = err.to_string();
    let prefix = if path.is_empty() {
        format!("test.yaml:{line}: ")
    } else {
        format!("test.yaml:{line}: {path}: ")
    };
    assert!(
        shown.starts_with(&prefix),
        "`{shown}` should start with `{prefix}`"
    );
}

/// BASE plus one service with the given body lines (indented under `- `).
fn service(body: &str) -> String {
    format!("{BASE}services:\n{body}")
}

// ---------------------------------------------------------------- structure

#[test]
fn yaml_syntax_error() {
    let text = "\
dataplane:
  main_lcore: 0
  workers: [1} # <-
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
";
    check(text, "", "did not find expected ',' or ']'");
}

#[test]
fn unknown_key_at_top_level() {
    let text = format!("{BASE}service: [] # <-\n");
    check(&text, "service", "unknown field `service`");
}

#[test]
fn unknown_key_nested() {
    let text = service(concat!(
        "  - vip: 10.0.0.100\n",
        "    port: 80\n",
        "    protocol: tcp\n",
        "    servers:\n",
        "      - address: 10.0.0.11\n",
        "      - address: 10.0.0.12\n",
        "        wieght: 3 # <-\n",
    ));
    check(
        &text,
        "services[0].servers[1].wieght",
        "unknown field `wieght`",
    );
}

#[test]
fn wrong_type() {
    let text = "\
dataplane:
  main_lcore: zero # <-
  workers: [1]
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
";
    check(text, "dataplane.main_lcore", "invalid type");
}

#[test]
fn wrong_type_sequence_for_scalar() {
    let text = format!("{BASE}timeouts:\n  tcp: [900] # <-\n");
    check(&text, "timeouts.tcp", "expected u32");
}

#[test]
fn missing_required_key() {
    let text = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp0 # <-
    addresses: [10.0.0.10/24]
";
    check(text, "ports[0].device", "required key `device` is missing");
}

#[test]
fn missing_required_section() {
    let text = "dataplane: { main_lcore: 0, workers: [1] } # <-\n";
    check(text, "ports", "required key `ports` is missing");
}

#[test]
fn repeated_key() {
    let text = "\
dataplane:
  main_lcore: 0
  workers: [1]
  main_lcore: 2 # <-
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
";
    check(text, "dataplane.main_lcore", "given twice");
}

#[test]
fn empty_profile() {
    let err = parse_err("");
    assert_eq!(err.path, "dataplane");
    assert!(err.message.contains("missing"), "{err}");
}

// ---------------------------------------------------------------- addresses

#[test]
fn ipv6_port_address() {
    let text = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp0
    device: net_ring0
    addresses:
      - 10.0.0.10/24
      - fd00::10/64 # <-
";
    check(text, "ports[0].addresses[1]", "IPv6 is not supported yet");
}

#[test]
fn ipv6_vip_server_and_sorry_server() {
    let vip = service("  - vip: fd00::100 # <-\n    port: 80\n    protocol: tcp\n");
    check(&vip, "services[0].vip", "IPv6 is not supported yet");

    let server = service(
        "  - { vip: 10.0.0.100, port: 80, protocol: tcp }\n  - vip: 10.0.0.101\n    port: 80\n    protocol: tcp\n    servers:\n      - address: \"fd00::11\" # <-\n",
    );
    check(
        &server,
        "services[1].servers[0].address",
        "IPv6 is not supported yet",
    );

    let sorry = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    sorry_server: \"[fd00::1]:80\" # <-\n",
    );
    check(
        &sorry,
        "services[0].sorry_server",
        "IPv6 is not supported yet",
    );

    let lip = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    local_addresses: [10.0.0.50, \"::1\"] # <-\n",
    );
    check(
        &lip,
        "services[0].local_addresses[1]",
        "IPv6 is not supported yet",
    );
}

#[test]
fn not_an_address() {
    let text = service("  - vip: 10.0.0.300 # <-\n    port: 80\n    protocol: tcp\n");
    check(
        &text,
        "services[0].vip",
        "`10.0.0.300` is not an IPv4 address",
    );
}

#[test]
fn prefix_length_out_of_range() {
    let text = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp0
    device: net_ring0
    addresses: [10.0.0.10/33] # <-
";
    check(
        text,
        "ports[0].addresses[0]",
        "length `33` is not in 0..=32",
    );
}

#[test]
fn prefix_without_length() {
    let text = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp0
    device: net_ring0
    addresses: [10.0.0.10] # <-
";
    check(text, "ports[0].addresses[0]", "has no prefix length");
}

#[test]
fn port_address_is_network_or_broadcast() {
    let text = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp0
    device: net_ring0
    addresses:
      - 10.0.0.0/24 # <-
";
    check(text, "ports[0].addresses[0]", "network address");

    let text = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp0
    device: net_ring0
    addresses:
      - 10.0.0.10/24
      - 10.0.1.255/24 # <-
";
    check(text, "ports[0].addresses[1]", "broadcast address");

    // /31 and /32 have no network or broadcast address.
    let ok = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.0/31, 10.0.1.255/32] }
";
    Profile::parse(ok, "ok.yaml").unwrap();
}

#[test]
fn port_address_not_unicast() {
    let text = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp0
    device: net_ring0
    addresses: [224.0.0.5/24] # <-
";
    check(text, "ports[0].addresses[0]", "multicast");
}

#[test]
fn netmask_not_contiguous() {
    let text = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    persistence:\n      netmask: 255.0.255.0 # <-\n",
    );
    check(
        &text,
        "services[0].persistence.netmask",
        "netmask 255.0.255.0 is not contiguous",
    );
}

#[test]
fn route_prefix_with_host_bits() {
    let text = format!("{BASE}routes:\n  - {{ prefix: 172.16.5.1/12, via: 10.0.0.1 }} # <-\n");
    check(&text, "routes[0].prefix", "did you mean 172.16.0.0/12?");
}

// ---------------------------------------------------------------- lcores

#[test]
fn workers_empty() {
    let text = "\
dataplane:
  main_lcore: 0
  workers: [] # <-
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
";
    check(text, "dataplane.workers", "at least one worker");
}

#[test]
fn workers_duplicate() {
    let text = "\
dataplane:
  main_lcore: 0
  workers:
    - 1
    - 2
    - 1 # <-
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
";
    check(text, "dataplane.workers[2]", "lcore 1 is listed twice");
}

#[test]
fn main_lcore_among_workers() {
    let text = "\
dataplane:
  main_lcore: 2
  workers: [1, 2] # <-
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
";
    check(text, "dataplane.workers[1]", "lcore 2 is the main lcore");
}

#[test]
fn lcore_too_large() {
    let text = "\
dataplane:
  main_lcore: 0
  workers: [1, 128] # <-
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
";
    check(text, "dataplane.workers[1]", "RTE_MAX_LCORE (128)");
    let text = "\
dataplane:
  main_lcore: 300 # <-
  workers: [1]
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
";
    check(
        text,
        "dataplane.main_lcore",
        "lcore 300 is not below RTE_MAX_LCORE",
    );
}

#[test]
fn flows_per_worker_out_of_range() {
    for bad in ["1000", "268435457"] {
        let text = format!(
            "dataplane:\n  main_lcore: 0\n  workers: [1]\n  flows_per_worker: {bad} # <-\nports:\n  - {{ name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }}\n"
        );
        check(
            &text,
            "dataplane.flows_per_worker",
            &format!("flows_per_worker {bad} is not in 1024..=268435456"),
        );
    }
}

#[test]
fn eal_lcore_options_refused() {
    let text = "\
dataplane:
  eal:
    - --in-memory
    - -l # <-
    - 0-3
  main_lcore: 0
  workers: [1]
ports:
  - { name: dp0, device: net_ring0, addresses: [10.0.0.10/24] }
";
    check(text, "dataplane.eal[1]", "sets lcores");
}

// ---------------------------------------------------------------- ports

#[test]
fn no_ports() {
    let text = "dataplane: { main_lcore: 0, workers: [1] }\nports: [] # <-\n";
    check(text, "ports", "at least one port");
}

#[test]
fn port_name_rules() {
    let dup =
        format!("{BASE}  - {{ name: dp0, device: net_ring1, addresses: [10.0.1.10/24] }} # <-\n");
    check(
        &dup,
        "ports[1].name",
        "port name `dp0` is already used by ports[0]",
    );

    let bad = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp 0 # <-
    device: net_ring0
    addresses: [10.0.0.10/24]
";
    check(bad, "ports[0].name", "contains ` `");

    let empty = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: \"\" # <-
    device: net_ring0
    addresses: [10.0.0.10/24]
";
    check(empty, "ports[0].name", "port name is empty");

    let long = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: a-very-long-port-name # <-
    device: net_ring0
    addresses: [10.0.0.10/24]
";
    check(long, "ports[0].name", "longer than 15 characters");
}

#[test]
fn port_device_rules() {
    let dup =
        format!("{BASE}  - {{ name: dp1, device: net_ring0, addresses: [10.0.1.10/24] }} # <-\n");
    check(
        &dup,
        "ports[1].device",
        "device `net_ring0` is already used by ports[0]",
    );

    let empty = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp0
    device: \" \" # <-
    addresses: [10.0.0.10/24]
";
    check(empty, "ports[0].device", "device is empty");
}

#[test]
fn port_without_addresses() {
    let text = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp0
    device: net_ring0
    addresses: [] # <-
";
    check(text, "ports[0].addresses", "needs at least one address");
}

#[test]
fn port_prefixes_overlap() {
    let same = format!(
        "{BASE}  - name: dp1\n    device: net_ring1\n    addresses:\n      - 10.0.0.11/24 # <-\n"
    );
    check(
        &same,
        "ports[1].addresses[0]",
        "10.0.0.11/24 overlaps 10.0.0.10/24 of port `dp0`",
    );
    let wider = format!(
        "{BASE}  - name: dp1\n    device: net_ring1\n    addresses: [192.168.0.1/24, 10.0.0.1/8] # <-\n"
    );
    check(&wider, "ports[1].addresses[1]", "overlaps");
}

#[test]
fn port_address_listed_twice() {
    let text = "\
dataplane: { main_lcore: 0, workers: [1] }
ports:
  - name: dp0
    device: net_ring0
    addresses:
      - 10.0.0.10/24
      - 10.0.0.10/25 # <-
";
    check(text, "ports[0].addresses[1]", "listed twice");
}

#[test]
fn mtu_out_of_range() {
    for bad in [67, 9601] {
        let text = format!(
            "dataplane: {{ main_lcore: 0, workers: [1] }}\nports:\n  - name: dp0\n    device: net_ring0\n    addresses: [10.0.0.10/24]\n    mtu: {bad} # <-\n"
        );
        check(
            &text,
            "ports[0].mtu",
            &format!("mtu {bad} is not in 68..=9600"),
        );
    }
}

#[test]
fn descriptors_not_a_power_of_two_in_range() {
    for key in ["rx_descriptors", "tx_descriptors"] {
        for bad in [0, 32, 100, 1000, 32768] {
            let text = format!(
                "dataplane: {{ main_lcore: 0, workers: [1] }}\nports:\n  - name: dp0\n    device: net_ring0\n    addresses: [10.0.0.10/24]\n    {key}: {bad} # <-\n"
            );
            check(
                &text,
                &format!("ports[0].{key}"),
                &format!("{key} {bad} must be a power of two between 64 and 16384"),
            );
        }
    }
    // The second port's key, in flow style, is named by its index and line.
    let text = format!(
        "{BASE}  - {{ name: dp1, device: net_ring1, addresses: [10.0.1.10/24], rx_descriptors: 4096, tx_descriptors: 3000 }} # <-\n"
    );
    check(
        &text,
        "ports[1].tx_descriptors",
        "tx_descriptors 3000 must be a power of two",
    );
    // Beyond u16 the type itself refuses it.
    let text = format!(
        "{BASE}  - {{ name: dp1, device: net_ring1, addresses: [10.0.1.10/24], rx_descriptors: 65536 }} # <-\n"
    );
    check(&text, "ports[1].rx_descriptors", "65536");
}

#[test]
fn descriptors_in_range_are_accepted() {
    for good in [64, 128, 1024, 4096, 16384] {
        let text = format!(
            "dataplane: {{ main_lcore: 0, workers: [1] }}\nports:\n  - name: dp0\n    device: net_ring0\n    addresses: [10.0.0.10/24]\n    rx_descriptors: {good}\n    tx_descriptors: {good}\n"
        );
        let p = Profile::parse(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.ports[0].rx_descriptors, Some(good));
        assert_eq!(p.ports[0].tx_descriptors(), good);
    }
    let p = Profile::parse(BASE, "test.yaml").unwrap();
    assert_eq!(p.ports[0].rx_descriptors, None);
    assert_eq!(
        (p.ports[0].rx_descriptors(), p.ports[0].tx_descriptors()),
        (rvs_config::DEFAULT_DESCRIPTORS, 1024)
    );
}

// ---------------------------------------------------------------- routes

#[test]
fn route_gateway_not_on_link() {
    let text = format!("{BASE}routes:\n  - prefix: 0.0.0.0/0\n    via: 10.0.1.1 # <-\n");
    check(
        &text,
        "routes[0].via",
        "gateway 10.0.1.1 is not inside a connected prefix (port addresses: 10.0.0.10/24)",
    );
}

#[test]
fn route_gateway_is_own_address() {
    let text = format!("{BASE}routes:\n  - prefix: 0.0.0.0/0\n    via: 10.0.0.10 # <-\n");
    check(&text, "routes[0].via", "director's own address");
}

#[test]
fn route_duplicate_prefix() {
    let text = format!(
        "{BASE}routes:\n  - {{ prefix: 0.0.0.0/0, via: 10.0.0.1 }}\n  - {{ prefix: 0.0.0.0/0, via: 10.0.0.2 }} # <-\n"
    );
    check(
        &text,
        "routes[1].prefix",
        "route to 0.0.0.0/0 is already defined by routes[0]",
    );
}

// ---------------------------------------------------------------- timeouts

#[test]
fn timeouts_out_of_range() {
    let zero = format!("{BASE}timeouts:\n  tcp: 0 # <-\n");
    check(&zero, "timeouts.tcp", "timeout 0 is not in 1..=2147483");
    let big = format!("{BASE}timeouts: {{ tcp: 900, tcp_fin: 120, udp: 2147484 }} # <-\n");
    check(
        &big,
        "timeouts.udp",
        "timeout 2147484 is not in 1..=2147483",
    );
}

// ---------------------------------------------------------------- fwmarks

#[test]
fn fwmark_zero() {
    let text = format!(
        "{BASE}fwmarks:\n  - mark: 0 # <-\n    protocol: tcp\n    destination: 10.0.0.100/32\n    ports: [80]\n"
    );
    check(&text, "fwmarks[0].mark", "mark 0 means");
}

#[test]
fn fwmark_ports_empty() {
    let text = format!(
        "{BASE}fwmarks:\n  - mark: 8\n    protocol: tcp\n    destination: 10.0.0.100/32\n    ports: [] # <-\n"
    );
    check(&text, "fwmarks[0].ports", "at least one port");
}

#[test]
fn fwmark_port_out_of_range() {
    let zero = format!(
        "{BASE}fwmarks:\n  - mark: 8\n    protocol: tcp\n    destination: 10.0.0.100/32\n    ports:\n      - 80\n      - 0 # <-\n"
    );
    check(
        &zero,
        "fwmarks[0].ports[1]",
        "port 0 in `0` is not in 1..=65535",
    );
    let big = format!(
        "{BASE}fwmarks:\n  - mark: 8\n    protocol: tcp\n    destination: 10.0.0.100/32\n    ports:\n      - 70000 # <-\n"
    );
    check(
        &big,
        "fwmarks[0].ports[0]",
        "port 70000 is not in 1..=65535",
    );
    let range = format!(
        "{BASE}fwmarks:\n  - mark: 8\n    protocol: tcp\n    destination: 10.0.0.100/32\n    ports:\n      - \"8000-80000\" # <-\n"
    );
    check(&range, "fwmarks[0].ports[0]", "port 80000 in `8000-80000`");
    let word = format!(
        "{BASE}fwmarks:\n  - mark: 8\n    protocol: tcp\n    destination: 10.0.0.100/32\n    ports:\n      - http # <-\n"
    );
    check(&word, "fwmarks[0].ports[0]", "not a port or a port range");
}

#[test]
fn fwmark_range_backwards() {
    let text = format!(
        "{BASE}fwmarks:\n  - mark: 8\n    protocol: tcp\n    destination: 10.0.0.100/32\n    ports:\n      - \"8100-8000\" # <-\n"
    );
    check(&text, "fwmarks[0].ports[0]", "runs backwards");
}

#[test]
fn fwmark_protocols_disagree() {
    let text = format!(
        "{BASE}fwmarks:\n  - {{ mark: 8, protocol: tcp, destination: 10.0.0.100/32, ports: [80] }}\n  - mark: 8\n    protocol: udp # <-\n    destination: 10.0.0.100/32\n    ports: [53]\n"
    );
    check(
        &text,
        "fwmarks[1].protocol",
        "mark 8 is tcp in fwmarks[0] but udp here",
    );
}

#[test]
fn fwmark_rules_of_different_marks_overlap() {
    let text = format!(
        "{BASE}fwmarks:\n  - {{ mark: 8, protocol: tcp, destination: 10.0.0.0/24, ports: [\"1-1024\"] }}\n  - {{ mark: 9, protocol: tcp, destination: 10.0.0.100/32, ports: [443] }} # <-\n"
    );
    check(
        &text,
        "fwmarks[1]",
        "would carry both mark 8 (fwmarks[0]) and mark 9",
    );
}

// ---------------------------------------------------------------- services

#[test]
fn service_with_both_fwmark_and_vip() {
    let text = format!(
        "{BASE}fwmarks:\n  - {{ mark: 8, protocol: tcp, destination: 10.0.0.100/32, ports: [80] }}\nservices:\n  - fwmark: 8\n    vip: 10.0.0.100 # <-\n"
    );
    check(
        &text,
        "services[0].vip",
        "either `fwmark` or `vip`/`port`/`protocol`",
    );
}

#[test]
fn service_missing_protocol() {
    let text = service("  - vip: 10.0.0.100 # <-\n    port: 80\n    scheduler: rr\n");
    check(
        &text,
        "services[0].protocol",
        "required key `protocol` is missing",
    );
}

#[test]
fn service_with_neither_identity() {
    let text = service("  - scheduler: rr # <-\n");
    check(&text, "services[0].vip", "or `fwmark`");
}

#[test]
fn fwmark_service_undefined_mark() {
    let text = service("  - fwmark: 9 # <-\n    persistence: {}\n");
    check(
        &text,
        "services[0].fwmark",
        "mark 9 is not defined in `fwmarks`",
    );
}

#[test]
fn duplicate_services() {
    let text = service(
        "  - { vip: 10.0.0.100, port: 80, protocol: tcp }\n  - { vip: 10.0.0.100, port: 80, protocol: udp }\n  - { vip: 10.0.0.100, port: 80, protocol: tcp } # <-\n",
    );
    check(
        &text,
        "services[2]",
        "service TCP 10.0.0.100:80 is already defined by services[0]",
    );
    let marks = format!(
        "{BASE}fwmarks:\n  - {{ mark: 8, protocol: tcp, destination: 10.0.0.100/32, ports: [80] }}\nservices:\n  - {{ fwmark: 8 }}\n  - {{ fwmark: 8, scheduler: rr }} # <-\n"
    );
    check(
        &marks,
        "services[1]",
        "service FWM 8 is already defined by services[0]",
    );
}

#[test]
fn vip_is_a_dip() {
    let text = service("  - vip: 10.0.0.10 # <-\n    port: 80\n    protocol: tcp\n");
    check(
        &text,
        "services[0].vip",
        "VIP 10.0.0.10 is the director's own address (DIP) on port `dp0`",
    );
}

#[test]
fn unknown_scheduler_lists_the_valid_ones() {
    let text =
        service("  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    scheduler: wrrr # <-\n");
    check(
        &text,
        "services[0].scheduler",
        "unknown scheduler `wrrr` (valid: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq)",
    );
}

#[test]
fn scheduler_flags() {
    let unknown = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    scheduler: sh\n    flags: [sh-port, sh-random] # <-\n",
    );
    check(
        &unknown,
        "services[0].flags[1]",
        "unknown scheduler flag `sh-random`",
    );
    let wrong_sched = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    scheduler: wrr\n    flags: [sh-port] # <-\n",
    );
    check(
        &wrong_sched,
        "services[0].flags[0]",
        "only applies to the sh scheduler; this service uses wrr",
    );
    let twice = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    scheduler: sh\n    flags:\n      - sh-port\n      - sh-port # <-\n",
    );
    check(&twice, "services[0].flags[1]", "listed twice");
}

#[test]
fn persistence_timeout_out_of_range() {
    let text = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    persistence: { timeout: 0 } # <-\n",
    );
    check(
        &text,
        "services[0].persistence.timeout",
        "persistence timeout 0 is not in 1..=2147483",
    );
}

#[test]
fn port_zero_needs_persistence() {
    let text = service("  - vip: 10.0.0.100\n    port: 0 # <-\n    protocol: tcp\n");
    check(&text, "services[0].port", "needs `persistence`");
}

#[test]
fn sorry_server_invalid() {
    let text = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    sorry_server: 10.0.0.200 # <-\n",
    );
    check(&text, "services[0].sorry_server", "has no port");
}

// ---------------------------------------------------------------- servers

/// A service on 10.0.0.100:80/tcp with the given server lines.
fn servers(lines: &str) -> String {
    service(&format!(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    servers:\n{lines}"
    ))
}

#[test]
fn weight_out_of_range() {
    let text = servers("      - address: 10.0.0.11\n        weight: 65536 # <-\n");
    check(
        &text,
        "services[0].servers[0].weight",
        "weight 65536 is not in 0..=65535",
    );
}

#[test]
fn forward_invalid() {
    let text = servers("      - { address: 10.0.0.11, forward: dsr } # <-\n");
    check(
        &text,
        "services[0].servers[0].forward",
        "unknown variant `dsr`, expected one of `dr`, `tun`, `nat`, `fnat`",
    );
}

#[test]
fn server_listed_twice() {
    let text = servers(
        "      - { address: 10.0.0.11, forward: nat, port: 8080 }\n      - { address: 10.0.0.11, forward: nat, port: 8080 } # <-\n",
    );
    check(
        &text,
        "services[0].servers[1].address",
        "server 10.0.0.11:8080 is already in this service (servers[0])",
    );
    // The same address on another port is a different real server.
    let ok = servers(
        "      - { address: 10.0.0.11, forward: nat, port: 8080 }\n      - { address: 10.0.0.11, forward: nat, port: 8081 }\n",
    );
    Profile::parse(&ok, "ok.yaml").unwrap();
}

#[test]
fn dr_and_tun_cannot_map_ports() {
    let dr = servers("      - address: 10.0.0.11\n        port: 8080 # <-\n");
    check(
        &dr,
        "services[0].servers[0].port",
        "dr cannot map ports: server port 8080 must equal the service port 80",
    );
    let tun = servers("      - { address: 10.0.0.11, port: 81, forward: tun } # <-\n");
    check(&tun, "services[0].servers[0].port", "tun cannot map ports");
    let all_ports = service(
        "  - vip: 10.0.0.100\n    port: 0\n    protocol: tcp\n    persistence: {}\n    servers:\n      - { address: 10.0.0.11, port: 80 } # <-\n",
    );
    check(
        &all_ports,
        "services[0].servers[0].port",
        "the service covers every port, so omit the server port",
    );
}

#[test]
fn dr_server_not_on_link() {
    let text = format!(
        "{BASE}routes:\n  - {{ prefix: 0.0.0.0/0, via: 10.0.0.1 }}\nservices:\n  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    servers:\n      - address: 192.168.7.11 # <-\n"
    );
    check(
        &text,
        "services[0].servers[0].address",
        "dr needs the server on-link, but 192.168.7.11 is in no connected prefix",
    );
}

#[test]
fn routed_server_unreachable() {
    let text = servers("      - { address: 192.168.7.11, forward: nat, port: 8080 } # <-\n");
    check(
        &text,
        "services[0].servers[0].address",
        "no connected prefix or route reaches server 192.168.7.11",
    );
    // With a route it is fine.
    let ok = format!(
        "{BASE}routes:\n  - {{ prefix: 192.168.0.0/16, via: 10.0.0.1 }}\nservices:\n  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    servers:\n      - {{ address: 192.168.7.11, forward: tun }}\n"
    );
    Profile::parse(&ok, "ok.yaml").unwrap();
}

#[test]
fn thresholds_lower_above_upper() {
    let text = servers("      - address: 10.0.0.11\n        upper: 100\n        lower: 200 # <-\n");
    check(
        &text,
        "services[0].servers[0].lower",
        "lower threshold 200 is above the upper threshold 100",
    );
}

#[test]
fn fnat_needs_local_addresses() {
    let text = service(
        "  - vip: 10.0.0.100 # <-\n    port: 80\n    protocol: tcp\n    servers:\n      - { address: 10.0.0.11, forward: fnat }\n",
    );
    check(
        &text,
        "services[0].local_addresses",
        "servers[0] (10.0.0.11) forwards with fnat, which needs a non-empty `local_addresses` pool",
    );
}

#[test]
fn local_address_conflicts() {
    let dip = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    local_addresses:\n      - 10.0.0.10 # <-\n",
    );
    check(
        &dip,
        "services[0].local_addresses[0]",
        "local address 10.0.0.10 is the director's own address (DIP)",
    );
    let vip = service(
        "  - { vip: 10.0.0.100, port: 80, protocol: tcp, local_addresses: [10.0.0.101] } # <-\n  - { vip: 10.0.0.101, port: 80, protocol: tcp }\n",
    );
    check(
        &vip,
        "services[0].local_addresses[0]",
        "local address 10.0.0.101 is the VIP of services[1]",
    );
    let twice = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    local_addresses:\n      - 10.0.1.1\n      - 10.0.1.1 # <-\n",
    );
    check(&twice, "services[0].local_addresses[1]", "listed twice");
}

#[test]
fn server_is_a_director_address() {
    let dip = servers("      - address: 10.0.0.10 # <-\n");
    check(
        &dip,
        "services[0].servers[0].address",
        "server 10.0.0.10 is the director's own address (DIP)",
    );
    let vip = servers("      - address: 10.0.0.100 # <-\n");
    check(
        &vip,
        "services[0].servers[0].address",
        "server 10.0.0.100 is the VIP of services[0]",
    );
}

// ---------------------------------------------------------------- health checks

/// A service on 10.0.0.100:80/tcp with the given health_check lines.
fn check_text(lines: &str) -> String {
    service(&format!(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    health_check:\n{lines}    servers:\n      - address: 10.0.0.11\n"
    ))
}

#[test]
fn health_check_http_defaults() {
    let p = Profile::parse(&check_text("      type: http\n"), "ok.yaml").unwrap();
    let hc = p.services[0].health_check.as_ref().unwrap();
    assert_eq!(hc.path.as_deref(), Some("/"));
    assert_eq!(hc.status, Some(200));
    assert_eq!((hc.interval, hc.timeout, hc.rise, hc.fall), (2, 1, 2, 3));
    assert_eq!(hc.on_failure(), rvs_config::OnFailure::Quiesce);
}

#[test]
fn health_check_unknown_type() {
    let text = check_text("      type: icmp # <-\n");
    check(
        &text,
        "services[0].health_check.type",
        "unknown variant `icmp`, expected one of `tcp`, `http`, `script`",
    );
}

#[test]
fn health_check_script_needs_script() {
    // A missing key has no line of its own: the error points at the mapping that lacks it.
    let text = service(
        "  - vip: 10.0.0.100\n    port: 80\n    protocol: tcp\n    health_check: # <-\n      type: script\n      interval: 5\n",
    );
    check(
        &text,
        "services[0].health_check.script",
        "required key `script` is missing",
    );
}

#[test]
fn health_check_counts_at_least_one() {
    let text = check_text("      type: tcp\n      fall: 0 # <-\n");
    check(
        &text,
        "services[0].health_check.fall",
        "fall must be at least 1",
    );
}

#[test]
fn health_check_timeout_above_interval() {
    let text = check_text("      type: tcp\n      interval: 2\n      timeout: 3 # <-\n");
    check(
        &text,
        "services[0].health_check.timeout",
        "timeout 3 is longer than the interval 2",
    );
}

#[test]
fn health_check_keys_of_another_kind() {
    let path = check_text("      type: tcp\n      path: /health # <-\n");
    check(
        &path,
        "services[0].health_check.path",
        "`path` only applies to http checks, not tcp",
    );
    let script = check_text("      type: http\n      script: /bin/true # <-\n");
    check(
        &script,
        "services[0].health_check.script",
        "`script` only applies to script checks, not http",
    );
}

#[test]
fn health_check_http_values() {
    let status = check_text("      type: http\n      status: 999 # <-\n");
    check(
        &status,
        "services[0].health_check.status",
        "HTTP status 999 is not in 100..=599",
    );
    let path = check_text("      type: http\n      path: health # <-\n");
    check(
        &path,
        "services[0].health_check.path",
        "HTTP path `health` must start with `/`",
    );
}

#[test]
fn health_check_needs_a_port_on_all_port_services() {
    let text = service(
        "  - vip: 10.0.0.100\n    port: 0\n    protocol: tcp\n    persistence: {}\n    health_check: { type: tcp } # <-\n    servers:\n      - address: 10.0.0.11\n",
    );
    check(
        &text,
        "services[0].health_check.port",
        "a tcp check needs a port, and servers[0] (10.0.0.11) has none",
    );
}

// ---------------------------------------------------------------- control

#[test]
fn control_paths_absolute() {
    let shm = format!("{BASE}control:\n  shm: dev/shm/rvs # <-\n");
    check(&shm, "control.shm", "must be an absolute path");
    let token = format!("{BASE}control:\n  token_file: token # <-\n");
    check(
        &token,
        "control.token_file",
        "`token` must be an absolute path",
    );
}

#[test]
fn control_listen_invalid() {
    let text = format!("{BASE}control:\n  listen: localhost:9180 # <-\n");
    check(
        &text,
        "control.listen",
        "`localhost:9180` is not an address:port",
    );
    let zero = format!("{BASE}control:\n  listen: 127.0.0.1:0 # <-\n");
    check(&zero, "control.listen", "has port 0");
    // The API may listen on IPv6 even though the dataplane is IPv4-only.
    let v6 = format!("{BASE}control:\n  listen: \"[::1]:9180\"\n");
    Profile::parse(&v6, "ok.yaml").unwrap();
}

// ---------------------------------------------------------------- without text

#[test]
fn validate_without_text_has_no_line() {
    let mut p = Profile::parse(BASE, "base.yaml").unwrap();
    p.timeouts.udp = 0;
    let err = p.validate().unwrap_err();
    assert_eq!(err.line, None);
    assert_eq!(err.path, "timeouts.udp");
    assert_eq!(
        err.to_string(),
        "profile: timeouts.udp: timeout 0 is not in 1..=2147483"
    );
}

#[test]
fn load_reports_unreadable_file() {
    let err = Profile::load(std::path::Path::new("/nonexistent/rvs.yaml")).unwrap_err();
    assert_eq!(err.origin, "/nonexistent/rvs.yaml");
    assert_eq!(err.line, None);
    assert!(err.message.contains("cannot read the profile"), "{err}");
}
