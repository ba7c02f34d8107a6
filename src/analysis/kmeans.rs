//! k-means as scikit-learn runs it (`docs/math.md#63-k-means`): k-means++ seeding with
//! `2 + ⌊ln k⌋` local trials, Lloyd iterations until the centres move less than
//! `tol × mean feature variance` (squared, summed) or 300 iterations, `n_init` restarts
//! keeping the lowest inertia. Every restart has its own seeded stream and restarts run in
//! parallel, so the result depends on the seed alone.

use crate::engine::rng::{substream, Stream};
use crate::error::{Error, Result};
use crate::stage::Stage;
use ndarray::{Array2, ArrayView1, Axis};
use rand::Rng;
use rayon::prelude::*;
use std::sync::Mutex;

/// k-means settings.
#[derive(Clone, Debug)]
pub struct KMeansOptions {
    pub k: usize,
    pub n_init: usize,
    pub max_iter: usize,
    pub tol: f64,
    pub seed: u64,
}

impl KMeansOptions {
    /// The study's settings (`n_init = 100`) for `k` clusters.
    pub fn new(k: usize, seed: u64) -> Self {
        KMeansOptions {
            k,
            n_init: 100,
            max_iter: 300,
            tol: 1e-4,
            seed,
        }
    }
}

/// The best clustering found.
#[derive(Clone, Debug)]
pub struct KMeansResult {
    pub labels: Vec<usize>,
    pub centroids: Array2<f64>,
    pub inertia: f64,
}

fn sq(a: ArrayView1<'_, f64>, b: ArrayView1<'_, f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Clusters the rows of `x`.
pub fn kmeans(x: &Array2<f64>, opts: &KMeansOptions) -> Result<KMeansResult> {
    kmeans_with(x, opts, &mut Stage::silent())
}

/// [`kmeans`], the restarts shown on `stage` as they finish (in any order: the result does
/// not depend on it).
pub fn kmeans_with(
    x: &Array2<f64>,
    opts: &KMeansOptions,
    stage: &mut Stage,
) -> Result<KMeansResult> {
    let n = x.nrows();
    if opts.k == 0 || opts.k > n {
        return Err(Error::invalid(format!(
            "k = {} must be between 1 and the number of points ({n})",
            opts.k
        )));
    }
    if opts.n_init == 0 {
        return Err(Error::invalid("--n-init must be at least 1"));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("k-means input holds non-finite values"));
    }
    let variance = x.var_axis(Axis(0), 0.0).mean().unwrap_or(0.0);
    let tol = opts.tol * variance;
    stage.begin(opts.n_init, "restart");
    let finished = Mutex::new((0, stage));
    let runs: Vec<KMeansResult> = (0..opts.n_init)
        .into_par_iter()
        .map(|r| {
            let mut rng = substream(opts.seed, Stream::Kmeans, r as u32);
            let init = plus_plus(x, opts.k, &mut rng);
            let run = lloyd(x, init, opts.max_iter, tol);
            if let Ok(mut f) = finished.lock() {
                f.0 += 1;
                let done = f.0;
                f.1.step(done);
            }
            run
        })
        .collect();
    let best = runs
        .into_iter()
        .enumerate()
        .min_by(|a, b| a.1.inertia.total_cmp(&b.1.inertia).then(a.0.cmp(&b.0)))
        .map(|(_, r)| r)
        .expect("n_init ≥ 1");
    Ok(best)
}

/// k-means++ seeding with greedy local trials.
fn plus_plus<R: Rng>(x: &Array2<f64>, k: usize, rng: &mut R) -> Array2<f64> {
    let n = x.nrows();
    let trials = 2 + (k as f64).ln() as usize;
    let mut centres = Array2::zeros((k, x.ncols()));
    let first = rng.random_range(0..n);
    centres.row_mut(0).assign(&x.row(first));
    let mut closest: Vec<f64> = (0..n).map(|i| sq(x.row(i), x.row(first))).collect();
    let mut pot: f64 = closest.iter().sum();
    for c in 1..k {
        let mut cumsum = Vec::with_capacity(n);
        let mut acc = 0.0;
        for &d in &closest {
            acc += d;
            cumsum.push(acc);
        }
        let mut best: Option<(f64, usize, Vec<f64>)> = None;
        for _ in 0..trials {
            let r = rng.random::<f64>() * pot;
            let cand = cumsum.partition_point(|&s| s < r).min(n - 1);
            let dist: Vec<f64> = (0..n)
                .map(|i| closest[i].min(sq(x.row(i), x.row(cand))))
                .collect();
            let p: f64 = dist.iter().sum();
            if best.as_ref().is_none_or(|b| p < b.0) {
                best = Some((p, cand, dist));
            }
        }
        let (p, cand, dist) = best.expect("at least two trials");
        centres.row_mut(c).assign(&x.row(cand));
        closest = dist;
        pot = p;
    }
    centres
}

/// Nearest centre of every point and the total squared distance.
fn assign(x: &Array2<f64>, centres: &Array2<f64>) -> (Vec<usize>, Vec<f64>) {
    (0..x.nrows())
        .map(|i| {
            let mut best = (0, f64::INFINITY);
            for (c, centre) in centres.rows().into_iter().enumerate() {
                let d = sq(x.row(i), centre);
                if d < best.1 {
                    best = (c, d);
                }
            }
            best
        })
        .unzip()
}

fn lloyd(x: &Array2<f64>, mut centres: Array2<f64>, max_iter: usize, tol: f64) -> KMeansResult {
    let (k, dims) = centres.dim();
    for _ in 0..max_iter {
        let (labels, dist) = assign(x, &centres);
        let mut sums = Array2::<f64>::zeros((k, dims));
        let mut counts = vec![0usize; k];
        for (i, &c) in labels.iter().enumerate() {
            sums.row_mut(c).scaled_add(1.0, &x.row(i));
            counts[c] += 1;
        }
        // An empty cluster takes the point farthest from its centre, as scikit-learn does.
        let mut far: Vec<usize> = (0..x.nrows()).collect();
        far.sort_by(|&a, &b| dist[b].total_cmp(&dist[a]).then(a.cmp(&b)));
        let mut far = far.into_iter();
        let mut new = Array2::<f64>::zeros((k, dims));
        for (c, mut centre) in new.rows_mut().into_iter().enumerate() {
            if counts[c] > 0 {
                centre.assign(&(&sums.row(c) / counts[c] as f64));
            } else if let Some(p) = far.next() {
                centre.assign(&x.row(p));
            }
        }
        let shift: f64 = (0..k).map(|c| sq(centres.row(c), new.row(c))).sum();
        centres = new;
        if shift <= tol {
            break;
        }
    }
    let (labels, dist) = assign(x, &centres);
    KMeansResult {
        labels,
        centroids: centres,
        inertia: dist.iter().sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_separated_blobs_and_is_deterministic() {
        let x = Array2::from_shape_fn((90, 2), |(i, j)| {
            let centre = [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)][i % 3];
            let jitter = ((i * 7 + j * 3) % 11) as f64 / 11.0 - 0.5;
            if j == 0 {
                centre.0 + jitter
            } else {
                centre.1 + jitter
            }
        });
        let opts = KMeansOptions {
            n_init: 10,
            ..KMeansOptions::new(3, 7)
        };
        let r = kmeans(&x, &opts).unwrap();
        for i in 0..90 {
            assert_eq!(r.labels[i], r.labels[i % 3]);
        }
        let again = kmeans(&x, &opts).unwrap();
        assert_eq!(r.labels, again.labels);
        assert!(kmeans(&x, &KMeansOptions::new(0, 1)).is_err());
        assert!(kmeans(&x, &KMeansOptions::new(91, 1)).is_err());
    }
}
