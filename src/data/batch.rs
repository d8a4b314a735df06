//! Minibatches: seeded shuffling, and pixels as f32 with optional binarisation.

use super::dataset::{Dataset, Values};
use rand::RngExt;
use rand::seq::SliceRandom;

crate::choice! {
    /// How pixel intensities become targets.
    pub enum Binarize {
        /// Continuous intensities in [0, 1], as the PyTorch example.
        None = "none",
        /// A fresh Bernoulli sample every time an image is seen, as in the IWAE paper.
        Dynamic = "dynamic",
        /// One fixed Bernoulli sample per image, drawn once from the seed.
        Static = "static",
    }
}

/// Replaces every pixel by a Bernoulli sample of its intensity (0 or full), once.
pub fn binarize_static(ds: &mut Dataset, rng: &mut impl rand::Rng) {
    match &mut ds.values {
        Values::U8(v) => {
            for p in v.to_mut().iter_mut() {
                let u: f32 = rng.random();
                *p = if u < *p as f32 / 255.0 { 255 } else { 0 };
            }
        }
        Values::F32(v) => {
            for p in v.iter_mut() {
                let u: f32 = rng.random();
                *p = if u < *p { 1.0 } else { 0.0 };
            }
        }
    }
}

/// Cuts a dataset into minibatches of f32 pixels.
#[derive(Debug, Clone, Copy)]
pub struct Batcher {
    /// Images per batch; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Dynamic binarisation draws targets per batch; other modes copy intensities.
    pub binarize: Binarize,
    /// Mirror each image left to right with probability ½ (drawn only when set, so other runs keep their draws).
    pub flip: bool,
}

/// Items of a batch whose loading is started before the item being converted.
const PREFETCH_AHEAD: usize = 4;

impl Batcher {
    /// A shuffled order of `0..n` for one epoch.
    pub fn epoch_order(&self, n: usize, rng: &mut impl rand::Rng) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        order
    }

    /// Writes the images `idx` of `ds` into `out` (`idx.len() * dim` values).
    pub fn fill(&self, ds: &Dataset, idx: &[usize], rng: &mut impl rand::Rng, out: &mut [f32]) {
        let d = ds.dim();
        for &i in idx.iter().take(PREFETCH_AHEAD) {
            ds.prefetch(i);
        }
        for (j, (row, &i)) in out.chunks_exact_mut(d).zip(idx).enumerate() {
            if let Some(&next) = idx.get(j + PREFETCH_AHEAD) {
                ds.prefetch(next);
            }
            match (self.binarize, &ds.values) {
                (Binarize::Dynamic, Values::U8(v)) => {
                    for (o, &p) in row.iter_mut().zip(&v[i * d..(i + 1) * d]) {
                        let u: f32 = rng.random();
                        *o = if u < p as f32 * (1.0 / 255.0) {
                            1.0
                        } else {
                            0.0
                        };
                    }
                }
                (Binarize::Dynamic, Values::F32(v)) => {
                    for (o, &p) in row.iter_mut().zip(&v[i * d..(i + 1) * d]) {
                        let u: f32 = rng.random();
                        *o = if u < p { 1.0 } else { 0.0 };
                    }
                }
                (Binarize::None | Binarize::Static, _) => ds.fill_row(i, row),
            }
            if self.flip && rng.random::<bool>() {
                let (w, c) = (ds.shape.width, ds.shape.channels);
                for line in row.chunks_exact_mut(w * c) {
                    for x in 0..w / 2 {
                        let (a, b) = line.split_at_mut((w - 1 - x) * c);
                        a[x * c..(x + 1) * c].swap_with_slice(&mut b[..c]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn toy() -> Dataset {
        Dataset::from_bytes(
            crate::data::ItemShape::grey(2, 2),
            (0..40).map(|i| (i * 6) as u8).collect(),
            Some((0..10).collect()),
        )
        .unwrap()
    }

    #[test]
    fn shuffling_is_seeded_and_a_permutation() {
        let b = Batcher {
            batch_size: 3,
            binarize: Binarize::None,
            flip: false,
        };
        let o1 = b.epoch_order(10, &mut rand_pcg::Pcg64Mcg::seed_from_u64(3));
        let o2 = b.epoch_order(10, &mut rand_pcg::Pcg64Mcg::seed_from_u64(3));
        assert_eq!(o1, o2);
        let mut s = o1.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
        assert_ne!(o1, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn binarisation_modes() {
        let ds = toy();
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        let mut out = vec![0.0; 8];
        let b = Batcher {
            batch_size: 2,
            binarize: Binarize::None,
            flip: false,
        };
        b.fill(&ds, &[0, 9], &mut rng, &mut out);
        assert_eq!(out[1], 6.0 / 255.0);
        assert_eq!(out[7], 234.0 / 255.0);
        let b = Batcher {
            batch_size: 2,
            binarize: Binarize::Dynamic,
            flip: false,
        };
        b.fill(&ds, &[0, 9], &mut rng, &mut out);
        assert!(out.iter().all(|&v| v == 0.0 || v == 1.0));
        assert_eq!(out[0], 0.0, "a black pixel never turns on");
        let mut ds2 = toy();
        binarize_static(&mut ds2, &mut rng);
        let Values::U8(v) = &ds2.values else { panic!() };
        assert!(v.iter().all(|&p| p == 0 || p == 255));
    }

    #[test]
    fn random_flips_mirror_whole_pixels_half_the_time() {
        // 1×3 colour images: pixel x holds (10x + item, 10x + 1, 10x + 2).
        let shape = crate::data::ItemShape {
            height: 1,
            width: 3,
            channels: 3,
        };
        let bytes: Vec<u8> = (0..40u8)
            .flat_map(|i| (0..3u8).flat_map(move |x| [10 * x + i, 10 * x + 1, 10 * x + 2]))
            .collect();
        let ds = Dataset::from_bytes(shape, bytes, None).unwrap();
        let b = Batcher {
            batch_size: 40,
            binarize: Binarize::None,
            flip: true,
        };
        let idx: Vec<usize> = (0..40).collect();
        let mut out = vec![0.0; 40 * 9];
        b.fill(
            &ds,
            &idx,
            &mut rand_pcg::Pcg64Mcg::seed_from_u64(2),
            &mut out,
        );
        let mut flipped = 0;
        for (i, row) in out.chunks_exact(9).enumerate() {
            let mut plain = vec![0.0; 9];
            ds.fill_row(i, &mut plain);
            let mirror: Vec<f32> = plain.chunks_exact(3).rev().flatten().copied().collect();
            assert!(row == &plain[..] || row == &mirror[..], "item {i}: {row:?}");
            flipped += usize::from(row == &mirror[..]);
        }
        assert!((10..=30).contains(&flipped), "{flipped} of 40 flipped");
    }
}
