//! Batch normalisation (Ioffe & Szegedy 2015) over the channels of NHWC rows, forward and backward side by side.
//!
//! One layer serves both PyTorch kinds: a dense layer's row is one "pixel" whose channels are its features
//! (`BatchNorm1d`), a convolution's row is `h·w` pixels of `c` channels (`BatchNorm2d`). Statistics are per
//! channel over every pixel of every row. The shift β is added by the activation pass that follows, fused, the
//! way dense and convolutional layers leave their bias to it.

use super::Real;
use super::activation::{Piecewise, piecewise};
use super::params::Registry;
use super::simd;
use super::threads::{self, Disjoint};

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
    /// variance in `stats`, and leaves γ·x̂ in `y`, or act(γ·x̂ + β) with `act` (one pass fewer over `y`).
    pub fn forward_train<T: Real>(
        &self,
        p: &[T],
        y: &mut [T],
        xhat: &mut [T],
        stats: &mut [T],
        act: Option<Piecewise>,
    ) {
        let c = self.channels;
        let n = (y.len() / c).max(1) as f64;
        let mut mean = vec![0.0f64; c];
        threads::column_sums(
            y.len(),
            c,
            &mut mean,
            #[inline(always)]
            |j0, j1, [acc]| {
                for px in y.chunks_exact(c) {
                    acc.iter_mut()
                        .zip(&px[j0..j1])
                        .for_each(|(s, &v)| *s += v.f64());
                }
            },
        );
        mean.iter_mut().for_each(|s| *s /= n);
        // Two passes: the variance from centred values loses nothing to cancellation.
        let mut var = vec![0.0f64; c];
        threads::column_sums(
            y.len(),
            c,
            &mut var,
            #[inline(always)]
            |j0, j1, [acc]| {
                let mean = &mean[j0..j1];
                for px in y.chunks_exact(c) {
                    for ((s, &v), m) in acc.iter_mut().zip(&px[j0..j1]).zip(mean) {
                        *s += (v.f64() - m).powi(2);
                    }
                }
            },
        );
        var.iter_mut().for_each(|s| *s /= n);
        let scale: Vec<T> = var.iter().map(|v| T::c(1.0 / (v + EPS).sqrt())).collect();
        let (mean_t, gamma): (Vec<T>, &[T]) = (
            mean.iter().map(|&m| T::c(m)).collect(),
            &p[self.gamma..self.gamma + c],
        );
        let len = y.len();
        let (ys, xs) = (Disjoint::new(y), Disjoint::new(xhat));
        let coef = Coef {
            mean: &mean_t,
            scale: &scale,
            gamma,
            beta: self.beta(p),
        };
        match act {
            None => normalise(&ys, &xs, len, c, &coef, None::<fn(T) -> T>),
            Some(pw) => piecewise!(pw, T, |fwd, _grad| normalise(
                &ys,
                &xs,
                len,
                c,
                &coef,
                Some(fwd)
            )),
        }
        for j in 0..c {
            stats[j] = mean_t[j];
            stats[c + j] = T::c(var[j]);
        }
    }

    /// Evaluation mode: the affine map of the running statistics, γ·(y − mean)/√(var + ε), in place, or its
    /// act(… + β) with `act`.
    pub fn forward_eval<T: Real>(&self, p: &[T], y: &mut [T], act: Option<Piecewise>) {
        let c = self.channels;
        let (gamma, mean, var) = (
            &p[self.gamma..self.gamma + c],
            &p[self.mean..self.mean + c],
            &p[self.var..self.var + c],
        );
        let scale: Vec<T> = (0..c)
            .map(|j| gamma[j] / (var[j] + T::c(EPS)).sqrt())
            .collect();
        let len = y.len();
        let ys = Disjoint::new(y);
        let k = Coef {
            mean,
            scale: &scale,
            gamma,
            beta: self.beta(p),
        };
        match act {
            None => affine(&ys, len, c, &k, None::<fn(T) -> T>),
            Some(pw) => piecewise!(pw, T, |fwd, _grad| affine(&ys, len, c, &k, Some(fwd))),
        }
    }

    /// Backward of training mode. `dy` holds the gradient w.r.t. the layer's output on entry (γ·x̂ + β, or
    /// act(γ·x̂ + β) with `act`) and w.r.t. its input on return; γ's and β's gradients are written into `g`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        xhat: &[T],
        stats: &[T],
        dy: &mut [T],
        act: Option<Piecewise>,
    ) {
        match act {
            None => self.backward_with(p, g, xhat, stats, dy, |_, d| d),
            Some(pw) => piecewise!(pw, T, |_fwd, grad| self
                .backward_with(p, g, xhat, stats, dy, grad)),
        }
    }

    /// [`BatchNorm::backward`] with the activation's derivative `grad(s, d) = d·act'(s)` at s = γ·x̂ + β, taken in
    /// both passes over `dy` instead of a pass of its own.
    #[inline(always)]
    fn backward_with<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        xhat: &[T],
        stats: &[T],
        dy: &mut [T],
        grad: impl Fn(T, T) -> T + Sync,
    ) {
        let c = self.channels;
        let n = (dy.len() / c).max(1) as f64;
        let (gamma, beta) = (&p[self.gamma..self.gamma + c], self.beta(p));
        // Σdy then Σdy·x̂ per channel.
        let mut sums = vec![0.0f64; 2 * c];
        {
            let dy = &*dy;
            threads::column_sums(
                dy.len(),
                c,
                &mut sums,
                #[inline(always)]
                |j0, j1, [db, dg]| {
                    let (gamma, beta) = (&gamma[j0..j1], &beta[j0..j1]);
                    for (d, xh) in dy.chunks_exact(c).zip(xhat.chunks_exact(c)) {
                        let acc = db.iter_mut().zip(dg.iter_mut());
                        let vals = d[j0..j1]
                            .iter()
                            .zip(&xh[j0..j1])
                            .zip(gamma.iter().zip(beta));
                        for ((b, g), ((&d, &xh), (&gm, &bt))) in acc.zip(vals) {
                            let d = grad(gm * xh + bt, d);
                            *b += d.f64();
                            *g += d.f64() * xh.f64();
                        }
                    }
                },
            );
        }
        let (dbeta, dgamma) = sums.split_at(c);
        // dx = γ/(σ·n) · (n·dy − Σdy − x̂·Σ(dy·x̂)), with σ = √(var + ε).
        let k: Vec<T> = (0..c)
            .map(|j| T::c(gamma[j].f64() / (stats[c + j].f64() + EPS).sqrt()))
            .collect();
        let (mb, mg): (Vec<T>, Vec<T>) = (
            dbeta.iter().map(|&v| T::c(v / n)).collect(),
            dgamma.iter().map(|&v| T::c(v / n)).collect(),
        );
        let len = dy.len();
        let ds = Disjoint::new(dy);
        for_pixels(
            len,
            c,
            #[inline(always)]
            |a, b| {
                // SAFETY: the parts' pixel ranges are disjoint.
                let dy = unsafe { ds.range(a * c, b * c) };
                for (d, xh) in dy
                    .chunks_exact_mut(c)
                    .zip(xhat[a * c..b * c].chunks_exact(c))
                {
                    let coef = k.iter().zip(&mb).zip(&mg).zip(gamma.iter().zip(beta));
                    for ((d, &xh), (((&k, &mb), &mg), (&gm, &bt))) in d.iter_mut().zip(xh).zip(coef)
                    {
                        *d = k * (grad(gm * xh + bt, *d) - mb - xh * mg);
                    }
                }
            },
        );
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

/// Per-channel coefficients of a normalising pass.
struct Coef<'a, T> {
    mean: &'a [T],
    scale: &'a [T],
    gamma: &'a [T],
    beta: &'a [T],
}

/// Training mode's element-wise pass: x̂ = (y − mean)·scale into `xs`, and γ·x̂ into `ys`, or act(γ·x̂ + β) with
/// `act`, as the activation pass after it would compute it.
#[inline(always)]
fn normalise<T: Real>(
    ys: &Disjoint<'_, T>,
    xs: &Disjoint<'_, T>,
    len: usize,
    c: usize,
    k: &Coef<'_, T>,
    act: Option<impl Fn(T) -> T + Sync>,
) {
    for_pixels(
        len,
        c,
        #[inline(always)]
        |a, b| {
            // SAFETY: the parts' pixel ranges are disjoint.
            let (y, xhat) = unsafe { (ys.range(a * c, b * c), xs.range(a * c, b * c)) };
            for (px, xh) in y.chunks_exact_mut(c).zip(xhat.chunks_exact_mut(c)) {
                let coef = k.mean.iter().zip(k.scale).zip(k.gamma).zip(k.beta);
                let vals = px.iter_mut().zip(xh.iter_mut()).zip(coef);
                match &act {
                    Some(act) => {
                        for ((v, h), (((&m, &s), &g), &bt)) in vals {
                            *h = (*v - m) * s;
                            *v = act(g * *h + bt);
                        }
                    }
                    None => {
                        for ((v, h), (((&m, &s), &g), _)) in vals {
                            *h = (*v - m) * s;
                            *v = g * *h;
                        }
                    }
                }
            }
        },
    );
}

/// Evaluation mode's pass: (y − mean)·scale in place, or act(… + β) with `act`, as the activation pass after it
/// would compute it (`gamma` is folded into `scale`).
#[inline(always)]
fn affine<T: Real>(
    ys: &Disjoint<'_, T>,
    len: usize,
    c: usize,
    k: &Coef<'_, T>,
    act: Option<impl Fn(T) -> T + Sync>,
) {
    for_pixels(
        len,
        c,
        #[inline(always)]
        |a, b| {
            // SAFETY: the parts' pixel ranges are disjoint.
            let y = unsafe { ys.range(a * c, b * c) };
            for px in y.chunks_exact_mut(c) {
                let vals = px.iter_mut().zip(k.mean.iter().zip(k.scale));
                match &act {
                    None => vals.for_each(|(v, (&m, &s))| *v = (*v - m) * s),
                    Some(act) => vals
                        .zip(k.beta)
                        .for_each(|((v, (&m, &s)), &bt)| *v = act((*v - m) * s + bt)),
                }
            }
        },
    );
}

/// Values below which a pass stays on the calling thread: handing it off costs more.
const PARALLEL_MIN: usize = 1 << 15;
/// Runs `f(a, b)` over parts of the pixels (`len / c` of them) of an element-wise pass, compiled for the widest
/// vectors the CPU has where `f` is inlined (mark it `#[inline(always)]`).
fn for_pixels(len: usize, c: usize, f: impl Fn(usize, usize) + Sync) {
    let pixels = len / c.max(1);
    let min = if len < PARALLEL_MIN { pixels } else { 64 };
    threads::for_rows(pixels, min, |a, b| {
        simd::widest(
            #[inline(always)]
            || f(a, b),
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Params;
    use crate::core::activation::Activation;
    use crate::core::gradcheck::check_gradients;
    use crate::core::threads;

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

    /// Checks the gradients backward left (γ and β's in `params.grad`, the input's in `dx`) against finite
    /// differences of `loss(params, x)`.
    fn check_layer_gradients(
        bn: &BatchNorm,
        params: &Params<f64>,
        x: &[f64],
        dx: &[f64],
        loss: impl Fn(&[f64], &[f64]) -> f64,
        what: &str,
    ) {
        let trained = bn.gamma..bn.beta + bn.channels;
        check_gradients(
            &params.data[trained.clone()],
            &params.grad[trained.clone()],
            |q| {
                let mut p = params.data.clone();
                p[trained.clone()].copy_from_slice(q);
                loss(&p, x)
            },
            &format!("batch norm γ, β{what}"),
        );
        check_gradients(
            x,
            dx,
            |x| loss(&params.data, x),
            &format!("batch norm input{what}"),
        );
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
            bn.forward_train(p, &mut y, &mut xh, &mut st, None);
            y.iter()
                .enumerate()
                .map(|(i, v)| (v + p[bn.beta + i % c]).tanh() * r[i])
                .sum::<f64>()
        };
        let (mut y, mut xh, mut st) = (x.clone(), vec![0.0; x.len()], vec![0.0; 2 * c]);
        bn.forward_train(&params.data, &mut y, &mut xh, &mut st, None);
        let mut dy: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, v)| r[i] * (1.0 - (v + params.data[bn.beta + i % c]).tanh().powi(2)))
            .collect();
        params.zero_grad();
        bn.backward(&params.data, &mut params.grad, &xh, &st, &mut dy, None);
        check_layer_gradients(&bn, &params, &x, &dy, loss, "");
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
        bn.forward_train(&params.data, &mut y, &mut xh, &mut st, None);
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
        bn.forward_eval(&params.data, &mut e, None);
        for (i, (&v, &xi)) in e.iter().zip(&x).enumerate() {
            let j = i % c;
            let p = &params.data;
            let want = p[bn.gamma + j] * (xi - p[bn.mean + j]) / (p[bn.var + j] + EPS).sqrt();
            assert!((v - want).abs() < 1e-12, "{v} vs {want}");
        }
    }

    #[test]
    fn the_pool_splits_change_no_bit() {
        threads::init(2);
        // 80 channels (parts of 48 and 32, blocks of 64 and 16) over enough pixels that every pass is split, in
        // f32, where a sum taken in another order would show in the last bits.
        let (c, pixels) = (80, 1024);
        let mut params = Params::<f32>::default();
        let bn = BatchNorm::new(&mut params, "bn", c);
        bn.init(&mut params.data);
        let p = &params.data;
        let x: Vec<f32> = (0..c * pixels)
            .map(|i| ((i as f32) * 0.37).sin() * 3.0 + 1.0)
            .collect();
        let r: Vec<f32> = (0..c * pixels).map(|i| ((i as f32) * 1.7).cos()).collect();
        let run = || {
            let (mut y, mut xh, mut st) = (x.clone(), vec![0.0; x.len()], vec![0.0; 2 * c]);
            bn.forward_train(p, &mut y, &mut xh, &mut st, None);
            let (mut g, mut dy) = (vec![0.0; p.len()], r.clone());
            bn.backward(p, &mut g, &xh, &st, &mut dy, None);
            let mut gb = vec![0.5; c];
            crate::core::linear::bias_grad(&mut gb, &r, true);
            let mut e = x.clone();
            bn.forward_eval(p, &mut e, None);
            (y, xh, st, g, dy, gb, e)
        };
        let split = run();
        let serial = threads::serial(run);
        assert_eq!(split, serial);
        // And the serial pass is the plain formula: channel 3's mean is the sum of its values in order.
        let want = (0..pixels).map(|i| x[i * c + 3] as f64).sum::<f64>() / pixels as f64;
        assert_eq!(split.2[3], want as f32);
    }

    #[test]
    fn fused_activations_give_the_same_bits_as_their_own_passes() {
        threads::init(2);
        let (c, pixels) = (48, 1024);
        let mut params = Params::<f32>::default();
        let bn = BatchNorm::new(&mut params, "bn", c);
        bn.init(&mut params.data);
        for j in 0..c {
            params.data[bn.gamma + j] = 0.5 + 0.05 * j as f32;
            params.data[bn.beta + j] = 0.3 - 0.02 * j as f32;
            params.data[bn.mean + j] = 0.1 * j as f32;
            params.data[bn.var + j] = 1.0 + 0.2 * j as f32;
        }
        let p = &params.data;
        let x: Vec<f32> = (0..c * pixels)
            .map(|i| ((i as f32) * 0.37).sin() * 3.0 + 1.0)
            .collect();
        let r: Vec<f32> = (0..c * pixels).map(|i| ((i as f32) * 1.7).cos()).collect();
        let acts = [
            Activation::Identity,
            Activation::Relu,
            Activation::LeakyRelu,
            Activation::LeakyRelu02,
        ];
        for act in acts {
            let fused = act.piecewise();
            assert!(fused.is_some(), "{act:?}");
            let run = |fused: Option<Piecewise>| {
                let (mut y, mut xh, mut st) = (x.clone(), vec![0.0; x.len()], vec![0.0; 2 * c]);
                bn.forward_train(p, &mut y, &mut xh, &mut st, fused);
                let mut dy = r.clone();
                if fused.is_none() {
                    act.forward_bias(&mut y, bn.beta(p));
                    act.backward(&y, &mut dy);
                }
                let mut g = vec![0.0; p.len()];
                bn.backward(p, &mut g, &xh, &st, &mut dy, fused);
                let mut e = x.clone();
                bn.forward_eval(p, &mut e, fused);
                if fused.is_none() {
                    act.forward_bias(&mut e, bn.beta(p));
                }
                (y, xh, g, dy, e)
            };
            let (own, together) = (run(None), run(fused));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for (name, a, b) in [
                ("output", &own.0, &together.0),
                ("x̂", &own.1, &together.1),
                ("γ, β gradients", &own.2, &together.2),
                ("input gradient", &own.3, &together.3),
                ("eval output", &own.4, &together.4),
            ] {
                assert_eq!(bits(a), bits(b), "{act:?}: {name}");
            }
            // The activation did something: some outputs are negative only without it.
            let negative = own.0.iter().filter(|v| **v < 0.0).count();
            assert_eq!(negative > 0, act != Activation::Relu, "{act:?}");
        }
    }

    #[test]
    fn a_fused_leaky_relu_has_the_gradients_of_finite_differences() {
        let (c, len, rows) = (3, 12, 3);
        let (bn, mut params) = layer(c);
        let act = Activation::LeakyRelu02.piecewise();
        let x: Vec<f64> = (0..rows * len)
            .map(|i| (i as f64 * 0.73).sin() * 2.0 + 0.3)
            .collect();
        let r: Vec<f64> = (0..rows * len).map(|i| (i as f64 * 1.31).cos()).collect();
        let loss = |p: &[f64], x: &[f64]| {
            let (mut y, mut xh, mut st) = (x.to_vec(), vec![0.0; x.len()], vec![0.0; 2 * c]);
            bn.forward_train(p, &mut y, &mut xh, &mut st, act);
            y.iter().zip(&r).map(|(v, r)| v * r).sum::<f64>()
        };
        let (mut y, mut xh, mut st) = (x.clone(), vec![0.0; x.len()], vec![0.0; 2 * c]);
        bn.forward_train(&params.data, &mut y, &mut xh, &mut st, act);
        // Both sides of the kink are taken.
        assert!(y.iter().any(|v| *v < 0.0) && y.iter().any(|v| *v > 0.0));
        let mut dy = r.clone();
        params.zero_grad();
        bn.backward(&params.data, &mut params.grad, &xh, &st, &mut dy, act);
        check_layer_gradients(&bn, &params, &x, &dy, loss, " with a fused leaky ReLU");
    }
}
