//! Per-cell labels: a CSV whose first column is the barcode and whose second column (or the
//! column named by `--label-column`) is the label. Empty and `NA` labels mean "unlabelled".
//! Used for the Seurat cell types and for cluster assignments alike.

use super::{csv_error, csv_reader};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Labels by barcode, in file order.
#[derive(Clone, Debug)]
pub struct Labels {
    /// `(barcode, label)`, `None` for an unlabelled cell.
    pub entries: Vec<(String, Option<String>)>,
    /// The label column's header.
    pub column: String,
}

impl Labels {
    /// A barcode → label map (unlabelled cells left out).
    pub fn map(&self) -> HashMap<&str, &str> {
        self.entries
            .iter()
            .filter_map(|(b, l)| l.as_deref().map(|l| (b.as_str(), l)))
            .collect()
    }
}

/// Sorts label names naturally: numerically when every name is an integer (cluster numbers,
/// so `10` comes after `9`), otherwise as text.
pub fn natural_order(names: &mut [String]) {
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().expect("checked"));
    } else {
        names.sort();
    }
}

/// Reads a label table. `column` names the label column; by default it is the second.
pub fn read(path: &Path, column: Option<&str>) -> Result<Labels> {
    let mut reader = csv_reader(path, b',')?;
    let csv_err = |e: csv::Error| csv_error(path, e);
    let header = reader.headers().map_err(csv_err)?.clone();
    let names: Vec<&str> = header.iter().map(str::trim).collect();
    let col = match column {
        Some(name) => names.iter().position(|h| *h == name).ok_or_else(|| {
            Error::parse(
                path,
                Some(1),
                format!("no column named '{name}' (columns: {})", names.join(", ")),
            )
        })?,
        None if names.len() >= 2 => 1,
        None => {
            return Err(Error::parse(
                path,
                Some(1),
                "expected at least two columns: barcode and label",
            ))
        }
    };
    if col == 0 {
        return Err(Error::parse(
            path,
            Some(1),
            "the label column cannot be the barcode column",
        ));
    }
    let mut entries = Vec::new();
    let mut seen = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map(|p| p.line() as usize);
        let barcode = record.get(0).unwrap_or_default().trim().to_string();
        if barcode.is_empty() {
            return Err(Error::parse(path, line, "empty barcode"));
        }
        if let Some(first) = seen.insert(barcode.clone(), line) {
            return Err(Error::parse(
                path,
                line,
                format!(
                    "duplicate barcode '{barcode}' (first on line {})",
                    first.unwrap_or(0)
                ),
            ));
        }
        let label = record.get(col).map(str::trim).unwrap_or_default();
        let label = (!label.is_empty() && label != "NA").then(|| label.to_string());
        entries.push((barcode, label));
    }
    Ok(Labels {
        entries,
        column: names[col].to_string(),
    })
}
