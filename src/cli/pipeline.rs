//! `cellvae run`: the whole study in one command. Each model is evaluated in turn
//! ([`evaluate_model`]: codes, t-SNE, UMAP, clusters, marker genes, scores, its folder's
//! files), then the run's own outputs are written (`super::run_report`: figures,
//! `summary.csv`, `report.md`; with `--seeds`, once per seed and then the summary over
//! seeds). The steps it shares with the single subcommands live in [`super::commands`].

use super::args::{DataArgs, LabelArgs, ModelArgs, PresetArg};
use super::commands::{
    fit_and_write, load_prepared, tsne_columns, tsne_options, umap_columns, write_clusters,
    MethodArg,
};
use super::run_outputs::{
    centres, more_scores, score_against, write_anndata, write_markers, Embeddings,
};
use super::run_report::{write_run_outputs, write_seeds_report};
use crate::analysis::kmeans::{kmeans, KMeansOptions};
use crate::analysis::label_scores::active_units;
use crate::analysis::leiden::{knn_graph, leiden_k, Iterations, NEIGHBOURS};
use crate::analysis::pca::pca;
use crate::analysis::tsne::tsne;
use crate::analysis::umap::{umap, UmapOptions};
use crate::error::{Error, Result};
use crate::io::align::{cell_types, CellTypes};
use crate::io::atomic::ensure_dir;
use crate::io::{labels, table, Dataset};
use crate::models::{ModelConfig, ModelKind};
use crate::preprocess::Prepared;
use crate::report::confusion::confusion_figure;
use crate::report::plots::{self, Clusters};
use crate::report::seeds;
use crate::report::summary::{self, LeidenOutcome, ModelOutcome};
use crate::train::TrainOptions;
use clap::{Args, ValueEnum};
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
    pub(super) fn name(self) -> &'static str {
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
    /// Components of the PCA baseline [default: the networks' latent width]
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

fn load_labels(a: &RunArgs, d: &Dataset, quiet: bool) -> Result<Option<CellTypes>> {
    let (path, l) = match (&a.labels.labels, &a.labels.labels_from_obs) {
        (_, Some(column)) => (
            a.data.data.clone(),
            crate::io::h5::read_h5ad_labels(&a.data.data, column)?,
        ),
        (Some(p), None) => (
            p.clone(),
            labels::read(p, a.labels.label_column.as_deref())?,
        ),
        (None, None) if a.data.data.is_dir() && a.data.data.join("labels.csv").is_file() => {
            let p = a.data.data.join("labels.csv");
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

/// What every model of a run shares.
pub(super) struct RunContext<'a> {
    pub(super) args: &'a RunArgs,
    pub(super) data: &'a Dataset,
    /// Where this seed's outputs go.
    pub(super) out: &'a Path,
    /// The prepared input (`data` is its matrix), with the counts and the scaling.
    pub(super) prep: &'a Prepared,
    pub(super) types: Option<&'a CellTypes>,
    /// Number of clusters, when there are labels or `--k`.
    pub(super) k: Option<usize>,
    pub(super) topts: &'a TrainOptions,
    /// Components of the PCA baseline.
    pub(super) pca_components: usize,
    pub(super) quiet: bool,
}

/// One model of the run: its codes (a trained network's, or the PCA scores), 2-D and 3-D
/// t-SNE, k-means on the 2-D embedding (and on the codes), scores, and the files of its folder.
fn evaluate_model(
    ctx: &RunContext<'_>,
    model: RunModel,
    cfg: Option<&ModelConfig>,
) -> Result<(ModelOutcome, Embeddings)> {
    let (a, d, seed) = (ctx.args, ctx.data, ctx.topts.seed);
    let name = model.name().to_string();
    let dir = ctx.out.join(&name);
    ensure_dir(&dir)?;
    let t0 = Instant::now();
    let (codes, records, n_params) = match cfg {
        None => {
            let p = pca(&d.matrix, ctx.pca_components, seed);
            let columns: Vec<String> = (1..=p.scores.ncols()).map(|j| format!("pc{j}")).collect();
            table::write(&dir.join("latent.csv"), &columns, &d.barcodes, &p.scores)?;
            (p.scores, Vec::new(), None)
        }
        Some(cfg) => {
            let f = fit_and_write(ctx.prep, cfg.clone(), ctx.topts, false, &dir, ctx.quiet)?;
            let n_params = f.net.n_params();
            (f.codes.values, f.records, Some(n_params))
        }
    };
    let train_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let embed = |dims: usize| {
        tsne(
            &codes,
            &tsne_options(dims, a.perplexity, a.tsne_method, a.tsne_iterations, seed),
        )
    };
    let (e2, e3) = (embed(2)?, embed(3)?);
    for (file, e, dims) in [("tsne2d.csv", &e2, 2), ("tsne3d.csv", &e3, 3)] {
        table::write(&dir.join(file), &tsne_columns(dims), &d.barcodes, &e.coords)?;
    }
    let tsne_seconds = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let umap2 = umap(&codes, &UmapOptions::new(2, seed))?;
    table::write(&dir.join("umap.csv"), &umap_columns(2), &d.barcodes, &umap2)?;
    let umap_seconds = t2.elapsed().as_secs_f64();
    let mut outcome = ModelOutcome {
        name: name.clone(),
        scores: None,
        latent_scores: None,
        train_seconds,
        records,
        n_params,
        tsne_kl: (e2.kl_divergence, e3.kl_divergence),
        tsne_seconds,
        umap_seconds,
        more: None,
        leiden: None,
        active_units: active_units(&codes),
        seed,
    };
    let mut clusters = None;
    let mut leiden_labels = None;
    if let Some(k) = ctx.k {
        let ko = KMeansOptions {
            n_init: a.n_init,
            ..KMeansOptions::new(k, seed)
        };
        let km = kmeans(&e2.coords, &ko)?;
        write_clusters(&dir.join("clusters.csv"), &d.barcodes, &km.labels)?;
        if let Some(t) = ctx.types {
            outcome.scores = Some(score_against(t, &km.labels));
            let latent_km = kmeans(&codes, &ko)?.labels;
            let latent = score_against(t, &latent_km);
            outcome.latent_scores = Some(latent);
            outcome.more = Some(more_scores(t, &km.labels, &codes, latent.nmi_geometric));
        }
        clusters = Some(km);
        let g = knn_graph(&codes, NEIGHBOURS);
        let lk = leiden_k(&g, k, Iterations::UntilStable, seed);
        write_clusters(&dir.join("leiden.csv"), &d.barcodes, &lk.labels)?;
        outcome.leiden = Some(LeidenOutcome {
            scores: ctx.types.map(|t| score_against(t, &lk.labels)),
            resolution: lk.resolution,
            clusters: lk.labels.iter().max().map_or(0, |m| m + 1),
        });
        leiden_labels = Some(lk.labels);
    }
    if let Some(km) = &clusters {
        write_markers(&dir, &name, d, &km.labels, km.centroids.nrows())?;
        if let Some(t) = ctx.types {
            confusion_figure(
                &dir.join("confusion.png"),
                &format!("{name}: cell types × clusters (k-means on the 2-D t-SNE)"),
                &km.labels,
                km.centroids.nrows(),
                &t.ids,
                &t.names,
            )?;
        }
    }
    let ct = ctx.types.map(|t| (t.ids.as_slice(), t.names.as_slice()));
    let slots = clusters
        .as_ref()
        .map(|c| plots::cluster_slots(&c.labels, c.centroids.nrows(), ct));
    let title = format!("{name}: t-SNE of the {}-D codes", codes.ncols());
    plots::embedding_figure(
        &dir.join("tsne2d.png"),
        &title,
        &e2.coords,
        ct,
        clusters
            .as_ref()
            .zip(slots.as_deref())
            .map(|(c, slots)| Clusters {
                labels: &c.labels,
                centroids: &c.centroids,
                slots,
            }),
    )?;
    // The same clusters (k-means on the 2-D t-SNE), their centres marked where they fall here.
    let umap_centres = clusters
        .as_ref()
        .map(|c| centres(&umap2, &c.labels, c.centroids.nrows()));
    plots::embedding_figure(
        &dir.join("umap.png"),
        &format!(
            "{name}: UMAP of the {}-D codes (clusters from the t-SNE)",
            codes.ncols()
        ),
        &umap2,
        ct,
        clusters
            .as_ref()
            .zip(umap_centres.as_ref())
            .zip(slots.as_deref())
            .map(|((c, centroids), slots)| Clusters {
                labels: &c.labels,
                centroids,
                slots,
            }),
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
    let run_info = serde_json::json!({
        "seed": seed, "k": ctx.k, "perplexity": a.perplexity, "cells": d.n_cells(),
    });
    summary::write_metrics_json(&dir.join("metrics.json"), &outcome, run_info)?;
    if !ctx.quiet {
        let s = outcome.scores.map_or(String::new(), |s| {
            format!(", NMI {:.3} ARI {:.3}", s.nmi_geometric, s.ari)
        });
        eprintln!(
            "{name}: codes {train_seconds:.1}s, t-SNE 2-D and 3-D {tsne_seconds:.1}s, UMAP {umap_seconds:.1}s{s}"
        );
    }
    let embeddings = Embeddings {
        name,
        codes,
        tsne: e2.coords,
        umap: umap2,
        clusters: clusters.map(|c| c.labels),
        leiden: leiden_labels,
    };
    Ok((outcome, embeddings))
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
    let dec_without_k = a.model.dec.is_some_and(|g| g > 0.0) && a.model.dec_clusters.is_none();
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
    if dec_without_k {
        // DEC's cluster count: the run's k (only its count comes from the labels).
        let k =
            k.ok_or_else(|| Error::invalid("--dec needs --k or labels to know how many clusters"))?;
        for (_, cfg) in plan.iter_mut() {
            if let Some(c) = cfg {
                c.dec_clusters = k;
            }
        }
    }
    if let Some(k) = k {
        if k > n {
            return Err(Error::invalid(format!(
                "--k {k} exceeds the number of cells ({n})"
            )));
        }
    }
    let pca_components = match (a.pca_components, a.model.preset) {
        (Some(0), _) => return Err(Error::invalid("--pca-components must be at least 1")),
        (Some(c), _) => c,
        // scanpy's recipe: 50 components of the same scaled genes.
        (None, PresetArg::Scrna) => 50,
        // The study's: as many components as the networks have latent dimensions.
        (None, _) => a.model.config(ModelKind::Ae)?.latent,
    };
    let several = !a.seeds.is_empty();
    let seeds = if several {
        a.seeds.clone()
    } else {
        vec![topts.seed]
    };
    let mut all = Vec::new();
    for &seed in &seeds {
        let out = if several {
            a.out.join(format!("seed-{seed}"))
        } else {
            a.out.clone()
        };
        ensure_dir(&out)?;
        let topts = TrainOptions {
            seed,
            ..topts.clone()
        };
        let ctx = RunContext {
            args: &a,
            data: d,
            out: &out,
            prep: &prep,
            types: types.as_ref(),
            k,
            topts: &topts,
            pca_components,
            quiet,
        };
        let (outcomes, embeddings): (Vec<_>, Vec<_>) = plan
            .iter()
            .map(|(m, cfg)| evaluate_model(&ctx, *m, cfg.as_ref()))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        write_anndata(
            &out,
            &prep,
            types.as_ref(),
            a.data.hvg.is_some(),
            &embeddings,
        )?;
        write_run_outputs(&ctx, &plan, &prep, &outcomes, started)?;
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
            "wrote {} in {:.1}s",
            a.out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
