"""Speed of elbo's other workloads against PyTorch, side by side in one run: IWAE k = 50, the Keras conv VAE,
importance-sampled evaluation, the VampPrior, IAF and planar-flow models, and β-TC-VAE on dSprites (the references are in
bench/pytorch_family.py).

Each round runs every chosen workload in elbo, then in PyTorch, one process at a time. Prints the medians over
rounds (training: seconds per epoch; eval: microseconds per importance sample, PyTorch at its best chunk size),
their ratio and each process's peak RSS, as Markdown.

Usage: bench/run.sh --family [--workloads iwae conv eval celeba vamp iaf planar btcvae] [--rounds 3] [--limit N] [--threads 2]
(celeba needs a folder of 64x64 colour PNGs: bench/.venv/bin/python bench/photos.py makes bench/data/photos64)
"""
import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

# run(cmd, env) -> (stdout, peak RSS in MB), shared with bench.py.
from bench import peak_rss_mb as run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ELBO = os.path.join(ROOT, "target", "release", "elbo")
TORCH = os.path.join(ROOT, "bench", "pytorch_family.py")
# ["--flush-denormal"] with --flush-denormal: every PyTorch reference flushes subnormals, as elbo does.
FTZ = []


def json_lines(out):
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


def elbo_train(config, args, seed, env, extra=()):
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [ELBO, "train", "--config", config, "--epochs", "1", "--threads", str(args.threads),
               "--seed", str(seed), "--out", os.path.join(tmp, "run"), *extra]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        _, rss = run(cmd, env)
        with open(os.path.join(tmp, "run", "metrics.csv")) as f:
            return float(next(csv.DictReader(f))["seconds"]), rss


def torch_train(workload, args, seed, env, extra=()):
    out, rss = run([sys.executable, TORCH, *FTZ, workload, "--epochs", "1", "--threads", str(args.threads), "--seed",
                    str(seed), "--limit", str(args.limit), "--data-dir", args.data_dir, *extra], env)
    return json_lines(out)[0]["seconds"], rss


def elbo_celeba(args, seed, env):
    """ms per training image of configs/pytorch-vae-celeba64.toml on the photo folder (no crop: it is 64x64)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [ELBO, "train", "--config", "configs/pytorch-vae-celeba64.toml", "--data", args.photos, "--crop", "64",
               "--epochs", "1", "--threads", str(args.threads), "--seed", str(seed), "--out", os.path.join(tmp, "run")]
        _, rss = run(cmd, dict(env, ELBO_CACHE_DIR=os.path.join(tmp, "cache")))
        with open(os.path.join(tmp, "run", "metrics.csv")) as f:
            seconds = float(next(csv.DictReader(f))["seconds"])
    files = sum(len(fs) for _, _, fs in os.walk(args.photos))
    n = files - round(0.1 * files)  # elbo holds out a tenth as the test split
    return seconds / n * 1e3, rss


def torch_celeba(args, seed, env):
    files = sum(len(fs) for _, _, fs in os.walk(args.photos))
    n = files - round(0.1 * files)
    out, rss = run([sys.executable, TORCH, *FTZ, "celeba", "--epochs", "1", "--threads", str(args.threads), "--seed",
                    str(seed), "--limit", str(n), "--photos", args.photos], env)
    line = json_lines(out)[0]
    return line["seconds"] / line["images"] * 1e3, rss


def elbo_btcvae(args, seed, env):
    """s/epoch of configs/dsprites-beta-tcvae.toml on the first --dsprites-images training images of --dsprites."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [ELBO, "train", "--config", "configs/dsprites-beta-tcvae.toml", "--data", args.dsprites,
               "--limit", str(args.dsprites_images), "--epochs", "1", "--threads", str(args.threads),
               "--seed", str(seed), "--out", os.path.join(tmp, "run")]
        _, rss = run(cmd, env)
        with open(os.path.join(tmp, "run", "metrics.csv")) as f:
            return float(next(csv.DictReader(f))["seconds"]), rss


def torch_btcvae(args, seed, env):
    out, rss = run([sys.executable, TORCH, *FTZ, "btcvae", "--epochs", "1", "--threads", str(args.threads), "--seed",
                    str(seed), "--limit", str(args.dsprites_images), "--npz", args.dsprites], env)
    return json_lines(out)[0]["seconds"], rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workloads", nargs="+", default=["iwae", "conv", "eval"],
                    choices=["iwae", "conv", "eval", "celeba", "vamp", "iaf", "planar", "btcvae"])
    ap.add_argument("--dsprites", default=os.path.join(ROOT, "bench", "data", "dsprites.npz"),
                    help="btcvae: dSprites in DeepMind's layout (elbo make-dsprites --subsample 20000 --seed 1 "
                         "--out bench/data/dsprites.npz makes one)")
    ap.add_argument("--dsprites-images", type=int, default=16000,
                    help="btcvae: training images per epoch (at most the file's training split)")
    ap.add_argument("--photos", default=os.path.join(ROOT, "bench", "data", "photos64"),
                    help="celeba: a folder of 64x64 colour PNGs (bench/photos.py makes one)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images (0: all 60000)")
    ap.add_argument("--images", type=int, default=200, help="eval: test images")
    ap.add_argument("--k", type=int, default=5000, help="eval: importance samples per image")
    ap.add_argument("--data-dir", default=os.environ.get("ELBO_DATA_DIR", os.path.join(ROOT, "..", "shared", "data", "mnist")))
    ap.add_argument("--flush-denormal", action="store_true",
                    help="run the PyTorch references with torch.set_flush_denormal(True), as elbo flushes subnormals")
    args = ap.parse_args()
    if args.flush_denormal:
        FTZ.append("--flush-denormal")
    args.data_dir = os.path.abspath(args.data_dir)
    env = dict(os.environ, ELBO_DATA_DIR=args.data_dir)
    subprocess.run(["cargo", "build", "--release", "--bin", "elbo"], cwd=ROOT, check=True)
    res = {}

    def add(key, value, rss):
        res.setdefault(key, []).append(value)
        res.setdefault(key + "_rss", []).append(rss)

    with tempfile.TemporaryDirectory() as tmp:
        eval_run = os.path.join(tmp, "eval-run")
        if "eval" in args.workloads:
            # The 784-400-20 model; its weights do not change the cost of evaluating it.
            run([ELBO, "train", "--epochs", "1", "--limit", "1000", "--out", eval_run], env)
        for r in range(args.rounds):
            seed = r + 1
            if "iwae" in args.workloads:
                add("iwae_elbo", *elbo_train("configs/iwae-paper-iwae50.toml", args, seed, env))
                add("iwae_torch", *torch_train("iwae", args, seed, env))
            if "conv" in args.workloads:
                add("conv_elbo", *elbo_train("configs/keras-conv.toml", args, seed, env))
                add("conv_torch", *torch_train("conv", args, seed, env))
            # The latent-family models, each against the same model in PyTorch (no test-set pass: --images 0).
            latent = {
                "vamp": ("configs/vampprior.toml", [], ["--prior", "vamp", "--components", "500"]),
                "iaf": ("configs/iaf.toml", [], ["--flow", "iaf:2:320", "--latent", "32", "--lr", "1e-3"]),
                "planar": ("configs/iaf.toml", ["--flow", "planar:8"],
                           ["--flow", "planar:8", "--latent", "32", "--lr", "1e-3"]),
            }
            for w, (config, flags, torch_flags) in latent.items():
                if w in args.workloads:
                    add(w + "_elbo", *elbo_train(config, args, seed, env, flags))
                    add(w + "_torch", *torch_train("latent", args, seed, env, torch_flags + ["--images", "0"]))
            if "btcvae" in args.workloads:
                add("btcvae_elbo", *elbo_btcvae(args, seed, env))
                add("btcvae_torch", *torch_btcvae(args, seed, env))
            if "celeba" in args.workloads:
                add("celeba_elbo", *elbo_celeba(args, seed, env))
                add("celeba_torch", *torch_celeba(args, seed, env))
            if "eval" in args.workloads:
                out, rss = run([ELBO, "eval", eval_run, "--k", str(args.k), "--limit", str(args.images), "--threads",
                                str(args.threads), "--seed", str(seed), "--json"], env)
                e = json.loads(out)
                add("eval_elbo", e["seconds"] / (args.images * args.k) * 1e6, rss)
                out, rss = run([sys.executable, TORCH, *FTZ, "eval", "--images", str(args.images), "--k", str(args.k),
                                "--threads", str(args.threads), "--seed", str(seed), "--data-dir", args.data_dir], env)
                best = min(json_lines(out), key=lambda l: l["us_per_sample"])
                add("eval_torch", best["us_per_sample"], rss)
                res.setdefault("eval_chunk", []).append(best["chunk"])
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    import torch
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {args.threads}; "
          f"PyTorch {torch.__version__}{' with denormals flushed' if FTZ else ''}; {time.strftime('%Y-%m-%d')}")
    what = f"MNIST workloads train on {args.limit or 60000} images per epoch"
    if "celeba" in args.workloads:
        what += f"; celeba on the training split of {args.photos}"
    print(f"Rounds: {args.rounds}; {what}; medians over rounds.\n")
    print("| workload | unit | elbo | PyTorch | elbo / PyTorch | peak RSS MB elbo / PyTorch |")
    print("| --- | --- | --- | --- | --- | --- |")
    names = {"iwae": ("IWAE k = 50, batch 20", "s/epoch"), "conv": ("Keras conv VAE, batch 128", "s/epoch"),
             "eval": (f"importance-sampled eval, K = {args.k}", "µs/sample"),
             "celeba": ("PyTorch-VAE VanillaVAE 64x64x3, batch 64 (photo crops)", "ms/image"),
             "vamp": ("VampPrior, 500 pseudo-inputs, 784-300-300-40, batch 100", "s/epoch"),
             "iaf": ("IAF 2 blocks of MADE 320, 784-300-300-32, batch 100", "s/epoch"),
             "planar": ("8 planar maps, 784-300-300-32, batch 100", "s/epoch"),
             "btcvae": (f"β-TC-VAE (β = 6, MWS) dSprites conv, batch 64, {args.dsprites_images} images", "s/epoch")}
    for w in args.workloads:
        e, t = statistics.median(res[w + "_elbo"]), statistics.median(res[w + "_torch"])
        label, unit = names[w]
        if w == "eval":
            label += f" (PyTorch's best chunk: {statistics.mode(res['eval_chunk'])})"
        print(f"| {label} | {unit} | {e:.3f} | {t:.3f} | {e / t:.2f} | "
              f"{max(res[w + '_elbo_rss']):.0f} / {max(res[w + '_torch_rss']):.0f} |")
    print("\nPer round: " + "; ".join(f"{k} {', '.join(f'{v:.3f}' for v in vs)}" for k, vs in res.items()
                                      if not k.endswith("_rss") and k != "eval_chunk"))


if __name__ == "__main__":
    main()
