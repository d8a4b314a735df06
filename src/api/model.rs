//! A trained model, opened from its run directory: encode, decode, sample, reconstruct, score and evaluate, with
//! shapes checked and buffers sized inside. What the CLI's commands, the explorer and Python's `elbo` call.

use crate::data::numpy::{Layout, MemArray};
use crate::data::{Dataset, ItemShape, Kind};
use crate::error::{Error, Result};
use crate::eval::{self, ItemEstimate, LikelihoodEstimate};
use crate::figures::latent as lat;
use crate::figures::samples::{SampleSpec, sample_values};
use crate::model::Vae;
use crate::train::{self, EpochMetrics, RunConfig};
use std::path::Path;

/// Most codes or items one call takes: bounds what a single request can allocate.
pub const MAX_ITEMS: usize = 1 << 24;

/// Most values (items × values per item) one call returns: 1 GiB of f32.
pub const MAX_VALUES: usize = 1 << 28;

/// A trained model and what its run recorded about its data.
#[derive(Debug, Clone)]
pub struct Model {
    config: RunConfig,
    vae: Vae<f32>,
    history: Vec<EpochMetrics>,
    /// The weights as trained (the inference copy stores some transposed).
    weights: Vec<(String, Vec<usize>, Vec<f32>)>,
}

/// Posterior parameters of items, `n × latent` each, row after row.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Items encoded.
    pub n: usize,
    /// Latent dimensions.
    pub latent: usize,
    /// Posterior means μ (a VAE) or codes z (an autoencoder).
    pub mu: Vec<f32>,
    /// Posterior log-variances log σ² (empty for an autoencoder).
    pub logvar: Vec<f32>,
}

impl Model {
    /// The model of the run in `dir`, from its newest checkpoint (the optimiser's state is not kept).
    pub fn open(dir: &Path) -> Result<Model> {
        Ok(Model::from_checkpoint(train::load_run(dir)?))
    }

    /// The model of a checkpoint already loaded (its optimiser's state dropped).
    pub(crate) fn from_checkpoint(ck: train::Checkpoint) -> Model {
        let p = &ck.vae.params;
        let weights = p
            .specs
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone(), p.data[s.range()].to_vec()))
            .collect();
        Model {
            config: ck.config,
            vae: ck.vae.for_inference(),
            history: ck.state.history,
            weights,
        }
    }

    /// The run's configuration: model, training settings and data facts.
    pub fn config(&self) -> &RunConfig {
        &self.config
    }

    /// Epochs the weights were trained for.
    pub fn epoch(&self) -> usize {
        self.history.len()
    }

    /// Metrics of every epoch trained.
    pub fn history(&self) -> &[EpochMetrics] {
        &self.history
    }

    /// Latent dimensions of the codes it encodes to, decodes from and samples: the top latent layer's.
    pub fn latent(&self) -> usize {
        self.vae.latent()
    }

    /// Stochastic layers: 1, or more for a stacked model (`--latent 100,50`).
    pub fn depth(&self) -> usize {
        self.vae.depth()
    }

    /// The shape of one item the model reads and writes.
    pub fn item_shape(&self) -> ItemShape {
        self.config.model.item_shape()
    }

    /// What the items are: images, vectors in [0, 1] or table rows.
    pub fn kind(&self) -> Kind {
        self.config.data.kind
    }

    /// Class names, indexed by label (empty for unlabelled training data).
    pub fn classes(&self) -> &[String] {
        &self.config.data.classes
    }

    /// Whether the model has a posterior and a likelihood (a VAE), not only codes (an autoencoder).
    pub fn is_variational(&self) -> bool {
        self.config.model.is_variational()
    }

    /// Whether encoder and decoder are conditioned on the class.
    pub fn is_conditional(&self) -> bool {
        self.config.model.is_conditional()
    }

    /// Every weight tensor as (name, shape, values), in PyTorch's names and layout (`[out, in]` for a dense
    /// layer's weight).
    pub fn weights(&self) -> &[(String, Vec<usize>, Vec<f32>)] {
        &self.weights
    }

    /// The weights, for those who read them directly.
    pub fn vae(&self) -> &Vae<f32> {
        &self.vae
    }

    /// The items at `path` (image, folder, archive, array or table) read as the run read its training data.
    pub fn read(&self, path: &Path) -> Result<Dataset> {
        train::load_items(&self.config, path)
    }

    /// Items held in memory, read as the run read its training data (a `.npy` of the same values would read
    /// the same); `layout` orders a 4-D array's axes.
    pub fn items(&self, x: MemArray, layout: Option<Layout>) -> Result<Dataset> {
        // As for training: a layout the array's axes cannot take is refused, not recorded as if used.
        if let (Some(l), false) = (layout, x.shape.len() == 4) {
            return Err(Error::Config(format!(
                "{}: layout {l} applies to 4-D arrays (N×H×W×C or N×C×H×W); this one has shape {:?}: leave it out",
                x.name, x.shape
            )));
        }
        let origin = std::path::PathBuf::from(x.name.clone());
        let ds =
            crate::data::numpy::from_memory(vec![x], layout, Some(self.kind()), &origin)?.remove(0);
        train::check_items(&self.config, ds, &origin)
    }

    /// The posterior of each item of `items`: of the top latent layer, each layer above the first encoded from
    /// the means of the one below.
    pub fn encode(&self, items: &Dataset) -> Result<Encoded> {
        let (n, zd) = (items.len(), self.latent());
        let all: Vec<usize> = (0..n).collect();
        let head = lat::encode_head(&self.vae, items, &all);
        let hl = self.vae.head_len();
        let mut mu = Vec::with_capacity(n * zd);
        let mut logvar = Vec::with_capacity(if hl > zd { n * zd } else { 0 });
        for h in head.chunks_exact(hl) {
            mu.extend_from_slice(&h[..zd]);
            logvar.extend_from_slice(&h[zd..]);
        }
        Ok(Encoded {
            n,
            latent: zd,
            mu,
            logvar,
        })
    }

    /// Checks `labels` for `n` codes: one per code, each a class of the model, and given exactly when the
    /// model is conditional.
    fn check_labels(&self, labels: &[u32], n: usize) -> Result<()> {
        let k = self.config.model.classes;
        if self.is_conditional() && labels.len() != n {
            return Err(Error::Config(format!(
                "this model is conditional: give a class for each of the {n} codes ({} given; --class, or labels= in Python)",
                labels.len()
            )));
        }
        if !self.is_conditional() && !labels.is_empty() {
            return Err(Error::Config(
                "classes need a conditional model (trained with --conditional); this one is not"
                    .into(),
            ));
        }
        if let Some(&c) = labels.iter().find(|&&c| c as usize >= k) {
            return Err(Error::Config(format!(
                "class {c} is out of range: this model knows classes 0 to {}",
                k.saturating_sub(1)
            )));
        }
        Ok(())
    }

    /// Decoder means of `codes` (`n × latent`, row after row), in the data's units: intensities in [0, 1] for
    /// images, a table's own units (its standardisation undone). `labels` gives each code's class for a
    /// conditional model (and must be empty otherwise).
    pub fn decode(&self, codes: &[f32], labels: &[u32]) -> Result<Vec<f32>> {
        let zd = self.latent();
        if codes.is_empty() || !codes.len().is_multiple_of(zd) {
            return Err(Error::Config(format!(
                "{} values are not whole codes of {zd} latent dimensions: give an array of shape (n, {zd})",
                codes.len()
            )));
        }
        let n = codes.len() / zd;
        if n > MAX_ITEMS {
            return Err(Error::Config(format!(
                "{n} codes: decode at most {MAX_ITEMS} at a time"
            )));
        }
        if let Some(i) = codes.iter().position(|v| !v.is_finite()) {
            return Err(Error::Config(format!(
                "code {} holds a non-finite value ({}) at dimension {}",
                i / zd,
                codes[i],
                i % zd
            )));
        }
        self.check_labels(labels, n)?;
        self.check_output(n)?;
        let mut out = lat::decode_means(&self.vae, codes, n, labels);
        self.to_data_units(&mut out);
        Ok(out)
    }

    /// Refuses `n` outputs whose values together pass [`MAX_VALUES`], before anything is allocated: an
    /// allocation that fails aborts the process (and a notebook's kernel with it).
    fn check_output(&self, n: usize) -> Result<()> {
        let d = self.item_shape().len();
        if n.saturating_mul(d) > MAX_VALUES {
            return Err(Error::Config(format!(
                "n {n} items of {d} values would take {:.1} GB: ask for at most {} at a time",
                n as f64 * d as f64 * 4e-9,
                MAX_VALUES / d.max(1)
            )));
        }
        Ok(())
    }

    /// A table's values back in its own units; images and vectors are left as they are.
    fn to_data_units(&self, values: &mut [f32]) {
        if let Some(st) = &self.config.data.standardizer {
            st.invert(values);
        }
    }

    /// Decoder means of `n` draws from the prior (its spread scaled by `temperature`; every stacked layer drawn in turn), from `seed`; `labels` as for
    /// [`decode`](Self::decode).
    pub fn sample(
        &self,
        n: usize,
        seed: u64,
        temperature: f64,
        labels: &[u32],
    ) -> Result<Vec<f32>> {
        self.sample_with(&SampleSpec {
            n,
            seed,
            temperature,
            bernoulli: false,
            labels: labels.to_vec(),
        })
    }

    /// Draws as `spec` describes (with `bernoulli`, pixels drawn from the decoder's Bernoulli), in the data's
    /// units.
    pub fn sample_with(&self, spec: &SampleSpec) -> Result<Vec<f32>> {
        self.check_sample(spec)?;
        let mut out = sample_values(&self.vae, spec);
        self.to_data_units(&mut out);
        Ok(out)
    }

    /// Refuses a [`SampleSpec`] this model cannot draw (count, temperature, labels, likelihood) before any work.
    pub fn check_sample(&self, spec: &SampleSpec) -> Result<()> {
        let (n, temperature) = (spec.n, spec.temperature);
        if n == 0 || n > MAX_ITEMS {
            return Err(Error::Config(format!(
                "n {n} must be between 1 and {MAX_ITEMS}"
            )));
        }
        self.check_output(n)?;
        // Beyond 1000 the codes lie so far out that the decoder's outputs overflow.
        if !(temperature.is_finite() && temperature > 0.0 && temperature <= 1e3) {
            return Err(Error::Config(format!(
                "temperature {} must be a positive number up to 1000",
                crate::error::shown(temperature)
            )));
        }
        if !self.is_variational() {
            return Err(Error::Config(
                "this run is a deterministic autoencoder: it has no prior to sample from (reconstruct, encode and decode work)".into(),
            ));
        }
        let likelihood = self.config.model.likelihood;
        if spec.bernoulli && likelihood != crate::model::Likelihood::Bernoulli {
            let what = match likelihood {
                crate::model::Likelihood::Logistic { .. } => "a discretised logistic",
                _ => "a Gaussian",
            };
            return Err(Error::Config(format!(
                "--bernoulli samples pixels from a Bernoulli decoder; this model's is {what}"
            )));
        }
        self.check_labels(&spec.labels, n)
    }

    /// Each item decoded from its posterior mean, in the data's units.
    pub fn reconstruct(&self, items: &Dataset) -> Result<Vec<f32>> {
        let enc = self.encode(items)?;
        let labels = if self.is_conditional() {
            (0..items.len()).map(|i| items.label(i)).collect()
        } else {
            Vec::new()
        };
        self.decode(&enc.mu, &labels)
    }

    /// Per item, the ELBO and log p(x) estimated with `k` importance samples from `seed` (nats; a table's of
    /// its standardised features): the lower, the more unusual the item.
    pub fn score(&self, items: &Dataset, k: usize, seed: u64) -> Result<Vec<ItemEstimate>> {
        self.score_with(items, k, seed, &|_| true)
    }

    /// [`score`](Self::score), calling `progress` with the number of items done as it goes (and with 0 between
    /// chunks of an item's draws, so a stop need not wait for a whole item); when it returns false the work stops
    /// early with [`Error::Stopped`]. An item whose estimate leaves float32's range gets −∞.
    pub fn score_with(
        &self,
        items: &Dataset,
        k: usize,
        seed: u64,
        progress: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Vec<ItemEstimate>> {
        self.check_scoring(k)?;
        let mut scores = eval::item_log_likelihoods(&self.vae, items, k, seed, progress).ok_or(
            Error::Stopped {
                what: "scoring",
                signal: crate::error::SIGINT,
            },
        )?;
        // An item far outside the training data (a stuck sensor's 65535 among standardised features) drives the
        // float32 passes past their range, to ±inf or NaN. It is less likely than any finite estimate, so it gets
        // −∞: sorted by score it comes first as an anomaly, never last as NaN would.
        for s in &mut scores {
            if !s.elbo.is_finite() || !s.log_px.is_finite() {
                (s.elbo, s.log_px) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
            }
        }
        Ok(scores)
    }

    /// The whole set's mean −ELBO, −log p(x) with `k` importance samples, and bits per dimension where defined.
    pub fn evaluate(&self, items: &Dataset, k: usize, seed: u64) -> Result<LikelihoodEstimate> {
        self.evaluate_with(items, k, seed, &|_| true)
    }

    /// [`evaluate`](Self::evaluate), with `progress` as for [`score_with`](Self::score_with).
    pub fn evaluate_with(
        &self,
        items: &Dataset,
        k: usize,
        seed: u64,
        progress: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<LikelihoodEstimate> {
        self.check_scoring(k)?;
        eval::estimate_log_likelihood(&self.vae, items, k, seed, progress).ok_or(Error::Stopped {
            what: "evaluating",
            signal: crate::error::SIGINT,
        })
    }

    /// Refuses to score with an autoencoder, or with `k` outside 1 to 1 000 000 importance samples.
    pub fn check_scoring(&self, k: usize) -> Result<()> {
        if !self.is_variational() {
            return Err(Error::Config(
                "this run is a deterministic autoencoder: it has no ELBO or likelihood to score with"
                    .into(),
            ));
        }
        if k == 0 || k > 1_000_000 {
            return Err(Error::Config(format!(
                "k {k} must be between 1 and 1000000 importance samples"
            )));
        }
        Ok(())
    }
}

/// The labels `n` generated images are conditioned on: `class` (a name the run knows, or an index unless some
/// names are numbers) for all, or (no class given) the classes in turn.
pub fn class_labels(cfg: &RunConfig, class: Option<&str>, n: usize) -> Result<Vec<u32>> {
    let k = cfg.model.classes as u32;
    let names = &cfg.data.classes;
    let class = match class {
        None => None,
        // A class's name is escaped as its folder's name was (`a\\b` for a folder `a\b`): either form is found.
        Some(c) => match names.iter().position(|n| n == c).or_else(|| {
            let escaped = crate::data::images::escape_name(c.as_bytes());
            names.iter().position(|n| *n == escaped)
        }) {
            Some(i) => Some(i as u32),
            // Where some classes are named by numbers (folders 1/, 2/, 3/), a number is a name only: `1` as an
            // index would be the class named 2.
            None if names.iter().any(|n| n.parse::<i64>().is_ok()) => {
                return Err(Error::Config(format!(
                    "--class '{c}' is not a class of this run ({}); its classes are named by numbers, so --class takes their names, not indices",
                    names.join(", ")
                )));
            }
            None => Some(c.parse::<u32>().map_err(|_| {
                Error::Config(format!(
                    "--class '{c}' is neither a class of this run ({}) nor an index",
                    if names.is_empty() {
                        "none named".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })?),
        },
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run_with(classes: &[&str]) -> RunConfig {
        let mut model = crate::model::ModelConfig::pytorch_example();
        model.classes = classes.len();
        RunConfig {
            model,
            train: Default::default(),
            data: crate::train::config::DataInfo {
                classes: classes.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            },
        }
    }

    /// A class is found by name, or by index where no name is a number; with classes named 1, 2, 3 a number
    /// is a name only, since index 1 would be the class named 2.
    #[test]
    fn a_number_is_an_index_only_where_no_class_is_named_by_one() {
        let pets = run_with(&["cat", "dog"]);
        assert_eq!(class_labels(&pets, Some("dog"), 2).unwrap(), [1, 1]);
        assert_eq!(class_labels(&pets, Some("1"), 1).unwrap(), [1]);
        let digits = run_with(&["0", "1", "2"]);
        assert_eq!(class_labels(&digits, Some("1"), 1).unwrap(), [1]);
        let shifted = run_with(&["1", "2", "3"]);
        assert_eq!(class_labels(&shifted, Some("1"), 1).unwrap(), [0]);
        assert_eq!(class_labels(&shifted, Some("3"), 1).unwrap(), [2]);
        let e = class_labels(&shifted, Some("0"), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("takes their names, not indices"), "{e}");
    }
}
