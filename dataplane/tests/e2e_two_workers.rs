//! Two workers, two queues per port (af_packet fanout by flow hash): NAT and FullNAT replies
//! that land on the worker not owning their connection are handed over through the handoff
//! rings (FullNAT by local port, NAT through the redirect table), and every connection
//! completes. This machine has 2 CPUs, so the second worker shares a CPU (`share_cpus`).
//! Needs root and hugepages (`scripts/setup.sh`).

use std::net::Ipv4Addr;
use std::time::Duration;

use rvs_lab::{NatLab, summary_counter};

const VIP_NAT: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 100);
const VIP_FNAT: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 101);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 5);

#[test]
fn nat_and_fullnat_complete_with_two_workers() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_rvs-dataplane"));
    let prefix = format!("rvsw{}", std::process::id() % 100_000);
    let mut lab = NatLab::up(&prefix, 2).expect("lab");
    let profile = lab.profile(
        &[
            (VIP_NAT, "rr", "nat", &[]),
            (VIP_FNAT, "rr", "fnat", &[LIP]),
        ],
        &[1, 2],
    );
    let path = lab.write_file("two.yaml", &profile).expect("profile");
    let log = lab.start_dataplane("dp", bin, &path).expect("spawn");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    lab.lab
        .wait_dataplane(&log, "ping to the external DIP", || lab.ping(lab.dip_ext))
        .unwrap_or_else(|e| panic!("{e}"));

    let n = 24;
    for vip in [VIP_NAT, VIP_FNAT] {
        for i in 0..n {
            let body = lab
                .get(vip, "/")
                .unwrap_or_else(|e| panic!("GET {i} to {vip}: {e}\n{}", read_log()));
            let text = String::from_utf8_lossy(&body).into_owned();
            let seen = if vip == VIP_NAT {
                "10.201.0.2"
            } else {
                "10.202.0.5"
            };
            assert!(
                text.starts_with("rs") && text.trim_end().ends_with(seen),
                "request {i} to {vip}: {text:?}"
            );
        }
        let big = lab.get(vip, "/big.bin").expect("download");
        assert_eq!(big.len(), 1 << 20, "1 MiB through {vip}");
    }

    let (code, summary) = lab
        .lab
        .interrupt("dp", Duration::from_secs(20))
        .expect("stop");
    eprintln!("{summary}");
    assert_eq!(code, Some(0), "{summary}");
    let workers = summary
        .lines()
        .filter(|l| l.starts_with("worker lcore"))
        .count();
    assert_eq!(workers, 2, "{summary}");
    assert_eq!(
        summary_counter(&summary, "connections"),
        2 * (n as u64 + 1),
        "{summary}"
    );
    assert!(
        summary_counter(&summary, "handoffs") > 0,
        "some replies crossed workers: {summary}"
    );
    assert!(!summary.contains("handoff_full"), "{summary}");
}
