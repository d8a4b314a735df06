//! `elbo latent-plot`: the encoder means of a split, scattered and coloured by class.

use super::common::{DataArgs, OutArgs};
use crate::error::{Error, Result};
use crate::figures::plot::write_latent_plot;
use crate::train::load_run;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct LatentPlotArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Which split to encode.
    #[arg(long, default_value = "test", value_parser = ["test", "train"])]
    split: String,
    /// Projection for latents of more than two dimensions.
    #[arg(long, default_value = "pca", value_parser = ["pca"])]
    method: String,
    /// Plot the first N images of the split only.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    output: OutArgs,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
}

/// Plots; `--method` accepts only `pca` for now, so clap has already checked it.
pub(crate) fn run(a: LatentPlotArgs) -> Result<()> {
    a.threads.init()?;
    let out = a.output.check_ext(&["png", "svg"])?;
    let ck = load_run(&a.run_dir)?;
    let splits = a.data.splits(&ck)?;
    let ds = if a.split == "train" {
        splits.train
    } else {
        splits.test
    };
    let ds = match a.limit {
        Some(0) => return Err(Error::Config("--limit 0 leaves nothing to plot".into())),
        Some(n) => ds.truncated(n),
        None => ds,
    };
    debug_assert_eq!(a.method, "pca");
    write_latent_plot(&ck, &a.run_dir, &ds, &a.split, out)?;
    crate::notes::say!("elbo: wrote {}", out.display());
    Ok(())
}
