//! Models: the VAE, its configuration, likelihoods and objective.

pub mod config;
pub mod dip;
pub mod factor;
pub mod flow;
pub mod latent;
pub mod net;
pub mod prior;
pub mod stack;
pub mod summary;
pub mod tc;
pub mod vae;
pub mod vamp;

pub use config::{
    ConvSpec, DecoderSpec, GaussianMean, Likelihood, ModelConfig, ModelKind, SigmaMode,
};
pub use latent::GaussianLatent;
pub use prior::{GaussianKl, Prior, StandardNormal};
pub use vae::{BatchStats, Estimator, Objective, Vae, Workspace};
