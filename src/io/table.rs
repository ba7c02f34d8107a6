//! Numeric tables with a leading `barcode` column: latent codes, t-SNE coordinates. Every CSV
//! cellvae writes starts with `barcode`.

use super::atomic::write_atomic;
use super::{csv_error, csv_reader, value_columns};
use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// A numeric table read back from CSV.
#[derive(Clone, Debug)]
pub struct Table {
    pub barcodes: Vec<String>,
    pub columns: Vec<String>,
    pub values: Array2<f64>,
}

/// Writes `barcode,<columns…>` and one row per barcode, atomically.
pub fn write(
    path: &Path,
    columns: &[String],
    barcodes: &[String],
    values: &Array2<f64>,
) -> Result<()> {
    assert_eq!(values.nrows(), barcodes.len());
    write_atomic(path, |w| {
        write!(w, "barcode")?;
        for c in columns {
            write!(w, ",{c}")?;
        }
        writeln!(w)?;
        for (b, row) in barcodes.iter().zip(values.rows()) {
            write!(w, "{b}")?;
            for v in row {
                write!(w, ",{v}")?;
            }
            writeln!(w)?;
        }
        Ok(())
    })
}

/// Reads a table written by [`write()`] (or any CSV of that shape). Every value must be a finite
/// number and every row as long as the header.
pub fn read(path: &Path) -> Result<Table> {
    let mut reader = csv_reader(path, b',')?;
    let csv_err = |e: csv::Error| csv_error(path, e);
    let columns = value_columns(
        path,
        &mut reader,
        "expected a header 'barcode,<value columns…>'",
    )?;
    let (mut barcodes, mut flat) = (Vec::new(), Vec::new());
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map(|p| p.line() as usize);
        barcodes.push(record.get(0).unwrap_or_default().trim().to_string());
        for (j, f) in record.iter().skip(1).enumerate() {
            let v: f64 = f
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| {
                    Error::parse(
                        path,
                        line,
                        format!("column '{}': '{f}' is not a finite number", columns[j]),
                    )
                })?;
            flat.push(v);
        }
    }
    if barcodes.is_empty() {
        return Err(Error::parse(path, None, "no data rows after the header"));
    }
    super::tenx::check_unique(path, &barcodes, 2)?;
    let values = Array2::from_shape_vec((barcodes.len(), columns.len()), flat)
        .map_err(|e| Error::parse(path, None, e.to_string()))?;
    Ok(Table {
        barcodes,
        columns,
        values,
    })
}
