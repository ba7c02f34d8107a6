//! The presets, every value of each in this one file: the input (gene selection and
//! scaling), the networks, training, and the PCA baseline beside them. The command line and
//! the library's [`crate::study`] both start from here; a flag or a field set by hand
//! overrides one value and leaves the rest.
//!
//! | | `paper` (default: the study's write-up) | `seed-code` (the study's code) | `scrna` (beyond the study) |
//! |---|---|---|---|
//! | input | all genes, LogNormalized | all genes, LogNormalized | 2,000 HVGs (scanpy's `seurat` flavor), z-scored per gene, clipped at ±10 |
//! | AE encoder | d→128 (none)→32→16→6 **ReLU** | d→128 (none)→32→16→6 (none) | d→128 ReLU→6 |
//! | VAE/VSC trunk | d→128 (none)→32 | d→800 (none; **ReLU for VSC**)→400 | d→128 ReLU |
//! | heads | own 16-unit ReLU branch each, →6 | →6 straight from the trunk | →6 straight from the trunk |
//! | decoder | 6→16→32→128→d | AE 6→16→32→128→d; VAE/VSC 6→80→400→800→d | 6→128 ReLU→d |
//! | BatchNorm, dropout | no, 0 | no, 0 | after every hidden layer, 0.1 |
//! | reduction | per-cell sum, batch mean | sum over the batch | per-cell sum, batch mean |
//! | β | VAE 2, VSC 2 | VAE 2, VSC 1 | 2 |
//! | batch, epochs, learning rate | 256, 200, 10⁻³ | 240, 200, 10⁻³ | 128, 200, 10⁻³ |
//! | KL warm-up, validation split | none | none | 50 epochs, 10 % of the cells |
//! | PCA baseline | as many components as the latent (6) | the same | 50 components |
//! | with batches | the same, the decoder reading the batch | the same | scVI's prior: NB on the counts, 10-D code, 400 epochs |
//! | beyond 20,000 cells | epochs × 20,000 / cells (scVI's rule) | the same | the same |
//!
//! VSC's selection sharpness c = 50 and prior spike probability α = 0.5, and the MSE
//! likelihood, are the same in all three. `scrna`'s latent width, β, BatchNorm, dropout and
//! warm-up were chosen by held-out loss on the validation cells, never by label scores; its
//! input was fixed in advance (scanpy's standard recipe), because held-out losses over other
//! genes or values cannot be compared (`docs/scrna.md` has the selection).

use super::config::{DispersionKind, Likelihood, ModelConfig, ModelKind};
use crate::engine::{Activation, Reduction};
use crate::preprocess::{HvgFlavor, PrepOptions};

/// The presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Preset {
    /// The study's write-up (the default)
    Paper,
    /// The study's code
    SeedCode,
    /// Beyond the study: 2,000 HVGs (seurat), scaled, BatchNorm and dropout, KL warm-up,
    /// a validation split; PCA with 50 components
    Scrna,
}

/// The training values of a preset (the crate's `TrainOptions` take them as defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainingDefaults {
    pub batch_size: usize,
    pub epochs: usize,
    pub lr: f64,
    /// Epochs over which the KL weight rises from 0 to β (0: none).
    pub kl_warmup: usize,
    /// Fraction of the cells held out for the per-epoch held-out loss (0: none).
    pub val_fraction: f64,
}

/// The `scrna` input: how many highly variable genes.
pub const SCRNA_HVG: usize = 2000;

/// The components of the `scrna` PCA baseline (scanpy's default).
pub const SCRNA_PCA_COMPONENTS: usize = 50;

/// `scrna` on data with batches takes scVI's defaults for integration, a prior stated in
/// advance rather than a choice made on any data set: the negative-binomial likelihood on the
/// counts, a 10-dimensional code, and 400 epochs (scVI's rule below 20,000 cells; beyond,
/// [`epochs_for_cells`] shrinks them as it does every preset's).
pub const SCRNA_BATCH_LATENT: usize = 10;
/// See [`SCRNA_BATCH_LATENT`].
pub const SCRNA_BATCH_EPOCHS: usize = 400;

/// Cells up to which a preset trains its full epochs; beyond, the epochs shrink in
/// proportion ([`epochs_for_cells`]).
pub const EPOCH_SCALE_CELLS: usize = 20_000;

/// scVI's rule for the epochs over `n` cells: `epochs` up to [`EPOCH_SCALE_CELLS`] cells,
/// then `epochs · 20,000 / n` rounded (at least 1), so the number of optimizer steps stays
/// bounded as the data grow (`scrna`: 200 epochs at 20k cells, 20 at 200k, 4 at 1M).
pub fn epochs_for_cells(epochs: usize, n: usize) -> usize {
    if n <= EPOCH_SCALE_CELLS {
        return epochs;
    }
    ((epochs * EPOCH_SCALE_CELLS) as f64 / n as f64)
        .round()
        .max(1.0) as usize
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Paper, Preset::SeedCode, Preset::Scrna];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Paper => "paper",
            Preset::SeedCode => "seed-code",
            Preset::Scrna => "scrna",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Preset::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The preprocessing: Seurat QC and LogNormalize for all three; `scrna` adds 2,000
    /// HVGs of the `seurat` flavor and per-gene scaling.
    pub fn prep_options(self) -> PrepOptions {
        match self {
            Preset::Paper | Preset::SeedCode => PrepOptions::default(),
            Preset::Scrna => PrepOptions {
                hvg: Some(SCRNA_HVG),
                hvg_flavor: HvgFlavor::Seurat,
                scale: true,
                ..PrepOptions::default()
            },
        }
    }

    /// The training values.
    pub fn training(self) -> TrainingDefaults {
        let study = TrainingDefaults {
            batch_size: 256,
            epochs: 200,
            lr: 1e-3,
            kl_warmup: 0,
            val_fraction: 0.0,
        };
        match self {
            Preset::Paper => study,
            Preset::SeedCode => TrainingDefaults {
                batch_size: 240,
                ..study
            },
            Preset::Scrna => TrainingDefaults {
                batch_size: 128,
                kl_warmup: 50,
                val_fraction: 0.1,
                ..study
            },
        }
    }

    /// The training values on data with batches (`batches`) or without: `scrna` with
    /// batches trains [`SCRNA_BATCH_EPOCHS`].
    pub fn training_for(self, batches: bool) -> TrainingDefaults {
        let t = self.training();
        match self {
            Preset::Scrna if batches => TrainingDefaults {
                epochs: SCRNA_BATCH_EPOCHS,
                ..t
            },
            _ => t,
        }
    }

    /// The network of `kind` on data with batches (`batches`) or without: `scrna` with
    /// batches is scVI's prior for integration ([`SCRNA_BATCH_LATENT`]); the decoder reads
    /// the batch once the data's batches are known ([`ModelConfig::condition_on_batches`]).
    pub fn network_for(self, kind: ModelKind, batches: bool) -> ModelConfig {
        let mut c = self.network(kind);
        if self == Preset::Scrna && batches {
            c.likelihood = Likelihood::Nb;
            c.latent = SCRNA_BATCH_LATENT;
        }
        c
    }

    /// Components of the PCA baseline beside networks of `latent` dimensions: the study
    /// compares codes of the same width; `scrna` takes scanpy's 50.
    pub fn pca_components(self, latent: usize) -> usize {
        match self {
            Preset::Scrna => SCRNA_PCA_COMPONENTS,
            Preset::Paper | Preset::SeedCode => latent,
        }
    }

    /// The network of `kind` (see the table in the module doc).
    pub fn network(self, kind: ModelKind) -> ModelConfig {
        match self {
            Preset::Paper | Preset::SeedCode => study_network(kind, self),
            Preset::Scrna => ModelConfig {
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
                // The study's values (VSC's c and α, MSE, no DEC) for the rest.
                ..study_network(kind, Preset::Paper)
            },
        }
    }
}

impl ModelConfig {
    /// The preset's configuration of `kind` ([`Preset::network`]).
    pub fn preset(kind: ModelKind, preset: Preset) -> Self {
        preset.network(kind)
    }
}

/// The study's networks: its write-up (`paper`) or its code (`seed-code`).
fn study_network(kind: ModelKind, preset: Preset) -> ModelConfig {
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
        n_batches: 0,
        encode_batch: false,
        dispersion: DispersionKind::Gene,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Preset::ALL {
            assert_eq!(Preset::parse(p.name()), Some(p));
        }
        assert_eq!(Preset::parse("nope"), None);
    }

    /// The table of the module doc, the rows that differ between presets.
    #[test]
    fn presets_differ_where_the_table_says() {
        let scrna = Preset::Scrna.network(ModelKind::Vae);
        assert_eq!(
            (scrna.trunk.clone(), scrna.decoder.clone()),
            (vec![128], vec![128])
        );
        assert!(scrna.batchnorm && scrna.dropout == 0.1);
        assert_eq!(Preset::SeedCode.network(ModelKind::Vsc).beta, 1.0);
        assert_eq!(
            Preset::SeedCode.network(ModelKind::Vae).trunk,
            vec![800, 400]
        );
        assert_eq!(
            Preset::Paper.network(ModelKind::Ae).trunk,
            vec![128, 32, 16]
        );
        assert_eq!(Preset::Paper.pca_components(6), 6);
        assert_eq!(Preset::Scrna.pca_components(6), 50);
        let p = Preset::Scrna.prep_options();
        assert_eq!(
            (p.hvg, p.hvg_flavor, p.scale),
            (Some(2000), HvgFlavor::Seurat, true)
        );
        assert_eq!(Preset::Paper.prep_options().hvg, None);
        let t = Preset::Scrna.training();
        assert_eq!((t.batch_size, t.kl_warmup, t.val_fraction), (128, 50, 0.1));
        assert_eq!(Preset::SeedCode.training().batch_size, 240);
    }

    /// scVI's epochs rule: full epochs up to 20,000 cells (the study's 2,638 cells train
    /// what they always did), then in proportion; never below 1.
    #[test]
    fn epochs_shrink_beyond_twenty_thousand_cells() {
        assert_eq!(epochs_for_cells(200, 2638), 200);
        assert_eq!(epochs_for_cells(200, 20_000), 200);
        assert_eq!(epochs_for_cells(200, 100_000), 40);
        assert_eq!(epochs_for_cells(200, 1_000_000), 4);
        assert_eq!(epochs_for_cells(400, 1_000_000), 8);
        assert_eq!(epochs_for_cells(200, 100_000_000), 1);
    }

    /// `scrna` with batches is scVI's prior (NB, 10-D code, 400 epochs); without, and every
    /// other preset with or without, is unchanged.
    #[test]
    fn scrna_with_batches_takes_scvis_prior() {
        let c = Preset::Scrna.network_for(ModelKind::Vae, true);
        assert_eq!(
            (c.likelihood, c.latent),
            (Likelihood::Nb, SCRNA_BATCH_LATENT)
        );
        assert_eq!(Preset::Scrna.training_for(true).epochs, 400);
        assert_eq!(Preset::Scrna.training_for(false), Preset::Scrna.training());
        for p in Preset::ALL {
            for kind in ModelKind::ALL {
                assert_eq!(p.network_for(kind, false), p.network(kind));
                if p != Preset::Scrna {
                    assert_eq!(p.network_for(kind, true), p.network(kind));
                }
            }
        }
    }
}
