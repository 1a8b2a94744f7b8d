//! NAT / masquerading (`-m`, IPVS's `ip_vs_nat_xmit` and `handle_response`).
//!
//! Requests: the destination VIP:vport becomes RIP:rport. Replies from the real server (which
//! routes through the director): the source RIP:rport becomes VIP:vport again. Addresses and
//! ports are rewritten in place; the IPv4 header checksum and the TCP/UDP checksum (whose
//! pseudo-header covers the addresses) are updated incrementally. The helpers here are shared
//! with FullNAT, which rewrites both ends.

use std::net::Ipv4Addr;

use crate::wire::{Ipv4Packet, TcpPacket, UdpPacket, checksum, ip_proto, udp};

/// Which end of the packet to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Source address and port.
    Src,
    /// Destination address and port.
    Dst,
}

/// Rewrites one end (address and port) of the IPv4 packet `ip` (from its header to the end of
/// its L4 header at least; checked by the caller) carrying TCP or UDP, updating the IP and L4
/// checksums incrementally.
#[inline]
pub fn rewrite_end(ip: &mut [u8], end: End, addr: Ipv4Addr, port: u16) {
    let mut pkt = Ipv4Packet::new_unchecked(&mut *ip);
    let proto = pkt.protocol();
    let ihl = usize::from(pkt.header_len());
    let old_addr = match end {
        End::Src => pkt.src(),
        End::Dst => pkt.dst(),
    };
    let (old_a, new_a) = (old_addr.to_bits(), addr.to_bits());
    if old_a != new_a {
        match end {
            End::Src => pkt.set_src(addr),
            End::Dst => pkt.set_dst(addr),
        }
        let c = checksum::update32(pkt.checksum(), old_a, new_a);
        pkt.set_checksum(c);
    }
    let l4 = &mut ip[ihl..];
    match proto {
        ip_proto::TCP => {
            let mut t = TcpPacket::new_unchecked(l4);
            let old_port = match end {
                End::Src => t.src_port(),
                End::Dst => t.dst_port(),
            };
            let mut c = checksum::update32(t.checksum(), old_a, new_a);
            c = checksum::update16(c, old_port, port);
            match end {
                End::Src => t.set_src_port(port),
                End::Dst => t.set_dst_port(port),
            }
            t.set_checksum(c);
        }
        ip_proto::UDP => {
            let mut u = UdpPacket::new_unchecked(l4);
            let old_port = match end {
                End::Src => u.src_port(),
                End::Dst => u.dst_port(),
            };
            let mut c = udp::update_checksum32(u.checksum(), old_a, new_a);
            c = udp::update_checksum16(c, old_port, port);
            match end {
                End::Src => u.set_src_port(port),
                End::Dst => u.set_dst_port(port),
            }
            u.set_checksum(c);
        }
        _ => {}
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::{Ipv4Repr, tcp_flag};

    pub(crate) fn tcp_packet(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
        let mut ip = vec![0u8; 20 + 20 + 5];
        Ipv4Repr {
            src,
            dst,
            protocol: ip_proto::TCP,
            ttl: 64,
            payload_len: 25,
            ident: 7,
            dont_frag: true,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut ip[..]))
        .unwrap();
        ip[40..].copy_from_slice(b"hello");
        let mut t = TcpPacket::new_unchecked(&mut ip[20..]);
        t.set_src_port(sport);
        t.set_dst_port(dport);
        t.set_seq(1);
        t.set_header_len(20);
        t.set_flags(tcp_flag::ACK | tcp_flag::PSH);
        t.set_window(1000);
        t.fill_checksum(src, dst);
        ip
    }

    fn udp_packet(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, with_sum: bool) -> Vec<u8> {
        let mut ip = vec![0u8; 20 + 8 + 3];
        Ipv4Repr {
            src,
            dst,
            protocol: ip_proto::UDP,
            ttl: 64,
            payload_len: 11,
            ident: 7,
            dont_frag: false,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut ip[..]))
        .unwrap();
        ip[28..].copy_from_slice(b"abc");
        let mut u = UdpPacket::new_unchecked(&mut ip[20..]);
        u.set_src_port(sport);
        u.set_dst_port(dport);
        u.set_len(11);
        if with_sum {
            u.fill_checksum(src, dst);
        }
        ip
    }

    const C: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const V: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
    const R: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 11);

    #[test]
    fn dnat_then_reverse_snat_gives_valid_checksums_and_the_original_back() {
        let orig = tcp_packet(C, 40000, V, 80);
        let mut p = orig.clone();
        rewrite_end(&mut p, End::Dst, R, 8080);
        let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
        assert_eq!((ip.dst(), ip.src()), (R, C));
        assert!(ip.verify_checksum());
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(t.dst_port(), 8080);
        assert!(t.verify_checksum(C, R));
        rewrite_end(&mut p, End::Dst, V, 80);
        assert_eq!(p, orig, "reverse rewrite restores every byte");
    }

    #[test]
    fn both_ends_for_fullnat_udp_with_and_without_checksum() {
        for with_sum in [true, false] {
            let mut p = udp_packet(C, 5353, V, 53, with_sum);
            rewrite_end(&mut p, End::Src, Ipv4Addr::new(192, 168, 1, 2), 2000);
            rewrite_end(&mut p, End::Dst, R, 53);
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            assert!(ip.verify_checksum());
            let u = UdpPacket::new_checked(ip.payload()).unwrap();
            assert_eq!((u.src_port(), u.dst_port()), (2000, 53));
            if with_sum {
                assert!(u.verify_checksum(Ipv4Addr::new(192, 168, 1, 2), R));
                assert_ne!(u.checksum(), 0);
            } else {
                assert_eq!(u.checksum(), 0, "no checksum stays no checksum");
            }
        }
    }
}
