"""PyTorch references of elbo's other workloads, written the way a careful PyTorch user would (whole data in one
tensor, one fused head, no DataLoader), so the comparison does not flatter elbo.

  iwae  IWAE k = 50 of Burda et al. (configs/iwae-paper-iwae50.toml): 784-200-200-50 tanh, Bernoulli decoder,
        dynamic binarisation, batch 20, Adam (lr 1e-3, eps 1e-4), loss summed over the batch.
  conv  The Keras example's conv VAE (configs/keras-conv.toml): Conv 32, 64 (3x3, stride 2), Dense 16, 2-D latent,
        Dense 7*7*64, ConvTranspose 64, 32 (stride 2), ConvTranspose 1; ReLU, Bernoulli, Adam 1e-3, batch 128.
  two-layer  Burda et al.'s two stochastic layers (configs/iwae-paper-*-2layer.toml) on the ELBO or, with
        --k-train 50, the IWAE bound, then the test images' -ELBO and -log p(x) with --k samples.
  latent  One stochastic layer with elbo's learned priors and flow posteriors (configs/vampprior.toml, iaf.toml):
        --prior normal|vamp (--components K pseudo-inputs), --flow none|planar:K|iaf:B:H, --hidden, --latent,
        --act, --batch-size, --lr; the ELBO with a one-draw Monte Carlo KL (--kl analytic: the closed-form KL,
        as elbo trains N(0, I) without a flow), or the IWAE bound with --k-train,
        then the test images' -ELBO and -log p(x) with --k samples. Written from the papers and elbo's README, in
        elbo's parameterisation: planar û constrained as Rezende & Mohamed's appendix A.1; IAF σ⊙z + (1 − σ)⊙m from
        a MADE with two hidden layers (sequential degrees, hidden unit k of degree 1 + k mod (d − 1), the gate's
        bias at 2, the order reversed in every second block); VampPrior pseudo-inputs from N(0.05, 0.01), clamped
        to [0, 1] where used.
  btcvae  β-TC-VAE on dSprites (configs/dsprites-beta-tcvae.toml): disentanglement_lib's conv net (Conv 32, 32,
        64, 64, 4x4 stride 2 padding 1, Dense 256, latent 10; Dense 256, Dense 4*4*64, ConvTranspose 64, 32, 32, 1),
        ReLU, Bernoulli, the KL plus (β − 1)·TC with q(z) by minibatch-weighted sampling (disentanglement_lib's
        total_correlation), the loss averaged over the batch, Adam 1e-4, batch 64, on the `imgs` of --npz.
  eval  Importance-sampled log p(x) of the 784-400-20 model with K samples per test image, decoding a chunk of
        samples of one image per batch; every chunk size given is timed and reported.

With --compile, the loss (model, bound and all) goes through torch.compile's default
inductor backend; it is compiled for every batch size an epoch meets before the clock starts, so compile time is
excluded.

Prints one JSON line per epoch (training time only, as elbo's `seconds`) or per chunk size.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pytorch_vae import idx


def mnist(data_dir, name):
    x = idx(os.path.join(data_dir, f"{name}-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255.0
    return torch.from_numpy(x)


class Mlp(nn.Module):
    """Encoder with one head of [mu, logvar] and a decoder giving Bernoulli logits."""

    def __init__(self, hidden, latent, act):
        super().__init__()
        self.latent, self.act = latent, act
        dims = [784] + hidden
        self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.head = nn.Linear(dims[-1], 2 * latent)
        dims = [latent] + hidden[::-1]
        self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.out = nn.Linear(dims[-1], 784)

    def encode(self, x):
        for l in self.enc:
            x = self.act(l(x))
        return self.head(x).chunk(2, dim=-1)

    def decode(self, z):
        for l in self.dec:
            z = self.act(l(z))
        return self.out(z)


def log_weights(model, x, k):
    """log p(x, z) - log q(z | x) for k draws per row of x: [k, B]."""
    mu, logvar = model.encode(x)
    eps = torch.randn(k, *mu.shape)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = model.decode(z.reshape(-1, model.latent)).reshape(k, x.shape[0], -1)
    log_px = -F.binary_cross_entropy_with_logits(logits, x.expand(k, -1, -1), reduction="none").sum(-1)
    # log p(z) - log q(z|x): the 2*pi terms cancel.
    return log_px - 0.5 * (z * z).sum(-1) + 0.5 * (eps * eps).sum(-1) + 0.5 * logvar.sum(-1)


def compiled(args, loss_fn, sizes, make_batch):
    """loss_fn, or with --compile its torch.compile (inductor) form, compiled before the clock starts: one forward
    and backward pass per batch size an epoch meets (gradients dropped, the random state restored, so the run's
    draws are those of the eager run)."""
    if not args.compile:
        return loss_fn
    fn = torch.compile(loss_fn)
    rng = torch.get_rng_state()
    for n in sizes:
        fn(make_batch(n)).backward()
    torch.set_rng_state(rng)
    return fn


def batch_sizes(n, batch):
    """The batch sizes an epoch of n items meets."""
    return sorted({min(batch, n)} | ({n % batch} if n % batch else set()))


def stage_lr(args, base, epoch):
    """The IWAE paper's schedule as elbo's `--lr-schedule iwae --stage-growth G`: stage i (of 8) runs
    round(G^i) epochs at base·10^(−i/7). --stage-growth 0 keeps the rate constant."""
    if not args.stage_growth:
        return base
    end = 0
    for i in range(8):
        end += max(1, math.floor(args.stage_growth ** i + 0.5))
        if epoch <= end:
            return base * 10 ** (-i / 7)
    raise SystemExit(f"epoch {epoch} is past the schedule's {end} epochs")


def schedule_epochs(args):
    """Epochs of the staged schedule, or --epochs without one."""
    if not args.stage_growth:
        return args.epochs
    return sum(max(1, math.floor(args.stage_growth ** i + 0.5)) for i in range(8))


def iwae(args):
    torch.manual_seed(args.seed)
    train = mnist(args.data_dir, "train")[: args.limit or None]
    model = Mlp([200, 200], 50, torch.tanh)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    k = 50

    def bound(x):
        return -(torch.logsumexp(log_weights(model, x, k), 0) - math.log(k)).sum()

    loss_fn = compiled(args, bound, batch_sizes(len(train), 20), lambda n: torch.bernoulli(train[:n]))
    opt.zero_grad()
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        total = 0.0
        for ids in torch.randperm(len(train)).split(20):
            x = torch.bernoulli(train[ids])
            loss = loss_fn(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        print(json.dumps({"workload": "iwae", "epoch": epoch, "seconds": time.perf_counter() - start,
                          "train_neg_iwae": total / len(train)}), flush=True)


class TwoLayer(nn.Module):
    """Burda et al.'s two stochastic layers (configs/iwae-paper-*-2layer.toml): q x-200-200-z1(100)-100-100-z2(50),
    p mirrors it, tanh, diagonal Gaussians throughout, the top prior N(0, I)."""

    def __init__(self):
        super().__init__()

        def mlp(dims, out):
            layers = [nn.Linear(a, b) for a, b in zip(dims, dims[1:])]
            return nn.ModuleList(layers + [nn.Linear(dims[-1], out)])

        self.q1, self.q2 = mlp([784, 200, 200], 200), mlp([100, 100, 100], 100)
        self.p2, self.p1 = mlp([50, 100, 100], 200), mlp([100, 200, 200], 784)

    @staticmethod
    def run(net, x):
        for l in net[:-1]:
            x = torch.tanh(l(x))
        return net[-1](x)

    def log_weights(self, x, k):
        """log p(x, z1, z2) - log q(z1, z2 | x) for k draws per row of x: [k, B]."""
        mu1, lv1 = self.run(self.q1, x).chunk(2, dim=-1)
        e1 = torch.randn(k, *mu1.shape)
        z1 = mu1 + torch.exp(0.5 * lv1) * e1
        mu2, lv2 = self.run(self.q2, z1).chunk(2, dim=-1)
        e2 = torch.randn_like(mu2)
        z2 = mu2 + torch.exp(0.5 * lv2) * e2
        pm, plv = self.run(self.p2, z2).chunk(2, dim=-1)
        logits = self.run(self.p1, z1)
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand(k, -1, -1), reduction="none").sum(-1)
        log_pz1 = -0.5 * (((z1 - pm) ** 2) * torch.exp(-plv) + plv).sum(-1)
        log_pz2 = -0.5 * (z2 * z2).sum(-1)
        log_q = -0.5 * (e1 * e1 + lv1).sum(-1) - 0.5 * (e2 * e2 + lv2).sum(-1)
        return log_px + log_pz1 + log_pz2 - log_q


def bound_epochs(args, model, opt, train, batch, base_lr, k, tag):
    """Trains on the bound of k samples (1: the ELBO) over the schedule's epochs, dynamically binarised, printing
    and returning one JSON line per epoch (``tag``'s keys first). With --save, the state after each epoch is kept in
    SAVE.partial, and a run cut short resumes from it where it stopped, with the same draws."""
    partial = args.save + ".partial" if args.save else ""
    lines, first = [], 1
    if partial and os.path.exists(partial):
        saved = torch.load(partial, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        torch.set_rng_state(saved["rng"])
        lines = saved["epochs"]
        first = len(lines) + 1
        for line in lines:
            print(line, flush=True)
    def bound(x):
        if k == 1 and args.kl == "analytic":
            return -model.analytic_elbo(x).sum()
        return -(torch.logsumexp(model.log_weights(x, k), 0) - math.log(k)).sum()

    loss_fn = compiled(args, bound, batch_sizes(len(train), batch), lambda n: torch.bernoulli(train[:n]))
    opt.zero_grad()
    for epoch in range(first, schedule_epochs(args) + 1):
        for g in opt.param_groups:
            g["lr"] = stage_lr(args, base_lr, epoch)
        start = time.perf_counter()
        total = 0.0
        for ids in torch.randperm(len(train)).split(batch):
            x = torch.bernoulli(train[ids])
            loss = loss_fn(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        lines.append(json.dumps({**tag, "epoch": epoch, "seconds": time.perf_counter() - start,
                                 "train_bound": total / len(train)}))
        print(lines[-1], flush=True)
        if partial:
            atomic_save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(),
                         "epochs": lines}, partial)
    return lines


def atomic_save(state, path):
    """torch.save through a temporary file, so a run killed mid-write leaves the previous file whole."""
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def trained(args, model, train_fn):
    """Runs train_fn() unless --save names a finished training of this model, which is loaded instead (its epoch
    lines printed again, the random state restored), so a run cut short during its long evaluation resumes there."""
    if args.save and os.path.exists(args.save):
        saved = torch.load(args.save, weights_only=False)
        model.load_state_dict(saved["model"])
        torch.set_rng_state(saved["rng"])
        for line in saved["epochs"]:
            print(line, flush=True)
        return
    lines = train_fn()
    if args.save:
        atomic_save({"model": model.state_dict(), "rng": torch.get_rng_state(), "epochs": lines}, args.save)
        if os.path.exists(args.save + ".partial"):
            os.remove(args.save + ".partial")


def two_layer(args):
    """Trains TwoLayer on the ELBO (--k 1) or the IWAE bound, then reports the test set's -ELBO and -log p(x)."""
    torch.manual_seed(args.seed)
    train = mnist(args.data_dir, "train")[: args.limit or None]
    test = mnist(args.data_dir, "t10k")[: args.images]
    model = TwoLayer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    k = args.k_train

    tag = {"workload": "two-layer", "k": k}
    trained(args, model, lambda: bound_epochs(args, model, opt, train, 20, 1e-3, k, tag))
    if not len(test):
        return
    with torch.no_grad():
        x = torch.bernoulli(test)
        elbo, nll = 0.0, 0.0
        for row in x.split(1):
            lw = model.log_weights(row, args.k)
            elbo += lw.mean().item()
            nll += -(torch.logsumexp(lw, 0) - math.log(args.k)).item()
        print(json.dumps({"workload": "two-layer", "k": args.k, "images": len(test),
                          "neg_elbo": -elbo / len(test), "nll": nll / len(test)}), flush=True)


class KerasConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 3, stride=2, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.fc = nn.Linear(7 * 7 * 64, 16)
        self.head = nn.Linear(16, 4)
        self.d0 = nn.Linear(2, 7 * 7 * 64)
        self.t1 = nn.ConvTranspose2d(64, 64, 3, stride=2, padding=1, output_padding=1)
        self.t2 = nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1)
        self.t3 = nn.ConvTranspose2d(32, 1, 3, stride=1, padding=1)

    def forward(self, x):
        h = F.relu(self.c2(F.relu(self.c1(x.view(-1, 1, 28, 28)))))
        mu, logvar = self.head(F.relu(self.fc(h.flatten(1)))).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        h = F.relu(self.d0(z)).view(-1, 64, 7, 7)
        logits = self.t3(F.relu(self.t2(F.relu(self.t1(h)))))
        return logits.view(-1, 784), mu, logvar


def conv(args):
    torch.manual_seed(args.seed)
    train = mnist(args.data_dir, "train")[: args.limit or None]
    model = KerasConv()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def neg_elbo(x):
        logits, mu, logvar = model(x)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        return rec - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

    loss_fn = compiled(args, neg_elbo, batch_sizes(len(train), 128), lambda n: train[:n])
    opt.zero_grad()
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        total = 0.0
        for ids in torch.randperm(len(train)).split(128):
            x = train[ids]
            loss = loss_fn(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        print(json.dumps({"workload": "conv", "epoch": epoch, "seconds": time.perf_counter() - start,
                          "train_neg_elbo": total / len(train)}), flush=True)


class DsConv(nn.Module):
    """disentanglement_lib's conv encoder and deconv decoder for 64x64 binary images, as elbo's dSprites presets."""

    def __init__(self, latent=10):
        super().__init__()
        chans = [1, 32, 32, 64, 64]
        self.enc = nn.ModuleList(nn.Conv2d(a, b, 4, 2, 1) for a, b in zip(chans, chans[1:]))
        self.fc = nn.Linear(64 * 4 * 4, 256)
        self.head = nn.Linear(256, 2 * latent)
        self.dfc1 = nn.Linear(latent, 256)
        self.dfc2 = nn.Linear(256, 64 * 4 * 4)
        back = [64, 64, 32, 32, 1]
        self.dec = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, 2, 1) for a, b in zip(back, back[1:]))

    def forward(self, x):
        h = x
        for c in self.enc:
            h = torch.relu(c(h))
        mu, logvar = self.head(torch.relu(self.fc(h.flatten(1)))).chunk(2, 1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        h = torch.relu(self.dfc2(torch.relu(self.dfc1(z)))).view(-1, 64, 4, 4)
        for i, c in enumerate(self.dec):
            h = c(h)
            if i + 1 < len(self.dec):
                h = torch.relu(h)
        return h, mu, logvar, z


def total_correlation(z, mu, logvar):
    """disentanglement_lib's minibatch-weighted estimate (its constant log(N·B) terms cancel in the gradient)."""
    lq = -0.5 * (math.log(2 * math.pi) + logvar[None] + (z[:, None] - mu[None]) ** 2 * torch.exp(-logvar[None]))
    return (torch.logsumexp(lq.sum(2), 1) - torch.logsumexp(lq, 1).sum(1)).mean()


def btcvae(args):
    torch.manual_seed(args.seed)
    imgs = np.load(args.npz)["imgs"][: args.limit or None]
    train = torch.from_numpy(imgs.astype(np.float32)).view(-1, 1, 64, 64)
    model = DsConv()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def loss_of(x):
        logits, mu, logvar, z = model(x)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
        return rec + kl + (args.tc - 1) * total_correlation(z, mu, logvar)

    loss_fn = compiled(args, loss_of, batch_sizes(len(train), 64), lambda n: train[:n])
    opt.zero_grad()
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        total = 0.0
        for ids in torch.randperm(len(train)).split(64):
            x = train[ids]
            loss = loss_fn(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
        print(json.dumps({"workload": "btcvae", "epoch": epoch, "seconds": time.perf_counter() - start,
                          "images": len(train), "train_loss": total / len(train)}), flush=True)


class VanillaVAE(nn.Module):
    """PyTorch-VAE's VanillaVAE (models/vanilla_vae.py) for 64x64x3, as configs/pytorch-vae-celeba64.toml."""

    def __init__(self, latent=128, hidden=(32, 64, 128, 256, 512)):
        super().__init__()
        layers, c = [], 3
        for h in hidden:
            layers.append(nn.Sequential(nn.Conv2d(c, h, 3, 2, 1), nn.BatchNorm2d(h), nn.LeakyReLU()))
            c = h
        self.encoder = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(hidden[-1] * 4, latent)
        self.fc_var = nn.Linear(hidden[-1] * 4, latent)
        self.decoder_input = nn.Linear(latent, hidden[-1] * 4)
        rev = list(reversed(hidden))
        self.decoder = nn.Sequential(*[
            nn.Sequential(nn.ConvTranspose2d(a, b, 3, 2, 1, output_padding=1), nn.BatchNorm2d(b), nn.LeakyReLU())
            for a, b in zip(rev, rev[1:])])
        self.final = nn.Sequential(
            nn.ConvTranspose2d(rev[-1], rev[-1], 3, 2, 1, output_padding=1), nn.BatchNorm2d(rev[-1]), nn.LeakyReLU(),
            nn.Conv2d(rev[-1], 3, 3, padding=1), nn.Tanh())

    def forward(self, x):
        h = torch.flatten(self.encoder(x), 1)
        mu, logvar = self.fc_mu(h), self.fc_var(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        d = self.decoder_input(z).view(-1, 512, 2, 2)
        return self.final(self.decoder(d)), mu, logvar


def photos(folder):
    from PIL import Image
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.endswith(".png"))
    x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).astype(np.float32) / 255.0
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def celeba(args):
    """PyTorch-VAE's training step: MSE (mean) + kld_weight 0.00025 x batch-mean KL, Adam 0.005, batch 64."""
    torch.manual_seed(args.seed)
    train = photos(args.photos)[: args.limit or None]
    model = VanillaVAE()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.005)

    def vae_loss(x):
        recons, mu, logvar = model(x)
        kld = torch.mean(-0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp(), dim=1))
        return F.mse_loss(recons, x) + 0.00025 * kld

    loss_fn = compiled(args, vae_loss, batch_sizes(len(train), 64), lambda n: train[:n])
    opt.zero_grad()
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        total = 0.0
        for ids in torch.randperm(len(train)).split(64):
            x = train[ids]
            loss = loss_fn(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(ids)
        seconds = time.perf_counter() - start
        print(json.dumps({"workload": "celeba", "epoch": epoch, "seconds": seconds, "images": len(train),
                          "loss": total / len(train)}), flush=True)


def evaluate(args):
    torch.manual_seed(args.seed)
    test = mnist(args.data_dir, "t10k")[: args.images]
    model = Mlp([400], 20, F.relu)
    k = args.k
    weights = torch.compile(log_weights) if args.compile else log_weights
    for chunk in args.chunks:
        with torch.no_grad():
            if args.compile:  # compiled for each chunk size before the clock starts
                for n in {min(chunk, k - done) for done in range(0, k, chunk)}:
                    weights(model, test[:1], n)
        start = time.perf_counter()
        total = 0.0
        with torch.no_grad():
            for x in test:
                parts = []
                for done in range(0, k, chunk):
                    parts.append(weights(model, x[None], min(chunk, k - done))[:, 0])
                total += (torch.logsumexp(torch.cat(parts), 0) - math.log(k)).item()
        seconds = time.perf_counter() - start
        print(json.dumps({"workload": "eval", "chunk": chunk, "seconds": seconds,
                          "us_per_sample": seconds / (len(test) * k) * 1e6, "log_px": total / len(test)}), flush=True)


class Planar(nn.Module):
    def __init__(self, d):
        super().__init__()
        bound = 1 / math.sqrt(d)
        self.u = nn.Parameter(torch.empty(d).uniform_(-bound, bound))
        self.w = nn.Parameter(torch.empty(d).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(1))

    def forward(self, z):
        a = self.w @ self.u
        uh = self.u + (F.softplus(a) - 1 - a) * self.w / (self.w @ self.w + 1e-12)
        h = torch.tanh(z @ self.w + self.b)
        logdet = torch.log(torch.abs(1 + (1 - h * h) * (uh @ self.w)))
        return z + h.unsqueeze(-1) * uh, logdet


class MaskedLinear(nn.Linear):
    def __init__(self, a, b, mask):
        super().__init__(a, b)
        self.register_buffer("mask", mask.float())
        with torch.no_grad():
            self.weight.mul_(self.mask)

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class IafBlock(nn.Module):
    def __init__(self, d, hidden, act, reversed_):
        super().__init__()
        inp = torch.tensor([d - j if reversed_ else j + 1 for j in range(d)])
        units = torch.tensor([1 + k % max(d - 1, 1) for k in range(hidden)])
        out = torch.cat([inp, inp])
        self.l0 = MaskedLinear(d, hidden, units[:, None] >= inp[None, :])
        self.l1 = MaskedLinear(hidden, hidden, units[:, None] >= units[None, :])
        self.head = MaskedLinear(hidden, 2 * d, out[:, None] > units[None, :])
        with torch.no_grad():
            self.head.bias[d:] = 2.0
        self.act, self.d = act, d

    def forward(self, z):
        m, s = self.head(self.act(self.l1(self.act(self.l0(z))))).chunk(2, dim=-1)
        sig = torch.sigmoid(s)
        return sig * z + (1 - sig) * m, F.logsigmoid(s).sum(-1)


class LatentFamily(Mlp):
    """One stochastic layer with a VampPrior or N(0, I), and a planar or IAF flow or none."""

    def __init__(self, hidden, latent, act, prior, components, flow):
        super().__init__(hidden, latent, act)
        self.flows = nn.ModuleList()
        if flow != "none":
            kind, *n = flow.split(":")
            if kind == "planar":
                self.flows.extend(Planar(latent) for _ in range(int(n[0])))
            else:
                blocks, width = int(n[0]), int(n[1])
                self.flows.extend(IafBlock(latent, width, act, i % 2 == 1) for i in range(blocks))
        self.pseudo = nn.Parameter(0.05 + 0.01 * torch.randn(components, 784)) if prior == "vamp" else None
        self.components = None

    def log_prior(self, z):
        if self.pseudo is None:
            return -0.5 * (z * z).sum(-1)
        # During evaluation the components are fixed: encoding the 500 pseudo-inputs again for every chunk of samples
        # cost as much as decoding the chunk.
        if self.components is not None:
            return self.fixed_log_prior(z)
        pm, plv = self.encode(self.pseudo.clamp(0, 1))
        # [..., 1, d] against [K, d]: equally weighted components, without the ln 2π terms.
        comp = -0.5 * (((z.unsqueeze(-2) - pm) ** 2) * torch.exp(-plv) + plv).sum(-1)
        return torch.logsumexp(comp, -1) - math.log(len(pm))

    def fixed_log_prior(self, z):
        """The same density with the components fixed (evaluation), as two matrix products in f64, as elbo computes
        it: Σ_d (z − m)²/v = z²·(1/v) − 2 z·(m/v) + Σ_d m²/v. The broadcast [samples × K × d] difference above
        is memory-bound: it kept one K = 5000 evaluation of the VampPrior busy for more than three hours."""
        pm, plv = self.components
        prec = torch.exp(-plv.double())
        offset = (pm.double() ** 2 * prec + plv.double()).sum(-1)
        zz = z.double().reshape(-1, z.shape[-1])
        comp = -0.5 * (zz * zz @ prec.T - 2 * zz @ (pm.double() * prec).T + offset)
        return (torch.logsumexp(comp, -1) - math.log(len(pm))).float().reshape(z.shape[:-1])

    def log_weights(self, x, k):
        mu, logvar = self.encode(x)
        eps = torch.randn(k, *mu.shape)
        z = mu + torch.exp(0.5 * logvar) * eps
        logdet = torch.zeros(z.shape[:-1])
        for f in self.flows:
            z, ld = f(z)
            logdet = logdet + ld
        logits = self.decode(z.reshape(-1, self.latent)).reshape(k, x.shape[0], -1)
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand(k, -1, -1), reduction="none").sum(-1)
        log_q = -0.5 * (eps * eps + logvar).sum(-1) - logdet
        return log_px + self.log_prior(z) - log_q

    def analytic_elbo(self, x):
        """The ELBO with one draw for log p(x|z) and KL(q ‖ N(0, I)) in closed form: [B]."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.decode(z)
        log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return log_px - 0.5 * (mu * mu + torch.exp(logvar) - 1 - logvar).sum(-1)


def latent_family(args):
    torch.manual_seed(args.seed)
    train = mnist(args.data_dir, "train")[: args.limit or None]
    test = mnist(args.data_dir, "t10k")[: args.images]
    act = {"relu": torch.relu, "tanh": torch.tanh}[args.act]
    hidden = [int(h) for h in args.hidden.split(",")]
    model = LatentFamily(hidden, args.latent, act, args.prior, args.components, args.flow)
    if args.kl == "analytic" and (args.prior != "normal" or args.flow != "none"):
        sys.exit("--kl analytic needs --prior normal and --flow none: the other KLs have no closed form")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, eps=args.adam_eps)
    k = args.k_train

    tag = {"workload": "latent", "prior": args.prior, "flow": args.flow}
    trained(args, model, lambda: bound_epochs(args, model, opt, train, args.batch_size, args.lr, k, tag))
    if not len(test):
        return
    with torch.no_grad():
        if model.pseudo is not None:
            model.components = model.encode(model.pseudo.clamp(0, 1))
        x = torch.bernoulli(test)
        elbo, nll = 0.0, 0.0
        for row in x.split(1):
            lw = torch.cat([model.log_weights(row, c) for c in [min(500, args.k)] * max(1, args.k // 500)])
            elbo += lw.mean().item()
            nll += -(torch.logsumexp(lw, 0) - math.log(len(lw))).item()
        print(json.dumps({"workload": "latent", "prior": args.prior, "flow": args.flow, "k": args.k,
                          "images": len(test), "neg_elbo": -elbo / len(test), "nll": nll / len(test)}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", choices=["iwae", "conv", "eval", "celeba", "two-layer", "latent", "btcvae"])
    ap.add_argument("--save", default="", help="two-layer, latent: keep the trained model here and, when it "
                    "exists, load it instead of training")
    ap.add_argument("--npz", default="bench/data/dsprites.npz", help="btcvae: dSprites in DeepMind's layout")
    ap.add_argument("--tc", type=float, default=6.0, help="btcvae: β, the total correlation's weight")
    ap.add_argument("--prior", default="normal", choices=["normal", "vamp"], help="latent: the prior")
    ap.add_argument("--components", type=int, default=500, help="latent: VampPrior pseudo-inputs")
    ap.add_argument("--flow", default="none", help="latent: none, planar:K or iaf:B:H")
    ap.add_argument("--hidden", default="300,300", help="latent: hidden widths")
    ap.add_argument("--latent", type=int, default=40, help="latent: its dimension")
    ap.add_argument("--act", default="relu", choices=["relu", "tanh"], help="latent: hidden activation")
    ap.add_argument("--batch-size", type=int, default=100, help="latent: images per step")
    ap.add_argument("--lr", type=float, default=5e-4, help="latent: Adam's learning rate")
    ap.add_argument("--adam-eps", type=float, default=1e-8, help="latent: Adam's epsilon")
    ap.add_argument("--kl", default="monte-carlo", choices=["monte-carlo", "analytic"],
                    help="latent: the KL of the ELBO trained (analytic: closed form, N(0, I) without a flow only)")
    ap.add_argument("--stage-growth", type=float, default=0,
                    help="two-layer, latent: the IWAE paper's 8-stage schedule (1.4: 35 epochs), as elbo's")
    ap.add_argument("--k-train", type=int, default=1, help="two-layer: samples of the bound trained (1: the ELBO)")
    ap.add_argument("--photos", default="bench/data/photos64", help="celeba: a folder of 64x64 PNGs")
    ap.add_argument("--data-dir", default=os.environ.get("ELBO_DATA_DIR", "../shared/data/mnist"))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images (0: all)")
    ap.add_argument("--images", type=int, default=200, help="eval: test images")
    ap.add_argument("--k", type=int, default=5000, help="eval: importance samples per image")
    ap.add_argument("--chunks", type=int, nargs="+", default=[500, 1000, 2500, 5000], help="eval: chunk sizes")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compile", action="store_true",
                    help="the loss through torch.compile (inductor), compiled before timing")
    ap.add_argument("--flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True): subnormal floats read and written as zero, as elbo and XLA "
                         "run; on Intel CPUs PyTorch's default (off) can be several times slower")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        sys.exit("--flush-denormal: this CPU cannot flush subnormals (no SSE3)")
    {"iwae": iwae, "conv": conv, "eval": evaluate, "celeba": celeba, "two-layer": two_layer,
     "latent": latent_family, "btcvae": btcvae}[args.workload](args)


if __name__ == "__main__":
    main()
