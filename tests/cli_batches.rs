//! Batches end to end: a `barcode,batch` CSV (`--batches`), an `.h5ad` obs column
//! (`--batch-key`) and several `--data` inputs (one batch each); Harmony and the integration
//! scores of a run; one batch; and the errors, each clean. Inputs are cut from the tiny
//! fixture, whose `labels.csv` puts its 60 cells in batches `b0` and `b1` (30 each). Every
//! command writes into its own scratch directory. (`cli_batches_codes.rs`: a checkpoint
//! whose encoder reads the batch, and `cellvae evaluate`.)

mod common;

use cellvae::report::summary::{INTEGRATION_COLUMNS, SUMMARY_COLUMNS};
use common::cli::*;
use std::fs;
use std::path::Path;

/// Every integration score of every row of `summary` lies in [0, 1].
fn integration_scores_in_range(summary: &str) {
    for name in INTEGRATION_COLUMNS {
        for v in numbers(summary, name) {
            assert!((0.0..=1.0).contains(&v), "{name} {v}:\n{summary}");
        }
    }
}

/// Two batches from `--batches`: Harmony runs beside PCA, summary.csv gains the integration
/// columns, every representation has a batch figure, and the AnnData holds each cell's batch.
#[test]
fn two_batches_from_a_csv_add_harmony_and_integration_scores() {
    let dir = scratch("batches-csv");
    let batches = write_batches(&dir.join("batches.csv"), &tiny_batches());
    let out = dir.join("run");
    let o = tiny_run(&out, &["--data", TINY, "--batches", arg(&batches)]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("2 batches: b0 (30 cells), b1 (30 cells)"),
        "{stderr}"
    );
    let summary = fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(
        column(&summary, "model"),
        ["ae", "vae", "vsc", "pca", "harmony"]
    );
    let expected: Vec<&str> = SUMMARY_COLUMNS
        .iter()
        .chain(INTEGRATION_COLUMNS)
        .copied()
        .collect();
    assert_eq!(header(&summary), expected);
    integration_scores_in_range(&summary);
    for model in ["ae", "vae", "vsc", "pca", "harmony"] {
        assert!(
            out.join(model).join("umap_batches.png").is_file(),
            "{model}"
        );
    }
    let harmony = fs::read_to_string(out.join("harmony/latent.csv")).unwrap();
    assert!(harmony.starts_with("barcode,harmony1,"), "{harmony}");
    // The networks' decoders read the batch.
    let (_, meta) = cellvae::train::checkpoint::load(&out.join("vae/model.safetensors")).unwrap();
    assert_eq!(meta.config.n_batches, 2);
    assert_eq!(
        meta.batch_names.as_deref(),
        Some(&["b0", "b1"].map(String::from)[..])
    );
    let h5ad = out.join("cellvae.h5ad");
    let obs = cellvae::io::hdf5::read_h5ad_labels(&h5ad, "batch").unwrap();
    let written: Vec<(String, String)> = obs
        .entries
        .into_iter()
        .map(|(b, l)| (b, l.expect("every cell has a batch")))
        .collect();
    assert_eq!(written, tiny_batches());
}

/// Two `--data` inputs with partly different genes: joined on the genes they share (the
/// dropped ones counted), each input a batch named after it; inputs with the same barcodes
/// get the batch appended to them.
#[test]
fn several_inputs_are_one_batch_each_joined_on_their_genes() {
    let dir = scratch("batches-inputs");
    let (first, second): (Vec<usize>, Vec<usize>) = ((0..30).collect(), (30..60).collect());
    // donor1 lacks gene 0, donor2 genes 37 to 39: 36 genes shared, 4 dropped.
    let donor1 = tiny_subset(&dir.join("donor1"), &first, &(1..40).collect::<Vec<_>>());
    let donor2 = tiny_subset(&dir.join("donor2"), &second, &(0..37).collect::<Vec<_>>());
    let out = dir.join("run");
    let o = tiny_run(
        &out,
        &[
            "--data",
            arg(&donor1),
            "--data",
            arg(&donor2),
            "--labels",
            TINY_LABELS,
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    for note in [
        "joined 2 inputs on gene IDs: 36 genes in every input kept, 4 dropped",
        "2 batches: donor1 (30 cells), donor2 (30 cells)",
        "60 of 60 cells labelled",
    ] {
        assert!(stderr.contains(note), "{note}:\n{stderr}");
    }
    assert!(!stderr.contains("barcodes repeat"), "{stderr}");
    let summary = fs::read_to_string(out.join("summary.csv")).unwrap();
    assert_eq!(
        column(&summary, "model"),
        ["ae", "vae", "vsc", "pca", "harmony"]
    );
    integration_scores_in_range(&summary);
    let h5ad = out.join("cellvae.h5ad");
    let x = cellvae::io::hdf5::read_h5ad(&h5ad, &Default::default()).unwrap();
    assert_eq!((x.n_cells(), x.n_genes()), (60, 36));
    let tiny = cellvae::io::read_dataset(Path::new(TINY), &Default::default()).unwrap();
    assert_eq!(x.gene_ids, tiny.gene_ids[1..37]);
    let obs = cellvae::io::hdf5::read_h5ad_labels(&h5ad, "batch").unwrap();
    for (i, (barcode, batch)) in obs.entries.iter().enumerate() {
        assert_eq!(barcode, &tiny.barcodes[i]);
        let expected = if i < 30 { "donor1" } else { "donor2" };
        assert_eq!(batch.as_deref(), Some(expected), "{barcode}");
    }
    // The same cells twice, as inputs `a` and `b`: every barcode gets its batch appended.
    let all_cells: Vec<usize> = (0..60).collect();
    let all_genes: Vec<usize> = (0..40).collect();
    let a = tiny_subset(&dir.join("a"), &all_cells, &all_genes);
    let b = tiny_subset(&dir.join("b"), &all_cells, &all_genes);
    let model = dir.join("twice");
    let o = ok(&[
        "train",
        "--model",
        "ae",
        "--data",
        arg(&a),
        "--data",
        arg(&b),
        "--qc",
        "none",
        "--epochs",
        "1",
        "--hidden",
        "8,4",
        "--decoder",
        "4,8",
        "--out",
        arg(&model),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    for note in [
        "joined 2 inputs on gene IDs: 40 genes in every input kept, 0 dropped",
        "barcodes repeat across inputs: each has '-<batch>' appended",
        "2 batches: a (60 cells), b (60 cells)",
    ] {
        assert!(stderr.contains(note), "{note}:\n{stderr}");
    }
    let codes = fs::read_to_string(model.join("latent.csv")).unwrap();
    let barcodes = column(&codes, "barcode");
    assert_eq!(barcodes.len(), 120);
    assert_eq!(barcodes[0], format!("{}-a", tiny.barcodes[0]));
    assert_eq!(barcodes[60], format!("{}-b", tiny.barcodes[0]));
}

/// A batch table with one batch is accepted and said; there is nothing to integrate, so the
/// run is the run without batches (same codes, no Harmony, no integration columns, no batch
/// figures), and what needs two batches is refused.
#[test]
fn one_batch_is_accepted_and_reported() {
    let dir = scratch("batches-one");
    let one: Vec<(String, String)> = tiny_batches()
        .into_iter()
        .map(|(b, _)| (b, "only".to_string()))
        .collect();
    let batches = write_batches(&dir.join("one.csv"), &one);
    let models = ["--models", "ae,pca"];
    let (with, without) = (dir.join("with"), dir.join("without"));
    let o = tiny_run(
        &with,
        &[&["--data", TINY, "--batches", arg(&batches)], &models[..]].concat(),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("1 batch: only (60 cells)"), "{stderr}");
    tiny_run(&without, &[&["--data", TINY], &models[..]].concat());
    let summary = fs::read_to_string(with.join("summary.csv")).unwrap();
    assert_eq!(column(&summary, "model"), ["ae", "pca"]);
    assert_eq!(header(&summary), SUMMARY_COLUMNS);
    for model in ["ae", "pca"] {
        assert!(!with.join(model).join("umap_batches.png").exists());
        assert!(!with.join("harmony").exists());
        let codes = format!("{model}/latent.csv");
        assert_eq!(
            fs::read(with.join(&codes)).unwrap(),
            fs::read(without.join(&codes)).unwrap(),
            "{codes}"
        );
    }
    let (_, meta) = cellvae::train::checkpoint::load(&with.join("ae/model.safetensors")).unwrap();
    assert_eq!((meta.config.n_batches, meta.batch_names), (0, None));
    let obs = cellvae::io::hdf5::read_h5ad_labels(&with.join("cellvae.h5ad"), "batch").unwrap();
    assert!(obs
        .entries
        .iter()
        .all(|(_, b)| b.as_deref() == Some("only")));
    // Harmony and a batch-reading encoder need two batches.
    let bad = dir.join("bad");
    let args = [
        "--data",
        TINY,
        "--batches",
        arg(&batches),
        "--models",
        "pca,harmony",
    ];
    let err = fails(&tiny_run_args(&bad, &args), &bad);
    assert!(
        err.contains("harmony corrects batches: give two or more"),
        "{err}"
    );
    let err = fails(
        &[
            "train",
            "--model",
            "vae",
            "--data",
            TINY,
            "--qc",
            "none",
            "--batches",
            arg(&batches),
            "--encode-batch",
            "--out",
            arg(&bad),
        ],
        &bad,
    );
    assert!(err.contains("need two or more batches"), "{err}");
}

/// `--batch-key` reads an `.h5ad` obs column (the committed fixture's `batch`: a and b);
/// a column obs lacks, or a key on input that is no `.h5ad`, is a clean error.
#[test]
fn batch_key_reads_an_obs_column() {
    let dir = scratch("batches-key");
    let h5ad = "tests/fixtures/h5/csr.h5ad";
    let train = |key: &str, data: &str, out: &Path| -> Vec<String> {
        [
            "train",
            "--model",
            "ae",
            "--data",
            data,
            "--batch-key",
            key,
            "--qc",
            "none",
            "--epochs",
            "1",
            "--hidden",
            "4",
            "--decoder",
            "4",
            "--out",
            arg(out),
        ]
        .map(String::from)
        .to_vec()
    };
    let model = dir.join("model");
    let o = ok(&strs(&train("batch", h5ad, &model)));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("2 batches: a (6 cells), b (6 cells)"),
        "{stderr}"
    );
    let (_, meta) = cellvae::train::checkpoint::load(&model.join("model.safetensors")).unwrap();
    assert_eq!(
        meta.batch_names.as_deref(),
        Some(&["a", "b"].map(String::from)[..])
    );
    let bad = dir.join("bad");
    let err = fails(&strs(&train("donor", h5ad, &bad)), &bad);
    assert!(err.contains("csr.h5ad") && err.contains("donor"), "{err}");
    let err = fails(&strs(&train("batch", TINY, &bad)), &bad);
    assert!(
        err.contains("--batch-key reads an .h5ad obs column") && err.contains("--batches"),
        "{err}"
    );
}

/// Batches that cannot be used: each a clean error naming what is wrong, and no output.
#[test]
fn bad_batches_fail_cleanly() {
    let dir = scratch("batches-bad");
    let rows = tiny_batches();
    // CELL005-1 with an empty batch; CELL007-1 not in the table.
    let mut missing = rows.clone();
    missing[5].1.clear();
    let missing = write_batches(&dir.join("missing.csv"), &missing);
    let mut unknown = rows.clone();
    unknown.remove(7);
    let unknown = write_batches(&dir.join("unknown.csv"), &unknown);
    let both = write_batches(&dir.join("both.csv"), &rows);
    // The same cells as a CSV matrix: gene symbols only, where the 10x fixture has IDs.
    let tiny = cellvae::io::read_dataset(Path::new(TINY), &Default::default()).unwrap();
    let mut csv = String::from("barcode");
    for g in &tiny.gene_names {
        csv += &format!(",{g}");
    }
    csv += "\n";
    for (b, row) in tiny.barcodes.iter().zip(tiny.matrix.to_dense().rows()) {
        csv += &format!("CSV-{b}");
        for v in row {
            csv += &format!(",{v}");
        }
        csv += "\n";
    }
    let symbols = dir.join("symbols.csv");
    fs::write(&symbols, csv).unwrap();
    let other_tiny = dir.join("elsewhere").join("tiny");
    tiny_subset(
        &other_tiny,
        &(0..60).collect::<Vec<_>>(),
        &(0..40).collect::<Vec<_>>(),
    );
    let out = dir.join("out");
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec!["--batches", arg(&missing)],
            vec![
                format!("{}: cell 'CELL005-1' has no batch", missing.display()),
                "every cell needs one".into(),
            ],
        ),
        (
            vec!["--batches", arg(&unknown)],
            vec![format!(
                "{}: no batch for cell 'CELL007-1' of the data",
                unknown.display()
            )],
        ),
        (
            vec!["--data", arg(&symbols)],
            vec![format!(
                "{TINY} has gene IDs but {} has only gene symbols",
                symbols.display()
            )],
        ),
        (
            vec!["--data", arg(&other_tiny)],
            vec![format!(
                "{TINY} and {} would both be batch 'tiny'",
                other_tiny.display()
            )],
        ),
        (
            vec!["--data", arg(&symbols), "--batches", arg(&both)],
            vec!["several --data inputs are one batch each".into()],
        ),
    ];
    for (extra, expected) in cases {
        let data = [&["--data", TINY][..], &extra].concat();
        let mut train = vec!["train", "--model", "vae", "--out", arg(&out)];
        train.extend_from_slice(TINY_TRAIN);
        train.extend_from_slice(&data);
        for args in [tiny_run_args(&out, &data), train] {
            let err = fails(&args, &out);
            for e in &expected {
                assert!(err.contains(e.as_str()), "{args:?}: {e}:\n{err}");
            }
        }
    }
}
