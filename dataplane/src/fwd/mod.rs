//! Forwarding modes: how a packet for a real server (and, for NAT and FullNAT, its reply) is
//! rewritten, one file per mode named as IPVS names them. Each works in place on the frame
//! bytes with incremental checksum updates (RFC 1624) and allocates nothing.

pub mod dr;
pub mod fnat;
pub mod nat;
pub mod tun;

use crate::wire::{EthernetFrame, MacAddr};

/// Sets the frame's Ethernet source and destination.
#[inline]
pub fn set_l2(frame: &mut [u8], src: MacAddr, dst: MacAddr) {
    let mut eth = EthernetFrame::new_unchecked(frame);
    eth.set_dst(dst);
    eth.set_src(src);
}
