//! `elbo decode`: latent codes the user gives, decoded into images or rows (in the data's own units).

use super::common::{MosaicArgs, OutArgs};
use crate::api::Model;
use crate::api::model::class_labels;
use crate::data::{Kind, table};
use crate::error::{Error, Result};
use crate::figures::{mosaic, save_image};
use crate::train::RunConfig;
use clap::Args;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Most codes one call decodes.
const MAX_CODES: usize = 100_000;
/// Largest `--z-file` read.
const MAX_Z_FILE: u64 = 256 << 20;

#[derive(Debug, Args)]
// One of the two, named together when neither is given.
#[command(group(clap::ArgGroup::new("codes").required(true).args(["z", "z_file"])))]
pub(crate) struct DecodeArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    /// Latent codes: comma-separated values, codes separated by ';' (e.g. "0.1,-2;1,0").
    #[arg(long, allow_hyphen_values = true)]
    z: Option<String>,
    /// A CSV of codes, one a row: the mu_J or z_J columns of `elbo encode`'s output, or only numbers.
    #[arg(long, value_name = "FILE")]
    z_file: Option<PathBuf>,
    /// Class the decoder is conditioned on, by name or index (a conditional model).
    #[arg(long)]
    class: Option<String>,
    #[command(flatten)]
    mosaic: MosaicArgs,
    /// Output: an image (.png, .jpg, .bmp, .tiff) of the decoded means, or .csv rows of them.
    #[command(flatten)]
    output: OutArgs,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
}

/// Decodes; tables come back un-standardised, with their column names.
pub(crate) fn run(a: DecodeArgs) -> Result<()> {
    a.threads.init()?;
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    let model = Model::open(&a.run_dir)?;
    let cfg = model.config();
    let zd = model.latent();
    let mut file_classes = None;
    if a.z_file.as_deref().is_some_and(super::common::is_stdout) {
        return Err(Error::Config(
            "--z-file -: codes are read from a file, not from standard input; save them to a .csv and give its name"
                .into(),
        ));
    }
    let codes = match (&a.z, &a.z_file) {
        (Some(z), _) => parse_inline(z, zd),
        (None, Some(f)) => read_coded(f, zd).map(|(codes, classes)| {
            file_classes = classes.map(|c| (f, c));
            codes
        }),
        (None, None) => unreachable!("clap requires one"),
    };
    // A stacked model's codes are its top layer's: say so where a code's width is wrong.
    let codes = codes.map_err(|e| match (e, model.depth()) {
        (Error::Config(m), depth) if depth > 1 && m.contains("latent space has") => Error::Config(
            format!("{m} (z{depth}, the top of its {depth} latent layers)"),
        ),
        (e, _) => e,
    })?;
    let n = codes.len() / zd;
    if let Some((file, names)) = &file_classes
        && !model.is_conditional()
        && names.iter().any(|c| !c.is_empty())
    {
        crate::notes::say!(
            "elbo: {}'s class column is not used: this model is not conditional",
            file.display()
        );
    }
    let labels = match (&a.class, file_classes) {
        // `elbo encode`'s class column, code by code, unless --class chooses one for all.
        (None, Some((file, names))) if model.is_conditional() => {
            let mut labels = Vec::with_capacity(n);
            for (i, name) in names.iter().enumerate() {
                if name.is_empty() {
                    return Err(Error::Config(format!(
                        "{}: code {} has no class in its class column: fill it in, or decode every code as one class with --class ({})",
                        file.display(),
                        i + 1,
                        cfg.data.classes.join(", ")
                    )));
                }
                labels.extend(class_labels(cfg, Some(name), 1).map_err(|e| {
                    Error::Config(format!("{}: code {}: {e}", file.display(), i + 1))
                })?);
            }
            crate::notes::say!(
                "elbo: each code decoded as the class in {}'s class column",
                file.display()
            );
            labels
        }
        (None, _) if model.is_conditional() => {
            return Err(Error::Config(format!(
                "this model is conditional: choose the class to decode with --class ({})",
                cfg.data.classes.join(", ")
            )));
        }
        (class, _) => class_labels(cfg, class.as_deref(), n)?,
    };
    let px = model.decode(&codes, &labels)?;
    let csv = writes_rows(cfg, out);
    if csv {
        write_rows(cfg, &px, n, out)?;
    } else {
        if cfg.data.kind != Kind::Image {
            return Err(Error::Config(format!(
                "--out {}: this run's data are feature rows, not images: write .csv",
                out.display()
            )));
        }
        image_out(out)?;
        let cols = (n as f64).sqrt().ceil() as usize;
        save_image(&mosaic(&px, n, cfg.model.item_shape(), cols, style)?, out)?;
    }
    crate::notes::say!(
        "elbo: wrote {} ({n} decoded code{})",
        super::common::shown_out(out),
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}

/// Writes decoded means, already in the data's units, as CSV rows named by the run's columns.
pub(crate) fn write_rows(cfg: &RunConfig, px: &[f32], n: usize, out: &Path) -> Result<()> {
    let d = cfg.model.input_dim();
    let names: Vec<String> = if cfg.data.columns.len() == d {
        cfg.data.columns.clone()
    } else {
        (0..d).map(|j| format!("x_{j}")).collect()
    };
    let mut s = names.join(",");
    s.push('\n');
    for row in px.chunks_exact(d).take(n) {
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let _ = write!(s, "{v}");
        }
        s.push('\n');
    }
    super::common::write_rows_to(out, &s)
}

/// The image format of `--out` for `sample` and `decode` of an image run, whose values can also go to a `.csv`:
/// `-` is refused naming both.
pub(crate) fn image_out(out: &Path) -> Result<image::ImageFormat> {
    if super::common::is_stdout(out) {
        return Err(Error::Config(
            "--out -: elbo writes images to files, not to standard output; give a file name ending in .png, .jpg, .bmp or .tiff, or .csv for the pixel values as rows".into(),
        ));
    }
    crate::figures::image_format(out)
}

/// Whether `--out` asks for rows: a `.csv` file, or `-` (standard output) for a run on feature rows; `-` for a
/// run on images is left to the image writer, which says that images go to files.
pub(crate) fn writes_rows(cfg: &RunConfig, out: &Path) -> bool {
    out.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        || (super::common::is_stdout(out) && cfg.data.kind != Kind::Image)
}

fn parse_inline(z: &str, zd: usize) -> Result<Vec<f32>> {
    let mut codes = Vec::new();
    for (i, code) in z.split(';').enumerate() {
        let cells = code
            .split(',')
            .enumerate()
            .map(|(j, c)| (format!("value {}", j + 1), c.trim()));
        codes.extend(parse_row(cells, zd, &format!("--z code {}", i + 1))?);
    }
    if codes.len() / zd > MAX_CODES {
        return Err(Error::Config(format!(
            "--z gives more than {MAX_CODES} codes"
        )));
    }
    Ok(codes)
}

/// One code from its cells, each with the name an error gives it.
fn parse_row<'a>(
    cells: impl Iterator<Item = (String, &'a str)>,
    zd: usize,
    what: &str,
) -> Result<Vec<f32>> {
    let vals: Vec<f32> = cells
        .map(|(name, c)| {
            table::number(c)
                .map_err(|bad| Error::Config(format!("{what}, {name}: {}", bad.describe(c))))
        })
        .collect::<Result<_>>()?;
    if vals.len() != zd {
        return Err(Error::Config(format!(
            "{what} has {} values; this model's latent space has {zd} dimensions",
            vals.len()
        )));
    }
    Ok(vals)
}

/// Whether the first row of a codes file is a header: it is when no cell reads as a number, and a code when
/// every cell does; anything between is an error naming the cell, so that no code is taken for a header.
fn is_header(rec: &csv::StringRecord, path: &Path) -> Result<bool> {
    let numbers = rec.iter().filter(|c| table::reads_as_number(c)).count();
    if numbers == rec.len() {
        return Ok(false);
    }
    let odd = rec
        .iter()
        .position(table::is_missing)
        .or_else(|| (numbers > 0).then(|| rec.iter().position(|c| !table::reads_as_number(c)))?);
    let Some(j) = odd else { return Ok(true) };
    let line = rec.position().map_or(1, |p| p.line());
    let cell = &rec[j];
    let what = if table::is_missing(cell) {
        table::BadCell::Missing.describe(cell)
    } else {
        format!(
            "'{cell}' is not a number, but other cells of the line are, so the line is neither a header of names nor a code: correct it"
        )
    };
    Err(Error::Config(format!(
        "{}: line {line}, column {}: {what}",
        path.display(),
        j + 1
    )))
}

/// The columns of a header that hold the codes: the mu_J or z_J columns `elbo encode` writes, else all of
/// them when there are as many as the codes have dimensions.
fn code_columns(header: &csv::StringRecord, zd: usize, path: &Path) -> Result<Vec<usize>> {
    for prefix in ["mu_", "z_"] {
        let named = header.iter().filter(|c| c.starts_with(prefix)).count();
        if named == 0 {
            continue;
        }
        let cols: Vec<usize> = (0..zd)
            .filter_map(|j| header.iter().position(|c| c == format!("{prefix}{j}")))
            .collect();
        if named == zd && cols.len() != zd {
            let missing: Vec<String> = (0..zd)
                .map(|j| format!("{prefix}{j}"))
                .filter(|c| !header.iter().any(|h| h == c))
                .collect();
            return Err(Error::Config(format!(
                "{}: the header lacks {} (this model's codes have {zd} dimensions, {prefix}0 to {prefix}{})",
                path.display(),
                missing.join(", "),
                zd - 1
            )));
        }
        if cols.len() != zd || named != zd {
            return Err(Error::Config(format!(
                "{}: the header has {named} {prefix}J columns, but this model's codes have {zd} dimensions ({prefix}0 to {prefix}{}): codes from another run?",
                path.display(),
                zd - 1
            )));
        }
        return Ok(cols);
    }
    if header.len() != zd {
        return Err(Error::Config(format!(
            "{}: the header has no columns mu_0..mu_{} (or z_0..): give a CSV of {zd} numbers a row",
            path.display(),
            zd - 1
        )));
    }
    Ok((0..zd).collect())
}

/// Codes from a CSV (tab-separated by a `.tsv`/`.tab` ending), one a row, in the file's order: its mu_J or
/// z_J columns when a header names them, else every column.
#[cfg(test)]
fn read_codes(path: &Path, zd: usize) -> Result<Vec<f32>> {
    Ok(read_coded(path, zd)?.0)
}

/// [`read_codes`], and each row's `class` cell when the header has that column (as `elbo encode` writes it for a
/// labelled set).
fn read_coded(path: &Path, zd: usize) -> Result<(Vec<f32>, Option<Vec<String>>)> {
    let file = crate::fsutil::open_regular(path, MAX_Z_FILE, "--z-file")?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(table::delimiter(path))
        .trim(csv::Trim::All)
        .from_reader(file);
    let mut codes = Vec::new();
    let mut classes: Option<Vec<String>> = None;
    let mut header: Option<(csv::StringRecord, Vec<usize>)> = None;
    for (k, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            Error::Config(format!("{}: line {line}: {e}", path.display()))
        })?;
        if k == 0 && is_header(&rec, path)? {
            let cols = code_columns(&rec, zd, path)?;
            if rec.iter().any(|c| c == "class") {
                classes = Some(Vec::new());
            }
            header = Some((rec, cols));
            continue;
        }
        let what = format!(
            "{}: line {}",
            path.display(),
            rec.position().map_or(0, |p| p.line())
        );
        let row = match &header {
            Some((names, _)) if rec.len() != names.len() => {
                return Err(Error::Config(format!(
                    "{what} has {} fields, the header has {} (a ragged row)",
                    rec.len(),
                    names.len()
                )));
            }
            Some((names, cols)) => parse_row(
                cols.iter()
                    .map(|&i| (format!("column '{}'", &names[i]), &rec[i])),
                zd,
                &what,
            )?,
            None => parse_row(
                rec.iter()
                    .enumerate()
                    .map(|(j, c)| (format!("column {}", j + 1), c)),
                zd,
                &what,
            )?,
        };
        codes.extend(row);
        if let (Some(list), Some((names, _))) = (classes.as_mut(), &header) {
            let at = names
                .iter()
                .position(|c| c == "class")
                .expect("the header has it");
            list.push(rec[at].to_string());
        }
        if codes.len() / zd > MAX_CODES {
            return Err(Error::Config(format!(
                "{}: more than {MAX_CODES} codes",
                path.display()
            )));
        }
    }
    if codes.is_empty() {
        return Err(Error::Config(format!(
            "{}: no codes in the file",
            path.display()
        )));
    }
    Ok((codes, classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(text: &str, name: &str) -> Result<Vec<f32>> {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        read_codes(&p, 2)
    }

    #[test]
    fn a_first_line_is_a_code_a_header_or_an_error() {
        // Every cell a number: the first code, not a header.
        let c = codes("0.5,-1\n0.1,0.2\n0.3,0.4\n", "z.csv").unwrap();
        assert_eq!(c, [0.5, -1.0, 0.1, 0.2, 0.3, 0.4]);
        // Every cell a name: a header.
        let c = codes("index,mu_0,mu_1\n0,0.5,-1\n1,2,3\n", "z.csv").unwrap();
        assert_eq!(c, [0.5, -1.0, 2.0, 3.0]);
        assert_eq!(codes("a,b\n1,2\n", "z.csv").unwrap(), [1.0, 2.0]);
        assert_eq!(
            codes("1\t2\n3\t4\n", "z.tsv").unwrap(),
            [1.0, 2.0, 3.0, 4.0]
        );
        // Anything between names line 1 and the cell.
        for (text, want) in [
            (
                "0.5,-1x\n0.1,0.2\n0.3,0.4\n",
                "line 1, column 2: '-1x' is not a number",
            ),
            (
                "NA,NA\n0.1,0.2\n",
                "line 1, column 1: 'NA' is a missing value",
            ),
            ("x,1\n0.1,0.2\n", "line 1, column 1: 'x'"),
            ("mu_0,\n0.1,0.2\n", "line 1, column 2: an empty cell"),
        ] {
            let e = codes(text, "z.csv").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        // A header of the right width that skips a dimension names the one it lacks.
        let e = codes("mu_0,mu_2\n0.1,0.2\n", "z.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the header lacks mu_1"), "{e}");
        // Later rows name their line and column too.
        let e = codes("0.5,-1\n0.1,NA\n", "z.csv").unwrap_err().to_string();
        assert!(
            e.contains("line 2, column 2: 'NA' is a missing value"),
            "{e}"
        );
        let e = codes("mu_1,mu_0\n0.5,-1\n0.1\n", "z.csv")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3 has 1 fields, the header has 2"), "{e}");
        let e = codes("0.5,-1\n0.1\n", "z.csv").unwrap_err().to_string();
        assert!(e.contains("line 2 has 1 values"), "{e}");
    }

    #[test]
    fn numbers_beyond_f32_are_named_as_such() {
        let e = codes("0.5,1e+308\n", "z.csv").unwrap_err().to_string();
        assert!(
            e.contains("line 1, column 2: 1e+308 is beyond f32's range"),
            "{e}"
        );
        let e = parse_inline("0,1e+308", 2).unwrap_err().to_string();
        assert!(e.contains("1e+308 is beyond f32's range"), "{e}");
        let e = parse_inline("0,inf", 2).unwrap_err().to_string();
        assert!(e.contains("inf is not a finite number"), "{e}");
    }
}
