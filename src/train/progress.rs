//! Training progress on stderr: a bar with an ETA on a terminal, one plain line per epoch
//! otherwise (logs, CI) with the rate in cells per second and the ETA, nothing with
//! `--quiet`.

use super::EpochRecord;
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

/// Seconds between two lines of a [`Stage`].
const STAGE_PERIOD: f64 = 10.0;

/// Progress of a stage other than training that can run for minutes at atlas size (UMAP's
/// epochs, the marker genes' bands): a line on stderr at most every ten seconds, with the
/// rate and the ETA, as `ae UMAP: epoch 40/200, 0.52/s, ETA 5m08s`. Silent without a label.
#[derive(Debug)]
pub struct Stage {
    label: Option<String>,
    unit: &'static str,
    total: usize,
    started: Instant,
    last: Instant,
}

impl Stage {
    /// A stage named `label` (`None`: silent).
    pub fn new(label: Option<String>) -> Self {
        let now = Instant::now();
        Stage {
            label,
            unit: "",
            total: 0,
            started: now,
            last: now,
        }
    }

    /// No output.
    pub fn silent() -> Self {
        Self::new(None)
    }

    /// The work starts now: `total` of `unit` (as `epoch`).
    pub fn begin(&mut self, total: usize, unit: &'static str) {
        self.total = total;
        self.unit = unit;
        self.started = Instant::now();
        self.last = self.started;
    }

    /// `done` of the total units are done.
    pub fn step(&mut self, done: usize) {
        let Some(label) = &self.label else { return };
        if self.last.elapsed().as_secs_f64() < STAGE_PERIOD || done >= self.total {
            return;
        }
        self.last = Instant::now();
        let line = stage_line(
            label,
            self.unit,
            done,
            self.total,
            self.started.elapsed().as_secs_f64(),
        );
        let _ = writeln!(std::io::stderr(), "\r{line}");
    }
}

/// A [`Stage`]'s line: `done` of `total` units after `elapsed` seconds.
fn stage_line(label: &str, unit: &str, done: usize, total: usize, elapsed: f64) -> String {
    let rate = done as f64 / elapsed.max(1e-9);
    let eta = elapsed / done.max(1) as f64 * total.saturating_sub(done) as f64;
    format!(
        "{label}: {unit} {done}/{total}, {rate:.2}/s, ETA {}",
        duration(eta)
    )
}

/// Seconds as `42s`, `3m05s` or `1h02m`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_lines_give_the_rate_and_the_eta() {
        assert_eq!(
            stage_line("ae UMAP", "epoch", 40, 200, 80.0),
            "ae UMAP: epoch 40/200, 0.50/s, ETA 5m20s"
        );
        // Nothing done yet: the ETA counts the elapsed time as one unit's.
        assert_eq!(
            stage_line("pca markers", "gene band", 0, 14, 12.0),
            "pca markers: gene band 0/14, 0.00/s, ETA 2m48s"
        );
    }

    #[test]
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(42.0), "42s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3720.0), "1h02m");
    }
}
