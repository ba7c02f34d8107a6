//! The HDF5 readers on files written by anndata and h5py (`tests/fixtures/h5/make_fixtures.py`):
//! every layout gives the same cells, genes and counts as `expected.csv`.

use cellvae::io::hdf5::{read_10x_h5, read_h5ad, read_h5ad_labels, H5adOptions};
use cellvae::io::{read_dataset, Dataset, ReadOptions};
use std::path::Path;

const DIR: &str = "tests/fixtures/h5";

/// `expected.csv`: barcodes, gene IDs, and the dense counts.
fn expected() -> (Vec<String>, Vec<String>, Vec<Vec<f32>>) {
    let text = std::fs::read_to_string(format!("{DIR}/expected.csv")).unwrap();
    let mut lines = text.lines();
    let ids: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .skip(1)
        .map(String::from)
        .collect();
    let (mut barcodes, mut rows) = (Vec::new(), Vec::new());
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        barcodes.push(f[0].to_string());
        rows.push(f[1..].iter().map(|v| v.parse().unwrap()).collect());
    }
    (barcodes, ids, rows)
}

fn check(d: &Dataset, scale: f32, what: &str) {
    let (barcodes, ids, rows) = expected();
    assert_eq!(d.barcodes, barcodes, "{what}");
    assert_eq!(d.gene_ids, ids, "{what}");
    assert!(d.has_gene_ids, "{what}");
    assert_eq!(d.gene_names[7], "MT-CO1", "{what}");
    let dense = d.matrix.to_dense();
    for (i, row) in rows.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            assert_eq!(dense[[i, j]], scale * v, "{what} [{i}, {j}]");
        }
    }
}

#[test]
fn h5ad_csr_csc_dense_layer_and_raw() {
    for f in ["csr", "csc", "dense"] {
        let d = read_h5ad(
            Path::new(&format!("{DIR}/{f}.h5ad")),
            &H5adOptions::default(),
        )
        .unwrap();
        check(&d, 1.0, f);
    }
    let p = Path::new("tests/fixtures/h5/csr.h5ad");
    let layer = H5adOptions {
        layer: Some("counts".into()),
        ..H5adOptions::default()
    };
    check(&read_h5ad(p, &layer).unwrap(), 1.0, "layers/counts");
    let raw = H5adOptions {
        raw: true,
        ..H5adOptions::default()
    };
    check(&read_h5ad(p, &raw).unwrap(), 2.0, "raw/X");
    // Through the general entry point, by extension.
    check(
        &read_dataset(p, &ReadOptions::default()).unwrap(),
        1.0,
        "read_dataset",
    );
}

#[test]
fn h5ad_labels_from_obs() {
    let p = Path::new("tests/fixtures/h5/csr.h5ad");
    let l = read_h5ad_labels(p, "cell_type").unwrap();
    assert_eq!(l.entries.len(), 12);
    assert_eq!(
        l.entries[1],
        ("AAAC01-1".to_string(), Some("B".to_string()))
    );
    let b = read_h5ad_labels(p, "batch").unwrap();
    assert_eq!(b.entries[0].1.as_deref(), Some("a"));
    let e = read_h5ad_labels(p, "nope").unwrap_err().to_string();
    assert!(e.contains("obs/nope") && e.contains("csr.h5ad"), "{e}");
}

#[test]
fn tenx_h5_v3_and_v2() {
    for f in ["tenx_v3", "tenx_v2"] {
        let p = format!("{DIR}/{f}.h5");
        check(&read_10x_h5(Path::new(&p)).unwrap(), 1.0, f);
        check(
            &read_dataset(Path::new(&p), &ReadOptions::default()).unwrap(),
            1.0,
            f,
        );
    }
}

#[test]
fn missing_layer_and_foreign_files_are_errors() {
    let p = Path::new("tests/fixtures/h5/csr.h5ad");
    let e = read_h5ad(
        p,
        &H5adOptions {
            layer: Some("spliced".into()),
            ..H5adOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("layers/spliced"), "{e}");
    // A text file named .h5ad, and a truncated file.
    let dir = std::env::temp_dir().join(format!("cellvae-h5-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("text.h5ad");
    std::fs::write(&text, "barcode,g\nA,1\n").unwrap();
    assert!(read_h5ad(&text, &H5adOptions::default()).is_err());
    let bytes = std::fs::read(p).unwrap();
    let cut = dir.join("cut.h5ad");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = read_h5ad(&cut, &H5adOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.h5ad"), "{e}");
}

/// The layout scanpy wrote before anndata 0.7: compound obs and var, categorical codes with
/// names in uns, raw.X marked h5sparse.
#[test]
fn old_scanpy_layout() {
    let p = Path::new("tests/fixtures/h5/old_layout.h5ad");
    check(
        &read_h5ad(p, &H5adOptions::default()).unwrap(),
        1.0,
        "old X",
    );
    let raw = H5adOptions {
        raw: true,
        ..H5adOptions::default()
    };
    check(&read_h5ad(p, &raw).unwrap(), 2.0, "old raw.X");
    let l = read_h5ad_labels(p, "cell_type").unwrap();
    assert_eq!(
        l.entries[0],
        ("AAAC00-1".to_string(), Some("T".to_string()))
    );
    assert_eq!(l.entries[2].1.as_deref(), Some("NK"));
    // A numeric column is not a labelling.
    let e = read_h5ad_labels(p, "n_counts").unwrap_err().to_string();
    assert!(e.contains("obs/n_counts"), "{e}");
}
