//! The settings of a training run, defined once: each is a flag of `elbo train`, a key of a `--config` TOML file
//! (the same name, kebab-case) and a keyword of Python's `elbo.VAE` (snake_case). Flags override the file; the
//! resolved [`RunConfig`] is what the run directory stores. Messages name settings as flags (`--lr`); front ends
//! that have no flags rewrite them with [`as_keywords`].

use crate::core::Activation;
use crate::data::images::ImageOptions;
use crate::data::numpy::Layout;
use crate::data::{Binarize, DataSpec, DatasetName, ItemShape, Kind};
use crate::error::{Error, Result};
use crate::model::GaussianMean;
use crate::model::ModelConfig;
use crate::model::config::{Arch, FlowSpec, PriorSpec, UpperSpec};
use crate::model::dip::{Dip, DipKind};
use crate::model::tc::{Tc, TcSampling};
use crate::model::vamp::PseudoInit;
use crate::model::{ConvSpec, Estimator, Likelihood, ModelKind, SigmaMode};
use crate::train::config::{Capacity, LrSchedule, Reduction, RunConfig, TrainConfig};
use crate::train::splits::DataFacts;
use std::path::PathBuf;

/// Declares [`Settings`] once, for clap and for serde, with the helpers that must list every field.
macro_rules! run_flags {
    ($( $(#[doc = $doc:expr])* [$($arg:tt)*] $name:ident : $ty:ty, )*) => {
        /// Every setting of a training run, as optional flags or config-file keys.
        #[derive(Debug, Default, Clone, serde::Deserialize)]
        #[cfg_attr(feature = "cli", derive(clap::Args))]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        pub struct Settings {
            $(
                $(#[doc = $doc])*
                #[cfg_attr(feature = "cli", arg(long, allow_negative_numbers = true, $($arg)*))]
                pub $name: Option<$ty>,
            )*
        }

        impl Settings {
            /// The config-file keys, in flag order.
            pub fn keys() -> Vec<String> {
                vec![$( stringify!($name).replace('_', "-") ),*]
            }

            /// Each setting from `self` when given, else from `file`.
            pub fn or(self, file: Settings) -> Settings {
                Settings { $( $name: self.$name.or(file.$name), )* }
            }

            /// The settings given, as `--flag` names.
            pub fn given(&self) -> Vec<String> {
                let mut v = Vec::new();
                $( if self.$name.is_some() {
                    v.push(format!("--{}", stringify!($name).replace('_', "-")));
                } )*
                v
            }
        }
    };
}

run_flags! {
    /// mnist, fashion-mnist, kmnist, cifar10 or dsprites [default: mnist].
    [] dataset: String,
    /// Your own data: a folder of images, a .zip/.tar/.tar.gz of one, a .npy/.npz, or a .csv/.tsv (or cifar10).
    [value_name = "PATH", conflicts_with = "dataset"] data: PathBuf,
    /// Resize images: SIZE (the shorter side, then a centre crop to SIZExSIZE) or HEIGHTxWIDTH.
    [value_name = "SIZE|HxW"] image_size: SizeArg,
    /// Cut a centre square of this side from each image before resizing (CelebA's recipe: --crop 148).
    [] crop: usize,
    /// Colour channels: 1 (grey) or 3 (RGB) [default: 3 if any image has colour, else 1].
    [] channels: usize,
    /// Axis order of 4-D arrays [default: nhwc when the last axis has 1 or 3 entries].
    [value_enum, ignore_case = true] layout: Layout,
    /// The column of a table holding class labels.
    [value_name = "NAME"] label_column: String,
    /// Fraction held out for testing when the data has no test split of its own [default: 0.1].
    [value_parser = number] test_fraction: f64,
    /// Leave out images that do not decode (and say how many) instead of stopping.
    [num_args = 0..=1, default_missing_value = "true"] skip_bad: bool,
    /// Total epochs [default: 10, or the staged schedule's length].
    [] epochs: usize,
    /// Run directory for checkpoints, metrics and figures [default: runs/DATASET or runs/NAME of --data].
    [value_name = "RUN_DIR"] out: PathBuf,
    /// Folder with a named dataset's files (downloaded there if missing); refused for a run on your own --data.
    [value_name = "DIR"] data_dir: PathBuf,
    /// Worker threads (0: all cores); does not change results.
    [] threads: usize,
    /// A VAE, or a deterministic autoencoder (also spelt ae) [default: vae].
    [value_enum, ignore_case = true] model: ModelKind,
    /// Architecture preset: the PyTorch example's MLP, Keras's conv VAE, or PyTorch-VAE's VanillaVAE
    /// [default: mlp].
    [value_enum, ignore_case = true] arch: Arch,
    /// Encoder convolutions, comma-separated: CHANNELS (3x3, stride 2, padding 1) or CHANNELS:KERNEL:STRIDE:PADDING;
    /// the decoder mirrors them (with --arch, they replace the preset's encoder and its own decoder too).
    [value_delimiter = ',', num_args = 1..] conv: Vec<ConvArg>,
    /// Latent dimension [default: 20]; stacked latent layers bottom to top, comma-separated (the IWAE paper's two
    /// layers: 100,50).
    [value_name = "Z[,Z2...]"] latent: Latents,
    /// Dense hidden widths, comma-separated; the decoder mirrors them [default: 400]; none: no hidden layer. With
    /// stacked latent layers, one group per layer separated by / (200,200/100,100): layer l's group maps z_{l-1}
    /// to z_l.
    [value_name = "W[,W...][/W...]"] hidden: Widths,
    /// Hidden activation [default: relu].
    [value_enum, ignore_case = true] activation: Activation,
    /// Condition encoder and decoder on the class label (a conditional VAE).
    [num_args = 0..=1, default_missing_value = "true"] conditional: bool,
    /// Pixel likelihood; logistic is discretised, for 8-bit colour [default: bernoulli, tables gaussian].
    [value_enum, ignore_case = true] likelihood: LikelihoodKind,
    /// Standard deviation of the Gaussian, or the logistic's scale (the start value when learned) [default: 0.1, logistic 0.05].
    [value_parser = number] sigma: f64,
    /// Learn the Gaussian's σ or the logistic's scale: not, one for all values, or one per value [default: fixed,
    /// logistic global, tables pixel].
    [value_enum, ignore_case = true] learn_sigma: SigmaMode,
    /// The bound trained on: the ELBO, the IWAE bound, MIWAE (M groups of K), CIWAE (β·ELBO + (1 − β)·IWAE) or PIWAE
    /// (the encoder on MIWAE, the decoder on IWAE over all M·K) [default: elbo].
    [value_enum, ignore_case = true] objective: Estimator,
    /// Latent samples per image: L of the ELBO, K of the importance-weighted bounds (per group with miwae and piwae) [default: 1].
    [] samples: usize,
    /// Samples K of the IWAE bound (the same setting as --samples).
    [] k_train: usize,
    /// MIWAE's and PIWAE's M: each image's samples form M groups of K (--k-train), the bound their IWAE bounds' mean [default: 4].
    [value_name = "M"] groups: usize,
    /// CIWAE's β: the ELBO's share of the bound, the IWAE bound's the rest [default: 0.5].
    [value_name = "BETA", value_parser = number] ciwae_beta: f64,
    /// Weight of the KL term (beta-VAE) [default: 1].
    [value_parser = number] beta: f64,
    /// KL warm-up: beta rises linearly from 0 over this many epochs.
    [] warmup_epochs: usize,
    /// Capacity annealing: minimise recon + gamma*|KL - C|, C rising to this many nats.
    [value_name = "C_MAX", value_parser = number] capacity: f64,
    /// Steps over which the capacity rises [default: 100000].
    [] capacity_steps: u64,
    /// Weight gamma of |KL - C| [default: 1000].
    [value_parser = number] gamma: f64,
    /// Free bits: minimum KL (nats) per latent dimension below which it is not pushed down.
    [value_parser = number] free_bits: f64,
    /// DIP-VAE (Kumar et al. 2018): push the covariance of the posterior means (i) or of the aggregate posterior (ii) towards the identity.
    [value_enum, ignore_case = true] dip: DipKind,
    /// DIP-VAE's weight of the covariance's off-diagonal entries [default: 10].
    [value_name = "LAMBDA", value_parser = number] dip_lambda_od: f64,
    /// DIP-VAE's weight of the diagonal's distance from 1 [default: 10 x lambda-od for i, lambda-od for ii].
    [value_name = "LAMBDA", value_parser = number] dip_lambda_d: f64,
    /// beta-TC-VAE (Chen et al. 2018): the weight beta of the codes' total correlation (the paper's dSprites runs: 6).
    [value_name = "BETA", value_parser = number] tc: f64,
    /// beta-TC-VAE's weight alpha of the index-code mutual information [default: 1].
    [value_name = "ALPHA", value_parser = number] tc_alpha: f64,
    /// beta-TC-VAE's weight gamma of the dimension-wise KL [default: 1].
    [value_name = "GAMMA", value_parser = number] tc_gamma: f64,
    /// How beta-TC-VAE estimates q(z) from the batch: minibatch-weighted or -stratified sampling [default: mws].
    [value_enum, ignore_case = true] tc_sampling: TcSampling,
    /// FactorVAE (Kim & Mnih 2018): the weight gamma of a discriminator's total-correlation estimate (the paper's dSprites runs: 35).
    [value_name = "GAMMA", value_parser = number] factor_vae: f64,
    /// FactorVAE's discriminator's hidden widths [default: 1000,1000,1000,1000,1000,1000].
    [value_name = "W[,W...]"] discriminator: Flat,
    /// FactorVAE's discriminator's learning rate (Adam with beta1 0.5, beta2 0.9) [default: 1e-4].
    [value_name = "LR", value_parser = number] discriminator_lr: f64,
    /// Pixel binarisation [default: none].
    [value_enum, ignore_case = true] binarize: Binarize,
    /// Images per minibatch [default: 128].
    [] batch_size: usize,
    /// Adam learning rate [default: 0.001].
    [value_parser = number] lr: f64,
    /// Adam epsilon [default: 1e-8].
    [value_parser = number] adam_eps: f64,
    /// Adam beta1, the first moment's decay [default: 0.9].
    [value_parser = number] adam_beta1: f64,
    /// Adam beta2, the second moment's decay [default: 0.999].
    [value_parser = number] adam_beta2: f64,
    /// Gradient of the loss summed over the batch or of its per-image mean (PyTorch's default) [default: sum].
    [value_enum, ignore_case = true] loss_reduction: Reduction,
    /// Flip each training image left to right with probability 1/2 whenever it is drawn (augmentation).
    [num_args = 0..=1, default_missing_value = "true"] random_flip: bool,
    /// Compute each batch's gradient in this many parts, summed in order: with MPI, any rank count that divides it gives the same weights [default: 1, or the rank count].
    [] shards: usize,
    /// Learning-rate schedule; iwae is the IWAE paper's staged one [default: constant].
    [value_enum, ignore_case = true] lr_schedule: ScheduleKind,
    /// Stages of the iwae schedule [default: 8].
    [] stages: usize,
    /// Growth of the iwae schedule's stage lengths: stage i runs round(growth^i) epochs [default: 3].
    [value_parser = number] stage_growth: f64,
    /// Final learning rate of the cosine schedule [default: 0].
    [value_parser = number] lr_min: f64,
    /// Epochs between decays of the step schedule [default: 10].
    [] lr_step_every: usize,
    /// Decay factor of the step schedule [default: 0.1].
    [value_parser = number] lr_step_gamma: f64,
    /// Decay factor per epoch of the exponential schedule, PyTorch's ExponentialLR [default: 0.95].
    [value_parser = number] lr_gamma: f64,
    /// Decoupled weight decay (AdamW) [default: 0].
    [value_parser = number] weight_decay: f64,
    /// Batch norm between every hidden layer and its activation.
    [num_args = 0..=1, default_missing_value = "true"] batch_norm: bool,
    /// Prior over z: normal is N(0, I); mog a learned mixture of Gaussians; vamp the VampPrior (KL by Monte Carlo for
    /// both) [default: normal].
    [value_enum, ignore_case = true] prior: PriorKind,
    /// Components of the mog prior, or pseudo-inputs of the VampPrior [default: 100, vamp 500].
    [value_name = "K"] prior_components: usize,
    /// Where the VampPrior's pseudo-inputs start: random is N(0.05, 0.01²), the paper's MNIST setting; data is K
    /// training items drawn at random plus N(0, 0.01²) noise [default: random].
    [value_enum, ignore_case = true] pseudo_init: PseudoInit,
    /// A flow the posterior's draws pass through: planar:K (K planar maps, Rezende & Mohamed), iaf:B or iaf:B:H
    /// (B inverse autoregressive blocks, each a MADE with two hidden layers of H units), or none [default: none;
    /// planar 8, iaf 2 blocks of 128].
    [value_name = "planar:K|iaf:B[:H]"] flow: FlowArg,
    /// Seed of every random draw [default: 1].
    [value_parser = seed] seed: u64,
    /// Train on the first N training images.
    [] limit: usize,
    /// Hold out the last N training images for validation.
    [] validation: usize,
    /// Scale gradients down to this global L2 norm when they exceed it.
    [value_name = "MAX", value_parser = number] clip_grad_norm: f64,
}

crate::choice! {
    /// The prior over a VAE's codes.
    pub enum PriorKind {
        /// N(0, I).
        Normal = "normal",
        /// A learned mixture of diagonal Gaussians (the TensorFlow Probability VAE example's prior).
        Mog = "mog" | "mixture",
        /// The VampPrior: the encoder's posteriors of learned pseudo-inputs, equally weighted (Tomczak & Welling).
        Vamp = "vamp" | "vampprior",
    }
}

/// Planar maps of `--flow planar` without a count: the issue's and pythae's tutorials' example.
pub const DEFAULT_PLANAR_LAYERS: usize = 8;

/// IAF blocks of `--flow iaf` without a count: pythae's default (`n_made_blocks`).
pub const DEFAULT_IAF_BLOCKS: usize = 2;

/// Units in each of an IAF block's two MADE hidden layers unless `--flow iaf:B:H` says: pythae's `hidden_size`.
pub const DEFAULT_MADE_HIDDEN: usize = 128;

/// `--flow` as a flag or a config value (a string): `planar:K`, `iaf:B`, `iaf:B:H` or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowArg(pub Option<FlowSpec>);

impl std::str::FromStr for FlowArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let usage =
            "give planar:K (K planar maps), iaf:B or iaf:B:H (B IAF blocks, MADE width H), or none";
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split(':').map(str::trim).collect();
        let number = |what: &str, v: &str| {
            v.parse::<usize>().map_err(|_| {
                if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                    format!("flow '{s}': {what} {v} is far too large ({usage})")
                } else {
                    format!("flow '{s}': {what} '{v}' is not a whole number ({usage})")
                }
            })
        };
        let spec = match parts[..] {
            ["none"] => None,
            ["planar"] => Some(FlowSpec::Planar {
                layers: DEFAULT_PLANAR_LAYERS,
            }),
            ["planar", k] => Some(FlowSpec::Planar {
                layers: number("the number of maps", k)?,
            }),
            ["iaf"] => Some(FlowSpec::Iaf {
                blocks: DEFAULT_IAF_BLOCKS,
                hidden: DEFAULT_MADE_HIDDEN,
            }),
            ["iaf", b] => Some(FlowSpec::Iaf {
                blocks: number("the number of blocks", b)?,
                hidden: DEFAULT_MADE_HIDDEN,
            }),
            ["iaf", b, h] => Some(FlowSpec::Iaf {
                blocks: number("the number of blocks", b)?,
                hidden: number("the MADE's width", h)?,
            }),
            _ => return Err(format!("'{s}' is not a flow: {usage}")),
        };
        Ok(FlowArg(spec))
    }
}

impl<'de> serde::Deserialize<'de> for FlowArg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// MIWAE's groups M unless `groups` says otherwise.
pub const DEFAULT_MIWAE_GROUPS: usize = 4;

/// CIWAE's β unless `ciwae_beta` says otherwise: equal shares of the ELBO and the IWAE bound.
pub const DEFAULT_CIWAE_BETA: f64 = 0.5;

/// DIP-VAE's λ_od when not given: the middle of disentanglement_lib's sweep (1, 2, 5, 10, 20, 50).
pub const DEFAULT_DIP_LAMBDA_OD: f64 = 10.0;

/// Components of a mixture prior unless `prior_components` says otherwise: the TensorFlow Probability example's.
pub const DEFAULT_PRIOR_COMPONENTS: usize = 100;

/// Pseudo-inputs of a VampPrior unless `prior_components` says otherwise: the paper's MNIST setting.
pub const DEFAULT_VAMP_COMPONENTS: usize = 500;

crate::choice! {
    /// The decoder's distribution over each value.
    pub enum LikelihoodKind {
        /// Values in [0, 1] as probabilities (binary or grey images).
        Bernoulli = "bernoulli",
        /// A Gaussian around the decoder's mean.
        Gaussian = "gaussian",
        /// A discretised logistic over 256 levels (8-bit colour).
        Logistic = "logistic",
    }
}

crate::choice! {
    /// How the learning rate changes over the epochs.
    pub enum ScheduleKind {
        /// The same rate throughout.
        Constant = "constant",
        /// The IWAE paper's stages: stage i runs stage-growth^i epochs at lr·10^(−i/7)
        Iwae = "iwae",
        /// Cosine annealing to `lr-min`.
        Cosine = "cosine",
        /// Multiplied by `lr-step-gamma` every `lr-step-every` epochs.
        Step = "step",
        /// Multiplied by `lr-gamma` every epoch.
        Exponential = "exponential",
    }
}

/// A `--seed`: 0 to 2^63 − 1, the range a config file and Python hold, so a seed means the same everywhere.
#[cfg(feature = "cli")]
pub fn seed(s: &str) -> std::result::Result<u64, String> {
    match s.parse::<u64>() {
        Ok(v) if v <= i64::MAX as u64 => Ok(v),
        _ if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => {
            Err(format!("{s} is too large: seeds go from 0 to {}", i64::MAX))
        }
        _ => Err(format!(
            "'{s}' is not a whole number from 0 to {}",
            i64::MAX
        )),
    }
}

/// A number flag's value, refusing one too large to hold (`1e400`) rather than reading it as infinity: the message
/// would show `inf`, which the user never wrote.
#[cfg(feature = "cli")]
fn number(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|e: std::num::ParseFloatError| e.to_string())?;
    let written_infinite = s.trim_start_matches(['+', '-']).eq_ignore_ascii_case("inf")
        || s.trim_start_matches(['+', '-'])
            .eq_ignore_ascii_case("infinity");
    if v.is_infinite() && !written_infinite {
        return Err(format!(
            "{s} is too large for a number (the largest is about {:.1e})",
            f64::MAX
        ));
    }
    // 1e-400 reads as 0, which the user never wrote either.
    let mantissa = s.split(['e', 'E']).next().unwrap_or("");
    if v == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return Err(format!(
            "{s} is too small for a number (the smallest is about {:.1e}); give 0 if 0 is meant",
            f64::from_bits(1)
        ));
    }
    Ok(v)
}

/// `message` with every setting named as a flag (`--lr`, `--batch-size`) named as a keyword argument instead
/// (`lr=`, `batch_size=`), for front ends such as Python's that take settings as keywords.
pub fn as_keywords(message: &str) -> String {
    rename_flags(message, |k| Some((k.replace('-', "_"), "=")))
}

/// The settings a config file gave that nothing overrode, to name them in errors as the file's keys.
#[derive(Debug, Clone, Default)]
pub struct FileKeys {
    file: String,
    keys: Vec<String>,
    /// How the file spelt a key, where not as its kebab-case name (`batch_size` for `batch-size`).
    spelt: Vec<(String, String)>,
}

impl FileKeys {
    /// Leaves out of `s` the settings for reading files of images or tables (`image-size`, `crop`, `channels`,
    /// `skip-bad`, `label-column`) that only the file gave, saying so in one line: arrays in memory are trained
    /// on as they are, so a preset's recipe for photos (CelebA's crop) has nothing to act on.
    pub fn leave_out_for_arrays(&self, s: &mut Settings) {
        let mut left: Vec<&str> = Vec::new();
        macro_rules! leave {
            ($field:ident, $key:literal) => {
                if s.$field.is_some()
                    && self.keys.iter().any(|k| k.strip_prefix("--") == Some($key))
                {
                    s.$field = None;
                    left.push($key);
                }
            };
        }
        leave!(image_size, "image-size");
        leave!(crop, "crop");
        leave!(channels, "channels");
        leave!(skip_bad, "skip-bad");
        leave!(label_column, "label-column");
        if !left.is_empty() {
            crate::notes::say!(
                "elbo: {} from {} left out: arrays are trained on as they are, not read from image files or tables",
                left.join(", "),
                self.file
            );
        }
    }

    /// `e` with those settings named as the file's keys ([`as_file_keys`]): an error about settings, or a
    /// divergence's advice.
    pub fn rename(&self, e: Error) -> Error {
        match e {
            Error::Config(m) if !self.keys.is_empty() => Error::Config(self.named(&m)),
            Error::Diverged {
                epoch,
                step,
                what,
                fix,
            } if !self.keys.is_empty() => Error::Diverged {
                epoch,
                step,
                what,
                fix: self.named(&fix),
            },
            e => e,
        }
    }

    fn named(&self, message: &str) -> String {
        spelt_file_keys(message, &self.keys, &self.file, |k| {
            self.spelt
                .iter()
                .find(|(kebab, _)| kebab == k)
                .map_or_else(|| k.to_string(), |(_, as_written)| as_written.clone())
        })
    }
}

impl Settings {
    /// These settings over a config file's (`file`, read from `name`), as `--config` combines them, and which
    /// settings came from the file alone.
    pub fn over_file(self, mut file: Settings, name: &str) -> (Settings, FileKeys) {
        // Two spellings of one choice: the command line's overrides the file's whichever spelling each used, or
        // `--dataset mnist` over a file's `data` would train on the file's data, and `--samples 5` over a file's
        // `k-train` would be refused as the same thing set twice.
        if self.data.is_some() || self.dataset.is_some() {
            // A preset's dataset replaced by the user's own data (or the reverse) is the point of the flag, but a
            // line says so: the file's other settings were chosen for its data.
            let was = match (&file.dataset, &file.data) {
                (Some(d), _) if self.dataset.as_ref() != Some(d) => {
                    Some(format!("dataset = {d:?}"))
                }
                (_, Some(p)) if self.data.as_ref() != Some(p) => {
                    Some(format!("data = {:?}", p.display().to_string()))
                }
                _ => None,
            };
            if let Some(was) = was {
                let now = match (&self.data, &self.dataset) {
                    (Some(p), _) => format!("--data {}", p.display()),
                    (_, d) => format!("--dataset {}", d.as_deref().unwrap_or_default()),
                };
                crate::notes::say!("elbo: {was} from {name} is replaced by {now}");
            }
            (file.data, file.dataset) = (None, None);
        }
        if self.samples.is_some() || self.k_train.is_some() {
            (file.samples, file.k_train) = (None, None);
        }
        self.drop_orphans(&mut file, name);
        let given = self.given();
        let keys = file
            .given()
            .into_iter()
            .filter(|k| !given.contains(k))
            .collect();
        let file_keys = FileKeys {
            file: name.to_string(),
            keys,
            spelt: Vec::new(),
        };
        (self.or(file), file_keys)
    }

    /// Leaves out the file's settings that belong to a choice these settings change: `--prior normal` over a
    /// VampPrior preset drops its `prior-components`, `--lr-schedule cosine` a step schedule's `lr-step-every`,
    /// `--likelihood bernoulli` a Gaussian's `sigma`, `--objective elbo` MIWAE's `groups`, `--dataset` the file's
    /// image options. Each is said in one line; set on the command line itself, the same pair is still refused.
    fn drop_orphans(&self, file: &mut Settings, name: &str) {
        use ScheduleKind::{Cosine, Exponential, Iwae, Step};
        let mut dropped: Vec<(&str, String)> = Vec::new();
        let mut drop = |given: bool, key: &'static str, why: String| {
            if given {
                dropped.push((key, why));
            }
        };
        macro_rules! orphan {
            ($field:ident, $key:literal, $keep:expr, $why:expr) => {
                if self.$field.is_none() && !$keep {
                    drop(file.$field.take().is_some(), $key, $why);
                }
            };
        }
        if let Some(p) = self.prior {
            let why = format!(
                "it goes with prior mog or vamp, and prior is now {}",
                p.name()
            );
            orphan!(
                prior_components,
                "prior-components",
                p != PriorKind::Normal,
                why
            );
            let why = format!("it goes with prior vamp, and prior is now {}", p.name());
            orphan!(pseudo_init, "pseudo-init", p == PriorKind::Vamp, why);
        }
        if let Some(k) = self.lr_schedule {
            let why = |with: &str| {
                format!(
                    "it goes with lr-schedule {with}, and lr-schedule is now {}",
                    k.name()
                )
            };
            orphan!(stages, "stages", k == Iwae, why("iwae"));
            orphan!(stage_growth, "stage-growth", k == Iwae, why("iwae"));
            orphan!(lr_min, "lr-min", k == Cosine, why("cosine"));
            orphan!(lr_step_every, "lr-step-every", k == Step, why("step"));
            orphan!(lr_step_gamma, "lr-step-gamma", k == Step, why("step"));
            orphan!(lr_gamma, "lr-gamma", k == Exponential, why("exponential"));
        }
        if let Some(l) = self.likelihood {
            let keep = l != LikelihoodKind::Bernoulli;
            let why = format!(
                "it goes with likelihood gaussian or logistic, and likelihood is now {}",
                l.name()
            );
            orphan!(sigma, "sigma", keep, why.clone());
            orphan!(learn_sigma, "learn-sigma", keep, why);
        }
        if let Some(o) = self.objective {
            let why = |with: &str| {
                format!(
                    "it goes with objective {with}, and objective is now {}",
                    o.name()
                )
            };
            orphan!(
                groups,
                "groups",
                matches!(o, Estimator::Miwae | Estimator::Piwae),
                why("miwae or piwae")
            );
            orphan!(
                ciwae_beta,
                "ciwae-beta",
                o == Estimator::Ciwae,
                why("ciwae")
            );
            // Kept, not dropped: the ELBO over several draws is a model of its own (the IWAE paper's "VAE,
            // k = 50"), but one the user switching to the ELBO may not have meant, so it is said.
            let kept = [("k-train", file.k_train), ("samples", file.samples)];
            let own = self.samples.is_none() && self.k_train.is_none();
            match (
                o,
                own,
                kept.into_iter().find(|(_, k)| k.is_some_and(|k| k > 1)),
            ) {
                (Estimator::Elbo, true, Some((key, Some(k)))) => crate::notes::say!(
                    "elbo: {key} = {k} from {name} is kept: with objective elbo it averages the ELBO over {k} draws per image (give --{key} 1 for one)"
                ),
                // MIWAE and PIWAE multiply it by the groups: 50 draws become 200 per image.
                (Estimator::Miwae | Estimator::Piwae, true, Some((key, Some(k)))) => {
                    let m = self.groups.or(file.groups).unwrap_or(DEFAULT_MIWAE_GROUPS);
                    crate::notes::say!(
                        "elbo: {key} = {k} from {name} is kept: with objective {} it is the draws in each of {m} groups, {} per image",
                        o.name(),
                        k.saturating_mul(m)
                    );
                }
                _ => {}
            }
        }
        if let Some(d) = &self.dataset {
            let why = format!("it applies to your own data, and the dataset is now {d}");
            orphan!(image_size, "image-size", false, why.clone());
            orphan!(crop, "crop", false, why.clone());
            orphan!(channels, "channels", false, why.clone());
            orphan!(layout, "layout", false, why.clone());
            orphan!(label_column, "label-column", false, why);
        }
        for (key, why) in dropped {
            crate::notes::say!("elbo: {key} from {name} is left out: {why}");
        }
    }

    /// These settings over those of the config file whose `text` was read from `name`: [`Self::over_file`] after
    /// [`Self::from_toml`], with errors naming the file's settings as the file spells them (`batch_size = 0`).
    pub fn over_config(self, text: &str, name: &str) -> Result<(Settings, FileKeys)> {
        let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(&e, text, name))?;
        let spelt = table
            .keys()
            .map(|k| (k.replace('_', "-"), k.clone()))
            .filter(|(kebab, k)| kebab != k)
            .collect();
        let file = Self::from_table(table, name, Some(text))?;
        let (merged, mut keys) = self.over_file(file, name);
        keys.spelt = spelt;
        Ok((merged, keys))
    }
}

/// `message` with the settings in `keys` (as [`Settings::given`] names them: `--lr`) named as the keys of the
/// config file `file` that set them (`lr = -1`), and the file named after it: for errors about a value the user
/// wrote in the file, not on the command line.
pub fn as_file_keys(message: &str, keys: &[String], file: &str) -> String {
    spelt_file_keys(message, keys, file, str::to_string)
}

/// [`as_file_keys`], with each key written as `spell` gives it.
fn spelt_file_keys(
    message: &str,
    keys: &[String],
    file: &str,
    spell: impl Fn(&str) -> String,
) -> String {
    let mut named = Vec::new();
    let out = rename_flags(message, |k| {
        keys.iter()
            .any(|g| g.strip_prefix("--") == Some(k))
            .then(|| {
                let k = spell(k);
                if !named.contains(&k) {
                    named.push(k.clone());
                }
                (k, " = ")
            })
    });
    if named.is_empty() {
        return out;
    }
    let verb = if named.len() == 1 { "is" } else { "are" };
    format!("{out} ({} {verb} set in {file})", named.join(", "))
}

/// `message` with each setting named as a flag (`--lr 5`, `--batch-norm`) renamed where `name(key)` gives
/// `(name, joiner)`: `name` stands for `--key`, and `joiner` goes between it and a value that follows.
fn rename_flags(
    message: &str,
    mut name: impl FnMut(&str) -> Option<(String, &'static str)>,
) -> String {
    let mut keys = Settings::keys();
    // Longest first, so `--lr-schedule` is not read as `--lr` followed by `-schedule`.
    keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("--") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let key = keys.iter().find(|k| {
            after.starts_with(k.as_str())
                && !after[k.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        });
        match key.and_then(|k| name(k).map(|n| (k, n))) {
            Some((k, (renamed, joiner))) => {
                // `--lr 5` becomes `lr=5`; a flag named without a value (`--batch-norm needs…`) just `batch_norm`.
                let value = after[k.len()..].strip_prefix(' ').filter(|v| {
                    let mut c = v.chars();
                    let word = |w: &str| {
                        v.strip_prefix(w)
                            .is_some_and(|r| !r.starts_with(|c: char| c.is_ascii_alphanumeric()))
                    };
                    match c.next() {
                        Some(d) if d.is_ascii_digit() || d == '\'' || d == '"' || d == '.' => true,
                        Some('-') => c.next().is_some_and(|d| d.is_ascii_digit()) || word("-inf"),
                        _ => word("NaN") || word("inf"),
                    }
                });
                out.push_str(&renamed);
                rest = match value {
                    Some(v) => {
                        out.push_str(joiner);
                        v
                    }
                    None => &after[k.len()..],
                };
            }
            None => {
                out.push_str("--");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `--latent`: one dimension per latent layer, bottom to top, as a flag (`100,50`) or a config value (`20`,
/// `[100, 50]` or `"100,50"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latents(pub Vec<usize>);

/// `--hidden`: dense widths per latent layer, as a flag (`400`, `200,200/100,100`) or a config value (`[400]`,
/// `[[200, 200], [100, 100]]` or `"200,200/100,100"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widths(pub Vec<Vec<usize>>);

impl From<usize> for Latents {
    fn from(dim: usize) -> Self {
        Latents(vec![dim])
    }
}

impl From<Vec<usize>> for Latents {
    fn from(dims: Vec<usize>) -> Self {
        Latents(dims)
    }
}

impl From<Vec<usize>> for Widths {
    fn from(widths: Vec<usize>) -> Self {
        Widths(vec![widths])
    }
}

impl From<Vec<Vec<usize>>> for Widths {
    fn from(groups: Vec<Vec<usize>>) -> Self {
        Widths(groups)
    }
}

/// Parses `a,b,c` into numbers, saying `what` the text should have been when it is not (an empty text too).
fn numbers(s: &str, what: &str) -> std::result::Result<Vec<usize>, String> {
    s.split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| format!("'{s}' is not {what}"))
}

impl std::str::FromStr for Latents {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        numbers(s, "dimensions separated by commas (e.g. 20, or 100,50)").map(Latents)
    }
}

/// `--discriminator`: one list of widths, as a flag (`1000,1000`) or a config value (`[1000, 1000]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flat(pub Vec<usize>);

impl From<Vec<usize>> for Flat {
    fn from(widths: Vec<usize>) -> Self {
        Flat(widths)
    }
}

impl std::str::FromStr for Flat {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        numbers(s, "widths separated by commas (e.g. 1000,1000)").map(Flat)
    }
}

impl<'de> serde::Deserialize<'de> for Flat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = d.deserialize_any(NumberLists {
            nested: false,
            flat: FlatKind::Widths,
        })?;
        Ok(Flat(v.into_iter().flatten().collect()))
    }
}

impl std::str::FromStr for Widths {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        // No hidden layer is said in words, as a config file's `hidden = []` says it: an empty group ("64/", "/",
        // "") would otherwise quietly make a network linear.
        if s.trim().eq_ignore_ascii_case("none") {
            return Ok(Widths(vec![Vec::new()]));
        }
        let what = "widths separated by commas, one group per latent layer separated by / (e.g. 400, or 200,200/100,100; none for no hidden layer)";
        s.split('/')
            .map(|g| numbers(g, what).map_err(|_| format!("'{s}' is not {what}")))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map(Widths)
    }
}

/// One entry of a `latent` or `hidden` list: a number, or (in `hidden`, `group`) a list of numbers.
enum Item {
    One(usize),
    Group(Vec<usize>),
}

/// Reads an [`Item`], in words a user can act on whatever the mistake (serde's untagged enums name none).
#[derive(Clone, Copy)]
struct ItemSeed {
    group: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for ItemSeed {
    type Value = Item;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Item, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ItemSeed {
    type Value = Item;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group {
            f.write_str("a whole number, or a list of them for one latent layer")
        } else {
            f.write_str("a whole number")
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Item, E> {
        usize::try_from(v)
            .map(Item::One)
            .map_err(|_| E::custom(format!("{v} is too large")))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Item, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!(
                "{v}: expected a whole number, 1 or more"
            ))),
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Item, A::Error> {
        if !self.group {
            return Err(serde::de::Error::custom(
                "a list inside the list: give one dimension per latent layer, e.g. [100, 50]",
            ));
        }
        let mut g = Vec::new();
        while let Some(item) = seq.next_element_seed(ItemSeed { group: false })? {
            if let Item::One(v) = item {
                g.push(v);
            }
        }
        Ok(Item::Group(g))
    }
}

/// A visitor for a number, a list (of numbers, or of lists of numbers with `nested`) or the flag's text.
struct NumberLists {
    nested: bool,
    /// For a flat list: what a number or list stands for, in messages (`dimension`, or a flag's `width`).
    flat: FlatKind,
}

/// What a flat list holds: `--latent`'s dimensions or `--discriminator`'s widths.
#[derive(Clone, Copy)]
enum FlatKind {
    Dimensions,
    Widths,
}

impl<'de> serde::de::Visitor<'de> for NumberLists {
    type Value = Vec<Vec<usize>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nested {
            f.write_str("a list of widths, a list of such lists (one per latent layer), or \"200,200/100,100\"")
        } else {
            match self.flat {
                FlatKind::Dimensions => f.write_str(
                    "a dimension, a list of dimensions (one per latent layer), or \"100,50\"",
                ),
                FlatKind::Widths => f.write_str("a width, a list of widths, or \"1000,1000\""),
            }
        }
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
        match (ItemSeed { group: false }).visit_u64(v)? {
            Item::One(v) => Ok(vec![vec![v]]),
            Item::Group(g) => Ok(vec![g]),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
        match (ItemSeed { group: false }).visit_i64(v)? {
            Item::One(v) => Ok(vec![vec![v]]),
            Item::Group(g) => Ok(vec![g]),
        }
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        if self.nested {
            v.parse::<Widths>().map(|w| w.0).map_err(E::custom)
        } else {
            match self.flat {
                FlatKind::Dimensions => v.parse::<Latents>().map(|l| vec![l.0]).map_err(E::custom),
                FlatKind::Widths => v.parse::<Flat>().map(|l| vec![l.0]).map_err(E::custom),
            }
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut flat = Vec::new();
        let mut groups = Vec::new();
        while let Some(item) = seq.next_element_seed(ItemSeed { group: self.nested })? {
            match item {
                Item::One(v) => flat.push(v),
                Item::Group(g) => groups.push(g),
            }
        }
        match (flat.is_empty(), groups.is_empty()) {
            (_, true) => Ok(vec![flat]),
            (true, false) => Ok(groups),
            (false, false) => Err(serde::de::Error::custom(
                "mixes widths and lists of widths: give [200, 200] for one layer or [[200, 200], [100, 100]] for two",
            )),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Latents {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = d.deserialize_any(NumberLists {
            nested: false,
            flat: FlatKind::Dimensions,
        })?;
        let flat: Vec<usize> = v.into_iter().flatten().collect();
        if flat.is_empty() {
            return Err(serde::de::Error::custom("needs at least one dimension"));
        }
        Ok(Latents(flat))
    }
}

impl<'de> serde::Deserialize<'de> for Widths {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(NumberLists {
            nested: true,
            flat: FlatKind::Dimensions,
        })
        .map(Widths)
    }
}

/// One convolution as a flag (`32` or `32:5:2:2`) or a config value (`32`, `"32:5:2:2"` or a table with
/// `channels`, `kernel`, `stride`, `padding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvArg {
    /// Channels of a 3x3, stride-2, padding-1 convolution.
    Channels(usize),
    /// A full specification.
    Spec(ConvSpec),
}

// By hand rather than `untagged`, whose one message for every mistake ("did not match any variant") names none.
impl<'de> serde::Deserialize<'de> for ConvArg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::{self, Visitor};
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = ConvArg;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a channel count, \"CHANNELS:KERNEL:STRIDE:PADDING\", or a table of channels, kernel, stride and padding")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<ConvArg, E> {
                usize::try_from(v)
                    .map(ConvArg::Channels)
                    .map_err(|_| E::custom(format!("{v} channels is too many")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<ConvArg, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("{v} channels: give a positive count"))),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<ConvArg, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_map<A: de::MapAccess<'de>>(
                self,
                m: A,
            ) -> std::result::Result<ConvArg, A::Error> {
                let spec = <ConvSpec as serde::Deserialize>::deserialize(
                    de::value::MapAccessDeserializer::new(m),
                )?;
                Ok(ConvArg::Spec(spec))
            }
        }
        d.deserialize_any(Any)
    }
}

impl ConvArg {
    fn spec(self) -> ConvSpec {
        match self {
            ConvArg::Channels(c) => ConvSpec::halving(c),
            ConvArg::Spec(s) => s,
        }
    }
}

impl std::str::FromStr for ConvArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<usize> = s
            .split(':')
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| format!("'{s}' is not CHANNELS or CHANNELS:KERNEL:STRIDE:PADDING"))?;
        match parts[..] {
            [c] => Ok(ConvArg::Channels(c)),
            [channels, kernel, stride, padding] => Ok(ConvArg::Spec(ConvSpec {
                channels,
                kernel,
                stride,
                padding,
            })),
            _ => Err(format!(
                "'{s}' is not CHANNELS or CHANNELS:KERNEL:STRIDE:PADDING"
            )),
        }
    }
}

/// `--image-size` as a flag (`64`, `64x48`) or a config value (`64`, `"64x48"`, or `[64, 48]` as Keras's and
/// torchvision's `(height, width)` tuples give it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
pub enum SizeArg {
    /// A square side.
    Side(usize),
    /// `SIZE` or `HEIGHTxWIDTH`.
    Text(String),
    /// `[HEIGHT, WIDTH]`.
    Pair([usize; 2]),
}

impl std::str::FromStr for SizeArg {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        parse_size(s).map_err(|e| e.to_string())?;
        Ok(SizeArg::Text(s.to_string()))
    }
}

impl SizeArg {
    fn hw(&self) -> Result<(usize, usize)> {
        match self {
            SizeArg::Side(n) => Ok((*n, *n)),
            SizeArg::Text(t) => parse_size(t),
            SizeArg::Pair([h, w]) => parse_size(&format!("{h}x{w}")),
        }
    }
}

/// Parses `--image-size`: `64` (square) or `HEIGHTxWIDTH`.
fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || {
        Error::Config(format!(
            "--image-size '{s}' is not SIZE or HEIGHTxWIDTH (e.g. 64 or 64x48)"
        ))
    };
    let parts: Vec<&str> = s.split(['x', 'X']).collect();
    let num = |p: &str| p.trim().parse::<usize>().map_err(|_| bad());
    match parts[..] {
        [n] => {
            let n = num(n)?;
            Ok((n, n))
        }
        [h, w] => Ok((num(h)?, num(w)?)),
        _ => Err(bad()),
    }
}

/// Settings that belong to one schedule or likelihood only, named for the error when used with another.
fn only_with(given: bool, flag: &str, needs: &str) -> Result<()> {
    if given {
        let verb = if flag.contains(" and ") {
            "apply"
        } else {
            "applies"
        };
        return Err(Error::Config(format!("{flag} {verb} to {needs} only")));
    }
    Ok(())
}

impl Settings {
    /// The setting whose config key (kebab-case) is nearest to `key`, for "did you mean" messages, when it is
    /// near enough to be what was meant (a third of the letters or two, whichever is more, differ).
    pub fn nearest_key(key: &str) -> Option<String> {
        let key = key.replace('_', "-").to_lowercase();
        // Names other tools give these settings, too far from ours to be found by spelling.
        let alias = match key.as_str() {
            "learning-rate" => Some("lr"),
            "latent-dim" | "latent-size" | "z-dim" => Some("latent"),
            "num-epochs" | "n-epochs" => Some("epochs"),
            "hidden-dim" | "hidden-dims" | "hidden-sizes" => Some("hidden"),
            _ => None,
        };
        if let Some(a) = alias {
            return Some(a.to_string());
        }
        let (best, d) = Self::keys()
            .into_iter()
            .map(|c| {
                let d = strsim::levenshtein(&c, &key);
                (c, d)
            })
            .min_by_key(|(_, d)| *d)?;
        // A third of the name, at least one edit: two edits of a three-letter name (foo, flow) is a guess.
        (d <= (key.chars().count() / 3).max(1)).then_some(best)
    }

    /// Parses a `--config` TOML file's text; `name` labels errors. Unknown keys are refused with the nearest
    /// valid key.
    pub fn from_toml(text: &str, name: &str) -> Result<Settings> {
        let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(&e, text, name))?;
        Self::from_table(table, name, Some(text))
    }

    /// Settings from a table of keys (kebab- or snake_case) and values, as a config file or Python's keyword
    /// arguments give them; `name` labels errors, and `text`, when the table was parsed from one, gives lines.
    pub fn from_table(table: toml::Table, name: &str, text: Option<&str>) -> Result<Settings> {
        let keys = Self::keys();
        let mut normal = toml::Table::new();
        let mut written = std::collections::HashMap::new();
        // Where a key is, for messages: "c.toml, line 3".
        let at = |k: &str| match text.and_then(|t| line_of(t, k)) {
            Some(l) => format!("{name}, line {l}"),
            None => name.to_string(),
        };
        for (k, v) in table {
            let key = k.replace('_', "-");
            if ["force", "resume", "config"].contains(&key.as_str()) {
                return Err(Error::Config(format!(
                    "{}: '{k}' is a command-line flag only (--{key}), not a config key",
                    at(&k)
                )));
            }
            if !keys.contains(&key) {
                let hint = match Self::nearest_key(&key) {
                    // In the spelling the user writes keys in: snake_case for snake_case (Python's too).
                    Some(near) if k.contains('_') => {
                        format!("did you mean '{}'?", near.replace('-', "_"))
                    }
                    Some(near) => format!("did you mean '{near}'?"),
                    None => {
                        "the keys are the flags of 'elbo train --help', without their --".into()
                    }
                };
                return Err(Error::Config(format!(
                    "{}: unknown key '{k}'; {hint}",
                    at(&k)
                )));
            }
            if normal.contains_key(&key) {
                return Err(Error::Config(format!(
                    "{}: '{key}' is given twice (with '-' and with '_'); keep one",
                    at(&k)
                )));
            }
            // An empty path would be read as this folder, or reach the file system as "" and come back as an error
            // naming nothing.
            if ["data-dir", "out", "data"].contains(&key.as_str())
                && v.as_str().is_some_and(|s| s.trim().is_empty())
            {
                return Err(Error::Config(format!(
                    "{}: '{k}' is empty; give a path or leave the key out",
                    at(&k)
                )));
            }
            // `conv = "32,64"`, as the flag and as `latent = "100,50"` take it, and `conv = 32` as `hidden = 16`.
            let v = match (key.as_str(), v) {
                ("conv", toml::Value::Integer(n)) => {
                    toml::Value::Array(vec![toml::Value::Integer(n)])
                }
                ("conv", toml::Value::String(list)) => toml::Value::Array(
                    list.split(',')
                        .map(|c| toml::Value::String(c.trim().to_string()))
                        .collect(),
                ),
                (_, v) => v,
            };
            written.insert(key.clone(), k);
            normal.insert(key, v);
        }
        // One key at a time first, so a bad value is reported with its key, as the user spelt it.
        for (key, v) in &normal {
            let k = &written[key];
            let mut one = toml::Table::new();
            one.insert(key.clone(), v.clone());
            <Settings as serde::Deserialize>::deserialize(toml::Value::Table(one)).map_err(
                |e| {
                    // serde's message may span lines ("… in `epochs`"): one line is what a user reads.
                    let msg =
                        plain_types(&e.message().split_whitespace().collect::<Vec<_>>().join(" "));
                    Error::Config(format!("{}, key '{k}': {msg}", at(k)))
                },
            )?;
        }
        <Settings as serde::Deserialize>::deserialize(toml::Value::Table(normal))
            .map_err(|e| Error::Config(format!("{name}: {}", e.to_string().trim())))
    }

    /// Where the data comes from: a named dataset, or the user's own (`--data`) and how to read it.
    pub fn source(&self) -> Result<(DatasetName, Option<DataSpec>)> {
        // Named one by one, so the error lists only the ones given.
        let own: Vec<&str> = [
            ("--image-size", self.image_size.is_some()),
            ("--crop", self.crop.is_some()),
            ("--channels", self.channels.is_some()),
            ("--layout", self.layout.is_some()),
            ("--label-column", self.label_column.is_some()),
            ("--test-fraction", self.test_fraction.is_some()),
            ("--skip-bad", self.skip_bad.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect();
        let own_only = || {
            let flags = match own.split_last() {
                Some((last, [])) => last.to_string(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => return Ok(()),
            };
            only_with(true, &flags, "your own data (--data PATH)")
        };
        if let (Some(path), Some(name)) = (&self.data, &self.dataset) {
            return Err(Error::Config(format!(
                "--data {:?} and --dataset {name:?} both say which data to train on; give one",
                path.display().to_string()
            )));
        }
        let Some(path) = &self.data else {
            own_only()?;
            let name = self.dataset.as_deref().unwrap_or("mnist").parse()?;
            return Ok((name, None));
        };
        if !path.exists()
            && let Ok(name) = path.to_string_lossy().parse::<DatasetName>()
        {
            own_only()?;
            return Ok((name, None));
        }
        let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
        if !abs.exists() {
            return Err(Error::Config(format!(
                "--data {}: no such file or folder (give a folder of images, an archive, a .npy/.npz, a .csv, or a dataset name)",
                path.display()
            )));
        }
        let images = ImageOptions {
            size: self.image_size.as_ref().map(SizeArg::hw).transpose()?,
            crop: self.crop,
            channels: self.channels,
            skip_bad: self.skip_bad.unwrap_or(false),
        };
        Ok((
            DatasetName::Mnist,
            Some(DataSpec {
                path: abs,
                images,
                layout: self.layout,
                label_column: self.label_column.clone(),
                test_fraction: self.test_fraction.unwrap_or(0.1),
                test_fraction_given: self.test_fraction.is_some(),
                split_seed: Some(crate::data::source::SPLIT_SEED),
            }),
        ))
    }

    /// Sets the latent layers and hidden widths of `model` from `--latent` and `--hidden`: one group of widths per
    /// latent layer, the first the encoder's (the decoder mirrors it), each next one the inference network from
    /// the layer below (the generative network mirrors it).
    fn latent_layers(&self, model: &mut ModelConfig) -> Result<()> {
        let latents = self.latent.as_ref().map_or(&[][..], |l| &l.0[..]);
        let groups = self.hidden.as_ref().map(|h| &h.0[..]);
        if let Some(&first) = latents.first() {
            model.latent = first;
        }
        if let Some(g) = groups.and_then(|g| g.first()) {
            model.hidden = g.clone();
        }
        let layers = latents.len().max(1);
        let given = groups.map_or(1, <[Vec<usize>]>::len);
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        // Worded without flag syntax after the names, so Python reads it with keywords (latent=, hidden=) as well.
        let example = "the IWAE paper's two layers take widths 200,200 then 100,100: 200,200/100,100 on the command line, [[200, 200], [100, 100]] in Python and config files";
        if layers > 1 && given != layers {
            let widths = match groups {
                None => "--hidden is not given (its default, 400, is one group)".to_string(),
                Some(_) => format!(
                    "--hidden gives {}",
                    plural(given, "group of widths", "groups of widths")
                ),
            };
            return Err(Error::Config(format!(
                "--latent gives {} but {widths}: give one group of widths per latent layer ({example})",
                plural(layers, "latent layer", "latent layers")
            )));
        }
        if layers == 1 && given > 1 {
            let latent = if latents.is_empty() {
                format!(
                    "--latent is not given (its default, {}, is one layer)",
                    model.latent
                )
            } else {
                "--latent gives one".to_string()
            };
            return Err(Error::Config(format!(
                "--hidden gives {given} groups of widths, one per latent layer, but {latent}: give --latent one dimension per group ({example}, and dimensions 100,50)"
            )));
        }
        model.upper = latents
            .iter()
            .skip(1)
            .zip(groups.unwrap_or(&[]).iter().skip(1))
            .map(|(&latent, hidden)| UpperSpec {
                latent,
                hidden: hidden.clone(),
            })
            .collect();
        Ok(())
    }

    /// The run these settings describe for MNIST-shaped data, validated (configs checked without data).
    pub fn resolve(&self) -> Result<RunConfig> {
        self.resolve_for(&DataFacts::mnist())
    }

    /// Checks these settings before the data is known (Python's `elbo.VAE(...)`, before `fit` brings `x`): they
    /// are refused only when they would be whatever the data, so a value that suits the user's own images is never
    /// refused for not suiting MNIST's. The data's own settings (`--data`, `--crop`, ...) are checked with it.
    pub fn check_without_data(&self) -> Result<()> {
        // Values no data could take are refused by the rule reading the data applies.
        let size = self.image_size.as_ref().map(SizeArg::hw).transpose()?;
        crate::data::images::check_options(&ImageOptions {
            size,
            crop: self.crop,
            channels: self.channels,
            skip_bad: false,
        })?;
        if let Some(f) = self.test_fraction.filter(|f| !(*f > 0.0 && *f < 1.0)) {
            return Err(Error::Config(format!(
                "--test-fraction {f} must be between 0 and 1 (exclusive)"
            )));
        }
        let s = Settings {
            data: None,
            dataset: None,
            data_dir: None,
            image_size: None,
            crop: None,
            channels: None,
            layout: None,
            label_column: None,
            test_fraction: None,
            skip_bad: None,
            ..self.clone()
        };
        let image = |height, width, channels| DataFacts {
            shape: ItemShape {
                height,
                width,
                channels,
            },
            kind: Kind::Image,
            classes: 10,
            bytes: true,
        };
        // Sides of every remainder modulo 2 to 5, so a stack of strided (transposed) convolutions that needs one
        // finds it; grey and colour.
        // Up to 1024: nine halvings of a 512-pixel photo, or five 64-pixel kernels without padding, fit none
        // smaller. A size the settings ask images to be read at is the only one tried: it applies to image files
        // alone, and they will have it.
        let sides = [28, 30, 32, 33, 40, 64, 96, 255, 256, 320, 512, 1024];
        if let Some((h, w)) = size {
            return s
                .resolve_for(&image(h, w, 1))
                .or_else(|_| s.resolve_for(&image(h, w, 3)))
                .map(|_| ());
        }
        let kinds = std::iter::once(DataFacts::mnist())
            .chain(sides.iter().flat_map(|&s| [image(s, s, 1), image(s, s, 3)]))
            .chain([DataFacts {
                shape: ItemShape {
                    height: 1,
                    width: 16,
                    channels: 1,
                },
                kind: Kind::Table,
                classes: 10,
                bytes: false,
            }]);
        let mut first = None;
        for facts in kinds {
            match s.resolve_for(&facts) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.expect("at least one kind of data was tried"))
    }

    /// The run these settings describe for data with `facts`, validated: the model takes the items' shape, and
    /// standardised tables get a Gaussian decoder with a learned per-feature σ unless told otherwise.
    pub fn resolve_for(&self, facts: &DataFacts) -> Result<RunConfig> {
        let d = TrainConfig::default();
        // A config file's integers and Python's are TOML's, which stop at 2^63 − 1: the flag stops there too, so a
        // run's seed can be written down in each of them.
        if let Some(seed) = self.seed.filter(|&s| s > i64::MAX as u64) {
            return Err(Error::Config(format!(
                "--seed {seed} is too large: seeds go from 0 to {}",
                i64::MAX
            )));
        }
        let (dataset, data) = self.source()?;
        let mut model = self.model_for(facts)?;
        let (objective, samples, groups, ciwae_beta) = self.objective_draws(&d)?;
        let schedule = self.schedule()?;
        let capacity = self.capacity_setting()?;
        let dip = self.dip_setting()?;
        let tc = self.tc_setting()?;
        let factor_vae = match self.factor_vae_setting()? {
            Some((f, widths)) => {
                model.discriminator = widths;
                Some(f)
            }
            None => None,
        };
        let epochs = self
            .epochs
            .or(schedule.natural_epochs())
            .unwrap_or(d.epochs);
        let train = TrainConfig {
            dataset,
            epochs,
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            lr: self.lr.unwrap_or(d.lr),
            adam_eps: self.adam_eps.unwrap_or(d.adam_eps),
            adam_beta1: self.adam_beta1.unwrap_or(d.adam_beta1),
            adam_beta2: self.adam_beta2.unwrap_or(d.adam_beta2),
            loss_reduction: self.loss_reduction.unwrap_or(d.loss_reduction),
            random_flip: self.random_flip.unwrap_or(d.random_flip),
            shards: self
                .shards
                .unwrap_or(crate::core::dist::size().max(d.shards)),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            seed: self.seed.unwrap_or(d.seed),
            // MIWAE and PIWAE draw K for each of their M groups.
            samples: samples.saturating_mul(groups),
            groups,
            ciwae_beta,
            beta: self.beta.unwrap_or(d.beta),
            binarize: self.binarize.unwrap_or(d.binarize),
            pseudo_init: self.pseudo_init.unwrap_or(d.pseudo_init),
            limit: self.limit,
            validation: self.validation.unwrap_or(0),
            clip_grad_norm: self.clip_grad_norm,
            objective,
            warmup_epochs: self.warmup_epochs.unwrap_or(0),
            capacity,
            free_bits: self.free_bits.unwrap_or(0.0),
            dip,
            tc,
            factor_vae,
            lr_schedule: schedule,
            data_dir: self.data_dir.clone(),
            data,
        };
        let cfg = RunConfig {
            model,
            train,
            data: Default::default(),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The model for data with `facts`: the preset or the flags' networks, latent layers, prior and flow, shaped
    /// to the items, with the likelihood that suits them.
    fn model_for(&self, facts: &DataFacts) -> Result<ModelConfig> {
        let mut model = self.arch.unwrap_or_default().config();
        model.kind = self.model.unwrap_or_default();
        if let Some(c) = &self.conv {
            model.conv = c.iter().map(|a| a.spec()).collect();
            // A custom encoder gets the mirrored decoder, not the preset's.
            model.decoder = None;
        }
        self.latent_layers(&mut model)?;
        if let Some(a) = self.activation {
            model.activation = a;
        }
        if let Some(b) = self.batch_norm {
            model.batch_norm = b;
        }
        match (self.prior, self.prior_components) {
            (Some(PriorKind::Mog), k) => {
                model.prior = PriorSpec::Mixture {
                    components: k.unwrap_or(DEFAULT_PRIOR_COMPONENTS),
                }
            }
            (Some(PriorKind::Vamp), k) => {
                model.prior = PriorSpec::Vamp {
                    components: k.unwrap_or(DEFAULT_VAMP_COMPONENTS),
                }
            }
            (Some(PriorKind::Normal), None) => model.prior = PriorSpec::Normal,
            (_, Some(_)) => {
                return Err(Error::Config(
                    "--prior-components goes with --prior=mog or --prior=vamp".into(),
                ));
            }
            (None, None) => {}
        }
        if let Some(FlowArg(flow)) = self.flow {
            model.flow = flow;
        }
        model.rows = facts.shape.height;
        model.cols = facts.shape.width;
        model.channels = facts.shape.channels;
        // A preset's own decoder ends in the data's channels, grey or colour.
        if let Some(last) = model.decoder.as_mut().and_then(|d| d.deconv.last_mut()) {
            last.channels = model.channels;
        }
        let table = facts.kind == Kind::Table;
        if table && matches!(model.prior, PriorSpec::Vamp { .. }) {
            return Err(Error::Config(format!(
                "--prior=vamp clamps its pseudo-inputs to [0, 1], the range of images and byte arrays; this data is a table of {} standardised features: use --prior=mog or --prior=normal",
                facts.shape.len()
            )));
        }
        if table && !model.conv.is_empty() {
            return Err(Error::Config(format!(
                "convolutions need images; this data is a table of {} features: use dense layers (--hidden)",
                facts.shape.len()
            )));
        }
        model.likelihood = self.likelihood_for(facts)?;
        if self.random_flip == Some(true) && facts.kind != Kind::Image {
            return Err(Error::Config(
                "--random-flip mirrors images left to right; this data is not images".into(),
            ));
        }
        if self.conditional == Some(true) {
            if facts.classes == 0 {
                return Err(Error::Config(
                "--conditional needs labelled data: class subfolders, a y array, or --label-column".into(),
            ));
            }
            model.classes = facts.classes;
        }
        Ok(model)
    }

    /// The decoder's likelihood: Bernoulli for images and byte arrays, a Gaussian with a learned per-feature σ
    /// for standardised tables, unless told otherwise (and refused where it cannot model the data).
    fn likelihood_for(&self, facts: &DataFacts) -> Result<Likelihood> {
        let table = facts.kind == Kind::Table;
        use LikelihoodKind::{Bernoulli, Gaussian, Logistic};
        let kind = match self.likelihood {
            None if table => Gaussian,
            None => Bernoulli,
            Some(k @ (Bernoulli | Logistic)) if table => {
                return Err(Error::Config(format!(
                    "--likelihood {k} models values in [0, 1]; standardised table features need gaussian"
                )));
            }
            Some(Logistic) if !facts.bytes => {
                return Err(Error::Config(
                "--likelihood logistic models 8-bit values (images or byte arrays); this data holds floats: use gaussian".into(),
            ));
            }
            Some(k) => k,
        };
        let learn = match self.learn_sigma {
            Some(mode) => mode,
            None if table => SigmaMode::Pixel,
            None if kind == Logistic => SigmaMode::Global,
            None => SigmaMode::Fixed,
        };
        let likelihood = match kind {
            Gaussian => Likelihood::Gaussian {
                sigma: self.sigma.unwrap_or(if table { 1.0 } else { 0.1 }),
                learn,
                mean: if table {
                    GaussianMean::Identity
                } else {
                    GaussianMean::Sigmoid
                },
            },
            Logistic => Likelihood::Logistic {
                scale: self.sigma.unwrap_or(0.05),
                learn,
            },
            Bernoulli => {
                let with = "--likelihood gaussian or logistic";
                only_with(self.sigma.is_some(), "--sigma", with)?;
                only_with(self.learn_sigma.is_some(), "--learn-sigma", with)?;
                Likelihood::Bernoulli
            }
        };
        if kind == Logistic && self.binarize.is_some_and(|b| b != Binarize::None) {
            return Err(Error::Config(
            "--likelihood logistic models all 256 levels; binarised pixels are 0 or 1: use --likelihood bernoulli with --binarize".into(),
        ));
        }
        Ok(likelihood)
    }

    /// The objective, its draws per group (K), its groups (M) and CIWAE's β, each checked against the others.
    fn objective_draws(&self, d: &TrainConfig) -> Result<(Estimator, usize, usize, Option<f64>)> {
        let objective = self.objective.unwrap_or_default();
        let samples = match (self.samples, self.k_train) {
            (Some(s), Some(k)) if s != k => {
                return Err(Error::Config(format!(
                    "--samples {s} and --k-train {k} set the same thing; give one"
                )));
            }
            (s, k) => s.or(k).unwrap_or(d.samples),
        };
        if samples == 0 {
            // Named as the user spelt it: `--k-train 0` is not a `--samples` they never gave.
            let name = if self.samples.is_some() {
                "samples"
            } else {
                "k-train"
            };
            return Err(Error::Config(format!("--{name} 0 must be at least 1")));
        }
        if matches!(objective, Estimator::Miwae | Estimator::Ciwae) && samples < 2 {
            return Err(Error::Config(format!(
                "--objective={objective} with one sample per bound is the ELBO: give --k-train K, 2 or more"
            )));
        }
        // PIWAE's decoder trains on the IWAE bound over all M·K draws, which needs two; its encoder's MIWAE with
        // K = 1 is the ELBO of M draws, a choice Rainforth et al. study.
        if objective == Estimator::Piwae
            && samples.saturating_mul(self.groups.unwrap_or(DEFAULT_MIWAE_GROUPS)) < 2
        {
            return Err(Error::Config(
            "--objective=piwae with one sample in all is the ELBO: give --groups M and --k-train K with M·K 2 or more".into(),
        ));
        }
        let groups = match (objective, self.groups) {
            (Estimator::Miwae | Estimator::Piwae, Some(0)) => {
                return Err(Error::Config("--groups 0 must be at least 1".into()));
            }
            (Estimator::Miwae | Estimator::Piwae, g) => g.unwrap_or(DEFAULT_MIWAE_GROUPS),
            (_, Some(_)) => {
                return Err(Error::Config(
                    "--groups goes with --objective=miwae or --objective=piwae".into(),
                ));
            }
            (_, None) => 1,
        };
        let ciwae_beta = match (objective, self.ciwae_beta) {
            (Estimator::Ciwae, b) => Some(b.unwrap_or(DEFAULT_CIWAE_BETA)),
            (_, Some(_)) => {
                return Err(Error::Config(
                    "--ciwae-beta goes with --objective=ciwae".into(),
                ));
            }
            (_, None) => None,
        };
        // IWAE with k = 1 is the ELBO: one asked for without a k is what was meant only if said (the IWAE
        // paper's k = 1 rows are `--k-train 1`).
        if objective == Estimator::Iwae && self.samples.is_none() && self.k_train.is_none() {
            return Err(Error::Config(format!(
                "--objective=iwae without --k-train would be IWAE with k = {samples}{}: give --k-train K (the IWAE paper trains with 5 or 50)",
                if samples == 1 { ", the ELBO" } else { "" }
            )));
        }
        Ok((objective, samples, groups, ciwae_beta))
    }

    /// Burgess et al.'s capacity annealing, or none (its other settings refused without it).
    fn capacity_setting(&self) -> Result<Option<Capacity>> {
        Ok(match self.capacity {
            Some(max) => Some(Capacity {
                max,
                steps: self.capacity_steps.unwrap_or(100_000),
                gamma: self.gamma.unwrap_or(1000.0),
            }),
            None => {
                only_with(
                    self.capacity_steps.is_some(),
                    "--capacity-steps",
                    "--capacity",
                )?;
                only_with(self.gamma.is_some(), "--gamma", "--capacity")?;
                None
            }
        })
    }

    /// DIP-VAE's penalty, or none.
    fn dip_setting(&self) -> Result<Option<Dip>> {
        Ok(match self.dip {
            Some(kind) => {
                let od = self.dip_lambda_od.unwrap_or(DEFAULT_DIP_LAMBDA_OD);
                Some(Dip {
                    kind,
                    lambda_od: od,
                    // disentanglement_lib's lambda_d_factor: 10 for DIP-VAE-I, 1 for -II.
                    lambda_d: self.dip_lambda_d.unwrap_or(match kind {
                        DipKind::I => 10.0 * od,
                        DipKind::Ii => od,
                    }),
                })
            }
            None => {
                only_with(self.dip_lambda_od.is_some(), "--dip-lambda-od", "--dip")?;
                only_with(self.dip_lambda_d.is_some(), "--dip-lambda-d", "--dip")?;
                None
            }
        })
    }

    /// β-TC-VAE's weights, or none.
    fn tc_setting(&self) -> Result<Option<Tc>> {
        Ok(match self.tc {
            Some(beta) => {
                if self.beta.is_some() {
                    return Err(Error::Config(
                    "--tc is beta-TC-VAE's beta, the total correlation's weight, and --beta the whole KL's: give one (--tc-alpha and --tc-gamma weigh the KL's other parts)"
                        .into(),
                ));
                }
                Some(Tc {
                    alpha: self.tc_alpha.unwrap_or(1.0),
                    beta,
                    gamma: self.tc_gamma.unwrap_or(1.0),
                    sampling: self.tc_sampling.unwrap_or(TcSampling::Mws),
                    dataset_size: 0,
                })
            }
            None => {
                only_with(self.tc_alpha.is_some(), "--tc-alpha", "--tc")?;
                only_with(self.tc_gamma.is_some(), "--tc-gamma", "--tc")?;
                only_with(self.tc_sampling.is_some(), "--tc-sampling", "--tc")?;
                None
            }
        })
    }

    /// FactorVAE's γ and learning rate with its discriminator's widths, or none.
    fn factor_vae_setting(&self) -> Result<Option<(crate::model::factor::FactorVae, Vec<usize>)>> {
        Ok(match self.factor_vae {
            Some(gamma) => {
                let widths = match &self.discriminator {
                    None => crate::model::factor::DEFAULT_HIDDEN.to_vec(),
                    Some(Flat(widths)) if widths.is_empty() => {
                        return Err(Error::Config(
                            "--discriminator needs at least one width, such as 1000,1000".into(),
                        ));
                    }
                    Some(Flat(widths)) => widths.clone(),
                };
                Some((
                    crate::model::factor::FactorVae {
                        gamma,
                        lr: self
                            .discriminator_lr
                            .unwrap_or(crate::model::factor::DEFAULT_LR),
                    },
                    widths,
                ))
            }
            None => {
                only_with(
                    self.discriminator.is_some(),
                    "--discriminator",
                    "--factor-vae",
                )?;
                only_with(
                    self.discriminator_lr.is_some(),
                    "--discriminator-lr",
                    "--factor-vae",
                )?;
                None
            }
        })
    }

    fn schedule(&self) -> Result<LrSchedule> {
        use ScheduleKind::{Constant, Cosine, Exponential, Iwae, Step};
        let kind = self.lr_schedule.unwrap_or(Constant);
        let staged = kind == Iwae;
        only_with(
            !staged && self.stages.is_some(),
            "--stages",
            "--lr-schedule iwae",
        )?;
        only_with(
            !staged && self.stage_growth.is_some(),
            "--stage-growth",
            "--lr-schedule iwae",
        )?;
        only_with(
            kind != Cosine && self.lr_min.is_some(),
            "--lr-min",
            "--lr-schedule cosine",
        )?;
        only_with(
            kind != Step && self.lr_step_every.is_some(),
            "--lr-step-every",
            "--lr-schedule step",
        )?;
        only_with(
            kind != Step && self.lr_step_gamma.is_some(),
            "--lr-step-gamma",
            "--lr-schedule step",
        )?;
        only_with(
            kind != Exponential && self.lr_gamma.is_some(),
            "--lr-gamma",
            "--lr-schedule exponential",
        )?;
        Ok(match kind {
            Constant => LrSchedule::Constant,
            Iwae => LrSchedule::Staged {
                stages: self.stages.unwrap_or(8),
                growth: self.stage_growth.unwrap_or(3.0),
            },
            Cosine => LrSchedule::Cosine {
                min_lr: self.lr_min.unwrap_or(0.0),
            },
            Step => LrSchedule::Step {
                every: self.lr_step_every.unwrap_or(10),
                gamma: self.lr_step_gamma.unwrap_or(0.1),
            },
            Exponential => LrSchedule::Exponential {
                gamma: self.lr_gamma.unwrap_or(0.95),
            },
        })
    }
}

/// serde's names of Rust types in a message (`expected usize`) in words a user of a config file or of Python
/// reads.
fn plain_types(msg: &str) -> String {
    // Not "0 or more": most whole-number settings start at 1, and their own check gives the range; but a
    // negative number is a whole number, so what is wrong with it is said.
    let whole = if msg.contains("invalid value: integer `-") {
        "expected a whole number that is not negative"
    } else {
        "expected a whole number"
    };
    msg.replace("expected usize", whole)
        .replace("expected u64", whole)
        .replace("invalid type: map", "invalid type: a table")
        .replace(
            "data did not match any variant of untagged enum SizeArg",
            "give a side (64), \"HxW\" (\"64x48\") or [height, width]",
        )
        .replace("expected f64", "expected a number")
        .replace("expected a sequence", "expected a list")
}

/// The 1-based line on which `key` (spelt with '-' or '_', bare or quoted) is set in `text`, as `key = …` or as a
/// table's header (`[key]`, `[[key]]`): where the TOML parser found it, so a multi-line string holding `key = …`
/// does not count; a line that looks like it when the parser cannot tell.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let (table, _) = toml::de::DeTable::parse_recoverable(text);
    let wanted = key.replace('_', "-");
    let found = table
        .get_ref()
        .keys()
        .find(|k| k.get_ref().replace('_', "-") == wanted)
        .map(|k| k.span().start);
    match found {
        Some(at) if at <= text.len() => Some(text[..at].matches('\n').count() + 1),
        _ => line_looking_like(text, key),
    }
}

/// [`line_of`] by looking at each line alone.
fn line_looking_like(text: &str, key: &str) -> Option<usize> {
    let spellings = [key.replace('_', "-"), key.replace('-', "_")];
    text.lines()
        .position(|line| {
            let l = line.trim_start();
            let header = l
                .split('#')
                .next()
                .unwrap_or("")
                .trim_end()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .trim()
                .trim_matches(['"', '\'']);
            // `[model]`, `[model.sub]`, `model = …` and the dotted `model.sub = …` all set `model`.
            let heads = |h: &str, k: &str| {
                h.strip_prefix(k)
                    .is_some_and(|r| r.is_empty() || r.trim_start().starts_with('.'))
            };
            l.starts_with('[') && spellings.iter().any(|k| heads(header, k))
                || spellings.iter().any(|k| {
                    [k.clone(), format!("\"{k}\""), format!("'{k}'")]
                        .iter()
                        .any(|form| {
                            l.strip_prefix(form.as_str()).is_some_and(|r| {
                                r.trim_start().starts_with('=') || r.trim_start().starts_with('.')
                            })
                        })
                })
        })
        .map(|i| i + 1)
}

/// A TOML syntax error as one line naming the file, the line and, when the line has one, the key: the parser's
/// own message for an out-of-range integer names neither.
fn toml_error(e: &toml::de::Error, text: &str, name: &str) -> Error {
    let mut msg = e.message().trim().to_string();
    if msg.contains("as i128") || msg.contains("overflow") || msg.contains("too large") {
        msg = "the number is too large".into();
    }
    let Some(span) = e.span() else {
        return Error::Config(format!("{name}: {msg}"));
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let from = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[from..].lines().next().unwrap_or("");
    let key_of = |l: &str| {
        let (k, _) = l.split_once('=')?;
        let k = k.trim().trim_matches('"').trim_matches('\'');
        (!k.is_empty() && !k.contains(['[', ']', ',', ' '])).then(|| k.to_string())
    };
    // The key set on the error's line; or, inside a multi-line list, the key above whose '[' is still open. Any
    // other line above belongs to a value that ended: naming its key would send the user to a correct line.
    // toml reads a missing value as an unquoted string ("string values must be quoted"): say what is missing.
    if line.split_once('=').is_some_and(|(k, v)| {
        !k.trim().is_empty() && v.split('#').next().unwrap_or("").trim().is_empty()
    }) {
        msg = "the value is missing after '='".into();
    }
    let key = key_of(line).or_else(|| {
        let above: Vec<&str> = text[..from].lines().collect();
        let at = above.iter().rposition(|l| key_of(l).is_some())?;
        let tail = above[at..].concat();
        (tail.matches('[').count() > tail.matches(']').count()).then(|| key_of(above[at]))?
    });
    match key {
        Some(key) => Error::Config(format!("{name}: line {line_no}, key '{key}': {msg}")),
        None => Error::Config(format!("{name}: line {line_no}: {msg}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_messages_become_keywords() {
        assert_eq!(
            as_keywords("--lr 5 is too large; --lr-schedule cosine needs --epochs"),
            "lr=5 is too large; lr_schedule cosine needs epochs"
        );
        assert_eq!(
            as_keywords("unknown --arch 'x'; --batch-norm needs 2 items; --beta -1; --foo stays"),
            "unknown arch='x'; batch_norm needs 2 items; beta=-1; --foo stays"
        );
        assert_eq!(
            as_keywords("--lr NaN, --beta inf, --lr -inf; --flow infinite; --beta info"),
            "lr=NaN, beta=inf, lr=-inf; flow infinite; beta info"
        );
    }

    #[test]
    fn flags_set_by_a_config_file_become_its_keys() {
        let file = ["--lr".to_string(), "--weight-decay".to_string()];
        assert_eq!(
            as_file_keys("--lr -1 must be a positive number", &file, "c.toml"),
            "lr = -1 must be a positive number (lr is set in c.toml)"
        );
        // Flags given on the command line stay flags, and `--lr` is not read into `--lr-min`.
        assert_eq!(
            as_file_keys(
                "--lr-min 0.5 must be between 0 and --lr 0.1",
                &file,
                "c.toml"
            ),
            "--lr-min 0.5 must be between 0 and lr = 0.1 (lr is set in c.toml)"
        );
        assert_eq!(
            as_file_keys(
                "--weight-decay 2 must be at least 0 and below 1/--lr",
                &file,
                "c.toml"
            ),
            "weight-decay = 2 must be at least 0 and below 1/lr (weight-decay, lr are set in c.toml)"
        );
        assert_eq!(
            as_file_keys("--epochs 0 must be at least 1", &file, "c.toml"),
            "--epochs 0 must be at least 1"
        );
    }

    #[test]
    fn toml_errors_name_the_line_and_key() {
        let err = |text: &str| Settings::from_toml(text, "c.toml").unwrap_err().to_string();
        assert_eq!(
            err("epochs = 3\nlatent = 99999999999999999999999\n"),
            "c.toml: line 2, key 'latent': the number is too large"
        );
        assert_eq!(
            err("hidden = [400, 99999999999999999999]\n"),
            "c.toml: line 1, key 'hidden': the number is too large"
        );
        // In range for TOML, out of range for the key: named by serde with the key.
        assert!(
            err("latent = -3\n").contains("key 'latent'"),
            "{}",
            err("latent = -3\n")
        );
        assert!(
            err("[hidden\n").starts_with("c.toml: line 1:"),
            "{}",
            err("[hidden\n")
        );
        // A broken line after a finished value is not pinned on the key above it; a line inside a list still is.
        for text in [
            "lr = 1e-3\nbatch size = 4\n",
            "lr = 1e-3\n[table\n",
            "latent = 20\nhidden = [400]\n}\n",
        ] {
            let e = err(text);
            assert!(
                e.starts_with("c.toml: line ") && !e.contains("key '"),
                "{text:?}: {e}"
            );
        }
        let e = err("lr = 1e-3\nhidden = [\n  400,\n  200 300,\n]\n");
        assert!(e.starts_with("c.toml: line 4, key 'hidden':"), "{e}");
        for cut in ["lr=1e-3\nlr =", "lr =   # later\n"] {
            let e = err(cut);
            assert!(
                e.ends_with("key 'lr': the value is missing after '='"),
                "{cut:?}: {e}"
            );
        }
    }

    /// The command line's choice of data or of draws overrides a config file's, whichever spelling each used.
    #[test]
    fn a_flag_overrides_the_files_other_spelling_of_the_same_choice() {
        let file = Settings {
            data: Some("small.npy".into()),
            k_train: Some(50),
            lr: Some(1e-3),
            ..Default::default()
        };
        let flags = Settings {
            dataset: Some("mnist".into()),
            samples: Some(5),
            ..Default::default()
        };
        let (merged, keys) = flags.over_file(file, "c.toml");
        assert_eq!(
            (
                merged.data,
                merged.dataset.as_deref(),
                merged.k_train,
                merged.samples,
                merged.lr
            ),
            (None, Some("mnist"), None, Some(5), Some(1e-3))
        );
        assert_eq!(keys.keys, ["--lr"]);
        // Both given at one level (a file, or Python's keywords) is refused, not settled silently.
        let both = Settings {
            data: Some("small.npy".into()),
            dataset: Some("mnist".into()),
            ..Default::default()
        };
        let e = both.source().unwrap_err().to_string();
        assert!(
            e.contains("--data \"small.npy\" and --dataset \"mnist\""),
            "{e}"
        );
    }

    /// An unknown key gets the nearest one whatever its case, and other tools' names for a setting get ours.
    #[test]
    fn unknown_keys_get_the_nearest_ones() {
        for (given, want) in [
            ("LR", Some("lr")),
            ("Lr", Some("lr")),
            ("learning_rate", Some("lr")),
            ("latent_dim", Some("latent")),
            ("num_epochs", Some("epochs")),
            ("bach-size", Some("batch-size")),
            ("zzzz", None),
        ] {
            assert_eq!(Settings::nearest_key(given).as_deref(), want, "{given}");
        }
    }

    /// A near key is suggested in the spelling the file uses.
    #[test]
    fn near_keys_are_suggested_as_the_file_spells_keys() {
        let e = |text: &str| Settings::from_toml(text, "c.toml").unwrap_err().to_string();
        assert!(
            e("Batch_Size = 4\n").ends_with("did you mean 'batch_size'?"),
            "{}",
            e("Batch_Size = 4\n")
        );
        assert!(e("bach-size = 4\n").ends_with("did you mean 'batch-size'?"));
    }

    /// An empty path is refused with the key as the user spelt it, not left to the file system's "": No such file.
    #[test]
    fn empty_paths_are_refused_by_their_keys() {
        for text in ["out = \"\"\n", "data = \" \"\n", "data_dir = \"\"\n"] {
            let e = Settings::from_toml(text, "c.toml").unwrap_err().to_string();
            let key = text.split(' ').next().unwrap();
            assert_eq!(
                e,
                format!("c.toml, line 1: '{key}' is empty; give a path or leave the key out")
            );
        }
    }

    /// A draw count of 0 is named as the setting the user gave, not as its other spelling.
    #[test]
    fn zero_draws_are_named_as_given() {
        let d = TrainConfig::default();
        for (settings, name) in [
            (
                Settings {
                    k_train: Some(0),
                    ..Default::default()
                },
                "--k-train 0",
            ),
            (
                Settings {
                    samples: Some(0),
                    ..Default::default()
                },
                "--samples 0",
            ),
        ] {
            let e = settings.objective_draws(&d).unwrap_err().to_string();
            assert!(e.starts_with(name), "{e}");
        }
    }

    /// A negative whole number is told that it is negative, not that a whole number was expected.
    #[test]
    fn a_negative_count_is_named_negative() {
        let e = Settings::default()
            .over_config("epochs = -1\n", "c.toml")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("expected a whole number that is not negative"),
            "{e}"
        );
        let e = Settings::default()
            .over_config("epochs = 1.5\n", "c.toml")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("not negative"), "{e}");
    }

    /// `--objective iwae` alone would be IWAE with k = 1, the ELBO: refused, as for MIWAE and CIWAE; k = 1 said
    /// outright (the IWAE paper's k = 1 rows) is what was asked.
    #[test]
    fn iwae_without_a_k_is_refused() {
        let d = TrainConfig::default();
        let iwae = |k_train| Settings {
            objective: Some(Estimator::Iwae),
            k_train,
            ..Default::default()
        };
        let e = iwae(None).objective_draws(&d).unwrap_err().to_string();
        assert!(
            e.contains("IWAE with k = 1, the ELBO: give --k-train K"),
            "{e}"
        );
        assert_eq!(iwae(Some(1)).objective_draws(&d).unwrap().1, 1);
        assert_eq!(iwae(Some(5)).objective_draws(&d).unwrap().1, 5);
    }
    /// Errors about a file's settings spell them as the file did, and name only the settings that were given.
    #[test]
    fn a_files_keys_are_named_as_the_file_spells_them() {
        // A convolution the model cannot have names the file's key too.
        for text in [
            "conv = \"0\"\n",
            "conv = [\"8:4:2:1\", \"8:4:2:1\", \"8:4:2:1\", \"8:4:2:1\", \"8:4:2:1\", \"8:4:2:1\"]\n",
        ] {
            let (s, keys) = Settings::default().over_config(text, "c.toml").unwrap();
            let e = keys.rename(s.resolve().unwrap_err()).to_string();
            assert!(
                e.starts_with("conv: convolution ") && e.ends_with("(conv is set in c.toml)"),
                "{e}"
            );
        }
        let flags = Settings {
            lr: Some(1e-3),
            ..Default::default()
        };
        let (s, keys) = flags
            .over_config("batch_size = 0\nchannels = 3\n", "c.toml")
            .unwrap();
        let e = keys.rename(s.resolve().unwrap_err()).to_string();
        assert_eq!(
            e,
            "channels applies to your own data (--data PATH) only (channels is set in c.toml)"
        );
        let s = Settings {
            channels: None,
            ..s
        };
        let e = keys.rename(s.resolve().unwrap_err()).to_string();
        assert_eq!(
            e,
            "batch_size = 0 must be between 1 and 65536 (batch_size is set in c.toml)"
        );
        let e = Settings::from_toml("learn_sigma = \"bogus\"\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml, line 1, key 'learn_sigma': "), "{e}");
        // A default or derived setting the user did not give is not named beside the one they did.
        for (s, want) in [
            (
                Settings {
                    lr_step_every: Some(3),
                    ..Default::default()
                },
                "--lr-step-every applies to --lr-schedule step only",
            ),
            (
                Settings {
                    lr_schedule: Some(ScheduleKind::Step),
                    lr_step_every: Some(0),
                    ..Default::default()
                },
                "--lr-step-every 0 must be at least 1",
            ),
            (
                Settings {
                    dip: Some(DipKind::Ii),
                    dip_lambda_od: Some(-3.0),
                    ..Default::default()
                },
                "--dip-lambda-od -3 must be finite and at least 0",
            ),
        ] {
            assert_eq!(s.resolve().unwrap_err().to_string(), want);
        }
        let two = Settings {
            crop: Some(3),
            layout: Some(Layout::Nchw),
            ..Default::default()
        };
        assert_eq!(
            two.resolve().unwrap_err().to_string(),
            "--crop and --layout apply to your own data (--data PATH) only"
        );
    }

    /// No hidden layer is `none` on the command line, as `[]` in a file; an empty group is still refused.
    #[test]
    fn no_hidden_layer_is_said_in_words() {
        let none: Widths = "none".parse().unwrap();
        let file = Settings::from_toml("hidden = []\n", "c.toml").unwrap();
        assert_eq!(Some(none), file.hidden);
        for empty in ["", "64/", "/"] {
            assert!(empty.parse::<Widths>().is_err(), "{empty:?}");
        }
    }

    /// An image size is a side, "HxW" or [height, width] (Keras's and torchvision's tuples); anything else is
    /// named in those words, not serde's.
    #[test]
    fn image_sizes_take_the_forms_other_tools_use() {
        let s = Settings::from_toml("image-size = [16, 12]\n", "c.toml").unwrap();
        assert_eq!(s.image_size.unwrap().hw().unwrap(), (16, 12));
        let e = Settings::from_toml("image_size = true\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "c.toml, line 1, key 'image_size': give a side (64), \"HxW\" (\"64x48\") or [height, width]"
        );
    }

    /// Before the data is known, a value wrong for any data is refused, and one that only MNIST's shape could not
    /// take is not: every preset passes, since each suits some data.
    #[test]
    fn settings_are_checked_before_the_data_when_no_data_could_take_them() {
        for (text, wrong) in [
            ("lr = -1", Some("--lr")),
            ("batch-size = 0", Some("--batch-size")),
            ("latent = 0", Some("--latent")),
            ("lr = 1e-4\nbeta = 2", None),
            ("image-size = \"64x\"", Some("--image-size")),
            ("image-size = 0", Some("--image-size")),
            ("crop = 0", Some("--crop")),
            ("channels = 2", Some("--channels")),
            ("test-fraction = 1.5", Some("--test-fraction")),
            (
                "image-size = 512\nchannels = 3\ncrop = 400\ntest-fraction = 0.2",
                None,
            ),
            // Six halvings leave nothing of the 16-pixel images asked for, whatever other data could take.
            (
                "image-size = 16\nconv = \"8:4:2:1,8:4:2:1,8:4:2:1,8:4:2:1,8:4:2:1,8:4:2:1\"",
                Some("--conv"),
            ),
        ] {
            let s = Settings::from_toml(text, "c.toml").unwrap();
            match (s.check_without_data(), wrong) {
                (Ok(()), None) => {}
                (Err(e), Some(flag)) => assert!(e.to_string().contains(flag), "{text}: {e}"),
                (got, _) => panic!("{text}: {got:?}"),
            }
        }
        // Seven stride-2 convolutions leave nothing of a 28×28 image, but suit a 256×256 photo.
        let s = Settings::from_toml(
            "conv = [\"16:4:2:1\", \"16:4:2:1\", \"16:4:2:1\", \"16:4:2:1\", \"16:4:2:1\", \"16:4:2:1\", \"16:4:2:1\"]",
            "c.toml",
        )
        .unwrap();
        assert!(s.resolve().is_err());
        s.check_without_data().unwrap();
        // Nine suit a 512-pixel photo; five 64-pixel kernels without padding a 320-pixel one.
        for conv in ["\"8:4:2:1\", ".repeat(9), "\"8:64:1:0\", ".repeat(5)] {
            let s = Settings::from_toml(&format!("conv = [{conv}]"), "c.toml").unwrap();
            s.check_without_data()
                .unwrap_or_else(|e| panic!("{conv}: {e}"));
        }
        let mut presets = 0;
        for entry in std::fs::read_dir("configs").unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let name = path.display().to_string();
                let s = Settings::from_toml(&text, &name).unwrap();
                s.check_without_data()
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                presets += 1;
            }
        }
        assert!(presets > 10, "{presets} presets found");
    }

    /// A choice changed over a file drops the file's settings that belonged to the old choice, and says so; the
    /// same pair given together is still refused.
    #[test]
    fn a_changed_choice_leaves_out_the_files_settings_for_the_old_one() {
        let file = "prior = \"vamp\"\nprior-components = 500\nlr-schedule = \"exponential\"\nlr-gamma = 0.95\n\
                    likelihood = \"gaussian\"\nsigma = 0.1\nobjective = \"miwae\"\ngroups = 2\nk-train = 4\n";
        let flags = Settings {
            prior: Some(PriorKind::Normal),
            lr_schedule: Some(ScheduleKind::Cosine),
            likelihood: Some(LikelihoodKind::Bernoulli),
            objective: Some(Estimator::Iwae),
            ..Default::default()
        };
        let ((s, keys), notes) =
            crate::notes::capture(|| flags.over_config(file, "c.toml").unwrap());
        let cfg = s.resolve().map_err(|e| keys.rename(e)).unwrap();
        assert_eq!(cfg.model.prior, PriorSpec::Normal);
        for key in ["prior-components", "lr-gamma", "sigma", "groups"] {
            assert!(
                notes.iter().any(|n| n.starts_with(&format!(
                    "elbo: {key} from c.toml is left out: it goes with"
                ))),
                "{key}: {notes:?}"
            );
        }
        assert_eq!(notes.len(), 4, "{notes:?}");
        // Kept where the new choice takes them: a mixture prior has components too.
        let flags = Settings {
            prior: Some(PriorKind::Mog),
            ..Default::default()
        };
        let (s, _) = flags
            .over_config("prior = \"vamp\"\nprior-components = 7\n", "c.toml")
            .unwrap();
        assert_eq!(s.prior_components, Some(7));
        // The ELBO over an IWAE preset keeps its draws per image, a model of its own, and says so.
        let flags = Settings {
            objective: Some(Estimator::Elbo),
            ..Default::default()
        };
        let ((s, _), notes) = crate::notes::capture(|| {
            flags
                .over_config("objective = \"iwae\"\nk-train = 50\n", "c.toml")
                .unwrap()
        });
        assert_eq!(s.k_train, Some(50));
        assert_eq!(
            notes,
            [
                "elbo: k-train = 50 from c.toml is kept: with objective elbo it averages the ELBO over 50 draws per image (give --k-train 1 for one)"
            ]
        );
        let flags = Settings {
            objective: Some(Estimator::Miwae),
            ..Default::default()
        };
        let (_, notes) = crate::notes::capture(|| {
            flags
                .over_config("objective = \"iwae\"\nk-train = 50\n", "c.toml")
                .unwrap()
        });
        assert_eq!(
            notes,
            [
                "elbo: k-train = 50 from c.toml is kept: with objective miwae it is the draws in each of 4 groups, 200 per image"
            ]
        );
        // Both on the command line: refused, as before.
        let both = Settings {
            prior: Some(PriorKind::Normal),
            prior_components: Some(5),
            ..Default::default()
        };
        assert!(
            both.resolve()
                .unwrap_err()
                .to_string()
                .contains("--prior-components goes with")
        );
    }

    /// A bad value under a table's header is pinned to the header's line; a seed no config file could hold is
    /// refused on the command line too.
    #[test]
    fn tables_have_lines_and_seeds_one_range() {
        let e = Settings::from_toml("lr = 1e-3\n\n[model]\nlatent = 3\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "c.toml, line 3, key 'model': invalid type: a table, expected a string"
        );
        // One convolution as a number, as one hidden width is.
        assert_eq!(
            Settings::from_toml("conv = 32", "c.toml").unwrap().conv,
            Settings::from_toml("conv = [32]", "c.toml").unwrap().conv
        );
        // A list of convolutions as one string, as on the command line.
        let s = Settings::from_toml("conv = \"32, 64:4:2:1\"", "c.toml").unwrap();
        assert_eq!(
            s.conv,
            Settings::from_toml("conv = [32, \"64:4:2:1\"]", "c.toml")
                .unwrap()
                .conv
        );
        let e = Settings::from_toml("conv = \"32,x\"", "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'x' is not CHANNELS"), "{e}");
        // A sub-table and a dotted key set their top key too, on their own line.
        for text in [
            "lr = 1e-3\n\n[model.sub]\nlatent = 3\n",
            "lr = 1e-3\n\nmodel.latent = 3\n",
            "lr = 1e-3\n\n\"model\" . latent = 3\n",
        ] {
            let e = Settings::from_toml(text, "c.toml").unwrap_err().to_string();
            assert!(
                e.starts_with("c.toml, line 3, key 'model': "),
                "{text:?}: {e}"
            );
        }
        // A key that only starts like another (`lr-min` after `lr`) is not mistaken for it.
        assert_eq!(line_of("lr_min = 1\nlr = 2\n", "lr"), Some(2));
        // A multi-line string that holds `lr = …` is not where lr is set.
        let text = "notes = \"\"\"\nlr = 5 was too much\n\"\"\"\nlr = -1\n";
        assert_eq!(line_of(text, "lr"), Some(4));
        assert_eq!(
            line_of("[model]\nlatent = 2\n\"batch_size\" = 3\n", "batch-size"),
            Some(3)
        );
        assert_eq!(line_of("model.latent = 2\n", "model"), Some(1));
        let e = Settings::from_toml("seed = 18446744073709551615\n", "c.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "c.toml: line 1, key 'seed': the number is too large");
        for (seed, ok) in [(i64::MAX as u64, true), (i64::MAX as u64 + 1, false)] {
            let s = Settings {
                seed: Some(seed),
                ..Default::default()
            };
            assert_eq!(s.resolve().is_ok(), ok, "{seed}");
        }
    }
}
