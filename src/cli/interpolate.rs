//! `elbo interpolate`: the decoded path between the encodings of two test images.

use super::common::{DataArgs, MosaicArgs, OutArgs};
use crate::error::{Error, Result};
use crate::figures::latent as lat;
use crate::figures::{mosaic, save_image};
use crate::train::load_run;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct InterpolateArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Index of the first test image.
    #[arg(long)]
    from: usize,
    /// Index of the last test image.
    #[arg(long)]
    to: usize,
    /// Decoded points along the path, both ends included.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Follow the great circle between the codes (slerp) instead of the straight line.
    #[arg(long)]
    spherical: bool,
    /// A conditional model's class for every step (name, or index); needed when the two images' classes differ.
    #[arg(long, value_name = "C")]
    class: Option<String>,
    #[command(flatten)]
    mosaic: MosaicArgs,
    #[command(flatten)]
    output: OutArgs,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
}

/// Interpolates, naming the valid index range when `--from` or `--to` falls outside the test set.
pub(crate) fn run(a: InterpolateArgs) -> Result<()> {
    a.threads.init()?;
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    if a.steps < 2 || a.steps > 1000 {
        return Err(Error::Config(format!(
            "--steps {} must be between 2 and 1000",
            a.steps
        )));
    }
    let ck = load_run(&a.run_dir)?;
    super::common::require_images(&ck, "interpolate")?;
    let test = a.data.splits(&ck)?.test;
    for (flag, i) in [("--from", a.from), ("--to", a.to)] {
        if i >= test.len() {
            return Err(Error::Config(format!(
                "{flag} {i} is out of range: the test set has {} images (indices 0 to {})",
                test.len(),
                test.len() - 1
            )));
        }
    }
    let zd = ck.vae.latent();
    let codes = lat::encode(&ck.vae, &test, &[a.from, a.to]);
    let path = lat::interpolate(&codes[..zd], &codes[zd..], a.steps, a.spherical);
    // A conditional model decodes the whole path under one class: the images' own when they share it.
    let labels = match (&a.class, ck.config.model.classes) {
        (Some(_), _) => super::common::class_labels(&ck, a.class.as_deref(), a.steps)?,
        (None, 0) => vec![0; a.steps],
        (None, _) if test.label(a.from) == test.label(a.to) => vec![test.label(a.from); a.steps],
        (None, _) => {
            let name = |i: usize| {
                let l = test.label(i) as usize;
                ck.config
                    .data
                    .classes
                    .get(l)
                    .cloned()
                    .unwrap_or_else(|| l.to_string())
            };
            return Err(Error::Config(format!(
                "test images {} (class {}) and {} (class {}) differ in class, and this conditional model decodes the whole path under one: give --class to choose it",
                a.from,
                name(a.from),
                a.to,
                name(a.to)
            )));
        }
    };
    let px = lat::decode_means(&ck.vae, &path, a.steps, &labels);
    save_image(
        &mosaic(&px, a.steps, ck.config.model.item_shape(), a.steps, style)?,
        out,
    )?;
    crate::notes::say!("elbo: wrote {}", out.display());
    Ok(())
}
