//! What several test files share: [`small`] networks for the numeric tests, and in [`cli`]
//! the helpers of the tests that run the binary (`tests/cli_*.rs`).

// Each test binary compiles this whole module and uses only its own part of it.
#![allow(dead_code)]

pub mod cli;

use cellvae::csr::Csr;
use cellvae::engine::rng::{stream, Stream};
use cellvae::models::{ModelConfig, ModelKind, Preset};
use rand::Rng;

/// A sparse, LogNormalize-like batch of `cells` cells × `genes`: about 40 % nonzero, values
/// in (0, 3), drawn from `rng`.
pub fn sparse_batch(cells: usize, genes: usize, rng: &mut impl Rng) -> Csr<f64> {
    let mut m = Csr::with_cols(genes);
    for _ in 0..cells {
        let (mut c, mut v) = (Vec::new(), Vec::new());
        for j in 0..genes {
            if rng.random::<f64>() < 0.4 {
                c.push(j as u32);
                v.push(rng.random_range(0.1..3.0));
            }
        }
        m.push_row(&c, &v);
    }
    m
}

/// [`sparse_batch`] from the `Init` stream of `seed`.
pub fn seeded_batch(cells: usize, genes: usize, seed: u64) -> Csr<f64> {
    sparse_batch(cells, genes, &mut stream(seed, Stream::Init))
}

/// A preset's structure scaled down to a few units per layer: latent 3, every hidden width
/// `w / 16` clamped to 5..9, head branches 4 wide. `tests/fixtures/parity/make_fixture.py`
/// scales the presets the same way.
pub fn small(kind: ModelKind, preset: Preset) -> ModelConfig {
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
