//! Parity with PyTorch autograd in f64, inside `cargo test`: for the AE, β-VAE and β-VSC in
//! both presets (scaled down), PyTorch's weights, batches and noise are loaded from a
//! committed fixture, one training step runs ([`Network::train_step`], the fused output layer,
//! as training uses), and the loss terms and every gradient are compared with autograd's, per
//! tensor: `max|ours − torch| / max|torch| ≤ 1e-10`. A full batch (8 cells) and a partial one
//! (5 cells in a workspace for 8, as the last batch of an epoch) are checked for each model;
//! the unfused `forward` + `backward` must agree too.
//!
//! The fixture `tests/fixtures/parity/pytorch_f64.safetensors` is written by
//! `tests/fixtures/parity/make_fixture.py` (PyTorch 2.15, float64); its docstring lists the
//! tensors. The 64-cell float32 comparison on real PBMC3k cells stays a manual check
//! (`tests/parity_export.rs`).

use cellvae::csr::Csr;
use cellvae::models::{ModelConfig, ModelKind, Network, Noise, Preset, Schedule};
use ndarray::Array2;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;

mod common;
use common::small;

const FIXTURE: &str = "tests/fixtures/parity/pytorch_f64.safetensors";
const TOLERANCE: f64 = 1e-10;
const CAPACITY: usize = 8;

struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    fn load() -> Self {
        Fixture {
            bytes: std::fs::read(FIXTURE).expect("the committed parity fixture"),
        }
    }

    fn tensor(&self, name: &str) -> (Vec<usize>, Vec<f64>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), Dtype::F64, "{name}");
        let values = t
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (t.shape().to_vec(), values)
    }

    fn matrix(&self, name: &str) -> Array2<f64> {
        let (shape, v) = self.tensor(name);
        Array2::from_shape_vec((shape[0], shape[1]), v).unwrap()
    }

    fn metadata(&self, key: &str) -> String {
        let (_, header) = SafeTensors::read_metadata(&self.bytes).unwrap();
        header.metadata().as_ref().unwrap()[key].clone()
    }
}

/// `max|ours − torch| / max|torch|` (absolute where torch's tensor is all zeros).
fn relative_difference(ours: &[f64], torch: &[f64]) -> f64 {
    assert_eq!(ours.len(), torch.len());
    let scale = torch.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(torch)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

fn check(kind: ModelKind, preset: Preset) {
    let fx = Fixture::load();
    let case = format!("{}_{}", kind.name(), preset.name().replace('-', "_"));
    let cfg = small(kind, preset);
    let stored: serde_json::Value =
        serde_json::from_str(&fx.metadata(&format!("{case}.config"))).unwrap();
    assert_eq!(
        ModelConfig::from_json(&stored).as_ref(),
        Some(&cfg),
        "{case}: the fixture was made for another configuration; rerun make_fixture.py"
    );
    let genes = fx.matrix(&format!("{case}.full.x")).ncols();
    let mut net = Network::<f64>::new(cfg.clone(), genes, 0).unwrap();
    let weights: HashMap<String, (Vec<usize>, Vec<f64>)> = net
        .state_dict()
        .into_iter()
        .map(|(name, _, _)| {
            let t = fx.tensor(&format!("{case}.param.{name}"));
            (name, t)
        })
        .collect();
    net.load_state_dict(&weights).unwrap();
    let mut ws = net.workspace(CAPACITY, true);
    for batch in ["full", "partial"] {
        let key = format!("{case}.{batch}");
        let x = Csr::from_dense(&fx.matrix(&format!("{key}.x")));
        let noise = Noise {
            eps: fx.matrix(&format!("{key}.eps")),
            eta: fx.matrix(&format!("{key}.eta")),
        };
        let (_, torch_losses) = fx.tensor(&format!("{key}.losses"));
        let losses = net.train_step(&mut ws, &x, &noise, Schedule::constant(&cfg));
        let ours = [losses.total, losses.recon, losses.kl];
        for (what, (a, b)) in ["loss", "recon", "kl"]
            .iter()
            .zip(ours.iter().zip(&torch_losses))
        {
            let d = relative_difference(&[*a], &[*b]);
            assert!(d <= TOLERANCE, "{key} {what}: ours {a} torch {b} ({d:e})");
        }
        let fused = net.grad_dict();
        let mut worst = (0.0f64, String::new());
        for (name, shape, g) in &fused {
            let (torch_shape, torch) = fx.tensor(&format!("{key}.grad.{name}"));
            assert_eq!(shape, &torch_shape, "{key} {name}");
            let d = relative_difference(g, &torch);
            assert!(d <= TOLERANCE, "{key} {name}: {d:e}");
            if d >= worst.0 {
                worst = (d, name.clone());
            }
        }
        // The layer-by-layer reference path gives the same gradients.
        net.forward(&mut ws, &x, &noise, Schedule::constant(&cfg));
        net.backward(&mut ws, &x, Schedule::constant(&cfg));
        for ((name, _, unfused), (_, _, g)) in net.grad_dict().iter().zip(&fused) {
            let d = relative_difference(unfused, g);
            assert!(d <= TOLERANCE, "{key} {name}: unfused differs by {d:e}");
        }
        eprintln!("{key}: largest difference {:.1e} ({})", worst.0, worst.1);
    }
}

#[test]
fn parity_pytorch_ae_paper() {
    check(ModelKind::Ae, Preset::Paper);
}

#[test]
fn parity_pytorch_ae_seed_code() {
    check(ModelKind::Ae, Preset::SeedCode);
}

#[test]
fn parity_pytorch_vae_paper() {
    check(ModelKind::Vae, Preset::Paper);
}

#[test]
fn parity_pytorch_vae_seed_code() {
    check(ModelKind::Vae, Preset::SeedCode);
}

#[test]
fn parity_pytorch_vsc_paper() {
    check(ModelKind::Vsc, Preset::Paper);
}

#[test]
fn parity_pytorch_vsc_seed_code() {
    check(ModelKind::Vsc, Preset::SeedCode);
}
