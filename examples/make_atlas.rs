//! Atlas-sized test data from the shipped PBMC3k: `--cells N` cells drawn with replacement
//! from the 2,638 labelled PBMC3k cells, each count thinned binomially (kept with
//! probability `--keep`, 0.8), so no two cells are equal; written as anndata writes an
//! `.h5ad` (CSR `X`, chunked, gzip) with the cell type in `obs['cell_type']` and the source
//! cell in `obs['source']`. Seeded (ChaCha): the same file for the same flags on any machine
//! and any thread count. Memory stays near one block of cells: the file is streamed.
//!
//! ```text
//! cargo run --release --example make_atlas -- --cells 100000 --out atlas100k.h5ad
//! ```

use cellvae::csr::Csr;
use cellvae::io::h5ad_stream::{Frames, StreamedH5ad};
use cellvae::io::h5ad_write::Column;
use cellvae::io::{labels, read_dataset, ReadOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Cells generated and appended at a time (each block from its own ChaCha stream).
const BLOCK: usize = 8192;

struct Args {
    cells: usize,
    out: PathBuf,
    seed: u64,
    keep: f64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        cells: 0,
        out: PathBuf::new(),
        seed: 1,
        keep: 0.8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--cells" => a.cells = value()?.parse().map_err(|e| format!("--cells: {e}"))?,
            "--out" => a.out = PathBuf::from(value()?),
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--keep" => a.keep = value()?.parse().map_err(|e| format!("--keep: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.cells == 0 || a.out.as_os_str().is_empty() {
        return Err("usage: make_atlas --cells N --out X.h5ad [--seed S] [--keep P]".into());
    }
    if !(a.keep > 0.0 && a.keep <= 1.0) {
        return Err("--keep must be in (0, 1]".into());
    }
    Ok(a)
}

/// Cells `start..start + sources.len()`: each source cell's counts thinned binomially.
fn block(source: &Csr<f32>, sources: &[usize], keep: f64, rng: &mut ChaCha8Rng) -> Csr<f32> {
    let mut out = Csr {
        n_rows: sources.len(),
        n_cols: source.n_cols,
        indptr: vec![0],
        indices: Vec::new(),
        data: Vec::new(),
    };
    for &s in sources {
        let (cols, values) = source.row(s);
        for (&j, &c) in cols.iter().zip(values) {
            let kept = Binomial::new(c as u64, keep)
                .expect("p in (0, 1]")
                .sample(rng);
            if kept > 0 {
                out.indices.push(j);
                out.data.push(kept as f32);
            }
        }
        out.indptr.push(out.indices.len());
    }
    out
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("make_atlas: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("make_atlas: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> cellvae::Result<()> {
    let started = Instant::now();
    let data = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default())?;
    let types = labels::read(Path::new("data/pbmc3k/labels.csv"), None)?;
    let by_barcode = types.map();
    let labelled: Vec<(usize, String)> = (0..data.n_cells())
        .filter_map(|i| {
            by_barcode
                .get(data.barcodes[i].as_str())
                .map(|t| (i, t.to_string()))
        })
        .collect();
    // Stream 0 draws the source cells; stream b + 1 thins block b.
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let sources: Vec<usize> = (0..a.cells)
        .map(|_| rng.random_range(0..labelled.len()))
        .collect();
    let obs_names: Vec<String> = (0..a.cells).map(|i| format!("cell{i}")).collect();
    let frames = Frames {
        obs_names: &obs_names,
        obs: vec![
            (
                "cell_type".into(),
                Column::Categorical(
                    sources
                        .iter()
                        .map(|&s| Some(labelled[s].1.clone()))
                        .collect(),
                ),
            ),
            (
                "source".into(),
                Column::Strings(
                    sources
                        .iter()
                        .map(|&s| data.barcodes[labelled[s].0].clone())
                        .collect(),
                ),
            ),
        ],
        var_names: &data.gene_names,
        var: vec![("gene_ids".into(), Column::Strings(data.gene_ids.clone()))],
        layers: vec![],
        obsm: vec![],
    };
    let mut out = StreamedH5ad::create(&a.out, frames)?;
    let rows: Vec<usize> = sources.iter().map(|&s| labelled[s].0).collect();
    let blocks: Vec<&[usize]> = rows.chunks(BLOCK).collect();
    let mut nnz = 0usize;
    // Blocks are generated two at a time per thread pair and appended in order.
    for (w, window) in blocks
        .chunks(rayon::current_num_threads().max(1))
        .enumerate()
    {
        let first = w * rayon::current_num_threads().max(1);
        let made: Vec<Csr<f32>> = window
            .par_iter()
            .enumerate()
            .map(|(i, rows)| {
                let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
                rng.set_stream(first as u64 + i as u64 + 1);
                block(&data.matrix, rows, a.keep, &mut rng)
            })
            .collect();
        for b in &made {
            nnz += b.nnz();
            out.append_rows(b)?;
        }
        let done = ((first + window.len()) * BLOCK).min(a.cells);
        let secs = started.elapsed().as_secs_f64();
        eprint!(
            "\rmake_atlas: {done} of {} cells, {:.0} cells/s   ",
            a.cells,
            done as f64 / secs
        );
    }
    out.finish()?;
    eprintln!(
        "\nmake_atlas: wrote {} ({} cells × {} genes, {nnz} nonzeros) in {:.1}s",
        a.out.display(),
        a.cells,
        data.n_genes(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
