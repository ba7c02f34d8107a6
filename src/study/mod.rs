//! The study as a library: prepared data in, every representation's codes, embeddings,
//! clusters and scores out. The command line's `run` is this module plus files and figures.
//!
//! ```text
//! Prepared ─┬─ fit_network (AE, β-VAE, β-VSC) ─┐
//!           └─ pca_codes (the baseline) ────────┴─ codes ─ evaluate_codes ─ Evaluation ─ ModelOutcome
//! ```
//!
//! [`StudyOptions::preset`] gives every setting of a preset ([`crate::models::preset`]);
//! [`run_model`] runs one representation, [`run`] all of them in order. Nothing here writes a
//! file. A minimal use, the study's protocols on codes of your own:
//!
//! ```
//! use cellvae::study::evaluate::{evaluate_codes, EvalOptions};
//! let codes = ndarray::Array2::from_shape_fn((60, 3), |(i, j)| ((i / 20) * 10 + j) as f64
//!     + 0.01 * ((i * 7 + j * 3) % 11) as f64);
//! let mut opts = EvalOptions::new(1);
//! (opts.perplexity, opts.tsne_iterations, opts.n_init) = (10.0, 300, Some(4));
//! let e = evaluate_codes(&codes, None, None, Some(3), &opts).unwrap();
//! assert_eq!(e.clusters.unwrap().leiden.labels.len(), 60);
//! ```

pub mod evaluate;
pub mod fit;
pub mod outcome;

use crate::analysis::harmony::{harmony, Draws, HarmonyOptions};
use crate::analysis::markers::{rank_genes_with, GeneTest};
use crate::error::{Error, Result};
use crate::io::align::CellTypes;
use crate::io::batches::CellBatches;
use crate::io::Dataset;
use crate::models::codes::Codes;
use crate::models::{ModelConfig, ModelKind, Preset};
use crate::preprocess::{PrepOptions, Prepared};
use crate::train::progress::Progress;
use crate::train::TrainOptions;
use evaluate::{evaluate_codes, EvalOptions, Evaluation};
use fit::{fit_network, pca_codes, Fitted};
use outcome::ModelOutcome;
use std::time::Instant;

/// A representation the study evaluates: one of the networks, or a linear baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum StudyModel {
    Ae,
    Vae,
    Vsc,
    /// The principal components
    Pca,
    /// The principal components corrected for batches by Harmony (with batches only)
    Harmony,
}

impl StudyModel {
    /// The study's order: the three networks, then the baseline.
    pub const ALL: [StudyModel; 4] = [
        StudyModel::Ae,
        StudyModel::Vae,
        StudyModel::Vsc,
        StudyModel::Pca,
    ];

    /// The network it trains; `None` for the linear baselines.
    pub fn kind(self) -> Option<ModelKind> {
        match self {
            StudyModel::Ae => Some(ModelKind::Ae),
            StudyModel::Vae => Some(ModelKind::Vae),
            StudyModel::Vsc => Some(ModelKind::Vsc),
            StudyModel::Pca | StudyModel::Harmony => None,
        }
    }

    /// The name of its output folder and summary row.
    pub fn name(self) -> &'static str {
        match self {
            StudyModel::Pca => "pca",
            StudyModel::Harmony => "harmony",
            m => m.kind().map_or("", ModelKind::name),
        }
    }
}

/// Every setting of a study run.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyOptions {
    pub preset: Preset,
    /// How the data are prepared (QC, normalization, genes, scaling).
    pub prep: PrepOptions,
    /// Representations, in order.
    pub models: Vec<StudyModel>,
    /// The networks' configurations, one per kind in [`ModelKind::ALL`] order.
    pub networks: [ModelConfig; 3],
    pub train: TrainOptions,
    /// Whether [`StudyOptions::settle`] shrinks the epochs (and the KL warm-up) beyond
    /// 20,000 cells ([`crate::models::preset::epochs_for_cells`]); false when the epochs
    /// were given by hand.
    pub scale_epochs: bool,
    pub pca_components: usize,
    /// Clusters per protocol (`None`: the number of labelled types, if there are labels).
    pub k: Option<usize>,
    pub eval: EvalOptions,
}

impl StudyOptions {
    /// Every value from `preset`, all four representations, seed 42.
    pub fn preset(preset: Preset) -> Self {
        Self::preset_for(preset, false)
    }

    /// Every value from `preset` for data with batches (`batches`) or without
    /// ([`Preset::network_for`], [`Preset::training_for`]).
    pub fn preset_for(preset: Preset, batches: bool) -> Self {
        let networks = ModelKind::ALL.map(|kind| preset.network_for(kind, batches));
        let mut train = TrainOptions::preset(preset);
        train.epochs = preset.training_for(batches).epochs;
        StudyOptions {
            scale_epochs: true,
            preset,
            prep: preset.prep_options(),
            models: StudyModel::ALL.to_vec(),
            pca_components: preset.pca_components(networks[0].latent),
            eval: EvalOptions::new(train.seed),
            networks,
            train,
            k: None,
        }
    }

    /// The configuration of the network `kind`.
    pub fn network(&self, kind: ModelKind) -> &ModelConfig {
        &self.networks[kind as usize]
    }

    /// The same options under another seed: training and every evaluation stream.
    pub fn with_seed(&self, seed: u64) -> Self {
        let mut o = self.clone();
        o.train.seed = seed;
        o.eval.seed = seed;
        o
    }

    /// Rejects settings no run could use, before any work starts.
    pub fn validate(&self) -> Result<()> {
        if self.models.is_empty() {
            return Err(Error::invalid("--models names no model"));
        }
        if self.k == Some(0) {
            return Err(Error::invalid("--k must be at least 1"));
        }
        if self.pca_components == 0 {
            return Err(Error::invalid("--pca-components must be at least 1"));
        }
        self.networks.iter().try_for_each(ModelConfig::validate)?;
        self.train.validate()
    }

    /// Settles what depends on the data: the clusters per protocol on `data`'s cells with
    /// `labels` (`k`, else the number of types), returned; the networks' batches (conditional
    /// on two or more); and the cluster count of a DEC head that was given none (that same
    /// k: only the labels' count is used).
    pub fn settle(&mut self, data: &Dataset, labels: Option<&CellTypes>) -> Result<Option<usize>> {
        let n = data.n_cells();
        let batches = data.batches.as_ref().map_or(0, CellBatches::n_batches);
        for cfg in &mut self.networks {
            cfg.condition_on_batches(batches)?;
        }
        // With batches, Harmony runs beside uncorrected PCA; without, there is nothing for it.
        if batches >= 2 {
            if self.models.contains(&StudyModel::Pca) && !self.models.contains(&StudyModel::Harmony)
            {
                let at = self
                    .models
                    .iter()
                    .position(|&m| m == StudyModel::Pca)
                    .expect("present");
                self.models.insert(at + 1, StudyModel::Harmony);
            }
        } else if self.models.contains(&StudyModel::Harmony) {
            return Err(Error::invalid(
                "harmony corrects batches: give two or more (--batch-key, --batches or several --data)",
            ));
        }
        let k = self.k.or(labels.map(|t| t.names.len()));
        if let Some(k) = k.filter(|&k| k > n) {
            return Err(Error::invalid(format!(
                "--k {k} exceeds the number of cells ({n})"
            )));
        }
        if !(self.eval.perplexity > 0.0 && self.eval.perplexity < n as f64) {
            return Err(Error::invalid(format!(
                "--perplexity {} must be positive and below the number of cells ({n})",
                self.eval.perplexity
            )));
        }
        if self.scale_epochs {
            self.train.scale_to_cells(n);
            self.scale_epochs = false;
        }
        for cfg in &mut self.networks {
            if cfg.dec_weight > 0.0 && cfg.dec_clusters == 0 {
                cfg.dec_clusters = k.ok_or_else(|| {
                    Error::invalid("--dec needs --k or labels to know how many clusters")
                })?;
            }
        }
        Ok(k)
    }
}

/// One representation, computed.
pub struct ModelRun {
    pub model: StudyModel,
    /// The trained network (`None` for PCA).
    pub fitted: Option<Fitted>,
    /// The codes (the network's, or the PC scores), with their column names.
    pub codes: Codes,
    /// Seconds to train the network and encode the cells (PCA: to compute it).
    pub code_seconds: f64,
    pub evaluation: Evaluation,
    /// Marker genes of each of the run's clusters ([`evaluate::Clusters::primary`]; Wilcoxon,
    /// one cluster against the rest), with k.
    pub markers: Option<Vec<Vec<GeneTest>>>,
    /// Seconds to rank the marker genes.
    pub markers_seconds: f64,
}

impl ModelRun {
    /// The row every table shows.
    pub fn outcome(&self, seed: u64) -> ModelOutcome {
        let e = &self.evaluation;
        ModelOutcome {
            name: self.model.name().to_string(),
            seed,
            scores: e.scores,
            leiden: e.leiden_outcome(),
            train_seconds: self.code_seconds,
            records: self
                .fitted
                .as_ref()
                .map_or_else(Vec::new, |f| f.records.clone()),
            n_params: self.fitted.as_ref().map(|f| f.net.n_params()),
            tsne_kl: e
                .tsne2d
                .as_ref()
                .zip(e.tsne3d.as_ref())
                .map(|(a, b)| (a.kl_divergence, b.kl_divergence)),
            tsne_seconds: e.tsne_seconds,
            umap_seconds: e.umap_seconds,
            active_units: e.active_units,
            integration: e.integration,
        }
    }
}

/// The PCA baseline's codes corrected by Harmony for the data's batches (harmonypy's
/// defaults; columns `harmony1…`).
fn harmony_codes(prep: &Prepared, opts: &StudyOptions) -> Result<Codes> {
    let b = prep
        .data
        .batches
        .as_ref()
        .ok_or_else(|| Error::invalid("harmony needs each cell's batch"))?;
    let pcs = pca_codes(prep, opts.pca_components, opts.train.seed).values;
    let h = harmony(
        &pcs,
        &b.ids,
        b.n_batches(),
        &HarmonyOptions::new(),
        &Draws::Seeded(opts.train.seed),
    )?;
    Ok(Codes {
        columns: (1..=h.corrected.ncols())
            .map(|j| format!("harmony{j}"))
            .collect(),
        values: h.corrected,
    })
}

/// Runs one representation on the prepared data: its codes, the three protocols (`k`
/// clusters, from [`StudyOptions::settle`]), and the marker genes of the run's clusters.
/// `progress` shows training.
pub fn run_model(
    prep: &Prepared,
    labels: Option<&CellTypes>,
    k: Option<usize>,
    model: StudyModel,
    opts: &StudyOptions,
    progress: &mut Progress,
) -> Result<ModelRun> {
    let started = Instant::now();
    let (fitted, codes) = match model.kind() {
        None if model == StudyModel::Harmony => (None, harmony_codes(prep, opts)?),
        None => (None, pca_codes(prep, opts.pca_components, opts.train.seed)),
        Some(kind) => {
            let cfg = opts.network(kind).clone();
            let f = fit_network(prep, cfg, &opts.train, false, progress)?;
            let codes = f.codes.clone();
            (Some(f), codes)
        }
    };
    let code_seconds = started.elapsed().as_secs_f64();
    let eval = EvalOptions {
        progress: progress.shown_label(),
        ..opts.eval.clone()
    };
    let evaluation = evaluate_codes(&codes.values, labels, prep.data.batches.as_ref(), k, &eval)?;
    let started = std::time::Instant::now();
    let markers = evaluation.clusters.as_ref().map(|c| {
        let km = c.primary();
        let groups: Vec<Option<usize>> = km.labels.iter().map(|&l| Some(l)).collect();
        let mut stage = progress.stage("markers");
        rank_genes_with(
            &prep.marker_input().0,
            &groups,
            km.centroids.nrows(),
            &mut stage,
        )
    });
    Ok(ModelRun {
        model,
        fitted,
        codes,
        code_seconds,
        evaluation,
        markers,
        markers_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Runs every representation of `opts.models` in order, at `opts.train.seed`.
pub fn run(
    prep: &Prepared,
    labels: Option<&CellTypes>,
    opts: &StudyOptions,
    quiet: bool,
) -> Result<Vec<ModelRun>> {
    opts.validate()?;
    let mut opts = opts.clone();
    let k = opts.settle(&prep.data, labels)?;
    opts.models
        .iter()
        .map(|&m| {
            let mut progress = Progress::new(m.name(), quiet);
            run_model(prep, labels, k, m, &opts, &mut progress)
        })
        .collect()
}
