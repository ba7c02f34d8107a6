//! Training on a small real subset of PBMC3k: the loss falls for all three models, and the
//! per-epoch records are consistent.

use cellvae::io::{read_dataset, ReadOptions};
use cellvae::models::{ModelConfig, ModelKind, Network, Preset};
use cellvae::preprocess::{prepare, select, PrepOptions};
use cellvae::train::progress::Progress;
use cellvae::train::{train, TrainOptions};
use std::path::Path;

#[test]
fn loss_falls_on_a_real_subset() {
    let raw = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default()).unwrap();
    let d = prepare(raw, &PrepOptions::default()).unwrap().data;
    let cells: Vec<usize> = (0..d.n_cells()).step_by(8).collect(); // 330 cells
    let d = select(d, Some(&cells), None);
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::preset(kind, Preset::Paper);
        let mut net = Network::<f32>::new(cfg, d.n_genes(), 5).unwrap();
        let opts = TrainOptions {
            batch_size: 64,
            epochs: 6,
            lr: 1e-3,
            seed: 5,
        };
        let recs = train(&mut net, &d.matrix, &opts, &mut Progress::quiet()).unwrap();
        let first = recs.first().unwrap();
        let last = recs.last().unwrap();
        assert!(
            (0.25..0.33).contains(&first.recon_per_entry),
            "{kind:?}: first epoch {}",
            first.recon_per_entry
        );
        assert!(
            last.recon_per_entry < 0.8 * first.recon_per_entry,
            "{kind:?}: {} -> {}",
            first.recon_per_entry,
            last.recon_per_entry
        );
        for r in &recs {
            assert!((r.loss - (r.recon + net.config.beta * r.kl)).abs() < 1e-6 * r.loss);
            assert!((r.recon_per_entry - r.recon / d.n_genes() as f64).abs() < 1e-12);
        }
    }
}
