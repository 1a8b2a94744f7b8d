//! TCP segments (RFC 9293).
//!
//! The view's buffer is the whole segment and nothing else: pass `Ipv4Packet::payload()`,
//! which ends at the IPv4 total length, so the segment length used by the checksum
//! pseudo-header is the buffer's length. Options are exposed as raw bytes.

use std::net::Ipv4Addr;

use super::WireError;
use super::checksum;
use super::ipv4::ip_proto;

/// TCP flag bits as found in byte 13 of the header ([`TcpPacket::flags`]).
pub mod tcp_flag {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field significant.
    pub const URG: u8 = 0x20;
    /// ECN-Echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const ACK: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
    pub const OPTIONS: usize = 20;
}

/// A read/write view of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = field::OPTIONS;

    /// Wraps a buffer without checking it. Fixed fields panic if the buffer is shorter than
    /// 20 bytes; options and payload are clamped to the buffer.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer cannot hold 20 bytes, `BadHeaderLen` if the data offset is
    /// below 5 words, `Truncated` if the header it declares does not fit the buffer.
    /// Afterwards `20 <= header_len <= buffer.len()`.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < field::OPTIONS {
            return Err(WireError::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < field::OPTIONS {
            return Err(WireError::BadHeaderLen);
        }
        if header_len > len {
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

    #[inline(always)]
    fn read_u32(&self, at: usize) -> u32 {
        let d = self.buffer.as_ref();
        u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
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

    /// Sequence number.
    #[inline(always)]
    pub fn seq(&self) -> u32 {
        self.read_u32(field::SEQ.start)
    }

    /// Acknowledgment number (meaningful when [`ack_flag`](Self::ack_flag) is set).
    #[inline(always)]
    pub fn ack(&self) -> u32 {
        self.read_u32(field::ACK.start)
    }

    /// Header length in bytes (data offset * 4), options included.
    #[inline(always)]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The eight flag bits (see [`tcp_flag`]).
    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// FIN set.
    #[inline(always)]
    pub fn fin(&self) -> bool {
        self.flags() & tcp_flag::FIN != 0
    }

    /// SYN set.
    #[inline(always)]
    pub fn syn(&self) -> bool {
        self.flags() & tcp_flag::SYN != 0
    }

    /// RST set.
    #[inline(always)]
    pub fn rst(&self) -> bool {
        self.flags() & tcp_flag::RST != 0
    }

    /// PSH set.
    #[inline(always)]
    pub fn psh(&self) -> bool {
        self.flags() & tcp_flag::PSH != 0
    }

    /// ACK set (named so as not to clash with the acknowledgment number, [`ack`](Self::ack)).
    #[inline(always)]
    pub fn ack_flag(&self) -> bool {
        self.flags() & tcp_flag::ACK != 0
    }

    /// URG set.
    #[inline(always)]
    pub fn urg(&self) -> bool {
        self.flags() & tcp_flag::URG != 0
    }

    /// Receive window (unscaled).
    #[inline(always)]
    pub fn window(&self) -> u16 {
        self.read_u16(field::WINDOW.start)
    }

    /// Checksum field.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// Urgent pointer.
    #[inline(always)]
    pub fn urgent(&self) -> u16 {
        self.read_u16(field::URGENT.start)
    }

    /// Options: bytes 20..header_len, clamped to the buffer.
    #[inline(always)]
    pub fn options(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        let end = usize::from(self.header_len()).min(d.len());
        d.get(field::OPTIONS..end).unwrap_or(&[])
    }

    /// Bytes after the header, to the end of the buffer.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        let start = usize::from(self.header_len()).min(d.len());
        &d[start..]
    }

    /// True if the checksum over the IPv4 pseudo-header and the whole buffer is correct.
    #[inline(always)]
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let d = self.buffer.as_ref();
        checksum::fold(pseudo_header(src, dst, d.len()) + checksum::sum(d)) == 0xffff
    }
}

/// Pseudo-header partial sum for a segment of `len` bytes. A segment that came out of an IPv4
/// packet is at most 65515 bytes; a longer buffer is not a TCP segment and gets a meaningless
/// (but non-panicking) checksum.
#[inline(always)]
fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> u32 {
    checksum::pseudo_header_v4(src, dst, ip_proto::TCP, len as u16)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline(always)]
    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    #[inline(always)]
    fn write_u32(&mut self, at: usize, value: u32) {
        self.buffer.as_mut()[at..at + 4].copy_from_slice(&value.to_be_bytes());
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

    /// Sets the sequence number.
    #[inline(always)]
    pub fn set_seq(&mut self, value: u32) {
        self.write_u32(field::SEQ.start, value);
    }

    /// Sets the acknowledgment number.
    #[inline(always)]
    pub fn set_ack(&mut self, value: u32) {
        self.write_u32(field::ACK.start, value);
    }

    /// Sets the header length in bytes; stored divided by 4, keeping the reserved bits.
    #[inline(always)]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | ((len / 4) << 4);
    }

    /// Sets all eight flag bits.
    #[inline(always)]
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Sets the window.
    #[inline(always)]
    pub fn set_window(&mut self, value: u16) {
        self.write_u16(field::WINDOW.start, value);
    }

    /// Sets the checksum field as is (see [`fill_checksum`](Self::fill_checksum)).
    #[inline(always)]
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM.start, value);
    }

    /// Sets the urgent pointer.
    #[inline(always)]
    pub fn set_urgent(&mut self, value: u16) {
        self.write_u16(field::URGENT.start, value);
    }

    /// Mutable options, clamped to the buffer.
    #[inline(always)]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = usize::from(self.header_len());
        let d = self.buffer.as_mut();
        let end = header_len.min(d.len());
        d.get_mut(field::OPTIONS..end).unwrap_or(&mut [])
    }

    /// Mutable payload.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = usize::from(self.header_len());
        let d = self.buffer.as_mut();
        let start = header_len.min(d.len());
        &mut d[start..]
    }

    /// Computes the checksum over the IPv4 pseudo-header and the whole buffer and stores it.
    #[inline(always)]
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let sum = !checksum::fold(pseudo_header(src, dst, d.len()) + checksum::sum(d));
        self.set_checksum(sum);
    }
}

#[cfg(test)]
mod tests {
    use super::super::ipv4::Ipv4Packet;
    use super::super::testdata::{ACK_PADDED_FRAME, ALL_FRAMES, IP, L4, SYN_FRAME};
    use super::*;
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

    fn syn() -> &'static [u8] {
        &SYN_FRAME[L4..]
    }

    #[test]
    fn parse_syn() {
        let t = TcpPacket::new_checked(syn()).unwrap();
        assert_eq!(t.src_port(), 41000);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.seq(), 0x3ba2_f1c5);
        assert_eq!(t.ack(), 0);
        assert_eq!(t.header_len(), 40);
        assert_eq!(t.flags(), tcp_flag::SYN);
        assert!(t.syn() && !t.ack_flag() && !t.fin() && !t.rst() && !t.psh() && !t.urg());
        assert_eq!(t.window(), 64240);
        assert_eq!(t.checksum(), 0xb460);
        assert_eq!(t.urgent(), 0);
        assert_eq!(
            t.options(),
            &[
                0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x9a, 0x3b, 0x1c, 0x2d, 0x00, 0x00,
                0x00, 0x00, 0x01, 0x03, 0x03, 0x07
            ]
        );
        assert!(t.payload().is_empty());
        assert!(t.verify_checksum(CLIENT, VIP));
        assert!(!t.verify_checksum(VIP, CLIENT.to_bits().wrapping_add(1).into()));
    }

    #[test]
    fn parse_padded_ack_through_ip_payload() {
        let ip = Ipv4Packet::new_checked(&ACK_PADDED_FRAME[IP..]).unwrap();
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(t.flags(), tcp_flag::ACK);
        assert!(t.ack_flag() && !t.syn());
        assert_eq!(t.seq(), 0x3ba2_f1c6);
        assert_eq!(t.ack(), 0x6b8b_4568);
        assert_eq!(t.window(), 502);
        assert_eq!(t.header_len(), 20);
        assert!(t.options().is_empty());
        assert!(t.payload().is_empty());
        assert!(t.verify_checksum(ip.src(), ip.dst()));
        // Including the Ethernet padding would still verify here only by luck of zeros; a
        // non-zero pad byte shows why the IP payload must be used.
        let mut padded = ACK_PADDED_FRAME;
        padded[59] = 0x01;
        let t = TcpPacket::new_checked(&padded[L4..]).unwrap();
        assert!(!t.verify_checksum(CLIENT, VIP));
    }

    #[test]
    fn build_syn_with_setters() {
        let mut buf = [0u8; 40];
        let mut t = TcpPacket::new_unchecked(&mut buf[..]);
        t.set_src_port(41000);
        t.set_dst_port(80);
        t.set_seq(0x3ba2_f1c5);
        t.set_ack(0);
        t.set_header_len(40);
        t.set_flags(tcp_flag::SYN);
        t.set_window(64240);
        t.set_urgent(0);
        t.options_mut().copy_from_slice(&syn()[20..40]);
        t.fill_checksum(CLIENT, VIP);
        assert_eq!(t.checksum(), 0xb460);
        assert_eq!(&buf[..], syn());
    }

    #[test]
    fn nat_rewrite_incremental() {
        // DNAT the SYN to a real server 192.168.1.10:8080, updating the checksum incrementally.
        let rs = Ipv4Addr::new(192, 168, 1, 10);
        let mut buf = [0u8; 40];
        buf.copy_from_slice(syn());
        let mut t = TcpPacket::new_checked(&mut buf[..]).unwrap();
        let mut c = t.checksum();
        c = checksum::update32(c, VIP.to_bits(), rs.to_bits());
        c = checksum::update16(c, t.dst_port(), 8080);
        t.set_dst_port(8080);
        t.set_checksum(c);
        assert!(t.verify_checksum(CLIENT, rs));
        t.fill_checksum(CLIENT, rs);
        assert_eq!(t.checksum(), c);
    }

    #[test]
    fn payload_and_options_mut() {
        let mut buf = [0u8; 24];
        let mut t = TcpPacket::new_unchecked(&mut buf[..]);
        t.set_header_len(20);
        t.payload_mut().copy_from_slice(b"GET ");
        assert_eq!(t.payload(), b"GET ");
        assert!(t.options_mut().is_empty());
        // Reserved bits survive set_header_len.
        buf[12] = 0x0f;
        let mut t = TcpPacket::new_unchecked(&mut buf[..]);
        t.set_header_len(24);
        assert_eq!(buf[12], 0x6f);
    }

    #[test]
    fn rejects_bad_data_offset() {
        let mut buf = [0u8; 40];
        buf.copy_from_slice(syn());
        for (doff, expected) in [
            (0u8, Err(WireError::BadHeaderLen)),
            (4, Err(WireError::BadHeaderLen)),
            (5, Ok(())),
            (10, Ok(())),
            (11, Err(WireError::Truncated)),
            (15, Err(WireError::Truncated)),
        ] {
            buf[12] = doff << 4;
            assert_eq!(
                TcpPacket::new_checked(&buf[..]).map(|_| ()),
                expected,
                "doff {doff}"
            );
        }
    }

    #[test]
    fn every_truncation() {
        for frame in ALL_FRAMES {
            let seg = &frame[L4..];
            for len in 0..=seg.len() {
                match TcpPacket::new_checked(&seg[..len]) {
                    Ok(t) => {
                        assert!(len >= usize::from(t.header_len()));
                        assert_eq!(t.options().len() + 20 + t.payload().len(), len);
                        let _ = (t.src_port(), t.seq(), t.ack(), t.flags(), t.window());
                        let _ = (t.urgent(), t.checksum(), t.verify_checksum(CLIENT, VIP));
                    }
                    Err(e) => assert!(matches!(e, WireError::Truncated | WireError::BadHeaderLen)),
                }
            }
        }
        for len in 0..40 {
            assert_eq!(
                TcpPacket::new_checked(&syn()[..len]),
                Err(WireError::Truncated)
            );
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            mut data in proptest::collection::vec(any::<u8>(), 0..100),
            src in any::<u32>(), dst in any::<u32>(),
        ) {
            let (src, dst) = (Ipv4Addr::from_bits(src), Ipv4Addr::from_bits(dst));
            if let Ok(t) = TcpPacket::new_checked(&data[..]) {
                let _ = (t.src_port(), t.dst_port(), t.seq(), t.ack(), t.header_len());
                let _ = (t.flags(), t.fin(), t.syn(), t.rst(), t.psh(), t.ack_flag(), t.urg());
                let _ = (t.window(), t.checksum(), t.urgent(), t.options(), t.payload());
                let _ = t.verify_checksum(src, dst);
            }
            if let Ok(mut t) = TcpPacket::new_checked(&mut data[..]) {
                t.fill_checksum(src, dst);
                prop_assert!(t.verify_checksum(src, dst));
                let _ = t.options_mut();
                let _ = t.payload_mut();
            }
        }

        #[test]
        fn incremental_nat_matches_fill(
            mut seg in proptest::collection::vec(any::<u8>(), 20..120),
            src in any::<u32>(), dst in any::<u32>(),
            new_addr in any::<u32>(), new_port in any::<u16>(),
            rewrite_src in any::<bool>(),
        ) {
            seg[12] = 5 << 4;
            let (src, dst) = (Ipv4Addr::from_bits(src), Ipv4Addr::from_bits(dst));
            let mut t = TcpPacket::new_checked(&mut seg[..]).unwrap();
            t.fill_checksum(src, dst);
            let new_ip = Ipv4Addr::from_bits(new_addr);
            let (old_ip, old_port) =
                if rewrite_src { (src, t.src_port()) } else { (dst, t.dst_port()) };
            let c = checksum::update32(t.checksum(), old_ip.to_bits(), new_addr);
            let c = checksum::update16(c, old_port, new_port);
            let (src, dst) = if rewrite_src {
                t.set_src_port(new_port);
                (new_ip, dst)
            } else {
                t.set_dst_port(new_port);
                (src, new_ip)
            };
            t.set_checksum(c);
            prop_assert!(t.verify_checksum(src, dst));
            t.fill_checksum(src, dst);
            prop_assert_eq!(t.checksum(), c);
        }
    }
}
