"""Side-by-side training speed: cellvae and PyTorch on the same data, preset, batch and epochs,
run in turn (so both see the same machine state), several rounds, medians reported.

    cargo build --release
    target/release/cellvae preprocess --out target/pbmc3k-normalized      # the data PyTorch reads
    python benches/compare.py --rounds 5 --epochs 6 --threads 2

Seconds per epoch exclude each run's first epoch (warm-up). Optional: never needed to build or test.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from release_binary import release_binary  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def cellvae_epochs(binary, model, epochs, threads):
    out_dir = os.path.join(ROOT, "target", "compare", model)
    subprocess.run(
        [binary, "train", "--model", model, "--epochs", str(epochs), "--threads", str(threads),
         "--quiet", "--out", out_dir],
        capture_output=True, text=True, check=True, cwd=ROOT)
    # loss.csv has a header; its `seconds` column (to 0.1 ms) is read by name.
    with open(os.path.join(out_dir, "loss.csv")) as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def torch_epochs(data, model, epochs, threads, device):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "pytorch_train.py"), data, "--epochs", str(epochs),
         "--threads", str(threads), "--models", model, "--device", device],
        capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])["epoch_seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "cellvae"))
    ap.add_argument("--data", default=os.path.join(ROOT, "target", "pbmc3k-normalized"))
    ap.add_argument("--device", default="cpu", help="PyTorch device (cpu or cuda)")
    ap.add_argument("--models", default="ae,vae,vsc")
    a = ap.parse_args()
    a.binary = release_binary(a.binary)
    rows = []
    for model in a.models.split(","):
        ours, theirs = [], []
        for _ in range(a.rounds):
            ours.append(statistics.median(cellvae_epochs(a.binary, model, a.epochs, a.threads)[1:]))
            theirs.append(statistics.median(torch_epochs(a.data, model, a.epochs, a.threads, a.device)[1:]))
        o, t = statistics.median(ours), statistics.median(theirs)
        rows.append((model, o, t, t / o))
        print(json.dumps({"model": model, "cellvae_s_per_epoch": ours, "pytorch_s_per_epoch": theirs}), file=sys.stderr)
    print(f"| model | cellvae s/epoch | PyTorch s/epoch ({a.device}) | PyTorch / cellvae |")
    print("|---|---|---|---|")
    for model, o, t, r in rows:
        print(f"| {model} | {o:.3f} | {t:.3f} | {r:.2f}x |")


if __name__ == "__main__":
    main()
