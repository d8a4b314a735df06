//! Fused element-wise kernels of the VAE objective: likelihood with its gradient, reparameterisation with the KL.

use super::Real;
use super::activation::sigmoid;
use super::threads::{self, Disjoint};

/// ln √(2π).
pub const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// Smallest standard deviation a learned σ may reach: MNIST's border pixels are always 0, so without a floor
/// their σ would shrink without bound and the likelihood diverge.
pub const MIN_SIGMA: f64 = 1e-3;

/// The Gaussian's mean and its derivative for one decoder output: σ(l) for intensities in [0, 1], or l itself
/// for unbounded (standardised) features.
#[inline(always)]
fn gaussian_mean<T: Real>(l: T, squash: bool) -> (T, T) {
    if squash {
        let m = sigmoid(l);
        (m, m * (T::one() - m))
    } else {
        (l, T::one())
    }
}

/// Bernoulli negative log-likelihood of targets `x` under logits, one sum per row; row `r` is scored
/// against target row `r / repeat`. With `grad_scale`, each logit is replaced by `scale·(σ(l) − x)`, its gradient.
pub fn bernoulli_nll<T: Real>(
    logits: &mut [T],
    x: &[T],
    d: usize,
    repeat: usize,
    nll: &mut [T],
    grad_scale: Option<T>,
) {
    T::bernoulli_nll(logits, x, d, repeat, nll, grad_scale)
}

/// The portable version of [`bernoulli_nll`], used for f64 and as the reference of the f32 fast path.
pub fn bernoulli_nll_generic<T: Real>(
    logits: &mut [T],
    x: &[T],
    d: usize,
    repeat: usize,
    nll: &mut [T],
    grad_scale: Option<T>,
) {
    for (r, (row, out)) in logits.chunks_exact_mut(d).zip(nll.iter_mut()).enumerate() {
        let target = &x[(r / repeat) * d..(r / repeat + 1) * d];
        let mut sum = T::zero();
        match grad_scale {
            Some(scale) => {
                for (l, &t) in row.iter_mut().zip(target) {
                    let e = (-l.abs()).exp();
                    sum += l.max(T::zero()) - t * *l + e.ln_1p();
                    let s = if *l >= T::zero() {
                        T::one() / (T::one() + e)
                    } else {
                        e / (T::one() + e)
                    };
                    *l = scale * (s - t);
                }
            }
            None => {
                for (&l, &t) in row.iter().zip(target) {
                    sum += l.max(T::zero()) - t * l + (-l.abs()).exp().ln_1p();
                }
            }
        }
        *out = sum;
    }
}

/// Gaussian negative log-likelihood with mean σ(logit) (`squash`) or the output itself, and fixed standard
/// deviation `sigma`, in true nats (the log-normaliser included). Rows and `grad_scale` as in [`bernoulli_nll`].
#[allow(clippy::too_many_arguments)]
pub fn gaussian_nll<T: Real>(
    logits: &mut [T],
    x: &[T],
    d: usize,
    repeat: usize,
    sigma: f64,
    squash: bool,
    nll: &mut [T],
    grad_scale: Option<T>,
) {
    let inv_var = T::c(1.0 / (sigma * sigma));
    let half = T::c(0.5);
    let norm = T::c(d as f64 * (sigma.ln() + HALF_LN_2PI));
    for (r, (row, out)) in logits.chunks_exact_mut(d).zip(nll.iter_mut()).enumerate() {
        let target = &x[(r / repeat) * d..(r / repeat + 1) * d];
        let mut sum = T::zero();
        for (l, &t) in row.iter_mut().zip(target) {
            let (m, dm) = gaussian_mean(*l, squash);
            let diff = m - t;
            sum += half * diff * diff * inv_var;
            if let Some(scale) = grad_scale {
                *l = scale * diff * inv_var * dm;
            }
        }
        *out = sum + norm;
    }
}

/// Latent dimensions handled together by the reparameterisation kernels: their σ (and, backward, their running
/// sums) stay on the stack while every draw of the image passes, so each row of `z` is written in order.
const LATENT_BLOCK: usize = 64;

/// Values of `z` below which the reparameterisation stays on one thread: a hand-off costs more.
const REPARAM_SPLIT: usize = 1 << 14;

/// z = μ + σ·ε for each head `[μ | log σ²]` and its `samples` draws (`eps`, `z`: head-major rows of `latent`).
/// Heads are split over the pool when there are enough values; each value is computed alike on any thread.
pub fn reparameterize<T: Real>(head: &[T], eps: &[T], z: &mut [T], latent: usize, samples: usize) {
    let heads = head.len() / (2 * latent).max(1);
    let per_head = samples * latent;
    let z = Disjoint::new(&mut z[..heads * per_head]);
    threads::for_rows(heads, REPARAM_SPLIT.div_ceil(per_head.max(1)), |a, b| {
        // SAFETY: for_rows hands out disjoint ranges of heads.
        let z = unsafe { z.range(a * per_head, b * per_head) };
        for (h, z) in (a..b).zip(z.chunks_exact_mut(per_head)) {
            let (mu, lv) = head[h * 2 * latent..(h + 1) * 2 * latent].split_at(latent);
            reparameterize_head(mu, lv, &eps[h * per_head..(h + 1) * per_head], z);
        }
    });
}

/// One head's draws: σ once per dimension, not per draw (importance sampling draws thousands per image).
#[inline]
fn reparameterize_head<T: Real>(mu: &[T], lv: &[T], eps: &[T], z: &mut [T]) {
    let (latent, half) = (mu.len(), T::c(0.5));
    for j0 in (0..latent).step_by(LATENT_BLOCK) {
        let j1 = (j0 + LATENT_BLOCK).min(latent);
        let mut sd = [T::zero(); LATENT_BLOCK];
        for j in j0..j1 {
            sd[j - j0] = (half * lv[j]).exp();
        }
        for (zr, er) in z.chunks_exact_mut(latent).zip(eps.chunks_exact(latent)) {
            for j in j0..j1 {
                zr[j] = mu[j] + sd[j - j0] * er[j];
            }
        }
    }
}

/// Adds to `dhead` (holding the gradient of the terms that read the head directly: a KL, ln q) what reaches it
/// through the reparameterisation from `dz`: ∂z/∂μ = 1, ∂z/∂log σ² = ½σε. A head's sums run over its draws in
/// order, on whichever thread takes the head.
pub fn reparameterize_backward<T: Real>(
    head: &[T],
    eps: &[T],
    dz: &[T],
    dhead: &mut [T],
    latent: usize,
    samples: usize,
) {
    let heads = head.len() / (2 * latent).max(1);
    let per_head = samples * latent;
    let dhead = Disjoint::new(&mut dhead[..heads * 2 * latent]);
    threads::for_rows(heads, REPARAM_SPLIT.div_ceil(per_head.max(1)), |a, b| {
        // SAFETY: for_rows hands out disjoint ranges of heads.
        let dhead = unsafe { dhead.range(a * 2 * latent, b * 2 * latent) };
        for (h, dh) in (a..b).zip(dhead.chunks_exact_mut(2 * latent)) {
            let lv = &head[h * 2 * latent + latent..(h + 1) * 2 * latent];
            let draws = h * per_head..(h + 1) * per_head;
            reparameterize_backward_head(lv, &eps[draws.clone()], &dz[draws], dh);
        }
    });
}

/// One head's part of [`reparameterize_backward`].
#[inline]
fn reparameterize_backward_head<T: Real>(lv: &[T], eps: &[T], dz: &[T], dh: &mut [T]) {
    let (latent, half) = (lv.len(), T::c(0.5));
    let (dmu, dlv) = dh.split_at_mut(latent);
    for j0 in (0..latent).step_by(LATENT_BLOCK) {
        let (j1, zero) = ((j0 + LATENT_BLOCK).min(latent), [T::zero(); LATENT_BLOCK]);
        let (mut sd, mut gm, mut gl) = (zero, zero, zero);
        for j in j0..j1 {
            sd[j - j0] = (half * lv[j]).exp();
            gm[j - j0] = dmu[j];
            gl[j - j0] = dlv[j];
        }
        for (dr, er) in dz.chunks_exact(latent).zip(eps.chunks_exact(latent)) {
            for j in j0..j1 {
                gm[j - j0] += dr[j];
                gl[j - j0] += dr[j] * er[j] * half * sd[j - j0];
            }
        }
        dmu[j0..j1].copy_from_slice(&gm[..j1 - j0]);
        dlv[j0..j1].copy_from_slice(&gl[..j1 - j0]);
    }
}

/// Gaussian negative log-likelihood with mean σ(logit) (`squash`) or the output itself, and a learned standard
/// deviation `exp(log_sigma)` (one value, or one per pixel), floored at [`MIN_SIGMA`]. With `grad`, each logit is
/// replaced by `row_weight[r]·∂nll/∂logit` and `row_weight[r]·∂nll/∂log σ` is added to `dlog_sigma`.
#[allow(clippy::too_many_arguments)]
pub fn gaussian_learned_nll<T: Real>(
    logits: &mut [T],
    x: &[T],
    d: usize,
    repeat: usize,
    log_sigma: &[T],
    squash: bool,
    nll: &mut [T],
    grad: Option<(&[T], &mut [T])>,
) {
    let floor = T::c(MIN_SIGMA);
    let sig = |j: usize| {
        let s = log_sigma[j % log_sigma.len()].exp();
        if s > floor { (s, true) } else { (floor, false) }
    };
    let half = T::c(0.5);
    let c = T::c(HALF_LN_2PI);
    let mut grad = grad;
    for (r, (row, out)) in logits.chunks_exact_mut(d).zip(nll.iter_mut()).enumerate() {
        let target = &x[(r / repeat) * d..(r / repeat + 1) * d];
        let mut sum = T::zero();
        for (j, (l, &t)) in row.iter_mut().zip(target).enumerate() {
            let (s, free) = sig(j);
            let (m, dm) = gaussian_mean(*l, squash);
            let diff = m - t;
            let inv_var = T::one() / (s * s);
            sum += s.ln() + c + half * diff * diff * inv_var;
            if let Some((w, dls)) = grad.as_mut() {
                let w = w[r];
                *l = w * diff * inv_var * dm;
                if free {
                    let k = j % dls.len();
                    dls[k] += w * (T::one() - diff * diff * inv_var);
                }
            }
        }
        *out = sum;
    }
}

/// Levels of an 8-bit value.
pub const LEVELS: f64 = 256.0;

/// ln(1 + eˣ) without overflow.
#[inline(always)]
fn softplus<T: Real>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

/// Discretised-logistic negative log-likelihood (Salimans et al. 2017, Kingma et al. 2016) of 8-bit targets
/// `x` (values v/255, rounded to the nearest level), one sum per row, row `r` scored against row `r / repeat`.
/// Level v gets the logistic mass of [v − ½, v + ½]/255 around the decoder output μ, the end levels the tails
/// beyond, so the 256 probabilities sum to one. The scale is `exp(log_scale)` (one value, or one per pixel),
/// floored at [`MIN_SIGMA`]. With `grad = (w, dls)`, each output is replaced by its gradient weighted by the
/// row's `w`, and the log-scale gradients are added into `dls` (one per `log_scale` entry).
pub fn logistic_nll<T: Real>(
    logits: &mut [T],
    x: &[T],
    d: usize,
    repeat: usize,
    log_scale: &[T],
    nll: &mut [T],
    grad: Option<(&[T], &mut [T])>,
) {
    let floor = T::c(MIN_SIGMA);
    let top = T::c(LEVELS - 1.0);
    let half = T::c(0.5 / (LEVELS - 1.0));
    let mut grad = grad;
    for (r, (row, out)) in logits.chunks_exact_mut(d).zip(nll.iter_mut()).enumerate() {
        let target = &x[(r / repeat) * d..(r / repeat + 1) * d];
        let mut sum = T::zero();
        for (j, (l, &t)) in row.iter_mut().zip(target).enumerate() {
            let k = j % log_scale.len();
            let s = log_scale[k].exp();
            let (s, free) = if s > floor { (s, true) } else { (floor, false) };
            let inv = T::one() / s;
            let v = (t * top).round().max(T::zero()).min(top);
            let centre = (v / top - *l) * inv;
            // a and b are the standardised upper and lower bin edges; the end bins are open.
            let a = centre + half * inv;
            let b = centre - half * inv;
            let (lp, dmu, dls) = if v == T::zero() {
                // log σ(a)
                let sa = sigmoid(-a);
                (-softplus(-a), inv * sa, -a * sa)
            } else if v == top {
                // log(1 − σ(b))
                let sb = sigmoid(b);
                (-softplus(b), -inv * sb, b * sb)
            } else {
                // σ(a) − σ(b) = σ(a)·σ(−b)·(1 − e^−δ) with δ = a − b: no cancellation in the tails.
                let delta = T::c(2.0) * half * inv;
                let log1mexp = if delta < T::c(std::f64::consts::LN_2) {
                    (-(-delta).exp_m1()).ln()
                } else {
                    (-(-delta).exp()).ln_1p()
                };
                let (sa, sb) = (sigmoid(-a), sigmoid(b));
                (
                    -softplus(-a) - softplus(b) + log1mexp,
                    inv * (sa - sb),
                    -a * sa + b * sb - delta / delta.exp_m1(),
                )
            };
            sum -= lp;
            if let Some((w, g)) = grad.as_mut() {
                let w = w[r];
                // dmu is ∂(−log P)/∂μ; dls is ∂ log P/∂ log s.
                *l = w * dmu;
                if free {
                    g[k] -= w * dls;
                }
            }
        }
        *out = sum;
    }
}

/// ln Σ exp(xᵢ), stable for any magnitudes; −∞ for an empty slice.
pub fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;

    #[test]
    fn bernoulli_matches_definition_and_gradient() {
        let d = 4;
        let logits: Vec<f64> = vec![0.3, -2.0, 5.0, -40.0, 1.0, 0.0, -0.7, 30.0];
        let x = vec![0.0, 1.0, 0.7, 1.0];
        let mut nll = vec![0.0; 2];
        bernoulli_nll(&mut logits.clone(), &x, d, 2, &mut nll, None);
        let direct: f64 = logits[..4]
            .iter()
            .zip(&x)
            .map(|(&l, &t)| {
                let p: f64 = 1.0 / (1.0 + (-l).exp());
                -(t * p.ln() + (1.0 - t) * (1.0 - p).ln())
            })
            .sum();
        assert!((nll[0] - direct).abs() < 1e-9, "{} vs {direct}", nll[0]);
        let mut g = logits.clone();
        bernoulli_nll(&mut g, &x, d, 2, &mut nll, Some(1.0));
        let loss = |l: &[f64]| {
            let mut n = vec![0.0; 2];
            bernoulli_nll(&mut l.to_vec(), &x, d, 2, &mut n, None);
            n.iter().sum()
        };
        check_gradients(&logits, &g, loss, "bernoulli");
    }

    #[test]
    fn gaussian_is_true_log_density() {
        let x = vec![0.2, 0.9];
        let logits = vec![0.1, 1.5];
        let mut nll = vec![0.0];
        let sigma = 0.3;
        gaussian_nll(&mut logits.clone(), &x, 2, 1, sigma, true, &mut nll, None);
        let direct: f64 = logits
            .iter()
            .zip(&x)
            .map(|(&l, &t): (&f64, &f64)| {
                let m: f64 = 1.0 / (1.0 + (-l).exp());
                0.5 * ((t - m) / sigma).powi(2)
                    + sigma.ln()
                    + 0.5 * (2.0 * std::f64::consts::PI).ln()
            })
            .sum();
        assert!((nll[0] - direct).abs() < 1e-12);
        let mut g = logits.clone();
        gaussian_nll(&mut g, &x, 2, 1, sigma, true, &mut nll, Some(1.0));
        let loss = |l: &[f64]| {
            let mut n = vec![0.0];
            gaussian_nll(&mut l.to_vec(), &x, 2, 1, sigma, true, &mut n, None);
            n[0]
        };
        check_gradients(&logits, &g, loss, "gaussian");
    }

    #[test]
    fn reparameterisation_gradients() {
        // 130 dimensions cross two blocks of LATENT_BLOCK, the last one short.
        for latent in [3, 130] {
            reparameterisation_gradients_at(latent, 2);
        }
    }

    fn reparameterisation_gradients_at(latent: usize, samples: usize) {
        let head: Vec<f64> = (0..2 * 2 * latent)
            .map(|i| (i as f64 * 0.77).sin())
            .collect();
        let eps: Vec<f64> = (0..2 * samples * latent)
            .map(|i| (i as f64 * 1.31).cos())
            .collect();
        let r: Vec<f64> = (0..eps.len()).map(|i| (i as f64 * 0.5).sin()).collect();
        // L = Σ r ⊙ z + Σ c ⊙ head: the head's own term arrives in dhead first.
        let c: Vec<f64> = (0..head.len()).map(|i| 0.1 * i as f64 - 0.4).collect();
        let loss = |h: &[f64]| {
            let mut z = vec![0.0; eps.len()];
            reparameterize(h, &eps, &mut z, latent, samples);
            z.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>()
                + h.iter().zip(&c).map(|(a, b)| a * b).sum::<f64>()
        };
        let mut dh = c.clone();
        reparameterize_backward(&head, &eps, &r, &mut dh, latent, samples);
        check_gradients(&head, &dh, loss, "reparameterisation");
    }

    #[test]
    fn learned_gaussian_is_true_density_with_gradients() {
        let x = vec![0.2, 0.9, 0.0, 0.5];
        let logits = vec![0.1, 1.5, -0.3, 2.0];
        for ls in [vec![-0.7], vec![-0.3, 0.2]] {
            let w = [0.6, 1.3];
            let loss = |l: &[f64], ls: &[f64]| {
                let mut n = vec![0.0; 2];
                gaussian_learned_nll(&mut l.to_vec(), &x, 2, 1, ls, true, &mut n, None);
                w[0] * n[0] + w[1] * n[1]
            };
            let mut n = vec![0.0; 2];
            let mut fixed = vec![0.0; 2];
            gaussian_learned_nll(
                &mut logits.clone(),
                &x,
                2,
                1,
                &[-0.7f64],
                true,
                &mut n,
                None,
            );
            gaussian_nll(
                &mut logits.clone(),
                &x,
                2,
                1,
                (-0.7f64).exp(),
                true,
                &mut fixed,
                None,
            );
            assert!((n[0] - fixed[0]).abs() < 1e-12 && (n[1] - fixed[1]).abs() < 1e-12);
            let mut g = logits.clone();
            let mut dls = vec![0.0; ls.len()];
            gaussian_learned_nll(&mut g, &x, 2, 1, &ls, true, &mut n, Some((&w, &mut dls)));
            check_gradients(&logits, &g, |l| loss(l, &ls), "learned gaussian logits");
            check_gradients(
                &ls,
                &dls,
                |s| loss(&logits, s),
                "learned gaussian log sigma",
            );
        }
    }

    /// The logistic CDF, directly from its definition.
    fn logistic_cdf(x: f64, mu: f64, s: f64) -> f64 {
        1.0 / (1.0 + (-(x - mu) / s).exp())
    }

    #[test]
    fn discretised_logistic_is_a_distribution_over_256_levels() {
        for (mu, ls) in [
            (0.3, -3.0),
            (-0.2, -1.0),
            (1.4, -4.5),
            (0.5, 2.0),
            (0.0, -6.9),
        ] {
            let levels: Vec<f64> = (0..256).map(|v| v as f64 / 255.0).collect();
            let mut nll = vec![0.0; 256];
            logistic_nll(&mut vec![mu; 256], &levels, 1, 1, &[ls], &mut nll, None);
            let total: f64 = nll.iter().map(|n| (-n).exp()).sum();
            assert!((total - 1.0).abs() < 1e-12, "μ {mu}, log s {ls}: {total}");
            // A middle level is the CDF's difference across its bin, the end levels the tails.
            let s = f64::exp(ls);
            let h = 0.5 / 255.0;
            for v in [1usize, 77, 254] {
                let c = v as f64 / 255.0;
                let p = logistic_cdf(c + h, mu, s) - logistic_cdf(c - h, mu, s);
                if p > 1e-6 {
                    assert!(
                        ((-nll[v]).exp() - p).abs() < 1e-9 * p.max(1e-3),
                        "level {v}"
                    );
                }
            }
            assert!(((-nll[0]).exp() - logistic_cdf(h, mu, s)).abs() < 1e-12);
            assert!(((-nll[255]).exp() - (1.0 - logistic_cdf(1.0 - h, mu, s))).abs() < 1e-12);
        }
        // Far in a tail the probabilities stay finite where a difference of CDFs would round to zero.
        let mut n = vec![0.0];
        logistic_nll(&mut [-30.0f32], &[0.5], 1, 1, &[-3.0], &mut n, None);
        assert!(n[0].is_finite() && n[0] > 100.0, "{}", n[0]);
    }

    #[test]
    fn discretised_logistic_gradients_match_finite_differences() {
        // Both end levels, middle levels near and far from the mean, and a shared and a per-value scale.
        let x = vec![0.0, 1.0, 128.0 / 255.0, 3.0 / 255.0, 0.0, 1.0];
        let logits = vec![
            0.1, 0.8, 0.45, 0.9, -0.2, 1.3, 0.02, 0.97, 0.5, 0.012, 0.4, 0.6,
        ];
        for ls in [vec![-2.5], vec![-3.0, -1.0, -2.0, -4.0, -0.5, -2.2]] {
            let w = [0.6, 1.3];
            let loss = |l: &[f64], ls: &[f64]| {
                let mut n = vec![0.0; 2];
                logistic_nll(&mut l.to_vec(), &x, 6, 2, ls, &mut n, None);
                w[0] * n[0] + w[1] * n[1]
            };
            let mut g = logits.clone();
            let mut dls = vec![0.0; ls.len()];
            let mut n = vec![0.0; 2];
            logistic_nll(&mut g, &x, 6, 2, &ls, &mut n, Some((&w, &mut dls)));
            check_gradients(&logits, &g, |l| loss(l, &ls), "logistic outputs");
            check_gradients(&ls, &dls, |s| loss(&logits, s), "logistic log scale");
        }
    }

    #[test]
    fn identity_mean_gaussians_have_checked_gradients() {
        let x = vec![-1.2, 0.9, 2.5, 0.0];
        let logits = vec![0.1, 1.5, -0.3, 2.0];
        let mut g = logits.clone();
        let mut n = vec![0.0; 2];
        gaussian_nll(&mut g, &x, 2, 1, 0.7, false, &mut n, Some(1.0));
        // With the identity mean the density is the textbook one of x around the output itself.
        let direct = 0.5 * ((x[0] - logits[0]) / 0.7f64).powi(2) + 0.7f64.ln() + HALF_LN_2PI;
        let mut one = vec![0.0; 2];
        gaussian_nll(&mut logits.clone(), &x, 2, 1, 0.7, false, &mut one, None);
        let second = 0.5 * ((x[1] - logits[1]) / 0.7f64).powi(2) + 0.7f64.ln() + HALF_LN_2PI;
        assert!((one[0] - direct - second).abs() < 1e-12);
        let loss = |l: &[f64]| {
            let mut n = vec![0.0; 2];
            gaussian_nll(&mut l.to_vec(), &x, 2, 1, 0.7, false, &mut n, None);
            n.iter().sum()
        };
        check_gradients(&logits, &g, loss, "identity gaussian");
        let ls = vec![-0.3, 0.4];
        let w = [0.6, 1.3];
        let loss = |l: &[f64], ls: &[f64]| {
            let mut n = vec![0.0; 2];
            gaussian_learned_nll(&mut l.to_vec(), &x, 2, 1, ls, false, &mut n, None);
            w[0] * n[0] + w[1] * n[1]
        };
        let mut g = logits.clone();
        let mut dls = vec![0.0; 2];
        gaussian_learned_nll(&mut g, &x, 2, 1, &ls, false, &mut n, Some((&w, &mut dls)));
        check_gradients(&logits, &g, |l| loss(l, &ls), "identity learned gaussian");
        check_gradients(
            &ls,
            &dls,
            |s| loss(&logits, s),
            "identity learned log sigma",
        );
    }

    #[test]
    fn log_sum_exp_is_stable() {
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert!((log_sum_exp(&[-1000.0, -1000.0]) - (-1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
    }
}
