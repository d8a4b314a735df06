//! A dense layer's two products with its input, `y = x·W` and `dW = xᵀ·dy`, over only the input's nonzero values,
//! for a weight stored input-major (`[in, out]`, see [`super::Linear::input_major`]). MNIST's pixels are 81 %
//! zeros, so the first layer of a model fed its images needs a fifth of a dense product's multiplications.
//! `worth_it` decides from the batch itself; the dense products serve every other input.
//!
//! With the weight input-major, both products read and write whole rows of `out` values: each nonzero `x[r, i]`
//! adds `x[r, i]·W[i, ·]` to `y[r, ·]`, and `dW[i, ·]` is the sum of `x[r, i]·dy[r, ·]` over the rows where
//! column `i` is nonzero. A `[out, in]` weight would need a transposed copy or a scatter on every step, which cost
//! more than the multiplications saved (BENCHMARKS.md, "a sparse first layer").
//!
//! Each output is one sum over the nonzero inputs in ascending order, whatever the split over threads, so results
//! never depend on the thread count; they differ from the dense product's in the last bits, whose sums are grouped
//! by the `gemm` crate's blocking.

use super::Real;
use super::threads::{Disjoint, count, for_parts};

/// Outputs summed at once, in accumulators that stay in registers: 8 AVX2 vectors of f32.
const BLOCK: usize = 64;

/// Whether the sparse products beat the dense ones on `x`: when at most this fraction of its values is nonzero.
/// Measured at the default model's first layer (batch 128, 784 → 400) with `examples/sparse_input.rs`: on AVX2
/// the sparse pair wins up to about 0.3; with AVX-512 the dense products run nearly twice as fast and the sparse
/// ones, bound by reading the weight's rows, hardly faster, so they win only up to about 0.15 (BENCHMARKS.md).
pub fn max_density() -> f64 {
    if super::simd::has_avx512() { 0.15 } else { 0.3 }
}

/// The nonzero values of a batch, by row and by column, kept from the forward pass for the backward one.
#[derive(Debug, Clone, Default)]
pub struct Nonzeros<T> {
    /// Start of each row's entries in `col`/`row_val` (rows + 1 of them).
    row_start: Vec<u32>,
    col: Vec<u32>,
    row_val: Vec<T>,
    /// Start of each column's entries in `row`/`col_val` (columns + 1), built by [`Nonzeros::by_columns`].
    col_start: Vec<u32>,
    row: Vec<u32>,
    col_val: Vec<T>,
    /// Where the next entry of each column goes, while [`Nonzeros::by_columns`] fills them.
    next: Vec<u32>,
    /// Whether `row`, `col_val` and `col_start` are filled for the values `of` kept last.
    by_column: bool,
}

/// The most nonzero values of `len` for which [`forward`] and [`weight_grad`] beat the dense products.
pub fn most_nonzeros(len: usize) -> usize {
    (max_density() * len as f64) as usize
}

impl<T: Real> Nonzeros<T> {
    /// Keeps the nonzero values of `rows` rows of `x`, `cols` values each, by row; `false` (keeping nothing
    /// usable) as soon as more than `max` of them are nonzero, so a dense batch costs a fraction of a pass.
    pub fn of(&mut self, x: &[T], rows: usize, cols: usize, max: usize) -> bool {
        // Counting first, vectorised, costs a tenth of listing: a batch just over `max` (MNIST's 19 % against
        // AVX-512's 15 %) would otherwise be listed nearly whole on every step before the dense products ran.
        if max < rows * cols && count_nonzero(&x[..rows * cols]) > max {
            return false;
        }
        self.row_start.clear();
        self.col.clear();
        self.row_val.clear();
        self.col_start.clear();
        self.col_start.resize(cols + 1, 0);
        self.by_column = false;
        self.row_start.push(0);
        for r in x[..rows * cols].chunks_exact(cols) {
            // A mask of 32 values at a time, then its set bits: a branch per value mispredicted at MNIST's
            // density and cost more than the products saved.
            for (c, chunk) in r.chunks(32).enumerate() {
                let mut mask = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |m, (j, &v)| m | (u32::from(v != T::zero()) << j));
                while mask != 0 {
                    let j = mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let i = c * 32 + j;
                    self.col.push(i as u32);
                    self.row_val.push(chunk[j]);
                    self.col_start[i + 1] += 1;
                }
            }
            if self.col.len() > max {
                return false;
            }
            self.row_start.push(self.col.len() as u32);
        }
        true
    }

    /// The same values by column, each column's rows ascending, for [`weight_grad`].
    pub fn by_columns(&mut self, cols: usize) {
        assert_eq!(self.col_start.len(), cols + 1, "counted by `of`");
        if self.by_column {
            return;
        }
        // `of` counted each column's entries; their running sum is where each column starts.
        for c in 0..cols {
            self.col_start[c + 1] += self.col_start[c];
        }
        let n = self.col.len();
        self.row.resize(n, 0);
        self.col_val.resize(n, T::zero());
        self.next.clear();
        self.next.extend_from_slice(&self.col_start[..cols]);
        for r in 0..self.rows() {
            let (a, b) = (self.row_start[r] as usize, self.row_start[r + 1] as usize);
            for (&c, &v) in self.col[a..b].iter().zip(&self.row_val[a..b]) {
                let at = &mut self.next[c as usize];
                self.row[*at as usize] = r as u32;
                self.col_val[*at as usize] = v;
                *at += 1;
            }
        }
        self.by_column = true;
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.row_start.len().saturating_sub(1)
    }
}

/// How many of `x` are nonzero.
fn count_nonzero<T: Real>(x: &[T]) -> usize {
    super::simd::widest(
        #[inline(always)]
        || {
            x.chunks(4096)
                .map(|c| {
                    c.iter()
                        .map(|&v| usize::from(v != T::zero()))
                        .sum::<usize>()
                })
                .sum()
        },
    )
}

/// Parts of the outputs, one per thread, each a whole number of vectors wide, and outputs per part.
fn split(fan_out: usize) -> (usize, usize) {
    split_in(count().min(fan_out.div_ceil(BLOCK)).max(1), fan_out)
}

/// About `parts` parts of `fan_out` outputs, each a multiple of 16 wide but the last.
fn split_in(parts: usize, fan_out: usize) -> (usize, usize) {
    let step = fan_out.div_ceil(parts).next_multiple_of(16);
    (fan_out.div_ceil(step), step)
}

/// Runs `f(o0, o1)` on the pool for each part's outputs `o0..o1`.
fn for_output_parts(
    (parts, step): (usize, usize),
    fan_out: usize,
    f: impl Fn(usize, usize) + Sync,
) {
    for_parts(parts, |p| f(p * step, ((p + 1) * step).min(fan_out)));
}

/// Runs `wide(c0)` over `o0..o1` in steps of [`BLOCK`] outputs, then `narrow` in steps of 16, then `one`, so that
/// every block but the last few outputs has a width known when compiling.
#[inline(always)]
fn blocks(
    o0: usize,
    o1: usize,
    mut wide: impl FnMut(usize),
    mut narrow: impl FnMut(usize),
    mut one: impl FnMut(usize),
) {
    let mut c = o0;
    while c + BLOCK <= o1 {
        wide(c);
        c += BLOCK;
    }
    while c + 16 <= o1 {
        narrow(c);
        c += 16;
    }
    while c < o1 {
        one(c);
        c += 1;
    }
}

/// `y[r, c0..c0 + B] = Σ_i x[r, i]·W[i, c0..c0 + B]` over row `r`'s nonzero entries.
#[inline(always)]
fn forward_block<T: Real, const B: usize>(
    w: &[T],
    nz: &Nonzeros<T>,
    y: &Disjoint<'_, T>,
    fan_out: usize,
    c0: usize,
) {
    for r in 0..nz.rows() {
        let (a, b) = (nz.row_start[r] as usize, nz.row_start[r + 1] as usize);
        let mut acc = [T::zero(); B];
        for (&i, &v) in nz.col[a..b].iter().zip(&nz.row_val[a..b]) {
            let wi: &[T; B] = w[i as usize * fan_out + c0..][..B]
                .try_into()
                .expect("B values");
            for (s, &wv) in acc.iter_mut().zip(wi) {
                *s += v * wv;
            }
        }
        // SAFETY: the caller's part alone writes columns c0..c0 + B of y.
        unsafe { y.range(r * fan_out + c0, r * fan_out + c0 + B) }.copy_from_slice(&acc);
    }
}

/// `y = x·W` for the rows `nz` holds, with `W` stored `[in, out]`.
pub fn forward<T: Real>(w: &[T], nz: &Nonzeros<T>, y: &mut [T], fan_in: usize, fan_out: usize) {
    forward_in(split(fan_out), w, nz, y, fan_in, fan_out)
}

/// [`forward`] in `parts` parts of `step` outputs.
fn forward_in<T: Real>(
    (parts, step): (usize, usize),
    w: &[T],
    nz: &Nonzeros<T>,
    y: &mut [T],
    fan_in: usize,
    fan_out: usize,
) {
    assert_eq!(w.len(), fan_in * fan_out, "an [in, out] weight");
    let rows = nz.rows();
    let y = Disjoint::new(&mut y[..rows * fan_out]);
    for_output_parts((parts, step), fan_out, |o0, o1| {
        super::simd::widest(
            #[inline(always)]
            || {
                blocks(
                    o0,
                    o1,
                    #[inline(always)]
                    |c| forward_block::<T, BLOCK>(w, nz, &y, fan_out, c),
                    #[inline(always)]
                    |c| forward_block::<T, 16>(w, nz, &y, fan_out, c),
                    #[inline(always)]
                    |c| forward_block::<T, 1>(w, nz, &y, fan_out, c),
                )
            },
        )
    });
}

/// `dW[i, c0..c0 + B] = Σ_r x[r, i]·dy[r, c0..c0 + B]` (added when `accumulate`) for every input `i`.
#[inline(always)]
fn grad_block<T: Real, const B: usize>(
    g: &Disjoint<'_, T>,
    nz: &Nonzeros<T>,
    dy: &[T],
    fan_in: usize,
    fan_out: usize,
    c0: usize,
    accumulate: bool,
) {
    for i in 0..fan_in {
        let (a, b) = (nz.col_start[i] as usize, nz.col_start[i + 1] as usize);
        let mut acc = [T::zero(); B];
        for (&r, &v) in nz.row[a..b].iter().zip(&nz.col_val[a..b]) {
            let d: &[T; B] = dy[r as usize * fan_out + c0..][..B]
                .try_into()
                .expect("B values");
            for (s, &dv) in acc.iter_mut().zip(d) {
                *s += v * dv;
            }
        }
        // SAFETY: the caller's part alone writes columns c0..c0 + B of dW.
        let out = unsafe { g.range(i * fan_out + c0, i * fan_out + c0 + B) };
        if accumulate {
            out.iter_mut().zip(&acc).for_each(|(o, &s)| *o += s);
        } else {
            out.copy_from_slice(&acc);
        }
    }
}

/// `dW = xᵀ·dy` (added to `g` when `accumulate`) for the rows `nz` holds, by column ([`Nonzeros::by_columns`]),
/// with `dW` stored `[in, out]` as the weight is.
pub fn weight_grad<T: Real>(
    g: &mut [T],
    nz: &Nonzeros<T>,
    dy: &[T],
    fan_in: usize,
    fan_out: usize,
    accumulate: bool,
) {
    weight_grad_in(split(fan_out), g, nz, dy, fan_in, fan_out, accumulate)
}

/// [`weight_grad`] in `parts` parts of `step` outputs.
fn weight_grad_in<T: Real>(
    (parts, step): (usize, usize),
    g: &mut [T],
    nz: &Nonzeros<T>,
    dy: &[T],
    fan_in: usize,
    fan_out: usize,
    accumulate: bool,
) {
    assert_eq!(nz.col_start.len(), fan_in + 1, "by_columns first");
    let g = Disjoint::new(&mut g[..fan_in * fan_out]);
    for_output_parts((parts, step), fan_out, |o0, o1| {
        super::simd::widest(
            #[inline(always)]
            || {
                blocks(
                    o0,
                    o1,
                    #[inline(always)]
                    |c| grad_block::<T, BLOCK>(&g, nz, dy, fan_in, fan_out, c, accumulate),
                    #[inline(always)]
                    |c| grad_block::<T, 16>(&g, nz, dy, fan_in, fan_out, c, accumulate),
                    #[inline(always)]
                    |c| grad_block::<T, 1>(&g, nz, dy, fan_in, fan_out, c, accumulate),
                )
            },
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gemm::{matmul, n, t};

    /// A batch with about `density` of its values nonzero, row 2 and column 5 all zero.
    fn batch(rows: usize, cols: usize, density: f64) -> Vec<f64> {
        (0..rows * cols)
            .map(|k| {
                let (r, c) = (k / cols, k % cols);
                let u = ((k as f64 * 0.618_034).fract() + (r as f64 * 0.31).sin().abs()) % 1.0;
                if r == 2 || c == 5 || u > density {
                    0.0
                } else {
                    (k as f64 * 0.37).sin()
                }
            })
            .collect()
    }

    /// Both products equal the dense ones (in f64, to rounding), for widths around a block, a part and a vector.
    #[test]
    fn sparse_products_equal_the_dense_ones() {
        for (rows, fan_in, fan_out) in [
            (5, 7, 3),
            (9, 30, 64),
            (4, 13, 130),
            (16, 50, 200),
            (3, 9, 401),
        ] {
            let x = batch(rows, fan_in, 0.2);
            let w: Vec<f64> = (0..fan_in * fan_out)
                .map(|k| (k as f64 * 0.71).cos())
                .collect();
            let dy: Vec<f64> = (0..rows * fan_out)
                .map(|k| (k as f64 * 0.53).sin())
                .collect();
            let mut nz = Nonzeros::default();
            assert!(nz.of(&x, rows, fan_in, usize::MAX));
            nz.by_columns(fan_in);
            let (mut ys, mut yd) = (vec![7.0; rows * fan_out], vec![0.0; rows * fan_out]);
            forward(&w, &nz, &mut ys, fan_in, fan_out);
            matmul(&mut yd, n(&x), n(&w), rows, fan_out, fan_in, false);
            let (mut gs, mut gd) = (vec![1.0; fan_in * fan_out], vec![1.0; fan_in * fan_out]);
            weight_grad(&mut gs, &nz, &dy, fan_in, fan_out, true);
            matmul(&mut gd, t(&x), n(&dy), fan_in, fan_out, rows, true);
            for (what, s, d) in [("y", &ys, &yd), ("dW added", &gs, &gd)] {
                for (a, b) in s.iter().zip(d.iter()) {
                    assert!(
                        (a - b).abs() < 1e-12,
                        "{what} {rows}x{fan_in}x{fan_out}: {a} vs {b}"
                    );
                }
            }
            gs.fill(3.0);
            weight_grad(&mut gs, &nz, &dy, fan_in, fan_out, false);
            matmul(&mut gd, t(&x), n(&dy), fan_in, fan_out, rows, false);
            assert!(
                gs.iter().zip(&gd).all(|(a, b)| (a - b).abs() < 1e-12),
                "dW set"
            );
        }
    }

    /// The same bits however the outputs are split over threads.
    #[test]
    fn results_do_not_depend_on_the_split() {
        let (rows, fan_in, fan_out) = (32, 100, 400);
        let x: Vec<f32> = batch(rows, fan_in, 0.2).iter().map(|&v| v as f32).collect();
        let w: Vec<f32> = (0..fan_in * fan_out)
            .map(|k| (k as f32 * 0.71).cos())
            .collect();
        let dy: Vec<f32> = (0..rows * fan_out)
            .map(|k| (k as f32 * 0.53).sin())
            .collect();
        let mut nz = Nonzeros::default();
        assert!(nz.of(&x, rows, fan_in, usize::MAX));
        nz.by_columns(fan_in);
        let run = |parts| {
            let (mut y, mut g) = (vec![0f32; rows * fan_out], vec![0f32; fan_in * fan_out]);
            forward_in(split_in(parts, fan_out), &w, &nz, &mut y, fan_in, fan_out);
            weight_grad_in(
                split_in(parts, fan_out),
                &mut g,
                &nz,
                &dy,
                fan_in,
                fan_out,
                false,
            );
            (y, g)
        };
        let one = run(1);
        for parts in [2, 3, 7] {
            let many = run(parts);
            assert!(
                many.0
                    .iter()
                    .zip(&one.0)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
            assert!(
                many.1
                    .iter()
                    .zip(&one.1)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
    }

    #[test]
    fn density_decides() {
        let mut nz = Nonzeros::default();
        let sparse = batch(8, 100, 0.1);
        assert!(nz.of(&sparse, 8, 100, most_nonzeros(800)));
        let dense: Vec<f64> = (1..801).map(|k| k as f64).collect();
        assert!(!nz.of(&dense, 8, 100, most_nonzeros(800)));
        // The count decides at the edge as the listing would: `max` nonzeros are kept, one more is not.
        let ones = sparse.iter().filter(|&&v| v != 0.0).count();
        assert!(nz.of(&sparse, 8, 100, ones) && nz.row_start[8] as usize == ones);
        assert!(!nz.of(&sparse, 8, 100, ones - 1));
        // A second call forgets the first's entries.
        assert!(nz.of(&sparse, 8, 100, usize::MAX));
        nz.by_columns(100);
        let mut y = vec![0.0; 8 * 3];
        let w = vec![1.0; 300];
        forward(&w, &nz, &mut y, 100, 3);
        let sums: Vec<f64> = sparse.chunks(100).map(|r| r.iter().sum()).collect();
        assert!(
            y.chunks(3)
                .zip(&sums)
                .all(|(r, s)| r.iter().all(|v| (v - s).abs() < 1e-12))
        );
    }
}
