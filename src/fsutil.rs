//! Writing files so that a crash never leaves a half-written one: temp file, fsync, rename.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
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
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
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
