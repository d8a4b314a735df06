"""PyTorch reference of elbo's default run: the model, loss, optimiser and batch size of PyTorch's
examples/vae/main.py (784-400-20 ReLU, Bernoulli, Adam 1e-3, batch 128, continuous MNIST).

Data is held in one tensor and shuffled with randperm instead of going through DataLoader and ToTensor per
image: that is the fastest way to feed PyTorch, so the comparison does not flatter elbo. Prints one JSON line
per epoch with the training time (evaluation excluded, as elbo's `seconds`) and the test -ELBO.
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h1 = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("ELBO_DATA_DIR", "../shared/data/mnist"))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="the loss through torch.compile (inductor)")
    ap.add_argument("--flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True): subnormal floats read and written as zero, as elbo and XLA "
                         "run; on Intel CPUs PyTorch's default (off) can be several times slower")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        sys.exit("--flush-denormal: this CPU cannot flush subnormals (no SSE3)")
    torch.manual_seed(args.seed)
    train = torch.from_numpy(idx(os.path.join(args.data_dir, "train-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255.0)
    test = torch.from_numpy(idx(os.path.join(args.data_dir, "t10k-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32) / 255.0)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def neg_elbo(x):
        recon, mu, logvar = model(x)
        return loss_function(recon, x, mu, logvar)

    loss_fn = neg_elbo
    if args.compile:
        # Compiled (inductor) for both batch sizes of an epoch before the clock starts; the draws stay the eager run's.
        loss_fn = torch.compile(neg_elbo)
        rng = torch.get_rng_state()
        for n in (128, len(train) % 128 or 128):
            loss_fn(train[:n]).backward()
        opt.zero_grad()
        torch.set_rng_state(rng)
    for epoch in range(1, args.epochs + 1):
        model.train()
        start = time.perf_counter()
        total = 0.0
        for idxs in torch.randperm(len(train)).split(128):
            x = train[idxs]
            opt.zero_grad()
            loss = loss_fn(x)
            loss.backward()
            total += loss.item()
            opt.step()
        seconds = time.perf_counter() - start
        model.eval()
        test_loss = 0.0
        with torch.no_grad():
            for x in test.split(500):
                recon, mu, logvar = model(x)
                test_loss += loss_function(recon, x, mu, logvar).item()
        print(json.dumps({"epoch": epoch, "seconds": seconds, "train_neg_elbo": total / len(train),
                          "test_neg_elbo": test_loss / len(test), "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
