//! The numeric core: GEMM, dense layers and activations with explicit forward and backward, optimisers.
//!
//! Everything is generic over [`Real`] so that training runs in f32 while gradient checks run in f64.

pub mod activation;
pub mod alloc;
pub mod batchnorm;
pub mod conv;
pub mod denormal;
pub mod dist;
pub mod gemm;
pub mod init;
pub mod linear;
pub mod ops;
pub mod optim;
pub mod params;
mod pool;
pub(crate) mod simd;
pub mod sparse;
pub mod threads;

#[cfg(test)]
pub(crate) mod gradcheck;

pub use activation::Activation;
pub use linear::Linear;
pub use optim::{Adam, Optimizer, Sgd};
pub use params::Params;

/// A floating-point type the core computes in (f32 for training, f64 for gradient checks).
pub trait Real:
    num_traits::Float
    + num_traits::FromPrimitive
    + Default
    + Send
    + Sync
    + 'static
    + std::fmt::Debug
    + std::fmt::Display
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::iter::Sum
{
    /// Converts an f64 constant.
    fn c(x: f64) -> Self {
        Self::from_f64(x).expect("finite constant")
    }
    /// Converts to f64 for reporting.
    fn f64(self) -> f64 {
        self.to_f64().unwrap_or(f64::NAN)
    }

    /// Hook for [`ops::bernoulli_nll`]: f32 overrides it with a vectorised, multi-threaded kernel.
    fn bernoulli_nll(
        logits: &mut [Self],
        x: &[Self],
        d: usize,
        repeat: usize,
        nll: &mut [Self],
        grad_scale: Option<Self>,
    ) {
        ops::bernoulli_nll_generic(logits, x, d, repeat, nll, grad_scale)
    }

    /// Hook for [`Activation::forward_bias`]: f32 overrides it with vectorised kernels split over the pool.
    fn activation_forward(act: Activation, y: &mut [Self], bias: &[Self]) {
        act.forward_bias_generic(y, bias)
    }

    /// Hook for [`Activation::backward`]: f32 overrides it to split the work over the pool.
    fn activation_backward(act: Activation, y: &[Self], dy: &mut [Self]) {
        act.backward_generic(y, dy)
    }

    /// Hook for Adam's update: f32 overrides it with a vectorised, multi-threaded kernel.
    #[allow(clippy::too_many_arguments)]
    fn adam_update(p: &mut [Self], g: &[Self], m: &mut [Self], v: &mut [Self], c: [f64; 7]) {
        let [b1, b2, one_b1, one_b2, step, inv_sqrt_bc2, eps] = c.map(Self::c);
        for i in 0..p.len() {
            m[i] = b1 * m[i] + one_b1 * g[i];
            v[i] = b2 * v[i] + one_b2 * g[i] * g[i];
            p[i] -= step * m[i] / (v[i].sqrt() * inv_sqrt_bc2 + eps);
        }
    }
}

impl Real for f64 {}

impl Real for f32 {
    fn bernoulli_nll(
        logits: &mut [f32],
        x: &[f32],
        d: usize,
        repeat: usize,
        nll: &mut [f32],
        grad_scale: Option<f32>,
    ) {
        let rows = nll.len().min(logits.len() / d);
        let (grad, scale) = (grad_scale.is_some(), grad_scale.unwrap_or(0.0));
        let (logits, nll) = (threads::Disjoint::new(logits), threads::Disjoint::new(nll));
        threads::for_rows(rows, 64, |r0, r1| {
            // SAFETY: for_rows hands out disjoint row ranges.
            let (l, n) = unsafe { (logits.range(r0 * d, r1 * d), nll.range(r0, r1)) };
            simd::bernoulli_rows(l, x, d, repeat, r0, n, grad, scale);
        });
    }

    fn activation_forward(act: Activation, y: &mut [f32], bias: &[f32]) {
        let cols = bias.len();
        let rows = y.len() / cols.max(1);
        let y = threads::Disjoint::new(y);
        // Element-wise, so any split gives the same bits; rows of at least 16k values are worth a hand-off.
        threads::for_rows(rows, (1 << 14) / cols.max(1), |r0, r1| {
            // SAFETY: for_rows hands out disjoint row ranges.
            let y = unsafe { y.range(r0 * cols, r1 * cols) };
            match act {
                Activation::Tanh => simd::tanh_bias(y, bias),
                _ => simd::widest(
                    #[inline(always)]
                    || act.forward_bias_generic(y, bias),
                ),
            }
        });
    }

    fn activation_backward(act: Activation, y: &[f32], dy: &mut [f32]) {
        let n = dy.len().min(y.len());
        let dy = threads::Disjoint::new(dy);
        threads::for_rows(n, 1 << 14, |a, b| {
            // SAFETY: for_rows hands out disjoint ranges.
            let dy = unsafe { dy.range(a, b) };
            simd::widest(
                #[inline(always)]
                || act.backward_generic(&y[a..b], dy),
            );
        });
    }

    fn adam_update(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: [f64; 7]) {
        let c = c.map(|v| v as f32);
        let n = p.len();
        let (p, m, v) = (
            threads::Disjoint::new(p),
            threads::Disjoint::new(m),
            threads::Disjoint::new(v),
        );
        threads::for_rows(n, 4096, |a, b| {
            // SAFETY: for_rows hands out disjoint ranges.
            let (p, m, v) = unsafe { (p.range(a, b), m.range(a, b), v.range(a, b)) };
            simd::adam(p, &g[a..b], m, v, &c);
        });
    }
}
