//! The figures `elbo train` leaves in a run directory, and the titles that name the run on every chart.

use super::latent::{self as lat, GridRange};
#[cfg(feature = "plot")]
use super::plot::{self, write_latent_plot};
use super::samples::{SampleSpec, write_reconstructions, write_samples};
use super::{MosaicStyle, mosaic, save_image};
use crate::data::Dataset;
use crate::error::Result;
use crate::train::Checkpoint;
use std::path::Path;

/// A figure title naming the run, so charts copied out of their folder still say where they came from.
pub fn run_title(what: &str, run_dir: &Path) -> String {
    let name = std::fs::canonicalize(run_dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run_dir.display().to_string());
    format!("{what} — run {name}")
}

/// Draws a finished run's figures into `run_dir` and returns the file names written, in order, for the report.
pub fn run_figures(run_dir: &Path, ck: &Checkpoint, test: &Dataset) -> Result<Vec<&'static str>> {
    let style = MosaicStyle::default();
    let mut written = Vec::new();
    let images = ck.config.data.kind == crate::data::Kind::Image;
    if ck.config.model.is_variational() && images {
        // A conditional model shows one row per class.
        let (n, labels) = if ck.config.model.is_conditional() {
            let k = ck.config.model.classes as u32;
            ((k * 8) as usize, (0..k * 8).map(|i| i / 8).collect())
        } else {
            (64, Vec::new())
        };
        let spec = SampleSpec {
            n,
            seed: ck.config.train.seed,
            temperature: 1.0,
            bernoulli: false,
            labels,
        };
        write_samples(&ck.vae, &spec, style, &run_dir.join("samples.png"))?;
        written.push("samples.png");
    }
    if images {
        write_reconstructions(
            &ck.vae,
            test,
            8,
            style,
            &run_dir.join("reconstructions.png"),
        )?;
        written.push("reconstructions.png");
    }
    // Charts need the `plot` feature; without it a run has its image grids and metrics.csv only.
    #[cfg(feature = "plot")]
    {
        plot::training_curves(
            &ck.state.history,
            &run_title("Training curves", run_dir),
            &run_dir.join("curves.png"),
        )?;
        write_latent_plot(ck, run_dir, test, "test", &run_dir.join("latent.png"))?;
        written.extend(["curves.png", "latent.png"]);
    }
    if ck.vae.latent() == 2 && images {
        // An autoencoder has no prior: its grid spans where its test codes lie.
        let (range, data) = if ck.config.model.is_variational() {
            (GridRange::default(), None)
        } else {
            let idx: Vec<usize> = (0..test.len()).collect();
            (
                GridRange::Data(0.05, 0.95),
                Some(lat::encode(&ck.vae, test, &idx)),
            )
        };
        let codes = lat::manifold_codes(2, 20, (0, 1), range, data.as_deref())?;
        let px = lat::decode_means(&ck.vae, &codes, 400, &[]);
        save_image(
            &mosaic(&px, 400, ck.config.model.item_shape(), 20, style)?,
            &run_dir.join("manifold.png"),
        )?;
        written.push("manifold.png");
    }
    Ok(written)
}
