"""UMAP: cellvae's `umap` against umap-learn on the same codes.

    cargo build --release
    python benches/umap_compare.py CODES.csv       # e.g. results/pca/latent.csv; needs umap-learn

Runs `cellvae umap` (defaults) and umap-learn (`UMAP(n_neighbors=15, min_dist=0.1,
random_state=42)`, its spectral initialisation and, as cellvae initialises, `init="pca"`),
timing each (umap-learn's numba compilation is excluded by a warm-up run on 300 points), and
scores how well each keeps the input's neighbourhoods: kNN recall (the share of each point's
15 nearest input neighbours among its 15 nearest embedded ones) and scikit-learn's
trustworthiness (15 neighbours).
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import umap
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors
from release_binary import release_binary  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.path.join(ROOT, "target", "release", "cellvae")


def knn_recall(x, y, k=15):
    a = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    b = NearestNeighbors(n_neighbors=k + 1).fit(y).kneighbors(y, return_distance=False)[:, 1:]
    return np.mean([len(set(p) & set(q)) / k for p, q in zip(a, b)])


def main(codes):
    release_binary()
    x = pd.read_csv(codes).set_index("barcode").to_numpy()
    out = os.path.join(tempfile.mkdtemp(), "umap.csv")
    t = time.time()
    subprocess.run([BIN, "umap", "--quiet", "--input", codes, "--out", out], check=True)
    rows = [("cellvae (init: PCA)", time.time() - t,
             pd.read_csv(out).set_index("barcode").to_numpy())]
    umap.UMAP(random_state=0).fit_transform(x[:300])  # numba compilation
    for init in ["spectral", "pca"]:
        t = time.time()
        y = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=42, init=init).fit_transform(x)
        rows.append((f"umap-learn {umap.__version__} (init: {init})", time.time() - t, y))
    print(f"{x.shape[0]} points x {x.shape[1]} dims from {codes}")
    for name, secs, y in rows:
        print(f"{name:32s} {secs:6.2f} s  kNN recall {knn_recall(x, y):.3f}  "
              f"trustworthiness {trustworthiness(x, y, n_neighbors=15):.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
