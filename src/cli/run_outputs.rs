//! The files and scores `cellvae run` adds to the study's: each model's marker genes and dot
//! plot, the extra label scores, and the run's AnnData file. Used by [`super::pipeline`].

use super::markers::write_table;
use crate::analysis::label_scores::{ami, knn_purity, matched_accuracy, silhouette};
use crate::analysis::markers::{expression_summary, rank_genes};
use crate::analysis::metrics::{scores, Scores};
use crate::error::Result;
use crate::io::align::CellTypes;
use crate::io::h5ad_write::{write_h5ad, AnnData, Column};
use crate::io::Dataset;
use crate::preprocess::Prepared;
use crate::report::dotplot::dot_plot;
use crate::report::summary::MoreScores;
use std::path::Path;

/// Scores of `clusters` against the labelled cells.
pub(super) fn score_against(types: &CellTypes, clusters: &[usize]) -> Scores {
    let (t, p): (Vec<usize>, Vec<usize>) = types
        .ids
        .iter()
        .zip(clusters)
        .filter_map(|(t, &c)| t.map(|t| (t, c)))
        .unzip();
    scores(&t, &p)
}

/// Marker genes of the model's clusters: `markers.csv` (the best 100 genes of each cluster)
/// and `markers_dotplot.png` (the best 3 of each).
pub(super) fn write_markers(
    dir: &Path,
    name: &str,
    d: &Dataset,
    labels: &[usize],
    k: usize,
) -> Result<()> {
    let groups: Vec<Option<usize>> = labels.iter().map(|&l| Some(l)).collect();
    let tests = rank_genes(&d.matrix, &groups, k);
    let cluster_names: Vec<String> = (0..k).map(|c| c.to_string()).collect();
    write_table(
        &dir.join("markers.csv"),
        &cluster_names,
        &tests,
        &d.gene_names,
        100,
    )?;
    let mut genes: Vec<usize> = Vec::new();
    for group in &tests {
        for t in group.iter().take(3) {
            if !genes.contains(&t.gene) {
                genes.push(t.gene);
            }
        }
    }
    let (mean, detected) = expression_summary(&d.matrix, &groups, k, &genes);
    let gene_names: Vec<String> = genes.iter().map(|&g| d.gene_names[g].clone()).collect();
    dot_plot(
        &dir.join("markers_dotplot.png"),
        &format!("{name}: top 3 marker genes of each cluster"),
        &gene_names,
        &cluster_names,
        &mean,
        &detected,
    )
}

/// The mean position of each cluster's points (`k` rows; a cluster with no point stays at 0).
pub(super) fn centres(
    coords: &ndarray::Array2<f64>,
    labels: &[usize],
    k: usize,
) -> ndarray::Array2<f64> {
    let mut sum = ndarray::Array2::<f64>::zeros((k, coords.ncols()));
    let mut count = vec![0usize; k];
    for (row, &l) in coords.rows().into_iter().zip(labels) {
        sum.row_mut(l).scaled_add(1.0, &row);
        count[l] += 1;
    }
    for (mut row, &c) in sum.rows_mut().into_iter().zip(&count) {
        row /= c.max(1) as f64;
    }
    sum
}

/// One model's per-cell results, for the run's `.h5ad`.
pub(super) struct Embeddings {
    pub name: String,
    pub codes: ndarray::Array2<f64>,
    pub tsne: ndarray::Array2<f64>,
    pub umap: ndarray::Array2<f64>,
    pub clusters: Option<Vec<usize>>,
    /// Leiden(k) on the codes.
    pub leiden: Option<Vec<usize>>,
}

/// `cellvae.h5ad`: the matrix as trained on, the counts when there were counts, QC metrics
/// under scanpy's names, the labels and each model's clusters as categoricals, the gene IDs
/// (and `highly_variable` under `--hvg`), and each
/// model's codes, t-SNE and UMAP in obsm (`X_<model>`, `X_<model>_tsne`, `X_<model>_umap`).
pub(super) fn write_anndata(
    out: &Path,
    prep: &Prepared,
    types: Option<&CellTypes>,
    hvg: bool,
    models: &[Embeddings],
) -> Result<()> {
    let d = &prep.data;
    let mut obs: Vec<(String, Column)> = Vec::new();
    let qc: std::collections::HashMap<&str, &crate::preprocess::QcRecord> =
        prep.qc.iter().map(|r| (r.barcode.as_str(), r)).collect();
    if !qc.is_empty() && d.barcodes.iter().all(|b| qc.contains_key(b.as_str())) {
        let metric = |f: &dyn Fn(&crate::preprocess::QcRecord) -> f64| {
            Column::Numeric(d.barcodes.iter().map(|b| f(qc[b.as_str()])).collect())
        };
        obs.push((
            "n_genes_by_counts".into(),
            metric(&|r| r.metrics.n_feature as f64),
        ));
        obs.push(("total_counts".into(), metric(&|r| r.metrics.n_count)));
        obs.push(("pct_counts_mt".into(), metric(&|r| r.metrics.percent_mt)));
    }
    if let Some(t) = types {
        let labels = t
            .ids
            .iter()
            .map(|i| i.map(|i| t.names[i].clone()))
            .collect();
        obs.push(("labels".into(), Column::Categorical(labels)));
    }
    for m in models {
        if let Some(c) = &m.clusters {
            let values = c.iter().map(|c| Some(c.to_string())).collect();
            obs.push((format!("{}_kmeans", m.name), Column::Categorical(values)));
        }
        if let Some(c) = &m.leiden {
            let values = c.iter().map(|c| Some(c.to_string())).collect();
            obs.push((format!("{}_leiden", m.name), Column::Categorical(values)));
        }
    }
    let mut obsm = Vec::new();
    for m in models {
        obsm.push((format!("X_{}", m.name), &m.codes));
        obsm.push((format!("X_{}_tsne", m.name), &m.tsne));
        obsm.push((format!("X_{}_umap", m.name), &m.umap));
    }
    let anndata = AnnData {
        x: &d.matrix,
        layers: prep
            .counts
            .as_ref()
            .map(|c| vec![("counts".to_string(), c)])
            .unwrap_or_default(),
        obs_names: &d.barcodes,
        obs,
        var_names: &d.gene_names,
        var: {
            let mut var = vec![("gene_ids".into(), Column::Strings(d.gene_ids.clone()))];
            if hvg {
                // X holds only the selected genes, so every one of them is highly variable.
                var.push((
                    "highly_variable".into(),
                    Column::Bool(vec![true; d.n_genes()]),
                ));
            }
            var
        },
        obsm,
    };
    write_h5ad(&out.join("cellvae.h5ad"), &anndata)
}

/// AMI and matched accuracy of `clusters`, and the labels' silhouette and kNN purity (k = 15)
/// in `codes`, over the labelled cells.
pub(super) fn more_scores(
    types: &CellTypes,
    clusters: &[usize],
    codes: &ndarray::Array2<f64>,
    latent_kmeans_nmi: f64,
) -> MoreScores {
    let labelled: Vec<usize> = (0..types.ids.len())
        .filter(|&i| types.ids[i].is_some())
        .collect();
    let truth: Vec<usize> = labelled
        .iter()
        .map(|&i| types.ids[i].expect("kept"))
        .collect();
    let pred: Vec<usize> = labelled.iter().map(|&i| clusters[i]).collect();
    let x = codes.select(ndarray::Axis(0), &labelled);
    MoreScores {
        ami: ami(&truth, &pred),
        accuracy: matched_accuracy(&truth, &pred),
        latent_kmeans_nmi,
        silhouette: silhouette(&x, &truth),
        knn_purity: knn_purity(&x, &truth, 15),
    }
}
