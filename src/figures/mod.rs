//! Figures: image mosaics of samples and reconstructions, written as PNG.

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use std::path::Path;

/// Lays out `n` images of `h`×`w` intensities in [0, 1] on a grid of `cols` columns with `pad` pixels between.
pub fn mosaic(
    images: &[f32],
    n: usize,
    h: usize,
    w: usize,
    cols: usize,
    pad: usize,
) -> image::GrayImage {
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
    img
}

/// Saves a grayscale image as PNG, atomically.
pub fn save_png(img: &image::GrayImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::Config(format!("cannot encode {}: {e}", path.display())))?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tiles_land_where_expected() {
        let imgs: Vec<f32> = (0..3 * 4).map(|i| i as f32 / 11.0).collect();
        let m = super::mosaic(&imgs, 3, 2, 2, 2, 1);
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
}
