//! Defects found by trying elbo as a hostile user would (issue 10), each with the command that showed it.

mod common;

use common::*;
use elbo::train::checkpoint::{CHECKPOINT, PREVIOUS};
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

/// Waits until `path` exists, failing after a minute.
fn wait_for(path: &Path) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed().as_secs() < 60,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn send(child: &std::process::Child, signal: i32) {
    // SAFETY: signalling our own child by its PID.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
}

#[test]
fn a_run_stopped_in_its_first_epoch_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |dir: &Path| {
        let mut c = elbo();
        c.args([
            "train",
            "--limit",
            "20000",
            "--epochs",
            "1",
            "--threads",
            "1",
        ])
        .arg("--out")
        .arg(dir)
        .arg("--data-dir")
        .arg(mnist_dir());
        c
    };
    let whole = tmp.path().join("whole");
    let o = run(&mut args(&whole));
    assert!(o.status.success(), "{}", stderr(&o));

    // SIGTERM as soon as the initial checkpoint exists, well inside epoch 1.
    let part = tmp.path().join("part");
    let child = args(&part)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&part.join(CHECKPOINT));
    send(&child, libc::SIGTERM);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(143), "{err}");
    assert!(
        err.contains("interrupted; the checkpoint of epoch 0 is kept") && err.contains("--resume"),
        "{err}"
    );
    // Readers find the initial weights meanwhile.
    let ck = elbo::train::load_run(&part).unwrap();
    assert_eq!(ck.state.epoch, 0);
    let o = run(elbo()
        .args(["sample", "-n", "4", "--out"])
        .arg(tmp.path().join("s.png"))
        .arg(&part));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(elbo()
        .args(["train", "--resume"])
        .arg(&part)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        elbo::train::load_run(&whole).unwrap().vae.params.data
            == elbo::train::load_run(&part).unwrap().vae.params.data,
        "a run interrupted in epoch 1 and resumed differs from one never interrupted"
    );

    // A run whose first save never happened (killed between config.json and its checkpoint) resumes from
    // config.json, and readers say why there is nothing to read yet.
    let bare = tmp.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::copy(whole.join("config.json"), bare.join("config.json")).unwrap();
    let o = run(elbo()
        .args(["sample", "--out"])
        .arg(tmp.path().join("bare.png"))
        .arg(&bare));
    assert_user_error(&o, "no checkpoint yet");
    let o = run(elbo()
        .args(["train", "--resume"])
        .arg(&bare)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        elbo::train::load_run(&whole).unwrap().vae.params.data
            == elbo::train::load_run(&bare).unwrap().vae.params.data
    );

    // A damaged config.json is rewritten from the checkpoint when the run is resumed.
    std::fs::write(part.join("config.json"), b"{ damaged").unwrap();
    let o = run(elbo()
        .args(["train", "--resume"])
        .arg(&part)
        .args(["--epochs", "2", "--data-dir"])
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(part.join("config.json")).unwrap();
    let cfg = elbo::train::RunConfig::from_json(&text).unwrap();
    assert_eq!(cfg.train.epochs, 2);
}

#[test]
fn one_trainer_per_run_while_readers_always_find_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // A small model saves many checkpoints a second, so readers keep landing beside a save.
    let trainer = elbo()
        .args([
            "train", "--limit", "1000", "--hidden", "16", "--latent", "2",
        ])
        .args(["--epochs", "100000", "--threads", "1", "--out"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&dir.join(PREVIOUS));
    let o = run(elbo()
        .args(["train", "--resume"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(
        &o,
        &format!(
            "being trained by another elbo process (pid {})",
            trainer.id()
        ),
    );
    let o = run(elbo()
        .args(["train", "--force", "--limit", "1000", "--out"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(&o, "being trained by another elbo process");
    let mut reads = 0;
    for i in 0..60 {
        let o = run(elbo()
            .args(["sample", "-n", "1", "--force", "--out"])
            .arg(tmp.path().join(format!("s{}.png", i % 2)))
            .arg(&dir));
        assert!(o.status.success(), "read {i}: {}", stderr(&o));
        assert!(!stderr(&o).contains("warning"), "read {i}: {}", stderr(&o));
        reads += 1;
    }
    send(&trainer, libc::SIGINT);
    let o = trainer.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert_eq!(reads, 60);
    // The lock went with the process.
    let next = elbo::train::load_run(&dir).unwrap().state.epoch + 1;
    let o = run(elbo()
        .args(["train", "--resume"])
        .arg(&dir)
        .args(["--epochs", &next.to_string(), "--data-dir"])
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_save_beyond_the_file_size_limit_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let o = run(elbo()
        .args([
            "train", "--limit", "1000", "--hidden", "16", "--latent", "2",
        ])
        .args(["--epochs", "2", "--threads", "1", "--out"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let newest = std::fs::read(dir.join(CHECKPOINT)).unwrap();
    let previous = std::fs::read(dir.join(PREVIOUS)).unwrap();
    assert!(newest.len() > 200 << 10, "{} bytes", newest.len());
    // 100 KiB: room for config.json, not for a checkpoint of about 300 KiB.
    let o = run(std::process::Command::new("bash")
        .arg("-c")
        .arg("ulimit -f 100; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_elbo"))
        .args(["train", "--epochs", "3", "--resume"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(&o, "File too large");
    assert_user_error(&o, "raise the file size limit (ulimit -f)");
    assert_user_error(&o, "the checkpoint of epoch 2 is kept");
    assert_eq!(std::fs::read(dir.join(CHECKPOINT)).unwrap(), newest);
    assert_eq!(std::fs::read(dir.join(PREVIOUS)).unwrap(), previous);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_autoencoder_manifold_spans_its_codes_not_the_prior() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ae");
    let o = run(elbo()
        .args(["train", "--model", "ae", "--epochs", "1", "--limit", "500"])
        .args(["--hidden", "16", "--latent", "2", "--out"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.join("manifold.png").is_file());
    let o = run(elbo()
        .args(["manifold", "--out"])
        .arg(tmp.path().join("m.png"))
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(elbo()
        .args(["manifold", "--range", "quantile:0.05,0.95", "--out"])
        .arg(tmp.path().join("q.png"))
        .arg(&dir));
    assert_user_error(&o, "an autoencoder has no prior");
}

#[test]
fn resumes_are_checked_before_anything_is_written_and_failures_leave_runs_readable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let small = [
        "--limit",
        "1000",
        "--hidden",
        "16",
        "--latent",
        "2",
        "--threads",
        "1",
    ];
    let o = run(elbo()
        .arg("train")
        .args(small)
        .args(["--epochs", "2", "--out"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    let resume = |extra: &[&str]| {
        run(elbo()
            .args(["train", "--resume"])
            .arg(&dir)
            .args(extra)
            .arg("--data-dir")
            .arg(mnist_dir()))
    };
    // An epoch count every later load would refuse never reaches a checkpoint.
    assert_user_error(&resume(&["--epochs", "1000001"]), "--epochs 1000001");
    assert_user_error(&resume(&["--epochs", "1"]), "fewer than the 2 epochs");
    assert_user_error(&resume(&["--force"]), "--force does not go with --resume");
    let o = run(elbo()
        .args(["sample", "--out"])
        .arg(tmp.path().join("s.png"))
        .arg(&dir));
    assert!(
        o.status.success() && !stderr(&o).contains("warning"),
        "{}",
        stderr(&o)
    );
    assert_eq!(elbo::train::load_run(&dir).unwrap().config.train.epochs, 2);

    // A folder that holds no run is refused without anything written into it.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = run(elbo().args(["train", "--resume"]).arg(&empty));
    assert_user_error(&o, "no checkpoint here");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);

    // --force checks every file it would remove first: a folder among them leaves the old run whole.
    std::fs::remove_file(dir.join("samples.png")).unwrap();
    std::fs::create_dir(dir.join("samples.png")).unwrap();
    let o = run(elbo()
        .arg("train")
        .args(small)
        .args(["--force", "--out"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(&o, "not a regular file");
    assert_eq!(elbo::train::load_run(&dir).unwrap().state.epoch, 2);

    // Test metrics that turn NaN stop training like a NaN loss, and what is kept loads without a fallback.
    let nan = tmp.path().join("nan");
    let o = run(elbo()
        .arg("train")
        .args(small)
        .args(["--lr", "1e4", "--epochs", "3", "--out"])
        .arg(&nan)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(&o, "diverged at epoch");
    let err = stderr(&o);
    let epoch: usize = err
        .split("diverged at epoch ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        err.contains(&format!("checkpoint of epoch {}", epoch - 1)),
        "{err}"
    );
    let o = run(elbo()
        .args(["sample", "--out"])
        .arg(tmp.path().join("n.png"))
        .arg(&nan));
    assert!(
        o.status.success() && !stderr(&o).contains("warning"),
        "{}",
        stderr(&o)
    );
    assert_eq!(elbo::train::load_run(&nan).unwrap().state.epoch, epoch - 1);
}

/// A one-epoch MNIST run with 16 hidden units, for the commands that read a run.
fn train_small(dir: &Path) {
    let o = run(elbo()
        .args([
            "train", "--epochs", "1", "--limit", "500", "--hidden", "16", "--out",
        ])
        .arg(dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn an_evaluation_that_overflows_fails_after_printing_its_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    train_small(&dir);
    // An encoder head bias of 1e30 is finite, so the checkpoint loads, but σ = exp(½·1e30) overflows.
    let mut ck = elbo::train::load_run(&dir).unwrap();
    let head = ck
        .vae
        .params
        .specs
        .iter()
        .rfind(|s| s.name.starts_with("encoder") && s.name.ends_with("bias"))
        .unwrap()
        .range();
    ck.vae.params.data[head].fill(1e30);
    elbo::train::checkpoint::save(&dir, &ck.config, &ck.vae.params, &ck.adam, &ck.state).unwrap();
    let o = run(elbo()
        .args(["eval", "--k", "20", "--limit", "3", "--json"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(json["nll"].is_null(), "{json}");
    let err = stderr(&o);
    assert!(
        err.contains("not finite") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn a_long_estimate_without_a_terminal_says_how_far_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    train_small(&dir);
    let eval = |every: Option<&str>| {
        let mut c = elbo();
        if let Some(e) = every {
            c.env("ELBO_PROGRESS_EVERY", e);
        }
        run(c
            .args(["eval", "--k", "600", "--limit", "8", "--json"])
            .arg(&dir)
            .arg("--data-dir")
            .arg(mnist_dir()))
    };
    // stderr is a pipe here, as under a script: with reports due at once, every image but the last is reported.
    let o = eval(Some("0"));
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(json["nll"].as_f64().unwrap().is_finite(), "{json}");
    let err = stderr(&o);
    let reports: Vec<&str> = err
        .lines()
        .filter(|l| {
            l.starts_with("elbo: log p(x), K=600: ")
                && l.contains("/8 images in ")
                && l.ends_with(" left")
        })
        .collect();
    assert_eq!(reports.len(), 7, "{err}");
    // A report that cannot be written costs nothing; a result that cannot be written is one error line.
    let o = run(elbo()
        .env("ELBO_PROGRESS_EVERY", "0")
        .args(["eval", "--k", "600", "--limit", "8", "--json"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir())
        .stderr(std::fs::File::create("/dev/full").unwrap()));
    assert!(o.status.success());
    assert!(serde_json::from_slice::<serde_json::Value>(&o.stdout).is_ok());
    let o = run(elbo()
        .args(["eval", "--k", "3", "--limit", "2"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir())
        .stdout(std::fs::File::create("/dev/full").unwrap()));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "elbo: error: could not write the result to standard output: No space left on device (os error 28)"
    );
    let o = eval(Some("1.5"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("ELBO_PROGRESS_EVERY=\"1.5\" is not a whole number of seconds"));
    // At the default of once a minute, a run of seconds says nothing.
    let o = eval(None);
    assert!(
        o.status.success() && !stderr(&o).contains("images in"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_full_stderr_costs_a_run_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let full = || std::fs::File::create("/dev/full").unwrap();
    let o = run(elbo()
        .args([
            "train", "--epochs", "2", "--limit", "500", "--hidden", "16", "--out",
        ])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir())
        .stderr(full()));
    assert!(o.status.success(), "{:?}", o.status);
    assert_eq!(elbo::train::load_run(&dir).unwrap().state.epoch, 2);
    assert!(dir.join("samples.png").is_file());
    // An error that cannot be said still ends the command with its code, not a panic's 101.
    let o = run(elbo()
        .args(["eval"])
        .arg(tmp.path().join("missing"))
        .stderr(full()));
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn a_bad_value_in_a_config_file_is_named_as_the_files_key() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("c.toml");
    std::fs::write(&file, "lr = -1.0\nweight-decay = 0.0\n").unwrap();
    let out = tmp.path().join("run");
    let o = run(elbo()
        .args(["train", "--config"])
        .arg(&file)
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(&out));
    assert_user_error(
        &o,
        &format!(
            "lr = -1 must be a positive number (lr is set in {})",
            file.display()
        ),
    );
    assert!(!stderr(&o).contains("--lr"), "{}", stderr(&o));
    // The same mistake made with the flag over the file is named as the flag.
    let o = run(elbo()
        .args(["train", "--config"])
        .arg(&file)
        .args(["--lr", "-2", "--out"])
        .arg(&out)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert_user_error(&o, "--lr -2 must be a positive number");
    assert!(!stderr(&o).contains("set in"), "{}", stderr(&o));
    assert!(!out.exists());
}
