//! End to end in network namespaces: tunnel mode (IP-in-IP, GRE, GUE) with real kernel TCP. Real servers
//! decapsulate with a tc BPF program (the kernel has no ipip module here), hold the VIP on `lo`
//! and answer the client directly. An upload with full-size segments exercises the tunnel MTU:
//! the director answers ICMP "fragmentation needed" and the client's path-MTU discovery
//! adapts. Needs root, hugepages, clang and tc (`scripts/setup.sh`).

use std::net::Ipv4Addr;
use std::time::Duration;

use rvs_lab::{BIG_LEN, DrLab, LabProfile, summary_counter};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 100);
const VIP_GRE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 101);
const VIP_GUE: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 102);

#[test]
fn tunnel_mode_with_decapsulating_real_servers_and_path_mtu() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_rvs-dataplane"));
    let prefix = format!("rvsu{}", std::process::id() % 100_000);
    let mut lab = DrLab::up(&prefix, 2, &[VIP, VIP_GRE, VIP_GUE]).expect("lab");
    lab.enable_tunnel_decap().expect("decap");
    let profile = lab
        .profile(&LabProfile {
            services: vec![
                (VIP, "rr", vec![1, 1]),
                (VIP_GRE, "rr", vec![1, 1]),
                (VIP_GUE, "rr", vec![1, 1]),
            ],
            workers: vec![1],
            forward: "tun",
        })
        .replacen(
            "  - vip: 10.200.0.101\n    port: 80\n    protocol: tcp\n",
            "  - vip: 10.200.0.101\n    port: 80\n    protocol: tcp\n    tunnel: { type: gre }\n",
            1,
        )
        .replacen(
            "  - vip: 10.200.0.102\n    port: 80\n    protocol: tcp\n",
            "  - vip: 10.200.0.102\n    port: 80\n    protocol: tcp\n    tunnel: { type: gue, port: 6080 }\n",
            1,
        );
    assert!(
        profile.contains("type: gre") && profile.contains("type: gue"),
        "{profile}"
    );
    let path = lab.write_file("tun.yaml", &profile).expect("profile");
    let log = lab.start_dataplane("dp", bin, &path).expect("spawn");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    lab.lab
        .wait_dataplane(&log, "ping to the DIP", || lab.ping(lab.dip))
        .unwrap_or_else(|e| panic!("{e}"));

    let got: Vec<String> = (0..4).map(|_| lab.get(VIP).expect("GET")).collect();
    assert_eq!(
        got,
        ["rs1", "rs2", "rs1", "rs2"],
        "rr through the tunnel\n{}",
        read_log()
    );
    let big = lab.download_big(VIP).expect("download");
    assert_eq!(big.len(), BIG_LEN);
    // 200 kB up in full-size segments: 1500 + 20 > 1500, so the first ones are refused with
    // "fragmentation needed" (MTU 1480) and the client's TCP shrinks its segments.
    let answer = lab.post(VIP, 200_000).expect("upload");
    assert_eq!(
        answer, "rs2 10.200.0.2 200000",
        "server sees the client, whole body"
    );
    // GRE and GUE: the same through their own services.
    for vip in [VIP_GRE, VIP_GUE] {
        let got: Vec<String> = (0..2).map(|_| lab.get(vip).expect("GET")).collect();
        assert_eq!(got, ["rs1", "rs2"], "rr through {vip}\n{}", read_log());
        assert_eq!(lab.download_big(vip).expect("download").len(), BIG_LEN);
        let answer = lab.post(vip, 100_000).expect("upload");
        assert_eq!(
            answer, "rs2 10.200.0.2 100000",
            "{vip}: rr order, whole body"
        );
    }

    let (code, summary) = lab
        .lab
        .interrupt("dp", Duration::from_secs(20))
        .expect("stop");
    eprintln!("{summary}");
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(
        summary_counter(&summary, "connections"),
        6 + 2 * 4,
        "{summary}"
    );
    assert!(
        summary_counter(&summary, "icmp frag needed") >= 1,
        "{summary}"
    );
}
