//! FactorVAE (Kim & Mnih 2018): a discriminator D tells the batch's codes z ~ q(z) from codes whose dimensions were
//! each permuted across the batch, z̃ ~ Π_d q(z_d); its log-odds ln D(z)/(1 − D(z)) estimates the total
//! correlation (the density-ratio trick), which the VAE's loss adds with weight γ. The discriminator is an MLP
//! with two logits (disentanglement_lib's: six layers of 1000 units, leaky ReLU with slope 0.2), trained on
//! −½ E[ln D(z)] − ½ E[ln(1 − D(z̃))] by its own Adam (β₁ 0.5, β₂ 0.9), the VAE's gradient never reaching its
//! weights. Both gradients come from one forward pass over [z; z̃] at the same weights, then both optimisers step,
//! as disentanglement_lib does. Its weights sit after every other weight, so the checkpoint keeps them (and a
//! resumed run its discriminator).

use super::net::{Layer, Net, NetBuffers};
use crate::core::params::Registry;
use crate::core::{Activation, Linear, Real};

/// The discriminator's hidden widths unless the settings say otherwise: Kim & Mnih's and disentanglement_lib's.
pub const DEFAULT_HIDDEN: [usize; 6] = [1000; 6];

/// The discriminator's learning rate unless the settings say otherwise: disentanglement_lib's.
pub const DEFAULT_LR: f64 = 1e-4;

/// The discriminator's Adam β₁ and β₂: Kim & Mnih's and disentanglement_lib's.
pub const ADAM_BETAS: (f64, f64) = (0.5, 0.9);

/// FactorVAE's training settings (the discriminator's shape is the model's).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FactorVae {
    /// γ, the weight of the total-correlation estimate in the VAE's loss.
    pub gamma: f64,
    /// The discriminator's learning rate.
    pub lr: f64,
}

/// The FactorVAE discriminator: `latent` → hidden widths → 2 logits (z from q(z), z from Π_d q(z_d)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discriminator {
    /// The MLP.
    pub net: Net,
    /// The first of its weights in the model's parameters (they run to the end).
    pub start: usize,
}

/// What one step of the discriminator needs, for batches of up to `rows` draws.
#[derive(Debug, Clone)]
pub struct DiscriminatorBuffers<T> {
    net: NetBuffers<T>,
    /// `[2·rows, latent]`: the draws, then the same draws with each dimension permuted across them.
    input: Vec<T>,
    /// `[2·rows, 2]`: the logits, kept while the output buffer carries gradients.
    logits: Vec<T>,
    /// `[2·rows, latent]`: the gradient by the input.
    dx: Vec<T>,
}

/// Each dimension's permutation of a step's draws, drawn with the step's noise.
#[derive(Debug, Clone)]
pub struct Shuffle {
    /// `[latent, rows]`: the permutations.
    pub perm: Vec<u32>,
    latent: usize,
    rows: usize,
}

impl Shuffle {
    /// Room for `rows` draws of `latent` dimensions.
    pub fn new(rows: usize, latent: usize) -> Self {
        Shuffle {
            perm: (0..latent).flat_map(|_| 0..rows as u32).collect(),
            latent,
            rows,
        }
    }

    /// Draws each dimension's permutation of the first `rows` draws.
    pub fn shuffle(&mut self, rows: usize, rng: &mut impl rand::Rng) {
        use rand::seq::SliceRandom;
        for d in 0..self.latent {
            let p = &mut self.perm[d * self.rows..d * self.rows + rows];
            p.iter_mut().enumerate().for_each(|(i, v)| *v = i as u32);
            p.shuffle(rng);
        }
    }
}

/// The discriminator's two losses on one batch: the VAE's TC estimate and the discriminator's own.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DiscriminatorStats {
    /// Σ over draws of ln D(z)/(1 − D(z)), each draw weighted by 1/samples: the batch's total correlation.
    pub total_correlation: f64,
    /// The discriminator's loss, −½ mean ln D(z) − ½ mean ln(1 − D(z̃)).
    pub loss: f64,
    /// The fraction of the 2·rows inputs it classifies correctly.
    pub accuracy: f64,
}

impl Discriminator {
    /// Registers the MLP's weights; `hidden` are its widths, `latent` its input.
    pub fn new(reg: &mut impl Registry, latent: usize, hidden: &[usize]) -> Self {
        let mut layers = Vec::new();
        let mut width = latent;
        let mut start = None;
        for (i, &h) in hidden.iter().enumerate() {
            let l = Linear::new(reg, &format!("discriminator.{i}"), width, h);
            start.get_or_insert(l.w);
            layers.push(Layer::Dense(l));
            width = h;
        }
        let out = Linear::new(reg, "discriminator.out", width, 2);
        let start = start.unwrap_or(out.w).min(out.w);
        layers.push(Layer::Dense(out));
        Discriminator {
            net: Net::plain(layers, Activation::LeakyRelu02, None),
            start,
        }
    }

    /// Buffers for `rows` draws of `latent` dimensions.
    pub fn buffers<T: Real>(&self, rows: usize, latent: usize) -> DiscriminatorBuffers<T> {
        DiscriminatorBuffers {
            net: self.net.buffers(2 * rows),
            input: vec![T::zero(); 2 * rows * latent],
            logits: vec![T::zero(); 4 * rows],
            dx: vec![T::zero(); 2 * rows * latent],
        }
    }

    /// Scalars [`Discriminator::buffers`] holds.
    pub fn buffer_len(&self, rows: usize, latent: usize) -> u128 {
        let (r, z) = (rows as u128, latent as u128);
        self.net.buffer_len(2 * rows) + r * (5 * z + 4)
    }

    /// One step on the `n` draws `z` (`n × latent`, each draw weighted `1/samples` in the VAE's loss): adds γ ×
    /// the TC estimate's gradient by z into `dz`, and writes the gradient of the discriminator's own loss into
    /// its weights' part of `g`.
    #[allow(clippy::too_many_arguments)]
    pub fn step<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        z: &[T],
        n: usize,
        latent: usize,
        samples: usize,
        gamma: f64,
        shuffle: &Shuffle,
        buf: &mut DiscriminatorBuffers<T>,
        dz: &mut [T],
    ) -> DiscriminatorStats {
        let per = shuffle.rows;
        let (real, shuffled) = buf.input[..2 * n * latent].split_at_mut(n * latent);
        real.copy_from_slice(&z[..n * latent]);
        for (r, row) in shuffled.chunks_exact_mut(latent).enumerate() {
            for (d, v) in row.iter_mut().enumerate() {
                *v = z[shuffle.perm[d * per + r] as usize * latent + d];
            }
        }
        let input = &buf.input[..2 * n * latent];
        self.net.forward(p, input, &[], 2 * n, &mut buf.net, true);
        buf.logits[..4 * n].copy_from_slice(&buf.net.output()[..4 * n]);
        let w = 1.0 / samples as f64;
        let mut stats = DiscriminatorStats::default();
        // The VAE's term: γ Σ_r w (l0 − l1) over the real draws; the shuffled ones do not reach the VAE.
        {
            let out = &mut buf.net.output_mut()[..4 * n];
            out.fill(T::zero());
            for (r, o) in out[..2 * n].chunks_exact_mut(2).enumerate() {
                let l = &buf.logits[2 * r..2 * r + 2];
                stats.total_correlation += w * (l[0].f64() - l[1].f64());
                o[0] = T::c(gamma * w);
                o[1] = T::c(-gamma * w);
            }
        }
        self.net.backward(
            p,
            g,
            input,
            &[],
            2 * n,
            &mut buf.net,
            Some(&mut buf.dx[..2 * n * latent]),
        );
        for (d, x) in dz[..n * latent].iter_mut().zip(&buf.dx[..n * latent]) {
            *d += *x;
        }
        // The discriminator's own loss, a mean over each half: its gradient overwrites what the pass above left in
        // its weights.
        {
            let out = &mut buf.net.output_mut()[..4 * n];
            let half = 0.5 / n as f64;
            let mut correct = 0usize;
            for (r, o) in out.chunks_exact_mut(2).enumerate() {
                let (l0, l1) = (buf.logits[2 * r].f64(), buf.logits[2 * r + 1].f64());
                let target = usize::from(r >= n);
                // softmax of two logits, and ln of the target's probability, stably.
                let m = l0.max(l1);
                let lse = m + ((l0 - m).exp() + (l1 - m).exp()).ln();
                let probs = [(l0 - lse).exp(), (l1 - lse).exp()];
                stats.loss -= half * ([l0, l1][target] - lse);
                correct += usize::from((l0 > l1) == (target == 0));
                for k in 0..2 {
                    let t = if k == target { 1.0 } else { 0.0 };
                    o[k] = T::c(half * (probs[k] - t));
                }
            }
            stats.accuracy = correct as f64 / (2 * n) as f64;
        }
        self.net
            .backward(p, g, input, &[], 2 * n, &mut buf.net, None);
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;
    use crate::core::params::Params;
    use rand::SeedableRng;

    fn setup() -> (Discriminator, Params<f64>) {
        let mut params = Params::<f64>::default();
        // Something registered before, as the VAE's weights are.
        params.add("before", &[3]);
        let disc = Discriminator::new(&mut params, 3, &[5, 4]);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(2);
        disc.net.init(&mut params.data, &mut rng);
        (disc, params)
    }

    #[test]
    fn both_gradients_match_finite_differences() {
        let (disc, params) = setup();
        assert_eq!(disc.start, 3);
        let (n, zd, samples, gamma) = (4, 3, 2, 7.0);
        let z: Vec<f64> = (0..n * zd).map(|i| (i as f64 * 0.9).sin() * 1.5).collect();
        let mut buf = disc.buffers::<f64>(n, zd);
        let mut shuffle = Shuffle::new(n, zd);
        shuffle.shuffle(n, &mut rand_pcg::Pcg64Mcg::seed_from_u64(4));
        let mut g = vec![0.0; params.data.len()];
        let mut dz = vec![0.0; n * zd];
        disc.step(
            &params.data,
            &mut g,
            &z,
            n,
            zd,
            samples,
            gamma,
            &shuffle,
            &mut buf,
            &mut dz,
        );
        let run = |p: &[f64], z: &[f64]| {
            let mut b = disc.buffers::<f64>(n, zd);
            let mut g = vec![0.0; p.len()];
            let mut dz = vec![0.0; n * zd];
            disc.step(
                p, &mut g, z, n, zd, samples, gamma, &shuffle, &mut b, &mut dz,
            )
        };
        // The discriminator's weights get its own loss's gradient, nothing of the VAE's.
        let start = disc.start;
        check_gradients(
            &params.data[start..],
            &g[start..],
            |w| {
                let mut p = params.data.clone();
                p[start..].copy_from_slice(w);
                run(&p, &z).loss
            },
            "the discriminator's weights",
        );
        // The draws get γ × the TC estimate's gradient, as draws of q(z) only (the shuffled copies are data).
        let tc = |z: &[f64]| {
            let mut bf = disc.buffers::<f64>(n, zd);
            disc.net.forward(&params.data, z, &[], n, &mut bf.net, true);
            let o = bf.net.output();
            gamma
                * (0..n)
                    .map(|r| (o[2 * r] - o[2 * r + 1]) / samples as f64)
                    .sum::<f64>()
        };
        check_gradients(&z, &dz, tc, "the draws");
    }

    #[test]
    fn the_shuffle_permutes_each_dimension_on_its_own() {
        let (n, zd) = (50, 3);
        let mut shuffle = Shuffle::new(n, zd);
        shuffle.shuffle(n, &mut rand_pcg::Pcg64Mcg::seed_from_u64(7));
        let dims: Vec<Vec<u32>> = shuffle.perm.chunks(n).map(|c| c.to_vec()).collect();
        for d in &dims {
            let mut s = d.clone();
            s.sort_unstable();
            assert_eq!(s, (0..n as u32).collect::<Vec<_>>());
        }
        assert!(dims[0] != dims[1] && dims[1] != dims[2]);
    }
}
