//! The activations and gradients of one batch, allocated once per training run (or encoding)
//! and reused by every step, so that a step allocates nothing large.
//!
//! Only the network ([`super::network`]) reads and writes its buffers (the fields are private
//! to the `models` module); from outside, a workspace is made by `Network::workspace`, and
//! its capacity and head outputs can be read.

use super::latent::LatentStage;
use crate::csr::{Csc, Csr};
use crate::engine::batchnorm::BnCache;
use crate::engine::dropout;
use crate::engine::output_mse::OutputScratch;
use crate::engine::Scalar;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

/// The widths a workspace is sized for.
pub(super) struct Widths<'a> {
    /// Outputs of the first layer and of each trunk layer.
    pub trunk: &'a [usize],
    /// Number of encoder heads.
    pub heads: usize,
    /// Width of each head's hidden branch (0: none).
    pub head_hidden: usize,
    pub latent: usize,
    /// Output width of each decoder layer, the last one the genes.
    pub decoder: Vec<usize>,
    /// Input width of the output layer.
    pub output_in: usize,
    /// Widths of the hidden positions that carry BatchNorm and dropout (encoder layers, then
    /// decoder layers but the output), when either is on; empty otherwise.
    pub hidden_positions: Vec<usize>,
    /// Whether dropout masks are needed.
    pub dropout: bool,
    /// One-hot columns each decoder layer reads beside its input (0: not conditional).
    pub decoder_covariates: usize,
    /// One-hot columns each encoder layer reads beside its input (0: none).
    pub encoder_covariates: usize,
}

/// Activations and their gradients for batches of up to `capacity` cells. Allocated once and
/// reused, so a training step allocates nothing large.
#[derive(Clone, Debug)]
pub struct Workspace<T> {
    capacity: usize,
    pub(super) h: Vec<Array2<T>>,
    pub(super) dh: Vec<Array2<T>>,
    pub(super) head_hidden: Vec<Array2<T>>,
    pub(super) dhead_hidden: Vec<Array2<T>>,
    pub(super) head_out: Vec<Array2<T>>,
    pub(super) dhead_out: Vec<Array2<T>>,
    pub(super) z: Array2<T>,
    pub(super) dz: Array2<T>,
    pub(super) decoder: Vec<Array2<T>>,
    pub(super) ddecoder: Vec<Array2<T>>,
    pub(super) latent: LatentStage<T>,
    /// The batch, transposed for the sparse first layer.
    pub(super) batch_t: Csc<T>,
    /// Working memory of the output layer and loss in one step ([`Network::train_step`]).
    pub(super) output: OutputScratch<T>,
    /// The DEC target `p` of the batch's cells (no rows: no DEC term).
    cluster_target: Array2<f64>,
    /// Training mode: BatchNorm from the batch's statistics and dropout on. Off (evaluation)
    /// unless set, so that encoding and held-out losses never depend on the batch.
    pub(super) training: bool,
    /// BatchNorm's caches and the dropout masks, one per hidden position.
    pub(super) bn_cache: Vec<BnCache<T>>,
    pub(super) masks: Vec<Array2<T>>,
    /// The batch of each row of the next steps (conditional networks).
    pub(super) batch: Vec<u32>,
    /// Conditional networks: each decoder layer's input with the batch's code appended,
    /// and its gradient.
    pub(super) decoder_in: Vec<Array2<T>>,
    pub(super) ddecoder_in: Vec<Array2<T>>,
    /// With the encoder conditioned: the first layer's input (the batch's rows with the code
    /// appended) and its transpose, and each trunk layer's input with the code, and its
    /// gradient.
    pub(super) x_in: Csr<T>,
    pub(super) x_in_t: Csc<T>,
    pub(super) trunk_in: Vec<Array2<T>>,
    pub(super) dtrunk_in: Vec<Array2<T>>,
}

/// The first `b` rows of a buffer.
pub(super) fn top<T>(a: &Array2<T>, b: usize) -> ArrayView2<'_, T> {
    a.slice(s![..b, ..])
}

/// The first `b` rows of a buffer, mutably.
pub(super) fn top_mut<T>(a: &mut Array2<T>, b: usize) -> ArrayViewMut2<'_, T> {
    a.slice_mut(s![..b, ..])
}

impl<T: Scalar> Workspace<T> {
    /// Buffers for batches of up to `capacity` cells of a network of these widths;
    /// `with_decoder = false` for encoding only (no gradients, no decoder).
    pub(super) fn new(capacity: usize, w: &Widths<'_>, with_decoder: bool) -> Self {
        let z = |n: usize| Array2::<T>::zeros((capacity, n));
        let decoder_widths: &[usize] = if with_decoder { &w.decoder } else { &[] };
        // The last decoder output (`B × genes`) is left empty: only the unfused
        // `forward`/`backward` use it, and allocate it then (`ensure_reconstruction`).
        let decoder_buffers = || -> Vec<Array2<T>> {
            let last = decoder_widths.len().saturating_sub(1);
            (decoder_widths.iter().enumerate())
                .map(|(k, &n)| {
                    if k == last {
                        Array2::zeros((0, n))
                    } else {
                        z(n)
                    }
                })
                .collect()
        };
        let grad = |n: usize| z(if with_decoder { n } else { 0 });
        // Buffers of width `input + covariates` for each conditioned layer (none without).
        let conditioned = |inputs: &[usize], covariates: usize| -> Vec<Array2<T>> {
            if covariates == 0 {
                return Vec::new();
            }
            inputs.iter().map(|&n| z(n + covariates)).collect()
        };
        let decoder_inputs: Vec<usize> = if with_decoder {
            std::iter::once(w.latent)
                .chain(w.decoder[..w.decoder.len() - 1].iter().copied())
                .collect()
        } else {
            Vec::new()
        };
        Workspace {
            capacity,
            h: w.trunk.iter().map(|&n| z(n)).collect(),
            dh: w.trunk.iter().map(|&n| grad(n)).collect(),
            head_hidden: (0..w.heads).map(|_| z(w.head_hidden)).collect(),
            dhead_hidden: (0..w.heads).map(|_| grad(w.head_hidden)).collect(),
            head_out: (0..w.heads).map(|_| z(w.latent)).collect(),
            dhead_out: (0..w.heads).map(|_| z(w.latent)).collect(),
            z: z(w.latent),
            dz: z(w.latent),
            decoder: decoder_buffers(),
            ddecoder: decoder_buffers(),
            latent: LatentStage::default(),
            batch_t: Csc::default(),
            output: if with_decoder {
                OutputScratch::new(capacity, w.output_in)
            } else {
                OutputScratch::default()
            },
            cluster_target: Array2::zeros((0, 0)),
            training: false,
            bn_cache: w
                .hidden_positions
                .iter()
                .map(|_| BnCache::default())
                .collect(),
            masks: w
                .hidden_positions
                .iter()
                .map(|&n| z(if w.dropout { n } else { 0 }))
                .collect(),
            batch: vec![0; capacity],
            decoder_in: conditioned(&decoder_inputs, w.decoder_covariates),
            ddecoder_in: conditioned(&decoder_inputs, w.decoder_covariates),
            x_in: Csr::with_cols(0),
            x_in_t: Csc::default(),
            trunk_in: conditioned(&w.trunk[..w.trunk.len() - 1], w.encoder_covariates),
            dtrunk_in: conditioned(&w.trunk[..w.trunk.len() - 1], w.encoder_covariates),
        }
    }

    /// Sets the batch of each row of the next steps (a conditional network reads it).
    pub fn set_batch(&mut self, ids: &[u32]) {
        assert!(ids.len() <= self.capacity, "more batch ids than rows");
        self.batch[..ids.len()].copy_from_slice(ids);
    }

    /// Zeroes the activation gradients of the first `b` rows, all but the reconstruction's
    /// (`B × genes`: only the unfused `Network::backward` uses it, and zeroes it itself).
    pub(super) fn zero_grads(&mut self, b: usize) {
        let zero = T::zero();
        let below_output = self.ddecoder.len().saturating_sub(1);
        for a in self
            .dh
            .iter_mut()
            .chain(self.dhead_hidden.iter_mut())
            .chain(self.dhead_out.iter_mut())
            .chain(self.ddecoder.iter_mut().take(below_output))
            .chain(std::iter::once(&mut self.dz))
        {
            top_mut(a, b).fill(zero);
        }
    }

    /// Allocates the `B × genes` reconstruction and its gradient on first use.
    pub(super) fn ensure_reconstruction(&mut self) {
        let capacity = self.capacity;
        for a in [self.decoder.last_mut(), self.ddecoder.last_mut()]
            .into_iter()
            .flatten()
        {
            if a.nrows() < capacity {
                *a = Array2::zeros((capacity, a.ncols()));
            }
        }
    }

    /// Training mode on (BatchNorm from batch statistics, dropout on) or off (evaluation).
    pub fn set_training(&mut self, on: bool) {
        self.training = on;
    }

    /// Draws fresh dropout masks with probability `p` for the first `b` rows.
    pub fn draw_dropout<R: rand::Rng + ?Sized>(&mut self, rng: &mut R, p: f64, b: usize) {
        for m in &mut self.masks {
            if m.ncols() > 0 {
                dropout::draw(rng, p, top_mut(m, b));
            }
        }
    }

    /// Sets the dropout mask of hidden position `p` (encoder layers, then decoder layers but
    /// the output) for the first rows of the next steps, instead of drawing it: another
    /// framework's masks, to compare a step with its (the PyTorch parity tests).
    pub fn set_dropout_mask(&mut self, p: usize, mask: ArrayView2<'_, T>) {
        let (b, w) = mask.dim();
        assert_eq!(w, self.masks[p].ncols(), "mask width of position {p}");
        self.masks[p].slice_mut(s![..b, ..]).assign(&mask);
    }

    /// Sets the DEC target of the next steps' cells, one row per cell of the batch.
    pub fn set_cluster_target(&mut self, p: ArrayView2<'_, f64>) {
        self.cluster_target = p.to_owned();
    }

    /// Removes the DEC target: the next steps have no DEC term.
    pub fn clear_cluster_target(&mut self) {
        // Called every step outside the DEC phase: nothing to do unless a target is set.
        if self.cluster_target.nrows() > 0 {
            self.cluster_target = Array2::zeros((0, 0));
        }
    }

    /// The DEC target of a batch of `b` cells, if one is set.
    pub(super) fn cluster_target(&self, b: usize) -> Option<ArrayView2<'_, f64>> {
        (self.cluster_target.nrows() == b && b > 0).then(|| self.cluster_target.view())
    }

    /// Largest batch this workspace holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Output of head `k` for the first `b` cells of the last forward pass.
    pub fn head_output(&self, k: usize, b: usize) -> ArrayView2<'_, T> {
        top(&self.head_out[k], b)
    }
}
