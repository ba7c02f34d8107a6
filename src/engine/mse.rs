//! Squared-error reconstruction loss against a sparse target.
//!
//! Shapes: `x̂: (B, d)` dense, `x: (B, d)` CSR.
//!
//! Forward:  `L = r · Σ_i Σ_g (x̂_ig − x_ig)²` with `r = 1` (sum) or `1/B` (batch mean of the
//! per-cell sums), see [`Reduction`]. Computed without densifying `x`:
//! `Σ_g (x̂ − x)² = Σ_g x̂² + Σ_{g ∈ nz} [(x̂ − x)² − x̂²]`.
//!
//! Backward:  `δx̂ += r · 2 (x̂ − x)`. `x` is data: nothing flows into it.
//!
//! A shifted target `x = s + 1·cᵀ` (scaled data stored sparse, see
//! [`super::sparse_dense`]) is `x̂ − c` against `s`: `u = x̂ − c` replaces `x̂` above.
//!
//! Rows are processed in parallel; the per-row sums are added in row order, so the value does
//! not depend on the thread count.

use super::scalar::{axpy, dot, Scalar};
use super::Reduction;
use crate::csr::Csr;
use ndarray::parallel::prelude::*;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, Zip};

/// `x̂ − c` of one row, or the row itself without a shift.
fn unshifted<'a, T: Scalar>(
    row: ndarray::ArrayView1<'a, T>,
    shift: Option<&[T]>,
) -> std::borrow::Cow<'a, [T]> {
    match shift {
        None => match row.to_slice() {
            Some(r) => r.into(),
            None => row.to_vec().into(),
        },
        Some(c) => row
            .iter()
            .zip(c)
            .map(|(&h, &c)| h - c)
            .collect::<Vec<T>>()
            .into(),
    }
}

/// The reduced squared error.
pub fn forward<T: Scalar>(xhat: ArrayView2<'_, T>, x: &Csr<T>, reduction: Reduction) -> f64 {
    forward_shifted(xhat, x, None, reduction)
}

/// [`forward`] against `x + 1·cᵀ` with a `shift` `c`.
pub fn forward_shifted<T: Scalar>(
    xhat: ArrayView2<'_, T>,
    x: &Csr<T>,
    shift: Option<&[T]>,
    reduction: Reduction,
) -> f64 {
    assert_eq!(xhat.dim(), (x.n_rows, x.n_cols), "mse: shapes");
    let per_row: Vec<f64> = xhat
        .axis_iter(Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(i, row)| {
            let row = unshifted(row, shift);
            let mut acc = dot(&row, &row);
            let (cols, vals) = x.row(i);
            for (&j, &xv) in cols.iter().zip(vals) {
                let h = row[j as usize];
                acc += (h - xv) * (h - xv) - h * h;
            }
            acc.to_f64()
        })
        .collect();
    per_row.iter().sum::<f64>() * reduction.factor(x.n_rows)
}

/// `δx̂ += r · 2 (x̂ − x)`.
pub fn backward<T: Scalar>(
    xhat: ArrayView2<'_, T>,
    x: &Csr<T>,
    reduction: Reduction,
    dxhat: ArrayViewMut2<'_, T>,
) {
    backward_shifted(xhat, x, None, reduction, dxhat)
}

/// [`backward`] against `x + 1·cᵀ` with a `shift` `c`: `δx̂ += r · 2 (x̂ − c − x)`.
pub fn backward_shifted<T: Scalar>(
    xhat: ArrayView2<'_, T>,
    x: &Csr<T>,
    shift: Option<&[T]>,
    reduction: Reduction,
    mut dxhat: ArrayViewMut2<'_, T>,
) {
    let two_r = T::from_f64(2.0 * reduction.factor(x.n_rows));
    Zip::indexed(dxhat.rows_mut())
        .and(xhat.rows())
        .par_for_each(|i, mut d, h| {
            let h = unshifted(h, shift);
            match d.as_slice_mut() {
                Some(d) => axpy(two_r, &h, d),
                None => Zip::from(&mut d)
                    .and(&h[..])
                    .for_each(|d, &h| *d += two_r * h),
            }
            let (cols, vals) = x.row(i);
            for (&j, &xv) in cols.iter().zip(vals) {
                d[j as usize] -= two_r * xv;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};
    use ndarray::Array2;

    fn target() -> Csr<f64> {
        let mut x = Csr::with_cols(6);
        x.push_row(&[0, 3], &[1.5, 2.0]);
        x.push_row(&[], &[]);
        x.push_row(&[1, 2, 5], &[0.5, 3.0, 1.0]);
        x
    }

    #[test]
    fn gradcheck_mse() {
        let x = target();
        for reduction in [Reduction::Sum, Reduction::Mean] {
            let xhat0 = random(3, 6, 1.0, 9);
            let mut d = Array2::zeros((3, 6));
            backward(xhat0.view(), &x, reduction, d.view_mut());
            let mut xhat = xhat0.clone();
            let err = check_slice(
                xhat.as_slice_mut().unwrap(),
                d.as_slice().unwrap(),
                |_| 1e-5,
                |v| {
                    forward(
                        Array2::from_shape_vec((3, 6), v.to_vec()).unwrap().view(),
                        &x,
                        reduction,
                    )
                },
            );
            assert!(err < TOLERANCE, "{reduction:?}: {err}");
        }
    }

    #[test]
    fn sparse_form_equals_dense_form() {
        let x = target();
        let xhat = random(3, 6, 1.0, 9);
        let dense: f64 = (&xhat - &x.to_dense()).mapv(|v| v * v).sum();
        assert!((forward(xhat.view(), &x, Reduction::Sum) - dense).abs() < 1e-12);
        assert!((forward(xhat.view(), &x, Reduction::Mean) - dense / 3.0).abs() < 1e-12);
    }

    /// A shifted target `s + 1·cᵀ` gives the loss and gradient of that dense target.
    #[test]
    fn a_shifted_target_is_the_dense_target() {
        let s = target();
        let c = [0.5, -1.0, 0.0, 2.0, -0.25, 1.5];
        let mut dense = s.to_dense();
        for mut row in dense.rows_mut() {
            row += &ndarray::ArrayView1::from(&c);
        }
        let full = Csr::from_dense(&dense);
        let xhat = random(3, 6, 1.0, 4);
        let (mut d_shift, mut d_full) = (Array2::zeros((3, 6)), Array2::zeros((3, 6)));
        for r in [Reduction::Sum, Reduction::Mean] {
            let (a, b) = (
                forward_shifted(xhat.view(), &s, Some(&c), r),
                forward(xhat.view(), &full, r),
            );
            assert!((a - b).abs() < 1e-12, "{r:?}: {a} vs {b}");
            backward_shifted(xhat.view(), &s, Some(&c), r, d_shift.view_mut());
            backward(xhat.view(), &full, r, d_full.view_mut());
        }
        assert!((&d_shift - &d_full).iter().all(|v| v.abs() < 1e-12));
    }
}
