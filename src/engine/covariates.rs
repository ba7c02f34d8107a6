//! Covariate injection, as scVI's `inject_covariates`: a layer conditioned on a categorical
//! covariate (the batch) reads its input with the covariate's one-hot code appended, so its
//! weight gains one column per category — a learned shift of its output per batch.
//!
//! Shapes: `x: (B, in)`, batch ids `s: (B)` in `0..C`, `y: (B, in + C)`.
//!
//! Forward:  `y_i = [x_i, e_{s_i}]`  (`e_c` the c-th unit vector of length `C`)
//!
//! Backward: `δx_i += δy_i[..in]`; the one-hot columns are data, with no gradient.
//!
//! The sparse first layer takes the same code as extra nonzeros: row `i` of a CSR input with
//! `G` columns gains the entry `(G + s_i, 1)` ([`append_one_hot`]).

use super::Scalar;
use crate::csr::Csr;
use ndarray::{s, ArrayView2, ArrayViewMut2, Zip};

/// `y = [x, one_hot(batch)]`, `y` of width `x.ncols() + categories`.
pub fn forward<T: Scalar>(x: ArrayView2<'_, T>, batch: &[u32], mut y: ArrayViewMut2<'_, T>) {
    let (b, w) = x.dim();
    assert!(batch.len() >= b, "one batch id per row");
    assert!(y.ncols() > w, "room for the one-hot code");
    y.slice_mut(s![.., ..w]).assign(&x);
    let mut code = y.slice_mut(s![.., w..]);
    code.fill(T::zero());
    for (i, &c) in batch.iter().take(b).enumerate() {
        code[[i, c as usize]] = T::one();
    }
}

/// `δx += δy[.., ..in]`.
pub fn backward<T: Scalar>(dy: ArrayView2<'_, T>, mut dx: ArrayViewMut2<'_, T>) {
    let w = dx.ncols();
    Zip::from(&mut dx)
        .and(&dy.slice(s![.., ..w]))
        .for_each(|d, &g| *d += g);
}

/// `out` = the rows of `x` with the one-hot code of `batch` appended as columns
/// `x.n_cols + batch[i]` (the code's `categories` columns widen the matrix).
pub fn append_one_hot<T: Scalar>(x: &Csr<T>, batch: &[u32], categories: usize, out: &mut Csr<T>) {
    assert!(batch.len() >= x.n_rows, "one batch id per row");
    out.n_rows = 0;
    out.n_cols = x.n_cols + categories;
    out.indptr.clear();
    out.indptr.push(0);
    out.indices.clear();
    out.data.clear();
    for (i, &c) in batch.iter().take(x.n_rows).enumerate() {
        let (cols, vals) = x.row(i);
        out.indices.extend_from_slice(cols);
        out.data.extend_from_slice(vals);
        out.indices.push((x.n_cols + c as usize) as u32);
        out.data.push(T::one());
        out.indptr.push(out.indices.len());
        out.n_rows += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::dense::Dense;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};
    use crate::engine::rng::{stream, Stream};
    use crate::engine::Activation;
    use ndarray::Array2;

    /// `δx` of `L = Σ (Dense([x, e_s]))²` against central differences in f64: the injection
    /// passes the layer's input gradient back to `x` and nothing else.
    #[test]
    fn gradcheck_covariates() {
        let (b, w, c) = (5, 3, 2);
        let x = random(b, w, 1.0, 1);
        let batch = [0u32, 1, 1, 0, 1];
        let layer = Dense::<f64>::new(w + c, 4, &mut stream(3, Stream::Init));
        let loss = |x: &Array2<f64>| {
            let mut y = Array2::zeros((b, w + c));
            forward(x.view(), &batch, y.view_mut());
            let mut out = Array2::zeros((b, 4));
            layer.forward(y.view(), out.view_mut(), Activation::Identity);
            (out.mapv(|v| v * v).sum(), y, out)
        };
        let (_, y, out) = loss(&x);
        assert_eq!(y.row(1).to_vec()[w..], [0.0, 1.0]);
        let mut layer_grads = layer.clone();
        let mut dy = Array2::zeros((b, w + c));
        layer_grads.backward(y.view(), (2.0 * &out).view(), Some(dy.view_mut()));
        let mut dx = Array2::zeros((b, w));
        backward(dy.view(), dx.view_mut());
        let mut probe = x.clone();
        let err = check_slice(
            x.clone().as_slice_mut().unwrap(),
            dx.as_slice().unwrap(),
            |_| 1e-6,
            |v| {
                probe.as_slice_mut().unwrap().copy_from_slice(v);
                loss(&probe).0
            },
        );
        assert!(err < TOLERANCE, "δx {err:e}");
    }

    #[test]
    fn one_hot_columns_follow_the_genes() {
        let x = Csr::from_dense(&ndarray::array![[0.0f32, 2.0], [3.0, 0.0]]);
        let mut out = Csr::with_cols(0);
        append_one_hot(&x, &[2, 0], 3, &mut out);
        assert_eq!(
            out.to_dense(),
            ndarray::array![[0.0, 2.0, 0.0, 0.0, 1.0], [3.0, 0.0, 1.0, 0.0, 0.0]]
        );
    }
}
