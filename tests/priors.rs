//! Priors beyond N(0, I) through every command: a learned mixture of Gaussians trains (ELBO and IWAE), resumes
//! bit for bit, is evaluated by importance sampling with its own density, is sampled from, and is refused
//! where it cannot work.

mod common;
use common::*;
use std::path::Path;

fn train(dir: &Path, extra: &[&str]) {
    let o = run(elbo()
        .args([
            "train", "--limit", "1000", "--latent", "4", "--hidden", "64",
        ])
        .args([
            "--prior",
            "mog",
            "--prior-components",
            "5",
            "--seed",
            "3",
            "--threads",
            "2",
        ])
        .args(extra)
        .arg("--out")
        .arg(dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
}

fn eval(dir: &Path, k: usize) -> serde_json::Value {
    let o = run(elbo()
        .arg("eval")
        .arg(dir)
        .args([
            "--k",
            &k.to_string(),
            "--limit",
            "200",
            "--json",
            "--threads",
            "2",
        ])
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn a_mixture_prior_trains_resumes_bit_for_bit_and_is_evaluated_with_its_density() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, halves) = (tmp.path().join("whole"), tmp.path().join("halves"));
    train(&whole, &["--epochs", "2"]);
    train(&halves, &["--epochs", "1"]);
    assert_resumes_to(
        &whole,
        &halves,
        "2",
        "the prior's weights and Adam's moments for them are saved and read back",
    );
    let config = std::fs::read_to_string(whole.join("config.json")).unwrap();
    assert!(config.contains("\"mixture\""), "{config}");

    // Importance sampling with the mixture's density: one sample is the ELBO in expectation, more tighten it.
    let (one, few, many) = (eval(&whole, 1), eval(&whole, 5), eval(&whole, 200));
    assert_importance_sampling_tightens(&one, &few, &many);

    let png = tmp.path().join("s.png");
    let o = run(elbo()
        .arg("sample")
        .arg(&whole)
        .args(["-n", "9", "--out"])
        .arg(&png));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::metadata(&png).unwrap().len() > 0);

    // Figures that place codes by N(0, 1) say so for a learned prior.
    for (name, says) in [
        ("manifold", "not those of this model's learned prior"),
        ("traverse", "ranked by each dimension's KL from N(0, 1)"),
    ] {
        let out = tmp.path().join(format!("{name}.png"));
        let o = run(elbo()
            .arg(name)
            .arg(&whole)
            .arg("--out")
            .arg(&out)
            .env("ELBO_DATA_DIR", mnist_dir()));
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{name}: {}", stderr(&o));
    }
}

#[test]
fn a_mixture_prior_trains_with_the_iwae_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("iwae");
    train(
        &dir,
        &["--epochs", "1", "--objective", "iwae", "--samples", "5"],
    );
    let v = eval(&dir, 20);
    assert!(v["nll"].as_f64().unwrap().is_finite(), "{v}");
}

#[test]
fn what_a_mixture_prior_cannot_do_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for (flags, why) in [
        (
            &["--prior-components", "5"][..],
            "--prior-components goes with --prior=mog",
        ),
        (
            &["--prior", "mog", "--free-bits", "0.5"][..],
            "only --prior=normal has it",
        ),
        (
            &["--prior", "mog", "--model", "ae"][..],
            "an autoencoder has none",
        ),
        (
            &["--prior", "mog", "--prior-components", "0"][..],
            "between 1 and 4096",
        ),
    ] {
        assert_train_refused(&out, flags, why);
    }
}

#[test]
fn a_vamp_prior_trains_resumes_bit_for_bit_and_works_with_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, halves) = (tmp.path().join("whole"), tmp.path().join("halves"));
    let vamp = ["--prior", "vamp", "--prior-components", "20"];
    let train = |dir: &Path, epochs: &str| {
        run(elbo()
            .args([
                "train", "--limit", "1000", "--latent", "4", "--hidden", "64",
            ])
            .args(vamp)
            .args(["--seed", "3", "--threads", "2", "--epochs", epochs])
            .arg("--out")
            .arg(dir)
            .arg("--data-dir")
            .arg(mnist_dir()))
    };
    let o = train(&whole, "2");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("prior: VampPrior of 20")
            || String::from_utf8_lossy(&o.stdout).contains("prior: VampPrior of 20")
    );
    assert!(train(&halves, "1").status.success());
    assert_resumes_to(
        &whole,
        &halves,
        "2",
        "the pseudo-inputs and Adam's moments for them are saved and read back",
    );
    let (one, few, many) = (eval(&whole, 1), eval(&whole, 5), eval(&whole, 200));
    assert_importance_sampling_tightens(&one, &few, &many);
    for (name, args) in [
        ("sample", &["-n", "9"][..]),
        ("traverse", &[][..]),
        ("manifold", &[][..]),
    ] {
        let out = tmp.path().join(format!("{name}.png"));
        let o = run(elbo()
            .arg(name)
            .arg(&whole)
            .args(args)
            .arg("--out")
            .arg(&out)
            .env("ELBO_DATA_DIR", mnist_dir()));
        assert!(o.status.success(), "{name}: {}", stderr(&o));
    }
    let out = tmp.path().join("refused");
    let csv = tmp.path().join("t.csv");
    let rows: String = (0..40)
        .map(|i| format!("{i},{},{}\n", i * i % 7, 40 - i))
        .collect();
    std::fs::write(&csv, format!("a,b,c\n{rows}")).unwrap();
    assert_train_refused(
        &out,
        &["--prior", "vamp", "--data", csv.to_str().unwrap()],
        "this data is a table of 3 standardised features: use --prior=mog or --prior=normal",
    );
    for (flags, why) in [
        (
            &["--prior", "vamp", "--conditional"][..],
            "which --conditional does not allow",
        ),
        (
            &["--prior", "vamp", "--batch-norm"][..],
            "which --batch-norm does not allow",
        ),
        (
            &["--prior", "vamp", "--model", "ae"][..],
            "--prior=vamp is a prior over a VAE's codes",
        ),
        (
            &["--prior", "vamp", "--free-bits", "1"][..],
            "only --prior=normal has it",
        ),
        (
            &["--prior", "vamp", "--latent", "4,2", "--hidden", "8/4"][..],
            "--prior=vamp with more than one latent layer",
        ),
    ] {
        assert_train_refused(&out, flags, why);
    }
}
