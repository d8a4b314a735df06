//! What a run is: the model plus how it is trained, saved as `config.json` in the run directory.

use crate::data::{Binarize, DataSpec, DatasetName, Kind, Standardizer};
use crate::error::{Error, Result};
use crate::model::vamp::PseudoInit;
use crate::model::{Estimator, ModelConfig};

/// How the learning rate changes over epochs.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LrSchedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// The IWAE paper's: stage i = 0..stages runs round(growth^i) epochs at lr·10^(−i/7) (8 stages of growth 3:
    /// 3280 epochs). Epochs past the last stage keep its rate.
    Staged {
        /// Number of stages.
        stages: usize,
        /// Growth of the stage lengths.
        growth: f64,
    },
    /// Cosine decay from lr to `min_lr` over the run's epochs.
    Cosine {
        /// Final learning rate.
        min_lr: f64,
    },
    /// Multiply by `gamma` after every epoch (PyTorch's `ExponentialLR`).
    Exponential {
        /// Decay factor per epoch.
        gamma: f64,
    },
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Decay factor.
        gamma: f64,
    },
}

impl LrSchedule {
    /// The IWAE paper's staged schedule: 8 stages, 3^i epochs each.
    pub const IWAE_PAPER: LrSchedule = LrSchedule::Staged {
        stages: 8,
        growth: 3.0,
    };

    /// Epochs in stage `i` of a staged schedule.
    fn stage_len(growth: f64, i: usize) -> usize {
        (growth.powi(i as i32).round() as usize).max(1)
    }

    /// Epochs the schedule defines, when it has a natural length (the staged one).
    pub fn natural_epochs(&self) -> Option<usize> {
        match *self {
            LrSchedule::Staged { stages, growth } => {
                Some((0..stages).map(|i| Self::stage_len(growth, i)).sum())
            }
            _ => None,
        }
    }

    /// The learning rate of epoch `epoch` (from 1) out of `epochs`, for base rate `lr`.
    pub fn lr(&self, lr: f64, epoch: usize, epochs: usize) -> f64 {
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Staged { stages, growth } => {
                let mut end = 0;
                for i in 0..stages {
                    end += Self::stage_len(growth, i);
                    if epoch <= end {
                        return lr * 10f64.powf(-(i as f64) / 7.0);
                    }
                }
                lr * 10f64.powf(-((stages.max(1) - 1) as f64) / 7.0)
            }
            LrSchedule::Cosine { min_lr } => {
                let t = (epoch.saturating_sub(1)) as f64 / (epochs.max(2) - 1) as f64;
                min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos())
            }
            LrSchedule::Exponential { gamma } => lr * gamma.powi(epoch.saturating_sub(1) as i32),
            LrSchedule::Step { every, gamma } => {
                lr * gamma.powi((epoch.saturating_sub(1) / every.max(1)) as i32)
            }
        }
    }
}

/// Capacity annealing (Burgess et al. 2018): minimise recon + γ·|KL − C| with C rising linearly from 0 to
/// `max` nats over `steps` steps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Final capacity C_max in nats.
    pub max: f64,
    /// Steps over which C grows.
    pub steps: u64,
    /// Weight γ of |KL − C|.
    pub gamma: f64,
}

fn default_beta1() -> f64 {
    0.9
}

fn default_beta2() -> f64 {
    0.999
}

crate::choice! {
    /// How a step's loss is reduced over the batch. With Adam the two differ only in ε's weight: a per-image mean
    /// divides the gradient by the batch size, which weighs ε that many times more.
    #[derive(Default)]
    pub enum Reduction {
        /// The sum over the batch's images, as the IWAE paper's code and Kingma & Welling's did.
        #[default]
        Sum = "sum",
        /// The mean over the batch's images, as PyTorch's and Keras's losses default to.
        Mean = "mean",
    }
}

/// How a model is trained.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Dataset name.
    pub dataset: DatasetName,
    /// Total epochs.
    pub epochs: usize,
    /// Images per minibatch.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Adam's ε.
    pub adam_eps: f64,
    /// Adam's β₁ (PyTorch's 0.9; the IWAE paper's code used 0.99).
    #[serde(default = "default_beta1")]
    pub adam_beta1: f64,
    /// Adam's β₂.
    #[serde(default = "default_beta2")]
    pub adam_beta2: f64,
    /// Decoupled weight decay λ (AdamW): every step shrinks each weight by lr·λ; 0 is plain Adam.
    #[serde(default)]
    pub weight_decay: f64,
    /// Whether a step's gradient is of the loss summed over the batch or of its per-image mean.
    #[serde(default)]
    pub loss_reduction: Reduction,
    /// Flip each training image left to right with probability ½ every time it is drawn (torchvision's
    /// RandomHorizontalFlip, PyTorch-VAE's CelebA augmentation).
    #[serde(default)]
    pub random_flip: bool,
    /// Parts each batch's gradient is computed in and summed in order. Ranks of a data-parallel run share them,
    /// so the same number gives the same weights on any number of ranks that divides it.
    #[serde(default = "one")]
    pub shards: usize,
    /// Seed of every random draw in the run.
    pub seed: u64,
    /// Latent draws per image in each step: L of the Monte-Carlo ELBO, K of the IWAE and CIWAE bounds, and M·K
    /// of MIWAE's and PIWAE's M groups of K (`groups` holds M), so `config.json`'s 6 with 2 groups is K = 3.
    pub samples: usize,
    /// Weight of the KL term.
    pub beta: f64,
    /// Pixel binarisation.
    pub binarize: Binarize,
    /// Where a VampPrior's pseudo-inputs start.
    #[serde(default)]
    pub pseudo_init: PseudoInit,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    /// Hold out the last N training images for validation.
    pub validation: usize,
    /// Scale gradients down to this global L2 norm when they exceed it.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// The bound trained: the ELBO, or an importance-weighted one with `samples` draws per image.
    #[serde(default)]
    pub objective: Estimator,
    /// MIWAE's M: the `samples` draws of an image form this many groups of K (absent, 1, otherwise).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub groups: usize,
    /// CIWAE's β, the ELBO's share of the bound (absent for other objectives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciwae_beta: Option<f64>,
    /// KL warm-up: β rises linearly from 0 over this many epochs.
    #[serde(default)]
    pub warmup_epochs: usize,
    /// Capacity annealing instead of a fixed β.
    #[serde(default)]
    pub capacity: Option<Capacity>,
    /// Free bits λ per latent dimension (nats); 0 disables.
    #[serde(default)]
    pub free_bits: f64,
    /// A DIP-VAE penalty on the batch's codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dip: Option<crate::model::dip::Dip>,
    /// β-TC-VAE's weights of the KL's three parts (its `dataset_size` is the training split's, set at each step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tc: Option<crate::model::tc::Tc>,
    /// FactorVAE's γ and the discriminator's learning rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor_vae: Option<crate::model::factor::FactorVae>,
    /// Learning-rate schedule.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Where the data was read from at training time (a hint for later commands).
    #[serde(default)]
    pub data_dir: Option<std::path::PathBuf>,
    /// The user's own data (instead of the named `dataset`), and how it is read.
    #[serde(default)]
    pub data: Option<DataSpec>,
}

impl TrainConfig {
    /// The Adam optimiser these settings describe, for `len` parameters.
    pub fn adam(&self, len: usize) -> crate::core::Adam<f32> {
        let mut adam = crate::core::Adam::new(len, self.adam_eps);
        adam.beta1 = self.adam_beta1;
        adam.beta2 = self.adam_beta2;
        adam.weight_decay = self.weight_decay;
        adam
    }

    /// [`TrainConfig::adam`] for `vae`'s parameters, FactorVAE's discriminator stepped as its own optimiser.
    pub fn adam_for(&self, vae: &crate::model::Vae<f32>) -> crate::core::Adam<f32> {
        let mut adam = self.adam(vae.params.len());
        if let (Some(start), Some(f)) = (vae.discriminator_start(), self.factor_vae) {
            let (beta1, beta2) = crate::model::factor::ADAM_BETAS;
            adam.tail = Some(crate::core::optim::AdamGroup {
                start,
                lr: f.lr,
                beta1,
                beta2,
            });
        }
        adam
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            dataset: DatasetName::Mnist,
            epochs: 10,
            batch_size: 128,
            lr: 1e-3,
            adam_eps: 1e-8,
            adam_beta1: default_beta1(),
            adam_beta2: default_beta2(),
            loss_reduction: Reduction::Sum,
            random_flip: false,
            shards: 1,
            weight_decay: 0.0,
            seed: 1,
            samples: 1,
            beta: 1.0,
            binarize: Binarize::None,
            pseudo_init: PseudoInit::Random,
            limit: None,
            validation: 0,
            clip_grad_norm: None,
            objective: Estimator::Elbo,
            groups: 1,
            ciwae_beta: None,
            warmup_epochs: 0,
            capacity: None,
            free_bits: 0.0,
            dip: None,
            tc: None,
            factor_vae: None,
            lr_schedule: LrSchedule::Constant,
            data_dir: None,
            data: None,
        }
    }
}

/// What a run learned about its data at training time, kept so every later command reads, shows and inverts
/// it the same way without the training data at hand.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataInfo {
    /// Images, vectors in [0, 1], or standardised table features.
    #[serde(default)]
    pub kind: Kind,
    /// Class names by label (empty: unlabelled, or a run from before names were kept).
    #[serde(default)]
    pub classes: Vec<String>,
    /// A table's feature columns.
    #[serde(default)]
    pub columns: Vec<String>,
    /// The training split's per-feature mean and standard deviation, for standardised features.
    #[serde(default)]
    pub standardizer: Option<Standardizer>,
    /// md5 of the data as loaded (values, labels, classes of both splits), so a later command notices data that
    /// changed under the run.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// md5 of the data's factors (dSprites' latents), so a later command notices factors that changed under the
    /// run while the images stayed (none: data without factors, or a run saved before they were fingerprinted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factors: Option<String>,
}

/// A run's full description.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The architecture.
    pub model: ModelConfig,
    /// The training procedure.
    pub train: TrainConfig,
    /// What the data is.
    #[serde(default)]
    pub data: DataInfo,
}

/// Largest batch or sample count accepted: beyond this the buffers would not fit a normal machine.
pub const MAX_ROWS: usize = 1 << 20;

impl RunConfig {
    /// Parses and validates a run config saved as JSON (`config.json`, checkpoint metadata).
    pub fn from_json(text: &str) -> Result<RunConfig> {
        let cfg: RunConfig = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("bad run config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// A short name of the data: the named dataset, or the file or folder's name.
    pub fn data_name(&self) -> String {
        match &self.train.data {
            Some(spec) => spec
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| spec.path.display().to_string()),
            None => self.train.dataset.to_string(),
        }
    }

    /// Refuses impossible settings before anything is allocated.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        if let Some(s) = &self.data.standardizer
            && (s.mean.len() != self.model.input_dim() || s.std.len() != self.model.input_dim())
        {
            return Err(Error::Config(format!(
                "the saved standardisation has {} features, the model {}",
                s.mean.len(),
                self.model.input_dim()
            )));
        }
        self.check_batches()?;
        self.check_disentangling()?;
        self.check_kl_terms()?;
        self.check_objective()?;
        self.check_optimizer()?;
        let t = &self.train;
        if t.epochs == 0 || t.epochs > 1_000_000 {
            return Err(Error::Config(format!(
                "--epochs {} must be between 1 and 1000000",
                t.epochs
            )));
        }
        if t.limit == Some(0) {
            return Err(Error::Config("--limit 0 leaves nothing to train on".into()));
        }
        Ok(())
    }

    /// Batch size, shards and what needs a whole batch (or a VampPrior) to work.
    fn check_batches(&self) -> Result<()> {
        let t = &self.train;
        if t.batch_size == 0 || t.batch_size > 65536 {
            return Err(Error::Config(format!(
                "--batch-size {} must be between 1 and 65536",
                t.batch_size
            )));
        }
        if t.shards == 0 || t.shards > 256 || t.shards > t.batch_size {
            return Err(Error::Config(format!(
                "--shards {} must be between 1 and 256, and at most --batch-size {} (over MPI it defaults to the number of ranks, each of which needs rows of every batch)",
                t.shards, t.batch_size
            )));
        }
        if t.pseudo_init == PseudoInit::Data
            && !matches!(
                self.model.prior,
                crate::model::config::PriorSpec::Vamp { .. }
            )
        {
            return Err(Error::Config(
                "--pseudo-init data starts a VampPrior's pseudo-inputs on training items: it goes with --prior vamp"
                    .into(),
            ));
        }
        if t.shards > 1 && self.model.batch_norm {
            return Err(Error::Config(
                "--batch-norm normalises over the whole batch, which --shards (and training over MPI) splits: use one of them"
                    .into(),
            ));
        }
        if t.shards > 1 && t.free_bits > 0.0 {
            return Err(Error::Config(
                "--free-bits measures each dimension's KL over the whole batch, which --shards (and training over MPI) splits: use one of them"
                    .into(),
            ));
        }
        if t.shards > 1 && t.dip.is_some() {
            return Err(Error::Config(
                "--dip penalises the covariance of the whole batch's codes, a batch which --shards (and training over MPI) splits: use one of them"
                    .into(),
            ));
        }
        if self.model.batch_norm && t.batch_size == 1 {
            return Err(Error::Config(
                "--batch-norm normalises over the batch, which needs at least 2 items: use --batch-size 2 or more"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The total-correlation penalties (`--tc`, `--factor-vae`, `--dip`): their weights and the models they apply to.
    fn check_disentangling(&self) -> Result<()> {
        let t = &self.train;
        if t.dip.is_some()
            && (t.objective != Estimator::Elbo
                || !self.model.upper.is_empty()
                || self.model.flow.is_some()
                || !self.model.is_variational())
        {
            return Err(Error::Config(
                "--dip penalises the Gaussian posterior's means and variances: it needs a VAE of one latent layer without a flow, trained on the ELBO (--objective elbo)"
                    .into(),
            ));
        }
        if t.shards > 1 && t.tc.is_some() {
            return Err(Error::Config(
                "--tc estimates the codes' aggregate density from the whole batch, which --shards (and training over MPI) splits: use one of them"
                    .into(),
            ));
        }
        if t.tc.is_some()
            && (t.objective != Estimator::Elbo
                || !self.model.upper.is_empty()
                || self.model.flow.is_some()
                || !self.model.is_variational()
                || self.model.prior != crate::model::config::PriorSpec::Normal)
        {
            return Err(Error::Config(
                "--tc splits the KL of a Gaussian posterior from N(0, I): it needs a VAE of one latent layer without a flow, with --prior normal, trained on the ELBO (--objective elbo)"
                    .into(),
            ));
        }
        if t.factor_vae.is_some() == self.model.discriminator.is_empty() {
            return Err(Error::Config(
                "a FactorVAE run needs both its γ and its discriminator: --factor-vae gives both"
                    .into(),
            ));
        }
        if let Some(f) = t.factor_vae {
            if t.shards > 1 {
                return Err(Error::Config(
                    "--factor-vae permutes codes across the whole batch, which --shards (and training over MPI) splits: use one of them"
                        .into(),
                ));
            }
            if t.objective != Estimator::Elbo
                || !self.model.upper.is_empty()
                || self.model.flow.is_some()
                || !self.model.is_variational()
            {
                return Err(Error::Config(
                    "--factor-vae adds a discriminator's total correlation to the ELBO of one Gaussian latent layer: it needs a VAE without a flow or stacked layers, trained on the ELBO (--objective elbo)"
                        .into(),
                ));
            }
            if !(f.gamma.is_finite() && f.gamma >= 0.0) {
                return Err(Error::Config(format!(
                    "--factor-vae {} must be finite and at least 0",
                    f.gamma
                )));
            }
            check_lr("--discriminator-lr", f.lr)?;
            if t.tc.is_some() || t.dip.is_some() {
                return Err(Error::Config(
                    "--factor-vae, --tc and --dip (given as flags or by the --config file) are three ways to disentangle: give one (to change a preset's method, copy the file and edit it)".into(),
                ));
            }
        }
        if t.factor_vae.is_some() || t.tc.is_some() {
            let flag = if t.tc.is_some() {
                "--tc"
            } else {
                "--factor-vae"
            };
            if t.batch_size < 2 {
                return Err(Error::Config(format!(
                    "{flag} compares each code with the other codes of its batch: --batch-size needs at least 2 items, not {}",
                    t.batch_size
                )));
            }
            if self.model.latent < 2 {
                return Err(Error::Config(format!(
                    "{flag} measures how the code's dimensions depend on each other: --latent needs at least 2, not {}",
                    self.model.latent
                )));
            }
        }
        if t.tc.is_some() && t.warmup_epochs > 0 {
            return Err(Error::Config(
                "--warmup-epochs scales the KL, which --tc splits into parts of their own weights: drop --warmup-epochs (or set --tc-alpha and --tc-gamma)".into(),
            ));
        }
        if let Some(tc) = t.tc {
            if ![tc.alpha, tc.beta, tc.gamma]
                .iter()
                .all(|w| w.is_finite() && *w >= 0.0)
            {
                return Err(Error::Config(format!(
                    "--tc {}, --tc-alpha {} and --tc-gamma {} must be finite and at least 0",
                    tc.beta, tc.alpha, tc.gamma
                )));
            }
            if t.dip.is_some() || t.capacity.is_some() || t.free_bits > 0.0 {
                return Err(Error::Config(
                    "--tc reweighs the KL's parts itself: drop --dip, --capacity and --free-bits"
                        .into(),
                ));
            }
        }
        // One setting at a time: λ_d's default follows λ_od, so a bad λ_od is named alone, never with a λ_d the
        // user did not give.
        if let Some(d) = t.dip {
            for (flag, v) in [
                ("--dip-lambda-od", d.lambda_od),
                ("--dip-lambda-d", d.lambda_d),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(Error::Config(format!(
                        "{flag} {v} must be finite and at least 0"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The ELBO's KL term: β, capacity and free bits, and where each cannot apply.
    fn check_kl_terms(&self) -> Result<()> {
        let t = &self.train;
        if t.shards > 1 && t.capacity.is_some() {
            return Err(Error::Config(
                "--capacity compares the batch's mean KL with C, a batch which --shards (and training over MPI) splits: use one of them"
                    .into(),
            ));
        }
        if t.free_bits > 0.0 && !self.model.prior.is_standard_normal() {
            return Err(Error::Config(
                "--free-bits holds each dimension's KL at a floor, which needs the KL dimension by dimension in closed form: only --prior=normal has it"
                    .into(),
            ));
        }
        if t.free_bits > 0.0 && !self.model.upper.is_empty() {
            return Err(Error::Config(
                "--free-bits holds each dimension's KL at a floor, which needs the KL dimension by dimension in closed form: a model with more than one latent layer has it by Monte Carlo only"
                    .into(),
            ));
        }
        if let (true, Some(flow)) = (t.free_bits > 0.0, self.model.flow) {
            return Err(Error::Config(format!(
                "--free-bits holds each dimension's KL at a floor, which needs the KL dimension by dimension in closed form: a posterior with --flow={} has it by Monte Carlo only",
                flow.name()
            )));
        }
        if !(t.beta.is_finite() && t.beta >= 0.0) {
            return Err(Error::Config(format!(
                "--beta {} must be a non-negative number",
                t.beta
            )));
        }
        if let Some(c) = t.capacity
            && !(c.max.is_finite()
                && c.max >= 0.0
                && c.gamma.is_finite()
                && c.gamma > 0.0
                && c.steps > 0)
        {
            return Err(Error::Config(format!(
                "--capacity {} needs a non-negative C_max, --gamma > 0 (got {}) and --capacity-steps > 0 (got {})",
                c.max, c.gamma, c.steps
            )));
        }
        if !(t.free_bits.is_finite() && t.free_bits >= 0.0) {
            return Err(Error::Config(format!(
                "--free-bits {} must be a non-negative number",
                t.free_bits
            )));
        }
        Ok(())
    }

    /// The bound trained on and its draws: PIWAE's limits, samples, groups, CIWAE's β, autoencoders.
    fn check_objective(&self) -> Result<()> {
        let t = &self.train;
        if t.objective == Estimator::Piwae {
            // The generative side's gradient is the IWAE bound's and the inference side's MIWAE's; a learned prior's
            // pseudo-inputs and a stack's networks would need splitting too.
            let refuse = |what: String| {
                Err(Error::Config(format!(
                    "--objective=piwae splits the decoder's gradient from the encoder's, which elbo does not do for {what}: use --objective=miwae or iwae, or drop it"
                )))
            };
            if !self.model.prior.is_standard_normal() {
                return refuse(format!(
                    "a learned prior (--prior={})",
                    self.model.prior.name()
                ));
            }
            if !self.model.upper.is_empty() {
                return refuse("more than one latent layer (--latent)".into());
            }
        }
        if t.samples == 0 || t.samples * t.batch_size > MAX_ROWS {
            return Err(Error::Config(format!(
                "--samples {} must be at least 1, and samples x batch size at most {MAX_ROWS}",
                t.samples
            )));
        }
        let m = &self.model;
        if !m.is_variational() {
            if t.samples != 1 || t.objective != Estimator::Elbo {
                return Err(Error::Config(
                    "an autoencoder is deterministic: --samples, --k-train and the importance-weighted objectives (--objective iwae, miwae, ciwae, piwae) need --model vae".into(),
                ));
            }
            if t.capacity.is_some() || t.free_bits != 0.0 || t.warmup_epochs != 0 || t.beta != 1.0 {
                return Err(Error::Config(
                    "an autoencoder has no KL term: --beta, --capacity, --free-bits and --warmup-epochs need --model vae".into(),
                ));
            }
        }
        if t.objective.is_importance_weighted()
            && (t.capacity.is_some() || t.free_bits != 0.0 || t.beta != 1.0 || t.warmup_epochs != 0)
        {
            return Err(Error::Config(
                "--beta, --warmup-epochs, --capacity and --free-bits shape the ELBO's KL term; the IWAE bound has none, nor have MIWAE, PIWAE and CIWAE (whose ELBO share is --ciwae-beta)"
                    .into(),
            ));
        }
        if t.groups == 0
            || !t.samples.is_multiple_of(t.groups)
            || (t.groups > 1 && !matches!(t.objective, Estimator::Miwae | Estimator::Piwae))
        {
            return Err(Error::Config(format!(
                "--groups {} splits each image's {} samples into MIWAE's groups: it needs --objective=miwae or piwae and must divide them",
                t.groups, t.samples
            )));
        }
        match (t.objective, t.ciwae_beta) {
            (Estimator::Ciwae, Some(b)) if (0.0..=1.0).contains(&b) => {}
            (Estimator::Ciwae, b) => {
                return Err(Error::Config(format!(
                    "--ciwae-beta {} must be between 0 and 1",
                    b.map_or("(none)".into(), |b| b.to_string())
                )));
            }
            (_, Some(_)) => {
                return Err(Error::Config(
                    "--ciwae-beta goes with --objective=ciwae".into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Adam and the learning rate: its size, schedule, clipping and weight decay.
    fn check_optimizer(&self) -> Result<()> {
        let t = &self.train;
        check_lr("--lr", t.lr)?;
        if let Some(c) = t.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::Config(format!(
                "--clip-grad-norm {c} must be a positive number"
            )));
        }
        if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0 && t.weight_decay * t.lr < 1.0) {
            return Err(Error::Config(format!(
                "--weight-decay {} must be at least 0 and below 1/--lr",
                t.weight_decay
            )));
        }
        for (flag, b) in [
            ("--adam-beta1", t.adam_beta1),
            ("--adam-beta2", t.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::Config(format!(
                    "{flag} {b} must be at least 0 and below 1"
                )));
            }
        }
        if !(t.adam_eps.is_finite() && t.adam_eps > 0.0) {
            return Err(Error::Config(format!(
                "--adam-eps {} must be a positive number",
                t.adam_eps
            )));
        }
        match t.lr_schedule {
            LrSchedule::Staged { stages, .. } if stages == 0 || stages > 64 => {
                return Err(Error::Config(format!(
                    "--stages {stages} must be between 1 and 64"
                )));
            }
            LrSchedule::Staged { growth, .. } if !(1.0..=10.0).contains(&growth) => {
                return Err(Error::Config(format!(
                    "--stage-growth {growth} must be between 1 and 10"
                )));
            }
            LrSchedule::Cosine { min_lr }
                if !(min_lr.is_finite() && min_lr >= 0.0 && min_lr <= t.lr) =>
            {
                return Err(Error::Config(format!(
                    "--lr-min {min_lr} must be between 0 and --lr {}",
                    t.lr
                )));
            }
            LrSchedule::Exponential { gamma }
                if !(gamma.is_finite() && gamma > 0.0 && gamma <= 1.0) =>
            {
                return Err(Error::Config(format!(
                    "exponential schedule: --lr-gamma {gamma} must be in (0, 1]"
                )));
            }
            LrSchedule::Step { every: 0, .. } => {
                return Err(Error::Config("--lr-step-every 0 must be at least 1".into()));
            }
            LrSchedule::Step { gamma, .. }
                if !(gamma.is_finite() && gamma > 0.0 && gamma <= 1.0) =>
            {
                return Err(Error::Config(format!(
                    "--lr-step-gamma {gamma} must be in (0, 1]"
                )));
            }
            _ => {}
        }
        Ok(())
    }
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn one() -> usize {
    1
}

/// A learning rate must be positive and a normal f32, as the update uses it: a larger one becomes infinity and the
/// run would stop as "diverged", a subnormal one is flushed to zero and the weights would never move.
fn check_lr(flag: &str, lr: f64) -> Result<()> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(Error::Config(format!(
            "{flag} {lr} must be a positive number"
        )));
    }
    // Rounded to the f32 the update uses: f32::MAX as printed (3.4028235e38) is that number, not beyond it.
    let f = lr as f32;
    if f.is_infinite() {
        return Err(Error::Config(format!(
            "{flag} {lr:e} is beyond the largest number the weights hold (f32, about 3.4e38): give a learning rate such as 1e-3"
        )));
    }
    if f < f32::MIN_POSITIVE {
        return Err(Error::Config(format!(
            "{flag} {lr:e} is below the smallest normal f32 (about 1.2e-38), which the update flushes to zero: the weights would never move"
        )));
    }
    Ok(())
}
