//! elbo: variational autoencoders on MNIST-like data, with a small numeric core built for exactly what VAEs need.
//!
//! Use a trained run with [`Model`]; make one with [`Trainer`] from [`Settings`], watching it with an
//! [`Observer`]. The `elbo` command line and the Python package go through these same types.
//!
//! ```no_run
//! use elbo::{Model, data::numpy::MemArray};
//! # fn main() -> elbo::Result<()> {
//! let model = Model::open("runs/mnist".as_ref())?; // a run directory written by `elbo train`
//! let pixels = vec![0u8; 28 * 28]; // one 28×28 image as 8-bit levels, as a uint8 NumPy array holds it
//! let items = model.items(MemArray::uint8(vec![1, 28, 28], pixels), None)?;
//! let code = model.encode(&items)?; // posterior means and log-variances
//! let image = model.decode(&code.mu, &[])?; // 784 intensities in [0, 1]
//! let samples = model.sample(16, 1, 1.0, &[])?; // 16 draws from the prior, seed 1
//! # let _ = (image, samples); Ok(()) }
//! ```
//!
//! Training from Rust:
//!
//! ```no_run
//! use elbo::{Settings, Trainer, api::Quiet};
//! # fn main() -> elbo::Result<()> {
//! let settings = Settings { latent: Some(2.into()), epochs: Some(5), ..Default::default() };
//! let mut trainer = Trainer::new(&settings, false)?; // checks data, memory and the run directory first
//! let history = trainer.fit(&mut Quiet)?; // one EpochMetrics per epoch; the run is in runs/mnist
//! # let _ = history; Ok(()) }
//! ```
//!
//! Data flows one way: [`data`] → batches → [`model`] → objective → optimiser ([`core`]); [`train`] drives it and
//! writes checkpoints that [`eval`] and [`figures`] only read.

#![warn(missing_docs)]

pub mod api;
mod choice;
/// The `elbo` command line: called by `src/main.rs`, not an API.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
pub mod core;
pub mod data;
pub mod error;
pub mod eval;
mod fault;
pub mod figures;
pub mod fsutil;
/// Entry points of the `cargo fuzz` targets, not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod model;
pub mod notes;
pub mod resources;
#[cfg(feature = "serve")]
pub mod serve;
pub mod signals;
pub mod train;

pub use api::{Model, Observer, Quiet, Settings, Trainer};
pub use error::{Error, Result};
