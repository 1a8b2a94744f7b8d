//! `GET /metrics`: the live views in Prometheus/OpenMetrics text format.
//!
//! A [`Registry`] is built per scrape from the same views the REST API serves
//! ([`StatsView`], [`HealthView`], [`Healthz`]), so metrics and `GET /api/v1/stats` never
//! disagree. Every name starts with `rvs_`; cumulative counters are typed `counter` and end in
//! `_total`; rates are gauges (per second, estimated as IPVS does, see [`crate::rates`]).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `rvs_connections_total` | counter | `service` |
//! | `rvs_packets_total`, `rvs_bytes_total` | counter | `service`, `direction` (`in`/`out`) |
//! | `rvs_rate_cps` | gauge | `service` |
//! | `rvs_rate_pps`, `rvs_rate_bps` | gauge | `service`, `direction` |
//! | `rvs_server_connections_total` | counter | `service`, `server`, `forward` |
//! | `rvs_server_packets_total`, `rvs_server_bytes_total` | counter | `service`, `server`, `forward`, `direction` |
//! | `rvs_server_rate_cps` | gauge | `service`, `server`, `forward` |
//! | `rvs_server_rate_pps`, `rvs_server_rate_bps` | gauge | `service`, `server`, `forward`, `direction` |
//! | `rvs_server_active_connections`, `rvs_server_inactive_connections`, `rvs_server_persistent_connections` | gauge | `service`, `server`, `forward` |
//! | `rvs_server_weight` (in effect), `rvs_server_config_weight` | gauge | `service`, `server`, `forward` |
//! | `rvs_worker_packets_total` | counter | `worker`, `lcore`, `counter` (every named worker counter) |
//! | `rvs_worker_drops_total` | counter | `worker`, `lcore`, `reason` |
//! | `rvs_health_up` | gauge 0/1 | `service`, `server` |
//! | `rvs_health_transitions_total` | counter | `service`, `server` |
//! | `rvs_sorry_server_active` | gauge 0/1 | `service` (checked services) |
//! | `rvs_dataplane_up`, `rvs_ring_up` | gauge 0/1 | |
//! | `rvs_config_generation` | gauge | (the generation the dataplane runs, from the stats view) |
//!
//! Per-server series carry the `server_` prefix so that summing a service-level metric never
//! counts a server's traffic twice. `service` is the REST service id (`tcp:10.0.0.100:80`,
//! `fwmark:8`), `server` is `address:port`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::api::{HealthView, Healthz, Rates, Stats, StatsView};

type Labels = Vec<(&'static str, String)>;
type CounterFamily = Family<Labels, Counter>;
type GaugeFamily = Family<Labels, Gauge<u64, AtomicU64>>;

/// Registers and returns a counter family (`name` without `rvs_` and `_total`).
fn counter(reg: &mut Registry, name: &str, help: &str) -> CounterFamily {
    let f = CounterFamily::default();
    reg.register(name, help, f.clone());
    f
}

/// Registers and returns a gauge family (`name` without `rvs_`).
fn gauge(reg: &mut Registry, name: &str, help: &str) -> GaugeFamily {
    let f = GaugeFamily::default();
    reg.register(name, help, f.clone());
    f
}

fn with(base: &Labels, key: &'static str, value: &str) -> Labels {
    let mut l = base.clone();
    l.push((key, value.to_owned()));
    l
}

/// The traffic metrics one level (services, or servers) has.
struct Traffic {
    conns: CounterFamily,
    packets: CounterFamily,
    bytes: CounterFamily,
    cps: GaugeFamily,
    pps: GaugeFamily,
    bps: GaugeFamily,
}

impl Traffic {
    fn register(reg: &mut Registry, prefix: &str, what: &str) -> Self {
        Traffic {
            conns: counter(
                reg,
                &format!("{prefix}connections"),
                &format!("Connections scheduled to the {what}"),
            ),
            packets: counter(
                reg,
                &format!("{prefix}packets"),
                &format!("Packets of the {what} (in: client to server, out: server to client)"),
            ),
            bytes: counter(
                reg,
                &format!("{prefix}bytes"),
                &format!("Bytes of the {what} (in: client to server, out: server to client)"),
            ),
            cps: gauge(
                reg,
                &format!("{prefix}rate_cps"),
                &format!("Estimated connections per second of the {what} (IPVS estimator)"),
            ),
            pps: gauge(
                reg,
                &format!("{prefix}rate_pps"),
                &format!("Estimated packets per second of the {what} (IPVS estimator)"),
            ),
            bps: gauge(
                reg,
                &format!("{prefix}rate_bps"),
                &format!("Estimated bytes per second of the {what} (IPVS estimator)"),
            ),
        }
    }

    fn record(&self, labels: &Labels, s: &Stats, r: &Rates) {
        self.conns.get_or_create(labels).inc_by(s.conns);
        let inl = with(labels, "direction", "in");
        let outl = with(labels, "direction", "out");
        self.packets.get_or_create(&inl).inc_by(s.inpkts);
        self.packets.get_or_create(&outl).inc_by(s.outpkts);
        self.bytes.get_or_create(&inl).inc_by(s.inbytes);
        self.bytes.get_or_create(&outl).inc_by(s.outbytes);
        self.cps.get_or_create(labels).set(r.cps);
        self.pps.get_or_create(&inl).set(r.inpps);
        self.pps.get_or_create(&outl).set(r.outpps);
        self.bps.get_or_create(&inl).set(r.inbps);
        self.bps.get_or_create(&outl).set(r.outbps);
    }
}

/// Renders the Prometheus text (OpenMetrics 1.0 format, `# EOF` terminated) for one scrape.
pub fn render(stats: &StatsView, health: &[HealthView], healthz: &Healthz) -> String {
    let mut reg = Registry::with_prefix("rvs");

    let services = Traffic::register(&mut reg, "", "virtual service");
    let servers = Traffic::register(&mut reg, "server_", "real server");
    let active = gauge(
        &mut reg,
        "server_active_connections",
        "Active (ESTABLISHED) connections of the real server",
    );
    let inactive = gauge(
        &mut reg,
        "server_inactive_connections",
        "Inactive connections of the real server",
    );
    let persistent = gauge(
        &mut reg,
        "server_persistent_connections",
        "Persistence templates pointing at the real server",
    );
    let weight = gauge(
        &mut reg,
        "server_weight",
        "Weight in effect (0 while a health check quiesces the server)",
    );
    let config_weight = gauge(&mut reg, "server_config_weight", "Weight as configured");
    for svc in &stats.services {
        let id = svc.id.to_string();
        let sl: Labels = vec![("service", id.clone())];
        services.record(&sl, &svc.stats, &svc.rates);
        for rs in &svc.servers {
            let l: Labels = vec![
                ("service", id.clone()),
                ("server", format!("{}:{}", rs.address, rs.port)),
                ("forward", rs.forward.as_str().to_owned()),
            ];
            servers.record(&l, &rs.stats, &rs.rates);
            active.get_or_create(&l).set(rs.active);
            inactive.get_or_create(&l).set(rs.inactive);
            persistent.get_or_create(&l).set(rs.persistent);
            weight.get_or_create(&l).set(u64::from(rs.weight));
            config_weight
                .get_or_create(&l)
                .set(u64::from(rs.config_weight));
        }
    }

    let wpackets = counter(
        &mut reg,
        "worker_packets",
        "Per-worker packet counters, by counter name",
    );
    let wdrops = counter(
        &mut reg,
        "worker_drops",
        "Packets dropped by a worker, by reason",
    );
    for w in &stats.workers {
        let l: Labels = vec![
            ("worker", w.worker.to_string()),
            ("lcore", w.lcore.to_string()),
        ];
        for (name, v) in &w.counters {
            wpackets
                .get_or_create(&with(&l, "counter", name))
                .inc_by(*v);
        }
        for (reason, v) in &w.drops {
            wdrops.get_or_create(&with(&l, "reason", reason)).inc_by(*v);
        }
    }

    let up = gauge(
        &mut reg,
        "health_up",
        "Whether the health check considers the real server up (1) or down (0)",
    );
    let transitions = counter(
        &mut reg,
        "health_transitions",
        "Up/down transitions of the real server's health",
    );
    let sorry = gauge(
        &mut reg,
        "sorry_server_active",
        "Whether the service's sorry server stands in because no real server is up",
    );
    for hv in health {
        let id = hv.service.to_string();
        sorry
            .get_or_create(&vec![("service", id.clone())])
            .set(u64::from(hv.sorry_active));
        for s in &hv.servers {
            let l: Labels = vec![
                ("service", id.clone()),
                ("server", format!("{}:{}", s.address, s.port)),
            ];
            up.get_or_create(&l).set(u64::from(s.up));
            transitions.get_or_create(&l).inc_by(s.transitions);
        }
    }

    let dp_up = Gauge::<u64, AtomicU64>::default();
    dp_up.set(u64::from(healthz.dataplane.up));
    reg.register(
        "dataplane_up",
        "Whether the dataplane is alive (heartbeat in the shared memory)",
        dp_up,
    );
    let ring_up = Gauge::<u64, AtomicU64>::default();
    ring_up.set(u64::from(healthz.ring.up));
    reg.register(
        "ring_up",
        "Whether the last command-ring round trip succeeded",
        ring_up,
    );
    let generation = Gauge::<u64, AtomicU64>::default();
    generation.set(stats.generation);
    reg.register(
        "config_generation",
        "Configuration generation the dataplane runs",
        generation,
    );

    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String cannot fail");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    use rvs_config::{Forward, Scheduler};

    use super::*;
    use crate::api::{
        ProcessHealth, RingHealth, ServerHealth, ServerView, ServiceId, ServiceView, WorkerView,
    };

    fn sample() -> (StatsView, Vec<HealthView>, Healthz) {
        let id: ServiceId = "tcp:10.0.0.100:80".parse().unwrap();
        let stats = StatsView {
            services: vec![ServiceView {
                id,
                scheduler: Scheduler::Wrr,
                flags: vec![],
                persistence_timeout: None,
                persistence_netmask: None,
                local_addresses: vec![],
                stats: Stats {
                    conns: 12,
                    inpkts: 340,
                    outpkts: 0,
                    inbytes: 56_789,
                    outbytes: 0,
                },
                rates: Rates {
                    cps: 3,
                    inpps: 40,
                    outpps: 0,
                    inbps: 5000,
                    outbps: 0,
                },
                servers: vec![ServerView {
                    address: Ipv4Addr::new(10, 0, 0, 11),
                    port: 80,
                    forward: Forward::Dr,
                    weight: 0,
                    config_weight: 3,
                    upper: 0,
                    lower: 0,
                    active: 7,
                    inactive: 2,
                    persistent: 1,
                    stats: Stats {
                        conns: 12,
                        inpkts: 340,
                        outpkts: 0,
                        inbytes: 56_789,
                        outbytes: 0,
                    },
                    rates: Rates::default(),
                    sorry: false,
                }],
            }],
            total: Stats::default(),
            total_rates: Rates::default(),
            workers: vec![WorkerView {
                worker: 0,
                lcore: 1,
                counters: BTreeMap::from([
                    ("rx_packets".to_owned(), 1000),
                    ("tx_packets".to_owned(), 990),
                ]),
                drops: BTreeMap::from([("no_service".to_owned(), 10)]),
            }],
            generation: 4,
        };
        let health = vec![HealthView {
            service: id,
            check: "tcp".to_owned(),
            sorry_active: true,
            servers: vec![ServerHealth {
                address: Ipv4Addr::new(10, 0, 0, 11),
                port: 80,
                up: false,
                streak: 3,
                last: "timeout".to_owned(),
                transitions: 1,
                since_secs: 5,
            }],
        }];
        let healthz = Healthz {
            status: "ok".to_owned(),
            control: ProcessHealth {
                up: true,
                pid: Some(1),
                heartbeat_age_ms: Some(0),
            },
            dataplane: ProcessHealth {
                up: true,
                pid: Some(2),
                heartbeat_age_ms: Some(10),
            },
            ring: RingHealth {
                up: false,
                roundtrip_us: None,
                generation: 4,
                commands: 9,
                rejected: 0,
            },
        };
        (stats, health, healthz)
    }

    #[test]
    fn metrics_render_exact_lines_and_types() {
        let (stats, health, healthz) = sample();
        let text = render(&stats, &health, &healthz);
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "# TYPE rvs_connections counter",
            r#"rvs_connections_total{service="tcp:10.0.0.100:80"} 12"#,
            r#"rvs_packets_total{service="tcp:10.0.0.100:80",direction="in"} 340"#,
            r#"rvs_bytes_total{service="tcp:10.0.0.100:80",direction="in"} 56789"#,
            "# TYPE rvs_rate_cps gauge",
            r#"rvs_rate_cps{service="tcp:10.0.0.100:80"} 3"#,
            r#"rvs_rate_bps{service="tcp:10.0.0.100:80",direction="in"} 5000"#,
            "# TYPE rvs_server_connections counter",
            r#"rvs_server_connections_total{service="tcp:10.0.0.100:80",server="10.0.0.11:80",forward="dr"} 12"#,
            r#"rvs_server_active_connections{service="tcp:10.0.0.100:80",server="10.0.0.11:80",forward="dr"} 7"#,
            r#"rvs_server_inactive_connections{service="tcp:10.0.0.100:80",server="10.0.0.11:80",forward="dr"} 2"#,
            r#"rvs_server_persistent_connections{service="tcp:10.0.0.100:80",server="10.0.0.11:80",forward="dr"} 1"#,
            r#"rvs_server_weight{service="tcp:10.0.0.100:80",server="10.0.0.11:80",forward="dr"} 0"#,
            r#"rvs_server_config_weight{service="tcp:10.0.0.100:80",server="10.0.0.11:80",forward="dr"} 3"#,
            "# TYPE rvs_worker_packets counter",
            r#"rvs_worker_packets_total{worker="0",lcore="1",counter="rx_packets"} 1000"#,
            r#"rvs_worker_packets_total{worker="0",lcore="1",counter="tx_packets"} 990"#,
            r#"rvs_worker_drops_total{worker="0",lcore="1",reason="no_service"} 10"#,
            r#"rvs_health_up{service="tcp:10.0.0.100:80",server="10.0.0.11:80"} 0"#,
            "# TYPE rvs_health_transitions counter",
            r#"rvs_health_transitions_total{service="tcp:10.0.0.100:80",server="10.0.0.11:80"} 1"#,
            r#"rvs_sorry_server_active{service="tcp:10.0.0.100:80"} 1"#,
            "rvs_dataplane_up 1",
            "rvs_ring_up 0",
            "rvs_config_generation 4",
            "# EOF",
        ] {
            assert!(lines.contains(&want), "missing line `{want}` in:\n{text}");
        }
        assert_eq!(lines.last(), Some(&"# EOF"));
    }

    #[test]
    fn metrics_every_sample_line_parses() {
        let (stats, health, healthz) = sample();
        let text = render(&stats, &health, &healthz);
        let mut samples = 0;
        for line in text.lines() {
            if line.starts_with('#') {
                let mut w = line.split(' ');
                assert_eq!(w.next(), Some("#"));
                assert!(
                    matches!(w.next(), Some("HELP" | "TYPE" | "EOF")),
                    "comment `{line}`"
                );
                continue;
            }
            samples += 1;
            let (series, value) = line.rsplit_once(' ').expect("name{labels} value");
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("value in `{line}`"));
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
                None => (series, ""),
            };
            assert!(name.starts_with("rvs_"), "`{line}`");
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "`{line}`"
            );
            if !labels.is_empty() {
                for pair in labels.split("\",") {
                    let (k, v) = pair.split_once("=\"").expect("key=\"value\"");
                    assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
                    assert!(!v.contains('"') || v.ends_with('"'), "`{line}`");
                }
            }
        }
        assert!(samples > 30, "{samples} samples");
    }

    #[test]
    fn metrics_empty_views_render_link_gauges_only() {
        let (mut stats, _, healthz) = sample();
        stats.services.clear();
        stats.workers.clear();
        let text = render(&stats, &[], &healthz);
        assert!(text.contains("rvs_dataplane_up 1\n"));
        assert!(!text.contains("rvs_connections_total{"));
        assert!(text.ends_with("# EOF\n"));
    }
}
