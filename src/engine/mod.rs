//! The numeric engine: every layer and loss as an explicit forward/backward pair.
//!
//! | file | forward | backward |
//! |---|---|---|
//! | [`dense`] | `y = act(x·Wᵀ + b)` | `∂W += δyᵀx`, `∂b += Σδy`, `δx += δy·W` |
//! | [`sparse_dense`] | same, `x` CSR | `∂W += δyᵀx` from the nonzeros, no `δx` |
//! | [`relu`] | `max(a, 0)` fused with the bias | `δa = δy ⊙ 1[a > 0]` |
//! | [`reparam`] | `z = μ + ε e^{ℓ/2}` | `δμ += δz`, `δℓ += ½ δz ε e^{ℓ/2}` |
//! | [`spike_slab`] | `z = σ(c(η + γ − 1)) ⊙ (μ + ε e^{ℓ/2})`, `γ = e^{min(s_pre,0)}` | see the module |
//! | [`mse`] | `Σ (x̂ − x)²` | `δx̂ = 2(x̂ − x)` |
//! | [`output_mse`] | the output layer and [`mse`] in one step, `x̂` never formed | via `WᵀW`, `HᵀH` and the nonzeros |
//! | [`gaussian_kl`] | `−½ Σ (1 + ℓ − μ² − e^ℓ)` | `δμ = μ`, `δℓ = ½(e^ℓ − 1)` |
//! | [`vsc_kl`] | the VSC paper's spike-and-slab KL | see the module |
//! | [`adam`] | PyTorch's Adam | — |
//!
//! All of it is generic over [`Scalar`] (`f32` for training, `f64` for gradient checks), and
//! every matrix product goes through [`gemm::gemm`].

pub mod adam;
pub mod dense;
pub mod gaussian_kl;
pub mod gemm;
pub mod gradcheck;
pub mod mse;
pub mod output_mse;
pub mod relu;
pub mod reparam;
pub mod rng;
pub mod scalar;
pub mod sparse_dense;
pub mod spike_slab;
pub mod vsc_kl;

pub use relu::Activation;
pub use scalar::Scalar;

/// How a loss summed over a minibatch is reduced to the value that is minimised.
///
/// ```
/// use cellvae::engine::Reduction;
/// assert_eq!(Reduction::Mean.factor(256), 1.0 / 256.0);
/// assert_eq!(Reduction::Sum.factor(256), 1.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// Sum over cells (and genes / latent dimensions): the study's code (`seed-code`).
    Sum,
    /// Per-cell sum, mean over the batch: the write-up (`paper`).
    Mean,
}

impl Reduction {
    /// The factor that turns a sum over `batch` cells into the reduced loss.
    pub fn factor(self, batch: usize) -> f64 {
        match self {
            Reduction::Sum => 1.0,
            Reduction::Mean => 1.0 / batch.max(1) as f64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reduction::Sum => "sum",
            Reduction::Mean => "mean",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sum" => Some(Reduction::Sum),
            "mean" => Some(Reduction::Mean),
            _ => None,
        }
    }
}
