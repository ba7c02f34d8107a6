//! The two dense products of the Gram form ([`super::output_mse`]), written for their shapes.
//!
//! - [`gram_and_wtb`]: `C ← WᵀW` for `W: (d, n)` (`d` genes, `n` = 128 hidden units in
//!   `paper`). `C` is symmetric, so only its tiles on and above the diagonal are computed and
//!   the rest is mirrored: 10/16 of the flops of a general product at `n = 128`. Both operands
//!   of a tile are consecutive values of the same row of `W`, so `W` is read where it lies,
//!   not packed; `Wᵀb` is summed in the same pass.
//! - [`add_band_product`]: `C ← C + α·A·G` for a band of rows of `A`, so that `output_mse` can
//!   compute `∂W += 2r·W·(HᵀH)` inside its per-gene pass, while that band of `W` and `∂W` is
//!   in cache, instead of in a pass of its own over both.
//!
//! They run as AVX-512 kernels on `f32` (what training uses); otherwise (`f64`, a CPU without
//! AVX-512, a width not a multiple of 32) they call [`gemm`], which computes the same.
//!
//! **Same bits as [`gemm`].** matrixmultiply's AVX-512 kernel computes each element of `A·B`
//! as a chain of fused multiply-adds in the order of the inner index, in blocks of [`KC`]
//! from zero, and folds each block's sum `s` into `C` as `α·s + C` with one more fused
//! multiply-add (the first block as `α·s` when `β = 0`). These kernels do exactly that per
//! element, so switching to them changed no trained number (the tests below compare bits).
//! One caveat: on tiles at the edge of a block matrixmultiply rounds `α·s` before adding
//! `C`; the two agree whenever `C` enters at zero, as `∂W` does in training, or `α` is a
//! power of two.
//!
//! Determinism: each element is computed by one task in a fixed order, whatever the number
//! of threads.

use super::gemm::gemm;
use super::scalar::{axpy, simd_level, Scalar, SimdLevel};
use ndarray::{ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// matrixmultiply's block of the inner index for `f32` (its `S_KC`): partial sums restart
/// from zero every `KC` terms.
pub const KC: usize = 256;

/// Rows of `C` per tile (and values of `Wᵀb` per tile row: one 256-bit register).
const TILE_ROWS: usize = 8;
/// Columns of `C` per tile: two AVX-512 registers of 16 `f32`.
const TILE_COLS: usize = 32;

/// Whether the AVX-512 kernels serve `T` and width `n` on this CPU.
fn fast<T: Scalar>(n: usize) -> bool {
    T::as_f32(&[]).is_some()
        && n > 0
        && n.is_multiple_of(TILE_COLS)
        && simd_level() == SimdLevel::Avx512
}

/// `C ← WᵀW` and `u ← Wᵀb` (`W: (d, n)`, `b: (d)`, `C: (n, n)`, `u: (n)`), in one pass over
/// `W`. `u` is summed down the genes in order with a separate multiply and add per term
/// (`u += b_g·W_g`), whatever the path.
pub fn gram_and_wtb<T: Scalar>(
    w: ArrayView2<'_, T>,
    b: &[T],
    mut c: ArrayViewMut2<'_, T>,
    u: &mut [T],
) {
    let (d, n) = w.dim();
    assert_eq!(c.dim(), (n, n), "gram: output shape");
    assert_eq!((b.len(), u.len()), (d, n), "gram: bias and Wᵀb lengths");
    u.fill(T::zero());
    #[cfg(target_arch = "x86_64")]
    if fast::<T>(n) && d > 0 {
        let w32 = w.to_slice().and_then(T::as_f32);
        let c32 = c.as_slice_mut().and_then(T::as_f32_mut);
        if let (Some(w32), Some(b32), Some(c32)) = (w32, T::as_f32(b), c32) {
            let u32 = T::as_f32_mut(u).expect("the same type as b");
            gram_f32(w32, b32, n, c32, u32);
            return;
        }
    }
    gemm(T::one(), w.t(), w, T::zero(), c);
    // Each thread takes a band of the columns; each sum still runs over the genes in order.
    let w = w.as_standard_layout();
    let w = w.as_slice().expect("standard layout");
    let band = n
        .div_ceil(rayon::current_num_threads())
        .next_multiple_of(16);
    u.par_chunks_mut(band).enumerate().for_each(|(k, u_band)| {
        let c0 = k * band;
        for (w_g, &b_g) in w.chunks_exact(n).zip(b) {
            axpy(b_g, &w_g[c0..c0 + u_band.len()], u_band);
        }
    });
}

#[cfg(target_arch = "x86_64")]
/// [`gram_and_wtb`] on row-major `f32` slices, `n` a multiple of [`TILE_COLS`], on AVX-512.
fn gram_f32(w: &[f32], b: &[f32], n: usize, c: &mut [f32], u: &mut [f32]) {
    // The further down a tile row, the fewer of its tiles lie on or above the diagonal;
    // pairing tile row `p` with row `blocks − 1 − p` gives the pairs equal work. Each task
    // takes whole pairs (with their columns of `u`) and reads `W` once, block by block.
    let blocks = n / TILE_ROWS;
    let pairs = blocks.div_ceil(2);
    let tasks = rayon::current_num_threads().clamp(1, pairs);
    let mut tile_rows: Vec<Option<TileRow<'_>>> = c
        .chunks_mut(TILE_ROWS * n)
        .zip(u.chunks_mut(TILE_ROWS))
        .enumerate()
        .map(|(bi, (c, u))| Some(TileRow { bi, c, u }))
        .collect();
    let mut groups: Vec<Vec<TileRow<'_>>> = (0..tasks).map(|_| Vec::new()).collect();
    for p in 0..pairs {
        for bi in [p, blocks - 1 - p] {
            if let Some(row) = tile_rows[bi].take() {
                groups[p * tasks / pairs].push(row);
            }
        }
    }
    groups.into_par_iter().for_each(|mut group| {
        // SAFETY: `fast` saw AVX-512F on this CPU; `w` holds whole rows of `n` values, `b`
        // one value per row, and each tile row is `TILE_ROWS` rows of `c` and values of `u`.
        unsafe { avx512::upper_tiles(w, b, n, &mut group) }
    });
    for i in 0..n {
        for j in 0..i {
            c[i * n + j] = c[j * n + i];
        }
    }
}

#[cfg(target_arch = "x86_64")]
/// Rows `bi·TILE_ROWS ..` of `C` and the matching values of `u = Wᵀb`, owned by one task.
struct TileRow<'a> {
    bi: usize,
    c: &'a mut [f32],
    u: &'a mut [f32],
}

/// Whether [`add_band_product`] runs its own kernel for `T` and width `n` (and so is worth
/// calling band by band rather than one [`gemm`] over all the rows).
pub fn band_product_is_fused<T: Scalar>(n: usize) -> bool {
    fast::<T>(n)
}

/// `C ← C + α·A·G`: `A: (rows, k)`, `G: (k, n)`, `C: (rows, n)`, all row-major slices.
/// Single-threaded: it is meant for one band of rows inside a parallel pass.
pub fn add_band_product<T: Scalar>(alpha: T, a: &[T], g: &[T], k: usize, n: usize, c: &mut [T]) {
    assert!(k > 0 && a.len().is_multiple_of(k), "band product: A's rows");
    let rows = a.len() / k;
    assert_eq!(g.len(), k * n, "band product: G's shape");
    assert_eq!(c.len(), rows * n, "band product: C's shape");
    #[cfg(target_arch = "x86_64")]
    if fast::<T>(n) {
        let alpha = [alpha];
        let f32s = (T::as_f32(a), T::as_f32(g), T::as_f32(&alpha));
        if let (Some(a), Some(g), Some(&[alpha])) = f32s {
            let c = T::as_f32_mut(c).expect("the same type as a");
            band_f32(alpha, a, g, k, n, c);
            return;
        }
    }
    let a = ArrayView2::from_shape((rows, k), a).expect("shape checked above");
    let g = ArrayView2::from_shape((k, n), g).expect("shape checked above");
    let c = ArrayViewMut2::from_shape((rows, n), c).expect("shape checked above");
    gemm(alpha, a, g, T::one(), c);
}

#[cfg(target_arch = "x86_64")]
/// [`add_band_product`] on AVX-512: the rows in whole tiles, then the last few rows through
/// a zero-padded copy (the padding rows compute zeros that are dropped).
fn band_f32(alpha: f32, a: &[f32], g: &[f32], k: usize, n: usize, c: &mut [f32]) {
    let full = a.len() / k / TILE_ROWS * TILE_ROWS;
    let (a_full, a_tail) = a.split_at(full * k);
    let (c_full, c_tail) = c.split_at_mut(full * n);
    if full > 0 {
        // SAFETY: `fast` saw AVX-512F; `full` rows of `k` and of `n`, a multiple of TILE_ROWS.
        unsafe { avx512::band(alpha, a_full, g, k, n, c_full) };
    }
    if !a_tail.is_empty() {
        let mut a_pad = vec![0.0; TILE_ROWS * k];
        let mut c_pad = vec![0.0; TILE_ROWS * n];
        a_pad[..a_tail.len()].copy_from_slice(a_tail);
        c_pad[..c_tail.len()].copy_from_slice(c_tail);
        // SAFETY: as above, on one padded tile of rows.
        unsafe { avx512::band(alpha, &a_pad, g, k, n, &mut c_pad) };
        c_tail.copy_from_slice(&c_pad[..c_tail.len()]);
    }
}

#[cfg(target_arch = "x86_64")]
/// The kernels. Each keeps an 8 × 32 tile of sums in sixteen registers (two per tile row) and
/// adds, per step of the inner index, the 32 values of a row of `B` times 8 broadcast values of
/// `A`: ten loads for sixteen multiply-adds. (Measured against 16 × 16 tiles, matrixmultiply's
/// shape, which need seventeen loads for sixteen: `WᵀW` 1.29 → 1.17 ms, the band product
/// 1.91 → 1.60 ms over all `paper` genes; 4 × 64 tiles were no faster.)
mod avx512 {
    use super::{TileRow, KC, TILE_COLS, TILE_ROWS};
    use std::arch::x86_64::*;

    /// Registers per tile row.
    const V: usize = TILE_COLS / 16;

    /// One tile's sums, `TILE_ROWS` rows of `V` registers.
    type Sums = [[__m512; V]; TILE_ROWS];

    /// `sum += Σ_k a_k·b_k` over the steps `k` of one block, where step `k` gives the tile's
    /// `TILE_ROWS` values of `A` (`a(k, r)`) and points at its `TILE_COLS` values of `B`.
    ///
    /// # Safety
    /// AVX-512F; every `b(k)` points at `TILE_COLS` readable values.
    #[inline(always)]
    unsafe fn accumulate(
        sum: &mut Sums,
        steps: std::ops::Range<usize>,
        a: impl Fn(usize, usize) -> f32,
        b: impl Fn(usize) -> *const f32,
    ) {
        for k in steps {
            let bk = b(k);
            // SAFETY: the caller's contract on `b`.
            let bv: [__m512; V] =
                std::array::from_fn(|v| unsafe { _mm512_loadu_ps(bk.add(16 * v)) });
            for (r, s) in sum.iter_mut().enumerate() {
                let ar = _mm512_set1_ps(a(k, r));
                for (s, &bv) in s.iter_mut().zip(&bv) {
                    *s = _mm512_fmadd_ps(ar, bv, *s);
                }
            }
        }
    }

    /// The tiles on and above the diagonal of `WᵀW` in the given tile rows, and their
    /// columns of `u = Wᵀb`, block of [`KC`] genes by block, so that a block of `W` comes from
    /// memory once and then from cache for every tile.
    ///
    /// # Safety
    /// AVX-512F; `w.len()` a multiple of `n`, `b` one value per row of `w`, `n` a multiple of
    /// `TILE_COLS`, each tile row `TILE_ROWS · n` values of `C` and `TILE_ROWS` of `u`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn upper_tiles(
        w: &[f32],
        b: &[f32],
        n: usize,
        tile_rows: &mut [TileRow<'_>],
    ) {
        let d = w.len() / n;
        assert!(b.len() == d);
        assert!(tile_rows
            .iter()
            .all(|t| t.c.len() == TILE_ROWS * n && t.u.len() == TILE_ROWS));
        for k0 in (0..d).step_by(KC) {
            let k1 = (k0 + KC).min(d);
            // u += b_g·W_g on the task's columns, genes in order (as `axpy` does); the tile
            // rows are independent chains of adds, interleaved gene by gene.
            for (row, &b_g) in w[k0 * n..k1 * n].chunks_exact(n).zip(&b[k0..k1]) {
                let b_g = _mm256_set1_ps(b_g);
                for TileRow { bi, u, .. } in tile_rows.iter_mut() {
                    // SAFETY: `TILE_ROWS` = 8 values of the row from `bi·8 < n`, and of `u`.
                    let w_g = unsafe { _mm256_loadu_ps(row.as_ptr().add(*bi * TILE_ROWS)) };
                    let u_old = unsafe { _mm256_loadu_ps(u.as_ptr()) };
                    let u_new = _mm256_add_ps(u_old, _mm256_mul_ps(b_g, w_g));
                    unsafe { _mm256_storeu_ps(u.as_mut_ptr(), u_new) };
                }
            }
            for TileRow { bi, c, .. } in tile_rows.iter_mut() {
                let i0 = *bi * TILE_ROWS;
                // From the tile of columns that holds the diagonal element (i0, i0).
                for j0 in (i0 / TILE_COLS * TILE_COLS..n).step_by(TILE_COLS) {
                    let mut sum = [[_mm512_setzero_ps(); V]; TILE_ROWS];
                    // SAFETY: `g < d`, `i0 + r < n` and `j0 + TILE_COLS <= n`: inside `w`.
                    let a = |g: usize, r: usize| unsafe { *w.get_unchecked(g * n + i0 + r) };
                    let b = |g: usize| unsafe { w.as_ptr().add(g * n + j0) };
                    unsafe { accumulate(&mut sum, k0..k1, a, b) };
                    for (r, s) in sum.iter().enumerate() {
                        for (v, s) in s.iter().enumerate() {
                            // SAFETY: row `r` of the tile row, 16 columns from `j0 + 16v < n`.
                            let out = unsafe { c.as_mut_ptr().add(r * n + j0 + 16 * v) };
                            let total = if k0 == 0 {
                                *s
                            } else {
                                // matrixmultiply's `1·s + 1·C`: one rounding, as an add.
                                _mm512_add_ps(unsafe { _mm512_loadu_ps(out) }, *s)
                            };
                            unsafe { _mm512_storeu_ps(out, total) };
                        }
                    }
                }
            }
        }
    }

    /// `C ← C + α·A·G` for rows in whole tiles: `a` is `rows × k`, `g` is `k × n`, `c` is
    /// `rows × n`, row-major, `rows` a multiple of `TILE_ROWS`.
    ///
    /// # Safety
    /// AVX-512F; the slices have those lengths and `n` is a multiple of `TILE_COLS`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn band(alpha: f32, a: &[f32], g: &[f32], k: usize, n: usize, c: &mut [f32]) {
        let rows = a.len() / k;
        assert!(rows.is_multiple_of(TILE_ROWS) && g.len() == k * n && c.len() == rows * n);
        let alpha = _mm512_set1_ps(alpha);
        for i0 in (0..rows).step_by(TILE_ROWS) {
            for j0 in (0..n).step_by(TILE_COLS) {
                for k0 in (0..k).step_by(KC) {
                    let mut sum = [[_mm512_setzero_ps(); V]; TILE_ROWS];
                    // SAFETY: `kk < k`, `i0 + r < rows`, `j0 + TILE_COLS <= n`.
                    let ak = |kk: usize, r: usize| unsafe { *a.get_unchecked((i0 + r) * k + kk) };
                    let bk = |kk: usize| unsafe { g.as_ptr().add(kk * n + j0) };
                    unsafe { accumulate(&mut sum, k0..(k0 + KC).min(k), ak, bk) };
                    for (r, s) in sum.iter().enumerate() {
                        for (v, s) in s.iter().enumerate() {
                            // SAFETY: row `i0 + r`, 16 columns from `j0 + 16v < n`.
                            let out = unsafe { c.as_mut_ptr().add((i0 + r) * n + j0 + 16 * v) };
                            let total = _mm512_fmadd_ps(alpha, *s, unsafe { _mm512_loadu_ps(out) });
                            unsafe { _mm512_storeu_ps(out, total) };
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn random(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            let h = (i * 7919 + j * 104_729 + seed * 1_000_003) % 65_521;
            h as f32 / 65_521.0 * 2.0 - 1.0
        })
    }

    fn bits(a: &Array2<f32>) -> Vec<u32> {
        a.iter().map(|v| v.to_bits()).collect()
    }

    fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(f)
    }

    /// `Wᵀb` as the gene-ordered sum of `b_g·W_g` (a multiply, then an add, per term).
    fn wtb_in_gene_order(w: &Array2<f32>, b: &[f32]) -> Vec<u32> {
        let mut u = vec![0.0f32; w.ncols()];
        for (w_g, &b_g) in w.rows().into_iter().zip(b) {
            for (u, &w_gj) in u.iter_mut().zip(w_g) {
                *u += b_g * w_gj;
            }
        }
        u.iter().map(|v| v.to_bits()).collect()
    }

    /// `WᵀW` bit for bit as the general product and `Wᵀb` as the sum in gene order, for widths
    /// of 4, 3 and 1 column tiles (an even and an odd number of tile rows to pair), a `d` that
    /// ends in a partial block of [`KC`], and 1 to 3 threads. (Without AVX-512 the first is
    /// the general product.)
    #[test]
    fn gram_has_the_bits_of_gemm() {
        if simd_level() != SimdLevel::Avx512 {
            eprintln!("no AVX-512 here: gram is gemm");
        }
        for (d, n) in [(1000, 128), (300, 96), (17, 32)] {
            let w = random(d, n, n);
            let b: Vec<f32> = random(d, 1, 5).into_iter().collect();
            let mut want = Array2::from_elem((n, n), 9.0);
            with_threads(2, || gemm(1.0, w.t(), w.view(), 0.0, want.view_mut()));
            for threads in 1..=3 {
                let mut got = Array2::from_elem((n, n), -9.0);
                let mut u = vec![7.0; n];
                with_threads(threads, || {
                    gram_and_wtb(w.view(), &b, got.view_mut(), &mut u)
                });
                assert_eq!(bits(&got), bits(&want), "d {d}, n {n}, {threads} threads");
                let u: Vec<u32> = u.iter().map(|v| v.to_bits()).collect();
                assert_eq!(
                    u,
                    wtb_in_gene_order(&w, &b),
                    "Wᵀb: d {d}, n {n}, {threads} threads"
                );
            }
        }
    }

    /// The band product bit for bit as `gemm(α, A, G, 1, C)`: with `C` entering at zero and
    /// any `α` (as in training), and with `C` nonzero, `α = 1` and `k` over one block.
    #[test]
    fn band_product_has_the_bits_of_gemm() {
        for (rows, k, n, alpha, c0) in [
            (37, 128, 128, 2.0 / 78.0, false),
            (16, 128, 64, 2.0 / 78.0, false),
            (40, 300, 32, 1.0, true),
        ] {
            let a = random(rows, k, 1);
            let g = random(k, n, 2);
            let start = if c0 {
                random(rows, n, 3)
            } else {
                Array2::zeros((rows, n))
            };
            let mut want = start.clone();
            with_threads(2, || gemm(alpha, a.view(), g.view(), 1.0, want.view_mut()));
            let mut got = start.clone();
            add_band_product(
                alpha,
                a.as_slice().unwrap(),
                g.as_slice().unwrap(),
                k,
                n,
                got.as_slice_mut().unwrap(),
            );
            assert_eq!(bits(&got), bits(&want), "{rows} × {k} × {n}");
        }
    }

    /// `f64` and widths that are no multiple of 32 take the general product.
    #[test]
    fn other_shapes_fall_back_to_gemm() {
        let w = Array2::from_shape_fn((50, 20), |(i, j)| (i as f64 - j as f64) * 0.1);
        let b: Vec<f64> = (0..50).map(|i| i as f64 * 0.01).collect();
        let (mut got, mut u) = (Array2::zeros((20, 20)), vec![0.0; 20]);
        gram_and_wtb(w.view(), &b, got.view_mut(), &mut u);
        let want = w.t().dot(&w);
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12));
        let want_u = w.t().dot(&ndarray::Array1::from(b));
        assert!(u.iter().zip(&want_u).all(|(a, b)| (a - b).abs() < 1e-12));
        let w32 = random(50, 20, 4);
        let b32 = vec![0.5f32; 50];
        let (mut got, mut u) = (Array2::zeros((20, 20)), vec![0.0; 20]);
        gram_and_wtb(w32.view(), &b32, got.view_mut(), &mut u);
        let want = w32.t().dot(&w32);
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4));
        let u_bits: Vec<u32> = u.iter().map(|v| v.to_bits()).collect();
        assert_eq!(u_bits, wtb_in_gene_order(&w32, &b32));
    }
}
