//! Network-namespace labs for RVS: real kernel TCP stacks as clients and real servers around a
//! dataplane that runs on an af_packet port, all on this machine.
//!
//! [`Lab`] owns what it creates (namespaces, processes, temporary files) and removes all of it
//! on drop, so a failing test or an interrupted demo leaves nothing behind; stale namespaces of
//! an earlier run with the same prefix are removed before a new lab is built. [`DrLab`] builds
//! the LVS-DR topology of the seeds: one L2 segment (a bridge in its own namespace) joining a
//! client, the director's DPDK port and real servers that hold the VIPs on `lo` with
//! `arp_ignore=1` and `arp_announce=2`, each running an HTTP server that names itself.

pub mod compare;
mod dr;
mod nat;
mod netns;

pub use dr::{BIG_LEN, DrLab, LabProfile, RealServer};
pub use nat::{NatLab, RS_PORT};
pub use netns::{Lab, LabError, check_root, require_tools};

/// A counter of port `port` from `rvs-dataplane`'s exit summary (`port ext: ipackets 10 …
/// imissed 0 … xdp_rx_ring_full 3 xdp_fill_empty 0`); `None` when there is no line for the
/// port or the line lacks the counter (the `xdp_*` ones are on `net_af_xdp` ports only).
pub fn port_counter(summary: &str, port: &str, name: &str) -> Option<u64> {
    let line = summary
        .lines()
        .find_map(|l| l.strip_prefix(&format!("port {port}: ")))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == name)?;
    words.next()?.parse().ok()
}

/// A counter from `rvs-dataplane`'s exit summary (`worker lcore N: … connections 12, …`),
/// summed over every worker line. Panics naming the counter if a worker line lacks it or if
/// there is no worker line.
pub fn summary_counter(summary: &str, name: &str) -> u64 {
    let lines: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("worker lcore"))
        .collect();
    assert!(!lines.is_empty(), "no worker summary in:\n{summary}");
    lines
        .iter()
        .map(|line| {
            line.split(&format!(" {name} "))
                .nth(1)
                .and_then(|a| a.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {name} in {line}"))
        })
        .sum()
}
