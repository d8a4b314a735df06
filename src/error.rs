//! Typed errors for everything a user can get wrong: files, flags, shapes, runs.

use std::path::PathBuf;

/// Every failure elbo reports to a user, each with what went wrong and where.
#[derive(thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// An IDX file is malformed.
    #[error("{path}: not a valid IDX file: {reason}")]
    Idx {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A dataset name is unknown.
    #[error("unknown dataset '{0}': choose one of mnist, fashion-mnist, kmnist, cifar10, dsprites")]
    UnknownDataset(String),
    /// A download failed or did not match its checksum.
    #[error("download of {url} failed: {reason}")]
    Download {
        /// The address tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A checkpoint or run directory is unusable.
    #[error("{path}: {reason}")]
    Checkpoint {
        /// The file or directory involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A user-supplied setting is impossible.
    #[error("{0}")]
    Config(String),
    /// Training produced a non-finite loss or gradient.
    #[error(
        "training diverged at epoch {epoch}, step {step}: {what}. The run keeps its checkpoint of epoch {} ({}), but resuming would diverge again at the same step: start a new run with {fix}",
        .epoch - 1,
        if *.epoch == 1 { "the initial weights" } else { "the last good one" }
    )]
    Diverged {
        /// The epoch (1-based) in which it happened.
        epoch: usize,
        /// The step within the epoch.
        step: usize,
        /// What stopped being finite, with its value.
        what: String,
        /// The settings that would avoid it (a FactorVAE's discriminator has its own learning rate).
        fix: String,
    },
    /// Training stopped on SIGINT or SIGTERM between two steps, or after its last epoch, before the figures.
    #[error(
        "interrupted; the checkpoint of epoch {kept} is kept{}: continue with 'elbo train --resume {}'",
        if *.finished { " (training had finished; the figures were not drawn)" } else { "" },
        .dir.display()
    )]
    Interrupted {
        /// The signal received.
        signal: i32,
        /// The newest epoch saved.
        kept: usize,
        /// Whether every epoch had been trained.
        finished: bool,
        /// The run directory.
        dir: PathBuf,
    },
    /// A computation that keeps nothing half-done (scoring, evaluating, make-dsprites) was stopped by a signal.
    #[error(
        "{what} stopped before it finished ({}); nothing was returned or written",
        if *.signal == SIGTERM { "SIGTERM" } else { "Ctrl-C" }
    )]
    Stopped {
        /// What stopped: "scoring", "evaluating", "measuring disentanglement".
        what: &'static str,
        /// The signal that stopped it ([`SIGINT`] for Ctrl-C, and for a Python KeyboardInterrupt).
        signal: i32,
    },
    /// The disk has less free space than a file elbo is about to write needs.
    #[error(
        "{}: {what} needs {} MB of free disk and there are {} MB: free at least {} MB",
        .path.display(),
        megabytes(*.needed, true),
        megabytes(*.free, false),
        megabytes(.needed.saturating_sub(*.free), true),
    )]
    NoRoom {
        /// The folder written into.
        path: PathBuf,
        /// What is to be written, for the message.
        what: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// Training could not save its checkpoint or metrics (a full disk, a file size limit).
    #[error(
        "{source}; {}: {} 'elbo train --resume {}'",
        match .kept {
            Some(k) => format!("the checkpoint of epoch {k} is kept"),
            None => "no checkpoint of this run could be read back".to_string(),
        },
        save_advice(.source),
        .dir.display()
    )]
    Save {
        /// The newest epoch whose checkpoint can be read, if any.
        kept: Option<usize>,
        /// The run directory.
        dir: PathBuf,
        /// What failed.
        source: Box<Error>,
    },
}

/// Bytes in megabytes (10^6) to a tenth, rounded `up` (what is needed: "free N MB" is always enough) or down
/// (what there is).
fn megabytes(bytes: u64, up: bool) -> String {
    let tenths = if up {
        bytes.div_ceil(100_000)
    } else {
        bytes / 100_000
    };
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// What to do about a failed save, from the system's reason.
fn save_advice(e: &Error) -> &'static str {
    match e {
        Error::NoRoom { .. } => "then continue with",
        Error::Io { source, .. } => match source.raw_os_error() {
            Some(libc::EFBIG) => "raise the file size limit (ulimit -f) and continue with",
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => "make room and continue with",
            Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM) => {
                "make the run directory writable and continue with"
            }
            _ => "once that is fixed, continue with",
        },
        _ => "once that is fixed, continue with",
    }
}

/// Result with elbo's error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The signal Ctrl-C sends.
pub const SIGINT: i32 = 2;
/// The signal `kill` and service managers send.
pub const SIGTERM: i32 = 15;

/// A number as a message shows it: `1e308`, not its 309 digits.
pub fn shown(v: f64) -> String {
    if v.is_finite() && v != 0.0 && !(1e-4..1e6).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The process exit status for this error: 128 + the signal for an interrupted run, as shells expect, else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted { signal, .. } | Error::Stopped { signal, .. } => 128 + signal,
            _ => 1,
        }
    }
}

// The message, not the variant's fields: `fn main() -> Result<(), elbo::Error>` and `unwrap` show a user the same
// one line the command line prints, where a derived form showed `Config("…")`.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn numbers_are_shown_short() {
        assert_eq!(shown(1e308), "1e308");
        assert_eq!(shown(-2.5e-9), "-2.5e-9");
        assert_eq!(shown(0.5), "0.5");
        assert_eq!(shown(1000.0), "1000");
        assert_eq!(shown(f64::NAN), "NaN");
    }
}
