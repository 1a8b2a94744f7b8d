//! UDP datagrams (RFC 768).
//!
//! As with TCP, the view's buffer should be the IPv4 payload. The UDP length field is checked
//! against it and bounds [`UdpPacket::payload`] and the checksum. A checksum field of 0 means
//! "no checksum" over IPv4; a computed checksum of 0 is therefore sent as 0xffff, which
//! [`UdpPacket::fill_checksum`] and [`update_checksum16`]/[`update_checksum32`] take care of.

use std::net::Ipv4Addr;

use super::WireError;
use super::checksum;
use super::ipv4::ip_proto;

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const PAYLOAD: usize = 8;
}

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps a buffer without checking it. Header fields panic if the buffer is shorter than
    /// 8 bytes; the payload is clamped to the buffer.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer cannot hold 8 bytes, `BadTotalLen` if the length field is
    /// below 8, `Truncated` if it exceeds the buffer. Afterwards `8 <= len <= buffer.len()`.
    pub fn check_len(&self) -> Result<(), WireError> {
        let buf_len = self.buffer.as_ref().len();
        if buf_len < field::PAYLOAD {
            return Err(WireError::Truncated);
        }
        let len = usize::from(self.len());
        if len < field::PAYLOAD {
            return Err(WireError::BadTotalLen);
        }
        if len > buf_len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    #[inline(always)]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline(always)]
    fn read_u16(&self, at: usize) -> u16 {
        let d = self.buffer.as_ref();
        u16::from_be_bytes([d[at], d[at + 1]])
    }

    /// Source port.
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT.start)
    }

    /// Length field: header plus payload in bytes.
    #[inline(always)]
    #[allow(clippy::len_without_is_empty)] // a wire field, not a container length
    pub fn len(&self) -> u16 {
        self.read_u16(field::LENGTH.start)
    }

    /// Checksum field (0 = none).
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// The datagram (header and payload) as bounded by the length field and the buffer.
    #[inline(always)]
    fn datagram(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        &d[..usize::from(self.len()).min(d.len())]
    }

    /// Bytes 8..len: the payload without anything after the datagram.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        self.datagram().get(field::PAYLOAD..).unwrap_or(&[])
    }

    /// True if the checksum is absent (0) or correct over the IPv4 pseudo-header and the
    /// datagram.
    #[inline(always)]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || self.compute_sum(src, dst) == 0xffff
    }

    /// Folded, uncomplemented sum of pseudo-header and datagram as it stands.
    #[inline(always)]
    fn compute_sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let pseudo = checksum::pseudo_header_v4(src, dst, ip_proto::UDP, self.len());
        checksum::fold(pseudo + checksum::sum(self.datagram()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline(always)]
    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    #[inline(always)]
    pub fn set_src_port(&mut self, port: u16) {
        self.write_u16(field::SRC_PORT.start, port);
    }

    /// Sets the destination port.
    #[inline(always)]
    pub fn set_dst_port(&mut self, port: u16) {
        self.write_u16(field::DST_PORT.start, port);
    }

    /// Sets the length field.
    #[inline(always)]
    pub fn set_len(&mut self, len: u16) {
        self.write_u16(field::LENGTH.start, len);
    }

    /// Sets the checksum field as is (0 = none; see [`fill_checksum`](Self::fill_checksum)).
    #[inline(always)]
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM.start, value);
    }

    /// Mutable payload (8..len, clamped to the buffer).
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        let d = self.buffer.as_mut();
        let end = len.min(d.len());
        d.get_mut(field::PAYLOAD..end).unwrap_or(&mut [])
    }

    /// Computes the checksum over the IPv4 pseudo-header and the datagram and stores it,
    /// writing a computed 0 as 0xffff.
    #[inline(always)]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let sum = !self.compute_sum(src, dst);
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
}

/// [`checksum::update16`] with UDP's rules: an absent checksum (0) stays absent and a
/// result of 0 is written as 0xffff.
#[inline(always)]
pub fn update_checksum16(csum: u16, old: u16, new: u16) -> u16 {
    if csum == 0 {
        return 0;
    }
    match checksum::update16(csum, old, new) {
        0 => 0xffff,
        c => c,
    }
}

/// [`checksum::update32`] with UDP's rules (see [`update_checksum16`]).
#[inline(always)]
pub fn update_checksum32(csum: u16, old: u32, new: u32) -> u16 {
    if csum == 0 {
        return 0;
    }
    match checksum::update32(csum, old, new) {
        0 => 0xffff,
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::super::ipv4::Ipv4Packet;
    use super::super::testdata::{ALL_FRAMES, DNS_QUERY_FRAME, IP, L4};
    use super::*;
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);

    fn query() -> &'static [u8] {
        &DNS_QUERY_FRAME[L4..]
    }

    #[test]
    fn parse_dns_query() {
        let ip = Ipv4Packet::new_checked(&DNS_QUERY_FRAME[IP..]).unwrap();
        let u = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(u.src_port(), 53000);
        assert_eq!(u.dst_port(), 53);
        assert_eq!(u.len(), 37);
        assert_eq!(u.checksum(), 0xa0f4);
        assert_eq!(u.payload().len(), 29);
        assert_eq!(&u.payload()[..4], &[0xab, 0xcd, 0x01, 0x00]);
        assert_eq!(&u.payload()[12..25], b"\x07example\x03com\x00");
        assert!(u.verify_checksum(CLIENT, DNS));
        assert!(!u.verify_checksum(CLIENT, Ipv4Addr::new(10, 0, 0, 54)));
    }

    #[test]
    fn build_dns_query_with_setters() {
        let mut buf = [0u8; 37];
        buf[8..].copy_from_slice(&query()[8..]);
        let mut u = UdpPacket::new_unchecked(&mut buf[..]);
        u.set_src_port(53000);
        u.set_dst_port(53);
        u.set_len(37);
        u.fill_checksum(CLIENT, DNS);
        assert_eq!(u.checksum(), 0xa0f4);
        assert_eq!(&buf[..], query());
    }

    #[test]
    fn length_field_bounds_payload_and_checksum() {
        // Trailing bytes after the datagram (e.g. a sloppy sender's padding) are ignored.
        let mut buf = [0xeeu8; 45];
        buf[..37].copy_from_slice(query());
        let u = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(u.payload(), &query()[8..]);
        assert!(u.verify_checksum(CLIENT, DNS));
        let mut u = UdpPacket::new_checked(&mut buf[..]).unwrap();
        assert_eq!(u.payload_mut().len(), 29);
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut buf = [0u8; 37];
        buf.copy_from_slice(query());
        buf[6] = 0;
        buf[7] = 0;
        let u = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(u.verify_checksum(CLIENT, DNS));
        assert!(u.verify_checksum(DNS, DNS));
        assert_eq!(update_checksum16(0, 53, 5353), 0);
        assert_eq!(update_checksum32(0, 1, 2), 0);
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Make the datagram's sum come out as negative zero by choosing the last word.
        let mut buf = [0u8; 12];
        let mut u = UdpPacket::new_unchecked(&mut buf[..]);
        u.set_src_port(1234);
        u.set_dst_port(5678);
        u.set_len(12);
        let s = u.compute_sum(CLIENT, DNS);
        u.payload_mut()[2..4].copy_from_slice(&(!s).to_be_bytes());
        u.fill_checksum(CLIENT, DNS);
        assert_eq!(u.checksum(), 0xffff);
        assert!(u.verify_checksum(CLIENT, DNS));
        // The incremental path agrees: change a port and back.
        let c = update_checksum16(0xffff, 5678, 5679);
        assert_eq!(update_checksum16(c, 5679, 5678), 0xffff);
    }

    #[test]
    fn rejects_bad_length() {
        let mut buf = [0u8; 37];
        buf.copy_from_slice(query());
        for (len, expected) in [
            (0u16, Err(WireError::BadTotalLen)),
            (7, Err(WireError::BadTotalLen)),
            (8, Ok(())),
            (37, Ok(())),
            (38, Err(WireError::Truncated)),
            (0xffff, Err(WireError::Truncated)),
        ] {
            buf[4..6].copy_from_slice(&len.to_be_bytes());
            assert_eq!(
                UdpPacket::new_checked(&buf[..]).map(|_| ()),
                expected,
                "len {len}"
            );
        }
    }

    #[test]
    fn every_truncation() {
        for frame in ALL_FRAMES {
            let seg = &frame[L4..];
            for cut in 0..=seg.len() {
                match UdpPacket::new_checked(&seg[..cut]) {
                    Ok(u) => {
                        assert!(usize::from(u.len()) <= cut);
                        let _ = (u.src_port(), u.dst_port(), u.checksum(), u.payload());
                        let _ = u.verify_checksum(CLIENT, DNS);
                    }
                    Err(e) => assert!(matches!(e, WireError::Truncated | WireError::BadTotalLen)),
                }
            }
        }
        for cut in 0..37 {
            assert_eq!(
                UdpPacket::new_checked(&query()[..cut]),
                Err(WireError::Truncated)
            );
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            mut data in proptest::collection::vec(any::<u8>(), 0..64),
            src in any::<u32>(), dst in any::<u32>(),
        ) {
            let (src, dst) = (Ipv4Addr::from_bits(src), Ipv4Addr::from_bits(dst));
            if let Ok(u) = UdpPacket::new_checked(&data[..]) {
                let _ = (u.src_port(), u.dst_port(), u.len(), u.checksum(), u.payload());
                let _ = u.verify_checksum(src, dst);
            }
            if let Ok(mut u) = UdpPacket::new_checked(&mut data[..]) {
                u.fill_checksum(src, dst);
                prop_assert!(u.checksum() != 0);
                prop_assert!(u.verify_checksum(src, dst));
                let _ = u.payload_mut();
            }
        }

        #[test]
        fn plausible_lengths_never_panic(
            mut data in proptest::collection::vec(any::<u8>(), 8..64),
            len in 0u16..80,
        ) {
            data[4..6].copy_from_slice(&len.to_be_bytes());
            let ok = len >= 8 && usize::from(len) <= data.len();
            match UdpPacket::new_checked(&data[..]) {
                Ok(u) => {
                    prop_assert!(ok);
                    prop_assert_eq!(u.payload().len() + 8, usize::from(len));
                }
                Err(_) => prop_assert!(!ok),
            }
        }

        #[test]
        fn incremental_nat_matches_fill(
            mut dgram in proptest::collection::vec(any::<u8>(), 8..64),
            src in any::<u32>(), dst in any::<u32>(),
            new_addr in any::<u32>(), new_port in any::<u16>(),
        ) {
            let len = dgram.len() as u16;
            dgram[4..6].copy_from_slice(&len.to_be_bytes());
            let (src, dst) = (Ipv4Addr::from_bits(src), Ipv4Addr::from_bits(dst));
            let new_dst = Ipv4Addr::from_bits(new_addr);
            let mut u = UdpPacket::new_checked(&mut dgram[..]).unwrap();
            u.fill_checksum(src, dst);
            let c = update_checksum32(u.checksum(), dst.to_bits(), new_addr);
            let c = update_checksum16(c, u.dst_port(), new_port);
            u.set_dst_port(new_port);
            u.set_checksum(c);
            prop_assert!(u.verify_checksum(src, new_dst));
            u.fill_checksum(src, new_dst);
            prop_assert_eq!(u.checksum(), c);
        }
    }
}
