//! Seurat's LogNormalize: `x_ig = ln(1 + 10⁴ · c_ig / Σ_g' c_ig')`, natural log, the total
//! taken over all kept genes. Zeros stay zero, so the matrix stays sparse.

use crate::csr::Csr;
use rayon::prelude::*;

/// Seurat's default scale factor.
pub const SCALE_FACTOR: f64 = 1e4;

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
                *v = (SCALE_FACTOR * *v as f64 / total).ln_1p() as f32;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_seurat_example() {
        // Cell total 2419, count 2 → log1p(2/2419·1e4) = 2.2265546 (data/README.md).
        let mut m = Csr::with_cols(2);
        m.push_row(&[0, 1], &[2.0, 2417.0]);
        log_normalize(&mut m);
        assert!((m.data[0] - 2.2265546).abs() < 1e-6);
    }
}
