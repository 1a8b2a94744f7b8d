//! Ethernet II frames and MAC addresses.
//!
//! Only the untagged 14-byte header is parsed; a VLAN tag shows up as
//! [`ether_type::VLAN`] and is the caller's to handle. The frame check sequence is never in
//! the buffer (NICs strip it).

use core::fmt;

use super::WireError;

/// Ethernet hardware address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00 (unknown, as in an ARP request's target).
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Copies an address out of a 6-byte slice; `None` if the slice is not 6 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        bytes.try_into().ok().map(MacAddr)
    }

    /// The six octets.
    #[inline(always)]
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// All ones.
    #[inline(always)]
    pub const fn is_broadcast(self) -> bool {
        self.to_u64() == 0xffff_ffff_ffff
    }

    /// Group bit (least significant bit of the first octet) set; includes broadcast.
    #[inline(always)]
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Not a group address.
    #[inline(always)]
    pub const fn is_unicast(self) -> bool {
        !self.is_multicast()
    }

    /// The address in the low 48 bits of a `u64`, first octet most significant
    /// (`52:54:00:12:34:56` is `0x5254_0012_3456`).
    #[inline(always)]
    pub const fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// Inverse of [`to_u64`](Self::to_u64); the high 16 bits of `v` are ignored.
    #[inline(always)]
    pub const fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

/// EtherType values the dataplane cares about.
pub mod ether_type {
    /// Internet Protocol version 4.
    pub const IPV4: u16 = 0x0800;
    /// Address Resolution Protocol.
    pub const ARP: u16 = 0x0806;
    /// IEEE 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// Internet Protocol version 6.
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use core::ops::Range;

    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// A read/write view of an Ethernet II frame (destination, source, EtherType, payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the untagged header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps a buffer without checking it; accessors panic if it is shorter than 14 bytes.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// `Err(Truncated)` if the buffer cannot hold the 14-byte header.
    #[inline(always)]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < field::PAYLOAD {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    #[inline(always)]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length: always [`HEADER_LEN`](Self::HEADER_LEN).
    #[inline(always)]
    pub const fn header_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Destination address.
    #[inline(always)]
    pub fn dst(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), field::DST.start)
    }

    /// Source address.
    #[inline(always)]
    pub fn src(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), field::SRC.start)
    }

    /// EtherType (see [`ether_type`]).
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[field::ETHERTYPE.start], d[field::ETHERTYPE.start + 1]])
    }

    /// Everything after the header, including any padding up to the 60-byte minimum.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        d.get(field::PAYLOAD..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    #[inline(always)]
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac.0);
    }

    /// Sets the source address.
    #[inline(always)]
    pub fn set_src(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac.0);
    }

    /// Sets the EtherType.
    #[inline(always)]
    pub fn set_ethertype(&mut self, value: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Mutable payload (everything after the header).
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD..)
            .unwrap_or(&mut [])
    }
}

/// Reads a MAC address at `at` (indexing panics if out of bounds, as fixed fields do on an
/// unchecked view).
#[inline(always)]
pub(super) fn mac_at(d: &[u8], at: usize) -> MacAddr {
    MacAddr([d[at], d[at + 1], d[at + 2], d[at + 3], d[at + 4], d[at + 5]])
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{ALL_FRAMES, ARP_REQUEST_FRAME, SYN_FRAME};
    use super::*;
    use proptest::prelude::*;

    const CLIENT: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const LB: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

    #[test]
    fn parse_syn_frame() {
        let f = EthernetFrame::new_checked(&SYN_FRAME[..]).unwrap();
        assert_eq!(f.dst(), LB);
        assert_eq!(f.src(), CLIENT);
        assert_eq!(f.ethertype(), ether_type::IPV4);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &SYN_FRAME[14..]);
        assert_eq!(f.payload()[0], 0x45);
    }

    #[test]
    fn parse_arp_frame() {
        let f = EthernetFrame::new_checked(&ARP_REQUEST_FRAME).unwrap();
        assert!(f.dst().is_broadcast());
        assert!(f.dst().is_multicast());
        assert!(f.src().is_unicast());
        assert_eq!(f.ethertype(), ether_type::ARP);
        assert_eq!(f.payload().len(), 46);
    }

    #[test]
    fn build_header_matches_bytes() {
        let mut buf = [0u8; 74];
        buf[14..].copy_from_slice(&SYN_FRAME[14..]);
        let mut f = EthernetFrame::new_checked(&mut buf[..]).unwrap();
        f.set_dst(LB);
        f.set_src(CLIENT);
        f.set_ethertype(ether_type::IPV4);
        assert_eq!(f.into_inner(), &SYN_FRAME[..]);
    }

    #[test]
    fn payload_mut_writes_through() {
        let mut buf = SYN_FRAME;
        let mut f = EthernetFrame::new_checked(&mut buf).unwrap();
        f.payload_mut()[0] = 0x46;
        assert_eq!(buf[14], 0x46);
    }

    #[test]
    fn every_truncation() {
        for frame in ALL_FRAMES {
            for len in 0..=frame.len() {
                match EthernetFrame::new_checked(&frame[..len]) {
                    Ok(f) => {
                        assert!(len >= 14);
                        assert_eq!(f.payload().len(), len - 14);
                        let _ = (f.dst(), f.src(), f.ethertype());
                    }
                    Err(e) => {
                        assert!(len < 14);
                        assert_eq!(e, WireError::Truncated);
                    }
                }
            }
        }
    }

    #[test]
    fn mac_display_and_packing() {
        assert_eq!(CLIENT.to_string(), "52:54:00:12:34:56");
        assert_eq!(format!("{CLIENT:?}"), "MacAddr(52:54:00:12:34:56)");
        assert_eq!(MacAddr::BROADCAST.to_string(), "ff:ff:ff:ff:ff:ff");
        assert_eq!(CLIENT.to_u64(), 0x5254_0012_3456);
        assert_eq!(MacAddr::from_u64(0xdead_5254_0012_3456), CLIENT);
        assert!(!CLIENT.is_broadcast());
        assert!(!CLIENT.is_multicast());
        assert!(MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]).is_multicast());
        assert!(!MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]).is_broadcast());
        assert_eq!(MacAddr::from_slice(&SYN_FRAME[6..12]), Some(CLIENT));
        assert_eq!(MacAddr::from_slice(&SYN_FRAME[6..11]), None);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(f) = EthernetFrame::new_checked(&data[..]) {
                let _ = (f.dst(), f.src(), f.ethertype(), f.payload());
            }
        }

        #[test]
        fn mac_u64_roundtrip(b in any::<[u8; 6]>()) {
            let m = MacAddr(b);
            prop_assert_eq!(MacAddr::from_u64(m.to_u64()), m);
            prop_assert!(m.to_u64() < 1 << 48);
        }
    }
}
