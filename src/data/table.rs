//! CSV and TSV tables with a header row as datasets: the numeric columns are the features, one optional
//! column the class label. Features are standardised later, with the training split's statistics.

use super::dataset::{Dataset, ItemShape, Kind, Values};
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::path::Path;

/// Largest table file read.
const MAX_TABLE: u64 = 4 << 30;

/// A table loaded: its items and the names of the feature columns.
#[derive(Debug, Clone)]
pub struct Table {
    /// Rows as items of `1 × features`.
    pub dataset: Dataset,
    /// The feature columns' names, in order.
    pub columns: Vec<String>,
}

fn delimiter(path: &Path) -> u8 {
    let lower = path.to_string_lossy().to_ascii_lowercase();
    if lower.ends_with(".tsv") || lower.ends_with(".tab") {
        b'\t'
    } else {
        b','
    }
}

/// The header row of a table.
pub fn load_header(path: &Path) -> Result<Vec<String>> {
    header_of(&mut reader(path)?, path)
}

/// A strict reader of `path`: a header row, every row as long as it.
fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    let file = crate::fsutil::open_regular(path, MAX_TABLE, "a table")?;
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter(path))
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(file))
}

fn header_of(rdr: &mut csv::Reader<std::fs::File>, path: &Path) -> Result<Vec<String>> {
    Ok(rdr
        .headers()
        .map_err(|e| {
            Error::Config(format!(
                "{}: cannot read the header row: {e}",
                path.display()
            ))
        })?
        .iter()
        .map(str::to_string)
        .collect())
}

/// Loads a CSV (or, by its `.tsv`/`.tab` ending, tab-separated) file. With `label_column`, that column's values
/// are the classes (sorted, as folder names are). Without `columns`, every column whose first value is a number
/// is a feature; with it (a run's saved columns), exactly those are read.
pub fn load(path: &Path, label_column: Option<&str>, columns: Option<&[String]>) -> Result<Table> {
    let mut rdr = reader(path)?;
    let at = |line: u64, col: &str, what: String| {
        Error::Config(format!(
            "{}: line {line}, column '{col}': {what}",
            path.display()
        ))
    };
    let header = header_of(&mut rdr, path)?;
    let dup = header
        .iter()
        .enumerate()
        .find(|(i, h)| header[..*i].contains(h));
    if let Some((_, h)) = dup {
        return Err(Error::Config(format!(
            "{}: column '{h}' appears twice in the header",
            path.display()
        )));
    }
    let label_idx = match label_column {
        Some(name) => Some(header.iter().position(|h| h == name).ok_or_else(|| {
            Error::Config(format!(
                "{}: no column named '{name}' for --label-column (columns: {})",
                path.display(),
                header.join(", ")
            ))
        })?),
        None => None,
    };
    let mut records = rdr.records();
    let mut feature_idx: Vec<usize> = match columns {
        Some(cols) => cols
            .iter()
            .map(|c| {
                header.iter().position(|h| h == c).ok_or_else(|| {
                    Error::Config(format!(
                        "{}: the run was trained on a column '{c}' this table does not have",
                        path.display()
                    ))
                })
            })
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let mut values: Vec<f32> = Vec::new();
    let mut raw_labels: Vec<String> = Vec::new();
    let mut first = true;
    let mut skipped = Vec::new();
    let mut rows = 0usize;
    loop {
        let rec = match records.next() {
            None => break,
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => Error::Config(format!(
                        "{}: line {line} has {len} fields, the header has {expected_len} (a ragged row)",
                        path.display()
                    )),
                    _ => Error::Config(format!("{}: line {line}: {e}", path.display())),
                });
            }
        };
        let line = rec.position().map_or(0, |p| p.line());
        if first && columns.is_none() {
            for (i, cell) in rec.iter().enumerate() {
                if Some(i) == label_idx {
                    continue;
                }
                if cell.parse::<f64>().is_ok() {
                    feature_idx.push(i);
                } else {
                    skipped.push(header[i].clone());
                }
            }
            if feature_idx.is_empty() {
                return Err(Error::Config(format!(
                    "{}: no numeric columns to use as features",
                    path.display()
                )));
            }
        }
        first = false;
        for &i in &feature_idx {
            let cell = &rec[i];
            let v: f64 = cell.parse().map_err(|_| {
                at(
                    line,
                    &header[i],
                    if cell.is_empty() {
                        "an empty cell (missing values must be filled in first)".into()
                    } else {
                        format!("'{cell}' is not a number")
                    },
                )
            })?;
            if !v.is_finite() || v.abs() > f32::MAX as f64 {
                return Err(at(
                    line,
                    &header[i],
                    format!("{cell} is not a finite number"),
                ));
            }
            values.push(v as f32);
        }
        if let Some(l) = label_idx {
            if rec[l].is_empty() {
                return Err(at(line, &header[l], "an empty label".into()));
            }
            raw_labels.push(rec[l].to_string());
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(Error::Config(format!(
            "{}: the table has a header but no rows",
            path.display()
        )));
    }
    if !skipped.is_empty() {
        crate::say!(
            "elbo: {}: columns {} are not numeric and are not used as features",
            path.display(),
            skipped.join(", ")
        );
    }
    let (labels, classes) = if label_idx.is_some() {
        let classes: Vec<String> = raw_labels
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let labels = raw_labels
            .iter()
            .map(|l| classes.binary_search(l).expect("a class of the set") as u32)
            .collect();
        (Some(labels), classes)
    } else {
        (None, Vec::new())
    };
    let d = feature_idx.len();
    let mut dataset = Dataset::new(
        ItemShape::grey(1, d),
        Kind::Table,
        Values::F32(values),
        labels,
    )?;
    dataset.classes = classes;
    Ok(Table {
        dataset,
        columns: feature_idx.iter().map(|&i| header[i].clone()).collect(),
    })
}

/// Per-feature mean and standard deviation of a training split, stored in the run so that every command
/// standardises new rows and un-standardises decoded ones identically.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    /// Mean of each feature.
    pub mean: Vec<f32>,
    /// Standard deviation of each feature (1 for a constant one).
    pub std: Vec<f32>,
}

impl Standardizer {
    /// The statistics of `ds`'s features (in f64, so long columns do not lose precision).
    pub fn fit(ds: &Dataset) -> Standardizer {
        let (n, d) = (ds.len(), ds.dim());
        let mut row = vec![0f32; d];
        let mut sum = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for i in 0..n {
            ds.fill_row(i, &mut row);
            for j in 0..d {
                sum[j] += row[j] as f64;
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / n.max(1) as f64).collect();
        for i in 0..n {
            ds.fill_row(i, &mut row);
            for j in 0..d {
                sq[j] += (row[j] as f64 - mean[j]).powi(2);
            }
        }
        let std = sq
            .iter()
            .map(|s| {
                let sd = (s / n.max(1) as f64).sqrt();
                if sd > 1e-12 { sd as f32 } else { 1.0 }
            })
            .collect();
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Replaces `ds`'s values by standardised floats.
    pub fn apply(&self, ds: &mut Dataset) {
        let (n, d) = (ds.len(), ds.dim());
        let mut out = vec![0f32; n * d];
        for (i, row) in out.chunks_exact_mut(d).enumerate() {
            ds.fill_row(i, row);
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
        ds.values = Values::F32(out);
    }

    /// Maps standardised values back to the data's units, in place.
    pub fn invert(&self, rows: &mut [f32]) {
        let d = self.mean.len();
        for row in rows.chunks_exact_mut(d) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = *v * s + m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str, name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        (tmp, p)
    }

    #[test]
    fn numeric_columns_are_features_and_labels_are_classes() {
        let (_t, p) = write(
            "id,a,kind,b\nx1,1.5,cat,2\nx2,-3,dog,4e1\nx3,0,cat,1\n",
            "t.csv",
        );
        let t = load(&p, Some("kind"), None).unwrap();
        assert_eq!(t.columns, ["a", "b"]);
        assert_eq!(t.dataset.classes, ["cat", "dog"]);
        assert_eq!(t.dataset.labels.as_deref(), Some(&[0, 1, 0][..]));
        assert_eq!(
            t.dataset.values,
            Values::F32(vec![1.5, 2.0, -3.0, 40.0, 0.0, 1.0])
        );
        let s = Standardizer::fit(&t.dataset);
        let mut ds = t.dataset.clone();
        s.apply(&mut ds);
        let Values::F32(v) = &ds.values else { panic!() };
        let mean: f32 = v.iter().step_by(2).sum::<f32>() / 3.0;
        assert!(mean.abs() < 1e-6);
        let mut back = v.clone();
        s.invert(&mut back);
        assert!((back[3] - 40.0).abs() < 1e-4);
    }

    #[test]
    fn bad_cells_name_line_and_column() {
        let (_t, p) = write("a,b\n1,2\n3,oops\n", "t.csv");
        let e = load(&p, None, None).unwrap_err().to_string();
        assert!(
            e.contains("line 3, column 'b'") && e.contains("'oops' is not a number"),
            "{e}"
        );
        let (_t, p) = write("a,b\n1,2\n3\n", "t.csv");
        let e = load(&p, None, None).unwrap_err().to_string();
        assert!(
            e.contains("line 3 has 1 fields") && e.contains("ragged"),
            "{e}"
        );
        let (_t, p) = write("a\tb\n1\t2\n", "t.tsv");
        assert_eq!(load(&p, None, None).unwrap().columns, ["a", "b"]);
        let (_t, p) = write("a,b\n", "t.csv");
        assert!(
            load(&p, None, None)
                .unwrap_err()
                .to_string()
                .contains("no rows")
        );
    }
}
