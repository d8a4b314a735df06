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
