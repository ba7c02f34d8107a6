//! Barnes–Hut t-SNE gradient, O(N log N) per iteration (van der Maaten 2014).
//!
//! The attraction `A_i = Σ_j p_ij u_ij (y_i − y_j)` runs over the sparse neighbour affinities.
//! The repulsion `R_i = Σ_j w_ij u_ij (y_i − y_j)` and `Z = Σ w` are approximated with a
//! quadtree (2-D) or octree (3-D) rebuilt every iteration: a cell whose width over its
//! distance to `y_i` is below `θ` (0.5) acts as one point of mass `count` at its centre of
//! mass. The gradient is then assembled exactly as in [`super::exact`].

use super::affinities::SparseP;
use super::exact::{kernel, kernel_and_factor};
use rayon::prelude::*;

/// Deeper than this, points are (numerically) identical: the cell stays a leaf.
const MAX_DEPTH: usize = 48;

#[derive(Clone, Debug)]
struct Node<const D: usize> {
    com: [f64; D],
    count: u32,
    /// Side length of the cell.
    width: f64,
    /// The cell's points are `order[start..end]`.
    start: u32,
    end: u32,
    /// Children are the contiguous nodes `first_child..first_child + n_children` (none for a
    /// leaf); keeping siblings together keeps the walk in fewer cache lines.
    first_child: u32,
    n_children: u8,
}

impl<const D: usize> Node<D> {
    fn empty() -> Self {
        Node {
            com: [0.0; D],
            count: 0,
            width: 0.0,
            start: 0,
            end: 0,
            first_child: 0,
            n_children: 0,
        }
    }
}

/// A space-partitioning tree over the current embedding.
pub struct Tree<const D: usize> {
    nodes: Vec<Node<D>>,
    order: Vec<u32>,
}

impl<const D: usize> Tree<D> {
    /// Builds the tree over the points `y` (SoA).
    pub fn build(y: &[Vec<f32>; D]) -> Self {
        let n = y[0].len();
        let mut lo = [f64::INFINITY; D];
        let mut hi = [f64::NEG_INFINITY; D];
        for d in 0..D {
            for &v in &y[d] {
                lo[d] = lo[d].min(v as f64);
                hi[d] = hi[d].max(v as f64);
            }
        }
        let width = (0..D).map(|d| hi[d] - lo[d]).fold(0.0, f64::max) * 1.0001 + 1e-9;
        let centre: [f64; D] = std::array::from_fn(|d| (lo[d] + hi[d]) / 2.0);
        let mut tree = Tree {
            nodes: Vec::with_capacity(2 * n),
            order: (0..n as u32).collect(),
        };
        let mut scratch = vec![0u32; n];
        tree.nodes.push(Node::empty());
        tree.fill_node(0, y, 0, n, centre, width, 0, &mut scratch);
        tree
    }

    #[allow(clippy::too_many_arguments)]
    fn fill_node(
        &mut self,
        id: usize,
        y: &[Vec<f32>; D],
        start: usize,
        end: usize,
        centre: [f64; D],
        width: f64,
        depth: usize,
        scratch: &mut [u32],
    ) {
        let mut com = [0.0; D];
        for &p in &self.order[start..end] {
            for d in 0..D {
                com[d] += y[d][p as usize] as f64;
            }
        }
        let count = end - start;
        com.iter_mut().for_each(|c| *c /= count as f64);
        self.nodes[id] = Node {
            com,
            count: count as u32,
            width,
            start: start as u32,
            end: end as u32,
            first_child: 0,
            n_children: 0,
        };
        if count <= 1 || depth >= MAX_DEPTH {
            return;
        }
        // Counting sort of the points into the 2^D orthants.
        let orthant = |p: u32| -> usize {
            (0..D).fold(0, |acc, d| {
                acc | (((y[d][p as usize] as f64) >= centre[d]) as usize) << d
            })
        };
        let mut counts = vec![0usize; 1 << D];
        for &p in &self.order[start..end] {
            counts[orthant(p)] += 1;
        }
        let mut offsets = vec![0usize; (1 << D) + 1];
        for o in 0..(1 << D) {
            offsets[o + 1] = offsets[o] + counts[o];
        }
        let mut next = offsets.clone();
        for &p in &self.order[start..end] {
            let o = orthant(p);
            scratch[next[o]] = p;
            next[o] += 1;
        }
        self.order[start..end].copy_from_slice(&scratch[..count]);
        // Reserve the children's slots together, then fill each.
        let occupied: Vec<usize> = (0..(1 << D)).filter(|&o| counts[o] > 0).collect();
        let first = self.nodes.len();
        self.nodes
            .extend((0..occupied.len()).map(|_| Node::empty()));
        self.nodes[id].first_child = first as u32;
        self.nodes[id].n_children = occupied.len() as u8;
        for (k, &o) in occupied.iter().enumerate() {
            let child_centre: [f64; D] = std::array::from_fn(|d| {
                centre[d]
                    + if (o >> d) & 1 == 1 {
                        width / 4.0
                    } else {
                        -width / 4.0
                    }
            });
            self.fill_node(
                first + k,
                y,
                start + offsets[o],
                start + offsets[o + 1],
                child_centre,
                width / 2.0,
                depth + 1,
                scratch,
            );
        }
    }

    /// Approximate repulsion `R_i` and `Σ_{j≠i} w_ij` for point `i`.
    fn repulsion(
        &self,
        i: usize,
        y: &[Vec<f32>; D],
        nu: f32,
        theta: f64,
        stack: &mut Vec<u32>,
    ) -> ([f64; D], f64) {
        let yi: [f64; D] = std::array::from_fn(|d| y[d][i] as f64);
        let mut rep = [0.0f64; D];
        let mut z = 0.0f64;
        stack.clear();
        stack.push(0);
        while let Some(id) = stack.pop() {
            let node = &self.nodes[id as usize];
            let diff: [f64; D] = std::array::from_fn(|d| yi[d] - node.com[d]);
            let d2: f64 = diff.iter().map(|v| v * v).sum();
            if node.count == 1 {
                // A one-point leaf: its centre of mass is the point itself.
                if self.order[node.start as usize] as usize != i {
                    let (w, u) = kernel_and_factor(d2 as f32, nu);
                    let (w, u) = (w as f64, u as f64);
                    z += w;
                    for d in 0..D {
                        rep[d] += w * u * diff[d];
                    }
                }
            } else if node.n_children == 0 {
                for &j in &self.order[node.start as usize..node.end as usize] {
                    if j as usize == i {
                        continue;
                    }
                    let dj: [f64; D] = std::array::from_fn(|d| yi[d] - y[d][j as usize] as f64);
                    let (w, u) =
                        kernel_and_factor(dj.iter().map(|v| v * v).sum::<f64>() as f32, nu);
                    let (w, u) = (w as f64, u as f64);
                    z += w;
                    for d in 0..D {
                        rep[d] += w * u * dj[d];
                    }
                }
            } else if node.width * node.width < theta * theta * d2 {
                let (w, u) = kernel_and_factor(d2 as f32, nu);
                let (w, u) = (w as f64, u as f64);
                let m = node.count as f64;
                z += m * w;
                for d in 0..D {
                    rep[d] += m * w * u * diff[d];
                }
            } else {
                stack.extend((node.first_child..node.first_child + node.n_children as u32).rev());
            }
        }
        (rep, z)
    }
}

/// Barnes–Hut gradient into `grad` (row-major `n × D`); returns the approximate `Z`.
pub fn gradient<const D: usize>(
    p: &SparseP,
    y: &[Vec<f32>; D],
    nu: f32,
    exaggeration: f32,
    theta: f64,
    grad: &mut [f64],
) -> f64 {
    let n = y[0].len();
    let tree = Tree::build(y);
    // Points are visited in the tree's order, so that neighbouring points, which walk nearly
    // the same cells, run one after the other (fewer cache misses); the results go back to
    // index order before anything is summed, so the visiting order changes no number.
    let in_tree_order: Vec<(u32, [f64; D], [f64; D], f64)> = tree
        .order
        .par_iter()
        .map_init(Vec::new, |stack, &point| {
            let i = point as usize;
            let mut attr = [0.0f64; D];
            for k in p.indptr[i]..p.indptr[i + 1] {
                let j = p.indices[k] as usize;
                let diff: [f64; D] = std::array::from_fn(|d| (y[d][i] - y[d][j]) as f64);
                let (_, u) = kernel_and_factor(diff.iter().map(|v| v * v).sum::<f64>() as f32, nu);
                for d in 0..D {
                    attr[d] += p.values[k] * u as f64 * diff[d];
                }
            }
            let (rep, z) = tree.repulsion(i, y, nu, theta, stack);
            (point, attr, rep, z)
        })
        .collect();
    let mut rows = vec![([0.0f64; D], [0.0f64; D], 0.0f64); n];
    for (i, a, r, z) in in_tree_order {
        rows[i as usize] = (a, r, z);
    }
    let z: f64 = rows.iter().map(|r| r.2).sum();
    let c = 2.0 * (nu as f64 + 1.0) / nu as f64;
    for (i, (a, r, _)) in rows.iter().enumerate() {
        for d in 0..D {
            grad[i * D + d] = c * (exaggeration as f64 * a[d] - r[d] / z);
        }
    }
    z
}

/// KL(P‖Q) over the sparse affinities, with `Z` from the last gradient.
pub fn kl_divergence<const D: usize>(p: &SparseP, y: &[Vec<f32>; D], nu: f32, z: f64) -> f64 {
    let n = y[0].len();
    (0..n)
        .map(|i| {
            (p.indptr[i]..p.indptr[i + 1])
                .map(|k| {
                    let j = p.indices[k] as usize;
                    let d2: f32 = (0..D).map(|d| (y[d][i] - y[d][j]).powi(2)).sum();
                    let q = (kernel(d2, nu) as f64 / z).max(f64::EPSILON);
                    let pij = p.values[k];
                    if pij > 0.0 {
                        pij * (pij / q).ln()
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tsne::{affinities, exact};
    use crate::engine::gradcheck::fixtures::random;

    /// Every off-diagonal entry of a dense `P` as a sparse one.
    fn all_pairs(p: &[f32], n: usize) -> SparseP {
        let mut sp = SparseP {
            indptr: vec![0],
            indices: Vec::new(),
            values: Vec::new(),
        };
        for i in 0..n {
            for j in (0..n).filter(|&j| j != i) {
                sp.indices.push(j as u32);
                sp.values.push(p[i * n + j] as f64);
            }
            sp.indptr.push(sp.indices.len());
        }
        sp
    }

    /// With all-pairs `P` and `θ = 0` no cell is ever summarised, so Barnes–Hut must give the
    /// exact gradient (and `Z`), up to its f64 accumulation against the exact f32 sums: the
    /// largest difference, relative to the largest gradient entry, must stay below 1e-5.
    /// Without and with early exaggeration (12).
    fn bh_equals_exact_theta0<const D: usize>(nu: f32) {
        let n = 60;
        let x = random(n, 5, 2.0, 30);
        let p = affinities::dense(&x, 8.0);
        let sp = all_pairs(&p, n);
        let y0 = random(n, D, 4.0, 31);
        let y: [Vec<f32>; D] = std::array::from_fn(|d| (0..n).map(|i| y0[[i, d]] as f32).collect());
        for exaggeration in [1.0f32, 12.0] {
            let (mut g_exact, mut g_bh) = (vec![0.0; n * D], vec![0.0; n * D]);
            let z_exact = exact::gradient::<D>(&p, &y, nu, exaggeration, &mut g_exact);
            let z_bh = gradient::<D>(&sp, &y, nu, exaggeration, 0.0, &mut g_bh);
            let scale = g_exact.iter().fold(0.0f64, |m, g| m.max(g.abs()));
            let diff = g_exact
                .iter()
                .zip(&g_bh)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff / scale < 1e-5,
                "{D}-D, exaggeration {exaggeration}: {:e}",
                diff / scale
            );
            assert!(
                (z_exact - z_bh).abs() < 1e-5 * z_exact,
                "Z {z_exact} vs {z_bh}"
            );
        }
    }

    #[test]
    fn bh_equals_exact_theta0_2d() {
        bh_equals_exact_theta0::<2>(1.0);
    }

    #[test]
    fn bh_equals_exact_theta0_3d() {
        bh_equals_exact_theta0::<3>(2.0);
    }

    /// At the θ = 0.5 used in practice the approximation stays close (a few per cent at most).
    #[test]
    fn bh_at_theta_half_is_close() {
        let n = 200;
        let x = random(n, 5, 2.0, 32);
        let p = affinities::dense(&x, 10.0);
        let sp = all_pairs(&p, n);
        let y0 = random(n, 2, 6.0, 33);
        let y: [Vec<f32>; 2] = std::array::from_fn(|d| (0..n).map(|i| y0[[i, d]] as f32).collect());
        let (mut g_exact, mut g_bh) = (vec![0.0; n * 2], vec![0.0; n * 2]);
        exact::gradient::<2>(&p, &y, 1.0, 1.0, &mut g_exact);
        gradient::<2>(&sp, &y, 1.0, 1.0, 0.5, &mut g_bh);
        let norm = |g: &[f64]| g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let d: Vec<f64> = g_exact.iter().zip(&g_bh).map(|(a, b)| a - b).collect();
        let rel = norm(&d) / norm(&g_exact);
        assert!(rel < 0.05, "relative error {rel}");
    }
}
