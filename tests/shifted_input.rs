//! Scaled data are stored sparse, as their change `s` from a zero's z-score `c`
//! (`Scaling::apply`, `Network::set_input_shift`): a network given `s` with the shift `c` must
//! compute what the same network computes on the dense matrix `s + 1·cᵀ`, losses and every
//! gradient, in the fused training step and in the unfused forward and backward, for each
//! model, with BatchNorm, with the batch appended to the encoder's input, and under NB (where
//! only the encoder reads the scaled values). In f64, so "the same" is to 1e-10; the unshifted
//! networks' gradients are checked against finite differences in `tests/gradcheck_models.rs`.

use cellvae::csr::Csr;
use cellvae::engine::adam::Parameters;
use cellvae::engine::rng::{stream, Stream};
use cellvae::models::{Likelihood, ModelConfig, ModelKind, Network, Noise, Preset, Schedule};
use rand::Rng;

mod common;
use common::small;

const GENES: usize = 11;
const CELLS: usize = 8;

/// A sparse batch (about 40 % nonzero) and a shift of both signs.
fn data() -> (Csr<f64>, Vec<f64>) {
    let mut rng = stream(3, Stream::Init);
    let s = common::sparse_batch(CELLS, GENES, &mut rng);
    let shift = (0..GENES).map(|_| rng.random_range(-1.5..0.5)).collect();
    (s, shift)
}

/// `s + 1·cᵀ` with every entry stored.
fn dense(s: &Csr<f64>, c: &[f64]) -> Csr<f64> {
    let mut d = s.to_dense();
    for mut row in d.rows_mut() {
        row += &ndarray::ArrayView1::from(c);
    }
    Csr::from_dense(&d)
}

fn grads(net: &mut Network<f64>) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    net.for_each_param(&mut |_, g| out.push(g.to_vec()));
    out
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-10 * (1.0 + b.abs()),
        "{what}: {a} vs {b}"
    );
}

fn assert_grads(shifted: &mut Network<f64>, dense: &mut Network<f64>, what: &str) {
    let names = dense.state_dict();
    for (t, (a, b)) in grads(shifted).iter().zip(grads(dense)).enumerate() {
        for (&a, &b) in a.iter().zip(&b) {
            assert_close(a, b, &format!("{what}: {}", names[t].0));
        }
    }
}

/// Runs `cfg` both ways and compares.
fn check(cfg: ModelConfig, batches: Option<&[u32]>) {
    let what = format!(
        "{:?} {:?} bn={} batches={}",
        cfg.kind,
        cfg.likelihood,
        cfg.batchnorm,
        batches.is_some()
    );
    let (s, c) = data();
    let x = dense(&s, &c);
    let counts = Csr::from_dense(&x.to_dense().mapv(|v| (v * 3.0).abs().round()));
    let mut plain = Network::<f64>::new(cfg.clone(), GENES, 4).unwrap();
    let mut shifted = plain.clone();
    let c32: Vec<f32> = c.iter().map(|&v| v as f32).collect();
    shifted.set_input_shift(&c32);
    // The f32 shift is what the network holds; the dense side uses the same values.
    let c: Vec<f64> = c32.iter().map(|&v| v as f64).collect();
    let x = dense(&s, &c);
    let noise = Noise::draw(&mut stream(4, Stream::Noise), cfg.kind, CELLS, cfg.latent);
    let sched = Schedule::constant(&cfg);
    let mut ws_plain = plain.workspace(CELLS, true);
    let mut ws_shifted = shifted.workspace(CELLS, true);
    for ws in [&mut ws_plain, &mut ws_shifted] {
        ws.set_training(true);
        if let Some(ids) = batches {
            ws.set_batch(ids);
        }
    }
    if cfg.likelihood == Likelihood::Nb {
        let a = shifted.train_step_nb(&mut ws_shifted, &s, &counts, &noise, sched);
        let b = plain.train_step_nb(&mut ws_plain, &x, &counts, &noise, sched);
        assert_close(a.total, b.total, &format!("{what}: NB loss"));
        assert_grads(&mut shifted, &mut plain, &what);
        return;
    }
    let a = shifted.train_step(&mut ws_shifted, &s, &noise, sched);
    let b = plain.train_step(&mut ws_plain, &x, &noise, sched);
    assert_close(a.total, b.total, &format!("{what}: fused loss"));
    assert_grads(&mut shifted, &mut plain, &format!("{what}, fused"));
    let a = shifted.forward(&mut ws_shifted, &s, &noise, sched);
    let b = plain.forward(&mut ws_plain, &x, &noise, sched);
    assert_close(a.total, b.total, &format!("{what}: unfused loss"));
    shifted.backward(&mut ws_shifted, &s, sched);
    plain.backward(&mut ws_plain, &x, sched);
    assert_grads(&mut shifted, &mut plain, &format!("{what}, unfused"));
}

#[test]
fn every_model_reads_the_shifted_input_as_the_dense_one() {
    for kind in ModelKind::ALL {
        check(small(kind, Preset::Paper), None);
        let mut cfg = small(kind, Preset::Scrna);
        cfg.batchnorm = true;
        cfg.dropout = 0.0;
        check(cfg, None);
    }
}

#[test]
fn conditional_and_count_models_read_it_too() {
    let ids: [u32; CELLS] = [0, 2, 1, 0, 2, 2, 1, 0];
    for (likelihood, encode_batch) in [
        (Likelihood::Mse, true),
        (Likelihood::Mse, false),
        (Likelihood::Nb, true),
    ] {
        let mut cfg = small(ModelKind::Vae, Preset::Paper);
        cfg.likelihood = likelihood;
        cfg.encode_batch = encode_batch;
        cfg.condition_on_batches(3).unwrap();
        check(cfg, Some(&ids));
    }
    let mut cfg = small(ModelKind::Vsc, Preset::Paper);
    cfg.likelihood = Likelihood::Nb;
    check(cfg, None);
}
