//! RVS performance harness.
//!
//! - [`plan`]: the topology on the memif link (addresses, MACs, flow ↔ client tuple) and the
//!   director's profile for a scenario;
//! - [`packet`]: request templates, the checker for returned frames, the real server's answer;
//! - [`generator`]: the DPDK generator loop (`rvs-pktgen`);
//! - [`result`]: what a generator run measured;
//! - [`runner`], [`report`], [`svg`], [`progress`]: the scenario runner (`rvs-perf-run`)
//!   and the reports it writes.
//!
//! The pipeline benchmarks (`benches/pipeline.rs`, criterion) measure the dataplane's own cost
//! per packet without I/O. `perf/README.md` says how to run everything and read the reports.

#![deny(unsafe_code)]

pub mod fixture;
pub mod generator;
pub mod packet;
pub mod plan;
pub mod progress;
pub mod report;
pub mod result;
pub mod runner;
pub mod svg;
