//! What several test files share.

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
