//! The `cellvae` command line: argument parsing and one function per subcommand. Library
//! errors come back as [`crate::Error`]; `main` prints them as one `error:` line and exits 1
//! (clap exits 2 on usage errors).

pub mod args;
mod cluster;
mod commands;
mod evaluate;
mod markers;
mod pipeline;
mod run_outputs;
mod run_report;

use crate::models::ModelKind;
use args::{DataArgs, ModelArgs};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Deep AE, β-VAE and β-VSC for single-cell RNA-seq, on a hand-written engine.
#[derive(Parser, Debug)]
#[command(name = "cellvae", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Worker threads (0: one per core)
    #[arg(long, global = true, default_value_t = 0)]
    pub threads: usize,
    /// No progress output
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The whole study: QC, train AE/VAE/VSC, PCA baseline, t-SNE, k-means, scores, plots, report
    Run(pipeline::RunArgs),
    /// QC and normalize a dataset; write it as a 10x directory plus qc.csv
    Preprocess {
        #[command(flatten)]
        data: DataArgs,
        /// Output directory
        #[arg(long)]
        out: PathBuf,
    },
    /// Train one model; write model.safetensors, loss.csv and latent.csv
    Train {
        /// Which model
        #[arg(long, value_enum)]
        model: ModelKind,
        #[command(flatten)]
        model_args: ModelArgs,
        #[command(flatten)]
        data: DataArgs,
        /// Also write the VSC spike probabilities γ as extra latent columns
        #[arg(long)]
        gamma: bool,
        /// Output directory
        #[arg(long)]
        out: PathBuf,
    },
    /// Encode a dataset with a trained checkpoint
    Embed {
        /// A model.safetensors written by cellvae
        #[arg(long)]
        checkpoint: PathBuf,
        /// Require the checkpoint to be this model
        #[arg(long, value_enum)]
        model: Option<ModelKind>,
        #[command(flatten)]
        data: DataArgs,
        /// Also write the VSC spike probabilities γ
        #[arg(long)]
        gamma: bool,
        /// Seed for sampled codes (seed-code VAE)
        #[arg(long, default_value_t = crate::train::DEFAULT_SEED)]
        seed: u64,
        /// Output CSV (barcode,z1,…)
        #[arg(long)]
        out: PathBuf,
    },
    /// t-SNE of a table of codes
    Tsne(commands::TsneArgs),
    /// UMAP of a table of codes (umap-learn's defaults)
    Umap(commands::UmapArgs),
    /// Clusters of a table of codes or embeddings: k-means, or Leiden on the kNN graph
    Cluster(cluster::ClusterArgs),
    /// Marker genes of each cluster: Wilcoxon rank-sum against the rest (scanpy's columns)
    Markers(markers::MarkersArgs),
    /// Any table of codes through the run's protocols and scores (labels, batches); JSON out
    Evaluate(evaluate::EvaluateArgs),
    /// Score predicted clusters against labels (NMI, ARI, homogeneity, completeness)
    Score {
        /// Labels CSV (barcode first)
        #[arg(long)]
        truth: PathBuf,
        /// Clusters CSV (barcode first)
        #[arg(long)]
        pred: PathBuf,
        #[command(flatten)]
        labels: ScoreLabelArgs,
    },
}

/// Which column holds the labels in `score`'s truth file.
#[derive(clap::Args, Debug)]
pub struct ScoreLabelArgs {
    /// Label column of the truth file [default: its second column]
    #[arg(long, value_name = "NAME")]
    pub label_column: Option<String>,
}

/// The most worker threads `--threads` accepts. Far more threads than cores only slows every
/// parallel pass down, and asking the system for hundreds of thousands of them takes minutes
/// (or fails); above this the answer is an immediate error instead.
pub const MAX_THREADS: usize = 1024;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> crate::Result<()> {
    if cli.threads > MAX_THREADS {
        return Err(crate::Error::invalid(format!(
            "--threads {} is more than the {MAX_THREADS} allowed (0 means one per core)",
            cli.threads
        )));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cli.threads)
        .build()
        .map_err(|e| crate::Error::invalid(format!("cannot start {} threads: {e}", cli.threads)))?;
    let quiet = cli.quiet;
    pool.install(|| match cli.command {
        Command::Run(a) => pipeline::run(a, quiet),
        Command::Preprocess { data, out } => commands::preprocess(&data, &out),
        Command::Train {
            model,
            model_args,
            data,
            gamma,
            out,
        } => commands::train(model, &model_args, &data, gamma, &out, quiet),
        Command::Embed {
            checkpoint,
            model,
            data,
            gamma,
            seed,
            out,
        } => commands::embed(&checkpoint, model, &data, gamma, seed, &out),
        Command::Tsne(a) => commands::tsne(&a, quiet),
        Command::Umap(a) => commands::umap(&a, quiet),
        Command::Cluster(a) => cluster::cluster(&a),
        Command::Markers(a) => markers::markers(&a, quiet),
        Command::Evaluate(a) => evaluate::evaluate(&a, quiet),
        Command::Score {
            truth,
            pred,
            labels,
        } => commands::score(&truth, &pred, labels.label_column.as_deref()),
    })
}
