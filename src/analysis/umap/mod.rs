//! UMAP (McInnes, Healy & Melville 2018), written from its definition with umap-learn's
//! defaults: 15 neighbours, `min_dist` 0.1, `spread` 1, 5 negative samples per positive one,
//! learning rate 1 decaying linearly, 500 epochs up to 10,000 points and 200 above, to
//! which cellvae adds 100 above 50,000 ([`default_epochs`]).
//!
//! 1. The k nearest neighbours ([`crate::analysis::neighbors`]): `k − 1` others, the point
//!    itself counting as the first, as umap-learn counts it.
//! 2. Per point, `ρ_i` = distance to its nearest neighbour and `σ_i` by bisection so that
//!    `Σ_j exp(−max(0, d_ij − ρ_i)/σ_i) = log₂ k` (tolerance 1e-5, 64 steps, `σ_i` at least
//!    1e-3 of the mean neighbour distance); memberships `a_ij = exp(−max(0, d_ij − ρ_i)/σ_i)`.
//! 3. The fuzzy union `w_ij = a_ij + a_ji − a_ij·a_ji`; edges below `max w / epochs` dropped.
//! 4. The low-dimensional similarity `q(d) = 1/(1 + a·d^{2b})`, with `a, b` fitted by least
//!    squares to `1` below `min_dist` and `exp(−(d − min_dist)/spread)` above, on 300 points
//!    of `[0, 3·spread]` (Gauss–Newton; `a = 1.577`, `b = 0.895` for the defaults).
//! 5. Stochastic gradient descent on the cross-entropy: each edge is sampled every
//!    `max w / w_ij` epochs; a sample pulls its two ends together with
//!    `−2ab d^{2(b−1)}/(1 + a d^{2b}) · (y_i − y_j)`, then `y_i` is pushed from 5 random points
//!    with `2b/((0.001 + d²)(1 + a d^{2b})) · (y_i − y_k)`; every step is clipped to ±4 per
//!    coordinate and scaled by the learning rate.
//!
//! Initialisation: the first principal components of the input (umap-learn's `init="pca"`;
//! its default is a spectral embedding of the graph), scaled to `[0, 10]` per coordinate, plus
//! normal noise of sd 1e-4. The descent runs in parallel over fixed blocks of points, each
//! with its own seeded ChaCha stream, moving only its own points and reading the others as
//! they stood at the start of the epoch, so a seed gives the same embedding on
//! any machine and any number of threads (umap-learn's parallel descent is not reproducible;
//! with a seed it runs serially).

use crate::analysis::neighbors::Neighbors;
use crate::analysis::pca::{largest_entry_positive, symmetric_eigen};
mod sgd;

use crate::engine::rng::{stream, Stream};
use crate::error::{Error, Result};
use crate::stage::Stage;
use ndarray::Array2;
use rand::Rng;
use rand_distr::StandardNormal;
use sgd::optimise;
#[cfg(test)]
use sgd::BLOCK_POINTS;

/// The settings, umap-learn's defaults by [`UmapOptions::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct UmapOptions {
    pub dims: usize,
    /// Neighbourhood size `k`, the point itself included.
    pub neighbors: usize,
    pub min_dist: f64,
    pub spread: f64,
    /// Epochs of gradient descent (`None`: [`default_epochs`] of the number of points).
    pub epochs: Option<usize>,
    pub negative_sample_rate: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl UmapOptions {
    pub fn new(dims: usize, seed: u64) -> Self {
        UmapOptions {
            dims,
            neighbors: 15,
            min_dist: 0.1,
            spread: 1.0,
            epochs: None,
            negative_sample_rate: 5,
            learning_rate: 1.0,
            seed,
        }
    }
}

/// The weighted graph's edges, `head → tail` with weight `w`, ordered by head then tail.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub head: Vec<u32>,
    pub tail: Vec<u32>,
    pub weight: Vec<f64>,
}

/// Embeds the rows of `x` in `opts.dims` dimensions.
pub fn umap(x: &Array2<f64>, opts: &UmapOptions) -> Result<Array2<f64>> {
    check(x, opts)?;
    let graph = fuzzy_graph(
        &Neighbors::build(x, opts.neighbors - 1, opts.seed),
        opts.neighbors,
    );
    umap_on(x, &graph, opts)
}

/// [`umap`] with the fuzzy graph already built ([`fuzzy_graph`] of `opts.neighbors`, the
/// one Leiden clusters).
pub fn umap_on(x: &Array2<f64>, graph: &Graph, opts: &UmapOptions) -> Result<Array2<f64>> {
    umap_on_with(x, graph, opts, &mut Stage::silent())
}

/// [`umap_on`], showing its epochs on `stage`.
pub fn umap_on_with(
    x: &Array2<f64>,
    graph: &Graph,
    opts: &UmapOptions,
    stage: &mut Stage,
) -> Result<Array2<f64>> {
    check(x, opts)?;
    let n = x.nrows();
    let epochs = opts.epochs.unwrap_or_else(|| default_epochs(n));
    let (a, b) = fit_ab(opts.spread, opts.min_dist);
    let mut rng = stream(opts.seed, Stream::Umap);
    let mut y = initialise(x, opts.dims, &mut rng);
    optimise(&mut y, graph, a, b, epochs, opts, stage);
    Ok(y)
}

/// The epochs of gradient descent for `n` points: umap-learn's 500 up to 10,000 points and
/// 200 above, then 100 above 50,000.
///
/// Each epoch costs time in proportion to `n` and samples each edge as often at any `n`, so
/// at atlas size the epochs are most of UMAP's time. Halving them above 50,000 points was
/// chosen by the neighbourhoods the layout keeps ([`Neighbors::preserved_in`], no labels;
/// `examples/umap_epochs.rs`): on 99,694 generated cells, 100 epochs kept 0.391 of each
/// point's 14 nearest β-VAE codes against 0.416 with 200 and 0.431 with 500, and 0.441 of
/// the PCA-50 neighbours against 0.443 with 200, in half the time (one-off, Intel Xeon).
pub fn default_epochs(n: usize) -> usize {
    match n {
        0..=10_000 => 500,
        10_001..=50_000 => 200,
        _ => 100,
    }
}

/// Rejects settings and inputs UMAP cannot embed.
fn check(x: &Array2<f64>, opts: &UmapOptions) -> Result<()> {
    let n = x.nrows();
    if opts.neighbors < 2 {
        return Err(Error::invalid("--neighbors must be at least 2"));
    }
    if n < opts.neighbors + 1 {
        return Err(Error::invalid(format!(
            "UMAP with {} neighbours needs more than {} points; the input has {n}",
            opts.neighbors, opts.neighbors
        )));
    }
    if !(opts.min_dist >= 0.0 && opts.spread > 0.0 && opts.min_dist < 3.0 * opts.spread) {
        return Err(Error::invalid(
            "--min-dist must be at least 0 and below three times the spread",
        ));
    }
    if opts.dims == 0 {
        return Err(Error::invalid("--dims must be at least 1"));
    }
    if opts.epochs == Some(0) {
        return Err(Error::invalid("--epochs must be at least 1"));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("the input holds a value that is not finite"));
    }
    Ok(())
}

/// Steps 2–3 of the module doc: the symmetric fuzzy graph of the `k`-neighbourhoods (the
/// point and its `k − 1` nearest others in `nb`, which must hold at least that many).
pub fn fuzzy_graph(nb: &Neighbors, k: usize) -> Graph {
    let n = nb.n();
    let others = k - 1;
    let target = (k as f64).log2();
    let mean_all = (0..n)
        .flat_map(|i| nb.nearest(i, others).1.iter().map(|d2| d2.sqrt()))
        .sum::<f64>()
        / (n * k) as f64; // umap-learn averages over k columns, the zero self-distance included
                          // (row, column, a_row→col, a_col→row)
    let mut entries: Vec<(u32, u32, f64, f64)> = Vec::with_capacity(2 * n * others);
    for i in 0..n {
        let (idx, d2) = nb.nearest(i, others);
        let d: Vec<f64> = d2.iter().map(|e| e.sqrt()).collect();
        let (rho, sigma) = smooth_distances(&d, target, mean_all);
        for (&dij, &j) in d.iter().zip(idx) {
            let a = if dij - rho <= 0.0 || sigma == 0.0 {
                1.0
            } else {
                (-(dij - rho) / sigma).exp()
            };
            entries.push((i as u32, j, a, 0.0));
            entries.push((j, i as u32, 0.0, a));
        }
    }
    entries.sort_by_key(|p| (p.0, p.1));
    let mut g = Graph {
        head: Vec::new(),
        tail: Vec::new(),
        weight: Vec::new(),
    };
    let mut k = 0;
    while k < entries.len() {
        let (i, j) = (entries[k].0, entries[k].1);
        let (mut a, mut b) = (0.0, 0.0);
        while k < entries.len() && (entries[k].0, entries[k].1) == (i, j) {
            a += entries[k].2;
            b += entries[k].3;
            k += 1;
        }
        let w = a + b - a * b;
        if w > 0.0 {
            g.head.push(i);
            g.tail.push(j);
            g.weight.push(w);
        }
    }
    g
}

/// `(ρ, σ)` of one point from its distances to its `k − 1` nearest others, nearest first.
fn smooth_distances(d: &[f64], target: f64, mean_all: f64) -> (f64, f64) {
    const TOLERANCE: f64 = 1e-5;
    const MIN_SCALE: f64 = 1e-3;
    let rho = d.iter().copied().find(|&v| v > 0.0).unwrap_or(0.0);
    let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
    for _ in 0..64 {
        let psum: f64 = d
            .iter()
            .map(|&v| {
                if v - rho > 0.0 {
                    (-(v - rho) / mid).exp()
                } else {
                    1.0
                }
            })
            .sum();
        if (psum - target).abs() < TOLERANCE {
            break;
        }
        if psum > target {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            mid = if hi == f64::INFINITY {
                mid * 2.0
            } else {
                (lo + hi) / 2.0
            };
        }
    }
    // umap-learn's mean runs over the k columns, the zero self-distance included.
    let mean_i = d.iter().sum::<f64>() / (d.len() + 1) as f64;
    let floor = MIN_SCALE * if rho > 0.0 { mean_i } else { mean_all };
    (rho, mid.max(floor))
}

/// Least-squares `a, b` of `1/(1 + a x^{2b})` against umap-learn's target curve (Gauss–Newton
/// from `a = b = 1`, with step halving).
pub fn fit_ab(spread: f64, min_dist: f64) -> (f64, f64) {
    let xs: Vec<f64> = (0..300).map(|i| 3.0 * spread * i as f64 / 299.0).collect();
    let target: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                (-(x - min_dist) / spread).exp()
            }
        })
        .collect();
    let residuals = |a: f64, b: f64| -> f64 {
        xs.iter()
            .zip(&target)
            .map(|(&x, &t)| (1.0 / (1.0 + a * x.powf(2.0 * b)) - t).powi(2))
            .sum()
    };
    let (mut a, mut b) = (1.0f64, 1.0f64);
    let mut cost = residuals(a, b);
    for _ in 0..200 {
        // J = ∂f/∂(a, b) with f = 1/(1 + a x^{2b}); normal equations JᵀJ δ = −Jᵀr.
        let (mut jaa, mut jab, mut jbb, mut ga, mut gb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &t) in xs.iter().zip(&target) {
            if x == 0.0 {
                continue; // f = 1 whatever a, b: no gradient
            }
            let p = x.powf(2.0 * b);
            let f = 1.0 / (1.0 + a * p);
            let (da, db) = (-p * f * f, -a * p * 2.0 * x.ln() * f * f);
            let r = f - t;
            jaa += da * da;
            jab += da * db;
            jbb += db * db;
            ga += da * r;
            gb += db * r;
        }
        let det = jaa * jbb - jab * jab;
        if det.abs() < 1e-300 {
            break;
        }
        let (step_a, step_b) = (-(jbb * ga - jab * gb) / det, -(jaa * gb - jab * ga) / det);
        let mut scale = 1.0;
        let mut improved = false;
        for _ in 0..30 {
            let (na, nb) = (a + scale * step_a, b + scale * step_b);
            if na > 0.0 && nb > 0.0 {
                let c = residuals(na, nb);
                if c < cost {
                    (a, b, cost, improved) = (na, nb, c, true);
                    break;
                }
            }
            scale /= 2.0;
        }
        if !improved || (scale * step_a).abs() + (scale * step_b).abs() < 1e-13 {
            break;
        }
    }
    (a, b)
}

/// The first `dims` principal components of `x`, each scaled to `[0, 10]`, plus N(0, 1e-4²).
fn initialise(x: &Array2<f64>, dims: usize, rng: &mut impl Rng) -> Array2<f64> {
    let (n, d) = x.dim();
    let mean = x.mean_axis(ndarray::Axis(0)).expect("at least one row");
    let centred = x - &mean;
    let cov = centred.t().dot(&centred);
    // Eigenvectors of the covariance, largest eigenvalue first (PCA's own Jacobi solver).
    let (_, vectors) = symmetric_eigen(&cov);
    let mut y = Array2::<f64>::zeros((n, dims));
    for c in 0..dims {
        // Components beyond the input's width stay 0 (then only the noise spreads them).
        if c < d {
            let mut v = vectors.column(c).to_owned();
            largest_entry_positive(v.view_mut());
            y.column_mut(c).assign(&centred.dot(&v));
        }
        let col = y.column(c);
        let (lo, hi) = col
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        y.column_mut(c).mapv_inplace(|v| 10.0 * (v - lo) / span);
    }
    y.mapv_inplace(|v| v + 1e-4 * rng.sample::<f64, _>(StandardNormal));
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::fixtures::random;

    /// Three well-separated 5-D blobs of 60 points.
    fn blobs() -> (Array2<f64>, Vec<usize>) {
        let noise = random(180, 5, 1.0, 3);
        let x = Array2::from_shape_fn((180, 5), |(i, d)| {
            let centre = if d == i / 60 { 20.0 } else { 0.0 };
            centre + noise[[i, d]]
        });
        (x, (0..180).map(|i| i / 60).collect())
    }

    /// umap-learn 0.5's `find_ab_params(1.0, 0.1)` (scipy's curve_fit): a = 1.5769,
    /// b = 0.8951.
    #[test]
    fn ab_for_the_defaults() {
        let (a, b) = fit_ab(1.0, 0.1);
        assert!(
            (a - 1.576943).abs() < 1e-4 && (b - 0.895061).abs() < 1e-4,
            "{a} {b}"
        );
    }

    /// Each point's σ makes its memberships sum to log₂ k (where the floor does not bind).
    #[test]
    fn sigma_calibrates_the_neighbourhood() {
        let d = [0.5, 0.7, 0.9, 1.4, 2.0, 2.2, 3.0];
        let (rho, sigma) = smooth_distances(&d, 8f64.log2(), 1.0);
        assert_eq!(rho, 0.5);
        let sum: f64 = d.iter().map(|&v| (-(v - rho).max(0.0) / sigma).exp()).sum();
        assert!((sum - 3.0).abs() < 1e-5, "{sum}");
    }

    /// The fuzzy union is symmetric, with weights in (0, 1].
    #[test]
    fn graph_is_symmetric() {
        let (x, _) = blobs();
        let g = fuzzy_graph(&Neighbors::exact(&x, 14), 15);
        let map: std::collections::HashMap<(u32, u32), f64> = (0..g.head.len())
            .map(|e| ((g.head[e], g.tail[e]), g.weight[e]))
            .collect();
        for (&(i, j), &w) in &map {
            assert!(w > 0.0 && w <= 1.0 + 1e-12);
            assert_eq!(map.get(&(j, i)), Some(&w), "{i} {j}");
        }
    }

    /// [`umap`] on a pool of `threads` threads.
    fn umap_on_threads(x: &Array2<f64>, opts: &UmapOptions, threads: usize) -> Array2<f64> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| umap(x, opts).unwrap())
    }

    /// The blobs stay apart: each point's 10 nearest neighbours in the embedding come from
    /// its own blob. And the result does not depend on the thread count.
    #[test]
    fn blobs_stay_apart_and_threads_do_not_matter() {
        let (x, blob) = blobs();
        let mut opts = UmapOptions::new(2, 7);
        opts.epochs = Some(200);
        let run = |threads: usize| umap_on_threads(&x, &opts, threads);
        let y = run(2);
        assert_eq!(y, run(1));
        let nb = Neighbors::exact(&y, 10);
        let same = (0..y.nrows())
            .map(|i| {
                let others = nb.nearest(i, 10).0;
                others
                    .iter()
                    .filter(|&&j| blob[j as usize] == blob[i])
                    .count()
            })
            .sum::<usize>();
        assert_eq!(same, 180 * 10, "neighbours from another blob");
    }

    /// Several blocks of the parallel descent (3,000 points, three blocks): the same
    /// embedding at 1, 2 and 3 threads, and the blobs still apart.
    #[test]
    fn many_blocks_give_the_same_embedding_at_any_thread_count() {
        let mut rng = stream(3, Stream::Init);
        let n = 3 * BLOCK_POINTS - 72;
        let x = Array2::from_shape_fn((n, 4), |(i, j)| {
            let centre = if j == i % 3 { 8.0 } else { 0.0 };
            centre + rng.sample::<f64, _>(StandardNormal)
        });
        let mut opts = UmapOptions::new(2, 5);
        opts.epochs = Some(60);
        let run = |threads: usize| umap_on_threads(&x, &opts, threads);
        let y = run(2);
        assert_eq!(y, run(1));
        assert_eq!(y, run(3));
        let nb = Neighbors::exact(&y, 10);
        let same = (0..n)
            .map(|i| {
                nb.nearest(i, 10)
                    .0
                    .iter()
                    .filter(|&&j| j as usize % 3 == i % 3)
                    .count()
            })
            .sum::<usize>();
        assert!(same as f64 > 0.99 * (n * 10) as f64, "{same} of {}", n * 10);
    }

    #[test]
    fn epochs_fall_with_the_number_of_points() {
        let epochs: Vec<usize> = [2_638, 10_000, 10_001, 50_000, 50_001, 1_000_000]
            .map(default_epochs)
            .into();
        assert_eq!(epochs, [500, 500, 200, 200, 100, 100]);
    }

    #[test]
    fn bad_settings_are_errors() {
        let (x, _) = blobs();
        let mut o = UmapOptions::new(2, 1);
        o.neighbors = 1;
        assert!(umap(&x, &o).is_err());
        let mut o = UmapOptions::new(2, 1);
        o.min_dist = 5.0;
        assert!(umap(&x, &o).is_err());
        let mut o = UmapOptions::new(2, 1);
        o.epochs = Some(0);
        assert!(umap(&x, &o).is_err());
        assert!(umap(
            &x.slice(ndarray::s![..10, ..]).to_owned(),
            &UmapOptions::new(2, 1)
        )
        .is_err());
    }
}
