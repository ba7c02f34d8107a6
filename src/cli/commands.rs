//! The single-step subcommands: `preprocess`, `train`, `embed`, `tsne`, `umap`, `score`, and
//! the steps `cellvae run` ([`super::pipeline`]) shares with them: loading and preprocessing
//! the data, writing a trained model's files, clusters.

use super::args::DataArgs;
use crate::analysis::metrics::{encode, scores};
use crate::analysis::tsne::{tsne as run_tsne, Method, TsneOptions};
use crate::analysis::umap::{umap as run_umap, UmapOptions};
use crate::error::{Error, Result};
use crate::io::align::{to_gene_order, GeneOrder};
use crate::io::atomic::{ensure_dir, ensure_parent, write_atomic};
use crate::io::{labels, table, tenx};
use crate::models::codes;
use crate::models::{ModelKind, Preset};
use crate::preprocess::{prepare, PrepOptions, Prepared};
use crate::study::fit::{fit_network, Fitted};
use crate::train::checkpoint::{self, CheckpointMeta};
use crate::train::progress::Progress;
use crate::train::{self as training, TrainOptions};
use clap::Args;
use std::path::{Path, PathBuf};

/// Reads `--data` and prepares it as `opts` say, telling the user what was done.
pub fn load_prepared(data: &DataArgs, opts: &PrepOptions, quiet: bool) -> Result<Prepared> {
    let (raw, read_notes) = data.read(quiet)?;
    let prep = prepare(raw, opts)?;
    if !quiet {
        let inputs: Vec<String> = data.data.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "read {}: {} cells × {} genes",
            inputs.join(", "),
            prep.cells_in,
            prep.genes_in
        );
        for n in read_notes.iter().chain(&prep.notes) {
            eprintln!("{n}");
        }
    }
    Ok(prep)
}

/// Writes a trained network's files into `out`: `model.safetensors`, `loss.csv`,
/// `latent.csv`, and with a validation split `heldout.csv` (the barcodes of the held-out
/// cells).
pub fn write_fitted(out: &Path, prep: &Prepared, f: &Fitted, topts: &TrainOptions) -> Result<()> {
    let data = &prep.data;
    let meta = CheckpointMeta {
        config: f.net.config.clone(),
        gene_ids: data.gene_ids.clone(),
        gene_names: data.gene_names.clone(),
        has_gene_ids: data.has_gene_ids,
        seed: topts.seed,
        epochs: topts.epochs,
        batch_size: topts.batch_size,
        lr: topts.lr,
        scaling: prep.scaling.clone(),
        batch_names: (f.net.config.n_batches > 0)
            .then(|| data.batches.as_ref().map(|b| b.names.clone()))
            .flatten(),
    };
    checkpoint::save(&out.join("model.safetensors"), &f.net, &meta)?;
    training::write_loss_csv(&out.join("loss.csv"), &f.records)?;
    table::write(
        &out.join("latent.csv"),
        &f.codes.columns,
        &data.barcodes,
        &f.codes.values,
    )?;
    if topts.val_fraction > 0.0 {
        // Which cells the held-out loss was computed on, so that another tool can be
        // scored on the same ones.
        let held_out = training::validation::split(data.n_cells(), topts.val_fraction).val;
        write_atomic(&out.join("heldout.csv"), |w| {
            writeln!(w, "barcode")?;
            for &i in &held_out {
                writeln!(w, "{}", data.barcodes[i])?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// `cellvae preprocess`: the filtered, normalized matrix as a 10x directory, plus `qc.csv`.
pub fn preprocess(data: &DataArgs, out: &Path) -> Result<()> {
    ensure_dir(out)?;
    let prep = load_prepared(data, &data.prep_options(Preset::Paper)?, false)?;
    tenx::write_dir(
        out,
        &prep.data,
        "written by cellvae preprocess: cells passing QC, normalized",
    )?;
    write_atomic(&out.join("qc.csv"), |w| {
        writeln!(w, "barcode,nCount_RNA,nFeature_RNA,percent_mt,passes_qc")?;
        for r in &prep.qc {
            let m = &r.metrics;
            writeln!(
                w,
                "{},{},{},{},{}",
                r.barcode, m.n_count, m.n_feature, m.percent_mt, r.passes as u8
            )?;
        }
        Ok(())
    })?;
    let line = serde_json::json!({
        "cells_in": prep.cells_in,
        "cells_kept": prep.data.n_cells(),
        "genes_in": prep.genes_in,
        "genes_kept": prep.data.n_genes(),
        "nnz": prep.data.matrix.nnz(),
    });
    println!("{line}");
    Ok(())
}

/// `cellvae train`: one model, its checkpoint, loss curve and codes.
pub fn train(
    kind: ModelKind,
    margs: &super::args::ModelArgs,
    data: &DataArgs,
    gamma: bool,
    out: &Path,
    quiet: bool,
) -> Result<()> {
    let mut cfg = margs.config(kind, data.names_batches())?;
    let mut topts = margs.train_options(data.names_batches())?;
    ensure_dir(out)?;
    let prep = load_prepared(data, &data.prep_options(margs.preset)?, quiet)?;
    if margs.epochs.is_none() {
        topts.scale_to_cells(prep.data.n_cells());
    }
    let batches = prep.data.batches.as_ref();
    cfg.condition_on_batches(batches.map_or(0, |b| b.n_batches()))?;
    let fitted = fit_network(
        &prep,
        cfg,
        &topts,
        gamma,
        &mut Progress::new(kind.name(), quiet),
    )?;
    write_fitted(out, &prep, &fitted, &topts)?;
    if !quiet {
        eprintln!(
            "trained {} in {:.1}s; final reconstruction per entry {:.5}; wrote {}",
            kind.name(),
            fitted.seconds,
            fitted
                .records
                .last()
                .map_or(f64::NAN, |r| r.recon_per_entry),
            out.display()
        );
    }
    Ok(())
}

/// `cellvae embed`: encode a dataset with a checkpoint, matching genes by ID (or symbol).
pub fn embed(
    ckpt: &Path,
    model: Option<ModelKind>,
    data: &DataArgs,
    gamma: bool,
    seed: u64,
    out: &Path,
) -> Result<()> {
    ensure_parent(out)?;
    let (net, meta) = checkpoint::load(ckpt)?;
    if let Some(m) = model {
        if m != meta.config.kind {
            return Err(Error::data(format!(
                "{} holds a {} model, not a {} model",
                ckpt.display(),
                meta.config.kind.name(),
                m.name()
            )));
        }
    }
    // The checkpoint decides the genes and the scaling, not the flags.
    let mut data = data.clone();
    if data.hvg.is_some() || data.scale {
        eprintln!(
            "note: --hvg and --scale are ignored by embed: the checkpoint's genes and scaling are used"
        );
    }
    (data.hvg, data.scale, data.no_scale) = (None, false, true);
    let prep = load_prepared(&data, &data.prep_options(Preset::Paper)?, false)?;
    let d = &prep.data;
    let mut x = to_gene_order(
        d,
        GeneOrder {
            ids: &meta.gene_ids,
            names: &meta.gene_names,
            has_ids: meta.has_gene_ids,
        },
    )?;
    if let Some(s) = &meta.scaling {
        x = s.apply(&x);
    }
    let batch = match &meta.batch_names {
        Some(trained) if net.config.encoder_covariates() > 0 => {
            Some(batch_ids_of(d, trained, ckpt)?)
        }
        _ => None,
    };
    let c = codes::extract(&net, &x, batch.as_deref(), seed, gamma);
    table::write(out, &c.columns, &d.barcodes, &c.values)?;
    eprintln!(
        "encoded {} cells with the {} model into {}",
        d.n_cells(),
        meta.config.kind.name(),
        out.display()
    );
    Ok(())
}

/// Each cell's batch as the checkpoint numbers it (`trained`: its batches in code order), for
/// an encoder that reads the batch: the data must name a batch for every cell, and a batch the
/// model was not trained on is an error.
fn batch_ids_of(d: &crate::io::Dataset, trained: &[String], ckpt: &Path) -> Result<Vec<u32>> {
    let b = d.batches.as_ref().ok_or_else(|| {
        Error::invalid(format!(
            "{}'s encoder reads the batch: give each cell's with --batch-key or --batches \
             (the model knows {})",
            ckpt.display(),
            trained.join(", ")
        ))
    })?;
    let code: Vec<u32> = b
        .names
        .iter()
        .map(|name| {
            trained
                .iter()
                .position(|t| t == name)
                .map(|p| p as u32)
                .ok_or_else(|| {
                    Error::data(format!(
                        "batch '{name}' was not seen in training: {} knows only {}",
                        ckpt.display(),
                        trained.join(", ")
                    ))
                })
        })
        .collect::<Result<_>>()?;
    Ok(b.ids.iter().map(|&i| code[i as usize]).collect())
}

/// Flags of `cellvae tsne`.
#[derive(Args, Debug)]
pub struct TsneArgs {
    /// CSV of codes (barcode first)
    #[arg(long)]
    pub input: PathBuf,
    /// Embedding dimensions
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub dims: u8,
    /// Perplexity
    #[arg(long, default_value_t = 40.0)]
    pub perplexity: f64,
    /// Gradient: exact below 5,000 points with auto
    #[arg(long, value_enum, default_value = "auto")]
    pub method: Method,
    /// Optimisation iterations
    #[arg(long, default_value_t = 1000)]
    pub iterations: usize,
    /// Seed of the initialisation
    #[arg(long, default_value_t = crate::train::DEFAULT_SEED)]
    pub seed: u64,
    /// Output CSV (barcode,tsne1,tsne2[,tsne3])
    #[arg(long)]
    pub out: PathBuf,
}

/// Column names of a t-SNE table.
pub fn tsne_columns(dims: usize) -> Vec<String> {
    (1..=dims).map(|d| format!("tsne{d}")).collect()
}

/// `cellvae tsne`.
pub fn tsne(a: &TsneArgs, quiet: bool) -> Result<()> {
    ensure_parent(&a.out)?;
    let t = table::read(&a.input)?;
    let opts = TsneOptions {
        perplexity: a.perplexity,
        method: a.method,
        ..TsneOptions::new(a.dims as usize, a.seed)
    }
    .with_iterations(a.iterations);
    let started = std::time::Instant::now();
    let e = run_tsne(&t.values, &opts)?;
    table::write(&a.out, &tsne_columns(opts.dims), &t.barcodes, &e.coords)?;
    if !quiet {
        eprintln!(
            "t-SNE ({:?}, {}-D) of {} points in {:.2}s, KL divergence {:.4}",
            e.method,
            opts.dims,
            t.barcodes.len(),
            started.elapsed().as_secs_f64(),
            e.kl_divergence
        );
    }
    Ok(())
}

/// Flags of `cellvae umap`.
#[derive(Args, Debug)]
pub struct UmapArgs {
    /// CSV of codes (barcode first)
    #[arg(long)]
    pub input: PathBuf,
    /// Embedding dimensions
    #[arg(long, default_value_t = 2)]
    pub dims: usize,
    /// Neighbourhood size, the point itself included
    #[arg(long, default_value_t = 15)]
    pub neighbors: usize,
    /// Smallest distance between embedded points
    #[arg(long, default_value_t = 0.1)]
    pub min_dist: f64,
    /// Epochs of gradient descent [default: 500 up to 10,000 points, 200 up to 50,000,
    /// else 100]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed of the initial noise and the negative samples
    #[arg(long, default_value_t = crate::train::DEFAULT_SEED)]
    pub seed: u64,
    /// Output CSV (barcode,umap1,umap2[,…])
    #[arg(long)]
    pub out: PathBuf,
}

/// Column names of a UMAP table.
pub fn umap_columns(dims: usize) -> Vec<String> {
    (1..=dims).map(|d| format!("umap{d}")).collect()
}

/// `cellvae umap`.
pub fn umap(a: &UmapArgs, quiet: bool) -> Result<()> {
    ensure_parent(&a.out)?;
    let t = table::read(&a.input)?;
    let opts = UmapOptions {
        neighbors: a.neighbors,
        min_dist: a.min_dist,
        epochs: a.epochs,
        ..UmapOptions::new(a.dims, a.seed)
    };
    let started = std::time::Instant::now();
    let y = run_umap(&t.values, &opts)?;
    table::write(&a.out, &umap_columns(opts.dims), &t.barcodes, &y)?;
    if !quiet {
        eprintln!(
            "UMAP ({}-D, {} neighbours) of {} points in {:.2}s",
            opts.dims,
            opts.neighbors,
            t.barcodes.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Writes `barcode,cluster`.
pub fn write_clusters(path: &Path, barcodes: &[String], labels: &[usize]) -> Result<()> {
    write_atomic(path, |w| {
        writeln!(w, "barcode,cluster")?;
        for (b, l) in barcodes.iter().zip(labels) {
            writeln!(w, "{b},{l}")?;
        }
        Ok(())
    })
}

/// `cellvae score`: one JSON object on stdout.
pub fn score(truth: &Path, pred: &Path, column: Option<&str>) -> Result<()> {
    let t = labels::read(truth, column)?;
    let p = labels::read(pred, None)?;
    let pmap = p.map();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (b, l) in &t.entries {
        if let (Some(l), Some(&c)) = (l, pmap.get(b.as_str())) {
            pairs.push((l.as_str(), c));
        }
    }
    if pairs.is_empty() {
        return Err(Error::data(format!(
            "no barcode of {} has a label in {}",
            pred.display(),
            truth.display()
        )));
    }
    let truth_ids = encode(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    let pred_ids = encode(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
    let s = scores(&truth_ids, &pred_ids);
    println!(
        "{}",
        serde_json::json!({
            "n": s.n, "nmi_geometric": s.nmi_geometric, "nmi_arithmetic": s.nmi_arithmetic,
            "ari": s.ari, "homogeneity": s.homogeneity, "completeness": s.completeness,
        })
    );
    Ok(())
}
