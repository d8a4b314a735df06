//! Models: the VAE, its configuration, likelihoods and objective.

pub mod config;
pub mod net;
pub mod summary;
pub mod vae;

pub use config::{
    ConvSpec, DecoderSpec, GaussianMean, Likelihood, ModelConfig, ModelKind, SigmaMode,
};
pub use vae::{BatchStats, Estimator, Objective, Vae, Workspace};
