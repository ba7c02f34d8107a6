//! From codes to scores: the three protocols of the study, and every score the run reports.
//!
//! 1. **The study's**: k-means (k clusters, `n_init` restarts) on the 2-D t-SNE of the codes.
//! 2. k-means on the codes themselves.
//! 3. Leiden on the codes' 15-neighbour graph (UMAP weights, as `sc.pp.neighbors`), the
//!    resolution bisected until there are exactly k communities.
//!
//! Each is scored against the labelled cells (NMI, ARI, homogeneity, completeness); the
//! study's clusters also get AMI and matched accuracy, and the codes the labels' silhouette
//! and 15-NN purity ([`crate::analysis::label_scores`]). No protocol sees a label: only their
//! count, k, as k-means needs.

use super::outcome::{LabelScores, LeidenOutcome};
use crate::analysis::integration::{integration_scores, IntegrationScores, LISI_NEIGHBOURS};
use crate::analysis::kmeans::{kmeans, KMeansOptions, KMeansResult};
use crate::analysis::label_scores::{active_units, ami, knn_purity, matched_accuracy, silhouette};
use crate::analysis::leiden::{leiden_k, AdjGraph, Iterations, LeidenK, NEIGHBOURS};
use crate::analysis::metrics::{scores, Scores};
use crate::analysis::neighbors::Neighbors;
use crate::analysis::tsne::{tsne_on, Embedding, Method, TsneOptions};
use crate::analysis::umap::{fuzzy_graph, umap_on, UmapOptions};
use crate::error::Result;
use crate::io::align::CellTypes;
use crate::io::batches::CellBatches;
use ndarray::Array2;
use std::time::Instant;

/// Neighbours of the label purity score, the cell itself not counted.
pub const PURITY_NEIGHBOURS: usize = 15;

/// How codes are embedded and clustered; [`EvalOptions::new`] gives the study's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// t-SNE perplexity.
    pub perplexity: f64,
    pub tsne_method: Method,
    pub tsne_iterations: usize,
    /// k-means restarts (the lowest inertia wins).
    pub n_init: usize,
    /// Seed of the t-SNE, UMAP, k-means and Leiden streams.
    pub seed: u64,
}

impl EvalOptions {
    /// The study's: perplexity 40, 1,000 iterations (exact gradient below 5,000 cells),
    /// 100 k-means restarts.
    pub fn new(seed: u64) -> Self {
        EvalOptions {
            perplexity: 40.0,
            tsne_method: Method::Auto,
            tsne_iterations: 1000,
            n_init: 100,
            seed,
        }
    }

    /// The t-SNE settings of `dims` dimensions.
    pub fn tsne(&self, dims: usize) -> TsneOptions {
        TsneOptions {
            perplexity: self.perplexity,
            method: self.tsne_method,
            ..TsneOptions::new(dims, self.seed)
        }
        .with_iterations(self.tsne_iterations)
    }
}

/// The clusters of the three protocols (with k given).
#[derive(Clone, Debug)]
pub struct Clusters {
    /// The study's: k-means on the 2-D t-SNE.
    pub tsne_kmeans: KMeansResult,
    /// k-means on the codes (computed when there are labels to score it against).
    pub codes_kmeans: Option<Vec<usize>>,
    /// Leiden(k) on the codes' kNN graph.
    pub leiden: LeidenK,
}

/// Every protocol's scores against the labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProtocolScores {
    pub tsne_kmeans: Scores,
    pub codes_kmeans: Scores,
    pub leiden: Scores,
    pub labels: LabelScores,
}

/// What the protocols made of one representation's codes.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// With two or more batches: how well the codes mix them ([`crate::analysis::integration`]).
    pub integration: Option<IntegrationScores>,
    pub tsne2d: Embedding,
    pub tsne3d: Embedding,
    pub umap: Array2<f64>,
    /// With k.
    pub clusters: Option<Clusters>,
    /// With k and labels.
    pub scores: Option<ProtocolScores>,
    /// Code dimensions whose variance across cells exceeds 0.01.
    pub active_units: usize,
    /// Seconds to build the neighbour graph and its fuzzy weights.
    pub graph_seconds: f64,
    pub tsne_seconds: f64,
    pub umap_seconds: f64,
}

impl Evaluation {
    /// The Leiden protocol's outcome, for the tables.
    pub fn leiden_outcome(&self) -> Option<LeidenOutcome> {
        self.clusters.as_ref().map(|c| LeidenOutcome {
            resolution: c.leiden.resolution,
            clusters: c.leiden.labels.iter().max().map_or(0, |m| m + 1),
        })
    }
}

/// Runs the three protocols on `codes` (one row per cell): t-SNE in 2-D and 3-D and UMAP
/// always; with `k`, the clusters; with `k` and `labels`, every score; with two or more
/// `batches`, the integration scores.
pub fn evaluate_codes(
    codes: &Array2<f64>,
    labels: Option<&CellTypes>,
    batches: Option<&CellBatches>,
    k: Option<usize>,
    opts: &EvalOptions,
) -> Result<Evaluation> {
    let n = codes.nrows();
    let batches = batches.filter(|b| b.n_batches() > 1);
    let started = Instant::now();
    // One neighbour graph for t-SNE's sparse affinities, UMAP, Leiden, the kNN purity and
    // the integration scores.
    let wanted = [
        NEIGHBOURS - 1,
        PURITY_NEIGHBOURS,
        opts.tsne(2).neighbours_for(n),
        if batches.is_some() {
            LISI_NEIGHBOURS
        } else {
            0
        },
    ];
    let neighbours = Neighbors::exact(codes, wanted.into_iter().max().unwrap_or(0));
    let graph = fuzzy_graph(&neighbours, NEIGHBOURS.min(n));
    let graph_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let tsne2d = tsne_on(codes, Some(&neighbours), &opts.tsne(2))?;
    let tsne3d = tsne_on(codes, Some(&neighbours), &opts.tsne(3))?;
    let tsne_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let umap = umap_on(codes, &graph, &UmapOptions::new(2, opts.seed))?;
    let umap_seconds = started.elapsed().as_secs_f64();
    let integration = batches.map(|b| {
        integration_scores(
            codes,
            &neighbours,
            &b.ids,
            b.n_batches(),
            labels.map(|t| (t.ids.as_slice(), t.names.len())),
            opts.seed,
        )
    });
    let mut evaluation = Evaluation {
        integration,
        tsne2d,
        tsne3d,
        umap,
        clusters: None,
        scores: None,
        active_units: active_units(codes),
        graph_seconds,
        tsne_seconds,
        umap_seconds,
    };
    let Some(k) = k else {
        return Ok(evaluation);
    };
    let kopts = KMeansOptions {
        n_init: opts.n_init,
        ..KMeansOptions::new(k, opts.seed)
    };
    let tsne_kmeans = kmeans(&evaluation.tsne2d.coords, &kopts)?;
    let codes_kmeans = match labels {
        Some(_) => Some(kmeans(codes, &kopts)?.labels),
        None => None,
    };
    let leiden = leiden_k(
        &AdjGraph::from_edges(n, &graph),
        k,
        Iterations::UntilStable,
        opts.seed,
    );
    let clusters = Clusters {
        tsne_kmeans,
        codes_kmeans,
        leiden,
    };
    if let (Some(types), Some(codes_kmeans)) = (labels, &clusters.codes_kmeans) {
        evaluation.scores = Some(ProtocolScores {
            tsne_kmeans: score_against(types, &clusters.tsne_kmeans.labels),
            codes_kmeans: score_against(types, codes_kmeans),
            leiden: score_against(types, &clusters.leiden.labels),
            labels: label_scores(types, &clusters.tsne_kmeans.labels, codes, &neighbours),
        });
    }
    evaluation.clusters = Some(clusters);
    Ok(evaluation)
}

/// Scores of `clusters` against the labelled cells.
pub fn score_against(types: &CellTypes, clusters: &[usize]) -> Scores {
    let (t, p): (Vec<usize>, Vec<usize>) = types
        .ids
        .iter()
        .zip(clusters)
        .filter_map(|(t, &c)| t.map(|t| (t, c)))
        .unzip();
    scores(&t, &p)
}

/// AMI and matched accuracy of `clusters`, and the labels' silhouette in `codes` (over the
/// labelled cells) and kNN purity in their neighbour graph `nb`.
pub fn label_scores(
    types: &CellTypes,
    clusters: &[usize],
    codes: &Array2<f64>,
    nb: &Neighbors,
) -> LabelScores {
    let labelled: Vec<usize> = (0..types.ids.len())
        .filter(|&i| types.ids[i].is_some())
        .collect();
    let truth: Vec<usize> = labelled.iter().filter_map(|&i| types.ids[i]).collect();
    let pred: Vec<usize> = labelled.iter().map(|&i| clusters[i]).collect();
    let x = codes.select(ndarray::Axis(0), &labelled);
    LabelScores {
        ami: ami(&truth, &pred),
        accuracy: matched_accuracy(&truth, &pred),
        silhouette: silhouette(&x, &truth),
        knn_purity: knn_purity(nb, &types.ids, PURITY_NEIGHBOURS),
    }
}
