//! The floating-point type the engine is generic over.
//!
//! Training runs in `f32`; every gradient check runs the *same code* in `f64`, so finite
//! differences are accurate to ~1e-10 and a wrong formula cannot hide behind rounding.

use ndarray::{LinalgScalar, ScalarOperand};
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, Neg, SubAssign};

/// `f32` or `f64`: the arithmetic the layers need, plus the matching matrixmultiply kernel.
pub trait Scalar:
    LinalgScalar
    + ScalarOperand
    + Debug
    + Display
    + Default
    + PartialOrd
    + Send
    + Sync
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Neg<Output = Self>
    + Sum
{
    /// Short name written into checkpoints (`"F32"` / `"F64"`).
    const NAME: &'static str;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn is_finite(self) -> bool;
    fn max_s(self, other: Self) -> Self;
    fn min_s(self, other: Self) -> Self;
    /// `C ← α·A·B + β·C` on raw strided storage (matrixmultiply's `sgemm` / `dgemm`).
    ///
    /// # Safety
    /// The pointers and strides must describe valid `m×k`, `k×n` and `m×n` matrices, and
    /// `c` must not alias `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

/// Runs `f` compiled for AVX2 when the CPU has it (checked at run time, so the binary still
/// runs on any x86-64). The elementwise loops of the engine are plain Rust; inside `f` the
/// compiler may use 256-bit vectors for them. Rust never fuses a multiply and an add on its
/// own, so both paths compute bit-identical results.
#[inline(always)]
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { run(f) };
        }
    }
    f()
}

/// `y += a·x` over equal-length slices: the inner loop of the sparse products, written on
/// plain slices so that it compiles to a tight SIMD loop.
#[inline(always)]
pub fn axpy<T: Scalar>(a: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `y += x` over equal-length slices.
#[inline(always)]
pub fn add_into<T: Scalar>(x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += x;
    }
}

macro_rules! impl_scalar {
    ($t:ty, $name:literal, $kernel:path) => {
        impl Scalar for $t {
            const NAME: &'static str = $name;
            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline(always)]
            fn max_s(self, other: Self) -> Self {
                if self > other {
                    self
                } else {
                    other
                }
            }
            #[inline(always)]
            fn min_s(self, other: Self) -> Self {
                if self < other {
                    self
                } else {
                    other
                }
            }
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded from the caller's contract.
                unsafe { $kernel(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}

impl_scalar!(f32, "F32", matrixmultiply::sgemm);
impl_scalar!(f64, "F64", matrixmultiply::dgemm);
