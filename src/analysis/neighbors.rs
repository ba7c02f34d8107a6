//! The k-nearest-neighbour graph of a representation, built once and read by every stage
//! that needs neighbours: t-SNE's sparse affinities, UMAP's and Leiden's fuzzy graph
//! ([`crate::analysis::umap::fuzzy_graph`]) and the labels' kNN purity.
//!
//! Each point's `k` nearest *other* points, nearest first, ties broken by the lower index,
//! with their squared Euclidean distances. Because the order is total, the first `k' < k`
//! neighbours of a graph built with `k` are exactly those a search for `k'` finds, so one
//! graph serves every consumer ([`Neighbors::nearest`]).
//!
//! [`Neighbors::exact`] searches a k-d tree: O(n log n) for the low-dimensional codes, and
//! exactly the brute-force answer (a test checks it, duplicates included). Queries run in
//! parallel; each point's answer depends on the data alone, so the graph is the same at any
//! thread count.
//!
//! In many dimensions (PCA-50) a k-d tree prunes almost nothing and the exact graph costs n²
//! distances: 746 s for 100,000 cells on a 2-core Intel Xeon. [`Neighbors::build`] then
//! takes NN-descent ([`crate::analysis::nn_descent`]), approximate, seeded, and the same
//! graph at any thread count. Below [`APPROX_MIN_POINTS`] points, or in at most
//! [`EXACT_MAX_DIMS`] dimensions, it stays exact.

use crate::stage::Stage;
use ndarray::Array2;
use rayon::prelude::*;

/// From this many points on, [`Neighbors::build`] may approximate.
pub const APPROX_MIN_POINTS: usize = 20_000;

/// Up to this many dimensions [`Neighbors::build`] stays exact (the k-d tree is fast there).
pub const EXACT_MAX_DIMS: usize = 16;

/// Blocks of queries of [`Neighbors::exact`]: progress between them, and only one block's
/// answers held as small vectors at a time.
const QUERY_BLOCKS: usize = 100;

/// Squared Euclidean distance between rows `i` and `j`.
#[inline]
pub fn sq_dist(x: &Array2<f64>, i: usize, j: usize) -> f64 {
    let (a, b) = (x.row(i), x.row(j));
    match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) => sq_dist_of(a, b),
        _ => sq_dist_of(&a.to_vec(), &b.to_vec()),
    }
}

/// Squared Euclidean distance of two points' coordinates, summed left to right: the one
/// formula of every neighbour search here, so that a neighbour has the same distance, bit for
/// bit, whichever search found it.
#[inline]
pub fn sq_dist_of(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The `k` nearest other points of each of `n` points, flat: point `i`'s are at
/// `i·k .. (i+1)·k`.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbors {
    k: usize,
    indices: Vec<u32>,
    sq_dists: Vec<f64>,
}

impl Neighbors {
    /// The graph every stage reads: exact ([`Neighbors::exact`]) for fewer than
    /// [`APPROX_MIN_POINTS`] points or at most [`EXACT_MAX_DIMS`] dimensions, otherwise
    /// NN-descent under `seed` ([`crate::analysis::nn_descent`]).
    pub fn build(x: &Array2<f64>, k: usize, seed: u64) -> Self {
        Self::build_with(x, k, seed, &mut Stage::silent())
    }

    /// [`Neighbors::build`], showing its progress on `stage` (queries, or NN-descent's
    /// rounds).
    pub fn build_with(x: &Array2<f64>, k: usize, seed: u64, stage: &mut Stage) -> Self {
        if Self::approximates(x.nrows(), x.ncols()) {
            crate::analysis::nn_descent::nn_descent_with(x, k, seed, stage)
        } else {
            Self::exact_with(x, k, stage)
        }
    }

    /// Whether [`Neighbors::build`] approximates for `n` points in `dims` dimensions.
    pub fn approximates(n: usize, dims: usize) -> bool {
        n >= APPROX_MIN_POINTS && dims > EXACT_MAX_DIMS
    }

    /// A graph from flat lists (point `i`'s `k` at `i·k .. (i+1)·k`), already in order.
    pub(crate) fn from_lists(k: usize, indices: Vec<u32>, sq_dists: Vec<f64>) -> Self {
        debug_assert_eq!(indices.len(), sq_dists.len());
        Neighbors {
            k,
            indices,
            sq_dists,
        }
    }

    /// The exact graph of the rows of `x` (`k` is capped at `n − 1`).
    pub fn exact(x: &Array2<f64>, k: usize) -> Self {
        Self::exact_with(x, k, &mut Stage::silent())
    }

    /// [`Neighbors::exact`], the queries in [`QUERY_BLOCKS`] blocks shown on `stage`.
    fn exact_with(x: &Array2<f64>, k: usize, stage: &mut Stage) -> Self {
        let n = x.nrows();
        let k = k.min(n.saturating_sub(1));
        let tree = KdTree::build(x);
        let data = x.as_standard_layout();
        let data = data.as_slice().expect("standard layout");
        let dims = x.ncols();
        let mut nb = Neighbors {
            k,
            indices: Vec::with_capacity(n * k),
            sq_dists: Vec::with_capacity(n * k),
        };
        let block = n.div_ceil(QUERY_BLOCKS).max(1);
        stage.begin(n, "point");
        for start in (0..n).step_by(block) {
            stage.step(start);
            let rows: Vec<Vec<(f64, u32)>> = (start..(start + block).min(n))
                .into_par_iter()
                .map(|i| tree.nearest(&data[i * dims..(i + 1) * dims], i, k))
                .collect();
            for row in rows {
                for (d, j) in row {
                    nb.sq_dists.push(d);
                    nb.indices.push(j);
                }
            }
        }
        nb
    }

    /// Neighbours per point.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of points.
    pub fn n(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }

    /// The first `k` neighbours of point `i` and their squared distances, nearest first.
    ///
    /// # Panics
    /// When `k` exceeds the graph's own.
    pub fn nearest(&self, i: usize, k: usize) -> (&[u32], &[f64]) {
        assert!(k <= self.k, "{k} neighbours asked of a graph of {}", self.k);
        let start = i * self.k;
        (
            &self.indices[start..start + k],
            &self.sq_dists[start..start + k],
        )
    }

    /// How well `embedded` keeps this graph's neighbourhoods: the mean, over points, of the
    /// share of each point's `k` nearest here that are among its `k` nearest in `embedded`
    /// (1 when every neighbourhood is kept, about `k / n` for a random layout).
    ///
    /// # Panics
    /// When the graphs hold different points, or `k` exceeds either graph's.
    pub fn preserved_in(&self, embedded: &Neighbors, k: usize) -> f64 {
        assert_eq!(self.n(), embedded.n(), "graphs of different points");
        let n = self.n();
        if n == 0 || k == 0 {
            return 1.0;
        }
        let kept: usize = (0..n)
            .into_par_iter()
            .map(|i| {
                let low = embedded.nearest(i, k).0;
                self.nearest(i, k)
                    .0
                    .iter()
                    .filter(|j| low.contains(j))
                    .count()
            })
            .sum();
        kept as f64 / (n * k) as f64
    }
}

/// Points per leaf of the k-d tree.
const LEAF: usize = 16;

/// A k-d tree over the rows of a matrix: each internal node splits its points at the median
/// of their widest coordinate.
struct KdTree {
    /// Point indices, grouped by node.
    order: Vec<u32>,
    /// The points' coordinates in `order`'s order, so that a leaf's points lie together in
    /// memory (a million points do not fit in cache; a leaf of rows scattered over the input
    /// costs a cache miss per point).
    points: Vec<f64>,
    dims: usize,
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
            points: Vec::new(),
            dims: x.ncols(),
            nodes: Vec::new(),
        };
        tree.build_node(x, 0, x.nrows());
        tree.points = tree
            .order
            .iter()
            .flat_map(|&p| x.row(p as usize).to_vec())
            .collect();
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

    /// The `k` nearest other points of point `i` (at `query`), nearest first (ties by index).
    ///
    /// Each node waits on the stack with a lower bound on the squared distance of its points
    /// (the splitting planes crossed to reach it), and is skipped when popped if the bound is
    /// already beyond the `k`-th best: checked then, not when pushed, the bound meets the
    /// best list as it stands after the nearer side was searched.
    fn nearest(&self, query: &[f64], i: usize, k: usize) -> Vec<(f64, u32)> {
        // Max-heap of the best k so far, ordered by (distance, index).
        let mut best: std::collections::BinaryHeap<(OrdF64, u32)> =
            std::collections::BinaryHeap::with_capacity(k + 1);
        let mut stack = vec![(0usize, 0.0f64)];
        while let Some((n, bound)) = stack.pop() {
            // `>`, not `>=`: a point at the k-th distance with a lower index still counts.
            if best.len() == k && best.peek().is_some_and(|w| bound > w.0 .0) {
                continue;
            }
            match self.nodes[n] {
                KdNode::Leaf { start, end } => {
                    for p in start..end {
                        let j = self.order[p];
                        if j as usize == i {
                            continue;
                        }
                        let at = &self.points[p * self.dims..(p + 1) * self.dims];
                        let cand = (OrdF64(sq_dist_of(query, at)), j);
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
                    let diff = query[dim] - value;
                    let (near, far) = if diff < 0.0 {
                        (left, right)
                    } else {
                        (right, left)
                    };
                    // Every point beyond the plane is at least `diff²` away in this
                    // coordinate alone, and at least `bound` away as a point of this node.
                    stack.push((far, bound.max(diff * diff)));
                    stack.push((near, bound));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::fixtures::random;

    /// Brute force: every other point, sorted by (distance, index).
    fn brute_force(x: &Array2<f64>, i: usize, k: usize) -> Vec<(f64, u32)> {
        let mut all: Vec<(f64, u32)> = (0..x.nrows())
            .filter(|&j| j != i)
            .map(|j| (sq_dist(x, i, j), j as u32))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        all.truncate(k);
        all
    }

    #[test]
    fn kd_tree_neighbours_equal_brute_force() {
        // Random points plus exact duplicates (ties).
        let mut x = random(300, 3, 1.0, 4);
        for r in 0..20 {
            let src = x.row(r).to_owned();
            x.row_mut(299 - r).assign(&src);
        }
        let nb = Neighbors::exact(&x, 12);
        assert_eq!((nb.n(), nb.k()), (300, 12));
        for i in 0..x.nrows() {
            let (idx, d2) = nb.nearest(i, 12);
            let found: Vec<(f64, u32)> = d2.iter().copied().zip(idx.iter().copied()).collect();
            assert_eq!(found, brute_force(&x, i, 12), "point {i}");
        }
    }

    /// A deeper tree (about 256 leaves) over clustered points in 6 dimensions, a code's
    /// width, with near and exact duplicates as generated atlases have: still exactly the
    /// brute-force answer, so the pruning skips nothing that counts.
    #[test]
    fn deep_trees_over_clustered_duplicates_equal_brute_force() {
        let n = 4000;
        let centres = random(12, 6, 5.0, 21);
        let noise = random(n, 6, 0.05, 22);
        let mut x = Array2::from_shape_fn((n, 6), |(i, d)| centres[[i % 12, d]] + noise[[i, d]]);
        for r in 0..200 {
            let src = x.row(r).to_owned();
            x.row_mut(n - 1 - r).assign(&src);
        }
        let nb = Neighbors::exact(&x, 15);
        for i in (0..n).step_by(7) {
            let (idx, d2) = nb.nearest(i, 15);
            let found: Vec<(f64, u32)> = d2.iter().copied().zip(idx.iter().copied()).collect();
            assert_eq!(found, brute_force(&x, i, 15), "point {i}");
        }
    }

    /// The first k' neighbours of a k-graph are the k'-graph, so one graph serves all.
    #[test]
    fn a_prefix_is_the_smaller_graph() {
        let x = random(200, 4, 1.0, 9);
        let (big, small) = (Neighbors::exact(&x, 20), Neighbors::exact(&x, 7));
        for i in 0..200 {
            assert_eq!(big.nearest(i, 7), small.nearest(i, 7));
        }
    }

    #[test]
    fn preservation_is_one_for_a_scaled_copy_and_low_for_a_shuffle() {
        let x = random(400, 3, 1.0, 5);
        let graph = Neighbors::exact(&x, 10);
        // Scaling keeps every distance's order: every neighbourhood is kept.
        assert_eq!(
            graph.preserved_in(&Neighbors::exact(&(&x * 3.0), 10), 10),
            1.0
        );
        // The rows permuted: point i now sits where point i+1 was, unrelated neighbours.
        let mut shuffled = x.clone();
        for i in 0..400 {
            shuffled.row_mut(i).assign(&x.row((i * 7 + 1) % 400));
        }
        let random_layout = graph.preserved_in(&Neighbors::exact(&shuffled, 10), 10);
        assert!(random_layout < 0.1, "{random_layout}");
        // The first 5 of 10 only: still a share.
        assert_eq!(graph.preserved_in(&graph, 5), 1.0);
    }

    #[test]
    fn the_same_graph_at_any_thread_count() {
        let x = random(500, 5, 1.0, 2);
        let at = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| Neighbors::exact(&x, 15))
        };
        assert_eq!(at(1), at(3));
    }
}
