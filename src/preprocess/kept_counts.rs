//! The counts of the kept cells over every kept gene, in four bytes per nonzero: a 16-bit gene
//! number and a 16-bit count packed in one `u32` (`gene << 16 | count`), with each cell's
//! total beside them.
//!
//! An atlas run needs every gene's LogNormalized value only for the marker genes (ranked, as
//! scanpy ranks `.raw`, on all genes), and the selected genes' counts only for the `.h5ad`'s
//! counts layer and the count likelihood. Stored as `f32` values with `u32` gene numbers, a
//! million PBMC-like cells take 5.8 GB; here 2.9 GB, and both are derived when read:
//!
//! - the LogNormalized value `x = ln(1 + 10⁴·c/t)` ([`super::normalize`]) from the count `c`
//!   and the cell's total `t`, computed exactly as [`super::normalize::log_normalize`]
//!   computes it, so the same bits;
//! - the counts of any set of genes as a [`Csr`].
//!
//! It is built from the LogNormalized matrix and each cell's total by recovering each count
//! ([`super::normalize::recover_counts`]'s rule, exact below its bound) into the matrix's own
//! 32-bit gene numbers, in place, so that nothing is held beside the matrix while it is
//! converted (at 1M cells the conversion had been the run's peak: 7.2 GB with separate
//! 16-bit arrays, the matrix and the new gene numbers held together). The packing keeps a
//! row's entries sorted by gene, since the gene is the high half. It applies when every gene
//! number fits 16 bits (at most 65,536 genes) and every count 16 bits (at most 65,535);
//! otherwise [`KeptCounts::from_lognorm`] hands the matrix back.

use super::normalize::{lognorm_value, recovered_count};
use crate::csr::{Csr, Rows};
use std::ops::Range;

/// See the module doc.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptCounts {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    /// `gene << 16 | count` per nonzero, each row's in gene order.
    entries: Vec<u32>,
    /// Each cell's total count over every gene it had when it was normalized.
    totals: Vec<f64>,
}

impl KeptCounts {
    /// Converts a LogNormalized matrix, given each row's total (as
    /// [`super::normalize::row_totals`] sums it before normalizing); `Err` gives both back
    /// untouched when its genes or counts do not fit 16 bits.
    pub fn from_lognorm(
        m: Csr<f32>,
        totals: Vec<f64>,
    ) -> Result<KeptCounts, (Csr<f32>, Option<Vec<f64>>)> {
        assert_eq!(totals.len(), m.n_rows, "one total per row");
        let fits = m.n_cols <= 1 << 16
            && (0..m.n_rows).all(|i| {
                let t = totals[i];
                m.row(i)
                    .1
                    .iter()
                    .all(|&v| recovered_count(v, t) <= u16::MAX as f64)
            });
        if !fits {
            return Err((m, Some(totals)));
        }
        let Csr {
            n_rows,
            n_cols,
            indptr,
            indices: mut entries,
            data,
        } = m;
        for i in 0..n_rows {
            let t = totals[i];
            let row = indptr[i]..indptr[i + 1];
            for (e, &v) in entries[row.clone()].iter_mut().zip(&data[row]) {
                *e = *e << 16 | recovered_count(v, t) as u32;
            }
        }
        drop(data);
        Ok(KeptCounts {
            n_rows,
            n_cols,
            indptr,
            entries,
            totals,
        })
    }

    /// Stored nonzeros.
    pub fn nnz(&self) -> usize {
        self.entries.len()
    }

    /// The gene number and the count of packed entry `e`.
    #[inline]
    fn unpack(e: u32) -> (u32, u16) {
        (e >> 16, e as u16)
    }

    /// The LogNormalized value of count `c` in row `i`, as `log_normalize` computes it.
    #[inline]
    fn lognorm(&self, i: usize, c: u16) -> f32 {
        lognorm_value(c as f64, self.totals[i])
    }

    /// The LogNormalized values of the columns whose `new_index` is `Some` (order kept, as
    /// [`Csr::select_columns`]).
    pub fn lognorm_columns(&self, new_index: &[Option<u32>], n_new: usize) -> Csr<f32> {
        self.columns(0..self.n_rows, new_index, n_new, |i, c| self.lognorm(i, c))
    }

    /// The counts of rows `rows` in the columns whose `new_index` is `Some`, as `f32`.
    pub fn count_columns(
        &self,
        rows: Range<usize>,
        new_index: &[Option<u32>],
        n_new: usize,
    ) -> Csr<f32> {
        self.columns(rows, new_index, n_new, |_, c| c as f32)
    }

    fn columns(
        &self,
        rows: Range<usize>,
        new_index: &[Option<u32>],
        n_new: usize,
        value: impl Fn(usize, u16) -> f32,
    ) -> Csr<f32> {
        assert_eq!(new_index.len(), self.n_cols, "one entry per column");
        assert!(rows.end <= self.n_rows, "rows of the matrix");
        let mut out = Csr::with_cols(n_new);
        for i in rows {
            for &e in &self.entries[self.indptr[i]..self.indptr[i + 1]] {
                let (g, c) = Self::unpack(e);
                if let Some(nc) = new_index[g as usize] {
                    out.indices.push(nc);
                    out.data.push(value(i, c));
                }
            }
            out.indptr.push(out.indices.len());
            out.n_rows += 1;
        }
        out
    }
}

impl Rows for KeptCounts {
    fn n_rows(&self) -> usize {
        self.n_rows
    }

    fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// The LogNormalized values of row `i`'s columns in `lo..hi`.
    fn for_each_in(&self, i: usize, lo: u32, hi: u32, mut f: impl FnMut(u32, f32)) {
        let row = &self.entries[self.indptr[i]..self.indptr[i + 1]];
        let start = row.partition_point(|&e| Self::unpack(e).0 < lo);
        for &e in &row[start..] {
            let (g, c) = Self::unpack(e);
            if g >= hi {
                break;
            }
            f(g, self.lognorm(i, c));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::normalize::{log_normalize, row_totals};

    fn counts() -> Csr<f32> {
        let mut m = Csr::with_cols(5);
        m.push_row(&[0, 2, 4], &[1.0, 7.0, 65_535.0]);
        m.push_row(&[], &[]);
        m.push_row(&[1, 3], &[3.0, 12_000.0]);
        m
    }

    #[test]
    fn values_and_counts_are_the_inputs_bit_for_bit() {
        let raw = counts();
        let totals = row_totals(&raw);
        let mut lognorm = raw.clone();
        log_normalize(&mut lognorm);
        let kept = KeptCounts::from_lognorm(lognorm.clone(), totals).expect("fits");
        assert_eq!(kept.nnz(), raw.nnz());
        let all: Vec<Option<u32>> = (0..5).map(Some).collect();
        assert_eq!(kept.count_columns(0..kept.n_rows, &all, 5), raw);
        assert_eq!(
            kept.count_columns(1..3, &all, 5),
            raw.select_rows(&[1, 2]),
            "a block of rows"
        );
        assert_eq!(kept.lognorm_columns(&all, 5), lognorm);
        let some = [None, Some(0), Some(1), None, Some(2)];
        assert_eq!(
            kept.lognorm_columns(&some, 3),
            lognorm.select_columns(&some, 3)
        );
        // Rows::for_each_in reads a column range.
        let mut seen = Vec::new();
        kept.for_each_in(0, 1, 5, |g, v| seen.push((g, v)));
        assert_eq!(seen, vec![(2, lognorm.data[1]), (4, lognorm.data[2])]);
        let mut seen = Vec::new();
        lognorm.for_each_in(0, 1, 5, |g, v| seen.push((g, v)));
        assert_eq!(seen, vec![(2, lognorm.data[1]), (4, lognorm.data[2])]);
    }

    /// The packing's corners: gene 65,535 of 65,536 with count 65,535 fills all 32 bits, gene
    /// 0 with count 1 the fewest; both come back, and a column range still finds them.
    #[test]
    fn the_largest_gene_and_count_pack_and_unpack() {
        let mut raw = Csr::with_cols(1 << 16);
        raw.push_row(&[0, 255, 256, 65_535], &[1.0, 65_535.0, 2.0, 65_535.0]);
        let totals = row_totals(&raw);
        let mut lognorm = raw.clone();
        log_normalize(&mut lognorm);
        let kept = KeptCounts::from_lognorm(lognorm.clone(), totals).expect("fits");
        let all: Vec<Option<u32>> = (0..1 << 16).map(Some).collect();
        assert_eq!(kept.count_columns(0..1, &all, 1 << 16), raw);
        let mut seen = Vec::new();
        kept.for_each_in(0, 256, 1 << 16, |g, v| seen.push((g, v)));
        assert_eq!(
            seen,
            vec![(256, lognorm.data[2]), (65_535, lognorm.data[3])]
        );
    }

    #[test]
    fn counts_beyond_sixteen_bits_hand_the_matrix_back() {
        let mut raw = counts();
        raw.data[2] = 65_536.0;
        let totals = row_totals(&raw);
        let mut lognorm = raw.clone();
        log_normalize(&mut lognorm);
        let (back, t) = KeptCounts::from_lognorm(lognorm.clone(), totals.clone()).unwrap_err();
        assert_eq!((back, t), (lognorm, Some(totals)));
    }
}
