//! Direct routing (`-g`, IPVS's `ip_vs_dr_xmit`).
//!
//! Only layer 2 changes: the frame goes to the real server's MAC from the egress port's MAC.
//! IP and L4 headers (and so every checksum) stay as the client sent them; the real server holds
//! the VIP on a non-ARP interface and answers the client directly.

use crate::wire::MacAddr;

/// Rewrites `frame` (at least an Ethernet header, checked by the caller) for DR.
#[inline]
pub fn rewrite(frame: &mut [u8], port_mac: MacAddr, server_mac: MacAddr) {
    super::set_l2(frame, port_mac, server_mac);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_macs_change() {
        let mut frame = [0xabu8; 60];
        frame[12] = 0x08;
        frame[13] = 0x00;
        let before = frame;
        rewrite(
            &mut frame,
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 9]),
        );
        assert_eq!(&frame[0..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(&frame[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&frame[12..], &before[12..]);
    }
}
