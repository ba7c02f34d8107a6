//! KL divergence of a diagonal Gaussian posterior from the standard-normal prior.
//!
//! Shapes: `μ, ℓ: (B, L)`, `ℓ = log σ²`.
//!
//! Forward:  `K = r · Σ_i −½ Σ_j (1 + ℓ_ij − μ_ij² − e^{ℓ_ij})`, `r` the [`Reduction`] factor.
//!
//! Backward, with weight `w = β · r`:
//! - `δμ += w · μ`
//! - `δℓ += w · ½ (e^ℓ − 1)`

use super::scalar::Scalar;
use super::Reduction;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// The reduced KL.
pub fn forward<T: Scalar>(
    mu: ArrayView2<'_, T>,
    logvar: ArrayView2<'_, T>,
    reduction: Reduction,
) -> f64 {
    let mut sum = 0.0;
    Zip::from(&mu).and(&logvar).for_each(|&m, &l| {
        let (m, l) = (m.to_f64(), l.to_f64());
        sum += -0.5 * (1.0 + l - m * m - l.exp());
    });
    sum * reduction.factor(mu.nrows())
}

/// Adds `β · ∂K/∂(μ, ℓ)` into `dmu` and `dlogvar`.
pub fn backward<T: Scalar>(
    mu: ArrayView2<'_, T>,
    logvar: ArrayView2<'_, T>,
    reduction: Reduction,
    beta: f64,
    mut dmu: ArrayViewMut2<'_, T>,
    mut dlogvar: ArrayViewMut2<'_, T>,
) {
    let w = T::from_f64(beta * reduction.factor(mu.nrows()));
    let half = T::from_f64(0.5);
    Zip::from(&mut dmu).and(&mu).for_each(|d, &m| *d += w * m);
    Zip::from(&mut dlogvar)
        .and(&logvar)
        .for_each(|d, &l| *d += w * half * (l.exp() - T::one()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};
    use ndarray::Array2;

    #[test]
    fn gradcheck_gaussian_kl() {
        let (mu0, lv0) = (random(4, 3, 1.5, 1), random(4, 3, 2.0, 2));
        for reduction in [Reduction::Sum, Reduction::Mean] {
            let beta = 2.0;
            let (mut dmu, mut dlv) = (Array2::zeros((4, 3)), Array2::zeros((4, 3)));
            backward(
                mu0.view(),
                lv0.view(),
                reduction,
                beta,
                dmu.view_mut(),
                dlv.view_mut(),
            );
            let shape = |v: &[f64]| Array2::from_shape_vec((4, 3), v.to_vec()).unwrap();
            let mut mu = mu0.clone();
            let err_mu = check_slice(
                mu.as_slice_mut().unwrap(),
                dmu.as_slice().unwrap(),
                |_| 1e-5,
                |v| beta * forward(shape(v).view(), lv0.view(), reduction),
            );
            let mut lv = lv0.clone();
            let err_lv = check_slice(
                lv.as_slice_mut().unwrap(),
                dlv.as_slice().unwrap(),
                |_| 1e-5,
                |v| beta * forward(mu0.view(), shape(v).view(), reduction),
            );
            assert!(
                err_mu < TOLERANCE && err_lv < TOLERANCE,
                "{err_mu} {err_lv}"
            );
        }
    }

    #[test]
    fn kl_is_zero_at_the_prior() {
        let z = Array2::<f64>::zeros((2, 3));
        assert_eq!(forward(z.view(), z.view(), Reduction::Sum), 0.0);
    }
}
