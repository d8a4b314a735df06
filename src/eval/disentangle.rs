//! Disentanglement metrics of a representation against known factors (Locatello et al. 2019's five, with the
//! sample sizes and bin counts `disentanglement_lib` uses), and Burda et al.'s active units.
//!
//! Each metric has a sampling half (draw factor values, see their codes through an [`Encoder`]) and a scoring
//! half, a pure function of codes and factor classes that `bench/disentanglement_reference.py` recomputes in
//! NumPy. What differs from `disentanglement_lib`, and why:
//! - SAP scores each (code, factor) pair by a one-dimensional nearest-class-mean classifier (its accuracy on
//!   held-out items) instead of a linear SVM: on one input dimension both place thresholds between classes.
//! - DCI's importances are the absolute weights of a linear least-squares regression of each standardised
//!   factor on the standardised codes (Eastwood & Williams 2018's lasso at zero penalty: a penalty zeroes the
//!   weights of pure noise and leaves a few arbitrary ones, which scores noise as disentangled), not
//!   gradient-boosted trees; its informativeness is the held-out R² of that regression (1: every factor
//!   predicted exactly), averaged over factors.
//! - The FactorVAE metric leaves out only codes whose global variance is 0 (`disentanglement_lib`'s threshold
//!   of 0 keeps them and divides by zero).
//! - The β-VAE metric standardises its features (training mean and deviation) before the logistic regression,
//!   so that, like the other four, it does not change when a code is rescaled: scikit-learn's L2 penalty on
//!   raw features would favour large codes.

use crate::error::{Error, Result};
use rand::{Rng, RngExt, SeedableRng};

/// Codes of rows of factor classes: `rows` holds `n × sizes.len()` classes, the answer `n × dim` codes.
pub type Encoder<'a> = dyn FnMut(&[u32]) -> Result<Vec<f64>> + 'a;

/// Sample sizes and bins (`disentanglement_lib`'s defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sizes {
    /// Training points of every metric (β-VAE and FactorVAE: votes or features; others: items).
    pub train: usize,
    /// Held-out points.
    pub eval: usize,
    /// Items per β-VAE / FactorVAE point.
    pub batch: usize,
    /// Items estimating the FactorVAE metric's global variances.
    pub variance: usize,
    /// MIG's histogram bins per code.
    pub bins: usize,
}

impl Sizes {
    /// `disentanglement_lib`'s sizes with `points` training points, half as many held out, and `points` items
    /// estimating the FactorVAE metric's variances (`elbo disentanglement --points`).
    pub fn with_points(points: usize) -> Sizes {
        Sizes {
            train: points,
            eval: (points / 2).max(1),
            variance: points,
            ..Sizes::default()
        }
    }
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            train: 10_000,
            eval: 5_000,
            batch: 64,
            variance: 10_000,
            bins: 20,
        }
    }
}

/// The five metrics, each in [0, 1] (1: one code per factor), but informativeness, a held-out R², which falls
/// below 0 when the codes predict the factors worse than their mean does.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Scores {
    /// Higgins et al.'s: held-out accuracy of a logistic regression telling which factor a batch held fixed.
    pub beta_vae: f64,
    /// Kim & Mnih's: held-out accuracy of a majority vote from the least-varying (normalised) code.
    pub factor_vae: f64,
    /// Chen et al.'s mutual information gap.
    pub mig: f64,
    /// Kumar et al.'s separated attribute predictability.
    pub sap: f64,
    /// Eastwood & Williams' disentanglement.
    pub dci_disentanglement: f64,
    /// Eastwood & Williams' completeness.
    pub dci_completeness: f64,
    /// Eastwood & Williams' informativeness (held-out R² of the factors from the codes).
    pub dci_informativeness: f64,
}

/// The grid the factors span: every factor's number of values, and which of them are scored (those with more
/// than one value).
#[derive(Debug, Clone)]
pub struct Grid {
    /// Values per factor.
    pub sizes: Vec<usize>,
}

impl Grid {
    /// The factors that vary.
    pub fn scored(&self) -> Vec<usize> {
        (0..self.sizes.len())
            .filter(|&f| self.sizes[f] > 1)
            .collect()
    }

    /// `n` rows of factor classes drawn uniformly and independently.
    pub fn draw(&self, n: usize, rng: &mut impl Rng) -> Vec<u32> {
        let mut rows = Vec::with_capacity(n * self.sizes.len());
        for _ in 0..n {
            for &s in &self.sizes {
                rows.push(rng.random_range(0..s as u32));
            }
        }
        rows
    }

    /// The scored factors' columns of `rows`.
    pub fn scored_columns(&self, rows: &[u32]) -> Vec<u32> {
        let f = self.sizes.len();
        let scored = self.scored();
        rows.chunks_exact(f)
            .flat_map(|r| scored.iter().map(move |&j| r[j]))
            .collect()
    }
}

/// The widest codes the metrics take: DCI solves a `d × d` system and the β-VAE metric's regression has
/// `factors × (d + 1)` weights, so a representation much wider than a latent space (an image's pixels) would
/// take hours.
pub const MAX_CODES: usize = 1024;

/// The largest code magnitude the metrics take: beyond it squares and sums of codes overflow an f64.
pub const MAX_MAGNITUDE: f64 = 1e150;

/// The smallest scale of a code that varies: a code whose largest magnitude is below it has squares that
/// underflow to 0, so it would read as constant.
pub const MIN_SCALE: f64 = 1e-150;

/// Why codes (`n × d`, from `what`) cannot be scored, if they cannot: too wide, not finite, too large, or a
/// code so small throughout that its squares vanish. For the whole of a representation's codes; a batch of them
/// is checked by [`batch_problem`], since one batch may see only a code's small values.
pub fn codes_problem(z: &[f64], d: usize, what: &str) -> Option<String> {
    batch_problem(z, d, what).or_else(|| {
        let mut largest = Vec::new();
        widen(&mut largest, z, d);
        scale_problem(&largest, z.len() / d.max(1), what)
    })
}

/// Why a batch of codes cannot be scored, if it cannot: too wide, not finite or too large.
pub fn batch_problem(z: &[f64], d: usize, what: &str) -> Option<String> {
    use crate::error::shown;
    if d > MAX_CODES {
        return Some(format!(
            "{what} are {d} numbers wide, and the metrics take at most {MAX_CODES}: score a latent representation (a VAE's posterior means), not raw data"
        ));
    }
    let i = z
        .iter()
        .position(|v| !v.is_finite() || v.abs() > MAX_MAGNITUDE)?;
    let (row, col) = (i / d.max(1), i % d.max(1));
    Some(if z[i].is_finite() {
        format!(
            "{what} hold {} at row {row}, code {col}: codes must be at most {MAX_MAGNITUDE:e} in magnitude (rescale them; no metric changes when a code is rescaled)",
            shown(z[i])
        )
    } else {
        format!(
            "{what} hold {} at row {row}, code {col}: codes must be finite",
            z[i]
        )
    })
}

/// Raises `largest` (one per code) to the magnitudes in `z`.
fn widen(largest: &mut Vec<f64>, z: &[f64], d: usize) {
    largest.resize(d, 0.0);
    for r in z.chunks_exact(d.max(1)) {
        for (m, &v) in largest.iter_mut().zip(r) {
            *m = m.max(v.abs());
        }
    }
}

/// Why codes whose largest magnitudes over `rows` rows are `largest` cannot be scored: one that is not all 0
/// stays below [`MIN_SCALE`].
fn scale_problem(largest: &[f64], rows: usize, what: &str) -> Option<String> {
    let col = largest.iter().position(|&m| m > 0.0 && m < MIN_SCALE)?;
    Some(format!(
        "code {col} of {what} is at most {} in magnitude over {rows} rows: a code that is not all 0 must reach {MIN_SCALE:e} somewhere, or its squares vanish and it reads as constant (rescale it; no metric changes when a code is rescaled)",
        crate::error::shown(largest[col]),
    ))
}

/// The largest magnitude of each code over every batch an encoder returned, checked when the metric is done.
#[derive(Default)]
struct Seen {
    largest: Vec<f64>,
    rows: usize,
}

impl Seen {
    fn check<T>(&self, result: Result<T>) -> Result<T> {
        let value = result?;
        match scale_problem(&self.largest, self.rows, "the codes") {
            Some(why) => Err(Error::Config(why)),
            None => Ok(value),
        }
    }
}

/// `encode`, with every answer checked by [`batch_problem`] (one width throughout) and its magnitudes kept in
/// `seen`.
fn checked<'a, 'b, 'c>(
    encode: &'a mut Encoder<'b>,
    factors: usize,
    seen: &'c mut Seen,
) -> impl FnMut(&[u32]) -> Result<Vec<f64>> + use<'a, 'b, 'c> {
    let mut width = None;
    move |rows: &[u32]| {
        let z = encode(rows)?;
        let n = rows.len() / factors.max(1);
        let d = z.len() / n.max(1);
        if z.len() != n * d || width.is_some_and(|w| w != d) {
            return Err(Error::Config(format!(
                "the encoder returned {} numbers for {n} items{}: return one row of codes per item, always of the same width",
                z.len(),
                width.map_or(String::new(), |w| format!(" (before: {w} per item)"))
            )));
        }
        width = Some(d);
        if let Some(why) = batch_problem(&z, d, "the codes") {
            return Err(Error::Config(why));
        }
        widen(&mut seen.largest, &z, d);
        seen.rows += n;
        Ok(z)
    }
}

/// All five metrics, each from its own draws (seeded by `seed`).
pub fn all(grid: &Grid, encode: &mut Encoder, sizes: Sizes, seed: u64) -> Result<Scores> {
    let mut seen = Seen::default();
    let scores = all_unchecked(
        grid,
        &mut checked(encode, grid.sizes.len(), &mut seen),
        sizes,
        seed,
    );
    seen.check(scores)
}

fn all_unchecked(grid: &Grid, encode: &mut Encoder, sizes: Sizes, seed: u64) -> Result<Scores> {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let beta_vae = beta_vae(grid, encode, sizes, &mut rng)?;
    let factor_vae = factor_vae(grid, encode, sizes, &mut rng)?;
    let (train, test) = (
        grid.draw(sizes.train, &mut rng),
        grid.draw(sizes.eval, &mut rng),
    );
    let (ztr, zte) = (encode(&train)?, encode(&test)?);
    let (ytr, yte) = (grid.scored_columns(&train), grid.scored_columns(&test));
    let k = grid.scored().len();
    let d = ztr.len() / sizes.train.max(1);
    let dci = dci(&ztr, &ytr, &zte, &yte, d, k);
    Ok(Scores {
        beta_vae,
        factor_vae,
        mig: mig(&ztr, &ytr, d, k, sizes.bins),
        sap: sap(&ztr, &ytr, &zte, &yte, d, k),
        dci_disentanglement: dci.0,
        dci_completeness: dci.1,
        dci_informativeness: dci.2,
    })
}

/// Burda et al.'s active units: codes whose mean over items varies, Cov_x(E_q\[u\]) > 0.01.
pub fn active_units(mu: &[f64], d: usize) -> usize {
    variances(mu, d, 0).iter().filter(|&&v| v > 0.01).count()
}

/// Per-column variance of an `n × d` matrix with `ddof` (NumPy's `np.var(…, ddof=…)`).
fn variances(z: &[f64], d: usize, ddof: usize) -> Vec<f64> {
    let n = z.len() / d.max(1);
    let mut mean = vec![0.0; d];
    for r in z.chunks_exact(d) {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut var = vec![0.0; d];
    for r in z.chunks_exact(d) {
        for j in 0..d {
            var[j] += (r[j] - mean[j]).powi(2);
        }
    }
    var.iter_mut()
        .for_each(|v| *v /= (n.saturating_sub(ddof)).max(1) as f64);
    var
}

// ---------------------------------------------------------------------------------------------- β-VAE metric

/// The β-VAE metric's points: for each, a scored factor chosen uniformly (its label, 0-based among the scored
/// ones) and the mean |z₁ − z₂| over `batch` pairs of items sharing that factor's value.
pub fn beta_vae_points(
    grid: &Grid,
    encode: &mut Encoder,
    batch: usize,
    points: usize,
    rng: &mut impl Rng,
) -> Result<(Vec<f64>, Vec<usize>)> {
    let scored = grid.scored();
    let f = grid.sizes.len();
    let mut feats = Vec::new();
    let mut labels = Vec::with_capacity(points);
    for _ in 0..points {
        let label = rng.random_range(0..scored.len());
        let fixed = scored[label];
        let a = grid.draw(batch, rng);
        let mut b = grid.draw(batch, rng);
        for i in 0..batch {
            b[i * f + fixed] = a[i * f + fixed];
        }
        let (za, zb) = (encode(&a)?, encode(&b)?);
        let d = za.len() / batch;
        let mut feat = vec![0.0; d];
        for (ra, rb) in za.chunks_exact(d).zip(zb.chunks_exact(d)) {
            for j in 0..d {
                feat[j] += (ra[j] - rb[j]).abs() / batch as f64;
            }
        }
        feats.extend(feat);
        labels.push(label);
    }
    Ok((feats, labels))
}

/// The β-VAE metric alone, from its own draws seeded by `seed` (the same draws [`all`] makes first).
pub fn beta_vae_metric(grid: &Grid, encode: &mut Encoder, sizes: Sizes, seed: u64) -> Result<f64> {
    let mut seen = Seen::default();
    let score = beta_vae(
        grid,
        &mut checked(encode, grid.sizes.len(), &mut seen),
        sizes,
        &mut rand_pcg::Pcg64Mcg::seed_from_u64(seed),
    );
    seen.check(score)
}

/// The FactorVAE metric alone, from its own draws seeded by `seed`.
pub fn factor_vae_metric(
    grid: &Grid,
    encode: &mut Encoder,
    sizes: Sizes,
    seed: u64,
) -> Result<f64> {
    let mut seen = Seen::default();
    let score = factor_vae(
        grid,
        &mut checked(encode, grid.sizes.len(), &mut seen),
        sizes,
        &mut rand_pcg::Pcg64Mcg::seed_from_u64(seed),
    );
    seen.check(score)
}

fn beta_vae(grid: &Grid, encode: &mut Encoder, s: Sizes, rng: &mut impl Rng) -> Result<f64> {
    let (xtr, ytr) = beta_vae_points(grid, encode, s.batch, s.train, rng)?;
    let (xte, yte) = beta_vae_points(grid, encode, s.batch, s.eval, rng)?;
    Ok(beta_vae_score(&xtr, &ytr, &xte, &yte, grid.scored().len()))
}

/// Held-out accuracy of a multinomial logistic regression (scikit-learn's default `LogisticRegression`: L2 with
/// C = 1, intercepts unpenalised) fitted to the training points after standardising each feature by the
/// training points' mean and deviation.
pub fn beta_vae_score(
    xtr: &[f64],
    ytr: &[usize],
    xte: &[f64],
    yte: &[usize],
    classes: usize,
) -> f64 {
    let d = xtr.len() / ytr.len().max(1);
    let standard = standardiser(xtr, d);
    let (xtr, xte) = (standard(xtr), standard(xte));
    let w = logistic_fit(&xtr, ytr, d, classes, 1.0);
    let right = xte
        .chunks_exact(d)
        .zip(yte)
        .filter(|(x, y)| logistic_predict(&w, x, classes) == **y)
        .count();
    right as f64 / yte.len().max(1) as f64
}

/// A function standardising `n × d` matrices by the column means and deviations (ddof 0) of `z`; a constant
/// column becomes 0.
fn standardiser(z: &[f64], d: usize) -> impl Fn(&[f64]) -> Vec<f64> + use<> {
    let (mean, sd) = column_stats(z, d);
    move |z: &[f64]| {
        z.chunks_exact(d)
            .flat_map(|r| {
                (0..d).map(|j| {
                    if sd[j] > 0.0 {
                        (r[j] - mean[j]) / sd[j]
                    } else {
                        0.0
                    }
                })
            })
            .collect()
    }
}

/// The penalised objective of multinomial logistic regression, ½‖W‖² + C Σ −ln softmax(Wx + b)[y] (the
/// intercepts b carry a 1e-9 penalty only so that the optimum is unique: softmax ignores a shift of all of
/// them), and its gradient, for `classes × (d + 1)` weights `w`, the intercept last in each row.
fn logistic_objective(
    w: &[f64],
    x: &[f64],
    y: &[usize],
    d: usize,
    classes: usize,
    c: f64,
    g: &mut [f64],
) -> f64 {
    let mut f = 0.0;
    g.iter_mut().for_each(|v| *v = 0.0);
    for (xi, &yi) in x.chunks_exact(d).zip(y) {
        let mut pr = logits(w, xi, classes);
        let lse = log_sum_exp(&pr);
        f += c * (lse - pr[yi]);
        pr.iter_mut().for_each(|v| *v = (*v - lse).exp());
        for (a, &p) in pr.iter().enumerate() {
            let r = c * (p - f64::from(u8::from(a == yi)));
            let row = &mut g[a * (d + 1)..(a + 1) * (d + 1)];
            for (gj, &xj) in row.iter_mut().zip(xi) {
                *gj += r * xj;
            }
            row[d] += r;
        }
    }
    for (i, (gi, &wi)) in g.iter_mut().zip(w).enumerate() {
        let reg = if i % (d + 1) < d { 1.0 } else { 1e-9 };
        f += 0.5 * reg * wi * wi;
        *gi += reg * wi;
    }
    f
}

/// Multinomial logistic regression by L-BFGS (scikit-learn's default solver; memory 10 pairs of vectors of
/// `classes × (d + 1)`, where Newton's method would need their square), run to a gradient near 0 rather
/// than to scikit-learn's 100 iterations, so the answer is the objective's minimum. Returns `classes × (d + 1)`
/// weights, the intercept last in each row.
fn logistic_fit(x: &[f64], y: &[usize], d: usize, classes: usize, c: f64) -> Vec<f64> {
    const MEMORY: usize = 10;
    let p = classes * (d + 1);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
    let mut w = vec![0.0; p];
    let mut g = vec![0.0; p];
    let mut f = logistic_objective(&w, x, y, d, classes, c, &mut g);
    let tolerance = 1e-10 * (y.len().max(1) as f64);
    let mut pairs: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let (mut trial, mut gt) = (vec![0.0; p], vec![0.0; p]);
    for _ in 0..10_000 {
        if g.iter().map(|v| v.abs()).fold(0.0, f64::max) <= tolerance {
            break;
        }
        // The two-loop recursion: the step −H g with H the inverse-Hessian estimate of the last pairs.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(pairs.len());
        for (s, yv, rho) in pairs.iter().rev() {
            let a = rho * dot(s, &q);
            q.iter_mut().zip(yv).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        if let Some((s, yv, _)) = pairs.back() {
            let gamma = dot(s, yv) / dot(yv, yv);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, yv, rho), a) in pairs.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(yv, &q);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut slope = -dot(&g, &q);
        if slope >= 0.0 {
            // Not a descent direction (rounding far along): restart from the gradient.
            pairs.clear();
            q.clone_from(&g);
            slope = -dot(&g, &g);
        }
        // Backtracking to Armijo's condition; the first step of L-BFGS is usually taken whole.
        let mut t = if pairs.is_empty() {
            1.0 / g.iter().map(|v| v.abs()).fold(1.0, f64::max)
        } else {
            1.0
        };
        let ft = loop {
            for i in 0..p {
                trial[i] = w[i] - t * q[i];
            }
            let ft = logistic_objective(&trial, x, y, d, classes, c, &mut gt);
            if ft <= f + 1e-4 * t * slope || t < 1e-20 {
                break ft;
            }
            t *= 0.5;
        };
        let s: Vec<f64> = trial.iter().zip(&w).map(|(a, b)| a - b).collect();
        let yv: Vec<f64> = gt.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy = dot(&s, &yv);
        let stalled = f - ft <= 1e-15 * f.abs().max(1.0);
        std::mem::swap(&mut w, &mut trial);
        std::mem::swap(&mut g, &mut gt);
        f = ft;
        if stalled {
            break;
        }
        if sy > 0.0 {
            if pairs.len() == MEMORY {
                pairs.pop_front();
            }
            pairs.push_back((s, yv, 1.0 / sy));
        }
    }
    w
}

fn logits(w: &[f64], x: &[f64], classes: usize) -> Vec<f64> {
    let d = x.len();
    (0..classes)
        .map(|k| {
            let r = &w[k * (d + 1)..(k + 1) * (d + 1)];
            r[d] + r[..d].iter().zip(x).map(|(a, b)| a * b).sum::<f64>()
        })
        .collect()
}

fn logistic_predict(w: &[f64], x: &[f64], classes: usize) -> usize {
    argmax(&logits(w, x, classes))
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// The first index of the largest value.
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Solves `h s = g` for a symmetric positive-definite `h` (`p × p`, overwritten) by Cholesky.
fn solve_spd(h: &mut [f64], g: &[f64], p: usize) -> Vec<f64> {
    for j in 0..p {
        let mut s = h[j * p + j];
        for k in 0..j {
            s -= h[j * p + k] * h[j * p + k];
        }
        let ljj = s.max(1e-300).sqrt();
        h[j * p + j] = ljj;
        for i in j + 1..p {
            let mut s = h[i * p + j];
            for k in 0..j {
                s -= h[i * p + k] * h[j * p + k];
            }
            h[i * p + j] = s / ljj;
        }
    }
    let mut y = g.to_vec();
    for i in 0..p {
        for k in 0..i {
            y[i] -= h[i * p + k] * y[k];
        }
        y[i] /= h[i * p + i];
    }
    for i in (0..p).rev() {
        for k in i + 1..p {
            y[i] -= h[k * p + i] * y[k];
        }
        y[i] /= h[i * p + i];
    }
    y
}

// ------------------------------------------------------------------------------------------ FactorVAE metric

/// One FactorVAE vote: a scored factor (0-based among the scored ones) fixed at one value over `batch` items,
/// and the code whose variance over them, divided by its global variance, is least (`None` when no code
/// varies globally).
pub fn factor_vae_vote(
    grid: &Grid,
    encode: &mut Encoder,
    batch: usize,
    global: &[f64],
    rng: &mut impl Rng,
) -> Result<(usize, Option<usize>)> {
    let scored = grid.scored();
    let f = grid.sizes.len();
    let label = rng.random_range(0..scored.len());
    let fixed = scored[label];
    let mut rows = grid.draw(batch, rng);
    for i in 1..batch {
        rows[i * f + fixed] = rows[fixed];
    }
    let z = encode(&rows)?;
    Ok((label, least_varying(&z, global)))
}

/// The code of least variance (ddof 1) relative to `global`, among codes whose global variance is positive.
pub fn least_varying(z: &[f64], global: &[f64]) -> Option<usize> {
    let local = variances(z, global.len(), 1);
    (0..global.len())
        .filter(|&j| global[j] > 0.0)
        .min_by(|&a, &b| (local[a] / global[a]).total_cmp(&(local[b] / global[b])))
}

fn factor_vae(grid: &Grid, encode: &mut Encoder, s: Sizes, rng: &mut impl Rng) -> Result<f64> {
    let rows = grid.draw(s.variance, rng);
    let z = encode(&rows)?;
    let d = z.len() / s.variance.max(1);
    let global = variances(&z, d, 1);
    let mut votes = |n: usize| -> Result<Vec<(usize, Option<usize>)>> {
        (0..n)
            .map(|_| factor_vae_vote(grid, encode, s.batch, &global, rng))
            .collect()
    };
    let (train, eval) = (votes(s.train)?, votes(s.eval)?);
    Ok(factor_vae_score(&train, &eval, d, grid.scored().len()))
}

/// Held-out accuracy of the majority-vote classifier: each code predicts the factor it was most often the
/// least-varying code for in training (ties to the first factor). A vote naming no code (no code varies)
/// predicts the commonest factor in training: the classifier knows nothing, and scores chance, not 0.
pub fn factor_vae_score(
    train: &[(usize, Option<usize>)],
    eval: &[(usize, Option<usize>)],
    d: usize,
    factors: usize,
) -> f64 {
    if train.iter().all(|(_, c)| c.is_none()) {
        let mut count = vec![0usize; factors];
        train.iter().for_each(|&(k, _)| count[k] += 1);
        let commonest = (0..factors).fold(0, |b, k| if count[k] > count[b] { k } else { b });
        let right = eval.iter().filter(|&&(k, _)| k == commonest).count();
        return right as f64 / eval.len().max(1) as f64;
    }
    let mut votes = vec![0usize; d * factors];
    for &(k, c) in train {
        if let Some(c) = c {
            votes[c * factors + k] += 1;
        }
    }
    let predict: Vec<usize> = (0..d)
        .map(|c| {
            let row = &votes[c * factors..(c + 1) * factors];
            (0..factors).fold(0, |b, k| if row[k] > row[b] { k } else { b })
        })
        .collect();
    let right = eval
        .iter()
        .filter(|&&(k, c)| c.is_some_and(|c| predict[c] == k))
        .count();
    right as f64 / eval.len().max(1) as f64
}

// ------------------------------------------------------------------------------------------------------- MIG

/// Chen et al.'s mutual information gap: each code discretised into `bins` equal-width bins over its range
/// (NumPy's `np.digitize(z, np.histogram(z, bins)[1][:-1])`), the mutual information of each code with each
/// factor (natural log), and per factor the gap between its two most informative codes over its entropy,
/// averaged over factors.
pub fn mig(z: &[f64], y: &[u32], d: usize, k: usize, bins: usize) -> f64 {
    let n = y.len() / k.max(1);
    let binned: Vec<Vec<u32>> = (0..d)
        .map(|j| {
            let col: Vec<f64> = (0..n).map(|i| z[i * d + j]).collect();
            discretise(&col, bins)
        })
        .collect();
    let mut total = 0.0;
    for f in 0..k {
        let v: Vec<u32> = (0..n).map(|i| y[i * k + f]).collect();
        let h = mutual_information(&v, &v);
        let mut m: Vec<f64> = binned.iter().map(|b| mutual_information(b, &v)).collect();
        m.sort_by(|a, b| b.total_cmp(a));
        let gap = m[0] - m.get(1).copied().unwrap_or(0.0);
        total += if h > 0.0 { gap / h } else { 0.0 };
    }
    total / k.max(1) as f64
}

/// Bin indices 1..=bins of equal-width bins over the values' range, as `np.digitize` with `np.histogram`'s
/// edges numbers them (the largest value falls in the last bin).
fn discretise(col: &[f64], bins: usize) -> Vec<u32> {
    let lo = col.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // np.histogram widens an empty range to [lo − 0.5, hi + 0.5].
    let (lo, hi) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let step = (hi - lo) / bins as f64;
    let edges: Vec<f64> = (0..bins).map(|b| b as f64 * step + lo).collect();
    col.iter()
        .map(|&x| edges.iter().filter(|&&e| e <= x).count() as u32)
        .collect()
}

/// Mutual information (nats) of two discrete labelings, as scikit-learn's `mutual_info_score`.
fn mutual_information(a: &[u32], b: &[u32]) -> f64 {
    use std::collections::HashMap;
    let n = a.len() as f64;
    let mut joint: HashMap<(u32, u32), f64> = HashMap::new();
    let mut pa: HashMap<u32, f64> = HashMap::new();
    let mut pb: HashMap<u32, f64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *joint.entry((x, y)).or_default() += 1.0;
        *pa.entry(x).or_default() += 1.0;
        *pb.entry(y).or_default() += 1.0;
    }
    let mut keys: Vec<_> = joint.into_iter().collect();
    // A fixed order of summation: the same value on every run.
    keys.sort_by_key(|(k, _)| *k);
    keys.iter()
        .map(|&((x, y), c)| c / n * (c * n / (pa[&x] * pb[&y])).ln())
        .sum::<f64>()
        .max(0.0)
}

// ------------------------------------------------------------------------------------------------------- SAP

/// Kumar et al.'s SAP: for every code and factor, the held-out accuracy of predicting the factor from that
/// code alone (the class whose training mean of the code is nearest); per factor the gap between its two best
/// codes, averaged.
pub fn sap(ztr: &[f64], ytr: &[u32], zte: &[f64], yte: &[u32], d: usize, k: usize) -> f64 {
    let (ntr, nte) = (ytr.len() / k.max(1), yte.len() / k.max(1));
    let mut total = 0.0;
    for f in 0..k {
        // The classes the training items hold, in order (found by search: a class may be any u32).
        let mut classes: Vec<u32> = ytr.iter().skip(f).step_by(k).copied().collect();
        classes.sort_unstable();
        classes.dedup();
        let mut acc: Vec<f64> = (0..d)
            .map(|j| {
                let m = classes.len();
                let (mut sum, mut count) = (vec![0.0; m], vec![0usize; m]);
                for i in 0..ntr {
                    let c = classes
                        .binary_search(&ytr[i * k + f])
                        .expect("a training class");
                    sum[c] += ztr[i * d + j];
                    count[c] += 1;
                }
                let means: Vec<(usize, f64)> = (0..m)
                    .map(|c| (classes[c] as usize, sum[c] / count[c] as f64))
                    .collect();
                let right = (0..nte)
                    .filter(|&i| {
                        let x = zte[i * d + j];
                        let best = means
                            .iter()
                            .min_by(|a, b| (x - a.1).abs().total_cmp(&(x - b.1).abs()))
                            .map(|m| m.0);
                        best == Some(yte[i * k + f] as usize)
                    })
                    .count();
                right as f64 / nte.max(1) as f64
            })
            .collect();
        acc.sort_by(|a, b| b.total_cmp(a));
        total += acc[0] - acc.get(1).copied().unwrap_or(0.0);
    }
    total / k.max(1) as f64
}

// ------------------------------------------------------------------------------------------------------- DCI

/// Eastwood & Williams' disentanglement, completeness and informativeness from a least-squares regression of
/// each standardised factor on the standardised codes (training items), with importances |w|; informativeness
/// is the held-out R², averaged over factors.
pub fn dci(
    ztr: &[f64],
    ytr: &[u32],
    zte: &[f64],
    yte: &[u32],
    d: usize,
    k: usize,
) -> (f64, f64, f64) {
    let ntr = ytr.len() / k.max(1);
    let standard = standardiser(ztr, d);
    let (xtr, xte) = (standard(ztr), standard(zte));
    let mut importance = vec![0.0; d * k];
    let mut r2 = 0.0;
    for f in 0..k {
        let col =
            |y: &[u32]| -> Vec<f64> { y.iter().skip(f).step_by(k).map(|&c| c as f64).collect() };
        let (vtr, vte) = (col(ytr), col(yte));
        let (m, s) = column_stats(&vtr, 1);
        let s = if s[0] > 0.0 { s[0] } else { 1.0 };
        let ttr: Vec<f64> = vtr.iter().map(|v| (v - m[0]) / s).collect();
        let w = least_squares(&xtr, &ttr, d, ntr);
        for j in 0..d {
            importance[j * k + f] = w[j].abs();
        }
        let pred: Vec<f64> = xte
            .chunks_exact(d)
            .map(|x| m[0] + s * x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>())
            .collect();
        let mean_te = vte.iter().sum::<f64>() / vte.len().max(1) as f64;
        let sse: f64 = vte.iter().zip(&pred).map(|(v, p)| (v - p).powi(2)).sum();
        let sst: f64 = vte.iter().map(|v| (v - mean_te).powi(2)).sum();
        r2 += if sst > 0.0 { 1.0 - sse / sst } else { 0.0 };
    }
    let (dis, comp) = dci_from_importance(&importance, d, k);
    (dis, comp, r2 / k.max(1) as f64)
}

/// Disentanglement (per code, 1 − its importances' entropy in base `k`, weighted by the code's share of all
/// importance) and completeness (per factor, 1 − entropy in base `d`, averaged) of a `d × k` importance
/// matrix.
pub fn dci_from_importance(r: &[f64], d: usize, k: usize) -> (f64, f64) {
    let entropy = |p: &[f64], base: usize| -> f64 {
        let s: f64 = p.iter().sum();
        // One possible outcome carries no uncertainty; no importance at all carries no information.
        if base < 2 {
            return 0.0;
        }
        if s <= 0.0 {
            return 1.0;
        }
        -p.iter()
            .filter(|&&v| v > 0.0)
            .map(|&v| v / s * (v / s).ln())
            .sum::<f64>()
            / (base as f64).ln()
    };
    let total: f64 = r.iter().sum();
    if total <= 0.0 {
        return (0.0, 0.0);
    }
    let dis = (0..d)
        .map(|j| {
            let row = &r[j * k..(j + 1) * k];
            row.iter().sum::<f64>() / total * (1.0 - entropy(row, k))
        })
        .sum();
    let comp = (0..k)
        .map(|f| {
            let col: Vec<f64> = (0..d).map(|j| r[j * k + f]).collect();
            if col.iter().sum::<f64>() > 0.0 {
                1.0 - entropy(&col, d)
            } else {
                0.0
            }
        })
        .sum::<f64>()
        / k.max(1) as f64;
    (dis, comp)
}

/// Column means and standard deviations (ddof 0) of an `n × d` matrix.
fn column_stats(z: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = z.len() / d.max(1);
    let mut mean = vec![0.0; d];
    for r in z.chunks_exact(d) {
        for j in 0..d {
            mean[j] += r[j] / n as f64;
        }
    }
    let var = variances(z, d, 0);
    (mean, var.iter().map(|v| v.sqrt()).collect())
}

/// Least squares on centred data: solves (XᵀX + λI) w = Xᵀy with λ = 1e-9·n, which only keeps the system
/// invertible when a code is constant or two codes are equal.
fn least_squares(x: &[f64], y: &[f64], d: usize, n: usize) -> Vec<f64> {
    let mut a = vec![0.0; d * d];
    let mut b = vec![0.0; d];
    for (r, &t) in x.chunks_exact(d).zip(y) {
        for i in 0..d {
            b[i] += r[i] * t;
            for j in 0..d {
                a[i * d + j] += r[i] * r[j];
            }
        }
    }
    for i in 0..d {
        a[i * d + i] += 1e-9 * n as f64;
    }
    solve_spd(&mut a, &b, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> Grid {
        Grid {
            sizes: vec![1, 3, 6, 10, 8],
        }
    }

    /// Codes that are the scored factors' classes, transformed by `map` (a permutation and scaling, or noise).
    fn scores_of(map: &dyn Fn(&[f64]) -> Vec<f64>, seed: u64) -> Scores {
        let g = grid();
        let scored = g.scored();
        let f = g.sizes.len();
        let mut encode = |rows: &[u32]| -> Result<Vec<f64>> {
            Ok(rows
                .chunks_exact(f)
                .flat_map(|r| map(&scored.iter().map(|&j| r[j] as f64).collect::<Vec<_>>()))
                .collect())
        };
        let sizes = Sizes {
            train: 800,
            eval: 400,
            batch: 16,
            variance: 800,
            bins: 20,
        };
        all(&g, &mut encode, sizes, seed).unwrap()
    }

    #[test]
    fn true_factors_score_one_and_permuting_or_rescaling_changes_nothing() {
        let id = scores_of(&|v| v.to_vec(), 7);
        assert!(id.mig > 0.98, "{id:?}");
        assert!(
            id.dci_disentanglement > 0.98 && id.dci_completeness > 0.98,
            "{id:?}"
        );
        assert!(id.dci_informativeness > 0.98, "{id:?}");
        assert!(id.factor_vae > 0.98 && id.beta_vae > 0.98, "{id:?}");
        assert!(id.sap > 0.5, "{id:?}");
        // Permuted and rescaled (with a sign flip and an offset): the same draws, the same scores.
        let moved = scores_of(
            &|v| vec![v[3] * 1e-2, -v[1] * 7e6 + 3.0, v[0] * 2.0, v[2] * 0.5 - 1.0],
            7,
        );
        for (a, b) in [
            (id.beta_vae, moved.beta_vae),
            (id.mig, moved.mig),
            (id.sap, moved.sap),
            (id.factor_vae, moved.factor_vae),
            (id.dci_disentanglement, moved.dci_disentanglement),
            (id.dci_completeness, moved.dci_completeness),
            (id.dci_informativeness, moved.dci_informativeness),
        ] {
            assert!((a - b).abs() < 1e-6, "{id:?}\n{moved:?}");
        }
    }

    #[test]
    fn the_beta_vae_metric_of_noisy_codes_does_not_change_with_their_scale() {
        // Noisy codes score between chance and 1, where the regression's penalty would show if the features
        // were not standardised.
        use std::cell::RefCell;
        let of = |scale: [f64; 4]| {
            let rng = RefCell::new(rand_pcg::Pcg64Mcg::seed_from_u64(5));
            scores_of(
                &|v| {
                    let mut r = rng.borrow_mut();
                    (0..4)
                        .map(|j| (v[j] + 8.0 * r.random::<f64>()) * scale[j])
                        .collect()
                },
                7,
            )
            .beta_vae
        };
        let one = of([1.0; 4]);
        assert!(one > 0.35 && one < 0.95, "{one}");
        for scale in [[1e6; 4], [1e-2; 4], [1e-3, 1.0, 1e4, 1e8]] {
            assert!(
                (of(scale) - one).abs() < 1e-9,
                "{scale:?}: {} against {one}",
                of(scale)
            );
        }
    }

    #[test]
    fn codes_too_wide_too_large_or_not_finite_are_refused_by_name() {
        let g = grid();
        let sizes = Sizes::with_points(20);
        for (codes, says) in [
            (
                Box::new(|n: usize| vec![0.5; n * (MAX_CODES + 1)])
                    as Box<dyn Fn(usize) -> Vec<f64>>,
                "at most 1024",
            ),
            (Box::new(|n: usize| vec![1.5e308; n * 2]), "magnitude"),
            (Box::new(|n: usize| vec![f64::NAN; n * 2]), "finite"),
            // Squares of 1e-200 underflow: such a code would read as constant, and the scores collapse.
            (
                Box::new(|n: usize| (0..n * 2).map(|i| i as f64 * 1e-200).collect()),
                "must reach 1e-150",
            ),
        ] {
            let mut encode = |rows: &[u32]| -> Result<Vec<f64>> { Ok(codes(rows.len() / 5)) };
            for result in [
                all(&g, &mut encode, sizes, 1).map(|s| s.mig),
                beta_vae_metric(&g, &mut encode, sizes, 1),
                factor_vae_metric(&g, &mut encode, sizes, 1),
            ] {
                let e = result.unwrap_err().to_string();
                assert!(e.contains(says), "{e}");
            }
        }
    }

    #[test]
    fn a_refusal_shows_numbers_short_and_allows_zero_codes() {
        let e = codes_problem(&[0.0, 2e151], 2, "codes").unwrap();
        assert!(e.contains("hold 2e151 at row 0, code 1"), "{e}");
        let e = codes_problem(&[0.0, 3e-200, 0.0, -5e-201], 2, "codes").unwrap();
        assert!(e.contains("code 1 of codes is at most 3e-200"), "{e}");
        // A code that is 0 throughout, or tiny in places but large in others, can be scored.
        assert_eq!(codes_problem(&[0.0, 1e-300, 0.0, 1.0], 2, "codes"), None);
    }

    #[test]
    fn a_code_small_in_some_batches_only_is_scored() {
        // exp(−400 c): 1 for class 0, 1.9e-174 for class 1. A FactorVAE batch that fixes that factor at 1 sees
        // only the small value; the code as a whole reaches 1, so it is scored.
        let g = grid();
        let mut encode = |rows: &[u32]| -> Result<Vec<f64>> {
            Ok(rows
                .chunks_exact(5)
                .flat_map(|r| [(-400.0 * r[1] as f64).exp(), r[2] as f64])
                .collect())
        };
        let s = Sizes::with_points(50);
        assert!(factor_vae_metric(&g, &mut encode, s, 1).is_ok());
        assert!(all(&g, &mut encode, s, 1).is_ok());
    }

    #[test]
    fn constant_codes_score_chance_not_below_it() {
        // No code varies, so no vote names a code: the classifier knows nothing and guesses the commonest
        // factor, which is right about one time in the number of factors.
        let g = grid();
        let mut encode = |rows: &[u32]| -> Result<Vec<f64>> { Ok(vec![0.25; rows.len() / 5 * 3]) };
        let s = Sizes::with_points(400);
        let fv = factor_vae_metric(&g, &mut encode, s, 1).unwrap();
        let k = g.scored().len() as f64;
        assert!(
            (fv - 1.0 / k).abs() < 0.12,
            "{fv} against chance {}",
            1.0 / k
        );
        let bv = beta_vae_metric(&g, &mut encode, s, 1).unwrap();
        assert!(
            (bv - 1.0 / k).abs() < 0.12,
            "{bv} against chance {}",
            1.0 / k
        );
    }

    #[test]
    fn the_logistic_regression_of_many_classes_and_codes_is_quick() {
        // 64 classes of 256 features: Newton's Hessian would hold 2.7e8 numbers; L-BFGS takes seconds.
        let (n, d, classes) = (2000, 256, 64);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        let y: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let x: Vec<f64> = (0..n * d)
            .map(|i| f64::from(u8::from(i % d == y[i / d] % d)) + 0.1 * rng.random::<f64>())
            .collect();
        let start = std::time::Instant::now();
        let score = beta_vae_score(&x, &y, &x, &y, classes);
        assert!(score > 0.99, "{score}");
        assert!(start.elapsed().as_secs() < 60, "{:?}", start.elapsed());
    }

    #[test]
    fn noise_scores_near_zero() {
        use std::cell::RefCell;
        let rng = RefCell::new(rand_pcg::Pcg64Mcg::seed_from_u64(3));
        let noise = scores_of(
            &|_| {
                let mut r = rng.borrow_mut();
                (0..4).map(|_| r.random::<f64>()).collect()
            },
            7,
        );
        assert!(noise.mig < 0.05 && noise.sap < 0.05, "{noise:?}");
        assert!(
            noise.dci_disentanglement < 0.2 && noise.dci_informativeness < 0.05,
            "{noise:?}"
        );
        // Four factors: chance is a quarter.
        assert!(noise.factor_vae < 0.4 && noise.beta_vae < 0.4, "{noise:?}");
    }

    #[test]
    fn active_units_count_codes_whose_means_vary() {
        let mu: Vec<f64> = (0..100)
            .flat_map(|i| [i as f64 / 10.0, 0.001 * (i % 2) as f64])
            .collect();
        assert_eq!(active_units(&mu, 2), 1);
    }

    #[test]
    fn logistic_regression_reaches_its_optimum() {
        // Gradient zero at the answer: perturbing any weight raises the objective.
        let x = [0.0, 1.0, 2.0, 3.0, 0.5, 2.5];
        let y = [0, 0, 1, 1, 0, 1];
        let w = logistic_fit(&x, &y, 1, 2, 1.0);
        let f = |w: &[f64]| {
            x.iter()
                .zip(y)
                .map(|(&xi, yi)| {
                    let l = logits(w, &[xi], 2);
                    log_sum_exp(&l) - l[yi]
                })
                .sum::<f64>()
                + 0.5 * (w[0] * w[0] + w[2] * w[2])
                + 0.5e-9 * (w[1] * w[1] + w[3] * w[3])
        };
        for i in 0..4 {
            for h in [1e-4, -1e-4] {
                let mut v = w.clone();
                v[i] += h;
                assert!(f(&v) >= f(&w), "weight {i}");
            }
        }
    }
}
