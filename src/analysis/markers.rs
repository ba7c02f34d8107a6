//! Marker genes: for each cluster, every gene ranked by a Wilcoxon rank-sum test of the
//! cluster's cells against all other cells (scanpy's `rank_genes_groups(method="wilcoxon")`
//! with `tie_correct=True`, and its output columns).
//!
//! For gene `g`, rank all `N` cells' values (ties get their average rank). For a group of
//! `n₁` cells against the `n₂ = N − n₁` others, with `R₁` the sum of the group's ranks:
//!
//! - score `z = (R₁ − n₁(N + 1)/2) / σ`, `σ² = n₁n₂(N + 1)/12 · (1 − Σ_t (t³ − t)/(N³ − N))`,
//!   the sum over each run of `t` tied values (the zeros are one such run);
//! - two-sided p-value `p = 2Φ(−|z|) = erfc(|z|/√2)`;
//! - Benjamini–Hochberg over all genes of the group: `p_adj(i) = min_{j ≥ i} p_(j)·m/j`,
//!   capped at 1, with `p_(1) ≤ … ≤ p_(m)`;
//! - log fold change as scanpy computes it on log1p data: `log₂((e^{x̄₁} − 1 + 10⁻⁹) /
//!   (e^{x̄₂} − 1 + 10⁻⁹))`, `x̄` the mean of the (log-normalized) values.
//!
//! Each gene needs only its nonzeros sorted: the zeros form one tied run whose average rank is
//! known from its length, so a gene costs `O(nnz log nnz)`. Genes run in parallel; every
//! number is computed by one task in a fixed order, so the result does not depend on threads.

use crate::csr::{Csc, Rows};
use crate::stage::Stage;
use rayon::prelude::*;

/// One gene of one group.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneTest {
    /// Column of the gene in the data.
    pub gene: usize,
    pub score: f64,
    pub log_fold_change: f64,
    pub pval: f64,
    pub pval_adj: f64,
}

/// Every gene tested for each group `0..n_groups`, highest score first (ties by gene). Cells
/// whose group is `None` are left out of every test.
pub fn rank_genes(x: &impl Rows, groups: &[Option<usize>], n_groups: usize) -> Vec<Vec<GeneTest>> {
    rank_genes_with(x, groups, n_groups, &mut Stage::silent())
}

/// [`rank_genes`], showing its bands of genes on `stage`.
pub fn rank_genes_with(
    x: &impl Rows,
    groups: &[Option<usize>],
    n_groups: usize,
    stage: &mut Stage,
) -> Vec<Vec<GeneTest>> {
    assert_eq!(groups.len(), x.n_rows(), "one group per cell");
    // Keep only the grouped cells.
    let kept: Vec<usize> = (0..x.n_rows()).filter(|&i| groups[i].is_some()).collect();
    let group: Vec<usize> = kept.iter().map(|&i| groups[i].expect("kept")).collect();
    let mut sizes = vec![0usize; n_groups];
    group.iter().for_each(|&g| sizes[g] += 1);
    let n = kept.len();
    // Per gene: per group (z, log fold change, p). A band of genes at a time is transposed
    // (its nonzeros by gene, cells ascending), so that a million cells' matrix is never held
    // twice.
    let mut per_gene: Vec<Vec<(f64, f64, f64)>> = Vec::with_capacity(x.n_cols());
    stage.begin(x.n_cols().div_ceil(GENE_BAND), "gene band");
    for band in (0..x.n_cols()).step_by(GENE_BAND) {
        stage.step(band / GENE_BAND);
        let genes = band..(band + GENE_BAND).min(x.n_cols());
        let xt = transpose_band(x, &kept, genes.clone());
        per_gene.par_extend(genes.into_par_iter().map(|j| {
            let (a, b) = (xt.colptr[j - band], xt.colptr[j - band + 1]);
            test_gene(&xt.rows[a..b], &xt.data[a..b], &group, &sizes, n)
        }));
    }
    (0..n_groups)
        .map(|k| {
            let pvals: Vec<f64> = per_gene.iter().map(|g| g[k].2).collect();
            let adjusted = benjamini_hochberg(&pvals);
            let mut tests: Vec<GeneTest> = per_gene
                .iter()
                .enumerate()
                .map(|(gene, g)| GeneTest {
                    gene,
                    score: g[k].0,
                    log_fold_change: g[k].1,
                    pval: g[k].2,
                    pval_adj: adjusted[gene],
                })
                .collect();
            tests.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.gene.cmp(&b.gene)));
            tests
        })
        .collect()
}

/// Genes transposed at a time by [`rank_genes`].
const GENE_BAND: usize = 1024;

/// The nonzeros of columns `genes` of the rows `kept` of `x`, by column (`colptr` relative to
/// `genes.start`), with rows numbered by their position in `kept`, ascending.
fn transpose_band(x: &impl Rows, kept: &[usize], genes: std::ops::Range<usize>) -> Csc<f32> {
    let (lo, hi) = (genes.start as u32, genes.end as u32);
    let mut xt = Csc::default();
    let mut count = vec![0usize; genes.len() + 1];
    for &i in kept {
        x.for_each_in(i, lo, hi, |g, _| count[(g - lo) as usize + 1] += 1);
    }
    for j in 0..genes.len() {
        count[j + 1] += count[j];
    }
    xt.n_rows = kept.len();
    xt.rows = vec![0; count[genes.len()]];
    xt.data = vec![0.0; count[genes.len()]];
    let mut next = count.clone();
    for (p, &i) in kept.iter().enumerate() {
        x.for_each_in(i, lo, hi, |g, v| {
            let slot = &mut next[(g - lo) as usize];
            xt.rows[*slot] = p as u32;
            xt.data[*slot] = v;
            *slot += 1;
        });
    }
    xt.colptr = count;
    xt
}

/// The tests of one gene, given its nonzeros (`rows` into `group`, `vals`), for every group.
fn test_gene(
    rows: &[u32],
    vals: &[f32],
    group: &[usize],
    sizes: &[usize],
    n: usize,
) -> Vec<(f64, f64, f64)> {
    let n_groups = sizes.len();
    let nf = n as f64;
    // Sort the nonzeros; the zeros sit between the negatives and the positives.
    let mut order: Vec<usize> = (0..vals.len()).collect();
    order.sort_by(|&a, &b| vals[a].total_cmp(&vals[b]));
    let negatives = order.iter().take_while(|&&k| vals[k] < 0.0).count();
    let zeros = n - vals.len();
    let mut rank_sum = vec![0.0f64; n_groups];
    let mut value_sum = vec![0.0f64; n_groups];
    let mut nonzero_count = vec![0usize; n_groups];
    let mut ties = 0.0f64; // Σ (t³ − t)
                           // Runs of tied values in rank order: the negatives, the zeros (one run, no stored
                           // members), the positives. A run of `len` values starting after `start` ranks shares the
                           // mean rank `start + (len + 1)/2`.
    let same = |a: &usize, b: &usize| vals[*a] == vals[*b];
    let (below, above) = order.split_at(negatives);
    let runs = below
        .chunk_by(same)
        .map(|r| (r, r.len()))
        .chain((zeros > 0).then_some((&[][..], zeros)))
        .chain(above.chunk_by(same).map(|r| (r, r.len())));
    let mut start = 0usize;
    for (members, len) in runs {
        let avg = start as f64 + (len as f64 + 1.0) / 2.0;
        for &k in members {
            rank_sum[group[rows[k] as usize]] += avg;
        }
        let t = len as f64;
        ties += t * t * t - t;
        start += len;
    }
    for (&r, &v) in rows.iter().zip(vals) {
        let g = group[r as usize];
        value_sum[g] += v as f64;
        nonzero_count[g] += 1;
    }
    let zero_rank = negatives as f64 + (zeros as f64 + 1.0) / 2.0;
    let total_sum: f64 = value_sum.iter().sum();
    let tie_factor = if n > 1 {
        1.0 - ties / (nf * nf * nf - nf)
    } else {
        1.0
    };
    (0..n_groups)
        .map(|g| {
            let (n1, n2) = (sizes[g] as f64, nf - sizes[g] as f64);
            let r1 = rank_sum[g] + (sizes[g] - nonzero_count[g]) as f64 * zero_rank;
            let sigma = (n1 * n2 * (nf + 1.0) / 12.0 * tie_factor).sqrt();
            let z = if sigma > 0.0 {
                (r1 - n1 * (nf + 1.0) / 2.0) / sigma
            } else {
                0.0
            };
            let mean_in = if n1 > 0.0 { value_sum[g] / n1 } else { 0.0 };
            let mean_out = if n2 > 0.0 {
                (total_sum - value_sum[g]) / n2
            } else {
                0.0
            };
            let lfc = ((mean_in.exp_m1() + 1e-9) / (mean_out.exp_m1() + 1e-9)).log2();
            (z, lfc, erfc(z.abs() / std::f64::consts::SQRT_2))
        })
        .collect()
}

/// For each of `genes` (rows) and each group (columns): the mean value over the group's cells
/// and the share of them in which the gene is nonzero. Cells whose group is `None` are left out.
pub fn expression_summary(
    x: &impl Rows,
    groups: &[Option<usize>],
    n_groups: usize,
    genes: &[usize],
) -> (ndarray::Array2<f64>, ndarray::Array2<f64>) {
    let mut sum = ndarray::Array2::<f64>::zeros((genes.len(), n_groups));
    let mut nonzero = ndarray::Array2::<f64>::zeros((genes.len(), n_groups));
    let mut size = vec![0usize; n_groups];
    for (i, g) in groups.iter().enumerate() {
        let Some(g) = *g else { continue };
        size[g] += 1;
        for (r, &j) in genes.iter().enumerate() {
            x.for_each_in(i, j as u32, j as u32 + 1, |_, v| {
                sum[[r, g]] += v as f64;
                nonzero[[r, g]] += (v != 0.0) as u8 as f64;
            });
        }
    }
    for (g, &count) in size.iter().enumerate() {
        let n = count.max(1) as f64;
        sum.column_mut(g).mapv_inplace(|v| v / n);
        nonzero.column_mut(g).mapv_inplace(|v| v / n);
    }
    (sum, nonzero)
}

/// Benjamini–Hochberg adjusted p-values, in the input's order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let mut out = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        out[i] = running.min(1.0);
    }
    out
}

/// The complementary error function, to about 1e-15 relative: the Taylor series of `erf`
/// below 1 (where `erfc > 0.15`, so `1 − erf` loses little), a continued fraction (evaluated
/// by Lentz's method) above.
pub fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 1.0 {
        // erf(x) = 2/√π Σ (−1)ⁿ x^{2n+1} / (n! (2n + 1))
        let (mut term, mut sum) = (x, x);
        for n in 1..200 {
            term *= -x * x / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        return 1.0 - 2.0 / std::f64::consts::PI.sqrt() * sum;
    }
    // erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
    let tiny = 1e-300;
    let mut f = x;
    let (mut c, mut d) = (x, 0.0f64);
    for n in 1..5000 {
        let a = n as f64 / 2.0;
        d = x + a * d;
        d = if d.abs() < tiny { tiny } else { d };
        c = x + a / c;
        c = if c.abs() < tiny { tiny } else { c };
        d = 1.0 / d;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::Csr;
    use ndarray::array;

    /// Values from scipy 1.17.1: `scipy.special.erfc(x)`.
    #[test]
    #[allow(clippy::excessive_precision)]
    fn erfc_matches_scipy() {
        let cases = [
            (0.0, 1.0),
            (0.3, 0.6713732405408726),
            (1.0, 0.15729920705028516),
            (1.9, 0.007209570764742531),
            (2.0, 0.004677734981047266),
            (2.5, 0.00040695201744495886),
            (4.0, 1.541725790028002e-08),
            (7.5, 2.7766493860305694e-26),
            (12.0, 1.3562611692059047e-64),
            (26.0, 5.663192408856145e-296),
        ];
        for (x, want) in cases {
            let got = erfc(x);
            assert!(
                (got - want).abs() <= 1e-14 * want,
                "erfc({x}) = {got}, scipy {want}"
            );
        }
    }

    /// scanpy 1.11.5, `sc.tl.rank_genes_groups(adata, "g", method="wilcoxon",
    /// tie_correct=True)` then `sc.get.rank_genes_groups_df(adata, None)` on this matrix (zeros,
    /// ties within and across groups, one gene absent from a group). scanpy stores scores and
    /// log fold changes in float32, so those agree to 1e-6; the p-values to 1e-12.
    #[test]
    #[allow(clippy::excessive_precision)]
    fn matches_scanpy_wilcoxon() {
        let x = array![
            [0.0f32, 1.2, 0.0, 3.0],
            [0.5, 1.2, 0.0, 0.0],
            [0.0, 0.0, 2.0, 3.0],
            [1.5, 0.7, 0.0, 0.0],
            [0.0, 1.2, 0.0, 1.0],
            [2.5, 0.0, 0.3, 0.0],
            [0.5, 0.0, 0.0, 0.0],
            [0.0, 2.2, 0.0, 0.4],
            [3.1, 0.0, 0.0, 0.0],
            [0.0, 0.7, 1.0, 0.0],
            [1.5, 0.0, 0.0, 2.0],
            [0.0, 0.0, 0.0, 0.0],
        ];
        let groups: Vec<Option<usize>> = (0..12).map(|i| Some(i % 3)).collect();
        let got = rank_genes(&Csr::from_dense(&x), &groups, 3);
        let scanpy = [
            (
                0,
                1,
                0.4578249156475067,
                0.23646725714206696,
                0.6470782298388258,
                0.9544306842253837,
            ),
            (0, 2, 0.0, -0.22989457845687866, 1.0, 1.0),
            (
                0,
                0,
                -0.3640468716621399,
                -1.28945791721344,
                0.7158230131690377,
                0.9544306842253837,
            ),
            (
                0,
                3,
                -0.4745142161846161,
                -0.13378946483135223,
                0.6351332522111437,
                0.9544306842253837,
            ),
            (
                1,
                1,
                1.7397346496582031,
                2.490530490875244,
                0.08190561316040677,
                0.3276224526416271,
            ),
            (
                1,
                3,
                0.9490284323692322,
                0.2622235417366028,
                0.34260613643757976,
                0.456808181916773,
            ),
            (
                1,
                0,
                -0.3640468716621399,
                -1.28945791721344,
                0.7158230131690377,
                0.7158230131690377,
            ),
            (
                1,
                2,
                -1.3375935554504395,
                -28.927589416503906,
                0.1810289533582179,
                0.3620579067164358,
            ),
            (
                2,
                2,
                1.3375935554504395,
                2.545121192932129,
                0.1810289533582179,
                0.3620579067164358,
            ),
            (
                2,
                0,
                0.7280937433242798,
                2.235596179962158,
                0.46655621079085274,
                0.622074947721137,
            ),
            (
                2,
                3,
                -0.4745142161846161,
                -0.13378946483135223,
                0.6351332522111437,
                0.6351332522111437,
            ),
            (
                2,
                1,
                -2.1975595951080322,
                -30.442928314208984,
                0.02798050329947722,
                0.11192201319790888,
            ),
        ];
        let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * b.abs().max(1.0);
        for (row, (g, gene, score, lfc, p, padj)) in scanpy.into_iter().enumerate() {
            let t = &got[g][row % 4];
            assert_eq!(t.gene, gene, "group {g}, place {}", row % 4);
            assert!(
                close(t.score, score, 1e-6),
                "{g}/{gene} score {} vs {score}",
                t.score
            );
            assert!(
                close(t.log_fold_change, lfc, 1e-6),
                "{g}/{gene} lfc {} vs {lfc}",
                t.log_fold_change
            );
            assert!(close(t.pval, p, 1e-12), "{g}/{gene} p {} vs {p}", t.pval);
            assert!(
                close(t.pval_adj, padj, 1e-12),
                "{g}/{gene} p_adj {} vs {padj}",
                t.pval_adj
            );
        }
    }

    /// Genes transposed a band at a time give the tests of the whole transpose, across band
    /// boundaries and with ungrouped cells.
    #[test]
    fn bands_of_genes_equal_one_transpose() {
        let genes = 2 * GENE_BAND + 37;
        let mut x = Csr::with_cols(genes);
        for i in 0..40u32 {
            let cols: Vec<u32> = (0..genes as u32)
                .filter(|g| (g * 7 + i * 13) % 5 < 2)
                .collect();
            let vals: Vec<f32> = cols
                .iter()
                .map(|g| ((g + i) % 9) as f32 / 3.0 + 0.1)
                .collect();
            x.push_row(&cols, &vals);
        }
        let groups: Vec<Option<usize>> = (0..40).map(|i| (i % 7 != 3).then_some(i % 3)).collect();
        let kept: Vec<usize> = (0..40).filter(|&i| groups[i].is_some()).collect();
        let group: Vec<usize> = kept.iter().map(|&i| groups[i].unwrap()).collect();
        let mut sizes = vec![0; 3];
        group.iter().for_each(|&g| sizes[g] += 1);
        let mut xt = Csc::default();
        xt.rebuild_from(&x.select_rows(&kept));
        let ranked = rank_genes(&x, &groups, 3);
        for (k, tests) in ranked.iter().enumerate() {
            for t in tests {
                let (a, b) = (xt.colptr[t.gene], xt.colptr[t.gene + 1]);
                let want = test_gene(&xt.rows[a..b], &xt.data[a..b], &group, &sizes, kept.len());
                assert_eq!(
                    (t.score, t.log_fold_change, t.pval),
                    want[k],
                    "gene {}",
                    t.gene
                );
            }
        }
    }

    /// Cells without a group are left out: the same as testing the grouped cells alone.
    #[test]
    fn ungrouped_cells_are_left_out() {
        let x = array![
            [1.0f32, 0.0],
            [0.0, 2.0],
            [3.0, 1.0],
            [5.0, 5.0],
            [0.5, 0.0]
        ];
        let all = rank_genes(
            &Csr::from_dense(&x),
            &[Some(0), Some(1), None, Some(0), Some(1)],
            2,
        );
        let sub = array![[1.0f32, 0.0], [0.0, 2.0], [5.0, 5.0], [0.5, 0.0]];
        let alone = rank_genes(
            &Csr::from_dense(&sub),
            &[Some(0), Some(1), Some(0), Some(1)],
            2,
        );
        assert_eq!(all, alone);
    }

    #[test]
    fn expression_summary_averages_over_each_group() {
        let x = array![[1.0f32, 0.0, 2.0], [3.0, 0.0, 0.0], [0.0, 4.0, 0.0]];
        let groups = [Some(0), Some(0), Some(1)];
        let (mean, detected) = expression_summary(&Csr::from_dense(&x), &groups, 2, &[0, 2]);
        assert_eq!(mean, array![[2.0, 0.0], [1.0, 0.0]]);
        assert_eq!(detected, array![[1.0, 0.0], [0.5, 0.0]]);
    }

    #[test]
    fn benjamini_hochberg_is_monotone_and_capped() {
        let adj = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.9]);
        // Sorted: 0.01·4/1, 0.03·4/2, 0.04·4/3, 0.9·4/4; then the running minimum from the top.
        assert_eq!(adj, vec![0.04, 0.04 * 4.0 / 3.0, 0.04 * 4.0 / 3.0, 0.9]);
    }
}
