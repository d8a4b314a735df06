//! β-TC-VAE (Chen et al. 2018): the KL term split into index-code mutual information, total correlation and
//! dimension-wise KL, E[ln q(z|x) − ln q(z)] + E[ln q(z) − Σ_d ln q(z_d)] + E[Σ_d ln q(z_d) − ln p(z)], each
//! with its own weight α, β, γ. The aggregate posterior q(z) = (1/N) Σ_n q(z | x_n) is estimated from the batch,
//! by minibatch-weighted sampling (every other item weighs 1/(N·B)) or minibatch-stratified sampling (Chen et al.'s
//! appendix: the draw's own item 1/N, one other (N − B + 1)/(N(B − 1)), the rest 1/(B − 1), so each row sums to 1;
//! N is taken as at least B, and a batch of one item estimates q(z) by its own posterior).
//!
//! The three terms add up to ln q(z|x) − ln p(z), whose expectation the model already takes in closed form; so
//! the loss is the usual ELBO plus (α − 1)·MI + (β − 1)·TC + (γ − 1)·DWKL by Monte Carlo on the batch's draws,
//! which with α = γ = 1 is `disentanglement_lib`'s β-TC-VAE (KL + (β − 1)·TC). MWS's weights, the paper's
//! 1/(N·B), make each ln q estimate a constant ln N too low (in Chen et al.'s code too): the gradients do not see
//! it, the terms' values do. Forward and backward side by side,
//! in f64 whatever the model's precision; the gradient is checked by finite differences below and through the
//! whole model in `vae.rs`.

use crate::core::Real;

crate::choice! {
    /// How the batch estimates the aggregate posterior's density.
    pub enum TcSampling {
        /// Minibatch-weighted sampling: every item of the batch weighs 1/(N·B).
        Mws = "mws",
        /// Minibatch-stratified sampling: the draw's own item 1/N, one other (N − B + 1)/(N(B − 1)), the rest 1/(B − 1).
        Mss = "mss",
    }
}

/// The weights of β-TC-VAE's three KL terms and how q(z) is estimated.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tc {
    /// α, the weight of the index-code mutual information.
    pub alpha: f64,
    /// β, the weight of the total correlation.
    pub beta: f64,
    /// γ, the weight of the dimension-wise KL.
    pub gamma: f64,
    /// Minibatch-weighted or -stratified sampling.
    pub sampling: TcSampling,
    /// N, the number of training items q(z) averages over: each step's, from the training split, never stored.
    #[serde(skip)]
    pub dataset_size: usize,
}

/// Per-image sums of the three terms over a batch (each the mean over the image's draws).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TcTerms {
    /// Σ E[ln q(z|x) − ln q(z)].
    pub mutual_information: f64,
    /// Σ E[ln q(z) − Σ_d ln q(z_d)].
    pub total_correlation: f64,
    /// Σ E[Σ_d ln q(z_d) − ln p(z)].
    pub dimension_wise_kl: f64,
}

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// ln Σ exp(v), stable.
fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Overwrites `v` with softmax(v).
fn softmax(v: &mut [f64]) {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for x in v.iter_mut() {
        *x = (*x - m).exp();
        s += *x;
    }
    v.iter_mut().for_each(|x| *x /= s);
}

/// One draw's densities under every item's posterior: ln q(z_d | x_j) for each j and d, from the heads.
struct Draw {
    /// `rows × zd`: ln q(z_d | x_j).
    per_dim: Vec<f64>,
}

impl Draw {
    /// Room for a batch of `rows` items, reused for every draw.
    fn new(rows: usize, zd: usize) -> Self {
        Draw {
            per_dim: vec![0.0; rows * zd],
        }
    }

    /// The densities of the draw `z` under the posteriors in `head`.
    fn fill<T: Real>(&mut self, head: &[T], z: &[T], zd: usize) {
        for (j, h) in head
            .chunks_exact(2 * zd)
            .enumerate()
            .take(self.per_dim.len() / zd)
        {
            for d in 0..zd {
                let (mu, lv) = (h[d].f64(), h[zd + d].f64());
                let e = z[d].f64() - mu;
                self.per_dim[j * zd + d] = -0.5 * (LN_2PI + lv + e * e * (-lv).exp());
            }
        }
    }
}

impl Tc {
    /// ln w_bj, the weight of item j in the estimate of q at a draw of item b, for a batch of `rows` items.
    fn log_weight(&self, b: usize, j: usize, rows: usize) -> f64 {
        let (n, m) = (self.dataset_size.max(rows) as f64, rows as f64);
        match self.sampling {
            TcSampling::Mws => -(n * m).ln(),
            TcSampling::Mss if rows == 1 => 0.0,
            TcSampling::Mss => {
                if j == b {
                    -n.ln()
                } else if j == (b + 1) % rows {
                    ((n - m + 1.0) / (n * (m - 1.0))).ln()
                } else {
                    -(m - 1.0).ln()
                }
            }
        }
    }

    /// ln w_bj + ln q(z | x_j) for each item j, at a draw of item `b`.
    fn joint_logits(&self, b: usize, dr: &Draw, zd: usize, out: &mut [f64]) {
        let rows = out.len();
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.log_weight(b, j, rows) + dr.per_dim[j * zd..(j + 1) * zd].iter().sum::<f64>();
        }
    }

    /// ln w_bj + ln q(z_d | x_j) for each item j, at a draw of item `b`.
    fn marginal_logits(&self, b: usize, d: usize, dr: &Draw, zd: usize, out: &mut [f64]) {
        let rows = out.len();
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.log_weight(b, j, rows) + dr.per_dim[j * zd + d];
        }
    }

    /// The batch's three terms, from its heads `[μ | ln σ²]` (`rows × 2zd`) and draws `z` (`rows·samples × zd`,
    /// image-major).
    pub fn terms<T: Real>(
        &self,
        head: &[T],
        z: &[T],
        rows: usize,
        zd: usize,
        samples: usize,
    ) -> TcTerms {
        let mut t = TcTerms::default();
        let per = 1.0 / samples as f64;
        let mut joint = vec![0.0; rows];
        let mut one = vec![0.0; rows];
        let mut dr = Draw::new(rows, zd);
        for (r, zr) in z.chunks_exact(zd).take(rows * samples).enumerate() {
            let b = r / samples;
            dr.fill(head, zr, zd);
            self.joint_logits(b, &dr, zd, &mut joint);
            let log_qz = log_sum_exp(&joint);
            let mut log_marginals = 0.0;
            for d in 0..zd {
                self.marginal_logits(b, d, &dr, zd, &mut one);
                log_marginals += log_sum_exp(&one);
            }
            let log_q_own: f64 = dr.per_dim[b * zd..(b + 1) * zd].iter().sum();
            let log_p: f64 = zr.iter().map(|v| -0.5 * (LN_2PI + v.f64() * v.f64())).sum();
            t.mutual_information += per * (log_q_own - log_qz);
            t.total_correlation += per * (log_qz - log_marginals);
            t.dimension_wise_kl += per * (log_marginals - log_p);
        }
        t
    }

    /// What the split adds to the summed ELBO loss: (α − 1)·MI + (β − 1)·TC + (γ − 1)·DWKL.
    pub fn extra_loss<T: Real>(
        &self,
        head: &[T],
        z: &[T],
        rows: usize,
        zd: usize,
        samples: usize,
    ) -> f64 {
        let t = self.terms(head, z, rows, zd, samples);
        (self.alpha - 1.0) * t.mutual_information
            + (self.beta - 1.0) * t.total_correlation
            + (self.gamma - 1.0) * t.dimension_wise_kl
    }

    /// Adds the gradient of [`Tc::extra_loss`] by the draws into `dz` (which the reparameterisation then carries
    /// to the draws' own heads) and by the heads, through the densities of every draw under every item's
    /// posterior, into `dhead`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real>(
        &self,
        head: &[T],
        z: &[T],
        rows: usize,
        zd: usize,
        samples: usize,
        dz: &mut [T],
        dhead: &mut [T],
    ) {
        // Per draw the extra loss is (α−1) ln q(z|x_b) + (β−α) ln q(z) + (γ−β) Σ_d ln q(z_d) − (γ−1) ln p(z).
        let per = 1.0 / samples as f64;
        let (c_own, c_joint, c_marg, c_prior) = (
            per * (self.alpha - 1.0),
            per * (self.beta - self.alpha),
            per * (self.gamma - self.beta),
            -per * (self.gamma - 1.0),
        );
        let mut dh = vec![0.0; rows * 2 * zd];
        let mut joint = vec![0.0; rows];
        let mut one = vec![0.0; rows];
        let mut dr = Draw::new(rows, zd);
        for (r, zr) in z.chunks_exact(zd).take(rows * samples).enumerate() {
            let b = r / samples;
            dr.fill(head, zr, zd);
            self.joint_logits(b, &dr, zd, &mut joint);
            softmax(&mut joint);
            let dzr = &mut dz[r * zd..(r + 1) * zd];
            for d in 0..zd {
                self.marginal_logits(b, d, &dr, zd, &mut one);
                softmax(&mut one);
                let zv = zr[d].f64();
                let mut gz = -c_prior * zv;
                for j in 0..rows {
                    // ∂(loss)/∂ ln q(z_d | x_j).
                    let g = c_joint * joint[j] + c_marg * one[j] + if j == b { c_own } else { 0.0 };
                    let h = &head[j * 2 * zd..(j + 1) * 2 * zd];
                    let (mu, lv) = (h[d].f64(), h[zd + d].f64());
                    let prec = (-lv).exp();
                    let e = zv - mu;
                    gz -= g * e * prec;
                    dh[j * 2 * zd + d] += g * e * prec;
                    dh[j * 2 * zd + zd + d] += g * 0.5 * (e * e * prec - 1.0);
                }
                dzr[d] += T::c(gz);
            }
        }
        for (o, g) in dhead.iter_mut().zip(dh) {
            *o += T::c(g);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;

    fn case(rows: usize, zd: usize, samples: usize) -> (Vec<f64>, Vec<f64>) {
        let head: Vec<f64> = (0..rows * 2 * zd)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.17 + (i as f64).sin() * 0.2)
            .collect();
        let z: Vec<f64> = (0..rows * samples * zd)
            .map(|i| ((i * 13 % 7) as f64 - 3.0) * 0.4 + (i as f64).cos() * 0.1)
            .collect();
        (head, z)
    }

    #[test]
    fn gradients_match_finite_differences() {
        let (rows, zd) = (4, 3);
        for samples in [1, 2] {
            let (head, z) = case(rows, zd, samples);
            for sampling in [TcSampling::Mws, TcSampling::Mss] {
                let tc = Tc {
                    alpha: 0.7,
                    beta: 6.0,
                    gamma: 1.9,
                    sampling,
                    dataset_size: 50,
                };
                let (mut dz, mut dh) = (vec![0.0; z.len()], vec![0.0; head.len()]);
                tc.backward(&head, &z, rows, zd, samples, &mut dz, &mut dh);
                check_gradients(
                    &head,
                    &dh,
                    |a| tc.extra_loss(a, &z, rows, zd, samples),
                    &format!("{sampling:?} heads"),
                );
                check_gradients(
                    &z,
                    &dz,
                    |a| tc.extra_loss(&head, a, rows, zd, samples),
                    &format!("{sampling:?} draws"),
                );
            }
        }
    }

    #[test]
    fn stratified_weights_sum_to_one_and_unit_weights_add_nothing() {
        let tc = Tc {
            alpha: 1.0,
            beta: 1.0,
            gamma: 1.0,
            sampling: TcSampling::Mss,
            dataset_size: 1000,
        };
        for rows in [2, 3, 64] {
            for b in 0..rows {
                let s: f64 = (0..rows).map(|j| tc.log_weight(b, j, rows).exp()).sum();
                assert!((s - 1.0).abs() < 1e-12, "rows {rows} item {b}: {s}");
            }
        }
        let (head, z) = case(5, 2, 1);
        assert_eq!(tc.extra_loss(&head, &z, 5, 2, 1), 0.0);
        let (mut dz, mut dh) = (vec![0.0; z.len()], vec![0.0; head.len()]);
        tc.backward(&head, &z, 5, 2, 1, &mut dz, &mut dh);
        assert!(dz.iter().chain(&dh).all(|&g| g == 0.0));
    }

    #[test]
    fn the_terms_add_up_to_the_sampled_kl() {
        // MI + TC + DWKL = ln q(z|x) − ln p(z) for each draw, whatever the estimate of q(z).
        let (rows, zd) = (6, 3);
        let (head, z) = case(rows, zd, 1);
        for sampling in [TcSampling::Mws, TcSampling::Mss] {
            let tc = Tc {
                alpha: 1.0,
                beta: 1.0,
                gamma: 1.0,
                sampling,
                dataset_size: 100,
            };
            let t = tc.terms(&head, &z, rows, zd, 1);
            let mut kl = 0.0;
            for b in 0..rows {
                for d in 0..zd {
                    let (mu, lv, v) = (
                        head[b * 2 * zd + d],
                        head[b * 2 * zd + zd + d],
                        z[b * zd + d],
                    );
                    kl += -0.5 * (lv + (v - mu).powi(2) / lv.exp()) + 0.5 * v * v;
                }
            }
            let sum = t.mutual_information + t.total_correlation + t.dimension_wise_kl;
            assert!((sum - kl).abs() < 1e-9, "{sum} vs {kl}");
        }
    }

    #[test]
    fn independent_codes_have_a_smaller_total_correlation_than_coupled_ones() {
        // Codes on a grid of independent coordinates against codes on the diagonal z_1 = z_2, tight posteriors.
        let grid: Vec<[f64; 2]> = (0..16).map(|i| [(i % 4) as f64, (i / 4) as f64]).collect();
        let diag: Vec<[f64; 2]> = (0..16).map(|i| [i as f64 / 4.0, i as f64 / 4.0]).collect();
        let tc = Tc {
            alpha: 1.0,
            beta: 2.0,
            gamma: 1.0,
            sampling: TcSampling::Mws,
            dataset_size: 16,
        };
        let total = |codes: &[[f64; 2]]| {
            let head: Vec<f64> = codes
                .iter()
                .flat_map(|c| [c[0], c[1], -8.0, -8.0])
                .collect();
            let z: Vec<f64> = codes.iter().flat_map(|c| [c[0], c[1]]).collect();
            tc.terms(&head, &z, 16, 2, 1).total_correlation / 16.0
        };
        let (g, d) = (total(&grid), total(&diag));
        // The diagonal's codes: q(z) is 16 points, Π q(z_d) spreads them over 256, so TC ≈ ln 16; the grid's is
        // 0. MWS's 1/(N·B) adds the same constant (D − 1) ln N = ln 16 to both.
        let ln16 = 16f64.ln();
        assert!((g - ln16).abs() < 1e-6, "grid {g}");
        assert!((d - g - ln16).abs() < 1e-6, "grid {g}, diagonal {d}");
    }
}
