//! Image folders and archives as the user laid them out: class folders whose names are not UTF-8 stay apart,
//! `--input` labels nested folders as training does, links inside archives are read (and those leading
//! outside are counted, never followed), and a `:` in an archive entry's name is an ordinary character.

mod common;

use common::*;
use elbo::data::images::{ImageOptions, load_flat};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A model small enough that a test trains it on a tiny folder in well under a second.
const TINY: [&str; 10] = [
    "--image-size",
    "8",
    "--epochs",
    "1",
    "--hidden",
    "8",
    "--latent",
    "2",
    "--threads",
    "2",
];

/// A 6×6 grey PNG that differs by `seed`.
fn png(seed: u8) -> Vec<u8> {
    let img = image::GrayImage::from_fn(6, 6, |x, y| {
        image::Luma([(x as u8 * 40)
            .wrapping_add(y as u8 * 7)
            .wrapping_add(seed.wrapping_mul(29))])
    });
    let mut b = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
        .unwrap();
    b
}

/// Writes `n` images into each of `dirs` (raw bytes, relative to `root`); returns every file's relative path.
fn images_in(root: &Path, dirs: &[&[u8]], n: u8) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for (k, d) in dirs.iter().enumerate() {
        let dir = root.join(OsStr::from_bytes(d));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let name = [*d, format!("/x{i}.png").as_bytes()].concat();
            std::fs::write(root.join(OsStr::from_bytes(&name)), png(i + 10 * k as u8)).unwrap();
            files.push(name);
        }
    }
    files
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "failed: {}", stderr(o));
    stderr(o)
}

fn train(data: &Path, run_dir: &Path, cache: &Path) -> String {
    ok(&run(elbo()
        .env("ELBO_CACHE_DIR", cache)
        .args(["train", "--conditional", "--data"])
        .arg(data)
        .args(TINY)
        .arg("--out")
        .arg(run_dir)))
}

fn run_classes(run_dir: &Path) -> Vec<String> {
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap())
            .unwrap();
    serde_json::from_value(cfg["data"]["classes"].clone()).unwrap()
}

/// `encode --input`'s rows as (item, class).
fn encoded(run_dir: &Path, input: &Path, out: &Path) -> Vec<(String, String)> {
    ok(&run(elbo()
        .args(["encode"])
        .arg(run_dir)
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out)));
    let text = std::fs::read_to_string(out).unwrap();
    let mut rows = text.lines().map(|l| l.split(',').collect::<Vec<_>>());
    let head = rows.next().unwrap();
    assert_eq!(head[..4], ["index", "item", "label", "class"]);
    rows.map(|r| (r[1].to_string(), r[3].to_string())).collect()
}

/// A tar of `files` (relative paths below `root`) plus extra link entries (path, target, hard).
fn tar_of(root: &Path, files: &[Vec<u8>], links: &[(&[u8], &[u8], bool)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for f in files {
        let bytes = std::fs::read(root.join(OsStr::from_bytes(f))).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, OsStr::from_bytes(f), &bytes[..])
            .unwrap();
    }
    for (path, target, hard) in links {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o777);
        h.set_entry_type(if *hard {
            tar::EntryType::Link
        } else {
            tar::EntryType::Symlink
        });
        b.append_link(&mut h, OsStr::from_bytes(path), OsStr::from_bytes(target))
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// A zip of (raw name, bytes) files and (name, target) symbolic links, as `zip -y` stores them.
fn zip_of(files: &[(&[u8], Vec<u8>)], links: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        let opts = zip::write::SimpleFileOptions::default().name(name);
        z.start_file_with_options(opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    for (name, target) in links {
        z.add_symlink(*name, *target, zip::write::SimpleFileOptions::default())
            .unwrap();
    }
    z.finish().unwrap().into_inner()
}

fn names(path: &Path) -> Vec<String> {
    load_flat(path, &ImageOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .names
}

/// Item 1: two class folders whose names differ only in bytes that are not UTF-8 were one class ("bad�"),
/// and `encode --input` named 16 of 90 items twice.
#[test]
fn class_folders_named_apart_only_by_bytes_not_utf8_stay_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("set");
    let dirs: [&[u8]; 9] = [
        b"c0", b"c1", b"c2", b"c3", b"c4", b"c5", b"c6", b"bad\xff", b"bad\xfe",
    ];
    images_in(&data, &dirs, 10);
    let run_dir = tmp.path().join("run");
    train(&data, &run_dir, &tmp.path().join("cache"));
    let classes = run_classes(&run_dir);
    assert_eq!(classes.len(), 9, "{classes:?}");
    assert!(classes.contains(&r"bad\xff".to_string()) && classes.contains(&r"bad\xfe".to_string()));
    let rows = encoded(&run_dir, &data, &tmp.path().join("codes.csv"));
    assert_eq!(rows.len(), 90);
    let distinct: std::collections::HashSet<&String> = rows.iter().map(|r| &r.0).collect();
    assert_eq!(distinct.len(), 90, "item names repeat");
    for (item, class) in &rows {
        assert_eq!(item.split('/').next().unwrap(), class, "{item}");
    }
    // The escaped name is what --class takes.
    ok(&run(elbo()
        .arg("sample")
        .arg(&run_dir)
        .args(["--class", r"bad\xfe", "--n", "2", "--out"])
        .arg(tmp.path().join("s.png"))));
}

/// Item 1 across sources: a folder, its tar and its zip name the same items the same way, a real backslash
/// included (escaped, so it can never spell another name's escape).
#[test]
fn names_not_utf8_are_escaped_alike_in_folders_zips_and_tars() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("set");
    let files = images_in(&data, &[b"bad\xff", b"bad\\xff", b"ok\x01"], 2);
    let folder = names(&data);
    assert_eq!(
        folder,
        [
            r"bad\\xff/x0.png",
            r"bad\\xff/x1.png",
            r"bad\xff/x0.png",
            r"bad\xff/x1.png",
            r"ok\x01/x0.png",
            r"ok\x01/x1.png"
        ]
    );
    let tar = tmp.path().join("set.tar");
    std::fs::write(&tar, tar_of(&data, &files, &[])).unwrap();
    assert_eq!(names(&tar), folder);
    // Written on Unix, where `\` is part of a name.
    let zipped: Vec<(&[u8], Vec<u8>)> = files
        .iter()
        .map(|f| {
            (
                &f[..],
                std::fs::read(data.join(OsStr::from_bytes(f))).unwrap(),
            )
        })
        .collect();
    let zip = tmp.path().join("set.zip");
    std::fs::write(&zip, zip_of(&zipped, &[])).unwrap();
    assert_eq!(names(&zip), folder);
}

/// Item 2: `--input` labelled `a/b/x0.png` by its direct parent `b` (training says `a`), and a folder
/// `a/2019/` made `score` refuse with "class '2019' is not one of the run's classes".
#[test]
fn input_items_take_the_class_training_gives_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("set");
    images_in(
        &data,
        &[
            b"train/a/b",
            b"train/a/2019",
            b"train/c",
            b"test/a/b",
            b"test/a/2019",
            b"test/c",
        ],
        3,
    );
    let run_dir = tmp.path().join("run");
    train(&data, &run_dir, &tmp.path().join("cache"));
    assert_eq!(run_classes(&run_dir), ["a", "c"]);
    // New images of one class, in their class folder.
    let one = tmp.path().join("new");
    images_in(&one, &[b"a/b", b"a/2019"], 2);
    // The test folder, the whole split layout, and the new images.
    for (k, input) in [data.join("test"), data.clone(), one].iter().enumerate() {
        let rows = encoded(&run_dir, input, &tmp.path().join(format!("codes{k}.csv")));
        assert!(!rows.is_empty());
        for (item, class) in &rows {
            let want = if item.contains("c/") { "c" } else { "a" };
            assert_eq!(class, want, "{} {item}", input.display());
        }
        ok(&run(elbo()
            .arg("score")
            .arg(&run_dir)
            .arg("--input")
            .arg(input)
            .arg("--out")
            .arg(tmp.path().join(format!("scores{k}.csv")))));
    }
}

/// Item 8: a tar of a folder with one hard and one symbolic link gave 10 items where the folder gives 12,
/// without a word; a `zip -y` symbolic link failed as an image that does not decode.
#[test]
fn links_inside_archives_are_read_as_the_folder_reads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("set");
    let files = images_in(&data, &[b"a", b"b"], 5);
    std::fs::hard_link(data.join("a/x0.png"), data.join("a/hard.png")).unwrap();
    std::os::unix::fs::symlink("../a/x1.png", data.join("b/soft.png")).unwrap();
    let folder = names(&data);
    assert_eq!(folder.len(), 12);
    // In a folder, a link named like an image that leads nowhere is named as such (was "No such file").
    std::os::unix::fs::symlink("nothing.png", data.join("b/dangling.png")).unwrap();
    let e = load_flat(&data, &ImageOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dangling.png: a symbolic link to nothing"),
        "{e}"
    );
    std::fs::remove_file(data.join("b/dangling.png")).unwrap();
    let tar = tmp.path().join("set.tar");
    let links: [(&[u8], &[u8], bool); 2] = [
        (b"a/hard.png", b"a/x0.png", true),
        (b"b/soft.png", b"../a/x1.png", false),
    ];
    std::fs::write(&tar, tar_of(&data, &files, &links)).unwrap();
    let from_tar = load_flat(&tar, &ImageOptions::default()).unwrap();
    let from_folder = load_flat(&data, &ImageOptions::default()).unwrap();
    assert_eq!(from_tar.names, folder);
    assert_eq!(
        from_tar.values, from_folder.values,
        "links read their targets' pixels"
    );
    // A link to a file not named like an image reads that file (a folder would decode it too); the tar
    // holds only images while it is first read, so this one comes from a second pass.
    std::fs::write(data.join("notes.bin"), png(99)).unwrap();
    std::os::unix::fs::symlink("../notes.bin", data.join("b/notes.png")).unwrap();
    let mut with_notes = files.clone();
    with_notes.push(b"notes.bin".to_vec());
    let more: [(&[u8], &[u8], bool); 3] =
        [links[0], links[1], (b"b/notes.png", b"../notes.bin", false)];
    std::fs::write(&tar, tar_of(&data, &with_notes, &more)).unwrap();
    let from_tar = load_flat(&tar, &ImageOptions::default()).unwrap();
    let from_folder = load_flat(&data, &ImageOptions::default()).unwrap();
    assert_eq!(from_tar.names.len(), 13);
    assert_eq!(from_tar.names, from_folder.names);
    assert_eq!(from_tar.values, from_folder.values);
    let zip = tmp.path().join("set.zip");
    let zipped: Vec<(&[u8], Vec<u8>)> = files
        .iter()
        .map(|f| {
            (
                &f[..],
                std::fs::read(data.join(OsStr::from_bytes(f))).unwrap(),
            )
        })
        .collect();
    std::fs::write(&zip, zip_of(&zipped, &[("b/soft.png", "../a/x1.png")])).unwrap();
    let from_zip = names(&zip);
    assert_eq!(from_zip.len(), 11);
    assert!(from_zip.contains(&"b/soft.png".to_string()));
}

/// Item 8, hostile: links leading outside the archive, to a folder, nowhere, or round in a loop are never
/// followed; one line counts them, and the archive's own images train.
#[test]
fn links_leading_out_of_an_archive_are_counted_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("set");
    let files = images_in(&data, &[b"a", b"b"], 4);
    let links: [(&[u8], &[u8], bool); 7] = [
        (b"a/out.png", b"../../../../etc/passwd", false),
        (b"a/abs.png", b"/etc/passwd", false),
        (b"a/hard_out.png", b"../x.png", true),
        (b"a/loop1.png", b"loop2.png", false),
        (b"a/loop2.png", b"loop1.png", false),
        (b"b/dir", b"../a", false),
        (b"b/dir_hard.png", b"a", true),
    ];
    let tar = tmp.path().join("set.tar");
    std::fs::write(&tar, tar_of(&data, &files, &links)).unwrap();
    assert_eq!(names(&tar).len(), 8);
    let err = ok(&run(elbo()
        .env("ELBO_CACHE_DIR", tmp.path().join("cache"))
        .args(["train", "--conditional", "--data"])
        .arg(&tar)
        .args(TINY)
        .arg("--out")
        .arg(tmp.path().join("run"))));
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("links in it")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("7 links")
            && lines[0].contains("3 lead outside")
            && lines[0].contains("2 lead to a folder")
            && lines[0].contains("2 are in a loop"),
        "{}",
        lines[0]
    );
}

/// Item 19: `set/img0:0.png` in a zip was refused as "absolute, or with '..'"; where a path is refused, the
/// line says why.
#[test]
fn a_colon_in_an_archive_entry_is_an_ordinary_character() {
    let tmp = tempfile::tempdir().unwrap();
    let zip = tmp.path().join("set.zip");
    let files: Vec<(&[u8], Vec<u8>)> =
        vec![(b"set/img0:0.png", png(1)), (b"set/img0:1.png", png(2))];
    std::fs::write(&zip, zip_of(&files, &[])).unwrap();
    assert_eq!(names(&zip), ["set/img0:0.png", "set/img0:1.png"]);
    for (bad, why) in [
        (&b"../x.png"[..], "it has a '..' component"),
        (b"C:/x.png", "Windows drive"),
        (b"/x.png", "it is absolute"),
    ] {
        let mut files = files.clone();
        files.push((bad, png(3)));
        std::fs::write(&zip, zip_of(&files, &[])).unwrap();
        let e = load_flat(&zip, &ImageOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsafe path") && e.contains(why), "{e}");
    }
}
