//! What the study reports about one representation: one row of `summary.csv`, one
//! `metrics.json`, one line of every table.

use super::evaluate::ProtocolScores;
use crate::analysis::integration::IntegrationScores;
use crate::train::EpochRecord;

/// How the labels sit beside the study's clusters and in the codes: AMI and matched accuracy
/// of the clusters (k-means on the 2-D t-SNE; `None` when t-SNE was skipped), the labels'
/// silhouette in the codes and the share of each cell's 15 nearest cells that carry its
/// label ([`crate::analysis::label_scores`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabelScores {
    pub ami: Option<f64>,
    pub accuracy: Option<f64>,
    pub silhouette: f64,
    /// The labelled cells the silhouette was averaged over: all of them, or a seeded sample
    /// of [`crate::analysis::label_scores::SILHOUETTE_SAMPLE`].
    pub silhouette_cells: usize,
    pub knn_purity: f64,
}

/// The resolution the Leiden protocol settled on, and how many communities it gave (k,
/// unless no resolution did).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeidenOutcome {
    pub resolution: f64,
    pub clusters: usize,
}

/// Everything the report says about one model (or the PCA baseline) at one seed.
#[derive(Clone, Debug)]
pub struct ModelOutcome {
    /// `ae`, `vae`, `vsc` or `pca`.
    pub name: String,
    /// The training seed of this row.
    pub seed: u64,
    /// Every protocol's scores, with k and labels.
    pub scores: Option<ProtocolScores>,
    /// The Leiden protocol's resolution, with k.
    pub leiden: Option<LeidenOutcome>,
    /// Training seconds (PCA: the seconds to compute it).
    pub train_seconds: f64,
    /// Per-epoch training records (empty for PCA).
    pub records: Vec<EpochRecord>,
    pub n_params: Option<usize>,
    /// Final KL divergences of the 2-D and 3-D t-SNE; `None` when t-SNE was skipped.
    pub tsne_kl: Option<(f64, f64)>,
    pub tsne_seconds: f64,
    /// Wall seconds of the 2-D UMAP.
    pub umap_seconds: f64,
    /// Latent dimensions whose code varies across cells (variance > 0.01).
    pub active_units: usize,
    /// With two or more batches.
    pub integration: Option<IntegrationScores>,
}

impl ModelOutcome {
    pub fn final_recon_per_entry(&self) -> Option<f64> {
        self.records.last().map(|r| r.recon_per_entry)
    }

    /// The held-out loss after the last epoch (with a validation split).
    pub fn val_loss(&self) -> Option<f64> {
        self.records.last().and_then(|r| r.val_loss)
    }
}
