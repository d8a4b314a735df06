//! `elbo manifold`: a grid over two latent dimensions decoded into one mosaic.

use super::common::{DataArgs, MosaicArgs, OutArgs, class_labels};
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
    /// Grid spacing: quantile:P,Q at the prior's quantiles (the default for a VAE, 0.05,0.95); data:P,Q at
    /// the quantiles of the test set's codes (the default for an autoencoder, which has no prior); linear:A,B
    /// evenly.
    #[arg(long, allow_hyphen_values = true)]
    range: Option<String>,
    #[command(flatten)]
    data: DataArgs,
    /// Class the decoder is conditioned on, by name or index (a conditional model).
    #[arg(long)]
    class: Option<String>,
    #[command(flatten)]
    mosaic: MosaicArgs,
    #[command(flatten)]
    output: OutArgs,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
}

/// Draws the manifold; a conditional model needs `--class`, since one grid cannot mix classes meaningfully.
pub(crate) fn run(a: ManifoldArgs) -> Result<()> {
    a.threads.init()?;
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    let range: Option<GridRange> = a.range.as_deref().map(str::parse).transpose()?;
    if a.dims.len() != 2 {
        return Err(Error::Config(format!(
            "--dims takes two dimensions, like 0,1; got {:?}",
            a.dims
        )));
    }
    let ck = load_run(&a.run_dir)?;
    super::common::require_images(&ck, "manifold")?;
    let variational = ck.config.model.is_variational();
    let range = match range {
        None if variational => GridRange::Quantile(0.05, 0.95),
        None => GridRange::Data(0.05, 0.95),
        Some(GridRange::Quantile(..)) if !variational => {
            return Err(Error::Config(
                "an autoencoder has no prior, so the prior's quantiles say nothing about its codes: use --range data:P,Q (where its test codes lie) or linear:A,B".into(),
            ));
        }
        Some(r) => r,
    };
    if matches!(range, GridRange::Quantile(..)) && ck.vae.prior().closed_form_kl().is_none() {
        crate::notes::say!(
            "elbo: the grid sits at N(0, 1)'s quantiles, not those of this model's learned prior (--range data:P,Q places it where the test codes lie)"
        );
    }
    // The test set's codes, for a grid placed where the data lies.
    let data_codes = match range {
        GridRange::Data(..) => {
            let splits = a.data.splits(&ck).map_err(|e| {
                Error::Config(format!(
                    "{e} (the grid of --range data:P,Q sits where the test set's codes lie; --range linear:A,B needs no data)"
                ))
            })?;
            let idx: Vec<usize> = (0..splits.test.len()).collect();
            Some(lat::encode(&ck.vae, &splits.test, &idx))
        }
        _ => {
            a.data.unread(
                "this grid needs no data (only --range data:P,Q reads the test set's codes)",
            )?;
            None
        }
    };
    let codes = lat::manifold_codes(
        ck.vae.latent(),
        a.grid,
        (a.dims[0], a.dims[1]),
        range,
        data_codes.as_deref(),
    )?;
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
        &mosaic(&px, n, ck.config.model.item_shape(), a.grid, style)?,
        out,
    )?;
    crate::notes::say!("elbo: wrote {}", out.display());
    Ok(())
}
