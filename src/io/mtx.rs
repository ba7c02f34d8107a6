//! MatrixMarket `coordinate` files, the format of 10x's `matrix.mtx`.
//!
//! Accepted: `%%MatrixMarket matrix coordinate integer|real general`, any number of `%`
//! comment lines, a size line `rows cols entries`, then one `row col value` line per entry,
//! 1-based, in any order (cell by cell, as 10x writes them, is read straight into the
//! matrix; see [`read`]). Values must be finite and non-negative (they are counts or
//! normalized expression). Rows are genes and columns are cells, as 10x writes them.

use crate::csr::Csr;
use crate::error::{Error, Result};
use std::io::{BufRead, Write};
use std::path::Path;

/// A MatrixMarket file's matrix, transposed to cells × genes.
#[derive(Debug)]
pub struct CellsByGenes {
    /// Genes (the file's rows).
    pub n_genes: usize,
    /// Cells (the file's columns).
    pub n_cells: usize,
    pub matrix: Csr<f32>,
}

/// Reads and validates a MatrixMarket coordinate file (gzip or not) as cells × genes.
///
/// Entries that come cell by cell (column-major, as 10x and [`write()`] write them) go straight
/// into the CSR matrix as they are read, one cell's entries at a time: 8 bytes per nonzero,
/// the file never held as triplets. At the first entry of an earlier cell than the one
/// before it, the entries read so far become triplets (12 bytes per entry) and the rest is
/// read as such, then sorted by cell once (`cells_by_genes`): any order is accepted, at
/// that memory. Explicit zeros are dropped; a position given twice is an error.
pub fn read(path: &Path) -> Result<CellsByGenes> {
    let mut reader = super::open_text(path)?;
    let mut buf = Vec::with_capacity(256);
    let mut line_no = 0usize;
    let mut next_line = |buf: &mut Vec<u8>, line_no: &mut usize| -> Result<bool> {
        buf.clear();
        *line_no += 1;
        let n = reader
            .read_until(b'\n', buf)
            .map_err(|e| Error::parse(path, Some(*line_no), format!("cannot read: {e}")))?;
        Ok(n > 0)
    };

    if !next_line(&mut buf, &mut line_no)? {
        return Err(Error::parse(
            path,
            Some(1),
            "empty file: expected a %%MatrixMarket header",
        ));
    }
    check_header(path, &buf)?;

    // Size line, after comments.
    let (n_rows, n_cols, nnz) = loop {
        if !next_line(&mut buf, &mut line_no)? {
            return Err(Error::parse(
                path,
                Some(line_no),
                "missing the size line 'rows cols entries'",
            ));
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|_| Error::parse(path, Some(line_no), "not UTF-8 text"))?;
        let t = line.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let nums: Vec<Option<usize>> = t.split_whitespace().map(|w| w.parse().ok()).collect();
        match nums.as_slice() {
            [Some(r), Some(c), Some(n)] => break (*r, *c, *n),
            _ => {
                return Err(Error::parse(
                    path,
                    Some(line_no),
                    format!("expected the size line 'rows cols entries' (three non-negative integers), found '{t}'"),
                ))
            }
        }
    };
    if n_rows > u32::MAX as usize || n_cols > u32::MAX as usize {
        return Err(Error::parse(
            path,
            Some(line_no),
            "matrix dimensions exceed 2^32",
        ));
    }

    let mut entries = Entries::ByCell(ByCell::new(n_rows, nnz.min(1 << 28)));
    let mut read = 0usize;
    while next_line(&mut buf, &mut line_no)? {
        let line = std::str::from_utf8(&buf)
            .map_err(|_| Error::parse(path, Some(line_no), "not UTF-8 text"))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('%') {
            continue;
        }
        if read == nnz {
            return Err(Error::parse(
                path,
                Some(line_no),
                format!("more entries than the {nnz} the size line promises"),
            ));
        }
        let (r, c, v) = parse_entry(path, line_no, line, (n_rows, n_cols))?;
        read += 1;
        if let Entries::ByCell(b) = &mut entries {
            if c as usize >= b.open_cell {
                b.push(path, r, c, v)?;
                continue;
            }
            // An earlier cell again: the file is not in cell order.
            entries = Entries::Triplets(std::mem::replace(b, ByCell::new(0, 0)).into_triplets());
        }
        if let Entries::Triplets(t) = &mut entries {
            t.push(r, c, v);
        }
    }
    if read != nnz {
        return Err(Error::parse(
            path,
            None,
            format!("the size line promises {nnz} entries but the file has {read} (truncated?)"),
        ));
    }
    let matrix = match entries {
        Entries::ByCell(b) => b.finish(path, n_cols)?,
        Entries::Triplets(t) => cells_by_genes(&t, (n_rows, n_cols), path)?,
    };
    Ok(CellsByGenes {
        n_genes: n_rows,
        n_cells: n_cols,
        matrix,
    })
}

/// Checks the first line: `%%MatrixMarket matrix coordinate integer|real general`.
fn check_header(path: &Path, line: &[u8]) -> Result<()> {
    let header = String::from_utf8_lossy(line).to_ascii_lowercase();
    let words: Vec<&str> = header.split_whitespace().collect();
    if words.len() != 5 || words[0] != "%%matrixmarket" || words[1] != "matrix" {
        return Err(Error::parse(
            path,
            Some(1),
            "expected the header '%%MatrixMarket matrix coordinate integer|real general'",
        ));
    }
    if words[2] != "coordinate" || !matches!(words[3], "integer" | "real") || words[4] != "general"
    {
        return Err(Error::parse(
            path,
            Some(1),
            format!(
                "unsupported MatrixMarket variant '{} {} {}': expected 'coordinate integer|real general'",
                words[2], words[3], words[4]
            ),
        ));
    }
    Ok(())
}

/// One `row col value` line: 0-based gene and cell, and the value (finite, non-negative).
fn parse_entry(
    path: &Path,
    line_no: usize,
    line: &str,
    (n_rows, n_cols): (usize, usize),
) -> Result<(u32, u32, f32)> {
    let mut it = line.split_ascii_whitespace();
    let (r, c, v) = (it.next(), it.next(), it.next());
    let (Some(r), Some(c), Some(v), None) = (r, c, v, it.next()) else {
        return Err(Error::parse(
            path,
            Some(line_no),
            format!("expected 'row col value', found '{line}'"),
        ));
    };
    let index = |s: &str, n: usize, what: &str| -> Result<u32> {
        match s.parse::<usize>() {
            Ok(i) if (1..=n).contains(&i) => Ok((i - 1) as u32),
            Ok(i) => Err(Error::parse(
                path,
                Some(line_no),
                format!("{what} index {i} is out of range 1..={n}"),
            )),
            Err(_) => Err(Error::parse(
                path,
                Some(line_no),
                format!("{what} index '{s}' is not a positive integer"),
            )),
        }
    };
    let (r, c) = (index(r, n_rows, "row")?, index(c, n_cols, "column")?);
    let v: f64 = v
        .parse()
        .map_err(|_| Error::parse(path, Some(line_no), format!("value '{v}' is not a number")))?;
    if !v.is_finite() || v < 0.0 {
        return Err(Error::parse(
            path,
            Some(line_no),
            format!("value {v} is not allowed: expected a finite, non-negative number"),
        ));
    }
    Ok((r, c, v as f32))
}

/// Where the entries go while the file is read.
enum Entries {
    /// So far cell by cell: straight into the matrix.
    ByCell(ByCell),
    /// Not in cell order: kept as read, sorted at the end.
    Triplets(Triplets),
}

/// A cells × genes CSR built as the entries arrive cell by cell: the rows before
/// `open_cell` are done, `open_cell`'s entries gather in `row`.
struct ByCell {
    m: Csr<f32>,
    open_cell: usize,
    row: Vec<(u32, f32)>,
}

impl ByCell {
    fn new(n_genes: usize, capacity: usize) -> Self {
        let mut m = Csr::with_cols(n_genes);
        m.indices.reserve(capacity);
        m.data.reserve(capacity);
        ByCell {
            m,
            open_cell: 0,
            row: Vec::new(),
        }
    }

    /// Adds gene `g`'s value `v` in cell `c` (not before the open cell).
    fn push(&mut self, path: &Path, g: u32, c: u32, v: f32) -> Result<()> {
        while self.open_cell < c as usize {
            self.close_row(path)?;
        }
        if v != 0.0 {
            self.row.push((g, v));
        }
        Ok(())
    }

    /// Ends the open cell's row (its genes sorted, a gene twice an error) and opens the next.
    fn close_row(&mut self, path: &Path) -> Result<()> {
        if !self.row.windows(2).all(|w| w[0].0 < w[1].0) {
            self.row.sort_unstable_by_key(|e| e.0);
            if let Some(w) = self.row.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(duplicate(path, w[0].0, self.open_cell));
            }
        }
        self.m.indices.extend(self.row.iter().map(|e| e.0));
        self.m.data.extend(self.row.iter().map(|e| e.1));
        self.m.indptr.push(self.m.indices.len());
        self.m.n_rows += 1;
        self.row.clear();
        self.open_cell += 1;
        Ok(())
    }

    /// The matrix of `n_cells` rows, every row closed.
    fn finish(mut self, path: &Path, n_cells: usize) -> Result<Csr<f32>> {
        while self.open_cell < n_cells {
            self.close_row(path)?;
        }
        Ok(self.m)
    }

    /// The entries so far, as triplets (the closed rows, then the open one).
    fn into_triplets(self) -> Triplets {
        let mut t = Triplets::default();
        for cell in 0..self.m.n_rows {
            let (genes, vals) = self.m.row(cell);
            for (&g, &v) in genes.iter().zip(vals) {
                t.push(g, cell as u32, v);
            }
        }
        for &(g, v) in &self.row {
            t.push(g, self.open_cell as u32, v);
        }
        t
    }
}

/// Entries in the file's order: gene, cell, value.
#[derive(Debug, Default)]
struct Triplets {
    genes: Vec<u32>,
    cells: Vec<u32>,
    vals: Vec<f32>,
}

impl Triplets {
    fn push(&mut self, g: u32, c: u32, v: f32) {
        if v != 0.0 {
            self.genes.push(g);
            self.cells.push(c);
            self.vals.push(v);
        }
    }
}

fn duplicate(path: &Path, gene: u32, cell: usize) -> Error {
    Error::parse(
        path,
        None,
        format!(
            "entry (row {}, column {}) appears more than once",
            gene + 1,
            cell + 1
        ),
    )
}

/// Triplets of a genes × cells file as cells × genes CSR: a counting sort by cell, then each
/// row sorted by gene; a position given twice is an error.
fn cells_by_genes(
    t: &Triplets,
    (n_genes, n_cells): (usize, usize),
    path: &Path,
) -> Result<Csr<f32>> {
    let mut indptr = vec![0usize; n_cells + 1];
    for &c in &t.cells {
        indptr[c as usize + 1] += 1;
    }
    for i in 0..n_cells {
        indptr[i + 1] += indptr[i];
    }
    let nnz = indptr[n_cells];
    let mut indices = vec![0u32; nnz];
    let mut data = vec![0f32; nnz];
    let mut next = indptr[..n_cells].to_vec();
    for ((&g, &c), &v) in t.genes.iter().zip(&t.cells).zip(&t.vals) {
        let slot = &mut next[c as usize];
        indices[*slot] = g;
        data[*slot] = v;
        *slot += 1;
    }
    let mut pairs: Vec<(u32, f32)> = Vec::new();
    for cell in 0..n_cells {
        let (a, b) = (indptr[cell], indptr[cell + 1]);
        let row = &indices[a..b];
        if !row.windows(2).all(|w| w[0] < w[1]) {
            pairs.clear();
            pairs.extend(row.iter().copied().zip(data[a..b].iter().copied()));
            pairs.sort_unstable_by_key(|p| p.0);
            for (k, &(g, v)) in pairs.iter().enumerate() {
                indices[a + k] = g;
                data[a + k] = v;
            }
            if let Some(w) = indices[a..b].windows(2).find(|w| w[0] == w[1]) {
                return Err(duplicate(path, w[0], cell));
            }
        }
    }
    Ok(Csr {
        n_rows: n_cells,
        n_cols: n_genes,
        indptr,
        indices,
        data,
    })
}

/// Writes a cells × genes matrix as 10x does: genes × cells, `coordinate real general`,
/// entries column by column (cell by cell), rows (genes) ascending.
pub fn write(w: &mut dyn Write, m: &Csr<f32>, comment: &str) -> std::io::Result<()> {
    writeln!(w, "%%MatrixMarket matrix coordinate real general")?;
    writeln!(w, "% {comment}")?;
    writeln!(w, "{} {} {}", m.n_cols, m.n_rows, m.nnz())?;
    for cell in 0..m.n_rows {
        let (genes, vals) = m.row(cell);
        for (&g, &v) in genes.iter().zip(vals) {
            writeln!(w, "{} {} {}", g + 1, cell + 1, v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `lines` after a header and a size line for 3 genes × 4 cells, from a file
    /// removed again.
    fn read_lines(name: &str, lines: &[&str]) -> Result<CellsByGenes> {
        let dir = std::env::temp_dir().join(format!("cellvae-mtx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let mut text = format!(
            "%%MatrixMarket matrix coordinate integer general\n3 4 {}\n",
            lines.len()
        );
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        let m = read(&path);
        std::fs::remove_file(&path).unwrap();
        m
    }

    /// Cell 1 empty, cell 2 with an explicit zero, cell 4 last.
    const CELL_ORDER: [&str; 5] = ["2 1 5", "1 1 2", "3 3 0", "3 3 7", "1 4 1"];

    fn expected() -> Csr<f32> {
        let mut m = Csr::with_cols(3);
        m.push_row(&[0, 1], &[2.0, 5.0]);
        m.push_row(&[], &[]);
        m.push_row(&[2], &[7.0]);
        m.push_row(&[0], &[1.0]);
        m
    }

    #[test]
    fn cell_order_and_any_order_give_one_matrix() {
        let sorted = read_lines("sorted.mtx", &CELL_ORDER).unwrap();
        assert_eq!((sorted.n_genes, sorted.n_cells), (3, 4));
        assert_eq!(sorted.matrix, expected());
        // The same entries with a later cell first: read as triplets from the third entry.
        let shuffled = ["1 4 1", "2 1 5", "1 1 2", "3 3 7", "3 3 0"];
        let m = read_lines("shuffled.mtx", &shuffled).unwrap();
        assert_eq!(m.matrix, expected());
        let late = ["2 1 5", "3 3 7", "1 4 1", "1 1 2"];
        assert_eq!(read_lines("late.mtx", &late).unwrap().matrix, expected());
    }

    #[test]
    fn a_position_twice_is_an_error_in_either_order() {
        for (name, lines) in [
            ("twice_sorted.mtx", vec!["1 1 2", "1 1 3"]),
            ("twice_shuffled.mtx", vec!["1 2 1", "1 1 2", "1 1 3"]),
        ] {
            let e = read_lines(name, &lines).unwrap_err().to_string();
            assert!(
                e.contains("(row 1, column 1) appears more than once"),
                "{e}"
            );
        }
    }
}
