//! From raw counts to the matrix the networks train on: creation filters, Seurat QC,
//! LogNormalize, and optionally the highly variable genes and per-gene scaling. See
//! `docs/math.md#1-preprocessing` and `docs/math.md#9-gene-selection-and-scaling`.

pub mod expression;
pub mod hvg;
pub mod hvg_seurat;
pub mod kept_counts;
pub mod normalize;
pub mod qc;
pub mod scale;

use crate::csr::Csr;
use crate::error::{Error, Result};
use crate::io::batches::CellBatches;
use crate::io::Dataset;
pub use expression::{CountsLayer, Expression, ExpressionMatrix, MarkerInput};
use kept_counts::KeptCounts;
pub use qc::{CellMetrics, QcThresholds};
pub use scale::Scaling;

/// How highly variable genes are ranked ([`hvg`], [`hvg_seurat`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum HvgFlavor {
    /// Seurat's vst on raw counts (scanpy's seurat_v3)
    Vst,
    /// scanpy's seurat: dispersions of the normalized data, z-scored within 20 mean bins
    Seurat,
}

impl HvgFlavor {
    pub fn name(self) -> &'static str {
        match self {
            HvgFlavor::Vst => "vst",
            HvgFlavor::Seurat => "seurat",
        }
    }
}

/// Whether to run Seurat QC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum QcMode {
    Seurat,
    None,
}

/// Whether to LogNormalize.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Normalize {
    /// LogNormalize integer counts; take non-integer input as already normalized
    Auto,
    #[cfg_attr(feature = "cli", value(name = "lognorm"))]
    LogNorm,
    None,
}

/// Everything preprocessing needs to know.
#[derive(Clone, Debug, PartialEq)]
pub struct PrepOptions {
    pub qc: QcMode,
    pub thresholds: QcThresholds,
    pub normalize: Normalize,
    /// Keep only this many highly variable genes.
    pub hvg: Option<usize>,
    pub hvg_flavor: HvgFlavor,
    /// Z-score every gene (clip 10) after normalization and gene selection.
    pub scale: bool,
}

impl Default for PrepOptions {
    fn default() -> Self {
        PrepOptions {
            qc: QcMode::Seurat,
            thresholds: QcThresholds::default(),
            normalize: Normalize::Auto,
            hvg: None,
            hvg_flavor: HvgFlavor::Vst,
            scale: false,
        }
    }
}

/// One input cell's QC record (for `qc.csv`).
#[derive(Clone, Debug)]
pub struct QcRecord {
    pub barcode: String,
    pub metrics: CellMetrics,
    /// False also for cells dropped by the creation filter (fewer than `min_genes` genes).
    pub passes: bool,
}

/// The result of preprocessing.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The matrix to train on (cells × genes), with names. With [`Prepared::scaling`], the
    /// z-scores' change from a zero's ([`Scaling::apply`]): add [`Scaling::zero_scores`] to
    /// each row for the z-scores themselves.
    pub data: Dataset,
    /// One record per input cell, in input order (empty for already-normalized input).
    pub qc: Vec<QcRecord>,
    pub cells_in: usize,
    pub genes_in: usize,
    /// What was done, one line each, for the user.
    pub notes: Vec<String>,
    /// The raw counts of the kept cells and genes, when the input was counts and
    /// [`Prepared::expression`] does not hold them ([`Prepared::counts`] reads either).
    counts: Option<crate::csr::Csr<f32>>,
    /// The scaling applied to `data` (`--scale`), to be stored with each model.
    pub scaling: Option<Scaling>,
    /// The normalized values of every kept gene, when `data` is something else (HVGs only,
    /// or z-scores): marker genes are ranked on these ([`expression`]).
    pub expression: Option<Expression>,
}

impl Prepared {
    /// The matrix marker genes are ranked on, and its gene names: the normalized values of
    /// every kept gene ([`Prepared::expression`]), or the training matrix when that is them.
    pub fn marker_input(&self) -> (MarkerInput<'_>, &[String]) {
        match &self.expression {
            Some(e) => (e.input(), &e.gene_names),
            None => (
                MarkerInput::Values(&self.data.matrix),
                &self.data.gene_names,
            ),
        }
    }

    /// The raw counts of `data`'s cells and genes (the count likelihood), when the input was
    /// counts: held whole, or derived from [`Prepared::expression`]'s counts of every gene.
    pub fn counts(&self) -> Option<std::borrow::Cow<'_, Csr<f32>>> {
        match self.counts_layer()? {
            CountsLayer::Held(c) => Some(std::borrow::Cow::Borrowed(c)),
            CountsLayer::Derived(e) => e
                .selected_counts(0..e.matrix_rows())
                .map(std::borrow::Cow::Owned),
        }
    }

    /// [`Prepared::counts`] read a block of rows at a time (`layers['counts']` of the run's
    /// `.h5ad`): never derived whole.
    pub fn counts_layer(&self) -> Option<CountsLayer<'_>> {
        if let Some(c) = &self.counts {
            return Some(CountsLayer::Held(c));
        }
        self.expression
            .as_ref()
            .filter(|e| matches!(e.matrix, ExpressionMatrix::Counts(_)))
            .map(CountsLayer::Derived)
    }

    /// Whether [`Prepared::counts`] has counts to give.
    pub fn has_counts(&self) -> bool {
        self.counts_layer().is_some()
    }
}

/// Runs the whole preprocessing on `raw`.
pub fn prepare(raw: Dataset, opts: &PrepOptions) -> Result<Prepared> {
    let (cells_in, genes_in) = (raw.n_cells(), raw.n_genes());
    if cells_in == 0 || genes_in == 0 {
        return Err(Error::data(format!(
            "the input matrix is empty ({cells_in} cells × {genes_in} genes)"
        )));
    }
    let counts = raw.is_integer();
    let mut notes = Vec::new();
    let (mut data, qc_records) = quality_control(raw, opts, &mut notes)?;
    let n_genes = data.n_genes();
    if let Some(n) = opts.hvg.filter(|&n| n >= n_genes) {
        notes.push(format!(
            "--hvg {n}: the data have only {n_genes} genes after filtering; all are kept"
        ));
    }
    let want_hvg = opts.hvg.filter(|&n| n < n_genes);
    // With two or more batches, genes are ranked within each batch and the ranks combined.
    let batches = data.batches.clone().filter(|b| b.n_batches() > 1);
    // vst ranks raw counts, so before normalization; seurat ranks the normalized values.
    let mut hvg_genes = match (want_hvg, opts.hvg_flavor, &batches) {
        (Some(n), HvgFlavor::Vst, None) => Some(hvg::highly_variable(&data.matrix, n)),
        (Some(n), HvgFlavor::Vst, Some(b)) => Some(hvg::highly_variable_batched(
            &data.matrix,
            &b.ids,
            b.n_batches(),
            n,
        )),
        _ => None,
    };
    let lognorm = match opts.normalize {
        Normalize::Auto => counts,
        Normalize::LogNorm => true,
        Normalize::None => false,
    };
    // The counts are needed after normalizing in place (the `.h5ad`'s counts layer, the NB
    // likelihood), but only of the genes kept: keep each cell's total and recover those
    // genes' counts afterwards, exactly (`normalize::recover_counts`), instead of copying
    // every gene's counts; copy only a matrix with counts beyond that recovery's bound.
    let recoverable = counts
        && lognorm
        && data
            .matrix
            .data
            .iter()
            .all(|&v| v <= normalize::MAX_RECOVERABLE_COUNT);
    let mut totals = recoverable.then(|| normalize::row_totals(&data.matrix));
    let counts_before = (counts && !recoverable).then(|| data.matrix.clone());
    if lognorm {
        normalize::log_normalize(&mut data.matrix);
        notes.push("normalized: LogNormalize, ln(1 + 1e4 · count / cell total)".into());
    } else {
        notes.push("not normalized: values used as given".into());
    }
    if let (Some(n), HvgFlavor::Seurat) = (want_hvg, opts.hvg_flavor) {
        hvg_genes = Some(match &batches {
            None => hvg_seurat::highly_variable_seurat(&data.matrix, n),
            Some(b) => {
                hvg_seurat::highly_variable_seurat_batched(&data.matrix, &b.ids, b.n_batches(), n)
            }
        });
    }
    let mut counts_kept = counts_before;
    // The log-normalized matrix of every kept gene (the marker genes rank it): moved out, not
    // copied, when X becomes the HVGs or their z-scores; as counts where they fit 16 bits.
    let mut expression = None;
    if let Some(genes) = hvg_genes {
        notes.push(format!(
            "kept the {} most variable genes ({}{})",
            genes.len(),
            opts.hvg_flavor.name(),
            if batches.is_some() {
                ", ranked within each batch"
            } else {
                ""
            }
        ));
        let new_index = column_index(data.n_genes(), &genes);
        let all_genes = std::mem::replace(&mut data.matrix, Csr::with_cols(0));
        let kept = match totals.take() {
            Some(t) => KeptCounts::from_lognorm(all_genes, t),
            None => Err((all_genes, None)),
        };
        let matrix = match kept {
            Ok(kept) => {
                data.matrix = kept.lognorm_columns(&new_index, genes.len());
                ExpressionMatrix::Counts(kept)
            }
            Err((all_genes, t)) => {
                totals = t;
                if let Some(c) = &mut counts_kept {
                    c.retain_columns(&new_index, genes.len());
                }
                data.matrix = all_genes.select_columns(&new_index, genes.len());
                ExpressionMatrix::Values(all_genes)
            }
        };
        expression = Some(Expression {
            matrix,
            gene_names: data.gene_names.clone(),
            selected: genes.clone(),
        });
        select_gene_names(&mut data, &genes);
    }
    if let Some(t) = &totals {
        counts_kept = Some(normalize::recover_counts(&data.matrix, t));
    }
    let scaling = opts.scale.then(|| {
        let s = Scaling::fit(&data.matrix);
        if expression.is_none() {
            expression = Some(Expression {
                matrix: ExpressionMatrix::Values(data.matrix.clone()),
                gene_names: data.gene_names.clone(),
                selected: (0..data.n_genes()).collect(),
            });
        }
        s.apply_in_place(&mut data.matrix);
        notes.push(format!(
            "scaled: every gene to mean 0 and sd 1, clipped at ±{}",
            s.clip
        ));
        s
    });
    Ok(Prepared {
        data,
        qc: qc_records,
        cells_in,
        genes_in,
        notes,
        counts: counts_kept,
        scaling,
        expression,
    })
}

/// Seurat's creation filters and QC on counts (module doc): the cells and genes kept, and
/// each cell's metrics and verdict for `qc.csv` (every cell passes when QC does not run).
/// Non-count input passes through untouched, with no records.
fn quality_control(
    raw: Dataset,
    opts: &PrepOptions,
    notes: &mut Vec<String>,
) -> Result<(Dataset, Vec<QcRecord>)> {
    let (cells_in, genes_in) = (raw.n_cells(), raw.n_genes());
    let counts = raw.is_integer();
    let mut data = raw;
    let mut qc_records = Vec::new();
    let t = &opts.thresholds;
    let run_qc = opts.qc == QcMode::Seurat && counts;
    if opts.qc == QcMode::Seurat && !counts {
        notes.push(
            "input has non-integer values: taken as already normalized, QC and filters skipped"
                .into(),
        );
    }
    if counts {
        // Creation filters: cells with ≥ min_genes detected genes (only when QC runs), then
        // genes detected in ≥ min_cells of the remaining cells.
        let created: Vec<usize> = if run_qc {
            (0..data.n_cells())
                .filter(|&i| data.matrix.row(i).0.len() >= t.min_genes)
                .collect()
        } else {
            (0..data.n_cells()).collect()
        };
        let per_gene = qc::cells_per_gene_of(&data.matrix, created.iter().copied());
        let keep_genes: Vec<usize> = (0..data.n_genes())
            .filter(|&g| per_gene[g] >= t.min_cells)
            .collect();
        data = select(data, None, Some(&keep_genes));
        if !run_qc {
            // Metrics for qc.csv all the same; every cell is kept.
            let mito: Vec<bool> = data.gene_names.iter().map(|s| qc::is_mito(s)).collect();
            qc_records = qc::metrics(&data.matrix, &mito)
                .into_iter()
                .zip(&data.barcodes)
                .map(|(m, b)| QcRecord {
                    barcode: b.clone(),
                    metrics: m,
                    passes: true,
                })
                .collect();
        }
        if run_qc {
            let mito: Vec<bool> = data.gene_names.iter().map(|s| qc::is_mito(s)).collect();
            let metrics = qc::metrics(&data.matrix, &mito);
            let mut is_created = vec![false; data.n_cells()];
            created.iter().for_each(|&i| is_created[i] = true);
            qc_records = metrics
                .into_iter()
                .enumerate()
                .map(|(i, m)| QcRecord {
                    barcode: data.barcodes[i].clone(),
                    passes: is_created[i] && m.passes(t),
                    metrics: m,
                })
                .collect();
            let keep_cells: Vec<usize> = (0..data.n_cells())
                .filter(|&i| qc_records[i].passes)
                .collect();
            if keep_cells.is_empty() {
                return Err(Error::data(format!(
                    "QC left no cells out of {cells_in} (thresholds: {} < genes < {}, mito < {}%); \
                     relax --min-genes/--max-genes/--max-mito or use --qc none",
                    t.min_genes, t.max_genes, t.max_mito
                )));
            }
            let per_batch = data
                .batches
                .as_ref()
                .map(|b| kept_per_batch(b, &keep_cells));
            data = select(data, Some(&keep_cells), None);
            notes.push(format!(
                "QC (seurat): kept {} of {cells_in} cells{}, {} of {genes_in} genes",
                data.n_cells(),
                per_batch.unwrap_or_default(),
                data.n_genes()
            ));
        }
        if data.n_genes() == 0 {
            return Err(Error::data(format!(
                "no gene is detected in at least {} cells (--min-cells)",
                t.min_cells
            )));
        }
    }
    Ok((data, qc_records))
}

/// ` (per batch: a 250 of 274, b 200 of 225)`: how many cells of each batch QC kept.
fn kept_per_batch(b: &CellBatches, keep_cells: &[usize]) -> String {
    let (before, after) = (b.counts(), b.select(keep_cells));
    let kept = after.counts();
    let parts: Vec<String> = b
        .names
        .iter()
        .zip(&before)
        .map(|(name, n)| {
            let k = after
                .names
                .iter()
                .position(|a| a == name)
                .map_or(0, |i| kept[i]);
            format!("{name} {k} of {n}")
        })
        .collect();
    format!(" (per batch: {})", parts.join(", "))
}

/// For `select_columns`: each of `n` genes' new column, `None` for a gene not in `genes`.
fn column_index(n: usize, genes: &[usize]) -> Vec<Option<u32>> {
    let mut new_index = vec![None; n];
    for (k, &g) in genes.iter().enumerate() {
        new_index[g] = Some(k as u32);
    }
    new_index
}

/// `d`'s gene IDs and names restricted to `genes` (its matrix is left to the caller).
fn select_gene_names(d: &mut Dataset, genes: &[usize]) {
    d.gene_ids = genes.iter().map(|&g| d.gene_ids[g].clone()).collect();
    d.gene_names = genes.iter().map(|&g| d.gene_names[g].clone()).collect();
}

/// A dataset restricted to some cells and/or genes (in ascending order).
pub fn select(d: Dataset, cells: Option<&[usize]>, genes: Option<&[usize]>) -> Dataset {
    let mut d = d;
    if let Some(cells) = cells {
        d.matrix.retain_rows(cells);
        d.barcodes = cells.iter().map(|&i| d.barcodes[i].clone()).collect();
        d.batches = d.batches.map(|b| b.select(cells));
    }
    if let Some(genes) = genes {
        if genes.len() != d.n_genes() {
            d.matrix
                .retain_columns(&column_index(d.n_genes(), genes), genes.len());
            select_gene_names(&mut d, genes);
        }
    }
    d
}
