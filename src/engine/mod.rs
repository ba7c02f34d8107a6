//! The numeric engine: every layer and loss as an explicit forward/backward pair. This table is
//! the project's one list of its equations (the README links here); each module's own doc
//! gives the shapes and the derivation, and each has a finite-difference test in f64 beside it
//! (`gradcheck_<module>`, error `|a − n| / max(|a|, |n|, 10⁻³) < 10⁻⁶`, see [`gradcheck`]).
//!
//! | module | function | forward | backward (`δ` = gradient of the loss) |
//! |---|---|---|---|
//! | [`dense`] | `Dense::forward`, `::backward` | `y = act(x·Wᵀ + b)` | `∂W += δyᵀx`, `∂b += Σ_rows δy`, `δx += δy·W` |
//! | [`sparse_dense`] | `SparseDense::forward`, `::backward` (`_shifted`: `x = s + 1·cᵀ`) | the same with a CSR `x` (the first layer), from the nonzeros | `∂W += δyᵀx` from the nonzeros (via `xᵀ`), no `δx` |
//! | [`relu`] | `bias_act_forward`, `act_backward` | `y = max(a, 0)` with `a = y + b` (bias fused); NaN stays NaN | `δa = δy ⊙ 1[a > 0]` |
//! | [`reparam`] | `Reparam::forward`, `::backward` | `z = μ + ε ⊙ e^{ℓ/2}`, `ℓ = log σ²` | `δμ += δz`, `δℓ += ½ δz ⊙ ε ⊙ e^{ℓ/2}` |
//! | [`spike_slab`] | `log_spike_forward`, `SpikeSlab::forward` and their backwards | `γ = e^{min(s_pre, 0)}`, `s = σ(c(η + γ − 1))`, `z = s ⊙ g` with `g` from [`reparam`] | `δg = δz ⊙ s` into [`reparam`], `δγ += δz ⊙ g ⊙ c·s(1 − s)`, `δs_pre += δγ ⊙ γ ⊙ 1[s_pre < 0]` |
//! | [`batchnorm`] | `BatchNorm::forward`, `::backward` | `x̂ = (x − μ_B)/√(σ²_B + ε)`, `y = γx̂ + β` (running statistics at evaluation) | `δβ += Σδy`, `δγ += Σδy·x̂`, `δx = γ/(N√(σ²_B+ε))·(Nδy − Σδy − x̂Σ(δy·x̂))` |
//! | [`dropout`] | `draw`, `apply` | `y = x ⊙ m`, `m = 1[u ≥ p]/(1 − p)` (training only) | `δx = δy ⊙ m` |
//! | [`mse`] | `forward`, `backward` (`_shifted`: `x = s + 1·cᵀ`) | `L = r·Σ (x̂ − x)²`, `r` from [`Reduction`] | `δx̂ += 2r(x̂ − x)` |
//! | [`output_mse`] | `forward_backward` (`_shifted`: `b − c` for `b`) | the last dense layer and [`mse`] in one step, `x̂` never formed (what training runs) | `Rᵀ·H = W·(HᵀH) + b·(1ᵀH) − Xᵀ·H`, `R·W = H·(WᵀW) + 1·(Wᵀb)ᵀ − X·W`, `R = x̂ − x` |
//! | [`nb`] | `forward`, `forward_backward` | `ℓ = lgamma(x+θ) − lgamma(θ) − lgamma(x+1) − θ·sp + x(d − sp)`, `d = log μ − r`, `sp = softplus(d)`, `μ = L·softmax(h)`, `θ = e^r` | `δh −= a − ρΣa`, `a = (x − μ)σ(−d)`; `δr −= θ(ψ(x+θ) − ψ(θ)) − θ·sp + (μ − x)σ(−d)` |
//! | [`dec`] | `forward_backward` | `q_ij ∝ (1 + ‖z_i − μ_j‖²)⁻¹`, `L = Σ p log(p/q)` | `δz_i += 2Σ_j (1+d_ij)⁻¹(p−q)(z_i − μ_j)`, `δμ_j −= 2Σ_i (…)` |
//! | [`gaussian_kl`] | `forward`, `backward` | `K = −½ r Σ (1 + ℓ − μ² − e^ℓ)` | `δμ += βr·μ`, `δℓ += βr·½(e^ℓ − 1)` |
//! | [`vsc_kl`] | `forward`, `backward` | `k = γ̃κ + (1 − γ̃) ln((1 − γ̃)/(1 − α)) + γ̃ ln(γ̃/α)`, `κ = −½(1 + ℓ − μ² − e^ℓ)`, `γ̃ = clamp(γ, 10⁻⁶, 1 − 10⁻⁶)` | `δμ += βr γ̃μ`, `δℓ += βr ½γ̃(e^ℓ − 1)`, `δγ += βr 1[in](κ + logit γ̃ − logit α)` |
//! | [`adam`] | `Adam::step` | PyTorch's update: `m ← β₁m + (1 − β₁)g`, `v ← β₂v + (1 − β₂)g²`, `θ ← θ − lr/(1 − β₁ᵗ) · m/(√v/√(1 − β₂ᵗ) + ε)` | — (checked against PyTorch's numbers: `adam_matches_pytorch`) |
//! | [`gemm`] | `gemm` | `C ← αA·B + βC` (matrixmultiply, split across cores by output rows or columns) | — |
//! | [`gram`] | `gram`, `add_band_product` | `C ← WᵀW` (one triangle), `C ← C + αA·G` by bands of rows: the Gram form's products, AVX-512 kernels with [`gemm`]'s bits | — |
//! | [`scalar`] | `simd_fn!`, `axpy`, `dot` | the elementwise kernels, compiled for AVX-512 / AVX2 / baseline and chosen at run time, bit-identical | — |
//!
//! Built from these: the three networks and their latent stage in `crate::models` (the
//! network's backward is its forward in reverse; the whole model is checked against finite
//! differences in `tests/gradcheck_models.rs` and against PyTorch autograd in
//! `tests/parity_pytorch.rs`); the t-SNE gradient in `crate::analysis::tsne`.
//!
//! All of it is generic over [`Scalar`] (`f32` for training, `f64` for gradient checks), and
//! every matrix product goes through [`gemm::gemm`], except the Gram form's two, which
//! [`gram`] computes for their shapes with the same bits.

pub mod adam;
pub mod batchnorm;
pub mod covariates;
pub mod dec;
pub mod dense;
pub mod dropout;
pub mod gaussian_kl;
pub mod gemm;
pub mod gradcheck;
pub mod gram;
pub mod mse;
pub mod nb;
pub mod output_mse;
pub mod relu;
pub mod reparam;
pub mod rng;
pub mod scalar;
pub mod sparse_dense;
pub mod special;
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
