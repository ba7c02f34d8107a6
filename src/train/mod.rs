//! The training loop: seeded shuffles, minibatches (the last partial one kept), forward,
//! backward, Adam; per-epoch records; divergence detection.

pub mod checkpoint;
pub mod progress;

use crate::csr::Csr;
use crate::engine::adam::Adam;
use crate::engine::rng::{stream, Stream};
use crate::error::{Error, Result};
use crate::models::{Network, Noise};
use progress::Progress;
use rand::seq::SliceRandom;
use std::time::Instant;

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    pub batch_size: usize,
    pub epochs: usize,
    pub lr: f64,
    pub seed: u64,
    /// Run the output layer and the loss as separate layers (`Network::forward` then
    /// `Network::backward`, the textbook form) instead of the fused Gram-form step. Same math,
    /// slower; kept so that results of the textbook path can be reproduced end to end.
    pub unfused_output: bool,
}

impl TrainOptions {
    /// Rejects values training cannot use.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid("--batch-size must be at least 1"));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("--epochs must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid("--lr must be a positive number"));
        }
        Ok(())
    }
}

/// One epoch's figures. Loss, reconstruction and KL are means per cell over the epoch's
/// batches (`recon + β·kl = loss`), whatever the reduction used for the gradients.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub loss: f64,
    pub recon: f64,
    pub kl: f64,
    /// Reconstruction per matrix entry: squared error summed over the epoch / (cells × genes).
    pub recon_per_entry: f64,
    /// Wall seconds of this epoch alone.
    pub seconds: f64,
}

/// Trains `net` on the rows of `x` and returns one record per epoch.
pub fn train(
    net: &mut Network<f32>,
    x: &Csr<f32>,
    opts: &TrainOptions,
    progress: &mut Progress,
) -> Result<Vec<EpochRecord>> {
    opts.validate()?;
    let n = x.n_rows;
    if n == 0 {
        return Err(Error::data("no cells to train on"));
    }
    if x.n_cols != net.n_genes {
        return Err(Error::data(format!(
            "the data have {} genes, the network {}",
            x.n_cols, net.n_genes
        )));
    }
    let cfg = net.config.clone();
    let b_max = opts.batch_size.min(n);
    let mut ws = net.workspace(b_max, true);
    let mut adam = Adam::new(opts.lr);
    let mut shuffle_rng = stream(opts.seed, Stream::Shuffle);
    let mut noise_rng = stream(opts.seed, Stream::Noise);
    let mut order: Vec<usize> = (0..n).collect();
    let mut batch = Csr::with_cols(x.n_cols);
    let batches_per_epoch = n.div_ceil(b_max);
    let total_steps = batches_per_epoch * opts.epochs;
    let mut records = Vec::with_capacity(opts.epochs);
    progress.start(opts.epochs);
    for epoch in 1..=opts.epochs {
        let started = Instant::now();
        order.shuffle(&mut shuffle_rng);
        let (mut recon_sum, mut kl_sum) = (0.0f64, 0.0f64);
        for (k, rows) in order.chunks(b_max).enumerate() {
            let b = rows.len();
            x.gather_rows_into(rows, &mut batch);
            let noise = Noise::draw(&mut noise_rng, cfg.kind, b, cfg.latent);
            let c = cfg.c_at((epoch - 1) * batches_per_epoch + k, total_steps);
            let losses = if opts.unfused_output {
                let losses = net.forward(&mut ws, &batch, &noise, c);
                net.backward(&mut ws, &batch);
                losses
            } else {
                net.train_step(&mut ws, &batch, &noise, c)
            };
            if !losses.total.is_finite() {
                return Err(Error::NonFinite {
                    epoch,
                    batch: k + 1,
                    what: "the loss".into(),
                });
            }
            if let Err(bad) = adam.step(net) {
                return Err(Error::NonFinite {
                    epoch,
                    batch: k + 1,
                    what: format!(
                        "parameter tensor '{}' after the Adam update",
                        net.state_dict()[bad.tensor].0
                    ),
                });
            }
            // Back to sums over cells, whatever the reduction.
            let undo = 1.0 / cfg.reduction.factor(b);
            recon_sum += losses.recon * undo;
            kl_sum += losses.kl * undo;
        }
        let (recon, kl) = (recon_sum / n as f64, kl_sum / n as f64);
        let record = EpochRecord {
            epoch,
            loss: recon + cfg.beta * kl,
            recon,
            kl,
            recon_per_entry: recon / x.n_cols as f64,
            seconds: started.elapsed().as_secs_f64(),
        };
        progress.epoch(&record);
        records.push(record);
    }
    progress.finish();
    Ok(records)
}

/// Writes `loss.csv`: `epoch,loss,recon,kl,recon_per_entry,seconds`.
pub fn write_loss_csv(path: &std::path::Path, records: &[EpochRecord]) -> Result<()> {
    crate::io::atomic::write_atomic(path, |w| {
        writeln!(w, "epoch,loss,recon,kl,recon_per_entry,seconds")?;
        for r in records {
            writeln!(
                w,
                "{},{},{},{},{},{:.4}",
                r.epoch, r.loss, r.recon, r.kl, r.recon_per_entry, r.seconds
            )?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{ModelConfig, ModelKind, Preset};

    /// A NaN in one first-layer weight must stop training at the first batch, naming it. (With
    /// a ReLU that maps NaN to 0 the trunk's next layer went silently dead instead, and the
    /// loss stayed finite.)
    #[test]
    fn nan_weight_stops_training() {
        let genes = 12;
        let dense =
            ndarray::Array2::from_shape_fn((10, genes), |(i, j)| ((i * 7 + j * 3) % 5) as f32);
        let x = Csr::from_dense(&dense);
        for kind in ModelKind::ALL {
            let mut cfg = ModelConfig::preset(kind, Preset::Paper);
            cfg.trunk = vec![8, 4];
            cfg.decoder = vec![4, 8];
            cfg.head_hidden = 3;
            let mut net = Network::<f32>::new(cfg, genes, 1).unwrap();
            net.first.weight_t[[2, 5]] = f32::NAN;
            let opts = TrainOptions {
                batch_size: 4,
                epochs: 2,
                lr: 1e-3,
                seed: 1,
                unfused_output: false,
            };
            let err = train(&mut net, &x, &opts, &mut Progress::quiet()).unwrap_err();
            let msg = err.to_string();
            match err {
                Error::NonFinite { epoch, batch, .. } => {
                    assert_eq!((epoch, batch), (1, 1), "{kind:?}: {msg}")
                }
                other => panic!("{kind:?}: {other}"),
            }
        }
    }

    /// A finite loss whose update overflows is caught by Adam's check, naming the tensor.
    #[test]
    fn infinite_gradient_names_the_tensor() {
        let genes = 6;
        let dense = ndarray::Array2::from_shape_fn((4, genes), |(i, j)| (i + j) as f32);
        let x = Csr::from_dense(&dense);
        let mut cfg = ModelConfig::preset(ModelKind::Ae, Preset::Paper);
        cfg.trunk = vec![4];
        cfg.decoder = vec![4];
        cfg.head_hidden = 0;
        let mut net = Network::<f32>::new(cfg, genes, 1).unwrap();
        // An enormous learning rate turns the first update into ±∞ or NaN.
        let opts = TrainOptions {
            batch_size: 4,
            epochs: 1,
            lr: 1e38,
            seed: 1,
            unfused_output: false,
        };
        let msg = train(&mut net, &x, &opts, &mut Progress::quiet())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("after the Adam update") && msg.contains("epoch 1, batch 1"),
            "{msg}"
        );
    }

    /// The textbook path (`unfused_output`) trains the same math as the fused step: the
    /// epoch losses agree to f32 rounding over a few epochs, for every model.
    #[test]
    fn unfused_output_trains_the_same_math() {
        let genes = 40;
        let dense = ndarray::Array2::from_shape_fn((30, genes), |(i, j)| {
            (((i * 13 + j * 7) % 11) as f32 * 0.3).max(0.0) * ((i + j) % 3 == 0) as u8 as f32
        });
        let x = Csr::from_dense(&dense);
        for kind in ModelKind::ALL {
            let mut cfg = ModelConfig::preset(kind, Preset::Paper);
            cfg.trunk = vec![16, 8];
            cfg.decoder = vec![8, 16];
            cfg.head_hidden = 4;
            let run = |unfused_output: bool| {
                let mut net = Network::<f32>::new(cfg.clone(), genes, 3).unwrap();
                let opts = TrainOptions {
                    batch_size: 8,
                    epochs: 3,
                    lr: 1e-3,
                    seed: 3,
                    unfused_output,
                };
                train(&mut net, &x, &opts, &mut Progress::quiet()).unwrap()
            };
            for (a, b) in run(false).iter().zip(&run(true)) {
                assert!(
                    (a.loss - b.loss).abs() <= 1e-5 * b.loss,
                    "{kind:?}: {} vs {}",
                    a.loss,
                    b.loss
                );
            }
        }
    }
}
