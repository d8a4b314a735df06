//! Crash safety: `elbo train` killed with SIGKILL at many moments, including mid-checkpoint, always leaves a
//! checkpoint that loads, and `--resume` carries on from it.

mod common;
use common::*;
use elbo::train::checkpoint::{CHECKPOINT, PREVIOUS};
use std::process::Stdio;
use std::time::Duration;

#[test]
fn survives_sigkill_at_random_moments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    // A small model, so an epoch and its checkpoint take tens of milliseconds and kills land everywhere.
    let fresh = [
        "--limit",
        "2000",
        "--hidden",
        "64",
        "--latent",
        "8",
        "--threads",
        "1",
        "--epochs",
        "100000",
    ];
    // A fixed LCG: the kill moments vary widely but the test is repeatable.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut delays = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        Duration::from_millis(150 + (state >> 33) % 900)
    };
    let (mut kills, mut loaded, mut last_epoch, mut mid_write) = (0, 0, 0, 0);
    let tmp_files = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".tmp"))
                    .collect()
            })
            .unwrap_or_default()
    };
    for _ in 0..24 {
        let has_checkpoint = dir.join(CHECKPOINT).exists() || dir.join(PREVIOUS).exists();
        let mut cmd = elbo();
        if has_checkpoint {
            cmd.args(["train", "--epochs", "100000", "--resume"])
                .arg(&dir);
        } else {
            cmd.arg("train")
                .args(fresh)
                .arg("--force")
                .arg("--out")
                .arg(&dir);
        }
        let mut child = cmd
            .arg("--data-dir")
            .arg(mnist_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A fresh run is first let reach its first checkpoint: on a loaded machine, reading the data can outlast
        // every delay, and no kill would then land after a checkpoint.
        let start = std::time::Instant::now();
        while !has_checkpoint
            && !dir.join(CHECKPOINT).exists()
            && child.try_wait().unwrap().is_none()
            && start.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(delays());
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL on Unix
            kills += 1;
        }
        child.wait().unwrap();
        // A temporary file left behind means the kill landed in the middle of writing a file.
        if !tmp_files(&dir).is_empty() {
            mid_write += 1;
        }
        if dir.join(CHECKPOINT).exists() || dir.join(PREVIOUS).exists() {
            let ck =
                elbo::train::load_run(&dir).unwrap_or_else(|e| panic!("after kill {kills}: {e}"));
            assert!(
                ck.state.epoch >= last_epoch,
                "epochs never go back: {} after {last_epoch}",
                ck.state.epoch
            );
            last_epoch = ck.state.epoch;
            loaded += 1;
        }
    }
    eprintln!(
        "crash test: {kills} SIGKILLs landed ({mid_write} in the middle of a file write), a checkpoint loaded after {loaded} of 24 runs, last epoch {last_epoch}"
    );
    assert!(kills >= 20, "only {kills} kills landed");
    assert!(
        loaded >= 15 && last_epoch > 0,
        "{loaded} loads, last epoch {last_epoch}"
    );
    // A final resume runs to completion from wherever the kills left the run.
    let target = last_epoch + 2;
    let o = run(elbo()
        .args(["train", "--epochs", &target.to_string(), "--resume"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(elbo::train::load_run(&dir).unwrap().state.epoch, target);
    let stale = tmp_files(&dir);
    assert!(stale.is_empty(), "temporary files left behind: {stale:?}");
}
