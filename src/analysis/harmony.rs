//! Harmony (Korsunsky et al. 2019), the linear baseline with batches: the principal
//! components corrected by a mixture of per-cluster linear batch effects. This follows
//! harmonypy 2.1 (the R harmony2 algorithm it runs), step for step, in f64.
//!
//! Notation: `N` cells, `d` PCs, `K` clusters (`min(round(N/30), 100)`, ties to even), `B`
//! batches, `Pr_b` the share of cells in batch `b`, `σ = 0.1`, `θ = 2`.
//!
//! 1. **Start.** `Ẑ` = each cell's PCs scaled to unit length. Initial centroids: `K` random
//!    seed cells; for each, one cell drawn with probability ∝ its cosine distance to the
//!    seed; then 10 Lloyd steps (squared Euclidean) from those cells; unit-length centroids `Y`.
//! 2. **Soft clusters.** `dist_kj = 2(1 − Y_k·Ẑ_j)`, `R_·j = softmax(−dist_·j/σ)`;
//!    `O_kb = Σ_{j∈b} R_kj` (observed) and `E_kb = Pr_b Σ_j R_kj` (expected).
//! 3. **Clustering with the diversity penalty** (4 rounds per iteration): the cells in a
//!    random order, in 20 blocks; each block is taken out of `O` and `E`, its cells
//!    reassigned with
//!    `R_kj ∝ exp(−dist_kj/σ) · ((2E_kb + 1)/(O_kb + E_kb + 1))^θ` (`b` the cell's batch),
//!    and put back. `dist` (so `Y`) is fixed during the rounds.
//!    Objective: `(2000/N)·[Σ R·dist + σ Σ R log R + θσ Σ_kb O_kb log((O_kb + E_kb + 1)/(2E_kb + 1))]`.
//! 4. **Correction** (mixture of experts). Per cluster `k`, a ridge regression of the
//!    uncorrected PCs on [intercept, batch one-hot], each cell weighted by `R_kj`, over the
//!    batches with `O_kb/N_b > 10⁻⁵` (when two or more), penalty `λ_kb = 0.2·E_kb` on the batch
//!    terms only:
//!    `D_b = o_b + λ_b`, `S = Σ_b o_b − Σ_b o_b²/D_b`,
//!    `W_0 = (Σ_b RZ_b − Σ_b (o_b/D_b) RZ_b)/S`, `W_b = (RZ_b − o_b W_0)/D_b`
//!    (`o_b = Σ_{j∈b} R_kj`, `RZ_b = Σ_{j∈b} R_kj z_j`). Then
//!    `z'_j = z_j − Σ_k R_kj W_{b(j),k}` (the intercept stays) and `Y_k = W_0/‖W_0‖`.
//! 5. Repeat 2–4 (from the corrected cells, unit length) until the objective falls by less
//!    than 1 % in an iteration (`0 ≤ Δ/|old| < 0.01`), at most 10 iterations.
//!
//! Randomness enters at the seed cells, the drawn cells and each round's order. harmonypy
//! takes them from C++'s `mt19937`; this port from a seeded ChaCha stream ([`Draws::Seeded`])
//! or, to be checked against harmonypy's own output, from its recorded choices
//! ([`Draws::Recorded`], `tests/harmony_reference.rs`).

use crate::engine::rng::{stream, Stream};
use crate::error::{Error, Result};
use ndarray::{Array2, Axis};
use rand::seq::SliceRandom;
use rand::Rng;
use rayon::prelude::*;

/// Harmony's settings; [`HarmonyOptions::new`] gives harmonypy's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct HarmonyOptions {
    /// Clusters (`None`: `min(round(N/30), 100)`).
    pub clusters: Option<usize>,
    pub sigma: f64,
    pub theta: f64,
    /// Ridge penalty per unit of expected cluster size in a batch.
    pub alpha: f64,
    /// Share of the cells per block of a clustering round.
    pub block_size: f64,
    pub max_iterations: usize,
    pub rounds_per_iteration: usize,
    pub epsilon_cluster: f64,
    pub epsilon_harmony: f64,
    /// A batch takes part in a cluster's correction above this share of its cells.
    pub batch_prop_cutoff: f64,
}

impl HarmonyOptions {
    pub fn new() -> Self {
        HarmonyOptions {
            clusters: None,
            sigma: 0.1,
            theta: 2.0,
            alpha: 0.2,
            block_size: 0.05,
            max_iterations: 10,
            rounds_per_iteration: 4,
            epsilon_cluster: 1e-3,
            epsilon_harmony: 1e-2,
            batch_prop_cutoff: 1e-5,
        }
    }
}

impl Default for HarmonyOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the random choices come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Draws {
    /// A seeded stream.
    Seeded(u64),
    /// Given: the cells the Lloyd steps start from (one per cluster), and the order of the
    /// cells in each clustering round, round after round.
    Recorded {
        initial_cells: Vec<usize>,
        orders: Vec<Vec<usize>>,
    },
}

/// The corrected PCs and how Harmony got there.
#[derive(Clone, Debug)]
pub struct Harmony {
    /// Cells × PCs.
    pub corrected: Array2<f64>,
    /// Soft cluster assignments, clusters × cells.
    pub assignments: Array2<f64>,
    /// The objective at the start and after each iteration.
    pub objective: Vec<f64>,
    pub iterations: usize,
}

/// Runs Harmony on `pcs` (cells × PCs) with each cell's batch (`0..n_batches`).
pub fn harmony(
    pcs: &Array2<f64>,
    batch: &[u32],
    n_batches: usize,
    opts: &HarmonyOptions,
    draws: &Draws,
) -> Result<Harmony> {
    let (n, d) = pcs.dim();
    if batch.len() != n || batch.iter().any(|&b| b as usize >= n_batches) {
        return Err(Error::invalid("Harmony: one batch in 0..B per cell"));
    }
    if n < 2 || d == 0 || pcs.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            "Harmony needs two or more cells with finite PCs",
        ));
    }
    let k = opts
        .clusters
        .unwrap_or_else(|| ((n as f64 / 30.0).round_ties_even().min(100.0) as usize).max(1))
        .min(n);
    let mut rng = match draws {
        Draws::Seeded(seed) => Some(stream(*seed, Stream::Harmony)),
        Draws::Recorded { .. } => None,
    };
    let mut orders = match draws {
        Draws::Recorded { orders, .. } => Some(orders.iter()),
        Draws::Seeded(_) => None,
    };
    let z = pcs; // N × d, one row per cell
    let mut cos = unit_rows(z);
    let start = match draws {
        Draws::Seeded(_) => drawn_cells(&cos, k, rng.as_mut().expect("seeded")),
        Draws::Recorded { initial_cells, .. } => initial_cells.clone(),
    };
    if start.len() != k || start.iter().any(|&c| c >= n) {
        return Err(Error::invalid("Harmony: one start cell per cluster"));
    }
    let mut y = unit_rows(&lloyd(&cos, &start, LLOYD_STEPS));
    let mut state = State::new(batch, n_batches, k, opts);
    state.assign(&y, &cos);
    let mut objective = vec![state.objective()];
    let mut corrected = z.clone();
    let mut iterations = 0;
    for it in 0..opts.max_iterations {
        if it > 0 {
            cos = unit_rows(&corrected);
            state.assign(&y, &cos);
        }
        let mut round_objective = Vec::new();
        for round in 0..opts.rounds_per_iteration {
            let order: Vec<usize> = match (&mut rng, &mut orders) {
                (Some(rng), _) => {
                    let mut o: Vec<usize> = (0..n).collect();
                    o.shuffle(rng);
                    o
                }
                (None, Some(orders)) => orders
                    .next()
                    .filter(|o| o.len() == n)
                    .ok_or_else(|| {
                        Error::invalid("Harmony: a recorded order per round, each of every cell")
                    })?
                    .clone(),
                (None, None) => unreachable!("one source of draws"),
            };
            round_objective.push(state.update(&order, opts));
            if round > WINDOW && converged_rounds(&round_objective, opts.epsilon_cluster) {
                break;
            }
        }
        objective.push(*round_objective.last().expect("a round ran"));
        let intercepts;
        (corrected, intercepts) = state.correct(z, &y, opts);
        y = unit_rows(&intercepts);
        iterations = it + 1;
        let (old, new) = (
            objective[objective.len() - 2],
            objective[objective.len() - 1],
        );
        let delta = if old == 0.0 {
            if new == 0.0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (old - new) / old.abs()
        };
        if (0.0..opts.epsilon_harmony).contains(&delta) {
            break;
        }
    }
    Ok(Harmony {
        corrected,
        assignments: state.r.t().to_owned(),
        objective,
        iterations,
    })
}

/// Lloyd steps of the initial k-means (always this many).
const LLOYD_STEPS: usize = 10;
/// Rounds the clustering's convergence check looks back over.
const WINDOW: usize = 3;

/// Every row scaled to unit length (a zero row stays).
fn unit_rows(x: &Array2<f64>) -> Array2<f64> {
    let mut out = x.clone();
    for mut row in out.rows_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
    out
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The start cells: `k` random seed cells, and for each a cell drawn with probability ∝ its
/// cosine distance to the seed (a cell already drawn is not drawn again).
fn drawn_cells(cos: &Array2<f64>, k: usize, rng: &mut impl Rng) -> Vec<usize> {
    let n = cos.nrows();
    let seeds: Vec<usize> = (0..k).map(|_| rng.random_range(0..n)).collect();
    let mut taken = vec![false; n];
    let mut chosen: Vec<usize> = Vec::with_capacity(k);
    for &s in &seeds {
        let y = cos.row(s).to_vec();
        let mut best: Option<(f64, usize)> = None;
        for (j, row) in cos.rows().into_iter().enumerate() {
            // −ln u / dist is smallest for a cell drawn ∝ dist (an exponential race).
            let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            if taken[j] {
                continue;
            }
            let dist = (2.0 * (1.0 - dot(&y, row.as_slice().expect("row")))).abs();
            let key = -u.ln() / (dist + 1e-10);
            if best.is_none_or(|(b, _)| key < b) {
                best = Some((key, j));
            }
        }
        let pick = best.map_or(s, |(_, j)| j);
        taken[pick] = true;
        chosen.push(pick);
    }
    chosen
}

/// `steps` Lloyd iterations from the cells `start` (rows of `x`): squared Euclidean
/// assignment (lowest index on ties), means of the assigned cells; an emptied cluster takes
/// the last cell of a cluster with two or more (the n-th emptied, in index order, from the
/// n-th such cluster in decreasing index order). Returns the means, one row per cluster.
fn lloyd(x: &Array2<f64>, start: &[usize], steps: usize) -> Array2<f64> {
    let (n, d) = x.dim();
    let k = start.len();
    let mut means = x.select(Axis(0), start);
    for _ in 0..steps {
        let assign: Vec<usize> = (0..n)
            .into_par_iter()
            .map(|j| {
                let xj = x.row(j);
                let xj = xj.as_slice().expect("row");
                let mut best = (f64::INFINITY, 0);
                for (c, m) in means.rows().into_iter().enumerate() {
                    let d2: f64 = xj
                        .iter()
                        .zip(m.as_slice().expect("row"))
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    if d2 < best.0 {
                        best = (d2, c);
                    }
                }
                best.1
            })
            .collect();
        let mut sums = Array2::<f64>::zeros((k, d));
        let mut count = vec![0usize; k];
        let mut last = vec![0usize; k];
        for (j, &c) in assign.iter().enumerate() {
            sums.row_mut(c).scaled_add(1.0, &x.row(j));
            count[c] += 1;
            last[c] = j;
        }
        let live: Vec<usize> = (0..k).rev().filter(|&c| count[c] >= 2).collect();
        let mut donors = live.iter();
        for (c, &members) in count.iter().enumerate() {
            if members > 0 {
                means.row_mut(c).assign(&(&sums.row(c) / members as f64));
            } else if let Some(&donor) = donors.next() {
                means.row_mut(c).assign(&x.row(last[donor]));
            }
        }
    }
    means
}

/// Whether the clustering's objective settled: the sum of the last three rounds moved by
/// less than `epsilon` from that of the three before (windows overlapping by two).
fn converged_rounds(objective: &[f64], epsilon: f64) -> bool {
    let m = objective.len();
    if m <= WINDOW {
        return false;
    }
    let old: f64 = objective[m - 1 - WINDOW..m - 1].iter().sum();
    let new: f64 = objective[m - WINDOW..].iter().sum();
    ((old - new) / old).abs() < epsilon
}

/// The soft clusters between steps: `R` and `dist` (cells × clusters), `O` and `E`.
struct State<'a> {
    batch: &'a [u32],
    /// `Pr_b` and `N_b`.
    share: Vec<f64>,
    size: Vec<f64>,
    theta: f64,
    sigma: f64,
    r: Array2<f64>,
    dist: Array2<f64>,
    /// `(K, B)`.
    observed: Array2<f64>,
    expected: Array2<f64>,
}

impl<'a> State<'a> {
    fn new(batch: &'a [u32], n_batches: usize, k: usize, opts: &HarmonyOptions) -> Self {
        let n = batch.len();
        let mut size = vec![0.0f64; n_batches];
        batch.iter().for_each(|&b| size[b as usize] += 1.0);
        State {
            batch,
            share: size.iter().map(|s| s / n as f64).collect(),
            size,
            theta: opts.theta,
            sigma: opts.sigma,
            r: Array2::zeros((n, k)),
            dist: Array2::zeros((n, k)),
            observed: Array2::zeros((k, n_batches)),
            expected: Array2::zeros((k, n_batches)),
        }
    }

    /// Step 2: `dist` from the centroids (rows of `y`), `R` without the penalty, then `O`
    /// and `E`.
    fn assign(&mut self, y: &Array2<f64>, cos: &Array2<f64>) {
        self.dist = cos.dot(&y.t()).mapv(|s| 2.0 * (1.0 - s));
        let sigma = self.sigma;
        ndarray::Zip::from(self.r.rows_mut())
            .and(self.dist.rows())
            .par_for_each(|mut r, dist| {
                let logits: Vec<f64> = dist.iter().map(|d| -d / sigma).collect();
                r.assign(&ndarray::Array1::from(softmax(&logits)));
            });
        self.observed.fill(0.0);
        for (j, &b) in self.batch.iter().enumerate() {
            let mut o = self.observed.column_mut(b as usize);
            o += &self.r.row(j);
        }
        let totals = self.r.sum_axis(Axis(0));
        for (mut row, t) in self.expected.rows_mut().into_iter().zip(&totals) {
            for (e, p) in row.iter_mut().zip(&self.share) {
                *e = t * p;
            }
        }
    }

    /// Step 3, one round in `order`; returns the objective.
    fn update(&mut self, order: &[usize], opts: &HarmonyOptions) -> f64 {
        let n = order.len();
        let k = self.r.ncols();
        let blocks = (1.0 / opts.block_size).ceil() as usize;
        let per_block = ((n as f64 * opts.block_size) as usize).max(1);
        let (mut error, mut entropy) = (0.0f64, 0.0f64);
        for i in 0..blocks {
            let lo = i * per_block;
            if lo >= n {
                break;
            }
            let hi = if i == blocks - 1 {
                n
            } else {
                (lo + per_block).min(n)
            };
            let cells = &order[lo..hi];
            self.move_block(cells, -1.0);
            // `θ log((2E + 1)/(O + E + 1))`, (K, B), frozen for the block.
            let penalty = ndarray::Zip::from(&self.expected)
                .and(&self.observed)
                .map_collect(|&e, &o| self.theta * ((2.0 * e + 1.0).ln() - (o + e + 1.0).ln()));
            for &j in cells {
                let b = self.batch[j] as usize;
                let logits: Vec<f64> = (0..k)
                    .map(|c| -self.dist[[j, c]] / self.sigma + penalty[[c, b]])
                    .collect();
                let r = softmax(&logits);
                for (c, &v) in r.iter().enumerate() {
                    self.r[[j, c]] = v;
                    error += v * self.dist[[j, c]];
                    if v > 0.0 {
                        entropy += self.sigma * v * v.ln();
                    }
                }
            }
            self.move_block(cells, 1.0);
        }
        (error + entropy + self.cross_entropy()) * 2000.0 / n as f64
    }

    /// Adds (`sign` 1) or takes out (−1) the cells' assignments from `O` and `E`.
    fn move_block(&mut self, cells: &[usize], sign: f64) {
        let k = self.r.ncols();
        let mut totals = vec![0.0f64; k];
        for &j in cells {
            let b = self.batch[j] as usize;
            for (c, t) in totals.iter_mut().enumerate() {
                let v = self.r[[j, c]];
                self.observed[[c, b]] += sign * v;
                *t += v;
            }
        }
        for (c, t) in totals.iter().enumerate() {
            for (bb, p) in self.share.iter().enumerate() {
                self.expected[[c, bb]] += sign * t * p;
            }
        }
    }

    /// `θσ Σ_kb O_kb log((O_kb + E_kb + 1)/(2E_kb + 1))`.
    fn cross_entropy(&self) -> f64 {
        self.observed
            .iter()
            .zip(&self.expected)
            .map(|(&o, &e)| self.theta * self.sigma * o * ((o + e + 1.0) / (2.0 * e + 1.0)).ln())
            .sum()
    }

    /// The objective of the current `R` (step 3's formula).
    fn objective(&self) -> f64 {
        let error: f64 = self.r.iter().zip(&self.dist).map(|(r, d)| r * d).sum();
        let entropy: f64 = self
            .r
            .iter()
            .filter(|&&v| v > 0.0)
            .map(|v| self.sigma * v * v.ln())
            .sum();
        (error + entropy + self.cross_entropy()) * 2000.0 / self.r.nrows() as f64
    }

    /// Step 4: the corrected cells (N × d) and the new centroids (the intercepts, K × d; a
    /// cluster without two kept batches keeps its centroid).
    fn correct(
        &self,
        z: &Array2<f64>,
        y: &Array2<f64>,
        opts: &HarmonyOptions,
    ) -> (Array2<f64>, Array2<f64>) {
        let (n, d) = z.dim();
        let (k, n_b) = self.observed.dim();
        let mut corrected = z.clone();
        let mut intercepts = y.clone();
        for c in 0..k {
            let kept: Vec<bool> = (0..n_b)
                .map(|b| self.observed[[c, b]] / self.size[b] > opts.batch_prop_cutoff)
                .collect();
            if kept.iter().filter(|&&k| k).count() < 2 {
                continue;
            }
            // o_b = Σ_{j∈b} R_kj and RZ_b = Σ_{j∈b} R_kj z_j over the kept batches.
            let mut o = vec![0.0f64; n_b];
            let mut rz = Array2::<f64>::zeros((n_b, d));
            for j in 0..n {
                let b = self.batch[j] as usize;
                if kept[b] {
                    let w = self.r[[j, c]];
                    o[b] += w;
                    rz.row_mut(b).scaled_add(w, &z.row(j));
                }
            }
            let total: f64 = (0..n_b).filter(|&b| kept[b]).map(|b| o[b]).sum();
            let mut schur = total;
            let mut rhs = ndarray::Array1::<f64>::zeros(d);
            for b in (0..n_b).filter(|&b| kept[b]) {
                let ratio = o[b] / (o[b] + opts.alpha * self.expected[[c, b]]);
                schur -= ratio * o[b];
                rhs.scaled_add(1.0 - ratio, &rz.row(b));
            }
            if schur <= 1e-10 * total {
                continue;
            }
            let intercept = rhs / schur;
            for b in (0..n_b).filter(|&b| kept[b]) {
                let effect = (&rz.row(b) - &(o[b] * &intercept))
                    / (o[b] + opts.alpha * self.expected[[c, b]]);
                for j in (0..n).filter(|&j| self.batch[j] as usize == b) {
                    corrected.row_mut(j).scaled_add(-self.r[[j, c]], &effect);
                }
            }
            intercepts.row_mut(c).assign(&intercept);
        }
        (corrected, intercepts)
    }
}

/// `softmax(v)` with the maximum subtracted first.
fn softmax(v: &[f64]) -> Vec<f64> {
    let max = v.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    let e: Vec<f64> = v.iter().map(|x| (x - max).exp()).collect();
    let total: f64 = e.iter().sum();
    e.into_iter().map(|x| x / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two batches shifted apart, each holding the same three groups: Harmony pulls each
    /// group's batches together, far more than the groups move towards each other.
    #[test]
    fn shifted_batches_are_pulled_together() {
        let mut rng = stream(4, Stream::Init);
        let n = 180;
        let batch: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
        let group: Vec<usize> = (0..n).map(|i| (i / 2) % 3).collect();
        let pcs = Array2::from_shape_fn((n, 3), |(i, j)| {
            let centre = [[0.0, 10.0, 0.0], [10.0, 0.0, 0.0], [0.0, 0.0, 10.0]][group[i]][j];
            let shift = if batch[i] == 1 {
                [3.0, 3.0, -2.0][j]
            } else {
                0.0
            };
            centre + shift + 0.3 * rng.random::<f64>()
        });
        let h = harmony(&pcs, &batch, 2, &HarmonyOptions::new(), &Draws::Seeded(1)).unwrap();
        let gap = |x: &Array2<f64>, g: usize| {
            let mean = |b: u32| {
                let rows: Vec<usize> = (0..n).filter(|&i| group[i] == g && batch[i] == b).collect();
                x.select(Axis(0), &rows).mean_axis(Axis(0)).unwrap()
            };
            (&mean(0) - &mean(1)).mapv(|v| v * v).sum().sqrt()
        };
        for g in 0..3 {
            assert!(gap(&h.corrected, g) < 0.3 * gap(&pcs, g), "group {g}");
        }
        assert_eq!(h.assignments.dim(), (6, n));
        let again = harmony(&pcs, &batch, 2, &HarmonyOptions::new(), &Draws::Seeded(1)).unwrap();
        assert_eq!(h.corrected, again.corrected, "same seed, same result");
    }
}
