//! `cellvae run`: the whole study in one command, and the steps it shares with the single
//! subcommands (loading data, training a model and writing its files).

use super::args::{DataArgs, LabelArgs, ModelArgs};
use super::commands::{tsne_columns, tsne_options, write_clusters, MethodArg};
use crate::analysis::kmeans::{kmeans, KMeansOptions};
use crate::analysis::metrics::{scores, Scores};
use crate::analysis::pca::pca;
use crate::analysis::tsne::tsne;
use crate::error::{Error, Result};
use crate::io::atomic::ensure_dir;
use crate::io::{labels, read_dataset, table, Dataset, ReadOptions};
use crate::models::codes::{self, Codes};
use crate::models::{ModelConfig, ModelKind, Network};
use crate::preprocess::{prepare, Prepared};
use crate::report::plots;
use crate::report::summary::{self, ModelOutcome, ReportContext};
use crate::train::checkpoint::{self, CheckpointMeta};
use crate::train::progress::Progress;
use crate::train::{self as training, EpochRecord, TrainOptions};
use clap::{Args, ValueEnum};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A model of the run: one of the networks, or the PCA baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunModel {
    Ae,
    Vae,
    Vsc,
    Pca,
}

impl RunModel {
    /// The network it trains; `None` for the PCA baseline.
    fn kind(self) -> Option<ModelKind> {
        match self {
            RunModel::Ae => Some(ModelKind::Ae),
            RunModel::Vae => Some(ModelKind::Vae),
            RunModel::Vsc => Some(ModelKind::Vsc),
            RunModel::Pca => None,
        }
    }

    /// The name of its output folder and summary row.
    fn name(self) -> &'static str {
        self.kind().map_or("pca", ModelKind::name)
    }
}

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
    pub models: Vec<RunModel>,
    /// Number of clusters [default: the number of labelled cell types]
    #[arg(long)]
    pub k: Option<usize>,
    /// t-SNE perplexity
    #[arg(long, default_value_t = 40.0)]
    pub perplexity: f64,
    /// t-SNE gradient (exact below 5,000 cells with auto)
    #[arg(long, value_enum, default_value = "auto")]
    pub tsne_method: MethodArg,
    /// t-SNE iterations
    #[arg(long, default_value_t = 1000)]
    pub tsne_iterations: usize,
    /// k-means restarts
    #[arg(long, default_value_t = 100)]
    pub n_init: usize,
    /// Output directory
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
}

/// Reads and preprocesses the input, telling the user what was done.
pub fn load_prepared(data: &DataArgs, quiet: bool) -> Result<Prepared> {
    let opts = data.prep_options()?;
    let raw = read_dataset(
        &data.data,
        &ReadOptions {
            transpose: data.transpose,
        },
    )?;
    let prep = prepare(raw, &opts)?;
    if !quiet {
        eprintln!(
            "read {}: {} cells × {} genes",
            data.data.display(),
            prep.cells_in,
            prep.genes_in
        );
        for n in &prep.notes {
            eprintln!("{n}");
        }
    }
    Ok(prep)
}

/// A trained network and what training measured.
pub struct Fitted {
    pub net: Network<f32>,
    pub records: Vec<EpochRecord>,
    pub seconds: f64,
    pub codes: Codes,
}

/// Trains one network on `data` and writes `model.safetensors`, `loss.csv` and `latent.csv`
/// into `out`.
pub fn fit_and_write(
    data: &Dataset,
    cfg: ModelConfig,
    topts: &TrainOptions,
    gamma: bool,
    out: &Path,
    quiet: bool,
) -> Result<Fitted> {
    let mut net = Network::<f32>::new(cfg.clone(), data.n_genes(), topts.seed)?;
    let mut progress = Progress::new(cfg.kind.name(), quiet);
    let started = Instant::now();
    let records = training::train(&mut net, &data.matrix, topts, &mut progress)?;
    let seconds = started.elapsed().as_secs_f64();
    let meta = CheckpointMeta {
        config: cfg,
        gene_ids: data.gene_ids.clone(),
        gene_names: data.gene_names.clone(),
        has_gene_ids: data.has_gene_ids,
        seed: topts.seed,
        epochs: topts.epochs,
        batch_size: topts.batch_size,
        lr: topts.lr,
    };
    checkpoint::save(&out.join("model.safetensors"), &net, &meta)?;
    training::write_loss_csv(&out.join("loss.csv"), &records)?;
    let codes = codes::extract(&net, &data.matrix, topts.seed, gamma);
    table::write(
        &out.join("latent.csv"),
        &codes.columns,
        &data.barcodes,
        &codes.values,
    )?;
    Ok(Fitted {
        net,
        records,
        seconds,
        codes,
    })
}

/// Cell-type labels of the kept cells.
struct CellTypes {
    /// Per kept cell, the index into `names`.
    ids: Vec<Option<usize>>,
    /// Type names, most frequent first.
    names: Vec<String>,
}

fn load_labels(a: &RunArgs, d: &Dataset, quiet: bool) -> Result<Option<CellTypes>> {
    let path = match &a.labels.labels {
        Some(p) => p.clone(),
        None if a.data.data.is_dir() && a.data.data.join("labels.csv").is_file() => {
            a.data.data.join("labels.csv")
        }
        None => return Ok(None),
    };
    let l = labels::read(&path, a.labels.label_column.as_deref())?;
    let map = l.map();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let per_cell: Vec<Option<&str>> = d
        .barcodes
        .iter()
        .map(|b| map.get(b.as_str()).copied())
        .collect();
    per_cell
        .iter()
        .flatten()
        .for_each(|t| *counts.entry(t).or_default() += 1);
    if counts.is_empty() {
        return Err(Error::data(format!(
            "{}: no label matches a cell of the data (column '{}')",
            path.display(),
            l.column
        )));
    }
    let mut names: Vec<(&str, usize)> = counts.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.0, i)).collect();
    let ids: Vec<Option<usize>> = per_cell.iter().map(|t| t.map(|t| index[t])).collect();
    let labelled = ids.iter().flatten().count();
    if !quiet {
        eprintln!(
            "labels: {} ({} types); {labelled} of {} cells labelled, {} unlabelled cells are embedded but not scored",
            path.display(),
            names.len(),
            d.n_cells(),
            d.n_cells() - labelled
        );
    }
    Ok(Some(CellTypes {
        ids,
        names: names.into_iter().map(|n| n.0.to_string()).collect(),
    }))
}

/// Scores of `clusters` against the labelled cells.
fn score_against(types: &CellTypes, clusters: &[usize]) -> Scores {
    let (t, p): (Vec<usize>, Vec<usize>) = types
        .ids
        .iter()
        .zip(clusters)
        .filter_map(|(t, &c)| t.map(|t| (t, c)))
        .unzip();
    scores(&t, &p)
}

/// `cellvae run`.
pub fn run(a: RunArgs, quiet: bool) -> Result<()> {
    let started = Instant::now();
    let topts = a.model.train_options()?;
    // Every network's configuration, validated before any work starts (`None`: the PCA).
    let mut plan: Vec<(RunModel, Option<ModelConfig>)> = Vec::new();
    for &m in &a.models {
        plan.push((m, m.kind().map(|k| a.model.config(k)).transpose()?));
    }
    if a.models.is_empty() {
        return Err(Error::invalid("--models names no model"));
    }
    if a.k == Some(0) {
        return Err(Error::invalid("--k must be at least 1"));
    }
    ensure_dir(&a.out)?;
    let prep = load_prepared(&a.data, quiet)?;
    let d = &prep.data;
    let n = d.n_cells();
    if !(a.perplexity > 0.0 && a.perplexity < n as f64) {
        return Err(Error::invalid(format!(
            "--perplexity {} must be positive and below the number of cells ({n})",
            a.perplexity
        )));
    }
    let types = load_labels(&a, d, quiet)?;
    let k = a.k.or(types.as_ref().map(|t| t.names.len()));
    if let Some(k) = k {
        if k > n {
            return Err(Error::invalid(format!(
                "--k {k} exceeds the number of cells ({n})"
            )));
        }
    }
    // The PCA baseline has as many components as the networks have latent dimensions.
    let latent = a.model.config(ModelKind::Ae)?.latent;
    let seed = a.model.seed;
    let mut outcomes = Vec::new();
    for (m, cfg) in &plan {
        let name = m.name().to_string();
        let dir = a.out.join(&name);
        ensure_dir(&dir)?;
        let t0 = Instant::now();
        let (codes, records, n_params) = match cfg {
            None => {
                let p = pca(&d.matrix, latent, seed);
                let columns: Vec<String> =
                    (1..=p.scores.ncols()).map(|j| format!("pc{j}")).collect();
                table::write(&dir.join("latent.csv"), &columns, &d.barcodes, &p.scores)?;
                (p.scores, Vec::new(), None)
            }
            Some(cfg) => {
                let f = fit_and_write(d, cfg.clone(), &topts, false, &dir, quiet)?;
                let n_params = f.net.n_params();
                (f.codes.values, f.records, Some(n_params))
            }
        };
        let train_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let o2 = tsne_options(2, a.perplexity, a.tsne_method, a.tsne_iterations, seed);
        let e2 = tsne(&codes, &o2)?;
        let e3 = tsne(
            &codes,
            &tsne_options(3, a.perplexity, a.tsne_method, a.tsne_iterations, seed),
        )?;
        table::write(
            &dir.join("tsne2d.csv"),
            &tsne_columns(2),
            &d.barcodes,
            &e2.coords,
        )?;
        table::write(
            &dir.join("tsne3d.csv"),
            &tsne_columns(3),
            &d.barcodes,
            &e3.coords,
        )?;
        let tsne_seconds = t1.elapsed().as_secs_f64();
        let mut outcome = ModelOutcome {
            name: name.clone(),
            scores: None,
            latent_scores: None,
            train_seconds,
            records,
            n_params,
            tsne_kl: (e2.kl_divergence, e3.kl_divergence),
            tsne_seconds,
        };
        let mut clusters = None;
        if let Some(k) = k {
            let ko = KMeansOptions {
                n_init: a.n_init,
                ..KMeansOptions::new(k, seed)
            };
            let km = kmeans(&e2.coords, &ko)?;
            write_clusters(&dir.join("clusters.csv"), &d.barcodes, &km.labels)?;
            if let Some(t) = &types {
                outcome.scores = Some(score_against(t, &km.labels));
                outcome.latent_scores = Some(score_against(t, &kmeans(&codes, &ko)?.labels));
            }
            clusters = Some(km);
        }
        let ct = types
            .as_ref()
            .map(|t| (t.ids.as_slice(), t.names.as_slice()));
        let title = format!("{name}: t-SNE of the {}-D codes", codes.ncols());
        plots::embedding_figure(
            &dir.join("tsne2d.png"),
            &title,
            &e2.coords,
            ct,
            clusters
                .as_ref()
                .map(|c| (c.labels.as_slice(), &c.centroids)),
        )?;
        plots::projections_3d(
            &dir.join("tsne3d.png"),
            &format!("{name}: 3-D t-SNE"),
            &e3.coords,
            ct,
        )?;
        if !outcome.records.is_empty() {
            plots::loss_curves(
                &dir.join("loss.png"),
                &[(name.clone(), outcome.records.clone())],
            )?;
        }
        let run_info =
            serde_json::json!({"seed": seed, "k": k, "perplexity": a.perplexity, "cells": n});
        summary::write_metrics_json(&dir.join("metrics.json"), &outcome, run_info)?;
        if !quiet {
            let s = outcome.scores.map_or(String::new(), |s| {
                format!(", NMI {:.3} ARI {:.3}", s.nmi_geometric, s.ari)
            });
            eprintln!(
                "{name}: codes {:.1}s, t-SNE 2-D and 3-D {:.1}s{s}",
                train_seconds, tsne_seconds
            );
        }
        outcomes.push(outcome);
    }
    let score_rows: Vec<(String, [f64; 4])> = outcomes
        .iter()
        .filter_map(|o| {
            o.scores.map(|s| {
                (
                    o.name.clone(),
                    [s.nmi_geometric, s.ari, s.homogeneity, s.completeness],
                )
            })
        })
        .collect();
    if !score_rows.is_empty() {
        plots::score_bars(&a.out.join("scores.png"), &score_rows)?;
    }
    let curves: Vec<(String, Vec<EpochRecord>)> = outcomes
        .iter()
        .filter(|o| !o.records.is_empty())
        .map(|o| (o.name.clone(), o.records.clone()))
        .collect();
    if !curves.is_empty() {
        plots::loss_curves(&a.out.join("losses.png"), &curves)?;
    }
    summary::write_summary_csv(&a.out.join("summary.csv"), &outcomes)?;
    let command = std::iter::once("cellvae".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let cfg_json = serde_json::Value::Object(
        plan.iter()
            .filter_map(|(m, c)| c.as_ref().map(|c| (m.name().to_string(), c.to_json())))
            .collect(),
    );
    let ctx = ReportContext {
        command: &command,
        data: &a.data.data.display().to_string(),
        cells: n,
        genes: d.n_genes(),
        labelled: types.as_ref().map_or(0, |t| t.ids.iter().flatten().count()),
        k,
        preset: a.model.preset_name(),
        epochs: topts.epochs,
        seed,
        threads: rayon::current_num_threads(),
        notes: &prep.notes,
        configs: cfg_json,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    summary::write_report(&a.out.join("report.md"), &outcomes, &ctx)?;
    println!("{}", summary::table(&outcomes));
    if !quiet {
        eprintln!(
            "wrote {} in {:.1}s",
            a.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
