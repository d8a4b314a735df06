//! Flow posteriors through every command: planar and IAF models train (ELBO and IWAE, with a learned prior too),
//! resume bit for bit, are evaluated by importance sampling with the flow's log-determinant, encode to the flow's
//! image of the base mean, decode, sample and draw every figure, and are refused where they cannot work.

mod common;
use common::*;
use std::path::Path;

fn train(dir: &Path, flow: &str, extra: &[&str]) -> std::process::Output {
    run(elbo()
        .args([
            "train", "--limit", "1000", "--latent", "4", "--hidden", "64",
        ])
        .args(["--flow", flow, "--seed", "3", "--threads", "2"])
        .args(extra)
        .arg("--out")
        .arg(dir)
        .arg("--data-dir")
        .arg(mnist_dir()))
}

#[test]
fn flow_posteriors_train_resume_and_work_with_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    for (flow, saved, summary) in [
        (
            "planar:3",
            serde_json::json!({"kind": "planar", "layers": 3}),
            "3 planar maps over 4 values",
        ),
        (
            "iaf:2:16",
            serde_json::json!({"kind": "iaf", "blocks": 2, "hidden": 16}),
            "2 IAF blocks over 4 values, each a MADE 4-16-16-8",
        ),
    ] {
        let (whole, halves) = (tmp.path().join("whole"), tmp.path().join("halves"));
        let o = train(&whole, flow, &["--epochs", "3", "--force"]);
        assert!(o.status.success(), "{flow}: {}", stderr(&o));
        let printed = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
        assert!(printed.contains(summary), "{printed}");
        assert!(
            train(&halves, flow, &["--epochs", "2", "--force"])
                .status
                .success()
        );
        assert_resumes_to(
            &whole,
            &halves,
            "3",
            "the flow's weights and Adam's moments for them are saved and read back",
        );
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(whole.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["model"]["flow"], saved, "{flow}");

        let (one, few, many) = (
            eval_json(&whole, 1),
            eval_json(&whole, 10),
            eval_json(&whole, 300),
        );
        assert_importance_sampling_tightens(&one, &few, &many);

        let csv = tmp.path().join("codes.csv");
        let o = run_on(
            &whole,
            "encode",
            &["--out", csv.to_str().unwrap(), "--force"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("mu is the flow's image of the base Gaussian's mean"),
            "{}",
            stderr(&o)
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
                &[args, &["--out", out.to_str().unwrap(), "--force"]].concat(),
            );
            assert!(o.status.success(), "{flow} {name}: {}", stderr(&o));
            if name == "traverse" {
                let says = "with --flow=";
                assert!(stderr(&o).contains(says), "{}", stderr(&o));
            }
            assert!(std::fs::metadata(&out).unwrap().len() > 0, "{name}");
        }
    }
}

/// The IWAE bound and a learned mixture prior train through a flow, and its importance-sampled bound is tighter
/// than its ELBO.
#[test]
fn flows_train_with_the_iwae_bound_and_a_learned_prior() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("iwae");
    let o = train(
        &dir,
        "iaf:1:8",
        &[
            "--epochs",
            "1",
            "--objective",
            "iwae",
            "--k-train",
            "5",
            "--prior",
            "mog",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v = eval_json(&dir, 20);
    assert!(
        v["nll"].as_f64().unwrap() < v["neg_elbo"].as_f64().unwrap(),
        "{v}"
    );
}

#[test]
fn what_a_flow_cannot_do_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for (flags, why) in [
        (
            &["--flow", "planar:0"][..],
            "--flow needs between 1 and 64 planar maps (K in planar:K), not 0",
        ),
        (
            &["--flow", "iaf:0"][..],
            "--flow needs between 1 and 64 IAF blocks (B in iaf:B:H), not 0",
        ),
        (
            &["--flow", "iaf:64:65536"][..],
            "more than the 268435456 accepted",
        ),
        (
            &["--flow", "iaf:2:0"][..],
            "--flow=iaf:2:0: the MADE's hidden width 0 must be between 1 and 65536",
        ),
        (
            &["--flow", "planar", "--model", "ae"][..],
            "--flow=planar:8 transforms a VAE's posterior draws; an autoencoder draws none",
        ),
        (
            &["--flow", "iaf", "--free-bits", "0.5"][..],
            "a posterior with --flow=iaf:2:128 has it by Monte Carlo only",
        ),
        (
            &["--flow", "planar:2", "--latent", "8,3", "--hidden", "64/16"][..],
            "--flow=planar:2 with more than one latent layer is not supported",
        ),
    ] {
        assert_train_refused(&out, flags, why);
    }
    let o = run(elbo()
        .args(["train", "--flow", "planar:99999999999999999999", "--out"])
        .arg(&out));
    let says = "99999999999999999999 is far too large";
    assert!(stderr(&o).contains(says), "{}", stderr(&o));
    for bad in ["maf:2", "planar:x", "iaf:1:2:3"] {
        let o = run(elbo().args(["train", "--flow", bad, "--out"]).arg(&out));
        assert!(!o.status.success(), "{bad}");
        assert!(stderr(&o).contains("give planar:K"), "{}", stderr(&o));
    }
}
