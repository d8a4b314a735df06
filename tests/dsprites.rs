//! dSprites from the command line: `make-dsprites` writes DeepMind's layout, `train --data` reads it with its
//! factors, `disentanglement` scores a run, `eval` counts active units; what is not dSprites' layout is refused.

mod common;

use common::{assert_user_error, elbo, interrupted_after, npy, npz, raw_npy, run, stderr, zip_of};
use std::path::Path;

/// The metrics' JSON keys, DCI's informativeness last.
const SCORES: [&str; 7] = [
    "beta_vae",
    "factor_vae",
    "mig",
    "sap",
    "dci_disentanglement",
    "dci_completeness",
    "dci_informativeness",
];

fn make(out: &Path, n: &str, seed: &str) -> std::process::Output {
    run(elbo()
        .args(["make-dsprites", "--subsample", n, "--seed", seed, "--out"])
        .arg(out))
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    train_with(
        &["--epochs", "1", "--latent", "4", "--hidden", "64"],
        data,
        out,
        extra,
    )
}

fn train_with(base: &[&str], data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    run(elbo()
        .args(["train", "--threads", "2"])
        .args(base)
        .args(extra)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out))
}

#[test]
fn generated_dsprites_train_and_score_and_say_they_are_generated() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ds.npz");
    let o = make(&file, "600", "2");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("not DeepMind's file"), "{}", stderr(&o));
    // The same seed writes the same bytes; another seed other items.
    let again = tmp.path().join("again.npz");
    make(&again, "600", "2");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let other = tmp.path().join("other.npz");
    make(&other, "600", "3");
    assert_ne!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&other).unwrap()
    );
    // An existing file is kept without --force.
    assert_user_error(&make(&file, "600", "2"), "--force");

    let dir = tmp.path().join("run");
    let o = train(&file, &dir, &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("named as dSprites' (imgs, latents_classes): 600 binary 64×64 images")
            && err.contains("shape 3, scale 6, orientation 40, posX 32, posY 32 (dSprites' grid)"),
        "{err}"
    );
    assert!(err.contains("not DeepMind's file"), "{err}");
    assert!(!err.contains("disagrees"), "{err}");

    let o = run(elbo()
        .args(["disentanglement", "--points", "30", "--json"])
        .arg(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // Every score but DCI's informativeness, an R² that may fall below 0, is in [0, 1].
    for key in &SCORES[..6] {
        let x = v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"));
        assert!((0.0..=1.0).contains(&x), "{key} = {x}");
    }
    assert!(v["dci_informativeness"].as_f64().unwrap() <= 1.0);
    assert_eq!(v["factors"].as_array().unwrap().len(), 5, "{v}");
    assert!(
        v["observations"]
            .as_str()
            .unwrap()
            .contains("rendered by elbo's dSprites generator"),
        "{v}"
    );
    // Seeded: the same command gives the same scores.
    let o2 = run(elbo()
        .args(["disentanglement", "--points", "30", "--json"])
        .arg(&dir));
    let v2: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(v["mig"], v2["mig"]);
    assert_eq!(v["beta_vae"], v2["beta_vae"]);

    // `eval` scores the same metrics as `disentanglement`, with the same draws, and says so in one line.
    let o = run(elbo()
        .args(["eval", "--k", "5", "--limit", "50", "--json"])
        .args(["--disentanglement-points", "30"])
        .arg(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("scoring the disentanglement metrics too (30 points"),
        "{}",
        stderr(&o)
    );
    // --limit 50 did not shorten them, and the line says which flag does.
    assert!(
        stderr(&o).contains("--limit shortens log p(x) only, --disentanglement-points these"),
        "{}",
        stderr(&o)
    );
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let units = e["active_units"].as_u64().unwrap();
    assert!(units <= 4 && e["latent"] == 4, "{e}");
    assert_eq!(e["n"], 50, "{e}");
    for key in SCORES.iter().chain(&["factors", "observations"]) {
        assert_eq!(
            e[key], v[key],
            "{key}: eval {e} against disentanglement {v}"
        );
    }
    assert_eq!(e["disentanglement_images"], v["images"], "{e}");
    assert_eq!(e["disentanglement_points"], 30, "{e}");
    // Left out on request, and in text the metrics follow the likelihood.
    let o = run(elbo()
        .args([
            "eval",
            "--k",
            "5",
            "--limit",
            "50",
            "--json",
            "--no-disentanglement",
        ])
        .arg(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(e.get("mig").is_none() && e["nll"].is_number(), "{e}");
    assert!(!stderr(&o).contains("disentanglement"), "{}", stderr(&o));
    let o = run(elbo()
        .args([
            "eval",
            "--k",
            "5",
            "--limit",
            "50",
            "--disentanglement-points",
            "30",
        ])
        .arg(&dir));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("-log p(x)") && out.contains("MIG "),
        "{out}{}",
        stderr(&o)
    );
    assert_user_error(
        &run(elbo()
            .args(["eval", "--k", "5", "--disentanglement-points", "5"])
            .arg(&dir)),
        "--disentanglement-points 5 must be between",
    );
}

/// A complete grid of two factors (3 × 4 values) drawn as one lit pixel per combination in 8×8 images.
fn small_grid(path: &Path) {
    grid_of_rows(path, (0..3u8).flat_map(|a| (0..4u8).map(move |b| (a, b))));
}

/// Two factors' `combinations`, one 8×8 image each.
fn grid_of_rows(path: &Path, combinations: impl Iterator<Item = (u8, u8)>) {
    let mut imgs = Vec::new();
    let mut classes = Vec::new();
    for (a, b) in combinations {
        {
            let mut img = [0u8; 64];
            img[(2 * a as usize) * 8 + 2 * b as usize] = 1;
            img[(2 * a as usize + 1) * 8 + 2 * b as usize + 1] = 1;
            imgs.extend(img);
            classes.extend([a as i64, b as i64]);
        }
    }
    let n = classes.len() as u64 / 2;
    npz(
        path,
        &[
            ("imgs", npy(&[n, 8, 8], imgs)),
            ("latents_classes", npy(&[n, 2], classes)),
        ],
    );
}

#[test]
fn a_grid_missing_a_combination_counts_distinct_ones_not_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("grid.npz");
    // 12 rows, but (2, 3) is missing and (0, 0) is there twice.
    let rows = (0..3u8)
        .flat_map(|a| (0..4u8).map(move |b| (a, b)))
        .map(|c| if c == (2, 3) { (0, 0) } else { c });
    grid_of_rows(&file, rows);
    let dir = tmp.path().join("run");
    let o = train(&file, &dir, &["--test-fraction", "0.25"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(elbo().args(["disentanglement", "--points", "20"]).arg(&dir));
    assert_user_error(&o, "holds 11 of its factors' 12 combinations");
    // `eval` still reports the likelihood, and says why the metrics it was not asked for are left out; asked
    // for them, it refuses.
    let o = run(elbo().args(["eval", "--k", "2", "--json"]).arg(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the disentanglement metrics are left out: the run's data holds 11 of"),
        "{}",
        stderr(&o)
    );
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(e["nll"].is_number() && e.get("mig").is_none(), "{e}");
    let o = run(elbo()
        .args(["eval", "--k", "2", "--disentanglement-points", "20"])
        .arg(&dir));
    assert_user_error(&o, "holds 11 of its factors' 12 combinations");
}

#[test]
fn a_complete_grid_of_other_factors_is_looked_up_not_drawn() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("grid.npz");
    small_grid(&file);
    let dir = tmp.path().join("run");
    let o = train(&file, &dir, &["--test-fraction", "0.25"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("factors factor0 3, factor1 4, a grid of its own, not dSprites'"),
        "{err}"
    );
    let o = run(elbo()
        .args(["disentanglement", "--points", "20", "--json"])
        .arg(&dir));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["observations"]
            .as_str()
            .unwrap()
            .contains("looked up in the run's data, which holds all 12 combinations"),
        "{v}"
    );
}

#[test]
fn npz_members_that_leave_the_data_in_doubt_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let x = npy(&[4, 4, 4], [0u8, 200].repeat(32));
    let mut trailing = x.clone();
    trailing.extend([0u8; 7]);
    let collide = tmp.path().join("collide.npz");
    zip_of(&collide, &[("x.npy", x.clone()), ("x", x.clone())]);
    let extra = tmp.path().join("trailing.npz");
    zip_of(&extra, &[("x.npy", trailing.clone())]);
    let lone = tmp.path().join("trailing.npy");
    std::fs::write(&lone, &trailing).unwrap();
    // Two members of one name: written under two names of one length, then renamed in place.
    let twice = tmp.path().join("twice.npz");
    zip_of(&twice, &[("x.npy", x.clone()), ("q.npy", x)]);
    let bytes = std::fs::read(&twice).unwrap();
    let renamed = String::from_utf8_lossy(&bytes).matches("q.npy").count();
    assert_eq!(renamed, 2, "local and central headers");
    let mut patched = bytes.clone();
    for i in 0..bytes.len() - 5 {
        if &bytes[i..i + 5] == b"q.npy" {
            patched[i] = b'x';
        }
    }
    std::fs::write(&twice, patched).unwrap();
    // The same in a zip of images.
    let mut png = Vec::new();
    image::GrayImage::from_pixel(8, 8, image::Luma([90]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let pictures = tmp.path().join("pictures.zip");
    let members: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| (format!("{}.png", (b'a' + i) as char), png.clone()))
        .collect();
    let named: Vec<(&str, Vec<u8>)> = members.iter().map(|(n, b)| (&n[..], b.clone())).collect();
    zip_of(&pictures, &named);
    let bytes = std::fs::read(&pictures).unwrap();
    let mut patched = bytes.clone();
    for i in 0..bytes.len() - 5 {
        if &bytes[i..i + 5] == b"b.png" {
            patched[i] = b'a';
        }
    }
    std::fs::write(&pictures, patched).unwrap();
    for (file, why) in [
        (&collide, "two arrays named x"),
        (&extra, "7 bytes follow"),
        (&lone, "7 bytes follow"),
        (&twice, "appears twice"),
        (&pictures, "appears twice"),
    ] {
        assert_user_error(&train(file, &out, &[]), why);
        assert!(!out.exists());
    }
}

#[test]
fn what_is_not_dsprites_layout_is_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let classes = npy(&[2, 2], [0i64, 1, 1, 0]);
    type Arrays = Vec<(&'static str, Vec<u8>)>;
    let cases: Vec<(&str, Arrays, &str)> = vec![
        (
            "levels",
            vec![
                ("imgs", npy(&[2, 4, 4], [0u8, 2].repeat(16))),
                ("latents_classes", classes.clone()),
            ],
            "dSprites' images hold only 0 and 1",
        ),
        (
            "float-classes",
            vec![
                ("imgs", npy(&[2, 4, 4], [0u8, 1].repeat(16))),
                ("latents_classes", npy(&[2, 2], [0.0f64, 1.5, 1.0, 0.0])),
            ],
            "holds floats; classes are indices",
        ),
        (
            // Whole floats too: 2 + 1e-9 would read as 2 in f32, so floats are refused whatever they hold.
            "whole-float-classes",
            vec![
                ("imgs", npy(&[2, 4, 4], [0u8, 1].repeat(16))),
                (
                    "latents_classes",
                    npy(&[2, 2], [0.0f64, 1.0, 1.0, 2.000000001]),
                ),
            ],
            "store them as integers",
        ),
        (
            // A type elbo cannot read at all is refused with advice that the next check would not refuse too.
            "complex-classes",
            vec![
                ("imgs", npy(&[2, 4, 4], [0u8, 1].repeat(16))),
                (
                    "latents_classes",
                    raw_npy(
                        "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 2), }",
                        &[0u8; 32],
                    ),
                ),
            ],
            "use integers (e.g. classes.astype('int64'))",
        ),
        (
            "negative-classes",
            vec![
                ("imgs", npy(&[2, 4, 4], [0u8, 1].repeat(16))),
                ("latents_classes", npy(&[2, 2], [0i64, -1, 1, 0])),
            ],
            "integers from 0 to 1000000",
        ),
        (
            "no-classes",
            vec![("imgs", npy(&[2, 4, 4], [0u8, 1].repeat(16)))],
            "without latents_classes",
        ),
        (
            "short-classes",
            vec![
                ("imgs", npy(&[2, 4, 4], [0u8, 1].repeat(16))),
                ("latents_classes", npy(&[1, 2], [0i64, 1])),
            ],
            "one row per image",
        ),
        (
            "values-shape",
            vec![
                ("imgs", npy(&[2, 4, 4], [0u8, 1].repeat(16))),
                ("latents_classes", classes.clone()),
                ("latents_values", npy(&[2, 3], [0.0f64; 6])),
            ],
            "is not latents_classes'",
        ),
    ];
    // Values that contradict the classes are said in a line, not silently kept.
    let odd = tmp.path().join("odd.npz");
    npz(
        &odd,
        &[
            ("imgs", npy(&[2, 4, 4], [0u8, 1].repeat(16))),
            (
                "latents_classes",
                npy(&[2, 6], [0i64, 1, 2, 3, 4, 5, 0, 2, 5, 39, 31, 31]),
            ),
            (
                "latents_values",
                npy(
                    &[2, 6],
                    [
                        1.0f64,
                        2.0,
                        0.7,
                        std::f64::consts::TAU * 3.0 / 39.0,
                        4.0 / 31.0,
                        5.0 / 31.0,
                        1.0,
                        3.0,
                        1.0,
                        9.0,
                        1.0,
                        1.0,
                    ],
                ),
            ),
        ],
    );
    let o = train(&odd, &out, &["--test-fraction", "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("latents_values disagrees with latents_classes at item 1: orientation is 9"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&out).unwrap();
    // Without latents_values there is nothing to disagree with; arrays beside the dSprites ones are named as
    // unread, not silently dropped.
    let plain = tmp.path().join("plain.npz");
    npz(
        &plain,
        &[
            ("imgs", npy(&[2, 4, 4], [0u8, 1].repeat(16))),
            (
                "latents_classes",
                npy(&[2, 6], [0i64, 1, 2, 3, 4, 5, 0, 2, 5, 39, 31, 31]),
            ),
            ("x", npy(&[2, 4, 4], [0u8, 7].repeat(16))),
        ],
    );
    let o = train(&plain, &out, &["--test-fraction", "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("disagrees"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("also holds x, which elbo leaves unread"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(&out).unwrap();
    for (name, arrays, why) in cases {
        let file = tmp.path().join(format!("{name}.npz"));
        npz(&file, &arrays);
        assert_user_error(&train(&file, &out, &[]), why);
        assert!(!out.exists(), "{name}: a run directory was left behind");
    }
    assert_user_error(
        &run(elbo()
            .args(["make-dsprites", "--subsample", "0", "--out"])
            .arg(tmp.path().join("a.npz"))),
        "--subsample 0",
    );
    assert_user_error(
        &run(elbo()
            .args(["make-dsprites", "--subsample", "999999999", "--out"])
            .arg(tmp.path().join("a.npz"))),
        "more than the grid's 737280",
    );
}

#[test]
fn a_data_dir_for_a_run_on_its_own_file_is_refused() {
    // --data-dir only says where named datasets live: for a run on its own --data it would be ignored, so every
    // command that reads the run's data refuses it, and says which file the run reads instead.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ds.npz");
    assert!(make(&file, "300", "2").status.success());
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let dir = tmp.path().join("run");
    let o = train(&file, &dir, &["--data-dir", elsewhere.to_str().unwrap()]);
    assert_user_error(&o, "this run reads its own --data");
    assert!(!dir.exists(), "a refused run left a folder behind");
    assert!(train(&file, &dir, &[]).status.success());
    let with_dir = |args: &[&str]| {
        let mut c = elbo();
        c.args(args).arg(&dir).arg("--data-dir").arg(&elsewhere);
        run(&mut c)
    };
    for args in [
        &["disentanglement", "--points", "10"][..],
        &["eval", "--k", "2", "--no-disentanglement"],
        &["train", "--epochs", "2", "--resume"],
    ] {
        let o = with_dir(args);
        assert_user_error(&o, "--data-dir");
        assert!(stderr(&o).contains("ds.npz"), "{}", stderr(&o));
    }
    // Nothing was resumed: the run still has its one epoch.
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
}

#[test]
fn a_run_without_factors_is_not_scored() {
    let o = run(elbo()
        .args(["disentanglement", "--points", "10"])
        .arg(common::fixture_run())
        .arg("--data-dir")
        .arg(common::mnist_dir()));
    assert_user_error(&o, "no known factors");
    // An MNIST run says so before reading its data: nothing is downloaded into an empty folder.
    let tmp = tempfile::tempdir().unwrap();
    let o = run(elbo()
        .env("ELBO_MIRROR", "http://127.0.0.1:9/")
        .args(["disentanglement", "--points", "10"])
        .arg(common::fixture_run())
        .arg("--data-dir")
        .arg(tmp.path()));
    assert_user_error(&o, "no known factors");
    assert!(!stderr(&o).contains("download"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    // `eval` scores an MNIST run without the metrics, and refuses to be told their points.
    let eval = |extra: &[&str]| {
        run(elbo()
            .args(["eval", "--k", "2", "--limit", "5", "--json"])
            .args(extra)
            .arg(common::fixture_run())
            .arg("--data-dir")
            .arg(common::mnist_dir()))
    };
    let o = eval(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(e.get("mig").is_none(), "{e}");
    assert_user_error(
        &eval(&["--disentanglement-points", "20"]),
        "no known factors",
    );
}

#[test]
fn the_named_dataset_is_downloaded_and_checked_like_mnist() {
    use elbo::data::download::{RemoteFile, fetch_all};
    use elbo::data::dsprites::{FILE, MD5};
    let tmp = tempfile::tempdir().unwrap();
    let small = tmp.path().join("small.npz");
    assert!(make(&small, "50", "1").status.success());
    let bytes = std::fs::read(&small).unwrap();
    let base = common::serve([(FILE.to_string(), bytes.clone())].into());

    // The published md5 is checked: a file in the layout that is not DeepMind's is refused, and removed.
    let data = tmp.path().join("data");
    let o = run(elbo()
        .env("ELBO_MIRROR", &base)
        .args(["train", "--dataset", "dsprites", "--epochs", "1", "--out"])
        .arg(tmp.path().join("run"))
        .arg("--data-dir")
        .arg(&data));
    assert_user_error(&o, &format!("{base}{FILE}"));
    assert!(stderr(&o).contains("checksum mismatch"), "{}", stderr(&o));
    // Without the file, the generator is the way on.
    assert!(
        stderr(&o).contains("elbo make-dsprites --out dsprites.npz` and train with --data"),
        "{}",
        stderr(&o)
    );
    assert!(!data.join(FILE).exists());

    // With its own md5 the same download lands, and reads with its factors; loading it as dSprites names the
    // mismatch.
    let md5 = format!("{:x}", <md5::Md5 as md5::Digest>::digest(&bytes));
    fetch_all(
        &[RemoteFile {
            name: FILE.into(),
            md5,
        }],
        &data,
        std::slice::from_ref(&base),
    )
    .unwrap();
    let found = elbo::data::numpy::load(&data.join(FILE), None).unwrap();
    let elbo::data::images::Found::One(ds) = found else {
        panic!("one set")
    };
    let f = ds.factors.as_deref().unwrap();
    assert_eq!(
        (ds.len(), f.count(), f.sizes.clone()),
        (50, 6, vec![1, 3, 6, 40, 32, 32])
    );
    let err = elbo::data::load_dataset(elbo::data::DatasetName::Dsprites, &data)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("not {MD5}")) && err.contains("not dsprites's"),
        "{err}"
    );
}

/// The mean squared off-diagonal covariance of the test codes' means that `elbo encode` writes.
fn off_diagonal(run_dir: &Path) -> f64 {
    let csv = run_dir.with_extension("csv");
    let o = run(elbo()
        .arg("encode")
        .arg(run_dir)
        .arg("--force")
        .arg("--out")
        .arg(&csv));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cols: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].starts_with("mu_"))
        .collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            cols.iter().map(|&i| v[i].parse().unwrap()).collect()
        })
        .collect();
    let (n, d) = (rows.len() as f64, cols.len());
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let mut sum = 0.0;
    for i in 0..d {
        for j in 0..d {
            if i != j {
                let c: f64 = rows
                    .iter()
                    .map(|r| (r[i] - mean[i]) * (r[j] - mean[j]))
                    .sum::<f64>()
                    / n;
                sum += c * c;
            }
        }
    }
    sum / (d * (d - 1)) as f64
}

/// The decorrelation tests' setting: a small model on a generated subsample.
const DECORRELATION: [&str; 8] = [
    "--epochs", "4", "--latent", "6", "--hidden", "128", "--seed", "3",
];

/// The generated subsample the decorrelation tests train on, and the plain VAE each method is compared with.
fn decorrelation_baseline(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let file = dir.join("ds.npz");
    assert!(make(&file, "1500", "4").status.success());
    let plain = dir.join("plain");
    let o = train_with(&DECORRELATION, &file, &plain, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    (file, plain)
}

#[test]
fn dip_vae_decorrelates_the_codes_and_is_refused_where_it_cannot_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, plain) = decorrelation_baseline(tmp.path());
    for kind in ["i", "ii"] {
        let dip = tmp.path().join(format!("dip-{kind}"));
        let o = train_with(
            &DECORRELATION,
            &file,
            &dip,
            &["--dip", kind, "--dip-lambda-od", "50"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let (a, b) = (off_diagonal(&plain), off_diagonal(&dip));
        assert!(
            b < a / 2.0,
            "DIP-VAE-{kind}: off-diagonal covariance {b} against {a} without"
        );
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dip.join("config.json")).unwrap()).unwrap();
        assert_eq!(saved["train"]["dip"]["kind"], kind);
        assert_eq!(saved["train"]["dip"]["lambda_od"], 50.0);
        // disentanglement_lib's λ_d: 10 λ_od for DIP-VAE-I, λ_od for -II.
        let d = if kind == "i" { 500.0 } else { 50.0 };
        assert_eq!(saved["train"]["dip"]["lambda_d"], d);
    }
    let out = tmp.path().join("refused");
    for (extra, why) in [
        (
            vec!["--dip", "i", "--objective", "iwae", "--k-train", "5"],
            "--objective elbo",
        ),
        (vec!["--dip", "ii", "--flow", "planar:2"], "without a flow"),
        (vec!["--dip", "i", "--shards", "2"], "--shards"),
        (vec!["--dip-lambda-od", "3"], "applies to --dip only"),
        (vec!["--dip", "i", "--dip-lambda-od", "-1"], "at least 0"),
    ] {
        assert_user_error(&train(&file, &out, &extra), why);
        assert!(!out.exists());
    }
}

#[test]
fn beta_tc_vae_decorrelates_the_codes_and_is_refused_where_it_cannot_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, plain) = decorrelation_baseline(tmp.path());
    for sampling in ["mws", "mss"] {
        let tc = tmp.path().join(format!("tc-{sampling}"));
        let o = train_with(
            &DECORRELATION,
            &file,
            &tc,
            &["--tc", "50", "--tc-sampling", sampling],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let (a, b) = (off_diagonal(&plain), off_diagonal(&tc));
        assert!(
            b < a / 2.0,
            "beta-TC-VAE ({sampling}): off-diagonal covariance {b} against {a} without"
        );
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tc.join("config.json")).unwrap()).unwrap();
        assert_eq!(saved["train"]["tc"]["beta"], 50.0);
        assert_eq!(saved["train"]["tc"]["alpha"], 1.0);
        assert_eq!(saved["train"]["tc"]["sampling"], sampling);
    }
    let out = tmp.path().join("refused");
    for (extra, why) in [
        (
            vec!["--tc", "6", "--objective", "iwae", "--k-train", "5"],
            "--objective elbo",
        ),
        (vec!["--tc", "6", "--batch-size", "1"], "at least 2 items"),
        (
            vec!["--tc", "6", "--warmup-epochs", "3"],
            "drop --warmup-epochs",
        ),
        (vec!["--tc", "6", "--flow", "planar:2"], "without a flow"),
        (vec!["--tc", "6", "--prior", "mog"], "--prior normal"),
        (vec!["--tc", "6", "--shards", "2"], "--shards"),
        (vec!["--tc", "6", "--beta", "4"], "give one"),
        (vec!["--tc", "6", "--dip", "ii"], "drop --dip"),
        (vec!["--tc-gamma", "3"], "applies to --tc only"),
        (vec!["--tc", "-1"], "at least 0"),
    ] {
        assert_user_error(&train(&file, &out, &extra), why);
        assert!(!out.exists());
    }
    let one = train_with(
        &["--epochs", "1", "--latent", "1"],
        &file,
        &out,
        &["--tc", "6"],
    );
    assert_user_error(&one, "--latent needs at least 2");
    assert!(!out.exists());
}

#[test]
fn factor_vae_trains_its_discriminator_resumes_and_is_refused_where_it_cannot_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let (file, plain) = decorrelation_baseline(tmp.path());
    let factor = tmp.path().join("factor");
    let o = train_with(
        &DECORRELATION,
        &file,
        &factor,
        &[
            "--factor-vae",
            "50",
            "--discriminator",
            "64,64",
            "--discriminator-lr",
            "1e-3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (off_diagonal(&plain), off_diagonal(&factor));
    assert!(
        b < a / 2.0,
        "FactorVAE: off-diagonal covariance {b} against {a} without"
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(factor.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved["train"]["factor_vae"]["gamma"], 50.0);
    assert_eq!(saved["train"]["factor_vae"]["lr"], 1e-3);
    assert_eq!(saved["model"]["discriminator"], serde_json::json!([64, 64]));
    // The discriminator's weights are in the checkpoint, so training goes on from them.
    let o = run(elbo()
        .args(["train", "--resume"])
        .arg(&factor)
        .args(["--epochs", "5"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = std::fs::read_to_string(factor.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 6);
    // The discriminator reports its loss and accuracy: after five epochs it tells codes from permuted codes
    // better than chance.
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let last: Vec<&str> = metrics.lines().last().unwrap().split(',').collect();
    let col = |name: &str| -> f64 {
        last[header.iter().position(|h| *h == name).unwrap()]
            .parse()
            .unwrap()
    };
    assert!(
        col("disc_accuracy") > 0.5 && col("disc_loss") < 0.7,
        "{metrics}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("| discriminator loss "), "{out}");
    // The model's other commands ignore the discriminator.
    for cmd in [
        &["sample", "--n", "4", "--out", "s.png"][..],
        &[
            "eval",
            "--k",
            "5",
            "--limit",
            "20",
            "--disentanglement-points",
            "200",
        ][..],
        &["disentanglement", "--points", "200"][..],
    ] {
        let o = run(elbo()
            .arg(cmd[0])
            .arg(&factor)
            .args(&cmd[1..])
            .current_dir(tmp.path()));
        assert!(o.status.success(), "{}: {}", cmd[0], stderr(&o));
    }
    let out = tmp.path().join("refused");
    for (extra, why) in [
        (
            vec![
                "--factor-vae",
                "35",
                "--objective",
                "iwae",
                "--k-train",
                "5",
            ],
            "--objective elbo",
        ),
        (
            vec!["--factor-vae", "35", "--flow", "planar:2"],
            "without a flow",
        ),
        (vec!["--factor-vae", "35", "--shards", "2"], "--shards"),
        (vec!["--factor-vae", "35", "--tc", "6"], "give one"),
        (
            vec!["--discriminator", "10"],
            "applies to --factor-vae only",
        ),
        (
            vec!["--factor-vae", "35", "--discriminator", "10,0"],
            "between 1 and 65536",
        ),
        (
            vec!["--factor-vae", "35", "--batch-size", "1"],
            "at least 2 items",
        ),
        (
            vec!["--factor-vae", "35", "--discriminator-lr", "0"],
            "must be a positive number",
        ),
        (vec!["--factor-vae", "-2"], "at least 0"),
    ] {
        assert_user_error(&train(&file, &out, &extra), why);
        assert!(!out.exists());
    }
    // A value clap cannot parse is its usage error (exit 2), naming the flag and the form it takes.
    let o = train(
        &file,
        &out,
        &["--factor-vae", "35", "--discriminator", "10/10"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("'10/10' is not widths separated by commas"),
        "{}",
        stderr(&o)
    );
    let one = train_with(
        &["--epochs", "1", "--latent", "1"],
        &file,
        &out,
        &["--factor-vae", "35"],
    );
    assert_user_error(&one, "--latent needs at least 2");
    assert!(!out.exists());
}

#[test]
fn disentanglement_refuses_what_it_cannot_score_without_panicking() {
    let tmp = tempfile::tempdir().unwrap();
    // Six factors of up to 2048 values: 2^66 combinations, more than any count holds.
    let huge = tmp.path().join("huge.npz");
    npz(
        &huge,
        &[
            ("imgs", npy(&[4, 4, 4], [0u8, 1].repeat(32))),
            (
                "latents_classes",
                npy(&[4, 6], [2047i64; 6].into_iter().chain([0; 18])),
            ),
        ],
    );
    let run_huge = tmp.path().join("huge");
    let o = train(&huge, &run_huge, &["--test-fraction", "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(elbo()
        .args(["disentanglement", "--points", "20"])
        .arg(&run_huge));
    assert_user_error(&o, "more than 2^64 combinations");
    // dSprites' grid at 32×32: the generator draws 64×64 only.
    let small = tmp.path().join("small.npz");
    npz(
        &small,
        &[
            ("imgs", npy(&[4, 32, 32], [0u8, 1].repeat(2048))),
            (
                "latents_classes",
                npy(&[4, 6], [0i64, 2, 5, 39, 31, 31].repeat(4)),
            ),
        ],
    );
    let run_small = tmp.path().join("small");
    let o = train(&small, &run_small, &["--test-fraction", "0.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(elbo()
        .args(["disentanglement", "--points", "20"])
        .arg(&run_small));
    assert_user_error(&o, "the generator draws dSprites' 64×64 images");
    for points in ["5", "99999999999"] {
        let o = run(elbo()
            .args(["disentanglement", "--points", points])
            .arg(&run_small));
        assert_user_error(&o, "must be between 10 and 1000000");
    }
    // The run's own data, gone: said to be the run's, not a bare missing file.
    std::fs::rename(&small, tmp.path().join("moved.npz")).unwrap();
    let o = run(elbo()
        .args(["disentanglement", "--points", "20"])
        .arg(&run_small));
    assert_user_error(
        &o,
        "the data this run was trained on (--data) is not there any more",
    );
}

#[test]
fn make_dsprites_says_how_far_it_is_and_ctrl_c_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grid.npz");
    // The whole grid: tens of seconds of drawing and compressing, long enough to be interrupted in.
    let child = elbo()
        .args(["make-dsprites", "--out"])
        .arg(&out)
        .env("ELBO_PROGRESS_EVERY", "0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_until_catching(child.id(), libc::SIGINT);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: signalling our own child by its PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = std::time::Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    let err = stderr(&o);
    // 128 + SIGINT, as an interrupted `elbo train` exits and as shells expect.
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains("make-dsprites: ") && err.contains("/737280 images"),
        "{err}"
    );
    assert!(
        err.contains("make-dsprites stopped before it finished (Ctrl-C)"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Two factors' classes in `rows` order with the images of `grid_of_rows`, under `path`.
fn grid_with_classes(path: &Path, combinations: &[(u8, u8)], classes: &[(i64, i64)]) {
    let mut imgs = Vec::new();
    for &(a, b) in combinations {
        let mut img = [0u8; 64];
        img[(2 * a as usize) * 8 + 2 * b as usize] = 1;
        img[(2 * a as usize + 1) * 8 + 2 * b as usize + 1] = 1;
        imgs.extend(img);
    }
    let n = combinations.len() as u64;
    npz(
        path,
        &[
            ("imgs", npy(&[n, 8, 8], imgs)),
            (
                "latents_classes",
                npy(&[n, 2], classes.iter().flat_map(|&(a, b)| [a, b])),
            ),
        ],
    );
}

#[test]
fn factors_edited_after_training_are_refused_and_items_held_back_are_still_looked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("grid.npz");
    let combos: Vec<(u8, u8)> = (0..3u8)
        .flat_map(|a| (0..4u8).map(move |b| (a, b)))
        .collect();
    let classes: Vec<(i64, i64)> = combos.iter().map(|&(a, b)| (a as i64, b as i64)).collect();
    grid_with_classes(&file, &combos, &classes);
    // --validation and --limit hold items back from training; the metrics still look every one up, and --limit
    // says which factors' values its first items lack (the file is sorted by its factors).
    for (name, extra, said) in [
        ("validation", &["--validation", "2"][..], None),
        (
            "limit",
            &["--limit", "3"][..],
            Some("--limit 3 keeps the training split's first 3 items"),
        ),
    ] {
        let dir = tmp.path().join(name);
        let o = train(
            &file,
            &dir,
            &[&["--test-fraction", "0.25"][..], extra].concat(),
        );
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        if let Some(said) = said {
            assert!(stderr(&o).contains(said), "{name}: {}", stderr(&o));
            assert!(
                stderr(&o).contains("factor0 1 of 3") || stderr(&o).contains("factor0 2 of 3"),
                "{}",
                stderr(&o)
            );
        }
        for cmd in [
            &["disentanglement", "--points", "20", "--json"][..],
            &[
                "eval",
                "--k",
                "2",
                "--disentanglement-points",
                "20",
                "--json",
            ],
        ] {
            let o = run(elbo().args(cmd).arg(&dir));
            assert!(o.status.success(), "{name} {}: {}", cmd[0], stderr(&o));
            // The --limit line is said when the run is made, not by the commands that read it.
            assert!(
                !stderr(&o).contains("keeps the training split's first"),
                "{}",
                stderr(&o)
            );
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert!(
                v["observations"]
                    .as_str()
                    .unwrap()
                    .contains("holds all 12 combinations"),
                "{name} {}: {v}",
                cmd[0]
            );
        }
    }
    let dir = tmp.path().join("validation");
    // The checkpoint scored is named.
    let o = run(elbo()
        .args(["disentanglement", "--points", "20", "--json"])
        .arg(&dir));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["epoch"], 1, "{v}");
    let o = run(elbo().args(["disentanglement", "--points", "20"]).arg(&dir));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("(epoch 1)"),
        "{}",
        stderr(&o)
    );
    // `encode` writes each item's factor classes beside its code.
    let o = run(elbo().args(["encode", "--out", "-"]).arg(&dir));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("index,factor0,factor1,mu_0"), "{out}");
    // The same images with their classes shuffled, or the two factors' columns swapped: refused by every command
    // that reads the run's data, as edited images are.
    let mut shuffled = classes.clone();
    shuffled.rotate_left(5);
    let swapped: Vec<(i64, i64)> = combos
        .iter()
        .map(|&(a, b)| (b as i64 % 3, a as i64))
        .collect();
    for edited in [shuffled, swapped] {
        grid_with_classes(&file, &combos, &edited);
        for cmd in [
            &["disentanglement", "--points", "20"][..],
            &["eval", "--k", "2"],
            &["encode", "--out", "-"],
        ] {
            let o = run(elbo().args(cmd).arg(&dir));
            assert_user_error(
                &o,
                "its factors (latents_classes, latents_values) have changed",
            );
        }
    }
    // Classes far beyond any grid, and no images at all: one line each, saying what would be right.
    let huge = tmp.path().join("huge.npz");
    grid_with_classes(&huge, &combos[..2], &[(0, 0), (1_000_000_000_000, 1)]);
    assert_user_error(
        &train(&huge, &tmp.path().join("h"), &[]),
        "integers from 0 to 1000000",
    );
    assert!(!stderr(&train(&huge, &tmp.path().join("h"), &[])).contains("floats"));
    let empty = tmp.path().join("empty.npz");
    npz(
        &empty,
        &[
            ("imgs", npy(&[0, 8, 8], Vec::<u8>::new())),
            ("latents_classes", npy(&[0, 2], Vec::<i64>::new())),
        ],
    );
    assert_user_error(
        &train(&empty, &tmp.path().join("e"), &[]),
        "imgs: holds no images",
    );
    // A flag for images refused on a NumPy file, without a remark about labels no one asked about.
    let o = train(&file, &tmp.path().join("s"), &["--image-size", "4"]);
    assert_user_error(&o, "--image-size does not apply to");
    assert!(!stderr(&o).contains("labels come from"), "{}", stderr(&o));
}

#[test]
fn ctrl_c_stops_disentanglement_with_a_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("grid.npz");
    small_grid(&file);
    let dir = tmp.path().join("run");
    assert!(
        train(&file, &dir, &["--test-fraction", "0.25"])
            .status
            .success()
    );
    // A million points: minutes of encoding, long enough to be interrupted in.
    let o = interrupted_after(
        elbo()
            .args(["disentanglement", "--points", "1000000"])
            .arg(&dir),
        1500,
        |_| {},
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("measuring disentanglement stopped"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// A write that fails part way (here at a 64 KB file-size limit, as a full disk would) ends in elbo's one line,
/// with nothing from the zip writer beside it and no temporary file left.
#[test]
fn make_dsprites_that_cannot_write_says_so_in_one_line() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grid.npz");
    let mut cmd = elbo();
    // SAFETY: between fork and exec only the async-signal-safe setrlimit runs.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 64 << 10,
                rlim_max: 64 << 10,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = cmd
        .args(["make-dsprites", "--subsample", "3000", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("elbo: error: "), "{err}");
    assert!(!err.contains("ZipWriter"), "{err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
