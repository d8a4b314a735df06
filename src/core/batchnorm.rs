//! Batch normalisation (Ioffe & Szegedy 2015) over the channels of NHWC rows, forward and backward side by side.
//!
//! One layer serves both PyTorch kinds: a dense layer's row is one "pixel" whose channels are its features
//! (`BatchNorm1d`), a convolution's row is `h·w` pixels of `c` channels (`BatchNorm2d`). Statistics are per
//! channel over every pixel of every row. The shift β is added by the activation pass that follows, fused, the
//! way dense and convolutional layers leave their bias to it.

use super::Real;
use super::params::Registry;

/// PyTorch's ε added to the variance.
pub const EPS: f64 = 1e-5;
/// PyTorch's momentum of the running statistics: running ← (1 − m)·running + m·batch.
pub const MOMENTUM: f64 = 0.1;

/// A batch-norm layer's shape and where its scale γ, shift β and running statistics live in the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchNorm {
    /// Channels normalised.
    pub channels: usize,
    /// Offset of γ (`weight`).
    pub gamma: usize,
    /// Offset of β (`bias`).
    pub beta: usize,
    /// Offset of the running mean (a buffer: never trained).
    pub mean: usize,
    /// Offset of the running variance (a buffer: never trained).
    pub var: usize,
}

impl BatchNorm {
    /// Registers `name.weight`, `name.bias`, `name.running_mean` and `name.running_var`, PyTorch's names.
    pub fn new(reg: &mut impl Registry, name: &str, channels: usize) -> Self {
        let gamma = reg.register(&format!("{name}.weight"), &[channels]);
        let beta = reg.register(&format!("{name}.bias"), &[channels]);
        let mean = reg.register_buffer(&format!("{name}.running_mean"), &[channels]);
        let var = reg.register_buffer(&format!("{name}.running_var"), &[channels]);
        BatchNorm {
            channels,
            gamma,
            beta,
            mean,
            var,
        }
    }

    /// PyTorch's initial values: γ = 1, β = 0, running mean 0 and running variance 1.
    pub fn init<T: Real>(&self, p: &mut [T]) {
        let c = self.channels;
        p[self.gamma..self.gamma + c].fill(T::one());
        p[self.beta..self.beta + c].fill(T::zero());
        p[self.mean..self.mean + c].fill(T::zero());
        p[self.var..self.var + c].fill(T::one());
    }

    /// The shift β, for the activation pass to add.
    pub fn beta<'a, T>(&self, p: &'a [T]) -> &'a [T] {
        &p[self.beta..self.beta + self.channels]
    }

    /// Values of one channel statistic block: the batch mean, then the biased batch variance.
    pub fn stats_len(&self) -> usize {
        2 * self.channels
    }

    /// Training mode: normalises `y` by the statistics of this batch, keeps x̂ in `xhat` and the batch mean and
    /// variance in `stats`, and leaves γ·x̂ in `y`.
    pub fn forward_train<T: Real>(&self, p: &[T], y: &mut [T], xhat: &mut [T], stats: &mut [T]) {
        let c = self.channels;
        let n = (y.len() / c).max(1) as f64;
        let (mut sum, mut sq) = (vec![0.0f64; c], vec![0.0f64; c]);
        for px in y.chunks_exact(c) {
            sum.iter_mut().zip(px).for_each(|(s, &v)| *s += v.f64());
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        // Two passes: the variance from centred values loses nothing to cancellation.
        for px in y.chunks_exact(c) {
            for ((s, &v), m) in sq.iter_mut().zip(px).zip(&mean) {
                *s += (v.f64() - m).powi(2);
            }
        }
        let var: Vec<f64> = sq.iter().map(|s| s / n).collect();
        let scale: Vec<T> = var.iter().map(|v| T::c(1.0 / (v + EPS).sqrt())).collect();
        let (mean_t, gamma): (Vec<T>, &[T]) = (
            mean.iter().map(|&m| T::c(m)).collect(),
            &p[self.gamma..self.gamma + c],
        );
        for (px, xh) in y.chunks_exact_mut(c).zip(xhat.chunks_exact_mut(c)) {
            for j in 0..c {
                let h = (px[j] - mean_t[j]) * scale[j];
                xh[j] = h;
                px[j] = gamma[j] * h;
            }
        }
        for j in 0..c {
            stats[j] = mean_t[j];
            stats[c + j] = T::c(var[j]);
        }
    }

    /// Evaluation mode: the affine map of the running statistics, γ·(y − mean)/√(var + ε), in place.
    pub fn forward_eval<T: Real>(&self, p: &[T], y: &mut [T]) {
        let c = self.channels;
        let (gamma, mean, var) = (
            &p[self.gamma..self.gamma + c],
            &p[self.mean..self.mean + c],
            &p[self.var..self.var + c],
        );
        let scale: Vec<T> = (0..c)
            .map(|j| gamma[j] / (var[j] + T::c(EPS)).sqrt())
            .collect();
        for px in y.chunks_exact_mut(c) {
            for j in 0..c {
                px[j] = (px[j] - mean[j]) * scale[j];
            }
        }
    }

    /// Backward of training mode. `dy` holds the gradient w.r.t. γ·x̂ + β on entry and w.r.t. the layer's input
    /// on return; γ's and β's gradients are written into `g`.
    pub fn backward<T: Real>(&self, p: &[T], g: &mut [T], xhat: &[T], stats: &[T], dy: &mut [T]) {
        let c = self.channels;
        let n = (dy.len() / c).max(1) as f64;
        let (mut dbeta, mut dgamma) = (vec![0.0f64; c], vec![0.0f64; c]);
        for (d, xh) in dy.chunks_exact(c).zip(xhat.chunks_exact(c)) {
            for j in 0..c {
                dbeta[j] += d[j].f64();
                dgamma[j] += d[j].f64() * xh[j].f64();
            }
        }
        let gamma = &p[self.gamma..self.gamma + c];
        // dx = γ/(σ·n) · (n·dy − Σdy − x̂·Σ(dy·x̂)), with σ = √(var + ε).
        let k: Vec<T> = (0..c)
            .map(|j| T::c(gamma[j].f64() / (stats[c + j].f64() + EPS).sqrt()))
            .collect();
        let (mb, mg): (Vec<T>, Vec<T>) = (
            dbeta.iter().map(|&v| T::c(v / n)).collect(),
            dgamma.iter().map(|&v| T::c(v / n)).collect(),
        );
        for (d, xh) in dy.chunks_exact_mut(c).zip(xhat.chunks_exact(c)) {
            for j in 0..c {
                d[j] = k[j] * (d[j] - mb[j] - xh[j] * mg[j]);
            }
        }
        for j in 0..c {
            g[self.gamma + j] = T::c(dgamma[j]);
            g[self.beta + j] = T::c(dbeta[j]);
        }
    }

    /// Folds a training batch's statistics into the running ones, with PyTorch's unbiased variance; `n` is the
    /// number of values each channel's statistics were taken over. One value has no variance (PyTorch refuses
    /// such a batch): a last batch of one item leaves the running statistics as they are.
    pub fn update_running<T: Real>(&self, p: &mut [T], stats: &[T], n: usize) {
        if n < 2 {
            return;
        }
        let c = self.channels;
        let unbias = n as f64 / (n - 1) as f64;
        for j in 0..c {
            let (m, v) = (stats[j].f64(), stats[c + j].f64() * unbias);
            let rm = &mut p[self.mean + j];
            *rm = T::c((1.0 - MOMENTUM) * rm.f64() + MOMENTUM * m);
            let rv = &mut p[self.var + j];
            *rv = T::c((1.0 - MOMENTUM) * rv.f64() + MOMENTUM * v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Params;
    use crate::core::gradcheck::check_gradients;

    fn layer(c: usize) -> (BatchNorm, Params<f64>) {
        let mut params = Params::<f64>::default();
        let bn = BatchNorm::new(&mut params, "bn", c);
        bn.init(&mut params.data);
        for j in 0..c {
            params.data[bn.gamma + j] = 0.7 + 0.3 * j as f64;
            params.data[bn.beta + j] = -0.2 * j as f64;
        }
        (bn, params)
    }

    #[test]
    fn training_mode_gradients_match_finite_differences() {
        // Three rows of 2×2 pixels with 3 channels: statistics over 12 values per channel.
        let (c, len, rows) = (3, 12, 3);
        let (bn, mut params) = layer(c);
        let x: Vec<f64> = (0..rows * len)
            .map(|i| (i as f64 * 0.73).sin() * 2.0 + 0.3)
            .collect();
        let r: Vec<f64> = (0..rows * len).map(|i| (i as f64 * 1.31).cos()).collect();
        // L = Σ r ⊙ tanh(γ·x̂ + β): a nonlinearity after it, so every term of the backward formula matters.
        let loss = |p: &[f64], x: &[f64]| {
            let (mut y, mut xh, mut st) = (x.to_vec(), vec![0.0; x.len()], vec![0.0; 2 * c]);
            bn.forward_train(p, &mut y, &mut xh, &mut st);
            y.iter()
                .enumerate()
                .map(|(i, v)| (v + p[bn.beta + i % c]).tanh() * r[i])
                .sum::<f64>()
        };
        let (mut y, mut xh, mut st) = (x.clone(), vec![0.0; x.len()], vec![0.0; 2 * c]);
        bn.forward_train(&params.data, &mut y, &mut xh, &mut st);
        let mut dy: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, v)| r[i] * (1.0 - (v + params.data[bn.beta + i % c]).tanh().powi(2)))
            .collect();
        params.zero_grad();
        bn.backward(&params.data, &mut params.grad, &xh, &st, &mut dy);
        let trained = bn.gamma..bn.beta + c;
        check_gradients(
            &params.data[trained.clone()],
            &params.grad[trained.clone()],
            |q| {
                let mut p = params.data.clone();
                p[trained.clone()].copy_from_slice(q);
                loss(&p, &x)
            },
            "batch norm γ, β",
        );
        check_gradients(&x, &dy, |x| loss(&params.data, x), "batch norm input");
    }

    #[test]
    fn training_normalises_and_eval_mode_is_the_running_affine_map() {
        let (c, rows) = (2, 50);
        let (bn, mut params) = layer(c);
        let x: Vec<f64> = (0..rows * c)
            .map(|i| {
                if i % 2 == 0 {
                    5.0 + (i as f64).sin()
                } else {
                    -3.0 + 2.0 * (i as f64).cos()
                }
            })
            .collect();
        let (mut y, mut xh, mut st) = (x.clone(), vec![0.0; x.len()], vec![0.0; 2 * c]);
        bn.forward_train(&params.data, &mut y, &mut xh, &mut st);
        for j in 0..c {
            let col: Vec<f64> = xh.iter().skip(j).step_by(c).copied().collect();
            let mean = col.iter().sum::<f64>() / rows as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
            assert!(
                mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-3,
                "channel {j}: {mean} {var}"
            );
        }
        // Many identical batches drive the running statistics to the batch's (variance unbiased).
        for _ in 0..300 {
            bn.update_running(&mut params.data, &st, rows);
        }
        let want_var = st[c] * rows as f64 / (rows - 1) as f64;
        assert!((params.data[bn.mean] - st[0]).abs() < 1e-9);
        assert!((params.data[bn.var] - want_var).abs() < 1e-9);
        // A batch of one value per channel has no variance: it leaves the running statistics alone.
        let kept = params.data.clone();
        bn.update_running(&mut params.data, &[5.0, 5.0, 0.0, 0.0], 1);
        assert_eq!(params.data, kept);
        // Eval mode is exactly γ·(x − running mean)/√(running var + ε).
        params.data[bn.mean + 1] = 0.25;
        params.data[bn.var + 1] = 4.0;
        let mut e = x.clone();
        bn.forward_eval(&params.data, &mut e);
        for (i, (&v, &xi)) in e.iter().zip(&x).enumerate() {
            let j = i % c;
            let p = &params.data;
            let want = p[bn.gamma + j] * (xi - p[bn.mean + j]) / (p[bn.var + j] + EPS).sqrt();
            assert!((v - want).abs() < 1e-12, "{v} vs {want}");
        }
    }
}
