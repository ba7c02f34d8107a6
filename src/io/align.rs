//! Matching what a file says about cells or genes to a dataset's own order: labels to the
//! kept cells (by barcode), and a dataset's genes to a checkpoint's (by ID, else by symbol).

use super::labels::Labels;
use super::Dataset;
use crate::csr::Csr;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};

/// Cell-type labels of a dataset's cells.
#[derive(Clone, Debug, PartialEq)]
pub struct CellTypes {
    /// Per cell, in the dataset's order, the index into `names` (`None`: unlabelled or absent
    /// from the label file).
    pub ids: Vec<Option<usize>>,
    /// Type names, most frequent first (ties by name).
    pub names: Vec<String>,
}

impl CellTypes {
    /// Number of labelled cells.
    pub fn labelled(&self) -> usize {
        self.ids.iter().flatten().count()
    }
}

/// Labels of the cells `barcodes`, in that order; `None` when no barcode has a label.
pub fn cell_types(labels: &Labels, barcodes: &[String]) -> Option<CellTypes> {
    let map = labels.map();
    let per_cell: Vec<Option<&str>> = barcodes
        .iter()
        .map(|b| map.get(b.as_str()).copied())
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in per_cell.iter().flatten() {
        *counts.entry(t).or_default() += 1;
    }
    if counts.is_empty() {
        return None;
    }
    let mut names: Vec<(&str, usize)> = counts.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.0, i)).collect();
    Some(CellTypes {
        ids: per_cell.iter().map(|t| t.map(|t| index[t])).collect(),
        names: names.into_iter().map(|n| n.0.to_string()).collect(),
    })
}

/// The genes a model was trained on: stable IDs and symbols, in the model's input order.
#[derive(Clone, Copy, Debug)]
pub struct GeneOrder<'a> {
    pub ids: &'a [String],
    pub names: &'a [String],
    /// Whether `ids` are real IDs (not copies of the symbols).
    pub has_ids: bool,
}

/// `data`'s matrix with its columns in `order`'s gene order. Genes are matched by ID when both
/// sides have IDs, otherwise by symbol; genes of `data` that `order` lacks are dropped, and a
/// gene of `order` missing from `data` is an error naming a few of them.
pub fn to_gene_order(data: &Dataset, order: GeneOrder<'_>) -> Result<Csr<f32>> {
    let by_id = order.has_ids && data.has_gene_ids;
    let (theirs, ours) = if by_id {
        (order.ids, &data.gene_ids)
    } else {
        (order.names, &data.gene_names)
    };
    let position: HashMap<&str, usize> = ours
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    if position.len() != ours.len() && !by_id {
        return Err(Error::data(
            "the data's gene symbols repeat and it has no gene IDs: genes cannot be matched",
        ));
    }
    let mut new_index = vec![None; data.n_genes()];
    let mut missing = Vec::new();
    for (k, g) in theirs.iter().enumerate() {
        match position.get(g.as_str()) {
            Some(&i) => new_index[i] = Some(k as u32),
            None => missing.push(g.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::data(format!(
            "{} of the checkpoint's {} genes are missing from the data (matched by {}), e.g. {}",
            missing.len(),
            theirs.len(),
            if by_id { "gene ID" } else { "symbol" },
            missing
                .iter()
                .take(3)
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(data.matrix.reorder_columns(&new_index, theirs.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cell_types_follow_the_dataset_order() {
        let labels = Labels {
            entries: vec![
                ("c3".into(), Some("B".into())),
                ("c1".into(), Some("T".into())),
                ("c2".into(), Some("T".into())),
                ("c4".into(), None),
                ("gone".into(), Some("NK".into())),
            ],
            column: "type".into(),
        };
        let t = cell_types(&labels, &strings(&["c1", "c2", "c3", "c4", "c5"])).unwrap();
        // T (2 cells) before B (1); NK has no cell in the data and is not a type here.
        assert_eq!(t.names, strings(&["T", "B"]));
        assert_eq!(t.ids, vec![Some(0), Some(0), Some(1), None, None]);
        assert_eq!(t.labelled(), 3);
        assert_eq!(cell_types(&labels, &strings(&["x", "y"])), None);
    }

    fn dataset(ids: &[&str], names: &[&str], has_ids: bool) -> Dataset {
        // One cell whose value in gene k is k + 1.
        let values: Vec<f32> = (1..=ids.len()).map(|v| v as f32).collect();
        let cols: Vec<u32> = (0..ids.len() as u32).collect();
        let mut matrix = Csr::with_cols(ids.len());
        matrix.push_row(&cols, &values);
        Dataset {
            matrix,
            barcodes: strings(&["c1"]),
            gene_ids: strings(ids),
            gene_names: strings(names),
            has_gene_ids: has_ids,
            batches: None,
        }
    }

    #[test]
    fn genes_are_reordered_by_id_then_by_symbol() {
        let data = dataset(&["E1", "E2", "E3"], &["A", "B", "C"], true);
        let (ids, names) = (strings(&["E3", "E1"]), strings(&["C", "A"]));
        let order = GeneOrder {
            ids: &ids,
            names: &names,
            has_ids: true,
        };
        let x = to_gene_order(&data, order).unwrap();
        assert_eq!(x.to_dense().row(0).to_vec(), vec![3.0, 1.0]);
        // Without IDs on one side, symbols are used.
        let by_symbol = GeneOrder {
            has_ids: false,
            ..order
        };
        let x = to_gene_order(&data, by_symbol).unwrap();
        assert_eq!(x.to_dense().row(0).to_vec(), vec![3.0, 1.0]);
    }

    #[test]
    fn missing_or_ambiguous_genes_are_errors() {
        let data = dataset(&["E1", "E2"], &["A", "B"], true);
        let (ids, names) = (strings(&["E1", "E9"]), strings(&["A", "Z"]));
        let order = GeneOrder {
            ids: &ids,
            names: &names,
            has_ids: true,
        };
        let msg = to_gene_order(&data, order).unwrap_err().to_string();
        assert!(
            msg.contains("1 of the checkpoint's 2 genes") && msg.contains("E9"),
            "{msg}"
        );
        let twins = dataset(&["A", "A"], &["A", "A"], false);
        let msg = to_gene_order(&twins, order).unwrap_err().to_string();
        assert!(msg.contains("repeat"), "{msg}");
    }
}
