//! The three networks, built from the engine's layers. One struct covers AE, β-VAE and β-VSC
//! in both presets; they differ only in their heads and in the latent stage between encoder
//! and decoder ([`super::latent`]).
//!
//! Forward (shapes for a batch of B cells, d genes, L latent):
//! ```text
//! x (B,d) CSR ─first─▶ h₀ ─trunk₁─▶ h₁ … ─▶ h_T           encoder trunk
//! h_T ─[hidden ReLU]─▶ head outputs (B,L) each              z | μ, ℓ | μ, ℓ, s_pre
//! heads ─latent stage─▶ z (B,L)                             identity | Gaussian | spike-and-slab
//! z ─dec₁ ReLU─▶ … ─dec_out─▶ x̂ (B,d)                       decoder
//! loss = MSE(x̂, x) + β·KL                                   reduced by sum or batch mean
//! ```
//! Backward runs the same list in reverse, each layer's `backward` accumulating into its
//! gradient buffers; the trunk output receives the *sum* of every head's gradient.
//!
//! Training calls [`Network::train_step`], which runs both passes with the last decoder layer
//! and the loss replaced by [`output_mse`] (same math, no `B × d` arrays); `forward` and
//! `backward` keep the layer-by-layer form, the reference the tests hold it to.

use super::config::{Likelihood, ModelConfig, ModelKind};
use super::latent::Noise;
use super::workspace::{top, top_mut, Widths, Workspace};
use crate::csr::Csr;
use crate::engine::batchnorm::BatchNorm;
use crate::engine::covariates;
use crate::engine::dec::Centroids;
use crate::engine::dense::Dense;
use crate::engine::nb::Dispersion;
use crate::engine::output_mse;
use crate::engine::relu::act_backward;
use crate::engine::rng::{stream, Stream};
use crate::engine::sparse_dense::SparseDense;
use crate::engine::{mse, Activation, Scalar};
use crate::error::{Error, Result};
use ndarray::{Array1, ArrayView2, ArrayViewMut2};

/// [`Network::target_shift`] from the fields it reads, for where another field is borrowed
/// mutably beside them.
fn mse_target_shift<'a, T>(config: &ModelConfig, shift: &'a Option<Array1<T>>) -> Option<&'a [T]> {
    shift
        .as_ref()
        .filter(|_| config.likelihood == Likelihood::Mse)
        .map(|c| c.as_slice().expect("contiguous"))
}

/// One encoder head: an optional hidden ReLU branch, then a linear map to the latent size.
#[derive(Clone, Debug)]
pub struct Head<T> {
    pub name: &'static str,
    pub hidden: Option<Dense<T>>,
    pub out: Dense<T>,
    /// Activation on the head's output (the AE code's; identity otherwise).
    pub act: Activation,
}

/// A network with its parameters and their gradients.
#[derive(Clone, Debug)]
pub struct Network<T> {
    pub config: ModelConfig,
    pub n_genes: usize,
    pub first: SparseDense<T>,
    pub trunk: Vec<Dense<T>>,
    pub heads: Vec<Head<T>>,
    pub decoder: Vec<Dense<T>>,
    /// The NB decoder's per-gene dispersion (`--likelihood nb`; see `network_nb.rs`).
    pub dispersion: Option<Dispersion<T>>,
    /// The DEC head's centroids (`--dec`; see `network_dec.rs`), set by training.
    pub centroids: Option<Centroids<T>>,
    /// BatchNorm of each hidden position (`--batchnorm`; empty without): the first layer
    /// and each trunk layer, then each decoder layer but the output.
    pub norms: Vec<BatchNorm<T>>,
    /// The constant row `c` the input stands beside: given `s`, the network reads
    /// `x = s + 1·cᵀ` ([`Network::set_input_shift`]). Scaled data (`--scale`) are stored as
    /// their change from a zero's z-score, as sparse as the counts: the first layer folds
    /// `c` into its bias ([`SparseDense::forward_shifted`]) and the MSE target is `s + c`.
    /// Not a parameter: it comes from the scaling stored with the model.
    pub input_shift: Option<Array1<T>>,
    /// Every gradient is known to be zero: [`crate::engine::adam::Adam::step`] zeroes them in
    /// its update pass and says so, and [`Network::zero_grad`] then skips its own pass over
    /// them (7 MB each for the first and the output layer of `paper`). Every pass that adds
    /// into the gradients starts with `zero_grad`, which clears the flag.
    pub(super) grads_zeroed: bool,
}

/// The values of one step's loss, reduced as the configuration says.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    /// Reconstruction term.
    pub recon: f64,
    /// KL term before β (0 for the AE).
    pub kl: f64,
    /// DEC term before its weight γ (0 without a DEC target).
    pub cluster: f64,
    /// `recon + w·kl + γ·cluster`, the minimised value, `w` the step's KL weight (β unless
    /// warming up: [`Schedule`]).
    pub total: f64,
}

impl Losses {
    /// The terms and their weighted total.
    pub fn new(recon: f64, kl: f64, cluster: f64, kl_weight: f64, dec_weight: f64) -> Self {
        Losses {
            recon,
            kl,
            cluster,
            total: recon + kl_weight * kl + dec_weight * cluster,
        }
    }
}

/// The values of a step that training may schedule over its course: the weight of the KL
/// term (β, or less during a warm-up) and the VSC selection sharpness c (constant, or rising
/// from 50 to 200). Passed to every step; the network stores neither.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub kl_weight: f64,
    pub vsc_c: f64,
}

impl Schedule {
    /// The configuration's own β and c: no warm-up, no c schedule.
    pub fn constant(cfg: &ModelConfig) -> Self {
        Schedule {
            kl_weight: cfg.beta,
            vsc_c: cfg.vsc_c,
        }
    }
}

impl<T: Scalar> Network<T> {
    /// The step's losses with this network's DEC weight and the step's KL weight.
    pub(super) fn losses(&self, recon: f64, kl: f64, cluster: f64, s: Schedule) -> Losses {
        Losses::new(recon, kl, cluster, s.kl_weight, self.config.dec_weight)
    }

    /// A freshly initialised network for `n_genes` inputs (PyTorch's init, seeded).
    pub fn new(config: ModelConfig, n_genes: usize, seed: u64) -> Result<Self> {
        config.validate()?;
        if n_genes == 0 {
            return Err(Error::invalid("the data have no genes"));
        }
        let rng = &mut stream(seed, Stream::Init);
        // A conditional layer's weight has a column per batch beside its input's.
        let (enc, dec) = (config.encoder_covariates(), config.decoder_covariates());
        let first = SparseDense::new(n_genes + enc, config.trunk[0], rng);
        let trunk = config
            .trunk
            .windows(2)
            .map(|w| Dense::new(w[0] + enc, w[1], rng))
            .collect();
        let top_width = *config.trunk.last().expect("validated: non-empty");
        let heads = config
            .kind
            .heads()
            .iter()
            .map(|&name| {
                let hidden = (config.head_hidden > 0)
                    .then(|| Dense::new(top_width, config.head_hidden, rng));
                let n_in = if config.head_hidden > 0 {
                    config.head_hidden
                } else {
                    top_width
                };
                Head {
                    name,
                    hidden,
                    out: Dense::new(n_in, config.latent, rng),
                    act: if config.kind == ModelKind::Ae {
                        config.code_activation
                    } else {
                        Activation::Identity
                    },
                }
            })
            .collect();
        let mut widths = vec![config.latent];
        widths.extend(&config.decoder);
        widths.push(n_genes);
        let decoder = widths
            .windows(2)
            .map(|w| Dense::new(w[0] + dec, w[1], rng))
            .collect();
        let dispersion = (config.likelihood == Likelihood::Nb)
            .then(|| Dispersion::<T>::new(config.dispersion_rows(), n_genes));
        let norms = if config.batchnorm {
            config
                .trunk
                .iter()
                .chain(&config.decoder)
                .map(|&w| BatchNorm::new(w))
                .collect()
        } else {
            Vec::new()
        };
        let centroids = (config.dec_clusters > 0)
            .then(|| Centroids::new(ndarray::Array2::zeros((config.dec_clusters, config.latent))));
        Ok(Network {
            dispersion,
            centroids,
            norms,
            grads_zeroed: false,
            input_shift: None,
            config,
            n_genes,
            first,
            trunk,
            heads,
            decoder,
        })
    }

    /// Reads every input `s` as `s + 1·cᵀ` from now on ([`Network::input_shift`]).
    pub fn set_input_shift(&mut self, c: &[f32]) {
        assert_eq!(c.len(), self.n_genes, "one shift per gene");
        self.input_shift = Some(c.iter().map(|&v| T::from_f64(v as f64)).collect());
    }

    /// The shift as a slice.
    fn shift(&self) -> Option<&[T]> {
        self.input_shift
            .as_ref()
            .map(|c| c.as_slice().expect("contiguous"))
    }

    /// The shift of the MSE target (none for a count likelihood, whose target is counts).
    fn target_shift(&self) -> Option<&[T]> {
        mse_target_shift(&self.config, &self.input_shift)
    }

    /// Number of trainable values.
    pub fn n_params(&self) -> usize {
        self.state_dict().iter().map(|(_, _, v)| v.len()).sum()
    }

    /// Buffers for batches of up to `capacity` cells; `with_decoder = false` for encoding only.
    pub fn workspace(&self, capacity: usize, with_decoder: bool) -> Workspace<T> {
        Workspace::new(
            capacity,
            &Widths {
                trunk: &self.config.trunk,
                heads: self.heads.len(),
                head_hidden: self.config.head_hidden,
                latent: self.config.latent,
                decoder: self.decoder.iter().map(|l| l.n_out()).collect(),
                output_in: self.decoder.last().expect("decoder").n_in(),
                hidden_positions: if self.uses_batchnorm_or_dropout() {
                    let dec = &self.config.decoder;
                    self.config.trunk.iter().chain(dec).copied().collect()
                } else {
                    Vec::new()
                },
                dropout: self.config.dropout > 0.0,
                decoder_covariates: self.config.decoder_covariates(),
                encoder_covariates: self.config.encoder_covariates(),
            },
            with_decoder,
        )
    }

    /// Encoder forward: trunk and heads, into `ws.h` and `ws.head_out`.
    pub fn encode(&self, ws: &mut Workspace<T>, x: &Csr<T>) {
        let b = x.n_rows;
        assert!(
            b <= ws.capacity(),
            "batch of {b} exceeds the workspace's {}",
            ws.capacity()
        );
        assert_eq!(x.n_cols, self.n_genes, "input width");
        let reg = self.uses_batchnorm_or_dropout();
        let fused = |act| if reg { Activation::Identity } else { act };
        let first_act = self.config.first_activation;
        let enc = self.config.encoder_covariates();
        let input = if enc > 0 {
            covariates::append_one_hot(x, &ws.batch, enc, &mut ws.x_in);
            &ws.x_in
        } else {
            x
        };
        self.first.forward_shifted(
            input,
            self.shift(),
            top_mut(&mut ws.h[0], b),
            fused(first_act),
        );
        if reg {
            self.post_forward(ws, 0, b, first_act);
        }
        for (k, layer) in self.trunk.iter().enumerate() {
            let (below, above) = ws.h.split_at_mut(k + 1);
            let input = if enc > 0 {
                let conditioned = top_mut(&mut ws.trunk_in[k], b);
                covariates::forward(top(&below[k], b), &ws.batch, conditioned);
                top(&ws.trunk_in[k], b)
            } else {
                top(&below[k], b)
            };
            layer.forward(input, top_mut(&mut above[0], b), fused(Activation::Relu));
            if reg {
                self.post_forward(ws, k + 1, b, Activation::Relu);
            }
        }
        let trunk_out = top(ws.h.last().expect("non-empty trunk"), b);
        for (k, head) in self.heads.iter().enumerate() {
            let input = match &head.hidden {
                Some(hidden) => {
                    hidden.forward(
                        trunk_out,
                        top_mut(&mut ws.head_hidden[k], b),
                        Activation::Relu,
                    );
                    top(&ws.head_hidden[k], b)
                }
                None => trunk_out,
            };
            head.out
                .forward(input, top_mut(&mut ws.head_out[k], b), head.act);
        }
    }

    /// Decoder forward from `ws.z` through its first `layers` layers (all of them: to
    /// `x̂ = ws.decoder.last()`).
    pub(super) fn decode(&self, ws: &mut Workspace<T>, b: usize, layers: usize) {
        let last = self.decoder.len() - 1;
        let reg = self.uses_batchnorm_or_dropout();
        let encoder_positions = self.config.trunk.len();
        for (k, layer) in self.decoder.iter().enumerate().take(layers) {
            let act = if k == last || reg {
                Activation::Identity
            } else {
                Activation::Relu
            };
            let (below, above) = ws.decoder.split_at_mut(k);
            let input = if k == 0 {
                top(&ws.z, b)
            } else {
                top(&below[k - 1], b)
            };
            let input = if self.config.decoder_covariates() > 0 {
                covariates::forward(input, &ws.batch, top_mut(&mut ws.decoder_in[k], b));
                top(&ws.decoder_in[k], b)
            } else {
                input
            };
            layer.forward(input, top_mut(&mut above[0], b), act);
            if reg && k != last {
                self.post_forward(ws, encoder_positions + k, b, Activation::Relu);
            }
        }
    }

    /// Forward pass and loss for a batch, with the given sampling noise and schedule.
    pub fn forward(
        &self,
        ws: &mut Workspace<T>,
        x: &Csr<T>,
        noise: &Noise<T>,
        s: Schedule,
    ) -> Losses {
        debug_assert_eq!(
            self.config.likelihood,
            Likelihood::Mse,
            "NB: use forward_nb"
        );
        let b = x.n_rows;
        ws.ensure_reconstruction();
        self.encode(ws, x);
        let kl = self.latent_forward(ws, noise, s.vsc_c, b);
        let cluster = self.cluster_loss(ws, b);
        self.decode(ws, b, self.decoder.len());
        let recon = mse::forward_shifted(
            top(ws.decoder.last().expect("decoder"), b),
            x,
            self.target_shift(),
            self.config.reduction,
        );
        self.losses(recon, kl, cluster, s)
    }

    /// Backward pass for the batch of the last [`Network::forward`] (with the same
    /// schedule): fills every parameter's gradient (after zeroing them); the forward's caches
    /// are consumed.
    pub fn backward(&mut self, ws: &mut Workspace<T>, x: &Csr<T>, s: Schedule) {
        let b = x.n_rows;
        self.zero_grad();
        ws.zero_grads(b);
        self.cluster_backward(ws, b);
        // Reconstruction loss → x̂.
        let last = self.decoder.len() - 1;
        top_mut(&mut ws.ddecoder[last], b).fill(T::zero());
        mse::backward_shifted(
            top(&ws.decoder[last], b),
            x,
            self.target_shift(),
            self.config.reduction,
            top_mut(&mut ws.ddecoder[last], b),
        );
        ws.batch_t.rebuild_from(x);
        self.backward_from_decoder(ws, b, self.decoder.len(), s.kl_weight);
    }

    /// A whole training step's forward and backward: the same losses and gradients as
    /// [`Network::forward`] then [`Network::backward`] (up to rounding), but the output layer
    /// and the reconstruction loss run as one step in Gram form ([`output_mse`]), so the
    /// `B × genes` reconstruction and its gradient are never formed (nor allocated, unless the
    /// unfused `forward` is used on the same workspace).
    pub fn train_step(
        &mut self,
        ws: &mut Workspace<T>,
        x: &Csr<T>,
        noise: &Noise<T>,
        s: Schedule,
    ) -> Losses {
        let b = x.n_rows;
        self.encode(ws, x);
        let kl = self.latent_forward(ws, noise, s.vsc_c, b);
        let last = self.decoder.len() - 1;
        self.decode(ws, b, last);
        self.zero_grad();
        ws.zero_grads(b);
        let cluster = self.cluster_backward(ws, b);
        ws.batch_t.rebuild_from(x);
        let (below, _) = ws.decoder.split_at(last);
        let (dbelow, _) = ws.ddecoder.split_at_mut(last);
        let (input, dinput) = match last {
            0 => (top(&ws.z, b), top_mut(&mut ws.dz, b)),
            _ => (top(&below[last - 1], b), top_mut(&mut dbelow[last - 1], b)),
        };
        // The fields, not `target_shift`: the output layer is borrowed mutably beside it.
        let shift = mse_target_shift(&self.config, &self.input_shift);
        let recon = if self.config.decoder_covariates() > 0 {
            // The output layer reads [h, batch code]; the Gram form replaces its forward,
            // so the code is appended here.
            covariates::forward(input, &ws.batch, top_mut(&mut ws.decoder_in[last], b));
            let mut dconditioned = top_mut(&mut ws.ddecoder_in[last], b);
            dconditioned.fill(T::zero());
            let recon = output_mse::forward_backward_shifted(
                &mut self.decoder[last],
                top(&ws.decoder_in[last], b),
                x,
                &ws.batch_t,
                shift,
                self.config.reduction,
                dconditioned,
                &mut ws.output,
            );
            covariates::backward(top(&ws.ddecoder_in[last], b), dinput);
            recon
        } else {
            output_mse::forward_backward_shifted(
                &mut self.decoder[last],
                input,
                x,
                &ws.batch_t,
                shift,
                self.config.reduction,
                dinput,
                &mut ws.output,
            )
        };
        self.backward_from_decoder(ws, b, last, s.kl_weight);
        self.losses(recon, kl, cluster, s)
    }

    /// The backward pass from the output gradient of decoder layer `layers − 1` (already in
    /// `ws.ddecoder`) down to the first layer: the forward in reverse, decoder, latent stage,
    /// heads, trunk, first layer. Needs `ws.batch_t`, the transpose of the batch.
    pub(super) fn backward_from_decoder(
        &mut self,
        ws: &mut Workspace<T>,
        b: usize,
        layers: usize,
        kl_weight: f64,
    ) {
        self.decoder_backward(ws, b, layers);
        self.latent_backward(ws, b, kl_weight);
        self.heads_backward(ws, b);
        self.trunk_backward(ws, b);
    }

    /// Decoder layers `layers − 1` down to 0: each hidden position's activation (and
    /// BatchNorm, dropout) backward, then its linear map's, ending in `δz`.
    fn decoder_backward(&mut self, ws: &mut Workspace<T>, b: usize, layers: usize) {
        let last = self.decoder.len() - 1;
        let e = self.config.trunk.len();
        for k in (0..layers).rev() {
            if k != last {
                self.hidden_backward(ws, e + k, b, Activation::Relu);
            }
            let (below, above) = ws.ddecoder.split_at_mut(k);
            let (input, dinput) = if k == 0 {
                (top(&ws.z, b), top_mut(&mut ws.dz, b))
            } else {
                (top(&ws.decoder[k - 1], b), top_mut(&mut below[k - 1], b))
            };
            if self.config.decoder_covariates() > 0 {
                let mut dconditioned = top_mut(&mut ws.ddecoder_in[k], b);
                dconditioned.fill(T::zero());
                self.decoder[k].backward(
                    top(&ws.decoder_in[k], b),
                    top(&above[0], b),
                    Some(dconditioned),
                );
                covariates::backward(top(&ws.ddecoder_in[k], b), dinput);
            } else {
                self.decoder[k].backward(input, top(&above[0], b), Some(dinput));
            }
        }
    }

    /// The latent stage: `δz` (and the KL at weight `kl_weight`) into each head's `δ`.
    fn latent_backward(&mut self, ws: &mut Workspace<T>, b: usize, kl_weight: f64) {
        let heads: Vec<ArrayView2<'_, T>> = ws.head_out.iter().map(|h| top(h, b)).collect();
        let mut dheads: Vec<ArrayViewMut2<'_, T>> =
            ws.dhead_out.iter_mut().map(|d| top_mut(d, b)).collect();
        ws.latent
            .backward(&self.config, kl_weight, &heads, top(&ws.dz, b), &mut dheads);
    }

    /// The heads, each adding its input's gradient into `δ` of the trunk output.
    fn heads_backward(&mut self, ws: &mut Workspace<T>, b: usize) {
        let t = ws.h.len() - 1;
        for (k, head) in self.heads.iter_mut().enumerate() {
            act_backward(
                top(&ws.head_out[k], b),
                top_mut(&mut ws.dhead_out[k], b),
                head.act,
            );
            match &mut head.hidden {
                Some(hidden) => {
                    head.out.backward(
                        top(&ws.head_hidden[k], b),
                        top(&ws.dhead_out[k], b),
                        Some(top_mut(&mut ws.dhead_hidden[k], b)),
                    );
                    act_backward(
                        top(&ws.head_hidden[k], b),
                        top_mut(&mut ws.dhead_hidden[k], b),
                        Activation::Relu,
                    );
                    hidden.backward(
                        top(&ws.h[t], b),
                        top(&ws.dhead_hidden[k], b),
                        Some(top_mut(&mut ws.dh[t], b)),
                    );
                }
                None => head.out.backward(
                    top(&ws.h[t], b),
                    top(&ws.dhead_out[k], b),
                    Some(top_mut(&mut ws.dh[t], b)),
                ),
            }
        }
    }

    /// The trunk, top layer first, then the sparse first layer (weights only: no `δx`).
    fn trunk_backward(&mut self, ws: &mut Workspace<T>, b: usize) {
        let enc = self.config.encoder_covariates();
        for k in (0..self.trunk.len()).rev() {
            self.hidden_backward(ws, k + 1, b, Activation::Relu);
            let (below, above) = ws.dh.split_at_mut(k + 1);
            if enc > 0 {
                let mut dconditioned = top_mut(&mut ws.dtrunk_in[k], b);
                dconditioned.fill(T::zero());
                self.trunk[k].backward(
                    top(&ws.trunk_in[k], b),
                    top(&above[0], b),
                    Some(dconditioned),
                );
                covariates::backward(top(&ws.dtrunk_in[k], b), top_mut(&mut below[k], b));
            } else {
                self.trunk[k].backward(
                    top(&ws.h[k], b),
                    top(&above[0], b),
                    Some(top_mut(&mut below[k], b)),
                );
            }
        }
        self.hidden_backward(ws, 0, b, self.config.first_activation);
        let shift = self
            .input_shift
            .as_ref()
            .map(|c| c.as_slice().expect("contiguous"));
        if enc > 0 {
            ws.x_in_t.rebuild_from(&ws.x_in);
            self.first
                .backward_shifted(&ws.x_in_t, shift, top(&ws.dh[0], b));
        } else {
            self.first
                .backward_shifted(&ws.batch_t, shift, top(&ws.dh[0], b));
        }
    }

    /// The latent stage's forward from the heads' outputs into `ws.z`; returns the KL.
    pub(super) fn latent_forward(
        &self,
        ws: &mut Workspace<T>,
        noise: &Noise<T>,
        c: f64,
        b: usize,
    ) -> f64 {
        let heads: Vec<ArrayView2<'_, T>> = ws.head_out.iter().map(|h| top(h, b)).collect();
        ws.latent
            .forward(&self.config, &heads, noise, c, top_mut(&mut ws.z, b))
    }

    /// Sets every gradient to zero (nothing to do right after an Adam step, which left them
    /// at zero).
    pub fn zero_grad(&mut self) {
        if std::mem::take(&mut self.grads_zeroed) {
            return;
        }
        self.first.zero_grad();
        self.trunk.iter_mut().for_each(Dense::zero_grad);
        for head in &mut self.heads {
            if let Some(h) = &mut head.hidden {
                h.zero_grad();
            }
            head.out.zero_grad();
        }
        self.decoder.iter_mut().for_each(Dense::zero_grad);
        if let Some(d) = &mut self.dispersion {
            d.zero_grad();
        }
        if let Some(c) = &mut self.centroids {
            c.zero_grad();
        }
        self.norms.iter_mut().for_each(BatchNorm::zero_grad);
    }
}
