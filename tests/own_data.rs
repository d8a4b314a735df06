//! The user's own data through the library's loaders: image folders and archives, NumPy files and tables, and
//! every kind of bad input the loaders must refuse with a clear error instead of a panic.

mod common;

use elbo::data::images::{self, Found, ImageOptions};
use elbo::data::{Dataset, ItemShape, Kind, Values, numpy, table};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A PNG or JPEG (by `ext`) of `w`×`h` pixels; grey images have R = G = B.
fn image_bytes(w: u32, h: u32, colour: bool, seed: u8, ext: &str) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v = (x as u8)
            .wrapping_mul(9)
            .wrapping_add((y as u8).wrapping_mul(5))
            .wrapping_add(seed);
        if colour {
            image::Rgb([v, 255 - v, seed.wrapping_mul(40)])
        } else {
            image::Rgb([v, v, v])
        }
    });
    let mut b = Vec::new();
    let fmt = if ext == "png" {
        image::ImageFormat::Png
    } else {
        image::ImageFormat::Jpeg
    };
    if colour {
        img.write_to(&mut std::io::Cursor::new(&mut b), fmt)
            .unwrap();
    } else {
        image::DynamicImage::ImageRgb8(img)
            .to_luma8()
            .write_to(&mut std::io::Cursor::new(&mut b), fmt)
            .unwrap();
    }
    b
}

/// A folder with train/ and test/ splits of two classes, PNG and JPEG, grey and colour, odd sizes.
fn faces_folder(root: &Path) {
    let mut k = 0u8;
    for (split, n) in [("train", 5), ("test", 2)] {
        for class in ["cats", "dogs"] {
            let d = root.join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            for i in 0..n {
                let ext = if i % 2 == 0 { "png" } else { "jpg" };
                let colour = class == "dogs";
                std::fs::write(
                    d.join(format!("{i:03}.{ext}")),
                    image_bytes(23 + i, 17 + 2 * i, colour, k, ext),
                )
                .unwrap();
                k = k.wrapping_add(17);
            }
        }
    }
}

fn zip_folder(root: &Path, out: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default();
    let mut files = Vec::new();
    collect(root, root, &mut files);
    for (rel, p) in files {
        z.start_file(format!("photos/{rel}"), opts).unwrap();
        z.write_all(&std::fs::read(p).unwrap()).unwrap();
    }
    z.finish().unwrap();
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(root, &p, out);
        } else {
            out.push((
                p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                p,
            ));
        }
    }
}

fn tar_gz_folder(root: &Path, out: &Path) {
    let f = std::fs::File::create(out).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    t.append_dir_all("photos", root).unwrap();
    t.into_inner().unwrap().finish().unwrap();
}

fn opts(size: usize) -> ImageOptions {
    ImageOptions {
        size: Some((size, size)),
        ..Default::default()
    }
}

fn split(found: Found) -> (Dataset, Dataset) {
    match found {
        Found::Split(a, b) => (a, b),
        Found::One(_) => panic!("expected train/ and test/ splits"),
    }
}

#[test]
fn image_folder_zip_and_tar_give_the_same_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("faces");
    faces_folder(&root);
    let (train, test) = split(images::load(&root, &opts(12)).unwrap());
    assert_eq!((train.len(), test.len()), (10, 4));
    assert_eq!(train.classes, ["cats", "dogs"]);
    assert_eq!(
        train.labels.as_deref(),
        Some(&[0, 0, 0, 0, 0, 1, 1, 1, 1, 1][..])
    );
    // The dogs are in colour, so the default is three channels.
    assert_eq!(
        train.shape,
        ItemShape {
            height: 12,
            width: 12,
            channels: 3
        }
    );
    assert_eq!(train.kind, Kind::Image);
    let zip = tmp.path().join("faces.zip");
    zip_folder(&root, &zip);
    let tgz = tmp.path().join("faces.tar.gz");
    tar_gz_folder(&root, &tgz);
    for archive in [&zip, &tgz] {
        let (a, b) = split(images::load(archive, &opts(12)).unwrap());
        assert_eq!(a.values, train.values, "{}", archive.display());
        assert_eq!(a.labels, train.labels);
        assert_eq!(b.values, test.values);
        assert_eq!(a.names, train.names);
    }
    // Grey on request; without a size, different image sizes are refused with a hint.
    let grey = ImageOptions {
        channels: Some(1),
        ..opts(8)
    };
    let (g, _) = split(images::load(&root, &grey).unwrap());
    assert_eq!(g.shape, ItemShape::grey(8, 8));
    let e = images::load(&root, &ImageOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--image-size"), "{e}");
    // A 64x48 request keeps that aspect: height 6, width 4.
    let (r, _) = split(
        images::load(
            &root,
            &ImageOptions {
                size: Some((6, 4)),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    assert_eq!((r.shape.height, r.shape.width), (6, 4));
}

#[test]
fn crop_then_resize_is_the_celeba_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("celeb");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..3u8 {
        std::fs::write(
            root.join(format!("{i:06}.jpg")),
            image_bytes(30, 36, true, i, "jpg"),
        )
        .unwrap();
    }
    let o = ImageOptions {
        crop: Some(20),
        ..opts(10)
    };
    let Found::One(ds) = images::load(&root, &o).unwrap() else {
        panic!("no splits here")
    };
    assert_eq!(
        ds.shape,
        ItemShape {
            height: 10,
            width: 10,
            channels: 3
        }
    );
    assert!(
        ds.labels.is_none(),
        "a folder without class subfolders is unlabelled"
    );
    let e = images::load(
        &root,
        &ImageOptions {
            crop: Some(31),
            ..opts(10)
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("000000.jpg") && e.contains("--crop 31"), "{e}");
}

fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    use npyz::WriterBuilder;
    let f = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(f)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn npy_bytes<T: npyz::AutoSerialize + Copy>(shape: &[u64], data: &[T]) -> Vec<u8> {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    write_npy(tmp.path(), shape, data);
    std::fs::read(tmp.path()).unwrap()
}

#[test]
fn numpy_arrays_in_every_layout() {
    let tmp = tempfile::tempdir().unwrap();
    // uint8 N×H×W: grey images.
    let p = tmp.path().join("x.npy");
    let px: Vec<u8> = (0..4 * 3 * 2).map(|v| v as u8 * 10).collect();
    write_npy(&p, &[4, 3, 2], &px);
    let Found::One(ds) = numpy::load(&p, None).unwrap() else {
        panic!()
    };
    assert_eq!((ds.len(), ds.shape), (4, ItemShape::grey(3, 2)));
    assert_eq!(ds.values, Values::U8(px.clone().into()));
    // float32 N×H×W×C in [0, 1], and the same pixels as N×C×H×W.
    let f: Vec<f32> = (0..2 * 2 * 2 * 3).map(|v| v as f32 / 24.0).collect();
    write_npy(&p, &[2, 2, 2, 3], &f);
    let Found::One(nhwc) = numpy::load(&p, None).unwrap() else {
        panic!()
    };
    assert_eq!(
        nhwc.shape,
        ItemShape {
            height: 2,
            width: 2,
            channels: 3
        }
    );
    let mut chw = vec![0f32; f.len()];
    for n in 0..2 {
        for y in 0..2 {
            for x in 0..2 {
                for c in 0..3 {
                    chw[n * 12 + c * 4 + y * 2 + x] = f[n * 12 + (y * 2 + x) * 3 + c];
                }
            }
        }
    }
    write_npy(&p, &[2, 3, 2, 2], &chw);
    let Found::One(nchw) = numpy::load(&p, None).unwrap() else {
        panic!()
    };
    assert_eq!(nchw.values, nhwc.values, "N×C×H×W is transposed to N×H×W×C");
    // An .npz in Keras's mnist.npz layout, with labels.
    let npz = tmp.path().join("mnist.npz");
    common::npz(
        &npz,
        &[
            ("x_train", npy_bytes(&[3, 2, 2], &[7u8; 12])),
            ("y_train", npy_bytes(&[3], &[0i64, 2, 1])),
            ("x_test", npy_bytes(&[1, 2, 2], &[9u8; 4])),
            ("y_test", npy_bytes(&[1], &[2i64])),
        ],
    );
    let Found::Split(tr, te) = numpy::load(&npz, None).unwrap() else {
        panic!()
    };
    assert_eq!(tr.labels.as_deref(), Some(&[0, 2, 1][..]));
    assert_eq!(tr.classes, ["0", "1", "2"]);
    assert_eq!(te.len(), 1);
    // N×D floats outside [0, 1] are a table to standardise.
    write_npy(&p, &[3, 2], &[1.5f64, -2.0, 3.0, 4.0, 0.0, 9.0]);
    let Found::One(t) = numpy::load(&p, None).unwrap() else {
        panic!()
    };
    assert_eq!((t.kind, t.shape), (Kind::Table, ItemShape::grey(1, 2)));
}

#[test]
fn hostile_arrays_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.npy");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            common::raw_npy(
                "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }",
                b"\x80\x04\x95cos\nsystem\n",
            ),
            "pickled",
        ),
        (
            common::raw_npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000), }",
                &[0; 16],
            ),
            "more than the file holds",
        ),
        (
            common::raw_npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
                &[0; 5],
            ),
            "bad.npy",
        ),
        (b"not numpy at all".to_vec(), "not a NumPy array"),
    ];
    for (bytes, needle) in cases {
        std::fs::write(&p, bytes).unwrap();
        let e = numpy::load(&p, None).unwrap_err().to_string();
        assert!(e.contains(needle) && e.contains("bad.npy"), "{needle}: {e}");
    }
    // A Fortran-order array is read in NumPy's (C) order of its items.
    let column_major = |descr: &str, shape: &str, bytes: Vec<u8>| {
        let dict = format!("{{'descr': '{descr}', 'fortran_order': True, 'shape': {shape}, }}");
        std::fs::write(&p, common::raw_npy(&dict, &bytes)).unwrap();
    };
    column_major(
        "<f4",
        "(2, 3)",
        [0.0f32, 0.3, 0.1, 0.4, 0.2, 0.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    );
    let Found::One(ds) = numpy::load(&p, None).unwrap() else {
        panic!("one array, one set")
    };
    assert_eq!(
        ds.values,
        elbo::data::Values::F32(vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    );
    write_npy(&p, &[2, 2], &[0.5f32, f32::NAN, 0.1, 0.2]);
    let e = numpy::load(&p, None).unwrap_err().to_string();
    assert!(e.contains("non-finite") && e.contains("item 0"), "{e}");
    write_npy(&p, &[2, 2, 2, 5], &[0.5f32; 40]);
    let e = numpy::load(&p, None).unwrap_err().to_string();
    assert!(e.contains("--layout"), "{e}");
    // Integers float32 cannot all hold (timestamps, ids) are refused by position, from a file as from memory,
    // where two neighbours would have become one value; up to 2^24 they are exact and read.
    write_npy(&p, &[2, 2], &[1i64, 2, 3, (1 << 24) + 1]);
    let e = numpy::load(&p, None).unwrap_err().to_string();
    assert!(
        e.contains("the integer 16777217 at [1, 1] is beyond ±16777216"),
        "{e}"
    );
    // Named by its NumPy index whichever order the file holds: a[1, 0] is the second value of a column-major file.
    column_major(
        "<i8",
        "(2, 2)",
        [1i64, (1 << 24) + 1, 3, 4]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    );
    let e = numpy::load(&p, None).unwrap_err().to_string();
    assert!(e.contains("the integer 16777217 at [1, 0]"), "{e}");
    // A finite float64 beyond float32's range would become inf: named by its index, in either order.
    write_npy(&p, &[2, 2], &[1.0f64, 2.0, 1e39, 3.0]);
    let e = numpy::load(&p, None).unwrap_err().to_string();
    assert!(e.contains("at [1, 0] is beyond float32's range"), "{e}");
    column_major(
        "<f8",
        "(2, 2)",
        [1.0f64, 1e39, 2.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    );
    let e = numpy::load(&p, None).unwrap_err().to_string();
    assert!(e.contains("at [1, 0] is beyond float32's range"), "{e}");
    write_npy(&p, &[2, 2], &[1u64, 2, 3, 1 << 24]);
    assert!(numpy::load(&p, None).is_ok());
    let labelled = |labels: Vec<i64>| elbo::data::numpy::MemArray {
        labels: Some(elbo::data::numpy::MemLabels::Int(labels)),
        ..elbo::data::numpy::MemArray::uint8(vec![2, 2], vec![0, 1, 2, 3])
    };
    let e = numpy::load_memory(
        vec![labelled(vec![1 << 24, (1 << 24) + 1])],
        None,
        Path::new("x.npz"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("labels of x: label 1 is 16777217: labels must be integers"),
        "{e}"
    );
}

#[test]
fn tables_name_the_bad_cell() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("sensors.csv");
    std::fs::write(&p, "t,a,b,state\n1,0.5,2,ok\n2,0.7,x,bad\n").unwrap();
    let e = table::load(&p, Some("state"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sensors.csv: line 3, column 'b'"), "{e}");
    std::fs::write(&p, "t,a,b,state\n1,0.5,2,ok\n2,0.7,3\n").unwrap();
    let e = table::load(&p, Some("state"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3") && e.contains("ragged"), "{e}");
    let e = table::load(&p, Some("nope"), None).unwrap_err().to_string();
    assert!(e.contains("no column named 'nope'"), "{e}");
}

/// A PNG whose header claims `w`×`h` pixels, with a tiny body: a decompression bomb to refuse.
fn claimed_png(w: u32, h: u32) -> Vec<u8> {
    let mut b = image_bytes(1, 1, false, 0, "png");
    // IHDR data starts at byte 16: width, height; then its CRC over type and data at 29.
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&b[12..29]);
    b[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    b
}

#[test]
fn bad_images_are_named_or_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("imgs");
    std::fs::create_dir_all(&root).unwrap();
    // Empty folder, then one with no image.
    let e = images::load(&root, &opts(4)).unwrap_err().to_string();
    assert!(e.contains("no images found"), "{e}");
    std::fs::write(root.join("readme.txt"), "hello").unwrap();
    assert!(
        images::load(&root, &opts(4))
            .unwrap_err()
            .to_string()
            .contains("no images found")
    );
    for i in 0..3u8 {
        std::fs::write(
            root.join(format!("{i}.png")),
            image_bytes(6, 5, false, i, "png"),
        )
        .unwrap();
    }
    let good = image_bytes(6, 5, false, 9, "png");
    std::fs::write(root.join("broken.png"), &good[..good.len() / 2]).unwrap();
    let e = images::load(&root, &opts(4)).unwrap_err().to_string();
    assert!(e.contains("broken.png") && e.contains("--skip-bad"), "{e}");
    let skip = ImageOptions {
        skip_bad: true,
        ..opts(4)
    };
    let Found::One(ds) = images::load(&root, &skip).unwrap() else {
        panic!()
    };
    assert_eq!(ds.len(), 3);
    std::fs::remove_file(root.join("broken.png")).unwrap();
    // A decompression bomb is refused from its header.
    std::fs::write(root.join("bomb.png"), claimed_png(30_000, 30_000)).unwrap();
    let e = images::load(&root, &opts(4)).unwrap_err().to_string();
    assert!(
        e.contains("bomb.png") && e.contains("decompression bomb"),
        "{e}"
    );
    std::fs::remove_file(root.join("bomb.png")).unwrap();
    // 16-bit PNG and CMYK JPEG are converted.
    let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(6, 5, |x, _| {
        image::Rgb([x as u16 * 9000, 0, 65535])
    });
    deep.save(root.join("deep.png")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/images/cmyk.jpg"),
        root.join("cmyk.jpg"),
    )
    .unwrap();
    let Found::One(ds) = images::load(&root, &opts(4)).unwrap() else {
        panic!()
    };
    assert_eq!((ds.len(), ds.shape.channels), (5, 3));
    let Values::U8(v) = &ds.values else { panic!() };
    let deep_at = ds.names.iter().position(|n| n == "deep.png").unwrap();
    assert_eq!(v[deep_at * 48 + 2], 255, "16-bit blue 65535 becomes 255");
}

#[test]
#[cfg(unix)]
fn symlink_loops_and_unsafe_archives_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("imgs");
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("a/0.png"), image_bytes(4, 4, false, 0, "png")).unwrap();
    std::os::unix::fs::symlink("..", root.join("a/up")).unwrap();
    let e = images::load(&root, &opts(4)).unwrap_err().to_string();
    assert!(e.contains("symbolic link loop") && e.contains("up"), "{e}");
    std::fs::remove_file(root.join("a/up")).unwrap();
    std::os::unix::fs::symlink("x.png", root.join("a/y.png")).unwrap();
    std::os::unix::fs::symlink("y.png", root.join("a/x.png")).unwrap();
    let e = images::load(&root, &opts(4)).unwrap_err().to_string();
    assert!(
        e.contains("symbolic link loop") && e.contains(".png"),
        "{e}"
    );
    // A zip entry climbing out of the archive.
    let zip = tmp.path().join("evil.zip");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&zip).unwrap());
    z.start_file("../../evil.png", zip::write::SimpleFileOptions::default())
        .unwrap();
    z.write_all(&image_bytes(4, 4, false, 0, "png")).unwrap();
    z.finish().unwrap();
    let e = images::load(&zip, &opts(4)).unwrap_err().to_string();
    assert!(e.contains("evil.zip") && e.contains("unsafe path"), "{e}");
}

#[test]
fn the_cache_key_follows_the_files_and_the_settings() {
    use elbo::data::cache;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("imgs");
    std::fs::create_dir_all(root.join("a")).unwrap();
    std::fs::write(root.join("a/0.png"), image_bytes(4, 4, false, 0, "png")).unwrap();
    std::fs::write(root.join("a/1.png"), image_bytes(4, 4, false, 1, "png")).unwrap();
    let k = |o: &ImageOptions| cache::key(&root, o).unwrap().unwrap();
    let base = k(&opts(4));
    assert_eq!(base, k(&opts(4)), "stable");
    assert_ne!(base, k(&opts(3)), "settings are part of the key");
    std::fs::write(root.join("a/1.png"), image_bytes(5, 4, false, 1, "png")).unwrap();
    let changed = k(&opts(4));
    assert_ne!(base, changed, "a changed image makes a new key");
    std::fs::write(root.join("a/2.png"), image_bytes(4, 4, false, 2, "png")).unwrap();
    assert_ne!(changed, k(&opts(4)), "an added image makes a new key");
    // An entry round-trips, and a damaged entry is ignored rather than trusted.
    let found = images::load(&root, &opts(4)).unwrap();
    let key = k(&opts(4));
    let dir = tmp.path().join("cache");
    // SAFETY of the environment: this test binary's other tests do not read ELBO_CACHE_DIR.
    unsafe { std::env::set_var("ELBO_CACHE_DIR", &dir) };
    cache::store(&key, &found, &[]).unwrap();
    assert_eq!(cache::load(&key), Some((found, false)));
    // An entry is its key's alone: a copy or a link under another key is not trusted.
    let other = "0123456789abcdef0123456789abcdef";
    let theirs = dir.join(format!("{other}.safetensors"));
    std::fs::copy(dir.join(format!("{key}.safetensors")), &theirs).unwrap();
    assert_eq!(cache::load(other), None, "a copied entry");
    std::fs::remove_file(&theirs).unwrap();
    std::os::unix::fs::symlink(dir.join(format!("{key}.safetensors")), &theirs).unwrap();
    assert_eq!(cache::load(other), None, "a linked entry");
    std::fs::remove_file(&theirs).unwrap();
    // A FIFO in an entry's place is passed over, not opened (which would wait for a writer forever).
    let fifo = std::process::Command::new("mkfifo")
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(fifo.success());
    assert_eq!(cache::load(other), None, "a FIFO");
    std::fs::remove_file(&theirs).unwrap();
    let entry = dir.join(format!("{key}.safetensors"));
    let bytes = std::fs::read(&entry).unwrap();
    let mut flipped = bytes.clone();
    let at = flipped.len() - 10;
    flipped[at] ^= 0x55;
    std::fs::write(&entry, &flipped).unwrap();
    assert_eq!(
        cache::load(&key),
        None,
        "a pixel changed inside the entry is caught by its md5"
    );
    // An item renamed in the header (same length, so every offset still holds) is caught too.
    let at = bytes
        .windows(4)
        .position(|w| w == b".png")
        .expect("an item name in the header");
    let mut renamed = bytes.clone();
    renamed[at - 1] = if renamed[at - 1] == b'7' { b'8' } else { b'7' };
    std::fs::write(&entry, &renamed).unwrap();
    assert_eq!(cache::load(&key), None, "a renamed item");
    std::fs::write(&entry, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(cache::load(&key), None);
    // A folder without its own test split is cached split, and every run maps both splits from that entry:
    // the same items as decoding without a cache, none of them copied onto the heap.
    for i in 3..12u8 {
        let img = image_bytes(4, 4, i % 2 == 0, i, "png");
        std::fs::write(root.join(format!("a/{i}.png")), img).unwrap();
    }
    let spec = elbo::data::DataSpec {
        path: root.clone(),
        images: opts(4),
        layout: None,
        label_column: None,
        test_fraction: 0.25,
        test_fraction_given: false,
        split_seed: Some(elbo::data::source::SPLIT_SEED),
    };
    let split = |run_seed: u64| {
        let l = elbo::data::source::load(&spec, run_seed).unwrap();
        (l.train, l.test)
    };
    let mapped = |d: &Dataset| matches!(&d.values, Values::U8(b) if b.is_mapped());
    let first = split(1);
    let second = split(2);
    assert!(mapped(&first.0) && mapped(&first.1) && mapped(&second.0));
    assert_eq!(
        first, second,
        "the held-out split does not follow the run's seed"
    );
    unsafe { std::env::set_var("ELBO_CACHE_DIR", "off") };
    let uncached = split(1);
    assert!(!mapped(&uncached.0));
    assert_eq!(first, uncached, "the cache changes nothing a run sees");
    assert_eq!((first.0.len(), first.1.len()), (9, 3));
    // Runs recorded before the split was fixed keep drawing it with their own seed.
    let legacy = elbo::data::DataSpec {
        split_seed: None,
        ..spec.clone()
    };
    let old = |seed| elbo::data::source::load(&legacy, seed).unwrap().test;
    assert_ne!(old(1).names, old(2).names);
    unsafe { std::env::set_var("ELBO_CACHE_DIR", &dir) };
    // Decoded straight into the cache (never held whole on the heap): grey images with their own labelled
    // splits, and a legacy run's unsplit entry, give what decoding into memory gives.
    let grey = tmp.path().join("grey");
    for (split, n) in [("train", 7u8), ("val", 3)] {
        for class in ["x", "y"] {
            std::fs::create_dir_all(grey.join(split).join(class)).unwrap();
            for i in 0..n {
                let seed = i * 3 + class.len() as u8 + n;
                std::fs::write(
                    grey.join(format!("{split}/{class}/{i}.png")),
                    image_bytes(6, 5, false, seed, "png"),
                )
                .unwrap();
            }
        }
    }
    for (path, images, split_seed) in [
        (
            &grey,
            ImageOptions::default(),
            Some(elbo::data::source::SPLIT_SEED),
        ),
        (&root, opts(4), None),
    ] {
        let spec = elbo::data::DataSpec {
            path: path.clone(),
            images,
            split_seed,
            ..spec.clone()
        };
        let load = || {
            let l = elbo::data::source::load(&spec, 5).unwrap();
            (l.train, l.test)
        };
        let (decoded, again) = (load(), load());
        unsafe { std::env::set_var("ELBO_CACHE_DIR", "off") };
        let uncached = load();
        unsafe { std::env::set_var("ELBO_CACHE_DIR", &dir) };
        assert_eq!(decoded, uncached, "{}", path.display());
        assert_eq!(again, uncached, "{}", path.display());
        if split_seed.is_some() {
            assert!(mapped(&decoded.0) && mapped(&decoded.1));
            assert_eq!(decoded.0.shape.channels, 1);
            assert_eq!(decoded.0.classes, ["x", "y"]);
            assert_eq!((decoded.0.len(), decoded.1.len()), (14, 6));
        }
    }
    let spools: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".safetensors"))
        .map(|e| e.file_name())
        .collect();
    assert!(
        spools.is_empty(),
        "nothing left beside the entries: {spools:?}"
    );
}
