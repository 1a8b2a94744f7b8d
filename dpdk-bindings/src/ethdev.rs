//! Ethernet ports: probing a device (vdev devargs or PCI address), configuring rx/tx queues
//! and RSS, starting and stopping, link status, counters, and the burst functions.
//!
//! A [`Port`] owns the port: dropping it stops and closes the device. Each queue is handed out
//! once, as an [`RxQueue`] or [`TxQueue`] that one lcore polls; DPDK queues are not thread-safe.

use std::ffi::{CStr, CString};
use std::fmt;

use crate::error::{Error, Result, check};
use crate::mbuf::MbufBurst;
use crate::mempool::Mempool;
use crate::sys;
use crate::xdp::{self, XdpSocket, XdpStats};

/// An ethdev port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// A queue index on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// RSS hash-function bits (`RTE_ETH_RSS_*`; function-like macros that bindgen cannot expand).
pub mod rss {
    /// IPv4 header.
    pub const IPV4: u64 = 1 << 2;
    /// Fragmented IPv4.
    pub const FRAG_IPV4: u64 = 1 << 3;
    /// IPv4 + TCP ports.
    pub const NONFRAG_IPV4_TCP: u64 = 1 << 4;
    /// IPv4 + UDP ports.
    pub const NONFRAG_IPV4_UDP: u64 = 1 << 5;
    /// Other IPv4.
    pub const NONFRAG_IPV4_OTHER: u64 = 1 << 7;
    /// IPv6 header.
    pub const IPV6: u64 = 1 << 8;
    /// IPv6 + TCP ports.
    pub const NONFRAG_IPV6_TCP: u64 = 1 << 10;
    /// IPv6 + UDP ports.
    pub const NONFRAG_IPV6_UDP: u64 = 1 << 11;
    /// What RVS asks for: addresses and L4 ports of IPv4 and IPv6.
    pub const WANTED: u64 = IPV4
        | FRAG_IPV4
        | NONFRAG_IPV4_TCP
        | NONFRAG_IPV4_UDP
        | NONFRAG_IPV4_OTHER
        | IPV6
        | NONFRAG_IPV6_TCP
        | NONFRAG_IPV6_UDP;
}

/// Symmetric Toeplitz key: 0x6d5a repeated makes hash(a→b) == hash(b→a), so both directions
/// of a flow land on the same queue (Woo and Park, "Scalable TCP Session Monitoring with
/// Symmetric Receive-side Scaling"). 52 bytes covers NICs with 40- and 52-byte keys.
pub const RSS_SYMMETRIC_KEY: [u8; 52] = {
    let mut k = [0u8; 52];
    let mut i = 0;
    while i < 52 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// What a port is configured with.
#[derive(Debug, Clone)]
pub struct PortConf {
    /// Rx queues (one per worker).
    pub rx_queues: u16,
    /// Tx queues (one per worker).
    pub tx_queues: u16,
    /// Descriptors per rx queue.
    pub rx_desc: u16,
    /// Descriptors per tx queue.
    pub tx_desc: u16,
    /// Spread flows over rx queues with RSS (symmetric key) when there is more than one.
    pub rss: bool,
    /// MTU to set, if any.
    pub mtu: Option<u16>,
    /// Receive every frame, whatever its destination MAC.
    pub promiscuous: bool,
}

impl Default for PortConf {
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: true,
            mtu: None,
            promiscuous: false,
        }
    }
}

/// Device capabilities the dataplane cares about.
#[derive(Debug, Clone)]
pub struct DevInfo {
    /// PMD name, e.g. `net_af_packet`.
    pub driver: String,
    /// Maximum rx queues.
    pub max_rx_queues: u16,
    /// Maximum tx queues.
    pub max_tx_queues: u16,
    /// RSS hash functions the device supports.
    pub rss_offloads: u64,
    /// RSS key size in bytes (0 = no configurable key).
    pub hash_key_size: u8,
    /// RSS redirection table size.
    pub reta_size: u16,
    /// Rx offload capabilities (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offload_capa: u64,
    /// Tx offload capabilities (`RTE_ETH_TX_OFFLOAD_*`).
    pub tx_offload_capa: u64,
    /// MTU range.
    pub min_mtu: u16,
    /// MTU range.
    pub max_mtu: u16,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link up.
    pub up: bool,
    /// Speed in Mbps (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Port counters (`rte_eth_stats_get`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the hardware because rx queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
    /// The kernel's statistics of the port's AF_XDP sockets (`net_af_xdp` ports only; `None`
    /// for other drivers). `rx_ring_full` is what DPDK 22.11 counts nowhere.
    pub xdp: Option<XdpStats>,
}

/// A probed ethdev port. Dropping it stops and closes the device.
#[derive(Debug)]
pub struct Port {
    id: PortId,
    name: String,
    started: bool,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
    /// The kernel interface of a `net_af_xdp` device (its devargs' `iface=`).
    xdp_iface: Option<String>,
    /// The AF_XDP sockets the PMD created while the port's queues were set up.
    xdp_sockets: Vec<XdpSocket>,
}

/// The device name DPDK registers for devargs: the part before the first comma
/// (`net_af_packet0,iface=d0` → `net_af_packet0`; a PCI address stays as it is).
pub fn device_name(devargs: &str) -> &str {
    devargs.split(',').next().unwrap_or(devargs).trim()
}

impl Port {
    /// Attaches the device named by `devargs` (a vdev such as `net_af_packet0,iface=eth1` or a
    /// PCI address) and returns its port. Devices the EAL already probed (PCI devices found at
    /// start-up, `--vdev` arguments) are looked up by name instead.
    pub fn probe(devargs: &str) -> Result<Port> {
        let name = device_name(devargs);
        let with_iface = |mut p: Port| {
            p.xdp_iface = xdp::af_xdp_iface(devargs).map(str::to_owned);
            p
        };
        if let Some(id) = Self::lookup(name) {
            return Ok(with_iface(Self::owned(id, name)));
        }
        let c = CString::new(devargs)
            .map_err(|_| Error::with_errno(format!("devargs {devargs:?}"), 22))?;
        // SAFETY: c is a valid C string for the call.
        let rc = unsafe { sys::rte_dev_probe(c.as_ptr()) };
        if rc < 0 {
            return Err(Error::from_code(format!("rte_dev_probe({devargs})"), rc));
        }
        Self::lookup(name)
            .map(|id| with_iface(Self::owned(id, name)))
            .ok_or_else(|| {
                Error::with_errno(
                    format!("device {name} probed but no ethdev port has that name"),
                    19, /* ENODEV */
                )
            })
    }

    /// Wraps a port created by other means (e.g. `rte_eth_from_rings`).
    pub(crate) fn owned(id: PortId, name: &str) -> Port {
        Port {
            id,
            name: name.to_owned(),
            started: false,
            rx_taken: Vec::new(),
            tx_taken: Vec::new(),
            xdp_iface: None,
            xdp_sockets: Vec::new(),
        }
    }

    /// Creates a port backed by rings (the net_ring PMD): what is enqueued on `rx[q]` is
    /// received on queue q, what is sent on queue q lands in `tx[q]`. For tests and tools.
    pub fn from_rings(
        name: &str,
        rx: &[&crate::Ring<crate::Mbuf>],
        tx: &[&crate::Ring<crate::Mbuf>],
    ) -> Result<Port> {
        let cname =
            CString::new(name).map_err(|_| Error::with_errno(format!("port name {name:?}"), 22))?;
        let rxp: Vec<*mut sys::rte_ring> = rx.iter().map(|r| r.as_raw()).collect();
        let txp: Vec<*mut sys::rte_ring> = tx.iter().map(|r| r.as_raw()).collect();
        // SAFETY: the arrays hold valid ring pointers for the call; the rings must outlive the
        // port, which the caller guarantees by dropping the port first.
        let rc = unsafe {
            sys::rte_eth_from_rings(
                cname.as_ptr(),
                rxp.as_ptr(),
                rxp.len() as u32,
                txp.as_ptr(),
                txp.len() as u32,
                0,
            )
        };
        if rc < 0 {
            return Err(Error::last(format!("rte_eth_from_rings({name})")));
        }
        Ok(Self::owned(PortId(rc as u16), name))
    }

    fn lookup(name: &str) -> Option<PortId> {
        let c = CString::new(name).ok()?;
        let mut id = 0u16;
        // SAFETY: c is valid for the call; id is a valid out pointer.
        let rc = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        (rc == 0).then_some(PortId(id))
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kernel interface of a `net_af_xdp` port (`iface=` of its devargs), if any.
    pub fn xdp_iface(&self) -> Option<&str> {
        self.xdp_iface.as_deref()
    }

    /// The AF_XDP sockets found for this port when it was set up (one per rx queue on a started
    /// `net_af_xdp` port, none otherwise); [`Port::stats`] sums their kernel statistics.
    pub fn xdp_sockets(&self) -> &[XdpSocket] {
        &self.xdp_sockets
    }

    /// The kernel's statistics of the port's AF_XDP sockets; `None` unless this is a started
    /// `net_af_xdp` port whose sockets were found. A system call per socket: not for the hot
    /// path.
    pub fn xdp_stats(&self) -> Option<XdpStats> {
        xdp::sum_stats(&self.xdp_sockets)
    }

    /// Device capabilities.
    pub fn info(&self) -> Result<DevInfo> {
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: info is a valid out pointer for the call.
        let rc = unsafe { sys::rte_eth_dev_info_get(self.id.0, &mut info) };
        check(|| format!("rte_eth_dev_info_get({})", self.name), rc)?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static NUL-terminated string owned by the PMD.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(DevInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            hash_key_size: info.hash_key_size,
            reta_size: info.reta_size,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
        })
    }

    /// Configures queues, RSS and MTU, sets up every queue on `pool`, and starts the port.
    pub fn configure_and_start(&mut self, conf: &PortConf, pool: &Mempool) -> Result<()> {
        let info = self.info()?;
        let name = self.name.clone();
        // The af_xdp PMD creates one AF_XDP socket per rx queue in rte_eth_rx_queue_setup; the
        // sockets that appear until the port runs are this port's (see `xdp`).
        let af_xdp = info.driver.starts_with("net_af_xdp");
        let xsk_before = if af_xdp {
            xdp::xdp_sockets()
        } else {
            Vec::new()
        };
        if conf.rx_queues > info.max_rx_queues || conf.tx_queues > info.max_tx_queues {
            return Err(Error::with_errno(
                format!(
                    "{name} ({}) supports {} rx / {} tx queues, {} / {} wanted",
                    info.driver,
                    info.max_rx_queues,
                    info.max_tx_queues,
                    conf.rx_queues,
                    conf.tx_queues
                ),
                22,
            ));
        }
        let mut key = RSS_SYMMETRIC_KEY;
        let mut eth_conf = sys::rte_eth_conf::default();
        let rss_hf = rss::WANTED & info.rss_offloads;
        if conf.rss && conf.rx_queues > 1 && rss_hf != 0 {
            eth_conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            eth_conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            let key_len = info.hash_key_size as usize;
            if key_len > 0 && key_len <= key.len() {
                eth_conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                eth_conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size;
            }
        }
        // SAFETY: eth_conf (and the key it points to) is valid for the call; DPDK copies it.
        let rc = unsafe {
            sys::rte_eth_dev_configure(self.id.0, conf.rx_queues, conf.tx_queues, &eth_conf)
        };
        check(|| format!("rte_eth_dev_configure({name})"), rc)?;
        if let Some(mtu) = conf.mtu {
            // SAFETY: plain call on a configured port.
            let rc = unsafe { sys::rte_eth_dev_set_mtu(self.id.0, mtu) };
            check(|| format!("rte_eth_dev_set_mtu({name}, {mtu})"), rc)?;
        }
        // SAFETY: plain call on a valid port id.
        let socket = unsafe { sys::rte_eth_dev_socket_id(self.id.0) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..conf.rx_queues {
            // SAFETY: pool outlives the port in the dataplane's ownership order (ports are
            // dropped first); a NULL rxconf means the PMD's defaults.
            let rc = unsafe {
                sys::rte_eth_rx_queue_setup(
                    self.id.0,
                    q,
                    conf.rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(|| format!("rte_eth_rx_queue_setup({name}, queue {q})"), rc)?;
        }
        for q in 0..conf.tx_queues {
            // SAFETY: NULL txconf means the PMD's defaults.
            let rc = unsafe {
                sys::rte_eth_tx_queue_setup(self.id.0, q, conf.tx_desc, socket, std::ptr::null())
            };
            check(|| format!("rte_eth_tx_queue_setup({name}, queue {q})"), rc)?;
        }
        if conf.promiscuous {
            // SAFETY: plain call on a configured port. Not every PMD supports it; failure is
            // harmless for RVS (frames to our MAC still arrive), so it is not fatal.
            let _ = unsafe { sys::rte_eth_promiscuous_enable(self.id.0) };
        }
        // SAFETY: every queue is set up.
        let rc = unsafe { sys::rte_eth_dev_start(self.id.0) };
        check(|| format!("rte_eth_dev_start({name})"), rc)?;
        self.started = true;
        if af_xdp {
            self.xdp_sockets = xdp::new_sockets(&xsk_before, &xdp::xdp_sockets());
        }
        self.rx_taken = vec![false; conf.rx_queues as usize];
        self.tx_taken = vec![false; conf.tx_queues as usize];
        Ok(())
    }

    /// Hands out rx queue `q`, once.
    pub fn rx_queue(&mut self, q: u16) -> Option<RxQueue> {
        let slot = self.rx_taken.get_mut(q as usize)?;
        if std::mem::replace(slot, true) {
            return None;
        }
        Some(RxQueue {
            port: self.id,
            queue: QueueId(q),
        })
    }

    /// Hands out tx queue `q`, once.
    pub fn tx_queue(&mut self, q: u16) -> Option<TxQueue> {
        let slot = self.tx_taken.get_mut(q as usize)?;
        if std::mem::replace(slot, true) {
            return None;
        }
        Some(TxQueue {
            port: self.id,
            queue: QueueId(q),
        })
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut a = sys::rte_ether_addr::default();
        // SAFETY: a is a valid out pointer.
        let rc = unsafe { sys::rte_eth_macaddr_get(self.id.0, &mut a) };
        check(|| format!("rte_eth_macaddr_get({})", self.name), rc)?;
        Ok(a.addr_bytes)
    }

    /// Link status without waiting.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: l is a valid out pointer.
        let rc = unsafe { sys::rte_eth_link_get_nowait(self.id.0, &mut l) };
        check(|| format!("rte_eth_link_get_nowait({})", self.name), rc)?;
        Ok(LinkStatus {
            up: u32::from(l.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        })
    }

    /// Port counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: s is a valid out pointer.
        let rc = unsafe { sys::rte_eth_stats_get(self.id.0, &mut s) };
        check(|| format!("rte_eth_stats_get({})", self.name), rc)?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
            xdp: self.xdp_stats(),
        })
    }

    /// Stops the port (queues stop delivering). Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        if self.started {
            self.started = false;
            // SAFETY: the lcores polling this port have been stopped by the owner.
            let rc = unsafe { sys::rte_eth_dev_stop(self.id.0) };
            check(|| format!("rte_eth_dev_stop({})", self.name), rc)?;
        }
        Ok(())
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        let _ = self.stop();
        // SAFETY: the port is stopped and no queue handle is polled any more (the owner waits
        // for its lcores before dropping ports); closing releases the device.
        unsafe {
            sys::rte_eth_dev_close(self.id.0);
        }
    }
}

/// One rx queue, polled by one lcore.
#[derive(Debug)]
pub struct RxQueue {
    port: PortId,
    queue: QueueId,
}

/// One tx queue, used by one lcore.
#[derive(Debug)]
pub struct TxQueue {
    port: PortId,
    queue: QueueId,
}

impl RxQueue {
    /// The port this queue belongs to.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// Receives into the free room of `burst`; returns how many arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> usize {
        let (p, room) = burst.spare_raw();
        // SAFETY: p has room for `room` mbuf pointers; this handle is the queue's only user
        // (handed out once, &mut self).
        let n = unsafe { sys::rvs_eth_rx_burst(self.port.0, self.queue.0, p, room as u16) };
        // SAFETY: the PMD filled n slots with owned mbufs.
        unsafe { burst.commit_filled(n as usize) };
        n as usize
    }
}

impl TxQueue {
    /// The port this queue belongs to.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// Sends as many mbufs of `burst` as the queue takes (from the front); unsent ones stay in
    /// `burst`. Returns the number sent and their bytes.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut MbufBurst<N>) -> (usize, u64) {
        let lens = burst.pkt_lens();
        let (p, len) = burst.filled_raw();
        // SAFETY: p holds len owned mbufs; the PMD takes ownership of the first n it accepts.
        let n = unsafe { sys::rvs_eth_tx_burst(self.port.0, self.queue.0, p, len as u16) } as usize;
        burst.consume_front(n);
        (n, lens[..n].iter().map(|&l| u64::from(l)).sum())
    }
}
