//! End to end in network namespaces: real kernel TCP (curl → python HTTP servers) through
//! `rvs-dataplane` on an af_packet port in DR mode. Needs root, hugepages, iproute2, ethtool,
//! curl, ping and python3 (`scripts/setup.sh` installs and reserves them); it builds the lab it
//! needs and removes it again.

use std::net::Ipv4Addr;
use std::time::Duration;

use rvs_lab::{BIG_LEN, DrLab, LabProfile, summary_counter};

const VIP_RR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 100);
const VIP_WRR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 101);

fn free_hugepages_2m() -> u64 {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn dpdk_runtime_dirs() -> Vec<String> {
    std::fs::read_dir("/var/run/dpdk")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn dr_lab_balances_real_tcp_in_exact_rr_and_wrr_order() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_rvs-dataplane"));
    let huge_before = free_hugepages_2m();
    let dirs_before = dpdk_runtime_dirs();
    let prefix = format!("rvst{}", std::process::id() % 100_000);
    let mut lab = DrLab::up(&prefix, 3, &[VIP_RR, VIP_WRR]).expect("lab");
    let profile = lab.profile(&LabProfile {
        services: vec![
            (VIP_RR, "rr", vec![1, 1, 1]),
            (VIP_WRR, "wrr", vec![3, 2, 1]),
        ],
        workers: vec![1],
        forward: "dr",
    });
    let path = lab.write_file("e2e.yaml", &profile).expect("profile");
    let log = lab.start_dataplane("dp", bin, &path).expect("spawn");
    lab.lab
        .wait_dataplane(&log, "ping to the DIP", || lab.ping(lab.dip))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(lab.ping(VIP_RR), "the director answers ping for a VIP");

    let rr: Vec<String> = (0..6).map(|_| lab.get(VIP_RR).expect("GET rr")).collect();
    assert_eq!(rr, ["rs1", "rs2", "rs3", "rs1", "rs2", "rs3"], "rr order");
    let wrr: Vec<String> = (0..6).map(|_| lab.get(VIP_WRR).expect("GET wrr")).collect();
    assert_eq!(
        wrr,
        ["rs1", "rs1", "rs2", "rs1", "rs2", "rs3"],
        "wrr order for 3,2,1"
    );

    // A long connection (1 MiB down, hundreds of ACKs up) stays on its server, byte-exact.
    let big = lab.download_big(VIP_RR).expect("download");
    assert_eq!(big.len(), BIG_LEN);
    assert_eq!(
        big,
        "rs1\n".repeat(BIG_LEN / 4).into_bytes(),
        "whole body from rs1"
    );

    let (code, summary) = lab
        .lab
        .interrupt("dp", Duration::from_secs(20))
        .expect("stop");
    eprintln!("{summary}");
    assert_eq!(code, Some(0), "clean exit on SIGINT:\n{summary}");
    assert_eq!(summary_counter(&summary, "connections"), 13, "{summary}");
    assert!(
        summary_counter(&summary, "forwarded") >= 13 * 4 + 10,
        "{summary}"
    );
    assert!(summary_counter(&summary, "arp replies") >= 1, "{summary}");
    assert!(
        summary_counter(&summary, "icmp echo replies") >= 2,
        "{summary}"
    );
    assert!(summary.contains("port dp0: ipackets"), "{summary}");
    drop(lab);

    // Nothing left behind: hugepages returned, no DPDK runtime directory created.
    let mut huge_after = free_hugepages_2m();
    for _ in 0..50 {
        if huge_after >= huge_before {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        huge_after = free_hugepages_2m();
    }
    assert_eq!(huge_after, huge_before, "hugepages returned after exit");
    let new_dirs: Vec<String> = dpdk_runtime_dirs()
        .into_iter()
        .filter(|d| !dirs_before.contains(d))
        .collect();
    assert!(new_dirs.is_empty(), "runtime dirs left: {new_dirs:?}");
}
