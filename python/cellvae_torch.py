"""cellvae's three models in PyTorch, and a loader for the checkpoints cellvae writes.

    import sys; sys.path.insert(0, "python")        # this folder
    import cellvae_torch
    net, meta = cellvae_torch.load("results/vae/model.safetensors")
    codes = net.encode(x)        # x: cells x genes tensor, LogNormalized, in meta["gene_ids"] order

`Net` is the same network as cellvae's `Network` for every preset and flag (the checkpoint's
configuration builds it); tensor names and shapes are cellvae's: encoder.{i},
heads.{z,mu,logvar,spike}.{hidden,out}, decoder.{i}, weights (out, in). `Net.forward` returns
the loss terms of one training step (with given noise), `Net.encode` the codes cellvae writes
to latent.csv. Used by the parity checks (`benches/parity_pytorch.py`,
`tests/fixtures/parity/make_fixture.py`) and the speed comparison; needs torch and safetensors.
The project never needs Python to build or test.
"""
import gzip
import json

import numpy as np
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, kind, genes, trunk=(128, 32), head_hidden=16, latent=6, decoder=(16, 32, 128),
                 first_act="none", code_act="relu", beta=2.0, c=50.0, alpha=0.5, reduction="mean",
                 batchnorm=False, nb=False, dec_clusters=0, dropout=0.0, n_batches=0,
                 encode_batch=False, dispersion="gene"):
        super().__init__()
        self.kind, self.beta, self.c, self.alpha, self.reduction = kind, beta, c, alpha, reduction
        self.first_act, self.code_act, self.dropout = first_act, code_act, dropout
        # Batch conditioning: each decoder layer (and with encode_batch each encoder layer)
        # reads [input, one-hot batch]; its weight has a column per batch after the input's.
        self.n_batches = n_batches
        enc = n_batches if (n_batches and encode_batch) else 0
        self.enc_cov, self.dec_cov = enc, n_batches
        widths = [genes] + list(trunk)
        self.encoder = nn.ModuleList([nn.Linear(a + enc, b) for a, b in zip(widths[:-1], widths[1:])])
        heads = {"ae": ["z"], "vae": ["mu", "logvar"], "vsc": ["mu", "logvar", "spike"]}[kind]
        self.heads = nn.ModuleDict()
        for h in heads:
            m = nn.Module()
            if head_hidden:
                m.hidden = nn.Linear(widths[-1], head_hidden)
            m.out = nn.Linear(head_hidden or widths[-1], latent)
            self.heads[h] = m
        dw = [latent] + list(decoder) + [genes]
        self.decoder = nn.ModuleList([nn.Linear(a + n_batches, b) for a, b in zip(dw[:-1], dw[1:])])
        # --batchnorm: one BatchNorm1d after each hidden layer (cellvae's names norm.encoder.i,
        # norm.decoder.i; scVI's momentum and eps). --likelihood nb: px_r, (genes) or
        # (batches, genes) with --dispersion gene-batch. --dec: dec.centroids.
        self.batchnorm = batchnorm
        if batchnorm:
            self.norm = nn.Module()
            bn = lambda w: nn.BatchNorm1d(w, eps=1e-3, momentum=0.01)
            self.norm.encoder = nn.ModuleList([bn(w) for w in trunk])
            self.norm.decoder = nn.ModuleList([bn(w) for w in decoder])
        self.nb, self.gene_batch = nb, dispersion == "gene-batch"
        if nb:
            shape = (n_batches, genes) if self.gene_batch else (genes,)
            self.px_r = nn.Parameter(torch.zeros(shape))
        if dec_clusters:
            self.dec = nn.Module()
            self.dec.centroids = nn.Parameter(torch.zeros(dec_clusters, latent))
        self.scaling = None  # (mean, sd, clip) from the checkpoint, applied by `encode`

    def with_batch(self, h, onehot, width):
        """[h, one-hot batch] for a layer that reads `width` covariate columns."""
        return torch.cat([h, onehot], dim=1) if width else h

    def hidden(self, h, norm, act, mask):
        """After a hidden layer's linear map: BatchNorm, the activation, dropout (a given mask)."""
        if self.batchnorm:
            h = norm(h)
        if act == "relu":
            h = torch.relu(h)
        if mask is not None:
            h = h * mask
        return h

    def trunk_forward(self, x, batch=None):
        """The encoder trunk in evaluation mode (BatchNorm from its running statistics)."""
        onehot = None
        if self.enc_cov:
            if batch is None:
                raise ValueError("this encoder reads each cell's batch: pass batch=")
            onehot = torch.nn.functional.one_hot(batch, self.n_batches).to(x.dtype)
        h = x
        for i, layer in enumerate(self.encoder):
            h = layer(self.with_batch(h, onehot, self.enc_cov))
            if self.batchnorm:
                h = self.norm.encoder[i](h)
            if i > 0 or self.first_act == "relu":
                h = torch.relu(h)
        return h

    def head(self, name, h):
        m = self.heads[name]
        if hasattr(m, "hidden"):
            h = torch.relu(m.hidden(h))
        out = m.out(h)
        if self.kind == "ae" and self.code_act == "relu":
            out = torch.relu(out)
        return out

    def forward(self, x, eps=None, eta=None, batch=None, masks=None, counts=None):
        """One training step's loss terms `(total, recon, kl)` on the batch `x` (cells x genes),
        with the sampling noise `eps`, `eta`; `batch`: each cell's batch (conditional models);
        `masks`: the dropout mask of each hidden position (encoder layers, then decoder
        layers but the output), as cellvae draws them; `counts`: the NB likelihood's target.
        BatchNorm uses the batch's statistics when the module is in training mode."""
        onehot = None
        if self.n_batches:
            onehot = torch.nn.functional.one_hot(batch, self.n_batches).to(x.dtype)
        masks = masks or [None] * (len(self.encoder) + len(self.decoder) - 1)
        norms = (list(self.norm.encoder) + list(self.norm.decoder)) if self.batchnorm else [None] * len(masks)
        h = x
        for i, layer in enumerate(self.encoder):
            act = self.first_act if i == 0 else "relu"
            h = self.hidden(layer(self.with_batch(h, onehot, self.enc_cov)), norms[i], act, masks[i])
        kl = torch.zeros((), dtype=x.dtype)
        if self.kind == "ae":
            z = self.head("z", h)
        else:
            mu, logvar = self.head("mu", h), self.head("logvar", h)
            if eps is None:
                eps = torch.randn_like(mu)
            g = mu + eps * torch.exp(0.5 * logvar)
            if self.kind == "vae":
                z = g
                kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            else:
                spre = self.head("spike", h)
                gamma = torch.exp(-torch.relu(-spre))  # exp(min(s_pre, 0))
                if eta is None:
                    eta = torch.rand_like(mu)
                s = torch.sigmoid(self.c * (eta + gamma - 1))
                z = s * g
                gt = torch.clamp(gamma, 1e-6, 1.0 - 1e-6)
                a = self.alpha
                kl = (-0.5 * torch.sum(gt * (1 + logvar - mu.pow(2) - logvar.exp()))
                      + torch.sum((1 - gt) * torch.log((1 - gt) / (1 - a)) + gt * torch.log(gt / a)))
        e = len(self.encoder)
        for k, layer in enumerate(self.decoder[:-1]):
            z = self.hidden(layer(self.with_batch(z, onehot, self.dec_cov)), norms[e + k], "relu", masks[e + k])
        out = self.decoder[-1](self.with_batch(z, onehot, self.dec_cov))
        if self.nb:
            recon = -torch.sum(self.nb_log_likelihood(out, counts, batch))
        else:
            recon = torch.sum((out - x) ** 2)
        scale = 1.0 / x.shape[0] if self.reduction == "mean" else 1.0
        recon, kl = recon * scale, kl * scale
        return recon + self.beta * kl, recon, kl

    def nb_log_likelihood(self, logits, counts, batch):
        """Per cell and gene, log NB(counts | mu = L softmax(logits), theta = exp(px_r)), L the
        cell's total count (cellvae's engine::nb)."""
        library = counts.sum(dim=1, keepdim=True)
        mu = library * torch.softmax(logits, dim=1)
        r = self.px_r[batch] if self.gene_batch else self.px_r
        theta = torch.exp(r)
        log_theta_mu = torch.log(theta + mu)
        return (torch.lgamma(counts + theta) - torch.lgamma(theta) - torch.lgamma(counts + 1)
                + theta * (r - log_theta_mu) + counts * (torch.log(mu) - log_theta_mu))

    @torch.no_grad()
    def encode(self, x, gamma=False, sample_noise=None, batch=None):
        """The codes cellvae writes: AE z, beta-VAE mu, beta-VSC mu (the slab mean), then the
        spike probabilities gamma = exp(min(s_pre, 0)) when `gamma` is set (VSC). A `seed-code`
        VAE's codes are a sample mu + eps * exp(logvar / 2): pass `sample_noise` (eps) for them.
        A model trained with --scale gets the checkpoint's per-gene scaling applied to `x` first.
        A model whose encoder reads the batch (--encode-batch) needs `batch`, each cell's index
        into meta["batch_names"]."""
        if self.scaling is not None:
            mean, sd, clip = self.scaling
            x = torch.clamp((x - mean) / sd, -clip, clip)
        h = self.trunk_forward(x, batch)
        if self.kind == "ae":
            return self.head("z", h)
        mu = self.head("mu", h)
        if sample_noise is not None:
            mu = mu + sample_noise * torch.exp(0.5 * self.head("logvar", h))
        if self.kind == "vsc" and gamma:
            return torch.cat([mu, torch.exp(-torch.relu(-self.head("spike", h)))], dim=1)
        return mu


def from_config(cfg, genes):
    """The network a cellvae configuration (the checkpoint's `config` JSON) describes."""
    return Net(cfg["model"], genes, trunk=tuple(cfg["trunk"]), head_hidden=cfg["head_hidden"],
               latent=cfg["latent"], decoder=tuple(cfg["decoder"]),
               first_act=cfg["first_activation"], code_act=cfg["code_activation"],
               beta=cfg["beta"] if cfg["model"] != "ae" else 0.0, c=cfg["vsc_c"],
               alpha=cfg["vsc_alpha"], reduction=cfg["reduction"],
               batchnorm=cfg.get("batchnorm", False), nb=cfg.get("likelihood") == "nb",
               dec_clusters=cfg.get("dec_clusters", 0), dropout=cfg.get("dropout", 0.0),
               n_batches=cfg.get("n_batches", 0), encode_batch=cfg.get("encode_batch", False),
               dispersion=cfg.get("dispersion", "gene"))


def load(path, dtype=torch.float32):
    """A cellvae checkpoint as `(net, meta)`: the network with its weights (in eval mode) and
    the metadata (model, preset, config, gene_ids, gene_names, seed, epochs, ...) parsed."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, "pt") as f:
        raw = f.metadata()
    if raw.get("format") != "cellvae-checkpoint-1":
        raise ValueError(f"{path}: not a cellvae checkpoint")
    meta = dict(raw)
    for key in ["config", "gene_ids", "gene_names"] + (["batch_names"] if "batch_names" in raw else []):
        meta[key] = json.loads(raw[key])
    state = {k: v.to(dtype) for k, v in load_file(path).items()}
    net = from_config(meta["config"], len(meta["gene_ids"])).to(dtype)
    # BatchNorm1d's step counter is PyTorch's own; cellvae does not store it.
    own = {k: v for k, v in net.state_dict().items() if k.endswith("num_batches_tracked")}
    net.load_state_dict({**own, **state}, strict=True)
    if "scaling" in raw:
        s = json.loads(raw["scaling"])
        meta["scaling"] = s
        net.scaling = (torch.tensor(s["mean"], dtype=dtype), torch.tensor(s["sd"], dtype=dtype), s["clip"])
    return net.eval(), meta


def paper(kind, genes):
    """cellvae's `paper` preset."""
    if kind == "ae":
        return Net("ae", genes, trunk=(128, 32, 16), head_hidden=0, code_act="relu", beta=0.0)
    return Net(kind, genes)


def read_10x_matrix(folder):
    """Cells x genes float32 dense array from a 10x directory written by `cellvae preprocess`."""
    with gzip.open(f"{folder}/matrix.mtx.gz", "rt") as f:
        header = f.readline()
        assert "coordinate" in header
        line = f.readline()
        while line.startswith("%"):
            line = f.readline()
        genes, cells, nnz = map(int, line.split())
        data = np.loadtxt(f, dtype=np.float64, ndmin=2)
    x = np.zeros((cells, genes), dtype=np.float32)
    x[data[:, 1].astype(int) - 1, data[:, 0].astype(int) - 1] = data[:, 2]
    return x
