//! Clustering scores against reference labels, with scikit-learn's definitions and its
//! conventions for degenerate partitions (`docs/math.md#64-scores`).
//!
//! From the contingency table `n_ck` (N cells, natural logs):
//! - `H(C) = −Σ_c (n_c/N) ln(n_c/N)`, `H(K)` likewise;
//! - `MI = Σ_ck (n_ck/N) ln(N n_ck / (n_c n_k))` (0 when either side has one group);
//! - homogeneity `MI/H(C)` (1 if `H(C) = 0`), completeness `MI/H(K)` (1 if `H(K) = 0`);
//! - NMI: 1 when both partitions are a single group, 0 when `MI = 0`, else
//!   `MI/√(H(C)H(K))` (geometric: what the study's scikit-learn < 0.22 printed) or
//!   `2MI/(H(C)+H(K))` (arithmetic: scikit-learn's current default, the V-measure);
//! - ARI from the pair-confusion counts: 1 when no pair disagrees, else
//!   `2(tp·tn − fn·fp) / ((tp+fn)(fn+tn) + (tp+fp)(fp+tn))`.

use std::collections::HashMap;
use std::hash::Hash;

/// The four scores (two NMIs) and the number of cells scored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scores {
    pub n: usize,
    pub nmi_geometric: f64,
    pub nmi_arithmetic: f64,
    pub ari: f64,
    pub homogeneity: f64,
    pub completeness: f64,
}

/// Relabels any hashable labels as `0..k` in order of first appearance.
pub fn encode<L: Hash + Eq + Clone>(labels: &[L]) -> Vec<usize> {
    let mut ids = HashMap::new();
    labels
        .iter()
        .map(|l| {
            let next = ids.len();
            *ids.entry(l.clone()).or_insert(next)
        })
        .collect()
}

fn entropy(counts: &[u64], n: f64) -> f64 {
    if n == 0.0 {
        return 1.0;
    }
    -counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64;
            (p / n) * (p.ln() - n.ln())
        })
        .sum::<f64>()
}

/// Scores `pred` against `truth` (equal lengths; labels already encoded as `0..k`).
///
/// ```
/// use cellvae::analysis::metrics::{encode, scores};
/// // The same partition under other names is a perfect match.
/// let truth = encode(&["T", "T", "B", "B", "NK"]);
/// let pred = encode(&[2, 2, 0, 0, 1]);
/// let s = scores(&truth, &pred);
/// assert_eq!((s.ari, s.nmi_geometric, s.homogeneity), (1.0, 1.0, 1.0));
/// ```
pub fn scores(truth: &[usize], pred: &[usize]) -> Scores {
    assert_eq!(truth.len(), pred.len(), "label vectors differ in length");
    let n = truth.len();
    let n_classes = truth.iter().max().map_or(0, |m| m + 1);
    let n_clusters = pred.iter().max().map_or(0, |m| m + 1);
    let mut table: HashMap<(usize, usize), u64> = HashMap::new();
    let mut a = vec![0u64; n_classes];
    let mut b = vec![0u64; n_clusters];
    for (&t, &p) in truth.iter().zip(pred) {
        *table.entry((t, p)).or_default() += 1;
        a[t] += 1;
        b[p] += 1;
    }
    let classes = a.iter().filter(|&&c| c > 0).count();
    let clusters = b.iter().filter(|&&c| c > 0).count();
    let nf = n as f64;

    // Mutual information, as scikit-learn sums it (entries below machine ε dropped).
    let mut cells: Vec<(&(usize, usize), &u64)> = table.iter().collect();
    cells.sort();
    let mi = if classes <= 1 || clusters <= 1 {
        0.0
    } else {
        let total: f64 = cells
            .iter()
            .map(|(&(c, k), &v)| {
                let v = v as f64;
                let term = (v / nf) * (v.ln() - nf.ln())
                    + (v / nf) * (-(a[c] as f64 * b[k] as f64).ln() + 2.0 * nf.ln());
                if term.abs() < f64::EPSILON {
                    0.0
                } else {
                    term
                }
            })
            .sum();
        total.max(0.0)
    };
    let (h_c, h_k) = (entropy(&a, nf), entropy(&b, nf));
    let homogeneity = if n == 0 {
        1.0
    } else if h_c != 0.0 {
        mi / h_c
    } else {
        1.0
    };
    let completeness = if n == 0 {
        1.0
    } else if h_k != 0.0 {
        mi / h_k
    } else {
        1.0
    };
    let (nmi_geometric, nmi_arithmetic) = if classes == clusters && classes <= 1 {
        (1.0, 1.0)
    } else if mi == 0.0 {
        (0.0, 0.0)
    } else {
        (mi / (h_c * h_k).sqrt(), mi / ((h_c + h_k) / 2.0))
    };

    // Pair-confusion counts, exact in integers.
    let sum_sq: u128 = table.values().map(|&v| (v as u128) * (v as u128)).sum();
    let n2 = n as u128;
    let tp = sum_sq - n2;
    let fp: u128 = b.iter().map(|&v| (v as u128) * (v as u128)).sum::<u128>() - sum_sq;
    let fn_: u128 = a.iter().map(|&v| (v as u128) * (v as u128)).sum::<u128>() - sum_sq;
    let tn = n2 * n2 - fp - fn_ - sum_sq;
    let ari = if fn_ == 0 && fp == 0 {
        1.0
    } else {
        let (tp, tn, fp, fn_) = (tp as f64, tn as f64, fp as f64, fn_ as f64);
        2.0 * (tp * tn - fn_ * fp) / ((tp + fn_) * (fn_ + tn) + (tp + fp) * (fp + tn))
    };
    Scores {
        n,
        nmi_geometric,
        nmi_arithmetic,
        ari,
        homogeneity,
        completeness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from scikit-learn 1.9.1:
    /// ```python
    /// from sklearn.metrics import normalized_mutual_info_score as nmi, adjusted_rand_score as ari
    /// from sklearn.metrics import homogeneity_completeness_v_measure as hcv
    /// for t, p in cases:
    ///     h, c, v = hcv(t, p)
    ///     print(nmi(t, p, average_method='geometric'), nmi(t, p, average_method='arithmetic'), ari(t, p), h, c)
    /// ```
    #[test]
    fn scores_match_scikit_learn() {
        #[rustfmt::skip]
        let cases: [(&[usize], &[usize], [f64; 5]); 7] = [
            (&[0,0,0,1,1,1,2,2,2,2], &[0,0,1,1,1,2,2,2,0,0], [0.3946483716358942, 0.3946483716358942, 0.09090909090909091, 0.3946483716358942, 0.3946483716358942]),
            // one cluster
            (&[0,0,1,1,2,2], &[0,0,0,0,0,0], [0.0, 0.0, 0.0, 0.0, 1.0]),
            // every cell its own cluster
            (&[0,0,1,1,2,2], &[0,1,2,3,4,5], [0.7830371592494565, 0.7601875334318686, 0.0, 1.0000000000000002, 0.6131471927654586]),
            // unequal numbers of classes (4) and clusters (2)
            (&[0,1,2,3,0,1,2,3,0,1,2,3], &[0,0,0,1,1,1,0,0,0,1,1,1], [0.05777356979126181, 0.05446944396367399, -0.0935672514619883, 0.0408520829727555, 0.08170416594551098]),
            // both partitions a single group
            (&[0,0,0,0], &[0,0,0,0], [1.0, 1.0, 1.0, 1.0, 1.0]),
            // perfect up to relabelling
            (&[0,0,1,1,2,2], &[0,0,1,1,2,2], [1.0, 1.0, 1.0, 1.0, 1.0]),
            // independent
            (&[0,0,1,1], &[0,1,0,1], [0.0, 0.0, -0.5, 0.0, 0.0]),
        ];
        for (t, p, want) in cases {
            let s = scores(t, p);
            let got = [
                s.nmi_geometric,
                s.nmi_arithmetic,
                s.ari,
                s.homogeneity,
                s.completeness,
            ];
            for (g, w) in got.iter().zip(want) {
                assert!(
                    (g - w).abs() < 1e-12,
                    "{t:?} {p:?}: got {got:?}, want {want:?}"
                );
            }
        }
    }

    #[test]
    fn encode_numbers_labels_by_first_appearance() {
        assert_eq!(encode(&["b", "a", "b", "c"]), vec![0, 1, 0, 2]);
    }
}
