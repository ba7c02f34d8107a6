//! KL divergence of the spike-and-slab posterior from the spike-and-slab prior (VSC).
//!
//! Shapes: `μ, ℓ, γ: (B, L)`; prior spike probability `α` (0.5 by default).
//!
//! Forward, per entry, with `γ̃ = clamp(γ, 10⁻⁶, 1 − 10⁻⁶)` (clamped **inside the KL only**; the
//! sampler uses `γ`) and the per-dimension Gaussian KL `κ = −½ (1 + ℓ − μ² − e^ℓ) ≥ 0`:
//!
//! `k = γ̃ κ + (1 − γ̃) ln((1 − γ̃)/(1 − α)) + γ̃ ln(γ̃/α)`,  `K = r · Σ k`.
//!
//! This is the VSC paper's closed form (its Appendix C) with a standard-normal slab.
//!
//! Backward, with weight `w = β · r` and `1[in] = 1[10⁻⁶ ≤ γ ≤ 1 − 10⁻⁶]` (PyTorch's clamp passes
//! the gradient where min ≤ input ≤ max):
//! - `δμ += w · γ̃ μ`
//! - `δℓ += w · ½ γ̃ (e^ℓ − 1)`
//! - `δγ += w · 1[in] · (κ + logit γ̃ − logit α)`: differentiating `k` in `γ̃`,
//!   `κ − ln((1 − γ̃)/(1 − α)) − 1 + ln(γ̃/α) + 1`, and the two logs regroup into
//!   `ln(γ̃/(1 − γ̃)) − ln(α/(1 − α))`.
//!
//! In f32, `1 − 10⁻⁶` rounds to 0.99999899, so any `λ = ln γ > ≈ −1.01e-6` (including
//! `λ = 0`) is clamped and passes no gradient through the KL.

use super::scalar::Scalar;
use super::Reduction;
use ndarray::{ArrayView2, ArrayViewMut2, Zip};

/// Lower clamp of γ inside the KL.
pub const GAMMA_MIN: f64 = 1e-6;
/// Upper clamp of γ inside the KL.
pub const GAMMA_MAX: f64 = 1.0 - 1e-6;

/// The posterior the KL is evaluated at.
#[derive(Clone, Copy)]
pub struct Posterior<'a, T> {
    pub mu: ArrayView2<'a, T>,
    pub logvar: ArrayView2<'a, T>,
    pub gamma: ArrayView2<'a, T>,
}

/// The gradient buffers the KL adds into.
pub struct PosteriorGrads<'a, T> {
    pub dmu: ArrayViewMut2<'a, T>,
    pub dlogvar: ArrayViewMut2<'a, T>,
    pub dgamma: ArrayViewMut2<'a, T>,
}

fn clamp<T: Scalar>(g: T) -> T {
    g.max_s(T::from_f64(GAMMA_MIN))
        .min_s(T::from_f64(GAMMA_MAX))
}

/// The reduced KL.
pub fn forward<T: Scalar>(p: Posterior<'_, T>, alpha: f64, reduction: Reduction) -> f64 {
    let mut sum = 0.0;
    Zip::from(&p.mu)
        .and(&p.logvar)
        .and(&p.gamma)
        .for_each(|&m, &l, &g| {
            let gt = clamp(g).to_f64();
            let (m, l) = (m.to_f64(), l.to_f64());
            let kappa = -0.5 * (1.0 + l - m * m - l.exp());
            sum += gt * kappa
                + (1.0 - gt) * ((1.0 - gt) / (1.0 - alpha)).ln()
                + gt * (gt / alpha).ln();
        });
    sum * reduction.factor(p.mu.nrows())
}

/// Adds `β · ∂K/∂(μ, ℓ, γ)` into `grads`.
pub fn backward<T: Scalar>(
    p: Posterior<'_, T>,
    alpha: f64,
    reduction: Reduction,
    beta: f64,
    grads: PosteriorGrads<'_, T>,
) {
    let w = T::from_f64(beta * reduction.factor(p.mu.nrows()));
    let (one, half) = (T::one(), T::from_f64(0.5));
    let (lo, hi) = (T::from_f64(GAMMA_MIN), T::from_f64(GAMMA_MAX));
    let logit_alpha = T::from_f64((alpha / (1.0 - alpha)).ln());
    let PosteriorGrads {
        mut dmu,
        mut dlogvar,
        mut dgamma,
    } = grads;
    Zip::from(&mut dmu)
        .and(&p.mu)
        .and(&p.gamma)
        .for_each(|d, &m, &g| *d += w * clamp(g) * m);
    Zip::from(&mut dlogvar)
        .and(&p.logvar)
        .and(&p.gamma)
        .for_each(|d, &l, &g| *d += w * half * clamp(g) * (l.exp() - one));
    Zip::from(&mut dgamma)
        .and(&p.mu)
        .and(&p.logvar)
        .and(&p.gamma)
        .for_each(|d, &m, &l, &g| {
            if lo <= g && g <= hi {
                let kappa = -half * (one + l - m * m - l.exp());
                let logit = (g / (one - g)).ln();
                *d += w * (kappa + logit - logit_alpha);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};
    use crate::engine::spike_slab::{log_spike_backward, log_spike_forward};
    use ndarray::Array2;

    /// K(μ, ℓ, γ(s_pre)) checked in μ, ℓ and s_pre, with s_pre in every regime: positive,
    /// at the upper clamp, at the lower clamp, and inside. α ≠ ½ so `logit α` is exercised.
    #[test]
    fn gradcheck_vsc_kl() {
        let (mu0, lv0) = (random(3, 4, 1.0, 1), random(3, 4, 1.0, 2));
        let sp0 = ndarray::arr2(&[
            [0.7, 2.0, -5e-7, -0.3],
            [-1.2, -15.0, 0.05, -0.01],
            [-0.6, -2.5, -4e-7, 1.3],
        ]);
        let (alpha, beta) = (0.3, 2.0);
        for reduction in [Reduction::Sum, Reduction::Mean] {
            let loss = |mu: &Array2<f64>, lv: &Array2<f64>, sp: &Array2<f64>| {
                let gamma = log_spike_forward(sp.view());
                let p = Posterior {
                    mu: mu.view(),
                    logvar: lv.view(),
                    gamma: gamma.view(),
                };
                beta * forward(p, alpha, reduction)
            };
            let gamma = log_spike_forward(sp0.view());
            let (mut dmu, mut dlv, mut dgm, mut dsp) = (
                Array2::zeros((3, 4)),
                Array2::zeros((3, 4)),
                Array2::zeros((3, 4)),
                Array2::zeros((3, 4)),
            );
            let p = Posterior {
                mu: mu0.view(),
                logvar: lv0.view(),
                gamma: gamma.view(),
            };
            let grads = PosteriorGrads {
                dmu: dmu.view_mut(),
                dlogvar: dlv.view_mut(),
                dgamma: dgm.view_mut(),
            };
            backward(p, alpha, reduction, beta, grads);
            log_spike_backward(sp0.view(), gamma.view(), dgm.view(), dsp.view_mut());
            let shape = |v: &[f64]| Array2::from_shape_vec((3, 4), v.to_vec()).unwrap();
            let edge = GAMMA_MAX.ln();
            let step = |i: usize| {
                let s = sp0.as_slice().unwrap()[i];
                (s.abs()
                    .min((s - edge).abs())
                    .min((s - GAMMA_MIN.ln()).abs())
                    / 4.0)
                    .min(1e-5)
            };
            let err_mu = check_slice(
                mu0.clone().as_slice_mut().unwrap(),
                dmu.as_slice().unwrap(),
                |_| 1e-5,
                |v| loss(&shape(v), &lv0, &sp0),
            );
            let err_lv = check_slice(
                lv0.clone().as_slice_mut().unwrap(),
                dlv.as_slice().unwrap(),
                |_| 1e-5,
                |v| loss(&mu0, &shape(v), &sp0),
            );
            let err_sp = check_slice(
                sp0.clone().as_slice_mut().unwrap(),
                dsp.as_slice().unwrap(),
                step,
                |v| loss(&mu0, &lv0, &shape(v)),
            );
            assert!(
                err_mu < TOLERANCE && err_lv < TOLERANCE && err_sp < TOLERANCE,
                "{err_mu} {err_lv} {err_sp}"
            );
            // Clamped entries pass nothing to s_pre through the KL; inside ones do.
            assert_eq!(dsp[[0, 2]], 0.0, "upper clamp");
            assert_eq!(dsp[[1, 1]], 0.0, "lower clamp");
            assert_eq!(dsp[[0, 0]], 0.0, "s_pre > 0");
            assert!(dsp[[0, 3]].abs() > 0.0, "inside");
        }
    }

    #[test]
    fn vsc_kl_at_the_prior_is_zero() {
        // γ = α everywhere and a standard-normal slab: posterior = prior.
        let z = Array2::<f64>::zeros((2, 2));
        let g = Array2::from_elem((2, 2), 0.5);
        let p = Posterior {
            mu: z.view(),
            logvar: z.view(),
            gamma: g.view(),
        };
        assert!(forward(p, 0.5, Reduction::Sum).abs() < 1e-15);
    }
}
