//! Atlas-sized test data from a labelled dataset (the shipped PBMC3k): `cells` cells drawn
//! with replacement from the labelled source cells, each count thinned binomially (kept with
//! probability `keep`, 0.8 by default), so no two cells are equal; written as anndata writes
//! an `.h5ad` (CSR `X`, chunked, gzip) with the cell type in `obs['cell_type']` and the
//! source cell in `obs['source']`. Seeded (ChaCha): the same file for the same options on
//! any machine and any thread count. Memory stays near one block of cells: the file is
//! streamed ([`super::h5ad_stream`]). `examples/make_atlas.rs` is its command line; the
//! scale tests call it directly.

use super::h5ad_stream::{Frames, StreamedH5ad};
use super::h5ad_write::Column;
use super::Dataset;
use crate::csr::Csr;
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution};
use rayon::prelude::*;
use std::path::Path;

/// Cells generated and appended at a time (each block from its own ChaCha stream).
const BLOCK: usize = 8192;

/// How many cells, from which seed, each count kept with which probability.
#[derive(Clone, Debug)]
pub struct AtlasOptions {
    pub cells: usize,
    pub seed: u64,
    pub keep: f64,
}

impl AtlasOptions {
    /// `cells` cells, seed 1, counts kept with probability 0.8.
    pub fn new(cells: usize) -> Self {
        AtlasOptions {
            cells,
            seed: 1,
            keep: 0.8,
        }
    }
}

/// Cells `sources` of `source`, each count thinned binomially.
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

/// Writes `opts.cells` cells drawn from the cells of `source` that have a label in
/// `cell_types` (source barcode → cell type) to `out`; `progress(cells written)` after each
/// block. Returns the number of nonzeros written.
pub fn write_atlas(
    source: &Dataset,
    cell_types: &std::collections::HashMap<&str, &str>,
    out: &Path,
    opts: &AtlasOptions,
    mut progress: impl FnMut(usize),
) -> Result<usize> {
    if opts.cells == 0 || !(opts.keep > 0.0 && opts.keep <= 1.0) {
        return Err(Error::invalid(format!(
            "an atlas needs at least one cell and a keep probability in (0, 1] (got {} cells, {})",
            opts.cells, opts.keep
        )));
    }
    let labelled: Vec<(usize, &str)> = (0..source.n_cells())
        .filter_map(|i| cell_types.get(source.barcodes[i].as_str()).map(|&t| (i, t)))
        .collect();
    if labelled.is_empty() {
        return Err(Error::invalid(
            "no cell of the source has a label to draw from",
        ));
    }
    // Stream 0 draws the source cells; stream b + 1 thins block b.
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let sources: Vec<usize> = (0..opts.cells)
        .map(|_| rng.random_range(0..labelled.len()))
        .collect();
    let obs_names: Vec<String> = (0..opts.cells).map(|i| format!("cell{i}")).collect();
    let column =
        |f: &dyn Fn(usize) -> String| -> Vec<String> { sources.iter().map(|&s| f(s)).collect() };
    let frames = Frames {
        obs_names: &obs_names,
        obs: vec![
            (
                "cell_type".into(),
                Column::Categorical(
                    column(&|s| labelled[s].1.to_string())
                        .into_iter()
                        .map(Some)
                        .collect(),
                ),
            ),
            (
                "source".into(),
                Column::Strings(column(&|s| source.barcodes[labelled[s].0].clone())),
            ),
        ],
        var_names: &source.gene_names,
        var: vec![("gene_ids".into(), Column::Strings(source.gene_ids.clone()))],
        layers: vec![],
        obsm: vec![],
    };
    let mut file = StreamedH5ad::create(out, frames)?;
    let rows: Vec<usize> = sources.iter().map(|&s| labelled[s].0).collect();
    let blocks: Vec<&[usize]> = rows.chunks(BLOCK).collect();
    let threads = rayon::current_num_threads().max(1);
    let mut nnz = 0usize;
    // A block per thread at a time, appended in order.
    for (w, window) in blocks.chunks(threads).enumerate() {
        let first = w * threads;
        let made: Vec<Csr<f32>> = window
            .par_iter()
            .enumerate()
            .map(|(i, rows)| {
                let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
                rng.set_stream(first as u64 + i as u64 + 1);
                block(&source.matrix, rows, opts.keep, &mut rng)
            })
            .collect();
        for b in &made {
            nnz += b.nnz();
            file.append_rows(b)?;
        }
        progress(((first + window.len()) * BLOCK).min(opts.cells));
    }
    file.finish()?;
    Ok(nnz)
}
