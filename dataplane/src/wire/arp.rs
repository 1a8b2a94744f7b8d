//! ARP (RFC 826) for Ethernet and IPv4 only.
//!
//! The field layout of an ARP packet depends on its hardware and protocol address lengths, so
//! [`ArpPacket::check_len`] checks the format (hardware type 1, protocol type 0x0800, lengths
//! 6 and 4) as well as the length, and answers `Unsupported` for any other kind of ARP.
//!
//! The dataplane answers requests for its addresses in the receive buffer itself:
//! [`make_reply_in_place`] turns a request frame into the reply and leaves the frame's length
//! (and padding) alone.

use std::net::Ipv4Addr;

use super::WireError;
use super::ethernet::{EthernetFrame, MacAddr, ether_type, mac_at};

/// ARP operation codes.
pub mod arp_op {
    /// Request ("who-has").
    pub const REQUEST: u16 = 1;
    /// Reply ("is-at").
    pub const REPLY: u16 = 2;
}

/// Hardware type for Ethernet.
const HTYPE_ETHERNET: u16 = 1;

mod field {
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// A read/write view of an Ethernet/IPv4 ARP packet (the Ethernet payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = field::TPA.end;

    /// Wraps a buffer without checking it; accessors panic if it is shorter than 28 bytes.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the 8-byte fixed part is missing; `Unsupported` unless the packet is
    /// Ethernet/IPv4 (hardware type 1, protocol type 0x0800, lengths 6 and 4); `Truncated` if
    /// the 28 bytes that format needs are not there. The operation is not checked.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < field::OPER.end {
            return Err(WireError::Truncated);
        }
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != ether_type::IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(WireError::Unsupported);
        }
        if len < Self::LEN {
            return Err(WireError::Truncated);
        }
        Ok(())
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

    #[inline]
    fn read_addr(&self, at: usize) -> Ipv4Addr {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(d[at], d[at + 1], d[at + 2], d[at + 3])
    }

    /// Hardware type (1 for Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        self.read_u16(field::HTYPE.start)
    }

    /// Protocol type (0x0800 for IPv4).
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        self.read_u16(field::PTYPE.start)
    }

    /// Hardware address length (6).
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (4).
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation (see [`arp_op`]).
    #[inline]
    pub fn operation(&self) -> u16 {
        self.read_u16(field::OPER.start)
    }

    /// Sender hardware address.
    #[inline]
    pub fn sender_mac(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), field::SHA.start)
    }

    /// Sender protocol address.
    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        self.read_addr(field::SPA.start)
    }

    /// Target hardware address (zero in a request).
    #[inline]
    pub fn target_mac(&self) -> MacAddr {
        mac_at(self.buffer.as_ref(), field::THA.start)
    }

    /// Target protocol address.
    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        self.read_addr(field::TPA.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    #[inline]
    fn write_u16(&mut self, at: usize, value: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, value: u16) {
        self.write_u16(field::HTYPE.start, value);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, value: u16) {
        self.write_u16(field::PTYPE.start, value);
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    #[inline]
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, value: u16) {
        self.write_u16(field::OPER.start, value);
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_sender_mac(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&mac.0);
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_sender_ip(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_mac(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&mac.0);
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_ip(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
    }
}

/// An Ethernet/IPv4 ARP request or reply as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// [`arp_op::REQUEST`] or [`arp_op::REPLY`].
    pub operation: u16,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Bytes [`emit`](Self::emit) writes.
    pub const BUFFER_LEN: usize = field::TPA.end;

    /// Reads a packet (checking it first); `Unsupported` for operations other than request and
    /// reply.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr, WireError> {
        packet.check_len()?;
        let operation = packet.operation();
        if operation != arp_op::REQUEST && operation != arp_op::REPLY {
            return Err(WireError::Unsupported);
        }
        Ok(ArpRepr {
            operation,
            sender_mac: packet.sender_mac(),
            sender_ip: packet.sender_ip(),
            target_mac: packet.target_mac(),
            target_ip: packet.target_ip(),
        })
    }

    /// Writes the 28-byte packet at the start of the buffer; `Truncated` if it is shorter.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut ArpPacket<T>,
    ) -> Result<(), WireError> {
        if packet.buffer.as_ref().len() < Self::BUFFER_LEN {
            return Err(WireError::Truncated);
        }
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(ether_type::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_sender_mac(self.sender_mac);
        packet.set_sender_ip(self.sender_ip);
        packet.set_target_mac(self.target_mac);
        packet.set_target_ip(self.target_ip);
        Ok(())
    }

    /// Writes an Ethernet header (source `sender_mac`, destination `eth_dst`) and the packet
    /// into `frame`, returning the frame length, 42 (the NIC pads to 60). `Truncated` if the
    /// buffer is shorter than 42 bytes.
    pub fn emit_frame(&self, frame: &mut [u8], eth_dst: MacAddr) -> Result<usize, WireError> {
        let len = EthernetFrame::<&[u8]>::HEADER_LEN + Self::BUFFER_LEN;
        let frame = frame.get_mut(..len).ok_or(WireError::Truncated)?;
        let mut eth = EthernetFrame::new_unchecked(frame);
        eth.set_dst(eth_dst);
        eth.set_src(self.sender_mac);
        eth.set_ethertype(ether_type::ARP);
        self.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()))?;
        Ok(len)
    }
}

/// Writes a broadcast "who-has `target_ip` tell `src_ip`" frame into `buf`; returns the frame
/// length (42) or `Truncated` if `buf` is shorter. With `target_ip == src_ip` this is a
/// gratuitous ARP announcing `src_ip`.
pub fn emit_request(
    buf: &mut [u8],
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    target_ip: Ipv4Addr,
) -> Result<usize, WireError> {
    ArpRepr {
        operation: arp_op::REQUEST,
        sender_mac: src_mac,
        sender_ip: src_ip,
        target_mac: MacAddr::ZERO,
        target_ip,
    }
    .emit_frame(buf, MacAddr::BROADCAST)
}

/// Writes a unicast "`src_ip` is-at `src_mac`" frame to `dst_mac`/`dst_ip` into `buf`;
/// returns the frame length (42) or `Truncated` if `buf` is shorter.
pub fn emit_reply(
    buf: &mut [u8],
    src_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_mac: MacAddr,
    dst_ip: Ipv4Addr,
) -> Result<usize, WireError> {
    ArpRepr {
        operation: arp_op::REPLY,
        sender_mac: src_mac,
        sender_ip: src_ip,
        target_mac: dst_mac,
        target_ip: dst_ip,
    }
    .emit_frame(buf, dst_mac)
}

/// Turns an ARP request frame (Ethernet header included) into the reply from `our_mac`, in
/// place: the operation becomes reply, the requester's addresses move to the target fields,
/// the sender becomes `our_mac` at the requested IP, and the frame goes from `our_mac` to the
/// requester's hardware address (as Linux does, the ARP sender address, not the Ethernet
/// source). The frame's length is unchanged.
///
/// Whether the requested IP is one of ours is the caller's question, asked before this.
/// `Unsupported` if the frame is not ARP or not a request; other errors as
/// [`EthernetFrame::check_len`] and [`ArpPacket::check_len`]. On error the frame is untouched.
pub fn make_reply_in_place(frame: &mut [u8], our_mac: MacAddr) -> Result<(), WireError> {
    let mut eth = EthernetFrame::new_checked(frame)?;
    if eth.ethertype() != ether_type::ARP {
        return Err(WireError::Unsupported);
    }
    let mut arp = ArpPacket::new_checked(eth.payload_mut())?;
    if arp.operation() != arp_op::REQUEST {
        return Err(WireError::Unsupported);
    }
    let requester_mac = arp.sender_mac();
    let requester_ip = arp.sender_ip();
    let wanted_ip = arp.target_ip();
    arp.set_operation(arp_op::REPLY);
    arp.set_sender_mac(our_mac);
    arp.set_sender_ip(wanted_ip);
    arp.set_target_mac(requester_mac);
    arp.set_target_ip(requester_ip);
    eth.set_dst(requester_mac);
    eth.set_src(our_mac);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{ALL_FRAMES, ARP_REPLY_FRAME, ARP_REQUEST_FRAME, SYN_FRAME};
    use super::*;
    use proptest::prelude::*;

    const CLIENT_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const LB_MAC: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);

    fn request() -> &'static [u8] {
        &ARP_REQUEST_FRAME[14..]
    }

    #[test]
    fn parse_request() {
        let a = ArpPacket::new_checked(request()).unwrap();
        assert_eq!(a.hardware_type(), 1);
        assert_eq!(a.protocol_type(), 0x0800);
        assert_eq!(a.hardware_len(), 6);
        assert_eq!(a.protocol_len(), 4);
        assert_eq!(a.operation(), arp_op::REQUEST);
        assert_eq!(a.sender_mac(), CLIENT_MAC);
        assert_eq!(a.sender_ip(), CLIENT);
        assert_eq!(a.target_mac(), MacAddr::ZERO);
        assert_eq!(a.target_ip(), VIP);
        assert_eq!(
            ArpRepr::parse(&a),
            Ok(ArpRepr {
                operation: arp_op::REQUEST,
                sender_mac: CLIENT_MAC,
                sender_ip: CLIENT,
                target_mac: MacAddr::ZERO,
                target_ip: VIP,
            })
        );
    }

    #[test]
    fn reply_in_place_matches_capture() {
        let mut frame = ARP_REQUEST_FRAME;
        make_reply_in_place(&mut frame, LB_MAC).unwrap();
        assert_eq!(frame, ARP_REPLY_FRAME);
        // A reply is not answered again, and is left untouched.
        assert_eq!(
            make_reply_in_place(&mut frame, LB_MAC),
            Err(WireError::Unsupported)
        );
        assert_eq!(frame, ARP_REPLY_FRAME);
    }

    #[test]
    fn reply_in_place_rejects() {
        let mut ip = SYN_FRAME;
        assert_eq!(
            make_reply_in_place(&mut ip, LB_MAC),
            Err(WireError::Unsupported)
        );
        assert_eq!(ip, SYN_FRAME);
        let mut short = ARP_REQUEST_FRAME;
        assert_eq!(
            make_reply_in_place(&mut short[..41], LB_MAC),
            Err(WireError::Truncated)
        );
        assert_eq!(
            make_reply_in_place(&mut short[..10], LB_MAC),
            Err(WireError::Truncated)
        );
        assert_eq!(short, ARP_REQUEST_FRAME);
        let mut ipv6_arp = ARP_REQUEST_FRAME;
        ipv6_arp[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
        assert_eq!(
            make_reply_in_place(&mut ipv6_arp, LB_MAC),
            Err(WireError::Unsupported)
        );
    }

    #[test]
    fn emit_request_matches_capture() {
        let mut buf = [0u8; 60];
        assert_eq!(emit_request(&mut buf, CLIENT_MAC, CLIENT, VIP), Ok(42));
        assert_eq!(buf, ARP_REQUEST_FRAME);
        assert_eq!(
            emit_request(&mut buf[..41], CLIENT_MAC, CLIENT, VIP),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn emit_reply_matches_capture() {
        let mut buf = [0u8; 60];
        assert_eq!(
            emit_reply(&mut buf, LB_MAC, VIP, CLIENT_MAC, CLIENT),
            Ok(42)
        );
        assert_eq!(buf, ARP_REPLY_FRAME);
    }

    #[test]
    fn repr_roundtrip_and_short_emit() {
        let a = ArpPacket::new_checked(&ARP_REPLY_FRAME[14..]).unwrap();
        let repr = ArpRepr::parse(&a).unwrap();
        let mut buf = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..]))
            .unwrap();
        assert_eq!(&buf[..], &ARP_REPLY_FRAME[14..42]);
        let mut short = [0u8; 27];
        assert_eq!(
            repr.emit(&mut ArpPacket::new_unchecked(&mut short[..])),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn rejects_other_formats() {
        let check = |f: &dyn Fn(&mut [u8])| {
            let mut buf = [0u8; 46];
            buf.copy_from_slice(request());
            f(&mut buf);
            ArpPacket::new_checked(&buf[..]).map(|_| ())
        };
        assert_eq!(check(&|_| ()), Ok(()));
        assert_eq!(check(&|b| b[1] = 6), Err(WireError::Unsupported)); // IEEE 802 htype
        assert_eq!(check(&|b| b[2] = 0x86), Err(WireError::Unsupported)); // ptype
        assert_eq!(check(&|b| b[4] = 8), Err(WireError::Unsupported)); // hlen
        assert_eq!(check(&|b| b[5] = 16), Err(WireError::Unsupported)); // plen
        let mut odd_op = [0u8; 46];
        odd_op.copy_from_slice(request());
        odd_op[7] = 3; // RARP request
        let a = ArpPacket::new_checked(&odd_op[..]).unwrap();
        assert_eq!(ArpRepr::parse(&a), Err(WireError::Unsupported));
    }

    #[test]
    fn every_truncation() {
        for len in 0..=request().len() {
            let r = ArpPacket::new_checked(&request()[..len]);
            if len < 28 {
                assert_eq!(r, Err(WireError::Truncated), "len {len}");
            } else {
                assert_eq!(r.unwrap().target_ip(), VIP);
            }
        }
        for frame in ALL_FRAMES {
            for len in 0..=frame.len() {
                let mut copy = [0u8; 128];
                let buf = &mut copy[..len];
                buf.copy_from_slice(&frame[..len]);
                if let Ok(a) = ArpPacket::new_checked(&buf[14.min(len)..]) {
                    let _ = ArpRepr::parse(&a);
                }
                let _ = make_reply_in_place(buf, LB_MAC);
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(mut data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(a) = ArpPacket::new_checked(&data[..]) {
                let _ = (a.operation(), a.sender_mac(), a.sender_ip());
                let _ = (a.target_mac(), a.target_ip(), ArpRepr::parse(&a));
            }
            let _ = make_reply_in_place(&mut data, LB_MAC);
        }

        #[test]
        fn plausible_requests_reply(
            mut data in proptest::collection::vec(any::<u8>(), 42..64),
            sender in any::<[u8; 6]>(),
            spa in any::<u32>(),
            tpa in any::<u32>(),
        ) {
            let mut buf = [0u8; 64];
            let n = emit_request(&mut buf, MacAddr(sender), Ipv4Addr::from_bits(spa),
                Ipv4Addr::from_bits(tpa)).unwrap();
            data[..n].copy_from_slice(&buf[..n]);
            make_reply_in_place(&mut data, LB_MAC).unwrap();
            let eth = EthernetFrame::new_checked(&data[..]).unwrap();
            prop_assert_eq!(eth.dst(), MacAddr(sender));
            prop_assert_eq!(eth.src(), LB_MAC);
            let a = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
            prop_assert_eq!(a, ArpRepr {
                operation: arp_op::REPLY,
                sender_mac: LB_MAC,
                sender_ip: Ipv4Addr::from_bits(tpa),
                target_mac: MacAddr(sender),
                target_ip: Ipv4Addr::from_bits(spa),
            });
        }
    }
}
