//! What one generator run measured (written by `rvs-pktgen` as JSON, read by the runner).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Resident and hugepage memory of a process, from `/proc/PID/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mem {
    /// `VmRSS`, KiB (heap and other ordinary pages).
    pub rss_kb: u64,
    /// `HugetlbPages`, KiB (DPDK's hugepage memory, which RSS does not show).
    pub hugetlb_kb: u64,
}

impl Mem {
    /// Both together, bytes.
    pub fn total_bytes(&self) -> u64 {
        (self.rss_kb + self.hugetlb_kb) * 1024
    }

    /// Parses the `VmRSS` and `HugetlbPages` lines of a `/proc/PID/status` text.
    pub fn parse_status(text: &str) -> Option<Mem> {
        let field = |name: &str| {
            text.lines().find_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix(':')?;
                rest.split_whitespace().next()?.parse::<u64>().ok()
            })
        };
        Some(Mem {
            rss_kb: field("VmRSS")?,
            hugetlb_kb: field("HugetlbPages").unwrap_or(0),
        })
    }

    /// Reads process `pid`'s memory.
    pub fn of_pid(pid: u32) -> Option<Mem> {
        Mem::parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
    }
}

/// A timed stream of established-flow packets (at saturation, or rate-limited).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Blast {
    /// Length of the counted window, seconds (after the warm-up).
    pub secs: f64,
    /// Requests per second asked for (`None`: as fast as the link takes them).
    pub target_pps: Option<f64>,
    /// Requests sent during the whole phase.
    pub sent: u64,
    /// Valid packets back during the whole phase (requests at a real server, replies at a
    /// client; each is one packet the director forwarded right).
    pub returned: u64,
    /// Valid packets back per second in the counted window, millions.
    pub mpps: f64,
    /// Requests sent per second in the counted window, millions.
    pub tx_mpps: f64,
    /// The best 100 ms of the counted window, Mpps: close to `mpps` on a quiet machine; on a
    /// busy one, what the director does while it has its core.
    #[serde(default)]
    pub peak_mpps: f64,
    /// Packets that should have come back and did not (after a drain).
    pub drops: u64,
    /// Round-trip latency percentiles, microseconds (DR/TUN: generator → director → real
    /// server; NAT/FullNAT: client → director → server → director → client).
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Latency samples.
    pub samples: u64,
}

/// New connections per second over fresh tuples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cps {
    /// Connections started (SYN sent).
    pub started: u64,
    /// Connections whose whole exchange came back.
    pub completed: u64,
    /// Seconds from the first SYN to the last completion.
    pub secs: f64,
    /// `completed / secs`.
    pub cps: f64,
    /// Packets through the director per connection.
    pub packets_per_conn: u32,
}

/// Everything one `rvs-pktgen` run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PktgenResult {
    /// `dr`, `tun`, `nat`, `fnat` or `testpmd`.
    pub mode: String,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Established flows asked for.
    pub flows: u32,
    /// Real servers.
    pub servers: usize,
    /// Frame length.
    pub size: usize,
    /// Seconds until the link was up and every real server's ARP answered.
    pub ready_secs: f64,
    /// Flows whose opening packet came back.
    pub opened: u64,
    /// Seconds to open them (TCP: SYN and ACK passes).
    pub open_secs: f64,
    /// At full rate.
    pub sat: Option<Blast>,
    /// At half the saturation rate.
    pub half: Option<Blast>,
    /// New connections.
    pub cps: Option<Cps>,
    /// Returned packets that were wrong, in all phases.
    pub mismatches: u64,
    /// The same by kind.
    pub mismatch_kinds: BTreeMap<String, u64>,
    /// Flows first seen at each real server.
    pub per_server: Vec<u64>,
    /// Whether round robin spread them evenly.
    pub even: bool,
    /// The director's memory before the flows were opened.
    pub mem_before: Option<Mem>,
    /// The director's memory holding the flows.
    pub mem_after: Option<Mem>,
    /// What went wrong (a run with errors did not measure what it should).
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read() {
        let text = "Name:\trvs-dataplane\nVmPeak:\t 100 kB\nVmRSS:\t   52340 kB\nRssAnon:\t 1 kB\nHugetlbPages:\t  131072 kB\n";
        let m = Mem::parse_status(text).unwrap();
        assert_eq!(
            m,
            Mem {
                rss_kb: 52340,
                hugetlb_kb: 131072
            }
        );
        assert_eq!(m.total_bytes(), (52340 + 131072) * 1024);
        assert_eq!(
            Mem::parse_status("VmRSS: 10 kB\n"),
            Some(Mem {
                rss_kb: 10,
                hugetlb_kb: 0
            })
        );
        assert_eq!(Mem::parse_status("Name: x\n"), None);
    }

    #[test]
    fn our_own_memory_is_readable() {
        let m = Mem::of_pid(std::process::id()).expect("/proc/self/status");
        assert!(m.rss_kb > 0);
    }

    #[test]
    fn result_round_trips_through_json() {
        let r = PktgenResult {
            mode: "nat".into(),
            flows: 1000,
            sat: Some(Blast {
                mpps: 4.5,
                ..Blast::default()
            }),
            ..PktgenResult::default()
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<PktgenResult>(&s).unwrap(), r);
    }
}
