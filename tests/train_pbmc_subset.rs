//! Training on a small real subset of PBMC3k: every model's reconstruction falls below the
//! bias-only plateau of that subset, so its latent code carries information about the cells.
//!
//! The plateau is the best any network can do while ignoring its input: a constant output,
//! best at the per-gene mean, whose squared error per matrix entry is
//! `Σ_g Σ_i (x_ig − x̄_g)² / (cells · genes)` (0.142 on all 2,638 cells). It is computed here
//! on the test's own cells.

use cellvae::io::{read_dataset, ReadOptions};
use cellvae::models::{ModelConfig, ModelKind, Network, Preset};
use cellvae::preprocess::{prepare, select, PrepOptions};
use cellvae::train::progress::Progress;
use cellvae::train::{train, TrainOptions};
use std::path::Path;

/// Squared error per entry of the per-gene-mean prediction.
fn bias_only_plateau(x: &cellvae::csr::Csr<f32>) -> f64 {
    let (n, d) = (x.n_rows as f64, x.n_cols);
    let (mut sum, mut sum_sq) = (vec![0.0f64; d], vec![0.0f64; d]);
    for i in 0..x.n_rows {
        let (cols, vals) = x.row(i);
        for (&j, &v) in cols.iter().zip(vals) {
            sum[j as usize] += v as f64;
            sum_sq[j as usize] += (v as f64).powi(2);
        }
    }
    let ss: f64 = (0..d).map(|j| sum_sq[j] - sum[j] * sum[j] / n).sum();
    ss / (n * d as f64)
}

#[test]
fn reconstruction_falls_below_the_bias_only_plateau() {
    let raw = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default()).unwrap();
    let d = prepare(raw, &PrepOptions::default()).unwrap().data;
    let cells: Vec<usize> = (0..d.n_cells()).step_by(4).collect(); // 660 cells
    let d = select(d, Some(&cells), None);
    let plateau = bias_only_plateau(&d.matrix);
    assert!((0.12..0.17).contains(&plateau), "plateau {plateau}");
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::preset(kind, Preset::Paper);
        let mut net = Network::<f32>::new(cfg, d.n_genes(), 5).unwrap();
        let opts = TrainOptions {
            batch_size: 64,
            epochs: EPOCHS,
            lr: 1e-3,
            seed: 5,
            unfused_output: false,
            ..TrainOptions::default()
        };
        let recs = train(&mut net, &d.matrix, &opts, &mut Progress::quiet()).unwrap();
        let first = recs.first().unwrap().recon_per_entry;
        let last = recs.last().unwrap().recon_per_entry;
        eprintln!("{kind:?}: {first:.4} -> {last:.4} (plateau {plateau:.4})");
        // The first epoch starts near E[x²], well above the plateau.
        assert!(first > plateau, "{kind:?}: first epoch {first}");
        assert!(
            last < plateau,
            "{kind:?}: {last} after {EPOCHS} epochs, plateau {plateau}"
        );
    }
}

const EPOCHS: usize = 25;
