//! BatchNorm1d (`docs/math.md#12-batchnorm`), in place on a batch of `N` rows, per feature `f`.
//!
//! Training mode, from the batch's own statistics:
//! ```text
//! μ_B = mean(x),  σ²_B = mean((x − μ_B)²)  (biased),  s = 1/√(σ²_B + ε)
//! x̂ = (x − μ_B)·s,   y = γ·x̂ + β
//! δβ += Σ δy,   δγ += Σ δy·x̂
//! δx = γ·s/N · (N·δy − Σ δy − x̂·Σ(δy·x̂))
//! ```
//! (`x̂` depends on every row through `μ_B` and `σ²_B`; the two sums are what that
//! dependence contributes.) Evaluation mode uses the running statistics instead, so a cell's
//! embedding does not depend on the batch it is in: `x̂ = (x − m)/√(v + ε)`, and
//! `δx = γ·δy/√(v + ε)`. After each training step the running statistics move towards the
//! batch's, PyTorch's convention: `m ← (1 − α)·m + α·μ_B`, `v ← (1 − α)·v + α·σ²_B·N/(N − 1)`,
//! with scVI's `α = 0.01`, `ε = 1e-3`. A batch of one cell has no variance: training refuses it.
//! Statistics are accumulated in f64.

use super::Scalar;
use ndarray::{Array1, Array2, ArrayViewMut2};

/// scVI's momentum of the running statistics.
pub const MOMENTUM: f64 = 0.01;
/// scVI's `ε`.
pub const EPS: f64 = 1e-3;

/// The affine parameters, their gradients, and the running statistics (buffers, not trained).
#[derive(Clone, Debug)]
pub struct BatchNorm<T> {
    pub gamma: Array1<T>,
    pub beta: Array1<T>,
    pub dgamma: Array1<T>,
    pub dbeta: Array1<T>,
    pub running_mean: Array1<T>,
    pub running_var: Array1<T>,
}

/// What the backward pass needs from the forward, and the batch statistics for the running
/// update.
#[derive(Clone, Debug, Default)]
pub struct BnCache<T> {
    xhat: Array2<T>,
    /// `s` per feature (batch or running).
    scale: Array1<f64>,
    batch_mean: Array1<f64>,
    batch_var: Array1<f64>,
    rows: usize,
    training: bool,
}

impl<T: Scalar> BatchNorm<T> {
    /// `γ = 1`, `β = 0`, running mean 0 and variance 1 (PyTorch's initial values).
    pub fn new(features: usize) -> Self {
        let ones = Array1::from_elem(features, T::one());
        let zeros = Array1::zeros(features);
        BatchNorm {
            gamma: ones.clone(),
            beta: zeros.clone(),
            dgamma: zeros.clone(),
            dbeta: zeros.clone(),
            running_mean: zeros,
            running_var: ones,
        }
    }

    pub fn zero_grad(&mut self) {
        self.dgamma.fill(T::zero());
        self.dbeta.fill(T::zero());
    }

    /// `x ← γ·x̂ + β`, from the batch's statistics (`training`) or the running ones.
    pub fn forward(&self, mut x: ArrayViewMut2<'_, T>, cache: &mut BnCache<T>, training: bool) {
        let (n, f) = x.dim();
        let (mean, var) = if training {
            let mut mean = Array1::<f64>::zeros(f);
            for row in x.rows() {
                for (m, v) in mean.iter_mut().zip(row) {
                    *m += v.to_f64();
                }
            }
            mean /= n as f64;
            let mut var = Array1::<f64>::zeros(f);
            for row in x.rows() {
                for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                    *s += (v.to_f64() - m).powi(2);
                }
            }
            var /= n as f64;
            (mean, var)
        } else {
            (
                self.running_mean.mapv(|v| v.to_f64()),
                self.running_var.mapv(|v| v.to_f64()),
            )
        };
        let scale = var.mapv(|v| 1.0 / (v + EPS).sqrt());
        if cache.xhat.dim() != (n, f) {
            cache.xhat = Array2::zeros((n, f));
        }
        for (mut row, mut xh) in x.rows_mut().into_iter().zip(cache.xhat.rows_mut()) {
            for j in 0..f {
                let h = (row[j].to_f64() - mean[j]) * scale[j];
                xh[j] = T::from_f64(h);
                row[j] = T::from_f64(self.gamma[j].to_f64() * h + self.beta[j].to_f64());
            }
        }
        cache.scale = scale;
        cache.batch_mean = mean;
        cache.batch_var = var;
        cache.rows = n;
        cache.training = training;
    }

    /// `δy ← δx` in place, and `δγ`, `δβ` accumulated.
    pub fn backward(&mut self, mut dy: ArrayViewMut2<'_, T>, cache: &BnCache<T>) {
        let (n, f) = dy.dim();
        assert_eq!(n, cache.rows, "backward of the last forward's batch");
        let mut sum_dy = vec![0.0f64; f];
        let mut sum_dy_xhat = vec![0.0f64; f];
        for (row, xh) in dy.rows().into_iter().zip(cache.xhat.rows()) {
            for j in 0..f {
                let d = row[j].to_f64();
                sum_dy[j] += d;
                sum_dy_xhat[j] += d * xh[j].to_f64();
            }
        }
        for j in 0..f {
            self.dbeta[j] += T::from_f64(sum_dy[j]);
            self.dgamma[j] += T::from_f64(sum_dy_xhat[j]);
        }
        let nf = n as f64;
        for (mut row, xh) in dy.rows_mut().into_iter().zip(cache.xhat.rows()) {
            for j in 0..f {
                let g = self.gamma[j].to_f64() * cache.scale[j];
                let d = row[j].to_f64();
                row[j] = T::from_f64(if cache.training {
                    g / nf * (nf * d - sum_dy[j] - xh[j].to_f64() * sum_dy_xhat[j])
                } else {
                    g * d
                });
            }
        }
    }

    /// Moves the running statistics towards the last training forward's batch statistics.
    pub fn update_running(&mut self, cache: &BnCache<T>) {
        if !cache.training || cache.rows < 2 {
            return;
        }
        let unbias = cache.rows as f64 / (cache.rows - 1) as f64;
        for j in 0..self.gamma.len() {
            let m = self.running_mean[j].to_f64();
            let v = self.running_var[j].to_f64();
            self.running_mean[j] =
                T::from_f64((1.0 - MOMENTUM) * m + MOMENTUM * cache.batch_mean[j]);
            self.running_var[j] =
                T::from_f64((1.0 - MOMENTUM) * v + MOMENTUM * cache.batch_var[j] * unbias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Axis;

    fn column_mean(x: &Array2<f64>) -> Array1<f64> {
        x.mean_axis(Axis(0)).expect("rows")
    }
    use crate::engine::gradcheck::{check_slice, fixtures::random, TOLERANCE};

    /// `L = Σ G ⊙ BN(x)` in training mode, as a function of `x`, `γ`, `β`.
    fn loss(bn: &BatchNorm<f64>, x: &Array2<f64>, g: &Array2<f64>, training: bool) -> f64 {
        let mut y = x.clone();
        bn.forward(y.view_mut(), &mut BnCache::default(), training);
        (&y * g).sum()
    }

    /// δx, δγ, δβ against central differences in f64, in both modes.
    #[test]
    fn gradcheck_batchnorm() {
        let x = random(6, 4, 2.0, 1).mapv(|v| v + 0.5);
        let g = random(6, 4, 1.0, 2);
        for training in [true, false] {
            let mut bn = BatchNorm::<f64>::new(4);
            bn.gamma = random(1, 4, 1.0, 3).row(0).to_owned();
            bn.beta = random(1, 4, 1.0, 4).row(0).to_owned();
            bn.running_mean = random(1, 4, 1.0, 5).row(0).to_owned();
            bn.running_var = random(1, 4, 1.0, 6).row(0).mapv(|v| v * v + 0.2);
            let mut y = x.clone();
            let mut cache = BnCache::default();
            bn.forward(y.view_mut(), &mut cache, training);
            let mut dx = g.clone();
            bn.backward(dx.view_mut(), &cache);
            let mut xx = x.clone();
            let err_x = check_slice(
                x.clone().as_slice_mut().unwrap(),
                dx.as_slice().unwrap(),
                |_| 1e-5,
                |v| {
                    xx.as_slice_mut().unwrap().copy_from_slice(v);
                    loss(&bn, &xx, &g, training)
                },
            );
            let mut probe = bn.clone();
            let err_gamma = check_slice(
                bn.gamma.clone().as_slice_mut().unwrap(),
                bn.dgamma.as_slice().unwrap(),
                |_| 1e-5,
                |v| {
                    probe.gamma.as_slice_mut().unwrap().copy_from_slice(v);
                    loss(&probe, &x, &g, training)
                },
            );
            let mut probe = bn.clone();
            let err_beta = check_slice(
                bn.beta.clone().as_slice_mut().unwrap(),
                bn.dbeta.as_slice().unwrap(),
                |_| 1e-5,
                |v| {
                    probe.beta.as_slice_mut().unwrap().copy_from_slice(v);
                    loss(&probe, &x, &g, training)
                },
            );
            for (what, e) in [("δx", err_x), ("δγ", err_gamma), ("δβ", err_beta)] {
                assert!(e < TOLERANCE, "training {training}: {what} {e:e}");
            }
        }
    }

    /// Training mode standardises each feature; the running statistics move by the momentum
    /// with the unbiased variance; evaluation mode then uses them.
    #[test]
    fn statistics_and_modes() {
        let x = random(5, 3, 2.0, 7).mapv(|v| 3.0 * v + 1.0);
        let bn = BatchNorm::<f64>::new(3);
        let mut y = x.clone();
        let mut cache = BnCache::default();
        bn.forward(y.view_mut(), &mut cache, true);
        assert!(column_mean(&y).iter().all(|m| m.abs() < 1e-12));
        let mut bn = bn;
        bn.update_running(&cache);
        let mean = column_mean(&x);
        for j in 0..3 {
            assert!((bn.running_mean[j] - MOMENTUM * mean[j]).abs() < 1e-12);
            let var: f64 = x
                .column(j)
                .iter()
                .map(|v| (v - mean[j]).powi(2))
                .sum::<f64>()
                / 4.0;
            assert!((bn.running_var[j] - (1.0 - MOMENTUM + MOMENTUM * var)).abs() < 1e-12);
        }
        let mut e = x.clone();
        bn.forward(e.view_mut(), &mut BnCache::default(), false);
        let want = (x[[0, 1]] - bn.running_mean[1]) / (bn.running_var[1] + EPS).sqrt();
        assert!((e[[0, 1]] - want).abs() < 1e-12);
    }
}
