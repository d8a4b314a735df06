//! Flow posteriors: the encoder's Gaussian draw z_0 = μ + σ·ε goes through K invertible maps z_k = f_k(z_{k−1})
//! before the decoder reads it, so ln q(z_K | x) = ln q(z_0 | x) − Σ_k ln |det ∂f_k/∂z_{k−1}|. The maps' weights
//! are global (trained with the model, not output by the encoder), as pythae's VAE_LinNF and VAE_IAF have them.
//! - Planar (Rezende & Mohamed 2015): f(z) = z + û·tanh(wᵀz + b), with û the constrained u of their appendix
//!   A.1, û = u + [m(wᵀu) − wᵀu]·w/‖w‖², m(a) = −1 + ln(1 + eᵃ), so that ûᵀw > −1 and f is invertible.
//! - Inverse autoregressive flow (Kingma et al. 2016, equations 11–14): [m, s] = MADE(z) (Germain et al. 2015),
//!   σ = sigmoid(s), f(z) = σ⊙z + (1 − σ)⊙m, ln det = Σ ln σ; the variables' order is reversed from one block to
//!   the next. The masks are applied to a private copy of the weights at every pass, so masked entries a
//!   checkpoint may hold are ignored rather than trusted.
//!
//! Forward and backward sit side by side; the tests check both in f64, and the log-determinant against a
//! finite-difference Jacobian.

use super::net::{Layer, Net, NetBuffers};
use crate::core::linear::Linear;
use crate::core::params::{Counter, Registry};
use crate::core::{Activation, Real};

/// A flow as configs store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FlowSpec {
    /// `layers` planar maps.
    Planar {
        /// The number of maps.
        layers: usize,
    },
    /// `blocks` IAF blocks, each a MADE with two hidden layers of `hidden` units.
    Iaf {
        /// The number of blocks.
        blocks: usize,
        /// Units in each of the MADE's two hidden layers.
        hidden: usize,
    },
}

impl FlowSpec {
    /// The setting's spelling of this flow (`planar:8`, `iaf:2:128`).
    pub fn name(&self) -> String {
        match self {
            FlowSpec::Planar { layers } => format!("planar:{layers}"),
            FlowSpec::Iaf { blocks, hidden } => format!("iaf:{blocks}:{hidden}"),
        }
    }

    /// The number of maps.
    pub fn steps(&self) -> usize {
        match *self {
            FlowSpec::Planar { layers } => layers,
            FlowSpec::Iaf { blocks, .. } => blocks,
        }
    }
}

/// The bias IAF's gate s starts from, so that σ = sigmoid(2) ≈ 0.88 and each block begins near the identity
/// (Kingma et al. 2016, section 4: "a forget gate bias … of +1 or +2").
const GATE_BIAS: f64 = 2.0;

/// Keeps ‖w‖² of a planar map away from 0, where û is undefined.
const TINY: f64 = 1e-12;

/// One planar map's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Planar {
    u: usize,
    w: usize,
    b: usize,
}

/// One IAF block: its MADE as registered among the model's weights, and the same layers over a private buffer that
/// holds the masked weights.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Made {
    global: Net,
    local: Net,
    /// Per layer, which entries of its `[out, in]` weight may be nonzero, kept as degrees rather than as a mask so
    /// that a wide MADE costs no memory until its buffers are made.
    masks: Vec<Mask>,
    local_len: usize,
}

/// The connectivity of one masked layer (Germain et al. 2015): entry (o, i) may be nonzero when output o's degree
/// reaches input i's, or exceeds it when `strict`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mask {
    to: Vec<usize>,
    from: Vec<usize>,
    strict: bool,
}

impl Mask {
    /// Calls `f(index, keep)` for every entry of the `[out, in]` weight, in storage order.
    fn each(&self, mut f: impl FnMut(usize, bool)) {
        let n = self.from.len();
        for (o, &t) in self.to.iter().enumerate() {
            for (i, &from) in self.from.iter().enumerate() {
                f(o * n + i, if self.strict { t > from } else { t >= from });
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Maps {
    Planar(Vec<Planar>),
    Iaf(Vec<Made>),
}

/// A flow over codes of `dim` values, its weights among the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    dim: usize,
    maps: Maps,
}

/// Buffers for `rows` codes.
#[derive(Debug, Clone)]
pub struct FlowBuffers<T> {
    rows: usize,
    /// Each map's input, `[rows, dim]`: z_0 first.
    inputs: Vec<Vec<T>>,
    /// Planar maps: tanh(wᵀz + b) per map and row.
    h: Vec<Vec<f64>>,
    /// IAF blocks: each MADE's activations and its masked weights.
    made: Vec<NetBuffers<T>>,
    masked: Vec<Vec<T>>,
    local_grad: Vec<T>,
    dx: Vec<T>,
    /// ln |det ∂z_K/∂z_0| per code, from the last forward pass.
    pub(crate) logdet: Vec<f64>,
    /// ln p(z_K) per code, which the model sets after the forward pass.
    pub(crate) log_prior: Vec<f64>,
}

impl<T> FlowBuffers<T> {
    /// Where the first `rows` base draws z_0 go before [`Flow::forward`].
    pub fn base_mut(&mut self, rows: usize) -> &mut [T] {
        let d = self.inputs[0].len() / self.rows.max(1);
        &mut self.inputs[0][..rows * d]
    }
}

fn stable_softplus(a: f64) -> f64 {
    a.max(0.0) + (-a.abs()).exp().ln_1p()
}

fn sigmoid(a: f64) -> f64 {
    1.0 / (1.0 + (-a).exp())
}

impl Planar {
    /// û, w and ûᵀw.
    fn constrained<T: Real>(&self, p: &[T], d: usize) -> (Vec<f64>, Vec<f64>, f64) {
        let u: Vec<f64> = p[self.u..self.u + d].iter().map(|v| v.f64()).collect();
        let w: Vec<f64> = p[self.w..self.w + d].iter().map(|v| v.f64()).collect();
        let a: f64 = u.iter().zip(&w).map(|(x, y)| x * y).sum();
        let nw2 = w.iter().map(|x| x * x).sum::<f64>() + TINY;
        let s = stable_softplus(a) - 1.0 - a;
        let uh: Vec<f64> = u.iter().zip(&w).map(|(x, y)| x + s * y / nw2).collect();
        let c = uh.iter().zip(&w).map(|(x, y)| x * y).sum();
        (uh, w, c)
    }

    /// Writes into `g` the gradients by u and w of a loss whose gradients by û and by w (directly) are `duh`, `dw`.
    fn backward_constraint<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        d: usize,
        duh: &[f64],
        dw: &[f64],
    ) {
        let u: Vec<f64> = p[self.u..self.u + d].iter().map(|v| v.f64()).collect();
        let w: Vec<f64> = p[self.w..self.w + d].iter().map(|v| v.f64()).collect();
        let a: f64 = u.iter().zip(&w).map(|(x, y)| x * y).sum();
        let nw2 = w.iter().map(|x| x * x).sum::<f64>() + TINY;
        let s = stable_softplus(a) - 1.0 - a;
        let ds = sigmoid(a) - 1.0;
        let wg: f64 = w.iter().zip(duh).map(|(x, y)| x * y).sum();
        for j in 0..d {
            g[self.u + j] = T::c(duh[j] + ds * w[j] * wg / nw2);
            g[self.w + j] = T::c(
                dw[j] + s * duh[j] / nw2 + wg * (ds * u[j] / nw2 - 2.0 * s * w[j] / (nw2 * nw2)),
            );
        }
    }
}

impl Made {
    /// A MADE from `d` values to `[m | s]` (`2d`), through two hidden layers of `hidden` units; `reversed` orders
    /// the variables last to first.
    fn new(
        reg: &mut impl Registry,
        name: &str,
        d: usize,
        hidden: usize,
        act: Activation,
        reversed: bool,
    ) -> Self {
        let widths = [d, hidden, hidden, 2 * d];
        let names = [
            format!("{name}.0"),
            format!("{name}.1"),
            format!("{name}.head"),
        ];
        let mut local_reg = Counter::default();
        let mut global = Vec::new();
        let mut local = Vec::new();
        for (i, n) in names.iter().enumerate() {
            global.push(Layer::Dense(Linear::new(reg, n, widths[i], widths[i + 1])));
            local.push(Layer::Dense(Linear::new(
                &mut local_reg,
                n,
                widths[i],
                widths[i + 1],
            )));
        }
        // Degrees (Germain et al. 2015): input j has its place in the order, 1..=d; a hidden unit k sees the inputs
        // up to its degree, and an output of variable j only units of lower degree than j's.
        let input: Vec<usize> = (0..d)
            .map(|j| if reversed { d - j } else { j + 1 })
            .collect();
        let units: Vec<usize> = (0..hidden).map(|k| 1 + k % (d - 1).max(1)).collect();
        let output: Vec<usize> = (0..2 * d).map(|o| input[o % d]).collect();
        let mask = |to: &[usize], from: &[usize], strict: bool| Mask {
            to: to.to_vec(),
            from: from.to_vec(),
            strict,
        };
        let masks = vec![
            mask(&units, &input, false),
            mask(&units, &units, false),
            mask(&output, &units, true),
        ];
        Made {
            global: Net::plain(global, act, None),
            local: Net::plain(local, act, None),
            masks,
            local_len: local_reg.total as usize,
        }
    }

    fn dense(net: &Net) -> impl Iterator<Item = &Linear> {
        net.layers.iter().map(|l| match l {
            Layer::Dense(l) => l,
            _ => unreachable!("a MADE has dense layers only"),
        })
    }

    /// Copies the weights into `masked`, masked entries zero.
    fn mask_weights<T: Real>(&self, p: &[T], masked: &mut [T]) {
        for ((g, l), m) in Self::dense(&self.global)
            .zip(Self::dense(&self.local))
            .zip(&self.masks)
        {
            m.each(|i, keep| masked[l.w + i] = if keep { p[g.w + i] } else { T::zero() });
            masked[l.b..l.b + l.fan_out].copy_from_slice(&p[g.b..g.b + g.fan_out]);
        }
    }

    /// Copies the private gradient into the model's, masked entries zero.
    fn unmask_grad<T: Real>(&self, local: &[T], g: &mut [T]) {
        for ((gl, l), m) in Self::dense(&self.global)
            .zip(Self::dense(&self.local))
            .zip(&self.masks)
        {
            m.each(|i, keep| g[gl.w + i] = if keep { local[l.w + i] } else { T::zero() });
            g[gl.b..gl.b + gl.fan_out].copy_from_slice(&local[l.b..l.b + l.fan_out]);
        }
    }
}

impl Flow {
    /// Registers the weights of `spec` over codes of `dim` values; an IAF's MADEs use activation `act`.
    pub fn new(reg: &mut impl Registry, spec: FlowSpec, dim: usize, act: Activation) -> Self {
        let maps = match spec {
            FlowSpec::Planar { layers } => Maps::Planar(
                (0..layers)
                    .map(|k| Planar {
                        u: reg.register(&format!("flow.{k}.u"), &[dim]),
                        w: reg.register(&format!("flow.{k}.w"), &[dim]),
                        b: reg.register(&format!("flow.{k}.b"), &[1]),
                    })
                    .collect(),
            ),
            FlowSpec::Iaf { blocks, hidden } => Maps::Iaf(
                (0..blocks)
                    .map(|k| Made::new(reg, &format!("flow.{k}"), dim, hidden, act, k % 2 == 1))
                    .collect(),
            ),
        };
        Flow { dim, maps }
    }

    /// The number of maps.
    pub fn steps(&self) -> usize {
        match &self.maps {
            Maps::Planar(v) => v.len(),
            Maps::Iaf(v) => v.len(),
        }
    }

    /// Weights of the flow.
    pub fn param_count(&self) -> usize {
        match &self.maps {
            Maps::Planar(v) => v.len() * (2 * self.dim + 1),
            Maps::Iaf(v) => v
                .iter()
                .flat_map(|m| &m.global.layers)
                .map(Layer::param_count)
                .sum(),
        }
    }

    /// One line describing the flow, for summaries.
    pub fn describe(&self) -> String {
        match &self.maps {
            Maps::Planar(v) => format!("{} planar maps over {} values", v.len(), self.dim),
            Maps::Iaf(v) => {
                let hidden = v
                    .first()
                    .and_then(|m| Made::dense(&m.global).next())
                    .map_or(0, |l| l.fan_out);
                format!(
                    "{} IAF blocks over {} values, each a MADE {}-{hidden}-{hidden}-{}",
                    v.len(),
                    self.dim,
                    self.dim,
                    2 * self.dim
                )
            }
        }
    }

    /// Initialises the weights: planar u and w like a dense layer's weights (uniform within 1/√d), b zero; each
    /// MADE as PyTorch initialises a dense layer, masked entries zero, and the gate's bias at `GATE_BIAS`.
    pub fn init<T: Real>(&self, p: &mut [T], rng: &mut impl rand::Rng) {
        let d = self.dim;
        match &self.maps {
            Maps::Planar(v) => {
                let bound = 1.0 / (d as f64).sqrt();
                for m in v {
                    crate::core::init::uniform(&mut p[m.u..m.u + d], bound, rng);
                    crate::core::init::uniform(&mut p[m.w..m.w + d], bound, rng);
                    p[m.b] = T::zero();
                }
            }
            Maps::Iaf(v) => {
                for m in v {
                    m.global.init(p, rng);
                    for (l, mask) in Made::dense(&m.global).zip(&m.masks) {
                        mask.each(|i, keep| {
                            if !keep {
                                p[l.w + i] = T::zero();
                            }
                        });
                    }
                    if let Some(head) = Made::dense(&m.global).last() {
                        p[head.b + d..head.b + 2 * d].fill(T::c(GATE_BIAS));
                    }
                }
            }
        }
    }

    /// Buffers for `rows` codes.
    pub fn buffers<T: Real>(&self, rows: usize) -> FlowBuffers<T> {
        let d = self.dim;
        let zeros = |n: usize| vec![T::zero(); n];
        let k = self.steps();
        let (h, made, masked, local) = match &self.maps {
            Maps::Planar(_) => (vec![vec![0.0; rows]; k], Vec::new(), Vec::new(), 0),
            Maps::Iaf(v) => (
                Vec::new(),
                v.iter().map(|m| m.local.buffers(rows)).collect(),
                v.iter().map(|m| zeros(m.local_len)).collect(),
                v.iter().map(|m| m.local_len).max().unwrap_or(0),
            ),
        };
        FlowBuffers {
            rows,
            inputs: (0..k.max(1)).map(|_| zeros(rows * d)).collect(),
            h,
            made,
            masked,
            local_grad: zeros(local),
            dx: zeros(rows * d),
            logdet: vec![0.0; rows],
            log_prior: vec![0.0; rows],
        }
    }

    /// Scalars [`Flow::buffers`] allocates for `rows` codes.
    pub fn buffer_len(&self, rows: usize) -> u128 {
        let (r, d, k) = (rows as u128, self.dim as u128, self.steps().max(1) as u128);
        let own = r * d * (k + 1) + 3 * r;
        own + match &self.maps {
            Maps::Planar(_) => k * r,
            Maps::Iaf(v) => v
                .iter()
                .map(|m| m.local.buffer_len(rows) + 2 * m.local_len as u128)
                .sum(),
        }
    }

    /// Maps the `rows` base draws in [`FlowBuffers::base_mut`] to `out` (z_K), setting `b.logdet`.
    pub fn forward<T: Real>(&self, p: &[T], rows: usize, b: &mut FlowBuffers<T>, out: &mut [T]) {
        assert!(rows <= b.rows, "{rows} codes exceed the flow's {}", b.rows);
        let d = self.dim;
        let n = rows * d;
        let k = self.steps();
        let logdet = &mut b.logdet[..rows];
        logdet.fill(0.0);
        if k == 0 {
            out[..n].copy_from_slice(&b.inputs[0][..n]);
            return;
        }
        for step in 0..k {
            let (done, rest) = b.inputs.split_at_mut(step + 1);
            let x = &done[step][..n];
            let y: &mut [T] = if step + 1 < k {
                &mut rest[0][..n]
            } else {
                &mut out[..n]
            };
            match &self.maps {
                Maps::Planar(v) => {
                    let (uh, w, c) = v[step].constrained(p, d);
                    let bias = p[v[step].b].f64();
                    let hs = &mut b.h[step];
                    for r in 0..rows {
                        let xr = &x[r * d..(r + 1) * d];
                        let t = bias + xr.iter().zip(&w).map(|(a, b)| a.f64() * b).sum::<f64>();
                        let h = t.tanh();
                        hs[r] = h;
                        for j in 0..d {
                            y[r * d + j] = T::c(xr[j].f64() + uh[j] * h);
                        }
                        logdet[r] += (1.0 + (1.0 - h * h) * c).abs().ln();
                    }
                }
                Maps::Iaf(v) => {
                    let m = &v[step];
                    m.mask_weights(p, &mut b.masked[step]);
                    m.local
                        .forward(&b.masked[step], x, &[], rows, &mut b.made[step], false);
                    let o = b.made[step].output();
                    for r in 0..rows {
                        let (mean, gate) = o[r * 2 * d..(r + 1) * 2 * d].split_at(d);
                        for j in 0..d {
                            let s = gate[j].f64();
                            let sig = sigmoid(s);
                            y[r * d + j] =
                                T::c(sig * x[r * d + j].f64() + (1.0 - sig) * mean[j].f64());
                            logdet[r] -= stable_softplus(-s);
                        }
                    }
                }
            }
        }
    }

    /// Backward of a loss L plus Σ_r w_r·(−ln |det| of code r) after [`Flow::forward`] on the same codes: `dz` holds
    /// ∂L/∂z_K and becomes the gradient by z_0; the flow's weight gradients are written into `g`.
    pub fn backward<T: Real>(
        &self,
        p: &[T],
        g: &mut [T],
        rows: usize,
        b: &mut FlowBuffers<T>,
        w: &[T],
        dz: &mut [T],
    ) {
        let d = self.dim;
        let n = rows * d;
        for step in (0..self.steps()).rev() {
            let x = &b.inputs[step][..n];
            match &self.maps {
                Maps::Planar(v) => {
                    let map = v[step];
                    let (uh, wv, c) = map.constrained(p, d);
                    let (mut duh, mut dw, mut db) = (vec![0.0; d], vec![0.0; d], 0.0);
                    for r in 0..rows {
                        let h = b.h[step][r];
                        let omega = w[r].f64();
                        let gr = &mut dz[r * d..(r + 1) * d];
                        let det = 1.0 + (1.0 - h * h) * c;
                        // ln |det| by h and by c = ûᵀw, weighted by −ω.
                        let dc = -omega * (1.0 - h * h) / det;
                        let mut dh = 2.0 * omega * h * c / det;
                        for j in 0..d {
                            let gj = gr[j].f64();
                            dh += uh[j] * gj;
                            duh[j] += h * gj + dc * wv[j];
                            dw[j] += dc * uh[j];
                        }
                        let dt = dh * (1.0 - h * h);
                        db += dt;
                        for j in 0..d {
                            dw[j] += dt * x[r * d + j].f64();
                            gr[j] = T::c(gr[j].f64() + dt * wv[j]);
                        }
                    }
                    map.backward_constraint(p, g, d, &duh, &dw);
                    g[map.b] = T::c(db);
                }
                Maps::Iaf(v) => {
                    let m = &v[step];
                    let o = b.made[step].output_mut();
                    for r in 0..rows {
                        let omega = w[r].f64();
                        for j in 0..d {
                            let (mi, si) = (r * 2 * d + j, r * 2 * d + d + j);
                            let (mean, s) = (o[mi].f64(), o[si].f64());
                            let sig = sigmoid(s);
                            let gy = dz[r * d + j].f64();
                            let xv = x[r * d + j].f64();
                            o[mi] = T::c(gy * (1.0 - sig));
                            o[si] =
                                T::c(gy * (xv - mean) * sig * (1.0 - sig) - omega * (1.0 - sig));
                            dz[r * d + j] = T::c(gy * sig);
                        }
                    }
                    let lg = &mut b.local_grad[..m.local_len];
                    m.local.backward(
                        &b.masked[step],
                        lg,
                        x,
                        &[],
                        rows,
                        &mut b.made[step],
                        Some(&mut b.dx[..n]),
                    );
                    m.unmask_grad(lg, g);
                    for (a, &v) in dz[..n].iter_mut().zip(&b.dx[..n]) {
                        *a += v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Params;
    use crate::core::gradcheck::check_gradients;
    use rand::SeedableRng;

    const D: usize = 3;
    const ROWS: usize = 4;

    fn flows() -> Vec<(FlowSpec, Flow, Params<f64>)> {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(5);
        [
            FlowSpec::Planar { layers: 3 },
            FlowSpec::Iaf {
                blocks: 2,
                hidden: 5,
            },
        ]
        .into_iter()
        .map(|spec| {
            let mut params = Params::default();
            let flow = Flow::new(&mut params, spec, D, Activation::Tanh);
            flow.init(&mut params.data, &mut rng);
            // Move every weight off its initial value (IAF's masked ones too, which must be ignored).
            for (i, v) in params.data.iter_mut().enumerate() {
                *v += 0.3 * (i as f64 * 0.71).sin();
            }
            params.grad = vec![0.0; params.data.len()];
            (spec, flow, params)
        })
        .collect()
    }

    fn z0() -> Vec<f64> {
        (0..ROWS * D)
            .map(|i| (i as f64 * 1.37).sin() * 1.5)
            .collect()
    }

    fn run(flow: &Flow, p: &[f64], z: &[f64], rows: usize) -> (Vec<f64>, Vec<f64>) {
        let mut b = flow.buffers(rows);
        b.base_mut(rows).copy_from_slice(z);
        let mut out = vec![0.0; rows * D];
        flow.forward(p, rows, &mut b, &mut out);
        (out, b.logdet[..rows].to_vec())
    }

    /// L = Σ r ⊙ z_K − Σ_r ω_r ln |det_r|, by z_0 and by every weight.
    #[test]
    fn flow_gradients_match_finite_differences() {
        let r: Vec<f64> = (0..ROWS * D).map(|i| (i as f64 * 0.9).cos()).collect();
        let omega = [0.7, 0.2, 1.3, 0.5];
        for (spec, flow, mut params) in flows() {
            let loss = |p: &[f64], z: &[f64]| {
                let (out, ld) = run(&flow, p, z, ROWS);
                out.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>()
                    - ld.iter().zip(&omega).map(|(a, b)| a * b).sum::<f64>()
            };
            let z = z0();
            let mut b = flow.buffers(ROWS);
            b.base_mut(ROWS).copy_from_slice(&z);
            let mut out = vec![0.0; ROWS * D];
            flow.forward(&params.data, ROWS, &mut b, &mut out);
            let mut dz = r.clone();
            flow.backward(
                &params.data,
                &mut params.grad,
                ROWS,
                &mut b,
                &omega,
                &mut dz,
            );
            let name = spec.name();
            check_gradients(&z, &dz, |z| loss(&params.data, z), &format!("{name} dz0"));
            check_gradients(
                &params.data,
                &params.grad,
                |p| loss(p, &z),
                &format!("{name} weights"),
            );
        }
    }

    /// The log-determinant is that of the map's Jacobian, taken by finite differences.
    #[test]
    fn log_determinant_matches_the_jacobian() {
        for (spec, flow, params) in flows() {
            let z = z0();
            let (_, ld) = run(&flow, &params.data, &z, ROWS);
            for r in 0..ROWS {
                let base = &z[r * D..(r + 1) * D];
                let mut jac = [[0.0; D]; D];
                for j in 0..D {
                    let (mut up, mut down) = (base.to_vec(), base.to_vec());
                    up[j] += 1e-6;
                    down[j] -= 1e-6;
                    let (a, _) = run(&flow, &params.data, &up, 1);
                    let (b, _) = run(&flow, &params.data, &down, 1);
                    for i in 0..D {
                        jac[i][j] = (a[i] - b[i]) / 2e-6;
                    }
                }
                let det = jac[0][0] * (jac[1][1] * jac[2][2] - jac[1][2] * jac[2][1])
                    - jac[0][1] * (jac[1][0] * jac[2][2] - jac[1][2] * jac[2][0])
                    + jac[0][2] * (jac[1][0] * jac[2][1] - jac[1][1] * jac[2][0]);
                assert!(
                    (det.abs().ln() - ld[r]).abs() < 1e-6,
                    "{}: ln |det J| {} vs {}",
                    spec.name(),
                    det.abs().ln(),
                    ld[r]
                );
            }
        }
    }

    /// An IAF block is autoregressive: output j moves only with inputs before it in the block's order (forward
    /// for the first block, reversed for the second), whatever the checkpoint holds in the masked entries.
    #[test]
    fn iaf_blocks_are_autoregressive_in_alternating_orders() {
        let (_, _, params) = flows().remove(1);
        for (reversed, blocks) in [(false, 1), (true, 2)] {
            let mut p2 = Params::<f64>::default();
            let flow = Flow::new(
                &mut p2,
                FlowSpec::Iaf { blocks, hidden: 5 },
                D,
                Activation::Tanh,
            );
            let last = match &flow.maps {
                Maps::Iaf(v) => v.last().unwrap().clone(),
                Maps::Planar(_) => unreachable!(),
            };
            let single = Flow {
                dim: D,
                maps: Maps::Iaf(vec![last]),
            };
            let p = &params.data[..p2.data.len().min(params.data.len())];
            let mut p = p.to_vec();
            p.resize(p2.data.len(), 0.4);
            let base = [0.3, -0.8, 1.1];
            let (y, _) = run(&single, &p, &base, 1);
            for j in 0..D {
                let mut moved = base;
                moved[j] += 0.5;
                let (y2, _) = run(&single, &p, &moved, 1);
                for i in 0..D {
                    let before = if reversed { i > j } else { i < j };
                    if before {
                        assert_eq!(y[i], y2[i], "output {i} moved with input {j}");
                    }
                }
            }
        }
    }
}
