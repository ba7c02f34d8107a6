//! Seurat's LogNormalize: `x_ig = ln(1 + 10⁴ · c_ig / Σ_g' c_ig')`, natural log, the total
//! taken over all kept genes. Zeros stay zero, so the matrix stays sparse.

use crate::csr::Csr;
use rayon::prelude::*;

/// Seurat's default scale factor.
pub const SCALE_FACTOR: f64 = 1e4;

/// The largest count [`recover_counts`] gives back exactly.
///
/// `x = ln(1 + 10⁴·c/t)` is stored in f32, to a relative `2⁻²⁴`; through `c = t·expm1(x)/10⁴`
/// that is an error of at most `c · 2⁻²⁴ · (x + 1) ≤ c · 6·10⁻⁷` (`x ≤ ln(1 + 10⁴)`), so
/// rounding recovers `c` exactly while that stays well below ½: 0.06 at this bound.
pub const MAX_RECOVERABLE_COUNT: f32 = 100_000.0;

/// Each row's total, as [`log_normalize`] sums it (what it divides by).
pub fn row_totals(m: &Csr<f32>) -> Vec<f64> {
    (0..m.n_rows)
        .map(|i| m.row(i).1.iter().map(|&v| v as f64).sum())
        .collect()
}

/// The counts behind LogNormalized values, given each row's total:
/// `c = round(t · expm1(x) / 10⁴)`, exact for counts up to [`MAX_RECOVERABLE_COUNT`]. Lets a
/// run keep only the totals before normalizing in place, and recover the counts of the genes
/// it keeps afterwards, instead of copying every gene's counts.
pub fn recover_counts(lognorm: &Csr<f32>, totals: &[f64]) -> Csr<f32> {
    assert_eq!(totals.len(), lognorm.n_rows, "one total per row");
    let mut counts = lognorm.clone();
    for (i, &total) in totals.iter().enumerate() {
        let (a, b) = (counts.indptr[i], counts.indptr[i + 1]);
        for v in &mut counts.data[a..b] {
            *v = recovered_count(*v, total) as f32;
        }
    }
    counts
}

/// The LogNormalized value of count `c` in a cell of total `t`: `ln(1 + 10⁴·c/t)`, in f64,
/// stored as f32.
#[inline]
pub fn lognorm_value(c: f64, t: f64) -> f32 {
    (SCALE_FACTOR * c / t).ln_1p() as f32
}

/// The count behind LogNormalized value `x` in a cell of total `t`: `round(t·expm1(x)/10⁴)`
/// (exact up to [`MAX_RECOVERABLE_COUNT`]).
#[inline]
pub fn recovered_count(x: f32, t: f64) -> f64 {
    (t * (x as f64).exp_m1() / SCALE_FACTOR).round()
}

/// LogNormalizes a cells × genes count matrix in place.
pub fn log_normalize(m: &mut Csr<f32>) {
    let indptr = &m.indptr;
    let bounds: Vec<(usize, usize)> = (0..m.n_rows).map(|i| (indptr[i], indptr[i + 1])).collect();
    // Split the value array into per-row slices so rows can be normalized in parallel.
    let mut rows: Vec<&mut [f32]> = Vec::with_capacity(m.n_rows);
    let mut rest: &mut [f32] = &mut m.data;
    for &(a, b) in &bounds {
        let (row, tail) = rest.split_at_mut(b - a);
        rows.push(row);
        rest = tail;
    }
    rows.into_par_iter().for_each(|row| {
        let total: f64 = row.iter().map(|&v| v as f64).sum();
        if total > 0.0 {
            for v in row.iter_mut() {
                *v = lognorm_value(*v as f64, total);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts from 1 to the bound, in cells shallow and deep, come back exactly.
    #[test]
    fn counts_come_back_from_their_log_normalized_values() {
        let mut m = Csr::with_cols(6);
        m.push_row(&[0, 1, 2], &[1.0, 2.0, 3.0]);
        m.push_row(&[0, 3, 5], &[1.0, MAX_RECOVERABLE_COUNT, 77_777.0]);
        m.push_row(&[], &[]);
        let cols: Vec<u32> = (0..6).collect();
        m.push_row(&cols, &[1.0, 1.0, 12_345.0, 999.0, 2.0, 65_536.0]);
        let totals = row_totals(&m);
        let mut x = m.clone();
        log_normalize(&mut x);
        assert_eq!(recover_counts(&x, &totals), m);
    }

    #[test]
    fn matches_the_seurat_example() {
        // Cell total 2419, count 2 → log1p(2/2419·1e4) = 2.2265546 (data/README.md).
        let mut m = Csr::with_cols(2);
        m.push_row(&[0, 1], &[2.0, 2417.0]);
        log_normalize(&mut m);
        assert!((m.data[0] - 2.2265546).abs() < 1e-6);
    }
}
