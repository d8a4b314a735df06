//! Writing files so that a crash never leaves a half-written one: temp file, fsync, rename.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a mix. Ctrl-C or SIGTERM
/// during the write acts once the file is in place (see [`crate::signals::held_during`]), so no temporary file
/// is left behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::signals::held_during(|| {
        let tmp = write_temp(path, bytes)?;
        rename_into_place(&tmp, path)
    })
}

/// [`write_atomic`] of what `write` puts into the file, so a large file can be streamed.
pub fn write_atomic_with(
    path: &Path,
    write: &mut dyn FnMut(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    crate::signals::held_during(|| {
        let tmp = write_temp_with(path, write)?;
        rename_into_place(&tmp, path)
    })
}

/// Outputs [`check_output`] found free without `--force`: they are created, never replaced, even when a file
/// appears there while the command runs (a second command writing the same `--out`, a file saved there).
static FRESH: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn is_fresh(path: &Path) -> bool {
    FRESH
        .lock()
        .map(|fresh| fresh.iter().any(|p| p == path))
        .unwrap_or(false)
}

fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    let dir = parent_dir(path)?;
    let fresh = is_fresh(path);
    let result = (|| {
        crate::fault::point("rename the temporary file over the target")?;
        if fresh {
            place_new(tmp, path)?;
        } else {
            std::fs::rename(tmp, path)?;
        }
        sync_dir(&dir);
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        if !crate::fault::killed() {
            let _ = std::fs::remove_file(tmp);
        }
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::Config(format!(
                "{} appeared while this command ran (another program or command wrote it) and is kept; pass --force to replace it, or choose another --out",
                path.display()
            ))
        } else {
            Error::io(path, e)
        }
    })
}

/// Moves `tmp` to `path` only if nothing is there: a hard link fails on an existing name, atomically; where the
/// file system has no hard links, a check just before the rename narrows the window instead.
fn place_new(tmp: &Path, path: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(tmp, path) {
        Ok(()) => std::fs::remove_file(tmp),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) if std::fs::symlink_metadata(path).is_ok() => {
            Err(std::io::ErrorKind::AlreadyExists.into())
        }
        Err(_) => std::fs::rename(tmp, path),
    }
}

/// Writes `bytes` to a fresh temporary file beside `path` (`.NAME.PID.tmp`) and syncs it to disk; the caller
/// renames it into place. On failure the temporary file is removed.
pub fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    write_temp_with(path, &mut |f| {
        let half = bytes.len() / 2;
        f.write_all(&bytes[..half])?;
        crate::fault::point("write the second half")?;
        f.write_all(&bytes[half..])
    })
}

/// [`write_temp`] of what `write` puts into the file.
fn write_temp_with(
    path: &Path,
    write: &mut dyn FnMut(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<PathBuf> {
    let dir = parent_dir(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        crate::fault::point("create the temporary file")?;
        // A leftover of the same name (an earlier process with this PID) is removed, never written through:
        // `create_new` refuses links, so the data cannot land anywhere but in a new file here.
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        write(&mut f)?;
        crate::fault::point("sync the temporary file")?;
        f.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            if !crate::fault::killed() {
                let _ = std::fs::remove_file(&tmp);
            }
            Err(Error::io(path, e))
        }
    }
}

/// Makes renames and links in `dir` durable; best effort, as some file systems cannot sync a folder.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The folder `path` lies in, which must exist.
fn parent_dir(path: &Path) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "cannot write {}: folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    Ok(dir)
}

/// Refuses to replace an existing output file unless `force` is set.
pub fn check_output(path: &Path, force: bool) -> Result<()> {
    // Only regular files are ever replaced: a device, FIFO, folder or link is refused even with --force, so an
    // output path can never destroy something elbo did not create.
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.file_type().is_file()
    {
        return Err(Error::Config(format!(
            "{} exists and is not a regular file (a folder, link, device or FIFO); elbo replaces only regular files: choose another --out",
            path.display()
        )));
    }
    let exists = std::fs::symlink_metadata(path).is_ok();
    if exists && !force {
        return Err(Error::Config(format!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        )));
    }
    if !exists
        && !force
        && let Ok(mut fresh) = FRESH.lock()
    {
        fresh.push(path.to_path_buf());
    }
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() && !p.is_dir() => Err(Error::Config(format!(
            "cannot write {}: folder {} does not exist",
            path.display(),
            p.display()
        ))),
        _ => Ok(()),
    }
}

/// Opens `path` for reading after checking that it is a regular file (not a folder, FIFO or device, whose
/// reads could block or never end) of at most `max` bytes; `what` names it in errors.
pub fn open_regular(path: &Path, max: u64, what: &str) -> Result<std::fs::File> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Config(format!(
            "{}: not a regular file; {what} must be a file",
            path.display()
        )));
    }
    if meta.len() > max {
        return Err(Error::Config(format!(
            "{}: {} bytes is larger than the {} bytes accepted for {what}",
            path.display(),
            meta.len(),
            max
        )));
    }
    std::fs::File::open(path).map_err(|e| Error::io(path, e))
}

/// Reads a whole regular file of at most `max` bytes (see [`open_regular`]); a file that grows past `max`
/// while being read is refused too.
pub fn read_regular(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = open_regular(path, max, what)?;
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::Config(format!(
            "{}: larger than the {max} bytes accepted for {what}",
            path.display()
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that appears at an output between the check and the write is kept, and said; with `--force` it is
    /// replaced, and an output free at both moments is written.
    #[test]
    fn an_output_checked_free_is_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("scores.csv");
        check_output(&out, false).unwrap();
        std::fs::write(&out, "precious").unwrap();
        let e = write_atomic(&out, b"rows").unwrap_err().to_string();
        assert!(e.contains("appeared while this command ran"), "{e}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious");
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
        let forced = tmp.path().join("forced.csv");
        check_output(&forced, true).unwrap();
        std::fs::write(&forced, "old").unwrap();
        write_atomic(&forced, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&forced).unwrap(), "new");
        let free = tmp.path().join("free.csv");
        check_output(&free, false).unwrap();
        write_atomic(&free, b"rows").unwrap();
        assert_eq!(std::fs::read_to_string(&free).unwrap(), "rows");
    }
}
