//! `elbo reconstruct`: test images in one row over their reconstructions in the row below.

use super::common::{DataArgs, MosaicArgs, OutArgs, check_count};
use crate::error::Result;
use crate::figures::samples::write_reconstructions;
use crate::train::load_run;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct ReconstructArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Number of test images.
    #[arg(short, long, default_value_t = 8)]
    n: usize,
    #[command(flatten)]
    mosaic: MosaicArgs,
    #[command(flatten)]
    output: OutArgs,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
}

/// Reconstructs, checking the arguments and the output file before the run and its data are loaded.
pub(crate) fn run(a: ReconstructArgs) -> Result<()> {
    a.threads.init()?;
    check_count(a.n, "reconstruct")?;
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    let ck = load_run(&a.run_dir)?;
    super::common::require_images(&ck, "reconstruct")?;
    let splits = a.data.splits(&ck)?;
    write_reconstructions(&ck.vae, &splits.test, a.n, style, out)?;
    crate::notes::say!("elbo: wrote {}", out.display());
    Ok(())
}
