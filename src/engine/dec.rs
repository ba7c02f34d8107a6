//! DEC / IDEC clustering head (Xie et al. 2016; Guo et al. 2017;
//! `docs/math.md#14-dec-and-idec`).
//!
//! Shapes: codes `z` (B, L), centroids `μ` (K, L) (a parameter), target `p` (B, K).
//!
//! ```text
//! d_ij = ‖z_i − μ_j‖²,   w_ij = (1 + d_ij/α)^(−(α+1)/2)      Student-t kernel (α = 1)
//! q_ij = w_ij / Σ_k w_ik                                     soft assignment
//! p_ij = (q_ij²/f_j) / Σ_k (q_ik²/f_k),  f_j = Σ_i q_ij       target, over all cells,
//!                                                            held fixed between refreshes
//! L_c = r · Σ_i Σ_j p_ij log(p_ij/q_ij)                      r from the reduction
//! ```
//! Backward (`c_ij = (1 + d_ij/α)^(−1)(p_ij − q_ij)`, `κ = (α+1)/α`):
//! ```text
//! δz_i += r·κ Σ_j c_ij (z_i − μ_j)
//! δμ_j −= r·κ Σ_i c_ij (z_i − μ_j)
//! ```
//! IDEC keeps the reconstruction: the network minimises `recon + β·KL + γ·L_c`, and the
//! training loop refreshes `p` once per epoch from every training cell's `q`.

use super::{Reduction, Scalar};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// The Student-t degrees of freedom.
pub const ALPHA: f64 = 1.0;

/// The centroids and their gradient.
#[derive(Clone, Debug)]
pub struct Centroids<T> {
    /// `(K, L)`.
    pub mu: Array2<T>,
    pub dmu: Array2<T>,
}

impl<T: Scalar> Centroids<T> {
    pub fn new(mu: Array2<T>) -> Self {
        let dmu = Array2::zeros(mu.raw_dim());
        Centroids { mu, dmu }
    }

    pub fn zero_grad(&mut self) {
        self.dmu.fill(T::zero());
    }
}

/// The kernel's base `t_ij = 1 + ‖z_i − μ_j‖²/α` (B, K), in f64: `w_ij = t_ij^(−(α+1)/2)`
/// in the forward and `c_ij = (p_ij − q_ij)/t_ij` in the backward, computed once for both.
fn kernel_base<A: Scalar, B: Scalar>(z: ArrayView2<'_, A>, mu: ArrayView2<'_, B>) -> Array2<f64> {
    Array2::from_shape_fn((z.nrows(), mu.nrows()), |(i, j)| {
        let d: f64 = z
            .row(i)
            .iter()
            .zip(mu.row(j))
            .map(|(a, c)| (a.to_f64() - c.to_f64()).powi(2))
            .sum();
        1.0 + d / ALPHA
    })
}

/// `q` from the kernel's base: each row of `t^(−(α+1)/2)` normalised to sum 1.
fn soft_assign_from(t: &Array2<f64>) -> Array2<f64> {
    let mut q = t.mapv(|t| t.powf(-(ALPHA + 1.0) / 2.0));
    for mut row in q.rows_mut() {
        // In order, cluster by cluster (ndarray's `sum` would regroup the additions).
        let total = row.iter().fold(0.0, |acc, &w| acc + w);
        row.mapv_inplace(|w| w / total);
    }
    q
}

/// `q` (B, K) for codes `z` and centroids `mu`, in f64.
pub fn soft_assign<A: Scalar, B: Scalar>(
    z: ArrayView2<'_, A>,
    mu: ArrayView2<'_, B>,
) -> Array2<f64> {
    soft_assign_from(&kernel_base(z, mu))
}

/// The target distribution `p` from every cell's `q`.
pub fn target(q: &Array2<f64>) -> Array2<f64> {
    let f = q.sum_axis(ndarray::Axis(0));
    let mut p = q.clone();
    for mut row in p.rows_mut() {
        for (v, fj) in row.iter_mut().zip(&f) {
            *v = *v * *v / fj.max(f64::MIN_POSITIVE);
        }
        let s = row.sum();
        row.mapv_inplace(|v| v / s);
    }
    p
}

/// `L_c` of a batch; with `grads = Some((δz, δμ, γ))` the gradients of `γ·L_c` are added
/// into them (γ the head's weight in the network's loss).
pub fn forward_backward<T: Scalar>(
    z: ArrayView2<'_, T>,
    centroids: ArrayView2<'_, T>,
    p: ArrayView2<'_, f64>,
    reduction: Reduction,
    grads: Option<(ArrayViewMut2<'_, T>, ArrayViewMut2<'_, T>, f64)>,
) -> f64 {
    let (b, k) = (z.nrows(), centroids.nrows());
    assert_eq!(p.dim(), (b, k), "one target row per cell");
    let scale = reduction.factor(b);
    let t = kernel_base(z, centroids);
    let q = soft_assign_from(&t);
    let mut loss = 0.0;
    for i in 0..b {
        for j in 0..k {
            let pij = p[[i, j]];
            if pij > 0.0 {
                loss += pij * (pij / q[[i, j]]).ln();
            }
        }
    }
    if let Some((mut dz, mut dmu, weight)) = grads {
        let kappa = weight * (ALPHA + 1.0) / ALPHA;
        for i in 0..b {
            for j in 0..k {
                let cij = scale * kappa * (p[[i, j]] - q[[i, j]]) / t[[i, j]];
                for l in 0..z.ncols() {
                    let diff = z[[i, l]].to_f64() - centroids[[j, l]].to_f64();
                    dz[[i, l]] += T::from_f64(cij * diff);
                    dmu[[j, l]] -= T::from_f64(cij * diff);
                }
            }
        }
    }
    scale * loss
}

/// Hard labels: the argmax of each row of `q`.
pub fn assignments(q: &Array2<f64>) -> Vec<usize> {
    q.rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |m| m.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};

    /// δz and δμ against central differences in f64, with `p` held fixed (as between
    /// refreshes), for both reductions.
    #[test]
    fn gradcheck_dec() {
        let z = random(7, 3, 1.5, 1);
        let mu = random(4, 3, 1.5, 2);
        let p = target(&soft_assign(z.view(), mu.view()).mapv(|v| v * v + 0.05));
        for reduction in [Reduction::Mean, Reduction::Sum] {
            let mut dz = Array2::zeros(z.raw_dim());
            let mut dmu = Array2::zeros(mu.raw_dim());
            forward_backward(
                z.view(),
                mu.view(),
                p.view(),
                reduction,
                Some((dz.view_mut(), dmu.view_mut(), 1.0)),
            );
            let mut zz = z.clone();
            let err_z = check_slice(
                z.clone().as_slice_mut().unwrap(),
                dz.as_slice().unwrap(),
                |_| 1e-5,
                |v| {
                    zz.as_slice_mut().unwrap().copy_from_slice(v);
                    forward_backward(zz.view(), mu.view(), p.view(), reduction, None)
                },
            );
            let mut mm = mu.clone();
            let err_mu = check_slice(
                mu.clone().as_slice_mut().unwrap(),
                dmu.as_slice().unwrap(),
                |_| 1e-5,
                |v| {
                    mm.as_slice_mut().unwrap().copy_from_slice(v);
                    forward_backward(z.view(), mm.view(), p.view(), reduction, None)
                },
            );
            assert!(err_z < TOLERANCE, "δz {err_z:e}");
            assert!(err_mu < TOLERANCE, "δμ {err_mu:e}");
        }
    }

    /// Rows of `q` and `p` sum to 1, `L_c = 0` when `p = q`, and each cell is assigned the
    /// centroid nearest to it (the kernel falls with distance).
    #[test]
    fn assignments_and_target() {
        let z = random(6, 2, 2.0, 3);
        let mu = random(3, 2, 2.0, 4);
        let q = soft_assign(z.view(), mu.view());
        let p = target(&q);
        for (qr, pr) in q.rows().into_iter().zip(p.rows()) {
            assert!((qr.sum() - 1.0).abs() < 1e-12 && (pr.sum() - 1.0).abs() < 1e-12);
        }
        let nearest: Vec<usize> = z
            .rows()
            .into_iter()
            .map(|zi| {
                let d = |j: usize| (&zi - &mu.row(j)).mapv(|v| v * v).sum();
                (0..3).min_by(|&a, &b| d(a).total_cmp(&d(b))).unwrap()
            })
            .collect();
        assert_eq!(assignments(&q), nearest);
        let l = forward_backward(z.view(), mu.view(), q.view(), Reduction::Sum, None);
        assert!(l.abs() < 1e-12);
    }
}
