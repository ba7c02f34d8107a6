//! ReLU and identity activations, fused with the bias add of the layer before them.
//!
//! Shapes: `y: (B, n)`, `b: (n)`.
//!
//! Forward (in place, after `y = x·Wᵀ`):  `y ← act(y + 1·bᵀ)` with `relu(a) = max(a, 0)`.
//!
//! Backward (in place): `δa = δy ⊙ 1[a > 0]` for ReLU, `δa = δy` for identity. The mask is
//! read back from the kept forward output (`y > 0 ⇔ a > 0`), so nothing extra is stored. At
//! `a = 0` exactly the gradient is 0, and `relu(NaN) = NaN`, as in PyTorch.

use super::scalar::{simd_fn, Scalar};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Zip};

/// Elementwise passes smaller than this stay on one core.
pub(crate) const PARALLEL_MIN_LEN: usize = 1 << 15;

/// The activation after a linear layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Relu,
}

impl Activation {
    /// `"none"` or `"relu"`, as on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "none",
            Activation::Relu => "relu",
        }
    }

    /// Parses [`Activation::name`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" | "identity" | "linear" => Some(Activation::Identity),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }
}

/// Forward: `y ← act(y + b)` row by row.
pub fn bias_act_forward<T: Scalar>(
    mut y: ArrayViewMut2<'_, T>,
    b: ArrayView1<'_, T>,
    act: Activation,
) {
    let b = b.as_standard_layout();
    let b = b.as_slice().expect("standard layout");
    let apply = |mut row: ndarray::ArrayViewMut1<'_, T>| match row.as_slice_mut() {
        Some(row) => bias_act_row(row, b, act),
        None => {
            let mut owned = row.to_vec();
            bias_act_row(&mut owned, b, act);
            row.assign(&ndarray::ArrayView1::from(&owned));
        }
    };
    if y.len() >= PARALLEL_MIN_LEN {
        Zip::from(y.rows_mut()).par_for_each(apply);
    } else {
        y.rows_mut().into_iter().for_each(apply);
    }
}

simd_fn! {
    /// `y ← act(y + b)` on one row.
    fn bias_act_row<T>(y: &mut [T], b: &[T], act: Activation) {
        let zero = T::zero();
        match act {
            Activation::Identity => y.iter_mut().zip(b).for_each(|(v, &bias)| *v += bias),
            Activation::Relu => y
                .iter_mut()
                .zip(b)
                .for_each(|(v, &bias)| *v = (*v + bias).max_s(zero)),
        }
    }
}

/// Forward without a bias, in place: `y ← act(y)` (after a BatchNorm).
pub fn act_forward<T: Scalar>(mut y: ArrayViewMut2<'_, T>, act: Activation) {
    if act == Activation::Relu {
        let zero = T::zero();
        y.mapv_inplace(|v| v.max_s(zero));
    }
}

/// Backward: `δy ← δy ⊙ act′(a)`, the mask taken from the forward output `y`.
pub fn act_backward<T: Scalar>(
    y: ArrayView2<'_, T>,
    mut dy: ArrayViewMut2<'_, T>,
    act: Activation,
) {
    if act == Activation::Identity {
        return;
    }
    let zero = T::zero();
    let mask = |d: &mut T, &y: &T| {
        if y <= zero {
            *d = zero;
        }
    };
    if y.len() >= PARALLEL_MIN_LEN {
        Zip::from(&mut dy).and(&y).par_for_each(mask);
    } else {
        Zip::from(&mut dy).and(&y).for_each(mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};
    use ndarray::Array2;

    /// L = Σ w ⊙ relu(a + b), checked against finite differences in `a` and `b`.
    #[test]
    fn gradcheck_relu() {
        let a0 = random(5, 7, 1.0, 1);
        let b0 = random(1, 7, 0.5, 2).row(0).to_owned();
        let w = random(5, 7, 1.0, 3);
        let loss = |a: &Array2<f64>, b: &ndarray::Array1<f64>| {
            let mut y = a.clone();
            bias_act_forward(y.view_mut(), b.view(), Activation::Relu);
            (&y * &w).sum()
        };
        let mut y = a0.clone();
        bias_act_forward(y.view_mut(), b0.view(), Activation::Relu);
        let mut da = w.clone();
        act_backward(y.view(), da.view_mut(), Activation::Relu);
        let db = da.sum_axis(ndarray::Axis(0));
        let mut a = a0.clone();
        let err_a = check_slice(
            a.as_slice_mut().unwrap(),
            da.as_slice().unwrap(),
            |_| 1e-6,
            |x| loss(&Array2::from_shape_vec((5, 7), x.to_vec()).unwrap(), &b0),
        );
        let mut b = b0.clone();
        let err_b = check_slice(
            b.as_slice_mut().unwrap(),
            db.as_slice().unwrap(),
            |_| 1e-6,
            |x| loss(&a0, &ndarray::Array1::from(x.to_vec())),
        );
        assert!(err_a < TOLERANCE && err_b < TOLERANCE, "{err_a} {err_b}");
        // Both signs occurred, so the mask was exercised.
        assert!(y.iter().any(|&v| v == 0.0) && y.iter().any(|&v| v > 0.0));
    }

    #[test]
    fn relu_gradient_is_zero_at_zero() {
        let y = Array2::<f64>::zeros((1, 1));
        let mut dy = Array2::<f64>::ones((1, 1));
        act_backward(y.view(), dy.view_mut(), Activation::Relu);
        assert_eq!(dy[[0, 0]], 0.0);
    }

    /// `relu(NaN) = NaN`, as in PyTorch: a diverged layer must not turn into a dead one
    /// behind a finite loss. Both the short serial pass and the long parallel one.
    #[test]
    fn relu_propagates_nan() {
        for rows in [1, 2 * PARALLEL_MIN_LEN / 7 + 1] {
            let mut y = Array2::<f32>::from_elem((rows, 7), -1.0);
            y[[rows - 1, 3]] = f32::NAN;
            bias_act_forward(
                y.view_mut(),
                ndarray::Array1::zeros(7).view(),
                Activation::Relu,
            );
            assert!(y[[rows - 1, 3]].is_nan(), "{rows} rows");
            assert_eq!(y[[0, 0]], 0.0);
        }
    }
}
