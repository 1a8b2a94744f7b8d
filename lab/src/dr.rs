//! The LVS-DR lab topology.
//!
//! ```text
//!   client (c0 10.200.0.2) ─┐
//!   director (d0, DPDK af_packet; DIP 10.200.0.10, VIPs) ─┤ bridge br0 in {prefix}-sw
//!   rsN (eth0 10.200.0.1N, VIPs on lo, arp_ignore/announce) ─┘
//! ```
//! Kernel senders whose packets cross the DPDK port have TX checksum offload turned off (veth
//! hands partial checksums to af_packet otherwise, see NOTES-dpdk.md).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::netns::{Lab, LabError, require_tools};

/// Size of `/big.bin` on every real server.
pub const BIG_LEN: usize = 1 << 20;

/// One real server of the lab.
#[derive(Debug, Clone)]
pub struct RealServer {
    /// Its name (what its HTTP server answers), `rs1`, `rs2` …
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its address.
    pub addr: Ipv4Addr,
}

/// A built DR lab.
#[derive(Debug)]
pub struct DrLab {
    /// The lab (owns everything; dropping it tears down).
    pub lab: Lab,
    /// Client namespace.
    pub client: String,
    /// Client address.
    pub client_addr: Ipv4Addr,
    /// Director namespace (the dataplane runs here).
    pub director: String,
    /// Director interface the dataplane's af_packet port binds to.
    pub director_iface: String,
    /// Director address (DIP).
    pub dip: Ipv4Addr,
    /// VIPs configured on the real servers.
    pub vips: Vec<Ipv4Addr>,
    /// Real servers.
    pub servers: Vec<RealServer>,
}

/// Services of a lab profile: (VIP, scheduler, weights of rs1.. in order).
#[derive(Debug, Clone)]
pub struct LabProfile {
    /// Services.
    pub services: Vec<(Ipv4Addr, &'static str, Vec<u32>)>,
    /// Worker lcores.
    pub workers: Vec<u32>,
    /// Forwarding mode of every server (`dr` or `tun` in this single-segment lab).
    pub forward: &'static str,
}

impl DrLab {
    /// Builds the topology with `servers` real servers holding every VIP in `vips`.
    pub fn up(prefix: &str, servers: usize, vips: &[Ipv4Addr]) -> Result<DrLab, LabError> {
        require_tools(&["python3", "curl", "sysctl"])?;
        let mut lab = Lab::new(prefix)?;
        let sw = lab.add_ns("sw")?;
        lab.ip(&sw, &["link", "add", "br0", "type", "bridge"])?;
        lab.ip(&sw, &["link", "set", "br0", "up"])?;

        let attach = |lab: &Lab, ns: &str, port: &str, iface: &str| -> Result<(), LabError> {
            lab.ip(
                &sw,
                &[
                    "link", "add", port, "type", "veth", "peer", "name", iface, "netns", ns,
                ],
            )?;
            lab.ip(&sw, &["link", "set", port, "master", "br0", "up"])?;
            lab.ip(ns, &["link", "set", iface, "up"])?;
            Ok(())
        };

        let client = lab.add_ns("cl")?;
        attach(&lab, &client, "p-cl", "c0")?;
        let client_addr = Ipv4Addr::new(10, 200, 0, 2);
        lab.ip(&client, &["addr", "add", "10.200.0.2/24", "dev", "c0"])?;
        lab.exec(&client, "ethtool", &["-K", "c0", "tx", "off"])?;

        let director = lab.add_ns("dir")?;
        attach(&lab, &director, "p-dir", "d0")?;
        // The kernel of the director namespace must stay out of the way: no address on d0, no
        // IPv6 chatter; DPDK's af_packet socket sees every frame.
        lab.sysctl(&director, "net.ipv6.conf.d0.disable_ipv6", "1")?;
        lab.exec(&director, "ethtool", &["-K", "d0", "tx", "off"])?;

        let script = lab.dir().join("web.py");
        std::fs::write(&script, include_str!("web.py"))
            .map_err(|e| LabError::Host(format!("{}: {e}", script.display())))?;
        let mut rs = Vec::new();
        for i in 1..=servers {
            let name = format!("rs{i}");
            let ns = lab.add_ns(&name)?;
            attach(&lab, &ns, &format!("p-{name}"), "eth0")?;
            let addr = Ipv4Addr::new(10, 200, 0, 10 + i as u8);
            lab.ip(&ns, &["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            for key in ["all", "eth0"] {
                lab.sysctl(&ns, &format!("net.ipv4.conf.{key}.arp_ignore"), "1")?;
                lab.sysctl(&ns, &format!("net.ipv4.conf.{key}.arp_announce"), "2")?;
            }
            for vip in vips {
                lab.ip(&ns, &["addr", "add", &format!("{vip}/32"), "dev", "lo"])?;
            }
            let mut cmd = lab.command(&ns, "python3");
            cmd.arg(&script).arg(&name).arg("80");
            lab.spawn(&format!("http-{name}"), cmd)?;
            rs.push(RealServer { name, ns, addr });
        }
        let dl = DrLab {
            lab,
            client,
            client_addr,
            director,
            director_iface: "d0".into(),
            dip: Ipv4Addr::new(10, 200, 0, 10),
            vips: vips.to_vec(),
            servers: rs,
        };
        for s in &dl.servers {
            let ns = s.ns.clone();
            let lab = &dl.lab;
            lab.wait_for(
                &format!("HTTP server of {}", s.name),
                Duration::from_secs(10),
                || {
                    lab.exec(
                        &ns,
                        "curl",
                        &[
                            "-s",
                            "-o",
                            "/dev/null",
                            "--max-time",
                            "1",
                            "http://127.0.0.1/",
                        ],
                    )
                    .is_ok()
                },
            )?;
        }
        Ok(dl)
    }

    /// Gives the director namespace's kernel its own leg on the segment, `m0` with
    /// `10.200.0.9/24`: the management interface the control process's health checks use to
    /// reach the real servers (the DPDK port `d0` carries no kernel address).
    pub fn add_management(&self) -> Result<Ipv4Addr, LabError> {
        let sw = self.lab.ns("sw");
        let ns = &self.director;
        self.lab.ip(
            &sw,
            &[
                "link", "add", "p-mgmt", "type", "veth", "peer", "name", "m0", "netns", ns,
            ],
        )?;
        self.lab
            .ip(&sw, &["link", "set", "p-mgmt", "master", "br0", "up"])?;
        self.lab
            .ip(ns, &["addr", "add", "10.200.0.9/24", "dev", "m0"])?;
        self.lab.ip(ns, &["link", "set", "m0", "up"])?;
        self.lab.ip(ns, &["link", "set", "lo", "up"])?;
        Ok(Ipv4Addr::new(10, 200, 0, 9))
    }

    /// A dataplane profile for this lab: one af_packet port on the director's interface,
    /// DR services over all real servers.
    pub fn profile(&self, p: &LabProfile) -> String {
        let workers = p
            .workers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let mut y = format!(
            "# RVS demo lab profile (generated by rvs-lab)\n\
             dataplane:\n  eal: [\"-m\", \"128\", \"--log-level=*:warning\"]\n  main_lcore: 0\n  workers: [{workers}]\n  flows_per_worker: 65536\n\
             ports:\n  - name: dp0\n    device: \"net_af_packet0,iface={iface}\"\n    addresses: [\"{dip}/24\"]\n\
             {control}services:\n",
            iface = self.director_iface,
            dip = self.dip,
            control = self.lab.control_section("127.0.0.1:9180"),
        );
        for (vip, sched, weights) in &p.services {
            let _ = write!(
                y,
                "  - vip: {vip}\n    port: 80\n    protocol: tcp\n    scheduler: {sched}\n    servers:\n"
            );
            for (s, w) in self.servers.iter().zip(weights) {
                let _ = writeln!(
                    y,
                    "      - {{ address: {}, port: 80, weight: {w}, forward: {} }}",
                    s.addr, p.forward
                );
            }
        }
        y
    }

    /// Writes `text` into the lab directory.
    pub fn write_file(&self, name: &str, text: &str) -> Result<PathBuf, LabError> {
        self.lab.write_file(name, text)
    }

    /// Starts `rvs-dataplane --profile PROFILE` in the director namespace as process `name`.
    pub fn start_dataplane(
        &mut self,
        name: &str,
        binary: &std::path::Path,
        profile: &std::path::Path,
    ) -> Result<PathBuf, LabError> {
        let ns = self.director.clone();
        self.lab.start_dataplane(&ns, name, binary, profile)
    }

    /// One HTTP GET from the client to `vip`; returns the name of the real server that
    /// answered (the first word of its body).
    pub fn get(&self, vip: Ipv4Addr) -> Result<String, LabError> {
        let out = self.lab.exec(
            &self.client,
            "curl",
            &["-s", "--max-time", "5", &format!("http://{vip}/")],
        )?;
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        Ok(body.split_whitespace().next().unwrap_or("").to_owned())
    }

    /// POSTs `bytes` zero bytes to `vip` from the client; returns the answer
    /// (`NAME CLIENT_IP BYTES_RECEIVED`).
    pub fn post(&self, vip: Ipv4Addr, bytes: usize) -> Result<String, LabError> {
        let file = self.lab.dir().join(format!("upload-{bytes}"));
        std::fs::write(&file, vec![0u8; bytes])
            .map_err(|e| LabError::Host(format!("{}: {e}", file.display())))?;
        let out = self.lab.exec(
            &self.client,
            "curl",
            &[
                "-s",
                "--max-time",
                "20",
                "--data-binary",
                &format!("@{}", file.display()),
                &format!("http://{vip}/"),
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Makes every real server accept IP-in-IP: a tc BPF program on `eth0` ingress strips the
    /// outer header (the kernel here has no ipip module), and reverse-path filtering is off.
    pub fn enable_tunnel_decap(&self) -> Result<(), LabError> {
        require_tools(&["clang", "tc"])?;
        let src = self.lab.dir().join("decap.c");
        let obj = self.lab.dir().join("decap.o");
        std::fs::write(&src, include_str!("decap.c"))
            .map_err(|e| LabError::Host(format!("{}: {e}", src.display())))?;
        crate::netns::run(
            Command::new("clang")
                .args([
                    "-O2",
                    "-target",
                    "bpf",
                    "-I/usr/include/x86_64-linux-gnu",
                    "-c",
                ])
                .arg(&src)
                .arg("-o")
                .arg(&obj),
        )?;
        for s in &self.servers {
            for key in ["all", "eth0", "default"] {
                self.lab
                    .sysctl(&s.ns, &format!("net.ipv4.conf.{key}.rp_filter"), "0")?;
            }
            self.lab
                .exec(&s.ns, "tc", &["qdisc", "add", "dev", "eth0", "clsact"])?;
            let o = obj.to_string_lossy().into_owned();
            self.lab.exec(
                &s.ns,
                "tc",
                &[
                    "filter", "add", "dev", "eth0", "ingress", "bpf", "da", "obj", &o, "sec", "tc",
                ],
            )?;
        }
        Ok(())
    }

    /// Downloads `/big.bin` through `vip`; returns the body.
    pub fn download_big(&self, vip: Ipv4Addr) -> Result<Vec<u8>, LabError> {
        let out = self.lab.exec(
            &self.client,
            "curl",
            &["-s", "--max-time", "20", &format!("http://{vip}/big.bin")],
        )?;
        Ok(out.stdout)
    }

    /// Pings `addr` from the client once; true when answered.
    pub fn ping(&self, addr: Ipv4Addr) -> bool {
        self.lab
            .exec(
                &self.client,
                "ping",
                &["-c", "1", "-W", "1", &addr.to_string()],
            )
            .is_ok()
    }

    /// A command in the client namespace.
    pub fn client_command(&self, program: &str) -> Command {
        self.lab.command(&self.client, program)
    }

    /// Stops real server `name`'s HTTP server (SIGINT, then waits up to 5 s for it to exit):
    /// its port then refuses connections. Start it again with [`DrLab::start_http`].
    pub fn stop_http(&mut self, name: &str) -> Result<(), LabError> {
        self.lab
            .interrupt(&format!("http-{name}"), Duration::from_secs(5))
            .map(drop)
    }

    /// Starts real server `name`'s HTTP server again (after [`DrLab::stop_http`]) and waits
    /// until it answers on its own loopback.
    pub fn start_http(&mut self, name: &str) -> Result<(), LabError> {
        let Some(ns) = self
            .servers
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.ns.clone())
        else {
            return Err(LabError::Host(format!("no real server named {name}")));
        };
        let mut cmd = self.lab.command(&ns, "python3");
        cmd.arg(self.lab.dir().join("web.py")).arg(name).arg("80");
        self.lab.spawn(&format!("http-{name}"), cmd)?;
        let lab = &self.lab;
        lab.wait_for(
            &format!("HTTP server of {name}"),
            Duration::from_secs(10),
            || {
                lab.exec(
                    &ns,
                    "curl",
                    &[
                        "-s",
                        "-o",
                        "/dev/null",
                        "--max-time",
                        "1",
                        "http://127.0.0.1/",
                    ],
                )
                .is_ok()
            },
        )
    }

    /// A client command (not started) that POSTs `bytes` zero bytes to `vip` at no more than
    /// `rate` (curl's `--limit-rate` syntax: `200k`), to run in the background with
    /// [`Lab::spawn`]; it prints the server's answer (`NAME CLIENT_IP BYTES_RECEIVED`), or
    /// curl's error, and exits non-zero on failure.
    pub fn upload_command(
        &self,
        vip: Ipv4Addr,
        bytes: usize,
        rate: &str,
    ) -> Result<Command, LabError> {
        let file = self.lab.dir().join(format!("upload-{bytes}"));
        std::fs::write(&file, vec![0u8; bytes])
            .map_err(|e| LabError::Host(format!("{}: {e}", file.display())))?;
        let mut cmd = self.client_command("curl");
        cmd.args(["-sS", "--fail", "--max-time", "120", "--limit-rate", rate])
            .args(["-H", "Expect:", "--data-binary"])
            .arg(format!("@{}", file.display()))
            .arg(format!("http://{vip}/"));
        Ok(cmd)
    }

    /// Keeps the client's flows in order on their way to the director: receive packet steering
    /// on the client's bridge port queues every frame of a flow on one CPU's backlog. Without
    /// it veth queues a frame on the backlog of the CPU that sends it, and the client's TCP
    /// sends both from its process and from ACK processing, on any CPU: under load its
    /// segments can overtake each other, which the receiver answers with duplicate ACKs and
    /// the client with (spurious) fast retransmissions. For tests that count retransmissions.
    pub fn keep_client_order(&self) -> Result<(), LabError> {
        let cpus = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(32);
        let mask = format!("{:x}", (1u64 << cpus) - 1);
        self.lab.exec(
            &self.lab.ns("sw"),
            "sh",
            &[
                "-c",
                &format!("echo {mask} > /sys/class/net/p-cl/queues/rx-0/rps_cpus"),
            ],
        )?;
        Ok(())
    }

    /// The absolute value of kernel counter `counter` (an `nstat` name such as
    /// `TcpRetransSegs`) in namespace `ns`.
    pub fn nstat(&self, ns: &str, counter: &str) -> Result<u64, LabError> {
        require_tools(&["nstat"])?;
        let out = self.lab.exec(ns, "nstat", &["-asz", counter])?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next() == Some(counter))
                    .then(|| f.next().and_then(|v| v.parse().ok()))
                    .flatten()
            })
            .ok_or_else(|| LabError::Host(format!("nstat in {ns}: no {counter} in:\n{text}")))
    }
}
