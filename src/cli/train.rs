//! `elbo train`: a new run from flags and a config file, or the continuation of a saved one, then its figures.

use super::common::recorded_dir;
use super::flags::RunFlags;
use crate::core::threads;
use crate::error::{Error, Result};
use crate::figures;
use crate::fsutil::write_atomic;
use crate::train::{self, Start, TrainOptions, load_run};
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
        let bytes = crate::fsutil::read_regular(path, MAX_CONFIG, "a config file")?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Config(format!("{}: not UTF-8 text", path.display())))?;
        let file = RunFlags::from_toml(&text, &path.display().to_string())?;
        Ok(self.flags.clone().or(file))
    }
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
    let (run_dir, start, splits) = if let Some(dir) = &a.resume {
        threads::init(threads::check(a.flags.threads.unwrap_or(0))?);
        let mut flags = a.flags.given();
        flags.retain(|f| !["--epochs", "--threads", "--data-dir"].contains(&f.as_str()));
        if a.force {
            flags.push("--force".into());
        }
        if !flags.is_empty() {
            return Err(Error::Config(format!(
                "{} cannot be changed when resuming: the run keeps its saved config (only --epochs, --threads and --data-dir apply)",
                flags.join(", ")
            )));
        }
        let ck = load_run(dir)?;
        remove_stale_temp_files(dir);
        let data_dir = a.flags.data_dir.clone().or_else(|| recorded_dir(&ck));
        let splits = train::load_splits(&ck.config, data_dir.as_deref())?;
        train::preflight(&ck.config, &splits)?;
        eprintln!(
            "elbo: resuming {} after epoch {}",
            dir.display(),
            ck.state.epoch
        );
        (
            dir.clone(),
            Start::Resume(Box::new(ck), a.flags.epochs),
            splits,
        )
    } else {
        let settings = a.settings()?;
        threads::init(threads::check(settings.threads.unwrap_or(0))?);
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
        eprint!("{}", crate::model::summary::table(&cfg.model)?);
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
        prepare_run_dir(&dir, a.force)?;
        let json = serde_json::to_string_pretty(&cfg).map_err(|e| Error::Config(e.to_string()))?;
        write_atomic(&dir.join("config.json"), json.as_bytes())?;
        eprintln!("elbo: training into {}", dir.display());
        (dir, Start::New(Box::new(cfg)), splits)
    };
    train::train_on(&run_dir, &splits, start, opts)?;
    let ck = load_run(&run_dir)?;
    let written = figures::run_figures(&run_dir, &ck, &splits.test)?;
    eprintln!(
        "elbo: wrote {} into {}",
        written.join(", "),
        run_dir.display()
    );
    Ok(())
}

/// Refuses to overwrite another run without `--force`, and checks the folder is writable before training starts.
fn prepare_run_dir(dir: &Path, force: bool) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(dir)
        && !meta.is_dir()
    {
        return Err(Error::Config(format!(
            "--out {} is a file, not a folder: a run needs a folder of its own",
            dir.display()
        )));
    }
    let used = RUN_FILES.iter().any(|f| dir.join(f).exists());
    if used && !force {
        return Err(Error::Config(format!(
            "run directory {} already holds a run; pass --force to replace it, --resume {} to continue it, or choose another --out",
            dir.display(),
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Probe writability now rather than after the first epoch.
    write_atomic(&dir.join(".elbo-write-test"), b"")?;
    let _ = std::fs::remove_file(dir.join(".elbo-write-test"));
    if used {
        for f in RUN_FILES {
            let p = dir.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
    }
    Ok(())
}

/// Deletes temporary files a killed process left behind mid-write (`.NAME.PID.tmp`, see `write_atomic`).
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
