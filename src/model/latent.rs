//! A Gaussian latent layer: q(z|·) = N(μ, diag σ²) read from a network's head `[μ | log σ²]`, the reparameterised
//! draw z = μ + σ·ε (Kingma & Welling 2013), its prior, and the layer's terms of the ELBO and of the IWAE bound.
//! Forward and backward sit side by side; both are checked against finite differences in f64 below.

use super::prior::Prior;
use crate::core::{Real, ops};
use std::sync::Arc;

// Defined beside the priors, which measure draws against it, so that the dependency runs one way.
pub use super::prior::log_q;

/// One stochastic layer: a diagonal Gaussian posterior over `dim` values and the prior it is measured against.
#[derive(Debug, Clone)]
pub struct GaussianLatent<T> {
    dim: usize,
    prior: Arc<dyn Prior<T>>,
}

impl<T: Real> GaussianLatent<T> {
    /// A layer of `prior.dim()` values.
    pub fn new(prior: Arc<dyn Prior<T>>) -> Self {
        GaussianLatent {
            dim: prior.dim(),
            prior,
        }
    }

    /// The dimension of z.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The prior p(z).
    pub fn prior(&self) -> &dyn Prior<T> {
        &*self.prior
    }

    /// Draws z = μ + σ·ε for `kl.len()` heads (`[μ | log σ²]` each) and `samples` draws per head (`eps`, `z`:
    /// head-major rows of `dim`), and each head's KL(q ‖ p): the prior's closed form when it has one, else the
    /// Monte Carlo estimate (1/L) Σ_l [ln q(z_l) − ln p(z_l)] over the draws, whose ln p(z_l) it leaves in
    /// `log_prior` (one per draw) for [`GaussianLatent::log_ratios_of`].
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        p: &[T],
        head: &[T],
        eps: &[T],
        z: &mut [T],
        kl: &mut [T],
        samples: usize,
        log_prior: &mut [f64],
    ) {
        let d = self.dim;
        ops::reparameterize(head, eps, z, d, samples);
        match self.prior.closed_form_kl() {
            Some(closed) => {
                for (h, k) in head.chunks_exact(2 * d).zip(kl.iter_mut()) {
                    *k = closed.kl(&h[..d], &h[d..]);
                }
            }
            None => {
                // One pass over every draw, so a mixture prepares its components once per batch.
                let n = kl.len() * samples;
                self.prior
                    .log_densities(p, &z[..n * d], &mut log_prior[..n]);
                for (b, (h, k)) in head.chunks_exact(2 * d).zip(kl.iter_mut()).enumerate() {
                    let draws = b * samples..(b + 1) * samples;
                    let sum: f64 = eps[draws.start * d..draws.end * d]
                        .chunks_exact(d)
                        .zip(&log_prior[draws])
                        .map(|(e, lp)| lp - log_q(e, &h[d..]))
                        .sum();
                    *k = T::c(-sum / samples as f64);
                }
            }
        }
    }

    /// ln p(z_l) − ln q(z_l|·) for the draws of one head after [`GaussianLatent::forward`]: `log_prior` holds their
    /// ln p(z_l) when the prior has no closed-form KL (forward computed it), else the prior's fused ratio is taken
    /// from `z`. `z`, `eps`: `out.len()` rows of `dim`.
    #[allow(clippy::too_many_arguments)]
    pub fn log_ratios_of(
        &self,
        p: &[T],
        head: &[T],
        z: &[T],
        eps: &[T],
        log_prior: &[f64],
        out: &mut [f64],
    ) {
        let d = self.dim;
        if self.prior.closed_form_kl().is_some() {
            return self.log_ratios(p, head, z, eps, out);
        }
        for ((o, e), lp) in out.iter_mut().zip(eps.chunks_exact(d)).zip(log_prior) {
            *o = lp - log_q(e, &head[d..2 * d]);
        }
    }

    /// ln p(z_l) − ln q(z_l|·) for the draws of one head (`z`, `eps`: `out.len()` rows of `dim`), into `out`;
    /// `p` holds the model's weights (a learned prior's among them).
    pub fn log_ratios(&self, p: &[T], head: &[T], z: &[T], eps: &[T], out: &mut [f64]) {
        let d = self.dim;
        let n = out.len() * d;
        self.prior
            .log_ratios(p, &z[..n], &eps[..n], &head[d..2 * d], out);
    }

    /// Backward of Σ_b Σ_j w_j·KL_b (the ELBO's KL terms, `kl_weight[j]` per dimension) plus whatever reached z
    /// (`dz`), into `dhead`; a learned prior's gradient is written into `g` (the model's). Without a closed-form
    /// KL the weights must all be equal (free bits needs the closed form), and `dz` is used as scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_elbo(
        &self,
        p: &[T],
        g: &mut [T],
        head: &[T],
        eps: &[T],
        z: &[T],
        dz: &mut [T],
        dhead: &mut [T],
        samples: usize,
        kl_weight: &[T],
    ) {
        let d = self.dim;
        match self.prior.closed_form_kl() {
            Some(closed) => {
                for (h, dh) in head.chunks_exact(2 * d).zip(dhead.chunks_exact_mut(2 * d)) {
                    let (dmu, dlv) = dh.split_at_mut(d);
                    closed.kl_grad(&h[..d], &h[d..], kl_weight, dmu, dlv);
                }
            }
            None => {
                let beta = kl_weight[0];
                assert!(
                    kl_weight.iter().all(|&w| w == beta),
                    "a Monte Carlo KL takes one weight for every dimension"
                );
                let w = beta / T::c(samples as f64);
                self.add_monte_carlo_terms(p, g, head, z, dz, dhead, samples, |_| w);
            }
        }
        ops::reparameterize_backward(head, eps, dz, dhead, d, samples);
    }

    /// Backward of the IWAE bound's latent terms Σ_l w̃_l [ln q(z_l|·) − ln p(z_l)] with the normalised weights
    /// `wt` (one per draw) held fixed, plus `dz` (already weighted through the decoder), into `dhead`; a learned
    /// prior's gradient is written into `g`. `dz` is used as scratch.
    #[allow(clippy::too_many_arguments)]
    pub fn backward_iwae(
        &self,
        p: &[T],
        g: &mut [T],
        head: &[T],
        eps: &[T],
        z: &[T],
        wt: &[T],
        dz: &mut [T],
        dhead: &mut [T],
        samples: usize,
    ) {
        self.add_monte_carlo_terms(p, g, head, z, dz, dhead, samples, |r| wt[r]);
        ops::reparameterize_backward(head, eps, dz, dhead, self.dim, samples);
    }

    /// The gradient of Σ_r w_r [ln q(z_r) − ln p(z_r)] at fixed ε except through z: −w_r ∇ ln p(z_r) is added to
    /// `dz`, and `dhead` starts from ln q's own term (at fixed ε, ln q = −½Σε² − ½Σ log σ² + c, so ∂/∂μ = 0 and
    /// ∂/∂log σ² = −½ per unit of weight). The prior's own gradient is written into `g`.
    #[allow(clippy::too_many_arguments)]
    fn add_monte_carlo_terms(
        &self,
        p: &[T],
        g: &mut [T],
        head: &[T],
        z: &[T],
        dz: &mut [T],
        dhead: &mut [T],
        samples: usize,
        weight: impl Fn(usize) -> T,
    ) {
        let d = self.dim;
        let half = T::c(0.5);
        let heads = head.len() / (2 * d);
        g[self.prior.weights()].fill(T::zero());
        let n = heads * samples;
        let negated: Vec<T> = (0..n).map(|r| -weight(r)).collect();
        self.prior
            .add_log_density_grads(p, &z[..n * d], &negated, &mut dz[..n * d], g);
        for (b, dh) in dhead.chunks_exact_mut(2 * d).take(heads).enumerate() {
            let mut wsum = T::zero();
            for r in b * samples..(b + 1) * samples {
                wsum += weight(r);
            }
            let (dmu, dlv) = dh.split_at_mut(d);
            dmu.fill(T::zero());
            dlv.fill(-half * wsum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;
    use crate::model::prior::StandardNormal;
    use crate::model::prior::tests::ShiftedNormal;

    const D: usize = 3;
    const S: usize = 2;
    const ROWS: usize = 2;

    fn priors() -> Vec<(&'static str, Arc<dyn Prior<f64>>)> {
        vec![
            ("N(0, I)", Arc::new(StandardNormal { dim: D })),
            (
                "shifted (Monte Carlo KL)",
                Arc::new(ShiftedNormal {
                    mean: vec![0.4, -0.3, 0.9],
                    logvar: vec![0.2, -0.5, 0.1],
                }),
            ),
        ]
    }

    fn inputs() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let head = (0..ROWS * 2 * D).map(|i| (i as f64 * 0.77).sin()).collect();
        let eps = (0..ROWS * S * D).map(|i| (i as f64 * 1.31).cos()).collect();
        let r = (0..ROWS * S * D).map(|i| (i as f64 * 0.5).sin()).collect();
        (head, eps, r)
    }

    /// L = β Σ_b KL_b + Σ r ⊙ z, for both a closed-form and a Monte Carlo KL.
    #[test]
    fn elbo_terms_match_finite_differences() {
        let beta = 0.7;
        let (head, eps, r) = inputs();
        for (name, prior) in priors() {
            let layer = GaussianLatent::new(prior);
            let loss = |h: &[f64]| {
                let (mut z, mut kl) = (vec![0.0; eps.len()], vec![0.0; ROWS]);
                layer.forward(&[], h, &eps, &mut z, &mut kl, S, &mut [0.0; ROWS * S]);
                beta * kl.iter().sum::<f64>() + z.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>()
            };
            let (mut z, mut kl) = (vec![0.0; eps.len()], vec![0.0; ROWS]);
            layer.forward(&[], &head, &eps, &mut z, &mut kl, S, &mut [0.0; ROWS * S]);
            let (mut dz, mut dh) = (r.clone(), vec![0.0; head.len()]);
            layer.backward_elbo(
                &[],
                &mut [],
                &head,
                &eps,
                &z,
                &mut dz,
                &mut dh,
                S,
                &[beta; D],
            );
            check_gradients(&head, &dh, loss, name);
        }
    }

    /// L = Σ_l w̃_l [ln q(z_l) − ln p(z_l)] + Σ r ⊙ z with fixed weights.
    #[test]
    fn iwae_terms_match_finite_differences() {
        let (head, eps, r) = inputs();
        let wt = [0.3, 0.7, 0.55, 0.45];
        for (name, prior) in priors() {
            let layer = GaussianLatent::new(prior);
            let loss = |h: &[f64]| {
                let (mut z, mut kl) = (vec![0.0; eps.len()], vec![0.0; ROWS]);
                layer.forward(&[], h, &eps, &mut z, &mut kl, S, &mut [0.0; ROWS * S]);
                let mut total = z.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>();
                let mut ratios = [0.0; S];
                for b in 0..ROWS {
                    let rows = b * S * D..(b + 1) * S * D;
                    layer.log_ratios(
                        &[],
                        &h[b * 2 * D..(b + 1) * 2 * D],
                        &z[rows.clone()],
                        &eps[rows],
                        &mut ratios,
                    );
                    for l in 0..S {
                        total -= wt[b * S + l] * ratios[l];
                    }
                }
                total
            };
            let (mut z, mut kl) = (vec![0.0; eps.len()], vec![0.0; ROWS]);
            layer.forward(&[], &head, &eps, &mut z, &mut kl, S, &mut [0.0; ROWS * S]);
            let (mut dz, mut dh) = (r.clone(), vec![0.0; head.len()]);
            layer.backward_iwae(&[], &mut [], &head, &eps, &z, &wt, &mut dz, &mut dh, S);
            check_gradients(&head, &dh, loss, name);
        }
    }

    /// With many draws the Monte Carlo KL approaches the closed form (for N(0, I), where both exist).
    #[test]
    fn monte_carlo_kl_approaches_the_closed_form() {
        use rand::SeedableRng;
        let s = 200_000;
        let head = [0.5, -0.8, 0.3, -0.2, 0.4, -1.0];
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let mut eps = vec![0.0; s * D];
        let n01 = StandardNormal { dim: D };
        for row in eps.chunks_exact_mut(D) {
            Prior::<f64>::sample(&n01, &[], &mut rng, 1.0, row);
        }
        let closed = GaussianLatent::new(Arc::new(n01) as Arc<dyn Prior<f64>>);
        let shifted = ShiftedNormal {
            mean: vec![0.0; D],
            logvar: vec![0.0; D],
        };
        let monte_carlo = GaussianLatent::new(Arc::new(shifted) as Arc<dyn Prior<f64>>);
        let (mut z, mut a, mut b) = (vec![0.0; s * D], [0.0], [0.0]);
        let mut lp = vec![0.0; s];
        closed.forward(&[], &head, &eps, &mut z, &mut a, s, &mut lp);
        monte_carlo.forward(&[], &head, &eps, &mut z, &mut b, s, &mut lp);
        assert!(
            (a[0] - b[0]).abs() < 0.01,
            "closed form {} vs Monte Carlo {}",
            a[0],
            b[0]
        );
    }
}
