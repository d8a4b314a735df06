//! The latent space: grids for the manifold, interpolation paths, PCA, and batched encoding and decoding.

use crate::data::{Batcher, Binarize, Dataset};
use crate::error::{Error, Result};
use crate::model::Vae;
use rand::SeedableRng;
use statrs::distribution::{ContinuousCDF, Normal};

/// How the manifold's grid values are spaced along each axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GridRange {
    /// Evenly from `a` to `b` in latent units.
    Linear(f64, f64),
    /// At the standard normal's quantiles, evenly from probability `p` to `q`: covers the prior's mass.
    Quantile(f64, f64),
    /// At the quantiles of the test set's codes, evenly from probability `p` to `q`, with the other dimensions
    /// at their medians: covers where the data lies, which is what an autoencoder (no prior) has.
    Data(f64, f64),
}

impl Default for GridRange {
    fn default() -> Self {
        GridRange::Quantile(0.05, 0.95)
    }
}

impl std::str::FromStr for GridRange {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Config(format!(
                "--range '{s}' must look like linear:-3,3, quantile:0.05,0.95 or data:0.05,0.95"
            ))
        };
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let (a, b) = rest.split_once(',').ok_or_else(bad)?;
        let (a, b): (f64, f64) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        match kind {
            "linear" if (b - a).is_finite() && a != b => Ok(GridRange::Linear(a, b)),
            _ if a == b => Err(Error::Config(format!(
                "--range {s}: the two ends are equal; give two different values"
            ))),
            "quantile" if 0.0 < a && a < 1.0 && 0.0 < b && b < 1.0 && a != b => {
                Ok(GridRange::Quantile(a, b))
            }
            "data" if (0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b) && a != b => {
                Ok(GridRange::Data(a, b))
            }
            "data" => Err(Error::Config(format!(
                "--range {s}: quantiles must lie between 0 and 1"
            ))),
            "quantile" => Err(Error::Config(format!(
                "--range {s}: quantiles must lie strictly between 0 and 1"
            ))),
            _ => Err(bad()),
        }
    }
}

impl GridRange {
    /// `n` values along one axis, ascending when the range is; `codes` holds that dimension's values over the
    /// test set, needed by [`GridRange::Data`] only.
    pub fn values(self, n: usize, codes: &[f64]) -> Vec<f64> {
        let frac = |k: usize| {
            if n == 1 {
                0.5
            } else {
                k as f64 / (n - 1) as f64
            }
        };
        let normal = Normal::standard();
        (0..n)
            .map(|k| match self {
                GridRange::Linear(a, b) => a + (b - a) * frac(k),
                GridRange::Quantile(p, q) => normal.inverse_cdf(p + (q - p) * frac(k)),
                GridRange::Data(p, q) => empirical_quantile(codes, p + (q - p) * frac(k)),
            })
            .collect()
    }
}

/// Each of the `d` columns of row-major `codes`, sorted, in f64.
pub(crate) fn sorted_columns(codes: &[f32], d: usize) -> Vec<Vec<f64>> {
    (0..d)
        .map(|k| {
            let mut v: Vec<f64> = codes.iter().skip(k).step_by(d).map(|&x| x as f64).collect();
            v.sort_by(f64::total_cmp);
            v
        })
        .collect()
}

/// The `p`-quantile of sorted values, interpolated linearly between order statistics (NumPy's default).
pub(crate) fn empirical_quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Largest manifold grid side: 100×100 tiles of 28×28 is already a 3-megapixel image.
pub const MAX_GRID: usize = 100;

/// Latent codes of a `grid`×`grid` manifold varying dimensions `dims`: tile (r, c) holds dimension `dims.0` at
/// value c and `dims.1` at value `grid − 1 − r`, so the vertical axis grows upwards as in a plot. The other
/// dimensions are 0, or their medians over `data` (the test set's codes, `[n, latent]`) for [`GridRange::Data`],
/// which needs them.
pub fn manifold_codes(
    latent: usize,
    grid: usize,
    dims: (usize, usize),
    range: GridRange,
    data: Option<&[f32]>,
) -> Result<Vec<f32>> {
    if latent < 2 {
        return Err(Error::Config(format!(
            "the manifold varies two latent dimensions, but this model's latent has {latent}; \
             use 'elbo latent-plot' or 'elbo interpolate' for a 1-D latent"
        )));
    }
    if grid == 0 || grid > MAX_GRID {
        return Err(Error::Config(format!(
            "--grid {grid} must be between 1 and {MAX_GRID}"
        )));
    }
    let (i, j) = dims;
    if i >= latent || j >= latent || i == j {
        return Err(Error::Config(format!(
            "--dims {i},{j} must be two different dimensions below the latent size {latent} (0-based)"
        )));
    }
    // Each dimension's values over the data, sorted, for the data's quantiles and medians.
    let sorted: Vec<Vec<f64>> = match (range, data) {
        (GridRange::Data(..), Some(codes)) if !codes.is_empty() => sorted_columns(codes, latent),
        (GridRange::Data(..), _) => {
            return Err(Error::Config(
                "--range data:P,Q needs the test set's codes, and there are none".into(),
            ));
        }
        _ => vec![Vec::new(); latent],
    };
    let base: Vec<f32> = sorted
        .iter()
        .map(|v| empirical_quantile(v, 0.5) as f32)
        .collect();
    let (xs, ys) = (
        range.values(grid, &sorted[i]),
        range.values(grid, &sorted[j]),
    );
    if xs.iter().chain(&ys).any(|v| !(*v as f32).is_finite()) {
        return Err(Error::Config(
            "--range gives latent values too large for the model's 32-bit floats: choose a smaller range".into(),
        ));
    }
    let mut codes = Vec::with_capacity(grid * grid * latent);
    for y in ys.iter().rev() {
        for x in &xs {
            let at = codes.len();
            codes.extend_from_slice(&base);
            codes[at + i] = *x as f32;
            codes[at + j] = *y as f32;
        }
    }
    Ok(codes)
}

/// Decoder means for `n` latent codes, in batches; `labels` gives each code's class for a conditional model
/// (empty: class 0, ignored by unconditional models).
pub fn decode_means(vae: &Vae<f32>, codes: &[f32], n: usize, labels: &[u32]) -> Vec<f32> {
    decode_means_drawn(vae, codes, n, labels, None)
}

/// [`decode_means`], the layers below a stacked model's top drawn from their conditionals with the spread
/// scaled by the temperature in `draw` (ancestral sampling) instead of taken at their means.
pub fn decode_means_drawn(
    vae: &Vae<f32>,
    codes: &[f32],
    n: usize,
    labels: &[u32],
    mut draw: Option<(f64, &mut dyn rand::Rng)>,
) -> Vec<f32> {
    let (zd, d) = (vae.latent(), vae.config.input_dim());
    let batch = n.clamp(1, 512);
    let mut ws = vae.workspace(batch, 1);
    let mut out = vec![0f32; n * d];
    for start in (0..n).step_by(batch) {
        let rows = batch.min(n - start);
        let draw = draw
            .as_mut()
            .map(|(t, rng)| (*t, &mut **rng as &mut dyn rand::Rng));
        vae.descend(&codes[start * zd..(start + rows) * zd], rows, &mut ws, draw);
        if !labels.is_empty() {
            ws.labels[..rows].copy_from_slice(&labels[start..start + rows]);
        }
        vae.decode(rows, &mut ws);
        vae.means(rows, &ws, &mut out[start * d..(start + rows) * d]);
    }
    out
}

/// The labels of the images `idx` of `ds`.
pub fn labels(ds: &Dataset, idx: &[usize]) -> Vec<u32> {
    idx.iter().map(|&i| ds.label(i)).collect()
}

/// Pixels in [0, 1] of the images `idx` of `ds`.
pub fn pixels(ds: &Dataset, idx: &[usize]) -> Vec<f32> {
    let mut x = vec![0f32; idx.len() * ds.dim()];
    let copy = Batcher {
        batch_size: idx.len(),
        binarize: Binarize::None,
        flip: false,
    };
    // Copying intensities never draws from the RNG.
    copy.fill(ds, idx, &mut rand_pcg::Pcg64Mcg::seed_from_u64(0), &mut x);
    x
}

/// The encoder's output rows for the images `idx` (with their labels, for a conditional model): `[μ (Z),
/// log σ² (Z)]` for a VAE, `[z (Z)]` for an autoencoder.
pub fn encode_head(vae: &Vae<f32>, ds: &Dataset, idx: &[usize]) -> Vec<f32> {
    let hl = vae.head_len();
    let batch = crate::eval::rows_within(vae, idx.len().clamp(1, 500), 1);
    let mut ws = vae.workspace(batch, 1);
    let mut out = Vec::with_capacity(idx.len() * hl);
    for chunk in idx.chunks(batch) {
        let x = pixels(ds, chunk);
        ws.labels[..chunk.len()].copy_from_slice(&labels(ds, chunk));
        vae.encode(&x, chunk.len(), &mut ws);
        out.extend_from_slice(vae.posterior(chunk.len(), &mut ws));
    }
    out
}

/// The codes of the images `idx`: the posterior means μ (a VAE) or z (an autoencoder), `[n, Z]`.
pub fn encode(vae: &Vae<f32>, ds: &Dataset, idx: &[usize]) -> Vec<f32> {
    let (zd, hl) = (vae.latent(), vae.head_len());
    encode_head(vae, ds, idx)
        .chunks_exact(hl)
        .flat_map(|h| h[..zd].to_vec())
        .collect()
}

/// `steps` codes from `a` to `b` (both included): straight, or along the great circle (slerp).
pub fn interpolate(a: &[f32], b: &[f32], steps: usize, spherical: bool) -> Vec<f32> {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let omega = if na > 0.0 && nb > 0.0 {
        (dot / (na * nb)).clamp(-1.0, 1.0).acos()
    } else {
        0.0
    };
    let mut out = Vec::with_capacity(steps * a.len());
    for s in 0..steps {
        let t = if steps == 1 {
            0.0
        } else {
            s as f64 / (steps - 1) as f64
        };
        // Slerp degenerates to a straight line for (anti)parallel codes, where sin Ω vanishes.
        let (wa, wb) = if spherical && omega.sin().abs() > 1e-6 {
            (
                ((1.0 - t) * omega).sin() / omega.sin(),
                (t * omega).sin() / omega.sin(),
            )
        } else {
            (1.0 - t, t)
        };
        out.extend(
            a.iter()
                .zip(b)
                .map(|(x, y)| (wa * *x as f64 + wb * *y as f64) as f32),
        );
    }
    out
}

/// A plane through latent space: a point and two orthonormal directions. Latent points project onto it, and
/// points of it lift back to latent codes (the other directions at the plane's point).
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    /// The plane's origin in latent space.
    pub origin: Vec<f64>,
    /// Its two directions, each of the latent's length.
    pub axes: [Vec<f64>; 2],
    /// The fraction of the points' variance along each direction (1 and 0 for raw axes).
    pub explained: [f64; 2],
}

impl Plane {
    /// The raw axes for latents of one or two dimensions (a 1-D latent on the first axis), else the first two
    /// principal components of the `n` points.
    pub fn fit(points: &[f32], n: usize, dim: usize) -> Plane {
        if dim <= 2 {
            let unit = |k: usize| (0..dim).map(|j| if j == k { 1.0 } else { 0.0 }).collect();
            return Plane {
                origin: vec![0.0; dim],
                axes: [unit(0), unit(1)],
                explained: [1.0, if dim == 2 { 1.0 } else { 0.0 }],
            };
        }
        pca_plane(points, n, dim)
    }

    /// The plane coordinates of latent code `z`.
    pub fn project(&self, z: &[f32]) -> [f64; 2] {
        let mut p = [0.0; 2];
        for (k, axis) in self.axes.iter().enumerate() {
            p[k] = z
                .iter()
                .zip(&self.origin)
                .zip(axis)
                .map(|((x, o), a)| (*x as f64 - o) * a)
                .sum();
        }
        p
    }

    /// The latent code at plane coordinates `(u, v)`.
    pub fn lift(&self, u: f64, v: f64) -> Vec<f64> {
        self.origin
            .iter()
            .zip(self.axes[0].iter().zip(&self.axes[1]))
            .map(|(o, (a, b))| o + u * a + v * b)
            .collect()
    }
}

/// The plane of the first two principal components of `n` points of dimension `dim`, through their mean.
pub fn pca_plane(points: &[f32], n: usize, dim: usize) -> Plane {
    let mean: Vec<f64> = (0..dim)
        .map(|j| (0..n).map(|i| points[i * dim + j] as f64).sum::<f64>() / n.max(1) as f64)
        .collect();
    let mut cov = nalgebra::DMatrix::<f64>::zeros(dim, dim);
    for i in 0..n {
        let row: Vec<f64> = (0..dim)
            .map(|j| points[i * dim + j] as f64 - mean[j])
            .collect();
        for a in 0..dim {
            for b in 0..dim {
                cov[(a, b)] += row[a] * row[b];
            }
        }
    }
    cov /= (n.max(2) - 1) as f64;
    let eig = cov.symmetric_eigen();
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let total: f64 = eig.eigenvalues.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let (c0, c1) = (order[0], order[1.min(dim - 1)]);
    // Fix each component's sign (largest entry positive) so figures do not flip between runs or machines.
    let axis = |c: usize| {
        let v = eig.eigenvectors.column(c);
        let k = (0..dim)
            .max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()))
            .unwrap_or(0);
        let s = if v[k] < 0.0 { -1.0 } else { 1.0 };
        v.iter().map(|x| x * s).collect::<Vec<f64>>()
    };
    Plane {
        origin: mean,
        axes: [axis(c0), axis(c1)],
        explained: [eig.eigenvalues[c0] / total, eig.eigenvalues[c1] / total],
    }
}

/// Projects `n` points of dimension `dim` onto their first two principal components; also returns the
/// fraction of variance each explains.
pub fn pca2(points: &[f32], n: usize, dim: usize) -> (Vec<[f64; 2]>, [f64; 2]) {
    let plane = pca_plane(points, n, dim);
    let proj = points
        .chunks_exact(dim)
        .take(n)
        .map(|z| plane.project(z))
        .collect();
    (proj, plane.explained)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_space() {
        let q: GridRange = "quantile:0.05,0.95".parse().unwrap();
        let v = q.values(3, &[]);
        assert!(
            (v[0] + 1.6449).abs() < 1e-3 && v[1].abs() < 1e-12 && (v[2] - 1.6449).abs() < 1e-3,
            "{v:?}"
        );
        assert_eq!(
            "linear:-3,3".parse::<GridRange>().unwrap().values(3, &[]),
            vec![-3.0, 0.0, 3.0]
        );
        let d: GridRange = "data:0,1".parse().unwrap();
        assert_eq!(d.values(3, &[1.0, 2.0, 4.0, 10.0]), vec![1.0, 3.0, 10.0]);
        for bad in [
            "quantile:0,1",
            "linear:3",
            "cubic:1,2",
            "linear:1,1",
            "data:0,1.5",
        ] {
            assert!(bad.parse::<GridRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn manifold_codes_vary_the_chosen_dims() {
        let c = manifold_codes(3, 2, (0, 2), GridRange::Linear(-1.0, 1.0), None).unwrap();
        // Tile (0,0): dim 0 at its lowest, dim 2 at its highest (top row); dim 1 held at 0.
        assert_eq!(&c[0..3], &[-1.0, 0.0, 1.0]);
        assert_eq!(&c[9..12], &[1.0, 0.0, -1.0]);
        assert!(
            manifold_codes(1, 2, (0, 1), GridRange::default(), None)
                .unwrap_err()
                .to_string()
                .contains("latent has 1")
        );
        assert!(
            manifold_codes(3, 2, (0, 3), GridRange::default(), None)
                .unwrap_err()
                .to_string()
                .contains("--dims 0,3")
        );
        assert!(manifold_codes(3, 0, (0, 1), GridRange::default(), None).is_err());
        assert!(manifold_codes(3, 10_000, (0, 1), GridRange::default(), None).is_err());
        // At the data's quantiles, the third dimension held at its median.
        let data = [0.0, 10.0, 5.0, 2.0, 20.0, 7.0, 4.0, 30.0, 6.0];
        let c = manifold_codes(3, 2, (0, 1), GridRange::Data(0.0, 1.0), Some(&data)).unwrap();
        assert_eq!(&c[0..3], &[0.0, 30.0, 6.0]);
        assert_eq!(&c[9..12], &[4.0, 10.0, 6.0]);
        assert!(manifold_codes(3, 2, (0, 1), GridRange::Data(0.0, 1.0), None).is_err());
        let huge = GridRange::Linear(-1e39, 1e39);
        assert!(manifold_codes(3, 2, (0, 1), huge, None).is_err());
        assert!("linear:-1e308,1e308".parse::<GridRange>().is_err());
        let same = "data:0.5,0.5".parse::<GridRange>().unwrap_err().to_string();
        assert!(same.contains("equal"), "{same}");
    }

    #[test]
    fn interpolation_ends_at_both_codes_and_slerp_keeps_the_norm() {
        let (a, b) = ([1.0f32, 0.0], [0.0f32, 1.0]);
        let p = interpolate(&a, &b, 3, false);
        assert_eq!(p, vec![1.0, 0.0, 0.5, 0.5, 0.0, 1.0]);
        let s = interpolate(&a, &b, 3, true);
        assert!((s[2].hypot(s[3]) - 1.0).abs() < 1e-6, "{s:?}");
    }

    #[test]
    fn pca_finds_the_main_direction() {
        let pts: Vec<f32> = (0..100)
            .flat_map(|i| {
                let t = i as f32 - 50.0;
                [t, 2.0 * t, 0.01 * (i % 3) as f32]
            })
            .collect();
        let (proj, frac) = pca2(&pts, 100, 3);
        assert!(frac[0] > 0.999, "{frac:?}");
        assert!((proj[99][0] - proj[0][0]).abs() > 100.0);
    }
}
