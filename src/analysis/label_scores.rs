//! Scores beyond the study's four, with scikit-learn's definitions where it has one:
//!
//! - **AMI**, adjusted mutual information (arithmetic normalisation, scikit-learn's default):
//!   `(MI − E[MI]) / (½(H(C) + H(K)) − E[MI])`, where `E[MI]` is the expected mutual information
//!   of two random partitions with the same group sizes (the hypergeometric model):
//!   `E[MI] = Σ_c Σ_k Σ_n (n/N) ln(N n/(a_c b_k)) · a_c! b_k! (N−a_c)! (N−b_k)! /
//!   (N! n! (a_c−n)! (b_k−n)! (N−a_c−b_k+n)!)`, `n` from `max(1, a_c+b_k−N)` to
//!   `min(a_c, b_k)`; 1 when both partitions are one group.
//! - **Accuracy** after the best one-to-one matching of clusters to labels (Hungarian,
//!   [`super::matching`]): matched cells / N.
//! - **Silhouette** of the labels in a representation: per cell `(b − a)/max(a, b)` with `a`
//!   its mean Euclidean distance to the other cells of its label and `b` the smallest mean
//!   distance to the cells of another label (0 for a label of one cell), averaged over cells.
//!   O(n²): above [`SILHOUETTE_SAMPLE`] cells, [`silhouette_sampled`] averages it over a
//!   seeded sample of that many cells, distances among the sampled cells only (scikit-learn's
//!   `silhouette_score(sample_size=…)`).
//! - **kNN purity**: the share of each labelled cell's `k` nearest neighbours (Euclidean,
//!   itself excluded, among all cells) that carry its label, averaged over labelled cells.
//!
//! And one score that needs no labels: **active units** (Burda et al. 2016), the latent
//! dimensions whose code varies across cells, `Var_i(code_iu) > 0.01`.

use super::matching::{contingency, max_weight_matching};
use super::neighbors::Neighbors;
use crate::engine::rng::{stream, Stream};
use ndarray::{Array2, Axis};
use rand::seq::SliceRandom;
use rayon::prelude::*;

/// Cells the labels' silhouette is computed on, at most: above this many, a seeded sample of
/// this many ([`silhouette_sampled`]): 10⁸ distances, seconds on two cores, where a million
/// cells would need 10¹²; the sampled mean's standard error is about 0.01 or less (per-cell
/// silhouettes lie in [−1, 1]).
pub const SILHOUETTE_SAMPLE: usize = 10_000;

/// Group sizes of labels `0..k`.
fn sizes(labels: &[usize]) -> Vec<usize> {
    let k = labels.iter().max().map_or(0, |m| m + 1);
    let mut s = vec![0usize; k];
    labels.iter().for_each(|&l| s[l] += 1);
    s
}

/// Adjusted mutual information of `pred` against `truth` (labels `0..k`).
pub fn ami(truth: &[usize], pred: &[usize]) -> f64 {
    assert_eq!(truth.len(), pred.len());
    let n = truth.len();
    let (a, b) = (sizes(truth), sizes(pred));
    let (a, b): (Vec<usize>, Vec<usize>) = (
        a.into_iter().filter(|&c| c > 0).collect(),
        b.into_iter().filter(|&c| c > 0).collect(),
    );
    if (a.len() == 1 && b.len() == 1) || n == 0 {
        return 1.0;
    }
    let nf = n as f64;
    let entropy = |s: &[usize]| -> f64 {
        s.iter()
            .map(|&c| {
                let p = c as f64 / nf;
                -p * p.ln()
            })
            .sum()
    };
    let table = contingency(
        truth,
        &pred.iter().map(|&p| Some(p)).collect::<Vec<_>>(),
        sizes(truth).len(),
        sizes(pred).len(),
    );
    let mi: f64 = table
        .iter()
        .enumerate()
        .flat_map(|(c, row)| row.iter().enumerate().map(move |(k, &x)| (c, k, x)))
        .filter(|&(_, _, x)| x > 0.0)
        .map(|(c, k, x)| {
            let (ac, bk) = (
                table[c].iter().sum::<f64>(),
                table.iter().map(|r| r[k]).sum::<f64>(),
            );
            (x / nf) * (nf * x / (ac * bk)).ln()
        })
        .sum();
    // ln k! for k ≤ N, summed once.
    let mut ln_fact = vec![0.0f64; n + 1];
    for k in 2..=n {
        ln_fact[k] = ln_fact[k - 1] + (k as f64).ln();
    }
    let mut emi = 0.0f64;
    for &ac in &a {
        for &bk in &b {
            let lo = (ac + bk).saturating_sub(n).max(1);
            let fixed = ln_fact[ac] + ln_fact[bk] + ln_fact[n - ac] + ln_fact[n - bk] - ln_fact[n];
            for nij in lo..=ac.min(bk) {
                let x = nij as f64;
                let log_p = fixed
                    - ln_fact[nij]
                    - ln_fact[ac - nij]
                    - ln_fact[bk - nij]
                    - ln_fact[n + nij - ac - bk];
                emi += (x / nf) * (nf * x / (ac as f64 * bk as f64)).ln() * log_p.exp();
            }
        }
    }
    let normaliser = 0.5 * (entropy(&a) + entropy(&b));
    let mut denominator = normaliser - emi;
    denominator = if denominator < 0.0 {
        denominator.min(-f64::EPSILON)
    } else {
        denominator.max(f64::EPSILON)
    };
    (mi - emi) / denominator
}

/// Accuracy of `pred` after matching its groups one to one to `truth`'s.
pub fn matched_accuracy(truth: &[usize], pred: &[usize]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let (kt, kp) = (sizes(truth).len(), sizes(pred).len());
    let truth_opt: Vec<Option<usize>> = truth.iter().map(|&t| Some(t)).collect();
    let table = contingency(pred, &truth_opt, kp, kt);
    let matched: f64 = max_weight_matching(&table)
        .iter()
        .enumerate()
        .filter_map(|(p, t)| t.map(|t| table[p][t]))
        .sum();
    matched / truth.len() as f64
}

/// Mean silhouette of `labels` for the rows of `x`.
pub fn silhouette(x: &Array2<f64>, labels: &[usize]) -> f64 {
    let n = x.nrows();
    if sizes(labels).iter().filter(|&&c| c > 0).count() < 2 {
        return 0.0;
    }
    silhouette_samples(x, labels).iter().sum::<f64>() / n as f64
}

/// The labels' silhouette and the number of rows it was averaged over: [`silhouette`] of every
/// row up to [`SILHOUETTE_SAMPLE`] rows, else of a sample of that many.
pub fn silhouette_sampled(x: &Array2<f64>, labels: &[usize], seed: u64) -> (f64, usize) {
    silhouette_on_sample(x, labels, SILHOUETTE_SAMPLE, seed)
}

/// [`silhouette`] of every row of `x` when there are at most `sample` rows; otherwise of
/// `sample` rows drawn without replacement (a shuffle of the rows by the seed's
/// [`Stream::Silhouette`] stream, its first `sample`, in their original order), distances
/// between sampled rows only. Returns the score and the rows it covers.
pub fn silhouette_on_sample(
    x: &Array2<f64>,
    labels: &[usize],
    sample: usize,
    seed: u64,
) -> (f64, usize) {
    let n = x.nrows();
    assert_eq!(labels.len(), n);
    if n <= sample {
        return (silhouette(x, labels), n);
    }
    let mut rows: Vec<usize> = (0..n).collect();
    rows.shuffle(&mut stream(seed, Stream::Silhouette));
    rows.truncate(sample);
    rows.sort_unstable();
    let ls: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
    (silhouette(&x.select(Axis(0), &rows), &ls), sample)
}

/// Each row's silhouette under `labels` (scikit-learn's `silhouette_samples`): 0 for a row
/// alone in its label; all 0 when fewer than two labels are present.
pub fn silhouette_samples(x: &Array2<f64>, labels: &[usize]) -> Vec<f64> {
    let n = x.nrows();
    assert_eq!(labels.len(), n);
    let count = sizes(labels);
    if count.iter().filter(|&&c| c > 0).count() < 2 {
        return vec![0.0; n];
    }
    (0..n)
        .into_par_iter()
        .map(|i| {
            let mut sum = vec![0.0f64; count.len()];
            for j in 0..n {
                if j != i {
                    let d2: f64 = x
                        .row(i)
                        .iter()
                        .zip(x.row(j))
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    sum[labels[j]] += d2.sqrt();
                }
            }
            let own = labels[i];
            if count[own] < 2 {
                return 0.0;
            }
            let a = sum[own] / (count[own] - 1) as f64;
            let b = (0..count.len())
                .filter(|&l| l != own && count[l] > 0)
                .map(|l| sum[l] / count[l] as f64)
                .fold(f64::INFINITY, f64::min);
            (b - a) / a.max(b)
        })
        .collect()
}

/// Threshold of [`active_units`] on a dimension's variance across cells.
pub const ACTIVE_VARIANCE: f64 = 0.01;

/// Number of columns of `codes` (one row per cell) whose variance (n denominator) exceeds
/// [`ACTIVE_VARIANCE`].
pub fn active_units(codes: &Array2<f64>) -> usize {
    codes
        .columns()
        .into_iter()
        .filter(|c| c.var(0.0) > ACTIVE_VARIANCE)
        .count()
}

/// Mean share of each labelled row's `k` nearest other rows (in `nb`, the graph of every
/// row) that carry its label; `labels[i]` is `None` for an unlabelled row, which counts as
/// a neighbour of another label.
pub fn knn_purity(nb: &Neighbors, labels: &[Option<usize>], k: usize) -> f64 {
    let k = k.min(nb.k());
    let labelled: Vec<(usize, usize)> = labels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.map(|l| (i, l)))
        .collect();
    if k == 0 || labelled.is_empty() {
        return 0.0;
    }
    let total: f64 = labelled
        .iter()
        .map(|&(i, l)| {
            let same = nb.nearest(i, k).0.iter();
            same.filter(|&&j| labels[j as usize] == Some(l)).count() as f64 / k as f64
        })
        .sum();
    total / labelled.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// scikit-learn 1.9.1: `adjusted_mutual_info_score` and `silhouette_score`.
    #[test]
    #[allow(clippy::excessive_precision)]
    fn ami_and_silhouette_match_scikit_learn() {
        let t = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 0, 1];
        let p = [0, 0, 1, 1, 1, 2, 2, 2, 0, 2, 0, 1];
        assert!(
            (ami(&t, &p) - 0.3500664905474484).abs() < 1e-12,
            "{}",
            ami(&t, &p)
        );
        let t2 = [0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2, 3, 0, 0, 1];
        let p2 = [1, 1, 0, 0, 2, 2, 2, 3, 1, 0, 3, 3, 1, 0, 0];
        assert!(
            (ami(&t2, &p2) - 0.5567792868328062).abs() < 1e-12,
            "{}",
            ami(&t2, &p2)
        );
        assert_eq!(ami(&[0, 0, 0], &[1, 1, 1]), 1.0);
        assert!(ami(&[0, 1, 2], &[0, 0, 0]).abs() < 1e-12);
        let x = array![
            [0.0, 0.1],
            [0.2, 0.0],
            [0.1, 0.3],
            [3.0, 3.1],
            [3.2, 2.9],
            [2.8, 3.3],
            [0.5, 2.5],
            [0.4, 2.8]
        ];
        let s = silhouette(&x, &[0, 0, 0, 1, 1, 1, 2, 2]);
        assert!((s - 0.876309660221249).abs() < 1e-12, "{s}");
        let s = silhouette(&x, &[0, 0, 1, 1, 1, 0, 2, 2]);
        assert!((s - 0.15079546616099687).abs() < 1e-12, "{s}");
    }

    /// `n` rows in three overlapping Gaussian blobs in 3-D, labelled by blob.
    fn blobs(n: usize) -> (Array2<f64>, Vec<usize>) {
        use rand::Rng;
        use rand_distr::StandardNormal;
        let mut rng = stream(5, Stream::Init);
        let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let x = Array2::from_shape_fn((n, 3), |(i, j)| {
            let centre = if j == labels[i] { 3.0 } else { 0.0 };
            centre + rng.sample::<f64, _>(StandardNormal)
        });
        (x, labels)
    }

    #[test]
    fn silhouette_on_a_sample_is_close_and_seeded() {
        let (x, labels) = blobs(3000);
        let exact = silhouette(&x, &labels);
        // At or below the sample size: every row, the exact value.
        assert_eq!(silhouette_on_sample(&x, &labels, 3000, 1), (exact, 3000));
        assert_eq!(silhouette_sampled(&x, &labels, 1), (exact, 3000));
        let (s1, cells) = silhouette_on_sample(&x, &labels, 800, 1);
        assert_eq!(cells, 800);
        assert!((s1 - exact).abs() < 0.03, "sampled {s1}, exact {exact}");
        assert_ne!(s1, exact);
        // The same seed, the same sample and the same bits; another seed, another sample.
        assert_eq!(
            silhouette_on_sample(&x, &labels, 800, 1).0.to_bits(),
            s1.to_bits()
        );
        let s2 = silhouette_on_sample(&x, &labels, 800, 2).0;
        assert_ne!(s2, s1);
        assert!((s2 - exact).abs() < 0.03, "sampled {s2}, exact {exact}");
    }

    #[test]
    fn accuracy_and_purity() {
        // Clusters are a relabelling except one cell: 5 of 6 matched.
        assert!(
            (matched_accuracy(&[0, 0, 1, 1, 2, 2], &[2, 2, 0, 0, 1, 0]) - 5.0 / 6.0).abs() < 1e-12
        );
        let x = array![[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]];
        let nb = Neighbors::exact(&x, 2);
        let some = |l: &[usize]| l.iter().map(|&l| Some(l)).collect::<Vec<_>>();
        assert_eq!(knn_purity(&nb, &some(&[0, 0, 0, 1, 1, 1]), 2), 1.0);
        let mixed = knn_purity(&nb, &some(&[0, 0, 1, 1, 1, 1]), 2);
        assert!((mixed - (0.5 + 0.5 + 0.0 + 1.0 + 1.0 + 1.0) / 6.0).abs() < 1e-12);
        // An unlabelled cell is not scored, and as a neighbour it carries no label.
        let unlabelled = [Some(0), Some(0), None, Some(1), Some(1), Some(1)];
        let purity = knn_purity(&nb, &unlabelled, 2);
        assert!((purity - (0.5 + 0.5 + 1.0 + 1.0 + 1.0) / 5.0).abs() < 1e-12);
    }

    #[test]
    fn active_units_count_varying_columns() {
        let codes = ndarray::array![[0.0, 1.0, 5.0], [0.05, -1.0, 5.0], [-0.05, 0.5, 5.0]];
        assert_eq!(
            active_units(&codes),
            1,
            "only the middle column varies beyond 0.01"
        );
    }
}
