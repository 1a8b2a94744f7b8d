//! Memory for the big per-worker tables (connection slab, tuple index, timer links).
//!
//! At 100k+ connections every table lookup is a cache miss, and on 4 KiB pages also a TLB
//! miss, which under a hypervisor (two-dimensional page walk) costs more than the miss itself.
//! [`HugeSlice`] maps a large array with anonymous `mmap`, aligned to 2 MiB and advised
//! `MADV_HUGEPAGE`, so transparent huge pages back it when the kernel's THP mode is `always` or
//! `madvise` (Debian's default); smaller arrays, and any mapping failure, fall back to the heap.
//! Every element is written once at construction, so the pages are faulted in at boot and never
//! on the packet path. [`prefetch`] is the `PREFETCHT0` hint the burst pipeline issues ahead of
//! its lookups.
//!
//! This crate, like `dpdk-bindings` and `rvs-shm`, is an I/O layer: the one place the pure
//! modules' tables get their `unsafe` from, behind a safe interface. It needs no EAL, so unit
//! tests use it as the dataplane does.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Size of a transparent huge page on x86-64 (and the alignment given to mapped arrays).
pub const HUGE_PAGE: usize = 2 << 20;

/// Arrays smaller than this stay on the heap (a huge page would mostly be waste).
pub const MIN_MAPPED: usize = HUGE_PAGE;

/// A fixed-length array of `T`, on huge pages when large (see the crate documentation).
/// `T: Copy`, so no element needs dropping.
pub struct HugeSlice<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    /// Bytes mapped at `ptr` (0: the array is a leaked heap box, reclaimed on drop).
    mapped: usize,
}

// SAFETY: a HugeSlice owns its elements exclusively, like a Box<[T]>.
unsafe impl<T: Copy + Send> Send for HugeSlice<T> {}
// SAFETY: shared access only hands out &[T], like a Box<[T]>.
unsafe impl<T: Copy + Sync> Sync for HugeSlice<T> {}

impl<T: Copy> HugeSlice<T> {
    /// `len` copies of `init`.
    pub fn new(len: usize, init: T) -> Self {
        let bytes = len
            .checked_mul(size_of::<T>())
            .expect("array size overflows");
        if bytes >= MIN_MAPPED
            && align_of::<T>() <= HUGE_PAGE
            && let Some(ptr) = map_huge(bytes)
        {
            let ptr = ptr.cast::<T>();
            for i in 0..len {
                // SAFETY: the mapping holds `bytes` >= len * size_of::<T>() writable bytes at a
                // 2 MiB-aligned address (so aligned for T), and `i < len`.
                unsafe { ptr.as_ptr().add(i).write(init) };
            }
            return HugeSlice {
                ptr,
                len,
                mapped: round_up(bytes, PAGE),
            };
        }
        Self::heap(len, init)
    }

    /// `len` copies of `init` on the heap, whatever the size.
    pub fn heap(len: usize, init: T) -> Self {
        let b: Box<[T]> = vec![init; len].into_boxed_slice();
        let len = b.len();
        // Box::into_raw never returns null (a dangling, aligned pointer when empty).
        let ptr = NonNull::new(Box::into_raw(b).cast::<T>()).expect("box pointer");
        HugeSlice {
            ptr,
            len,
            mapped: 0,
        }
    }

    /// Whether the array lives in its own huge-page-advised mapping (not on the heap).
    pub fn is_mapped(&self) -> bool {
        self.mapped != 0
    }

    /// Bytes the array occupies (the mapping, rounded to whole pages, when mapped).
    pub fn footprint(&self) -> usize {
        if self.mapped != 0 {
            self.mapped
        } else {
            self.len * size_of::<T>()
        }
    }
}

impl<T: Copy> Deref for HugeSlice<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialised, aligned elements owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> DerefMut for HugeSlice<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        if self.mapped != 0 {
            // SAFETY: `ptr`/`mapped` is exactly the mapping `map_huge` left in place, unmapped
            // once here; T: Copy, so no element has drop glue.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped) };
        } else {
            let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
            // SAFETY: `ptr`/`len` came from Box::into_raw of a Box<[T]> of this length.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

impl<T: Copy> fmt::Debug for HugeSlice<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HugeSlice")
            .field("len", &self.len)
            .field("elem_bytes", &size_of::<T>())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

/// The base page size the mapping's length is rounded to.
const PAGE: usize = 4096;

fn round_up(bytes: usize, to: usize) -> usize {
    bytes.div_ceil(to) * to
}

/// Maps `bytes` (rounded up to whole 4 KiB pages) of zeroed private memory at a 2 MiB-aligned
/// address and advises huge pages for it (every whole 2 MiB of it can be a huge page; the tail
/// stays on small pages rather than wasting most of a huge one); `None` if the kernel refuses
/// the mapping.
fn map_huge(bytes: usize) -> Option<NonNull<u8>> {
    let len = round_up(bytes, PAGE);
    let over = len.checked_add(HUGE_PAGE)?;
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
    // existing memory; the result is checked for MAP_FAILED.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            over,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let head = aligned - start;
    let tail = over - head - len;
    // SAFETY: [start, start + head) and [aligned + len, start + over) lie within the mapping
    // just made and outside the part kept; unmapping them leaves [aligned, aligned + len).
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
    }
    // SAFETY: [aligned, aligned + len) is a mapping this process owns. The advice only changes
    // how the kernel backs it; failure (THP disabled) leaves 4 KiB pages, which is fine.
    unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    NonNull::new(aligned as *mut u8)
}

/// Hints the CPU to bring the cache line holding `*r` into all cache levels. Never faults and
/// has no effect on program state.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 (SSE, part of the x86-64 baseline) is a hint: it reads no memory
    // architecturally and cannot fault; `r` is a valid reference anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (r as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Which of ten 16-bit lanes equal `x`: bit `2i` is set iff `lanes[i] == x` (odd bits are
/// clear), so `trailing_zeros() / 2` names the first matching lane. One tag compare of the
/// flow index's buckets: two SSE2 compares and masks on x86-64.
#[inline(always)]
pub fn eq_u16x10(lanes: &[u16; 10], x: u16) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi16, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi16,
        };
        let p = lanes.as_ptr();
        // SAFETY: SSE2 is part of the x86-64 baseline. The two unaligned 16-byte loads read
        // lanes 0..8 and 2..10, both inside the 20-byte array the reference covers.
        let (lo, hi) = unsafe {
            let v = _mm_set1_epi16(x as i16);
            let a = _mm_loadu_si128(p.cast::<__m128i>());
            let b = _mm_loadu_si128(p.add(2).cast::<__m128i>());
            (
                _mm_movemask_epi8(_mm_cmpeq_epi16(a, v)) as u32,
                _mm_movemask_epi8(_mm_cmpeq_epi16(b, v)) as u32,
            )
        };
        (lo | hi << 4) & 0x5_5555
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let mut m = 0;
        for (i, &l) in lanes.iter().enumerate() {
            m |= u32::from(l == x) << (2 * i);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eq_u16x10_names_every_matching_lane() {
        let lanes = [0u16, 7, 0, 0xffff, 7, 7, 1, 0, 9, 7];
        let want = |x: u16| {
            (0..10)
                .filter(|&i| lanes[i] == x)
                .map(|i| 1u32 << (2 * i))
                .sum::<u32>()
        };
        for x in [0u16, 7, 0xffff, 1, 9, 2] {
            assert_eq!(eq_u16x10(&lanes, x), want(x), "{x}");
        }
        for i in 0..10 {
            let mut l = [5u16; 10];
            l[i] = 6;
            assert_eq!(eq_u16x10(&l, 6), 1 << (2 * i));
            assert_eq!(eq_u16x10(&l, 5), 0x5_5555 & !(1 << (2 * i)));
        }
    }

    #[test]
    fn small_arrays_stay_on_the_heap() {
        let a = HugeSlice::new(1000, 7u32);
        assert!(!a.is_mapped());
        assert_eq!(a.len(), 1000);
        assert!(a.iter().all(|&x| x == 7));
        assert_eq!(a.footprint(), 4000);
        let e = HugeSlice::new(0, 0u64);
        assert!(e.is_empty());
    }

    #[test]
    fn large_arrays_are_mapped_aligned_and_initialised() {
        let n = 3 * HUGE_PAGE / 8 + 5;
        let mut a = HugeSlice::new(n, (1u32, 2u32));
        assert!(a.is_mapped(), "mmap of {} bytes failed", n * 8);
        assert_eq!(a.as_ptr() as usize % HUGE_PAGE, 0);
        assert_eq!(a.footprint(), 3 * HUGE_PAGE + 4096);
        assert!(a.iter().all(|&x| x == (1, 2)));
        a[n - 1] = (3, 4);
        a[0].0 = 9;
        assert_eq!((a[0], a[n - 1]), ((9, 2), (3, 4)));
        prefetch(&a[n / 2]);
        let h = HugeSlice::heap(n, 0u8);
        assert!(!h.is_mapped());
    }

    #[test]
    fn many_mappings_come_and_go() {
        for i in 0..64 {
            let a = HugeSlice::new(HUGE_PAGE / 4 + i, i as u32);
            assert_eq!(a[i], i as u32);
        }
    }
}
