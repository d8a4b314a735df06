//! `elbo plot-metrics`: the training curves of a run, redrawn on demand (as SVG, say).

use super::common::OutArgs;
use crate::error::Result;
use crate::figures::{plot, run_title};
use crate::train::load_run;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct PlotMetricsArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    output: OutArgs,
}

/// Plots from the checkpoint's history, the same numbers as `metrics.csv`.
pub(crate) fn run(a: PlotMetricsArgs) -> Result<()> {
    let out = a.output.check_ext(&["png", "svg"])?;
    let ck = load_run(&a.run_dir)?;
    plot::training_curves(
        &ck.state.history,
        &run_title("Training curves", &a.run_dir),
        out,
    )?;
    crate::notes::say!("elbo: wrote {}", out.display());
    Ok(())
}
