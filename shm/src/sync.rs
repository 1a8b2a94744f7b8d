//! The atomic-word abstraction the ring and seqlock protocols are written against, so the very
//! same protocol code runs over `std` atomics in shared memory and over `loom` atomics in the
//! model tests (`RUSTFLAGS="--cfg loom"`).

use std::sync::atomic::Ordering;

/// A 64-bit word of shared memory, accessed only atomically.
pub(crate) trait Word: Sync {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, value: u64, order: Ordering);
    /// A memory fence of the same family as the word.
    fn fence(order: Ordering);
    /// One turn of a bounded wait (a spin hint; a scheduler yield under loom).
    fn spin();
}

impl Word for std::sync::atomic::AtomicU64 {
    #[inline(always)]
    fn load(&self, order: Ordering) -> u64 {
        std::sync::atomic::AtomicU64::load(self, order)
    }

    #[inline(always)]
    fn store(&self, value: u64, order: Ordering) {
        std::sync::atomic::AtomicU64::store(self, value, order);
    }

    #[inline(always)]
    fn fence(order: Ordering) {
        std::sync::atomic::fence(order);
    }

    #[inline(always)]
    fn spin() {
        std::hint::spin_loop();
    }
}

#[cfg(all(test, loom))]
impl Word for loom::sync::atomic::AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        loom::sync::atomic::AtomicU64::load(self, order)
    }

    fn store(&self, value: u64, order: Ordering) {
        loom::sync::atomic::AtomicU64::store(self, value, order);
    }

    fn fence(order: Ordering) {
        loom::sync::atomic::fence(order);
    }

    fn spin() {
        loom::thread::yield_now();
    }
}
