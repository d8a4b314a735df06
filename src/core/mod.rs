//! The numeric core: GEMM, dense layers and activations with explicit forward and backward, optimisers.
//!
//! Everything is generic over [`Real`] so that training runs in f32 while gradient checks run in f64.

pub mod activation;
pub mod denormal;
pub mod gemm;
pub mod init;
pub mod linear;
pub mod ops;
pub mod optim;
pub mod params;
pub mod threads;

#[cfg(test)]
pub(crate) mod gradcheck;

pub use activation::Activation;
pub use linear::Linear;
pub use optim::{Adam, Optimizer, Sgd};
pub use params::Params;

/// A floating-point type the core computes in (f32 for training, f64 for gradient checks).
pub trait Real:
    num_traits::Float
    + num_traits::FromPrimitive
    + Default
    + Send
    + Sync
    + 'static
    + std::fmt::Debug
    + std::fmt::Display
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::iter::Sum
{
    /// Converts an f64 constant.
    fn c(x: f64) -> Self {
        Self::from_f64(x).expect("finite constant")
    }
    /// Converts to f64 for reporting.
    fn f64(self) -> f64 {
        self.to_f64().unwrap_or(f64::NAN)
    }
}

impl Real for f32 {}
impl Real for f64 {}
