//! Running the binary: a scratch directory per test, `cellvae` with arguments, the checks of
//! a clean failure, a tiny checkpoint and a tiny run, tiny inputs cut from the fixture, and
//! CSV columns looked up by their header.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_cellvae");
/// 60 cells × 40 genes in three groups, a 10x directory with gene IDs and a `labels.csv`
/// (`barcode,cell_type,batch`: batches `b0` and `b1`, 30 cells each).
pub const TINY: &str = "tests/fixtures/tiny";
pub const TINY_LABELS: &str = "tests/fixtures/tiny/labels.csv";

/// Flags that make `cellvae train` on the tiny fixture take a fraction of a second: no QC,
/// 3 epochs of small networks.
pub const TINY_TRAIN: &[&str] = &[
    "--qc",
    "none",
    "--epochs",
    "3",
    "--hidden",
    "16,8",
    "--head-hidden",
    "4",
    "--decoder",
    "4,8,16",
];

/// With [`TINY_TRAIN`]'s, flags that make `cellvae run` on the tiny fixture take about a
/// second: a short t-SNE and few k-means starts.
pub const TINY_EVAL: &[&str] = &[
    "--perplexity",
    "5",
    "--tsne-iterations",
    "300",
    "--n-init",
    "5",
];

/// A fresh, empty scratch directory ([`Scratch`]).
pub fn scratch(name: &str) -> Scratch {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "cellvae-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

/// A test's scratch directory: removed when the test is done with it, kept when the test
/// fails (it is dropped while panicking) for a look at what the run left.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// `cellvae args` on two threads, whatever its outcome.
pub fn cellvae(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("run cellvae")
}

/// `cellvae args`, which must succeed.
pub fn ok(args: &[&str]) -> Output {
    let out = cellvae(args);
    assert!(
        out.status.success(),
        "cellvae {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Checks that `out` (of the case `what`) failed cleanly: exit code `code`, no panic, exactly
/// one `error:` line, and for a run-time error (code 1) that line last. Returns stderr.
pub fn clean_failure(what: &str, out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exit code; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what} panicked:\n{stderr}");
    let error_lines = stderr.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(error_lines, 1, "{what}: expected one error line:\n{stderr}");
    if code == 1 {
        assert!(
            stderr
                .trim_end()
                .lines()
                .last()
                .unwrap()
                .starts_with("error:"),
            "{what}: the error must be the last line:\n{stderr}"
        );
    }
    stderr
}

/// `cellvae args` with its output at `out`, which must fail cleanly (exit 1,
/// [`clean_failure`]) and leave nothing at `out`. Returns the error line.
pub fn fails(args: &[&str], out: &Path) -> String {
    let o = cellvae(args);
    let stderr = clean_failure(&format!("cellvae {args:?}"), &o, 1);
    assert!(
        files(out).is_empty() && !out.is_file(),
        "cellvae {args:?} left output behind: {:?}",
        files(out)
    );
    stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap()
        .to_string()
}

/// Owned arguments as the `&str`s [`ok`], [`cellvae`] and [`fails`] take.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                v.extend(files(&p));
            } else {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// `cellvae train --model model` on the tiny fixture with small networks (no QC, 8,4 hidden,
/// 4,8 decoder) into `out`, plus `extra` flags; it must succeed.
pub fn tiny_train(model: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--model",
        model,
        "--data",
        TINY,
        "--qc",
        "none",
        "--hidden",
        "8,4",
        "--decoder",
        "4,8",
        "--out",
        arg(out),
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

/// A tiny AE checkpoint trained on the tiny fixture, in `dir/ae` beside its `latent.csv`.
pub fn tiny_checkpoint(dir: &Path) -> PathBuf {
    let out = dir.join("ae");
    tiny_train("ae", &out, &["--epochs", "2", "--quiet"]);
    out.join("model.safetensors")
}

/// The arguments of `cellvae run` with [`TINY_TRAIN`]'s and [`TINY_EVAL`]'s flags and `extra`
/// (which names the data), into `out`.
pub fn tiny_run_args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run"];
    args.extend_from_slice(TINY_TRAIN);
    args.extend_from_slice(TINY_EVAL);
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    args
}

/// `cellvae run` on tiny data ([`tiny_run_args`]); it must succeed.
pub fn tiny_run(out: &Path, extra: &[&str]) -> Output {
    ok(&tiny_run_args(out, extra))
}

/// Writes the tiny fixture's cells `cells` and genes `genes` (in the fixture's order) as a 10x
/// directory `dir` (gene IDs and symbols, integer counts). Returns `dir`.
pub fn tiny_subset(dir: &Path, cells: &[usize], genes: &[usize]) -> PathBuf {
    let d = cellvae::io::read_dataset(Path::new(TINY), &Default::default()).unwrap();
    let mut new_index = vec![None; d.n_genes()];
    for (k, &g) in genes.iter().enumerate() {
        new_index[g] = Some(k as u32);
    }
    let sub = cellvae::io::Dataset {
        matrix: d
            .matrix
            .select_rows(cells)
            .reorder_columns(&new_index, genes.len()),
        barcodes: cells.iter().map(|&c| d.barcodes[c].clone()).collect(),
        gene_ids: genes.iter().map(|&g| d.gene_ids[g].clone()).collect(),
        gene_names: genes.iter().map(|&g| d.gene_names[g].clone()).collect(),
        has_gene_ids: d.has_gene_ids,
        batches: None,
    };
    cellvae::io::tenx::write_dir(dir, &sub, "a subset of tests/fixtures/tiny").unwrap();
    dir.to_path_buf()
}

/// The tiny fixture's cells with their batch (`labels.csv`'s `batch` column), in its order.
pub fn tiny_batches() -> Vec<(String, String)> {
    let labels = fs::read_to_string(TINY_LABELS).unwrap();
    column(&labels, "barcode")
        .into_iter()
        .zip(column(&labels, "batch"))
        .collect()
}

/// Writes `rows` as a `barcode,batch` CSV at `path`.
pub fn write_batches(path: &Path, rows: &[(String, String)]) -> PathBuf {
    let mut text = String::from("barcode,batch\n");
    for (barcode, batch) in rows {
        text.push_str(&format!("{barcode},{batch}\n"));
    }
    fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// The header of CSV text, split on commas.
pub fn header(csv: &str) -> Vec<String> {
    csv.lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .map(str::to_string)
        .collect()
}

fn position(csv: &str, name: &str) -> usize {
    let h = header(csv);
    h.iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column '{name}' in {h:?}"))
}

/// The values of the column headed `name`, one per row after the header.
pub fn column(csv: &str, name: &str) -> Vec<String> {
    let at = position(csv, name);
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').nth(at).unwrap_or_default().to_string())
        .collect()
}

/// The values of the column headed `name` as numbers.
pub fn numbers(csv: &str, name: &str) -> Vec<f64> {
    column(csv, name)
        .iter()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|e| panic!("{name}: '{v}' is not a number: {e}"))
        })
        .collect()
}

/// The field `name` of the row whose first field is `key`.
pub fn field(csv: &str, key: &str, name: &str) -> String {
    let at = position(csv, name);
    let row = csv
        .lines()
        .skip(1)
        .find(|l| l.split(',').next() == Some(key))
        .unwrap_or_else(|| panic!("no row '{key}' in:\n{csv}"));
    row.split(',').nth(at).unwrap_or_default().to_string()
}

/// Every line of CSV text, the header's included, without the column headed `name` (for
/// comparing tables that hold wall-clock seconds).
pub fn without_column(csv: &str, name: &str) -> Vec<String> {
    let at = position(csv, name);
    csv.lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(at);
            f.join(",")
        })
        .collect()
}
