//! The decoder's output layer fused with the squared-error loss: the training step's hot path.
//!
//! Shapes: `h: (B, n)`, `W: (d, n)`, `b: (d)`, `x: (B, d)` CSR; `d` is the number of genes.
//!
//! The same math as [`super::dense`] (identity activation) followed by [`super::mse`]:
//!
//! Forward:  `x̂ = h·Wᵀ + 1·bᵀ`,  `L = r · Σ_i Σ_g (x̂_ig − x_ig)²`  (`r` from [`Reduction`]).
//!
//! Backward, with `δx̂ = 2r (x̂ − x)`:
//! - `∂W += δx̂ᵀ·h`   `(d, n)`
//! - `∂b += Σ_rows δx̂`   `(d)`
//! - `δh += δx̂·W`   `(B, n)`
//!
//! Why fused: `x̂` and `δx̂` are `B × d` (256 × 13,714 floats, 14 MB each on PBMC3k). Run as
//! separate layers they go out to memory and back five times per step. Here the genes are
//! taken a block of [`BLOCK`] at a time: that block's slice of `x̂` is computed, turned into
//! its residual `x̂ − x` in place, and used at once for the block's rows of `∂W` and `∂b` and
//! its share of `δh`, all while it sits in the core's cache. `x̂` is never stored whole. The
//! factor `2r` rides in the products' `α`, so no pass scales the residual.
//!
//! Determinism: the genes are cut into fixed groups of [`GROUP`] (never by thread count). One
//! thread does a whole group; each group keeps its own part of `δh` and of the loss, and the
//! parts are added in group order. The result does not depend on the number of threads.

use super::dense::Dense;
use super::gemm::gemm_serial;
use super::scalar::{add_into, axpy, sum_of_squares, Scalar};
use super::Reduction;
use crate::csr::Csr;
use ndarray::parallel::prelude::*;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};

/// Genes per unit of parallel work (and of the summation order of `δh`).
pub const GROUP: usize = 1024;
/// Genes per cache-sized block inside a group: `B × BLOCK` residuals (256 KB at B = 256, f32).
pub const BLOCK: usize = 256;

/// One group's working memory.
#[derive(Clone, Debug)]
struct GroupScratch<T> {
    /// `(B, BLOCK)`: the block's `x̂`, then its residual `x̂ − x`.
    residual: Array2<T>,
    /// `(B, n)`: this group's part of `δh / 2r`.
    dh: Array2<T>,
    /// Per batch row, the position of its next nonzero in the CSR target.
    cursor: Vec<usize>,
    /// This group's part of `L / r`.
    loss: f64,
}

/// Buffers for [`forward_backward`], sized once for batches of up to `capacity` rows.
#[derive(Clone, Debug, Default)]
pub struct OutputScratch<T> {
    groups: Vec<GroupScratch<T>>,
}

impl<T: Scalar> OutputScratch<T> {
    /// Room for `capacity` rows, `n_genes` outputs and `n_in` inputs.
    pub fn new(capacity: usize, n_genes: usize, n_in: usize) -> Self {
        let block = BLOCK.min(n_genes);
        OutputScratch {
            groups: (0..n_genes.div_ceil(GROUP))
                .map(|_| GroupScratch {
                    residual: Array2::zeros((capacity, block)),
                    dh: Array2::zeros((capacity, n_in)),
                    cursor: vec![0; capacity],
                    loss: 0.0,
                })
                .collect(),
        }
    }
}

/// One training step of the output layer and the loss: returns `L` and accumulates `∂W`, `∂b`
/// (into `layer`) and `δh`.
pub fn forward_backward<T: Scalar>(
    layer: &mut Dense<T>,
    h: ArrayView2<'_, T>,
    x: &Csr<T>,
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
    assert_eq!(dh.dim(), (batch, n_in), "output layer: δh shape");
    assert_eq!(
        scratch.groups.len(),
        n_genes.div_ceil(GROUP),
        "output layer: scratch"
    );
    let r = reduction.factor(batch);
    let two_r = T::from_f64(2.0 * r);
    let Dense {
        weight,
        bias,
        dweight,
        dbias,
    } = layer;
    weight
        .axis_chunks_iter(Axis(0), GROUP)
        .into_par_iter()
        .zip(bias.axis_chunks_iter(Axis(0), GROUP).into_par_iter())
        .zip(dweight.axis_chunks_iter_mut(Axis(0), GROUP).into_par_iter())
        .zip(dbias.axis_chunks_iter_mut(Axis(0), GROUP).into_par_iter())
        .zip(scratch.groups.par_iter_mut())
        .enumerate()
        // One group per task, so the threads share out the groups as they finish them.
        .with_max_len(1)
        .for_each(|(g, ((((w, b), dw), db), sc))| {
            group(g * GROUP, w, b, dw, db, h, x, two_r, sc);
        });
    let mut loss = 0.0;
    for sc in &scratch.groups {
        for (mut dst, src) in dh.rows_mut().into_iter().zip(sc.dh.rows()) {
            let (dst, src) = (dst.as_slice_mut(), src.to_slice());
            add_into(src.expect("contiguous"), dst.expect("contiguous δh row"));
        }
        loss += sc.loss;
    }
    loss * r
}

/// Genes `g0 .. g0 + w.nrows()`: their rows of `W`, `b`, `∂W`, `∂b`, one block at a time.
#[allow(clippy::too_many_arguments)]
fn group<T: Scalar>(
    g0: usize,
    w: ArrayView2<'_, T>,
    b: ArrayView1<'_, T>,
    mut dw: ArrayViewMut2<'_, T>,
    mut db: ArrayViewMut1<'_, T>,
    h: ArrayView2<'_, T>,
    x: &Csr<T>,
    two_r: T,
    sc: &mut GroupScratch<T>,
) {
    let batch = h.nrows();
    let (one, zero) = (T::one(), T::zero());
    for (i, c) in sc.cursor[..batch].iter_mut().enumerate() {
        let cols = x.row(i).0;
        *c = x.indptr[i] + cols.partition_point(|&j| (j as usize) < g0);
    }
    sc.loss = 0.0;
    let n = w.nrows();
    for s0 in (0..n).step_by(BLOCK) {
        let s1 = (s0 + BLOCK).min(n);
        let w_blk = w.slice(s![s0..s1, ..]);
        let mut res = sc.residual.slice_mut(s![..batch, ..s1 - s0]);
        // x̂ = h·Wᵀ (the bias is added below, with the residual).
        gemm_serial(one, h, w_blk.t(), zero, res.view_mut());
        sc.loss += residual_in_place(
            res.view_mut(),
            b.slice(s![s0..s1]),
            x,
            &mut sc.cursor[..batch],
            g0 + s0,
        );
        let res = res.view();
        // ∂b += 2r Σ_rows (x̂ − x), each column summed top to bottom.
        let db = db
            .slice_mut(s![s0..s1])
            .into_slice()
            .expect("contiguous ∂b");
        for row in res.rows() {
            axpy(two_r, row.to_slice().expect("contiguous residual row"), db);
        }
        // ∂W += 2r (x̂ − x)ᵀ·h   and   δh_group (+)= 2r (x̂ − x)·W.
        gemm_serial(two_r, res.t(), h, one, dw.slice_mut(s![s0..s1, ..]));
        let beta = if s0 == 0 { zero } else { one };
        gemm_serial(two_r, res, w_blk, beta, sc.dh.slice_mut(s![..batch, ..]));
    }
}

/// Turns `x̂ = h·Wᵀ` for the genes `g0 ..` of this block into the residual `x̂ + b − x`, in
/// place, and returns `Σ (x̂ + b − x)²` over the block. The sparse target is read through
/// `cursor`, each row's position in the CSR, which it advances past the block.
///
/// `Σ_g (x̂ − x)² = Σ_g x̂² + Σ_{g ∈ nz} [(x̂ − x)² − x̂²]`, so the dense part never looks at `x`.
fn residual_in_place<T: Scalar>(
    mut res: ArrayViewMut2<'_, T>,
    b: ArrayView1<'_, T>,
    x: &Csr<T>,
    cursor: &mut [usize],
    g0: usize,
) -> f64 {
    let b = b.to_slice().expect("contiguous bias");
    let g1 = g0 + b.len();
    let mut total = 0.0;
    for (i, mut row) in res.rows_mut().into_iter().enumerate() {
        let row = row.as_slice_mut().expect("contiguous residual row");
        add_into(b, row);
        let mut acc = sum_of_squares(row);
        let end = x.indptr[i + 1];
        let mut p = cursor[i];
        while p < end && (x.indices[p] as usize) < g1 {
            let v = &mut row[x.indices[p] as usize - g0];
            let xv = x.data[p];
            acc += (*v - xv) * (*v - xv) - *v * *v;
            *v -= xv;
            p += 1;
        }
        cursor[i] = p;
        total += acc.to_f64();
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};
    use crate::engine::mse;
    use crate::engine::relu::Activation;
    use crate::engine::rng::{stream, Stream};

    /// A target with empty rows, rows with a single gene, and nonzeros on both sides of every
    /// block and group boundary of a `d`-gene layer.
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

    /// The fused step against the separate layers it replaces, over several groups and a
    /// partial last block, both reductions.
    #[test]
    fn equals_dense_then_mse() {
        let (batch, n_in, d) = (9, 5, 2 * GROUP + BLOCK + 37);
        let x = target(batch, d);
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
            let mut scratch = OutputScratch::new(batch, d, n_in);
            let loss = forward_backward(
                &mut fused,
                h.view(),
                &x,
                reduction,
                dh.view_mut(),
                &mut scratch,
            );
            let close = |a: &Array2<f64>, b: &Array2<f64>| {
                a.iter()
                    .zip(b)
                    .all(|(a, b)| (a - b).abs() <= 1e-12 * (1.0 + b.abs()))
            };
            assert!(
                (loss - want_loss).abs() <= 1e-12 * want_loss,
                "{reduction:?} loss"
            );
            assert!(close(&dh, &want_dh), "{reduction:?} δh");
            assert!(close(&fused.dweight, &separate.dweight), "{reduction:?} ∂W");
            let (db, want_db) = (&fused.dbias, &separate.dbias);
            assert!(db
                .iter()
                .zip(want_db)
                .all(|(a, b)| (a - b).abs() <= 1e-12 * (1.0 + b.abs())));
        }
    }

    /// Finite differences of the loss against every gradient of a small layer.
    #[test]
    fn gradcheck_output_mse() {
        let (batch, n_in, d) = (4, 3, 11);
        let x = target(batch, d);
        let h0 = random(batch, n_in, 1.0, 8);
        let mut layer = Dense::<f64>::new(n_in, d, &mut stream(2, Stream::Init));
        let mut scratch = OutputScratch::new(batch, d, n_in);
        let mut dh = Array2::zeros((batch, n_in));
        forward_backward(
            &mut layer,
            h0.view(),
            &x,
            Reduction::Mean,
            dh.view_mut(),
            &mut scratch,
        );
        let loss = |l: &Dense<f64>, h: &Array2<f64>| {
            let (mut probe, mut sc) = (l.clone(), OutputScratch::new(batch, d, n_in));
            let mut sink = Array2::zeros((batch, n_in));
            forward_backward(
                &mut probe,
                h.view(),
                &x,
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
        let (dw, db) = (layer.dweight.clone(), layer.dbias.clone());
        let mut probe = layer.clone();
        let mut w = layer.weight.clone();
        let err_w = check_slice(
            w.as_slice_mut().unwrap(),
            dw.as_slice().unwrap(),
            |_| 1e-5,
            |v| {
                probe.weight.as_slice_mut().unwrap().copy_from_slice(v);
                loss(&probe, &h0)
            },
        );
        let mut probe = layer.clone();
        let mut b = layer.bias.clone();
        let err_b = check_slice(
            b.as_slice_mut().unwrap(),
            db.as_slice().unwrap(),
            |_| 1e-5,
            |v| {
                probe.bias.as_slice_mut().unwrap().copy_from_slice(v);
                loss(&probe, &h0)
            },
        );
        assert!(
            err_h < TOLERANCE && err_w < TOLERANCE && err_b < TOLERANCE,
            "{err_h} {err_w} {err_b}"
        );
    }

    #[test]
    fn identical_across_thread_counts() {
        let (batch, n_in, d) = (7, 6, 3 * GROUP + 5);
        let x = target(batch, d).map(|v| v as f32);
        let h = random(batch, n_in, 1.0, 4).mapv(|v| v as f32);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut layer = Dense::<f32>::new(n_in, d, &mut stream(6, Stream::Init));
            let mut dh = Array2::zeros((batch, n_in));
            let mut sc = OutputScratch::new(batch, d, n_in);
            let loss = pool.install(|| {
                forward_backward(
                    &mut layer,
                    h.view(),
                    &x,
                    Reduction::Mean,
                    dh.view_mut(),
                    &mut sc,
                )
            });
            (loss, dh, layer.dweight, layer.dbias)
        };
        let one = run(1);
        for t in [2, 3] {
            assert_eq!(one, run(t), "{t} threads");
        }
    }
}
