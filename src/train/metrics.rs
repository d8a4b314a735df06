//! Per-epoch metrics and `metrics.csv`.

use crate::error::Result;
use crate::fsutil::write_atomic;
use crate::model::BatchStats;
use std::path::Path;

/// Per-image −ELBO, reconstruction and KL of one split.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitMetrics {
    /// −ELBO in nats per image.
    pub neg_elbo: f64,
    /// Reconstruction term in nats per image.
    pub recon: f64,
    /// KL in nats per image.
    pub kl: f64,
}

impl From<BatchStats> for SplitMetrics {
    fn from(s: BatchStats) -> Self {
        SplitMetrics {
            neg_elbo: s.neg_elbo(),
            recon: s.recon_per_image(),
            kl: s.kl_per_image(),
        }
    }
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Averages over the epoch's training batches.
    pub train: SplitMetrics,
    /// On the test set after the epoch.
    pub test: SplitMetrics,
    /// On the validation split, when there is one.
    pub validation: Option<SplitMetrics>,
    /// Training time of the epoch in seconds (evaluation excluded).
    pub seconds: f64,
    /// Learning rate of the epoch.
    #[serde(default)]
    pub lr: f64,
    /// Negative IWAE bound per image over the epoch's training batches, when that is the objective.
    #[serde(default)]
    pub train_neg_iwae: Option<f64>,
    /// FactorVAE: the discriminator's mean loss and accuracy over the epoch's steps, and its total-correlation
    /// estimate per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discriminator: Option<DiscriminatorMetrics>,
}

/// FactorVAE's discriminator over an epoch's training steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DiscriminatorMetrics {
    /// Its loss, −½ E ln D(z) − ½ E ln(1 − D(z̃)), averaged over steps (ln 2 ≈ 0.693 is chance).
    pub loss: f64,
    /// The fraction of codes and permuted codes it told apart, averaged over steps (0.5 is chance).
    pub accuracy: f64,
    /// Its estimate of the codes' total correlation, per image.
    pub total_correlation: f64,
}

impl EpochMetrics {
    /// Whether every number is finite: a checkpoint stores its metrics as JSON, which has no NaN or infinity.
    pub fn is_finite(&self) -> bool {
        let split = |s: &SplitMetrics| [s.neg_elbo, s.recon, s.kl].iter().all(|v| v.is_finite());
        split(&self.train)
            && split(&self.test)
            && self.validation.as_ref().is_none_or(split)
            && self.seconds.is_finite()
            && self.lr.is_finite()
            && self.train_neg_iwae.is_none_or(f64::is_finite)
            && self.discriminator.is_none_or(|d| {
                [d.loss, d.accuracy, d.total_correlation]
                    .iter()
                    .all(|v| v.is_finite())
            })
    }
}

/// Writes all rows as `metrics.csv`, atomically.
pub fn write_csv(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let mut s = String::from(
        "epoch,train_neg_elbo,train_recon,train_kl,test_neg_elbo,test_recon,test_kl,seconds,val_neg_elbo,val_recon,val_kl,lr,train_neg_iwae,disc_loss,disc_accuracy,disc_tc\n",
    );
    for r in rows {
        let v = r.validation.map_or(",,".to_string(), |v| {
            format!("{:.6},{:.6},{:.6}", v.neg_elbo, v.recon, v.kl)
        });
        s.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.4},{},{:e},{},{}\n",
            r.epoch,
            r.train.neg_elbo,
            r.train.recon,
            r.train.kl,
            r.test.neg_elbo,
            r.test.recon,
            r.test.kl,
            r.seconds,
            v,
            r.lr,
            r.train_neg_iwae
                .map_or(String::new(), |b| format!("{b:.6}")),
            r.discriminator.map_or(",,".to_string(), |d| format!(
                "{:.6},{:.6},{:.6}",
                d.loss, d.accuracy, d.total_correlation
            ))
        ));
    }
    write_atomic(path, s.as_bytes())
}
