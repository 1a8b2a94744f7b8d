//! RVS performance harness.
//!
//! Today it holds the pipeline benchmarks (`benches/pipeline.rs`, criterion): the cost of the
//! dataplane's own logic per packet (parse, flow lookup, schedule, DR rewrite) on in-memory
//! frames, without I/O, as the number of tracked flows grows. The traffic generator over memif
//! (`rvs-pktgen`), the scenario runner and the reports come with the performance issue; see
//! `perf/README.md`.
