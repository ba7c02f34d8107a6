//! How many UMAP epochs a layout needs: the neighbourhoods it keeps, by epochs.
//!
//! The codes (`barcode,<columns…>`, as a run writes `latent.csv`) get the run's neighbour
//! graph (14 others, NN-descent in many dimensions from 20,000 points) and its fuzzy graph;
//! UMAP then lays them out once per `--epochs` entry from the same seed. Each layout is
//! scored by [`Neighbors::preserved_in`]: the share of each point's 14 nearest codes that are
//! among its 14 nearest in the layout. No label is read: this is how cellvae chose UMAP's
//! epochs above 100,000 points (docs/scale.md).
//!
//! ```text
//! cargo run --release --example umap_epochs -- --codes run/vae/latent.csv --epochs 50,100,200
//! ```

use cellvae::analysis::neighbors::Neighbors;
use cellvae::analysis::umap::{fuzzy_graph, umap_on, UmapOptions};
use cellvae::io::table;
use std::path::PathBuf;
use std::time::Instant;

/// Other points per neighbourhood, as the run's UMAP (15 with the point itself).
const K: usize = 14;

struct Args {
    codes: PathBuf,
    epochs: Vec<usize>,
    seed: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        codes: PathBuf::new(),
        epochs: vec![50, 100, 200],
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--codes" => a.codes = PathBuf::from(value),
            "--epochs" => {
                a.epochs = value
                    .split(',')
                    .map(|e| {
                        e.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--epochs: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--seed" => a.seed = value.parse().map_err(|e| format!("--seed: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.codes.as_os_str().is_empty() || a.epochs.contains(&0) {
        return Err(
            "usage: umap_epochs --codes latent.csv [--epochs 50,100,200] [--seed 1]".into(),
        );
    }
    Ok(a)
}

fn main() {
    let fail = |e: String| -> ! {
        eprintln!("umap_epochs: {e}");
        std::process::exit(1);
    };
    let a = parse().unwrap_or_else(|e| fail(e));
    let x = table::read(&a.codes)
        .unwrap_or_else(|e| fail(e.to_string()))
        .values;
    if x.nrows() <= K + 1 {
        fail(format!("{}: too few points", a.codes.display()));
    }
    let started = Instant::now();
    let codes_graph = Neighbors::build(&x, K, a.seed);
    let graph = fuzzy_graph(&codes_graph, K + 1);
    println!(
        "{} points, {} dimensions; graph {:.1} s",
        x.nrows(),
        x.ncols(),
        started.elapsed().as_secs_f64()
    );
    println!("epochs,seconds,neighbours_kept");
    for &epochs in &a.epochs {
        let opts = UmapOptions {
            epochs: Some(epochs),
            ..UmapOptions::new(2, a.seed)
        };
        let started = Instant::now();
        let layout = umap_on(&x, &graph, &opts).unwrap_or_else(|e| fail(e.to_string()));
        let seconds = started.elapsed().as_secs_f64();
        let kept = codes_graph.preserved_in(&Neighbors::exact(&layout, K), K);
        println!("{epochs},{seconds:.1},{kept:.4}");
    }
}
