//! `elbo sample`: draws from the prior, decoded into an image grid.

use super::common::{MosaicArgs, OutArgs, check_count, require_images_of};
use crate::api::Model;
use crate::api::model::class_labels;
use crate::error::{Error, Result};
use crate::figures::samples::{SampleSpec, write_samples};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct SampleArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    /// Number of samples.
    #[arg(short, long, default_value_t = 64)]
    n: usize,
    /// Seed of the prior draws.
    #[arg(long, default_value_t = 1, value_parser = crate::train::settings::seed)]
    seed: u64,
    /// Scale of the prior's standard deviation (below 1: more typical samples).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    temperature: f64,
    /// Show the decoder means (the default).
    #[arg(long, conflicts_with = "bernoulli")]
    mean: bool,
    /// Show pixels sampled from the Bernoulli decoder instead of its means. (--out rows.csv writes the values.)
    #[arg(long)]
    bernoulli: bool,
    /// Generate this class only, by name or index (a conditional model); without it a conditional model shows
    /// every class.
    #[arg(long)]
    class: Option<String>,
    #[command(flatten)]
    mosaic: MosaicArgs,
    #[command(flatten)]
    output: OutArgs,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
}

/// Samples, refusing models without a prior or without Bernoulli pixels before anything is drawn.
pub(crate) fn run(a: SampleArgs) -> Result<()> {
    a.threads.init()?;
    check_count(a.n, "sample")?;
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    // Beyond 1000 the codes lie so far out that the decoder's outputs overflow.
    if !(a.temperature.is_finite() && a.temperature > 0.0 && a.temperature <= 1e3) {
        return Err(Error::Config(format!(
            "--temperature {} must be a positive number up to 1000",
            crate::error::shown(a.temperature)
        )));
    }
    let model = Model::open(&a.run_dir)?;
    let cfg = model.config();
    let spec = SampleSpec {
        n: a.n,
        seed: a.seed,
        temperature: a.temperature,
        bernoulli: a.bernoulli,
        labels: class_labels(cfg, a.class.as_deref(), a.n)?,
    };
    if super::decode::writes_rows(cfg, out) {
        let rows = model.sample_with(&spec)?;
        super::decode::write_rows(cfg, &rows, a.n, out)?;
    } else {
        require_images_of(cfg, "sample --out with an image file")?;
        super::decode::image_out(out)?;
        model.check_sample(&spec)?;
        write_samples(model.vae(), &spec, style, out)?;
    }
    crate::notes::say!("elbo: wrote {}", super::common::shown_out(out));
    Ok(())
}
