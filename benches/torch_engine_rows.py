"""Training speed, engine against engine: cellvae beside PyTorch run two ways, per epoch.

- "textbook": `benches/torch_ref.py` (a copy of the study's leaner PyTorch reference): dense
  input batches into `nn.Linear`, the decoder's full `B × d` output, `F.mse_loss`.
- "same algorithm": PyTorch running what cellvae's engine runs: the first layer fed the sparse
  batch (`torch.sparse.mm` on a CSR tensor), and the output layer and the squared error in
  the Gram form of `src/engine/output_mse.rs`, never forming `x̂`:
  `Σ(x̂ − x)² = Σ_i h_i(WᵀW)h_iᵀ + 2Σ_i h_i·Wᵀb + B·bᵀb − 2(Σ_i h_i·(XW)_i + Σ X_ig b_g) + ΣX²`,
  its gradients left to autograd.

    cargo build --release
    python benches/torch_engine_rows.py --rounds 3 --epochs 8 --threads 2

The three run in turn, `--rounds` times; each run's figure is the median of its epochs after
the first, and the table gives the median over the rounds (the machine is shared: read the
ratios, which are measured side by side). Optional: never needed to build or test.
"""
import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import torch_ref  # noqa: E402
from release_binary import release_binary  # noqa: E402

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def cellvae_epochs(binary, model, epochs, threads):
    out_dir = os.path.join(ROOT, "target", "engine_rows", model)
    subprocess.run([binary, "train", "--model", model, "--epochs", str(epochs), "--threads",
                    str(threads), "--quiet", "--out", out_dir],
                   capture_output=True, text=True, check=True, cwd=ROOT)
    with open(os.path.join(out_dir, "loss.csv")) as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def textbook_epochs(model, epochs, threads):
    """`torch_ref.py --models M --epochs E --threads T` (manual loader), its epoch seconds."""
    jsonl = os.path.join(ROOT, "target", "engine_rows", f"torch_ref_{model}.jsonl")
    os.makedirs(os.path.dirname(jsonl), exist_ok=True)
    if os.path.exists(jsonl):
        os.remove(jsonl)
    subprocess.run([sys.executable, os.path.join(HERE, "torch_ref.py"), "--data",
                    os.path.join(ROOT, "data", "pbmc3k"), "--models", model, "--epochs",
                    str(epochs), "--threads", str(threads), "--jsonl", jsonl],
                   capture_output=True, text=True, check=True, cwd=ROOT)
    with open(jsonl) as f:
        return json.loads(f.readline())["epoch_s"]


class SparseLinear(nn.Linear):
    """`nn.Linear` whose input is a sparse CSR batch: `X·Wᵀ + b` from the nonzeros."""

    def forward(self, xs):
        return torch.sparse.mm(xs, self.weight.t()) + self.bias


def gram_sse(h, out, xs, x_sq):
    """`Σ (h·Wᵀ + b − X)²` for the output layer `out` without forming `h·Wᵀ` (B × d)."""
    w, b = out.weight, out.bias                      # (d, n), (d)
    quad = ((h @ (w.t() @ w)) * h).sum()
    lin = 2.0 * (h @ (w.t() @ b)).sum() + h.shape[0] * (b @ b)
    cross = (h * torch.sparse.mm(xs, w)).sum() + torch.sparse.mm(xs, b[:, None]).sum()
    return quad + lin - 2.0 * cross + x_sq


class SameAlgorithm(nn.Module):
    """The `paper` models of torch_ref.py (report architecture) with the sparse first layer
    and the Gram-form output loss."""

    def __init__(self, kind, d, latent=6):
        super().__init__()
        self.kind = kind
        self.fc1, self.fc2 = SparseLinear(d, 128), nn.Linear(128, 32)
        if kind == "ae":
            self.fc3, self.fc4 = nn.Linear(32, 16), nn.Linear(16, latent)
        else:
            heads = 2 if kind == "vae" else 3
            self.branch = nn.ModuleList([nn.Linear(32, 16) for _ in range(heads)])
            self.head = nn.ModuleList([nn.Linear(16, latent) for _ in range(heads)])
        self.dec = nn.Sequential(nn.Linear(latent, 16), nn.ReLU(), nn.Linear(16, 32), nn.ReLU(),
                                 nn.Linear(32, 128), nn.ReLU())
        self.out = nn.Linear(128, d)

    def loss(self, xs, x_sq, beta):
        h = F.relu(self.fc2(self.fc1(xs)))          # the first layer has no activation
        kl = 0.0
        if self.kind == "ae":
            z = F.relu(self.fc4(F.relu(self.fc3(h))))
        else:
            outs = [hd(F.relu(br(h))) for br, hd in zip(self.branch, self.head)]
            mu, logvar = outs[0], outs[1]
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            if self.kind == "vae":
                kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            else:
                log_spike = -F.relu(-outs[2])
                z = torch.sigmoid(50.0 * (torch.rand_like(mu) + log_spike.exp() - 1.0)) * z
                s = torch.clamp(log_spike.exp(), 1e-6, 1.0 - 1e-6)
                kl = (-0.5 * torch.sum(s * (1 + logvar - mu.pow(2) - logvar.exp()))
                      + torch.sum((1 - s) * torch.log((1 - s) / 0.5) + s * torch.log(s / 0.5)))
        return gram_sse(self.dec(z), self.out, xs, x_sq) + beta * kl


def same_algorithm_epochs(model, x, epochs, batch=256, beta=2.0, seed=0):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = SameAlgorithm(model, x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = rng.permutation(x.shape[0])
        for i in range(0, x.shape[0], batch):
            rows = x[perm[i:i + batch]]
            xs = torch.sparse_csr_tensor(torch.from_numpy(rows.indptr.astype(np.int64)),
                                         torch.from_numpy(rows.indices.astype(np.int64)),
                                         torch.from_numpy(rows.data), size=rows.shape)
            x_sq = float(np.dot(rows.data, rows.data))
            opt.zero_grad(set_to_none=True)
            loss = net.loss(xs, x_sq, beta)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="ae,vae,vsc")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "cellvae"))
    a = ap.parse_args()
    a.binary = release_binary(a.binary)
    torch.set_num_threads(a.threads)
    dense, _, _ = torch_ref.load_dir(os.path.join(ROOT, "data", "pbmc3k"))
    x = sp.csr_matrix(dense)
    print(f"| model | cellvae s/epoch | PyTorch textbook (torch_ref.py) | ratio | "
          f"PyTorch same algorithm | ratio |")
    print("|---|---|---|---|---|---|")
    for model in a.models.split(","):
        runs = {"cellvae": [], "textbook": [], "same": []}
        for _ in range(a.rounds):
            runs["cellvae"].append(statistics.median(cellvae_epochs(a.binary, model, a.epochs, a.threads)[1:]))
            runs["textbook"].append(statistics.median(textbook_epochs(model, a.epochs, a.threads)[1:]))
            runs["same"].append(statistics.median(same_algorithm_epochs(model, x, a.epochs)[1:]))
        print(json.dumps({"model": model, **runs}), file=sys.stderr)
        c, t, s = (statistics.median(runs[k]) for k in ("cellvae", "textbook", "same"))
        print(f"| {model} | {c:.3f} | {t:.3f} | {t / c:.2f}× | {s:.3f} | {s / c:.2f}× |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
