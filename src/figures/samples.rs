//! Image grids of what a model generates: draws from the prior, and test images over their reconstructions.

use super::latent as lat;
use super::{MosaicStyle, mosaic, save_image};
use crate::data::Dataset;
use crate::error::Result;
use crate::model::Vae;
use rand::SeedableRng;
use std::path::Path;

/// What [`write_samples`] draws; everything random comes from `seed`, so a spec always gives the same image.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Number of samples.
    pub n: usize,
    /// Seed of the prior draws and of the Bernoulli pixels.
    pub seed: u64,
    /// Scale of the prior's standard deviation (below 1: more typical samples).
    pub temperature: f64,
    /// Show pixels sampled from the Bernoulli decoder instead of its means.
    pub bernoulli: bool,
    /// Class of each sample, for a conditional model (empty otherwise).
    pub labels: Vec<u32>,
}

/// Decodes draws from the prior into a square-ish mosaic saved at `out` (in the format its ending names).
pub fn write_samples(
    vae: &Vae<f32>,
    spec: &SampleSpec,
    style: MosaicStyle,
    out: &Path,
) -> Result<()> {
    let px = sample_values(vae, spec);
    let cols = (spec.n as f64).sqrt().ceil() as usize;
    save_image(
        &mosaic(&px, spec.n, vae.config.item_shape(), cols, style)?,
        out,
    )
}

/// The decoded values (means, or Bernoulli draws) of `spec.n` draws from the prior, item after item.
pub fn sample_values(vae: &Vae<f32>, spec: &SampleSpec) -> Vec<f32> {
    let n = spec.n;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(spec.seed);
    let codes = vae.draw_codes(n, &mut rng, spec.temperature);
    // A stacked model's layers below the top are drawn too: its prior is the whole hierarchy.
    let mut px = if vae.depth() > 1 {
        let draw: Option<(f64, &mut dyn rand::Rng)> = Some((spec.temperature, &mut rng));
        lat::decode_means_drawn(vae, &codes, n, &spec.labels, draw)
    } else {
        lat::decode_means(vae, &codes, n, &spec.labels)
    };
    if spec.bernoulli {
        use rand::RngExt;
        for p in px.iter_mut() {
            let u: f32 = rng.random();
            *p = if u < *p { 1.0 } else { 0.0 };
        }
    }
    px
}

/// Saves the first `n` test images over their reconstructions as a PNG mosaic at `out`.
pub fn write_reconstructions(
    vae: &Vae<f32>,
    test: &Dataset,
    n: usize,
    style: MosaicStyle,
    out: &Path,
) -> Result<()> {
    let n = n.min(test.len());
    let (_, d) = (vae.latent(), vae.config.input_dim());
    let idx: Vec<usize> = (0..n).collect();
    let x = lat::pixels(test, &idx);
    // Reconstruct from the posterior mean: a deterministic figure.
    let codes = lat::encode(vae, test, &idx);
    let rec = lat::decode_means(vae, &codes, n, &lat::labels(test, &idx));
    // Pairs of rows: originals over reconstructions, at most 16 per row.
    let per_row = n.min(16);
    let mut tiles = Vec::with_capacity(2 * n.div_ceil(per_row) * per_row * d);
    for start in (0..n).step_by(per_row) {
        for src in [&x, &rec] {
            for i in start..start + per_row {
                if i < n {
                    tiles.extend_from_slice(&src[i * d..(i + 1) * d]);
                } else {
                    tiles.extend(std::iter::repeat_n(1.0, d));
                }
            }
        }
    }
    let count = tiles.len() / d;
    save_image(
        &mosaic(&tiles, count, vae.config.item_shape(), per_row, style)?,
        out,
    )
}
