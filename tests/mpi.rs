//! Data-parallel training over MPI (`cargo test --profile ci --features mpi --test mpi`, which `.ci/run` runs with
//! OpenMPI installed): ranks give the weights of one process, resume with another rank count, and a killed
//! rank stops the job, which then resumes from its last checkpoint.
#![cfg(feature = "mpi")]

mod common;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `mpirun -n N elbo ARGS`, oversubscribed (this machine may have fewer cores than ranks).
fn mpirun(n: usize) -> Command {
    let mut c = Command::new("mpirun");
    if unsafe { libc::geteuid() } == 0 {
        c.arg("--allow-run-as-root");
    }
    c.args(["--oversubscribe", "-n", &n.to_string()])
        .arg(env!("CARGO_BIN_EXE_elbo"))
        .env_remove("ELBO_MIRROR");
    c
}

/// Weights and the optimiser's moments of a run's checkpoint.
fn state(dir: &Path) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let ck = elbo::train::load_run(dir).unwrap();
    (ck.vae.params.data, ck.adam.m, ck.adam.v)
}

fn ok(o: std::process::Output) -> String {
    assert!(o.status.success(), "failed: {}", stderr(&o));
    stderr(&o)
}

/// Asserts that a command failed and said `needle`.
fn refused(o: &std::process::Output, needle: &str) {
    assert!(!o.status.success());
    assert!(stderr(o).contains(needle), "{}", stderr(o));
}

/// 1003 training images in batches of 100: the last batch (3 images) leaves some shards empty.
const SMALL: [&str; 8] = [
    "--limit",
    "1003",
    "--batch-size",
    "100",
    "--shards",
    "4",
    "--threads",
    "1",
];

#[test]
fn ranks_train_the_weights_of_one_process_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = mnist_dir();
    let one = tmp.path().join("one");
    ok(run(elbo()
        .args(["train", "--epochs", "2"])
        .args(SMALL)
        .arg("--data-dir")
        .arg(&mnist)
        .arg("--out")
        .arg(&one)));
    let reference = state(&one);
    for n in [2, 4] {
        let dir = tmp.path().join(format!("ranks{n}"));
        let err = ok(mpirun(n)
            .args(["train", "--epochs", "2"])
            .args(SMALL)
            .arg("--data-dir")
            .arg(&mnist)
            .arg("--out")
            .arg(&dir)
            .output()
            .unwrap());
        assert!(err.contains(&format!("on {n} ranks, 4 shards")), "{err}");
        assert!(
            state(&dir) == reference,
            "{n} ranks differ from one process"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("metrics.csv"))
                .unwrap()
                .lines()
                .count(),
            3,
            "one writer: a header and two epochs"
        );
    }
    // The IWAE objective, conditional on the class, too.
    let args = ["--objective", "iwae", "--k-train", "5", "--conditional"];
    let (a, b) = (tmp.path().join("iwae1"), tmp.path().join("iwae2"));
    ok(run(elbo()
        .args(["train", "--epochs", "1"])
        .args(SMALL)
        .args(args)
        .arg("--data-dir")
        .arg(&mnist)
        .arg("--out")
        .arg(&a)));
    ok(mpirun(2)
        .args(["train", "--epochs", "1"])
        .args(SMALL)
        .args(args)
        .arg("--data-dir")
        .arg(&mnist)
        .arg("--out")
        .arg(&b)
        .output()
        .unwrap());
    assert!(state(&a) == state(&b), "IWAE over 2 ranks");
    // A rank count that does not divide the shards is refused before anything is written.
    let bad = tmp.path().join("bad");
    let o = mpirun(3)
        .args(["train", "--epochs", "1"])
        .args(SMALL)
        .arg("--data-dir")
        .arg(&mnist)
        .arg("--out")
        .arg(&bad)
        .output()
        .unwrap();
    refused(&o, "which 3 ranks cannot share");
    assert!(!bad.join("config.json").exists());
}

#[test]
fn a_run_resumes_on_another_number_of_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = mnist_dir();
    let straight = tmp.path().join("straight");
    ok(mpirun(4)
        .args(["train", "--epochs", "2"])
        .args(SMALL)
        .arg("--data-dir")
        .arg(&mnist)
        .arg("--out")
        .arg(&straight)
        .output()
        .unwrap());
    let split = tmp.path().join("split");
    ok(mpirun(2)
        .args(["train", "--epochs", "1"])
        .args(SMALL)
        .arg("--data-dir")
        .arg(&mnist)
        .arg("--out")
        .arg(&split)
        .output()
        .unwrap());
    ok(run(elbo()
        .args(["train", "--epochs", "2", "--resume"])
        .arg(&split)
        .arg("--data-dir")
        .arg(&mnist)));
    assert!(
        state(&split) == state(&straight),
        "2 ranks then 1 process = 4 ranks throughout"
    );
}

/// The PID of rank `rank` of the elbo processes training into `dir`.
fn rank_pid(dir: &Path, rank: usize) -> Option<i32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        if has(&cmd, dir.as_os_str().as_encoded_bytes())
            && has(&cmd, b"train")
            && env.split(|&b| b == 0).any(|v| v == want.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_killed_rank_stops_the_job_and_the_run_resumes_from_its_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let mut job = mpirun(2)
        .args([
            "train",
            "--epochs",
            "200",
            "--limit",
            "3000",
            "--threads",
            "1",
        ])
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first epoch's checkpoint.
    let t = Instant::now();
    let metrics = dir.join("metrics.csv");
    while std::fs::read_to_string(&metrics).map_or(0, |m| m.lines().count()) < 2 {
        assert!(t.elapsed() < Duration::from_secs(120), "no epoch finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    let victim = rank_pid(&dir, 1).expect("rank 1 is running");
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = job.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "mpirun kept running");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "the job failed");
    assert!(rank_pid(&dir, 0).is_none(), "rank 0 stopped too");
    let kept = elbo::train::load_run(&dir).unwrap().state.epoch;
    assert!(kept >= 1);
    // One process continues it (its shards, 2, are saved with the run).
    let err = ok(run(elbo()
        .args(["train", "--epochs"])
        .arg((kept + 1).to_string())
        .arg("--resume")
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir())));
    assert!(
        err.contains(&format!("resuming {} after epoch {kept}", dir.display())),
        "{err}"
    );
    assert_eq!(elbo::train::load_run(&dir).unwrap().state.epoch, kept + 1);
}

#[test]
fn eval_over_ranks_gives_the_estimates_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    ok(run(elbo()
        .args(["train", "--epochs", "1", "--limit", "2000", "--out"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir())));
    let args = ["--k", "20", "--limit", "777", "--json", "--data-dir"];
    let one = run(elbo().arg("eval").arg(&dir).args(args).arg(mnist_dir()));
    assert!(one.status.success(), "{}", stderr(&one));
    let ranks = mpirun(2)
        .arg("eval")
        .arg(&dir)
        .args(args)
        .arg(mnist_dir())
        .output()
        .unwrap();
    assert!(ranks.status.success(), "{}", stderr(&ranks));
    let read = |o: &std::process::Output| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (one, ranks) = (read(&one), read(&ranks));
    assert_eq!(ranks.len(), 1, "rank 0 alone reports");
    for key in ["nll", "neg_elbo", "n", "bits_per_dim"] {
        assert_eq!(one[0][key], ranks[0][key], "{key}");
    }
}

#[test]
fn ranks_that_disagree_and_commands_that_do_not_share_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mnist = mnist_dir();
    let dir = tmp.path().join("run");
    ok(run(elbo()
        .args(["train", "--epochs", "1", "--limit", "500", "--out"])
        .arg(&dir)
        .arg("--data-dir")
        .arg(&mnist)));
    // Two ranks given different settings (as two nodes reading different folders would be).
    let mut c = mpirun(1);
    c.args([
        "train", "--epochs", "1", "--limit", "500", "--seed", "1", "--out",
    ])
    .arg(tmp.path().join("a"))
    .arg("--data-dir")
    .arg(&mnist)
    .args([":", "-n", "1", env!("CARGO_BIN_EXE_elbo")])
    .args([
        "train", "--epochs", "1", "--limit", "500", "--seed", "2", "--out",
    ])
    .arg(tmp.path().join("a"))
    .arg("--data-dir")
    .arg(&mnist);
    let o = c.output().unwrap();
    refused(&o, "holds another run than rank");
    // A command other than train and eval is refused under mpirun, before it writes anything.
    let out = tmp.path().join("s.png");
    let o = mpirun(2)
        .args(["sample"])
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    refused(&o, "only train and eval run over MPI");
    assert!(!out.exists());
    // --capacity weighs the whole batch's KL, which shards would split.
    let o = run(elbo()
        .args(["train", "--shards", "2", "--capacity", "8", "--out"])
        .arg(tmp.path().join("cap"))
        .arg("--data-dir")
        .arg(&mnist));
    refused(&o, "--capacity compares the batch's mean KL");
}
