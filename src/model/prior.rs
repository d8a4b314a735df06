//! Priors p(z) over a latent layer's codes. A prior gives its log-density and that density's gradient, draws codes,
//! and (only where it is exact) the closed-form KL from a diagonal Gaussian; without one, the latent layer
//! estimates the KL by Monte Carlo from its own draws, so a new prior is this one trait and nothing else.
//!
//! Log-densities over z leave out the −(d/2)·ln 2π every Gaussian density over d dimensions carries: it cancels in
//! ln p(z) − ln q(z|x), the only place priors and posteriors meet.

use crate::core::Real;
use rand_distr::{Distribution, StandardNormal as Normal01};

/// A density over codes z, with what training, importance sampling and sampling need of it.
pub trait Prior<T: Real>: std::fmt::Debug + Send + Sync + std::panic::RefUnwindSafe {
    /// The dimension of z.
    fn dim(&self) -> usize;

    /// ln p(z), without the ln 2π terms.
    fn log_density(&self, z: &[T]) -> f64;

    /// Adds `w · ∂ ln p(z)/∂z` to `dz`.
    fn add_log_density_grad(&self, z: &[T], w: T, dz: &mut [T]);

    /// Fills `out` (one code) with a draw whose spread is scaled by `temperature` (1 draws from p itself).
    fn sample(&self, rng: &mut dyn rand::Rng, temperature: f64, out: &mut [T]);

    /// The closed-form KL from a diagonal Gaussian, where it is exact; `None` makes the latent layer estimate
    /// the KL by Monte Carlo.
    fn closed_form_kl(&self) -> Option<&dyn GaussianKl<T>> {
        None
    }

    /// ln p(z) − ln q(z) for a draw z = μ + σ·ε of q = N(μ, diag exp(`logvar`)), without the ln 2π terms. A prior
    /// may fuse the two densities into one pass; the sum must equal this default's up to rounding.
    fn log_ratio(&self, z: &[T], eps: &[T], logvar: &[T]) -> f64 {
        let log_q: f64 = eps
            .iter()
            .zip(logvar)
            .map(|(e, lv)| -0.5 * (e.f64().powi(2) + lv.f64()))
            .sum();
        self.log_density(z) - log_q
    }
}

/// KL(N(μ, diag σ²) ‖ p) in closed form, with its gradient.
pub trait GaussianKl<T: Real> {
    /// The KL of one code's posterior (`mu`, `logvar`: one value per dimension).
    fn kl(&self, mu: &[T], logvar: &[T]) -> T;

    /// Sets `dmu[j]`, `dlogvar[j]` to `w[j] ·` the KL's gradient in dimension `j`.
    fn kl_grad(&self, mu: &[T], logvar: &[T], w: &[T], dmu: &mut [T], dlogvar: &mut [T]);

    /// One dimension's KL in f64, for reports (which dimensions a model uses).
    fn kl_dim(&self, mu: f64, logvar: f64) -> f64;
}

/// N(0, I): the VAE's prior since Kingma & Welling (2013).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandardNormal {
    /// The dimension of z.
    pub dim: usize,
}

impl<T: Real> Prior<T> for StandardNormal
where
    Normal01: Distribution<T>,
{
    fn dim(&self) -> usize {
        self.dim
    }

    fn log_density(&self, z: &[T]) -> f64 {
        z.iter().map(|v| -0.5 * v.f64().powi(2)).sum()
    }

    fn add_log_density_grad(&self, z: &[T], w: T, dz: &mut [T]) {
        for (d, &v) in dz.iter_mut().zip(z) {
            *d += w * -v;
        }
    }

    fn sample(&self, rng: &mut dyn rand::Rng, temperature: f64, out: &mut [T]) {
        let t = T::c(temperature);
        for o in out.iter_mut() {
            let e: T = Normal01.sample(rng);
            *o = e * t;
        }
    }

    fn closed_form_kl(&self) -> Option<&dyn GaussianKl<T>> {
        Some(self)
    }

    fn log_ratio(&self, z: &[T], eps: &[T], logvar: &[T]) -> f64 {
        // −½Σz² + ½Σ(ε² + log σ²), dimension by dimension in one pass.
        let mut acc = 0.0;
        for j in 0..z.len() {
            acc += -0.5 * z[j].f64().powi(2) + 0.5 * (eps[j].f64().powi(2) + logvar[j].f64());
        }
        acc
    }
}

impl<T: Real> GaussianKl<T> for StandardNormal {
    fn kl(&self, mu: &[T], logvar: &[T]) -> T {
        let mut acc = T::zero();
        for j in 0..mu.len() {
            acc += T::one() + logvar[j] - mu[j] * mu[j] - logvar[j].exp();
        }
        -T::c(0.5) * acc
    }

    fn kl_grad(&self, mu: &[T], logvar: &[T], w: &[T], dmu: &mut [T], dlogvar: &mut [T]) {
        let half = T::c(0.5);
        for j in 0..mu.len() {
            dmu[j] = w[j] * mu[j];
            dlogvar[j] = w[j] * half * (logvar[j].exp() - T::one());
        }
    }

    fn kl_dim(&self, mu: f64, logvar: f64) -> f64 {
        0.5 * (mu * mu + logvar.exp() - 1.0 - logvar)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;

    /// N(m, diag exp(v)) with fixed m and v and no closed-form KL: exercises the Monte Carlo path of a latent
    /// layer the way a learned prior will.
    #[derive(Debug, Clone)]
    pub(crate) struct ShiftedNormal {
        pub mean: Vec<f64>,
        pub logvar: Vec<f64>,
    }

    impl Prior<f64> for ShiftedNormal {
        fn dim(&self) -> usize {
            self.mean.len()
        }
        fn log_density(&self, z: &[f64]) -> f64 {
            (0..z.len())
                .map(|j| {
                    -0.5 * ((z[j] - self.mean[j]).powi(2) / self.logvar[j].exp() + self.logvar[j])
                })
                .sum()
        }
        fn add_log_density_grad(&self, z: &[f64], w: f64, dz: &mut [f64]) {
            for j in 0..z.len() {
                dz[j] += w * -(z[j] - self.mean[j]) / self.logvar[j].exp();
            }
        }
        fn sample(&self, rng: &mut dyn rand::Rng, temperature: f64, out: &mut [f64]) {
            for (j, o) in out.iter_mut().enumerate() {
                let e: f64 = Normal01.sample(rng);
                *o = self.mean[j] + temperature * (0.5 * self.logvar[j]).exp() * e;
            }
        }
    }

    #[test]
    fn standard_normal_density_gradient_and_kl() {
        let p = StandardNormal { dim: 3 };
        let z = [0.3, -1.2, 0.7];
        let mut g = [0.0; 3];
        Prior::<f64>::add_log_density_grad(&p, &z, 1.0, &mut g);
        check_gradients(&z, &g, |z| Prior::<f64>::log_density(&p, z), "ln p");
        let (mu, lv) = ([0.4, -0.2, 1.1], [-0.3, 0.5, 0.1]);
        let kl = GaussianKl::<f64>::kl(&p, &mu, &lv);
        let by_dim: f64 = (0..3)
            .map(|j| GaussianKl::<f64>::kl_dim(&p, mu[j], lv[j]))
            .sum();
        assert!((kl - by_dim).abs() < 1e-12);
        let (mut dmu, mut dlv) = ([0.0; 3], [0.0; 3]);
        p.kl_grad(&mu, &lv, &[1.0; 3], &mut dmu, &mut dlv);
        check_gradients(&mu, &dmu, |m| p.kl(m, &lv), "KL by μ");
        check_gradients(&lv, &dlv, |v| p.kl(&mu, v), "KL by log σ²");
    }

    #[test]
    fn the_fused_log_ratio_is_the_sum_of_the_densities() {
        let p = StandardNormal { dim: 4 };
        let q = ShiftedNormal {
            mean: vec![0.0; 4],
            logvar: vec![0.0; 4],
        };
        let (z, eps, lv) = (
            [0.3, -1.2, 0.7, 2.0],
            [0.1, 0.5, -0.8, 1.3],
            [-0.4, 0.2, 0.0, 0.9],
        );
        let fused = Prior::<f64>::log_ratio(&p, &z, &eps, &lv);
        let generic = q.log_ratio(&z, &eps, &lv);
        assert!((fused - generic).abs() < 1e-12, "{fused} vs {generic}");
    }

    #[test]
    fn shifted_normal_gradient() {
        let p = ShiftedNormal {
            mean: vec![0.5, -1.0],
            logvar: vec![0.3, -0.6],
        };
        let z = [0.2, 0.4];
        let mut g = [0.0; 2];
        p.add_log_density_grad(&z, 1.0, &mut g);
        check_gradients(&z, &g, |z| p.log_density(z), "shifted ln p");
    }
}
