//! Trust, round three: NumPy arrays read as their dtype and values say, new items read as the run was trained,
//! labels kept in per-item outputs, and large arrays read through a buffer with bounded allocation.

mod common;
use common::*;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

const TINY: [&str; 6] = ["--epochs", "1", "--hidden", "8", "--latent", "2"];

fn train(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    run(elbo()
        .env("ELBO_CACHE_DIR", "off")
        .args(["train", "--data"])
        .arg(data)
        .args(TINY)
        .args(extra)
        .arg("--out")
        .arg(out))
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", stderr(o));
    stderr(o)
}

/// The rows of a CSV file, split at commas.
fn rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn write(path: PathBuf, bytes: Vec<u8>) -> PathBuf {
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn float_arrays_of_counts_are_features_and_the_reading_is_said() {
    let tmp = tempfile::tempdir().unwrap();
    let counts = write(
        tmp.path().join("counts.npy"),
        npy(&[300, 5], (0..1500).map(|i| ((i * 7919) % 50) as f64)),
    );
    let err = ok(&train(&counts, &tmp.path().join("run"), &[]));
    assert!(
        err.contains("read as features: standardised, Gaussian likelihood"),
        "{err}"
    );
    let rows_out = tmp.path().join("rows.csv");
    ok(&run(elbo()
        .args(["sample"])
        .arg(tmp.path().join("run"))
        .args(["--n", "50", "--out"])
        .arg(&rows_out)));
    let values: Vec<f64> = rows(&rows_out)
        .iter()
        .skip(1)
        .flatten()
        .filter_map(|c| c.parse().ok())
        .collect();
    assert!(
        values.iter().any(|&v| v > 5.0),
        "samples come back in the counts' units, not in [0, 1]: {values:?}"
    );
    // The same values as uint8 are 8-bit levels, and the line says that too.
    let bytes = write(
        tmp.path().join("levels.npy"),
        npy(&[300, 5], (0..1500).map(|i| ((i * 7919) % 50) as u8)),
    );
    let err = ok(&train(&bytes, &tmp.path().join("run8"), &[]));
    assert!(err.contains("read as 8-bit"), "{err}");
}

#[test]
fn new_items_are_read_the_way_the_run_was_trained_and_outliers_are_scored() {
    let tmp = tempfile::tempdir().unwrap();
    let unit = |i: usize| ((i * 37) % 100) as f32 / 100.0;
    let train_data = write(
        tmp.path().join("unit.npy"),
        npy(&[200, 6], (0..1200).map(unit)),
    );
    let vectors = tmp.path().join("vectors");
    ok(&train(&train_data, &vectors, &[]));
    // One value of 1.3 among values in [0, 1]: scored (it is the anomaly), with a line saying so.
    let new = write(
        tmp.path().join("new.npy"),
        npy(&[4, 6], (0..24).map(|i| if i == 9 { 1.3 } else { unit(i) })),
    );
    let scores = tmp.path().join("scores.csv");
    let err = ok(&run(elbo()
        .arg("score")
        .arg(&vectors)
        .arg("--input")
        .arg(&new)
        .arg("--out")
        .arg(&scores)));
    assert!(err.contains("1 value outside [0, 1]"), "{err}");
    assert_eq!(rows(&scores).len(), 5, "a header and the four items");
    // A run on features reads new items as features, even when they all lie in [0, 1].
    let features = write(
        tmp.path().join("features.npy"),
        npy(&[200, 6], (0..1200).map(|i| ((i * 13) % 40) as f32 - 20.0)),
    );
    let table = tmp.path().join("table");
    ok(&train(&features, &table, &[]));
    for command in ["score", "encode"] {
        let out = tmp.path().join(format!("{command}.csv"));
        ok(&run(elbo()
            .arg(command)
            .arg(&table)
            .arg("--input")
            .arg(&train_data)
            .arg("--out")
            .arg(&out)));
        assert_eq!(rows(&out).len(), 201);
    }
}

#[test]
fn per_item_outputs_keep_labels_of_tables_and_arrays() {
    let tmp = tempfile::tempdir().unwrap();
    // A table with a label column, as the README's sensors example.
    let mut csv = String::from("a,b,machine\n");
    for i in 0..120 {
        let _ = writeln!(
            csv,
            "{},{},{}",
            (i * 7) % 11,
            (i * 3) % 5,
            ["press", "lathe"][i % 2]
        );
    }
    let sensors = write(tmp.path().join("sensors.csv"), csv.into_bytes());
    let run_dir = tmp.path().join("sensors");
    ok(&train(&sensors, &run_dir, &["--label-column", "machine"]));
    let scores = tmp.path().join("scores.csv");
    ok(&run(elbo()
        .arg("score")
        .arg(&run_dir)
        .arg("--input")
        .arg(&sensors)
        .arg("--out")
        .arg(&scores)));
    let table = rows(&scores);
    assert!(table[0].contains(&"class".to_string()), "{:?}", table[0]);
    let class = table[0].iter().position(|c| c == "class").unwrap();
    assert_eq!(table[1][class], "press");
    assert_eq!(table[2][class], "lathe");
    // A labelled .npz keeps its labels when encoded.
    let npz = tmp.path().join("labelled.npz");
    let mut z = zip::ZipWriter::new(std::fs::File::create(&npz).unwrap());
    for (name, bytes) in [
        ("x", npy(&[60, 4, 4], (0..960).map(|i| (i % 256) as u8))),
        ("y", npy(&[60], (0..60).map(|i| (i % 3) as u8))),
    ] {
        z.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.write_all(&bytes).unwrap();
    }
    z.finish().unwrap();
    let npz_run = tmp.path().join("npz");
    ok(&train(&npz, &npz_run, &[]));
    let codes = tmp.path().join("codes.csv");
    ok(&run(elbo()
        .arg("encode")
        .arg(&npz_run)
        .arg("--input")
        .arg(&npz)
        .arg("--out")
        .arg(&codes)));
    let table = rows(&codes);
    let label = table[0]
        .iter()
        .position(|c| c == "label")
        .unwrap_or_else(|| panic!("{:?}", table[0]));
    let labels: Vec<&str> = table[1..].iter().map(|r| r[label].as_str()).collect();
    assert_eq!(labels[..4], ["0", "1", "2", "0"]);
    // An .npz with both splits is encoded whole, x_train then x_test, each row named by its array.
    let split = tmp.path().join("split.npz");
    common::npz(
        &split,
        &[
            ("x_train", npy(&[3, 4, 4], (0..48).map(|i| (i % 256) as u8))),
            ("x_test", npy(&[2, 4, 4], (0..32).map(|i| (i % 256) as u8))),
        ],
    );
    let encode = |run_dir: &Path| {
        ok(&run(elbo()
            .arg("encode")
            .arg(run_dir)
            .arg("--input")
            .arg(&split)
            .arg("--out")
            .arg(&codes)
            .arg("--force")))
    };
    encode(&npz_run);
    let table = rows(&codes);
    let item = table[0].iter().position(|c| c == "item").unwrap();
    let items: Vec<&str> = table[1..].iter().map(|r| r[item].as_str()).collect();
    assert_eq!(
        items,
        [
            "x_train[0]",
            "x_train[1]",
            "x_train[2]",
            "x_test[0]",
            "x_test[1]"
        ]
    );
    // A conditional run reads such a file's classes from its y arrays, not from the rows' names.
    let cond_run = tmp.path().join("cond");
    ok(&train(&npz, &cond_run, &["--conditional"]));
    common::npz(
        &split,
        &[
            ("x_train", npy(&[3, 4, 4], (0..48).map(|i| (i % 256) as u8))),
            ("y_train", npy(&[3], [2u8, 0, 1])),
            ("x_test", npy(&[2, 4, 4], (0..32).map(|i| (i % 256) as u8))),
            ("y_test", npy(&[2], [1u8, 1])),
        ],
    );
    encode(&cond_run);
    let table = rows(&codes);
    let label = table[0].iter().position(|c| c == "label").unwrap();
    let labels: Vec<&str> = table[1..].iter().map(|r| r[label].as_str()).collect();
    assert_eq!(labels, ["2", "0", "1", "1", "1"]);
}

/// A `.npy` header for `shape` of little-endian float32, padded as NumPy pads it.
fn npy_header(shape: &str) -> Vec<u8> {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend((dict.len() as u16).to_le_bytes());
    h.extend(dict.as_bytes());
    h
}

#[test]
fn a_huge_array_beyond_the_memory_limit_is_one_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    // 10 GiB of zeros that take no disk: a valid header, then a hole.
    let path = tmp.path().join("huge.npy");
    let header = npy_header("83886080, 32");
    std::fs::write(&path, &header).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(header.len() as u64 + (10u64 << 30))
        .unwrap();
    let o = run(std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 400000; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_elbo"))
        .env("ELBO_CACHE_DIR", "off")
        .args(["train", "--data"])
        .arg(&path)
        .args(TINY)
        .arg("--out")
        .arg(tmp.path().join("run")));
    assert_user_error(&o, "huge.npy");
    assert!(
        !stderr(&o).contains("memory allocation of"),
        "{}",
        stderr(&o)
    );
    assert!(!tmp.path().join("run").exists());
}

#[test]
fn arrays_are_read_through_a_buffer_not_a_system_call_per_value() {
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("strace is not installed: .ci/run installs it");
        if std::env::var_os("CI").is_some() {
            panic!("strace is missing in CI");
        }
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = write(
        tmp.path().join("unit.npy"),
        npy(&[3600, 4], (0..14400).map(|i| (i % 100) as f32 / 100.0)),
    );
    let log = tmp.path().join("strace.log");
    let o = run(std::process::Command::new("strace")
        .args(["-f", "-e", "trace=read", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_elbo"))
        .env("ELBO_CACHE_DIR", "off")
        .args(["train", "--data"])
        .arg(&data)
        .args(TINY)
        .arg("--out")
        .arg(tmp.path().join("run")));
    assert!(o.status.success(), "{}", stderr(&o));
    let reads = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains("read("))
        .count();
    assert!(reads < 2000, "{reads} read calls for 14 400 values");
}
