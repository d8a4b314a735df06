//! elbo: variational autoencoders on MNIST-like data, with a small numeric core built for exactly what VAEs need.
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
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{}", $crate::printable(&format!($($arg)*)));
    }};
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
pub mod cli;
pub mod core;
pub mod data;
pub mod error;
pub mod eval;
mod fault;
pub mod figures;
pub mod fsutil;
pub mod fuzzing;
pub mod model;
pub mod resources;
pub mod serve;
pub mod train;

pub use api::{Model, Observer, Settings, Trainer};
pub use error::{Error, Result};
