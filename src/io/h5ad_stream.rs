//! An `.h5ad` whose `X` is written in blocks of cells, so a matrix larger than memory can be
//! written: the small parts (`obs`, `var`, the empty dicts) and three empty, extendible,
//! chunked and deflated datasets for `X`'s CSR arrays go to disk first; each block of rows is
//! then appended and compressed chunk by chunk. Memory stays near one block plus a few chunks.
//!
//! The file is written under a temporary name and renamed into place by [`StreamedH5ad::finish`]
//! only when every row is in: a writer dropped half-way (an error, an interrupt) leaves no
//! file that looks complete.

use super::atomic::temp_name;
use super::h5ad_write::{encoding, fill_dataframe, tag_group, Column};
use crate::csr::Csr;
use crate::error::{Error, Result};
use hdf5_pure::{
    AttrValue, File, FileAccessProperties, FileBuilder, MaxExtent, MemoryStrategy, SyncPolicy,
};
use std::path::{Path, PathBuf};

/// Elements per chunk of `X`'s arrays: 128 KiB of `f32` values, of the order h5py picks.
/// Not 2¹⁶ or more: hdf5-pure 0.47 then encodes the chunk dimensions one byte narrower
/// than libhdf5 expects, and h5py cannot open the dataset.
const CHUNK: u64 = 1 << 15;
/// Deflate level of `X` (anndata's `compression="gzip"` uses h5py's default, 4).
const DEFLATE_LEVEL: u32 = 4;

/// The `obs` and `var` of a streamed `.h5ad`.
pub struct Frames<'a> {
    pub obs_names: &'a [String],
    pub obs: Vec<(String, Column)>,
    pub var_names: &'a [String],
    pub var: Vec<(String, Column)>,
}

/// An `.h5ad` being written block by block (see the module doc).
pub struct StreamedH5ad {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    n_rows: usize,
    n_cols: usize,
    rows_written: usize,
    nnz_written: i64,
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
        tag_group(&mut x, "csr_matrix", "0.1.0");
        x.set_attr(
            "shape",
            AttrValue::I64Array(vec![n_rows as i64, n_cols as i64]),
        );
        x.create_dataset("data")
            .with_f32_data(&[])
            .with_shape(&[0])
            .with_maxshape(&[MaxExtent::Unlimited])
            .with_chunks(&[CHUNK])
            .with_deflate(DEFLATE_LEVEL);
        x.create_dataset("indices")
            .with_i32_data(&[])
            .with_shape(&[0])
            .with_maxshape(&[MaxExtent::Unlimited])
            .with_chunks(&[CHUNK])
            .with_deflate(DEFLATE_LEVEL);
        x.create_dataset("indptr")
            .with_i64_data(&[])
            .with_shape(&[0])
            .with_maxshape(&[MaxExtent::Unlimited])
            .with_chunks(&[CHUNK.min(n_rows as u64 + 1)])
            .with_deflate(DEFLATE_LEVEL);
        f.add_group(x.finish());
        for (name, index, columns) in [
            ("obs", frames.obs_names, &frames.obs),
            ("var", frames.var_names, &frames.var),
        ] {
            let mut g = f.create_group(name);
            fill_dataframe(&mut g, index, columns);
            f.add_group(g.finish());
        }
        for empty in ["layers", "obsm", "obsp", "varm", "varp", "uns"] {
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
        let mut w = StreamedH5ad {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
            n_rows,
            n_cols,
            rows_written: 0,
            nnz_written: 0,
        };
        w.append_arrays(&[], &[], &[0])?;
        Ok(w)
    }

    /// Appends the next `block.n_rows` cells of `X`.
    pub fn append_rows(&mut self, block: &Csr<f32>) -> Result<()> {
        assert_eq!(block.n_cols, self.n_cols, "a block has the file's genes");
        assert!(
            self.rows_written + block.n_rows <= self.n_rows,
            "no more rows than obs names"
        );
        let indices: Vec<i32> = block.indices.iter().map(|&j| j as i32).collect();
        let base = self.nnz_written;
        let indptr: Vec<i64> = block.indptr[1..].iter().map(|&p| base + p as i64).collect();
        self.append_arrays(&block.data, &indices, &indptr)?;
        self.rows_written += block.n_rows;
        self.nnz_written += block.nnz() as i64;
        Ok(())
    }

    fn append_arrays(&mut self, data: &[f32], indices: &[i32], indptr: &[i64]) -> Result<()> {
        let file = self.file.as_ref().expect("open until finish");
        let fail = |e: hdf5_pure::Error| h5_error(&self.path, "cannot append to X", e);
        let mut d = file.dataset("X/data").map_err(fail)?;
        d.append(data).map_err(fail)?;
        let mut i = file.dataset("X/indices").map_err(fail)?;
        i.append(indices).map_err(fail)?;
        let mut p = file.dataset("X/indptr").map_err(fail)?;
        p.append(indptr).map_err(fail)
    }

    /// Closes the file and renames it into place; an error if fewer rows than obs names
    /// were appended.
    pub fn finish(mut self) -> Result<()> {
        if self.rows_written != self.n_rows {
            return Err(Error::invalid(format!(
                "{}: {} of {} rows written",
                self.path.display(),
                self.rows_written,
                self.n_rows
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
        assert!(e.contains("2 of 4 rows"), "{e}");
        assert!(!path.exists() && !temp_name(&path).exists());
    }
}
