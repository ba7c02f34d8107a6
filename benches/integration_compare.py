#!/usr/bin/env python3
"""cellvae's networks beside scVI and harmonypy on data with batches, the same cells and HVGs.

For each seed:
  1. `cellvae run --preset scrna ... --batch-key KEY --labels-from-obs LABEL --seed S`
     trains the AE, β-VAE and β-VSC (conditioned on the batch) and runs PCA and cellvae's
     Harmony beside them; its summary.csv holds their scores.
  2. scVI (scvi-tools, its defaults: 10-D latent, one 128-wide hidden layer, ZINB, the batch
     injected into the decoder) trains on layers['counts'] of the run's cellvae.h5ad, which
     holds the run's cells and HVGs, with `batch_key='batch'`.
  3. harmonypy runs on the run's uncorrected PCs (obsm['X_pca']) with its defaults.
  4. Both latent spaces go through `cellvae evaluate`: the same protocols and scores the run
     applies to its own models (Leiden with k clusters, batch ASW, iLISI, cLISI, graph
     connectivity, kBET), with the same seed.
Prints one table of means ± sd over the seeds, with each side's time, and writes every
seed's rows to OUT/integration.csv.

Needs a Python with scvi-tools, harmonypy and anndata (never needed to build or test
cellvae). Usage, from the repository root after `cargo build --release`:

    python benches/integration_compare.py --data cellbench_3cl.h5ad --batch-key batch \
        --label-key cell_line --seeds 1 2 3 4 5 --out /tmp/integration -- --qc none

Arguments after `--` go to `cellvae run` unchanged (e.g. `--qc none`, `--likelihood nb`).
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time

COLUMNS = ["leiden_nmi", "leiden_ari", "batch_asw", "ilisi", "clisi", "graph_connectivity", "kbet"]


def cellvae_run(binary, args, seed, out, extra):
    """Runs the study; returns (seconds, {model: row of summary.csv})."""
    cmd = [binary, "run", "--preset", "scrna", "--data", args.data, "--batch-key", args.batch_key,
           "--labels-from-obs", args.label_key, "--seed", str(seed), "--quiet", "--out", out]
    started = time.time()
    subprocess.run(cmd + extra, check=True)
    seconds = time.time() - started
    with open(os.path.join(out, "summary.csv")) as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    return seconds, rows


def write_codes(path, barcodes, codes):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["barcode"] + [f"z{i + 1}" for i in range(codes.shape[1])])
        for b, row in zip(barcodes, codes):
            w.writerow([b] + [repr(float(v)) for v in row])


def evaluate(binary, codes_csv, h5ad, seed):
    """`cellvae evaluate` on a table of codes; returns the row in summary.csv's names."""
    out = subprocess.run(
        [binary, "evaluate", "--input", codes_csv, "--obs", h5ad, "--labels-from-obs", "labels",
         "--batch-key", "batch", "--seed", str(seed), "--quiet"],
        check=True, capture_output=True, text=True).stdout
    v = json.loads(out)
    row = {"leiden_nmi": v["leiden"]["nmi"], "leiden_ari": v["leiden"]["ari"]}
    row.update({k: v["integration"][k] for k in COLUMNS[2:]})
    return row


def scvi_codes(h5ad, seed, max_epochs):
    import anndata
    import scvi

    scvi.settings.seed = seed
    a = anndata.read_h5ad(h5ad)
    a = anndata.AnnData(X=a.layers["counts"].copy(), obs=a.obs[["batch"]].copy())
    scvi.model.SCVI.setup_anndata(a, batch_key="batch")
    model = scvi.model.SCVI(a)
    started = time.time()
    model.train(max_epochs=max_epochs, accelerator="cpu", enable_progress_bar=False)
    seconds = time.time() - started
    return list(a.obs_names), model.get_latent_representation(), seconds


def harmonypy_codes(h5ad, seed):
    import anndata
    import harmonypy

    a = anndata.read_h5ad(h5ad)
    started = time.time()
    ho = harmonypy.run_harmony(a.obsm["X_pca"], a.obs, "batch", random_state=seed, verbose=False)
    seconds = time.time() - started
    z = ho.Z_corr
    z = z if z.shape[0] == a.n_obs else z.T
    return list(a.obs_names), z, seconds


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="an .h5ad with counts, a batch and a label column")
    p.add_argument("--batch-key", required=True)
    p.add_argument("--label-key", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--cellvae", default="target/release/cellvae")
    p.add_argument("--scvi-epochs", type=int, default=None,
                   help="scVI's max_epochs [default: its own rule, min(400, 400·20000/n)]")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    rows = []  # (method, seed, seconds, scores)
    for seed in args.seeds:
        out = os.path.join(args.out, f"seed{seed}")
        seconds, summary = cellvae_run(args.cellvae, args, seed, out, extra)
        h5ad = os.path.join(out, "cellvae.h5ad")
        for model, r in summary.items():
            t = float(r["train_seconds"]) if r["train_seconds"] else float("nan")
            rows.append((f"cellvae {model}", seed, t, {k: float(r[k]) for k in COLUMNS}))
        barcodes, z, t = scvi_codes(h5ad, seed, args.scvi_epochs)
        write_codes(os.path.join(out, "scvi.csv"), barcodes, z)
        rows.append(("scVI", seed, t, evaluate(args.cellvae, os.path.join(out, "scvi.csv"), h5ad, seed)))
        barcodes, z, t = harmonypy_codes(h5ad, seed)
        write_codes(os.path.join(out, "harmonypy.csv"), barcodes, z)
        rows.append(("harmonypy", seed, t,
                     evaluate(args.cellvae, os.path.join(out, "harmonypy.csv"), h5ad, seed)))
        print(f"seed {seed}: cellvae run {seconds:.1f}s", file=sys.stderr)

    with open(os.path.join(args.out, "integration.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["method", "seed", "fit_seconds"] + COLUMNS)
        for method, seed, t, s in rows:
            w.writerow([method, seed, f"{t:.3f}"] + [f"{s[k]:.4f}" for k in COLUMNS])

    def ms(values):
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {sd:.3f}"

    methods = list(dict.fromkeys(m for m, _, _, _ in rows))
    print(f"| method | fit s | {' | '.join(COLUMNS)} |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for m in methods:
        mine = [r for r in rows if r[0] == m]
        times = [r[2] for r in mine]
        cells = [ms([r[3][k] for r in mine]) for k in COLUMNS]
        print(f"| {m} | {statistics.median(times):.1f} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
