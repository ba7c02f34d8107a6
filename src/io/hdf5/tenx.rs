//! Cell Ranger `.h5` files, version 3 (`matrix/`) or 2 (a genome group): genes × cells,
//! stored column by column (see the parent module's doc).

use super::*;
use crate::io::Dataset;

/// Reads a Cell Ranger `.h5` file (version 3 or 2).
pub fn read_10x_h5(path: &Path) -> Result<Dataset> {
    let f = open(path)?;
    let (base, v3) = if f.group("matrix").is_ok() {
        ("matrix".to_string(), true)
    } else {
        let groups = f
            .root()
            .groups()
            .map_err(|e| err(path, "/", format!("cannot list groups ({e})")))?;
        let genome = groups.into_iter().next().ok_or_else(|| {
            err(
                path,
                "/",
                "no `matrix` group (Cell Ranger 3) and no genome group (Cell Ranger 2)",
            )
        })?;
        (genome, false)
    };
    let shape_name = format!("{base}/shape");
    let shape = integers(path, &f, &shape_name)?;
    let [genes, cells] = shape[..] else {
        return Err(err(path, &shape_name, "expected two numbers: genes, cells"));
    };
    let (genes, cells) = (genes.max(0) as usize, cells.max(0) as usize);
    let barcodes = strings(path, &f, &format!("{base}/barcodes"))?;
    let (ids, names, kinds) = if v3 {
        let kind_name = format!("{base}/features/feature_type");
        let kinds = match f.dataset(&kind_name) {
            Ok(_) => Some(strings(path, &f, &kind_name)?),
            Err(_) => None,
        };
        (
            strings(path, &f, &format!("{base}/features/id"))?,
            strings(path, &f, &format!("{base}/features/name"))?,
            kinds,
        )
    } else {
        (
            strings(path, &f, &format!("{base}/genes"))?,
            strings(path, &f, &format!("{base}/gene_names"))?,
            None,
        )
    };
    if barcodes.len() != cells || ids.len() != genes || names.len() != genes {
        return Err(err(
            path,
            &base,
            format!(
                "shape says {genes} genes × {cells} cells, but there are {} barcodes, {} IDs and {} names",
                barcodes.len(),
                ids.len(),
                names.len()
            ),
        ));
    }
    crate::io::tenx::check_unique(path, &barcodes, 1)?;
    let t: Vec<(usize, usize, f32)> = compressed(path, &f, &base, cells, genes)?;
    let all = matrix(path, &base, cells, genes, t)?;
    // Only gene expression, as scanpy's read_10x_h5 keeps by default.
    let keep: Vec<usize> = (0..genes)
        .filter(|&g| kinds.as_ref().is_none_or(|k| k[g] == "Gene Expression"))
        .collect();
    let mut new_index = vec![None; genes];
    for (k, &g) in keep.iter().enumerate() {
        new_index[g] = Some(k as u32);
    }
    Ok(Dataset {
        matrix: all.select_columns(&new_index, keep.len()),
        barcodes,
        gene_ids: keep.iter().map(|&g| ids[g].clone()).collect(),
        gene_names: keep.iter().map(|&g| names[g].clone()).collect(),
        has_gene_ids: true,
        batches: None,
    })
}
