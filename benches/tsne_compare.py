"""t-SNE wall-clock: `cellvae tsne` (exact and Barnes–Hut, 2-D and 3-D) beside openTSNE and
scikit-learn on the same codes, perplexity 40, 1,000 iterations, run in turn.

    cargo build --release && target/release/cellvae run --models pca --out results
    python benches/tsne_compare.py results/pca/latent.csv [--runs 3 --threads 2]

cellvae's figure is the whole command (reading and writing the CSV included); openTSNE's is
`TSNE(2, perplexity=40, n_jobs=T).fit(X)` and scikit-learn's `TSNE(D, perplexity=40).fit`,
without reading the file. Medians over `--runs`. Optional: never needed to build or test.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from release_binary import release_binary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(f, runs):
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("codes")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "cellvae"))
    ap.add_argument("--no-sklearn", action="store_true")
    a = ap.parse_args()
    a.binary = release_binary(a.binary)
    x = np.loadtxt(a.codes, delimiter=",", skiprows=1, usecols=None, dtype=str)[:, 1:].astype(np.float64)
    rows = []
    for dims in (2, 3):
        for method in ("exact", "barnes-hut"):
            cmd = [a.binary, "tsne", "--input", a.codes, "--dims", str(dims), "--method", method,
                   "--threads", str(a.threads), "--quiet", "--out", os.path.join(ROOT, "target", "tsne_compare.csv")]
            rows.append((f"cellvae {method}", dims, timed(lambda: subprocess.run(cmd, check=True), a.runs)))
    from openTSNE import TSNE as OpenTSNE
    rows.append(("openTSNE (its defaults)", 2,
                 timed(lambda: OpenTSNE(2, perplexity=40, n_jobs=a.threads, random_state=42).fit(x), a.runs)))
    if not a.no_sklearn:
        from sklearn.manifold import TSNE
        for dims in (2, 3):
            rows.append(("scikit-learn Barnes–Hut", dims,
                         timed(lambda: TSNE(dims, perplexity=40, random_state=42).fit_transform(x), a.runs)))
    print(f"{x.shape[0]} points × {x.shape[1]} dimensions, median of {a.runs} runs, {a.threads} threads")
    print("| method | dims | seconds |")
    print("|---|---|---|")
    for name, dims, s in rows:
        print(f"| {name} | {dims} | {s:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
