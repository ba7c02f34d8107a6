//! Flag groups shared by several subcommands: the data flags every command that reads data
//! takes, and the model flags (each preset value can be overridden).

use crate::engine::{Activation, Reduction};
use crate::io::BatchSource;
use crate::models::{DispersionKind, Likelihood, ModelConfig, ModelKind, Preset};
use crate::preprocess::{HvgFlavor, Normalize, PrepOptions, QcMode, QcThresholds};
use crate::train::TrainOptions;
use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// The dataset shipped with cellvae, the default input.
pub const DEFAULT_DATA: &str = "data/pbmc3k";

/// The engine's enums on the command line. The engine keeps to the design card's crates, so
/// these two are implemented here rather than derived there; every other enum a flag takes
/// derives `ValueEnum` where it is defined.
impl ValueEnum for Activation {
    fn value_variants<'a>() -> &'a [Self] {
        &[Activation::Identity, Activation::Relu]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()))
    }
}

impl ValueEnum for Reduction {
    fn value_variants<'a>() -> &'a [Self] {
        &[Reduction::Mean, Reduction::Sum]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()))
    }
}

/// Input data and preprocessing. Unset values come from the preset.
#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// 10x directory, .mtx[.gz] file, .csv[.gz] matrix, AnnData .h5ad, or Cell Ranger .h5;
    /// given several times, the inputs are joined on their genes, each one batch named after
    /// its file
    #[arg(long, default_value = DEFAULT_DATA)]
    pub data: Vec<PathBuf>,
    /// .h5ad input: the obs column that holds each cell's batch
    #[arg(long, value_name = "COLUMN", conflicts_with = "batches")]
    pub batch_key: Option<String>,
    /// CSV of barcode,batch for each cell (any input format)
    #[arg(long, value_name = "FILE")]
    pub batches: Option<PathBuf>,
    /// .h5ad input: read layers/NAME instead of X
    #[arg(long, value_name = "NAME")]
    pub layer: Option<String>,
    /// .h5ad input: read raw.X (with raw.var) instead of X
    #[arg(long, conflicts_with = "layer")]
    pub raw: bool,
    /// Cells are columns and genes are rows in a CSV input
    #[arg(long)]
    pub transpose: bool,
    /// Quality control
    #[arg(long, value_enum, default_value = "seurat")]
    pub qc: QcMode,
    /// LogNormalize: auto normalizes integer counts and keeps non-integer input as it is
    #[arg(long, value_enum, default_value = "auto")]
    pub normalize: Normalize,
    /// QC: keep cells with more than this many detected genes
    #[arg(long, default_value_t = QcThresholds::default().min_genes)]
    pub min_genes: usize,
    /// QC: keep cells with fewer than this many detected genes
    #[arg(long, default_value_t = QcThresholds::default().max_genes)]
    pub max_genes: usize,
    /// QC: keep cells with a mitochondrial percentage below this
    #[arg(long, default_value_t = QcThresholds::default().max_mito)]
    pub max_mito: f64,
    /// Keep genes detected in at least this many cells
    #[arg(long, default_value_t = QcThresholds::default().min_cells)]
    pub min_cells: usize,
    /// Keep only the N most variable genes (all of them when there are fewer)
    /// [default: all genes; 2000 under --preset scrna]
    #[arg(long, value_name = "N")]
    pub hvg: Option<usize>,
    /// How --hvg ranks the genes [default: vst; seurat under --preset scrna]
    #[arg(long, value_enum)]
    pub hvg_flavor: Option<HvgFlavor>,
    /// Z-score every gene after normalization and --hvg, clipped at ±10 (the means and sds
    /// are stored with each model, and embed applies them) [default: no; yes under --preset
    /// scrna]
    #[arg(long)]
    pub scale: bool,
    /// Do not scale, whatever the preset says
    #[arg(long, conflicts_with = "scale")]
    pub no_scale: bool,
}

impl DataArgs {
    /// Whether the inputs come with batches: `--batch-key`, `--batches` or several `--data`
    /// (the presets' batch values apply; one batch in the data is then reported, and the
    /// networks are not conditioned on it).
    pub fn names_batches(&self) -> bool {
        self.batch_key.is_some() || self.batches.is_some() || self.data.len() > 1
    }

    /// The first `--data` input (where labels inside the input are looked for).
    pub fn first(&self) -> &std::path::Path {
        self.data
            .first()
            .map_or(Path::new(DEFAULT_DATA), PathBuf::as_path)
    }

    /// The inputs as one dataset with their batches, and notes for the user; with `quiet`
    /// false, a long `.h5ad` read shows its progress.
    pub fn read(&self, quiet: bool) -> crate::Result<(crate::io::Dataset, Vec<String>)> {
        let source = match (&self.batch_key, &self.batches) {
            (Some(c), _) => BatchSource::ObsColumn(c.clone()),
            (None, Some(p)) => BatchSource::Table(p.clone()),
            (None, None) => BatchSource::None,
        };
        crate::io::read_inputs(&self.data, &self.read_options(quiet), &source)
    }

    /// How to read `--data`.
    pub fn read_options(&self, quiet: bool) -> crate::io::ReadOptions {
        crate::io::ReadOptions {
            transpose: self.transpose,
            h5ad: crate::io::hdf5::H5adOptions {
                layer: self.layer.clone(),
                raw: self.raw,
                progress: (!quiet).then(|| "reading".to_string()),
            },
        }
    }

    /// The preset's preprocessing with every given flag applied.
    pub fn prep_options(&self, preset: Preset) -> crate::Result<PrepOptions> {
        if !(self.max_mito.is_finite() && self.max_mito >= 0.0) {
            return Err(crate::Error::invalid(
                "--max-mito must be a non-negative number",
            ));
        }
        if self.hvg == Some(0) {
            return Err(crate::Error::invalid("--hvg must be at least 1"));
        }
        let defaults = preset.prep_options();
        Ok(PrepOptions {
            qc: self.qc,
            thresholds: QcThresholds {
                min_genes: self.min_genes,
                max_genes: self.max_genes,
                max_mito: self.max_mito,
                min_cells: self.min_cells,
            },
            normalize: self.normalize,
            hvg: self.hvg.or(defaults.hvg),
            hvg_flavor: self.hvg_flavor.unwrap_or(defaults.hvg_flavor),
            scale: (defaults.scale || self.scale) && !self.no_scale,
        })
    }
}

/// Labels for scoring.
#[derive(Args, Clone, Debug)]
pub struct LabelArgs {
    /// CSV with barcode and label columns [default: labels.csv inside --data, if present]
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Label column of the labels file [default: its second column]
    #[arg(long, value_name = "NAME")]
    pub label_column: Option<String>,
    /// .h5ad input: take the labels from this obs column (categorical or strings)
    #[arg(long, value_name = "COLUMN", conflicts_with = "labels")]
    pub labels_from_obs: Option<String>,
}

/// Layer widths given as `128,32` (`none` for no hidden layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Widths(pub Vec<usize>);

fn widths(s: &str) -> Result<Widths, String> {
    if s.trim().is_empty() || s == "none" {
        return Ok(Widths(vec![]));
    }
    s.split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(0) | Err(_) => Err(format!(
                "'{w}' is not a positive width (expected e.g. 128,32)"
            )),
            Ok(v) => Ok(v),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Widths)
}

/// Architecture, loss and optimisation. Unset values come from the preset.
#[derive(Args, Clone, Debug)]
pub struct ModelArgs {
    /// Preset: every default of the input, the networks, training and the PCA baseline
    #[arg(long, value_enum, default_value = "paper")]
    pub preset: Preset,
    /// Latent size [default: 6]
    #[arg(long)]
    pub latent: Option<usize>,
    /// KL weight β [default: preset: VAE 2, VSC 2 (paper) or 1 (seed-code)]
    #[arg(long)]
    pub beta: Option<f64>,
    /// Encoder widths, first layer first [default: preset, e.g. 128,32]
    #[arg(long, value_parser = widths, value_name = "W,W,...")]
    pub hidden: Option<Widths>,
    /// Width of each head's own hidden branch, 0 for none [default: preset: 16 (paper), 0 (seed-code)]
    #[arg(long, value_name = "W")]
    pub head_hidden: Option<usize>,
    /// Decoder hidden widths [default: preset, e.g. 16,32,128]
    #[arg(long, value_parser = widths, value_name = "W,W,...")]
    pub decoder: Option<Widths>,
    /// Activation after the first layer [default: none; relu for the seed-code VSC]
    #[arg(long, value_enum)]
    pub first_activation: Option<Activation>,
    /// Activation on the AE code [default: relu (paper), none (seed-code)]
    #[arg(long, value_enum)]
    pub code_activation: Option<Activation>,
    /// Reconstruction likelihood [default: mse]
    #[arg(long, value_enum)]
    pub likelihood: Option<Likelihood>,
    /// Loss reduction over the batch [default: mean (paper), sum (seed-code)]
    #[arg(long, value_enum)]
    pub reduction: Option<Reduction>,
    /// VSC selection sharpness c [default: 50]
    #[arg(long)]
    pub vsc_c: Option<f64>,
    /// VSC prior spike probability α [default: 0.5]
    #[arg(long)]
    pub vsc_alpha: Option<f64>,
    /// VSC: raise c linearly from 50 to 200 over training (the VSC paper's schedule; a fixed
    /// --vsc-c cannot be given with it)
    #[arg(long, conflicts_with = "vsc_c")]
    pub vsc_c_schedule: bool,
    /// Train with the output layer and the loss as separate layers (the textbook form:
    /// forms the B × genes reconstruction; same math) instead of the fused Gram form; taken
    /// anyway where the output layer's input is wider than 1.5 × the batch (seed-code)
    #[arg(long)]
    pub unfused_output: bool,
    /// Minibatch size [default: 256 (paper), 240 (seed-code), 128 (scrna)]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Training epochs [default: 200]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Adam learning rate [default: 0.001]
    #[arg(long)]
    pub lr: Option<f64>,
    /// KL warm-up: the KL weight rises linearly from 0 to β over this many epochs
    /// [default: 0, none; 50 under --preset scrna]
    #[arg(long, value_name = "EPOCHS")]
    pub kl_warmup: Option<usize>,
    /// Hold this fraction of the cells out of training (a fixed split, the same for every
    /// run on the same cells) and report the held-out loss per epoch [default: 0; 0.1 under
    /// --preset scrna]
    #[arg(long, value_name = "F")]
    pub val_fraction: Option<f64>,
    /// BatchNorm after every hidden layer of the encoder and decoder (running statistics
    /// when encoding)
    #[arg(long)]
    pub batchnorm: bool,
    /// No BatchNorm, whatever the preset says (--preset scrna has it)
    #[arg(long, conflicts_with = "batchnorm")]
    pub no_batchnorm: bool,
    /// Dropout probability after every hidden layer of the encoder and decoder (training only)
    #[arg(long, value_name = "P")]
    pub dropout: Option<f64>,
    /// DEC/IDEC head on the code with this weight γ on its loss (0: none); its centroids
    /// start from k-means on the codes when the DEC phase begins
    #[arg(long, value_name = "GAMMA")]
    pub dec: Option<f64>,
    /// Number of DEC clusters [default for run: k, the number of labelled types or --k]
    #[arg(long, value_name = "K")]
    pub dec_clusters: Option<usize>,
    /// The DEC phase: the last this many epochs (it stops early once under 0.1% of the
    /// cells change cluster between epochs)
    #[arg(long, value_name = "EPOCHS", default_value_t = 50)]
    pub dec_epochs: usize,
    /// With batches: the encoder reads each cell's batch too (the decoder always does)
    #[arg(long)]
    pub encode_batch: bool,
    /// NB likelihood: one inverse dispersion per gene, or per gene and batch [default: gene]
    #[arg(long, value_enum)]
    pub dispersion: Option<DispersionKind>,
    /// Seed of every random stream (init, shuffles, noise, t-SNE, k-means)
    #[arg(long, default_value_t = crate::train::DEFAULT_SEED)]
    pub seed: u64,
}

impl ModelArgs {
    /// The preset's configuration of `kind`, on data with batches (`batches`) or without,
    /// with every given flag applied.
    pub fn config(&self, kind: ModelKind, batches: bool) -> crate::Result<ModelConfig> {
        let mut c = self.preset.network_for(kind, batches);
        if let Some(v) = self.latent {
            c.latent = v;
        }
        if let Some(v) = self.beta {
            c.beta = v;
        }
        if let Some(v) = &self.hidden {
            c.trunk = v.0.clone();
        }
        if let Some(v) = self.head_hidden {
            c.head_hidden = v;
        }
        if let Some(v) = &self.decoder {
            c.decoder = v.0.clone();
        }
        if let Some(v) = self.first_activation {
            c.first_activation = v;
        }
        if let Some(v) = self.code_activation {
            c.code_activation = v;
        }
        if let Some(v) = self.reduction {
            c.reduction = v;
        }
        if let Some(v) = self.vsc_c {
            c.vsc_c = v;
        }
        if let Some(v) = self.vsc_alpha {
            c.vsc_alpha = v;
        }
        c.vsc_c_schedule = self.vsc_c_schedule;
        if self.batchnorm {
            c.batchnorm = true;
        }
        if self.no_batchnorm {
            c.batchnorm = false;
        }
        if let Some(p) = self.dropout {
            c.dropout = p;
        }
        if let Some(g) = self.dec.filter(|&g| g > 0.0) {
            c.dec_weight = g;
            c.dec_clusters = self.dec_clusters.unwrap_or(0);
        }
        if let Some(l) = self.likelihood {
            c.likelihood = l;
        }
        c.encode_batch = self.encode_batch;
        if let Some(d) = self.dispersion {
            c.dispersion = d;
        }
        c.validate()?;
        Ok(c)
    }

    /// The preset's training options, on data with batches (`batches`) or without, with
    /// every given flag applied.
    pub fn train_options(&self, batches: bool) -> crate::Result<TrainOptions> {
        let defaults = TrainOptions::preset(self.preset);
        let epochs = self
            .epochs
            .unwrap_or(self.preset.training_for(batches).epochs);
        let t = TrainOptions {
            batch_size: self.batch_size.unwrap_or(defaults.batch_size),
            epochs,
            lr: self.lr.unwrap_or(defaults.lr),
            seed: self.seed,
            unfused_output: self.unfused_output,
            kl_warmup: self.kl_warmup.unwrap_or(defaults.kl_warmup),
            val_fraction: self.val_fraction.unwrap_or(defaults.val_fraction),
            dec_epochs: if self.dec.is_some_and(|g| g > 0.0) {
                self.dec_epochs.min(epochs)
            } else {
                0
            },
        };
        t.validate()?;
        Ok(t)
    }
}
