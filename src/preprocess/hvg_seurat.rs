//! Highly variable genes, scanpy's `flavor="seurat"` (Seurat's older `mean.var.plot`), on
//! log-normalized data `x = ln(1 + 1e4·count/total)`
//! (`docs/math.md#9-gene-selection-and-scaling`).
//!
//! Per gene, on `e = expm1(x)`: mean `m` and variance `v` (n − 1 denominator); dispersion
//! `D = ln(v/m)` (undefined where `v = 0`); `M = ln(1 + m)`. The range of `M` is cut into 20
//! equal-width bins (pandas `cut`: right-closed, the lowest edge moved down by 0.1 % of the
//! range), and `D` is z-scored within its bin: `z = (D − mean_bin)/sd_bin`. A bin holding one
//! gene gives it `z = 1` (scanpy sets that bin's mean to 0 and its sd to the gene's `D`). The
//! `N`-th highest `z` is the cut-off and every gene at or above it is kept, so ties can keep a
//! few more than `N`.

use crate::csr::Csr;

/// Number of mean bins.
const BINS: usize = 20;

/// Indices of the most variable genes by binned, normalized dispersion (at least `n_top`
/// where that many genes have a dispersion; more on ties), in ascending gene order.
pub fn highly_variable_seurat(lognorm: &Csr<f32>, n_top: usize) -> Vec<usize> {
    top_by_dispersion(&normalized_dispersions(lognorm), n_top)
}

/// Highly variable genes over batches, as scanpy's `seurat` flavor with `batch_key`: every
/// batch computes the normalized dispersions of the genes it detects (the bins over those
/// genes alone) and marks its top `n_top`; a gene's batch count is the number of batches that
/// mark it, and its dispersion the mean of its batches' (0 in a batch that does not detect
/// it; undefined ones left out). Genes sorted by batch count, then mean dispersion (both
/// descending; undefined last), then index; the first `n_top`, in ascending gene order.
pub fn highly_variable_seurat_batched(
    lognorm: &Csr<f32>,
    batch_of: &[u32],
    n_batches: usize,
    n_top: usize,
) -> Vec<usize> {
    let d = lognorm.n_cols;
    let mut marked = vec![0usize; d];
    let (mut sum, mut defined) = (vec![0.0f64; d], vec![0usize; d]);
    for b in 0..n_batches {
        let rows: Vec<usize> = (0..lognorm.n_rows)
            .filter(|&i| batch_of[i] as usize == b)
            .collect();
        let cells = lognorm.select_rows(&rows);
        let mut detected = vec![false; d];
        cells
            .indices
            .iter()
            .for_each(|&g| detected[g as usize] = true);
        let genes: Vec<usize> = (0..d).filter(|&g| detected[g]).collect();
        let mut new_index = vec![None; d];
        for (k, &g) in genes.iter().enumerate() {
            new_index[g] = Some(k as u32);
        }
        let z = normalized_dispersions(&cells.select_columns(&new_index, genes.len()));
        for k in top_by_dispersion(&z, n_top) {
            marked[genes[k]] += 1;
        }
        for g in 0..d {
            // An undetected gene counts 0 (scanpy fills it so); an undefined one not at all.
            let v = new_index[g].map_or(0.0, |k| z[k as usize]);
            if v.is_finite() {
                sum[g] += v;
                defined[g] += 1;
            }
        }
    }
    let mean = |g: usize| {
        if defined[g] == 0 {
            f64::NEG_INFINITY
        } else {
            sum[g] / defined[g] as f64
        }
    };
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| {
        marked[b]
            .cmp(&marked[a])
            .then(mean(b).total_cmp(&mean(a)))
            .then(a.cmp(&b))
    });
    let mut top: Vec<usize> = order.into_iter().take(n_top.min(d)).collect();
    top.sort_unstable();
    top
}

/// Genes whose normalized dispersion reaches the `n_top`-th highest (at least `n_top` when
/// that many are defined; ties all in).
fn top_by_dispersion(z: &[f64], n_top: usize) -> Vec<usize> {
    let mut ranked: Vec<f64> = z.iter().copied().filter(|v| v.is_finite()).collect();
    if ranked.is_empty() || n_top == 0 {
        return Vec::new();
    }
    ranked.sort_by(|a, b| b.total_cmp(a));
    let cut = ranked[n_top.min(ranked.len()) - 1];
    (0..z.len()).filter(|&g| z[g] >= cut).collect()
}

/// The normalized dispersion `z` of every gene (NaN where the dispersion is undefined).
pub fn normalized_dispersions(lognorm: &Csr<f32>) -> Vec<f64> {
    let d = lognorm.n_cols;
    let moments = lognorm.column_moments(|v| (v as f64).exp_m1());
    let mut dispersion = vec![f64::NAN; d];
    let mut log_mean = vec![0.0f64; d];
    for g in 0..d {
        let (m, v) = (moments.mean(g), moments.variance(g));
        let m = if m == 0.0 { 1e-12 } else { m };
        if v > 0.0 {
            dispersion[g] = (v / m).ln();
        }
        log_mean[g] = m.ln_1p();
    }
    let bin = mean_bins(&log_mean);
    // Per bin: mean and sd (n − 1) of the defined dispersions.
    let mut count = [0usize; BINS];
    let mut total = [0.0f64; BINS];
    for g in (0..d).filter(|&g| dispersion[g].is_finite()) {
        count[bin[g]] += 1;
        total[bin[g]] += dispersion[g];
    }
    let mean: Vec<f64> = (0..BINS).map(|b| total[b] / count[b] as f64).collect();
    let mut square = [0.0f64; BINS];
    for g in (0..d).filter(|&g| dispersion[g].is_finite()) {
        square[bin[g]] += (dispersion[g] - mean[bin[g]]).powi(2);
    }
    (0..d)
        .map(|g| {
            let b = bin[g];
            match count[b] {
                0 => f64::NAN,
                // scanpy: mean 0, sd = D, so z = D/D (1, or NaN where D is NaN or 0).
                1 if dispersion[g].is_finite() && dispersion[g] != 0.0 => 1.0,
                1 => f64::NAN,
                c => (dispersion[g] - mean[b]) / (square[b] / (c - 1) as f64).sqrt(),
            }
        })
        .collect()
}

/// The bin of each value among `BINS` equal-width, right-closed bins over their range, the
/// lowest edge moved down by 0.1 % of the range so that the minimum falls in the first bin.
fn mean_bins(values: &[f64]) -> Vec<usize> {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![0; values.len()];
    }
    let mut edges: Vec<f64> = (0..=BINS)
        .map(|k| lo + (hi - lo) * k as f64 / BINS as f64)
        .collect();
    edges[0] -= (hi - lo) * 0.001;
    values
        .iter()
        .map(|&v| {
            // The first edge at or above v closes v's bin: (edges[b], edges[b + 1]].
            let above = edges[1..].partition_point(|&e| e < v);
            above.min(BINS - 1)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_right_closed_and_cover_the_range() {
        let v: Vec<f64> = (0..=20).map(|k| k as f64).collect();
        let b = mean_bins(&v);
        assert_eq!(b[0], 0);
        assert_eq!(b[1], 0, "1.0 closes the first bin (0, 1]");
        assert_eq!(b[2], 1);
        assert_eq!(b[20], 19);
    }

    #[test]
    fn an_overdispersed_gene_wins_within_its_bin() {
        // 20 cells. Genes 0–4 have expm1 values averaging 2 (one bin): genes 0–3 alternate
        // 2 ± a, gene 4 is 20 in two cells and 0 elsewhere. Gene 5 is never detected; gene 6,
        // averaging 100, widens the range so the first five share the lowest bin.
        let spreads = [0.5f64, 1.0, 1.5, 0.2];
        let mut m = Csr::with_cols(7);
        for i in 0..20u32 {
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            let mut e: Vec<f64> = spreads.iter().map(|a| 2.0 + sign * a).collect();
            e.push(if i % 10 == 0 { 20.0 } else { 0.0 });
            e.push(0.0);
            e.push(100.0 + sign);
            let (cols, vals): (Vec<u32>, Vec<f32>) = e
                .iter()
                .enumerate()
                .filter(|(_, &v)| v > 0.0)
                .map(|(g, &v)| (g as u32, v.ln_1p() as f32))
                .unzip();
            m.push_row(&cols, &vals);
        }
        assert_eq!(highly_variable_seurat(&m, 1), vec![4]);
        let z = normalized_dispersions(&m);
        assert!(z[5].is_nan(), "an undetected gene has no dispersion");
        assert!((z[6] - 1.0).abs() < 1e-12, "alone in its bin");
        let mean: f64 = z[..5].iter().sum::<f64>() / 5.0;
        assert!(mean.abs() < 1e-5, "z-scored within the bin: {z:?}");
    }

    #[test]
    fn a_lone_gene_in_its_bin_scores_one() {
        // Four genes with similar low means, one far above them alone in the top bin.
        let mut m = Csr::with_cols(5);
        for i in 0..12u32 {
            let j = (i % 4) as f32;
            m.push_row(
                &[0, 1, 2, 3, 4],
                &[
                    0.1 + 0.01 * j,
                    0.12,
                    0.1 + 0.02 * j,
                    0.11 + 0.005 * j,
                    5.0 + j,
                ],
            );
        }
        let z = normalized_dispersions(&m);
        assert!((z[4] - 1.0).abs() < 1e-12, "{z:?}");
    }
}
