//! Progress on stderr: one line per step (`==> creating container 100 ... done (3.2 s)`), with a
//! spinner while a step runs only when stderr is a terminal; nothing with `--quiet`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Spinner frame interval.
const SPIN_INTERVAL: Duration = Duration::from_millis(120);
const FRAMES: [char; 4] = ['|', '/', '-', '\\'];

/// Where steps are reported.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    quiet: bool,
    tty: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Progress { quiet, tty: std::io::stderr().is_terminal() }
    }

    /// Starts a step; finish it with [`Step::done`] or let it drop (reported as failed).
    pub fn step(&self, what: impl Into<String>) -> Step {
        let what = what.into();
        let spinner = (!self.quiet && self.tty).then(|| {
            let what = what.clone();
            tokio::spawn(async move {
                let mut i = 0;
                loop {
                    eprint!("\r==> {what} ... {}", FRAMES[i % FRAMES.len()]);
                    let _ = std::io::stderr().flush();
                    i += 1;
                    tokio::time::sleep(SPIN_INTERVAL).await;
                }
            })
        });
        Step { what, quiet: self.quiet, tty: self.tty, started: Instant::now(), spinner, finished: false }
    }

    /// A line of its own (not a step).
    pub fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("==> {text}");
        }
    }
}

/// A running step.
#[derive(Debug)]
pub struct Step {
    what: String,
    quiet: bool,
    tty: bool,
    started: Instant,
    spinner: Option<tokio::task::JoinHandle<()>>,
    finished: bool,
}

impl Step {
    /// Ends the step with `outcome` (`done`, `no change`, `skipped`...).
    pub fn done(mut self, outcome: &str) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: &str) {
        self.finished = true;
        if let Some(spinner) = self.spinner.take() {
            spinner.abort();
        }
        if self.quiet {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64();
        let lead = if self.tty { "\r" } else { "" };
        eprintln!("{lead}==> {} ... {outcome} ({secs:.1} s)", self.what);
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.finished {
            self.finish("failed");
        }
    }
}
