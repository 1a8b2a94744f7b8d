//! IP tunnelling (`-i`, IPVS's `ip_vs_tunnel_xmit`): IP-in-IP.
//!
//! The client's packet travels unchanged inside an outer IPv4 header from the director's
//! address on the egress port to the real server (protocol 4); the real server decapsulates,
//! holds the VIP locally and answers the client directly. The outer header copies the inner DF
//! bit. A packet that no longer fits the egress MTU once encapsulated is refused the way the
//! kernel does it: with DF set, an ICMP "fragmentation needed" goes back to the client carrying
//! the MTU that leaves room for the outer header, so its path-MTU discovery shrinks the
//! segments; without DF (which would need fragmenting), it is dropped and counted.

use std::net::Ipv4Addr;

use crate::wire::{
    EthernetFrame, IcmpV4Packet, Ipv4Packet, Ipv4Repr, MacAddr, icmp_code, icmp_type, ip_proto,
};

/// Bytes the outer header adds.
pub const OVERHEAD: usize = 20;

/// Writes the outer IPv4 header at the start of `ip` (20 bytes of room, followed by the inner
/// packet of `inner_len` bytes with DF as `dont_frag` and identification `ident`).
#[inline]
pub fn write_outer(
    ip: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    inner_len: u16,
    ident: u16,
    dont_frag: bool,
) {
    let repr = Ipv4Repr {
        src,
        dst,
        protocol: ip_proto::IPIP,
        ttl: 64,
        payload_len: inner_len,
        ident,
        dont_frag,
    };
    // The caller guarantees room, so emit cannot fail; an error would leave the frame as is.
    let _ = repr.emit(&mut Ipv4Packet::new_unchecked(&mut ip[..OVERHEAD]));
}

/// Turns `frame` (Ethernet + an IPv4 packet too big for the tunnel) into the ICMP
/// "fragmentation needed" reply to its sender, in place, from `src` with next-hop MTU `mtu`,
/// sent from `port_mac` back to the frame's source MAC. Returns the new frame length (the
/// caller trims to it). The frame must hold the inner IP header and 8 bytes after it.
pub fn frag_needed_in_place(frame: &mut [u8], src: Ipv4Addr, mtu: u16, port_mac: MacAddr) -> usize {
    const ETH: usize = 14;
    let (ihl, client) = {
        let ip = Ipv4Packet::new_unchecked(&frame[ETH..]);
        (usize::from(ip.header_len()), ip.src())
    };
    let quoted = ihl + 8;
    let icmp_len = 8 + quoted;
    // Quote the original header and 8 bytes of its payload after the new headers.
    frame.copy_within(ETH..ETH + quoted, ETH + 20 + 8);
    {
        let mut eth = EthernetFrame::new_unchecked(&mut *frame);
        let peer = eth.src();
        eth.set_dst(peer);
        eth.set_src(port_mac);
    }
    let repr = Ipv4Repr {
        src,
        dst: client,
        protocol: ip_proto::ICMP,
        ttl: 64,
        payload_len: icmp_len as u16,
        ident: 0,
        dont_frag: false,
    };
    let _ = repr.emit(&mut Ipv4Packet::new_unchecked(&mut frame[ETH..ETH + 20]));
    let mut icmp = IcmpV4Packet::new_unchecked(&mut frame[ETH + 20..ETH + 20 + icmp_len]);
    icmp.set_msg_type(icmp_type::DEST_UNREACH);
    icmp.set_code(icmp_code::FRAG_NEEDED);
    icmp.set_echo_ident(0); // the unused 16 bits
    icmp.set_next_hop_mtu(mtu);
    icmp.fill_checksum();
    ETH + 20 + icmp_len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_header_copies_df_and_carries_the_inner_length() {
        let mut ip = [0u8; 20];
        write_outer(
            &mut ip,
            Ipv4Addr::new(10, 0, 0, 10),
            Ipv4Addr::new(10, 0, 1, 11),
            60,
            9,
            true,
        );
        let p = Ipv4Packet::new_unchecked(&ip[..]);
        assert_eq!(p.protocol(), ip_proto::IPIP);
        assert_eq!(p.total_len(), 80);
        assert!(p.dont_frag());
        assert!(p.verify_checksum());
        assert_eq!(p.dst(), Ipv4Addr::new(10, 0, 1, 11));
    }

    #[test]
    fn frag_needed_quotes_the_header_and_8_bytes() {
        let client_mac = MacAddr([2, 0, 0, 0, 0, 2]);
        let mut frame = vec![0u8; 14 + 1500];
        {
            let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
            eth.set_src(client_mac);
            eth.set_dst(MacAddr([2, 0, 0, 0, 0, 10]));
            eth.set_ethertype(0x0800);
        }
        Ipv4Repr {
            src: Ipv4Addr::new(198, 51, 100, 7),
            dst: Ipv4Addr::new(10, 0, 0, 100),
            protocol: ip_proto::TCP,
            ttl: 64,
            payload_len: 1480,
            ident: 5,
            dont_frag: true,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut frame[14..34]))
        .unwrap();
        frame[34..42].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50, 1, 2, 3, 4]);
        let original_head = frame[14..42].to_vec();
        let n = frag_needed_in_place(
            &mut frame,
            Ipv4Addr::new(10, 0, 0, 100),
            1480,
            MacAddr([2, 0, 0, 0, 0, 10]),
        );
        frame.truncate(n);
        assert_eq!(n, 14 + 20 + 8 + 28);
        assert_eq!(&frame[0..6], &client_mac.0);
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst(), Ipv4Addr::new(198, 51, 100, 7));
        let icmp = IcmpV4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(
            (icmp.msg_type(), icmp.code(), icmp.next_hop_mtu()),
            (3, 4, 1480)
        );
        assert_eq!(&icmp.payload()[..28], &original_head[..]);
    }
}
