//! Network-namespace labs for RVS: real kernel TCP stacks as clients and real servers around a
//! dataplane that runs on an af_packet port, all on this machine.
//!
//! [`Lab`] owns what it creates (namespaces, processes, temporary files) and removes all of it
//! on drop, so a failing test or an interrupted demo leaves nothing behind; stale namespaces of
//! an earlier run with the same prefix are removed before a new lab is built. [`DrLab`] builds
//! the LVS-DR topology of the seeds: one L2 segment (a bridge in its own namespace) joining a
//! client, the director's DPDK port and real servers that hold the VIPs on `lo` with
//! `arp_ignore=1` and `arp_announce=2`, each running an HTTP server that names itself.

mod dr;
mod nat;
mod netns;

pub use dr::{BIG_LEN, DrLab, LabProfile, RealServer};
pub use nat::{NatLab, RS_PORT};
pub use netns::{Lab, LabError, check_root, require_tools};
