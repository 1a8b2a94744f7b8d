//! Lock-free rings (`rte_ring`) carrying owned pointer-like items between lcores.
//!
//! A [`Ring<T>`] moves ownership of `T` values (mbufs, boxed messages) from producers to
//! consumers without locks or allocation. The ring is created multi-producer/multi-consumer, so
//! a shared `&Ring<T>` is safe from any thread; items left inside are dropped with the ring.

use std::ffi::{CString, c_void};
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::mbuf::{Mbuf, MbufBurst};
use crate::sys;

/// An owned value that travels through a ring as one pointer.
pub trait RingItem: Send + Sized {
    /// Gives up ownership as a non-null pointer.
    fn into_ptr(self) -> NonNull<c_void>;
    /// Takes back ownership.
    ///
    /// # Safety
    /// `p` must come from `into_ptr` of the same type and be taken back once.
    unsafe fn from_ptr(p: NonNull<c_void>) -> Self;
}

impl RingItem for Mbuf {
    fn into_ptr(self) -> NonNull<c_void> {
        self.into_raw().cast()
    }
    unsafe fn from_ptr(p: NonNull<c_void>) -> Self {
        // SAFETY: forwarded from the caller: p came from Mbuf::into_ptr.
        unsafe { Mbuf::from_raw(p.cast()) }
    }
}

impl<T: Send> RingItem for Box<T> {
    fn into_ptr(self) -> NonNull<c_void> {
        // SAFETY: Box::into_raw never returns null.
        unsafe { NonNull::new_unchecked(Box::into_raw(self).cast()) }
    }
    unsafe fn from_ptr(p: NonNull<c_void>) -> Self {
        // SAFETY: forwarded from the caller: p came from Box::into_raw of a Box<T>.
        unsafe { Box::from_raw(p.as_ptr().cast()) }
    }
}

/// Flags a ring is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RingFlags {
    /// Multi-producer, multi-consumer (the default, safe to share).
    #[default]
    MultiProducerMultiConsumer,
}

/// A bounded lock-free ring of `T`.
#[derive(Debug)]
pub struct Ring<T: RingItem> {
    raw: NonNull<sys::rte_ring>,
    capacity: usize,
    _items: PhantomData<T>,
}

// SAFETY: MP/MC rte_rings are safe to use concurrently from many threads; items are Send.
unsafe impl<T: RingItem> Send for Ring<T> {}
// SAFETY: as above: every operation through &Ring is internally synchronised.
unsafe impl<T: RingItem> Sync for Ring<T> {}

impl<T: RingItem> Ring<T> {
    /// Creates a ring able to hold `count - 1` items (`count` must be a power of two), named
    /// `name` (names are global in the EAL).
    pub fn new(name: &str, count: u32, socket: Option<i32>) -> Result<Self> {
        let cname =
            CString::new(name).map_err(|_| Error::with_errno(format!("ring name {name:?}"), 22))?;
        // SAFETY: cname is valid for the call; DPDK copies the name.
        let raw = unsafe {
            sys::rte_ring_create(
                cname.as_ptr(),
                count,
                socket.unwrap_or(sys::SOCKET_ID_ANY),
                0,
            )
        };
        NonNull::new(raw)
            .map(|raw| Ring {
                raw,
                capacity: count as usize - 1,
                _items: PhantomData,
            })
            .ok_or_else(|| Error::last(format!("rte_ring_create({name}, {count})")))
    }

    /// How many items fit.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Items currently queued.
    pub fn len(&self) -> usize {
        // SAFETY: the ring is valid.
        unsafe { sys::rvs_ring_count(self.raw.as_ptr()) as usize }
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues one item; gives it back when the ring is full.
    pub fn enqueue(&self, item: T) -> std::result::Result<(), T> {
        let p = item.into_ptr();
        let objs = [p.as_ptr()];
        // SAFETY: objs holds one valid pointer; on success the ring owns it.
        let n = unsafe { sys::rvs_ring_enqueue_burst(self.raw.as_ptr(), objs.as_ptr(), 1) };
        if n == 1 {
            Ok(())
        } else {
            // SAFETY: not enqueued, so we still own p, which came from into_ptr.
            Err(unsafe { T::from_ptr(p) })
        }
    }

    /// Takes one item, if any.
    pub fn dequeue(&self) -> Option<T> {
        let mut obj: *mut c_void = std::ptr::null_mut();
        // SAFETY: room for one pointer; a dequeued pointer came from into_ptr of T.
        let n = unsafe { sys::rvs_ring_dequeue_burst(self.raw.as_ptr(), &mut obj, 1) };
        // SAFETY: the ring only ever holds pointers from T::into_ptr, each dequeued once.
        (n == 1).then(|| unsafe { T::from_ptr(NonNull::new_unchecked(obj)) })
    }

    pub(crate) fn as_raw(&self) -> *mut sys::rte_ring {
        self.raw.as_ptr()
    }
}

impl Ring<Mbuf> {
    /// Queues as many mbufs of `burst` as fit (from the front); the rest stay in `burst`.
    /// Returns how many were queued.
    pub fn enqueue_burst<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        let (p, len) = burst.filled_raw();
        // SAFETY: p points at len owned mbuf pointers; the ring takes ownership of the first n.
        let n =
            unsafe { sys::rvs_ring_enqueue_burst(self.as_raw(), p.cast(), len as u32) } as usize;
        burst.consume_front(n);
        n
    }

    /// Moves up to the burst's free room of mbufs from the ring into `burst`.
    pub fn dequeue_burst<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        let (p, room) = burst.spare_raw();
        // SAFETY: p has room for `room` pointers; every dequeued pointer is an owned mbuf.
        let n =
            unsafe { sys::rvs_ring_dequeue_burst(self.as_raw(), p.cast(), room as u32) } as usize;
        // SAFETY: the n slots were just filled with owned mbufs.
        unsafe { burst.commit_filled(n) };
        n
    }
}

impl<T: RingItem> Drop for Ring<T> {
    fn drop(&mut self) {
        while let Some(item) = self.dequeue() {
            drop(item);
        }
        // SAFETY: the ring is empty and no one else holds it (we are dropped).
        unsafe { sys::rte_ring_free(self.raw.as_ptr()) }
    }
}
