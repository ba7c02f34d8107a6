//! Writes the inputs and outputs of one training step of each `paper` model for the PyTorch
//! parity check (`benches/parity_pytorch.py`). Ignored by default (it writes ~70 MB):
//!
//! ```text
//! cargo test --release --test parity_export -- --ignored
//! python benches/parity_pytorch.py target/parity
//! ```
//!
//! Each `target/parity/<model>.safetensors` holds the weights (`param.<name>`), the batch
//! (`x`, dense), the noise (`eps`, `eta`), and cellvae's gradients (`grad.<name>`); the metadata
//! holds the configuration and cellvae's loss terms.

use cellvae::engine::rng::{stream, Stream};
use cellvae::io::{read_dataset, ReadOptions};
use cellvae::models::{ModelConfig, ModelKind, Network, Noise, Preset};
use cellvae::preprocess::{prepare, PrepOptions};
use cellvae::train::checkpoint::safetensors_bytes;
use serde_json::{Map, Value};
use std::path::Path;

#[test]
#[ignore]
fn export_parity_fixtures() {
    let raw = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default()).unwrap();
    let x = prepare(raw, &PrepOptions::default()).unwrap().data.matrix;
    let rows: Vec<usize> = (0..64).map(|i| i * 41).collect();
    let batch = x.select_rows(&rows);
    let dir = Path::new("target/parity");
    std::fs::create_dir_all(dir).unwrap();
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::preset(kind, Preset::Paper);
        let mut net = Network::<f32>::new(cfg.clone(), x.n_cols, 11).unwrap();
        let noise =
            Noise::<f32>::draw(&mut stream(12, Stream::Noise), kind, rows.len(), cfg.latent);
        let mut ws = net.workspace(rows.len(), true);
        // The training step's gradients (output layer and loss in Gram form), as training uses.
        let losses = net.train_step(&mut ws, &batch, &noise, cfg.vsc_c);
        let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
        for (name, shape, v) in net.state_dict() {
            tensors.push((format!("param.{name}"), shape, v));
        }
        for (name, shape, v) in net.grad_dict() {
            tensors.push((format!("grad.{name}"), shape, v));
        }
        let dense = batch.to_dense();
        tensors.push((
            "x".into(),
            vec![rows.len(), x.n_cols],
            dense.iter().copied().collect(),
        ));
        tensors.push((
            "eps".into(),
            vec![rows.len(), cfg.latent],
            noise.eps.iter().copied().collect(),
        ));
        tensors.push((
            "eta".into(),
            vec![rows.len(), cfg.latent],
            noise.eta.iter().copied().collect(),
        ));
        let mut md = Map::new();
        md.insert("config".into(), Value::String(cfg.to_json().to_string()));
        md.insert("loss".into(), Value::String(losses.total.to_string()));
        md.insert("recon".into(), Value::String(losses.recon.to_string()));
        md.insert("kl".into(), Value::String(losses.kl.to_string()));
        std::fs::write(
            dir.join(format!("{}.safetensors", kind.name())),
            safetensors_bytes(tensors, md),
        )
        .unwrap();
    }
}
