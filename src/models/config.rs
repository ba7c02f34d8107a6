//! Model configurations and the two presets of MODEL-SPEC section 2.
//!
//! | | `paper` (default: the write-up) | `seed-code` (the study's code) |
//! |---|---|---|
//! | AE encoder | d→128 (none)→32→16→6 **ReLU** | d→128 (none)→32→16→6 (none) |
//! | VAE/VSC trunk | d→128 (none)→32 | d→800 (none; **ReLU for VSC**)→400 |
//! | heads | own 16-unit ReLU branch each, →6 | →6 straight from the trunk |
//! | decoder | 6→16→32→128→d | AE 6→16→32→128→d; VAE/VSC 6→80→400→800→d |
//! | reduction | per-cell sum, batch mean | sum over the batch |
//! | β | VAE 2, VSC 2 | VAE 2, VSC 1 |
//! | batch | 256 | 240 |
//!
//! A third preset, `scrna`, is not the study's: the configuration that goes beyond it
//! (SCIENCE-SPEC; the README's "Beyond the study"): one ReLU hidden layer of 128 each way
//! with BatchNorm and dropout 0.1, no head branches, latent 6, β = 2, batch 128, per-cell
//! mean; the CLI adds its input (2,000 HVGs, flavor `seurat`, scaled), its validation split
//! and its KL warm-up.

use crate::engine::{Activation, Reduction};
use crate::error::{Error, Result};

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelKind {
    /// Deep autoencoder.
    Ae,
    /// β-VAE.
    Vae,
    /// β-VSC (spike-and-slab latent).
    Vsc,
}

impl ModelKind {
    pub const ALL: [ModelKind; 3] = [ModelKind::Ae, ModelKind::Vae, ModelKind::Vsc];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Ae => "ae",
            ModelKind::Vae => "vae",
            ModelKind::Vsc => "vsc",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ae" => Some(ModelKind::Ae),
            "vae" => Some(ModelKind::Vae),
            "vsc" => Some(ModelKind::Vsc),
            _ => None,
        }
    }

    /// Names of the encoder heads, in parameter order.
    pub fn heads(self) -> &'static [&'static str] {
        match self {
            ModelKind::Ae => &["z"],
            ModelKind::Vae => &["mu", "logvar"],
            ModelKind::Vsc => &["mu", "logvar", "spike"],
        }
    }
}

/// The reconstruction term of the loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Likelihood {
    /// Squared error on the input values (the study's).
    Mse,
    /// Negative-binomial likelihood of the raw counts of the kept genes, scVI's decoder
    /// ([`crate::engine::nb`]): adds one parameter per gene, its log inverse dispersion.
    Nb,
}

impl Likelihood {
    pub fn name(self) -> &'static str {
        match self {
            Likelihood::Mse => "mse",
            Likelihood::Nb => "nb",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mse" => Some(Likelihood::Mse),
            "nb" => Some(Likelihood::Nb),
            _ => None,
        }
    }
}

/// The architecture presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Paper,
    SeedCode,
    /// Beyond the study: the single-cell configuration (see the module doc).
    Scrna,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Paper => "paper",
            Preset::SeedCode => "seed-code",
            Preset::Scrna => "scrna",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "paper" => Some(Preset::Paper),
            "seed-code" => Some(Preset::SeedCode),
            "scrna" => Some(Preset::Scrna),
            _ => None,
        }
    }

    /// Minibatch size of the preset.
    pub fn batch_size(self) -> usize {
        match self {
            Preset::Paper => 256,
            Preset::SeedCode => 240,
            Preset::Scrna => 128,
        }
    }
}

/// Everything that defines a network and its loss.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub kind: ModelKind,
    pub preset: Preset,
    /// Latent size L.
    pub latent: usize,
    /// Encoder widths: the first (sparse) layer, then the dense trunk layers.
    pub trunk: Vec<usize>,
    /// Width of each head's own hidden ReLU branch; 0 for heads straight on the trunk.
    pub head_hidden: usize,
    /// Decoder hidden widths (the output layer back to the genes is implied).
    pub decoder: Vec<usize>,
    /// Activation after the first layer.
    pub first_activation: Activation,
    /// Activation on the AE code (ReLU in the write-up).
    pub code_activation: Activation,
    pub reduction: Reduction,
    /// Weight of the KL term (ignored by the AE).
    pub beta: f64,
    /// VSC selection sharpness c.
    pub vsc_c: f64,
    /// VSC prior spike probability α.
    pub vsc_alpha: f64,
    /// Raise c linearly from 50 to 200 over training (the VSC paper's schedule).
    pub vsc_c_schedule: bool,
    /// The reconstruction term.
    pub likelihood: Likelihood,
    /// DEC/IDEC head: number of clusters (0: none) and the weight γ of its loss.
    pub dec_clusters: usize,
    pub dec_weight: f64,
    /// BatchNorm after every hidden layer of the encoder trunk and the decoder.
    pub batchnorm: bool,
    /// Dropout probability after the same layers (0: none).
    pub dropout: f64,
}

impl ModelConfig {
    /// The preset's configuration of `kind`.
    pub fn preset(kind: ModelKind, preset: Preset) -> Self {
        if preset == Preset::Scrna {
            return Self::scrna(kind);
        }
        let paper = preset == Preset::Paper;
        let wide = !paper && kind != ModelKind::Ae;
        ModelConfig {
            kind,
            preset,
            latent: 6,
            trunk: match (kind, wide) {
                (ModelKind::Ae, _) => vec![128, 32, 16],
                (_, false) => vec![128, 32],
                (_, true) => vec![800, 400],
            },
            head_hidden: if paper && kind != ModelKind::Ae {
                16
            } else {
                0
            },
            decoder: if wide {
                vec![80, 400, 800]
            } else {
                vec![16, 32, 128]
            },
            first_activation: if !paper && kind == ModelKind::Vsc {
                Activation::Relu
            } else {
                Activation::Identity
            },
            code_activation: if paper {
                Activation::Relu
            } else {
                Activation::Identity
            },
            reduction: if paper {
                Reduction::Mean
            } else {
                Reduction::Sum
            },
            beta: match (kind, paper) {
                (ModelKind::Ae, _) => 0.0,
                (ModelKind::Vsc, false) => 1.0,
                _ => 2.0,
            },
            vsc_c: 50.0,
            vsc_alpha: 0.5,
            vsc_c_schedule: false,
            likelihood: Likelihood::Mse,
            dec_clusters: 0,
            dec_weight: 0.0,
            batchnorm: false,
            dropout: 0.0,
        }
    }

    /// The `scrna` preset's configuration of `kind`: latent width, β, BatchNorm and dropout
    /// chosen by held-out loss on the validation cells (`benches/scrna_selection.py`; README).
    fn scrna(kind: ModelKind) -> Self {
        // The study's values (VSC's c and α, MSE, no DEC) except where this says otherwise.
        ModelConfig {
            preset: Preset::Scrna,
            latent: 6,
            trunk: vec![128],
            head_hidden: 0,
            decoder: vec![128],
            first_activation: Activation::Relu,
            code_activation: Activation::Identity,
            reduction: Reduction::Mean,
            beta: if kind == ModelKind::Ae { 0.0 } else { 2.0 },
            batchnorm: true,
            dropout: 0.1,
            ..Self::preset(kind, Preset::Paper)
        }
    }

    /// Rejects configurations that cannot be built.
    pub fn validate(&self) -> Result<()> {
        if self.latent == 0 {
            return Err(Error::invalid("--latent must be at least 1"));
        }
        if self.trunk.is_empty() || self.trunk.contains(&0) || self.decoder.contains(&0) {
            return Err(Error::invalid(
                "hidden widths must be positive, and the encoder needs at least one layer",
            ));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::invalid(
                "--beta must be a finite, non-negative number",
            ));
        }
        if !(self.vsc_alpha > 0.0 && self.vsc_alpha < 1.0) {
            return Err(Error::invalid(
                "--vsc-alpha must lie strictly between 0 and 1",
            ));
        }
        if !(self.vsc_c.is_finite() && self.vsc_c > 0.0) {
            return Err(Error::invalid("--vsc-c must be positive"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid("--dropout must be at least 0 and below 1"));
        }
        if !(self.dec_weight.is_finite() && self.dec_weight >= 0.0) {
            return Err(Error::invalid(
                "--dec must be a finite, non-negative weight",
            ));
        }
        Ok(())
    }

    /// Number of values this network stores on `n_genes` inputs (its parameters, and
    /// BatchNorm's running statistics), without building it
    /// (`None` on overflow). Lets a checkpoint reader reject a configuration that does not
    /// match the tensors in the file before allocating anything.
    pub fn param_count(&self, n_genes: usize) -> Option<usize> {
        let linear = |i: usize, o: usize| i.checked_mul(o)?.checked_add(o);
        let mut total = linear(n_genes, *self.trunk.first()?)?;
        for w in self.trunk.windows(2) {
            total = total.checked_add(linear(w[0], w[1])?)?;
        }
        let top = *self.trunk.last()?;
        let head = if self.head_hidden > 0 {
            linear(top, self.head_hidden)?.checked_add(linear(self.head_hidden, self.latent)?)?
        } else {
            linear(top, self.latent)?
        };
        total = total.checked_add(head.checked_mul(self.kind.heads().len())?)?;
        let mut widths = vec![self.latent];
        widths.extend(&self.decoder);
        widths.push(n_genes);
        for w in widths.windows(2) {
            total = total.checked_add(linear(w[0], w[1])?)?;
        }
        if self.likelihood == Likelihood::Nb {
            total = total.checked_add(n_genes)?;
        }
        total = total.checked_add(self.dec_clusters.checked_mul(self.latent)?)?;
        if self.batchnorm {
            // γ and β, and the running mean and variance (stored, not trained).
            let hidden: usize = self.trunk.iter().chain(&self.decoder).sum();
            total = total.checked_add(hidden.checked_mul(4)?)?;
        }
        Some(total)
    }

    /// Selection sharpness at `step` of `total` steps: constant, or 50 → 200 when scheduled.
    pub fn c_at(&self, step: usize, total: usize) -> f64 {
        if self.vsc_c_schedule && total > 1 {
            50.0 + 150.0 * step as f64 / (total - 1) as f64
        } else {
            self.vsc_c
        }
    }

    /// The configuration as JSON (checkpoint metadata, reports).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "model": self.kind.name(),
            "preset": self.preset.name(),
            "latent": self.latent,
            "trunk": self.trunk,
            "head_hidden": self.head_hidden,
            "decoder": self.decoder,
            "first_activation": self.first_activation.name(),
            "code_activation": self.code_activation.name(),
            "reduction": self.reduction.name(),
            "beta": self.beta,
            "vsc_c": self.vsc_c,
            "vsc_alpha": self.vsc_alpha,
            "vsc_c_schedule": self.vsc_c_schedule,
            "likelihood": self.likelihood.name(),
            "dec_clusters": self.dec_clusters,
            "dec_weight": self.dec_weight,
            "batchnorm": self.batchnorm,
            "dropout": self.dropout,
        })
    }

    /// Parses [`ModelConfig::to_json`].
    pub fn from_json(v: &serde_json::Value) -> Option<Self> {
        let widths = |k: &str| -> Option<Vec<usize>> {
            v.get(k)?
                .as_array()?
                .iter()
                .map(|w| w.as_u64().map(|w| w as usize))
                .collect()
        };
        let s = |k: &str| v.get(k).and_then(|x| x.as_str());
        let f = |k: &str| v.get(k).and_then(|x| x.as_f64());
        Some(ModelConfig {
            kind: ModelKind::parse(s("model")?)?,
            preset: Preset::parse(s("preset")?)?,
            latent: v.get("latent")?.as_u64()? as usize,
            trunk: widths("trunk")?,
            head_hidden: v.get("head_hidden")?.as_u64()? as usize,
            decoder: widths("decoder")?,
            first_activation: Activation::parse(s("first_activation")?)?,
            code_activation: Activation::parse(s("code_activation")?)?,
            reduction: Reduction::parse(s("reduction")?)?,
            beta: f("beta")?,
            vsc_c: f("vsc_c")?,
            vsc_alpha: f("vsc_alpha")?,
            vsc_c_schedule: v.get("vsc_c_schedule")?.as_bool()?,
            // Checkpoints written before the NB decoder existed are MSE models.
            likelihood: match s("likelihood") {
                None => Likelihood::Mse,
                Some(l) => Likelihood::parse(l)?,
            },
            dec_clusters: v.get("dec_clusters").map_or(Some(0), |x| x.as_u64())? as usize,
            dec_weight: v.get("dec_weight").map_or(Some(0.0), |x| x.as_f64())?,
            batchnorm: v.get("batchnorm").map_or(Some(false), |x| x.as_bool())?,
            dropout: v.get("dropout").map_or(Some(0.0), |x| x.as_f64())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsc_c_schedule_runs_from_50_to_200() {
        let mut c = ModelConfig::preset(ModelKind::Vsc, Preset::Paper);
        assert_eq!(c.c_at(0, 100), 50.0);
        assert_eq!(c.c_at(99, 100), 50.0);
        c.vsc_c_schedule = true;
        assert_eq!(c.c_at(0, 100), 50.0);
        assert_eq!(c.c_at(99, 100), 200.0);
        assert!((c.c_at(33, 100) - 100.0).abs() < 1e-9);
    }

    #[test]
    fn json_round_trip_and_validation() {
        for kind in ModelKind::ALL {
            for preset in [Preset::Paper, Preset::SeedCode, Preset::Scrna] {
                let mut c = ModelConfig::preset(kind, preset);
                assert_eq!(ModelConfig::from_json(&c.to_json()), Some(c.clone()));
                assert!(c.validate().is_ok());
                c.likelihood = Likelihood::Nb;
                c.dec_clusters = 9;
                c.dec_weight = 0.1;
                c.batchnorm = true;
                c.dropout = 0.1;
                assert_eq!(ModelConfig::from_json(&c.to_json()), Some(c.clone()));
            }
        }
        let mut bad = ModelConfig::preset(ModelKind::Vae, Preset::Paper);
        bad.latent = 0;
        assert!(bad.validate().is_err());
    }
}
