//! elbo: variational autoencoders on MNIST-like data, with a small numeric core built for exactly what VAEs need.
//!
//! Use a trained run with [`Model`]; make one with [`Trainer`] from [`Settings`], watching it with an
//! [`Observer`]. The `elbo` command line and the Python package go through these same types.
//!
//! ```no_run
//! use elbo::{Model, data::numpy::MemArray};
//! # fn main() -> elbo::Result<()> {
//! let model = Model::open("runs/mnist".as_ref())?; // a run directory written by `elbo train`
//! let pixels = vec![0u8; 28 * 28]; // one 28×28 image as 8-bit levels, as a uint8 NumPy array holds it
//! let items = model.items(MemArray::uint8(vec![1, 28, 28], pixels), None)?;
//! let code = model.encode(&items)?; // posterior means and log-variances
//! let image = model.decode(&code.mu, &[])?; // 784 intensities in [0, 1]
//! let samples = model.sample(16, 1, 1.0, &[])?; // 16 draws from the prior, seed 1
//! # let _ = (image, samples); Ok(()) }
//! ```
//!
//! Training from Rust:
//!
//! ```no_run
//! use elbo::{Settings, Trainer, api::Quiet};
//! # fn main() -> elbo::Result<()> {
//! let settings = Settings { latent: Some(2.into()), epochs: Some(5), ..Default::default() };
//! let mut trainer = Trainer::new(&settings, false)?; // checks data, memory and the run directory first
//! let history = trainer.fit(&mut Quiet)?; // one EpochMetrics per epoch; the run is in runs/mnist
//! # let _ = history; Ok(()) }
//! ```
//!
//! Data flows one way: [`data`] → batches → [`model`] → objective → optimiser ([`core`]); [`train`] drives it and
//! writes checkpoints that [`eval`] and [`figures`] only read.

#![warn(missing_docs)]

/// `eprintln!` that never panics: a status line that cannot be written (stderr on a full disk) must not end a
/// run or cost it its result. Control characters are escaped ([`printable`]): the line may carry a file or
/// class name, and a name holding `ESC[2J` must not clear the user's terminal.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        $crate::say_line(&format!($($arg)*));
    }};
}

std::thread_local! {
    /// Lines [`say!`] keeps instead of printing, while [`capture_notes`] runs on this thread.
    static CAPTURED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// Writes one status line to stderr (escaped by [`printable`]), or keeps it for [`capture_notes`].
pub fn say_line(line: &str) {
    use std::io::Write as _;
    let line = printable(line);
    let kept = CAPTURED.with(|c| match c.borrow_mut().as_mut() {
        Some(lines) => {
            lines.push(line.to_string());
            true
        }
        None => false,
    });
    if !kept {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
}

/// Runs `f`, keeping the status lines it says on this thread (how data was read, what was left out) instead of
/// printing them, for a front end that shows them its own way (Python writes them to `sys.stderr`, which a
/// notebook shows).
pub fn capture_notes<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    let outer = CAPTURED.with(|c| c.borrow_mut().replace(Vec::new()));
    let r = f();
    let lines = CAPTURED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (r, lines.unwrap_or_default())
}

/// `s` with every control character (newlines and tabs too: a message is one line) written as a Rust escape,
/// `\u{1b}`, so that names from files and folders cannot move the cursor, clear the screen or split a line.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    std::borrow::Cow::Owned(out)
}

pub mod api;
mod choice;
/// The `elbo` command line: called by `src/main.rs`, not an API.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
pub mod core;
pub mod data;
pub mod error;
pub mod eval;
mod fault;
pub mod figures;
pub mod fsutil;
/// Entry points of the `cargo fuzz` targets, not an API.
#[doc(hidden)]
pub mod fuzzing;
pub mod model;
pub mod resources;
#[cfg(feature = "serve")]
pub mod serve;
pub mod train;

pub use api::{Model, Observer, Quiet, Settings, Trainer};
pub use error::{Error, Result};
