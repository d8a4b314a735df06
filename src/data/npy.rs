//! The arrays of NumPy `.npy` and `.npz` files, read as they are stored (the `npyz` crate parses each array; an
//! `.npz` is a zip of them): bounded, buffered, into memory reserved up front, with progress lines for large
//! arrays. What the arrays mean (items, labels, dSprites' factors) is for [`super::numpy`] and [`super::dsprites`].

use super::bytes::Bytes;
use crate::error::{Error, Result};
use npyz::{DType, Deserialize, NpyFile, Order, TypeChar};
use std::io::{BufReader, Read};
use std::path::Path;

/// Largest array file or archive entry read.
pub(super) const MAX_ARRAY: u64 = 16 << 30;

/// Bytes read from the file at a time: one `read` per value made a 14 400-value array 14 404 system calls.
const READ_BUFFER: usize = 1 << 20;

/// Arrays of at least this many bytes say how far reading them has got, every tenth.
const REPORT_BYTES: u64 = 256 << 20;

/// An array of a file, named in errors as `path: what` (`what` is the array's name in an `.npz`).
#[derive(Clone, Copy)]
pub(super) struct Src<'a> {
    pub(super) path: &'a Path,
    pub(super) what: &'a str,
}

impl Src<'_> {
    /// The types to suggest for this array, `otherwise` but for dSprites' classes: indices, refused as floats.
    fn suggest(&self, otherwise: &'static str) -> &'static str {
        if self.what.trim_end_matches(".npy") == "latents_classes" {
            "integers (e.g. classes.astype('int64'))"
        } else {
            otherwise
        }
    }

    /// The error `path: what: reason` (or `what: reason` for an array held in memory).
    pub(super) fn bad(&self, reason: impl std::fmt::Display) -> Error {
        let path = self.path.display().to_string();
        // An array held in memory is named once (`x: …`), not as the file and the array of an `.npz`.
        if path == self.what || self.what.strip_prefix("labels of ") == Some(path.as_str()) {
            return Error::Config(format!("{}: {reason}", self.what));
        }
        Error::Config(format!("{path}: {}: {reason}", self.what))
    }
}

/// What an array's dtype says its values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dtype {
    /// uint8: 8-bit levels.
    Uint8,
    /// bool: 0 and 1.
    Bool,
    /// Any other integer type.
    Int,
    /// float16, float32 or float64.
    Float,
    /// Strings (`U` or `S`): labels only.
    Text,
}

/// An array's values as stored: uint8 and bool as bytes, other numbers as floats, strings as text.
pub(super) enum Raw {
    U8(Bytes),
    F32(Vec<f32>),
    Text(Vec<String>),
}

/// An array read from a file.
pub(super) struct Array {
    pub(super) shape: Vec<usize>,
    pub(super) dtype: Dtype,
    /// NumPy's name of the dtype, for messages ("float64").
    pub(super) type_name: String,
    pub(super) raw: Raw,
}

/// NumPy's name of a dtype.
fn numpy_name(ts: &npyz::TypeStr) -> String {
    let bits = ts.size_field() * 8;
    match ts.type_char() {
        TypeChar::Bool => "bool".into(),
        TypeChar::Int => format!("int{bits}"),
        TypeChar::Uint => format!("uint{bits}"),
        TypeChar::Float => format!("float{bits}"),
        TypeChar::Complex => format!("complex{bits}"),
        _ => ts.to_string(),
    }
}

/// Says how far a large array's reading has got, every tenth of it.
struct Progress<'a> {
    src: Src<'a>,
    total: usize,
    bytes: u64,
    next: usize,
}

impl<'a> Progress<'a> {
    fn new(src: Src<'a>, total: usize, bytes: u64) -> Self {
        let p = Progress {
            src,
            total,
            bytes,
            next: 1,
        };
        if p.reports() {
            crate::notes::say!(
                "elbo: {}: reading {} ({} values, {})",
                src.path.display(),
                src.what,
                total,
                human_bytes(bytes)
            );
        }
        p
    }

    fn reports(&self) -> bool {
        self.bytes >= REPORT_BYTES
    }

    /// Notes that `done` values are read; called every few thousand values.
    fn at(&mut self, done: usize) {
        if !self.reports() || self.total == 0 {
            return;
        }
        let tenth = done * 10 / self.total;
        if tenth >= self.next && tenth < 10 {
            crate::notes::say!(
                "elbo: {}: read {}0 % of {}",
                self.src.path.display(),
                tenth,
                self.src.what
            );
            self.next = tenth + 1;
        }
    }
}

/// Values read between progress checks.
const PROGRESS_STEP: usize = 1 << 16;

/// `bytes` as "3.2 GiB" or "512 MiB".
fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// An empty vector with room for `count` values, or an error naming the array and the size when the memory
/// cannot be had (instead of the allocator's abort).
pub(super) fn reserve<U>(count: usize, src: Src) -> Result<Vec<U>> {
    let mut v = Vec::new();
    v.try_reserve_exact(count).map_err(|_| {
        src.bad(format!(
            "could not allocate {} for its {count} values: free memory, or use a smaller array",
            human_bytes((count as u64).saturating_mul(std::mem::size_of::<U>() as u64))
        ))
    })?;
    Ok(v)
}

/// Reads the `count` values of `npy` as `T`, converted by `conv`.
fn collect<T: Deserialize, U>(
    npy: NpyFile<impl Read>,
    count: usize,
    src: Src,
    mut conv: impl FnMut(T) -> Result<U>,
) -> Result<Vec<U>> {
    let bytes = count as u64 * npy.dtype().num_bytes().unwrap_or(0) as u64;
    let mut out = reserve(count, src)?;
    let mut progress = Progress::new(src, count, bytes);
    let values = npy
        .data::<T>()
        .map_err(|e| src.bad(format!("values that cannot be read ({e})")))?;
    for v in values {
        out.push(conv(v.map_err(|e| {
            src.bad(format!("truncated or unreadable data ({e})"))
        })?)?);
        if out.len().is_multiple_of(PROGRESS_STEP) {
            progress.at(out.len());
        }
    }
    Ok(out)
}

/// float32's exact integers: beyond ±2²⁴ not every integer has a float32 of its own.
pub(super) const F32_EXACT: i128 = 1 << 24;

/// Integers as float32, refusing (by position) any beyond ±2²⁴: two neighbouring values there (two timestamps,
/// two class ids) would silently become one.
fn exact<T: Copy + Into<i128> + std::fmt::Display>(
    src: Src,
    shape: &[usize],
    fortran: bool,
) -> impl FnMut(T) -> Result<f32> {
    let mut at = 0usize;
    move |v| {
        at += 1;
        let w: i128 = v.into();
        if w.abs() > F32_EXACT {
            // dSprites' classes are indices, which floats would not be: say their range instead.
            if src.what.trim_end_matches(".npy") == "latents_classes" {
                return Err(src.bad(format!(
                    "the class {v} at [{}] is beyond {}: classes are indices into each factor's values, integers from 0 to {}",
                    shown_index(at - 1, shape, fortran),
                    super::factors::MAX_CLASS,
                    super::factors::MAX_CLASS
                )));
            }
            return Err(src.bad(format!(
                "the integer {v} at [{}] is beyond ±{F32_EXACT}, where float32 (which elbo computes in) cannot hold every integer: rescale the values, or save them as floats if rounding them is fine",
                shown_index(at - 1, shape, fortran)
            )));
        }
        Ok(w as f32)
    }
}

/// float64 values as float32, refusing (by NumPy index) a finite one beyond float32's range, which would
/// become infinite.
fn narrow(src: Src, shape: &[usize], fortran: bool) -> impl FnMut(f64) -> Result<f32> {
    let mut at = 0usize;
    move |v| {
        at += 1;
        if v.is_finite() && v.abs() > f64::from(f32::MAX) {
            return Err(src.bad(format!(
                "{v} at [{}] is beyond float32's range (±3.4e38), which elbo computes in: rescale the values",
                shown_index(at - 1, shape, fortran)
            )));
        }
        Ok(v as f32)
    }
}

/// [`index_of`] as a message writes it, `1, 0` for `a[1, 0]`.
fn shown_index(flat: usize, shape: &[usize], fortran: bool) -> String {
    index_of(flat, shape, fortran)
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The NumPy index (`a[i, j, k]`) of the value at position `flat` in a file's order: the last axis varies fastest
/// in C order, the first in Fortran order, so a position is named the same whichever order the file was saved in.
fn index_of(mut flat: usize, shape: &[usize], fortran: bool) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    let axes: Vec<usize> = if fortran {
        (0..shape.len()).collect()
    } else {
        (0..shape.len()).rev().collect()
    };
    for k in axes {
        let d = shape[k].max(1);
        index[k] = flat % d;
        flat /= d;
    }
    index
}

/// Reads one `.npy` stream of at most `limit` bytes.
pub(super) fn read_array(r: impl Read, limit: u64, src: Src) -> Result<Array> {
    let mut r = r.take(limit);
    // The header's length (NumPy format 1: a u16 at byte 8; 2 and 3: a u32), so that the values the header
    // claims are checked against the bytes after it, not the file's.
    let mut prefix = [0u8; 12];
    let mut got = 0;
    while got < prefix.len() {
        match r.read(&mut prefix[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(src.bad(format!("cannot be read ({e})"))),
        }
    }
    let header = match prefix[6] {
        1 if got >= 10 => 10 + u64::from(u16::from_le_bytes([prefix[8], prefix[9]])),
        2 | 3 if got >= 12 => {
            12 + u64::from(u32::from_le_bytes([
                prefix[8], prefix[9], prefix[10], prefix[11],
            ]))
        }
        _ => 0,
    };
    let data_bytes = limit.saturating_sub(header);
    let r = std::io::Cursor::new(prefix[..got].to_vec()).chain(r);
    let npy = NpyFile::new(BufReader::with_capacity(READ_BUFFER, r))
        .map_err(|e| src.bad(format!("not a NumPy array ({e})")))?;
    let DType::Plain(ts) = npy.dtype() else {
        return Err(
            src.bad("structured (record) arrays are not supported; save a plain numeric array")
        );
    };
    if ts.uses_pickled_array() || npy.header().uses_pickled_array() {
        return Err(src.bad(format!(
            "an object (pickled) array; elbo never unpickles: save {}",
            src.suggest("a numeric array (e.g. x.astype('float32'))")
        )));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let count = shape
        .iter()
        .try_fold(1u128, |a, &d| a.checked_mul(d as u128))
        .unwrap_or(u128::MAX);
    let size = ts.num_bytes().unwrap_or(0) as u128;
    if count.saturating_mul(size) > data_bytes as u128 {
        return Err(src.bad(format!(
            "its header claims {count} values of {size} bytes, more than the file holds"
        )));
    }
    // NumPy writes exactly the values the header describes; more bytes mean the header is not this data's.
    if size > 0 && count.saturating_mul(size) < data_bytes as u128 {
        return Err(src.bad(format!(
            "{} bytes follow the {count} values of {size} bytes its header describes: the header does not describe this data (save the array again with numpy.save)",
            data_bytes as u128 - count * size
        )));
    }
    let type_name = numpy_name(&ts);
    let (tc, size) = (ts.type_char(), ts.size_field());
    let dtype = match (tc, size) {
        (TypeChar::Uint, 1) => Dtype::Uint8,
        (TypeChar::Bool, 1) => Dtype::Bool,
        (TypeChar::Int, 1 | 2 | 4 | 8) | (TypeChar::Uint, 2 | 4 | 8) => Dtype::Int,
        (TypeChar::Float, 2 | 4 | 8) => Dtype::Float,
        (TypeChar::UnicodeStr | TypeChar::ByteStr, _) => Dtype::Text,
        _ => {
            return Err(src.bad(format!(
                "values of type {type_name} are not supported: use {}",
                src.suggest("bool, integers, float16, float32 or float64")
            )));
        }
    };
    // Held once as read and, for a Fortran-order or N×C×H×W array, once more while it is reordered.
    let width = if matches!(dtype, Dtype::Uint8 | Dtype::Bool) {
        1
    } else {
        4
    };
    let available = crate::resources::available_memory() as u128;
    if count.saturating_mul(2 * width) > available {
        return Err(src.bad(format!(
            "{count} values need {}, more than the {} of memory available",
            human_bytes(count.saturating_mul(2 * width).min(u64::MAX as u128) as u64),
            human_bytes(available as u64)
        )));
    }
    let count = count as usize;
    let fortran = npy.order() == Order::Fortran;
    // Integers wider than a byte become float32, each checked to be exact and named by its index if not.
    macro_rules! ints {
        ($t:ty) => {
            Raw::F32(collect(npy, count, src, exact::<$t>(src, &shape, fortran))?)
        };
    }
    let raw = match (tc, size) {
        (TypeChar::Uint, 1) => Raw::U8(collect(npy, count, src, |v: u8| Ok(v))?.into()),
        (TypeChar::Bool, _) => Raw::U8(collect(npy, count, src, |v: bool| Ok(u8::from(v)))?.into()),
        (TypeChar::Int, 1) => ints!(i8),
        (TypeChar::Int, 2) => ints!(i16),
        (TypeChar::Int, 4) => ints!(i32),
        (TypeChar::Int, _) => ints!(i64),
        (TypeChar::Uint, 2) => ints!(u16),
        (TypeChar::Uint, 4) => ints!(u32),
        (TypeChar::Uint, _) => ints!(u64),
        (TypeChar::Float, 2) => {
            Raw::F32(collect(npy, count, src, |v: half::f16| Ok(f32::from(v)))?)
        }
        (TypeChar::Float, 4) => Raw::F32(collect(npy, count, src, |v: f32| Ok(v))?),
        // Floats are measurements: rounding float64 to float32 is what every framework does to them.
        (TypeChar::Float, _) => Raw::F32(collect(npy, count, src, narrow(src, &shape, fortran))?),
        _ => Raw::Text(collect(npy, count, src, |v: String| Ok(v))?),
    };
    let raw = if fortran {
        match raw {
            Raw::U8(v) => Raw::U8(fortran_to_c(v.into_vec(), &shape, src)?.into()),
            Raw::F32(v) => Raw::F32(fortran_to_c(v, &shape, src)?),
            Raw::Text(v) => Raw::Text(fortran_to_c(v, &shape, src)?),
        }
    } else {
        raw
    };
    Ok(Array {
        shape,
        dtype,
        type_name,
        raw,
    })
}

/// Reorders values stored in Fortran (column-major) order into C (row-major) order.
fn fortran_to_c<T: Clone>(v: Vec<T>, shape: &[usize], src: Src) -> Result<Vec<T>> {
    if shape.iter().filter(|&&d| d > 1).count() < 2 {
        return Ok(v);
    }
    // Fortran strides: the first axis varies fastest.
    let strides: Vec<usize> = shape
        .iter()
        .scan(1, |acc, &d| {
            let s = *acc;
            *acc *= d;
            Some(s)
        })
        .collect();
    let mut out = reserve(v.len(), src)?;
    let mut index = vec![0usize; shape.len()];
    let mut offset = 0usize;
    for _ in 0..v.len() {
        out.push(v[offset].clone());
        // The next C-order index: the last axis varies fastest.
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            offset += strides[k];
            if index[k] < shape[k] {
                break;
            }
            offset -= strides[k] * shape[k];
            index[k] = 0;
        }
    }
    Ok(out)
}

/// The arrays of an `.npz` archive by name (without `.npy`), reading only those in `wanted`.
pub(super) fn read_npz(path: &Path, wanted: &[&str]) -> Result<Vec<(String, Array)>> {
    let file = crate::fsutil::open_regular(path, MAX_ARRAY, "an .npz file")?;
    let file = BufReader::with_capacity(READ_BUFFER, file);
    let not_npz = |e: &dyn std::fmt::Display| {
        Error::Config(format!("{}: not an .npz archive: {e}", path.display()))
    };
    let mut zip = zip::ZipArchive::new(file).map_err(|e| not_npz(&e))?;
    let mut out = Vec::new();
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| not_npz(&e))?;
    // Two members by one name (which the zip format allows and numpy.savez never writes) would leave which one
    // is meant to chance.
    if zip.has_duplicate_names() {
        return Err(not_npz(
            &"a member's name appears twice, so which array is meant is unclear",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for name in names {
        let key = name.trim_end_matches(".npy");
        if !wanted.contains(&key) {
            continue;
        }
        if !seen.insert(key.to_string()) {
            return Err(Error::Config(format!(
                "{}: holds two arrays named {key} ({key} and {key}.npy): keep one",
                path.display()
            )));
        }
        let src = Src { path, what: key };
        let f = zip.by_name(&name).map_err(|e| src.bad(e))?;
        let limit = f.size().min(MAX_ARRAY);
        out.push((key.to_string(), read_array(f, limit, src)?));
    }
    Ok(out)
}
