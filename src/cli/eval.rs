//! `elbo eval`: the test -ELBO and the importance-sampled log-likelihood of a trained run, and, when its data has
//! known factors (dSprites'), the disentanglement metrics of `elbo disentanglement`.

use super::common::{DataArgs, Progress, print_result};
use super::disentanglement::Scored;
use crate::api::Model;
use crate::api::disentangle::images_needed;
use crate::error::{Error, Result};
use crate::eval;
use crate::eval::disentangle::Sizes;
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
    /// Estimate log p(x) on the first N test images only (the disentanglement metrics keep their own
    /// --disentanglement-points).
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the importance draws, and of the disentanglement metrics' draws.
    #[arg(long, default_value_t = 1, value_parser = crate::train::settings::seed)]
    seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    threads: super::common::ThreadsArg,
    /// Training points of the disentanglement metrics, scored when the data has known factors [default: 10000,
    /// as disentanglement_lib].
    #[arg(long, value_name = "N")]
    disentanglement_points: Option<usize>,
    /// Leave out the disentanglement metrics that data with known factors gets (they encode about 2.9 million
    /// images at the default points).
    #[arg(long, conflicts_with = "disentanglement_points")]
    no_disentanglement: bool,
}

/// Evaluates, with a progress bar only on a terminal so piped output stays clean.
pub(crate) fn run(a: EvalArgs) -> Result<()> {
    a.threads.init()?;
    // As `score`'s: beyond a million draws an item, a Ctrl-C would wait minutes for the item to end.
    if a.k == 0 || a.k > 1_000_000 {
        return Err(Error::Config("--k must be between 1 and 1000000".into()));
    }
    let ck = load_run(&a.run_dir)?;
    if !ck.config.model.is_variational() {
        return Err(Error::Config(
            "this run is a deterministic autoencoder: it defines no likelihood p(x) to estimate (compare reconstructions instead)".into(),
        ));
    }
    let splits = a.data.splits(&ck)?;
    let metrics = disentanglement_sizes(&a, &splits)?;
    let limited;
    let test = match a.limit {
        Some(0) => return Err(Error::Config("--limit 0 leaves nothing to evaluate".into())),
        // A copy of the first rows: the metrics look observations up in the whole split.
        Some(n) if n < splits.test.len() => {
            limited = splits.test.select(&(0..n).collect::<Vec<_>>());
            &limited
        }
        _ => &splits.test,
    };
    let progress = Progress::new(&format!("log p(x), K={}", a.k), test.len());
    let started = std::time::Instant::now();
    let est = progress.until_signal(|go_on| {
        eval::estimate_log_likelihood(&ck.vae, test, a.k, a.seed, go_on).ok_or(Error::Stopped {
            what: "evaluating",
            signal: crate::error::SIGINT,
        })
    })?;
    let secs = started.elapsed().as_secs_f64();
    let (units, latent) = active_units(&ck.vae, test);
    // Over MPI every rank has the estimates; rank 0 reports them.
    if !crate::core::dist::is_writer() {
        return Ok(());
    }
    let method = eval::BitsMethod::for_data(&ck.config.model, test);
    let (epoch, depth) = (ck.state.epoch, ck.vae.depth());
    let scored = match metrics {
        Some(sizes) => match score(&a, Model::from_checkpoint(ck), splits, sizes) {
            Ok(s) => Some(s),
            // Metrics the user did not ask for, which this data cannot give, do not cost the likelihood.
            Err(Error::Config(why)) if a.disentanglement_points.is_none() => {
                crate::notes::say!("elbo: the disentanglement metrics are left out: {why}");
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let mut lines = Vec::new();
    if a.json {
        let mut v = serde_json::to_value(est).map_err(|e| Error::Config(e.to_string()))?;
        v["log_likelihood"] = serde_json::json!(-est.nll);
        v["seconds"] = serde_json::json!(secs);
        v["epoch"] = serde_json::json!(epoch);
        v["seed"] = serde_json::json!(a.seed);
        v["active_units"] = serde_json::json!(units);
        v["latent"] = serde_json::json!(latent);
        // Counted over the top layer's code, the one `encode` reports: named, as a stack has others.
        v["active_units_layer"] = serde_json::json!(format!("z{depth}"));
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
        if let Some(s) = &scored {
            add_scores_json(&mut v, s);
        }
        lines.push(format!("{v}"));
    } else {
        lines.push(format!(
            "run        {} (epoch {})",
            a.run_dir.display(),
            epoch
        ));
        lines.push(format!("images     {}", est.n));
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
        let layer = match depth {
            1 => String::new(),
            depth => format!(" of z{depth}, the top of {depth} latent layers"),
        };
        lines.push(format!(
            "active     {units} of {latent} latent units{layer} (Burda et al.: Cov_x(E_q[u]) > 0.01 over these images)"
        ));
        lines.push(format!("time       {secs:.1} s"));
        if let Some(s) = &scored {
            lines.push(String::new());
            // Its first line names the run, as the lines above already do.
            let text = super::disentanglement::text(&a.run_dir, epoch, s);
            lines.extend(text.lines().skip(1).map(str::to_string));
        }
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

/// The metrics' sizes when `eval` scores disentanglement: when the run's data has known factors and the user did
/// not say `--no-disentanglement`; refuses `--disentanglement-points` for data without factors, or out of range.
fn disentanglement_sizes(a: &EvalArgs, splits: &crate::train::Splits) -> Result<Option<Sizes>> {
    let has_factors = splits.test.factors.is_some();
    match a.disentanglement_points {
        Some(_) if !has_factors => Err(Error::Config(
            "--disentanglement-points: this run's data has no known factors to score against; leave it out".into(),
        )),
        Some(points) => super::disentanglement::check_points(points, "--disentanglement-points")
            .map(|()| Some(Sizes::with_points(points))),
        None if has_factors && !a.no_disentanglement => Ok(Some(Sizes::with_points(DEFAULT_POINTS))),
        None => Ok(None),
    }
}

/// disentanglement_lib's training points per metric.
const DEFAULT_POINTS: usize = 10_000;

/// The five metrics of `model` on `splits`, as `elbo disentanglement` scores them with the same seed and points.
fn score(a: &EvalArgs, model: Model, splits: crate::train::Splits, sizes: Sizes) -> Result<Scored> {
    // --limit is read as "make it quick", which the metrics' sizes are not: say which flag governs them.
    let limit = if a.limit.is_some() {
        " --limit shortens log p(x) only, --disentanglement-points these;"
    } else {
        ""
    };
    crate::notes::say!(
        "elbo: this run's data has known factors: scoring the disentanglement metrics too ({} points, {} images to encode;{limit} --no-disentanglement leaves them out)",
        sizes.train,
        images_needed(sizes)
    );
    let progress = Progress::new("disentanglement", images_needed(sizes));
    let started = std::time::Instant::now();
    let r = progress.until_signal(|go_on| {
        if crate::api::disentangle::holds_whole_data(model.config()) {
            model.disentanglement_of_splits(&splits, sizes, a.seed, go_on)
        } else {
            // The items --limit left out of training are read again, in place of the splits evaluated.
            drop(splits);
            model.disentanglement_of_run(a.data.dir(), sizes, a.seed, go_on)
        }
    })?;
    Ok(Scored {
        r,
        sizes,
        seed: a.seed,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// The metrics' keys, as `elbo disentanglement --json` names them (its `points`, `images` and `seconds` prefixed,
/// beside eval's own).
fn add_scores_json(v: &mut serde_json::Value, s: &Scored) {
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(&s.r) {
        for (key, value) in m {
            let key = if key == "images" {
                "disentanglement_images".to_string()
            } else {
                key
            };
            v[key] = value;
        }
    }
    v["disentanglement_points"] = serde_json::json!(s.sizes.train);
    v["disentanglement_seconds"] = serde_json::json!(s.secs);
}
