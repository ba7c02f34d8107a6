//! Reading and writing: 10x MatrixMarket directories, dense CSV matrices, labels, and atomic
//! output files.
//!
//! Every reader returns a [`Dataset`]: a cells × genes CSR count (or value) matrix with its
//! barcodes and gene identifiers. The matrix is never densified.

pub mod align;
pub mod atlas;
pub mod atomic;
pub mod batches;
pub mod csv_matrix;
pub mod h5ad_stream;
pub mod h5ad_write;
pub mod hdf5;
pub mod labels;
pub mod mtx;
pub mod table;
pub mod tenx;

use crate::csr::Csr;
use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// A cells × genes matrix with its names.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `(cells, genes)`, raw counts or already-normalized values.
    pub matrix: Csr<f32>,
    pub barcodes: Vec<String>,
    /// Stable gene identifiers (Ensembl IDs for 10x data; the symbol when the input has none).
    pub gene_ids: Vec<String>,
    /// Gene symbols (equal to `gene_ids` when the input has only one name per gene).
    pub gene_names: Vec<String>,
    /// Whether the input carried separate gene IDs (10x genes/features files with 2+ columns).
    pub has_gene_ids: bool,
    /// The batch of each cell, when the run was given batches.
    pub batches: Option<batches::CellBatches>,
}

impl Dataset {
    pub fn n_cells(&self) -> usize {
        self.matrix.n_rows
    }

    pub fn n_genes(&self) -> usize {
        self.matrix.n_cols
    }

    /// True when every stored value is a non-negative integer (raw counts).
    pub fn is_integer(&self) -> bool {
        self.matrix.data.iter().all(|v| v.fract() == 0.0)
    }
}

/// How to read the input.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// For CSV input: rows are genes and columns are cells.
    pub transpose: bool,
    /// For `.h5ad` input: which matrix (`X`, a layer, or `raw/X`).
    pub h5ad: hdf5::H5adOptions,
}

/// Reads a 10x directory, a `.mtx[.gz]` file (with its sibling genes/barcodes files), a
/// `.csv[.gz]` matrix, an AnnData `.h5ad` or a Cell Ranger `.h5` file.
pub fn read_dataset(path: &Path, opts: &ReadOptions) -> Result<Dataset> {
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if path.is_dir() {
        tenx::read_dir(path)
    } else if name.ends_with(".mtx") || name.ends_with(".mtx.gz") {
        tenx::read_mtx_file(path)
    } else if name.ends_with(".h5ad") {
        hdf5::read_h5ad(path, &opts.h5ad)
    } else if name.ends_with(".h5") || name.ends_with(".hdf5") {
        hdf5::read_10x_h5(path)
    } else if name.ends_with(".csv")
        || name.ends_with(".csv.gz")
        || name.ends_with(".tsv")
        || name.ends_with(".tsv.gz")
    {
        csv_matrix::read(path, opts.transpose)
    } else {
        Err(Error::parse(
            path,
            None,
            "unrecognised input: expected a 10x directory, a .mtx[.gz] file, a .csv[.gz] matrix, an .h5ad or a 10x .h5 file",
        ))
    }
}

/// Where each cell's batch comes from.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum BatchSource {
    /// No batches (or, with several inputs, one batch per input).
    #[default]
    None,
    /// An `.h5ad` obs column.
    ObsColumn(String),
    /// A `barcode,batch` CSV (the batch in its second column).
    Table(std::path::PathBuf),
}

/// Reads every input ([`read_dataset`]) as one dataset, with the batches `source` names:
/// several inputs are joined, each one batch ([`batches::join_inputs`]). Returns notes for
/// the user.
pub fn read_inputs(
    paths: &[std::path::PathBuf],
    opts: &ReadOptions,
    source: &BatchSource,
) -> Result<(Dataset, Vec<String>)> {
    let Some(first) = paths.first() else {
        return Err(Error::invalid("no input: give --data"));
    };
    let (mut d, mut notes) = if paths.len() == 1 {
        (read_dataset(first, opts)?, Vec::new())
    } else {
        if *source != BatchSource::None {
            return Err(Error::invalid(
                "several --data inputs are one batch each: --batch-key and --batches cannot \
                 be given with them",
            ));
        }
        let inputs = paths
            .iter()
            .map(|p| Ok((p.clone(), read_dataset(p, opts)?)))
            .collect::<Result<Vec<_>>>()?;
        batches::join_inputs(inputs)?
    };
    match source {
        BatchSource::None => {}
        BatchSource::ObsColumn(column) => {
            if !is_h5ad(first) {
                return Err(Error::invalid(format!(
                    "--batch-key reads an .h5ad obs column, but {} is not an .h5ad \
                     (use --batches FILE for other formats)",
                    first.display()
                )));
            }
            let l = hdf5::read_h5ad_labels(first, column)?;
            d.batches = Some(batches::CellBatches::from_labels(&l, &d.barcodes, first)?);
        }
        BatchSource::Table(path) => {
            let l = labels::read(path, None)?;
            d.batches = Some(batches::CellBatches::from_labels(&l, &d.barcodes, path)?);
        }
    }
    if let Some(b) = &d.batches {
        notes.push(b.describe());
    }
    Ok((d, notes))
}

/// Whether `path` names an AnnData file.
pub fn is_h5ad(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("h5ad"))
}

/// Opens a file for buffered reading, decompressing it when it starts with the gzip magic bytes.
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(|e| Error::io(path, e))?;
    drop(file);
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(BufReader::new(file)),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A CSV reader over `path` (gzip or not) that expects a header row.
pub fn csv_reader(path: &Path, delimiter: u8) -> Result<csv::Reader<Box<dyn BufRead>>> {
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(open_text(path)?))
}

/// Turns a csv crate error into one naming `path`, the line, and (for a ragged row) the
/// field counts.
pub fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map(|p| p.line() as usize);
    let msg = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("row has {len} fields, expected {expected_len} like the header")
        }
        _ => format!("cannot parse CSV: {e}"),
    };
    Error::parse(path, line, msg)
}

/// The header of a CSV read by [`csv_reader`]: its value columns (all but the first), or an
/// error saying `expected` when there are fewer than two columns.
pub fn value_columns(
    path: &Path,
    reader: &mut csv::Reader<Box<dyn BufRead>>,
    expected: &str,
) -> Result<Vec<String>> {
    let header = reader.headers().map_err(|e| csv_error(path, e))?;
    if header.len() < 2 {
        return Err(Error::parse(path, Some(1), expected.to_string()));
    }
    Ok(header
        .iter()
        .skip(1)
        .map(|s| s.trim().to_string())
        .collect())
}

/// Reads all lines of a text file (gzip or not), mapping decoder failures (a truncated gzip
/// stream, invalid UTF-8) to an error naming the file and line.
pub fn read_lines(path: &Path) -> Result<Vec<String>> {
    let reader = open_text(path)?;
    let mut lines = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        lines.push(line.map_err(|e| Error::parse(path, Some(i + 1), format!("cannot read: {e}")))?);
    }
    Ok(lines)
}
