"""A second labelled count dataset (docs/results.md#a-second-dataset-with-facs-labels):
scanpy's bundled `pbmc68k_reduced` (700 cells of 10x PBMC 68k, 765 genes), whose labels
(`bulk_labels`) come from FACS-sorted bulk populations, not from a clustering.

    python benches/pbmc68k_counts.py target/pbmc68k      # needs scanpy (the file ships with it)
    cargo run --release -- run --preset scrna --data target/pbmc68k --qc none --out results-68k

Its `raw.X` holds log-normalized values `ln(1 + 1e4·count/n_counts)` (stored at reduced
precision); `expm1(x)·n_counts/1e4` is within 0.09 of an integer everywhere, so rounding
recovers the integer counts of those 765 genes. Writes a 10x directory (matrix.mtx.gz,
genes.tsv.gz, barcodes.tsv.gz) and labels.csv.
"""
import gzip
import os
import sys

import numpy as np
import scanpy as sc
import scipy.io
import scipy.sparse as sp


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "target/pbmc68k"
    os.makedirs(out, exist_ok=True)
    a = sc.datasets.pbmc68k_reduced()
    x = a.raw.X.toarray() if sp.issparse(a.raw.X) else np.asarray(a.raw.X)
    counts = np.expm1(x.astype(np.float64)) * a.obs["n_counts"].to_numpy()[:, None] / 1e4
    rounded = np.round(counts)
    err = np.abs(counts - rounded).max()
    assert err < 0.2, f"not counts: off by {err}"
    with gzip.open(os.path.join(out, "matrix.mtx.gz"), "wb") as f:
        scipy.io.mmwrite(f, sp.csr_matrix(rounded.T).astype(np.int64))
    with gzip.open(os.path.join(out, "genes.tsv.gz"), "wt") as f:
        for g in a.raw.var_names:
            f.write(f"{g}\t{g}\n")
    with gzip.open(os.path.join(out, "barcodes.tsv.gz"), "wt") as f:
        for b in a.obs_names:
            f.write(f"{b}\n")
    with open(os.path.join(out, "labels.csv"), "w") as f:
        f.write("barcode,bulk_label\n")
        for b, l in zip(a.obs_names, a.obs["bulk_labels"]):
            f.write(f"{b},{l}\n")
    print(f"wrote {out}: {rounded.shape[0]} cells x {rounded.shape[1]} genes, "
          f"{int(rounded.sum())} counts, largest rounding {err:.3f}, "
          f"{a.obs['bulk_labels'].nunique()} labels")


if __name__ == "__main__":
    main()
