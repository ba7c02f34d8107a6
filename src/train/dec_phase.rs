//! The DEC/IDEC phase of training (`--dec`): the last `dec_epochs` epochs add `γ·L_c` to the
//! loss ([`crate::engine::dec`]). At its first epoch the centroids are initialised from the
//! training cells' codes by the caller's function (k-means, which lives above training);
//! at the start of every epoch of the phase the target `p` is recomputed from all training
//! cells' soft assignments, and the phase ends training early once fewer than 0.1 % of the
//! cells change cluster (argmax of `q`) between two refreshes. No label is involved.

use super::Cells;
use crate::csr::Csr;
use crate::engine::dec;
use crate::error::{Error, Result};
use crate::models::Network;
use ndarray::{Array2, Axis};

/// Initial centroids `(K, L)` from the codes `(cells, L)`.
pub type CentroidInit<'a> = &'a dyn Fn(&Array2<f64>) -> Result<Array2<f64>>;

/// Share of cells whose cluster may change between refreshes for the phase to have converged.
pub const TOLERANCE: f64 = 0.001;

/// State of the DEC phase across epochs.
pub struct DecPhase<'a> {
    first_epoch: usize,
    init: Option<CentroidInit<'a>>,
    target: Option<Array2<f64>>,
    labels: Option<Vec<usize>>,
}

/// What a refresh decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Not in the DEC phase (yet): train without the term.
    Off,
    /// Train this epoch with the refreshed target.
    On,
    /// Converged: stop training.
    Converged,
}

impl<'a> DecPhase<'a> {
    /// The phase of a network with `dec_clusters > 0` over the last `dec_epochs` of `epochs`.
    pub fn new(
        net: &Network<f32>,
        epochs: usize,
        dec_epochs: usize,
        init: Option<CentroidInit<'a>>,
    ) -> Result<Self> {
        let on = net.config.dec_clusters > 0 && dec_epochs > 0;
        if on && init.is_none() {
            return Err(Error::invalid(
                "the DEC phase needs a way to initialise its centroids",
            ));
        }
        Ok(DecPhase {
            first_epoch: if on {
                epochs.saturating_sub(dec_epochs) + 1
            } else {
                usize::MAX
            },
            init,
            target: None,
            labels: None,
        })
    }

    /// At the start of `epoch`: (re)computes the target from the codes of every training
    /// cell (one row of the target per cell, in the order of `cells`).
    pub fn refresh(
        &mut self,
        net: &mut Network<f32>,
        cells: &Cells<'_>,
        epoch: usize,
    ) -> Result<Refresh> {
        if epoch < self.first_epoch {
            return Ok(Refresh::Off);
        }
        let codes = code_matrix(net, cells);
        if epoch == self.first_epoch {
            let init = self.init.expect("checked in new")(&codes)?;
            let c = net.centroids.as_mut().expect("dec_clusters > 0");
            if init.dim() != c.mu.dim() {
                return Err(Error::invalid(format!(
                    "DEC initialisation gave {:?} centroids, the network has {:?}",
                    init.dim(),
                    c.mu.dim()
                )));
            }
            c.mu.assign(&init.mapv(|v| v as f32));
        }
        let mu = &net.centroids.as_ref().expect("dec_clusters > 0").mu;
        let q = dec::soft_assign(codes.view(), mu.view());
        let labels = dec::assignments(&q);
        if let Some(previous) = &self.labels {
            let changed = labels.iter().zip(previous).filter(|(a, b)| a != b).count();
            if (changed as f64) < TOLERANCE * labels.len() as f64 {
                self.target = None;
                return Ok(Refresh::Converged);
            }
        }
        self.labels = Some(labels);
        self.target = Some(dec::target(&q));
        Ok(Refresh::On)
    }

    /// The target rows of a batch (training cells at `positions`), while the phase is on.
    pub fn batch_target(&self, positions: &[usize]) -> Option<Array2<f64>> {
        self.target.as_ref().map(|p| p.select(Axis(0), positions))
    }
}

/// The first head's output (the code DEC acts on) for every training cell.
fn code_matrix(net: &Network<f32>, cells: &Cells<'_>) -> Array2<f64> {
    const BATCH: usize = 512;
    let n = cells.len();
    let mut out = Array2::<f64>::zeros((n, net.config.latent));
    let mut ws = net.workspace(BATCH.min(n.max(1)), false);
    let mut batch = Csr::with_cols(cells.x.n_cols);
    let mut counts = Csr::with_cols(cells.x.n_cols);
    let positions: Vec<usize> = (0..n).collect();
    for chunk in positions.chunks(BATCH) {
        let rows: Vec<usize> = chunk.iter().map(|&p| cells.row(p)).collect();
        cells.gather(&rows, &mut batch, &mut counts, &mut ws);
        net.encode(&mut ws, &batch);
        let code = ws.head_output(0, chunk.len());
        for (k, &i) in chunk.iter().enumerate() {
            for (o, v) in out.row_mut(i).iter_mut().zip(code.row(k)) {
                *o = *v as f64;
            }
        }
    }
    out
}
