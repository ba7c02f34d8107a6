//! Gaussian reparameterization (the β-VAE sampler).
//!
//! Shapes: `μ, ℓ, ε, z: (B, L)`, with `ℓ = log σ²` (the log-variance: the write-up says
//! "log σ", but the study's code and the VAE literature use log σ², and so do we).
//!
//! Forward:  `z = μ + ε ⊙ exp(ℓ/2)`, `ε ~ N(0, I)` drawn by the caller or supplied.
//!
//! Backward (ε held fixed):
//! - `δμ += δz`
//! - `δℓ += δz ⊙ ½ ε ⊙ exp(ℓ/2)`   (`= ½ (z − μ)`)

use super::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

/// The sampler with its forward cache `ε ⊙ exp(ℓ/2)`.
#[derive(Clone, Debug, Default)]
pub struct Reparam<T> {
    /// `z = μ + ε ⊙ exp(ℓ/2)`, `(B, L)`
    pub z: Array2<T>,
    /// `ε ⊙ exp(ℓ/2)`, kept for the backward pass.
    sigma_eps: Array2<T>,
}

impl<T: Scalar> Reparam<T> {
    /// `z = μ + ε ⊙ exp(ℓ/2)`.
    pub fn forward(
        &mut self,
        mu: ArrayView2<'_, T>,
        logvar: ArrayView2<'_, T>,
        eps: ArrayView2<'_, T>,
    ) {
        let half = T::from_f64(0.5);
        self.sigma_eps = Zip::from(&logvar)
            .and(&eps)
            .map_collect(|&l, &e| e * (l * half).exp());
        self.z = &mu + &self.sigma_eps;
    }

    /// `δμ += δz`, `δℓ += ½ δz ⊙ ε ⊙ exp(ℓ/2)`.
    pub fn backward(
        &self,
        dz: ArrayView2<'_, T>,
        mut dmu: ArrayViewMut2<'_, T>,
        mut dlogvar: ArrayViewMut2<'_, T>,
    ) {
        let half = T::from_f64(0.5);
        dmu += &dz;
        Zip::from(&mut dlogvar)
            .and(&dz)
            .and(&self.sigma_eps)
            .for_each(|dl, &d, &se| *dl += d * half * se);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};

    /// L = Σ G ⊙ z(μ, ℓ) with fixed ε.
    #[test]
    fn gradcheck_reparam() {
        let (mu0, lv0, eps, g) = (
            random(4, 3, 1.0, 1),
            random(4, 3, 1.5, 2),
            random(4, 3, 1.5, 3),
            random(4, 3, 1.0, 4),
        );
        let loss = |mu: &Array2<f64>, lv: &Array2<f64>| {
            let mut r = Reparam::default();
            r.forward(mu.view(), lv.view(), eps.view());
            (&r.z * &g).sum()
        };
        let mut r = Reparam::default();
        r.forward(mu0.view(), lv0.view(), eps.view());
        let (mut dmu, mut dlv) = (Array2::zeros((4, 3)), Array2::zeros((4, 3)));
        r.backward(g.view(), dmu.view_mut(), dlv.view_mut());
        let mut mu = mu0.clone();
        let err_mu = check_slice(
            mu.as_slice_mut().unwrap(),
            dmu.as_slice().unwrap(),
            |_| 1e-5,
            |v| loss(&Array2::from_shape_vec((4, 3), v.to_vec()).unwrap(), &lv0),
        );
        let mut lv = lv0.clone();
        let err_lv = check_slice(
            lv.as_slice_mut().unwrap(),
            dlv.as_slice().unwrap(),
            |_| 1e-5,
            |v| loss(&mu0, &Array2::from_shape_vec((4, 3), v.to_vec()).unwrap()),
        );
        assert!(
            err_mu < TOLERANCE && err_lv < TOLERANCE,
            "{err_mu} {err_lv}"
        );
    }
}
