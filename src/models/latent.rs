//! The latent stage between encoder and decoder, and its KL term.
//!
//! | model | forward | KL | backward into the heads |
//! |---|---|---|---|
//! | AE | `z = code` | — | `δcode = δz` |
//! | β-VAE | `z = μ + ε e^{ℓ/2}` ([`reparam`]) | [`gaussian_kl`] | `δμ = δz + β r μ`, `δℓ = ½ δz ε e^{ℓ/2} + β r ½(e^ℓ − 1)` |
//! | β-VSC | `z = σ(c(η + γ − 1)) ⊙ (μ + ε e^{ℓ/2})` ([`spike_slab`]) | [`vsc_kl`] | sampler + KL into `δμ, δℓ, δγ`, then `δs_pre = δγ γ 1[s_pre < 0]` |
//!
//! [`reparam`]: crate::engine::reparam
//! [`gaussian_kl`]: crate::engine::gaussian_kl
//! [`spike_slab`]: crate::engine::spike_slab
//! [`vsc_kl`]: crate::engine::vsc_kl

use super::config::{ModelConfig, ModelKind};
use super::network::{top, top_mut, Workspace};
use crate::engine::reparam::Reparam;
use crate::engine::spike_slab::{log_spike_backward, log_spike_forward, SpikeSlab, SpikeSlabGrads};
use crate::engine::vsc_kl::{Posterior, PosteriorGrads};
use crate::engine::{gaussian_kl, vsc_kl, Scalar};
use ndarray::{s, Array2};
use rand::Rng;
use rand_distr::StandardNormal;

/// Sampling noise for one batch: `ε ~ N(0, I)` and (VSC) `η ~ U[0, 1)`, both `(B, L)`.
#[derive(Clone, Debug)]
pub struct Noise<T> {
    pub eps: Array2<T>,
    pub eta: Array2<T>,
}

impl<T: Scalar> Noise<T> {
    /// Draws the noise `kind` needs for `b` cells: nothing for the AE, ε for the VAE, ε then
    /// η for the VSC. Drawn in f64 and rounded, so f32 and f64 runs see the same noise.
    pub fn draw<R: Rng + ?Sized>(rng: &mut R, kind: ModelKind, b: usize, latent: usize) -> Self {
        let mut noise = Noise::zeros(b, latent);
        if kind != ModelKind::Ae {
            noise
                .eps
                .mapv_inplace(|_| T::from_f64(rng.sample::<f64, _>(StandardNormal)));
        }
        if kind == ModelKind::Vsc {
            noise.eta.mapv_inplace(|_| T::from_f64(rng.random::<f64>()));
        }
        noise
    }

    /// All-zero noise (`z = μ` for the VAE).
    pub fn zeros(b: usize, latent: usize) -> Self {
        Noise {
            eps: Array2::zeros((b, latent)),
            eta: Array2::zeros((b, latent)),
        }
    }
}

/// The samplers' forward caches.
#[derive(Clone, Debug, Default)]
pub struct LatentState<T> {
    gauss: Reparam<T>,
    spike: SpikeSlab<T>,
    gamma: Array2<T>,
}

/// Latent forward: fills `ws.z` from the heads and returns the reduced KL (before β).
pub(crate) fn forward<T: Scalar>(
    cfg: &ModelConfig,
    ws: &mut Workspace<T>,
    noise: &Noise<T>,
    c: f64,
    b: usize,
) -> f64 {
    let eps = noise.eps.slice(s![..b, ..]);
    let kl = match cfg.kind {
        ModelKind::Ae => {
            let code = ws.head_out[0].slice(s![..b, ..]).to_owned();
            top_mut(&mut ws.z, b).assign(&code);
            return 0.0;
        }
        ModelKind::Vae => {
            let (mu, logvar) = (top(&ws.head_out[0], b), top(&ws.head_out[1], b));
            ws.latent.gauss.forward(mu, logvar, eps);
            gaussian_kl::forward(mu, logvar, cfg.reduction)
        }
        ModelKind::Vsc => {
            let (mu, logvar, spre) = (
                top(&ws.head_out[0], b),
                top(&ws.head_out[1], b),
                top(&ws.head_out[2], b),
            );
            let st = &mut ws.latent;
            st.gamma = log_spike_forward(spre);
            let eta = noise.eta.slice(s![..b, ..]);
            st.spike
                .forward(mu, logvar, st.gamma.view(), eps, eta, T::from_f64(c));
            vsc_kl::forward(
                Posterior {
                    mu,
                    logvar,
                    gamma: st.gamma.view(),
                },
                cfg.vsc_alpha,
                cfg.reduction,
            )
        }
    };
    let z = match cfg.kind {
        ModelKind::Vae => &ws.latent.gauss.z,
        _ => &ws.latent.spike.z,
    };
    ws.z.slice_mut(s![..b, ..]).assign(z);
    kl
}

/// Latent backward: from `ws.dz` and the KL into `ws.dhead_out`.
pub(crate) fn backward<T: Scalar>(cfg: &ModelConfig, ws: &mut Workspace<T>, b: usize) {
    let dz = top(&ws.dz, b);
    match cfg.kind {
        ModelKind::Ae => {
            let mut dcode = top_mut(&mut ws.dhead_out[0], b);
            dcode += &dz;
        }
        ModelKind::Vae => {
            let (mu, logvar) = (top(&ws.head_out[0], b), top(&ws.head_out[1], b));
            let [dmu, dlogvar] = &mut ws.dhead_out[..] else {
                unreachable!("a VAE has two heads")
            };
            ws.latent
                .gauss
                .backward(dz, top_mut(dmu, b), top_mut(dlogvar, b));
            gaussian_kl::backward(
                mu,
                logvar,
                cfg.reduction,
                cfg.beta,
                top_mut(dmu, b),
                top_mut(dlogvar, b),
            );
        }
        ModelKind::Vsc => {
            let (mu, logvar, spre) = (
                top(&ws.head_out[0], b),
                top(&ws.head_out[1], b),
                top(&ws.head_out[2], b),
            );
            let [dmu, dlogvar, dspre] = &mut ws.dhead_out[..] else {
                unreachable!("a VSC has three heads")
            };
            let st = &ws.latent;
            let mut dgamma = Array2::zeros((b, cfg.latent));
            st.spike.backward(
                dz,
                SpikeSlabGrads {
                    dmu: top_mut(dmu, b),
                    dlogvar: top_mut(dlogvar, b),
                    dgamma: dgamma.view_mut(),
                },
            );
            vsc_kl::backward(
                Posterior {
                    mu,
                    logvar,
                    gamma: st.gamma.view(),
                },
                cfg.vsc_alpha,
                cfg.reduction,
                cfg.beta,
                PosteriorGrads {
                    dmu: top_mut(dmu, b),
                    dlogvar: top_mut(dlogvar, b),
                    dgamma: dgamma.view_mut(),
                },
            );
            log_spike_backward(spre, st.gamma.view(), dgamma.view(), top_mut(dspre, b));
        }
    }
}
