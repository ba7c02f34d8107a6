//! Progress of the long stages other than training (reading, the kNN graph, UMAP, clustering,
//! markers, writing). A leaf module, like [`crate::csr`], so that every layer from
//! [`crate::io`] on can report.

use std::io::Write;
use std::time::Instant;

/// Seconds between two lines of a [`Stage`].
const STAGE_PERIOD: f64 = 10.0;

/// Progress of a stage other than training that can run for minutes at atlas size (UMAP's
/// epochs, the marker genes' bands, a file's blocks): a line on stderr at most every ten
/// seconds, with the rate and the ETA, as `ae UMAP: epoch 40/200, 0.52/s, ETA 5m08s`.
/// Silent without a label.
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
pub(crate) fn duration(seconds: f64) -> String {
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
