//! The one worker pool: rayon's global pool, sized once by `--threads`, with denormals flushed on every worker.

use std::sync::OnceLock;

static THREADS: OnceLock<usize> = OnceLock::new();

/// Sets up the pool with `n` threads (0 means all cores); later calls keep the first size.
pub fn init(n: usize) -> usize {
    *THREADS.get_or_init(|| {
        let n = if n == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            n
        };
        // Building fails only when a global pool exists already (e.g. in tests); that pool is used then.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .start_handler(|_| super::denormal::flush_to_zero())
            .build_global();
        super::denormal::flush_to_zero();
        n
    })
}

/// Number of threads products and element-wise kernels are split over.
pub fn count() -> usize {
    *THREADS.get().unwrap_or(&1)
}

thread_local! {
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with products kept on this thread: for callers that already spread work over the pool.
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    let before = SERIAL.with(|s| s.replace(true));
    let r = f();
    SERIAL.with(|s| s.set(before));
    r
}

/// Whether this thread is inside [`serial`].
pub fn is_serial() -> bool {
    SERIAL.with(|s| s.get())
}
