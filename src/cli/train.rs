//! `elbo train`: a new run from flags and a config file, or the continuation of a saved one, then its figures.

use crate::api::Trainer;
use crate::api::trainer::read_text;
use crate::core::dist;
use crate::core::threads;
use crate::error::{Error, Result};
use crate::figures;
use crate::train::settings::FileKeys;
use crate::train::{EpochMetrics, Flow, Observer, Settings, load_run};
use clap::Args;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// TOML file of settings, keyed by flag name (`latent = 2`, `batch-size = 20`); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Continue the run in RUN_DIR from its last checkpoint, with its saved config.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    flags: Settings,
    /// Replace an existing run directory's checkpoint, metrics and figures.
    #[arg(long)]
    force: bool,
}

impl TrainArgs {
    /// The settings: the flags, then the `--config` file for what they leave out; and the settings only the file
    /// gave, which errors name as its keys.
    fn settings(&self) -> Result<(Settings, FileKeys)> {
        let Some(path) = &self.config else {
            return Ok((self.flags.clone(), FileKeys::default()));
        };
        let text = read_text(path, "a config file")?;
        self.flags
            .clone()
            .over_config(&text, &path.display().to_string())
    }
}

/// Trains, checking data, memory and the run directory before the first epoch so a refusal costs nothing.
pub(crate) fn run(a: TrainArgs) -> Result<()> {
    let mut observer = Terminal::new(std::io::stderr().is_terminal() && dist::is_writer());
    let (mut trainer, file) = if let Some(dir) = &a.resume {
        threads::init(threads::check(
            a.flags.threads.unwrap_or(dist::default_threads()),
        )?);
        let mut flags = a.flags.given();
        flags.retain(|f| !["--epochs", "--threads", "--data-dir"].contains(&f.as_str()));
        if a.force {
            return Err(Error::Config(
                "--force does not go with --resume: --force replaces a run, --resume continues it"
                    .into(),
            ));
        }
        if !flags.is_empty() {
            return Err(Error::Config(format!(
                "{} cannot be changed when resuming: the run keeps its saved config (only --epochs, --threads and --data-dir apply)",
                flags.join(", ")
            )));
        }
        (
            Trainer::resume(dir, a.flags.epochs, a.flags.data_dir.as_deref())?,
            FileKeys::default(),
        )
    } else {
        let (settings, file) = a.settings()?;
        // A value the user wrote in the file is named as its key there (`lr = -1`), not as a flag they never gave.
        threads::init(
            threads::check(settings.threads.unwrap_or(dist::default_threads()))
                .map_err(|e| file.rename(e))?,
        );
        (
            Trainer::new(&settings, a.force).map_err(|e| file.rename(e))?,
            file,
        )
    };
    // Printed once nothing can refuse the run, so an error is the last line a user reads.
    for line in trainer.notes() {
        writer_note(line);
    }
    // From here on Ctrl-C and SIGTERM stop training between steps, and never cut a figure short.
    let _signals = crate::signals::Catch::install();
    // A divergence's advice names the file's `lr` too, when the file set it.
    trainer.fit(&mut observer).map_err(|e| file.rename(e))?;
    if !dist::is_writer() {
        return Ok(());
    }
    let run_dir = trainer.run_dir().to_path_buf();
    let ck = load_run(&run_dir)?;
    if let Some(signal) = crate::signals::received() {
        return Err(Error::Interrupted {
            signal,
            kept: ck.state.epoch,
            finished: true,
            dir: run_dir.clone(),
        });
    }
    // A signal while the figures are drawn waits for them (a second or two): the run is then complete.
    let written = figures::run_figures(&run_dir, &ck, &trainer.splits().test)?;
    crate::notes::say!(
        "elbo: wrote {} into {}",
        written.join(", "),
        run_dir.display()
    );
    Ok(())
}

/// The CLI's view of training, on rank 0 alone: a progress bar on stderr when it is a terminal, and each epoch's
/// line on stdout.
struct Terminal {
    bar: indicatif::ProgressBar,
    show_bar: bool,
    steps: usize,
}

impl Terminal {
    fn new(show_bar: bool) -> Self {
        Terminal {
            bar: indicatif::ProgressBar::hidden(),
            show_bar,
            steps: 0,
        }
    }
}

impl Observer for Terminal {
    fn note(&mut self, line: &str) {
        writer_note(line);
    }

    fn epoch_start(&mut self, epoch: usize, epochs: usize, items: usize) {
        self.steps = 0;
        if !self.show_bar {
            return;
        }
        self.bar = indicatif::ProgressBar::new(items as u64);
        self.bar.set_style(
            indicatif::ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar.set_prefix(format!("{epoch}/{epochs}"));
    }

    fn step(&mut self, items: usize, loss: f64, per_second: f64) {
        self.bar.set_position(items as u64);
        // Formatting the message every step would cost more than drawing it.
        if self.steps.is_multiple_of(16) {
            self.bar
                .set_message(format!("loss {loss:.2}  {per_second:.0} img/s"));
        }
        self.steps += 1;
    }

    fn abandon(&mut self) {
        self.bar.abandon();
    }

    fn epoch_end(&mut self, _m: &EpochMetrics, line: &str) -> Flow {
        self.bar.finish_and_clear();
        if dist::is_writer() {
            // stdout: the epoch lines are the run's output, which users pipe and tee.
            let _ = writeln!(std::io::stdout(), "{line}");
        }
        Flow::Continue
    }
}

/// A line for the user, from rank 0 alone.
fn writer_note(line: &str) {
    if dist::is_writer() {
        crate::notes::say!("{line}");
    }
}
