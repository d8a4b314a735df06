//! NumPy `.npy` and `.npz` files as datasets (the `npyz` crate reads each array; an `.npz` is a zip of them).
//!
//! - An `.npz` holds `x_train`, `y_train`, `x_test`, `y_test` (Keras's `mnist.npz`), or `x` and optionally `y`.
//! - A `.npy` holds one array of items, unlabelled.
//! - Item shapes: N×H×W (grey), N×H×W×C or N×C×H×W with C of 1 or 3 (NHWC is assumed when the last axis has 1
//!   or 3 entries, else NCHW; [`Layout`] overrides), or N×D feature vectors.
//! - Values: uint8 (0–255), other integers within 0–255, or floats. Pickled (object) arrays are refused,
//!   never unpickled; so are Fortran-order arrays and non-finite floats.

use super::dataset::{Dataset, ItemShape, Kind, Values};
use crate::error::{Error, Result};
use npyz::{DType, NpyFile, Order, TypeChar};
use std::io::Read;
use std::path::Path;

/// Largest array file or archive entry read.
const MAX_ARRAY: u64 = 16 << 30;

/// How a four-dimensional array's axes are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Items, height, width, channels (Keras, NumPy images).
    Nhwc,
    /// Items, channels, height, width (PyTorch).
    Nchw,
}

impl std::str::FromStr for Layout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "nhwc" => Ok(Layout::Nhwc),
            "nchw" => Ok(Layout::Nchw),
            _ => Err(Error::Config(format!(
                "unknown --layout '{s}': use nhwc or nchw"
            ))),
        }
    }
}

/// An array read from a file: its shape and values, as bytes when it held integers in 0–255.
struct Array {
    shape: Vec<usize>,
    values: Values,
}

fn bad(path: &Path, what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: {what}: {reason}", path.display()))
}

/// Reads one `.npy` stream of at most `limit` bytes; `what` names it in errors (the array's name in an `.npz`).
fn read_array(r: impl Read, limit: u64, path: &Path, what: &str) -> Result<Array> {
    let npy = NpyFile::new(r.take(limit))
        .map_err(|e| bad(path, what, format!("not a NumPy array ({e})")))?;
    let DType::Plain(ts) = npy.dtype() else {
        return Err(bad(
            path,
            what,
            "structured (record) arrays are not supported; save a plain numeric array",
        ));
    };
    if ts.uses_pickled_array() || npy.header().uses_pickled_array() {
        return Err(bad(
            path,
            what,
            "an object (pickled) array; elbo never unpickles: save a numeric array (e.g. x.astype('float32'))",
        ));
    }
    if npy.order() == Order::Fortran {
        return Err(bad(
            path,
            what,
            "a Fortran-order array; save it in C order (np.ascontiguousarray(x))",
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let count = shape
        .iter()
        .try_fold(1u128, |a, &d| Some(a * d as u128))
        .unwrap_or(u128::MAX);
    let size = ts.num_bytes().unwrap_or(0) as u128;
    if count * size > limit as u128 {
        return Err(bad(
            path,
            what,
            format!("its header claims {count} values of {size} bytes, more than the file holds"),
        ));
    }
    // Every array is held as 4-byte floats at most once more while it is converted.
    let available = crate::resources::available_memory() as u128;
    if count * 8 > available {
        return Err(bad(
            path,
            what,
            format!(
                "{count} values need {:.1} GiB, more than the {:.1} GiB of memory available",
                (count * 8) as f64 / (1u64 << 30) as f64,
                available as f64 / (1u64 << 30) as f64
            ),
        ));
    }
    let count = count as usize;
    let short = |e: std::io::Error| bad(path, what, format!("truncated or unreadable data ({e})"));
    let (tc, size) = (ts.type_char(), ts.size_field());
    let values = match (tc, size) {
        (TypeChar::Uint, 1) => Values::U8(npy.into_vec::<u8>().map_err(short)?.into()),
        (TypeChar::Float, 4) => Values::F32(npy.into_vec::<f32>().map_err(short)?),
        (TypeChar::Float, 8) => Values::F32(
            npy.into_vec::<f64>()
                .map_err(short)?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        ),
        (TypeChar::Int | TypeChar::Uint, 2 | 4 | 8) | (TypeChar::Int, 1) => {
            let wide: Vec<i128> = match (tc, size) {
                (TypeChar::Int, 1) => npy
                    .into_vec::<i8>()
                    .map_err(short)?
                    .into_iter()
                    .map(i128::from)
                    .collect(),
                (TypeChar::Int, 2) => npy
                    .into_vec::<i16>()
                    .map_err(short)?
                    .into_iter()
                    .map(i128::from)
                    .collect(),
                (TypeChar::Int, 4) => npy
                    .into_vec::<i32>()
                    .map_err(short)?
                    .into_iter()
                    .map(i128::from)
                    .collect(),
                (TypeChar::Int, _) => npy
                    .into_vec::<i64>()
                    .map_err(short)?
                    .into_iter()
                    .map(i128::from)
                    .collect(),
                (_, 2) => npy
                    .into_vec::<u16>()
                    .map_err(short)?
                    .into_iter()
                    .map(i128::from)
                    .collect(),
                (_, 4) => npy
                    .into_vec::<u32>()
                    .map_err(short)?
                    .into_iter()
                    .map(i128::from)
                    .collect(),
                _ => npy
                    .into_vec::<u64>()
                    .map_err(short)?
                    .into_iter()
                    .map(i128::from)
                    .collect(),
            };
            // Integers hold labels or 0–255 pixels; `items` turns pixel ranges back into bytes.
            Values::F32(wide.into_iter().map(|v| v as f32).collect())
        }
        _ => {
            return Err(bad(
                path,
                what,
                format!(
                    "values of type {ts} are not supported: use uint8, integers, float32 or float64"
                ),
            ));
        }
    };
    if values.len() != count {
        return Err(bad(
            path,
            what,
            format!("{} values for shape {shape:?}", values.len()),
        ));
    }
    Ok(Array { shape, values })
}

/// The arrays of an `.npz` archive by name (without `.npy`), reading only those in `wanted`.
fn read_npz(path: &Path, wanted: &[&str]) -> Result<Vec<(String, Array)>> {
    let file = crate::fsutil::open_regular(path, MAX_ARRAY, "an .npz file")?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(path, "not an .npz archive", e))?;
    let mut out = Vec::new();
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(path, "not an .npz archive", e))?;
    for name in names {
        let key = name.trim_end_matches(".npy");
        if !wanted.contains(&key) {
            continue;
        }
        let f = zip.by_name(&name).map_err(|e| bad(path, &name, e))?;
        let limit = f.size().min(MAX_ARRAY);
        out.push((key.to_string(), read_array(f, limit, path, key)?));
    }
    Ok(out)
}

/// The items of an array: their shape and kind, checked, with values as the model sees them.
fn items(
    a: Array,
    layout: Option<Layout>,
    path: &Path,
    what: &str,
) -> Result<(ItemShape, Kind, Values)> {
    let (n, rest) = a
        .shape
        .split_first()
        .map(|(n, r)| (*n, r.to_vec()))
        .unwrap_or((0, Vec::new()));
    let values = a.values;
    if let Values::F32(v) = &values
        && let Some(i) = v.iter().position(|x| !x.is_finite())
    {
        let d: usize = rest.iter().product::<usize>().max(1);
        return Err(bad(
            path,
            what,
            format!(
                "item {} holds a non-finite value ({}) at position {}",
                i / d,
                v[i],
                i % d
            ),
        ));
    }
    let (shape, nchw) = match (rest.as_slice(), layout) {
        ([d], _) => (ItemShape::grey(1, *d), false),
        ([h, w], _) => (ItemShape::grey(*h, *w), false),
        ([h, w, c], Some(Layout::Nhwc)) => (
            ItemShape {
                height: *h,
                width: *w,
                channels: *c,
            },
            false,
        ),
        ([c, h, w], Some(Layout::Nchw)) => (
            ItemShape {
                height: *h,
                width: *w,
                channels: *c,
            },
            true,
        ),
        ([h, w, c], None) if *c == 1 || *c == 3 => (
            ItemShape {
                height: *h,
                width: *w,
                channels: *c,
            },
            false,
        ),
        ([c, h, w], None) if *c == 1 || *c == 3 => (
            ItemShape {
                height: *h,
                width: *w,
                channels: *c,
            },
            true,
        ),
        _ => {
            return Err(bad(
                path,
                what,
                format!(
                    "shape {:?} is not N×D, N×H×W, N×H×W×C or N×C×H×W with 1 or 3 channels (--layout nhwc|nchw chooses)",
                    a.shape
                ),
            ));
        }
    };
    if n == 0 || shape.is_empty() {
        return Err(bad(
            path,
            what,
            format!("shape {:?} holds no items", a.shape),
        ));
    }
    if shape.channels != 1 && shape.channels != 3 {
        return Err(bad(
            path,
            what,
            format!("{} channels: images must have 1 or 3", shape.channels),
        ));
    }
    let vectors = rest.len() == 1;
    let values = if nchw {
        to_nhwc(values, n, shape)
    } else {
        values
    };
    // Intensities in [0, 1] or bytes; other ranges are features to standardise.
    let (kind, values) = match values {
        Values::U8(v) => (
            if vectors { Kind::Vector } else { Kind::Image },
            Values::U8(v),
        ),
        Values::F32(v) => {
            let (lo, hi) = v
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            let integral = v.iter().all(|x| x.fract() == 0.0);
            if lo >= 0.0 && hi <= 1.0 {
                (
                    if vectors { Kind::Vector } else { Kind::Image },
                    Values::F32(v),
                )
            } else if integral && lo >= 0.0 && hi <= 255.0 {
                (
                    if vectors { Kind::Vector } else { Kind::Image },
                    Values::U8(v.into_iter().map(|x| x as u8).collect()),
                )
            } else if vectors {
                (Kind::Table, Values::F32(v))
            } else {
                return Err(bad(
                    path,
                    what,
                    format!(
                        "image values range from {lo} to {hi}; images must hold intensities in [0, 1] or integers in 0–255"
                    ),
                ));
            }
        }
    };
    Ok((shape, kind, values))
}

fn to_nhwc(values: Values, n: usize, s: ItemShape) -> Values {
    let (c, hw) = (s.channels, s.height * s.width);
    let perm = |i: usize| {
        // Output index i = (item, pixel, channel) from input (item, channel, pixel).
        let (item, r) = (i / (hw * c), i % (hw * c));
        item * hw * c + (r % c) * hw + r / c
    };
    match values {
        Values::U8(v) => Values::U8((0..n * hw * c).map(|i| v[perm(i)]).collect()),
        Values::F32(v) => Values::F32((0..n * hw * c).map(|i| v[perm(i)]).collect()),
    }
}

fn labels(a: Array, n: usize, path: &Path, what: &str) -> Result<Vec<u32>> {
    let count = a.values.len();
    if count != n || a.shape.len() > 2 || (a.shape.len() == 2 && a.shape[1] != 1) {
        return Err(bad(
            path,
            what,
            format!(
                "labels of shape {:?} do not match {n} items (expected ({n},))",
                a.shape
            ),
        ));
    }
    let raw: Vec<f32> = match a.values {
        Values::U8(v) => v.iter().copied().map(f32::from).collect(),
        Values::F32(v) => v,
    };
    raw.iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() == 0.0 && (0.0..65536.0).contains(&v) {
                Ok(v as u32)
            } else {
                Err(bad(
                    path,
                    what,
                    format!("label {i} is {v}: labels must be integers from 0 to 65535"),
                ))
            }
        })
        .collect()
}

fn dataset(
    x: Array,
    y: Option<Array>,
    layout: Option<Layout>,
    path: &Path,
    xname: &str,
    yname: &str,
) -> Result<Dataset> {
    let n = x.shape.first().copied().unwrap_or(0);
    let (shape, kind, values) = items(x, layout, path, xname)?;
    let labels = y.map(|y| labels(y, n, path, yname)).transpose()?;
    Dataset::new(shape, kind, values, labels)
}

/// Numbers the label values that occur, in increasing order, as classes 0, 1, …, named by their values: labels
/// such as {0, 60000} make two classes, not 60001.
fn densify(sets: &mut [&mut Dataset]) {
    let values: std::collections::BTreeSet<u32> = sets
        .iter()
        .filter_map(|d| d.labels.as_ref())
        .flatten()
        .copied()
        .collect();
    let values: Vec<u32> = values.into_iter().collect();
    for d in sets.iter_mut() {
        if let Some(l) = d.labels.as_mut() {
            for v in l.iter_mut() {
                *v = values.binary_search(v).expect("a value of the set") as u32;
            }
            d.classes = values.iter().map(u32::to_string).collect();
        }
    }
}

/// What a NumPy file held: one set of items to split, or given train and test splits.
pub use super::images::Found;

/// Loads a `.npy` or `.npz` file.
pub fn load(path: &Path, layout: Option<Layout>) -> Result<Found> {
    let lower = path.to_string_lossy().to_ascii_lowercase();
    if lower.ends_with(".npy") {
        let f = crate::fsutil::open_regular(path, MAX_ARRAY, "a .npy file")?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let x = read_array(f, len, path, "array")?;
        return Ok(Found::One(dataset(x, None, layout, path, "array", "")?));
    }
    let mut arrays = read_npz(path, &["x_train", "y_train", "x_test", "y_test", "x", "y"])?;
    let mut take = |k: &str| {
        arrays
            .iter()
            .position(|(n, _)| n == k)
            .map(|i| arrays.remove(i).1)
    };
    if let (Some(xtr), Some(xte)) = (take("x_train"), take("x_test")) {
        let (ytr, yte) = (take("y_train"), take("y_test"));
        if ytr.is_some() != yte.is_some() {
            return Err(bad(
                path,
                "labels",
                "give both y_train and y_test, or neither",
            ));
        }
        let mut train = dataset(xtr, ytr, layout, path, "x_train", "y_train")?;
        let mut test = dataset(xte, yte, layout, path, "x_test", "y_test")?;
        densify(&mut [&mut train, &mut test]);
        if train.shape != test.shape || train.kind != test.kind {
            return Err(bad(
                path,
                "x_test",
                format!(
                    "items of shape {} do not match x_train's {}",
                    test.shape, train.shape
                ),
            ));
        }
        return Ok(Found::Split(train, test));
    }
    if let Some(x) = take("x") {
        let mut ds = dataset(x, take("y"), layout, path, "x", "y")?;
        densify(&mut [&mut ds]);
        return Ok(Found::One(ds));
    }
    Err(Error::Config(format!(
        "{}: no arrays named x_train and x_test, or x: save them as np.savez(path, x_train=…, y_train=…, x_test=…, y_test=…) or np.savez(path, x=…, y=…)",
        path.display()
    )))
}
