"""Parity of cellvae's hand-written backward with PyTorch autograd, for the three `paper` models.

    cargo test --release --test parity_export -- --ignored
    python benches/parity_pytorch.py target/parity

For each model it loads cellvae's weights, batch and noise, runs the same forward pass in
PyTorch (float32, and float64 for reference), and compares the loss and every gradient with
cellvae's. A tensor's difference is max|ours - torch| / max|torch| over its elements. Then it
checks the documented loader (`python/cellvae_torch.py`): each model's checkpoint, loaded with
`cellvae_torch.load`, must encode the batch to cellvae's codes of it (1e-5).
"""
import json
import sys

import torch
from safetensors.torch import load_file
from safetensors import safe_open

sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/../python")
from cellvae_torch import from_config as build, load  # noqa: E402


def check_loader(folder, kind, x):
    """The documented loader: cellvae's checkpoint of this model, loaded with
    `cellvae_torch.load`, encodes the batch to cellvae's own codes of it."""
    net, meta = load(f"{folder}/{kind}_model.safetensors")
    assert meta["model"] == kind and len(meta["gene_ids"]) == x.shape[1]
    ours = load_file(f"{folder}/{kind}.safetensors")["codes"].to(torch.float64)
    theirs = net.encode(x.to(torch.float32), gamma=(kind == "vsc")).to(torch.float64)
    return (ours - theirs).abs().max().item() / ours.abs().max().item()


def main(folder):
    worst_all = {}
    for kind in ["ae", "vae", "vsc"]:
        path = f"{folder}/{kind}.safetensors"
        t = load_file(path)
        with safe_open(path, "pt") as f:
            md = f.metadata()
        cfg = json.loads(md["config"])
        for dtype in [torch.float32, torch.float64]:
            x = t["x"].to(dtype)
            net = build(cfg, x.shape[1]).to(dtype)
            state = {k[len("param."):]: v.to(dtype) for k, v in t.items() if k.startswith("param.")}
            net.load_state_dict(state, strict=True)
            loss, recon, kl = net(x, t["eps"].to(dtype), t["eta"].to(dtype))
            loss.backward()
            rows = []
            ours_loss = float(md["loss"])
            rows.append(("loss", abs(ours_loss - loss.item()) / abs(loss.item())))
            for name, p in net.named_parameters():
                ours = t["grad." + name].to(torch.float64)
                theirs = p.grad.to(torch.float64)
                denom = theirs.abs().max().item()
                diff = (ours - theirs).abs().max().item() / (denom if denom > 0 else 1.0)
                rows.append((name, diff))
            worst = max(rows, key=lambda r: r[1])
            label = "float32" if dtype == torch.float32 else "float64"
            print(f"{kind} vs torch {label}: loss ours {ours_loss:.6f} torch {loss.item():.6f}; "
                  f"largest relative difference {worst[1]:.2e} ({worst[0]})")
            if dtype == torch.float32:
                worst_all[kind] = worst
                for name, d in rows:
                    print(f"    {name:32s} {d:.2e}")
    loader = {kind: check_loader(folder, kind, load_file(f"{folder}/{kind}.safetensors")["x"])
              for kind in ["ae", "vae", "vsc"]}
    for kind, d in loader.items():
        print(f"{kind}: cellvae_torch.load + encode vs cellvae's codes: {d:.2e}")
    ok = all(w[1] < 1e-4 for w in worst_all.values()) and all(d < 1e-5 for d in loader.values())
    print("PASS" if ok else "FAIL", {k: f"{v[1]:.2e}" for k, v in worst_all.items()})
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/parity")
