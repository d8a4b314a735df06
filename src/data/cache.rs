//! A decoded image set, cached as one safetensors file keyed by the source and the settings, so a second run
//! on the same folder or archive starts in seconds instead of decoding every image again.
//!
//! The key covers the source's absolute path and, for a folder, every image's relative path, size and
//! modification time (for a file, its size and modification time), plus the decoding settings: any change
//! to the images or the settings makes a new key. It is two halves, `SOURCE-CONTENT`: the path and settings,
//! then the files' state. A new entry replaces those of the same source and settings with another content,
//! so a folder edited between runs does not leave a whole decoded copy behind on every change. Entries live in
//! `$ELBO_CACHE_DIR`, else the user's cache folder (`~/.cache/elbo/prepared`); deleting them is always safe.

use super::bytes::Bytes;
use super::dataset::{Dataset, ItemShape, Kind, Values};
use super::images::{Found, ImageOptions, escape_name};
use crate::error::{Error, Result};
use md5::{Digest, Md5};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bumped whenever decoding or naming changes, so old entries are not reused (5: names not UTF-8 are escaped,
/// never merged; links inside archives are read; 7: split folders are found in any case, `Train/` beside `Test/`
/// no longer two classes; 8: the held-out split's class folders that training lacks are said).
const VERSION: &str = "elbo-image-cache-8";

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

/// Creates the cache folder if it is missing; a file in its place is refused.
pub fn make_dir() -> Result<()> {
    let d = dir();
    if d.exists() && !d.is_dir() {
        return Err(Error::Config(format!(
            "the cache folder {} is not a folder: point ELBO_CACHE_DIR at a folder, or set it to off",
            d.display()
        )));
    }
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))
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
    let mut source = Md5::new();
    source.update(VERSION);
    source.update(abs.as_os_str().as_bytes());
    source.update(serde_json::to_string(opts).unwrap_or_default());
    let mut h = Md5::new();
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
                // Named as the loader names items, so two names that differ only in bytes that are not UTF-8
                // never make one line (a folder renamed so would keep its key).
                let name = escape_name(p.strip_prefix(&abs).unwrap_or(&p).as_os_str().as_bytes());
                match std::fs::metadata(&p) {
                    Ok(m) if m.is_dir() => stack.push(p),
                    Ok(m) => lines.push(format!("{name}={}", stamp(&m))),
                    Err(_) => lines.push(format!("{name}=?")),
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
    Ok(Some(format!("{:x}-{:x}", source.finalize(), h.finalize())))
}

/// The key of `key`'s images split with a held-out `fraction` drawn with `seed`: the split is part of the
/// source half, so entries of different splits of one set live side by side.
pub fn split_key(key: &str, fraction: f64, seed: u64) -> String {
    let (source, content) = key.split_once('-').unwrap_or((key, ""));
    let mut h = Md5::new();
    h.update(format!("{source}:split:{}:{seed}", fraction.to_bits()));
    format!("{:x}-{content}", h.finalize())
}

/// Removes the entries of `key`'s source and settings with another content: earlier states of the same
/// folder, never used again. Only regular files named like entries are touched; a run still reading one keeps
/// its mapping (removing a file does not unmap it).
fn remove_stale(key: &str) {
    let Some((source, current)) = key.split_once('-') else {
        return;
    };
    let Ok(listing) = std::fs::read_dir(dir()) else {
        return;
    };
    for e in listing.flatten() {
        let name = e.file_name();
        let Some(content) = name
            .to_str()
            .and_then(|n| n.strip_prefix(source))
            .and_then(|n| n.strip_prefix('-'))
            .and_then(|n| n.strip_suffix(".safetensors"))
        else {
            continue;
        };
        let entry_like = content.len() == 32 && content.bytes().all(|b| b.is_ascii_hexdigit());
        if !entry_like || content == current || !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let size = e.metadata().map_or(0, |m| m.len());
        if std::fs::remove_file(e.path()).is_ok() {
            let size = if size < 1 << 20 {
                format!("{} KB", size.div_ceil(1 << 10))
            } else {
                format!("{} MB", size.div_ceil(1 << 20))
            };
            crate::notes::say!(
                "elbo: removed the cached images of an earlier state of this set ({size}, {})",
                e.path().display()
            );
        }
    }
}

fn entry(key: &str) -> PathBuf {
    dir().join(format!("{key}.safetensors"))
}

/// md5 over an entry's metadata (all but the md5 itself, in key order), to be continued with its tensors'
/// bytes: a damaged or edited entry, or one copied or linked from another key, must not train a model silently.
fn hash_meta(meta: &HashMap<String, String>) -> Md5 {
    let mut h = Md5::new();
    let mut keys: Vec<&String> = meta.keys().filter(|k| *k != "md5").collect();
    keys.sort();
    for k in keys {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(meta[k].as_bytes());
        h.update([0]);
    }
    h
}

/// The cached images under `key`, if there is a readable entry; a damaged one is ignored (and replaced later).
/// The images stay in the file, memory-mapped: a run pages in what its batches read, so a dataset larger than
/// the memory it should use trains without being read whole.
pub fn load(key: &str) -> Option<(Found, bool)> {
    let (found, notes, held_out) = map_noted(key)?;
    crate::notes::say!(
        "elbo: read the decoded images from the cache ({})",
        entry(key).display()
    );
    // What the run that decoded them said about the set still holds. Control characters are shown as `?`:
    // an entry is a file anyone with access to the cache could have written.
    for n in notes {
        crate::notes::say!("elbo: {}", printable(&n));
    }
    Some((found, held_out))
}

/// `text` with control characters (escapes, line breaks) shown as `?`, so it prints as the one line it claims
/// to be.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// [`load`] without a word: for the entry a run has just stored.
pub fn map(key: &str) -> Option<(Found, bool)> {
    map_noted(key).map(|(found, _, held_out)| (found, held_out))
}

/// The name of a test split elbo held out of a set without one, told apart from a set's own test split.
pub const HELD_OUT: &str = "held-out";

/// The entry under `key`, the notes stored with it, and whether its test split was held out by elbo
/// ([`HELD_OUT`]) rather than the set's own.
fn map_noted(key: &str) -> Option<(Found, Vec<String>, bool)> {
    let path = entry(key);
    // Only a regular file, never a link or a FIFO (opening one would wait for a writer).
    if !std::fs::symlink_metadata(&path).ok()?.is_file() {
        return None;
    }
    let file = std::fs::File::open(&path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    match read_entry(&file, key) {
        Some(found) => Some(found),
        None => {
            // A file in an entry's place that is not a whole, unedited entry of this key.
            crate::notes::say!(
                "elbo: the cached images in {} are damaged; decoding again",
                path.display()
            );
            None
        }
    }
}

/// The entry in `file`, checked against `key` and its checksum, its notes, and whether its test split is one elbo
/// held out.
fn read_entry(file: &std::fs::File, key: &str) -> Option<(Found, Vec<String>, bool)> {
    // SAFETY: entries are only ever replaced by renaming a new file over them (never written in place), so
    // the mapped file does not change while it is read; editing it by hand during a run is not supported.
    let map = Arc::new(unsafe { Mmap::map(file) }.ok()?);
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
    // The bytes are hashed by reading the file, not the map, so checking a large entry does not make it
    // resident in this process.
    let mut h = hash_meta(&meta);
    let mut chunk = vec![0u8; 1 << 20];
    for t in &tensors {
        use std::os::unix::fs::FileExt;
        let start = t.data().as_ptr() as usize - bytes.as_ptr() as usize;
        let mut at = start;
        while at < start + t.data().len() {
            let n = chunk.len().min(start + t.data().len() - at);
            file.read_exact_at(&mut chunk[..n], at as u64).ok()?;
            h.update(&chunk[..n]);
            at += n;
        }
    }
    if meta.get("key")? != key || meta.get("md5")? != &format!("{:x}", h.finalize()) {
        return None;
    }
    let notes: Vec<String> = serde_json::from_str(meta.get("notes")?).ok()?;
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
    let held_out = splits.get(1).is_some_and(|s| s == HELD_OUT);
    let mut it = sets.into_iter();
    let first = it.next()?;
    let found = match it.next() {
        Some(t) => Found::Split(first, t),
        None => Found::One(first),
    };
    Some((found, notes, held_out))
}

/// One split of an entry to store: its name, its items' labels (if labelled) and names, and which rows it
/// takes, in order, from the function that fills rows.
#[derive(Debug, Clone)]
pub struct Part {
    /// "all", "train" or "test".
    pub name: String,
    /// The rows it takes, in order.
    pub rows: Vec<usize>,
    /// One class per row, when the set is labelled.
    pub labels: Option<Vec<u32>>,
    /// One name per row (or none).
    pub names: Vec<String>,
}

/// Stores `found` under `key`, atomically, with the `notes` a run reading it repeats.
pub fn store(key: &str, found: &Found, notes: &[String]) -> Result<()> {
    let sets: Vec<(&str, &Dataset)> = match found {
        Found::One(d) => vec![("all", d)],
        Found::Split(a, b) => vec![("train", a), ("test", b)],
    };
    let mut parts = Vec::new();
    let mut start = 0;
    for (name, d) in &sets {
        if !matches!(d.values, Values::U8(_)) {
            return Err(Error::Config("only byte images are cached".into()));
        }
        parts.push(Part {
            name: name.to_string(),
            rows: (start..start + d.len()).collect(),
            labels: d.labels.clone(),
            names: d.names.clone(),
        });
        start += d.len();
    }
    let shape = sets[0].1.shape;
    store_rows(
        key,
        shape,
        &sets[0].1.classes,
        &parts,
        notes,
        &mut |i, out| {
            let mut i = i;
            for (_, d) in &sets {
                if i < d.len() {
                    if let Values::U8(v) = &d.values {
                        out.copy_from_slice(&v[i * shape.len()..(i + 1) * shape.len()]);
                    }
                    return Ok(());
                }
                i -= d.len();
            }
            unreachable!("rows were numbered from the sets")
        },
    )
}

/// Stores the images that `row` fills (one item of `shape` per call) under `key`, atomically, as `parts`,
/// with the `notes` a run reading them repeats, streaming: only one row is held at a time, so a set larger than
/// memory can be cached. Rows are asked for twice, once for the checksum and once to write them.
pub fn store_rows(
    key: &str,
    shape: ItemShape,
    classes: &[String],
    parts: &[Part],
    notes: &[String],
    row: &mut dyn FnMut(usize, &mut [u8]) -> Result<()>,
) -> Result<()> {
    use safetensors::tensor::{Metadata, TensorInfo};
    use std::io::Write;
    let mut meta = HashMap::new();
    meta.insert(
        "shape".to_string(),
        serde_json::to_string(&shape).unwrap_or_default(),
    );
    meta.insert(
        "classes".to_string(),
        serde_json::to_string(classes).unwrap_or_default(),
    );
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    meta.insert(
        "splits".to_string(),
        serde_json::to_string(&names).unwrap_or_default(),
    );
    for p in parts {
        meta.insert(
            format!("{}.names", p.name),
            serde_json::to_string(&p.names).unwrap_or_default(),
        );
    }
    meta.insert("key".to_string(), key.to_string());
    meta.insert(
        "notes".to_string(),
        serde_json::to_string(notes).unwrap_or_default(),
    );
    let label_bytes: Vec<Option<Vec<u8>>> = parts
        .iter()
        .map(|p| {
            p.labels
                .as_ref()
                .map(|l| l.iter().flat_map(|v| v.to_le_bytes()).collect())
        })
        .collect();
    let mut buf = vec![0u8; shape.len()];
    // The checksum covers the metadata, then each split's values and labels, as `map` reads them.
    let mut h = hash_meta(&meta);
    for (p, lb) in parts.iter().zip(&label_bytes) {
        for &r in &p.rows {
            row(r, &mut buf)?;
            h.update(&buf);
        }
        if let Some(b) = lb {
            h.update(b);
        }
    }
    meta.insert("md5".to_string(), format!("{:x}", h.finalize()));
    // safetensors' own order: wider types first (the labels), then by name.
    enum Data<'a> {
        Labels(&'a [u8]),
        Values(&'a Part),
    }
    let mut tensors: Vec<(String, Dtype, Vec<usize>, usize, Data)> = Vec::new();
    for (p, lb) in parts.iter().zip(&label_bytes) {
        if let Some(b) = lb {
            tensors.push((
                format!("{}.labels", p.name),
                Dtype::U32,
                vec![p.rows.len()],
                b.len(),
                Data::Labels(b),
            ));
        }
        tensors.push((
            format!("{}.values", p.name),
            Dtype::U8,
            vec![p.rows.len(), shape.height, shape.width, shape.channels],
            p.rows.len() * shape.len(),
            Data::Values(p),
        ));
    }
    tensors.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut infos = Vec::new();
    let mut offset = 0;
    for (name, dtype, sh, len, _) in &tensors {
        infos.push((
            name.clone(),
            TensorInfo {
                dtype: *dtype,
                shape: sh.clone(),
                data_offsets: (offset, offset + len),
            },
        ));
        offset += len;
    }
    let header = Metadata::new(Some(meta), infos).map_err(|e| Error::Config(e.to_string()))?;
    let mut header = serde_json::to_vec(&header).map_err(|e| Error::Config(e.to_string()))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    make_dir()?;
    let path = entry(key);
    let written = crate::fsutil::write_atomic_with(&path, &mut |f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        for (.., data) in &tensors {
            match data {
                Data::Labels(b) => w.write_all(b)?,
                Data::Values(p) => {
                    for &r in &p.rows {
                        row(r, &mut buf).map_err(std::io::Error::other)?;
                        w.write_all(&buf)?;
                    }
                }
            }
        }
        w.flush()
    });
    if written.is_ok() {
        remove_stale(key);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_notes_print_as_one_plain_line() {
        let forged = "skipped 1 images\u{1b}[31m\nelbo: forged line\r";
        assert_eq!(
            printable(forged),
            "skipped 1 images?[31m?elbo: forged line?"
        );
        assert_eq!(printable("photos/été.png"), "photos/été.png");
    }

    #[test]
    fn a_folder_renamed_between_names_that_are_not_utf8_gets_a_new_key() {
        use std::ffi::OsStr;
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("set");
        let class = |b: &[u8]| root.join(OsStr::from_bytes(b));
        std::fs::create_dir_all(class(b"bad\xff")).unwrap();
        std::fs::write(class(b"bad\xff").join("x.png"), b"not read by the key").unwrap();
        let opts = ImageOptions::default();
        // Caching switched off for the whole test run: no key to compare.
        let Some(before) = key(&root, &opts).unwrap() else {
            return;
        };
        // Renaming the folder leaves its file's size, times and inode alone: only the name tells them apart.
        std::fs::rename(class(b"bad\xff"), class(b"bad\xfe")).unwrap();
        let after = key(&root, &opts).unwrap().unwrap();
        assert_ne!(before, after);
    }
}
