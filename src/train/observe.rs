//! What training tells the world as it goes: the library never prints; a front end passes an [`Observer`]
//! (the CLI's draws a progress bar and an epoch line, Python's calls the user's callbacks).

use super::metrics::EpochMetrics;

/// Whether training goes on after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Train the next epoch.
    Continue,
    /// End training now: the epoch just completed is saved, and training returns its history (early stopping).
    Stop,
}

/// Receives training's progress. Every method has a default that does nothing, so an observer implements only
/// what it shows. Called on the training thread, between steps.
pub trait Observer: Send {
    /// A note about the run as a whole ("the run has already completed 10 of 10 epochs").
    fn note(&mut self, _line: &str) {}
    /// Epoch `epoch` of `epochs` begins, over `items` training items.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _items: usize) {}
    /// A step ended: `items` items of the epoch done so far, the step's loss per item, and the epoch's items
    /// per second so far.
    fn step(&mut self, _items: usize, _loss: f64, _per_second: f64) {}
    /// Training stopped inside an epoch (an error or a signal): clear what `step` drew.
    fn abandon(&mut self) {}
    /// Epoch `m.epoch` ended and its checkpoint and metrics are saved; `line` is its one-line summary, as the CLI
    /// prints it.
    fn epoch_end(&mut self, _m: &EpochMetrics, _line: &str) -> Flow {
        Flow::Continue
    }
}

/// An observer that shows nothing and never stops training.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {}
