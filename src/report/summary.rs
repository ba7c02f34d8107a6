//! The run's tables: `summary.csv`, each model's `metrics.json`, the console table and
//! `report.md`.

use crate::analysis::metrics::Scores;
use crate::error::Result;
use crate::io::atomic::write_atomic;
use crate::study::outcome::ModelOutcome;
use serde_json::json;
use std::fmt::Write as _;
use std::path::Path;

/// The study's published scores (NMI geometric, ARI, homogeneity, completeness), and the
/// recomputed PCA-6 baseline under the same recipe (`docs/math.md#7-reference-numbers`).
pub fn published(name: &str) -> Option<[f64; 4]> {
    match name {
        "ae" => Some([0.721, 0.580, 0.770, 0.675]),
        "vae" => Some([0.609, 0.440, 0.654, 0.567]),
        "vsc" => Some([0.646, 0.465, 0.692, 0.602]),
        "pca" => Some([0.742, 0.589, 0.793, 0.695]),
        _ => None,
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.6}"))
}

/// The columns of `summary.csv`: the study's scores first, then each later addition at the
/// end, so that readers by position keep working.
pub const SUMMARY_COLUMNS: &[&str] = &[
    "model",
    "nmi_geometric",
    "nmi_arithmetic",
    "ari",
    "homogeneity",
    "completeness",
    "latent_kmeans_ari",
    "train_seconds",
    "final_recon_per_entry",
    "ami",
    "accuracy",
    "latent_kmeans_nmi",
    "leiden_nmi",
    "leiden_ari",
    "silhouette",
    "knn_purity",
    "val_loss",
    "leiden_resolution",
    "active_units",
    "seed",
];

/// The integration scores' columns, after [`SUMMARY_COLUMNS`] when the run had batches.
pub const INTEGRATION_COLUMNS: &[&str] =
    &["batch_asw", "ilisi", "clisi", "graph_connectivity", "kbet"];

/// The columns of these outcomes' table: [`SUMMARY_COLUMNS`], and [`INTEGRATION_COLUMNS`]
/// when a row has integration scores.
pub fn columns(outcomes: &[ModelOutcome]) -> Vec<&'static str> {
    let mut c = SUMMARY_COLUMNS.to_vec();
    if outcomes.iter().any(|o| o.integration.is_some()) {
        c.extend(INTEGRATION_COLUMNS);
    }
    c
}

/// The integration cells of a row, in [`INTEGRATION_COLUMNS`] order.
fn integration_cells(o: &ModelOutcome) -> Vec<String> {
    let i = o.integration;
    [
        i.and_then(|i| i.batch_asw),
        i.map(|i| i.ilisi),
        i.and_then(|i| i.clisi),
        i.and_then(|i| i.graph_connectivity),
        i.and_then(|i| i.kbet),
    ]
    .map(opt)
    .to_vec()
}

/// The cells of one row of these outcomes' table, in [`columns`] order.
pub fn table_row(o: &ModelOutcome, with_integration: bool) -> Vec<String> {
    let mut row = summary_row(o);
    if with_integration {
        row.extend(integration_cells(o));
    }
    row
}

/// The cells of one `summary.csv` row, in [`SUMMARY_COLUMNS`] order.
pub fn summary_row(o: &ModelOutcome) -> Vec<String> {
    let [nmi_g, nmi_a, ari, hom, com, latent_ari] = score_values(o).map(opt);
    let more = o.scores.map_or([None; 5], |s| {
        let l = s.labels;
        [
            l.ami,
            l.accuracy,
            Some(s.codes_kmeans.nmi_geometric),
            Some(l.silhouette),
            Some(l.knn_purity),
        ]
    });
    let [ami, acc, lnmi, sil, purity] = more.map(opt);
    let leiden_scores = o.scores.map(|s| s.leiden);
    vec![
        o.name.clone(),
        nmi_g,
        nmi_a,
        ari,
        hom,
        com,
        latent_ari,
        format!("{:.3}", o.train_seconds),
        opt(o.final_recon_per_entry()),
        ami,
        acc,
        lnmi,
        opt(leiden_scores.map(|s| s.nmi_geometric)),
        opt(leiden_scores.map(|s| s.ari)),
        sil,
        purity,
        opt(o.val_loss()),
        opt(o.leiden.map(|l| l.resolution)),
        o.active_units.to_string(),
        o.seed.to_string(),
    ]
}

/// `summary.csv`, one row per model (and seed). A score that was not computed is an empty
/// field: every score without labels, and protocol 1's (`nmi_geometric` … `completeness`,
/// `ami`, `accuracy`) when t-SNE was skipped.
pub fn write_summary_csv(path: &Path, outcomes: &[ModelOutcome]) -> Result<()> {
    let columns = columns(outcomes);
    let with_integration = columns.len() > SUMMARY_COLUMNS.len();
    write_atomic(path, |w| {
        writeln!(w, "{}", columns.join(","))?;
        for o in outcomes {
            writeln!(w, "{}", table_row(o, with_integration).join(","))?;
        }
        Ok(())
    })
}

fn scores_json(s: Option<Scores>) -> serde_json::Value {
    match s {
        Some(s) => json!({
            "n": s.n, "nmi_geometric": s.nmi_geometric, "nmi_arithmetic": s.nmi_arithmetic,
            "ari": s.ari, "homogeneity": s.homogeneity, "completeness": s.completeness,
        }),
        None => serde_json::Value::Null,
    }
}

/// `metrics.json` of one model. When t-SNE was skipped, `tsne2d_kmeans`,
/// `tsne_kl_divergence` and `more_scores.ami` / `accuracy` are null; when the silhouette ran
/// on a sample of the labelled cells, `more_scores.silhouette_cells` says how many.
pub fn write_metrics_json(path: &Path, o: &ModelOutcome, extra: serde_json::Value) -> Result<()> {
    let scores = o.scores;
    let mut v = json!({
        "model": o.name,
        "tsne2d_kmeans": scores_json(scores.and_then(|s| s.tsne_kmeans)),
        "latent_kmeans": scores_json(scores.map(|s| s.codes_kmeans)),
        "train_seconds": o.train_seconds,
        "final_recon_per_entry": o.final_recon_per_entry(),
        "n_params": o.n_params,
        "tsne_kl_divergence": o.tsne_kl.map(|(a, b)| json!({"2d": a, "3d": b})),
        "tsne_seconds": o.tsne_seconds,
        "umap_seconds": o.umap_seconds,
        "more_scores": scores.map(|s| json!({
            "ami": s.labels.ami, "accuracy": s.labels.accuracy,
            "latent_kmeans_nmi": s.codes_kmeans.nmi_geometric,
            "silhouette": s.labels.silhouette, "knn_purity": s.labels.knn_purity,
        })),
        "leiden": o.leiden.map(|l| json!({
            "scores": scores_json(scores.map(|s| s.leiden)), "resolution": l.resolution,
            "clusters": l.clusters,
        })),
        "val_loss": o.val_loss(),
        "active_units": o.active_units,
        "seed": o.seed,
        "run": extra,
    });
    if let Some(s) = scores.filter(|s| s.labels.silhouette_cells < s.codes_kmeans.n) {
        v["more_scores"]["silhouette_cells"] = s.labels.silhouette_cells.into();
    }
    if let Some(i) = o.integration {
        v["integration"] = json!({
            "batch_asw": i.batch_asw, "ilisi": i.ilisi, "clisi": i.clisi,
            "graph_connectivity": i.graph_connectivity, "kbet": i.kbet,
            "sampled_cells": i.sampled_cells,
        });
    }
    let text = serde_json::to_string_pretty(&v).unwrap_or_default();
    write_atomic(path, |w| writeln!(w, "{text}"))
}

/// The six score columns of every table, `summary.csv` included: NMI (geometric), NMI
/// (arithmetic), ARI, homogeneity, completeness, and the ARI of k-means on the codes.
fn score_values(o: &ModelOutcome) -> [Option<f64>; 6] {
    let s = o.scores.and_then(|s| s.tsne_kmeans);
    [
        s.map(|s| s.nmi_geometric),
        s.map(|s| s.nmi_arithmetic),
        s.map(|s| s.ari),
        s.map(|s| s.homogeneity),
        s.map(|s| s.completeness),
        o.scores.map(|s| s.codes_kmeans.ari),
    ]
}

/// [`score_values`] to three decimals for the console table and `report.md`, `missing` where
/// there is no score, `skipped` where t-SNE was.
fn score_cells(o: &ModelOutcome, missing: &str) -> [String; 6] {
    let skipped = skipped_tsne(o);
    let mut cells = score_values(o).map(|v| v.map_or(missing.to_string(), |v| format!("{v:.3}")));
    if skipped {
        cells[..5].fill(SKIPPED.to_string());
    }
    cells
}

/// What a protocol-1 cell of a table says when t-SNE was skipped.
const SKIPPED: &str = "skipped";

/// Whether `o` was scored but had no t-SNE, so no protocol 1.
fn skipped_tsne(o: &ModelOutcome) -> bool {
    o.scores.is_some_and(|s| s.tsne_kmeans.is_none())
}

/// NMI (geometric) and ARI of the three protocols, to three decimals (`missing` where a
/// protocol has no score): the study's (k-means on the 2-D t-SNE), k-means on the codes,
/// Leiden(k) on the codes' kNN graph.
fn protocol_cells(o: &ModelOutcome, missing: &str) -> [String; 6] {
    let s = o.scores;
    let t = s.and_then(|s| s.tsne_kmeans);
    let mut cells = [
        t.map(|s| s.nmi_geometric),
        t.map(|s| s.ari),
        s.map(|s| s.codes_kmeans.nmi_geometric),
        s.map(|s| s.codes_kmeans.ari),
        s.map(|s| s.leiden.nmi_geometric),
        s.map(|s| s.leiden.ari),
    ]
    .map(|v| v.map_or(missing.to_string(), |v| format!("{v:.3}")));
    if skipped_tsne(o) {
        cells[..2].fill(SKIPPED.to_string());
    }
    cells
}

/// The console table: NMI / ARI under each protocol, then training figures.
pub fn table(outcomes: &[ModelOutcome]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{:<6} {:>15} {:>15} {:>15} {:>9} {:>11} {:>9}",
        "model",
        "t-SNE k-means",
        "codes k-means",
        "Leiden(k)",
        "train s",
        "recon/entry",
        "held-out"
    );
    for o in outcomes {
        let c = protocol_cells(o, "-");
        let pair = |a: &str, b: &str| format!("{a}/{b}");
        let _ = writeln!(
            t,
            "{:<6} {:>15} {:>15} {:>15} {:>9.1} {:>11} {:>9}",
            o.name,
            pair(&c[0], &c[1]),
            pair(&c[2], &c[3]),
            pair(&c[4], &c[5]),
            o.train_seconds,
            o.final_recon_per_entry()
                .map_or("-".into(), |v| format!("{v:.4}")),
            o.val_loss().map_or("-".into(), |v| format!("{v:.3}")),
        );
    }
    t
}

/// What `report.md` needs besides the outcomes.
pub struct ReportContext<'a> {
    pub command: &'a str,
    pub data: &'a str,
    pub cells: usize,
    pub genes: usize,
    pub labelled: usize,
    pub k: Option<usize>,
    pub preset: &'a str,
    pub epochs: usize,
    pub seed: u64,
    pub threads: usize,
    pub notes: &'a [String],
    pub configs: serde_json::Value,
    pub total_seconds: f64,
    /// The k-means restarts of the evaluation ([`crate::study::evaluate::EvalOptions::restarts`]).
    pub n_init: usize,
    /// Why there is no t-SNE (`None`: there is one); see
    /// [`crate::study::evaluate::EvalOptions::tsne_skipped`].
    pub tsne_skipped: Option<String>,
}

/// `report.md`: the table beside the study's numbers, the figures, the configuration.
pub fn write_report(path: &Path, outcomes: &[ModelOutcome], ctx: &ReportContext<'_>) -> Result<()> {
    let mut r = String::new();
    let _ = writeln!(r, "# cellvae report\n");
    let _ = writeln!(r, "Reproduce with:\n\n```\n{}\n```\n", ctx.command);
    let _ = writeln!(
        r,
        "Data: `{}`: {} cells × {} genes after preprocessing; {} cells labelled; k = {}. Preset `{}`, {} epochs, seed {}, {} threads. Total {:.1} s{}.\n",
        ctx.data,
        ctx.cells,
        ctx.genes,
        ctx.labelled,
        ctx.k.map_or("-".into(), |k| k.to_string()),
        ctx.preset,
        ctx.epochs,
        ctx.seed,
        ctx.threads,
        ctx.total_seconds,
        super::memory::peak_note()
    );
    for n in ctx.notes {
        let _ = writeln!(r, "- {n}");
    }
    let _ = writeln!(r, "\n## Scores\n");
    let _ = writeln!(r, "k-means (n_init {}) on the 2-D t-SNE (perplexity 40) of each model's codes, against the labels. With the study's presets, its published numbers (its Seurat clusters, scikit-learn < 0.22) are beside ours; the PCA row's reference is the recomputed PCA-6 baseline (docs/math.md §7).\n", ctx.n_init);
    if let Some(why) = &ctx.tsne_skipped {
        let _ = writeln!(r, "t-SNE was skipped ({why}), so the study's protocol has no scores (`summary.csv` leaves its columns, AMI and accuracy empty) and no t-SNE figures; each model's clusters (`clusters.csv`, the marker genes, the confusion matrix, the clusters on the UMAP) are k-means on the codes.\n");
    }
    let _ = writeln!(r, "| model | NMI (geo) | NMI (arith) | ARI | homogeneity | completeness | ARI, k-means on the codes | the study on PBMC3k: NMI / ARI / hom / com | train s | final recon/entry |");
    let _ = writeln!(r, "|---|---|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        // The study's numbers belong beside its own presets only.
        let study = published(&o.name)
            .filter(|_| ctx.preset != "scrna")
            .map_or("–".into(), |p| {
                format!("{:.3} / {:.3} / {:.3} / {:.3}", p[0], p[1], p[2], p[3])
            });
        let cells = score_cells(o, "–").join(" | ");
        let _ = writeln!(
            r,
            "| {} | {cells} | {study} | {:.1} | {} |",
            o.name,
            o.train_seconds,
            o.final_recon_per_entry()
                .map_or("–".into(), |v| format!("{v:.4}")),
        );
    }
    let _ = writeln!(r, "\n## Three protocols\n");
    let _ = writeln!(r, "NMI (geometric) / ARI against the labels when the clusters come from: the study's protocol (k-means on the 2-D t-SNE), k-means (n_init {}) on the codes, or Leiden on the codes' 15-neighbour graph (UMAP weights) with the resolution bisected until there are k clusters (no labels used). Active units: code dimensions with variance above 0.01 across cells.\n", ctx.n_init);
    let _ = writeln!(r, "| model | t-SNE → k-means | codes → k-means | codes → Leiden(k) | Leiden resolution | active units | held-out loss |");
    let _ = writeln!(r, "|---|---|---|---|---|---|---|");
    for o in outcomes {
        let c = protocol_cells(o, "–");
        let _ = writeln!(
            r,
            "| {} | {} / {} | {} / {} | {} / {} | {} | {} | {} |",
            o.name,
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            o.leiden
                .map_or("–".into(), |l| if l.clusters == ctx.k.unwrap_or(0) {
                    format!("{:.4}", l.resolution)
                } else {
                    format!("{:.4} ({} clusters)", l.resolution, l.clusters)
                }),
            o.active_units,
            o.val_loss().map_or("–".into(), |v| format!("{v:.4}")),
        );
    }
    if outcomes.iter().any(|o| o.integration.is_some()) {
        let _ = writeln!(r, "\n## Integration\n");
        let _ = writeln!(r, "How well each representation mixes the batches while keeping cell types apart (scib's scores, higher is better; `cellvae::analysis::integration` states where they are simplified): batch ASW (1 − |batch silhouette| within each cell type), iLISI (effective number of batches among a cell's 90 nearest, scaled to [0, 1]), cLISI (1 − the same for cell types, scaled), graph connectivity (share of each cell type in one component of the 15-neighbour graph), kBET acceptance; and Leiden(k)'s NMI / ARI against the labels.\n");
        let _ = writeln!(r, "| model | batch ASW | iLISI | cLISI | graph connectivity | kBET | Leiden(k) NMI / ARI |");
        let _ = writeln!(r, "|---|---|---|---|---|---|---|");
        for o in outcomes {
            let Some(i) = o.integration else { continue };
            let f = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.3}"));
            let c = protocol_cells(o, "–");
            let _ = writeln!(
                r,
                "| {} | {} | {} | {} | {} | {} | {} / {} |",
                o.name,
                f(i.batch_asw),
                f(Some(i.ilisi)),
                f(i.clisi),
                f(i.graph_connectivity),
                f(i.kbet),
                c[4],
                c[5]
            );
        }
    }
    let _ = writeln!(r, "\n## Figures\n");
    if Path::new(path)
        .parent()
        .is_some_and(|d| d.join("scores.png").exists())
    {
        let _ = writeln!(r, "![scores](scores.png)\n");
    }
    if outcomes.iter().any(|o| !o.records.is_empty()) {
        let _ = writeln!(r, "![loss curves](losses.png)\n");
    }
    for o in outcomes {
        if o.tsne_kl.is_some() {
            let _ = writeln!(
                r,
                "### {}\n\n![{0} t-SNE 2-D]({0}/tsne2d.png)\n\n![{0} UMAP]({0}/umap.png)\n\n![{0} t-SNE 3-D]({0}/tsne3d.png)\n",
                o.name
            );
        } else {
            let _ = writeln!(r, "### {}\n\n![{0} UMAP]({0}/umap.png)\n", o.name);
        }
        if Path::new(path)
            .parent()
            .is_some_and(|d| d.join(&o.name).join("umap_batches.png").exists())
        {
            let _ = writeln!(r, "![{0} UMAP by batch]({0}/umap_batches.png)\n", o.name);
        }
        if Path::new(path)
            .parent()
            .is_some_and(|d| d.join(&o.name).join("confusion.png").exists())
        {
            let _ = writeln!(r, "![{0} confusion matrix]({0}/confusion.png)\n", o.name);
        }
        if Path::new(path)
            .parent()
            .is_some_and(|d| d.join(&o.name).join("markers_dotplot.png").exists())
        {
            let _ = writeln!(
                r,
                "![{0} marker genes]({0}/markers_dotplot.png)\n\nMarker genes of each cluster (Wilcoxon rank-sum against the rest): `{0}/markers.csv`.\n",
                o.name
            );
        }
    }
    let _ = writeln!(
        r,
        "## Configuration\n\n```json\n{}\n```\n",
        serde_json::to_string_pretty(&ctx.configs).unwrap_or_default()
    );
    let _ = writeln!(
        r,
        "cellvae {} ({}).",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH
    );
    write_atomic(path, |w| w.write_all(r.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::evaluate::ProtocolScores;
    use crate::study::outcome::LabelScores;

    fn scores(v: f64) -> Scores {
        Scores {
            n: 100,
            nmi_geometric: v,
            nmi_arithmetic: v,
            ari: v,
            homogeneity: v,
            completeness: v,
        }
    }

    /// One PCA row at `seed`, with protocol 1 (`tsne`) or without.
    fn outcome(seed: u64, tsne: bool) -> ModelOutcome {
        let s = ProtocolScores {
            tsne_kmeans: tsne.then(|| scores(0.7)),
            codes_kmeans: scores(0.5 + seed as f64 / 100.0),
            leiden: scores(0.6),
            labels: LabelScores {
                ami: tsne.then_some(0.65),
                accuracy: tsne.then_some(0.8),
                silhouette: 0.2,
                silhouette_cells: 100,
                knn_purity: 0.9,
            },
        };
        ModelOutcome {
            name: "pca".into(),
            seed,
            scores: Some(s),
            leiden: None,
            train_seconds: 1.0,
            records: Vec::new(),
            n_params: None,
            tsne_kl: tsne.then_some((1.0, 1.0)),
            tsne_seconds: 0.0,
            umap_seconds: 0.0,
            active_units: 3,
            integration: None,
        }
    }

    #[test]
    fn protocol_one_columns_are_empty_when_t_sne_was_skipped() {
        let column = |name: &str| SUMMARY_COLUMNS.iter().position(|c| *c == name).unwrap();
        let protocol_one = [
            "nmi_geometric",
            "nmi_arithmetic",
            "ari",
            "homogeneity",
            "completeness",
            "ami",
            "accuracy",
        ];
        let skipped = summary_row(&outcome(1, false));
        let full = summary_row(&outcome(1, true));
        for c in protocol_one {
            assert_eq!(skipped[column(c)], "", "{c}");
            assert!(!full[column(c)].is_empty(), "{c}");
        }
        for c in [
            "latent_kmeans_ari",
            "latent_kmeans_nmi",
            "leiden_nmi",
            "silhouette",
        ] {
            assert!(!skipped[column(c)].is_empty(), "{c}");
        }
        assert_eq!(score_cells(&outcome(1, false), "–")[0], SKIPPED);
        assert_eq!(
            protocol_cells(&outcome(1, false), "–")[..2],
            [SKIPPED, SKIPPED]
        );
        // Over seeds the missing values are left out of the means, not counted as 0.
        let rows = [outcome(1, false), outcome(3, false)];
        let table = crate::report::seeds::mean_table(&rows);
        let pca = table.lines().find(|l| l.starts_with("| pca")).unwrap();
        assert_eq!(
            pca,
            "| pca | 2 | – | – | 0.520 ± 0.014 | 0.520 ± 0.014 | 0.600 ± 0.000 | 0.600 ± 0.000 | – |"
        );
    }
}
