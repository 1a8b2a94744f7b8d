//! Packet-buffer pools (`rte_pktmbuf_pool_create`).

use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::mbuf::{Mbuf, MbufBurst};
use crate::sys;

/// A pool of packet buffers. Freed when dropped; every mbuf taken from it must be returned
/// first (ports stopped, rings drained).
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    name: String,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; the handle is a pointer to
// shared, internally synchronised memory.
unsafe impl Send for Mempool {}
// SAFETY: as above; all operations through &Mempool are thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pktmbuf pool of `n` buffers with a per-lcore cache of `cache` and `data_room`
    /// bytes of buffer (headroom included) on NUMA `socket` (`None` = any).
    pub fn pktmbuf(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: Option<i32>,
    ) -> Result<Mempool> {
        let cname = CString::new(name)
            .map_err(|_| Error::with_errno(format!("mempool name {name:?}"), 22))?;
        let socket = socket.unwrap_or(sys::SOCKET_ID_ANY);
        // SAFETY: cname is a valid C string for the call; DPDK copies the name.
        let raw =
            unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        NonNull::new(raw)
            .map(|raw| Mempool {
                raw,
                name: name.to_owned(),
            })
            .ok_or_else(|| Error::last(format!("rte_pktmbuf_pool_create({name}, {n} mbufs)")))
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// Allocates one mbuf (reset, empty), or `None` when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; a non-null result is a fresh mbuf owned by the caller.
        let m = unsafe { sys::rvs_pktmbuf_alloc(self.as_ptr()) };
        // SAFETY: non-null means a freshly allocated mbuf nobody else owns.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Fills `burst` up to `n` mbufs (reset, empty) in one call; false (burst unchanged) when
    /// the pool cannot supply them all.
    pub fn alloc_bulk<const N: usize>(&self, burst: &mut MbufBurst<N>, n: usize) -> bool {
        let (p, room) = burst.spare_raw();
        let n = n.min(room);
        if n == 0 {
            return true;
        }
        // SAFETY: the pool is valid; p has room for n pointers. On success (0) the n slots hold
        // fresh mbufs the burst now owns; on failure nothing was taken.
        let rc = unsafe { sys::rvs_pktmbuf_alloc_bulk(self.as_ptr(), p, n as u32) };
        if rc != 0 {
            return false;
        }
        // SAFETY: as above, n slots after len were filled with owned mbufs.
        unsafe { burst.commit_filled(n) };
        true
    }

    /// Buffers currently available in the pool (including lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid.
        unsafe { sys::rvs_mempool_avail_count(self.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the owner guarantees no mbuf of this pool is still in use.
        unsafe { sys::rte_mempool_free(self.as_ptr()) }
    }
}
