//! End to end in network namespaces: NAT and FullNAT with real kernel TCP. Clients on an
//! external segment, real servers on an internal one behind the director's second port; NAT
//! real servers route back through the director and see the client's address, FullNAT real
//! servers see the director's local address. Needs root and hugepages (`scripts/setup.sh`).

use std::net::Ipv4Addr;
use std::time::Duration;

use rvs_lab::{NatLab, summary_counter};

const VIP_NAT: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 100);
const VIP_FNAT: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 101);
const LIP: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 5);

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).trim().to_owned()
}

#[test]
fn nat_and_fullnat_carry_real_tcp_both_ways() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_rvs-dataplane"));
    let prefix = format!("rvsn{}", std::process::id() % 100_000);
    let mut lab = NatLab::up(&prefix, 2).expect("lab");
    let profile = lab.profile(
        &[
            (VIP_NAT, "rr", "nat", &[]),
            (VIP_FNAT, "rr", "fnat", &[LIP]),
        ],
        &[1],
    );
    let path = lab.write_file("nat.yaml", &profile).expect("profile");
    let log = lab.start_dataplane("dp", bin, &path).expect("spawn");
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    lab.lab
        .wait_dataplane(&log, "ping to the external DIP", || lab.ping(lab.dip_ext))
        .unwrap_or_else(|e| panic!("{e}"));

    // NAT: port 80 → 8080, the real server sees the client; rr order.
    let nat: Vec<String> = (0..4)
        .map(|_| text(lab.get(VIP_NAT, "/").expect("GET nat")))
        .collect();
    assert_eq!(
        nat,
        [
            "rs1 10.201.0.2",
            "rs2 10.201.0.2",
            "rs1 10.201.0.2",
            "rs2 10.201.0.2"
        ],
        "NAT: rr order, server sees the client\n{}",
        read_log()
    );
    // FullNAT: the real server sees the local address.
    let fnat: Vec<String> = (0..4)
        .map(|_| text(lab.get(VIP_FNAT, "/").expect("GET fnat")))
        .collect();
    assert_eq!(
        fnat,
        [
            "rs1 10.202.0.5",
            "rs2 10.202.0.5",
            "rs1 10.202.0.5",
            "rs2 10.202.0.5"
        ],
        "FullNAT: rr order, server sees the local address"
    );

    // Long connections both ways: 1 MiB down, 300 kB up, byte-exact.
    for vip in [VIP_NAT, VIP_FNAT] {
        let big = lab.get(vip, "/big.bin").expect("download");
        assert_eq!(big.len(), 1 << 20, "download through {vip}");
        assert!(
            big.starts_with(b"rs1\n") && big.ends_with(b"rs1\n"),
            "from rs1 via {vip}"
        );
    }
    let up = lab
        .lab
        .exec(
            &lab.client,
            "sh",
            &["-c", &format!("head -c 307200 /dev/zero | curl -s --max-time 20 --data-binary @- http://{VIP_NAT}/")],
        )
        .expect("upload");
    assert_eq!(
        text(up.stdout),
        "rs2 10.201.0.2 307200",
        "upload through NAT"
    );
    let up = lab
        .lab
        .exec(
            &lab.client,
            "sh",
            &["-c", &format!("head -c 307200 /dev/zero | curl -s --max-time 20 --data-binary @- http://{VIP_FNAT}/")],
        )
        .expect("upload");
    assert_eq!(
        text(up.stdout),
        "rs2 10.202.0.5 307200",
        "upload through FullNAT"
    );

    let (code, summary) = lab
        .lab
        .interrupt("dp", Duration::from_secs(20))
        .expect("stop");
    eprintln!("{summary}");
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(summary_counter(&summary, "connections"), 12, "{summary}");
    assert!(
        summary_counter(&summary, "nat replies") > 700,
        "1 MiB back twice: {summary}"
    );
    assert!(summary_counter(&summary, "forwarded") > 400, "{summary}");
}
