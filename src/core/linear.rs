//! The dense layer `y = x·Wᵀ + b`, forward and backward side by side; the bias is added by the activation pass.

use super::Real;
use super::gemm::{matmul, n, t};
use super::params::Registry;
use super::threads;

/// A dense layer's shape and where its weight (`[out, in]`) and bias (`[out]`) live in [`Params`].
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
        if self.input_major {
            return;
        }
        let (fi, fo) = (self.fan_in, self.fan_out);
        let w = &mut p[self.w..self.w + fi * fo];
        let stored = w.to_vec();
        for o in 0..fo {
            for i in 0..fi {
                w[i * fo + o] = stored[o * fi + i];
            }
        }
        self.input_major = true;
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
        assert!(
            !self.input_major,
            "a copy stored for inference has no gradients"
        );
        let (fi, fo) = (self.fan_in, self.fan_out);
        if let Some(dx) = dx {
            matmul(dx, n(dy), n(self.weight(p)), rows, fi, fo, false);
        }
        matmul(
            &mut g[self.w..self.w + fi * fo],
            t(dy),
            n(x),
            fo,
            fi,
            rows,
            accumulate,
        );
        bias_grad(&mut g[self.b..self.b + fo], &dy[..rows * fo], accumulate);
    }
}

/// Sums `dy` (rows of `gb.len()` values: features, or channels of NHWC pixels) per column into `gb`, or adds
/// to it when `accumulate`.
pub fn bias_grad<T: Real>(gb: &mut [T], dy: &[T], accumulate: bool) {
    let cols = gb.len();
    if !accumulate {
        gb.fill(T::zero());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;
    use crate::core::init::linear_default;
    use crate::core::params::Params;
    use rand::SeedableRng;

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let mut params = Params::<f64>::default();
        let layer = Linear::new(&mut params, "fc", 5, 3);
        let (w, rest) = params.data.split_at_mut(layer.b);
        linear_default(&mut w[layer.w..], rest, 5, &mut rng);
        let rows = 4;
        let x: Vec<f64> = (0..rows * 5).map(|i| (i as f64 * 0.37).sin()).collect();
        let r: Vec<f64> = (0..rows * 3).map(|i| (i as f64 * 0.91).cos()).collect();
        // Loss L = Σ r ⊙ (x·Wᵀ + b), whose gradient w.r.t. the output is r.
        let loss = |p: &[f64], x: &[f64]| {
            let mut y = vec![0.0; rows * 3];
            layer.forward(p, x, &mut y, rows);
            y.iter()
                .zip(&r)
                .enumerate()
                .map(|(i, (y, r))| (y + p[layer.b + i % 3]) * r)
                .sum::<f64>()
        };
        let mut dx = vec![0.0; rows * 5];
        params.zero_grad();
        layer.backward(
            &params.data,
            &mut params.grad,
            &x,
            &r,
            Some(&mut dx),
            rows,
            false,
        );
        check_gradients(&params.data, &params.grad, |p| loss(p, &x), "linear params");
        check_gradients(&x, &dx, |x| loss(&params.data, x), "linear input");
    }
}
