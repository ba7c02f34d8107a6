//! The training loop: seeded shuffles, minibatches (the last partial one kept), forward,
//! backward, Adam; per-epoch records; divergence detection; optionally a KL warm-up and a
//! held-out loss per epoch on a fixed validation split ([`validation`]).

pub mod checkpoint;
pub mod dec_phase;
pub mod progress;
pub mod validation;

use crate::csr::Csr;
use crate::engine::adam::Adam;
use crate::engine::output_mse;
use crate::engine::rng::{stream, Stream};
use crate::error::{Error, Result};
use crate::models::{Likelihood, Network, Noise, Preset};
use dec_phase::{CentroidInit, DecPhase, Refresh};
use progress::Progress;
use rand::seq::SliceRandom;
use std::time::Instant;

/// The seed of every random stream unless one is given.
pub const DEFAULT_SEED: u64 = 42;

/// How to train.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    pub batch_size: usize,
    pub epochs: usize,
    pub lr: f64,
    pub seed: u64,
    /// Run the output layer and the loss as separate layers (`Network::forward` then
    /// `Network::backward`, the textbook form) instead of the fused Gram-form step. Same math.
    /// Training takes this form anyway where it needs fewer flops
    /// ([`output_mse::gram_form_costs_more`]:
    /// the study's code's 800-wide output layer); forcing it elsewhere is slower, and kept so
    /// that results of the textbook path can be reproduced end to end.
    pub unfused_output: bool,
    /// KL warm-up: the KL weight of epoch `t` (1-based) is `β·min(1, (t − 1)/T)`, scVI's
    /// schedule (the first epoch trains the reconstruction alone). 0: β throughout.
    pub kl_warmup: usize,
    /// Fraction of the cells held out of training for the per-epoch held-out loss (0: none).
    pub val_fraction: f64,
    /// For a network with a DEC head: how many of the last epochs train with its term.
    pub dec_epochs: usize,
}

impl Default for TrainOptions {
    /// The `paper` preset's ([`TrainOptions::preset`]).
    fn default() -> Self {
        TrainOptions::preset(Preset::Paper)
    }
}

impl TrainOptions {
    /// The preset's training values ([`crate::models::preset`]), seed 42, the fused output.
    pub fn preset(preset: Preset) -> Self {
        let t = preset.training();
        TrainOptions {
            batch_size: t.batch_size,
            epochs: t.epochs,
            lr: t.lr,
            seed: DEFAULT_SEED,
            unfused_output: false,
            kl_warmup: t.kl_warmup,
            val_fraction: t.val_fraction,
            dec_epochs: 0,
        }
    }

    /// The KL weight of epoch `epoch` (1-based) for a model of weight `beta`.
    pub fn kl_weight(&self, beta: f64, epoch: usize) -> f64 {
        if self.kl_warmup == 0 {
            beta
        } else {
            beta * ((epoch - 1) as f64 / self.kl_warmup as f64).min(1.0)
        }
    }

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
        if !(0.0..0.9).contains(&self.val_fraction) {
            return Err(Error::invalid(
                "--val-fraction must be at least 0 and below 0.9",
            ));
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
    /// `recon + KL` (the negative ELBO, KL weight 1 whatever β) per held-out cell after the
    /// epoch, with a validation split ([`validation`]).
    pub val_loss: Option<f64>,
    /// The DEC term `L_c` per cell (0 outside the DEC phase; not in `loss`).
    pub cluster: f64,
    /// Wall seconds of this epoch alone.
    pub seconds: f64,
}

/// What training may need besides the input matrix.
#[derive(Clone, Copy, Default)]
pub struct TrainInputs<'a> {
    /// The raw counts of the same cells and genes: the reconstruction target of the NB
    /// likelihood (required then, ignored otherwise).
    pub counts: Option<&'a Csr<f32>>,
    /// Initial DEC centroids from the training cells' codes (required with a DEC head).
    pub init_centroids: Option<CentroidInit<'a>>,
}

/// Trains `net` on the rows of `x` (less the held-out cells of `opts.val_fraction`) and
/// returns one record per epoch. NB and DEC networks need [`train_with`].
pub fn train(
    net: &mut Network<f32>,
    x: &Csr<f32>,
    opts: &TrainOptions,
    progress: &mut Progress,
) -> Result<Vec<EpochRecord>> {
    train_with(net, x, TrainInputs::default(), opts, progress)
}

/// [`train`] with the counts and the DEC initialisation of `inputs`.
pub fn train_with(
    net: &mut Network<f32>,
    x: &Csr<f32>,
    inputs: TrainInputs<'_>,
    opts: &TrainOptions,
    progress: &mut Progress,
) -> Result<Vec<EpochRecord>> {
    opts.validate()?;
    let mut dec = DecPhase::new(net, opts.epochs, opts.dec_epochs, inputs.init_centroids)?;
    let counts = match (net.config.likelihood, inputs.counts) {
        (Likelihood::Mse, _) => None,
        (Likelihood::Nb, None) => {
            return Err(Error::invalid(
                "the NB likelihood needs the raw counts of the training cells",
            ))
        }
        (Likelihood::Nb, Some(c)) if (c.n_rows, c.n_cols) != (x.n_rows, x.n_cols) => {
            return Err(Error::data(format!(
                "the counts are {} × {}, the input {} × {}",
                c.n_rows, c.n_cols, x.n_rows, x.n_cols
            )))
        }
        (Likelihood::Nb, Some(c)) => Some(c),
    };
    if x.n_rows == 0 {
        return Err(Error::data("no cells to train on"));
    }
    if x.n_cols != net.n_genes {
        return Err(Error::data(format!(
            "the data have {} genes, the network {}",
            x.n_cols, net.n_genes
        )));
    }
    // The Gram form, unless the separate layers need fewer flops for this shape.
    let output_width = net.decoder.last().map_or(0, |layer| layer.n_in());
    let unfused_output =
        opts.unfused_output || output_mse::gram_form_costs_more(output_width, opts.batch_size);
    let split = (opts.val_fraction > 0.0).then(|| validation::split(x.n_rows, opts.val_fraction));
    let held_out = split
        .as_ref()
        .map(|s| validation::HeldOut::new(x, counts, &s.val, net));
    let (train_rows, train_counts);
    let (x, counts) = match &split {
        Some(s) => {
            train_rows = x.select_rows(&s.train);
            train_counts = counts.map(|c| c.select_rows(&s.train));
            (&train_rows, train_counts.as_ref())
        }
        None => (x, counts),
    };
    let n = x.n_rows;
    let cfg = net.config.clone();
    let b_max = opts.batch_size.min(n);
    let mut ws = net.workspace(b_max, true);
    ws.set_training(true);
    let mut dropout_rng = stream(opts.seed, Stream::Dropout);
    let mut skipped_single = false;
    let mut adam = Adam::new(opts.lr);
    let mut shuffle_rng = stream(opts.seed, Stream::Shuffle);
    let mut noise_rng = stream(opts.seed, Stream::Noise);
    let mut order: Vec<usize> = (0..n).collect();
    let mut batch = Csr::with_cols(x.n_cols);
    let mut count_batch = Csr::with_cols(x.n_cols);
    let batches_per_epoch = n.div_ceil(b_max);
    let total_steps = batches_per_epoch * opts.epochs;
    let mut records = Vec::with_capacity(opts.epochs);
    progress.start(opts.epochs);
    for epoch in 1..=opts.epochs {
        let started = Instant::now();
        order.shuffle(&mut shuffle_rng);
        net.kl_weight = opts.kl_weight(cfg.beta, epoch);
        if dec.refresh(net, x, epoch)? == Refresh::Converged {
            progress.note(&format!(
                "DEC converged (under {}% of cells changed cluster): stopped after epoch {}",
                dec_phase::TOLERANCE * 100.0,
                epoch - 1
            ));
            break;
        }
        let (mut recon_sum, mut kl_sum, mut cluster_sum) = (0.0f64, 0.0f64, 0.0f64);
        for (k, rows) in order.chunks(b_max).enumerate() {
            let b = rows.len();
            if b == 1 && cfg.batchnorm {
                // BatchNorm has no variance over one cell (SCIENCE-SPEC 4): that cell sits
                // out this epoch's last step (another cell, next epoch's shuffle).
                if !skipped_single {
                    progress
                        .note("a last batch of 1 cell is skipped each epoch (BatchNorm needs 2)");
                    skipped_single = true;
                }
                continue;
            }
            if cfg.dropout > 0.0 {
                ws.draw_dropout(&mut dropout_rng, cfg.dropout, b);
            }
            x.gather_rows_into(rows, &mut batch);
            match dec.batch_target(rows) {
                Some(p) => ws.set_cluster_target(p.view()),
                None => ws.clear_cluster_target(),
            }
            let noise = Noise::draw(&mut noise_rng, cfg.kind, b, cfg.latent);
            let c = cfg.c_at((epoch - 1) * batches_per_epoch + k, total_steps);
            let losses = if let Some(counts) = counts {
                counts.gather_rows_into(rows, &mut count_batch);
                net.train_step_nb(&mut ws, &batch, &count_batch, &noise, c)
            } else if unfused_output {
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
            net.update_batchnorm(&ws);
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
            cluster_sum += losses.cluster * undo;
        }
        let (recon, kl) = (recon_sum / n as f64, kl_sum / n as f64);
        let seconds = started.elapsed().as_secs_f64();
        let c_now = cfg.c_at(epoch * batches_per_epoch - 1, total_steps);
        let val_loss = held_out.as_ref().map(|h| h.loss(net, b_max, c_now));
        let record = EpochRecord {
            epoch,
            loss: recon + cfg.beta * kl,
            recon,
            kl,
            recon_per_entry: recon / x.n_cols as f64,
            val_loss,
            cluster: cluster_sum / n as f64,
            seconds,
        };
        progress.epoch(&record);
        records.push(record);
    }
    net.kl_weight = cfg.beta;
    progress.finish();
    Ok(records)
}

/// Writes `loss.csv`: `epoch,loss,recon,kl,recon_per_entry,val_loss,dec,seconds`
/// (`val_loss` empty without a validation split, `dec` the DEC term per cell; `seconds`
/// stays the last column).
pub fn write_loss_csv(path: &std::path::Path, records: &[EpochRecord]) -> Result<()> {
    crate::io::atomic::write_atomic(path, |w| {
        writeln!(
            w,
            "epoch,loss,recon,kl,recon_per_entry,val_loss,dec,seconds"
        )?;
        for r in records {
            let val = r.val_loss.map_or(String::new(), |v| v.to_string());
            writeln!(
                w,
                "{},{},{},{},{},{val},{},{:.4}",
                r.epoch, r.loss, r.recon, r.kl, r.recon_per_entry, r.cluster, r.seconds
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
                ..TrainOptions::default()
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
            ..TrainOptions::default()
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
                    ..TrainOptions::default()
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

    #[test]
    fn kl_warmup_schedule() {
        let o = TrainOptions {
            kl_warmup: 4,
            ..TrainOptions::default()
        };
        let w: Vec<f64> = (1..=6).map(|e| o.kl_weight(2.0, e)).collect();
        assert_eq!(w, [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]);
        assert_eq!(TrainOptions::default().kl_weight(2.0, 1), 2.0);
    }

    /// With a validation split every epoch reports a held-out loss, training moves it down,
    /// a warm-up changes the path but leaves β in place afterwards, and the held-out cells
    /// are not trained on (the training loss is over the other cells only).
    #[test]
    fn validation_split_and_warmup() {
        let genes = 30;
        let dense = ndarray::Array2::from_shape_fn((60, genes), |(i, j)| {
            ((i % 4) * 2 + (j % 5)) as f32 * 0.25 * ((i + j) % 2) as f32
        });
        let x = Csr::from_dense(&dense);
        let mut cfg = ModelConfig::preset(ModelKind::Vae, Preset::Paper);
        cfg.trunk = vec![16, 8];
        cfg.decoder = vec![8, 16];
        cfg.head_hidden = 4;
        let run = |kl_warmup: usize, val_fraction: f64| {
            let mut net = Network::<f32>::new(cfg.clone(), genes, 3).unwrap();
            let opts = TrainOptions {
                batch_size: 16,
                epochs: 30,
                lr: 3e-3,
                seed: 3,
                kl_warmup,
                val_fraction,
                ..TrainOptions::default()
            };
            let r = train(&mut net, &x, &opts, &mut Progress::quiet()).unwrap();
            assert_eq!(net.kl_weight, cfg.beta);
            r
        };
        let plain = run(0, 0.0);
        assert!(plain.iter().all(|r| r.val_loss.is_none()));
        let held = run(0, 0.25);
        let v: Vec<f64> = held.iter().map(|r| r.val_loss.unwrap()).collect();
        assert!(v.iter().all(|v| v.is_finite()));
        assert!(v[29] < 0.8 * v[0], "held-out loss {} → {}", v[0], v[29]);
        assert_ne!(plain[0].loss, held[0].loss, "45 cells trained on, not 60");
        let warm = run(10, 0.25);
        assert_ne!(warm[5].loss, held[5].loss);
        assert!(warm[0].kl > held[0].kl, "no KL pressure in the first epoch");
    }
}
