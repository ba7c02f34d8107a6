//! A network's parameters as named tensors: PyTorch `state_dict` names and shapes for
//! checkpoints and the parity check, and the fixed visiting order Adam relies on.

use super::network::Network;
use crate::engine::adam::Parameters;
use crate::engine::dense::Dense;
use crate::engine::Scalar;
use crate::error::{Error, Result};
use ndarray::{Array1, Array2};

/// `(name, shape, values)` of one tensor.
pub type NamedTensor<T> = (String, Vec<usize>, Vec<T>);

impl<T: Scalar> Network<T> {
    /// Every parameter tensor as `(PyTorch state_dict name, PyTorch shape, values)`, in the
    /// order [`Parameters::for_each_param`] visits them. The first layer's weight is
    /// transposed back to PyTorch's `(out, in)`.
    pub fn state_dict(&self) -> Vec<NamedTensor<T>> {
        self.tensors(false)
    }

    /// The gradients, named and shaped as [`Network::state_dict`].
    pub fn grad_dict(&self) -> Vec<NamedTensor<T>> {
        self.tensors(true)
    }

    fn tensors(&self, grads: bool) -> Vec<NamedTensor<T>> {
        let mut out = Vec::new();
        let (w0, b0) = if grads {
            (
                self.first.dweight_t.t().as_standard_layout().into_owned(),
                &self.first.dbias,
            )
        } else {
            (self.first.weight_out_in(), &self.first.bias)
        };
        out.push((
            "encoder.0.weight".into(),
            vec![w0.nrows(), w0.ncols()],
            w0.iter().copied().collect(),
        ));
        out.push(("encoder.0.bias".into(), vec![b0.len()], b0.to_vec()));
        for (name, layer) in self.named_dense() {
            let (w, b) = if grads {
                (&layer.dweight, &layer.dbias)
            } else {
                (&layer.weight, &layer.bias)
            };
            out.push((
                format!("{name}.weight"),
                vec![layer.n_out(), layer.n_in()],
                w.iter().copied().collect(),
            ));
            out.push((format!("{name}.bias"), vec![layer.n_out()], b.to_vec()));
        }
        for (name, bn) in self.named_norms() {
            let (g, b) = if grads {
                (&bn.dgamma, &bn.dbeta)
            } else {
                (&bn.gamma, &bn.beta)
            };
            out.push((format!("{name}.weight"), vec![g.len()], g.to_vec()));
            out.push((format!("{name}.bias"), vec![b.len()], b.to_vec()));
        }
        if let Some(d) = &self.dispersion {
            // scVI's name for the per-gene log inverse dispersion.
            let r = if grads { &d.dlog_theta } else { &d.log_theta };
            // (G) per gene, as scVI's; (C, G) per gene and batch.
            let shape = match r.nrows() {
                1 => vec![r.ncols()],
                _ => vec![r.nrows(), r.ncols()],
            };
            out.push(("px_r".into(), shape, r.iter().copied().collect()));
        }
        if let Some(c) = &self.centroids {
            let m = if grads { &c.dmu } else { &c.mu };
            out.push((
                "dec.centroids".into(),
                vec![m.nrows(), m.ncols()],
                m.iter().copied().collect(),
            ));
        }
        if !grads {
            // Buffers, not parameters: after every parameter, so that the parameters keep
            // the order Adam visits them in.
            for (name, bn) in self.named_norms() {
                let (m, v) = (&bn.running_mean, &bn.running_var);
                out.push((format!("{name}.running_mean"), vec![m.len()], m.to_vec()));
                out.push((format!("{name}.running_var"), vec![v.len()], v.to_vec()));
            }
        }
        out
    }

    /// The BatchNorms with their state_dict prefixes (`norm.encoder.0`, …, `norm.decoder.k`).
    fn named_norms(&self) -> Vec<(String, &crate::engine::batchnorm::BatchNorm<T>)> {
        let e = self.config.trunk.len();
        self.norms
            .iter()
            .enumerate()
            .map(|(p, bn)| {
                let name = if p < e {
                    format!("norm.encoder.{p}")
                } else {
                    format!("norm.decoder.{}", p - e)
                };
                (name, bn)
            })
            .collect()
    }

    /// The dense layers with their state_dict prefixes, in parameter order.
    fn named_dense(&self) -> Vec<(String, &Dense<T>)> {
        let mut v: Vec<(String, &Dense<T>)> = Vec::new();
        for (k, l) in self.trunk.iter().enumerate() {
            v.push((format!("encoder.{}", k + 1), l));
        }
        for head in &self.heads {
            if let Some(h) = &head.hidden {
                v.push((format!("heads.{}.hidden", head.name), h));
            }
            v.push((format!("heads.{}.out", head.name), &head.out));
        }
        for (k, l) in self.decoder.iter().enumerate() {
            v.push((format!("decoder.{k}"), l));
        }
        v
    }

    /// Replaces every parameter from `(name → (shape, values))`; names and shapes must match
    /// [`Network::state_dict`] exactly.
    pub fn load_state_dict(
        &mut self,
        tensors: &std::collections::HashMap<String, (Vec<usize>, Vec<T>)>,
    ) -> Result<()> {
        let expected = self.state_dict();
        if tensors.len() != expected.len() {
            return Err(Error::data(format!(
                "checkpoint has {} tensors, this {} network needs {}",
                tensors.len(),
                self.config.kind.name(),
                expected.len()
            )));
        }
        let mut values = Vec::with_capacity(expected.len());
        for (name, shape, _) in &expected {
            let (got_shape, v) = tensors
                .get(name)
                .ok_or_else(|| Error::data(format!("checkpoint lacks tensor '{name}'")))?;
            if got_shape != shape {
                return Err(Error::data(format!(
                    "tensor '{name}' has shape {got_shape:?}, expected {shape:?}"
                )));
            }
            values.push(v);
        }
        let w0 = Array2::from_shape_vec((expected[0].1[0], expected[0].1[1]), values[0].clone())
            .map_err(|e| Error::data(e.to_string()))?;
        self.first.weight_t = w0.t().as_standard_layout().into_owned();
        self.first.bias = Array1::from(values[1].clone());
        let mut k = 2;
        for layer in self.dense_mut() {
            layer
                .weight
                .as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(values[k]);
            layer
                .bias
                .as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(values[k + 1]);
            k += 2;
        }
        for bn in &mut self.norms {
            bn.gamma
                .as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(values[k]);
            bn.beta
                .as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(values[k + 1]);
            k += 2;
        }
        if let Some(d) = &mut self.dispersion {
            d.log_theta
                .as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(values[k]);
            k += 1;
        }
        if let Some(c) = &mut self.centroids {
            c.mu.as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(values[k]);
            k += 1;
        }
        for bn in &mut self.norms {
            bn.running_mean
                .as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(values[k]);
            bn.running_var
                .as_slice_mut()
                .expect("standard layout")
                .copy_from_slice(values[k + 1]);
            k += 2;
        }
        Ok(())
    }

    /// The dense layers in parameter order, mutably.
    fn dense_mut(&mut self) -> Vec<&mut Dense<T>> {
        let mut v: Vec<&mut Dense<T>> = self.trunk.iter_mut().collect();
        for head in &mut self.heads {
            if let Some(h) = &mut head.hidden {
                v.push(h);
            }
            v.push(&mut head.out);
        }
        v.extend(self.decoder.iter_mut());
        v
    }
}

impl<T: Scalar> Parameters<T> for Network<T> {
    fn for_each_param(&mut self, f: &mut dyn FnMut(&mut [T], &mut [T])) {
        f(
            self.first.weight_t.as_slice_mut().expect("standard layout"),
            self.first
                .dweight_t
                .as_slice_mut()
                .expect("standard layout"),
        );
        f(
            self.first.bias.as_slice_mut().expect("standard layout"),
            self.first.dbias.as_slice_mut().expect("standard layout"),
        );
        for layer in self.dense_mut() {
            f(
                layer.weight.as_slice_mut().expect("standard layout"),
                layer.dweight.as_slice_mut().expect("standard layout"),
            );
            f(
                layer.bias.as_slice_mut().expect("standard layout"),
                layer.dbias.as_slice_mut().expect("standard layout"),
            );
        }
        for bn in &mut self.norms {
            f(
                bn.gamma.as_slice_mut().expect("standard layout"),
                bn.dgamma.as_slice_mut().expect("standard layout"),
            );
            f(
                bn.beta.as_slice_mut().expect("standard layout"),
                bn.dbeta.as_slice_mut().expect("standard layout"),
            );
        }
        if let Some(d) = &mut self.dispersion {
            f(
                d.log_theta.as_slice_mut().expect("standard layout"),
                d.dlog_theta.as_slice_mut().expect("standard layout"),
            );
        }
        if let Some(c) = &mut self.centroids {
            f(
                c.mu.as_slice_mut().expect("standard layout"),
                c.dmu.as_slice_mut().expect("standard layout"),
            );
        }
    }

    fn gradients_zeroed(&mut self) {
        self.grads_zeroed = true;
    }
}
