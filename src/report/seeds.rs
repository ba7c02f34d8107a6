//! Several training seeds (`run --seeds`): `summary_mean.csv` with the mean and sample sd
//! (n − 1) of every numeric column of `summary.csv` per model, and the mean ± sd table of
//! the top-level `report.md`.

use super::summary::{columns, table_row, SUMMARY_COLUMNS};
use crate::error::Result;
use crate::io::atomic::write_atomic;
use crate::study::outcome::ModelOutcome;
use std::fmt::Write as _;
use std::path::Path;

/// Mean and sample sd of the values (sd 0 for one value); `None` when there are none.
pub fn mean_sd(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Some((mean, sd))
}

/// The columns averaged: every column of `summary.csv` but the model's name and the seed,
/// with their positions in its rows.
fn averaged(outcomes: &[ModelOutcome]) -> Vec<(usize, &'static str)> {
    columns(outcomes)
        .into_iter()
        .enumerate()
        .filter(|(_, c)| *c != "model" && *c != "seed")
        .collect()
}

/// Model names in order of first appearance.
fn models(outcomes: &[ModelOutcome]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for o in outcomes {
        if !names.contains(&o.name.as_str()) {
            names.push(&o.name);
        }
    }
    names
}

/// One model's rows summarised: its name, its number of rows, and per averaged column the
/// mean and sd over the rows that have a value.
type ModelStats = (String, usize, Vec<Option<(f64, f64)>>);

/// [`ModelStats`] of every model, in order of first appearance.
fn stats(outcomes: &[ModelOutcome]) -> Vec<ModelStats> {
    let with_integration = columns(outcomes).len() > SUMMARY_COLUMNS.len();
    models(outcomes)
        .into_iter()
        .map(|m| {
            let rows: Vec<Vec<String>> = outcomes
                .iter()
                .filter(|o| o.name == m)
                .map(|o| table_row(o, with_integration))
                .collect();
            let cols = averaged(outcomes)
                .into_iter()
                .map(|(i, _)| {
                    let v: Vec<f64> = rows.iter().filter_map(|r| r[i].parse().ok()).collect();
                    mean_sd(&v)
                })
                .collect();
            (m.to_string(), rows.len(), cols)
        })
        .collect()
}

/// `summary_mean.csv`: `model,seeds`, then `<column>_mean,<column>_sd` for each column.
pub fn write_summary_mean(path: &Path, outcomes: &[ModelOutcome]) -> Result<()> {
    write_atomic(path, |w| {
        let mut header = vec!["model".to_string(), "seeds".to_string()];
        for (_, c) in averaged(outcomes) {
            header.push(format!("{c}_mean"));
            header.push(format!("{c}_sd"));
        }
        writeln!(w, "{}", header.join(","))?;
        for (model, n, cols) in stats(outcomes) {
            let mut row = vec![model, n.to_string()];
            for c in cols {
                match c {
                    Some((m, s)) => row.extend([format!("{m:.6}"), format!("{s:.6}")]),
                    None => row.extend([String::new(), String::new()]),
                }
            }
            writeln!(w, "{}", row.join(","))?;
        }
        Ok(())
    })
}

/// The markdown table of the three protocols' NMI and ARI, mean ± sd over seeds.
pub fn mean_table(outcomes: &[ModelOutcome]) -> String {
    let mut shown = vec![
        ("nmi_geometric", "t-SNE → k-means NMI"),
        ("ari", "ARI"),
        ("latent_kmeans_nmi", "codes → k-means NMI"),
        ("latent_kmeans_ari", "ARI"),
        ("leiden_nmi", "codes → Leiden(k) NMI"),
        ("leiden_ari", "ARI"),
        ("val_loss", "held-out loss"),
    ];
    let averaged = averaged(outcomes);
    if averaged.iter().any(|(_, c)| *c == "ilisi") {
        shown.extend([
            ("batch_asw", "batch ASW"),
            ("ilisi", "iLISI"),
            ("clisi", "cLISI"),
            ("graph_connectivity", "graph connectivity"),
            ("kbet", "kBET"),
        ]);
    }
    let index: Vec<usize> = shown
        .iter()
        .map(|(c, _)| {
            averaged
                .iter()
                .position(|(_, a)| a == c)
                .expect("a summary column")
        })
        .collect();
    let mut t = String::new();
    let _ = write!(t, "| model | seeds |");
    for (_, title) in &shown {
        let _ = write!(t, " {title} |");
    }
    let _ = writeln!(t, "\n|---|---|{}", "---|".repeat(shown.len()));
    for (model, n, cols) in stats(outcomes) {
        let _ = write!(t, "| {model} | {n} |");
        for &i in &index {
            let cell = cols[i].map_or("–".into(), |(m, s)| format!("{m:.3} ± {s:.3}"));
            let _ = write!(t, " {cell} |");
        }
        let _ = writeln!(t);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_sd() {
        let (m, s) = mean_sd(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(m, 2.5);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[0.7]), Some((0.7, 0.0)));
        assert_eq!(mean_sd(&[]), None);
    }
}
