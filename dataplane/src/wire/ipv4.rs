//! IPv4 headers (RFC 791).
//!
//! [`Ipv4Packet::check_len`] checks the version too, because the header length and total
//! length only mean something for version 4. [`Ipv4Packet::payload`] ends at the total
//! length, not at the end of the buffer: frames shorter than 60 bytes arrive padded, and the
//! padding must not reach TCP/UDP checksums.

use std::net::Ipv4Addr;

use super::WireError;
use super::checksum;

/// IP protocol numbers the dataplane cares about.
pub mod ip_proto {
    /// Internet Control Message Protocol.
    pub const ICMP: u8 = 1;
    /// IP in IP (the tunnel forwarding mode).
    pub const IPIP: u8 = 4;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
    /// Generic Routing Encapsulation.
    pub const GRE: u8 = 47;
}

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC: Range<usize> = 12..16;
    pub const DST: Range<usize> = 16..20;
    pub const OPTIONS: usize = 20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = field::OPTIONS;

    /// Wraps a buffer without checking it. Fixed fields panic if the buffer is shorter than
    /// 20 bytes; options and payload are clamped to the buffer.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks, in this order: the buffer holds 20 bytes (`Truncated`); version is 4
    /// (`BadVersion`); header length is at least 20 (`BadHeaderLen`); total length is at least
    /// 20 (`BadTotalLen`); total length fits the buffer (`Truncated`; extra bytes after it
    /// are link-layer padding); header length fits the total length (`BadHeaderLen`).
    ///
    /// Afterwards `20 <= header_len <= total_len <= buffer.len()`.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < field::OPTIONS {
            return Err(WireError::Truncated);
        }
        if self.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let header_len = usize::from(self.header_len());
        if header_len < field::OPTIONS {
            return Err(WireError::BadHeaderLen);
        }
        let total_len = usize::from(self.total_len());
        if total_len < field::OPTIONS {
            return Err(WireError::BadTotalLen);
        }
        if total_len > len {
            return Err(WireError::Truncated);
        }
        if header_len > total_len {
            return Err(WireError::BadHeaderLen);
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
    fn read_addr(&self, at: usize) -> Ipv4Addr {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(d[at], d[at + 1], d[at + 2], d[at + 3])
    }

    /// Version field (4 on a checked packet).
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    #[inline(always)]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP/ECN byte (formerly type of service).
    #[inline(always)]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length of header and payload in bytes.
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::LENGTH.start)
    }

    /// Identification.
    #[inline(always)]
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT.start)
    }

    /// Don't-fragment flag.
    #[inline(always)]
    pub fn dont_frag(&self) -> bool {
        self.read_u16(field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline(always)]
    pub fn more_frags(&self) -> bool {
        self.read_u16(field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the 13-bit field times 8).
    #[inline(always)]
    pub fn frag_offset(&self) -> u16 {
        (self.read_u16(field::FLG_OFF.start) & OFFSET_MASK) * 8
    }

    /// True for any fragment, first or not: MF set or a non-zero offset.
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.read_u16(field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload (see [`ip_proto`]).
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// Source address.
    #[inline(always)]
    pub fn src(&self) -> Ipv4Addr {
        self.read_addr(field::SRC.start)
    }

    /// Destination address.
    #[inline(always)]
    pub fn dst(&self) -> Ipv4Addr {
        self.read_addr(field::DST.start)
    }

    /// Header bytes, clamped to the buffer.
    #[inline(always)]
    fn header(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        &d[..usize::from(self.header_len()).min(d.len())]
    }

    /// Options: bytes 20..header_len (empty for a 20-byte header).
    #[inline(always)]
    pub fn options(&self) -> &[u8] {
        self.header().get(field::OPTIONS..).unwrap_or(&[])
    }

    /// Bytes header_len..total_len: the payload without any link-layer padding.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        let (start, end) = payload_range(d.len(), self.header_len(), self.total_len());
        &d[start..end]
    }

    /// True if the header checksum is correct.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header()) == 0
    }
}

/// `header_len..total_len`, clamped so that `start <= end <= len` even on an unchecked view
/// whose setters broke the invariants.
#[inline(always)]
fn payload_range(len: usize, header_len: u8, total_len: u16) -> (usize, usize) {
    let start = usize::from(header_len).min(len);
    let end = usize::from(total_len).clamp(start, len);
    (start, end)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline(always)]
    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version (the high nibble of byte 0).
    #[inline(always)]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes; it is stored divided by 4 (low two bits dropped).
    #[inline(always)]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    #[inline(always)]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length.
    #[inline(always)]
    pub fn set_total_len(&mut self, len: u16) {
        self.write_u16(field::LENGTH.start, len);
    }

    /// Sets the identification.
    #[inline(always)]
    pub fn set_ident(&mut self, ident: u16) {
        self.write_u16(field::IDENT.start, ident);
    }

    /// Sets or clears don't-fragment.
    #[inline(always)]
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on);
    }

    /// Sets or clears more-fragments.
    #[inline(always)]
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on);
    }

    #[inline(always)]
    fn set_flag(&mut self, flag: u16, on: bool) {
        let raw = self.read_u16(field::FLG_OFF.start);
        let raw = if on { raw | flag } else { raw & !flag };
        self.write_u16(field::FLG_OFF.start, raw);
    }

    /// Sets the fragment offset in bytes (stored divided by 8), keeping the flags.
    #[inline(always)]
    pub fn set_frag_offset(&mut self, offset: u16) {
        let raw = self.read_u16(field::FLG_OFF.start);
        self.write_u16(field::FLG_OFF.start, (raw & !OFFSET_MASK) | (offset / 8));
    }

    /// Sets the time to live.
    #[inline(always)]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    #[inline(always)]
    pub fn set_protocol(&mut self, proto: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = proto;
    }

    /// Sets the checksum field as is (see [`fill_checksum`](Self::fill_checksum)).
    #[inline(always)]
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM.start, value);
    }

    /// Sets the source address.
    #[inline(always)]
    pub fn set_src(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline(always)]
    pub fn set_dst(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.octets());
    }

    /// Mutable options, clamped to the buffer.
    #[inline(always)]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = usize::from(self.header_len());
        let d = self.buffer.as_mut();
        let end = header_len.min(d.len());
        d.get_mut(field::OPTIONS..end).unwrap_or(&mut [])
    }

    /// Mutable payload (header_len..total_len, clamped to the buffer).
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (header_len, total_len) = (self.header_len(), self.total_len());
        let d = self.buffer.as_mut();
        let (start, end) = payload_range(d.len(), header_len, total_len);
        &mut d[start..end]
    }

    /// Computes the header checksum and stores it.
    #[inline(always)]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(self.header());
        self.set_checksum(sum);
    }
}

/// The fields of an option-less, unfragmented IPv4 header, for emitting a fresh one (the
/// outer header of the tunnel mode) or reading one as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol (see [`ip_proto`]).
    pub protocol: u8,
    /// Time to live.
    pub ttl: u8,
    /// Payload length in bytes (total length minus the header).
    pub payload_len: u16,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Length of the header [`emit`](Self::emit) writes.
    pub const HEADER_LEN: usize = field::OPTIONS;

    /// Largest `payload_len` that fits the 16-bit total length.
    pub const MAX_PAYLOAD_LEN: u16 = u16::MAX - field::OPTIONS as u16;

    /// Reads a checked packet: `BadChecksum` if the header checksum is wrong, `Fragment` for a
    /// fragment. Options and DSCP/ECN are not represented and are dropped.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Ipv4Repr, WireError> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(WireError::BadChecksum);
        }
        if packet.is_fragment() {
            return Err(WireError::Fragment);
        }
        Ok(Ipv4Repr {
            src: packet.src(),
            dst: packet.dst(),
            protocol: packet.protocol(),
            ttl: packet.ttl(),
            payload_len: packet.total_len() - u16::from(packet.header_len()),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Total length of the packet this header describes.
    #[inline(always)]
    pub fn total_len(&self) -> usize {
        Self::HEADER_LEN + usize::from(self.payload_len)
    }

    /// Writes a 20-byte header (DSCP/ECN 0, offset 0) with its checksum into the start of the
    /// packet's buffer; the payload is the caller's. `Truncated` if the buffer is shorter than
    /// 20 bytes, `BadTotalLen` if `payload_len` exceeds [`MAX_PAYLOAD_LEN`](Self::MAX_PAYLOAD_LEN).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
    ) -> Result<(), WireError> {
        if packet.buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.payload_len > Self::MAX_PAYLOAD_LEN {
            return Err(WireError::BadTotalLen);
        }
        let d = packet.buffer.as_mut();
        d[field::VER_IHL] = 0x45;
        d[field::DSCP_ECN] = 0;
        packet.set_total_len(self.payload_len + Self::HEADER_LEN as u16);
        packet.set_ident(self.ident);
        packet.write_u16(
            field::FLG_OFF.start,
            if self.dont_frag { FLAG_DF } else { 0 },
        );
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src(self.src);
        packet.set_dst(self.dst);
        packet.fill_checksum();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{
        ACK_PADDED_FRAME, ALL_FRAMES, DNS_QUERY_FRAME, IP, L4, PING_FRAME, SYN_FRAME,
    };
    use super::*;
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

    /// IGMPv3 report 10.0.0.2 -> 224.0.0.22 with a Router Alert option (IHL 6), TTL 1,
    /// DSCP CS6, header checksum 0xf9f7.
    const IGMP_WITH_OPTION: [u8; 40] = [
        0x46, 0xc0, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x01, 0x02, 0xf9, 0xf7, 0x0a, 0x00, 0x00,
        0x02, 0xe0, 0x00, 0x00, 0x16, 0x94, 0x04, 0x00, 0x00, 0x22, 0x00, 0xe8, 0xf9, 0x00, 0x00,
        0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0xef, 0x01, 0x02, 0x03,
    ];

    fn syn_ip() -> &'static [u8] {
        &SYN_FRAME[IP..]
    }

    #[test]
    fn parse_syn() {
        let p = Ipv4Packet::new_checked(syn_ip()).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 60);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), ip_proto::TCP);
        assert_eq!(p.checksum(), 0x0a11);
        assert_eq!(p.src(), CLIENT);
        assert_eq!(p.dst(), VIP);
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &SYN_FRAME[L4..]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn parse_ping_and_dns() {
        let p = Ipv4Packet::new_checked(&PING_FRAME[IP..]).unwrap();
        assert_eq!(
            (p.protocol(), p.ident(), p.checksum()),
            (ip_proto::ICMP, 0x5d2a, 0xc919)
        );
        assert_eq!(p.payload().len(), 64);
        assert!(p.verify_checksum());

        let p = Ipv4Packet::new_checked(&DNS_QUERY_FRAME[IP..]).unwrap();
        assert_eq!(p.protocol(), ip_proto::UDP);
        assert_eq!(p.dst(), Ipv4Addr::new(10, 0, 0, 53));
        assert!(!p.dont_frag());
        assert!(!p.is_fragment());
        assert_eq!(p.checksum(), 0xe87c);
        assert!(p.verify_checksum());
    }

    #[test]
    fn payload_excludes_ethernet_padding() {
        let ip = &ACK_PADDED_FRAME[IP..];
        assert_eq!(ip.len(), 46);
        let p = Ipv4Packet::new_checked(ip).unwrap();
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.payload(), &ACK_PADDED_FRAME[L4..L4 + 20]);
        assert!(p.verify_checksum());
    }

    #[test]
    fn parse_options() {
        let p = Ipv4Packet::new_checked(&IGMP_WITH_OPTION[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.dscp_ecn(), 0xc0);
        assert_eq!(p.ttl(), 1);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &IGMP_WITH_OPTION[24..]);
        assert_eq!(p.dst(), Ipv4Addr::new(224, 0, 0, 22));
        assert!(p.verify_checksum());
        let mut copy = IGMP_WITH_OPTION;
        let mut p = Ipv4Packet::new_checked(&mut copy[..]).unwrap();
        p.options_mut()[2] = 1;
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
    }

    #[test]
    fn build_with_setters_matches_capture() {
        let mut buf = [0u8; 60];
        buf[20..].copy_from_slice(&SYN_FRAME[L4..]);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp_ecn(0);
        p.set_total_len(60);
        p.set_ident(0x1c46);
        p.set_dont_frag(true);
        p.set_more_frags(false);
        p.set_frag_offset(0);
        p.set_ttl(64);
        p.set_protocol(ip_proto::TCP);
        p.set_src(CLIENT);
        p.set_dst(VIP);
        p.fill_checksum();
        assert_eq!(p.checksum(), 0x0a11);
        assert_eq!(p.into_inner(), syn_ip());
    }

    #[test]
    fn repr_emit_matches_capture() {
        let repr = Ipv4Repr {
            src: CLIENT,
            dst: VIP,
            protocol: ip_proto::TCP,
            ttl: 64,
            payload_len: 40,
            ident: 0x1c46,
            dont_frag: true,
        };
        assert_eq!(repr.total_len(), 60);
        let mut buf = [0xaau8; 60];
        buf[20..].copy_from_slice(&SYN_FRAME[L4..]);
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p).unwrap();
        assert_eq!(&buf[..], syn_ip());
        assert_eq!(
            Ipv4Repr::parse(&Ipv4Packet::new_checked(syn_ip()).unwrap()),
            Ok(repr)
        );

        let mut short = [0u8; 19];
        assert_eq!(
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut short[..])),
            Err(WireError::Truncated)
        );
        let huge = Ipv4Repr {
            payload_len: Ipv4Repr::MAX_PAYLOAD_LEN + 1,
            ..repr
        };
        assert_eq!(
            huge.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])),
            Err(WireError::BadTotalLen)
        );
    }

    #[test]
    fn repr_parse_rejects() {
        let mut buf = [0u8; 60];
        buf.copy_from_slice(syn_ip());
        buf[11] ^= 1;
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::BadChecksum));

        buf.copy_from_slice(syn_ip());
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_more_frags(true);
        p.fill_checksum();
        assert_eq!(Ipv4Repr::parse(&p), Err(WireError::Fragment));
    }

    #[test]
    fn fragment_flags() {
        let mut buf = [0u8; 60];
        buf.copy_from_slice(syn_ip());
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_more_frags(true);
        assert!(p.is_fragment() && p.more_frags() && p.dont_frag());
        p.set_more_frags(false);
        p.set_frag_offset(1480);
        assert!(p.is_fragment() && !p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(&p.into_inner()[6..8], &[0x40, 0xb9]);
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.set_frag_offset(0);
        p.set_dont_frag(false);
        assert!(!p.is_fragment() && !p.dont_frag());
        assert_eq!(&buf[6..8], &[0, 0]);
    }

    fn check_modified(f: impl Fn(&mut [u8])) -> Result<(), WireError> {
        let mut buf = [0u8; 60];
        buf.copy_from_slice(syn_ip());
        f(&mut buf);
        Ipv4Packet::new_checked(&buf[..]).map(|_| ())
    }

    #[test]
    fn rejects_malformed() {
        // Version 6.
        assert_eq!(check_modified(|b| b[0] = 0x65), Err(WireError::BadVersion));
        // IHL 4 (16 bytes) and 0.
        assert_eq!(
            check_modified(|b| b[0] = 0x44),
            Err(WireError::BadHeaderLen)
        );
        assert_eq!(
            check_modified(|b| b[0] = 0x40),
            Err(WireError::BadHeaderLen)
        );
        // Total length larger than the buffer.
        assert_eq!(check_modified(|b| b[3] = 61), Err(WireError::Truncated));
        assert_eq!(check_modified(|b| b[2] = 0xff), Err(WireError::Truncated));
        // Total length below the minimum header.
        assert_eq!(check_modified(|b| b[3] = 19), Err(WireError::BadTotalLen));
        assert_eq!(check_modified(|b| b[3] = 0), Err(WireError::BadTotalLen));
        // IHL 15 (60 bytes) past a total length of 40.
        assert_eq!(check_modified(|b| b[3] = 40), Ok(()));
        assert_eq!(
            check_modified(|b| (b[0], b[3]) = (0x4f, 40)),
            Err(WireError::BadHeaderLen)
        );
        // IHL 15 with total length 60: the whole packet is header, which is legal.
        let all_header = |b: &mut [u8]| b[0] = 0x4f;
        assert_eq!(check_modified(all_header), Ok(()));
    }

    #[test]
    fn every_truncation_is_truncated() {
        for frame in ALL_FRAMES {
            let ip = &frame[IP..];
            let Ok(full) = Ipv4Packet::new_checked(ip) else {
                continue;
            };
            let total = usize::from(full.total_len());
            for len in 0..=ip.len() {
                match Ipv4Packet::new_checked(&ip[..len]) {
                    Ok(p) => {
                        assert!(len >= total);
                        assert_eq!(p.payload(), full.payload());
                        assert!(p.verify_checksum());
                    }
                    Err(e) => {
                        assert!(len < total);
                        assert_eq!(e, WireError::Truncated);
                    }
                }
            }
        }
    }

    #[test]
    fn unchecked_view_slices_never_panic() {
        // Setters can break the invariants; payload and options stay in bounds.
        let mut buf = [0u8; 24];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_header_len(60);
        p.set_total_len(10);
        assert_eq!(p.options().len(), 4);
        assert!(p.payload().is_empty());
        assert!(p.payload_mut().is_empty());
        assert_eq!(p.options_mut().len(), 4);
        p.set_header_len(8);
        assert!(p.options().is_empty());
        p.set_total_len(1000);
        assert_eq!(p.payload().len(), 16);
    }

    fn touch_all<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) {
        let _ = (
            p.version(),
            p.header_len(),
            p.dscp_ecn(),
            p.total_len(),
            p.ident(),
        );
        let _ = (
            p.dont_frag(),
            p.more_frags(),
            p.frag_offset(),
            p.is_fragment(),
        );
        let _ = (p.ttl(), p.protocol(), p.checksum(), p.src(), p.dst());
        let _ = (p.options(), p.payload(), p.verify_checksum());
        let _ = Ipv4Repr::parse(p);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                touch_all(&p);
            }
        }

        #[test]
        fn plausible_headers_never_panic(
            mut data in proptest::collection::vec(any::<u8>(), 20..100),
            ihl in 0u8..16,
            total in 0u16..110,
        ) {
            data[0] = 0x40 | ihl;
            data[2..4].copy_from_slice(&total.to_be_bytes());
            let accepted = Ipv4Packet::new_checked(&data[..]);
            let ok = ihl >= 5 && total >= 20 && usize::from(total) <= data.len()
                && u16::from(ihl) * 4 <= total;
            prop_assert_eq!(accepted.is_ok(), ok);
            if let Ok(mut p) = Ipv4Packet::new_checked(&mut data[..]) {
                touch_all(&p);
                prop_assert_eq!(p.options().len() + 20 + p.payload().len(), usize::from(total));
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
                let _ = p.payload_mut();
                let _ = p.options_mut();
            }
        }

        #[test]
        fn incremental_address_rewrite_matches_fill(
            src in any::<u32>(), dst in any::<u32>(), new in any::<u32>(),
            ttl in any::<u8>(), proto in any::<u8>(), ident in any::<u16>(), len in 0u16..1500,
            df in any::<bool>(), rewrite_dst in any::<bool>(),
        ) {
            let repr = Ipv4Repr {
                src: Ipv4Addr::from_bits(src),
                dst: Ipv4Addr::from_bits(dst),
                protocol: proto,
                ttl,
                payload_len: len,
                ident,
                dont_frag: df,
            };
            let mut buf = [0u8; 20];
            let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut p).unwrap();
            prop_assert!(p.verify_checksum());
            let old = if rewrite_dst { dst } else { src };
            let incremental = checksum::update32(p.checksum(), old, new);
            if rewrite_dst {
                p.set_dst(Ipv4Addr::from_bits(new));
            } else {
                p.set_src(Ipv4Addr::from_bits(new));
            }
            p.fill_checksum();
            prop_assert_eq!(incremental, p.checksum());
        }
    }
}
