//! The parts of the dataplane that touch DPDK: booting the EAL and ports from the profile
//! ([`boot`]) and the lcore loops ([`lcore`]). Everything here uses the safe layer of the
//! `dpdk` crate; the packet logic itself lives in [`crate::pipeline`].

pub mod boot;
pub mod lcore;

impl crate::pipeline::PacketBuf for dpdk::Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        dpdk::Mbuf::data(self)
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        dpdk::Mbuf::data_mut(self)
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        u16::try_from(n).is_ok_and(|n| dpdk::Mbuf::prepend(self, n).is_some())
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        dpdk::Mbuf::set_len(self, len)
    }
}
