//! `elbo disentanglement`: a run's codes scored against the known factors of its data (dSprites').

use super::common::{DataArgs, Progress, print_result};
use crate::api::Model;
use crate::api::disentangle::images_needed;
use crate::error::{Error, Result};
use crate::eval::disentangle::Sizes;
use clap::Args;
use std::path::PathBuf;

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
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Scores the run, with a progress bar only on a terminal.
pub(crate) fn run(a: DisentanglementArgs) -> Result<()> {
    super::common::init_threads(a.threads)?;
    use crate::api::disentangle::{MAX_POINTS, MIN_POINTS};
    if !(MIN_POINTS..=MAX_POINTS).contains(&a.points) {
        return Err(Error::Config(format!(
            "--points {} must be between {MIN_POINTS} and {MAX_POINTS} (disentanglement_lib uses 10000)",
            a.points
        )));
    }
    let model = Model::open(&a.run_dir)?;
    let sizes = Sizes::with_points(a.points);
    let progress = Progress::new("disentanglement", images_needed(sizes));
    let started = std::time::Instant::now();
    let r = model.disentanglement_of_run(a.data.dir(), sizes, a.seed, &|n| {
        progress.inc(n);
        true
    })?;
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let s = &r.scores;
    let text = if a.json {
        let mut v = serde_json::to_value(&r).map_err(|e| Error::Config(e.to_string()))?;
        v["points"] = serde_json::json!(a.points);
        v["seed"] = serde_json::json!(a.seed);
        v["seconds"] = serde_json::json!(secs);
        format!("{v}\n")
    } else {
        format!(
            "run              {}\nfactors          {}\nobservations     {}\nβ-VAE metric     {:.3}\nFactorVAE metric {:.3}\nMIG              {:.3}\nSAP              {:.3}\nDCI              disentanglement {:.3}, completeness {:.3}, informativeness {:.3}\npoints           {} ({} held out), seed {}, {} images in {secs:.1} s\n",
            a.run_dir.display(),
            r.factors.join(", "),
            r.observations,
            s.beta_vae,
            s.factor_vae,
            s.mig,
            s.sap,
            s.dci_disentanglement,
            s.dci_completeness,
            s.dci_informativeness,
            a.points,
            sizes.eval,
            a.seed,
            r.images
        )
    };
    print_result(&text)
}
