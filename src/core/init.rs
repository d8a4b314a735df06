//! PyTorch's default initialisation of `nn.Linear`, so that results are comparable with PyTorch runs.

use super::Real;
use rand::RngExt;

/// Fills weight and bias with U(−1/√fan_in, 1/√fan_in): what `kaiming_uniform_(a=√5)` and PyTorch's bias rule give.
pub fn linear_default<T: Real>(
    weight: &mut [T],
    bias: &mut [T],
    fan_in: usize,
    rng: &mut impl rand::Rng,
) {
    let bound = 1.0 / (fan_in as f64).sqrt();
    uniform(weight, bound, rng);
    uniform(bias, bound, rng);
}

/// Fills `v` with U(−bound, bound).
pub fn uniform<T: Real>(v: &mut [T], bound: f64, rng: &mut impl rand::Rng) {
    for v in v {
        let u: f64 = rng.random();
        *v = T::c((2.0 * u - 1.0) * bound);
    }
}
