//! The binary end to end: the bad-input corpus, a small real run, determinism, and the
//! single-step commands. Every run writes into its own temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_cellvae");
const TINY: &str = "tests/fixtures/tiny";

/// A fresh, empty scratch directory.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "cellvae-test-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn cellvae(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("run cellvae")
}

fn ok(args: &[&str]) -> Output {
    let out = cellvae(args);
    assert!(
        out.status.success(),
        "cellvae {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
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

/// A tiny AE checkpoint trained on the tiny fixture.
fn tiny_checkpoint(dir: &Path) -> PathBuf {
    let out = dir.join("ae");
    ok(&[
        "train",
        "--model",
        "ae",
        "--data",
        TINY,
        "--qc",
        "none",
        "--epochs",
        "2",
        "--hidden",
        "8,4",
        "--decoder",
        "4,8",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    out.join("model.safetensors")
}

#[test]
fn bad_inputs_fail_cleanly() {
    let work = scratch("bad");
    let ckpt = tiny_checkpoint(&work);
    let truncated = work.join("truncated.safetensors");
    let bytes = fs::read(&ckpt).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let manifest = fs::read_to_string("tests/bad_inputs/cases.tsv").unwrap();
    let mut n = 0;
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, code, args) = (f[0], f[1].parse::<i32>().unwrap(), f[2]);
        let out_dir = work.join(format!("out-{name}"));
        let args: Vec<String> = args
            .split(' ')
            .map(|a| {
                a.replace("{case}", "tests/bad_inputs")
                    .replace("{tiny}", TINY)
                    .replace("{out}", out_dir.to_str().unwrap())
                    .replace("{ckpt_truncated}", truncated.to_str().unwrap())
                    .replace("{ckpt}", ckpt.to_str().unwrap())
            })
            .collect();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cellvae(&argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{name}: exit code; stderr:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
        let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            error_lines.len(),
            1,
            "{name}: expected one error line:\n{stderr}"
        );
        if code == 1 {
            assert!(
                stderr
                    .trim_end()
                    .lines()
                    .last()
                    .unwrap()
                    .starts_with("error:"),
                "{name}: the error must be the last line:\n{stderr}"
            );
        }
        assert!(
            files(&out_dir).is_empty(),
            "{name}: left output behind: {:?}",
            files(&out_dir)
        );
        n += 1;
    }
    assert!(n >= 25, "the corpus has only {n} cases");
}

#[test]
fn preprocess_writes_a_10x_directory_and_reports_json() {
    let out = scratch("pre");
    let o = ok(&[
        "preprocess",
        "--data",
        TINY,
        "--min-genes",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["cells_in"], 60);
    assert_eq!(line["genes_in"], 40);
    for f in [
        "matrix.mtx.gz",
        "features.tsv.gz",
        "barcodes.tsv.gz",
        "qc.csv",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // Cell Ranger 3's layout, as scanpy's read_10x_mtx and Seurat's Read10X expect it: three
    // tab-separated columns, the last `Gene Expression`, and no genes.tsv beside it.
    assert!(!out.join("genes.tsv.gz").exists() && !out.join("genes.tsv").exists());
    let mut features = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(fs::File::open(out.join("features.tsv.gz")).unwrap()),
        &mut features,
    )
    .unwrap();
    assert_eq!(features.lines().count(), 40);
    for line in features.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!((f.len(), f[2]), (3, "Gene Expression"), "{line}");
    }
    // The written directory reads back as already-normalized input.
    let again = scratch("pre2");
    let o2 = ok(&[
        "preprocess",
        "--data",
        out.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    let line2: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(line2["cells_kept"], line["cells_kept"]);
    assert_eq!(line2["nnz"], line["nnz"]);
    assert!(String::from_utf8_lossy(&o2.stderr).contains("already normalized"));
}

/// The whole pipeline on the tiny fixture, twice with one seed: byte-identical outputs.
#[test]
fn run_is_complete_and_deterministic() {
    let run = |name: &str, threads: &str| {
        let out = scratch(name);
        ok(&[
            "run",
            "--data",
            TINY,
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
            "--perplexity",
            "5",
            "--tsne-iterations",
            "300",
            "--n-init",
            "5",
            "--threads",
            threads,
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        out
    };
    let a = run("det-a", "2");
    let b = run("det-b", "2");
    let c = run("det-c", "1");
    let summary = fs::read_to_string(a.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 5, "{summary}");
    for model in ["ae", "vae", "vsc", "pca"] {
        for f in [
            "latent.csv",
            "tsne2d.csv",
            "tsne3d.csv",
            "clusters.csv",
            "leiden.csv",
            "metrics.json",
            "tsne2d.png",
            "tsne3d.png",
            "umap.csv",
            "umap.png",
            "markers.csv",
            "markers_dotplot.png",
            "confusion.png",
        ] {
            assert!(a.join(model).join(f).is_file(), "{model}/{f}");
        }
    }
    for f in ["scores.png", "losses.png", "report.md", "cellvae.h5ad"] {
        assert!(a.join(f).is_file(), "{f}");
    }
    // The run's AnnData reads back: the cells and genes as trained on, the labels, and the
    // raw counts as a layer.
    let h5ad = a.join("cellvae.h5ad");
    let opts = cellvae::io::hdf5::H5adOptions::default();
    let x = cellvae::io::hdf5::read_h5ad(&h5ad, &opts).unwrap();
    assert_eq!((x.n_cells(), x.n_genes()), (60, 40));
    assert!(!x.is_integer(), "X holds the normalized values");
    let counts = cellvae::io::hdf5::H5adOptions {
        layer: Some("counts".into()),
        raw: false,
    };
    let raw_counts = cellvae::io::hdf5::read_h5ad(&h5ad, &counts).unwrap();
    assert!(raw_counts.is_integer() && raw_counts.matrix.nnz() == x.matrix.nnz());
    let labels = cellvae::io::hdf5::read_h5ad_labels(&h5ad, "labels").unwrap();
    assert_eq!(labels.entries.len(), 60);
    for column in ["vae_kmeans", "vae_leiden"] {
        let clusters = cellvae::io::hdf5::read_h5ad_labels(&h5ad, column).unwrap();
        assert!(
            clusters.entries.iter().all(|(_, c)| c.is_some()),
            "{column}"
        );
    }
    // Every protocol is scored in summary.csv, which keeps its first columns.
    let header: Vec<&str> = summary.lines().next().unwrap().split(',').collect();
    assert_eq!(header[..7], cellvae::report::summary::SUMMARY_COLUMNS[..7]);
    assert_eq!(header[6], "latent_kmeans_ari");
    for row in summary.lines().skip(1) {
        let f: Vec<&str> = row.split(',').collect();
        let col = |name: &str| f[header.iter().position(|h| *h == name).unwrap()];
        for name in [
            "nmi_geometric",
            "latent_kmeans_nmi",
            "leiden_nmi",
            "leiden_ari",
        ] {
            // ARI can dip just below 0 (3 epochs barely train the networks).
            let v: f64 = col(name).parse().unwrap();
            assert!((-0.5..=1.0).contains(&v), "{name} {v}");
        }
        assert_eq!(col("seed"), "42");
    }
    let mut compared = 0;
    for f in files(&a) {
        let name = f.file_name().unwrap().to_str().unwrap();
        if !(name.ends_with(".csv") || name.ends_with(".safetensors") || name.ends_with(".h5ad"))
            || name == "loss.csv"
            || name == "summary.csv"
        {
            continue;
        }
        let rel = f.strip_prefix(&a).unwrap();
        let bytes = fs::read(&f).unwrap();
        assert_eq!(
            bytes,
            fs::read(b.join(rel)).unwrap(),
            "{} differs between two runs",
            rel.display()
        );
        assert_eq!(
            bytes,
            fs::read(c.join(rel)).unwrap(),
            "{} differs between 1 and 2 threads",
            rel.display()
        );
        compared += 1;
    }
    assert!(compared >= 18);
    // summary.csv and loss.csv hold wall-clock seconds; everything else in them must agree.
    let strip = |p: &Path, drop: usize| -> Vec<String> {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(',').collect();
                f.remove(drop);
                f.join(",")
            })
            .collect()
    };
    assert_eq!(
        strip(&a.join("summary.csv"), 7),
        strip(&b.join("summary.csv"), 7)
    );
    assert_eq!(
        strip(&a.join("ae/loss.csv"), 7),
        strip(&c.join("ae/loss.csv"), 7)
    );
}

#[test]
fn embed_reproduces_the_training_codes_and_matches_genes_by_id() {
    let work = scratch("embed");
    let ckpt = tiny_checkpoint(&work);
    let out = work.join("codes.csv");
    ok(&[
        "embed",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data",
        TINY,
        "--qc",
        "none",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read(&out).unwrap(),
        fs::read(work.join("ae/latent.csv")).unwrap()
    );
    // The same genes in another order (a CSV with the genes reversed): identical codes.
    let m = cellvae::io::read_dataset(Path::new(TINY), &Default::default()).unwrap();
    let dense = m.matrix.to_dense();
    let mut csv = String::from("barcode");
    for g in m.gene_names.iter().rev() {
        csv += &format!(",{g}");
    }
    csv += "\n";
    for (b, row) in m.barcodes.iter().zip(dense.rows()) {
        csv += b;
        for v in row.iter().rev() {
            csv += &format!(",{v}");
        }
        csv += "\n";
    }
    let csv_path = work.join("reversed.csv");
    fs::write(&csv_path, csv).unwrap();
    let out2 = work.join("codes2.csv");
    ok(&[
        "embed",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data",
        csv_path.to_str().unwrap(),
        "--qc",
        "none",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&out).unwrap(), fs::read(&out2).unwrap());
}

#[test]
fn tsne_cluster_score_chain() {
    let work = scratch("chain");
    let ckpt = tiny_checkpoint(&work);
    let _ = ckpt;
    let latent = work.join("ae/latent.csv");
    let emb = work.join("tsne.csv");
    let clusters = work.join("clusters.csv");
    ok(&[
        "tsne",
        "--input",
        latent.to_str().unwrap(),
        "--perplexity",
        "5",
        "--out",
        emb.to_str().unwrap(),
    ]);
    ok(&[
        "cluster",
        "--input",
        emb.to_str().unwrap(),
        "--k",
        "3",
        "--out",
        clusters.to_str().unwrap(),
    ]);
    let o = ok(&[
        "score",
        "--truth",
        "tests/fixtures/tiny/labels.csv",
        "--pred",
        clusters.to_str().unwrap(),
    ]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["n"], 60);
    // Leiden on the codes' kNN graph: the resolution bisected to 3 clusters, or given.
    let leiden = |extra: &[&str]| {
        let out = work.join("leiden.csv");
        let mut args = vec![
            "cluster",
            "--method",
            "leiden",
            "--input",
            latent.to_str().unwrap(),
            "--neighbors",
            "10",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = ok(&args);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (j, fs::read_to_string(out).unwrap())
    };
    let (j, csv) = leiden(&["--k", "3"]);
    assert_eq!(j["clusters"], 3, "{j}");
    assert!(j["resolution"].as_f64().unwrap() > 0.0);
    assert_eq!(csv.lines().count(), 61);
    assert_eq!(leiden(&["--k", "3"]).1, csv, "same seed, same clusters");
    let (j, _) = leiden(&["--resolution", "1.0"]);
    assert_eq!(j["resolution"], 1.0);
    let o = cellvae(&[
        "cluster",
        "--method",
        "leiden",
        "--input",
        latent.to_str().unwrap(),
        "--out",
        work.join("x.csv").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --k or --resolution"));
    // UMAP of the same codes: the t-SNE table's layout, and the same bytes for the same seed.
    let umap = |name: &str| {
        let out = work.join(name);
        ok(&[
            "umap",
            "--input",
            latent.to_str().unwrap(),
            "--neighbors",
            "10",
            "--out",
            out.to_str().unwrap(),
        ]);
        fs::read_to_string(out).unwrap()
    };
    let u = umap("umap-a.csv");
    assert!(u.starts_with("barcode,umap1,umap2\n"), "{u}");
    assert_eq!(u.lines().count(), 61);
    assert_eq!(u, umap("umap-b.csv"));
    for k in [
        "nmi_geometric",
        "nmi_arithmetic",
        "ari",
        "homogeneity",
        "completeness",
    ] {
        assert!(s[k].as_f64().unwrap().is_finite(), "{k}");
    }
    // Scoring the labels against themselves (another column name) is perfect.
    let o = ok(&[
        "score",
        "--truth",
        "tests/fixtures/tiny/labels.csv",
        "--label-column",
        "cell_type",
        "--pred",
        "tests/fixtures/tiny/labels.csv",
    ]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["ari"], 1.0);
}

#[test]
fn help_and_version() {
    let o = ok(&["--version"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains(env!("CARGO_PKG_VERSION")));
    for cmd in [
        "run",
        "preprocess",
        "train",
        "embed",
        "tsne",
        "cluster",
        "score",
    ] {
        let o = ok(&[cmd, "--help"]);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("default"),
            "{cmd} --help shows defaults"
        );
    }
}

/// Determinism where every parallel pass really splits: 600 cells × 1,000 genes with the
/// default 128-wide layers and batches of 256, so the ReLU/bias passes (256 × 128 ≥ 2¹⁵), the
/// Adam update of the first layer (128,000 ≥ 2¹⁶ values), the GEMMs (≥ 2¹⁸ multiply-adds),
/// the batch transpose's bands and the output layer's rows all run in parallel with 2
/// threads and serially with 1. Checkpoints, codes, t-SNE, UMAP and clusters must be
/// byte-identical.
#[test]
fn run_is_deterministic_on_a_wide_input() {
    let dir = scratch("wide-input");
    let csv = dir.join("counts.csv");
    let (cells, genes) = (600usize, 1000usize);
    let mut text = String::from("barcode");
    for g in 0..genes {
        text.push_str(&format!(",G{g}"));
    }
    text.push('\n');
    let mut state = 12345u64;
    for c in 0..cells {
        text.push_str(&format!("C{c}"));
        for g in 0..genes {
            // A small deterministic LCG: counts with ~85 % zeros and a cell-type-like block.
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 33) as f64 / (1u64 << 31) as f64;
            let boost = if (g / 100) == (c % 6) { 3.0 } else { 1.0 };
            let count = if u < 0.15 * boost {
                1 + (u * 37.0) as u32 % 5
            } else {
                0
            };
            text.push_str(&format!(",{count}"));
        }
        text.push('\n');
    }
    fs::write(&csv, text).unwrap();
    let run = |threads: &str| {
        let out = dir.join(format!("out-{threads}"));
        ok(&[
            "run",
            "--data",
            csv.to_str().unwrap(),
            "--qc",
            "none",
            "--epochs",
            "2",
            "--k",
            "6",
            "--perplexity",
            "20",
            "--tsne-iterations",
            "250",
            "--n-init",
            "3",
            "--threads",
            threads,
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ]);
        out
    };
    let (one, two) = (run("1"), run("2"));
    let mut compared = 0;
    for f in files(&two) {
        let name = f.file_name().unwrap().to_str().unwrap();
        if name.ends_with(".safetensors")
            || [
                "latent.csv",
                "tsne2d.csv",
                "tsne3d.csv",
                "umap.csv",
                "clusters.csv",
            ]
            .contains(&name)
        {
            let rel = f.strip_prefix(&two).unwrap();
            assert!(
                fs::read(&f).unwrap() == fs::read(one.join(rel)).unwrap(),
                "{} differs between 1 and 2 threads",
                rel.display()
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 3 * 6 + 5, "files compared");
}

/// An absurd thread count is refused at once (it used to hang while the threads started).
#[test]
fn absurd_thread_count_fails_fast() {
    let started = std::time::Instant::now();
    let out = cellvae(&[
        "score",
        "--threads",
        "100000",
        "--truth",
        "x.csv",
        "--pred",
        "x.csv",
    ]);
    assert!(
        started.elapsed().as_secs_f64() < 1.0,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: --threads 100000"), "{err}");
}

/// `cellvae markers` on the tiny fixture's cell types, five cells left without a cluster: the
/// run says so, and the table has scanpy's columns, `--n-genes` rows per cluster in order of
/// score, valid p-values, and adjusted p-values no smaller than the raw ones.
#[test]
fn markers_rank_genes_per_cluster() {
    let dir = scratch("markers");
    let labels = fs::read_to_string(format!("{TINY}/labels.csv")).unwrap();
    let mut clusters = String::from("barcode,cluster\n");
    for line in labels.lines().skip(6) {
        let f: Vec<&str> = line.split(',').collect();
        clusters.push_str(&format!("{},{}\n", f[0], f[1]));
    }
    let clusters_csv = dir.join("clusters.csv");
    fs::write(&clusters_csv, clusters).unwrap();
    let out = dir.join("markers.csv");
    let o = ok(&[
        "markers",
        "--data",
        TINY,
        "--qc",
        "none",
        "--clusters",
        clusters_csv.to_str().unwrap(),
        "--n-genes",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("5 cells of the data have no cluster"),
        "{stderr}"
    );
    let table = fs::read_to_string(&out).unwrap();
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some("group,names,scores,logfoldchanges,pvals,pvals_adj")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let groups: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let distinct: std::collections::BTreeSet<&str> = groups.iter().copied().collect();
    assert!(distinct.len() >= 2);
    assert_eq!(rows.len(), 5 * distinct.len());
    for chunk in rows.chunks(5) {
        let num = |r: &Vec<String>, k: usize| r[k].parse::<f64>().unwrap();
        for pair in chunk.windows(2) {
            assert_eq!(pair[0][0], pair[1][0], "one group per block of 5");
            assert!(num(&pair[0], 2) >= num(&pair[1], 2), "sorted by score");
        }
        for r in chunk {
            let (p, adj) = (num(r, 4), num(r, 5));
            assert!((0.0..=1.0).contains(&p) && adj >= p && adj <= 1.0, "{r:?}");
        }
    }
}

/// `--hvg N --hvg-flavor seurat --scale`: the checkpoint stores the genes and the scaling, and
/// `embed` (given neither flag) reproduces the training codes from the raw input.
#[test]
fn scaled_hvg_model_embeds_new_cells_the_same_way() {
    let work = scratch("scaled");
    let out = work.join("vae");
    ok(&[
        "train",
        "--model",
        "vae",
        "--data",
        TINY,
        "--qc",
        "none",
        "--hvg",
        "6",
        "--hvg-flavor",
        "seurat",
        "--scale",
        "--epochs",
        "2",
        "--hidden",
        "8,4",
        "--decoder",
        "4,8",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let ckpt = out.join("model.safetensors");
    let (net, meta) = cellvae::train::checkpoint::load(&ckpt).unwrap();
    let scaling = meta.scaling.expect("the scaling is stored");
    assert!(net.n_genes >= 6 && scaling.mean.len() == net.n_genes);
    let codes = work.join("codes.csv");
    let o = ok(&[
        "embed",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--data",
        TINY,
        "--qc",
        "none",
        "--out",
        codes.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(
        fs::read(&codes).unwrap(),
        fs::read(out.join("latent.csv")).unwrap()
    );
    // More genes asked for than there are: all kept, and said so.
    let o = ok(&[
        "train",
        "--model",
        "ae",
        "--data",
        TINY,
        "--qc",
        "none",
        "--hvg",
        "100000",
        "--epochs",
        "1",
        "--hidden",
        "8,4",
        "--decoder",
        "4,8",
        "--out",
        work.join("all").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("all are kept"), "{err}");
}

/// `run --seeds`: one folder per seed, every row in summary.csv with its seed, and
/// summary_mean.csv holding the mean and sample sd of each column; with a validation split
/// the held-out loss is filled in.
#[test]
fn several_seeds_are_summarised() {
    let out = scratch("seeds");
    ok(&[
        "run",
        "--data",
        TINY,
        "--qc",
        "none",
        "--models",
        "ae,pca",
        "--seeds",
        "1,2,3",
        "--val-fraction",
        "0.2",
        "--kl-warmup",
        "2",
        "--pca-components",
        "3",
        "--epochs",
        "2",
        "--hidden",
        "16,8",
        "--decoder",
        "8,16",
        "--perplexity",
        "5",
        "--tsne-iterations",
        "250",
        "--n-init",
        "3",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    for s in 1..=3 {
        assert!(out.join(format!("seed-{s}/ae/leiden.csv")).is_file());
        assert!(out.join(format!("seed-{s}/report.md")).is_file());
    }
    // The held-out cells are written, a fifth of the cells (the split's fraction), the same
    // ones for every seed, each among the cells of the codes.
    let held_out = fs::read_to_string(out.join("seed-1/ae/heldout.csv")).unwrap();
    let codes = fs::read_to_string(out.join("seed-1/ae/latent.csv")).unwrap();
    let cells: Vec<&str> = codes
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let held: Vec<&str> = held_out.lines().skip(1).collect();
    assert!(held_out.starts_with("barcode\n"), "{held_out}");
    assert_eq!(held.len(), (0.2 * cells.len() as f64).round() as usize);
    assert!(held.iter().all(|b| cells.contains(b)));
    assert_eq!(
        held_out,
        fs::read_to_string(out.join("seed-3/ae/heldout.csv")).unwrap()
    );
    let pca_codes = fs::read_to_string(out.join("seed-1/pca/latent.csv")).unwrap();
    assert!(
        pca_codes.starts_with("barcode,pc1,pc2,pc3\n"),
        "{pca_codes}"
    );
    let summary = fs::read_to_string(out.join("summary.csv")).unwrap();
    let header: Vec<&str> = summary.lines().next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = summary
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 6);
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let ae: Vec<&Vec<&str>> = rows.iter().filter(|r| r[0] == "ae").collect();
    assert_eq!(
        ae.iter().map(|r| r[col("seed")]).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    let nmi: Vec<f64> = ae
        .iter()
        .map(|r| r[col("leiden_nmi")].parse().unwrap())
        .collect();
    assert!(ae.iter().all(|r| r[col("val_loss")].parse::<f64>().is_ok()));
    let mean_csv = fs::read_to_string(out.join("summary_mean.csv")).unwrap();
    let mh: Vec<&str> = mean_csv.lines().next().unwrap().split(',').collect();
    let ae_mean: Vec<&str> = mean_csv
        .lines()
        .find(|l| l.starts_with("ae,"))
        .unwrap()
        .split(',')
        .collect();
    let at = |name: &str| -> f64 {
        ae_mean[mh.iter().position(|h| *h == name).unwrap()]
            .parse()
            .unwrap()
    };
    assert_eq!(ae_mean[1], "3");
    let m = nmi.iter().sum::<f64>() / 3.0;
    let sd = (nmi.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!((at("leiden_nmi_mean") - m).abs() < 1e-6);
    assert!((at("leiden_nmi_sd") - sd).abs() < 1e-6);
    let report = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("codes → Leiden(k) NMI"), "{report}");
}

/// `--likelihood nb`: trains on integer counts (the checkpoint carries `px_r`, one value per
/// gene, and a held-out loss is reported), and non-integer input is a clear error.
#[test]
fn nb_likelihood_trains_on_counts_only() {
    let work = scratch("nb");
    let out = work.join("vsc");
    ok(&[
        "train",
        "--model",
        "vsc",
        "--data",
        TINY,
        "--qc",
        "none",
        "--likelihood",
        "nb",
        "--val-fraction",
        "0.2",
        "--epochs",
        "3",
        "--hidden",
        "8,4",
        "--decoder",
        "4,8",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let (net, meta) = cellvae::train::checkpoint::load(&out.join("model.safetensors")).unwrap();
    assert_eq!(meta.config.likelihood, cellvae::models::Likelihood::Nb);
    let px_r = net
        .state_dict()
        .into_iter()
        .find(|t| t.0 == "px_r")
        .unwrap();
    assert_eq!(px_r.1, vec![net.n_genes]);
    let loss = fs::read_to_string(out.join("loss.csv")).unwrap();
    let last: Vec<&str> = loss.lines().last().unwrap().split(',').collect();
    assert!(
        last[5].parse::<f64>().unwrap() > 0.0,
        "held-out loss: {loss}"
    );
    // Normalized (non-integer) input cannot feed a count likelihood.
    let csv = work.join("normalized.csv");
    fs::write(
        &csv,
        "barcode,g1,g2,g3\nc1,0.5,1.25,0\nc2,2.5,0,1.5\nc3,0,0.75,2\n",
    )
    .unwrap();
    let o = cellvae(&[
        "train",
        "--model",
        "ae",
        "--data",
        csv.to_str().unwrap(),
        "--likelihood",
        "nb",
        "--epochs",
        "1",
        "--out",
        work.join("bad").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("needs integer counts"),
        "{err}"
    );
    assert!(!work.join("bad/model.safetensors").exists());
}

/// `--preset scrna` on a small count matrix with fewer genes than its 2,000 HVGs: every gene
/// is kept (and said), the input is scaled, a validation split is held out, the PCA row has
/// up to 50 components, and the run writes the usual outputs.
#[test]
fn scrna_preset_runs_on_a_small_count_matrix() {
    let out = scratch("scrna");
    let o = ok(&[
        "run",
        "--preset",
        "scrna",
        "--data",
        TINY,
        "--qc",
        "none",
        "--epochs",
        "3",
        "--perplexity",
        "5",
        "--tsne-iterations",
        "250",
        "--n-init",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("all are kept") && err.contains("scaled"),
        "{err}"
    );
    let summary = fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 5, "{summary}");
    let (_, meta) = cellvae::train::checkpoint::load(&out.join("vae/model.safetensors")).unwrap();
    assert_eq!(meta.config.preset, cellvae::models::Preset::Scrna);
    assert!(meta.scaling.is_some());
    let loss = fs::read_to_string(out.join("vae/loss.csv")).unwrap();
    let last: Vec<&str> = loss.lines().last().unwrap().split(',').collect();
    assert!(last[5].parse::<f64>().is_ok(), "held-out loss: {loss}");
    let pcs = fs::read_to_string(out.join("pca/latent.csv")).unwrap();
    let columns = pcs.lines().next().unwrap().split(',').count() - 1;
    assert_eq!(columns, 40, "50 components asked, 40 genes: {columns}");
    let report = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("Three protocols"));
}
