//! Argument groups and checks that several commands share, so each flag means the same everywhere.

use crate::error::{Error, Result};
use crate::figures::MosaicStyle;
use crate::fsutil::check_output;
use crate::train::{self, Checkpoint};
use clap::Args;
use std::io::Write;
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
    /// Folder with a named dataset's files, MNIST's IDX or dSprites' .npz (default: $ELBO_DATA_DIR, else the user cache; missing files are downloaded); refused for a run on your own --data.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl DataArgs {
    /// The `--data-dir` given, if any.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// Refuses a `--data-dir` that this use of the command would not read (`why` says what it reads instead), so
    /// a folder given is never silently ignored.
    pub(crate) fn unread(&self, why: &str) -> Result<()> {
        match &self.data_dir {
            Some(dir) => Err(Error::Config(format!(
                "--data-dir {} is not read: {why}; leave it out",
                dir.display()
            ))),
            None => Ok(()),
        }
    }

    /// The run's data: this `--data-dir`, else `$ELBO_DATA_DIR`, else the folder recorded at training time.
    pub(crate) fn splits(&self, ck: &Checkpoint) -> Result<train::Splits> {
        self.splits_of(&ck.config)
    }

    /// The splits of the run configured by `cfg`, from `--data-dir` or where the run recorded its data.
    pub(crate) fn splits_of(&self, cfg: &train::RunConfig) -> Result<train::Splits> {
        train::check_data_dir(cfg.train.data.as_ref(), self.data_dir.as_deref())?;
        let dir = self.data_dir.clone().or_else(|| recorded_dir(cfg));
        train::load_splits(cfg, dir.as_deref())
    }
}

/// An output file, replaced only with `--force`.
#[derive(Debug, Args)]
pub(crate) struct OutArgs {
    /// Output file; its ending sets the format (.png, .jpg, .bmp, .tiff for images, .png or .svg for charts, .csv for rows; `-` writes rows to standard output).
    #[arg(long)]
    out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
}

impl OutArgs {
    /// Refuses an existing file without `--force`, or a missing folder, before any work is done; `-` (standard
    /// output, for rows) has nothing to check.
    pub(crate) fn check(&self) -> Result<&Path> {
        if !is_stdout(&self.out) {
            check_output(&self.out, self.force)?;
        }
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
        // Rows piped on (`--out - | head`) are CSV, as `-` means to most tools.
        let piped = is_stdout(&self.out) && exts == ["csv"];
        if !exts.contains(&ext.as_str()) && !piped {
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

/// Whether `out` is `-`: standard output, which only rows (CSV) are written to.
pub(crate) fn is_stdout(out: &Path) -> bool {
    out == Path::new("-")
}

/// Writes CSV rows to `out`: atomically to a file, or to standard output for `-`.
pub(crate) fn write_rows_to(out: &Path, text: &str) -> Result<()> {
    if is_stdout(out) {
        print_result(text)
    } else {
        crate::fsutil::write_atomic(out, text.as_bytes())
    }
}

/// How a written output is named in the closing line: its path, or standard output.
pub(crate) fn shown_out(out: &Path) -> String {
    if is_stdout(out) {
        "the rows to standard output".into()
    } else {
        out.display().to_string()
    }
}

/// Largest image grid `sample` and `reconstruct` draw.
pub(crate) const MAX_IMAGES: usize = 10_000;

/// The data folder recorded at training time, when no other is given and it still exists.
pub(crate) fn recorded_dir(cfg: &crate::train::RunConfig) -> Option<PathBuf> {
    crate::api::trainer::recorded_dir(cfg)
}

/// The labels `n` generated images are conditioned on (see [`crate::api::model::class_labels`]).
pub(crate) fn class_labels(ck: &Checkpoint, class: Option<&str>, n: usize) -> Result<Vec<u32>> {
    crate::api::model::class_labels(&ck.config, class, n)
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
    require_images_of(&ck.config, what)
}

/// [`require_images`] for a run's configuration.
pub(crate) fn require_images_of(cfg: &crate::train::RunConfig, what: &str) -> Result<()> {
    if cfg.data.kind != crate::data::Kind::Image {
        return Err(Error::Config(format!(
            "{what} draws images, but this run's data are feature rows: use `elbo sample RUN --out rows.csv`, `elbo decode` or `elbo encode` instead"
        )));
    }
    Ok(())
}

/// Progress of a long estimate over `total` images: a bar on a terminal; otherwise (a log, `--json` piped into
/// a script) a line at most once a minute (`ELBO_PROGRESS_EVERY` seconds), so a run of hours or days never goes
/// without a word.
pub(crate) struct Progress {
    bar: indicatif::ProgressBar,
    quiet: Option<std::sync::Mutex<QuietState>>,
    what: String,
}

/// How often a run without a terminal says how far it is: `ELBO_PROGRESS_EVERY` seconds, else a minute.
fn quiet_every() -> std::time::Duration {
    let secs = match std::env::var("ELBO_PROGRESS_EVERY") {
        Err(_) => 60,
        Ok(v) => v.parse::<u64>().unwrap_or_else(|_| {
            crate::notes::say!(
                "elbo: ELBO_PROGRESS_EVERY={v:?} is not a whole number of seconds; reporting once a minute"
            );
            60
        }),
    };
    std::time::Duration::from_secs(secs)
}

/// Writes a command's result to standard output; a failed write (a full disk, a closed pipe's error) is one
/// error line, not a panic.
pub(crate) fn print_result(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| {
            Error::Config(format!(
                "could not write the result to standard output: {e}"
            ))
        })
}

struct QuietState {
    every: std::time::Duration,
    started: std::time::Instant,
    last: std::time::Instant,
    done: u64,
    total: u64,
}

impl Progress {
    /// Progress of `what` (e.g. "log p(x), K=5000") over `total` images; silent on MPI ranks that do not write.
    pub(crate) fn new(what: &str, total: usize) -> Self {
        use std::io::IsTerminal;
        let writer = crate::core::dist::is_writer();
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal && writer {
            indicatif::ProgressBar::new(total as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images ({eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        let now = std::time::Instant::now();
        let quiet = (!terminal && writer).then(|| {
            std::sync::Mutex::new(QuietState {
                every: quiet_every(),
                started: now,
                last: now,
                done: 0,
                total: total as u64,
            })
        });
        Progress {
            bar,
            quiet,
            what: what.to_string(),
        }
    }

    /// Counts `n` more images done.
    pub(crate) fn inc(&self, n: usize) {
        // Asked between chunks of draws with nothing new done: no line to say.
        if n == 0 {
            return;
        }
        self.bar.inc(n as u64);
        let Some(q) = &self.quiet else { return };
        let Ok(mut q) = q.lock() else { return };
        q.done += n as u64;
        let now = std::time::Instant::now();
        if now.duration_since(q.last) < q.every || q.done >= q.total {
            return;
        }
        q.last = now;
        let spent = now.duration_since(q.started).as_secs_f64();
        let left = spent / q.done.max(1) as f64 * (q.total - q.done) as f64;
        crate::notes::say!(
            "elbo: {}: {}/{} images in {}, about {} left",
            self.what,
            q.done,
            q.total,
            human_duration(spent),
            human_duration(left)
        );
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }

    /// Runs `work` with Ctrl-C and SIGTERM caught: its progress callback counts images and says stop once a
    /// signal arrives, so a stopped command ends with the line every stopped command prints (naming the signal
    /// that came) instead of dying without a word.
    pub(crate) fn until_signal<T>(
        &self,
        work: impl FnOnce(&(dyn Fn(usize) -> bool + Sync)) -> Result<T>,
    ) -> Result<T> {
        // Over MPI every rank must reach the estimate's gather, so a signal there ends the ranks as it always did.
        let _signals = (crate::core::dist::size() == 1).then(crate::signals::Catch::install);
        let r = work(&|n| {
            self.inc(n);
            crate::signals::received().is_none()
        });
        match (r, crate::signals::received()) {
            (Err(Error::Stopped { what, .. }), Some(signal)) => {
                Err(Error::Stopped { what, signal })
            }
            (r, _) => {
                self.finish();
                r
            }
        }
    }
}

/// `secs` as "42s", "17m" or "3h05m".
fn human_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// `--threads`, shared by every command that computes with a model or data.
#[derive(Debug, Args)]
pub(crate) struct ThreadsArg {
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

impl ThreadsArg {
    /// Sizes the worker pool from the flag, after checking it against the machine.
    pub(crate) fn init(&self) -> Result<()> {
        init_threads(self.threads)
    }
}

/// Sizes the worker pool from a command's `--threads` (0: the default for this process, all cores or this MPI
/// rank's share), after checking it against the machine.
pub(crate) fn init_threads(threads: usize) -> Result<()> {
    crate::core::threads::init(crate::core::threads::check(if threads == 0 {
        crate::core::dist::default_threads()
    } else {
        threads
    })?);
    Ok(())
}
