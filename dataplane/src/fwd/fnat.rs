//! FullNAT (`-b`, as DPVS): both ends are rewritten, so real servers need no route back to
//! clients and see the director's local address.
//!
//! Requests: CIP:cport → VIP:vport becomes LIP:lport → RIP:rport, with the local address and
//! port taken from the service's pool ([`PortPool`], one per local address per worker; each
//! worker owns the ports `p` with `p % workers == worker`, so replies, addressed to the local
//! port, can be steered to the owning worker by the port's low bits). Replies:
//! RIP:rport → LIP:lport becomes VIP:vport → CIP:cport.

use std::net::Ipv4Addr;

use super::nat::{End, rewrite_end};

/// Lowest local port handed out.
pub const FIRST_PORT: u16 = 1024;

/// Rewrites a request in place (IPv4 packet slice).
#[inline]
pub fn request(ip: &mut [u8], laddr: Ipv4Addr, lport: u16, raddr: Ipv4Addr, rport: u16) {
    rewrite_end(ip, End::Src, laddr, lport);
    rewrite_end(ip, End::Dst, raddr, rport);
}

/// Rewrites a reply in place (IPv4 packet slice).
#[inline]
pub fn reply(ip: &mut [u8], vaddr: Ipv4Addr, vport: u16, caddr: Ipv4Addr, cport: u16) {
    rewrite_end(ip, End::Src, vaddr, vport);
    rewrite_end(ip, End::Dst, caddr, cport);
}

/// The free local ports of one local address on one worker: a preallocated stack.
#[derive(Debug, Clone)]
pub struct PortPool {
    free: Vec<u16>,
    total: usize,
}

impl PortPool {
    /// The ports `FIRST_PORT..=65535` with `port % workers == worker`.
    pub fn new(worker: u16, workers: u16) -> PortPool {
        let workers = workers.max(1);
        let free: Vec<u16> = (FIRST_PORT..=u16::MAX)
            .rev()
            .filter(|p| p % workers == worker % workers)
            .collect();
        PortPool {
            total: free.len(),
            free,
        }
    }

    /// Takes a free port.
    #[inline]
    pub fn take(&mut self) -> Option<u16> {
        self.free.pop()
    }

    /// Returns a port (taken earlier from this pool).
    #[inline]
    pub fn give_back(&mut self, port: u16) {
        debug_assert!(self.free.len() < self.total);
        if self.free.len() < self.total {
            self.free.push(port);
        }
    }

    /// Ports free now.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv4Packet, TcpPacket};

    #[test]
    fn request_then_reply_restores_the_client_view() {
        let c = Ipv4Addr::new(198, 51, 100, 7);
        let v = Ipv4Addr::new(10, 0, 0, 100);
        let l = Ipv4Addr::new(192, 168, 1, 2);
        let r = Ipv4Addr::new(192, 168, 1, 11);
        let orig = super::super::nat::tests::tcp_packet(c, 40000, v, 80);
        let mut p = orig.clone();
        request(&mut p, l, 2048, r, 8080);
        {
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            assert_eq!((ip.src(), ip.dst()), (l, r));
            assert!(ip.verify_checksum());
            let t = TcpPacket::new_checked(ip.payload()).unwrap();
            assert_eq!((t.src_port(), t.dst_port()), (2048, 8080));
            assert!(t.verify_checksum(l, r));
        }
        // The server's reply is the mirror image; after the reply rewrite the client sees
        // VIP:80 → CIP:40000.
        let mut reply_pkt = super::super::nat::tests::tcp_packet(r, 8080, l, 2048);
        reply(&mut reply_pkt, v, 80, c, 40000);
        let ip = Ipv4Packet::new_checked(&reply_pkt[..]).unwrap();
        assert_eq!((ip.src(), ip.dst()), (v, c));
        assert!(ip.verify_checksum());
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (80, 40000));
        assert!(t.verify_checksum(v, c));
    }

    #[test]
    fn pools_slice_ports_between_workers() {
        let mut a = PortPool::new(0, 2);
        let mut b = PortPool::new(1, 2);
        assert_eq!(a.available() + b.available(), 65536 - 1024);
        let (pa, pb) = (a.take().unwrap(), b.take().unwrap());
        assert_eq!((pa % 2, pb % 2), (0, 1));
        assert_eq!(pa, 1024, "lowest first");
        a.give_back(pa);
        assert_eq!(a.take(), Some(1024));
        let mut one = PortPool::new(0, 1);
        let n = one.available();
        for _ in 0..n {
            one.take().unwrap();
        }
        assert_eq!(one.take(), None, "exhausted");
    }
}
