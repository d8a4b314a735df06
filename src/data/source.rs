//! The user's own data, recognised by what the path is: an image folder or archive, a NumPy file, or a table.
//! Each source yields train and test [`Dataset`]s; decoded image sets are cached (see [`super::cache`]).

use super::cache;
use super::dataset::{Dataset, Kind, split_indices};
use super::images::{self, Found, ImageOptions};
use super::numpy::{self, Layout};
use super::table;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A dataset of the user's, as a run records it so every later command reads it the same way.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The folder, archive or file (absolute, as given at training time).
    pub path: PathBuf,
    /// How images are decoded, cropped, resized and coloured.
    #[serde(default)]
    pub images: ImageOptions,
    /// Axis order of four-dimensional arrays (`None`: inferred).
    #[serde(default)]
    pub layout: Option<Layout>,
    /// The table column holding class labels.
    #[serde(default)]
    pub label_column: Option<String>,
    /// Fraction held out as the test split when the source has none.
    pub test_fraction: f64,
    /// Whether the user gave `test_fraction` (not recorded: it is checked when the data is first read), so a
    /// source with a test split of its own refuses it instead of ignoring it.
    #[serde(skip)]
    pub test_fraction_given: bool,
    /// The seed choosing that split: fixed, so runs with different seeds share a test set. Absent in runs made
    /// before it was fixed, which drew the split with the run's seed.
    #[serde(default)]
    pub split_seed: Option<u64>,
}

/// The split seed of new runs.
pub const SPLIT_SEED: u64 = 0;

/// The kinds of file and folder elbo reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A folder of images, an archive of one, or one image file.
    Images,
    /// `.npy` or `.npz`.
    Numpy,
    /// `.csv`, `.tsv` or `.tab` with a header.
    Table,
}

/// What `path` is, from its type and name.
pub fn format_of(path: &Path) -> Result<Format> {
    let meta = std::fs::metadata(path).map_err(|e| match e.raw_os_error() {
        Some(40) => Error::Config(format!("{}: a symbolic link loop", path.display())),
        _ => Error::Config(format!("{}: {e}", path.display())),
    })?;
    if meta.is_dir() {
        return Ok(Format::Images);
    }
    if !meta.is_file() {
        return Err(Error::Config(format!(
            "{}: not a folder or a regular file (a device or FIFO?)",
            path.display()
        )));
    }
    let lower = path.to_string_lossy().to_ascii_lowercase();
    if images::is_archive(path) || images::is_image_file(path) {
        Ok(Format::Images)
    } else if lower.ends_with(".npy") || lower.ends_with(".npz") {
        Ok(Format::Numpy)
    } else if [".csv", ".tsv", ".tab"].iter().any(|e| lower.ends_with(e)) {
        Ok(Format::Table)
    } else {
        Err(Error::Config(format!(
            "{}: not a format elbo reads: give a folder of images, a .zip/.tar/.tar.gz of one, an image, a .npy/.npz or a .csv/.tsv",
            path.display()
        )))
    }
}

/// The data of a run: splits, and what later commands need to read more of it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The training split.
    pub train: Dataset,
    /// The test split.
    pub test: Dataset,
    /// A table's feature columns.
    pub columns: Vec<String>,
    /// Whether the test split is the source's own (`test/`, `x_test`), not one held out of it.
    pub own_split: bool,
}

/// Salt of the seed that chooses a held-out test split, so it does not follow the other draws of a run.
const SPLIT_SALT: u64 = 0x5b11_7000;

/// Loads a source and splits it: its own `train/`+`test/`, or `test_fraction` held out with `seed`.
pub fn load(spec: &DataSpec, seed: u64) -> Result<Loaded> {
    check_settings(spec)?;
    let split_seed = spec.split_seed.unwrap_or(seed) ^ SPLIT_SALT;
    // Decoded images held out by a fixed seed are cached split, so a run maps both splits from the cache
    // instead of copying the training items out of the whole.
    let split_key = match (format_of(&spec.path)?, spec.split_seed) {
        (Format::Images, Some(_)) => cache::key(&spec.path, &spec.images)?
            .map(|k| cache::split_key(&k, spec.test_fraction, split_seed)),
        _ => None,
    };
    // The first run on images decodes them straight into the cache entry, and maps it; later runs map it.
    let cached = match split_key.as_deref() {
        Some(k) => match cache::load(k) {
            Some(hit @ (Found::Split(..), _)) => Some(hit),
            _ => decode_to_cache(spec, &spec.path, k, Some(split_seed))?,
        },
        None => None,
    };
    if let Some((Found::Split(train, test), held_out)) = cached {
        return fraction_used(
            spec,
            Loaded {
                train,
                test,
                columns: Vec::new(),
                own_split: !held_out,
            },
        );
    }
    let (found, columns) = read(spec, &spec.path, split_key.is_none())?;
    split(spec, found, columns, split_seed)
}

/// `loaded`, unless the user gave a test fraction that it did not use: the source has a test split of its own.
fn fraction_used(spec: &DataSpec, loaded: Loaded) -> Result<Loaded> {
    if spec.test_fraction_given && loaded.own_split {
        return Err(Error::Config(format!(
            "--test-fraction {} does not apply to {}, which has a test split of its own (a test/, val/, valid/ or validation/ folder, x_test, or validation data): leave it out",
            spec.test_fraction,
            spec.path.display()
        )));
    }
    Ok(loaded)
}

/// Loads arrays held in memory (Python's, say) as `spec` would load the `.npz` at its path holding the same
/// arrays, with the same split: a caller's uint8 buffers are used in place, not copied.
pub fn load_arrays(spec: &DataSpec, seed: u64, arrays: Vec<numpy::MemArray>) -> Result<Loaded> {
    check_settings(spec).map_err(|e| match e {
        // Named as what the caller gave: arrays, not the file they are recorded in.
        Error::Config(m) => Error::Config(
            m.split(" not apply to ")
                .next()
                .map(|flags| {
                    format!("{flags} not apply to arrays in memory, which are trained on as they are (no image files to resize, crop or convert, no table)")
                })
                .unwrap_or(m),
        ),
        e => e,
    })?;
    if !spec
        .path
        .to_string_lossy()
        .to_ascii_lowercase()
        .ends_with(".npz")
    {
        return Err(Error::Config(format!(
            "{}: arrays in memory are recorded as an .npz; give data a path ending in .npz",
            spec.path.display()
        )));
    }
    let split_seed = spec.split_seed.unwrap_or(seed) ^ SPLIT_SALT;
    let found = numpy::load_memory(arrays, spec.layout, &spec.path)?;
    split(spec, found, Vec::new(), split_seed)
}

/// Training and test splits of what a source held: its own, or `spec.test_fraction` held out with `seed`.
fn split(spec: &DataSpec, found: Found, columns: Vec<String>, seed: u64) -> Result<Loaded> {
    let own_split = matches!(found, Found::Split(..));
    let (train, test) = match found {
        Found::Split(a, b) => (a, b),
        Found::One(ds) => {
            let (train, test) = held_out(spec, ds.len(), seed)?;
            (ds.select(&train), ds.select(&test))
        }
    };
    fraction_used(
        spec,
        Loaded {
            train,
            test,
            columns,
            own_split,
        },
    )
}

/// The items of a set of `n` without a test split of its own that train, and that are held out with `seed`.
fn held_out(spec: &DataSpec, n: usize, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    let f = spec.test_fraction;
    if !(f > 0.0 && f < 1.0) {
        return Err(Error::Config(format!(
            "--test-fraction {f} must be between 0 and 1 (exclusive): {} has no test split of its own",
            spec.path.display()
        )));
    }
    let (train, test) = split_indices(n, f, seed);
    if train.is_empty() || test.is_empty() {
        return Err(Error::Config(format!(
            "{}: {n} item{} with --test-fraction {f} leave {} for training and {} for testing; both need at least one",
            spec.path.display(),
            if n == 1 { "" } else { "s" },
            train.len(),
            test.len()
        )));
    }
    Ok((train, test))
}

/// Decodes the images at `path` into the cache entry `key` without holding them in memory: they are spooled
/// to a temporary file, then written out (split with `split_seed` when given and the set has no split of its
/// own), and the entry is mapped. `None` when the cache cannot take them: the caller decodes into memory.
fn decode_to_cache(
    spec: &DataSpec,
    path: &Path,
    key: &str,
    split_seed: Option<u64>,
) -> Result<Option<(Found, bool)>> {
    let dir = cache::dir();
    let declined = |e: &dyn std::fmt::Display| {
        crate::notes::say!(
            "elbo: could not cache the decoded images ({e}); decoding them into memory"
        );
        Ok(None)
    };
    if let Err(e) = cache::make_dir() {
        return declined(&e);
    }
    let mut spooled = match images::spool(path, &spec.images, &dir) {
        Ok(s) => s,
        Err(e @ Error::Io { .. }) if matches!(&e, Error::Io { path, .. } if *path == dir) => {
            return declined(&e);
        }
        Err(e) => return Err(e),
    };
    let mut parts = Vec::new();
    let mut start = 0;
    for (k, (_, labels, names)) in spooled.splits.iter().enumerate() {
        parts.push(cache::Part {
            name: if spooled.splits.len() == 1 {
                "all"
            } else if k == 0 {
                "train"
            } else {
                "test"
            }
            .to_string(),
            rows: (start..start + names.len()).collect(),
            labels: labels.clone(),
            names: names.clone(),
        });
        start += names.len();
    }
    if let (Some(seed), [all]) = (split_seed, parts.as_slice()) {
        let (train, test) = held_out(spec, all.rows.len(), seed)?;
        let part = |name: &str, idx: &[usize]| cache::Part {
            name: name.to_string(),
            rows: idx.to_vec(),
            labels: all
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i]).collect()),
            names: idx.iter().map(|&i| all.names[i].clone()).collect(),
        };
        parts = vec![part("train", &train), part(cache::HELD_OUT, &test)];
    }
    let (shape, classes) = (spooled.shape, spooled.classes.clone());
    let notes = std::mem::take(&mut spooled.notes);
    if let Err(e) = cache::store_rows(key, shape, &classes, &parts, &notes, &mut |i, out| {
        spooled.row(i, out)
    }) {
        return declined(&e);
    }
    drop(spooled);
    Ok(cache::map(key))
}

/// Refuses settings that do not apply to the source, instead of recording them as if they had been used.
fn check_settings(spec: &DataSpec) -> Result<()> {
    let format = format_of(&spec.path)?;
    let i = &spec.images;
    let mut wrong = Vec::new();
    if format != Format::Images {
        let given = [
            (i.size.is_some(), "--image-size"),
            (i.crop.is_some(), "--crop"),
            (i.channels.is_some(), "--channels"),
            (i.skip_bad, "--skip-bad"),
        ];
        wrong.extend(given.iter().filter(|g| g.0).map(|g| g.1));
    }
    if format != Format::Numpy && spec.layout.is_some() {
        wrong.push("--layout");
    }
    if format != Format::Table && spec.label_column.is_some() {
        wrong.push("--label-column");
    }
    if wrong.is_empty() {
        return Ok(());
    }
    // Where labels come from instead, said only to a user who gave a label column.
    let labels = wrong.contains(&"--label-column");
    let what = match (format, labels) {
        (Format::Images, true) => "images (labels come from class folders)",
        (Format::Numpy, true) => "a NumPy file (labels come from an .npz's y arrays)",
        (Format::Images, false) => "images",
        (Format::Numpy, false) => "a NumPy file",
        (Format::Table, _) => "a table",
    };
    let verb = if wrong.len() == 1 { "does" } else { "do" };
    Err(Error::Config(format!(
        "{} {verb} not apply to {}, which is {what}",
        wrong.join(", "),
        spec.path.display()
    )))
}

/// Reads every item of `path` with a run's settings as items of the run's `kind`, in the source's order,
/// unsplit (for `encode --input`, `score`); `columns` are a table run's feature columns. An array is read as
/// that kind whatever its values, so values outside the run's range are scored, not refused.
pub fn load_items(
    spec: &DataSpec,
    path: &Path,
    columns: Option<&[String]>,
    kind: Kind,
) -> Result<Dataset> {
    let found = match format_of(path)? {
        Format::Images => return images::load_flat(path, &spec.images),
        Format::Numpy => numpy::load_as(path, spec.layout, kind)?,
        Format::Table => {
            let mut ds = read_table(spec, path, columns)?.dataset;
            // A table's rows are the numbers they hold, for a run on vectors as for one on features.
            if kind == Kind::Vector {
                ds.kind = kind;
            }
            Found::One(ds)
        }
    };
    Ok(match found {
        Found::One(ds) => ds,
        Found::Split(mut a, mut b) => {
            // An `.npz`'s x_train and x_test, one after the other: each row's name says which array it is of.
            if a.names.is_empty() && b.names.is_empty() {
                a.names = (0..a.len()).map(|i| format!("x_train[{i}]")).collect();
                b.names = (0..b.len()).map(|i| format!("x_test[{i}]")).collect();
            }
            a.append(b)?;
            a
        }
    })
}

/// Reads a table; with a run's `columns` (scoring), its label column only when the table has it.
fn read_table(spec: &DataSpec, path: &Path, columns: Option<&[String]>) -> Result<table::Table> {
    let label = if columns.is_some() {
        spec.label_column
            .as_deref()
            .filter(|c| table_has_column(path, c))
    } else {
        spec.label_column.as_deref()
    };
    table::load(path, label, columns)
}

/// Reads `path` whole; decoded images are cached unless `store_one` is false (the caller caches them split).
fn read(spec: &DataSpec, path: &Path, store_one: bool) -> Result<(Found, Vec<String>)> {
    match format_of(path)? {
        Format::Images => {
            let key = cache::key(path, &spec.images)?;
            if let Some((found, _)) = key.as_deref().and_then(cache::load) {
                return Ok((found, Vec::new()));
            }
            if let Some(k) = key.as_deref().filter(|_| store_one)
                && let Some((found, _)) = decode_to_cache(spec, path, k, None)?
            {
                return Ok((found, Vec::new()));
            }
            Ok((images::load(path, &spec.images)?, Vec::new()))
        }
        Format::Numpy => Ok((numpy::load(path, spec.layout)?, Vec::new())),
        Format::Table => {
            let t = read_table(spec, path, None)?;
            Ok((Found::One(t.dataset), t.columns))
        }
    }
}

fn table_has_column(path: &Path, col: &str) -> bool {
    table::load_header(path).is_ok_and(|h| h.iter().any(|c| c == col))
}

/// Whether a dataset's values need standardising before a model sees them.
pub fn needs_standardizing(ds: &Dataset) -> bool {
    ds.kind == Kind::Table
}
