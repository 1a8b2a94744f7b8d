//! RVS control plane (`rvs-control`): the REST API, health checks, `rvsadm` and the
//! shared-memory link to the dataplane.
//!
//! It depends on `rvs-config` (the profile model) and `rvs-shm` (the shared-memory layout and
//! ring messages) and never on `rvs-dataplane` or `dpdk-bindings` (a test in `config/tests`
//! reads the manifests to keep that true).

pub mod api;
pub mod backend;
pub mod health;
pub mod link;
pub mod metrics;
pub mod rates;
pub mod rvsadm;
pub mod server;
