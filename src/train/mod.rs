//! Training: the epoch loop, per-epoch evaluation, checkpoints and metrics.

pub mod checkpoint;
pub mod config;

pub mod lock;
pub mod metrics;
pub mod observe;
pub mod settings;
mod shard;
mod splits;

pub use checkpoint::{Checkpoint, TrainState, load_run};
pub use config::{DataInfo, Reduction, RunConfig, TrainConfig};
pub use lock::RunLock;
pub use metrics::{EpochMetrics, SplitMetrics};
pub use observe::{Flow, Observer, Quiet};
pub use settings::Settings;
pub use splits::{
    DataFacts, Splits, check_data_dir, check_items, load_items, load_splits, open_data, prepare,
};

use crate::core::{Adam, Optimizer, dist};
use crate::data::{Batcher, Binarize, Dataset};
use crate::error::{Error, Result};
use crate::eval::EvalBuffers;
use crate::model::vamp::PseudoInit;
use crate::model::{BatchStats, Estimator, Objective, Vae, Workspace};
pub use crate::resources::{available_memory, check_memory};
use rand::SeedableRng;
use shard::{Sharded, check_shards, ranks_agree};
use splits::{TEST_SALT, enough_for_pseudo_inputs};
use std::path::Path;
use std::time::Instant;

/// Salts that derive independent RNG streams from the run's one seed (the test split's and static binarisation's
/// are in `splits`, which draws them).
const DATA_SALT: u64 = 0x0da7_a000;
const NOISE_SALT: u64 = 0x0015_e000;
const PSEUDO_SALT: u64 = 0x05e0_d000;

/// Whether weights and optimiser state can be saved and read back. A NaN gradient in the last step would only
/// show in the next loss, and Adam's second moment overflows first (a gradient above 1.8e19 squares to
/// infinity in f32) while the weights stay finite; the loader refuses either, so training calls it divergence.
fn savable(params: &crate::core::Params<f32>, adam: &crate::core::Adam<f32>) -> bool {
    let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
    finite(&params.data) && finite(&adam.m) && finite(&adam.v)
}

/// Training steps between returning a mapped dataset's pages: 64 batches of 64 CelebA images touch 64 MB.
const RELEASE_EVERY: usize = 64;

/// How a training run starts.
pub enum Start {
    /// A new run from a config.
    New(Box<RunConfig>),
    /// Continuing from a checkpoint, optionally to a new total of epochs.
    Resume(Box<Checkpoint>, Option<usize>),
}

/// Trains, writing `config.json`, a checkpoint of the initial weights for a new run, and a checkpoint and
/// `metrics.csv` after every epoch; returns the metric history.
pub fn train(
    run_dir: &Path,
    data_dir: Option<&Path>,
    start: Start,
    observer: &mut dyn Observer,
) -> Result<Vec<EpochMetrics>> {
    let (start, splits) = match start {
        Start::New(mut cfg) => {
            let loaded = open_data(&cfg.train, data_dir)?;
            let splits = prepare(&mut cfg, loaded)?;
            (Start::New(cfg), splits)
        }
        Start::Resume(ck, epochs) => {
            let splits = load_splits(&ck.config, data_dir)?;
            (Start::Resume(ck, epochs), splits)
        }
    };
    let cfg = match &start {
        Start::New(cfg) => cfg.as_ref(),
        Start::Resume(ck, _) => &ck.config,
    };
    preflight(cfg, &splits)?;
    train_on(run_dir, &splits, start, observer)
}

/// Checks, before anything is written or allocated, that a run's training buffers fit in memory.
pub fn preflight(cfg: &RunConfig, splits: &Splits) -> Result<()> {
    check_shards(cfg.train.shards)?;
    let batch = cfg.train.batch_size.min(splits.train.len());
    if cfg.model.batch_norm && batch < 2 {
        return Err(Error::Config(format!(
            "--batch-norm normalises over the batch, which needs at least 2 items, but the training split has {}: use more data (--limit, --validation) or no --batch-norm",
            splits.train.len()
        )));
    }
    // PIWAE keeps the decoder's outputs for its second backward pass, one more value per pixel of every draw.
    let piwae = if cfg.train.objective == Estimator::Piwae {
        batch as u128 * cfg.train.samples as u128 * cfg.model.input_dim() as u128
    } else {
        0
    };
    check_memory(
        cfg.model.workspace_len(batch, cfg.train.samples)? + piwae,
        "--batch-size x --samples",
    )
}

/// [`train`] on data already loaded with [`load_splits`] and checked with [`preflight`].
pub fn train_on(
    run_dir: &Path,
    splits: &Splits,
    start: Start,
    observer: &mut dyn Observer,
) -> Result<Vec<EpochMetrics>> {
    let (cfg, mut vae, mut adam, state) = begin(start, &splits.train)?;
    if dist::size() > 1 {
        ranks_agree(&cfg, &vae, &adam, &state)?;
    }
    let writer = dist::is_writer();
    if writer {
        publish_start(run_dir, &cfg, &vae, &adam, &state)?;
    }
    // From here until the run is saved the first weight is stored input-major (see `saved_layout`).
    sparse_layout(&mut vae, &mut adam, true);
    let mut run = Training::new(run_dir, splits, cfg, vae, adam, state, writer)?;
    let epochs = run.cfg.train.epochs;
    if run.state.epoch >= epochs {
        observer.note(&format!(
            "elbo: the run has already completed {} of {epochs} epochs",
            run.state.epoch
        ));
    }
    for epoch in run.state.epoch + 1..=epochs {
        if run.epoch(epoch, observer)? == Flow::Stop {
            break;
        }
    }
    Ok(run.state.history)
}

/// A run in training: its model, optimiser and their state, and the buffers every step reuses.
struct Training<'a> {
    run_dir: &'a Path,
    splits: &'a Splits,
    cfg: RunConfig,
    vae: Vae<f32>,
    adam: Adam<f32>,
    state: TrainState,
    batcher: Batcher,
    /// Rows of a full batch (the training split's size when that is smaller).
    batch: usize,
    ws: Workspace<f32>,
    x: Vec<f32>,
    eval_ws: EvalBuffers,
    sharded: Option<Sharded>,
    /// Whether this process writes the run's files (the one process, or MPI's rank 0).
    writer: bool,
}

impl<'a> Training<'a> {
    fn new(
        run_dir: &'a Path,
        splits: &'a Splits,
        cfg: RunConfig,
        vae: Vae<f32>,
        adam: Adam<f32>,
        state: TrainState,
        writer: bool,
    ) -> Result<Self> {
        let t = &cfg.train;
        let batch = t.batch_size.min(splits.train.len());
        let sharded = if t.shards > 1 || dist::size() > 1 {
            check_shards(t.shards)?;
            Some(Sharded::new(&vae, t, batch))
        } else {
            None
        };
        Ok(Training {
            batcher: Batcher {
                batch_size: t.batch_size,
                binarize: t.binarize,
                flip: t.random_flip,
            },
            batch,
            ws: vae.workspace(batch, t.samples),
            x: vec![0f32; batch * cfg.model.input_dim()],
            eval_ws: EvalBuffers::new(&vae),
            sharded,
            run_dir,
            splits,
            cfg,
            vae,
            adam,
            state,
            writer,
        })
    }

    /// Trains one epoch, then evaluates, checks and saves it; `Flow::Stop` when the observer asks to stop.
    fn epoch(&mut self, epoch: usize, observer: &mut dyn Observer) -> Result<Flow> {
        let t = &self.cfg.train;
        let n = self.splits.train.len();
        observer.epoch_start(epoch, t.epochs, n);
        let started = Instant::now();
        let lr = t.lr_schedule.lr(t.lr, epoch, t.epochs);
        let order = self.batcher.epoch_order(n, &mut self.state.data_rng);
        let mut stats = BatchStats::default();
        let mut disc = DiscriminatorTally::default();
        for (step, idx) in order.chunks(self.batch).enumerate() {
            let (st, loss) = self.step(epoch, step, idx, lr, observer)?;
            stats.add(st);
            if self.vae.discriminator_start().is_some() && idx.len() >= 2 {
                disc.add(&self.ws.discriminator, idx.len());
            }
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            observer.step(stats.n, loss / idx.len() as f64, stats.n as f64 / secs);
        }
        let row = self.finish_epoch(epoch, stats, disc, started.elapsed().as_secs_f64(), lr)?;
        let gathered = (self.sharded.as_mut())
            .filter(|_| dist::size() > 1)
            .map(|sh| std::mem::take(&mut sh.gather).as_secs_f64());
        let line = epoch_line(&self.cfg, &row, gathered);
        Ok(observer.epoch_end(&row, &line))
    }

    /// One optimiser step on the items `idx`, the `step`-th batch of the epoch: its statistics and loss.
    fn step(
        &mut self,
        epoch: usize,
        step: usize,
        idx: &[usize],
        lr: f64,
        observer: &mut dyn Observer,
    ) -> Result<(BatchStats, f64)> {
        let (t, splits) = (&self.cfg.train, self.splits);
        let (n, rows, d) = (splits.train.len(), idx.len(), self.cfg.model.input_dim());
        // A program that installed an [`crate::signals::Catch`] stops between two steps on its signal (ranks of a
        // sharded step agree on it inside the step, so none waits for one that left).
        if let Some(signal) = crate::signals::received().filter(|_| self.sharded.is_none()) {
            observer.abandon();
            return Err(self.stopped(signal, epoch));
        }
        let x = &mut self.x[..rows * d];
        let state = &mut self.state;
        self.batcher
            .fill(&splits.train, idx, &mut state.data_rng, x);
        // Pages of a memory-mapped dataset count against this process until given back.
        if step % RELEASE_EVERY == RELEASE_EVERY - 1 {
            splits.train.release();
        }
        for (l, &i) in self.ws.labels.iter_mut().zip(idx) {
            *l = splits.train.label(i);
        }
        let progress = (epoch - 1) as f64 + step as f64 / n.div_ceil(self.batch) as f64;
        let objective = step_objective(t, progress, self.adam.t, n);
        let vae = &mut self.vae;
        let st = if let Some(sh) = &mut self.sharded {
            vae.draw_eps_into(rows, t.samples, &mut sh.eps, &mut state.noise_rng);
            let (st, stop) = sh.step(vae, x, idx, splits, &objective, &mut self.ws);
            if let Some(signal) = stop {
                observer.abandon();
                return Err(self.stopped(signal, epoch));
            }
            st
        } else {
            vae.draw_eps(rows, &mut self.ws, &mut state.noise_rng);
            vae.loss_and_grad(x, rows, &objective, &mut self.ws)
        };
        let loss = match t.objective {
            Estimator::Elbo => st.recon + objective.beta * st.kl,
            _ => st.iwae,
        };
        let updated = if loss.is_finite() {
            update(t, vae, &mut self.adam, lr, rows)
        } else {
            Err(format!("the loss became {}", loss / rows as f64))
        };
        if let Err(what) = updated {
            observer.abandon();
            return Err(Error::Diverged {
                epoch,
                step: step + 1,
                what,
                fix: divergence_fix(t).into(),
            });
        }
        vae.update_running_stats(&self.ws);
        Ok((st, loss))
    }

    /// The epoch's metrics on the test (and validation) split, checked finite and saved with the checkpoint.
    fn finish_epoch(
        &mut self,
        epoch: usize,
        stats: BatchStats,
        disc: DiscriminatorTally,
        seconds: f64,
        lr: f64,
    ) -> Result<EpochMetrics> {
        let t = &self.cfg.train;
        let (vae, splits) = (&self.vae, self.splits);
        let eval_seed = t.seed ^ TEST_SALT ^ (epoch as u64);
        let test: SplitMetrics = self.eval_ws.elbo(vae, &splits.test, eval_seed).into();
        let validation =
            (splits.validation.as_ref()).map(|v| self.eval_ws.elbo(vae, v, eval_seed ^ 1).into());
        let row = EpochMetrics {
            epoch,
            train: stats.into(),
            test,
            validation,
            seconds,
            lr,
            train_neg_iwae: (t.objective.is_importance_weighted())
                .then(|| stats.iwae / stats.n.max(1) as f64),
            discriminator: disc.mean(),
        };
        if !row.is_finite() || !savable(&vae.params, &self.adam) {
            return Err(Error::Diverged {
                epoch,
                step: splits.train.len().div_ceil(self.batch),
                what: if row.is_finite() {
                    "the weights or the optimiser's moments overflowed (the loss was still finite)"
                } else {
                    "the epoch's metrics are not finite"
                }
                .into(),
                fix: divergence_fix(t).into(),
            });
        }
        let state = &mut self.state;
        state.epoch = epoch;
        state.adam_t = self.adam.t;
        state.history.push(row);
        if self.writer {
            let (run_dir, cfg) = (self.run_dir, &self.cfg);
            saved_layout(&mut self.vae, &mut self.adam, |vae, adam| {
                save_epoch(run_dir, cfg, vae, adam, state)
            })?;
        }
        Ok(row)
    }

    /// A signal stops training between steps; the epochs before this one are kept.
    fn stopped(&self, signal: i32, epoch: usize) -> Error {
        Error::Interrupted {
            signal,
            kept: epoch - 1,
            finished: false,
            dir: self.run_dir.to_path_buf(),
        }
    }
}

/// Stores the encoder's first weight, and Adam's moments for it, input-major (`on`) so that it multiplies only a
/// sparse batch's nonzero values, or back in PyTorch's layout.
fn sparse_layout(vae: &mut Vae<f32>, adam: &mut Adam<f32>, on: bool) {
    let Adam { m, v, .. } = adam;
    vae.multiply_sparse_inputs(on, &mut [&mut m[..], &mut v[..]]);
}

/// Runs `f` on the model and optimiser in the layout checkpoints keep (PyTorch's), then goes back to training's.
fn saved_layout<R>(
    vae: &mut Vae<f32>,
    adam: &mut Adam<f32>,
    f: impl FnOnce(&Vae<f32>, &Adam<f32>) -> R,
) -> R {
    sparse_layout(vae, adam, false);
    let r = f(vae, adam);
    sparse_layout(vae, adam, true);
    r
}

/// The run a [`Start`] describes: a new one from its config and seed, or a checkpoint to continue (to a new
/// epoch count, checked before anything is saved).
fn begin(start: Start, train: &Dataset) -> Result<(RunConfig, Vae<f32>, Adam<f32>, TrainState)> {
    match start {
        Start::New(cfg) => {
            let cfg = *cfg;
            cfg.validate()?;
            let seed = cfg.train.seed;
            let mut vae = Vae::<f32>::new(
                cfg.model.clone(),
                &mut rand_pcg::Pcg64Mcg::seed_from_u64(seed),
            );
            if cfg.train.pseudo_init == PseudoInit::Data {
                pseudo_inputs_from_data(&mut vae, train, seed)?;
            }
            let adam = cfg.train.adam_for(&vae);
            let state = TrainState {
                epoch: 0,
                adam_t: 0,
                data_rng: rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ DATA_SALT),
                noise_rng: rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ NOISE_SALT),
                history: Vec::new(),
            };
            Ok((cfg, vae, adam, state))
        }
        Start::Resume(ck, epochs) => {
            let mut cfg = ck.config;
            if let Some(e) = epochs {
                cfg.train.epochs = e;
                // Checked before anything is saved: a config that every later load would refuse must never
                // reach a checkpoint.
                cfg.validate()?;
                if e < ck.state.epoch {
                    return Err(Error::Config(format!(
                        "--epochs {e} is fewer than the {} epochs this run has completed: pass more to train further",
                        ck.state.epoch
                    )));
                }
            }
            Ok((cfg, ck.vae, ck.adam, ck.state))
        }
    }
}

/// Starts a VampPrior's pseudo-inputs on K distinct training items drawn with the run's seed (intensities, before
/// any dynamic binarisation), plus a little noise.
fn pseudo_inputs_from_data(vae: &mut Vae<f32>, train: &Dataset, seed: u64) -> Result<()> {
    let Some(vamp) = vae.vamp() else {
        return Ok(());
    };
    let (k, d) = (vamp.components(), vamp.input);
    enough_for_pseudo_inputs(k, train.len())?;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed ^ PSEUDO_SALT);
    let idx = rand::seq::index::sample(&mut rng, train.len(), k).into_vec();
    let mut items = vec![0f32; k * d];
    let copy = Batcher {
        batch_size: k,
        binarize: Binarize::None,
        flip: false,
    };
    copy.fill(train, &idx, &mut rng, &mut items);
    vae.init_pseudo_inputs_from(&items, &mut rng);
    Ok(())
}

/// The writer's files before the first step: config.json as the run now continues (a resume may change its
/// epochs; a damaged or foreign one is replaced, since the checkpoint carries the config that counts), the
/// initial weights as a checkpoint (so a run stopped in its first epoch can be resumed and read), and a check
/// that the next checkpoint has room.
fn publish_start(
    run_dir: &Path,
    cfg: &RunConfig,
    vae: &Vae<f32>,
    adam: &Adam<f32>,
    state: &TrainState,
) -> Result<()> {
    let save_failed = |e| save_error(run_dir, e);
    let json = serde_json::to_string_pretty(cfg).map_err(|e| Error::Config(e.to_string()))?;
    crate::fsutil::write_atomic(&run_dir.join("config.json"), json.as_bytes())
        .map_err(save_failed)?;
    if state.epoch == 0 && !run_dir.join(checkpoint::CHECKPOINT).exists() {
        checkpoint::save(run_dir, cfg, &vae.params, adam, state).map_err(save_failed)?;
    }
    checkpoint::check_room_for_next(run_dir).map_err(save_failed)
}

/// The settings that keep a run from diverging: a FactorVAE's discriminator has its own learning rate, which
/// `--clip-grad-norm` does not reach.
fn divergence_fix(t: &TrainConfig) -> &'static str {
    if t.factor_vae.is_some() {
        "a smaller --lr or --discriminator-lr, or with --clip-grad-norm (which clips the VAE's gradient, not the discriminator's)"
    } else {
        "a smaller --lr or with --clip-grad-norm"
    }
}

/// One optimiser step on the gradient in `vae.params.grad`: scaled to the batch mean if asked, clipped, then
/// Adam. FactorVAE's discriminator has its own loss, a mean already, and its own optimiser group, so the scaling
/// and clipping touch the VAE's weights only. `Err` says what diverged.
fn update(
    t: &TrainConfig,
    vae: &mut Vae<f32>,
    adam: &mut Adam<f32>,
    lr: f64,
    rows: usize,
) -> std::result::Result<(), String> {
    let own = vae.discriminator_start().unwrap_or(vae.params.len());
    if t.loss_reduction == Reduction::Mean {
        // PyTorch's default: the gradient of the per-image mean, so clipping and ε see that scale.
        let s = 1.0 / rows as f32;
        vae.params.grad[..own].iter_mut().for_each(|g| *g *= s);
    }
    if let Some(max) = t.clip_grad_norm {
        let norm = crate::core::optim::clip_grad_norm(&mut vae.params.grad[..own], max);
        if !norm.is_finite() {
            return Err(format!("the gradient norm became {norm}"));
        }
    }
    adam.step(&mut vae.params, lr);
    Ok(())
}

/// FactorVAE's discriminator over an epoch: loss and accuracy summed over steps, TC over images.
#[derive(Debug, Default)]
struct DiscriminatorTally {
    sum: metrics::DiscriminatorMetrics,
    steps: usize,
    images: usize,
}

impl DiscriminatorTally {
    fn add(&mut self, d: &crate::model::factor::DiscriminatorStats, rows: usize) {
        self.sum.loss += d.loss;
        self.sum.accuracy += d.accuracy;
        self.sum.total_correlation += d.total_correlation;
        self.steps += 1;
        self.images += rows;
    }

    /// Mean loss and accuracy per step and TC per image; `None` when the discriminator never trained.
    fn mean(&self) -> Option<metrics::DiscriminatorMetrics> {
        (self.steps > 0).then(|| metrics::DiscriminatorMetrics {
            loss: self.sum.loss / self.steps as f64,
            accuracy: self.sum.accuracy / self.steps as f64,
            total_correlation: self.sum.total_correlation / self.images as f64,
        })
    }
}

/// The epoch's checkpoint and metrics.csv; a failure says which checkpoint is kept (this epoch's may have been
/// published before metrics.csv failed).
fn save_epoch(
    run_dir: &Path,
    cfg: &RunConfig,
    vae: &Vae<f32>,
    adam: &Adam<f32>,
    state: &TrainState,
) -> Result<()> {
    checkpoint::save(run_dir, cfg, &vae.params, adam, state)
        .and_then(|()| metrics::write_csv(&run_dir.join("metrics.csv"), &state.history))
        .map_err(|e| save_error(run_dir, e))
}

/// A failed write of the run's files, saying which checkpoint is kept.
fn save_error(run_dir: &Path, e: Error) -> Error {
    Error::Save {
        kept: checkpoint::newest_epoch(run_dir),
        dir: run_dir.to_path_buf(),
        source: Box::new(e),
    }
}

/// The objective of one step: KL warm-up scales β by the fraction of warm-up epochs done (`progress` counts
/// epochs, fractional within one); capacity grows with the optimiser steps taken; β-TC-VAE's q(z) averages over
/// the `train_items` of the training split.
pub fn step_objective(
    t: &TrainConfig,
    progress: f64,
    steps_done: u64,
    train_items: usize,
) -> Objective {
    let warm = if t.warmup_epochs > 0 {
        (progress / t.warmup_epochs as f64).min(1.0)
    } else {
        1.0
    };
    Objective {
        estimator: t.objective,
        beta: t.beta * warm,
        capacity: t.capacity.map(|c| {
            let frac = (steps_done as f64 / c.steps as f64).min(1.0);
            (c.gamma, c.max * frac)
        }),
        free_bits: t.free_bits,
        groups: t.groups,
        ciwae_beta: t.ciwae_beta.unwrap_or(0.0),
        dip: t.dip,
        factor_vae: t.factor_vae.map(|f| f.gamma),
        tc: t.tc.map(|tc| crate::model::tc::Tc {
            dataset_size: train_items,
            ..tc
        }),
    }
}

/// An epoch's one-line summary, as `elbo train` prints it.
pub fn epoch_line(cfg: &RunConfig, row: &EpochMetrics, gathered: Option<f64>) -> String {
    let (epoch, epochs, test) = (row.epoch, cfg.train.epochs, row.test);
    let mut v = row.validation.map_or(String::new(), |v: SplitMetrics| {
        format!(" | val -ELBO {:.2}", v.neg_elbo)
    });
    if let Some(b) = row.train_neg_iwae {
        let t = &cfg.train;
        let bound = match t.objective {
            Estimator::Miwae => format!("MIWAE(M={}, K={})", t.groups, t.samples / t.groups.max(1)),
            Estimator::Piwae => format!(
                "IWAE(k={}) of PIWAE(M={}, K={})",
                t.samples,
                t.groups,
                t.samples / t.groups.max(1)
            ),
            Estimator::Ciwae => {
                format!("CIWAE(β={}, K={})", t.ciwae_beta.unwrap_or(0.0), t.samples)
            }
            _ => format!("IWAE(k={})", t.samples),
        };
        v.push_str(&format!(" | train -{bound} {b:.2}"));
    }
    if let Some(d) = row.discriminator {
        v.push_str(&format!(
            " | discriminator loss {:.3}, accuracy {:.2}, TC {:.2}",
            d.loss, d.accuracy, d.total_correlation
        ));
    }
    if let Some(g) = gathered {
        v.push_str(&format!(" | all-gather {g:.2}s"));
    }
    let seconds = row.seconds;
    if cfg.model.is_variational() {
        format!(
            "epoch {epoch:>3}/{epochs} | train -ELBO {:.2} (recon {:.2}, KL {:.2}) | test -ELBO {:.2} (recon {:.2}, KL {:.2}){v} | {seconds:.2}s",
            row.train.neg_elbo, row.train.recon, row.train.kl, test.neg_elbo, test.recon, test.kl,
        )
    } else {
        // An autoencoder has no KL term and no ELBO: its loss is the reconstruction term alone.
        format!(
            "epoch {epoch:>3}/{epochs} | train recon {:.2} | test recon {:.2}{v} | {seconds:.2}s",
            row.train.recon, test.recon,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ItemShape;

    /// While training, the first weight and Adam's moments for it are stored input-major; a checkpoint written
    /// then holds them in PyTorch's layout, exactly, and training's layout is back afterwards.
    #[test]
    fn checkpoints_keep_pytorchs_layout_while_training_keeps_its_own() {
        let cfg = RunConfig {
            model: crate::model::ModelConfig::pytorch_example(),
            train: TrainConfig::default(),
            data: Default::default(),
        };
        let mut vae = Vae::<f32>::new(cfg.model.clone(), &mut rand_pcg::Pcg64Mcg::seed_from_u64(1));
        let mut adam = Adam::new(vae.params.len(), 1e-8);
        for (i, (m, v)) in adam.m.iter_mut().zip(adam.v.iter_mut()).enumerate() {
            (*m, *v) = (i as f32, 2.0 * i as f32);
        }
        let (weights, m, v) = (vae.params.data.clone(), adam.m.clone(), adam.v.clone());
        sparse_layout(&mut vae, &mut adam, true);
        assert_ne!(
            vae.params.data, weights,
            "the first weight is stored input-major"
        );
        let training = (vae.params.data.clone(), adam.m.clone());
        let state = TrainState {
            epoch: 1,
            adam_t: 1,
            data_rng: rand_pcg::Pcg64Mcg::seed_from_u64(2),
            noise_rng: rand_pcg::Pcg64Mcg::seed_from_u64(3),
            history: vec![],
        };
        let bytes = saved_layout(&mut vae, &mut adam, |vae, adam| {
            checkpoint::to_bytes(&cfg, &vae.params, adam, &state).unwrap()
        });
        let ck = checkpoint::from_bytes(&bytes, Path::new("c")).unwrap();
        assert_eq!(ck.vae.params.data, weights);
        assert_eq!((ck.adam.m, ck.adam.v), (m, v));
        assert_eq!((vae.params.data.clone(), adam.m.clone()), training);
    }

    /// `--pseudo-init data`: each pseudo-input starts within a little noise of a different training item, the
    /// same ones for the same seed.
    #[test]
    fn pseudo_inputs_start_on_distinct_training_items() {
        let shape = ItemShape {
            height: 28,
            width: 28,
            channels: 1,
        };
        let n = 12;
        let values: Vec<u8> = (0..n * 784)
            .map(|i| ((i * 37 + i / 784 * 101) % 256) as u8)
            .collect();
        let train = Dataset::from_bytes(shape, values.clone(), None).unwrap();
        let model = crate::model::ModelConfig {
            prior: crate::model::config::PriorSpec::Vamp { components: 5 },
            hidden: vec![16],
            ..crate::model::ModelConfig::pytorch_example()
        };
        let start = |seed| {
            let mut vae = Vae::<f32>::new(model.clone(), &mut rand_pcg::Pcg64Mcg::seed_from_u64(1));
            pseudo_inputs_from_data(&mut vae, &train, seed).unwrap();
            let v = vae.vamp().unwrap();
            vae.params.data[v.pseudo..v.pseudo + v.components() * v.input].to_vec()
        };
        let u = start(3);
        let mut matched = Vec::new();
        for row in u.chunks_exact(784) {
            let item = (0..n).find(|&i| {
                row.iter()
                    .zip(&values[i * 784..(i + 1) * 784])
                    .all(|(&u, &x)| (u - x as f32 / 255.0).abs() < 0.06)
            });
            let item = item.expect("every pseudo-input is near a training item");
            assert!(!matched.contains(&item), "item {item} twice");
            matched.push(item);
        }
        assert!(
            u.chunks_exact(784)
                .next()
                .unwrap()
                .iter()
                .zip(&values)
                .any(|(&u, &x)| u != x as f32 / 255.0)
        );
        assert_eq!(u, start(3));
        assert_ne!(u, start(4));
        let few = Dataset::from_bytes(shape, values[..4 * 784].to_vec(), None).unwrap();
        let mut vae = Vae::<f32>::new(model, &mut rand_pcg::Pcg64Mcg::seed_from_u64(1));
        let e = pseudo_inputs_from_data(&mut vae, &few, 1)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("5 pseudo-inputs") && e.contains("there are 4"),
            "{e}"
        );
    }

    #[test]
    fn an_overflowed_optimiser_state_is_not_savable() {
        let mut params = crate::core::Params::<f32> {
            data: vec![0.5; 4],
            grad: vec![0.0; 4],
            ..Default::default()
        };
        let mut adam = TrainConfig::default().adam(4);
        assert!(savable(&params, &adam));
        adam.v[2] = f32::INFINITY;
        assert!(
            !savable(&params, &adam),
            "finite weights, infinite second moment"
        );
        adam.v[2] = 0.0;
        params.data[0] = f32::NAN;
        assert!(!savable(&params, &adam));
    }
}
