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
    /// The smallest positive normal number; below it, numbers are subnormal.
    const MIN_POSITIVE: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn is_finite(self) -> bool;
    /// The larger of the two; NaN when `self` is NaN (as `torch.maximum` and ReLU propagate
    /// it), so a diverged value is never silently replaced by `other`.
    fn max_s(self, other: Self) -> Self;
    /// The smaller of the two; NaN when `self` is NaN, as [`Scalar::max_s`].
    fn min_s(self, other: Self) -> Self;
    /// This slice as `f32`, when `Self` is `f32` (the hand-written AVX-512 kernels of
    /// [`super::gram`] are `f32`-only); `None` otherwise.
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    /// [`Scalar::as_f32`] for a mutable slice.
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;
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

/// Defines a function whose body is compiled three times, for AVX-512 (16 `f32` lanes), for
/// AVX2 (8 lanes) and for baseline x86-64 (SSE2), and which runs the widest version the CPU
/// has (checked at run time, so one binary runs on any x86-64 machine).
///
/// The engine's elementwise loops are plain Rust; compiled for a wider unit, the compiler
/// vectorises them wider. Each body given to this macro is lane-independent or keeps its own
/// fixed partial sums, and Rust never fuses a multiply and an add on its own, so the three
/// versions compute bit-identical results. (A closure handed to a `#[target_feature]`
/// function is compiled without the features unless the compiler chooses to inline it, which
/// it often does not for the loops that matter; a named function inlined with
/// `#[inline(always)]` always is.)
///
/// Form: `simd_fn! { /// docs \n pub fn name<T>(arg: Type, …) -> Ret { body } }`; `T` is bound
/// by [`Scalar`].
macro_rules! simd_fn {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident<$T:ident>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block
    ) => {
        $(#[$attr])*
        #[inline]
        $vis fn $name<$T: $crate::engine::Scalar>($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn portable<$T: $crate::engine::Scalar>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                fn avx512<$T: $crate::engine::Scalar>($($arg: $ty),*) $(-> $ret)? {
                    portable($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<$T: $crate::engine::Scalar>($($arg: $ty),*) $(-> $ret)? {
                    portable($($arg),*)
                }
                match $crate::engine::scalar::simd_level() {
                    // SAFETY: `simd_level` saw these features on this CPU.
                    $crate::engine::scalar::SimdLevel::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above.
                    $crate::engine::scalar::SimdLevel::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::engine::scalar::SimdLevel::Baseline => {}
                }
            }
            portable($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// The widest vector unit the engine's elementwise kernels (`simd_fn!`) run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdLevel {
    Avx512,
    Avx2,
    Baseline,
}

/// What this CPU offers (the standard library caches the detection, so this is cheap).
#[inline]
pub fn simd_level() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        // Every feature the AVX-512 versions are compiled with (`simd_fn!`), not only the
        // AVX-512 ones: a CPU (or a hypervisor's mask) could offer AVX-512F without FMA.
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
        {
            return SimdLevel::Avx512;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Baseline
}

simd_fn! {
    /// `y += a·x` over equal-length slices: the inner loop of the sparse products and of the
    /// scaled sums.
    pub fn axpy<T>(a: T, x: &[T], y: &mut [T]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += a * x;
        }
    }
}

simd_fn! {
    /// `y += x` over equal-length slices.
    pub fn add_into<T>(x: &[T], y: &mut [T]) {
        for (y, &x) in y.iter_mut().zip(x) {
            *y += x;
        }
    }
}

simd_fn! {
    /// `Σ a_k·b_k`, in sixteen partial sums kept in a fixed order (so the loop vectorises and
    /// the value never depends on the vector width), added up at the end. `dot(x, x)` is `Σ x²`.
    pub fn dot<T>(a: &[T], b: &[T]) -> T {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut lanes = [T::zero(); 16];
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (ca, cb) in ca.zip(cb) {
            for l in 0..16 {
                lanes[l] += ca[l] * cb[l];
            }
        }
        for (l, (&a, &b)) in ra.iter().zip(rb).enumerate() {
            lanes[l] += a * b;
        }
        lanes.iter().fold(T::zero(), |acc, &l| acc + l)
    }
}

/// `Some(s)`: [`Scalar::as_f32`] for `f32`.
fn same_f32(s: &[f32]) -> Option<&[f32]> {
    Some(s)
}

/// `Some(s)`: [`Scalar::as_f32_mut`] for `f32`.
fn same_f32_mut(s: &mut [f32]) -> Option<&mut [f32]> {
    Some(s)
}

/// `None`: [`Scalar::as_f32`] for other types.
fn not_f32<T>(_: &[T]) -> Option<&[f32]> {
    None
}

/// `None`: [`Scalar::as_f32_mut`] for other types.
fn not_f32_mut<T>(_: &mut [T]) -> Option<&mut [f32]> {
    None
}

macro_rules! impl_scalar {
    ($t:ty, $name:literal, $kernel:path, $as_f32:ident, $as_f32_mut:ident) => {
        impl Scalar for $t {
            const NAME: &'static str = $name;
            const MIN_POSITIVE: Self = <$t>::MIN_POSITIVE;
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
                if self > other || <$t>::is_nan(self) {
                    self
                } else {
                    other
                }
            }
            #[inline(always)]
            fn min_s(self, other: Self) -> Self {
                if self < other || <$t>::is_nan(self) {
                    self
                } else {
                    other
                }
            }
            #[inline(always)]
            fn as_f32(s: &[Self]) -> Option<&[f32]> {
                $as_f32(s)
            }
            #[inline(always)]
            fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]> {
                $as_f32_mut(s)
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

impl_scalar!(f32, "F32", matrixmultiply::sgemm, same_f32, same_f32_mut);
impl_scalar!(f64, "F64", matrixmultiply::dgemm, not_f32, not_f32_mut);

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels, run through the run-time dispatch (AVX-512 or AVX2 on a machine that has
    /// them), give bit for bit what plain loops with the same order of operations give.
    #[test]
    fn simd_kernels_match_plain_loops() {
        let n = 1037; // not a multiple of any vector width
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 37) % 101) as f32 * 0.0173 - 0.8)
            .collect();
        let y0: Vec<f32> = (0..n)
            .map(|i| ((i * 11) % 89) as f32 * 0.031 - 1.3)
            .collect();

        let mut y = y0.clone();
        axpy(0.37, &x, &mut y);
        let want: Vec<f32> = y0.iter().zip(&x).map(|(&y, &x)| y + 0.37 * x).collect();
        assert_eq!(y, want, "axpy");

        let mut y = y0.clone();
        add_into(&x, &mut y);
        let want: Vec<f32> = y0.iter().zip(&x).map(|(&y, &x)| y + x).collect();
        assert_eq!(y, want, "add_into");

        let mut lanes = [0.0f32; 16];
        for (k, (&a, &b)) in x.iter().zip(&y0).enumerate() {
            lanes[k % 16] += a * b;
        }
        let want = lanes.iter().fold(0.0f32, |s, &l| s + l);
        assert_eq!(dot(&x, &y0).to_bits(), want.to_bits(), "dot");
    }

    /// NaN in, NaN out, as in PyTorch: `max(NaN, 0)` must not come back as 0.
    #[test]
    fn max_and_min_propagate_nan() {
        assert!(f32::NAN.max_s(0.0).is_nan());
        assert!(f64::NAN.min_s(0.0).is_nan());
        assert_eq!(2.0f32.max_s(0.0), 2.0);
        assert_eq!((-2.0f64).max_s(0.0), 0.0);
        assert_eq!(2.0f64.min_s(0.0), 0.0);
        assert_eq!((-2.0f32).min_s(0.0), -2.0);
    }
}
