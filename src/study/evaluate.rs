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
//!
//! **At atlas scale** every stage stays linear or n log n:
//!
//! - t-SNE (Barnes–Hut: about 70 s per embedding at 20,000 cells, hours at a million) runs
//!   up to [`TSNE_MAX_CELLS`] cells, beyond only when asked ([`TsneWhen::Always`], `cellvae
//!   run --tsne`). Without it there is no protocol 1: its scores (and the AMI and accuracy of
//!   its clusters) are `None`, and **the run's clusters** ([`Clusters::primary`]: the
//!   `clusters.csv`, the marker genes, the confusion matrix and the clusters marked on the
//!   UMAP) are protocol 2's, k-means on the codes, instead of protocol 1's.
//! - k-means restarts 100 times up to 20,000 cells, fewer beyond ([`kmeans_restarts`]),
//!   unless the restarts were given.
//! - The labels' silhouette (O(n²)) runs on a seeded sample above
//!   [`crate::analysis::label_scores::SILHOUETTE_SAMPLE`] cells.
//!
//! Below 20,000 cells nothing of this applies and the run is what it always was.

use super::outcome::{LabelScores, LeidenOutcome};
use crate::analysis::integration::{integration_scores, IntegrationScores, LISI_NEIGHBOURS};
use crate::analysis::kmeans::{kmeans, kmeans_with, KMeansOptions, KMeansResult};
use crate::analysis::label_scores::{
    active_units, ami, knn_purity, matched_accuracy, silhouette_sampled,
};
use crate::analysis::leiden::{leiden_k_with, AdjGraph, Iterations, LeidenK, NEIGHBOURS};
use crate::analysis::metrics::{scores, Scores};
use crate::analysis::neighbors::Neighbors;
use crate::analysis::tsne::{tsne_on, Embedding, Method, TsneOptions};
use crate::analysis::umap::{fuzzy_graph, umap_on_with, UmapOptions};
use crate::error::Result;
use crate::io::align::CellTypes;
use crate::io::batches::CellBatches;
use crate::stage::Stage;
use ndarray::Array2;
use std::time::Instant;

/// Neighbours of the label purity score, the cell itself not counted.
pub const PURITY_NEIGHBOURS: usize = 15;

/// Cells above which the evaluation skips t-SNE unless told otherwise ([`TsneWhen::Auto`]):
/// Barnes–Hut t-SNE takes about 70 s per embedding at 20,000 cells (two cores) and grows as
/// n log n with a large constant, hours at a million; the other stages take seconds to
/// minutes there.
pub const TSNE_MAX_CELLS: usize = 50_000;

/// Cells up to which k-means keeps the study's 100 restarts ([`kmeans_restarts`]).
pub const KMEANS_FULL_RESTARTS_CELLS: usize = 20_000;

/// The study's k-means restarts, and the fewest [`kmeans_restarts`] goes down to.
pub const KMEANS_RESTARTS: usize = 100;
const KMEANS_MIN_RESTARTS: usize = 10;

/// k-means restarts for `n` cells when none were given: the study's 100 up to 20,000 cells
/// ([`KMEANS_FULL_RESTARTS_CELLS`]), then fewer in proportion to the cells, so that
/// restarts × cells stays at 2 million, but never fewer than 10 (scikit-learn's old default):
/// `max(10, round(100 · 20,000 / n))`. 100,000 cells: 20; 200,000 and beyond: 10.
pub fn kmeans_restarts(n: usize) -> usize {
    if n <= KMEANS_FULL_RESTARTS_CELLS {
        return KMEANS_RESTARTS;
    }
    let budget = KMEANS_RESTARTS * KMEANS_FULL_RESTARTS_CELLS;
    ((budget + n / 2) / n).max(KMEANS_MIN_RESTARTS)
}

/// Whether the evaluation embeds the codes with t-SNE (2-D and 3-D).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsneWhen {
    /// Up to [`EvalOptions::tsne_max_cells`] cells ([`TSNE_MAX_CELLS`]).
    Auto,
    /// At any number of cells (`cellvae run --tsne`).
    Always,
    /// Never: no protocol 1.
    Never,
}

/// How codes are embedded and clustered; [`EvalOptions::new`] gives the study's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// t-SNE perplexity.
    pub perplexity: f64,
    pub tsne_method: Method,
    pub tsne_iterations: usize,
    /// Whether t-SNE runs (and with it protocol 1).
    pub tsne: TsneWhen,
    /// The most cells [`TsneWhen::Auto`] embeds ([`TSNE_MAX_CELLS`]).
    pub tsne_max_cells: usize,
    /// k-means restarts (the lowest inertia wins); `None`: [`kmeans_restarts`] of the cells.
    pub n_init: Option<usize>,
    /// Seed of the t-SNE, UMAP, k-means, Leiden and silhouette-sample streams.
    pub seed: u64,
    /// The representation's name for progress lines of the long stages (`None`: silent).
    pub progress: Option<String>,
}

impl EvalOptions {
    /// The study's: perplexity 40, 1,000 iterations (exact gradient below 5,000 cells),
    /// 100 k-means restarts (fewer beyond 20,000 cells), t-SNE up to 50,000 cells.
    pub fn new(seed: u64) -> Self {
        EvalOptions {
            perplexity: 40.0,
            tsne_method: Method::Auto,
            tsne_iterations: 1000,
            tsne: TsneWhen::Auto,
            tsne_max_cells: TSNE_MAX_CELLS,
            n_init: None,
            seed,
            progress: None,
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

    /// Whether `n` cells are embedded with t-SNE.
    pub fn runs_tsne(&self, n: usize) -> bool {
        match self.tsne {
            TsneWhen::Auto => n <= self.tsne_max_cells,
            TsneWhen::Always => true,
            TsneWhen::Never => false,
        }
    }

    /// Why `n` cells get no t-SNE, for the reports; `None` when they get one.
    pub fn tsne_skipped(&self, n: usize) -> Option<String> {
        match self.tsne {
            _ if self.runs_tsne(n) => None,
            TsneWhen::Never => Some("t-SNE not requested".into()),
            _ => Some(format!(
                "{} cells > {}; --tsne forces it",
                thousands(n),
                thousands(self.tsne_max_cells)
            )),
        }
    }

    /// The k-means restarts for `n` cells: the given ones, else [`kmeans_restarts`].
    pub fn restarts(&self, n: usize) -> usize {
        self.n_init.unwrap_or_else(|| kmeans_restarts(n))
    }
}

/// `n` with a comma between thousands (50,000).
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The clusters of the three protocols (with k given).
#[derive(Clone, Debug)]
pub struct Clusters {
    /// The study's: k-means on the 2-D t-SNE (`None` when t-SNE was skipped).
    pub tsne_kmeans: Option<KMeansResult>,
    /// k-means on the codes (computed when there are labels to score it against, and when
    /// t-SNE was skipped: then they are the run's clusters).
    pub codes_kmeans: Option<KMeansResult>,
    /// Leiden(k) on the codes' kNN graph.
    pub leiden: LeidenK,
}

impl Clusters {
    /// The run's clusters (its `clusters.csv`, marker genes and confusion matrix): the
    /// study's, k-means on the 2-D t-SNE; k-means on the codes when t-SNE was skipped.
    pub fn primary(&self) -> &KMeansResult {
        self.tsne_kmeans
            .as_ref()
            .or(self.codes_kmeans.as_ref())
            .expect("k-means on the codes runs whenever t-SNE is skipped")
    }
}

/// Every protocol's scores against the labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProtocolScores {
    /// The study's protocol; `None` when t-SNE was skipped.
    pub tsne_kmeans: Option<Scores>,
    pub codes_kmeans: Scores,
    pub leiden: Scores,
    pub labels: LabelScores,
}

/// What the protocols made of one representation's codes.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// With two or more batches: how well the codes mix them ([`crate::analysis::integration`]).
    pub integration: Option<IntegrationScores>,
    /// `None` when t-SNE was skipped ([`EvalOptions::runs_tsne`]).
    pub tsne2d: Option<Embedding>,
    pub tsne3d: Option<Embedding>,
    pub umap: Array2<f64>,
    /// With k.
    pub clusters: Option<Clusters>,
    /// With k and labels.
    pub scores: Option<ProtocolScores>,
    /// Code dimensions whose variance across cells exceeds 0.01.
    pub active_units: usize,
    /// The k-means restarts each k-means ran.
    pub kmeans_restarts: usize,
    /// Seconds to build the neighbour graph and its fuzzy weights.
    pub graph_seconds: f64,
    /// 0 when t-SNE was skipped.
    pub tsne_seconds: f64,
    pub umap_seconds: f64,
    /// Seconds of k-means and Leiden(k), and of the scores (0 without k).
    pub cluster_seconds: f64,
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

/// Runs the three protocols on `codes` (one row per cell): t-SNE in 2-D and 3-D (up to
/// [`EvalOptions::tsne_max_cells`] cells, or as [`EvalOptions::tsne`] says) and UMAP; with
/// `k`, the clusters; with `k` and `labels`, every score; with two or more `batches`, the
/// integration scores.
pub fn evaluate_codes(
    codes: &Array2<f64>,
    labels: Option<&CellTypes>,
    batches: Option<&CellBatches>,
    k: Option<usize>,
    opts: &EvalOptions,
) -> Result<Evaluation> {
    let n = codes.nrows();
    let batches = batches.filter(|b| b.n_batches() > 1);
    let with_tsne = opts.runs_tsne(n);
    let started = Instant::now();
    // One neighbour graph for t-SNE's sparse affinities, UMAP, Leiden, the kNN purity and
    // the integration scores.
    let wanted = [
        NEIGHBOURS - 1,
        PURITY_NEIGHBOURS,
        if with_tsne {
            opts.tsne(2).neighbours_for(n)
        } else {
            0
        },
        if batches.is_some() {
            LISI_NEIGHBOURS
        } else {
            0
        },
    ];
    let label = |what: &str| opts.progress.as_ref().map(|l| format!("{l} {what}"));
    let neighbours = Neighbors::build_with(
        codes,
        wanted.into_iter().max().unwrap_or(0),
        opts.seed,
        &mut Stage::new(label("kNN graph")),
    );
    let graph = fuzzy_graph(&neighbours, NEIGHBOURS.min(n));
    let graph_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (tsne2d, tsne3d) = if with_tsne {
        (
            Some(tsne_on(codes, Some(&neighbours), &opts.tsne(2))?),
            Some(tsne_on(codes, Some(&neighbours), &opts.tsne(3))?),
        )
    } else {
        (None, None)
    };
    let tsne_seconds = if with_tsne {
        started.elapsed().as_secs_f64()
    } else {
        0.0
    };
    let started = Instant::now();
    let mut stage = Stage::new(label("UMAP"));
    let umap = umap_on_with(codes, &graph, &UmapOptions::new(2, opts.seed), &mut stage)?;
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
    let restarts = opts.restarts(n);
    let mut evaluation = Evaluation {
        integration,
        tsne2d,
        tsne3d,
        umap,
        clusters: None,
        scores: None,
        active_units: active_units(codes),
        kmeans_restarts: restarts,
        graph_seconds,
        tsne_seconds,
        umap_seconds,
        cluster_seconds: 0.0,
    };
    let Some(k) = k else {
        return Ok(evaluation);
    };
    let started = Instant::now();
    let kopts = KMeansOptions {
        n_init: restarts,
        ..KMeansOptions::new(k, opts.seed)
    };
    let tsne_kmeans = match &evaluation.tsne2d {
        Some(t) => Some(kmeans(&t.coords, &kopts)?),
        None => None,
    };
    // Scored against the labels; without t-SNE, also the run's clusters.
    let codes_kmeans = if labels.is_some() || tsne_kmeans.is_none() {
        let mut stage = Stage::new(label("k-means"));
        Some(kmeans_with(codes, &kopts, &mut stage)?)
    } else {
        None
    };
    let leiden = leiden_k_with(
        &AdjGraph::from_edges(n, &graph),
        k,
        Iterations::UntilStable,
        opts.seed,
        &mut Stage::new(label("Leiden")),
    );
    let clusters = Clusters {
        tsne_kmeans,
        codes_kmeans,
        leiden,
    };
    if let (Some(types), Some(codes_kmeans)) = (labels, &clusters.codes_kmeans) {
        let tsne_labels = clusters.tsne_kmeans.as_ref().map(|c| c.labels.as_slice());
        evaluation.scores = Some(ProtocolScores {
            tsne_kmeans: tsne_labels.map(|l| score_against(types, l)),
            codes_kmeans: score_against(types, &codes_kmeans.labels),
            leiden: score_against(types, &clusters.leiden.labels),
            labels: label_scores(types, tsne_labels, codes, &neighbours, opts.seed),
        });
    }
    evaluation.clusters = Some(clusters);
    evaluation.cluster_seconds = started.elapsed().as_secs_f64();
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

/// AMI and matched accuracy of the study's `clusters` (`None` without them: no t-SNE), and
/// the labels' silhouette in `codes` (over the labelled cells; on a sample of them, drawn by
/// `seed`, above [`crate::analysis::label_scores::SILHOUETTE_SAMPLE`]) and kNN purity in
/// their neighbour graph `nb`.
pub fn label_scores(
    types: &CellTypes,
    clusters: Option<&[usize]>,
    codes: &Array2<f64>,
    nb: &Neighbors,
    seed: u64,
) -> LabelScores {
    let labelled: Vec<usize> = (0..types.ids.len())
        .filter(|&i| types.ids[i].is_some())
        .collect();
    let truth: Vec<usize> = labelled.iter().filter_map(|&i| types.ids[i]).collect();
    let pred: Option<Vec<usize>> = clusters.map(|c| labelled.iter().map(|&i| c[i]).collect());
    let x = codes.select(ndarray::Axis(0), &labelled);
    let (silhouette, silhouette_cells) = silhouette_sampled(&x, &truth, seed);
    LabelScores {
        ami: pred.as_ref().map(|p| ami(&truth, p)),
        accuracy: pred.as_ref().map(|p| matched_accuracy(&truth, p)),
        silhouette,
        silhouette_cells,
        knn_purity: knn_purity(nb, &types.ids, PURITY_NEIGHBOURS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::{stream, Stream};
    use rand::Rng;
    use rand_distr::StandardNormal;

    /// `n` points in three well separated 2-D blobs, labelled by blob (cell `i` in blob
    /// `i % 3`).
    fn blobs(n: usize) -> (Array2<f64>, CellTypes) {
        let mut rng = stream(7, Stream::Init);
        let x = Array2::from_shape_fn((n, 2), |(i, j)| {
            let centre = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]][i % 3][j];
            centre + rng.sample::<f64, _>(StandardNormal)
        });
        let types = CellTypes {
            ids: (0..n).map(|i| Some(i % 3)).collect(),
            names: ["a", "b", "c"].map(String::from).to_vec(),
        };
        (x, types)
    }

    #[test]
    fn restarts_shrink_beyond_twenty_thousand_cells() {
        assert_eq!(kmeans_restarts(0), 100);
        assert_eq!(kmeans_restarts(2_638), 100);
        assert_eq!(kmeans_restarts(20_000), 100);
        assert_eq!(kmeans_restarts(30_000), 67);
        assert_eq!(kmeans_restarts(60_000), 33);
        assert_eq!(kmeans_restarts(100_000), 20);
        assert_eq!(kmeans_restarts(200_000), 10);
        assert_eq!(kmeans_restarts(1_000_000), 10);
        let mut o = EvalOptions::new(1);
        assert_eq!(o.restarts(100_000), 20);
        o.n_init = Some(7);
        assert_eq!(o.restarts(100_000), 7, "given restarts are kept");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(50_000), "50,000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn tsne_runs_up_to_the_threshold_unless_forced() {
        let o = EvalOptions::new(1);
        assert!(o.runs_tsne(TSNE_MAX_CELLS) && !o.runs_tsne(TSNE_MAX_CELLS + 1));
        assert_eq!(o.tsne_skipped(TSNE_MAX_CELLS), None);
        assert_eq!(
            o.tsne_skipped(60_000).as_deref(),
            Some("60,000 cells > 50,000; --tsne forces it")
        );
        let always = EvalOptions {
            tsne: TsneWhen::Always,
            ..o.clone()
        };
        assert!(always.runs_tsne(1_000_000));
        let never = EvalOptions {
            tsne: TsneWhen::Never,
            ..o
        };
        assert!(!never.runs_tsne(10));
    }

    /// Above the (lowered) threshold: no t-SNE, no protocol 1, every other score; the run's
    /// clusters are k-means on the codes.
    #[test]
    fn above_the_threshold_t_sne_and_protocol_one_are_skipped() {
        let (x, types) = blobs(3000);
        let opts = EvalOptions {
            tsne_max_cells: 2000,
            ..EvalOptions::new(1)
        };
        let e = evaluate_codes(&x, Some(&types), None, Some(3), &opts).unwrap();
        assert!(e.tsne2d.is_none() && e.tsne3d.is_none());
        assert_eq!(e.tsne_seconds, 0.0);
        assert_eq!(e.umap.dim(), (3000, 2));
        assert_eq!(e.kmeans_restarts, 100);
        let c = e.clusters.as_ref().unwrap();
        assert!(c.tsne_kmeans.is_none());
        let codes_kmeans = c.codes_kmeans.as_ref().unwrap();
        assert_eq!(c.primary().labels, codes_kmeans.labels);
        assert_eq!(c.leiden.labels.len(), 3000);
        let s = e.scores.unwrap();
        assert_eq!(s.tsne_kmeans, None);
        assert_eq!((s.labels.ami, s.labels.accuracy), (None, None));
        assert!(s.codes_kmeans.ari > 0.95, "{:?}", s.codes_kmeans);
        assert!(s.leiden.ari > 0.9, "{:?}", s.leiden);
        assert!(s.labels.silhouette > 0.5 && s.labels.knn_purity > 0.95);
        assert_eq!(s.labels.silhouette_cells, 3000);
        // Without labels the codes are still clustered: they are the run's clusters.
        let e = evaluate_codes(&x, None, None, Some(3), &opts).unwrap();
        assert!(e.scores.is_none());
        assert_eq!(e.clusters.unwrap().primary().labels, codes_kmeans.labels);
    }

    /// `TsneWhen::Always` embeds above the threshold, and protocol 1 is back.
    #[test]
    fn forced_t_sne_runs_above_the_threshold() {
        let (x, types) = blobs(300);
        let opts = EvalOptions {
            tsne: TsneWhen::Always,
            tsne_max_cells: 100,
            perplexity: 30.0,
            n_init: Some(4),
            ..EvalOptions::new(1)
        };
        let e = evaluate_codes(&x, Some(&types), None, Some(3), &opts).unwrap();
        assert_eq!(e.tsne2d.as_ref().unwrap().coords.dim(), (300, 2));
        assert_eq!(e.tsne3d.as_ref().unwrap().coords.dim(), (300, 3));
        assert_eq!(e.kmeans_restarts, 4);
        let c = e.clusters.as_ref().unwrap();
        assert_eq!(
            c.primary().labels,
            c.tsne_kmeans.as_ref().unwrap().labels,
            "with t-SNE the run's clusters are the study's"
        );
        let s = e.scores.unwrap();
        let ari = s.tsne_kmeans.unwrap().ari;
        assert!(ari > 0.9, "ARI {ari}");
        assert!(s.labels.ami.is_some() && s.labels.accuracy.is_some());
    }
}
