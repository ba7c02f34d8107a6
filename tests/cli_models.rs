//! Model options end to end: the NB likelihood, the scrna preset, and a scaled HVG model
//! whose checkpoint carries its genes and scaling to `embed`. Every run writes into its own
//! scratch directory.

mod common;

use common::cli::*;
use std::fs;

/// `--hvg N --hvg-flavor seurat --scale`: the checkpoint stores the genes and the scaling, and
/// `embed` (given neither flag) reproduces the training codes from the raw input.
#[test]
fn scaled_hvg_model_embeds_new_cells_the_same_way() {
    let work = scratch("scaled");
    let out = work.join("vae");
    tiny_train(
        "vae",
        &out,
        &[
            "--hvg",
            "6",
            "--hvg-flavor",
            "seurat",
            "--scale",
            "--epochs",
            "2",
            "--quiet",
        ],
    );
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
    let o = tiny_train(
        "ae",
        &work.join("all"),
        &["--hvg", "100000", "--epochs", "1"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("all are kept"), "{err}");
}

/// `--likelihood nb`: trains on integer counts (the checkpoint carries `px_r`, one value per
/// gene, and a held-out loss is reported), and non-integer input is a clear error.
#[test]
fn nb_likelihood_trains_on_counts_only() {
    let work = scratch("nb");
    let out = work.join("vsc");
    tiny_train(
        "vsc",
        &out,
        &[
            "--likelihood",
            "nb",
            "--val-fraction",
            "0.2",
            "--epochs",
            "3",
            "--quiet",
        ],
    );
    let (net, meta) = cellvae::train::checkpoint::load(&out.join("model.safetensors")).unwrap();
    assert_eq!(meta.config.likelihood, cellvae::models::Likelihood::Nb);
    let px_r = net
        .state_dict()
        .into_iter()
        .find(|t| t.0 == "px_r")
        .unwrap();
    assert_eq!(px_r.1, vec![net.n_genes]);
    let loss = fs::read_to_string(out.join("loss.csv")).unwrap();
    let held_out = numbers(&loss, "val_loss");
    assert!(*held_out.last().unwrap() > 0.0, "held-out loss: {loss}");
    // Normalized (non-integer) input cannot feed a count likelihood.
    let csv = work.join("normalized.csv");
    fs::write(
        &csv,
        "barcode,g1,g2,g3\nc1,0.5,1.25,0\nc2,2.5,0,1.5\nc3,0,0.75,2\n",
    )
    .unwrap();
    let bad = work.join("bad");
    let err = fails(
        &[
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
            bad.to_str().unwrap(),
        ],
        &bad,
    );
    assert!(err.contains("needs integer counts"), "{err}");
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
    assert_eq!(column(&summary, "model"), ["ae", "vae", "vsc", "pca"]);
    let (_, meta) = cellvae::train::checkpoint::load(&out.join("vae/model.safetensors")).unwrap();
    assert_eq!(meta.config.preset, cellvae::models::Preset::Scrna);
    assert!(meta.scaling.is_some());
    let loss = fs::read_to_string(out.join("vae/loss.csv")).unwrap();
    let held_out = column(&loss, "val_loss");
    assert!(
        held_out.last().unwrap().parse::<f64>().is_ok(),
        "held-out loss: {loss}"
    );
    let pcs = fs::read_to_string(out.join("pca/latent.csv")).unwrap();
    let columns = header(&pcs).len() - 1;
    assert_eq!(columns, 40, "50 components asked, 40 genes: {columns}");
    let report = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("Three protocols"));
}
