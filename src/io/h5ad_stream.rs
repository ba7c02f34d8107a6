//! An `.h5ad` whose `X` (and CSR layers) are written in blocks of cells, so a matrix larger
//! than memory can be written: the small parts (`obs`, `var`, `obsm`, the empty dicts) and
//! three empty, extendible, chunked and deflated datasets for each matrix's CSR arrays go to
//! disk first; each block of rows is then appended and compressed chunk by chunk. Memory
//! stays near one block plus a few chunks.
//!
//! The file is written under a temporary name and renamed into place by [`StreamedH5ad::finish`]
//! only when every row is in: a writer dropped half-way (an error, an interrupt) leaves no
//! file that looks complete.

use super::atomic::temp_name;
use super::h5ad_write::{encoding, fill_dataframe, tag_group, Column};
use crate::csr::Csr;
use crate::error::{Error, Result};
use crate::stage::Stage;
use hdf5_pure::{
    AttrValue, File, FileAccessProperties, FileBuilder, MaxExtent, MemoryStrategy, SyncPolicy,
};
use ndarray::Array2;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Elements per chunk of `X`'s arrays: 128 KiB of `f32` values, of the order h5py picks.
/// Not 2¹⁶ or more: hdf5-pure 0.47 then encodes the chunk dimensions one byte narrower
/// than libhdf5 expects, and h5py cannot open the dataset.
const CHUNK: u64 = 1 << 15;
/// Deflate level of `X` (anndata's `compression="gzip"` uses h5py's default, 4).
const DEFLATE_LEVEL: u32 = 4;
/// Rows copied out of an in-memory matrix and appended at a time by
/// [`StreamedH5ad::append_all`].
const WRITE_BLOCK_ROWS: usize = 4096;

/// What a streamed `.h5ad` holds besides the rows of its matrices: `obs`, `var`, the names of
/// its CSR layers (streamed like `X`, cells × genes) and its `obsm` arrays (small, cells ×
/// a few columns, written at once).
pub struct Frames<'a> {
    pub obs_names: &'a [String],
    pub obs: Vec<(String, Column)>,
    pub var_names: &'a [String],
    pub var: Vec<(String, Column)>,
    pub layers: Vec<String>,
    pub obsm: Vec<(String, &'a Array2<f64>)>,
}

/// A layer's rows as the writer asks for them, a block at a time, so that a layer derived
/// from something else (the selected genes' counts) is never whole in memory.
pub trait LayerRows {
    /// Rows × columns.
    fn shape(&self) -> (usize, usize);
    /// Rows `rows` as a matrix of their own.
    fn rows(&self, rows: Range<usize>) -> Csr<f32>;
}

impl LayerRows for Csr<f32> {
    fn shape(&self) -> (usize, usize) {
        (self.n_rows, self.n_cols)
    }

    fn rows(&self, rows: Range<usize>) -> Csr<f32> {
        self.select_rows(&rows.collect::<Vec<_>>())
    }
}

/// What goes into a whole `.h5ad` written by [`write_h5ad`].
pub struct AnnData<'a> {
    /// The matrix as trained on (cells × genes).
    pub x: &'a Csr<f32>,
    /// With `Some(c)`, `X` is `x + 1·cᵀ`, every entry written (scaled data, stored as their
    /// change from a zero's z-score: `crate::preprocess::Scaling::apply`).
    pub x_shift: Option<&'a [f32]>,
    pub layers: Vec<(String, &'a dyn LayerRows)>,
    pub obs_names: &'a [String],
    pub obs: Vec<(String, Column)>,
    pub var_names: &'a [String],
    pub var: Vec<(String, Column)>,
    /// Per-cell arrays, cells × k.
    pub obsm: Vec<(String, &'a Array2<f64>)>,
}

/// Writes `a` to `path`: the skeleton, then `X` and the layers a block of rows at a time
/// ([`StreamedH5ad::append_all`]), so that the file's bytes are never all in memory; under a
/// temporary name until complete. The blocks are shown on `stage`.
pub fn write_h5ad(path: &Path, a: AnnData<'_>, stage: &mut Stage) -> Result<()> {
    assert_eq!(
        (a.obs_names.len(), a.var_names.len()),
        (a.x.n_rows, a.x.n_cols),
        "names match the matrix"
    );
    for (name, layer) in &a.layers {
        assert_eq!(
            layer.shape(),
            (a.x.n_rows, a.x.n_cols),
            "layer {name} has X's shape"
        );
    }
    let (names, layers): (Vec<String>, Vec<&dyn LayerRows>) = a.layers.into_iter().unzip();
    let mut w = StreamedH5ad::create(
        path,
        Frames {
            obs_names: a.obs_names,
            obs: a.obs,
            var_names: a.var_names,
            var: a.var,
            layers: names,
            obsm: a.obsm,
        },
    )?;
    w.append_all(a.x, a.x_shift, &layers, stage)?;
    w.finish()
}

/// One CSR matrix of the file (`X` or `layers/<name>`) and how much of it is in.
struct Matrix {
    group: String,
    rows_written: usize,
    nnz_written: i64,
}

/// An `.h5ad` being written block by block (see the module doc).
pub struct StreamedH5ad {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    n_rows: usize,
    n_cols: usize,
    /// `X`, then the layers in [`Frames::layers`] order.
    matrices: Vec<Matrix>,
}

/// Adds an empty, extendible CSR matrix of `n_rows` × `n_cols` to `g`.
fn empty_csr(g: &mut hdf5_pure::GroupBuilder, n_rows: usize, n_cols: usize) {
    tag_group(g, "csr_matrix", "0.1.0");
    g.set_attr(
        "shape",
        AttrValue::I64Array(vec![n_rows as i64, n_cols as i64]),
    );
    g.create_dataset("data")
        .with_f32_data(&[])
        .with_shape(&[0])
        .with_maxshape(&[MaxExtent::Unlimited])
        .with_chunks(&[CHUNK])
        .with_deflate(DEFLATE_LEVEL);
    g.create_dataset("indices")
        .with_i32_data(&[])
        .with_shape(&[0])
        .with_maxshape(&[MaxExtent::Unlimited])
        .with_chunks(&[CHUNK])
        .with_deflate(DEFLATE_LEVEL);
    g.create_dataset("indptr")
        .with_i64_data(&[])
        .with_shape(&[0])
        .with_maxshape(&[MaxExtent::Unlimited])
        .with_chunks(&[CHUNK.min(n_rows as u64 + 1)])
        .with_deflate(DEFLATE_LEVEL);
}

fn h5_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::io(path, std::io::Error::other(format!("{what}: {e}")))
}

impl StreamedH5ad {
    /// Starts `path` with `frames` (whose lengths give the shape): `obs`, `var` and an empty
    /// `X` of `obs_names.len()` × `var_names.len()`.
    pub fn create(path: &Path, frames: Frames<'_>) -> Result<Self> {
        let (n_rows, n_cols) = (frames.obs_names.len(), frames.var_names.len());
        let mut f = FileBuilder::new();
        for (k, v) in encoding("anndata", "0.1.0") {
            f.set_attr(k, v);
        }
        let mut x = f.create_group("X");
        empty_csr(&mut x, n_rows, n_cols);
        f.add_group(x.finish());
        for (name, index, columns) in [
            ("obs", frames.obs_names, &frames.obs),
            ("var", frames.var_names, &frames.var),
        ] {
            let mut g = f.create_group(name);
            fill_dataframe(&mut g, index, columns);
            f.add_group(g.finish());
        }
        let mut layers = f.create_group("layers");
        tag_group(&mut layers, "dict", "0.1.0");
        for name in &frames.layers {
            let mut g = layers.create_group(name);
            empty_csr(&mut g, n_rows, n_cols);
            layers.add_group(g.finish());
        }
        f.add_group(layers.finish());
        let mut obsm = f.create_group("obsm");
        tag_group(&mut obsm, "dict", "0.1.0");
        for (name, m) in &frames.obsm {
            assert_eq!(m.nrows(), n_rows, "obsm {name} has a row per cell");
            let flat: Vec<f64> = m.iter().copied().collect();
            let ds = obsm
                .create_dataset(name)
                .with_f64_data(&flat)
                .with_shape(&[m.nrows() as u64, m.ncols() as u64]);
            for (k, v) in encoding("array", "0.2.0") {
                ds.set_attr(k, v);
            }
        }
        f.add_group(obsm.finish());
        for empty in ["obsp", "varm", "varp", "uns"] {
            let mut g = f.create_group(empty);
            tag_group(&mut g, "dict", "0.1.0");
            f.add_group(g.finish());
        }
        let tmp = temp_name(path);
        let skeleton = f
            .write(&tmp)
            .map_err(|e| h5_error(path, "cannot write the HDF5 skeleton", e));
        let opened = skeleton.and_then(|()| {
            let props = FileAccessProperties::new()
                .with_memory_strategy(MemoryStrategy::Bounded)
                .with_sync_policy(SyncPolicy::OnClose);
            File::open_rw_with_options(&tmp, props)
                .map_err(|e| h5_error(path, "cannot reopen the HDF5 skeleton", e))
        });
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let groups = std::iter::once("X".to_string())
            .chain(frames.layers.iter().map(|l| format!("layers/{l}")));
        let mut w = StreamedH5ad {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
            n_rows,
            n_cols,
            matrices: groups
                .map(|group| Matrix {
                    group,
                    rows_written: 0,
                    nnz_written: 0,
                })
                .collect(),
        };
        for m in 0..w.matrices.len() {
            w.append_arrays(m, &[], &[], &[0])?;
        }
        Ok(w)
    }

    /// Appends the next `block.n_rows` cells of `X`.
    pub fn append_rows(&mut self, block: &Csr<f32>) -> Result<()> {
        self.append_to(0, block)
    }

    /// Appends the next `block.n_rows` cells of the `layer`-th of [`Frames::layers`].
    pub fn append_layer_rows(&mut self, layer: usize, block: &Csr<f32>) -> Result<()> {
        assert!(layer + 1 < self.matrices.len(), "a layer of the file");
        self.append_to(layer + 1, block)
    }

    fn append_to(&mut self, m: usize, block: &Csr<f32>) -> Result<()> {
        assert_eq!(block.n_cols, self.n_cols, "a block has the file's genes");
        assert!(
            self.matrices[m].rows_written + block.n_rows <= self.n_rows,
            "no more rows than obs names"
        );
        let indices: Vec<i32> = block.indices.iter().map(|&j| j as i32).collect();
        let base = self.matrices[m].nnz_written;
        let indptr: Vec<i64> = block.indptr[1..].iter().map(|&p| base + p as i64).collect();
        self.append_arrays(m, &block.data, &indices, &indptr)?;
        self.matrices[m].rows_written += block.n_rows;
        self.matrices[m].nnz_written += block.nnz() as i64;
        Ok(())
    }

    fn append_arrays(
        &mut self,
        m: usize,
        data: &[f32],
        indices: &[i32],
        indptr: &[i64],
    ) -> Result<()> {
        let file = self.file.as_ref().expect("open until finish");
        let group = &self.matrices[m].group;
        let fail =
            |e: hdf5_pure::Error| h5_error(&self.path, &format!("cannot append to {group}"), e);
        let mut d = file.dataset(&format!("{group}/data")).map_err(fail)?;
        d.append(data).map_err(fail)?;
        let mut i = file.dataset(&format!("{group}/indices")).map_err(fail)?;
        i.append(indices).map_err(fail)?;
        let mut p = file.dataset(&format!("{group}/indptr")).map_err(fail)?;
        p.append(indptr).map_err(fail)
    }

    /// Appends every row of `x` (plus `1·cᵀ` with `x_shift` `c`) to `X` and of `layers[i]`
    /// to the `i`-th layer, a block of rows at a time, the blocks shown on `stage`.
    pub fn append_all(
        &mut self,
        x: &Csr<f32>,
        x_shift: Option<&[f32]>,
        layers: &[&dyn LayerRows],
        stage: &mut Stage,
    ) -> Result<()> {
        let blocks = |n: usize| {
            (0..n)
                .step_by(WRITE_BLOCK_ROWS)
                .map(move |start| start..(start + WRITE_BLOCK_ROWS).min(n))
        };
        let per_matrix = x.n_rows.div_ceil(WRITE_BLOCK_ROWS);
        stage.begin(per_matrix * (1 + layers.len()), "block");
        let mut done = 0;
        for rows in blocks(x.n_rows) {
            stage.step(done);
            done += 1;
            let block = LayerRows::rows(x, rows);
            match x_shift {
                Some(c) => self.append_to(0, &block.plus_row(c))?,
                None => self.append_to(0, &block)?,
            }
        }
        for (l, layer) in layers.iter().enumerate() {
            for rows in blocks(layer.shape().0) {
                stage.step(done);
                done += 1;
                self.append_to(l + 1, &layer.rows(rows))?;
            }
        }
        Ok(())
    }

    /// Closes the file and renames it into place; an error if fewer rows than obs names
    /// were appended.
    pub fn finish(mut self) -> Result<()> {
        if let Some(m) = self.matrices.iter().find(|m| m.rows_written != self.n_rows) {
            return Err(Error::invalid(format!(
                "{}: {} of {} rows of {} written",
                self.path.display(),
                m.rows_written,
                self.n_rows,
                m.group
            )));
        }
        let file = self.file.take().expect("open until finish");
        file.close()
            .map_err(|e| h5_error(&self.path, "cannot close", e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}

impl Drop for StreamedH5ad {
    /// An unfinished file is removed.
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            drop(file);
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::hdf5::{read_h5ad, read_h5ad_labels, H5adOptions};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cellvae-h5stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    /// 70,000 cells in blocks of 1,000 (more than two chunks of every array): read back by
    /// the crate's `.h5ad` reader, the same matrix, names and obs column.
    #[test]
    fn blocks_read_back_as_one_matrix() {
        let (n, g) = (70_000usize, 7usize);
        let dense = ndarray::Array2::from_shape_fn((n, g), |(i, j)| {
            if (i * 7 + j * 3) % 5 == 0 {
                (i % 97 + j) as f32
            } else {
                0.0
            }
        });
        let x = Csr::from_dense(&dense);
        let obs_names: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let var_names: Vec<String> = (0..g).map(|j| format!("g{j}")).collect();
        let path = scratch("blocks.h5ad");
        let mut w = StreamedH5ad::create(
            &path,
            Frames {
                obs_names: &obs_names,
                obs: vec![(
                    "kind".into(),
                    Column::Categorical((0..n).map(|i| Some(format!("k{}", i % 3))).collect()),
                )],
                var_names: &var_names,
                var: vec![],
                layers: vec![],
                obsm: vec![],
            },
        )
        .unwrap();
        for start in (0..n).step_by(1000) {
            let rows: Vec<usize> = (start..(start + 1000).min(n)).collect();
            w.append_rows(&x.select_rows(&rows)).unwrap();
        }
        assert!(!path.exists(), "not in place before finish");
        w.finish().unwrap();
        let d = read_h5ad(&path, &H5adOptions::default()).unwrap();
        assert_eq!(d.matrix.indptr, x.indptr);
        assert_eq!(d.matrix.indices, x.indices);
        assert_eq!(d.matrix.data, x.data);
        assert_eq!((d.barcodes, d.gene_names), (obs_names, var_names));
        let kinds = read_h5ad_labels(&path, "kind").unwrap();
        assert_eq!(kinds.entries[4].1.as_deref(), Some("k1"));
        std::fs::remove_file(&path).unwrap();
    }

    /// A writer dropped before its last row (an error half-way) leaves no file behind, and
    /// `finish` with rows missing is an error.
    #[test]
    fn an_unfinished_file_is_removed() {
        let names: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
        let genes = vec!["g".to_string()];
        let frames = || Frames {
            obs_names: &names,
            obs: vec![],
            var_names: &genes,
            var: vec![],
            layers: vec![],
            obsm: vec![],
        };
        let path = scratch("unfinished.h5ad");
        let mut w = StreamedH5ad::create(&path, frames()).unwrap();
        let two = Csr::from_dense(&ndarray::Array2::from_elem((2, 1), 1.0f32));
        w.append_rows(&two).unwrap();
        drop(w);
        assert!(!path.exists() && !temp_name(&path).exists());
        let mut w = StreamedH5ad::create(&path, frames()).unwrap();
        w.append_rows(&two).unwrap();
        let e = w.finish().unwrap_err().to_string();
        assert!(e.contains("2 of 4 rows of X"), "{e}");
        assert!(!path.exists() && !temp_name(&path).exists());
    }
}
