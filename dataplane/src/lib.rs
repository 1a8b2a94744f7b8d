//! RVS dataplane: the DPDK primary process that balances L4 traffic.
//!
//! Pure logic (`wire`, `flow`, `sched`, `fwd`, `neigh`, `snapshot`, `pipeline`, `stats`) never
//! touches DPDK, so it tests without a NIC; `io` holds the parts that do (EAL boot, ports, the
//! lcore loops). See ARCHITECTURE.md for the whole shape.

#![deny(unsafe_code)]

pub mod configure;
pub mod flow;
pub mod fwd;
pub mod io;
pub mod link;
pub mod mailbox;
pub mod neigh;
pub mod pipeline;
pub mod redirect;
pub mod sched;
pub mod snapshot;
pub mod stats;
pub mod wire;
