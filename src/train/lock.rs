//! One trainer per run directory: an exclusive advisory lock on `.elbo.lock`, held while a run trains.
//!
//! Readers (`eval`, `sample`, …) take no lock: checkpoints are replaced by a rename, so they always find one.

use crate::error::{Error, Result};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside a run directory.
pub const LOCK_FILE: &str = ".elbo.lock";

/// Holds a run directory's lock until dropped (or the process ends, when the system releases it).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `dir` (which must exist) without waiting; if another process holds it, says which.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK_FILE);
        // The lock file is elbo's own: anything else under its name (a link, a FIFO) is refused, not opened.
        if let Ok(meta) = std::fs::symlink_metadata(&path)
            && !meta.file_type().is_file()
        {
            return Err(Error::Config(format!(
                "{} is not a regular file: remove it, it is where elbo keeps a run's lock",
                path.display()
            )));
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = (&file).take(256).read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another elbo process".to_string()
                } else {
                    format!("another elbo process ({holder})")
                };
                return Err(Error::Config(format!(
                    "{} is being trained by {who}: wait for it to finish or stop it; readers such as 'elbo eval' and 'elbo sample' can use the run meanwhile",
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // Who holds it, for the message a second trainer prints; the lock itself is what counts.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "pid {}", std::process::id());
        let _ = file.flush();
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
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
