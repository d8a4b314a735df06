//! The `elbo` command line: argument parsing and one function per command over the library.

use crate::core::{Activation, threads};
use crate::data::{Binarize, DatasetName};
use crate::error::{Error, Result};
use crate::eval;
use crate::figures::{mosaic, save_png};
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
}

#[derive(Debug, Args)]
struct DataArgs {
    /// Folder with the dataset's IDX files (default: $ELBO_DATA_DIR, else the user cache; missing files are downloaded).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
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
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
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
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
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
    /// Output CSV.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
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
            data_dir: self.data.data_dir.clone(),
        };
        let cfg = RunConfig { model, train };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Files `elbo train` writes into a run directory; `--force` removes exactly these.
const RUN_FILES: [&str; 6] = [
    train::checkpoint::CHECKPOINT,
    train::checkpoint::PREVIOUS,
    "metrics.csv",
    "config.json",
    "samples.png",
    "reconstructions.png",
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
    write_samples(
        &ck.vae,
        64,
        ck.config.train.seed,
        &run_dir.join("samples.png"),
    )?;
    let splits = train::load_splits(&ck.config, data_dir.as_deref())?;
    write_reconstructions(
        &ck.vae,
        &splits.test,
        8,
        &run_dir.join("reconstructions.png"),
    )?;
    eprintln!(
        "elbo: wrote {0}/samples.png and {0}/reconstructions.png",
        run_dir.display()
    );
    Ok(())
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
    let data_dir = a.data.data_dir.clone().or_else(|| recorded_dir(&ck));
    let splits = train::load_splits(&ck.config, data_dir.as_deref())?;
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

fn write_samples(vae: &Vae<f32>, n: usize, seed: u64, out: &Path) -> Result<()> {
    let (zd, d) = (vae.latent(), vae.config.input_dim());
    let mut ws = vae.workspace(n, 1);
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    vae.draw_eps(n, &mut ws, &mut rng);
    ws.z[..n * zd].copy_from_slice(&ws.eps[..n * zd]);
    vae.decode(n, &mut ws);
    let mut px = vec![0.0; n * d];
    vae.means(n, &ws, &mut px);
    let cols = (n as f64).sqrt().ceil() as usize;
    save_png(
        &mosaic(&px, n, vae.config.rows, vae.config.cols, cols, 2),
        out,
    )
}

fn write_reconstructions(
    vae: &Vae<f32>,
    test: &crate::data::Dataset,
    n: usize,
    out: &Path,
) -> Result<()> {
    let n = n.min(test.len());
    let (zd, d) = (vae.latent(), vae.config.input_dim());
    let idx: Vec<usize> = (0..n).collect();
    let mut x = vec![0.0; n * d];
    crate::data::Batcher {
        batch_size: n,
        binarize: Binarize::None,
    }
    .fill(
        test,
        &idx,
        &mut rand_pcg::Pcg64Mcg::seed_from_u64(0),
        &mut x,
    );
    let mut ws = vae.workspace(n, 1);
    vae.encode(&x, n, &mut ws);
    // Reconstruct from the posterior mean: a deterministic figure.
    for b in 0..n {
        ws.z[b * zd..(b + 1) * zd].copy_from_slice(&ws.head[b * 2 * zd..b * 2 * zd + zd]);
    }
    vae.decode(n, &mut ws);
    let mut rec = vec![0.0; n * d];
    vae.means(n, &ws, &mut rec);
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
        &mosaic(&tiles, count, vae.config.rows, vae.config.cols, per_row, 2),
        out,
    )
}

fn cmd_sample(a: SampleArgs) -> Result<()> {
    check_count(a.n, "sample")?;
    check_output(&a.out, a.force)?;
    let ck = load_run(&a.run_dir)?;
    write_samples(&ck.vae, a.n, a.seed, &a.out)?;
    eprintln!("elbo: wrote {}", a.out.display());
    Ok(())
}

fn cmd_reconstruct(a: ReconstructArgs) -> Result<()> {
    check_count(a.n, "reconstruct")?;
    check_output(&a.out, a.force)?;
    let ck = load_run(&a.run_dir)?;
    let data_dir = a.data.data_dir.clone().or_else(|| recorded_dir(&ck));
    let splits = train::load_splits(&ck.config, data_dir.as_deref())?;
    write_reconstructions(&ck.vae, &splits.test, a.n, &a.out)?;
    eprintln!("elbo: wrote {}", a.out.display());
    Ok(())
}

fn cmd_encode(a: EncodeArgs) -> Result<()> {
    check_output(&a.out, a.force)?;
    let ck = load_run(&a.run_dir)?;
    let data_dir = a.data.data_dir.clone().or_else(|| recorded_dir(&ck));
    let splits = train::load_splits(&ck.config, data_dir.as_deref())?;
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
    write_atomic(&a.out, csv.as_bytes())?;
    eprintln!(
        "elbo: wrote {} ({} rows, {zd} latent dimensions)",
        a.out.display(),
        ds.len()
    );
    Ok(())
}
