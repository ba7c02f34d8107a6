//! The decoder's output layer and the squared-error loss in one step, without forming `x̂`.
//!
//! Shapes: `H: (B, n)` (the last hidden layer), `W: (d, n)`, `b: (d)`, `X: (B, d)` sparse
//! (CSR, and its transpose `Xᵀ` as a [`Csc`]); `d` genes, `n` = 128 hidden units in `paper`.
//!
//! The same math as [`super::dense`] (identity activation) followed by [`super::mse`]:
//!
//! Forward:  `X̂ = H·Wᵀ + 1·bᵀ`,  `L = r · Σ_i Σ_g (X̂_ig − X_ig)²`  (`r` from [`Reduction`]).
//!
//! Backward, with the residual `R = X̂ − X`:
//! - `∂W += 2r · Rᵀ·H`,  `∂b += 2r · Rᵀ·1`,  `∂H += 2r · R·W`.
//!
//! Why not form `X̂`: it is `B × d` dense (256 × 13,714), and the three products above with a
//! dense `R` cost `3 · 2Bdn` flops (2.7 GFLOP per step, 94 % of a step's work). Because the
//! layer is linear and the loss quadratic, `R` can be multiplied out instead:
//!
//! - `Rᵀ·H = W·(HᵀH) + b·(1ᵀH) − Xᵀ·H`
//! - `Rᵀ·1 = W·(Hᵀ1) + B·b − Xᵀ·1`
//! - `R·W = H·(WᵀW) + 1·(Wᵀb)ᵀ − X·W`
//! - `Σ R² = Σ_i [h_i·(WᵀW)·h_iᵀ + 2 h_i·(Wᵀb) + bᵀb] − 2 Σ_i [h_i·(X·W)_i + Σ_g X_ig b_g] + Σ X²`
//!
//! The dense work is now the two `n × n` Gram products: `WᵀW` and `W·(HᵀH)`, each `2dn²` flops
//! (0.45 GFLOP), a third of before with `n = 128 < B = 256`. `X·W` and `Xᵀ·H` touch only the
//! nonzeros (`2·nnz·n` flops each), with the first layer's sparse kernels
//! ([`super::sparse_dense`]). Everything else is `n × n` or smaller. [`super::gram`] computes
//! the two products for these shapes (with [`super::gemm`]'s bits): `WᵀW` from its upper
//! triangle, `Wᵀb` in the same pass over `W`, and `W·(HᵀH)` band by band inside the per-gene
//! pass below, while each band of `W` and `∂W` is in cache.
//!
//! Rounding: in `f32`, the gradient is a difference of terms somewhat larger than itself
//! (`X̂` against `X`), so it carries a few more ulps of error than the direct form; the loss is
//! summed in `f64` per cell. Gradient checks run this code in `f64`, and a test holds it equal
//! to the separate layers.
//!
//! Determinism: each output row (of `∂W`, `∂b`, `∂H`) is computed by one task in a fixed
//! order, and the per-cell losses are added in cell order: nothing depends on thread count.

use super::dense::{add_column_sums, Dense};
use super::gemm::gemm;
use super::gram::{add_band_product, band_product_is_fused, gram_and_wtb};
use super::scalar::{axpy, dot, simd_fn, Scalar};
use super::sparse_dense::{add_rows, forward_rows};
use super::Reduction;
use crate::csr::{Csc, Csr};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Zip};
use rayon::prelude::*;

/// Genes per task of the gradient pass: a band of `W` and `∂W` (8 KB each at 128 units) stays
/// in the core's cache from the `W·(HᵀH)` product to the sparse terms.
const GENE_BAND: usize = 16;

/// Small buffers for [`forward_backward`], sized once for batches of up to `capacity` rows.
#[derive(Clone, Debug, Default)]
pub struct OutputScratch<T> {
    /// `WᵀW (n, n)`
    gram_w: Array2<T>,
    /// `HᵀH (n, n)`
    gram_h: Array2<T>,
    /// `H·(WᵀW) (B, n)`, then `R·W`.
    h_gram: Array2<T>,
    /// `X·W (B, n)`
    xw: Array2<T>,
    /// `Wᵀb (n)` as a `(1, n)` row.
    wb: Array2<T>,
    /// `Hᵀ1 (n)`
    h_sum: Array1<T>,
    /// Per cell, its share of `L / r`.
    cell_loss: Vec<f64>,
}

impl<T: Scalar> OutputScratch<T> {
    /// Room for `capacity` rows and `n_in` hidden units.
    pub fn new(capacity: usize, n_in: usize) -> Self {
        OutputScratch {
            gram_w: Array2::zeros((n_in, n_in)),
            gram_h: Array2::zeros((n_in, n_in)),
            h_gram: Array2::zeros((capacity, n_in)),
            xw: Array2::zeros((capacity, n_in)),
            wb: Array2::zeros((1, n_in)),
            h_sum: Array1::zeros(n_in),
            cell_loss: vec![0.0; capacity],
        }
    }
}

/// Whether the Gram form costs more than the separate layers ([`super::dense`] then
/// [`super::mse`]) for an output layer fed `width` units and batches of `batch` cells, `d`
/// genes: the Gram form's two `d × width × width` products take `4·d·width²` flops, the
/// separate layers' three `batch × d × width` ones `6·batch·d·width`, so the Gram form wins
/// while `width < 1.5·batch` (`paper`: 128 against 256). Training decides from the configured
/// batch size, so a run's last, smaller batch takes the same form as the others.
pub fn gram_form_costs_more(width: usize, batch: usize) -> bool {
    2 * width > 3 * batch
}

/// One training step of the output layer and the loss: returns `L` and accumulates `∂W`, `∂b`
/// (into `layer`) and `∂H` (into `dh`). `xt` is the transpose of `x`.
pub fn forward_backward<T: Scalar>(
    layer: &mut Dense<T>,
    h: ArrayView2<'_, T>,
    x: &Csr<T>,
    xt: &Csc<T>,
    reduction: Reduction,
    dh: ArrayViewMut2<'_, T>,
    scratch: &mut OutputScratch<T>,
) -> f64 {
    forward_backward_shifted(layer, h, x, xt, None, reduction, dh, scratch)
}

/// [`forward_backward`] against the target `x = s + 1·cᵀ`, given `s` (and `sᵀ`) and the
/// `shift` `c` ([`super::sparse_dense`]'s shifted input). The residual
/// `R = H·Wᵀ + 1·bᵀ − s − 1·cᵀ` is the unshifted one with `b − c` in place of `b`, and
/// `∂R/∂b` is still `1`: every formula above holds with `b − c` for `b`, `∂b` included.
#[allow(clippy::too_many_arguments)]
pub fn forward_backward_shifted<T: Scalar>(
    layer: &mut Dense<T>,
    h: ArrayView2<'_, T>,
    x: &Csr<T>,
    xt: &Csc<T>,
    shift: Option<&[T]>,
    reduction: Reduction,
    mut dh: ArrayViewMut2<'_, T>,
    scratch: &mut OutputScratch<T>,
) -> f64 {
    let (batch, n_in, n_genes) = (h.nrows(), layer.n_in(), layer.n_out());
    assert_eq!(h.ncols(), n_in, "output layer: input width");
    assert_eq!(
        (x.n_rows, x.n_cols),
        (batch, n_genes),
        "output layer: target shape"
    );
    assert_eq!(
        (xt.n_rows, xt.n_cols()),
        (batch, n_genes),
        "output layer: transpose shape"
    );
    assert_eq!(dh.dim(), (batch, n_in), "output layer: ∂H shape");
    assert_eq!(
        scratch.gram_w.dim(),
        (n_in, n_in),
        "output layer: scratch width"
    );
    assert!(
        batch <= scratch.xw.nrows(),
        "output layer: scratch capacity"
    );
    let (one, zero) = (T::one(), T::zero());
    let r = reduction.factor(batch);
    let two_r = T::from_f64(2.0 * r);
    let sc = scratch;
    let h_flat = h.as_standard_layout();
    let h_flat = h_flat.as_slice().expect("standard layout");
    let w = layer.weight.as_slice().expect("standard layout");

    // The bias as the residual sees it: `b − c` under a shift.
    let bias = layer.bias.as_slice().expect("contiguous");
    let b: std::borrow::Cow<'_, [T]> = match shift {
        None => bias.into(),
        Some(c) => {
            assert_eq!(c.len(), n_genes, "output layer: shift width");
            bias.iter()
                .zip(c)
                .map(|(&b, &c)| b - c)
                .collect::<Vec<T>>()
                .into()
        }
    };
    let b = &b[..];

    // The Gram matrices and the small products.
    let wb = sc.wb.as_slice_mut().expect("contiguous");
    gram_and_wtb(layer.weight.view(), b, sc.gram_w.view_mut(), wb);
    gemm(one, h.t(), h, zero, sc.gram_h.view_mut());
    sc.h_sum.fill(zero);
    add_column_sums(h, sc.h_sum.view_mut());
    let mut h_gram = sc.h_gram.slice_mut(ndarray::s![..batch, ..]);
    gemm(one, h, sc.gram_w.view(), zero, h_gram.view_mut());
    let mut xw = sc.xw.slice_mut(ndarray::s![..batch, ..]);
    forward_rows(x, w, xw.view_mut());

    // Cell by cell: the loss (in f64), R·W = H·(WᵀW) + 1·(Wᵀb)ᵀ − X·W (in place of H·(WᵀW)),
    // and ∂H += 2r·R·W.
    let wb = sc.wb.row(0);
    let wb = wb.as_slice().expect("contiguous");
    let btb: f64 = b.iter().map(|&v| v.to_f64() * v.to_f64()).sum();
    Zip::indexed(h_gram.rows_mut())
        .and(xw.rows())
        .and(&mut sc.cell_loss[..batch])
        .and(dh.rows_mut())
        .par_for_each(|i, mut hg, xw_i, loss, mut dh_i| {
            let (hg, xw_i) = (
                hg.as_slice_mut().expect("row"),
                xw_i.to_slice().expect("row"),
            );
            let h_i = &h_flat[i * n_in..(i + 1) * n_in];
            let (cols, vals) = x.row(i);
            let x_b: f64 = cols
                .iter()
                .zip(vals)
                .map(|(&g, &v)| mul_f64(v, b[g as usize]))
                .sum();
            let x_x: f64 = vals.iter().map(|&v| mul_f64(v, v)).sum();
            *loss = dot_f64(h_i, hg) + 2.0 * dot_f64(h_i, wb) + btb
                - 2.0 * (dot_f64(h_i, xw_i) + x_b)
                + x_x;
            residual_times_w(hg, wb, xw_i);
            axpy(two_r, hg, dh_i.as_slice_mut().expect("contiguous ∂H row"));
        });

    // ∂W += 2r (W·(HᵀH) + b·(1ᵀH) − Xᵀ·H),  ∂b += 2r (W·(Hᵀ1) + B·b − Xᵀ·1), a band of
    // genes at a time. The first term is one product over all genes where the fused kernel
    // does not apply; where it does, it is computed band by band, in the same pass as the
    // rest, while the band's rows of W and ∂W are in cache (the same bits either way).
    let fused = band_product_is_fused::<T>(n_in);
    if !fused {
        gemm(
            two_r,
            layer.weight.view(),
            sc.gram_h.view(),
            one,
            layer.dweight.view_mut(),
        );
    }
    let gram_h = sc.gram_h.as_slice().expect("contiguous");
    let h_sum = sc.h_sum.as_slice().expect("contiguous");
    let batch_t = T::from_f64(batch as f64);
    let dweight = layer.dweight.as_slice_mut().expect("standard layout");
    let dbias = layer.dbias.as_slice_mut().expect("contiguous");
    dweight
        .par_chunks_mut(GENE_BAND * n_in)
        .zip(dbias.par_chunks_mut(GENE_BAND))
        .enumerate()
        .for_each(|(band, (dw_band, db_band))| {
            let g0 = band * GENE_BAND;
            let w_band = &w[g0 * n_in..g0 * n_in + dw_band.len()];
            if fused {
                add_band_product(two_r, w_band, gram_h, n_in, n_in, dw_band);
            }
            let genes = dw_band.chunks_exact_mut(n_in).zip(db_band);
            for (g, (dw, db)) in (g0..).zip(genes) {
                let (p0, p1) = (xt.colptr[g], xt.colptr[g + 1]);
                let (rows, vals) = (&xt.rows[p0..p1], &xt.data[p0..p1]);
                let w_g = &w[g * n_in..(g + 1) * n_in];
                *db += two_r * gene_bias_gradient(w_g, h_sum, b[g] * batch_t, vals);
                axpy(two_r * b[g], h_sum, dw);
                add_rows(rows, vals, -two_r, h_flat, dw);
            }
        });

    sc.cell_loss[..batch].iter().sum::<f64>() * r
}

/// `Σ a_k b_k`, each product and the sum in `f64` (the loss's terms nearly cancel).
fn dot_f64<T: Scalar>(a: &[T], b: &[T]) -> f64 {
    a.iter().zip(b).map(|(&a, &b)| mul_f64(a, b)).sum()
}

/// `a · b` in `f64`.
#[inline]
fn mul_f64<T: Scalar>(a: T, b: T) -> f64 {
    a.to_f64() * b.to_f64()
}

simd_fn! {
    /// `hg ← hg + wb − xw`: one cell's `R·W` from `H·(WᵀW)`, `Wᵀb` and `X·W`.
    fn residual_times_w<T>(hg: &mut [T], wb: &[T], xw: &[T]) {
        for ((v, &u), &p) in hg.iter_mut().zip(wb).zip(xw) {
            *v = *v + u - p;
        }
    }
}

/// One gene's `Rᵀ·1 = W_g·(Hᵀ1) + B·b_g − Σ_i X_ig` (with `B·b_g` given).
fn gene_bias_gradient<T: Scalar>(w_g: &[T], h_sum: &[T], batch_b: T, x_vals: &[T]) -> T {
    let x_sum = x_vals.iter().fold(T::zero(), |a, &v| a + v);
    dot(w_g, h_sum) + batch_b - x_sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::fixtures::{check_dense_params, random};
    use crate::engine::gradcheck::{check_slice, TOLERANCE};
    use crate::engine::mse;
    use crate::engine::relu::Activation;
    use crate::engine::rng::{stream, Stream};

    /// A target with empty rows and about 40 % nonzeros elsewhere.
    fn target(batch: usize, d: usize) -> Csr<f64> {
        let mut x = Csr::with_cols(d);
        for i in 0..batch {
            let cols: Vec<u32> = (0..d as u32)
                .filter(|&j| i % 4 != 1 && (j as usize * 7 + i * 3) % 5 < 2)
                .collect();
            let vals: Vec<f64> = cols.iter().map(|&j| 0.3 + (j % 7) as f64 * 0.4).collect();
            x.push_row(&cols, &vals);
        }
        x
    }

    fn transpose<T: Scalar>(x: &Csr<T>) -> Csc<T> {
        let mut xt = Csc::default();
        xt.rebuild_from(x);
        xt
    }

    /// The presets' output layers: the Gram form for `paper` (128 units, batch 256) and
    /// `scrna` (128, 128), the separate layers for the study's code's VAE/VSC (800, 240).
    #[test]
    fn output_form_by_shape() {
        assert!(!gram_form_costs_more(128, 256));
        assert!(!gram_form_costs_more(128, 128));
        assert!(gram_form_costs_more(800, 240));
        assert!(!gram_form_costs_more(128, 240), "the seed-code AE");
    }

    /// The one-step form against the separate layers it replaces, both reductions.
    #[test]
    fn equals_dense_then_mse() {
        let (batch, n_in, d) = (9, 5, 300);
        let x = target(batch, d);
        let xt = transpose(&x);
        let h = random(batch, n_in, 1.0, 3);
        for reduction in [Reduction::Sum, Reduction::Mean] {
            let mut separate = Dense::<f64>::new(n_in, d, &mut stream(5, Stream::Init));
            let mut fused = separate.clone();
            let mut xhat = Array2::zeros((batch, d));
            separate.forward(h.view(), xhat.view_mut(), Activation::Identity);
            let want_loss = mse::forward(xhat.view(), &x, reduction);
            let mut dxhat = Array2::zeros((batch, d));
            mse::backward(xhat.view(), &x, reduction, dxhat.view_mut());
            let mut want_dh = Array2::from_elem((batch, n_in), 0.5);
            separate.backward(h.view(), dxhat.view(), Some(want_dh.view_mut()));

            let mut dh = Array2::from_elem((batch, n_in), 0.5);
            let mut sc = OutputScratch::new(batch, n_in);
            let loss = forward_backward(
                &mut fused,
                h.view(),
                &x,
                &xt,
                reduction,
                dh.view_mut(),
                &mut sc,
            );
            let close = |a: &Array2<f64>, b: &Array2<f64>| {
                a.iter()
                    .zip(b)
                    .all(|(a, b)| (a - b).abs() <= 1e-11 * (1.0 + b.abs()))
            };
            assert!(
                (loss - want_loss).abs() <= 1e-11 * want_loss,
                "{reduction:?} loss"
            );
            assert!(close(&dh, &want_dh), "{reduction:?} ∂H");
            assert!(close(&fused.dweight, &separate.dweight), "{reduction:?} ∂W");
            let (db, want_db) = (&fused.dbias, &separate.dbias);
            assert!(db
                .iter()
                .zip(want_db)
                .all(|(a, b)| (a - b).abs() <= 1e-11 * (1.0 + b.abs())));
        }
    }

    /// A shifted target `s + 1·cᵀ` (given `s` and `c`) gives the loss and gradients of the
    /// dense target itself.
    #[test]
    fn a_shifted_target_is_the_dense_target() {
        let (batch, n_in, d) = (7, 5, 40);
        let s = target(batch, d);
        let c: Vec<f64> = random(1, d, 2.0, 8).into_iter().collect();
        let mut dense = s.to_dense();
        for mut row in dense.rows_mut() {
            row += &ndarray::ArrayView1::from(&c[..]);
        }
        let full = Csr::from_dense(&dense);
        let h = random(batch, n_in, 1.0, 3);
        let mut plain = Dense::<f64>::new(n_in, d, &mut stream(5, Stream::Init));
        let mut shifted = plain.clone();
        let (mut dh, mut dh_shifted) = (Array2::zeros((batch, n_in)), Array2::zeros((batch, n_in)));
        let mut sc = OutputScratch::new(batch, n_in);
        let loss = forward_backward(
            &mut plain,
            h.view(),
            &full,
            &transpose(&full),
            Reduction::Mean,
            dh.view_mut(),
            &mut sc,
        );
        let loss_shifted = forward_backward_shifted(
            &mut shifted,
            h.view(),
            &s,
            &transpose(&s),
            Some(&c),
            Reduction::Mean,
            dh_shifted.view_mut(),
            &mut sc,
        );
        assert!((loss - loss_shifted).abs() <= 1e-11 * loss);
        let close = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .all(|(a, b)| (a - b).abs() <= 1e-10 * (1.0 + b.abs()))
        };
        assert!(
            close(dh.as_slice().unwrap(), dh_shifted.as_slice().unwrap()),
            "∂H"
        );
        assert!(
            close(
                plain.dweight.as_slice().unwrap(),
                shifted.dweight.as_slice().unwrap()
            ),
            "∂W"
        );
        assert!(
            close(
                plain.dbias.as_slice().unwrap(),
                shifted.dbias.as_slice().unwrap()
            ),
            "∂b"
        );
    }

    /// In `f32`, on PBMC-like magnitudes, the gradients stay within a few 1e-6 (relative to
    /// the gradient's largest entry) of the `f64` separate layers.
    #[test]
    fn f32_rounding_stays_small() {
        let (batch, n_in, d) = (64, 16, 2000);
        let x = target(batch, d);
        let h = random(batch, n_in, 1.0, 3).mapv(f64::abs);
        let mut exact = Dense::<f64>::new(n_in, d, &mut stream(5, Stream::Init));
        let mut xhat = Array2::zeros((batch, d));
        exact.forward(h.view(), xhat.view_mut(), Activation::Identity);
        let mut dxhat = Array2::zeros((batch, d));
        mse::backward(xhat.view(), &x, Reduction::Mean, dxhat.view_mut());
        let mut want_dh = Array2::zeros((batch, n_in));
        exact.backward(h.view(), dxhat.view(), Some(want_dh.view_mut()));

        let mut fast = Dense::<f32> {
            weight: exact.weight.mapv(|v| v as f32),
            bias: exact.bias.mapv(|v| v as f32),
            dweight: Array2::zeros((d, n_in)),
            dbias: Array1::zeros(d),
        };
        let x32 = x.map(|v| v as f32);
        let mut dh = Array2::<f32>::zeros((batch, n_in));
        let mut sc = OutputScratch::new(batch, n_in);
        let (h32, xt32) = (h.mapv(|v| v as f32), transpose(&x32));
        forward_backward(
            &mut fast,
            h32.view(),
            &x32,
            &xt32,
            Reduction::Mean,
            dh.view_mut(),
            &mut sc,
        );
        let rel = |a: &Array2<f32>, b: &Array2<f64>| {
            let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            a.iter()
                .zip(b)
                .fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b).abs() / scale))
        };
        assert!(
            rel(&fast.dweight, &exact.dweight) < 1e-5,
            "∂W {}",
            rel(&fast.dweight, &exact.dweight)
        );
        assert!(rel(&dh, &want_dh) < 1e-5, "∂H {}", rel(&dh, &want_dh));
    }

    /// Finite differences of the loss against every gradient of a small layer.
    #[test]
    fn gradcheck_output_mse() {
        let (batch, n_in, d) = (4, 3, 11);
        let x = target(batch, d);
        let xt = transpose(&x);
        let h0 = random(batch, n_in, 1.0, 8);
        let mut layer = Dense::<f64>::new(n_in, d, &mut stream(2, Stream::Init));
        let mut sc = OutputScratch::new(batch, n_in);
        let mut dh = Array2::zeros((batch, n_in));
        forward_backward(
            &mut layer,
            h0.view(),
            &x,
            &xt,
            Reduction::Mean,
            dh.view_mut(),
            &mut sc,
        );
        let loss = |l: &Dense<f64>, h: &Array2<f64>| {
            let (mut probe, mut sc) = (l.clone(), OutputScratch::new(batch, n_in));
            let mut sink = Array2::zeros((batch, n_in));
            forward_backward(
                &mut probe,
                h.view(),
                &x,
                &xt,
                Reduction::Mean,
                sink.view_mut(),
                &mut sc,
            )
        };
        let mut h = h0.clone();
        let err_h = check_slice(
            h.as_slice_mut().unwrap(),
            dh.as_slice().unwrap(),
            |_| 1e-5,
            |v| {
                loss(
                    &layer,
                    &Array2::from_shape_vec((batch, n_in), v.to_vec()).unwrap(),
                )
            },
        );
        let (err_w, err_b) = check_dense_params(&layer, 1e-5, |l| loss(l, &h0));
        assert!(
            err_h < TOLERANCE && err_w < TOLERANCE && err_b < TOLERANCE,
            "{err_h} {err_w} {err_b}"
        );
    }

    #[test]
    fn identical_across_thread_counts() {
        let (batch, n_in, d) = (7, 6, 3000);
        let x = target(batch, d).map(|v| v as f32);
        let h = random(batch, n_in, 1.0, 4).mapv(|v| v as f32);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let xt = transpose(&x);
                let mut layer = Dense::<f32>::new(n_in, d, &mut stream(6, Stream::Init));
                let mut dh = Array2::zeros((batch, n_in));
                let mut sc = OutputScratch::new(batch, n_in);
                let loss = forward_backward(
                    &mut layer,
                    h.view(),
                    &x,
                    &xt,
                    Reduction::Mean,
                    dh.view_mut(),
                    &mut sc,
                );
                (loss, dh, layer.dweight, layer.dbias)
            })
        };
        let one = run(1);
        for t in [2, 3] {
            assert_eq!(one, run(t), "{t} threads");
        }
    }
}
