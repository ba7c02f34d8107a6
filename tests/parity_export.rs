//! Writes the inputs and outputs of one training step of each `paper` model for the PyTorch
//! parity check (`benches/parity_pytorch.py`). Ignored by default (it writes ~70 MB):
//!
//! ```text
//! cargo test --release --test parity_export -- --ignored
//! python benches/parity_pytorch.py target/parity
//! ```
//!
//! Each `target/parity/<model>.safetensors` holds the weights (`param.<name>`), the batch
//! (`x`, dense), the noise (`eps`, `eta`), cellvae's gradients (`grad.<name>`) and the batch's
//! codes (`codes`); the metadata holds the configuration and cellvae's loss terms. Beside it,
//! `<model>_model.safetensors` is the same network as a cellvae checkpoint, for the loader check.

use cellvae::engine::rng::{stream, Stream};
use cellvae::io::{read_dataset, ReadOptions};
use cellvae::models::{ModelConfig, ModelKind, Network, Noise, Preset, Schedule};
use cellvae::preprocess::{prepare, PrepOptions};
use cellvae::train::checkpoint::{self, safetensors_bytes, CheckpointMeta};
use serde_json::{Map, Value};
use std::path::Path;

#[test]
#[ignore]
fn export_parity_fixtures() {
    let raw = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default()).unwrap();
    let data = prepare(raw, &PrepOptions::default()).unwrap().data;
    let x = data.matrix.clone();
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
        let losses = net.train_step(&mut ws, &batch, &noise, Schedule::constant(&cfg));
        let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
        for (name, shape, v) in net.state_dict() {
            tensors.push((format!("param.{name}"), shape, v));
        }
        for (name, shape, v) in net.grad_dict() {
            tensors.push((format!("grad.{name}"), shape, v));
        }
        // The codes of the batch, and the model as a real checkpoint: the documented PyTorch
        // loader must turn the one into the other.
        let codes = cellvae::models::codes::extract(&net, &batch, None, 12, true);
        tensors.push((
            "codes".into(),
            vec![rows.len(), codes.values.ncols()],
            codes.values.iter().map(|&v| v as f32).collect(),
        ));
        let meta = CheckpointMeta {
            config: cfg.clone(),
            gene_ids: data.gene_ids.clone(),
            gene_names: data.gene_names.clone(),
            has_gene_ids: data.has_gene_ids,
            seed: 11,
            epochs: 0,
            batch_size: rows.len(),
            lr: 1e-3,
            scaling: None,
            batch_names: None,
        };
        checkpoint::save(
            &dir.join(format!("{}_model.safetensors", kind.name())),
            &net,
            &meta,
        )
        .unwrap();
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
