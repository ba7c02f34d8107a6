//! Randomized robustness test of the readers (a bounded fuzz run inside the suite): valid
//! MatrixMarket, CSV, label and safetensors inputs are mutated (bytes flipped, inserted,
//! deleted, lines duplicated, truncated) and read back. Every outcome must be `Ok` or a clean
//! `Err`, never a panic. Seeded, so a failure reproduces.

mod common;

use cellvae::engine::rng::{stream, Stream};
use cellvae::io::{labels, read_dataset, table, ReadOptions};
use cellvae::models::{ModelConfig, ModelKind, Network, Preset};
use cellvae::train::checkpoint::{from_bytes, to_bytes, CheckpointMeta};
use common::cli::scratch;
use rand::Rng;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

const ROUNDS: usize = 500;

fn mutate<R: Rng>(rng: &mut R, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..6) {
        if v.is_empty() {
            v.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..v.len());
        match rng.random_range(0..6) {
            0 => v[at] = rng.random(),
            1 => v.insert(at, b"-0123456789.,%\n \te+naninf"[rng.random_range(0..25)]),
            2 => {
                v.remove(at);
            }
            3 => v.truncate(at),
            4 => {
                // Duplicate a line.
                let start = v[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = v[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(v.len(), |p| at + p + 1);
                let line = v[start..end].to_vec();
                v.splice(end..end, line);
            }
            _ => v[at] ^= 1 << rng.random_range(0..8),
        }
    }
    v
}

fn no_panic(what: &str, round: usize, f: impl FnOnce()) {
    let r = catch_unwind(AssertUnwindSafe(f));
    assert!(r.is_ok(), "{what}: round {round} panicked");
}

#[test]
fn mutated_10x_directories_never_panic() {
    let dir = scratch("mtx");
    let tiny = Path::new("tests/fixtures/tiny");
    let files =
        ["matrix.mtx", "genes.tsv", "barcodes.tsv"].map(|f| fs::read(tiny.join(f)).unwrap());
    let mut rng = stream(2024, Stream::Init);
    for round in 0..ROUNDS {
        let victim = rng.random_range(0..3);
        for (k, name) in ["matrix.mtx", "genes.tsv", "barcodes.tsv"]
            .iter()
            .enumerate()
        {
            let bytes = if k == victim {
                mutate(&mut rng, &files[k])
            } else {
                files[k].clone()
            };
            fs::write(dir.join(name), bytes).unwrap();
        }
        no_panic("10x", round, || {
            let _ = read_dataset(&dir, &ReadOptions::default());
        });
    }
}

#[test]
fn mutated_csv_inputs_never_panic() {
    let dir = scratch("csv");
    let matrix = b"barcode,A,B,C\nc1,1,2,3\nc2,0,4.5,0\nc3,7,0,1\n".to_vec();
    let labels_csv = fs::read("tests/fixtures/tiny/labels.csv").unwrap();
    let codes = b"barcode,z1,z2\nc1,0.5,1\nc2,-1,2e-3\n".to_vec();
    let mut rng = stream(7, Stream::Init);
    for round in 0..ROUNDS {
        let m = dir.join("m.csv");
        fs::write(&m, mutate(&mut rng, &matrix)).unwrap();
        no_panic("csv matrix", round, || {
            let _ = read_dataset(
                &m,
                &ReadOptions {
                    transpose: round % 2 == 0,
                    ..ReadOptions::default()
                },
            );
        });
        let l = dir.join("l.csv");
        fs::write(&l, mutate(&mut rng, &labels_csv)).unwrap();
        no_panic("labels", round, || {
            let _ = labels::read(&l, if round % 3 == 0 { Some("batch") } else { None });
        });
        let t = dir.join("t.csv");
        fs::write(&t, mutate(&mut rng, &codes)).unwrap();
        no_panic("table", round, || {
            let _ = table::read(&t);
        });
    }
}

#[test]
fn mutated_checkpoints_never_panic() {
    let mut cfg = ModelConfig::preset(ModelKind::Vae, Preset::Paper);
    cfg.trunk = vec![6, 4];
    cfg.decoder = vec![4];
    let net = Network::<f32>::new(cfg.clone(), 5, 1).unwrap();
    let meta = CheckpointMeta {
        config: cfg,
        gene_ids: (0..5).map(|i| format!("E{i}")).collect(),
        gene_names: (0..5).map(|i| format!("G{i}")).collect(),
        has_gene_ids: true,
        seed: 1,
        epochs: 1,
        batch_size: 8,
        lr: 1e-3,
        scaling: None,
        batch_names: None,
    };
    let bytes = to_bytes(&net, &meta);
    let mut rng = stream(99, Stream::Init);
    let mut rejected = 0;
    for round in 0..ROUNDS * 3 {
        let m = mutate(&mut rng, &bytes);
        no_panic("checkpoint", round, || {
            if from_bytes(&m).is_err() {
                rejected += 1;
            }
        });
    }
    assert!(rejected > 0);
}

/// `.h5ad` and 10x `.h5` files with bytes flipped, inserted, removed or cut: the HDF5 readers
/// answer with a value or an error, never a panic.
#[test]
fn mutated_hdf5_inputs_never_panic() {
    let dir = scratch("h5");
    let mut rng = stream(11, Stream::Init);
    for name in ["csr.h5ad", "dense.h5ad", "tenx_v3.h5"] {
        let bytes = fs::read(format!("tests/fixtures/h5/{name}")).unwrap();
        let target = dir.join(name);
        for round in 0..ROUNDS / 2 {
            fs::write(&target, mutate(&mut rng, &bytes)).unwrap();
            no_panic(name, round, || {
                let _ = read_dataset(&target, &ReadOptions::default());
            });
        }
    }
}
