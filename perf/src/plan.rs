//! The test topology: one /16 on the memif link that holds the director, its virtual service,
//! the real servers, FullNAT's local addresses and every client, and the mapping between a
//! flow number and its client tuple. Pure: the generator, the checker, the profile writer and
//! the tests all derive addresses from here, so they cannot disagree.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use rvs_dataplane::wire::MacAddr;

/// How the director forwards (the four IPVS modes), or `Testpmd` for the io-forward baseline
/// where frames come back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Direct routing: only the Ethernet header changes.
    Dr,
    /// IP-in-IP tunnel to the real server.
    Tun,
    /// NAT: destination rewritten to the real server; replies come back through the director.
    Nat,
    /// FullNAT: source and destination rewritten; replies come back to a local address.
    Fnat,
    /// `dpdk-testpmd --forward-mode=io`: frames return untouched (the link's own limit).
    Testpmd,
}

impl Mode {
    /// The four director modes, in report order.
    pub const DIRECTOR: [Mode; 4] = [Mode::Dr, Mode::Tun, Mode::Nat, Mode::Fnat];

    /// Short name (`dr`, `tun`, `nat`, `fnat`, `testpmd`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dr => "dr",
            Mode::Tun => "tun",
            Mode::Nat => "nat",
            Mode::Fnat => "fnat",
            Mode::Testpmd => "testpmd",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "dr" => Some(Mode::Dr),
            "tun" => Some(Mode::Tun),
            "nat" => Some(Mode::Nat),
            "fnat" => Some(Mode::Fnat),
            "testpmd" => Some(Mode::Testpmd),
            _ => None,
        }
    }

    /// Whether replies cross the director (NAT, FullNAT): the generator then also plays the
    /// real server and answers every request it receives.
    pub fn sees_replies(self) -> bool {
        matches!(self, Mode::Nat | Mode::Fnat)
    }

    /// Packets through the director per request/reply exchange of an established flow.
    pub fn passes(self) -> u32 {
        if self.sees_replies() { 2 } else { 1 }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Transport protocol of the generated traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP (flows are opened with SYN then ACK).
    Tcp,
    /// UDP (a flow is opened by its first packet).
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// Parses `tcp` / `udp`.
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub fn ip_proto(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

/// Client ports used per client address (`FIRST_CPORT..=65535`).
pub const PORTS_PER_CLIENT: u32 = 65536 - FIRST_CPORT as u32;
/// Lowest client port.
pub const FIRST_CPORT: u16 = 1024;
/// FullNAT local ports per local address and worker (`1024..=65535`, one worker).
pub const LPORTS_PER_LIP: u32 = 65536 - 1024;
/// Most real servers a plan may have (their MACs and addresses use one byte).
pub const MAX_SERVERS: usize = 64;
/// Most local addresses (10.77.2.1 … 10.77.3.255).
pub const MAX_LIPS: usize = 511;
/// Most flows a plan can address (clients 10.77.128.0 … 10.77.255.255).
pub const MAX_FLOWS: u64 = 32768 * PORTS_PER_CLIENT as u64;

/// Everything both ends must agree on.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Forwarding mode under test.
    pub mode: Mode,
    /// Transport protocol.
    pub proto: Proto,
    /// Established flows (numbered `0..flows`).
    pub flows: u32,
    /// Fresh tuples for the new-connection measurement (numbered `flows..flows + fresh`).
    pub fresh: u32,
    /// Number of real servers.
    pub servers: usize,
    /// Frame length handed to the port (no FCS), at least the headers plus the stamp.
    pub size: usize,
    /// The generator's MAC (every client's).
    pub pktgen_mac: MacAddr,
    /// The director's MAC (set in its memif devargs; also learned from its ARP).
    pub director_mac: MacAddr,
    /// The director's address on the link (DIP; the tunnel source).
    pub dip: Ipv4Addr,
    /// Prefix length of the link.
    pub prefix: u8,
    /// The virtual address.
    pub vip: Ipv4Addr,
    /// The virtual port.
    pub vport: u16,
    /// FullNAT local addresses (empty in the other modes).
    pub lips: Vec<Ipv4Addr>,
}

const NET: u32 = 0x0a4d_0000; // 10.77.0.0/16
const CLIENT_BASE: u32 = NET | 0x8000; // 10.77.128.0
const RS_BASE: u32 = NET | 0x010a; // 10.77.1.10
const LIP_BASE: u32 = NET | 0x0201; // 10.77.2.1

impl Plan {
    /// A plan for `mode` with `flows` established flows, `fresh` new-connection tuples and
    /// `servers` real servers (rr).
    pub fn new(mode: Mode, proto: Proto, flows: u32, fresh: u32, servers: usize) -> Plan {
        let servers = servers.clamp(1, MAX_SERVERS);
        let total = u64::from(flows) + u64::from(fresh) + 1;
        let lips = if mode == Mode::Fnat {
            // Enough local ports for every flow at once, with one address to spare.
            let n = (total.div_ceil(u64::from(LPORTS_PER_LIP)) as usize + 1).min(MAX_LIPS);
            (0..n as u32)
                .map(|i| Ipv4Addr::from_bits(LIP_BASE + i))
                .collect()
        } else {
            Vec::new()
        };
        Plan {
            mode,
            proto,
            flows,
            fresh,
            servers,
            size: 64,
            pktgen_mac: MacAddr([0x02, 0x52, 0x56, 0, 0, 0x02]),
            director_mac: MacAddr([0x02, 0x52, 0x56, 0, 0, 0x01]),
            dip: Ipv4Addr::from_bits(NET | 1),
            prefix: 16,
            vip: Ipv4Addr::from_bits(NET | 100),
            vport: 80,
            lips,
        }
    }

    /// Flows plus fresh tuples (`flows + fresh`).
    pub fn total_flows(&self) -> u32 {
        self.flows.saturating_add(self.fresh)
    }

    /// The one flow the generator probes the path with before measuring (right after the
    /// fresh tuples).
    pub fn probe_flow(&self) -> u32 {
        self.total_flows()
    }

    /// Every flow number the plan can produce: flows, fresh tuples and the probe.
    pub fn known_flows(&self) -> u32 {
        self.total_flows().saturating_add(1)
    }

    /// The real servers' port: NAT and FullNAT map 80 to 8080 (so the checker sees a port
    /// rewrite); DR and TUN cannot change ports.
    pub fn rport(&self) -> u16 {
        if self.mode.sees_replies() {
            8080
        } else {
            self.vport
        }
    }

    /// Real server `k`'s address.
    pub fn rs(&self, k: usize) -> Ipv4Addr {
        Ipv4Addr::from_bits(RS_BASE + k as u32)
    }

    /// Which real server has address `ip`.
    #[inline]
    pub fn rs_index(&self, ip: u32) -> Option<usize> {
        let k = ip.wrapping_sub(RS_BASE) as usize;
        (k < self.servers).then_some(k)
    }

    /// Real server `k`'s MAC (the generator answers ARP for each with its own MAC, so DR
    /// forwarding shows which server was chosen).
    pub fn rs_mac(k: usize) -> MacAddr {
        MacAddr([0x02, 0x52, 0x56, 0, 1, k as u8])
    }

    /// Which real server a MAC stands for.
    #[inline]
    pub fn rs_of_mac(&self, mac: &[u8]) -> Option<usize> {
        if mac.len() == 6 && mac[..5] == [0x02, 0x52, 0x56, 0, 1] {
            let k = mac[5] as usize;
            (k < self.servers).then_some(k)
        } else {
            None
        }
    }

    /// Which local address `ip` is.
    #[inline]
    pub fn lip_index(&self, ip: u32) -> Option<usize> {
        let i = ip.wrapping_sub(LIP_BASE) as usize;
        (i < self.lips.len()).then_some(i)
    }

    /// The client tuple of flow `flow`.
    #[inline]
    pub fn client(flow: u32) -> (u32, u16) {
        let ip = CLIENT_BASE + flow / PORTS_PER_CLIENT;
        let port = FIRST_CPORT + (flow % PORTS_PER_CLIENT) as u16;
        (ip, port)
    }

    /// The flow of a client tuple, if it is one of the plan's.
    #[inline]
    pub fn flow_of(&self, ip: u32, port: u16) -> Option<u32> {
        let c = ip.checked_sub(CLIENT_BASE)?;
        let p = port.checked_sub(FIRST_CPORT)?;
        let flow = u64::from(c) * u64::from(PORTS_PER_CLIENT) + u64::from(p);
        (flow < u64::from(self.known_flows())).then_some(flow as u32)
    }

    /// The addresses the generator answers ARP for (the real servers) with their MACs.
    pub fn arp_answers(&self) -> impl Iterator<Item = (Ipv4Addr, MacAddr)> + '_ {
        (0..self.servers).map(|k| (self.rs(k), Self::rs_mac(k)))
    }

    /// The director's boot profile for this plan: one memif client port, a TCP and a UDP
    /// service on VIP:80 with rr over the real servers in the plan's mode.
    pub fn profile_yaml(&self, opts: &ProfileOptions) -> String {
        let forward = match self.mode {
            Mode::Dr | Mode::Testpmd => "dr",
            Mode::Tun => "tun",
            Mode::Nat => "nat",
            Mode::Fnat => "fnat",
        };
        let mut eal = vec![
            "--in-memory".to_owned(),
            "-m".into(),
            opts.mem_mb.to_string(),
        ];
        if opts.zero_copy {
            eal.push("--single-file-segments".into());
        }
        let quoted: Vec<String> = eal.iter().map(|a| format!("\"{a}\"")).collect();
        let mut y = String::new();
        let _ = writeln!(
            y,
            "# Written by rvs-perf for {} / {} flows.",
            self.mode, self.flows
        );
        let _ = writeln!(y, "dataplane:");
        let _ = writeln!(y, "  eal: [{}]", quoted.join(", "));
        let _ = writeln!(y, "  main_lcore: {}", opts.main_lcore);
        let _ = writeln!(y, "  workers: [{}]", opts.worker_lcore);
        let _ = writeln!(y, "  flows_per_worker: {}", opts.capacity);
        let _ = writeln!(y, "ports:");
        let _ = writeln!(y, "  - name: dp0");
        let _ = writeln!(
            y,
            "    device: \"{}\"",
            memif_devargs(
                "client",
                &opts.socket,
                Some(self.director_mac),
                opts.zero_copy
            )
        );
        let _ = writeln!(y, "    addresses: [\"{}/{}\"]", self.dip, self.prefix);
        let _ = writeln!(y, "timeouts: {{ tcp: 900, tcp_fin: 120, udp: 300 }}");
        let _ = writeln!(y, "services:");
        for proto in ["tcp", "udp"] {
            let _ = writeln!(y, "  - vip: {}", self.vip);
            let _ = writeln!(y, "    port: {}", self.vport);
            let _ = writeln!(y, "    protocol: {proto}");
            let _ = writeln!(y, "    scheduler: rr");
            if !self.lips.is_empty() {
                let l: Vec<String> = self.lips.iter().map(|a| format!("\"{a}\"")).collect();
                let _ = writeln!(y, "    local_addresses: [{}]", l.join(", "));
            }
            let _ = writeln!(y, "    servers:");
            for k in 0..self.servers {
                let _ = writeln!(
                    y,
                    "      - {{ address: {}, port: {}, weight: 1, forward: {forward} }}",
                    self.rs(k),
                    self.rport()
                );
            }
        }
        let _ = writeln!(y, "control:");
        let _ = writeln!(y, "  shm: {}", opts.shm);
        let _ = writeln!(y, "  listen: 127.0.0.1:9199");
        y
    }
}

/// What the director's profile needs beyond the plan.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// memif socket path (the generator is the server).
    pub socket: String,
    /// memif zero-copy on the director's (client) side; adds `--single-file-segments`.
    pub zero_copy: bool,
    /// `flows_per_worker`.
    pub capacity: u32,
    /// Hugepage memory for the director's EAL, MiB.
    pub mem_mb: u32,
    /// Main lcore.
    pub main_lcore: u32,
    /// The one worker lcore.
    pub worker_lcore: u32,
    /// The control link's shared-memory file.
    pub shm: String,
}

/// memif devargs for `role` (`server` / `client`) on `socket` (a file, not abstract).
pub fn memif_devargs(role: &str, socket: &str, mac: Option<MacAddr>, zero_copy: bool) -> String {
    let mut s = format!("net_memif0,role={role},socket={socket},socket-abstract=no");
    if let Some(m) = mac {
        let _ = write!(s, ",mac={m}");
    }
    if zero_copy {
        s.push_str(",zero-copy=yes");
    }
    s
}

/// A walk that visits every flow of `0..n` once per round in a scattered order: `i·stride
/// mod n` with `stride` coprime to `n` near `n·0.618`, so consecutive packets hit distant
/// parts of the director's table.
#[derive(Debug, Clone)]
pub struct StrideWalk {
    n: u32,
    stride: u32,
    at: u32,
}

impl StrideWalk {
    /// A walk over `0..n` (n ≥ 1).
    pub fn new(n: u32) -> StrideWalk {
        let n = n.max(1);
        let mut stride = ((u64::from(n) * 618) / 1000).max(1) as u32;
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        StrideWalk {
            n,
            stride: stride % n.max(1),
            at: 0,
        }
    }

    /// The next flow.
    #[inline]
    pub fn next_flow(&mut self) -> u32 {
        let f = self.at;
        let next = u64::from(self.at) + u64::from(self.stride);
        self.at = if next >= u64::from(self.n) {
            (next - u64::from(self.n)) as u32
        } else {
            next as u32
        };
        f
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The next power of two at or above `n` (the flow-table capacity rule).
pub fn pow2_at_least(n: u64) -> u64 {
    n.max(1).next_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tuples_round_trip() {
        let p = Plan::new(Mode::Dr, Proto::Tcp, 10_000_000, 1 << 20, 4);
        for flow in [
            0,
            1,
            64511,
            64512,
            1_000_000,
            9_999_999,
            p.total_flows() - 1,
        ] {
            let (ip, port) = Plan::client(flow);
            assert!(port >= FIRST_CPORT);
            assert_eq!(p.flow_of(ip, port), Some(flow), "flow {flow}");
        }
        let (ip, port) = Plan::client(p.probe_flow());
        assert_eq!(p.flow_of(ip, port), Some(p.probe_flow()));
        let (ip, port) = Plan::client(p.known_flows());
        assert_eq!(p.flow_of(ip, port), None);
        assert_eq!(p.flow_of(p.vip.to_bits(), 80), None);
    }

    #[test]
    fn servers_and_local_addresses_are_recognised() {
        let p = Plan::new(Mode::Fnat, Proto::Tcp, 10_000_000, 1 << 20, 4);
        assert!(p.lips.len() as u64 * u64::from(LPORTS_PER_LIP) >= u64::from(p.total_flows()));
        for k in 0..4 {
            assert_eq!(p.rs_index(p.rs(k).to_bits()), Some(k));
            assert_eq!(p.rs_of_mac(&Plan::rs_mac(k).0), Some(k));
        }
        assert_eq!(p.rs_index(p.rs(4).to_bits()), None);
        assert_eq!(p.rs_of_mac(&p.pktgen_mac.0), None);
        assert_eq!(p.lip_index(p.lips[3].to_bits()), Some(3));
        assert_eq!(p.lip_index(p.vip.to_bits()), None);
        assert_eq!(p.rport(), 8080);
        assert_eq!(Plan::new(Mode::Dr, Proto::Tcp, 1, 0, 2).rport(), 80);
    }

    #[test]
    fn stride_walk_visits_every_flow_once_per_round() {
        for n in [1u32, 2, 7, 1000, 1024, 100_000] {
            let mut w = StrideWalk::new(n);
            let mut seen = vec![false; n as usize];
            for _ in 0..n {
                let f = w.next_flow();
                assert!(!seen[f as usize], "n {n}: {f} twice");
                seen[f as usize] = true;
            }
            assert_eq!(w.next_flow(), 0, "n {n}: a round ends where it began");
        }
    }

    #[test]
    fn profile_is_valid_for_the_dataplane() {
        for mode in Mode::DIRECTOR {
            let p = Plan::new(mode, Proto::Tcp, 100_000, 1 << 16, 4);
            let y = p.profile_yaml(&ProfileOptions {
                socket: "/run/rvs-perf/memif.sock".into(),
                zero_copy: mode == Mode::Nat,
                capacity: 1 << 18,
                mem_mb: 128,
                main_lcore: 0,
                worker_lcore: 1,
                shm: "/dev/shm/rvs-perf-test".into(),
            });
            let prof = rvs_config::Profile::parse(&y, "perf.yaml")
                .unwrap_or_else(|e| panic!("{mode}: {e}\n{y}"));
            assert_eq!(prof.services.len(), 2);
            assert_eq!(prof.dataplane.flows_per_worker, 1 << 18);
            assert!(prof.ports[0].device.contains("role=client"));
        }
    }

    #[test]
    fn devargs_name_the_socket_and_options() {
        let d = memif_devargs("server", "/run/x.sock", None, false);
        assert_eq!(
            d,
            "net_memif0,role=server,socket=/run/x.sock,socket-abstract=no"
        );
        let d = memif_devargs(
            "client",
            "/run/x.sock",
            Some(MacAddr([2, 0, 0, 0, 0, 1])),
            true,
        );
        assert!(d.ends_with(",mac=02:00:00:00:00:01,zero-copy=yes"), "{d}");
    }
}
