//! Stacked latent layers through every command: a two-layer model trains (ELBO and IWAE), resumes bit for bit,
//! is evaluated by importance sampling over the whole hierarchy, encodes to and decodes from its top layer, is
//! sampled from, and is refused where it cannot work.

mod common;
use common::*;
use std::path::Path;

fn train(dir: &Path, extra: &[&str]) -> std::process::Output {
    run(elbo()
        .args([
            "train", "--limit", "1000", "--latent", "8,3", "--hidden", "64/16",
        ])
        .args(["--activation", "tanh", "--seed", "3", "--threads", "2"])
        .args(extra)
        .arg("--out")
        .arg(dir)
        .arg("--data-dir")
        .arg(mnist_dir()))
}

#[test]
fn two_latent_layers_train_resume_and_work_with_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, halves) = (tmp.path().join("whole"), tmp.path().join("halves"));
    let o = train(&whole, &["--epochs", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert!(
        summary.contains("latent z2") && summary.contains("q2.0 Dense"),
        "{summary}"
    );
    assert!(train(&halves, &["--epochs", "2"]).status.success());
    assert_resumes_to(
        &whole,
        &halves,
        "3",
        "every layer's weights and Adam's moments for them are saved and read back",
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["model"]["upper"],
        serde_json::json!([{"latent": 3, "hidden": [16]}])
    );

    // Importance sampling weights the whole hierarchy: K = 1 is the ELBO in expectation, more tighten it.
    let (one, few, many) = (
        eval_json(&whole, 1),
        eval_json(&whole, 10),
        eval_json(&whole, 300),
    );
    assert_importance_sampling_tightens(&one, &few, &many);

    // Codes are the top layer's: three dimensions, and the message says which layer.
    let csv = tmp.path().join("codes.csv");
    let o = run_on(&whole, "encode", &["--out", csv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("of z2, the top of 2 latent layers"),
        "{}",
        stderr(&o)
    );
    let header = std::fs::read_to_string(&csv).unwrap();
    let header = header.lines().next().unwrap();
    assert!(
        header.ends_with("mu_2,logvar_0,logvar_1,logvar_2"),
        "{header}"
    );
    let png = tmp.path().join("d.png");
    let o = run_on(
        &whole,
        "decode",
        &["--z", "0.5,-1,0", "--out", png.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_on(
        &whole,
        "decode",
        &[
            "--z",
            "0,0,0,0,0,0,0,0",
            "--out",
            png.to_str().unwrap(),
            "--force",
        ],
    );
    assert_user_error(
        &o,
        "has 8 values; this model's latent space has 3 dimensions (z2, the top of its 2 latent layers)",
    );
    for (name, args) in [
        ("sample", &["-n", "9"][..]),
        ("traverse", &[][..]),
        ("manifold", &[][..]),
        ("interpolate", &["--from", "0", "--to", "1"][..]),
        ("reconstruct", &[][..]),
        ("latent-plot", &[][..]),
    ] {
        let out = tmp.path().join(format!("{name}.png"));
        let o = run_on(
            &whole,
            name,
            &[args, &["--out", out.to_str().unwrap()]].concat(),
        );
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(std::fs::metadata(&out).unwrap().len() > 0, "{name}");
        if name == "traverse" {
            let says = "rows are dimensions of z2, the top of 2 latent layers";
            assert!(stderr(&o).contains(says), "{}", stderr(&o));
        }
    }
}

#[test]
fn two_latent_layers_train_with_the_iwae_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("iwae");
    let o = train(
        &dir,
        &["--epochs", "1", "--objective", "iwae", "--k-train", "5"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v = eval_json(&dir, 20);
    assert!(
        v["nll"].as_f64().unwrap() < v["neg_elbo"].as_f64().unwrap(),
        "{v}"
    );
    // Active units are counted over the top layer's code, and say so.
    assert_eq!(v["active_units_layer"], "z2", "{v}");
    let o = run(elbo().args(["eval", dir.to_str().unwrap(), "--k", "2", "--limit", "20"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("latent units of z2, the top of 2 latent layers"),
        "{text}"
    );
}

#[test]
fn what_stacked_layers_cannot_do_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for (flags, why) in [
        (
            &["--latent", "8,3", "--hidden", "64"][..],
            "--latent gives 2 latent layers but --hidden gives 1 group of widths",
        ),
        (
            &["--latent", "8", "--hidden", "64/16"][..],
            "--hidden gives 2 groups of widths",
        ),
        (
            &["--latent", "8,3", "--hidden", "64/16", "--batch-norm"][..],
            "batch norm (--batch-norm, or a preset that has it: --arch pytorch-vae) with more than one latent layer",
        ),
        (
            &["--latent", "8,3", "--hidden", "64/16", "--prior", "mog"][..],
            "--prior=mog with more than one latent layer",
        ),
        (
            &["--latent", "8,3", "--hidden", "64/16", "--model", "ae"][..],
            "--model=autoencoder with more than one latent layer",
        ),
        (
            &["--latent", "8,3", "--hidden", "64/16", "--free-bits", "0.5"][..],
            "by Monte Carlo only",
        ),
        (
            &["--latent", "8,0", "--hidden", "64/16"][..],
            "--latent 0 must be between 1 and 4096",
        ),
    ] {
        assert_train_refused(&out, flags, why);
    }
    let deep = ["4"; 17].join(",");
    let widths = ["8"; 17].join("/");
    assert_train_refused(
        &out,
        &["--latent", &deep, "--hidden", &widths],
        "use fewer --hidden widths, --conv layers or latent layers (--latent)",
    );
    let file = tmp.path().join("c.toml");
    for (toml, why) in [
        (
            "latent = [16, -8]\nhidden = [[64], [32]]\n",
            "-8: expected a whole number, 1 or more",
        ),
        ("latent = [16, 8.5]\n", "expected a whole number"),
        (
            "latent = [16, 8]\nhidden = [[[64]], [32]]\n",
            "a list inside the list",
        ),
    ] {
        std::fs::write(&file, toml).unwrap();
        assert_train_refused(&out, &["--config", file.to_str().unwrap()], why);
    }
    for text in ["64/", "/", "64//16"] {
        let o = run(elbo()
            .args(["train", "--latent", "8,3", "--hidden", text, "--out"])
            .arg(&out));
        assert!(!o.status.success() && !out.exists(), "{text}");
        assert!(
            stderr(&o).contains("is not widths separated by commas"),
            "{text}: {}",
            stderr(&o)
        );
    }
    let o = run(elbo().args(["train", "--latent", "8,x", "--out"]).arg(&out));
    assert!(!o.status.success() && !out.exists());
    assert!(
        stderr(&o).contains("'8,x' is not dimensions separated by commas"),
        "{}",
        stderr(&o)
    );
}

/// The stack's per-code loops, the reparameterisation and the noise draws are split between threads: the weights
/// after an IWAE epoch must not depend on how. The sizes make each of them large enough to be split.
#[test]
fn two_layer_iwae_weights_do_not_depend_on_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let mut weights = Vec::new();
    for threads in ["1", "2"] {
        let dir = tmp.path().join(format!("t{threads}"));
        let o = run(elbo()
            .args([
                "train", "--limit", "600", "--latent", "40,20", "--hidden", "64/32",
            ])
            .args(["--activation", "tanh", "--seed", "5", "--threads", threads])
            .args(["--epochs", "1", "--objective", "iwae", "--k-train", "20"])
            .arg("--out")
            .arg(&dir)
            .arg("--data-dir")
            .arg(mnist_dir()));
        assert!(o.status.success(), "{}", stderr(&o));
        weights.push(elbo::train::load_run(&dir).unwrap().vae.params.data);
    }
    assert_eq!(
        weights[0], weights[1],
        "weights bit-identical at 1 and 2 threads"
    );
}
