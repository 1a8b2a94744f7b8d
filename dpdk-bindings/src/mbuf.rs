//! Owned packet buffers.
//!
//! [`Mbuf`] owns one single-segment `rte_mbuf` and frees it on drop; transmitting gives it up.
//! [`MbufBurst`] is a fixed-size array of owned mbufs (never a `Vec`), the unit of rx/tx and of
//! ring transfers. Data access is plain Rust (`buf_addr + data_off`), no FFI per packet.

use std::ptr::{self, NonNull};

use crate::sys;

/// Burst size used throughout RVS.
pub const BURST: usize = 32;

/// An owned packet buffer. `repr(transparent)` over a non-null `rte_mbuf` pointer, so a
/// burst's pointer array can be viewed as `[Mbuf]` ([`MbufBurst::as_mut_slice`]).
#[derive(Debug)]
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an mbuf is a plain buffer owned by exactly one Mbuf value; DPDK mempools are
// thread-safe, so it may be freed on any thread.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf not owned by anything else (freshly allocated or received).
    pub unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Self {
        Self { raw }
    }

    /// Gives up ownership; the caller must free or transmit the mbuf.
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    fn m(&self) -> *mut sys::rte_mbuf {
        self.raw.as_ptr()
    }

    /// Bytes in the (first and only) segment.
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: we own a valid mbuf; reading a plain field through a raw pointer.
        unsafe { ptr::addr_of!((*self.m()).data_len).read() as usize }
    }

    /// True when the packet has no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total packet length over all segments.
    #[inline]
    pub fn pkt_len(&self) -> usize {
        // SAFETY: as in `len`.
        unsafe { ptr::addr_of!((*self.m()).pkt_len).read() as usize }
    }

    /// Number of segments.
    #[inline]
    pub fn segments(&self) -> u16 {
        // SAFETY: as in `len`.
        unsafe { ptr::addr_of!((*self.m()).nb_segs).read() }
    }

    /// Input port as the PMD stamped it.
    #[inline]
    pub fn port(&self) -> u16 {
        // SAFETY: as in `len`.
        unsafe { ptr::addr_of!((*self.m()).port).read() }
    }

    /// Free bytes in front of the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        // SAFETY: as in `len`.
        unsafe { ptr::addr_of!((*self.m()).data_off).read() as usize }
    }

    /// Free bytes after the data in the first segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        // SAFETY: as in `len`.
        let buf_len = unsafe { ptr::addr_of!((*self.m()).buf_len).read() as usize };
        buf_len - self.headroom() - self.len()
    }

    /// The first segment's bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: buf_addr + data_off points at data_len initialised bytes inside the buffer,
        // which this Mbuf owns exclusively for the borrow's lifetime.
        unsafe {
            let base = ptr::addr_of!((*self.m()).buf_addr).read().cast::<u8>();
            std::slice::from_raw_parts(base.add(self.headroom()), self.len())
        }
    }

    /// The first segment's bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; &mut self guarantees exclusive access.
        unsafe {
            let base = ptr::addr_of!((*self.m()).buf_addr).read().cast::<u8>();
            std::slice::from_raw_parts_mut(base.add(self.headroom()), self.len())
        }
    }

    /// Grows the packet at the front by `n` bytes; returns the whole new data, or `None` when
    /// the headroom is too small (nothing changes then).
    pub fn prepend(&mut self, n: u16) -> Option<&mut [u8]> {
        // SAFETY: rte_pktmbuf_prepend checks headroom and returns NULL without change.
        let p = unsafe { sys::rvs_pktmbuf_prepend(self.m(), n) };
        if p.is_null() {
            None
        } else {
            Some(self.data_mut())
        }
    }

    /// Removes `n` bytes from the front; `false` when the packet is shorter.
    pub fn adj(&mut self, n: u16) -> bool {
        // SAFETY: rte_pktmbuf_adj checks the length and returns NULL without change.
        !unsafe { sys::rvs_pktmbuf_adj(self.m(), n) }.is_null()
    }

    /// Grows the packet at the end by `n` bytes; `false` when the tailroom is too small.
    pub fn append(&mut self, n: u16) -> bool {
        // SAFETY: rte_pktmbuf_append checks tailroom and returns NULL without change.
        !unsafe { sys::rvs_pktmbuf_append(self.m(), n) }.is_null()
    }

    /// Removes `n` bytes from the end; `false` when the packet is shorter.
    pub fn trim(&mut self, n: u16) -> bool {
        // SAFETY: rte_pktmbuf_trim checks the length and returns -1 without change.
        unsafe { sys::rvs_pktmbuf_trim(self.m(), n) == 0 }
    }

    /// Sets the length of a single-segment mbuf to `len` bytes in Rust, without a C call (the
    /// per-packet path of a generator); false (unchanged) if it has several segments or `len`
    /// does not fit between the data start and the end of the buffer.
    #[inline]
    pub fn reset_len(&mut self, len: usize) -> bool {
        let m = self.m();
        // SAFETY: we own a valid mbuf; plain field reads through a raw pointer.
        let buf_len = unsafe { ptr::addr_of!((*m).buf_len).read() as usize };
        if self.segments() != 1 || self.headroom() + len > buf_len {
            return false;
        }
        // SAFETY: single segment, and headroom + len stays inside the buffer, so data_len and
        // pkt_len describe bytes the mbuf owns (their contents are the caller's to write).
        unsafe {
            ptr::addr_of_mut!((*m).data_len).write(len as u16);
            ptr::addr_of_mut!((*m).pkt_len).write(len as u32);
        }
        true
    }

    /// Sets the data length of a single-segment mbuf to `len` bytes (growing into the
    /// tailroom or shrinking); `false` if it does not fit.
    pub fn set_len(&mut self, len: usize) -> bool {
        let cur = self.len();
        if len >= cur {
            u16::try_from(len - cur).is_ok_and(|n| self.append(n))
        } else {
            u16::try_from(cur - len).is_ok_and(|n| self.trim(n))
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody else refers to it.
        unsafe { sys::rvs_pktmbuf_free(self.m()) }
    }
}

/// Up to `N` owned mbufs in a fixed array. Remaining mbufs are freed (in bulk) on drop.
#[derive(Debug)]
pub struct MbufBurst<const N: usize = BURST> {
    ptrs: [*mut sys::rte_mbuf; N],
    len: usize,
}

// SAFETY: the burst owns its mbufs exclusively (see Mbuf's Send).
unsafe impl<const N: usize> Send for MbufBurst<N> {}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MbufBurst<N> {
    /// An empty burst.
    pub const fn new() -> Self {
        Self {
            ptrs: [ptr::null_mut(); N],
            len: 0,
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when no more mbufs fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Adds an mbuf; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.ptrs[self.len] = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// The held mbufs, in place (to process a burst before taking it apart).
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: the first len slots hold owned, valid, non-null mbuf pointers, and Mbuf is a
        // repr(transparent) NonNull<rte_mbuf>, which has the layout of *mut rte_mbuf. The
        // slice borrows the burst exclusively, so whatever is swapped in or out through it,
        // each slot still holds exactly one owned mbuf when the borrow ends.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The held mbufs, in place, read-only.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: as in `as_mut_slice`, shared.
        unsafe { std::slice::from_raw_parts(self.ptrs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Takes all mbufs out, in order, leaving the burst empty.
    #[inline]
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let n = std::mem::replace(&mut self.len, 0);
        self.ptrs[..n].iter().map(|&p| {
            // SAFETY: slots below the old len hold owned, valid, non-null mbufs; len was reset,
            // so each is handed out exactly once.
            unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) }
        })
    }

    /// Frees all mbufs.
    pub fn clear(&mut self) {
        if self.len > 0 {
            // SAFETY: the first len slots are owned mbufs; they are freed once and forgotten.
            unsafe { sys::rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// Raw access for rx: the whole array and the free-slot count, to be filled from `len`.
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        // SAFETY: len <= N, so the pointer stays inside the array.
        (
            unsafe { self.ptrs.as_mut_ptr().add(self.len) },
            N - self.len,
        )
    }

    /// Packet lengths of the held mbufs (slots past `len` read 0).
    #[inline]
    pub fn pkt_lens(&self) -> [u32; N] {
        let mut out = [0u32; N];
        for (o, &p) in out.iter_mut().zip(&self.ptrs[..self.len]) {
            // SAFETY: the first len slots are owned, valid mbufs.
            *o = unsafe { ptr::addr_of!((*p).pkt_len).read() };
        }
        out
    }

    /// Raw access for tx: the filled slots.
    pub(crate) fn filled_raw(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        (self.ptrs.as_mut_ptr(), self.len)
    }

    /// Records that `n` more slots (after the current len) were filled by a C call.
    ///
    /// # Safety
    /// The `n` slots after `len` must now hold owned, valid mbufs.
    pub(crate) unsafe fn commit_filled(&mut self, n: usize) {
        debug_assert!(self.len + n <= N);
        self.len += n;
    }

    /// Records that the first `n` slots were consumed by a C call (transmitted/enqueued);
    /// the rest move to the front.
    pub(crate) fn consume_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}
