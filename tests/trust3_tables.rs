//! Tables and codes files read as the user meant (issue items 5, 6, 9, 18): a missing value is an error
//! wherever it lies, a first line is a header only when it is names, numeric labels are classes in numeric
//! order (and runs saved before still load), and a number too large for f32 is called that.

mod common;

use common::{assert_user_error, elbo, run, stderr};
use std::path::{Path, PathBuf};

/// A tiny model, one quick epoch: these tests are about reading the data.
const TINY: [&str; 8] = [
    "--epochs",
    "1",
    "--hidden",
    "4",
    "--latent",
    "2",
    "--batch-size",
    "8",
];

/// `rows` rows of three numeric columns a, b, c (a = the row number), with `label` as a fourth column when
/// given, as CSV text without a header.
fn rows(n: usize, label: impl Fn(usize) -> Option<String>) -> String {
    (0..n)
        .map(|i| {
            let mut r = format!(
                "{i},{:.3},{:.3}",
                (i as f64 * 0.37).sin(),
                (i as f64 * 0.11).cos()
            );
            if let Some(l) = label(i) {
                r.push(',');
                r.push_str(&l);
            }
            r.push('\n');
            r
        })
        .collect()
}

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
    let err = stderr(o);
    assert!(o.status.success(), "{err}");
    err
}

fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// Column b of data row `row` (1-based) replaced by `cell`.
fn with_b(text: &str, row: usize, cell: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells: Vec<&str> = lines[row].split(',').collect();
    cells[1] = cell;
    lines[row] = cells.join(",");
    lines.join("\n") + "\n"
}

#[test]
fn a_missing_value_is_an_error_in_the_first_row_as_in_any_other() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = format!("a,b,c\n{}", rows(40, |_| None));
    // Old code: in row 1 the column was dropped and the run trained; in row 10 it was an error.
    for cell in ["NA", "", "NaN", "?", "null", "N/A"] {
        for row in [1, 10] {
            let data = tmp.path().join("t.csv");
            std::fs::write(&data, with_b(&clean, row, cell)).unwrap();
            let out = tmp.path().join("run");
            let o = train(&data, &out, &[]);
            assert_user_error(&o, &format!("t.csv: line {}, column 'b'", row + 1));
            assert!(stderr(&o).contains("fill it in"), "{}", stderr(&o));
            assert!(!out.exists(), "{cell:?} row {row}: nothing is written");
        }
    }
    // A number f32 cannot hold is called that, not "not finite" (old code).
    let data = tmp.path().join("t.csv");
    std::fs::write(&data, with_b(&clean, 1, "1e+308")).unwrap();
    assert_user_error(
        &train(&data, &tmp.path().join("run"), &[]),
        "t.csv: line 2, column 'b': 1e+308 is beyond f32's range",
    );
    // A column of names is left out, with its notice, even with a missing name in row 1.
    let named: String = std::iter::once("name,a,b,c\n".to_string())
        .chain(
            rows(40, |_| None)
                .lines()
                .enumerate()
                .map(|(i, l)| format!("{},{l}\n", if i == 0 { "NA" } else { "x" })),
        )
        .collect();
    let data = tmp.path().join("named.csv");
    std::fs::write(&data, named).unwrap();
    let out = tmp.path().join("named");
    let err = ok(&train(&data, &out, &[]));
    assert!(err.contains("column 'name' is not numeric"), "{err}");
    let ck = elbo::train::load_run(&out).unwrap();
    assert_eq!(ck.config.data.columns, ["a", "b", "c"]);
}

#[test]
fn a_table_whose_header_is_numbers_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // Old code: the first row became the column names and 39 of 40 rows trained.
    let data = tmp.path().join("headless.csv");
    std::fs::write(&data, rows(40, |_| None)).unwrap();
    let out = tmp.path().join("run");
    let o = train(&data, &out, &[]);
    assert_user_error(&o, "headless.csv: line 1 holds only numbers");
    assert!(stderr(&o).contains("header row naming its columns"));
    assert!(!out.exists());
}

/// A run on `rows(40)` with a label column (so codes files can be decoded and runs inspected).
fn table_run(tmp: &Path, label: impl Fn(usize) -> Option<String>, extra: &[&str]) -> PathBuf {
    let data = tmp.join("t.csv");
    std::fs::write(&data, format!("a,b,c,label\n{}", rows(48, label))).unwrap();
    let out = tmp.join("run");
    ok(&train(
        &data,
        &out,
        &[&["--label-column", "label"][..], extra].concat(),
    ));
    out
}

#[test]
fn decoded_rows_line_up_with_the_rows_of_a_codes_file() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = table_run(tmp.path(), |i| Some((i % 3).to_string()), &[]);
    let decode = |text: &str| {
        let z = tmp.path().join("z.csv");
        std::fs::write(&z, text).unwrap();
        let out = tmp.path().join("d.csv");
        let _ = std::fs::remove_file(&out);
        let o = run(elbo()
            .arg("decode")
            .arg(&run_dir)
            .arg("--z-file")
            .arg(&z)
            .arg("--out")
            .arg(&out));
        (o, out)
    };
    // Old code: a bad first line was taken for a header, and two rows came out of three, with exit 0.
    for (text, needle) in [
        (
            "0.5,-1x\n0.1,0.2\n0.3,0.4\n",
            "z.csv: line 1, column 2: '-1x' is not a number",
        ),
        (
            "NA,NA\n0.1,0.2\n",
            "z.csv: line 1, column 1: 'NA' is a missing value",
        ),
    ] {
        let (o, out) = decode(text);
        assert_user_error(&o, needle);
        assert!(!out.exists());
    }
    // Without a header every line is a code; with one (encode's own output) the mu_J columns are.
    let (o, out) = decode("0.5,-1\n0.1,0.2\n0.3,0.4\n");
    ok(&o);
    assert_eq!(csv_rows(&out).len(), 1 + 3);
    let codes = tmp.path().join("codes.csv");
    ok(&run(elbo()
        .arg("encode")
        .arg(&run_dir)
        .args(["--split", "test", "--out"])
        .arg(&codes)));
    let n = csv_rows(&codes).len() - 1;
    let (o, out) = decode(&std::fs::read_to_string(&codes).unwrap());
    ok(&o);
    assert_eq!(csv_rows(&out).len(), 1 + n);
}

#[test]
fn numeric_labels_are_classes_in_numeric_order() {
    let tmp = tempfile::tempdir().unwrap();
    // Old code: classes 0, 1, 10, 11, 2, …, and "1" and "1.0" two classes.
    let spell = |i: usize| {
        let c = i % 12;
        Some(if i.is_multiple_of(5) {
            format!("{c}.0")
        } else {
            c.to_string()
        })
    };
    let run_dir = table_run(tmp.path(), spell, &["--conditional"]);
    let ck = elbo::train::load_run(&run_dir).unwrap();
    let want: Vec<String> = (0..12).map(|c| c.to_string()).collect();
    assert_eq!(ck.config.data.classes, want);
    ok(&run(elbo()
        .arg("decode")
        .arg(&run_dir)
        .args(["--z", "0,0", "--class", "10", "--out"])
        .arg(tmp.path().join("d.csv"))));
}

#[test]
fn a_run_saved_with_numeric_labels_in_text_order_still_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = table_run(tmp.path(), |i| Some((i % 12).to_string()), &[]);
    // Make the run as an older elbo saved it: classes in text order, and the data's fingerprint over labels
    // that index them (computed by `prepare`, which records it for a run that has none).
    let ck = elbo::train::load_run(&run_dir).unwrap();
    let mut old = ck.config.clone();
    old.data.classes.sort();
    assert_eq!(old.data.classes[..4], ["0", "1", "10", "11"]);
    old.data.fingerprint = None;
    let loaded = elbo::train::open_data(&old.train, None).unwrap();
    let splits = elbo::train::prepare(&mut old, loaded).unwrap();
    assert!(old.data.fingerprint.is_some());
    elbo::train::checkpoint::save(&run_dir, &old, &ck.vae.params, &ck.adam, &ck.state).unwrap();
    // Each item's class is the number in its label cell, which is column a modulo 12.
    let st = old.data.standardizer.clone().unwrap();
    let mut row = vec![0f32; 3];
    for i in 0..splits.train.len() {
        splits.train.fill_row(i, &mut row);
        st.invert(&mut row);
        let class = &splits.train.classes[splits.train.label(i) as usize];
        assert_eq!(
            class,
            &((row[0].round() as usize) % 12).to_string(),
            "item {i}"
        );
    }
    // Every command that reads the run's data accepts it (a changed fingerprint would refuse it).
    let reloaded = elbo::train::load_run(&run_dir).unwrap();
    assert_eq!(reloaded.config.data.classes, old.data.classes);
    ok(&run(elbo()
        .arg("encode")
        .arg(&run_dir)
        .args(["--split", "test", "--out"])
        .arg(tmp.path().join("codes.csv"))));
    ok(&run(elbo()
        .args(["train", "--resume"])
        .arg(&run_dir)
        .args(["--epochs", "2"])));
}
