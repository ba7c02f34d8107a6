//! The latent stage between encoder and decoder, and its KL term.
//!
//! | model | forward | KL | backward into the heads |
//! |---|---|---|---|
//! | AE | `z = code` | — | `δcode = δz` |
//! | β-VAE | `z = μ + ε e^{ℓ/2}` ([`reparam`]) | [`gaussian_kl`] | `δμ = δz + β r μ`, `δℓ = ½ δz ε e^{ℓ/2} + β r ½(e^ℓ − 1)` |
//! | β-VSC | `z = σ(c(η + γ − 1)) ⊙ (μ + ε e^{ℓ/2})` ([`spike_slab`]) | [`vsc_kl`] | sampler + KL into `δμ, δℓ, δγ`, then `δs_pre = δγ γ 1[s_pre < 0]` |
//!
//! The stage sees only what it computes with: the heads' outputs in, `z` out, and on the way
//! back `δz` in, the heads' gradients out (added into). Every array is `(B, L)` for the batch's
//! `B` cells; the noise may have more rows (a workspace's capacity), of which the first `B`
//! are used.
//!
//! [`reparam`]: crate::engine::reparam
//! [`gaussian_kl`]: crate::engine::gaussian_kl
//! [`spike_slab`]: crate::engine::spike_slab
//! [`vsc_kl`]: crate::engine::vsc_kl

use super::config::{ModelConfig, ModelKind};
use crate::engine::reparam::Reparam;
use crate::engine::spike_slab::{log_spike_backward, log_spike_forward, SpikeSlab, SpikeSlabGrads};
use crate::engine::vsc_kl::{Posterior, PosteriorGrads};
use crate::engine::{gaussian_kl, vsc_kl, Scalar};
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
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

    /// Rows `start..end` of this noise (a batch's share of a larger draw).
    pub fn rows(&self, start: usize, end: usize) -> Self {
        Noise {
            eps: self.eps.slice(s![start..end, ..]).to_owned(),
            eta: self.eta.slice(s![start..end, ..]).to_owned(),
        }
    }

    /// All-zero noise (`z = μ` for the VAE).
    pub fn zeros(b: usize, latent: usize) -> Self {
        Noise {
            eps: Array2::zeros((b, latent)),
            eta: Array2::zeros((b, latent)),
        }
    }
}

/// The latent stage's caches between its forward and backward passes.
#[derive(Clone, Debug, Default)]
pub struct LatentStage<T> {
    gauss: Reparam<T>,
    spike: SpikeSlab<T>,
    /// `γ = exp(min(s_pre, 0))` (VSC).
    gamma: Array2<T>,
}

impl<T: Scalar> LatentStage<T> {
    /// Forward: from the head outputs (`[code]`, `[μ, ℓ]` or `[μ, ℓ, s_pre]`, as
    /// [`ModelKind::heads`] names them) into `z`; returns the reduced KL before β (0 for the AE).
    pub fn forward(
        &mut self,
        cfg: &ModelConfig,
        heads: &[ArrayView2<'_, T>],
        noise: &Noise<T>,
        c: f64,
        mut z: ArrayViewMut2<'_, T>,
    ) -> f64 {
        let b = heads[0].nrows();
        let eps = noise.eps.slice(s![..b, ..]);
        match cfg.kind {
            ModelKind::Ae => {
                z.assign(&heads[0]);
                0.0
            }
            ModelKind::Vae => {
                let [mu, logvar] = heads else {
                    unreachable!("a VAE has two heads")
                };
                self.gauss.forward(mu.view(), logvar.view(), eps);
                z.assign(&self.gauss.z);
                gaussian_kl::forward(mu.view(), logvar.view(), cfg.reduction)
            }
            ModelKind::Vsc => {
                let [mu, logvar, spre] = heads else {
                    unreachable!("a VSC has three heads")
                };
                self.gamma = log_spike_forward(spre.view());
                let eta = noise.eta.slice(s![..b, ..]);
                self.spike.forward(
                    mu.view(),
                    logvar.view(),
                    self.gamma.view(),
                    eps,
                    eta,
                    T::from_f64(c),
                );
                z.assign(&self.spike.z);
                vsc_kl::forward(
                    Posterior {
                        mu: mu.view(),
                        logvar: logvar.view(),
                        gamma: self.gamma.view(),
                    },
                    cfg.vsc_alpha,
                    cfg.reduction,
                )
            }
        }
    }

    /// Backward for the batch of the last [`LatentStage::forward`]: adds the sampler's
    /// `∂z/∂headsᵀ·δz` and `β·∂KL/∂heads` into `dheads` (one per head, as in `forward`).
    /// `beta` is the KL weight of this step (`cfg.beta`, or less during a KL warm-up).
    pub fn backward(
        &self,
        cfg: &ModelConfig,
        beta: f64,
        heads: &[ArrayView2<'_, T>],
        dz: ArrayView2<'_, T>,
        dheads: &mut [ArrayViewMut2<'_, T>],
    ) {
        match cfg.kind {
            ModelKind::Ae => dheads[0] += &dz,
            ModelKind::Vae => {
                let ([mu, logvar], [dmu, dlogvar]) = (heads, dheads) else {
                    unreachable!("a VAE has two heads")
                };
                self.gauss.backward(dz, dmu.view_mut(), dlogvar.view_mut());
                gaussian_kl::backward(
                    mu.view(),
                    logvar.view(),
                    cfg.reduction,
                    beta,
                    dmu.view_mut(),
                    dlogvar.view_mut(),
                );
            }
            ModelKind::Vsc => {
                let ([mu, logvar, spre], [dmu, dlogvar, dspre]) = (heads, dheads) else {
                    unreachable!("a VSC has three heads")
                };
                let mut dgamma = Array2::zeros(mu.raw_dim());
                self.spike.backward(
                    dz,
                    SpikeSlabGrads {
                        dmu: dmu.view_mut(),
                        dlogvar: dlogvar.view_mut(),
                        dgamma: dgamma.view_mut(),
                    },
                );
                vsc_kl::backward(
                    Posterior {
                        mu: mu.view(),
                        logvar: logvar.view(),
                        gamma: self.gamma.view(),
                    },
                    cfg.vsc_alpha,
                    cfg.reduction,
                    beta,
                    PosteriorGrads {
                        dmu: dmu.view_mut(),
                        dlogvar: dlogvar.view_mut(),
                        dgamma: dgamma.view_mut(),
                    },
                );
                log_spike_backward(
                    spre.view(),
                    self.gamma.view(),
                    dgamma.view(),
                    dspre.view_mut(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};
    use crate::engine::rng::{stream, Stream};
    use crate::models::Preset;

    /// `L = Σ G ⊙ z + β·KL` for fixed noise, as a function of the heads.
    fn loss(cfg: &ModelConfig, heads: &[Array2<f64>], noise: &Noise<f64>, g: &Array2<f64>) -> f64 {
        let views: Vec<_> = heads.iter().map(|h| h.view()).collect();
        let mut z = Array2::zeros(g.raw_dim());
        let kl = LatentStage::default().forward(cfg, &views, noise, cfg.vsc_c, z.view_mut());
        (&z * g).sum() + cfg.beta * kl
    }

    /// The stage on its own: every head's gradient against finite differences, for each
    /// model, with a noise buffer larger than the batch (its first rows are used). The VSC's
    /// spike pre-activations span both sides of 0 so the mask is exercised.
    #[test]
    fn gradcheck_latent_stage() {
        let (b, l) = (4, 3);
        for kind in ModelKind::ALL {
            let mut cfg = ModelConfig::preset(kind, Preset::Paper);
            cfg.latent = l;
            cfg.vsc_c = 3.0; // a soft selection, so that δγ is sizeable
            let noise = Noise::<f64>::draw(&mut stream(2, Stream::Noise), kind, b + 2, l);
            let mut heads: Vec<Array2<f64>> = (0..kind.heads().len())
                .map(|k| random(b, l, 1.0, 10 + k as u64))
                .collect();
            if kind == ModelKind::Vsc {
                heads[2].mapv_inplace(|v| v - 0.3);
            }
            let g = random(b, l, 1.0, 20);
            let views: Vec<_> = heads.iter().map(|h| h.view()).collect();
            let mut stage = LatentStage::default();
            let mut z = Array2::zeros((b, l));
            stage.forward(&cfg, &views, &noise, cfg.vsc_c, z.view_mut());
            let mut grads: Vec<Array2<f64>> =
                heads.iter().map(|h| Array2::zeros(h.raw_dim())).collect();
            let mut gviews: Vec<_> = grads.iter_mut().map(|d| d.view_mut()).collect();
            stage.backward(&cfg, cfg.beta, &views, g.view(), &mut gviews);
            for k in 0..heads.len() {
                let mut probe = heads.clone();
                let mut values = heads[k].clone();
                let err = check_slice(
                    values.as_slice_mut().unwrap(),
                    grads[k].as_slice().unwrap(),
                    |_| 1e-6,
                    |v| {
                        probe[k].as_slice_mut().unwrap().copy_from_slice(v);
                        loss(&cfg, &probe, &noise, &g)
                    },
                );
                assert!(err < TOLERANCE, "{kind:?} head {k}: {err:e}");
                assert!(grads[k].iter().any(|&d| d != 0.0), "{kind:?} head {k}");
            }
        }
    }

    /// The AE passes its code through; the VAE with zero noise gives `z = μ`.
    #[test]
    fn deterministic_cases() {
        let code = random(3, 2, 1.0, 1);
        let mut z = Array2::zeros((3, 2));
        let ae = ModelConfig::preset(ModelKind::Ae, Preset::Paper);
        let kl = LatentStage::default().forward(
            &ae,
            &[code.view()],
            &Noise::zeros(3, 2),
            50.0,
            z.view_mut(),
        );
        assert_eq!((kl, &z), (0.0, &code));
        let vae = ModelConfig::preset(ModelKind::Vae, Preset::Paper);
        let logvar = random(3, 2, 1.0, 2);
        LatentStage::default().forward(
            &vae,
            &[code.view(), logvar.view()],
            &Noise::zeros(5, 2),
            50.0,
            z.view_mut(),
        );
        assert_eq!(&z, &code);
    }
}
