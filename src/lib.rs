//! elbo: variational autoencoders on MNIST-like data, with a small numeric core built for exactly what VAEs need.
//!
//! Data flows one way: [`data`] → batches → [`model`] → objective → optimiser ([`core`]); [`train`] drives it and
//! writes checkpoints that [`eval`] and [`figures`] only read.

#![warn(missing_docs)]

pub mod cli;
pub mod core;
pub mod data;
pub mod error;
pub mod eval;
mod fault;
pub mod figures;
pub mod fsutil;
pub mod fuzzing;
pub mod model;
pub mod resources;
pub mod serve;
pub mod train;

pub use error::{Error, Result};
