//! The shipped PBMC3k dataset through the readers, QC and LogNormalize, checked against the
//! figures in data/README.md and the per-cell oracle `reference/qc_metrics.csv.gz`.

use cellvae::io::{self, labels, ReadOptions};
use cellvae::preprocess::{prepare, PrepOptions};
use std::collections::HashMap;
use std::path::Path;

fn pbmc() -> cellvae::io::Dataset {
    io::read_dataset(Path::new("data/pbmc3k"), &ReadOptions::default()).expect("read data/pbmc3k")
}

#[test]
fn pbmc3k_reads_with_the_documented_shape() {
    let d = pbmc();
    assert_eq!((d.n_cells(), d.n_genes()), (2700, 13714));
    assert_eq!(d.matrix.nnz(), 2_282_976);
    let total: f64 = d.matrix.data.iter().map(|&v| v as f64).sum();
    assert_eq!(total, 6_386_518.0);
    assert_eq!(d.barcodes[0], "AAACATACAACCAC-1");
    assert!(
        d.has_gene_ids && d.gene_ids[0] == "ENSG00000237683" && d.gene_names[0] == "AL627309.1"
    );
}

#[test]
fn pbmc3k_qc_matches_the_reference_for_every_cell() {
    let p = prepare(pbmc(), &PrepOptions::default()).unwrap();
    assert_eq!(p.data.n_cells(), 2638);
    assert_eq!(p.data.n_genes(), 13714);
    assert_eq!(p.data.matrix.nnz(), 2_238_732);
    assert_eq!(p.qc.len(), 2700);

    let reference = io::read_lines(Path::new("data/pbmc3k/reference/qc_metrics.csv.gz")).unwrap();
    let mut want = HashMap::new();
    for line in &reference[1..] {
        let f: Vec<&str> = line.split(',').collect();
        want.insert(
            f[0].to_string(),
            (
                f[1].parse::<f64>().unwrap(),
                f[2].parse::<usize>().unwrap(),
                f[3].parse::<f64>().unwrap(),
                f[4] == "1",
            ),
        );
    }
    assert_eq!(want.len(), 2700);
    for r in &p.qc {
        let (n_count, n_feature, pct, passes) = want[&r.barcode];
        assert_eq!(r.metrics.n_count, n_count, "{}", r.barcode);
        assert_eq!(r.metrics.n_feature, n_feature, "{}", r.barcode);
        assert!(
            (r.metrics.percent_mt - pct).abs() < 1e-6,
            "{}: {} vs {pct}",
            r.barcode,
            r.metrics.percent_mt
        );
        assert_eq!(r.passes, passes, "{}", r.barcode);
    }
}

#[test]
fn pbmc3k_lognormalize_matches_the_example() {
    let p = prepare(pbmc(), &PrepOptions::default()).unwrap();
    let cell = p
        .data
        .barcodes
        .iter()
        .position(|b| b == "AAACATACAACCAC-1")
        .unwrap();
    let gene = p
        .data
        .gene_names
        .iter()
        .position(|g| g == "TNFRSF25")
        .unwrap();
    let (cols, vals) = p.data.matrix.row(cell);
    let k = cols.iter().position(|&c| c as usize == gene).unwrap();
    assert!((vals[k] - 2.2265546).abs() < 1e-6, "{}", vals[k]);
}

#[test]
fn pbmc3k_labels_cover_the_qc_cells() {
    let p = prepare(pbmc(), &PrepOptions::default()).unwrap();
    let l = labels::read(Path::new("data/pbmc3k/labels.csv"), None).unwrap();
    let map = l.map();
    assert_eq!(map.len(), 2638);
    assert!(p.data.barcodes.iter().all(|b| map.contains_key(b.as_str())));
    let types: std::collections::BTreeSet<&str> = map.values().copied().collect();
    assert_eq!(types.len(), 9);
}

/// Under `scrna` the networks read 2,000 z-scored HVGs, but marker genes are ranked on the
/// LogNormalized values of every kept gene (as scanpy ranks `.raw`): the same cells, all
/// 13,714 genes, the study's LogNormalize values. The study's input is itself that matrix.
#[test]
fn pbmc3k_markers_read_lognormalized_values_of_every_gene() {
    let paper = prepare(pbmc(), &PrepOptions::default()).unwrap();
    assert!(paper.expression.is_none());
    let scrna = prepare(pbmc(), &cellvae::models::Preset::Scrna.prep_options()).unwrap();
    assert_eq!(scrna.data.n_genes(), 2000);
    // z-scores, stored as their change from a zero's (negative in every gene): as sparse as
    // the counts, so not every entry is stored.
    let zero = scrna.scaling.as_ref().expect("scaled").zero_scores();
    assert!(
        zero.iter().all(|&c| c < 0.0),
        "a zero is below every gene's mean"
    );
    assert!(scrna.data.matrix.nnz() < 2638 * 2000 / 2);
    // Held as counts (16-bit genes and counts) and read back as the same values, bit for bit.
    assert!(matches!(
        scrna.expression.as_ref().expect("all genes kept").matrix,
        cellvae::preprocess::ExpressionMatrix::Counts(_)
    ));
    let (matrix, names) = scrna.marker_input();
    let (want, want_names) = paper.marker_input();
    let (matrix, want) = (matrix.to_values(), want.to_values());
    assert_eq!((matrix.n_rows, matrix.n_cols), (2638, 13714));
    assert_eq!(names, want_names);
    assert_eq!(matrix.indptr, want.indptr);
    assert_eq!(matrix.data, want.data);
}

/// The counts a run keeps (the HVGs' under `scrna`, every kept gene's under `paper`) are the
/// input's, cell by cell and gene by gene: recovered exactly from the LogNormalized values
/// and each cell's total, not copied before normalizing.
#[test]
fn pbmc3k_kept_counts_are_the_input_counts() {
    let raw = pbmc();
    let row_of: std::collections::HashMap<&str, usize> = raw
        .barcodes
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect();
    let col_of: std::collections::HashMap<&str, usize> = raw
        .gene_ids
        .iter()
        .enumerate()
        .map(|(g, id)| (id.as_str(), g))
        .collect();
    for opts in [
        PrepOptions::default(),
        cellvae::models::Preset::Scrna.prep_options(),
    ] {
        let p = prepare(pbmc(), &opts).unwrap();
        let counts = p.counts().expect("integer input keeps its counts");
        assert_eq!(counts.n_cols, p.data.n_genes());
        for (i, barcode) in p.data.barcodes.iter().enumerate() {
            let (cols, vals) = raw.matrix.row(row_of[barcode.as_str()]);
            let (kept_cols, kept_vals) = counts.row(i);
            let mut n = 0;
            for (g, id) in p.data.gene_ids.iter().enumerate() {
                let want = match cols.binary_search(&(col_of[id.as_str()] as u32)) {
                    Ok(k) => vals[k],
                    Err(_) => 0.0,
                };
                let got = match kept_cols.binary_search(&(g as u32)) {
                    Ok(k) => kept_vals[k],
                    Err(_) => 0.0,
                };
                assert_eq!(got, want, "cell {barcode}, gene {id}");
                n += (want != 0.0) as usize;
            }
            assert_eq!(n, kept_cols.len(), "cell {barcode}: no extra entries");
        }
    }
}
