//! The IWAE family's variants from the command line: MIWAE, CIWAE and PIWAE train, say which bound they report, resume
//! bit for bit, and refuse settings that belong to another objective.

mod common;
use common::*;
use std::path::Path;

fn train(dir: &Path, args: &[&str]) -> std::process::Output {
    run(elbo()
        .args([
            "train", "--limit", "1000", "--latent", "4", "--hidden", "64",
        ])
        .args(["--seed", "5", "--threads", "2"])
        .args(args)
        .arg("--out")
        .arg(dir)
        .arg("--data-dir")
        .arg(mnist_dir()))
}

#[test]
fn miwae_ciwae_and_piwae_train_report_their_bound_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, args, label) in [
        (
            "miwae",
            &["--objective", "miwae", "--groups", "2", "--k-train", "3"][..],
            "train -MIWAE(M=2, K=3)",
        ),
        (
            "ciwae",
            &[
                "--objective",
                "ciwae",
                "--ciwae-beta",
                "0.25",
                "--k-train",
                "4",
            ][..],
            "train -CIWAE(β=0.25, K=4)",
        ),
        (
            "piwae",
            &["--objective", "piwae", "--groups", "3", "--k-train", "1"][..],
            "train -IWAE(k=3) of PIWAE(M=3, K=1)",
        ),
    ] {
        let whole = tmp.path().join(name);
        let o = train(&whole, &[args, &["--epochs", "2"]].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(label), "{name}: {out}");
        let halves = tmp.path().join(format!("{name}-halves"));
        let o = train(&halves, &[args, &["--epochs", "1"]].concat());
        assert!(o.status.success(), "{}", stderr(&o));
        assert_resumes_to(
            &whole,
            &halves,
            "2",
            &format!("{name}: resumed run differs"),
        );
    }
    let config = std::fs::read_to_string(tmp.path().join("miwae/config.json")).unwrap();
    assert!(
        config.contains("\"groups\": 2") && config.contains("\"samples\": 6"),
        "{config}"
    );
}

#[test]
fn settings_of_another_objective_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for (args, why) in [
        (
            &["--groups", "2"][..],
            "--groups goes with --objective=miwae or --objective=piwae",
        ),
        (
            &["--objective", "piwae", "--groups", "1"][..],
            "--objective=piwae with one sample in all is the ELBO",
        ),
        (
            &["--objective", "piwae", "--k-train", "3", "--prior", "mog"][..],
            "--objective=piwae splits the decoder's gradient from the encoder's, which elbo does not do for a learned prior (--prior=mog)",
        ),
        (
            &["--objective", "ciwae"][..],
            "is the ELBO: give --k-train K",
        ),
        (
            &["--objective", "iwae", "--ciwae-beta", "0.5"][..],
            "--ciwae-beta goes with --objective=ciwae",
        ),
        (
            &[
                "--objective",
                "ciwae",
                "--ciwae-beta",
                "1.5",
                "--k-train",
                "3",
            ][..],
            "must be between 0 and 1",
        ),
        (
            &["--objective", "miwae", "--groups", "0", "--k-train", "3"][..],
            "--groups 0",
        ),
        (
            &["--objective", "miwae", "--free-bits", "1", "--k-train", "3"][..],
            "nor have MIWAE, PIWAE and CIWAE",
        ),
        (
            &["--objective", "iwae", "--beta", "4", "--k-train", "3"][..],
            "--beta, --warmup-epochs, --capacity and --free-bits shape the ELBO's KL term",
        ),
        (
            &[
                "--objective",
                "ciwae",
                "--warmup-epochs",
                "2",
                "--k-train",
                "3",
            ][..],
            "whose ELBO share is --ciwae-beta",
        ),
    ] {
        let o = train(&out, &[args, &["--epochs", "1"]].concat());
        assert_user_error(&o, why);
        assert!(!out.exists(), "{args:?}: a refusal writes nothing");
    }
    assert_train_refused(
        &out,
        &[
            "--objective",
            "piwae",
            "--k-train",
            "3",
            "--latent",
            "4,2",
            "--hidden",
            "8/8",
        ],
        "which elbo does not do for more than one latent layer",
    );
}
