//! `cellvae run` end to end: every output of a run on the tiny fixture, byte-identical
//! outputs for one seed (on 1 and 2 threads, and on an input wide enough that every parallel
//! pass splits), and several seeds summarised. Every run writes into its own scratch
//! directory.

mod common;

use common::cli::*;
use std::fs;

/// The whole pipeline on the tiny fixture, twice with one seed: byte-identical outputs.
#[test]
fn run_is_complete_and_deterministic() {
    let run = |name: &str, threads: &str| {
        let out = scratch(name);
        tiny_run(&out, &["--data", TINY, "--threads", threads, "--quiet"]);
        out
    };
    let a = run("det-a", "2");
    let b = run("det-b", "2");
    let c = run("det-c", "1");
    let summary = fs::read_to_string(a.join("summary.csv")).unwrap();
    assert_eq!(summary.lines().count(), 5, "{summary}");
    assert_eq!(column(&summary, "model"), ["ae", "vae", "vsc", "pca"]);
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
        // Without batches there is no batch figure.
        assert!(!a.join(model).join("umap_batches.png").exists(), "{model}");
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
        ..Default::default()
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
    // Every protocol is scored in summary.csv, which keeps its first columns in place (for
    // readers by position) and, without batches, has no integration columns.
    let head = header(&summary);
    assert_eq!(head[..7], cellvae::report::summary::SUMMARY_COLUMNS[..7]);
    assert_eq!(head[6], "latent_kmeans_ari");
    assert_eq!(head, cellvae::report::summary::SUMMARY_COLUMNS);
    for name in [
        "nmi_geometric",
        "latent_kmeans_nmi",
        "leiden_nmi",
        "leiden_ari",
    ] {
        // ARI can dip just below 0 (3 epochs barely train the networks).
        for v in numbers(&summary, name) {
            assert!((-0.5..=1.0).contains(&v), "{name} {v}");
        }
    }
    assert!(column(&summary, "seed").iter().all(|s| s == "42"));
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
    let read = |p: std::path::PathBuf| fs::read_to_string(p).unwrap();
    assert_eq!(
        without_column(&summary, "train_seconds"),
        without_column(&read(b.join("summary.csv")), "train_seconds")
    );
    assert_eq!(
        without_column(&read(a.join("ae/loss.csv")), "seconds"),
        without_column(&read(c.join("ae/loss.csv")), "seconds")
    );
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
    // The default networks, not TINY_TRAIN's small ones.
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

/// `run --seeds`: one folder per seed, every row in summary.csv with its seed, and
/// summary_mean.csv holding the mean and sample sd of each column; with a validation split
/// the held-out loss is filled in.
#[test]
fn several_seeds_are_summarised() {
    let out = scratch("seeds");
    tiny_run(
        &out,
        &[
            "--data",
            TINY,
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
            "--quiet",
        ],
    );
    for s in 1..=3 {
        assert!(out.join(format!("seed-{s}/ae/leiden.csv")).is_file());
        assert!(out.join(format!("seed-{s}/report.md")).is_file());
    }
    // The held-out cells are written, a fifth of the cells (the split's fraction), the same
    // ones for every seed, each among the cells of the codes.
    let held_out = fs::read_to_string(out.join("seed-1/ae/heldout.csv")).unwrap();
    let codes = fs::read_to_string(out.join("seed-1/ae/latent.csv")).unwrap();
    let cells = column(&codes, "barcode");
    let held = column(&held_out, "barcode");
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
    let models = column(&summary, "model");
    assert_eq!(models.len(), 6);
    // The values of column `name` in the AE's rows.
    let of_ae = |name: &str| -> Vec<String> {
        column(&summary, name)
            .into_iter()
            .zip(&models)
            .filter(|(_, m)| *m == "ae")
            .map(|(v, _)| v)
            .collect()
    };
    assert_eq!(of_ae("seed"), ["1", "2", "3"]);
    let nmi: Vec<f64> = of_ae("leiden_nmi")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(of_ae("val_loss").iter().all(|v| v.parse::<f64>().is_ok()));
    let mean_csv = fs::read_to_string(out.join("summary_mean.csv")).unwrap();
    let at = |name: &str| -> f64 { field(&mean_csv, "ae", name).parse().unwrap() };
    assert_eq!(field(&mean_csv, "ae", "seeds"), "3");
    let m = nmi.iter().sum::<f64>() / 3.0;
    let sd = (nmi.iter().map(|v| (v - m).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!((at("leiden_nmi_mean") - m).abs() < 1e-6);
    assert!((at("leiden_nmi_sd") - sd).abs() < 1e-6);
    let report = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("codes → Leiden(k) NMI"), "{report}");
}
