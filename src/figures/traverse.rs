//! Latent traversals (Higgins et al. 2017, Burgess et al. 2018): one row per latent dimension, that dimension
//! swept over a range while the others stay at a base code, rows ordered by how much the dimension is used.

use super::latent as lat;
#[cfg(feature = "plot")]
use super::{MosaicStyle, mosaic};
use crate::data::Dataset;
#[cfg(feature = "plot")]
use crate::error::{Error, Result};
use crate::model::{StandardNormal, Vae};
#[cfg(feature = "plot")]
use std::path::Path;

/// Each latent dimension's KL(q(z_j|x) ‖ p(z_j)) averaged over the items of `ds`, in nats: near 0 for a
/// dimension the encoder does not use. A prior without a per-dimension closed form is measured against N(0, 1),
/// the reference the β-VAE literature ranks dimensions by.
pub fn mean_kl_per_dim(vae: &Vae<f32>, ds: &Dataset) -> Vec<f64> {
    let zd = vae.latent();
    let idx: Vec<usize> = (0..ds.len()).collect();
    let head = lat::encode_head(vae, ds, &idx);
    let reference = StandardNormal { dim: zd };
    let closed = vae.prior().closed_form_kl().unwrap_or(&reference);
    let mut kl = vec![0.0; zd];
    for h in head.chunks_exact(2 * zd) {
        for (j, k) in kl.iter_mut().enumerate() {
            *k += closed.kl_dim(h[j] as f64, h[zd + j] as f64);
        }
    }
    let n = ds.len().max(1) as f64;
    kl.iter().map(|k| k / n).collect()
}

/// The dimensions in `dims` ordered by decreasing `kl`, ties by index, so unused dimensions sink to the bottom.
pub fn order_by_kl(dims: &[usize], kl: &[f64]) -> Vec<usize> {
    let mut d = dims.to_vec();
    d.sort_by(|&a, &b| kl[b].total_cmp(&kl[a]).then(a.cmp(&b)));
    d
}

/// Codes for a traversal: for each of `dims` in order, `base` with that dimension set to each of `values`.
pub fn traversal_codes(base: &[f32], dims: &[usize], values: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(dims.len() * values.len() * base.len());
    for &d in dims {
        for &v in values {
            let start = out.len();
            out.extend_from_slice(base);
            out[start + d] = v;
        }
    }
    out
}

/// Fewest pixels a row may have: a label must fit beside it.
pub const MIN_ROW: u32 = 24;

/// Most pixels a traversal figure may have (100 million: 300 MB as RGB).
pub const MAX_PIXELS: u64 = 100_000_000;

/// Width of the label column in pixels before scaling.
#[cfg(feature = "plot")]
const LABEL_WIDTH: u32 = 150;

#[cfg(feature = "plot")]
/// Writes the traversal mosaic of `rows` rows (tiles in `px`, `steps` per row) with one label per row on its
/// left, as PNG (or another raster format, by the ending).
pub fn draw(
    px: &[f32],
    shape: crate::data::ItemShape,
    steps: usize,
    labels: &[String],
    style: MosaicStyle,
    path: &Path,
) -> Result<()> {
    let rows = labels.len();
    let tiles = mosaic(px, rows * steps, shape, steps, style)?.to_rgb8();
    let (tw, th) = tiles.dimensions();
    // Callers scale rows to at least MIN_ROW pixels, so a 13-pixel font always fits.
    let row_px = th as f64 / rows.max(1) as f64;
    let font = (row_px * 0.3).clamp(13.0, 18.0);
    let label_w = LABEL_WIDTH.max((font * 9.0) as u32);
    let (w, h) = (label_w + tw, th);
    let row_y = |r: usize| ((r as f64 + 0.5) * row_px - font / 2.0) as i32;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        use plotters::prelude::*;
        super::plot::register_font();
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        for (r, l) in labels.iter().enumerate() {
            root.draw(&Text::new(
                l.as_str(),
                (8, row_y(r)),
                (super::plot::FAMILY, font).into_font(),
            ))
            .map_err(|e| Error::Config(format!("cannot draw {}: {e:?}", path.display())))?;
        }
        root.present()
            .map_err(|e| Error::Config(format!("cannot draw {}: {e:?}", path.display())))?;
    }
    let mut img = image::RgbImage::from_raw(w, h, buf).expect("buffer matches size");
    image::imageops::replace(&mut img, &tiles, label_w as i64, 0);
    super::save_image(&image::DynamicImage::ImageRgb8(img), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sweep_one_dimension_per_row_and_rows_follow_kl() {
        let base = [0.5f32, -1.0, 2.0];
        let codes = traversal_codes(&base, &[2, 0], &[-3.0, 3.0]);
        assert_eq!(
            codes,
            vec![
                0.5, -1.0, -3.0, 0.5, -1.0, 3.0, -3.0, -1.0, 2.0, 3.0, -1.0, 2.0
            ]
        );
        assert_eq!(
            order_by_kl(&[0, 1, 2, 3], &[0.1, 2.0, 0.0, 2.0]),
            vec![1, 3, 0, 2]
        );
    }
}
