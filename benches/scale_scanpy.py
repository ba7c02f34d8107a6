#!/usr/bin/env python3
"""scanpy's ordinary recipe on an atlas-sized .h5ad, the side cellvae's scale figures are
measured against: read, normalize_total, log1p, HVG (seurat flavour, 2,000), scale
(max_value 10), PCA-50, neighbors (15), UMAP, Leiden. Prints each step's seconds and the
total; run it under `/usr/bin/time -v` for the peak resident memory.

The input comes from `cargo run --release --example make_atlas -- --cells N --out X.h5ad`.
Needs a Python with scanpy and leidenalg (never needed to build or test cellvae):

    /usr/bin/time -v python benches/scale_scanpy.py atlas100k.h5ad
"""

import sys
import time


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: scale_scanpy.py ATLAS.h5ad")
    import scanpy as sc
    import scipy.sparse

    # scanpy 1.11's neighbors calls getnnz, which scipy ≥ 1.15 dropped from csr_array.
    if not hasattr(scipy.sparse.csr_array, "getnnz"):
        scipy.sparse.csr_array.getnnz = lambda self, axis=None: self._getnnz(axis=axis)

    steps = []
    started = time.time()

    def step(name, f):
        t = time.time()
        out = f()
        steps.append((name, time.time() - t))
        print(f"{name}: {steps[-1][1]:.1f}s", file=sys.stderr, flush=True)
        return out

    a = step("read", lambda: sc.read_h5ad(sys.argv[1]))
    a.var_names_make_unique()
    step("normalize_total", lambda: sc.pp.normalize_total(a, target_sum=1e4))
    step("log1p", lambda: sc.pp.log1p(a))
    step("highly_variable_genes",
         lambda: sc.pp.highly_variable_genes(a, n_top_genes=2000, flavor="seurat", subset=True))
    step("scale", lambda: sc.pp.scale(a, max_value=10))
    step("pca", lambda: sc.tl.pca(a, n_comps=50, random_state=0))
    step("neighbors", lambda: sc.pp.neighbors(a, n_neighbors=15, random_state=0))
    step("umap", lambda: sc.tl.umap(a, random_state=0))
    step("leiden", lambda: sc.tl.leiden(a, random_state=0, flavor="leidenalg"))
    total = time.time() - started
    print(f"cells {a.n_obs}; total {total:.1f}s; " +
          ", ".join(f"{n} {s:.1f}s" for n, s in steps))


if __name__ == "__main__":
    main()
