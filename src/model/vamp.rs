//! The VampPrior (Tomczak & Welling 2018): p(z) = (1/K) Σ_k q(z | u_k), the model's own encoder applied to K learned
//! pseudo-inputs u_k (clamped to the data's range [0, 1], as the paper's hard tanh does).
//!
//! Each batch runs the encoder on the pseudo-inputs once; their heads become the means and log-variances of an
//! equally weighted [`Mixture`], held in a buffer of the workspace instead of among the model's weights. The mixture
//! gives the density, its gradient and samples as it does for a learned mixture prior; the gradient it leaves in
//! that buffer flows back through the encoder, into the encoder's weights (beside what the data gave them) and into
//! the pseudo-inputs.

use super::net::{Net, NetBuffers};
use super::prior::Mixture;
use crate::core::Real;
use rand_distr::{Distribution, Normal};

crate::choice! {
    /// Where a VampPrior's pseudo-inputs start.
    #[derive(Default)]
    pub enum PseudoInit {
        /// Drawn from N(0.05, 0.01²): the paper's MNIST setting.
        #[default]
        Random = "random",
        /// Training items drawn at random, plus N(0, 0.01²) noise (the paper's code's `use_training_data_init`).
        Data = "data",
    }
}

/// Where a VampPrior's pseudo-inputs lie among the model's weights, and the mixture they make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vamp {
    /// Offset of the pseudo-inputs `[K, input]` among the model's weights (before clamping).
    pub pseudo: usize,
    /// Values per item.
    pub input: usize,
    /// The equally weighted mixture of the pseudo-inputs' posteriors, its offsets into [`VampBuffers`]'s buffer.
    pub mixture: Mixture,
}

/// The encoder's pass over the pseudo-inputs, and the mixture it gives.
#[derive(Debug, Clone)]
pub struct VampBuffers<T> {
    enc: NetBuffers<T>,
    u: Vec<T>,
    du: Vec<T>,
    g: Vec<T>,
    /// The mixture's means, log-variances and (zero) logits, as [`Mixture`] reads them.
    pub(crate) mix: Vec<T>,
    /// Their gradient, left by the latent layer's backward pass.
    pub(crate) dmix: Vec<T>,
}

impl Vamp {
    /// A VampPrior of `components` pseudo-inputs of `input` values each over a `latent`-dimensional code, its
    /// pseudo-inputs at offset `pseudo`.
    pub fn new(pseudo: usize, components: usize, input: usize, latent: usize) -> Self {
        Vamp {
            pseudo,
            input,
            mixture: Mixture {
                dim: latent,
                components,
                means: 0,
                logvars: components * latent,
                logits: 2 * components * latent,
            },
        }
    }

    /// The number of pseudo-inputs K.
    pub fn components(&self) -> usize {
        self.mixture.components
    }

    fn mix_len(&self) -> usize {
        self.components() * (2 * self.mixture.dim + 1)
    }

    /// Buffers for the encoder's pass over the pseudo-inputs, and room for gradients of `params` weights.
    pub fn buffers<T: Real>(&self, encoder: &Net, params: usize) -> VampBuffers<T> {
        let k = self.components();
        let zeros = |n: usize| vec![T::zero(); n];
        VampBuffers {
            enc: encoder.buffers(k),
            u: zeros(k * self.input),
            du: zeros(k * self.input),
            g: zeros(params),
            mix: zeros(self.mix_len()),
            dmix: zeros(self.mix_len()),
        }
    }

    /// Scalars [`Vamp::buffers`] allocates.
    pub fn buffer_len(&self, encoder: &Net, params: u128) -> u128 {
        let k = self.components();
        encoder.buffer_len(k) + (2 * k * self.input + 2 * self.mix_len()) as u128 + params
    }

    /// The pseudo-inputs' initial values: N(0.05, 0.01²), the paper's MNIST setting.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
        let normal = Normal::new(0.05, 0.01).expect("a valid normal");
        for u in &mut p[self.pseudo..self.pseudo + self.components() * self.input] {
            *u = T::c(normal.sample(rng));
        }
    }

    /// Sets the pseudo-inputs to `items` (K rows of `input` values) plus N(0, 0.01²) noise, so they start on the
    /// data (the paper's code's other initialisation).
    pub fn init_from<T: Real>(&self, p: &mut [T], items: &[f32], rng: &mut impl rand::Rng) {
        let normal = Normal::new(0.0, 0.01).expect("a valid normal");
        let n = self.components() * self.input;
        for (u, &x) in p[self.pseudo..self.pseudo + n].iter_mut().zip(&items[..n]) {
            *u = T::c(x as f64 + normal.sample(rng));
        }
    }

    /// Encodes the clamped pseudo-inputs and lays their heads out as the mixture's means and log-variances.
    pub fn forward<T: Real>(&self, encoder: &Net, p: &[T], b: &mut VampBuffers<T>) {
        let (k, d) = (self.components(), self.mixture.dim);
        let raw = &p[self.pseudo..self.pseudo + k * self.input];
        for (u, &r) in b.u.iter_mut().zip(raw) {
            *u = r.max(T::zero()).min(T::one());
        }
        encoder.forward(p, &b.u, &[], k, &mut b.enc, false);
        let heads = b.enc.output();
        let (means, rest) = b.mix.split_at_mut(k * d);
        let (logvars, logits) = rest.split_at_mut(k * d);
        for (i, h) in heads.chunks_exact(2 * d).take(k).enumerate() {
            means[i * d..(i + 1) * d].copy_from_slice(&h[..d]);
            logvars[i * d..(i + 1) * d].copy_from_slice(&h[d..]);
        }
        logits.fill(T::zero());
    }

    /// Backpropagates the mixture's gradient (`b.dmix`) through the encoder's pass over the pseudo-inputs: adds
    /// the encoder's weight gradient to `g` and sets the pseudo-inputs' (zero where the clamp holds them).
    pub fn backward<T: Real>(&self, encoder: &Net, p: &[T], g: &mut [T], b: &mut VampBuffers<T>) {
        let (k, d) = (self.components(), self.mixture.dim);
        let (dmeans, rest) = b.dmix.split_at(k * d);
        let dlogvars = &rest[..k * d];
        for (i, h) in b
            .enc
            .output_mut()
            .chunks_exact_mut(2 * d)
            .take(k)
            .enumerate()
        {
            h[..d].copy_from_slice(&dmeans[i * d..(i + 1) * d]);
            h[d..].copy_from_slice(&dlogvars[i * d..(i + 1) * d]);
        }
        b.g.fill(T::zero());
        encoder.backward(p, &mut b.g, &b.u, &[], k, &mut b.enc, Some(&mut b.du));
        for (a, &v) in g.iter_mut().zip(&b.g) {
            *a += v;
        }
        let raw = &p[self.pseudo..self.pseudo + k * self.input];
        let gu = &mut g[self.pseudo..self.pseudo + k * self.input];
        for ((gu, &du), &r) in gu.iter_mut().zip(&b.du).zip(raw) {
            *gu = if r > T::zero() && r < T::one() {
                du
            } else {
                T::zero()
            };
        }
    }
}
