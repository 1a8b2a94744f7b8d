//! ICMP for IPv4 (RFC 792), as far as a load balancer needs it: echo, and the errors it
//! relays or generates (destination unreachable with fragmentation-needed, time exceeded).
//!
//! The view covers the whole ICMP message (the IPv4 payload); the checksum covers all of it,
//! with no pseudo-header. Bytes 4..8 ("rest of header") are read as echo identifier/sequence
//! or as the next-hop MTU depending on the type; the accessors do not check the type.

use super::WireError;
use super::checksum;

/// ICMP message types.
pub mod icmp_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable (codes in [`super::icmp_code`]).
    pub const DEST_UNREACH: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
}

/// ICMP codes for [`icmp_type::DEST_UNREACH`] and [`icmp_type::TIME_EXCEEDED`].
pub mod icmp_code {
    /// Destination unreachable: network unreachable.
    pub const NET_UNREACH: u8 = 0;
    /// Destination unreachable: host unreachable.
    pub const HOST_UNREACH: u8 = 1;
    /// Destination unreachable: protocol unreachable.
    pub const PROTO_UNREACH: u8 = 2;
    /// Destination unreachable: port unreachable.
    pub const PORT_UNREACH: u8 = 3;
    /// Destination unreachable: fragmentation needed and DF set (path MTU discovery).
    pub const FRAG_NEEDED: u8 = 4;
    /// Time exceeded: TTL exceeded in transit.
    pub const TTL_EXCEEDED: u8 = 0;
}

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQ: Range<usize> = 6..8;
    pub const NEXT_HOP_MTU: Range<usize> = 6..8;
    pub const DATA: usize = 8;
}

/// A read/write view of an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpV4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpV4Packet<T> {
    /// Length of the header including the 4-byte "rest of header".
    pub const HEADER_LEN: usize = field::DATA;

    /// Wraps a buffer without checking it; header fields panic if it is shorter than 8 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        IcmpV4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if the buffer cannot hold the 8-byte header.
    #[inline]
    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < field::DATA {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn read_u16(&self, at: usize) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[at], d[at + 1]])
    }

    /// Message type (see [`icmp_type`]).
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code (see [`icmp_code`]).
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// Echo identifier (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        self.read_u16(field::ECHO_IDENT.start)
    }

    /// Echo sequence number (echo request/reply).
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        self.read_u16(field::ECHO_SEQ.start)
    }

    /// Next-hop MTU (destination unreachable, fragmentation needed; RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        self.read_u16(field::NEXT_HOP_MTU.start)
    }

    /// Everything after the 8-byte header: echo data, or the offending IPv4 header and the
    /// first bytes of its payload for error messages.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::DATA..).unwrap_or(&[])
    }

    /// True if the checksum over the whole message is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> IcmpV4Packet<T> {
    #[inline]
    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the code.
    #[inline]
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field as is (see [`fill_checksum`](Self::fill_checksum)).
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM.start, value);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        self.write_u16(field::ECHO_IDENT.start, value);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq(&mut self, value: u16) {
        self.write_u16(field::ECHO_SEQ.start, value);
    }

    /// Sets the next-hop MTU (bytes 4..6 are left alone; RFC 1191 wants them zero).
    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        self.write_u16(field::NEXT_HOP_MTU.start, value);
    }

    /// Mutable payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::DATA..)
            .unwrap_or(&mut [])
    }

    /// Computes the checksum over the whole message and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(sum);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{ALL_FRAMES, L4, PING_FRAME};
    use super::*;
    use proptest::prelude::*;

    fn ping() -> &'static [u8] {
        &PING_FRAME[L4..]
    }

    /// "Fragmentation needed, next-hop MTU 1400" quoting the IPv4 header and first 8 TCP
    /// bytes of testdata::SYN_FRAME. Checksum 0x29a3.
    const FRAG_NEEDED: [u8; 36] = [
        0x03, 0x04, 0x29, 0xa3, 0x00, 0x00, 0x05, 0x78, 0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40,
        0x00, 0x40, 0x06, 0x0a, 0x11, 0x0a, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x64, 0xa0, 0x28,
        0x00, 0x50, 0x3b, 0xa2, 0xf1, 0xc5,
    ];

    #[test]
    fn parse_echo_request() {
        let p = IcmpV4Packet::new_checked(ping()).unwrap();
        assert_eq!(p.msg_type(), icmp_type::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x8d0b);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq(), 1);
        assert_eq!(p.payload().len(), 56);
        assert!(p.payload()[16..].iter().copied().eq(0x10u8..=0x37));
        assert!(p.verify_checksum());
    }

    #[test]
    fn echo_reply_in_place() {
        let mut buf = [0u8; 64];
        buf.copy_from_slice(ping());
        let mut p = IcmpV4Packet::new_checked(&mut buf[..]).unwrap();
        let before = p.checksum();
        p.set_msg_type(icmp_type::ECHO_REPLY);
        // The type is the high byte of the first word: 0x0800 -> 0x0000.
        let incremental = checksum::update16(before, 0x0800, 0x0000);
        p.fill_checksum();
        assert_eq!(p.checksum(), incremental);
        assert_eq!(p.checksum(), 0x950b);
        assert!(p.verify_checksum());
        assert_eq!(&buf[4..], &ping()[4..]);
        assert_eq!(&buf[..4], &[0x00, 0x00, 0x95, 0x0b]);
    }

    #[test]
    fn build_frag_needed() {
        let mut buf = [0u8; 36];
        buf[8..].copy_from_slice(&super::super::testdata::SYN_FRAME[14..42]);
        let mut p = IcmpV4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_msg_type(icmp_type::DEST_UNREACH);
        p.set_code(icmp_code::FRAG_NEEDED);
        p.set_next_hop_mtu(1400);
        p.fill_checksum();
        assert_eq!(p.next_hop_mtu(), 1400);
        assert_eq!(buf, FRAG_NEEDED);
        let p = IcmpV4Packet::new_checked(&FRAG_NEEDED[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.payload()[0], 0x45);
    }

    #[test]
    fn build_echo_request_matches_capture() {
        let mut buf = [0u8; 64];
        let mut p = IcmpV4Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(icmp_type::ECHO_REQUEST);
        p.set_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq(1);
        p.payload_mut().copy_from_slice(&ping()[8..]);
        p.fill_checksum();
        assert_eq!(p.checksum(), 0x8d0b);
        assert_eq!(p.into_inner(), ping());
    }

    #[test]
    fn every_truncation() {
        for frame in ALL_FRAMES {
            let msg = &frame[L4..];
            for len in 0..=msg.len() {
                match IcmpV4Packet::new_checked(&msg[..len]) {
                    Ok(p) => {
                        assert!(len >= 8);
                        let _ = (p.msg_type(), p.code(), p.echo_ident(), p.next_hop_mtu());
                        assert_eq!(p.payload().len(), len - 8);
                        let _ = p.verify_checksum();
                    }
                    Err(e) => {
                        assert!(len < 8);
                        assert_eq!(e, WireError::Truncated);
                    }
                }
            }
        }
        // A truncated echo request no longer verifies.
        let p = IcmpV4Packet::new_checked(&ping()[..63]).unwrap();
        assert!(!p.verify_checksum());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = IcmpV4Packet::new_checked(&data[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.echo_ident(), p.echo_seq());
                let _ = (p.next_hop_mtu(), p.payload(), p.verify_checksum());
            }
            if let Ok(mut p) = IcmpV4Packet::new_checked(&mut data[..]) {
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
            }
        }

        #[test]
        fn incremental_ident_rewrite_matches_fill(
            data in proptest::collection::vec(any::<u8>(), 8..80),
            ident in any::<u16>(),
        ) {
            let mut data = data;
            data[0] = icmp_type::ECHO_REQUEST;
            let mut p = IcmpV4Packet::new_checked(&mut data[..]).unwrap();
            p.fill_checksum();
            let incremental = checksum::update16(p.checksum(), p.echo_ident(), ident);
            p.set_echo_ident(ident);
            p.fill_checksum();
            prop_assert_eq!(incremental, p.checksum());
        }
    }
}
