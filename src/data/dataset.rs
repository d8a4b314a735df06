//! A dataset: items of one shape (images H×W×C, or table rows of D features), stored as bytes or floats, with
//! optional class labels and their names. Every source produces one; everything downstream reads only this.

use super::bytes::Bytes;
use super::factors::Factors;
use crate::error::{Error, Result};

/// The shape of one item. Images are `height × width × channels`, stored NHWC; a row of `D` features is
/// `1 × D × 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ItemShape {
    /// Rows of pixels (1 for a table).
    pub height: usize,
    /// Columns of pixels, or features.
    pub width: usize,
    /// Colour channels (1 grey, 3 RGB).
    pub channels: usize,
}

impl ItemShape {
    /// A grey image.
    pub fn grey(height: usize, width: usize) -> Self {
        ItemShape {
            height,
            width,
            channels: 1,
        }
    }

    /// Values per item.
    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Whether an item holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for ItemShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.height, self.width, self.channels)
    }
}

/// What the values of a dataset are, which decides how they are modelled and drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Pixel intensities in [0, 1]: drawn as pictures, modelled by a Bernoulli decoder by default.
    #[default]
    Image,
    /// Feature vectors in [0, 1], not pictures.
    Vector,
    /// Standardised features (zero mean, unit variance on the training split), modelled by a Gaussian.
    Table,
}

impl Kind {
    /// What items of this kind are, in words for messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Image => "images",
            Kind::Vector => "vectors of values in [0, 1]",
            Kind::Table => "rows of features",
        }
    }
}

/// The stored values: bytes 0–255 (intensity v/255) or floats used as they are.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Bytes, on the heap or mapped from the image cache; the value seen by models is `v / 255`.
    U8(Bytes),
    /// Floats, already in the units models see.
    F32(Vec<f32>),
}

impl Values {
    /// Number of scalars.
    pub fn len(&self) -> usize {
        match self {
            Values::U8(v) => v.len(),
            Values::F32(v) => v.len(),
        }
    }

    /// Whether there are no scalars.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn truncate(&mut self, n: usize) {
        match self {
            Values::U8(v) => v.truncate(n),
            Values::F32(v) => v.truncate(n),
        }
    }

    fn split_off(&mut self, at: usize) -> Values {
        match self {
            Values::U8(v) => Values::U8(v.split_off(at)),
            Values::F32(v) => Values::F32(v.split_off(at)),
        }
    }

    fn gather(&self, idx: &[usize], d: usize) -> Values {
        match self {
            Values::U8(v) => Values::U8(
                idx.iter()
                    .flat_map(|&i| &v[i * d..(i + 1) * d])
                    .copied()
                    .collect::<Vec<u8>>()
                    .into(),
            ),
            Values::F32(v) => Values::F32(
                idx.iter()
                    .flat_map(|&i| &v[i * d..(i + 1) * d])
                    .copied()
                    .collect(),
            ),
        }
    }

    fn extend(&mut self, other: Values) -> Result<()> {
        match (self, other) {
            (Values::U8(a), Values::U8(b)) => {
                let mut v = std::mem::replace(a, Vec::new().into()).into_vec();
                v.extend_from_slice(&b);
                *a = v.into();
            }
            (Values::F32(a), Values::F32(b)) => a.extend(b),
            (Values::F32(a), Values::U8(b)) => a.extend(b.iter().map(|&v| v as f32 / 255.0)),
            (a @ Values::U8(_), Values::F32(b)) => {
                let Values::U8(bytes) = a else { unreachable!() };
                let mut f: Vec<f32> = bytes.iter().map(|&v| v as f32 / 255.0).collect();
                f.extend(b);
                *a = Values::F32(f);
            }
        }
        Ok(())
    }
}

/// Items of one shape with optional labels: one split of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Shape of every item.
    pub shape: ItemShape,
    /// What the values are.
    pub kind: Kind,
    /// `len × shape.len()` values, item after item (NHWC for images).
    pub values: Values,
    /// A class index per item, when the source has labels.
    pub labels: Option<Vec<u32>>,
    /// Names of the classes, indexed by label (empty when unlabelled).
    pub classes: Vec<String>,
    /// A name per item (file or archive entry), when the source has them; used to label output rows.
    pub names: Vec<String>,
    /// The known generative factors of every item (dSprites'), when the source has them.
    pub factors: Option<Box<Factors>>,
}

impl Dataset {
    /// A dataset of bytes, checking that the sizes agree.
    pub fn from_bytes(
        shape: ItemShape,
        values: Vec<u8>,
        labels: Option<Vec<u32>>,
    ) -> Result<Dataset> {
        Self::new(shape, Kind::Image, Values::U8(values.into()), labels)
    }

    /// A dataset, checking that values and labels agree with the shape.
    pub fn new(
        shape: ItemShape,
        kind: Kind,
        values: Values,
        labels: Option<Vec<u32>>,
    ) -> Result<Dataset> {
        let d = shape.len();
        if d == 0 || !values.len().is_multiple_of(d) {
            return Err(Error::Config(format!(
                "{} values do not make whole items of shape {shape}",
                values.len()
            )));
        }
        if let Some(l) = &labels
            && l.len() != values.len() / d
        {
            return Err(Error::Config(format!(
                "{} labels for {} items",
                l.len(),
                values.len() / d
            )));
        }
        let classes = labels
            .as_ref()
            .and_then(|l| l.iter().max())
            .map_or(Vec::new(), |&m| (0..=m).map(|c| c.to_string()).collect());
        Ok(Dataset {
            shape,
            kind,
            values,
            labels,
            classes,
            names: Vec::new(),
            factors: None,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.values.len() / self.dim().max(1)
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per item.
    pub fn dim(&self) -> usize {
        self.shape.len()
    }

    /// Whether items carry class labels.
    pub fn is_labelled(&self) -> bool {
        self.labels.is_some()
    }

    /// The label of item `i` (0 for unlabelled data, which no conditional model accepts).
    pub fn label(&self, i: usize) -> u32 {
        self.labels.as_ref().map_or(0, |l| l[i])
    }

    /// Writes item `i` as the floats a model sees (bytes become v/255).
    pub fn fill_row(&self, i: usize, out: &mut [f32]) {
        let d = self.dim();
        match &self.values {
            Values::U8(v) => {
                for (o, &p) in out.iter_mut().zip(&v[i * d..(i + 1) * d]) {
                    *o = p as f32 / 255.0;
                }
            }
            Values::F32(v) => out.copy_from_slice(&v[i * d..(i + 1) * d]),
        }
    }

    /// Asks the CPU to start loading item `i` into its cache. A batch's items lie scattered over the data, and
    /// converting one byte at a time leaves too few loads in flight to hide memory's latency: in profiles of the
    /// default model (with a look-up in place of the division), filling its batches fell from 3.9 % of all
    /// samples to 2.3 % with this.
    #[inline]
    pub fn prefetch(&self, i: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            let d = self.dim();
            let (start, bytes) = match &self.values {
                Values::U8(v) => (v[i * d..(i + 1) * d].as_ptr().cast::<i8>(), d),
                Values::F32(v) => (v[i * d..(i + 1) * d].as_ptr().cast::<i8>(), 4 * d),
            };
            for offset in (0..bytes).step_by(64) {
                // SAFETY: the address lies inside item `i`, bounds-checked above; a prefetch never faults anyway.
                unsafe {
                    std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                        start.add(offset),
                    );
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    /// Gives back the memory pages that reading a memory-mapped dataset brought in (see [`Bytes::release`]).
    pub fn release(&self) {
        if let Values::U8(b) = &self.values {
            b.release();
        }
    }

    /// The first `n` items (all if there are fewer).
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len());
        self.values.truncate(n * self.dim());
        if let Some(l) = self.labels.as_mut() {
            l.truncate(n);
        }
        self.names.truncate(n);
        if let Some(f) = self.factors.as_mut() {
            f.truncate(n);
        }
        self
    }

    /// Splits off the last `n` items as a second dataset.
    pub fn split_off(&mut self, n: usize) -> Dataset {
        let keep = self.len().saturating_sub(n);
        let names = if self.names.len() > keep {
            self.names.split_off(keep)
        } else {
            Vec::new()
        };
        Dataset {
            shape: self.shape,
            kind: self.kind,
            values: self.values.split_off(keep * self.dim()),
            labels: self.labels.as_mut().map(|l| l.split_off(keep)),
            classes: self.classes.clone(),
            names,
            factors: self.factors.as_mut().map(|f| Box::new(f.split_off(keep))),
        }
    }

    /// The items `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Dataset {
        Dataset {
            shape: self.shape,
            kind: self.kind,
            values: self.values.gather(idx, self.dim()),
            labels: self
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i]).collect()),
            classes: self.classes.clone(),
            names: if self.names.is_empty() {
                Vec::new()
            } else {
                idx.iter().map(|&i| self.names[i].clone()).collect()
            },
            factors: self.factors.as_ref().map(|f| Box::new(f.select(idx))),
        }
    }

    /// Appends the items of `other`, which must have the same shape.
    pub fn append(&mut self, other: Dataset) -> Result<()> {
        if other.shape != self.shape {
            return Err(Error::Config(format!(
                "items of shape {} cannot join items of shape {}",
                other.shape, self.shape
            )));
        }
        let (n, m) = (self.len(), other.len());
        self.labels = match (self.labels.take(), other.labels) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
        // Factors survive only when both parts have the same ones.
        self.factors = match (self.factors.take(), other.factors) {
            (Some(mut a), Some(b)) => a.append(*b).then_some(a),
            _ => None,
        };
        if self.names.len() == n && other.names.len() == m {
            self.names.extend(other.names);
        } else {
            self.names.clear();
        }
        self.values.extend(other.values)
    }

    /// Renumbers the labels as indices into `classes` (a run's saved class names), matching each own class by
    /// name, or else by numeric value ("1.0" is a run's "1", and the other way round). Leaves the dataset as it
    /// is and returns the first own class that `classes` lacks.
    pub fn relabel(&mut self, classes: &[String]) -> std::result::Result<(), String> {
        let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
        let map: Vec<u32> = self
            .classes
            .iter()
            .map(|own| {
                classes
                    .iter()
                    .position(|c| c == own)
                    .or_else(|| {
                        let v = number(own)?;
                        classes.iter().position(|c| number(c) == Some(v))
                    })
                    .map(|i| i as u32)
                    .ok_or_else(|| own.clone())
            })
            .collect::<std::result::Result<_, _>>()?;
        if let Some(labels) = self.labels.as_mut() {
            for l in labels.iter_mut() {
                *l = map[*l as usize];
            }
        }
        self.classes = classes.to_vec();
        Ok(())
    }

    /// Splits into a training and a test part, holding out `fraction` of the items chosen with `seed`; both
    /// keep the source order.
    pub fn split_fraction(self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let (train, test) = split_indices(self.len(), fraction, seed);
        (self.select(&train), self.select(&test))
    }
}

/// The items of a set of `n` that [`Dataset::split_fraction`] keeps for training and holds out, each in order.
pub fn split_indices(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let held = ((n as f64) * fraction).round() as usize;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand_pcg::Pcg64Mcg::seed_from_u64(seed));
    let mut test: Vec<usize> = order[..held].to_vec();
    let mut train: Vec<usize> = order[held..].to_vec();
    test.sort_unstable();
    train.sort_unstable();
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Dataset {
        Dataset::from_bytes(
            ItemShape::grey(1, 2),
            (0..2 * n as u32).map(|v| v as u8).collect(),
            Some((0..n as u32).collect()),
        )
        .unwrap()
    }

    #[test]
    fn sizes_must_agree() {
        let e = Dataset::from_bytes(ItemShape::grey(2, 2), vec![0; 6], None).unwrap_err();
        assert!(e.to_string().contains("do not make whole items"), "{e}");
        let e =
            Dataset::from_bytes(ItemShape::grey(1, 2), vec![0; 6], Some(vec![0, 1])).unwrap_err();
        assert!(e.to_string().contains("2 labels for 3 items"), "{e}");
        let ds = toy(3);
        assert_eq!((ds.len(), ds.dim(), ds.classes.len()), (3, 2, 3));
    }

    #[test]
    fn split_select_append() {
        let mut ds = toy(10);
        let tail = ds.split_off(3);
        assert_eq!((ds.len(), tail.len()), (7, 3));
        assert_eq!(tail.labels.as_deref(), Some(&[7, 8, 9][..]));
        let (tr, te) = toy(10).split_fraction(0.2, 5);
        assert_eq!((tr.len(), te.len()), (8, 2));
        let mut all: Vec<u32> = tr.labels.clone().unwrap();
        all.extend(te.labels.clone().unwrap());
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(
            toy(10).split_fraction(0.2, 5),
            (tr.clone(), te.clone()),
            "seeded"
        );
        let mut a = tr.clone();
        a.append(te).unwrap();
        assert_eq!(a.len(), 10);
        let mut row = [0f32; 2];
        let bytes = Dataset::from_bytes(ItemShape::grey(1, 2), vec![0, 255], None).unwrap();
        bytes.fill_row(0, &mut row);
        assert_eq!(row, [0.0, 1.0]);
    }

    #[test]
    fn relabel_follows_a_saved_class_list_by_name_or_number() {
        let mut ds = toy(4);
        ds.classes = ["1", "2", "10", "b"].map(String::from).to_vec();
        // A run saved before numeric labels sorted as numbers: text order, and one class spelled "2.0".
        let saved = ["1", "10", "2.0", "b"].map(String::from).to_vec();
        ds.relabel(&saved).unwrap();
        assert_eq!(ds.labels.as_deref(), Some(&[0, 2, 1, 3][..]));
        assert_eq!(ds.classes, saved);
        let mut ds = toy(2);
        ds.classes = ["x", "y"].map(String::from).to_vec();
        assert_eq!(ds.relabel(&saved), Err("x".to_string()));
        assert_eq!(ds.labels.as_deref(), Some(&[0, 1][..]), "left as it was");
    }
}
