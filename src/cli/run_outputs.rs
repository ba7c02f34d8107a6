//! The files of one representation's folder (`write_model`: codes, embeddings, clusters,
//! marker genes, figures, `metrics.json`) and the run's AnnData file. Used by
//! [`super::pipeline`]; the numbers come from [`crate::study`].
//!
//! The clusters these files show (`clusters.csv`, the `.h5ad`'s `<model>_kmeans`, the marker
//! genes, the confusion matrix, the clusters marked on the t-SNE and UMAP) are the run's
//! ([`crate::study::evaluate::Clusters::primary`]): the study's, k-means on the 2-D t-SNE;
//! when t-SNE was skipped (above [`crate::study::evaluate::TSNE_MAX_CELLS`] cells without
//! `--tsne`), k-means on the codes, and the figures' titles say so. Without t-SNE there is
//! no `tsne2d.csv`, `tsne3d.csv`, `tsne2d.png`, `tsne3d.png` nor `X_<model>_tsne`.

use super::commands::{tsne_columns, umap_columns, write_clusters, write_fitted};
use super::markers::write_table;
use super::pipeline::RunArgs;
use crate::analysis::markers::{expression_summary, GeneTest};
use crate::error::Result;
use crate::io::align::CellTypes;
use crate::io::atomic::ensure_dir;
use crate::io::h5ad_stream::{write_h5ad, AnnData, LayerRows};
use crate::io::h5ad_write::Column;
use crate::io::table;
use crate::preprocess::{MarkerInput, Prepared};
use crate::report::confusion::confusion_figure;
use crate::report::dotplot::dot_plot;
use crate::report::plots::{self, Clusters};
use crate::report::summary;
use crate::stage::Stage;
use crate::study::outcome::ModelOutcome;
use crate::study::{ModelRun, StudyOptions};
use std::path::Path;

/// What every representation of one seed's run shares.
pub(super) struct RunContext<'a> {
    pub(super) args: &'a RunArgs,
    /// Where this seed's outputs go.
    pub(super) out: &'a Path,
    /// The prepared input, with the counts and the scaling.
    pub(super) prep: &'a Prepared,
    pub(super) types: Option<&'a CellTypes>,
    /// Number of clusters, when there are labels or `--k`.
    pub(super) k: Option<usize>,
    /// This seed's options.
    pub(super) opts: &'a StudyOptions,
}

/// Writes one representation's folder: its codes (and a network's checkpoint and loss
/// curve), t-SNE and UMAP tables, clusters, marker genes, figures and `metrics.json`.
pub(super) fn write_model(ctx: &RunContext<'_>, r: &ModelRun, o: &ModelOutcome) -> Result<()> {
    let d = &ctx.prep.data;
    let name = r.model.name();
    let dir = ctx.out.join(name);
    ensure_dir(&dir)?;
    match &r.fitted {
        Some(f) => write_fitted(&dir, ctx.prep, f, &ctx.opts.train)?,
        None => table::write(
            &dir.join("latent.csv"),
            &r.codes.columns,
            &d.barcodes,
            &r.codes.values,
        )?,
    }
    let e = &r.evaluation;
    for (file, embedding, dims) in [("tsne2d.csv", &e.tsne2d, 2), ("tsne3d.csv", &e.tsne3d, 3)] {
        if let Some(t) = embedding {
            table::write(&dir.join(file), &tsne_columns(dims), &d.barcodes, &t.coords)?;
        }
    }
    table::write(
        &dir.join("umap.csv"),
        &umap_columns(2),
        &d.barcodes,
        &e.umap,
    )?;
    let clusters = e.clusters.as_ref();
    if let Some(c) = clusters {
        write_clusters(&dir.join("clusters.csv"), &d.barcodes, &c.primary().labels)?;
        write_clusters(&dir.join("leiden.csv"), &d.barcodes, &c.leiden.labels)?;
    }
    if let (Some(c), Some(tests)) = (clusters, &r.markers) {
        let km = c.primary();
        write_markers(&dir, name, ctx.prep.marker_input(), &km.labels, tests)?;
        if let Some(t) = ctx.types {
            confusion_figure(
                &dir.join("confusion.png"),
                &format!("{name}: cell types × clusters ({})", clusters_source(c)),
                &km.labels,
                km.centroids.nrows(),
                &t.ids,
                &t.names,
            )?;
        }
    }
    write_embedding_figures(ctx, r)?;
    if !o.records.is_empty() {
        plots::loss_curves(
            &dir.join("loss.png"),
            &[(name.to_string(), o.records.clone())],
        )?;
    }
    let run_info = serde_json::json!({
        "seed": o.seed, "k": ctx.k, "perplexity": ctx.opts.eval.perplexity, "cells": d.n_cells(),
    });
    summary::write_metrics_json(&dir.join("metrics.json"), o, run_info)
}

/// Where the run's clusters come from, for the figures' titles.
fn clusters_source(c: &crate::study::evaluate::Clusters) -> &'static str {
    match c.tsne_kmeans {
        Some(_) => "k-means on the 2-D t-SNE",
        None => "k-means on the codes, t-SNE skipped",
    }
}

/// The 2-D t-SNE and the UMAP coloured by label, the run's clusters marked, and the 3-D
/// t-SNE's projections (the UMAP alone when t-SNE was skipped).
fn write_embedding_figures(ctx: &RunContext<'_>, r: &ModelRun) -> Result<()> {
    let name = r.model.name();
    let dir = ctx.out.join(name);
    let e = &r.evaluation;
    let km = e.clusters.as_ref().map(|c| c.primary());
    let ct = ctx.types.map(|t| (t.ids.as_slice(), t.names.as_slice()));
    let slots = km.map(|c| plots::cluster_slots(&c.labels, c.centroids.nrows(), ct));
    let width = r.codes.values.ncols();
    if let Some(t) = &e.tsne2d {
        plots::embedding_figure(
            &dir.join("tsne2d.png"),
            &format!("{name}: t-SNE of the {width}-D codes"),
            &t.coords,
            ct,
            km.zip(slots.as_deref()).map(|(c, slots)| Clusters {
                labels: &c.labels,
                centroids: &c.centroids,
                slots,
            }),
        )?;
    }
    // The same clusters, their centres marked where they fall here.
    let umap_centres = km.map(|c| centres(&e.umap, &c.labels, c.centroids.nrows()));
    let from = match e.clusters.as_ref().map(|c| c.tsne_kmeans.is_some()) {
        Some(false) => " (clusters: k-means on the codes)",
        _ => " (clusters from the t-SNE)",
    };
    plots::embedding_figure(
        &dir.join("umap.png"),
        &format!("{name}: UMAP of the {width}-D codes{from}"),
        &e.umap,
        ct,
        km.zip(umap_centres.as_ref())
            .zip(slots.as_deref())
            .map(|((c, centroids), slots)| Clusters {
                labels: &c.labels,
                centroids,
                slots,
            }),
    )?;
    if let Some(t) = &e.tsne3d {
        plots::projections_3d(
            &dir.join("tsne3d.png"),
            &format!("{name}: 3-D t-SNE"),
            &t.coords,
            ct,
        )?;
    }
    match ctx.prep.data.batches.as_ref().filter(|b| b.n_batches() > 1) {
        Some(b) => {
            let ids: Vec<Option<usize>> = b.ids.iter().map(|&i| Some(i as usize)).collect();
            plots::batch_figure(
                &dir.join("umap_batches.png"),
                &format!("{name}: UMAP of the {width}-D codes, batches and cell types"),
                &e.umap,
                (&ids, &b.names),
                ct,
            )
        }
        None => Ok(()),
    }
}

/// Marker genes written per cluster into `markers.csv`, and drawn per cluster in the dot plot.
const MARKERS_WRITTEN: usize = 100;
const MARKERS_DRAWN: usize = 3;

/// Marker genes of the model's clusters: `markers.csv` (the best 100 genes of each cluster)
/// and `markers_dotplot.png` (the best 3 of each).
fn write_markers(
    dir: &Path,
    name: &str,
    (matrix, gene_names): (MarkerInput<'_>, &[String]),
    labels: &[usize],
    tests: &[Vec<GeneTest>],
) -> Result<()> {
    let k = tests.len();
    let groups: Vec<Option<usize>> = labels.iter().map(|&l| Some(l)).collect();
    let cluster_names: Vec<String> = (0..k).map(|c| c.to_string()).collect();
    write_table(
        &dir.join("markers.csv"),
        &cluster_names,
        tests,
        gene_names,
        MARKERS_WRITTEN,
    )?;
    let mut genes: Vec<usize> = Vec::new();
    for group in tests {
        for t in group.iter().take(MARKERS_DRAWN) {
            if !genes.contains(&t.gene) {
                genes.push(t.gene);
            }
        }
    }
    let (mean, detected) = expression_summary(&matrix, &groups, k, &genes);
    let gene_names: Vec<String> = genes.iter().map(|&g| gene_names[g].clone()).collect();
    dot_plot(
        &dir.join("markers_dotplot.png"),
        &format!("{name}: top {MARKERS_DRAWN} marker genes of each cluster"),
        &gene_names,
        &cluster_names,
        &mean,
        &detected,
    )
}

/// The mean position of each cluster's points (`k` rows; a cluster with no point stays at 0).
fn centres(coords: &ndarray::Array2<f64>, labels: &[usize], k: usize) -> ndarray::Array2<f64> {
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
    /// The 2-D t-SNE, when it ran.
    pub tsne: Option<ndarray::Array2<f64>>,
    pub umap: ndarray::Array2<f64>,
    /// The run's clusters ([`crate::study::evaluate::Clusters::primary`]).
    pub clusters: Option<Vec<usize>>,
    /// Leiden(k) on the codes.
    pub leiden: Option<Vec<usize>>,
}

impl From<ModelRun> for Embeddings {
    fn from(r: ModelRun) -> Self {
        let e = r.evaluation;
        let (clusters, leiden) = match e.clusters {
            Some(c) => (Some(c.primary().labels.clone()), Some(c.leiden.labels)),
            None => (None, None),
        };
        Embeddings {
            name: r.model.name().to_string(),
            codes: r.codes.values,
            tsne: e.tsne2d.map(|t| t.coords),
            umap: e.umap,
            clusters,
            leiden,
        }
    }
}

/// `cellvae.h5ad`: the matrix as trained on, the counts when there were counts, QC metrics
/// under scanpy's names, the labels and each model's clusters as categoricals, the gene IDs
/// (and `highly_variable` under `--hvg`), and each
/// model's codes, t-SNE (when it ran) and UMAP in obsm (`X_<model>`, `X_<model>_tsne`,
/// `X_<model>_umap`). Its progress is shown unless `quiet`.
pub(super) fn write_anndata(
    out: &Path,
    prep: &Prepared,
    types: Option<&CellTypes>,
    hvg: bool,
    models: &[Embeddings],
    quiet: bool,
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
    if let Some(b) = &d.batches {
        let batch = b
            .ids
            .iter()
            .map(|&i| Some(b.names[i as usize].clone()))
            .collect();
        obs.push(("batch".into(), Column::Categorical(batch)));
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
        if let Some(t) = &m.tsne {
            obsm.push((format!("X_{}_tsne", m.name), t));
        }
        obsm.push((format!("X_{}_umap", m.name), &m.umap));
    }
    let zero_scores = prep.scaling.as_ref().map(|s| s.zero_scores());
    let counts = prep.counts_layer();
    let anndata = AnnData {
        x: &d.matrix,
        x_shift: zero_scores.as_deref(),
        layers: counts
            .as_ref()
            .map(|c| vec![("counts".to_string(), c as &dyn LayerRows)])
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
    let mut stage = Stage::new((!quiet).then(|| "writing cellvae.h5ad".to_string()));
    write_h5ad(&out.join("cellvae.h5ad"), anndata, &mut stage)
}
