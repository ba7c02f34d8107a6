//! The negative-binomial loss (`src/engine/nb.rs`) against PyTorch in f64:
//! `torch.distributions.NegativeBinomial(total_count=θ, logits=log μ − log θ).log_prob(x)`
//! with autograd's gradients, on 12 cells × 9 genes whose counts run from 0 to 1,212 and whose
//! θ spans 1e-3 to 1e4, one cell empty. The fixture `tests/fixtures/parity/nb_f64.safetensors`
//! is written by `make_nb_fixture.py` beside it. Loss and both gradients agree to 1e-10
//! relative (per tensor: `max|ours − torch| / max|torch|`).

use cellvae::csr::Csr;
use cellvae::engine::nb::{forward, forward_backward, NbGrads};
use cellvae::engine::Reduction;
use ndarray::Array2;
use safetensors::SafeTensors;

fn tensor(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), v)
}

fn relative(ours: &[f64], theirs: &[f64]) -> f64 {
    let scale = theirs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(theirs)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

#[test]
fn parity_pytorch_nb() {
    let bytes = std::fs::read("tests/fixtures/parity/nb_f64.safetensors").unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (shape, logits) = tensor(&st, "logits");
    let logits = Array2::from_shape_vec((shape[0], shape[1]), logits).unwrap();
    let (_, counts) = tensor(&st, "counts");
    let counts = Csr::from_dense(&Array2::from_shape_vec(logits.raw_dim(), counts).unwrap());
    let (_, r) = tensor(&st, "log_theta");
    let (_, loss) = tensor(&st, "loss");
    let (_, dlogits) = tensor(&st, "dlogits");
    let (_, dr_torch) = tensor(&st, "dlog_theta");

    let mut dh = Array2::zeros(logits.raw_dim());
    let mut dr = vec![0.0; r.len()];
    let ours = forward_backward(
        logits.view(),
        &counts,
        &r,
        None,
        Reduction::Mean,
        Some(NbGrads {
            dlogits: dh.view_mut(),
            dlog_theta: &mut dr,
        }),
    );
    let e_loss = (ours - loss[0]).abs() / loss[0].abs();
    let e_h = relative(dh.as_slice().unwrap(), &dlogits);
    let e_r = relative(&dr, &dr_torch);
    eprintln!(
        "loss {ours} vs {}: {e_loss:e}; δh {e_h:e}; δr {e_r:e}",
        loss[0]
    );
    assert!(e_loss < 1e-10 && e_h < 1e-10 && e_r < 1e-10);
    assert_eq!(
        forward(logits.view(), &counts, &r, None, Reduction::Mean),
        ours,
        "forward alone gives the same loss"
    );
}
