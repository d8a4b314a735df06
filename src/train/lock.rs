//! One trainer per run directory: an exclusive advisory lock on the directory itself, held while a run trains.
//!
//! Locking the folder, not a file in it, means deleting or replacing files cannot split the lock. A note beside
//! it (`.elbo.lock`, holding the PID) tells a second trainer who holds the lock; it is only informative. Readers
//! (`eval`, `sample`, …) take no lock: checkpoints are replaced by a rename, so they always find one.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The name of the note saying which process trains a run.
pub const LOCK_FILE: &str = ".elbo.lock";

/// Holds a run directory's lock until dropped (or the process ends, when the system releases it).
#[derive(Debug)]
pub struct RunLock {
    _dir: std::fs::File,
    note: PathBuf,
}

impl RunLock {
    /// Takes the lock of `dir` (which must exist) without waiting; if another process holds it, says which.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let note = dir.join(LOCK_FILE);
        // The note is elbo's own: anything else under its name (a link, a FIFO, a folder) is refused.
        if let Ok(meta) = std::fs::symlink_metadata(&note)
            && !meta.file_type().is_file()
        {
            return Err(Error::Config(format!(
                "{} is not a regular file: remove it, it is where elbo notes which process trains a run",
                note.display()
            )));
        }
        let handle = std::fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        match handle.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = crate::fsutil::read_regular(&note, 256, "a lock note")
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
                let who = match holder {
                    Some(h) => format!("another elbo process ({h})"),
                    None => "another elbo process".to_string(),
                };
                return Err(Error::Config(format!(
                    "{} is being trained by {who}: wait for it to finish or stop it; readers such as 'elbo eval' and 'elbo sample' can use the run meanwhile",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(dir, e)),
        }
        // Written by rename, so a link planted under its name is replaced, never written through.
        crate::fsutil::write_atomic(&note, format!("pid {}\n", std::process::id()).as_bytes())?;
        Ok(RunLock { _dir: handle, note })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // A note left behind by a killed trainer is harmless (the lock went with it), but a tidy exit removes it.
        let _ = std::fs::remove_file(&self.note);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_names_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(tmp.path()).unwrap();
        let err = RunLock::acquire(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())) && err.contains("being trained"),
            "{err}"
        );
        drop(first);
        RunLock::acquire(tmp.path()).unwrap();
    }

    #[test]
    fn deleting_the_note_does_not_split_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let _first = RunLock::acquire(tmp.path()).unwrap();
        std::fs::remove_file(tmp.path().join(LOCK_FILE)).unwrap();
        let err = RunLock::acquire(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("being trained"), "{err}");
    }

    #[test]
    fn a_link_in_place_of_the_lock_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("precious");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, tmp.path().join(LOCK_FILE)).unwrap();
        let err = RunLock::acquire(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
}
