"""How `--preset scrna`'s free settings were chosen: by held-out loss, never by labels.

    cargo build --release
    python benches/scrna_selection.py [--data data/pbmc3k] [--epochs 200] [--seeds 1,2]

Trains each candidate with `cellvae train --preset scrna` (2,000 seurat HVGs, scaled; the
fixed validation split of 10 % of the cells, the same cells for every run) and prints the
held-out loss (recon + KL per held-out cell, the negative ELBO: comparable across β) averaged
over the last 10 epochs and over the seeds. Lower is better. One axis is varied at a time
around the starting point of the table in docs/scrna.md#how-held-out-loss-chose-the-rest
(latent 10, β 1, no BatchNorm, no dropout, KL warm-up 50), then the combination the preset
took is run; the labels are never read.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
from release_binary import release_binary  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "cellvae")

# The starting point: what each candidate changes one setting of.
START = {"--latent": "10", "--beta": "1", "--no-batchnorm": None, "--dropout": "0"}

# (axis, flag values); each row changes one setting of the starting point.
CANDIDATES = [
    ("latent", ["--latent", "6"]),
    ("latent", ["--latent", "16"]),
    ("latent", ["--latent", "32"]),
    ("beta", ["--beta", "0.5"]),
    ("beta", ["--beta", "2"]),
    ("warm-up", ["--kl-warmup", "0"]),
    ("warm-up", ["--kl-warmup", "100"]),
    ("width", ["--hidden", "256", "--decoder", "256"]),
    ("depth", ["--hidden", "256,128", "--decoder", "128,256"]),
    ("batchnorm", ["--batchnorm"]),
    ("dropout", ["--dropout", "0.1"]),
    ("batchnorm+dropout", ["--batchnorm", "--dropout", "0.1"]),
    ("dec", ["--dec", "100", "--dec-clusters", "9"]),
]


def with_start(flags):
    """The starting point's flags with `flags` replacing the settings they name."""
    merged = dict(START)
    i = 0
    while i < len(flags):
        name = flags[i]
        takes_value = i + 1 < len(flags) and not flags[i + 1].startswith("--")
        if name == "--batchnorm":
            merged.pop("--no-batchnorm", None)
        merged[name] = flags[i + 1] if takes_value else None
        i += 2 if takes_value else 1
    out = []
    for k, v in merged.items():
        out += [k] if v is None else [k, v]
    return out


def held_out(model, flags, seed, data, epochs):
    out = os.path.join(ROOT, "target", "scrna_selection", model, "_".join(flags).replace("-", "") or "preset", str(seed))
    subprocess.run([BINARY, "train", "--preset", "scrna", "--model", model, "--data", data,
                    "--epochs", str(epochs), "--seed", str(seed), "--quiet", "--out", out] + flags,
                   check=True, cwd=ROOT)
    with open(os.path.join(out, "loss.csv")) as f:
        rows = list(csv.DictReader(f))
    return statistics.mean(float(r["val_loss"]) for r in rows[-10:])


def main():
    release_binary()
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="data/pbmc3k")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--models", default="vae,ae")
    a = p.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    for model in a.models.split(","):
        print(f"{model}: held-out loss (mean of the last 10 epochs, over seeds {seeds})")
        runs = [("start", with_start([]))] + [(axis, with_start(f)) for axis, f in CANDIDATES]
        runs.append(("the preset", []))
        for axis, flags in runs:
            if model == "ae" and axis in ("beta", "warm-up"):
                continue
            v = [held_out(model, flags, s, a.data, a.epochs) for s in seeds]
            print(f"  {axis:8} {' '.join(flags) or '(the preset)':32} {statistics.mean(v):10.3f}"
                  f"  (seeds: {', '.join(f'{x:.3f}' for x in v)})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
