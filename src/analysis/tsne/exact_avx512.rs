//! The exact t-SNE row sums ([`super::exact::blocks`]) written with AVX-512 intrinsics: one
//! 16-lane register per running sum, so a block of [`LANES`] points is one pass of vector
//! instructions. Each lane does the operations of the portable code in the same order (the
//! differences, `d² = Σ_d diff²`, the kernel, `pu = p·u`, `wu = w·u`, then the sums), with
//! no fused multiply-adds, so the result is the same bits: `avx512_blocks_match_portable`
//! checks it. (The portable loops, compiled for AVX-512, vectorised well or badly depending on
//! small changes to the source: 3× apart in 2-D and 3-D on the same machine.)

use super::exact::{Lanes, LANES};
use std::arch::x86_64::*;

/// [`Lanes`] of point `i` over `p_full` (a multiple of [`LANES`] points).
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn blocks<const D: usize, const NU1: bool>(
    i: usize,
    y: &[Vec<f32>; D],
    p_full: &[f32],
) -> Lanes<D> {
    const _: () = assert!(LANES == 16, "one AVX-512 register holds LANES f32 values");
    let n = p_full.len();
    assert!(n.is_multiple_of(LANES) && y.iter().all(|yd| yd.len() >= n));
    let yi: [__m512; D] = std::array::from_fn(|d| _mm512_set1_ps(y[d][i]));
    let (one, half) = (_mm512_set1_ps(1.0), _mm512_set1_ps(0.5));
    let mut attr = [_mm512_setzero_ps(); D];
    let mut rep = [_mm512_setzero_ps(); D];
    let mut z = _mm512_setzero_ps();
    for base in (0..n).step_by(LANES) {
        // SAFETY: `base + LANES <= n`, and every `y[d]` holds at least `n` values (asserted).
        let p = unsafe { _mm512_loadu_ps(p_full.as_ptr().add(base)) };
        let diff: [__m512; D] = std::array::from_fn(|d| {
            // SAFETY: as above.
            _mm512_sub_ps(yi[d], unsafe { _mm512_loadu_ps(y[d].as_ptr().add(base)) })
        });
        let mut d2 = _mm512_setzero_ps();
        for diff in &diff {
            d2 = _mm512_add_ps(d2, _mm512_mul_ps(*diff, *diff));
        }
        let (w, u) = if NU1 {
            // u = w = 1 / (1 + d²)
            let u = _mm512_div_ps(one, _mm512_add_ps(one, d2));
            (u, u)
        } else {
            // u = 1 / (1 + d²/2), w = u·√u
            let u = _mm512_div_ps(one, _mm512_add_ps(one, _mm512_mul_ps(half, d2)));
            (_mm512_mul_ps(u, _mm512_sqrt_ps(u)), u)
        };
        z = _mm512_add_ps(z, w);
        let (pu, wu) = (_mm512_mul_ps(p, u), _mm512_mul_ps(w, u));
        for d in 0..D {
            attr[d] = _mm512_add_ps(attr[d], _mm512_mul_ps(pu, diff[d]));
            rep[d] = _mm512_add_ps(rep[d], _mm512_mul_ps(wu, diff[d]));
        }
    }
    let lanes = |v: __m512| {
        let mut out = [0.0f32; LANES];
        // SAFETY: `out` holds LANES f32 values.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), v) };
        out
    };
    Lanes {
        attr: std::array::from_fn(|d| lanes(attr[d])),
        rep: std::array::from_fn(|d| lanes(rep[d])),
        z: lanes(z),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tsne::exact;
    use crate::engine::gradcheck::fixtures::random;

    fn assert_same_bits<const D: usize>(fast: &Lanes<D>, slow: &Lanes<D>, what: &str) {
        let bits = |v: &[f32; LANES]| v.map(f32::to_bits);
        assert_eq!(bits(&fast.z), bits(&slow.z), "{what}: Σw");
        for d in 0..D {
            assert_eq!(
                bits(&fast.attr[d]),
                bits(&slow.attr[d]),
                "{what}: attraction"
            );
            assert_eq!(bits(&fast.rep[d]), bits(&slow.rep[d]), "{what}: repulsion");
        }
    }

    /// Same bits as the portable loops, in 2-D (ν = 1) and 3-D (ν = 2), on a row of several
    /// blocks. Skipped without AVX-512.
    #[test]
    fn avx512_blocks_match_portable() {
        if !std::is_x86_feature_detected!("avx512f") {
            eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        }
        let n = 7 * LANES;
        let y = random(n, 3, 5.0, 31);
        let p: Vec<f32> = random(1, n, 1.0, 32)
            .iter()
            .map(|v| v.abs() as f32 * 1e-3)
            .collect();
        let coords = |d: usize| (0..n).map(|j| y[[j, d]] as f32).collect::<Vec<f32>>();
        let y2: [Vec<f32>; 2] = std::array::from_fn(coords);
        let y3: [Vec<f32>; 3] = std::array::from_fn(coords);
        for i in [0, 17, n - 1] {
            // SAFETY: AVX-512F was detected above.
            let fast2 = unsafe { blocks::<2, true>(i, &y2, &p) };
            assert_same_bits(&fast2, &exact::blocks::<2, true>(i, &y2, &p), "2-D");
            // SAFETY: as above.
            let fast3 = unsafe { blocks::<3, false>(i, &y3, &p) };
            assert_same_bits(&fast3, &exact::blocks::<3, false>(i, &y3, &p), "3-D");
        }
    }
}
