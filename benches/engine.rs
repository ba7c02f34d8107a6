//! `cargo bench --bench engine`: the hot GEMM shapes (GFLOP/s; Criterion's "elem/s" are
//! flop/s here), one training step and one epoch of each `paper` model on PBMC3k, t-SNE on the
//! 2,638 PBMC3k cells (exact and Barnes–Hut, 2-D and 3-D), k-means and PCA. Scaling with the
//! number of cells is `benches/scaling.rs`.

use cellvae::analysis::kmeans::{kmeans, KMeansOptions};
use cellvae::analysis::tsne::{tsne, Method, TsneOptions};
use cellvae::engine::adam::{Adam, Parameters};
use cellvae::engine::gemm::gemm;
use cellvae::engine::output_mse::{self, OutputScratch};
use cellvae::engine::rng::{stream, Stream};
use cellvae::engine::{mse, Activation, Reduction};
use cellvae::io::{read_dataset, ReadOptions};
use cellvae::models::{ModelConfig, ModelKind, Network, Noise, Preset, Schedule};
use cellvae::preprocess::{prepare, PrepOptions};
use cellvae::train::progress::Progress;
use cellvae::train::{train, TrainOptions};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use rand::Rng;
use std::path::Path;
use std::time::{Duration, Instant};

fn pbmc() -> cellvae::csr::Csr<f32> {
    let raw = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default()).expect("data/pbmc3k");
    prepare(raw, &PrepOptions::default())
        .expect("preprocess")
        .data
        .matrix
}

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = stream(seed, Stream::Init);
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
}

/// The five dense products of a `paper` training step that dominate its cost
/// (B = 256, d = 13,714, last hidden width 128). Outputs are allocated once, outside the timing.
fn gemm_shapes(c: &mut Criterion) {
    let (b, d, h) = (256, 13714, 128);
    let mut g = c.benchmark_group("gemm");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(2 * (b * h * d) as u64));
    let x = random(b, h, 1); // decoder input
    let w = random(d, h, 2); // output layer weight (out, in)
    let dy = random(b, d, 3); // gradient of the reconstruction
    let xd = random(b, d, 4); // a dense first-layer input
    let w1 = random(h, d, 5); // first layer weight
    let mut wide = Array2::<f32>::zeros((b, d));
    let mut tall = Array2::<f32>::zeros((d, h));
    let mut small = Array2::<f32>::zeros((b, h));
    let mut flat = Array2::<f32>::zeros((h, d));
    g.bench_function("decoder_out_forward_256x128x13714", |bench| {
        bench.iter(|| gemm(1.0, x.view(), w.t(), 0.0, wide.view_mut()))
    });
    g.bench_function("decoder_out_dweight_13714x256x128", |bench| {
        bench.iter(|| gemm(1.0, dy.t(), x.view(), 1.0, tall.view_mut()))
    });
    g.bench_function("decoder_out_dinput_256x13714x128", |bench| {
        bench.iter(|| gemm(1.0, dy.view(), w.view(), 1.0, small.view_mut()))
    });
    g.bench_function("dense_first_forward_256x13714x128", |bench| {
        bench.iter(|| gemm(1.0, xd.view(), w1.t(), 0.0, small.view_mut()))
    });
    g.bench_function("dense_first_dweight_128x256x13714", |bench| {
        bench.iter(|| {
            gemm(
                1.0,
                dy.slice(ndarray::s![.., ..h]).t(),
                xd.view(),
                1.0,
                flat.view_mut(),
            )
        })
    });
    // The Gram form's two products (engine::output_mse): WᵀW and W·(HᵀH), 2·d·h² flops each.
    g.throughput(Throughput::Elements(2 * (d * h * h) as u64));
    let mut gram = Array2::<f32>::zeros((h, h));
    let (bias, mut wtb) = (vec![0.01f32; d], vec![0.0f32; h]);
    g.bench_function("gram_wtw_128x13714x128", |bench| {
        bench.iter(|| gemm(1.0, w.t(), w.view(), 0.0, gram.view_mut()))
    });
    g.bench_function("gram_wtw_upper_tiles_and_wtb_128x13714x128", |bench| {
        bench.iter(|| {
            cellvae::engine::gram::gram_and_wtb(w.view(), &bias, gram.view_mut(), &mut wtb)
        })
    });
    let hth = random(h, h, 6);
    g.bench_function("gram_w_hth_13714x128x128", |bench| {
        bench.iter(|| gemm(1.0, w.view(), hth.view(), 1.0, tall.view_mut()))
    });
    g.bench_function("gram_w_hth_bands_13714x128x128", |bench| {
        use rayon::prelude::*;
        let (ws, hs) = (w.as_slice().unwrap(), hth.as_slice().unwrap());
        bench.iter(|| {
            tall.as_slice_mut()
                .unwrap()
                .par_chunks_mut(16 * h)
                .zip(ws.par_chunks(16 * h))
                .for_each(|(c, a)| cellvae::engine::gram::add_band_product(1.0, a, hs, h, h, c))
        })
    });
    g.finish();
}

fn training(c: &mut Criterion) {
    let x = pbmc();
    let mut g = c.benchmark_group("train");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for kind in ModelKind::ALL {
        let cfg = ModelConfig::preset(kind, Preset::Paper);
        let mut net = Network::<f32>::new(cfg.clone(), x.n_cols, 1).unwrap();
        let rows: Vec<usize> = (0..256).collect();
        let batch = x.select_rows(&rows);
        let mut ws = net.workspace(256, true);
        let mut adam = Adam::new(1e-3);
        let noise = Noise::draw(&mut stream(1, Stream::Noise), kind, 256, cfg.latent);
        g.bench_function(BenchmarkId::new("step", kind.name()), |bench| {
            bench.iter(|| {
                net.train_step(&mut ws, &batch, &noise, Schedule::constant(&net.config));
                adam.step(&mut net).unwrap();
            })
        });
        let opts = TrainOptions {
            batch_size: 256,
            epochs: 1,
            lr: 1e-3,
            seed: 1,
            unfused_output: false,
            ..TrainOptions::default()
        };
        g.bench_function(BenchmarkId::new("epoch", kind.name()), |bench| {
            bench.iter(|| train(&mut net, &x, &opts, &mut Progress::quiet()).unwrap())
        });
    }
    g.finish();
}

/// The pieces of a `paper` training step on a PBMC3k batch of 256 cells: the sparse first
/// layer's forward and weight gradient, the batch transpose, the output layer and loss in one
/// step (Gram form, as training runs it) and as separate layers (for comparison), one Adam
/// update of the whole VAE and the zeroing of its gradients.
fn step_parts(c: &mut Criterion) {
    let x = pbmc();
    let rows: Vec<usize> = (0..256).collect();
    let batch = x.select_rows(&rows);
    let mut batch_t = cellvae::csr::Csc::default();
    batch_t.rebuild_from(&batch);
    let cfg = ModelConfig::preset(ModelKind::Vae, Preset::Paper);
    let mut net = Network::<f32>::new(cfg.clone(), x.n_cols, 1).unwrap();
    let (b, h) = (256, cfg.trunk[0]);
    let mut g = c.benchmark_group("step_parts");
    g.sample_size(30).measurement_time(Duration::from_secs(4));
    let mut y = Array2::<f32>::zeros((b, h));
    g.bench_function("sparse_first_forward", |bench| {
        bench.iter(|| {
            net.first
                .forward(&batch, y.view_mut(), Activation::Identity)
        })
    });
    let dy = random(b, h, 7);
    g.bench_function("batch_transpose", |bench| {
        bench.iter(|| batch_t.rebuild_from(&batch))
    });
    g.bench_function("sparse_first_dweight", |bench| {
        bench.iter(|| net.first.backward(&batch_t, dy.view()))
    });
    let hidden = random(b, h, 8);
    let mut dh = Array2::<f32>::zeros((b, h));
    let mut scratch = OutputScratch::new(b, h);
    let last = net.decoder.len() - 1;
    g.bench_function("output_mse_gram", |bench| {
        bench.iter(|| {
            output_mse::forward_backward(
                &mut net.decoder[last],
                hidden.view(),
                &batch,
                &batch_t,
                Reduction::Mean,
                dh.view_mut(),
                &mut scratch,
            )
        })
    });
    let mut xhat = Array2::<f32>::zeros((b, x.n_cols));
    let mut dxhat = Array2::<f32>::zeros((b, x.n_cols));
    g.bench_function("output_mse_separate", |bench| {
        bench.iter(|| {
            let out = &mut net.decoder[last];
            out.forward(hidden.view(), xhat.view_mut(), Activation::Identity);
            let loss = mse::forward(xhat.view(), &batch, Reduction::Mean);
            dxhat.fill(0.0);
            mse::backward(xhat.view(), &batch, Reduction::Mean, dxhat.view_mut());
            out.backward(hidden.view(), dxhat.view(), Some(dh.view_mut()));
            loss
        })
    });
    let mut adam = Adam::new(1e-3);
    // Each update starts from fresh gradients (written outside the timing), as in training:
    // Adam leaves them at zero, and timing updates from zero gradients would time moments
    // decaying to nothing.
    g.bench_function("adam_vae", |bench| {
        bench.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                net.for_each_param(&mut |_, grad| grad.fill(1e-3));
                let start = Instant::now();
                adam.step(&mut net).unwrap();
                timed += start.elapsed();
            }
            timed
        })
    });
    // The pass that Adam's update now does instead (Network::zero_grad skips it after Adam).
    g.bench_function("zero_grad_vae", |bench| bench.iter(|| net.zero_grad()));
    g.finish();
}

fn analysis(c: &mut Criterion) {
    let x = pbmc();
    let codes = cellvae::analysis::pca::pca(&x, 6, 1).scores;
    let mut g = c.benchmark_group("analysis");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for (dims, method, name) in [
        (2, Method::Exact, "exact_2d"),
        (3, Method::Exact, "exact_3d"),
        (2, Method::BarnesHut, "bh_2d"),
        (3, Method::BarnesHut, "bh_3d"),
    ] {
        let mut o = TsneOptions::new(dims, 1);
        o.method = method;
        g.bench_function(BenchmarkId::new("tsne_2638", name), |bench| {
            bench.iter(|| tsne(&codes, &o).unwrap())
        });
    }
    let emb = tsne(&codes, &TsneOptions::new(2, 1)).unwrap().coords;
    g.bench_function("kmeans_k9_ninit100_2638", |bench| {
        bench.iter(|| kmeans(&emb, &KMeansOptions::new(9, 1)).unwrap())
    });
    g.bench_function("pca_6", |bench| {
        bench.iter(|| cellvae::analysis::pca::pca(&x, 6, 1))
    });
    g.finish();
}

criterion_group!(benches, gemm_shapes, step_parts, training, analysis);
criterion_main!(benches);
