//! Packet wire formats: byte-exact, zero-copy views over Ethernet, ARP, IPv4, ICMPv4, TCP and UDP.
//!
//! This module owns the layout of every header the dataplane reads or writes, and nothing
//! else: no I/O, no allocation, no `unsafe`, no knowledge of DPDK or of flows. It follows
//! smoltcp's wire pattern. A view such as [`Ipv4Packet<T>`] wraps any `T: AsRef<[u8]>` (an
//! mbuf's data, a slice, a test array); field offsets live in a private `mod field` per file;
//! getters read big-endian fields straight out of the buffer and setters write them back, so
//! bytes are never cast to structs.
//!
//! The contract is *check once, then access*: `new_checked` (which calls `check_len`) validates
//! every length field against the buffer, plus the fields that define the layout (IPv4
//! version, ARP hardware/protocol format), and returns a [`WireError`] otherwise; after that no
//! getter, setter or payload accessor can panic, whatever the bytes were. `new_unchecked` skips
//! the check for buffers the caller has already validated or is about to fill; on those, fixed
//! header fields may panic if the buffer is shorter than the fixed header, but payload and
//! option slices are always clamped to the buffer. Checksums are not verified by `new_checked`
//! (the dataplane may trust NIC offload); call `verify_checksum` where it matters.
//!
//! [`WireError`] is a small `Copy` enum with a dense [`WireError::index`], so the hot path can
//! count each malformation as a drop reason in a per-core array.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod testdata;

pub use arp::{ArpPacket, ArpRepr, arp_op, emit_reply, emit_request, make_reply_in_place};
pub use ethernet::{EthernetFrame, MacAddr, ether_type};
pub use icmpv4::{IcmpV4Packet, icmp_code, icmp_type};
pub use ipv4::{Ipv4Packet, Ipv4Repr, ip_proto};
pub use tcp::{TcpPacket, tcp_flag};
pub use udp::UdpPacket;

use core::fmt;

/// Why a buffer was rejected as a packet of some format.
///
/// Rules for choosing a variant, so counters mean the same thing everywhere: a buffer that ends
/// before the fixed header or before a length the packet itself declares is [`Truncated`]; a
/// length field below its minimum or inconsistent with an enclosing length is one of the
/// `Bad*Len` variants (this follows Linux's `ip_rcv` / `tcp_v4_rcv` / `udp_rcv` accounting).
///
/// [`Truncated`]: WireError::Truncated
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum WireError {
    /// The buffer ends before the fixed header or before a length declared by the packet.
    Truncated = 0,
    /// IPv4 version field is not 4.
    BadVersion = 1,
    /// A header length field (IPv4 IHL, TCP data offset) is below its minimum or exceeds the
    /// enclosing length (IPv4 total length).
    BadHeaderLen = 2,
    /// A total length field (IPv4 total length, UDP length) is below its minimum.
    BadTotalLen = 3,
    /// A checksum did not verify.
    BadChecksum = 4,
    /// The IPv4 packet is a fragment (MF set or non-zero offset); the dataplane does not
    /// reassemble.
    Fragment = 5,
    /// Well-formed but not something this code handles (e.g. ARP for a hardware type other
    /// than Ethernet or a protocol other than IPv4, an ARP operation that is not a request).
    Unsupported = 6,
}

impl WireError {
    /// Number of variants; the size of a per-reason counter array.
    pub const COUNT: usize = 7;

    /// Every variant, in [`index`](Self::index) order.
    pub const ALL: [WireError; Self::COUNT] = [
        WireError::Truncated,
        WireError::BadVersion,
        WireError::BadHeaderLen,
        WireError::BadTotalLen,
        WireError::BadChecksum,
        WireError::Fragment,
        WireError::Unsupported,
    ];

    /// Dense index in `0..COUNT`, for indexing counter arrays.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Short stable name, suitable as a metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::BadVersion => "bad_version",
            WireError::BadHeaderLen => "bad_header_len",
            WireError::BadTotalLen => "bad_total_len",
            WireError::BadChecksum => "bad_checksum",
            WireError::Fragment => "fragment",
            WireError::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for WireError {}

#[cfg(test)]
mod tests {
    use super::WireError;

    #[test]
    fn error_indices_are_dense_and_names_unique() {
        for (i, e) in WireError::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(e.to_string(), e.as_str());
        }
        for a in WireError::ALL {
            for b in WireError::ALL {
                assert_eq!(a == b, a.as_str() == b.as_str());
            }
        }
    }
}
