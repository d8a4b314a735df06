//! elbo: variational autoencoders on MNIST-like data, with a small numeric core built for exactly what VAEs need.
//!
//! Data flows one way: [`data`] → batches → [`model`] → objective → optimiser ([`core`]); [`train`] drives it and
//! writes checkpoints that [`eval`] and [`figures`] only read.

#![warn(missing_docs)]

/// `eprintln!` that never panics: a status line that cannot be written (stderr on a full disk) must not end a
/// run or cost it its result.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

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
