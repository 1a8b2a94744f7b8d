//! IP tunnelling (`-i`, IPVS's `ip_vs_tunnel_xmit`): IP-in-IP, GRE or GUE per service
//! (ipvsadm's `--tun-type`).
//!
//! The client's packet travels unchanged inside an outer IPv4 header from the director's
//! address on the egress port to the real server: protocol 4 (IP-in-IP), protocol 47 with a
//! 4-byte GRE header (protocol type 0x0800), or UDP to the service's port with a 4-byte GUE
//! header (variant 0, protocol 4; UDP checksum 0, the source port a hash of the inner flow
//! so that the network can spread tunnels); the real server decapsulates,
//! holds the VIP locally and answers the client directly. The outer header copies the inner DF
//! bit. A packet that no longer fits the egress MTU once encapsulated is refused the way the
//! kernel does it: with DF set, an ICMP "fragmentation needed" goes back to the client carrying
//! the MTU that leaves room for the outer header, so its path-MTU discovery shrinks the
//! segments; without DF (which would need fragmenting), it is dropped and counted.

use std::net::Ipv4Addr;

use rvs_config::TunnelKind;

use crate::wire::{
    EthernetFrame, IcmpV4Packet, Ipv4Packet, Ipv4Repr, MacAddr, icmp_code, icmp_type, ip_proto,
};

/// Bytes an encapsulation adds in front of the inner packet.
#[inline]
pub const fn overhead(kind: TunnelKind) -> usize {
    match kind {
        TunnelKind::Ipip => 20,
        TunnelKind::Gre => 20 + 4,
        TunnelKind::Gue => 20 + 8 + 4,
    }
}

/// Writes the outer headers at the start of `ip` (`overhead(kind)` bytes of room, followed by
/// the inner packet of `inner_len` bytes with DF as `dont_frag` and identification `ident`).
/// `tos` is the inner DSCP/ECN byte, copied out; `flow` is a hash of the inner flow (GUE's
/// UDP source port); `port` is GUE's destination.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn write_outer(
    ip: &mut [u8],
    kind: TunnelKind,
    port: u16,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    inner_len: u16,
    ident: u16,
    dont_frag: bool,
    tos: u8,
    flow: u16,
) {
    let extra = overhead(kind) - 20;
    let protocol = match kind {
        TunnelKind::Ipip => ip_proto::IPIP,
        TunnelKind::Gre => ip_proto::GRE,
        TunnelKind::Gue => ip_proto::UDP,
    };
    let repr = Ipv4Repr {
        src,
        dst,
        protocol,
        ttl: 64,
        payload_len: inner_len + extra as u16,
        ident,
        dont_frag,
    };
    // The caller guarantees room, so emit cannot fail; an error would leave the frame as is.
    let _ = repr.emit(&mut Ipv4Packet::new_unchecked(&mut ip[..20]));
    if tos != 0 {
        // The outer header carries the inner DSCP and ECN (RFC 2003 section 3.1).
        let mut outer = Ipv4Packet::new_unchecked(&mut ip[..20]);
        outer.set_dscp_ecn(tos);
        outer.fill_checksum();
    }
    match kind {
        TunnelKind::Ipip => {}
        TunnelKind::Gre => {
            // No checksum, key or sequence; version 0; protocol type IPv4.
            ip[20..24].copy_from_slice(&[0, 0, 0x08, 0x00]);
        }
        TunnelKind::Gue => {
            let udp_len = 8 + 4 + inner_len;
            let sport = 0xc000 | (flow & 0x3fff); // within the ephemeral range
            ip[20..22].copy_from_slice(&sport.to_be_bytes());
            ip[22..24].copy_from_slice(&port.to_be_bytes());
            ip[24..26].copy_from_slice(&udp_len.to_be_bytes());
            ip[26..28].copy_from_slice(&[0, 0]);
            // GUE variant 0: version 0, C 0, hlen 0; protocol 4 (IPv4); no flags.
            ip[28..32].copy_from_slice(&[0, ip_proto::IPIP, 0, 0]);
        }
    }
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
            TunnelKind::Ipip,
            0,
            Ipv4Addr::new(10, 0, 0, 10),
            Ipv4Addr::new(10, 0, 1, 11),
            60,
            9,
            true,
            0,
            0,
        );
        let p = Ipv4Packet::new_unchecked(&ip[..]);
        assert_eq!(p.protocol(), ip_proto::IPIP);
        assert_eq!(p.total_len(), 80);
        assert!(p.dont_frag());
        assert!(p.verify_checksum());
        assert_eq!(p.dst(), Ipv4Addr::new(10, 0, 1, 11));
    }

    #[test]
    fn gre_and_gue_headers() {
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 1, 11));
        let mut ip = [0u8; 24];
        write_outer(&mut ip, TunnelKind::Gre, 0, src, dst, 60, 1, false, 0x8a, 0);
        assert_eq!(
            Ipv4Packet::new_unchecked(&ip[..]).dscp_ecn(),
            0x8a,
            "TOS copied"
        );
        let p = Ipv4Packet::new_unchecked(&ip[..]);
        assert_eq!((p.protocol(), p.total_len()), (ip_proto::GRE, 84));
        assert!(p.verify_checksum());
        assert_eq!(&ip[20..], &[0, 0, 0x08, 0x00]);
        let mut ip = [0u8; 32];
        write_outer(
            &mut ip,
            TunnelKind::Gue,
            6080,
            src,
            dst,
            60,
            1,
            false,
            0,
            0x1234,
        );
        let p = Ipv4Packet::new_unchecked(&ip[..]);
        assert_eq!((p.protocol(), p.total_len()), (ip_proto::UDP, 92));
        assert!(p.verify_checksum());
        assert_eq!(u16::from_be_bytes([ip[20], ip[21]]), 0xc000 | 0x1234);
        assert_eq!(u16::from_be_bytes([ip[22], ip[23]]), 6080);
        assert_eq!(u16::from_be_bytes([ip[24], ip[25]]), 8 + 4 + 60);
        assert_eq!(
            &ip[26..32],
            &[0, 0, 0, 4, 0, 0],
            "no UDP checksum; GUE: IPv4 inside"
        );
        assert_eq!(overhead(TunnelKind::Ipip), 20);
        assert_eq!(overhead(TunnelKind::Gue), 32);
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
