//! The known generative factors of a dataset's items (dSprites' shape, scale, orientation and position), carried
//! with the items through every split, so a run and the disentanglement metrics know them.

use crate::error::{Error, Result};

/// The largest factor class elbo reads, from a file or from Python: classes are indices into a factor's values (dSprites'
/// largest is 39), and `.npz` readers pass them through f32, exact only to 2^24.
pub const MAX_CLASS: u32 = 1_000_000;

/// Per item, the class (index into the factor's sorted values) and the value of every factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Factors {
    /// The factors' names, e.g. `shape`.
    pub names: Vec<String>,
    /// How many values each factor takes.
    pub sizes: Vec<usize>,
    /// `len × names.len()` class indices, item after item.
    pub classes: Vec<u32>,
    /// `len × names.len()` values, item after item.
    pub values: Vec<f64>,
}

impl Factors {
    /// Factors of `classes.len() / names.len()` items, checking that the sizes agree and every class is in range.
    pub fn new(
        names: Vec<String>,
        sizes: Vec<usize>,
        classes: Vec<u32>,
        values: Vec<f64>,
    ) -> Result<Factors> {
        let f = names.len();
        if f == 0 || sizes.len() != f || !classes.len().is_multiple_of(f) {
            return Err(Error::Config(format!(
                "factors: {} names, {} sizes and {} classes do not make whole items",
                f,
                sizes.len(),
                classes.len()
            )));
        }
        if values.len() != classes.len() {
            return Err(Error::Config(format!(
                "factors: {} values for {} classes",
                values.len(),
                classes.len()
            )));
        }
        if let Some(i) = classes
            .iter()
            .enumerate()
            .position(|(i, &c)| c as usize >= sizes[i % f])
        {
            return Err(Error::Config(format!(
                "factors: item {} has {} class {}, beyond its {} values",
                i / f,
                names[i % f],
                classes[i],
                sizes[i % f]
            )));
        }
        Ok(Factors {
            names,
            sizes,
            classes,
            values,
        })
    }

    /// Number of factors.
    pub fn count(&self) -> usize {
        self.names.len()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.classes.len() / self.count().max(1)
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The classes of item `i`, one per factor.
    pub fn row(&self, i: usize) -> &[u32] {
        let f = self.count();
        &self.classes[i * f..(i + 1) * f]
    }

    /// The factors that take more than one value (dSprites' colour is always white): the ones metrics score.
    pub fn varying(&self) -> Vec<usize> {
        (0..self.count()).filter(|&f| self.sizes[f] > 1).collect()
    }

    /// The factors of items `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Factors {
        let f = self.count();
        let mut classes = Vec::with_capacity(idx.len() * f);
        let mut values = Vec::with_capacity(idx.len() * f);
        for &i in idx {
            classes.extend_from_slice(&self.classes[i * f..(i + 1) * f]);
            values.extend_from_slice(&self.values[i * f..(i + 1) * f]);
        }
        Factors {
            names: self.names.clone(),
            sizes: self.sizes.clone(),
            classes,
            values,
        }
    }

    /// Keeps the first `n` items.
    pub fn truncate(&mut self, n: usize) {
        let f = self.count();
        self.classes.truncate(n * f);
        self.values.truncate(n * f);
    }

    /// Splits off the items from `keep` on.
    pub fn split_off(&mut self, keep: usize) -> Factors {
        let f = self.count();
        Factors {
            names: self.names.clone(),
            sizes: self.sizes.clone(),
            classes: self.classes.split_off((keep * f).min(self.classes.len())),
            values: self.values.split_off((keep * f).min(self.values.len())),
        }
    }

    /// Appends `other`'s items when they have the same factors; `false` (and nothing changed) when not.
    pub fn append(&mut self, other: Factors) -> bool {
        if other.names != self.names || other.sizes != self.sizes {
            return false;
        }
        self.classes.extend(other.classes);
        self.values.extend(other.values);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Factors {
        Factors::new(
            vec!["a".into(), "b".into()],
            vec![2, 3],
            vec![0, 1, 1, 2, 0, 0],
            vec![0.0, 0.5, 1.0, 1.0, 0.0, 0.0],
        )
        .unwrap()
    }

    #[test]
    fn select_split_and_append_keep_rows_together() {
        let f = two();
        assert_eq!(f.len(), 3);
        let s = f.select(&[2, 0]);
        assert_eq!(s.classes, vec![0, 0, 0, 1]);
        assert_eq!(s.values, vec![0.0, 0.0, 0.0, 0.5]);
        let mut a = f.clone();
        let b = a.split_off(1);
        assert_eq!((a.len(), b.len()), (1, 2));
        assert_eq!(b.row(0), &[1, 2]);
        assert!(a.append(b));
        assert_eq!(a, f);
        let other = Factors::new(vec!["c".into()], vec![2], vec![1], vec![1.0]).unwrap();
        assert!(!a.append(other));
        assert_eq!(a, f);
    }

    #[test]
    fn classes_beyond_a_factors_size_are_refused() {
        let e = Factors::new(vec!["a".into()], vec![2], vec![0, 2], vec![0.0, 0.0]).unwrap_err();
        assert!(e.to_string().contains("item 1 has a class 2"), "{e}");
    }
}
