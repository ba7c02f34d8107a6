//! The PCA baseline: the top principal components of the normalized matrix, computed without
//! densifying it.
//!
//! Randomized SVD (Halko, Martinsson & Tropp 2011) of the centred matrix `X_c = X − 1μᵀ`,
//! which is never formed: `X_c·Ω = X·Ω − 1(μᵀΩ)` and `X_cᵀ·Y = Xᵀ·Y − μ(1ᵀY)` use only the
//! sparse `X`. With `r = k + 10` random directions and 6 power iterations:
//! `Q = orth((X_c X_cᵀ)^q X_c Ω)`, `B = Qᵀ X_c` (r × d), `B Bᵀ = U Σ² Uᵀ`, and the scores are
//! `X_c V = Q U Σ`. Signs follow scikit-learn's `svd_flip`: each component's largest-magnitude
//! score is positive.

use crate::csr::Csr;
use crate::engine::rng::{stream, Stream};
use ndarray::{Array1, Array2, Axis};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// Extra random directions beyond `k`.
const OVERSAMPLE: usize = 10;
/// Power iterations.
const POWER_ITERS: usize = 6;

/// Principal-component scores `(n, k)` and the variance each component explains.
#[derive(Clone, Debug)]
pub struct Pca {
    pub scores: Array2<f64>,
    pub explained_variance: Vec<f64>,
}

/// `X_c · M` for a dense `M: (d, r)`.
fn centred_times(x: &Csr<f32>, mean: &Array1<f64>, m: &Array2<f64>) -> Array2<f64> {
    let offset = mean.dot(m);
    let mut out = Array2::<f64>::zeros((x.n_rows, m.ncols()));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            let (cols, vals) = x.row(i);
            for (&j, &v) in cols.iter().zip(vals) {
                row.scaled_add(v as f64, &m.row(j as usize));
            }
            row -= &offset;
        });
    out
}

/// `X_cᵀ · Y` for a dense `Y: (n, r)`.
fn centred_t_times(x: &Csr<f32>, mean: &Array1<f64>, y: &Array2<f64>) -> Array2<f64> {
    let r = y.ncols();
    // Partial sums over row blocks, added in block order (deterministic: the blocks depend on
    // n only). At most ~64 blocks, so the partials stay small for large n.
    let block = x.n_rows.div_ceil(64).max(256);
    let partials: Vec<Array2<f64>> = (0..x.n_rows.div_ceil(block))
        .into_par_iter()
        .map(|b| {
            let mut acc = Array2::<f64>::zeros((x.n_cols, r));
            for i in b * block..((b + 1) * block).min(x.n_rows) {
                let (cols, vals) = x.row(i);
                for (&j, &v) in cols.iter().zip(vals) {
                    acc.row_mut(j as usize).scaled_add(v as f64, &y.row(i));
                }
            }
            acc
        })
        .collect();
    let mut out = Array2::<f64>::zeros((x.n_cols, r));
    for p in partials {
        out += &p;
    }
    let col_sums = y.sum_axis(Axis(0));
    for (j, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
        row.scaled_add(-mean[j], &col_sums);
    }
    out
}

/// Orthonormalizes the columns of `a` in place (modified Gram–Schmidt, twice for stability).
///
/// The columns are copied out as the rows of `aᵀ`, so each projection streams two contiguous
/// slices instead of striding across every row of `a` (at a million rows that was minutes
/// of cache misses); the arithmetic and its order are unchanged, sums running from the first
/// row to the last.
fn orthonormalize(a: &mut Array2<f64>) {
    let (n, r) = a.dim();
    let mut t = a.t().as_standard_layout().into_owned();
    let cols = t.as_slice_mut().expect("standard layout");
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).fold(0.0, |s, (&p, &q)| s + p * q);
    for _ in 0..2 {
        for j in 0..r {
            let (done, rest) = cols.split_at_mut(j * n);
            let col_j = &mut rest[..n];
            for col_p in done.chunks_exact(n) {
                let proj = dot(col_p, col_j);
                for (y, &x) in col_j.iter_mut().zip(col_p) {
                    *y += -proj * x;
                }
            }
            let norm = dot(col_j, col_j).sqrt();
            if norm > 0.0 {
                col_j.iter_mut().for_each(|v| *v /= norm);
            }
        }
    }
    a.assign(&t.t());
}

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations: eigenvalues
/// (descending) and eigenvectors as columns.
pub fn symmetric_eigen(a: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut a = a.clone();
    let mut v = Array2::<f64>::eye(n);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]].powi(2))
            .sum();
        if off < 1e-30 * (1.0 + a.iter().map(|x| x * x).sum::<f64>()) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[[p, q]].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * a[[p, q]]);
                // Rotation that zeroes a[p][q] (t = tan of the angle, the smaller root).
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[[j, j]].total_cmp(&a[[i, i]]));
    let values = order.iter().map(|&i| a[[i, i]]).collect();
    let vectors = Array2::from_shape_fn((n, n), |(r, c)| v[[r, order[c]]]);
    (values, vectors)
}

/// Flips `v`'s sign so that its largest-magnitude entry (the first of equals) is positive:
/// the fixed sign of an eigenvector or a component (scikit-learn's `svd_flip`).
pub fn largest_entry_positive(mut v: ndarray::ArrayViewMut1<f64>) {
    let biggest = v
        .iter()
        .copied()
        .fold(0.0f64, |m, e| if e.abs() > m.abs() { e } else { m });
    if biggest < 0.0 {
        v.mapv_inplace(|e| -e);
    }
}

/// The top `k` principal components of the rows of `x`.
pub fn pca(x: &Csr<f32>, k: usize, seed: u64) -> Pca {
    let (n, d) = (x.n_rows, x.n_cols);
    let k = k.min(n).min(d);
    let r = (k + OVERSAMPLE).min(n).min(d);
    let moments = x.column_moments(|v| v as f64);
    let mean = Array1::from_shape_fn(d, |g| moments.mean(g));
    let mut rng = stream(seed, Stream::Pca);
    let omega = Array2::from_shape_fn((d, r), |_| rng.sample::<f64, _>(StandardNormal));
    let mut y = centred_times(x, &mean, &omega);
    orthonormalize(&mut y);
    for _ in 0..POWER_ITERS {
        let mut z = centred_t_times(x, &mean, &y);
        orthonormalize(&mut z);
        y = centred_times(x, &mean, &z);
        orthonormalize(&mut y);
    }
    // B = Qᵀ X_c, as (X_cᵀ Q)ᵀ; B Bᵀ = U Σ² Uᵀ.
    let bt = centred_t_times(x, &mean, &y);
    let bbt = bt.t().dot(&bt);
    let (values, u) = symmetric_eigen(&bbt);
    let mut scores = y.dot(&u.slice(ndarray::s![.., ..k]));
    for (mut col, s2) in scores.axis_iter_mut(Axis(1)).zip(&values) {
        let sigma = s2.max(0.0).sqrt();
        col.mapv_inplace(|v| v * sigma);
        largest_entry_positive(col);
    }
    let explained_variance = values
        .iter()
        .take(k)
        .map(|s2| s2.max(0.0) / (n.max(2) - 1) as f64)
        .collect();
    Pca {
        scores,
        explained_variance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_dense_pca_on_a_small_matrix() {
        // 60 cells × 12 genes, sparse, with two strong directions.
        let mut rng = stream(5, Stream::Init);
        let dense = Array2::from_shape_fn((60, 12), |(i, j)| {
            let base = if (i % 3 == 0 && j < 4) || (i % 2 == 0 && j >= 8) {
                3.0
            } else {
                0.0
            };
            let v: f64 = base + rng.random_range(-0.5..1.0);
            if v > 0.4 {
                v
            } else {
                0.0
            }
        });
        let mut x = Csr::with_cols(12);
        for row in dense.rows() {
            let (c, v): (Vec<u32>, Vec<f32>) = row
                .iter()
                .enumerate()
                .filter(|(_, &v)| v != 0.0)
                .map(|(j, &v)| (j as u32, v as f32))
                .unzip();
            x.push_row(&c, &v);
        }
        let dense = x.to_dense().mapv(|v| v as f64);
        let centred = &dense - &dense.mean_axis(Axis(0)).unwrap();
        let cov = centred.t().dot(&centred) / 59.0;
        let (values, vectors) = symmetric_eigen(&cov);
        let p = pca(&x, 3, 1);
        for c in 0..3 {
            assert!(
                (p.explained_variance[c] - values[c]).abs() < 1e-8 * values[0],
                "variance {c}"
            );
            let want = centred.dot(&vectors.column(c));
            let got = p.scores.column(c);
            let sign = if want.dot(&got) < 0.0 { -1.0 } else { 1.0 };
            assert!(
                want.iter()
                    .zip(got.iter())
                    .all(|(w, g)| (w - sign * g).abs() < 1e-6),
                "component {c}"
            );
        }
    }
}
