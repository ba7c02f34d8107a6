//! Spike-and-slab sampling (the β-VSC sampler), as the VSC paper and the study's code define it.
//!
//! Shapes: every tensor `(B, L)`.
//!
//! Forward, from the three heads `μ`, `ℓ = log σ²` and `s_pre`:
//! - log-spike: `λ = min(s_pre, 0)`, `γ = e^λ ∈ (0, 1]` (the probability of the slab);
//! - slab: `g = μ + ε ⊙ e^{ℓ/2}`, `ε ~ N(0, I)`: the Gaussian reparameterization, run by
//!   [`Reparam`] itself (not repeated here);
//! - selection: `s = σ(c (η + γ − 1))`, `η ~ U[0, 1)`, a smooth stand-in for the Bernoulli
//!   `1[η < γ]` whose sharpness is `c` (50 by default);
//! - `z = s ⊙ g`.
//!
//! Backward (ε, η held fixed):
//! - `δg = δz ⊙ s`, then [`Reparam::backward`]: `δμ += δg`, `δℓ += δg ⊙ ½ ε e^{ℓ/2}`
//! - `δγ += δz ⊙ g ⊙ c s (1 − s)`   (the KL adds its own part to `δγ`, see [`super::vsc_kl`]).
//!   Why `c s (1 − s)`: `σ′(u) = σ(u)(1 − σ(u))` and `u = c(η + γ − 1)` has `∂u/∂γ = c`, so
//!   `∂s/∂γ = c·s(1 − s)`; and `∂z/∂s = g`.
//! - then [`log_spike_backward`]: `δλ = δγ ⊙ γ` (because `∂e^λ/∂λ = e^λ = γ`),
//!   `δs_pre += δλ ⊙ 1[s_pre < 0]`.
//!
//! Where `s_pre > 0`, `γ = 1` exactly and no gradient reaches `s_pre` (PyTorch's `min` sends
//! none to the clamped branch; at `s_pre = 0` exactly, none either).

use super::reparam::Reparam;
use super::scalar::Scalar;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

/// `γ = exp(min(s_pre, 0))`.
pub fn log_spike_forward<T: Scalar>(spre: ArrayView2<'_, T>) -> Array2<T> {
    spre.mapv(|s| s.min_s(T::zero()).exp())
}

/// `δs_pre += δγ ⊙ γ ⊙ 1[s_pre < 0]`.
pub fn log_spike_backward<T: Scalar>(
    spre: ArrayView2<'_, T>,
    gamma: ArrayView2<'_, T>,
    dgamma: ArrayView2<'_, T>,
    mut dspre: ArrayViewMut2<'_, T>,
) {
    Zip::from(&mut dspre)
        .and(&spre)
        .and(&gamma)
        .and(&dgamma)
        .for_each(|ds, &s, &g, &dg| {
            if s < T::zero() {
                *ds += dg * g;
            }
        });
}

/// The selection-and-slab sampler with its forward cache.
#[derive(Clone, Debug, Default)]
pub struct SpikeSlab<T> {
    /// `z = s ⊙ g`
    pub z: Array2<T>,
    /// `s = σ(c (η + γ − 1))`
    pub s: Array2<T>,
    /// The slab `g = μ + ε ⊙ e^{ℓ/2}` (its `z`), with its own cache.
    slab: Reparam<T>,
    /// `c` used by the last forward pass.
    c: T,
}

/// The gradient buffers the sampler adds into.
pub struct SpikeSlabGrads<'a, T> {
    pub dmu: ArrayViewMut2<'a, T>,
    pub dlogvar: ArrayViewMut2<'a, T>,
    pub dgamma: ArrayViewMut2<'a, T>,
}

impl<T: Scalar> SpikeSlab<T> {
    /// Forward pass; `gamma` comes from [`log_spike_forward`], `eps` and `eta` are the noise.
    pub fn forward(
        &mut self,
        mu: ArrayView2<'_, T>,
        logvar: ArrayView2<'_, T>,
        gamma: ArrayView2<'_, T>,
        eps: ArrayView2<'_, T>,
        eta: ArrayView2<'_, T>,
        c: T,
    ) {
        let one = T::one();
        self.c = c;
        self.slab.forward(mu, logvar, eps);
        self.s = Zip::from(&gamma)
            .and(&eta)
            .map_collect(|&gm, &et| one / (one + (-(c * (et + gm - one))).exp()));
        self.z = &self.s * self.g();
    }

    /// The slab sample `g = μ + ε ⊙ e^{ℓ/2}` of the last forward pass.
    pub fn g(&self) -> &Array2<T> {
        &self.slab.z
    }

    /// Adds `∂z/∂(μ, ℓ, γ)ᵀ δz` into `grads`.
    pub fn backward(&self, dz: ArrayView2<'_, T>, grads: SpikeSlabGrads<'_, T>) {
        let (one, c) = (T::one(), self.c);
        let SpikeSlabGrads {
            dmu,
            dlogvar,
            mut dgamma,
        } = grads;
        let dg = &dz * &self.s;
        self.slab.backward(dg.view(), dmu, dlogvar);
        Zip::from(&mut dgamma)
            .and(&dz)
            .and(&self.s)
            .and(self.g())
            .for_each(|d, &dz, &s, &g| *d += dz * g * c * s * (one - s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};

    /// Fixed inputs: the spike pre-activations cover every regime (see [`spre_fixture`]).
    /// The fixed inputs of the checks.
    struct Fixture {
        mu: Array2<f64>,
        logvar: Array2<f64>,
        spre: Array2<f64>,
        eps: Array2<f64>,
        eta: Array2<f64>,
        /// Weights of the test loss `L = Σ G ⊙ z`.
        g: Array2<f64>,
    }

    /// The spike pre-activations cover every regime (see [`spre_fixture`]).
    fn setup() -> Fixture {
        let gamma = log_spike_forward(spre_fixture().view());
        Fixture {
            mu: random(3, 4, 1.0, 1),
            logvar: random(3, 4, 1.0, 2),
            spre: spre_fixture(),
            eps: random(3, 4, 1.5, 3),
            // η placed near the selection threshold 1 − γ, so that s = σ(c(η + γ − 1)) is in
            // its steep part (|c(η + γ − 1)| ≤ 2) and every gradient is sizeable.
            eta: (&random(3, 4, 2.0, 4) / 50.0 - &gamma + 1.0).mapv(|v| v.clamp(0.0, 0.999)),
            g: random(3, 4, 1.0, 5),
        }
    }

    /// Spike pre-activations: positive (γ = 1, no gradient), just below 0 (γ inside the upper
    /// KL clamp), far below (γ < 1e-6, the lower clamp), and ordinary values inside the range.
    pub(crate) fn spre_fixture() -> Array2<f64> {
        ndarray::arr2(&[
            [0.7, 2.0, -5e-7, -0.3],
            [-1.2, -15.0, 0.05, -0.01],
            [-0.6, -2.5, -4e-7, 1.3],
        ])
    }

    /// Step for entry `i`: a quarter of the distance (the stencil reaches twice the step) to the nearest kink (0 and the clamp edge
    /// ln(1 − 1e-6)), capped at 1e-6, so no stencil straddles a kink.
    pub(crate) fn safe_step(spre: &Array2<f64>) -> impl Fn(usize) -> f64 + '_ {
        let edge = (1.0f64 - 1e-6).ln();
        move |i| {
            let s = spre.as_slice().unwrap()[i];
            ((s.abs()).min((s - edge).abs()) / 4.0).min(1e-5)
        }
    }

    /// L = Σ G ⊙ z(μ, ℓ, s_pre), all three inputs checked, through γ.
    #[test]
    fn gradcheck_spike_slab() {
        let Fixture {
            mu: mu0,
            logvar: lv0,
            spre: sp0,
            eps,
            eta,
            g,
        } = setup();
        let c = 50.0;
        let loss = |mu: &Array2<f64>, lv: &Array2<f64>, sp: &Array2<f64>| {
            let mut ss = SpikeSlab::default();
            let gamma = log_spike_forward(sp.view());
            ss.forward(
                mu.view(),
                lv.view(),
                gamma.view(),
                eps.view(),
                eta.view(),
                c,
            );
            (&ss.z * &g).sum()
        };
        let gamma = log_spike_forward(sp0.view());
        let mut ss = SpikeSlab::default();
        ss.forward(
            mu0.view(),
            lv0.view(),
            gamma.view(),
            eps.view(),
            eta.view(),
            c,
        );
        let (mut dmu, mut dlv, mut dgm, mut dsp) = (
            Array2::zeros((3, 4)),
            Array2::zeros((3, 4)),
            Array2::zeros((3, 4)),
            Array2::zeros((3, 4)),
        );
        ss.backward(
            g.view(),
            SpikeSlabGrads {
                dmu: dmu.view_mut(),
                dlogvar: dlv.view_mut(),
                dgamma: dgm.view_mut(),
            },
        );
        log_spike_backward(sp0.view(), gamma.view(), dgm.view(), dsp.view_mut());
        let shape = |v: &[f64]| Array2::from_shape_vec((3, 4), v.to_vec()).unwrap();
        let err_mu = check_slice(
            &mut mu0.clone().into_raw_vec_and_offset().0,
            dmu.as_slice().unwrap(),
            |_| 1e-6,
            |v| loss(&shape(v), &lv0, &sp0),
        );
        let err_lv = check_slice(
            &mut lv0.clone().into_raw_vec_and_offset().0,
            dlv.as_slice().unwrap(),
            |_| 1e-6,
            |v| loss(&mu0, &shape(v), &sp0),
        );
        let err_sp = check_slice(
            &mut sp0.clone().into_raw_vec_and_offset().0,
            dsp.as_slice().unwrap(),
            safe_step(&sp0),
            |v| loss(&mu0, &lv0, &shape(v)),
        );
        assert!(
            err_mu < TOLERANCE && err_lv < TOLERANCE && err_sp < TOLERANCE,
            "{err_mu} {err_lv} {err_sp}"
        );
        // s_pre > 0: no gradient at all; just below 0: the sampler's gradient does flow.
        assert_eq!(dsp[[0, 0]], 0.0);
        assert_eq!(dsp[[2, 3]], 0.0);
        assert!(dsp[[0, 2]].abs() > 0.0);
    }
}
