//! `cellvae evaluate`: any representation (another tool's latent space, corrected PCs)
//! through the run's protocols and scores, the same code as `run` applies to its own models
//! ([`crate::study::evaluate::evaluate_codes`]): t-SNE and UMAP, k-means on each, Leiden(k),
//! every label score and, with batches, the integration scores. One JSON object on stdout.
//! Above [`crate::study::evaluate::TSNE_MAX_CELLS`] cells t-SNE is skipped unless `--tsne`
//! is given: then `tsne_kmeans` is null and `tsne_skipped` says why.

use crate::error::{Error, Result};
use crate::io::align::cell_types;
use crate::io::batches::CellBatches;
use crate::io::{hdf5, labels, table};
use crate::study::evaluate::{evaluate_codes, EvalOptions, TsneWhen};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};

/// Flags of `cellvae evaluate`.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// CSV of codes (barcode first)
    #[arg(long)]
    pub input: PathBuf,
    /// An .h5ad whose obs holds the labels and batches of the cells (only obs is read)
    #[arg(long, value_name = "H5AD")]
    pub obs: Option<PathBuf>,
    /// Labels CSV (barcode first)
    #[arg(long, conflicts_with = "labels_from_obs")]
    pub labels: Option<PathBuf>,
    /// The obs column of --obs that holds the labels
    #[arg(long, value_name = "COLUMN", requires = "obs")]
    pub labels_from_obs: Option<String>,
    /// CSV of barcode,batch
    #[arg(long, conflicts_with = "batch_key")]
    pub batches: Option<PathBuf>,
    /// The obs column of --obs that holds the batches
    #[arg(long, value_name = "COLUMN", requires = "obs")]
    pub batch_key: Option<String>,
    /// Number of clusters [default: the number of labelled types]
    #[arg(long)]
    pub k: Option<usize>,
    /// Seed of t-SNE, UMAP, k-means and Leiden
    #[arg(long, default_value_t = crate::train::DEFAULT_SEED)]
    pub seed: u64,
    /// Run t-SNE (and k-means on it) at any number of cells, not only up to 50,000
    #[arg(long)]
    pub tsne: bool,
}

/// Labels or batches read from a CSV or an obs column, as the run reads them.
fn per_cell(
    csv: &Option<PathBuf>,
    obs: (&Option<PathBuf>, &Option<String>),
) -> Result<Option<(PathBuf, labels::Labels)>> {
    match (csv, obs) {
        (Some(p), _) => Ok(Some((p.clone(), labels::read(p, None)?))),
        (None, (Some(file), Some(column))) => {
            Ok(Some((file.clone(), hdf5::read_h5ad_labels(file, column)?)))
        }
        _ => Ok(None),
    }
}

/// `cellvae evaluate`.
pub fn evaluate(a: &EvaluateArgs, quiet: bool) -> Result<()> {
    let t = table::read(&a.input)?;
    let n = t.barcodes.len();
    let types = match per_cell(&a.labels, (&a.obs, &a.labels_from_obs))? {
        Some((path, l)) => Some(cell_types(&l, &t.barcodes).ok_or_else(|| {
            Error::data(format!(
                "{}: no label matches a cell of {}",
                path.display(),
                a.input.display()
            ))
        })?),
        None => None,
    };
    let batches = match per_cell(&a.batches, (&a.obs, &a.batch_key))? {
        Some((path, l)) => Some(CellBatches::from_labels(&l, &t.barcodes, &path)?),
        None => None,
    };
    let k = a.k.or(types.as_ref().map(|t| t.names.len()));
    if k == Some(0) || k.is_some_and(|k| k > n) {
        return Err(Error::invalid(format!(
            "--k must be between 1 and the number of cells ({n})"
        )));
    }
    let opts = EvalOptions {
        tsne: if a.tsne {
            TsneWhen::Always
        } else {
            TsneWhen::Auto
        },
        ..EvalOptions::new(a.seed)
    };
    if opts.perplexity.is_nan() || opts.perplexity >= n as f64 {
        return Err(Error::invalid(format!(
            "{}: {n} cells are too few for t-SNE's perplexity {}",
            a.input.display(),
            opts.perplexity
        )));
    }
    let started = std::time::Instant::now();
    let e = evaluate_codes(&t.values, types.as_ref(), batches.as_ref(), k, &opts)?;
    if !quiet {
        eprintln!(
            "evaluated {} ({n} cells × {} dimensions) in {:.1}s",
            display(&a.input),
            t.values.ncols(),
            started.elapsed().as_secs_f64()
        );
    }
    let scores = |s: crate::analysis::metrics::Scores| {
        json!({"nmi": s.nmi_geometric, "ari": s.ari, "homogeneity": s.homogeneity,
               "completeness": s.completeness})
    };
    let mut v = json!({
        "cells": n,
        "k": k,
        "active_units": e.active_units,
        "leiden_resolution": e.clusters.as_ref().map(|c| c.leiden.resolution),
    });
    if let Some(why) = opts.tsne_skipped(n) {
        v["tsne_skipped"] = why.into();
    }
    if let Some(s) = e.scores {
        v["tsne_kmeans"] = s.tsne_kmeans.map_or(serde_json::Value::Null, scores);
        v["codes_kmeans"] = scores(s.codes_kmeans);
        v["leiden"] = scores(s.leiden);
        v["silhouette"] = s.labels.silhouette.into();
        if s.labels.silhouette_cells < s.codes_kmeans.n {
            v["silhouette_cells"] = s.labels.silhouette_cells.into();
        }
        v["knn_purity"] = s.labels.knn_purity.into();
    }
    if let Some(i) = e.integration {
        v["integration"] = json!({
            "batch_asw": i.batch_asw, "ilisi": i.ilisi, "clisi": i.clisi,
            "graph_connectivity": i.graph_connectivity, "kbet": i.kbet,
            "sampled_cells": i.sampled_cells,
        });
    }
    println!("{v}");
    Ok(())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
