//! End to end through real processes: `rvs-perf-run`'s runner drives `rvs-pktgen` against
//! `dpdk-testpmd` and against `rvs-dataplane` in every mode over memif, with few flows and
//! short phases. Every flow must open, every frame that comes back must be right, every phase
//! must measure something, and the reports must be written. Needs hugepages and
//! `dpdk-testpmd` (`scripts/setup.sh`) and the dataplane binary (`cargo test --workspace`
//! builds it).

use std::path::PathBuf;

use rvs_perf::plan::{Mode, Proto};
use rvs_perf::runner::{self, RunConfig};

#[test]
fn every_mode_end_to_end_over_memif() {
    let pktgen = PathBuf::from(env!("CARGO_BIN_EXE_rvs-pktgen"));
    let bin_dir = pktgen.parent().expect("bin dir").to_path_buf();
    assert!(
        bin_dir.join("rvs-dataplane").exists(),
        "{} missing: build it first (cargo build -p rvs-dataplane, or cargo test --workspace)",
        bin_dir.join("rvs-dataplane").display()
    );
    let tmp = std::env::temp_dir().join(format!("rvs-perf-smoke-{}", std::process::id()));
    let cfg = RunConfig {
        repo: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
        bin_dir,
        out: tmp.join("out"),
        quick: true,
        modes: Mode::DIRECTOR.to_vec(),
        flows: vec![1000],
        proto: Proto::Tcp,
        servers: 4,
        duration: 0.6,
        half_duration: 0.4,
        cps_duration: 0.5,
        warmup: 0.1,
        fresh: 4096,
        zero_copy: true,
        pktgen_lcore: 0,
        main_lcore: 0,
        worker_lcore: 1,
        bench: false,
        testpmd: true,
        testpmd_runs: 2,
        passes: 1,
        cargo: "cargo".into(),
        testpmd_bin: "dpdk-testpmd".into(),
        run_dir: tmp.join("run"),
    };
    let (rows, meta, ok) = runner::run(&cfg);
    runner::write_outputs(&cfg.out, &rows, &meta).expect("outputs");
    let report = std::fs::read_to_string(cfg.out.join("report.md")).expect("report.md");
    assert!(ok, "not every step ran:\n{report}");
    assert!(
        meta.testpmd.as_ref().is_some_and(|t| t.mpps > 0.0),
        "testpmd baseline"
    );
    assert_eq!(meta.testpmd_runs.len(), 2, "a baseline first and last");
    assert!(report.contains("The baseline ran 2 times"), "{report}");
    assert!(report.contains("## Targets, before and after"), "{report}");
    assert!(meta.idle_mem.is_some(), "idle director memory");
    assert_eq!(rows.len(), 5, "testpmd + four modes");
    for r in rows.iter().filter(|r| r.mode != "testpmd") {
        assert!(r.ok, "{}: {:?}", r.scenario, r.errors);
        assert_eq!(r.mismatches, 0, "{}: {:?}", r.scenario, r.mismatch_kinds);
        assert_eq!(r.opened, Some(1000), "{}", r.scenario);
        assert!(r.mpps.is_some_and(|m| m > 0.0), "{}: mpps", r.scenario);
        assert!(r.ratio.is_some(), "{}: ratio", r.scenario);
        assert!(
            r.p99_us.is_some() && r.p99_us_50pct.is_some(),
            "{}: latency",
            r.scenario
        );
        assert!(r.cps.is_some_and(|c| c > 0.0), "{}: cps", r.scenario);
        assert_eq!(
            r.cps_completed,
            Some(4096),
            "{}: every new connection completes",
            r.scenario
        );
        assert!(
            r.bytes_per_flow.is_some_and(|b| b > 0.0),
            "{}: memory",
            r.scenario
        );
        assert_eq!(r.even, Some(true), "{}: {:?}", r.scenario, r.per_server);
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cfg.out.join("summary.json")).expect("summary.json"),
    )
    .expect("json");
    assert_eq!(summary.as_array().map(Vec::len), Some(5));
    assert!(cfg.out.join("throughput.svg").exists());
    let _ = std::fs::remove_dir_all(&tmp);
}
