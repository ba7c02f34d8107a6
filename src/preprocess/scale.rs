//! Per-gene scaling, as `sc.pp.scale(max_value=10)`
//! (`docs/math.md#9-gene-selection-and-scaling`):
//!
//! `x' = clip((x − mean_g) / sd_g, −10, 10)`, with `sd_g` the sample sd (n − 1) and a gene
//! of `sd_g = 0` divided by 1. The means and sds are fitted once, on the training cells, and
//! stored with the model, so that `embed` sends new cells through the same transform.
//!
//! Centring makes almost every entry nonzero, so the scaled matrix is dense: 16 GB for a
//! million cells × 2,000 genes. It is stored instead as its change from the z-score of a zero,
//! `x' = s + 1·cᵀ` with `c_g = clip(−mean_g / sd_g)` ([`Scaling::zero_scores`]): a zero
//! scales to `c_g`, so `s` has the nonzeros of the data and no others. The networks read `s`
//! and `c` (`Network::set_input_shift`: the first layer folds `c` into its bias, the MSE
//! target is `s + c`); PCA centres its input, which removes `c`; the run's `.h5ad` writes
//! `s + c` a block of rows at a time.

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

    /// The z-score of a zero in each gene, `c_g = clip(−mean_g / sd_g)`: the shift of
    /// [`Scaling::apply`]'s output.
    pub fn zero_scores(&self) -> Vec<f32> {
        (0..self.mean.len()).map(|g| self.scale(g, 0.0)).collect()
    }

    /// `x` scaled, as its change `s` from [`Scaling::zero_scores`] `c`: the scaled matrix is
    /// `s + 1·cᵀ`, and `s` holds `scale(v) − c_g` at the nonzeros of `x`, nothing elsewhere.
    pub fn apply(&self, x: &Csr<f32>) -> Csr<f32> {
        let mut out = x.clone();
        self.apply_in_place(&mut out);
        out
    }

    /// [`Scaling::apply`] in place: the stored entries keep their places (a zero's change
    /// is zero), so no second matrix is needed.
    pub fn apply_in_place(&self, x: &mut Csr<f32>) {
        assert_eq!(x.n_cols, self.mean.len(), "scaling fitted on other genes");
        let zero = self.zero_scores();
        for (v, &g) in x.data.iter_mut().zip(&x.indices) {
            *v = self.scale(g as usize, *v) - zero[g as usize];
        }
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
        let y = dense_scaled(&s, &m);
        let col0: f32 = y.column(0).sum();
        assert!(col0.abs() < 1e-6);
        assert!(y.column(1).iter().all(|&v| v == 0.0));
        // Gene 2 (all zeros) scales to 0, gene 0's zero to −1.5/sd: only the data's
        // nonzeros are stored.
        assert_eq!(s.apply(&m).nnz(), m.nnz(), "as sparse as the data");
        assert!((s.zero_scores()[0] + 1.5 / (5.0f32 / 3.0).sqrt()).abs() < 1e-6);
        assert!(
            (y[[0, 0]] - s.zero_scores()[0]).abs() < 1e-6,
            "a zero's z-score"
        );

        let mut big = Csr::with_cols(1);
        for i in 0..200u32 {
            if i == 0 {
                big.push_row(&[0], &[1000.0]);
            } else {
                big.push_row(&[], &[]);
            }
        }
        let s = Scaling::fit(&big);
        let y = dense_scaled(&s, &big);
        assert!(
            (y[[0, 0]] - CLIP).abs() < 1e-5,
            "an outlier's z of √199 ≈ 14 is clipped"
        );
    }

    /// `s + 1·cᵀ`, dense.
    fn dense_scaled(s: &Scaling, x: &Csr<f32>) -> ndarray::Array2<f32> {
        let mut y = s.apply(x).to_dense();
        for mut row in y.rows_mut() {
            row += &ndarray::ArrayView1::from(&s.zero_scores()[..]);
        }
        y
    }

    /// Every entry of `s + 1·cᵀ` is the z-score itself (up to the f32 rounding of the sum).
    #[test]
    fn the_shifted_form_is_the_z_score() {
        let mut m = Csr::with_cols(4);
        for i in 0..30u32 {
            let cols: Vec<u32> = (0..4).filter(|g| (i + g) % 3 != 0).collect();
            let vals: Vec<f32> = cols
                .iter()
                .map(|&g| ((i * 7 + g * 3) % 11) as f32 / 2.0)
                .collect();
            m.push_row(&cols, &vals);
        }
        let s = Scaling::fit(&m);
        let y = dense_scaled(&s, &m);
        let x = m.to_dense();
        for ((i, g), &v) in y.indexed_iter() {
            let z = ((x[[i, g]] - s.mean[g]) / s.sd[g]).clamp(-CLIP, CLIP);
            assert!((v - z).abs() < 1e-5, "({i}, {g}): {v} vs {z}");
        }
    }
}
