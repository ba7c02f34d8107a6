//! Codes of cells with batches: `embed` with a checkpoint whose encoder reads the batch, and
//! `cellvae evaluate` with labels and batches. The batches are the tiny fixture's `b0` and
//! `b1` (`labels.csv`). Every command writes into its own scratch directory.

mod common;

use cellvae::report::summary::INTEGRATION_COLUMNS;
use common::cli::*;
use std::fs;
use std::path::Path;

/// A checkpoint whose encoder reads the batch (`train --encode-batch`): `embed` reproduces
/// the training codes, encodes the cells of one seen batch as in training (batches matched by
/// name), and refuses a batch it was not trained on, or data without batches.
#[test]
fn embed_with_a_conditional_checkpoint_knows_its_batches() {
    let dir = scratch("batches-embed");
    let rows = tiny_batches();
    let batches = write_batches(&dir.join("batches.csv"), &rows);
    let model = dir.join("vae");
    let mut train = vec!["train", "--model", "vae", "--encode-batch", "--quiet"];
    train.extend_from_slice(TINY_TRAIN);
    train.extend_from_slice(&[
        "--data",
        TINY,
        "--batches",
        arg(&batches),
        "--out",
        arg(&model),
    ]);
    ok(&train);
    let ckpt = model.join("model.safetensors");
    let (net, meta) = cellvae::train::checkpoint::load(&ckpt).unwrap();
    assert_eq!(
        meta.batch_names.as_deref(),
        Some(&["b0", "b1"].map(String::from)[..])
    );
    assert_eq!(net.config.encoder_covariates(), 2);
    let embed = |data: &str, batches: Option<&Path>, out: &Path| {
        let mut args = vec![
            "embed",
            "--checkpoint",
            arg(&ckpt),
            "--data",
            data,
            "--qc",
            "none",
        ];
        if let Some(b) = batches {
            args.extend_from_slice(&["--batches", arg(b)]);
        }
        args.extend_from_slice(&["--out", arg(out)]);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let trained = fs::read_to_string(model.join("latent.csv")).unwrap();
    let codes = dir.join("codes.csv");
    ok(&strs(&embed(TINY, Some(&batches), &codes)));
    assert_eq!(fs::read_to_string(&codes).unwrap(), trained);
    // Only the cells of b1, the model's second batch, and a table naming only b1.
    let b1: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1 == "b1").collect();
    let b1_cells = tiny_subset(&dir.join("b1-cells"), &b1, &(0..40).collect::<Vec<_>>());
    let b1_rows: Vec<(String, String)> = b1.iter().map(|&i| rows[i].clone()).collect();
    let b1_batches = write_batches(&dir.join("b1.csv"), &b1_rows);
    let b1_codes = dir.join("b1-codes.csv");
    ok(&strs(&embed(arg(&b1_cells), Some(&b1_batches), &b1_codes)));
    let lines: Vec<&str> = trained.lines().collect();
    let expected: Vec<&str> = std::iter::once(lines[0])
        .chain(b1.iter().map(|&i| lines[i + 1]))
        .collect();
    assert_eq!(
        fs::read_to_string(&b1_codes)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        expected
    );
    // The same cells called b9: unseen in training.
    let b9_rows: Vec<(String, String)> = b1_rows
        .iter()
        .map(|(b, _)| (b.clone(), "b9".into()))
        .collect();
    let b9 = write_batches(&dir.join("b9.csv"), &b9_rows);
    let refused = dir.join("refused.csv");
    let err = fails(&strs(&embed(arg(&b1_cells), Some(&b9), &refused)), &refused);
    assert!(
        err.contains("batch 'b9' was not seen in training")
            && err.contains(&format!("{} knows only b0, b1", ckpt.display())),
        "{err}"
    );
    let err = fails(&strs(&embed(TINY, None, &refused)), &refused);
    assert!(
        err.contains("encoder reads the batch: give each cell's with --batch-key or --batches"),
        "{err}"
    );
}

/// `cellvae evaluate` of codes with labels and batches: one JSON line with the label scores
/// and the integration scores, each in range, the same for the same seed; without labels only
/// iLISI is defined; a cell without a batch is a clean error.
#[test]
fn evaluate_scores_codes_against_labels_and_batches() {
    let dir = scratch("batches-evaluate");
    let rows = tiny_batches();
    let batches = write_batches(&dir.join("batches.csv"), &rows);
    let latent = tiny_checkpoint(&dir).with_file_name("latent.csv");
    let evaluate = |extra: &[&str]| -> (String, serde_json::Value) {
        let mut args = vec!["evaluate", "--input", arg(&latent), "--seed", "1"];
        args.extend_from_slice(extra);
        let stdout = String::from_utf8(ok(&args).stdout).unwrap();
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        let v = serde_json::from_str(&stdout).unwrap();
        (stdout, v)
    };
    let full = ["--labels", TINY_LABELS, "--batches", arg(&batches)];
    let (line, v) = evaluate(&full);
    assert_eq!(
        (v["cells"].as_u64(), v["k"].as_u64()),
        (Some(60), Some(3)),
        "{v}"
    );
    let unit = |x: &serde_json::Value| x.as_f64().is_some_and(|x| (0.0..=1.0).contains(&x));
    for scores in ["leiden", "tsne_kmeans", "codes_kmeans"] {
        for k in ["nmi", "homogeneity", "completeness"] {
            assert!(unit(&v[scores][k]), "{scores}.{k}: {v}");
        }
        let ari = v[scores]["ari"].as_f64().unwrap();
        assert!((-0.5..=1.0).contains(&ari), "{scores}.ari: {v}");
    }
    let integration = &v["integration"];
    for k in INTEGRATION_COLUMNS {
        assert!(unit(&integration[k]), "integration.{k}: {v}");
    }
    assert_eq!(integration["sampled_cells"], 60);
    assert_eq!(evaluate(&full).0, line, "the same seed, the same scores");
    // Batches alone: no label scores, and of the integration scores only iLISI.
    let (_, v) = evaluate(&["--batches", arg(&batches)]);
    assert!(v.get("leiden").is_none(), "{v}");
    assert!(unit(&v["integration"]["ilisi"]), "{v}");
    assert!(v["integration"]["batch_asw"].is_null(), "{v}");
    let mut unknown = rows;
    unknown.remove(7);
    let unknown = write_batches(&dir.join("unknown.csv"), &unknown);
    let args = [
        "evaluate",
        "--input",
        arg(&latent),
        "--batches",
        arg(&unknown),
    ];
    let err = fails(&args, &dir.join("nothing"));
    assert!(err.contains("no batch for cell 'CELL007-1'"), "{err}");
}
