//! Which batch (sample, donor, run, platform) each cell comes from: from an `.h5ad` obs
//! column (`--batch-key`), from a `barcode,batch` CSV (`--batches`), or one batch per input
//! when several `--data` are given ([`join_inputs`]). Every cell must have a batch: a missing
//! value or a barcode the batch table lacks is an error naming it.

use super::labels::{natural_order, Labels};
use super::Dataset;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// The batch of every cell of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellBatches {
    /// Batch names, in natural order (numbers numerically, else as text).
    pub names: Vec<String>,
    /// Per cell, the index into `names`.
    pub ids: Vec<u32>,
}

impl CellBatches {
    /// One batch named `name` for `n` cells.
    pub fn single(name: &str, n: usize) -> Self {
        CellBatches {
            names: vec![name.to_string()],
            ids: vec![0; n],
        }
    }

    /// The batches `labels` give the cells `barcodes`, read from `source`: every cell needs
    /// one.
    pub fn from_labels(labels: &Labels, barcodes: &[String], source: &Path) -> Result<Self> {
        let by_barcode: HashMap<&str, Option<&str>> = labels
            .entries
            .iter()
            .map(|(b, l)| (b.as_str(), l.as_deref()))
            .collect();
        let mut per_cell = Vec::with_capacity(barcodes.len());
        for b in barcodes {
            match by_barcode.get(b.as_str()) {
                Some(Some(batch)) => per_cell.push(*batch),
                Some(None) => {
                    return Err(Error::data(format!(
                        "{}: cell '{b}' has no batch (column '{}'): every cell needs one",
                        source.display(),
                        labels.column
                    )))
                }
                None => {
                    return Err(Error::data(format!(
                        "{}: no batch for cell '{b}' of the data (column '{}')",
                        source.display(),
                        labels.column
                    )))
                }
            }
        }
        let mut names: Vec<String> = per_cell.iter().map(|s| s.to_string()).collect();
        names.sort();
        names.dedup();
        natural_order(&mut names);
        let index: HashMap<&str, u32> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i as u32))
            .collect();
        Ok(CellBatches {
            ids: per_cell.iter().map(|b| index[b]).collect(),
            names,
        })
    }

    pub fn n_batches(&self) -> usize {
        self.names.len()
    }

    /// Cells per batch.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0usize; self.names.len()];
        self.ids.iter().for_each(|&b| c[b as usize] += 1);
        c
    }

    /// The cells `rows`, in that order; batches left without a cell are dropped and the
    /// rest renumbered in their order.
    pub fn select(&self, rows: &[usize]) -> Self {
        let mut kept = vec![false; self.names.len()];
        rows.iter().for_each(|&r| kept[self.ids[r] as usize] = true);
        let mut new_id = vec![u32::MAX; self.names.len()];
        let mut names = Vec::new();
        for (b, name) in self.names.iter().enumerate() {
            if kept[b] {
                new_id[b] = names.len() as u32;
                names.push(name.clone());
            }
        }
        CellBatches {
            names,
            ids: rows.iter().map(|&r| new_id[self.ids[r] as usize]).collect(),
        }
    }

    /// One line for the user: the batches and their cells.
    pub fn describe(&self) -> String {
        let counts = self.counts();
        let parts: Vec<String> = self
            .names
            .iter()
            .zip(&counts)
            .map(|(n, c)| format!("{n} ({c} cells)"))
            .collect();
        let plural = if self.names.len() == 1 { "" } else { "es" };
        format!("{} batch{plural}: {}", self.names.len(), parts.join(", "))
    }
}

/// The name a file or directory gives its batch: its file name without `.gz` and the format's
/// extension (`runs/sample1.h5ad` → `sample1`, `filtered_feature_bc_matrix/` → itself).
pub fn input_name(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("input")
        .to_string();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    for ext in [".h5ad", ".h5", ".hdf5", ".mtx", ".csv", ".tsv"] {
        if let Some(stem) = name.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    name.to_string()
}

/// Several inputs as one dataset, each input a batch named after it ([`input_name`]): their
/// genes joined on gene IDs (symbols when no input has IDs; inputs that disagree on that are
/// an error naming both files), in the first input's order; genes missing from any input are
/// dropped. Barcodes that repeat across inputs get `-<batch>` appended. Returns the dataset
/// and notes for the user.
pub fn join_inputs(inputs: Vec<(std::path::PathBuf, Dataset)>) -> Result<(Dataset, Vec<String>)> {
    let mut notes = Vec::new();
    let names: Vec<String> = inputs.iter().map(|(p, _)| input_name(p)).collect();
    for (i, a) in names.iter().enumerate() {
        if let Some(j) = names[..i].iter().position(|b| b == a) {
            return Err(Error::invalid(format!(
                "{} and {} would both be batch '{a}': give inputs distinct names",
                inputs[j].0.display(),
                inputs[i].0.display()
            )));
        }
    }
    let (first_path, first) = &inputs[0];
    for (p, d) in &inputs[1..] {
        if d.has_gene_ids != first.has_gene_ids {
            let (with, without) = if d.has_gene_ids {
                (p, first_path)
            } else {
                (first_path, p)
            };
            return Err(Error::data(format!(
                "{} has gene IDs but {} has only gene symbols: inputs must name their genes \
                 the same way to be joined",
                with.display(),
                without.display()
            )));
        }
    }
    let key = |d: &Dataset| -> Vec<String> {
        if first.has_gene_ids {
            d.gene_ids.clone()
        } else {
            d.gene_names.clone()
        }
    };
    let positions: Vec<HashMap<String, usize>> = inputs
        .iter()
        .map(|(_, d)| {
            key(d)
                .into_iter()
                .enumerate()
                .map(|(i, g)| (g, i))
                .collect()
        })
        .collect();
    let common: Vec<usize> = (0..first.n_genes())
        .filter(|&g| {
            let id = &key(first)[g];
            positions.iter().all(|p| p.contains_key(id))
        })
        .collect();
    if common.is_empty() {
        return Err(Error::data(
            "the inputs share no gene: they cannot be joined into one dataset",
        ));
    }
    let total_genes: std::collections::HashSet<&String> =
        positions.iter().flat_map(|p| p.keys()).collect();
    notes.push(format!(
        "joined {} inputs on gene {}: {} genes in every input kept, {} dropped",
        inputs.len(),
        if first.has_gene_ids { "IDs" } else { "symbols" },
        common.len(),
        total_genes.len() - common.len()
    ));
    let first_keys = key(first);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (_, d) in &inputs {
        for b in &d.barcodes {
            *seen.entry(b.clone()).or_default() += 1;
        }
    }
    let repeated = seen.values().any(|&c| c > 1);
    if repeated {
        notes.push("barcodes repeat across inputs: each has '-<batch>' appended".into());
    }
    let mut matrix = crate::csr::Csr::with_cols(common.len());
    let (mut barcodes, mut ids) = (Vec::new(), Vec::new());
    let mut row: Vec<(u32, f32)> = Vec::new();
    for (b, ((_, d), pos)) in inputs.iter().zip(&positions).enumerate() {
        // Column of each of this input's genes in the joined matrix.
        let mut new_index = vec![None; d.n_genes()];
        for (k, &g) in common.iter().enumerate() {
            new_index[pos[&first_keys[g]]] = Some(k as u32);
        }
        for i in 0..d.n_cells() {
            let (cols, vals) = d.matrix.row(i);
            row.clear();
            row.extend(
                cols.iter()
                    .zip(vals)
                    .filter_map(|(&c, &v)| new_index[c as usize].map(|nc| (nc, v))),
            );
            row.sort_unstable_by_key(|e| e.0);
            let (c, v): (Vec<u32>, Vec<f32>) = row.iter().copied().unzip();
            matrix.push_row(&c, &v);
            barcodes.push(if repeated {
                format!("{}-{}", d.barcodes[i], names[b])
            } else {
                d.barcodes[i].clone()
            });
            ids.push(b as u32);
        }
    }
    let dataset = Dataset {
        matrix,
        barcodes,
        gene_ids: common.iter().map(|&g| first.gene_ids[g].clone()).collect(),
        gene_names: common
            .iter()
            .map(|&g| first.gene_names[g].clone())
            .collect(),
        has_gene_ids: first.has_gene_ids,
        batches: Some(CellBatches { names, ids }),
    };
    Ok((dataset, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(entries: &[(&str, Option<&str>)]) -> Labels {
        Labels {
            entries: entries
                .iter()
                .map(|(b, l)| (b.to_string(), l.map(str::to_string)))
                .collect(),
            column: "batch".into(),
        }
    }

    #[test]
    fn batches_of_cells_and_their_errors() {
        let l = labels(&[("a", Some("s2")), ("b", Some("s10")), ("c", Some("s2"))]);
        let cells: Vec<String> = ["c", "b", "a"].map(String::from).to_vec();
        let b = CellBatches::from_labels(&l, &cells, Path::new("t.csv")).unwrap();
        assert_eq!(b.names, ["s10", "s2"]);
        assert_eq!(b.ids, [1, 0, 1]);
        assert_eq!(b.counts(), [1, 2]);
        assert_eq!(
            b.select(&[0, 2]).names,
            ["s2"],
            "an emptied batch is dropped"
        );
        let missing = labels(&[("a", Some("s1")), ("b", None)]);
        let e = CellBatches::from_labels(&missing, &cells[1..], Path::new("t.csv"));
        assert!(e.unwrap_err().to_string().contains("'b' has no batch"));
        let e = CellBatches::from_labels(&l, &["z".to_string()], Path::new("t.csv"));
        assert!(e.unwrap_err().to_string().contains("no batch for cell 'z'"));
    }

    #[test]
    fn input_names() {
        assert_eq!(input_name(Path::new("runs/sample1.h5ad")), "sample1");
        assert_eq!(input_name(Path::new("x/matrix.mtx.gz")), "matrix");
        assert_eq!(input_name(Path::new("data/pbmc3k")), "pbmc3k");
    }

    fn dataset(genes: &[&str], ids: bool, cells: &[&str], rows: &[&[(u32, f32)]]) -> Dataset {
        let mut m = crate::csr::Csr::with_cols(genes.len());
        for r in rows {
            let (c, v): (Vec<u32>, Vec<f32>) = r.iter().copied().unzip();
            m.push_row(&c, &v);
        }
        Dataset {
            matrix: m,
            barcodes: cells.iter().map(|s| s.to_string()).collect(),
            gene_ids: genes.iter().map(|s| s.to_string()).collect(),
            gene_names: genes.iter().map(|s| format!("sym-{s}")).collect(),
            has_gene_ids: ids,
            batches: None,
        }
    }

    #[test]
    fn inputs_join_on_shared_genes() {
        let a = dataset(
            &["g1", "g2", "g3"],
            true,
            &["x", "y"],
            &[&[(0, 1.0), (2, 3.0)], &[(1, 2.0)]],
        );
        let b = dataset(
            &["g3", "g1", "g9"],
            true,
            &["x"],
            &[&[(0, 5.0), (1, 7.0), (2, 1.0)]],
        );
        let (d, notes) =
            join_inputs(vec![("a.h5ad".into(), a.clone()), ("b.h5ad".into(), b)]).unwrap();
        assert_eq!(d.gene_ids, ["g1", "g3"]);
        assert_eq!(d.barcodes, ["x-a", "y-a", "x-b"]);
        assert_eq!(d.matrix.to_dense().row(2).to_vec(), [7.0, 5.0]);
        assert_eq!(d.batches.unwrap().ids, [0, 0, 1]);
        assert!(
            notes[0].contains("2 genes in every input kept, 2 dropped"),
            "{notes:?}"
        );
        let symbols = dataset(&["g1"], false, &["z"], &[&[(0, 1.0)]]);
        let e = join_inputs(vec![("a.h5ad".into(), a), ("c.csv".into(), symbols)]);
        let msg = e.unwrap_err().to_string();
        assert!(msg.contains("a.h5ad") && msg.contains("c.csv"), "{msg}");
    }
}
