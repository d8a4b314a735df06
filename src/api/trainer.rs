//! Training from settings or from a saved run, in the steps every front end shares: read the data, resolve the
//! settings against it, check memory and the run directory (so a refusal writes nothing), then train.

use crate::core::dist;
use crate::data::Loaded;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::train::lock::LOCK_FILE;
use crate::train::{self, EpochMetrics, Observer, RunConfig, RunLock, Settings, Splits, Start};
use std::path::{Path, PathBuf};

/// Files training writes into a run directory; `force` removes exactly these.
pub const RUN_FILES: [&str; 10] = [
    train::checkpoint::CHECKPOINT,
    train::checkpoint::PREVIOUS,
    "metrics.csv",
    "config.json",
    "samples.png",
    "reconstructions.png",
    "curves.png",
    "latent.png",
    "manifold.png",
    KEPT_DATA,
];

pub use crate::train::checkpoint::KEPT_DATA;

/// Largest config file read: real ones are a few hundred bytes, and a cap bounds what a hostile one can ask for.
const MAX_CONFIG: u64 = 1 << 20;

/// A training run ready to start: its data read and checked, its directory locked.
pub struct Trainer {
    run_dir: PathBuf,
    start: Start,
    splits: Splits,
    config: RunConfig,
    notes: Vec<String>,
    _lock: Option<RunLock>,
}

impl Trainer {
    /// A new run from `settings` (its data read from `settings.data` or the named dataset), checked against its
    /// data and memory before `settings.out` is created; an existing run there is replaced only with `force`.
    pub fn new(settings: &Settings, force: bool) -> Result<Trainer> {
        // Data and memory are checked before the run directory is touched, so a refusal leaves nothing behind.
        let (dataset, data) = settings.source()?;
        let mut source = train::TrainConfig {
            dataset,
            data,
            ..Default::default()
        };
        source.seed = settings.seed.unwrap_or(source.seed);
        train::check_data_dir(source.data.as_ref(), settings.data_dir.as_deref())?;
        let loaded = train::open_data(&source, settings.data_dir.as_deref())?;
        Self::from_loaded(settings, loaded, force)
    }

    /// A new run from `settings` on arrays held in memory, named as in an `.npz` (`x_train` and `x_test`, or `x`),
    /// read exactly as the `.npz` at `settings.data` holding the same arrays would be: that file is what the run
    /// records (see [`keep_data`](Self::keep_data)) to resume and evaluate from. uint8 arrays are used in place,
    /// so training on a caller's buffer adds no copy of it.
    pub fn from_arrays(
        settings: &Settings,
        arrays: Vec<crate::data::numpy::MemArray>,
        force: bool,
    ) -> Result<Trainer> {
        let (_, data) = settings.source()?;
        let Some(spec) = data else {
            return Err(Error::Config(
                "from_arrays: give data, the .npz file holding the same arrays, which the run records".into(),
            ));
        };
        let seed = settings.seed.unwrap_or(train::TrainConfig::default().seed);
        train::check_data_dir(Some(&spec), settings.data_dir.as_deref())?;
        let loaded = crate::data::source::load_arrays(&spec, seed, arrays)?;
        Self::from_loaded(settings, loaded, force)
    }

    /// A new run from `settings` on data already in memory (`settings.data` and `dataset` are not read).
    pub fn from_loaded(settings: &Settings, loaded: Loaded, force: bool) -> Result<Trainer> {
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
            Some(prepare_run_dir(&dir, force)?)
        } else {
            None
        };
        let mut notes: Vec<String> = summary.lines().map(str::to_string).collect();
        // Draws of the ELBO look like IWAE's K (`--k-train`), and the epoch line only names the ELBO: said.
        if cfg.train.objective == crate::model::Estimator::Elbo && cfg.train.samples > 1 {
            notes.push(format!(
                "elbo: the objective is the ELBO averaged over {} draws per image; --objective iwae trains the importance-weighted bound over them",
                cfg.train.samples
            ));
        }
        notes.push(format!(
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
        Ok(Trainer {
            run_dir: dir,
            start: Start::New(Box::new(cfg.clone())),
            splits,
            config: cfg,
            notes,
            _lock: lock,
        })
    }

    /// Continues the run in `dir` from its newest checkpoint (or its `config.json` when it stopped before the
    /// first), to `epochs` in all when given; its data is read again from where the run recorded it, or from
    /// `data_dir`.
    pub fn resume(dir: &Path, epochs: Option<usize>, data_dir: Option<&Path>) -> Result<Trainer> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::Config(format!(
                "--resume {}: not a folder; give the run directory that 'elbo train' wrote",
                dir.display()
            )));
        }
        // Read first, so a folder that holds no run is refused before anything is written into it.
        let point = resume_point(dir)?;
        train::check_data_dir(
            match &point {
                Resume::Checkpoint(ck) => ck.config.train.data.as_ref(),
                Resume::Config(cfg) => cfg.train.data.as_ref(),
            },
            data_dir,
        )?;
        // Only rank 0 writes (and locks); the other ranks of an MPI run read the same checkpoint.
        let lock = if dist::is_writer() {
            let lock = RunLock::acquire(dir)?;
            remove_stale_temp_files(dir);
            Some(lock)
        } else {
            None
        };
        let (start, cfg, note) = match point {
            Resume::Checkpoint(ck) => {
                let note = format!(
                    "elbo: resuming {} after epoch {}",
                    dir.display(),
                    ck.state.epoch
                );
                let cfg = ck.config.clone();
                (Start::Resume(ck, epochs), cfg, note)
            }
            Resume::Config(mut cfg) => {
                let note = format!(
                    "elbo: {} has no checkpoint yet; starting it from its config.json",
                    dir.display()
                );
                if let Some(e) = epochs {
                    cfg.train.epochs = e;
                }
                (Start::New(cfg.clone()), *cfg, note)
            }
        };
        let data_dir = data_dir
            .map(Path::to_path_buf)
            .or_else(|| recorded_dir(&cfg));
        let splits = train::load_splits(&cfg, data_dir.as_deref())?;
        train::preflight(&cfg, &splits)?;
        Ok(Trainer {
            run_dir: dir.to_path_buf(),
            start,
            splits,
            config: cfg,
            notes: vec![note],
            _lock: lock,
        })
    }

    /// Moves `file`, a data file the front end wrote for this run alone (Python's arrays, saved as an `.npz`), into
    /// the run directory and records it there as the run's data, so that the run resumes and evaluates from its
    /// own folder like any other. Call before [`fit`](Self::fit).
    pub fn keep_data(&mut self, file: &Path) -> Result<()> {
        let dest = self.run_dir.join(KEPT_DATA);
        if dist::is_writer() && std::fs::rename(file, &dest).is_err() {
            // Across file systems: copy under a temporary name, then rename, so a reader never sees half a file.
            let tmp = self
                .run_dir
                .join(format!(".{KEPT_DATA}.{}.tmp", std::process::id()));
            crate::signals::held_during(|| {
                let placed = std::fs::copy(file, &tmp)
                    .map_err(|e| Error::io(&tmp, e))
                    .and_then(|_| std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e)));
                if placed.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                placed
            })?;
            let _ = std::fs::remove_file(file);
        }
        let abs = std::path::absolute(&dest).map_err(|e| Error::io(&dest, e))?;
        let Some(spec) = self.config.train.data.as_mut() else {
            return Err(Error::Config(
                "keep_data: this run trains on a named dataset, not on a file".into(),
            ));
        };
        spec.path = abs.clone();
        if let Start::New(cfg) = &mut self.start
            && let Some(spec) = cfg.train.data.as_mut()
        {
            spec.path = abs;
        }
        Ok(())
    }

    /// The run's resolved configuration.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// The run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The data splits the run trains and evaluates on.
    pub fn splits(&self) -> &Splits {
        &self.splits
    }

    /// What a front end may show before training starts: the model's summary table and where the run goes.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Trains to the configured epochs (or until `observer` stops it), saving a checkpoint and `metrics.csv`
    /// after every epoch; returns the run's whole metric history. The directory stays locked until the trainer
    /// is dropped.
    pub fn fit(&mut self, observer: &mut dyn Observer) -> Result<Vec<EpochMetrics>> {
        let start = std::mem::replace(&mut self.start, Start::New(Box::new(self.config.clone())));
        let history = train::train_on(&self.run_dir, &self.splits, start, observer)?;
        // A second fit continues from the saved checkpoint rather than starting over.
        self.start = Start::Resume(Box::new(train::load_run(&self.run_dir)?), None);
        Ok(history)
    }
}

/// The data folder recorded at training time, when no other is given (`ELBO_DATA_DIR` counts as given) and it
/// still exists.
pub fn recorded_dir(cfg: &RunConfig) -> Option<PathBuf> {
    if std::env::var_os("ELBO_DATA_DIR").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    cfg.train.data_dir.clone().filter(|d| d.is_dir())
}

/// A config file's text: a regular UTF-8 file of at most 1 MiB; `what` names it in errors.
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = crate::fsutil::read_regular(path, MAX_CONFIG, what)?;
    String::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("{}: not UTF-8 text", path.display())))
}

/// Where a resumed run starts.
enum Resume {
    /// Its newest loadable checkpoint.
    Checkpoint(Box<train::Checkpoint>),
    /// Its `config.json`, when it stopped before its first checkpoint was saved.
    Config(Box<RunConfig>),
}

fn resume_point(dir: &Path) -> Result<Resume> {
    let no_checkpoint = [train::checkpoint::CHECKPOINT, train::checkpoint::PREVIOUS]
        .iter()
        .all(|f| std::fs::symlink_metadata(dir.join(f)).is_err());
    let config = dir.join("config.json");
    if no_checkpoint && config.exists() {
        let text = read_text(&config, "a run's config.json")?;
        let cfg = RunConfig::from_json(&text).map_err(|e| {
            Error::Config(format!(
                "{}: {e}; this run has no checkpoint to resume from: start it again with --force",
                config.display()
            ))
        })?;
        let mut cfg = cfg;
        train::checkpoint::own_data(&mut cfg, dir);
        return Ok(Resume::Config(Box::new(cfg)));
    }
    Ok(Resume::Checkpoint(Box::new(train::load_run(dir)?)))
}

/// Refuses to overwrite another run without `--force` or one being trained, checks the folder is writable, and
/// returns its lock, held for the whole training.
fn prepare_run_dir(dir: &Path, force: bool) -> Result<RunLock> {
    check_run_dir(dir, force)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Before anything is removed: --force must not pull a run out from under the process training it.
    let lock = RunLock::acquire(dir)?;
    // Again, now that the folder is ours: files may have appeared in it since the first look (a folder made by
    // another program between that look and the mkdir), and they are not replaced without --force either.
    check_run_dir(dir, force)?;
    prepare_locked(dir, lock)
}

/// Refuses an `--out` that is a file, holds files elbo did not write, or (without `force`) holds a run.
fn check_run_dir(dir: &Path, force: bool) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(dir)
        && !meta.is_dir()
    {
        return Err(Error::Config(format!(
            "--out {} is a file, not a folder: a run needs a folder of its own",
            dir.display()
        )));
    }
    let present: Vec<&str> = RUN_FILES
        .into_iter()
        .filter(|f| std::fs::symlink_metadata(dir.join(f)).is_ok())
        .collect();
    let used = !present.is_empty();
    // A file that only shares a name with a run's (a web project's config.json) is the user's: --force never
    // removes it.
    if used && !holds_run(dir) {
        return Err(Error::Config(format!(
            "--out {} holds {} but no elbo run (no checkpoint): elbo replaces only files it wrote; move them or choose another --out",
            dir.display(),
            present.join(", ")
        )));
    }
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
    Ok(())
}

/// The rest of [`prepare_run_dir`], with the run's lock held.
fn prepare_locked(dir: &Path, lock: RunLock) -> Result<RunLock> {
    // Probe writability now rather than after the first epoch.
    write_atomic(&dir.join(WRITE_PROBE), b"")?;
    let _ = std::fs::remove_file(dir.join(WRITE_PROBE));
    remove_stale_temp_files(dir);
    // `check_run_dir` passed with the lock held: any run file here is a run's, and `--force` was given.
    for f in RUN_FILES {
        let p = dir.join(f);
        if std::fs::symlink_metadata(&p).is_ok() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(lock)
}

/// Whether `dir` holds a run elbo wrote: a checkpoint, or the `config.json` a run writes before its first one
/// (which must read as elbo's whole configuration). Python asks the same, to say so in its own terms.
pub fn holds_run(dir: &Path) -> bool {
    use train::checkpoint::{CHECKPOINT, PREVIOUS};
    if [CHECKPOINT, PREVIOUS]
        .iter()
        .any(|f| std::fs::symlink_metadata(dir.join(f)).is_ok())
    {
        return true;
    }
    let path = dir.join("config.json");
    let Ok(text) = crate::fsutil::read_regular(&path, MAX_CONFIG, "a run's config.json") else {
        return false;
    };
    // The whole of elbo's configuration, not two common key names: `{"model": {…}, "train": {…}}` is how many
    // tools lay out theirs.
    serde_json::from_slice::<RunConfig>(&text).is_ok()
}

/// The empty file written once to learn whether a run directory is writable.
const WRITE_PROBE: &str = ".elbo-write-test";

/// Deletes temporary files a killed trainer left behind mid-write (`.NAME.PID.tmp` of a run file, the lock
/// note or the write probe, see `write_atomic`); only the trainer, which holds the lock, writes those names.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp")
            && RUN_FILES
                .iter()
                .chain(&[LOCK_FILE, WRITE_PROBE])
                .any(|f| name.starts_with(&format!(".{f}.")))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trainer killed while writing any of its files (a run file, the lock note, the write probe) leaves a
    /// temporary file; the next trainer removes exactly those and nothing of the user's.
    #[test]
    fn stale_temp_files_of_every_written_name_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let ours = [
            format!(".{LOCK_FILE}.4242.tmp"),
            format!(".{WRITE_PROBE}.4242.tmp"),
            format!(".{}.4242.tmp", train::checkpoint::CHECKPOINT),
            format!(".{KEPT_DATA}.17.tmp"),
        ];
        let theirs = ["notes.tmp", ".mine.4242.tmp", "metrics.csv.tmp"];
        for n in ours.iter().map(String::as_str).chain(theirs) {
            std::fs::write(tmp.path().join(n), b"x").unwrap();
        }
        remove_stale_temp_files(tmp.path());
        let mut left: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want: Vec<String> = theirs.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(left, want);
    }

    /// A caller's uint8 training and test arrays (Python's, borrowed) are trained on where they are: the
    /// prepared splits read the caller's bytes, not a copy.
    #[test]
    fn arrays_in_memory_are_trained_on_in_place() {
        use crate::data::bytes::Owner;
        use crate::data::numpy::{MemArray, MemValues};
        use crate::data::{Bytes, Values};
        use std::sync::Arc;
        let tmp = tempfile::tempdir().unwrap();
        let record = tmp.path().join("arrays.npz");
        std::fs::write(&record, b"").unwrap();
        let pixels = |n: usize, salt: usize| -> Arc<Vec<u8>> {
            Arc::new((0..n * 64).map(|i| ((i * 7 + salt) % 256) as u8).collect())
        };
        let (train, test) = (pixels(40, 1), pixels(10, 3));
        let array = |name: &str, v: &Arc<Vec<u8>>| {
            let owner: Owner = v.clone();
            MemArray {
                name: name.into(),
                shape: vec![v.len() / 64, 8, 8],
                type_name: "uint8".into(),
                values: MemValues::Uint8(Bytes::shared(owner)),
                labels: None,
            }
        };
        let settings = Settings {
            data: Some(record),
            out: Some(tmp.path().join("run")),
            epochs: Some(1),
            ..Default::default()
        };
        let trainer = Trainer::from_arrays(
            &settings,
            vec![array("x_train", &train), array("x_test", &test)],
            false,
        )
        .unwrap();
        for (split, owner) in [
            (&trainer.splits.train, &train),
            (&trainer.splits.test, &test),
        ] {
            let Values::U8(v) = &split.values else {
                panic!("uint8 images stay bytes")
            };
            assert!(v.is_shared());
            assert_eq!(
                v.as_ptr(),
                owner.as_ptr(),
                "the caller's buffer, not a copy"
            );
        }
        let named_wrong = Trainer::from_arrays(&settings, vec![array("images", &train)], true);
        let e = named_wrong
            .err()
            .expect("an array named images is refused")
            .to_string();
        assert!(e.contains("name them x_train and x_test, or x"), "{e}");
    }
}
