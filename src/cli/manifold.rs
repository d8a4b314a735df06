//! `elbo manifold`: a grid over two latent dimensions decoded into one mosaic.

use super::common::{MosaicArgs, OutArgs, class_labels};
use crate::error::{Error, Result};
use crate::figures::latent::{self as lat, GridRange};
use crate::figures::{mosaic, save_image};
use crate::train::load_run;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct ManifoldArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    /// Tiles per side.
    #[arg(long, default_value_t = 20)]
    grid: usize,
    /// The two latent dimensions to vary (0-based); the others are held at 0.
    #[arg(long, value_delimiter = ',', num_args = 1, default_value = "0,1")]
    dims: Vec<usize>,
    /// Grid spacing: quantile:P,Q places points at the standard normal's quantiles; linear:A,B evenly.
    #[arg(long, default_value = "quantile:0.05,0.95", allow_hyphen_values = true)]
    range: String,
    /// Class the decoder is conditioned on, by name or index (a conditional model).
    #[arg(long)]
    class: Option<String>,
    #[command(flatten)]
    mosaic: MosaicArgs,
    #[command(flatten)]
    output: OutArgs,
}

/// Draws the manifold; a conditional model needs `--class`, since one grid cannot mix classes meaningfully.
pub(crate) fn run(a: ManifoldArgs) -> Result<()> {
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    let range: GridRange = a.range.parse()?;
    if a.dims.len() != 2 {
        return Err(Error::Config(format!(
            "--dims takes two dimensions, like 0,1; got {:?}",
            a.dims
        )));
    }
    let ck = load_run(&a.run_dir)?;
    super::common::require_images(&ck, "manifold")?;
    let codes = lat::manifold_codes(ck.vae.latent(), a.grid, (a.dims[0], a.dims[1]), range)?;
    let n = a.grid * a.grid;
    if a.class.is_none() && ck.config.model.is_conditional() {
        return Err(Error::Config(format!(
            "this model is conditional: choose the class of the manifold with --class (0 to {})",
            ck.config.model.classes - 1
        )));
    }
    let labels = class_labels(&ck, a.class.as_deref(), n)?;
    let px = lat::decode_means(&ck.vae, &codes, n, &labels);
    save_image(
        &mosaic(&px, n, ck.config.model.item_shape(), a.grid, style),
        out,
    )?;
    eprintln!("elbo: wrote {}", out.display());
    Ok(())
}
