//! Per-gene scaling, as `sc.pp.scale(max_value=10)`
//! (`docs/math.md#9-gene-selection-and-scaling`):
//!
//! `x' = clip((x − mean_g) / sd_g, −10, 10)`, with `sd_g` the sample sd (n − 1) and a gene
//! of `sd_g = 0` divided by 1. The means and sds are fitted once, on the training cells, and
//! stored with the model, so that `embed` sends new cells through the same transform.
//!
//! Centring makes almost every entry nonzero: the scaled matrix is stored as a [`Csr`] with
//! every entry present (dense rows), which the sparse first layer reads like any other.

use crate::csr::{ColumnMoments, Csr};

/// The clip of `sc.pp.scale(max_value=10)` and of Seurat's `ScaleData`.
pub const CLIP: f32 = 10.0;

/// A fitted per-gene z-score.
#[derive(Clone, Debug, PartialEq)]
pub struct Scaling {
    pub mean: Vec<f32>,
    /// Sample sd per gene, 1 where the gene is constant.
    pub sd: Vec<f32>,
    /// Values are clipped to `[−clip, clip]` after scaling.
    pub clip: f32,
}

impl Scaling {
    /// Fits means and sds (n − 1) to the columns of `x`, in f64.
    pub fn fit(x: &Csr<f32>) -> Self {
        Self::from_moments(&x.column_moments(|v| v as f64))
    }

    /// The z-score of columns with these moments (a gene of variance 0 is divided by 1).
    pub fn from_moments(m: &ColumnMoments) -> Self {
        let d = m.sum.len();
        let sd = (0..d)
            .map(|g| match m.variance(g) {
                var if var > 0.0 => var.sqrt() as f32,
                _ => 1.0,
            })
            .collect();
        Scaling {
            mean: (0..d).map(|g| m.mean(g) as f32).collect(),
            sd,
            clip: CLIP,
        }
    }

    /// `x` scaled: every entry stored, zeros included.
    pub fn apply(&self, x: &Csr<f32>) -> Csr<f32> {
        assert_eq!(x.n_cols, self.mean.len(), "scaling fitted on other genes");
        let d = x.n_cols;
        let zero: Vec<f32> = (0..d).map(|g| self.scale(g, 0.0)).collect();
        let cols: Vec<u32> = (0..d as u32).collect();
        let mut out = Csr::with_cols(d);
        out.indices.reserve(x.n_rows * d);
        out.data.reserve(x.n_rows * d);
        let mut row = vec![0.0f32; d];
        for i in 0..x.n_rows {
            row.copy_from_slice(&zero);
            let (idx, vals) = x.row(i);
            for (&g, &v) in idx.iter().zip(vals) {
                row[g as usize] = self.scale(g as usize, v);
            }
            out.push_row(&cols, &row);
        }
        out
    }

    #[inline]
    fn scale(&self, g: usize, v: f32) -> f32 {
        ((v - self.mean[g]) / self.sd[g]).clamp(-self.clip, self.clip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_standardised_and_clipped() {
        // Gene 0: 0,1,2,3 (mean 1.5, sd √(5/3)); gene 1 constant; gene 2 one outlier in 200.
        let mut m = Csr::with_cols(3);
        for i in 0..4u32 {
            m.push_row(&[0, 1], &[i as f32, 2.0]);
        }
        let s = Scaling::fit(&m);
        assert!((s.mean[0] - 1.5).abs() < 1e-7);
        assert!((s.sd[0] - (5.0f32 / 3.0).sqrt()).abs() < 1e-6);
        assert_eq!((s.mean[1], s.sd[1]), (2.0, 1.0));
        assert_eq!((s.mean[2], s.sd[2]), (0.0, 1.0));
        let y = s.apply(&m).to_dense();
        let col0: f32 = y.column(0).sum();
        assert!(col0.abs() < 1e-6);
        assert!(y.column(1).iter().all(|&v| v == 0.0));
        assert_eq!(s.apply(&m).nnz(), 12, "every entry is stored");

        let mut big = Csr::with_cols(1);
        for i in 0..200u32 {
            if i == 0 {
                big.push_row(&[0], &[1000.0]);
            } else {
                big.push_row(&[], &[]);
            }
        }
        let y = Scaling::fit(&big).apply(&big).to_dense();
        assert_eq!(y[[0, 0]], CLIP, "an outlier's z of √199 ≈ 14 is clipped");
    }
}
