//! The kernel's statistics of this process's AF_XDP sockets (`struct xdp_statistics`,
//! `getsockopt(SOL_XDP, XDP_STATISTICS)`).
//!
//! DPDK 22.11's `net_af_xdp` PMD adds only the socket's `rx_dropped` to `imissed`. A frame the
//! XDP program redirects while the socket's rx ring is full is dropped by the kernel and
//! counted in `rx_ring_full`, which no DPDK counter shows; this module reads it.
//!
//! Which sockets belong to a port: AF_XDP sockets have no `getsockname` (the kernel's
//! `xsk_proto_ops` use `sock_no_getname`: `EOPNOTSUPP`), and the socket-diag interface that
//! would tell their interface (`CONFIG_XDP_SOCKETS_DIAG`) is not in every kernel. So a port
//! keeps the AF_XDP sockets that appeared while its queues were set up ([`xdp_sockets`] before
//! and after; the PMD creates one socket per rx queue in `rte_eth_rx_queue_setup`), each as its
//! descriptor and socket inode, and [`sum_stats`] checks the inode again before asking, so a
//! descriptor number reused for another socket is never read as the port's. This assumes that
//! nothing else in the process creates AF_XDP sockets while a port is being set up (RVS sets
//! its ports up one after the other on the main thread, before any worker runs).

use std::collections::HashSet;
use std::os::fd::RawFd;

/// `SO_DOMAIN` (asm-generic/socket.h; the same value on x86_64 and aarch64). The `libc` crate
/// defines it for Android but not for Linux/glibc.
const SO_DOMAIN: libc::c_int = 39;

/// The fields of `struct xdp_statistics` (linux/if_xdp.h), in order.
const XDP_STATS_FIELDS: usize = 6;

/// `struct xdp_statistics` summed over a port's AF_XDP sockets.
///
/// Kernels before 5.9 return only the first three fields (`struct xdp_statistics_v1`); the
/// other three then stay 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Frames dropped for other reasons than a full rx ring, mostly no free buffer on the fill
    /// ring (DPDK 22.11 adds this one to `imissed`).
    pub rx_dropped: u64,
    /// Invalid descriptors the application put on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors the application put on the tx ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the socket's rx ring was full: the application did not drain it
    /// fast enough (or it is too small for the bursts it gets). Not in any DPDK 22.11 counter.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty (no buffer to receive into).
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the tx ring empty when asked to send.
    pub tx_ring_empty_descs: u64,
    /// How many sockets answered (the sum is over these).
    pub sockets: u32,
}

impl XdpStats {
    /// One socket's statistics from the raw `struct xdp_statistics` the kernel wrote, of which
    /// only the first `len` bytes (its `optlen`) are valid: whole fields within `len` are taken,
    /// the rest stay 0. `None` when `len` does not cover even the oldest layout (3 fields).
    pub fn from_raw(raw: &[u64; XDP_STATS_FIELDS], len: usize) -> Option<XdpStats> {
        let n = (len / std::mem::size_of::<u64>()).min(XDP_STATS_FIELDS);
        if n < 3 {
            return None;
        }
        let f = |i: usize| if i < n { raw[i] } else { 0 };
        Some(XdpStats {
            rx_dropped: f(0),
            rx_invalid_descs: f(1),
            tx_invalid_descs: f(2),
            rx_ring_full: f(3),
            rx_fill_ring_empty_descs: f(4),
            tx_ring_empty_descs: f(5),
            sockets: 1,
        })
    }

    /// Adds `other` field by field.
    pub fn add(&mut self, other: &XdpStats) {
        self.rx_dropped += other.rx_dropped;
        self.rx_invalid_descs += other.rx_invalid_descs;
        self.tx_invalid_descs += other.tx_invalid_descs;
        self.rx_ring_full += other.rx_ring_full;
        self.rx_fill_ring_empty_descs += other.rx_fill_ring_empty_descs;
        self.tx_ring_empty_descs += other.tx_ring_empty_descs;
        self.sockets += other.sockets;
    }
}

/// One AF_XDP socket of this process: its descriptor and the inode of the socket behind it
/// (`socket:[INODE]` in `/proc/self/fd`), which tells a reused descriptor number apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XdpSocket {
    /// The descriptor.
    pub fd: RawFd,
    /// The socket's inode.
    pub inode: u64,
}

/// The socket inode behind descriptor `fd` of this process, if it is a socket.
fn socket_inode(fd: RawFd) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    link.to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The address family of socket `fd` (`SO_DOMAIN`).
fn socket_domain(fd: RawFd) -> Option<libc::c_int> {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: domain and len are valid for writes of the sizes given; the kernel writes at most
    // len bytes. A descriptor closed meanwhile only makes the call fail (EBADF).
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize == std::mem::size_of::<libc::c_int>()).then_some(domain)
}

/// Every AF_XDP socket this process holds: the `socket:` entries of `/proc/self/fd` whose
/// family is `AF_XDP`. Empty when `/proc` cannot be read.
pub fn xdp_sockets() -> Vec<XdpSocket> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut out: Vec<XdpSocket> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
        .filter_map(|fd| {
            let inode = socket_inode(fd)?;
            (socket_domain(fd)? == libc::AF_XDP).then_some(XdpSocket { fd, inode })
        })
        .collect();
    out.sort_by_key(|s| s.fd);
    out
}

/// The sockets of `after` that are not in `before`: those created in between.
pub fn new_sockets(before: &[XdpSocket], after: &[XdpSocket]) -> Vec<XdpSocket> {
    let old: HashSet<&XdpSocket> = before.iter().collect();
    after.iter().filter(|s| !old.contains(s)).copied().collect()
}

/// The statistics of one socket; `None` when its descriptor no longer refers to that socket
/// (closed, or reused: the inode differs) or the kernel refuses the request.
pub fn socket_stats(s: XdpSocket) -> Option<XdpStats> {
    if socket_inode(s.fd) != Some(s.inode) {
        return None;
    }
    let mut raw = [0u64; XDP_STATS_FIELDS];
    let mut len = std::mem::size_of_val(&raw) as libc::socklen_t;
    // SAFETY: raw and len are valid for writes of the sizes given; the kernel writes at most
    // len bytes and sets len to what it wrote (24 bytes on kernels before 5.9, 48 after).
    let rc = unsafe {
        libc::getsockopt(
            s.fd,
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            raw.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    XdpStats::from_raw(&raw, len as usize)
}

/// The statistics of `sockets` summed; `None` when none of them answers (no socket at all,
/// or all closed).
pub fn sum_stats(sockets: &[XdpSocket]) -> Option<XdpStats> {
    let mut sum: Option<XdpStats> = None;
    for s in sockets.iter().filter_map(|s| socket_stats(*s)) {
        sum.get_or_insert_with(XdpStats::default).add(&s);
    }
    sum
}

/// Whether `devargs` names an AF_XDP device (`net_af_xdp0,iface=eth1`).
pub fn is_af_xdp(devargs: &str) -> bool {
    crate::ethdev::device_name(devargs).starts_with("net_af_xdp")
}

/// The kernel interface of an AF_XDP device's devargs: the value of `iface=` in
/// `net_af_xdp0,iface=eth1,start_queue=0`. `None` for other devices or without `iface=`.
pub fn af_xdp_iface(devargs: &str) -> Option<&str> {
    if !is_af_xdp(devargs) {
        return None;
    }
    devargs
        .split(',')
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == "iface")
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Buffers the `net_af_xdp` PMD of DPDK 22.11 takes from the mempool for each rx queue when
/// it is set up, whatever the ring size (`XSK_RING_CONS__DEFAULT_NUM_DESCS`, put on the fill
/// ring). The kernel receives only into these, so an rx ring larger than this cannot fill up:
/// the fill ring runs empty first (counted in `rx_dropped`, hence in `imissed`).
pub const AF_XDP_FILL_BUFFERS: u16 = 2048;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_from_devargs() {
        assert_eq!(af_xdp_iface("net_af_xdp0,iface=d0"), Some("d0"));
        assert_eq!(
            af_xdp_iface("net_af_xdp1,start_queue=0, iface = veth-x1 ,queue_count=2"),
            Some("veth-x1")
        );
        assert_eq!(
            af_xdp_iface("net_af_xdp0,iface=eth1,busy_budget=0"),
            Some("eth1")
        );
        assert_eq!(af_xdp_iface("net_af_xdp0"), None);
        assert_eq!(af_xdp_iface("net_af_xdp0,iface="), None);
        assert_eq!(af_xdp_iface("net_af_xdp0,xdp_prog=/p.o"), None);
        assert_eq!(af_xdp_iface("net_af_packet0,iface=d0"), None);
        assert_eq!(af_xdp_iface("0000:3b:00.1"), None);
        assert_eq!(af_xdp_iface("net_null0"), None);
        assert!(is_af_xdp(" net_af_xdp3,iface=x"));
        assert!(!is_af_xdp("net_af_packet0,iface=net_af_xdp"));
    }

    #[test]
    fn stats_from_raw_honour_optlen() {
        let raw = [1, 2, 3, 4, 5, 6];
        let full = XdpStats::from_raw(&raw, 48).unwrap();
        assert_eq!(
            full,
            XdpStats {
                rx_dropped: 1,
                rx_invalid_descs: 2,
                tx_invalid_descs: 3,
                rx_ring_full: 4,
                rx_fill_ring_empty_descs: 5,
                tx_ring_empty_descs: 6,
                sockets: 1,
            }
        );
        // struct xdp_statistics_v1 (kernels before 5.9): the newer fields stay 0.
        let v1 = XdpStats::from_raw(&raw, 24).unwrap();
        assert_eq!((v1.tx_invalid_descs, v1.rx_ring_full), (3, 0));
        assert_eq!(
            XdpStats::from_raw(&raw, 40)
                .unwrap()
                .rx_fill_ring_empty_descs,
            5
        );
        assert_eq!(XdpStats::from_raw(&raw, 40).unwrap().tx_ring_empty_descs, 0);
        assert_eq!(XdpStats::from_raw(&raw, 16), None);
        assert_eq!(XdpStats::from_raw(&raw, 4096), Some(full));
        let mut sum = full;
        sum.add(&v1);
        assert_eq!((sum.rx_dropped, sum.rx_ring_full, sum.sockets), (2, 4, 2));
    }

    /// A real AF_XDP socket (unbound: the kernel keeps statistics from creation) is found in
    /// /proc/self/fd, answers with zeros, and is no longer read once closed, even when its
    /// descriptor number is reused by another socket. Needs CAP_NET_RAW (root).
    #[test]
    fn finds_and_reads_a_real_af_xdp_socket() {
        let before = xdp_sockets();
        // SAFETY: plain syscall; the descriptor is closed below.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(
            fd >= 0,
            "socket(AF_XDP): {} (the test needs root / CAP_NET_RAW)",
            std::io::Error::last_os_error()
        );
        let after = xdp_sockets();
        let new = new_sockets(&before, &after);
        assert_eq!(new.len(), 1, "{before:?} → {after:?}");
        assert_eq!(new[0].fd, fd);
        let s = socket_stats(new[0]).expect("stats of a fresh socket");
        assert_eq!(
            s,
            XdpStats {
                sockets: 1,
                ..XdpStats::default()
            }
        );
        assert_eq!(sum_stats(&new), Some(s));
        assert_eq!(sum_stats(&[]), None);

        // SAFETY: fd is ours and closed once.
        unsafe { libc::close(fd) };
        assert_eq!(socket_stats(new[0]), None, "closed");
        // Reuse the number for a UDP socket: same fd, another inode, not an AF_XDP socket.
        // SAFETY: plain syscall; the descriptor is closed below.
        let udp = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        assert!(udp >= 0);
        if udp == fd {
            assert_eq!(socket_stats(new[0]), None, "reused descriptor");
        }
        assert!(!xdp_sockets().iter().any(|s| s.fd == udp));
        // SAFETY: udp is ours and closed once.
        unsafe { libc::close(udp) };
    }
}
