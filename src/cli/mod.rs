//! The `elbo` command line: argument parsing and one function per command over the library.

use crate::core::{Activation, threads};
use crate::data::{Binarize, DatasetName};
use crate::error::{Error, Result};
use crate::eval;
use crate::figures::latent::{self as lat, GridRange};
use crate::figures::{MosaicStyle, mosaic, plot, save_png};
use crate::fsutil::{check_output, write_atomic};
use crate::model::{Likelihood, ModelConfig, Vae};
use crate::train::{self, Checkpoint, RunConfig, Start, TrainConfig, TrainOptions, load_run};
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
    #[command(flatten)]
    data: DataArgs,
    /// Continue the run in RUN_DIR from its last checkpoint, with its saved config.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// mnist, fashion-mnist or kmnist [default: mnist].
    #[arg(long)]
    dataset: Option<String>,
    /// Total epochs [default: 10].
    #[arg(long)]
    epochs: Option<usize>,
    /// Run directory for checkpoints, metrics and figures [default: runs/DATASET].
    #[arg(long, value_name = "RUN_DIR")]
    out: Option<PathBuf>,
    /// Latent dimension [default: 20].
    #[arg(long)]
    latent: Option<usize>,
    /// Hidden widths, comma-separated; the decoder mirrors them [default: 400].
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    hidden: Option<Vec<usize>>,
    /// Hidden activation [default: relu].
    #[arg(long, value_enum)]
    activation: Option<Activation>,
    /// Pixel likelihood: bernoulli or gaussian [default: bernoulli].
    #[arg(long, value_parser = ["bernoulli", "gaussian"])]
    likelihood: Option<String>,
    /// Standard deviation of the Gaussian likelihood [default: 0.1].
    #[arg(long)]
    sigma: Option<f64>,
    /// Latent samples per image in the ELBO estimate [default: 1].
    #[arg(long)]
    samples: Option<usize>,
    /// Weight of the KL term (beta-VAE) [default: 1].
    #[arg(long)]
    beta: Option<f64>,
    /// Pixel binarisation [default: none].
    #[arg(long, value_enum)]
    binarize: Option<Binarize>,
    /// Images per minibatch [default: 128].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate [default: 0.001].
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of every random draw [default: 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Train on the first N training images.
    #[arg(long)]
    limit: Option<usize>,
    /// Hold out the last N training images for validation.
    #[arg(long)]
    validation: Option<usize>,
    /// Scale gradients down to this global L2 norm when they exceed it.
    #[arg(long, value_name = "MAX")]
    clip_grad_norm: Option<f64>,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
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
    /// Flags that describe a new run, by name, when given.
    fn run_flags(&self) -> Vec<&'static str> {
        let given = [
            ("--dataset", self.dataset.is_some()),
            ("--out", self.out.is_some()),
            ("--latent", self.latent.is_some()),
            ("--hidden", self.hidden.is_some()),
            ("--activation", self.activation.is_some()),
            ("--likelihood", self.likelihood.is_some()),
            ("--sigma", self.sigma.is_some()),
            ("--samples", self.samples.is_some()),
            ("--beta", self.beta.is_some()),
            ("--binarize", self.binarize.is_some()),
            ("--batch-size", self.batch_size.is_some()),
            ("--lr", self.lr.is_some()),
            ("--seed", self.seed.is_some()),
            ("--limit", self.limit.is_some()),
            ("--validation", self.validation.is_some()),
            ("--clip-grad-norm", self.clip_grad_norm.is_some()),
            ("--force", self.force),
        ];
        given.iter().filter(|g| g.1).map(|g| g.0).collect()
    }

    fn config(&self) -> Result<RunConfig> {
        let d = TrainConfig::default();
        let dataset: DatasetName = self.dataset.as_deref().unwrap_or("mnist").parse()?;
        let mut model = ModelConfig::pytorch_example();
        if let Some(l) = self.latent {
            model.latent = l;
        }
        if let Some(h) = &self.hidden {
            model.hidden = h.clone();
        }
        if let Some(a) = self.activation {
            model.activation = a;
        }
        model.likelihood = match self.likelihood.as_deref() {
            Some("gaussian") => Likelihood::Gaussian {
                sigma: self.sigma.unwrap_or(0.1),
            },
            _ if self.sigma.is_some() => {
                return Err(Error::Config(
                    "--sigma applies to --likelihood gaussian only".into(),
                ));
            }
            _ => Likelihood::Bernoulli,
        };
        let train = TrainConfig {
            dataset,
            epochs: self.epochs.unwrap_or(d.epochs),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            lr: self.lr.unwrap_or(d.lr),
            adam_eps: d.adam_eps,
            seed: self.seed.unwrap_or(d.seed),
            samples: self.samples.unwrap_or(d.samples),
            beta: self.beta.unwrap_or(d.beta),
            binarize: self.binarize.unwrap_or(d.binarize),
            limit: self.limit,
            validation: self.validation.unwrap_or(0),
            clip_grad_norm: self.clip_grad_norm,
            data_dir: self.data.data_dir.clone(),
        };
        let cfg = RunConfig { model, train };
        cfg.validate()?;
        Ok(cfg)
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
    threads::init(a.threads);
    let opts = TrainOptions {
        progress: std::io::stderr().is_terminal(),
        verbose: true,
    };
    let (run_dir, start, data_dir) = if let Some(dir) = &a.resume {
        let flags = a.run_flags();
        if !flags.is_empty() {
            return Err(Error::Config(format!(
                "{} cannot be changed when resuming: the run keeps its saved config (only --epochs, --threads and --data-dir apply)",
                flags.join(", ")
            )));
        }
        let ck = load_run(dir)?;
        remove_stale_temp_files(dir);
        let data_dir = a.data.data_dir.clone().or_else(|| recorded_dir(&ck));
        eprintln!(
            "elbo: resuming {} after epoch {}",
            dir.display(),
            ck.state.epoch
        );
        (dir.clone(), Start::Resume(Box::new(ck), a.epochs), data_dir)
    } else {
        let cfg = a.config()?;
        let dir = a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(cfg.train.dataset.as_str()));
        prepare_run_dir(&dir, a.force)?;
        let json = serde_json::to_string_pretty(&cfg).map_err(|e| Error::Config(e.to_string()))?;
        write_atomic(&dir.join("config.json"), json.as_bytes())?;
        eprintln!("elbo: training into {}", dir.display());
        (dir, Start::New(cfg), a.data.data_dir.clone())
    };
    train::train(&run_dir, data_dir.as_deref(), start, opts)?;
    let ck = load_run(&run_dir)?;
    let splits = train::load_splits(&ck.config, data_dir.as_deref())?;
    let style = MosaicStyle::default();
    let spec = SampleSpec {
        n: 64,
        seed: ck.config.train.seed,
        temperature: 1.0,
        bernoulli: false,
    };
    write_samples(&ck.vae, &spec, style, &run_dir.join("samples.png"))?;
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
    let mut written = "samples.png, reconstructions.png, curves.png, latent.png".to_string();
    if ck.vae.latent() == 2 {
        let codes = lat::manifold_codes(2, 20, (0, 1), GridRange::default())?;
        let px = lat::decode_means(&ck.vae, &codes, 400);
        let (h, w) = (ck.config.model.rows, ck.config.model.cols);
        save_png(
            &mosaic(&px, 400, h, w, 20, style),
            &run_dir.join("manifold.png"),
        )?;
        written.push_str(", manifold.png");
    }
    eprintln!("elbo: wrote {written} into {}", run_dir.display());
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
}

fn write_samples(vae: &Vae<f32>, spec: &SampleSpec, style: MosaicStyle, out: &Path) -> Result<()> {
    let (n, zd) = (spec.n, vae.latent());
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(spec.seed);
    let mut ws = vae.workspace(n, 1);
    vae.draw_eps(n, &mut ws, &mut rng);
    let codes: Vec<f32> = ws.eps[..n * zd]
        .iter()
        .map(|e| e * spec.temperature as f32)
        .collect();
    let mut px = lat::decode_means(vae, &codes, n);
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
    let (zd, d) = (vae.latent(), vae.config.input_dim());
    let idx: Vec<usize> = (0..n).collect();
    let x = lat::pixels(test, &idx);
    let head = lat::encode(vae, test, &idx);
    // Reconstruct from the posterior mean: a deterministic figure.
    let codes: Vec<f32> = head
        .chunks_exact(2 * zd)
        .flat_map(|h| h[..zd].to_vec())
        .collect();
    let rec = lat::decode_means(vae, &codes, n);
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
    let (zd, d) = (vae.latent(), vae.config.input_dim());
    let mut csv = String::from("index,label");
    (0..zd).for_each(|j| csv.push_str(&format!(",mu_{j}")));
    (0..zd).for_each(|j| csv.push_str(&format!(",logvar_{j}")));
    csv.push('\n');
    let batch = 500;
    let mut ws = vae.workspace(batch, 1);
    let mut x = vec![0.0; batch * d];
    let all: Vec<usize> = (0..ds.len()).collect();
    let copy = crate::data::Batcher {
        batch_size: batch,
        binarize: Binarize::None,
    };
    for idx in all.chunks(batch) {
        let rows = idx.len();
        copy.fill(
            ds,
            idx,
            &mut rand_pcg::Pcg64Mcg::seed_from_u64(0),
            &mut x[..rows * d],
        );
        vae.encode(&x[..rows * d], rows, &mut ws);
        for (b, &i) in idx.iter().enumerate() {
            csv.push_str(&format!("{i},{}", ds.labels[i]));
            for v in &ws.head[b * 2 * zd..(b + 1) * 2 * zd] {
                csv.push_str(&format!(",{v}"));
            }
            csv.push('\n');
        }
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
    let px = lat::decode_means(&ck.vae, &codes, n);
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
    let head = lat::encode(&ck.vae, ds, &idx);
    let means: Vec<f32> = head
        .chunks_exact(2 * zd)
        .flat_map(|h| h[..zd].to_vec())
        .collect();
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
    let head = lat::encode(&ck.vae, &test, &[a.from, a.to]);
    let path = lat::interpolate(&head[..zd], &head[2 * zd..3 * zd], a.steps, a.spherical);
    let px = lat::decode_means(&ck.vae, &path, a.steps);
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
