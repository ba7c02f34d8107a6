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
use crate::models::{Likelihood, Losses, ModelConfig, Network, Noise, Preset, Schedule, Workspace};
use dec_phase::{CentroidInit, DecPhase, Refresh};
use progress::Progress;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// The seed of every random stream unless one is given.
pub const DEFAULT_SEED: u64 = 42;

/// `--val-fraction` must stay below this. The split itself only guarantees one training cell
/// ([`validation::split`]); this bound keeps at least a tenth of the cells for training, so
/// that the held-out loss (`docs/math.md#16-held-out-loss-and-further-scores`) measures a
/// network trained on a real share of the data.
pub const MAX_VAL_FRACTION: f64 = 0.9;

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

    /// Shrinks the epochs of every phase (training, KL warm-up, DEC) for `n` cells by
    /// scVI's rule ([`crate::models::preset::epochs_for_cells`]); a phase of 0 stays 0.
    pub fn scale_to_cells(&mut self, n: usize) {
        let shrink = |e: usize| {
            if e == 0 {
                0
            } else {
                crate::models::preset::epochs_for_cells(e, n)
            }
        };
        self.epochs = shrink(self.epochs);
        self.kl_warmup = shrink(self.kl_warmup).min(self.epochs);
        self.dec_epochs = shrink(self.dec_epochs).min(self.epochs);
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
        if !(0.0..MAX_VAL_FRACTION).contains(&self.val_fraction) {
            return Err(Error::invalid(format!(
                "--val-fraction must be at least 0 and below {MAX_VAL_FRACTION}"
            )));
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
    /// The batch of each row (required by a network conditioned on the batch).
    pub batches: Option<&'a [u32]>,
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

/// [`train`] with the counts and the DEC initialisation of `inputs`: checks the inputs,
/// holds out the validation cells, then runs the epochs, each a shuffle and one
/// optimiser step per minibatch.
pub fn train_with(
    net: &mut Network<f32>,
    x: &Csr<f32>,
    inputs: TrainInputs<'_>,
    opts: &TrainOptions,
    progress: &mut Progress,
) -> Result<Vec<EpochRecord>> {
    opts.validate()?;
    let counts = check_inputs(net, x, inputs.counts)?;
    let batch = check_batches(net, x, inputs.batches)?;
    let mut dec = DecPhase::new(net, opts.epochs, opts.dec_epochs, inputs.init_centroids)?;
    let split = (opts.val_fraction > 0.0).then(|| validation::split(x.n_rows, opts.val_fraction));
    let held_out = split
        .as_ref()
        .map(|s| validation::HeldOut::new(s.val.clone(), net));
    let cells = Cells {
        x,
        counts,
        batch,
        rows: split.map(|s| s.train),
    };
    let mut trainer = Trainer::new(net, cells, opts);
    let mut records = Vec::with_capacity(opts.epochs);
    progress.start(opts.epochs, trainer.cells.len());
    for epoch in 1..=opts.epochs {
        let Some(mut record) = trainer.epoch(net, &mut dec, epoch, progress)? else {
            break;
        };
        let s = trainer.schedule(net, epoch, trainer.batches_per_epoch - 1);
        record.val_loss = held_out
            .as_ref()
            .map(|h| h.loss(net, &trainer.cells, trainer.batch_max, s));
        progress.epoch(&record);
        records.push(record);
    }
    progress.finish();
    Ok(records)
}

/// The counts the likelihood reads (`None` for MSE), after checking every input's shape.
fn check_inputs<'a>(
    net: &Network<f32>,
    x: &Csr<f32>,
    counts: Option<&'a Csr<f32>>,
) -> Result<Option<&'a Csr<f32>>> {
    if x.n_rows == 0 {
        return Err(Error::data("no cells to train on"));
    }
    if x.n_cols != net.n_genes {
        return Err(Error::data(format!(
            "the data have {} genes, the network {}",
            x.n_cols, net.n_genes
        )));
    }
    match (net.config.likelihood, counts) {
        (Likelihood::Mse, _) => Ok(None),
        (Likelihood::Nb, None) => Err(Error::invalid(
            "the NB likelihood needs the raw counts of the training cells",
        )),
        (Likelihood::Nb, Some(c)) if (c.n_rows, c.n_cols) != (x.n_rows, x.n_cols) => {
            Err(Error::data(format!(
                "the counts are {} × {}, the input {} × {}",
                c.n_rows, c.n_cols, x.n_rows, x.n_cols
            )))
        }
        (Likelihood::Nb, Some(c)) => Ok(Some(c)),
    }
}

/// The batch of each row, when the network reads it (checked: one per row, each below the
/// network's batch count).
fn check_batches<'a>(
    net: &Network<f32>,
    x: &Csr<f32>,
    batches: Option<&'a [u32]>,
) -> Result<Option<&'a [u32]>> {
    let n = net.config.n_batches;
    if n == 0 {
        return Ok(None);
    }
    match batches {
        None => Err(Error::invalid(
            "a network conditioned on the batch needs each training cell's batch",
        )),
        Some(b) if b.len() != x.n_rows => Err(Error::data(format!(
            "{} batch ids for {} cells",
            b.len(),
            x.n_rows
        ))),
        Some(b) if b.iter().any(|&id| id as usize >= n) => Err(Error::data(format!(
            "a batch id is not below the network's {n} batches"
        ))),
        Some(b) => Ok(Some(b)),
    }
}

/// The cells training sees: rows of `x` (and of the counts and batches) by index, never
/// copied.
pub struct Cells<'a> {
    pub x: &'a Csr<f32>,
    pub counts: Option<&'a Csr<f32>>,
    /// Each row's batch, for a network conditioned on it.
    pub batch: Option<&'a [u32]>,
    /// The training rows, ascending (`None`: every row).
    pub rows: Option<Vec<usize>>,
}

impl Cells<'_> {
    /// Number of training cells.
    pub fn len(&self) -> usize {
        self.rows.as_ref().map_or(self.x.n_rows, Vec::len)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The row of `x` of training cell `position`.
    pub fn row(&self, position: usize) -> usize {
        self.rows.as_ref().map_or(position, |r| r[position])
    }

    /// Gathers the rows `rows` of `x` into `batch` (and of the counts into `counts`), and
    /// sets their batches on the workspace.
    pub fn gather(
        &self,
        rows: &[usize],
        batch: &mut Csr<f32>,
        counts: &mut Csr<f32>,
        ws: &mut Workspace<f32>,
    ) {
        self.x.gather_rows_into(rows, batch);
        if let Some(c) = self.counts {
            c.gather_rows_into(rows, counts);
        }
        if let Some(ids) = self.batch {
            let of_rows: Vec<u32> = rows.iter().map(|&r| ids[r]).collect();
            ws.set_batch(&of_rows);
        }
    }
}

/// Everything one training run keeps between steps: the workspace, Adam, the random
/// streams, the epoch's order and the minibatch buffers.
struct Trainer<'a> {
    cells: Cells<'a>,
    opts: &'a TrainOptions,
    cfg: ModelConfig,
    /// The largest minibatch.
    batch_max: usize,
    batches_per_epoch: usize,
    /// Run the output layer and the loss as separate layers (see [`TrainOptions`]).
    unfused_output: bool,
    ws: Workspace<f32>,
    adam: Adam<f32>,
    shuffle_rng: ChaCha8Rng,
    noise_rng: ChaCha8Rng,
    dropout_rng: ChaCha8Rng,
    /// Positions `0..cells.len()` in this epoch's order.
    order: Vec<usize>,
    rows: Vec<usize>,
    batch: Csr<f32>,
    count_batch: Csr<f32>,
    skipped_single: bool,
}

/// Sums over cells of one epoch's terms.
#[derive(Default)]
struct EpochSums {
    recon: f64,
    kl: f64,
    cluster: f64,
}

impl<'a> Trainer<'a> {
    fn new(net: &Network<f32>, cells: Cells<'a>, opts: &'a TrainOptions) -> Self {
        let n = cells.len();
        let batch_max = opts.batch_size.min(n);
        // The Gram form, unless the separate layers need fewer flops for this shape.
        let output_width = net.decoder.last().map_or(0, |layer| layer.n_in());
        let mut ws = net.workspace(batch_max, true);
        ws.set_training(true);
        Trainer {
            opts,
            cfg: net.config.clone(),
            batch_max,
            batches_per_epoch: n.div_ceil(batch_max),
            unfused_output: opts.unfused_output
                || output_mse::gram_form_costs_more(output_width, opts.batch_size),
            ws,
            adam: Adam::new(opts.lr),
            dropout_rng: stream(opts.seed, Stream::Dropout),
            shuffle_rng: stream(opts.seed, Stream::Shuffle),
            noise_rng: stream(opts.seed, Stream::Noise),
            order: (0..n).collect(),
            rows: Vec::with_capacity(batch_max),
            batch: Csr::with_cols(cells.x.n_cols),
            count_batch: Csr::with_cols(cells.x.n_cols),
            skipped_single: false,
            cells,
        }
    }

    /// The schedule of minibatch `k` of `epoch` (1-based): the warm-up's KL weight and the
    /// VSC sharpness of that step.
    fn schedule(&self, net: &Network<f32>, epoch: usize, k: usize) -> Schedule {
        let total_steps = self.batches_per_epoch * self.opts.epochs;
        Schedule {
            kl_weight: self.opts.kl_weight(net.config.beta, epoch),
            vsc_c: self
                .cfg
                .c_at((epoch - 1) * self.batches_per_epoch + k, total_steps),
        }
    }

    /// One epoch: a fresh shuffle, the DEC refresh, then every minibatch. `None` when the
    /// DEC phase has converged and training stops before this epoch.
    fn epoch(
        &mut self,
        net: &mut Network<f32>,
        dec: &mut DecPhase<'_>,
        epoch: usize,
        progress: &mut Progress,
    ) -> Result<Option<EpochRecord>> {
        let started = Instant::now();
        self.order.shuffle(&mut self.shuffle_rng);
        if dec.refresh(net, &self.cells, epoch)? == Refresh::Converged {
            progress.note(&format!(
                "DEC converged (under {}% of cells changed cluster): stopped after epoch {}",
                dec_phase::TOLERANCE * 100.0,
                epoch - 1
            ));
            return Ok(None);
        }
        let mut sums = EpochSums::default();
        let order = std::mem::take(&mut self.order);
        for (k, positions) in order.chunks(self.batch_max).enumerate() {
            if positions.len() == 1 && self.cfg.batchnorm {
                // BatchNorm has no variance over one cell: that cell sits out this
                // epoch's last step (another cell, next epoch's shuffle).
                if !self.skipped_single {
                    progress
                        .note("a last batch of 1 cell is skipped each epoch (BatchNorm needs 2)");
                    self.skipped_single = true;
                }
                continue;
            }
            let s = self.schedule(net, epoch, k);
            let losses = self
                .step(net, dec, positions, s)
                .map_err(|what| Error::NonFinite {
                    epoch,
                    batch: k + 1,
                    what,
                })?;
            // Back to sums over cells, whatever the reduction.
            let undo = 1.0 / self.cfg.reduction.factor(positions.len());
            sums.recon += losses.recon * undo;
            sums.kl += losses.kl * undo;
            sums.cluster += losses.cluster * undo;
        }
        self.order = order;
        let n = self.cells.len() as f64;
        let (recon, kl) = (sums.recon / n, sums.kl / n);
        Ok(Some(EpochRecord {
            epoch,
            loss: recon + self.cfg.beta * kl,
            recon,
            kl,
            recon_per_entry: recon / self.cells.x.n_cols as f64,
            val_loss: None,
            cluster: sums.cluster / n,
            seconds: started.elapsed().as_secs_f64(),
        }))
    }

    /// One minibatch (training cells at `positions`): dropout masks, the batch's rows, the
    /// DEC target, noise, forward and backward, BatchNorm's running statistics, Adam. An
    /// error names what turned non-finite.
    fn step(
        &mut self,
        net: &mut Network<f32>,
        dec: &DecPhase<'_>,
        positions: &[usize],
        s: Schedule,
    ) -> std::result::Result<Losses, String> {
        let (b, cfg) = (positions.len(), &self.cfg);
        let ws = &mut self.ws;
        if cfg.dropout > 0.0 {
            ws.draw_dropout(&mut self.dropout_rng, cfg.dropout, b);
        }
        self.rows.clear();
        self.rows
            .extend(positions.iter().map(|&p| self.cells.row(p)));
        self.cells
            .gather(&self.rows, &mut self.batch, &mut self.count_batch, ws);
        match dec.batch_target(positions) {
            Some(p) => ws.set_cluster_target(p.view()),
            None => ws.clear_cluster_target(),
        }
        let noise = Noise::draw(&mut self.noise_rng, cfg.kind, b, cfg.latent);
        let losses = if self.cells.counts.is_some() {
            net.train_step_nb(ws, &self.batch, &self.count_batch, &noise, s)
        } else if self.unfused_output {
            let losses = net.forward(ws, &self.batch, &noise, s);
            net.backward(ws, &self.batch, s);
            losses
        } else {
            net.train_step(ws, &self.batch, &noise, s)
        };
        if !losses.total.is_finite() {
            return Err("the loss".into());
        }
        net.update_batchnorm(ws);
        self.adam.step(net).map_err(|bad| {
            format!(
                "parameter tensor '{}' after the Adam update",
                net.state_dict()[bad.tensor].0
            )
        })?;
        Ok(losses)
    }
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
            train(&mut net, &x, &opts, &mut Progress::quiet()).unwrap()
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
