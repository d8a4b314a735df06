//! The figure commands: sizes, tiles that hold the decoded pixels, determinism, and bad input.

mod common;
use common::*;
use elbo::figures::latent::decode_means;
use std::path::{Path, PathBuf};

fn png(path: &Path) -> image::GrayImage {
    image::open(path).unwrap().to_luma8()
}

/// Tile (r, c) of a mosaic with 28×28 tiles, padding 2 and no scaling, as intensities in 0..=255.
fn tile(img: &image::GrayImage, r: u32, c: u32) -> Vec<u8> {
    let (y0, x0) = (2 + r * 30, 2 + c * 30);
    (0..28)
        .flat_map(|y| (0..28).map(move |x| (x, y)))
        .map(|(x, y)| img.get_pixel(x0 + x, y0 + y).0[0])
        .collect()
}

fn expected_tile(run: &Path, z: &[f32]) -> Vec<u8> {
    let ck = elbo::train::load_run(run).unwrap();
    decode_means(&ck.vae, z, 1, &[])
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

fn out(tmp: &tempfile::TempDir, name: &str) -> PathBuf {
    tmp.path().join(name)
}

#[test]
fn manifold_tiles_hold_direct_decodes_at_normal_quantiles() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture_run();
    let p = out(&tmp, "m.png");
    let o = run_cmd(&[
        "manifold",
        run.to_str().unwrap(),
        "--grid",
        "3",
        "--dims",
        "4,7",
        "--out",
        p.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = png(&p);
    assert_eq!(img.dimensions(), (3 * 28 + 4 * 2, 3 * 28 + 4 * 2));
    // Quantiles 0.05, 0.5, 0.95 of N(0, 1); the top-left tile has dim 4 lowest and dim 7 highest.
    let q = 1.644_853_6f32;
    let mut z = vec![0f32; 20];
    (z[4], z[7]) = (-q, q);
    assert_eq!(tile(&img, 0, 0), expected_tile(&run, &z));
    (z[4], z[7]) = (q, -q);
    assert_eq!(tile(&img, 2, 2), expected_tile(&run, &z));
    let p2 = out(&tmp, "m2.png");
    run_cmd(&[
        "manifold",
        run.to_str().unwrap(),
        "--grid",
        "3",
        "--dims",
        "4,7",
        "--out",
        p2.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&p).unwrap(),
        std::fs::read(&p2).unwrap(),
        "deterministic"
    );
    let p3 = out(&tmp, "m3.png");
    let o = run_cmd(&[
        "manifold",
        run.to_str().unwrap(),
        "--grid",
        "2",
        "--range",
        "linear:-3,3",
        "--scale",
        "2",
        "--separators",
        "--out",
        p3.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        png(&p3).dimensions(),
        (2 * (2 * 28 + 3 * 2), 2 * (2 * 28 + 3 * 2))
    );
}

#[test]
fn interpolation_starts_and_ends_at_the_encodings() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture_run();
    let p = out(&tmp, "i.png");
    let o = run_data_cmd(&[
        "interpolate",
        run.to_str().unwrap(),
        "--from",
        "0",
        "--to",
        "1",
        "--steps",
        "5",
        "--out",
        p.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = png(&p);
    assert_eq!(img.dimensions(), (5 * 28 + 6 * 2, 28 + 2 * 2));
    let ck = elbo::train::load_run(&run).unwrap();
    let test = elbo::data::load_dataset(elbo::data::DatasetName::Mnist, &mnist_dir())
        .unwrap()
        .1;
    let head = elbo::figures::latent::encode(&ck.vae, &test, &[0, 1]);
    assert_eq!(tile(&img, 0, 0), expected_tile(&run, &head[..20]));
    assert_eq!(tile(&img, 0, 4), expected_tile(&run, &head[20..40]));
    let o = run_data_cmd(&[
        "interpolate",
        run.to_str().unwrap(),
        "--from",
        "0",
        "--to",
        "1",
        "--spherical",
        "--out",
        out(&tmp, "s.png").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn latent_plot_and_curves_are_deterministic_charts() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture_run();
    let (a, b, svg) = (out(&tmp, "a.png"), out(&tmp, "b.png"), out(&tmp, "c.svg"));
    for p in [&a, &b, &svg] {
        let o = run_data_cmd(&[
            "latent-plot",
            run.to_str().unwrap(),
            "--limit",
            "2000",
            "--out",
            p.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(image::image_dimensions(&a).unwrap(), (900, 700));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "deterministic"
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") && text.contains("PC 1 of the 20-D encoder means"),
        "PCA axis label in the SVG"
    );
    let (c1, c2) = (out(&tmp, "c1.png"), out(&tmp, "c2.png"));
    for p in [&c1, &c2] {
        let o = run_cmd(&[
            "plot-metrics",
            run.to_str().unwrap(),
            "--out",
            p.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(image::image_dimensions(&c1).unwrap(), (1500, 480));
    assert_eq!(std::fs::read(&c1).unwrap(), std::fs::read(&c2).unwrap());
    for f in ["curves.png", "latent.png"] {
        assert!(run.join(f).is_file(), "train writes {f}");
    }
    assert!(
        !run.join("manifold.png").exists(),
        "no manifold.png for a 20-D latent"
    );
}

#[test]
fn sample_temperature_and_bernoulli_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture_run();
    let (cold, hot, bern) = (out(&tmp, "c.png"), out(&tmp, "h.png"), out(&tmp, "b.png"));
    run_cmd(&[
        "sample",
        run.to_str().unwrap(),
        "--n",
        "4",
        "--temperature",
        "0.01",
        "--out",
        cold.to_str().unwrap(),
    ]);
    run_cmd(&[
        "sample",
        run.to_str().unwrap(),
        "--n",
        "4",
        "--temperature",
        "1",
        "--out",
        hot.to_str().unwrap(),
    ]);
    // At temperature ~0 every sample is the decoding of z = 0.
    let img = png(&cold);
    let close = |a: Vec<u8>, b: Vec<u8>| a.iter().zip(&b).all(|(x, y)| x.abs_diff(*y) <= 4);
    assert!(close(tile(&img, 0, 0), tile(&img, 1, 1)));
    assert!(close(tile(&img, 0, 0), expected_tile(&run, &[0.0; 20])));
    assert_ne!(tile(&png(&hot), 0, 0), tile(&png(&hot), 1, 1));
    let o = run_cmd(&[
        "sample",
        run.to_str().unwrap(),
        "--n",
        "4",
        "--bernoulli",
        "--out",
        bern.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        tile(&png(&bern), 0, 0).iter().all(|&p| p == 0 || p == 255),
        "sampled pixels are binary"
    );
    let o = run_cmd(&[
        "sample",
        run.to_str().unwrap(),
        "--temperature",
        "0",
        "--out",
        out(&tmp, "x.png").to_str().unwrap(),
    ]);
    assert_user_error(&o, "--temperature 0");
    let o = run_cmd(&[
        "sample",
        run.to_str().unwrap(),
        "--temperature",
        "1e308",
        "--out",
        out(&tmp, "x.png").to_str().unwrap(),
    ]);
    assert_user_error(&o, "--temperature 1e308 must be");
}

#[test]
fn bad_figure_requests_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture_run();
    let r = run.to_str().unwrap();
    let x = out(&tmp, "x.png");
    let x = x.to_str().unwrap();
    assert_user_error(
        &run_cmd(&["manifold", r, "--dims", "0,20", "--out", x]),
        "--dims 0,20",
    );
    assert_user_error(
        &run_cmd(&["manifold", r, "--dims", "3,3", "--out", x]),
        "two different dimensions",
    );
    assert_user_error(
        &run_cmd(&["manifold", r, "--grid", "0", "--out", x]),
        "--grid 0",
    );
    assert_user_error(
        &run_cmd(&["manifold", r, "--grid", "10000", "--out", x]),
        "--grid 10000",
    );
    assert_user_error(
        &run_cmd(&["manifold", r, "--range", "quantile:0,1", "--out", x]),
        "strictly between 0 and 1",
    );
    let missing = out(&tmp, "no/such/folder/m.png");
    assert_user_error(
        &run_cmd(&["manifold", r, "--out", missing.to_str().unwrap()]),
        "does not exist",
    );
    assert_user_error(
        &run_data_cmd(&["interpolate", r, "--from", "10000", "--to", "1", "--out", x]),
        "--from 10000 is out of range",
    );
    assert_user_error(
        &run_data_cmd(&["interpolate", r, "--from", "0", "--to", "99999", "--out", x]),
        "--to 99999",
    );
    assert_user_error(
        &run_cmd(&["sample", r, "--scale", "0", "--out", x]),
        "--scale 0",
    );
    // A folder the command would not read is refused, not ignored; the grid that reads the test set takes it.
    assert_user_error(
        &run_data_cmd(&["manifold", r, "--out", x]),
        "is not read: this grid needs no data",
    );
    let o = run_data_cmd(&["manifold", r, "--range", "data:0.1,0.9", "--out", x]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = out(&tmp, "c.csv");
    let png = fixture_png(&tmp);
    assert_user_error(
        &run_data_cmd(&[
            "encode",
            r,
            "--input",
            png.to_str().unwrap(),
            "--out",
            csv.to_str().unwrap(),
        ]),
        "encode --input encodes that file",
    );
    assert!(!csv.exists());
}

/// One 28×28 grey PNG, an item `encode --input` can read.
fn fixture_png(tmp: &tempfile::TempDir) -> std::path::PathBuf {
    let p = out(tmp, "one.png");
    image::GrayImage::from_pixel(28, 28, image::Luma([200u8]))
        .save(&p)
        .unwrap();
    p
}

#[test]
fn manifold_on_a_one_dimensional_latent_explains_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = out(&tmp, "one");
    let o = run(elbo()
        .args([
            "train", "--latent", "1", "--hidden", "32", "--limit", "500", "--epochs", "1", "--out",
        ])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.join("latent.png").is_file());
    let o = run_cmd(&[
        "manifold",
        dir.to_str().unwrap(),
        "--out",
        out(&tmp, "m.png").to_str().unwrap(),
    ]);
    assert_user_error(&o, "this model's latent has 1");
}

#[test]
fn a_two_dimensional_run_writes_its_manifold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = out(&tmp, "two");
    let o = run(elbo()
        .args([
            "train", "--latent", "2", "--hidden", "64", "--limit", "1000", "--epochs", "1", "--out",
        ])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::image_dimensions(dir.join("manifold.png")).unwrap(),
        (20 * 28 + 21 * 2, 20 * 28 + 21 * 2)
    );
}

fn run_cmd(args: &[&str]) -> std::process::Output {
    run(elbo().args(args))
}

fn run_data_cmd(args: &[&str]) -> std::process::Output {
    run(elbo().args(args).arg("--data-dir").arg(mnist_dir()))
}

#[test]
fn traverse_sweeps_one_dimension_per_row_ranked_by_kl() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = fixture_run();
    let t = out(&tmp, "t.png");
    let o = run(elbo()
        .arg("traverse")
        .arg(&run_dir)
        .args(["--dims", "5,2,9", "--steps", "4", "--range=-2,2", "--out"])
        .arg(&t)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    // One line per row, "zD  KL K", in decreasing KL.
    let rows: Vec<(usize, f64)> = stderr(&o)
        .lines()
        .filter_map(|l| l.trim().strip_prefix('z'))
        .map(|l| {
            let (d, kl) = l.split_once("  KL ").unwrap();
            (d.parse().unwrap(), kl.parse().unwrap())
        })
        .collect();
    let mut dims: Vec<usize> = rows.iter().map(|r| r.0).collect();
    assert!(rows.windows(2).all(|w| w[0].1 >= w[1].1), "{rows:?}");
    assert!(rows.iter().all(|r| r.1 >= 0.0));
    dims.sort_unstable();
    assert_eq!(dims, vec![2, 5, 9]);
    // Tiles right of the label column: row r sweeps its dimension from -2 to 2 with the others at 0.
    let img = png(&t);
    assert_eq!(img.height(), 3 * 28 + 4 * 2);
    let label_w = img.width() - (4 * 28 + 5 * 2);
    for (r, &(d, _)) in rows.iter().enumerate() {
        for c in 0..4u32 {
            let mut z = vec![0.0f32; 20];
            z[d] = -2.0 + 4.0 * c as f32 / 3.0;
            let (y0, x0) = (2 + r as u32 * 30, label_w + 2 + c * 30);
            let got: Vec<u8> = (0..28)
                .flat_map(|y| (0..28).map(move |x| (x, y)))
                .map(|(x, y)| img.get_pixel(x0 + x, y0 + y).0[0])
                .collect();
            assert_eq!(got, expected_tile(&run_dir, &z), "row {r}, column {c}");
        }
    }
    for (args, needle) in [
        (
            &["--dims", "20"][..],
            "--dims 20 is out of range: the latent has 20 dimensions",
        ),
        (&["--range", "3,-3"][..], "LOW must be below HIGH"),
        // Beyond an f32 but finite: out of range, not "not finite".
        (&["--range", "1e300,1e301"][..], "within ±1000"),
        // Equal as f32, the precision the sweep runs in.
        (&["--range", "1,1.00000001"][..], "LOW must be below HIGH"),
        (&["--steps", "1"][..], "--steps 1 must be between 2 and 101"),
        (&["--from", "10000"][..], "--from 10000 is out of range"),
        (
            &["--steps", "101", "--scale", "16"][..],
            "more than 100 million: use a smaller --scale",
        ),
    ] {
        let o = run(elbo()
            .arg("traverse")
            .arg(&run_dir)
            .args(args)
            .arg("--out")
            .arg(out(&tmp, "bad.png"))
            .arg("--data-dir")
            .arg(mnist_dir()));
        assert_user_error(&o, needle);
    }
    let o = run(elbo()
        .arg("traverse")
        .arg(&run_dir)
        .arg("--out")
        .arg(out(&tmp, "t.svg")));
    assert_user_error(&o, "this command writes .png");
}

#[test]
fn a_mosaic_too_large_to_hold_is_refused_not_allocated() {
    let tmp = tempfile::tempdir().unwrap();
    let big = out(&tmp, "big.png");
    let o = run(elbo()
        .arg("sample")
        .arg(fixture_run())
        .args(["--n", "10000", "--scale", "16", "--out"])
        .arg(&big));
    assert_user_error(
        &o,
        "more than 200 million: use a smaller --scale or fewer images",
    );
    assert!(!big.exists());
}
