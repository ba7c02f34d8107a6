"""Marker genes: cellvae's `markers` against scanpy's `rank_genes_groups` on PBMC3k.

    cargo build --release
    python benches/markers_scanpy.py          # needs scanpy

Both run on the same cells and values: cellvae's `preprocess` output (Seurat QC, LogNormalize),
which scanpy reads with `read_10x_mtx`, grouped by the shipped Seurat cell types. scanpy runs
`rank_genes_groups(method="wilcoxon", tie_correct=True)`. Printed: the overlap of each group's
top 25 genes, the largest differences in score, log fold change and log10 p-values (genes
whose symbol occurs once), and the wall-clock seconds of each side.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import scanpy as sc
from release_binary import release_binary  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.path.join(ROOT, "target", "release", "cellvae")
LABELS = os.path.join(ROOT, "data", "pbmc3k", "labels.csv")


def main():
    release_binary()
    work = tempfile.mkdtemp()
    pre, ours_csv = os.path.join(work, "pre"), os.path.join(work, "markers.csv")
    subprocess.run([BIN, "preprocess", "--data", os.path.join(ROOT, "data", "pbmc3k"),
                    "--out", pre], check=True, capture_output=True)
    t = time.time()
    subprocess.run([BIN, "markers", "--quiet", "--clusters", LABELS, "--n-genes", "0",
                    "--out", ours_csv], check=True)
    ours_s = time.time() - t
    ours = pd.read_csv(ours_csv)

    a = sc.read_10x_mtx(pre)
    a.var_names_make_unique()
    labels = pd.read_csv(LABELS).set_index("barcode")
    a.obs["cell_type"] = pd.Categorical(labels.loc[a.obs_names, "cell_type"])
    t = time.time()
    sc.tl.rank_genes_groups(a, "cell_type", method="wilcoxon", tie_correct=True)
    scanpy_s = time.time() - t

    total, worst = 0, np.zeros(4)
    for g in a.obs["cell_type"].cat.categories:
        theirs = sc.get.rank_genes_groups_df(a, g)
        mine = ours[ours.group == g]
        overlap = len(set(theirs.names[:25]) & set(mine.names[:25]))
        total += overlap
        j = theirs.drop_duplicates("names", keep=False).set_index("names")
        o = mine.drop_duplicates("names", keep=False).set_index("names")
        common = o.index.intersection(j.index)
        j, o = j.loc[common], o.loc[common]
        worst[0] = max(worst[0], (j.scores - o.scores).abs().max())
        worst[1] = max(worst[1], (j.logfoldchanges - o.logfoldchanges).abs().max())
        for k, col in [(2, "pvals"), (3, "pvals_adj")]:
            ok = (j[col] > 1e-290) & (o[col] > 1e-290)
            worst[k] = max(worst[k], (np.log10(j[col][ok]) - np.log10(o[col][ok])).abs().max())
        print(f"{g:15s} top-25 overlap {overlap}/25")
    print(f"total {total}/{25 * len(a.obs['cell_type'].cat.categories)}; largest differences: "
          f"score {worst[0]:.1e}, log fold change {worst[1]:.1e}, log10 p {worst[2]:.1e}, "
          f"log10 p_adj {worst[3]:.1e}")
    print(f"seconds: cellvae markers (reading, QC, normalizing, testing, writing) {ours_s:.2f}; "
          f"scanpy rank_genes_groups alone {scanpy_s:.2f}")


if __name__ == "__main__":
    sys.exit(main())
