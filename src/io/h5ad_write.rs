//! Writes an AnnData `.h5ad` (anndata's on-disk format, `encoding-version` 0.1.0 / 0.2.0
//! elements) that scanpy reads with `read_h5ad`: `X` as CSR, `layers`, `obs` and `var`
//! dataframes (numeric columns, categorical columns, string columns) and `obsm` arrays.
//! Through `hdf5-pure`; the file is written to a temporary name and renamed when complete.

use super::atomic::write_bytes;
use super::labels::natural_order;
use crate::csr::Csr;
use crate::error::{Error, Result};
use hdf5_pure::{make_i8_type, AttrValue, EnumTypeBuilder, FileBuilder, GroupBuilder};
use ndarray::Array2;
use std::path::Path;

/// A dataframe column.
pub enum Column {
    Numeric(Vec<f64>),
    /// Booleans, stored as h5py stores numpy's `bool` (an int8 enum FALSE = 0, TRUE = 1).
    Bool(Vec<bool>),
    /// Strings, e.g. gene IDs.
    Strings(Vec<String>),
    /// A categorical: per row a category (`None`: missing), categories in first-seen order
    /// unless they are all integers, then in numeric order.
    Categorical(Vec<Option<String>>),
}

/// What goes into the file.
pub struct AnnData<'a> {
    /// The matrix as trained on (cells × genes).
    pub x: &'a Csr<f32>,
    pub layers: Vec<(String, &'a Csr<f32>)>,
    pub obs_names: &'a [String],
    pub obs: Vec<(String, Column)>,
    pub var_names: &'a [String],
    pub var: Vec<(String, Column)>,
    /// Per-cell arrays, cells × k.
    pub obsm: Vec<(String, &'a Array2<f64>)>,
}

pub(super) fn encoding(ty: &str, version: &str) -> [(&'static str, AttrValue); 2] {
    [
        ("encoding-type", AttrValue::VarLenString(ty.into())),
        ("encoding-version", AttrValue::VarLenString(version.into())),
    ]
}

pub(super) fn tag_group(g: &mut GroupBuilder, ty: &str, version: &str) {
    for (k, v) in encoding(ty, version) {
        g.set_attr(k, v);
    }
}

/// Fills `g` as anndata's CSR matrix element.
fn fill_csr(g: &mut GroupBuilder, m: &Csr<f32>) {
    tag_group(g, "csr_matrix", "0.1.0");
    g.set_attr(
        "shape",
        AttrValue::I64Array(vec![m.n_rows as i64, m.n_cols as i64]),
    );
    g.create_dataset("data").with_f32_data(&m.data);
    let indices: Vec<i32> = m.indices.iter().map(|&j| j as i32).collect();
    g.create_dataset("indices").with_i32_data(&indices);
    let indptr: Vec<i64> = m.indptr.iter().map(|&p| p as i64).collect();
    g.create_dataset("indptr").with_i64_data(&indptr);
}

fn strings(g: &mut GroupBuilder, name: &str, values: &[String]) {
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let d = g.create_dataset(name).with_vlen_strings(&refs);
    for (k, v) in encoding("string-array", "0.2.0") {
        d.set_attr(k, v);
    }
}

/// Fills `g` as anndata's dataframe element.
pub(super) fn fill_dataframe(g: &mut GroupBuilder, index: &[String], columns: &[(String, Column)]) {
    tag_group(g, "dataframe", "0.2.0");
    g.set_attr("_index", AttrValue::VarLenString("_index".into()));
    let order: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
    g.set_attr("column-order", AttrValue::VarLenStringArray(order));
    strings(g, "_index", index);
    for (col, values) in columns {
        match values {
            Column::Numeric(v) => {
                let d = g.create_dataset(col).with_f64_data(v);
                for (k, v) in encoding("array", "0.2.0") {
                    d.set_attr(k, v);
                }
            }
            Column::Strings(v) => strings(g, col, v),
            Column::Bool(v) => {
                let dt = EnumTypeBuilder::with_base(make_i8_type())
                    .value("FALSE", 0)
                    .value("TRUE", 1)
                    .build()
                    .expect("0 and 1 fit an int8");
                let bytes: Vec<u8> = v.iter().map(|&b| b as u8).collect();
                let d = g.create_dataset(col).with_enum_u8_data(dt, &bytes);
                for (k, v) in encoding("array", "0.2.0") {
                    d.set_attr(k, v);
                }
            }
            Column::Categorical(v) => {
                let mut cats: Vec<String> = Vec::new();
                for s in v.iter().flatten() {
                    if !cats.contains(s) {
                        cats.push(s.clone());
                    }
                }
                if cats.iter().all(|c| c.parse::<i64>().is_ok()) {
                    natural_order(&mut cats);
                }
                let codes: Vec<i32> = v
                    .iter()
                    .map(|s| {
                        s.as_ref().map_or(-1, |s| {
                            cats.iter().position(|c| c == s).expect("listed") as i32
                        })
                    })
                    .collect();
                let mut c = g.create_group(col);
                tag_group(&mut c, "categorical", "0.2.0");
                c.set_attr("ordered", AttrValue::U8(0));
                strings(&mut c, "categories", &cats);
                let d = c.create_dataset("codes").with_i32_data(&codes);
                for (k, v) in encoding("array", "0.2.0") {
                    d.set_attr(k, v);
                }
                g.add_group(c.finish());
            }
        }
    }
}

/// Writes `a` to `path`.
pub fn write_h5ad(path: &Path, a: &AnnData<'_>) -> Result<()> {
    let (n, d) = (a.x.n_rows, a.x.n_cols);
    assert_eq!(
        (a.obs_names.len(), a.var_names.len()),
        (n, d),
        "names match the matrix"
    );
    let mut f = FileBuilder::new();
    for (k, v) in encoding("anndata", "0.1.0") {
        f.set_attr(k, v);
    }
    let mut x = f.create_group("X");
    fill_csr(&mut x, a.x);
    f.add_group(x.finish());
    let mut layers = f.create_group("layers");
    tag_group(&mut layers, "dict", "0.1.0");
    for (name, m) in &a.layers {
        let mut g = layers.create_group(name);
        fill_csr(&mut g, m);
        layers.add_group(g.finish());
    }
    f.add_group(layers.finish());
    for (name, index, columns) in [("obs", a.obs_names, &a.obs), ("var", a.var_names, &a.var)] {
        let mut g = f.create_group(name);
        fill_dataframe(&mut g, index, columns);
        f.add_group(g.finish());
    }
    let mut obsm = f.create_group("obsm");
    tag_group(&mut obsm, "dict", "0.1.0");
    for (name, m) in &a.obsm {
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
    let bytes = f.finish().map_err(|e| {
        Error::io(
            path,
            std::io::Error::other(format!("cannot encode HDF5: {e}")),
        )
    })?;
    write_bytes(path, &bytes)
}
