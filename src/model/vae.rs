//! The dense VAE: encoder MLP to (μ, log σ²), reparameterisation with L samples, decoder MLP to pixel parameters.
//!
//! Forward and backward are written out layer by layer; all buffers live in a [`Workspace`] allocated once per
//! batch shape, so a training step allocates nothing.

use super::config::{Likelihood, ModelConfig};
use crate::core::activation::sigmoid;
use crate::core::ops;
use crate::core::{Activation, Linear, Params, Real, init};
use rand_distr::{Distribution, StandardNormal};

/// Sums over a batch, in nats (divide by the number of images for per-image figures).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchStats {
    /// Σ over images of the reconstruction term −E_q[log p(x|z)] (averaged over the L samples).
    pub recon: f64,
    /// Σ over images of KL(q(z|x) ‖ p(z)).
    pub kl: f64,
    /// Images in the batch.
    pub n: usize,
}

impl BatchStats {
    /// Adds another batch's sums.
    pub fn add(&mut self, other: BatchStats) {
        self.recon += other.recon;
        self.kl += other.kl;
        self.n += other.n;
    }

    /// Per-image −ELBO (β = 1).
    pub fn neg_elbo(&self) -> f64 {
        (self.recon + self.kl) / self.n.max(1) as f64
    }

    /// Per-image reconstruction term.
    pub fn recon_per_image(&self) -> f64 {
        self.recon / self.n.max(1) as f64
    }

    /// Per-image KL.
    pub fn kl_per_image(&self) -> f64 {
        self.kl / self.n.max(1) as f64
    }
}

/// A VAE with dense encoder and decoder.
#[derive(Debug, Clone)]
pub struct Vae<T> {
    /// The architecture.
    pub config: ModelConfig,
    /// All weights and their gradients.
    pub params: Params<T>,
    encoder: Vec<Linear>,
    head: Linear,
    decoder: Vec<Linear>,
    out: Linear,
}

/// Buffers for one batch shape: `rows` images with `samples` latent draws each.
#[derive(Debug, Clone)]
pub struct Workspace<T> {
    rows: usize,
    samples: usize,
    max_samples: usize,
    enc: Vec<Vec<T>>,
    /// `[rows, 2·latent]`: μ then log σ² per row.
    pub head: Vec<T>,
    /// `[rows·samples, latent]` standard normal draws.
    pub eps: Vec<T>,
    /// `[rows·samples, latent]` latent codes.
    pub z: Vec<T>,
    dec: Vec<Vec<T>>,
    /// `[rows·samples, pixels]` decoder outputs (logits); reused for their gradient in backward.
    pub logits: Vec<T>,
    /// `[rows·samples]` −log p(x|z) per draw.
    pub nll: Vec<T>,
    /// `[rows]` KL per image.
    pub kl: Vec<T>,
    grad_a: Vec<T>,
    grad_b: Vec<T>,
    dhead: Vec<T>,
}

impl<T: Real> Workspace<T> {
    /// Images this workspace holds at most.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Latent draws per image.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Uses `s` draws per image from now on; at most the number the workspace was made for.
    pub fn set_samples(&mut self, s: usize) {
        assert!(
            s >= 1 && s <= self.max_samples,
            "{s} samples exceed the workspace's {}",
            self.max_samples
        );
        self.samples = s;
    }
}

impl<T: Real> Vae<T> {
    /// A freshly initialised model (PyTorch's default initialisation).
    pub fn new(config: ModelConfig, rng: &mut impl rand::Rng) -> Self {
        let mut vae = Self::uninit(config);
        for layer in vae.layers() {
            let fan_in = layer.fan_in;
            let (w, b) = vae.params.data.split_at_mut(layer.b);
            init::linear_default(&mut w[layer.w..], &mut b[..layer.fan_out], fan_in, rng);
        }
        vae
    }

    /// The model with all weights zero (to be filled from a checkpoint).
    pub fn uninit(config: ModelConfig) -> Self {
        let mut params = Params::default();
        let d = config.input_dim();
        let mut encoder = Vec::new();
        let mut width = d;
        for (i, &h) in config.hidden.iter().enumerate() {
            encoder.push(Linear::new(&mut params, &format!("encoder.{i}"), width, h));
            width = h;
        }
        let head = Linear::new(&mut params, "encoder.head", width, 2 * config.latent);
        let mut decoder = Vec::new();
        let mut width = config.latent;
        for (i, &h) in config.hidden.iter().rev().enumerate() {
            decoder.push(Linear::new(&mut params, &format!("decoder.{i}"), width, h));
            width = h;
        }
        let out = Linear::new(&mut params, "decoder.out", width, d);
        Vae {
            config,
            params,
            encoder,
            head,
            decoder,
            out,
        }
    }

    fn layers(&self) -> Vec<Linear> {
        let mut all = self.encoder.clone();
        all.push(self.head);
        all.extend(self.decoder.iter().copied());
        all.push(self.out);
        all
    }

    /// Latent dimension.
    pub fn latent(&self) -> usize {
        self.config.latent
    }

    /// Allocates the buffers for batches of up to `rows` images and `samples` draws each.
    pub fn workspace(&self, rows: usize, samples: usize) -> Workspace<T> {
        let (z, d) = (self.config.latent, self.config.input_dim());
        let rs = rows * samples;
        let widest = self
            .config
            .hidden
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(z)
            .max(2 * z);
        let zeros = |n: usize| vec![T::zero(); n];
        Workspace {
            rows,
            samples,
            max_samples: samples,
            enc: self
                .config
                .hidden
                .iter()
                .map(|&h| zeros(rows * h))
                .collect(),
            head: zeros(rows * 2 * z),
            eps: zeros(rs * z),
            z: zeros(rs * z),
            dec: self
                .config
                .hidden
                .iter()
                .rev()
                .map(|&h| zeros(rs * h))
                .collect(),
            logits: zeros(rs * d),
            nll: zeros(rs),
            kl: zeros(rows),
            grad_a: zeros(rs * widest),
            grad_b: zeros(rs * widest),
            dhead: zeros(rows * 2 * z),
        }
    }

    /// Runs the encoder on `rows` images, leaving μ and log σ² in `ws.head`.
    pub fn encode(&self, x: &[T], rows: usize, ws: &mut Workspace<T>) {
        assert!(
            rows <= ws.rows,
            "batch of {rows} exceeds workspace of {}",
            ws.rows
        );
        let p = &self.params.data;
        let act = self.config.activation;
        for (i, layer) in self.encoder.iter().enumerate() {
            let (before, rest) = ws.enc.split_at_mut(i);
            let input = if i == 0 { x } else { &before[i - 1][..] };
            let y = &mut rest[0][..rows * layer.fan_out];
            layer.forward(p, &input[..rows * layer.fan_in], y, rows);
            act.forward_bias(y, layer.bias(p));
        }
        let input = self
            .encoder
            .last()
            .map_or(x, |_| &ws.enc[self.encoder.len() - 1][..]);
        let h = &mut ws.head[..rows * self.head.fan_out];
        self.head
            .forward(p, &input[..rows * self.head.fan_in], h, rows);
        Activation::Identity.forward_bias(h, self.head.bias(p));
    }

    /// Runs the decoder on `n` latent codes in `ws.z`, leaving its outputs (logits) in `ws.logits`.
    pub fn decode(&self, n: usize, ws: &mut Workspace<T>) {
        let p = &self.params.data;
        let act = self.config.activation;
        for (i, layer) in self.decoder.iter().enumerate() {
            let (before, rest) = ws.dec.split_at_mut(i);
            let input = if i == 0 {
                &ws.z[..]
            } else {
                &before[i - 1][..]
            };
            let y = &mut rest[0][..n * layer.fan_out];
            layer.forward(p, &input[..n * layer.fan_in], y, n);
            act.forward_bias(y, layer.bias(p));
        }
        let input = self
            .decoder
            .last()
            .map_or(&ws.z[..], |_| &ws.dec[self.decoder.len() - 1][..]);
        let y = &mut ws.logits[..n * self.out.fan_out];
        self.out.forward(p, &input[..n * self.out.fan_in], y, n);
        Activation::Identity.forward_bias(y, self.out.bias(p));
    }

    /// Pixel means σ(logits) for the `n` codes decoded last.
    pub fn means(&self, n: usize, ws: &Workspace<T>, out: &mut [T]) {
        for (o, &l) in out
            .iter_mut()
            .zip(&ws.logits[..n * self.config.input_dim()])
        {
            *o = sigmoid(l);
        }
    }

    /// Fills `ws.eps` for `rows` images with standard normal draws.
    pub fn draw_eps(&self, rows: usize, ws: &mut Workspace<T>, rng: &mut impl rand::Rng)
    where
        StandardNormal: Distribution<T>,
    {
        let n = rows * ws.samples * self.config.latent;
        for e in &mut ws.eps[..n] {
            *e = StandardNormal.sample(rng);
        }
    }

    /// Scores the decoded rows against `x` (each image repeated `samples` times); with `grad_scale`, the logits
    /// are replaced by `scale`·∂nll/∂logits.
    fn likelihood(&self, x: &[T], rows: usize, ws: &mut Workspace<T>, grad_scale: Option<T>) {
        let d = self.config.input_dim();
        let n = rows * ws.samples;
        let (logits, nll) = (&mut ws.logits[..n * d], &mut ws.nll[..n]);
        match self.config.likelihood {
            Likelihood::Bernoulli => ops::bernoulli_nll(logits, x, d, ws.samples, nll, grad_scale),
            Likelihood::Gaussian { sigma } => {
                ops::gaussian_nll(logits, x, d, ws.samples, sigma, nll, grad_scale)
            }
        }
    }

    /// The negative ELBO of `rows` images with the draws already in `ws.eps`, without gradients.
    pub fn loss(&self, x: &[T], rows: usize, ws: &mut Workspace<T>) -> BatchStats {
        self.forward(x, rows, ws, false)
    }

    /// The negative ELBO as [`Vae::loss`], writing the gradient of Σ recon + β·KL into `params.grad`.
    pub fn loss_and_grad(
        &mut self,
        x: &[T],
        rows: usize,
        beta: f64,
        ws: &mut Workspace<T>,
    ) -> BatchStats {
        let stats = self.forward(x, rows, ws, true);
        self.backward(x, rows, beta, ws);
        stats
    }

    fn forward(&self, x: &[T], rows: usize, ws: &mut Workspace<T>, grad: bool) -> BatchStats {
        let (zd, s) = (self.config.latent, ws.samples);
        let n = rows * s;
        self.encode(x, rows, ws);
        ops::reparameterize(
            &ws.head[..rows * 2 * zd],
            &ws.eps[..n * zd],
            &mut ws.z[..n * zd],
            &mut ws.kl[..rows],
            zd,
            s,
        );
        self.decode(n, ws);
        let inv_s = T::one() / T::c(s as f64);
        self.likelihood(x, rows, ws, grad.then_some(inv_s));
        let recon: f64 = ws.nll[..n].iter().map(|v| v.f64()).sum::<f64>() / s as f64;
        let kl: f64 = ws.kl[..rows].iter().map(|v| v.f64()).sum();
        BatchStats { recon, kl, n: rows }
    }

    /// Log importance weights ln p(x, z) − ln q(z|x) for `rows` images and the draws in `ws.eps`, into
    /// `out[b·samples + l]`.
    pub fn log_weights(&self, x: &[T], rows: usize, ws: &mut Workspace<T>, out: &mut [f64]) {
        let (zd, s) = (self.config.latent, ws.samples);
        let n = rows * s;
        self.forward(x, rows, ws, false);
        // ln p(z) − ln q(z|x) = −½Σz² + ½Σ(ε² + log σ²); the ln 2π terms cancel.
        for (r, o) in out[..n].iter_mut().enumerate() {
            let lv = &ws.head[(r / s) * 2 * zd + zd..(r / s + 1) * 2 * zd];
            let (z, e) = (&ws.z[r * zd..(r + 1) * zd], &ws.eps[r * zd..(r + 1) * zd]);
            let mut acc = 0.0;
            for j in 0..zd {
                acc += -0.5 * z[j].f64().powi(2) + 0.5 * (e[j].f64().powi(2) + lv[j].f64());
            }
            *o = acc - ws.nll[r].f64();
        }
    }

    fn backward(&mut self, x: &[T], rows: usize, beta: f64, ws: &mut Workspace<T>) {
        let (zd, s) = (self.config.latent, ws.samples);
        let n = rows * s;
        let act = self.config.activation;
        let (p, g) = (&self.params.data, &mut self.params.grad);
        // The gradient w.r.t. the current layer's output sits in grad_a or grad_b; `in_a` says which.
        let top = self.decoder.len();
        let out_in = if top == 0 {
            &ws.z[..]
        } else {
            &ws.dec[top - 1][..]
        };
        let fi = self.out.fan_in;
        self.out.backward(
            p,
            g,
            &out_in[..n * fi],
            &ws.logits[..n * self.out.fan_out],
            Some(&mut ws.grad_a[..n * fi]),
            n,
            false,
        );
        let mut in_a = true;
        for i in (0..top).rev() {
            let layer = &self.decoder[i];
            let (cur, next) = if in_a {
                (&mut ws.grad_a, &mut ws.grad_b)
            } else {
                (&mut ws.grad_b, &mut ws.grad_a)
            };
            let dy = &mut cur[..n * layer.fan_out];
            act.backward(&ws.dec[i][..n * layer.fan_out], dy);
            let input = if i == 0 {
                &ws.z[..]
            } else {
                &ws.dec[i - 1][..]
            };
            layer.backward(
                p,
                g,
                &input[..n * layer.fan_in],
                dy,
                Some(&mut next[..n * layer.fan_in]),
                n,
                false,
            );
            in_a = !in_a;
        }
        let dz = if in_a {
            &ws.grad_a[..n * zd]
        } else {
            &ws.grad_b[..n * zd]
        };
        let dhead = &mut ws.dhead[..rows * 2 * zd];
        ops::reparameterize_backward(
            &ws.head[..rows * 2 * zd],
            &ws.eps[..n * zd],
            dz,
            dhead,
            zd,
            s,
            T::c(beta),
        );
        // Encoder, from the head down; the first layer's input gradient is not needed.
        let bottom = self.encoder.len();
        let fi = self.head.fan_in;
        let head_in = if bottom == 0 {
            x
        } else {
            &ws.enc[bottom - 1][..]
        };
        let dx = (bottom > 0).then(|| &mut ws.grad_a[..rows * fi]);
        self.head
            .backward(p, g, &head_in[..rows * fi], dhead, dx, rows, false);
        let mut in_a = true;
        for i in (0..bottom).rev() {
            let layer = &self.encoder[i];
            let (cur, next) = if in_a {
                (&mut ws.grad_a, &mut ws.grad_b)
            } else {
                (&mut ws.grad_b, &mut ws.grad_a)
            };
            let dy = &mut cur[..rows * layer.fan_out];
            act.backward(&ws.enc[i][..rows * layer.fan_out], dy);
            let input = if i == 0 { x } else { &ws.enc[i - 1][..] };
            let dx = (i > 0).then(|| &mut next[..rows * layer.fan_in]);
            layer.backward(p, g, &input[..rows * layer.fan_in], dy, dx, rows, false);
            in_a = !in_a;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;
    use rand::SeedableRng;

    fn model(hidden: Vec<usize>, act: Activation, likelihood: Likelihood) -> Vae<f64> {
        let cfg = ModelConfig {
            rows: 2,
            cols: 3,
            hidden,
            latent: 2,
            activation: act,
            likelihood,
        };
        Vae::new(cfg, &mut rand_pcg::Pcg64Mcg::seed_from_u64(5))
    }

    fn batch(rows: usize) -> Vec<f64> {
        (0..rows * 6)
            .map(|i| ((i * 37 % 11) as f64) / 10.0)
            .collect()
    }

    #[test]
    fn full_loss_gradient_matches_finite_differences() {
        let cases = [
            (vec![4, 3], Activation::Tanh, Likelihood::Bernoulli, 2, 0.5),
            (
                vec![5],
                Activation::Softplus,
                Likelihood::Gaussian { sigma: 0.4 },
                1,
                1.0,
            ),
            (vec![], Activation::Relu, Likelihood::Bernoulli, 3, 2.0),
            (
                vec![4],
                Activation::LeakyRelu,
                Likelihood::Bernoulli,
                1,
                1.0,
            ),
        ];
        for (hidden, act, lik, samples, beta) in cases {
            let mut vae = model(hidden.clone(), act, lik);
            let rows = 3;
            let x = batch(rows);
            let mut ws = vae.workspace(4, samples);
            vae.draw_eps(rows, &mut ws, &mut rand_pcg::Pcg64Mcg::seed_from_u64(9));
            let eps = ws.eps.clone();
            vae.params.zero_grad();
            vae.loss_and_grad(&x, rows, beta, &mut ws);
            let grad = vae.params.grad.clone();
            let data = vae.params.data.clone();
            let loss = |p: &[f64]| {
                let mut m = vae.clone();
                m.params.data.copy_from_slice(p);
                let mut ws = m.workspace(4, samples);
                ws.eps.copy_from_slice(&eps);
                let st = m.loss(&x, rows, &mut ws);
                st.recon + beta * st.kl
            };
            check_gradients(
                &data,
                &grad,
                loss,
                &format!("vae {hidden:?} {act:?} {lik:?}"),
            );
        }
    }

    #[test]
    fn analytic_kl_matches_monte_carlo() {
        let vae = model(vec![4], Activation::Tanh, Likelihood::Bernoulli);
        let x = batch(1);
        let samples = 200_000;
        let mut ws = vae.workspace(1, samples);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(2);
        vae.draw_eps(1, &mut ws, &mut rng);
        vae.encode(&x, 1, &mut ws);
        let (mu, lv) = ws.head.split_at(2);
        let mut z = vec![0.0; samples * 2];
        let mut kl = vec![0.0];
        ops::reparameterize(&ws.head, &ws.eps, &mut z, &mut kl, 2, samples);
        // KL = E_q[ln q(z) − ln p(z)], estimated from the same draws.
        let mut mc = 0.0;
        for s in 0..samples {
            for j in 0..2 {
                let e = ws.eps[s * 2 + j];
                let zz = z[s * 2 + j];
                mc += -0.5 * (e * e + lv[j]) + 0.5 * zz * zz;
            }
        }
        mc /= samples as f64;
        assert!(
            (mc - kl[0]).abs() < 0.01 + 0.01 * kl[0],
            "analytic {} vs Monte Carlo {mc} (mu {mu:?})",
            kl[0]
        );
    }

    #[test]
    fn importance_sampled_bound_is_above_elbo_and_tightens() {
        let mut vae = model(vec![4], Activation::Tanh, Likelihood::Bernoulli);
        let x = batch(1);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(4);
        // Average over repeats: each K-sample bound is itself random.
        let bound = |k: usize, vae: &Vae<f64>, rng: &mut rand_pcg::Pcg64Mcg| {
            let reps = 400;
            let mut ws = vae.workspace(1, k);
            let mut lw = vec![0.0; k];
            let mut total = 0.0;
            for _ in 0..reps {
                vae.draw_eps(1, &mut ws, rng);
                vae.log_weights(&x, 1, &mut ws, &mut lw);
                total += ops::log_sum_exp(&lw) - (k as f64).ln();
            }
            total / reps as f64
        };
        let mut ws = vae.workspace(1, 1);
        let mut elbo = 0.0;
        for _ in 0..4000 {
            vae.draw_eps(1, &mut ws, &mut rng);
            let st = vae.loss(&x, 1, &mut ws);
            elbo -= st.recon + st.kl;
        }
        elbo /= 4000.0;
        let b1 = bound(1, &vae, &mut rng);
        let b10 = bound(10, &vae, &mut rng);
        let b100 = bound(100, &vae, &mut rng);
        assert!((b1 - elbo).abs() < 0.1, "K=1 bound {b1} is the ELBO {elbo}");
        assert!(
            b10 > elbo && b100 > b10,
            "bounds must tighten: elbo {elbo}, K=10 {b10}, K=100 {b100}"
        );
        vae.params.zero_grad();
    }
}
