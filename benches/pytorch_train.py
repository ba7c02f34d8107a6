"""Trains the three `paper` models in PyTorch as cellvae does (Adam 1e-3, batch 256, a new
permutation each epoch, the last partial batch kept, data held in memory) and prints the
seconds of each epoch, one JSON line per model.

    python benches/pytorch_train.py PREPROCESSED_10X_DIR --epochs 5 --threads 2 [--device cuda]
"""
import argparse
import json
import sys
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/../python")
from cellvae_torch import paper, read_10x_matrix  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="ae,vae,vsc")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.from_numpy(read_10x_matrix(a.data)).to(a.device)
    n, genes = x.shape
    for kind in a.models.split(","):
        model = paper(kind, genes).to(a.device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        seconds = []
        for _ in range(a.epochs):
            if a.device != "cpu":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            perm = torch.randperm(n, device=a.device)
            for start in range(0, n, 256):
                batch = x[perm[start:start + 256]]
                opt.zero_grad()
                loss, _, _ = model(batch)
                loss.backward()
                opt.step()
            if a.device != "cpu":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - t0)
        print(json.dumps({"framework": "pytorch", "torch": torch.__version__, "device": a.device,
                          "threads": a.threads, "model": kind, "epoch_seconds": seconds}))


if __name__ == "__main__":
    main()
