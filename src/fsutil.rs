//! Writing files so that a crash never leaves a half-written one: temp file, fsync, rename.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(path, bytes)?;
    rename_into_place(&tmp, path)
}

/// [`write_atomic`] of what `write` puts into the file, so a large file can be streamed.
pub fn write_atomic_with(
    path: &Path,
    write: &mut dyn FnMut(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = write_temp_with(path, write)?;
    rename_into_place(&tmp, path)
}

fn rename_into_place(tmp: &Path, path: &Path) -> Result<()> {
    let dir = parent_dir(path)?;
    let result = (|| {
        crate::fault::point("rename the temporary file over the target")?;
        std::fs::rename(tmp, path)?;
        sync_dir(&dir);
        Ok(())
    })();
    result.map_err(|e| {
        if !crate::fault::killed() {
            let _ = std::fs::remove_file(tmp);
        }
        Error::io(path, e)
    })
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
    if path.exists() && !force {
        return Err(Error::Config(format!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        )));
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
