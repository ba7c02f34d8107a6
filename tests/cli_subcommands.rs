//! The single-step commands end to end: `preprocess`, `embed`, the `tsne` → `cluster` →
//! `score` chain with `umap` and Leiden, `markers`, and the help and version. Every command
//! writes into its own scratch directory.

mod common;

use common::cli::*;
use std::fs;
use std::path::Path;

/// `preprocess`: a Cell Ranger 3 directory with `qc.csv` and a JSON line of counts, which
/// reads back as already-normalized input.
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

/// `embed` with a checkpoint reproduces `train`'s codes, also from a CSV whose genes come
/// in another order.
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

/// A trained model's codes through `tsne`, `cluster` (k-means and Leiden) and `score`, and
/// through `umap`.
#[test]
fn tsne_cluster_score_chain() {
    let work = scratch("chain");
    // The codes `train` writes beside its checkpoint.
    let latent = tiny_checkpoint(&work).with_file_name("latent.csv");
    assert!(latent.is_file(), "{}", latent.display());
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
        TINY_LABELS,
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
        TINY_LABELS,
        "--label-column",
        "cell_type",
        "--pred",
        TINY_LABELS,
    ]);
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["ari"], 1.0);
}

/// `--version` prints the crate's version; `--help` lists every subcommand; each
/// subcommand's help shows its defaults, and `run --help` its presets and batch flags.
#[test]
fn help_and_version() {
    let o = ok(&["--version"]);
    let version = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        version.trim(),
        format!("cellvae {}", env!("CARGO_PKG_VERSION"))
    );
    let o = ok(&["--help"]);
    let help = String::from_utf8_lossy(&o.stdout);
    let listed: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let commands = [
        "run",
        "preprocess",
        "train",
        "embed",
        "tsne",
        "umap",
        "cluster",
        "markers",
        "evaluate",
        "score",
    ];
    for cmd in commands {
        assert!(listed.contains(&cmd), "--help lacks {cmd}:\n{help}");
    }
    for cmd in commands {
        let o = ok(&[cmd, "--help"]);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("default"),
            "{cmd} --help shows defaults"
        );
    }
    let o = ok(&["run", "--help"]);
    let run = String::from_utf8_lossy(&o.stdout);
    for shown in [
        "--preset",
        "paper",
        "seed-code",
        "scrna",
        "--data",
        "--batch-key",
        "--batches",
        "--models",
        "--seeds",
    ] {
        assert!(run.contains(shown), "run --help lacks {shown}:\n{run}");
    }
}

/// `cellvae markers` on the tiny fixture's cell types, five cells left without a cluster: the
/// run says so, and the table has scanpy's columns, `--n-genes` rows per cluster in order of
/// score, valid p-values, and adjusted p-values no smaller than the raw ones.
#[test]
fn markers_rank_genes_per_cluster() {
    let dir = scratch("markers");
    let labels = fs::read_to_string(TINY_LABELS).unwrap();
    let mut clusters = String::from("barcode,cluster\n");
    let types = column(&labels, "cell_type");
    for (barcode, t) in column(&labels, "barcode").iter().zip(&types).skip(5) {
        clusters.push_str(&format!("{barcode},{t}\n"));
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
    assert_eq!(
        table.lines().next(),
        Some("group,names,scores,logfoldchanges,pvals,pvals_adj")
    );
    let groups = column(&table, "group");
    let (scores, p, adj) = (
        numbers(&table, "scores"),
        numbers(&table, "pvals"),
        numbers(&table, "pvals_adj"),
    );
    let distinct: std::collections::BTreeSet<&String> = groups.iter().collect();
    assert!(distinct.len() >= 2);
    assert_eq!(groups.len(), 5 * distinct.len());
    for start in (0..groups.len()).step_by(5) {
        for i in start..start + 4 {
            assert_eq!(groups[i], groups[i + 1], "one group per block of 5");
            assert!(scores[i] >= scores[i + 1], "sorted by score");
        }
        for i in start..start + 5 {
            assert!(
                (0.0..=1.0).contains(&p[i]) && adj[i] >= p[i] && adj[i] <= 1.0,
                "row {i}: p {} adjusted {}",
                p[i],
                adj[i]
            );
        }
    }
}
