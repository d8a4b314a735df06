//! Argument groups and checks that several commands share, so each flag means the same everywhere.

use crate::error::{Error, Result};
use crate::figures::MosaicStyle;
use crate::fsutil::check_output;
use crate::train::{self, Checkpoint};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct MosaicArgs {
    /// Nearest-neighbour upscaling factor.
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// White pixels around and between tiles.
    #[arg(long, default_value_t = 2)]
    pad: usize,
    /// Draw a light line between rows.
    #[arg(long)]
    separators: bool,
}

impl MosaicArgs {
    /// The layout, refusing sizes that would make an absurdly large image.
    pub(crate) fn style(self) -> Result<MosaicStyle> {
        if self.scale == 0 || self.scale > 16 {
            return Err(Error::Config(format!(
                "--scale {} must be between 1 and 16",
                self.scale
            )));
        }
        if self.pad > 64 {
            return Err(Error::Config(format!(
                "--pad {} must be at most 64",
                self.pad
            )));
        }
        Ok(MosaicStyle {
            scale: self.scale,
            pad: self.pad,
            separators: self.separators,
        })
    }
}

#[derive(Debug, Args)]
pub(crate) struct DataArgs {
    /// Folder with the dataset's IDX files (default: $ELBO_DATA_DIR, else the user cache; missing files are downloaded).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl DataArgs {
    /// The run's data: this `--data-dir`, else `$ELBO_DATA_DIR`, else the folder recorded at training time.
    pub(crate) fn splits(&self, ck: &Checkpoint) -> Result<train::Splits> {
        let dir = self.data_dir.clone().or_else(|| recorded_dir(&ck.config));
        train::load_splits(&ck.config, dir.as_deref())
    }
}

/// An output file, replaced only with `--force`.
#[derive(Debug, Args)]
pub(crate) struct OutArgs {
    /// Output file; its ending sets the format (.png, .jpg, .bmp, .tiff for images, .png or .svg for charts, .csv for rows).
    #[arg(long)]
    out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
}

impl OutArgs {
    /// Refuses an existing file without `--force`, or a missing folder, before any work is done.
    pub(crate) fn check(&self) -> Result<&Path> {
        check_output(&self.out, self.force)?;
        Ok(&self.out)
    }

    /// As [`OutArgs::check`], and refuses an ending other than `exts`, so a file's name never lies about its
    /// format.
    pub(crate) fn check_ext(&self, exts: &[&str]) -> Result<&Path> {
        let ext = self
            .out
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if !exts.contains(&ext.as_str()) {
            return Err(Error::Config(format!(
                "--out {}: this command writes {}; give the file that ending",
                self.out.display(),
                exts.iter()
                    .map(|e| format!(".{e}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        self.check()
    }
}

/// Largest image grid `sample` and `reconstruct` draw.
pub(crate) const MAX_IMAGES: usize = 10_000;

/// The data folder recorded at training time, when no other is given and it still exists.
pub(crate) fn recorded_dir(cfg: &crate::train::RunConfig) -> Option<PathBuf> {
    if std::env::var_os("ELBO_DATA_DIR").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    cfg.train.data_dir.clone().filter(|d| d.is_dir())
}

/// The labels `n` generated images are conditioned on: `class` (a name the run knows, or an index) for all, or
/// (no class given) the classes in turn.
pub(crate) fn class_labels(ck: &Checkpoint, class: Option<&str>, n: usize) -> Result<Vec<u32>> {
    let k = ck.config.model.classes as u32;
    let names = &ck.config.data.classes;
    let class = match class {
        None => None,
        Some(c) => match names.iter().position(|n| n == c) {
            Some(i) => Some(i as u32),
            None => Some(c.parse::<u32>().map_err(|_| {
                Error::Config(format!(
                    "--class '{c}' is neither a class of this run ({}) nor an index",
                    if names.is_empty() {
                        "none named".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })?),
        },
    };
    match class {
        Some(_) if k == 0 => Err(Error::Config(
            "--class needs a conditional model (trained with --conditional); this one is not"
                .into(),
        )),
        Some(c) if c >= k => Err(Error::Config(format!(
            "--class {c} is out of range: this model knows classes 0 to {}",
            k - 1
        ))),
        Some(c) => Ok(vec![c; n]),
        None if k > 0 => Ok((0..n).map(|i| (i * k as usize / n) as u32).collect()),
        None => Ok(Vec::new()),
    }
}

/// Refuses `--n` of 0 or above [`MAX_IMAGES`] before the run is loaded.
pub(crate) fn check_count(n: usize, what: &str) -> Result<()> {
    if n == 0 || n > MAX_IMAGES {
        return Err(Error::Config(format!(
            "--n {n} for {what} must be between 1 and {MAX_IMAGES}"
        )));
    }
    Ok(())
}

/// Refuses an image figure for a run whose data are feature rows, pointing to the CSV alternative.
pub(crate) fn require_images(ck: &Checkpoint, what: &str) -> Result<()> {
    if ck.config.data.kind != crate::data::Kind::Image {
        return Err(Error::Config(format!(
            "{what} draws images, but this run's data are feature rows: use `elbo sample RUN --out rows.csv`, `elbo decode` or `elbo encode` instead"
        )));
    }
    Ok(())
}
