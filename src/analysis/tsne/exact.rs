//! Exact t-SNE gradient, O(N²) per iteration.
//!
//! With the Student-t kernel `w_ij = (1 + ‖y_i − y_j‖²/ν)^{−(ν+1)/2}`, `Z = Σ_{k≠l} w_kl`,
//! `q_ij = w_ij / Z` and `u_ij = (1 + ‖y_i − y_j‖²/ν)^{−1}`, the gradient of `KL(αP‖Q)` is
//! `∂C/∂y_i = (2(ν+1)/ν) Σ_j (α p_ij − q_ij) u_ij (y_i − y_j)`, α the exaggeration,
//! computed here as `(2(ν+1)/ν)·(α·A_i − R_i / Z)` with the attraction
//! `A_i = Σ_j p_ij u_ij (y_i − y_j)` and the repulsion `R_i = Σ_j w_ij u_ij (y_i − y_j)`, in
//! one pass over `j`. (scikit-learn multiplies by `w_ij` where `u_ij` belongs; the two agree
//! for ν = 1, the 2-D case, but not for its 3-D ν = 2, where its step is not the gradient of
//! its objective. We use the true gradient; a test checks it against finite differences.) Rows run in parallel; each row is summed in 16 f32 lanes (so the compiler
//! vectorises it) and reduced in a fixed order, so results do not depend on the thread count.

use rayon::prelude::*;

pub(super) const LANES: usize = 16;

/// Student-t kernel with `ν` degrees of freedom (1 or 2) at squared distance `d2`.
#[inline(always)]
pub fn kernel(d2: f32, nu: f32) -> f32 {
    kernel_and_factor(d2, nu).0
}

/// The kernel `w_ij` and the force factor `u_ij = (1 + d²/ν)^{-1}` (equal to `w` for ν = 1).
#[inline(always)]
pub fn kernel_and_factor(d2: f32, nu: f32) -> (f32, f32) {
    if nu == 1.0 {
        kernel_nu::<true>(d2)
    } else {
        kernel_nu::<false>(d2)
    }
}

/// The kernel `w` and the force factor `u = (1 + d²/ν)^{-1}` with `ν` fixed at compile time
/// (`NU1`: ν = 1, else ν = 2), so the lane loops below carry no branch and vectorise.
#[inline(always)]
fn kernel_nu<const NU1: bool>(d2: f32) -> (f32, f32) {
    if NU1 {
        let u = 1.0 / (1.0 + d2);
        (u, u)
    } else {
        // w = (1 + d²/2)^{-3/2}
        let u = 1.0 / (1.0 + 0.5 * d2);
        (u * u.sqrt(), u)
    }
}

/// The running sums of a row over its whole blocks of [`LANES`] points, lane by lane: the
/// attraction and repulsion per dimension and `Σ w`.
pub(super) struct Lanes<const D: usize> {
    pub attr: [[f32; LANES]; D],
    pub rep: [[f32; LANES]; D],
    pub z: [f32; LANES],
}

/// Attraction, repulsion and `Σ_j w_ij` (self excluded) of point `i`: the whole blocks in
/// lanes (with AVX-512 where the CPU has it), added up in a fixed order, then the last
/// `n mod LANES` points one by one.
#[inline(always)]
fn row_forces<const D: usize, const NU1: bool>(
    i: usize,
    y: &[Vec<f32>; D],
    p_row: &[f32],
) -> ([f32; D], [f32; D], f32) {
    let n = p_row.len();
    let full = n / LANES * LANES;
    #[cfg(target_arch = "x86_64")]
    let lanes = if crate::engine::scalar::simd_level() == crate::engine::scalar::SimdLevel::Avx512 {
        // SAFETY: `simd_level` saw AVX-512F on this CPU.
        unsafe { super::exact_avx512::blocks::<D, NU1>(i, y, &p_row[..full]) }
    } else {
        blocks::<D, NU1>(i, y, &p_row[..full])
    };
    #[cfg(not(target_arch = "x86_64"))]
    let lanes = blocks::<D, NU1>(i, y, &p_row[..full]);
    let Lanes { attr, rep, z } = lanes;
    let yi: [f32; D] = std::array::from_fn(|d| y[d][i]);
    let mut a = [0.0f32; D];
    let mut r = [0.0f32; D];
    let mut zs: f32 = z.iter().sum();
    for d in 0..D {
        a[d] = attr[d].iter().sum();
        r[d] = rep[d].iter().sum();
    }
    for j in full..n {
        let mut d2 = 0.0;
        let mut diff = [0.0f32; D];
        for d in 0..D {
            diff[d] = yi[d] - y[d][j];
            d2 += diff[d] * diff[d];
        }
        let (w, u) = kernel_nu::<NU1>(d2);
        zs += w;
        for d in 0..D {
            a[d] += p_row[j] * u * diff[d];
            r[d] += w * u * diff[d];
        }
    }
    // The j = i term: distance 0, kernel 1, no force.
    (a, r, zs - 1.0)
}

/// [`Lanes`] of point `i` over `p_full` (a multiple of [`LANES`] points), in portable code:
/// each inner loop is a plain elementwise pass over LANES values, which the compiler turns
/// into SIMD code. `super::exact_avx512::blocks` does the same operations in the same order.
#[inline(always)]
pub(super) fn blocks<const D: usize, const NU1: bool>(
    i: usize,
    y: &[Vec<f32>; D],
    p_full: &[f32],
) -> Lanes<D> {
    let yi: [f32; D] = std::array::from_fn(|d| y[d][i]);
    let mut attr = [[0.0f32; LANES]; D];
    let mut rep = [[0.0f32; LANES]; D];
    let mut z = [0.0f32; LANES];
    for base in (0..p_full.len()).step_by(LANES) {
        let p: &[f32; LANES] = p_full[base..base + LANES]
            .try_into()
            .expect("LANES entries");
        let mut d2 = [0.0f32; LANES];
        for d in 0..D {
            let ys: &[f32; LANES] = y[d][base..base + LANES].try_into().expect("LANES entries");
            for l in 0..LANES {
                let diff = yi[d] - ys[l];
                d2[l] += diff * diff;
            }
        }
        let mut pu = [0.0f32; LANES];
        let mut wu = [0.0f32; LANES];
        for l in 0..LANES {
            let (w, u) = kernel_nu::<NU1>(d2[l]);
            z[l] += w;
            pu[l] = p[l] * u;
            wu[l] = w * u;
        }
        for d in 0..D {
            let ys: &[f32; LANES] = y[d][base..base + LANES].try_into().expect("LANES entries");
            let (attr, rep) = (&mut attr[d], &mut rep[d]);
            for l in 0..LANES {
                let diff = yi[d] - ys[l];
                attr[l] += pu[l] * diff;
                rep[l] += wu[l] * diff;
            }
        }
    }
    Lanes { attr, rep, z }
}

/// Gradient of the KL divergence for the embedding `y` (SoA, `D` coordinate arrays) into
/// `grad` (row-major `n × D`). Returns `Z`.
pub fn gradient<const D: usize>(
    p: &[f32],
    y: &[Vec<f32>; D],
    nu: f32,
    exaggeration: f32,
    grad: &mut [f64],
) -> f64 {
    let n = y[0].len();
    let rows: Vec<([f32; D], [f32; D], f32)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let p_row = &p[i * n..(i + 1) * n];
            // The portable blocks are compiled for the baseline (SSE2): an AVX2 build of this
            // loop measured 1.8x slower on the Zen 5 development machine, and AVX-512 builds of
            // it vectorised well or badly depending on small changes to the source, which is
            // why the AVX-512 path is written with intrinsics.
            if nu == 1.0 {
                row_forces::<D, true>(i, y, p_row)
            } else {
                row_forces::<D, false>(i, y, p_row)
            }
        })
        .collect();
    let z: f64 = rows.iter().map(|r| r.2 as f64).sum();
    let c = 2.0 * (nu as f64 + 1.0) / nu as f64;
    for (i, (a, r, _)) in rows.iter().enumerate() {
        for d in 0..D {
            grad[i * D + d] = c * (exaggeration as f64 * a[d] as f64 - r[d] as f64 / z);
        }
    }
    z
}

/// KL(P‖Q) for the final embedding.
pub fn kl_divergence<const D: usize>(p: &[f32], y: &[Vec<f32>; D], nu: f32, z: f64) -> f64 {
    let n = y[0].len();
    (0..n)
        .into_par_iter()
        .map(|i| {
            let mut kl = 0.0f64;
            for j in 0..n {
                let pij = p[i * n + j] as f64;
                if j != i && pij > 0.0 {
                    let d2: f32 = (0..D).map(|d| (y[d][i] - y[d][j]).powi(2)).sum();
                    let q = (kernel(d2, nu) as f64 / z).max(f64::EPSILON);
                    kl += pij * (pij / q).ln();
                }
            }
            kl
        })
        .collect::<Vec<f64>>()
        .iter()
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tsne::affinities;
    use crate::engine::gradcheck::{check_slice, fixtures::random};

    /// KL(P‖Q) in f64, from scratch.
    fn kl(p: &[f32], y: &[f64], n: usize, dims: usize, nu: f64) -> f64 {
        let w = |i: usize, j: usize| {
            let d2: f64 = (0..dims)
                .map(|d| (y[i * dims + d] - y[j * dims + d]).powi(2))
                .sum();
            (1.0 + d2 / nu).powf(-(nu + 1.0) / 2.0)
        };
        let z: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| w(i, j))
            .sum();
        let mut c = 0.0;
        for i in 0..n {
            for j in 0..n {
                let pij = p[i * n + j] as f64;
                if i != j && pij > 0.0 {
                    c += pij * (pij / (w(i, j) / z)).ln();
                }
            }
        }
        c
    }

    /// The gradient is the gradient of KL(P‖Q) for ν = 1 (2-D) and ν = 2 (3-D); f32
    /// arithmetic inside, so the tolerance is 1e-3.
    #[test]
    fn gradcheck_tsne_exact() {
        let n = 12;
        let x = random(n, 4, 2.0, 8);
        let p = affinities::dense(&x, 3.0);
        for dims in [2usize, 3] {
            let nu = (dims as f64 - 1.0).max(1.0);
            let mut y0 = random(n, dims, 3.0, 9).into_raw_vec_and_offset().0;
            let mut grad = vec![0.0; n * dims];
            if dims == 2 {
                let soa: [Vec<f32>; 2] =
                    std::array::from_fn(|d| (0..n).map(|i| y0[i * 2 + d] as f32).collect());
                gradient::<2>(&p, &soa, nu as f32, 1.0, &mut grad);
            } else {
                let soa: [Vec<f32>; 3] =
                    std::array::from_fn(|d| (0..n).map(|i| y0[i * 3 + d] as f32).collect());
                gradient::<3>(&p, &soa, nu as f32, 1.0, &mut grad);
            }
            let err = check_slice(&mut y0, &grad, |_| 1e-4, |y| kl(&p, y, n, dims, nu));
            assert!(err < 1e-3, "{dims}-D: {err}");
        }
    }

    /// With early exaggeration `e`, the step is the gradient of
    /// `f(y) = −e·Σ p_ij ln w_ij + ln Z` (for `e = 1` this is KL(P‖Q) up to a constant): checked
    /// at `e = 12`, the value optimisation uses, in 2-D and 3-D.
    #[test]
    fn gradcheck_tsne_exact_exaggerated() {
        let (n, e) = (12, 12.0f64);
        let x = random(n, 4, 2.0, 18);
        let p = affinities::dense(&x, 3.0);
        for dims in [2usize, 3] {
            let nu = (dims as f64 - 1.0).max(1.0);
            let objective = |y: &[f64]| {
                let w = |i: usize, j: usize| {
                    let d2: f64 = (0..dims)
                        .map(|d| (y[i * dims + d] - y[j * dims + d]).powi(2))
                        .sum();
                    (1.0 + d2 / nu).powf(-(nu + 1.0) / 2.0)
                };
                let (mut attract, mut z) = (0.0, 0.0);
                for i in 0..n {
                    for j in (0..n).filter(|&j| j != i) {
                        attract -= p[i * n + j] as f64 * w(i, j).ln();
                        z += w(i, j);
                    }
                }
                e * attract + z.ln()
            };
            let mut y0 = random(n, dims, 3.0, 19).into_raw_vec_and_offset().0;
            let mut grad = vec![0.0; n * dims];
            if dims == 2 {
                let soa: [Vec<f32>; 2] =
                    std::array::from_fn(|d| (0..n).map(|i| y0[i * 2 + d] as f32).collect());
                gradient::<2>(&p, &soa, nu as f32, e as f32, &mut grad);
            } else {
                let soa: [Vec<f32>; 3] =
                    std::array::from_fn(|d| (0..n).map(|i| y0[i * 3 + d] as f32).collect());
                gradient::<3>(&p, &soa, nu as f32, e as f32, &mut grad);
            }
            let err = check_slice(&mut y0, &grad, |_| 1e-4, objective);
            assert!(err < 1e-3, "{dims}-D: {err}");
        }
    }
}
