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
    fn durations_read_as_a_person_writes_them() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(42.0), "42s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3720.0), "1h02m");
    }
}
