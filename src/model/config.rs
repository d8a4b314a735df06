//! The serde description of a model: saved with its weights so every command can rebuild it.

use super::flow::Flow;
pub use super::flow::FlowSpec;
use super::net::{Cond, Layer, Net};
use super::prior::Mixture;
use super::stack::{Stack, Upper};
use super::vamp::Vamp;
use crate::core::batchnorm::BatchNorm;
use crate::core::conv::{Conv2d, ConvTranspose2d, Shape, conv_out};
use crate::core::params::{Counter, Registry};
use crate::core::{Activation, Linear};
use crate::error::{Error, Result};

crate::choice! {
    /// How the Gaussian decoder's standard deviation is set.
    #[derive(Default)]
    pub enum SigmaMode {
        /// Fixed at `sigma`.
        #[default]
        Fixed = "fixed",
        /// One learned σ shared by all pixels, starting at `sigma`.
        Global = "global",
        /// One learned σ per pixel, starting at `sigma`.
        Pixel = "pixel",
    }
}

impl SigmaMode {
    /// Learned values for items of `d` values: none, one, or one per value.
    pub fn len(self, d: usize) -> usize {
        match self {
            SigmaMode::Fixed => 0,
            SigmaMode::Global => 1,
            SigmaMode::Pixel => d,
        }
    }
}

pub use crate::core::ops::MIN_SIGMA;

/// The mean of the Gaussian decoder as a function of the network's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GaussianMean {
    /// σ(output): intensities in [0, 1].
    #[default]
    Sigmoid,
    /// The output itself: standardised features on the whole real line.
    Identity,
}

/// The decoder's distribution over pixels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Likelihood {
    /// Independent Bernoulli pixels with logits from the decoder.
    Bernoulli,
    /// Independent Gaussian pixels with mean σ(decoder output) and standard deviation `sigma`.
    Gaussian {
        /// The standard deviation (the starting value when learned).
        sigma: f64,
        /// Fixed, or learned globally or per pixel.
        #[serde(default)]
        learn: SigmaMode,
        /// σ(output) for images, the output itself for standardised features.
        #[serde(default)]
        mean: GaussianMean,
    },
    /// The discretised logistic over the 256 levels of 8-bit values (PixelCNN++, IAF): the decoder output is the
    /// mean on the [0, 1] scale, with a learned scale.
    Logistic {
        /// The scale on the [0, 1] scale (the starting value when learned).
        scale: f64,
        /// Fixed, or learned globally or per value.
        #[serde(default = "global")]
        learn: SigmaMode,
    },
}

fn global() -> SigmaMode {
    SigmaMode::Global
}

crate::choice! {
    /// A preset architecture, the starting point that other model settings change.
    #[derive(Default)]
    pub enum Arch {
        /// PyTorch's example: 784-400-20 with ReLU.
        #[default]
        Mlp = "mlp",
        /// Keras's convolutional VAE example.
        KerasConv = "keras-conv",
        /// PyTorch-VAE's VanillaVAE.
        PytorchVae = "pytorch-vae",
    }
}

impl Arch {
    /// The preset's model.
    pub fn config(self) -> ModelConfig {
        match self {
            Arch::Mlp => ModelConfig::pytorch_example(),
            Arch::KerasConv => ModelConfig::keras_conv(),
            Arch::PytorchVae => ModelConfig::pytorch_vae(),
        }
    }
}

crate::choice! {
    /// Whether the model is variational.
    #[derive(Default)]
    pub enum ModelKind {
        /// A VAE: Gaussian q(z|x), N(0, I) prior.
        #[default]
        Vae = "vae",
        /// A deterministic autoencoder: z = encoder(x), no prior, reconstruction loss only.
        Autoencoder = "autoencoder" | "ae",
    }
}

/// One convolution: output channels, square kernel, stride and zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    /// Output channels.
    pub channels: usize,
    /// Kernel side.
    #[serde(default = "three")]
    pub kernel: usize,
    /// Stride.
    #[serde(default = "two")]
    pub stride: usize,
    /// Zero padding per side.
    #[serde(default = "one")]
    pub padding: usize,
}

fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn three() -> usize {
    3
}

impl ConvSpec {
    /// A 3×3, stride-2, padding-1 convolution (halves the image side).
    pub fn halving(channels: usize) -> Self {
        ConvSpec {
            channels,
            kernel: 3,
            stride: 2,
            padding: 1,
        }
    }

    fn geometry(&self) -> (usize, usize, usize) {
        (self.kernel, self.stride, self.padding)
    }
}

/// A decoder that does not mirror the encoder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderSpec {
    /// Dense widths after the latent code.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Transposed convolutions after them (the last must have the image's channels).
    #[serde(default)]
    pub deconv: Vec<ConvSpec>,
    /// No activation (and no batch norm) after the dense projection onto the first transposed convolution's
    /// input, as PyTorch-VAE's `decoder_input`.
    #[serde(default)]
    pub linear_projection: bool,
}

/// Architecture of a VAE or autoencoder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// VAE or deterministic autoencoder.
    #[serde(default)]
    pub kind: ModelKind,
    /// Image height (1 for feature vectors).
    pub rows: usize,
    /// Image width (the number of features for vectors).
    pub cols: usize,
    /// Colour channels of the image (NHWC).
    #[serde(default = "one")]
    pub channels: usize,
    /// Encoder convolutions applied to the image first.
    #[serde(default)]
    pub conv: Vec<ConvSpec>,
    /// Encoder dense widths after the convolutions.
    pub hidden: Vec<usize>,
    /// Latent dimension.
    pub latent: usize,
    /// The decoder; `None` mirrors the encoder.
    #[serde(default)]
    pub decoder: Option<DecoderSpec>,
    /// Hidden-layer nonlinearity.
    pub activation: Activation,
    /// Pixel distribution.
    pub likelihood: Likelihood,
    /// Classes of the one-hot label both networks are conditioned on (0: unconditional).
    #[serde(default)]
    pub classes: usize,
    /// Batch norm between every hidden layer and its activation (not after a network's last layer).
    #[serde(default)]
    pub batch_norm: bool,
    /// The prior over z (absent from the configs of runs with N(0, I), as before it could be chosen).
    #[serde(default, skip_serializing_if = "PriorSpec::is_standard_normal")]
    pub prior: PriorSpec,
    /// Latent layers above the first (`latent`), bottom to top; empty for one stochastic layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upper: Vec<UpperSpec>,
    /// A flow the posterior's draws go through before the decoder reads them (none: a diagonal Gaussian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowSpec>,
    /// FactorVAE's discriminator's hidden widths (empty: no discriminator). Its weights are the model's last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discriminator: Vec<usize>,
}

/// A latent layer above the first: its dimension and the hidden widths of q(z_l | z_{l−1}); the generative
/// network p(z_{l−1} | z_l) mirrors them (the IWAE paper's two-layer model: 100 then 50, widths 200,200 then
/// 100,100).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpperSpec {
    /// The layer's dimension.
    pub latent: usize,
    /// Hidden widths of its inference network.
    pub hidden: Vec<usize>,
}

/// Which prior a model measures its codes against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PriorSpec {
    /// N(0, I).
    #[default]
    Normal,
    /// A learned mixture of `components` diagonal Gaussians.
    Mixture {
        /// The number of components.
        components: usize,
    },
    /// The VampPrior: the posteriors of `components` learned pseudo-inputs, equally weighted.
    Vamp {
        /// The number of pseudo-inputs.
        components: usize,
    },
}

impl PriorSpec {
    /// Whether this is N(0, I).
    pub fn is_standard_normal(&self) -> bool {
        *self == PriorSpec::Normal
    }

    /// The setting's name for this prior (`--prior=NAME`).
    pub fn name(&self) -> &'static str {
        match self {
            PriorSpec::Normal => "normal",
            PriorSpec::Mixture { .. } => "mog",
            PriorSpec::Vamp { .. } => "vamp",
        }
    }
}

/// Most components a mixture prior may have.
pub const MAX_COMPONENTS: usize = 4096;

/// Most layers a model may have: far beyond any useful VAE, and a bound on what a config can make elbo build.
pub const MAX_LAYERS: usize = 64;

/// Most weights a model may have (1 GiB of f32), so that a config or checkpoint cannot ask for unbounded memory.
pub const MAX_PARAMS: u128 = 1 << 28;

/// The encoder, decoder and learned log σ of a model, with their tensors registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Architecture {
    /// Image (plus nothing) to (μ, log σ²), or to z for an autoencoder.
    pub encoder: Net,
    /// z to pixel parameters.
    pub decoder: Net,
    /// Offset and length of the learned log σ, if any.
    pub log_sigma: Option<(usize, usize)>,
    /// A learned mixture prior's weights, if the model has one.
    pub prior: Option<Mixture>,
    /// A VampPrior's pseudo-inputs, if the model has one.
    pub vamp: Option<Vamp>,
    /// The latent layers above the first, if any.
    pub stack: Option<Stack>,
    /// The posterior's flow, if any.
    pub flow: Option<Flow>,
    /// FactorVAE's discriminator, if any.
    pub discriminator: Option<super::factor::Discriminator>,
}

impl Architecture {
    /// Scalars a model workspace for `rows` images and `samples` draws of a `latent`-dimensional code holds.
    pub fn workspace_len(&self, latent: usize, rows: usize, samples: usize) -> u128 {
        let (r, rs, z) = (rows as u128, rows as u128 * samples as u128, latent as u128);
        self.encoder.buffer_len(rows)
            + self.decoder.buffer_len(rows.saturating_mul(samples))
            + rs * (3 * z + 4)
            + r * (1 + 2 * z)
            + self.vamp.map_or(0, |v| v.buffer_len(&self.encoder, 0))
            + self.stack.as_ref().map_or(0, |s| {
                s.buffer_len(rows.saturating_mul(samples)) + rs * (z + s.noise() as u128)
            })
            + self
                .flow
                .as_ref()
                .map_or(0, |f| f.buffer_len(rows.saturating_mul(samples)))
            + self
                .discriminator
                .as_ref()
                .map_or(0, |d| d.buffer_len(rows.saturating_mul(samples), latent))
    }

    /// The dimension of the codes users see: the top latent layer's.
    pub fn code_dim(&self, latent: usize) -> usize {
        self.stack.as_ref().map_or(latent, Stack::top)
    }
}

/// Batch norm after every layer of `net` that an activation other than the identity follows.
fn add_norms(reg: &mut impl Registry, name: &str, net: &mut Net) {
    for (i, layer) in net.layers.iter().enumerate() {
        if net.acts[i] == Activation::Identity {
            continue;
        }
        let channels = match layer {
            Layer::Dense(l) => l.fan_out,
            Layer::Conv(c) => c.out.c,
            Layer::Deconv(c) => c.geo.big.c,
        };
        net.norms[i] = Some(BatchNorm::new(reg, &format!("{name}.norm{i}"), channels));
    }
}

impl ModelConfig {
    /// Scalars of the training workspace for batches of `rows` images with `samples` draws, without allocating.
    pub fn workspace_len(&self, rows: usize, samples: usize) -> Result<u128> {
        Ok(self
            .build(&mut Counter::default())?
            .workspace_len(self.latent, rows, samples))
    }

    /// The PyTorch example: 784-400-20, ReLU, Bernoulli.
    pub fn pytorch_example() -> Self {
        ModelConfig {
            kind: ModelKind::Vae,
            rows: 28,
            cols: 28,
            channels: 1,
            conv: Vec::new(),
            hidden: vec![400],
            latent: 20,
            decoder: None,
            activation: Activation::Relu,
            likelihood: Likelihood::Bernoulli,
            classes: 0,
            batch_norm: false,
            prior: PriorSpec::Normal,
            upper: Vec::new(),
            flow: None,
            discriminator: Vec::new(),
        }
    }

    /// The Keras example's convolutional VAE: Conv 32 and 64 (3×3, stride 2), Dense 16, a 2-D latent; the
    /// decoder is Dense 7·7·64, ConvTranspose 64 and 32 (stride 2), and a 1-channel ConvTranspose (stride 1).
    pub fn keras_conv() -> Self {
        ModelConfig {
            conv: vec![ConvSpec::halving(32), ConvSpec::halving(64)],
            hidden: vec![16],
            latent: 2,
            decoder: Some(DecoderSpec {
                hidden: Vec::new(),
                deconv: vec![
                    ConvSpec::halving(64),
                    ConvSpec::halving(32),
                    ConvSpec {
                        stride: 1,
                        ..ConvSpec::halving(1)
                    },
                ],
                linear_projection: false,
            }),
            ..Self::pytorch_example()
        }
    }

    /// PyTorch-VAE's VanillaVAE (github.com/AntixK/PyTorch-VAE, `models/vanilla_vae.py`) for 64×64 colour
    /// images: Conv 32-64-128-256-512 (3×3, stride 2) each with batch norm and LeakyReLU, a 128-D latent; the
    /// decoder projects linearly onto 2×2×512, then ConvTranspose 256-128-64-32 and 32 (stride 2, batch norm,
    /// LeakyReLU) and a final 3×3 layer onto the image's channels.
    pub fn pytorch_vae() -> Self {
        let halving = |c: usize| ConvSpec::halving(c);
        ModelConfig {
            rows: 64,
            cols: 64,
            channels: 3,
            conv: [32, 64, 128, 256, 512].map(halving).to_vec(),
            hidden: Vec::new(),
            latent: 128,
            decoder: Some(DecoderSpec {
                hidden: Vec::new(),
                deconv: vec![
                    halving(256),
                    halving(128),
                    halving(64),
                    halving(32),
                    halving(32),
                    ConvSpec {
                        stride: 1,
                        ..halving(3)
                    },
                ],
                linear_projection: true,
            }),
            activation: Activation::LeakyRelu,
            batch_norm: true,
            ..Self::pytorch_example()
        }
    }

    /// The shape of the items the model reads and writes.
    pub fn item_shape(&self) -> crate::data::ItemShape {
        crate::data::ItemShape {
            height: self.rows,
            width: self.cols,
            channels: self.channels,
        }
    }

    /// Values per item (pixels times channels).
    pub fn input_dim(&self) -> usize {
        self.rows * self.cols * self.channels
    }

    /// Whether the model is a VAE (has a prior to sample from and a KL term).
    pub fn is_variational(&self) -> bool {
        self.kind == ModelKind::Vae
    }

    /// Whether the networks take a class label.
    pub fn is_conditional(&self) -> bool {
        self.classes > 0
    }

    /// The decoder: as configured, or the encoder mirrored.
    pub fn decoder_spec(&self) -> DecoderSpec {
        if let Some(d) = &self.decoder {
            return d.clone();
        }
        let n = self.conv.len();
        let deconv = (0..n)
            .rev()
            .map(|i| ConvSpec {
                channels: if i == 0 {
                    self.channels
                } else {
                    self.conv[i - 1].channels
                },
                ..self.conv[i]
            })
            .collect();
        DecoderSpec {
            hidden: self.hidden.iter().rev().copied().collect(),
            deconv,
            linear_projection: false,
        }
    }

    /// Registers every tensor with `reg` and returns the networks; refuses shapes that do not fit. The order of
    /// registration is the order of the weights in checkpoints: encoder, decoder, the likelihood's scale, the
    /// prior's, upper latent layers, the flow, the discriminator.
    pub fn build(&self, reg: &mut impl Registry) -> Result<Architecture> {
        let encoder = self.build_encoder(reg)?;
        let decoder = self.build_decoder(reg)?;
        let (name, len) = match self.likelihood {
            Likelihood::Gaussian { learn, .. } => {
                ("decoder.log_sigma", learn.len(self.input_dim()))
            }
            Likelihood::Logistic { learn, .. } => {
                ("decoder.log_scale", learn.len(self.input_dim()))
            }
            Likelihood::Bernoulli => ("", 0),
        };
        let log_sigma = (len > 0).then(|| (reg.register(name, &[len]), len));
        // Registered last, so the offsets of every other weight are those of a model with N(0, I).
        let vamp = match self.prior {
            PriorSpec::Vamp { components } => {
                let d = self.input_dim();
                let at = reg.register("prior.pseudo_inputs", &[components, d]);
                Some(Vamp::new(at, components, d, self.latent))
            }
            _ => None,
        };
        let prior = match self.prior {
            PriorSpec::Normal | PriorSpec::Vamp { .. } => None,
            PriorSpec::Mixture { components } => {
                let (k, d) = (components, self.latent);
                Some(Mixture {
                    dim: d,
                    components: k,
                    means: reg.register("prior.means", &[k, d]),
                    logvars: reg.register("prior.logvars", &[k, d]),
                    logits: reg.register("prior.logits", &[k]),
                })
            }
        };
        let stack = (!self.upper.is_empty()).then(|| self.build_stack(reg));
        let flow = self
            .flow
            .map(|spec| Flow::new(reg, spec, self.latent, self.activation));
        // Registered last of all: the VAE's optimiser stops where its weights start.
        let discriminator = (!self.discriminator.is_empty())
            .then(|| super::factor::Discriminator::new(reg, self.latent, &self.discriminator));
        Ok(Architecture {
            encoder,
            decoder,
            log_sigma,
            prior,
            vamp,
            stack,
            flow,
            discriminator,
        })
    }

    /// The encoder: convolutions, then dense layers, then the head (means and log-variances, or codes).
    fn build_encoder(&self, reg: &mut impl Registry) -> Result<Net> {
        let bad = |m: String| Error::Config(m);
        let act = self.activation;
        let mut layers = Vec::new();
        let mut shape = Shape {
            h: self.rows,
            w: self.cols,
            c: self.channels,
        };
        for (i, c) in self.conv.iter().enumerate() {
            let conv = Conv2d::new(reg, &format!("encoder.conv{i}"), shape, c.channels, c.geometry())
                .ok_or_else(|| {
                    bad(format!(
                        "--conv: convolution {} (kernel {}, stride {}, padding {}) does not fit a {}x{} input: use smaller or fewer convolutions",
                        i + 1,
                        c.kernel,
                        c.stride,
                        c.padding,
                        shape.h,
                        shape.w
                    ))
                })?;
            shape = conv.out;
            layers.push(Layer::Conv(conv));
        }
        let first_dense = layers.len();
        let mut width = shape.len();
        for (i, &h) in self.hidden.iter().enumerate() {
            layers.push(Layer::Dense(Linear::new(
                reg,
                &format!("encoder.{i}"),
                width,
                h,
            )));
            width = h;
        }
        let head = if self.is_variational() {
            2 * self.latent
        } else {
            self.latent
        };
        layers.push(Layer::Dense(Linear::new(reg, "encoder.head", width, head)));
        let cond = self.is_conditional().then(|| {
            let w = layers[first_dense].out_len();
            Cond::new(reg, "encoder.cond", first_dense, self.classes, w)
        });
        let mut encoder = Net::plain(layers, act, cond);
        if self.batch_norm {
            add_norms(reg, "encoder", &mut encoder);
        }
        Ok(encoder)
    }

    /// The decoder: dense layers, then a projection onto the first transposed convolution's input and those
    /// convolutions, or straight onto the items.
    fn build_decoder(&self, reg: &mut impl Registry) -> Result<Net> {
        let bad = |m: String| Error::Config(m);
        let spec = self.decoder_spec();
        let mut shapes = vec![Shape {
            h: self.rows,
            w: self.cols,
            c: self.channels,
        }];
        if let Some(last) = spec.deconv.last()
            && last.channels != self.channels
        {
            return Err(bad(format!(
                "the last transposed convolution has {} channels; it must have {} (the image's)",
                last.channels, self.channels
            )));
        }
        for (i, c) in spec.deconv.iter().enumerate().rev() {
            let out = shapes[0];
            let into = |n: usize| conv_out(n, c.kernel, c.stride, c.padding).filter(|&v| v > 0);
            let channels = if i == 0 {
                self.conv.last().map(|c| c.channels).ok_or_else(|| {
                    bad("a transposed-convolution decoder needs a convolutional encoder (its last channel count starts the decoder)".into())
                })?
            } else {
                spec.deconv[i - 1].channels
            };
            let (Some(h), Some(w)) = (into(out.h), into(out.w)) else {
                return Err(bad(format!(
                    "transposed convolution {} cannot produce a {}x{} image",
                    i + 1,
                    out.h,
                    out.w
                )));
            };
            shapes.insert(0, Shape { h, w, c: channels });
        }
        let mut layers = Vec::new();
        let mut width = self.latent;
        for (i, &h) in spec.hidden.iter().enumerate() {
            layers.push(Layer::Dense(Linear::new(
                reg,
                &format!("decoder.{i}"),
                width,
                h,
            )));
            width = h;
        }
        if spec.deconv.is_empty() {
            layers.push(Layer::Dense(Linear::new(
                reg,
                "decoder.out",
                width,
                self.input_dim(),
            )));
        } else {
            layers.push(Layer::Dense(Linear::new(
                reg,
                "decoder.project",
                width,
                shapes[0].len(),
            )));
            for (i, c) in spec.deconv.iter().enumerate() {
                let t = ConvTranspose2d::new(
                    reg,
                    &format!("decoder.deconv{i}"),
                    shapes[i],
                    shapes[i + 1],
                    c.geometry(),
                )
                .ok_or_else(|| {
                    bad(format!(
                        "transposed convolution {} cannot map {}x{} onto {}x{}",
                        i + 1,
                        shapes[i].h,
                        shapes[i].w,
                        shapes[i + 1].h,
                        shapes[i + 1].w
                    ))
                })?;
                layers.push(Layer::Deconv(t));
            }
        }
        let cond = self.is_conditional().then(|| {
            let w = layers[0].out_len();
            Cond::new(reg, "decoder.cond", 0, self.classes, w)
        });
        let mut decoder = Net::plain(layers, self.activation, cond);
        let project = spec.hidden.len();
        if spec.linear_projection && !spec.deconv.is_empty() {
            decoder.acts[project] = Activation::Identity;
        }
        if self.batch_norm {
            add_norms(reg, "decoder", &mut decoder);
        }
        Ok(decoder)
    }

    /// The layers above the first, registered after every other weight (so a one-layer model's offsets stay).
    fn build_stack(&self, reg: &mut impl Registry) -> Stack {
        let mut below = self.latent;
        let mut layers = Vec::new();
        for (i, u) in self.upper.iter().enumerate() {
            let l = i + 2;
            let mut mlp = |name: &str, from: usize, widths: &[usize], to: usize| {
                let mut layers = Vec::new();
                let mut width = from;
                for (j, &h) in widths.iter().enumerate() {
                    layers.push(Layer::Dense(Linear::new(
                        reg,
                        &format!("{name}.{j}"),
                        width,
                        h,
                    )));
                    width = h;
                }
                layers.push(Layer::Dense(Linear::new(
                    reg,
                    &format!("{name}.head"),
                    width,
                    to,
                )));
                Net::plain(layers, self.activation, None)
            };
            let q = mlp(&format!("q{l}"), below, &u.hidden, 2 * u.latent);
            let back: Vec<usize> = u.hidden.iter().rev().copied().collect();
            let p = mlp(&format!("p{l}"), u.latent, &back, 2 * below);
            layers.push(Upper {
                below,
                dim: u.latent,
                q,
                p,
            });
            below = u.latent;
        }
        Stack { layers }
    }

    /// Number of trained weights (batch norm's running statistics excluded), computed without allocating.
    pub fn param_count(&self) -> Result<u128> {
        let mut c = Counter::default();
        self.build(&mut c)?;
        Ok(c.total - c.buffers)
    }

    /// Refuses what a stack of latent layers cannot be combined with, and impossible sizes of its layers.
    fn validate_upper(&self) -> Result<()> {
        let refuse = |what: &str| {
            Err(Error::Config(format!(
                "{what} with more than one latent layer is not supported: give --latent one dimension, or drop it"
            )))
        };
        if self.kind == ModelKind::Autoencoder {
            return refuse("--model=autoencoder");
        }
        if !self.prior.is_standard_normal() {
            return refuse(&format!("--prior={}", self.prior.name()));
        }
        if self.batch_norm {
            return refuse(
                "batch norm (--batch-norm, or a preset that has it: --arch pytorch-vae)",
            );
        }
        for u in &self.upper {
            if u.latent == 0 || u.latent > 4096 {
                return Err(Error::Config(format!(
                    "--latent {} must be between 1 and 4096",
                    u.latent
                )));
            }
            if let Some(h) = u.hidden.iter().copied().find(|&h| h == 0 || h > 65536) {
                return Err(Error::Config(format!(
                    "--hidden width {h} must be between 1 and 65536"
                )));
            }
        }
        Ok(())
    }

    /// Refuses what a flow posterior cannot be combined with, and impossible sizes.
    fn validate_flow(&self, flow: FlowSpec) -> Result<()> {
        let name = flow.name();
        if flow.steps() == 0 || flow.steps() > MAX_LAYERS {
            let what = match flow {
                FlowSpec::Planar { .. } => "planar maps (K in planar:K)",
                FlowSpec::Iaf { .. } => "IAF blocks (B in iaf:B:H)",
            };
            return Err(Error::Config(format!(
                "--flow needs between 1 and {MAX_LAYERS} {what}, not {}; for no flow, drop --flow",
                flow.steps()
            )));
        }
        if let FlowSpec::Iaf { hidden, .. } = flow
            && (hidden == 0 || hidden > 65536)
        {
            return Err(Error::Config(format!(
                "--flow={name}: the MADE's hidden width {hidden} must be between 1 and 65536"
            )));
        }
        if let FlowSpec::Iaf { blocks, hidden } = flow {
            // Counted before the model is built, whose MADE degrees alone would take memory in proportion.
            let (b, h, d) = (blocks as u128, hidden as u128, self.latent as u128);
            let params = b * (d * h + h + h * h + h + h * 2 * d + 2 * d);
            if params > MAX_PARAMS {
                return Err(Error::Config(format!(
                    "the flow alone would have {params} weights, more than the {MAX_PARAMS} accepted: use fewer or narrower IAF blocks (--flow iaf:B:H)"
                )));
            }
        }
        if self.kind == ModelKind::Autoencoder {
            return Err(Error::Config(format!(
                "--flow={name} transforms a VAE's posterior draws; an autoencoder draws none: drop --model or --flow"
            )));
        }
        if !self.upper.is_empty() {
            return Err(Error::Config(format!(
                "--flow={name} with more than one latent layer is not supported: give --latent one dimension, or drop --flow"
            )));
        }
        Ok(())
    }

    /// Refuses impossible shapes with a message naming the setting.
    pub fn validate(&self) -> Result<()> {
        let dec = self.decoder.as_ref();
        let layers = self.hidden.len()
            + self.conv.len()
            + dec.map_or(0, |d| d.hidden.len() + d.deconv.len())
            + self
                .upper
                .iter()
                .map(|u| 2 * u.hidden.len() + 2)
                .sum::<usize>();
        if layers > MAX_LAYERS {
            return Err(Error::Config(format!(
                "the networks would have {layers} layers, more than the {MAX_LAYERS} accepted: use fewer --hidden widths, --conv layers or latent layers (--latent)"
            )));
        }
        if self.discriminator.len() >= MAX_LAYERS {
            return Err(Error::Config(format!(
                "--discriminator has {} widths: at most {} are accepted",
                self.discriminator.len(),
                MAX_LAYERS - 1
            )));
        }
        if let Some(w) = self.discriminator.iter().find(|&&w| w == 0 || w > 65536) {
            return Err(Error::Config(format!(
                "--discriminator widths must be between 1 and 65536, not {w}"
            )));
        }
        if let PriorSpec::Mixture { components } | PriorSpec::Vamp { components } = self.prior {
            let name = self.prior.name();
            if components == 0 || components > MAX_COMPONENTS {
                return Err(Error::Config(format!(
                    "--prior-components {components} must be between 1 and {MAX_COMPONENTS}"
                )));
            }
            if self.kind == ModelKind::Autoencoder {
                return Err(Error::Config(format!(
                    "--prior={name} is a prior over a VAE's codes; an autoencoder has none: drop --model or --prior"
                )));
            }
        }
        if let PriorSpec::Vamp { .. } = self.prior {
            // The encoder runs on pseudo-inputs that have no label, and batch norm would mix them with the data.
            for (given, what) in [
                (self.is_conditional(), "--conditional"),
                (self.batch_norm, "--batch-norm"),
            ] {
                if given {
                    return Err(Error::Config(format!(
                        "--prior=vamp encodes unlabelled pseudo-inputs with the model's own encoder, which {what} does not allow: drop one of them"
                    )));
                }
            }
        }
        if !self.upper.is_empty() {
            self.validate_upper()?;
        }
        if let Some(flow) = self.flow {
            self.validate_flow(flow)?;
        }
        if self.latent == 0 || self.latent > 4096 {
            return Err(Error::Config(format!(
                "--latent {} must be between 1 and 4096",
                self.latent
            )));
        }
        let widths = self
            .hidden
            .iter()
            .chain(dec.map_or(&[][..], |d| &d.hidden[..]));
        if let Some(h) = widths.copied().find(|&h| h == 0 || h > 65536) {
            return Err(Error::Config(format!(
                "--hidden width {h} must be between 1 and 65536"
            )));
        }
        // The encoder's are the user's `--conv` (named so that a file's key or Python's keyword is named in turn);
        // the decoder's mirror them or come from an architecture.
        let convs = self.conv.iter().map(|c| ("--conv: ", c)).chain(
            dec.map_or(&[][..], |d| &d.deconv[..])
                .iter()
                .map(|c| ("", c)),
        );
        for (flag, c) in convs {
            if c.channels == 0 || c.channels > 4096 {
                return Err(Error::Config(format!(
                    "{flag}convolution channels {} must be between 1 and 4096",
                    c.channels
                )));
            }
            if c.kernel == 0 || c.kernel > 64 || c.stride == 0 || c.stride > 64 || c.padding > 64 {
                return Err(Error::Config(format!(
                    "{flag}convolution kernel {}, stride {}, padding {}: kernel and stride must be 1 to 64, padding at most 64",
                    c.kernel, c.stride, c.padding
                )));
            }
        }
        if self.classes > 65536 {
            return Err(Error::Config(format!(
                "{} classes is more than the 65536 accepted",
                self.classes
            )));
        }
        if self.rows == 0 || self.cols == 0 || self.rows > 4096 || self.cols > 1 << 20 {
            return Err(Error::Config(format!(
                "items of {}x{}: the height must be between 1 and 4096, the width between 1 and 1048576",
                self.rows, self.cols
            )));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::Config(format!(
                "{} channels: images have 1 (grey) or 3 (RGB)",
                self.channels
            )));
        }
        if let Likelihood::Gaussian { sigma, .. } | Likelihood::Logistic { scale: sigma, .. } =
            self.likelihood
            && !(MIN_SIGMA..=1e3).contains(&sigma)
        {
            return Err(Error::Config(format!(
                "--sigma {sigma} must be a number between {MIN_SIGMA} and 1000"
            )));
        }
        let params = self.param_count()?;
        if params > MAX_PARAMS {
            return Err(Error::Config(format!(
                "the model would have {params} weights, more than the {MAX_PARAMS} accepted: use fewer or narrower layers"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_conv_shapes() {
        let cfg = ModelConfig::keras_conv();
        let arch = cfg.build(&mut Counter::default()).unwrap();
        let outs: Vec<usize> = arch.encoder.layers.iter().map(|l| l.out_len()).collect();
        assert_eq!(outs, vec![14 * 14 * 32, 7 * 7 * 64, 16, 4]);
        let outs: Vec<usize> = arch.decoder.layers.iter().map(|l| l.out_len()).collect();
        assert_eq!(outs, vec![7 * 7 * 64, 14 * 14 * 64, 28 * 28 * 32, 784]);
        // The Keras example's summary: encoder 69,076 weights, decoder 65,089.
        let mut enc = Counter::default();
        let mut cfg_enc = cfg.clone();
        cfg_enc.decoder = Some(DecoderSpec {
            hidden: vec![],
            deconv: vec![],
            linear_projection: false,
        });
        cfg_enc.build(&mut enc).unwrap();
        let dec_dense_only = (2 + 1) * 784;
        assert_eq!(enc.total - dec_dense_only, 69_076);
        assert_eq!(cfg.param_count().unwrap() - 69_076, 65_089);
    }

    #[test]
    fn pytorch_vae_matches_vanilla_vae() {
        let cfg = ModelConfig::pytorch_vae();
        cfg.validate().unwrap();
        // sum(p.numel() for p in VanillaVAE(3, 128).parameters()) in PyTorch 2.15.
        assert_eq!(cfg.param_count().unwrap(), 3_937_635);
        let arch = cfg.build(&mut Counter::default()).unwrap();
        let outs: Vec<usize> = arch.encoder.layers.iter().map(|l| l.out_len()).collect();
        assert_eq!(
            outs,
            vec![
                32 * 32 * 32,
                16 * 16 * 64,
                8 * 8 * 128,
                4 * 4 * 256,
                2 * 2 * 512,
                256
            ]
        );
        let normed = |n: &Net| n.norms.iter().filter(|b| b.is_some()).count();
        assert_eq!((normed(&arch.encoder), normed(&arch.decoder)), (5, 5));
        assert_eq!(
            arch.decoder.acts[0],
            Activation::Identity,
            "the projection is linear"
        );
        assert_eq!(arch.decoder.out_len(), 64 * 64 * 3);
    }

    #[test]
    fn mirrored_conv_decoder_reaches_the_image() {
        let cfg = ModelConfig {
            conv: vec![ConvSpec::halving(8), ConvSpec::halving(16)],
            ..ModelConfig::pytorch_example()
        };
        let arch = cfg.build(&mut Counter::default()).unwrap();
        assert_eq!(arch.decoder.out_len(), 784);
        let bad = ModelConfig {
            conv: vec![ConvSpec {
                kernel: 40,
                ..ConvSpec::halving(4)
            }],
            ..ModelConfig::pytorch_example()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("does not fit")
        );
    }
}
