//! Atlas-sized test data from the shipped PBMC3k ([`cellvae::io::atlas`]): `--cells N` cells
//! drawn with replacement from the 2,638 labelled PBMC3k cells, each count thinned binomially
//! (kept with probability `--keep`, 0.8), streamed to an `.h5ad` with `obs['cell_type']`.
//! The same file for the same flags on any machine and any thread count.
//!
//! ```text
//! cargo run --release --example make_atlas -- --cells 100000 --out atlas100k.h5ad
//! ```

use cellvae::io::atlas::{write_atlas, AtlasOptions};
use cellvae::io::{labels, read_dataset, ReadOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn parse() -> Result<(AtlasOptions, PathBuf), String> {
    let mut a = AtlasOptions::new(0);
    let mut out = PathBuf::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--cells" => a.cells = value()?.parse().map_err(|e| format!("--cells: {e}"))?,
            "--out" => out = PathBuf::from(value()?),
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--keep" => a.keep = value()?.parse().map_err(|e| format!("--keep: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.cells == 0 || out.as_os_str().is_empty() {
        return Err("usage: make_atlas --cells N --out X.h5ad [--seed S] [--keep P]".into());
    }
    Ok((a, out))
}

fn main() {
    let (opts, out) = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("make_atlas: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&opts, &out) {
        eprintln!("make_atlas: {e}");
        std::process::exit(1);
    }
}

fn run(opts: &AtlasOptions, out: &Path) -> cellvae::Result<()> {
    let started = Instant::now();
    let data = read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default())?;
    let types = labels::read(Path::new("data/pbmc3k/labels.csv"), None)?;
    let nnz = write_atlas(&data, &types.map(), out, opts, |done| {
        let rate = done as f64 / started.elapsed().as_secs_f64();
        eprint!(
            "\rmake_atlas: {done} of {} cells, {rate:.0} cells/s   ",
            opts.cells
        );
    })?;
    eprintln!(
        "\nmake_atlas: wrote {} ({} cells × {} genes, {nnz} nonzeros) in {:.1}s",
        out.display(),
        opts.cells,
        data.n_genes(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
