//! `ln Γ(z)` and the digamma function `ψ(z) = d ln Γ(z)/dz` for `z > 0`, in f64, for the
//! negative-binomial likelihood ([`super::nb`]). Rust's standard library has neither on
//! stable.
//!
//! Both shift `z` up to `w = z + m ≥ 10` with the recurrences `ln Γ(z) = ln Γ(z + 1) − ln z`
//! and `ψ(z) = ψ(z + 1) − 1/z`, then use the asymptotic (Stirling) series at `w`:
//!
//! `ln Γ(w) = (w − ½) ln w − w + ½ ln 2π + 1/(12w) − 1/(360w³) + 1/(1260w⁵) − 1/(1680w⁷)
//!  + 1/(1188w⁹) − 691/(360360w¹¹)`
//! `ψ(w) = ln w − 1/(2w) − 1/(12w²) + 1/(120w⁴) − 1/(252w⁶) + 1/(240w⁸) − 1/(132w¹⁰)
//!  + 691/(32760w¹²)`
//!
//! whose first omitted terms (`1/(156w¹³)`, `−1/(12w¹⁴)`) are below 1e-15 at `w ≥ 10`.

/// Where the asymptotic series takes over.
const SHIFT_TO: f64 = 10.0;

/// `ln Γ(z)` for `z > 0`.
pub fn ln_gamma(z: f64) -> f64 {
    debug_assert!(z > 0.0, "ln_gamma needs z > 0, got {z}");
    let mut w = z;
    let mut shift = 0.0;
    // ln Γ(z) = ln Γ(z + m) − ln(z (z + 1) … (z + m − 1)); the product is kept as one
    // number until it nears overflow.
    let mut prod = 1.0;
    while w < SHIFT_TO {
        prod *= w;
        w += 1.0;
        if prod > 1e250 {
            shift += prod.ln();
            prod = 1.0;
        }
    }
    shift += prod.ln();
    let r = 1.0 / w;
    let r2 = r * r;
    let series = r
        * (1.0 / 12.0
            - r2 * (1.0 / 360.0
                - r2 * (1.0 / 1260.0
                    - r2 * (1.0 / 1680.0 - r2 * (1.0 / 1188.0 - r2 * 691.0 / 360_360.0)))));
    (w - 0.5) * w.ln() - w + 0.5 * (2.0 * std::f64::consts::PI).ln() + series - shift
}

/// `ψ(z)` for `z > 0`.
pub fn digamma(z: f64) -> f64 {
    debug_assert!(z > 0.0, "digamma needs z > 0, got {z}");
    let mut w = z;
    let mut acc = 0.0;
    while w < SHIFT_TO {
        acc -= 1.0 / w;
        w += 1.0;
    }
    let r2 = 1.0 / (w * w);
    acc + w.ln()
        - 0.5 / w
        - r2 * (1.0 / 12.0
            - r2 * (1.0 / 120.0
                - r2 * (1.0 / 252.0
                    - r2 * (1.0 / 240.0 - r2 * (1.0 / 132.0 - r2 * 691.0 / 32_760.0)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_known_values() {
        // Γ(n) = (n − 1)!, Γ(½) = √π; ln Γ(1e-3) and ln Γ(1e4) from mpmath.
        let cases = [
            (1.0, 0.0),
            (2.0, 0.0),
            (5.0, 24f64.ln()),
            (0.5, 0.5 * std::f64::consts::PI.ln()),
            (1e-3, 6.907_178_885_383_854),
            (1e4, 82_099.717_496_442_38),
            (30.5, 72.953_471_184_169_41),
        ];
        for (z, want) in cases {
            let got = ln_gamma(z);
            assert!(
                (got - want).abs() <= 1e-13 * want.abs().max(1.0),
                "ln Γ({z}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn digamma_known_values() {
        // ψ(1) = −γ_E, ψ(½) = −γ_E − 2 ln 2; ψ(1e-3) and ψ(1e4) from mpmath.
        let euler = 0.577_215_664_901_532_9;
        let cases = [
            (1.0, -euler),
            (0.5, -euler - 2.0 * 2f64.ln()),
            (1e-3, -1_000.575_571_931_810_3),
            (1e4, 9.210_290_371_142_849),
            (7.0, 1.872_784_335_098_467),
        ];
        for (z, want) in cases {
            let got = digamma(z);
            assert!(
                (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                "ψ({z}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn digamma_is_the_derivative_of_ln_gamma() {
        for z in [0.01, 0.7, 3.3, 42.0, 900.0] {
            let h = 1e-5 * z;
            let fd = (ln_gamma(z + h) - ln_gamma(z - h)) / (2.0 * h);
            assert!((fd - digamma(z)).abs() < 1e-6 * digamma(z).abs().max(1.0));
        }
    }
}
