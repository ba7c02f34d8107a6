//! `cellvae run`: the whole study in one command. The flags become [`StudyOptions`]; the
//! library ([`crate::study`]) computes each representation in turn and this module writes
//! its folder (`super::run_outputs`), then the run's own outputs (`super::run_report`:
//! figures, `summary.csv`, `report.md`; with `--seeds`, once per seed and then the summary
//! over seeds).

use super::args::{DataArgs, LabelArgs, ModelArgs};
use super::commands::load_prepared;
use super::run_outputs::{write_anndata, write_model, Embeddings};
use super::run_report::{write_run_outputs, write_seeds_report};
use crate::analysis::tsne::Method;
use crate::error::{Error, Result};
use crate::io::align::{cell_types, CellTypes};
use crate::io::atomic::ensure_dir;
use crate::io::labels::Labels;
use crate::io::{hdf5, labels, Dataset};
use crate::models::ModelKind;
use crate::report::seeds;
use crate::report::summary;
use crate::study::evaluate::{EvalOptions, TsneWhen};
use crate::study::{run_model, StudyModel, StudyOptions};
use crate::train::progress::Progress;
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

/// Flags of `cellvae run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub labels: LabelArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Models to run, in order
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ae,vae,vsc,pca"
    )]
    pub models: Vec<StudyModel>,
    /// Number of clusters [default: the number of labelled cell types]
    #[arg(long)]
    pub k: Option<usize>,
    /// t-SNE perplexity
    #[arg(long, default_value_t = EvalOptions::new(0).perplexity)]
    pub perplexity: f64,
    /// t-SNE gradient (exact below 5,000 cells with auto)
    #[arg(long, value_enum, default_value = "auto")]
    pub tsne_method: Method,
    /// t-SNE iterations
    #[arg(long, default_value_t = EvalOptions::new(0).tsne_iterations)]
    pub tsne_iterations: usize,
    /// Run t-SNE (and the study's protocol, k-means on the 2-D t-SNE) at any number of cells;
    /// without it, runs above 50,000 cells skip it and cluster the codes instead
    #[arg(long)]
    pub tsne: bool,
    /// k-means restarts [default: 100 up to 20,000 cells, then max(10, round(100 · 20,000 /
    /// cells))]
    #[arg(long, value_name = "N")]
    pub n_init: Option<usize>,
    /// Components of the PCA baseline [default: the networks' latent width; 50 under
    /// --preset scrna]
    #[arg(long, value_name = "N")]
    pub pca_components: Option<usize>,
    /// Train and evaluate every model once per seed (e.g. 1,2,3,4,5): each seed's outputs in
    /// OUT/seed-<s>/, all rows in OUT/summary.csv, means and sds in OUT/summary_mean.csv
    #[arg(long, value_delimiter = ',', value_name = "S,S,...")]
    pub seeds: Vec<u64>,
    /// Output directory
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

impl RunArgs {
    /// The preset's study with every given flag applied, checked.
    pub fn study_options(&self) -> Result<StudyOptions> {
        let preset = self.model.preset;
        let batches = self.data.names_batches();
        let mut networks = Vec::with_capacity(3);
        for kind in ModelKind::ALL {
            networks.push(self.model.config(kind, batches)?);
        }
        let networks: [_; 3] = networks.try_into().expect("one per kind");
        let train = self.model.train_options(batches)?;
        let opts = StudyOptions {
            scale_epochs: self.model.epochs.is_none(),
            preset,
            prep: self.data.prep_options(preset)?,
            models: self.models.clone(),
            pca_components: self
                .pca_components
                .unwrap_or_else(|| preset.pca_components(networks[0].latent)),
            networks,
            k: self.k,
            eval: EvalOptions {
                perplexity: self.perplexity,
                tsne_method: self.tsne_method,
                tsne_iterations: self.tsne_iterations,
                tsne: if self.tsne {
                    TsneWhen::Always
                } else {
                    TsneWhen::Auto
                },
                n_init: self.n_init,
                ..EvalOptions::new(train.seed)
            },
            train,
        };
        opts.validate()?;
        Ok(opts)
    }
}

fn load_labels(a: &RunArgs, d: &Dataset, quiet: bool) -> Result<Option<CellTypes>> {
    let first = a.data.first().to_path_buf();
    let (path, l) = match (&a.labels.labels, &a.labels.labels_from_obs) {
        (_, Some(column)) => (first, obs_labels(&a.data.data, d, column)?),
        (Some(p), None) => (
            p.clone(),
            labels::read(p, a.labels.label_column.as_deref())?,
        ),
        (None, None) if a.data.data.len() == 1 && first.join("labels.csv").is_file() => {
            let p = first.join("labels.csv");
            let l = labels::read(&p, a.labels.label_column.as_deref())?;
            (p, l)
        }
        (None, None) => return Ok(None),
    };
    let types = cell_types(&l, &d.barcodes).ok_or_else(|| {
        Error::data(format!(
            "{}: no label matches a cell of the data (column '{}')",
            path.display(),
            l.column
        ))
    })?;
    if !quiet {
        let labelled = types.labelled();
        eprintln!(
            "labels: {} ({} types); {labelled} of {} cells labelled, {} unlabelled cells are embedded but not scored",
            path.display(),
            types.names.len(),
            d.n_cells(),
            d.n_cells() - labelled
        );
    }
    Ok(Some(types))
}

/// The obs column `column` of every `.h5ad` input as labels of the data's cells (with
/// several inputs, a barcode made unique by the join is looked up as `<barcode>-<batch>`).
fn obs_labels(inputs: &[PathBuf], d: &Dataset, column: &str) -> Result<Labels> {
    if inputs.len() == 1 {
        return hdf5::read_h5ad_labels(&inputs[0], column);
    }
    let ours: std::collections::HashSet<&str> = d.barcodes.iter().map(String::as_str).collect();
    let mut entries = Vec::new();
    for input in inputs {
        let batch = crate::io::batches::input_name(input);
        for (barcode, label) in hdf5::read_h5ad_labels(input, column)?.entries {
            let unique = format!("{barcode}-{batch}");
            let name = if ours.contains(unique.as_str()) {
                unique
            } else {
                barcode
            };
            entries.push((name, label));
        }
    }
    Ok(Labels {
        entries,
        column: column.to_string(),
    })
}

/// `cellvae run`.
pub fn run(a: RunArgs, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let mut study = a.study_options()?;
    ensure_dir(&a.out)?;
    let prep = load_prepared(&a.data, &study.prep, quiet)?;
    let types = load_labels(&a, &prep.data, quiet)?;
    let k = study.settle(&prep.data, types.as_ref())?;
    let several = !a.seeds.is_empty();
    let seeds = if several {
        a.seeds.clone()
    } else {
        vec![study.train.seed]
    };
    let mut all = Vec::new();
    for &seed in &seeds {
        let out = if several {
            a.out.join(format!("seed-{seed}"))
        } else {
            a.out.clone()
        };
        ensure_dir(&out)?;
        let opts = study.with_seed(seed);
        let ctx = super::run_outputs::RunContext {
            args: &a,
            out: &out,
            prep: &prep,
            types: types.as_ref(),
            k,
            opts: &opts,
        };
        let mut outcomes = Vec::new();
        let mut embeddings = Vec::new();
        for &m in &opts.models {
            let mut progress = Progress::new(m.name(), quiet);
            let r = run_model(&prep, types.as_ref(), k, m, &opts, &mut progress)?;
            let outcome = r.outcome(seed);
            write_model(&ctx, &r, &outcome)?;
            if !quiet {
                let s = outcome
                    .scores
                    .map_or(String::new(), |s| match s.tsne_kmeans {
                        Some(t) => format!(", NMI {:.3} ARI {:.3}", t.nmi_geometric, t.ari),
                        None => format!(
                            ", codes k-means NMI {:.3} ARI {:.3}",
                            s.codes_kmeans.nmi_geometric, s.codes_kmeans.ari
                        ),
                    });
                let tsne = match opts.eval.tsne_skipped(prep.data.n_cells()) {
                    None => format!("t-SNE 2-D and 3-D {:.1}s", outcome.tsne_seconds),
                    Some(why) => format!("t-SNE skipped ({why})"),
                };
                let e = &r.evaluation;
                eprintln!(
                    "{}: codes {:.1}s, kNN graph {:.1}s, {tsne}, UMAP {:.1}s, clusters {:.1}s, markers {:.1}s{s}",
                    outcome.name,
                    outcome.train_seconds,
                    e.graph_seconds,
                    outcome.umap_seconds,
                    e.cluster_seconds,
                    r.markers_seconds
                );
            }
            outcomes.push(outcome);
            embeddings.push(Embeddings::from(r));
        }
        write_anndata(
            &out,
            &prep,
            types.as_ref(),
            study.prep.hvg.is_some(),
            &embeddings,
            quiet,
        )?;
        write_run_outputs(&ctx, &prep, &outcomes, started)?;
        all.extend(outcomes);
    }
    if several {
        summary::write_summary_csv(&a.out.join("summary.csv"), &all)?;
        seeds::write_summary_mean(&a.out.join("summary_mean.csv"), &all)?;
        write_seeds_report(&a, &seeds, &all, started)?;
        println!("{}", seeds::mean_table(&all));
    }
    if !quiet {
        eprintln!(
            "wrote {} in {:.1}s{}",
            a.out.display(),
            started.elapsed().as_secs_f64(),
            crate::report::memory::peak_note()
        );
    }
    Ok(())
}
