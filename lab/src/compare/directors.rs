//! The three directors, each set up on the same director namespace and taken down again:
//! `rvs-dataplane` (NAT over the real servers, DPDK ports on the director's two interfaces),
//! the kernel (nftables DNAT with `numgen`), and HAProxy in TCP mode.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Bench, RS_PORT, VIP};
use crate::netns::LabError;

/// The DPDK driver of RVS's ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PortDriver {
    /// `net_af_xdp` first, `net_af_packet` if af_xdp cannot bind.
    Auto,
    /// `net_af_xdp` only.
    AfXdp,
    /// `net_af_packet` only.
    AfPacket,
}

/// The name of the rvs-dataplane process in the lab.
const DP: &str = "rvs-dataplane";
/// The name of the HAProxy process in the lab.
const HAPROXY: &str = "haproxy";
/// The nftables table of the kernel run.
const NFT_TABLE: &str = "rvscmp";

/// What a running director reports about itself (set-up line, counters at the end).
#[derive(Debug, Clone, Default)]
pub struct Running {
    /// How it was set up, one line.
    pub setup: String,
    /// The DPDK driver RVS ended up on (`af_xdp` / `af_packet`).
    pub port: Option<String>,
    /// Why RVS is not on af_xdp, when it fell back.
    pub fallback: Option<String>,
}

fn rvs_profile(b: &Bench, driver: &str, extra: &str) -> String {
    // AF_XDP rings of 4096 instead of the default 1024: the bulk load's TCP bursts overflowed
    // an rx ring of 1024 while the worker was busy (~102,000 frames of a 1 MiB-transfer load
    // dropped by the kernel as `rx_ring_full`, which DPDK 22.11 counts nowhere; the exit
    // summary now shows it as `xdp_rx_ring_full`). DPDK 22.11's af_xdp PMD keeps 2048 buffers
    // on the fill ring, so an rx ring of 4096 cannot fill up: a queue that deep runs out of
    // buffers instead, which `imissed` (and `xdp_fill_empty`) do count. The PMD sizes the tx
    // ring like the rx ring; `tx_descriptors` only sizes the mempool here. The mempool for
    // these rings (32767 mbufs, about 80 MB) is why the EAL gets 192 MB. Measured with
    // `--quick` (debug build): 1024 → 13,520 ring-full drops in the bulk load, none counted by
    // DPDK; 4096 → no ring-full drop, 2,163 fill-ring-empty drops, all in `imissed`.
    let rings = if driver == "net_af_xdp" {
        ", rx_descriptors: 4096, tx_descriptors: 4096"
    } else {
        ""
    };
    let mut y = format!(
        "dataplane:\n  eal: [\"-m\", \"192\", \"--log-level=*:warning\"]\n  main_lcore: {main}\n  workers: [{worker}]\n\
         ports:\n  - {{ name: ext, device: \"{driver}0,iface=d0{extra}\", addresses: [\"{ext}/24\"]{rings} }}\n\
         \x20 - {{ name: int, device: \"{driver}1,iface=d1{extra}\", addresses: [\"{int}/24\"]{rings} }}\n\
         {control}services:\n  - vip: {VIP}\n    port: 80\n    protocol: tcp\n    scheduler: rr\n    servers:\n",
        main = b.client_cpu,
        worker = b.director_cpu,
        ext = b.nat.dip_ext,
        int = b.nat.dip_int,
        control = b.nat.lab.control_section("127.0.0.1:9181"),
    );
    for (_, _, addr) in &b.nat.servers {
        y.push_str(&format!(
            "      - {{ address: {addr}, port: {RS_PORT}, weight: 1, forward: nat }}\n"
        ));
    }
    y
}

/// Starts rvs-dataplane on `driver` ports; waits until it runs and answers ping on the
/// external DIP. On failure the process is gone and the error carries its log.
fn start_rvs(b: &mut Bench, dataplane: &Path, driver: &str, extra: &str) -> Result<(), String> {
    let profile = rvs_profile(b, driver, extra);
    let path = b
        .nat
        .write_file(&format!("rvs-{driver}.yaml"), &profile)
        .map_err(|e| e.to_string())?;
    let log = b
        .nat
        .start_dataplane(DP, dataplane, &path)
        .map_err(|e| e.to_string())?;
    let read = || fs::read_to_string(&log).unwrap_or_default();
    let start = Instant::now();
    let fail = |b: &mut Bench, why: String| {
        let _ = b.nat.lab.interrupt(DP, Duration::from_secs(15));
        let log = read();
        // The dataplane's own error line (`rvs-dataplane: …`) says why, on the first line.
        let cause = log
            .lines()
            .rev()
            .find(|l| l.starts_with("rvs-dataplane:") || l.contains(" ERROR "))
            .map(|l| format!(" ({})", l.trim()))
            .unwrap_or_default();
        Err(format!("{why}{cause}\n--- rvs-dataplane log ---\n{log}"))
    };
    loop {
        if read().contains("dataplane running") {
            break;
        }
        if !b.nat.lab.is_running(DP) {
            return fail(b, "rvs-dataplane exited during boot".into());
        }
        if start.elapsed() > Duration::from_secs(30) {
            return fail(b, "rvs-dataplane did not report running within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dip = b.nat.dip_ext;
    let ok = b
        .nat
        .lab
        .wait_for("ping to the DIP", Duration::from_secs(10), || {
            b.nat.ping(dip)
        });
    if let Err(e) = ok {
        return fail(b, format!("rvs-dataplane runs but does not answer: {e}"));
    }
    for line in read().lines().filter(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("busy poll") || l.contains("zero copy") || l.contains(" warn ")
    }) {
        println!("   | {}", line.trim());
    }
    Ok(())
}

/// Sets up RVS: af_xdp (or af_packet, per `want`) ports, NAT, rr over every real server.
pub fn rvs_up(
    b: &mut Bench,
    dataplane: &Path,
    want: PortDriver,
    extra: &str,
) -> Result<Running, String> {
    if !dataplane.is_file() {
        return Err(format!(
            "rvs-dataplane not found at {} (cargo build --release -p rvs-dataplane, or --dataplane)",
            dataplane.display()
        ));
    }
    let cpu = b.director_cpu;
    let setup = |port: &str, extra: &str| {
        format!(
            "rvs-dataplane, net_{port}{extra} ports on d0/d1, NAT, rr, 1 worker (busy-polling) on CPU {cpu}"
        )
    };
    if want != PortDriver::AfPacket {
        match start_rvs(b, dataplane, "net_af_xdp", extra) {
            Ok(()) => {
                return Ok(Running {
                    setup: setup("af_xdp", extra),
                    port: Some("af_xdp".into()),
                    fallback: None,
                });
            }
            Err(e) if want == PortDriver::Auto => {
                let first = e.lines().next().unwrap_or_default().to_owned();
                println!("   af_xdp did not come up ({first}); falling back to af_packet");
                detach_xdp(b);
                start_rvs(b, dataplane, "net_af_packet", "")?;
                return Ok(Running {
                    setup: format!("{} (af_xdp failed: {first})", setup("af_packet", "")),
                    port: Some("af_packet".into()),
                    fallback: Some(e),
                });
            }
            Err(e) => return Err(e),
        }
    }
    start_rvs(b, dataplane, "net_af_packet", "")?;
    Ok(Running {
        setup: setup("af_packet", ""),
        port: Some("af_packet".into()),
        fallback: None,
    })
}

/// Stops RVS; returns its exit summary (worker and port counter lines).
pub fn rvs_down(b: &mut Bench) -> Result<Vec<String>, String> {
    let r = b.nat.lab.interrupt(DP, Duration::from_secs(20));
    detach_xdp(b);
    let (code, log) = r.map_err(|e| e.to_string())?;
    let lines = exit_summary(&log);
    if code != Some(0) {
        return Err(format!(
            "rvs-dataplane exited with {code:?}\n--- log ---\n{log}"
        ));
    }
    Ok(lines)
}

/// The exit summary's lines in rvs-dataplane's output: one per worker, one per port (with the
/// AF_XDP socket counters on af_xdp ports).
fn exit_summary(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.starts_with("worker lcore") || l.starts_with("port "))
        .map(str::to_owned)
        .collect()
}

/// Removes an XDP program left on the director's interfaces (the af_xdp driver removes its
/// own at close; this is the safety net before the kernel directors use them).
fn detach_xdp(b: &Bench) {
    for iface in ["d0", "d1"] {
        let attached = b
            .nat
            .lab
            .ip(&b.nat.director, &["-o", "link", "show", "dev", iface])
            .is_ok_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .any(|w| w.starts_with("xdp"))
            });
        if attached {
            let _ = b.nat.lab.ip(
                &b.nat.director,
                &["link", "set", "dev", iface, "xdp", "off"],
            );
        }
    }
}

/// Gives the director's kernel its addresses (DIPs and the VIP on d0) for the kernel directors,
/// or takes them away again.
fn kernel_addresses(b: &Bench, add: bool) -> Result<(), LabError> {
    let verb = if add { "add" } else { "del" };
    let ns = &b.nat.director;
    let lab = &b.nat.lab;
    lab.ip(
        ns,
        &["addr", verb, &format!("{}/24", b.nat.dip_ext), "dev", "d0"],
    )?;
    lab.ip(ns, &["addr", verb, &format!("{VIP}/32"), "dev", "d0"])?;
    lab.ip(
        ns,
        &["addr", verb, &format!("{}/24", b.nat.dip_int), "dev", "d1"],
    )?;
    Ok(())
}

/// The nftables ruleset of the kernel director: DNAT of VIP:80 to the real servers in turn.
pub fn nft_ruleset(servers: &[std::net::Ipv4Addr]) -> String {
    let map = servers
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{i} : {a} . {RS_PORT}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "table ip {NFT_TABLE} {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
         ip daddr {VIP} tcp dport 80 counter dnat ip to numgen inc mod {n} map {{ {map} }}\n  }}\n}}\n",
        n = servers.len()
    )
}

/// Sets up the kernel director: addresses, forwarding, the DNAT rule.
pub fn nftables_up(b: &Bench) -> Result<Running, String> {
    let e = |e: LabError| e.to_string();
    kernel_addresses(b, true).map_err(e)?;
    b.nat
        .lab
        .sysctl(&b.nat.director, "net.ipv4.ip_forward", "1")
        .map_err(e)?;
    let addrs: Vec<_> = b.nat.servers.iter().map(|s| s.2).collect();
    let rules = nft_ruleset(&addrs);
    let path = b.nat.write_file("nft.rules", &rules).map_err(e)?;
    b.nat
        .lab
        .exec(&b.nat.director, "nft", &["-f", &path.to_string_lossy()])
        .map_err(e)?;
    Ok(Running {
        setup: format!(
            "nftables: ip_forward=1, nat prerouting `dnat ip to numgen inc mod {} map {{…}}`, conntrack{}",
            addrs.len(),
            if b.pin {
                format!(", forwarding on CPU {} (RPS)", b.director_cpu)
            } else {
                String::new()
            }
        ),
        ..Running::default()
    })
}

/// Takes the kernel director down; returns the DNAT rule's counter (new connections seen).
pub fn nftables_down(b: &Bench) -> Result<Vec<String>, String> {
    let lab = &b.nat.lab;
    let ns = &b.nat.director;
    let listing = lab
        .exec(ns, "nft", &["list", "table", "ip", NFT_TABLE])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let counter = listing
        .lines()
        .find(|l| l.contains("counter packets"))
        .and_then(|l| l.split("counter ").nth(1))
        .and_then(|l| l.split(" dnat").next())
        .map(|c| format!("dnat rule counter: {c} (first packets = new connections)"));
    let r1 = lab.exec(ns, "nft", &["delete", "table", "ip", NFT_TABLE]);
    let r2 = lab.sysctl(ns, "net.ipv4.ip_forward", "0");
    let r3 = kernel_addresses(b, false);
    r1.and(r2).and(r3).map_err(|e| e.to_string())?;
    Ok(counter.into_iter().collect())
}

/// HAProxy's configuration: TCP mode, roundrobin, one thread.
pub fn haproxy_config(servers: &[(String, std::net::Ipv4Addr)]) -> String {
    let mut c = format!(
        "global\n    nbthread 1\n    maxconn 8000\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\n\
         frontend vip\n    bind {VIP}:80\n    default_backend realservers\n\n\
         backend realservers\n    balance roundrobin\n"
    );
    for (name, addr) in servers {
        c.push_str(&format!("    server {name} {addr}:{RS_PORT}\n"));
    }
    c
}

/// Sets up HAProxy on the VIP (one thread, pinned to the director CPU when pinning).
pub fn haproxy_up(b: &mut Bench, stop: &AtomicBool) -> Result<Running, String> {
    let e = |e: LabError| e.to_string();
    kernel_addresses(b, true).map_err(e)?;
    let servers: Vec<_> = b
        .nat
        .servers
        .iter()
        .map(|(n, _, a)| (n.clone(), *a))
        .collect();
    let path = b
        .nat
        .write_file("haproxy.cfg", &haproxy_config(&servers))
        .map_err(e)?;
    let cmd = b.pinned_command(&b.nat.director.clone(), b.director_cpu, "haproxy", |c| {
        c.arg("-db").arg("-f").arg(&path);
    });
    let log = b.nat.lab.spawn(HAPROXY, cmd).map_err(e)?;
    let start = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        if !b.nat.lab.is_running(HAPROXY) {
            return Err(format!(
                "haproxy exited at start\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        let listening = b
            .nat
            .lab
            .exec(&b.nat.director, "ss", &["-Hltn", &format!("src {VIP}:80")])
            .is_ok_and(|o| !o.stdout.is_empty());
        if listening {
            break;
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err("haproxy does not listen on the VIP after 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let version = b
        .nat
        .lab
        .exec(&b.nat.director, "haproxy", &["-v"])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(2)
                .unwrap_or("?")
                .to_owned()
        })
        .unwrap_or_else(|_| "?".into());
    Ok(Running {
        setup: format!(
            "haproxy {version}, mode tcp, balance roundrobin, nbthread 1 on CPU {}",
            b.director_cpu
        ),
        ..Running::default()
    })
}

/// Stops HAProxy and removes the addresses.
pub fn haproxy_down(b: &mut Bench) -> Result<Vec<String>, String> {
    let r = b.nat.lab.interrupt(HAPROXY, Duration::from_secs(10));
    let a = kernel_addresses(b, false);
    r.map_err(|e| e.to_string())?;
    a.map_err(|e| e.to_string())?;
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn nft_rule_maps_every_server() {
        let r = nft_ruleset(&[Ipv4Addr::new(10, 202, 0, 11), Ipv4Addr::new(10, 202, 0, 12)]);
        assert!(
            r.contains(
                "dnat ip to numgen inc mod 2 map { 0 : 10.202.0.11 . 8080, 1 : 10.202.0.12 . 8080 }"
            ),
            "{r}"
        );
        assert!(
            r.contains(&format!("ip daddr {VIP} tcp dport 80 counter")),
            "{r}"
        );
    }

    /// The port lines reach `director_counters` whole, AF_XDP counters included.
    #[test]
    fn exit_summary_keeps_port_lines_with_xdp_counters() {
        let log = "2024-01-01T00:00:00Z  INFO port counters port=\"net_af_xdp0\" ipackets=5\n\
                   worker lcore 1: rx 5 pkts 300 bytes, tx 5 pkts, drops 0 []\n\
                   port ext: ipackets 5 opackets 5 imissed 0 ierrors 0 oerrors 0 xdp_rx_ring_full 102000 xdp_fill_empty 3\n\
                   port int: ipackets 5 opackets 5 imissed 0 ierrors 0 oerrors 0 xdp_rx_ring_full 0 xdp_fill_empty 0\n";
        let lines = exit_summary(log);
        assert_eq!(lines.len(), 3, "{lines:?}");
        let joined = lines.join("\n");
        assert_eq!(
            crate::port_counter(&joined, "ext", "xdp_rx_ring_full"),
            Some(102_000)
        );
        assert_eq!(
            crate::port_counter(&joined, "ext", "xdp_fill_empty"),
            Some(3)
        );
        assert_eq!(crate::port_counter(&joined, "int", "imissed"), Some(0));
        assert_eq!(crate::port_counter(&joined, "lo", "imissed"), None);
        assert_eq!(
            crate::port_counter(
                "port dp0: ipackets 1 opackets 0 imissed 0 ierrors 0 oerrors 0",
                "dp0",
                "xdp_rx_ring_full"
            ),
            None
        );
    }
}
