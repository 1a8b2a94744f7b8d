//! The two-armed lab for NAT and FullNAT: clients on an external segment, real servers on an
//! internal one, the director's DPDK ports on both.
//!
//! ```text
//!   client c0 10.201.0.2 ── br-ext ── d0 10.201.0.10 [director] d1 10.202.0.1 ── br-int ── rsN eth0 10.202.0.1N
//!                                                                                  (default via 10.202.0.1)
//! ```
//! NAT real servers route back through the director (their default gateway); FullNAT real
//! servers see the director's local address as the client. Every kernel sender whose packets
//! cross a DPDK port has TX checksum offload turned off.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::netns::{Lab, LabError, require_tools};

/// Real-server HTTP port (services map VIP:80 to it).
pub const RS_PORT: u16 = 8080;

/// A built NAT lab.
#[derive(Debug)]
pub struct NatLab {
    /// The lab (owns everything).
    pub lab: Lab,
    /// Client namespace.
    pub client: String,
    /// Client address.
    pub client_addr: Ipv4Addr,
    /// Director namespace.
    pub director: String,
    /// Director external address.
    pub dip_ext: Ipv4Addr,
    /// Director internal address.
    pub dip_int: Ipv4Addr,
    /// Real servers: (name, namespace, address).
    pub servers: Vec<(String, String, Ipv4Addr)>,
}

impl NatLab {
    /// Builds the two segments, the client, the director's two interfaces and `servers` real
    /// servers running the lab web server on [`RS_PORT`].
    pub fn up(prefix: &str, servers: usize) -> Result<NatLab, LabError> {
        require_tools(&["python3", "curl", "sysctl"])?;
        let mut lab = Lab::new(prefix)?;
        let sw = lab.add_ns("sw")?;
        for br in ["brx", "bri"] {
            lab.ip(&sw, &["link", "add", br, "type", "bridge"])?;
            lab.ip(&sw, &["link", "set", br, "up"])?;
        }
        let attach =
            |lab: &Lab, br: &str, ns: &str, port: &str, iface: &str| -> Result<(), LabError> {
                lab.ip(
                    &sw,
                    &[
                        "link", "add", port, "type", "veth", "peer", "name", iface, "netns", ns,
                    ],
                )?;
                lab.ip(&sw, &["link", "set", port, "master", br, "up"])?;
                lab.ip(ns, &["link", "set", iface, "up"])?;
                lab.exec(ns, "ethtool", &["-K", iface, "tx", "off"])?;
                Ok(())
            };
        let client = lab.add_ns("cl")?;
        attach(&lab, "brx", &client, "p-cl", "c0")?;
        lab.ip(&client, &["addr", "add", "10.201.0.2/24", "dev", "c0"])?;

        let director = lab.add_ns("dir")?;
        attach(&lab, "brx", &director, "p-d0", "d0")?;
        attach(&lab, "bri", &director, "p-d1", "d1")?;
        for i in ["d0", "d1"] {
            lab.sysctl(&director, &format!("net.ipv6.conf.{i}.disable_ipv6"), "1")?;
        }

        let script = lab.dir().join("web.py");
        std::fs::write(&script, include_str!("web.py"))
            .map_err(|e| LabError::Host(format!("{}: {e}", script.display())))?;
        let mut rs = Vec::new();
        for i in 1..=servers {
            let name = format!("rs{i}");
            let ns = lab.add_ns(&name)?;
            attach(&lab, "bri", &ns, &format!("p-{name}"), "eth0")?;
            let addr = Ipv4Addr::new(10, 202, 0, 10 + i as u8);
            lab.ip(&ns, &["addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            lab.ip(&ns, &["route", "add", "default", "via", "10.202.0.1"])?;
            let mut cmd = lab.command(&ns, "python3");
            cmd.arg(&script).arg(&name).arg(RS_PORT.to_string());
            lab.spawn(&format!("web-{name}"), cmd)?;
            rs.push((name, ns, addr));
        }
        let nl = NatLab {
            lab,
            client,
            client_addr: Ipv4Addr::new(10, 201, 0, 2),
            director,
            dip_ext: Ipv4Addr::new(10, 201, 0, 10),
            dip_int: Ipv4Addr::new(10, 202, 0, 1),
            servers: rs,
        };
        for (name, ns, _) in &nl.servers {
            let lab = &nl.lab;
            let url = format!("http://127.0.0.1:{RS_PORT}/");
            lab.wait_for(
                &format!("web server of {name}"),
                Duration::from_secs(10),
                || {
                    lab.exec(
                        ns,
                        "curl",
                        &["-s", "-o", "/dev/null", "--max-time", "1", &url],
                    )
                    .is_ok()
                },
            )?;
        }
        Ok(nl)
    }

    /// A profile: two af_packet ports and the given services, each
    /// `(vip, scheduler, forward, local addresses)` over every real server at [`RS_PORT`].
    pub fn profile(
        &self,
        services: &[(Ipv4Addr, &str, &str, &[Ipv4Addr])],
        workers: &[u32],
    ) -> String {
        let n = workers.len();
        let workers = workers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        // Several workers: one af_packet socket per worker (fanout by flow hash), and lcores
        // beyond this machine's CPUs share them.
        let (qpairs, share) = if n > 1 {
            (format!(",qpairs={n}"), "  share_cpus: true\n")
        } else {
            (String::new(), "")
        };
        let mut y = format!(
            "dataplane:\n  eal: [\"-m\", \"128\", \"--log-level=*:warning\"]\n  main_lcore: 0\n  workers: [{workers}]\n  flows_per_worker: 65536\n{share}\
             ports:\n  - {{ name: ext, device: \"net_af_packet0,iface=d0{qpairs}\", addresses: [\"{}/24\"] }}\n\
             \x20 - {{ name: int, device: \"net_af_packet1,iface=d1{qpairs}\", addresses: [\"{}/24\"] }}\n\
             {control}services:\n",
            self.dip_ext,
            self.dip_int,
            control = self.lab.control_section("127.0.0.1:9180"),
        );
        for (vip, sched, fwd, lips) in services {
            y.push_str(&format!(
                "  - vip: {vip}\n    port: 80\n    protocol: tcp\n    scheduler: {sched}\n"
            ));
            if !lips.is_empty() {
                let l: Vec<String> = lips.iter().map(|a| format!("\"{a}\"")).collect();
                y.push_str(&format!("    local_addresses: [{}]\n", l.join(", ")));
            }
            y.push_str("    servers:\n");
            for (_, _, addr) in &self.servers {
                y.push_str(&format!(
                    "      - {{ address: {addr}, port: {RS_PORT}, weight: 1, forward: {fwd} }}\n"
                ));
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

    /// GET `http://vip/path` from the client; returns the body.
    pub fn get(&self, vip: Ipv4Addr, path: &str) -> Result<Vec<u8>, LabError> {
        let out = self.lab.exec(
            &self.client,
            "curl",
            &["-s", "--max-time", "10", &format!("http://{vip}{path}")],
        )?;
        Ok(out.stdout)
    }

    /// Pings `addr` from the client once.
    pub fn ping(&self, addr: Ipv4Addr) -> bool {
        self.lab
            .exec(
                &self.client,
                "ping",
                &["-c", "1", "-W", "1", &addr.to_string()],
            )
            .is_ok()
    }
}
