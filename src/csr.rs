//! Compressed sparse rows: the one matrix format cellvae keeps data in (cells × genes).
//!
//! PBMC3k is ≈ 6 % nonzero, so the whole matrix is never densified: readers build a [`Csr`],
//! preprocessing rewrites its values, training gathers minibatches of rows from it, and the
//! first layer multiplies by it directly.

/// A sparse `n_rows × n_cols` matrix. Row `i` holds the entries
/// `indices[indptr[i]..indptr[i+1]]` (column numbers, strictly increasing) with their `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Csr<T> {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<T>,
}

impl<T: Copy + Default> Csr<T> {
    /// An empty matrix with `n_cols` columns, ready to be filled with [`Csr::push_row`].
    pub fn with_cols(n_cols: usize) -> Self {
        Csr {
            n_rows: 0,
            n_cols,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Builds a matrix from `(row, col, value)` triplets in any order. Duplicate positions are
    /// summed, as MatrixMarket readers conventionally do.
    pub fn from_triplets(
        n_rows: usize,
        n_cols: usize,
        mut triplets: Vec<(u32, u32, T)>,
        add: impl Fn(T, T) -> T,
    ) -> Self {
        triplets.sort_unstable_by_key(|&(r, c, _)| (r, c));
        let mut m = Csr {
            n_rows,
            n_cols,
            indptr: vec![0; n_rows + 1],
            indices: Vec::with_capacity(triplets.len()),
            data: Vec::with_capacity(triplets.len()),
        };
        let mut last: Option<(u32, u32)> = None;
        for (r, c, v) in triplets {
            if last == Some((r, c)) {
                let top = m.data.len() - 1;
                m.data[top] = add(m.data[top], v);
                continue;
            }
            last = Some((r, c));
            m.indices.push(c);
            m.data.push(v);
            m.indptr[r as usize + 1] += 1;
        }
        for i in 0..n_rows {
            m.indptr[i + 1] += m.indptr[i];
        }
        m
    }

    /// Appends one row given its (strictly increasing) column numbers and values.
    pub fn push_row(&mut self, cols: &[u32], vals: &[T]) {
        debug_assert_eq!(cols.len(), vals.len());
        self.indices.extend_from_slice(cols);
        self.data.extend_from_slice(vals);
        self.indptr.push(self.indices.len());
        self.n_rows += 1;
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// Column numbers and values of row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> (&[u32], &[T]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Copies rows `rows` (in that order) into `out`, reusing its buffers: the minibatch gather.
    pub fn gather_rows_into(&self, rows: &[usize], out: &mut Csr<T>) {
        out.n_rows = rows.len();
        out.n_cols = self.n_cols;
        out.indptr.clear();
        out.indices.clear();
        out.data.clear();
        out.indptr.push(0);
        for &r in rows {
            let (c, v) = self.row(r);
            out.indices.extend_from_slice(c);
            out.data.extend_from_slice(v);
            out.indptr.push(out.indices.len());
        }
    }

    /// A new matrix of rows `rows`.
    pub fn select_rows(&self, rows: &[usize]) -> Csr<T> {
        let mut out = Csr::with_cols(self.n_cols);
        self.gather_rows_into(rows, &mut out);
        out
    }

    /// Keeps only rows `rows` (ascending), in place: no second copy of the matrix, which at
    /// atlas size is the difference between one and two copies of every nonzero.
    pub fn retain_rows(&mut self, rows: &[usize]) {
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "rows ascending");
        let mut end = 0;
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        indptr.push(0);
        for &r in rows {
            // Row r starts at or after `end`, so moving it down never overwrites what is
            // still to be read.
            let (start, stop) = (self.indptr[r], self.indptr[r + 1]);
            self.indices.copy_within(start..stop, end);
            self.data.copy_within(start..stop, end);
            end += stop - start;
            indptr.push(end);
        }
        self.indices.truncate(end);
        self.data.truncate(end);
        self.indices.shrink_to_fit();
        self.data.shrink_to_fit();
        self.indptr = indptr;
        self.n_rows = rows.len();
    }

    /// Keeps the columns whose `new_index[c]` is `Some`, renumbered, in place (as
    /// [`Csr::select_columns`], without a second copy).
    pub fn retain_columns(&mut self, new_index: &[Option<u32>], n_new: usize) {
        let mut end = 0;
        for i in 0..self.n_rows {
            let (start, stop) = (self.indptr[i], self.indptr[i + 1]);
            self.indptr[i] = end;
            for p in start..stop {
                if let Some(nc) = new_index[self.indices[p] as usize] {
                    self.indices[end] = nc;
                    self.data[end] = self.data[p];
                    end += 1;
                }
            }
        }
        self.indptr[self.n_rows] = end;
        self.indices.truncate(end);
        self.data.truncate(end);
        self.indices.shrink_to_fit();
        self.data.shrink_to_fit();
        self.n_cols = n_new;
    }

    /// Keeps the columns whose `new_index[c]` is `Some`, renumbered to that index. The new
    /// numbering must preserve order for rows to stay sorted; use [`Csr::reorder_columns`] otherwise.
    pub fn select_columns(&self, new_index: &[Option<u32>], n_new: usize) -> Csr<T> {
        let mut out = Csr::with_cols(n_new);
        out.indptr.reserve(self.n_rows);
        for i in 0..self.n_rows {
            let (cols, vals) = self.row(i);
            for (&c, &v) in cols.iter().zip(vals) {
                if let Some(nc) = new_index[c as usize] {
                    out.indices.push(nc);
                    out.data.push(v);
                }
            }
            out.indptr.push(out.indices.len());
            out.n_rows += 1;
        }
        out
    }

    /// Like [`Csr::select_columns`] but for any renumbering: each row is re-sorted.
    pub fn reorder_columns(&self, new_index: &[Option<u32>], n_new: usize) -> Csr<T> {
        let mut out = Csr::with_cols(n_new);
        let mut row: Vec<(u32, T)> = Vec::new();
        for i in 0..self.n_rows {
            let (cols, vals) = self.row(i);
            row.clear();
            row.extend(
                cols.iter()
                    .zip(vals)
                    .filter_map(|(&c, &v)| new_index[c as usize].map(|nc| (nc, v))),
            );
            row.sort_unstable_by_key(|e| e.0);
            for &(c, v) in &row {
                out.indices.push(c);
                out.data.push(v);
            }
            out.indptr.push(out.indices.len());
            out.n_rows += 1;
        }
        out
    }

    /// The same matrix with every value mapped through `f`.
    pub fn map<U: Copy + Default>(&self, f: impl Fn(T) -> U) -> Csr<U> {
        Csr {
            n_rows: self.n_rows,
            n_cols: self.n_cols,
            indptr: self.indptr.clone(),
            indices: self.indices.clone(),
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }

    /// The nonzeros of a dense row-major array.
    pub fn from_dense(d: &ndarray::Array2<T>) -> Csr<T>
    where
        T: PartialEq,
    {
        let mut m = Csr::with_cols(d.ncols());
        for row in d.rows() {
            for (j, &v) in row.iter().enumerate() {
                if v != T::default() {
                    m.indices.push(j as u32);
                    m.data.push(v);
                }
            }
            m.indptr.push(m.indices.len());
            m.n_rows += 1;
        }
        m
    }

    /// Dense copy, row-major. For tests and small matrices only.
    pub fn to_dense(&self) -> ndarray::Array2<T> {
        let mut d = ndarray::Array2::from_elem((self.n_rows, self.n_cols), T::default());
        for i in 0..self.n_rows {
            let (c, v) = self.row(i);
            for (&c, &v) in c.iter().zip(v) {
                d[[i, c as usize]] = v;
            }
        }
        d
    }
}

/// Row-by-row reading of a cells × genes matrix, whatever its storage: a [`Csr`] of values,
/// or counts from which the values are derived as they are read
/// (`crate::preprocess::kept_counts`).
pub trait Rows: Sync {
    fn n_rows(&self) -> usize;
    fn n_cols(&self) -> usize;
    /// Calls `f(column, value)` for each stored entry of row `i` whose column lies in
    /// `lo..hi`, columns ascending.
    fn for_each_in(&self, i: usize, lo: u32, hi: u32, f: impl FnMut(u32, f32));
}

impl Rows for Csr<f32> {
    fn n_rows(&self) -> usize {
        self.n_rows
    }

    fn n_cols(&self) -> usize {
        self.n_cols
    }

    fn for_each_in(&self, i: usize, lo: u32, hi: u32, mut f: impl FnMut(u32, f32)) {
        let (cols, vals) = self.row(i);
        let start = cols.partition_point(|&c| c < lo);
        for (&c, &v) in cols[start..].iter().zip(&vals[start..]) {
            if c >= hi {
                break;
            }
            f(c, v);
        }
    }
}

/// Per-column moments of the rows seen so far: `Σ f(x)` and `Σ f(x)²` over the stored
/// entries of each column, in f64, with `f(0) = 0` (absent entries add nothing). The one pass
/// behind per-gene scaling, both HVG flavours and PCA's centring; rows can be added block by
/// block ([`ColumnMoments::add`]) as a streamed reader delivers them, with the same sums as
/// one pass in row order.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnMoments {
    pub n_rows: usize,
    pub sum: Vec<f64>,
    pub sum_sq: Vec<f64>,
}

impl ColumnMoments {
    /// No rows yet, `n_cols` columns.
    pub fn new(n_cols: usize) -> Self {
        ColumnMoments {
            n_rows: 0,
            sum: vec![0.0; n_cols],
            sum_sq: vec![0.0; n_cols],
        }
    }

    /// Adds the rows of `m`, each stored value `v` as `f(v)`.
    pub fn add(&mut self, m: &Csr<f32>, f: impl Fn(f32) -> f64) {
        assert_eq!(m.n_cols, self.sum.len(), "column count");
        for (&g, &v) in m.indices.iter().zip(&m.data) {
            let e = f(v);
            self.sum[g as usize] += e;
            self.sum_sq[g as usize] += e * e;
        }
        self.n_rows += m.n_rows;
    }

    /// The mean of column `g`, `Σ/n`.
    pub fn mean(&self, g: usize) -> f64 {
        self.sum[g] / self.n_rows as f64
    }

    /// The sample variance of column `g` (n − 1 denominator; 0 below two rows), as
    /// `(Σx² − n·m²)/(n − 1)`, never below 0.
    pub fn variance(&self, g: usize) -> f64 {
        let n = self.n_rows as f64;
        if self.n_rows < 2 {
            return 0.0;
        }
        let m = self.mean(g);
        ((self.sum_sq[g] - n * m * m) / (n - 1.0)).max(0.0)
    }
}

impl Csr<f32> {
    /// `self + 1·cᵀ` with every entry stored (dense rows): the scaled matrix from its
    /// shifted, sparse form (`crate::preprocess::Scaling::apply`), for a block of rows.
    pub fn plus_row(&self, c: &[f32]) -> Csr<f32> {
        assert_eq!(c.len(), self.n_cols, "one shift per column");
        let cols: Vec<u32> = (0..self.n_cols as u32).collect();
        let mut out = Csr::with_cols(self.n_cols);
        out.indices.reserve(self.n_rows * self.n_cols);
        out.data.reserve(self.n_rows * self.n_cols);
        let mut row = vec![0.0f32; self.n_cols];
        for i in 0..self.n_rows {
            row.copy_from_slice(c);
            let (idx, vals) = self.row(i);
            for (&g, &v) in idx.iter().zip(vals) {
                row[g as usize] += v;
            }
            out.push_row(&cols, &row);
        }
        out
    }

    /// [`ColumnMoments`] of all rows, of `f` of the values (`|v| v as f64` for the values
    /// themselves).
    pub fn column_moments(&self, f: impl Fn(f32) -> f64) -> ColumnMoments {
        let mut m = ColumnMoments::new(self.n_cols);
        m.add(self, f);
        m
    }
}

/// The transpose of a minibatch, column-major: column `j` holds `(row, value)` pairs, rows
/// ascending. The first layer's weight gradient walks it gene by gene.
#[derive(Clone, Debug, Default)]
pub struct Csc<T> {
    /// Rows of the matrix it transposes (the batch size).
    pub n_rows: usize,
    pub colptr: Vec<usize>,
    pub rows: Vec<u32>,
    pub data: Vec<T>,
    /// Per band of rows, each column's count, then its next free slot, while building
    /// (`u32`: half the cache footprint of `usize`, and a batch holds far fewer than 2³²
    /// nonzeros; `rebuild_in_bands` checks).
    scratch: Vec<u32>,
}

impl<T: Copy + Default + Send + Sync> Csc<T> {
    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.colptr.len().saturating_sub(1)
    }

    /// Rebuilds `self` as the column-major form of `m`, reusing its buffers, one band of rows
    /// per rayon thread (O(nnz + threads · n_cols)).
    pub fn rebuild_from(&mut self, m: &Csr<T>) {
        self.rebuild_in_bands(m, rayon::current_num_threads());
    }

    /// [`Csc::rebuild_from`] with the rows cut into `bands` bands of consecutive rows. Each
    /// band counts its entries per column, the counts give every band its own slots within
    /// every column (band after band, so rows stay ascending), and each band fills its slots.
    /// The result is the same for any number of bands.
    pub fn rebuild_in_bands(&mut self, m: &Csr<T>, bands: usize) {
        use rayon::prelude::*;
        let (n, nnz) = (m.n_cols, m.nnz());
        let bands = bands.clamp(1, m.n_rows.max(1));
        let band_start = |b: usize| b * m.n_rows / bands;
        assert!(u32::try_from(nnz).is_ok(), "a batch of over 2³² nonzeros");
        self.n_rows = m.n_rows;
        // 1. Each band counts its entries per column.
        self.scratch.clear();
        self.scratch.resize(bands * n, 0);
        self.scratch
            .par_chunks_mut(n.max(1))
            .enumerate()
            .for_each(|(b, count)| {
                let span = m.indptr[band_start(b)]..m.indptr[band_start(b + 1)];
                for &c in &m.indices[span] {
                    count[c as usize] += 1;
                }
            });
        // 2. Column by column, band after band: each band's first slot replaces its count.
        self.colptr.clear();
        self.colptr.resize(n + 1, 0);
        let mut pos = 0;
        for j in 0..n {
            self.colptr[j] = pos;
            for b in 0..bands {
                pos += std::mem::replace(&mut self.scratch[b * n + j], pos as u32) as usize;
            }
        }
        self.colptr[n] = pos;
        debug_assert_eq!(pos, nnz);
        // 3. Each band places its entries, rows in order, into its own slots.
        self.rows.resize(nnz, 0);
        self.data.resize(nnz, T::default());
        let rows = SharedSlice::new(&mut self.rows);
        let data = SharedSlice::new(&mut self.data);
        self.scratch
            .par_chunks_mut(n.max(1))
            .enumerate()
            .for_each(|(b, next)| {
                for i in band_start(b)..band_start(b + 1) {
                    let (cols, vals) = m.row(i);
                    for (&c, &v) in cols.iter().zip(vals) {
                        let slot = &mut next[c as usize];
                        // SAFETY: band b owns the slots of column c from its start (step 2)
                        // up to the next band's start, which no other band writes; `slot`
                        // advances once per entry counted in step 1, so it stays inside them.
                        unsafe {
                            rows.write(*slot as usize, i as u32);
                            data.write(*slot as usize, v);
                        }
                        *slot += 1;
                    }
                }
            });
    }
}

/// A slice that several threads write at positions they have agreed to keep disjoint. It
/// borrows the slice mutably for `'a`, so the slice can be neither read nor freed while shared.
struct SharedSlice<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: std::marker::PhantomData<&'a mut [T]>,
}

// SAFETY: the users of `write` guarantee that no two threads write the same position.
unsafe impl<T: Send> Sync for SharedSlice<'_, T> {}

impl<'a, T> SharedSlice<'a, T> {
    fn new(s: &'a mut [T]) -> Self {
        SharedSlice {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _borrow: std::marker::PhantomData,
        }
    }

    /// # Safety
    /// No other thread may read or write position `i` while the slice is shared.
    unsafe fn write(&self, i: usize, v: T) {
        assert!(i < self.len, "shared slice: position {i} of {}", self.len);
        // SAFETY: in bounds (checked above); exclusive by the caller's contract.
        unsafe { self.ptr.add(i).write(v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triplets_sum_duplicates_and_sort() {
        let m = Csr::from_triplets(
            2,
            3,
            vec![(1, 2, 1.0), (0, 1, 2.0), (1, 0, 3.0), (1, 2, 4.0)],
            |a, b| a + b,
        );
        assert_eq!(m.indptr, vec![0, 1, 3]);
        assert_eq!(m.indices, vec![1, 0, 2]);
        assert_eq!(m.data, vec![2.0, 3.0, 5.0]);
    }

    /// In place, the same matrices as the copying selections (rows and columns, empty rows,
    /// nothing kept).
    #[test]
    fn retaining_in_place_equals_selecting() {
        let trip: Vec<(u32, u32, f32)> = (0..200u32)
            .map(|k| ((k * 37) % 41, (k * 11) % 9, k as f32))
            .collect();
        let m = Csr::from_triplets(43, 9, trip, |a, b| a + b);
        for rows in [vec![], vec![0, 5, 6, 40, 42], (0..43).collect::<Vec<_>>()] {
            let mut r = m.clone();
            r.retain_rows(&rows);
            assert_eq!(r, m.select_rows(&rows));
        }
        let new_index: Vec<Option<u32>> = [1, 3, 4, 8].iter().fold(vec![None; 9], |mut v, &g| {
            v[g] = Some(v.iter().flatten().count() as u32);
            v
        });
        let mut c = m.clone();
        c.retain_columns(&new_index, 4);
        assert_eq!(c, m.select_columns(&new_index, 4));
        c.retain_columns(&[None; 4], 0);
        assert_eq!((c.nnz(), c.n_rows, c.n_cols), (0, 43, 0));
    }

    #[test]
    fn column_moments_in_blocks_equal_one_pass() {
        let trip: Vec<(u32, u32, f32)> = (0..300u32)
            .map(|k| ((k * 37) % 41, (k * 11) % 7, (k % 9) as f32 * 0.5))
            .collect();
        let m = Csr::from_triplets(41, 7, trip, |a, b| a + b);
        let whole = m.column_moments(|v| v as f64);
        let mut blocks = ColumnMoments::new(7);
        for rows in (0..41).collect::<Vec<_>>().chunks(10) {
            blocks.add(&m.select_rows(rows), |v| v as f64);
        }
        assert_eq!(whole, blocks);
        let dense = m.to_dense();
        for g in 0..7 {
            let col = dense.column(g).mapv(|v| v as f64);
            assert!((whole.mean(g) - col.mean().unwrap()).abs() < 1e-12);
            assert!((whole.variance(g) - col.var(1.0)).abs() < 1e-9);
        }
    }

    #[test]
    fn csc_is_the_transpose() {
        let m = Csr::from_triplets(3, 4, vec![(0, 3, 1.0), (2, 3, 2.0), (1, 0, 3.0)], |a, b| {
            a + b
        });
        for bands in [1, 2, 3, 7] {
            let mut t = Csc::default();
            t.rebuild_in_bands(&m, bands);
            assert_eq!(t.colptr, vec![0, 1, 1, 1, 3]);
            assert_eq!(t.rows, vec![1, 0, 2]);
            assert_eq!(t.data, vec![3.0, 1.0, 2.0]);
        }
    }

    #[test]
    fn csc_is_the_same_for_any_number_of_bands() {
        let trip: Vec<(u32, u32, f64)> = (0..400u32)
            .map(|k| ((k * 37) % 53, (k * 11) % 29, k as f64))
            .collect();
        let m = Csr::from_triplets(53, 29, trip, |a, b| a + b);
        let mut one = Csc::default();
        one.rebuild_in_bands(&m, 1);
        for bands in [2, 4, 16, 53, 100] {
            let mut t = Csc::default();
            t.rebuild_in_bands(&m, bands);
            assert_eq!(
                (&t.colptr, &t.rows, &t.data),
                (&one.colptr, &one.rows, &one.data)
            );
        }
    }
}
