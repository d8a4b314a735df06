//! `elbo encode`: the latent codes of a split, with labels, as CSV for analysis outside elbo.

use super::common::{DataArgs, OutArgs};
use crate::error::Result;
use crate::figures::latent as lat;
use crate::fsutil::write_atomic;
use crate::train::load_run;
use clap::Args;
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
    #[command(flatten)]
    output: OutArgs,
}

/// Encodes; the columns name μ and log σ² for a VAE but only z for an autoencoder, which has no variance.
pub(crate) fn run(a: EncodeArgs) -> Result<()> {
    let out = a.output.check()?;
    let ck = load_run(&a.run_dir)?;
    let splits = a.data.splits(&ck)?;
    let ds = if a.split == "train" {
        &splits.train
    } else {
        &splits.test
    };
    let vae = &ck.vae;
    let zd = vae.latent();
    let mut csv = String::from("index,label");
    if ck.config.model.is_variational() {
        (0..zd).for_each(|j| csv.push_str(&format!(",mu_{j}")));
        (0..zd).for_each(|j| csv.push_str(&format!(",logvar_{j}")));
    } else {
        (0..zd).for_each(|j| csv.push_str(&format!(",z_{j}")));
    }
    csv.push('\n');
    let all: Vec<usize> = (0..ds.len()).collect();
    let head = lat::encode_head(vae, ds, &all);
    for (h, &i) in head.chunks_exact(vae.head_len()).zip(&all) {
        csv.push_str(&format!("{i},{}", ds.labels[i]));
        for v in h {
            csv.push_str(&format!(",{v}"));
        }
        csv.push('\n');
    }
    write_atomic(out, csv.as_bytes())?;
    eprintln!(
        "elbo: wrote {} ({} rows, {zd} latent dimensions)",
        out.display(),
        ds.len()
    );
    Ok(())
}
