//! Activations, fused with the bias add; every derivative is taken from the output, so inputs need not be kept.

use super::Real;

crate::choice! {
    /// An element-wise nonlinearity applied after a dense layer.
    pub enum Activation {
        /// max(0, x).
        Relu = "relu",
        /// Hyperbolic tangent.
        Tanh = "tanh",
        /// 1 / (1 + e^−x).
        Sigmoid = "sigmoid",
        /// ln(1 + e^x).
        Softplus = "softplus",
        /// x for x > 0, else 0.01·x (PyTorch's default slope).
        LeakyRelu = "leaky-relu",
        /// x for x > 0, else 0.2·x (TensorFlow's default slope; FactorVAE's discriminator).
        LeakyRelu02 = "leaky-relu-0.2",
        /// x.
        Identity = "identity",
    }
}

const LEAKY_SLOPE: f64 = 0.01;
const LEAKY_SLOPE_TF: f64 = 0.2;

impl Activation {
    /// `y[r, j] = act(y[r, j] + bias[j])` in place.
    pub fn forward_bias<T: Real>(self, y: &mut [T], bias: &[T]) {
        T::activation_forward(self, y, bias)
    }

    /// `dy *= act'(x)`, with the derivative written in terms of the output `y`.
    pub fn backward<T: Real>(self, y: &[T], dy: &mut [T]) {
        T::activation_backward(self, y, dy)
    }

    /// The activation as a [`Piecewise`] one, for batch norm's passes to apply themselves, if it is one.
    pub fn piecewise(self) -> Option<Piecewise> {
        match self {
            Activation::Identity => Some(Piecewise::Identity),
            Activation::Relu => Some(Piecewise::Relu),
            Activation::LeakyRelu => Some(Piecewise::Leaky(LEAKY_SLOPE)),
            Activation::LeakyRelu02 => Some(Piecewise::Leaky(LEAKY_SLOPE_TF)),
            _ => None,
        }
    }

    /// [`Activation::forward_bias`] in plain scalar code, for any float type.
    #[inline(always)]
    pub fn forward_bias_generic<T: Real>(self, y: &mut [T], bias: &[T]) {
        let cols = bias.len();
        let slope = T::c(match self {
            Activation::LeakyRelu02 => LEAKY_SLOPE_TF,
            _ => LEAKY_SLOPE,
        });
        for row in y.chunks_exact_mut(cols) {
            match self {
                Activation::Relu => row
                    .iter_mut()
                    .zip(bias)
                    .for_each(|(v, &b)| *v = (*v + b).max(T::zero())),
                Activation::Identity => row.iter_mut().zip(bias).for_each(|(v, &b)| *v += b),
                Activation::LeakyRelu | Activation::LeakyRelu02 => {
                    row.iter_mut().zip(bias).for_each(|(v, &b)| {
                        let s = *v + b;
                        *v = if s > T::zero() { s } else { s * slope };
                    })
                }
                Activation::Tanh => row
                    .iter_mut()
                    .zip(bias)
                    .for_each(|(v, &b)| *v = (*v + b).tanh()),
                Activation::Sigmoid => row
                    .iter_mut()
                    .zip(bias)
                    .for_each(|(v, &b)| *v = sigmoid(*v + b)),
                Activation::Softplus => row
                    .iter_mut()
                    .zip(bias)
                    .for_each(|(v, &b)| *v = softplus(*v + b)),
            }
        }
    }

    /// [`Activation::backward`] in plain scalar code, for any float type.
    #[inline(always)]
    pub fn backward_generic<T: Real>(self, y: &[T], dy: &mut [T]) {
        let one = T::one();
        let slope = T::c(match self {
            Activation::LeakyRelu02 => LEAKY_SLOPE_TF,
            _ => LEAKY_SLOPE,
        });
        let pairs = dy.iter_mut().zip(y);
        // The ReLU family selects instead of branching: a branch on the output's sign mispredicts on about half of
        // a layer's units, and the select vectorises (NaN outputs keep their gradient either way).
        match self {
            Activation::Relu => {
                pairs.for_each(|(d, &y)| *d = if y <= T::zero() { T::zero() } else { *d })
            }
            Activation::Identity => {}
            Activation::LeakyRelu | Activation::LeakyRelu02 => {
                pairs.for_each(|(d, &y)| *d *= if y <= T::zero() { slope } else { one })
            }
            Activation::Tanh => pairs.for_each(|(d, &y)| *d *= one - y * y),
            Activation::Sigmoid => pairs.for_each(|(d, &y)| *d *= y * (one - y)),
            // softplus'(x) = σ(x) = 1 − e^−y.
            Activation::Softplus => pairs.for_each(|(d, &y)| *d *= -(-y).exp_m1()),
        }
    }
}

/// An activation chosen by its input's sign (the identity and the ReLU family), so its derivative follows from the
/// input as well as from the output: batch norm recomputes γ·x̂ + β in its backward instead of reading the layer's
/// output, and applies the activation in its own passes (see `piecewise!`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Piecewise {
    /// x.
    Identity,
    /// max(0, x).
    Relu,
    /// x for x > 0, else this slope times x.
    Leaky(f64),
}

/// Expands `$body` once per [`Piecewise`] kind, with `$fwd` bound to a closure `s ↦ act(s)` and `$grad` to
/// `(s, d) ↦ d·act'(s)`, so the loops in `$body` are compiled for each activation rather than branching on it.
/// Each gives the same bits as [`Activation`]'s own code given its output act(s).
macro_rules! piecewise {
    ($pw:expr, $t:ty, |$fwd:ident, $grad:ident| $body:expr) => {
        match $pw {
            $crate::core::activation::Piecewise::Identity => {
                let $fwd = |s: $t| s;
                let $grad = |_: $t, d: $t| d;
                $body
            }
            // max's +0 below zero; a NaN input's output is 0 and so is its gradient.
            $crate::core::activation::Piecewise::Relu => {
                let $fwd = |s: $t| s.max(<$t>::zero());
                let $grad = |s: $t, d: $t| if s > <$t>::zero() { d } else { <$t>::zero() };
                $body
            }
            // The output s·a is ≤ 0 exactly when s ≤ 0; a NaN input's output is NaN: both keep slope 1.
            $crate::core::activation::Piecewise::Leaky(a) => {
                let a = <$t>::c(a);
                let $fwd = move |s: $t| if s > <$t>::zero() { s } else { s * a };
                let $grad = move |s: $t, d: $t| d * if s <= <$t>::zero() { a } else { <$t>::one() };
                $body
            }
        }
    };
}
pub(crate) use piecewise;

/// Logistic sigmoid, stable for large |x|.
pub fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// ln(1 + e^x), stable for large |x|.
pub fn softplus<T: Real>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;

    const ALL: [Activation; 7] = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Softplus,
        Activation::LeakyRelu,
        Activation::LeakyRelu02,
        Activation::Identity,
    ];

    #[test]
    fn every_activation_has_correct_gradients() {
        let cols = 3;
        // Keep inputs away from relu's kink so finite differences are valid.
        let x: Vec<f64> = (0..12)
            .map(|i| (i as f64 * 1.3).sin() * 2.0 + 0.05)
            .collect();
        let bias = vec![0.1, -0.2, 0.3];
        let r: Vec<f64> = (0..12).map(|i| (i as f64 * 0.7).cos()).collect();
        for act in ALL {
            let loss = |x: &[f64]| {
                let mut y = x.to_vec();
                act.forward_bias(&mut y, &bias);
                y.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>()
            };
            let mut y = x.clone();
            act.forward_bias(&mut y, &bias);
            let mut d = r.clone();
            act.backward(&y, &mut d);
            check_gradients(&x, &d, loss, &format!("{act:?}"));
            assert_eq!(y.len(), x.len() / cols * cols);
        }
    }

    #[test]
    fn f32_fast_paths_match_the_scalar_code() {
        crate::core::threads::init(2);
        let cols = 200;
        let x: Vec<f32> = (0..cols * 300)
            .map(|i| ((i * 7919 % 1201) as f32 - 600.0) / 97.0)
            .collect();
        let bias: Vec<f32> = (0..cols).map(|j| (j as f32 - 100.0) / 300.0).collect();
        for act in ALL {
            let (mut want, mut y) = (x.clone(), x.clone());
            act.forward_bias_generic(&mut want, &bias);
            act.forward_bias(&mut y, &bias);
            for (a, b) in y.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 4e-7 * b.abs().max(1e-3),
                    "{act:?}: {a} vs {b}"
                );
            }
            let (mut dwant, mut d) = (x.clone(), x.clone());
            act.backward_generic(&y, &mut dwant);
            act.backward(&y, &mut d);
            assert_eq!(d, dwant, "{act:?}");
        }
    }

    #[test]
    fn the_two_leaky_slopes_are_pytorchs_and_tensorflows() {
        for (act, want) in [
            (Activation::LeakyRelu, -0.01),
            (Activation::LeakyRelu02, -0.2),
        ] {
            let mut y = [-1.0f64, 2.0];
            act.forward_bias(&mut y, &[0.0, 0.0]);
            assert_eq!(y, [want, 2.0], "{act:?}");
        }
    }

    #[test]
    fn stable_at_extremes() {
        assert_eq!(sigmoid(-1000.0f32), 0.0);
        assert_eq!(sigmoid(1000.0f32), 1.0);
        assert_eq!(softplus(1000.0f32), 1000.0);
        assert!(softplus(-1000.0f32) >= 0.0);
    }
}
