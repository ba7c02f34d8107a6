//! t-SNE, as scikit-learn 0.19–0.21 ran it for the study (`docs/math.md#62-t-sne`): perplexity
//! calibration by binary search, symmetrized `P`, random init `1e-4·N(0, I)`, early
//! exaggeration 12 with momentum 0.5 for 250 iterations, then momentum 0.8 up to 1000,
//! learning rate 200, per-parameter gains (+0.2 when the gradient's sign flips against the
//! last update, ×0.8 otherwise, floor 0.01), and a Student-t kernel with
//! `ν = max(dims − 1, 1)` degrees of freedom (so ν = 2 in 3-D, a scikit-learn peculiarity).
//!
//! Two gradients: [`exact`] (O(N²), all pairs) and [`barnes_hut`] (O(N log N), θ = 0.5,
//! neighbours only). `Method::Auto` picks exact below 5,000 points. Unlike scikit-learn, the
//! optimiser always runs its full iteration count (no early stop), so a seed fixes the result.

pub mod affinities;
pub mod barnes_hut;
pub mod exact;
#[cfg(target_arch = "x86_64")]
mod exact_avx512;

use crate::analysis::neighbors::Neighbors;
use crate::engine::rng::{stream, Stream};
use crate::error::{Error, Result};
use ndarray::Array2;
use rand::Rng;
use rand_distr::StandardNormal;

/// Which gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Method {
    Auto,
    Exact,
    BarnesHut,
}

/// Points below which `Auto` uses the exact gradient.
pub const AUTO_EXACT_BELOW: usize = 5000;

/// t-SNE settings; [`TsneOptions::new`] gives the study's.
#[derive(Clone, Debug)]
pub struct TsneOptions {
    pub dims: usize,
    pub perplexity: f64,
    pub method: Method,
    pub theta: f64,
    pub iterations: usize,
    pub exploration_iterations: usize,
    pub early_exaggeration: f64,
    pub learning_rate: f64,
    pub seed: u64,
}

impl TsneOptions {
    /// The study's settings in `dims` dimensions.
    pub fn new(dims: usize, seed: u64) -> Self {
        TsneOptions {
            dims,
            perplexity: 40.0,
            method: Method::Auto,
            theta: 0.5,
            iterations: 1000,
            exploration_iterations: 250,
            early_exaggeration: 12.0,
            learning_rate: 200.0,
            seed,
        }
    }

    /// The gradient used on `n` points: `Auto` is exact below [`AUTO_EXACT_BELOW`].
    pub fn method_for(&self, n: usize) -> Method {
        match self.method {
            Method::Auto if n < AUTO_EXACT_BELOW => Method::Exact,
            Method::Auto => Method::BarnesHut,
            m => m,
        }
    }

    /// The neighbours per point its affinities read on `n` points (0: the exact gradient
    /// reads all pairs).
    pub fn neighbours_for(&self, n: usize) -> usize {
        match self.method_for(n) {
            Method::Exact => 0,
            _ => affinities::sparse_neighbours(self.perplexity).min(n.saturating_sub(1)),
        }
    }

    /// The same settings with `iterations` in all, the exploration phase (early
    /// exaggeration) cut to fit within them.
    pub fn with_iterations(mut self, iterations: usize) -> Self {
        self.iterations = iterations;
        self.exploration_iterations = self.exploration_iterations.min(iterations);
        self
    }
}

/// An embedding and its final KL divergence.
#[derive(Clone, Debug)]
pub struct Embedding {
    pub coords: Array2<f64>,
    pub kl_divergence: f64,
    pub method: Method,
}

/// Embeds the rows of `x`.
pub fn tsne(x: &Array2<f64>, opts: &TsneOptions) -> Result<Embedding> {
    tsne_on(x, None, opts)
}

/// Embeds the rows of `x`, the Barnes–Hut affinities read from `neighbors` (the graph of
/// `x`) when it holds enough neighbours, from a graph built here otherwise.
pub fn tsne_on(
    x: &Array2<f64>,
    neighbors: Option<&Neighbors>,
    opts: &TsneOptions,
) -> Result<Embedding> {
    let n = x.nrows();
    if !(opts.dims == 2 || opts.dims == 3) {
        return Err(Error::invalid("t-SNE --dims must be 2 or 3"));
    }
    if n < 2 {
        return Err(Error::invalid(format!(
            "t-SNE needs at least 2 points, got {n}"
        )));
    }
    if !(opts.perplexity > 0.0 && opts.perplexity < n as f64) {
        return Err(Error::invalid(format!(
            "perplexity {} must be positive and below the number of points ({n})",
            opts.perplexity
        )));
    }
    if x.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("t-SNE input holds non-finite values"));
    }
    let method = opts.method_for(n);
    let p = match method {
        Method::Exact => Affinities::Dense(affinities::dense(x, opts.perplexity)),
        _ => {
            let k = opts.neighbours_for(n);
            let own;
            let nb = match neighbors.filter(|nb| nb.k() >= k && nb.n() == n) {
                Some(nb) => nb,
                None => {
                    own = Neighbors::build(x, k, opts.seed);
                    &own
                }
            };
            Affinities::Sparse(affinities::sparse(nb, opts.perplexity))
        }
    };
    Ok(match opts.dims {
        2 => optimise::<2>(&p, n, opts, method),
        _ => optimise::<3>(&p, n, opts, method),
    })
}

enum Affinities {
    Dense(Vec<f32>),
    Sparse(affinities::SparseP),
}

fn optimise<const D: usize>(
    p: &Affinities,
    n: usize,
    opts: &TsneOptions,
    method: Method,
) -> Embedding {
    let nu = (D as f32 - 1.0).max(1.0);
    let mut rng = stream(opts.seed, Stream::Tsne);
    let mut params: Vec<f64> = (0..n * D)
        .map(|_| 1e-4 * rng.sample::<f64, _>(StandardNormal))
        .collect();
    let mut update = vec![0.0f64; n * D];
    let mut gains = vec![1.0f64; n * D];
    let mut grad = vec![0.0f64; n * D];
    let mut y: [Vec<f32>; D] = std::array::from_fn(|_| vec![0.0f32; n]);
    let mut z = 1.0;
    for it in 0..opts.iterations {
        let exploring = it < opts.exploration_iterations;
        let (momentum, exaggeration) = if exploring {
            (0.5, opts.early_exaggeration)
        } else {
            (0.8, 1.0)
        };
        for i in 0..n {
            for d in 0..D {
                y[d][i] = params[i * D + d] as f32;
            }
        }
        z = match p {
            Affinities::Dense(p) => exact::gradient::<D>(p, &y, nu, exaggeration as f32, &mut grad),
            Affinities::Sparse(p) => {
                barnes_hut::gradient::<D>(p, &y, nu, exaggeration as f32, opts.theta, &mut grad)
            }
        };
        for k in 0..n * D {
            // Gains grow where the gradient keeps pushing against the last step.
            if update[k] * grad[k] < 0.0 {
                gains[k] += 0.2;
            } else {
                gains[k] *= 0.8;
            }
            gains[k] = gains[k].max(0.01);
            update[k] = momentum * update[k] - opts.learning_rate * gains[k] * grad[k];
            params[k] += update[k];
        }
    }
    for i in 0..n {
        for d in 0..D {
            y[d][i] = params[i * D + d] as f32;
        }
    }
    let kl_divergence = match p {
        Affinities::Dense(p) => exact::kl_divergence::<D>(p, &y, nu, z),
        Affinities::Sparse(p) => barnes_hut::kl_divergence::<D>(p, &y, nu, z),
    };
    Embedding {
        coords: Array2::from_shape_vec((n, D), params).expect("n × D parameters"),
        kl_divergence,
        method,
    }
}
