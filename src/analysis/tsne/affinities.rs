//! Input affinities `P` of t-SNE (van der Maaten & Hinton 2008; scikit-learn's recipe).
//!
//! For each point `i`, a binary search finds the precision `β_i` so that the conditional
//! distribution `p_{j|i} ∝ exp(−β_i ‖x_i − x_j‖²)` has entropy `ln(perplexity)` (tolerance
//! 1e-5, at most 100 steps). Then `P = (P_cond + P_condᵀ) / Σ`. The exact method uses every
//! other point; Barnes–Hut only the `⌊3·perplexity⌋ + 1` nearest neighbours, so `P` is sparse.

use crate::analysis::neighbors::{sq_dist, Neighbors};
use ndarray::Array2;
use rayon::prelude::*;

const PERPLEXITY_TOLERANCE: f64 = 1e-5;
const STEPS: usize = 100;

/// Conditional probabilities for one point from its squared distances `d2` to the candidate
/// neighbours (itself excluded), written into `p`.
pub fn calibrate_row(d2: &[f64], perplexity: f64, p: &mut [f64]) {
    let desired = perplexity.ln();
    // Shifting by the smallest distance changes neither P nor the entropy, but keeps exp() finite.
    let d_min = d2.iter().copied().fold(f64::INFINITY, f64::min);
    let (mut beta, mut lo, mut hi) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    for _ in 0..STEPS {
        let mut sum = 0.0;
        for (pj, &d) in p.iter_mut().zip(d2) {
            *pj = (-(d - d_min) * beta).exp();
            sum += *pj;
        }
        let sum = if sum == 0.0 { 1e-8 } else { sum };
        let mut weighted = 0.0;
        for (pj, &d) in p.iter_mut().zip(d2) {
            *pj /= sum;
            weighted += (d - d_min) * *pj;
        }
        let entropy = sum.ln() + beta * weighted;
        let diff = entropy - desired;
        if diff.abs() <= PERPLEXITY_TOLERANCE {
            break;
        }
        if diff > 0.0 {
            lo = beta;
            beta = if hi == f64::INFINITY {
                beta * 2.0
            } else {
                (beta + hi) / 2.0
            };
        } else {
            hi = beta;
            beta = if lo == f64::NEG_INFINITY {
                beta / 2.0
            } else {
                (beta + lo) / 2.0
            };
        }
    }
}

/// Dense joint probabilities over all pairs, row-major `n × n`, as f32 (the exact method).
pub fn dense(x: &Array2<f64>, perplexity: f64) -> Vec<f32> {
    let n = x.nrows();
    let mut cond = vec![0.0f64; n * n];
    cond.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        let d2: Vec<f64> = (0..n)
            .filter(|&j| j != i)
            .map(|j| sq_dist(x, i, j))
            .collect();
        let mut p = vec![0.0; n - 1];
        calibrate_row(&d2, perplexity, &mut p);
        for (k, j) in (0..n).filter(|&j| j != i).enumerate() {
            row[j] = p[k];
        }
    });
    let mut total = 0.0;
    for i in 0..n {
        for j in 0..n {
            total += cond[i * n + j] + cond[j * n + i];
        }
    }
    let total = total.max(f64::MIN_POSITIVE);
    let mut p = vec![0.0f32; n * n];
    p.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
        for j in 0..n {
            if i != j {
                row[j] = ((cond[i * n + j] + cond[j * n + i]) / total).max(f64::EPSILON) as f32;
            }
        }
    });
    p
}

/// Symmetric sparse joint probabilities: for each point its neighbours and `p_ij`.
#[derive(Clone, Debug)]
pub struct SparseP {
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f64>,
}

/// The neighbours the sparse affinities of `perplexity` read: `⌊3·perplexity⌋ + 1`.
pub fn sparse_neighbours(perplexity: f64) -> usize {
    (3.0 * perplexity) as usize + 1
}

/// Sparse joint probabilities from each point's [`sparse_neighbours`] nearest neighbours in
/// `nb` (all of them when the graph holds fewer points).
pub fn sparse(nb: &Neighbors, perplexity: f64) -> SparseP {
    let n = nb.n();
    let k = sparse_neighbours(perplexity).min(nb.k());
    let cond: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let d2 = nb.nearest(i, k).1;
            let mut p = vec![0.0; d2.len()];
            calibrate_row(d2, perplexity, &mut p);
            p
        })
        .collect();
    // P + Pᵀ as per-row maps, then normalise.
    let mut rows: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n];
    for i in 0..n {
        for (&j, &p) in nb.nearest(i, k).0.iter().zip(&cond[i]) {
            rows[i].push((j, p));
            rows[j as usize].push((i as u32, p));
        }
    }
    let mut out = SparseP {
        indptr: vec![0],
        indices: Vec::new(),
        values: Vec::new(),
    };
    for row in &mut rows {
        row.sort_by_key(|e| e.0);
        let mut last = u32::MAX;
        for &(j, p) in row.iter() {
            if j == last {
                *out.values.last_mut().expect("a previous entry") += p;
            } else {
                out.indices.push(j);
                out.values.push(p);
                last = j;
            }
        }
        out.indptr.push(out.indices.len());
    }
    let total: f64 = out.values.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    out.values.iter_mut().for_each(|v| *v /= total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_rows_have_the_requested_perplexity() {
        let d2: Vec<f64> = (1..200)
            .map(|i| (i as f64 * 0.37).powi(2) * 0.01 + 3.0)
            .collect();
        let mut p = vec![0.0; d2.len()];
        calibrate_row(&d2, 30.0, &mut p);
        let h: f64 = -p
            .iter()
            .filter(|&&v| v > 0.0)
            .map(|v| v * v.ln())
            .sum::<f64>();
        assert!((h.exp() - 30.0).abs() < 1e-2, "{}", h.exp());
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
