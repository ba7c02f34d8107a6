//! Training progress on stderr: a bar with an ETA on a terminal, one plain line per epoch
//! otherwise (logs, CI) with the rate in cells per second and the ETA, nothing with
//! `--quiet`.

use super::EpochRecord;
use crate::stage::{duration, Stage};
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Where progress goes.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    label: String,
    total: usize,
    /// Training cells per epoch, for the rate.
    cells: usize,
    started: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Lines,
    Bar,
}

impl Progress {
    /// Progress for a task named `label`; `quiet` silences it.
    pub fn new(label: impl Into<String>, quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines
        };
        Progress {
            mode,
            label: label.into(),
            total: 0,
            cells: 0,
            started: Instant::now(),
        }
    }

    /// A [`Stage`] of this task (`what`), silent when it is.
    pub fn stage(&self, what: &str) -> Stage {
        Stage::new(self.shown_label().map(|l| format!("{l} {what}")))
    }

    /// The task's name, unless it is silent.
    pub fn shown_label(&self) -> Option<String> {
        (self.mode != Mode::Quiet).then(|| self.label.clone())
    }

    /// Silent progress (library use, tests).
    pub fn quiet() -> Self {
        Self::new("", true)
    }

    pub(crate) fn start(&mut self, total: usize, cells: usize) {
        self.total = total;
        self.cells = cells;
        self.started = Instant::now();
    }

    /// Seconds left at epoch `epoch` of [`Self::total`], from the mean epoch so far.
    fn eta(&self, epoch: usize) -> f64 {
        let elapsed = self.started.elapsed().as_secs_f64();
        elapsed / epoch.max(1) as f64 * self.total.saturating_sub(epoch) as f64
    }

    pub(crate) fn epoch(&mut self, r: &EpochRecord) {
        let mut err = std::io::stderr().lock();
        match self.mode {
            Mode::Quiet => {}
            Mode::Lines => {
                let val = r
                    .val_loss
                    .map_or(String::new(), |v| format!(" held-out {v:.4}"));
                let rate = self.cells as f64 / r.seconds.max(1e-9);
                let _ = writeln!(
                    err,
                    "{} epoch {}/{}: loss {:.4} recon {:.4} kl {:.4} recon/entry {:.5}{val} ({:.2}s, {rate:.0} cells/s, ETA {})",
                    self.label,
                    r.epoch,
                    self.total,
                    r.loss,
                    r.recon,
                    r.kl,
                    r.recon_per_entry,
                    r.seconds,
                    duration(self.eta(r.epoch))
                );
            }
            Mode::Bar => {
                let done = r.epoch as f64 / self.total.max(1) as f64;
                let width = 30;
                let filled = (done * width as f64).round() as usize;
                let _ = write!(
                    err,
                    "\r{} [{}{}] {}/{} loss {:.4} recon/entry {:.5} ETA {}   ",
                    self.label,
                    "#".repeat(filled),
                    ".".repeat(width - filled),
                    r.epoch,
                    self.total,
                    r.loss,
                    r.recon_per_entry,
                    duration(self.eta(r.epoch))
                );
                let _ = err.flush();
            }
        }
    }

    /// A one-line message between epochs (not with `--quiet`).
    pub(crate) fn note(&mut self, message: &str) {
        if self.mode != Mode::Quiet {
            let _ = writeln!(std::io::stderr(), "\r{}: {message}", self.label);
        }
    }

    pub(crate) fn finish(&mut self) {
        if self.mode == Mode::Bar {
            let _ = writeln!(
                std::io::stderr(),
                "\r{} done in {:.1}s{}",
                self.label,
                self.started.elapsed().as_secs_f64(),
                " ".repeat(60)
            );
        }
    }
}
