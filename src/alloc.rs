//! The global allocator: mimalloc (its v2 line), row-sized blocks made ahead.
//!
//! Workers allocate keys and rows on the thread that decodes them and free them on the
//! thread that owns the key. With glibc's malloc that cross-thread traffic kept the
//! two-worker file-mode run at 1.2× the one-worker rate; with mimalloc it is 1.8× and
//! both run faster, for about 40% more peak RSS (BENCHMARKS.md has both). Its v2 line,
//! not v3: a row decoded on one worker and freed on the other made v3 abandon and
//! reclaim pages (617k times in the 1M-event run), and the half-used pages it kept held
//! over a quarter of the two-worker run's peak RSS; v2 runs as fast at 0.72× the peak.
//!
//! [`configure`] turns off mimalloc's purging of freed pages: by default it hands them
//! back to the OS 10 ms after they empty, and the next batch faults them in again, each
//! fault zeroing a transparent huge page (`clear_page_erms` was 5% of a worker's profile).
//! A stream job's working set is steady, so holding the pages it freed costs little peak
//! memory and saves that churn (BENCHMARKS.md, issue 14). Nor does mimalloc ask for
//! transparent huge pages: each first touch of one zeroes 2 MiB, of which the job's
//! scattered blocks used a part, and on a virtual machine that first touch is dear;
//! without them the file-mode run's peak is 0.89× (79 MiB against 89 at `-w 2`) at no
//! cost in time (BENCHMARKS.md).
//!
//! Row-sized blocks are allocated one request ahead and fetched into the cache then
//! (`ahead`): a freed block's lines are long out of the cache, and writing a row into
//! one stalled the decoder.

mod ahead;

#[global_allocator]
static ALLOC: ahead::Ahead = ahead::Ahead;

/// mimalloc's option number for the purge delay (`mi_option_purge_delay` in
/// `mimalloc.h`, v2 and v3 alike; the Rust bindings name only some options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tunes the allocator for a long-running job: freed pages stay with the process, and
/// its memory is no longer faulted in as transparent huge pages. An explicit
/// `MIMALLOC_PURGE_DELAY` or `MIMALLOC_ALLOW_THP` in the environment wins. Idempotent.
pub fn configure() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: sets one option value; called once, before the workers start.
            unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
        }
        // mimalloc asked for huge pages when it reserved its arena, before `main`, so
        // its own option (`MIMALLOC_ALLOW_THP=0`, read then) is too late here: the
        // process's flag stops them for every fault from now on.
        #[cfg(target_os = "linux")]
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
            // SAFETY: sets a flag of this process; no memory is passed. A kernel that
            // does not know it fails the call, and the job runs as before.
            let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        }
    });
}
