//! Adam, with `torch.optim.Adam`'s exact update (PyTorch ≥ 1.5, defaults except the rate).
//!
//! For each parameter tensor `θ` with gradient `g` and step `t` (1 on the first update):
//! - `m ← m + (1 − β₁)(g − m)`   (PyTorch's `lerp`, i.e. `β₁ m + (1 − β₁) g`)
//! - `v ← β₂ v + (1 − β₂) g²`
//! - `θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)`
//!
//! so `ε` is added *after* the bias correction of `√v`, as PyTorch does. No weight decay, no
//! AMSGrad, no clipping. Zeroing the gradients is the model's separate `zero_grad` step.
//!
//! The update also reports a non-finite result (a NaN or ±∞ among the updated values, checked
//! in the same pass), so training can stop naming the tensor instead of running on with NaN
//! weights.

use super::scalar::{simd_fn, Scalar};
use rayon::prelude::*;

/// Tensors at least this long are updated in parallel.
const PARALLEL_MIN_LEN: usize = 1 << 16;

/// Anything whose parameters Adam can update: it hands out each tensor (value, gradient) in a
/// fixed order, the same on every call.
pub trait Parameters<T> {
    fn for_each_param(&mut self, f: &mut dyn FnMut(&mut [T], &mut [T]));

    /// Called by [`Adam::step`] once it has set every gradient to zero.
    fn gradients_zeroed(&mut self) {}
}

/// The optimizer's settings and per-tensor moments.
#[derive(Clone, Debug)]
pub struct Adam<T> {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps taken so far.
    pub t: u64,
    m: Vec<Vec<T>>,
    v: Vec<Vec<T>>,
}

impl<T: Scalar> Adam<T> {
    /// PyTorch's defaults with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// One update of every tensor of `params`. Every tensor is updated; the error names the
    /// first one (in `for_each_param` order) that holds a NaN or an infinity afterwards.
    pub fn step(&mut self, params: &mut dyn Parameters<T>) -> Result<(), NonFiniteUpdate> {
        self.t += 1;
        let t = self.t as i32;
        let consts = Constants {
            step_size: T::from_f64(self.lr / (1.0 - self.beta1.powi(t))),
            bc2_sqrt: T::from_f64((1.0 - self.beta2.powi(t)).sqrt()),
            b1c: T::from_f64(1.0 - self.beta1),
            b2: T::from_f64(self.beta2),
            b2c: T::from_f64(1.0 - self.beta2),
            eps: T::from_f64(self.eps),
        };
        let (ms, vs) = (&mut self.m, &mut self.v);
        let mut k = 0;
        let mut first_bad = None;
        params.for_each_param(&mut |theta, grad| {
            if ms.len() == k {
                ms.push(vec![T::zero(); theta.len()]);
                vs.push(vec![T::zero(); theta.len()]);
            }
            let (m, v) = (&mut ms[k], &mut vs[k]);
            let finite = if theta.len() >= PARALLEL_MIN_LEN {
                const BLOCK: usize = 1 << 14;
                theta
                    .par_chunks_mut(BLOCK)
                    .zip(grad.par_chunks_mut(BLOCK))
                    .zip(m.par_chunks_mut(BLOCK).zip(v.par_chunks_mut(BLOCK)))
                    .map(|((p, g), (m, v))| update(p, g, m, v, consts))
                    .reduce(|| true, |a, b| a && b)
            } else {
                update(theta, grad, m, v, consts)
            };
            if !finite && first_bad.is_none() {
                first_bad = Some(k);
            }
            k += 1;
        });
        params.gradients_zeroed();
        match first_bad {
            None => Ok(()),
            Some(tensor) => Err(NonFiniteUpdate { tensor }),
        }
    }
}

/// An update left NaN or ±∞ in parameter tensor number `tensor` (in `for_each_param` order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonFiniteUpdate {
    pub tensor: usize,
}

/// One step's scalars, shared by every tensor.
#[derive(Clone, Copy, Debug)]
struct Constants<T> {
    /// `lr / (1 − β₁ᵗ)`
    step_size: T,
    /// `√(1 − β₂ᵗ)`
    bc2_sqrt: T,
    /// `1 − β₁`
    b1c: T,
    b2: T,
    /// `1 − β₂`
    b2c: T,
    eps: T,
}

simd_fn! {
    /// The update of the module doc on equal-length slices of a tensor, its gradient (left
    /// at zero) and its two moments. Returns whether every updated value is finite.
    fn update<T>(theta: &mut [T], grad: &mut [T], m: &mut [T], v: &mut [T], k: Constants<T>) -> bool {
        let moments = m.iter_mut().zip(v.iter_mut());
        let mut finite = true;
        for ((p, g), (m, v)) in theta.iter_mut().zip(grad).zip(moments) {
            let g = std::mem::replace(g, T::zero());
            *m += k.b1c * (g - *m);
            *v = k.b2 * *v + k.b2c * g * g;
            flush_subnormal(m);
            flush_subnormal(v);
            *p -= k.step_size * *m / (v.sqrt() / k.bc2_sqrt + k.eps);
            finite &= p.is_finite();
        }
        finite
    }
}

/// Sets a moment that has decayed below the smallest normal number to zero. Where a gradient
/// stays zero (a dead unit, a gene no cell of the batch expresses), `m` shrinks by β₁ = 0.9 a
/// step and reaches subnormal numbers within a few hundred steps; x86 CPUs compute with those
/// tens of times slower, and in a 200-epoch `paper` run the late epochs took a quarter longer.
/// A subnormal moment moves its parameter by far less than one ulp, so zeroing it changes
/// nothing else (a 200-epoch run gives the same checkpoint bytes either way).
#[inline(always)]
fn flush_subnormal<T: Scalar>(x: &mut T) {
    if *x < T::MIN_POSITIVE && *x > -T::MIN_POSITIVE {
        *x = T::zero();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct One(Vec<f64>, Vec<f64>);
    impl Parameters<f64> for One {
        fn for_each_param(&mut self, f: &mut dyn FnMut(&mut [f64], &mut [f64])) {
            f(&mut self.0, &mut self.1);
        }
    }

    /// Reference values from PyTorch 2.15 (float64):
    /// ```python
    /// p = torch.nn.Parameter(torch.tensor([0.5, -1.25, 2.0, 0.0], dtype=torch.float64))
    /// opt = torch.optim.Adam([p], lr=1e-3)
    /// grads = [[0.1, -0.2, 3.0, 1e-9], [-0.4, 0.0, 2.5, -1e-9], [0.3, 0.7, -1.0, 0.0], [1e-4, -5.0, 0.5, 2.0]]
    /// for g in grads:
    ///     opt.zero_grad(); p.grad = torch.tensor(g, dtype=torch.float64); opt.step()
    ///     print([f'{v:.17e}' for v in p.detach().tolist()])
    /// ```
    /// The last column (gradients ~1e-9) pins where ε goes.
    #[test]
    #[allow(clippy::excessive_precision)] // PyTorch's printed digits, pasted as they are
    fn adam_matches_pytorch() {
        let grads = [
            [0.1, -0.2, 3.0, 1e-9],
            [-0.4, 0.0, 2.5, -1e-9],
            [0.3, 0.7, -1.0, 0.0],
            [1e-4, -5.0, 0.5, 2.0],
        ];
        let torch = [
            [
                4.99000000100000007e-01,
                -1.24900000004999989e+00,
                1.99900000000333344e+00,
                -9.09090909090909036e-05,
            ],
            [
                4.99559503574851294e-01,
                -1.24832994184325541e+00,
                1.99800882713233618e+00,
                -8.61244019138755843e-05,
            ],
            [
                4.99533185317128259e-01,
                -1.24880206059110033e+00,
                1.99742522152055924e+00,
                -8.30540030010761752e-05,
            ],
            [
                4.99511512937188873e-01,
                -1.24828267900366319e+00,
                1.99687919189819829e+00,
                -6.64182359362566754e-04,
            ],
        ];
        let mut p = One(vec![0.5, -1.25, 2.0, 0.0], vec![0.0; 4]);
        let mut adam = Adam::new(1e-3);
        for (g, want) in grads.iter().zip(torch.iter()) {
            p.1.copy_from_slice(g);
            adam.step(&mut p).unwrap();
            assert!(
                p.1.iter().all(|&g| g == 0.0),
                "the update zeroes the gradient"
            );
            for (got, want) in p.0.iter().zip(want) {
                assert!(
                    (got - want).abs() <= 1e-15 * want.abs().max(1e-3),
                    "{got} vs {want}"
                );
            }
        }
    }

    /// A NaN or infinite gradient makes the updated tensor non-finite, and `step` says which
    /// tensor, for a short (serial) and a long (parallel) one.
    #[test]
    fn non_finite_update_is_reported() {
        struct Two(Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);
        impl Parameters<f32> for Two {
            fn for_each_param(&mut self, f: &mut dyn FnMut(&mut [f32], &mut [f32])) {
                f(&mut self.0, &mut self.1);
                f(&mut self.2, &mut self.3);
            }
        }
        let long = 2 * PARALLEL_MIN_LEN + 5;
        let mut p = Two(vec![0.5; 3], vec![0.1; 3], vec![0.5; long], vec![0.1; long]);
        let mut adam = Adam::new(1e-3);
        assert_eq!(adam.step(&mut p), Ok(()));
        p.3.fill(0.1);
        p.3[long - 1] = f32::NAN;
        assert_eq!(adam.step(&mut p), Err(NonFiniteUpdate { tensor: 1 }));
        p.1.fill(0.1);
        p.1[0] = f32::INFINITY;
        assert_eq!(adam.step(&mut p), Err(NonFiniteUpdate { tensor: 0 }));
    }
}
