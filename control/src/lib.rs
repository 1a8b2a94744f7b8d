//! RVS control plane (`rvs-control`): the REST API, health checks, `rvsadm` and the
//! shared-memory link to the dataplane.
//!
//! Nothing of it exists yet: this crate holds only its place in the workspace and the
//! dependency rule it must keep: it depends on `rvs-config` (the profile model and, later, the
//! ring message format) and never on `rvs-dataplane` or `dpdk-bindings` (a test in
//! `config/tests` reads the manifests to keep that true). The process, its API and `rvsadm` are
//! built by the control-plane issue; until then the dataplane runs from its boot profile alone.
