//! The explorer of a run that may still be training: which checkpoint it shows, whether the run has saved
//! another since, and the swap to that one when the user asks. Requests hold the explorer they started with,
//! so a reload never changes the weights under a request in progress.

use super::Explorer;
use crate::error::{Error, Result};
use crate::train::checkpoint::{self, CHECKPOINT, Checkpoint, Stamp};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// An explorer and the checkpoint its weights came from.
pub struct Shown {
    /// What requests are answered with.
    pub explorer: Explorer,
    /// The checkpoint's stamp.
    pub stamp: Stamp,
}

/// A file's size, modification and change times and inode: when all are unchanged, so is the file (as far as a
/// poll needs to know; checkpoints are replaced by a rename, which changes the inode). The change time, which no
/// user can set, catches a file edited in place and its modification time put back (`touch -r`, `cp -p`).
type FileId = (u64, std::time::SystemTime, (i64, i64), u64);

fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.len(),
        m.modified().unwrap_or(std::time::UNIX_EPOCH),
        (m.ctime(), m.ctime_nsec()),
        m.ino(),
    ))
}

/// The stamp of a checkpoint file that has changed, once the whole file matches its checksum: a header says
/// nothing of the bytes after it, nor whether it was itself damaged (an epoch or checksum digit changed), so a
/// changed file is read whole once, and its damage said before the page offers it.
fn verified(path: &Path) -> std::result::Result<Stamp, String> {
    checkpoint::load_file(path)
        .map(|(_, stamp)| stamp)
        .map_err(|e| e.to_string())
}

/// What the run's newest checkpoint file was when last looked at, so a poll that finds it unchanged reads
/// nothing.
#[derive(Default)]
struct Seen {
    file: Option<FileId>,
    /// Its stamp, or why it could not be read.
    stamp: Option<std::result::Result<Stamp, String>>,
    /// The file a reload failed on, and why.
    failed: Option<(Option<FileId>, String)>,
}

/// A run's explorer, reloadable.
pub struct Live {
    run_dir: PathBuf,
    shown: RwLock<Arc<Shown>>,
    seen: Mutex<Seen>,
    reloading: Mutex<()>,
}

/// A reload that did not happen: the old weights are still shown.
#[derive(Debug)]
pub struct NotReloaded {
    /// Whether it was refused because another is under way (the client may try again), not because the
    /// checkpoint cannot be shown.
    pub busy: bool,
    /// Why, for the page.
    pub why: String,
}

impl Live {
    /// Watches `run_dir`, whose checkpoint `stamp` `explorer` shows.
    pub fn new(run_dir: PathBuf, explorer: Explorer, stamp: Stamp) -> Live {
        Live {
            run_dir,
            shown: RwLock::new(Arc::new(Shown { explorer, stamp })),
            seen: Mutex::new(Seen::default()),
            reloading: Mutex::new(()),
        }
    }

    /// The explorer requests are answered with now.
    pub fn current(&self) -> Arc<Shown> {
        self.shown.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The shown explorer's info, with the epoch of its weights, an identifier of them (`weights`), and what
    /// the run has saved since: `saved` (the epoch of a different checkpoint on disk, else null) and
    /// `problem` (why that checkpoint cannot be read or loaded, else null).
    pub fn info(&self) -> Value {
        let shown = self.current();
        let mut info = shown.explorer.info();
        let (saved, problem) = self.saved(&shown.stamp);
        info["weights"] = json!(shown.stamp.checksum);
        info["saved"] = saved.map_or(Value::Null, |e| json!({ "epoch": e }));
        info["problem"] = problem.map_or(Value::Null, Value::from);
        info
    }

    /// The epoch of the run's newest checkpoint when it is not `shown`, and why it cannot be used if so.
    fn saved(&self, shown: &Stamp) -> (Option<usize>, Option<String>) {
        let path = self.run_dir.join(CHECKPOINT);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let file = file_id(&path);
        if seen.stamp.is_none() || file != seen.file {
            seen.file = file;
            seen.stamp = Some(match file {
                Some(_) => verified(&path),
                None => Err(format!("{} is missing", path.display())),
            });
        }
        let failed = seen
            .failed
            .as_ref()
            .filter(|(f, _)| *f == file)
            .map(|(_, why)| why.clone());
        match seen.stamp.as_ref().expect("set above") {
            Ok(s) if s == shown => (None, None),
            Ok(s) => (Some(s.epoch), failed),
            Err(why) => (
                None,
                Some(format!("{why}; still showing epoch {}", shown.epoch)),
            ),
        }
    }

    /// Loads the run's newest checkpoint and, once its explorer is built, shows it. A checkpoint that cannot
    /// be read, is damaged or belongs to another run leaves the shown weights in place and says why.
    pub fn reload(&self) -> std::result::Result<Value, NotReloaded> {
        let _one = match self.reloading.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(NotReloaded {
                    busy: true,
                    why: "a reload is already under way; try again in a moment".into(),
                });
            }
        };
        let shown = self.current();
        let path = self.run_dir.join(CHECKPOINT);
        let file = file_id(&path);
        let failed = |e: Error| {
            let why = format!("{e}; still showing epoch {}", shown.explorer.epoch());
            self.seen.lock().unwrap_or_else(|p| p.into_inner()).failed = Some((file, why.clone()));
            NotReloaded { busy: false, why }
        };
        // Nothing newer (as its header says): nothing to read.
        if checkpoint::stamp(&path).is_ok_and(|s| s == shown.stamp) {
            return Ok(self.info());
        }
        let (ck, stamp) = checkpoint::load_file(&path).map_err(&failed)?;
        if stamp != shown.stamp {
            self.swap(&shown, ck, stamp.clone()).map_err(&failed)?;
            crate::notes::say!(
                "elbo: reloaded {} at epoch {}",
                self.run_dir.display(),
                stamp.epoch
            );
        }
        Ok(self.info())
    }

    fn swap(&self, shown: &Shown, ck: Checkpoint, stamp: Stamp) -> Result<()> {
        let explorer = shown.explorer.reloaded(ck)?;
        *self.shown.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Shown { explorer, stamp });
        Ok(())
    }
}
