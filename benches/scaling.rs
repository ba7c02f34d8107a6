//! `cargo bench --bench scaling`: training throughput against the number of cells, on synthetic
//! sparse matrices with PBMC3k's shape per cell (13,714 genes, 500–1,300 nonzeros per cell,
//! values like LogNormalized counts), `paper` AE, batch 256, one epoch after a warm-up epoch.
//! Linear scaling means cells per second stay flat: no step is quadratic in the cells and
//! nothing densifies the whole matrix. Then a Barnes–Hut t-SNE of the largest set's codes.

use cellvae::analysis::pca::pca;
use cellvae::analysis::tsne::{tsne, Method, TsneOptions};
use cellvae::csr::Csr;
use cellvae::engine::rng::{stream, Stream};
use cellvae::models::{ModelConfig, ModelKind, Network, Preset};
use cellvae::train::progress::Progress;
use cellvae::train::{train, TrainOptions};
use rand::Rng;
use std::time::Instant;

fn synthetic(cells: usize, genes: usize) -> Csr<f32> {
    let mut rng = stream(cells as u64, Stream::Init);
    let mut x = Csr::with_cols(genes);
    for _ in 0..cells {
        let nnz = rng.random_range(500..1300);
        let mut cols: Vec<u32> = (0..nnz)
            .map(|_| rng.random_range(0..genes as u32))
            .collect();
        cols.sort_unstable();
        cols.dedup();
        let vals: Vec<f32> = cols.iter().map(|_| rng.random_range(0.5f32..3.5)).collect();
        x.push_row(&cols, &vals);
    }
    x
}

fn main() {
    // `cargo bench` passes --bench; a filter argument, if any, is ignored.
    let genes = 13714;
    let sizes = [2_638usize, 25_000, 100_000];
    println!("| cells | nonzeros | s/epoch | cells/s |");
    println!("|---|---|---|---|");
    let mut largest = None;
    for &cells in &sizes {
        let x = synthetic(cells, genes);
        let mut net =
            Network::<f32>::new(ModelConfig::preset(ModelKind::Ae, Preset::Paper), genes, 1)
                .expect("network");
        let opts = TrainOptions {
            batch_size: 256,
            epochs: 1,
            lr: 1e-3,
            seed: 1,
            unfused_output: false,
            ..TrainOptions::default()
        };
        train(&mut net, &x, &opts, &mut Progress::quiet()).expect("warm-up epoch");
        let t = Instant::now();
        train(&mut net, &x, &opts, &mut Progress::quiet()).expect("epoch");
        let s = t.elapsed().as_secs_f64();
        println!(
            "| {cells} | {} | {s:.3} | {:.0} |",
            x.nnz(),
            cells as f64 / s
        );
        largest = Some(x);
    }
    let x = largest.expect("at least one size");
    let codes = pca(&x, 6, 1).scores;
    for dims in [2, 3] {
        let mut o = TsneOptions::new(dims, 1);
        o.method = Method::BarnesHut;
        let t = Instant::now();
        let e = tsne(&codes, &o).expect("t-SNE");
        println!(
            "Barnes-Hut t-SNE, {dims}-D, {} points, 1000 iterations: {:.1} s (KL {:.3})",
            x.n_rows,
            t.elapsed().as_secs_f64(),
            e.kl_divergence
        );
    }
}
