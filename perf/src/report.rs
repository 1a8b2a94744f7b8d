//! The run's outputs: `summary.json` (one object per scenario), `report.md` with its SVG
//! charts, and the pieces they are made from (the director's exit counters, memory per flow,
//! the pipeline benchmark figures, the namespace lab's table).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::result::{Mem, PktgenResult};
use crate::svg::{Chart, HLine, Series, tick_label};

/// One scenario in `summary.json`. The first twelve fields are the contract; the rest explain
/// them. Figures that could not be measured are `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// `MODE-FLOWS`, e.g. `dr-100k`.
    pub scenario: String,
    /// `dr`, `tun`, `nat`, `fnat` (or `testpmd` for the baseline row).
    pub mode: String,
    /// Established flows.
    pub flows: u32,
    /// Established-flow packets per second the director forwarded right, millions.
    pub mpps: Option<f64>,
    /// The same link's limit: testpmd io-forward through the same generator, millions.
    pub testpmd_mpps: Option<f64>,
    /// `mpps / testpmd_mpps`.
    pub ratio: Option<f64>,
    /// The best 100 ms over testpmd's best 100 ms (the baseline run of median rate): the
    /// ratio of what each reaches while the machine leaves it alone, robust to the host taking
    /// a core away for part of a window (which the averages above are not).
    #[serde(default)]
    pub ratio_peak: Option<f64>,
    /// New connections per second (the whole exchange came back).
    pub cps: Option<f64>,
    /// Round-trip latency at saturation, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile at saturation, µs.
    pub p99_us: Option<f64>,
    /// 99.9th percentile at saturation, µs.
    pub p999_us: Option<f64>,
    /// Director memory per tracked flow (see README: table bytes per slot + bytes touched per
    /// flow).
    pub bytes_per_flow: Option<f64>,
    /// Returned packets that were wrong (any phase).
    pub mismatches: u64,

    /// Whether the scenario ran to the end.
    pub ok: bool,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Packets lost at saturation (sent, not back after a drain).
    pub drops: Option<u64>,
    /// Requests offered per second at saturation, millions.
    pub tx_mpps: Option<f64>,
    /// The best 100 ms at saturation, Mpps (see README: noisy machines).
    pub mpps_peak: Option<f64>,
    /// Rate of the half-rate phase, packets back per second, millions.
    pub mpps_50pct: Option<f64>,
    /// Latency at half the saturation rate, µs.
    pub p50_us_50pct: Option<f64>,
    /// 99th percentile at half rate, µs.
    pub p99_us_50pct: Option<f64>,
    /// 99.9th percentile at half rate, µs.
    pub p999_us_50pct: Option<f64>,
    /// Packets lost at half rate.
    pub drops_50pct: Option<u64>,
    /// Connections that completed in the new-connection phase.
    pub cps_completed: Option<u64>,
    /// Flows opened.
    pub opened: Option<u64>,
    /// Seconds to open them.
    pub open_secs: Option<f64>,
    /// The director's `flows_per_worker`.
    pub capacity: Option<u32>,
    /// Flows per real server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_server: Vec<u64>,
    /// Round robin spread them evenly.
    pub even: Option<bool>,
    /// Mismatches by kind.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mismatch_kinds: BTreeMap<String, u64>,
    /// Director memory: preallocated table bytes per slot of capacity.
    pub table_bytes_per_slot: Option<f64>,
    /// Director memory: bytes touched per flow while opening.
    pub touched_bytes_per_flow: Option<f64>,
    /// Director memory idle (booted with this capacity), bytes (RSS + hugetlb).
    pub mem_idle_bytes: Option<u64>,
    /// Director memory holding the flows, bytes.
    pub mem_flows_bytes: Option<u64>,
    /// Pipeline cost per established packet without I/O (criterion), ns.
    pub pipeline_ns: Option<f64>,
    /// Pipeline cost of a new connection's SYN (criterion), ns.
    pub pipeline_syn_ns: Option<f64>,
    /// The director's drop counters at exit, by reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub director_drops: BTreeMap<String, u64>,
    /// `mpps` of every pass over the matrix, in run order; the row's figures are the pass of
    /// median `mpps` (see [`merge_passes`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mpps_runs: Vec<f64>,
    /// Wall time of the scenario, seconds.
    pub secs: f64,
}

/// About the run as a whole (`run.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// When it started (UTC, RFC 3339).
    pub started: String,
    /// Seconds it took.
    pub secs: f64,
    /// `--quick` or full.
    pub quick: bool,
    /// CPU model and count.
    pub machine: String,
    /// DPDK version.
    pub dpdk: String,
    /// Git commit of the tree measured.
    pub commit: String,
    /// The options that shape the figures.
    pub options: BTreeMap<String, String>,
    /// testpmd baseline (Mpps) and its latency.
    pub testpmd: Option<crate::result::Blast>,
    /// testpmd at half its rate.
    #[serde(default)]
    pub testpmd_half: Option<crate::result::Blast>,
    /// Every testpmd baseline run at saturation, in run order (`testpmd` is the one of median
    /// rate).
    #[serde(default)]
    pub testpmd_runs: Vec<crate::result::Blast>,
    /// Every testpmd baseline run at half rate (`testpmd_half` is the one of median p99).
    #[serde(default)]
    pub testpmd_half_runs: Vec<crate::result::Blast>,
    /// The idle director (minimal table) memory.
    pub idle_mem: Option<Mem>,
    /// Pipeline benchmark figures: name → ns per packet.
    #[serde(default)]
    pub pipeline: BTreeMap<String, f64>,
    /// Steps that failed.
    #[serde(default)]
    pub failures: Vec<String>,
    /// The figures before the speed work (`perf/before.json`), for the targets table.
    #[serde(default)]
    pub before: Option<Before>,
    /// The engineers' account of the targets not reached (`perf/ANALYSIS.md`), quoted under
    /// the targets table.
    #[serde(default)]
    pub analysis: Option<String>,
}

/// Figures measured before the speed work, kept in `perf/before.json` (what the targets
/// table compares this run with).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Before {
    /// The commit measured.
    pub commit: String,
    /// How and when (one sentence).
    pub measured: String,
    /// Established-flow pipeline cost at 1M flows, ns per packet.
    #[serde(default)]
    pub pipeline_established_1m_ns: Option<f64>,
    /// New-connection pipeline cost, ns.
    #[serde(default)]
    pub pipeline_new_connection_ns: Option<f64>,
    /// Memory per tracked flow, bytes.
    #[serde(default)]
    pub bytes_per_flow: Option<f64>,
    /// Per mode at the flow count `flows`: Mpps over testpmd's.
    #[serde(default)]
    pub ratio: BTreeMap<String, f64>,
    /// Per mode: p99 at half rate, µs.
    #[serde(default)]
    pub p99_us_50pct: BTreeMap<String, f64>,
    /// testpmd's p99 at half rate in that run, µs.
    #[serde(default)]
    pub testpmd_p99_us_50pct: Option<f64>,
    /// The flow count of `ratio` and `p99_us_50pct`.
    #[serde(default)]
    pub flows: Option<u32>,
}

/// The speed targets against this run (and `meta.before`): Markdown.
pub fn targets(meta: &Meta, rows: &[Row]) -> String {
    let mut s = String::new();
    let b = meta.before.clone().unwrap_or_default();
    let f = |v: Option<f64>, d: usize| v.map_or("–".to_owned(), |v| format!("{v:.d$}"));
    let _ = writeln!(
        s,
        "## Targets, before and after
"
    );
    if meta.before.is_some() {
        let _ = writeln!(
            s,
            "Before: commit `{}`, {}
",
            b.commit, b.measured
        );
    }
    let _ = writeln!(
        s,
        "| target | before | this run | reached | short by |\n|---|---:|---:|---|---:|"
    );
    // Throughput and latency at the largest flow count measured up to 1M (the target's).
    let directors: Vec<&Row> = rows
        .iter()
        .filter(|r| r.mode != "testpmd" && r.flows <= 1_000_000)
        .collect();
    let at = directors.iter().map(|r| r.flows).max();
    if let Some(at) = at {
        let label = flows_label(at);
        for r in directors.iter().filter(|r| r.flows == at) {
            if let Some(ratio) = r.ratio {
                // Reached only if both the window average and the best 100 ms are.
                let worst = r.ratio_peak.map_or(ratio, |p| p.min(ratio));
                target_row(
                    &mut s,
                    &format!(
                        "{} Mpps ≥ 0.95 × testpmd's, {label} flows (average / best 100 ms)",
                        r.mode
                    ),
                    &b.ratio
                        .get(&r.mode)
                        .map_or("–".into(), |x| format!("{x:.2}")),
                    &format!(
                        "{ratio:.2} / {}",
                        r.ratio_peak.map_or("–".into(), |x| format!("{x:.2}"))
                    ),
                    0.95 - worst,
                    |x| format!("{x:.2}"),
                );
            }
        }
        let tp = meta.testpmd_half.as_ref().map(|h| h.p99_us);
        for r in directors.iter().filter(|r| r.flows == at) {
            if let (Some(p), Some(t)) = (r.p99_us_50pct, tp) {
                let before = match (b.p99_us_50pct.get(&r.mode), b.testpmd_p99_us_50pct) {
                    (Some(x), Some(y)) => format!("{x:.0} (testpmd {y:.0})"),
                    _ => "–".into(),
                };
                target_row(
                    &mut s,
                    &format!(
                        "{} p99 at 50 % ≤ testpmd's + 5 µs, {label} flows, µs",
                        r.mode
                    ),
                    &before,
                    &format!("{p:.0} (testpmd {t:.0})"),
                    p - t - 5.0,
                    |x| format!("{x:.0} µs"),
                );
            }
        }
    }
    let pipe = |k: &str| meta.pipeline.get(k).copied();
    if let Some(v) = pipe("dr_established_burst/1000000") {
        target_row(
            &mut s,
            "pipeline ≤ 40 ns per established packet, 1M flows (`process_burst`)",
            &f(b.pipeline_established_1m_ns, 0),
            &format!("{v:.1}"),
            v - 40.0,
            |x| format!("{x:.1} ns"),
        );
    }
    let syn = ["dr", "tun", "nat", "fnat"]
        .iter()
        .filter_map(|m| Some((*m, pipe(&format!("{m}_new_connection/syn"))?)))
        .chain(pipe("dr_new_connection_burst/syn").map(|v| ("dr burst", v)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((m, v)) = syn {
        target_row(
            &mut s,
            &format!("pipeline ≤ 150 ns per new connection (slowest: {m})"),
            &f(b.pipeline_new_connection_ns, 0),
            &format!("{v:.1}"),
            v - 150.0,
            |x| format!("{x:.1} ns"),
        );
    }
    let mem = rows
        .iter()
        .filter(|r| r.mode != "testpmd" && r.flows >= 1_000_000)
        .filter_map(|r| r.bytes_per_flow)
        .max_by(f64::total_cmp);
    if let Some(v) = mem {
        target_row(
            &mut s,
            "≤ 64 B of memory per tracked flow (largest, ≥ 1M flows)",
            &f(b.bytes_per_flow, 0),
            &format!("{v:.1}"),
            v - 64.0,
            |x| format!("{x:.1} B"),
        );
    }
    let _ = writeln!(s);
    if let Some(a) = &meta.analysis {
        let _ = writeln!(s, "{}\n", a.trim());
    }
    s
}

/// One row of the targets table: `excess` is how far the figure is past its limit (reached
/// when it is not positive), `short` formats it.
fn target_row(
    s: &mut String,
    target: &str,
    before: &str,
    now: &str,
    excess: f64,
    short: impl Fn(f64) -> String,
) {
    let (reached, by) = if excess <= 0.0 {
        ("yes", "–".to_owned())
    } else {
        ("**no**", short(excess))
    };
    let _ = writeln!(s, "| {target} | {before} | {now} | {reached} | {by} |");
}

/// Short flow-count label: 1k, 100k, 1M, 10M.
pub fn flows_label(flows: u32) -> String {
    tick_label(f64::from(flows))
}

/// The director's counters printed at exit (`rvs-dataplane`'s stdout), as far as the report
/// needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectorExit {
    /// Drops by reason, summed over workers.
    pub drops: BTreeMap<String, u64>,
    /// Connections created.
    pub connections: u64,
    /// Packets forwarded.
    pub forwarded: u64,
}

/// Reads `worker lcore N: … connections C, … drops D [reason=n …]` lines.
pub fn parse_director_exit(text: &str) -> DirectorExit {
    let mut out = DirectorExit::default();
    for line in text.lines().filter(|l| l.starts_with("worker lcore")) {
        let num_after = |key: &str| {
            line.split(", ")
                .find_map(|part| part.trim().strip_prefix(key)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.connections += num_after("connections ");
        out.forwarded += num_after("forwarded ");
        if let Some(inner) = line.rsplit_once('[').and_then(|(_, r)| r.strip_suffix(']')) {
            for kv in inner.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=')
                    && let Ok(n) = v.parse::<u64>()
                {
                    *out.drops.entry(k.to_owned()).or_default() += n;
                }
            }
        }
    }
    out
}

/// Director memory per tracked flow: what the flow table preallocates per slot (idle director
/// with the scenario's capacity minus an idle director with the smallest table, over the
/// capacity) plus what opening the flows touched (holding minus idle, over the flows).
pub fn bytes_per_flow(
    tiny: Option<Mem>,
    idle: Option<Mem>,
    holding: Option<Mem>,
    capacity: u32,
    flows: u64,
) -> (Option<f64>, Option<f64>, Option<f64>) {
    let per_slot = match (tiny, idle) {
        (Some(t), Some(i)) if capacity > 0 => {
            Some((i.total_bytes() as f64 - t.total_bytes() as f64).max(0.0) / f64::from(capacity))
        }
        _ => None,
    };
    let touched = match (idle, holding) {
        (Some(i), Some(h)) if flows > 0 => {
            Some((h.total_bytes() as f64 - i.total_bytes() as f64).max(0.0) / flows as f64)
        }
        _ => None,
    };
    let total = match (per_slot, touched) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    };
    (total, per_slot, touched)
}

/// Everything one director scenario produced, for [`row`].
#[derive(Debug, Clone, Default)]
pub struct ScenarioOutcome {
    /// Mode name.
    pub mode: String,
    /// Protocol name.
    pub proto: String,
    /// Flows.
    pub flows: u32,
    /// The director's capacity.
    pub capacity: u32,
    /// The generator's result, if it produced one.
    pub result: Option<PktgenResult>,
    /// Errors from running it (process failures).
    pub errors: Vec<String>,
    /// The director's exit counters.
    pub director: DirectorExit,
    /// Wall time.
    pub secs: f64,
}

/// One row for a scenario run several times (passes over the matrix, spread over the run):
/// the figures of the pass of median `mpps` (the lower middle for an even count; passes
/// without a rate count as lowest), with every pass's rate in `mpps_runs`. Mismatches add up
/// over the passes, and the row is ok only if every pass was; every pass's errors are kept.
pub fn merge_passes(passes: Vec<Row>) -> Option<Row> {
    let mut order: Vec<usize> = (0..passes.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| passes[i].mpps.unwrap_or(f64::NEG_INFINITY);
        key(a).total_cmp(&key(b))
    });
    let pick = *order.get(passes.len().saturating_sub(1) / 2)?;
    let mut r = passes[pick].clone();
    if passes.len() > 1 {
        r.mpps_runs = passes.iter().filter_map(|p| p.mpps).collect();
        r.mismatches = passes.iter().map(|p| p.mismatches).sum();
        r.ok = passes.iter().all(|p| p.ok);
        r.secs = passes.iter().map(|p| p.secs).sum();
        r.errors = passes
            .iter()
            .enumerate()
            .flat_map(|(k, p)| p.errors.iter().map(move |e| format!("pass {}: {e}", k + 1)))
            .collect();
        for p in &passes {
            for (kind, n) in &p.mismatch_kinds {
                if !std::ptr::eq(p, &passes[pick]) {
                    *r.mismatch_kinds.entry(kind.clone()).or_default() += n;
                }
            }
        }
    }
    Some(r)
}

/// Builds a summary row.
pub fn row(
    o: &ScenarioOutcome,
    testpmd_mpps: Option<f64>,
    tiny: Option<Mem>,
    pipeline: &BTreeMap<String, f64>,
) -> Row {
    let mut r = Row {
        scenario: format!("{}-{}", o.mode, flows_label(o.flows)),
        mode: o.mode.clone(),
        flows: o.flows,
        proto: o.proto.clone(),
        testpmd_mpps,
        capacity: Some(o.capacity),
        errors: o.errors.clone(),
        director_drops: o.director.drops.clone(),
        secs: o.secs,
        pipeline_ns: pipeline
            .get(&format!("{}_established/{}", o.mode, o.flows))
            .copied(),
        pipeline_syn_ns: pipeline
            .get(&format!("{}_new_connection/syn", o.mode))
            .copied(),
        ..Row::default()
    };
    if let Some(res) = &o.result {
        r.errors.extend(res.errors.iter().cloned());
        if let Some(s) = &res.sat {
            r.mpps = Some(s.mpps);
            r.tx_mpps = Some(s.tx_mpps);
            r.mpps_peak = Some(s.peak_mpps);
            r.drops = Some(s.drops);
            if s.samples > 0 {
                r.p50_us = Some(s.p50_us);
                r.p99_us = Some(s.p99_us);
                r.p999_us = Some(s.p999_us);
            }
        }
        if let Some(h) = &res.half {
            r.mpps_50pct = Some(h.mpps);
            r.drops_50pct = Some(h.drops);
            if h.samples > 0 {
                r.p50_us_50pct = Some(h.p50_us);
                r.p99_us_50pct = Some(h.p99_us);
                r.p999_us_50pct = Some(h.p999_us);
            }
        }
        if let Some(c) = &res.cps {
            r.cps = Some(c.cps);
            r.cps_completed = Some(c.completed);
        }
        if o.mode != "testpmd" {
            r.opened = Some(res.opened);
            r.open_secs = Some(res.open_secs);
            r.per_server = res.per_server.clone();
            r.even = Some(res.even);
        }
        r.mismatches = res.mismatches;
        r.mismatch_kinds = res.mismatch_kinds.clone();
        r.mem_idle_bytes = res.mem_before.map(|m| m.total_bytes());
        r.mem_flows_bytes = res.mem_after.map(|m| m.total_bytes());
        let (total, slot, touched) = bytes_per_flow(
            tiny,
            res.mem_before,
            res.mem_after,
            o.capacity,
            u64::from(o.flows),
        );
        r.bytes_per_flow = total;
        r.table_bytes_per_slot = slot;
        r.touched_bytes_per_flow = touched;
        if o.mode != "testpmd" && !res.even && res.per_server.iter().sum::<u64>() > 0 {
            r.errors
                .push(format!("rr spread is uneven: {:?}", res.per_server));
        }
    }
    r.ratio = match (r.mpps, testpmd_mpps) {
        (Some(m), Some(t)) if t > 0.0 => Some(m / t),
        _ => None,
    };
    r.ok = o.result.is_some() && r.errors.is_empty();
    r
}

fn f(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.digits$}"))
}

fn kilo(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| {
        if x >= 1e6 {
            format!("{:.2}M", x / 1e6)
        } else if x >= 1e3 {
            format!("{:.0}k", x / 1e3)
        } else {
            format!("{x:.0}")
        }
    })
}

/// The charts of a run: (file name, SVG).
pub fn charts(rows: &[Row], meta: &Meta) -> Vec<(String, String)> {
    let modes: Vec<&str> = {
        let mut m: Vec<&str> = rows
            .iter()
            .filter(|r| r.mode != "testpmd")
            .map(|r| r.mode.as_str())
            .collect();
        m.dedup();
        let mut seen = Vec::new();
        for x in m {
            if !seen.contains(&x) {
                seen.push(x);
            }
        }
        seen
    };
    let color = |mode: &str| modes.iter().position(|m| *m == mode);
    let series =
        |name: &str, pick: &dyn Fn(&Row) -> Option<f64>, dashed: bool, mode: &str| Series {
            name: name.to_owned(),
            points: rows
                .iter()
                .filter(|r| r.mode == mode)
                .filter_map(|r| pick(r).map(|v| (f64::from(r.flows), v)))
                .collect(),
            dashed,
            color: color(mode),
        };
    let testpmd = meta.testpmd.as_ref().map(|t| t.mpps);
    let mut out = Vec::new();

    let mut c = Chart {
        title: "Established-flow throughput (one worker, 64-byte frames)".into(),
        x_label: "concurrent flows".into(),
        y_label: "Mpps forwarded".into(),
        log_x: true,
        ..Chart::default()
    };
    for m in &modes {
        c.series.push(series(m, &|r| r.mpps, false, m));
    }
    if let Some(t) = testpmd {
        c.hlines.push(HLine {
            name: "testpmd io".into(),
            y: t,
        });
    }
    out.push(("throughput.svg".to_owned(), c.render()));

    let mut c = Chart {
        title: "Round-trip latency p99 (solid: saturation, dashed: 50% load)".into(),
        x_label: "concurrent flows".into(),
        y_label: "p99 µs (log)".into(),
        log_x: true,
        log_y: true,
        ..Chart::default()
    };
    for m in &modes {
        c.series.push(series(m, &|r| r.p99_us, false, m));
        c.series
            .push(series(&format!("{m} 50%"), &|r| r.p99_us_50pct, true, m));
    }
    if let Some(t) = &meta.testpmd {
        c.hlines.push(HLine {
            name: "testpmd p99".into(),
            y: t.p99_us,
        });
    }
    out.push(("latency.svg".to_owned(), c.render()));

    let mut c = Chart {
        title: "New connections per second".into(),
        x_label: "concurrent flows already tracked".into(),
        y_label: "connections/s".into(),
        log_x: true,
        ..Chart::default()
    };
    for m in &modes {
        c.series.push(series(m, &|r| r.cps, false, m));
    }
    out.push(("cps.svg".to_owned(), c.render()));

    let mut c = Chart {
        title: "Pipeline cost per packet, no I/O (criterion)".into(),
        x_label: "concurrent flows".into(),
        y_label: "ns per packet".into(),
        log_x: true,
        ..Chart::default()
    };
    for m in &modes {
        let pts: Vec<(f64, f64)> = meta
            .pipeline
            .iter()
            .filter_map(|(k, v)| {
                let (g, n) = k.split_once('/')?;
                (g == format!("{m}_established")).then_some(())?;
                Some((n.parse::<f64>().ok()?, *v))
            })
            .collect();
        let mut pts = pts;
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        c.series.push(Series {
            name: (*m).to_owned(),
            points: pts,
            dashed: false,
            color: color(m),
        });
    }
    out.push(("pipeline.svg".to_owned(), c.render()));
    out
}

/// Renders a JSON document from another tool (the namespace lab) as Markdown tables: an
/// array of flat objects becomes one table; an object's array members become one table each;
/// other members a key/value list.
pub fn json_tables(v: &serde_json::Value) -> String {
    use serde_json::Value;
    fn cell(v: &Value) -> String {
        match v {
            Value::Null => "–".into(),
            Value::String(s) => s.replace('|', "\\|"),
            Value::Number(n) => match n.as_f64() {
                Some(x) if n.is_f64() => {
                    if x.abs() >= 100.0 {
                        format!("{x:.0}")
                    } else {
                        format!("{x:.3}")
                    }
                }
                _ => n.to_string(),
            },
            other => other.to_string().replace('|', "\\|"),
        }
    }
    fn table(rows: &[Value]) -> String {
        let mut cols: Vec<String> = Vec::new();
        for r in rows {
            if let Value::Object(o) = r {
                for k in o.keys() {
                    if !cols.contains(k) {
                        cols.push(k.clone());
                    }
                }
            }
        }
        if cols.is_empty() {
            return rows.iter().map(|r| format!("- {}\n", cell(r))).collect();
        }
        let mut s = format!("| {} |\n|{}\n", cols.join(" | "), "---|".repeat(cols.len()));
        for r in rows {
            let cells: Vec<String> = cols
                .iter()
                .map(|c| r.get(c).map_or("–".into(), cell))
                .collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s
    }
    match v {
        Value::Array(rows) => table(rows),
        Value::Object(o) => {
            let mut s = String::new();
            let mut scalars = String::new();
            for (k, val) in o {
                match val {
                    Value::Array(rows) => {
                        let _ = write!(s, "\n**{k}**\n\n{}", table(rows));
                    }
                    Value::Object(_) => {
                        let _ = write!(s, "\n**{k}**\n\n{}", json_tables(val));
                    }
                    _ => {
                        let _ = writeln!(scalars, "- {k}: {}", cell(val));
                    }
                }
            }
            scalars + &s
        }
        other => format!("{}\n", cell(other)),
    }
}

/// The Markdown report.
pub fn markdown(meta: &Meta, rows: &[Row], lab: Option<&serde_json::Value>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# RVS performance report\n");
    let _ = writeln!(
        s,
        "Run {} ({}; {:.0} s) on {}, DPDK {}, commit `{}`.",
        meta.started,
        if meta.quick {
            "quick: 100k flows"
        } else {
            "full matrix"
        },
        meta.secs,
        meta.machine,
        meta.dpdk,
        meta.commit
    );
    if !meta.options.is_empty() {
        let opts: Vec<String> = meta
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(s, "Options: {}.", opts.join(", "));
    }
    let _ = writeln!(
        s,
        "\nOne worker core for the director, one core for `rvs-pktgen`, joined by memif. \
         Mpps counts the packets the director forwarded right per second (NAT and FullNAT: \
         requests and replies). Latency is the round trip through the director measured by the \
         generator (µs). How the figures are made and how to read them: `perf/README.md`.\n"
    );
    if let Some(t) = &meta.testpmd {
        let _ = writeln!(
            s,
            "**Local limit** (`dpdk-testpmd` io-forward on the same link, same generator): \
             {:.2} Mpps (best 100 ms {:.2}), latency p50/p99/p99.9 {:.1}/{:.1}/{:.1} µs at \
             saturation{}.\n",
            t.mpps,
            t.peak_mpps,
            t.p50_us,
            t.p99_us,
            t.p999_us,
            meta.testpmd_half
                .as_ref()
                .map_or(String::new(), |h| format!(
                    ", {:.1}/{:.1}/{:.1} µs at half that rate",
                    h.p50_us, h.p99_us, h.p999_us
                ))
        );
        if meta.testpmd_runs.len() > 1 {
            let range = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                (v[0], v[v.len() - 1])
            };
            let (lo, hi) = range(&mut meta.testpmd_runs.iter().map(|b| b.mpps).collect());
            let half: Vec<String> = meta
                .testpmd_half_runs
                .iter()
                .map(|h| format!("{:.0}", h.p99_us))
                .collect();
            let _ = writeln!(
                s,
                "The baseline ran {} times, spread over the run (first, between the scenarios, \
                 last); the figures above and every ratio use the median run. Its rate went \
                 from {lo:.2} to {hi:.2} Mpps ({:.0} % apart) and its half-rate p99 was {} µs: \
                 that is how much this machine's link itself drifts, and the margin any one \
                 figure below carries.\n",
                meta.testpmd_runs.len(),
                (hi / lo - 1.0) * 100.0,
                half.join(" / ")
            );
        }
    }
    let _ = writeln!(
        s,
        "| scenario | Mpps | ratio to testpmd (average / best 100 ms) | conn/s | p50 µs | p99 µs | p99.9 µs | p50/p99 µs at 50% | drops | bytes/flow | pipeline ns | mismatches |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows.iter().filter(|r| r.mode != "testpmd") {
        let _ = writeln!(
            s,
            "| {}{} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} | {} | {} |",
            r.scenario,
            if r.ok { "" } else { " ⚠" },
            f(r.mpps, 2),
            match (r.ratio, r.ratio_peak) {
                (Some(a), Some(p)) => format!("{:.0}% / {:.0}%", a * 100.0, p * 100.0),
                (Some(a), None) => format!("{:.0}%", a * 100.0),
                _ => "–".into(),
            },
            kilo(r.cps),
            f(r.p50_us, 1),
            f(r.p99_us, 1),
            f(r.p999_us, 1),
            f(r.p50_us_50pct, 1),
            f(r.p99_us_50pct, 1),
            r.drops.map_or("–".into(), |d| d.to_string()),
            f(r.bytes_per_flow, 0),
            f(r.pipeline_ns, 1),
            r.mismatches
        );
    }
    let _ = writeln!(s);
    for (name, title) in [
        ("throughput.svg", "Throughput"),
        ("latency.svg", "Latency"),
        ("cps.svg", "New connections"),
        ("pipeline.svg", "Pipeline cost"),
    ] {
        let _ = writeln!(s, "![{title}]({name})\n");
    }
    if !meta.pipeline.is_empty() {
        let _ = writeln!(
            s,
            "## Pipeline cost without I/O\n\n`cargo bench -p rvs-perf --bench pipeline`: \
             `Worker::process` on in-memory frames (parse, lookup, schedule, rewrite), ns per \
             packet.\n"
        );
        let _ = writeln!(
            s,
            "| benchmark | ns/packet | Mpps equivalent |\n|---|---:|---:|"
        );
        for (k, v) in &meta.pipeline {
            let _ = writeln!(s, "| {k} | {v:.1} | {:.1} |", 1e3 / v);
        }
        let _ = writeln!(s);
    }
    s.push_str(&targets(meta, rows));
    let _ = writeln!(s, "## Per scenario details\n");
    let _ = writeln!(
        s,
        "| scenario | Mpps of each pass | opened | open s | tx Mpps | best 100 ms Mpps | Mpps at 50% | drops at 50% | conns done | table B/slot | touched B/flow | director drops | per server |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
    );
    for r in rows.iter().filter(|r| r.mode != "testpmd") {
        let drops: Vec<String> = r
            .director_drops
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            if r.mpps_runs.is_empty() {
                f(r.mpps, 2)
            } else {
                r.mpps_runs
                    .iter()
                    .map(|m| format!("{m:.2}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            },
            r.opened.map_or("–".into(), |x| x.to_string()),
            f(r.open_secs, 1),
            f(r.tx_mpps, 2),
            f(r.mpps_peak, 2),
            f(r.mpps_50pct, 2),
            r.drops_50pct.map_or("–".into(), |x| x.to_string()),
            r.cps_completed.map_or("–".into(), |x| x.to_string()),
            f(r.table_bytes_per_slot, 0),
            f(r.touched_bytes_per_flow, 0),
            if drops.is_empty() {
                "0".into()
            } else {
                drops.join(" ")
            },
            r.per_server
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("/")
        );
    }
    let problems: Vec<String> = rows
        .iter()
        .flat_map(|r| r.errors.iter().map(move |e| format!("{}: {e}", r.scenario)))
        .chain(meta.failures.iter().cloned())
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(s, "\n## Problems\n");
        for p in problems {
            let _ = writeln!(s, "- {p}");
        }
    }
    if let Some(lab) = lab {
        let _ = writeln!(
            s,
            "\n## Namespace lab: RVS against nftables and HAProxy\n\nFrom `lab.json` (`rvs-compare`).\n"
        );
        match lab_table(lab) {
            Some(t) => s.push_str(&t),
            None => s.push_str(&json_tables(lab)),
        }
    }
    s
}

/// `rvs-compare`'s records side by side: one row per (load, director) with the figures that
/// compare (every field stays in `lab.json`). `None` when `lab` is not such a list.
fn lab_table(lab: &serde_json::Value) -> Option<String> {
    let rows = lab.as_array()?;
    if rows.is_empty() || !rows.iter().all(|r| r.get("director").is_some()) {
        return None;
    }
    let cols = [
        ("load", "load"),
        ("director", "director"),
        ("rps", "req/s"),
        ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"),
        ("transfer_mb_s", "MB/s"),
        ("errors", "errors"),
        ("tcp_retransmits", "retransmits"),
        ("link_drops", "link drops"),
    ];
    let mut ordered: Vec<&serde_json::Value> = rows.iter().collect();
    ordered.sort_by_key(|r| {
        r.get("load")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    });
    let mut t = String::new();
    let head: Vec<&str> = cols.iter().map(|c| c.1).collect();
    let _ = writeln!(t, "| {} |", head.join(" | "));
    let _ = writeln!(t, "|{}", "---|".repeat(cols.len()));
    for r in ordered {
        let cells: Vec<String> = cols
            .iter()
            .map(|(k, _)| match r.get(*k) {
                Some(serde_json::Value::String(v)) => v.clone(),
                Some(serde_json::Value::Number(n)) => match n.as_f64() {
                    Some(f) if f.fract() != 0.0 => format!("{f:.2}"),
                    _ => n.to_string(),
                },
                Some(v) if !v.is_null() => v.to_string(),
                _ => "–".to_owned(),
            })
            .collect();
        let _ = writeln!(t, "| {} |", cells.join(" | "));
    }
    let _ = writeln!(
        t,
        "\nEvery measured field (CPU busy per core, director counters, setup) is in `lab.json`."
    );
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::{Blast, Cps};

    fn outcome(mode: &str, flows: u32, mpps: f64) -> ScenarioOutcome {
        ScenarioOutcome {
            mode: mode.into(),
            proto: "tcp".into(),
            flows,
            capacity: 1 << 21,
            result: Some(PktgenResult {
                mode: mode.into(),
                flows,
                opened: u64::from(flows),
                sat: Some(Blast {
                    mpps,
                    p50_us: 10.0,
                    p99_us: 20.0,
                    p999_us: 30.0,
                    samples: 100,
                    ..Blast::default()
                }),
                half: Some(Blast {
                    mpps: mpps / 2.0,
                    p99_us: 5.0,
                    samples: 100,
                    ..Blast::default()
                }),
                cps: Some(Cps {
                    cps: 250_000.0,
                    completed: 500_000,
                    ..Cps::default()
                }),
                per_server: vec![10, 10],
                even: true,
                mem_before: Some(Mem {
                    rss_kb: 1024 + 2048,
                    hugetlb_kb: 0,
                }),
                mem_after: Some(Mem {
                    rss_kb: 1024 + 2048 + 100,
                    hugetlb_kb: 0,
                }),
                ..PktgenResult::default()
            }),
            ..ScenarioOutcome::default()
        }
    }

    fn tiny() -> Option<Mem> {
        Some(Mem {
            rss_kb: 1024,
            hugetlb_kb: 0,
        })
    }

    #[test]
    fn rows_carry_the_contract_fields() {
        let mut pipe = BTreeMap::new();
        pipe.insert("dr_established/100000".to_owned(), 42.0);
        let r = row(&outcome("dr", 100_000, 4.0), Some(8.0), tiny(), &pipe);
        assert_eq!(r.scenario, "dr-100k");
        assert_eq!(r.ratio, Some(0.5));
        assert_eq!(r.pipeline_ns, Some(42.0));
        assert_eq!(r.cps, Some(250_000.0));
        assert!(r.ok, "{:?}", r.errors);
        // 2 MiB over 2^21 slots = 1 B/slot; 100 KiB over 100k flows = 1.024 B/flow.
        assert_eq!(r.table_bytes_per_slot, Some(1.0));
        assert!((r.bytes_per_flow.unwrap() - 2.024).abs() < 1e-9);
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "scenario",
            "mode",
            "flows",
            "mpps",
            "testpmd_mpps",
            "ratio",
            "cps",
            "p50_us",
            "p99_us",
            "p999_us",
            "bytes_per_flow",
            "mismatches",
        ] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        let back: Row = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn a_failed_scenario_has_nulls_and_is_not_ok() {
        let o = ScenarioOutcome {
            mode: "fnat".into(),
            flows: 1000,
            errors: vec!["director exited".into()],
            ..ScenarioOutcome::default()
        };
        let r = row(&o, Some(8.0), tiny(), &BTreeMap::new());
        assert!(!r.ok);
        assert_eq!(r.mpps, None);
        assert_eq!(r.ratio, None);
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["mpps"].is_null());
        assert!(markdown(&Meta::default(), &[r], None).contains("fnat-1k ⚠"));
    }

    #[test]
    fn uneven_spread_is_an_error() {
        let mut o = outcome("nat", 1000, 1.0);
        if let Some(r) = &mut o.result {
            r.per_server = vec![900, 100];
            r.even = false;
        }
        let r = row(&o, None, None, &BTreeMap::new());
        assert!(!r.ok);
        assert!(r.errors[0].contains("uneven"));
    }

    #[test]
    fn director_exit_lines_are_parsed() {
        let text = "worker lcore 1: rx 10 pkts 640 bytes, tx 9 pkts, forwarded 9, connections 5, arp replies 0, drops 3 [tx_full=2 no_service=1]\n\
                    port dp0: ipackets 0\n";
        let d = parse_director_exit(text);
        assert_eq!(d.connections, 5);
        assert_eq!(d.forwarded, 9);
        assert_eq!(d.drops.get("tx_full"), Some(&2));
        assert_eq!(d.drops.get("no_service"), Some(&1));
        let none = parse_director_exit("worker lcore 1: rx 1 pkts, drops 0 []\n");
        assert!(none.drops.is_empty());
    }

    #[test]
    fn memory_per_flow_needs_all_three_readings() {
        let m = |kb| {
            Some(Mem {
                rss_kb: kb,
                hugetlb_kb: 0,
            })
        };
        assert_eq!(
            bytes_per_flow(m(0), m(1), m(2), 1024, 1024),
            (Some(2.0), Some(1.0), Some(1.0))
        );
        assert_eq!(
            bytes_per_flow(None, m(1), m(2), 1024, 1024),
            (None, None, Some(1.0))
        );
        assert_eq!(bytes_per_flow(m(0), m(1), None, 1024, 0).0, None);
    }

    #[test]
    fn markdown_has_the_table_charts_and_lab() {
        let pipe = BTreeMap::new();
        let rows: Vec<Row> = [("dr", 1000), ("dr", 100_000), ("nat", 1000)]
            .iter()
            .map(|&(m, n)| row(&outcome(m, n, 3.0), Some(6.0), tiny(), &pipe))
            .collect();
        let meta = Meta {
            testpmd: Some(Blast {
                mpps: 6.0,
                ..Blast::default()
            }),
            ..Meta::default()
        };
        let lab = serde_json::json!([{"tool": "rvs", "rps": 1000.5}, {"tool": "nft", "rps": 900}]);
        let md = markdown(&meta, &rows, Some(&lab));
        assert!(md.contains("| dr-1k | 3.00 | 50% | 250k |"), "{md}");
        assert!(md.contains("![Throughput](throughput.svg)"));
        assert!(md.contains("| rps | tool |"), "{md}");
        assert!(md.contains("| 900 | nft |"));
        let svgs = charts(&rows, &meta);
        assert_eq!(svgs.len(), 4);
        let tp = &svgs[0].1;
        assert!(tp.contains(">dr<") && tp.contains(">nat<") && tp.contains("testpmd io"));
    }

    #[test]
    fn lab_records_render_side_by_side() {
        let v = serde_json::json!([
            {"director": "rvs", "load": "short", "rps": 4118.5, "p50_ms": 3.294, "errors": 0},
            {"director": "nftables", "load": "long", "rps": 31693, "errors": 2}
        ]);
        let t = lab_table(&v).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "| load | director | req/s | p50 ms | p99 ms | MB/s | errors | retransmits | link drops |"
        );
        assert_eq!(
            lines[2],
            "| long | nftables | 31693 | – | – | – | 2 | – | – |"
        );
        assert_eq!(
            lines[3],
            "| short | rvs | 4118.50 | 3.29 | – | – | 0 | – | – |"
        );
        assert!(lab_table(&serde_json::json!({"rows": []})).is_none());
    }

    #[test]
    fn lab_objects_render_as_tables_and_lists() {
        let v =
            serde_json::json!({"date": "x", "rows": [{"a": 1}], "nested": {"b": [ {"c": "d|e"} ]}});
        let s = json_tables(&v);
        assert!(s.contains("- date: x"));
        assert!(s.contains("| a |"));
        assert!(s.contains("d\\|e"));
    }

    #[test]
    fn targets_say_what_was_reached_and_by_how_much_not() {
        let row = |mode: &str, flows: u32, ratio: f64, p99: f64, bpf: f64| Row {
            scenario: format!("{mode}-{}", flows_label(flows)),
            mode: mode.into(),
            flows,
            ratio: Some(ratio),
            p99_us_50pct: Some(p99),
            bytes_per_flow: Some(bpf),
            ..Row::default()
        };
        let rows = vec![
            row("dr", 100_000, 0.99, 50.0, 70.0),
            row("dr", 1_000_000, 0.97, 72.0, 61.5),
            Row {
                // The best 100 ms is further off than the average: that one decides.
                ratio_peak: Some(0.5),
                ..row("nat", 1_000_000, 0.60, 140.0, 63.0)
            },
            row("nat", 10_000_000, 0.10, 900.0, 62.0),
        ];
        let mut meta = Meta {
            testpmd_half: Some(crate::result::Blast {
                p99_us: 70.0,
                ..Default::default()
            }),
            before: Some(Before {
                commit: "abc".into(),
                measured: "then".into(),
                pipeline_established_1m_ns: Some(854.0),
                ratio: [("nat".to_owned(), 0.3)].into_iter().collect(),
                ..Before::default()
            }),
            analysis: Some("Because.".into()),
            ..Meta::default()
        };
        meta.pipeline
            .insert("dr_established_burst/1000000".into(), 80.0);
        meta.pipeline.insert("nat_new_connection/syn".into(), 149.0);
        meta.pipeline.insert("dr_new_connection/syn".into(), 120.0);
        let t = targets(&meta, &rows);
        // At 1M (not 10M, not 100k): dr reached, nat short by 0.35.
        assert!(
            t.contains("| dr Mpps ≥ 0.95 × testpmd's, 1M flows (average / best 100 ms) | – | 0.97 / – | yes | – |"),
            "{t}"
        );
        assert!(
            t.contains("| nat Mpps ≥ 0.95 × testpmd's, 1M flows (average / best 100 ms) | 0.30 | 0.60 / 0.50 | **no** | 0.45 |"),
            "{t}"
        );
        assert!(
            t.contains("dr p99 at 50 %") && t.contains("| 72 (testpmd 70) | yes |"),
            "{t}"
        );
        assert!(t.contains("| 140 (testpmd 70) | **no** | 65 µs |"), "{t}");
        assert!(t.contains("| 854 | 80.0 | **no** | 40.0 ns |"), "{t}");
        assert!(t.contains("(slowest: nat) | – | 149.0 | yes | – |"), "{t}");
        // Memory: the largest at ≥ 1M flows (63), not the 100k row's 70.
        assert!(t.contains("| – | 63.0 | yes | – |"), "{t}");
        assert!(
            t.contains("Before: commit `abc`, then") && t.ends_with("Because.\n\n"),
            "{t}"
        );
    }

    #[test]
    fn passes_merge_to_the_median_with_everything_wrong_kept() {
        let pass = |mpps: Option<f64>, mism: u64, err: &[&str]| Row {
            scenario: "dr-1M".into(),
            mpps,
            mpps_peak: mpps.map(|m| m + 1.0),
            mismatches: mism,
            ok: err.is_empty(),
            errors: err.iter().map(|e| e.to_string()).collect(),
            mismatch_kinds: if mism > 0 {
                [("wrong_server".to_owned(), mism)].into_iter().collect()
            } else {
                BTreeMap::new()
            },
            secs: 1.0,
            ..Row::default()
        };
        let r = merge_passes(vec![
            pass(Some(5.0), 0, &[]),
            pass(Some(3.0), 2, &["uneven"]),
            pass(Some(7.0), 1, &[]),
        ])
        .unwrap();
        // The median pass's figures, every rate, all mismatches, not ok.
        assert_eq!(r.mpps, Some(5.0));
        assert_eq!(r.mpps_peak, Some(6.0));
        assert_eq!(r.mpps_runs, vec![5.0, 3.0, 7.0]);
        assert_eq!(r.mismatches, 3);
        assert_eq!(r.mismatch_kinds.get("wrong_server"), Some(&3));
        assert!(!r.ok);
        assert_eq!(r.errors, vec!["pass 2: uneven".to_owned()]);
        assert_eq!(r.secs, 3.0);
        // A pass without a rate sorts lowest; one pass is itself.
        let r = merge_passes(vec![pass(None, 0, &["failed"]), pass(Some(4.0), 0, &[])]).unwrap();
        assert_eq!(r.mpps, None);
        let one = merge_passes(vec![pass(Some(2.0), 0, &[])]).unwrap();
        assert!(one.mpps_runs.is_empty() && one.ok);
        assert!(merge_passes(Vec::new()).is_none());
    }
}
