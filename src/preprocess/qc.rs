//! Seurat-style filtering and quality control.
//!
//! 1. Creation filters, as `CreateSeuratObject(min.cells = 3, min.features = 200)`: keep cells
//!    with ≥ `min_genes` detected genes, then genes detected in ≥ `min_cells` of those cells.
//! 2. QC, as the pbmc3k tutorial: keep cells with `min_genes < nFeature < max_genes` and
//!    `percent.mt < max_mito`, where mitochondrial genes are those whose symbol starts with
//!    `MT-` (case-insensitively, which also covers mouse `mt-`). Genes are not filtered again.

use crate::csr::Csr;

/// The QC thresholds.
#[derive(Clone, Debug, PartialEq)]
pub struct QcThresholds {
    /// Cells need more than this many detected genes (and at least this many to be created).
    pub min_genes: usize,
    /// Cells need fewer than this many detected genes.
    pub max_genes: usize,
    /// Cells need a mitochondrial percentage below this.
    pub max_mito: f64,
    /// Genes must be detected in at least this many cells.
    pub min_cells: usize,
}

impl Default for QcThresholds {
    fn default() -> Self {
        QcThresholds {
            min_genes: 200,
            max_genes: 2500,
            max_mito: 5.0,
            min_cells: 3,
        }
    }
}

/// Seurat's per-cell metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct CellMetrics {
    /// `nCount_RNA`: total counts.
    pub n_count: f64,
    /// `nFeature_RNA`: detected genes.
    pub n_feature: usize,
    /// `percent.mt`: 100 × mitochondrial counts / total.
    pub percent_mt: f64,
}

/// True for a mitochondrial gene symbol.
pub fn is_mito(symbol: &str) -> bool {
    symbol.len() >= 3 && symbol[..3].eq_ignore_ascii_case("mt-")
}

/// Metrics of every row of a cells × genes count matrix.
pub fn metrics(m: &Csr<f32>, mito: &[bool]) -> Vec<CellMetrics> {
    (0..m.n_rows)
        .map(|i| {
            let (genes, vals) = m.row(i);
            let mut total = 0.0f64;
            let mut mt = 0.0f64;
            for (&g, &v) in genes.iter().zip(vals) {
                total += v as f64;
                if mito[g as usize] {
                    mt += v as f64;
                }
            }
            CellMetrics {
                n_count: total,
                n_feature: genes.len(),
                percent_mt: if total > 0.0 { 100.0 * mt / total } else { 0.0 },
            }
        })
        .collect()
}

impl CellMetrics {
    /// Whether the cell passes the tutorial's QC.
    pub fn passes(&self, t: &QcThresholds) -> bool {
        self.n_feature > t.min_genes && self.n_feature < t.max_genes && self.percent_mt < t.max_mito
    }
}

/// Number of cells each gene is detected in.
pub fn cells_per_gene(m: &Csr<f32>) -> Vec<usize> {
    cells_per_gene_of(m, 0..m.n_rows)
}

/// [`cells_per_gene`] counted over the rows `rows` only.
pub fn cells_per_gene_of(m: &Csr<f32>, rows: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut n = vec![0usize; m.n_cols];
    for i in rows {
        for &g in m.row(i).0 {
            n[g as usize] += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mito_prefix_is_case_insensitive() {
        assert!(is_mito("MT-CO1") && is_mito("mt-Nd1") && !is_mito("MTOR") && !is_mito("M"));
    }

    #[test]
    fn qc_bounds_are_strict() {
        let t = QcThresholds::default();
        let cell = |n_feature, percent_mt| CellMetrics {
            n_count: 1.0,
            n_feature,
            percent_mt,
        };
        assert!(!cell(200, 1.0).passes(&t) && cell(201, 1.0).passes(&t));
        assert!(!cell(2500, 1.0).passes(&t) && cell(2499, 4.99).passes(&t));
        assert!(!cell(1000, 5.0).passes(&t));
    }
}
