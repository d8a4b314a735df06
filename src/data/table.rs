//! CSV and TSV tables with a header row as datasets: the numeric columns are the features, one optional
//! column the class label. Features are standardised later, with the training split's statistics.

use super::dataset::{Dataset, ItemShape, Kind, Values};
use crate::error::{Error, Result};
use std::path::Path;

/// Largest table file read.
const MAX_TABLE: u64 = 4 << 30;

/// Spellings of a missing value that spreadsheets, R and pandas write (compared without case).
const MISSING: [&str; 10] = [
    "", "?", "na", "n/a", "#n/a", "nan", "-nan", "+nan", "null", "none",
];

/// A table loaded: its items and the names of the feature columns.
#[derive(Debug, Clone)]
pub struct Table {
    /// Rows as items of `1 × features`.
    pub dataset: Dataset,
    /// The feature columns' names, in order.
    pub columns: Vec<String>,
}

/// Why a cell is not a feature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadCell {
    /// Empty or a missing-value spelling such as `NA`.
    Missing,
    /// Text no number parser reads.
    Text,
    /// A number that is infinite.
    NotFinite,
    /// A finite number that does not fit in an f32.
    OutOfRange,
}

impl BadCell {
    /// Whether the cell reads as a number (one that cannot be used).
    pub fn is_number(self) -> bool {
        matches!(self, BadCell::NotFinite | BadCell::OutOfRange)
    }

    /// What is wrong with `cell` and what to do, for an error line.
    pub fn describe(self, cell: &str) -> String {
        let cell = &shown_cell(cell);
        match self {
            BadCell::Missing if cell.is_empty() => {
                "an empty cell (a missing value): fill it in, or drop its row".into()
            }
            BadCell::Missing => {
                format!("'{cell}' is a missing value: fill it in, or drop its row")
            }
            BadCell::Text => format!("'{cell}' is not a number: correct it, or drop its row"),
            BadCell::NotFinite => format!("{cell} is not a finite number"),
            BadCell::OutOfRange => format!("{cell} is beyond f32's range (±3.4e38)"),
        }
    }
}

/// Whether `cell` (trimmed) is a missing value rather than a number or text.
pub fn is_missing(cell: &str) -> bool {
    MISSING.iter().any(|m| cell.eq_ignore_ascii_case(m))
}

/// A trimmed cell as a feature value: a finite number that fits in an f32.
pub fn number(cell: &str) -> std::result::Result<f32, BadCell> {
    if is_missing(cell) {
        return Err(BadCell::Missing);
    }
    match cell.parse::<f64>() {
        Err(_) => Err(BadCell::Text),
        Ok(v) if !v.is_finite() => Err(BadCell::NotFinite),
        Ok(v) if v.abs() > f32::MAX as f64 => Err(BadCell::OutOfRange),
        Ok(v) => Ok(v as f32),
    }
}

/// The field separator `path`'s name implies: a tab for `.tsv`/`.tab`, else a comma.
pub fn delimiter(path: &Path) -> u8 {
    let lower = path.to_string_lossy().to_ascii_lowercase();
    if lower.ends_with(".tsv") || lower.ends_with(".tab") {
        b'\t'
    } else {
        b','
    }
}

/// Whether `cell` reads as a number, usable or not (`1e400` does; `NA` and `-1x` do not).
pub fn reads_as_number(cell: &str) -> bool {
    matches!(
        number(cell),
        Ok(_) | Err(BadCell::NotFinite | BadCell::OutOfRange)
    )
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

/// Refuses a header that names a column twice, or that is a row of numbers (a table without a header, whose
/// first row would otherwise become the column names). Returns how many leading columns are pandas' row index,
/// under the header pandas writes for a DataFrame without column names (0 for any other header).
fn check_header(header: &[String], path: &Path) -> Result<usize> {
    if let Some(index) = pandas_index_columns(header) {
        crate::notes::say!(
            "elbo: {}: line 1 ({}) is read as the header pandas writes for a DataFrame without column names, not as a row of data",
            path.display(),
            shown_header(header)
        );
        return Ok(index);
    }
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
    if !header.is_empty() && header.iter().all(|h| reads_as_number(h)) {
        return Err(Error::Config(format!(
            "{}: line 1 holds only numbers ('{}', …), not column names: the table needs a header row naming its columns; add one",
            path.display(),
            header[0]
        )));
    }
    // Numbers among names may be names (years) or a first row of data in a table without a header (UCI's iris:
    // `6.8,6.1,3.4,2.1,Iris-setosa`); which one cannot be told, so the guess is said.
    let numbers: Vec<&str> = header
        .iter()
        .filter(|h| reads_as_number(h))
        .map(String::as_str)
        .collect();
    if !numbers.is_empty() {
        crate::notes::say!(
            "elbo: {}: line 1 is read as the header row, though it names columns with numbers ('{}'); if it is a row of data, add a header row naming the columns",
            path.display(),
            numbers.join("', '")
        );
    }
    Ok(0)
}

/// The header `pd.DataFrame(array).to_csv(path)` writes: the column numbers 0, 1, 2, … in order, after a cell
/// per level of the row index unless `index=False`: empty, `Unnamed: 0` once read back and written again (and
/// `Unnamed: 0.1` the time after), or the level's name (`df.index.name = "id"`). Returns how many index cells
/// lead. A row of data that counts up from 0 in every column is not worth refusing a whole table for.
fn pandas_index_columns(header: &[String]) -> Option<usize> {
    let start = header.iter().position(|h| h == "0")?;
    let numbers = &header[start..];
    let counts = numbers.iter().enumerate().all(|(i, h)| *h == i.to_string());
    let names = header[..start].iter().all(|h| !reads_as_number(h));
    (counts && names).then_some(start)
}

/// A header as a short list for a message: its first cells, then how many more.
fn shown_header(header: &[String]) -> String {
    let shown: Vec<&str> = header.iter().take(4).map(String::as_str).collect();
    match header.len() {
        n if n > 4 => format!("{}, … {} columns", shown.join(","), n),
        _ => shown.join(","),
    }
}

/// A cell for a message: whole up to 40 characters, else its first 40 and how long it is.
pub fn shown_cell(cell: &str) -> String {
    match cell.char_indices().nth(40) {
        Some((at, _)) => format!("{}… ({} characters)", &cell[..at], cell.chars().count()),
        None => cell.to_string(),
    }
}

/// pandas' `to_csv` writes the row index as a first column with no name (`Unnamed: 0` once read back and
/// written again): a distinct whole number per row (0, 1, 2, …, or any order and start after `df.sample` or a
/// slice), not a measurement.
fn is_row_index(column: impl Iterator<Item = f32>) -> bool {
    let mut seen = std::collections::HashSet::new();
    column
        .into_iter()
        .all(|v| v.fract() == 0.0 && seen.insert(v.to_bits()))
}

/// The one error line for a row the CSV reader refuses.
fn record_error(e: csv::Error, path: &Path) -> Error {
    let line = e.position().map_or(0, |p| p.line());
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => Error::Config(format!(
            "{}: line {line} has {len} fields, the header has {expected_len} (a ragged row)",
            path.display()
        )),
        _ => Error::Config(format!("{}: line {line}: {e}", path.display())),
    }
}

/// What one column that may be a feature held, over all rows.
#[derive(Debug, Clone, Default)]
struct Tally {
    /// Cells that read as numbers (usable or not).
    numbers: usize,
    /// Cells of text no number parser reads.
    texts: usize,
    /// The first cell that is not a usable value: its line, why, and the cell.
    first_bad: Option<(u64, BadCell, String)>,
}

impl Tally {
    /// A column is text, and left out, only when its text outnumbers its numbers (so one stray word, in any
    /// row, is an error and not a lost column); one of only missing values is a feature, and so an error.
    fn is_feature(&self) -> bool {
        self.numbers >= self.texts
    }
}

/// Loads a CSV (or, by its `.tsv`/`.tab` ending, tab-separated) file. With `label_column`, that column's values
/// are the classes (see [`classes_of`](super::images::classes_of)). Without `columns`, every column of numbers is a feature (a column
/// mostly of text, such as names, is left out and named in a notice); with it (a run's saved columns), exactly
/// those are read. A missing value (empty, `NA`, `NaN`, `?`, …) or a stray word in a feature is an error
/// naming its line and column, wherever it lies.
pub fn load(path: &Path, label_column: Option<&str>, columns: Option<&[String]>) -> Result<Table> {
    let mut rdr = reader(path)?;
    let header = header_of(&mut rdr, path)?;
    let pandas_index = check_header(&header, path)?;
    // A named index level is not numeric and would be named as a skipped text column: it is the index.
    let is_index = |column: usize| column < pandas_index;
    let at = |line: u64, i: usize, what: String| {
        Error::Config(format!(
            "{}: line {line}, column '{}': {what}",
            path.display(),
            header[i]
        ))
    };
    let (label_idx, candidates) = column_positions(&header, label_column, columns, path)?;
    let read = read_cells(
        &mut rdr,
        &candidates,
        label_idx,
        columns.is_some(),
        path,
        &at,
    )?;
    let (tallies, mut values, labels, rows) = (read.tallies, read.values, read.labels, read.rows);
    if rows == 0 {
        let what = if header.is_empty() || header.iter().all(String::is_empty) {
            "is empty"
        } else {
            "has a header but no rows"
        };
        return Err(Error::Config(format!(
            "{}: the table {what}",
            path.display()
        )));
    }
    let mut keep = features(&tallies, path, |k, (line, bad, cell)| {
        at(*line, candidates[k], bad.describe(cell))
    })?;
    let width = candidates.len();
    if columns.is_none() && pandas_index > 0 {
        keep.retain(|&k| !is_index(candidates[k]));
        say_pandas_index(&header[..pandas_index], path);
    }
    let unnamed_first = columns.is_none()
        && pandas_index == 0
        && keep.len() > 1
        && keep[0] == 0
        && candidates[0] == 0
        && (header[0].is_empty() || header[0] == "Unnamed: 0");
    if unnamed_first {
        let first: Vec<String> = values
            .iter()
            .step_by(width)
            .take(2)
            .map(f32::to_string)
            .collect();
        let first = first.join(", ");
        if is_row_index(values.iter().step_by(width).copied()) {
            keep.remove(0);
            crate::notes::say!(
                "elbo: {}: the first column has no name and a distinct whole number in every row ({first}, …): it is read as a row index (pandas' to_csv writes one unless index=False) and not used as a feature",
                path.display()
            );
        } else {
            crate::notes::say!(
                "elbo: {}: the first column has no name and is used as a feature ({first}, …); if it is pandas' row index (repeated after pd.concat), write the table with index=False",
                path.display()
            );
        }
    }
    let skipped: Vec<&str> = (0..candidates.len())
        .filter(|&k| !keep.contains(&k) && tallies[k].texts > 0 && !is_index(candidates[k]))
        .map(|k| header[candidates[k]].as_str())
        .collect();
    match skipped[..] {
        [] => {}
        [one] => crate::notes::say!(
            "elbo: {}: column '{one}' is not numeric and is not used as a feature",
            path.display()
        ),
        _ => crate::notes::say!(
            "elbo: {}: columns '{}' are not numeric and are not used as features",
            path.display(),
            skipped.join("', '")
        ),
    }
    keep_columns(&mut values, candidates.len(), &keep);
    let (labels, classes) = match label_idx {
        Some(l) => {
            let (labels, classes) = labels.classes(|line, what| at(line, l, what), path)?;
            (Some(labels), classes)
        }
        None => (None, Vec::new()),
    };
    let mut dataset = Dataset::new(
        ItemShape::grey(1, keep.len()),
        Kind::Table,
        Values::F32(values),
        labels,
    )?;
    dataset.classes = classes;
    Ok(Table {
        dataset,
        columns: keep
            .iter()
            .map(|&k| header[candidates[k]].clone())
            .collect(),
    })
}

/// The label column's position, and the positions of the columns that may be features: the run's own `columns`
/// (each of which the table must have), or every column but the label.
fn column_positions(
    header: &[String],
    label_column: Option<&str>,
    columns: Option<&[String]>,
    path: &Path,
) -> Result<(Option<usize>, Vec<usize>)> {
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
    let candidates = match columns {
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
        None => (0..header.len())
            .filter(|&i| Some(i) != label_idx)
            .collect(),
    };
    Ok((label_idx, candidates))
}

/// What [`read_cells`] found: per candidate column, how its cells read; the cells row by row (NaN where one is
/// not a number); the labels; and the number of rows.
struct Cells {
    tallies: Vec<Tally>,
    values: Vec<f32>,
    labels: Labels,
    rows: usize,
}

/// Reads every row's `candidates` cells and its label. With `saved` (a run's own columns) a cell that is not a
/// number is the error `at` makes; otherwise it is tallied, so that [`features`] can decide what the column is.
fn read_cells(
    rdr: &mut csv::Reader<impl std::io::Read>,
    candidates: &[usize],
    label_idx: Option<usize>,
    saved: bool,
    path: &Path,
    at: &impl Fn(u64, usize, String) -> Error,
) -> Result<Cells> {
    let mut tallies = vec![Tally::default(); candidates.len()];
    let mut values: Vec<f32> = Vec::new();
    let mut labels = Labels::default();
    let mut rows = 0usize;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| record_error(e, path))?;
        let line = rec.position().map_or(0, |p| p.line());
        for (t, &i) in tallies.iter_mut().zip(candidates) {
            let cell = &rec[i];
            match number(cell) {
                Ok(v) => {
                    t.numbers += 1;
                    values.push(v);
                }
                // A run's saved columns are features whatever they hold.
                Err(bad) if saved => return Err(at(line, i, bad.describe(cell))),
                Err(bad) => {
                    if bad == BadCell::Text {
                        t.texts += 1;
                    } else if bad.is_number() {
                        t.numbers += 1;
                    }
                    t.first_bad
                        .get_or_insert_with(|| (line, bad, cell.to_string()));
                    values.push(f32::NAN);
                }
            }
        }
        if let Some(l) = label_idx {
            labels
                .push(&rec[l], line)
                .map_err(|what| at(line, l, what))?;
        }
        rows += 1;
    }
    Ok(Cells {
        tallies,
        values,
        labels,
        rows,
    })
}

/// Says that the columns `index` (named in the header's first cells) are pandas' row index, not features.
fn say_pandas_index(index: &[String], path: &Path) {
    let one = index.len() == 1;
    let names: Vec<String> = index
        .iter()
        .map(|h| {
            if h.is_empty() {
                "unnamed".to_string()
            } else {
                format!("'{h}'")
            }
        })
        .collect();
    crate::notes::say!(
        "elbo: {}: the first {} ({}) {} pandas' row index, under the header pandas writes, and not used as {}",
        path.display(),
        if one {
            "column".to_string()
        } else {
            format!("{} columns", index.len())
        },
        names.join(", "),
        if one { "is" } else { "are" },
        if one { "a feature" } else { "features" },
    );
}

/// The positions (among the candidate columns) of the features; the first bad cell of any feature, by line
/// then column, is the error `bad` makes.
fn features(
    tallies: &[Tally],
    path: &Path,
    bad: impl Fn(usize, &(u64, BadCell, String)) -> Error,
) -> Result<Vec<usize>> {
    let keep: Vec<usize> = (0..tallies.len())
        .filter(|&k| tallies[k].is_feature())
        .collect();
    let first = keep
        .iter()
        .filter_map(|&k| tallies[k].first_bad.as_ref().map(|b| (k, b)))
        .min_by_key(|(k, b)| (b.0, *k));
    if let Some((k, b)) = first {
        return Err(bad(k, b));
    }
    if keep.is_empty() {
        return Err(Error::Config(format!(
            "{}: no numeric columns to use as features",
            path.display()
        )));
    }
    Ok(keep)
}

/// Keeps, in place, the columns `keep` (increasing) of row-major `values` with `width` columns.
fn keep_columns(values: &mut Vec<f32>, width: usize, keep: &[usize]) {
    if keep.len() == width {
        return;
    }
    let rows = values.len() / width.max(1);
    // Every value moves to an index no higher than its own, so none is overwritten before it is read.
    for r in 0..rows {
        for (j, &k) in keep.iter().enumerate() {
            values[r * keep.len() + j] = values[r * width + k];
        }
    }
    values.truncate(rows * keep.len());
    values.shrink_to_fit();
}

/// A label column's cells, read row by row.
#[derive(Debug, Default)]
struct Labels {
    raw: Vec<String>,
    /// The line of each label.
    lines: Vec<u64>,
    /// The first label spelled as a missing value (`NA`, `?`, …): its line and cell.
    first_missing: Option<(u64, String)>,
}

impl Labels {
    /// Takes one row's label; an empty one is an error (the text of it).
    fn push(&mut self, cell: &str, line: u64) -> std::result::Result<(), String> {
        if cell.is_empty() {
            return Err("an empty label (fill it in, or drop the row)".into());
        }
        if is_missing(cell) {
            self.first_missing
                .get_or_insert_with(|| (line, cell.to_string()));
        }
        self.raw.push(cell.to_string());
        self.lines.push(line);
        Ok(())
    }

    /// Each row's class and the class names. When every label is a number the classes are numbers in
    /// increasing order, equal numbers one class named by its shortest spelling ("1" and "1.0" are class "1"),
    /// and a missing-value spelling among them is an error (`at` makes it); otherwise they are names in text
    /// order, and a missing-value spelling is a class, with a notice.
    fn classes(
        self,
        at: impl Fn(u64, String) -> Error,
        path: &Path,
    ) -> Result<(Vec<u32>, Vec<String>)> {
        let numbers: Vec<Option<f64>> = self
            .raw
            .iter()
            .map(|s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    // -0 and 0 are one class. By their bits, as every comparison of labels here: elbo flushes
                    // subnormal floats to zero while it works, where float arithmetic and comparisons (and what
                    // LLVM makes of a test of the bits for zero) read 1e-310 as 0.
                    .map(|v| f64::from_bits(plus_zero(std::hint::black_box(v.to_bits()))))
            })
            .collect();
        let numeric = numbers.iter().any(Option::is_some)
            && numbers
                .iter()
                .zip(&self.raw)
                .all(|(n, s)| n.is_some() || is_missing(s));
        if numeric {
            if let Some((line, cell)) = self.first_missing {
                return Err(at(
                    line,
                    format!("'{cell}' is a missing label (fill it in, or drop the row)"),
                ));
            }
            // From 2^53 on, neighbouring whole numbers are one float64, and their classes would merge (however
            // they are written: `9007199254740993.0` and `1.0000000000000001e16` too).
            let beyond = |s: &String, n: &Option<f64>| {
                beyond_exact(s) || n.is_some_and(|v| v.abs() >= EXACT_LIMIT)
            };
            if let Some(k) = (0..self.raw.len()).find(|&k| beyond(&self.raw[k], &numbers[k])) {
                return Err(at(
                    self.lines[k],
                    format!(
                        "label '{}' is 2^53 or more in size, where float64 stops telling neighbouring whole numbers apart and different labels would become one class; write the labels as text (a letter before each number)",
                        shown_cell(&self.raw[k])
                    ),
                ));
            }
            let numbers: Vec<f64> = numbers.into_iter().flatten().collect();
            // Too small for float64 (1e-400 reads as 0): a class named 0 would not be what the file says.
            // Each spelling once: a column of a million zeros is one check.
            let mut checked = std::collections::HashSet::new();
            if let Some(k) = (0..numbers.len()).find(|&k| {
                std::hint::black_box(numbers[k].to_bits()) == 0
                    && checked.insert(self.raw[k].as_str())
                    && exact_decimal(&self.raw[k]) != Some((false, String::new(), 0))
            }) {
                return Err(at(
                    self.lines[k],
                    format!(
                        "label '{}' is too small for float64, which reads it as 0; write the labels as text (a letter before each number), or scale them",
                        shown_cell(&self.raw[k])
                    ),
                ));
            }
            if let Some((k, other)) = merged_by_rounding(&self.raw, &numbers) {
                let (a, b) = (shown_cell(&self.raw[k]), shown_cell(&self.raw[other]));
                let known = exact_decimal(&self.raw[k]).is_some()
                    && exact_decimal(&self.raw[other]).is_some();
                let what = if known {
                    "are different numbers that float64 holds as one"
                } else {
                    "are one float64, and whether they are one number cannot be worked out (an exponent too long to read)"
                };
                return Err(at(
                    self.lines[k],
                    format!(
                        "label '{a}' and label '{b}' (line {}) {what} ({}), so their classes would merge; write the labels as text (a letter before each number), or round them alike",
                        self.lines[other],
                        number_name(numbers[k])
                    ),
                ));
            }
            let mut set = numbers.clone();
            set.sort_by(f64::total_cmp);
            set.dedup_by(|a, b| a.to_bits() == b.to_bits());
            let labels = numbers
                .iter()
                .map(|v| {
                    set.binary_search_by(|s| s.total_cmp(v))
                        .expect("a class of the set") as u32
                })
                .collect();
            return Ok((labels, set.into_iter().map(number_name).collect()));
        }
        if let Some((line, cell)) = &self.first_missing {
            crate::notes::say!(
                "elbo: {}: line {line}: label '{cell}' is taken as a class name; if it marks a missing label, fill it in or drop the row",
                path.display()
            );
        }
        let mut set = self.raw.clone();
        set.sort();
        set.dedup();
        let labels = self
            .raw
            .iter()
            .map(|l| set.binary_search(l).expect("a class of the set") as u32)
            .collect();
        Ok((labels, set))
    }
}

/// The first label (and an earlier one it meets) that float64 rounds onto the same value as a different number:
/// `0.1` and `0.10000000000000001`, or `0` and `1e-400`. Spellings of one number (`1`, `1.0`, `1e0`) are one class.
fn merged_by_rounding(raw: &[String], numbers: &[f64]) -> Option<(usize, usize)> {
    let mut first = std::collections::HashMap::new();
    for (k, v) in numbers.iter().enumerate() {
        let seen = *first.entry(v.to_bits()).or_insert(k);
        // A spelling whose exact value cannot be worked out (an exponent of 40 digits) is taken as a number of
        // its own: refused beside another spelling of its float64, never merged unseen.
        if raw[seen] != raw[k] {
            match (exact_decimal(&raw[seen]), exact_decimal(&raw[k])) {
                (Some(a), Some(b)) if a == b => {}
                _ => return Some((k, seen)),
            }
        }
    }
    None
}

/// A decimal number's exact value as sign, significant digits and power of ten (zero has no sign or digits), or
/// `None` for what is not plain decimal notation.
fn exact_decimal(cell: &str) -> Option<(bool, String, i128)> {
    let (negative, rest) = match cell.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, cell.strip_prefix('+').unwrap_or(cell)),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{frac}");
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    // Zero, whatever its exponent: checked before the exponent is read, which may be too long to hold.
    if trimmed.is_empty() {
        return Some((false, String::new(), 0));
    }
    let exp = match exp {
        Some(e) => e.parse::<i128>().ok()?,
        None => 0,
    };
    let dropped = (significant.len() - trimmed.len()) as i128;
    let power = exp.checked_sub(frac.len() as i128)?.checked_add(dropped)?;
    Some((negative, trimmed.to_string(), power))
}

/// 2^53: from here on float64 cannot tell neighbouring whole numbers apart.
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Whether `cell` spells a whole number (digits, an optional sign) beyond 2^53 in magnitude.
fn beyond_exact(cell: &str) -> bool {
    let digits = cell.strip_prefix(['-', '+']).unwrap_or(cell);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.trim_start_matches('0').len() >= 16
        && digits.parse::<u128>().map_or(true, |v| v > 1u128 << 53)
}

/// `bits` with negative zero made positive, in integers only.
fn plus_zero(bits: u64) -> u64 {
    if bits == 1 << 63 { 0 } else { bits }
}

/// The class name of a numeric label: an integer without a decimal point, else the shortest spelling.
fn number_name(v: f64) -> String {
    // Opaque to the optimiser, which would turn these tests of the bits back into float comparisons.
    let bits = std::hint::black_box(v.to_bits());
    // A subnormal (exponent field zero, not zero), named in exponent form, which is worked out from the bits:
    // with subnormals flushed, float arithmetic reads it as 0 and `{:?}` spells it out digit by digit.
    if bits << 1 != 0 && (bits >> 52) & 0x7ff == 0 {
        return format!("{v:e}");
    }
    // Whole numbers up to 2^53 are exact, and so is their spelling without a decimal point.
    if v.fract() == 0.0 && v.abs() <= (1u64 << 53) as f64 {
        format!("{}", v as i64)
    } else {
        format!("{v:?}")
    }
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

    /// Sixty rows of `a,b,c` numbers with `cell` as column b of data row `row` (1-based).
    fn with_cell(row: usize, cell: &str) -> String {
        let mut s = String::from("a,b,c\n");
        for r in 1..=60 {
            let b = if r == row {
                cell.to_string()
            } else {
                format!("{}", r % 7)
            };
            s.push_str(&format!("{r},{b},{}\n", r as f32 / 3.0));
        }
        s
    }

    #[test]
    fn a_missing_value_is_an_error_wherever_it_lies() {
        for cell in ["NA", "N/A", "NaN", "null", "", "?", "na", "None", "#N/A"] {
            for row in [1, 10, 60] {
                let (_t, p) = write(&with_cell(row, cell), "t.csv");
                let e = load(&p, None, None).unwrap_err().to_string();
                assert!(
                    e.contains(&format!("line {}, column 'b'", row + 1))
                        && (e.contains("missing value") || e.contains("empty cell"))
                        && e.contains("fill it in"),
                    "{cell:?} in row {row}: {e}"
                );
            }
        }
        // A column of text is left out, whatever it holds where; text among numbers is an error at its line.
        let (_t, p) = write("name,a\nNA,1\nbob,2\n,3\nann,4\n", "t.csv");
        let t = load(&p, None, None).unwrap();
        assert_eq!(t.columns, ["a"]);
        assert_eq!(t.dataset.values, Values::F32(vec![1.0, 2.0, 3.0, 4.0]));
        for row in [1, 30] {
            let (_t, p) = write(&with_cell(row, "oops"), "t.csv");
            let e = load(&p, None, None).unwrap_err().to_string();
            assert!(
                e.contains(&format!("line {}, column 'b'", row + 1)) && e.contains("'oops'"),
                "{e}"
            );
        }
        // Of several bad cells the first by line is named, then by column.
        let (_t, p) = write("a,b,c\n1,2,3\n4,5,NA\n7,?,9\n", "t.csv");
        let e = load(&p, None, None).unwrap_err().to_string();
        assert!(e.contains("line 3, column 'c'"), "{e}");
        let (_t, p) = write("a,b\n1,NA\n2,NA\n", "t.csv");
        let e = load(&p, None, None).unwrap_err().to_string();
        assert!(e.contains("line 2, column 'b'"), "{e}");
        // A run's saved columns are read as numbers whatever they hold.
        let (_t, p) = write("a,b\nx,1\ny,2\n", "t.csv");
        let e = load(&p, None, Some(&["a".to_string()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2, column 'a': 'x' is not a number"), "{e}");
    }

    #[test]
    fn numbers_beyond_f32_are_named_as_such() {
        let (_t, p) = write(&with_cell(3, "1e+308"), "t.csv");
        let e = load(&p, None, None).unwrap_err().to_string();
        assert!(
            e.contains("line 4, column 'b': 1e+308 is beyond f32's range")
                && !e.contains("not a finite"),
            "{e}"
        );
        for inf in ["inf", "-Infinity", "1e999"] {
            let (_t, p) = write(&with_cell(3, inf), "t.csv");
            let e = load(&p, None, None).unwrap_err().to_string();
            assert!(e.contains("not a finite number"), "{inf}: {e}");
        }
        assert_eq!(number("3.4e38"), Ok(3.4e38));
        assert_eq!(number("-3.5e38"), Err(BadCell::OutOfRange));
    }

    #[test]
    fn a_header_of_numbers_is_refused() {
        let (_t, p) = write("-0.801931,1.5\n0.2,0.3\n0.4,0.5\n", "t.csv");
        let e = load(&p, None, None).unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("header row naming its columns"),
            "{e}"
        );
        // Some numbers among names are names (years, say), or a first row of data (UCI's iris has no header):
        // the guess is said.
        let (_t, p) = write("name,2019,2020\nx,1,2\n", "t.csv");
        let (t, notes) = crate::notes::capture(|| load(&p, None, None));
        assert_eq!(t.unwrap().columns, ["2019", "2020"]);
        assert!(
            notes.iter().any(|n| n.contains(
                "line 1 is read as the header row, though it names columns with numbers ('2019', '2020')"
            )),
            "{notes:?}"
        );
        let (_t, p) = write("a,b\n1,2\n", "t.csv");
        let (_, notes) = crate::notes::capture(|| load(&p, None, None));
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn pandas_header_of_column_numbers_is_a_header() {
        let rows = "0.5,1.5,2.5\n0.25,1.25,2.75\n";
        for header in ["0,1,2", ",0,1,2", "Unnamed: 0,0,1,2"] {
            let body = if header.starts_with('0') {
                rows.to_string()
            } else {
                rows.lines()
                    .enumerate()
                    .map(|(i, r)| format!("{i},{r}\n"))
                    .collect()
            };
            let (_t, p) = write(&format!("{header}\n{body}"), "t.csv");
            let (t, notes) = crate::notes::capture(|| load(&p, None, None));
            let t = t.unwrap_or_else(|e| panic!("{header}: {e}"));
            // The row index, when written, is left out of the features.
            assert_eq!(t.columns, ["0", "1", "2"], "{header}");
            assert!(
                notes.iter().any(|n| n.contains("the header pandas writes")),
                "{header}: {notes:?}"
            );
            assert!(
                !notes
                    .iter()
                    .any(|n| n.contains("names columns with numbers")),
                "{notes:?}"
            );
        }
        // Under pandas' header the first column is the index, whatever its values (repeated after `pd.concat`).
        let (_t, p) = write(
            ",0,1\n0,0.5,1.5\n1,0.25,2.5\n0,0.75,1.25\n1,1.5,2.5\n",
            "t.csv",
        );
        let (t, notes) = crate::notes::capture(|| load(&p, None, None));
        assert_eq!(t.unwrap().columns, ["0", "1"]);
        assert!(
            notes.iter().any(|n| n.contains("is pandas' row index")),
            "{notes:?}"
        );
        // Saved twice (`,Unnamed: 0,0,1`), a named index (`id,0,1`) and a MultiIndex (`,,0,1` or `g,i,0,1`): every
        // leading index level is left out, named in one line.
        for (header, index) in [
            (",Unnamed: 0,0,1", 2),
            ("id,0,1", 1),
            (",,0,1", 2),
            ("g,i,0,1", 2),
        ] {
            let rows: String = (0..4)
                .map(|r| {
                    let idx: Vec<String> = (0..index).map(|l| format!("{}", r * 10 + l)).collect();
                    format!("{},{}.5,{}.25\n", idx.join(","), r, 3 - r)
                })
                .collect();
            let (_t, p) = write(&format!("{header}\n{rows}"), "t.csv");
            let (t, notes) = crate::notes::capture(|| load(&p, None, None));
            let t = t.unwrap_or_else(|e| panic!("{header}: {e}"));
            assert_eq!(t.columns, ["0", "1"], "{header}");
            assert!(
                notes.iter().any(|n| n.contains("pandas' row index")),
                "{header}: {notes:?}"
            );
        }
        // Numbers that do not count up from 0 are still a row of data.
        for header in ["1,2,3", "0,2,3", ",1,2"] {
            let (_t, p) = write(&format!("{header}\n0.5,1.5,2.5\n"), "t.csv");
            let (t, notes) = crate::notes::capture(|| load(&p, None, None));
            assert!(
                !notes.iter().any(|n| n.contains("the header pandas writes")),
                "{header}: {notes:?} {t:?}"
            );
        }
    }

    #[test]
    fn an_unnamed_first_column_kept_as_a_feature_is_said() {
        let (_t, p) = write(",a,b\n0.5,1,2\n0.5,3,4\n1.5,5,6\n", "t.csv");
        let (t, notes) = crate::notes::capture(|| load(&p, None, None));
        assert_eq!(t.unwrap().columns, ["", "a", "b"]);
        assert!(
            notes.iter().any(|n| n
                .contains("the first column has no name and is used as a feature (0.5, 0.5, …)")),
            "{notes:?}"
        );
    }

    #[test]
    fn a_pandas_row_index_is_not_a_feature() {
        let (_t, p) = write(",a,b\n4,1,2\n", "t.csv");
        assert_eq!(load(&p, None, None).unwrap().columns, ["a", "b"], "one row");
        for (name, first) in [("", 0), ("Unnamed: 0", 0), ("", 1)] {
            let rows: String = (0..5)
                .map(|i| format!("{},{},{}\n", first + i, i * i, 7 - i))
                .collect();
            let (_t, p) = write(&format!("{name},a,b\n{rows}"), "t.csv");
            let (t, notes) = crate::notes::capture(|| load(&p, None, None));
            let t = t.unwrap();
            assert_eq!(t.columns, ["a", "b"], "{name:?} from {first}");
            assert_eq!(
                t.dataset.values,
                Values::F32(vec![0., 7., 1., 6., 4., 5., 9., 4., 16., 3.])
            );
            assert!(
                notes.iter().any(|n| n.contains("is read as a row index")),
                "{notes:?}"
            );
        }
        // Shuffled (`df.sample(frac=1)`) or sliced, it is still an index.
        let (_t, p) = write(",a\n7,5\n3,6\n12,1\n", "t.csv");
        assert_eq!(load(&p, None, None).unwrap().columns, ["a"]);
        // A named counter, or an unnamed column of repeated or fractional values, is a feature.
        for text in ["id,a\n0,5\n1,6\n", ",a\n0,5\n0,6\n", ",a\n0.5,5\n2,6\n"] {
            let (_t, p) = write(text, "t.csv");
            assert_eq!(
                load(&p, None, None).unwrap().dataset.shape.len(),
                2,
                "{text}"
            );
        }
    }

    #[test]
    fn labels_float64_rounds_together_are_refused_not_merged() {
        for (a, b) in [
            ("0.1", "0.10000000000000001"),
            ("1", "1.00000000000000000000000000000001"),
            ("2.5", "2.50000000000000000001"),
        ] {
            let (_t, p) = write(&format!("a,y\n1,{a}\n2,{b}\n3,{a}\n"), "t.csv");
            let e = load(&p, Some("y"), None).unwrap_err().to_string();
            assert!(
                e.contains("line 3")
                    && e.contains(&format!("'{b}'"))
                    && e.contains(&format!("'{a}' (line 2)"))
                    && e.contains("float64 holds as one"),
                "{e}"
            );
        }
        // Spellings of one number are still one class.
        let (_t, p) = write(
            "a,y\n1,1\n2,1.0\n3,1e0\n4,+1.000\n5,0.1e1\n6,10e-1\n7,0\n8,-0.0\n9,0e5\n",
            "t.csv",
        );
        let t = load(&p, Some("y"), None).unwrap();
        assert_eq!(t.dataset.classes, ["0", "1"]);
        // Exponents too long for any integer: zero is zero, anything else a number of its own, never merged.
        // Labels float64 reads as 0 that are not 0 are refused, alone or beside 0 (before: a class named 0), also
        // with exponents too long for any integer.
        for (a, b) in [
            ("1e-330", "1"),
            ("-1e-400", "1"),
            ("0", "1e-400"),
            ("-0.0", "-1e-330"),
            ("1e-99999999999999999999", "2e-99999999999999999999"),
            ("0e-99999999999999999999", "1e-99999999999999999999"),
            ("0.1e-9223372036854775808", "0.2e-9223372036854775808"),
            ("1e-1000000000000000000000000000000000000000000", "0"),
        ] {
            let (_t, p) = write(&format!("a,y\n1,{a}\n2,{b}\n"), "t.csv");
            let e = load(&p, Some("y"), None).unwrap_err().to_string();
            assert!(
                e.contains("too small for float64, which reads it as 0"),
                "{a} {b}: {e}"
            );
        }
        let (_t, p) = write("a,y\n1,0e-99999999999999999999\n2,0\n3,-0e-5\n", "t.csv");
        assert_eq!(load(&p, Some("y"), None).unwrap().dataset.classes, ["0"]);
        // Subnormal labels are numbers of their own, also while elbo flushes subnormals to zero, as the command
        // line does from its start.
        let _mode = crate::core::denormal::Scope::new();
        crate::core::denormal::flush_to_zero();
        let (_t, p) = write("a,y\n1,1e-310\n2,2e-310\n3,1\n4,1e-310\n", "t.csv");
        let t = load(&p, Some("y"), None).unwrap();
        assert_eq!(t.dataset.classes, ["1e-310", "2e-310", "1"]);
        assert_eq!(t.dataset.labels.as_deref(), Some(&[0, 1, 2, 0][..]));
        // A long cell is cut short in the message, a label's as a feature's.
        let (_t, p) = write(&format!("a,y\n1,0\n{}x,1\n", "9".repeat(3000)), "t.csv");
        let e = load(&p, Some("y"), None).unwrap_err().to_string();
        assert!(e.len() < 400 && e.contains("(3001 characters)"), "{e}");
        let long = format!("0.{}1", "0".repeat(5000));
        let (_t, p) = write(&format!("a,y\n1,0.0\n2,{long}\n"), "t.csv");
        let e = load(&p, Some("y"), None).unwrap_err().to_string();
        assert!(e.len() < 400 && e.contains("(5003 characters)"), "{e}");
        assert_eq!(exact_decimal("12.50e-3"), Some((false, "125".into(), -4)));
        assert_eq!(exact_decimal("-.5"), Some((true, "5".into(), -1)));
        assert_eq!(exact_decimal("inf"), None);
    }

    #[test]
    fn labels_beyond_two_to_the_53_are_refused_not_merged() {
        // 2^53 + 1 and 2^53 are one float64.
        let (_t, p) = write("a,y\n1,9007199254740992\n2,9007199254740993\n", "t.csv");
        let e = load(&p, Some("y"), None).unwrap_err().to_string();
        assert!(
            e.contains("line 2")
                && e.contains("'9007199254740992'")
                && e.contains("2^53 or more in size"),
            "{e}"
        );
        // However they are written.
        for (a, b) in [
            ("9007199254740993.0", "9007199254740992.0"),
            ("1e16", "1.0000000000000001e16"),
            ("-9007199254740993.0", "3"),
        ] {
            let (_t, p) = write(&format!("a,y\n1,{a}\n2,{b}\n"), "t.csv");
            let e = load(&p, Some("y"), None).unwrap_err().to_string();
            assert!(e.contains(&format!("'{a}'")) && e.contains("2^53"), "{e}");
        }
        // Just below, and long spellings of small numbers, are exact.
        let (_t, p) = write("a,y\n1,9007199254740991\n2,0000000000000000001\n", "t.csv");
        let t = load(&p, Some("y"), None).unwrap();
        assert_eq!(t.dataset.classes, ["1", "9007199254740991"]);
        // As text they are names, each its own class.
        let (_t, p) = write("a,y\n1,id9007199254740992\n2,id9007199254740993\n", "t.csv");
        assert_eq!(load(&p, Some("y"), None).unwrap().dataset.classes.len(), 2);
    }

    #[test]
    fn numeric_labels_are_classes_in_numeric_order() {
        let mut text = String::from("a,label\n");
        for i in 0..24 {
            text.push_str(&format!("{i},{}\n", i % 12));
        }
        let (_t, p) = write(&text, "t.csv");
        let t = load(&p, Some("label"), None).unwrap();
        let want: Vec<String> = (0..12).map(|c| c.to_string()).collect();
        assert_eq!(t.dataset.classes, want);
        let labels = t.dataset.labels.unwrap();
        assert_eq!(labels[..12], (0..12).collect::<Vec<u32>>()[..]);
        // Equal numbers are one class, named by the shortest spelling; -0 is 0.
        let (_t, p) = write(
            "a,label\n1,1\n2,1.0\n3,10\n4,2.50\n5,-0\n6,0\n7,1e1\n8,-3\n",
            "t.csv",
        );
        let t = load(&p, Some("label"), None).unwrap();
        assert_eq!(t.dataset.classes, ["-3", "0", "1", "2.5", "10"]);
        assert_eq!(
            t.dataset.labels.as_deref(),
            Some(&[2, 2, 4, 3, 1, 1, 4, 0][..])
        );
        // A missing label among numbers is an error; among names it is a class, with a notice.
        let (_t, p) = write("a,label\n1,1\n2,NA\n3,2\n", "t.csv");
        let e = load(&p, Some("label"), None).unwrap_err().to_string();
        assert!(
            e.contains("line 3, column 'label': 'NA' is a missing label"),
            "{e}"
        );
        let (_t, p) = write("a,label\n1,cat\n2,NA\n3,10\n4,9\n", "t.csv");
        let t = load(&p, Some("label"), None).unwrap();
        assert_eq!(t.dataset.classes, ["10", "9", "NA", "cat"]);
        let (_t, p) = write("a,label\n1,cat\n2,\n", "t.csv");
        let e = load(&p, Some("label"), None).unwrap_err().to_string();
        assert!(e.contains("line 3, column 'label': an empty label"), "{e}");
    }

    #[test]
    fn keeping_columns_in_place_keeps_rows_whole() {
        let mut v: Vec<f32> = (0..12).map(|x| x as f32).collect();
        keep_columns(&mut v, 4, &[1, 3]);
        assert_eq!(v, [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
    }
}
