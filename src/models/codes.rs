//! Latent codes, the input of t-SNE and clustering (`docs/math.md#61-codes`):
//! AE `z`; β-VAE `μ` (`paper`) or one sample `μ + ε e^{ℓ/2}` (`seed-code`, as the study
//! did); β-VSC `μ`, the slab mean, optionally followed by the spike probabilities `γ`.

use super::config::ModelKind;
use super::network::Network;
use super::preset::Preset;
use crate::csr::Csr;
use crate::engine::reparam::Reparam;
use crate::engine::rng::{stream, Stream};
use crate::engine::spike_slab::log_spike_forward;
use crate::engine::Scalar;
use ndarray::{s, Array2};
use rand::Rng;
use rand_distr::StandardNormal;

/// Cells encoded per batch.
const BATCH: usize = 512;

/// Codes with their column names (`z1…zL`, then `gamma1…gammaL` when asked).
#[derive(Clone, Debug)]
pub struct Codes {
    pub columns: Vec<String>,
    pub values: Array2<f64>,
}

/// Encodes every row of `x` (`batch`: each row's batch, which an encoder conditioned on the
/// batch reads). `seed` drives the sample of `seed-code` VAE codes.
///
/// # Panics
/// When the encoder reads the batch and `batch` is `None`.
pub fn extract<T: Scalar>(
    net: &Network<T>,
    x: &Csr<T>,
    batch: Option<&[u32]>,
    seed: u64,
    with_gamma: bool,
) -> Codes {
    let batch_ids = match (net.config.encoder_covariates(), batch) {
        (0, _) => None,
        (_, Some(b)) => Some(b),
        (_, None) => panic!("the encoder reads the batch: give each cell's"),
    };
    let l = net.config.latent;
    let with_gamma = with_gamma && net.config.kind == ModelKind::Vsc;
    let sample = net.config.kind == ModelKind::Vae && net.config.preset == Preset::SeedCode;
    let width = if with_gamma { 2 * l } else { l };
    let mut values = Array2::<f64>::zeros((x.n_rows, width));
    let mut ws = net.workspace(BATCH.min(x.n_rows.max(1)), false);
    let mut rng = stream(seed, Stream::Codes);
    let mut batch = Csr::with_cols(x.n_cols);
    let rows: Vec<usize> = (0..x.n_rows).collect();
    for (start, chunk) in rows.chunks(BATCH).enumerate().map(|(i, c)| (i * BATCH, c)) {
        let b = chunk.len();
        x.gather_rows_into(chunk, &mut batch);
        if let Some(ids) = batch_ids {
            ws.set_batch(&ids[start..start + b]);
        }
        net.encode(&mut ws, &batch);
        let head = |k: usize| ws.head_output(k, b).mapv(|v| v.to_f64());
        let mu = head(0);
        // The engine's own samplers, run in f64 on the heads' outputs.
        let z = if sample {
            let eps = Array2::from_shape_fn((b, l), |_| rng.sample::<f64, _>(StandardNormal));
            let mut gauss = Reparam::default();
            gauss.forward(mu.view(), head(1).view(), eps.view());
            gauss.z
        } else {
            mu
        };
        values.slice_mut(s![start..start + b, ..l]).assign(&z);
        if with_gamma {
            let gamma = log_spike_forward(head(2).view());
            values.slice_mut(s![start..start + b, l..]).assign(&gamma);
        }
    }
    let mut columns: Vec<String> = (1..=l).map(|j| format!("z{j}")).collect();
    if with_gamma {
        columns.extend((1..=l).map(|j| format!("gamma{j}")));
    }
    Codes { columns, values }
}
