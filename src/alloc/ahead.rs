//! mimalloc with each row-sized block allocated one request ahead and fetched then.
//!
//! A block a free list hands out was freed long before (a replaced row, often by the
//! other worker), so its lines are out of the cache, and the ~300 bytes a decoder then
//! writes into it wait for them. Stores reach the cache in order, so the next load that
//! cannot be forwarded from a store waits behind those lines: 6% of a two-worker run's
//! time sat on one such load just after each row was built (BENCHMARKS.md, issue 14).
//! Allocating each size's next block at the request before and asking for its lines
//! then gives the fetch a whole event's decoding to arrive in. Steady state costs no
//! extra allocation: each request takes the block made ahead and makes the next one.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ptr::null_mut;

/// Requests over this size and up to [`LARGEST`] are served ahead: rows and the like.
const SMALLEST: usize = 128;
/// The largest request served ahead.
const LARGEST: usize = 1024;
/// Requests are grouped into buckets of this many bytes; each bucket's block is its
/// largest size, so any request of the bucket fits it (mimalloc's own size classes
/// round as coarsely in this range, so this costs no memory).
const BUCKET: usize = 32;
const BUCKETS: usize = (LARGEST - SMALLEST) / BUCKET;
/// mimalloc's blocks are aligned to this (`MI_MAX_ALIGN_SIZE`).
const ALIGN: usize = 16;

thread_local! {
    /// Each bucket's block made ahead on this thread (null: none yet). A thread's
    /// blocks are not freed when it ends: at most `BUCKETS` blocks of ≤ 1 KiB each.
    /// A cell each: one cell holding the array copied all 28 pointers out and back
    /// in at every request (two 224-byte copies, about a fifth of a row's making).
    static NEXT: [Cell<*mut u8>; BUCKETS] = const { [const { Cell::new(null_mut()) }; BUCKETS] };
}

/// The global allocator: [`mimalloc::MiMalloc`], with row-sized requests served ahead.
pub(crate) struct Ahead;

/// The bucket of a request of `size` bytes and its block size, if served ahead.
#[inline]
fn bucket(layout: Layout) -> Option<(usize, usize)> {
    let size = layout.size();
    if size <= SMALLEST || size > LARGEST || layout.align() > ALIGN {
        return None;
    }
    let b = (size - SMALLEST - 1) / BUCKET;
    Some((b, SMALLEST + (b + 1) * BUCKET))
}

/// Asks for the block after `block` on its page's free list to be fetched: the next
/// request of this size pops that block, and the pop reads its first word (the list's
/// link), a miss that held up every allocation (`_mi_page_malloc_zero`, 4.6% of a
/// two-worker run). mimalloc's release build leaves a block it hands out holding that
/// link, unencoded; in any other build the word is something else, and a prefetch of
/// whatever address it holds neither faults nor changes anything.
///
/// # Safety
/// `block` must point to at least 8 readable bytes.
#[inline]
unsafe fn prefetch_next_free(block: *mut u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: reads the block's first word (8 bytes the caller vouches for) in
    // assembly, so no typed read of memory that may be uninitialised happens in Rust;
    // a prefetch cannot fault.
    unsafe {
        std::arch::asm!(
            "mov {next}, qword ptr [{block}]",
            "prefetcht0 byte ptr [{next}]",
            block = in(reg) block,
            next = out(reg) _,
            options(nostack, readonly, preserves_flags),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = block;
}

// SAFETY: every block comes from mimalloc (`mi_malloc` of at least the request's size,
// aligned to 16 ≥ the request's alignment) and goes back to it by `mi_free`, which
// needs no size; a block served ahead is handed out once (taken out of its slot).
unsafe impl GlobalAlloc for Ahead {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some((b, full)) = bucket(layout) {
            let served = NEXT.try_with(|next| {
                // SAFETY: a plain allocation of `full` bytes.
                let ahead = unsafe { libmimalloc_sys::mi_malloc(full) }.cast::<u8>();
                let take = next[b].replace(ahead);
                if !ahead.is_null() {
                    for line in (0..full).step_by(64) {
                        crate::row::prefetch(ahead.wrapping_add(line));
                    }
                    // SAFETY: `ahead` is a live block of at least 8 bytes.
                    unsafe { prefetch_next_free(ahead) };
                }
                take
            });
            match served {
                Ok(p) if !p.is_null() => return p,
                // The first request of a bucket, or none left (the next one may have
                // failed, or the thread's slots are gone): allocate now.
                _ => return unsafe { libmimalloc_sys::mi_malloc(full) }.cast(),
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from mimalloc, by either path.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from mimalloc, by either path; it knows the block's size.
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::{bucket, Ahead, LARGEST, SMALLEST};
    use std::alloc::{GlobalAlloc, Layout};

    #[test]
    fn a_bucket_holds_every_size_it_serves() {
        for size in 1..=LARGEST + 64 {
            for align in [1, 8, 16, 32] {
                let layout = Layout::from_size_align(size, align).unwrap();
                match bucket(layout) {
                    Some((b, full)) => {
                        assert!(size > SMALLEST && size <= LARGEST && align <= 16);
                        assert!(full >= size && full - size < super::BUCKET, "{size}");
                        assert_eq!(
                            bucket(Layout::from_size_align(full, 1).unwrap()).unwrap().0,
                            b
                        );
                    }
                    None => assert!(size <= SMALLEST || size > LARGEST || align > 16),
                }
            }
        }
    }

    #[test]
    fn blocks_served_ahead_are_distinct_aligned_and_whole() {
        // Sizes in and out of the range, repeated (each bucket's second request on is
        // the block made ahead), every block filled and checked before it is freed.
        let mut live = Vec::new();
        for round in 0..4u8 {
            for size in (1..1200).step_by(37) {
                let layout = Layout::from_size_align(size, 16).unwrap();
                // SAFETY: a non-zero layout; the block is written only within it.
                let p = unsafe { Ahead.alloc(layout) };
                assert!(!p.is_null() && (p as usize).is_multiple_of(16));
                unsafe { std::ptr::write_bytes(p, round, size) };
                live.push((p, layout, round));
            }
        }
        let mut starts: Vec<usize> = live.iter().map(|(p, ..)| *p as usize).collect();
        starts.sort_unstable();
        starts.dedup();
        assert_eq!(starts.len(), live.len(), "a block handed out twice");
        for (p, layout, round) in live {
            let bytes = unsafe { std::slice::from_raw_parts(p, layout.size()) };
            assert!(bytes.iter().all(|&b| b == round), "a block overwritten");
            // SAFETY: allocated above with this layout, freed once.
            unsafe { Ahead.dealloc(p, layout) };
        }
    }
}
