//! The fixed batch shared with the PyTorch reference: the first test images and deterministic noise.

use crate::data::{Batcher, Binarize, Dataset};
use crate::model::Vae;
use rand::SeedableRng;

/// Images in the fixed batch.
pub const ROWS: usize = 128;
/// Seed of its reparameterisation noise.
pub const SEED: u64 = 1234;

/// The first [`ROWS`] test images as pixels in [0, 1], and standard normal noise from [`SEED`].
pub fn fixed_batch(vae: &Vae<f32>, test: &Dataset) -> (Vec<f32>, Vec<f32>, usize) {
    let rows = ROWS.min(test.len());
    let d = test.dim();
    let idx: Vec<usize> = (0..rows).collect();
    let mut x = vec![0.0; rows * d];
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(SEED);
    Batcher {
        batch_size: rows,
        binarize: Binarize::None,
        flip: false,
    }
    .fill(test, &idx, &mut rng, &mut x);
    let mut ws = vae.workspace(rows, 1);
    vae.draw_eps(rows, &mut ws, &mut rng);
    (x, ws.eps, rows)
}
