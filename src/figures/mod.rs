//! Figures: image mosaics (samples, reconstructions, manifold, interpolations) and charts (latent scatter,
//! training curves). Every figure is a pure function of its inputs, so the same seed gives the same bytes.

pub mod latent;
pub mod plot;
mod run;
pub mod samples;

pub use run::{run_figures, run_title};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use std::path::Path;

/// How tiles are laid out in a mosaic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MosaicStyle {
    /// Nearest-neighbour upscaling factor of the whole mosaic.
    pub scale: u32,
    /// White pixels around and between tiles (before scaling).
    pub pad: usize,
    /// Draw a light line between rows, in the padding.
    pub separators: bool,
}

impl Default for MosaicStyle {
    fn default() -> Self {
        MosaicStyle {
            scale: 1,
            pad: 2,
            separators: false,
        }
    }
}

/// Grey level of the separator lines: light enough not to compete with the digits.
const SEPARATOR: u8 = 200;

/// Lays out `n` images of `h`×`w` intensities in [0, 1] on a grid of `cols` columns.
pub fn mosaic(
    images: &[f32],
    n: usize,
    h: usize,
    w: usize,
    cols: usize,
    style: MosaicStyle,
) -> image::GrayImage {
    let pad = style.pad;
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols).max(1);
    let width = cols * w + (cols + 1) * pad;
    let height = rows * h + (rows + 1) * pad;
    let mut img = image::GrayImage::from_pixel(width as u32, height as u32, image::Luma([255]));
    for i in 0..n {
        let (r, c) = (i / cols, i % cols);
        let (y0, x0) = (pad + r * (h + pad), pad + c * (w + pad));
        for y in 0..h {
            for x in 0..w {
                let v = images[i * h * w + y * w + x].clamp(0.0, 1.0);
                img.put_pixel(
                    (x0 + x) as u32,
                    (y0 + y) as u32,
                    image::Luma([(v * 255.0).round() as u8]),
                );
            }
        }
    }
    if style.separators && pad > 0 {
        for r in 1..rows {
            let y = r * (h + pad) + pad / 2;
            for x in 0..width {
                img.put_pixel(x as u32, y as u32, image::Luma([SEPARATOR]));
            }
        }
    }
    if style.scale > 1 {
        let (sw, sh) = (img.width() * style.scale, img.height() * style.scale);
        img = image::imageops::resize(&img, sw, sh, image::imageops::FilterType::Nearest);
    }
    img
}

/// Encodes an image as PNG in memory.
pub fn png_bytes<P: image::PixelWithColorType, C: std::ops::Deref<Target = [P::Subpixel]>>(
    img: &image::ImageBuffer<P, C>,
    path: &Path,
) -> Result<Vec<u8>>
where
    [P::Subpixel]: image::EncodableLayout,
{
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::Config(format!("cannot encode {}: {e}", path.display())))?;
    Ok(bytes)
}

/// Saves a grayscale image as PNG, atomically.
pub fn save_png(img: &image::GrayImage, path: &Path) -> Result<()> {
    write_atomic(path, &png_bytes(img, path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_land_where_expected() {
        let imgs: Vec<f32> = (0..3 * 4).map(|i| i as f32 / 11.0).collect();
        let m = mosaic(
            &imgs,
            3,
            2,
            2,
            2,
            MosaicStyle {
                scale: 1,
                pad: 1,
                separators: false,
            },
        );
        assert_eq!(m.dimensions(), (2 * 2 + 3, 2 * 2 + 3));
        assert_eq!(m.get_pixel(1, 1).0[0], 0);
        assert_eq!(
            m.get_pixel(4, 1).0[0],
            (4.0f32 / 11.0 * 255.0).round() as u8
        );
        assert_eq!(
            m.get_pixel(2, 4).0[0],
            (9.0f32 / 11.0 * 255.0).round() as u8
        );
        assert_eq!(m.get_pixel(0, 0).0[0], 255, "padding is white");
    }

    #[test]
    fn scaling_and_separators() {
        let imgs = vec![0.0f32; 4 * 4];
        let style = MosaicStyle {
            scale: 3,
            pad: 2,
            separators: true,
        };
        let m = mosaic(&imgs, 4, 2, 2, 2, style);
        assert_eq!(m.dimensions(), (3 * (2 * 2 + 3 * 2), 3 * (2 * 2 + 3 * 2)));
        // The separator sits in the middle of the padding between the two rows: unscaled y = 1·(2+2)+1 = 5.
        assert_eq!(m.get_pixel(0, 5 * 3).0[0], SEPARATOR);
        assert_eq!(
            m.get_pixel(2 * 3, 2 * 3).0[0],
            0,
            "tile pixels are scaled up"
        );
    }
}
