//! BatchNorm and dropout on the hidden layers (`--batchnorm`, `--dropout`): each hidden
//! position (the first layer and each trunk layer, then each decoder layer but the output)
//! runs `linear → BatchNorm → activation → dropout`, and its backward the reverse
//! (`docs/math.md#12-batchnorm`, `docs/math.md#13-dropout`). Without either, the layers fuse
//! their activation into their forward and none of this runs.

use super::network::Network;
use super::workspace::{top, top_mut, Workspace};
use crate::engine::batchnorm::{BatchNorm, BnCache};
use crate::engine::dropout;
use crate::engine::relu::{act_backward, act_forward};
use crate::engine::{Activation, Scalar};
use ndarray::{ArrayView2, ArrayViewMut2};

impl<T: Scalar> Network<T> {
    /// Whether hidden layers carry BatchNorm or dropout; then their activation is applied
    /// after those, not fused into the layer.
    pub(super) fn uses_batchnorm_or_dropout(&self) -> bool {
        self.config.batchnorm || self.config.dropout > 0.0
    }

    /// The output buffer of hidden position `p` (encoder layers first, then the decoder's).
    pub(super) fn position_mut<'w>(
        &self,
        ws: &'w mut Workspace<T>,
        p: usize,
    ) -> &'w mut ndarray::Array2<T> {
        let e = self.config.trunk.len();
        if p < e {
            &mut ws.h[p]
        } else {
            &mut ws.decoder[p - e]
        }
    }

    /// After hidden position `p`'s linear map (bias included): BatchNorm, the activation,
    /// then dropout in training mode, in place (`docs/math.md#12-batchnorm`,
    /// `docs/math.md#13-dropout`).
    pub(super) fn post_forward(&self, ws: &mut Workspace<T>, p: usize, b: usize, act: Activation) {
        let training = ws.training;
        let mut cache = std::mem::take(&mut ws.bn_cache[p]);
        let mask = std::mem::take(&mut ws.masks[p]);
        let mut y = top_mut(self.position_mut(ws, p), b);
        if let Some(bn) = self.norms.get(p) {
            bn.forward(y.view_mut(), &mut cache, training);
        }
        act_forward(y.view_mut(), act);
        if training && self.config.dropout > 0.0 {
            dropout::apply(y, top(&mask, b));
        }
        ws.bn_cache[p] = cache;
        ws.masks[p] = mask;
    }

    /// The reverse of [`Network::post_forward`] on the gradient `dy` of position `p`'s output
    /// (`y`): the dropout mask, the activation's, then BatchNorm's backward, in place.
    pub(super) fn post_backward(
        norm: Option<&mut BatchNorm<T>>,
        cache: &BnCache<T>,
        mask: Option<ArrayView2<'_, T>>,
        y: ArrayView2<'_, T>,
        mut dy: ArrayViewMut2<'_, T>,
        act: Activation,
    ) {
        if let Some(m) = mask {
            dropout::apply(dy.view_mut(), m);
        }
        act_backward(y, dy.view_mut(), act);
        if let Some(bn) = norm {
            bn.backward(dy, cache);
        }
    }

    /// The backward of hidden position `p`'s activation `act`, in place on its output's
    /// gradient: with BatchNorm or dropout, [`Network::post_backward`]; otherwise the
    /// activation alone (it was fused into the layer's forward).
    pub(super) fn hidden_backward(
        &mut self,
        ws: &mut Workspace<T>,
        p: usize,
        b: usize,
        act: Activation,
    ) {
        let e = self.config.trunk.len();
        let (y, dy) = if p < e {
            (top(&ws.h[p], b), top_mut(&mut ws.dh[p], b))
        } else {
            (
                top(&ws.decoder[p - e], b),
                top_mut(&mut ws.ddecoder[p - e], b),
            )
        };
        if !self.uses_batchnorm_or_dropout() {
            act_backward(y, dy, act);
            return;
        }
        let dropout_on = ws.training && self.config.dropout > 0.0;
        Self::post_backward(
            self.norms.get_mut(p),
            &ws.bn_cache[p],
            dropout_on.then(|| top(&ws.masks[p], b)),
            y,
            dy,
            act,
        );
    }

    /// Moves every BatchNorm's running statistics towards the last training step's batch.
    pub fn update_batchnorm(&mut self, ws: &Workspace<T>) {
        for (bn, cache) in self.norms.iter_mut().zip(&ws.bn_cache) {
            bn.update_running(cache);
        }
    }
}
