//! `cellvae cluster`: k-means, or Leiden on the kNN graph, of the points of a CSV (codes,
//! PCs, an embedding).

use super::commands::write_clusters;
use crate::analysis::kmeans::{kmeans, KMeansOptions};
use crate::analysis::leiden::{knn_graph, leiden, leiden_k, Iterations, NEIGHBOURS};
use crate::error::{Error, Result};
use crate::io::atomic::ensure_parent;
use crate::io::table;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClusterMethod {
    /// k-means (k-means++ seeding, Lloyd), the lowest inertia of --n-init restarts
    Kmeans,
    /// Leiden on the UMAP-weighted kNN graph; --k bisects the resolution to k clusters
    Leiden,
}

/// Flags of `cellvae cluster`.
#[derive(Args, Debug)]
pub struct ClusterArgs {
    /// CSV of points (barcode first)
    #[arg(long)]
    pub input: PathBuf,
    /// Clustering method
    #[arg(long, value_enum, default_value = "kmeans")]
    pub method: ClusterMethod,
    /// Number of clusters (Leiden: the resolution is bisected until there are k)
    #[arg(long)]
    pub k: Option<usize>,
    /// Leiden: a fixed resolution γ instead of --k
    #[arg(long, conflicts_with = "k")]
    pub resolution: Option<f64>,
    /// Leiden: neighbours per point of the graph, the point itself included
    #[arg(long, default_value_t = NEIGHBOURS)]
    pub neighbors: usize,
    /// k-means restarts; the lowest inertia wins
    #[arg(long, default_value_t = 100)]
    pub n_init: usize,
    /// Seed of the k-means++ seeding, of Leiden's random orders and of the approximate neighbour graph (many cells in many dimensions)
    #[arg(long, default_value_t = crate::train::DEFAULT_SEED)]
    pub seed: u64,
    /// Output CSV (barcode,cluster)
    #[arg(long)]
    pub out: PathBuf,
}

/// `cellvae cluster`: writes the clusters and prints one JSON line (method, clusters, and the
/// resolution Leiden used).
pub fn cluster(a: &ClusterArgs) -> Result<()> {
    ensure_parent(&a.out)?;
    let t = table::read(&a.input)?;
    let n = t.values.nrows();
    let (labels, resolution) = match a.method {
        ClusterMethod::Kmeans => {
            let k =
                a.k.ok_or_else(|| Error::invalid("--method kmeans needs --k"))?;
            let opts = KMeansOptions {
                n_init: a.n_init,
                ..KMeansOptions::new(k, a.seed)
            };
            (kmeans(&t.values, &opts)?.labels, None)
        }
        ClusterMethod::Leiden => {
            if a.neighbors < 2 || a.neighbors > n {
                return Err(Error::invalid(format!(
                    "--neighbors must be between 2 and the number of points ({n})"
                )));
            }
            if t.values.iter().any(|v| !v.is_finite()) {
                return Err(Error::data(format!(
                    "{}: a value is not finite",
                    a.input.display()
                )));
            }
            let g = knn_graph(&t.values, a.neighbors, a.seed);
            match (a.k, a.resolution) {
                (Some(0), _) => return Err(Error::invalid("--k must be at least 1")),
                (Some(k), _) => {
                    let r = leiden_k(&g, k, Iterations::UntilStable, a.seed);
                    if !r.exact {
                        eprintln!(
                            "note: no resolution in [0.01, 5] gave {k} clusters; the nearest count is used"
                        );
                    }
                    (r.labels, Some(r.resolution))
                }
                (None, Some(r)) if r.is_finite() && r > 0.0 => {
                    (leiden(&g, r, Iterations::UntilStable, a.seed), Some(r))
                }
                (None, Some(_)) => {
                    return Err(Error::invalid("--resolution must be a positive number"))
                }
                (None, None) => {
                    return Err(Error::invalid("--method leiden needs --k or --resolution"))
                }
            }
        }
    };
    write_clusters(&a.out, &t.barcodes, &labels)?;
    let clusters = labels.iter().max().map_or(0, |m| m + 1);
    println!(
        "{}",
        serde_json::json!({
            "method": format!("{:?}", a.method).to_lowercase(),
            "clusters": clusters,
            "resolution": resolution,
        })
    );
    Ok(())
}
