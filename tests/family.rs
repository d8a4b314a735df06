//! The VAE family end to end: every example config trains, config files and flags combine, the conditional
//! VAE generates the class asked for, the autoencoder refuses what it cannot do, and bad settings are refused.

mod common;

use common::{assert_user_error, elbo, mnist_dir, run, stderr};
use std::path::{Path, PathBuf};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn train(args: &[&str], out: &Path) -> std::process::Output {
    let mut cmd = elbo();
    cmd.arg("train")
        .args(args)
        .args(["--threads", "2", "--out"])
        .arg(out);
    // A run on its own --data refuses a --data-dir, which it would not read.
    if !args.contains(&"--data") {
        cmd.arg("--data-dir").arg(mnist_dir());
    }
    run(&mut cmd)
}

fn saved_config(run_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("config.json")).unwrap()).unwrap()
}

#[test]
fn every_example_config_trains_briefly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(configs())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    for want in [
        "ae",
        "beta-vae",
        "cvae",
        "iaf",
        "iwae-paper-iwae50",
        "iwae-paper-iwae50-2layer",
        "iwae-paper-vae",
        "iwae-paper-vae-2layer",
        "keras-conv",
        "pytorch-example",
        "pytorch-vae-celeba64",
        "cifar10-conv",
        "tutorial-2d",
        "vampprior",
        "dsprites-beta-vae",
        "dsprites-capacity",
        "dsprites-beta-tcvae",
        "dsprites-dip-vae",
        "dsprites-factorvae",
    ] {
        assert!(
            names.contains(&format!("{want}.toml")),
            "configs/{want}.toml"
        );
    }
    // The colour presets train on a folder of colour photographs' stand-ins, large enough for CelebA's crop.
    let photos = tmp.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for i in 0..40u32 {
        let img = image::RgbImage::from_fn(150, 160, |x, y| {
            image::Rgb([
                (x * 7 + i * 13) as u8,
                (y * 5 + i) as u8,
                ((x + y) * 3) as u8,
            ])
        });
        img.save(photos.join(format!("{i}.png"))).unwrap();
    }
    // The dSprites presets train on a generated subsample in DeepMind's layout.
    let sprites = tmp.path().join("sprites.npz");
    let o = run(elbo()
        .args(["make-dsprites", "--subsample", "300", "--out"])
        .arg(&sprites));
    assert!(o.status.success(), "{}", stderr(&o));
    for name in &names {
        let out = tmp.path().join(name.trim_end_matches(".toml"));
        let cfg = configs().join(name);
        let colour = name.starts_with("pytorch-vae") || name.starts_with("cifar10");
        let mut args = vec!["--config", cfg.to_str().unwrap(), "--epochs", "1"];
        if name.starts_with("dsprites") {
            args.extend(["--data", sprites.to_str().unwrap()]);
        } else if colour {
            args.extend(["--data", photos.to_str().unwrap(), "--batch-size", "16"]);
            if name.starts_with("cifar10") {
                args.extend(["--image-size", "32"]);
            }
        } else {
            args.extend(["--limit", "400"]);
        }
        let o = train(&args, &out);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        if name.starts_with("dsprites") {
            // The preset's dataset, replaced by the file given: said in one line.
            assert!(
                stderr(&o).contains("dataset = \"dsprites\" from ")
                    && stderr(&o).contains("is replaced by --data "),
                "{name}: {}",
                stderr(&o)
            );
        }
        let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
        let row: Vec<&str> = metrics.lines().nth(1).unwrap().split(',').collect();
        let test_loss: f64 = row[4].parse().unwrap();
        assert!(test_loss.is_finite(), "{name}: test loss {test_loss}");
        assert!(out.join("reconstructions.png").exists(), "{name}");
        // The stored config is the resolved one: the file's settings with the flags on top.
        let saved = saved_config(&out);
        assert_eq!(saved["train"]["epochs"], 1, "{name}");
        if !colour && !name.starts_with("dsprites") {
            assert_eq!(saved["train"]["limit"], 400, "{name}");
        }
    }
    let tc = saved_config(&tmp.path().join("dsprites-beta-tcvae"));
    assert_eq!(tc["train"]["tc"]["beta"], 6.0);
    assert_eq!(tc["model"]["latent"], 10);
    let fv = saved_config(&tmp.path().join("dsprites-factorvae"));
    assert_eq!(fv["train"]["factor_vae"]["gamma"], 35.0);
    assert_eq!(
        fv["model"]["discriminator"],
        serde_json::json!(vec![1000; 6])
    );
    let dip = saved_config(&tmp.path().join("dsprites-dip-vae"));
    assert_eq!(dip["train"]["dip"]["kind"], "ii");
    assert_eq!(dip["train"]["dip"]["lambda_d"], 10.0);
    let celeba = saved_config(&tmp.path().join("pytorch-vae-celeba64"));
    assert_eq!(celeba["model"]["batch_norm"], true);
    assert_eq!(
        (
            celeba["model"]["rows"].as_u64(),
            celeba["model"]["channels"].as_u64()
        ),
        (Some(64), Some(3))
    );
    assert_eq!(celeba["train"]["lr_schedule"]["kind"], "exponential");
    assert_eq!(celeba["train"]["random_flip"], true);
    let iwae = saved_config(&tmp.path().join("iwae-paper-iwae50"));
    assert_eq!(iwae["train"]["objective"], "iwae");
    assert_eq!(iwae["train"]["samples"], 50);
    assert_eq!(iwae["train"]["adam_eps"], 1e-4);
    assert_eq!(iwae["model"]["hidden"], serde_json::json!([200, 200]));
    let two = saved_config(&tmp.path().join("iwae-paper-iwae50-2layer"));
    assert_eq!(two["model"]["latent"], 100);
    assert_eq!(two["model"]["hidden"], serde_json::json!([200, 200]));
    assert_eq!(
        two["model"]["upper"],
        serde_json::json!([{"latent": 50, "hidden": [100, 100]}])
    );
    let vamp = saved_config(&tmp.path().join("vampprior"));
    assert_eq!(
        vamp["model"]["prior"],
        serde_json::json!({"kind": "vamp", "components": 500})
    );
    let iaf = saved_config(&tmp.path().join("iaf"));
    assert_eq!(
        iaf["model"]["flow"],
        serde_json::json!({"kind": "iaf", "blocks": 2, "hidden": 320})
    );
    assert_eq!(iaf["model"]["latent"], 32);
    let keras = saved_config(&tmp.path().join("keras-conv"));
    assert_eq!(keras["model"]["conv"][1]["channels"], 64);
    assert_eq!(keras["model"]["latent"], 2);
    assert!(!tmp.path().join("ae").join("samples.png").exists());
}

#[test]
fn flags_override_the_config_file_and_the_staged_schedule_sets_the_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(
        &file,
        "latent = 3\nhidden = [32]\nlr-schedule = \"iwae\"\nstage_growth = 1.0\nstages = 3\nlimit = 300\n",
    )
    .unwrap();
    let out = tmp.path().join("run");
    let o = train(&["--config", file.to_str().unwrap(), "--latent", "4"], &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let saved = saved_config(&out);
    assert_eq!(saved["model"]["latent"], 4, "the flag wins");
    assert_eq!(
        saved["model"]["hidden"],
        serde_json::json!([32]),
        "the file fills the rest"
    );
    assert_eq!(saved["train"]["epochs"], 3, "three one-epoch stages");
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let lrs: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(11).unwrap().parse().unwrap())
        .collect();
    let want = [
        1e-3,
        1e-3 * 10f64.powf(-1.0 / 7.0),
        1e-3 * 10f64.powf(-2.0 / 7.0),
    ];
    for (got, want) in lrs.iter().zip(want) {
        assert!((got - want).abs() < 1e-9, "lr {lrs:?}");
    }
}

#[test]
fn bad_config_files_and_settings_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("typo.toml");
    std::fs::write(&file, "ltent = 2\n").unwrap();
    let out = tmp.path().join("run");
    let o = train(&["--config", file.to_str().unwrap()], &out);
    assert_user_error(&o, "unknown key 'ltent'; did you mean 'latent'?");
    std::fs::write(&file, "batch_sise = 20\n").unwrap();
    assert_user_error(
        &train(&["--config", file.to_str().unwrap()], &out),
        "did you mean 'batch_size'?",
    );
    std::fs::write(&file, "latent = \"two\"\n").unwrap();
    assert_user_error(
        &train(&["--config", file.to_str().unwrap()], &out),
        "key 'latent': 'two' is not dimensions separated by commas",
    );
    std::fs::write(&file, "latent = [\n").unwrap();
    assert_user_error(
        &train(&["--config", file.to_str().unwrap()], &out),
        "typo.toml",
    );
    assert_user_error(
        &train(&["--config", "/nonexistent/c.toml"], &out),
        "/nonexistent/c.toml",
    );
    let cases: [(&[&str], &str); 13] = [
        (
            &["--likelihood", "logistic", "--binarize", "dynamic"],
            "--likelihood logistic models all 256 levels; binarised pixels are 0 or 1",
        ),
        (
            &["--batch-norm", "--batch-size", "1"],
            "--batch-norm normalises over the batch, which needs at least 2 items",
        ),
        (
            &["--weight-decay=-1"],
            "--weight-decay -1 must be at least 0 and below 1/--lr",
        ),
        (
            &["--lr-schedule", "exponential", "--lr-gamma", "1.5"],
            "--lr-gamma 1.5 must be in (0, 1]",
        ),
        (
            &["--adam-beta1", "1"],
            "--adam-beta1 1 must be at least 0 and below 1",
        ),
        (
            &["--adam-beta2", "-0.5"],
            "--adam-beta2 -0.5 must be at least 0 and below 1",
        ),
        (
            &["--model", "ae", "--samples", "5"],
            "autoencoder is deterministic",
        ),
        (&["--model", "ae", "--beta", "4"], "autoencoder has no KL"),
        (
            &[
                "--objective",
                "iwae",
                "--k-train",
                "5",
                "--free-bits",
                "0.5",
            ],
            "IWAE bound has none",
        ),
        (&["--samples", "5", "--k-train", "50"], "set the same thing"),
        (&["--gamma", "10"], "--gamma applies to --capacity only"),
        (&["--stage-growth", "2"], "--lr-schedule iwae only"),
        (&["--likelihood", "gaussian", "--sigma", "0"], "--sigma 0"),
    ];
    for (args, needle) in cases {
        assert_user_error(&train(args, &out), needle);
    }
    std::fs::write(&file, "[[conv]]\nchannels = 8\nkernel = 40\n").unwrap();
    assert_user_error(
        &train(&["--conv", "8:40:1:0"], &out),
        "does not fit a 28x28 input",
    );
    assert_user_error(
        &train(&["--config", file.to_str().unwrap()], &out),
        "does not fit a 28x28 input",
    );
    assert!(!out.exists(), "a refused run leaves no directory behind");
    // Any value a run accepts reads back from its checkpoint, down to a subnormal decay factor.
    let o = train(
        &[
            "--lr-schedule",
            "exponential",
            "--lr-gamma",
            "1e-320",
            "--hidden",
            "16",
            "--latent",
            "2",
            "--limit",
            "100",
            "--epochs",
            "1",
        ],
        &out,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(elbo()
        .args(["train", "--epochs", "2", "--resume"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let saved = saved_config(&out);
    assert_eq!(saved["train"]["lr_schedule"]["gamma"], 1e-320);
}

#[test]
fn huge_buffers_are_refused_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    // 60000 images x 65536 hidden units: tens of GiB per layer's activations, beyond this machine's memory.
    let o = train(&["--batch-size", "60000", "--hidden", "65536"], &out);
    assert_user_error(&o, "this machine has available: lower them");
    // The same check against a stated budget, so the refusal does not depend on the machine.
    let o = run(elbo()
        .env("ELBO_MEMORY_LIMIT", "1000000")
        .args(["train", "--limit", "100", "--threads", "1", "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(&o, "--batch-size x --samples need");
}

/// Nearest-class-mean classifier fit on the training images.
fn class_means(train: &elbo::data::Dataset) -> Vec<Vec<f32>> {
    let d = train.dim();
    let mut sums = vec![vec![0f64; d]; 10];
    let mut counts = [0usize; 10];
    for i in 0..train.len() {
        let l = train.label(i) as usize;
        counts[l] += 1;
        let mut row = vec![0f32; d];
        train.fill_row(i, &mut row);
        for (s, &p) in sums[l].iter_mut().zip(&row) {
            *s += p as f64;
        }
    }
    sums.iter()
        .zip(counts)
        .map(|(s, c)| s.iter().map(|v| (v / c.max(1) as f64) as f32).collect())
        .collect()
}

fn nearest(means: &[Vec<f32>], img: &[f32]) -> usize {
    let dist = |m: &Vec<f32>| -> f32 { m.iter().zip(img).map(|(a, b)| (a - b) * (a - b)).sum() };
    (0..means.len())
        .min_by(|&a, &b| dist(&means[a]).total_cmp(&dist(&means[b])))
        .unwrap()
}

#[test]
fn conditional_vae_generates_the_class_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cvae");
    let o = train(
        &[
            "--conditional",
            "--hidden",
            "256",
            "--latent",
            "2",
            "--limit",
            "10000",
            "--epochs",
            "3",
        ],
        &out,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (train_set, _) =
        elbo::data::load_dataset(elbo::data::DatasetName::Mnist, &mnist_dir()).unwrap();
    let means = class_means(&train_set);
    let ck = elbo::train::load_run(&out).unwrap();
    let mut rng = <rand_pcg::Pcg64Mcg as rand::SeedableRng>::seed_from_u64(11);
    let per_class = 30;
    let mut hits = 0;
    for c in 0..10u32 {
        let codes: Vec<f32> = (0..per_class * 2)
            .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng))
            .collect();
        let labels = vec![c; per_class];
        let px = elbo::figures::latent::decode_means(&ck.vae, &codes, per_class, &labels);
        hits += px
            .chunks_exact(784)
            .filter(|img| nearest(&means, img) == c as usize)
            .count();
    }
    let accuracy = hits as f64 / (10 * per_class) as f64;
    assert!(
        accuracy > 0.5,
        "samples classified as their class {accuracy} (chance 0.1)"
    );

    // The command line: --class draws that class, and a bad class is refused.
    let png = tmp.path().join("seven.png");
    let o = run(elbo()
        .args(["sample"])
        .arg(&out)
        .args(["--class", "7", "--n", "16", "--out"])
        .arg(&png));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(elbo()
        .args(["sample"])
        .arg(&out)
        .args(["--class", "10", "--out"])
        .arg(tmp.path().join("x.png")));
    assert_user_error(&o, "--class '10' is not a class of this run (0, 1,");
    // A path between a 7 and a 2 is decoded under one class, which the user chooses.
    let o = run(elbo()
        .args(["interpolate"])
        .arg(&out)
        .args(["--from", "0", "--to", "1", "--out"])
        .arg(tmp.path().join("i.png")));
    assert_user_error(
        &o,
        "test images 0 (class 7) and 1 (class 2) differ in class",
    );
    let o = run(elbo()
        .args(["interpolate"])
        .arg(&out)
        .args(["--from", "0", "--to", "1", "--class", "2", "--out"])
        .arg(tmp.path().join("i.png")));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(elbo()
        .args(["manifold"])
        .arg(&out)
        .args(["--out"])
        .arg(tmp.path().join("m.png")));
    assert_user_error(&o, "choose the class of the manifold with --class");
    let o = run(elbo()
        .args(["manifold"])
        .arg(&out)
        .args(["--class", "3", "--grid", "5", "--out"])
        .arg(tmp.path().join("m.png")));
    assert!(o.status.success(), "{}", stderr(&o));

    // `encode`'s output decodes code by code as the class in its class column; --class still chooses one for all.
    let codes = tmp.path().join("codes.csv");
    let o = run(elbo().args(["encode"]).arg(&out).arg("--out").arg(&codes));
    assert!(o.status.success(), "{}", stderr(&o));
    // The first four test images, of four classes.
    let head: Vec<String> = std::fs::read_to_string(&codes)
        .unwrap()
        .lines()
        .take(5)
        .map(str::to_string)
        .collect();
    std::fs::write(&codes, head.join("\n")).unwrap();
    let decoded = |extra: &[&str], name: &str| {
        let path = tmp.path().join(name);
        let o = run(elbo()
            .args(["decode"])
            .arg(&out)
            .arg("--z-file")
            .arg(&codes)
            .args(extra)
            .arg("--out")
            .arg(&path));
        assert!(o.status.success(), "{}", stderr(&o));
        (std::fs::read_to_string(&path).unwrap(), stderr(&o))
    };
    let (by_column, said) = decoded(&[], "by_column.csv");
    assert!(said.contains("class column"), "{said}");
    let text = std::fs::read_to_string(&codes).unwrap();
    let first_class = text
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(2)
        .unwrap()
        .to_string();
    let (as_one, _) = decoded(&["--class", &first_class], "one.csv");
    let row = |t: &str, i: usize| t.lines().nth(i + 1).unwrap().to_string();
    assert_eq!(
        row(&by_column, 0),
        row(&as_one, 0),
        "the first code's own class"
    );
    let other = text
        .lines()
        .skip(1)
        .position(|l| l.split(',').nth(2) != Some(first_class.as_str()));
    if let Some(i) = other {
        assert_ne!(
            row(&by_column, i),
            row(&as_one, i),
            "code {i} decoded as its own class"
        );
    }
    // An empty class cell is named, with what to do.
    let blank = tmp.path().join("blank.csv");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    cells[2].clear();
    lines[1] = cells.join(",");
    std::fs::write(&blank, lines.join("\n")).unwrap();
    let o = run(elbo()
        .args(["decode"])
        .arg(&out)
        .arg("--z-file")
        .arg(&blank)
        .arg("--out")
        .arg(tmp.path().join("blank_out.csv")));
    assert_user_error(&o, "code 1 has no class in its class column");
}

#[test]
fn autoencoder_encodes_and_reconstructs_but_does_not_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ae");
    let o = train(
        &[
            "--model", "AE", "--latent", "2", "--limit", "2000", "--epochs", "2",
        ],
        &out,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Any letter case, and the alias, name the stored choice.
    assert_eq!(saved_config(&out)["model"]["kind"], "autoencoder");
    for cmd in ["reconstruct", "latent-plot"] {
        let o = run(elbo()
            .arg(cmd)
            .arg(&out)
            .arg("--out")
            .arg(tmp.path().join(format!("{cmd}.png"))));
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
    }
    let csv = tmp.path().join("z.csv");
    let o = run(elbo().arg("encode").arg(&out).arg("--out").arg(&csv));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("index,label,class,z_0,z_1\n"),
        "{}",
        &text[..40]
    );
    let o = run(elbo()
        .args(["interpolate"])
        .arg(&out)
        .args(["--from", "0", "--to", "1", "--out"])
        .arg(tmp.path().join("i.png")));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(elbo()
        .arg("sample")
        .arg(&out)
        .arg("--out")
        .arg(tmp.path().join("s.png")));
    assert_user_error(&o, "no prior to sample from");
    let o = run(elbo().arg("eval").arg(&out));
    assert_user_error(&o, "deterministic autoencoder");
    let fixture = common::fixture_run();
    let o = run(elbo()
        .arg("sample")
        .arg(&fixture)
        .args(["--class", "3", "--out"])
        .arg(tmp.path().join("c.png")));
    assert_user_error(&o, "--class needs a conditional model");
}

/// Writes a fake dataset in MNIST's file names: `n` images of `rows`x`cols`, labels from `label`.
fn fake_dataset(dir: &Path, rows: usize, cols: usize, label: impl Fn(usize) -> u8) {
    std::fs::create_dir_all(dir).unwrap();
    let names = elbo::data::named::FILE_NAMES;
    for (split, n) in [(0, 60), (2, 20)] {
        let pixels: Vec<u8> = (0..n * rows * cols).map(|i| (i * 7 % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(&label).collect();
        let im = elbo::data::idx::encode_idx(&[n, rows, cols], &pixels);
        let lb = elbo::data::idx::encode_idx(&[n], &labels);
        // Uncompressed names: these are not the published files, so no md5 applies to them.
        std::fs::write(dir.join(names[split].trim_end_matches(".gz")), im).unwrap();
        std::fs::write(dir.join(names[split + 1].trim_end_matches(".gz")), lb).unwrap();
    }
}

#[test]
fn architectures_that_do_not_fit_the_data_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("wide");
    fake_dataset(&data, 28, 20, |i| (i % 10) as u8);
    let out = tmp.path().join("run");
    // Convolutions take any height and width: the Keras model projects onto 7x5 instead of 7x7.
    let o = run(elbo()
        .args(["train", "--arch", "keras-conv", "--epochs", "1", "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(&data));
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = run(elbo()
        .args([
            "train", "--conv", "8:30:1:0", "--epochs", "1", "--force", "--out",
        ])
        .arg(&out)
        .arg("--data-dir")
        .arg(&data));
    assert_user_error(&o, "does not fit a 28x20 input");
    let data = tmp.path().join("unlabelled");
    fake_dataset(&data, 28, 28, |_| 255);
    let o = run(elbo()
        .args(["train", "--conditional", "--epochs", "1", "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(&data));
    assert_user_error(&o, "label 255 is outside mnist's 10 classes (0 to 9)");
}

#[test]
fn every_new_setting_refuses_impossible_values() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cases: [(&[&str], &str); 13] = [
        (
            &["--pseudo-init", "data"],
            "--pseudo-init data starts a VampPrior's pseudo-inputs on training items: it goes with --prior vamp",
        ),
        (
            &[
                "--prior",
                "vamp",
                "--pseudo-init",
                "data",
                "--limit",
                "40",
                "--epochs",
                "1",
            ],
            "starts each of the 500 pseudo-inputs on a different training item, and there are 40",
        ),
        (
            &["--weight-decay=-1"],
            "--weight-decay -1 must be at least 0 and below 1/--lr",
        ),
        (
            &["--lr-schedule", "exponential", "--lr-gamma", "1.5"],
            "--lr-gamma 1.5 must be in (0, 1]",
        ),
        (
            &["--adam-beta1", "1"],
            "--adam-beta1 1 must be at least 0 and below 1",
        ),
        (
            &["--adam-beta2", "-0.5"],
            "--adam-beta2 -0.5 must be at least 0 and below 1",
        ),
        (
            &["--capacity=-1"],
            "--capacity -1 needs a non-negative C_max",
        ),
        (
            &["--free-bits=-1"],
            "--free-bits -1 must be a non-negative number",
        ),
        (
            &["--adam-eps", "0"],
            "--adam-eps 0 must be a positive number",
        ),
        (
            &["--lr-schedule", "iwae", "--stages", "0"],
            "--stages 0 must be between 1 and 64",
        ),
        (
            &["--lr-schedule", "cosine", "--lr-min", "1"],
            "--lr-min 1 must be between 0 and --lr",
        ),
        (
            &["--lr-schedule", "step", "--lr-step-gamma", "2"],
            "--lr-step-gamma 2 must be in (0, 1]",
        ),
        (
            &["--learn-sigma", "pixel"],
            "--learn-sigma applies to --likelihood gaussian or logistic only",
        ),
    ];
    for (args, needle) in cases {
        assert_user_error(&train(args, &out), needle);
    }
    // Values that only a config file can spell, since the flags' own parser limits them.
    let file = tmp.path().join("c.toml");
    for (text, needle) in [
        // Checked against the flags' own choices, naming the file's line and key.
        (
            "model = \"vea\"\n",
            "line 1, key 'model': 'vea' is not one of vae, autoencoder",
        ),
        (
            "lr-schedule = \"linear\"\n",
            "key 'lr-schedule': 'linear' is not one of constant, iwae, cosine, step, exponential",
        ),
        (
            "arch = \"resnet\"\n",
            "key 'arch': 'resnet' is not one of mlp, keras-conv, pytorch-vae",
        ),
        ("conv = [\"wide\"]\n", "key 'conv'"),
    ] {
        std::fs::write(&file, text).unwrap();
        assert_user_error(&train(&["--config", file.to_str().unwrap()], &out), needle);
    }
    assert!(!out.exists(), "a refused run leaves no directory behind");
    // A saved run keeps its model: resuming refuses a new one.
    let o = run(elbo()
        .args(["train", "--resume"])
        .arg(common::fixture_run())
        .args(["--model", "ae"]));
    assert_user_error(&o, "--model cannot be changed when resuming");
}

#[test]
fn a_mean_loss_is_a_sum_with_epsilon_times_the_batch_and_betas_are_used() {
    // Adam is blind to the gradient's scale but for ε, so a per-image mean with ε equals a sum with ε·batch.
    let tmp = tempfile::tempdir().unwrap();
    let small = [
        "--limit",
        "400",
        "--batch-size",
        "20",
        "--hidden",
        "32",
        "--latent",
        "4",
        "--epochs",
        "2",
    ];
    let weights = |name: &str, extra: &[&str]| {
        let dir = tmp.path().join(name);
        let o = train(&[&small[..], extra].concat(), &dir);
        assert!(o.status.success(), "{}", stderr(&o));
        (
            elbo::train::load_run(&dir).unwrap().vae.params.data,
            saved_config(&dir),
        )
    };
    let (mean, cfg) = weights("mean", &["--loss-reduction", "mean", "--adam-eps", "1e-4"]);
    assert_eq!(cfg["train"]["loss_reduction"], "mean");
    let (sum_scaled, _) = weights("sum20", &["--adam-eps", "2e-3"]);
    let (sum, cfg) = weights("sum", &["--adam-eps", "1e-4"]);
    assert_eq!(cfg["train"]["loss_reduction"], "sum");
    let (beta, cfg) = weights(
        "beta",
        &[
            "--adam-eps",
            "1e-4",
            "--adam-beta1",
            "0.99",
            "--adam-beta2",
            "0.99",
        ],
    );
    assert_eq!(cfg["train"]["adam_beta1"], 0.99);
    let dist = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    let (same, other, betas) = (
        dist(&mean, &sum_scaled),
        dist(&mean, &sum),
        dist(&sum, &beta),
    );
    assert!(same < 1e-4, "mean with ε vs sum with 20ε: {same}");
    assert!(
        other > 100.0 * same && betas > 100.0 * same,
        "{same} {other} {betas}"
    );
}

/// `--shards S` computes each batch's gradient in S parts and sums them: after one step, Adam's first moment
/// (a tenth of the gradient) matches the unsharded run's to rounding, for the ELBO, IWAE, a conditional model,
/// stacked layers and flow posteriors, with a part count that does not divide the batch.
#[test]
fn sharded_gradients_equal_the_whole_batchs() {
    let tmp = tempfile::tempdir().unwrap();
    for objective in [
        &[][..],
        &["--objective", "iwae", "--k-train", "5"][..],
        &["--conditional", "--samples", "2"][..],
        &["--latent", "6,3", "--hidden", "32/8", "--samples", "2"][..],
        &["--flow", "iaf:2:16", "--samples", "2"][..],
        &[
            "--flow",
            "planar:3",
            "--objective",
            "iwae",
            "--k-train",
            "3",
        ][..],
    ] {
        let moments = |shards: &str| {
            let dir = tmp.path().join(format!("s{shards}"));
            let o = run(elbo()
                .args([
                    "train",
                    "--epochs",
                    "1",
                    "--limit",
                    "100",
                    "--batch-size",
                    "100",
                ])
                .args(["--shards", shards, "--force"])
                .args(objective)
                .arg("--data-dir")
                .arg(mnist_dir())
                .arg("--out")
                .arg(&dir));
            assert!(o.status.success(), "{}", stderr(&o));
            elbo::train::load_run(&dir).unwrap().adam.m
        };
        let whole = moments("1");
        let scale = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
        for shards in ["3", "7"] {
            let parts = moments(shards);
            let worst = whole
                .iter()
                .zip(&parts)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                worst <= 1e-4 * scale,
                "{objective:?} in {shards} shards: off by {worst} (largest {scale})"
            );
            assert_ne!(
                worst, 0.0,
                "the parts are summed in another order than the whole"
            );
        }
    }
    let o = run(elbo()
        .args(["train", "--shards", "2", "--batch-norm", "--out"])
        .arg(tmp.path().join("bn"))
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(&o, "--batch-norm normalises over the whole batch");
}
