//! Dense (Linear) layer, PyTorch's `nn.Linear`.
//!
//! Shapes: `x: (B, in)`, `W: (out, in)` (PyTorch's layout), `b: (out)`, `y: (B, out)`.
//!
//! Forward:  `y = act(x·Wᵀ + 1·bᵀ)` (the activation is fused, see [`super::relu`]).
//!
//! Backward, given `δy` already passed back through the activation:
//! - `∂W += δyᵀ·x`   `(out, in)`
//! - `∂b += Σ_rows δy`   `(out)`
//! - `δx += δy·W`   `(B, in)`
//!
//! Everything accumulates (`+=`): a tensor that feeds several heads receives the sum of their
//! gradients, and the caller zeroes the buffers once per step ([`Dense::zero_grad`]).
//!
//! Init, as PyTorch: every weight and bias uniform in `±1/√in`.

use super::gemm::gemm;
use super::relu::{bias_act_forward, Activation, PARALLEL_MIN_LEN};
use super::scalar::{add_into, Scalar};
use ndarray::parallel::prelude::*;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use ndarray_rand::rand_distr::Uniform;
use ndarray_rand::RandomExt;
use rand::Rng;
use rayon::slice::ParallelSliceMut;

/// A linear layer with its gradient buffers.
#[derive(Clone, Debug)]
pub struct Dense<T> {
    /// `(out, in)`
    pub weight: Array2<T>,
    /// `(out)`
    pub bias: Array1<T>,
    pub dweight: Array2<T>,
    pub dbias: Array1<T>,
}

/// PyTorch's default init: `U(−1/√in, 1/√in)` for a `(rows, cols)` tensor, drawn in f64 and
/// rounded, so f32 and f64 models from the same seed start from the same numbers.
pub fn uniform_init<T: Scalar, R: Rng + ?Sized>(
    rows: usize,
    cols: usize,
    fan_in: usize,
    rng: &mut R,
) -> Array2<T> {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    let dist = Uniform::new(-bound, bound).expect("bound is positive and finite");
    Array2::<f64>::random_using((rows, cols), dist, rng).mapv(T::from_f64)
}

impl<T: Scalar> Dense<T> {
    /// A new `in → out` layer, initialised as PyTorch does (weight first, then bias).
    pub fn new<R: Rng + ?Sized>(n_in: usize, n_out: usize, rng: &mut R) -> Self {
        let weight = uniform_init(n_out, n_in, n_in, rng);
        let bias = uniform_init(1, n_out, n_in, rng).remove_axis(Axis(0));
        Dense {
            dweight: Array2::zeros(weight.raw_dim()),
            dbias: Array1::zeros(bias.raw_dim()),
            weight,
            bias,
        }
    }

    pub fn n_in(&self) -> usize {
        self.weight.ncols()
    }

    pub fn n_out(&self) -> usize {
        self.weight.nrows()
    }

    /// `y = act(x·Wᵀ + b)`.
    pub fn forward(&self, x: ArrayView2<'_, T>, mut y: ArrayViewMut2<'_, T>, act: Activation) {
        gemm(T::one(), x, self.weight.t(), T::zero(), y.view_mut());
        bias_act_forward(y, self.bias.view(), act);
    }

    /// `∂W += δyᵀ·x`, `∂b += Σ δy`, and `δx += δy·W` when `dx` is given.
    pub fn backward(
        &mut self,
        x: ArrayView2<'_, T>,
        dy: ArrayView2<'_, T>,
        dx: Option<ArrayViewMut2<'_, T>>,
    ) {
        gemm(T::one(), dy.t(), x, T::one(), self.dweight.view_mut());
        add_column_sums(dy, self.dbias.view_mut());
        if let Some(dx) = dx {
            gemm(T::one(), dy, self.weight.view(), T::one(), dx);
        }
    }

    /// Sets `∂W` and `∂b` to zero.
    pub fn zero_grad(&mut self) {
        self.dweight.fill(T::zero());
        self.dbias.fill(T::zero());
    }
}

/// `acc[j] += Σ_i m[i, j]`, each column summed top to bottom (so the order never depends on
/// the thread count), blocks of columns split across threads when the matrix is large.
pub fn add_column_sums<T: Scalar>(m: ArrayView2<'_, T>, mut acc: ArrayViewMut1<'_, T>) {
    if m.len() < PARALLEL_MIN_LEN || m.ncols() < 64 {
        for row in m.rows() {
            acc += &row;
        }
        return;
    }
    if let (Some(acc), true) = (acc.as_slice_mut(), m.is_standard_layout()) {
        // Contiguous rows: column blocks as slices, summed with a tight loop.
        let n = m.ncols();
        let chunk = n.div_ceil(rayon::current_num_threads()).max(64);
        acc.par_chunks_mut(chunk).enumerate().for_each(|(b, acc)| {
            let start = b * chunk;
            for row in m.rows() {
                let row = row.to_slice().expect("standard layout");
                add_into(&row[start..start + acc.len()], acc);
            }
        });
        return;
    }
    let chunk = m.ncols().div_ceil(rayon::current_num_threads());
    acc.axis_chunks_iter_mut(Axis(0), chunk)
        .into_par_iter()
        .zip(m.axis_chunks_iter(Axis(1), chunk).into_par_iter())
        .for_each(|(mut acc, block)| {
            for row in block.rows() {
                acc += &row;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::fixtures::{check_dense_params, random};
    use crate::engine::gradcheck::{check_slice, TOLERANCE};
    use crate::engine::rng::{stream, Stream};

    /// L = Σ G ⊙ relu(x·Wᵀ + b) with a fixed random G; gradients w.r.t. x, W and b.
    #[test]
    fn gradcheck_dense() {
        let (bsz, n_in, n_out) = (4, 6, 5);
        let mut layer = Dense::<f64>::new(n_in, n_out, &mut stream(7, Stream::Init));
        let x0 = random(bsz, n_in, 1.0, 11);
        let g = random(bsz, n_out, 1.0, 12);
        let loss = |l: &Dense<f64>, x: &Array2<f64>| {
            let mut y = Array2::zeros((bsz, n_out));
            l.forward(x.view(), y.view_mut(), Activation::Relu);
            (&y * &g).sum()
        };
        let mut y = Array2::zeros((bsz, n_out));
        layer.forward(x0.view(), y.view_mut(), Activation::Relu);
        let mut dy = g.clone();
        super::super::relu::act_backward(y.view(), dy.view_mut(), Activation::Relu);
        let mut dx = Array2::zeros((bsz, n_in));
        layer.zero_grad();
        layer.backward(x0.view(), dy.view(), Some(dx.view_mut()));

        let mut x = x0.clone();
        let err_x = check_slice(
            x.as_slice_mut().unwrap(),
            dx.as_slice().unwrap(),
            |_| 1e-6,
            |v| {
                loss(
                    &layer,
                    &Array2::from_shape_vec((bsz, n_in), v.to_vec()).unwrap(),
                )
            },
        );
        let (err_w, err_b) = check_dense_params(&layer, 1e-6, |l| loss(l, &x0));
        assert!(
            err_x < TOLERANCE && err_w < TOLERANCE && err_b < TOLERANCE,
            "{err_x} {err_w} {err_b}"
        );
    }

    #[test]
    fn backward_accumulates() {
        let mut layer = Dense::<f64>::new(3, 2, &mut stream(1, Stream::Init));
        let x = random(2, 3, 1.0, 1);
        let dy = random(2, 2, 1.0, 2);
        layer.zero_grad();
        layer.backward(x.view(), dy.view(), None);
        let once = layer.dweight.clone();
        layer.backward(x.view(), dy.view(), None);
        assert!((&layer.dweight - &(&once * 2.0))
            .iter()
            .all(|d| d.abs() < 1e-12));
    }

    #[test]
    fn column_sums_large_and_small_agree() {
        let m = random(300, 333, 1.0, 5);
        let mut a = Array1::zeros(333);
        add_column_sums(m.view(), a.view_mut());
        let want = m.sum_axis(Axis(0));
        assert!((&a - &want).iter().all(|d| d.abs() < 1e-9));
    }

    #[test]
    fn init_is_within_pytorch_bounds() {
        let l = Dense::<f32>::new(100, 50, &mut stream(3, Stream::Init));
        assert!(l
            .weight
            .iter()
            .chain(l.bias.iter())
            .all(|&v| v.abs() <= 0.1));
    }
}
