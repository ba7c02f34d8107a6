//! What several test files share: [`small`] networks for the numeric tests, and in [`cli`]
//! the helpers of the tests that run the binary (`tests/cli_*.rs`).

// Each test binary compiles this whole module and uses only its own part of it.
#![allow(dead_code)]

pub mod cli;

use cellvae::models::{ModelConfig, ModelKind, Preset};

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
