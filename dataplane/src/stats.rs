//! Per-worker counters: packets, bytes, verdicts, and drops by reason.
//!
//! A worker counts into its own plain [`Counters`] (no atomics, no sharing on the hot path) and
//! publishes a copy into its [`SharedCounters`] once per loop turn with relaxed stores: a single
//! writer per counter, readers (the main lcore, later the control process) never disturb it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::wire::WireError;

/// Why a packet was dropped. Every drop is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Frame shorter than an Ethernet header.
    RuntFrame,
    /// Destination MAC is neither ours nor broadcast.
    OtherHost,
    /// EtherType the dataplane does not handle (IPv6, VLAN-tagged, LLDP …).
    UnsupportedEtherType,
    /// ARP that is malformed or not for one of our addresses.
    ArpIgnored,
    /// IPv4 header malformed (version, lengths).
    Ipv4Malformed,
    /// IPv4 header checksum wrong.
    Ipv4BadChecksum,
    /// IPv4 fragment for a virtual service (not reassembled).
    Fragment,
    /// TCP/UDP/ICMP header malformed.
    L4Malformed,
    /// Addressed to the director itself but nothing here answers it (the kernel exception
    /// path is not part of this build).
    LocalUnhandled,
    /// Not for us and not for any virtual service.
    NoService,
    /// TCP segment without SYN that matches no connection (IPVS does not schedule it).
    NoFlowNotSyn,
    /// The scheduler found no available real server.
    NoDest,
    /// The flow table bucket was full of live connections.
    FlowTableFull,
    /// The real server's MAC is not (or no longer) resolved.
    NeighUnresolved,
    /// The tx queue did not take the packet.
    TxFull,
    /// An ARP packet that was only worth its sender's address could not be reported: the
    /// worker's event queue to the main lcore was full.
    EventQueueFull,
    /// FullNAT: every local port of the service's local addresses is in use on this worker.
    NoLocalPort,
    /// NAT: the reply tuple of a new connection is already another connection's.
    NatCollision,
    /// Tunnel: the packet does not fit the egress MTU once encapsulated and may be fragmented
    /// (DF clear); RVS does not fragment.
    TooBig,
    /// Not enough headroom in the buffer to encapsulate.
    NoHeadroom,
    /// No route to the destination of a reply.
    NoRoute,
    /// The owning worker's handoff ring was full.
    HandoffFull,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 22;

    /// Every reason, in index order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::RuntFrame,
        DropReason::OtherHost,
        DropReason::UnsupportedEtherType,
        DropReason::ArpIgnored,
        DropReason::Ipv4Malformed,
        DropReason::Ipv4BadChecksum,
        DropReason::Fragment,
        DropReason::L4Malformed,
        DropReason::LocalUnhandled,
        DropReason::NoService,
        DropReason::NoFlowNotSyn,
        DropReason::NoDest,
        DropReason::FlowTableFull,
        DropReason::NeighUnresolved,
        DropReason::TxFull,
        DropReason::EventQueueFull,
        DropReason::NoLocalPort,
        DropReason::NatCollision,
        DropReason::TooBig,
        DropReason::NoHeadroom,
        DropReason::NoRoute,
        DropReason::HandoffFull,
    ];

    /// Stable snake-case name (for logs, metrics and the API).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::RuntFrame => "runt_frame",
            DropReason::OtherHost => "other_host",
            DropReason::UnsupportedEtherType => "unsupported_ethertype",
            DropReason::ArpIgnored => "arp_ignored",
            DropReason::Ipv4Malformed => "ipv4_malformed",
            DropReason::Ipv4BadChecksum => "ipv4_bad_checksum",
            DropReason::Fragment => "fragment",
            DropReason::L4Malformed => "l4_malformed",
            DropReason::LocalUnhandled => "local_unhandled",
            DropReason::NoService => "no_service",
            DropReason::NoFlowNotSyn => "no_flow_not_syn",
            DropReason::NoDest => "no_dest",
            DropReason::FlowTableFull => "flow_table_full",
            DropReason::NeighUnresolved => "neigh_unresolved",
            DropReason::TxFull => "tx_full",
            DropReason::EventQueueFull => "event_queue_full",
            DropReason::NoLocalPort => "no_local_port",
            DropReason::NatCollision => "nat_collision",
            DropReason::TooBig => "too_big",
            DropReason::NoHeadroom => "no_headroom",
            DropReason::NoRoute => "no_route",
            DropReason::HandoffFull => "handoff_full",
        }
    }

    /// The reason for an IPv4 header error.
    pub fn ipv4(e: WireError) -> DropReason {
        match e {
            WireError::BadChecksum => DropReason::Ipv4BadChecksum,
            WireError::Fragment => DropReason::Fragment,
            _ => DropReason::Ipv4Malformed,
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One worker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets forwarded to real servers.
    pub forwarded: u64,
    /// New connections scheduled.
    pub connections: u64,
    /// ARP requests answered.
    pub arp_replies: u64,
    /// ARP packets whose sender was reported to the main lcore.
    pub arp_learned: u64,
    /// ICMP echo requests answered.
    pub icmp_echo_replies: u64,
    /// Frames from the main lcore transmitted (ARP requests, gratuitous ARP).
    pub control_tx: u64,
    /// Neighbour events not delivered because the queue to the main lcore was full.
    pub events_lost: u64,
    /// Replies of NAT and FullNAT connections forwarded back to clients.
    pub replies: u64,
    /// ICMP "fragmentation needed" sent for packets too big for a tunnel.
    pub icmp_frag_needed: u64,
    /// Connections expired by the timers.
    pub expired: u64,
    /// Persistence templates created.
    pub templates: u64,
    /// Packets handed to the worker owning their connection.
    pub handoffs: u64,
    /// NAT connections whose reply tuple found no room in the redirect table.
    pub redirects_lost: u64,
    /// ICMP errors about tracked connections forwarded (translated for NAT and FullNAT).
    pub icmp_translated: u64,
    /// Shortened connection deadlines that found the timer wheel full (expired late). Kept
    /// for the stats layout; always 0 since every connection owns its timer entry.
    pub timers_full: u64,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [u64; DropReason::COUNT],
}

impl Counters {
    /// Counts a drop.
    #[inline]
    pub fn drop(&mut self, r: DropReason) {
        self.drops[r as usize] += 1;
    }

    /// All drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Non-zero drop reasons with their counts.
    pub fn drop_reasons(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.drops[r as usize]))
            .filter(|&(_, n)| n > 0)
    }
}

/// Number of scalar counters.
pub const SCALARS: usize = 19;

/// Counters published for readers on other threads (single writer).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct SharedCounters {
    scalars: [AtomicU64; SCALARS],
    drops: [AtomicU64; DropReason::COUNT],
}

impl Counters {
    /// Names of [`Counters::scalars`], in order (the stats region and the API use them).
    pub const SCALAR_NAMES: [&'static str; SCALARS] = [
        "rx_packets",
        "rx_bytes",
        "tx_packets",
        "tx_bytes",
        "forwarded",
        "connections",
        "arp_replies",
        "arp_learned",
        "icmp_echo_replies",
        "control_tx",
        "events_lost",
        "replies",
        "icmp_frag_needed",
        "expired",
        "templates",
        "handoffs",
        "redirects_lost",
        "icmp_translated",
        "timers_full",
    ];

    /// Every scalar counter, in [`Counters::SCALAR_NAMES`] order.
    #[inline]
    pub fn scalars(&self) -> [u64; SCALARS] {
        SharedCounters::scalars(self)
    }
}

impl SharedCounters {
    fn scalars(c: &Counters) -> [u64; SCALARS] {
        [
            c.rx_packets,
            c.rx_bytes,
            c.tx_packets,
            c.tx_bytes,
            c.forwarded,
            c.connections,
            c.arp_replies,
            c.arp_learned,
            c.icmp_echo_replies,
            c.control_tx,
            c.events_lost,
            c.replies,
            c.icmp_frag_needed,
            c.expired,
            c.templates,
            c.handoffs,
            c.redirects_lost,
            c.icmp_translated,
            c.timers_full,
        ]
    }

    /// Publishes `c` (the owning worker only).
    #[inline]
    pub fn publish(&self, c: &Counters) {
        for (slot, v) in self.scalars.iter().zip(Self::scalars(c)) {
            slot.store(v, Ordering::Relaxed);
        }
        for (slot, v) in self.drops.iter().zip(c.drops) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    /// Reads the last published values.
    pub fn read(&self) -> Counters {
        let s: [u64; SCALARS] = std::array::from_fn(|i| self.scalars[i].load(Ordering::Relaxed));
        Counters {
            rx_packets: s[0],
            rx_bytes: s[1],
            tx_packets: s[2],
            tx_bytes: s[3],
            forwarded: s[4],
            connections: s[5],
            arp_replies: s[6],
            arp_learned: s[7],
            icmp_echo_replies: s[8],
            control_tx: s[9],
            events_lost: s[10],
            replies: s[11],
            icmp_frag_needed: s[12],
            expired: s[13],
            templates: s[14],
            handoffs: s[15],
            redirects_lost: s[16],
            icmp_translated: s[17],
            timers_full: s[18],
            drops: std::array::from_fn(|i| self.drops[i].load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_what_the_control_process_reads() {
        assert_eq!(Counters::SCALAR_NAMES, rvs_shm::COUNTER_NAMES);
        let drops: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(drops, rvs_shm::DROP_NAMES);
        const {
            assert!(SCALARS <= rvs_shm::WORKER_COUNTERS && DropReason::COUNT <= rvs_shm::DROP_SLOTS)
        };
    }

    #[test]
    fn publish_then_read_round_trips() {
        let mut c = Counters {
            rx_packets: 1,
            rx_bytes: 2,
            tx_packets: 3,
            tx_bytes: 4,
            forwarded: 5,
            connections: 6,
            arp_replies: 7,
            arp_learned: 8,
            icmp_echo_replies: 9,
            control_tx: 10,
            events_lost: 11,
            replies: 12,
            icmp_frag_needed: 13,
            expired: 14,
            templates: 15,
            handoffs: 16,
            redirects_lost: 17,
            icmp_translated: 18,
            timers_full: 19,
            ..Counters::default()
        };
        c.drop(DropReason::NoDest);
        c.drop(DropReason::NoDest);
        c.drop(DropReason::EventQueueFull);
        let s = SharedCounters::default();
        s.publish(&c);
        assert_eq!(s.read(), c);
        assert_eq!(c.total_drops(), 3);
        assert_eq!(
            c.drop_reasons().collect::<Vec<_>>(),
            [(DropReason::NoDest, 2), (DropReason::EventQueueFull, 1)]
        );
    }

    #[test]
    fn reasons_are_dense_and_named_uniquely() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}

/// Traffic of one virtual service or one real server, as `ipvsadm --stats` shows it: new
/// connections, and packets and bytes in (client → server) and out (server → client, seen only
/// for NAT and FullNAT).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounters {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets client → server.
    pub in_packets: u64,
    /// Bytes client → server.
    pub in_bytes: u64,
    /// Packets server → client.
    pub out_packets: u64,
    /// Bytes server → client.
    pub out_bytes: u64,
}

impl TrafficCounters {
    /// Adds `other` (summing workers, or servers into a service).
    pub fn add(&mut self, other: &TrafficCounters) {
        self.conns += other.conns;
        self.in_packets += other.in_packets;
        self.in_bytes += other.in_bytes;
        self.out_packets += other.out_packets;
        self.out_bytes += other.out_bytes;
    }
}
