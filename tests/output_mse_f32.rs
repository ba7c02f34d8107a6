//! The training step's output layer and loss in Gram form ([`output_mse`]), run in f32 at the
//! real shape, against the separate layers in f64 (and, for scale, in f32).
//!
//! Shape and data as in training: a batch of 256 real PBMC3k cells (LogNormalize, 13,714
//! genes, 6 % nonzero), a 128-wide last hidden layer `H ≥ 0` (post-ReLU), and an output layer
//! fitted to the batch by ridge least squares and then moved by 1 % of its scale: a residual
//! of 0.13 per entry, as at the end of training, where `X̂ ≈ X` and the Gram form subtracts
//! nearly equal terms (the case where its rounding is worst). The bounds are on each
//! gradient's largest error relative to its largest entry, and on the loss's relative error.
//!
//! [`output_mse`]: cellvae::engine::output_mse

use cellvae::csr::{Csc, Csr};
use cellvae::engine::dense::Dense;
use cellvae::engine::output_mse::{forward_backward, OutputScratch};
use cellvae::engine::rng::{stream, Stream};
use cellvae::engine::{mse, Activation, Reduction};
use cellvae::io::{read_dataset, ReadOptions};
use cellvae::preprocess::{prepare, PrepOptions};
use ndarray::{Array1, Array2, Axis};
use rand::Rng;
use rand_distr::StandardNormal;
use std::path::Path;

const BATCH: usize = 256;
const HIDDEN: usize = 128;

/// Solves `A·X = B` for symmetric positive definite `A` (Cholesky), `B` with many columns.
fn spd_solve(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = a[[i, j]] - (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum::<f64>();
            l[[i, j]] = if i == j { s.sqrt() } else { s / l[[j, j]] };
        }
    }
    let mut x = b.clone();
    for mut col in x.axis_iter_mut(Axis(1)) {
        for i in 0..n {
            let s: f64 = (0..i).map(|k| l[[i, k]] * col[k]).sum();
            col[i] = (col[i] - s) / l[[i, i]];
        }
        for i in (0..n).rev() {
            let s: f64 = (i + 1..n).map(|k| l[[k, i]] * col[k]).sum();
            col[i] = (col[i] - s) / l[[i, i]];
        }
    }
    x
}

/// `max|a − b| / max|b|`.
fn relative(a: impl Iterator<Item = f64>, b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.zip(b).fold(0.0f64, |m, (a, b)| m.max((a - b).abs())) / scale
}

#[test]
fn gram_form_f32_at_the_real_shape() {
    let raw = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default()).unwrap();
    let data = prepare(raw, &PrepOptions::default()).unwrap().data;
    let rows: Vec<usize> = (0..BATCH).map(|i| i * 10).collect();
    let x32: Csr<f32> = data.matrix.select_rows(&rows);
    let x: Csr<f64> = x32.map(|v| v as f64);
    let d = x.n_cols;
    assert_eq!(d, 13_714);
    let dense_x = x.to_dense();

    // H ≥ 0 with about half its entries zero, as after a ReLU.
    let mut rng = stream(3, Stream::Init);
    let h = Array2::from_shape_fn((BATCH, HIDDEN), |_| {
        rng.sample::<f64, _>(StandardNormal).max(0.0)
    });
    // Ridge fit of X ≈ H·Wᵀ + 1·bᵀ, then W moved by 1 % of its scale.
    let (h_mean, x_mean) = (
        h.mean_axis(Axis(0)).unwrap(),
        dense_x.mean_axis(Axis(0)).unwrap(),
    );
    let hc = &h - &h_mean;
    let xc = &dense_x - &x_mean;
    let mut gram = hc.t().dot(&hc);
    gram.diag_mut().mapv_inplace(|v| v + RIDGE);
    let mut w = spd_solve(&gram, &hc.t().dot(&xc))
        .t()
        .as_standard_layout()
        .into_owned(); // (d, HIDDEN)
    let b: Array1<f64> = &x_mean - &w.dot(&h_mean);
    let scale = w.iter().map(|v| v * v).sum::<f64>().sqrt() / (w.len() as f64).sqrt();
    w.mapv_inplace(|v| v + MOVE * scale * rng.sample::<f64, _>(StandardNormal));

    // The reference: the separate layers in f64.
    let mut exact = Dense::<f64> {
        weight: w.clone(),
        bias: b.clone(),
        dweight: Array2::zeros((d, HIDDEN)),
        dbias: Array1::zeros(d),
    };
    let mut xhat = Array2::zeros((BATCH, d));
    exact.forward(h.view(), xhat.view_mut(), Activation::Identity);
    let want_loss = mse::forward(xhat.view(), &x, Reduction::Mean);
    let mut dxhat = Array2::zeros((BATCH, d));
    mse::backward(xhat.view(), &x, Reduction::Mean, dxhat.view_mut());
    let mut want_dh = Array2::zeros((BATCH, HIDDEN));
    exact.backward(h.view(), dxhat.view(), Some(want_dh.view_mut()));
    // Late training: reconstruction per entry near the 0.13 the models end at.
    let per_entry = want_loss / d as f64;
    assert!((0.11..0.15).contains(&per_entry), "{per_entry}");

    // The training step's form, in f32.
    let mut fast = Dense::<f32> {
        weight: w.mapv(|v| v as f32),
        bias: b.mapv(|v| v as f32),
        dweight: Array2::zeros((d, HIDDEN)),
        dbias: Array1::zeros(d),
    };
    let mut xt = Csc::default();
    xt.rebuild_from(&x32);
    let mut dh = Array2::<f32>::zeros((BATCH, HIDDEN));
    let mut sc = OutputScratch::new(BATCH, HIDDEN);
    let h32 = h.mapv(|v| v as f32);
    let loss = forward_backward(
        &mut fast,
        h32.view(),
        &x32,
        &xt,
        Reduction::Mean,
        dh.view_mut(),
        &mut sc,
    );
    // The textbook form in f32, for scale: the separate layers' own rounding.
    let mut plain = Dense::<f32> {
        weight: w.mapv(|v| v as f32),
        bias: b.mapv(|v| v as f32),
        dweight: Array2::zeros((d, HIDDEN)),
        dbias: Array1::zeros(d),
    };
    let mut xhat32 = Array2::<f32>::zeros((BATCH, d));
    plain.forward(h32.view(), xhat32.view_mut(), Activation::Identity);
    let mut dxhat32 = Array2::<f32>::zeros((BATCH, d));
    mse::backward(xhat32.view(), &x32, Reduction::Mean, dxhat32.view_mut());
    let mut dh_plain = Array2::<f32>::zeros((BATCH, HIDDEN));
    plain.backward(h32.view(), dxhat32.view(), Some(dh_plain.view_mut()));
    let f = |a: &Array2<f32>| a.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let errors = [
        ("loss", ((loss - want_loss) / want_loss).abs()),
        (
            "∂W",
            relative(
                f(&fast.dweight).into_iter(),
                exact.dweight.as_slice().unwrap(),
            ),
        ),
        (
            "∂b",
            relative(
                fast.dbias.iter().map(|&v| v as f64),
                exact.dbias.as_slice().unwrap(),
            ),
        ),
        (
            "∂H",
            relative(f(&dh).into_iter(), want_dh.as_slice().unwrap()),
        ),
    ];
    let plain_w = relative(
        f(&plain.dweight).into_iter(),
        exact.dweight.as_slice().unwrap(),
    );
    let plain_h = relative(f(&dh_plain).into_iter(), want_dh.as_slice().unwrap());
    let plain_b = relative(
        plain.dbias.iter().map(|&v| v as f64),
        exact.dbias.as_slice().unwrap(),
    );
    eprintln!(
        "recon per entry {per_entry:.4}; Gram form {errors:?}; \
         textbook f32 ∂W {plain_w:.1e} ∂b {plain_b:.1e} ∂H {plain_h:.1e}"
    );
    for ((what, err), bound) in errors.into_iter().zip(BOUNDS) {
        assert!(err < bound, "{what}: {err:e} (bound {bound:e})");
    }
}

/// Bounds on the errors of the loss, ∂W, ∂b and ∂H, about 4× what this test measures (loss
/// 4.4e-9, ∂W 7.6e-6, ∂b 4.5e-3, ∂H 2.2e-6; the textbook f32 layers: ∂W 5.1e-7, ∂b 3.9e-4,
/// ∂H 2.2e-7).
/// `∂b = 2r·(W·(Hᵀ1) + B·b − Xᵀ1)` subtracts sums over the batch that nearly cancel late in
/// training, so it carries the largest relative error of the four.
const BOUNDS: [f64; 4] = [2e-8, 3e-5, 2e-2, 1e-5];
/// Ridge of the fit: leaves a residual of 0.13 per entry, where the models end training.
const RIDGE: f64 = 1000.0;
/// How far the fitted weights are moved, relative to their scale.
const MOVE: f64 = 0.01;
