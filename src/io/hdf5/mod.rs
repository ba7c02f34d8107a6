//! HDF5 inputs, through the pure-Rust `hdf5-pure` crate (no libhdf5):
//!
//! - AnnData `.h5ad` (anndata ≥ 0.7's layout): the matrix from `X` (or `layers/<NAME>`, or
//!   `raw/X`), stored as a CSR group, a CSC group (`encoding-type` `csr_matrix` / `csc_matrix`,
//!   `data`, `indices`, `indptr`, attribute `shape`) or a dense 2-D dataset; cells from the
//!   `obs` index, genes from the `var` index (symbols) and its `gene_ids` column when present
//!   (`raw/var` with `raw/X`); labels from an `obs` column, categorical (`categories` and
//!   `codes`, −1 for missing) or strings.
//! - The layout scanpy wrote before anndata 0.7 (still shipped as its `pbmc68k_reduced`):
//!   `obs` and `var` as compound datasets with an `index` field, categorical columns as integer
//!   codes with their names in `uns/<column>_categories`, `raw.X` and `raw.var`, and sparse
//!   groups marked `h5sparse_format` / `h5sparse_shape`.
//! - Cell Ranger `.h5`: version 3's `matrix/` group (`features/id`, `features/name`, and only
//!   the `Gene Expression` features when `feature_type` is there) or version 2's genome group
//!   (`genes`, `gene_names`); both hold the genes × cells matrix column by column (CSC).
//!
//! Every failure is one error naming the file and the HDF5 object, and what was expected.
//!
//! [`h5ad`] reads AnnData files, [`tenx`] Cell Ranger's; this module holds what both use:
//! the typed reads of datasets and attributes, each failure one error naming the object.

pub mod h5ad;
pub mod tenx;

pub use h5ad::{read_h5ad, read_h5ad_labels, H5adOptions};
pub use tenx::read_10x_h5;

use crate::csr::Csr;
use crate::error::{Error, Result};
use hdf5_pure::{AttrValue, File, Group};
use std::path::Path;

pub(super) fn err(path: &Path, object: &str, msg: impl std::fmt::Display) -> Error {
    Error::parse(path, None, format!("{object}: {msg}"))
}

pub(super) fn open(path: &Path) -> Result<File> {
    File::open_streaming(path)
        .map_err(|e| err(path, "/", format!("not a readable HDF5 file ({e})")))
}

pub(super) fn group(path: &Path, f: &File, name: &str) -> Result<Group> {
    f.group(name)
        .map_err(|e| err(path, name, format!("expected a group ({e})")))
}

pub(super) fn strings(path: &Path, f: &File, name: &str) -> Result<Vec<String>> {
    f.dataset(name)
        .and_then(|d| d.read_string())
        .map_err(|e| err(path, name, format!("expected a dataset of strings ({e})")))
}

pub(super) fn integers(path: &Path, f: &File, name: &str) -> Result<Vec<i64>> {
    f.dataset(name)
        .and_then(|d| d.read_i64())
        .map_err(|e| err(path, name, format!("expected a dataset of integers ({e})")))
}

pub(super) fn values(path: &Path, f: &File, name: &str) -> Result<Vec<f32>> {
    let v = f
        .dataset(name)
        .and_then(|d| d.read_f32())
        .map_err(|e| err(path, name, format!("expected a numeric dataset ({e})")))?;
    if let Some(bad) = v.iter().find(|v| !v.is_finite() || **v < 0.0) {
        return Err(err(
            path,
            name,
            format!("holds {bad}; expected finite non-negative values (counts or normalized data; for scaled data read --raw or a --layer of counts)"),
        ));
    }
    Ok(v)
}

pub(super) fn attr(path: &Path, g: &Group, object: &str, key: &str) -> Result<Option<AttrValue>> {
    let attrs = g
        .attrs()
        .map_err(|e| err(path, object, format!("cannot read its attributes ({e})")))?;
    Ok(attrs.get(key).cloned())
}

pub(super) fn attr_string(
    path: &Path,
    g: &Group,
    object: &str,
    key: &str,
) -> Result<Option<String>> {
    // h5py writes a `str` attribute as a variable-length string; others write fixed widths.
    Ok(match attr(path, g, object, key)? {
        Some(
            AttrValue::String(s)
            | AttrValue::AsciiString(s)
            | AttrValue::VarLenString(s)
            | AttrValue::VarLenAsciiString(s),
        ) => Some(s),
        Some(AttrValue::StringSized { value, .. } | AttrValue::AsciiStringSized { value, .. }) => {
            Some(value)
        }
        Some(
            AttrValue::StringArray(v)
            | AttrValue::AsciiStringArray(v)
            | AttrValue::VarLenStringArray(v)
            | AttrValue::VarLenAsciiStringArray(v),
        ) if v.len() == 1 => Some(v[0].clone()),
        _ => None,
    })
}

/// Checked `usize` positions from a pointer or index dataset.
pub(super) fn positions(
    path: &Path,
    object: &str,
    v: Vec<i64>,
    below: usize,
) -> Result<Vec<usize>> {
    v.into_iter()
        .map(|p| {
            usize::try_from(p)
                .ok()
                .filter(|&p| p <= below)
                .ok_or_else(|| err(path, object, format!("holds {p}, outside 0..={below}")))
        })
        .collect()
}

/// A compressed sparse group (`data`, `indices`, `indptr`) as `(major, minor)` entries:
/// `indptr` runs over `n_major` majors, `indices` are minors below `n_minor`.
pub(super) fn compressed(
    path: &Path,
    f: &File,
    name: &str,
    n_major: usize,
    n_minor: usize,
) -> Result<Vec<(usize, usize, f32)>> {
    let data = values(path, f, &format!("{name}/data"))?;
    let indices_name = format!("{name}/indices");
    let indptr_name = format!("{name}/indptr");
    let indices = positions(
        path,
        &indices_name,
        integers(path, f, &indices_name)?,
        n_minor,
    )?;
    let indptr = positions(
        path,
        &indptr_name,
        integers(path, f, &indptr_name)?,
        data.len(),
    )?;
    if indptr.len() != n_major + 1 || indptr[0] != 0 || indptr[n_major] != data.len() {
        return Err(err(
            path,
            &indptr_name,
            format!(
                "has {} entries from {} to {}; expected {} from 0 to {} (the number of values)",
                indptr.len(),
                indptr.first().copied().unwrap_or(0),
                indptr.last().copied().unwrap_or(0),
                n_major + 1,
                data.len()
            ),
        ));
    }
    if indices.len() != data.len() {
        return Err(err(
            path,
            &indices_name,
            format!("has {} entries, data has {}", indices.len(), data.len()),
        ));
    }
    let mut out = Vec::with_capacity(data.len());
    for major in 0..n_major {
        let (a, b) = (indptr[major], indptr[major + 1]);
        if b < a {
            return Err(err(path, &indptr_name, "decreases"));
        }
        for k in a..b {
            if indices[k] >= n_minor {
                return Err(err(
                    path,
                    &indices_name,
                    format!("index {} is not below {n_minor}", indices[k]),
                ));
            }
            if data[k] != 0.0 {
                out.push((major, indices[k], data[k]));
            }
        }
    }
    Ok(out)
}

/// A cells × genes matrix from triplets `(cell, gene, value)`; repeated entries are an error.
pub(super) fn matrix(
    path: &Path,
    object: &str,
    cells: usize,
    genes: usize,
    t: Vec<(usize, usize, f32)>,
) -> Result<Csr<f32>> {
    let n = t.len();
    let m = Csr::from_triplets(
        cells,
        genes,
        t.into_iter()
            .map(|(i, j, v)| (i as u32, j as u32, v))
            .collect(),
        |a, b| a + b,
    );
    if m.nnz() != n {
        return Err(err(path, object, "stores an entry twice"));
    }
    Ok(m)
}
