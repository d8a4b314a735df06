//! `elbo decode`: latent codes the user gives, decoded into images or rows (in the data's own units).

use super::common::{MosaicArgs, OutArgs, class_labels};
use crate::data::Kind;
use crate::error::{Error, Result};
use crate::figures::latent as lat;
use crate::figures::{mosaic, save_image};
use crate::fsutil::write_atomic;
use crate::train::{Checkpoint, load_run};
use clap::Args;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Most codes one call decodes.
const MAX_CODES: usize = 100_000;
/// Largest `--z-file` read.
const MAX_Z_FILE: u64 = 256 << 20;

#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    /// Latent codes: comma-separated values, codes separated by ';' (e.g. "0.1,-2;1,0").
    #[arg(
        long,
        allow_hyphen_values = true,
        conflicts_with = "z_file",
        required_unless_present = "z_file"
    )]
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
}

/// Decodes; tables come back un-standardised, with their column names.
pub(crate) fn run(a: DecodeArgs) -> Result<()> {
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    let ck = load_run(&a.run_dir)?;
    let zd = ck.vae.latent();
    let codes = match (&a.z, &a.z_file) {
        (Some(z), _) => parse_inline(z, zd)?,
        (None, Some(f)) => read_codes(f, zd)?,
        (None, None) => unreachable!("clap requires one"),
    };
    let n = codes.len() / zd;
    if ck.config.model.is_conditional() && a.class.is_none() {
        return Err(Error::Config(format!(
            "this model is conditional: choose the class to decode with --class ({})",
            ck.config.data.classes.join(", ")
        )));
    }
    let labels = class_labels(&ck, a.class.as_deref(), n)?;
    let mut px = lat::decode_means(&ck.vae, &codes, n, &labels);
    let csv = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if csv {
        write_rows(&ck, &mut px, n, out)?;
    } else {
        if ck.config.data.kind != Kind::Image {
            return Err(Error::Config(format!(
                "--out {}: this run's data are feature rows, not images: write .csv",
                out.display()
            )));
        }
        crate::figures::image_format(out)?;
        let cols = (n as f64).sqrt().ceil() as usize;
        save_image(
            &mosaic(&px, n, ck.config.model.item_shape(), cols, style)?,
            out,
        )?;
    }
    crate::say!("elbo: wrote {} ({n} decoded codes)", out.display());
    Ok(())
}

/// Writes decoded means as CSV rows, mapping standardised features back to the data's units.
pub(crate) fn write_rows(ck: &Checkpoint, px: &mut [f32], n: usize, out: &Path) -> Result<()> {
    let d = ck.config.model.input_dim();
    if let Some(st) = &ck.config.data.standardizer {
        st.invert(px);
    }
    let names: Vec<String> = if ck.config.data.columns.len() == d {
        ck.config.data.columns.clone()
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
    write_atomic(out, s.as_bytes())
}

fn parse_inline(z: &str, zd: usize) -> Result<Vec<f32>> {
    let mut codes = Vec::new();
    for (i, code) in z.split(';').enumerate() {
        let vals = parse_row(code.split(','), zd, &format!("--z code {}", i + 1))?;
        codes.extend(vals);
    }
    if codes.len() / zd > MAX_CODES {
        return Err(Error::Config(format!(
            "--z gives more than {MAX_CODES} codes"
        )));
    }
    Ok(codes)
}

fn parse_row<'a>(cells: impl Iterator<Item = &'a str>, zd: usize, what: &str) -> Result<Vec<f32>> {
    let vals: Vec<f32> = cells
        .map(|c| {
            let c = c.trim();
            c.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| Error::Config(format!("{what}: '{c}' is not a finite number")))
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

/// Codes from a CSV: its mu_J or z_J columns when the header names them, else every column.
fn read_codes(path: &Path, zd: usize) -> Result<Vec<f32>> {
    let file = crate::fsutil::open_regular(path, MAX_Z_FILE, "--z-file")?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_reader(file);
    let mut codes = Vec::new();
    let mut picks: Option<Vec<usize>> = None;
    let mut line = 0;
    for rec in rdr.records() {
        line += 1;
        let rec =
            rec.map_err(|e| Error::Config(format!("{}: line {line}: {e}", path.display())))?;
        if line == 1 && rec.iter().any(|c| c.parse::<f64>().is_err()) {
            // A header: take the code columns `elbo encode` writes.
            for prefix in ["mu_", "z_"] {
                let named = rec.iter().filter(|c| c.starts_with(prefix)).count();
                if named == 0 {
                    continue;
                }
                let cols: Vec<usize> = (0..zd)
                    .filter_map(|j| rec.iter().position(|c| c == format!("{prefix}{j}")))
                    .collect();
                if cols.len() != zd || named != zd {
                    return Err(Error::Config(format!(
                        "{}: the header has {named} {prefix}J columns, but this model's codes have {zd} dimensions ({prefix}0 to {prefix}{}): codes from another run?",
                        path.display(),
                        zd - 1
                    )));
                }
                picks = Some(cols);
                break;
            }
            if picks.is_none() && rec.len() != zd {
                return Err(Error::Config(format!(
                    "{}: the header has no columns mu_0..mu_{} (or z_0..): give a CSV of {zd} numbers a row",
                    path.display(),
                    zd - 1
                )));
            }
            continue;
        }
        let what = format!("{}: line {line}", path.display());
        let row = match &picks {
            Some(p) => parse_row(p.iter().map(|&i| rec.get(i).unwrap_or("")), zd, &what)?,
            None => parse_row(rec.iter(), zd, &what)?,
        };
        codes.extend(row);
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
    Ok(codes)
}
