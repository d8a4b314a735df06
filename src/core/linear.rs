//! The dense layer `y = x·Wᵀ + b`, forward and backward side by side; the bias is added by the activation pass.

use super::Real;
use super::gemm::{matmul, n, t};
use super::params::Registry;
use super::sparse::{self, Nonzeros};
use super::threads;

/// A dense layer's shape and where its weight (`[out, in]`) and bias (`[out]`) live in [`Params`](super::Params).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    /// Inputs per row.
    pub fan_in: usize,
    /// Outputs per row.
    pub fan_out: usize,
    /// Offset of the weight.
    pub w: usize,
    /// Offset of the bias.
    pub b: usize,
    /// Whether the weight is stored `[in, out]` instead: see [`Linear::store_for_inference`].
    pub input_major: bool,
}

impl Linear {
    /// Registers `name.weight` and `name.bias`.
    pub fn new(params: &mut impl Registry, name: &str, fan_in: usize, fan_out: usize) -> Self {
        let w = params.register(&format!("{name}.weight"), &[fan_out, fan_in]);
        let b = params.register(&format!("{name}.bias"), &[fan_out]);
        Linear {
            fan_in,
            fan_out,
            w,
            b,
            input_major: false,
        }
    }

    /// The weight in `p`.
    pub fn weight<'a, T>(&self, p: &'a [T]) -> &'a [T] {
        &p[self.w..self.w + self.fan_in * self.fan_out]
    }

    /// The bias in `p`.
    pub fn bias<'a, T>(&self, p: &'a [T]) -> &'a [T] {
        &p[self.b..self.b + self.fan_out]
    }

    /// Stores the weight in `p` as `[in, out]` for a copy that only runs forward. The `gemm` crate gathers a
    /// `[out, in]` weight with a strided copy on every call, and evaluation multiplies the same weight thousands of
    /// times: 512×400→784 took 1.4–1.8 % less time and 512×20→400 10 % less (`examples/gemm_shapes.rs`). Products
    /// of more than one row give bit-identical results.
    pub fn store_for_inference<T: Copy>(&mut self, p: &mut [T]) {
        self.set_layout(true, p, &mut []);
    }

    /// Stores the weight in `p`, and the same range of each of `alike` (an optimiser's moments, laid out as the
    /// weights), input-major (`[in, out]`) or as PyTorch does (`[out, in]`); nothing moves if it already is.
    pub fn set_layout<T: Copy>(&mut self, input_major: bool, p: &mut [T], alike: &mut [&mut [T]]) {
        if self.input_major == input_major {
            return;
        }
        let (fi, fo) = (self.fan_in, self.fan_out);
        // Stored [rows, cols] now, [cols, rows] after.
        let (rows, cols) = if input_major { (fo, fi) } else { (fi, fo) };
        let range = self.w..self.w + fi * fo;
        for buf in std::iter::once(p).chain(alike.iter_mut().map(|a| &mut **a)) {
            if buf.len() < range.end {
                continue;
            }
            let w = &mut buf[range.clone()];
            let stored = w.to_vec();
            for r in 0..rows {
                for c in 0..cols {
                    w[c * rows + r] = stored[r * cols + c];
                }
            }
        }
        self.input_major = input_major;
    }

    /// `y = x·Wᵀ` for `rows` rows (the bias comes with the activation, fused).
    pub fn forward<T: Real>(&self, p: &[T], x: &[T], y: &mut [T], rows: usize) {
        let w = if self.input_major {
            n(self.weight(p))
        } else {
            t(self.weight(p))
        };
        matmul(y, n(x), w, rows, self.fan_out, self.fan_in, false);
    }

    /// Writes `dW = dyᵀ·x` and `db = Σ dy` into `g` (adds them when `accumulate`), and sets `dx = dy·W` when asked.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        x: &[T],
        dy: &[T],
        dx: Option<&mut [T]>,
        rows: usize,
        accumulate: bool,
    ) {
        let (fi, fo) = (self.fan_in, self.fan_out);
        self.input_grad(p, dy, dx, rows);
        let gw = &mut g[self.w..self.w + fi * fo];
        if self.input_major {
            matmul(gw, t(x), n(dy), fi, fo, rows, accumulate);
        } else {
            matmul(gw, t(dy), n(x), fo, fi, rows, accumulate);
        }
        bias_grad(&mut g[self.b..self.b + fo], &dy[..rows * fo], accumulate);
    }

    /// [`Linear::backward`] (not accumulating) for an input-major weight whose forward pass multiplied only the
    /// nonzero input values `nz` holds ([`sparse::forward`]).
    pub fn backward_sparse<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        nz: &mut Nonzeros<T>,
        dy: &[T],
        dx: Option<&mut [T]>,
        rows: usize,
    ) {
        assert!(self.input_major, "sparse products need an [in, out] weight");
        let (fi, fo) = (self.fan_in, self.fan_out);
        self.input_grad(p, dy, dx, rows);
        nz.by_columns(fi);
        sparse::weight_grad(&mut g[self.w..self.w + fi * fo], nz, dy, fi, fo, false);
        bias_grad(&mut g[self.b..self.b + fo], &dy[..rows * fo], false);
    }

    /// `y = x·Wᵀ` for the `rows` rows of `x` that `nz` holds, multiplying only their nonzero values (see
    /// [`super::sparse`]); the weight must be input-major.
    pub fn forward_sparse<T: Real>(&self, p: &[T], nz: &Nonzeros<T>, y: &mut [T]) {
        assert!(self.input_major, "sparse products need an [in, out] weight");
        sparse::forward(self.weight(p), nz, y, self.fan_in, self.fan_out);
    }

    /// `dx = dy·W` when asked.
    fn input_grad<T: Real>(&self, p: &[T], dy: &[T], dx: Option<&mut [T]>, rows: usize) {
        if let Some(dx) = dx {
            let w = if self.input_major {
                t(self.weight(p))
            } else {
                n(self.weight(p))
            };
            matmul(dx, n(dy), w, rows, self.fan_in, self.fan_out, false);
        }
    }
}

/// Sums `dy` (rows of `gb.len()` values: features, or channels of NHWC pixels) per column into `gb`, or adds
/// to it when `accumulate`.
pub fn bias_grad<T: Real>(gb: &mut [T], dy: &[T], accumulate: bool) {
    let cols = gb.len();
    if !accumulate {
        gb.fill(T::zero());
    }
    if cols < 8 && dy.len() >= NARROW_MIN {
        return super::simd::widest(
            #[inline(always)]
            || narrow_sums(gb, dy),
        );
    }
    // Split by columns: IWAE's decoder sums 1 000 rows of 784 here every step, which on one thread kept the other
    // waiting.
    threads::column_sums(
        dy.len(),
        cols,
        gb,
        #[inline(always)]
        |a, b, [acc]| {
            for row in dy.chunks_exact(cols) {
                acc.iter_mut().zip(&row[a..b]).for_each(|(s, &d)| *s += d);
            }
        },
    );
}

/// Values from which a sum of narrow rows takes [`narrow_sums`]: below it, a dense head's few rows.
const NARROW_MIN: usize = 4096;
/// Running sums side by side in [`narrow_sums`]: eight vectors of AVX2.
const NARROW_LANES: usize = 64;

/// Adds the column sums of `dy` to `gb` when rows are narrower than a vector (a one-channel image's bias sums
/// 100 000 pixels a batch): summed row by row, that is one chain of dependent adds. Consecutive rows are summed
/// side by side as one wide row instead, and the groups folded in order at the end, so the sums are the same
/// whatever the thread count.
#[inline(always)]
fn narrow_sums<T: Real>(gb: &mut [T], dy: &[T]) {
    let cols = gb.len();
    let wide = NARROW_LANES / cols * cols;
    let mut acc = [T::zero(); NARROW_LANES];
    let acc = &mut acc[..wide];
    let mut rows = dy.chunks_exact(wide);
    for row in &mut rows {
        acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
    }
    acc.iter_mut()
        .zip(rows.remainder())
        .for_each(|(a, &v)| *a += v);
    for group in acc.chunks_exact(cols) {
        gb.iter_mut().zip(group).for_each(|(g, &v)| *g += v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;
    use crate::core::init::linear_default;
    use crate::core::params::Params;
    use rand::SeedableRng;

    /// Every layout and path: `[out, in]`, `[in, out]`, and `[in, out]` over only the nonzero inputs.
    #[test]
    fn gradients_match_finite_differences() {
        for (input_major, sparse) in [(false, false), (true, false), (true, true)] {
            check_layer(input_major, sparse);
        }
    }

    fn check_layer(input_major: bool, sparse: bool) {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let mut params = Params::<f64>::default();
        let mut layer = Linear::new(&mut params, "fc", 5, 3);
        let (w, rest) = params.data.split_at_mut(layer.b);
        linear_default(&mut w[layer.w..], rest, 5, &mut rng);
        layer.set_layout(input_major, &mut params.data, &mut []);
        let rows = 4;
        // Some inputs zero, for the sparse path to skip.
        let x: Vec<f64> = (0..rows * 5)
            .map(|i| {
                if i % 3 == 1 {
                    0.0
                } else {
                    (i as f64 * 0.37).sin()
                }
            })
            .collect();
        let r: Vec<f64> = (0..rows * 3).map(|i| (i as f64 * 0.91).cos()).collect();
        let mut nz = Nonzeros::default();
        // Loss L = Σ r ⊙ (x·Wᵀ + b), whose gradient w.r.t. the output is r.
        let loss = |p: &[f64], x: &[f64]| {
            let mut y = vec![0.0; rows * 3];
            if sparse {
                let mut nz = Nonzeros::default();
                assert!(nz.of(x, rows, 5, usize::MAX));
                layer.forward_sparse(p, &nz, &mut y);
            } else {
                layer.forward(p, x, &mut y, rows);
            }
            y.iter()
                .zip(&r)
                .enumerate()
                .map(|(i, (y, r))| (y + p[layer.b + i % 3]) * r)
                .sum::<f64>()
        };
        let mut dx = vec![0.0; rows * 5];
        params.zero_grad();
        if sparse {
            assert!(nz.of(&x, rows, 5, usize::MAX));
            layer.backward_sparse(
                &params.data,
                &mut params.grad,
                &mut nz,
                &r,
                Some(&mut dx),
                rows,
            );
        } else {
            layer.backward(
                &params.data,
                &mut params.grad,
                &x,
                &r,
                Some(&mut dx),
                rows,
                false,
            );
        }
        check_gradients(&params.data, &params.grad, |p| loss(p, &x), "linear params");
        if !sparse {
            // The sparse path's loss is not smooth in an input at zero: it skips it.
            check_gradients(&x, &dx, |x| loss(&params.data, x), "linear input");
        }
    }

    /// Both layouts give the same outputs, and moving to one and back restores the weights and moments exactly.
    #[test]
    fn layouts_agree_and_round_trip() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let mut params = Params::<f64>::default();
        let mut layer = Linear::new(&mut params, "fc", 7, 4);
        let (w, rest) = params.data.split_at_mut(layer.b);
        linear_default(&mut w[layer.w..], rest, 7, &mut rng);
        let before = params.data.clone();
        let mut m: Vec<f64> = (0..params.data.len()).map(|i| i as f64).collect();
        let m0 = m.clone();
        let x: Vec<f64> = (0..3 * 7).map(|i| (i as f64 * 0.3).cos()).collect();
        let (mut y0, mut y1) = (vec![0.0; 12], vec![0.0; 12]);
        layer.forward(&params.data, &x, &mut y0, 3);
        layer.set_layout(true, &mut params.data, &mut [&mut m]);
        assert_ne!(params.data, before);
        layer.forward(&params.data, &x, &mut y1, 3);
        assert!(y0.iter().zip(&y1).all(|(a, b)| (a - b).abs() < 1e-14));
        // The moments moved with the weights: element (o, i) of both is at the same place.
        assert_eq!(m[layer.w + 5 * 4 + 3], m0[layer.w + 3 * 7 + 5]);
        layer.set_layout(false, &mut params.data, &mut [&mut m]);
        assert_eq!(params.data, before);
        assert_eq!(m, m0);
    }

    #[test]
    fn narrow_rows_sum_to_each_columns_total() {
        for cols in [1usize, 3, 7] {
            let rows = 5000 / cols + 13;
            // Small whole numbers, so every order of adding gives the exact total.
            let dy: Vec<f32> = (0..rows * cols)
                .map(|i| (i * 7 % 11) as f32 - 5.0)
                .collect();
            let want: Vec<f32> = (0..cols)
                .map(|j| dy.iter().skip(j).step_by(cols).sum())
                .collect();
            let mut gb = vec![f32::NAN; cols];
            bias_grad(&mut gb, &dy, false);
            assert_eq!(gb, want, "{cols} columns");
            bias_grad(&mut gb, &dy, true);
            let twice: Vec<f32> = want.iter().map(|v| 2.0 * v).collect();
            assert_eq!(gb, twice, "{cols} columns, accumulated");
        }
    }
}
