//! The library's front door: [`Model`] to use a trained run, [`Trainer`] to make one, [`Settings`] to describe
//! it and [`Observer`] to watch it train. The `elbo` command line and the Python package call these, so every
//! front end takes one path.
//!
//! ```no_run
//! use elbo::{Model, data::numpy::{MemArray, MemValues}};
//! # fn main() -> elbo::Result<()> {
//! let model = Model::open("runs/mnist".as_ref())?;
//! // One 28×28 image held in memory: 8-bit levels, as a uint8 NumPy array would be.
//! let pixels = vec![0u8; 28 * 28];
//! let x = MemArray {
//!     name: "x".into(),
//!     shape: vec![1, 28, 28],
//!     type_name: "uint8".into(),
//!     values: MemValues::Uint8(pixels),
//!     labels: None,
//! };
//! let items = model.items(x, None)?;
//! let code = model.encode(&items)?;
//! let image = model.decode(&code.mu, &[])?; // 784 intensities in [0, 1]
//! # let _ = image; Ok(()) }
//! ```

pub mod model;
pub mod trainer;

pub use crate::train::{EpochMetrics, Flow, Observer, Quiet, Settings};
pub use model::{Encoded, Model};
pub use trainer::Trainer;
