//! A model's codes scored against the known factors of its data (dSprites'): the five disentanglement metrics
//! of [`crate::eval::disentangle`], with observations of chosen factor values looked up in the data when it
//! holds the whole grid, or rendered by elbo's dSprites generator when it does not.

use super::Model;
use crate::data::{Dataset, dsprites};
use crate::error::{Error, Result};
use crate::eval::disentangle::{self, Grid, Scores, Sizes};
use rayon::prelude::*;
use std::path::Path;

/// The metrics, and how their observations were made.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Disentanglement {
    /// The five metrics.
    #[serde(flatten)]
    pub scores: Scores,
    /// The factors scored (those with more than one value).
    pub factors: Vec<String>,
    /// Where the images of chosen factor values came from, in words.
    pub observations: String,
    /// Images encoded.
    pub images: usize,
}

/// The run's configuration with none of its data held back: the metrics look observations up among every item
/// of the file, also those `--limit` left out of training, so a file that holds every combination is used whole.
fn whole_data(cfg: &crate::train::RunConfig) -> crate::train::RunConfig {
    let mut whole = cfg.clone();
    whole.train.limit = None;
    whole.train.validation = 0;
    whole
}

/// Whether the splits of the run configured by `cfg` hold every item of its data (no `--limit`).
#[cfg(feature = "cli")]
pub(crate) fn holds_whole_data(cfg: &crate::train::RunConfig) -> bool {
    cfg.train.limit.is_none()
}

/// Where images of chosen factor values come from.
enum Source<'a> {
    /// The data holds every combination: (set, item) by grid index.
    Lookup(Vec<&'a Dataset>, Vec<(u8, u32)>),
    /// dSprites' grid, drawn by elbo.
    Rendered,
}

/// Fewest training points a metric is computed from: fewer give scores of no meaning (a classifier of 2 points).
pub const MIN_POINTS: usize = 10;
/// Most training points: 100 × disentanglement_lib's 10 000, about 2.9 billion images to encode.
pub const MAX_POINTS: usize = 1_000_000;

/// Images every metric encodes, for a progress bar's total.
pub fn images_needed(s: Sizes) -> usize {
    let points = s.train + s.eval;
    points * 2 * s.batch + s.variance + points * s.batch + points
}

/// Why a run of data without factors cannot be scored.
const NO_FACTORS: &str = "this run's data has no known factors to score against: train on data in dSprites' layout (elbo make-dsprites writes one, or --data FILE.npz with imgs and latents_classes)";

impl Model {
    /// Scores this model against the factors of its own run's data (both splits), read from `data_dir` or from
    /// where training read it, as `elbo disentanglement` does.
    pub fn disentanglement_of_run(
        &self,
        data_dir: Option<&Path>,
        sizes: Sizes,
        seed: u64,
        progress: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Disentanglement> {
        let cfg = self.config();
        crate::train::check_data_dir(cfg.train.data.as_ref(), data_dir)?;
        // Only dSprites and an .npz in its layout carry factors: say so before reading (or downloading) others.
        let may_hold_factors = match &cfg.train.data {
            Some(spec) => spec
                .path
                .to_string_lossy()
                .to_ascii_lowercase()
                .ends_with(".npz"),
            None => cfg.train.dataset == crate::data::DatasetName::Dsprites,
        };
        if !may_hold_factors {
            return Err(Error::Config(NO_FACTORS.into()));
        }
        let dir = data_dir
            .map(Path::to_path_buf)
            .or_else(|| super::trainer::recorded_dir(cfg));
        let splits = crate::train::load_splits(&whole_data(cfg), dir.as_deref())?;
        self.disentanglement_of_splits(&splits, sizes, seed, progress)
    }

    /// Scores this model against the factors of `splits` (every split it has), as
    /// [`Model::disentanglement_of_run`] does when they hold the whole of the run's data ([`holds_whole_data`]).
    pub(crate) fn disentanglement_of_splits(
        &self,
        splits: &crate::train::Splits,
        sizes: Sizes,
        seed: u64,
        progress: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Disentanglement> {
        let sets: Vec<&Dataset> = std::iter::once(&splits.train)
            .chain(&splits.validation)
            .chain([&splits.test])
            .collect();
        self.disentanglement(&sets, sizes, seed, progress)
    }

    /// Scores this model's posterior means against the factors of `sets` (a run's training and test splits),
    /// drawing every metric's points with `seed`; `progress` hears how many more images were encoded and says
    /// whether to go on (false: stop with [`Error::Stopped`]).
    pub fn disentanglement(
        &self,
        sets: &[&Dataset],
        sizes: Sizes,
        seed: u64,
        progress: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Disentanglement> {
        let Some(factors) = sets.first().and_then(|s| s.factors.as_deref()) else {
            return Err(Error::Config(NO_FACTORS.into()));
        };
        if self.is_conditional() {
            return Err(Error::Config(
                "this model is conditional, and images of chosen factors have no classes to give it".into(),
            ));
        }
        if sets.iter().any(|s| s.shape != self.item_shape()) {
            return Err(Error::Config(format!(
                "the data's items are {} but the model takes {}",
                sets[0].shape,
                self.item_shape()
            )));
        }
        if !(MIN_POINTS..=MAX_POINTS).contains(&sizes.train)
            || !(1..=MAX_POINTS).contains(&sizes.eval)
            || !(2..=4096).contains(&sizes.batch)
            || !(2..=MAX_POINTS).contains(&sizes.variance)
        {
            return Err(Error::Config(format!(
                "--points {} must be between {MIN_POINTS} and {MAX_POINTS} (disentanglement_lib uses 10000)",
                sizes.train
            )));
        }
        let grid = Grid {
            sizes: factors.sizes.clone(),
        };
        let scored = grid.scored();
        if scored.is_empty() {
            return Err(Error::Config(
                "every factor of this data takes one value: there is nothing to disentangle".into(),
            ));
        }
        // None: more combinations than a usize counts, which no lookup table could hold either.
        let total = factors
            .sizes
            .iter()
            .try_fold(1usize, |t, &s| t.checked_mul(s));
        let (source, observations) = source(sets, factors, total)?;
        if matches!(source, Source::Rendered)
            && self.item_shape() != crate::data::ItemShape::grey(dsprites::SIDE, dsprites::SIDE)
        {
            return Err(Error::Config(format!(
                "the generator draws dSprites' 64×64 images, but this model takes {}: the metrics need images of chosen factor values, and the run's data does not hold every combination: train on dSprites' 64×64 images, or on a file that holds every combination of its factors",
                self.item_shape()
            )));
        }
        let (d, zd, hl) = (
            self.item_shape().len(),
            self.latent(),
            self.vae().head_len(),
        );
        let vae = self.vae();
        const CHUNK: usize = 512;
        let mut ws = vae.workspace(CHUNK, 1);
        let mut x = vec![0f32; CHUNK * d];
        let mut images = 0;
        let f = factors.count();
        let mut encode = |rows: &[u32]| -> Result<Vec<f64>> {
            let n = rows.len() / f;
            let mut out = Vec::with_capacity(n * zd);
            for part in rows.chunks(CHUNK * f) {
                let m = part.len() / f;
                x[..m * d]
                    .par_chunks_mut(d)
                    .zip(part.par_chunks(f))
                    .for_each(|(px, row)| match &source {
                        Source::Lookup(sets, at) => {
                            let (s, i) = at[grid_index(row, &grid.sizes)];
                            sets[s as usize].fill_row(i as usize, px);
                        }
                        Source::Rendered => {
                            let mut img = [0u8; dsprites::SIDE * dsprites::SIDE];
                            dsprites::render(row, &mut img);
                            for (p, &v) in px.iter_mut().zip(&img) {
                                *p = v as f32;
                            }
                        }
                    });
                ws.labels[..m].fill(0);
                vae.encode(&x[..m * d], m, &mut ws);
                for h in vae.posterior(m, &mut ws).chunks_exact(hl) {
                    out.extend(h[..zd].iter().map(|&v| v as f64));
                }
                if !progress(m) {
                    return Err(Error::Stopped {
                        what: "measuring disentanglement",
                        signal: crate::error::SIGINT,
                    });
                }
            }
            images += n;
            Ok(out)
        };
        let scores = disentangle::all(&grid, &mut encode, sizes, seed)?;
        Ok(Disentanglement {
            scores,
            factors: scored.iter().map(|&j| factors.names[j].clone()).collect(),
            observations,
            images,
        })
    }
}

/// The index of a row of classes in the grid of `sizes` (the last factor fastest, as dSprites orders it).
fn grid_index(row: &[u32], sizes: &[usize]) -> usize {
    row.iter()
        .zip(sizes)
        .fold(0, |i, (&c, &n)| i * n + c as usize)
}

/// Where observations come from for `sets` with `factors` spanning `total` combinations, and a line saying so.
fn source<'a>(
    sets: &[&'a Dataset],
    factors: &crate::data::factors::Factors,
    total: Option<usize>,
) -> Result<(Source<'a>, String)> {
    // Distinct combinations, not rows: a file may repeat one.
    let held = sets
        .iter()
        .filter_map(|s| s.factors.as_deref())
        .flat_map(|f| (0..f.len()).map(move |i| f.row(i)))
        .collect::<std::collections::HashSet<&[u32]>>()
        .len();
    let is_dsprites = factors.sizes == dsprites::SIZES
        && factors
            .names
            .iter()
            .zip(dsprites::NAMES)
            .all(|(a, b)| a == b);
    let shown = total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string());
    if let Some(total) = total
        && held >= total
        && total <= (1 << 26)
    {
        let mut at = vec![(u8::MAX, 0u32); total];
        for (s, set) in sets.iter().enumerate() {
            let Some(f) = set.factors.as_deref() else {
                continue;
            };
            for i in 0..f.len() {
                at[grid_index(f.row(i), &f.sizes)] = (s as u8, i as u32);
            }
        }
        if at.iter().all(|&(s, _)| s != u8::MAX) {
            return Ok((
                Source::Lookup(sets.to_vec(), at),
                format!(
                    "looked up in the run's data, which holds all {total} combinations of the factors"
                ),
            ));
        }
    }
    if is_dsprites {
        return Ok((
            Source::Rendered,
            format!(
                "rendered by elbo's dSprites generator (the run's data holds {held} of the grid's {shown} combinations), not DeepMind's"
            ),
        ));
    }
    Err(Error::Config(format!(
        "the run's data holds {held} of its factors' {shown} combinations, and elbo can draw only dSprites' grid: the β-VAE and FactorVAE metrics need an image of any combination; score a file that holds them all, or score the codes alone with Python's elbo.metrics.mig, sap and dci, which need none chosen"
    )))
}
