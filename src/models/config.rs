//! The configuration of a network and its loss ([`ModelConfig`]), the kind of network
//! ([`ModelKind`]) and the reconstruction likelihood ([`Likelihood`]). The values each preset
//! gives them are in [`super::preset`].

use super::preset::Preset;
use crate::engine::{Activation, Reduction};
use crate::error::{Error, Result};

/// The VSC's selection sharpness `c` at the first step under `--vsc-c-schedule`
/// (`docs/math.md#3-sampling`): the default `c` of every preset, so a scheduled run starts
/// where an unscheduled one stays.
pub const VSC_C_SCHEDULE_START: f64 = 50.0;

/// The VSC's `c` at the last step under `--vsc-c-schedule`: the end of the VSC paper's
/// schedule (50 → 200). A larger `c` makes `s = σ(c·(η + γ − 1))` a sharper stand-in for the
/// Bernoulli selection `1[η < γ]`, so training ends with nearly binary selections.
pub const VSC_C_SCHEDULE_END: f64 = 200.0;

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum ModelKind {
    /// Deep autoencoder
    Ae,
    /// β-VAE
    Vae,
    /// β-VSC (spike-and-slab latent)
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
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Likelihood {
    /// Squared error on the input values (the study's)
    Mse,
    /// Negative binomial on the raw counts of the kept genes (scVI's decoder, `engine::nb`),
    /// with one log inverse dispersion per gene
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

/// How the NB decoder's inverse dispersion `θ` is shared (scVI's `dispersion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum DispersionKind {
    /// One θ per gene
    Gene,
    /// One θ per gene and batch
    GeneBatch,
}

impl DispersionKind {
    pub fn name(self) -> &'static str {
        match self {
            DispersionKind::Gene => "gene",
            DispersionKind::GeneBatch => "gene-batch",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [DispersionKind::Gene, DispersionKind::GeneBatch]
            .into_iter()
            .find(|d| d.name() == s)
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
    /// Batches the network is conditioned on: every decoder layer reads the batch's one-hot
    /// code beside its input ([`crate::engine::covariates`]). 0: not conditional.
    pub n_batches: usize,
    /// The encoder's layers read the batch's code too (with `n_batches > 0`).
    pub encode_batch: bool,
    /// The NB likelihood's θ per gene, or per gene and batch.
    pub dispersion: DispersionKind,
}

impl ModelConfig {
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
        let (enc, dec) = (self.encoder_covariates(), self.decoder_covariates());
        let mut total = linear(n_genes.checked_add(enc)?, *self.trunk.first()?)?;
        for w in self.trunk.windows(2) {
            total = total.checked_add(linear(w[0] + enc, w[1])?)?;
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
            total = total.checked_add(linear(w[0].checked_add(dec)?, w[1])?)?;
        }
        if self.likelihood == Likelihood::Nb {
            total = total.checked_add(n_genes.checked_mul(self.dispersion_rows())?)?;
        }
        total = total.checked_add(self.dec_clusters.checked_mul(self.latent)?)?;
        if self.batchnorm {
            // γ and β, and the running mean and variance (stored, not trained).
            let hidden: usize = self.trunk.iter().chain(&self.decoder).sum();
            total = total.checked_add(hidden.checked_mul(4)?)?;
        }
        Some(total)
    }

    /// One-hot columns each decoder layer reads beside its input.
    pub fn decoder_covariates(&self) -> usize {
        self.n_batches
    }

    /// Conditions the network on the data's batches (`n` of them; under two, nothing to
    /// condition on): an error when the encoder or the dispersion asks for batches that are
    /// not there.
    pub fn condition_on_batches(&mut self, n: usize) -> Result<()> {
        if n >= 2 {
            self.n_batches = n;
            return Ok(());
        }
        self.n_batches = 0;
        if self.encode_batch || self.dispersion != DispersionKind::Gene {
            return Err(Error::invalid(
                "--encode-batch and --dispersion gene-batch need two or more batches \
                 (--batch-key, --batches or several --data)",
            ));
        }
        Ok(())
    }

    /// One-hot columns each encoder layer reads beside its input.
    pub fn encoder_covariates(&self) -> usize {
        if self.encode_batch {
            self.n_batches
        } else {
            0
        }
    }

    /// Rows of the NB dispersion: 1, or one per batch.
    pub fn dispersion_rows(&self) -> usize {
        match self.dispersion {
            DispersionKind::Gene => 1,
            DispersionKind::GeneBatch => self.n_batches.max(1),
        }
    }

    /// Selection sharpness at `step` of `total` steps: constant, or 50 → 200 when scheduled.
    pub fn c_at(&self, step: usize, total: usize) -> f64 {
        if self.vsc_c_schedule && total > 1 {
            VSC_C_SCHEDULE_START
                + (VSC_C_SCHEDULE_END - VSC_C_SCHEDULE_START) * step as f64 / (total - 1) as f64
        } else {
            self.vsc_c
        }
    }

    /// The configuration as JSON (checkpoint metadata, reports).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
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
        });
        // Written only for conditional models, so that other checkpoints keep their bytes.
        if self.n_batches > 0 {
            v["n_batches"] = self.n_batches.into();
            v["encode_batch"] = self.encode_batch.into();
            v["dispersion"] = self.dispersion.name().into();
        }
        v
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
            n_batches: v.get("n_batches").map_or(Some(0), |x| x.as_u64())? as usize,
            encode_batch: v.get("encode_batch").map_or(Some(false), |x| x.as_bool())?,
            dispersion: match s("dispersion") {
                None => DispersionKind::Gene,
                Some(d) => DispersionKind::parse(d)?,
            },
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
                c.n_batches = 3;
                c.encode_batch = true;
                c.dispersion = DispersionKind::GeneBatch;
                assert_eq!(ModelConfig::from_json(&c.to_json()), Some(c.clone()));
            }
        }
        let mut bad = ModelConfig::preset(ModelKind::Vae, Preset::Paper);
        bad.latent = 0;
        assert!(bad.validate().is_err());
    }
}
