//! DIP-VAE (Kumar et al. 2018): a penalty that pushes a covariance of the batch's codes towards the identity,
//! λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii − 1)², where C is the covariance of the posterior means over the batch
//! (DIP-VAE-I) or that plus the mean posterior variance, E\[diag σ²\] + Cov\[μ\] (DIP-VAE-II: the covariance of
//! the aggregate posterior q(z)). As `disentanglement_lib` adds it, the penalty counts once per batch in the
//! per-image mean loss, so the summed loss elbo differentiates carries it `rows` times. Forward and backward
//! side by side, the gradient checked in f64 below and through the whole model in `vae.rs`.

use crate::core::Real;

crate::choice! {
    /// Which covariance DIP-VAE decorrelates.
    pub enum DipKind {
        /// Cov_x[μ(x)], the posterior means' covariance.
        I = "i" | "1",
        /// E_x[diag σ²(x)] + Cov_x[μ(x)], the aggregate posterior's covariance.
        Ii = "ii" | "2",
    }
}

/// A DIP-VAE penalty: its kind and weights.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Dip {
    /// DIP-VAE-I or -II.
    pub kind: DipKind,
    /// λ_od, the weight of the off-diagonal entries.
    pub lambda_od: f64,
    /// λ_d, the weight of the diagonal's distance from 1.
    pub lambda_d: f64,
}

impl Dip {
    /// The covariance C (`zd × zd`) and the means of μ, from the heads `[μ | log σ²]` of `rows` items.
    fn covariance<T: Real>(&self, head: &[T], rows: usize, zd: usize) -> (Vec<f64>, Vec<f64>) {
        let n = rows as f64;
        let mut mean = vec![0.0; zd];
        for h in head.chunks_exact(2 * zd).take(rows) {
            for (m, v) in mean.iter_mut().zip(&h[..zd]) {
                *m += v.f64() / n;
            }
        }
        let mut c = vec![0.0; zd * zd];
        for h in head.chunks_exact(2 * zd).take(rows) {
            for i in 0..zd {
                let a = h[i].f64() - mean[i];
                for j in 0..zd {
                    c[i * zd + j] += a * (h[j].f64() - mean[j]) / n;
                }
                if self.kind == DipKind::Ii {
                    c[i * zd + i] += h[zd + i].f64().exp() / n;
                }
            }
        }
        (c, mean)
    }

    /// ∂penalty/∂C, symmetric.
    fn dc(&self, c: &[f64], zd: usize) -> Vec<f64> {
        (0..zd * zd)
            .map(|k| {
                if k / zd == k % zd {
                    2.0 * self.lambda_d * (c[k] - 1.0)
                } else {
                    2.0 * self.lambda_od * c[k]
                }
            })
            .collect()
    }

    /// The penalty of one batch's heads `[μ | log σ²]` (`rows × 2zd`).
    pub fn penalty<T: Real>(&self, head: &[T], rows: usize, zd: usize) -> f64 {
        let (c, _) = self.covariance(head, rows, zd);
        (0..zd * zd)
            .map(|k| {
                if k / zd == k % zd {
                    self.lambda_d * (c[k] - 1.0).powi(2)
                } else {
                    self.lambda_od * c[k].powi(2)
                }
            })
            .sum()
    }

    /// Adds the gradient of `rows` × the penalty (its share of the summed loss) by the heads into `dhead`.
    pub fn backward<T: Real>(&self, head: &[T], rows: usize, zd: usize, dhead: &mut [T]) {
        let (c, mean) = self.covariance(head, rows, zd);
        let g = self.dc(&c, zd);
        for (h, dh) in head
            .chunks_exact(2 * zd)
            .zip(dhead.chunks_exact_mut(2 * zd))
            .take(rows)
        {
            // rows · ∂/∂μ_b of (1/rows) Σ_b (μ_b − m)(μ_b − m)ᵀ against a symmetric g is 2 g (μ_b − m): the
            // mean's own dependence on μ_b sums to zero.
            for i in 0..zd {
                let s: f64 = (0..zd)
                    .map(|j| g[i * zd + j] * (h[j].f64() - mean[j]))
                    .sum();
                dh[i] += T::c(2.0 * s);
                if self.kind == DipKind::Ii {
                    dh[zd + i] += T::c(g[i * zd + i] * h[zd + i].f64().exp());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_gradients_match_finite_differences() {
        let (rows, zd) = (5, 3);
        let head: Vec<f64> = (0..rows * 2 * zd)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.23 + (i as f64).sin() * 0.1)
            .collect();
        for kind in [DipKind::I, DipKind::Ii] {
            let dip = Dip {
                kind,
                lambda_od: 2.5,
                lambda_d: 7.0,
            };
            let mut grad = vec![0.0; head.len()];
            dip.backward(&head, rows, zd, &mut grad);
            for k in 0..head.len() {
                let h = 1e-6;
                let (mut a, mut b) = (head.clone(), head.clone());
                a[k] += h;
                b[k] -= h;
                let fd = rows as f64 * (dip.penalty(&a, rows, zd) - dip.penalty(&b, rows, zd))
                    / (2.0 * h);
                assert!(
                    (fd - grad[k]).abs() < 1e-6 * (1.0 + fd.abs()),
                    "{kind:?} entry {k}: {fd} vs {}",
                    grad[k]
                );
            }
            // DIP-VAE-I does not see the variances.
            if kind == DipKind::I {
                assert!(
                    grad.chunks(2 * zd)
                        .all(|g| g[zd..].iter().all(|&v| v == 0.0))
                );
            }
        }
    }

    #[test]
    fn codes_with_identity_covariance_pay_nothing() {
        // μ = ±1 in each coordinate, independently over four items: covariance I, so no penalty (DIP-VAE-I).
        let mu = [[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]];
        let head: Vec<f64> = mu.iter().flat_map(|m| [m[0], m[1], -30.0, -30.0]).collect();
        let dip = Dip {
            kind: DipKind::I,
            lambda_od: 10.0,
            lambda_d: 100.0,
        };
        assert!(dip.penalty(&head, 4, 2) < 1e-12);
        let ii = Dip {
            kind: DipKind::Ii,
            ..dip
        };
        assert!(ii.penalty(&head, 4, 2) < 1e-9);
    }
}
