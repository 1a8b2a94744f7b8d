//! The side-by-side table and the JSON file.

use super::{Director, LoadKind, Record};

/// `lab.json`: the records as a JSON array.
pub fn json(records: &[Record]) -> String {
    serde_json::to_string_pretty(records).expect("records serialise") + "\n"
}

fn find(records: &[Record], d: Director, l: LoadKind) -> Option<&Record> {
    records.iter().find(|r| r.director == d && r.load == l)
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |x| format!("{x:.digits$}"))
}

/// The side-by-side table: one column per director (in `order`), one block per load.
pub fn table(records: &[Record], order: &[Director]) -> String {
    const LABEL: usize = 24;
    const COL: usize = 16;
    let mut s = format!("{:<LABEL$}", "");
    for &d in order {
        let port = records
            .iter()
            .find(|r| r.director == d)
            .and_then(|r| r.port.as_deref());
        let head = match port {
            Some(p) => format!("{} ({p})", d.name()),
            None => d.name().to_owned(),
        };
        s.push_str(&format!("{head:>COL$}"));
    }
    s.push('\n');
    for kind in [LoadKind::Short, LoadKind::Long, LoadKind::Bulk] {
        let Some(any) = records.iter().find(|r| r.load == kind) else {
            continue;
        };
        s.push_str(&format!(
            "{} — {} connections, {}, GET {}, {} s\n",
            kind.name(),
            any.connections,
            if any.keepalive {
                "keep-alive"
            } else {
                "Connection: close"
            },
            any.path,
            order
                .iter()
                .filter_map(|&d| find(records, d, kind))
                .map(|r| r.duration_s)
                .fold(0.0f64, f64::max)
                .round()
        ));
        type Cell = fn(&Record) -> String;
        let mut rows: Vec<(&str, Cell)> = vec![
            ("  requests/s", |r| num(r.rps, 0)),
            ("  latency p50 ms", |r| num(r.p50_ms, 3)),
            ("  latency p90 ms", |r| num(r.p90_ms, 3)),
            ("  latency p99 ms", |r| num(r.p99_ms, 3)),
            ("  transfer MB/s", |r| num(r.transfer_mb_s, 2)),
            ("  errors", |r| match (r.errors, r.error_detail) {
                (Some(0), _) => "0".into(),
                (Some(n), Some(e)) => {
                    let parts: Vec<String> = [
                        ("conn", e.connect),
                        ("read", e.read),
                        ("write", e.write),
                        ("status", e.status),
                        ("timeout", e.timeout),
                    ]
                    .iter()
                    .filter(|(_, v)| *v > 0)
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                    format!("{n} ({})", parts.join(", "))
                }
                (Some(n), None) => n.to_string(),
                (None, _) => "—".into(),
            }),
        ];
        rows.push(("  tcp retransmits", |r| {
            r.tcp_retransmits
                .map_or_else(|| "—".to_owned(), |n| n.to_string())
        }));
        rows.push(("  drops links/backlog", |r| {
            match (r.link_drops, r.backlog_drops) {
                (Some(l), Some(b)) => format!("{l}/{b}"),
                _ => "—".into(),
            }
        }));
        rows.push(("  cpu busy % (per CPU)", |r| {
            r.cpu_busy_pct.as_ref().map_or_else(
                || "—".to_owned(),
                |v| {
                    v.iter()
                        .map(|x| format!("{x:.0}"))
                        .collect::<Vec<_>>()
                        .join("/")
                },
            )
        }));
        for (label, cell) in rows {
            s.push_str(&format!("{label:<LABEL$}"));
            for &d in order {
                let c = find(records, d, kind).map_or_else(
                    || "—".to_owned(),
                    |r| {
                        if r.error.is_some() && r.rps.is_none() {
                            "not measured".to_owned()
                        } else {
                            cell(r)
                        }
                    },
                );
                s.push_str(&format!(" {c:>w$}", w = COL - 1));
            }
            s.push('\n');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::{Ctx, loads, record};
    use super::*;
    use crate::compare::wrk::Errors;

    fn sample() -> Vec<Record> {
        let mut out = Vec::new();
        for d in [Director::Rvs, Director::Haproxy] {
            let c = Ctx {
                director: d,
                setup: "x",
                port: (d == Director::Rvs).then(|| "af_xdp".to_owned()),
                server_sees: Some("10.201.0.2".into()),
                pinned: true,
                client_cpu: 0,
                director_cpu: 1,
                threads: 1,
            };
            for l in loads(10) {
                let mut r = record(&c, &l);
                if d == Director::Haproxy && l.kind == LoadKind::Bulk {
                    r.error = Some("wrk failed".into());
                } else {
                    r.rps = Some(1234.5);
                    r.p50_ms = Some(0.25);
                    r.errors = Some(3);
                    r.error_detail = Some(Errors {
                        read: 3,
                        ..Errors::default()
                    });
                    r.cpu_busy_pct = Some(vec![99.0, 100.0]);
                }
                out.push(r);
            }
        }
        out
    }

    #[test]
    fn table_has_a_column_per_director_and_marks_gaps() {
        let t = table(&sample(), &[Director::Rvs, Director::Haproxy]);
        let head = t.lines().next().unwrap();
        assert!(
            head.contains("rvs (af_xdp)") && head.contains("haproxy"),
            "{t}"
        );
        let rps: Vec<&str> = t.lines().filter(|l| l.contains("requests/s")).collect();
        assert_eq!(rps.len(), 3, "{t}");
        assert!(rps[2].contains("not measured"), "{t}");
        assert!(t.contains("3 (read 3)"), "{t}");
        assert!(t.contains("99/100"), "{t}");
    }

    #[test]
    fn json_is_an_array_of_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a.len(), 6);
        for key in [
            "director",
            "load",
            "rps",
            "p50_ms",
            "p99_ms",
            "transfer_mb_s",
            "errors",
            "duration_s",
        ] {
            assert!(a[0].get(key).is_some(), "{key} in {}", a[0]);
        }
        assert_eq!(a[0]["director"], "rvs");
        assert_eq!(a[0]["load"], "short");
        assert_eq!(a[5]["error"], "wrk failed");
        assert!(a[5]["rps"].is_null());
    }
}
