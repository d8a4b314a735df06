//! Figures: image mosaics (samples, reconstructions, manifold, interpolations) and charts (latent scatter,
//! training curves). Every figure is a pure function of its inputs, so the same seed gives the same bytes.

pub mod latent;
#[cfg(feature = "plot")]
pub mod plot;
mod run;
pub mod samples;
pub mod traverse;

pub use run::{run_figures, run_title};

use crate::data::ItemShape;
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

/// Most pixels a mosaic may have after scaling (200 million: 600 MB as RGB).
pub const MAX_PIXELS: u64 = 200_000_000;

/// Lays out `n` images of `shape` (values in [0, 1], NHWC) on a grid of `cols` columns: a grey image for one
/// channel, RGB for three. A mosaic above [`MAX_PIXELS`] is refused rather than allocated.
pub fn mosaic(
    images: &[f32],
    n: usize,
    shape: ItemShape,
    cols: usize,
    style: MosaicStyle,
) -> Result<image::DynamicImage> {
    let (h, w, c) = (shape.height, shape.width, shape.channels);
    let pad = style.pad;
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols).max(1);
    let width = cols * w + (cols + 1) * pad;
    let height = rows * h + (rows + 1) * pad;
    let scaled = (
        width as u64 * style.scale as u64,
        height as u64 * style.scale as u64,
    );
    if scaled.0 * scaled.1 > MAX_PIXELS {
        return Err(Error::Config(format!(
            "the image would be {}x{} pixels, more than {} million: use a smaller --scale or fewer images",
            scaled.0,
            scaled.1,
            MAX_PIXELS / 1_000_000
        )));
    }
    let mut raw = vec![255u8; width * height * c];
    for i in 0..n {
        let (r, col) = (i / cols, i % cols);
        let (y0, x0) = (pad + r * (h + pad), pad + col * (w + pad));
        for y in 0..h {
            let src = &images[(i * h + y) * w * c..(i * h + y + 1) * w * c];
            let dst = &mut raw[((y0 + y) * width + x0) * c..((y0 + y) * width + x0 + w) * c];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    if style.separators && pad > 0 {
        for r in 1..rows {
            let y = r * (h + pad) + pad / 2;
            raw[y * width * c..(y + 1) * width * c].fill(SEPARATOR);
        }
    }
    let (wu, hu) = (width as u32, height as u32);
    let mut img = if c == 3 {
        image::DynamicImage::ImageRgb8(
            image::RgbImage::from_raw(wu, hu, raw).expect("sized buffer"),
        )
    } else {
        image::DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(wu, hu, raw).expect("sized buffer"),
        )
    };
    if style.scale > 1 {
        img = img.resize_exact(
            wu * style.scale,
            hu * style.scale,
            image::imageops::FilterType::Nearest,
        );
    }
    Ok(img)
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

/// The image format an output path names by its ending, or an error listing the ones elbo writes.
pub fn image_format(path: &Path) -> Result<image::ImageFormat> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => Ok(image::ImageFormat::Png),
        "jpg" | "jpeg" => Ok(image::ImageFormat::Jpeg),
        "bmp" => Ok(image::ImageFormat::Bmp),
        "tif" | "tiff" => Ok(image::ImageFormat::Tiff),
        // `-` is standard output to many tools; elbo writes files only (atomically, never half an image).
        _ if path == Path::new("-") => Err(Error::Config(
            "--out -: elbo writes images to files, not to standard output; give a file name ending in .png, .jpg, .bmp or .tiff".into(),
        )),
        _ if ext.is_empty() => Err(Error::Config(format!(
            "{}: the name has no ending to tell the image format by: use .png, .jpg, .bmp or .tiff",
            path.display()
        ))),
        _ => Err(Error::Config(format!(
            "{}: cannot tell the image format from the ending '{ext}': use .png, .jpg, .bmp or .tiff",
            path.display()
        ))),
    }
}

/// Saves an image atomically, in the format its path's ending names.
pub fn save_image(img: &image::DynamicImage, path: &Path) -> Result<()> {
    let format = image_format(path)?;
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), format)
        .map_err(|e| Error::Config(format!("cannot encode {}: {e}", path.display())))?;
    write_atomic(path, &bytes)
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
            ItemShape::grey(2, 2),
            2,
            MosaicStyle {
                scale: 1,
                pad: 1,
                separators: false,
            },
        )
        .unwrap();
        let m = m.as_luma8().expect("grey images give a grey mosaic");
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
    fn colour_tiles_keep_their_channels() {
        // One 1x2 RGB image: a red pixel, then a blue one.
        let img = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let shape = ItemShape {
            height: 1,
            width: 2,
            channels: 3,
        };
        let m = mosaic(
            &img,
            1,
            shape,
            1,
            MosaicStyle {
                scale: 1,
                pad: 1,
                separators: false,
            },
        )
        .unwrap();
        let m = m.as_rgb8().expect("colour images give a colour mosaic");
        assert_eq!(m.get_pixel(1, 1).0, [255, 0, 0]);
        assert_eq!(m.get_pixel(2, 1).0, [0, 0, 255]);
        assert_eq!(m.get_pixel(0, 0).0, [255, 255, 255]);
    }

    #[test]
    fn output_format_follows_the_ending() {
        assert_eq!(
            image_format(Path::new("a.JPG")).unwrap(),
            image::ImageFormat::Jpeg
        );
        assert!(
            image_format(Path::new("a.xyz"))
                .unwrap_err()
                .to_string()
                .contains(".png")
        );
    }

    #[test]
    fn scaling_and_separators() {
        let imgs = vec![0.0f32; 4 * 4];
        let style = MosaicStyle {
            scale: 3,
            pad: 2,
            separators: true,
        };
        let m = mosaic(&imgs, 4, ItemShape::grey(2, 2), 2, style).unwrap();
        let m = m.as_luma8().expect("grey");
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
