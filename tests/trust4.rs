//! Own data that elbo would otherwise have read some other way than the user meant, said or refused: a test
//! fraction for data that brings its own test split, hidden files, a layout for arrays without four axes, and the
//! guesses (axis order, colour) printed in one line.

mod common;

use common::*;
use std::path::Path;

/// A model small enough to train on a few tiny images in well under a second.
const TINY: [&str; 8] = [
    "--epochs",
    "1",
    "--hidden",
    "8",
    "--latent",
    "2",
    "--threads",
    "2",
];

/// A 6×6 PNG that differs by `seed`, grey or colour.
fn png(seed: u8, colour: bool) -> Vec<u8> {
    let img = image::RgbImage::from_fn(6, 6, |x, y| {
        let v = (x as u8 * 40)
            .wrapping_add(y as u8 * 7)
            .wrapping_add(seed.wrapping_mul(29));
        if colour {
            image::Rgb([v, v / 2, 255 - v])
        } else {
            image::Rgb([v, v, v])
        }
    });
    let img = if colour {
        image::DynamicImage::ImageRgb8(img)
    } else {
        image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(img).to_luma8())
    };
    let mut b = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
        .unwrap();
    b
}

fn train(data: &Path, out: &Path, cache: &Path, extra: &[&str]) -> std::process::Output {
    run(elbo()
        .env("ELBO_CACHE_DIR", cache)
        .arg("train")
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(TINY)
        .args(extra))
}

/// Writes `text` to the table `data` and trains a tiny run on it in `run_dir` (its cache beside it), returning
/// what training said.
fn train_table(data: &Path, run_dir: &Path, text: String) -> String {
    std::fs::write(data, text).unwrap();
    let cache = run_dir.with_file_name("cache");
    ok(&train(data, run_dir, &cache, &[]))
}

/// `elbo score RUN --k 8 --input FILE --out -`, which must succeed.
fn score_rows(run_dir: &Path, file: &Path) -> std::process::Output {
    let o = run(elbo()
        .arg("score")
        .arg(run_dir)
        .args(["--k", "8", "--out", "-", "--input"])
        .arg(file));
    ok(&o);
    o
}

/// Copies the folder `from` (files and folders, recursively) to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A table under `header` of `rows` rows of values spread over [-2, 2], one column per header cell (the first
/// a row number when `index`, as pandas' `to_csv` writes it).
fn table(header: &str, rows: usize, index: bool) -> String {
    let columns = header.split(',').count() - usize::from(index);
    let mut text = format!("{header}\n");
    for i in 0..rows {
        let mut cells: Vec<String> = (0..columns)
            .map(|k| (((i * 7 + k * 13) % 17) as f64 / 4.0 - 2.0).to_string())
            .collect();
        if index {
            cells.insert(0, i.to_string());
        }
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    text
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "failed: {}", stderr(o));
    stderr(o)
}

/// `--test-fraction` for data with a test split of its own is refused, not ignored: from a folder (decoded, then
/// again from the cache) and from an `.npz` with `x_test`. Without a split of its own it is used.
#[test]
fn a_test_fraction_is_refused_where_the_data_has_its_own_split() {
    let tmp = tempfile::tempdir().unwrap();
    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("run"));
    let split = tmp.path().join("split");
    for (dir, n) in [("train", 6u8), ("test", 2)] {
        std::fs::create_dir_all(split.join(dir)).unwrap();
        for i in 0..n {
            std::fs::write(split.join(dir).join(format!("{i}.png")), png(i, false)).unwrap();
        }
    }
    for _ in 0..2 {
        let o = train(&split, &out, &cache, &["--test-fraction", "0.3"]);
        assert_user_error(
            &o,
            "--test-fraction 0.3 does not apply to", // …the folder, which has a test split of its own
        );
        assert!(stderr(&o).contains("which has a test split of its own"));
        assert!(!out.join("config.json").exists());
    }
    ok(&train(&split, &out, &cache, &[]));
    let keras = tmp.path().join("k.npz");
    npz(
        &keras,
        &[
            (
                "x_train",
                npy(&[8, 6, 6], (0..288).map(|v| (v % 251) as u8)),
            ),
            ("x_test", npy(&[2, 6, 6], (0..72).map(|v| (v % 13) as u8))),
        ],
    );
    let o = train(
        &keras,
        &tmp.path().join("k"),
        &cache,
        &["--test-fraction", "5"],
    );
    assert_user_error(&o, "--test-fraction 5 does not apply to");
    // A folder without a split of its own holds the fraction out, as before.
    let flat = tmp.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    for i in 0..8 {
        std::fs::write(flat.join(format!("{i}.png")), png(i, false)).unwrap();
    }
    ok(&train(
        &flat,
        &tmp.path().join("f"),
        &cache,
        &["--test-fraction", "0.25"],
    ));
}

/// Hidden files named like images (and hidden folders) are left out, and the line says how many and which.
#[test]
fn hidden_entries_left_out_are_counted_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = tmp.path().join("pics");
    std::fs::create_dir_all(dir.join(".thumbs")).unwrap();
    for i in 0..6 {
        std::fs::write(dir.join(format!("{i}.png")), png(i, false)).unwrap();
    }
    std::fs::write(dir.join(".secret.png"), png(9, false)).unwrap();
    std::fs::write(dir.join(".thumbs/0.png"), png(8, false)).unwrap();
    let err = ok(&train(&dir, &tmp.path().join("a"), &cache, &[]));
    assert!(
        err.contains("elbo: left out 2 hidden entries (.secret.png, …)"),
        "{err}"
    );
    let zip = tmp.path().join("pics.zip");
    let mut members: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("pics/{i}.png"), png(i, false)))
        .collect();
    members.push(("pics/.secret.png".into(), png(9, false)));
    members.push(("__MACOSX/pics/._0.png".into(), vec![0; 10]));
    zip_of(
        &zip,
        &members
            .iter()
            .map(|(n, b)| (n.as_str(), b.clone()))
            .collect::<Vec<_>>(),
    );
    let err = ok(&train(&zip, &tmp.path().join("z"), &cache, &[]));
    assert!(err.contains("elbo: left out 2 hidden entries ("), "{err}");
}

/// `--layout` on an array without four axes is refused; the axis order of a 4-D array is said, and called a
/// guess when the other order would also read; grey and colour images together are said to be read as RGB.
#[test]
fn layouts_and_colour_are_said_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let three = tmp.path().join("three.npy");
    std::fs::write(&three, npy(&[20, 6, 6], (0..720).map(|v| (v % 251) as u8))).unwrap();
    let o = train(&three, &tmp.path().join("a"), &cache, &["--layout", "nchw"]);
    assert_user_error(&o, "--layout nchw applies to 4-D arrays");
    let ambiguous = tmp.path().join("amb.npy");
    std::fs::write(
        &ambiguous,
        npy(&[20, 3, 6, 3], (0..1080).map(|v| (v % 251) as u8)),
    )
    .unwrap();
    let err = ok(&train(&ambiguous, &tmp.path().join("b"), &cache, &[]));
    assert!(
        err.contains("axes read as N×H×W×C (3×6 pixels, 3 channels), a guess: --layout nchw reads the other order"),
        "{err}"
    );
    let torch = tmp.path().join("torch.npy");
    std::fs::write(
        &torch,
        npy(&[20, 3, 6, 6], (0..2160).map(|v| (v % 251) as u8)),
    )
    .unwrap();
    let err = ok(&train(&torch, &tmp.path().join("c"), &cache, &[]));
    assert!(
        err.contains("axes read as N×C×H×W, PyTorch's order (6×6 pixels, 3 channels)")
            && !err.contains("a guess"),
        "{err}"
    );
    let mixed = tmp.path().join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    for i in 0..8 {
        std::fs::write(mixed.join(format!("{i}.png")), png(i, i < 3)).unwrap();
    }
    let err = ok(&train(&mixed, &tmp.path().join("d"), &cache, &[]));
    assert!(
        err.contains("elbo: 3 of 8 images have colour: all are read as RGB"),
        "{err}"
    );
    let err = ok(&train(
        &mixed,
        &tmp.path().join("e"),
        &cache,
        &["--channels", "1"],
    ));
    assert!(!err.contains("have colour"), "{err}");
}

/// Items read for a run take its size and channels; that is said in one line, not done silently.
#[test]
fn items_resized_or_made_grey_for_a_run_are_said() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let grey = tmp.path().join("grey");
    std::fs::create_dir_all(&grey).unwrap();
    for i in 0..8 {
        std::fs::write(grey.join(format!("{i}.png")), png(i, false)).unwrap();
    }
    let run_dir = tmp.path().join("run");
    ok(&train(&grey, &run_dir, &cache, &[]));
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let big = image::RgbImage::from_fn(10, 8, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 90]));
    big.save(other.join("big.png")).unwrap();
    for command in ["encode", "score"] {
        let o = run(elbo()
            .env("ELBO_CACHE_DIR", &cache)
            .arg(command)
            .arg(&run_dir)
            .arg("--input")
            .arg(&other)
            .arg("--out")
            .arg(tmp.path().join(format!("{command}.csv"))));
        let err = ok(&o);
        assert!(
            err.contains("resized 1 of 1 image to 6x6 (it, ")
                && err.contains(
                    "is 8x10; scaled to cover, then centre-cropped), and read 1 image with colour as grey"
                ),
            "{err}"
        );
    }
    // Items already of the run's size and channels are read without a word.
    let o = run(elbo()
        .env("ELBO_CACHE_DIR", &cache)
        .arg("encode")
        .arg(&run_dir)
        .arg("--input")
        .arg(&grey)
        .arg("--out")
        .arg(tmp.path().join("same.csv")));
    assert!(!ok(&o).contains("resized"));
    // Integer levels beyond 255 are scored as v/255, and the line gives the level as written.
    let levels = tmp.path().join("levels.npy");
    std::fs::write(
        &levels,
        npy(
            &[2, 6, 6],
            (0..72).map(|i| if i == 3 { 1000i64 } else { 7 }),
        ),
    )
    .unwrap();
    let o = run(elbo()
        .arg("score")
        .arg(&run_dir)
        .arg("--input")
        .arg(&levels)
        .arg("--out")
        .arg(tmp.path().join("levels.csv")));
    let err = ok(&o);
    assert!(
        err.contains(
            "integer levels outside 0–255 (the first 1000 in item 0) are read as level/255"
        ),
        "{err}"
    );
}

/// Small mistakes get words of their own: a dimension named twice, an empty table, a count given a negative number,
/// `decode` without codes, a malformed weights tag in the explorer.
#[test]
fn small_mistakes_are_named_as_what_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = fixture_run();
    let o = run(elbo()
        .arg("traverse")
        .arg(&run_dir)
        .args(["--dims", "0,0", "--out"])
        .arg(tmp.path().join("t.png")));
    assert_user_error(&o, "--dims names dimension 0 twice");
    let empty = tmp.path().join("empty.csv");
    std::fs::write(&empty, "").unwrap();
    let o = train(
        &empty,
        &tmp.path().join("e"),
        &tmp.path().join("cache"),
        &[],
    );
    assert_user_error(&o, "the table is empty");
    let o = run(elbo()
        .arg("sample")
        .arg(&run_dir)
        .args(["--n", "-1", "--out"])
        .arg(tmp.path().join("s.png")));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unexpected argument '-1' found; --n takes no negative number"),
        "{}",
        stderr(&o)
    );
    let o = run(elbo()
        .arg("decode")
        .arg(&run_dir)
        .arg("--out")
        .arg(tmp.path().join("d.png")));
    assert!(
        stderr(&o).contains("not provided: <--z <Z>|--z-file <FILE>>"),
        "{}",
        stderr(&o)
    );
    // Seeds go from 0 to 2^63 − 1 in every command, as in config files and Python; a number that reads as 0 is
    // refused as written.
    for (args, says) in [
        (
            &["sample", "--seed", "9223372036854775808"][..],
            "9223372036854775808 is too large: seeds go from 0 to 9223372036854775807",
        ),
        (
            &["eval", "--seed", "18446744073709551616"][..],
            "18446744073709551616 is too large: seeds go from 0 to 9223372036854775807",
        ),
    ] {
        let o = run(elbo().arg(args[0]).arg(&run_dir).args(&args[1..]));
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
    }
    let o = run(elbo().args(["train", "--lr", "1e-400"]));
    assert!(
        stderr(&o).contains("1e-400 is too small for a number"),
        "{}",
        stderr(&o)
    );
    let srv = serve_run(&run_dir, &["--points", "20"]);
    // The weights tag in capitals is the same tag.
    let (_, info) = get(&srv.url, "/api/info");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let tag = info["weights"].as_str().unwrap().to_uppercase();
    let (status, body) = get(&srv.url, &format!("/api/reconstruction/0?w={tag}"));
    assert_eq!(status, 200, "{body}");
    for w in ["abc", "nan", "-1"] {
        let (status, body) = get(&srv.url, &format!("/api/reconstruction/0?w={w}"));
        assert_eq!(status, 400, "{w}: {body}");
        assert!(
            body.contains(&format!("w '{w}' is not a weights tag")),
            "{body}"
        );
    }
}

/// `--hidden none` trains without a hidden layer, as a config file's `hidden = []` does.
#[test]
fn no_hidden_layer_is_none_on_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pics");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..8 {
        std::fs::write(dir.join(format!("{i}.png")), png(i, false)).unwrap();
    }
    let out = tmp.path().join("run");
    let o = run(elbo()
        .env("ELBO_CACHE_DIR", tmp.path().join("cache"))
        .arg("train")
        .arg("--data")
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .args(["--epochs", "1", "--latent", "2", "--hidden", "none"]));
    ok(&o);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model"]["hidden"], serde_json::json!([]), "{cfg}");
}

/// Items of classes the run does not have keep their class by name, with no run number made up for it.
#[test]
fn a_class_the_run_lacks_gets_no_made_up_label() {
    let tmp = tempfile::tempdir().unwrap();
    let grey = tmp.path().join("grey");
    std::fs::create_dir_all(&grey).unwrap();
    for i in 0..8 {
        std::fs::write(grey.join(format!("{i}.png")), png(i, false)).unwrap();
    }
    let run_dir = tmp.path().join("run");
    ok(&train(&grey, &run_dir, &tmp.path().join("cache"), &[]));
    let items = tmp.path().join("items.npz");
    npz(
        &items,
        &[
            ("x", npy(&[3, 6, 6], (0..108).map(|v| (v * 3 % 251) as u8))),
            ("y", npy(&[3], [7i64, 7, 3])),
        ],
    );
    let out = tmp.path().join("scores.csv");
    ok(&run(elbo()
        .arg("score")
        .arg(&run_dir)
        .arg("--input")
        .arg(&items)
        .arg("--out")
        .arg(&out)));
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0][..3], ["index", "label", "class"], "{text}");
    let cells: Vec<(&str, &str)> = rows[1..].iter().map(|r| (r[1], r[2])).collect();
    assert_eq!(cells, [("", "7"), ("", "7"), ("", "3")], "{text}");
}

/// MVTec AD's layout (train/good, test/good, test/broken): an unconditional model trains on it, says that the
/// training split never shows `broken`, and scores the test images under their own classes; a conditional model,
/// which would have to learn a class from no items, is refused by name.
#[test]
fn a_class_only_the_test_split_has_is_said_and_refused_where_it_cannot_be_learnt() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("bottle");
    for (split, class, n) in [
        ("train", "good", 8),
        ("test", "good", 2),
        ("test", "broken", 2),
    ] {
        let d = data.join(split).join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            let seed = if class == "broken" { 200 + i } else { i };
            std::fs::write(d.join(format!("{i}.png")), png(seed, false)).unwrap();
        }
    }
    // The defects' masks, beside the splits.
    let masks = data.join("ground_truth/broken");
    std::fs::create_dir_all(&masks).unwrap();
    for i in 0..2 {
        std::fs::write(masks.join(format!("{i}_mask.png")), png(100 + i, false)).unwrap();
    }
    let cache = tmp.path().join("cache");
    let run_dir = tmp.path().join("run");
    let said = ok(&train(&data, &run_dir, &cache, &[]));
    assert!(
        said.contains("class broken is only in test/, not in train/: training never sees it"),
        "{said}"
    );
    let out = tmp.path().join("scores.csv");
    ok(&run(elbo()
        .env("ELBO_CACHE_DIR", &cache)
        .arg("score")
        .arg(&run_dir)
        .arg("--input")
        .arg(data.join("test"))
        .arg("--out")
        .arg(&out)));
    let text = std::fs::read_to_string(&out).unwrap();
    let classes: std::collections::BTreeSet<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(3))
        .collect();
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        ["broken", "good"],
        "{text}"
    );
    // The whole folder: both splits' images under their classes, the masks left out and said to be.
    let whole = tmp.path().join("whole.csv");
    let said = ok(&run(elbo()
        .env("ELBO_CACHE_DIR", &cache)
        .arg("score")
        .arg(&run_dir)
        .arg("--input")
        .arg(&data)
        .arg("--out")
        .arg(&whole)));
    assert!(
        said.contains("2 images outside train/ and test/ (ground_truth/) are not read"),
        "{said}"
    );
    // Without train/ (the category's test images and masks only), the same: the masks left out, and the class
    // folders found below test/.
    let no_train = tmp.path().join("bottle-test");
    for sub in ["test", "ground_truth"] {
        copy_tree(&data.join(sub), &no_train.join(sub));
    }
    let o = run(elbo()
        .env("ELBO_CACHE_DIR", &cache)
        .args(["score", run_dir.to_str().unwrap(), "--out", "-", "--input"])
        .arg(&no_train));
    let said = ok(&o);
    assert!(
        said.contains("2 images outside test/ (ground_truth/) are not read"),
        "{said}"
    );
    let text = String::from_utf8(o.stdout).unwrap();
    let classes: std::collections::BTreeSet<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap())
        .collect();
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        ["broken", "good"],
        "{text}"
    );
    let text = std::fs::read_to_string(&whole).unwrap();
    let rows: Vec<(&str, &str)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[1], c[3])
        })
        .collect();
    assert_eq!(rows.len(), 12, "{text}");
    assert!(!text.contains("mask"), "{text}");
    assert!(
        rows.contains(&("test/broken/0.png", "broken"))
            && rows.contains(&("train/good/0.png", "good")),
        "{text}"
    );
    let o = train(&data, &tmp.path().join("cvae"), &cache, &["--conditional"]);
    assert_user_error(&o, "no training item has class broken");
    assert!(!tmp.path().join("cvae/config.json").exists());
}

/// A row far outside a table's training data (a stuck sensor's 65535) overflows the model's float32 passes: it is
/// scored inf, above every finite score, with a line; never NaN, which sorts as the least unusual.
#[test]
fn an_item_beyond_float32s_reach_scores_inf_not_nan() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run_dir) = (tmp.path().join("sensors.csv"), tmp.path().join("run"));
    train_table(&data, &run_dir, table("a,b,c,d", 300, false));
    let new = tmp.path().join("today.csv");
    std::fs::write(
        &new,
        "a,b,c,d\n0.5,0,-1,1\n2000,0,0,0\n1e30,0,0,0\n65535,-65535,1e20,3e38\n",
    )
    .unwrap();
    let out = tmp.path().join("scores.csv");
    let said = ok(&run(elbo()
        .arg("score")
        .arg(&run_dir)
        .arg("--input")
        .arg(&new)
        .arg("--out")
        .arg(&out)));
    let scores: Vec<f64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    assert!(scores.iter().all(|s| !s.is_nan()), "{scores:?}");
    assert!(scores[0].is_finite(), "{scores:?}");
    assert!(scores[1..].iter().all(|&s| s > scores[0]), "{scores:?}");
    let inf = scores.iter().filter(|s| s.is_infinite()).count();
    assert!(inf >= 1, "{scores:?}");
    assert!(
        said.contains(&format!("{inf} item"))
            && said.contains("scored inf, above every finite score"),
        "{said}"
    );
}

/// `--out -` writes a command's rows to standard output, as `-` means to most tools (`elbo encode RUN --out - |
/// head`), with the closing line on stderr; an image run's `sample --out -` still says that images go to files.
#[test]
fn rows_go_to_standard_output_with_a_dash() {
    let tmp = tempfile::tempdir().unwrap();
    // pandas' `pd.DataFrame(array).to_csv(path)`: column numbers for a header, the row index first.
    let (data, run_dir) = (tmp.path().join("frame.csv"), tmp.path().join("run"));
    let said = train_table(&data, &run_dir, table(",0,1,2", 200, true));
    assert!(said.contains("the header pandas writes"), "{said}");
    assert!(said.contains("is pandas' row index"), "{said}");
    let rd = run_dir.to_str().unwrap();
    let input = data.to_str().unwrap();
    for (args, header, rows) in [
        (vec!["encode", rd, "--input", input], "index,mu_0", 200),
        (vec!["score", rd, "--input", input], "index,neg_elbo", 200),
        (vec!["sample", rd, "--n", "5"], "0,1,2", 5),
        (vec!["decode", rd, "--z", "0,0"], "0,1,2", 1),
    ] {
        let o = run(elbo()
            .current_dir(tmp.path())
            .args(&args)
            .args(["--out", "-"]));
        let said = ok(&o);
        let out = String::from_utf8(o.stdout.clone()).unwrap();
        assert!(out.starts_with(header), "{args:?}: {out}");
        assert_eq!(out.lines().count(), rows + 1, "{args:?}: {out}");
        assert!(said.contains("to standard output"), "{args:?}: {said}");
        assert!(!tmp.path().join("-").exists(), "{args:?}");
    }
    // Images are files only.
    let o = run(elbo().current_dir(tmp.path()).args([
        "sample",
        &common::fixture_run().to_string_lossy(),
        "--out",
        "-",
    ]));
    assert_user_error(&o, "writes images to files, not to standard output");
    assert_user_error(&o, "or .csv for the pixel values as rows");
    // Codes are read from files only; a class column an unconditional model cannot use is said to be unused.
    let fixture = common::fixture_run();
    let decode = |z_file: &str| {
        run(elbo().current_dir(tmp.path()).args([
            "decode",
            fixture.to_str().unwrap(),
            "--z-file",
            z_file,
            "--out",
            "d.png",
        ]))
    };
    assert_user_error(
        &decode("-"),
        "--z-file -: codes are read from a file, not from standard input",
    );
    let codes = tmp.path().join("codes.csv");
    // The fixture's 20 dimensions, under a class column.
    let header: Vec<String> = (0..20).map(|j| format!("mu_{j}")).collect();
    std::fs::write(
        &codes,
        format!(
            "class,{}\n7,{}\n",
            header.join(","),
            vec!["0.5"; 20].join(",")
        ),
    )
    .unwrap();
    let said = ok(&decode(codes.to_str().unwrap()));
    assert!(
        said.contains("class column is not used: this model is not conditional"),
        "{said}"
    );
}

/// An item's score does not depend on where it lies in the file or on what lies beside it: each item draws from
/// its own generator, seeded by `--seed` and its values, so reordering a file or scoring one row alone gives it
/// the same score (to float32's last bits), and two copies of a row score alike.
#[test]
fn an_items_score_does_not_depend_on_its_place() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, run_dir) = (tmp.path().join("sensors.csv"), tmp.path().join("run"));
    train_table(&data, &run_dir, table("a,b,c,d", 300, false));
    let rows = ["0.5,0,-1,1", "1.5,-0.25,0.75,2", "-1,1,1,-1"];
    let score = |order: &[usize]| -> Vec<(f64, f64)> {
        let file = tmp.path().join("new.csv");
        let body: Vec<&str> = order.iter().map(|&i| rows[i]).collect();
        std::fs::write(&file, format!("a,b,c,d\n{}\n", body.join("\n"))).unwrap();
        let o = score_rows(&run_dir, &file);
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| {
                let c: Vec<f64> = l.split(',').map(|v| v.parse().unwrap()).collect();
                (c[1], c[2])
            })
            .collect()
    };
    let forward = score(&[0, 1, 2]);
    let close = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-3 && (a.1 - b.1).abs() < 1e-3;
    let backward = score(&[2, 1, 0]);
    for i in 0..3 {
        assert!(
            close(forward[i], backward[2 - i]),
            "{forward:?} {backward:?}"
        );
    }
    let alone = score(&[2]);
    assert!(close(forward[2], alone[0]), "{forward:?} {alone:?}");
    let twice = score(&[1, 1]);
    assert!(
        close(twice[0], twice[1]) && close(twice[0], forward[1]),
        "{twice:?}"
    );
    // Different items still get different draws: the three scores are not all one number.
    assert!(
        forward[0] != forward[1] && forward[1] != forward[2],
        "{forward:?}"
    );
    // A class that does not shape the model (labelled data, an unconditional run) does not shape the draws: a row
    // scores the same with its label column as without it.
    let labelled = tmp.path().join("kinds.csv");
    let text: String = table("a,b,c,d", 300, false)
        .lines()
        .enumerate()
        .map(|(i, l)| match i {
            0 => format!("{l},kind\n"),
            _ => format!("{l},{}\n", ["x", "y"][i % 2]),
        })
        .collect();
    std::fs::write(&labelled, text).unwrap();
    let run_dir = tmp.path().join("kinds");
    ok(&train(
        &labelled,
        &run_dir,
        &tmp.path().join("cache"),
        &["--label-column", "kind"],
    ));
    let score_of = |body: &str| -> String {
        let file = tmp.path().join("one.csv");
        std::fs::write(&file, body).unwrap();
        let o = score_rows(&run_dir, &file);
        let text = String::from_utf8(o.stdout).unwrap();
        text.lines()
            .nth(1)
            .unwrap()
            .rsplit(',')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        score_of("a,b,c,d,kind\n0.5,0,-1,1,x\n"),
        score_of("a,b,c,d\n0.5,0,-1,1\n")
    );
}

/// `--k-train K` with the ELBO (the default objective) averages the ELBO over K draws: the epoch line only names
/// the ELBO, and the flag's name suggests IWAE, so what it trains is said; one draw says nothing.
#[test]
fn draws_of_the_elbo_are_said() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("t.csv");
    std::fs::write(&data, table("a,b,c", 100, false)).unwrap();
    let cache = tmp.path().join("cache");
    let said = ok(&train(
        &data,
        &tmp.path().join("k3"),
        &cache,
        &["--k-train", "3"],
    ));
    assert!(
        said.contains(
            "the objective is the ELBO averaged over 3 draws per image; --objective iwae"
        ),
        "{said}"
    );
    let said = ok(&train(&data, &tmp.path().join("k1"), &cache, &[]));
    assert!(!said.contains("draws per image"), "{said}");
}
