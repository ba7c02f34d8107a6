//! AnnData `.h5ad` files: the matrix (`X`, a layer or `raw/X`; CSR read a block of rows at a
//! time, CSC, or dense), the cell and gene names, and `obs` columns as labels; anndata ≥ 0.7's
//! layout and the one scanpy wrote before it (see the parent module's doc).

use super::{
    attr, attr_string, compressed, err, group, integers, matrix, open, positions, strings, values,
};
use crate::csr::Csr;
use crate::error::{Error, Result};
use crate::io::labels::Labels;
use crate::io::Dataset;
use crate::stage::Stage;
use hdf5_pure::{AttrValue, Datatype, File};
use std::path::Path;

/// Which matrix of an `.h5ad` to read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct H5adOptions {
    /// Read `layers/<NAME>` instead of `X`.
    pub layer: Option<String>,
    /// Read `raw/X` with `raw/var` instead of `X` with `var`.
    pub raw: bool,
    /// The label of the reading's progress lines (`None`: silent).
    pub progress: Option<String>,
}

/// Nonzeros read at a time by [`csr_in_blocks`]: 4 Mi values and their indices, about
/// 50 MB with the decoded chunks, whatever the file's size.
const READ_BLOCK_NNZ: usize = 1 << 22;

/// A CSR group (`data`, `indices`, `indptr`) of `cells × genes`, read a block of rows at a
/// time straight into the matrix: memory is the matrix (8 bytes per nonzero) plus one block,
/// not the whole arrays and a triplet list beside them. The same checks and the same matrix
/// as [`compressed`] then [`matrix`]: values finite and non-negative, indices below `genes`,
/// `indptr` from 0 to the number of values and never decreasing, explicit zeros dropped, each
/// row's columns sorted, a column twice in a row an error.
fn csr_in_blocks(
    path: &Path,
    f: &File,
    name: &str,
    (cells, genes): (usize, usize),
    block_nnz: usize,
    stage: &mut Stage,
) -> Result<Csr<f32>> {
    let (data_name, indices_name, indptr_name) = (
        format!("{name}/data"),
        format!("{name}/indices"),
        format!("{name}/indptr"),
    );
    let dataset = |n: &str| {
        f.dataset(n)
            .map_err(|e| err(path, n, format!("missing: expected a dataset ({e})")))
    };
    let (data, indices) = (dataset(&data_name)?, dataset(&indices_name)?);
    let nnz = data
        .shape()
        .ok()
        .and_then(|s| s.first().copied())
        .ok_or_else(|| err(path, &data_name, "cannot read its length"))? as usize;
    let indptr = positions(path, &indptr_name, integers(path, f, &indptr_name)?, nnz)?;
    if indptr.len() != cells + 1 || indptr[0] != 0 || indptr[cells] != nnz {
        return Err(err(
            path,
            &indptr_name,
            format!(
                "has {} entries from {} to {}; expected {} from 0 to {nnz} (the number of values)",
                indptr.len(),
                indptr.first().copied().unwrap_or(0),
                indptr.last().copied().unwrap_or(0),
                cells + 1,
            ),
        ));
    }
    if let Some(w) = indptr.windows(2).position(|w| w[1] < w[0]) {
        return Err(err(path, &indptr_name, format!("decreases at row {w}")));
    }
    let mut m = Csr {
        n_rows: cells,
        n_cols: genes,
        indptr: Vec::with_capacity(cells + 1),
        indices: Vec::with_capacity(nnz),
        data: Vec::with_capacity(nnz),
    };
    m.indptr.push(0);
    let mut row = 0;
    let mut entries: Vec<(u32, f32)> = Vec::new();
    stage.begin(cells, "cell");
    while row < cells {
        stage.step(row);
        // Whole rows, about `block_nnz` values (at least one row).
        let start = indptr[row];
        let mut end_row = row + 1;
        while end_row < cells && indptr[end_row + 1] - start <= block_nnz {
            end_row += 1;
        }
        let count = (indptr[end_row] - start) as u64;
        let read_err = |n: &str, e: hdf5_pure::Error| {
            err(
                path,
                n,
                format!("cannot read values {start}..{} ({e})", start as u64 + count),
            )
        };
        let v = data
            .read_f32_rows(start as u64, count)
            .map_err(|e| read_err(&data_name, e))?;
        let ix = indices
            .read_i64_rows(start as u64, count)
            .map_err(|e| read_err(&indices_name, e))?;
        if v.len() != count as usize || ix.len() != count as usize {
            return Err(err(
                path,
                name,
                "data and indices are shorter than indptr says",
            ));
        }
        if let Some(bad) = v.iter().find(|v| !v.is_finite() || **v < 0.0) {
            return Err(err(path, &data_name, format!("holds {bad}; expected finite non-negative values (counts or normalized data; for scaled data read --raw or a --layer of counts)")));
        }
        for r in row..end_row {
            entries.clear();
            for k in indptr[r] - start..indptr[r + 1] - start {
                let j = usize::try_from(ix[k])
                    .ok()
                    .filter(|&j| j < genes)
                    .ok_or_else(|| {
                        err(
                            path,
                            &indices_name,
                            format!("index {} is not below {genes}", ix[k]),
                        )
                    })?;
                if v[k] != 0.0 {
                    entries.push((j as u32, v[k]));
                }
            }
            if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
                entries.sort_by_key(|e| e.0);
                if entries.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(err(path, name, "stores an entry twice"));
                }
            }
            m.indices.extend(entries.iter().map(|e| e.0));
            m.data.extend(entries.iter().map(|e| e.1));
            m.indptr.push(m.indices.len());
        }
        row = end_row;
    }
    Ok(m)
}

/// The `.h5ad` matrix group or dataset `name` with `cells × genes` expected.
fn h5ad_matrix(
    path: &Path,
    f: &File,
    name: &str,
    (cells, genes): (usize, usize),
    stage: &mut Stage,
) -> Result<Csr<f32>> {
    if let Ok(g) = f.group(name) {
        // anndata ≥ 0.7 names the format `encoding-type`; the older layout `h5sparse_format`.
        let kind = match attr_string(path, &g, name, "encoding-type")? {
            Some(k) => k,
            None => match attr_string(path, &g, name, "h5sparse_format")?.as_deref() {
                Some("csr") => "csr_matrix".into(),
                Some("csc") => "csc_matrix".into(),
                other => other.unwrap_or_default().to_string(),
            },
        };
        let shape_attr = match attr(path, &g, name, "shape")? {
            Some(v) => Some(v),
            None => attr(path, &g, name, "h5sparse_shape")?,
        };
        let shape: Vec<i64> = match shape_attr {
            Some(AttrValue::I64Array(v)) => v,
            Some(AttrValue::I32Array(v)) => v.into_iter().map(i64::from).collect(),
            Some(AttrValue::U64Array(v)) => v.into_iter().map(|x| x as i64).collect(),
            _ => return Err(err(path, name, "lacks its `shape` attribute")),
        };
        if shape != [cells as i64, genes as i64] {
            return Err(err(
                path,
                name,
                format!("has shape {shape:?}, but obs and var give [{cells}, {genes}]"),
            ));
        }
        let t = match kind.as_str() {
            "csr_matrix" => {
                return csr_in_blocks(path, f, name, (cells, genes), READ_BLOCK_NNZ, stage)
            }
            "csc_matrix" => compressed(path, f, name, genes, cells)?
                .into_iter()
                .map(|(g, c, v)| (c, g, v))
                .collect(),
            other => {
                return Err(err(
                    path,
                    name,
                    format!("encoding-type '{other}'; expected csr_matrix or csc_matrix"),
                ))
            }
        };
        return matrix(path, name, cells, genes, t);
    }
    let ds = f
        .dataset(name)
        .map_err(|e| err(path, name, format!("missing: expected a matrix ({e})")))?;
    let shape = ds
        .shape()
        .map_err(|e| err(path, name, format!("cannot read its shape ({e})")))?;
    if shape != [cells as u64, genes as u64] {
        return Err(err(
            path,
            name,
            format!("has shape {shape:?}, but obs and var give [{cells}, {genes}]"),
        ));
    }
    let v = values(path, f, name)?;
    let t = (0..cells)
        .flat_map(|i| (0..genes).map(move |j| (i, j)))
        .zip(v)
        .filter(|(_, v)| *v != 0.0)
        .map(|((i, j), v)| (i, j, v))
        .collect();
    matrix(path, name, cells, genes, t)
}

/// The index of the dataframe `name`: a group whose `_index` attribute names the column, or
/// (the layout before anndata 0.7) a compound dataset with an `index` field.
fn frame_index(path: &Path, f: &File, name: &str) -> Result<Vec<String>> {
    if f.group(name).is_err() && f.dataset(name).is_ok() {
        return match compound_field(path, f, name, "index")? {
            Field::Strings(v) => Ok(v),
            Field::Integers(_) => Err(err(path, name, "its `index` field is not a string")),
        };
    }
    let g = group(path, f, name)?;
    let column = attr_string(path, &g, name, "_index")?.unwrap_or_else(|| "_index".into());
    strings(path, f, &format!("{name}/{column}"))
}

/// One field of a compound dataset.
enum Field {
    Strings(Vec<String>),
    Integers(Vec<i64>),
}

/// Field `field` of the compound dataset `name`: fixed-length strings or integers (the old
/// layout's obs and var columns; categorical codes are integers).
fn compound_field(path: &Path, f: &File, name: &str, field: &str) -> Result<Field> {
    let ds = f
        .dataset(name)
        .map_err(|e| err(path, name, format!("missing ({e})")))?;
    let dtype = ds
        .datatype()
        .map_err(|e| err(path, name, format!("cannot read its datatype ({e})")))?;
    let Datatype::Compound { size, members } = dtype else {
        return Err(err(path, name, "expected a compound dataset (a table)"));
    };
    let member = members
        .iter()
        .find(|m| m.name == field)
        .ok_or_else(|| err(path, &format!("{name}/{field}"), "missing: no such field"))?;
    let raw = ds
        .read_raw()
        .map_err(|e| err(path, name, format!("cannot read its records ({e})")))?;
    let size = size as usize;
    if size == 0 || raw.len() % size != 0 {
        return Err(err(path, name, "its records do not fill the data"));
    }
    let at = member.byte_offset as usize;
    let records = raw.chunks_exact(size);
    match &member.datatype {
        Datatype::String { size: w, .. } => {
            let w = *w as usize;
            if at + w > size {
                return Err(err(path, name, "a field runs past its record"));
            }
            Ok(Field::Strings(
                records
                    .map(|r| {
                        let bytes = &r[at..at + w];
                        let end = bytes.iter().position(|&b| b == 0).unwrap_or(w);
                        String::from_utf8_lossy(&bytes[..end])
                            .trim_end()
                            .to_string()
                    })
                    .collect(),
            ))
        }
        Datatype::FixedPoint { size: w, .. } if matches!(w, 1 | 2 | 4 | 8) => {
            let w = *w as usize;
            if at + w > size {
                return Err(err(path, name, "a field runs past its record"));
            }
            Ok(Field::Integers(
                records
                    .map(|r| {
                        let b = &r[at..at + w];
                        match w {
                            1 => b[0] as i8 as i64,
                            2 => i16::from_le_bytes([b[0], b[1]]) as i64,
                            4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
                            _ => i64::from_le_bytes(b.try_into().expect("8 bytes")),
                        }
                    })
                    .collect(),
            ))
        }
        _ => Err(err(
            path,
            &format!("{name}/{field}"),
            "expected a string or integer field",
        )),
    }
}

/// Reads an `.h5ad` file.
pub fn read_h5ad(path: &Path, opts: &H5adOptions) -> Result<Dataset> {
    let f = open(path)?;
    let barcodes = frame_index(path, &f, "obs")?;
    // The old layout names raw's parts `raw.X` and `raw.var`.
    let old_raw = opts.raw && f.group("raw").is_err() && f.group("raw.X").is_ok();
    let var = match (opts.raw, old_raw) {
        (false, _) => "var",
        (true, false) => "raw/var",
        (true, true) => "raw.var",
    };
    let gene_names = frame_index(path, &f, var)?;
    let ids_name = format!("{var}/gene_ids");
    let gene_ids = if f.group(var).is_err() {
        match compound_field(path, &f, var, "gene_ids") {
            Ok(Field::Strings(v)) => Some(v),
            _ => None,
        }
    } else {
        match f.dataset(&ids_name) {
            Ok(_) => Some(strings(path, &f, &ids_name)?),
            Err(_) => None,
        }
    };
    if let Some(ids) = &gene_ids {
        if ids.len() != gene_names.len() {
            return Err(err(
                path,
                &ids_name,
                "has another length than the var index",
            ));
        }
    }
    let x = match (&opts.layer, opts.raw) {
        (Some(_), true) => return Err(Error::invalid("--layer and --raw cannot be combined")),
        (Some(l), false) => format!("layers/{l}"),
        (None, true) if old_raw => "raw.X".into(),
        (None, true) => "raw/X".into(),
        (None, false) => "X".into(),
    };
    let mut stage = Stage::new(opts.progress.as_ref().map(|l| format!("{l} {x}")));
    let matrix = h5ad_matrix(path, &f, &x, (barcodes.len(), gene_names.len()), &mut stage)?;
    crate::io::tenx::check_unique(path, &barcodes, 1)?;
    Ok(Dataset {
        matrix,
        barcodes,
        has_gene_ids: gene_ids.is_some(),
        gene_ids: gene_ids.unwrap_or_else(|| gene_names.clone()),
        gene_names,
        batches: None,
    })
}

/// The `obs` column `column` of an `.h5ad` as per-cell labels (missing categories unlabelled).
pub fn read_h5ad_labels(path: &Path, column: &str) -> Result<Labels> {
    let f = open(path)?;
    let barcodes = frame_index(path, &f, "obs")?;
    let name = format!("obs/{column}");
    let labels: Vec<Option<String>> = if f.group("obs").is_err() {
        // The old layout: a field of the obs table, categories in uns/<column>_categories.
        match compound_field(path, &f, "obs", column)? {
            Field::Strings(v) => v.into_iter().map(Some).collect(),
            Field::Integers(codes) => {
                let cats_name = format!("uns/{column}_categories");
                let categories = strings(path, &f, &cats_name)?;
                decode_categories(path, &cats_name, codes, &categories)?
            }
        }
    } else if f.group(&name).is_ok() {
        let categories = strings(path, &f, &format!("{name}/categories"))?;
        let codes_name = format!("{name}/codes");
        decode_categories(
            path,
            &codes_name,
            integers(path, &f, &codes_name)?,
            &categories,
        )?
    } else if f.dataset(&name).is_ok() {
        strings(path, &f, &name)?.into_iter().map(Some).collect()
    } else {
        return Err(err(path, &name, "missing: no such obs column"));
    };
    if labels.len() != barcodes.len() {
        return Err(err(path, &name, "has another length than the obs index"));
    }
    Ok(Labels {
        entries: barcodes.into_iter().zip(labels).collect(),
        column: column.to_string(),
    })
}

/// Categorical codes as their names (`-1`: missing); `object` is named by the error for a
/// code with no category.
fn decode_categories(
    path: &Path,
    object: &str,
    codes: Vec<i64>,
    categories: &[String],
) -> Result<Vec<Option<String>>> {
    codes
        .into_iter()
        .map(|c| match usize::try_from(c) {
            Ok(i) if i < categories.len() => Ok(Some(categories[i].clone())),
            _ if c == -1 => Ok(None),
            _ => Err(err(path, object, format!("code {c} has no category"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdf5_pure::FileBuilder;

    /// Rows read a block at a time give the same matrix whatever the block: explicit zeros
    /// dropped, an unsorted row sorted, rows split across blocks or not; a column twice in
    /// a row is an error.
    #[test]
    fn csr_blocks_give_one_matrix() {
        let dir = std::env::temp_dir().join(format!("cellvae-h5blocks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, indices: &[i32]| {
            let mut b = FileBuilder::new();
            let mut x = b.create_group("X");
            x.create_dataset("data")
                .with_f32_data(&[1.0, 0.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
            x.create_dataset("indices").with_i32_data(indices);
            x.create_dataset("indptr").with_i64_data(&[0, 2, 2, 5, 7]);
            b.add_group(x.finish());
            let p = dir.join(name);
            b.write(&p).unwrap();
            p
        };
        // Row 0: (0, 1.0) and an explicit zero; row 1 empty; row 2 unsorted; row 3 sorted.
        let path = write("ok.h5", &[0, 2, 3, 1, 0, 1, 3]);
        let f = open(&path).unwrap();
        let want = Csr {
            n_rows: 4,
            n_cols: 4,
            indptr: vec![0, 1, 1, 4, 6],
            indices: vec![0, 0, 1, 3, 1, 3],
            data: vec![1.0, 4.0, 3.0, 2.0, 5.0, 6.0],
        };
        for block in [1, 2, 3, 100] {
            let m = csr_in_blocks(&path, &f, "X", (4, 4), block, &mut Stage::silent()).unwrap();
            assert_eq!(
                (&m.indptr, &m.indices, &m.data),
                (&want.indptr, &want.indices, &want.data),
                "block {block}"
            );
        }
        let twice = write("twice.h5", &[0, 2, 3, 1, 3, 1, 3]);
        let f = open(&twice).unwrap();
        let e = csr_in_blocks(&twice, &f, "X", (4, 4), 2, &mut Stage::silent())
            .unwrap_err()
            .to_string();
        assert!(e.contains("stores an entry twice"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
