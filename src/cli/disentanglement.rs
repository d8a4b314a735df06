//! `elbo disentanglement`: a run's codes scored against the known factors of its data (dSprites').

use super::common::{DataArgs, Progress, print_result};
use crate::api::Model;
use crate::api::disentangle::{Disentanglement, MAX_POINTS, MIN_POINTS, images_needed};
use crate::error::{Error, Result};
use crate::eval::disentangle::Sizes;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub(crate) struct DisentanglementArgs {
    /// A run directory written by `elbo train` on data with known factors.
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Training points of every metric (held-out points: half as many); disentanglement_lib uses 10000.
    #[arg(long, default_value_t = 10_000)]
    points: usize,
    /// Seed of the metrics' draws.
    #[arg(long, default_value_t = 1, value_parser = crate::train::settings::seed)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
}

/// Scores the run, with a progress bar only on a terminal.
pub(crate) fn run(a: DisentanglementArgs) -> Result<()> {
    a.threads.init()?;
    check_points(a.points, "--points")?;
    let model = Model::open(&a.run_dir)?;
    let sizes = Sizes::with_points(a.points);
    let progress = Progress::new("disentanglement", images_needed(sizes));
    let started = std::time::Instant::now();
    // Ctrl-C stops between blocks of images, with the line every stopped command prints.
    let r = progress
        .until_signal(|go_on| model.disentanglement_of_run(a.data.dir(), sizes, a.seed, go_on))?;
    let s = Scored {
        r,
        sizes,
        seed: a.seed,
        secs: started.elapsed().as_secs_f64(),
    };
    let text = if a.json {
        let mut v = serde_json::to_value(&s.r).map_err(|e| Error::Config(e.to_string()))?;
        v["points"] = serde_json::json!(a.points);
        v["seed"] = serde_json::json!(a.seed);
        v["seconds"] = serde_json::json!(s.secs);
        // Which checkpoint was scored: a damaged newest one falls back to the one before.
        v["epoch"] = serde_json::json!(model.epoch());
        format!("{v}\n")
    } else {
        text(&a.run_dir, model.epoch(), &s)
    };
    print_result(&text)
}

/// Refuses a number of points the metrics cannot use, naming the `flag` that gave it.
pub(crate) fn check_points(points: usize, flag: &str) -> Result<()> {
    if (MIN_POINTS..=MAX_POINTS).contains(&points) {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{flag} {points} must be between {MIN_POINTS} and {MAX_POINTS} (disentanglement_lib uses 10000)"
    )))
}

/// Metrics scored, with how they were drawn.
pub(crate) struct Scored {
    /// The metrics and their observations.
    pub(crate) r: Disentanglement,
    /// Points drawn.
    pub(crate) sizes: Sizes,
    /// Seed of the draws.
    pub(crate) seed: u64,
    /// Wall time of the metrics, in seconds.
    pub(crate) secs: f64,
}

/// The metrics as text, a line each, as `elbo disentanglement` prints them.
pub(crate) fn text(run_dir: &Path, epoch: usize, s: &Scored) -> String {
    let (r, m) = (&s.r, &s.r.scores);
    format!(
        "run              {} (epoch {epoch})\nfactors          {}\nobservations     {}\nβ-VAE metric     {:.3}\nFactorVAE metric {:.3}\nMIG              {:.3}\nSAP              {:.3}\nDCI              disentanglement {:.3}, completeness {:.3}, informativeness {:.3}\npoints           {} ({} held out), seed {}, {} images in {:.1} s\n",
        run_dir.display(),
        r.factors.join(", "),
        r.observations,
        m.beta_vae,
        m.factor_vae,
        m.mig,
        m.sap,
        m.dci_disentanglement,
        m.dci_completeness,
        m.dci_informativeness,
        s.sizes.train,
        s.sizes.eval,
        s.seed,
        r.images,
        s.secs
    )
}
