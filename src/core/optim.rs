//! Optimisers over the flat parameter buffer, with PyTorch's update formulas.

use super::Real;
use super::params::Params;

/// Updates parameters from their gradients.
pub trait Optimizer<T: Real> {
    /// Applies one update with learning rate `lr`.
    fn step(&mut self, params: &mut Params<T>, lr: f64);
}

/// Adam (Kingma & Ba), as `torch.optim.Adam` without weight decay.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Adam<T> {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): each step shrinks every weight by lr·decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Steps taken.
    pub t: u64,
    /// First moments.
    #[serde(skip)]
    pub m: Vec<T>,
    /// Second moments.
    #[serde(skip)]
    pub v: Vec<T>,
    /// The parameters from some offset on, stepped with their own learning rate and β's (FactorVAE's
    /// discriminator, a second optimiser in the papers); derived from the run's config, never stored.
    #[serde(skip)]
    pub tail: Option<AdamGroup>,
}

/// A group of parameters, `start` to the end, that Adam steps with its own settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamGroup {
    /// The group's first parameter.
    pub start: usize,
    /// Its learning rate (the schedule does not scale it).
    pub lr: f64,
    /// Its β₁.
    pub beta1: f64,
    /// Its β₂.
    pub beta2: f64,
}

impl<T: Real> Adam<T> {
    /// PyTorch's defaults with the given ε.
    pub fn new(len: usize, eps: f64) -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps,
            weight_decay: 0.0,
            t: 0,
            m: vec![T::zero(); len],
            v: vec![T::zero(); len],
            tail: None,
        }
    }
}

impl<T: Real> Optimizer<T> for Adam<T> {
    fn step(&mut self, params: &mut Params<T>, lr: f64) {
        self.t += 1;
        let end = self.tail.map_or(params.data.len(), |g| g.start);
        if self.weight_decay > 0.0 {
            // PyTorch's AdamW order: decay first, from the weights before this step's update. Buffers (batch
            // norm's running statistics) are state, not weights, and are never decayed; nor is the tail group.
            let keep = T::c(1.0 - lr * self.weight_decay);
            for s in params.specs.iter().filter(|s| !s.buffer && s.offset < end) {
                params.data[s.range()].iter_mut().for_each(|w| *w *= keep);
            }
        }
        let constants = |beta1: f64, beta2: f64, lr: f64| {
            let bc1 = 1.0 - beta1.powi(self.t as i32);
            let bc2 = 1.0 - beta2.powi(self.t as i32);
            [
                beta1,
                beta2,
                1.0 - beta1,
                1.0 - beta2,
                lr / bc1,
                1.0 / bc2.sqrt(),
                self.eps,
            ]
        };
        let c = constants(self.beta1, self.beta2, lr);
        T::adam_update(
            &mut params.data[..end],
            &params.grad[..end],
            &mut self.m[..end],
            &mut self.v[..end],
            c,
        );
        if let Some(g) = self.tail {
            let c = constants(g.beta1, g.beta2, g.lr);
            T::adam_update(
                &mut params.data[end..],
                &params.grad[end..],
                &mut self.m[end..],
                &mut self.v[end..],
                c,
            );
        }
    }
}

/// Scales the gradients so their global L2 norm is at most `max`; returns the norm before scaling
/// (non-finite when a gradient is NaN or infinite, in which case nothing is scaled).
pub fn clip_grad_norm<T: Real>(grad: &mut [T], max: f64) -> f64 {
    let norm = grad.iter().map(|g| g.f64() * g.f64()).sum::<f64>().sqrt();
    if norm.is_finite() && norm > max {
        let s = T::c(max / norm);
        grad.iter_mut().for_each(|g| *g *= s);
    }
    norm
}

/// Plain stochastic gradient descent with optional momentum, as `torch.optim.SGD`.
#[derive(Debug, Clone)]
pub struct Sgd<T> {
    /// Momentum factor (0 for none).
    pub momentum: f64,
    /// Velocity buffer.
    pub velocity: Vec<T>,
}

impl<T: Real> Sgd<T> {
    /// SGD over `len` parameters.
    pub fn new(len: usize, momentum: f64) -> Self {
        Sgd {
            momentum,
            velocity: vec![T::zero(); len],
        }
    }
}

impl<T: Real> Optimizer<T> for Sgd<T> {
    fn step(&mut self, params: &mut Params<T>, lr: f64) {
        let lr = T::c(lr);
        if self.momentum == 0.0 {
            params
                .data
                .iter_mut()
                .zip(&params.grad)
                .for_each(|(p, &g)| *p -= lr * g);
            return;
        }
        let mu = T::c(self.momentum);
        for ((p, &g), b) in params
            .data
            .iter_mut()
            .zip(&params.grad)
            .zip(self.velocity.iter_mut())
        {
            *b = mu * *b + g;
            *p -= lr * *b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_steps_match_pytorch_formula() {
        let mut p = Params::<f64>::default();
        p.add("x", &[2]);
        p.data.copy_from_slice(&[1.0, -2.0]);
        let mut adam = Adam::new(2, 1e-8);
        p.grad.copy_from_slice(&[0.5, -0.25]);
        adam.step(&mut p, 0.1);
        // The first step moves each parameter by lr·sign(g) (up to ε).
        assert!(
            (p.data[0] - 0.9).abs() < 1e-6 && (p.data[1] + 1.9).abs() < 1e-6,
            "{:?}",
            p.data
        );
        p.grad.copy_from_slice(&[0.5, -0.25]);
        adam.step(&mut p, 0.1);
        assert!(
            (p.data[0] - 0.8).abs() < 1e-6,
            "constant gradients keep unit steps"
        );
    }

    #[test]
    fn a_tail_group_steps_as_a_second_optimiser_would() {
        let grads = [
            [0.5, -0.25, 2.0, -1.0],
            [0.1, 0.3, -0.7, 0.2],
            [0.4, -0.6, 1.5, 0.05],
        ];
        let mut both = Params::<f64>::default();
        both.add("vae", &[2]);
        both.add("discriminator", &[2]);
        let mut adam = Adam::new(4, 1e-8);
        adam.weight_decay = 0.1;
        adam.tail = Some(AdamGroup {
            start: 2,
            lr: 0.01,
            beta1: 0.5,
            beta2: 0.9,
        });
        let (mut a, mut b) = (Params::<f64>::default(), Params::<f64>::default());
        a.add("vae", &[2]);
        b.add("discriminator", &[2]);
        let mut first = Adam::new(2, 1e-8);
        first.weight_decay = 0.1;
        let mut second = Adam::new(2, 1e-8);
        (second.beta1, second.beta2) = (0.5, 0.9);
        for g in grads {
            both.grad.copy_from_slice(&g);
            a.grad.copy_from_slice(&g[..2]);
            b.grad.copy_from_slice(&g[2..]);
            adam.step(&mut both, 0.1);
            first.step(&mut a, 0.1);
            second.step(&mut b, 0.01);
        }
        assert_eq!(both.data[..2], a.data[..]);
        assert_eq!(both.data[2..], b.data[..]);
    }

    #[test]
    fn adamw_decays_weights_but_not_buffers() {
        use crate::core::params::Registry;
        let mut p = Params::<f64>::default();
        p.add("w", &[1]);
        p.register_buffer("running_var", &[1]);
        p.data.copy_from_slice(&[2.0, 3.0]);
        let mut adam = Adam::new(2, 1e-8);
        adam.weight_decay = 0.5;
        p.grad.copy_from_slice(&[0.5, 0.0]);
        adam.step(&mut p, 0.1);
        // PyTorch's AdamW: w·(1 − lr·λ) − lr·m̂/(√v̂ + ε) = 2·0.95 − 0.1.
        assert!((p.data[0] - 1.8).abs() < 1e-6, "{:?}", p.data);
        assert_eq!(p.data[1], 3.0, "a buffer is neither decayed nor updated");
    }

    #[test]
    fn clipping_caps_the_global_norm() {
        let mut p = Params::<f64>::default();
        p.add("x", &[2]);
        p.grad.copy_from_slice(&[3.0, 4.0]);
        assert_eq!(clip_grad_norm(&mut p.grad, 10.0), 5.0);
        assert_eq!(p.grad, vec![3.0, 4.0], "under the cap nothing changes");
        assert_eq!(clip_grad_norm(&mut p.grad, 1.0), 5.0);
        assert!((p.grad[0] - 0.6).abs() < 1e-12 && (p.grad[1] - 0.8).abs() < 1e-12);
        p.grad[0] = f64::NAN;
        assert!(clip_grad_norm(&mut p.grad, 1.0).is_nan());
    }

    #[test]
    fn sgd_minimises_a_quadratic() {
        let mut p = Params::<f64>::default();
        p.add("x", &[1]);
        p.data[0] = 3.0;
        let mut sgd = Sgd::new(1, 0.9);
        for _ in 0..200 {
            p.grad[0] = 2.0 * p.data[0];
            sgd.step(&mut p, 0.05);
        }
        assert!(p.data[0].abs() < 1e-3);
    }
}
