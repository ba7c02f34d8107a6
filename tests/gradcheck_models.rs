//! Finite-difference checks of the three models' full losses with respect to every parameter
//! tensor, in f64, in both presets' shapes scaled down. Error formula and tolerance:
//! `cellvae::engine::gradcheck` (`|a − n| / max(|a|, |n|, 1e-3)`, max below 1e-6).
//!
//! Step `h = 3e-5` with the fourth-order stencil: between ReLU kinks the networks are smooth
//! (piecewise linear in most parameters), so truncation stays below 1e-12, while the rounding
//! error of the O(10–100) summed losses (`ε·|f|/h`) stays near 1e-10. The fixed seeds put no
//! pre-activation within `2h` of a kink (a stencil straddling one shows up as an error of
//! ~1e-2, not 1e-6) and leave at least one unit of every layer alive, so that no tensor passes
//! with an all-zero gradient (with the `paper` AE's ReLU code, a dead code is possible).

use cellvae::csr::Csr;
use cellvae::engine::adam::Parameters;
use cellvae::engine::gradcheck::{max_error, numeric_gradient, TOLERANCE};
use cellvae::engine::rng::{stream, Stream};
use cellvae::models::{ModelConfig, ModelKind, Network, Noise, Preset};
use rand::Rng;

const GENES: usize = 11;
const CELLS: usize = 8;

/// A sparse, LogNormalize-like batch: about 40 % nonzero, values in (0, 3).
fn batch() -> Csr<f64> {
    let mut rng = stream(99, Stream::Init);
    let mut m = Csr::with_cols(GENES);
    for _ in 0..CELLS {
        let (mut c, mut v) = (Vec::new(), Vec::new());
        for j in 0..GENES {
            if rng.random::<f64>() < 0.4 {
                c.push(j as u32);
                v.push(rng.random_range(0.1..3.0));
            }
        }
        m.push_row(&c, &v);
    }
    m
}

/// The preset's structure, scaled down to a few units per layer.
fn small(kind: ModelKind, preset: Preset) -> ModelConfig {
    let mut c = ModelConfig::preset(kind, preset);
    c.latent = 3;
    let shrink = |w: &[usize]| w.iter().map(|&w| (w / 16).clamp(5, 9)).collect::<Vec<_>>();
    c.trunk = shrink(&c.trunk);
    c.decoder = shrink(&c.decoder);
    if c.head_hidden > 0 {
        c.head_hidden = 4;
    }
    c
}

fn params(net: &mut Network<f64>) -> Vec<(Vec<f64>, Vec<f64>)> {
    let mut out = Vec::new();
    net.for_each_param(&mut |v, g| out.push((v.to_vec(), g.to_vec())));
    out
}

fn nudge(net: &mut Network<f64>, tensor: usize, i: usize, d: f64) {
    let mut k = 0;
    net.for_each_param(&mut |v, _| {
        if k == tensor {
            v[i] += d;
        }
        k += 1;
    });
}

/// Checks every parameter of `kind` in `preset` and returns the largest error. The gradients
/// checked are the training step's ([`Network::train_step`], output layer and loss fused);
/// they must also equal the unfused `forward` + `backward`'s to rounding.
fn check(kind: ModelKind, preset: Preset) -> f64 {
    let cfg = small(kind, preset);
    let x = batch();
    let mut net = Network::<f64>::new(cfg.clone(), GENES, 1).unwrap();
    let noise = Noise::draw(&mut stream(4, Stream::Noise), kind, CELLS, cfg.latent);
    let c = cfg.vsc_c;
    let mut ws = net.workspace(CELLS, true);
    let reference_loss = net.forward(&mut ws, &x, &noise, c);
    net.backward(&mut ws, &x);
    let reference = params(&mut net);
    let fused_loss = net.train_step(&mut ws, &x, &noise, c);
    let tensors = params(&mut net);
    let names = net.state_dict();
    assert!((fused_loss.total - reference_loss.total).abs() <= 1e-12 * reference_loss.total.abs());
    for (t, ((_, fused), (_, unfused))) in tensors.iter().zip(&reference).enumerate() {
        let close = fused
            .iter()
            .zip(unfused)
            .all(|(a, b)| (a - b).abs() <= 1e-12 * (1.0 + b.abs()));
        assert!(
            close,
            "{kind:?} {preset:?} {}: fused and unfused gradients differ",
            names[t].0
        );
    }
    let mut worst: f64 = 0.0;
    for (t, (values, analytic)) in tensors.iter().enumerate() {
        let numeric = numeric_gradient(
            values.len(),
            |_| 1e-4,
            |i, d| {
                nudge(&mut net, t, i, d);
                let v = net.forward(&mut ws, &x, &noise, c).total;
                nudge(&mut net, t, i, -d);
                v
            },
        );
        let err = max_error(analytic, &numeric);
        assert!(
            analytic.iter().any(|&g| g != 0.0) || kind == ModelKind::Vsc,
            "{kind:?} {}: all-zero gradient",
            names[t].0
        );
        assert!(
            err < TOLERANCE,
            "{kind:?} {preset:?} {}: error {err:e}",
            names[t].0
        );
        worst = worst.max(err);
    }
    worst
}

#[test]
fn gradcheck_ae_loss() {
    check(ModelKind::Ae, Preset::Paper);
    check(ModelKind::Ae, Preset::SeedCode);
}

#[test]
fn gradcheck_vae_loss() {
    check(ModelKind::Vae, Preset::Paper);
    check(ModelKind::Vae, Preset::SeedCode);
}

#[test]
fn gradcheck_vsc_loss() {
    check(ModelKind::Vsc, Preset::Paper);
    check(ModelKind::Vsc, Preset::SeedCode);
}

/// The study's parameter counts (MODEL-SPEC section 2) on PBMC3k's 13,714 genes.
#[test]
fn preset_parameter_counts_match_the_spec() {
    let count = |k, p| {
        Network::<f32>::new(ModelConfig::preset(k, p), 13714, 0)
            .unwrap()
            .n_params()
    };
    assert_eq!(count(ModelKind::Ae, Preset::SeedCode), 3_534_264);
    assert_eq!(count(ModelKind::Vae, Preset::SeedCode), 22_635_886);
    assert_eq!(count(ModelKind::Vsc, Preset::SeedCode), 22_638_292);
    for k in ModelKind::ALL {
        let n = count(k, Preset::Paper);
        assert!((3_520_000..3_540_000).contains(&n), "{k:?}: {n}");
    }
}
