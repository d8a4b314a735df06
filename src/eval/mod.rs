//! Evaluation from checkpoints: the ELBO, and log p(x) by importance sampling as papers report it.

pub mod disentangle;
pub mod reference;

use crate::core::dist;
use crate::data::{Batcher, Binarize, Dataset, Values};
use crate::model::{BatchStats, Likelihood, ModelConfig, Vae, Workspace};
use rand::RngExt;
use rand::SeedableRng;
use rayon::prelude::*;

/// Images per batch when evaluating the ELBO.
const EVAL_BATCH: usize = 500;
/// Decoder rows per importance-sampling chunk: 512 measured fastest (4.54 µs/sample against 4.58 at 256 and 1024,
/// 4.84 at 128 and at 2048): large enough for efficient products, small enough that logits stay near the cores.
const CHUNK_ROWS: usize = 512;
/// Draws per chunk when one image needs more than [`CHUNK_ROWS`]: 504 = 84·6 rows, whole panels for the `gemm`
/// crate's kernels, which are 6 wide for f32 with AVX2 (16×6) and with AVX-512 (64×6).
const DRAW_CHUNK_ROWS: usize = 504;

/// Scalars one evaluation workspace may hold (128 MB): a 64×64 colour conv net needs about 2 MB per image, so
/// CelebA's preset evaluates 64 images at a time where MNIST's MLP takes all 500.
const WORKSPACE_BUDGET: u128 = 1 << 25;

/// The most rows, up to `want`, whose workspace with `samples` draws each fits `WORKSPACE_BUDGET`.
pub fn rows_within(vae: &Vae<f32>, want: usize, samples: usize) -> usize {
    let mut rows = want.max(1);
    while rows > 1 && vae.workspace_len(rows, samples) > WORKSPACE_BUDGET {
        rows = rows.div_ceil(2);
    }
    rows
}

/// Reusable buffers for ELBO evaluation.
pub struct EvalBuffers {
    ws: Workspace<f32>,
    x: Vec<f32>,
    rows: usize,
}

/// Gives a conditional model the images' labels.
fn set_labels(ws: &mut Workspace<f32>, ds: &Dataset, idx: &[usize]) {
    for (l, &i) in ws.labels.iter_mut().zip(idx) {
        *l = ds.label(i);
    }
}

fn pixels(ds: &Dataset, idx: &[usize], out: &mut [f32]) {
    let copy = Batcher {
        batch_size: idx.len(),
        binarize: Binarize::None,
        flip: false,
    };
    // Binarize::None copies intensities, so the RNG is never used.
    copy.fill(ds, idx, &mut rand_pcg::Pcg64Mcg::seed_from_u64(0), out);
}

impl EvalBuffers {
    /// Buffers sized for `vae`.
    pub fn new(vae: &Vae<f32>) -> Self {
        let rows = rows_within(vae, EVAL_BATCH, 1);
        EvalBuffers {
            ws: vae.workspace(rows, 1),
            x: vec![0.0; rows * vae.config.input_dim()],
            rows,
        }
    }

    /// One-sample Monte-Carlo −ELBO of the whole dataset, with draws from `seed`.
    pub fn elbo(&mut self, vae: &Vae<f32>, ds: &Dataset, seed: u64) -> BatchStats {
        let d = ds.dim();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
        let mut total = BatchStats::default();
        let all: Vec<usize> = (0..ds.len()).collect();
        for (c, idx) in all.chunks(self.rows).enumerate() {
            // A memory-mapped dataset's pages count against the run until given back.
            if c % 16 == 15 {
                ds.release();
            }
            let rows = idx.len();
            pixels(ds, idx, &mut self.x[..rows * d]);
            set_labels(&mut self.ws, ds, idx);
            vae.draw_eps(rows, &mut self.ws, &mut rng);
            total.add(vae.loss(&self.x[..rows * d], rows, &mut self.ws));
        }
        ds.release();
        total
    }
}

/// How −log p(x) of a model on a dataset converts to bits per dimension, −log P(x)/(D·ln 2) for the 8-bit values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitsMethod {
    /// A density over [0, 1] on 8-bit data: evaluated at (v + u)/256 with u ~ U[0, 1) per value, whose
    /// −log density plus D·ln 256 bounds −log P(v) from above (Theis et al. 2016).
    Dequantised,
    /// A distribution over the 256 levels themselves (the discretised logistic): −log P(v) exactly.
    Discrete,
    /// No bits per dimension: the reason.
    Undefined(&'static str),
}

impl BitsMethod {
    /// The method for `model` on `ds`.
    pub fn for_data(model: &ModelConfig, ds: &Dataset) -> Self {
        match (model.likelihood, &ds.values) {
            (_, Values::F32(_)) => BitsMethod::Undefined(
                "the data are not 8-bit values (floats from a table or array)",
            ),
            (Likelihood::Gaussian { .. }, Values::U8(_)) => BitsMethod::Dequantised,
            (Likelihood::Logistic { .. }, Values::U8(_)) => BitsMethod::Discrete,
            (Likelihood::Bernoulli, Values::U8(_)) => BitsMethod::Undefined(
                "a Bernoulli decoder models binary pixels, not the 256 levels of 8-bit values",
            ),
        }
    }

    /// A short description for reports, or why there is no value.
    pub fn describe(&self) -> &'static str {
        match self {
            BitsMethod::Dequantised => "uniform dequantisation",
            BitsMethod::Discrete => "discrete likelihood of the 8-bit values",
            BitsMethod::Undefined(why) => why,
        }
    }
}

/// Bits per dimension from −log p(x) in nats of one item of `d` values under `method`.
pub fn bits_per_dim(nll: f64, d: usize, method: BitsMethod) -> Option<f64> {
    let per_dim = nll / (d.max(1) as f64 * std::f64::consts::LN_2);
    match method {
        // The density lives on [0, 1]; each of the 256 bins has width 1/256, which adds log2 256 = 8 bits.
        BitsMethod::Dequantised => Some(per_dim + 8.0),
        BitsMethod::Discrete => Some(per_dim),
        BitsMethod::Undefined(_) => None,
    }
}

/// Result of an importance-sampled evaluation, per image in nats.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct LikelihoodEstimate {
    /// The ELBO (mean log importance weight over all draws).
    pub elbo: f64,
    /// −ELBO.
    pub neg_elbo: f64,
    /// Estimated −log p(x): −log (1/K) Σ_k p(x, z_k)/q(z_k|x), averaged over images.
    pub nll: f64,
    /// Importance samples per image.
    pub k: usize,
    /// Images evaluated.
    pub n: usize,
    /// −log p(x) in bits per dimension of the 8-bit values, when the model and data define it.
    pub bits_per_dim: Option<f64>,
}

/// Estimates log p(x) with `k` importance samples per image, streaming over chunks of samples so memory
/// does not grow with `k`, and spreading image groups over the worker pool. Deterministic for a seed. A
/// density on 8-bit data is evaluated at dequantised values (see [`BitsMethod`]), so that its bits per
/// dimension are a bound on the 8-bit values' own.
pub fn estimate_log_likelihood(
    vae: &Vae<f32>,
    ds: &Dataset,
    k: usize,
    seed: u64,
    on_progress: &(dyn Fn(usize) -> bool + Sync),
) -> Option<LikelihoodEstimate> {
    let method = BitsMethod::for_data(&vae.config, ds);
    let dequantise = method == BitsMethod::Dequantised;
    let items = estimate_items(vae, ds, k, seed, dequantise, false, on_progress)?;
    let n = ds.len().max(1) as f64;
    let ll: f64 = items.iter().map(|r| r.log_px).sum::<f64>() / n;
    let elbo: f64 = items.iter().map(|r| r.elbo).sum::<f64>() / n;
    Some(LikelihoodEstimate {
        elbo,
        neg_elbo: -elbo,
        nll: -ll,
        k,
        n: ds.len(),
        bits_per_dim: bits_per_dim(-ll, ds.dim(), method),
    })
}

/// One item's importance-sampled estimates, in nats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemEstimate {
    /// log (1/K) Σ_k p(x, z_k)/q(z_k|x): a lower bound on log p(x) that tightens as K grows.
    pub log_px: f64,
    /// The mean log importance weight: a K-sample Monte-Carlo ELBO.
    pub elbo: f64,
}

/// [`estimate_log_likelihood`] per item, in the dataset's order, at the data's own values: what `elbo score`
/// writes.
pub fn item_log_likelihoods(
    vae: &Vae<f32>,
    ds: &Dataset,
    k: usize,
    seed: u64,
    on_progress: &(dyn Fn(usize) -> bool + Sync),
) -> Option<Vec<ItemEstimate>> {
    estimate_items(vae, ds, k, seed, false, true, on_progress)
}

/// A seed for an item's own draws: `seed` mixed with its values and, for a conditional model, its class (FNV-1a
/// over their bits), so the same item gets the same draws wherever it lies in a file, and two different items
/// (almost surely) different ones.
fn item_seed(seed: u64, values: &[f32], label: Option<u32>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = values
        .iter()
        .flat_map(|v| v.to_bits().to_le_bytes())
        .chain(label.unwrap_or(u32::MAX).to_le_bytes());
    for byte in bytes {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    seed ^ h
}

/// Per-item estimates of `k` importance-weighted draws each. With `per_item`, each item draws from its own
/// generator ([`item_seed`]), so its score does not depend on the items beside it; otherwise a group of items
/// shares one, the sequence `eval` has always drawn.
fn estimate_items(
    vae: &Vae<f32>,
    ds: &Dataset,
    k: usize,
    seed: u64,
    dequantise: bool,
    per_item: bool,
    on_progress: &(dyn Fn(usize) -> bool + Sync),
) -> Option<Vec<ItemEstimate>> {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    let d = ds.dim();
    // Set when `on_progress` asks to stop (Ctrl-C from Python): groups not yet begun are skipped.
    let stopped = &AtomicBool::new(false);
    let frozen = vae.for_inference();
    let vae = &frozen;
    // Chunks shrink only for models whose workspace would not fit, so MNIST's draws are as they were.
    let chunk_rows = rows_within(vae, CHUNK_ROWS, 1);
    // Many draws per image go in chunks of a multiple of 6 rows, which `gemm`'s 16×6 kernel covers without the
    // 2-row edge case that 512 rows ran on every chunk (0.6 % of eval's time in `perf`). The draws themselves are
    // the same sequence whatever the chunk.
    let per_chunk = if k > chunk_rows {
        chunk_rows.min(DRAW_CHUNK_ROWS)
    } else {
        k.max(1)
    };
    let images = (chunk_rows / per_chunk).max(1);
    let groups: Vec<Vec<usize>> = (0..ds.len())
        .collect::<Vec<_>>()
        .chunks(images)
        .map(|c| c.to_vec())
        .collect();
    let draws = Draws {
        k,
        per_chunk,
        seed,
        dequantise,
        per_item,
    };
    // Over MPI each rank takes every N-th group; a group's draws depend only on its index, so the estimates
    // are those of one process.
    let (rank, ranks) = (dist::rank(), dist::size());
    let results: Vec<(usize, Vec<ItemEstimate>)> = crate::core::threads::run(|| {
        groups
            .par_iter()
            .enumerate()
            .filter(|(g, _)| g % ranks == rank)
            // Buffers are reused from group to group (a fresh workspace per image cost 1 % in zeroing and page
            // faults); every value read is written first, so the estimates do not depend on the reuse.
            .map_init(
                || {
                    (
                        vae.workspace(images, per_chunk),
                        vec![0.0; images * d],
                        vec![0.0; images * per_chunk],
                    )
                },
                |(ws, x, lw), (g, idx)| {
                    if stopped.load(Relaxed) {
                        return (g, Vec::new());
                    }
                    // Asked between chunks of draws too: at K = 1e6 one group is many seconds of work.
                    let go_on = || !stopped.load(Relaxed) && on_progress(0);
                    let items = crate::core::threads::serial(|| {
                        draws.group(vae, ds, g, idx, ws, &mut x[..idx.len() * d], lw, &go_on)
                    });
                    match items {
                        Some(items) if on_progress(idx.len()) => (g, items),
                        _ => {
                            stopped.store(true, Relaxed);
                            (g, Vec::new())
                        }
                    }
                },
            )
            .collect()
    });
    ds.release();
    // Only a single process is stopped this way (over MPI every rank must reach the gather below).
    if stopped.load(Relaxed) {
        return None;
    }
    if ranks == 1 {
        return Some(results.into_iter().flat_map(|(_, items)| items).collect());
    }
    Some(gather_groups(&results, ds.len(), images))
}

/// How [`estimate_items`] draws: `k` draws an item, `per_chunk` at a time, from `seed`.
struct Draws {
    k: usize,
    per_chunk: usize,
    seed: u64,
    dequantise: bool,
    per_item: bool,
}

impl Draws {
    /// The estimates of group `g`, the items `idx`, with `x` and `lw` as room for their values and log-weights;
    /// none once `go_on`, asked between chunks of draws, says stop.
    #[allow(clippy::too_many_arguments)]
    fn group(
        &self,
        vae: &Vae<f32>,
        ds: &Dataset,
        g: usize,
        idx: &[usize],
        ws: &mut Workspace<f32>,
        x: &mut [f32],
        lw: &mut [f64],
        go_on: &dyn Fn() -> bool,
    ) -> Option<Vec<ItemEstimate>> {
        let (rows, d, k) = (idx.len(), ds.dim(), self.k);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(
            self.seed ^ (g as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        pixels(ds, idx, x);
        if self.dequantise {
            // One draw of u per value: an unbiased estimate of the dequantised bound.
            for v in x.iter_mut() {
                *v = ((*v * 255.0).round() + rng.random::<f32>()) / 256.0;
            }
        }
        set_labels(ws, ds, idx);
        let conditional = vae.config.is_conditional();
        let mut item_rngs: Vec<rand_pcg::Pcg64Mcg> = if self.per_item {
            idx.iter()
                .enumerate()
                .map(|(b, &i)| {
                    // The class shapes the draws only where it shapes the model.
                    let label = (conditional && ds.is_labelled()).then(|| ds.label(i));
                    let values = &x[b * d..(b + 1) * d];
                    rand_pcg::Pcg64Mcg::seed_from_u64(item_seed(self.seed, values, label))
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut acc = vec![LogMeanExp::default(); rows];
        let mut done = 0;
        // Encoded once: every chunk of draws shares q(z|x).
        vae.encode(x, rows, ws);
        while done < k {
            if done > 0 && !go_on() {
                return None;
            }
            let s = self.per_chunk.min(k - done);
            ws.set_samples(s);
            if self.per_item {
                vae.draw_eps_per_image(rows, ws, &mut item_rngs);
            } else {
                vae.draw_eps(rows, ws, &mut rng);
            }
            vae.log_weights_encoded(x, rows, ws, lw);
            for (b, a) in acc.iter_mut().enumerate() {
                a.add(&lw[b * s..(b + 1) * s]);
            }
            done += s;
        }
        Some(acc.iter().map(|a| a.estimate(k)).collect())
    }
}

/// A running log-sum-exp of one item's log-weights (their maximum and Σ exp(w − max)), and their plain sum for
/// the ELBO.
#[derive(Clone, Copy)]
struct LogMeanExp {
    max: f64,
    scaled: f64,
    sum: f64,
}

impl Default for LogMeanExp {
    fn default() -> Self {
        LogMeanExp {
            max: f64::NEG_INFINITY,
            scaled: 0.0,
            sum: 0.0,
        }
    }
}

impl LogMeanExp {
    fn add(&mut self, w: &[f64]) {
        let m = w.iter().cloned().fold(self.max, f64::max);
        let rescale = if self.max.is_finite() {
            (self.max - m).exp()
        } else {
            0.0
        };
        self.scaled = self.scaled * rescale + w.iter().map(|v| (v - m).exp()).sum::<f64>();
        self.max = m;
        self.sum += w.iter().sum::<f64>();
    }

    /// The estimates from `k` log-weights: log of their mean weight, and their mean.
    fn estimate(&self, k: usize) -> ItemEstimate {
        ItemEstimate {
            log_px: self.max + self.scaled.ln() - (k as f64).ln(),
            elbo: self.sum / k as f64,
        }
    }
}

/// Every rank's groups of estimates, `images` items a group, gathered over MPI into the `n` items' order: each
/// rank's items in place (zeros elsewhere), each item then read from its group's rank.
fn gather_groups(
    results: &[(usize, Vec<ItemEstimate>)],
    n: usize,
    images: usize,
) -> Vec<ItemEstimate> {
    let ranks = dist::size();
    let mut mine = vec![0.0f64; 2 * n];
    for (g, items) in results {
        for (j, it) in items.iter().enumerate() {
            let i = g * images + j;
            mine[2 * i] = it.log_px;
            mine[2 * i + 1] = it.elbo;
        }
    }
    let mut all = vec![0.0f64; 2 * n * ranks];
    dist::all_gather(&mine, &mut all);
    (0..n)
        .map(|i| {
            let at = 2 * n * ((i / images) % ranks) + 2 * i;
            ItemEstimate {
                log_px: all[at],
                elbo: all[at + 1],
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uniform_model_scores_exactly_eight_bits() {
        // The uniform density on [0, 1]: −log p = 0 at every dequantised value, i.e. 1/256 per 8-bit level.
        assert_eq!(bits_per_dim(0.0, 3072, BitsMethod::Dequantised), Some(8.0));
        let d = 12;
        let half = 0.5 * d as f64 * std::f64::consts::LN_2;
        assert_eq!(bits_per_dim(half, d, BitsMethod::Dequantised), Some(8.5));
        assert_eq!(bits_per_dim(1.0, d, BitsMethod::Undefined("x")), None);
        // A distribution over the 256 levels: P = 1/256 for every value is 8 bits.
        let uniform = 3072.0 * 256f64.ln();
        let bits = bits_per_dim(uniform, 3072, BitsMethod::Discrete).unwrap();
        assert!((bits - 8.0).abs() < 1e-12, "{bits}");
    }
}
