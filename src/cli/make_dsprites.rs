//! `elbo make-dsprites`: dSprites' factor grid rendered by elbo, in DeepMind's `.npz` layout.

use crate::data::dsprites;
use crate::error::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct MakeDspritesArgs {
    /// The `.npz` to write (`--data FILE.npz` reads it like DeepMind's file).
    #[arg(long = "out", value_name = "FILE.npz")]
    out: PathBuf,
    /// Write N images drawn without replacement from the grid instead of all 737 280.
    #[arg(long, value_name = "N")]
    subsample: Option<usize>,
    /// Seed of the subsample.
    #[arg(long, default_value_t = 0, value_parser = crate::train::settings::seed)]
    seed: u64,
    /// Replace an existing file.
    #[arg(long)]
    force: bool,
    /// Worker threads drawing the images (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Renders the grid (or a subsample) and writes it, saying in the file and here that it is generated.
pub(crate) fn run(a: MakeDspritesArgs) -> Result<()> {
    if !a
        .out
        .to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(".npz")
    {
        return Err(crate::Error::Config(format!(
            "--out {}: name the file .npz (elbo and NumPy read it by that name)",
            a.out.display()
        )));
    }
    crate::fsutil::check_output(&a.out, a.force)?;
    super::common::init_threads(a.threads)?;
    let items = dsprites::grid_items(a.subsample, a.seed)?;
    let note = dsprites::generated_note(a.subsample.map(|_| a.seed), items.len());
    let progress = super::common::Progress::new("make-dsprites", items.len());
    // Ctrl-C stops between blocks, and the half-written temporary file goes with it.
    let signals = crate::signals::Catch::install();
    let written = dsprites::write_npz(&a.out, &items, &note, &|n| {
        progress.inc(n);
        crate::signals::received().is_none()
    });
    progress.finish();
    drop(signals);
    // A signal after the last block does not stop the write: the file is whole and in place, so say so.
    if let (Err(_), Some(signal)) = (&written, crate::signals::received()) {
        return Err(crate::Error::Stopped {
            what: "make-dsprites",
            signal,
        });
    }
    written?;
    crate::notes::say!("elbo: wrote {} ({note})", a.out.display());
    Ok(())
}
