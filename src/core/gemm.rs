//! Matrix products through the `gemm` crate, split over the worker pool by output rows or columns.
//!
//! Each part is one single-threaded `gemm` call: splitting ourselves measured faster at VAE shapes than
//! `gemm`'s own threading, and every output element is still computed by exactly one call.

use super::Real;
use super::threads;

/// Products smaller than this many multiply-adds run on the calling thread: handing off costs more.
const PARALLEL_MIN_MACS: usize = 1 << 16;
/// Most parts a larger product is split into.
const MAX_PARTS: usize = 4;

/// Parts a larger product is split into: one per core of this machine, at most [`MAX_PARTS`], whatever the number
/// of threads. Parts beyond the cores only cost time: each packs the operand it shares with the others again (on 2
/// cores, 4 parts took the IWAE-50 step's products 5 % longer than 2).
fn parts() -> usize {
    static PARTS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PARTS.get_or_init(|| online_cores().min(MAX_PARTS))
}

/// The machine's cores, not this process's share of them: `available_parallelism` follows `taskset`, cgroup quotas
/// and `mpirun`'s binding, and a run pinned to one core must change speed, not results.
fn online_cores() -> usize {
    // SAFETY: sysconf reads a system value and has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(online).unwrap_or(1).max(1)
}

/// A row-major matrix operand: its data and whether it is used transposed.
#[derive(Clone, Copy)]
pub struct Op<'a, T> {
    data: &'a [T],
    transposed: bool,
}

/// Uses `data` as stored.
pub fn n<T>(data: &[T]) -> Op<'_, T> {
    Op {
        data,
        transposed: false,
    }
}

/// Uses `data` transposed.
pub fn t<T>(data: &[T]) -> Op<'_, T> {
    Op {
        data,
        transposed: true,
    }
}

#[derive(Clone, Copy)]
struct Raw<T>(*mut T);
// SAFETY: the parts given to different threads write disjoint output blocks and only read the inputs.
unsafe impl<T> Send for Raw<T> {}
unsafe impl<T> Sync for Raw<T> {}

/// `c[m×n] = a·b` (or `c += a·b` when `accumulate`), with `a` m×k and `b` k×n after transposition.
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Real>(
    c: &mut [T],
    a: Op<'_, T>,
    b: Op<'_, T>,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
) {
    assert!(c.len() >= m * n, "output holds {} < {m}x{n}", c.len());
    assert!(
        a.data.len() >= m * k,
        "lhs holds {} < {m}x{k}",
        a.data.len()
    );
    assert!(
        b.data.len() >= k * n,
        "rhs holds {} < {k}x{n}",
        b.data.len()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(T::zero());
        }
        return;
    }
    // Strides (row, column) of the logical operands in their row-major storage.
    let (a_rs, a_cs) = if a.transposed {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (b_rs, b_cs) = if b.transposed {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let cp = Raw(c.as_mut_ptr());
    let ap = Raw(a.data.as_ptr() as *mut T);
    let bp = Raw(b.data.as_ptr() as *mut T);
    let call = move |r0: usize, r1: usize, c0: usize, c1: usize| {
        let (cp, ap, bp) = (cp, ap, bp);
        // SAFETY: bounds were asserted above; (r0..r1, c0..c1) lies inside the m×n output.
        unsafe {
            gemm::gemm(
                r1 - r0,
                c1 - c0,
                k,
                cp.0.add(r0 * n + c0),
                1,
                n as isize,
                accumulate,
                ap.0.offset(r0 as isize * a_rs),
                a_cs,
                a_rs,
                bp.0.offset(c0 as isize * b_cs),
                b_cs,
                b_rs,
                T::one(),
                T::one(),
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    };
    if m * n * k < PARALLEL_MIN_MACS || threads::is_serial() {
        // Rounded as the split products' parts are, on whichever thread.
        super::denormal::ensure_flushed();
        call(0, m, 0, n);
        return;
    }
    // Split the longer side into `parts()` blocks of whole SIMD panels. The split depends on the shape and the
    // machine's cores only, never on the pool's size: `gemm` blocks each call by its own sizes, so a split that
    // followed the thread count would change the order of the sums, and the results with it.
    let split_rows = m >= n;
    let len = if split_rows { m } else { n };
    // Whole 16-wide panels, as evenly as they go: with parts of 64, 64, 64 and 8 columns, one of two threads did 128
    // and the other 72.
    let parts = parts();
    let bounds = even_parts(len, 16, parts);
    let run = |start: usize, end: usize| {
        if split_rows {
            call(start, end, 0, n)
        } else {
            call(0, m, start, end)
        }
    };
    // Small sides leave leading parts empty, and only leading ones.
    let first = (0..parts)
        .find(|&i| bounds[i] < bounds[i + 1])
        .unwrap_or(parts);
    threads::for_parts(parts - first, |i| {
        run(bounds[first + i], bounds[first + i + 1])
    });
}

/// Bounds of `parts` parts of `len` (the first `parts + 1` entries), in whole units of `unit` but the last, as even
/// as whole units allow.
fn even_parts(len: usize, unit: usize, parts: usize) -> [usize; MAX_PARTS + 1] {
    let units = len.div_ceil(unit);
    let (base, extra) = (units / parts, units % parts);
    let mut b = [0; MAX_PARTS + 1];
    for i in 0..parts {
        // The parts with an extra panel come last, where the end's part, clipped to `len`, may give some back.
        b[i + 1] = (b[i] + (base + usize::from(i >= parts - extra)) * unit).min(len);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], ta: bool, b: &[f64], tb: bool, m: usize, n: usize, k: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    c[i * n + j] += av * bv;
                }
            }
        }
        c
    }

    #[test]
    fn parts_are_whole_panels_as_even_as_they_go() {
        for len in [1, 15, 16, 17, 20, 40, 63, 64, 100, 200, 400, 784, 1000] {
            for parts in 1..=MAX_PARTS {
                let b = &even_parts(len, 16, parts)[..=parts];
                assert_eq!((b[0], b[parts]), (0, len), "{len}: {b:?}");
                let sizes: Vec<usize> = b.windows(2).map(|w| w[1] - w[0]).collect();
                // Every part but the one holding the end is whole panels; no two non-empty parts differ by more
                // than a panel.
                for (i, w) in b.windows(2).enumerate() {
                    assert!(
                        w[1] == len || (w[1] - w[0]) % 16 == 0,
                        "{len}: part {i} of {b:?}"
                    );
                }
                let full: Vec<usize> = sizes.iter().copied().filter(|&s| s > 0).collect();
                let (lo, hi) = (full.iter().min().unwrap(), full.iter().max().unwrap());
                assert!(hi - lo <= 16, "{len}: {sizes:?}");
            }
        }
        // The split that left one of two threads idle: 200 columns are 48+48+48+56, not 64+64+64+8.
        assert_eq!(even_parts(200, 16, 4), [0, 48, 96, 144, 200]);
        assert_eq!(even_parts(200, 16, 2)[..3], [0, 96, 200]);
    }

    /// Products are split by the machine's cores, read while this thread is pinned to one of them (as `taskset`
    /// or `mpirun`'s binding would pin a run): its share of the machine must not change the split.
    #[test]
    fn products_are_split_once_per_core_of_the_machine_up_to_four() {
        let cores = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        // "0-1", or a list such as "0,2-5".
        let cores: usize = cores
            .trim()
            .split(',')
            .map(|r| match r.split_once('-') {
                Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
                None => 1,
            })
            .sum();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: the sets are plain bit masks of this thread's affinity, read and written whole.
        unsafe {
            let mut before: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(libc::sched_getaffinity(0, size, &mut before), 0);
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut one);
            assert_eq!(libc::sched_setaffinity(0, size, &one), 0);
            let share = std::thread::available_parallelism().map_or(1, |n| n.get());
            let online = online_cores();
            assert_eq!(libc::sched_setaffinity(0, size, &before), 0);
            assert_eq!(
                (share, online),
                (1, cores),
                "pinned to one of {cores} cores"
            );
        }
        assert_eq!(parts(), cores.min(4));
    }

    #[test]
    fn all_transpositions_and_splits_match_naive() {
        threads::init(2);
        for &(m, n, k) in &[(3, 5, 7), (130, 40, 33), (40, 300, 129), (1, 1, 1)] {
            let a: Vec<f64> = (0..m * k).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let b: Vec<f64> = (0..k * n).map(|i| ((i * 5) % 13) as f64 - 6.0).collect();
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let want = naive(&a, ta, &b, tb, m, n, k);
                let mut c = vec![1.0; m * n];
                let (oa, ob) = (
                    if ta { t(&a[..]) } else { n_(&a) },
                    if tb { t(&b[..]) } else { n_(&b) },
                );
                matmul(&mut c, oa, ob, m, n, k, false);
                assert_eq!(c, want, "{m}x{n}x{k} ta={ta} tb={tb}");
                matmul(&mut c, oa, ob, m, n, k, true);
                let twice: Vec<f64> = want.iter().map(|v| 2.0 * v).collect();
                assert_eq!(c, twice);
            }
        }
    }

    fn n_(x: &[f64]) -> Op<'_, f64> {
        super::n(x)
    }
}
