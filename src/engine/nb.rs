//! Negative-binomial reconstruction loss, scVI's decoder
//! (`docs/math.md#10-negative-binomial-decoder`).
//!
//! Shapes: logits `h` (B, G) from the last decoder layer; counts `x` (B, G), the raw integer
//! counts of the kept genes (CSR); `r` (G) the per-gene log inverse dispersion, a parameter.
//! Each cell's library `L_i = Σ_g x_ig` is observed, over the kept genes.
//!
//! ```text
//! log ρ_ig = h_ig − LSE_k h_ik                   softmax over genes
//! log μ_ig = log L_i + log ρ_ig                  mean
//! θ_g = e^{r_g},  d_ig = log μ_ig − r_g,  sp = softplus(d) = log(1 + μ/θ)
//! ℓ_ig = lgamma(x+θ) − lgamma(θ) − lgamma(x+1) − θ·sp + x·(d − sp)
//! loss = −r · Σ_ig ℓ_ig                          r from the reduction
//! ```
//! (`θ·(log θ − log(θ+μ)) = −θ·sp` and `x·(log μ − log(θ+μ)) = x·(d − sp)`: the same
//! likelihood written in `d`, so that nothing overflows and `θ → ∞` loses no digits.)
//!
//! Backward, with `σ(−d) = θ/(θ+μ)`:
//! ```text
//! a_ig = ∂ℓ/∂log μ = θ(x − μ)/(θ + μ) = (x − μ)·σ(−d)
//! ∂ℓ/∂h_ig = a_ig − ρ_ig · Σ_k a_ik              the log-softmax's Jacobian; L drops out
//! ∂ℓ/∂r_g = θ·∂ℓ/∂θ = θ·(ψ(x+θ) − ψ(θ)) − θ·sp + (μ − x)·σ(−d), summed over cells
//! δh −= r·∂ℓ/∂h,   δr −= r·∂ℓ/∂r                  (accumulated, like every backward)
//! ```
//! Each entry takes one exponential and one `log1p`: the softmax's `e^{h−max}` is kept from
//! the log-sum-exp pass (`ρ = e^{h−max}/Σ`), and `eᵈ = μ/θ` is a product with `1/θ`
//! (once per gene), from which `sp = ln(1 + eᵈ)` and `σ(−d) = 1/(1 + eᵈ)` follow; three
//! exponentials per entry had been half of an NB step.
//! For integer `x < 32` the gamma-function differences are exact finite sums,
//! `lgamma(x+θ) − lgamma(θ) = Σ_{j<x} ln(θ+j)` and `ψ(x+θ) − ψ(θ) = Σ_{j<x} 1/(θ+j)`, both 0
//! at `x = 0` (most entries); larger counts use [`super::special`]. Everything is computed
//! in f64 whatever `T`, and `δr` is summed in f64: in the Poisson limit it is a difference
//! of nearly equal terms. A cell with no counts over the kept genes contributes nothing.
//!
//! Rows are processed in fixed blocks of [`ROWS`] on the rayon pool and the blocks' `δr` and
//! losses summed in block order, so the result does not depend on the thread count.

use super::special::{digamma, ln_gamma};
use super::{Reduction, Scalar};
use crate::csr::Csr;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Rows per parallel block.
pub const ROWS: usize = 8;

/// Counts below this use the exact finite sums.
const SUM_BELOW: f64 = 32.0;

/// The log inverse dispersion `r` (scVI's `px_r`) and its gradient: one row of `G` values
/// per gene (`(1, G)`), or one row per batch (`(C, G)`, scVI's `gene-batch`), the row of
/// each cell chosen by its batch.
#[derive(Clone, Debug)]
pub struct Dispersion<T> {
    pub log_theta: Array2<T>,
    pub dlog_theta: Array2<T>,
}

impl<T: Scalar> Dispersion<T> {
    /// `r = 0` (θ = 1): `rows` rows (1, or the batches) of `genes` genes.
    pub fn new(rows: usize, genes: usize) -> Self {
        Dispersion {
            log_theta: Array2::zeros((rows, genes)),
            dlog_theta: Array2::zeros((rows, genes)),
        }
    }

    pub fn zero_grad(&mut self) {
        self.dlog_theta.fill(T::zero());
    }
}

/// Where the gradients go.
pub struct NbGrads<'a, T> {
    /// `δh`, `(B, G)`, added to.
    pub dlogits: ArrayViewMut2<'a, T>,
    /// `δr`, `(R, G)` flat, added to.
    pub dlog_theta: &'a mut [T],
}

/// The reduced negative log-likelihood. `log_theta` is `r`, `(R, G)` row-major; `rows`
/// gives each cell's row of it (`None`: row 0 for every cell).
pub fn forward<T: Scalar>(
    logits: ArrayView2<'_, T>,
    counts: &Csr<T>,
    log_theta: &[T],
    rows: Option<&[u32]>,
    reduction: Reduction,
) -> f64 {
    forward_backward(logits, counts, log_theta, rows, reduction, None)
}

/// The reduced negative log-likelihood, and with `grads` its gradients added into them.
pub fn forward_backward<T: Scalar>(
    logits: ArrayView2<'_, T>,
    counts: &Csr<T>,
    log_theta: &[T],
    rows: Option<&[u32]>,
    reduction: Reduction,
    grads: Option<NbGrads<'_, T>>,
) -> f64 {
    let (b, g) = logits.dim();
    assert_eq!(
        (counts.n_rows, counts.n_cols),
        (b, g),
        "counts match the logits"
    );
    assert!(
        g > 0 && log_theta.len().is_multiple_of(g),
        "r holds whole rows of the genes"
    );
    if let Some(rows) = rows {
        assert!(rows.len() >= b, "a dispersion row per cell");
        assert!(
            rows[..b]
                .iter()
                .all(|&r| (r as usize) < log_theta.len() / g),
            "dispersion row out of range"
        );
    }
    let scale = reduction.factor(b);
    let r: Vec<f64> = log_theta.iter().map(|v| v.to_f64()).collect();
    // θ = eʳ once per gene (and row), not once per cell and gene.
    let theta: Vec<f64> = r.iter().map(|r| r.exp()).collect();
    let inv_theta: Vec<f64> = r.iter().map(|r| (-r).exp()).collect();
    let genes = Genes {
        r: &r,
        theta: &theta,
        inv_theta: &inv_theta,
        g,
        rows,
    };
    let blocks: Vec<(f64, Vec<f64>)> = match grads {
        None => (0..b.div_ceil(ROWS))
            .into_par_iter()
            .map(|k| block(logits, counts, &genes, k * ROWS, None))
            .collect(),
        Some(NbGrads {
            mut dlogits,
            dlog_theta,
        }) => {
            let out: Vec<(f64, Vec<f64>)> = dlogits
                .axis_chunks_iter_mut(Axis(0), ROWS)
                .into_par_iter()
                .enumerate()
                .map(|(k, rows)| block(logits, counts, &genes, k * ROWS, Some((rows, scale))))
                .collect();
            let mut dr = vec![0.0f64; r.len()];
            for (_, part) in &out {
                for (acc, v) in dr.iter_mut().zip(part) {
                    *acc += v;
                }
            }
            for (d, v) in dlog_theta.iter_mut().zip(&dr) {
                *d += T::from_f64(-scale * v);
            }
            out
        }
    };
    -scale * blocks.iter().map(|(l, _)| l).sum::<f64>()
}

/// Every gene's `r`, `θ = eʳ` and `1/θ`, `(R, G)` row-major, and each cell's row.
struct Genes<'a> {
    r: &'a [f64],
    theta: &'a [f64],
    inv_theta: &'a [f64],
    g: usize,
    rows: Option<&'a [u32]>,
}

/// Rows `start..start + ROWS` (or fewer at the end): `Σ ℓ` over them and, with `dh`, `Σ_i
/// ∂ℓ/∂r` over them, `(R, G)` flat (`dh` rows get `−scale·∂ℓ/∂h` added).
fn block<T: Scalar>(
    logits: ArrayView2<'_, T>,
    counts: &Csr<T>,
    genes: &Genes<'_>,
    start: usize,
    mut dh: Option<(ArrayViewMut2<'_, T>, f64)>,
) -> (f64, Vec<f64>) {
    let g = genes.g;
    let end = (start + ROWS).min(logits.nrows());
    let mut x = vec![0.0f64; g];
    let mut a = vec![0.0f64; g];
    let mut rho = vec![0.0f64; g];
    let mut dr_all = if dh.is_some() {
        vec![0.0f64; genes.r.len()]
    } else {
        Vec::new()
    };
    let mut total = 0.0f64;
    for i in start..end {
        let (idx, vals) = counts.row(i);
        let library: f64 = vals.iter().map(|v| v.to_f64()).sum();
        if library <= 0.0 {
            continue;
        }
        for (&j, &v) in idx.iter().zip(vals) {
            x[j as usize] = v.to_f64();
        }
        // This cell's row of r, θ and δr.
        let row = genes.rows.map_or(0, |rows| rows[i] as usize);
        let gene_row = row * g..(row + 1) * g;
        let (r, theta, inv_theta) = (
            &genes.r[gene_row.clone()],
            &genes.theta[gene_row.clone()],
            &genes.inv_theta[gene_row],
        );
        let dr: &mut [f64] = if dr_all.is_empty() {
            &mut []
        } else {
            &mut dr_all[row * g..(row + 1) * g]
        };
        let h = logits.row(i);
        let max = h.iter().fold(f64::NEG_INFINITY, |m, v| m.max(v.to_f64()));
        // ρ's numerators e^{h−max}, kept for ρ itself.
        let mut sum = 0.0f64;
        for (e, v) in rho.iter_mut().zip(h) {
            *e = (v.to_f64() - max).exp();
            sum += *e;
        }
        let lse = max + sum.ln();
        let (log_l, inv_sum) = (library.ln(), 1.0 / sum);
        let mut sum_a = 0.0f64;
        for k in 0..g {
            let log_rho = h[k].to_f64() - lse;
            rho[k] *= inv_sum;
            let mu = library * rho[k];
            let d = log_l + log_rho - r[k];
            let (sp, sig) = softplus_and_sigmoid_of_minus(d, mu * inv_theta[k]);
            let theta = theta[k];
            let xk = x[k];
            let mut ell = -theta * sp + xk * (d - sp);
            a[k] = (xk - mu) * sig;
            sum_a += a[k];
            if xk > 0.0 {
                let (lg, psi) = gamma_differences(xk, theta, dh.is_some());
                ell += lg - ln_gamma(xk + 1.0);
                if !dr.is_empty() {
                    dr[k] += theta * psi - theta * sp + (mu - xk) * sig;
                }
            } else if !dr.is_empty() {
                dr[k] += -theta * sp + mu * sig;
            }
            total += ell;
        }
        if let Some((rows, scale)) = dh.as_mut() {
            let mut row = rows.row_mut(i - start);
            for k in 0..g {
                row[k] += T::from_f64(-*scale * (a[k] - rho[k] * sum_a));
            }
        }
        for &j in idx {
            x[j as usize] = 0.0;
        }
    }
    (total, dr_all)
}

/// `(lgamma(x+θ) − lgamma(θ), ψ(x+θ) − ψ(θ))` for a count `x > 0` (the second only when
/// asked; 0 otherwise).
fn gamma_differences(x: f64, theta: f64, with_psi: bool) -> (f64, f64) {
    if x < SUM_BELOW && x.fract() == 0.0 {
        let (mut lg, mut psi) = (0.0, 0.0);
        for j in 0..x as usize {
            let t = theta + j as f64;
            lg += t.ln();
            if with_psi {
                psi += 1.0 / t;
            }
        }
        (lg, psi)
    } else {
        let psi = if with_psi {
            digamma(x + theta) - digamma(theta)
        } else {
            0.0
        };
        (ln_gamma(x + theta) - ln_gamma(theta), psi)
    }
}

/// `ln(1 + eᵈ)` without overflow.
#[cfg(test)]
fn softplus(d: f64) -> f64 {
    if d > 30.0 {
        d + (-d).exp()
    } else {
        d.exp().ln_1p()
    }
}

/// `(softplus(d), σ(−d))` given `e = eᵈ` (as `μ/θ`): `ln(1 + e)` and `1/(1 + e)`; for
/// `d > 30`, where `1 + e` has lost `1`'s digits, `d + 1/e` (`ln(1 + eᵈ) = d + ln(1 + e⁻ᵈ)`).
fn softplus_and_sigmoid_of_minus(d: f64, e: f64) -> (f64, f64) {
    let sp = if d > 30.0 { d + 1.0 / e } else { e.ln_1p() };
    (sp, 1.0 / (1.0 + e))
}

/// `1/(1 + e⁻ᵈ)`.
#[cfg(test)]
fn sigmoid(d: f64) -> f64 {
    if d >= 0.0 {
        1.0 / (1.0 + (-d).exp())
    } else {
        let e = d.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_slice, TOLERANCE};
    use ndarray::Array2;

    /// The pair from `eᵈ` agrees with the two functions to a few ulps, on both sides of the
    /// branch point (30) and where `eᵈ` under- or overflows.
    #[test]
    fn softplus_and_sigmoid_from_one_exponential() {
        for d in [
            -800.0, -40.0, -3.7, -1e-9, 0.0, 1e-9, 0.25, 12.5, 29.999, 30.0, 30.001, 45.0, 700.0,
            800.0,
        ] {
            let (sp, sig) = softplus_and_sigmoid_of_minus(d, f64::exp(d));
            let close = |a: f64, b: f64| a == b || (a - b).abs() <= 4.0 * f64::EPSILON * b.abs();
            assert!(
                close(sp, softplus(d)),
                "softplus({d}): {sp} vs {}",
                softplus(d)
            );
            assert!(close(sig, sigmoid(-d)), "σ(−{d}): {sig} vs {}", sigmoid(-d));
        }
    }

    /// Counts with zeros, small and large values, and a cell with no counts at all.
    fn case() -> (Array2<f64>, Csr<f64>) {
        let (b, g) = (5, 6);
        let logits =
            Array2::from_shape_fn((b, g), |(i, j)| ((i * 7 + j * 3) % 11) as f64 * 0.3 - 1.2);
        let dense = Array2::from_shape_fn((b, g), |(i, j)| match (i, j) {
            (4, _) => 0.0,
            (0, 1) => 500.0,
            (2, 3) => 47.0,
            _ => ((i + 2 * j) % 4) as f64,
        });
        (logits, Csr::from_dense(&dense))
    }

    /// Finite-difference step: the loss carries `lgamma(x + 1)` of counts up to 500 (≈ 2,600),
    /// so rounding, not truncation, limits smaller steps (1e-5 gives 5.6e-6 at θ = 1e-3).
    const STEP: f64 = 1e-3;

    /// Every gradient against central differences in f64, at dispersions from extreme
    /// overdispersion (θ ≈ 1e-3) to near-Poisson (θ ≈ 1e4), for both reductions, with zero
    /// counts, counts of 47 and 500 (the gamma-function path) and an empty cell.
    #[test]
    fn gradcheck_nb() {
        let (logits, counts) = case();
        let g = logits.ncols();
        for log_theta0 in [(1e-3f64).ln(), 0.0, 2.0, (1e4f64).ln()] {
            let r: Vec<f64> = (0..g).map(|k| log_theta0 + 0.1 * k as f64).collect();
            for reduction in [Reduction::Mean, Reduction::Sum] {
                let mut dh = Array2::zeros(logits.raw_dim());
                let mut dr = vec![0.0; g];
                forward_backward(
                    logits.view(),
                    &counts,
                    &r,
                    None,
                    reduction,
                    Some(NbGrads {
                        dlogits: dh.view_mut(),
                        dlog_theta: &mut dr,
                    }),
                );
                let mut h = logits.clone();
                let err_h = check_slice(
                    h.clone().as_slice_mut().unwrap(),
                    dh.as_slice().unwrap(),
                    |_| STEP,
                    |v| {
                        h.as_slice_mut().unwrap().copy_from_slice(v);
                        forward(h.view(), &counts, &r, None, reduction)
                    },
                );
                let mut rr = r.clone();
                let err_r = check_slice(
                    &mut r.clone(),
                    &dr,
                    |_| STEP,
                    |v| {
                        rr.copy_from_slice(v);
                        forward(logits.view(), &counts, &rr, None, reduction)
                    },
                );
                assert!(err_h < TOLERANCE, "θ₀ e^{log_theta0}: δh {err_h:e}");
                assert!(err_r < TOLERANCE, "θ₀ e^{log_theta0}: δr {err_r:e}");
                assert!(
                    dh.row(4).iter().all(|&v| v == 0.0),
                    "an empty cell adds nothing"
                );
            }
        }
    }

    /// One dispersion per gene and batch (`rows`): `δr` of each row against central
    /// differences, and a row no cell uses gets none; with every cell on the same row the
    /// loss is that of the per-gene dispersion.
    #[test]
    fn gradcheck_nb_per_batch() {
        let (logits, counts) = case();
        let (b, g) = logits.dim();
        let rows: Vec<u32> = (0..b).map(|i| [0, 2, 0, 2, 2, 0][i % 6]).collect();
        let r: Vec<f64> = (0..3 * g).map(|k| -1.0 + 0.07 * k as f64).collect();
        let mut dh = Array2::zeros(logits.raw_dim());
        let mut dr = vec![0.0; 3 * g];
        forward_backward(
            logits.view(),
            &counts,
            &r,
            Some(&rows),
            Reduction::Mean,
            Some(NbGrads {
                dlogits: dh.view_mut(),
                dlog_theta: &mut dr,
            }),
        );
        let mut rr = r.clone();
        let err_r = check_slice(
            &mut r.clone(),
            &dr,
            |_| STEP,
            |v| {
                rr.copy_from_slice(v);
                forward(logits.view(), &counts, &rr, Some(&rows), Reduction::Mean)
            },
        );
        assert!(err_r < TOLERANCE, "δr {err_r:e}");
        assert!(dr[g..2 * g].iter().all(|&v| v == 0.0), "row 1 is unused");
        let same = vec![2u32; b];
        let per_gene = forward(logits.view(), &counts, &r[2 * g..], None, Reduction::Mean);
        let per_row = forward(logits.view(), &counts, &r, Some(&same), Reduction::Mean);
        assert_eq!(per_gene, per_row);
    }

    /// The loss is the NB negative log-likelihood: for one entry it equals the textbook
    /// pmf `Γ(x+θ)/(Γ(θ) x!) (θ/(θ+μ))^θ (μ/(θ+μ))^x`, and large counts (gamma functions)
    /// agree with the finite sums they replace.
    #[test]
    fn matches_the_pmf() {
        // One cell, two genes with equal logits: μ = L/2 for each.
        let counts = Csr::from_dense(&ndarray::array![[3.0f64, 5.0]]);
        let logits = ndarray::array![[0.2f64, 0.2]];
        let theta = 2.5f64;
        let nll = forward(
            logits.view(),
            &counts,
            &[theta.ln(), theta.ln()],
            None,
            Reduction::Sum,
        );
        let mu = 4.0f64;
        let pmf = |x: f64| {
            (ln_gamma(x + theta) - ln_gamma(theta) - ln_gamma(x + 1.0)
                + theta * (theta / (theta + mu)).ln()
                + x * (mu / (theta + mu)).ln())
            .exp()
        };
        let want = -(pmf(3.0).ln() + pmf(5.0).ln());
        assert!((nll - want).abs() < 1e-12, "{nll} vs {want}");
        for x in [31.0, 32.0, 33.0, 200.0] {
            for theta in [1e-3, 0.7, 1e4] {
                let (lg, psi) = gamma_differences(x, theta, true);
                let (mut lg_sum, mut psi_sum) = (0.0, 0.0);
                for j in 0..x as usize {
                    lg_sum += (theta + j as f64).ln();
                    psi_sum += 1.0 / (theta + j as f64);
                }
                assert!(
                    (lg - lg_sum).abs() < 1e-9 * lg_sum.abs().max(1.0),
                    "{x} {theta}"
                );
                assert!(
                    (psi - psi_sum).abs() < 1e-9 * psi_sum.abs().max(1.0),
                    "{x} {theta}"
                );
            }
        }
    }
}
