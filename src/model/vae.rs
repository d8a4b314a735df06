//! The model: encoder network to (μ, log σ²) (or straight to z for an autoencoder), reparameterisation with
//! L samples, decoder network to pixel parameters; the ELBO or the IWAE bound with explicit gradients.
//!
//! All buffers live in a [`Workspace`] allocated once per batch shape, so a training step allocates nothing.

use super::config::{Architecture, GaussianMean, Likelihood, ModelConfig, ModelKind};
use super::flow::FlowBuffers;
use super::latent::{GaussianLatent, log_q};
use super::net::NetBuffers;
use super::prior::{Prior, StandardNormal as NormalPrior};
use super::stack::StackBuffers;
use super::vamp::VampBuffers;
use crate::core::activation::sigmoid;
use crate::core::ops;
use crate::core::threads::{self, Disjoint};
use crate::core::{Params, Real};
use rand_distr::{Distribution, StandardNormal};

/// Rows of noise (one draw for one image each) drawn by one generator of their own. Each block's generator is
/// seeded from one number the caller's generator gives per batch and the block's index, so which thread draws a
/// block changes no number: the noise never depends on the thread count, and a batch's draws (150 000 a step for
/// the two-layer IWAE-50) no longer hold the other cores idle.
pub const NOISE_BLOCK: usize = 64;

/// Noise values below which one thread draws them all: a hand-off costs more.
const NOISE_SPLIT: usize = 1 << 13;

/// Sums over a batch, in nats (divide by the number of images for per-image figures).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchStats {
    /// Σ over images of the reconstruction term −E_q[log p(x|z)] (averaged over the L samples).
    pub recon: f64,
    /// Σ over images of KL(q(z|x) ‖ p(z)).
    pub kl: f64,
    /// Σ over images of the negative IWAE bound, when that is the objective.
    pub iwae: f64,
    /// Images in the batch.
    pub n: usize,
}

impl BatchStats {
    /// Adds another batch's sums.
    pub fn add(&mut self, other: BatchStats) {
        self.recon += other.recon;
        self.kl += other.kl;
        self.iwae += other.iwae;
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

crate::choice! {
    /// Which bound the samples estimate.
    #[derive(Default)]
    pub enum Estimator {
        /// The ELBO with the analytic KL, recon averaged over the L samples.
        #[default]
        Elbo = "elbo",
        /// The importance-weighted bound ln (1/K) Σ_k p(x, z_k)/q(z_k|x) (Burda et al. 2015).
        Iwae = "iwae",
        /// The mean of M IWAE bounds of K samples each (Rainforth et al. 2018).
        Miwae = "miwae",
        /// β·ELBO + (1 − β)·IWAE over the same K samples (Rainforth et al. 2018).
        Ciwae = "ciwae",
        /// The encoder on MIWAE's bound (M groups of K), the decoder on the IWAE bound over all M·K samples
        /// (Rainforth et al. 2018).
        Piwae = "piwae",
    }
}

impl Estimator {
    /// Whether gradients weight each sample by its importance (every bound but the ELBO).
    pub fn is_importance_weighted(self) -> bool {
        self != Estimator::Elbo
    }
}

/// What one training step minimises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objective {
    /// ELBO or IWAE.
    pub estimator: Estimator,
    /// Weight of the KL term (β-VAE, and KL warm-up through the schedule).
    pub beta: f64,
    /// γ·|KL − C| instead of β·KL (Burgess et al. 2018): (γ, C) for this step, C in nats per image.
    pub capacity: Option<(f64, f64)>,
    /// Free bits λ per latent dimension: dimensions whose batch-mean KL is below λ get no KL gradient.
    pub free_bits: f64,
    /// MIWAE's M: the samples of an image form this many groups, each an IWAE bound (1 otherwise).
    pub groups: usize,
    /// CIWAE's β, the ELBO's share of the bound.
    pub ciwae_beta: f64,
    /// A DIP-VAE penalty on the batch's codes.
    pub dip: Option<super::dip::Dip>,
    /// β-TC-VAE's reweighting of the KL's parts.
    pub tc: Option<super::tc::Tc>,
    /// FactorVAE's γ, the weight of the discriminator's total-correlation estimate.
    pub factor_vae: Option<f64>,
}

impl Objective {
    /// The ELBO with KL weight β.
    pub fn elbo(beta: f64) -> Self {
        Objective {
            estimator: Estimator::Elbo,
            beta,
            capacity: None,
            free_bits: 0.0,
            groups: 1,
            ciwae_beta: 0.0,
            dip: None,
            tc: None,
            factor_vae: None,
        }
    }

    /// The IWAE bound with as many samples as the workspace holds.
    pub fn iwae() -> Self {
        Objective {
            estimator: Estimator::Iwae,
            ..Self::elbo(1.0)
        }
    }
}

/// The bound `objective` trains, from one image's log-weights `lw` (ln p(x, z_l) − ln q(z_l|x)), and each
/// sample's coefficient in its gradient into `weights`: the bound's gradient is Σ_l weights[l]·∇ lw[l].
/// IWAE: ln (1/K) Σ exp(lw), weights the normalised importance weights. MIWAE: the mean of that bound over M
/// consecutive groups of K, weights normalised within each group and divided by M. CIWAE: β·mean(lw) +
/// (1 − β)·IWAE, weights β/K + (1 − β)·the normalised weights.
fn importance_weights<T: Real>(lw: &[f64], objective: &Objective, weights: &mut [T]) -> f64 {
    match objective.estimator {
        Estimator::Ciwae => {
            let (s, beta) = (lw.len() as f64, objective.ciwae_beta);
            let lse = ops::log_sum_exp(lw);
            let mean = lw.iter().sum::<f64>() / s;
            for (w, &v) in weights.iter_mut().zip(lw) {
                *w = T::c(beta / s + (1.0 - beta) * (v - lse).exp());
            }
            beta * mean + (1.0 - beta) * (lse - s.ln())
        }
        _ => {
            // PIWAE's weights here are the decoder's: one IWAE bound over every sample.
            let groups = match objective.estimator {
                Estimator::Piwae => 1,
                _ => objective.groups.max(1),
            };
            let k = lw.len() / groups;
            let mut bound = 0.0;
            for (g, w) in lw.chunks_exact(k).zip(weights.chunks_exact_mut(k)) {
                let lse = ops::log_sum_exp(g);
                bound += (lse - (k as f64).ln()) / groups as f64;
                for (w, &v) in w.iter_mut().zip(g) {
                    *w = T::c((v - lse).exp() / groups as f64);
                }
            }
            bound
        }
    }
}

/// The weights the prior reads: the model's own, or a VampPrior's mixture made from its pseudo-inputs.
fn prior_weights<'a, T>(params: &'a Params<T>, vamp: &'a Option<VampBuffers<T>>) -> &'a [T] {
    vamp.as_ref().map_or(&params.data[..], |v| &v.mix[..])
}

/// [`prior_weights`] and where the prior's gradient goes.
fn prior_weights_mut<'a, T>(
    params: &'a mut Params<T>,
    vamp: &'a mut Option<VampBuffers<T>>,
) -> (&'a [T], &'a mut [T]) {
    match vamp.as_mut() {
        Some(v) => (&v.mix[..], &mut v.dmix[..]),
        None => (&params.data[..], &mut params.grad[..]),
    }
}

/// The gradient by the first layer's heads `[μ | log σ²]` (into `dhead`) of Σ_r w_r ln q(z_r | x) at fixed ε, whose
/// only term that reads the head directly is −½ Σ log σ², plus what reached each draw through z = μ + σ·ε (`dz`).
fn head_backward<T: Real>(
    head: &[T],
    eps: &[T],
    w: &[T],
    dz: &[T],
    dhead: &mut [T],
    zd: usize,
    s: usize,
) {
    let half = T::c(0.5);
    let dhead = &mut dhead[..head.len()];
    for (dh, wb) in dhead.chunks_exact_mut(2 * zd).zip(w.chunks_exact(s)) {
        let wsum = wb.iter().fold(T::zero(), |a, &v| a + v);
        dh[..zd].fill(T::zero());
        dh[zd..].fill(-half * wsum);
    }
    ops::reparameterize_backward(head, eps, dz, dhead, zd, s);
}

/// A VAE (or autoencoder) with its weights.
#[derive(Debug, Clone)]
pub struct Vae<T> {
    /// The architecture.
    pub config: ModelConfig,
    /// All weights and their gradients.
    pub params: Params<T>,
    arch: Architecture,
    latent: GaussianLatent<T>,
    /// The top layer's prior when latent layers are stacked (the first layer's is then the stack).
    top: Option<std::sync::Arc<dyn Prior<T>>>,
    /// A copy for inference ([`Vae::for_inference`]), whose weights are not in the layout training keeps.
    frozen: bool,
}

/// Buffers for one batch shape: `rows` images with `samples` latent draws each.
#[derive(Debug, Clone)]
pub struct Workspace<T> {
    rows: usize,
    samples: usize,
    max_samples: usize,
    enc: NetBuffers<T>,
    dec: NetBuffers<T>,
    /// `[rows]` class labels, read by conditional models.
    pub labels: Vec<u32>,
    dec_labels: Vec<u32>,
    /// `[rows·samples, noise_dim]` standard normal draws: each row the first layer's ε, then each stacked
    /// layer's in turn.
    pub eps: Vec<T>,
    /// `[rows·samples, latent]` latent codes.
    pub z: Vec<T>,
    /// `[rows·samples]` −log p(x|z) per draw.
    pub nll: Vec<T>,
    /// `[rows]` KL per image.
    pub kl: Vec<T>,
    weights: Vec<T>,
    /// PIWAE: the encoder's per-draw weights (MIWAE's), while `weights` holds the decoder's (IWAE's).
    enc_weights: Vec<T>,
    /// PIWAE: the decoder's outputs (a learned scale) or their gradient at unit weight, `[rows·samples, input]`,
    /// kept for its second backward pass; allocated at the first PIWAE step.
    unit: Vec<T>,
    dz: Vec<T>,
    dhead: Vec<T>,
    kl_weight: Vec<T>,
    dls: Vec<T>,
    lw: Vec<f64>,
    /// `[rows·samples]` ln p(z) per draw, when the prior's KL is estimated by Monte Carlo.
    log_prior: Vec<f64>,
    /// The layers above the first, when stacked.
    stack: Option<StackBuffers<T>>,
    /// A VampPrior's pass over its pseudo-inputs.
    vamp: Option<VampBuffers<T>>,
    /// The posterior's flow, when it has one.
    flow: Option<FlowBuffers<T>>,
    /// FactorVAE: the discriminator's buffers, allocated at the first training step (no other command needs
    /// them), and the permutations of this step's draws.
    factor: Option<super::factor::DiscriminatorBuffers<T>>,
    shuffle: Option<super::factor::Shuffle>,
    /// FactorVAE: the discriminator's losses at the last training step.
    pub discriminator: super::factor::DiscriminatorStats,
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

    /// The encoder's output rows: μ then log σ² per image (a VAE), or z (an autoencoder).
    pub fn head(&self) -> &[T] {
        self.enc.output()
    }

    /// The decoder's outputs (logits of the pixel means) for the codes decoded last.
    pub fn logits(&self) -> &[T] {
        self.dec.output()
    }
}

impl<T: Real> Vae<T>
where
    StandardNormal: Distribution<T>,
{
    /// A freshly initialised model (PyTorch's default initialisation). The config must be valid.
    pub fn new(config: ModelConfig, rng: &mut impl rand::Rng) -> Self {
        let mut vae = Self::uninit(config);
        let p = &mut vae.params.data;
        vae.arch.encoder.init(p, rng);
        vae.arch.decoder.init(p, rng);
        if let (
            Some((o, l)),
            Likelihood::Gaussian { sigma, .. } | Likelihood::Logistic { scale: sigma, .. },
        ) = (vae.arch.log_sigma, vae.config.likelihood)
        {
            p[o..o + l].fill(T::c(sigma.ln()));
        }
        // Drawn after the networks', so a model with N(0, I) starts from the same weights as before.
        if let Some(mixture) = vae.arch.prior {
            mixture.init(p, rng);
        }
        if let Some(stack) = &vae.arch.stack {
            stack.init(p, rng);
        }
        if let Some(vamp) = vae.arch.vamp {
            vamp.init(p, rng);
        }
        if let Some(flow) = &vae.arch.flow {
            flow.init(p, rng);
        }
        if let Some(d) = &vae.arch.discriminator {
            d.net.init(p, rng);
        }
        vae
    }

    /// The VampPrior, if the model has one: where its pseudo-inputs lie, how many, and their size.
    pub fn vamp(&self) -> Option<super::vamp::Vamp> {
        self.arch.vamp
    }

    /// Starts a VampPrior's pseudo-inputs on `items` (one row per pseudo-input) plus N(0, 0.01²) noise.
    pub fn init_pseudo_inputs_from(&mut self, items: &[f32], rng: &mut impl rand::Rng) {
        if let Some(vamp) = self.arch.vamp {
            vamp.init_from(&mut self.params.data, items, rng);
        }
    }

    /// Where FactorVAE's discriminator's weights start (they run to the end), if the model has one: the VAE's
    /// optimiser and gradient clipping stop there.
    pub fn discriminator_start(&self) -> Option<usize> {
        self.arch.discriminator.as_ref().map(|d| d.start)
    }

    /// The model with all weights zero (to be filled from a checkpoint). The config must be valid.
    pub fn uninit(config: ModelConfig) -> Self {
        let mut params = Params::default();
        let arch = config
            .build(&mut params)
            .expect("the config was validated before building the model");
        // A VampPrior is the mixture its pseudo-inputs make, its parameters in the workspace (see `prior_weights`).
        let prior: std::sync::Arc<dyn Prior<T>> = match (arch.prior, arch.vamp) {
            (Some(mixture), _) => std::sync::Arc::new(mixture),
            (None, Some(vamp)) => std::sync::Arc::new(vamp.mixture),
            (None, None) => std::sync::Arc::new(NormalPrior { dim: config.latent }),
        };
        let top = arch.stack.as_ref().map(|s| {
            std::sync::Arc::new(NormalPrior { dim: s.top() }) as std::sync::Arc<dyn Prior<T>>
        });
        Vae {
            latent: GaussianLatent::new(prior),
            top,
            config,
            params,
            arch,
            frozen: false,
        }
    }

    /// A copy that only runs forward, its decoder's dense weights stored input-major (see
    /// [`crate::core::linear::Linear::store_for_inference`]). It is never trained or saved, so it does not leave
    /// the crate. Products over more than one row give the same bits in either layout; a single row takes
    /// `gemm`'s matrix-vector path, whose order of sums follows the layout. So the encoder, which importance
    /// sampling runs on one image at a time, keeps its own.
    pub(crate) fn for_inference(&self) -> Self {
        let mut copy = self.clone();
        copy.arch.decoder.store_for_inference(&mut copy.params.data);
        copy.frozen = true;
        copy
    }

    /// Lets the encoder's first layer multiply only the nonzero values of a sparse batch ([`crate::core::sparse`]),
    /// storing its weight input-major with `moments` (the optimiser's, laid out as the weights) following; `false`
    /// puts both back in PyTorch's layout, as checkpoints keep them. For training: the sparse products cost the
    /// default model's epoch a quarter less on MNIST. Returns whether the first layer is dense, the kind this
    /// serves.
    pub fn multiply_sparse_inputs(&mut self, on: bool, moments: &mut [&mut [T]]) -> bool {
        self.arch
            .encoder
            .multiply_sparse_inputs(on, &mut self.params.data, moments)
    }

    /// The dimension of the codes the model is encoded to, decoded from and sampled in: its top latent layer's
    /// (the only one, unless layers are stacked).
    pub fn latent(&self) -> usize {
        self.arch.code_dim(self.config.latent)
    }

    /// Latent layers, 1 unless stacked.
    pub fn depth(&self) -> usize {
        1 + self.config.upper.len()
    }

    /// The prior p(z) codes (of the top layer) are drawn from and measured against.
    pub fn prior(&self) -> &dyn Prior<T> {
        match &self.top {
            Some(top) => &**top,
            None => self.latent.prior(),
        }
    }

    /// `n` codes drawn from the prior (of the top layer), their spread scaled by `temperature`, code after code.
    pub fn draw_codes(&self, n: usize, rng: &mut dyn rand::Rng, temperature: f64) -> Vec<T> {
        let zd = self.latent();
        let mut codes = vec![T::zero(); n * zd];
        // A VampPrior's mixture comes from its pseudo-inputs, encoded once for all the draws.
        let vamp = self.arch.vamp.map(|v| {
            let mut b = v.buffers(&self.arch.encoder, 0);
            v.forward(&self.arch.encoder, &self.params.data, &mut b);
            b
        });
        let p = prior_weights(&self.params, &vamp);
        for code in codes.chunks_exact_mut(zd.max(1)) {
            self.prior().sample(p, rng, temperature, code);
        }
        codes
    }

    /// Standard normal values drawn per latent sample: the first layer's dimension plus every stacked layer's.
    pub fn noise_dim(&self) -> usize {
        self.config.latent + self.arch.stack.as_ref().map_or(0, |s| s.noise())
    }

    /// Values of [`Vae::posterior`] per image: 2·latent for a VAE (μ, then log σ² of the top layer), latent for
    /// an autoencoder.
    pub fn head_len(&self) -> usize {
        match self.arch.stack {
            Some(_) => 2 * self.latent(),
            None => self.arch.encoder.out_len(),
        }
    }

    /// Scalars a workspace for `rows` images and `samples` draws holds, computed without allocating.
    pub fn workspace_len(&self, rows: usize, samples: usize) -> u128 {
        self.arch.workspace_len(self.config.latent, rows, samples)
    }

    /// Allocates the buffers for batches of up to `rows` images and `samples` draws each.
    pub fn workspace(&self, rows: usize, samples: usize) -> Workspace<T> {
        let z = self.config.latent;
        let rs = rows * samples;
        let zeros = |n: usize| vec![T::zero(); n];
        Workspace {
            rows,
            samples,
            max_samples: samples,
            enc: self.arch.encoder.buffers(rows),
            dec: self.arch.decoder.buffers(rs),
            labels: vec![0; rows],
            dec_labels: vec![0; rs],
            eps: zeros(rs * self.noise_dim()),
            z: zeros(rs * z),
            nll: zeros(rs),
            kl: zeros(rows),
            weights: zeros(rs),
            enc_weights: zeros(rs),
            unit: Vec::new(),
            dz: zeros(rs * z),
            dhead: zeros(rows * 2 * z),
            kl_weight: zeros(z),
            dls: zeros(self.arch.log_sigma.map_or(0, |(_, l)| l)),
            lw: vec![0.0; samples],
            log_prior: vec![0.0; rs],
            stack: self.arch.stack.as_ref().map(|s| s.buffers(rs)),
            vamp: self
                .arch
                .vamp
                .map(|v| v.buffers(&self.arch.encoder, self.params.len())),
            flow: self.arch.flow.as_ref().map(|f| f.buffers(rs)),
            factor: None,
            shuffle: self
                .arch
                .discriminator
                .as_ref()
                .map(|_| super::factor::Shuffle::new(rs, z)),
            discriminator: Default::default(),
        }
    }

    /// Runs the encoder on `rows` images (with `ws.labels` for a conditional model); see [`Workspace::head`].
    /// Batch norm uses its running statistics, as in PyTorch's `eval()` mode.
    pub fn encode(&self, x: &[T], rows: usize, ws: &mut Workspace<T>) {
        self.encode_in(x, rows, ws, false)
    }

    fn encode_in(&self, x: &[T], rows: usize, ws: &mut Workspace<T>, training: bool) {
        assert!(
            rows <= ws.rows,
            "batch of {rows} exceeds workspace of {}",
            ws.rows
        );
        let net = &self.arch.encoder;
        net.forward(
            &self.params.data,
            x,
            &ws.labels,
            rows,
            &mut ws.enc,
            training,
        );
        if let (Some(vamp), Some(vb)) = (self.arch.vamp, ws.vamp.as_mut()) {
            vamp.forward(net, &self.params.data, vb);
        }
    }

    /// The posterior of each of the `rows` images [`Vae::encode`] encoded last: `[μ | log σ²]` of the top latent
    /// layer, each layer above the first fed the means of the one below (a single layer's: the encoder's head;
    /// an autoencoder's: z). With a flow, μ is the flow's image of the base Gaussian's mean (the code the decoder
    /// reads for it) and log σ² the base Gaussian's, before the flow.
    pub fn posterior<'a>(&self, rows: usize, ws: &'a mut Workspace<T>) -> &'a [T] {
        let hl = self.arch.encoder.out_len();
        if let (Some(flow), Some(fb)) = (&self.arch.flow, &mut ws.flow) {
            let zd = self.config.latent;
            let head = &ws.enc.output()[..rows * hl];
            for (z, h) in fb
                .base_mut(rows)
                .chunks_exact_mut(zd)
                .zip(head.chunks_exact(hl))
            {
                z.copy_from_slice(&h[..zd]);
            }
            flow.forward(&self.params.data, rows, fb, &mut ws.z[..rows * zd]);
            let out = &mut ws.dhead[..rows * hl];
            for ((o, h), z) in out
                .chunks_exact_mut(hl)
                .zip(head.chunks_exact(hl))
                .zip(ws.z.chunks_exact(zd))
            {
                o[..zd].copy_from_slice(z);
                o[zd..].copy_from_slice(&h[zd..]);
            }
            return &ws.dhead[..rows * hl];
        }
        match (&self.arch.stack, &mut ws.stack) {
            (Some(stack), Some(sb)) => {
                let zd = self.config.latent;
                for (z, h) in ws.z[..rows * zd]
                    .chunks_exact_mut(zd)
                    .zip(ws.enc.output().chunks_exact(hl))
                {
                    z.copy_from_slice(&h[..zd]);
                }
                stack.top_head(&self.params.data, &ws.z[..rows * zd], rows, sb)
            }
            _ => &ws.enc.output()[..rows * hl],
        }
    }

    /// Sets the first layer's codes `ws.z` for `n` codes of the top layer (see [`Vae::latent`]): themselves for a
    /// single layer; for stacked layers each layer below the mean of p(z_{l−1} | z_l), or with `draw = Some((T,
    /// rng))` a draw from it with its spread scaled by T (ancestral sampling).
    pub fn descend(
        &self,
        codes: &[T],
        n: usize,
        ws: &mut Workspace<T>,
        draw: Option<(f64, &mut dyn rand::Rng)>,
    ) {
        let zd = self.config.latent;
        match (&self.arch.stack, &mut ws.stack) {
            (Some(stack), Some(sb)) => {
                stack.descend(&self.params.data, codes, n, sb, draw, &mut ws.z[..n * zd])
            }
            _ => ws.z[..n * zd].copy_from_slice(&codes[..n * zd]),
        }
    }

    /// Runs the decoder on `n` latent codes in `ws.z` (code `r` with label `ws.labels[r / samples]`); see
    /// [`Workspace::logits`]. Batch norm uses its running statistics.
    pub fn decode(&self, n: usize, ws: &mut Workspace<T>) {
        self.decode_in(n, ws, false)
    }

    fn decode_in(&self, n: usize, ws: &mut Workspace<T>, training: bool) {
        let s = ws.samples;
        for (r, l) in ws.dec_labels[..n].iter_mut().enumerate() {
            *l = ws.labels[r / s];
        }
        let net = &self.arch.decoder;
        net.forward(
            &self.params.data,
            &ws.z,
            &ws.dec_labels,
            n,
            &mut ws.dec,
            training,
        );
    }

    /// The decoder's means for the `n` codes decoded last: σ(logits), the outputs themselves for a Gaussian
    /// over standardised features, or the logistic's location clamped to [0, 1].
    pub fn means(&self, n: usize, ws: &Workspace<T>, out: &mut [T]) {
        let lik = self.config.likelihood;
        let outputs = &ws.logits()[..n * self.config.input_dim()];
        for (o, &l) in out.iter_mut().zip(outputs) {
            *o = match lik {
                Likelihood::Gaussian {
                    mean: GaussianMean::Identity,
                    ..
                } => l,
                Likelihood::Logistic { .. } => l.max(T::zero()).min(T::one()),
                _ => sigmoid(l),
            };
        }
    }

    /// Fills `ws.eps` for `rows` images with standard normal draws (none for an autoencoder).
    pub fn draw_eps(&self, rows: usize, ws: &mut Workspace<T>, rng: &mut impl rand::Rng)
    where
        StandardNormal: Distribution<T>,
    {
        let samples = ws.samples;
        self.draw_eps_into(rows, samples, &mut ws.eps, rng);
        if let Some(f) = ws.shuffle.as_mut() {
            f.shuffle(rows * samples, rng);
        }
    }

    /// [`Vae::draw_eps`] with one generator per image (`rngs[b]` draws image `b`'s noise), so an image's draws do
    /// not depend on the images beside it: how `score` makes an item's score independent of its place in a file.
    pub fn draw_eps_per_image<R: rand::Rng>(
        &self,
        rows: usize,
        ws: &mut Workspace<T>,
        rngs: &mut [R],
    ) where
        StandardNormal: Distribution<T>,
    {
        let (samples, per_image) = (ws.samples, ws.samples * self.noise_dim());
        for (b, rng) in rngs.iter_mut().enumerate().take(rows) {
            self.draw_eps_into(1, samples, &mut ws.eps[b * per_image..], rng);
        }
    }

    /// [`Vae::draw_eps`] into `eps` (`[rows·samples, latent]`, image-major), drawing the same numbers: one number
    /// from `rng` seeds a generator per block of [`NOISE_BLOCK`] rows, so the blocks can be drawn on any thread.
    pub fn draw_eps_into(
        &self,
        rows: usize,
        samples: usize,
        eps: &mut [T],
        rng: &mut impl rand::Rng,
    ) where
        StandardNormal: Distribution<T>,
    {
        if !self.config.is_variational() {
            return;
        }
        let (width, n) = (self.noise_dim(), rows * samples);
        let base = rng.next_u64();
        let eps = Disjoint::new(&mut eps[..n * width]);
        let min = NOISE_SPLIT.div_ceil(NOISE_BLOCK * width.max(1));
        threads::for_rows(n.div_ceil(NOISE_BLOCK), min, |a, b| {
            for block in a..b {
                let (r0, r1) = (block * NOISE_BLOCK, ((block + 1) * NOISE_BLOCK).min(n));
                // SAFETY: for_rows hands out disjoint ranges of blocks, and blocks hold disjoint rows.
                let out = unsafe { eps.range(r0 * width, r1 * width) };
                let mut g = <rand_pcg::Pcg64Mcg as rand::SeedableRng>::seed_from_u64(
                    base ^ (block as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                );
                for e in out {
                    *e = StandardNormal.sample(&mut g);
                }
            }
        });
    }

    /// Scores the `n` decoded rows against `x` (each image repeated `samples` times) into `ws.nll`. With
    /// `grad`, the logits are replaced by their gradient weighted by `uniform` for every row; the learned-σ and logistic
    /// kernels also accept `uniform = None`, meaning the per-row weights in `ws.weights`, and writes the log σ
    /// gradient.
    fn likelihood(&self, x: &[T], n: usize, ws: &mut Workspace<T>, grad: bool, uniform: Option<T>) {
        let d = self.config.input_dim();
        let s = ws.samples;
        let logits = &mut ws.dec.output_mut()[..n * d];
        let nll = &mut ws.nll[..n];
        match self.config.likelihood {
            Likelihood::Bernoulli => ops::bernoulli_nll(
                logits,
                x,
                d,
                s,
                nll,
                grad.then_some(uniform.unwrap_or(T::one())),
            ),
            Likelihood::Gaussian { sigma, mean, .. } if self.arch.log_sigma.is_none() => {
                ops::gaussian_nll(
                    logits,
                    x,
                    d,
                    s,
                    sigma,
                    mean == GaussianMean::Sigmoid,
                    nll,
                    grad.then_some(uniform.unwrap_or(T::one())),
                )
            }
            Likelihood::Gaussian { mean, .. } => {
                let squash = mean == GaussianMean::Sigmoid;
                let (o, l) = self.arch.log_sigma.expect("learned sigma");
                let (p, g) = (&self.params.data[o..o + l], &mut ws.dls[..]);
                if grad {
                    g.fill(T::zero());
                    if let Some(u) = uniform {
                        ws.weights[..n].fill(u);
                    }
                    let w = &ws.weights[..n];
                    ops::gaussian_learned_nll(logits, x, d, s, p, squash, nll, Some((w, g)));
                } else {
                    ops::gaussian_learned_nll(logits, x, d, s, p, squash, nll, None);
                }
            }
            Likelihood::Logistic { scale, .. } => {
                let fixed = [T::c(scale.ln())];
                let learned = self.arch.log_sigma;
                let p = learned.map_or(&fixed[..], |(o, l)| &self.params.data[o..o + l]);
                if grad {
                    if let Some(u) = uniform {
                        ws.weights[..n].fill(u);
                    }
                    // A fixed scale's gradient goes nowhere.
                    let mut sink = [T::zero()];
                    let g = if learned.is_some() {
                        ws.dls.fill(T::zero());
                        &mut ws.dls[..]
                    } else {
                        &mut sink[..]
                    };
                    ops::logistic_nll(logits, x, d, s, p, nll, Some((&ws.weights[..n], g)));
                } else {
                    ops::logistic_nll(logits, x, d, s, p, nll, None);
                }
            }
        }
    }

    /// The negative ELBO of `rows` images with the draws already in `ws.eps`, without gradients.
    pub fn loss(&self, x: &[T], rows: usize, ws: &mut Workspace<T>) -> BatchStats {
        self.forward(x, rows, ws, None)
    }

    /// Folds the batch statistics of the last [`Vae::loss_and_grad`] into batch norm's running statistics.
    pub fn update_running_stats(&mut self, ws: &Workspace<T>) {
        let p = &mut self.params.data;
        self.arch.encoder.update_running_stats(p, &ws.enc);
        self.arch.decoder.update_running_stats(p, &ws.dec);
    }

    /// Evaluates `objective` on `rows` images with the draws in `ws.eps`, writing its gradient into
    /// `params.grad`. The returned stats are the plain ELBO terms (and the IWAE bound when that is trained).
    pub fn loss_and_grad(
        &mut self,
        x: &[T],
        rows: usize,
        objective: &Objective,
        ws: &mut Workspace<T>,
    ) -> BatchStats {
        assert!(!self.frozen, "a copy stored for inference has no gradients");
        let stats = self.forward(x, rows, ws, Some(objective));
        self.backward(x, rows, objective, &stats, ws);
        stats
    }

    /// Encodes, draws z, decodes and scores; with `grad`, leaves the logits' gradient in place for backward.
    fn forward(
        &self,
        x: &[T],
        rows: usize,
        ws: &mut Workspace<T>,
        grad: Option<&Objective>,
    ) -> BatchStats {
        // Only a step that will be differentiated normalises by its batch (PyTorch's train mode).
        self.encode_in(x, rows, ws, grad.is_some());
        self.forward_encoded(x, rows, ws, grad)
    }

    /// [`Vae::forward`] after the encoder: draws z from the encoding in `ws`, decodes and scores.
    fn forward_encoded(
        &self,
        x: &[T],
        rows: usize,
        ws: &mut Workspace<T>,
        grad: Option<&Objective>,
    ) -> BatchStats {
        let (zd, s) = (self.config.latent, ws.samples);
        let n = rows * s;
        let training = grad.is_some();
        match self.config.kind {
            ModelKind::Vae if self.arch.stack.is_some() => self.forward_stack(rows, ws, training),
            ModelKind::Vae if self.arch.flow.is_some() => self.forward_flow(rows, ws),
            ModelKind::Vae => self.latent.forward(
                prior_weights(&self.params, &ws.vamp),
                &ws.enc.output()[..rows * 2 * zd],
                &ws.eps[..n * zd],
                &mut ws.z[..n * zd],
                &mut ws.kl[..rows],
                s,
                &mut ws.log_prior,
            ),
            ModelKind::Autoencoder => {
                assert_eq!(s, 1, "an autoencoder draws no samples");
                ws.z[..rows * zd].copy_from_slice(&ws.enc.output()[..rows * zd]);
                ws.kl[..rows].fill(T::zero());
            }
        }
        self.decode_in(n, ws, training);
        let mut iwae = 0.0;
        match grad.map(|o| (o.estimator, o)) {
            None => self.likelihood(x, n, ws, false, None),
            Some((Estimator::Elbo, _)) => {
                let inv_s = T::one() / T::c(s as f64);
                self.likelihood(x, n, ws, true, Some(inv_s));
            }
            Some((_, objective)) => {
                let learned = self.arch.log_sigma.is_some()
                    || matches!(self.config.likelihood, Likelihood::Logistic { .. });
                // Fused kernels score and differentiate in one pass (weight 1, rescaled after); the learned-σ
                // and logistic kernels need the weights first, so it scores once without gradients.
                let piwae = objective.estimator == Estimator::Piwae;
                let d = self.config.input_dim();
                if piwae {
                    ws.unit.resize(n * d, T::zero());
                }
                if learned {
                    self.likelihood(x, n, ws, false, None);
                } else {
                    self.likelihood(x, n, ws, true, Some(T::one()));
                }
                if piwae {
                    // Logits before a learned scale's kernel replaces them, else their gradient at weight 1.
                    ws.unit.copy_from_slice(&ws.dec.output()[..n * d]);
                }
                let mut lw = std::mem::take(&mut ws.lw);
                let miwae = Objective {
                    estimator: Estimator::Miwae,
                    ..*objective
                };
                for b in 0..rows {
                    self.log_weights_from_state(ws, b, &mut lw);
                    iwae -= importance_weights(&lw, objective, &mut ws.weights[b * s..(b + 1) * s]);
                    if piwae {
                        importance_weights(&lw, &miwae, &mut ws.enc_weights[b * s..(b + 1) * s]);
                    }
                }
                ws.lw = lw;
                if learned {
                    self.likelihood(x, n, ws, true, None);
                } else {
                    let d = self.config.input_dim();
                    let logits = Disjoint::new(&mut ws.dec.output_mut()[..n * d]);
                    let weights = &ws.weights[..n];
                    // The fused kernels took weight 1; apply the per-row weights now.
                    threads::for_rows(n, 16, |a, b| {
                        // SAFETY: row ranges a..b are disjoint between threads.
                        let logits = unsafe { logits.range(a * d, b * d) };
                        for (row, &w) in logits.chunks_exact_mut(d).zip(&weights[a..b]) {
                            row.iter_mut().for_each(|v| *v *= w);
                        }
                    });
                }
            }
        }
        let recon: f64 = ws.nll[..n].iter().map(|v| v.f64()).sum::<f64>() / s as f64;
        let kl: f64 = ws.kl[..rows].iter().map(|v| v.f64()).sum();
        BatchStats {
            recon,
            kl,
            iwae,
            n: rows,
        }
    }

    /// Draws z_1 and the stacked layers above it from the encoding in `ws`, and each image's KL: the Monte Carlo
    /// estimate (1/L) Σ_l [ln q(z_1, …, z_L | x) − ln p(z_1, …, z_L)] over its draws.
    fn forward_stack(&self, rows: usize, ws: &mut Workspace<T>, training: bool) {
        let (zd, s) = (self.config.latent, ws.samples);
        let n = rows * s;
        let stack = self.arch.stack.as_ref().expect("a stacked model");
        let sb = ws.stack.as_mut().expect("a stacked model's workspace");
        stack.split_noise(&ws.eps, n, sb);
        let head = &ws.enc.output()[..rows * 2 * zd];
        ops::reparameterize(head, &sb.eps1[..n * zd], &mut ws.z[..n * zd], zd, s);
        stack.forward(&self.params.data, &ws.z[..n * zd], n, sb, training);
        for (b, k) in ws.kl[..rows].iter_mut().enumerate() {
            let lv = &head[b * 2 * zd + zd..(b + 1) * 2 * zd];
            let mut sum = 0.0;
            for r in b * s..(b + 1) * s {
                sum += log_q(&sb.eps1[r * zd..(r + 1) * zd], lv) - sb.log_prior[r];
            }
            *k = T::c(sum / s as f64);
        }
    }

    /// Draws z_0 from the encoding in `ws`, maps it through the flow to the codes `ws.z`, and each image's KL: the
    /// Monte Carlo estimate (1/L) Σ_l [ln q(z_0) − ln |det| − ln p(z_K)] over its draws.
    fn forward_flow(&self, rows: usize, ws: &mut Workspace<T>) {
        let (zd, s) = (self.config.latent, ws.samples);
        let n = rows * s;
        let flow = self.arch.flow.as_ref().expect("a model with a flow");
        let fb = ws.flow.as_mut().expect("a flow model's workspace");
        let head = &ws.enc.output()[..rows * 2 * zd];
        ops::reparameterize(head, &ws.eps[..n * zd], fb.base_mut(n), zd, s);
        flow.forward(&self.params.data, n, fb, &mut ws.z[..n * zd]);
        let pw = prior_weights(&self.params, &ws.vamp);
        let log_p = &mut fb.log_prior[..n];
        self.latent
            .prior()
            .log_densities(pw, &ws.z[..n * zd], log_p);
        for (b, k) in ws.kl[..rows].iter_mut().enumerate() {
            let lv = &head[b * 2 * zd + zd..(b + 1) * 2 * zd];
            let draws = b * s..(b + 1) * s;
            let sum: f64 = ws.eps[draws.start * zd..draws.end * zd]
                .chunks_exact(zd)
                .zip(&fb.logdet[draws.clone()])
                .zip(&log_p[draws])
                .map(|((e, ld), lp)| log_q(e, lv) - ld - lp)
                .sum();
            *k = T::c(sum / s as f64);
        }
    }

    /// ln p(x, z_l) − ln q(z_l|x) for the `samples` draws of image `b`, from the state forward left.
    fn log_weights_from_state(&self, ws: &Workspace<T>, b: usize, out: &mut [f64]) {
        let (zd, s) = (self.config.latent, ws.samples);
        let head = &ws.enc.output()[b * 2 * zd..(b + 1) * 2 * zd];
        let draws = b * s * zd..(b + 1) * s * zd;
        if let Some(sb) = &ws.stack {
            for (l, o) in out[..s].iter_mut().enumerate() {
                let r = b * s + l;
                let eps = &sb.eps1[r * zd..(r + 1) * zd];
                *o = sb.log_prior[r] - log_q(eps, &head[zd..]) - ws.nll[r].f64();
            }
            return;
        }
        if let Some(fb) = &ws.flow {
            for (l, o) in out[..s].iter_mut().enumerate() {
                let r = b * s + l;
                *o = fb.log_prior[r] - log_q(&ws.eps[r * zd..(r + 1) * zd], &head[zd..])
                    + fb.logdet[r]
                    - ws.nll[r].f64();
            }
            return;
        }
        self.latent.log_ratios_of(
            prior_weights(&self.params, &ws.vamp),
            head,
            &ws.z[draws.clone()],
            &ws.eps[draws],
            &ws.log_prior[b * s..(b + 1) * s],
            &mut out[..s],
        );
        for (o, nll) in out[..s].iter_mut().zip(&ws.nll[b * s..(b + 1) * s]) {
            *o -= nll.f64();
        }
    }

    /// Log importance weights ln p(x, z) − ln q(z|x) for `rows` images and the draws in `ws.eps`, into
    /// `out[b·samples + l]`. Only for a VAE.
    pub fn log_weights(&self, x: &[T], rows: usize, ws: &mut Workspace<T>, out: &mut [f64]) {
        self.encode(x, rows, ws);
        self.log_weights_encoded(x, rows, ws, out);
    }

    /// [`Vae::log_weights`] for images already encoded by [`Vae::encode`] into `ws`: importance sampling
    /// draws its samples in chunks, and the encoding is the same for all of them.
    pub fn log_weights_encoded(
        &self,
        x: &[T],
        rows: usize,
        ws: &mut Workspace<T>,
        out: &mut [f64],
    ) {
        assert!(self.config.is_variational(), "an autoencoder has no prior");
        let s = ws.samples;
        self.forward_encoded(x, rows, ws, None);
        for b in 0..rows {
            self.log_weights_from_state(ws, b, &mut out[b * s..(b + 1) * s]);
        }
    }

    /// The per-dimension KL weights of this step: β (or capacity's ±γ), zeroed below the free-bits floor.
    fn kl_weights(
        &self,
        rows: usize,
        objective: &Objective,
        stats: &BatchStats,
        ws: &mut Workspace<T>,
    ) {
        let zd = self.config.latent;
        let w = match objective.capacity {
            Some((gamma, c)) => {
                let mean = stats.kl / rows as f64;
                if mean > c { gamma } else { -gamma }
            }
            None => objective.beta,
        };
        ws.kl_weight.fill(T::c(w));
        if objective.free_bits > 0.0 {
            let closed = self
                .prior()
                .closed_form_kl()
                .expect("free bits are only offered with a prior whose KL has a closed form");
            let head = ws.enc.output();
            for j in 0..zd {
                let mean: f64 = (0..rows)
                    .map(|b| {
                        let (m, lv) = (head[b * 2 * zd + j].f64(), head[b * 2 * zd + zd + j].f64());
                        closed.kl_dim(m, lv)
                    })
                    .sum::<f64>()
                    / rows as f64;
                if mean < objective.free_bits {
                    ws.kl_weight[j] = T::zero();
                }
            }
        }
    }

    /// Backward of the latent terms of a stacked model, Σ_r w_r [ln q(z_1, …, z_L | x) − ln p(z_1, …, z_L)] with
    /// the per-draw weights in `ws.weights` (β/L for the ELBO, the normalised importance weights otherwise), plus
    /// what reached z_1 from the decoder (`ws.dz`), into `ws.dhead`; the stack's weights get their gradients.
    fn backward_stack(&mut self, rows: usize, ws: &mut Workspace<T>) {
        let (zd, s) = (self.config.latent, ws.samples);
        let n = rows * s;
        let stack = self.arch.stack.as_ref().expect("a stacked model");
        let sb = ws.stack.as_mut().expect("a stacked model's workspace");
        let w = &ws.weights[..n];
        stack.backward(
            &self.params.data,
            &mut self.params.grad,
            &ws.z[..n * zd],
            w,
            n,
            sb,
            &mut ws.dz[..n * zd],
        );
        let head = &ws.enc.output()[..rows * 2 * zd];
        head_backward(
            head,
            &sb.eps1[..n * zd],
            w,
            &ws.dz[..n * zd],
            &mut ws.dhead,
            zd,
            s,
        );
    }

    /// Backward of the latent terms of a flow posterior, Σ_r w_r [ln q(z_0 | x) − ln |det| − ln p(z_K)] with the
    /// per-draw weights in `ws.weights`, plus what reached z_K from the decoder (`ws.dz`), into `ws.dhead`; the
    /// flow's (and a learned prior's) weights get their gradients.
    fn backward_flow(&mut self, rows: usize, ws: &mut Workspace<T>) {
        let (zd, s) = (self.config.latent, ws.samples);
        let n = rows * s;
        let w = &ws.weights[..n];
        let prior = self.latent.prior();
        {
            let (pp, pg) = prior_weights_mut(&mut self.params, &mut ws.vamp);
            pg[prior.weights()].fill(T::zero());
            let negated: Vec<T> = w.iter().map(|&v| -v).collect();
            prior.add_log_density_grads(pp, &ws.z[..n * zd], &negated, &mut ws.dz[..n * zd], pg);
        }
        let flow = self.arch.flow.as_ref().expect("a model with a flow");
        let fb = ws.flow.as_mut().expect("a flow model's workspace");
        flow.backward(
            &self.params.data,
            &mut self.params.grad,
            n,
            fb,
            w,
            &mut ws.dz[..n * zd],
        );
        let head = &ws.enc.output()[..rows * 2 * zd];
        head_backward(
            head,
            &ws.eps[..n * zd],
            w,
            &ws.dz[..n * zd],
            &mut ws.dhead,
            zd,
            s,
        );
    }

    /// PIWAE's decoder: its weights (and a learned scale) get the IWAE bound's gradient, from the weights in
    /// `ws.weights`; the gradient by z, which reaches the encoder, is MIWAE's, from `ws.enc_weights`, which the
    /// latent terms then use too. Two backward passes from the outputs' gradient at each set of weights: the
    /// encoder's first (its weight gradients overwritten by the second), so no gradient is rescaled by a ratio of
    /// weights that may underflow.
    fn backward_piwae_decoder(&mut self, x: &[T], n: usize, ws: &mut Workspace<T>) {
        let (zd, d) = (self.config.latent, self.config.input_dim());
        let learned = self.arch.log_sigma.is_some()
            || matches!(self.config.likelihood, Likelihood::Logistic { .. });
        for encoder in [true, false] {
            if encoder {
                std::mem::swap(&mut ws.weights, &mut ws.enc_weights);
            }
            if learned {
                ws.dec.output_mut()[..n * d].copy_from_slice(&ws.unit);
                self.likelihood(x, n, ws, true, None);
            } else {
                let out = &mut ws.dec.output_mut()[..n * d];
                for ((o, u), &w) in out
                    .chunks_exact_mut(d)
                    .zip(ws.unit.chunks_exact(d))
                    .zip(&ws.weights[..n])
                {
                    o.iter_mut().zip(u).for_each(|(a, &b)| *a = b * w);
                }
            }
            if encoder {
                std::mem::swap(&mut ws.weights, &mut ws.enc_weights);
            }
            self.arch.decoder.backward(
                &self.params.data,
                &mut self.params.grad,
                &ws.z,
                &ws.dec_labels,
                n,
                &mut ws.dec,
                encoder.then_some(&mut ws.dz[..n * zd]),
            );
        }
        ws.weights[..n].copy_from_slice(&ws.enc_weights[..n]);
    }

    /// FactorVAE: adds γ × the discriminator's TC estimate's gradient into `ws.dz` and writes the discriminator's
    /// own gradient into its weights (zero when this step's objective has no γ, so its optimiser stands still).
    fn discriminator_step(&mut self, rows: usize, objective: &Objective, ws: &mut Workspace<T>) {
        let Some(disc) = &self.arch.discriminator else {
            return;
        };
        let (zd, s) = (self.config.latent, ws.samples);
        let n = rows * s;
        let (p, g) = (&self.params.data, &mut self.params.grad);
        // A batch of one item (an epoch's last, say) has no other codes to permute with: it trains the VAE alone.
        match (objective.factor_vae, ws.shuffle.as_ref()) {
            (Some(gamma), Some(shuffle)) if rows >= 2 => {
                let cap = ws.rows * ws.max_samples;
                let fb = ws.factor.get_or_insert_with(|| disc.buffers(cap, zd));
                ws.discriminator = disc.step(p, g, &ws.z, n, zd, s, gamma, shuffle, fb, &mut ws.dz);
            }
            _ => g[disc.start..].fill(T::zero()),
        }
    }

    fn backward(
        &mut self,
        x: &[T],
        rows: usize,
        objective: &Objective,
        stats: &BatchStats,
        ws: &mut Workspace<T>,
    ) {
        let (zd, s) = (self.config.latent, ws.samples);
        let n = rows * s;
        if objective.estimator == Estimator::Piwae {
            self.backward_piwae_decoder(x, n, ws);
        } else {
            let (p, g) = (&self.params.data, &mut self.params.grad);
            self.arch.decoder.backward(
                p,
                g,
                &ws.z,
                &ws.dec_labels,
                n,
                &mut ws.dec,
                Some(&mut ws.dz[..n * zd]),
            );
        }
        let hl = self.arch.encoder.out_len();
        match (self.config.kind, objective.estimator) {
            (ModelKind::Autoencoder, _) => {
                ws.dhead[..rows * zd].copy_from_slice(&ws.dz[..rows * zd]);
            }
            (ModelKind::Vae, estimator) if self.arch.stack.is_some() => {
                if estimator == Estimator::Elbo {
                    self.kl_weights(rows, objective, stats, ws);
                    let w = ws.kl_weight[0] / T::c(s as f64);
                    ws.weights[..n].fill(w);
                }
                self.backward_stack(rows, ws);
            }
            (ModelKind::Vae, estimator) if self.arch.flow.is_some() => {
                if estimator == Estimator::Elbo {
                    self.kl_weights(rows, objective, stats, ws);
                    let w = ws.kl_weight[0] / T::c(s as f64);
                    ws.weights[..n].fill(w);
                }
                self.backward_flow(rows, ws);
            }
            (ModelKind::Vae, Estimator::Elbo) => {
                self.kl_weights(rows, objective, stats, ws);
                self.discriminator_step(rows, objective, ws);
                // β-TC-VAE's terms reach the heads through every draw's density under every item's posterior;
                // the closed-form KL below overwrites `dhead`, so they wait aside.
                // A batch of one item has no other codes to compare with: its TC terms are constants.
                let tc_dhead = objective.tc.filter(|_| rows >= 2).map(|tc| {
                    let mut dh = vec![T::zero(); rows * hl];
                    tc.backward(
                        &ws.enc.output()[..rows * hl],
                        &ws.z[..n * zd],
                        rows,
                        zd,
                        s,
                        &mut ws.dz[..n * zd],
                        &mut dh,
                    );
                    dh
                });
                let (pp, pg) = prior_weights_mut(&mut self.params, &mut ws.vamp);
                self.latent.backward_elbo(
                    pp,
                    pg,
                    &ws.enc.output()[..rows * hl],
                    &ws.eps[..n * zd],
                    &ws.z[..n * zd],
                    &mut ws.dz[..n * zd],
                    &mut ws.dhead[..rows * hl],
                    s,
                    &ws.kl_weight,
                );
                if let Some(dh) = tc_dhead {
                    for (o, g) in ws.dhead[..rows * hl].iter_mut().zip(dh) {
                        *o += g;
                    }
                }
                if let Some(dip) = objective.dip {
                    dip.backward(
                        &ws.enc.output()[..rows * hl],
                        rows,
                        zd,
                        &mut ws.dhead[..rows * hl],
                    );
                }
            }
            (ModelKind::Vae, _) => {
                let (pp, pg) = prior_weights_mut(&mut self.params, &mut ws.vamp);
                self.latent.backward_iwae(
                    pp,
                    pg,
                    &ws.enc.output()[..rows * hl],
                    &ws.eps[..n * zd],
                    &ws.z[..n * zd],
                    &ws.weights[..n],
                    &mut ws.dz[..n * zd],
                    &mut ws.dhead[..rows * hl],
                    s,
                )
            }
        }
        ws.enc.output_mut()[..rows * hl].copy_from_slice(&ws.dhead[..rows * hl]);
        let (p, g) = (&self.params.data, &mut self.params.grad);
        if let Some((o, l)) = self.arch.log_sigma {
            g[o..o + l].copy_from_slice(&ws.dls);
        }
        let enc = &self.arch.encoder;
        enc.backward(p, g, x, &ws.labels, rows, &mut ws.enc, None);
        // A VampPrior's gradient reaches the encoder a second way, through the pseudo-inputs' pass.
        if let (Some(vamp), Some(vb)) = (self.arch.vamp, ws.vamp.as_mut()) {
            vamp.backward(enc, p, g, vb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Activation;
    use crate::core::gradcheck::check_gradients;
    use crate::model::config::{ConvSpec, DecoderSpec, PriorSpec, SigmaMode};
    use rand::SeedableRng;

    /// A 4x6 image model small enough for finite differences.
    fn config(hidden: Vec<usize>, act: Activation, likelihood: Likelihood) -> ModelConfig {
        ModelConfig {
            rows: 4,
            cols: 6,
            hidden,
            latent: 2,
            activation: act,
            likelihood,
            ..ModelConfig::pytorch_example()
        }
    }

    /// The Keras example's decoder shape, scaled down: two halving transposed convolutions and a stride-1 one.
    fn keras_like_decoder(linear_projection: bool) -> Option<DecoderSpec> {
        Some(DecoderSpec {
            linear_projection,
            hidden: vec![],
            deconv: vec![
                ConvSpec::halving(2),
                ConvSpec::halving(2),
                ConvSpec {
                    stride: 1,
                    ..ConvSpec::halving(1)
                },
            ],
        })
    }

    fn model(cfg: ModelConfig) -> Vae<f64> {
        cfg.validate().unwrap();
        Vae::new(cfg, &mut rand_pcg::Pcg64Mcg::seed_from_u64(5))
    }

    fn batch(rows: usize, d: usize) -> Vec<f64> {
        (0..rows * d)
            .map(|i| ((i * 37 % 11) as f64) / 10.0)
            .collect()
    }

    /// The noise of many blocks is one standard normal sample: no two blocks repeat or follow one another's
    /// stream, and the same generator state gives the same numbers.
    #[test]
    fn block_noise_is_standard_normal_and_reproducible() {
        let vae = model(config(vec![5], Activation::Relu, Likelihood::Bernoulli));
        let (rows, samples) = (50, 40);
        let draw = |seed| {
            let mut ws = vae.workspace(rows, samples);
            vae.draw_eps(rows, &mut ws, &mut rand_pcg::Pcg64Mcg::seed_from_u64(seed));
            ws.eps[..rows * samples * vae.noise_dim()].to_vec()
        };
        let e = draw(11);
        assert_eq!(e, draw(11));
        assert_ne!(e, draw(12));
        let n = e.len() as f64;
        let mean = e.iter().sum::<f64>() / n;
        let var = e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "mean {mean}, variance {var}"
        );
        let block = NOISE_BLOCK * vae.noise_dim();
        let blocks: Vec<&[f64]> = e.chunks_exact(block).collect();
        assert!(blocks.len() >= 30);
        for (i, a) in blocks.iter().enumerate() {
            for b in &blocks[i + 1..] {
                let dot = a.iter().zip(*b).map(|(x, y)| x * y).sum::<f64>() / block as f64;
                assert!(dot.abs() < 0.5, "blocks correlate: {dot}");
                // One block's stream shifted by a few draws would match another's.
                assert!(!a.windows(4).any(|w| b.windows(4).take(8).any(|v| v == w)));
            }
        }
    }

    /// Checks the analytic gradient of `objective` against finite differences of its value.
    fn check(cfg: ModelConfig, samples: usize, objective: Objective, what: &str) {
        let mut vae = model(cfg);
        let rows = 3;
        let d = vae.config.input_dim();
        let x = batch(rows, d);
        let labels = vec![2, 0, 1];
        let mut ws = vae.workspace(4, samples);
        ws.labels[..rows].copy_from_slice(&labels);
        vae.draw_eps(rows, &mut ws, &mut rand_pcg::Pcg64Mcg::seed_from_u64(9));
        let eps = ws.eps.clone();
        let st = vae.loss_and_grad(&x, rows, &objective, &mut ws);
        let grad = vae.params.grad.clone();
        let data = vae.params.data.clone();
        let value = |p: &[f64]| {
            let mut m = vae.clone();
            m.params.data.copy_from_slice(p);
            let mut ws = m.workspace(4, samples);
            ws.labels[..rows].copy_from_slice(&labels);
            ws.eps.copy_from_slice(&eps);
            let st = m.forward(&x, rows, &mut ws, Some(&objective));
            let zd = m.config.latent;
            let dip = objective.dip.map_or(0.0, |d| {
                rows as f64 * d.penalty(&ws.enc.output()[..rows * 2 * zd], rows, zd)
            });
            let tc = objective.tc.map_or(0.0, |tc| {
                tc.extra_loss(
                    &ws.enc.output()[..rows * 2 * zd],
                    &ws.z[..rows * samples * zd],
                    rows,
                    zd,
                    samples,
                )
            });
            dip + tc
                + match (objective.estimator, objective.capacity) {
                    (
                        Estimator::Iwae | Estimator::Miwae | Estimator::Ciwae | Estimator::Piwae,
                        _,
                    ) => st.iwae,
                    (Estimator::Elbo, Some((g, c))) => {
                        st.recon + g * (st.kl / rows as f64 - c).abs() * rows as f64
                    }
                    (Estimator::Elbo, None) => st.recon + objective.beta * st.kl,
                }
        };
        assert!(st.recon.is_finite());
        check_gradients(&data, &grad, value, what);
    }

    /// Two stacked latent layers: 2 dimensions, then 3 above them through a hidden layer of 4, tanh.
    fn two_layers() -> ModelConfig {
        ModelConfig {
            upper: vec![crate::model::config::UpperSpec {
                latent: 3,
                hidden: vec![4],
            }],
            ..config(vec![5], Activation::Tanh, Likelihood::Bernoulli)
        }
    }

    /// A model of two stacked latent layers (2 then 3 dimensions above the 4x6 images), conditional on a label
    /// in its first layer, and a three-layer one: the ELBO, a β-weighted and a capacity ELBO, and the IWAE
    /// bound, through every weight of every layer.
    #[test]
    fn stacked_latent_layers_gradients() {
        use crate::model::config::UpperSpec;
        let two = ModelConfig {
            classes: 3,
            ..two_layers()
        };
        check(two.clone(), 2, Objective::elbo(1.0), "two layers, ELBO");
        check(two.clone(), 2, Objective::elbo(0.4), "two layers, β-ELBO");
        let capacity = Objective {
            capacity: Some((3.0, 0.5)),
            ..Objective::elbo(1.0)
        };
        check(two.clone(), 1, capacity, "two layers, capacity");
        check(two, 3, Objective::iwae(), "two layers, IWAE");
        let three = ModelConfig {
            upper: vec![
                UpperSpec {
                    latent: 3,
                    hidden: vec![],
                },
                UpperSpec {
                    latent: 2,
                    hidden: vec![3, 2],
                },
            ],
            ..config(vec![5], Activation::Softplus, Likelihood::Bernoulli)
        };
        check(three.clone(), 2, Objective::elbo(1.0), "three layers, ELBO");
        check(three, 2, Objective::iwae(), "three layers, IWAE");
    }

    /// Flow posteriors on the small image model: planar and IAF, the ELBO (β and capacity too), IWAE and MIWAE,
    /// with N(0, I), a learned mixture prior and a VampPrior, conditional, through every weight including the flow's.
    #[test]
    fn flow_posterior_gradients() {
        use crate::model::flow::FlowSpec;
        let planar = ModelConfig {
            flow: Some(FlowSpec::Planar { layers: 2 }),
            classes: 3,
            ..config(vec![5], Activation::Tanh, Likelihood::Bernoulli)
        };
        check(planar.clone(), 2, Objective::elbo(1.0), "planar, ELBO");
        check(planar.clone(), 3, Objective::iwae(), "planar, IWAE");
        let capacity = Objective {
            capacity: Some((3.0, 0.5)),
            ..Objective::elbo(1.0)
        };
        check(planar.clone(), 1, capacity, "planar, capacity");
        let mog = ModelConfig {
            prior: PriorSpec::Mixture { components: 3 },
            ..planar
        };
        check(
            mog.clone(),
            2,
            Objective::elbo(0.6),
            "planar, mixture prior, β-ELBO",
        );
        let vamp = ModelConfig {
            prior: PriorSpec::Vamp { components: 2 },
            classes: 0,
            ..mog
        };
        check(
            vamp.clone(),
            2,
            Objective::elbo(1.0),
            "planar, VampPrior, ELBO",
        );
        check(vamp, 2, Objective::iwae(), "planar, VampPrior, IWAE");
        let iaf = ModelConfig {
            flow: Some(FlowSpec::Iaf {
                blocks: 2,
                hidden: 4,
            }),
            latent: 3,
            ..config(vec![5], Activation::Softplus, Likelihood::Bernoulli)
        };
        check(iaf.clone(), 2, Objective::elbo(1.0), "IAF, ELBO");
        check(iaf.clone(), 3, Objective::iwae(), "IAF, IWAE");
        let miwae = Objective {
            estimator: Estimator::Miwae,
            groups: 2,
            ..Objective::iwae()
        };
        check(iaf, 4, miwae, "IAF, MIWAE");
    }

    /// A flow model's log-weights are its ELBO's terms (the mean log-weight is −(recon + KL)), its flow moves the
    /// codes the decoder reads, and the posterior callers read is the flow's image of the base mean.
    #[test]
    fn flow_log_weights_are_the_elbo_terms() {
        use crate::model::flow::FlowSpec;
        for flow in [
            FlowSpec::Planar { layers: 3 },
            FlowSpec::Iaf {
                blocks: 2,
                hidden: 6,
            },
        ] {
            let cfg = ModelConfig {
                flow: Some(flow),
                latent: 3,
                ..config(vec![5], Activation::Tanh, Likelihood::Bernoulli)
            };
            let vae = model(cfg.clone());
            let plain = model(ModelConfig { flow: None, ..cfg });
            let (rows, s) = (3, 4);
            let x = batch(rows, vae.config.input_dim());
            let mut ws = vae.workspace(rows, s);
            vae.draw_eps(rows, &mut ws, &mut rand_pcg::Pcg64Mcg::seed_from_u64(2));
            let mut lw = vec![0.0; rows * s];
            vae.log_weights(&x, rows, &mut ws, &mut lw);
            let st = vae.loss(&x, rows, &mut ws);
            let mean = lw.iter().sum::<f64>() / s as f64;
            assert!((mean + st.recon + st.kl).abs() < 1e-9, "{mean} vs {st:?}");
            // The same encoder and decoder weights without the flow decode z_0 itself.
            let n = plain.params.len();
            let mut same = plain.clone();
            same.params.data.copy_from_slice(&vae.params.data[..n]);
            let mut wp = same.workspace(rows, s);
            wp.eps.copy_from_slice(&ws.eps);
            same.loss(&x, rows, &mut wp);
            let zd = 3;
            assert!(ws.z[..rows * s * zd] != wp.z[..rows * s * zd]);
            let fb = ws.flow.as_ref().unwrap();
            assert!(
                fb.logdet[..rows * s]
                    .iter()
                    .all(|v| v.is_finite() && *v != 0.0)
            );
            vae.encode(&x, rows, &mut ws);
            let head = ws.head()[..rows * 2 * zd].to_vec();
            let post = vae.posterior(rows, &mut ws).to_vec();
            for (p, h) in post.chunks_exact(2 * zd).zip(head.chunks_exact(2 * zd)) {
                assert_ne!(p[..zd], h[..zd], "{}: the flow maps the mean", flow.name());
                assert_eq!(p[zd..], h[zd..]);
            }
        }
    }

    /// A stacked model's log-weights are its ELBO's terms: the mean log-weight over the draws of an image is
    /// −(recon + KL) of that image, and the model's codes are its top layer's.
    #[test]
    fn stacked_log_weights_are_the_elbo_terms() {
        let vae = model(two_layers());
        assert_eq!((vae.latent(), vae.noise_dim(), vae.depth()), (3, 5, 2));
        let (rows, s) = (3, 4);
        let x = batch(rows, vae.config.input_dim());
        let mut ws = vae.workspace(rows, s);
        vae.draw_eps(rows, &mut ws, &mut rand_pcg::Pcg64Mcg::seed_from_u64(2));
        let mut lw = vec![0.0; rows * s];
        vae.log_weights(&x, rows, &mut ws, &mut lw);
        let st = vae.loss(&x, rows, &mut ws);
        let mean = lw.iter().sum::<f64>() / s as f64;
        assert!((mean + st.recon + st.kl).abs() < 1e-9, "{mean} vs {:?}", st);
        // Different draws above the first layer give different weights: the stack is sampled, not fixed.
        let mut other = ws.eps.clone();
        for row in other.chunks_exact_mut(5) {
            row[2..].iter_mut().for_each(|e| *e = -*e + 0.3);
        }
        ws.eps.copy_from_slice(&other);
        let mut lw2 = vec![0.0; rows * s];
        vae.log_weights(&x, rows, &mut ws, &mut lw2);
        assert!(lw.iter().zip(&lw2).all(|(a, b)| a != b));
    }

    /// A VampPrior of 3 pseudo-inputs: the ELBO (its KL by Monte Carlo) and the IWAE bound, through the encoder's
    /// two passes (data and pseudo-inputs) and into the pseudo-inputs themselves.
    #[test]
    fn vamp_prior_gradients() {
        let cfg = ModelConfig {
            prior: PriorSpec::Vamp { components: 3 },
            ..config(vec![5], Activation::Tanh, Likelihood::Bernoulli)
        };
        let vae = model(cfg.clone());
        let pseudo = vae.arch.vamp.unwrap().pseudo;
        assert!(
            vae.params.data[pseudo..pseudo + 3 * 24]
                .iter()
                .all(|&u| u > 0.0 && u < 1.0)
        );
        check(cfg.clone(), 2, Objective::elbo(0.8), "VampPrior, ELBO");
        check(cfg, 3, Objective::iwae(), "VampPrior, IWAE");
    }

    /// With one pseudo-input equal to an image, the VampPrior's density is that image's posterior q(z | x), exactly.
    #[test]
    fn a_vamp_prior_of_one_image_is_its_posterior() {
        let cfg = ModelConfig {
            prior: PriorSpec::Vamp { components: 1 },
            ..config(vec![5], Activation::Tanh, Likelihood::Bernoulli)
        };
        let mut vae = model(cfg);
        let d = vae.config.input_dim();
        let x = batch(1, d);
        let pseudo = vae.arch.vamp.unwrap().pseudo;
        vae.params.data[pseudo..pseudo + d].copy_from_slice(&x);
        let mut ws = vae.workspace(1, 1);
        vae.encode(&x, 1, &mut ws);
        let head = ws.head()[..4].to_vec();
        let mix = ws.vamp.as_ref().unwrap().mix.clone();
        for z in [[0.3, -1.2], [2.0, 0.1], [-0.7, 0.0]] {
            let p = vae.prior().log_density(&mix, &z);
            let q: f64 = (0..2)
                .map(|j| -0.5 * ((z[j] - head[j]).powi(2) * (-head[2 + j]).exp() + head[2 + j]))
                .sum();
            assert_eq!(p, q, "z = {z:?}");
        }
        // Samples of the prior are draws of that posterior: their mean and spread approach μ and σ.
        let codes = vae.draw_codes(20_000, &mut rand_pcg::Pcg64Mcg::seed_from_u64(4), 1.0);
        for j in 0..2 {
            let v: Vec<f64> = codes.iter().skip(j).step_by(2).copied().collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let sd = (v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
            assert!(
                (mean - head[j]).abs() < 0.03,
                "mean {mean} vs μ {}",
                head[j]
            );
            assert!(
                (sd / (0.5 * head[2 + j]).exp() - 1.0).abs() < 0.03,
                "sd {sd}"
            );
        }
    }

    /// Decoding a stacked model's code takes the means of the layers below the top (a draw at temperature 0 is
    /// the same); sampling draws them, so two draws below the same top code differ.
    #[test]
    fn descending_takes_the_means_or_draws_each_layer() {
        let vae = model(two_layers());
        let rows = 4;
        let codes: Vec<f64> = (0..rows * 3).map(|i| (i as f64 * 0.9).sin()).collect();
        let mut ws = vae.workspace(rows, 1);
        let mut z = |draw: Option<(f64, &mut dyn rand::Rng)>| {
            vae.descend(&codes, rows, &mut ws, draw);
            ws.z[..rows * 2].to_vec()
        };
        let means = z(None);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        assert_eq!(z(Some((0.0, &mut rng))), means);
        let (a, b) = (z(Some((1.0, &mut rng))), z(Some((1.0, &mut rng))));
        assert!(a != means && b != means && a != b);
    }

    /// MIWAE (M = 2 groups of K = 2) and CIWAE (β = 0.3, K = 3): their gradients, through every weight.
    #[test]
    fn miwae_and_ciwae_gradients() {
        let cfg = config(vec![5], Activation::Tanh, Likelihood::Bernoulli);
        let miwae = Objective {
            estimator: Estimator::Miwae,
            groups: 2,
            ..Objective::iwae()
        };
        let ciwae = Objective {
            estimator: Estimator::Ciwae,
            ciwae_beta: 0.3,
            ..Objective::iwae()
        };
        check(cfg.clone(), 4, miwae, "MIWAE");
        check(cfg, 3, ciwae, "CIWAE");
    }

    /// PIWAE's gradient is IWAE's (over all M·K draws) for the decoder and its learned scale, and MIWAE's (M
    /// groups of K) for the encoder and a flow, both checked against finite differences above; its reported bound is
    /// the IWAE bound. With a fixed and a learned scale, with and without a flow, conditional.
    #[test]
    fn piwae_trains_the_decoder_on_iwae_and_the_encoder_on_miwae() {
        use crate::model::flow::FlowSpec;
        let gaussian = Likelihood::Gaussian {
            sigma: 0.3,
            learn: SigmaMode::Pixel,
            mean: GaussianMean::Sigmoid,
        };
        for (cfg, what) in [
            (
                config(vec![5], Activation::Tanh, Likelihood::Bernoulli),
                "Bernoulli",
            ),
            (
                ModelConfig {
                    flow: Some(FlowSpec::Iaf {
                        blocks: 1,
                        hidden: 4,
                    }),
                    classes: 3,
                    ..config(vec![5], Activation::Tanh, gaussian)
                },
                "learned σ, IAF, conditional",
            ),
        ] {
            let (rows, m, k) = (3, 2, 3);
            let run = |objective: Objective| {
                let mut vae = model(cfg.clone());
                let x = batch(rows, vae.config.input_dim());
                let mut ws = vae.workspace(rows, m * k);
                ws.labels[..rows].copy_from_slice(&[2, 0, 1]);
                vae.draw_eps(rows, &mut ws, &mut rand_pcg::Pcg64Mcg::seed_from_u64(4));
                let st = vae.loss_and_grad(&x, rows, &objective, &mut ws);
                (vae.params.grad.clone(), st.iwae, vae.params.specs.clone())
            };
            let with = |estimator, groups| Objective {
                estimator,
                groups,
                ..Objective::iwae()
            };
            let (piwae, bound, specs) = run(with(Estimator::Piwae, m));
            let (iwae, iwae_bound, _) = run(with(Estimator::Iwae, 1));
            let (miwae, _, _) = run(with(Estimator::Miwae, m));
            assert_eq!(bound, iwae_bound, "{what}: PIWAE reports the IWAE bound");
            let mut seen = (0, 0);
            for spec in &specs {
                let generative = spec.name.starts_with("decoder");
                let want = if generative { &iwae } else { &miwae };
                let (a, b) = (&piwae[spec.range()], &want[spec.range()]);
                let off = a.iter().zip(b).fold(0f64, |acc, (x, y)| {
                    acc.max((x - y).abs() / (1e-9 + y.abs()))
                });
                assert!(off < 1e-9, "{what}: {} off by {off}", spec.name);
                let other = if generative { &miwae } else { &iwae };
                if a != &other[spec.range()] {
                    if generative { seen.0 += 1 } else { seen.1 += 1 }
                }
            }
            assert!(
                seen.0 > 0 && seen.1 > 0,
                "{what}: the two bounds' gradients differ"
            );
        }
    }

    /// MIWAE is the mean of its groups' IWAE bounds (one group: IWAE itself); CIWAE mixes the sampled ELBO and
    /// the IWAE bound of the same draws (β = 0: IWAE, β = 1: the mean log-weight).
    #[test]
    fn iwae_variants_reduce_to_their_parts() {
        let lw = [-3.0, -1.5, -2.2, -0.7, -4.1, -1.0];
        let iwae = |v: &[f64]| ops::log_sum_exp(v) - (v.len() as f64).ln();
        let with = |estimator, groups, ciwae_beta| {
            let o = Objective {
                estimator,
                groups,
                ciwae_beta,
                ..Objective::iwae()
            };
            let mut w = [0.0f64; 6];
            let bound = importance_weights(&lw, &o, &mut w);
            let total: f64 = w.iter().sum();
            assert!((total - 1.0).abs() < 1e-12, "coefficients sum to 1: {w:?}");
            bound
        };
        assert_eq!(with(Estimator::Iwae, 1, 0.0), iwae(&lw));
        assert_eq!(with(Estimator::Miwae, 1, 0.0), iwae(&lw));
        let three = (iwae(&lw[..2]) + iwae(&lw[2..4]) + iwae(&lw[4..])) / 3.0;
        assert!((with(Estimator::Miwae, 3, 0.0) - three).abs() < 1e-12);
        assert!((with(Estimator::Ciwae, 1, 0.0) - iwae(&lw)).abs() < 1e-12);
        let mean = lw.iter().sum::<f64>() / 6.0;
        assert!((with(Estimator::Ciwae, 1, 1.0) - mean).abs() < 1e-12);
        let mixed = 0.25 * mean + 0.75 * iwae(&lw);
        assert!((with(Estimator::Ciwae, 1, 0.25) - mixed).abs() < 1e-12);
    }

    /// A learned mixture prior: the Monte Carlo KL of the ELBO (with β) and the IWAE bound reach the encoder,
    /// the decoder and the prior's own means, log-variances and mixing logits.
    #[test]
    fn mixture_prior_gradients() {
        use crate::model::config::PriorSpec;
        let cfg = ModelConfig {
            prior: PriorSpec::Mixture { components: 3 },
            ..config(vec![5], Activation::Tanh, Likelihood::Bernoulli)
        };
        let vae = model(cfg.clone());
        let prior = vae.prior().weights();
        assert_eq!(prior.len(), 3 * 2 + 3 * 2 + 3);
        assert!(
            vae.params.data[prior].iter().any(|&v| v != 0.0),
            "means are drawn"
        );
        check(cfg.clone(), 2, Objective::elbo(0.6), "mixture prior, ELBO");
        check(cfg, 3, Objective::iwae(), "mixture prior, IWAE");
    }

    #[test]
    fn elbo_gradients_match_finite_differences() {
        let cases = [
            (vec![4, 3], Activation::Tanh, Likelihood::Bernoulli, 2, 0.5),
            (
                vec![5],
                Activation::Softplus,
                Likelihood::Gaussian {
                    sigma: 0.4,
                    learn: SigmaMode::Fixed,
                    mean: GaussianMean::Sigmoid,
                },
                1,
                1.0,
            ),
            (vec![], Activation::Relu, Likelihood::Bernoulli, 3, 2.0),
            (
                vec![4],
                Activation::Tanh,
                Likelihood::Logistic {
                    scale: 0.2,
                    learn: SigmaMode::Fixed,
                },
                2,
                1.0,
            ),
            (
                vec![3],
                Activation::Softplus,
                Likelihood::Logistic {
                    scale: 0.1,
                    learn: SigmaMode::Pixel,
                },
                1,
                1.0,
            ),
            (
                vec![4],
                Activation::LeakyRelu,
                Likelihood::Bernoulli,
                1,
                1.0,
            ),
        ];
        for (hidden, act, lik, samples, beta) in cases {
            let what = format!("elbo {hidden:?} {act:?} {lik:?}");
            check(
                config(hidden, act, lik),
                samples,
                Objective::elbo(beta),
                &what,
            );
        }
    }

    #[test]
    fn iwae_gradients_match_finite_differences() {
        check(
            config(vec![4], Activation::Tanh, Likelihood::Bernoulli),
            5,
            Objective::iwae(),
            "iwae bernoulli",
        );
        let lik = Likelihood::Gaussian {
            sigma: 0.5,
            learn: SigmaMode::Pixel,
            mean: GaussianMean::Sigmoid,
        };
        check(
            config(vec![3], Activation::Tanh, lik),
            3,
            Objective::iwae(),
            "iwae learned σ",
        );
        let lik = Likelihood::Logistic {
            scale: 0.3,
            learn: SigmaMode::Global,
        };
        check(
            config(vec![3], Activation::Tanh, lik),
            4,
            Objective::iwae(),
            "iwae logistic",
        );
    }

    #[test]
    fn conditional_and_learned_variance_gradients() {
        let mut cfg = config(vec![4], Activation::Tanh, Likelihood::Bernoulli);
        cfg.classes = 3;
        check(cfg.clone(), 2, Objective::elbo(1.0), "conditional");
        for learn in [SigmaMode::Global, SigmaMode::Pixel] {
            for mean in [GaussianMean::Sigmoid, GaussianMean::Identity] {
                cfg.likelihood = Likelihood::Gaussian {
                    sigma: 0.3,
                    learn,
                    mean,
                };
                check(
                    cfg.clone(),
                    1,
                    Objective::elbo(1.0),
                    &format!("learned σ {learn:?} {mean:?}"),
                );
            }
        }
    }

    #[test]
    fn conv_and_autoencoder_gradients() {
        let mut cfg = config(vec![3], Activation::Tanh, Likelihood::Bernoulli);
        cfg.conv = vec![ConvSpec::halving(2), ConvSpec::halving(3)];
        check(cfg.clone(), 2, Objective::elbo(1.0), "conv mirrored");
        // Three channels on a smaller image, so the loss (and the differences' rounding) stays as small as the
        // grey case's.
        let mut colour = cfg.clone();
        colour.channels = 3;
        (colour.rows, colour.cols) = (2, 4);
        check(
            colour.clone(),
            1,
            Objective::elbo(1.0),
            "colour conv mirrored",
        );
        colour.conv.clear();
        check(colour, 1, Objective::elbo(1.0), "colour mlp");
        cfg.decoder = keras_like_decoder(false);
        cfg.classes = 3;
        check(
            cfg.clone(),
            1,
            Objective::elbo(1.0),
            "keras-like conditional conv",
        );
        let mut ae = config(vec![4], Activation::Tanh, Likelihood::Bernoulli);
        ae.kind = ModelKind::Autoencoder;
        check(ae, 1, Objective::elbo(1.0), "autoencoder");
    }

    #[test]
    fn an_inference_copy_gives_the_same_log_weights_and_no_gradients() {
        let cfg = config(vec![9, 7], Activation::Relu, Likelihood::Bernoulli);
        cfg.validate().unwrap();
        let vae = Vae::<f32>::new(cfg, &mut rand_pcg::Pcg64Mcg::seed_from_u64(5));
        let frozen = vae.for_inference();
        assert_ne!(
            frozen.params.data, vae.params.data,
            "the decoder's weights are stored transposed"
        );
        let (rows, s) = (3, 13);
        let x: Vec<f32> = batch(rows, 24).iter().map(|&v| v as f32).collect();
        let mut ws = vae.workspace(rows, s);
        vae.draw_eps(rows, &mut ws, &mut rand_pcg::Pcg64Mcg::seed_from_u64(2));
        let mut frozen_ws = ws.clone();
        let (mut want, mut got) = (vec![0.0; rows * s], vec![0.0; rows * s]);
        vae.log_weights(&x, rows, &mut ws, &mut want);
        frozen.log_weights(&x, rows, &mut frozen_ws, &mut got);
        assert!(want.iter().all(|v| v.is_finite()));
        assert_eq!(
            want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let trained = std::panic::catch_unwind(move || {
            let mut frozen = frozen;
            frozen.loss_and_grad(&x, rows, &Objective::elbo(1.0), &mut frozen_ws)
        });
        assert!(trained.is_err(), "an inference copy must refuse gradients");
    }

    #[test]
    fn batch_norm_gradients_in_training_mode() {
        let mut cfg = config(vec![3], Activation::LeakyRelu, Likelihood::Bernoulli);
        cfg.batch_norm = true;
        check(cfg.clone(), 1, Objective::elbo(1.0), "batch-normed mlp");
        cfg.conv = vec![ConvSpec::halving(2), ConvSpec::halving(3)];
        cfg.hidden.clear();
        cfg.decoder = keras_like_decoder(true);
        check(cfg.clone(), 1, Objective::elbo(1.0), "batch-normed conv");
        cfg.classes = 3;
        check(
            cfg,
            3,
            Objective::iwae(),
            "batch-normed conditional conv iwae",
        );
    }

    #[test]
    fn dip_vae_gradients() {
        use crate::model::dip::{Dip, DipKind};
        let cfg = config(vec![5], Activation::Tanh, Likelihood::Bernoulli);
        for kind in [DipKind::I, DipKind::Ii] {
            let dip = Objective {
                dip: Some(Dip {
                    kind,
                    lambda_od: 3.0,
                    lambda_d: 5.0,
                }),
                ..Objective::elbo(2.0)
            };
            check(cfg.clone(), 1, dip, "DIP-VAE");
            check(cfg.clone(), 2, dip, "DIP-VAE, two samples");
        }
    }

    #[test]
    fn factor_vae_gradients() {
        // The VAE's weights get the gradient of recon + KL + γ·TC with the discriminator held fixed; the
        // discriminator's own gradient is checked in `factor.rs`.
        let mut cfg = config(vec![5], Activation::Tanh, Likelihood::Bernoulli);
        cfg.discriminator = vec![6, 4];
        let objective = Objective {
            factor_vae: Some(3.0),
            ..Objective::elbo(1.0)
        };
        for samples in [1, 2] {
            let mut vae = model(cfg.clone());
            let (rows, zd) = (3, vae.config.latent);
            let x = batch(rows, vae.config.input_dim());
            let mut ws = vae.workspace(4, samples);
            vae.draw_eps(rows, &mut ws, &mut rand_pcg::Pcg64Mcg::seed_from_u64(9));
            let eps = ws.eps.clone();
            vae.loss_and_grad(&x, rows, &objective, &mut ws);
            let start = vae.discriminator_start().unwrap();
            assert!(start < vae.params.len());
            let grad = vae.params.grad[..start].to_vec();
            let data = vae.params.data.clone();
            let value = |p: &[f64]| {
                let mut m = vae.clone();
                m.params.data[..start].copy_from_slice(p);
                let mut ws = m.workspace(4, samples);
                ws.eps.copy_from_slice(&eps);
                let st = m.forward(&x, rows, &mut ws, Some(&objective));
                let disc = m.arch.discriminator.as_ref().unwrap();
                let n = rows * samples;
                let mut b = disc.net.buffers(n);
                disc.net
                    .forward(&m.params.data, &ws.z[..n * zd], &[], n, &mut b, true);
                let o = b.output();
                let tc: f64 = (0..n)
                    .map(|r| (o[2 * r] - o[2 * r + 1]) / samples as f64)
                    .sum();
                st.recon + st.kl + 3.0 * tc
            };
            check_gradients(&data[..start], &grad, value, "FactorVAE");
        }
    }

    #[test]
    fn beta_tc_vae_gradients() {
        use crate::model::tc::{Tc, TcSampling};
        let cfg = config(vec![5], Activation::Tanh, Likelihood::Bernoulli);
        for sampling in [TcSampling::Mws, TcSampling::Mss] {
            let tc = Objective {
                tc: Some(Tc {
                    alpha: 0.5,
                    beta: 6.0,
                    gamma: 2.0,
                    sampling,
                    dataset_size: 40,
                }),
                ..Objective::elbo(1.0)
            };
            check(cfg.clone(), 1, tc, "beta-TC-VAE");
            check(cfg.clone(), 2, tc, "beta-TC-VAE, two samples");
        }
    }

    #[test]
    fn beta_capacity_and_free_bits_gradients() {
        let cfg = config(vec![4], Activation::Tanh, Likelihood::Bernoulli);
        let mut cap = Objective::elbo(1.0);
        cap.capacity = Some((3.0, 0.2));
        check(cfg.clone(), 1, cap, "capacity below C");
        cap.capacity = Some((3.0, 50.0));
        check(cfg.clone(), 1, cap, "capacity above C");
        // Free bits: with a floor above every dimension's KL, the KL gradient vanishes entirely.
        let mut vae = model(cfg);
        let x = batch(3, 24);
        let mut ws = vae.workspace(3, 1);
        vae.draw_eps(3, &mut ws, &mut rand_pcg::Pcg64Mcg::seed_from_u64(1));
        let eps = ws.eps.clone();
        let mut fb = Objective::elbo(1.0);
        fb.free_bits = 1e6;
        vae.loss_and_grad(&x, 3, &fb, &mut ws);
        let with_floor = vae.params.grad.clone();
        ws.eps.copy_from_slice(&eps);
        vae.loss_and_grad(&x, 3, &Objective::elbo(0.0), &mut ws);
        assert_eq!(with_floor, vae.params.grad);
    }

    #[test]
    fn iwae_with_one_sample_is_the_single_sample_elbo() {
        let vae = model(config(vec![4], Activation::Tanh, Likelihood::Bernoulli));
        let x = batch(3, 24);
        let mut ws = vae.workspace(3, 1);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let (mut iwae, mut elbo) = (0.0, 0.0);
        let reps = 4000;
        for _ in 0..reps {
            vae.draw_eps(3, &mut ws, &mut rng);
            let st = vae.forward(&x, 3, &mut ws, Some(&Objective::iwae()));
            // With K = 1 the bound is ln p(x, z) − ln q(z|x) at the one draw: recon plus the sampled KL.
            let mut lw = [0.0];
            let mut single = 0.0;
            for b in 0..3 {
                vae.log_weights_from_state(&ws, b, &mut lw);
                single -= lw[0];
            }
            assert!((st.iwae - single).abs() < 1e-9 * single.abs().max(1.0));
            iwae += st.iwae;
            elbo += st.recon + st.kl;
        }
        // Its expectation is the ELBO with the analytic KL.
        let (iwae, elbo) = (iwae / reps as f64, elbo / reps as f64);
        assert!(
            (iwae - elbo).abs() < 0.05 * 3.0,
            "E[IWAE_1] {iwae} vs ELBO {elbo}"
        );
    }

    #[test]
    fn iwae_bound_tightens_with_k_on_average() {
        let vae = model(config(vec![4], Activation::Tanh, Likelihood::Bernoulli));
        let x = batch(1, 24);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(4);
        // The mean bound over `reps` draws and its standard error.
        let mut bound = |k: usize| {
            let reps = 2000;
            let mut ws = vae.workspace(1, k);
            let v: Vec<f64> = (0..reps)
                .map(|_| {
                    vae.draw_eps(1, &mut ws, &mut rng);
                    -vae.forward(&x, 1, &mut ws, Some(&Objective::iwae())).iwae
                })
                .collect();
            let mean = v.iter().sum::<f64>() / reps as f64;
            let var = v.iter().map(|b| (b - mean).powi(2)).sum::<f64>() / (reps - 1) as f64;
            (mean, (var / reps as f64).sqrt())
        };
        let bounds: Vec<(f64, f64)> = [1, 2, 5, 20, 100].iter().map(|&k| bound(k)).collect();
        // K = 1 to 2 tightens the bound by more than three times the noise of the two means; later steps gain
        // less (5 to 20 to 100: a few hundredths of a nat), so there the bound need only not fall by more than that.
        for (i, w) in bounds.windows(2).enumerate() {
            let noise = 3.0 * (w[0].1.powi(2) + w[1].1.powi(2)).sqrt();
            let floor = if i == 0 {
                w[0].0 + noise
            } else {
                w[0].0 - noise
            };
            assert!(w[1].0 > floor, "bounds must not decrease in K: {bounds:?}");
        }
        let (first, last) = (bounds[0], bounds[4]);
        assert!(last.0 - first.0 > 10.0 * (first.1 + last.1), "{bounds:?}");
    }

    #[test]
    fn analytic_kl_matches_monte_carlo() {
        let vae = model(config(vec![4], Activation::Tanh, Likelihood::Bernoulli));
        let x = batch(1, 24);
        let samples = 200_000;
        let mut ws = vae.workspace(1, samples);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(2);
        vae.draw_eps(1, &mut ws, &mut rng);
        vae.encode(&x, 1, &mut ws);
        let head = ws.head()[..4].to_vec();
        let lv = &head[2..];
        let mut z = vec![0.0; samples * 2];
        ops::reparameterize(&head, &ws.eps, &mut z, 2, samples);
        let kl = [vae.prior().closed_form_kl().unwrap().kl(&head[..2], lv)];
        let mut mc = 0.0;
        for s in 0..samples {
            for j in 0..2 {
                let (e, zz) = (ws.eps[s * 2 + j], z[s * 2 + j]);
                mc += -0.5 * (e * e + lv[j]) + 0.5 * zz * zz;
            }
        }
        mc /= samples as f64;
        assert!(
            (mc - kl[0]).abs() < 0.01 + 0.01 * kl[0],
            "analytic {} vs MC {mc}",
            kl[0]
        );
    }
}
