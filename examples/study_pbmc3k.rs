//! The study on the shipped PBMC3k from Rust, without the command line (no clap, no
//! plotters): Seurat QC and LogNormalize, the AE, β-VAE and β-VSC of the `paper` preset and
//! the PCA baseline, each through the three protocols, scored against the Seurat labels.
//!
//! ```text
//! cargo run --release --no-default-features --example study_pbmc3k -- [EPOCHS]
//! ```
//!
//! With 200 epochs (the default) the scores are the README's table; fewer run faster.

use cellvae::io::align::cell_types;
use cellvae::io::{labels, read_dataset, ReadOptions};
use cellvae::models::Preset;
use cellvae::preprocess::prepare;
use cellvae::study::{self, StudyOptions};
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut opts = StudyOptions::preset(Preset::Paper);
    if let Some(epochs) = std::env::args().nth(1) {
        opts.train.epochs = epochs.parse()?;
    }
    let raw = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default())?;
    let prep = prepare(raw, &opts.prep)?;
    let truth = labels::read(Path::new("data/pbmc3k/labels.csv"), None)?;
    let types = cell_types(&truth, &prep.data.barcodes).ok_or("no cell has a label")?;
    println!(
        "{} cells × {} genes, {} cell types",
        prep.data.n_cells(),
        prep.data.n_genes(),
        types.names.len()
    );

    let runs = study::run(&prep, Some(&types), &opts, false)?;
    println!("model  t-SNE→k-means  codes→k-means  codes→Leiden(k)   (NMI / ARI)");
    for run in &runs {
        let s = run.evaluation.scores.ok_or("no scores")?;
        let pair = |x: cellvae::analysis::metrics::Scores| {
            format!("{:.3} / {:.3}", x.nmi_geometric, x.ari)
        };
        println!(
            "{:<6} {:>14} {:>14} {:>16}",
            run.model.name(),
            s.tsne_kmeans.map_or("skipped".into(), pair),
            pair(s.codes_kmeans),
            pair(s.leiden)
        );
    }
    Ok(())
}
