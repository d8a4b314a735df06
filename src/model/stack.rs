//! The latent layers above the first (Burda et al. 2015, section 5): layer l ≥ 2 has an inference network
//! q(z_l | z_{l−1}) and a generative network p(z_{l−1} | z_l), both diagonal Gaussians whose `[μ | log σ²]` an MLP
//! gives; the top layer's prior is N(0, I). Seen from the first layer, the stack is a prior over z_1 whose density
//! it estimates with one draw per code: ln p̂(z_1) = Σ_{l≥2} [ln p(z_{l−1} | z_l) − ln q(z_l | z_{l−1})] + ln p(z_L).
//! Added to ln p(x | z_1) − ln q(z_1 | x), that is the log-weight of the whole hierarchy, so the ELBO, the IWAE
//! bound and importance-sampled evaluation serve every depth alike.
//!
//! Forward and backward sit side by side; the gradient check below covers both in f64.

use super::latent::log_q;
use super::net::{Net, NetBuffers};
use crate::core::threads::{self, Disjoint};
use crate::core::{Real, ops};

/// One latent layer above the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upper {
    /// The dimension of the layer below, z_{l−1}.
    pub below: usize,
    /// The dimension of this layer, z_l.
    pub dim: usize,
    /// z_{l−1} to `[μ | log σ²]` of q(z_l | z_{l−1}).
    pub q: Net,
    /// z_l to `[μ | log σ²]` of p(z_{l−1} | z_l).
    pub p: Net,
}

/// The layers above the first, bottom to top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// Layers 2, 3, …
    pub layers: Vec<Upper>,
}

/// One layer's buffers.
#[derive(Debug, Clone)]
struct LayerBuffers<T> {
    q: NetBuffers<T>,
    p: NetBuffers<T>,
    eps: Vec<T>,
    z: Vec<T>,
    dz: Vec<T>,
    dhead: Vec<T>,
    dbelow: Vec<T>,
}

/// Buffers for `rows` codes of the first layer.
#[derive(Debug, Clone)]
pub struct StackBuffers<T> {
    rows: usize,
    layers: Vec<LayerBuffers<T>>,
    /// The first layer's noise, gathered from the interleaved rows the model draws.
    pub(crate) eps1: Vec<T>,
    /// ln p̂(z_1) per code, from the last forward pass.
    pub(crate) log_prior: Vec<f64>,
}

/// Fewest codes a thread takes in the per-code loops: below this, starting a task costs more than it saves.
const ROWS_PER_THREAD: usize = 64;

/// ln N(x; μ, exp(lv)) without the ln 2π terms.
fn log_normal<T: Real>(x: &[T], mu: &[T], lv: &[T]) -> f64 {
    let mut acc = 0.0;
    for j in 0..x.len() {
        let (d, v) = (x[j].f64() - mu[j].f64(), lv[j].f64());
        acc -= 0.5 * (d * d * (-v).exp() + v);
    }
    acc
}

impl Stack {
    /// The top layer's dimension: the codes a stacked model is encoded to, decoded from and sampled in.
    pub fn top(&self) -> usize {
        self.layers.last().map_or(0, |l| l.dim)
    }

    /// Noise values per draw above the first layer.
    pub fn noise(&self) -> usize {
        self.layers.iter().map(|l| l.dim).sum()
    }

    /// Buffers for `rows` codes of the first layer.
    pub fn buffers<T: Real>(&self, rows: usize) -> StackBuffers<T> {
        let zeros = |n: usize| vec![T::zero(); n];
        StackBuffers {
            rows,
            layers: self
                .layers
                .iter()
                .map(|l| LayerBuffers {
                    q: l.q.buffers(rows),
                    p: l.p.buffers(rows),
                    eps: zeros(rows * l.dim),
                    z: zeros(rows * l.dim),
                    dz: zeros(rows * l.dim),
                    dhead: zeros(rows * 2 * l.dim),
                    dbelow: zeros(rows * l.below.max(l.dim)),
                })
                .collect(),
            eps1: zeros(rows * self.layers.first().map_or(0, |l| l.below)),
            log_prior: vec![0.0; rows],
        }
    }

    /// Scalars [`Stack::buffers`] allocates for `rows` codes.
    pub fn buffer_len(&self, rows: usize) -> u128 {
        let r = rows as u128;
        let first = self.layers.first().map_or(0, |l| l.below) as u128;
        self.layers
            .iter()
            .map(|l| {
                let (d, b) = (l.dim as u128, l.below as u128);
                l.q.buffer_len(rows) + l.p.buffer_len(rows) + r * (5 * d + b.max(d))
            })
            .sum::<u128>()
            + r * (first + 1)
    }

    /// Initialises every network's weights.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
        for l in &self.layers {
            l.q.init(p, rng);
            l.p.init(p, rng);
        }
    }

    /// Splits `noise` (`rows` draws of `[ε_1 | ε_2 | … ]`, the layout the model draws) into each layer's own.
    pub fn split_noise<T: Real>(&self, noise: &[T], rows: usize, b: &mut StackBuffers<T>) {
        let d1 = self.layers.first().map_or(0, |l| l.below);
        let width = d1 + self.noise();
        for r in 0..rows {
            let row = &noise[r * width..(r + 1) * width];
            b.eps1[r * d1..(r + 1) * d1].copy_from_slice(&row[..d1]);
            let mut at = d1;
            for (l, lb) in self.layers.iter().zip(&mut b.layers) {
                lb.eps[r * l.dim..(r + 1) * l.dim].copy_from_slice(&row[at..at + l.dim]);
                at += l.dim;
            }
        }
    }

    /// Draws z_2 … z_L above the `rows` codes `z1` with the noise [`Stack::split_noise`] left, and sets
    /// `b.log_prior[r]` to ln p̂(z_1) of code r.
    pub fn forward<T: Real>(
        &self,
        p: &[T],
        z1: &[T],
        rows: usize,
        b: &mut StackBuffers<T>,
        training: bool,
    ) {
        assert!(rows <= b.rows, "{rows} codes exceed the stack's {}", b.rows);
        let lp = &mut b.log_prior[..rows];
        lp.fill(0.0);
        for (i, l) in self.layers.iter().enumerate() {
            let (done, rest) = b.layers.split_at_mut(i);
            let below = if i == 0 { z1 } else { &done[i - 1].z[..] };
            let below = &below[..rows * l.below];
            let lb = &mut rest[0];
            let (d, db) = (l.dim, l.below);
            l.q.forward(p, below, &[], rows, &mut lb.q, training);
            let head = &lb.q.output()[..rows * 2 * d];
            ops::reparameterize(head, &lb.eps[..rows * d], &mut lb.z[..rows * d], d, 1);
            l.p.forward(p, &lb.z[..rows * d], &[], rows, &mut lb.p, training);
            let ph = &lb.p.output()[..rows * 2 * db];
            let eps = &lb.eps[..rows * d];
            // Rows are independent, so splitting them between threads changes no result; done serially, these
            // exponentials kept the second core idle for several per cent of a two-layer IWAE step.
            let out = Disjoint::new(&mut *lp);
            threads::for_rows(rows, ROWS_PER_THREAD, |a, b| {
                // SAFETY: row ranges a..b are disjoint between threads.
                let lp = unsafe { out.range(a, b) };
                for (r, v) in (a..b).zip(lp) {
                    let (h, e) = (&head[r * 2 * d..(r + 1) * 2 * d], &eps[r * d..(r + 1) * d]);
                    let log_q = log_q(e, &h[d..]);
                    let g = &ph[r * 2 * db..(r + 1) * 2 * db];
                    *v += log_normal(&below[r * db..(r + 1) * db], &g[..db], &g[db..]) - log_q;
                }
            });
        }
        if let (Some(top), Some(lb)) = (self.layers.last(), b.layers.last()) {
            for (r, v) in lp.iter_mut().enumerate() {
                let z = &lb.z[r * top.dim..(r + 1) * top.dim];
                *v += z.iter().map(|v| -0.5 * v.f64().powi(2)).sum::<f64>();
            }
        }
    }

    /// Backward of Σ_r w_r·(−ln p̂(z_1 of code r)) after [`Stack::forward`] on the same codes: every network's
    /// weight gradient is written into `g`, and the gradient by z_1 is added to `dz1`.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        z1: &[T],
        w: &[T],
        rows: usize,
        b: &mut StackBuffers<T>,
        dz1: &mut [T],
    ) {
        let half = T::c(0.5);
        let top = self.layers.len();
        for lb in &mut b.layers {
            lb.dz.fill(T::zero());
        }
        if let (Some(l), Some(lb)) = (self.layers.last(), b.layers.last_mut()) {
            // −w ln N(z_L; 0, I) by z_L.
            for (r, &wr) in w[..rows].iter().enumerate() {
                for j in r * l.dim..(r + 1) * l.dim {
                    lb.dz[j] = wr * lb.z[j];
                }
            }
        }
        for i in (0..top).rev() {
            let l = &self.layers[i];
            let (d, db) = (l.dim, l.below);
            let (done, rest) = b.layers.split_at_mut(i);
            let lb = &mut rest[0];
            let (below, dbelow): (&[T], &mut [T]) = if i == 0 {
                (z1, &mut *dz1)
            } else {
                let prev = &mut done[i - 1];
                (&prev.z[..], &mut prev.dz[..])
            };
            // −w ln N(z_{l−1}; μ_p, σ_p²): by the head of p (written in its place for the net's backward) and by
            // z_{l−1} directly.
            let (ph, db_out) = (
                Disjoint::new(&mut lb.p.output_mut()[..rows * 2 * db]),
                Disjoint::new(&mut dbelow[..rows * db]),
            );
            threads::for_rows(rows, ROWS_PER_THREAD, |a, b| {
                // SAFETY: row ranges a..b are disjoint between threads, in both buffers.
                let (ph, dbelow) = unsafe {
                    (
                        ph.range(a * 2 * db, b * 2 * db),
                        db_out.range(a * db, b * db),
                    )
                };
                for (r, (g, dbl)) in
                    (a..b).zip(ph.chunks_exact_mut(2 * db).zip(dbelow.chunks_exact_mut(db)))
                {
                    let wr = w[r];
                    let (mu, lv) = g.split_at_mut(db);
                    for j in 0..db {
                        let diff = below[r * db + j] - mu[j];
                        let inv = (-lv[j]).exp();
                        let t = wr * diff * inv;
                        dbl[j] += t;
                        mu[j] = -t;
                        lv[j] = -half * wr * (diff * diff * inv - T::one());
                    }
                }
            });
            let z = &lb.z[..rows * d];
            l.p.backward(
                p,
                g,
                z,
                &[],
                rows,
                &mut lb.p,
                Some(&mut lb.dbelow[..rows * d]),
            );
            for (a, &v) in lb.dz[..rows * d].iter_mut().zip(&lb.dbelow[..rows * d]) {
                *a += v;
            }
            // +w ln q(z_l | z_{l−1}) at fixed ε reads only log σ²; the rest reaches the head through z_l.
            let head = &lb.q.output()[..rows * 2 * d];
            for (dh, &wr) in lb.dhead[..rows * 2 * d].chunks_exact_mut(2 * d).zip(w) {
                dh[..d].fill(T::zero());
                dh[d..].fill(-half * wr);
            }
            ops::reparameterize_backward(
                head,
                &lb.eps[..rows * d],
                &lb.dz[..rows * d],
                &mut lb.dhead[..rows * 2 * d],
                d,
                1,
            );
            lb.q.output_mut()[..rows * 2 * d].copy_from_slice(&lb.dhead[..rows * 2 * d]);
            let below = &below[..rows * db];
            l.q.backward(
                p,
                g,
                below,
                &[],
                rows,
                &mut lb.q,
                Some(&mut lb.dbelow[..rows * db]),
            );
            for (a, &v) in dbelow[..rows * db].iter_mut().zip(&lb.dbelow[..rows * db]) {
                *a += v;
            }
        }
    }

    /// The top layer's `[μ | log σ²]` for `rows` first-layer codes, each layer fed the means of the one below:
    /// what a stacked model encodes an item to.
    pub fn top_head<'a, T: Real>(
        &self,
        p: &[T],
        z1: &[T],
        rows: usize,
        b: &'a mut StackBuffers<T>,
    ) -> &'a [T] {
        for (i, l) in self.layers.iter().enumerate() {
            let (done, rest) = b.layers.split_at_mut(i);
            let below = if i == 0 { z1 } else { &done[i - 1].z[..] };
            let lb = &mut rest[0];
            l.q.forward(p, &below[..rows * l.below], &[], rows, &mut lb.q, false);
            let d = l.dim;
            for (z, h) in lb.z[..rows * d]
                .chunks_exact_mut(d)
                .zip(lb.q.output().chunks_exact(2 * d))
            {
                z.copy_from_slice(&h[..d]);
            }
        }
        match (self.layers.last(), b.layers.last()) {
            (Some(l), Some(lb)) => &lb.q.output()[..rows * 2 * l.dim],
            _ => &[],
        }
    }

    /// First-layer codes into `z1` for `rows` top-layer codes: each layer below the mean of p(z_{l−1} | z_l)
    /// (decoding a code), or with `draw = Some((temperature, rng))` a draw from it with its spread scaled by the
    /// temperature (1: ancestral sampling from the prior).
    pub fn descend<T: Real>(
        &self,
        p: &[T],
        top: &[T],
        rows: usize,
        b: &mut StackBuffers<T>,
        mut draw: Option<(f64, &mut dyn rand::Rng)>,
        z1: &mut [T],
    ) where
        rand_distr::StandardNormal: rand_distr::Distribution<T>,
    {
        use rand_distr::Distribution;
        let n = self.layers.len();
        if let (Some(l), Some(lb)) = (self.layers.last(), b.layers.last_mut()) {
            lb.z[..rows * l.dim].copy_from_slice(&top[..rows * l.dim]);
        }
        for i in (0..n).rev() {
            let l = &self.layers[i];
            let (done, rest) = b.layers.split_at_mut(i);
            let lb = &mut rest[0];
            l.p.forward(p, &lb.z[..rows * l.dim], &[], rows, &mut lb.p, false);
            let out: &mut [T] = if i == 0 {
                &mut *z1
            } else {
                &mut done[i - 1].z[..]
            };
            let db = l.below;
            for (o, h) in out[..rows * db]
                .chunks_exact_mut(db)
                .zip(lb.p.output().chunks_exact(2 * db))
            {
                for j in 0..db {
                    o[j] = h[j];
                    if let Some((t, rng)) = draw.as_mut() {
                        let e: T = rand_distr::StandardNormal.sample(&mut **rng);
                        o[j] += T::c(*t) * (T::c(0.5) * h[db + j]).exp() * e;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;
    use crate::core::linear::Linear;
    use crate::core::{Activation, Params};
    use crate::model::net::Layer;
    use rand::SeedableRng;

    const ROWS: usize = 3;

    /// A stack of two layers above a 4-dimensional z_1 (3 then 2 dimensions), tanh MLPs of width 5.
    fn stack(params: &mut Params<f64>) -> Stack {
        let mut layers = Vec::new();
        for (i, (below, dim)) in [(4, 3), (3, 2)].into_iter().enumerate() {
            let mut mlp = |name: &str, from: usize, to: usize| {
                let hidden = Linear::new(params, &format!("{name}{i}.0"), from, 5);
                let head = Linear::new(params, &format!("{name}{i}.head"), 5, to);
                Net::plain(
                    vec![Layer::Dense(hidden), Layer::Dense(head)],
                    Activation::Tanh,
                    None,
                )
            };
            let q = mlp("q", below, 2 * dim);
            let p = mlp("p", dim, 2 * below);
            layers.push(Upper { below, dim, q, p });
        }
        Stack { layers }
    }

    fn setup() -> (Stack, Params<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut params = Params::default();
        let s = stack(&mut params);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        s.init(&mut params.data, &mut rng);
        let z1: Vec<f64> = (0..ROWS * 4).map(|i| (i as f64 * 0.83).sin()).collect();
        let noise: Vec<f64> = (0..ROWS * 9).map(|i| (i as f64 * 1.37).cos()).collect();
        let w = vec![0.3, 1.1, 0.6];
        (s, params, z1, noise, w)
    }

    fn loss(s: &Stack, p: &[f64], z1: &[f64], noise: &[f64], w: &[f64]) -> f64 {
        let mut b = s.buffers(ROWS);
        s.split_noise(noise, ROWS, &mut b);
        s.forward(p, z1, ROWS, &mut b, true);
        -b.log_prior.iter().zip(w).map(|(l, w)| l * w).sum::<f64>()
    }

    /// Gradients by z_1 and by every weight of both layers' networks match central differences.
    #[test]
    fn stack_gradients_match_finite_differences() {
        let (s, mut params, z1, noise, w) = setup();
        let mut b = s.buffers(ROWS);
        s.split_noise(&noise, ROWS, &mut b);
        s.forward(&params.data, &z1, ROWS, &mut b, true);
        let mut dz1 = vec![0.0; z1.len()];
        s.backward(
            &params.data,
            &mut params.grad,
            &z1,
            &w,
            ROWS,
            &mut b,
            &mut dz1,
        );
        let p = params.data.clone();
        check_gradients(&z1, &dz1, |z| loss(&s, &p, z, &noise, &w), "z1");
        check_gradients(
            &params.data,
            &params.grad,
            |q| loss(&s, q, &z1, &noise, &w),
            "weights",
        );
    }

    /// The estimate is the log-density it claims: drawing ε by hand and summing the Gaussian terms gives it.
    #[test]
    fn the_log_prior_is_the_sum_of_the_layers_terms() {
        let (s, params, z1, noise, _) = setup();
        let p = &params.data;
        let mut b = s.buffers(ROWS);
        s.split_noise(&noise, ROWS, &mut b);
        s.forward(p, &z1, ROWS, &mut b, false);
        for r in 0..ROWS {
            let row = &noise[r * 9..(r + 1) * 9];
            let mut below = z1[r * 4..(r + 1) * 4].to_vec();
            let mut at = 4;
            let mut total = 0.0;
            for l in &s.layers {
                let mut qb = l.q.buffers(1);
                l.q.forward(p, &below, &[], 1, &mut qb, false);
                let h = qb.output();
                let eps = &row[at..at + l.dim];
                at += l.dim;
                let z: Vec<f64> = (0..l.dim)
                    .map(|j| h[j] + (0.5 * h[l.dim + j]).exp() * eps[j])
                    .collect();
                let mut pb = l.p.buffers(1);
                l.p.forward(p, &z, &[], 1, &mut pb, false);
                let g = pb.output();
                total += log_normal(&below, &g[..l.below], &g[l.below..])
                    - log_normal(&z, &h[..l.dim], &h[l.dim..]);
                below = z;
            }
            total += log_normal(&below, &vec![0.0; below.len()], &vec![0.0; below.len()]);
            assert!(
                (total - b.log_prior[r]).abs() < 1e-12,
                "code {r}: {total} vs {}",
                b.log_prior[r]
            );
        }
    }
}
