//! MatrixMarket `coordinate` files, the format of 10x's `matrix.mtx`.
//!
//! Accepted: `%%MatrixMarket matrix coordinate integer|real general`, any number of `%`
//! comment lines, a size line `rows cols entries`, then one `row col value` line per entry,
//! 1-based, in any order. Values must be finite and non-negative (they are counts or
//! normalized expression). Rows are genes and columns are cells, as 10x writes them.

use crate::csr::Csr;
use crate::error::{Error, Result};
use std::io::{BufRead, Write};
use std::path::Path;

/// The entries of a MatrixMarket file, as read.
#[derive(Debug)]
pub struct Triplets {
    pub n_rows: usize,
    pub n_cols: usize,
    pub rows: Vec<u32>,
    pub cols: Vec<u32>,
    pub vals: Vec<f32>,
}

/// Reads and validates a MatrixMarket coordinate file (gzip or not).
pub fn read(path: &Path) -> Result<Triplets> {
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
    let header = String::from_utf8_lossy(&buf).to_ascii_lowercase();
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

    let cap = nnz.min(1 << 28);
    let mut t = Triplets {
        n_rows,
        n_cols,
        rows: Vec::with_capacity(cap),
        cols: Vec::with_capacity(cap),
        vals: Vec::with_capacity(cap),
    };
    while next_line(&mut buf, &mut line_no)? {
        let line = std::str::from_utf8(&buf)
            .map_err(|_| Error::parse(path, Some(line_no), "not UTF-8 text"))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('%') {
            continue;
        }
        if t.vals.len() == nnz {
            return Err(Error::parse(
                path,
                Some(line_no),
                format!("more entries than the {nnz} the size line promises"),
            ));
        }
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
        let v: f64 = v.parse().map_err(|_| {
            Error::parse(path, Some(line_no), format!("value '{v}' is not a number"))
        })?;
        if !v.is_finite() || v < 0.0 {
            return Err(Error::parse(
                path,
                Some(line_no),
                format!("value {v} is not allowed: expected a finite, non-negative number"),
            ));
        }
        t.rows.push(r);
        t.cols.push(c);
        t.vals.push(v as f32);
    }
    if t.vals.len() != nnz {
        return Err(Error::parse(
            path,
            None,
            format!(
                "the size line promises {nnz} entries but the file has {} (truncated?)",
                t.vals.len()
            ),
        ));
    }
    Ok(t)
}

/// The transpose of the file's genes × cells matrix: cells × genes CSR. Explicit zeros are
/// dropped; a position given twice is an error.
pub fn cells_by_genes(t: &Triplets, path: &Path) -> Result<Csr<f32>> {
    // Counting sort by cell, then sort each row by gene (a no-op for 10x's column-major order).
    let mut indptr = vec![0usize; t.n_cols + 1];
    for (&c, &v) in t.cols.iter().zip(&t.vals) {
        if v != 0.0 {
            indptr[c as usize + 1] += 1;
        }
    }
    for i in 0..t.n_cols {
        indptr[i + 1] += indptr[i];
    }
    let nnz = indptr[t.n_cols];
    let mut indices = vec![0u32; nnz];
    let mut data = vec![0f32; nnz];
    let mut next = indptr[..t.n_cols].to_vec();
    for ((&r, &c), &v) in t.rows.iter().zip(&t.cols).zip(&t.vals) {
        if v != 0.0 {
            let slot = &mut next[c as usize];
            indices[*slot] = r;
            data[*slot] = v;
            *slot += 1;
        }
    }
    let mut pairs: Vec<(u32, f32)> = Vec::new();
    for cell in 0..t.n_cols {
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
                return Err(Error::parse(
                    path,
                    None,
                    format!(
                        "entry (row {}, column {}) appears more than once",
                        w[0] + 1,
                        cell + 1
                    ),
                ));
            }
        }
    }
    Ok(Csr {
        n_rows: t.n_cols,
        n_cols: t.n_rows,
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
