//! Finite-difference gradient checking, the test every layer and loss must pass.
//!
//! Fourth-order central differences:
//! `n_i = (−f(x + 2h·e_i) + 8 f(x + h·e_i) − 8 f(x − h·e_i) + f(x − 2h·e_i)) / 12h`,
//! whose truncation error is `O(h⁴·f⁽⁵⁾)` and whose rounding error is `O(ε_mach·|f| / h)`. In
//! f64 with `h = 1e-5`, both stay near 1e-10 for the O(1)–O(100) losses of the tests (the
//! plain two-point stencil, `O(h²)`, needs a smaller `h` and then drowns in rounding on deep
//! networks whose gradients are ~1e-4).
//!
//! The error of one entry is `|a − n| / max(|a|, |n|, FLOOR)` with `a` the analytic gradient:
//! relative where the gradient is sizeable, absolute (scaled by `1/FLOOR`) where it is near
//! zero, so that an exactly-zero gradient (a dead ReLU, a clamped spike) must also come out as
//! zero numerically. The tests require the maximum over all entries to stay below 1e-6.

/// Denominator floor of the error formula (see the module docs).
pub const FLOOR: f64 = 1e-3;

/// Largest error any gradient check may report.
pub const TOLERANCE: f64 = 1e-6;

/// Numeric gradient of a function of `n` coordinates. `eval(i, δ)` must return the function's
/// value with coordinate `i` moved by `δ` (and leave it restored afterwards); `h(i)` is the step
/// for coordinate `i` (smaller near a kink such as `min(s, 0)`, so that the stencil, which
/// reaches `±2h`, does not straddle it).
pub fn numeric_gradient(
    n: usize,
    h: impl Fn(usize) -> f64,
    mut eval: impl FnMut(usize, f64) -> f64,
) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let hi = h(i);
            // Differences first, so that a function that does not move gives exactly 0.
            let near = eval(i, hi) - eval(i, -hi);
            let far = eval(i, 2.0 * hi) - eval(i, -2.0 * hi);
            (8.0 * near - far) / (12.0 * hi)
        })
        .collect()
}

/// Maximum over entries of `|a − n| / max(|a|, |n|, FLOOR)`.
pub fn max_error(analytic: &[f64], numeric: &[f64]) -> f64 {
    assert_eq!(analytic.len(), numeric.len());
    analytic
        .iter()
        .zip(numeric)
        .map(|(&a, &n)| (a - n).abs() / a.abs().max(n.abs()).max(FLOOR))
        .fold(0.0, f64::max)
}

/// Checks the gradient of `f` at `x` (one flat tensor) against `analytic` and returns the error.
pub fn check_slice(
    x: &mut [f64],
    analytic: &[f64],
    h: impl Fn(usize) -> f64,
    mut f: impl FnMut(&[f64]) -> f64,
) -> f64 {
    let numeric = numeric_gradient(x.len(), h, |i, d| {
        let old = x[i];
        x[i] = old + d;
        let v = f(x);
        x[i] = old;
        v
    });
    max_error(analytic, &numeric)
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Small random tensors and shared checks for the per-layer tests.
    use super::check_slice;
    use crate::engine::dense::Dense;
    use crate::engine::rng::{stream, Stream};
    use ndarray::Array2;
    use rand::Rng;

    /// A `rows × cols` matrix with entries uniform in `[-scale, scale)`, seeded.
    pub fn random(rows: usize, cols: usize, scale: f64, seed: u64) -> Array2<f64> {
        let mut rng = stream(seed, Stream::Init);
        Array2::from_shape_fn((rows, cols), |_| rng.random_range(-scale..scale))
    }

    /// Errors of a dense layer's `∂W` and `∂b` (read from its gradient buffers) against finite
    /// differences (step `h`) of `loss`, evaluated on a copy of the layer with one value moved.
    pub fn check_dense_params(
        layer: &Dense<f64>,
        h: f64,
        loss: impl Fn(&Dense<f64>) -> f64,
    ) -> (f64, f64) {
        let mut probe = layer.clone();
        let mut w = layer.weight.clone();
        let err_w = check_slice(
            w.as_slice_mut().unwrap(),
            layer.dweight.as_slice().unwrap(),
            |_| h,
            |v| {
                probe.weight.as_slice_mut().unwrap().copy_from_slice(v);
                loss(&probe)
            },
        );
        let mut probe = layer.clone();
        let mut b = layer.bias.clone();
        let err_b = check_slice(
            b.as_slice_mut().unwrap(),
            layer.dbias.as_slice().unwrap(),
            |_| h,
            |v| {
                probe.bias.as_slice_mut().unwrap().copy_from_slice(v);
                loss(&probe)
            },
        );
        (err_w, err_b)
    }
}
