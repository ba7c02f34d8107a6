//! Codes for every representation: a network trained on the prepared data, or the PCA
//! baseline of the same matrix.

use crate::analysis::kmeans::{kmeans, KMeansOptions};
use crate::analysis::pca::pca;
use crate::error::{Error, Result};
use crate::models::codes::{self, Codes};
use crate::models::{Likelihood, ModelConfig, Network};
use crate::preprocess::Prepared;
use crate::train::progress::Progress;
use crate::train::{self as training, EpochRecord, TrainInputs, TrainOptions};
use std::time::Instant;

/// k-means restarts that place the DEC centroids when the DEC phase begins
/// (`docs/math.md#14-dec-and-idec`): 20, as IDEC's Keras code (Guo et al. 2017, also its DEC
/// port) initialises them, `KMeans(n_clusters, n_init=20)`. Fewer than the evaluation's 100
/// restarts: this runs inside training, on every DEC run, and only places the centroids that
/// the phase then moves.
pub const DEC_INIT_RESTARTS: usize = 20;

/// A trained network and what training measured.
pub struct Fitted {
    pub net: Network<f32>,
    pub records: Vec<EpochRecord>,
    pub seconds: f64,
    /// The codes of every cell of the data (training and held-out alike).
    pub codes: Codes,
}

/// Trains one network on the prepared data (and, for the NB likelihood, its raw counts),
/// then encodes every cell. With `gamma`, a β-VSC's codes carry the spike probabilities too.
pub fn fit_network(
    prep: &Prepared,
    cfg: ModelConfig,
    topts: &TrainOptions,
    gamma: bool,
    progress: &mut Progress,
) -> Result<Fitted> {
    let data = &prep.data;
    if cfg.likelihood == Likelihood::Nb && !prep.has_counts() {
        return Err(Error::invalid(
            "--likelihood nb needs integer counts, but the input holds non-integer values \
             (already normalized?); give the raw counts or use --likelihood mse",
        ));
    }
    if cfg.dec_weight > 0.0 && cfg.dec_clusters == 0 {
        return Err(Error::invalid(
            "--dec needs a number of clusters: --dec-clusters K (run: labels or --k)",
        ));
    }
    let mut net = Network::<f32>::new(cfg.clone(), data.n_genes(), topts.seed)?;
    if let Some(s) = &prep.scaling {
        // The matrix holds the scaled values' change from a zero's z-score.
        net.set_input_shift(&s.zero_scores());
    }
    let started = Instant::now();
    // DEC's centroids start where k-means puts them on the codes.
    let init = |codes: &ndarray::Array2<f64>| -> Result<ndarray::Array2<f64>> {
        let opts = KMeansOptions {
            n_init: DEC_INIT_RESTARTS,
            ..KMeansOptions::new(cfg.dec_clusters, topts.seed)
        };
        Ok(kmeans(codes, &opts)?.centroids)
    };
    let batches = data.batches.as_ref().map(|b| b.ids.as_slice());
    // NB reads the selected genes' counts (derived from every gene's, when kept compact).
    let counts = match cfg.likelihood {
        Likelihood::Nb => prep.counts(),
        _ => None,
    };
    let inputs = TrainInputs {
        counts: counts.as_deref(),
        init_centroids: Some(&init),
        batches,
    };
    let records = training::train_with(&mut net, &data.matrix, inputs, topts, progress)?;
    let seconds = started.elapsed().as_secs_f64();
    let codes = codes::extract(&net, &data.matrix, batches, topts.seed, gamma);
    Ok(Fitted {
        net,
        records,
        seconds,
        codes,
    })
}

/// The PCA baseline's codes: the scores of the first `components` principal components
/// (columns `pc1…`), of the same matrix the networks train on. Scaled data are stored as
/// `s` with the scaled matrix `s + 1·cᵀ` ([`crate::preprocess::Scaling::apply`]); PCA
/// centres its input, and `s + 1·cᵀ − mean` is `s − mean(s)`, so `s` gives the same
/// components.
pub fn pca_codes(prep: &Prepared, components: usize, seed: u64) -> Codes {
    let p = pca(&prep.data.matrix, components, seed);
    Codes {
        columns: (1..=p.scores.ncols()).map(|j| format!("pc{j}")).collect(),
        values: p.scores,
    }
}
