//! Models: the VAE, its configuration, likelihoods and objective.

pub mod config;
pub mod vae;

pub use config::{Likelihood, ModelConfig};
pub use vae::{BatchStats, Vae, Workspace};
