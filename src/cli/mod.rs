//! The `elbo` command line: argument parsing and dispatch; each command lives in its own module over the library.

mod common;
mod decode;
mod disentanglement;
mod encode;
mod eval;
mod interpolate;
mod latent_plot;
mod make_dsprites;
mod manifold;
mod plot_metrics;
mod reconstruct;
mod sample;
mod score;
mod serve;
mod train;
mod traverse;

use crate::error::Result;
use clap::{Parser, Subcommand};

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
    Train(Box<train::TrainArgs>),
    /// Test -ELBO and importance-sampled log-likelihood of a trained run.
    Eval(eval::EvalArgs),
    /// Decode draws from the prior into an image grid.
    Sample(sample::SampleArgs),
    /// Test images in one row over their reconstructions in the row below.
    Reconstruct(reconstruct::ReconstructArgs),
    /// Write latent means and log-variances of a split or of your own items (--input), as CSV.
    Encode(encode::EncodeArgs),
    /// Decode given latent codes (--z or --z-file) into images or CSV rows.
    Decode(decode::DecodeArgs),
    /// Score your own items: one CSV row each with its -ELBO and, with --k, its -log p(x) (anomaly detection).
    Score(score::ScoreArgs),
    /// Decode a grid over two latent dimensions into one mosaic (the 2-D latent manifold).
    Manifold(manifold::ManifoldArgs),
    /// Scatter the encoder means of a split, coloured by class (PCA beyond two dimensions).
    LatentPlot(latent_plot::LatentPlotArgs),
    /// Decode the path between the encodings of two test images.
    Interpolate(interpolate::InterpolateArgs),
    /// Plot train and test -ELBO, reconstruction and KL against epoch.
    PlotMetrics(plot_metrics::PlotMetricsArgs),
    /// Sweep each latent dimension from a base code, one row per dimension, rows by mean KL (latent traversal).
    Traverse(traverse::TraverseArgs),
    /// Explore the latent space in the browser: scatter, decode pad, sliders, interpolation (a local web page).
    Serve(serve::ServeArgs),
    /// Score a run's codes against its data's known factors: β-VAE, FactorVAE, MIG, SAP and DCI metrics.
    Disentanglement(disentanglement::DisentanglementArgs),
    /// Write dSprites' factor grid as elbo draws it, in DeepMind's .npz layout (not DeepMind's file).
    MakeDsprites(make_dsprites::MakeDspritesArgs),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    // MPI (when built in and started by mpirun) stays up until this returns.
    use crate::core::dist;
    let _mpi = dist::init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and --version are printed as clap lays them out; a usage error is one line like any other.
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                let _ = e.print();
            } else {
                let args: Vec<String> = std::env::args().collect();
                crate::notes::say!("elbo: error: {}", usage_error(&e, &args));
            }
            return e.exit_code();
        }
    };
    let parallel = matches!(cli.command, Command::Train(_) | Command::Eval(_));
    let result = if let Some(n) = dist::launched_without_mpi() {
        Err(crate::error::Error::Config(format!(
            "started as one of {n} MPI ranks, but this elbo was built without MPI: build it with --features mpi (see the README)"
        )))
    } else if dist::size() > 1 && !parallel {
        Err(crate::error::Error::Config(
            "only train and eval run over MPI: start this command without mpirun".into(),
        ))
    } else {
        run(cli)
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            if dist::size() > 1 && !dist::is_writer() {
                // An error every rank meets is rank 0's to report (its abort ends this rank first); one that
                // only this rank meets is reported after that pause.
                std::thread::sleep(std::time::Duration::from_secs(2));
                crate::notes::say!("elbo (rank {}): error: {e}", dist::rank());
            } else {
                crate::notes::say!("elbo: error: {e}");
            }
            if dist::size() > 1 {
                dist::abort(e.exit_code());
            }
            e.exit_code()
        }
    }
}

/// clap's usage error `e` for the command line `args` on one line: its message, its possible values and tips
/// joined, and where to read more. For `train`, an unknown flag's suggestion is the setting nearest in name or an
/// alias other tools use (`--learning-rate`: `--lr`), as for a config file's keys.
fn usage_error(e: &clap::Error, args: &[String]) -> String {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let sub = args.get(1).filter(|a| {
        Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == a.as_str())
    });
    let train = sub.is_some_and(|s| s == "train");
    let mut message = Vec::new();
    let mut tips = Vec::new();
    let mut usage = None;
    for line in e.render().to_string().lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("error: ") {
            message.push(m.to_string());
        } else if let Some(t) = line.strip_prefix("tip: ") {
            // Replaced below for train, whose settings have their own nearest-name rule.
            if !(train && t.starts_with("a similar argument exists")) {
                tips.push(t.to_string());
            }
        } else if let Some(u) = line.strip_prefix("Usage: ") {
            usage = Some(u.to_string());
        } else if let Some(values) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            tips.push(values.to_string());
        } else if !line.is_empty() && !line.starts_with("For more information") {
            message.push(line.to_string());
        }
    }
    if train
        && e.kind() == ErrorKind::UnknownArgument
        && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
        && let Some(name) = arg.strip_prefix("--")
        && let Some(near) =
            crate::train::Settings::nearest_key(name.split('=').next().unwrap_or(name))
    {
        tips.push(format!("did you mean '--{near}'?"));
    }
    // A negative number after a flag that takes none is read as an unknown flag; clap's tip (`-- -1`) would pass
    // it as the run directory instead.
    if e.kind() == ErrorKind::UnknownArgument
        && let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg)
        && arg.parse::<f64>().is_ok_and(|v| v < 0.0)
    {
        tips.retain(|t| !t.starts_with("to pass"));
        match args
            .iter()
            .position(|a| a == arg)
            .and_then(|i| args.get(i.wrapping_sub(1)))
        {
            Some(flag) if flag.starts_with("--") => {
                tips.push(format!("{flag} takes no negative number"))
            }
            _ => tips.push(format!("{arg} is not a value this command takes")),
        }
    }
    if e.kind() == ErrorKind::UnknownArgument
        && let Some(tip) = list_tip(args)
    {
        tips.push(tip.trim_start_matches("tip: ").to_string());
    }
    let mut line = message.join(" ");
    // Rust's words for a whole number that did not parse, in a user's.
    if let Some(ContextValue::String(v)) = e.get(ContextKind::InvalidValue) {
        let why = if v.starts_with('-') && v[1..].parse::<f64>().is_ok() {
            "a negative number where a whole number of 0 or more is needed"
        } else {
            "not a whole number"
        };
        line = line.replace("invalid digit found in string", why);
    }
    for tip in tips {
        line.push_str("; ");
        line.push_str(&tip);
    }
    // The usage line helps only when something is missing; after an unknown flag clap fills it with a guess.
    if matches!(
        e.kind(),
        ErrorKind::MissingRequiredArgument | ErrorKind::MissingSubcommand
    ) && let Some(u) = usage
    {
        line.push_str(&format!("; usage: {u}"));
    }
    let help = match sub {
        Some(s) => format!("elbo {s} --help"),
        None => "elbo --help".into(),
    };
    line.push_str(&format!(" (see '{help}')"));
    line
}

/// Flags whose lists are one comma-separated value, as PyTorch users may not expect.
const LIST_FLAGS: [&str; 5] = [
    "--hidden",
    "--latent",
    "--conv",
    "--discriminator",
    "--range",
];

/// A tip when a list flag was given its values space-separated (`--hidden 64 32`), which clap reports only as an
/// unexpected argument.
fn list_tip(args: &[String]) -> Option<String> {
    args.windows(3).find_map(|w| {
        let is_value =
            |s: &str| !s.starts_with("--") && s.chars().next().is_some_and(|c| c.is_ascii_digit());
        (LIST_FLAGS.contains(&w[0].as_str()) && is_value(&w[1]) && is_value(&w[2])).then(|| {
            format!(
                "tip: {} takes its list as one comma-separated value: {} {},{}",
                w[0], w[0], w[1], w[2]
            )
        })
    })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Reconstruct(a) => reconstruct::run(a),
        Command::Encode(a) => encode::run(a),
        Command::Decode(a) => decode::run(a),
        Command::Score(a) => score::run(a),
        Command::Manifold(a) => manifold::run(a),
        Command::LatentPlot(a) => latent_plot::run(a),
        Command::Interpolate(a) => interpolate::run(a),
        Command::PlotMetrics(a) => plot_metrics::run(a),
        Command::Traverse(a) => traverse::run(a),
        Command::Serve(a) => serve::run(a),
        Command::MakeDsprites(a) => make_dsprites::run(a),
        Command::Disentanglement(a) => disentanglement::run(a),
    }
}
