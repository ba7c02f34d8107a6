//! The DEC/IDEC head on a network's code ([`crate::engine::dec`]): the code is the first
//! head's output (the AE's `z`, the VAE's and VSC's `μ`), the centroids are a parameter of
//! the network, and the target `p` of the batch's cells is set on the workspace by the
//! training loop ([`Workspace::set_cluster_target`]). Without a target the head adds nothing,
//! so pretraining, validation and encoding run the plain network.

use super::network::Network;
use super::workspace::{top, top_mut, Workspace};
use crate::engine::dec;
use crate::engine::Scalar;

impl<T: Scalar> Network<T> {
    /// `L_c` of the batch's codes (0 without centroids or a target).
    pub(super) fn cluster_loss(&self, ws: &Workspace<T>, b: usize) -> f64 {
        match (&self.centroids, ws.cluster_target(b)) {
            (Some(c), Some(p)) => dec::forward_backward(
                top(&ws.head_out[0], b),
                c.mu.view(),
                p,
                self.config.reduction,
                None,
            ),
            _ => 0.0,
        }
    }

    /// `L_c` and its gradients: `γ·∂L_c/∂code` added into the first head's output gradient
    /// (after `Workspace::zero_grads`, before the backward pass reads it), `γ·∂L_c/∂μ` into
    /// the centroids' gradient.
    pub(super) fn cluster_backward(&mut self, ws: &mut Workspace<T>, b: usize) -> f64 {
        let weight = self.config.dec_weight;
        let (Some(c), Some(p)) = (
            &mut self.centroids,
            ws.cluster_target(b).map(|p| p.to_owned()),
        ) else {
            return 0.0;
        };
        dec::forward_backward(
            top(&ws.head_out[0], b),
            c.mu.view(),
            p.view(),
            self.config.reduction,
            Some((top_mut(&mut ws.dhead_out[0], b), c.dmu.view_mut(), weight)),
        )
    }
}
