//! `elbo traverse`: the latent-traversal figure, one row per latent dimension swept from a base code.

use super::common::{DataArgs, MosaicArgs, OutArgs, class_labels};
use crate::error::{Error, Result};
use crate::figures::latent as lat;
use crate::figures::traverse;
use crate::train::load_run;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct TraverseArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    /// The values each dimension sweeps, LOW,HIGH.
    #[arg(long, default_value = "-3,3", allow_hyphen_values = true)]
    range: String,
    /// Images per row, both ends included (2 to 101).
    #[arg(long, default_value_t = 11, allow_negative_numbers = true)]
    steps: usize,
    /// Start from the encoding (the mean μ) of this test image instead of z = 0.
    #[arg(long, allow_negative_numbers = true)]
    from: Option<usize>,
    /// The latent dimensions to show, 0-based [default: all, at most 64].
    #[arg(long, value_delimiter = ',', num_args = 1.., allow_negative_numbers = true)]
    dims: Vec<usize>,
    /// Class the decoder is conditioned on, by name or index (a conditional model without --from, which takes
    /// the image's own class).
    #[arg(long)]
    class: Option<String>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    mosaic: MosaicArgs,
    #[command(flatten)]
    output: OutArgs,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
}

/// Most rows a figure holds.
const MAX_ROWS: usize = 64;

fn parse_range(s: &str) -> Result<(f32, f32)> {
    let bad = || {
        Error::Config(format!(
            "--range {s}: give LOW,HIGH, two finite numbers with LOW < HIGH, like -3,3"
        ))
    };
    let (a, b) = s.split_once(',').ok_or_else(bad)?;
    // Parsed as f64: 1e300 is a finite number out of range, not an f32 infinity.
    let (a, b): (f64, f64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if !(a.is_finite() && b.is_finite()) {
        return Err(bad());
    }
    // Compared as the f32 the sweep runs in: 1,1.00000001 has no width there.
    if !((a as f32) < (b as f32) && a.abs() <= 1e3 && b.abs() <= 1e3) {
        return Err(Error::Config(format!(
            "--range {s}: LOW must be below HIGH, both within ±1000"
        )));
    }
    Ok((a as f32, b as f32))
}

/// Draws the traversal, rows sorted by each dimension's mean KL on the test set (printed beside the row).
pub(crate) fn run(a: TraverseArgs) -> Result<()> {
    a.threads.init()?;
    let out = a
        .output
        .check_ext(&["png", "jpg", "jpeg", "bmp", "tif", "tiff"])?;
    let mut style = a.mosaic.style()?;
    let (lo, hi) = parse_range(&a.range)?;
    if a.steps < 2 || a.steps > 101 {
        return Err(Error::Config(format!(
            "--steps {} must be between 2 and 101",
            a.steps
        )));
    }
    let ck = load_run(&a.run_dir)?;
    super::common::require_images(&ck, "traverse")?;
    if !ck.config.model.is_variational() {
        return Err(Error::Config(
            "this run is a deterministic autoencoder: its codes have no prior scale or KL to sweep and rank by; use manifold --range data:P,Q".into(),
        ));
    }
    let zd = ck.vae.latent();
    if let Some(&d) = a.dims.iter().find(|&&d| d >= zd) {
        return Err(Error::Config(format!(
            "--dims {d} is out of range: the latent has {zd} dimensions (0 to {})",
            zd - 1
        )));
    }
    let mut dims = if a.dims.is_empty() {
        (0..zd).collect()
    } else {
        a.dims.clone()
    };
    // Rows are ordered by KL below, so the order given does not matter; repeats would only repeat rows.
    dims.sort_unstable();
    if let Some(d) = dims.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]) {
        return Err(Error::Config(format!(
            "--dims names dimension {d} twice; name each once"
        )));
    }
    if dims.len() > MAX_ROWS {
        if a.dims.is_empty() {
            crate::notes::say!(
                "elbo: the latent has {zd} dimensions; showing the {MAX_ROWS} with the most KL (choose others with --dims)"
            );
        } else {
            return Err(Error::Config(format!(
                "--dims names {} dimensions; a figure holds at most {MAX_ROWS}",
                dims.len()
            )));
        }
    }
    let test = a.data.splits(&ck)?.test;
    let kl = traverse::mean_kl_per_dim(&ck.vae, &test);
    let depth = ck.vae.depth();
    if depth > 1 {
        crate::notes::say!(
            "elbo: rows are dimensions of z{depth}, the top of {depth} latent layers"
        );
    }
    if let Some(flow) = ck.vae.config.flow {
        crate::notes::say!(
            "elbo: rows are ranked by the KL from N(0, 1) of a Gaussian at each code's mean with the base posterior's variance: with --flow={} the posterior has no KL per dimension",
            flow.name()
        );
    } else if ck.vae.prior().closed_form_kl().is_none() {
        crate::notes::say!(
            "elbo: rows are ranked by each dimension's KL from N(0, 1): this model's learned prior has no KL per dimension"
        );
    }
    let mut rows = traverse::order_by_kl(&dims, &kl);
    rows.truncate(MAX_ROWS);
    let (base, label) = match a.from {
        Some(i) if i >= test.len() => {
            return Err(Error::Config(format!(
                "--from {i} is out of range: the test set has {} images (indices 0 to {})",
                test.len(),
                test.len() - 1
            )));
        }
        Some(i) => {
            if a.class.is_some() {
                return Err(Error::Config(
                    "--class does not go with --from: the decoder takes the class of the image encoded".into(),
                ));
            }
            (lat::encode(&ck.vae, &test, &[i]), Some(test.label(i)))
        }
        None => (vec![0.0; zd], None),
    };
    let values: Vec<f32> = (0..a.steps)
        .map(|s| lo + (hi - lo) * s as f32 / (a.steps - 1) as f32)
        .collect();
    // Rows of small images are scaled up until a label fits beside them.
    let shape = ck.config.model.item_shape();
    let row = (shape.height + style.pad) as u32;
    if row * style.scale < traverse::MIN_ROW {
        style.scale = traverse::MIN_ROW.div_ceil(row).min(16);
    }
    let width = (a.steps * (shape.width + style.pad) + style.pad) as u64 * style.scale as u64;
    let height = (rows.len() * (shape.height + style.pad) + style.pad) as u64 * style.scale as u64;
    if width * height > traverse::MAX_PIXELS {
        return Err(Error::Config(format!(
            "the figure would be {width}x{height} pixels, more than {} million: use a smaller --scale, fewer --steps or fewer --dims",
            traverse::MAX_PIXELS / 1_000_000
        )));
    }
    let codes = traverse::traversal_codes(&base, &rows, &values);
    let n = rows.len() * a.steps;
    let labels = match label {
        Some(l) => vec![l; n],
        None => {
            if a.class.is_none() && ck.config.model.is_conditional() {
                return Err(Error::Config(format!(
                    "this model is conditional: choose the class with --class (0 to {}), or start --from a test image",
                    ck.config.model.classes - 1
                )));
            }
            class_labels(&ck, a.class.as_deref(), n)?
        }
    };
    let px = lat::decode_means(&ck.vae, &codes, n, &labels);
    let names: Vec<String> = rows
        .iter()
        .map(|&d| format!("z{d}  KL {:.2}", kl[d]))
        .collect();
    traverse::draw(&px, shape, a.steps, &names, style, out)?;
    for name in &names {
        crate::notes::say!("  {name}");
    }
    crate::notes::say!(
        "elbo: wrote {} (rows by mean KL on the test set, nats)",
        out.display()
    );
    Ok(())
}
