//! The recall of the approximate neighbour graph ([`cellvae::analysis::nn_descent`]) against
//! the exact one, on a table of codes (`barcode,<columns…>`, as a run writes `latent.csv`).
//!
//! The approximate graph is built on every point; the exact neighbours are found by brute
//! force for `--queries` points drawn with a fixed seed (every point with `--queries 0`), and
//! the recall is the share of those exact neighbours the approximate graph holds.
//!
//! ```text
//! cargo run --release --example knn_recall -- --codes run/pca/latent.csv --k 14 --queries 2000
//! ```

use cellvae::analysis::neighbors::sq_dist;
use cellvae::analysis::nn_descent::nn_descent;
use cellvae::io::table;
use rand::seq::index;
use rand::SeedableRng;
use rayon::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    codes: PathBuf,
    k: usize,
    queries: usize,
    seed: u64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        codes: PathBuf::new(),
        k: 14,
        queries: 2000,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--codes" => a.codes = PathBuf::from(value()?),
            "--k" => a.k = number(value()?)?,
            "--queries" => a.queries = number(value()?)?,
            "--seed" => a.seed = number(value()?)? as u64,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.codes.as_os_str().is_empty() || a.k == 0 {
        return Err(
            "usage: knn_recall --codes latent.csv [--k 14] [--queries 2000] [--seed 1]".into(),
        );
    }
    Ok(a)
}

fn main() {
    let a = parse().unwrap_or_else(|e| {
        eprintln!("knn_recall: {e}");
        std::process::exit(2);
    });
    let t = table::read(&a.codes).unwrap_or_else(|e| {
        eprintln!("knn_recall: {e}");
        std::process::exit(1);
    });
    let x = t.values;
    let n = x.nrows();
    let k = a.k.min(n.saturating_sub(1));
    if k == 0 {
        eprintln!("knn_recall: {}: fewer than two points", a.codes.display());
        std::process::exit(1);
    }
    let started = Instant::now();
    let approx = nn_descent(&x, k, a.seed);
    let approx_s = started.elapsed().as_secs_f64();

    let queries: Vec<usize> = if a.queries == 0 || a.queries >= n {
        (0..n).collect()
    } else {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
        let mut q = index::sample(&mut rng, n, a.queries).into_vec();
        q.sort_unstable();
        q
    };
    let started = Instant::now();
    let hits: usize = queries
        .par_iter()
        .map(|&i| {
            let mut all: Vec<(f64, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (sq_dist(&x, i, j), j as u32))
                .collect();
            all.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let found = approx.nearest(i, k).0;
            all[..k].iter().filter(|(_, j)| found.contains(j)).count()
        })
        .sum();
    let brute_s = started.elapsed().as_secs_f64();
    println!(
        "{n} points, {} dims, k = {k}: NN-descent {approx_s:.1} s; recall {:.4} on {} queries \
         (brute force {brute_s:.1} s for them, about {:.0} s for all points)",
        x.ncols(),
        hits as f64 / (queries.len() * k) as f64,
        queries.len(),
        brute_s * n as f64 / queries.len() as f64
    );
}
