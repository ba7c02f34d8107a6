//! Dense expression tables in CSV (or TSV) form, gzip or not.
//!
//! Default layout: a header `barcode,GENE1,GENE2,…` and one cell per row. With `transpose`:
//! a header `gene,CELL1,CELL2,…` and one gene per row. Values must be finite and
//! non-negative; rows must all have the header's length. Only nonzeros are kept.

use super::{csv_error, csv_reader, tenx::check_unique, value_columns, Dataset};
use crate::csr::Csr;
use crate::error::{Error, Result};
use std::path::Path;

/// Reads a CSV matrix into a cells × genes dataset.
pub fn read(path: &Path, transpose: bool) -> Result<Dataset> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    let delimiter = if name.ends_with(".tsv") || name.ends_with(".tsv.gz") {
        b'\t'
    } else {
        b','
    };
    let mut reader = csv_reader(path, delimiter)?;
    let csv_err = |e: csv::Error| csv_error(path, e);
    let columns = value_columns(
        path,
        &mut reader,
        "expected a header with an ID column and at least one value column",
    )?;
    let mut row_names = Vec::new();
    let mut triplets: Vec<(u32, u32, f32)> = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut row = 0u32;
    while reader.read_record(&mut record).map_err(csv_err)? {
        let line = record.position().map(|p| p.line() as usize);
        row_names.push(record.get(0).unwrap_or_default().trim().to_string());
        for (j, field) in record.iter().skip(1).enumerate() {
            let field = field.trim();
            let v: f64 = field.parse().map_err(|_| {
                Error::parse(
                    path,
                    line,
                    format!("column {}: '{field}' is not a number", j + 2),
                )
            })?;
            if !v.is_finite() || v < 0.0 {
                return Err(Error::parse(
                    path,
                    line,
                    format!("column {}: value {v} is not allowed: expected a finite, non-negative number", j + 2),
                ));
            }
            if v != 0.0 {
                triplets.push((row, j as u32, v as f32));
            }
        }
        row += 1;
    }
    if row_names.is_empty() {
        return Err(Error::parse(path, None, "no data rows after the header"));
    }
    let (barcodes, genes, matrix) = if transpose {
        let t = triplets.into_iter().map(|(r, c, v)| (c, r, v)).collect();
        (
            columns.clone(),
            row_names,
            Csr::from_triplets(columns.len(), row as usize, t, |a, b| a + b),
        )
    } else {
        let n = columns.len();
        (
            row_names,
            columns,
            Csr::from_triplets(row as usize, n, triplets, |a, b| a + b),
        )
    };
    check_unique(path, &barcodes, if transpose { 1 } else { 2 })?;
    Ok(Dataset {
        matrix,
        barcodes,
        gene_ids: genes.clone(),
        gene_names: genes,
        has_gene_ids: false,
        batches: None,
    })
}
