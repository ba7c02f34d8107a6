//! Inverted dropout (`docs/math.md#13-dropout`), in place:
//!
//! ```text
//! mask_ij = 1[u_ij ≥ p] / (1 − p),  u ~ U[0, 1)     drawn per step from its own stream
//! y = x ⊙ mask                                        training only; identity at evaluation
//! δx = δy ⊙ mask
//! ```
//! Scaling the kept units by `1/(1 − p)` keeps every unit's expected value, so evaluation
//! needs no rescaling. The masks come from a seeded stream of their own
//! ([`super::rng::Stream::Dropout`]): same seed, same masks, on any thread count.

use super::Scalar;
use ndarray::{ArrayView2, ArrayViewMut2};
use rand::Rng;

/// Fills `mask` with `1/(1 − p)` (probability `1 − p`) or 0, row by row.
pub fn draw<T: Scalar, R: Rng + ?Sized>(rng: &mut R, p: f64, mut mask: ArrayViewMut2<'_, T>) {
    let keep = T::from_f64(1.0 / (1.0 - p));
    for v in mask.iter_mut() {
        *v = if rng.random::<f64>() >= p {
            keep
        } else {
            T::zero()
        };
    }
}

/// `x ← x ⊙ mask` (forward), or `δ ← δ ⊙ mask` (backward: the same product).
pub fn apply<T: Scalar>(mut x: ArrayViewMut2<'_, T>, mask: ArrayView2<'_, T>) {
    x.zip_mut_with(&mask, |v, &m| *v *= m);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::{stream, Stream};
    use ndarray::Array2;

    #[test]
    fn masks_keep_the_expected_value() {
        let mut mask = Array2::<f64>::zeros((200, 50));
        draw(&mut stream(1, Stream::Dropout), 0.2, mask.view_mut());
        let kept = mask.iter().filter(|&&m| m > 0.0).count() as f64 / 10_000.0;
        assert!((kept - 0.8).abs() < 0.02, "{kept}");
        assert!(mask.iter().all(|&m| m == 0.0 || m == 1.25));
        assert!((mask.mean().unwrap() - 1.0).abs() < 0.03);
        let mut again = Array2::<f64>::zeros((200, 50));
        draw(&mut stream(1, Stream::Dropout), 0.2, again.view_mut());
        assert_eq!(mask, again, "seeded");
        // Backward is the same product: the gradient of Σ g ⊙ (x ⊙ mask) is g ⊙ mask.
        let mut g = Array2::<f64>::ones((200, 50));
        apply(g.view_mut(), mask.view());
        assert_eq!(g, mask);
    }
}
