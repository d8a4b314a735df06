//! `elbo sample`: draws from the prior, decoded into an image grid.

use super::common::{MosaicArgs, OutArgs, check_count, class_labels, require_images};
use crate::error::{Error, Result};
use crate::figures::samples::{SampleSpec, sample_values, write_samples};
use crate::model::Likelihood;
use crate::train::load_run;
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
    #[arg(long, default_value_t = 1)]
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
}

/// Samples, refusing models without a prior or without Bernoulli pixels before anything is drawn.
pub(crate) fn run(a: SampleArgs) -> Result<()> {
    check_count(a.n, "sample")?;
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    // Beyond 1000 the codes lie so far out that the decoder's outputs overflow.
    if !(a.temperature.is_finite() && a.temperature > 0.0 && a.temperature <= 1e3) {
        return Err(Error::Config(format!(
            "--temperature {} must be a positive number up to 1000",
            a.temperature
        )));
    }
    let ck = load_run(&a.run_dir)?;
    if !ck.config.model.is_variational() {
        return Err(Error::Config(
            "this run is a deterministic autoencoder: it has no prior to sample from (use reconstruct, encode or interpolate)".into(),
        ));
    }
    let labels = class_labels(&ck, a.class.as_deref(), a.n)?;
    if a.bernoulli && ck.config.model.likelihood != Likelihood::Bernoulli {
        let what = match ck.config.model.likelihood {
            Likelihood::Logistic { .. } => "a discretised logistic",
            _ => "a Gaussian",
        };
        return Err(Error::Config(format!(
            "--bernoulli samples pixels from a Bernoulli decoder; this model's is {what}"
        )));
    }
    let spec = SampleSpec {
        n: a.n,
        seed: a.seed,
        temperature: a.temperature,
        bernoulli: a.bernoulli,
        labels,
    };
    if out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let mut rows = sample_values(&ck.vae, &spec);
        super::decode::write_rows(&ck, &mut rows, a.n, out)?;
    } else {
        require_images(&ck, "sample --out with an image file")?;
        crate::figures::image_format(out)?;
        write_samples(&ck.vae, &spec, style, out)?;
    }
    crate::say!("elbo: wrote {}", out.display());
    Ok(())
}
