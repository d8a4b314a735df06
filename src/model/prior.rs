//! Priors p(z) over a latent layer's codes. A prior gives its log-density and that density's gradient, draws codes,
//! and (only where it is exact) the closed-form KL from a diagonal Gaussian; without one, the latent layer
//! estimates the KL by Monte Carlo from its own draws, so a new prior is this one trait and nothing else.
//!
//! A learned prior keeps its weights among the model's (`p`, with gradients in `g`), at the offsets it registered.
//!
//! Log-densities over z leave out the −(d/2)·ln 2π every Gaussian density over d dimensions carries: it cancels in
//! ln p(z) − ln q(z|x), the only place priors and posteriors meet.

use crate::core::Real;
use crate::core::gemm::{matmul, n, t};
use rand_distr::{Distribution, StandardNormal as Normal01};

/// ln q(z|·) of a draw z = μ + σ·ε at fixed ε, without the ln 2π terms: −½ Σ (ε² + log σ²).
pub fn log_q<T: Real>(eps: &[T], logvar: &[T]) -> f64 {
    eps.iter()
        .zip(logvar)
        .map(|(e, lv)| -0.5 * (e.f64().powi(2) + lv.f64()))
        .sum()
}

/// A density over codes z, with what training, importance sampling and sampling need of it.
pub trait Prior<T: Real>: std::fmt::Debug + Send + Sync + std::panic::RefUnwindSafe {
    /// The dimension of z.
    fn dim(&self) -> usize;

    /// ln p(z), without the ln 2π terms; `p` holds the model's weights.
    fn log_density(&self, p: &[T], z: &[T]) -> f64;

    /// Adds `w · ∂ ln p(z)/∂z` to `dz`, and `w ·` the gradient by the prior's own weights to `g` (the model's).
    fn add_log_density_grad(&self, p: &[T], z: &[T], w: T, dz: &mut [T], g: &mut [T]);

    /// Fills `out` (one code) with a draw whose spread is scaled by `temperature` (1 draws from p itself).
    fn sample(&self, p: &[T], rng: &mut dyn rand::Rng, temperature: f64, out: &mut [T]);

    /// Where the prior's weights lie among the model's (empty for a fixed prior).
    fn weights(&self) -> std::ops::Range<usize> {
        0..0
    }

    /// The closed-form KL from a diagonal Gaussian, where it is exact; `None` makes the latent layer estimate
    /// the KL by Monte Carlo.
    fn closed_form_kl(&self) -> Option<&dyn GaussianKl<T>> {
        None
    }

    /// ln p(z) − ln q(z) for a draw z = μ + σ·ε of q = N(μ, diag exp(`logvar`)), without the ln 2π terms. A prior
    /// may fuse the two densities into one pass; the sum must equal this default's up to rounding.
    fn log_ratio(&self, p: &[T], z: &[T], eps: &[T], logvar: &[T]) -> f64 {
        self.log_density(p, z) - log_q(eps, logvar)
    }

    /// [`Prior::log_density`] of each row of `z` (`out.len()` codes) into `out`. A prior may share work between the
    /// rows (a mixture prepares its components once); the values must equal the row-by-row ones up to rounding.
    fn log_densities(&self, p: &[T], z: &[T], out: &mut [f64]) {
        for (o, row) in out.iter_mut().zip(z.chunks_exact(self.dim().max(1))) {
            *o = self.log_density(p, row);
        }
    }

    /// [`Prior::log_ratio`] of each row of `z` and `eps` (draws of one posterior, `logvar`) into `out`.
    fn log_ratios(&self, p: &[T], z: &[T], eps: &[T], logvar: &[T], out: &mut [f64]) {
        let d = self.dim().max(1);
        for (o, (zr, er)) in out
            .iter_mut()
            .zip(z.chunks_exact(d).zip(eps.chunks_exact(d)))
        {
            *o = self.log_ratio(p, zr, er, logvar);
        }
    }

    /// [`Prior::add_log_density_grad`] for each row r of `z` with weight `w[r]`: into row r of `dz`, and the
    /// prior's own gradient summed over the rows into `g`.
    fn add_log_density_grads(&self, p: &[T], z: &[T], w: &[T], dz: &mut [T], g: &mut [T]) {
        let d = self.dim().max(1);
        for ((zr, dr), &wr) in z.chunks_exact(d).zip(dz.chunks_exact_mut(d)).zip(w) {
            self.add_log_density_grad(p, zr, wr, dr, g);
        }
    }
}

/// KL(N(μ, diag σ²) ‖ p) in closed form, with its gradient.
pub trait GaussianKl<T: Real> {
    /// The KL of one code's posterior (`mu`, `logvar`: one value per dimension).
    fn kl(&self, mu: &[T], logvar: &[T]) -> T;

    /// Sets `dmu[j]`, `dlogvar[j]` to `w[j] ·` the KL's gradient in dimension `j`.
    fn kl_grad(&self, mu: &[T], logvar: &[T], w: &[T], dmu: &mut [T], dlogvar: &mut [T]);

    /// One dimension's KL in f64, for reports (which dimensions a model uses).
    fn kl_dim(&self, mu: f64, logvar: f64) -> f64;
}

/// N(0, I): the VAE's prior since Kingma & Welling (2013).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandardNormal {
    /// The dimension of z.
    pub dim: usize,
}

impl<T: Real> Prior<T> for StandardNormal
where
    Normal01: Distribution<T>,
{
    fn dim(&self) -> usize {
        self.dim
    }

    fn log_density(&self, _: &[T], z: &[T]) -> f64 {
        z.iter().map(|v| -0.5 * v.f64().powi(2)).sum()
    }

    fn add_log_density_grad(&self, _: &[T], z: &[T], w: T, dz: &mut [T], _: &mut [T]) {
        for (d, &v) in dz.iter_mut().zip(z) {
            *d += w * -v;
        }
    }

    fn sample(&self, _: &[T], rng: &mut dyn rand::Rng, temperature: f64, out: &mut [T]) {
        let t = T::c(temperature);
        for o in out.iter_mut() {
            let e: T = Normal01.sample(rng);
            *o = e * t;
        }
    }

    fn closed_form_kl(&self) -> Option<&dyn GaussianKl<T>> {
        Some(self)
    }

    fn log_ratio(&self, _: &[T], z: &[T], eps: &[T], logvar: &[T]) -> f64 {
        // −½Σz² + ½Σ(ε² + log σ²), dimension by dimension in one pass.
        let mut acc = 0.0;
        for j in 0..z.len() {
            acc += -0.5 * z[j].f64().powi(2) + 0.5 * (eps[j].f64().powi(2) + logvar[j].f64());
        }
        acc
    }
}

impl<T: Real> GaussianKl<T> for StandardNormal {
    fn kl(&self, mu: &[T], logvar: &[T]) -> T {
        let mut acc = T::zero();
        for j in 0..mu.len() {
            acc += T::one() + logvar[j] - mu[j] * mu[j] - logvar[j].exp();
        }
        -T::c(0.5) * acc
    }

    fn kl_grad(&self, mu: &[T], logvar: &[T], w: &[T], dmu: &mut [T], dlogvar: &mut [T]) {
        let half = T::c(0.5);
        for j in 0..mu.len() {
            dmu[j] = w[j] * mu[j];
            dlogvar[j] = w[j] * half * (logvar[j].exp() - T::one());
        }
    }

    fn kl_dim(&self, mu: f64, logvar: f64) -> f64 {
        0.5 * (mu * mu + logvar.exp() - 1.0 - logvar)
    }
}

/// A learned mixture of K diagonal Gaussians, Σ_k π_k N(m_k, diag exp(v_k)) with π = softmax(a): the TensorFlow
/// Probability VAE example's prior (100 components, means drawn from N(0, 1), unit scales, equal weights at first).
/// Its KL from the posterior has no closed form, so the latent layer estimates it by Monte Carlo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mixture {
    /// The dimension of z.
    pub dim: usize,
    /// The number of components K.
    pub components: usize,
    /// Offset of the means `[K, dim]` among the model's weights.
    pub means: usize,
    /// Offset of the log-variances `[K, dim]`.
    pub logvars: usize,
    /// Offset of the mixing logits `[K]`.
    pub logits: usize,
}

/// A mixture's components in the form every code's density reads: precisions exp(−v), and ln π_k − ½ Σ_j v_kj,
/// computed once for a batch of codes instead of once per code and component.
struct Prepared {
    means: Vec<f64>,
    prec: Vec<f64>,
    offset: Vec<f64>,
    pi: Vec<f64>,
    /// m_kj·exp(−v_kj), for the products of a block of codes.
    mp: Vec<f64>,
    /// Σ_j m_kj²·exp(−v_kj) and Σ_j exp(−v_kj): the constant of the expanded square, and its error bound.
    m2p: Vec<f64>,
    psum: Vec<f64>,
}

/// ln Σ exp(v), taken from the largest term so none overflows.
fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + v.iter().map(|c| (c - max).exp()).sum::<f64>().ln()
}

/// Codes per block of the batched mixture, which bounds its codes × components buffers.
const BLOCK: usize = 256;

/// Largest Σ_j (|m_kj| + max|z_j|)²·exp(−v_kj) at which the square expanded as z²·p − 2z·m·p + m²·p (two matrix
/// products) keeps ln p(z) within about 1e-6 in f64; beyond it, the codes are read one by one as (z − m)²·p.
const EXPANDED_MAX: f64 = 1e10;

/// A block of codes, widened to f64, with the products over the mixture's components.
#[derive(Default)]
struct Block {
    /// The codes and their squares, `n × d` (rows of weight 0 zeroed).
    z: Vec<f64>,
    z2: Vec<f64>,
    /// ln π_k + ln N(z_b; m_k, ·) per code and component, `n × K`; then the weighted responsibilities.
    comp: Vec<f64>,
    tmp: Vec<f64>,
    /// ln p(z_b) per code.
    total: Vec<f64>,
}

impl Prepared {
    fn with_products(mut self, d: usize) -> Self {
        self.mp = self
            .means
            .iter()
            .zip(&self.prec)
            .map(|(m, p)| m * p)
            .collect();
        let rows = |v: &[f64]| v.chunks_exact(d.max(1)).map(|r| r.iter().sum()).collect();
        let m2p: Vec<f64> = self
            .means
            .iter()
            .zip(&self.mp)
            .map(|(m, mp)| m * mp)
            .collect();
        self.m2p = rows(&m2p);
        self.psum = rows(&self.prec);
        self
    }
}

impl Mixture {
    fn prepare<T: Real>(&self, p: &[T]) -> Prepared {
        let (k, d) = (self.components, self.dim);
        let norm = self.log_norm(p);
        let lv = &p[self.logvars..self.logvars + k * d];
        let logits = &p[self.logits..self.logits + k];
        Prepared {
            means: p[self.means..self.means + k * d]
                .iter()
                .map(|v| v.f64())
                .collect(),
            prec: lv.iter().map(|v| (-v.f64()).exp()).collect(),
            offset: (0..k)
                .map(|c| {
                    logits[c].f64()
                        - norm
                        - 0.5 * lv[c * d..(c + 1) * d].iter().map(|v| v.f64()).sum::<f64>()
                })
                .collect(),
            pi: logits.iter().map(|a| (a.f64() - norm).exp()).collect(),
            mp: Vec::new(),
            m2p: Vec::new(),
            psum: Vec::new(),
        }
        .with_products(d)
    }

    /// Fills `b.comp` and `b.total` for the `rows` codes of `z` whose weight is not 0 (all when `w` is `None`), by
    /// two matrix products; false, leaving them unset, where that expansion would lose precision (see
    /// [`EXPANDED_MAX`]).
    fn block<T: Real>(
        &self,
        pr: &Prepared,
        z: &[T],
        w: Option<&[T]>,
        rows: usize,
        b: &mut Block,
    ) -> bool {
        let (k, d) = (self.components, self.dim);
        b.z.clear();
        b.z.extend(z[..rows * d].iter().map(|v| v.f64()));
        if let Some(w) = w {
            for (row, w) in b.z.chunks_exact_mut(d).zip(w) {
                if *w == T::zero() {
                    row.fill(0.0);
                }
            }
        }
        let zmax = b.z.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let bound = (0..k)
            .map(|c| 2.0 * (pr.m2p[c] + zmax * zmax * pr.psum[c]))
            .fold(0.0, f64::max);
        // NaN and infinite codes also take the one-by-one path, which treats them as it always has.
        if bound > EXPANDED_MAX || bound.is_nan() || b.z.iter().any(|v| v.is_nan()) {
            return false;
        }
        b.z2.clear();
        b.z2.extend(b.z.iter().map(|v| v * v));
        b.comp.resize(rows * k, 0.0);
        b.tmp.resize(rows * k, 0.0);
        matmul(&mut b.comp, n(&b.z), t(&pr.mp), rows, k, d, false);
        matmul(&mut b.tmp, n(&b.z2), t(&pr.prec), rows, k, d, false);
        b.total.clear();
        for (row, sq) in b.comp.chunks_exact_mut(k).zip(b.tmp.chunks_exact(k)) {
            for c in 0..k {
                row[c] += pr.offset[c] - 0.5 * (sq[c] + pr.m2p[c]);
            }
            b.total.push(log_sum_exp(row));
        }
        true
    }

    /// ln π_k + ln N(z; m_k, diag exp(v_k)) of every component k into `out`, and their LSE, ln p(z).
    fn components_of<T: Real>(&self, pr: &Prepared, z: &[T], out: &mut [f64]) -> f64 {
        let d = self.dim;
        let z: Vec<f64> = z.iter().map(|v| v.f64()).collect();
        for (c, o) in out.iter_mut().enumerate() {
            let (m, pc) = (&pr.means[c * d..(c + 1) * d], &pr.prec[c * d..(c + 1) * d]);
            let q: f64 = z
                .iter()
                .zip(m)
                .zip(pc)
                .map(|((a, b), w)| (a - b) * (a - b) * w)
                .sum();
            *o = pr.offset[c] - 0.5 * q;
        }
        log_sum_exp(out)
    }

    /// One code's share of the gradients (of weight `w`, with its components `comp` and ln p(z) `total`), summed
    /// term by term: the path for codes whose expanded square would lose precision.
    #[allow(clippy::too_many_arguments)]
    fn code_grads<T: Real>(
        &self,
        pr: &Prepared,
        zr: &[T],
        w: f64,
        comp: &[f64],
        total: f64,
        dr: &mut [T],
        (gm, gv, ga): (&mut [f64], &mut [f64], &mut [f64]),
    ) {
        let d = self.dim;
        let mut dzr = vec![0.0; d];
        for c in 0..self.components {
            // Responsibility r_c of component c for z, against its mixing weight π_c.
            let r = (comp[c] - total).exp();
            ga[c] += w * (r - pr.pi[c]);
            let wr = w * r;
            let at = c * d;
            for j in 0..d {
                let diff = zr[j].f64() - pr.means[at + j];
                let t = wr * diff * pr.prec[at + j];
                dzr[j] -= t;
                gm[at + j] += t;
                gv[at + j] += 0.5 * (t * diff - wr);
            }
        }
        for (a, v) in dr.iter_mut().zip(&dzr) {
            *a += T::c(*v);
        }
    }

    /// ln π_k + ln N(z; m_k, diag exp(v_k)) without the ln 2π terms, for component `k`; `log_norm` is LSE(a).
    fn component<T: Real>(&self, p: &[T], z: &[T], k: usize, log_norm: f64) -> f64 {
        let d = self.dim;
        let (m, v) = (
            &p[self.means + k * d..][..d],
            &p[self.logvars + k * d..][..d],
        );
        let mut acc = p[self.logits + k].f64() - log_norm;
        for j in 0..d {
            let (diff, lv) = (z[j].f64() - m[j].f64(), v[j].f64());
            acc += -0.5 * (diff * diff * (-lv).exp() + lv);
        }
        acc
    }

    /// LSE over k of `f(k)`, in one pass without storing the terms.
    fn log_sum_exp(&self, f: impl Fn(usize) -> f64) -> f64 {
        let (mut max, mut sum) = (f64::NEG_INFINITY, 0.0);
        for k in 0..self.components {
            let c = f(k);
            if c > max {
                sum = sum * (max - c).exp() + 1.0;
                max = c;
            } else {
                sum += (c - max).exp();
            }
        }
        max + sum.ln()
    }

    fn log_norm<T: Real>(&self, p: &[T]) -> f64 {
        self.log_sum_exp(|k| p[self.logits + k].f64())
    }

    /// Draws the initial weights: means from N(0, 1), log-variances 0, logits 0.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng)
    where
        Normal01: Distribution<T>,
    {
        for m in &mut p[self.means..self.means + self.components * self.dim] {
            *m = Normal01.sample(rng);
        }
        p[self.logvars..self.logvars + self.components * self.dim].fill(T::zero());
        p[self.logits..self.logits + self.components].fill(T::zero());
    }
}

impl<T: Real> Prior<T> for Mixture
where
    Normal01: Distribution<T>,
{
    fn dim(&self) -> usize {
        self.dim
    }

    fn log_density(&self, p: &[T], z: &[T]) -> f64 {
        let norm = self.log_norm(p);
        self.log_sum_exp(|k| self.component(p, z, k, norm))
    }

    fn log_densities(&self, p: &[T], z: &[T], out: &mut [f64]) {
        let (pr, d) = (self.prepare(p), self.dim);
        let mut comp = vec![0.0; self.components];
        let mut b = Block::default();
        for (out, z) in out.chunks_mut(BLOCK).zip(z.chunks(BLOCK * d)) {
            let rows = out.len().min(z.len() / d);
            if self.block(&pr, z, None, rows, &mut b) {
                out[..rows].copy_from_slice(&b.total);
            } else {
                for (o, row) in out.iter_mut().zip(z.chunks_exact(d)) {
                    *o = self.components_of(&pr, row, &mut comp);
                }
            }
        }
    }

    fn log_ratios(&self, p: &[T], z: &[T], eps: &[T], logvar: &[T], out: &mut [f64]) {
        self.log_densities(p, z, out);
        for (o, e) in out.iter_mut().zip(eps.chunks_exact(self.dim)) {
            *o -= log_q(e, logvar);
        }
    }

    fn add_log_density_grads(&self, p: &[T], z: &[T], w: &[T], dz: &mut [T], g: &mut [T]) {
        let (k, d) = (self.components, self.dim);
        let pr = self.prepare(p);
        let mut comp = vec![0.0; k];
        // The weights' gradients summed over the codes in f64, added to `g` once.
        let (mut gm, mut gv, mut ga) = (vec![0.0; k * d], vec![0.0; k * d], vec![0.0; k]);
        let mut b = Block::default();
        let (mut a, mut bm, mut zt, mut z2t) =
            (Vec::new(), Vec::new(), vec![0.0; k * d], vec![0.0; k * d]);
        for ((z, dz), w) in z
            .chunks(BLOCK * d)
            .zip(dz.chunks_mut(BLOCK * d))
            .zip(w.chunks(BLOCK))
        {
            let rows = w.len().min(z.len() / d);
            if !self.block(&pr, z, Some(w), rows, &mut b) {
                for ((zr, dr), &wr) in z.chunks_exact(d).zip(dz.chunks_exact_mut(d)).zip(w) {
                    if wr != T::zero() {
                        let total = self.components_of(&pr, zr, &mut comp);
                        let grads = (&mut gm[..], &mut gv[..], &mut ga[..]);
                        self.code_grads(&pr, zr, wr.f64(), &comp, total, dr, grads);
                    }
                }
                continue;
            }
            // The responsibilities r_bc, weighted: RW[b, c] = w_b·r_bc (0 for codes of weight 0).
            let mut wsum = 0.0;
            for ((row, &total), &wr) in b.comp.chunks_exact_mut(k).zip(&b.total).zip(w) {
                let w = wr.f64();
                wsum += w;
                for v in row.iter_mut() {
                    *v = if w == 0.0 {
                        0.0
                    } else {
                        w * (*v - total).exp()
                    };
                }
            }
            let rw = &b.comp[..rows * k];
            // dz_bj = −Σ_c RW_bc (z_bj − m_cj) p_cj = −(z_bj·(RW·P)_bj − (RW·MP)_bj).
            a.resize(rows * d, 0.0);
            bm.resize(rows * d, 0.0);
            matmul(&mut a, n(rw), n(&pr.prec), rows, d, k, false);
            matmul(&mut bm, n(rw), n(&pr.mp), rows, d, k, false);
            for (i, dz) in dz[..rows * d].iter_mut().enumerate() {
                *dz += T::c(bm[i] - b.z[i] * a[i]);
            }
            // Per component: s_c = Σ_b RW_bc, RWᵀ·Z and RWᵀ·(Z∘Z) give the means' and log-variances' gradients.
            matmul(&mut zt, t(rw), n(&b.z), k, d, rows, false);
            matmul(&mut z2t, t(rw), n(&b.z2), k, d, rows, false);
            for (c, ga) in ga.iter_mut().enumerate() {
                let s: f64 = rw.iter().skip(c).step_by(k).sum();
                *ga += s - pr.pi[c] * wsum;
                for j in c * d..(c + 1) * d {
                    let (m, p) = (pr.means[j], pr.prec[j]);
                    gm[j] += p * (zt[j] - m * s);
                    gv[j] += 0.5 * (p * (z2t[j] - 2.0 * m * zt[j] + m * m * s) - s);
                }
            }
        }
        for (i, v) in gm.iter().enumerate() {
            g[self.means + i] += T::c(*v);
        }
        for (i, v) in gv.iter().enumerate() {
            g[self.logvars + i] += T::c(*v);
        }
        for (i, v) in ga.iter().enumerate() {
            g[self.logits + i] += T::c(*v);
        }
    }

    fn add_log_density_grad(&self, p: &[T], z: &[T], w: T, dz: &mut [T], g: &mut [T]) {
        let d = self.dim;
        let norm = self.log_norm(p);
        let total = self.log_sum_exp(|k| self.component(p, z, k, norm));
        let w = w.f64();
        for k in 0..self.components {
            // Responsibility r_k of component k for z, and its mixing weight π_k.
            let r = (self.component(p, z, k, norm) - total).exp();
            let pi = (p[self.logits + k].f64() - norm).exp();
            g[self.logits + k] += T::c(w * (r - pi));
            let (mo, vo) = (self.means + k * d, self.logvars + k * d);
            for j in 0..d {
                let (diff, lv) = (z[j].f64() - p[mo + j].f64(), p[vo + j].f64());
                let prec = (-lv).exp();
                dz[j] += T::c(-w * r * diff * prec);
                g[mo + j] += T::c(w * r * diff * prec);
                g[vo + j] += T::c(w * r * 0.5 * (diff * diff * prec - 1.0));
            }
        }
    }

    fn sample(&self, p: &[T], rng: &mut dyn rand::Rng, temperature: f64, out: &mut [T]) {
        let norm = self.log_norm(p);
        let u = <rand::distr::StandardUniform as Distribution<f64>>::sample(
            &rand::distr::StandardUniform,
            rng,
        );
        let mut k = self.components - 1;
        let mut acc = 0.0;
        for c in 0..self.components {
            acc += (p[self.logits + c].f64() - norm).exp();
            if u < acc {
                k = c;
                break;
            }
        }
        let d = self.dim;
        for (j, o) in out.iter_mut().enumerate() {
            let e = <Normal01 as Distribution<f64>>::sample(&Normal01, rng);
            let (m, lv) = (
                p[self.means + k * d + j].f64(),
                p[self.logvars + k * d + j].f64(),
            );
            *o = T::c(m + temperature * (0.5 * lv).exp() * e);
        }
    }

    fn weights(&self) -> std::ops::Range<usize> {
        let parts = [
            (self.means, self.components * self.dim),
            (self.logvars, self.components * self.dim),
            (self.logits, self.components),
        ];
        let start = parts.iter().map(|e| e.0).min().unwrap_or(0);
        let end = parts.iter().map(|e| e.0 + e.1).max().unwrap_or(0);
        start..end
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::gradcheck::check_gradients;

    /// N(m, diag exp(v)) with fixed m and v and no closed-form KL: exercises the Monte Carlo path of a latent
    /// layer the way a learned prior will.
    #[derive(Debug, Clone)]
    pub(crate) struct ShiftedNormal {
        pub mean: Vec<f64>,
        pub logvar: Vec<f64>,
    }

    impl Prior<f64> for ShiftedNormal {
        fn dim(&self) -> usize {
            self.mean.len()
        }
        fn log_density(&self, _: &[f64], z: &[f64]) -> f64 {
            (0..z.len())
                .map(|j| {
                    -0.5 * ((z[j] - self.mean[j]).powi(2) / self.logvar[j].exp() + self.logvar[j])
                })
                .sum()
        }
        fn add_log_density_grad(
            &self,
            _: &[f64],
            z: &[f64],
            w: f64,
            dz: &mut [f64],
            _: &mut [f64],
        ) {
            for j in 0..z.len() {
                dz[j] += w * -(z[j] - self.mean[j]) / self.logvar[j].exp();
            }
        }
        fn sample(&self, _: &[f64], rng: &mut dyn rand::Rng, temperature: f64, out: &mut [f64]) {
            for (j, o) in out.iter_mut().enumerate() {
                let e: f64 = Normal01.sample(rng);
                *o = self.mean[j] + temperature * (0.5 * self.logvar[j]).exp() * e;
            }
        }
    }

    #[test]
    fn standard_normal_density_gradient_and_kl() {
        let p = StandardNormal { dim: 3 };
        let z = [0.3, -1.2, 0.7];
        let mut g = [0.0; 3];
        Prior::<f64>::add_log_density_grad(&p, &[], &z, 1.0, &mut g, &mut []);
        check_gradients(&z, &g, |z| Prior::<f64>::log_density(&p, &[], z), "ln p");
        let (mu, lv) = ([0.4, -0.2, 1.1], [-0.3, 0.5, 0.1]);
        let kl = GaussianKl::<f64>::kl(&p, &mu, &lv);
        let by_dim: f64 = (0..3)
            .map(|j| GaussianKl::<f64>::kl_dim(&p, mu[j], lv[j]))
            .sum();
        assert!((kl - by_dim).abs() < 1e-12);
        let (mut dmu, mut dlv) = ([0.0; 3], [0.0; 3]);
        p.kl_grad(&mu, &lv, &[1.0; 3], &mut dmu, &mut dlv);
        check_gradients(&mu, &dmu, |m| p.kl(m, &lv), "KL by μ");
        check_gradients(&lv, &dlv, |v| p.kl(&mu, v), "KL by log σ²");
    }

    #[test]
    fn the_fused_log_ratio_is_the_sum_of_the_densities() {
        let p = StandardNormal { dim: 4 };
        let q = ShiftedNormal {
            mean: vec![0.0; 4],
            logvar: vec![0.0; 4],
        };
        let (z, eps, lv) = (
            [0.3, -1.2, 0.7, 2.0],
            [0.1, 0.5, -0.8, 1.3],
            [-0.4, 0.2, 0.0, 0.9],
        );
        let fused = Prior::<f64>::log_ratio(&p, &[], &z, &eps, &lv);
        let generic = q.log_ratio(&[], &z, &eps, &lv);
        assert!((fused - generic).abs() < 1e-12, "{fused} vs {generic}");
    }

    #[test]
    fn shifted_normal_gradient() {
        let p = ShiftedNormal {
            mean: vec![0.5, -1.0],
            logvar: vec![0.3, -0.6],
        };
        let z = [0.2, 0.4];
        let mut g = [0.0; 2];
        p.add_log_density_grad(&[], &z, 1.0, &mut g, &mut []);
        check_gradients(&z, &g, |z| p.log_density(&[], z), "shifted ln p");
    }

    fn mixture() -> (Mixture, Vec<f64>) {
        let m = Mixture {
            dim: 3,
            components: 4,
            means: 2,
            logvars: 2 + 12,
            logits: 2 + 24,
        };
        // Two unrelated weights first: the prior reads only its own.
        let p: Vec<f64> = (0..2 + 24 + 4).map(|i| (i as f64 * 0.61).sin()).collect();
        (m, p)
    }

    #[test]
    fn mixture_density_and_gradients_by_z_and_by_its_weights() {
        let (m, p) = mixture();
        let z = [0.3, -0.7, 1.1];
        // A direct sum of the densities, with the ln 2π terms left out as the trait says.
        let a: Vec<f64> = (0..4).map(|k| p[m.logits + k]).collect();
        let norm: f64 = a.iter().map(|x| x.exp()).sum();
        let direct = (0..4)
            .map(|k| {
                let mut dens = a[k].exp() / norm;
                for j in 0..3 {
                    let (mu, lv) = (p[m.means + k * 3 + j], p[m.logvars + k * 3 + j]);
                    dens *= (-0.5 * (z[j] - mu).powi(2) / lv.exp()).exp() / (0.5 * lv).exp();
                }
                dens
            })
            .sum::<f64>()
            .ln();
        assert!((m.log_density(&p, &z) - direct).abs() < 1e-12);
        let (mut dz, mut g) = ([0.0; 3], vec![0.0; p.len()]);
        m.add_log_density_grad(&p, &z, 1.0, &mut dz, &mut g);
        check_gradients(&z, &dz, |z| m.log_density(&p, z), "mixture by z");
        check_gradients(&p, &g, |p| m.log_density(p, &z), "mixture by its weights");
        assert_eq!(
            (g[0], g[1]),
            (0.0, 0.0),
            "weights outside the prior get no gradient"
        );
        assert_eq!(Prior::<f64>::weights(&m), 2..30);
    }

    /// The batched density, ratio and gradient (components prepared once per batch) equal the code-by-code ones.
    #[test]
    fn batched_mixture_densities_and_gradients_equal_code_by_code() {
        let (m, p) = mixture();
        let z: Vec<f64> = (0..5 * 3).map(|i| (i as f64 * 0.83).cos() * 1.7).collect();
        let eps: Vec<f64> = (0..5 * 3).map(|i| (i as f64 * 0.37).sin()).collect();
        let (lv, w) = ([0.2, -0.4, 0.6], [0.5, -1.0, 2.0, 0.0, 0.3]);
        let mut batch = [0.0; 5];
        m.log_densities(&p, &z, &mut batch);
        let mut ratios = [0.0; 5];
        m.log_ratios(&p, &z, &eps, &lv, &mut ratios);
        let (mut dz, mut g) = (vec![0.1; 15], vec![0.0; p.len()]);
        m.add_log_density_grads(&p, &z, &w, &mut dz, &mut g);
        let (mut dz1, mut g1) = (vec![0.1; 15], vec![0.0; p.len()]);
        for r in 0..5 {
            let rows = r * 3..(r + 1) * 3;
            let one = m.log_density(&p, &z[rows.clone()]);
            assert!((batch[r] - one).abs() < 1e-12, "{} vs {one}", batch[r]);
            let ratio = m.log_ratio(&p, &z[rows.clone()], &eps[rows.clone()], &lv);
            assert!((ratios[r] - ratio).abs() < 1e-12);
            m.add_log_density_grad(&p, &z[rows.clone()], w[r], &mut dz1[rows], &mut g1);
        }
        for (a, b) in dz.iter().zip(&dz1).chain(g.iter().zip(&g1)) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    /// Over several blocks, with codes of weight 0 (one of them NaN, which must not spread), the products give the
    /// code-by-code densities and gradients; so does a mixture so sharp that the expanded square would lose them.
    #[test]
    fn blocked_mixture_products_equal_code_by_code() {
        let (k, d, rows) = (37, 7, 2 * BLOCK + 45);
        let m = Mixture {
            dim: d,
            components: k,
            means: 1,
            logvars: 1 + k * d,
            logits: 1 + 2 * k * d,
        };
        for sharp in [false, true] {
            let mut p: Vec<f64> = (0..1 + 2 * k * d + k)
                .map(|i| (i as f64 * 0.61).sin())
                .collect();
            if sharp {
                // Component 3's variances near 1e-13: (z − m)² p is read directly, not as z²p − 2zmp + m²p.
                p[m.logvars + 3 * d..m.logvars + 4 * d].fill(-30.0);
                p[m.means + 3 * d..m.means + 4 * d].fill(0.5);
            }
            let mut z: Vec<f64> = (0..rows * d)
                .map(|i| (i as f64 * 0.83).cos() * 1.7)
                .collect();
            if sharp {
                // Some codes within 1e-7 of the sharp component's mean, where it holds all the density.
                for r in (0..rows).step_by(5) {
                    for j in 0..d {
                        z[r * d + j] = 0.5 + 1e-7 * (r * d + j) as f64 / (rows * d) as f64;
                    }
                }
            }
            let w: Vec<f64> = (0..rows)
                .map(|r| {
                    if r % 11 == 0 {
                        0.0
                    } else {
                        (r as f64 * 0.3).sin()
                    }
                })
                .collect();
            let mut batch = vec![0.0; rows];
            m.log_densities(&p, &z, &mut batch);
            for r in 0..rows {
                let one = m.log_density(&p, &z[r * d..(r + 1) * d]);
                assert!(
                    (batch[r] - one).abs() <= 1e-9 * one.abs().max(1.0),
                    "row {r}: {} vs {one}",
                    batch[r]
                );
            }
            z[11 * d] = f64::NAN;
            let (mut dz, mut g) = (vec![0.1; rows * d], vec![0.0; p.len()]);
            m.add_log_density_grads(&p, &z, &w, &mut dz, &mut g);
            let (mut dz1, mut g1) = (vec![0.1; rows * d], vec![0.0; p.len()]);
            for (r, &wr) in w.iter().enumerate() {
                if wr != 0.0 {
                    let at = r * d..(r + 1) * d;
                    m.add_log_density_grad(&p, &z[at.clone()], wr, &mut dz1[at], &mut g1);
                }
            }
            for (i, (a, b)) in dz.iter().zip(&dz1).chain(g.iter().zip(&g1)).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-8 * b.abs().max(1.0),
                    "sharp {sharp}, entry {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn mixture_samples_follow_its_weights_and_components() {
        use rand::SeedableRng;
        let (m, mut p) = mixture();
        // Two components carry all the weight, 1 : 3, far apart: draws split between them in proportion.
        p[m.logits..m.logits + 4].copy_from_slice(&[0.0, 3f64.ln(), -50.0, -50.0]);
        p[m.means..m.means + 3].fill(-10.0);
        p[m.means + 3..m.means + 6].fill(10.0);
        p[m.logvars..m.logvars + 6].fill(0.25f64.ln());
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
        let (mut second, n) = (0, 20_000);
        let mut z = [0.0; 3];
        for _ in 0..n {
            m.sample(&p, &mut rng, 1.0, &mut z);
            if z[0] > 0.0 {
                second += 1;
                assert!((z[0] - 10.0).abs() < 3.0, "{z:?}");
            }
        }
        let share = second as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "{share}");
    }
}
