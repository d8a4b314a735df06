//! `elbo score`: one row per item with its −ELBO and, with `--k`, its importance-sampled −log p(x): how
//! unlikely the model finds each item, the anomaly-detection use of a VAE.

use super::common::{OutArgs, Progress};
use super::encode::{item_cells, item_columns};
use crate::api::Model;
use crate::error::{Error, Result};
use clap::Args;
use std::fmt::Write;
use std::path::PathBuf;

/// Draws behind the −ELBO column when `--k` is not given.
const ELBO_DRAWS: usize = 16;

#[derive(Debug, Args)]
pub(crate) struct ScoreArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    /// The items to score: an image, a folder or archive of images, a .npy/.npz, or a table with the run's columns.
    #[arg(long, value_name = "PATH")]
    input: PathBuf,
    /// Importance samples per item for −log p(x); without it only the −ELBO (from 16 draws) is written.
    #[arg(long)]
    k: Option<usize>,
    /// Seed of the draws.
    #[arg(long, default_value_t = 1, value_parser = crate::train::settings::seed)]
    seed: u64,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
    #[command(flatten)]
    output: OutArgs,
}

/// Scores in input order; values are nats per item (for a table, of its standardised features).
pub(crate) fn run(a: ScoreArgs) -> Result<()> {
    a.threads.init()?;
    let out = a.output.check_ext(&["csv"])?;
    if a.k == Some(0) || a.k.is_some_and(|k| k > 1_000_000) {
        return Err(Error::Config("--k must be between 1 and 1000000".into()));
    }
    let model = Model::open(&a.run_dir)?;
    let k = a.k.unwrap_or(ELBO_DRAWS);
    // Before the items are read: an autoencoder cannot score whatever they are.
    model.check_scoring(k)?;
    let ds = model.read(&a.input)?;
    let progress = Progress::new(&format!("scores, K={k}"), ds.len());
    // The file is written while signals are still caught: one that comes after the last item lets the write
    // finish (no temporary file is left), and the scores are reported as written.
    let scores = progress.until_signal(|go_on| {
        let scores = model.score_with(&ds, k, a.seed, go_on)?;
        let mut csv = item_columns(&ds);
        csv.push_str(",neg_elbo");
        if a.k.is_some() {
            csv.push_str(",neg_log_px");
        }
        csv.push('\n');
        for (i, s) in scores.iter().enumerate() {
            csv.push_str(&item_cells(&ds, i, model.classes().len()));
            let _ = write!(csv, ",{}", -s.elbo);
            if a.k.is_some() {
                let _ = write!(csv, ",{}", -s.log_px);
            }
            csv.push('\n');
        }
        super::common::write_rows_to(out, &csv)?;
        Ok(scores)
    })?;
    let finite: Vec<f64> = scores
        .iter()
        .map(|s| -s.elbo)
        .filter(|v| v.is_finite())
        .collect();
    let beyond: Vec<usize> = (0..scores.len())
        .filter(|&i| !scores[i].elbo.is_finite())
        .collect();
    if let Some(first) = beyond.first() {
        crate::notes::say!(
            "elbo: {} item{} (the first: index {first}) lie so far outside the training data that the model's float32 arithmetic overflows: scored inf, above every finite score",
            beyond.len(),
            if beyond.len() == 1 { "" } else { "s" },
        );
    }
    let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
    crate::notes::say!(
        "elbo: wrote {} ({} item{}, mean -ELBO {mean:.3} nats{})",
        super::common::shown_out(out),
        scores.len(),
        if scores.len() == 1 { "" } else { "s" },
        if beyond.is_empty() {
            String::new()
        } else {
            format!(" over the {} finite", finite.len())
        }
    );
    Ok(())
}
