//! 10x Genomics directories: `matrix.mtx[.gz]` with `genes.tsv[.gz]` (v1/v2: ID and symbol) or
//! `features.tsv[.gz]` (v3: ID, symbol, type), and `barcodes.tsv[.gz]`.

use super::atomic::write_atomic;
use super::{mtx, read_lines, Dataset};
use crate::csr::Csr;
use crate::error::{Error, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The first of `names` (each tried plain and gzipped) that exists in `dir`.
fn find(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .flat_map(|n| [dir.join(n), dir.join(format!("{n}.gz"))])
        .find(|p| p.is_file())
}

/// Reads a 10x directory.
pub fn read_dir(dir: &Path) -> Result<Dataset> {
    let matrix = find(dir, &["matrix.mtx"]).ok_or_else(|| {
        Error::parse(
            dir,
            None,
            "no matrix.mtx or matrix.mtx.gz in this directory (expected a 10x directory)",
        )
    })?;
    read_with_siblings(&matrix, dir)
}

/// Reads a `.mtx[.gz]` file with the genes/features and barcodes files beside it.
pub fn read_mtx_file(matrix: &Path) -> Result<Dataset> {
    let dir = matrix
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    read_with_siblings(matrix, dir)
}

fn read_with_siblings(matrix: &Path, dir: &Path) -> Result<Dataset> {
    let genes_path = find(dir, &["features.tsv", "genes.tsv"]).ok_or_else(|| {
        Error::parse(
            dir,
            None,
            "no genes.tsv[.gz] or features.tsv[.gz] beside the matrix",
        )
    })?;
    let barcodes_path = find(dir, &["barcodes.tsv"])
        .ok_or_else(|| Error::parse(dir, None, "no barcodes.tsv[.gz] beside the matrix"))?;
    let m = mtx::read(matrix)?;
    let (gene_ids, gene_names, has_gene_ids) = read_genes(&genes_path, m.n_genes)?;
    let barcodes = read_barcodes(&barcodes_path, m.n_cells)?;
    Ok(Dataset {
        matrix: m.matrix,
        barcodes,
        gene_ids,
        gene_names,
        has_gene_ids,
        batches: None,
    })
}

/// Gene IDs and symbols, one line per matrix row. One column: the name serves as both.
fn read_genes(path: &Path, expected: usize) -> Result<(Vec<String>, Vec<String>, bool)> {
    let lines = read_lines(path)?;
    let lines: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != expected {
        return Err(Error::parse(
            path,
            None,
            format!(
                "has {} genes but the matrix has {expected} rows",
                lines.len()
            ),
        ));
    }
    let (mut ids, mut names) = (Vec::with_capacity(expected), Vec::with_capacity(expected));
    let mut two_columns = true;
    for (i, line) in lines.iter().enumerate() {
        let mut f = line.split('\t');
        let id = f.next().unwrap_or_default().trim();
        if id.is_empty() {
            return Err(Error::parse(path, Some(i + 1), "empty gene identifier"));
        }
        let name = match f.next().map(str::trim) {
            Some(n) if !n.is_empty() => n,
            _ => {
                two_columns = false;
                id
            }
        };
        ids.push(id.to_string());
        names.push(name.to_string());
    }
    Ok((ids, names, two_columns))
}

/// Barcodes, one per matrix column, unique.
fn read_barcodes(path: &Path, expected: usize) -> Result<Vec<String>> {
    let lines = read_lines(path)?;
    let barcodes: Vec<String> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap_or_default().trim().to_string())
        .filter(|b| !b.is_empty())
        .collect();
    if barcodes.len() != expected {
        return Err(Error::parse(
            path,
            None,
            format!(
                "has {} barcodes but the matrix has {expected} columns",
                barcodes.len()
            ),
        ));
    }
    check_unique(path, &barcodes, 1)?;
    Ok(barcodes)
}

/// An error naming the first barcode that occurs twice; `first_line` is the line of
/// `barcodes[0]` in the file.
pub fn check_unique(path: &Path, barcodes: &[String], first_line: usize) -> Result<()> {
    let mut seen = HashSet::with_capacity(barcodes.len());
    for (i, b) in barcodes.iter().enumerate() {
        if !seen.insert(b.as_str()) {
            return Err(Error::parse(
                path,
                Some(i + first_line),
                format!("duplicate barcode '{b}'"),
            ));
        }
    }
    Ok(())
}

/// Writes a 10x directory in Cell Ranger 3's layout, which scanpy's `read_10x_mtx` and Seurat's
/// `Read10X` open as they are: `matrix.mtx.gz` (real), `features.tsv.gz` (gene ID, symbol and
/// `Gene Expression`, tab-separated) and `barcodes.tsv.gz`, each written atomically. (Both
/// tools take a folder for the older layout only when it holds an uncompressed `genes.tsv`.)
pub fn write_dir(dir: &Path, d: &Dataset, comment: &str) -> Result<()> {
    super::atomic::ensure_dir(dir)?;
    // Buffer in front of the compressor: it is slow when fed one short line at a time.
    let gz = |w: &mut dyn Write, body: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| {
        let mut buffered =
            std::io::BufWriter::with_capacity(1 << 16, GzEncoder::new(w, Compression::fast()));
        body(&mut buffered)?;
        buffered
            .into_inner()
            .map_err(|e| e.into_error())?
            .finish()
            .map(|_| ())
    };
    write_atomic(&dir.join("features.tsv.gz"), |w| {
        gz(w, &|w| {
            for (id, name) in d.gene_ids.iter().zip(&d.gene_names) {
                writeln!(w, "{id}\t{name}\tGene Expression")?;
            }
            Ok(())
        })
    })?;
    write_atomic(&dir.join("barcodes.tsv.gz"), |w| {
        gz(w, &|w| {
            for b in &d.barcodes {
                writeln!(w, "{b}")?;
            }
            Ok(())
        })
    })?;
    write_atomic(&dir.join("matrix.mtx.gz"), |w| {
        gz(w, &|w| mtx::write(w, &d.matrix, comment))
    })
}

/// A dataset from a dense cells × genes array (tests and small inputs).
pub fn from_dense(
    values: &ndarray::Array2<f32>,
    barcodes: Vec<String>,
    genes: Vec<String>,
) -> Dataset {
    let m = Csr::from_dense(values);
    Dataset {
        matrix: m,
        barcodes,
        gene_ids: genes.clone(),
        gene_names: genes,
        has_gene_ids: false,
        batches: None,
    }
}
