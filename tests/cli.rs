//! The commands end to end on real MNIST, and every bad-input case giving one clear error line.

mod common;
use common::*;
use std::path::Path;

fn last_test_neg_elbo(run: &Path) -> f64 {
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "test_neg_elbo").unwrap();
    csv.lines()
        .last()
        .unwrap()
        .split(',')
        .nth(col)
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn training_learns_far_beyond_an_untrained_model() {
    let run = fixture_run();
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(csv.starts_with(
        "epoch,train_neg_elbo,train_recon,train_kl,test_neg_elbo,test_recon,test_kl,seconds"
    ));
    assert_eq!(csv.lines().count(), 6, "header and 5 epochs");
    // An untrained decoder scores about 784·ln 2 ≈ 543 nats; the mean image alone about 206.
    let last = last_test_neg_elbo(&run);
    assert!(
        last < 165.0,
        "test -ELBO {last} after 5 epochs on 6000 images"
    );
    for f in [
        "checkpoint.safetensors",
        "config.json",
        "samples.png",
        "reconstructions.png",
    ] {
        assert!(run.join(f).is_file(), "{f}");
    }
}

/// `eval --k` takes 1 to a million draws an item, as `score` and Python do: beyond, one item would hold a Ctrl-C
/// for minutes.
#[test]
fn eval_refuses_k_beyond_a_million() {
    for k in ["0", "1000001", "10000000000"] {
        let o = run(elbo()
            .arg("eval")
            .arg(fixture_run())
            .args(["--k", k, "--limit", "1", "--data-dir"])
            .arg(mnist_dir()));
        assert_user_error(&o, "--k must be between 1 and 1000000");
    }
}

#[test]
fn eval_reports_json_with_a_tighter_bound() {
    let o = run(elbo()
        .arg("eval")
        .arg(fixture_run())
        .args([
            "--k",
            "64",
            "--limit",
            "200",
            "--seed",
            "7",
            "--json",
            "--data-dir",
        ])
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (elbo, nll) = (v["elbo"].as_f64().unwrap(), v["nll"].as_f64().unwrap());
    assert_eq!((v["k"].as_u64(), v["n"].as_u64()), (Some(64), Some(200)));
    // The seed of the draws, so that the figures can be reproduced from the JSON alone.
    assert_eq!(v["seed"].as_u64(), Some(7), "{v}");
    assert!(
        nll > 50.0 && nll < -elbo,
        "importance sampling must tighten the bound: nll {nll}, elbo {elbo}"
    );
    // Bernoulli pixels are not a distribution over the 256 levels: no bits per dimension, and why.
    assert!(v["bits_per_dim"].is_null(), "{v}");
    assert!(v["bits_per_dim_method"].is_null(), "{v}");
    assert!(
        v["bits_per_dim_reason"]
            .as_str()
            .unwrap()
            .contains("Bernoulli")
    );
}

#[test]
fn sample_and_reconstruct_write_grids() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("s.png");
    let o = run(elbo()
        .arg("sample")
        .arg(fixture_run())
        .args(["--n", "16", "--out"])
        .arg(&png));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::image_dimensions(&png).unwrap(),
        (4 * 28 + 5 * 2, 4 * 28 + 5 * 2)
    );
    let again = tmp.path().join("s2.png");
    run(elbo()
        .arg("sample")
        .arg(fixture_run())
        .args(["--n", "16", "--out"])
        .arg(&again));
    assert_eq!(
        std::fs::read(&png).unwrap(),
        std::fs::read(&again).unwrap(),
        "same seed, same bytes"
    );
    let rec = tmp.path().join("r.png");
    let o = run(elbo()
        .arg("reconstruct")
        .arg(fixture_run())
        .args(["--n", "8", "--out"])
        .arg(&rec)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        image::image_dimensions(&rec).unwrap(),
        (8 * 28 + 9 * 2, 2 * 28 + 3 * 2)
    );
}

#[test]
fn encode_writes_means_and_log_variances_with_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("z.csv");
    let o = run(elbo()
        .arg("encode")
        .arg(fixture_run())
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&out).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), 3 + 2 * 20);
    assert_eq!(
        (header[0], header[1], header[2], header[3], header[23]),
        ("index", "label", "class", "mu_0", "logvar_0")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 10000);
    assert!(
        rows[0].starts_with("0,7,7,"),
        "first MNIST test image is a 7: {}",
        &rows[0][..10]
    );
    // Like eval and score, encode takes --threads (all cores by default), checked against the machine, and the
    // codes are the same bits at any count.
    let one = tmp.path().join("z1.csv");
    let o = run(elbo()
        .arg("encode")
        .arg(fixture_run())
        .args(["--threads", "1", "--out"])
        .arg(&one)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(&one).unwrap() == csv.as_bytes());
    let o = run(elbo()
        .arg("reconstruct")
        .arg(fixture_run())
        .args(["--threads", "100000", "--out"])
        .arg(tmp.path().join("r.png")));
    assert_user_error(&o, "--threads 100000 is more than");
}

#[test]
fn resume_continues_to_identical_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let common = [
        "--limit",
        "1000",
        "--hidden",
        "64",
        "--latent",
        "4",
        "--threads",
        "2",
    ];
    let o = run(elbo()
        .args(["train", "--epochs", "1"])
        .args(common)
        .arg("--out")
        .arg(&a)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(elbo()
        .args(["train", "--epochs", "2", "--resume"])
        .arg(&a)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming"));
    let o = run(elbo()
        .args(["train", "--epochs", "2"])
        .args(common)
        .arg("--out")
        .arg(&b)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let load = |d: &Path| elbo::train::load_run(d).unwrap();
    let (ca, cb) = (load(&a), load(&b));
    assert_eq!(ca.state.epoch, 2);
    assert_eq!(
        ca.vae.params.data, cb.vae.params.data,
        "resumed weights equal uninterrupted ones"
    );
    assert_eq!(ca.adam.m, cb.adam.m);
    assert_eq!(
        std::fs::read_to_string(a.join("metrics.csv"))
            .unwrap()
            .lines()
            .count(),
        3
    );
}

#[test]
fn bad_flags_and_settings_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = run(elbo()
        .args(["train", "--dataset", "cifar"])
        .arg("--out")
        .arg(&out));
    assert_user_error(&o, "unknown dataset 'cifar'");
    let o = run(elbo()
        .args(["train", "--hidden", "0"])
        .arg("--out")
        .arg(&out));
    assert_user_error(&o, "--hidden width 0");
    let o = run(elbo()
        .args(["train", "--batch-size", "0"])
        .arg("--out")
        .arg(&out));
    assert_user_error(&o, "--batch-size 0");
    // A usage error exits 2, as clap and argparse do, on one line like any other error.
    let o = run(elbo().args(["train", "--epochs", "x"]));
    assert_eq!(o.status.code(), Some(2), "clap rejects malformed flags");
    assert_eq!(
        stderr(&o).trim_end(),
        "elbo: error: invalid value 'x' for '--epochs <EPOCHS>': not a whole number (see 'elbo train --help')"
    );
    let o = run(elbo().args(["train", "--epochs", "-1"]));
    assert!(
        stderr(&o).contains("'-1' for '--epochs <EPOCHS>': a negative number where a whole number of 0 or more is needed"),
        "{}",
        stderr(&o)
    );
    // A number too large to hold is refused as written, not shown back as the infinity it would parse to.
    let o = run(elbo().args(["train", "--lr", "1e400"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("'--lr <LR>': 1e400 is too large for a number"),
        "{}",
        stderr(&o)
    );
    let o = run(elbo().arg("eval"));
    assert_eq!(
        stderr(&o).trim_end(),
        "elbo: error: the following required arguments were not provided: <RUN_DIR>; usage: elbo eval <RUN_DIR> (see 'elbo eval --help')"
    );
    // train's unknown flags get the nearest setting, or another tool's name for it, as config keys do.
    for (flag, tip) in [
        ("--learning-rate", "; did you mean '--lr'?"),
        ("--lattent", "; did you mean '--latent'?"),
        ("--bogus", " (see"),
    ] {
        let o = run(elbo().args(["train", flag, "3"]));
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
        assert!(
            e.starts_with(&format!(
                "elbo: error: unexpected argument '{flag}' found{tip}"
            )),
            "{e}"
        );
    }
    // PyTorch users may write a list space-separated; clap's "unexpected argument" then gets a tip.
    let o = run(elbo().args(["train", "--hidden", "64", "32", "--epochs", "1"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "found; --hidden takes its list as one comma-separated value: --hidden 64,32"
        ),
        "{}",
        stderr(&o)
    );
    let o = run(elbo()
        .args(["train", "--resume"])
        .arg(fixture_run())
        .args(["--latent", "3"]));
    assert_user_error(&o, "--latent cannot be changed when resuming");
    let o = run(elbo().arg("eval").arg(tmp.path().join("nowhere")));
    assert_user_error(&o, "no such run directory");
    let o = run(elbo().arg("eval").arg(tmp.path()));
    assert_user_error(&o, "no checkpoint here");
    let o = run(elbo()
        .arg("sample")
        .arg(fixture_run())
        .args(["--n", "0", "--out"])
        .arg(tmp.path().join("x.png")));
    assert_user_error(&o, "--n 0");
    let o = run(elbo()
        .arg("sample")
        .arg(fixture_run())
        .arg("--out")
        .arg(tmp.path().join("no/such/dir/x.png")));
    assert_user_error(&o, "does not exist");
}

#[test]
fn existing_outputs_need_force() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("s.png");
    std::fs::write(&png, b"keep me").unwrap();
    let o = run(elbo()
        .arg("sample")
        .arg(fixture_run())
        .arg("--out")
        .arg(&png));
    assert_user_error(&o, "already exists; pass --force");
    assert_eq!(std::fs::read(&png).unwrap(), b"keep me");
    let o = run(elbo()
        .arg("sample")
        .arg(fixture_run())
        .arg("--out")
        .arg(&png)
        .arg("--force"));
    assert!(o.status.success());
    let o = run(elbo().arg("train").arg("--out").arg(fixture_run()));
    assert_user_error(&o, "already holds a run; pass --force");
    // A file that only shares a run file's name (a web project's config.json) is the user's, --force or not.
    let tmp = tempfile::tempdir().unwrap();
    let web = tmp.path().join("webapp");
    std::fs::create_dir(&web).unwrap();
    std::fs::write(web.join("config.json"), br#"{"port": 8080}"#).unwrap();
    std::fs::write(web.join("index.html"), b"<p>mine</p>").unwrap();
    for (mine, force) in [
        (&br#"{"port": 8080}"#[..], false),
        (br#"{"port": 8080}"#, true),
        // Laid out as many tools lay out theirs, and as elbo's own is: still not a run.
        (
            br#"{"model": {"name": "resnet50"}, "train": {"lr": 0.1}, "data": {}}"#,
            true,
        ),
    ] {
        std::fs::write(web.join("config.json"), mine).unwrap();
        let mut cmd = elbo();
        cmd.args(["train", "--limit", "200", "--epochs", "1", "--out"])
            .arg(&web)
            .arg("--data-dir")
            .arg(mnist_dir());
        if force {
            cmd.arg("--force");
        }
        assert_user_error(&run(&mut cmd), "holds config.json but no elbo run");
        assert_eq!(std::fs::read(web.join("config.json")).unwrap(), mine);
    }
}

#[test]
fn unwritable_run_directory_is_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let o = run(elbo()
        .arg("train")
        .arg("--out")
        .arg(file.join("run"))
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(&o, "file/run");
}

#[test]
fn missing_and_corrupted_data_files() {
    let tmp = tempfile::tempdir().unwrap();
    // Missing: one file gone, and the only mirror is a closed local port.
    let data = tmp.path().join("missing");
    copy_mnist(&data);
    std::fs::remove_file(data.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let o = run(elbo()
        .env("ELBO_MIRROR", "http://127.0.0.1:9/")
        .args(["train", "--out"])
        .arg(tmp.path().join("r1"))
        .arg("--data-dir")
        .arg(&data));
    assert_user_error(&o, "t10k-labels-idx1-ubyte.gz");
    // Corrupted: a truncated gzip stream.
    let data = tmp.path().join("corrupt");
    copy_mnist(&data);
    let p = data.join("train-images-idx3-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(elbo()
        .args(["train", "--out"])
        .arg(tmp.path().join("r2"))
        .arg("--data-dir")
        .arg(&data));
    // The published md5 catches it before the parser sees it.
    assert_user_error(
        &o,
        "train-images-idx3-ubyte.gz: this is not mnist's train-images-idx3-ubyte.gz",
    );
}

#[test]
fn diverging_run_stops_with_a_hint_and_keeps_its_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let base = ["--limit", "512", "--hidden", "32", "--threads", "1"];
    let o = run(elbo()
        .args(["train", "--epochs", "1"])
        .args(base)
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let before = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    // Same run continued with a learning rate that blows up, through a config edit of the checkpoint.
    let mut ck = elbo::train::load_run(&out).unwrap();
    ck.config.train.lr = 1e4;
    let bytes =
        elbo::train::checkpoint::to_bytes(&ck.config, &ck.vae.params, &ck.adam, &ck.state).unwrap();
    std::fs::write(out.join("checkpoint.safetensors"), &bytes).unwrap();
    let o = run(elbo()
        .args(["train", "--epochs", "3", "--resume"])
        .arg(&out)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(&o, "a smaller --lr");
    assert_eq!(
        std::fs::read(out.join("checkpoint.safetensors")).unwrap(),
        bytes,
        "last good checkpoint kept"
    );
    assert_ne!(before.len(), 0);
}

#[test]
fn checkpoint_from_another_architecture_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = elbo::train::load_run(&fixture_run()).unwrap();
    let mut other = ck.config.clone();
    other.model.latent = 10;
    let bytes =
        elbo::train::checkpoint::to_bytes(&other, &ck.vae.params, &ck.adam, &ck.state).unwrap();
    let dir = tmp.path().join("mixed");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("checkpoint.safetensors"), bytes).unwrap();
    let o = run(elbo()
        .arg("sample")
        .arg(&dir)
        .arg("--out")
        .arg(tmp.path().join("x.png")));
    assert_user_error(&o, "from another architecture");
    std::fs::write(dir.join("checkpoint.safetensors"), b"garbage").unwrap();
    let o = run(elbo()
        .arg("sample")
        .arg(&dir)
        .arg("--out")
        .arg(tmp.path().join("x.png")));
    assert_user_error(&o, "not a safetensors file");
}

#[test]
fn gaussian_likelihood_and_dynamic_binarisation_train() {
    let tmp = tempfile::tempdir().unwrap();
    // Two epochs on 2000 images with a likelihood's flags, and `eval --json` of the result.
    let train = |name: &str, likelihood: &[&str]| {
        let dir = tmp.path().join(name);
        let o = run(elbo()
            .args(["train", "--epochs", "2", "--limit", "2000"])
            .args(likelihood)
            .arg("--out")
            .arg(&dir)
            .arg("--data-dir")
            .arg(mnist_dir()));
        assert!(o.status.success(), "{}", stderr(&o));
        dir
    };
    let eval_json = |dir: &Path| -> serde_json::Value {
        let o = run(elbo()
            .arg("eval")
            .arg(dir)
            .args(["--k", "16", "--limit", "50", "--json", "--data-dir"])
            .arg(mnist_dir()));
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let g = train("gauss", &["--likelihood", "gaussian", "--sigma", "0.1"]);
    let ck = elbo::train::load_run(&g).unwrap();
    assert_eq!(
        ck.config.model.likelihood,
        elbo::model::Likelihood::Gaussian {
            sigma: 0.1,
            learn: elbo::model::SigmaMode::Fixed,
            mean: elbo::model::GaussianMean::Sigmoid,
        }
    );
    let h = &ck.state.history;
    assert!(
        h[1].test.neg_elbo < h[0].test.neg_elbo,
        "Gaussian run improves: {h:?}"
    );
    // A density on 8-bit pixels reports bits per dimension through uniform dequantisation.
    let v = eval_json(&g);
    let (nll, bits) = (
        v["nll"].as_f64().unwrap(),
        v["bits_per_dim"].as_f64().unwrap(),
    );
    assert_eq!(v["bits_per_dim_method"], "uniform dequantisation");
    assert!(
        (bits - (nll / (784.0 * std::f64::consts::LN_2) + 8.0)).abs() < 1e-9,
        "{v}"
    );
    // A fixed σ = 0.1 after two epochs is a poor density for MNIST's mostly black-or-white pixels, so no bound.
    assert!(bits.is_finite() && bits > 0.0, "{bits}");
    // The discretised logistic is a distribution over the 256 levels: its bits per dimension need no
    // dequantisation, and beat the 8 bits of a uniform guess once trained.
    let l = train("logistic", &["--likelihood", "logistic"]);
    let ck = elbo::train::load_run(&l).unwrap();
    assert_eq!(
        ck.config.model.likelihood,
        elbo::model::Likelihood::Logistic {
            scale: 0.05,
            learn: elbo::model::SigmaMode::Global,
        }
    );
    let h = &ck.state.history;
    assert!(h[1].test.neg_elbo < h[0].test.neg_elbo, "{h:?}");
    let v = eval_json(&l);
    let (nll, bits) = (
        v["nll"].as_f64().unwrap(),
        v["bits_per_dim"].as_f64().unwrap(),
    );
    assert_eq!(
        v["bits_per_dim_method"],
        "discrete likelihood of the 8-bit values"
    );
    assert!(
        (bits - nll / (784.0 * std::f64::consts::LN_2)).abs() < 1e-9,
        "{v}"
    );
    assert!(bits > 0.0 && bits < 4.0, "{bits}");
    // What needs 8-bit values or Bernoulli pixels says so for a logistic run, whichever command asks.
    let o = run(elbo()
        .arg("sample")
        .arg(&l)
        .arg("--bernoulli")
        .arg("--out")
        .arg(tmp.path().join("s.png")));
    assert_user_error(&o, "this model's is a discretised logistic");
    let floats = tmp.path().join("floats.npy");
    let values = (0..3 * 784).map(|i| (i % 5) as f32 / 5.0);
    std::fs::write(&floats, npy(&[3, 28, 28], values)).unwrap();
    let o = run(elbo()
        .arg("score")
        .arg(&l)
        .arg("--input")
        .arg(&floats)
        .arg("--out")
        .arg(tmp.path().join("sc.csv")));
    assert_user_error(
        &o,
        "discretised logistic models 8-bit values; these items are floats",
    );
    let b = tmp.path().join("binary");
    let o = run(elbo()
        .args([
            "train",
            "--epochs",
            "1",
            "--limit",
            "2000",
            "--binarize",
            "dynamic",
            "--validation",
            "500",
            "--out",
        ])
        .arg(&b)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(b.join("metrics.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row.len(), header.len(), "one value per column: {row:?}");
    let val = header.iter().position(|h| *h == "val_neg_elbo").unwrap();
    assert!(
        row[val].parse::<f64>().unwrap() > 0.0,
        "validation columns filled: {row:?}"
    );
    let splits = elbo::train::load_splits(
        &elbo::train::load_run(&b).unwrap().config,
        Some(&mnist_dir()),
    )
    .unwrap();
    assert!(
        matches!(&splits.test.values, elbo::data::Values::U8(v) if v.iter().all(|&p| p == 0 || p == 255)),
        "binarised test set"
    );
    assert_eq!(
        (splits.train.len(), splits.validation.unwrap().len()),
        (1500, 500)
    );
}

#[test]
fn a_learning_rate_the_weights_cannot_hold_is_refused_before_training() {
    // 1e308 is a finite f64 but infinity in the f32 update: refused up front, not reported as divergence later.
    let tmp = tempfile::tempdir().unwrap();
    for (flags, needle) in [
        (
            vec!["--lr", "1e308"],
            "--lr 1e308 is beyond the largest number",
        ),
        (vec!["--lr", "0"], "--lr 0 must be a positive number"),
        (
            vec!["--lr", "1e-40"],
            "--lr 1e-40 is below the smallest normal f32",
        ),
        (
            vec!["--factor-vae", "35", "--discriminator-lr", "4e38"],
            "--discriminator-lr 4e38 is beyond",
        ),
    ] {
        let out = tmp.path().join("r");
        let o = run(elbo().arg("train").args(&flags).arg("--out").arg(&out));
        assert_user_error(&o, needle);
        assert!(!out.exists(), "{flags:?} wrote a run");
    }
    // A FactorVAE whose discriminator diverges is told of the discriminator's own rate, not only --lr.
    let o = run(elbo()
        .args(["train", "--factor-vae", "35", "--discriminator-lr", "3e38"])
        .args(["--limit", "500", "--epochs", "1", "--out"])
        .arg(tmp.path().join("fv")));
    assert_user_error(&o, "a smaller --lr or --discriminator-lr");
    // The largest f32, as f32 prints it, and the smallest normal one are numbers the weights hold.
    for lr in ["3.4028235e38", "1.2e-38"] {
        let o = run(elbo()
            .args(["train", "--lr", lr, "--limit", "0", "--out"])
            .arg(tmp.path().join("r")));
        assert_user_error(&o, "--limit 0 leaves nothing to train on");
    }
}

#[test]
fn gradient_clipping_is_validated_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("clip");
    let o = run(elbo()
        .args(["train", "--clip-grad-norm", "0"])
        .arg("--out")
        .arg(&out));
    assert_user_error(&o, "--clip-grad-norm 0 must be a positive number");
    let o = run(elbo()
        .args([
            "train",
            "--clip-grad-norm",
            "50",
            "--limit",
            "500",
            "--hidden",
            "32",
            "--epochs",
            "1",
            "--out",
        ])
        .arg(&out)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        elbo::train::load_run(&out)
            .unwrap()
            .config
            .train
            .clip_grad_norm,
        Some(50.0)
    );
}

/// A run that diverges on a learning rate from a config file is told to lower the file's `lr`, not a flag.
#[test]
fn a_divergence_names_the_files_lr() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        "lr = 1000.0\nlimit = 512\nhidden = [32]\nepochs = 1\n",
    )
    .unwrap();
    let o = run(elbo()
        .args(["train", "--threads", "1", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(&o, "diverged at epoch");
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "a smaller lr or with --clip-grad-norm (lr is set in {})",
            cfg.display()
        )),
        "{err}"
    );
}

/// Paths in a config file are read from the folder elbo runs in, as the same flags are, not from the file's.
#[test]
fn a_config_files_paths_are_read_from_the_working_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, work) = (tmp.path().join("cfg"), tmp.path().join("work"));
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        cfg.join("c.toml"),
        "out = \"runs/x\"\nlimit = 200\nepochs = 1\nhidden = [16]\n",
    )
    .unwrap();
    let o = run(elbo()
        .current_dir(&work)
        .args(["train", "--config", "../cfg/c.toml", "--data-dir"])
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(work.join("runs/x/metrics.csv").is_file());
    assert!(!cfg.join("runs").exists());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    // The default model; IWAE-50, whose products' sums are grouped differently when a product is split into
    // fewer parts (the default model's are not); and a conv VAE whose stride-1 layers have 784 windows, so its
    // products go image by image and its weight gradients by groups of images (`core::conv`): batches of 16 images
    // (two groups of 8) and a last one of 9 (one group).
    let models: [&[&str]; 3] = [
        &["--limit", "3000", "--epochs", "2"],
        &[
            "--config",
            "configs/iwae-paper-iwae50.toml",
            "--lr-schedule",
            "constant",
            "--limit",
            "600",
            "--epochs",
            "1",
        ],
        &[
            "--conv",
            "4:3:1:1,8",
            "--hidden",
            "32",
            "--latent",
            "4",
            "--batch-size",
            "16",
            "--limit",
            "249",
            "--epochs",
            "1",
        ],
    ];
    for (m, model) in models.iter().enumerate() {
        let mut runs = Vec::new();
        // Two threads pinned to one core, as `taskset -c 0` or a job's binding would: products are split by the
        // machine's cores, not by the share a process is given, so this is the same run.
        for (threads, pinned) in [("1", false), ("2", false), ("2", true)] {
            let dir = tmp.path().join(format!("m{m}t{threads}{pinned}"));
            let mut cmd = elbo();
            if pinned {
                use std::os::unix::process::CommandExt;
                // SAFETY: between fork and exec only the async-signal-safe sched_setaffinity runs.
                unsafe {
                    cmd.pre_exec(|| {
                        let mut set: libc::cpu_set_t = std::mem::zeroed();
                        libc::CPU_SET(0, &mut set);
                        let size = std::mem::size_of::<libc::cpu_set_t>();
                        if libc::sched_setaffinity(0, size, &set) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            let o = run(cmd
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .arg("train")
                .args(*model)
                .args(["--threads", threads, "--out"])
                .arg(&dir)
                .arg("--data-dir")
                .arg(mnist_dir()));
            assert!(o.status.success(), "{}", stderr(&o));
            runs.push(elbo::train::load_run(&dir).unwrap());
        }
        let test = |r: &elbo::train::Checkpoint| {
            r.state.history.iter().map(|h| h.test).collect::<Vec<_>>()
        };
        for (i, other) in runs.iter().enumerate().skip(1) {
            assert_eq!(
                runs[0].vae.params.data, other.vae.params.data,
                "model {m}: weights bit-identical at 1 thread and in run {i} (2 threads, then pinned to one core)"
            );
            assert_eq!(
                (&runs[0].adam.m, &runs[0].adam.v),
                (&other.adam.m, &other.adam.v)
            );
            assert_eq!(test(&runs[0]), test(other));
        }
    }
}

#[test]
fn threads_flag_sets_the_worker_count() {
    let fixture = fixture_run();
    for n in [1usize, 3] {
        let mut child = elbo()
            .arg("eval")
            .arg(&fixture)
            .args([
                "--k",
                "1000000",
                "--limit",
                "4",
                "--threads",
                &n.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Its pool is up once it samples, which is when it catches Ctrl-C.
        common::wait_until_catching(child.id(), libc::SIGINT);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let threads: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The main thread waits while the N pool workers compute.
        assert_eq!(threads, n + 1, "--threads {n}");
    }
}

#[test]
fn conv_iwae_runs_repeat_bit_for_bit_at_any_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for (i, threads) in ["2", "2", "1"].iter().enumerate() {
        let dir = tmp.path().join(format!("r{i}"));
        let o = run(elbo()
            .args([
                "train",
                "--conv",
                "4,8",
                "--hidden",
                "32",
                "--latent",
                "4",
                "--objective",
                "iwae",
                "--k-train",
                "3",
                "--conditional",
                "--activation",
                "tanh",
                "--limit",
                "600",
                "--epochs",
                "2",
                "--threads",
                threads,
                "--out",
            ])
            .arg(&dir)
            .arg("--data-dir")
            .arg(mnist_dir()));
        assert!(o.status.success(), "{}", stderr(&o));
        let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        // Every column but the wall-clock seconds.
        let metrics: Vec<String> = csv
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(',').collect();
                f.remove(7);
                f.join(",")
            })
            .collect();
        runs.push((elbo::train::load_run(&dir).unwrap(), metrics));
    }
    for (ck, metrics) in &runs[1..] {
        assert_eq!(ck.vae.params.data, runs[0].0.vae.params.data, "weights");
        assert_eq!(
            (&ck.adam.m, &ck.adam.v),
            (&runs[0].0.adam.m, &runs[0].0.adam.v)
        );
        assert_eq!(metrics, &runs[0].1, "metrics.csv");
    }
}

#[test]
fn eval_and_score_use_huge_pages_and_ctrl_c_stops_them_with_a_line() {
    let tmp = tempfile::tempdir().unwrap();
    let items = tmp.path().join("items.npy");
    // 6000 images, 4.7 MB as bytes: a block of more than 4 MB always holds a whole 2 MB page to advise, wherever
    // it lands (200 images' smaller buffers held one only by the luck of their addresses).
    let values = (0..6000 * 784).map(|i| ((i * 7) % 256) as u8);
    std::fs::write(&items, npy(&[6000, 28, 28], values)).unwrap();
    let out = tmp.path().join("scores.csv");
    let mut eval = elbo();
    eval.arg("eval")
        .arg(fixture_run())
        .args(["--k", "1000000", "--json"]);
    let mut score = elbo();
    score
        .arg("score")
        .arg(fixture_run())
        .args(["--k", "1000000", "--input"])
        .arg(&items)
        .arg("--out")
        .arg(&out);
    for (cmd, what) in [(&mut eval, "evaluating"), (&mut score, "scoring")] {
        // Minutes of importance sampling, long enough to be interrupted in; meanwhile, its large buffers are
        // advised 2 MB pages (`hg`), as the README says, where the kernel has them.
        // Minutes of importance sampling, long enough to be interrupted in; meanwhile, its large buffers are
        // advised 2 MB pages (`hg`), as the README says, where the kernel has them.
        let o = interrupted_after(cmd, 1500, |pid| {
            if std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
                let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
                assert!(
                    smaps
                        .lines()
                        .filter_map(|l| l.strip_prefix("VmFlags:"))
                        .any(|f| f.split_whitespace().any(|f| f == "hg")),
                    "{what}: no mapping advised huge pages"
                );
            }
        });
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(130), "{what}: {err}");
        assert!(
            err.contains(&format!("{what} stopped before it finished (Ctrl-C)")),
            "{err}"
        );
        assert!(
            o.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    assert!(!out.exists(), "a stopped score wrote its table");
}
