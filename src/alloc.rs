//! The global allocator: mimalloc.
//!
//! Workers allocate keys and rows on the thread that decodes them and free them on the
//! thread that owns the key. With glibc's malloc that cross-thread traffic kept the
//! two-worker file-mode run at 1.2× the one-worker rate; with mimalloc it is 1.8× and
//! both run faster, for about 40% more peak RSS (BENCHMARKS.md has both).

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
