//! Sparse-input Dense layer: the first layer, fed the CSR minibatch directly.
//!
//! Shapes: `x: (B, in)` CSR with `nnz` entries, `Wᵀ: (in, out)`, `b: (out)`, `y: (B, out)`.
//!
//! Forward:  `y[i, :] = b + Σ_{j ∈ nz(i)} x[i, j] · Wᵀ[j, :]`, i.e. `y = x·Wᵀ + 1·bᵀ` touching
//! only the nonzeros: `2·nnz·out` flops instead of `2·B·in·out` (≈ 16× fewer on PBMC3k).
//!
//! The forward walks the CSR batch row by row within blocks of genes small enough to stay in
//! L2 (`forward_rows`), each output row's columns held in registers while a block's
//! nonzeros add to them; the weight gradient walks the batch's transpose (a [`Csc`], rebuilt
//! once per step) gene by gene, so that each gradient row has one writer and is loaded and
//! stored once. Both run the same inner loop, `add_rows`.
//!
//! Backward, given `δy` (already through the activation):
//! - `∂Wᵀ[j, :] += Σ_{i : x[i,j] ≠ 0} x[i, j] · δy[i, :]`, i.e. `∂W += δyᵀ·x` from the nonzeros;
//! - `∂b += Σ_rows δy`;
//! - no `δx`: the input is data.
//!
//! **Shifted input.** Scaling z-scores every entry (a zero becomes `−mean/sd`), so a scaled
//! matrix is dense. It is kept as sparse as the data by storing each entry's change from the
//! scaled zero: `x = s + 1·cᵀ`, `s` sparse, `c` one value per input column
//! ([`SparseDense::forward_shifted`]). The layer is linear, so the shift folds into the bias
//! and a rank-one term of the weight gradient:
//! - `y = s·Wᵀ + 1·(b + W·c)ᵀ`;
//! - `∂Wᵀ[j, :] += Σ_{i ∈ nz(j)} s[i, j] · δy[i, :] + c_j · Σ_i δy[i, :]`;  `∂b` unchanged.
//!
//! Storage note: the weight is kept transposed, `(in, out)`, so that both products walk
//! contiguous rows of length `out`. Checkpoints store it as PyTorch's `(out, in)`
//! ([`SparseDense::weight_out_in`]). Initialisation draws the `(out, in)` tensor exactly as
//! [`super::dense::Dense::new`] does and transposes it.

use super::dense::{add_column_sums, uniform_init};
use super::relu::{bias_act_forward, Activation};
use super::scalar::{simd_fn, Scalar};
use crate::csr::{Csc, Csr};
use ndarray::parallel::prelude::*;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, Zip};
use rand::Rng;

/// Output columns handled per pass over a row's nonzeros: 64 `f32` are four AVX-512 (or
/// eight AVX2) registers, so the running sums never leave the registers.
pub const LANES: usize = 64;

/// `acc += a·x` on at most [`LANES`] values. A full-width call has a compile-time length, so
/// the loop is unrolled and `acc` lives in registers; a narrower one (the last columns of a
/// layer whose width is not a multiple of [`LANES`]) takes the plain loop.
#[inline(always)]
fn axpy_lanes<T: Scalar>(a: T, x: &[T], acc: &mut [T]) {
    match (
        <&[T; LANES]>::try_from(x),
        <&mut [T; LANES]>::try_from(&mut *acc),
    ) {
        (Ok(x), Ok(acc)) => {
            for k in 0..LANES {
                acc[k] += a * x[k];
            }
        }
        _ => {
            for (acc, &x) in acc.iter_mut().zip(x) {
                *acc += a * x;
            }
        }
    }
}

/// Bytes of `Wᵀ` rows per block of genes in [`forward_rows`]: a block of this size stays in a
/// core's L2 cache (1 MB on Zen 5, 2 MB on the Xeons we measure on) while the rows of a batch
/// read from it.
const GENE_BLOCK_BYTES: usize = 256 << 10;

/// `y[i, :] = Σ_{j ∈ nz(i)} x[i, j] · w[j, :]` for every row of `x` (`w` row-major with
/// `y.ncols()` columns): the first layer's forward without the bias, and the output layer's
/// `X·W`.
///
/// Why by blocks of genes: row by row, every nonzero fetches its 512-byte row of `Wᵀ` from
/// L3 (a `paper` batch has about 200,000 nonzeros and `Wᵀ` is 7 MB, larger than L2), and the
/// product is bound by L3 bandwidth. Here each thread takes a band of rows and walks the
/// genes in blocks of [`GENE_BLOCK_BYTES`]: for each block, every row of its band adds the
/// nonzeros that fall in the block, so the block is read from L3 once per thread and then
/// from L2. Each output value still gets its terms in ascending gene order, starting from
/// zero, so the bits are those of a plain walk along each row, whatever the block size or the
/// thread count. It relies on the [`Csr`] invariant that a row's columns increase.
pub(crate) fn forward_rows<T: Scalar>(x: &Csr<T>, w: &[T], y: ArrayViewMut2<'_, T>) {
    let out = y.ncols().max(1);
    let genes_per_block = (GENE_BLOCK_BYTES / (out * std::mem::size_of::<T>())).max(1);
    forward_rows_in_blocks(x, w, y, genes_per_block);
}

/// [`forward_rows`] with a given number of genes per block.
fn forward_rows_in_blocks<T: Scalar>(
    x: &Csr<T>,
    w: &[T],
    mut y: ArrayViewMut2<'_, T>,
    genes_per_block: usize,
) {
    let (batch, out) = y.dim();
    assert_eq!(batch, x.n_rows, "sparse product: rows");
    assert_eq!(w.len(), x.n_cols * out, "sparse product: weight shape");
    if batch == 0 || out == 0 {
        return;
    }
    debug_assert!(
        (0..batch).all(|i| x.row(i).0.windows(2).all(|p| p[0] < p[1])),
        "sparse product: a row's columns must increase"
    );
    let band = batch.div_ceil(rayon::current_num_threads());
    y.axis_chunks_iter_mut(Axis(0), band)
        .into_par_iter()
        .enumerate()
        .for_each(|(k, mut y_band)| {
            let first = k * band;
            y_band.fill(T::zero());
            let mut next: Vec<usize> = (first..first + y_band.nrows())
                .map(|i| x.indptr[i])
                .collect();
            for g0 in (0..x.n_cols).step_by(genes_per_block) {
                let g1 = g0 + genes_per_block;
                for ((i, next), mut y_row) in (first..).zip(&mut next).zip(y_band.rows_mut()) {
                    let (cols, vals) = (&x.indices[*next..x.indptr[i + 1]], &x.data[*next..]);
                    let in_block = cols.partition_point(|&j| (j as usize) < g1);
                    let y_row = y_row.as_slice_mut().expect("contiguous row");
                    add_rows(&cols[..in_block], &vals[..in_block], T::one(), w, y_row);
                    *next += in_block;
                }
            }
        });
}

simd_fn! {
    /// `y += Σ_p (scale·v_p) · src[r_p, :]`: the one inner loop of both sparse products, over
    /// some nonzeros (`idx` r_p, `vals` v_p) and the rows of `src` they pick, [`LANES`]
    /// columns of `y` at a time, each group held in registers from its load to its store.
    /// - forward: a batch row's nonzeros in a block of genes, `src = Wᵀ`, `scale = 1`;
    /// - weight gradient: a gene's nonzeros, `src = δy`, `y` its row of `∂Wᵀ` (also the
    ///   output layer's `Xᵀ·H`, with `scale = −2r`).
    pub(crate) fn add_rows<T>(idx: &[u32], vals: &[T], scale: T, src: &[T], y: &mut [T]) {
        let out = y.len();
        for (group, y) in y.chunks_mut(LANES).enumerate() {
            let c0 = group * LANES;
            let width = y.len();
            let mut acc = [T::zero(); LANES];
            // A full group copies in and out as a whole array (no call to memcpy per group).
            match <&mut [T; LANES]>::try_from(&mut *y) {
                Ok(full) => acc = *full,
                Err(_) => acc[..width].copy_from_slice(y),
            }
            for (&r, &v) in idx.iter().zip(vals) {
                let start = r as usize * out + c0;
                axpy_lanes(scale * v, &src[start..start + width], &mut acc[..width]);
            }
            match <&mut [T; LANES]>::try_from(&mut *y) {
                Ok(full) => *full = acc,
                Err(_) => y.copy_from_slice(&acc[..width]),
            }
        }
    }
}

/// The first layer with its gradient buffers.
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

    /// `y = act(x·Wᵀ + b)` from the nonzeros of `x` (`forward_rows`). Every output is
    /// summed over the genes in ascending order, whatever the thread count.
    pub fn forward(&self, x: &Csr<T>, y: ArrayViewMut2<'_, T>, act: Activation) {
        self.forward_shifted(x, None, y, act);
    }

    /// [`SparseDense::forward`] of `x = s + 1·cᵀ` given `s` and `c` (`shift`; it may cover
    /// only the first columns, the rest unshifted): `y = act(s·Wᵀ + b + W·c)`.
    pub fn forward_shifted(
        &self,
        s: &Csr<T>,
        shift: Option<&[T]>,
        mut y: ArrayViewMut2<'_, T>,
        act: Activation,
    ) {
        assert_eq!(s.n_cols, self.n_in(), "sparse layer: input width");
        assert_eq!(y.nrows(), s.n_rows, "sparse layer: batch size");
        let w = self.weight_t.as_slice().expect("standard layout");
        forward_rows(s, w, y.view_mut());
        match shift {
            None => bias_act_forward(y, self.bias.view(), act),
            Some(c) => {
                // b + W·c, summed over the columns in order.
                let mut bias = self.bias.clone();
                for (j, &c_j) in c.iter().enumerate() {
                    bias.scaled_add(c_j, &self.weight_t.row(j));
                }
                bias_act_forward(y, bias.view(), act);
            }
        }
    }

    /// `∂Wᵀ += (δyᵀ·x)ᵀ` and `∂b += Σ δy`, from the nonzeros of `x` given as its transpose `xt`
    /// ([`Csc::rebuild_from`]). Each row of `∂Wᵀ` (one input gene) is one task: it is loaded
    /// into registers [`LANES`] columns at a time, the gene's nonzeros add their rows of `δy`
    /// in batch-row order, and it is stored back. Genes absent from the batch are not touched.
    pub fn backward(&mut self, xt: &Csc<T>, dy: ArrayView2<'_, T>) {
        self.backward_shifted(xt, None, dy);
    }

    /// [`SparseDense::backward`] for the input `x = s + 1·cᵀ` of
    /// [`SparseDense::forward_shifted`], given `sᵀ` and `c`: adds `c_j · Σ_i δy[i, :]` to each
    /// shifted row `j` of `∂Wᵀ`.
    pub fn backward_shifted(&mut self, xt: &Csc<T>, shift: Option<&[T]>, dy: ArrayView2<'_, T>) {
        assert_eq!(xt.n_cols(), self.n_in(), "sparse layer: input width");
        let dy_rows = dy.as_standard_layout();
        let dy_flat = dy_rows.as_slice().expect("standard layout");
        Zip::indexed(self.dweight_t.rows_mut()).par_for_each(|j, mut grad_row| {
            let (p0, p1) = (xt.colptr[j], xt.colptr[j + 1]);
            if p0 == p1 {
                return;
            }
            let grad_row = grad_row.as_slice_mut().expect("standard layout");
            let (rows, vals) = (&xt.rows[p0..p1], &xt.data[p0..p1]);
            add_rows(rows, vals, T::one(), dy_flat, grad_row);
        });
        add_column_sums(dy, self.dbias.view_mut());
        if let Some(c) = shift {
            let mut dy_sum = Array1::<T>::zeros(self.n_out());
            add_column_sums(dy, dy_sum.view_mut());
            Zip::from(
                self.dweight_t
                    .slice_mut(ndarray::s![..c.len(), ..])
                    .rows_mut(),
            )
            .and(ndarray::ArrayView1::from(c))
            .par_for_each(|mut grad_row, &c_j| grad_row.scaled_add(c_j, &dy_sum));
        }
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
    use crate::engine::dense::Dense;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};
    use crate::engine::relu::act_backward;
    use crate::engine::rng::{stream, Stream};

    /// The blocked forward gives, bit for bit, a plain walk along each row, for blocks of 1, 2,
    /// 3 and all genes and 1 to 3 threads (the training shapes take many blocks of 512 genes).
    #[test]
    fn forward_by_blocks_has_the_bits_of_a_row_walk() {
        let dense = random(11, 40, 1.0, 5).mapv(|v| if v.abs() < 0.5 { 0.0 } else { v as f32 });
        let x = Csr::from_dense(&dense);
        let w: Vec<f32> = random(40, 70, 1.0, 6).iter().map(|&v| v as f32).collect();
        let mut want = Array2::<f32>::zeros((11, 70));
        for (i, mut row) in want.rows_mut().into_iter().enumerate() {
            let (cols, vals) = x.row(i);
            for (k, y) in row.iter_mut().enumerate() {
                for (&j, &v) in cols.iter().zip(vals) {
                    *y += v * w[j as usize * 70 + k];
                }
            }
        }
        let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for genes_per_block in [1, 2, 3, 40] {
            for threads in 1..=3 {
                let mut got = Array2::from_elem((11, 70), f32::NAN);
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a thread pool")
                    .install(|| forward_rows_in_blocks(&x, &w, got.view_mut(), genes_per_block));
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{genes_per_block} genes, {threads} threads"
                );
            }
        }
    }

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
            l.forward(&x, y.view_mut(), Activation::Relu);
            (&y * &g).sum()
        };
        let mut y = Array2::zeros((5, 4));
        layer.forward(&x, y.view_mut(), Activation::Relu);
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

    /// The sparse layer and the dense layer compute the same thing from the same seed, forward
    /// and backward, for a width below [`LANES`] and one with full and partial lane blocks.
    #[test]
    fn sparse_equals_dense() {
        let x = sparse_batch();
        let mut xt = Csc::default();
        xt.rebuild_from(&x);
        for width in [4, 2 * LANES + 22] {
            let mut sparse = SparseDense::<f64>::new(9, width, &mut stream(5, Stream::Init));
            let mut dense = Dense::<f64>::new(9, width, &mut stream(5, Stream::Init));
            assert_eq!(sparse.weight_out_in(), dense.weight);
            let (mut ys, mut yd) = (Array2::zeros((5, width)), Array2::zeros((5, width)));
            sparse.forward(&x, ys.view_mut(), Activation::Identity);
            dense.forward(x.to_dense().view(), yd.view_mut(), Activation::Identity);
            assert!((&ys - &yd).iter().all(|d| d.abs() < 1e-12));
            let dy = random(5, width, 1.0, 23);
            sparse.zero_grad();
            dense.zero_grad();
            sparse.backward(&xt, dy.view());
            dense.backward(x.to_dense().view(), dy.view(), None);
            let dw = sparse.dweight_t.t().to_owned();
            assert!((&dw - &dense.dweight).iter().all(|d| d.abs() < 1e-12));
            assert!((&sparse.dbias - &dense.dbias)
                .iter()
                .all(|d| d.abs() < 1e-12));
        }
    }
}
