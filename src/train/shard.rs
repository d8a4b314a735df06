//! A batch's gradient in fixed parts, shared by MPI ranks so that the weights never depend on the rank count,
//! and the checks that the ranks hold one run.

use super::checkpoint::TrainState;
use super::config::{RunConfig, TrainConfig};

use super::splits::Splits;
use crate::core::{Adam, dist};
use crate::error::{Error, Result};
use crate::model::{BatchStats, Vae};
use std::time::Instant;

/// Refuses to train when the ranks do not hold the same run: the same config (data fingerprint included),
/// epoch, optimiser step and weights. Ranks that read different folders (no shared filesystem) would otherwise
/// train together on mixed gradients, or wait for each other forever.
pub(super) fn ranks_agree(
    cfg: &RunConfig,
    vae: &Vae<f32>,
    adam: &Adam<f32>,
    state: &TrainState,
) -> Result<()> {
    use md5::Digest;
    let mut h = md5::Md5::new();
    h.update(serde_json::to_string(cfg).unwrap_or_default());
    h.update(state.epoch.to_le_bytes());
    h.update(adam.t.to_le_bytes());
    for v in vae.params.data.chunks(1 << 14) {
        h.update(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>());
    }
    let d = h.finalize();
    // Two 32-bit halves of the first 8 bytes, exact in f64.
    let mine = [
        u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as f64,
        u32::from_le_bytes([d[4], d[5], d[6], d[7]]) as f64,
    ];
    let mut all = vec![0.0; 2 * dist::size()];
    dist::all_gather(&mine, &mut all);
    if let Some(r) = all.chunks_exact(2).position(|p| p != mine) {
        return Err(Error::Config(format!(
            "rank {r} holds another run than rank {} (settings, data, epoch or weights differ): every rank must read the same run directory and data, on a filesystem they share",
            dist::rank()
        )));
    }
    Ok(())
}

/// Refuses a rank count that does not divide the run's shards.
pub(super) fn check_shards(shards: usize) -> Result<()> {
    if !shards.is_multiple_of(dist::size()) {
        return Err(Error::Config(format!(
            "this run computes its gradients in parts (--shards {shards}), which {} ranks cannot share: use a number of ranks that divides {shards}",
            dist::size(),
        )));
    }
    Ok(())
}

/// A batch's gradient computed in `shards` fixed parts of its rows and summed in their order, each rank taking
/// its consecutive share of the parts: every rank count that divides the shard count sums the same numbers in
/// the same order, so the weights do not depend on it.
pub(super) struct Sharded {
    shards: usize,
    samples: usize,
    /// The whole batch's draws, as one process draws them.
    pub(super) eps: Vec<f32>,
    /// This rank's parts' gradients, then every rank's.
    mine: Vec<f32>,
    all: Vec<f32>,
    /// Per part: recon, kl, iwae, images, and whether this rank caught a signal.
    mine_stats: Vec<f64>,
    all_stats: Vec<f64>,
    /// Time spent in the gathers this epoch.
    pub(super) gather: std::time::Duration,
}

/// Numbers per part in [`Sharded`]'s statistics.
const PART_STATS: usize = 5;

impl Sharded {
    pub(super) fn new(vae: &Vae<f32>, t: &TrainConfig, batch: usize) -> Self {
        let per = t.shards / dist::size();
        let p = vae.params.len();
        Sharded {
            shards: t.shards,
            samples: t.samples,
            eps: vec![0.0; batch * t.samples * vae.noise_dim()],
            mine: vec![0.0; per * p],
            all: vec![0.0; t.shards * p],
            mine_stats: vec![0.0; per * PART_STATS],
            all_stats: vec![0.0; t.shards * PART_STATS],
            gather: std::time::Duration::ZERO,
        }
    }

    /// The gradient of the batch `x` (items `idx`) into `vae.params.grad` and its statistics, on every rank;
    /// a signal caught by any rank stops all of them here, before the step is taken.
    pub(super) fn step(
        &mut self,
        vae: &mut Vae<f32>,
        x: &[f32],
        idx: &[usize],
        splits: &Splits,
        objective: &crate::model::Objective,
        ws: &mut crate::model::Workspace<f32>,
    ) -> (BatchStats, Option<i32>) {
        // Every latent layer's noise per draw, split by image like the batch.
        let (rows, d, zd) = (idx.len(), vae.config.input_dim(), vae.noise_dim());
        let p = vae.params.len();
        let per = self.shards / dist::size();
        let bound = |s: usize| s * rows / self.shards;
        let caught = crate::signals::received();
        for k in 0..per {
            let s = dist::rank() * per + k;
            let (a, b) = (bound(s), bound(s + 1));
            let r = b - a;
            let grad = &mut self.mine[k * p..(k + 1) * p];
            let stats = &mut self.mine_stats[k * PART_STATS..(k + 1) * PART_STATS];
            stats[4] = caught.map_or(0.0, |c| c as f64);
            if r == 0 {
                grad.fill(0.0);
                stats[..4].fill(0.0);
                continue;
            }
            for (l, &i) in ws.labels.iter_mut().zip(&idx[a..b]) {
                *l = splits.train.label(i);
            }
            let e = self.samples * zd;
            ws.eps[..r * e].copy_from_slice(&self.eps[a * e..b * e]);
            let st = vae.loss_and_grad(&x[a * d..b * d], r, objective, ws);
            grad.copy_from_slice(&vae.params.grad);
            stats[..4].copy_from_slice(&[st.recon, st.kl, st.iwae, st.n as f64]);
        }
        let t = Instant::now();
        dist::all_gather(&self.mine, &mut self.all);
        dist::all_gather(&self.mine_stats, &mut self.all_stats);
        self.gather += t.elapsed();
        let g = &mut vae.params.grad;
        g.copy_from_slice(&self.all[..p]);
        for part in self.all[p..].chunks_exact(p) {
            g.iter_mut().zip(part).for_each(|(g, v)| *g += v);
        }
        let mut st = BatchStats::default();
        let mut stop = None;
        for s in self.all_stats.chunks_exact(PART_STATS) {
            st.add(BatchStats {
                recon: s[0],
                kl: s[1],
                iwae: s[2],
                n: s[3] as usize,
            });
            if s[4] != 0.0 {
                stop = Some(s[4] as i32);
            }
        }
        (st, stop)
    }
}
