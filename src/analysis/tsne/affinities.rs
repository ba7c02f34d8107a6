//! Input affinities `P` of t-SNE (van der Maaten & Hinton 2008; scikit-learn's recipe).
//!
//! For each point `i`, a binary search finds the precision `β_i` so that the conditional
//! distribution `p_{j|i} ∝ exp(−β_i ‖x_i − x_j‖²)` has entropy `ln(perplexity)` (tolerance
//! 1e-5, at most 100 steps). Then `P = (P_cond + P_condᵀ) / Σ`. The exact method uses every
//! other point; Barnes–Hut only the `⌊3·perplexity⌋ + 1` nearest neighbours, so `P` is sparse.

use ndarray::Array2;
use rayon::prelude::*;

const PERPLEXITY_TOLERANCE: f64 = 1e-5;
const STEPS: usize = 100;

/// Squared Euclidean distance between rows `i` and `j`.
#[inline]
pub fn sq_dist(x: &Array2<f64>, i: usize, j: usize) -> f64 {
    x.row(i)
        .iter()
        .zip(x.row(j).iter())
        .map(|(a, b)| (a - b) * (a - b))
        .sum()
}

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

/// The `k` nearest neighbours of every point, nearest first (ties broken by index), from a
/// k-d tree: O(N log N) for the low-dimensional codes t-SNE is given, and exactly the answer
/// of a brute-force search (a test checks it). Queries run in parallel.
pub fn knn(x: &Array2<f64>, k: usize) -> Vec<Vec<(f64, u32)>> {
    let tree = KdTree::build(x);
    (0..x.nrows())
        .into_par_iter()
        .map(|i| tree.nearest(x, i, k))
        .collect()
}

/// Points per leaf of the k-d tree.
const LEAF: usize = 16;

/// A k-d tree over the rows of a matrix: each internal node splits its points at the median
/// of their widest coordinate.
struct KdTree {
    /// Point indices, grouped by node.
    order: Vec<u32>,
    nodes: Vec<KdNode>,
}

enum KdNode {
    Leaf {
        start: usize,
        end: usize,
    },
    Split {
        dim: usize,
        value: f64,
        left: usize,
        right: usize,
    },
}

impl KdTree {
    fn build(x: &Array2<f64>) -> Self {
        let mut tree = KdTree {
            order: (0..x.nrows() as u32).collect(),
            nodes: Vec::new(),
        };
        tree.build_node(x, 0, x.nrows());
        tree
    }

    fn build_node(&mut self, x: &Array2<f64>, start: usize, end: usize) -> usize {
        let id = self.nodes.len();
        self.nodes.push(KdNode::Leaf { start, end });
        if end - start <= LEAF {
            return id;
        }
        let pts = &mut self.order[start..end];
        let spread = |d: usize| {
            let (lo, hi) = pts
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &p| {
                    let v = x[[p as usize, d]];
                    (l.min(v), h.max(v))
                });
            hi - lo
        };
        let dim = (0..x.ncols())
            .max_by(|&a, &b| spread(a).total_cmp(&spread(b)))
            .unwrap_or(0);
        if spread(dim) == 0.0 {
            return id; // all points identical: a (large) leaf
        }
        let mid = pts.len() / 2;
        pts.select_nth_unstable_by(mid, |&a, &b| {
            x[[a as usize, dim]]
                .total_cmp(&x[[b as usize, dim]])
                .then(a.cmp(&b))
        });
        let value = x[[pts[mid] as usize, dim]];
        let left = self.build_node(x, start, start + mid);
        let right = self.build_node(x, start + mid, end);
        self.nodes[id] = KdNode::Split {
            dim,
            value,
            left,
            right,
        };
        id
    }

    /// The `k` nearest other points of point `i`.
    fn nearest(&self, x: &Array2<f64>, i: usize, k: usize) -> Vec<(f64, u32)> {
        // Max-heap of the best k so far, ordered by (distance, index).
        let mut best: std::collections::BinaryHeap<(OrdF64, u32)> =
            std::collections::BinaryHeap::with_capacity(k + 1);
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            match self.nodes[n] {
                KdNode::Leaf { start, end } => {
                    for &j in &self.order[start..end] {
                        if j as usize == i {
                            continue;
                        }
                        let cand = (OrdF64(sq_dist(x, i, j as usize)), j);
                        if best.len() < k {
                            best.push(cand);
                        } else if best.peek().is_some_and(|w| cand < *w) {
                            best.pop();
                            best.push(cand);
                        }
                    }
                }
                KdNode::Split {
                    dim,
                    value,
                    left,
                    right,
                } => {
                    let diff = x[[i, dim]] - value;
                    let (near, far) = if diff < 0.0 {
                        (left, right)
                    } else {
                        (right, left)
                    };
                    // The far side can only help if the splitting plane is within the k-th
                    // distance (`<=`, so that ties by index are still found).
                    if best.len() < k || best.peek().is_some_and(|w| diff * diff <= w.0 .0) {
                        stack.push(far);
                    }
                    stack.push(near);
                }
            }
        }
        let mut out: Vec<(f64, u32)> = best.into_iter().map(|(d, j)| (d.0, j)).collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        out
    }
}

/// An f64 with a total order (distances are never NaN here: inputs are checked finite).
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrdF64(f64);

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Sparse joint probabilities from the `⌊3·perplexity⌋ + 1` nearest neighbours.
pub fn sparse(x: &Array2<f64>, perplexity: f64) -> SparseP {
    let n = x.nrows();
    let k = ((3.0 * perplexity) as usize + 1).min(n - 1);
    let neighbours = knn(x, k);
    let cond: Vec<Vec<f64>> = neighbours
        .par_iter()
        .map(|nb| {
            let d2: Vec<f64> = nb.iter().map(|e| e.0).collect();
            let mut p = vec![0.0; d2.len()];
            calibrate_row(&d2, perplexity, &mut p);
            p
        })
        .collect();
    // P + Pᵀ as per-row maps, then normalise.
    let mut rows: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n];
    for i in 0..n {
        for (e, &p) in neighbours[i].iter().zip(&cond[i]) {
            rows[i].push((e.1, p));
            rows[e.1 as usize].push((i as u32, p));
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
    use crate::engine::gradcheck::fixtures::random;

    #[test]
    fn kd_tree_neighbours_equal_brute_force() {
        // Random points plus exact duplicates (ties).
        let mut x = random(300, 3, 1.0, 4);
        for r in 0..20 {
            let src = x.row(r).to_owned();
            x.row_mut(299 - r).assign(&src);
        }
        let k = 12;
        let tree = knn(&x, k);
        for (i, found) in tree.iter().enumerate() {
            let mut all: Vec<(f64, u32)> = (0..x.nrows())
                .filter(|&j| j != i)
                .map(|j| (sq_dist(&x, i, j), j as u32))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            all.truncate(k);
            assert_eq!(found, &all, "point {i}");
        }
    }

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
