"""Seconds per training epoch of the same MNIST VAE (784-512-20, Bernoulli/BCE, Adam 1e-3, batch 128, 2 threads):
`elbo train` (the binary), `elbo.VAE.fit` (the Python package) and pythae's TrainingPipeline, one after the other
in one run. Usage (from the repository root, on an otherwise idle machine, with the bench venv that has torch and
pythae, and elbo installed into it: `bench/.venv/bin/pip install ./python pythae`):

    bench/.venv/bin/python bench/python_fit.py [--epochs 3] [--bin target/ci/elbo]

Prints one JSON object: the median seconds per epoch of each (first epoch left out, it warms caches up) and the
ratios to elbo train.
"""

import argparse
import csv
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--bin", default="target/ci/elbo")
    ap.add_argument("--skip-pythae", action="store_true")
    a = ap.parse_args()
    data_dir = os.environ.get("ELBO_DATA_DIR", "../shared/data/mnist")
    x = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    out = {"cpu": cpu(), "epochs": a.epochs}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "x.npy"), x)
        run = os.path.join(tmp, "cli")
        subprocess.run([a.bin, "train", "--data", os.path.join(tmp, "x.npy"), "--hidden", "512", "--latent", "20",
                        "--epochs", str(a.epochs), "--threads", "2", "--out", run], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(run, "metrics.csv")) as f:
            secs = [float(r["seconds"]) for r in csv.DictReader(f)]
        out["elbo_train_s_per_epoch"] = statistics.median(secs[1:])

        import elbo
        vae = elbo.VAE(hidden=[512], latent=20, threads=2)
        h = vae.fit(x, epochs=a.epochs, out=os.path.join(tmp, "py"), verbose=0)
        out["elbo_python_s_per_epoch"] = statistics.median(h.history["seconds"][1:])

    if not a.skip_pythae:
        out["pythae_s_per_epoch"] = pythae_epoch(x, a.epochs)
    base = out["elbo_train_s_per_epoch"]
    for k in list(out):
        if k.endswith("_s_per_epoch"):
            out[k.replace("_s_per_epoch", "_ratio")] = out[k] / base
    print(json.dumps(out, indent=1))


def pythae_epoch(x, epochs):
    import torch
    from pythae.models import VAE, VAEConfig
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    torch.set_num_threads(2)
    data = torch.from_numpy(x.reshape(-1, 1, 28, 28).astype(np.float32) / 255)
    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=20, reconstruction_loss="bce"))
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(epochs):
            cfg = BaseTrainerConfig(output_dir=tmp, num_epochs=1, learning_rate=1e-3,
                                    per_device_train_batch_size=128, no_cuda=True, steps_saving=None)
            t = time.perf_counter()
            TrainingPipeline(model=model, training_config=cfg)(train_data=data)
            times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def cpu():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        name = next(l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name"))
        return f"{name}, {os.cpu_count()} cores, avx512f {'yes' if ' avx512f' in info else 'no'}"
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
