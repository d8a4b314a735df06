//! The worker pools, sized once by `--threads`, with denormals flushed on every worker: a spinning pool for the
//! products and element-wise kernels of a step (`pool`), and rayon's global pool for coarse work
//! (evaluation's items, image decoding).

use std::sync::OnceLock;

static THREADS: OnceLock<usize> = OnceLock::new();

/// Sets up the pool with `n` threads (0 means all cores); later calls keep the first size.
pub fn init(n: usize) -> usize {
    let n = *THREADS.get_or_init(|| {
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
        n
    });
    super::denormal::ensure_flushed();
    n
}

/// Most threads accepted per available core: more only adds contention (and thousands hang a machine).
pub const MAX_PER_CORE: usize = 4;

/// Checks a `--threads` value against this machine's cores before any pool is built.
pub fn check(n: usize) -> crate::error::Result<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if n > MAX_PER_CORE * cores {
        return Err(crate::error::Error::Config(format!(
            "--threads {n} is more than {MAX_PER_CORE} per core on this machine's {cores} cores: use at most {} (0 uses all cores)",
            MAX_PER_CORE * cores
        )));
    }
    Ok(n)
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

/// Splits `0..n` into one contiguous range per thread (none shorter than `min` unless `n` is) and runs `f` on each
/// in parallel, the calling thread taking one.
pub fn for_rows(n: usize, min: usize, f: impl Fn(usize, usize) + Sync) {
    let parts = count().min(n / min.max(1)).max(1);
    if parts == 1 || is_serial() {
        return for_parts(1, |_| f(0, n));
    }
    let step = n.div_ceil(parts);
    let parts = n.div_ceil(step);
    for_parts(parts, |i| f(i * step, ((i + 1) * step).min(n)));
}

/// Runs `f(0)`, …, `f(parts − 1)` in parallel on the spinning pool, the calling thread taking parts too; in order
/// on the calling thread inside [`serial`], from inside another part, or while another thread's job runs.
pub fn for_parts(parts: usize, f: impl Fn(usize) + Sync) {
    super::denormal::ensure_flushed();
    if is_serial() || count() <= 1 {
        (0..parts).for_each(f);
    } else {
        // Started at the first split job, not by `init`: evaluation, which spreads whole items over rayon's
        // workers, never needs these.
        super::pool::start(count() - 1);
        super::pool::run_parts(parts, &f);
    }
}

/// Columns per sweep of [`column_sums`] over the rows, in accumulators on the stack.
const COLUMN_BLOCK: usize = 64;

/// Per-column sums, `W` of them, of `len` values in rows of `cols`, split over the pool by columns. `out` holds `W`
/// blocks of `cols` starting values (zero, or sums to add to); `f(j0, j1, acc)` adds columns `j0..j1` (at most 64)
/// of every row, in order, into `acc[w][..j1 − j0]`. Each column is summed in the same order whatever the split, so
/// results never depend on the thread count. The running sums live on each part's stack: kept in `out`, two
/// threads' neighbouring columns shared a cache line and every row's update bounced it between the cores. `f` is
/// compiled for the widest vectors the CPU has where it is inlined: mark it `#[inline(always)]`.
pub fn column_sums<A: Copy + Send + Sync, const W: usize>(
    len: usize,
    cols: usize,
    out: &mut [A],
    f: impl Fn(usize, usize, [&mut [A]; W]) + Sync,
) {
    let Some(&first) = out.first() else { return };
    // At least 16 columns a part: a whole cache line of each row.
    let min = if len < 1 << 15 { cols } else { 16 };
    let out = Disjoint::new(out);
    for_rows(cols, min, |p0, p1| {
        super::simd::widest(
            #[inline(always)]
            || column_blocks(p0, p1, cols, first, &out, &f),
        )
    });
}

/// One part of [`column_sums`]: columns `p0..p1`, in blocks of [`COLUMN_BLOCK`].
#[inline(always)]
fn column_blocks<A: Copy, const W: usize>(
    p0: usize,
    p1: usize,
    cols: usize,
    first: A,
    out: &Disjoint<'_, A>,
    f: &impl Fn(usize, usize, [&mut [A]; W]),
) {
    for j0 in (p0..p1).step_by(COLUMN_BLOCK) {
        let j1 = (j0 + COLUMN_BLOCK).min(p1);
        let mut acc = [[first; COLUMN_BLOCK]; W];
        for (w, a) in acc.iter_mut().enumerate() {
            // SAFETY: the parts' column ranges, and so their entries of every block, are disjoint.
            a[..j1 - j0].copy_from_slice(unsafe { out.range(w * cols + j0, w * cols + j1) });
        }
        let mut parts = acc.iter_mut().map(|a| &mut a[..j1 - j0]);
        f(
            j0,
            j1,
            std::array::from_fn(|_| parts.next().expect("W blocks")),
        );
        for (w, a) in acc.iter().enumerate() {
            // SAFETY: as above.
            unsafe { out.range(w * cols + j0, w * cols + j1) }.copy_from_slice(&a[..j1 - j0]);
        }
    }
}

/// A mutable slice that threads may carve into disjoint ranges (see [`for_rows`]).
pub struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: it is only a `&mut [T]` split across threads; `range`'s contract keeps the parts disjoint.
unsafe impl<T: Send> Send for Disjoint<'_, T> {}
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    /// Takes the exclusive borrow for as long as the parts live.
    pub fn new(data: &'a mut [T]) -> Self {
        Disjoint {
            ptr: data.as_mut_ptr(),
            len: data.len(),
            _borrow: std::marker::PhantomData,
        }
    }

    /// The elements `a..b`.
    ///
    /// # Safety
    /// Ranges taken by different threads, or alive at the same time, must not overlap.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, a: usize, b: usize) -> &'a mut [T] {
        assert!(
            a <= b && b <= self.len,
            "range {a}..{b} outside 0..{}",
            self.len
        );
        // SAFETY: in bounds; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(a), b - a) }
    }
}

/// Runs `f` on a worker of rayon's pool: the parallel iterators it starts then share their work with the calling
/// thread instead of blocking it.
pub fn run<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if count() <= 1 {
        return f();
    }
    rayon::scope(|_| f())
}
