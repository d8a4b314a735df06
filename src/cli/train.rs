//! `elbo train`: a new run from flags and a config file, or the continuation of a saved one, then its figures.

use super::common::recorded_dir;
use super::flags::RunFlags;
use crate::core::dist;
use crate::core::threads;
use crate::error::{Error, Result};
use crate::figures;
use crate::fsutil::write_atomic;
use crate::train::{self, RunLock, Start, TrainOptions, load_run};
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// TOML file of settings, keyed by flag name (`latent = 2`, `batch-size = 20`); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Continue the run in RUN_DIR from its last checkpoint, with its saved config.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    flags: RunFlags,
    /// Replace an existing run directory's checkpoint, metrics and figures.
    #[arg(long)]
    force: bool,
}

impl TrainArgs {
    /// The settings: the flags, then the `--config` file for what they leave out.
    fn settings(&self) -> Result<RunFlags> {
        let Some(path) = &self.config else {
            return Ok(self.flags.clone());
        };
        let text = read_text(path, "a config file")?;
        let file = RunFlags::from_toml(&text, &path.display().to_string())?;
        Ok(self.flags.clone().or(file))
    }
}

/// A config file's text: a regular UTF-8 file of at most [`MAX_CONFIG`] bytes; `what` names it in errors.
fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = crate::fsutil::read_regular(path, MAX_CONFIG, what)?;
    String::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("{}: not UTF-8 text", path.display())))
}

/// Largest config file read: real ones are a few hundred bytes, and a cap bounds what a hostile one can ask for.
const MAX_CONFIG: u64 = 1 << 20;

/// Files `elbo train` writes into a run directory; `--force` removes exactly these.
const RUN_FILES: [&str; 9] = [
    train::checkpoint::CHECKPOINT,
    train::checkpoint::PREVIOUS,
    "metrics.csv",
    "config.json",
    "samples.png",
    "reconstructions.png",
    "curves.png",
    "latent.png",
    "manifold.png",
];

/// Trains, checking data, memory and the run directory before the first epoch so a refusal costs nothing.
pub(crate) fn run(a: TrainArgs) -> Result<()> {
    let opts = TrainOptions {
        progress: std::io::stderr().is_terminal(),
        verbose: true,
    };
    let (run_dir, start, splits, _lock) = if let Some(dir) = &a.resume {
        threads::init(threads::check(
            a.flags.threads.unwrap_or(dist::default_threads()),
        )?);
        let mut flags = a.flags.given();
        flags.retain(|f| !["--epochs", "--threads", "--data-dir"].contains(&f.as_str()));
        if a.force {
            return Err(Error::Config(
                "--force does not go with --resume: --force replaces a run, --resume continues it"
                    .into(),
            ));
        }
        if !flags.is_empty() {
            return Err(Error::Config(format!(
                "{} cannot be changed when resuming: the run keeps its saved config (only --epochs, --threads and --data-dir apply)",
                flags.join(", ")
            )));
        }
        if dir.exists() && !dir.is_dir() {
            return Err(Error::Config(format!(
                "--resume {}: not a folder; give the run directory that 'elbo train' wrote",
                dir.display()
            )));
        }
        // Read first, so a folder that holds no run is refused before anything is written into it.
        let point = resume_point(dir)?;
        // Only rank 0 writes (and locks); the other ranks of an MPI run read the same checkpoint.
        let lock = if dist::is_writer() {
            let lock = RunLock::acquire(dir)?;
            remove_stale_temp_files(dir);
            Some(lock)
        } else {
            None
        };
        let (start, cfg) = match point {
            Resume::Checkpoint(ck) => {
                writer_note(format!(
                    "elbo: resuming {} after epoch {}",
                    dir.display(),
                    ck.state.epoch
                ));
                let cfg = ck.config.clone();
                (Start::Resume(ck, a.flags.epochs), cfg)
            }
            Resume::Config(mut cfg) => {
                writer_note(format!(
                    "elbo: {} has no checkpoint yet; starting it from its config.json",
                    dir.display()
                ));
                if let Some(e) = a.flags.epochs {
                    cfg.train.epochs = e;
                }
                (Start::New(cfg.clone()), *cfg)
            }
        };
        let data_dir = a.flags.data_dir.clone().or_else(|| recorded_dir(&cfg));
        let splits = train::load_splits(&cfg, data_dir.as_deref())?;
        train::preflight(&cfg, &splits)?;
        (dir.clone(), start, splits, lock)
    } else {
        let settings = a.settings()?;
        threads::init(threads::check(
            settings.threads.unwrap_or(dist::default_threads()),
        )?);
        // Data and memory are checked before the run directory is touched, so a refusal leaves nothing behind.
        let (dataset, data) = settings.source()?;
        let mut source = train::TrainConfig {
            dataset,
            data,
            ..Default::default()
        };
        source.seed = settings.seed.unwrap_or(source.seed);
        let loaded = train::open_data(&source, settings.data_dir.as_deref())?;
        let mut cfg = settings.resolve_for(&train::DataFacts::of(&loaded))?;
        let splits = train::prepare(&mut cfg, loaded)?;
        cfg.validate()?;
        train::preflight(&cfg, &splits)?;
        let summary = crate::model::summary::table(&cfg.model)?;
        let dir = settings.out.clone().unwrap_or_else(|| {
            let name = cfg.data_name();
            let stem = name.split('.').next().unwrap_or(&name).to_string();
            PathBuf::from("runs").join(stem)
        });
        if let Some(spec) = &cfg.train.data
            && spec.path.is_dir()
            && std::path::absolute(&dir).is_ok_and(|d| d.starts_with(&spec.path))
        {
            return Err(Error::Config(format!(
                "the run directory {} would lie inside the data folder {}, where its figures would become data: choose an --out outside it",
                dir.display(),
                spec.path.display()
            )));
        }
        let lock = if dist::is_writer() {
            Some(prepare_run_dir(&dir, a.force)?)
        } else {
            None
        };
        // Printed once nothing can refuse the run, so an error is the last line a user reads.
        for line in summary.lines() {
            writer_note(line.to_string());
        }
        writer_note(format!(
            "elbo: training into {}{}",
            dir.display(),
            if dist::size() > 1 {
                format!(
                    " on {} ranks, {} shards of each batch",
                    dist::size(),
                    cfg.train.shards
                )
            } else {
                String::new()
            }
        ));
        (dir, Start::New(Box::new(cfg)), splits, lock)
    };
    // From here on Ctrl-C and SIGTERM stop training between steps, and never cut a figure short.
    let _signals = train::interrupt::Catch::install();
    train::train_on(&run_dir, &splits, start, opts)?;
    if !dist::is_writer() {
        return Ok(());
    }
    let ck = load_run(&run_dir)?;
    if let Some(signal) = train::interrupt::received() {
        return Err(Error::Interrupted {
            signal,
            kept: ck.state.epoch,
            finished: true,
            dir: run_dir.clone(),
        });
    }
    // A signal while the figures are drawn waits for them (a second or two): the run is then complete.
    let written = figures::run_figures(&run_dir, &ck, &splits.test)?;
    crate::say!(
        "elbo: wrote {} into {}",
        written.join(", "),
        run_dir.display()
    );
    Ok(())
}

/// A line for the user, from rank 0 alone.
fn writer_note(line: String) {
    if dist::is_writer() {
        crate::say!("{line}");
    }
}

/// Where a resumed run starts.
enum Resume {
    /// Its newest loadable checkpoint.
    Checkpoint(Box<train::Checkpoint>),
    /// Its `config.json`, when it stopped before its first checkpoint was saved.
    Config(Box<train::RunConfig>),
}

fn resume_point(dir: &Path) -> Result<Resume> {
    let no_checkpoint = [train::checkpoint::CHECKPOINT, train::checkpoint::PREVIOUS]
        .iter()
        .all(|f| std::fs::symlink_metadata(dir.join(f)).is_err());
    let config = dir.join("config.json");
    if no_checkpoint && config.exists() {
        let text = read_text(&config, "a run's config.json")?;
        let cfg = train::RunConfig::from_json(&text).map_err(|e| {
            Error::Config(format!(
                "{}: {e}; this run has no checkpoint to resume from: start it again with --force",
                config.display()
            ))
        })?;
        return Ok(Resume::Config(Box::new(cfg)));
    }
    Ok(Resume::Checkpoint(Box::new(load_run(dir)?)))
}

/// Refuses to overwrite another run without `--force` or one being trained, checks the folder is writable, and
/// returns its lock, held for the whole training.
fn prepare_run_dir(dir: &Path, force: bool) -> Result<RunLock> {
    if let Ok(meta) = std::fs::metadata(dir)
        && !meta.is_dir()
    {
        return Err(Error::Config(format!(
            "--out {} is a file, not a folder: a run needs a folder of its own",
            dir.display()
        )));
    }
    let used = RUN_FILES
        .iter()
        .any(|f| std::fs::symlink_metadata(dir.join(f)).is_ok());
    // Every file --force would remove is checked first, so a refusal never leaves a run half deleted.
    if let Some(odd) = RUN_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_file()))
    {
        return Err(Error::Config(format!(
            "{} is not a regular file (a folder, link, device or FIFO); elbo replaces only regular files: remove it or choose another --out",
            odd.display()
        )));
    }
    if used && !force {
        return Err(Error::Config(format!(
            "run directory {} already holds a run; pass --force to replace it, --resume {} to continue it, or choose another --out",
            dir.display(),
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Before anything is removed: --force must not pull a run out from under the process training it.
    let lock = RunLock::acquire(dir)?;
    // Probe writability now rather than after the first epoch.
    write_atomic(&dir.join(".elbo-write-test"), b"")?;
    let _ = std::fs::remove_file(dir.join(".elbo-write-test"));
    remove_stale_temp_files(dir);
    if used {
        for f in RUN_FILES {
            let p = dir.join(f);
            if std::fs::symlink_metadata(&p).is_ok() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
    }
    Ok(lock)
}

/// Deletes temporary files a killed trainer left behind mid-write (`.NAME.PID.tmp` of a run file, see
/// `write_atomic`); only the trainer, which holds the lock, writes those names.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp")
            && RUN_FILES
                .iter()
                .any(|f| name.starts_with(&format!(".{f}.")))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
