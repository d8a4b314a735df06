//! Defects found by trying elbo as a hostile user would (issue 10), each with the command that showed it.

mod common;

use common::*;
use std::path::Path;
use std::process::Stdio;

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn unbounded_and_blocking_reads_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // A config that never ends, and one far larger than any real config.
    let o = run(elbo().args(["train", "--config", "/dev/zero"]));
    assert_user_error(&o, "not a regular file");
    let big = tmp.path().join("big.toml");
    std::fs::write(&big, format!("hidden = [{}1]\n", "1,".repeat(1 << 20))).unwrap();
    let o = run(elbo().args(["train", "--config"]).arg(&big));
    assert_user_error(
        &o,
        "larger than the 1048576 bytes accepted for a config file",
    );
    // A FIFO where the checkpoint belongs would block a reader forever.
    let run_dir = tmp.path().join("fifo-run");
    std::fs::create_dir_all(&run_dir).unwrap();
    mkfifo(&run_dir.join("checkpoint.safetensors"));
    let started = std::time::Instant::now();
    let o = run(elbo().args(["eval", "--k", "1"]).arg(&run_dir));
    assert_user_error(&o, "not a regular file");
    assert!(started.elapsed().as_secs() < 20);
    // Too many layers are refused before anything is built.
    let many = vec!["4"; 70].join(",");
    let o = run(elbo()
        .args(["train", "--hidden", &many, "--out"])
        .arg(tmp.path().join("r")));
    assert_user_error(&o, "more than the 64 accepted");
}

#[test]
fn threads_are_capped_and_outputs_never_replace_what_elbo_did_not_write() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(elbo()
        .args(["train", "--threads", "100000", "--out"])
        .arg(tmp.path().join("r")));
    assert_user_error(&o, "--threads 100000 is more than 4 per core");
    let o = run(elbo()
        .args(["eval", "--threads", "100000"])
        .arg(fixture_run()));
    assert_user_error(&o, "--threads 100000");
    // --force replaces regular files only: not a symbolic link, a FIFO or a device.
    let target = tmp.path().join("precious.txt");
    std::fs::write(&target, "keep me").unwrap();
    let link = tmp.path().join("link.png");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fifo = tmp.path().join("fifo.png");
    mkfifo(&fifo);
    for out in [link.as_path(), fifo.as_path(), Path::new("/dev/null")] {
        let o = run(elbo()
            .arg("sample")
            .arg(fixture_run())
            .args(["--force", "--out"])
            .arg(out));
        assert_user_error(&o, "is not a regular file");
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // A run directory named by an existing file gets a sentence, not "File exists (os error 17)".
    let file = tmp.path().join("afile");
    std::fs::write(&file, "x").unwrap();
    let o = run(elbo()
        .args(["train", "--epochs", "1", "--data-dir"])
        .arg(mnist_dir())
        .arg("--out")
        .arg(&file));
    assert_user_error(&o, "is a file, not a folder");
}

/// IDX files of `train` and `test` images of 28×28 (labels 0).
fn idx_dataset(dir: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let names = elbo::data::named::FILE_NAMES;
    for (i, n) in [(0, train), (2, test)] {
        let im = elbo::data::idx::encode_idx(&[n, 28, 28], &vec![30u8; n * 784]);
        let lb = elbo::data::idx::encode_idx(&[n], &vec![0u8; n]);
        std::fs::write(dir.join(names[i].trim_end_matches(".gz")), im).unwrap();
        std::fs::write(dir.join(names[i + 1].trim_end_matches(".gz")), lb).unwrap();
    }
}

#[test]
fn empty_splits_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    for (train, test, needle) in [
        (0, 5, "0 training and 5 test"),
        (5, 0, "5 training and 0 test"),
    ] {
        let data = tmp.path().join(format!("d{train}{test}"));
        idx_dataset(&data, train, test);
        let out = tmp.path().join("run");
        let o = run(elbo()
            .args(["train", "--epochs", "1", "--data-dir"])
            .arg(&data)
            .arg("--out")
            .arg(&out));
        assert_user_error(&o, needle);
        assert!(!out.exists());
    }
    // eval of a trained run against a data folder whose test split is empty.
    let data = tmp.path().join("empty-test");
    idx_dataset(&data, 0, 0);
    let o = run(elbo()
        .args(["eval", "--k", "2", "--data-dir"])
        .arg(&data)
        .arg(fixture_run()));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn a_closed_pipe_ends_training_quietly_and_autoencoders_print_no_kl() {
    let tmp = tempfile::tempdir().unwrap();
    // `elbo train … | head -1`: stdout closes after the first line.
    let mut child = elbo()
        .args([
            "train", "--model", "ae", "--epochs", "3", "--limit", "500", "--hidden", "16",
            "--latent", "2",
        ])
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(tmp.path().join("ae"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
        r.read_line(&mut first).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(o.status.code(), Some(101));
    assert!(
        first.contains("train recon") && !first.contains("KL"),
        "{first}"
    );
}

#[test]
fn odd_last_batches_and_resumes_do_not_depend_on_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let train = |dir: &Path, limit: usize, threads: &str, epochs: &str| {
        let o = run(elbo()
            .args([
                "train",
                "--hidden",
                "64",
                "--epochs",
                epochs,
                "--threads",
                threads,
            ])
            .args(["--limit", &limit.to_string(), "--out"])
            .arg(dir)
            .arg("--data-dir")
            .arg(mnist_dir()));
        assert!(o.status.success(), "{}", stderr(&o));
        elbo::train::load_run(dir).unwrap()
    };
    // Last batches of 1, 31, 32, 33 and 127 rows after two full batches of 128.
    for last in [1usize, 31, 32, 33, 127] {
        let limit = 256 + last;
        let runs: Vec<_> = ["1", "2", "3"]
            .iter()
            .map(|t| train(&tmp.path().join(format!("b{last}-t{t}")), limit, t, "2"))
            .collect();
        for (t, r) in runs.iter().enumerate().skip(1) {
            let worst = runs[0]
                .vae
                .params
                .data
                .iter()
                .zip(&r.vae.params.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                runs[0].vae.params.data == r.vae.params.data,
                "last batch of {last}: {} threads differ from 1 by up to {worst}",
                t + 1
            );
        }
    }
    // 2 epochs at 2 threads = 1 epoch at 1 thread resumed for a second at 2.
    let whole = train(&tmp.path().join("whole"), 2080, "2", "2");
    let part = tmp.path().join("part");
    train(&part, 2080, "1", "1");
    let o = run(elbo()
        .args(["train", "--resume"])
        .arg(&part)
        .args(["--epochs", "2", "--threads", "2", "--data-dir"])
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        whole.vae.params.data == elbo::train::load_run(&part).unwrap().vae.params.data,
        "resumed at another thread count"
    );
}
