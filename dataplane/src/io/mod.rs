//! The parts of the dataplane that touch DPDK: booting the EAL and ports from the profile
//! ([`boot`]) and the lcore loops ([`lcore`]). Everything here uses the safe layer of the
//! `dpdk` crate; the packet logic itself lives in [`crate::pipeline`].

pub mod boot;
pub mod lcore;
