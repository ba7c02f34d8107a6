//! The validation split and the held-out loss
//! (`docs/math.md#16-held-out-loss-and-further-scores`).
//!
//! The split is drawn from a fixed seed ([`SPLIT_SEED`]), not the training seed: every
//! configuration and every training seed on the same cells holds out the *same* cells, so
//! their held-out losses can be compared (which is how settings are chosen, never by labels).
//!
//! The held-out loss is `recon + KL` per validation cell: the negative ELBO (KL weight 1,
//! whatever β the network trains with, so that runs with different β can be compared; the AE
//! has no KL; a DEC term is not included). For the VAE and VSC it depends on the sampling
//! noise; one draw, fixed for the whole run, is used at every epoch (common random numbers),
//! so the curve moves only because the network does.

use super::Cells;
use crate::csr::Csr;
use crate::engine::rng::{stream, substream, Stream};
use crate::models::{Network, Noise, Schedule};
use rand::seq::SliceRandom;

/// Seed of the split and of the validation noise, the same for every run.
pub const SPLIT_SEED: u64 = 0;

/// Cells to train on and cells held out, each in ascending order.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// Holds out `round(fraction · n)` of `n` cells (at least one train cell is kept).
pub fn split(n: usize, fraction: f64) -> Split {
    let n_val = ((fraction * n as f64).round() as usize).min(n.saturating_sub(1));
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut stream(SPLIT_SEED, Stream::Validation));
    let mut val = order[..n_val].to_vec();
    let mut train = order[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    Split { train, val }
}

/// The held-out cells (rows of the training input, by index) with their fixed noise.
pub struct HeldOut {
    pub rows: Vec<usize>,
    noise: Noise<f32>,
}

impl HeldOut {
    /// The held-out `rows` and one noise draw for them.
    pub fn new(rows: Vec<usize>, net: &Network<f32>) -> Self {
        let cfg = &net.config;
        // Sub-stream 1: the split itself uses sub-stream 0.
        let mut rng = substream(SPLIT_SEED, Stream::Validation, 1);
        let noise = Noise::draw(&mut rng, cfg.kind, rows.len(), cfg.latent);
        HeldOut { rows, noise }
    }

    /// `recon + KL` per held-out cell (these rows of `cells`' input, counts and batches),
    /// evaluated in batches of `batch` cells with the VSC sharpness of `s` (its KL weight
    /// is not used: the KL counts fully).
    pub fn loss(&self, net: &Network<f32>, cells: &Cells<'_>, batch: usize, s: Schedule) -> f64 {
        let n = self.rows.len();
        let b_max = batch.min(n).max(1);
        let mut ws = net.workspace(b_max, true);
        let mut rows = Csr::with_cols(cells.x.n_cols);
        let mut count_rows = Csr::with_cols(cells.x.n_cols);
        let (mut recon, mut kl) = (0.0f64, 0.0f64);
        for start in (0..n).step_by(b_max) {
            let end = (start + b_max).min(n);
            cells.gather(&self.rows[start..end], &mut rows, &mut count_rows, &mut ws);
            let noise = self.noise.rows(start, end);
            let l = match cells.counts {
                Some(_) => net.forward_nb(&mut ws, &rows, &count_rows, &noise, s),
                None => net.forward(&mut ws, &rows, &noise, s),
            };
            let undo = 1.0 / net.config.reduction.factor(end - start);
            recon += l.recon * undo;
            kl += l.kl * undo;
        }
        (recon + kl) / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_fixed_disjoint_and_complete() {
        let s = split(100, 0.1);
        assert_eq!((s.train.len(), s.val.len()), (90, 10));
        assert_eq!(s, split(100, 0.1), "the same cells every time");
        let mut all: Vec<usize> = s.train.iter().chain(&s.val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(split(5, 0.0).val.len(), 0);
        assert_eq!(
            split(3, 0.99).train.len(),
            1,
            "one cell is always trained on"
        );
    }
}
