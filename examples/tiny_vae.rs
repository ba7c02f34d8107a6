//! The place to start: a tiny β-VAE trained on 440 PBMC3k cells with the engine's pieces
//! called directly (no `Network`): each layer's forward, then the backward passes in exactly
//! the reverse order, each adding into the gradient buffers of its forward's inputs.
//!
//! ```text
//! x (B, genes) ─SparseDense+ReLU─▶ h (B, 64) ─Dense─▶ μ, ℓ (B, 4) ─Reparam─▶ z
//! z ─Dense+ReLU─▶ g (B, 64) ─Dense─▶ x̂ (B, genes)      loss = MSE(x̂, x) + β·KL(μ, ℓ)
//! ```
//!
//! `cargo run --release --example tiny_vae` prints the loss per epoch: the reconstruction per
//! entry falls from 0.32 to the bias-only plateau (0.14, what ignoring the input reaches),
//! then below it as the code starts to carry information.

use cellvae::csr::{Csc, Csr};
use cellvae::engine::adam::{Adam, Parameters};
use cellvae::engine::dense::Dense;
use cellvae::engine::relu::act_backward;
use cellvae::engine::reparam::Reparam;
use cellvae::engine::rng::{stream, Stream};
use cellvae::engine::sparse_dense::SparseDense;
use cellvae::engine::Activation::{Identity, Relu};
use cellvae::engine::{gaussian_kl, mse, Reduction};
use cellvae::io::{read_dataset, ReadOptions};
use cellvae::preprocess::{prepare, select, PrepOptions};
use ndarray::{Array, Array2, Dimension};
use rand::{seq::SliceRandom, Rng};
use rand_distr::StandardNormal;
use std::path::Path;

const HIDDEN: usize = 64;
const LATENT: usize = 4;
const BETA: f64 = 1.0;
const BATCH: usize = 64;
const EPOCHS: usize = 30;

struct TinyVae {
    encoder: SparseDense<f32>,
    mu: Dense<f32>,
    logvar: Dense<f32>,
    decoder: Dense<f32>,
    output: Dense<f32>,
}

/// Adam sees every (value, gradient) pair, in a fixed order.
impl Parameters<f32> for TinyVae {
    fn for_each_param(&mut self, f: &mut dyn FnMut(&mut [f32], &mut [f32])) {
        let e = &mut self.encoder;
        f(value(&mut e.weight_t), value(&mut e.dweight_t));
        f(value(&mut e.bias), value(&mut e.dbias));
        for l in [
            &mut self.mu,
            &mut self.logvar,
            &mut self.decoder,
            &mut self.output,
        ] {
            f(value(&mut l.weight), value(&mut l.dweight));
            f(value(&mut l.bias), value(&mut l.dbias));
        }
    }
}

fn value<D: Dimension>(a: &mut Array<f32, D>) -> &mut [f32] {
    a.as_slice_mut().unwrap()
}

fn main() -> cellvae::Result<()> {
    let raw = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default())?;
    let data = prepare(raw, &PrepOptions::default())?.data;
    let cells: Vec<usize> = (0..data.n_cells()).step_by(6).collect();
    let x_all: Csr<f32> = select(data, Some(&cells), None).matrix;
    let (n, genes) = (x_all.n_rows, x_all.n_cols);
    println!("{n} cells × {genes} genes; β = {BETA}, latent {LATENT}");
    let init = &mut stream(1, Stream::Init);
    let mut m = TinyVae {
        encoder: SparseDense::new(genes, HIDDEN, init),
        mu: Dense::new(HIDDEN, LATENT, init),
        logvar: Dense::new(HIDDEN, LATENT, init),
        decoder: Dense::new(LATENT, HIDDEN, init),
        output: Dense::new(HIDDEN, genes, init),
    };
    let mut adam = Adam::new(1e-3);
    let (mut shuffle, mut noise) = (stream(1, Stream::Shuffle), stream(1, Stream::Noise));
    let mut order: Vec<usize> = (0..n).collect();
    let zeros = |b: usize, w: usize| Array2::<f32>::zeros((b, w));
    for epoch in 1..=EPOCHS {
        order.shuffle(&mut shuffle);
        let (mut recon_sum, mut kl_sum) = (0.0, 0.0);
        for rows in order.chunks(BATCH) {
            let (x, b) = (x_all.select_rows(rows), rows.len());
            // ---- forward ----
            let mut h = zeros(b, HIDDEN);
            m.encoder.forward(&x, h.view_mut(), Relu);
            let (mut mu, mut logvar) = (zeros(b, LATENT), zeros(b, LATENT));
            m.mu.forward(h.view(), mu.view_mut(), Identity);
            m.logvar.forward(h.view(), logvar.view_mut(), Identity);
            let eps = Array2::from_shape_fn((b, LATENT), |_| noise.sample(StandardNormal));
            let mut sampler = Reparam::default();
            sampler.forward(mu.view(), logvar.view(), eps.view());
            let mut g = zeros(b, HIDDEN);
            m.decoder.forward(sampler.z.view(), g.view_mut(), Relu);
            let mut xhat = zeros(b, genes);
            m.output.forward(g.view(), xhat.view_mut(), Identity);
            let recon = mse::forward(xhat.view(), &x, Reduction::Mean);
            let kl = gaussian_kl::forward(mu.view(), logvar.view(), Reduction::Mean);

            // ---- backward: the forward in reverse ----
            m.encoder.zero_grad();
            let dense = [&mut m.mu, &mut m.logvar, &mut m.decoder, &mut m.output];
            dense.into_iter().for_each(Dense::zero_grad);
            let mut dxhat = zeros(b, genes);
            mse::backward(xhat.view(), &x, Reduction::Mean, dxhat.view_mut());
            let mut dg = zeros(b, HIDDEN);
            m.output
                .backward(g.view(), dxhat.view(), Some(dg.view_mut()));
            act_backward(g.view(), dg.view_mut(), Relu);
            let mut dz = zeros(b, LATENT);
            m.decoder
                .backward(sampler.z.view(), dg.view(), Some(dz.view_mut()));
            let (mut dmu, mut dlogvar) = (zeros(b, LATENT), zeros(b, LATENT));
            sampler.backward(dz.view(), dmu.view_mut(), dlogvar.view_mut());
            let (dm, dl) = (dmu.view_mut(), dlogvar.view_mut());
            gaussian_kl::backward(mu.view(), logvar.view(), Reduction::Mean, BETA, dm, dl);
            let mut dh = zeros(b, HIDDEN); // both heads add into δh
            m.mu.backward(h.view(), dmu.view(), Some(dh.view_mut()));
            m.logvar
                .backward(h.view(), dlogvar.view(), Some(dh.view_mut()));
            act_backward(h.view(), dh.view_mut(), Relu);
            let mut xt = Csc::default(); // the first layer's backward reads xᵀ
            xt.rebuild_from(&x);
            m.encoder.backward(&xt, dh.view());

            adam.step(&mut m).expect("a finite update");
            recon_sum += recon * b as f64;
            kl_sum += kl * b as f64;
        }
        let (recon, kl) = (recon_sum / n as f64, kl_sum / n as f64);
        println!(
            "epoch {epoch:2}  loss {:8.2}  recon/entry {:.4}  KL {kl:.3}",
            recon + BETA * kl,
            recon / genes as f64
        );
    }
    Ok(())
}
