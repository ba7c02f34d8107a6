//! Parity with PyTorch autograd in f64, inside `cargo test`: for the AE, β-VAE and β-VSC in
//! both presets (scaled down), PyTorch's weights, batches and noise are loaded from a
//! committed fixture, one training step runs ([`Network::train_step`], the fused output layer,
//! as training uses), and the loss terms and every gradient are compared with autograd's, per
//! tensor: `max|ours − torch| / max|torch| ≤ 1e-10`. A full batch (8 cells) and a partial one
//! (5 cells in a workspace for 8, as the last batch of an epoch) are checked for each model;
//! the unfused `forward` + `backward` must agree too. A second fixture holds the models
//! beyond the study's, each with BatchNorm and dropout (PyTorch's masks set on the
//! workspace): the three `paper` shapes, the NB likelihood, and two models conditioned on the
//! batch (decoder and encoder; decoder with one NB dispersion per gene and batch).
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
/// The models beyond the study's: BatchNorm and dropout, NB, batch conditioning
/// (`make_fixture_more.py`).
const FIXTURE_MORE: &str = "tests/fixtures/parity/pytorch_f64_more.safetensors";
const TOLERANCE: f64 = 1e-10;
const CAPACITY: usize = 8;

struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    fn load() -> Self {
        Self::read(FIXTURE)
    }

    fn read(path: &str) -> Self {
        Fixture {
            bytes: std::fs::read(path).expect("the committed parity fixture"),
        }
    }

    fn has(&self, name: &str) -> bool {
        SafeTensors::deserialize(&self.bytes)
            .unwrap()
            .tensor(name)
            .is_ok()
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

/// `max|ours − torch| / max|torch|` (absolute where torch's tensor is zero to rounding: a
/// bias just before a BatchNorm has no gradient, so both sides hold rounding noise of 1e-17).
fn relative_difference(ours: &[f64], torch: &[f64]) -> f64 {
    assert_eq!(ours.len(), torch.len());
    let scale = torch.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(torch)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    if scale > 1e-12 {
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

/// A case of the second fixture: the weights (BatchNorm statistics included) in training mode,
/// PyTorch's dropout masks, batches and counts set on the workspace, one training step; the
/// loss terms and every gradient against autograd's, and the unfused path for the MSE models.
fn check_more(case: &str) {
    let fx = Fixture::read(FIXTURE_MORE);
    let stored: serde_json::Value =
        serde_json::from_str(&fx.metadata(&format!("{case}.config"))).unwrap();
    let cfg = ModelConfig::from_json(&stored).expect("a cellvae configuration");
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
    let nb = cfg.likelihood == cellvae::models::Likelihood::Nb;
    let s = Schedule::constant(&cfg);
    for batch in ["full", "partial"] {
        net.load_state_dict(&weights).unwrap();
        let mut ws = net.workspace(CAPACITY, true);
        ws.set_training(true);
        let key = format!("{case}.{batch}");
        let x = Csr::from_dense(&fx.matrix(&format!("{key}.x")));
        let mut p = 0;
        while fx.has(&format!("{key}.mask.{p}")) {
            ws.set_dropout_mask(p, fx.matrix(&format!("{key}.mask.{p}")).view());
            p += 1;
        }
        assert_eq!(
            p,
            cfg.trunk.len() + cfg.decoder.len(),
            "{key}: a mask per position"
        );
        if cfg.n_batches > 0 {
            let ids: Vec<u32> = fx
                .tensor(&format!("{key}.batch"))
                .1
                .iter()
                .map(|&b| b as u32)
                .collect();
            ws.set_batch(&ids);
        }
        let noise = Noise {
            eps: fx.matrix(&format!("{key}.eps")),
            eta: fx.matrix(&format!("{key}.eta")),
        };
        let counts = nb.then(|| Csr::from_dense(&fx.matrix(&format!("{key}.counts"))));
        let losses = match &counts {
            Some(y) => net.train_step_nb(&mut ws, &x, y, &noise, s),
            None => net.train_step(&mut ws, &x, &noise, s),
        };
        let (_, torch_losses) = fx.tensor(&format!("{key}.losses"));
        for (what, (a, b)) in ["loss", "recon", "kl"].iter().zip(
            [losses.total, losses.recon, losses.kl]
                .iter()
                .zip(&torch_losses),
        ) {
            let d = relative_difference(&[*a], &[*b]);
            assert!(d <= TOLERANCE, "{key} {what}: ours {a} torch {b} ({d:e})");
        }
        let fused = net.grad_dict();
        for (name, shape, g) in &fused {
            let (torch_shape, torch) = fx.tensor(&format!("{key}.grad.{name}"));
            assert_eq!(shape, &torch_shape, "{key} {name}");
            let d = relative_difference(g, &torch);
            assert!(d <= TOLERANCE, "{key} {name}: {d:e}");
        }
        if counts.is_none() {
            net.forward(&mut ws, &x, &noise, s);
            net.backward(&mut ws, &x, s);
            for ((name, _, unfused), (_, _, g)) in net.grad_dict().iter().zip(&fused) {
                let d = relative_difference(unfused, g);
                assert!(d <= TOLERANCE, "{key} {name}: unfused differs by {d:e}");
            }
        }
    }
}

#[test]
fn parity_pytorch_batchnorm_dropout() {
    for case in ["ae_bn", "vae_bn", "vsc_bn"] {
        check_more(case);
    }
}

#[test]
fn parity_pytorch_nb() {
    check_more("vae_nb");
}

#[test]
fn parity_pytorch_conditional() {
    check_more("vae_cond");
    check_more("vsc_cond_nb");
}
