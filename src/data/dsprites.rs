//! DeepMind's dSprites (Matthey et al. 2017): 737 280 binary 64×64 images of a square, an ellipse or a heart at
//! every combination of 6 scales, 40 orientations and 32×32 positions, with the factors of every image. Reads
//! the `.npz` layout DeepMind publishes (`imgs`, `latents_classes`, `latents_values`), and renders the same
//! factor grid for machines without the file (`elbo make-dsprites`), saying wherever it goes that it is generated.

use super::dataset::{Dataset, ItemShape, Kind, Values};
use super::factors::{Factors, MAX_CLASS};
use super::images::Found;
use super::npy::{Array, Dtype, Raw};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

/// The factors, in the file's column order.
pub const NAMES: [&str; 6] = ["color", "shape", "scale", "orientation", "posX", "posY"];
/// How many values each factor takes.
pub const SIZES: [usize; 6] = [1, 3, 6, 40, 32, 32];
/// The shapes, by class.
pub const SHAPES: [&str; 3] = ["square", "ellipse", "heart"];
/// Image side in pixels.
pub const SIDE: usize = 64;
/// Images in the whole grid.
pub const COUNT: usize = 737_280;
/// DeepMind's file name.
pub const FILE: &str = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz";
/// Its md5, as published alongside downloaders (e.g. disentanglement_lib's users).
pub const MD5: &str = "7da33b31b13a06f4b04a70402ce90c2e";
/// Where DeepMind publishes it.
pub const MIRROR: &str = "https://github.com/deepmind/dsprites-dataset/raw/master/";
/// The array of a generated file that says so, and what it says.
pub const NOTE_ARRAY: &str = "note";

/// The grid's classes of item `index` (DeepMind's order: posY fastest, then posX, orientation, scale, shape).
pub fn classes_of(mut index: usize) -> [u32; 6] {
    let mut c = [0u32; 6];
    for f in (0..6).rev() {
        c[f] = (index % SIZES[f]) as u32;
        index /= SIZES[f];
    }
    c
}

/// The grid index of `classes`, the inverse of [`classes_of`].
pub fn index_of(classes: &[u32]) -> usize {
    classes
        .iter()
        .zip(SIZES)
        .fold(0, |i, (&c, n)| i * n + c as usize)
}

/// The values of `classes` as DeepMind's `latents_values` holds them: colour 1, shape 1–3, scale in
/// linspace(0.5, 1, 6), orientation in linspace(0, 2π, 40), positions in linspace(0, 1, 32).
pub fn values_of(classes: &[u32]) -> [f64; 6] {
    let lin = |c: u32, lo: f64, hi: f64, n: usize| lo + (hi - lo) * c as f64 / (n - 1) as f64;
    [
        1.0,
        classes[1] as f64 + 1.0,
        lin(classes[2], 0.5, 1.0, 6),
        lin(classes[3], 0.0, std::f64::consts::TAU, 40),
        lin(classes[4], 0.0, 1.0, 32),
        lin(classes[5], 0.0, 1.0, 32),
    ]
}

/// Half the side of the scale-1 square, in pixels, and where positions 0 and 1 put the sprite's centre: chosen
/// so every sprite stays inside the image and neighbouring positions differ by more than a pixel.
const HALF: f64 = 10.0;
const FIRST_CENTRE: f64 = 15.5;
const LAST_CENTRE: f64 = 48.5;

/// Draws the sprites of `rows` (6 classes per image) into `out` (64×64 per image), in parallel.
pub fn render_rows(rows: &[u32], out: &mut [u8]) {
    out.par_chunks_mut(SIDE * SIDE)
        .zip(rows.par_chunks_exact(SIZES.len()))
        .for_each(|(img, row)| render(row, img));
}

/// Draws the sprite of `classes` into `out` (64×64, row-major, 1 inside the shape and 0 outside): a pixel is set
/// when its centre, turned back by the orientation about the sprite's centre, falls inside the unturned shape.
pub fn render(classes: &[u32], out: &mut [u8]) {
    let v = values_of(classes);
    let (scale, angle) = (v[2], v[3]);
    let centre = |p: f64| FIRST_CENTRE + p * (LAST_CENTRE - FIRST_CENTRE);
    let (cx, cy) = (centre(v[4]), centre(v[5]));
    let (sin, cos) = angle.sin_cos();
    let h = HALF * scale;
    for (r, row) in out.chunks_exact_mut(SIDE).enumerate() {
        for (c, px) in row.iter_mut().enumerate() {
            let (dx, dy) = (c as f64 + 0.5 - cx, r as f64 + 0.5 - cy);
            // Into the sprite's frame, in units of its half-size; y up.
            let x = (cos * dx + sin * dy) / h;
            let y = -(-sin * dx + cos * dy) / h;
            let inside = match classes[1] {
                0 => x.abs() <= 1.0 && y.abs() <= 1.0,
                1 => x * x + (y / 0.5) * (y / 0.5) <= 1.0,
                _ => {
                    // (x² + y² − 1)³ ≤ x² y³ spans about 2.3 × 2.2 units: shrunk to the square's extent.
                    let (x, y) = (x * 1.15, y * 1.15 - 0.1);
                    let a = x * x + y * y - 1.0;
                    a * a * a <= x * x * y * y * y
                }
            };
            *px = u8::from(inside);
        }
    }
}

/// What a generated file says of itself, in its `note` array and wherever it is read.
pub fn generated_note(seed: Option<u64>, count: usize) -> String {
    let which = match seed {
        Some(s) => format!(
            "{count} item{} drawn with seed {s}",
            if count == 1 { "" } else { "s" }
        ),
        None => "the whole grid".to_string(),
    };
    format!(
        "generated by elbo make-dsprites ({which}): shapes drawn from the description of dSprites' factor grid, not DeepMind's file"
    )
}

/// The grid indices a generated file holds: all of them, or `subsample` distinct ones drawn with `seed`, in
/// grid order.
pub fn grid_items(subsample: Option<usize>, seed: u64) -> Result<Vec<usize>> {
    match subsample {
        None => Ok((0..COUNT).collect()),
        Some(0) => Err(Error::Config(
            "--subsample 0 leaves nothing to write".into(),
        )),
        Some(n) if n > COUNT => Err(Error::Config(format!(
            "--subsample {n} is more than the grid's {COUNT} images"
        ))),
        Some(n) => {
            use rand::seq::index::sample;
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            let mut idx = sample(&mut rng, COUNT, n).into_vec();
            idx.sort_unstable();
            Ok(idx)
        }
    }
}

/// Writes the images of grid `items` to `path` in DeepMind's layout (compressed, as `np.savez_compressed` does)
/// plus a `note` array saying it is generated; atomically. The images are drawn a block at a time as they are
/// written; `go_on` hears how many more are written and says whether to go on (false: nothing is written, and
/// the temporary file is removed).
pub fn write_npz(
    path: &Path,
    items: &[usize],
    note: &str,
    go_on: &dyn Fn(usize) -> bool,
) -> Result<()> {
    const BLOCK: usize = 1024;
    let n = items.len() as u64;
    let classes: Vec<[u32; 6]> = items.iter().map(|&i| classes_of(i)).collect();
    crate::fsutil::write_atomic_with(path, &mut |file| {
        use npyz::WriterBuilder;
        // Never dropped after a failed write: the zip crate's drop would try to end the archive again and print
        // the error to stderr itself, beside elbo's one line (the temporary file is removed by the caller).
        let mut zip =
            std::mem::ManuallyDrop::new(zip::ZipWriter::new(std::io::BufWriter::new(&mut *file)));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            // A fixed time, so the same grid and seed write the same bytes.
            .last_modified_time(zip::DateTime::default())
            .large_file(n * (SIDE * SIDE) as u64 > u32::MAX as u64 / 2);
        let io = |e: zip::result::ZipError| std::io::Error::other(e);
        let mut members = || -> std::io::Result<()> {
            let zip = &mut *zip;
            zip.start_file("imgs.npy", opts).map_err(io)?;
            {
                // npyz writes an element at a time, and the compressor is slow at one byte per call.
                let mut buffered = std::io::BufWriter::with_capacity(1 << 20, &mut *zip);
                let mut w = npyz::WriteOptions::<u8>::new()
                    .default_dtype()
                    .shape(&[n, SIDE as u64, SIDE as u64])
                    .writer(&mut buffered)
                    .begin_nd()?;
                let mut pixels = vec![0u8; BLOCK * SIDE * SIDE];
                for block in classes.chunks(BLOCK) {
                    let pixels = &mut pixels[..block.len() * SIDE * SIDE];
                    pixels
                        .par_chunks_mut(SIDE * SIDE)
                        .zip(block)
                        .for_each(|(img, c)| render(c, img));
                    w.extend(pixels.iter().copied())?;
                    if !go_on(block.len()) {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::Interrupted,
                            "stopped before the end",
                        ));
                    }
                }
                w.finish()?;
                buffered.flush()?;
            }
            zip.start_file("latents_classes.npy", opts).map_err(io)?;
            write_npy(zip, &[n, 6], classes.iter().flatten().map(|&c| c as i64))?;
            zip.start_file("latents_values.npy", opts).map_err(io)?;
            write_npy(zip, &[n, 6], classes.iter().flat_map(|c| values_of(c)))?;
            zip.start_file(format!("{NOTE_ARRAY}.npy"), opts)
                .map_err(io)?;
            let width = note.chars().count().max(1);
            let dtype = npyz::DType::Plain(
                format!("<U{width}")
                    .parse()
                    .map_err(std::io::Error::other)?,
            );
            let mut w = npyz::WriteOptions::<String>::new()
                .dtype(dtype)
                .shape(&[])
                .writer(&mut *zip)
                .begin_nd()?;
            w.push(&note.to_string())?;
            w.finish()
        };
        members()?;
        std::mem::ManuallyDrop::into_inner(zip)
            .finish()
            .map_err(io)?
            .flush()
    })
}

/// Writes `values` as an `.npy` of `shape` into the member `zip` has just started, through a buffer: npyz writes
/// an element at a time, and the compressor is slow at one small write per call.
fn write_npy<T: npyz::AutoSerialize, W: Write + std::io::Seek>(
    zip: &mut zip::ZipWriter<W>,
    shape: &[u64],
    values: impl IntoIterator<Item = T>,
) -> std::io::Result<()> {
    use npyz::WriterBuilder;
    let mut buffered = std::io::BufWriter::with_capacity(1 << 20, zip);
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut buffered)
        .begin_nd()?;
    w.extend(values)?;
    w.finish()?;
    buffered.flush()
}

/// The arrays of an `.npz` in dSprites' layout.
pub(super) const ARRAYS: [&str; 4] = ["imgs", "latents_classes", "latents_values", NOTE_ARRAY];

/// The dataset of an `.npz` in dSprites' layout (`imgs`, `latents_classes` and optionally `latents_values`),
/// with its factors; `None` when `arrays` has no `imgs`. Images of 0 and 1 are read as black and white.
pub(super) fn found_in(
    arrays: &mut Vec<(String, Array)>,
    want: Option<Kind>,
    path: &Path,
) -> Result<Option<Found>> {
    let mut take = |k: &str| {
        arrays
            .iter()
            .position(|(n, _)| n == k)
            .map(|i| arrays.remove(i).1)
    };
    let Some(imgs) = take("imgs") else {
        if arrays.iter().any(|(n, _)| n == "latents_classes") {
            return Err(Error::Config(format!(
                "{}: latents_classes without imgs: dSprites' layout has both",
                path.display()
            )));
        }
        return Ok(None);
    };
    let Some(classes) = take("latents_classes") else {
        return Err(bad(
            path,
            "imgs",
            "an array named imgs without latents_classes: dSprites' layout has both (or name the images x)",
        ));
    };
    if want.is_some_and(|k| k != Kind::Image) {
        return Err(bad(
            path,
            "imgs",
            "dSprites' images, but this run was trained on other items",
        ));
    }
    let (n, h, w, levels) = binary_images(imgs, path)?;
    let (f, class) = factor_classes(&classes, n, path)?;
    let given = take("latents_values");
    let has_values = given.is_some();
    let factors = factors_of(class, f, given, &classes, path)?;
    let own_grid = factors.sizes == SIZES;
    // Without latents_values the values are the classes themselves: nothing to compare.
    let odd = (own_grid && has_values)
        .then(|| disagreement(&factors))
        .flatten();
    let mut ds = Dataset::new(
        ItemShape::grey(h, w),
        Kind::Image,
        Values::U8(levels.into()),
        None,
    )?;
    let grid: Vec<String> = factors
        .names
        .iter()
        .zip(&factors.sizes)
        .map(|(n, s)| format!("{n} {s}"))
        .collect();
    ds.factors = Some(Box::new(factors));
    crate::notes::say!(
        "elbo: {}: arrays named as dSprites' (imgs, latents_classes): {n} binary {h}×{w} images (0 and 1, seen as black and white) with factors {}{}",
        path.display(),
        grid.join(", "),
        if own_grid {
            " (dSprites' grid)"
        } else {
            ", a grid of its own, not dSprites'"
        }
    );
    if let Some((i, f, v, want)) = odd {
        crate::notes::say!(
            "elbo: {}: latents_values disagrees with latents_classes at item {i}: {} is {v}, where dSprites' grid has {want}; elbo reads the classes (the values are kept as given)",
            path.display(),
            NAMES[f]
        );
    }
    if let Some(note) = take(NOTE_ARRAY)
        && let Raw::Text(t) = note.raw
        && let Some(line) = t.first()
    {
        crate::notes::say!("elbo: {}: {line}", path.display());
    }
    Ok(Some(Found::One(ds)))
}

/// The error `path: what: why` about one array of a dSprites file.
fn bad(path: &Path, what: &str, why: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: {what}: {why}", path.display()))
}

/// `imgs` as (items, height, width, 8-bit levels): its 0s and 1s become black and white.
fn binary_images(imgs: Array, path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (n, h, w) = match imgs.shape[..] {
        [0, _, _] => return Err(bad(path, "imgs", "holds no images")),
        [n, h, w] if n > 0 && h > 0 && w > 0 => (n, h, w),
        _ => {
            return Err(bad(
                path,
                "imgs",
                format!("shape {:?} is not N×H×W", imgs.shape),
            ));
        }
    };
    let Raw::U8(bytes) = imgs.raw else {
        return Err(bad(
            path,
            "imgs",
            format!(
                "{} values: dSprites' images are uint8 (or bool) 0 and 1",
                imgs.type_name
            ),
        ));
    };
    if let Some(i) = bytes.iter().position(|&v| v > 1) {
        return Err(bad(
            path,
            "imgs",
            format!(
                "item {} holds {} at pixel {}: dSprites' images hold only 0 and 1",
                i / (h * w),
                bytes[i],
                i % (h * w)
            ),
        ));
    }
    let mut levels = bytes.into_vec();
    for v in levels.iter_mut() {
        *v *= 255;
    }
    Ok((n, h, w, levels))
}

/// An integer array's values as floats (uint8 and bool ones too); text is refused.
fn numbers(a: &Array, what: &str, path: &Path) -> Result<Vec<f32>> {
    match &a.raw {
        Raw::F32(v) => Ok(v.clone()),
        Raw::U8(v) => Ok(v.iter().map(|&x| x as f32).collect()),
        Raw::Text(_) => Err(bad(path, what, "strings, not numbers")),
    }
}

/// `latents_classes` of `n` images as (factors per image, the classes row by row).
fn factor_classes(classes: &Array, n: usize, path: &Path) -> Result<(usize, Vec<u32>)> {
    let f = match classes.shape[..] {
        [m, f] if m == n && f > 0 => f,
        _ => {
            return Err(bad(
                path,
                "latents_classes",
                format!("shape {:?} is not {n}×F (one row per image)", classes.shape),
            ));
        }
    };
    if classes.dtype == Dtype::Float {
        // Read as f32, a float64 class near a whole number would be rounded onto it without a word.
        return Err(bad(
            path,
            "latents_classes",
            "holds floats; classes are indices into each factor's values: store them as integers (classes.astype(np.int64)), as DeepMind's file does",
        ));
    }
    let raw = numbers(classes, "latents_classes", path)?;
    if raw
        .iter()
        .any(|&c| c < 0.0 || c.fract() != 0.0 || c > MAX_CLASS as f32)
    {
        return Err(bad(
            path,
            "latents_classes",
            format!(
                "classes must be integers from 0 to {MAX_CLASS} (indices into each factor's values)"
            ),
        ));
    }
    Ok((f, raw.iter().map(|&c| c as u32).collect()))
}

/// The factors of `f` per image from their classes and, when `given`, `latents_values` (else the classes are the
/// values). Six factors within dSprites' sizes are dSprites' grid, named as DeepMind names them, even when a
/// subsample misses a factor's last values; any other count or size is a grid of its own (`factor0`, …).
fn factors_of(
    class: Vec<u32>,
    f: usize,
    given: Option<Array>,
    classes: &Array,
    path: &Path,
) -> Result<Factors> {
    let mut sizes: Vec<usize> = (0..f)
        .map(|j| {
            class
                .iter()
                .skip(j)
                .step_by(f)
                .max()
                .map_or(1, |&m| m as usize + 1)
        })
        .collect();
    let names: Vec<String> = if f == NAMES.len() && sizes.iter().zip(SIZES).all(|(&s, g)| s <= g) {
        sizes = SIZES.to_vec();
        NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..f).map(|j| format!("factor{j}")).collect()
    };
    let values = match given {
        Some(v) if v.shape == classes.shape => numbers(&v, "latents_values", path)?
            .into_iter()
            .map(f64::from)
            .collect(),
        Some(v) => {
            return Err(bad(
                path,
                "latents_values",
                format!(
                    "shape {:?} is not latents_classes' {:?}",
                    v.shape, classes.shape
                ),
            ));
        }
        None => class.iter().map(|&c| c as f64).collect(),
    };
    Factors::new(names, sizes, class, values)
}

/// The first item whose value of a factor is not the grid's for its class (beyond float32's rounding):
/// (item, factor, value, the grid's value).
fn disagreement(factors: &Factors) -> Option<(usize, usize, f64, f64)> {
    (0..factors.len()).find_map(|i| {
        let want = values_of(factors.row(i));
        let got = &factors.values[i * 6..(i + 1) * 6];
        (0..6)
            // NaN disagrees too.
            .find(|&f| {
                let close = (got[f] - want[f]).abs() <= 1e-5 * (1.0 + want[f].abs());
                !close
            })
            .map(|f| (i, f, got[f], want[f]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_order_is_deepminds() {
        // posY varies fastest, shape slowest.
        assert_eq!(classes_of(0), [0, 0, 0, 0, 0, 0]);
        assert_eq!(classes_of(1), [0, 0, 0, 0, 0, 1]);
        assert_eq!(classes_of(32), [0, 0, 0, 0, 1, 0]);
        assert_eq!(classes_of(COUNT - 1), [0, 2, 5, 39, 31, 31]);
        for i in [0, 1, 31, 32, 1023, 1024, 40_960, 245_760, COUNT - 1] {
            assert_eq!(index_of(&classes_of(i)), i);
        }
        let v = values_of(&[0, 2, 5, 39, 31, 0]);
        assert_eq!(v[1], 3.0);
        assert!((v[2] - 1.0).abs() < 1e-12 && (v[3] - std::f64::consts::TAU).abs() < 1e-12);
        assert_eq!((v[4], v[5]), (1.0, 0.0));
    }

    fn draw(c: [u32; 6]) -> Vec<u8> {
        let mut img = vec![0u8; SIDE * SIDE];
        render(&c, &mut img);
        img
    }

    fn area(img: &[u8]) -> usize {
        img.iter().map(|&v| v as usize).sum()
    }

    #[test]
    fn sprites_stay_inside_and_move_with_their_factors() {
        for shape in 0..3 {
            for scale in [0, 5] {
                for orient in [0, 7, 13] {
                    for (x, y) in [(0, 0), (31, 31), (0, 31)] {
                        let img = draw([0, shape, scale, orient, x, y]);
                        let a = area(&img);
                        assert!(a > 20, "shape {shape} scale {scale}: {a} pixels");
                        // Nothing touches the border: no sprite is cut off.
                        for i in 0..SIDE {
                            for j in [0, SIDE - 1] {
                                assert_eq!(img[i * SIDE + j] + img[j * SIDE + i], 0);
                            }
                        }
                    }
                }
            }
        }
        // The square's area grows as scale² (20² pixels at scale 1, 10² at 0.5).
        assert_eq!(area(&draw([0, 0, 5, 0, 10, 10])), 400);
        assert_eq!(area(&draw([0, 0, 0, 0, 10, 10])), 100);
        // Every step of every factor but colour changes the picture (DeepMind chose its grid so).
        for f in 1..6 {
            for c in 0..SIZES[f] as u32 - 1 {
                let mut a = [0, 1, 2, 5, 16, 16];
                a[f] = c;
                let mut b = a;
                b[f] = c + 1;
                if f == 3 && c + 1 == 39 {
                    continue; // 2π is 0 again, as in DeepMind's grid.
                }
                assert_ne!(draw(a), draw(b), "factor {f}: {c} and {}", c + 1);
            }
        }
        // A shift of one position moves the sprite without changing its shape.
        let (a, b) = (draw([0, 2, 3, 5, 4, 9]), draw([0, 2, 3, 5, 4, 10]));
        assert!(area(&a).abs_diff(area(&b)) <= area(&a) / 10);
    }

    #[test]
    fn subsamples_are_distinct_sorted_and_seeded() {
        let a = grid_items(Some(1000), 3).unwrap();
        assert_eq!(a, grid_items(Some(1000), 3).unwrap());
        assert_ne!(a, grid_items(Some(1000), 4).unwrap());
        assert!(a.windows(2).all(|w| w[0] < w[1]) && *a.last().unwrap() < COUNT);
        assert!(grid_items(Some(0), 1).is_err());
        assert!(grid_items(Some(COUNT + 1), 1).is_err());
        assert_eq!(grid_items(None, 1).unwrap().len(), COUNT);
    }
}
