"""The ablation table of docs/results.md#ablation: each lever of `--preset scrna`
turned off (or on) alone, several training seeds, every protocol, mean ± sd.

    cargo build --release
    python benches/scrna_ablation.py [--seeds 1,2,3] [--models vae] [--out target/ablation]

Each row is `cellvae run --preset scrna --seeds ... --models ...` plus the row's flags; the
script prints the rows of each run's `summary_mean.csv` as a markdown table (NMI / ARI of the
study's protocol, k-means on the codes and Leiden(k), and the held-out loss). The PCA row
(its own flags do not change with these levers) comes from the preset's run with `pca` added.
Label scores are reported here; no setting is chosen from them (the preset's settings were
chosen by `benches/scrna_selection.py`, by held-out loss). The input is ablated unscaled
(all genes, LogNormalized, sparse, as the study trains): scaled, all 13,714 genes would be a
dense 2,638 × 13,714 matrix, which trains far slower than this table's other rows (over 3
minutes per seed had not finished one run).
"""
import argparse
import csv
import os
import subprocess
import sys
from release_binary import release_binary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "cellvae")

ROWS = [
    ("the preset", []),
    ("not scaled", ["--no-scale"]),
    ("latent 10", ["--latent", "10"]),
    ("β 1", ["--beta", "1"]),
    ("no KL warm-up", ["--kl-warmup", "0"]),
    ("no BatchNorm", ["--no-batchnorm"]),
    ("no dropout", ["--dropout", "0"]),
    ("+ DEC (γ = 100)", ["--dec", "100"]),
    ("NB likelihood", ["--likelihood", "nb"]),
    ("all 13,714 genes, not scaled", ["--hvg", "100000", "--no-scale"]),
]
SHOWN = [("nmi_geometric", "ari"), ("latent_kmeans_nmi", "latent_kmeans_ari"), ("leiden_nmi", "leiden_ari")]


def cell(row, col):
    m, s = row.get(f"{col}_mean", ""), row.get(f"{col}_sd", "")
    return f"{float(m):.3f} ± {float(s):.3f}" if m else "–"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--models", default="vae")
    p.add_argument("--data", default="data/pbmc3k")
    p.add_argument("--out", default=os.path.join(ROOT, "target", "ablation"))
    p.add_argument("--rows", default=None, help="comma list of row numbers (0: the preset); all by default")
    p.add_argument("--binary", default=BINARY, help="the cellvae to run (a copy keeps a rebuild from changing it mid-table)")
    a = p.parse_args()
    a.binary = release_binary(a.binary)
    print("| setting | model | t-SNE → k-means NMI / ARI | codes → k-means NMI / ARI | codes → Leiden(k) NMI / ARI | held-out loss |")
    print("|---|---|---|---|---|---|")
    wanted = None if a.rows is None else {int(r) for r in a.rows.split(",")}
    for i, (name, flags) in enumerate(ROWS):
        if wanted is not None and i not in wanted:
            continue
        models = a.models + (",pca" if i == 0 else "")
        out = os.path.join(a.out, f"row{i}")
        subprocess.run([a.binary, "run", "--preset", "scrna", "--data", a.data, "--seeds", a.seeds,
                        "--models", models, "--quiet", "--out", out] + flags,
                       check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "summary_mean.csv")) as f:
            for row in csv.DictReader(f):
                scores = " | ".join(f"{cell(row, n)} / {cell(row, r)}" for n, r in SHOWN)
                print(f"| {name} | {row['model']} ({row['seeds']} seeds) | {scores} | {cell(row, 'val_loss')} |",
                      flush=True)


if __name__ == "__main__":
    sys.exit(main())
