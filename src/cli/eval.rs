//! `elbo eval`: the test -ELBO and the importance-sampled log-likelihood of a trained run.

use super::common::{DataArgs, Progress, print_result};
use crate::error::{Error, Result};
use crate::eval;
use crate::train::load_run;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct EvalArgs {
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
    #[arg(long, default_value_t = 1, value_parser = crate::train::settings::seed)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// Evaluates, with a progress bar only on a terminal so piped output stays clean.
pub(crate) fn run(a: EvalArgs) -> Result<()> {
    super::common::init_threads(a.threads)?;
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
    let progress = Progress::new(&format!("log p(x), K={}", a.k), test.len());
    let started = std::time::Instant::now();
    let est = eval::estimate_log_likelihood(&ck.vae, &test, a.k, a.seed, &|n| {
        progress.inc(n);
        true
    })
    .expect("progress never stops the estimate");
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let (units, latent) = active_units(&ck.vae, &test);
    // Over MPI every rank has the estimates; rank 0 reports them.
    if !crate::core::dist::is_writer() {
        return Ok(());
    }
    let mut lines = Vec::new();
    if a.json {
        let mut v = serde_json::to_value(est).map_err(|e| Error::Config(e.to_string()))?;
        v["log_likelihood"] = serde_json::json!(-est.nll);
        v["seconds"] = serde_json::json!(secs);
        v["epoch"] = serde_json::json!(ck.state.epoch);
        v["active_units"] = serde_json::json!(units);
        v["latent"] = serde_json::json!(latent);
        // Counted over the top layer's code, the one `encode` reports: named, as a stack has others.
        v["active_units_layer"] = serde_json::json!(format!("z{}", ck.vae.depth()));
        let method = eval::BitsMethod::for_data(&ck.config.model, &test);
        // The method when there is a value; otherwise null, and the reason in its own field.
        match method {
            eval::BitsMethod::Undefined(why) => {
                v["bits_per_dim_method"] = serde_json::Value::Null;
                v["bits_per_dim_reason"] = serde_json::json!(why);
            }
            _ => v["bits_per_dim_method"] = serde_json::json!(method.describe()),
        }
        // A density on 8-bit data was scored at dequantised values, every figure with it.
        v["dequantised"] = serde_json::json!(method == eval::BitsMethod::Dequantised);
        lines.push(format!("{v}"));
    } else {
        lines.push(format!(
            "run        {} (epoch {})",
            a.run_dir.display(),
            ck.state.epoch
        ));
        lines.push(format!("images     {}", est.n));
        let method = eval::BitsMethod::for_data(&ck.config.model, &test);
        let at = if method == eval::BitsMethod::Dequantised {
            ", at dequantised values (v + u)/256"
        } else {
            ""
        };
        lines.push(format!("-ELBO      {:.3} nats{at}", est.neg_elbo));
        lines.push(format!(
            "-log p(x)  {:.3} nats (importance sampling, K = {}{at})",
            est.nll, est.k
        ));
        match est.bits_per_dim {
            Some(b) => lines.push(format!("bits/dim   {b:.4} ({})", method.describe())),
            None => lines.push(format!("bits/dim   none: {}", method.describe())),
        }
        let layer = match ck.vae.depth() {
            1 => String::new(),
            depth => format!(" of z{depth}, the top of {depth} latent layers"),
        };
        lines.push(format!(
            "active     {units} of {latent} latent units{layer} (Burda et al.: Cov_x(E_q[u]) > 0.01 over these images)"
        ));
        lines.push(format!("time       {secs:.1} s"));
    }
    lines.push(String::new());
    print_result(&lines.join("\n"))?;
    // The figures are printed (NaN, or null in JSON) for the record, but a script must not take them for a score.
    if !(est.nll.is_finite() && est.neg_elbo.is_finite()) {
        return Err(Error::Checkpoint {
            path: a.run_dir.clone(),
            reason: format!(
                "the estimates are not finite (-ELBO {}, -log p(x) {}): the model's outputs overflow on these images, so this checkpoint cannot be evaluated; evaluate an earlier one or retrain with a smaller --lr",
                est.neg_elbo, est.nll
            ),
        });
    }
    Ok(())
}

/// Burda et al.'s active units of the code `encode` reports, over `test`'s images, and the code's size.
fn active_units(vae: &crate::model::Vae<f32>, test: &crate::data::Dataset) -> (usize, usize) {
    let zd = vae.latent();
    let idx: Vec<usize> = (0..test.len()).collect();
    let head = crate::figures::latent::encode_head(vae, test, &idx);
    let mu: Vec<f64> = head
        .chunks_exact(vae.head_len())
        .flat_map(|h| h[..zd].iter().map(|&v| v as f64))
        .collect();
    (eval::disentangle::active_units(&mu, zd), zd)
}
