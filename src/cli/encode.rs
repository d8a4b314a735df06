//! `elbo encode`: the latent codes of a split, or of the user's own items, as CSV for analysis outside elbo.

use super::common::{DataArgs, OutArgs};
use crate::api::Model;
use crate::data::Dataset;
use crate::error::Result;
use clap::Args;
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct EncodeArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Which split to encode.
    #[arg(long, default_value = "test", value_parser = ["test", "train"])]
    split: String,
    /// Encode these items instead of a split: an image, a folder or archive of images, a .npy/.npz, or a table.
    #[arg(long, value_name = "PATH", conflicts_with = "split")]
    input: Option<PathBuf>,
    #[command(flatten)]
    output: OutArgs,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
}

/// Encodes; the columns name μ and log σ² for a VAE but only z for an autoencoder, which has no variance.
pub(crate) fn run(a: EncodeArgs) -> Result<()> {
    a.threads.init()?;
    let out = a.output.check_ext(&["csv"])?;
    let model = Model::open(&a.run_dir)?;
    let ds = match &a.input {
        Some(path) => {
            a.data
                .unread("encode --input encodes that file, not the run's data")?;
            model.read(path)?
        }
        None => {
            let splits = a.data.splits_of(model.config())?;
            if a.split == "train" {
                splits.train
            } else {
                splits.test
            }
        }
    };
    let zd = model.latent();
    let mut csv = item_columns(&ds);
    if model.is_variational() {
        (0..zd).for_each(|j| csv.push_str(&format!(",mu_{j}")));
        (0..zd).for_each(|j| csv.push_str(&format!(",logvar_{j}")));
    } else {
        (0..zd).for_each(|j| csv.push_str(&format!(",z_{j}")));
    }
    csv.push('\n');
    let code = model.encode(&ds)?;
    for i in 0..code.n {
        csv.push_str(&item_cells(&ds, i, model.classes().len()));
        for v in &code.mu[i * zd..(i + 1) * zd] {
            let _ = write!(csv, ",{v}");
        }
        if !code.logvar.is_empty() {
            for v in &code.logvar[i * zd..(i + 1) * zd] {
                let _ = write!(csv, ",{v}");
            }
        }
        csv.push('\n');
    }
    super::common::write_rows_to(out, &csv)?;
    let which = match (model.depth(), model.config().model.flow) {
        (1, Some(flow)) => format!(
            "; with --flow={}, mu is the flow's image of the base Gaussian's mean and logvar the base Gaussian's, before the flow",
            flow.name()
        ),
        (1, None) => String::new(),
        (n, _) => format!(
            " of z{n}, the top of {n} latent layers, each encoded from the means of the one below"
        ),
    };
    crate::notes::say!(
        "elbo: wrote {} ({} row{}, {zd} latent dimension{}{which})",
        super::common::shown_out(out),
        ds.len(),
        if ds.len() == 1 { "" } else { "s" },
        if zd == 1 { "" } else { "s" }
    );
    Ok(())
}

/// The leading CSV columns that identify an item: its index, its file name when it has one, its class, and its
/// factors' classes when the data has factors (dSprites' `shape`, `scale`, …, as `latents_classes` holds them), so
/// codes can be read beside what made the image.
pub(crate) fn item_columns(ds: &Dataset) -> String {
    let mut s = String::from("index");
    if !ds.names.is_empty() {
        s.push_str(",item");
    }
    if ds.is_labelled() {
        s.push_str(",label,class");
    }
    if let Some(f) = ds.factors.as_deref() {
        for name in &f.names {
            s.push(',');
            s.push_str(&csv_cell(name));
        }
    }
    s
}

/// The cells of [`item_columns`] for item `i`, of a run that knows `known` classes: `label` is the run's number
/// of the class, empty for a class the run does not have (`class` names it).
pub(crate) fn item_cells(ds: &Dataset, i: usize, known: usize) -> String {
    let mut s = i.to_string();
    if !ds.names.is_empty() {
        s.push(',');
        s.push_str(&csv_cell(&ds.names[i]));
    }
    if ds.is_labelled() {
        let l = ds.label(i);
        let name = ds.classes.get(l as usize).map_or("", String::as_str);
        let label = if (l as usize) < known {
            l.to_string()
        } else {
            String::new()
        };
        let _ = write!(s, ",{label},{}", csv_cell(name));
    }
    if let Some(f) = ds.factors.as_deref() {
        for c in f.row(i) {
            let _ = write!(s, ",{c}");
        }
    }
    s
}

/// A CSV cell, quoted when it holds a separator, quote or line break.
fn csv_cell(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}
