//! Sparse-input Dense layer: the first layer, fed the CSR minibatch directly.
//!
//! Shapes: `x: (B, in)` CSR with `nnz` entries, `Wᵀ: (in, out)`, `b: (out)`, `y: (B, out)`.
//!
//! Forward:  `y[i, :] = b + Σ_{j ∈ nz(i)} x[i, j] · Wᵀ[j, :]`, i.e. `y = x·Wᵀ + 1·bᵀ` touching
//! only the nonzeros: `2·nnz·out` flops instead of `2·B·in·out` (≈ 16× fewer on PBMC3k).
//!
//! The batch arrives as CSR and is transposed once per step into column-major form (a
//! [`Csc`]), which both products walk gene by gene.
//!
//! Backward, given `δy` (already through the activation):
//! - `∂Wᵀ[j, :] += Σ_{i : x[i,j] ≠ 0} x[i, j] · δy[i, :]`, i.e. `∂W += δyᵀ·x` from the nonzeros;
//! - `∂b += Σ_rows δy`;
//! - no `δx`: the input is data.
//!
//! Storage note: the weight is kept transposed, `(in, out)`, so that both products walk
//! contiguous rows of length `out`. Checkpoints store it as PyTorch's `(out, in)`
//! ([`SparseDense::weight_out_in`]). Initialisation draws the `(out, in)` tensor exactly as
//! [`super::dense::Dense::new`] does and transposes it.

use super::dense::{add_column_sums, uniform_init};
use super::relu::{bias_act_forward, Activation};
use super::scalar::{axpy, with_avx2, Scalar};
use crate::csr::Csc;
use ndarray::parallel::prelude::*;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, Zip};
use rand::Rng;

/// The first layer with its gradient buffers and a reusable transpose of the batch.
#[derive(Clone, Debug)]
pub struct SparseDense<T> {
    /// `Wᵀ`, `(in, out)`
    pub weight_t: Array2<T>,
    /// `(out)`
    pub bias: Array1<T>,
    pub dweight_t: Array2<T>,
    pub dbias: Array1<T>,
}

impl<T: Scalar> SparseDense<T> {
    /// A new `in → out` layer, initialised as PyTorch's `nn.Linear(in, out)`.
    pub fn new<R: Rng + ?Sized>(n_in: usize, n_out: usize, rng: &mut R) -> Self {
        let weight = uniform_init::<T, R>(n_out, n_in, n_in, rng);
        let bias = uniform_init(1, n_out, n_in, rng).remove_axis(Axis(0));
        Self::from_parts(weight.t().as_standard_layout().into_owned(), bias)
    }

    /// A layer from `Wᵀ (in, out)` and `b`.
    pub fn from_parts(weight_t: Array2<T>, bias: Array1<T>) -> Self {
        SparseDense {
            dweight_t: Array2::zeros(weight_t.raw_dim()),
            dbias: Array1::zeros(bias.raw_dim()),
            weight_t,
            bias,
        }
    }

    pub fn n_in(&self) -> usize {
        self.weight_t.nrows()
    }

    pub fn n_out(&self) -> usize {
        self.weight_t.ncols()
    }

    /// The weight in PyTorch's `(out, in)` layout (a copy).
    pub fn weight_out_in(&self) -> Array2<T> {
        self.weight_t.t().as_standard_layout().into_owned()
    }

    /// `y = act(x·Wᵀ + b)` from the nonzeros of `x`, given as its transpose `xt` (see
    /// [`Csc::rebuild_from`]). Walking the batch gene by gene streams through `Wᵀ` in memory
    /// order instead of jumping to a random row per nonzero. Blocks of output columns run in
    /// parallel; every output is summed over the genes in ascending order, whatever the
    /// thread count.
    pub fn forward(&self, xt: &Csc<T>, mut y: ArrayViewMut2<'_, T>, act: Activation) {
        assert_eq!(xt.n_cols(), self.n_in(), "sparse layer: input width");
        assert_eq!(y.nrows(), xt.n_rows, "sparse layer: batch size");
        let (w, out, b) = (
            self.weight_t.as_slice().expect("standard layout"),
            self.n_out(),
            xt.n_rows,
        );
        let block = out.div_ceil(rayon::current_num_threads()).max(16);
        y.axis_chunks_iter_mut(Axis(1), block)
            .into_par_iter()
            .enumerate()
            .for_each(|(k, mut y_block)| {
                let (c0, width) = (k * block, y_block.ncols());
                let mut acc = vec![T::zero(); b * width];
                with_avx2(|| {
                    for j in 0..xt.n_cols() {
                        let w_row = &w[j * out + c0..j * out + c0 + width];
                        for p in xt.colptr[j]..xt.colptr[j + 1] {
                            let i = xt.rows[p] as usize;
                            axpy(xt.data[p], w_row, &mut acc[i * width..(i + 1) * width]);
                        }
                    }
                });
                for (mut dst, src) in y_block.rows_mut().into_iter().zip(acc.chunks_exact(width)) {
                    dst.assign(&ndarray::ArrayView1::from(src));
                }
            });
        bias_act_forward(y, self.bias.view(), act);
    }

    /// `∂Wᵀ += (δyᵀ·x)ᵀ` and `∂b += Σ δy`, from the nonzeros of `x` (as its transpose `xt`).
    /// Each row of `∂Wᵀ` (one input gene) is summed by one thread, in batch-row order.
    pub fn backward(&mut self, xt: &Csc<T>, dy: ArrayView2<'_, T>) {
        let dy_rows = dy.as_standard_layout();
        let (dy_flat, out) = (dy_rows.as_slice().expect("standard layout"), self.n_out());
        Zip::indexed(self.dweight_t.rows_mut()).par_for_each(|j, mut grad_row| {
            let grad_row = grad_row.as_slice_mut().expect("standard layout");
            with_avx2(|| {
                for p in xt.colptr[j]..xt.colptr[j + 1] {
                    let i = xt.rows[p] as usize;
                    axpy(xt.data[p], &dy_flat[i * out..(i + 1) * out], grad_row);
                }
            })
        });
        add_column_sums(dy, self.dbias.view_mut());
    }

    /// Sets `∂Wᵀ` and `∂b` to zero.
    pub fn zero_grad(&mut self) {
        match self.dweight_t.as_slice_mut() {
            Some(s) => s.par_iter_mut().for_each(|v| *v = T::zero()),
            None => self.dweight_t.fill(T::zero()),
        }
        self.dbias.fill(T::zero());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::Csr;
    use crate::engine::dense::Dense;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};
    use crate::engine::relu::act_backward;
    use crate::engine::rng::{stream, Stream};

    fn sparse_batch() -> Csr<f64> {
        let dense = random(5, 9, 1.0, 21).mapv(|v| if v.abs() < 0.6 { 0.0 } else { v });
        Csr::from_dense(&dense)
    }

    /// L = Σ G ⊙ relu(x·Wᵀ + b) for a sparse x; gradients w.r.t. W and b.
    #[test]
    fn gradcheck_sparse_dense() {
        let x = sparse_batch();
        assert!(x.nnz() > 5 && x.nnz() < 40, "the fixture must be sparse");
        let mut xt = Csc::default();
        xt.rebuild_from(&x);
        let mut layer = SparseDense::<f64>::new(9, 4, &mut stream(5, Stream::Init));
        let g = random(5, 4, 1.0, 22);
        let loss = |l: &SparseDense<f64>| {
            let mut y = Array2::zeros((5, 4));
            l.forward(&xt, y.view_mut(), Activation::Relu);
            (&y * &g).sum()
        };
        let mut y = Array2::zeros((5, 4));
        layer.forward(&xt, y.view_mut(), Activation::Relu);
        let mut dy = g.clone();
        act_backward(y.view(), dy.view_mut(), Activation::Relu);
        layer.zero_grad();
        layer.backward(&xt, dy.view());
        let (dw, db) = (layer.dweight_t.clone(), layer.dbias.clone());
        let mut probe = layer.clone();
        let mut w = layer.weight_t.clone();
        let err_w = check_slice(
            w.as_slice_mut().unwrap(),
            dw.as_slice().unwrap(),
            |_| 1e-6,
            |v| {
                probe.weight_t.as_slice_mut().unwrap().copy_from_slice(v);
                loss(&probe)
            },
        );
        let mut b = layer.bias.clone();
        let err_b = check_slice(
            b.as_slice_mut().unwrap(),
            db.as_slice().unwrap(),
            |_| 1e-6,
            |v| {
                probe.weight_t.assign(&layer.weight_t);
                probe.bias.as_slice_mut().unwrap().copy_from_slice(v);
                loss(&probe)
            },
        );
        assert!(err_w < TOLERANCE && err_b < TOLERANCE, "{err_w} {err_b}");
    }

    /// The sparse layer and the dense layer compute the same thing from the same seed.
    #[test]
    fn sparse_equals_dense() {
        let x = sparse_batch();
        let sparse = SparseDense::<f64>::new(9, 4, &mut stream(5, Stream::Init));
        let dense = Dense::<f64>::new(9, 4, &mut stream(5, Stream::Init));
        assert_eq!(sparse.weight_out_in(), dense.weight);
        let (mut ys, mut yd) = (Array2::zeros((5, 4)), Array2::zeros((5, 4)));
        let mut xt = Csc::default();
        xt.rebuild_from(&x);
        sparse.forward(&xt, ys.view_mut(), Activation::Identity);
        dense.forward(x.to_dense().view(), yd.view_mut(), Activation::Identity);
        assert!((&ys - &yd).iter().all(|d| d.abs() < 1e-12));
    }
}
