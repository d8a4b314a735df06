//! The serde description of a model: saved with its weights so every command can rebuild it.

use crate::core::Activation;
use crate::error::{Error, Result};

/// The decoder's distribution over pixels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Likelihood {
    /// Independent Bernoulli pixels with logits from the decoder.
    Bernoulli,
    /// Independent Gaussian pixels with mean σ(decoder output) and a fixed standard deviation.
    Gaussian {
        /// The fixed standard deviation.
        sigma: f64,
    },
}

/// Architecture of a dense VAE.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Encoder hidden widths; the decoder mirrors them.
    pub hidden: Vec<usize>,
    /// Latent dimension.
    pub latent: usize,
    /// Hidden-layer nonlinearity.
    pub activation: Activation,
    /// Pixel distribution.
    pub likelihood: Likelihood,
}

/// Most weights a model may have (1 GiB of f32), so that a config or checkpoint cannot ask for unbounded memory.
pub const MAX_PARAMS: u128 = 1 << 28;

impl ModelConfig {
    /// Number of weights and biases, computed without overflow from the config alone.
    pub fn param_count(&self) -> u128 {
        let dense = |i: usize, o: usize| (i as u128 + 1) * o as u128;
        let mut total = 0;
        let mut width = self.input_dim();
        for &h in &self.hidden {
            total += dense(width, h);
            width = h;
        }
        total += dense(width, 2 * self.latent);
        let mut width = self.latent;
        for &h in self.hidden.iter().rev() {
            total += dense(width, h);
            width = h;
        }
        total + dense(width, self.input_dim())
    }

    /// The PyTorch example: 784-400-20, ReLU, Bernoulli.
    pub fn pytorch_example() -> Self {
        ModelConfig {
            rows: 28,
            cols: 28,
            hidden: vec![400],
            latent: 20,
            activation: Activation::Relu,
            likelihood: Likelihood::Bernoulli,
        }
    }

    /// Pixels per image.
    pub fn input_dim(&self) -> usize {
        self.rows * self.cols
    }

    /// Refuses impossible shapes with a message naming the setting.
    pub fn validate(&self) -> Result<()> {
        if self.latent == 0 || self.latent > 4096 {
            return Err(Error::Config(format!(
                "--latent {} must be between 1 and 4096",
                self.latent
            )));
        }
        if let Some(h) = self.hidden.iter().find(|&&h| h == 0 || h > 65536) {
            return Err(Error::Config(format!(
                "--hidden width {h} must be between 1 and 65536"
            )));
        }
        if self.rows == 0 || self.cols == 0 || self.rows > 4096 || self.cols > 4096 {
            return Err(Error::Config(format!(
                "images of {}x{} pixels: each side must be between 1 and 4096",
                self.rows, self.cols
            )));
        }
        let params = self.param_count();
        if params > MAX_PARAMS {
            return Err(Error::Config(format!(
                "the model would have {params} weights, more than the {MAX_PARAMS} accepted: use fewer or narrower layers"
            )));
        }
        if let Likelihood::Gaussian { sigma } = self.likelihood
            && !(sigma.is_finite() && sigma > 0.0)
        {
            return Err(Error::Config(format!(
                "--sigma {sigma} must be a positive number"
            )));
        }
        Ok(())
    }
}
