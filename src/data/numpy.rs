//! NumPy `.npy` and `.npz` files as datasets (the `npyz` crate parses each array; an `.npz` is a zip of them).
//!
//! - An `.npz` holds `x_train`, `y_train`, `x_test`, `y_test` (Keras's `mnist.npz`), or `x` and optionally `y`.
//! - A `.npy` holds one array of items, unlabelled.
//! - Item shapes: N×H×W (grey), N×H×W×C or N×C×H×W with C of 1 or 3 (NHWC is assumed when the last axis has 1
//!   or 3 entries, else NCHW; [`Layout`] overrides), or N×D feature vectors. C and Fortran order, either byte
//!   order.
//! - Values (bool, integers, float16/32/64) are read as the dtype and the values say (`Reading`), and a
//!   line says which; a run's later commands read new arrays as the run's kind instead ([`load_as`]).
//! - Labels are integers or strings, numbered in sorted order as classes named by their values.
//!
//! Pickled (object) arrays are refused, never unpickled; so are non-finite values. Data is read through a
//! large buffer, into memory reserved up front (a failure is an error naming the file, not an abort), with
//! progress lines for large arrays.

use super::bytes::Bytes;
use super::dataset::{Dataset, ItemShape, Kind, Values};
use super::npy::{Array, Dtype, F32_EXACT, MAX_ARRAY, Raw, Src, read_array, read_npz, reserve};
use crate::error::{Error, Result};
use std::path::Path;

crate::choice! {
    /// How a four-dimensional array's axes are ordered.
    pub enum Layout {
        /// Items, height, width, channels (Keras, NumPy images).
        Nhwc = "nhwc",
        /// Items, channels, height, width (PyTorch).
        Nchw = "nchw",
    }
}

/// How an array's values are read, decided from its dtype and its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// 8-bit levels 0–255 (uint8, or integer images within 0–255), which models see as v/255.
    Levels,
    /// Values in [0, 1] (floats, bools, integers 0 and 1), used as they are.
    Unit,
    /// Any other numbers: features to standardise, for N×D; images refuse them.
    Numbers,
}

/// The smallest and largest value of arrays.
#[derive(Debug, Clone, Copy)]
struct Range {
    lo: f32,
    hi: f32,
}

impl Range {
    fn of(raw: &Raw) -> Range {
        let fold = |it: &mut dyn Iterator<Item = f32>| {
            it.fold(
                Range {
                    lo: f32::INFINITY,
                    hi: f32::NEG_INFINITY,
                },
                |r, x| Range {
                    lo: r.lo.min(x),
                    hi: r.hi.max(x),
                },
            )
        };
        match raw {
            Raw::U8(v) => fold(&mut v.iter().map(|&x| x as f32)),
            Raw::F32(v) => fold(&mut v.iter().copied()),
            Raw::Text(_) => fold(&mut std::iter::empty()),
        }
    }

    fn join(self, o: Range) -> Range {
        Range {
            lo: self.lo.min(o.lo),
            hi: self.hi.max(o.hi),
        }
    }

    fn unit(self) -> bool {
        self.lo >= 0.0 && self.hi <= 1.0
    }

    fn bytes(self) -> bool {
        self.lo >= 0.0 && self.hi <= 255.0
    }
}

impl Reading {
    /// The reading of values of `dtype` spanning `range`, in images or not.
    fn of(dtype: Dtype, range: Range, image: bool) -> Reading {
        match dtype {
            Dtype::Uint8 => Reading::Levels,
            Dtype::Bool => Reading::Unit,
            _ if range.unit() => Reading::Unit,
            // Integer images are levels when the values fit them; the dtype says so, floats never do.
            Dtype::Int if image && range.bytes() => Reading::Levels,
            _ => Reading::Numbers,
        }
    }
}

/// The item shape of an array of `shape`: its items, their shape, and whether they are stored N×C×H×W.
fn item_shape(
    shape: &[usize],
    layout: Option<Layout>,
    src: Src,
) -> Result<(usize, ItemShape, bool)> {
    let (n, rest) = shape.split_first().map_or((0, &[][..]), |(n, r)| (*n, r));
    let hwc = |h: usize, w: usize, c: usize| ItemShape {
        height: h,
        width: w,
        channels: c,
    };
    let (item, nchw) = match (rest, layout) {
        ([d], _) => (ItemShape::grey(1, *d), false),
        ([h, w], _) => (ItemShape::grey(*h, *w), false),
        ([h, w, c], Some(Layout::Nhwc)) => (hwc(*h, *w, *c), false),
        ([c, h, w], Some(Layout::Nchw)) => (hwc(*h, *w, *c), true),
        ([h, w, c], None) if *c == 1 || *c == 3 => (hwc(*h, *w, *c), false),
        ([c, h, w], None) if *c == 1 || *c == 3 => (hwc(*h, *w, *c), true),
        ([], _) => {
            return Err(src.bad(format!(
                "shape {shape:?} is not a list of items: save N items as N×D (x.reshape(-1, 1) for one value each), N×H×W or N×H×W×C"
            )));
        }
        _ => {
            return Err(src.bad(format!(
                "shape {shape:?} is not N×D, N×H×W, N×H×W×C or N×C×H×W with 1 or 3 channels (--layout nhwc|nchw chooses)"
            )));
        }
    };
    if n == 0 || item.is_empty() {
        return Err(src.bad(format!("shape {shape:?} holds no items")));
    }
    if item.channels != 1 && item.channels != 3 {
        // The layout asked for may be the wrong one: say so when the other order has 1 or 3 channels.
        let other = match (rest, nchw) {
            ([c, _, _], false) if *c == 1 || *c == 3 => Some(("nchw", *c)),
            ([_, _, c], true) if *c == 1 || *c == 3 => Some(("nhwc", *c)),
            _ => None,
        };
        let hint = other.map_or(String::new(), |(l, c)| {
            format!(
                " (--layout {l} reads them as {c} channel{})",
                if c == 1 { "" } else { "s" }
            )
        });
        return Err(src.bad(format!(
            "{} channels: images must have 1 or 3{hint}",
            item.channels
        )));
    }
    Ok((n, item, nchw))
}

/// Refuses NaN and infinities (and float64 values beyond float32's range, which become infinite), naming the
/// first.
fn check_finite(raw: &Raw, d: usize, src: Src) -> Result<()> {
    if let Raw::F32(v) = raw
        && let Some(i) = v.iter().position(|x| !x.is_finite())
    {
        return Err(src.bad(format!(
            "item {} holds a non-finite value ({}) at position {}: elbo reads finite numbers within float32's range",
            i / d.max(1),
            v[i],
            i % d.max(1)
        )));
    }
    Ok(())
}

/// The values of `a` as items of `kind` see them: levels stay bytes, values in [0, 1] stay as they are, a
/// table's features are the numbers themselves. A run's new items keep values outside the kind's range, so
/// that they are scored as they are.
fn values_as(a: Array, kind: Kind, range: Range, src: Src) -> Result<Values> {
    let image = kind == Kind::Image;
    Ok(match a.raw {
        Raw::U8(v) if kind == Kind::Table || a.dtype == Dtype::Bool => {
            let mut out = reserve(v.len(), src)?;
            out.extend(v.iter().map(|&x| x as f32));
            Values::F32(out)
        }
        Raw::U8(v) => Values::U8(v),
        Raw::F32(v) if kind == Kind::Table => Values::F32(v),
        Raw::F32(v) => match Reading::of(a.dtype, range, image) {
            Reading::Levels => {
                let mut out = reserve(v.len(), src)?;
                out.extend(v.iter().map(|&x| x as u8));
                Values::U8(out.into())
            }
            // Integer images beyond 0–255 are levels still: a run scores them as such, and says so with the
            // level as written (the line about values outside [0, 1] shows them divided by 255).
            Reading::Numbers if image && a.dtype == Dtype::Int => {
                if let Some(i) = v.iter().position(|x| !(0.0..=255.0).contains(x)) {
                    crate::notes::say!(
                        "elbo: {}: {}: integer levels outside 0–255 (the first {} in item {}) are read as level/255",
                        src.path.display(),
                        src.what,
                        v[i],
                        i / (v.len() / a.shape.first().copied().unwrap_or(1).max(1)).max(1)
                    );
                }
                Values::F32(v.into_iter().map(|x| x / 255.0).collect())
            }
            _ => Values::F32(v),
        },
        Raw::Text(_) => {
            return Err(src.bad(format!(
                "{} strings, not numbers: items must be numeric",
                a.type_name
            )));
        }
    })
}

/// The kind of `a`'s items spanning `range`, as [`Reading`] decides, and a line saying so; images of other
/// numbers are refused.
fn infer_kind(a: &Array, range: Range, src: Src) -> Result<(Kind, String)> {
    let image = a.shape.len() > 2;
    let shape = a
        .shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×");
    let values = format!(
        "{} {shape} values from {} to {}",
        a.type_name, range.lo, range.hi
    );
    let what = if image { "images" } else { "vectors" };
    let (kind, said) = match Reading::of(a.dtype, range, image) {
        Reading::Levels => {
            let binary = if range.hi <= 1.0 {
                ": if they are binary, save them as bool or float32"
            } else {
                ""
            };
            (
                if image { Kind::Image } else { Kind::Vector },
                format!("read as 8-bit {what} (levels 0–255, seen as v/255){binary}"),
            )
        }
        Reading::Unit => (
            if image { Kind::Image } else { Kind::Vector },
            format!(
                "read as {what} of values in [0, 1], not standardised; Bernoulli likelihood by default"
            ),
        ),
        Reading::Numbers if !image => (
            Kind::Table,
            "read as features: standardised, Gaussian likelihood by default".to_string(),
        ),
        Reading::Numbers if a.dtype == Dtype::Int => {
            return Err(src.bad(format!(
                "{values}: integer images must hold levels 0–255 (or 0 and 1): rescale them, or save intensities in [0, 1] as floats"
            )));
        }
        Reading::Numbers => {
            return Err(src.bad(format!(
                "{values}: float images must hold intensities in [0, 1]: save x / 255 (or x.astype('uint8') for 0–255 levels); N×D arrays are read as features"
            )));
        }
    };
    Ok((
        kind,
        format!("elbo: {}: {values}: {said}", src.path.display()),
    ))
}

fn to_nhwc(values: Values, n: usize, s: ItemShape, src: Src) -> Result<Values> {
    let (c, hw) = (s.channels, s.height * s.width);
    let perm = |i: usize| {
        // Output index i = (item, pixel, channel) from input (item, channel, pixel).
        let (item, r) = (i / (hw * c), i % (hw * c));
        item * hw * c + (r % c) * hw + r / c
    };
    let len = n * hw * c;
    Ok(match values {
        Values::U8(v) => {
            let mut out = reserve(len, src)?;
            out.extend((0..len).map(|i| v[perm(i)]));
            Values::U8(out.into())
        }
        Values::F32(v) => {
            let mut out = reserve(len, src)?;
            out.extend((0..len).map(|i| v[perm(i)]));
            Values::F32(out)
        }
    })
}

/// One item's label as stored: a number or a string. Classes are numbered in this order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Label {
    Int(i64),
    Text(String),
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Int(v) => write!(f, "{v}"),
            Label::Text(s) => f.write_str(s),
        }
    }
}

fn labels(a: Array, n: usize, src: Src) -> Result<Vec<Label>> {
    let count = a.shape.iter().product::<usize>();
    if count != n || a.shape.len() > 2 || (a.shape.len() == 2 && a.shape[1] != 1) {
        return Err(src.bad(format!(
            "labels of shape {:?} do not match {n} items (expected ({n},))",
            a.shape
        )));
    }
    let number = |(i, v): (usize, f32)| {
        // Integers of float32's exact range; anything else is a measured value, not a class.
        if v.fract() == 0.0 && v.abs() <= (1u32 << 24) as f32 {
            Ok(Label::Int(v as i64))
        } else {
            Err(src.bad(format!(
                "label {i} is {v}: labels must be integers (at most 16777216 in size) or strings"
            )))
        }
    };
    match a.raw {
        Raw::U8(v) => Ok(v.iter().map(|&x| Label::Int(x.into())).collect()),
        Raw::F32(v) => v.into_iter().enumerate().map(number).collect(),
        Raw::Text(v) => Ok(v.into_iter().map(Label::Text).collect()),
    }
}

/// Numbers the labels that occur, in sorted order, as classes 0, 1, … named by their values: labels such as
/// {0, 60000} make two classes, not 60001, and strings name their classes.
fn classes(sets: &[Option<Vec<Label>>]) -> (Vec<String>, Vec<Option<Vec<u32>>>) {
    let all: std::collections::BTreeSet<&Label> = sets.iter().flatten().flatten().collect();
    let all: Vec<&Label> = all.into_iter().collect();
    let numbered = sets
        .iter()
        .map(|s| {
            s.as_ref().map(|l| {
                l.iter()
                    .map(|v| all.binary_search(&v).expect("a label of the set") as u32)
                    .collect()
            })
        })
        .collect();
    (all.iter().map(|l| l.to_string()).collect(), numbered)
}

/// The items of one array and its labels, named in errors.
struct Part<'a> {
    x: Array,
    y: Option<Array>,
    xname: &'a str,
    yname: &'a str,
}

/// Datasets of the arrays in `parts` (a training and a test split, or one set), all read one way: as `want`,
/// a run's kind, or as decided from their dtypes and all their values together.
fn datasets(
    parts: Vec<Part>,
    layout: Option<Layout>,
    want: Option<Kind>,
    path: &Path,
) -> Result<Vec<Dataset>> {
    let mut shaped = Vec::new();
    for p in &parts {
        let src = Src {
            path,
            what: p.xname,
        };
        if p.x.dtype == Dtype::Text {
            return Err(src.bad(format!(
                "{} strings, not numbers: items must be numeric",
                p.x.type_name
            )));
        }
        // A layout names the order of four axes: on fewer it would be recorded as if it had been used.
        if let (Some(l), None, false) = (layout, want, p.x.shape.len() == 4) {
            return Err(src.bad(format!(
                "--layout {l} applies to 4-D arrays (N×H×W×C or N×C×H×W); this one has shape {:?}: leave it out",
                p.x.shape
            )));
        }
        let (n, item, nchw) = item_shape(&p.x.shape, layout, src)?;
        check_finite(&p.x.raw, item.len(), src)?;
        if let Some((_, first, _)) = shaped.first()
            && *first != item
        {
            return Err(src.bad(format!(
                "items of shape {item} do not match {}'s {first}",
                parts[0].xname
            )));
        }
        shaped.push((n, item, nchw));
    }
    let range = parts
        .iter()
        .map(|p| Range::of(&p.x.raw))
        .reduce(Range::join)
        .expect("one array at least");
    let first = Src {
        path,
        what: parts[0].xname,
    };
    let x_shape = parts[0].x.shape.clone();
    let (kind, said) = match want {
        Some(k) => (k, None),
        None => infer_kind(&parts[0].x, range, first).map(|(k, s)| (k, Some(s)))?,
    };
    let mut values = Vec::new();
    let mut keys = Vec::new();
    for (p, &(n, item, nchw)) in parts.into_iter().zip(&shaped) {
        let src = Src {
            path,
            what: p.xname,
        };
        // A run's new items are read with their own range, so one odd array does not change how another is.
        let r = if want.is_some() {
            Range::of(&p.x.raw)
        } else {
            range
        };
        let v = values_as(p.x, kind, r, src)?;
        values.push(if nchw { to_nhwc(v, n, item, src)? } else { v });
        let ysrc = Src {
            path,
            what: p.yname,
        };
        keys.push(p.y.map(|y| labels(y, n, ysrc)).transpose()?);
    }
    let (names, numbered) = classes(&keys);
    let sets = values
        .into_iter()
        .zip(numbered)
        .zip(&shaped)
        .map(|((v, l), &(_, item, _))| {
            let mut ds = Dataset::new(item, kind, v, l)?;
            if ds.is_labelled() {
                ds.classes = names.clone();
            }
            Ok(ds)
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(line) = said {
        crate::notes::say!("{line}{}", axis_order(&x_shape, layout, shaped[0].2));
    }
    Ok(sets)
}

/// How a 4-D array's axes were read, for the line saying how its values were: which order, and whether the other
/// would also have read (a guess the user should see); nothing for fewer axes or a `--layout` given.
fn axis_order(shape: &[usize], layout: Option<Layout>, nchw: bool) -> String {
    let ([_, a, b, c], None) = (shape, layout) else {
        return String::new();
    };
    let channels = |c: usize| c == 1 || c == 3;
    let (order, other) = if nchw {
        ("N×C×H×W, PyTorch's order", channels(*c).then_some("nhwc"))
    } else {
        ("N×H×W×C", channels(*a).then_some("nchw"))
    };
    let (h, w, ch) = if nchw { (b, c, a) } else { (a, b, c) };
    let mut line = format!(
        "; axes read as {order} ({h}×{w} pixels, {ch} channel{})",
        if *ch == 1 { "" } else { "s" }
    );
    if let Some(l) = other {
        line.push_str(&format!(", a guess: --layout {l} reads the other order"));
    }
    line
}

/// What a NumPy file held: one set of items to split, or given train and test splits.
pub use super::images::Found;

/// Loads a `.npy` or `.npz` file for training, deciding from the dtype and the values how they are read and
/// saying so in a line.
pub fn load(path: &Path, layout: Option<Layout>) -> Result<Found> {
    load_with(path, layout, None)
}

/// Loads a `.npy` or `.npz` file as items of a run's `kind`, whatever their values: a run's new items are read
/// the way it was trained, and values outside its range are kept, to be scored as they are.
pub fn load_as(path: &Path, layout: Option<Layout>, kind: Kind) -> Result<Found> {
    load_with(path, layout, Some(kind))
}

fn load_with(path: &Path, layout: Option<Layout>, want: Option<Kind>) -> Result<Found> {
    let lower = path.to_string_lossy().to_ascii_lowercase();
    if lower.ends_with(".npy") {
        let f = crate::fsutil::open_regular(path, MAX_ARRAY, "a .npy file")?;
        let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
        let src = Src {
            path,
            what: "array",
        };
        let x = read_array(f, len, src)?;
        let part = Part {
            x,
            y: None,
            xname: "array",
            yname: "",
        };
        let mut sets = datasets(vec![part], layout, want, path)?;
        return Ok(Found::One(sets.remove(0)));
    }
    let wanted: Vec<&str> = NPZ_NAMES
        .iter()
        .chain(&super::dsprites::ARRAYS)
        .copied()
        .collect();
    let mut arrays = read_npz(path, &wanted)?;
    if let Some(found) = super::dsprites::found_in(&mut arrays, want, path)? {
        let others: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
        if !others.is_empty() {
            crate::notes::say!(
                "elbo: {}: also holds {}, which elbo leaves unread: it reads the dSprites arrays (imgs, latents_classes) when a file has them",
                path.display(),
                others.join(", ")
            );
        }
        return Ok(found);
    }
    found_in(arrays, layout, want, path)
}

/// The arrays an `.npz` for training holds, by name: `x_train`, `x_test` and their labels, or `x` and `y`.
const NPZ_NAMES: [&str; 6] = ["x_train", "y_train", "x_test", "y_test", "x", "y"];

/// Loads arrays held in memory for training as the `.npz` at `origin` holding them would be read: named
/// `x_train` and `x_test` (given splits) or `x`, each with its labels. A caller's uint8 buffers are used in place.
pub fn load_memory(arrays: Vec<MemArray>, layout: Option<Layout>, origin: &Path) -> Result<Found> {
    let mut named = Vec::new();
    for a in arrays {
        let (x, y, name) = a.into_part()?;
        let Some(k) = NPZ_NAMES
            .iter()
            .position(|n| *n == name)
            .filter(|k| k % 2 == 0)
        else {
            return Err(Error::Config(format!(
                "{}: an array named {name}: name them x_train and x_test, or x",
                origin.display()
            )));
        };
        if let Some(y) = y {
            named.push((NPZ_NAMES[k + 1].to_string(), y));
        }
        named.push((name, x));
    }
    found_in(named, layout, None, origin)
}

/// The training items among an `.npz`'s named arrays (see [`NPZ_NAMES`]); `path` names them in messages.
fn found_in(
    mut arrays: Vec<(String, Array)>,
    layout: Option<Layout>,
    want: Option<Kind>,
    path: &Path,
) -> Result<Found> {
    let mut take = |k: &str| {
        arrays
            .iter()
            .position(|(n, _)| n == k)
            .map(|i| arrays.remove(i).1)
    };
    if let (Some(xtr), Some(xte)) = (take("x_train"), take("x_test")) {
        let (ytr, yte) = (take("y_train"), take("y_test"));
        if ytr.is_some() != yte.is_some() {
            return Err(Error::Config(format!(
                "{}: labels: give both y_train and y_test, or neither",
                path.display()
            )));
        }
        let parts = vec![
            Part {
                x: xtr,
                y: ytr,
                xname: "x_train",
                yname: "y_train",
            },
            Part {
                x: xte,
                y: yte,
                xname: "x_test",
                yname: "y_test",
            },
        ];
        let mut sets = datasets(parts, layout, want, path)?;
        let test = sets.pop().expect("two sets");
        let train = sets.pop().expect("two sets");
        return Ok(Found::Split(train, test));
    }
    if let Some(x) = take("x") {
        let part = Part {
            x,
            y: take("y"),
            xname: "x",
            yname: "y",
        };
        let mut sets = datasets(vec![part], layout, want, path)?;
        return Ok(Found::One(sets.remove(0)));
    }
    Err(Error::Config(format!(
        "{}: no arrays named x_train and x_test, or x: save them as np.savez(path, x_train=…, y_train=…, x_test=…, y_test=…) or np.savez(path, x=…, y=…)",
        path.display()
    )))
}

/// The values of an array held in memory (by Python's `elbo`, say), by what NumPy's dtype says they are.
#[derive(Debug, Clone)]
pub enum MemValues {
    /// uint8: 8-bit levels (a caller's buffer is read in place: see [`Bytes::shared`]).
    Uint8(Bytes),
    /// bool, as 0 and 1.
    Bool(Bytes),
    /// Any other integer type, as floats.
    Int(Vec<f32>),
    /// float16, float32 or float64, as floats.
    Float(Vec<f32>),
}

/// Labels held in memory: integers or strings, numbered in sorted order as classes named by their values.
#[derive(Debug, Clone)]
pub enum MemLabels {
    /// Integer labels.
    Int(Vec<i64>),
    /// String labels.
    Text(Vec<String>),
}

/// An array of items held in memory, read by the rules of a `.npy` file: `shape` is NumPy's (items first).
#[derive(Debug, Clone)]
pub struct MemArray {
    /// The name errors give it (a keyword argument's, say `x`).
    pub name: String,
    /// NumPy's shape, items first.
    pub shape: Vec<usize>,
    /// NumPy's name of the dtype, for messages ("float64").
    pub type_name: String,
    /// The values, in C order.
    pub values: MemValues,
    /// A label per item, if any.
    pub labels: Option<MemLabels>,
}

impl MemArray {
    /// Unlabelled 8-bit levels of NumPy shape `shape` (items first), named `x` in messages.
    pub fn uint8(shape: Vec<usize>, values: Vec<u8>) -> MemArray {
        MemArray {
            name: "x".into(),
            shape,
            type_name: "uint8".into(),
            values: MemValues::Uint8(values.into()),
            labels: None,
        }
    }

    /// Unlabelled float32 values of NumPy shape `shape` (items first), named `x` in messages.
    pub fn float32(shape: Vec<usize>, values: Vec<f32>) -> MemArray {
        MemArray {
            name: "x".into(),
            shape,
            type_name: "float32".into(),
            values: MemValues::Float(values),
            labels: None,
        }
    }

    fn into_part(self) -> Result<(Array, Option<Array>, String)> {
        if let Some(MemLabels::Int(v)) = &self.labels
            && let Some(i) = v.iter().position(|&l| i128::from(l).abs() > F32_EXACT)
        {
            return Err(Error::Config(format!(
                "labels of {}: label {i} is {}: labels must be integers (at most {F32_EXACT} in size) or strings",
                self.name, v[i]
            )));
        }
        let (dtype, raw) = match self.values {
            MemValues::Uint8(v) => (Dtype::Uint8, Raw::U8(v)),
            MemValues::Bool(v) => (Dtype::Bool, Raw::U8(v)),
            MemValues::Int(v) => (Dtype::Int, Raw::F32(v)),
            MemValues::Float(v) => (Dtype::Float, Raw::F32(v)),
        };
        let x = Array {
            shape: self.shape,
            dtype,
            type_name: self.type_name,
            raw,
        };
        let y = self.labels.map(|l| match l {
            MemLabels::Int(v) => Array {
                shape: vec![v.len()],
                dtype: Dtype::Int,
                type_name: "int64".into(),
                // Exact: `into_part` refused labels beyond float32's exact integers.
                raw: Raw::F32(v.into_iter().map(|x| x as f32).collect()),
            },
            MemLabels::Text(v) => Array {
                shape: vec![v.len()],
                dtype: Dtype::Text,
                type_name: "str".into(),
                raw: Raw::Text(v),
            },
        });
        Ok((x, y, self.name))
    }
}

/// Datasets of arrays held in memory, read as a `.npy` file of the same dtype and values would be: as `want` (a
/// run's kind) when given, else as their dtype and all their values together decide, with a line saying how.
/// `origin` names them in errors. Labels are numbered over all arrays together.
pub fn from_memory(
    arrays: Vec<MemArray>,
    layout: Option<Layout>,
    want: Option<Kind>,
    origin: &Path,
) -> Result<Vec<Dataset>> {
    if arrays.is_empty() {
        return Err(Error::Config(format!("{}: no arrays", origin.display())));
    }
    let parts: Vec<(Array, Option<Array>, String)> = arrays
        .into_iter()
        .map(MemArray::into_part)
        .collect::<Result<_>>()?;
    let names: Vec<(String, String)> = parts
        .iter()
        .map(|(_, _, n)| (n.clone(), format!("labels of {n}")))
        .collect();
    let parts = parts
        .into_iter()
        .zip(&names)
        .map(|((x, y, _), (xname, yname))| Part { x, y, xname, yname })
        .collect();
    datasets(parts, layout, want, origin)
}
