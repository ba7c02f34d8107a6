//! The one matrix product every layer goes through.
//!
//! `C ← α·A·B + β·C`, with `A: (m, k)`, `B: (k, n)`, `C: (m, n)` as ndarray views. A transposed
//! operand is just a transposed view (`w.t()`): matrixmultiply takes arbitrary strides, so no
//! copy is ever made.
//!
//! Parallelism: the output is cut into as many blocks as rayon has threads, along its longer
//! side (rows of `C` with the matching rows of `A`, or columns of `C` with the matching columns
//! of `B`), and each block is one single-threaded matrixmultiply call on that core. Every output
//! element is still summed over the whole of `k` in the same order, so the result is
//! bit-identical whatever the thread count (a test checks it).

use super::scalar::Scalar;
use ndarray::parallel::prelude::*;
use ndarray::{ArrayView2, ArrayViewMut2, Axis};

/// Below this many multiply-adds a product stays on one core: splitting costs more than it saves.
const PARALLEL_MIN_WORK: usize = 1 << 18;

/// `C ← α·A·B + β·C`. Shapes must agree; with `β = 0` the old content of `C` is ignored.
pub fn gemm<T: Scalar>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    mut c: ArrayViewMut2<'_, T>,
) {
    let (m, k) = a.dim();
    let (kb, n) = b.dim();
    assert_eq!(k, kb, "gemm: inner dimensions differ ({m}x{k} by {kb}x{n})");
    assert_eq!(c.dim(), (m, n), "gemm: output shape");
    if m == 0 || n == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    if threads == 1 || m * n * k < PARALLEL_MIN_WORK {
        gemm_serial(alpha, a, b, beta, c.view_mut());
        return;
    }
    if m >= n {
        let chunk = m.div_ceil(threads).max(8);
        c.axis_chunks_iter_mut(Axis(0), chunk)
            .into_par_iter()
            .zip(a.axis_chunks_iter(Axis(0), chunk).into_par_iter())
            .for_each(|(c_block, a_block)| gemm_serial(alpha, a_block, b, beta, c_block));
    } else {
        let chunk = n.div_ceil(threads).max(8);
        c.axis_chunks_iter_mut(Axis(1), chunk)
            .into_par_iter()
            .zip(b.axis_chunks_iter(Axis(1), chunk).into_par_iter())
            .for_each(|(c_block, b_block)| gemm_serial(alpha, a, b_block, beta, c_block));
    }
}

/// One matrixmultiply call on the calling thread.
fn gemm_serial<T: Scalar>(
    alpha: T,
    a: ArrayView2<'_, T>,
    b: ArrayView2<'_, T>,
    beta: T,
    mut c: ArrayViewMut2<'_, T>,
) {
    let (m, k) = a.dim();
    let n = b.dim().1;
    let (sa, sb, sc) = (a.strides(), b.strides(), c.strides());
    let (rsc, csc) = (sc[0], sc[1]);
    // SAFETY: the views guarantee that each pointer with its strides addresses an m×k, k×n and
    // m×n matrix, and `c` is borrowed mutably so it cannot alias `a` or `b`.
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            sa[0],
            sa[1],
            b.as_ptr(),
            sb[0],
            sb[1],
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let (m, k) = a.dim();
        let n = b.dim().1;
        Array2::from_shape_fn((m, n), |(i, j)| (0..k).map(|p| a[[i, p]] * b[[p, j]]).sum())
    }

    #[test]
    fn gemm_matches_naive_with_transposes_and_beta() {
        let a = Array2::from_shape_fn((70, 130), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let b = Array2::from_shape_fn((90, 130), |(i, j)| ((i * 5 + j) % 13) as f64 * 0.25);
        let want = naive(&a, &b.t().to_owned());
        let mut c = Array2::from_elem((70, 90), 1.0);
        gemm(2.0, a.view(), b.t(), 3.0, c.view_mut());
        for ((i, j), v) in c.indexed_iter() {
            assert!((v - (2.0 * want[[i, j]] + 3.0)).abs() < 1e-9);
        }
    }

    #[test]
    fn gemm_is_identical_across_thread_counts() {
        let a = Array2::from_shape_fn((300, 257), |(i, j)| {
            ((i * 31 + j * 17) % 97) as f32 * 0.013 - 0.6
        });
        let b = Array2::from_shape_fn((257, 1003), |(i, j)| {
            ((i * 13 + j * 7) % 89) as f32 * 0.021 - 0.9
        });
        let run = |threads: usize, a: &Array2<f32>, b: &Array2<f32>| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = Array2::<f32>::zeros((a.dim().0, b.dim().1));
            pool.install(|| gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()));
            c
        };
        let one = run(1, &a, &b);
        for t in [2, 3, 7] {
            assert_eq!(one, run(t, &a, &b), "{t} threads");
        }
        // The other split direction (m < n handled above; now m > n).
        let bt = b.t().to_owned();
        let at = a.t().to_owned();
        assert_eq!(run(1, &bt, &at), run(5, &bt, &at));
    }
}
