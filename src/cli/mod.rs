//! The `elbo` command line: argument parsing and one function per command over the library.

pub mod flags;

use flags::RunFlags;

use crate::core::threads;

use crate::error::{Error, Result};
use crate::eval;
use crate::figures::latent::{self as lat, GridRange};
use crate::figures::{MosaicStyle, mosaic, plot, save_png};
use crate::fsutil::{check_output, write_atomic};
use crate::model::{Likelihood, Vae};
use crate::train::{self, Checkpoint, Start, TrainOptions, load_run};
use clap::{Args, Parser, Subcommand};
use rand::SeedableRng;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Train, evaluate and use variational autoencoders.
#[derive(Debug, Parser)]
#[command(name = "elbo", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a VAE (defaults: the PyTorch example, 784-400-20 on MNIST, 10 epochs).
    Train(Box<TrainArgs>),
    /// Test -ELBO and importance-sampled log-likelihood of a trained run.
    Eval(EvalArgs),
    /// Decode draws from the prior into an image grid.
    Sample(SampleArgs),
    /// Test images in one row over their reconstructions in the row below.
    Reconstruct(ReconstructArgs),
    /// Write latent means and log-variances of a split, with labels, as CSV.
    Encode(EncodeArgs),
    /// Decode a grid over two latent dimensions into one mosaic (the 2-D latent manifold).
    Manifold(ManifoldArgs),
    /// Scatter the encoder means of a split, coloured by class (PCA beyond two dimensions).
    LatentPlot(LatentPlotArgs),
    /// Decode the path between the encodings of two test images.
    Interpolate(InterpolateArgs),
    /// Plot train and test -ELBO, reconstruction and KL against epoch.
    PlotMetrics(PlotMetricsArgs),
}

#[derive(Debug, Clone, Copy, Args)]
struct MosaicArgs {
    /// Nearest-neighbour upscaling factor.
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// White pixels around and between tiles.
    #[arg(long, default_value_t = 2)]
    pad: usize,
    /// Draw a light line between rows.
    #[arg(long)]
    separators: bool,
}

impl MosaicArgs {
    fn style(self) -> Result<MosaicStyle> {
        if self.scale == 0 || self.scale > 16 {
            return Err(Error::Config(format!(
                "--scale {} must be between 1 and 16",
                self.scale
            )));
        }
        if self.pad > 64 {
            return Err(Error::Config(format!(
                "--pad {} must be at most 64",
                self.pad
            )));
        }
        Ok(MosaicStyle {
            scale: self.scale,
            pad: self.pad,
            separators: self.separators,
        })
    }
}

#[derive(Debug, Args)]
struct ManifoldArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    /// Tiles per side.
    #[arg(long, default_value_t = 20)]
    grid: usize,
    /// The two latent dimensions to vary (0-based); the others are held at 0.
    #[arg(long, value_delimiter = ',', num_args = 1, default_value = "0,1")]
    dims: Vec<usize>,
    /// Grid spacing: quantile:P,Q places points at the standard normal's quantiles; linear:A,B evenly.
    #[arg(long, default_value = "quantile:0.05,0.95", allow_hyphen_values = true)]
    range: String,
    /// Class the decoder is conditioned on (a conditional model).
    #[arg(long)]
    class: Option<u32>,
    #[command(flatten)]
    mosaic: MosaicArgs,
    #[command(flatten)]
    output: OutArgs,
}

#[derive(Debug, Args)]
struct LatentPlotArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Which split to encode.
    #[arg(long, default_value = "test", value_parser = ["test", "train"])]
    split: String,
    /// Projection for latents of more than two dimensions.
    #[arg(long, default_value = "pca", value_parser = ["pca"])]
    method: String,
    /// Plot the first N images of the split only.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    output: OutArgs,
}

#[derive(Debug, Args)]
struct InterpolateArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Index of the first test image.
    #[arg(long)]
    from: usize,
    /// Index of the last test image.
    #[arg(long)]
    to: usize,
    /// Decoded points along the path, both ends included.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Follow the great circle between the codes (slerp) instead of the straight line.
    #[arg(long)]
    spherical: bool,
    #[command(flatten)]
    mosaic: MosaicArgs,
    #[command(flatten)]
    output: OutArgs,
}

#[derive(Debug, Args)]
struct PlotMetricsArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    output: OutArgs,
}

#[derive(Debug, Args)]
struct DataArgs {
    /// Folder with the dataset's IDX files (default: $ELBO_DATA_DIR, else the user cache; missing files are downloaded).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl DataArgs {
    /// The run's data: this `--data-dir`, else `$ELBO_DATA_DIR`, else the folder recorded at training time.
    fn splits(&self, ck: &Checkpoint) -> Result<train::Splits> {
        let dir = self.data_dir.clone().or_else(|| recorded_dir(ck));
        train::load_splits(&ck.config, dir.as_deref())
    }
}

/// An output file, replaced only with `--force`.
#[derive(Debug, Args)]
struct OutArgs {
    /// Output file: PNG for images, .png or .svg for charts, CSV for `encode`.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
}

impl OutArgs {
    /// Refuses an existing file without `--force`, or a missing folder, before any work is done.
    fn check(&self) -> Result<&Path> {
        check_output(&self.out, self.force)?;
        Ok(&self.out)
    }
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// TOML file of settings, keyed by flag name (`latent = 2`, `batch-size = 20`); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Continue the run in RUN_DIR from its last checkpoint, with its saved config.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    flags: RunFlags,
    /// Replace an existing run directory's checkpoint, metrics and figures.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Importance samples per test image.
    #[arg(long, default_value_t = 5000)]
    k: usize,
    /// Evaluate the first N test images only.
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the importance draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

#[derive(Debug, Args)]
struct SampleArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 64)]
    n: usize,
    /// Seed of the prior draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Scale of the prior's standard deviation (below 1: more typical samples).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Show the decoder means (the default).
    #[arg(long, conflicts_with = "bernoulli")]
    mean: bool,
    /// Show pixels sampled from the Bernoulli decoder instead of its means.
    #[arg(long)]
    bernoulli: bool,
    /// Generate this class only (a conditional model); without it a conditional model shows every class.
    #[arg(long)]
    class: Option<u32>,
    #[command(flatten)]
    mosaic: MosaicArgs,
    #[command(flatten)]
    output: OutArgs,
}

#[derive(Debug, Args)]
struct ReconstructArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Number of test images.
    #[arg(long, default_value_t = 8)]
    n: usize,
    #[command(flatten)]
    mosaic: MosaicArgs,
    #[command(flatten)]
    output: OutArgs,
}

#[derive(Debug, Args)]
struct EncodeArgs {
    /// A run directory written by `elbo train`.
    run_dir: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Which split to encode.
    #[arg(long, default_value = "test", value_parser = ["test", "train"])]
    split: String,
    #[command(flatten)]
    output: OutArgs,
}

/// Largest image grid `sample` and `reconstruct` draw.
const MAX_IMAGES: usize = 10_000;

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("elbo: error: {e}");
            1
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => cmd_train(*a),
        Command::Eval(a) => cmd_eval(a),
        Command::Sample(a) => cmd_sample(a),
        Command::Reconstruct(a) => cmd_reconstruct(a),
        Command::Encode(a) => cmd_encode(a),
        Command::Manifold(a) => cmd_manifold(a),
        Command::LatentPlot(a) => cmd_latent_plot(a),
        Command::Interpolate(a) => cmd_interpolate(a),
        Command::PlotMetrics(a) => cmd_plot_metrics(a),
    }
}

impl TrainArgs {
    /// The settings: the flags, then the `--config` file for what they leave out.
    fn settings(&self) -> Result<RunFlags> {
        let Some(path) = &self.config else {
            return Ok(self.flags.clone());
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let file = RunFlags::from_toml(&text, &path.display().to_string())?;
        Ok(self.flags.clone().or(file))
    }
}

/// Files `elbo train` writes into a run directory; `--force` removes exactly these.
const RUN_FILES: [&str; 9] = [
    train::checkpoint::CHECKPOINT,
    train::checkpoint::PREVIOUS,
    "metrics.csv",
    "config.json",
    "samples.png",
    "reconstructions.png",
    "curves.png",
    "latent.png",
    "manifold.png",
];

fn cmd_train(a: TrainArgs) -> Result<()> {
    let opts = TrainOptions {
        progress: std::io::stderr().is_terminal(),
        verbose: true,
    };
    let (run_dir, start, splits) = if let Some(dir) = &a.resume {
        threads::init(a.flags.threads.unwrap_or(0));
        let mut flags = a.flags.given();
        flags.retain(|f| !["--epochs", "--threads", "--data-dir"].contains(&f.as_str()));
        if a.force {
            flags.push("--force".into());
        }
        if !flags.is_empty() {
            return Err(Error::Config(format!(
                "{} cannot be changed when resuming: the run keeps its saved config (only --epochs, --threads and --data-dir apply)",
                flags.join(", ")
            )));
        }
        let ck = load_run(dir)?;
        remove_stale_temp_files(dir);
        let data_dir = a.flags.data_dir.clone().or_else(|| recorded_dir(&ck));
        let splits = train::load_splits(&ck.config, data_dir.as_deref())?;
        train::preflight(&ck.config, &splits)?;
        eprintln!(
            "elbo: resuming {} after epoch {}",
            dir.display(),
            ck.state.epoch
        );
        (
            dir.clone(),
            Start::Resume(Box::new(ck), a.flags.epochs),
            splits,
        )
    } else {
        let settings = a.settings()?;
        threads::init(settings.threads.unwrap_or(0));
        let cfg = settings.resolve()?;
        // Data and memory are checked before the run directory is touched, so a refusal leaves nothing behind.
        let splits = train::load_splits(&cfg, settings.data_dir.as_deref())?;
        train::preflight(&cfg, &splits)?;
        let dir = settings
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(cfg.train.dataset.as_str()));
        prepare_run_dir(&dir, a.force)?;
        let json = serde_json::to_string_pretty(&cfg).map_err(|e| Error::Config(e.to_string()))?;
        write_atomic(&dir.join("config.json"), json.as_bytes())?;
        eprintln!("elbo: training into {}", dir.display());
        (dir, Start::New(Box::new(cfg)), splits)
    };
    train::train_on(&run_dir, &splits, start, opts)?;
    let ck = load_run(&run_dir)?;
    let style = MosaicStyle::default();
    let mut written = Vec::new();
    if ck.config.model.is_variational() {
        // A conditional model shows one row per class.
        let (n, labels) = if ck.config.model.is_conditional() {
            let k = ck.config.model.classes as u32;
            ((k * 8) as usize, (0..k * 8).map(|i| i / 8).collect())
        } else {
            (64, Vec::new())
        };
        let spec = SampleSpec {
            n,
            seed: ck.config.train.seed,
            temperature: 1.0,
            bernoulli: false,
            labels,
        };
        write_samples(&ck.vae, &spec, style, &run_dir.join("samples.png"))?;
        written.push("samples.png");
    }
    write_reconstructions(
        &ck.vae,
        &splits.test,
        8,
        style,
        &run_dir.join("reconstructions.png"),
    )?;
    plot::training_curves(
        &ck.state.history,
        &run_title("Training curves", &run_dir),
        &run_dir.join("curves.png"),
    )?;
    write_latent_plot(
        &ck,
        &run_dir,
        &splits.test,
        "test",
        &run_dir.join("latent.png"),
    )?;
    written.extend(["reconstructions.png", "curves.png", "latent.png"]);
    if ck.vae.latent() == 2 && ck.config.model.is_variational() {
        let codes = lat::manifold_codes(2, 20, (0, 1), GridRange::default())?;
        let px = lat::decode_means(&ck.vae, &codes, 400, &[]);
        let (h, w) = (ck.config.model.rows, ck.config.model.cols);
        save_png(
            &mosaic(&px, 400, h, w, 20, style),
            &run_dir.join("manifold.png"),
        )?;
        written.push("manifold.png");
    }
    eprintln!(
        "elbo: wrote {} into {}",
        written.join(", "),
        run_dir.display()
    );
    Ok(())
}

/// A figure title naming the run.
fn run_title(what: &str, run_dir: &Path) -> String {
    let name = std::fs::canonicalize(run_dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run_dir.display().to_string());
    format!("{what} — run {name}")
}

fn prepare_run_dir(dir: &Path, force: bool) -> Result<()> {
    let used = RUN_FILES.iter().any(|f| dir.join(f).exists());
    if used && !force {
        return Err(Error::Config(format!(
            "run directory {} already holds a run; pass --force to replace it, --resume {} to continue it, or choose another --out",
            dir.display(),
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Probe writability now rather than after the first epoch.
    write_atomic(&dir.join(".elbo-write-test"), b"")?;
    let _ = std::fs::remove_file(dir.join(".elbo-write-test"));
    if used {
        for f in RUN_FILES {
            let p = dir.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
    }
    Ok(())
}

/// Deletes temporary files a killed process left behind mid-write (`.NAME.PID.tmp`, see `write_atomic`).
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The data folder recorded at training time, when no other is given and it still exists.
fn recorded_dir(ck: &Checkpoint) -> Option<PathBuf> {
    if std::env::var_os("ELBO_DATA_DIR").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    ck.config.train.data_dir.clone().filter(|d| d.is_dir())
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    threads::init(a.threads);
    if a.k == 0 {
        return Err(Error::Config("--k must be at least 1".into()));
    }
    let ck = load_run(&a.run_dir)?;
    if !ck.config.model.is_variational() {
        return Err(Error::Config(
            "this run is a deterministic autoencoder: it defines no likelihood p(x) to estimate (compare reconstructions instead)".into(),
        ));
    }
    let splits = a.data.splits(&ck)?;
    let test = match a.limit {
        Some(0) => return Err(Error::Config("--limit 0 leaves nothing to evaluate".into())),
        Some(n) => splits.test.truncated(n),
        None => splits.test,
    };
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(test.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "log p(x), K={msg} [{bar:30}] {pos}/{len} images ({eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(a.k.to_string());
    let started = std::time::Instant::now();
    let est = eval::estimate_log_likelihood(&ck.vae, &test, a.k, a.seed, &|n| bar.inc(n as u64));
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if a.json {
        let mut v = serde_json::to_value(est).map_err(|e| Error::Config(e.to_string()))?;
        v["log_likelihood"] = serde_json::json!(-est.nll);
        v["seconds"] = serde_json::json!(secs);
        v["epoch"] = serde_json::json!(ck.state.epoch);
        println!("{v}");
    } else {
        println!(
            "run        {} (epoch {})",
            a.run_dir.display(),
            ck.state.epoch
        );
        println!("images     {}", est.n);
        println!("-ELBO      {:.3} nats", est.neg_elbo);
        println!(
            "-log p(x)  {:.3} nats (importance sampling, K = {})",
            est.nll, est.k
        );
        println!("time       {secs:.1} s");
    }
    Ok(())
}

/// The labels `n` generated images are conditioned on: `class` for all, or (no class given) the classes in turn.
fn class_labels(ck: &Checkpoint, class: Option<u32>, n: usize) -> Result<Vec<u32>> {
    let k = ck.config.model.classes as u32;
    match class {
        Some(_) if k == 0 => Err(Error::Config(
            "--class needs a conditional model (trained with --conditional); this one is not"
                .into(),
        )),
        Some(c) if c >= k => Err(Error::Config(format!(
            "--class {c} is out of range: this model knows classes 0 to {}",
            k - 1
        ))),
        Some(c) => Ok(vec![c; n]),
        None if k > 0 => Ok((0..n).map(|i| (i * k as usize / n) as u32).collect()),
        None => Ok(Vec::new()),
    }
}

fn check_count(n: usize, what: &str) -> Result<()> {
    if n == 0 || n > MAX_IMAGES {
        return Err(Error::Config(format!(
            "--n {n} for {what} must be between 1 and {MAX_IMAGES}"
        )));
    }
    Ok(())
}

/// What `sample` draws.
struct SampleSpec {
    n: usize,
    seed: u64,
    temperature: f64,
    bernoulli: bool,
    /// Class of each sample, for a conditional model (empty otherwise).
    labels: Vec<u32>,
}

fn write_samples(vae: &Vae<f32>, spec: &SampleSpec, style: MosaicStyle, out: &Path) -> Result<()> {
    let (n, zd) = (spec.n, vae.latent());
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(spec.seed);
    let codes: Vec<f32> = (0..n * zd)
        .map(|_| {
            let e: f32 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            e * spec.temperature as f32
        })
        .collect();
    let mut px = lat::decode_means(vae, &codes, n, &spec.labels);
    if spec.bernoulli {
        use rand::RngExt;
        for p in px.iter_mut() {
            let u: f32 = rng.random();
            *p = if u < *p { 1.0 } else { 0.0 };
        }
    }
    let cols = (n as f64).sqrt().ceil() as usize;
    save_png(
        &mosaic(&px, n, vae.config.rows, vae.config.cols, cols, style),
        out,
    )
}

fn write_reconstructions(
    vae: &Vae<f32>,
    test: &crate::data::Dataset,
    n: usize,
    style: MosaicStyle,
    out: &Path,
) -> Result<()> {
    let n = n.min(test.len());
    let (_, d) = (vae.latent(), vae.config.input_dim());
    let idx: Vec<usize> = (0..n).collect();
    let x = lat::pixels(test, &idx);
    // Reconstruct from the posterior mean: a deterministic figure.
    let codes = lat::encode(vae, test, &idx);
    let rec = lat::decode_means(vae, &codes, n, &lat::labels(test, &idx));
    // Pairs of rows: originals over reconstructions, at most 16 per row.
    let per_row = n.min(16);
    let mut tiles = Vec::with_capacity(2 * n.div_ceil(per_row) * per_row * d);
    for start in (0..n).step_by(per_row) {
        for src in [&x, &rec] {
            for i in start..start + per_row {
                if i < n {
                    tiles.extend_from_slice(&src[i * d..(i + 1) * d]);
                } else {
                    tiles.extend(std::iter::repeat_n(1.0, d));
                }
            }
        }
    }
    let count = tiles.len() / d;
    save_png(
        &mosaic(
            &tiles,
            count,
            vae.config.rows,
            vae.config.cols,
            per_row,
            style,
        ),
        out,
    )
}

fn cmd_sample(a: SampleArgs) -> Result<()> {
    check_count(a.n, "sample")?;
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    if !(a.temperature.is_finite() && a.temperature > 0.0) {
        return Err(Error::Config(format!(
            "--temperature {} must be a positive number",
            a.temperature
        )));
    }
    let ck = load_run(&a.run_dir)?;
    if !ck.config.model.is_variational() {
        return Err(Error::Config(
            "this run is a deterministic autoencoder: it has no prior to sample from (use reconstruct, encode or interpolate)".into(),
        ));
    }
    let labels = class_labels(&ck, a.class, a.n)?;
    if a.bernoulli && ck.config.model.likelihood != Likelihood::Bernoulli {
        return Err(Error::Config(
            "--bernoulli samples pixels from a Bernoulli decoder; this model's is Gaussian".into(),
        ));
    }
    let spec = SampleSpec {
        n: a.n,
        seed: a.seed,
        temperature: a.temperature,
        bernoulli: a.bernoulli,
        labels,
    };
    write_samples(&ck.vae, &spec, style, out)?;
    eprintln!("elbo: wrote {}", out.display());
    Ok(())
}

fn cmd_reconstruct(a: ReconstructArgs) -> Result<()> {
    check_count(a.n, "reconstruct")?;
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    let ck = load_run(&a.run_dir)?;
    let splits = a.data.splits(&ck)?;
    write_reconstructions(&ck.vae, &splits.test, a.n, style, out)?;
    eprintln!("elbo: wrote {}", out.display());
    Ok(())
}

fn cmd_encode(a: EncodeArgs) -> Result<()> {
    let out = a.output.check()?;
    let ck = load_run(&a.run_dir)?;
    let splits = a.data.splits(&ck)?;
    let ds = if a.split == "train" {
        &splits.train
    } else {
        &splits.test
    };
    let vae = &ck.vae;
    let zd = vae.latent();
    let mut csv = String::from("index,label");
    if ck.config.model.is_variational() {
        (0..zd).for_each(|j| csv.push_str(&format!(",mu_{j}")));
        (0..zd).for_each(|j| csv.push_str(&format!(",logvar_{j}")));
    } else {
        (0..zd).for_each(|j| csv.push_str(&format!(",z_{j}")));
    }
    csv.push('\n');
    let all: Vec<usize> = (0..ds.len()).collect();
    let head = lat::encode_head(vae, ds, &all);
    for (h, &i) in head.chunks_exact(vae.head_len()).zip(&all) {
        csv.push_str(&format!("{i},{}", ds.labels[i]));
        for v in h {
            csv.push_str(&format!(",{v}"));
        }
        csv.push('\n');
    }
    write_atomic(out, csv.as_bytes())?;
    eprintln!(
        "elbo: wrote {} ({} rows, {zd} latent dimensions)",
        out.display(),
        ds.len()
    );
    Ok(())
}

fn cmd_manifold(a: ManifoldArgs) -> Result<()> {
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    let range: GridRange = a.range.parse()?;
    if a.dims.len() != 2 {
        return Err(Error::Config(format!(
            "--dims takes two dimensions, like 0,1; got {:?}",
            a.dims
        )));
    }
    let ck = load_run(&a.run_dir)?;
    let codes = lat::manifold_codes(ck.vae.latent(), a.grid, (a.dims[0], a.dims[1]), range)?;
    let n = a.grid * a.grid;
    if a.class.is_none() && ck.config.model.is_conditional() {
        return Err(Error::Config(format!(
            "this model is conditional: choose the class of the manifold with --class (0 to {})",
            ck.config.model.classes - 1
        )));
    }
    let labels = class_labels(&ck, a.class, n)?;
    let px = lat::decode_means(&ck.vae, &codes, n, &labels);
    save_png(
        &mosaic(
            &px,
            n,
            ck.config.model.rows,
            ck.config.model.cols,
            a.grid,
            style,
        ),
        out,
    )?;
    eprintln!("elbo: wrote {}", out.display());
    Ok(())
}

/// Class names for the legend of a dataset's scatter plot.
fn class_names(ds: crate::data::DatasetName) -> [&'static str; 10] {
    match ds {
        crate::data::DatasetName::Mnist => ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        crate::data::DatasetName::FashionMnist => [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
        crate::data::DatasetName::Kmnist => {
            ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]
        }
    }
}

fn write_latent_plot(
    ck: &Checkpoint,
    run_dir: &Path,
    ds: &crate::data::Dataset,
    split: &str,
    out: &Path,
) -> Result<()> {
    let zd = ck.vae.latent();
    let idx: Vec<usize> = (0..ds.len()).collect();
    let means = lat::encode(&ck.vae, ds, &idx);
    let n = idx.len();
    let (points, x_label, y_label) = match zd {
        1 => (
            means
                .iter()
                .zip(&ds.labels)
                .map(|(&m, &l)| [m as f64, l as f64])
                .collect(),
            "z₀ (encoder mean)".to_string(),
            "class".to_string(),
        ),
        2 => (
            means
                .chunks_exact(2)
                .map(|m| [m[0] as f64, m[1] as f64])
                .collect(),
            "z₀ (encoder mean)".to_string(),
            "z₁ (encoder mean)".to_string(),
        ),
        _ => {
            let (p, frac) = lat::pca2(&means, n, zd);
            (
                p,
                format!(
                    "PC 1 of the {zd}-D encoder means ({:.1}% of variance)",
                    100.0 * frac[0]
                ),
                format!("PC 2 ({:.1}% of variance)", 100.0 * frac[1]),
            )
        }
    };
    let names = class_names(ck.config.train.dataset);
    let title = run_title(&format!("Latent means of {n} {split} images"), run_dir);
    let scatter = plot::Scatter {
        points: &points,
        labels: &ds.labels,
        class_names: &names,
        title,
        x_label,
        y_label,
    };
    plot::scatter(&scatter, out)
}

fn cmd_latent_plot(a: LatentPlotArgs) -> Result<()> {
    let out = a.output.check()?;
    let ck = load_run(&a.run_dir)?;
    let splits = a.data.splits(&ck)?;
    let ds = if a.split == "train" {
        splits.train
    } else {
        splits.test
    };
    let ds = match a.limit {
        Some(0) => return Err(Error::Config("--limit 0 leaves nothing to plot".into())),
        Some(n) => ds.truncated(n),
        None => ds,
    };
    debug_assert_eq!(a.method, "pca");
    write_latent_plot(&ck, &a.run_dir, &ds, &a.split, out)?;
    eprintln!("elbo: wrote {}", out.display());
    Ok(())
}

fn cmd_interpolate(a: InterpolateArgs) -> Result<()> {
    let out = a.output.check()?;
    let style = a.mosaic.style()?;
    if a.steps < 2 || a.steps > 1000 {
        return Err(Error::Config(format!(
            "--steps {} must be between 2 and 1000",
            a.steps
        )));
    }
    let ck = load_run(&a.run_dir)?;
    let test = a.data.splits(&ck)?.test;
    for (flag, i) in [("--from", a.from), ("--to", a.to)] {
        if i >= test.len() {
            return Err(Error::Config(format!(
                "{flag} {i} is out of range: the test set has {} images (indices 0 to {})",
                test.len(),
                test.len() - 1
            )));
        }
    }
    let zd = ck.vae.latent();
    let codes = lat::encode(&ck.vae, &test, &[a.from, a.to]);
    let path = lat::interpolate(&codes[..zd], &codes[zd..], a.steps, a.spherical);
    // A conditional model keeps the class of the first image along the path.
    let labels = vec![test.labels[a.from] as u32; a.steps];
    let px = lat::decode_means(&ck.vae, &path, a.steps, &labels);
    let (h, w) = (ck.config.model.rows, ck.config.model.cols);
    save_png(&mosaic(&px, a.steps, h, w, a.steps, style), out)?;
    eprintln!("elbo: wrote {}", out.display());
    Ok(())
}

fn cmd_plot_metrics(a: PlotMetricsArgs) -> Result<()> {
    let out = a.output.check()?;
    let ck = load_run(&a.run_dir)?;
    plot::training_curves(
        &ck.state.history,
        &run_title("Training curves", &a.run_dir),
        out,
    )?;
    eprintln!("elbo: wrote {}", out.display());
    Ok(())
}
