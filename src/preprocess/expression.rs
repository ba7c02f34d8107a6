//! The normalized values of every kept gene, kept beside the training matrix when that is
//! something else (the highly variable genes, or their z-scores): marker genes are ranked on
//! them, as scanpy ranks `.raw`, because a z-score "expresses" in every cell and its
//! differences are not log fold changes.
//!
//! Counts input keeps them as counts ([`KeptCounts`]: four bytes per nonzero, the values
//! derived when read, the selected genes' counts too); other input, or counts beyond 16 bits,
//! as the values themselves.

use super::kept_counts::KeptCounts;
use crate::csr::{Csr, Rows};
use crate::io::h5ad_stream::LayerRows;
use std::borrow::Cow;
use std::ops::Range;

/// See the module doc.
#[derive(Clone, Debug)]
pub struct Expression {
    pub matrix: ExpressionMatrix,
    pub gene_names: Vec<String>,
    /// The training matrix's genes, as columns of `matrix`, in the training matrix's order.
    pub selected: Vec<usize>,
}

/// How [`Expression`] holds its values.
#[derive(Clone, Debug)]
pub enum ExpressionMatrix {
    Values(Csr<f32>),
    Counts(KeptCounts),
}

impl Expression {
    /// Cells (rows of the matrix).
    pub fn matrix_rows(&self) -> usize {
        match &self.matrix {
            ExpressionMatrix::Values(m) => m.n_rows,
            ExpressionMatrix::Counts(c) => c.n_rows(),
        }
    }

    /// The matrix to read the values through.
    pub fn input(&self) -> MarkerInput<'_> {
        match &self.matrix {
            ExpressionMatrix::Values(m) => MarkerInput::Values(m),
            ExpressionMatrix::Counts(c) => MarkerInput::Counts(c),
        }
    }

    /// The counts of the training matrix's genes in rows `rows`, when held as counts.
    pub fn selected_counts(&self, rows: Range<usize>) -> Option<Csr<f32>> {
        let ExpressionMatrix::Counts(c) = &self.matrix else {
            return None;
        };
        let mut new_index = vec![None; self.gene_names.len()];
        for (k, &g) in self.selected.iter().enumerate() {
            new_index[g] = Some(k as u32);
        }
        Some(c.count_columns(rows, &new_index, self.selected.len()))
    }
}

/// The raw counts of the training matrix's cells and genes, read a block of rows at a time
/// (the `.h5ad`'s counts layer): held, or derived from [`Expression`]'s counts of every gene
/// block by block, so that the derived matrix is never whole in memory.
#[derive(Clone, Copy, Debug)]
pub enum CountsLayer<'a> {
    Held(&'a Csr<f32>),
    /// An [`Expression`] whose matrix is [`ExpressionMatrix::Counts`].
    Derived(&'a Expression),
}

impl LayerRows for CountsLayer<'_> {
    fn shape(&self) -> (usize, usize) {
        match self {
            CountsLayer::Held(c) => c.shape(),
            CountsLayer::Derived(e) => (e.matrix_rows(), e.selected.len()),
        }
    }

    fn rows(&self, rows: Range<usize>) -> Csr<f32> {
        match self {
            CountsLayer::Held(c) => LayerRows::rows(*c, rows),
            CountsLayer::Derived(e) => e
                .selected_counts(rows)
                .expect("a derived layer reads counts"),
        }
    }
}

/// The matrix marker genes are ranked on, by reference: values, or counts read as values.
#[derive(Clone, Copy, Debug)]
pub enum MarkerInput<'a> {
    Values(&'a Csr<f32>),
    Counts(&'a KeptCounts),
}

impl MarkerInput<'_> {
    /// Every value as a [`Csr`] (borrowed when held so).
    pub fn to_values(&self) -> Cow<'_, Csr<f32>> {
        match *self {
            MarkerInput::Values(m) => Cow::Borrowed(m),
            MarkerInput::Counts(c) => {
                let all: Vec<Option<u32>> = (0..c.n_cols() as u32).map(Some).collect();
                Cow::Owned(c.lognorm_columns(&all, c.n_cols()))
            }
        }
    }
}

impl Rows for MarkerInput<'_> {
    fn n_rows(&self) -> usize {
        match self {
            MarkerInput::Values(m) => m.n_rows(),
            MarkerInput::Counts(c) => c.n_rows(),
        }
    }

    fn n_cols(&self) -> usize {
        match self {
            MarkerInput::Values(m) => m.n_cols(),
            MarkerInput::Counts(c) => c.n_cols(),
        }
    }

    fn for_each_in(&self, i: usize, lo: u32, hi: u32, f: impl FnMut(u32, f32)) {
        match self {
            MarkerInput::Values(m) => m.for_each_in(i, lo, hi, f),
            MarkerInput::Counts(c) => c.for_each_in(i, lo, hi, f),
        }
    }
}
