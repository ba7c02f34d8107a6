//! The networks with the negative-binomial decoder (`--likelihood nb`): the same encoder,
//! latent stage and decoder as [`super::network`], whose last layer's outputs become the
//! logits of [`nb`]; the loss reads the raw counts of the kept genes, not the encoder's input.
//!
//! ```text
//! x (B,d) input ─encoder─▶ heads ─latent─▶ z ─decoder─▶ h (B,d) logits
//! loss = NB(counts | softmax(h)·L, e^r) + β·KL
//! ```
//! Backward: `nb` gives `δh` and `δr` in one pass, then the decoder, latent stage and encoder
//! run backward exactly as for the MSE models.

use super::latent::Noise;
use super::network::{Losses, Network, Schedule};

use super::config::DispersionKind;
use super::workspace::{top, top_mut, Workspace};
use crate::csr::Csr;
use crate::engine::nb::{self, NbGrads};
use crate::engine::Scalar;

impl<T: Scalar> Network<T> {
    /// Each cell's row of the dispersion: its batch with `gene-batch`, else the one row.
    fn dispersion_rows<'w>(&self, ws: &'w Workspace<T>) -> Option<&'w [u32]> {
        (self.config.dispersion == DispersionKind::GeneBatch).then_some(&ws.batch[..])
    }

    /// Forward pass and loss of a batch: `x` the encoder's input rows, `counts` the same
    /// cells' raw counts of the kept genes.
    pub fn forward_nb(
        &self,
        ws: &mut Workspace<T>,
        x: &Csr<T>,
        counts: &Csr<T>,
        noise: &Noise<T>,
        s: Schedule,
    ) -> Losses {
        let b = x.n_rows;
        let disp = self.dispersion.as_ref().expect("an NB network");
        ws.ensure_reconstruction();
        self.encode(ws, x);
        let kl = self.latent_forward(ws, noise, s.vsc_c, b);
        let cluster = self.cluster_loss(ws, b);
        self.decode(ws, b, self.decoder.len());
        let h = top(ws.decoder.last().expect("decoder"), b);
        let recon = nb::forward(
            h,
            counts,
            disp.log_theta.as_slice().expect("standard layout"),
            self.dispersion_rows(ws),
            self.config.reduction,
        );
        self.losses(recon, kl, cluster, s)
    }

    /// One training step's forward and backward with the NB loss: every parameter's
    /// gradient (zeroed first), `px_r`'s included.
    pub fn train_step_nb(
        &mut self,
        ws: &mut Workspace<T>,
        x: &Csr<T>,
        counts: &Csr<T>,
        noise: &Noise<T>,
        s: Schedule,
    ) -> Losses {
        let b = x.n_rows;
        ws.ensure_reconstruction();
        self.encode(ws, x);
        let kl = self.latent_forward(ws, noise, s.vsc_c, b);
        self.decode(ws, b, self.decoder.len());
        self.zero_grad();
        ws.zero_grads(b);
        let cluster = self.cluster_backward(ws, b);
        let last = self.decoder.len() - 1;
        let rows = (self.config.dispersion == DispersionKind::GeneBatch).then_some(&ws.batch[..]);
        let mut dh = top_mut(&mut ws.ddecoder[last], b);
        dh.fill(T::zero());
        let disp = self.dispersion.as_mut().expect("an NB network");
        let recon = nb::forward_backward(
            top(&ws.decoder[last], b),
            counts,
            disp.log_theta.as_slice().expect("standard layout"),
            rows,
            self.config.reduction,
            Some(NbGrads {
                dlogits: dh,
                dlog_theta: disp.dlog_theta.as_slice_mut().expect("standard layout"),
            }),
        );
        ws.batch_t.rebuild_from(x);
        self.backward_from_decoder(ws, b, self.decoder.len(), s.kl_weight);
        self.losses(recon, kl, cluster, s)
    }
}
