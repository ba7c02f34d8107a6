//! Highly variable genes, Seurat's `vst` method (scanpy's `flavor="seurat_v3"`), on raw counts.
//!
//! For each gene: mean `m` and variance `v` over cells (n − 1 denominator). A loess curve
//! (degree 2, span 0.3, tricube weights) of `log10 v` on `log10 m` over the non-constant genes
//! gives the expected variance `v̂ = 10^fit`. Each count is standardised,
//! `z = (c − m)/√v̂`, clipped above at `√n`, and the genes are ranked by `Σ z² / (n − 1)`.
//!
//! The loess is fitted directly at every gene (R's `surface = "direct"`); R and scikit-misc
//! interpolate the surface from a k-d tree by default, so rankings near the cut can differ
//! slightly from Seurat's.

use crate::csr::Csr;
use rayon::prelude::*;

/// Indices of the `n_top` most variable genes, in ascending gene order.
pub fn highly_variable(counts: &Csr<f32>, n_top: usize) -> Vec<usize> {
    let variances = normalized_variances(counts);
    let mut score: Vec<(f64, usize)> = variances.into_iter().zip(0..).collect();
    score.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut top: Vec<usize> = score
        .iter()
        .take(n_top.min(counts.n_cols))
        .map(|s| s.1)
        .collect();
    top.sort_unstable();
    top
}

/// Highly variable genes over batches, as scanpy's `seurat_v3` with `batch_key` (Seurat's
/// `SelectIntegrationFeatures` ranks the other way round): every batch ranks its genes by
/// their normalized variance; a gene's batch count is the number of batches that rank it in
/// their top `n_top`, and its rank the median of those ranks. Genes sorted by median rank
/// (ascending; none, last), then batch count (descending), then index; the first `n_top`,
/// in ascending gene order.
pub fn highly_variable_batched(
    counts: &Csr<f32>,
    batch_of: &[u32],
    n_batches: usize,
    n_top: usize,
) -> Vec<usize> {
    let d = counts.n_cols;
    let mut ranks: Vec<Vec<usize>> = vec![Vec::new(); d];
    for b in 0..n_batches {
        let rows: Vec<usize> = (0..counts.n_rows)
            .filter(|&i| batch_of[i] as usize == b)
            .collect();
        let mut score: Vec<(f64, usize)> = normalized_variances(&counts.select_rows(&rows))
            .into_iter()
            .zip(0..)
            .collect();
        score.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (rank, &(_, g)) in score.iter().enumerate().take(n_top) {
            ranks[g].push(rank);
        }
    }
    let median = |r: &mut Vec<usize>| -> f64 {
        r.sort_unstable();
        match r.len() {
            0 => f64::INFINITY,
            n if n % 2 == 1 => r[n / 2] as f64,
            n => (r[n / 2 - 1] + r[n / 2]) as f64 / 2.0,
        }
    };
    let mut order: Vec<(f64, usize, usize)> = ranks
        .iter_mut()
        .enumerate()
        .map(|(g, r)| (median(r), r.len(), g))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    let mut top: Vec<usize> = order.iter().take(n_top.min(d)).map(|o| o.2).collect();
    top.sort_unstable();
    top
}

/// Each gene's variance after standardising its counts by the loess fit (the module doc):
/// `Σ z² / (n − 1)`; 0 for a constant gene.
fn normalized_variances(counts: &Csr<f32>) -> Vec<f64> {
    let (n, d) = (counts.n_rows as f64, counts.n_cols);
    let moments = counts.column_moments(|v| v as f64);
    let mean: Vec<f64> = (0..d).map(|g| moments.mean(g)).collect();
    let var: Vec<f64> = (0..d).map(|g| moments.variance(g)).collect();
    let varying: Vec<usize> = (0..d).filter(|&g| var[g] > 0.0).collect();
    let x: Vec<f64> = varying.iter().map(|&g| mean[g].log10()).collect();
    let y: Vec<f64> = varying.iter().map(|&g| var[g].log10()).collect();
    let fit = loess(&x, &y, 0.3);
    let mut expected_sd = vec![0.0f64; d];
    for (k, &g) in varying.iter().enumerate() {
        expected_sd[g] = 10f64.powf(fit[k]).sqrt();
    }
    // Σ z² over cells, zeros included: nonzeros one by one, the zeros all at once.
    let vmax = n.sqrt();
    let mut zsum = vec![0.0f64; d];
    let mut nnz = vec![0usize; d];
    for (&g, &v) in counts.indices.iter().zip(&counts.data) {
        let g = g as usize;
        if expected_sd[g] > 0.0 {
            let z = ((v as f64 - mean[g]) / expected_sd[g]).min(vmax);
            zsum[g] += z * z;
        }
        nnz[g] += 1;
    }
    (0..d)
        .map(|g| {
            if expected_sd[g] > 0.0 {
                let z0 = mean[g] / expected_sd[g];
                (zsum[g] + (n - nnz[g] as f64) * z0 * z0) / (n - 1.0)
            } else {
                0.0
            }
        })
        .collect()
}

/// Local quadratic regression of `y` on `x` evaluated at every `x`: for each point the
/// `⌈span·n⌉` nearest points (a window of the sorted order), tricube weights, weighted least
/// squares in `(1, t, t²)` with `t = x − x₀`.
pub fn loess(x: &[f64], y: &[f64], span: f64) -> Vec<f64> {
    let n = x.len();
    if n < 3 {
        return y.to_vec();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();
    let q = ((span * n as f64).ceil() as usize).clamp(3, n);
    let fitted_sorted: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let x0 = xs[i];
            // Slide a window of q points so that it holds the q nearest neighbours of x0.
            let mut lo = i.saturating_sub(q - 1).min(n - q);
            while lo + q < n && (xs[lo + q] - x0).abs() < (x0 - xs[lo]).abs() {
                lo += 1;
            }
            let hi = lo + q;
            let dmax = (x0 - xs[lo]).abs().max((xs[hi - 1] - x0).abs()) * 1.000_001 + 1e-12;
            let mut s = [0.0f64; 5];
            let mut r = [0.0f64; 3];
            for k in lo..hi {
                let t = xs[k] - x0;
                let u = (t.abs() / dmax).min(1.0);
                let w = (1.0 - u * u * u).powi(3);
                let mut tp = w;
                for (p, sp) in s.iter_mut().enumerate() {
                    *sp += tp;
                    if p < 3 {
                        r[p] += tp * ys[k];
                    }
                    tp *= t;
                }
            }
            solve3(
                [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]],
                r,
            )
            .unwrap_or(r[0] / s[0])
        })
        .collect();
    let mut fitted = vec![0.0; n];
    for (k, &i) in order.iter().enumerate() {
        fitted[i] = fitted_sorted[k];
    }
    fitted
}

/// The intercept of a 3×3 symmetric system by Gaussian elimination; `None` if singular.
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<f64> {
    for col in 0..3 {
        let piv = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() < 1e-12 * a[0][0].abs().max(1e-300) {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for row in col + 1..3 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (v, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *v -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let x2 = b[2] / a[2][2];
    let x1 = (b[1] - a[1][2] * x2) / a[1][1];
    Some((b[0] - a[0][1] * x1 - a[0][2] * x2) / a[0][0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loess_reproduces_a_quadratic() {
        let x: Vec<f64> = (0..200).map(|i| i as f64 / 20.0).collect();
        let y: Vec<f64> = x.iter().map(|t| 1.0 + 2.0 * t - 0.3 * t * t).collect();
        for (f, w) in loess(&x, &y, 0.3).iter().zip(&y) {
            assert!((f - w).abs() < 1e-8);
        }
    }

    #[test]
    fn a_gene_with_extra_variance_is_picked() {
        // 40 cells, 6 genes of equal mean; gene 4 is bursty (all counts in few cells).
        let mut m = Csr::with_cols(6);
        for i in 0..40u32 {
            let mut cols = vec![0, 1, 2, 3, 5];
            let mut vals = vec![2.0, 2.0 + (i % 2) as f32, 3.0, 1.0 + (i % 3) as f32, 2.0];
            if i % 10 == 0 {
                cols.insert(4, 4);
                vals.insert(4, 20.0);
            }
            m.push_row(&cols, &vals);
        }
        assert_eq!(highly_variable(&m, 1), vec![4]);
    }
}
