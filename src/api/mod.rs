//! The library's front door: [`Model`] to use a trained run, [`Trainer`] to make one, [`Settings`] to describe
//! it and [`Observer`] to watch it train. The `elbo` command line and the Python package call these, so every
//! front end takes one path.
//!
//! See the crate page for examples; `examples/embed.rs` is a whole program.

pub mod disentangle;
pub mod model;
pub mod trainer;

pub use crate::train::{EpochMetrics, Flow, Observer, Quiet, Settings};
pub use model::{Encoded, Model};
pub use trainer::Trainer;
