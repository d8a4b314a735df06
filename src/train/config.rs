//! What a run is: the model plus how it is trained, saved as `config.json` in the run directory.

use crate::data::{Binarize, DatasetName};
use crate::error::{Error, Result};
use crate::model::ModelConfig;

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
    /// Seed of every random draw in the run.
    pub seed: u64,
    /// Latent samples L per image in the Monte-Carlo ELBO.
    pub samples: usize,
    /// Weight of the KL term.
    pub beta: f64,
    /// Pixel binarisation.
    pub binarize: Binarize,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    /// Hold out the last N training images for validation.
    pub validation: usize,
    /// Scale gradients down to this global L2 norm when they exceed it.
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    /// Where the data was read from at training time (a hint for later commands).
    #[serde(default)]
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            dataset: DatasetName::Mnist,
            epochs: 10,
            batch_size: 128,
            lr: 1e-3,
            adam_eps: 1e-8,
            seed: 1,
            samples: 1,
            beta: 1.0,
            binarize: Binarize::None,
            limit: None,
            validation: 0,
            clip_grad_norm: None,
            data_dir: None,
        }
    }
}

/// A run's full description.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The architecture.
    pub model: ModelConfig,
    /// The training procedure.
    pub train: TrainConfig,
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

    /// Refuses impossible settings before anything is allocated.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        let t = &self.train;
        if t.batch_size == 0 || t.batch_size > 65536 {
            return Err(Error::Config(format!(
                "--batch-size {} must be between 1 and 65536",
                t.batch_size
            )));
        }
        if t.samples == 0 || t.samples * t.batch_size > MAX_ROWS {
            return Err(Error::Config(format!(
                "--samples {} must be at least 1, and samples x batch size at most {MAX_ROWS}",
                t.samples
            )));
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(Error::Config(format!(
                "--lr {} must be a positive number",
                t.lr
            )));
        }
        if !(t.beta.is_finite() && t.beta >= 0.0) {
            return Err(Error::Config(format!(
                "--beta {} must be a non-negative number",
                t.beta
            )));
        }
        if let Some(c) = t.clip_grad_norm
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::Config(format!(
                "--clip-grad-norm {c} must be a positive number"
            )));
        }
        if t.limit == Some(0) {
            return Err(Error::Config("--limit 0 leaves nothing to train on".into()));
        }
        Ok(())
    }
}
