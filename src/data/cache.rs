//! A decoded image set, cached as one safetensors file keyed by the source and the settings, so a second run
//! on the same folder or archive starts in seconds instead of decoding every image again.
//!
//! The key covers the source's absolute path and, for a folder, every image's relative path, size and
//! modification time (for a file, its size and modification time), plus the decoding settings: any change
//! to the images or the settings makes a new key. Entries live in `$ELBO_CACHE_DIR`, else the user's cache
//! folder (`~/.cache/elbo/prepared`); deleting them is always safe.

use super::bytes::Bytes;
use super::dataset::{Dataset, ItemShape, Kind, Values};
use super::images::{Found, ImageOptions};
use crate::error::{Error, Result};
use md5::{Digest, Md5};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bumped whenever decoding changes, so old entries are not reused.
const VERSION: &str = "elbo-image-cache-3";

/// The folder holding cache entries.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ELBO_CACHE_DIR").filter(|d| !d.is_empty() && d != "off") {
        return PathBuf::from(d);
    }
    dirs::cache_dir()
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("elbo")
        .join("prepared")
}

fn stamp(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    // The change time and inode catch a file replaced by one of the same size and modification time (cp -p,
    // touch -r): no user can set them.
    format!(
        "{}:{mtime}:{}.{}:{}",
        meta.len(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino()
    )
}

/// The cache key of `path` read with `opts`; `None` when caching is switched off (`ELBO_CACHE_DIR=off`).
pub fn key(path: &Path, opts: &ImageOptions) -> Result<Option<String>> {
    if std::env::var_os("ELBO_CACHE_DIR").is_some_and(|v| v == "off") {
        return Ok(None);
    }
    let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let mut h = Md5::new();
    h.update(VERSION);
    h.update(abs.to_string_lossy().as_bytes());
    h.update(serde_json::to_string(opts).unwrap_or_default());
    let meta = std::fs::metadata(&abs).map_err(|e| Error::io(&abs, e))?;
    if meta.is_dir() {
        let mut stack = vec![abs.clone()];
        let mut lines = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(d) = stack.pop() {
            let Ok(c) = std::fs::canonicalize(&d) else {
                continue;
            };
            // Loops are reported by the loader; the key only has to terminate.
            if !seen.insert(c) {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                match std::fs::metadata(&p) {
                    Ok(m) if m.is_dir() => stack.push(p),
                    Ok(m) => lines.push(format!(
                        "{}={}",
                        p.strip_prefix(&abs).unwrap_or(&p).display(),
                        stamp(&m)
                    )),
                    Err(_) => lines.push(format!("{}=?", p.display())),
                }
            }
        }
        lines.sort();
        for l in lines {
            h.update(l.as_bytes());
            h.update(b"\n");
        }
    } else {
        h.update(stamp(&meta));
    }
    Ok(Some(format!("{:x}", h.finalize())))
}

/// The key of `key`'s images split with a held-out `fraction` drawn with `seed`.
pub fn split_key(key: &str, fraction: f64, seed: u64) -> String {
    let mut h = Md5::new();
    h.update(format!("{key}:split:{}:{seed}", fraction.to_bits()));
    format!("{:x}", h.finalize())
}

fn entry(key: &str) -> PathBuf {
    dir().join(format!("{key}.safetensors"))
}

/// md5 over an entry's metadata (all but the md5 itself, in key order) and its tensors' bytes: a damaged or
/// edited entry, or one copied or linked from another key, must not train a model silently.
fn checksum<'a>(meta: &HashMap<String, String>, tensors: impl Iterator<Item = &'a [u8]>) -> String {
    let mut h = Md5::new();
    let mut keys: Vec<&String> = meta.keys().filter(|k| *k != "md5").collect();
    keys.sort();
    for k in keys {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(meta[k].as_bytes());
        h.update([0]);
    }
    for t in tensors {
        h.update(t);
    }
    format!("{:x}", h.finalize())
}

/// The cached images under `key`, if there is a readable entry; a damaged one is ignored (and replaced later).
/// The images stay in the file, memory-mapped: a run pages in what its batches read, so a dataset larger than
/// the memory it should use trains without being read whole.
pub fn load(key: &str) -> Option<Found> {
    let found = map(key)?;
    eprintln!(
        "elbo: read the decoded images from the cache ({})",
        entry(key).display()
    );
    Some(found)
}

/// [`load`] without a word: for the entry a run has just stored.
pub fn map(key: &str) -> Option<Found> {
    let path = entry(key);
    // Only a regular file, never a link or a FIFO (opening one would wait for a writer).
    if !std::fs::symlink_metadata(&path).ok()?.is_file() {
        return None;
    }
    let file = std::fs::File::open(&path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    // SAFETY: entries are only ever replaced by renaming a new file over them (never written in place), so
    // the mapped file does not change while it is read; editing it by hand during a run is not supported.
    let map = Arc::new(unsafe { Mmap::map(&file) }.ok()?);
    let bytes: &[u8] = &map;
    let st = SafeTensors::deserialize(bytes).ok()?;
    let (_, meta) = SafeTensors::read_metadata(bytes).ok()?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let classes: Vec<String> = serde_json::from_str(meta.get("classes")?).ok()?;
    let shape: ItemShape = serde_json::from_str(meta.get("shape")?).ok()?;
    let splits: Vec<String> = serde_json::from_str(meta.get("splits")?).ok()?;
    let tensors: Vec<TensorView<'_>> = splits
        .iter()
        .flat_map(|s| ["values", "labels"].map(|t| format!("{s}.{t}")))
        .filter_map(|name| st.tensor(&name).ok())
        .collect();
    if meta.get("key")? != key
        || meta.get("md5")? != &checksum(&meta, tensors.iter().map(|t| t.data()))
    {
        eprintln!(
            "elbo: the cached images in {} are damaged; decoding again",
            path.display()
        );
        return None;
    }
    let mut sets = Vec::new();
    for s in &splits {
        let v = st.tensor(&format!("{s}.values")).ok()?;
        if v.dtype() != Dtype::U8 {
            return None;
        }
        let labels = match st.tensor(&format!("{s}.labels")) {
            Ok(l) if l.dtype() == Dtype::U32 => Some(
                l.data()
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect::<Vec<u32>>(),
            ),
            Ok(_) => return None,
            Err(_) => None,
        };
        let names: Vec<String> = serde_json::from_str(meta.get(&format!("{s}.names"))?).ok()?;
        let start = v.data().as_ptr() as usize - bytes.as_ptr() as usize;
        let view = Bytes::mapped(map.clone(), start..start + v.data().len());
        // Hashing read every page; they are the file's, not the run's, so give them back.
        view.release();
        let mut ds = Dataset::new(shape, Kind::Image, Values::U8(view), labels).ok()?;
        if ds
            .labels
            .as_ref()
            .is_some_and(|l| l.iter().any(|&c| c as usize >= classes.len()))
        {
            return None;
        }
        ds.classes = classes.clone();
        ds.names = if names.len() == ds.len() {
            names
        } else {
            Vec::new()
        };
        sets.push(ds);
    }
    let mut it = sets.into_iter();
    let first = it.next()?;
    Some(match it.next() {
        Some(t) => Found::Split(first, t),
        None => Found::One(first),
    })
}

/// Stores `found` under `key`, atomically.
pub fn store(key: &str, found: &Found) -> Result<()> {
    let sets: Vec<(&str, &Dataset)> = match found {
        Found::One(d) => vec![("all", d)],
        Found::Split(a, b) => vec![("train", a), ("test", b)],
    };
    let mut meta = HashMap::new();
    meta.insert(
        "shape".to_string(),
        serde_json::to_string(&sets[0].1.shape).unwrap_or_default(),
    );
    meta.insert(
        "classes".to_string(),
        serde_json::to_string(&sets[0].1.classes).unwrap_or_default(),
    );
    let names: Vec<&str> = sets.iter().map(|s| s.0).collect();
    meta.insert(
        "splits".to_string(),
        serde_json::to_string(&names).unwrap_or_default(),
    );
    let mut label_bytes = Vec::new();
    for (s, d) in &sets {
        meta.insert(
            format!("{s}.names"),
            serde_json::to_string(&d.names).unwrap_or_default(),
        );
        label_bytes.push(
            d.labels
                .as_ref()
                .map(|l| l.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()),
        );
    }
    meta.insert("key".to_string(), key.to_string());
    let mut tensors: Vec<&[u8]> = Vec::new();
    for ((_, d), lb) in sets.iter().zip(&label_bytes) {
        if let Values::U8(v) = &d.values {
            tensors.push(v);
        }
        if let Some(b) = lb {
            tensors.push(b);
        }
    }
    let sum = checksum(&meta, tensors.into_iter());
    meta.insert("md5".to_string(), sum);
    let mut views = Vec::new();
    for ((s, d), lb) in sets.iter().zip(&label_bytes) {
        let Values::U8(v) = &d.values else {
            return Err(Error::Config("only byte images are cached".into()));
        };
        let sh = d.shape;
        views.push((
            format!("{s}.values"),
            TensorView::new(
                Dtype::U8,
                vec![d.len(), sh.height, sh.width, sh.channels],
                v,
            )
            .map_err(|e| Error::Config(e.to_string()))?,
        ));
        if let Some(b) = lb {
            views.push((
                format!("{s}.labels"),
                TensorView::new(Dtype::U32, vec![d.len()], b)
                    .map_err(|e| Error::Config(e.to_string()))?,
            ));
        }
    }
    let bytes =
        safetensors::serialize(views, Some(meta)).map_err(|e| Error::Config(e.to_string()))?;
    let d = dir();
    if d.exists() && !d.is_dir() {
        return Err(Error::Config(format!(
            "the cache folder {} is not a folder: point ELBO_CACHE_DIR at a folder, or set it to off",
            d.display()
        )));
    }
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    crate::fsutil::write_atomic(&entry(key), &bytes)
}
