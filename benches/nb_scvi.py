"""The NB β-VAE against scvi-tools' SCVI on the same genes, per epoch, side by side.

    cargo build --release
    python -m venv .venv && .venv/bin/pip install scvi-tools scanpy
    .venv/bin/python benches/nb_scvi.py [--epochs 100 --rounds 2 --threads 2]
    .venv/bin/python benches/nb_scvi.py --data atlas100k.h5ad --epochs 4 --rounds 1 --mse

Both sides: PBMC3k's labelled cells (or, with `--data`, the cells of an `.h5ad` of counts
that cellvae's QC keeps, e.g. a `make_atlas` file), the 2,000 HVGs of scanpy's flavor `seurat`, one hidden
layer of 128 each way with BatchNorm and dropout 0.1, latent 6, NB likelihood with one
dispersion per gene, the cell's observed library size, batch 128, Adam 1e-3, KL weight 1
warmed up over the first `--epochs / 2` epochs, 10 % of the cells held out. cellvae runs
`train --preset scrna --likelihood nb --no-scale --beta 1`; SCVI runs `gene_likelihood="nb"`,
`n_hidden=128, n_layers=1, n_latent=6`. The encoders' inputs differ: cellvae feeds the
LogNormalized values, SCVI `log1p(counts)`.

Seconds per epoch are each side's median over epochs after the first; the held-out loss is
the negative ELBO per held-out cell after the last epoch (reconstruction −log NB summed over
the genes, plus the KL): cellvae's `val_loss` column, SCVI's `elbo_validation` history, on
the same cells: SCVI is given cellvae's split (its `heldout.csv`) as its validation set.
`--mse` adds a row for the network `run --preset scrna` trains (the same layers on the scaled
values, an MSE likelihood): its seconds per epoch are comparable, its held-out loss is not (a
different likelihood, so it is left out).
Optional: never needed to build or test.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from release_binary import release_binary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def cellvae_run(binary, epochs, threads, seed, data, nb=True):
    """Trains cellvae's β-VAE: the NB one beside SCVI, or (`nb=False`) the `scrna` MSE one.
    Returns seconds per epoch, the last held-out loss, the held-out and the kept barcodes."""
    out = os.path.join(ROOT, "target", "nb_scvi", f"cellvae-{'nb' if nb else 'mse'}-{seed}")
    likelihood = ["--likelihood", "nb", "--no-scale", "--beta", "1"] if nb else []
    source = ["--data", data] if data else []
    subprocess.run([binary, "train", "--model", "vae", "--preset", "scrna", *likelihood, *source,
                    "--kl-warmup", str(epochs // 2), "--epochs", str(epochs), "--seed", str(seed),
                    "--threads", str(threads), "--quiet", "--out", out],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "loss.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(out, "heldout.csv")) as f:
        held_out = [line.strip() for line in f.readlines()[1:]]
    with open(os.path.join(out, "latent.csv")) as f:
        kept = [line.split(",", 1)[0] for line in f.readlines()[1:]]
    seconds = statistics.median(float(r["seconds"]) for r in rows[1:] or rows)
    return seconds, float(rows[-1]["val_loss"]), held_out, kept


def scvi_run(epochs, threads, seed, held_out, data, kept):
    import numpy as np
    import scanpy as sc
    import scvi
    import torch
    from lightning.pytorch.callbacks import Callback
    from baselines_pbmc3k import load

    torch.set_num_threads(threads)
    scvi.settings.seed = seed
    scvi.settings.dl_num_workers = 0
    if data:
        import anndata
        # The cells cellvae's QC kept, in its order, so that both sides see the same cells.
        ad = anndata.read_h5ad(data)[kept].copy()
    else:
        ad, _ = load(os.path.join(ROOT, "data", "pbmc3k"))
    ad.layers["counts"] = ad.X.copy()
    sc.pp.normalize_total(ad, target_sum=1e4)
    sc.pp.log1p(ad)
    sc.pp.highly_variable_genes(ad, n_top_genes=2000, flavor="seurat")
    ad = ad[:, ad.var.highly_variable].copy()
    scvi.model.SCVI.setup_anndata(ad, layer="counts")
    model = scvi.model.SCVI(ad, n_hidden=128, n_layers=1, n_latent=6, dropout_rate=0.1,
                            gene_likelihood="nb", dispersion="gene")

    class EpochClock(Callback):
        """Training seconds per epoch, the validation pass left out (as cellvae's are)."""

        def __init__(self):
            self.times, self.validating = [], 0.0

        def on_train_epoch_start(self, trainer, module):
            self.start, self.validating = time.perf_counter(), 0.0

        def on_validation_epoch_start(self, trainer, module):
            self.val_start = time.perf_counter()

        def on_validation_epoch_end(self, trainer, module):
            self.validating += time.perf_counter() - self.val_start

        def on_train_epoch_end(self, trainer, module):
            self.times.append(time.perf_counter() - self.start - self.validating)

    clock = EpochClock()
    is_held_out = ad.obs_names.isin(held_out)
    assert is_held_out.sum() == len(held_out), "cellvae's held-out cells are not all in SCVI's data"
    split = [np.flatnonzero(~is_held_out), np.flatnonzero(is_held_out)]
    model.train(max_epochs=epochs, batch_size=128, early_stopping=False,
                datasplitter_kwargs={"external_indexing": split},
                accelerator="cpu", enable_progress_bar=False, callbacks=[clock], check_val_every_n_epoch=1,
                plan_kwargs={"lr": 1e-3, "n_epochs_kl_warmup": epochs // 2})
    val = model.history["elbo_validation"].iloc[-1, 0]
    return statistics.median(clock.times[1:] or clock.times), float(np.asarray(val))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "cellvae"))
    ap.add_argument("--data", help="an .h5ad of counts (default: the shipped PBMC3k)")
    ap.add_argument("--mse", action="store_true", help="also time the scrna MSE β-VAE")
    a = ap.parse_args()
    a.binary = release_binary(a.binary)
    data = os.path.abspath(a.data) if a.data else None
    ours, mse, theirs = [], [], []
    for r in range(a.rounds):
        seconds, val, held_out, kept = cellvae_run(a.binary, a.epochs, a.threads, r + 1, data)
        ours.append((seconds, val))
        if a.mse:
            mse.append(cellvae_run(a.binary, a.epochs, a.threads, r + 1, data, nb=False)[0])
        theirs.append(scvi_run(a.epochs, a.threads, r + 1, held_out, data, kept))
        print(f"round {r + 1}: cellvae {ours[-1]}, mse {mse[-1:]}, scvi-tools {theirs[-1]}",
              file=sys.stderr)
    o = statistics.median(s for s, _ in ours)
    t = statistics.median(s for s, _ in theirs)
    print("| | s/epoch | held-out loss per cell (last epoch) |")
    print("|---|---|---|")
    print(f"| cellvae NB β-VAE | {o:.4f} | {statistics.mean(v for _, v in ours):.1f} |")
    if mse:
        print(f"| cellvae `scrna` β-VAE (MSE) | {statistics.median(mse):.4f} | – |")
    print(f"| scvi-tools SCVI (nb) | {t:.4f} | {statistics.mean(v for _, v in theirs):.1f} |")
    print(f"\nSCVI / cellvae per epoch: {t / o:.2f}× (NB)", end="")
    print(f", {t / statistics.median(mse):.2f}× (MSE)" if mse else "")


if __name__ == "__main__":
    sys.exit(main())
